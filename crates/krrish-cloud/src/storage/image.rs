//! The DFS image repository, each host's local image cache, and root disks.
//!
//! Images live on the DFS and never change. A host keeps local copies in
//! its cache. A VM may boot on a host that lacks its image (DESIGN §2.2):
//!
//! 1. [`Storage::create_root_disk`] backs the disk by the DFS copy at once
//!    (state `boots_from_dfs`) and, unless one is already running, starts a
//!    background sync of the image to the host (cache state `syncing`);
//!    the [`BootPlan`] says which, so the controller issues the sync.
//! 2. [`Storage::image_synced`] marks the host's copy `ready` and re-links
//!    every disk on that host booted from the DFS copy of that image to the
//!    local copy (state `relinked`). Reads through the disk go to the local
//!    copy from then on and see the same content.
//!
//! [`Storage::capture`] flattens a VM's root disk chain over its image into
//! a new image that reads the same as the disk did.

use super::{Chain, Storage, StorageError, VmSnapshot, BLOCKS_PER_GIB, BLOCK_BYTES};
use crate::name::Name;
use krrish_core::{HostId, VmId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An image's content: block `b` reads `overrides[b]` if present, else a
/// fingerprint of (`seed`, `b`). Registered images are all seed; captured
/// ones carry the blocks the VM wrote as overrides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageContent {
    pub seed: u64,
    pub overrides: BTreeMap<u64, u64>,
}

impl ImageContent {
    pub fn read(&self, block: u64) -> u64 {
        match self.overrides.get(&block) {
            Some(&d) => d,
            None => fingerprint(self.seed, block),
        }
    }
}

/// The content of block `block` of an image registered with `seed`
/// (splitmix64, so neighbouring blocks and seeds differ).
pub fn fingerprint(seed: u64, block: u64) -> u64 {
    krrish_core::timings::mix64(seed ^ block.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    Registered,
    /// Captured from this VM's root disk.
    Captured {
        vm: VmId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: Name,
    pub blocks: u64,
    pub source: ImageSource,
    pub content: ImageContent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheState {
    /// The image is being copied from the DFS to the host.
    Syncing,
    /// The host holds a local copy.
    Ready,
}

/// A host's copy of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedImage {
    pub state: CacheState,
    /// When the sync started.
    pub sync_started_ms: u64,
    /// The local copy, once `Ready`; reads of relinked disks go here.
    pub copy: Option<ImageContent>,
}

/// Which copy of its image a root disk's base reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackingState {
    /// The host had the image at boot: the local copy.
    Local,
    /// Booted from the DFS copy; the host's copy is syncing.
    BootsFromDfs,
    /// Booted from the DFS copy, then re-linked to the synced local copy.
    Relinked,
}

/// What the controller must do to boot a VM whose root disk was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootPlan {
    /// Boot from the host's local copy.
    Local,
    /// Boot now from the DFS copy. `sync_started`: this call started the
    /// image's background sync to the host (issue it; call
    /// [`Storage::image_synced`] when done); `false`: one was running.
    FromDfs { sync_started: bool },
}

