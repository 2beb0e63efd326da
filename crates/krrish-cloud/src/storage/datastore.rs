//! Datastores (DFS pools) and storage live migration: every disk — a VM's
//! root disk or a volume — lives on one datastore; a disk move copies it to
//! another while its VM runs, as vSphere's Storage vMotion and QEMU's
//! `blockdev-mirror` do. The notes' uses: drain a datastore before shrinking
//! it, and balance load between datastores.
//!
//! The model, sans-IO (time comes in as `now_ms`):
//! - A datastore has a capacity in GiB; what its disks take is their
//!   footprint ([`Storage::footprint_gib`]: a thick volume its size, a thin
//!   one what it has allocated, a root disk its differencing layers), plus
//!   what moves on their way to it have reserved.
//! - A move is queued at once (its target's room reserved) and copies when
//!   one of [`DISK_MOVES_AT_ONCE`] slots is free, at [`DISK_COPY_MIB_PER_S`].
//!   Who copies is fixed when the copy starts: the hypervisor of the host
//!   the disk's VM runs on (a mirror: the guest's writes go to both copies)
//!   or, for a detached volume or a VM that runs nowhere, the DFS itself.
//! - A mirror dies with its host: when the VM leaves that host (its host
//!   failed and it failed over, it was live-migrated, it stopped) the copy
//!   is abandoned — the half copy on the target is discarded, the disk stays
//!   where it was, unharmed. A DFS copy of a VM's disk is abandoned when the
//!   VM starts (it writes the source). Drains queue their disks again;
//!   an operator's move is reported and not retried.
//! - While a disk moves, calls that change its layers or its attachment
//!   (snapshots, revert, capture, attach, detach, delete) are refused.

use super::disk_moves::Copier;
use super::{DiskRef, Storage, StorageError, BLOCKS_PER_GIB};
use crate::name::Name;
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The datastore every cloud starts with: the DFS as one pool.
pub const DEFAULT_DATASTORE: &str = "dfs";
/// Its capacity (1 PiB): it holds every disk until operators add others.
pub const DEFAULT_DATASTORE_CAPACITY_GIB: u64 = 1 << 20;
/// How fast a disk is copied between datastores (MiB/s): 20 GiB in 102 s.
pub const DISK_COPY_MIB_PER_S: u64 = 200;
/// Copies under way at once, cloud-wide (the rest wait in the queue).
pub const DISK_MOVES_AT_ONCE: usize = 2;
/// Moves queued or copying at once.
pub const DISK_MOVES_MAX: usize = 256;
/// Datastores in the cloud.
pub const DATASTORES_MAX: usize = 64;
/// Balancing's default: usage may differ by this many percentage points.
pub const BALANCE_THRESHOLD_PERCENT: u64 = 10;
/// Moves one balancing call plans at most.
pub const BALANCE_MOVES_MAX: usize = 16;

/// The default datastore's name.
pub fn default_datastore() -> Name {
    Name::parse("datastore", DEFAULT_DATASTORE).expect("a valid name")
}

/// A pool of the DFS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datastore {
    pub capacity_gib: u64,
    /// Being drained (maintenance): its disks move away, no new disk or
    /// move comes to it.
    #[serde(default)]
    pub draining: bool,
}

/// Why a disk moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveCause {
    Operator,
    Drain,
    Balance,
}

impl MoveCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Drain => "drain",
            Self::Balance => "balance",
        }
    }
}

/// A disk on its way from one datastore to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskMove {
    pub disk: DiskRef,
    pub from: Name,
    pub to: Name,
    /// Its footprint, reserved on `to` until the move ends.
    pub gib: u64,
    pub cause: MoveCause,
    /// When it was queued.
    pub queued_ms: u64,
    /// Set when the copy starts: who copies it, and when it completes.
    #[serde(default)]
    pub copying: Option<(Copier, u64)>,
    /// A mirror past its due time whose host has not been heard from
    /// since: it lands at the host's next report (no timer needed).
    #[serde(default)]
    pub awaiting_report: bool,
}

