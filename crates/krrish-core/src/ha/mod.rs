//! The HA state machine.
//!
//! ```text
//!  Up ──miss──► Suspect ──misses_max──► Offline ─► Fencing(IPMI power-off over OGW)
//!   ▲              │ heartbeat                        │ BMC silent / refused
//!   │◄─────────────┘                                  ▼
//!   │                                   Fencing(revoke DFS lease, wait until it expires)
//!   │                                                 │
//!   │  new boot, or no VMs left            Fenced ◄───┘   (retries exhausted → FenceFailed:
//!   └────────────── heartbeat ◄──────────  │               VMs stay down, never started twice)
//!                                          ▼
//!                 each VM by policy: restart on a spare (capacity-aware) | wait for repair | stay down
//!                 on the host's return: live-migrate back, spare returns to the pool
//! ```
//!
//! The invariant this module exists for: **no VM is booted elsewhere until its
//! old host is fenced** — powered off through its BMC, or cut off from the DFS
//! by a revoked lease that has provably expired.
//!
//! One `impl HaManager` per kind of decision; see the crate's map for which
//! file holds which. This file holds the manager itself: its configuration,
//! construction, read-only views, output queues and the host checks the
//! others share.

mod affinity;
mod api;
mod boot_failures;
mod command;
mod detection;
mod dpm;
mod drs;
mod errors;
mod evacuation;
mod failback;
mod fencing;
mod liveness;
mod maintenance;
mod notice;
mod notice_text;
mod operator_rules;
mod persist;
mod placement_rules;
mod recovery;
mod types;
mod vm_table;

pub use command::{secs, Command};
pub use detection::{DfsEvidence, IsolationResponse};
pub use dpm::{DpmConfig, Standby};
pub use drs::{DrsConfig, DrsMove, DrsWindow};
pub use errors::{ApiError, DriverError, FenceError};
pub use notice::Notice;
pub use persist::CoreSnapshot;
pub use types::{
    BootReason, DownReason, FenceAction, FenceMethod, FenceStage, HostRecord, HostReport,
    HostVerdict, Liveness, SpareState, VmRecord, VmState,
};

use crate::heartbeat::HeartbeatConfig;
use crate::ids::{HostId, VmId};
use crate::migration::MigrationBlocker;
use crate::model::{BondHealth, BondName, HaPolicy, HostSpec, Resources, VmSpec};
use crate::timings::AgentTimings;
use std::collections::{BTreeMap, VecDeque};