/// A VM's root disk: a chain over an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootDisk {
    pub vm: VmId,
    pub image: Name,
    pub host: HostId,
    pub backing: BackingState,
    pub(crate) chain: Chain,
    /// The VM's snapshots (they cover this disk and the volumes listed).
    pub(crate) snapshots: BTreeMap<Name, VmSnapshot>,
    /// Snapshot ops the VM's host has not confirmed ([`super::disk_ops`]).
    #[serde(default)]
    pub(crate) disk_ops: Vec<super::DiskOp>,
    /// The last op's number.
    #[serde(default)]
    pub(crate) disk_ops_seq: u64,
    /// The last op the model's chains have done (when the simulated host
    /// did it, or at its host's confirmation).
    #[serde(default)]
    pub(crate) disk_ops_applied: u64,
    /// Which root disk of this VM id it is (from 1, cloud-wide): a VM
    /// terminated and launched again under its name gets a new disk, never
    /// the old one's file (0: saved before disks were numbered).
    #[serde(default)]
    pub incarnation: u64,
    /// The datastore it lives on ([`super::datastore`]).
    #[serde(default = "super::datastore::default_datastore")]
    pub datastore: Name,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageView {
    pub name: Name,
    pub blocks: u64,
    pub source: ImageSource,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootDiskView {
    pub vm: VmId,
    pub image: Name,
    pub host: HostId,
    pub backing: BackingState,
    pub datastore: Name,
    pub blocks: u64,
    pub snapshots: usize,
    /// Data held in the chain's layers beyond the image.
    pub stored_bytes: u64,
}

impl Storage {
    /// Adds an image to the DFS repository; block `b` reads
    /// [`fingerprint`]`(content_seed, b)`.
    pub fn register_image(
        &mut self,
        name: Name,
        blocks: u64,
        content_seed: u64,
    ) -> Result<(), StorageError> {
        self.check_new_image(&name, blocks)?;
        self.images.insert(
            name.clone(),
            Image {
                name,
                blocks,
                source: ImageSource::Registered,
                content: ImageContent {
                    seed: content_seed,
                    overrides: BTreeMap::new(),
                },
            },
        );
        Ok(())
    }

    /// The API's CreateImage: [`Self::register_image`] with the size in
    /// GiB, checked (and refused) in that unit, the caller's.
    pub fn create_image(
        &mut self,
        name: Name,
        size_gib: u64,
        content_seed: u64,
    ) -> Result<(), StorageError> {
        if self.images.contains_key(&name) {
            return Err(StorageError::ImageNameTaken(name));
        }
        let max_gib = self.limits.image_blocks_max / BLOCKS_PER_GIB;
        if size_gib == 0 || size_gib > max_gib {
            return Err(StorageError::SizeGib { size_gib, max_gib });
        }
        self.register_image(name, size_gib * BLOCKS_PER_GIB, content_seed)
    }

    fn check_new_image(&self, name: &Name, blocks: u64) -> Result<(), StorageError> {
        if self.images.contains_key(name) {
            return Err(StorageError::ImageNameTaken(name.clone()));
        }
        let max = self.limits.image_blocks_max;
        if blocks == 0 || blocks > max {
            return Err(StorageError::ImageSize {
                image: name.clone(),
                blocks,
                max,
            });
        }
        if self.images.len() >= self.limits.images_max {
            return Err(StorageError::TooManyImages {
                image: name.clone(),
                max: self.limits.images_max,
            });
        }
        Ok(())
    }

    /// Creates `vm`'s root disk from `image` on `host` (see the module doc).
    pub fn create_root_disk(
        &mut self,
        vm: VmId,
        image: &Name,
        host: HostId,
        now_ms: u64,
    ) -> Result<BootPlan, StorageError> {
        if self.root_disks.contains_key(&vm) {
            return Err(StorageError::RootDiskExists(vm));
        }
        let blocks = self.image(image)?.blocks;
        if self.root_disks.len() >= self.limits.root_disks_max {
            return Err(StorageError::TooManyRootDisks {
                max: self.limits.root_disks_max,
                vm,
            });
        }
        self.check_host_room(&host)?;
        let datastore = self.datastore_for_new_disk(None, 1)?;
        let (backing, plan) = self.boot_on(&host, image, now_ms);
        self.root_disks_made += 1;
        let incarnation = self.root_disks_made;
        self.root_disks.insert(
            vm.clone(),
            RootDisk {
                vm,
                image: image.clone(),
                host,
                backing,
                chain: Chain::new(blocks),
                snapshots: BTreeMap::new(),
                disk_ops: Vec::new(),
                disk_ops_seq: 0,
                disk_ops_applied: 0,
                incarnation,
                datastore,
            },
        );
        Ok(plan)
    }

    fn check_host_room(&self, host: &HostId) -> Result<(), StorageError> {
        let max = self.limits.hosts_max;
        if !self.host_caches.contains_key(host) && self.host_caches.len() >= max {
            return Err(StorageError::TooManyHosts {
                host: host.clone(),
                max,
            });
        }
        Ok(())
    }

    /// How a disk over `image` boots on `host`, starting the image's sync
    /// there if the host neither holds nor is syncing it.
    fn boot_on(&mut self, host: &HostId, image: &Name, now_ms: u64) -> (BackingState, BootPlan) {
        let cache = self.host_caches.entry(host.clone()).or_default();
        match cache.get(image).map(|c| c.state) {
            Some(CacheState::Ready) => (BackingState::Local, BootPlan::Local),
            Some(CacheState::Syncing) => (
                BackingState::BootsFromDfs,
                BootPlan::FromDfs {
                    sync_started: false,
                },
            ),
            None => {
                cache.insert(
                    image.clone(),
                    CachedImage {
                        state: CacheState::Syncing,
                        sync_started_ms: now_ms,
                        copy: None,
                    },
                );
                (
                    BackingState::BootsFromDfs,
                    BootPlan::FromDfs { sync_started: true },
                )
            }
        }
    }

    /// `vm` now runs on `host` (failover to a spare, migration): its chain
    /// stays (the DFS holds the VM's files), its base is re-evaluated as at
    /// boot — the local copy if `host` has the image, else the DFS copy
    /// while a sync runs. Moving to the host it is on changes nothing.
    pub fn move_root_disk(
        &mut self,
        vm: &VmId,
        host: HostId,
        now_ms: u64,
    ) -> Result<BootPlan, StorageError> {
        let d = self.root_disk(vm)?;
        if d.host == host {
            return Ok(match d.backing {
                BackingState::BootsFromDfs => BootPlan::FromDfs {
                    sync_started: false,
                },
                BackingState::Local | BackingState::Relinked => BootPlan::Local,
            });
        }
        let image = d.image.clone();
        self.check_host_room(&host)?;
        let (backing, plan) = self.boot_on(&host, &image, now_ms);
        let d = self.root_disks.get_mut(vm).expect("checked");
        d.host = host;
        d.backing = backing;
        Ok(plan)
    }

    /// Each root disk's VM and the host its disk is based on now.
    pub fn root_disk_hosts(&self) -> impl Iterator<Item = (&VmId, &HostId)> {
        self.root_disks.iter().map(|(vm, d)| (vm, &d.host))
    }

    /// The background sync of `image` to `host` completed: the host's copy
    /// is ready and the disks booted from the DFS copy are re-linked to it.
    /// Returns the VMs whose disks were re-linked.
    pub fn image_synced(&mut self, host: &HostId, image: &Name) -> Result<Vec<VmId>, StorageError> {
        let content = self.image(image)?.content.clone();
        let cached = self
            .host_caches
            .get_mut(host)
            .and_then(|c| c.get_mut(image))
            .filter(|c| c.state == CacheState::Syncing)
            .ok_or_else(|| StorageError::NotSyncing {
                host: host.clone(),
                image: image.clone(),
            })?;
        cached.state = CacheState::Ready;
        cached.copy = Some(content);
        let mut relinked = Vec::new();
        for d in self.root_disks.values_mut() {
            if &d.host == host && &d.image == image && d.backing == BackingState::BootsFromDfs {
                d.backing = BackingState::Relinked;
                relinked.push(d.vm.clone());
            }
        }
        Ok(relinked)
    }

    /// Block `block` of `d`'s base, from the copy its backing names.
    pub(crate) fn base_read(&self, d: &RootDisk, block: u64) -> u64 {
        match d.backing {
            BackingState::BootsFromDfs => self.images[&d.image].content.read(block),
            BackingState::Local | BackingState::Relinked => self.host_caches[&d.host][&d.image]
                .copy
                .as_ref()
                .expect("a ready cache holds its copy")
                .read(block),
        }
    }

    /// A new image, `name`, holding `vm`'s root disk as it reads now: its
    /// chain flattened over its image.
    pub fn capture(&mut self, vm: &VmId, name: Name) -> Result<(), StorageError> {
        self.check_vm_disks_not_moving(vm)?;
        let d = self.root_disk(vm)?;
        // Its disk as the calls before left it: not before its host has
        // done their snapshot work (a revert, say).
        if let Some(op) = d.disk_ops.first() {
            return Err(StorageError::DiskOpsPending {
                vm: vm.clone(),
                op: op.to_string(),
            });
        }
        self.check_new_image(&name, d.chain.blocks())?;
        let base = &self.image(&d.image)?.content;
        let mut overrides = base.overrides.clone();
        overrides.extend(d.chain.flatten());
        let image = Image {
            name: name.clone(),
            blocks: d.chain.blocks(),
            source: ImageSource::Captured { vm: vm.clone() },
            content: ImageContent {
                seed: base.seed,
                overrides,
            },
        };
        self.images.insert(name, image);
        Ok(())
    }

    /// Deletes `vm`'s root disk and its snapshots (their layers on volumes
    /// it no longer holds are merged away). Refused while volumes are
    /// attached. The hosts' image caches stay.
    pub fn delete_root_disk(&mut self, vm: &VmId) -> Result<(), StorageError> {
        self.root_disk(vm)?;
        let volumes = self.attached_to(vm);
        if !volumes.is_empty() {
            return Err(StorageError::RootDiskHasVolumes {
                vm: vm.clone(),
                volumes,
            });
        }
        self.root_disks.remove(vm).expect("checked");
        // Every layer of its snapshots left on volumes goes: those of its
        // records, and of deletes its host had not yet done (a snapshot
        // never taken has none). Merging changes no volume's content.
        for vol in self.volumes.values_mut() {
            for snap in vol.chain.snapshots_of(vm) {
                vol.chain.delete_snapshot(vm, &snap);
            }
        }
        Ok(())
    }

    /// Every image, in name order.
    pub fn describe_images(&self) -> Vec<ImageView> {
        self.images
            .values()
            .map(|i| ImageView {
                name: i.name.clone(),
                blocks: i.blocks,
                source: i.source.clone(),
            })
            .collect()
    }

    pub fn describe_root_disk(&self, vm: &VmId) -> Result<RootDiskView, StorageError> {
        let d = self.root_disk(vm)?;
        Ok(RootDiskView {
            vm: d.vm.clone(),
            image: d.image.clone(),
            host: d.host.clone(),
            backing: d.backing,
            datastore: d.datastore.clone(),
            blocks: d.chain.blocks(),
            snapshots: d.snapshots.len(),
            stored_bytes: d.chain.stored_blocks() * BLOCK_BYTES,
        })
    }

    /// The images `host` holds or is syncing, in name order.
    pub fn describe_host_cache(&self, host: &HostId) -> Vec<(Name, CacheState)> {
        self.host_caches
            .get(host)
            .map(|c| c.iter().map(|(n, c)| (n.clone(), c.state)).collect())
            .unwrap_or_default()
    }
}
