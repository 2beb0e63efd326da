//! RDB health and failover on the controller's timer: the same data-plane
//! read as the load balancers' checks ([`crate::Cloud::run_health_checks`]
//! runs both). Each cluster keeps its own check clock.

use super::{Rdb, Rdbs};
use crate::health::Reached;
use crate::network::dataplane::the_host;
use crate::network::dataplane::Fabric;
use krrish_core::VmId;
use std::collections::BTreeSet;

/// Whether a member serves now: its guest runs exactly once, on a host
/// whose VM network (bond1) carries traffic.
fn probe(fabric: &dyn Fabric, vm: &VmId) -> (Option<krrish_core::HostId>, Result<(), String>) {
    match the_host(fabric, vm) {
        Ok(h) if fabric.vm_network_up(&h) => (Some(h), Ok(())),
        Ok(h) => (
            Some(h.clone()),
            Err(format!(
                "{h}'s VM network (bond1) carries no traffic: {vm} is unreachable"
            )),
        ),
        Err(why) => (None, Err(why)),
    }
}

/// One round of checks on a cluster; lines for what changed.
fn check(r: &mut Rdb, fabric: &dyn Fabric) -> Vec<String> {
    let mut lines = Vec::new();
    let name = r.name.clone();
    let was_shared = r.shared_host().cloned();
    let (unhealthy_at, healthy_at) = (r.unhealthy_threshold, r.healthy_threshold);
    for m in r.members.iter_mut() {
        let (host, result) = probe(fabric, &m.vm);
        m.host = host;
        match m.checks.record(result, healthy_at, unhealthy_at) {
            Some(Reached::Healthy) if !m.healthy => {
                m.healthy = true;
                lines.push(format!(
                    "rdb {name}: vm {} healthy again after {healthy_at} good checks",
                    m.vm
                ));
            }
            Some(Reached::Unhealthy) if m.healthy => {
                m.healthy = false;
                lines.push(format!(
                    "rdb {name}: vm {} unhealthy after {unhealthy_at} failed checks: {}",
                    m.vm,
                    m.checks.failing.as_deref().unwrap_or("")
                ));
            }
            _ => {}
        }
    }
    match r.primary.clone() {
        Some(p) if !r.member(&p).expect("member").healthy => {
            let s = r.standby().expect("there is a primary").clone();
            if r.member(&s).expect("member").ready() {
                r.epoch += 1;
                r.primary = Some(s.clone());
                r.latest_primary = s.clone();
                let epoch = r.epoch;
                r.member_mut(&s).epoch = epoch;
                lines.push(format!(
                    "rdb {name}: primary {p} down; standby {s} promoted to primary at epoch {epoch}"
                ));
            } else {
                r.primary = None;
                lines.push(format!(
                    "rdb {name}: primary {p} down and standby {s} not healthy: no primary until {p} (the newest data) is back"
                ));
            }
        }
        Some(_) => {}
        None => {
            let latest = r.latest_primary.clone();
            if r.member(&latest).expect("member").ready() {
                r.primary = Some(latest.clone());
                lines.push(format!(
                    "rdb {name}: {latest} (the latest primary) back; primary again at epoch {}",
                    r.epoch
                ));
            }
        }
    }
    // Members reached this round learn the epoch; a stale one is demoted.
    let epoch = r.epoch;
    let primary = r.primary.clone();
    for m in r.members.iter_mut() {
        if m.checks.failures == 0 && m.epoch < epoch {
            let role = if primary.as_ref() == Some(&m.vm) {
                "primary"
            } else {
                "standby"
            };
            lines.push(format!(
                "rdb {name}: vm {} back with stale epoch {}; rejoins as {role} at epoch {epoch}",
                m.vm, m.epoch
            ));
            m.epoch = epoch;
        }
    }
    let shared = r.shared_host().cloned();
    if shared != was_shared {
        match shared {
            Some(h) => lines.push(format!(
                "rdb {name} degraded: members share {h} (anti-affinity is not enforced on failover yet)"
            )),
            None => lines.push(format!("rdb {name}: members on different hosts again")),
        }
    }
    lines
}

impl Rdbs {
    /// When the next check is due.
    pub fn health_checks_due(&self) -> Option<u64> {
        self.rdbs.values().map(|r| r.next_check_ms).min()
    }

    /// The members of every cluster due by `due_by`.
    pub fn health_check_targets(&self, due_by: u64) -> Vec<VmId> {
        let vms: BTreeSet<&VmId> = self
            .rdbs
            .values()
            .filter(|r| r.next_check_ms <= due_by)
            .flat_map(|r| r.members.iter().map(|m| &m.vm))
            .collect();
        vms.into_iter().cloned().collect()
    }

    /// Runs the checks of every cluster due by `due_by` whose members the
    /// fabric knows both of (read at `now_ms`); the others stay due.
    pub fn run_health_checks(
        &mut self,
        due_by: u64,
        now_ms: u64,
        fabric: &dyn Fabric,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        for r in self.rdbs.values_mut() {
            if r.next_check_ms > due_by || !r.members.iter().all(|m| fabric.knows(&m.vm)) {
                continue;
            }
            lines.extend(check(r, fabric));
            put_off(r, now_ms);
        }
        lines
    }

    /// The data plane could not be read: nothing judged, due again an
    /// interval later.
    pub fn skip_health_checks(&mut self, due_by: u64, now_ms: u64) {
        for r in self.rdbs.values_mut() {
            if r.next_check_ms <= due_by {
                put_off(r, now_ms);
            }
        }
    }

    /// A controller restored from its store checks every cluster from
    /// `now_ms` on.
    pub fn restart_health_checks(&mut self, now_ms: u64) {
        for r in self.rdbs.values_mut() {
            r.next_check_ms = now_ms;
        }
    }
}

fn put_off(r: &mut Rdb, now_ms: u64) {
    let next = r.next_check_ms + r.interval_ms;
    r.next_check_ms = if next > now_ms {
        next
    } else {
        now_ms + r.interval_ms
    };
}
