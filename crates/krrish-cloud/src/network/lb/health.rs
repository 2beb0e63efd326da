//! Health checks: when each listener's next check is due, and what a round
//! of checks does to its backends — counted towards the thresholds, put in
//! or taken out of service only when a threshold is reached (hysteresis).
//!
//! The cloud holds the check clock (each listener's `next_check_ms`) but
//! reads no machine itself: the controller asks its shell for a
//! [`FabricReport`] on the backends due ([`Network::health_check_targets`]),
//! and hands it to [`Network::run_health_checks`].

use super::serve::reach_backend;
use super::{Health, HealthCheck};
use crate::health::Reached;
use crate::name::Name;
use crate::network::dataplane::Fabric;
use crate::network::{GuestNetwork, Network};
use krrish_core::{HostId, VmId};
use std::collections::{BTreeMap, BTreeSet};

/// What the shell read off the machines for a round of health checks: for
/// each VM asked about, where its guest runs, and for those hosts whether
/// their VM network (bond1) and uplink (bond0) carry traffic. A VM it was
/// not asked about is unknown: its backends are not judged this round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FabricReport {
    pub running_on: BTreeMap<VmId, Vec<HostId>>,
    pub vm_network_up: BTreeSet<HostId>,
    pub uplink_up: BTreeSet<HostId>,
    /// What each VM's host was told to plug, where the fabric knows.
    pub plugged: BTreeMap<VmId, GuestNetwork>,
}

impl FabricReport {
    /// Reads `vms` (and their hosts) off a fabric.
    pub fn read(fabric: &dyn Fabric, vms: &[VmId]) -> Self {
        let mut r = Self::default();
        for vm in vms {
            let hosts = fabric.running_on(vm);
            for h in &hosts {
                if fabric.vm_network_up(h) {
                    r.vm_network_up.insert(h.clone());
                }
                if fabric.uplink_up(h) {
                    r.uplink_up.insert(h.clone());
                }
            }
            if let Some(g) = fabric.plugged(vm) {
                r.plugged.insert(vm.clone(), g);
            }
            r.running_on.insert(vm.clone(), hosts);
        }
        r
    }
}

impl Fabric for FabricReport {
    fn running_on(&self, vm: &VmId) -> Vec<HostId> {
        self.running_on.get(vm).cloned().unwrap_or_default()
    }
    fn vm_network_up(&self, host: &HostId) -> bool {
        self.vm_network_up.contains(host)
    }
    fn uplink_up(&self, host: &HostId) -> bool {
        self.uplink_up.contains(host)
    }
    fn knows(&self, vm: &VmId) -> bool {
        self.running_on.contains_key(vm)
    }
    fn plugged(&self, vm: &VmId) -> Option<GuestNetwork> {
        self.plugged.get(vm).cloned()
    }
}

/// A listener's check ran (or was given up) at `now_ms`: the next is one
/// interval after the one due, or after `now_ms` if that is already past.
fn put_off(x: &mut super::Listener, now_ms: u64) {
    if let Some(t) = x.next_check_ms {
        let next = t + x.health_check.interval_ms;
        x.next_check_ms = Some(if next > now_ms {
            next
        } else {
            now_ms + x.health_check.interval_ms
        });
    }
}

/// One check's verdict on a backend, counted; `Some(line)` when it moved
/// the backend in or out of service.
fn count(
    b: &mut super::Backend,
    check: &HealthCheck,
    result: Result<(), String>,
) -> Option<String> {
    let before = b.health;
    match b
        .checks
        .record(result, check.healthy_threshold, check.unhealthy_threshold)
    {
        Some(Reached::Healthy) => b.health = Health::InService,
        Some(Reached::Unhealthy) => b.health = Health::OutOfService,
        None => {}
    }
    match (before, b.health) {
        (x, y) if x == y => None,
        (Health::New, Health::InService) => Some(format!(
            "backend {} in service after {} good checks",
            b.vm, check.healthy_threshold
        )),
        (_, Health::InService) => Some(format!(
            "backend {} put back in service after {} good checks",
            b.vm, check.healthy_threshold
        )),
        (_, _) => Some(format!(
            "backend {} taken out of service after {} failed checks: {}",
            b.vm,
            check.unhealthy_threshold,
            b.checks.failing.as_deref().unwrap_or("")
        )),
    }
}

