//! Why a storage call was refused. A refused call changed nothing.

use super::DiskRef;
use crate::name::Name;
use krrish_core::{HostId, VmId};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    #[error("volume {0}: no such volume")]
    UnknownVolume(Name),
    #[error("volume {0}: the name is taken")]
    VolumeNameTaken(Name),
    /// The caller's `size_gib` for a new volume or image.
    #[error("size_gib: expected 1 to {max_gib} GiB, got {size_gib}")]
    SizeGib { size_gib: u64, max_gib: u64 },
    #[error("volume {volume}: the cloud already holds the maximum of {max} volumes")]
    TooManyVolumes { volume: Name, max: usize },
    #[error("volume {volume}: already attached to {attached_to}; detach it first")]
    AlreadyAttached { volume: Name, attached_to: VmId },
    #[error("volume {volume}: attached to {attached_to}, not {vm}")]
    AttachedElsewhere {
        volume: Name,
        vm: VmId,
        attached_to: VmId,
    },
    #[error("volume {volume}: not attached to any VM, so not to {vm}")]
    NotAttached { volume: Name, vm: VmId },
    #[error("volume {volume}: attached to {vm}; expected a detached volume to delete")]
    DeleteAttached { volume: Name, vm: VmId },
    #[error("vm {vm}: already has the maximum of {max} volumes attached")]
    TooManyAttached { vm: VmId, max: usize },
    /// Detached in the records, but the host of the VM it was attached to
    /// has not yet confirmed unplugging it: the guest may still write it.
    #[error("volume {volume}: still being detached from {vm} (its host has not confirmed unplugging it); try again once the volume is available")]
    StillDetaching { volume: Name, vm: VmId },
    /// A snapshot op of the VM covers the volume and its host has not yet
    /// done it: the host must still find the volume plugged in.
    #[error("volume {volume}: {vm}'s host has not yet done snapshot op {op} on it; try again once it has")]
    DiskOpPending { volume: Name, vm: VmId, op: String },
    #[error("vm {vm}: its host has not yet done snapshot op {op} on its disks (a stopped VM's wait for its next boot); try again once it has")]
    DiskOpsPending { vm: VmId, op: String },
    #[error("vm {vm}: {max} snapshot operations already wait for its host; try again once some are done")]
    TooManyDiskOps { vm: VmId, max: usize },

    #[error("vm {0}: no root disk (create it from an image first)")]
    UnknownVm(VmId),
    #[error("vm {0}: already has a root disk")]
    RootDiskExists(VmId),
    #[error("vm {vm}: the cloud already holds the maximum of {max} root disks")]
    TooManyRootDisks { vm: VmId, max: usize },
    #[error(
        "vm {vm}: volumes {} are attached; detach them before deleting the root disk",
        join(volumes)
    )]
    RootDiskHasVolumes { vm: VmId, volumes: Vec<Name> },

    #[error("{disk}: block {block} is out of range (the disk has {blocks} blocks)")]
    BlockOutOfRange {
        disk: DiskRef,
        block: u64,
        blocks: u64,
    },

    #[error("vm {vm}: no snapshot {snapshot}")]
    UnknownSnapshot { vm: VmId, snapshot: Name },
    #[error("vm {vm}: snapshot {snapshot} is still being taken (creating); read it once it is available")]
    SnapshotCreating { vm: VmId, snapshot: Name },
    #[error("vm {vm}: snapshot {snapshot} exists")]
    SnapshotNameTaken { vm: VmId, snapshot: Name },
    #[error("{disk}: already holds the maximum of {max} snapshots; delete one first")]
    TooManySnapshots { disk: DiskRef, max: usize },
    #[error("vm {vm}: snapshot {snapshot} covers volume {volume}, which is {state}; expected it attached to {vm} to revert")]
    SnapshotVolumeNotHere {
        vm: VmId,
        snapshot: Name,
        volume: Name,
        /// "detached" or "attached to vm-b".
        state: String,
    },
    #[error("vm {vm}: snapshot {snapshot} does not cover {disk}")]
    SnapshotDoesNotCover {
        vm: VmId,
        snapshot: Name,
        disk: DiskRef,
    },

    #[error("image {0}: no such image")]
    UnknownImage(Name),
    #[error("image {0}: the name is taken")]
    ImageNameTaken(Name),
    #[error("image {image}: expected a size of 1 to {max} blocks, got {blocks}")]
    ImageSize { image: Name, blocks: u64, max: u64 },
    #[error("image {image}: the repository already holds the maximum of {max} images")]
    TooManyImages { image: Name, max: usize },
    #[error("host {host}: image {image} is not syncing to it")]
    NotSyncing { host: HostId, image: Name },
    #[error("host {host}: the image caches already cover the maximum of {max} hosts")]
    TooManyHosts { host: HostId, max: usize },

    #[error("datastore {0}: no such datastore")]
    UnknownDatastore(Name),
    #[error("datastore {0}: the name is taken")]
    DatastoreNameTaken(Name),
    #[error("capacity_gib: expected 1 to {max_gib} GiB, got {capacity_gib}")]
    CapacityGib { capacity_gib: u64, max_gib: u64 },
    #[error("the cloud already holds the maximum of {max} datastores")]
    TooManyDatastores { max: usize },
    #[error("datastore {0}: in maintenance (draining); it takes no new disks")]
    DatastoreDraining(Name),
    #[error("no datastore takes new disks (every one is draining)")]
    NoActiveDatastore,
    #[error("datastore {datastore}: {need_gib} GiB needed, {free_gib} GiB free")]
    DatastoreFull {
        datastore: Name,
        need_gib: u64,
        free_gib: u64,
    },
    #[error("datastore {datastore}: {disks} disks on it and {moves} disk moves to or from it; drain it first")]
    DatastoreNotEmpty {
        datastore: Name,
        disks: usize,
        moves: usize,
    },
    #[error("datastore {0}: the last datastore cannot be deleted")]
    LastDatastore(Name),
    #[error("datastore {0}: no other datastore outside maintenance to drain it to")]
    NowhereToDrain(Name),
    #[error("datastore {0}: not in maintenance")]
    NotDraining(Name),
    #[error("{disk}: already on datastore {datastore}")]
    SameDatastore { disk: DiskRef, datastore: Name },
    #[error("{disk}: moving to datastore {to}; try again once the move is done (or cancel it)")]
    DiskMoving { disk: DiskRef, to: Name },
    #[error("{0}: not moving")]
    NotMoving(DiskRef),
    #[error("{disk}: moving as part of the drain of datastore {datastore}; resume the datastore to call the drain off")]
    DrainMove { disk: DiskRef, datastore: Name },
    #[error("{max} disk moves already queued or copying; try again once some are done")]
    TooManyDiskMoves { max: usize },
    #[error("give either `vm` (its root disk) or `volume`: exactly one disk")]
    OneDisk,
    #[error("threshold_percent: expected 0 to 100, got {0}")]
    ThresholdPercent(u64),
}

