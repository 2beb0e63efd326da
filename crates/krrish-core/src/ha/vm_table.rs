//! [`VmTable`]: the VM records, indexed by the hosts they involve, so a
//! heartbeat from one host costs that host's VMs and not the whole cloud's.
//! Reads go through `Deref` to the map; every way to change a record
//! (`get_mut`, `insert`, `values_mut`) marks it dirty, and the index is
//! brought up to date from the dirty records before it is read — so it
//! cannot drift from the records, whatever the code between does.

use super::types::{VmRecord, VmState};
use crate::ids::{HostId, VmId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

#[derive(Clone, Debug, Default)]
struct Index {
    /// Every host a VM's record names (its home, where its state places it,
    /// who settles a migration in doubt) → the VMs.
    by_host: BTreeMap<HostId, BTreeSet<VmId>>,
    /// What each VM was indexed under, to undo it.
    of_vm: BTreeMap<VmId, Vec<HostId>>,
    /// VMs in any state but running or stopped: everything with a deadline,
    /// a back-off or a wait (what the timers and the placement sweeps look
    /// at; in a quiet cloud, nothing).
    unsettled: BTreeSet<VmId>,
    /// Changed since the index was last brought up to date.
    dirty: BTreeSet<VmId>,
}

#[derive(Clone, Debug, Default)]
pub struct VmTable {
    records: BTreeMap<VmId, VmRecord>,
    index: RefCell<Index>,
}

/// The hosts a record names, at most four (home, two in a migration, the
/// settler).
fn hosts_of(r: &VmRecord) -> Vec<HostId> {
    let mut v = Vec::with_capacity(4);
    v.push(r.spec.home.clone());
    match &r.state {
        VmState::Running { host }
        | VmState::Booting { host, .. }
        | VmState::HostDown { host }
        | VmState::WaitingForRepair { host }
        | VmState::Evacuating { host } => v.push(host.clone()),
        VmState::Migrating { from, to, .. } => {
            v.push(from.clone());
            v.push(to.clone());
        }
        VmState::WaitingForCapacity { failed_host, .. } => v.push(failed_host.clone()),
        VmState::Scheduling { .. } | VmState::Down { .. } | VmState::Stopped => {}
    }
    if let Some((h, _)) = &r.settled_by {
        v.push(h.clone());
    }
    v.sort();
    v.dedup();
    v
}

fn is_unsettled(r: &VmRecord) -> bool {
    !matches!(r.state, VmState::Running { .. } | VmState::Stopped)
}

impl VmTable {
    pub fn insert(&mut self, rec: VmRecord) {
        let id = rec.spec.id.clone();
        self.index.get_mut().dirty.insert(id.clone());
        self.records.insert(id, rec);
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
        for id in dirty {
            let old = ix.of_vm.remove(&id).unwrap_or_default();
            let (new, unsettled) = match self.records.get(&id) {
                Some(r) => (hosts_of(r), is_unsettled(r)),
                None => (Vec::new(), false),
            };
            for h in old.iter().filter(|h| !new.contains(h)) {
                if let Some(set) = ix.by_host.get_mut(h) {
                    set.remove(&id);
                    if set.is_empty() {
                        ix.by_host.remove(h);
                    }
                }
            }
            for h in new.iter().filter(|h| !old.contains(h)) {
                ix.by_host.entry(h.clone()).or_default().insert(id.clone());
            }
            if unsettled {
                ix.unsettled.insert(id.clone());
            } else {
                ix.unsettled.remove(&id);
            }
            if !new.is_empty() {
                ix.of_vm.insert(id, new);
            }
        }
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
        a.by_host == b.by_host && a.unsettled == b.unsettled
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