impl Network {
    /// When the next health check is due (any listener with backends).
    pub fn health_checks_due(&self) -> Option<u64> {
        self.lbs
            .values()
            .flat_map(|l| l.listeners.values())
            .filter_map(|x| x.next_check_ms)
            .min()
    }

    /// The backends of every listener due by `due_by`, once each: what the
    /// shell must read for the round.
    pub fn health_check_targets(&self, due_by: u64) -> Vec<VmId> {
        let vms: BTreeSet<&VmId> = self
            .lbs
            .values()
            .flat_map(|l| l.listeners.values())
            .filter(|x| x.next_check_ms.is_some_and(|t| t <= due_by))
            .flat_map(|x| x.backends.keys())
            .collect();
        vms.into_iter().cloned().collect()
    }

    /// Runs the checks of every listener due by `due_by` against `fabric`
    /// (read at `now_ms`, at or after `due_by`): each backend the fabric
    /// knows passes or fails one check. A listener checked is next due one
    /// interval after the check (or after `now_ms`, if that is already
    /// past); one the fabric knows none of the backends of (it became due
    /// after the read was asked) stays due. One line per backend moved in
    /// or out of service.
    pub fn run_health_checks(
        &mut self,
        due_by: u64,
        now_ms: u64,
        fabric: &dyn Fabric,
    ) -> Vec<String> {
        let mut verdicts: Vec<(Name, u16, VmId, Result<(), String>)> = Vec::new();
        let mut checked: BTreeSet<(Name, u16)> = BTreeSet::new();
        for l in self.lbs.values() {
            for x in l.listeners.values() {
                if x.next_check_ms.is_none_or(|t| t > due_by) {
                    continue;
                }
                for vm in x.backends.keys().filter(|vm| fabric.knows(vm)) {
                    let r = reach_backend(self, fabric, l, vm).map(drop);
                    verdicts.push((l.name.clone(), x.port, vm.clone(), r));
                    checked.insert((l.name.clone(), x.port));
                }
            }
        }
        let mut lines = Vec::new();
        let mut moved = false;
        for (lb, port, vm, r) in verdicts {
            let x = self
                .lbs
                .get_mut(&lb)
                .and_then(|l| l.listeners.get_mut(&port))
                .expect("listed above");
            let check = x.health_check;
            let b = x.backends.get_mut(&vm).expect("listed above");
            if let Some(line) = count(b, &check, r) {
                moved = true;
                lines.push(format!("load balancer {lb} listener {port}: {line}"));
            }
        }
        for (lb, port) in checked {
            let x = self
                .lbs
                .get_mut(&lb)
                .and_then(|l| l.listeners.get_mut(&port))
                .expect("listed above");
            put_off(x, now_ms);
        }
        if moved {
            self.changed();
        }
        lines
    }

    /// The data plane could not be read for the checks due by `due_by`:
    /// none is judged, each is due again an interval later.
    pub fn skip_health_checks(&mut self, due_by: u64, now_ms: u64) {
        for x in self.lbs.values_mut().flat_map(|l| l.listeners.values_mut()) {
            if x.next_check_ms.is_some_and(|t| t <= due_by) {
                put_off(x, now_ms);
            }
        }
    }

    /// A controller restored from its store: its clock may start anywhere,
    /// so every listener with backends is checked from `now_ms` on.
    pub fn restart_health_checks(&mut self, now_ms: u64) {
        for x in self.lbs.values_mut().flat_map(|l| l.listeners.values_mut()) {
            if x.next_check_ms.is_some() {
                x.next_check_ms = Some(now_ms);
            }
        }
    }
}
