//! A two-party step harness for directed HA cases: the [`HaManager`] on one
//! side, a small model of hosts on the other that answers its commands the
//! way hardware would (IPMI powers a host off if its BMC is alive; a revoked
//! lease stops being renewed and the host stops its VMs before it lapses;
//! boots succeed on powered hosts that may write to the DFS; live migrations
//! take time and their answers are lost when the source is cut off; while
//! the DFS is unreachable from the controller, its reads fail only
//! [`DFS_FAIL_MS`] after they are asked, as a client's timeout would). No
//! world, no network, no runtime: a directed case runs in microseconds. The
//! property test `tests/ha_properties.rs` throws random [`Step`]s at it.
//!
//! Five hosts (`hv-1`..`hv-3`, `spare-1`, `spare-2`); on each production
//! host four VMs (`vm-H-0`, `vm-H-1` restart, `vm-H-2` restore-on-repair,
//! `vm-H-3` HA off). [`TwoParty::check_safety`] panics if a VM ever runs on
//! two hosts or a spare's accounting breaks; `advance` calls it every
//! simulated second.

use crate::ha::{Command, DriverError, FenceAction, FenceError, HaConfig, HaManager, HostReport};
use crate::model::HostAddresses;
use crate::{BondHealth, HaPolicy, HostId, HostSpec, Resources, VmId, VmSpec, Zone};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

const LEASE_MS: u64 = 30_000;
const RENEW_MS: u64 = 5_000;
const LEAD_MS: u64 = 5_000;
/// How long a DFS request takes to fail while the DFS is unreachable.
pub const DFS_FAIL_MS: u64 = 5_000;

/// A host of 16 vCPUs and 64 GiB, no overcommit, able to live-migrate.
pub fn host(name: &str, zone: Zone) -> HostSpec {
    HostSpec {
        id: name.into(),
        zone,
        capacity: Resources::new(16, 64 * 1024, 1000),
        cpu_model: "x".into(),
        memory_overcommit_percent: crate::model::MEMORY_OVERCOMMIT_OFF,
        dvs: "d".into(),
        maintenance: false,
        live_migration: true,
        rack: "r".into(),
        addresses: HostAddresses {
            uplink: Ipv4Addr::LOCALHOST,
            vm_network: Ipv4Addr::LOCALHOST,
            storage: Ipv4Addr::LOCALHOST,
            ipmi: Ipv4Addr::LOCALHOST,
        },
    }
}

#[derive(Debug)]
pub struct PhysHost {
    pub powered: bool,
    pub bmc: bool,
    pub partitioned: bool,
    pub boot_id: u64,
    pub lease_revoked: bool,
    pub lease_until: u64,
    /// The DFS's record of the last renewal (the second heartbeat channel).
    pub renewed_at: Option<u64>,
    /// A BMC power cycle brings the host up again then.
    pub power_on_at: Option<u64>,
    pub running: BTreeSet<VmId>,
    /// What the host's latest renewal told the DFS it runs (copies coming
    /// in included), and when.
    pub power_on: Option<(Vec<VmId>, u64)>,
}

/// The VMs `host` is copying away now, as its agent reports them.
fn copying_from(copying: &[Copying], host: &HostId) -> Vec<VmId> {
    copying
        .iter()
        .filter(|c| &c.from == host)
        .map(|c| c.vm.clone())
        .collect()
}

/// A live migration the model's hypervisors are carrying out.
#[derive(Debug)]
pub struct Copying {
    pub vm: VmId,
    pub from: HostId,
    pub to: HostId,
    pub switch_at: u64,
    /// The command's copy serial, handed back with the answer.
    pub serial: u64,
}