/// Timings and switches of the HA manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaConfig {
    pub heartbeat: HeartbeatConfig,
    /// How long to wait for the BMC to confirm a power-off.
    pub fence_timeout_ms: u64,
    /// DFS lease length; a host that cannot renew stops its VMs before then.
    pub lease_duration_ms: u64,
    /// Extra wait after a revoked lease expires (clock drift between hosts).
    pub lease_margin_ms: u64,
    /// How often to ask the DFS again when revocation gets no answer.
    pub lease_revoke_retry_ms: u64,
    pub lease_revoke_attempts_max: u32,
    pub boot_timeout_ms: u64,
    /// A failed boot is tried again on the same host this many times
    /// (Proxmox HA's `max_restart`, default 1)…
    pub max_restart: u32,
    /// …then on this many other hosts, one boot each, never a host where
    /// it already failed (`max_relocate`, default 1). After
    /// `1 + max_restart + max_relocate` failed boots the VM is in `error`.
    pub max_relocate: u32,
    /// Wait before booting again after a failed boot.
    pub boot_retry_backoff_ms: u64,
    pub migration_timeout_ms: u64,
    /// Wait before trying a failed failback migration again.
    pub migration_retry_backoff_ms: u64,
    /// Cluster CPU-compatibility mode (allows migration across CPU models).
    pub imc_mode: bool,
    /// What to do with a host cut off from management but alive on the DFS.
    pub isolation_response: IsolationResponse,
    /// How long a host alive on the DFS must stay isolated before
    /// `power-off-and-restart` acts (vSphere HA's isolation policy delay,
    /// 30 s): a lossy or flapping management link that lets a heartbeat
    /// through now and then is not worth a host's VMs.
    pub isolation_response_delay_ms: u64,
    /// A host that could not be fenced is tried again after this long (the
    /// BMC or the DFS may answer by then).
    pub fence_retry_ms: u64,
    /// What an IPMI fence does: power off, or power cycle.
    pub fence_action: FenceAction,
    /// A VM on a spare that cannot live-migrate home (passthrough devices,
    /// CPU models without IMC mode, …) is moved cold: stopped on the spare,
    /// booted at home from its DFS copy.
    pub cold_failback: bool,
    /// How long a live host's VM network (bond1) may be down before its VMs
    /// are stopped there and restarted where the VM network works.
    pub vm_network_grace_ms: u64,
    /// Hosts that may be fenced without independent evidence of death
    /// (isolated, or the DFS unreadable) within `fence_storm_window_ms`.
    pub fence_storm_max: u32,
    pub fence_storm_window_ms: u64,
    /// The cluster's placement rule groups (none by default).
    pub rules: crate::rules::Rules,
    /// The cluster-wide HA switch: off, every VM is treated as `ha: off`
    /// (failed hosts are still detected and fenced; nothing restarts).
    pub ha_enabled: bool,
    /// A failed host's VM that no spare can take may restart on a
    /// production host with room (spares stay the first choice).
    pub failover_to_production: bool,
    /// Admission control: this share (per cent) of every production host's
    /// vCPUs and memory is kept from tenant placement (create, start,
    /// migration, drain) for failovers.
    pub admission_reserve_percent: u8,
    /// Load balancing by live migration (`None`: off, the default).
    pub drs: Option<DrsConfig>,
    /// Powering idle production hosts off and on again (`None`: off, the
    /// default).
    pub dpm: Option<DpmConfig>,
}

impl HaConfig {
    /// The agents' timings: the controller judges silence with the same
    /// numbers the agents keep.
    pub fn agent_timings(&self) -> AgentTimings {
        AgentTimings::derive(self.heartbeat.interval_ms, self.lease_duration_ms)
    }

    /// How often the DFS's renewals are read while a host is silent.
    pub fn dfs_read_every_ms(&self) -> u64 {
        (self.heartbeat.interval_ms / 3).max(1)
    }
}

impl Default for HaConfig {
    fn default() -> Self {
        Self {
            heartbeat: HeartbeatConfig::default(),
            fence_timeout_ms: 10_000,
            lease_duration_ms: 30_000,
            lease_margin_ms: 2_000,
            lease_revoke_retry_ms: 5_000,
            lease_revoke_attempts_max: 6,
            boot_timeout_ms: 120_000,
            max_restart: 1,
            max_relocate: 1,
            boot_retry_backoff_ms: 10_000,
            migration_timeout_ms: 600_000,
            migration_retry_backoff_ms: 60_000,
            imc_mode: false,
            isolation_response: IsolationResponse::LeaveRunning,
            isolation_response_delay_ms: 30_000,
            fence_retry_ms: 60_000,
            fence_action: FenceAction::Off,
            cold_failback: true,
            vm_network_grace_ms: 60_000,
            fence_storm_max: 2,
            fence_storm_window_ms: 600_000,
            rules: crate::rules::Rules::default(),
            ha_enabled: true,
            failover_to_production: false,
            admission_reserve_percent: 0,
            drs: None,
            dpm: None,
        }
    }
}

/// Bound on queued commands and notices: far above any cluster we model,
/// low enough that a runaway loop is caught.
const QUEUE_MAX: usize = 1 << 20;

/// Reports in a row that must omit a running VM before it counts as dead.
const VANISHED_AFTER_REPORTS: u32 = 2;

