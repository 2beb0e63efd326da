//! Volumes, disks as snapshot chains, and the DFS image repository, behind
//! one [`Storage`] facade. Sans-IO: no clock (`now_ms` comes in), no
//! randomness, `BTreeMap`s only; every collection is bounded by
//! [`StorageLimits`]; a refused call returns a [`StorageError`] and changes
//! nothing.
//!
//! - [`chain`] — a disk as a tree of differencing layers holding per-block
//!   content (`u64` fingerprints): write, read, snapshot, revert, delete
//!   snapshot (merge forward).
//! - [`volume`] — volumes (`thin`, `thick`, `thick-lazy-zeroed`) with their
//!   allocation and zeroing accounting; attach, detach, delete.
//! - [`image`] — the DFS image repository, each host's image cache, booting
//!   a root disk from the DFS while the image syncs, then re-linking; capture.
//! - [`snapshot`] — VM snapshots, block reads and writes through any disk.
//! - [`datastore`] — datastores (DFS pools) and storage live migration:
//!   disk moves queued, copied (mirrored by the VM's host, or by the DFS),
//!   drain and balance; [`disk_moves`] — the copies under way: who copies,
//!   when one lands or is abandoned.
//! - [`disk_ops`] — the snapshot work the VM's host still has to do on its
//!   real disks, and snapshots' `creating`/`available` status.
//! - [`error`] — [`StorageError`].
//!
//! The API, by family:
//! - volumes: [`Storage::create_volume`], [`Storage::attach_volume`],
//!   [`Storage::detach_volume`], [`Storage::delete_volume`],
//!   [`Storage::describe_volume`], [`Storage::describe_volumes`];
//! - images: [`Storage::create_image`] (size in GiB; [`Storage::register_image`]
//!   in blocks), [`Storage::create_root_disk`]
//!   (→ [`BootPlan`]), [`Storage::image_synced`], [`Storage::move_root_disk`],
//!   [`Storage::capture`],
//!   [`Storage::delete_root_disk`], [`Storage::describe_images`],
//!   [`Storage::describe_root_disk`], [`Storage::describe_host_cache`];
//! - blocks and snapshots: [`Storage::write`], [`Storage::read`],
//!   [`Storage::snapshot`], [`Storage::delete_snapshot`], [`Storage::revert`],
//!   [`Storage::read_at_snapshot`], [`Storage::describe_snapshots`].
//!
//! Choices the issue left open:
//! - **Snapshots are per VM**: one snapshot covers the VM's root disk and
//!   every volume attached at that moment, taken together (crash-consistent
//!   across disks). Each covered disk's chain gets a layer for it. Reverting
//!   needs every covered volume still attached to the VM (refused
//!   otherwise); volumes attached after the snapshot are left alone.
//!   Deleting a volume removes it from the snapshots that covered it.
//! - **Unwritten blocks** read as zero on a volume and as the image's
//!   content on a root disk. Blocks are 1 MiB ([`BLOCK_BYTES`]); a volume
//!   of `n` GiB has `n * 1024` blocks.
//! - **Revert** discards what was written since the last snapshot (the
//!   current top layer), as every hypervisor does; snapshots are never
//!   deleted by it.

pub(crate) mod calls;
pub mod chain;
pub mod datastore;
pub mod disk_moves;
pub mod disk_ops;
pub mod error;
pub mod image;
pub mod snapshot;
pub mod volume;

pub use chain::{Chain, Layer, LayerId};
pub use datastore::{
    Datastore, DatastoreView, DiskMove, DiskMoveView, MoveCause, DEFAULT_DATASTORE,
};
pub use disk_moves::{Copier, DiskWriter, MovesStepped, WriterOf};
pub use disk_ops::{DiskAction, DiskOp, SnapshotStatus, DISK_OPS_PENDING_MAX};
pub use error::StorageError;
pub use image::{
    BackingState, BootPlan, CacheState, CachedImage, Image, ImageContent, ImageSource, ImageView,
    RootDisk, RootDiskView,
};
pub use snapshot::{SnapshotView, VmSnapshot};
pub use volume::{Provisioning, Volume, VolumeStatus, VolumeView, WriteCost};

use crate::name::Name;
use krrish_core::{HostId, VmId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Bytes in a block, the unit of allocation, zeroing and content.
pub const BLOCK_BYTES: u64 = 1 << 20;
/// Blocks in a GiB.
pub const BLOCKS_PER_GIB: u64 = (1 << 30) / BLOCK_BYTES;

/// Upper bounds on everything the storage holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageLimits {
    /// Volumes in the cloud.
    pub volumes_max: usize,
    /// Largest volume.
    pub volume_size_gib_max: u64,
    /// Volumes attached to one VM.
    pub volumes_per_vm_max: usize,
    /// Snapshots held by one disk's chain (so a chain has at most this + 1
    /// layers, and a VM at most this many snapshots).
    pub snapshots_per_disk_max: usize,
    /// VMs with a root disk.
    pub root_disks_max: usize,
    /// Images in the DFS repository (registered and captured).
    pub images_max: usize,
    /// Largest image, in blocks.
    pub image_blocks_max: u64,
    /// Hosts with an image cache.
    pub hosts_max: usize,
}