pub struct TwoParty {
    pub now: u64,
    pub core: HaManager,
    pub specs: Vec<HostSpec>,
    pub config: HaConfig,
    pub copying: Vec<Copying>,
    pub slow_copies: bool,
    pub hosts: BTreeMap<HostId, PhysHost>,
    pub ha: BTreeMap<VmId, HaPolicy>,
    /// The DFS is unreachable from the controller (the hosts still reach it).
    pub dfs_down: bool,
    /// Renewal reads that will fail: `(answer at, read tag)`.
    pub failing_reads: Vec<(u64, u64)>,
    /// The hypervisors answer every live migration "not supported",
    /// whatever the specs say.
    pub no_live_migration: bool,
    /// The DFS's lease service restarted then: it lists only renewals made
    /// since (it keeps its grants in memory).
    pub dfs_restarted_at: u64,
    /// The lease service is down until then: no host renews before.
    pub renewals_fail_until: u64,
    /// VMs whose next boots fail (a broken image), and how many more.
    pub boots_to_fail: BTreeMap<VmId, u32>,
    /// What every VM needs.
    pub vm_demand: Resources,
}

#[derive(Clone, Debug)]
pub enum Step {
    Advance(u64),
    Crash(usize),
    PowerLoss(usize),
    BmcDown(usize),
    Partition(usize),
    Heal(usize),
    Repair(usize),
    /// An operator live-migrates VM `.0` (of 12) to host `.1`.
    Migrate(usize, usize),
    /// The controller restarts from its persisted snapshot.
    ControllerRestart,
    /// The DFS becomes unreachable from the controller.
    DfsDown,
    /// The DFS is reachable from the controller again.
    DfsUp,
    /// The hypervisors fail the next `.1` boots of VM `.0` (of 12).
    FailBoots(usize, u32),
    /// Host `.0` panics and boots again at once, faster than it is missed:
    /// its guests die, copies to it fail (their sources say so before
    /// the new boot is heard of, as libvirt does), copies from it end
    /// without an answer (its agent died).
    Reboot(usize),
}

impl TwoParty {
    pub fn new() -> Self {
        Self::with_config(HaConfig::default())
    }

    pub fn with_config(config: HaConfig) -> Self {
        Self::with_demand(config, Resources::new(4, 12 * 1024, 50))
    }

    /// Every VM needing `demand` (a light load lets DPM power hosts off).
    pub fn with_demand(config: HaConfig, demand: Resources) -> Self {
        let specs = vec![
            host("hv-1", Zone::Ecs),
            host("hv-2", Zone::Ecs),
            host("hv-3", Zone::Ecs),
            host("spare-1", Zone::Spare),
            host("spare-2", Zone::Spare),
        ];
        let policies = [
            HaPolicy::Restart,
            HaPolicy::Restart,
            HaPolicy::RestoreOnRepair,
            HaPolicy::Off,
        ];
        let mut vms = Vec::new();
        for h in 1..=3 {
            for (i, p) in policies.iter().enumerate() {
                vms.push(VmSpec {
                    id: VmId::new(format!("vm-{h}-{i}")),
                    home: HostId::new(format!("hv-{h}")),
                    demand,
                    ha: *p,
                    priority: 0,
                    passthrough_devices: vec![],
                    failback: true,
                    restart_delay_ms: 0,
                });
            }
        }
        let hosts = specs
            .iter()
            .map(|s| {
                let running = vms
                    .iter()
                    .filter(|v| v.home == s.id)
                    .map(|v| v.id.clone())
                    .collect();
                (
                    s.id.clone(),
                    PhysHost {
                        powered: true,
                        bmc: true,
                        partitioned: false,
                        boot_id: 1,
                        lease_revoked: false,
                        lease_until: LEASE_MS,
                        renewed_at: Some(0),
                        power_on_at: None,
                        running,
                        power_on: None,
                    },
                )
            })
            .collect();
        let ha = vms.iter().map(|v| (v.id.clone(), v.ha)).collect();
        Self {
            now: 0,
            core: HaManager::new(0, config.clone(), specs.clone(), vms),
            specs,
            config,
            copying: Vec::new(),
            slow_copies: true,
            hosts,
            ha,
            dfs_down: false,
            failing_reads: Vec::new(),
            no_live_migration: false,
            dfs_restarted_at: 0,
            renewals_fail_until: 0,
            boots_to_fail: BTreeMap::new(),
            vm_demand: demand,
        }
    }

