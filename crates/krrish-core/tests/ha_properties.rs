//! Property tests of the HA state machine against a small model of hosts.
//!
//! The model answers the core's commands the way hardware would: IPMI powers
//! a host off if its BMC is alive; a revoked lease stops being renewed and the
//! host stops its VMs before it lapses; boots succeed on powered hosts that
//! may write to the DFS. Random crashes, power losses, BMC losses and
//! partitions are thrown at it, with operator migrations that take time (and
//! whose answers are lost when the source is cut off) and controller
//! restarts from the persisted snapshot. After every step: no VM runs twice.
//! After healing everything: every HA VM runs again and every spare is
//! accounted.

use krrish_core::ha::{
    Command, DriverError, FenceAction, FenceError, HaConfig, HaManager, HostReport,
    IsolationResponse, VmState,
};
use krrish_core::model::HostAddresses;
use krrish_core::{BondHealth, HaPolicy, HostId, HostSpec, Resources, VmId, VmSpec, Zone};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

const LEASE_MS: u64 = 30_000;
const RENEW_MS: u64 = 5_000;
const LEAD_MS: u64 = 5_000;

fn host(name: &str, zone: Zone) -> HostSpec {
    HostSpec {
        id: name.into(),
        zone,
        capacity: Resources::new(16, 64 * 1024, 1000),
        cpu_model: "x".into(),
        memory_overcommit: false,
        dvs: "d".into(),
        maintenance: false,
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
struct PhysHost {
    powered: bool,
    bmc: bool,
    partitioned: bool,
    boot_id: u64,
    lease_revoked: bool,
    lease_until: u64,
    /// The DFS's record of the last renewal (the second heartbeat channel).
    renewed_at: Option<u64>,
    /// A BMC power cycle brings the host up again then.
    power_on_at: Option<u64>,
    running: BTreeSet<VmId>,
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
struct Copying {
    vm: VmId,
    from: HostId,
    to: HostId,
    switch_at: u64,
}

struct Model {
    now: u64,
    core: HaManager,
    specs: Vec<HostSpec>,
    config: HaConfig,
    copying: Vec<Copying>,
    slow_copies: bool,
    hosts: BTreeMap<HostId, PhysHost>,
    ha: BTreeMap<VmId, HaPolicy>,
}

#[derive(Clone, Debug)]
enum Op {
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
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1_000u64..60_000).prop_map(Op::Advance),
        1 => (0usize..5).prop_map(Op::Crash),
        1 => (0usize..5).prop_map(Op::PowerLoss),
        1 => (0usize..5).prop_map(Op::BmcDown),
        1 => (0usize..5).prop_map(Op::Partition),
        1 => (0usize..5).prop_map(Op::Heal),
        2 => (0usize..5).prop_map(Op::Repair),
        2 => (0usize..12, 0usize..5).prop_map(|(v, h)| Op::Migrate(v, h)),
        1 => Just(Op::ControllerRestart),
    ]
}

impl Model {
    fn new() -> Self {
        Self::with_config(HaConfig::default())
    }

    fn with_config(config: HaConfig) -> Self {
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
                    demand: Resources::new(4, 12 * 1024, 50),
                    ha: *p,
                    priority: 0,
                    passthrough_devices: vec![],
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
        }
    }

    fn id(&self, i: usize) -> HostId {
        self.hosts.keys().nth(i).unwrap().clone()
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Advance(ms) => self.advance(*ms),
            Op::Migrate(v, h) => {
                let vm = self.core.vms().keys().nth(*v).unwrap().clone();
                let to = self.id(*h);
                // Refusals are fine: the API checks its preconditions.
                let _ = self.core.migrate_vm(self.now, &vm, &to);
            }
            Op::ControllerRestart => {
                let snap = self.core.snapshot();
                self.core =
                    HaManager::restore(self.now, self.config.clone(), self.specs.clone(), snap);
            }
            Op::Crash(i) | Op::PowerLoss(i) => {
                let id = self.id(*i);
                // Copies from or to it die with it.
                self.copying.retain(|c| c.from != id && c.to != id);
                let h = self.hosts.get_mut(&id).unwrap();
                h.powered = false;
                h.running.clear();
                if matches!(op, Op::PowerLoss(_)) {
                    h.bmc = false;
                }
            }
            Op::BmcDown(i) => {
                let id = self.id(*i);
                self.hosts.get_mut(&id).unwrap().bmc = false;
            }
            Op::Partition(i) | Op::Heal(i) => {
                let id = self.id(*i);
                self.hosts.get_mut(&id).unwrap().partitioned = matches!(op, Op::Partition(_));
            }
            Op::Repair(i) => {
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
    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 1_000;
            let now = self.now;
            self.switch_over_due();
            let ids: Vec<HostId> = self.hosts.keys().cloned().collect();
            for id in &ids {
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
                if now.is_multiple_of(RENEW_MS) && !h.lease_revoked {
                    h.lease_until = now + LEASE_MS;
                    h.renewed_at = Some(now);
                }
                if h.lease_revoked && now + LEAD_MS >= h.lease_until {
                    h.running.clear(); // self-fence
                }
                if now.is_multiple_of(6_000) && !h.partitioned {
                    let report = HostReport {
                        migrating_out: copying_from(&self.copying, id),
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
    fn drain(&mut self) {
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
                    let ok = h.powered && !h.lease_revoked;
                    if ok {
                        h.running.insert(vm.id.clone());
                    }
                    let r = if ok {
                        Ok(())
                    } else {
                        Err(DriverError::Failed("cannot boot".into()))
                    };
                    if !h_partitioned {
                        self.core.handle_boot_result(now, &vm.id, &host, r);
                    }
                }
                Command::LiveMigrate { vm, from, to } => {
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
                        });
                    } else if !self.hosts[&from].partitioned {
                        self.core.handle_migration_result(
                            now,
                            &vm,
                            &from,
                            &to,
                            Err(DriverError::Failed("migration failed".into())),
                        );
                    }
                }
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
                Command::ReadLeaseRenewals => {
                    let ages = self
                        .hosts
                        .iter()
                        .filter_map(|(id, h)| h.renewed_at.map(|at| (id.clone(), now - at)))
                        .collect();
                    self.core.handle_lease_renewals(now, Ok(ages));
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
                    .handle_migration_result(now, &c.vm, &c.from, &c.to, r);
            }
            self.check_safety();
        }
    }

    fn check_safety(&self) {
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
                .map(|h| h.running.len() as u32 * 4)
                .unwrap_or(0);
            assert!(used <= 16, "{id} over-committed with {used} vCPUs");
        }
    }
}

