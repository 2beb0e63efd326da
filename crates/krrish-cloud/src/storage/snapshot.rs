//! Block reads and writes through any disk, and VM snapshots.
//!
//! A VM snapshot covers the VM's root disk and every volume attached when
//! it is taken; each covered disk's chain locks its top for it
//! ([`super::chain`]). Taking, deleting and reverting act on all covered
//! disks or on none: every check runs before the first change.

use super::{DiskAction, DiskRef, SnapshotStatus, Storage, StorageError, WriteCost};
use crate::name::Name;
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a VM snapshot covers beside the root disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSnapshot {
    pub taken_at_ms: u64,
    /// Its name on the real disks (see [`super::disk_ops`]); empty in
    /// records saved before tags, which use the snapshot's name.
    #[serde(default)]
    pub tag: String,
    /// Volumes attached when it was taken (minus any deleted since).
    pub volumes: BTreeSet<Name>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotView {
    pub vm: VmId,
    pub name: Name,
    pub taken_at_ms: u64,
    pub volumes: BTreeSet<Name>,
    pub status: SnapshotStatus,
    /// The snapshot's name on the disks (a qcow2 internal snapshot's tag):
    /// unique per op, so a name taken again never meets an old copy.
    #[serde(default)]
    pub tag: String,
}

impl VmSnapshot {
    pub(crate) fn tag_of(&self, name: &Name) -> String {
        if self.tag.is_empty() {
            name.to_string()
        } else {
            self.tag.clone()
        }
    }
}

impl Storage {
    fn check_block(&self, disk: &DiskRef, block: u64) -> Result<(), StorageError> {
        let blocks = self.chain(disk)?.blocks();
        if block >= blocks {
            return Err(StorageError::BlockOutOfRange {
                disk: disk.clone(),
                block,
                blocks,
            });
        }
        Ok(())
    }

    /// Writes `data` (the block's new content fingerprint) to the top layer
    /// of `disk`. Returns the allocation and zeroing the write caused (a
    /// volume's first write to a block, by its provisioning; root disks
    /// cost nothing here, their overlay shows in `stored_bytes`).
    pub fn write(
        &mut self,
        disk: &DiskRef,
        block: u64,
        data: u64,
    ) -> Result<WriteCost, StorageError> {
        self.check_block(disk, block)?;
        match disk {
            DiskRef::Root(vm) => {
                let d = self.root_disks.get_mut(vm).expect("checked");
                d.chain.write(block, data);
                Ok(WriteCost::default())
            }
            DiskRef::Volume(v) => {
                let vol = self.volumes.get_mut(v).expect("checked");
                vol.chain.write(block, data);
                Ok(vol.on_write(block))
            }
        }
    }

    /// The current content of `block` of `disk`: the nearest layer's write,
    /// else the base (zero on a volume, the image on a root disk).
    pub fn read(&self, disk: &DiskRef, block: u64) -> Result<u64, StorageError> {
        self.check_block(disk, block)?;
        Ok(match disk {
            DiskRef::Root(vm) => {
                let d = &self.root_disks[vm];
                d.chain
                    .read(block)
                    .unwrap_or_else(|| self.base_read(d, block))
            }
            DiskRef::Volume(v) => self.volumes[v].chain.read(block).unwrap_or(0),
        })
    }

    /// `block` of `disk` as it read when `vm`'s snapshot `snapshot` was
    /// taken. `disk` must be one the snapshot covers.
    pub fn read_at_snapshot(
        &self,
        vm: &VmId,
        snapshot: &Name,
        disk: &DiskRef,
        block: u64,
    ) -> Result<u64, StorageError> {
        let rec = self.snapshot_record(vm, snapshot)?;
        if self.snapshot_status(vm, &rec.tag_of(snapshot)) == SnapshotStatus::Creating {
            return Err(StorageError::SnapshotCreating {
                vm: vm.clone(),
                snapshot: snapshot.clone(),
            });
        }
        let covered = match disk {
            DiskRef::Root(v) => v == vm,
            DiskRef::Volume(v) => rec.volumes.contains(v),
        };
        if !covered {
            return Err(StorageError::SnapshotDoesNotCover {
                vm: vm.clone(),
                snapshot: snapshot.clone(),
                disk: disk.clone(),
            });
        }
        self.check_block(disk, block)?;
        let chain = self.chain(disk)?;
        let layer = chain
            .snapshot_layer(vm, snapshot)
            .expect("a covered disk holds the snapshot's layer");
        Ok(match chain.read_from(layer, block) {
            Some(d) => d,
            None => match disk {
                DiskRef::Root(vm) => self.base_read(&self.root_disks[vm], block),
                DiskRef::Volume(_) => 0,
            },
        })
    }

    fn snapshot_record(&self, vm: &VmId, snapshot: &Name) -> Result<&VmSnapshot, StorageError> {
        self.root_disk(vm)?
            .snapshots
            .get(snapshot)
            .ok_or_else(|| StorageError::UnknownSnapshot {
                vm: vm.clone(),
                snapshot: snapshot.clone(),
            })
    }

    /// Snapshots `vm`'s root disk and attached volumes together as `name`
    /// once its host has (see [`super::disk_ops`]); `creating` until then.
    pub fn snapshot(&mut self, vm: &VmId, name: Name, now_ms: u64) -> Result<(), StorageError> {
        let d = self.root_disk(vm)?;
        self.check_vm_disks_not_moving(vm)?;
        if d.snapshots.contains_key(&name) {
            return Err(StorageError::SnapshotNameTaken {
                vm: vm.clone(),
                snapshot: name,
            });
        }
        let volumes = self.attached_to(vm);
        let max = self.limits.snapshots_per_disk_max;
        if d.snapshots.len() >= max {
            return Err(StorageError::TooManySnapshots {
                disk: DiskRef::Root(vm.clone()),
                max,
            });
        }
        for v in &volumes {
            // Its layers (any VM's), with this VM's ops not yet done:
            // snapshots to come, deletes to go (done in order).
            let (coming, going) = self
                .disk_ops(vm)
                .iter()
                .filter(|op| op.volumes.contains(v))
                .fold((0, 0), |(c, g), op| match op.action {
                    DiskAction::Snapshot => (c + 1, g),
                    DiskAction::DeleteSnapshot => (c, g + 1),
                    DiskAction::Revert => (c, g),
                });
            if (self.volume(v)?.chain.snapshot_count() + coming).saturating_sub(going) >= max {
                return Err(StorageError::TooManySnapshots {
                    disk: DiskRef::Volume(v.clone()),
                    max,
                });
            }
        }
        self.check_disk_op_room(vm)?;
        let tag = format!("{name}.{}", self.next_disk_op(vm));
        self.queue_disk_op(
            vm,
            DiskAction::Snapshot,
            &name,
            tag.clone(),
            volumes.clone(),
        );
        let d = self.root_disks.get_mut(vm).expect("checked");
        d.snapshots.insert(
            name,
            VmSnapshot {
                taken_at_ms: now_ms,
                tag,
                volumes: volumes.into_iter().collect(),
            },
        );
        Ok(())
    }

    /// Deletes `vm`'s snapshot `name` (at once from the records; on the
    /// disks once its host has): each covered disk merges the snapshot's
    /// layer forward. No disk or other snapshot reads differently.
    pub fn delete_snapshot(&mut self, vm: &VmId, name: &Name) -> Result<(), StorageError> {
        let rec = self.snapshot_record(vm, name)?;
        self.check_vm_disks_not_moving(vm)?;
        let tag = rec.tag_of(name);
        // Only volumes still attached: the host cannot reach the others
        // (their copy stays on them, harmless under its unique tag).
        let here: Vec<Name> = self
            .attached_to(vm)
            .into_iter()
            .filter(|v| rec.volumes.contains(v))
            .collect();
        self.check_disk_op_room(vm)?;
        self.queue_disk_op(vm, DiskAction::DeleteSnapshot, name, tag, here.clone());
        let d = self.root_disks.get_mut(vm).expect("checked");
        let rec = d.snapshots.remove(name).expect("checked");
        // Volumes detached since merge now: it changes no content.
        for v in rec.volumes.iter().filter(|v| !here.contains(v)) {
            let chain = &mut self
                .volumes
                .get_mut(v)
                .expect("snapshot volumes exist")
                .chain;
            chain.delete_snapshot_if_held(vm, name);
        }
        Ok(())
    }

    /// Reverts `vm`'s root disk and the volumes its snapshot `name` covers
    /// to it, once its host has restarted the guest on them: each chain's
    /// top becomes a new empty layer on the snapshot's layer. Writes until
    /// then are discarded; no snapshot is. Refused unless every covered
    /// volume is attached to `vm`.
    pub fn revert(&mut self, vm: &VmId, name: &Name) -> Result<(), StorageError> {
        let rec = self.snapshot_record(vm, name)?;
        self.check_vm_disks_not_moving(vm)?;
        for v in &rec.volumes {
            let attached = &self.volume(v)?.attached_to;
            if attached.as_ref() != Some(vm) {
                return Err(StorageError::SnapshotVolumeNotHere {
                    vm: vm.clone(),
                    snapshot: name.clone(),
                    volume: v.clone(),
                    state: match attached {
                        None => "detached".to_string(),
                        Some(other) => format!("attached to {other}"),
                    },
                });
            }
        }
        self.check_disk_op_room(vm)?;
        let (volumes, tag) = (rec.volumes.clone(), rec.tag_of(name));
        self.queue_disk_op(
            vm,
            DiskAction::Revert,
            name,
            tag,
            volumes.iter().cloned().collect(),
        );
        Ok(())
    }

    /// `vm`'s snapshots, in name order.
    pub fn describe_snapshots(&self, vm: &VmId) -> Result<Vec<SnapshotView>, StorageError> {
        Ok(self
            .root_disk(vm)?
            .snapshots
            .iter()
            .map(|(name, s)| SnapshotView {
                vm: vm.clone(),
                name: name.clone(),
                taken_at_ms: s.taken_at_ms,
                volumes: s.volumes.clone(),
                status: self.snapshot_status(vm, &s.tag_of(name)),
                tag: s.tag_of(name),
            })
            .collect())
    }
}