    pub fn id(&self, i: usize) -> HostId {
        self.hosts.keys().nth(i).unwrap().clone()
    }

    pub fn apply(&mut self, op: &Step) {
        match op {
            Step::Advance(ms) => self.advance(*ms),
            Step::Migrate(v, h) => {
                let vm = self.core.vms().keys().nth(*v).unwrap().clone();
                let to = self.id(*h);
                // Refusals are fine: the API checks its preconditions.
                let _ = self.core.migrate_vm(self.now, &vm, &to);
            }
            Step::DfsDown | Step::DfsUp => self.dfs_down = matches!(op, Step::DfsDown),
            Step::FailBoots(v, n) => {
                let vm = self.core.vms().keys().nth(*v).unwrap().clone();
                if *n == 0 {
                    self.boots_to_fail.remove(&vm);
                } else {
                    self.boots_to_fail.insert(vm, *n);
                }
            }
            Step::ControllerRestart => {
                // Its reads in flight die with it.
                self.failing_reads.clear();
                let snap = self.core.snapshot();
                self.core =
                    HaManager::restore(self.now, self.config.clone(), self.specs.clone(), snap);
            }
            Step::Crash(i) | Step::PowerLoss(i) => {
                let id = self.id(*i);
                // Copies from or to it die with it.
                self.copying.retain(|c| c.from != id && c.to != id);
                let h = self.hosts.get_mut(&id).unwrap();
                h.powered = false;
                h.running.clear();
                if matches!(op, Step::PowerLoss(_)) {
                    h.bmc = false;
                }
            }
            Step::BmcDown(i) => {
                let id = self.id(*i);
                self.hosts.get_mut(&id).unwrap().bmc = false;
            }
            Step::Partition(i) | Step::Heal(i) => {
                let id = self.id(*i);
                self.hosts.get_mut(&id).unwrap().partitioned = matches!(op, Step::Partition(_));
            }
            Step::Reboot(i) => {
                let id = self.id(*i);
                if !self.hosts[&id].powered {
                    return;
                }
                let now = self.now;
                let (ended, rest): (Vec<Copying>, Vec<Copying>) = std::mem::take(&mut self.copying)
                    .into_iter()
                    .partition(|c| c.from == id || c.to == id);
                self.copying = rest;
                let h = self.hosts.get_mut(&id).unwrap();
                h.boot_id += 1;
                h.running.clear();
                h.lease_until = 0;
                for c in ended.iter().filter(|c| c.to == id) {
                    let source = &self.hosts[&c.from];
                    if source.powered && !source.partitioned {
                        let why = DriverError::Failed("the destination rebooted".into());
                        self.core.handle_migration_result(
                            now,
                            &c.vm,
                            &c.from,
                            &c.to,
                            c.serial,
                            Err(why),
                        );
                    }
                }
            }
            Step::Repair(i) => {
                let id = self.id(*i);
                if !self.hosts[&id].powered {
                    self.copying.retain(|c| c.from != id && c.to != id);
                }
                let h = self.hosts.get_mut(&id).unwrap();
                if !h.powered {
                    h.powered = true;
                    h.boot_id += 1;
                    h.running.clear();
                    h.lease_until = 0;
                }
                h.bmc = true;
                h.partitioned = false;
            }
        }
        self.drain();
    }

