//! Volumes: block devices a VM attaches beside its root disk, provisioned
//! three ways (the notes' 精简 / 普通 / 普通延迟置零):
//!
//! | provisioning | at create | on a block's first write |
//! |---|---|---|
//! | `thin` | nothing | allocate and zero the block |
//! | `thick` | allocate and zero every block | nothing |
//! | `thick-lazy-zeroed` | allocate every block | zero the block |
//!
//! A block's first write is its first write ever: the accounting is a
//! high-water mark, as a thin disk grows and does not shrink without a
//! trim (reverting or deleting a snapshot frees nothing here).
//! [`WriteCost`] reports what a write cost, [`VolumeView`] the totals.
//!
//! Lazy zeroing is per block, as vSphere's lazy-zeroed thick disks do; the
//! notes read as if the first write zeroed the whole disk (首次写磁盘的时候
//! 全盘置零). Either way thick pays the zeroing at create and lazy pays it
//! on writes; per block keeps the cost proportional to what is written.

use super::{Chain, DiskRef, Storage, StorageError, BLOCKS_PER_GIB, BLOCK_BYTES};
use crate::name::Name;
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provisioning {
    /// Allocate (and zero) a block on its first write.
    Thin,
    /// Allocate and zero everything at create.
    Thick,
    /// Allocate everything at create; zero a block on its first write.
    ThickLazyZeroed,
}

impl Provisioning {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thin => "thin",
            Self::Thick => "thick",
            Self::ThickLazyZeroed => "thick-lazy-zeroed",
        }
    }
}

/// The extra work a call did beside storing data, in blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCost {
    pub allocated_blocks: u64,
    pub zeroed_blocks: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: Name,
    pub size_gib: u64,
    pub provisioning: Provisioning,
    pub attached_to: Option<VmId>,
    /// The VM it was detached from, until that VM's host confirms the
    /// unplug (or the VM can run nowhere): it cannot be attached or
    /// deleted meanwhile, as Cinder's `detaching` state.
    #[serde(default)]
    pub detaching_from: Option<VmId>,
    /// Blocks written at least once (bounded by the size).
    pub(crate) touched: BTreeSet<u64>,
    pub(crate) chain: Chain,
    /// The datastore it lives on ([`super::datastore`]).
    #[serde(default = "super::datastore::default_datastore")]
    pub datastore: Name,
}

impl Volume {
    pub fn blocks(&self) -> u64 {
        self.size_gib * BLOCKS_PER_GIB
    }

    pub fn allocated_blocks(&self) -> u64 {
        match self.provisioning {
            Provisioning::Thin => self.touched.len() as u64,
            Provisioning::Thick | Provisioning::ThickLazyZeroed => self.blocks(),
        }
    }

    /// Blocks zeroed so far, at create and on first writes.
    pub fn zeroed_blocks(&self) -> u64 {
        match self.provisioning {
            Provisioning::Thick => self.blocks(),
            Provisioning::Thin | Provisioning::ThickLazyZeroed => self.touched.len() as u64,
        }
    }

    /// What creating a volume like this costs.
    fn create_cost(provisioning: Provisioning, blocks: u64) -> WriteCost {
        match provisioning {
            Provisioning::Thin => WriteCost::default(),
            Provisioning::Thick => WriteCost {
                allocated_blocks: blocks,
                zeroed_blocks: blocks,
            },
            Provisioning::ThickLazyZeroed => WriteCost {
                allocated_blocks: blocks,
                zeroed_blocks: 0,
            },
        }
    }

    /// Refuses a volume whose detach is unconfirmed.
    pub(crate) fn available(&self) -> Result<(), StorageError> {
        match &self.detaching_from {
            Some(vm) => Err(StorageError::StillDetaching {
                volume: self.name.clone(),
                vm: vm.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records a write to `block`; returns what it cost beside the data.
    pub(crate) fn on_write(&mut self, block: u64) -> WriteCost {
        if !self.touched.insert(block) {
            return WriteCost::default();
        }
        match self.provisioning {
            Provisioning::Thin => WriteCost {
                allocated_blocks: 1,
                zeroed_blocks: 1,
            },
            Provisioning::Thick => WriteCost::default(),
            Provisioning::ThickLazyZeroed => WriteCost {
                allocated_blocks: 0,
                zeroed_blocks: 1,
            },
        }
    }

    pub fn view(&self) -> VolumeView {
        VolumeView {
            name: self.name.clone(),
            size_gib: self.size_gib,
            provisioning: self.provisioning,
            attached_to: self.attached_to.clone(),
            status: match (&self.attached_to, &self.detaching_from) {
                (Some(_), _) => VolumeStatus::InUse,
                (None, Some(_)) => VolumeStatus::Detaching,
                (None, None) => VolumeStatus::Available,
            },
            datastore: self.datastore.clone(),
            blocks: self.blocks(),
            allocated_bytes: self.allocated_blocks() * BLOCK_BYTES,
            zeroed_bytes: self.zeroed_blocks() * BLOCK_BYTES,
            snapshot_bytes: self.chain.stored_blocks() * BLOCK_BYTES,
            snapshots: self.chain.snapshot_count(),
        }
    }
}

/// Where a volume stands, as Cinder names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeStatus {
    /// Attached to no VM and plugged in nowhere.
    Available,
    /// Attached to a VM.
    InUse,
    /// Detached, but the VM's host has not yet confirmed unplugging it.
    Detaching,
}

impl VolumeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::InUse => "in-use",
            Self::Detaching => "detaching",
        }
    }
}

