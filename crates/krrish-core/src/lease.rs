//! The host side of the DFS lease: when an agent must stop its own VMs.
//!
//! The DFS grants a host a lease of `duration_ms` each time it renews. A host
//! that cannot renew (storage network down, or the lease revoked by the
//! controller) stops every VM `lead_ms` before its last lease could run out,
//! measured from when it *asked* — earlier than the DFS's grant — so the
//! host always stops first. The controller, for its part, waits for the
//! DFS's expiry plus a margin before starting the VMs elsewhere.
//!
//! [`LeaseTable`] is the DFS's side: grants, revocations and what it tells
//! the controller about renewals. The simulated world and the real lease
//! service (`krrish dfs`) both keep their leases in one.

use crate::{HostId, VmId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a host runs, as its lease renewals tell the DFS: every domain on
/// it, live copies going out or coming in included (vSphere HA reads an
/// isolated host's "power-on file" on the datastore the same way). The
/// storage network carries it while the management network is cut: a live
/// copy in doubt (one side rebooted or fenced, the other cut off) is
/// settled by the cut-off side's list — a VM missing from a list taken
/// after the other side went down runs on neither.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerOnList {
    pub vms: Vec<VmId>,
    /// The list was taken no earlier than this long ago (the DFS's clock,
    /// at the read): its freshness, proven by a grant the host had already
    /// received when it took the list.
    pub taken_ago_ms: u64,
}

/// VMs one power-on list holds, at most (beyond, the list is not kept:
/// cut short, it would say VMs are not there).
pub const POWER_ON_VMS_MAX: usize = 4_096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseKeeper {
    pub duration_ms: u64,
    pub renew_every_ms: u64,
    pub lead_ms: u64,
    /// When the last renewal that succeeded was *requested*.
    last_ok_asked_ms: Option<u64>,
    self_fenced: bool,
}

impl LeaseKeeper {
    pub fn new(duration_ms: u64, renew_every_ms: u64, lead_ms: u64) -> Self {
        assert!(
            renew_every_ms + lead_ms < duration_ms,
            "lease would lapse between renewals"
        );
        Self {
            duration_ms,
            renew_every_ms,
            lead_ms,
            last_ok_asked_ms: None,
            self_fenced: false,
        }
    }

    /// A renewal asked at `asked_ms` succeeded.
    pub fn renewed(&mut self, asked_ms: u64) {
        self.last_ok_asked_ms = Some(asked_ms);
        self.self_fenced = false;
    }

    /// Whether VMs must be stopped now (true once per lapse).
    pub fn must_self_fence(&mut self, now_ms: u64) -> bool {
        let Some(asked) = self.last_ok_asked_ms else {
            return false; // never held a lease: nothing runs under one
        };
        if self.self_fenced || now_ms + self.lead_ms < asked + self.duration_ms {
            return false;
        }
        self.self_fenced = true;
        true
    }

    /// The instant at which [`Self::must_self_fence`] turns true.
    pub fn self_fence_at(&self) -> Option<u64> {
        if self.self_fenced {
            return None;
        }
        self.last_ok_asked_ms
            .map(|a| (a + self.duration_ms).saturating_sub(self.lead_ms))
    }

    pub fn holds_lease(&self, now_ms: u64) -> bool {
        self.last_ok_asked_ms
            .is_some_and(|a| now_ms < a + self.duration_ms)
    }
}

/// One host's lease as the DFS records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// When the last grant runs out (0: none outstanding).
    pub expires_at_ms: u64,
    /// The controller revoked it: renewals are refused until it is
    /// reinstated. A revocation outlives the host's reboots.
    pub revoked: bool,
    /// When the host last renewed (the storage network's heartbeat, as the
    /// DFS reports it to the controller).
    pub renewed_at_ms: Option<u64>,
}

/// Why the DFS refused a renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseRefusal {
    Revoked,
    /// The host asked for a lease longer than the DFS grants.
    TooLong {
        asked_ms: u64,
        max_ms: u64,
    },
}

impl std::fmt::Display for LeaseRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseRefusal::Revoked => write!(f, "lease revoked by the controller"),
            LeaseRefusal::TooLong { asked_ms, max_ms } => write!(
                f,
                "asked for a {asked_ms} ms lease; this DFS grants at most {max_ms} ms"
            ),
        }
    }
}