    /// Time passes in one-second steps: leases, self-fencing, heartbeats.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 1_000;
            let now = self.now;
            self.switch_over_due();
            let (due, later): (Vec<_>, Vec<_>) =
                self.failing_reads.iter().partition(|(at, _)| *at <= now);
            self.failing_reads = later;
            for (_, read) in due {
                let why = FenceError::Unreachable("DFS unreachable".into());
                self.core.handle_lease_renewals(now, read, Err(why));
            }
            let ids: Vec<HostId> = self.hosts.keys().cloned().collect();
            for id in &ids {
                let incoming = self.copying.iter().filter(|c| &c.to == id);
                let incoming: Vec<VmId> = incoming.map(|c| c.vm.clone()).collect();
                let h = self.hosts.get_mut(id).unwrap();
                if h.power_on_at.is_some_and(|t| t <= now) {
                    h.power_on_at = None;
                    if !h.powered && h.bmc {
                        h.powered = true;
                        h.boot_id += 1;
                        h.running.clear();
                        h.lease_until = 0;
                    }
                }
                if !h.powered {
                    continue;
                }
                if now.is_multiple_of(RENEW_MS)
                    && !h.lease_revoked
                    && now >= self.renewals_fail_until
                {
                    h.lease_until = now + LEASE_MS;
                    h.renewed_at = Some(now);
                    let vms = h.running.iter().cloned().chain(incoming).collect();
                    h.power_on = Some((vms, now));
                }
                if h.lease_revoked && now + LEAD_MS >= h.lease_until {
                    h.running.clear(); // self-fence
                }
                if now.is_multiple_of(6_000) && !h.partitioned {
                    let report = HostReport {
                        holds_lease: now < h.lease_until,
                        migrating_out: copying_from(&self.copying, id),
                        booting: vec![],
                        boot_id: h.boot_id,
                        bonds: [BondHealth::Ok; 3],
                        running: h.running.iter().cloned().collect(),
                    };
                    self.core.handle_heartbeat(now, id, &report);
                }
            }
            // As the real shell does: only when a deadline is due.
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            self.drain();
            self.check_safety();
        }
    }

    /// Answers every command at once, as hardware would.
    pub fn drain(&mut self) {
        for _ in 0..10_000 {
            let Some(c) = self.core.poll_command() else {
                return;
            };
            let now = self.now;
            match c {
                Command::FenceIpmi { host, action } => {
                    self.copying.retain(|c| c.from != host && c.to != host);
                    let h = self.hosts.get_mut(&host).unwrap();
                    if h.bmc {
                        h.powered = false;
                        h.running.clear();
                        if action == FenceAction::Reboot {
                            h.power_on_at = Some(now + 60_000);
                        }
                        self.core.handle_fence_result(now, &host, Ok(()));
                    } else {
                        self.core.handle_fence_result(
                            now,
                            &host,
                            Err(FenceError::Unreachable("BMC silent".into())),
                        );
                    }
                }
                Command::PowerHost { host, on } => {
                    self.copying.retain(|c| c.from != host && c.to != host);
                    let h = self.hosts.get_mut(&host).unwrap();
                    if !h.bmc {
                        let why = FenceError::Unreachable("BMC silent".into());
                        self.core.handle_power_result(now, &host, on, Err(why));
                        continue;
                    }
                    if on {
                        h.power_on_at = Some(now + 60_000);
                    } else {
                        h.powered = false;
                        h.running.clear();
                    }
                    self.core.handle_power_result(now, &host, on, Ok(()));
                }
                Command::RevokeLease { host } if self.dfs_down => {
                    let why = FenceError::Unreachable("DFS unreachable".into());
                    self.core.handle_lease_revoked(now, &host, Err(why));
                }
                Command::ReinstateLease { host } if self.dfs_down => {
                    let why = FenceError::Unreachable("DFS unreachable".into());
                    self.core.handle_lease_reinstated(now, &host, Err(why));
                }
                Command::RevokeLease { host } => {
                    let h = self.hosts.get_mut(&host).unwrap();
                    h.lease_revoked = true;
                    let until = h.lease_until;
                    self.core.handle_lease_revoked(now, &host, Ok(until));
                }
                Command::ReinstateLease { host } => {
                    self.hosts.get_mut(&host).unwrap().lease_revoked = false;
                    self.core.handle_lease_reinstated(now, &host, Ok(()));
                }
                Command::BootVm { vm, host, .. } => {
                    let h = self.hosts.get_mut(&host).unwrap();
                    // A cut-off host gets no command and sends no answer.
                    let h_partitioned = h.partitioned;
                    if h_partitioned {
                        continue;
                    }
                    // A host that cannot open the DFS copy says so; a
                    // broken image fails the guest itself.
                    let r = if !h.powered || h.lease_revoked {
                        Err(DriverError::Unavailable("cannot open the disk".into()))
                    } else if let Some(left) = self.boots_to_fail.get_mut(&vm.id) {
                        *left -= 1;
                        if *left == 0 {
                            self.boots_to_fail.remove(&vm.id);
                        }
                        Err(DriverError::Failed("the guest did not come up".into()))
                    } else {
                        h.running.insert(vm.id.clone());
                        Ok(())
                    };
                    if !h_partitioned {
                        self.core.handle_boot_result(now, &vm.id, &host, r);
                    }
                }
                Command::LiveMigrate {
                    vm,
                    from,
                    to,
                    serial,
                } if self.no_live_migration && !self.hosts[&from].partitioned => {
                    self.core.handle_migration_result(
                        now,
                        &vm,
                        &from,
                        &to,
                        serial,
                        Err(DriverError::NotSupported("no peer to migrate to".into())),
                    );
                }
                Command::LiveMigrate {
                    vm,
                    from,
                    to,
                    serial,
                } => {
                    let ok = self.hosts[&from].powered
                        && !self.hosts[&from].partitioned
                        && self.hosts[&to].powered
                        && self.hosts[&from].running.contains(&vm);
                    if ok {
                        // The copy takes 2-20 s while copies are slow
                        // (some outlast the 12 s migration timeout), 2-10 s
                        // once the faults heal.
                        let spread = if self.slow_copies { 18_000 } else { 8_000 };
                        let copy_ms = 2_000 + (vm.as_str().len() as u64 * 7_919 + now) % spread;
                        self.copying.push(Copying {
                            vm,
                            from,
                            to,
                            switch_at: now + copy_ms,
                            serial,
                        });
                    } else if !self.hosts[&from].partitioned {
                        self.core.handle_migration_result(
                            now,
                            &vm,
                            &from,
                            &to,
                            serial,
                            Err(DriverError::Failed("migration failed".into())),
                        );
                    }
                }
                Command::RebootVm { .. } => {}
                Command::StopVm { vm, host } => {
                    let h = self.hosts.get_mut(&host).unwrap();
                    if h.powered {
                        h.running.remove(&vm);
                        self.core.handle_stop_result(now, &vm, &host, Ok(()));
                    }
                }
                Command::AbortMigration { vm, from, to } => {
                    let before = self.copying.len();
                    self.copying
                        .retain(|c| !(c.vm == vm && c.from == from && c.to == to));
                    let r = if before == self.copying.len() && self.hosts[&to].running.contains(&vm)
                    {
                        Err(DriverError::Failed("already switched over".into()))
                    } else {
                        Ok(())
                    };
                    if self.hosts[&from].powered && !self.hosts[&from].partitioned {
                        self.core.handle_migration_aborted(now, &vm, &from, &to, r);
                    }
                }
                Command::ReadLeaseRenewals { read } if self.dfs_down => {
                    assert!(self.failing_reads.len() < 1_000, "reads unbounded");
                    self.failing_reads.push((now + DFS_FAIL_MS, read));
                }
                Command::ReadLeaseRenewals { read } => {
                    let hosts = self
                        .hosts
                        .iter()
                        .filter_map(|(id, h)| h.renewed_at.map(|at| (id.clone(), at)))
                        .filter(|(_, at)| *at >= self.dfs_restarted_at)
                        .map(|(id, at)| (id, now - at))
                        .collect();
                    let listening_for_ms = now.saturating_sub(self.dfs_restarted_at);
                    let power_on = self
                        .hosts
                        .iter()
                        .filter_map(|(id, h)| {
                            let (vms, at) = h.power_on.clone()?;
                            let mut vms: Vec<VmId> = vms;
                            vms.sort();
                            let list = crate::lease::PowerOnList {
                                vms,
                                taken_ago_ms: now - at,
                            };
                            (at >= self.dfs_restarted_at).then_some((id.clone(), list))
                        })
                        .collect();
                    let read_answer = crate::lease::LeaseRenewals {
                        hosts,
                        listening_for_ms,
                        power_on,
                    };
                    self.core.handle_lease_renewals(now, read, Ok(read_answer));
                }
            }
            self.check_safety();
        }
        panic!("command cascade did not settle");
    }

    /// Copies whose time has come switch over (or fail); the answer goes
    /// back only if the source can still reach the controller.
    fn switch_over_due(&mut self) {
        let now = self.now;
        let (due, rest): (Vec<Copying>, Vec<Copying>) = std::mem::take(&mut self.copying)
            .into_iter()
            .partition(|c| c.switch_at <= now);
        self.copying = rest;
        for c in due {
            let ok = self.hosts[&c.from].powered
                && self.hosts[&c.to].powered
                && self.hosts[&c.from].running.contains(&c.vm)
                && !self.hosts[&c.to].lease_revoked;
            if ok {
                self.hosts.get_mut(&c.from).unwrap().running.remove(&c.vm);
                self.hosts
                    .get_mut(&c.to)
                    .unwrap()
                    .running
                    .insert(c.vm.clone());
            }
            if self.hosts[&c.from].powered && !self.hosts[&c.from].partitioned {
                let r = if ok {
                    Ok(())
                } else {
                    Err(DriverError::Failed("copy failed".into()))
                };
                self.core
                    .handle_migration_result(now, &c.vm, &c.from, &c.to, c.serial, r);
            }
            self.check_safety();
        }
    }

    pub fn check_safety(&self) {
        assert!(
            self.core.vm_index_is_exact(),
            "the per-host VM index drifted from the records at {} ms",
            self.now
        );
        let mut seen: BTreeMap<&VmId, &HostId> = BTreeMap::new();
        for (id, h) in &self.hosts {
            for vm in &h.running {
                if let Some(other) = seen.insert(vm, id) {
                    panic!("{vm} runs on {other} and {id} at {} ms", self.now);
                }
            }
        }
        let spares = self
            .core
            .hosts()
            .values()
            .filter(|h| h.spare.is_some())
            .count();
        let (f, a, u) = self.core.spare_counts();
        assert_eq!(f + a + u, spares, "spare accounting");
        for id in self.core.hosts().keys() {
            let used = self
                .hosts
                .get(id)
                .map(|h| h.running.len() as u32 * self.vm_demand.vcpus)
                .unwrap_or(0);
            let cap = self.core.hosts()[id].spec.capacity.vcpus;
            assert!(used <= cap, "{id} over-committed with {used} vCPUs");
        }
    }
}

impl Default for TwoParty {
    fn default() -> Self {
        Self::new()
    }
}

impl TwoParty {
    /// Where `vm` really runs (the model's hypervisors, not the core's view).
    pub fn runs_on(&self, vm: &str) -> Vec<HostId> {
        let vm = VmId::new(vm);
        self.hosts
            .iter()
            .filter(|(_, h)| h.running.contains(&vm))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The index [`Step`]s use for the host named `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.hosts
            .keys()
            .position(|h| h.as_str() == name)
            .unwrap_or_else(|| panic!("no host {name} in the harness"))
    }
}

#[cfg(test)]
#[path = "testkit_tests.rs"]
mod tests;
