//! [`VmTable`]: the VM records, indexed by the hosts they involve, so a
//! heartbeat from one host costs that host's VMs and not the whole cloud's.
//! Reads go through `Deref` to the map; every way to change a record
//! (`get_mut`, `insert`, `values_mut`) marks it dirty, and the index is
//! brought up to date from the dirty records before it is read — so it
//! cannot drift from the records, whatever the code between does.

use super::types::{DownReason, VmRecord, VmState};
use crate::ids::{HostId, VmId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

#[derive(Clone, Debug, Default)]
struct Index {
    /// Every host a VM's record names (its home, where its state places it,
    /// the host whose failed fence holds it down, who settles a migration in
    /// doubt) → the VMs.
    by_host: BTreeMap<HostId, BTreeSet<VmId>>,
    /// Where each VM is recorded running → the VMs (what a quiet host's
    /// heartbeat must list, no more, no less).
    running_on: BTreeMap<HostId, BTreeSet<VmId>>,
    /// VMs running away from home (on a spare, or anywhere else): the only
    /// candidates for failback.
    away: BTreeSet<VmId>,
    /// The same, under their home (what a returning home can take back).
    away_by_home: BTreeMap<HostId, BTreeSet<VmId>>,
    /// VMs a live host's report has lately not listed (`missed_reports`).
    missed: BTreeSet<VmId>,
    /// What each VM was indexed under, to undo it.
    of_vm: BTreeMap<VmId, Indexed>,
    /// VMs in any state but running or stopped: everything with a deadline,
    /// a back-off or a wait (what the timers and the placement sweeps look
    /// at; in a quiet cloud, nothing).
    unsettled: BTreeSet<VmId>,
    /// Changed since the index was last brought up to date.
    dirty: BTreeSet<VmId>,
    /// Bumped whenever changed records are re-indexed.
    version: u64,
}

#[derive(Clone, Debug, Default)]
pub struct VmTable {
    records: BTreeMap<VmId, VmRecord>,
    index: RefCell<Index>,
}

/// The hosts a record names, at most four (home, two in a migration, the
/// settler).
pub(super) fn hosts_of(r: &VmRecord) -> Vec<HostId> {
    let mut v = Vec::with_capacity(4);
    v.push(r.spec.home.clone());
    match &r.state {
        VmState::Running { host }
        | VmState::Booting { host, .. }
        | VmState::HostDown { host }
        | VmState::WaitingForRepair { host }
        | VmState::RetryingBoot { host, .. }
        | VmState::Evacuating { host } => v.push(host.clone()),
        VmState::Migrating { from, to, .. } => {
            v.push(from.clone());
            v.push(to.clone());
        }
        VmState::WaitingForCapacity { failed_host, .. } => v.push(failed_host.clone()),
        VmState::Down {
            reason: DownReason::FenceFailed { host },
        } => v.push(host.clone()),
        VmState::Scheduling { .. }
        | VmState::Error { .. }
        | VmState::Down { .. }
        | VmState::Stopped => {}
    }
    if let Some((h, _)) = &r.settled_by {
        v.push(h.clone());
    }
    if let Some(h) = &r.stop_unconfirmed_on {
        v.push(h.clone());
    }
    v.sort();
    v.dedup();
    v
}

/// What one VM was indexed under.
#[derive(Clone, Debug, Default)]
struct Indexed {
    hosts: Vec<HostId>,
    running_on: Option<HostId>,
    /// Its home, when it runs away from it.
    away_from: Option<HostId>,
}

fn running_on(r: &VmRecord) -> Option<HostId> {
    match &r.state {
        VmState::Running { host } => Some(host.clone()),
        _ => None,
    }
}

/// Adds or removes `id` in the set under `key`, dropping empty sets.
fn set_member(map: &mut BTreeMap<HostId, BTreeSet<VmId>>, key: &HostId, id: &VmId, on: bool) {
    if on {
        map.entry(key.clone()).or_default().insert(id.clone());
    } else if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

fn flag(set: &mut BTreeSet<VmId>, id: &VmId, on: bool) {
    if on {
        set.insert(id.clone());
    } else {
        set.remove(id);
    }
}

fn is_unsettled(r: &VmRecord) -> bool {
    !matches!(r.state, VmState::Running { .. } | VmState::Stopped)
        || r.stop_unconfirmed_on.is_some()
}

impl VmTable {
    pub fn insert(&mut self, rec: VmRecord) {
        let id = rec.spec.id.clone();
        self.index.get_mut().dirty.insert(id.clone());
        self.records.insert(id, rec);
    }

    /// Drops a record (the index forgets it before the next read).
    pub fn remove(&mut self, id: &VmId) -> Option<VmRecord> {
        let rec = self.records.remove(id)?;
        self.index.get_mut().dirty.insert(id.clone());
        Some(rec)
    }

    /// The record to change (marked dirty: re-indexed before the next read).
    pub fn get_mut(&mut self, id: &VmId) -> Option<&mut VmRecord> {
        let rec = self.records.get_mut(id)?;
        self.index.get_mut().dirty.insert(id.clone());
        Some(rec)
    }

    /// Every record to change (all marked dirty: for rare, cloud-wide moves).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut VmRecord> {
        let index = self.index.get_mut();
        index.dirty.extend(self.records.keys().cloned());
        self.records.values_mut()
    }

    /// Brings the index up to date with the records changed since.
    fn refresh(&self) {
        let mut ix = self.index.borrow_mut();
        if ix.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut ix.dirty);
        ix.version += 1;
        for id in dirty {
            let old = ix.of_vm.remove(&id).unwrap_or_default();
            let rec = self.records.get(&id);
            let running = rec.and_then(running_on);
            let new = Indexed {
                hosts: rec.map(hosts_of).unwrap_or_default(),
                away_from: rec
                    .filter(|r| running.as_ref().is_some_and(|h| h != &r.spec.home))
                    .map(|r| r.spec.home.clone()),
                running_on: running,
            };
            for h in old.hosts.iter().filter(|h| !new.hosts.contains(h)) {
                set_member(&mut ix.by_host, h, &id, false);
            }
            for h in new.hosts.iter().filter(|h| !old.hosts.contains(h)) {
                set_member(&mut ix.by_host, h, &id, true);
            }
            if old.running_on != new.running_on {
                if let Some(h) = &old.running_on {
                    set_member(&mut ix.running_on, h, &id, false);
                }
                if let Some(h) = &new.running_on {
                    set_member(&mut ix.running_on, h, &id, true);
                }
            }
            flag(&mut ix.away, &id, new.away_from.is_some());
            if old.away_from != new.away_from {
                if let Some(h) = &old.away_from {
                    set_member(&mut ix.away_by_home, h, &id, false);
                }
                if let Some(h) = &new.away_from {
                    set_member(&mut ix.away_by_home, h, &id, true);
                }
            }
            flag(&mut ix.unsettled, &id, rec.is_some_and(is_unsettled));
            flag(
                &mut ix.missed,
                &id,
                rec.is_some_and(|r| r.missed_reports > 0),
            );
            if !new.hosts.is_empty() {
                ix.of_vm.insert(id, new);
            }
        }
    }

    /// Changes whenever any record may have changed: equal versions, equal
    /// records.
    pub fn version(&self) -> u64 {
        self.refresh();
        self.index.borrow().version
    }

    /// The VMs whose record names `host`, in id order, with their records.
    pub fn on_host(&self, host: &HostId) -> Vec<(&VmId, &VmRecord)> {
        self.refresh();
        let ix = self.index.borrow();
        ix.by_host
            .get(host)
            .into_iter()
            .flatten()
            .filter_map(|id| self.records.get_key_value(id))
            .collect()
    }

    /// Whether any VM whose record names `host` is unsettled (booting,
    /// migrating, evacuating, waiting…): in a quiet cloud, never — and the
    /// heartbeat's reconciliation of those states can be skipped.
    pub fn any_unsettled_on(&self, host: &HostId) -> bool {
        self.refresh();
        let ix = self.index.borrow();
        if ix.unsettled.is_empty() {
            return false;
        }
        ix.by_host
            .get(host)
            .is_some_and(|vms| vms.iter().any(|id| ix.unsettled.contains(id)))
    }

    /// Whether the VMs recorded running on `host` are exactly `running`
    /// (its report), with none of them missing from a recent report: a
    /// quiet host whose heartbeat needs no reconciliation.
    pub fn runs_exactly(&self, host: &HostId, running: &[VmId]) -> bool {
        self.refresh();
        let ix = self.index.borrow();
        let empty = BTreeSet::new();
        let here = ix.running_on.get(host).unwrap_or(&empty);
        // A report lists its VMs in id order (agents build it from ordered
        // maps): then one walk of both compares them; an unsorted report
        // is compared by lookups.
        let same = || {
            here.iter().eq(running.iter())
                || (!running.is_sorted() && running.iter().all(|vm| here.contains(vm)))
        };
        here.len() == running.len()
            && same()
            && (ix.missed.is_empty() || here.iter().all(|vm| !ix.missed.contains(vm)))
    }

    /// The VMs running away from their home, in id order, with their
    /// records.
    pub fn away_from_home(&self) -> Vec<(&VmId, &VmRecord)> {
        self.refresh();
        let ix = self.index.borrow();
        ix.away
            .iter()
            .filter_map(|id| self.records.get_key_value(id))
            .collect()
    }

    /// The VMs whose home is `home` running elsewhere, in id order, with
    /// their records.
    pub fn away_from(&self, home: &HostId) -> Vec<(&VmId, &VmRecord)> {
        self.refresh();
        let ix = self.index.borrow();
        ix.away_by_home
            .get(home)
            .into_iter()
            .flatten()
            .filter_map(|id| self.records.get_key_value(id))
            .collect()
    }

    /// The VMs in any state but running or stopped, in id order, with
    /// their records.
    pub fn unsettled(&self) -> Vec<(&VmId, &VmRecord)> {
        self.refresh();
        let ix = self.index.borrow();
        ix.unsettled
            .iter()
            .filter_map(|id| self.records.get_key_value(id))
            .collect()
    }

    /// Whether the index matches a fresh one built from the records: the
    /// test of the dirty-marking discipline.
    pub fn index_is_exact(&self) -> bool {
        self.refresh();
        let mut fresh = VmTable::default();
        for r in self.records.values() {
            fresh.insert(r.clone());
        }
        fresh.refresh();
        let (a, b) = (self.index.borrow(), fresh.index.borrow());
        a.by_host == b.by_host
            && a.unsettled == b.unsettled
            && a.running_on == b.running_on
            && a.away == b.away
            && a.away_by_home == b.away_by_home
            && a.missed == b.missed
    }
}

impl Deref for VmTable {
    type Target = BTreeMap<VmId, VmRecord>;
    fn deref(&self) -> &Self::Target {
        &self.records
    }
}

impl PartialEq for VmTable {
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}