/// What putting a datastore in maintenance did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainPlan {
    /// Its disks' moves, queued.
    pub queued: Vec<DiskMove>,
    /// Its disks that fit on no other datastore now (tried again later).
    pub waiting: Vec<DiskRef>,
    /// Moves that were on their way to it, called off.
    pub called_off: usize,
}

/// A datastore as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatastoreView {
    pub name: Name,
    pub capacity_gib: u64,
    /// Footprint of the disks on it.
    pub used_gib: u64,
    /// Room reserved by moves on their way to it.
    pub reserved_gib: u64,
    pub used_percent: u64,
    pub disks: usize,
    /// `active`, `draining` (disks still on it) or `drained`.
    pub state: String,
}

/// A disk move as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskMoveView {
    pub disk: String,
    pub from: Name,
    pub to: Name,
    pub gib: u64,
    pub cause: MoveCause,
    /// `queued`, or `copying (mirror on HOST)` / `copying (dfs)`.
    pub state: String,
    pub done_at_ms: Option<u64>,
}

/// How long copying `gib` takes.
pub fn copy_ms(gib: u64) -> u64 {
    gib * 1024 * 1000 / DISK_COPY_MIB_PER_S
}

fn ceil_gib(blocks: u64) -> u64 {
    blocks.div_ceil(BLOCKS_PER_GIB).max(1)
}

impl Storage {
    fn datastore(&self, ds: &Name) -> Result<&Datastore, StorageError> {
        self.datastores
            .get(ds)
            .ok_or_else(|| StorageError::UnknownDatastore(ds.clone()))
    }

    /// The datastore `disk` lives on.
    pub fn datastore_of(&self, disk: &DiskRef) -> Result<&Name, StorageError> {
        match disk {
            DiskRef::Root(vm) => Ok(&self.root_disk(vm)?.datastore),
            DiskRef::Volume(v) => Ok(&self.volume(v)?.datastore),
        }
    }

    /// What `disk` takes on its datastore, in GiB (at least 1): a thick
    /// volume its size, a thin one the blocks it has allocated, a root
    /// disk the data of its differencing layers (the image lives in the
    /// repository); snapshot layers count.
    pub fn footprint_gib(&self, disk: &DiskRef) -> Result<u64, StorageError> {
        Ok(match disk {
            DiskRef::Root(vm) => ceil_gib(self.root_disk(vm)?.chain.stored_blocks()),
            DiskRef::Volume(v) => {
                let v = self.volume(v)?;
                ceil_gib(v.allocated_blocks().max(v.chain.stored_blocks()))
            }
        })
    }

    /// Every disk, in order: root disks by VM, then volumes by name.
    fn disks(&self) -> impl Iterator<Item = (DiskRef, &Name)> {
        let roots = self
            .root_disks
            .iter()
            .map(|(vm, d)| (DiskRef::Root(vm.clone()), &d.datastore));
        let vols = self
            .volumes
            .iter()
            .map(|(n, v)| (DiskRef::Volume(n.clone()), &v.datastore));
        roots.chain(vols)
    }

    /// GiB taken on `ds` by its disks, and reserved by moves coming to it.
    fn usage(&self, ds: &Name) -> (u64, u64) {
        let used = self
            .disks()
            .filter(|(_, on)| *on == ds)
            .map(|(d, _)| self.footprint_gib(&d).unwrap_or(0))
            .sum();
        let reserved = self
            .disk_moves
            .iter()
            .filter(|m| &m.to == ds)
            .map(|m| m.gib)
            .sum();
        (used, reserved)
    }

    fn free_gib(&self, ds: &Name) -> u64 {
        let (used, reserved) = self.usage(ds);
        self.datastores
            .get(ds)
            .map_or(0, |d| d.capacity_gib.saturating_sub(used + reserved))
    }