/// A volume as listings show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeView {
    pub name: Name,
    pub size_gib: u64,
    pub provisioning: Provisioning,
    pub attached_to: Option<VmId>,
    pub status: VolumeStatus,
    pub datastore: Name,
    pub blocks: u64,
    pub allocated_bytes: u64,
    pub zeroed_bytes: u64,
    /// Data held in the chain's layers (current and snapshots).
    pub snapshot_bytes: u64,
    /// Snapshot layers the volume's chain holds (any VM's).
    pub snapshots: usize,
}

impl Storage {
    /// Creates a detached volume. Returns what provisioning it cost (thick:
    /// every block allocated and zeroed; lazy: allocated; thin: nothing).
    pub fn create_volume(
        &mut self,
        name: Name,
        size_gib: u64,
        provisioning: Provisioning,
        datastore: Option<&Name>,
    ) -> Result<WriteCost, StorageError> {
        if self.volumes.contains_key(&name) {
            return Err(StorageError::VolumeNameTaken(name));
        }
        // Its footprint from the start: a thick volume its size, a thin one
        // a GiB (the least a disk counts for).
        let gib = match provisioning {
            Provisioning::Thin => 1,
            Provisioning::Thick | Provisioning::ThickLazyZeroed => size_gib,
        };
        let datastore = self.datastore_for_new_disk(datastore, gib)?;
        let max_gib = self.limits.volume_size_gib_max;
        if size_gib == 0 || size_gib > max_gib {
            return Err(StorageError::SizeGib { size_gib, max_gib });
        }
        if self.volumes.len() >= self.limits.volumes_max {
            return Err(StorageError::TooManyVolumes {
                volume: name,
                max: self.limits.volumes_max,
            });
        }
        let blocks = size_gib * BLOCKS_PER_GIB;
        self.volumes.insert(
            name.clone(),
            Volume {
                name,
                size_gib,
                provisioning,
                attached_to: None,
                detaching_from: None,
                touched: BTreeSet::new(),
                chain: Chain::new(blocks),
                datastore,
            },
        );
        Ok(Volume::create_cost(provisioning, blocks))
    }

    /// Attaches an available volume to a VM that has a root disk.
    pub fn attach_volume(&mut self, volume: &Name, vm: &VmId) -> Result<(), StorageError> {
        let v = self.volume(volume)?;
        if let Some(other) = &v.attached_to {
            return Err(StorageError::AlreadyAttached {
                volume: volume.clone(),
                attached_to: other.clone(),
            });
        }
        self.root_disk(vm)?;
        v.available()?;
        self.check_not_moving(&DiskRef::Volume(volume.clone()))?;
        let max = self.limits.volumes_per_vm_max;
        if self.attached_to(vm).len() >= max {
            return Err(StorageError::TooManyAttached {
                vm: vm.clone(),
                max,
            });
        }
        self.volumes.get_mut(volume).expect("checked").attached_to = Some(vm.clone());
        Ok(())
    }

    /// Detaches a volume from the VM it is attached to. The volume is
    /// `detaching` until [`Storage::volume_unplugged`]: the VM's host may
    /// still have it plugged in.
    pub fn detach_volume(&mut self, volume: &Name, vm: &VmId) -> Result<(), StorageError> {
        let v = self.volume(volume)?;
        match &v.attached_to {
            None if v.detaching_from.as_ref() == Some(vm) => v.available(),
            None => Err(StorageError::NotAttached {
                volume: volume.clone(),
                vm: vm.clone(),
            }),
            Some(other) if other != vm => Err(StorageError::AttachedElsewhere {
                volume: volume.clone(),
                vm: vm.clone(),
                attached_to: other.clone(),
            }),
            Some(_) => {
                self.check_no_disk_op_on(volume, vm)?;
                self.check_not_moving(&DiskRef::Volume(volume.clone()))?;
                let v = self.volumes.get_mut(volume).expect("checked");
                v.attached_to = None;
                v.detaching_from = Some(vm.clone());
                Ok(())
            }
        }
    }