/// The HA manager: hosts, VMs and the spare pool, driven by heartbeats,
/// fencing answers, driver results and time.
pub struct HaManager {
    config: HaConfig,
    hosts: BTreeMap<HostId, HostRecord>,
    vms: vm_table::VmTable,
    commands: VecDeque<Command>,
    notices: VecDeque<(u64, Notice)>,
    failover_boots: u64,
    /// How many times this controller's state was restored from its store:
    /// 0 for a cluster started fresh. Persisted, so every incarnation has
    /// its own number (command ids are drawn from it).
    incarnation: u64,
    /// The latest `now` seen by [`Self::handle_timeout`].
    last_timeout_ms: u64,
    /// Bumped by every decision (notice or command): what a store watches.
    generation: u64,
    /// Reading the DFS's renewals (the second heartbeat channel).
    dfs: detection::DfsReads,
    /// When hosts were fenced without independent evidence (bounded by
    /// `fence_storm_max` within the window).
    evidenceless_fences: VecDeque<u64>,
    /// The controller said it suspects itself cut off (once per episode).
    storm_reported: bool,
    /// The spare pool's hosts (fixed by the cluster), in id order.
    spare_ids: Vec<HostId>,
    /// What the spares' states were last computed from (the VM table's
    /// version and each spare's fitness): unchanged, nothing to recompute.
    spares_computed_from: Option<(u64, Vec<bool>)>,
    /// Terminated VMs whose guests may still run on these hosts (no answer
    /// to the stop, no report without them, no fence yet), with what they
    /// need: their room there is not free until then.
    terminated: BTreeMap<VmId, (Vec<HostId>, Resources)>,
    /// When DRS looks next (one interval after the controller starts).
    drs_next_at_ms: u64,
    /// When DPM next considers powering a host off.
    dpm_next_at_ms: u64,
    /// The rules in force: the cluster file's, and the implicit should
    /// anti-affinity groups of the cloud's managed services (an RDB's
    /// primary and standby, a replica set's members, a cache shard's).
    rules: crate::rules::Rules,
    /// The services' groups, as last given.
    service_groups: Vec<crate::rules::RuleGroup>,
    /// Groups operators set through the API (persisted), beside the file's.
    operator_rules: Vec<crate::rules::RuleGroup>,
}

impl HaManager {
    /// The HA policy that applies to `vm`: its own, or `off` while the
    /// cluster-wide switch is off.
    pub fn effective_ha(&self, vm: &VmSpec) -> HaPolicy {
        if self.config.ha_enabled {
            vm.ha
        } else {
            HaPolicy::Off
        }
    }

    /// Adopts a running cluster: every VM runs on its home host, every host
    /// counts as heard from at `now_ms`.
    pub fn new(now_ms: u64, config: HaConfig, hosts: Vec<HostSpec>, vms: Vec<VmSpec>) -> Self {
        let hosts: BTreeMap<_, _> = hosts
            .into_iter()
            .map(|spec| {
                let spare = spec.is_spare().then_some(SpareState::Free);
                let rec = HostRecord {
                    liveness: Liveness::Up,
                    last_heartbeat_ms: now_ms,
                    silence_counted_from_ms: 0,
                    boot_id: None,
                    bonds: [BondHealth::Ok; 3],
                    spare,
                    lease_revoked: false,
                    dfs_renewed_at_ms: None,
                    vm_network_lost_since_ms: None,
                    holds_lease: true,
                    lease_held_in_boot: None,
                    standby: Standby::No,
                    spec,
                };
                (rec.spec.id.clone(), rec)
            })
            .collect();
        let spare_ids: Vec<HostId> = hosts
            .values()
            .filter(|h| h.spare.is_some())
            .map(|h| h.spec.id.clone())
            .collect();
        let mut table = vm_table::VmTable::default();
        for spec in vms {
            let home = spec.home.clone();
            table.insert(VmRecord::new(spec, VmState::Running { host: home }));
        }
        let vms = table;
        let config_drs_interval = config.drs.as_ref().map_or(0, |d| d.interval_ms);
        let config_dpm_interval = config.dpm.as_ref().map_or(0, |d| d.interval_ms);
        let rules = config.rules.clone();
        Self {
            rules,
            service_groups: Vec::new(),
            operator_rules: Vec::new(),
            config,
            hosts,
            vms,
            commands: VecDeque::new(),
            notices: VecDeque::new(),
            failover_boots: 0,
            incarnation: 0,
            last_timeout_ms: now_ms,
            generation: 0,
            dfs: detection::DfsReads::default(),
            evidenceless_fences: VecDeque::new(),
            storm_reported: false,
            spare_ids,
            spares_computed_from: None,
            terminated: BTreeMap::new(),
            drs_next_at_ms: now_ms + config_drs_interval,
            dpm_next_at_ms: now_ms + config_dpm_interval,
        }
    }