    /// Per mille of `ds` taken once the moves queued are done (what
    /// balancing weighs): its disks, less those leaving, plus those coming.
    fn planned_permille(&self, ds: &Name) -> u64 {
        let (used, reserved) = self.usage(ds);
        let leaving: u64 = self
            .disk_moves
            .iter()
            .filter(|m| &m.from == ds)
            .map(|m| m.gib)
            .sum();
        let cap = self.datastores.get(ds).map_or(1, |d| d.capacity_gib.max(1));
        (used + reserved).saturating_sub(leaving) * 1000 / cap
    }

    /// Where a new disk taking `gib` goes: `asked` if given (it must
    /// exist, not be draining and have the room), else the datastore not
    /// draining with the most free room (ties: name order), if it has the
    /// room.
    pub(crate) fn datastore_for_new_disk(
        &self,
        asked: Option<&Name>,
        gib: u64,
    ) -> Result<Name, StorageError> {
        let ds = match asked {
            Some(ds) => {
                if self.datastore(ds)?.draining {
                    return Err(StorageError::DatastoreDraining(ds.clone()));
                }
                ds.clone()
            }
            None => self
                .datastores
                .iter()
                .filter(|(_, d)| !d.draining)
                .max_by(|(a, _), (b, _)| self.free_gib(a).cmp(&self.free_gib(b)).then(b.cmp(a)))
                .map(|(n, _)| n.clone())
                .ok_or(StorageError::NoActiveDatastore)?,
        };
        let free = self.free_gib(&ds);
        if gib > free {
            return Err(StorageError::DatastoreFull {
                datastore: ds,
                need_gib: gib,
                free_gib: free,
            });
        }
        Ok(ds)
    }

    /// The move `disk` is part of, if any.
    pub fn disk_move(&self, disk: &DiskRef) -> Option<&DiskMove> {
        self.disk_moves.iter().find(|m| &m.disk == disk)
    }