proptest! {
    // PROPTEST_CASES (CI, nightly) sets the budget; 256 cases otherwise.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn never_two_copies_and_converges_after_healing(
        ops in proptest::collection::vec(op(), 1..40),
        power_off in any::<bool>(),
        reboot in any::<bool>(),
    ) {
        let response = if power_off {
            IsolationResponse::PowerOffAndRestart
        } else {
            IsolationResponse::LeaveRunning
        };
        // Copies take 2-20 s: a 12 s migration timeout makes some time out
        // and be cancelled.
        let mut m = Model::with_config(HaConfig {
            isolation_response: response,
            migration_timeout_ms: 12_000,
            fence_action: if reboot { FenceAction::Reboot } else { FenceAction::Off },
            ..HaConfig::default()
        });
        for op in &ops {
            m.apply(op);
        }
        // Liveness: an operator repairs whatever is broken (a fence may
        // power off a host just repaired), until things settle.
        m.slow_copies = false;
        for _ in 0..10 {
            for i in 0..5 {
                m.apply(&Op::Repair(i));
            }
            m.advance(60_000);
        }
        m.advance(600_000);
        for (vm, rec) in m.core.vms() {
            let running_somewhere = m.hosts.values().filter(|h| h.running.contains(vm)).count();
            match m.ha[vm] {
                HaPolicy::Restart | HaPolicy::RestoreOnRepair => {
                    prop_assert_eq!(running_somewhere, 1, "{} not running after healing: {:?}", vm, rec.state);
                    prop_assert!(matches!(rec.state, VmState::Running { .. }), "{} is {:?}", vm, rec.state);
                }
                HaPolicy::Off => prop_assert!(running_somewhere <= 1),
            }
        }
        // Every VM is home again and every spare back in the pool.
        let (free, active, unavailable) = m.core.spare_counts();
        prop_assert_eq!((free, active, unavailable), (2, 0, 0));
    }
}

#[test]
fn suspect_host_that_heartbeats_again_is_not_fenced() {
    let mut m = Model::new();
    m.advance(12_000);
    m.apply(&Op::Partition(0));
    m.advance(9_000); // one or two misses, not three
    m.apply(&Op::Heal(0));
    m.advance(60_000);
    assert_eq!(m.core.failover_boots(), 0);
    assert_eq!(m.core.hosts()[&HostId::new("hv-1")].liveness.name(), "up");
}

#[test]
fn a_host_that_cannot_be_fenced_keeps_its_vms_down_rather_than_doubling_them() {
    let mut m = Model::new();
    m.advance(12_000);
    // BMC dead and the DFS never answers revocations: model that by making
    // the host unreachable while leaving its lease alone.
    m.apply(&Op::BmcDown(0));
    m.apply(&Op::Partition(0));
    // Intercept: answer revocations with errors.
    let mut now = m.now;
    let (mut gave_up, mut retried) = (false, false);
    for _ in 0..300 {
        now += 1_000;
        // The other hosts go on heartbeating (else every host is silent and
        // the controller rightly suspects itself).
        if now.is_multiple_of(6_000) {
            for (id, h) in m.hosts.iter().filter(|(id, _)| id.as_str() != "hv-1") {
                let report = HostReport {
                    migrating_out: vec![],
                    boot_id: h.boot_id,
                    bonds: [BondHealth::Ok; 3],
                    running: h.running.iter().cloned().collect(),
                };
                m.core.handle_heartbeat(now, id, &report);
            }
        }
        m.core.handle_timeout(now);
        while let Some(c) = m.core.poll_command() {
            match c {
                Command::FenceIpmi { host, .. } => {
                    retried |= gave_up;
                    m.core.handle_fence_result(
                        now,
                        &host,
                        Err(FenceError::Unreachable("BMC silent".into())),
                    )
                }
                Command::RevokeLease { host } => m.core.handle_lease_revoked(
                    now,
                    &host,
                    Err(FenceError::Unreachable("DFS unreachable".into())),
                ),
                Command::BootVm { .. } => panic!("booted a VM of an unfenced host: {c:?}"),
                _ => {}
            }
        }
        gave_up |= m.core.hosts()[&HostId::new("hv-1")].liveness.name() == "fence-failed";
        if gave_up {
            let state = m.core.vms()[&VmId::new("vm-1-0")].state.name();
            assert!(["down", "host-down"].contains(&state), "{state}");
        }
    }
    assert!(gave_up, "the fence never failed for good");
    assert!(retried, "a failed fence is tried again later");
    assert_eq!(m.core.failover_boots(), 0);
}
