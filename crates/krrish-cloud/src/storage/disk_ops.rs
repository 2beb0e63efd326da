//! Snapshot work a VM's host still has to do on its real disks.
//!
//! The model ([`super::snapshot`]) takes, deletes and reverts a snapshot
//! at the API call. A real host does it on the qcow2 files: each call also
//! queues a [`DiskOp`] on the VM's root disk, numbered per VM, which goes
//! to the VM's host with its [`crate::GuestConfig`] until that host
//! confirms having done it ([`Storage::disk_ops_done`]). Until then a
//! snapshot is `creating`.
//!
//! - A host does the ops in order and remembers (beside the disk, on the
//!   DFS) the last one done, so a spare that boots the VM after a crash
//!   does what the dead host had not, and nothing twice.
//! - A stopped VM's ops wait for its next boot: its disks do not change
//!   meanwhile, so a snapshot taken then reads the same.
//! - A volume an unconfirmed op names cannot be detached (the host must
//!   still find it plugged in); at most [`DISK_OPS_PENDING_MAX`] ops wait
//!   per VM.
//! - On disk, a snapshot is named by its tag, `<name>.<op number>`, so a
//!   name deleted and taken again never meets its old self on a volume
//!   the delete could not reach (one detached since).

use super::{Storage, StorageError};
use crate::name::Name;
use krrish_core::VmId;
use serde::{Deserialize, Serialize};

/// Unconfirmed snapshot ops one VM may have.
pub const DISK_OPS_PENDING_MAX: usize = 64;

/// One snapshot call for the VM's host to do on its disks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DiskOp {
    /// Per VM, from 1, in call order.
    pub seq: u64,
    pub action: DiskAction,
    /// The snapshot, as the API names it.
    pub name: Name,
    /// The snapshot's name on the disks.
    pub tag: String,
    /// The volumes it touches beside the root disk, in name order.
    pub volumes: Vec<Name>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskAction {
    Snapshot,
    DeleteSnapshot,
    /// The guest restarts on the disks as they were at the snapshot.
    Revert,
}

impl std::fmt::Display for DiskOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.action {
            DiskAction::Snapshot => "snapshot",
            DiskAction::DeleteSnapshot => "delete snapshot",
            DiskAction::Revert => "revert to",
        };
        write!(f, "#{} {what} {}", self.seq, self.tag)
    }
}

/// Where a snapshot stands on the VM's real disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotStatus {
    /// Recorded; the VM's host has not yet confirmed taking it.
    Creating,
    Available,
}

impl SnapshotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Available => "available",
        }
    }
}

impl Storage {
    /// Refuses a new op on `vm` while [`DISK_OPS_PENDING_MAX`] wait.
    pub(super) fn check_disk_op_room(&self, vm: &VmId) -> Result<(), StorageError> {
        let pending = self.root_disk(vm)?.disk_ops.len();
        if pending >= DISK_OPS_PENDING_MAX {
            return Err(StorageError::TooManyDiskOps {
                vm: vm.clone(),
                max: DISK_OPS_PENDING_MAX,
            });
        }
        Ok(())
    }

    /// Queues an op (room checked by the caller); returns its number.
    pub(super) fn queue_disk_op(
        &mut self,
        vm: &VmId,
        action: DiskAction,
        name: &Name,
        tag: String,
        volumes: Vec<Name>,
    ) -> u64 {
        let d = self.root_disks.get_mut(vm).expect("checked");
        d.disk_ops_seq += 1;
        d.disk_ops.push(DiskOp {
            seq: d.disk_ops_seq,
            action,
            name: name.clone(),
            tag,
            volumes,
        });
        d.disk_ops_seq
    }

    /// The number the next op on `vm` will get.
    pub(super) fn next_disk_op(&self, vm: &VmId) -> u64 {
        self.root_disks.get(vm).map_or(1, |d| d.disk_ops_seq + 1)
    }

    /// `vm`'s ops its host has not confirmed, in order.
    pub fn disk_ops(&self, vm: &VmId) -> &[DiskOp] {
        self.root_disks
            .get(vm)
            .map_or(&[][..], |d| d.disk_ops.as_slice())
    }

    /// `vm`'s host did its ops up to `through` on the disks just now: the
    /// model's chains do them now, in order, so they read as the real
    /// disks do (a guest's writes before the host took a snapshot are in
    /// it; those before the host reverted are gone). Each op once: the
    /// confirmation that follows changes nothing more. Returns how many
    /// ops it did. (The simulated worlds call it when a simulated host
    /// does the ops; elsewhere the confirmation does.)
    pub fn disk_ops_applied(&mut self, vm: &VmId, through: u64) -> usize {
        let Some(d) = self.root_disks.get_mut(vm) else {
            return 0;
        };
        let from = d.disk_ops_applied;
        let todo: Vec<DiskOp> = d
            .disk_ops
            .iter()
            .filter(|op| op.seq > from && op.seq <= through)
            .cloned()
            .collect();
        d.disk_ops_applied = d.disk_ops_applied.max(through.min(d.disk_ops_seq));
        for op in &todo {
            self.apply_to_chains(vm, op);
        }
        todo.len()
    }