fn join(names: &[Name]) -> String {
    let names: Vec<&str> = names.iter().map(Name::as_str).collect();
    names.join(", ")
}

impl StorageError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        use StorageError as E;
        match self {
            E::UnknownVolume(_)
            | E::UnknownVm(_)
            | E::UnknownSnapshot { .. }
            | E::UnknownImage(_)
            | E::UnknownDatastore(_) => "not-found",
            E::VolumeNameTaken(_)
            | E::RootDiskExists(_)
            | E::SnapshotNameTaken { .. }
            | E::ImageNameTaken(_)
            | E::DatastoreNameTaken(_) => "exists",
            E::AlreadyAttached { .. } => "already-associated",
            E::AttachedElsewhere { .. } | E::NotAttached { .. } => "not-associated",
            E::DeleteAttached { .. }
            | E::RootDiskHasVolumes { .. }
            | E::StillDetaching { .. }
            | E::DiskOpPending { .. }
            | E::DiskOpsPending { .. }
            | E::SnapshotVolumeNotHere { .. }
            | E::SnapshotCreating { .. }
            | E::DatastoreDraining(_)
            | E::NoActiveDatastore
            | E::DatastoreNotEmpty { .. }
            | E::LastDatastore(_)
            | E::NowhereToDrain(_)
            | E::DiskMoving { .. }
            | E::DrainMove { .. } => "in-use",
            E::TooManyVolumes { .. }
            | E::TooManyAttached { .. }
            | E::TooManyRootDisks { .. }
            | E::TooManySnapshots { .. }
            | E::TooManyDiskOps { .. }
            | E::TooManyImages { .. }
            | E::TooManyHosts { .. }
            | E::TooManyDatastores { .. }
            | E::TooManyDiskMoves { .. } => "limit",
            E::DatastoreFull { .. } => "no-capacity",
            E::SizeGib { .. }
            | E::ImageSize { .. }
            | E::BlockOutOfRange { .. }
            | E::SnapshotDoesNotCover { .. }
            | E::CapacityGib { .. }
            | E::SameDatastore { .. }
            | E::OneDisk
            | E::ThresholdPercent(_) => "invalid-request",
            E::NotDraining(_) | E::NotMoving(_) => "not-associated",
            E::NotSyncing { .. } => "not-associated",
        }
    }
}