    /// Volumes being detached, with the VM each was detached from, in
    /// name order.
    pub fn detaching_volumes(&self) -> impl Iterator<Item = (&Name, &VmId)> {
        self.volumes
            .values()
            .filter_map(|v| Some((&v.name, v.detaching_from.as_ref()?)))
    }

    /// The host of the VM `volume` was detached from confirmed unplugging
    /// it (or that VM can run nowhere now): the volume is available.
    /// Returns whether it was detaching.
    pub fn volume_unplugged(&mut self, volume: &Name) -> bool {
        self.volumes
            .get_mut(volume)
            .and_then(|v| v.detaching_from.take())
            .is_some()
    }

    /// Deletes an available volume, its chain and its place in the VM
    /// snapshots that covered it (those snapshots then cover fewer disks).
    pub fn delete_volume(&mut self, volume: &Name) -> Result<(), StorageError> {
        let v = self.volume(volume)?;
        if let Some(vm) = &v.attached_to {
            return Err(StorageError::DeleteAttached {
                volume: volume.clone(),
                vm: vm.clone(),
            });
        }
        v.available()?;
        self.check_not_moving(&DiskRef::Volume(volume.clone()))?;
        self.volumes.remove(volume);
        for d in self.root_disks.values_mut() {
            for s in d.snapshots.values_mut() {
                s.volumes.remove(volume);
            }
        }
        Ok(())
    }

    pub fn describe_volume(&self, volume: &Name) -> Result<VolumeView, StorageError> {
        Ok(self.volume(volume)?.view())
    }

    /// Every volume, in name order.
    pub fn describe_volumes(&self) -> Vec<VolumeView> {
        self.volumes.values().map(Volume::view).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::StorageLimits;
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse("volume", s).unwrap()
    }

    #[test]
    fn the_three_provisionings_differ_where_the_table_says() {
        let mut s = Storage::new(StorageLimits::default());
        let per_gib = BLOCKS_PER_GIB;
        let thin = s
            .create_volume(n("thin"), 1, Provisioning::Thin, None)
            .unwrap();
        let thick = s
            .create_volume(n("thick"), 1, Provisioning::Thick, None)
            .unwrap();
        let lazy = s
            .create_volume(n("lazy"), 1, Provisioning::ThickLazyZeroed, None)
            .unwrap();
        assert_eq!(thin, WriteCost::default());
        assert_eq!(
            thick,
            WriteCost {
                allocated_blocks: per_gib,
                zeroed_blocks: per_gib
            }
        );
        assert_eq!(
            lazy,
            WriteCost {
                allocated_blocks: per_gib,
                zeroed_blocks: 0
            }
        );
        let view = |s: &Storage, v: &str| {
            let v = s.describe_volume(&n(v)).unwrap();
            (
                v.allocated_bytes / BLOCK_BYTES,
                v.zeroed_bytes / BLOCK_BYTES,
            )
        };
        assert_eq!(view(&s, "thin"), (0, 0));
        assert_eq!(view(&s, "thick"), (per_gib, per_gib));
        assert_eq!(view(&s, "lazy"), (per_gib, 0));

        let w = |s: &mut Storage, v: &str, b: u64| s.write(&DiskRef::Volume(n(v)), b, 7).unwrap();
        let first = |a, z| WriteCost {
            allocated_blocks: a,
            zeroed_blocks: z,
        };
        assert_eq!(w(&mut s, "thin", 3), first(1, 1));
        assert_eq!(w(&mut s, "thin", 3), first(0, 0));
        assert_eq!(w(&mut s, "thick", 3), first(0, 0));
        assert_eq!(w(&mut s, "lazy", 3), first(0, 1));
        assert_eq!(w(&mut s, "lazy", 3), first(0, 0));
        assert_eq!(w(&mut s, "lazy", 4), first(0, 1));
        assert_eq!(view(&s, "thin"), (1, 1));
        assert_eq!(view(&s, "thick"), (per_gib, per_gib));
        assert_eq!(view(&s, "lazy"), (per_gib, 2));
    }
}