    /// `vm`'s host confirmed doing its ops up to `through`: done on the
    /// model's chains too if not yet ([`Self::disk_ops_applied`]), and
    /// retired (a snapshot is `available`). Returns how many retired.
    pub fn disk_ops_done(&mut self, vm: &VmId, through: u64) -> usize {
        self.disk_ops_applied(vm, through);
        let Some(d) = self.root_disks.get_mut(vm) else {
            return 0;
        };
        let split = d.disk_ops.partition_point(|op| op.seq <= through);
        d.disk_ops.drain(..split).count()
    }

    /// Drops `vm`'s ops undone (its guest is going away with its disks).
    pub fn forget_disk_ops(&mut self, vm: &VmId) {
        if let Some(d) = self.root_disks.get_mut(vm) {
            d.disk_ops.clear();
        }
    }

    fn apply_to_chains(&mut self, vm: &VmId, op: &DiskOp) {
        apply_to_chain(
            &mut self.root_disks.get_mut(vm).expect("checked").chain,
            vm,
            op,
        );
        for v in &op.volumes {
            // Named by an op, so attached: neither detached nor deleted.
            let chain = &mut self.volumes.get_mut(v).expect("attached").chain;
            apply_to_chain(chain, vm, op);
        }
    }

    /// `volume` leaves the snapshot work `vm`'s host has not done: the VM
    /// runs nowhere and may never boot again (stopped, down with HA off),
    /// so its volume is not held for that work. A snapshot still to be
    /// taken then covers one disk fewer (as when a volume is deleted); a
    /// revert leaves the volume as it is; a delete's merge on it is done
    /// now (it changes no content). Done by the model already (the
    /// simulated host did it), an op's record stays as it is.
    pub fn release_volume_from_disk_ops(&mut self, vm: &VmId, volume: &Name) {
        let Some(d) = self.root_disks.get_mut(vm) else {
            return;
        };
        let applied = d.disk_ops_applied;
        let mut merge_now = Vec::new();
        for op in d.disk_ops.iter_mut() {
            if !op.volumes.contains(volume) {
                continue;
            }
            op.volumes.retain(|v| v != volume);
            if op.seq <= applied {
                continue;
            }
            match op.action {
                DiskAction::Snapshot => {
                    if let Some(rec) = d.snapshots.get_mut(&op.name).filter(|r| r.tag == op.tag) {
                        rec.volumes.remove(volume);
                    }
                }
                DiskAction::DeleteSnapshot => merge_now.push(op.name.clone()),
                DiskAction::Revert => {}
            }
        }
        if let Some(vol) = self.volumes.get_mut(volume) {
            for name in merge_now {
                vol.chain.delete_snapshot_if_held(vm, &name);
            }
        }
    }

    /// Refuses detaching `volume` from `vm` while an op of `vm` names it.
    pub(super) fn check_no_disk_op_on(&self, volume: &Name, vm: &VmId) -> Result<(), StorageError> {
        if let Some(op) = self
            .disk_ops(vm)
            .iter()
            .find(|op| op.volumes.contains(volume))
        {
            return Err(StorageError::DiskOpPending {
                volume: volume.clone(),
                vm: vm.clone(),
                op: op.to_string(),
            });
        }
        Ok(())
    }

    /// A snapshot's status: `creating` while the op taking it waits.
    pub(super) fn snapshot_status(&self, vm: &VmId, tag: &str) -> SnapshotStatus {
        let creating = self
            .disk_ops(vm)
            .iter()
            .any(|op| op.action == DiskAction::Snapshot && op.tag == tag);
        if creating {
            SnapshotStatus::Creating
        } else {
            SnapshotStatus::Available
        }
    }
}

/// One disk's part of an op; what is already so is left (the same op
/// twice changes nothing).
fn apply_to_chain(chain: &mut super::Chain, vm: &VmId, op: &DiskOp) {
    let here = chain.snapshot_layer(vm, &op.name).is_some();
    match op.action {
        DiskAction::Snapshot if !here => chain.snapshot(vm, &op.name),
        DiskAction::DeleteSnapshot => {
            chain.delete_snapshot_if_held(vm, &op.name);
        }
        DiskAction::Revert if here => {
            chain.revert(vm, &op.name);
        }
        _ => {}
    }
}