/// The DFS's leases, one per host, in host order. Sans-IO: every call
/// takes the DFS's own clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseTable {
    records: BTreeMap<HostId, LeaseRecord>,
    /// Grants this table cannot know of (made before a restart of the
    /// service that keeps it) may run until here.
    unknown_grants_until_ms: u64,
    /// When the service keeping this table (re)started: renewals before
    /// it are not in the table, so a host missing from it says nothing
    /// until every live host has had time to renew since.
    listening_since_ms: u64,
    /// Each host's latest power-on list, and the instant (this table's
    /// clock) it was taken after.
    power_on: BTreeMap<HostId, (Vec<VmId>, u64)>,
}

/// A read of the DFS's renewals: for each host that renewed since the
/// service (re)started, how long ago its last renewal was; and how long the
/// service has been listening (a host that renewed before is not listed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRenewals {
    pub hosts: Vec<(HostId, u64)>,
    pub listening_for_ms: u64,
    /// Each host's latest power-on list, where its renewals told one since
    /// the service started.
    pub power_on: Vec<(HostId, PowerOnList)>,
}

impl LeaseTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table whose service just started at `now_ms` and may have granted
    /// leases of up to `max_duration_ms` before it (they were in memory):
    /// a revocation waits them out, and the hosts in `revoked` stay revoked.
    pub fn after_restart(
        now_ms: u64,
        max_duration_ms: u64,
        revoked: impl IntoIterator<Item = HostId>,
    ) -> Self {
        let records = revoked
            .into_iter()
            .map(|h| {
                let r = LeaseRecord {
                    expires_at_ms: 0,
                    revoked: true,
                    renewed_at_ms: None,
                };
                (h, r)
            })
            .collect();
        LeaseTable {
            records,
            unknown_grants_until_ms: now_ms + max_duration_ms,
            listening_since_ms: now_ms,
            power_on: BTreeMap::new(),
        }
    }

    /// A lease held from the start (the simulated world's hosts boot
    /// holding one).
    pub fn grant_at_start(&mut self, host: HostId, now_ms: u64, duration_ms: u64) {
        self.records.insert(
            host,
            LeaseRecord {
                expires_at_ms: now_ms + duration_ms,
                revoked: false,
                renewed_at_ms: Some(now_ms),
            },
        );
    }

    pub fn get(&self, host: &HostId) -> Option<&LeaseRecord> {
        self.records.get(host)
    }

    /// Every host's record, in host order.
    pub fn iter(&self) -> impl Iterator<Item = (&HostId, &LeaseRecord)> {
        self.records.iter()
    }

    /// Renews `host`'s lease for `duration_ms` from `now_ms`; returns when
    /// it expires. Refused while revoked, and beyond `max_ms` if given.
    pub fn renew(
        &mut self,
        now_ms: u64,
        host: &HostId,
        duration_ms: u64,
        max_ms: Option<u64>,
    ) -> Result<u64, LeaseRefusal> {
        if let Some(max_ms) = max_ms.filter(|m| duration_ms > *m) {
            return Err(LeaseRefusal::TooLong {
                asked_ms: duration_ms,
                max_ms,
            });
        }
        let r = self.records.entry(host.clone()).or_insert(LeaseRecord {
            expires_at_ms: 0,
            revoked: false,
            renewed_at_ms: None,
        });
        if r.revoked {
            return Err(LeaseRefusal::Revoked);
        }
        r.expires_at_ms = r.expires_at_ms.max(now_ms + duration_ms);
        r.renewed_at_ms = Some(now_ms);
        Ok(r.expires_at_ms)
    }

    /// `host`'s power-on list, taken no earlier than `taken_after_ms`: it
    /// replaces an older one (a list taken before the one held is no news).
    /// Returns whether the VMs listed changed (for the service's log).
    pub fn power_on_list(
        &mut self,
        host: &HostId,
        mut vms: Vec<VmId>,
        taken_after_ms: u64,
    ) -> bool {
        let held = self.power_on.get(host);
        if held.is_some_and(|(_, at)| *at > taken_after_ms) {
            return false;
        }
        vms.sort();
        vms.dedup();
        if vms.len() > POWER_ON_VMS_MAX {
            return false; // cut short, it would say VMs are not there
        }
        let changed = held.is_none_or(|(was, _)| *was != vms);
        self.power_on.insert(host.clone(), (vms, taken_after_ms));
        changed
    }

    /// Whether `host` holds a lease the DFS honours at `now_ms`.
    pub fn valid(&self, host: &HostId, now_ms: u64) -> bool {
        self.records
            .get(host)
            .is_some_and(|r| now_ms < r.expires_at_ms)
    }

    /// Revokes `host`'s lease; returns when the last lease it may hold
    /// expires (never earlier than grants made before a restart).
    pub fn revoke(&mut self, host: &HostId) -> u64 {
        let r = self.records.entry(host.clone()).or_insert(LeaseRecord {
            expires_at_ms: 0,
            revoked: true,
            renewed_at_ms: None,
        });
        r.revoked = true;
        r.expires_at_ms.max(self.unknown_grants_until_ms)
    }

    /// Lets `host` renew again; whether it was revoked.
    pub fn reinstate(&mut self, host: &HostId) -> bool {
        match self.records.get_mut(host) {
            Some(r) if r.revoked => {
                r.revoked = false;
                true
            }
            _ => false,
        }
    }

    /// The host rebooted: grants to its earlier boot died with it (the
    /// simulated world knows this; a real DFS waits them out).
    pub fn forget_grants(&mut self, host: &HostId) {
        if let Some(r) = self.records.get_mut(host) {
            r.expires_at_ms = 0;
        }
    }

    /// For each host that renewed since the service started, how long ago
    /// its last renewal was; and how long the service has listened.
    pub fn renewals(&self, now_ms: u64) -> LeaseRenewals {
        LeaseRenewals {
            hosts: self
                .records
                .iter()
                .filter_map(|(h, r)| {
                    r.renewed_at_ms
                        .map(|at| (h.clone(), now_ms.saturating_sub(at)))
                })
                .collect(),
            listening_for_ms: now_ms.saturating_sub(self.listening_since_ms),
            power_on: self
                .power_on
                .iter()
                .map(|(h, (vms, after))| {
                    let list = PowerOnList {
                        vms: vms.clone(),
                        taken_ago_ms: now_ms.saturating_sub(*after),
                    };
                    (h.clone(), list)
                })
                .collect(),
        }
    }

    /// The service keeping this table restarted at `now_ms` (the simulated
    /// world's DFS): it forgot every renewal (a host is listed again once it
    /// renews), keeps its revocations (written down), and a revocation
    /// waits out any lease of up to `max_duration_ms` it may have granted
    /// before. The grants themselves stay: the hosts still hold them.
    pub fn service_restarted(&mut self, now_ms: u64, max_duration_ms: u64) {
        for r in self.records.values_mut() {
            r.renewed_at_ms = None;
        }
        self.power_on.clear();
        self.listening_since_ms = now_ms;
        self.unknown_grants_until_ms = self.unknown_grants_until_ms.max(now_ms + max_duration_ms);
    }

    /// The hosts now revoked (what a service keeps across restarts).
    pub fn revoked(&self) -> Vec<HostId> {
        self.records
            .iter()
            .filter(|(_, r)| r.revoked)
            .map(|(h, _)| h.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> HostId {
        HostId::new(s)
    }

    #[test]
    fn a_restarted_service_forgets_renewals_keeps_revocations_and_grants() {
        let mut t = LeaseTable::new();
        t.renew(1_000, &h("h1"), 30_000, None).unwrap();
        t.renew(1_000, &h("h2"), 30_000, None).unwrap();
        t.power_on_list(&h("h1"), vec![VmId::new("vm-1")], 1_000);
        t.revoke(&h("h2"));
        t.service_restarted(5_000, 30_000);
        // Nobody is listed until it renews again (nor what it runs), and
        // the read says how long the service has been listening ...
        assert_eq!(
            t.renewals(6_000),
            LeaseRenewals {
                hosts: vec![],
                listening_for_ms: 1_000,
                power_on: vec![],
            }
        );
        // ... the hosts still hold what was granted ...
        assert!(t.valid(&h("h1"), 30_999));
        // ... a revocation waits out what may have been granted before ...
        assert_eq!(t.revoke(&h("h1")), 35_000);
        // ... and what was revoked stays revoked.
        assert_eq!(
            t.renew(6_000, &h("h2"), 30_000, None),
            Err(LeaseRefusal::Revoked)
        );
        assert_eq!(t.revoked(), vec![h("h1"), h("h2")]);
    }

    #[test]
    fn a_revoked_lease_is_not_renewed_and_its_expiry_is_reported() {
        let mut t = LeaseTable::new();
        assert_eq!(t.renew(1_000, &h("h1"), 30_000, Some(60_000)), Ok(31_000));
        assert!(t.valid(&h("h1"), 30_999));
        assert!(!t.valid(&h("h1"), 31_000));
        assert_eq!(t.revoke(&h("h1")), 31_000);
        assert_eq!(
            t.renew(6_000, &h("h1"), 30_000, None),
            Err(LeaseRefusal::Revoked)
        );
        assert_eq!(t.revoked(), vec![h("h1")]);
        assert!(t.reinstate(&h("h1")));
        assert!(!t.reinstate(&h("h1")));
        assert_eq!(t.renew(7_000, &h("h1"), 30_000, None), Ok(37_000));
        assert_eq!(t.renewals(9_000).hosts, vec![(h("h1"), 2_000)]);
        assert_eq!(t.renewals(9_000).listening_for_ms, 9_000);
    }

    #[test]
    fn a_renewal_never_shortens_a_grant_and_long_asks_are_refused() {
        let mut t = LeaseTable::new();
        assert_eq!(t.renew(0, &h("h1"), 30_000, None), Ok(30_000));
        assert_eq!(t.renew(1_000, &h("h1"), 5_000, None), Ok(30_000));
        assert_eq!(
            t.renew(2_000, &h("h1"), 90_000, Some(60_000)),
            Err(LeaseRefusal::TooLong {
                asked_ms: 90_000,
                max_ms: 60_000
            })
        );
    }

    #[test]
    fn a_power_on_list_is_replaced_by_a_fresher_one_only() {
        let mut t = LeaseTable::new();
        let vms = |names: &[&str]| names.iter().copied().map(VmId::new).collect::<Vec<_>>();
        assert!(t.power_on_list(&h("h1"), vms(&["vm-2", "vm-1", "vm-2"]), 1_000));
        assert!(t.power_on_list(&h("h2"), vec![], 1_500));
        // The same VMs again: kept (fresher), not a change.
        assert!(!t.power_on_list(&h("h1"), vms(&["vm-1", "vm-2"]), 1_000));
        let list = |vms, taken_ago_ms| PowerOnList { vms, taken_ago_ms };
        assert_eq!(
            t.renewals(3_000).power_on,
            vec![
                (h("h1"), list(vms(&["vm-1", "vm-2"]), 2_000)),
                (h("h2"), list(vec![], 1_500))
            ]
        );
        // A list taken before the one held (a renewal held up) is no news.
        assert!(!t.power_on_list(&h("h1"), vec![], 900));
        assert!(t.power_on_list(&h("h2"), vms(&["vm-3"]), 2_500));
        assert_eq!(
            t.renewals(3_000).power_on,
            vec![
                (h("h1"), list(vms(&["vm-1", "vm-2"]), 2_000)),
                (h("h2"), list(vms(&["vm-3"]), 500))
            ]
        );
    }

    #[test]
    fn after_a_restart_revocations_hold_and_unknown_grants_are_waited_out() {
        let mut t = LeaseTable::after_restart(100_000, 60_000, [h("h2")]);
        assert_eq!(
            t.renew(100_500, &h("h2"), 30_000, None),
            Err(LeaseRefusal::Revoked)
        );
        // h3 renewed before the restart, as far as the table can tell.
        assert_eq!(t.revoke(&h("h3")), 160_000);
        assert!(t.renewals(101_000).hosts.is_empty());
        assert_eq!(t.renewals(101_000).listening_for_ms, 1_000);
    }

    #[test]
    fn a_host_never_seen_revokes_at_once() {
        let mut t = LeaseTable::new();
        assert_eq!(t.revoke(&h("h9")), 0);
    }

    #[test]
    fn stops_before_the_dfs_expiry_and_only_once() {
        let mut k = LeaseKeeper::new(30_000, 10_000, 5_000);
        k.renewed(1_000);
        assert!(!k.must_self_fence(25_999));
        assert_eq!(k.self_fence_at(), Some(26_000));
        assert!(k.must_self_fence(26_000));
        assert!(!k.must_self_fence(27_000));
        k.renewed(40_000);
        assert!(!k.must_self_fence(41_000));
    }
}