    /// Changes with every decision; equal generations, equal state worth
    /// persisting.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Which restart of the controller this is (0: never restarted). Saved
    /// with the state, so no two incarnations share a number.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Boots ordered onto a takeover spare so far.
    pub fn failover_boots(&self) -> u64 {
        self.failover_boots
    }

    pub fn config(&self) -> &HaConfig {
        &self.config
    }

    /// The placement rules in force: the cluster file's, the operators'
    /// (API) and the services'.
    pub fn rules(&self) -> &crate::rules::Rules {
        &self.rules
    }

    /// The managed services' implicit rule groups (each service's members
    /// must run on different hosts), replacing those given before. Rules
    /// bind placements from now on; a VM already placed is not moved.
    pub fn set_service_groups(&mut self, groups: Vec<crate::rules::RuleGroup>) {
        if groups == self.service_groups {
            return;
        }
        self.service_groups = groups;
        self.rebuild_rules();
    }

    pub fn hosts(&self) -> &BTreeMap<HostId, HostRecord> {
        &self.hosts
    }

    pub fn vms(&self) -> &BTreeMap<VmId, VmRecord> {
        &self.vms
    }

    /// The hosts where `vm`'s guest may be alive now, as far as the core
    /// knows: where it runs, boots, migrates or is being stopped or
    /// evacuated; a host being fenced under it, or whose fence failed; a
    /// stop not yet confirmed; a terminated VM's hosts not yet confirmed
    /// off. Empty when the guest is known dead everywhere (stopped, fenced,
    /// waiting to restart), so nothing of it holds a disk open.
    pub fn hosts_that_may_run(&self, vm: &VmId) -> Vec<HostId> {
        let mut hosts: Vec<HostId> = Vec::new();
        if let Some(rec) = self.vms.get(vm) {
            hosts = rec.hosts_that_may_run();
        }
        if let Some((on, _)) = self.terminated.get(vm) {
            hosts.extend(on.iter().cloned());
        }
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// A terminated VM's guest is known to be off `host` (or everywhere,
    /// with `None`): its room there is free.
    pub(super) fn terminated_off(&mut self, vm: Option<&VmId>, host: &HostId) {
        let before = self.terminated.len();
        let mut changed = false;
        for (id, (hosts, _)) in self.terminated.iter_mut() {
            if vm.is_none_or(|v| v == id) && hosts.contains(host) {
                hosts.retain(|h| h != host);
                changed = true;
            }
        }
        self.terminated.retain(|_, (hosts, _)| !hosts.is_empty());
        if changed || self.terminated.len() != before {
            self.spares_computed_from = None;
        }
    }

    /// Whether the per-host VM index agrees with the records (property
    /// tests call this after every step).
    pub fn vm_index_is_exact(&self) -> bool {
        self.vms.index_is_exact()
    }

    /// Free capacity of `host`: its capacity less every VM that holds it.
    pub fn free_capacity(&self, host: &HostId) -> Resources {
        let Some(h) = self.hosts.get(host) else {
            return Resources::ZERO;
        };
        // A VM that holds the host names it: the index, not the cloud.
        let used = self
            .vms
            .on_host(host)
            .into_iter()
            .filter(|(_, v)| v.holds(host))
            .fold(Resources::ZERO, |acc, (_, v)| acc.add(&v.spec.demand));
        let used = self
            .terminated
            .values()
            .filter(|(hosts, _)| hosts.contains(host))
            .fold(used, |acc, (_, demand)| acc.add(demand));
        h.spec.placeable().saturating_sub(&used)
    }

    /// What an operator may still place on `host`: its free capacity less
    /// what its own VMs need to come home (running on a spare, or waiting
    /// for capacity or for its repair) — failback and restores keep their
    /// room, so spares go back to the pool.
    pub fn room_for_tenants(&self, host: &HostId) -> Resources {
        // Its tenants name it as home: the index, not the cloud.
        let coming_home = self
            .vms
            .on_host(host)
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| &v.spec.home == host && !v.holds(host))
            .filter(|v| match &v.state {
                // Failed over (to a spare, or to a production host when the
                // pool ran out), or booting or retrying there (found by the
                // adversary: a tenant took the room of one still booting on
                // its spare); one that does not fail back is not coming.
                VmState::Running { .. }
                | VmState::Booting { .. }
                | VmState::RetryingBoot { .. } => v.spec.failback,
                // Its spare (or wherever it ran) is down: it comes back
                // through a restart, at home first.
                VmState::HostDown { .. }
                | VmState::WaitingForCapacity { .. }
                | VmState::WaitingForRepair { .. } => true,
                _ => false,
            })
            .fold(Resources::ZERO, |acc, v| acc.add(&v.spec.demand));
        let reserve = self.admission_reserve(host);
        self.free_capacity(host)
            .saturating_sub(&coming_home)
            .saturating_sub(&reserve)
    }