    /// Refuses a change to `disk` while it moves.
    pub(crate) fn check_not_moving(&self, disk: &DiskRef) -> Result<(), StorageError> {
        match self.disk_move(disk) {
            Some(m) => Err(StorageError::DiskMoving {
                disk: disk.clone(),
                to: m.to.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a change to `vm`'s disks (its root disk and the volumes
    /// attached to it) while one of them moves.
    pub(crate) fn check_vm_disks_not_moving(&self, vm: &VmId) -> Result<(), StorageError> {
        self.check_not_moving(&DiskRef::Root(vm.clone()))?;
        for v in self.attached_to(vm) {
            self.check_not_moving(&DiskRef::Volume(v))?;
        }
        Ok(())
    }

    // ------------------------------------------------------------- calls

    pub fn create_datastore(&mut self, name: Name, capacity_gib: u64) -> Result<(), StorageError> {
        if self.datastores.contains_key(&name) {
            return Err(StorageError::DatastoreNameTaken(name));
        }
        if capacity_gib == 0 || capacity_gib > DEFAULT_DATASTORE_CAPACITY_GIB {
            return Err(StorageError::CapacityGib {
                capacity_gib,
                max_gib: DEFAULT_DATASTORE_CAPACITY_GIB,
            });
        }
        if self.datastores.len() >= DATASTORES_MAX {
            return Err(StorageError::TooManyDatastores {
                max: DATASTORES_MAX,
            });
        }
        self.datastores.insert(
            name,
            Datastore {
                capacity_gib,
                draining: false,
            },
        );
        Ok(())
    }

    /// Deletes an empty datastore (the notes' "shrink": drain, then
    /// remove). Refused while a disk lives on it or moves to or from it,
    /// and for the last one.
    pub fn delete_datastore(&mut self, ds: &Name) -> Result<(), StorageError> {
        self.datastore(ds)?;
        let disks = self.disks().filter(|(_, on)| *on == ds).count();
        let moves = self
            .disk_moves
            .iter()
            .filter(|m| &m.to == ds || &m.from == ds)
            .count();
        if disks + moves > 0 {
            return Err(StorageError::DatastoreNotEmpty {
                datastore: ds.clone(),
                disks,
                moves,
            });
        }
        if self.datastores.len() == 1 {
            return Err(StorageError::LastDatastore(ds.clone()));
        }
        self.datastores.remove(ds);
        Ok(())
    }

    /// Queues `disk`'s move to `to` (an operator's, a drain's or a
    /// balance's), reserving its room there.
    pub fn queue_disk_move(
        &mut self,
        disk: DiskRef,
        to: &Name,
        cause: MoveCause,
        now_ms: u64,
    ) -> Result<&DiskMove, StorageError> {
        let from = self.datastore_of(&disk)?.clone();
        let target = self.datastore(to)?;
        if &from == to {
            return Err(StorageError::SameDatastore {
                disk,
                datastore: from,
            });
        }
        if target.draining {
            return Err(StorageError::DatastoreDraining(to.clone()));
        }
        self.check_not_moving(&disk)?;
        if let DiskRef::Volume(v) = &disk {
            // A volume being unplugged may still be written by its old VM.
            self.volume(v)?.available()?;
        }
        let vm = match &disk {
            DiskRef::Root(vm) => Some(vm.clone()),
            DiskRef::Volume(v) => self.volume(v)?.attached_to.clone(),
        };
        if let Some(vm) = &vm {
            if let Some(op) = self.root_disk(vm)?.disk_ops.first() {
                return Err(StorageError::DiskOpsPending {
                    vm: vm.clone(),
                    op: op.to_string(),
                });
            }
        }
        let gib = self.footprint_gib(&disk)?;
        let free = self.free_gib(to);
        if gib > free {
            return Err(StorageError::DatastoreFull {
                datastore: to.clone(),
                need_gib: gib,
                free_gib: free,
            });
        }
        if self.disk_moves.len() >= DISK_MOVES_MAX {
            return Err(StorageError::TooManyDiskMoves {
                max: DISK_MOVES_MAX,
            });
        }
        self.disk_moves.push(DiskMove {
            disk,
            from,
            to: to.clone(),
            gib,
            cause,
            queued_ms: now_ms,
            copying: None,
            awaiting_report: false,
        });
        Ok(self.disk_moves.last().expect("pushed"))
    }

    /// Cancels `disk`'s move (queued or copying): its half copy is
    /// discarded, the disk stays where it is.
    pub fn cancel_disk_move(&mut self, disk: &DiskRef) -> Result<DiskMove, StorageError> {
        let Some(i) = self.disk_moves.iter().position(|m| &m.disk == disk) else {
            return Err(StorageError::NotMoving(disk.clone()));
        };
        let m = &self.disk_moves[i];
        if m.cause == MoveCause::Drain && self.datastores.get(&m.from).is_some_and(|d| d.draining) {
            // The drain would queue it again at once.
            return Err(StorageError::DrainMove {
                disk: disk.clone(),
                datastore: m.from.clone(),
            });
        }
        Ok(self.disk_moves.remove(i))
    }

    /// Puts `ds` in maintenance: every disk on it is queued to move to the
    /// datastore not draining with the most free room that fits it.
    /// Returns the moves queued and the disks that fit nowhere yet (they
    /// are tried again by [`Storage::requeue_drains`]).
    pub fn drain_datastore(&mut self, ds: &Name, now_ms: u64) -> Result<DrainPlan, StorageError> {
        self.datastore(ds)?;
        if !self.datastores.iter().any(|(n, d)| n != ds && !d.draining) {
            return Err(StorageError::NowhereToDrain(ds.clone()));
        }
        self.datastores.get_mut(ds).expect("checked").draining = true;
        // Moves coming to it are called off.
        let before = self.disk_moves.len();
        self.disk_moves.retain(|m| &m.to != ds);
        let called_off = before - self.disk_moves.len();
        let (queued, waiting) = self.requeue_drain_of(ds, now_ms);
        Ok(DrainPlan {
            queued,
            waiting,
            called_off,
        })
    }

    /// Takes `ds` out of maintenance: drain moves not yet copying are
    /// called off (copies under way finish).
    pub fn resume_datastore(&mut self, ds: &Name) -> Result<usize, StorageError> {
        if !self.datastore(ds)?.draining {
            return Err(StorageError::NotDraining(ds.clone()));
        }
        self.datastores.get_mut(ds).expect("checked").draining = false;
        let before = self.disk_moves.len();
        self.disk_moves
            .retain(|m| !(&m.from == ds && m.cause == MoveCause::Drain && m.copying.is_none()));
        Ok(before - self.disk_moves.len())
    }

    fn requeue_drain_of(&mut self, ds: &Name, now_ms: u64) -> (Vec<DiskMove>, Vec<DiskRef>) {
        let staying: Vec<DiskRef> = self
            .disks()
            .filter(|(d, on)| *on == ds && self.disk_move(d).is_none())
            .map(|(d, _)| d)
            .collect();
        let (mut queued, mut waiting) = (Vec::new(), Vec::new());
        for disk in staying {
            let Ok(gib) = self.footprint_gib(&disk) else {
                continue;
            };
            let target = self
                .datastores
                .iter()
                .filter(|(n, d)| *n != ds && !d.draining && self.free_gib(n) >= gib)
                .max_by(|(a, _), (b, _)| self.free_gib(a).cmp(&self.free_gib(b)).then(b.cmp(a)))
                .map(|(n, _)| n.clone());
            let queued_one = target.and_then(|to| {
                self.queue_disk_move(disk.clone(), &to, MoveCause::Drain, now_ms)
                    .ok()
                    .cloned()
            });
            match queued_one {
                Some(m) => queued.push(m),
                None => waiting.push(disk),
            }
        }
        (queued, waiting)
    }

    /// Disks of draining datastores not moving (their move was abandoned,
    /// or they fit nowhere before) are queued again.
    pub fn requeue_drains(&mut self, now_ms: u64) -> Vec<DiskMove> {
        let draining: Vec<Name> = self
            .datastores
            .iter()
            .filter(|(_, d)| d.draining)
            .map(|(n, _)| n.clone())
            .collect();
        let mut queued = Vec::new();
        for ds in draining {
            queued.extend(self.requeue_drain_of(&ds, now_ms).0);
        }
        queued
    }

    /// Plans and queues moves that bring the datastores' usage (not
    /// draining ones) within `threshold_percent` of each other: each moves
    /// a disk from the fullest to the emptiest, the largest that narrows
    /// the gap, at most [`BALANCE_MOVES_MAX`].
    pub fn balance_datastores(&mut self, threshold_percent: u64, now_ms: u64) -> Vec<DiskMove> {
        let mut planned = Vec::new();
        while planned.len() < BALANCE_MOVES_MAX {
            let mut active: Vec<(u64, Name)> = self
                .datastores
                .iter()
                .filter(|(_, d)| !d.draining)
                .map(|(n, _)| (self.planned_permille(n), n.clone()))
                .collect();
            active.sort();
            let (Some((low, to)), Some((high, from))) =
                (active.first().cloned(), active.last().cloned())
            else {
                break;
            };
            if high - low <= threshold_percent * 10 {
                break;
            }
            let cap = |n: &Name| self.datastores[n].capacity_gib.max(1);
            let gap_after = |gib: u64| {
                let high_after = high.saturating_sub(gib * 1000 / cap(&from));
                let low_after = low + gib * 1000 / cap(&to);
                high_after.abs_diff(low_after)
            };
            let mut candidates: Vec<(u64, DiskRef)> = self
                .disks()
                .filter(|(d, on)| *on == &from && self.disk_move(d).is_none())
                .filter_map(|(d, _)| Some((self.footprint_gib(&d).ok()?, d)))
                .filter(|(gib, _)| gap_after(*gib) < high - low)
                .collect();
            // The largest first; ties: disk order.
            candidates.sort_by(|(a, da), (b, db)| b.cmp(a).then(da.cmp(db)));
            let next = candidates.into_iter().find_map(|(_, d)| {
                self.queue_disk_move(d, &to, MoveCause::Balance, now_ms)
                    .ok()
                    .cloned()
            });
            match next {
                Some(m) => planned.push(m),
                None => break,
            }
        }
        planned
    }

    /// The datastores' invariants: every disk on one that exists; each
    /// move of a disk that exists, from where it lives to another that
    /// exists, one move a disk; copies at most [`DISK_MOVES_AT_ONCE`].
    pub fn check_datastores(&self) -> Result<(), String> {
        for (disk, on) in self.disks() {
            if !self.datastores.contains_key(on) {
                return Err(format!("{disk}: on datastore {on}, which does not exist"));
            }
        }
        let mut seen: Vec<&DiskRef> = Vec::new();
        for m in &self.disk_moves {
            let on = self
                .datastore_of(&m.disk)
                .map_err(|e| format!("a move of a disk gone: {e}"))?;
            if on != &m.from || m.from == m.to {
                return Err(format!(
                    "{}: moves {} -> {} but lives on {on}",
                    m.disk, m.from, m.to
                ));
            }
            if !self.datastores.contains_key(&m.to) {
                return Err(format!(
                    "{}: moves to {}, which does not exist",
                    m.disk, m.to
                ));
            }
            if seen.contains(&&m.disk) {
                return Err(format!("{}: two moves", m.disk));
            }
            seen.push(&m.disk);
        }
        let copying = self
            .disk_moves
            .iter()
            .filter(|m| m.copying.is_some())
            .count();
        if copying > DISK_MOVES_AT_ONCE || self.disk_moves.len() > DISK_MOVES_MAX {
            return Err(format!(
                "{copying} copies and {} moves at once",
                self.disk_moves.len()
            ));
        }
        Ok(())
    }

    // ---------------------------------------------------------- describe

    pub fn describe_datastores(&self) -> Vec<DatastoreView> {
        self.datastores
            .iter()
            .map(|(n, d)| {
                let (used, reserved) = self.usage(n);
                let disks = self.disks().filter(|(_, on)| *on == n).count();
                let state = match (d.draining, disks) {
                    (false, _) => "active",
                    (true, 0) => "drained",
                    (true, _) => "draining",
                };
                DatastoreView {
                    name: n.clone(),
                    capacity_gib: d.capacity_gib,
                    used_gib: used,
                    reserved_gib: reserved,
                    used_percent: (used + reserved) * 100 / d.capacity_gib.max(1),
                    disks,
                    state: state.into(),
                }
            })
            .collect()
    }

    pub fn describe_disk_moves(&self) -> Vec<DiskMoveView> {
        self.disk_moves.iter().map(DiskMove::view).collect()
    }
}

impl DiskMove {
    pub fn view(&self) -> DiskMoveView {
        DiskMoveView {
            disk: self.disk.to_string(),
            from: self.from.clone(),
            to: self.to.clone(),
            gib: self.gib,
            cause: self.cause,
            state: match &self.copying {
                None => "queued".into(),
                Some((Copier::Mirror { host, .. }, _)) => format!("copying (mirror on {host})"),
                Some((Copier::Dfs, _)) => "copying (dfs)".into(),
            },
            done_at_ms: self.copying.as_ref().map(|(_, t)| *t),
        }
    }
}

/// The datastores a new storage starts with.
pub(crate) fn initial_datastores() -> BTreeMap<Name, Datastore> {
    BTreeMap::from([(
        default_datastore(),
        Datastore {
            capacity_gib: DEFAULT_DATASTORE_CAPACITY_GIB,
            draining: false,
        },
    )])
}