impl Default for StorageLimits {
    fn default() -> Self {
        Self {
            volumes_max: 1024,
            volume_size_gib_max: 16 * 1024,
            volumes_per_vm_max: 16,
            snapshots_per_disk_max: 32,
            root_disks_max: 4096,
            images_max: 256,
            image_blocks_max: 1024 * BLOCKS_PER_GIB,
            hosts_max: 1024,
        }
    }
}

/// Which disk a block call is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskRef {
    /// A VM's root disk, backed by an image.
    Root(VmId),
    /// A volume, attached or not.
    Volume(Name),
}

impl fmt::Display for DiskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root(vm) => write!(f, "root disk of vm {vm}"),
            Self::Volume(v) => write!(f, "volume {v}"),
        }
    }
}

/// Every volume, root disk, image and host image cache. Compare two values
/// (or their serialized form) to see whether a call changed anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    limits: StorageLimits,
    volumes: BTreeMap<Name, Volume>,
    root_disks: BTreeMap<VmId, RootDisk>,
    images: BTreeMap<Name, Image>,
    host_caches: BTreeMap<HostId, BTreeMap<Name, CachedImage>>,
    /// Root disks ever made (each one's `incarnation`).
    #[serde(default)]
    root_disks_made: u64,
    /// The DFS's pools, and the disks on their way between them.
    #[serde(default = "datastore::initial_datastores")]
    datastores: BTreeMap<Name, Datastore>,
    #[serde(default)]
    disk_moves: Vec<DiskMove>,
}

impl Default for Storage {
    fn default() -> Self {
        Self::new(StorageLimits::default())
    }
}

impl Storage {
    pub fn new(limits: StorageLimits) -> Self {
        Self {
            limits,
            volumes: BTreeMap::new(),
            root_disks: BTreeMap::new(),
            images: BTreeMap::new(),
            host_caches: BTreeMap::new(),
            root_disks_made: 0,
            datastores: datastore::initial_datastores(),
            disk_moves: Vec::new(),
        }
    }

    pub fn limits(&self) -> &StorageLimits {
        &self.limits
    }

    /// The chain behind `disk`.
    pub fn chain(&self, disk: &DiskRef) -> Result<&Chain, StorageError> {
        match disk {
            DiskRef::Root(vm) => Ok(&self.root_disk(vm)?.chain),
            DiskRef::Volume(v) => Ok(&self.volume(v)?.chain),
        }
    }

    /// Every chain's structural invariants and the cross-references between
    /// volumes, VMs and snapshots; `Err` names the first broken one.
    pub fn check(&self) -> Result<(), String> {
        let max = self.limits.snapshots_per_disk_max;
        for (name, v) in &self.volumes {
            v.chain.check().map_err(|e| format!("volume {name}: {e}"))?;
            if v.chain.snapshot_count() > max {
                return Err(format!("volume {name}: over {max} snapshots"));
            }
            if let Some(vm) = &v.attached_to {
                if !self.root_disks.contains_key(vm) {
                    return Err(format!("volume {name}: attached to unknown {vm}"));
                }
            }
        }
        for (vm, d) in &self.root_disks {
            d.chain.check().map_err(|e| format!("vm {vm}: {e}"))?;
            // Settled (no op waits for the host), records and chain agree.
            if d.disk_ops.is_empty() && d.chain.snapshot_count() != d.snapshots.len() {
                return Err(format!("vm {vm}: snapshot records and chain differ"));
            }
            for (s, rec) in &d.snapshots {
                if self.snapshot_status(vm, &rec.tag_of(s)) == SnapshotStatus::Creating {
                    continue;
                }
                if d.chain.snapshot_layer(vm, s).is_none() {
                    return Err(format!("vm {vm} snapshot {s}: no layer on its root disk"));
                }
                for v in &rec.volumes {
                    let vol = self
                        .volumes
                        .get(v)
                        .ok_or(format!("vm {vm} snapshot {s}: volume {v} missing"))?;
                    if vol.chain.snapshot_layer(vm, s).is_none() {
                        return Err(format!("vm {vm} snapshot {s}: no layer on volume {v}"));
                    }
                }
            }
        }
        self.check_datastores()?;
        if self.volumes.len() > self.limits.volumes_max
            || self.root_disks.len() > self.limits.root_disks_max
            || self.images.len() > self.limits.images_max
            || self.host_caches.len() > self.limits.hosts_max
        {
            return Err("a collection is over its limit".into());
        }
        Ok(())
    }

    fn volume(&self, v: &Name) -> Result<&Volume, StorageError> {
        self.volumes
            .get(v)
            .ok_or_else(|| StorageError::UnknownVolume(v.clone()))
    }

    fn root_disk(&self, vm: &VmId) -> Result<&RootDisk, StorageError> {
        self.root_disks
            .get(vm)
            .ok_or_else(|| StorageError::UnknownVm(vm.clone()))
    }

    pub fn image(&self, i: &Name) -> Result<&Image, StorageError> {
        self.images
            .get(i)
            .ok_or_else(|| StorageError::UnknownImage(i.clone()))
    }

    /// Which root disk of its name `vm` has (0: none, or one saved before
    /// disks were numbered): see [`RootDisk::incarnation`].
    pub fn root_disk_incarnation(&self, vm: &VmId) -> u64 {
        self.root_disks.get(vm).map_or(0, |d| d.incarnation)
    }

    /// Volumes attached to `vm`, in name order.
    fn attached_to(&self, vm: &VmId) -> Vec<Name> {
        self.volumes
            .iter()
            .filter(|(_, v)| v.attached_to.as_ref() == Some(vm))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