    /// What admission control keeps free on `host` for failovers (nothing
    /// on spares: all of a spare is for failovers).
    pub fn admission_reserve(&self, host: &HostId) -> Resources {
        let pct = u64::from(self.config.admission_reserve_percent.min(100));
        match self.hosts.get(host) {
            Some(h) if h.spare.is_none() && pct > 0 => {
                let c = h.spec.placeable();
                Resources::new(
                    (u64::from(c.vcpus) * pct).div_ceil(100) as u32,
                    (c.memory_mib * pct).div_ceil(100),
                    0,
                )
            }
            _ => Resources::ZERO,
        }
    }

    /// Counts of spares by state: (free, active, unavailable).
    pub fn spare_counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for s in self.hosts.values().filter_map(|h| h.spare) {
            match s {
                SpareState::Free => c.0 += 1,
                SpareState::Active => c.1 += 1,
                SpareState::Unavailable => c.2 += 1,
            }
        }
        c
    }

    // ---- outputs -------------------------------------------------------

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub fn poll_notice(&mut self) -> Option<(u64, Notice)> {
        self.notices.pop_front()
    }

    /// The next instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<u64> {
        let hb = &self.config.heartbeat;
        let hosts = self.hosts.values().filter_map(|h| match h.liveness {
            Liveness::Up | Liveness::Suspect { .. } => {
                let last = h.silence_start_ms();
                // Wake at the next miss boundary after the last heartbeat.
                let misses = match h.liveness {
                    Liveness::Suspect { misses } => misses,
                    _ => 0,
                };
                Some(last + hb.grace_ms + u64::from(misses + 1) * hb.interval_ms)
            }
            Liveness::Fencing(FenceStage::Ipmi { deadline_ms })
            | Liveness::Fencing(FenceStage::RebootProof { deadline_ms, .. })
            | Liveness::Fencing(FenceStage::LeaseRevoking { deadline_ms, .. }) => Some(deadline_ms),
            Liveness::Fencing(FenceStage::LeaseExpiring { safe_at_ms }) => Some(safe_at_ms),
            Liveness::Isolated {
                since_ms,
                dfs_alive,
            } => self.isolation_wake(since_ms, dfs_alive),
            Liveness::FenceFailed { at_ms } => Some(at_ms + self.config.fence_retry_ms),
            Liveness::Fenced { .. } | Liveness::PoweredOff { .. } => None,
        });
        let hosts = hosts.chain(self.dfs_read_wake());
        let unsettled = self.vms.unsettled();
        let vms = unsettled.into_iter().filter_map(|(_, v)| match &v.state {
            VmState::Booting { deadline_ms, .. } => Some(*deadline_ms),
            // A migration in doubt or being cancelled waits for reports and
            // answers, not for its deadline again.
            VmState::Migrating { deadline_ms, .. }
                if v.settled_by.is_none() && !v.migration_aborting =>
            {
                Some(*deadline_ms)
            }
            VmState::WaitingForCapacity { retry_at_ms, .. }
            | VmState::Scheduling { retry_at_ms, .. } => self.has_backoff(*retry_at_ms),
            // Its retry is work to do, due or not.
            VmState::RetryingBoot { retry_at_ms, .. } => Some(*retry_at_ms),
            _ => None,
        });
        hosts
            .chain(vms)
            .chain(self.drs_wake())
            .chain(self.dpm_wake())
            .min()
    }

    /// A back-off deadline still ahead (past ones need no wake-up: the VM
    /// then waits for capacity to appear).
    fn has_backoff(&self, retry_at_ms: u64) -> Option<u64> {
        (retry_at_ms > self.last_timeout_ms).then_some(retry_at_ms)
    }

    /// Like [`Self::vms_where`], among the VMs not running or stopped (the
    /// only ones a predicate about waits, deadlines or moves can match).
    fn unsettled_where(&self, pred: impl Fn(&VmId, &VmRecord) -> bool) -> Vec<VmId> {
        self.vms
            .unsettled()
            .into_iter()
            .filter(|(id, v)| pred(id, v))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The VMs whose record names `host` (home, placement, migration, a
    /// failed fence) and satisfies `pred`, in id order (a snapshot, so the
    /// caller may change them while walking it): the cost of that host's
    /// VMs, not the cloud's. Only for predicates that require `host` in the
    /// record.
    fn vms_on(&self, host: &HostId, pred: impl Fn(&VmId, &VmRecord) -> bool) -> Vec<VmId> {
        self.vms
            .on_host(host)
            .into_iter()
            .filter(|(id, v)| pred(id, v))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A VM's state changed with no command or notice to say so: what
    /// follows the generation (the controller's saves, its tellings of
    /// networks and volumes) must still see it — a migration cancelled
    /// back to its source told that host nothing of changes made during
    /// the copy (found by the adversary).
    pub(super) fn changed_silently(&mut self) {
        self.generation += 1;
    }

    fn command(&mut self, c: Command) {
        self.generation += 1;
        assert!(
            self.commands.len() < QUEUE_MAX,
            "command queue unbounded growth"
        );
        self.commands.push_back(c);
    }

    fn notice(&mut self, now_ms: u64, n: Notice) {
        self.generation += 1;
        assert!(
            self.notices.len() < QUEUE_MAX,
            "notice queue unbounded growth"
        );
        self.notices.push_back((now_ms, n));
    }
}

/// Whether a host may be given VMs now: up, reporting through its agent,
/// not in maintenance, allowed to write to the DFS, and with its storage and
/// VM networks working (a guest there could neither open its disk nor serve).
fn can_take_vms(h: &HostRecord) -> bool {
    h.liveness == Liveness::Up
        && h.boot_id.is_some()
        && !h.spec.maintenance
        && !h.lease_revoked
        && h.bonds[BondName::Bond1.index()].carries_traffic()
        && h.bonds[BondName::Bond2.index()].carries_traffic()
        && h.holds_lease
}

impl HaManager {
    /// What stops running `vm` from live-migrating `from` → `to` with
    /// `target_free` room there (empty: it may).
    fn live_migration_blockers(
        &self,
        vm: &VmSpec,
        from: &HostId,
        to: &HostId,
        target_free: Resources,
    ) -> Vec<MigrationBlocker> {
        let target = &self.hosts[to];
        crate::migration::migration_blockers(&crate::migration::MigrationContext {
            vm,
            vm_running: true,
            source: &self.hosts[from].spec,
            target: &target.spec,
            target_up: target.liveness.is_up(),
            target_free,
            imc_mode: self.config.imc_mode,
        })
    }
}

/// The home host can take its VMs back.
fn home_ready(hosts: &BTreeMap<HostId, HostRecord>, home: &HostId) -> bool {
    hosts.get(home).is_some_and(can_take_vms)
}

fn join_blockers(all: &[MigrationBlocker]) -> String {
    all.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
