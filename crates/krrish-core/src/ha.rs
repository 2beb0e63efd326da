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

use crate::heartbeat::HeartbeatConfig;
use crate::ids::{HostId, VmId};
use crate::migration::{migration_blockers, MigrationBlocker, MigrationContext};
use crate::model::{BondHealth, BondName, HaPolicy, HostSpec, Resources, VmSpec};
use crate::placement;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use thiserror::Error;

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
    pub boot_attempts_max: u32,
    /// Wait before booting again after a failed boot.
    pub boot_retry_backoff_ms: u64,
    pub migration_timeout_ms: u64,
    /// Wait before trying a failed failback migration again.
    pub migration_retry_backoff_ms: u64,
    /// Cluster CPU-compatibility mode (allows migration across CPU models).
    pub imc_mode: bool,
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
            boot_attempts_max: 3,
            boot_retry_backoff_ms: 10_000,
            migration_timeout_ms: 600_000,
            migration_retry_backoff_ms: 60_000,
            imc_mode: false,
        }
    }
}

/// How a host was (or is being) fenced.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum FenceMethod {
    /// Power-off through the BMC (IPMI over the OGW network).
    Ipmi,
    /// DFS lease revoked and expired: the host can no longer write, and its
    /// agent has stopped its VMs.
    DfsLease,
}

impl fmt::Display for FenceMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FenceMethod::Ipmi => "IPMI power-off",
            FenceMethod::DfsLease => "DFS lease expiry",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FenceStage {
    Ipmi { deadline_ms: u64 },
    LeaseRevoking { attempt: u32, deadline_ms: u64 },
    LeaseExpiring { safe_at_ms: u64 },
}

/// What the control plane believes about a host being alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Liveness {
    Up,
    Suspect {
        misses: u32,
    },
    Fencing(FenceStage),
    Fenced {
        method: FenceMethod,
        at_ms: u64,
        boot_id: Option<u64>,
    },
    /// Neither IPMI nor the DFS lease could fence the host. Its VMs stay down
    /// until an operator acts; starting them elsewhere could run them twice.
    FenceFailed {
        at_ms: u64,
    },
}

impl Liveness {
    /// The short name used in status output and scenario expectations.
    pub fn name(&self) -> &'static str {
        match self {
            Liveness::Up => "up",
            Liveness::Suspect { .. } => "suspect",
            Liveness::Fencing(_) => "fencing",
            Liveness::Fenced { .. } => "fenced",
            Liveness::FenceFailed { .. } => "fence-failed",
        }
    }
    pub fn is_up(&self) -> bool {
        matches!(self, Liveness::Up | Liveness::Suspect { .. })
    }
}

/// A spare host's pool state.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum SpareState {
    /// In the pool, empty, ready to take over.
    Free,
    /// Running (or receiving) VMs of failed hosts.
    Active,
    /// Itself failed or being fenced.
    Unavailable,
}

impl SpareState {
    pub fn name(self) -> &'static str {
        match self {
            SpareState::Free => "free",
            SpareState::Active => "active",
            SpareState::Unavailable => "unavailable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostRecord {
    pub spec: HostSpec,
    pub liveness: Liveness,
    pub last_heartbeat_ms: u64,
    pub boot_id: Option<u64>,
    pub bonds: [BondHealth; 3],
    /// `Some` for hosts of the SPARE zone.
    pub spare: Option<SpareState>,
    /// The DFS refuses this host's lease until the controller reinstates it.
    pub lease_revoked: bool,
}

/// Why a VM is being booted.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum BootReason {
    /// New VM from the API.
    Create,
    /// HA restart on a takeover spare, from the DFS copy.
    Failover,
    /// Back on its repaired home host, from the DFS copy.
    Restore,
}

impl fmt::Display for BootReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BootReason::Create => "create",
            BootReason::Failover => "failover",
            BootReason::Restore => "restore",
        })
    }
}

/// Why a VM is down and not being acted on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DownReason {
    HaOff {
        host: HostId,
    },
    BootFailed {
        attempts: u32,
        last_error: String,
    },
    FenceFailed {
        host: HostId,
    },
    /// It stopped running on a live host and HA is off.
    Vanished {
        host: HostId,
    },
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::HaOff { host } => write!(f, "host {host} failed and HA is off for this VM"),
            DownReason::BootFailed {
                attempts,
                last_error,
            } => write!(f, "boot failed {attempts} times (last: {last_error})"),
            DownReason::Vanished { host } => {
                write!(f, "stopped running on {host} and HA is off for this VM")
            }
            DownReason::FenceFailed { host } => {
                write!(
                    f,
                    "host {host} could not be fenced; starting the VM elsewhere could run it twice"
                )
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VmState {
    Running {
        host: HostId,
    },
    Booting {
        host: HostId,
        deadline_ms: u64,
        reason: BootReason,
    },
    Migrating {
        from: HostId,
        to: HostId,
        deadline_ms: u64,
    },
    /// Its host was declared offline and is being fenced.
    HostDown {
        host: HostId,
    },
    /// To be restarted on a spare when one has room (and not before
    /// `retry_at_ms`, after a failed boot).
    WaitingForCapacity {
        failed_host: HostId,
        reported: bool,
        retry_at_ms: u64,
    },
    /// A new VM whose first boot failed, to be placed again on a production
    /// host (not before `retry_at_ms`).
    Scheduling {
        retry_at_ms: u64,
    },
    WaitingForRepair {
        host: HostId,
    },
    Down {
        reason: DownReason,
    },
    Stopped,
}

impl VmState {
    pub fn name(&self) -> &'static str {
        match self {
            VmState::Running { .. } => "running",
            VmState::Booting { .. } => "booting",
            VmState::Migrating { .. } => "migrating",
            VmState::HostDown { .. } => "host-down",
            VmState::WaitingForCapacity { .. } => "waiting-for-capacity",
            VmState::Scheduling { .. } => "scheduling",
            VmState::WaitingForRepair { .. } => "waiting-for-repair",
            VmState::Down { .. } => "down",
            VmState::Stopped => "stopped",
        }
    }

    /// Hosts whose capacity this VM holds now.
    fn holds(&self, host: &HostId) -> bool {
        match self {
            VmState::Running { host: h } | VmState::Booting { host: h, .. } => h == host,
            VmState::Migrating { from, to, .. } => from == host || to == host,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmRecord {
    pub spec: VmSpec,
    pub state: VmState,
    pub boot_attempts: u32,
    /// When the control plane declared the VM's host offline.
    pub outage_since_ms: Option<u64>,
    /// Reports in a row from its (live) host that did not list it.
    pub missed_reports: u32,
    /// Failback to its home is blocked (and was reported once).
    pub failback_blocked: bool,
    /// No failback before this (after a failed migration), so a VM that died
    /// on its spare is seen missing before it is moved again.
    pub failback_not_before_ms: u64,
}

/// A decision for a driver to carry out. The controller routes each to the
/// right agent (or to the fencing devices) and reports the result back
/// through the matching `handle_*` method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Power the host off through its BMC. Answer: [`HaManager::handle_fence_result`].
    FenceIpmi { host: HostId },
    /// Revoke the host's DFS lease. Answer: [`HaManager::handle_lease_revoked`].
    RevokeLease { host: HostId },
    /// Let the DFS grant the (returned) host leases again. Answer:
    /// [`HaManager::handle_lease_reinstated`].
    ReinstateLease { host: HostId },
    /// Boot `vm` on `host` from its DFS copy. Answer: [`HaManager::handle_boot_result`].
    BootVm {
        vm: VmSpec,
        host: HostId,
        reason: BootReason,
    },
    /// Live-migrate. Answer: [`HaManager::handle_migration_result`].
    LiveMigrate { vm: VmId, from: HostId, to: HostId },
    /// Stop a copy that must not run. No answer needed.
    StopVm { vm: VmId, host: HostId },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::FenceIpmi { host } => write!(f, "fence {host} via IPMI power-off"),
            Command::RevokeLease { host } => write!(f, "revoke DFS lease of {host}"),
            Command::ReinstateLease { host } => write!(f, "reinstate DFS lease of {host}"),
            Command::BootVm { vm, host, reason } => {
                write!(f, "boot {} on {host} from DFS copy ({reason})", vm.id)
            }
            Command::LiveMigrate { vm, from, to } => write!(f, "live-migrate {vm} {from} -> {to}"),
            Command::StopVm { vm, host } => write!(f, "stop {vm} on {host}"),
        }
    }
}

/// Something the HA manager decided or observed, for traces and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    HostSuspect {
        host: HostId,
        misses: u32,
        of: u32,
    },
    HostRecovered {
        host: HostId,
    },
    HostOffline {
        host: HostId,
        silent_ms: u64,
    },
    BondChanged {
        host: HostId,
        bond: BondName,
        health: BondHealth,
    },
    FenceStarted {
        host: HostId,
        method: FenceMethod,
    },
    FenceAttemptFailed {
        host: HostId,
        method: FenceMethod,
        why: String,
    },
    LeaseRevoked {
        host: HostId,
        expires_at_ms: u64,
        safe_at_ms: u64,
    },
    HostFenced {
        host: HostId,
        method: FenceMethod,
    },
    FenceGaveUp {
        host: HostId,
    },
    HostBack {
        host: HostId,
    },
    HostRebooted {
        host: HostId,
    },
    LeaseReinstated {
        host: HostId,
    },
    SpareActivated {
        spare: HostId,
    },
    SpareReturned {
        spare: HostId,
    },
    SpareUnavailable {
        spare: HostId,
    },
    VmBooting {
        vm: VmId,
        host: HostId,
        reason: BootReason,
    },
    VmRunning {
        vm: VmId,
        host: HostId,
    },
    VmBootFailed {
        vm: VmId,
        host: HostId,
        why: String,
    },
    VmWaitingForCapacity {
        vm: VmId,
        needs: Resources,
    },
    VmWaitingForRepair {
        vm: VmId,
        host: HostId,
    },
    VmDown {
        vm: VmId,
        reason: DownReason,
    },
    VmMigrating {
        vm: VmId,
        from: HostId,
        to: HostId,
    },
    VmMigrated {
        vm: VmId,
        to: HostId,
    },
    MigrationBlocked {
        vm: VmId,
        to: HostId,
        why: String,
    },
    MigrationFailed {
        vm: VmId,
        why: String,
    },
    VmVanished {
        vm: VmId,
        host: HostId,
    },
    StrayCopy {
        vm: VmId,
        host: HostId,
    },
    UnknownHost {
        host: HostId,
    },
    /// The controller restarted from its store.
    Restored {
        hosts: usize,
        vms: usize,
        refencing: usize,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Notice::*;
        match self {
            HostSuspect { host, misses, of } => {
                write!(f, "host {host} suspect: {misses} of {of} heartbeats missed")
            }
            HostRecovered { host } => write!(f, "host {host} heartbeats resumed"),
            HostOffline { host, silent_ms } => {
                write!(f, "host {host} offline: silent for {}", secs(*silent_ms))
            }
            BondChanged { host, bond, health } => {
                write!(f, "host {host} {bond} ({}) {health}", bond.role())
            }
            FenceStarted { host, method } => write!(f, "fencing {host} by {method}"),
            FenceAttemptFailed { host, method, why } => {
                write!(f, "fencing {host} by {method} failed: {why}")
            }
            LeaseRevoked {
                host,
                expires_at_ms,
                safe_at_ms,
            } => write!(
                f,
                "DFS lease of {host} revoked: expires at {}, safe at {}",
                secs(*expires_at_ms),
                secs(*safe_at_ms)
            ),
            HostFenced { host, method } => write!(f, "host {host} fenced by {method}"),
            FenceGaveUp { host } => write!(
                f,
                "host {host} could not be fenced: its VMs stay down until an operator acts"
            ),
            HostBack { host } => write!(f, "host {host} is back"),
            HostRebooted { host } => write!(f, "host {host} rebooted: its guests died with it"),
            LeaseReinstated { host } => write!(f, "DFS lease of {host} reinstated"),
            SpareActivated { spare } => write!(f, "spare {spare} active"),
            SpareReturned { spare } => write!(f, "spare {spare} returned to the pool"),
            SpareUnavailable { spare } => write!(f, "spare {spare} unavailable"),
            VmBooting { vm, host, reason } => write!(f, "vm {vm} booting on {host} ({reason})"),
            VmRunning { vm, host } => write!(f, "vm {vm} running on {host}"),
            VmBootFailed { vm, host, why } => write!(f, "vm {vm} failed to boot on {host}: {why}"),
            VmWaitingForCapacity { vm, needs } => {
                write!(f, "vm {vm} waiting for capacity (needs {needs})")
            }
            VmWaitingForRepair { vm, host } => {
                write!(
                    f,
                    "vm {vm} waits for {host} to be repaired (restore-on-repair)"
                )
            }
            VmDown { vm, reason } => write!(f, "vm {vm} down: {reason}"),
            VmMigrating { vm, from, to } => write!(f, "vm {vm} live-migrating {from} -> {to}"),
            VmMigrated { vm, to } => write!(f, "vm {vm} migrated to {to}"),
            MigrationBlocked { vm, to, why } => {
                write!(f, "vm {vm} cannot live-migrate to {to}: {why}")
            }
            MigrationFailed { vm, why } => write!(f, "vm {vm} migration failed: {why}"),
            VmVanished { vm, host } => {
                write!(
                    f,
                    "vm {vm} no longer runs on {host} (missing from its reports)"
                )
            }
            StrayCopy { vm, host } => write!(f, "vm {vm} has a stray copy on {host}: stopping it"),
            Restored { hosts, vms, refencing } => write!(
                f,
                "state restored: {hosts} hosts, {vms} VMs; fencing {refencing} host(s) again from the start"
            ),
            UnknownHost { host } => write!(f, "heartbeat from unknown host {host} ignored"),
        }
    }
}

/// Seconds with millisecond precision, as traces print times.
pub fn secs(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// What an agent reports with each heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostReport {
    /// Changes every time the host powers on.
    pub boot_id: u64,
    pub bonds: [BondHealth; 3],
    /// VMs whose domains run on the host now.
    pub running: Vec<VmId>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApiError {
    #[error("vm {0} already exists")]
    VmExists(VmId),
    #[error("no vm named {0}")]
    NoSuchVm(VmId),
    #[error("no host named {0}")]
    NoSuchHost(HostId),
    #[error("host {host} cannot take the vm: {why}")]
    HostUnusable { host: HostId, why: String },
    #[error("no production host has room for {0}")]
    NoCapacity(Resources),
    #[error("vm {vm} cannot live-migrate to {to}: {why}")]
    MigrationBlocked { vm: VmId, to: HostId, why: String },
    #[error("vm {vm} is {state}, not running")]
    NotRunning { vm: VmId, state: &'static str },
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
    vms: BTreeMap<VmId, VmRecord>,
    commands: VecDeque<Command>,
    notices: VecDeque<(u64, Notice)>,
    failover_boots: u64,
    /// The latest `now` seen by [`Self::handle_timeout`].
    last_timeout_ms: u64,
    /// Bumped by every decision (notice or command): what a store watches.
    generation: u64,
}

/// What the controller persists: the records, without timers' meaning
/// (deadlines are re-based on restore).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CoreSnapshot {
    pub hosts: Vec<HostRecord>,
    pub vms: Vec<VmRecord>,
    pub failover_boots: u64,
}

impl HaManager {
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
                    boot_id: None,
                    bonds: [BondHealth::Ok; 3],
                    spare,
                    lease_revoked: false,
                    spec,
                };
                (rec.spec.id.clone(), rec)
            })
            .collect();
        let vms = vms
            .into_iter()
            .map(|spec| {
                let rec = VmRecord {
                    state: VmState::Running {
                        host: spec.home.clone(),
                    },
                    boot_attempts: 0,
                    outage_since_ms: None,
                    missed_reports: 0,
                    failback_blocked: false,
                    failback_not_before_ms: 0,
                    spec,
                };
                (rec.spec.id.clone(), rec)
            })
            .collect();
        Self {
            config,
            hosts,
            vms,
            commands: VecDeque::new(),
            notices: VecDeque::new(),
            failover_boots: 0,
            last_timeout_ms: now_ms,
            generation: 0,
        }
    }

    /// Changes with every decision; equal generations, equal state worth
    /// persisting.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The state to persist.
    pub fn snapshot(&self) -> CoreSnapshot {
        CoreSnapshot {
            hosts: self.hosts.values().cloned().collect(),
            vms: self.vms.values().cloned().collect(),
            failover_boots: self.failover_boots,
        }
    }

    /// A controller restarting from `snap`. Host specs come from the cluster
    /// definition (`hosts`); states from the snapshot. Every deadline is
    /// re-based on `now_ms` (the new process's clock may start anywhere);
    /// every host counts as just heard from; a host that was being fenced is
    /// fenced again from the start — never skipped; VMs booting or migrating
    /// keep waiting for their answers or time-outs.
    pub fn restore(
        now_ms: u64,
        config: HaConfig,
        hosts: Vec<HostSpec>,
        snap: CoreSnapshot,
    ) -> Self {
        let mut m = Self::new(now_ms, config, hosts, Vec::new());
        let known: BTreeMap<HostId, HostRecord> = snap
            .hosts
            .into_iter()
            .map(|h| (h.spec.id.clone(), h))
            .collect();
        let mut refence = Vec::new();
        for (id, rec) in m.hosts.iter_mut() {
            let Some(old) = known.get(id) else { continue };
            rec.boot_id = old.boot_id;
            rec.bonds = old.bonds;
            rec.spare = old.spare;
            rec.lease_revoked = old.lease_revoked;
            rec.liveness = match old.liveness {
                Liveness::Up | Liveness::Suspect { .. } => Liveness::Up,
                Liveness::Fencing(_) => {
                    refence.push(id.clone());
                    Liveness::Fencing(FenceStage::Ipmi {
                        deadline_ms: now_ms + m.config.fence_timeout_ms,
                    })
                }
                Liveness::Fenced {
                    method, boot_id, ..
                } => Liveness::Fenced {
                    method,
                    at_ms: now_ms,
                    boot_id,
                },
                Liveness::FenceFailed { .. } => Liveness::FenceFailed { at_ms: now_ms },
            };
        }
        for mut vm in snap.vms {
            vm.state = match vm.state {
                VmState::Booting { host, reason, .. } => VmState::Booting {
                    host,
                    reason,
                    deadline_ms: now_ms + m.config.boot_timeout_ms,
                },
                VmState::Migrating { from, to, .. } => VmState::Migrating {
                    from,
                    to,
                    deadline_ms: now_ms + m.config.migration_timeout_ms,
                },
                VmState::WaitingForCapacity {
                    failed_host,
                    reported,
                    ..
                } => VmState::WaitingForCapacity {
                    failed_host,
                    reported,
                    retry_at_ms: now_ms,
                },
                VmState::Scheduling { .. } => VmState::Scheduling {
                    retry_at_ms: now_ms,
                },
                other => other,
            };
            vm.outage_since_ms = vm.outage_since_ms.map(|_| now_ms);
            vm.failback_not_before_ms = 0;
            vm.missed_reports = 0;
            m.vms.insert(vm.spec.id.clone(), vm);
        }
        m.failover_boots = snap.failover_boots;
        m.notice(
            now_ms,
            Notice::Restored {
                hosts: m.hosts.len(),
                vms: m.vms.len(),
                refencing: refence.len(),
            },
        );
        for id in refence {
            m.start_ipmi_fence(now_ms, &id);
        }
        m
    }

    /// Boots ordered onto a takeover spare so far.
    pub fn failover_boots(&self) -> u64 {
        self.failover_boots
    }

    pub fn config(&self) -> &HaConfig {
        &self.config
    }
    pub fn hosts(&self) -> &BTreeMap<HostId, HostRecord> {
        &self.hosts
    }
    pub fn vms(&self) -> &BTreeMap<VmId, VmRecord> {
        &self.vms
    }

    /// Free capacity of `host`: its capacity less every VM that holds it.
    pub fn free_capacity(&self, host: &HostId) -> Resources {
        let Some(h) = self.hosts.get(host) else {
            return Resources::ZERO;
        };
        let used = self
            .vms
            .values()
            .filter(|v| v.state.holds(host))
            .fold(Resources::ZERO, |acc, v| acc.add(&v.spec.demand));
        h.spec.capacity.saturating_sub(&used)
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
                let last = h.last_heartbeat_ms;
                // Wake at the next miss boundary after the last heartbeat.
                let misses = match h.liveness {
                    Liveness::Suspect { misses } => misses,
                    _ => 0,
                };
                Some(last + hb.grace_ms + u64::from(misses + 1) * hb.interval_ms)
            }
            Liveness::Fencing(FenceStage::Ipmi { deadline_ms })
            | Liveness::Fencing(FenceStage::LeaseRevoking { deadline_ms, .. }) => Some(deadline_ms),
            Liveness::Fencing(FenceStage::LeaseExpiring { safe_at_ms }) => Some(safe_at_ms),
            Liveness::Fenced { .. } | Liveness::FenceFailed { .. } => None,
        });
        let vms = self.vms.values().filter_map(|v| match &v.state {
            VmState::Booting { deadline_ms, .. } | VmState::Migrating { deadline_ms, .. } => {
                Some(*deadline_ms)
            }
            VmState::WaitingForCapacity { retry_at_ms, .. }
            | VmState::Scheduling { retry_at_ms } => self.has_backoff(*retry_at_ms),
            _ => None,
        });
        hosts.chain(vms).min()
    }

    /// A back-off deadline still ahead (past ones need no wake-up: the VM
    /// then waits for capacity to appear).
    fn has_backoff(&self, retry_at_ms: u64) -> Option<u64> {
        (retry_at_ms > self.last_timeout_ms).then_some(retry_at_ms)
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

    // ---- inputs --------------------------------------------------------

    /// A heartbeat arrived from `host`.
    pub fn handle_heartbeat(&mut self, now_ms: u64, host: &HostId, report: &HostReport) {
        let Some(h) = self.hosts.get_mut(host) else {
            self.notice(now_ms, Notice::UnknownHost { host: host.clone() });
            return;
        };
        let liveness = h.liveness;
        match liveness {
            Liveness::Up | Liveness::Suspect { .. } => {
                let rebooted = h.boot_id.is_some_and(|b| b != report.boot_id);
                h.last_heartbeat_ms = now_ms;
                h.boot_id = Some(report.boot_id);
                h.liveness = Liveness::Up;
                if h.lease_revoked {
                    // Still waiting for the DFS to take the host back.
                    self.command(Command::ReinstateLease { host: host.clone() });
                }
                if matches!(liveness, Liveness::Suspect { .. }) {
                    self.notice(now_ms, Notice::HostRecovered { host: host.clone() });
                }
                self.update_bonds(now_ms, host, report.bonds);
                if rebooted {
                    self.on_quick_reboot(now_ms, host, &report.running);
                }
                self.reconcile_running(now_ms, host, &report.running);
                // Its VMs may be waiting on a spare for it to be fit again.
                if home_ready(&self.hosts, host) {
                    self.fail_back_sweep_for(now_ms, Some(host));
                }
            }
            // A fencing decision is final: heartbeats do not undo it.
            Liveness::Fencing(_) => {}
            Liveness::Fenced {
                boot_id, method, ..
            } => {
                // A powered-off host returns only by booting again; one cut
                // off by its lease may return as it is, once it runs nothing.
                let rebooted = boot_id != Some(report.boot_id);
                if rebooted || (method == FenceMethod::DfsLease && report.running.is_empty()) {
                    self.rejoin(now_ms, host, report);
                    self.reconcile_running(now_ms, host, &report.running);
                    self.on_host_back(now_ms, host);
                } else {
                    // Fenced yet still running domains: stop them, do not
                    // take the host back until it is empty.
                    for vm in &report.running {
                        self.stray(now_ms, vm, host);
                    }
                }
            }
            Liveness::FenceFailed { .. } => {
                // Reachable again without having been fenced: nothing was
                // started elsewhere, so its VMs simply run where they are.
                self.rejoin(now_ms, host, report);
                for vm in self.vms.values_mut() {
                    let on_host = match &vm.state {
                        VmState::HostDown { host: h } => h == host,
                        VmState::Down {
                            reason: DownReason::FenceFailed { host: h },
                        } => h == host,
                        _ => false,
                    };
                    if on_host && report.running.contains(&vm.spec.id) {
                        vm.state = VmState::Running { host: host.clone() };
                        vm.outage_since_ms = None;
                    }
                }
                self.on_host_back(now_ms, host);
            }
        }
        self.refresh_spares(now_ms);
    }

    /// A fenced (or unfenceable) host heartbeats again: it is up.
    fn rejoin(&mut self, now_ms: u64, host: &HostId, report: &HostReport) {
        let h = self.hosts.get_mut(host).expect("caller checked");
        h.liveness = Liveness::Up;
        h.last_heartbeat_ms = now_ms;
        h.boot_id = Some(report.boot_id);
        self.notice(now_ms, Notice::HostBack { host: host.clone() });
        self.update_bonds(now_ms, host, report.bonds);
    }

    /// Fencing starts (or starts over) with an IPMI power-off.
    fn start_ipmi_fence(&mut self, now_ms: u64, host: &HostId) {
        self.hosts.get_mut(host).expect("caller checked").liveness =
            Liveness::Fencing(FenceStage::Ipmi {
                deadline_ms: now_ms + self.config.fence_timeout_ms,
            });
        self.notice(
            now_ms,
            Notice::FenceStarted {
                host: host.clone(),
                method: FenceMethod::Ipmi,
            },
        );
        self.command(Command::FenceIpmi { host: host.clone() });
    }

    fn update_bonds(&mut self, now_ms: u64, host: &HostId, bonds: [BondHealth; 3]) {
        let h = self.hosts.get_mut(host).expect("caller checked");
        let old = h.bonds;
        h.bonds = bonds;
        for bond in BondName::ALL {
            let (was, is) = (old[bond.index()], bonds[bond.index()]);
            if was != is {
                self.notice(
                    now_ms,
                    Notice::BondChanged {
                        host: host.clone(),
                        bond,
                        health: is,
                    },
                );
            }
        }
    }

    /// Compares what a live host runs with what the control plane expects.
    fn reconcile_running(&mut self, now_ms: u64, host: &HostId, running: &[VmId]) {
        // A boot whose answer was lost (connection replaced) shows up here.
        let booted: Vec<VmId> = running
            .iter()
            .filter(|vm| {
                matches!(self.vms.get(*vm).map(|v| &v.state),
                    Some(VmState::Booting { host: h, .. }) if h == host)
            })
            .cloned()
            .collect();
        for vm in booted {
            self.handle_boot_result(now_ms, &vm, host, Ok(()));
        }
        for vm in running {
            let expected = match self.vms.get(vm).map(|v| &v.state) {
                None => false,
                Some(VmState::Running { host: h }) | Some(VmState::Booting { host: h, .. }) => {
                    h == host
                }
                Some(VmState::Migrating { from, to, .. }) => from == host || to == host,
                Some(_) => false,
            };
            if !expected {
                self.stray(now_ms, vm, host);
            }
        }
        // A VM its live host stopped listing has died (guest crash, a reboot
        // the controller did not see). One report could be older than the
        // switch-over of a migration, so it takes two in a row. Restarting on
        // the same host can never make a second copy.
        let mut vanished = Vec::new();
        for (id, v) in self.vms.iter_mut() {
            if matches!(&v.state, VmState::Running { host: h } if h == host) {
                if running.contains(id) {
                    v.missed_reports = 0;
                } else {
                    v.missed_reports += 1;
                    if v.missed_reports >= VANISHED_AFTER_REPORTS {
                        v.missed_reports = 0;
                        vanished.push(id.clone());
                    }
                }
            }
        }
        for id in vanished {
            self.notice(
                now_ms,
                Notice::VmVanished {
                    vm: id.clone(),
                    host: host.clone(),
                },
            );
            self.restart_dead(
                now_ms,
                &id,
                host,
                DownReason::Vanished { host: host.clone() },
            );
        }
        if !self
            .vms
            .values()
            .any(|v| matches!(v.state, VmState::WaitingForCapacity { .. }))
        {
            return;
        }
        self.place_waiting(now_ms);
    }

    fn stray(&mut self, now_ms: u64, vm: &VmId, host: &HostId) {
        self.notice(
            now_ms,
            Notice::StrayCopy {
                vm: vm.clone(),
                host: host.clone(),
            },
        );
        self.command(Command::StopVm {
            vm: vm.clone(),
            host: host.clone(),
        });
    }

    /// Time passed: count heartbeat misses, expire fencing and boot waits.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.last_timeout_ms = self.last_timeout_ms.max(now_ms);
        let hb = self.config.heartbeat;
        let ids: Vec<HostId> = self.hosts.keys().cloned().collect();
        for id in &ids {
            let h = &self.hosts[id];
            match h.liveness {
                Liveness::Up | Liveness::Suspect { .. } => {
                    let misses = hb.misses(h.last_heartbeat_ms, now_ms);
                    let before = match h.liveness {
                        Liveness::Suspect { misses } => misses,
                        _ => 0,
                    };
                    if misses >= hb.misses_max {
                        let silent_ms = now_ms - h.last_heartbeat_ms;
                        self.declare_offline(now_ms, id, silent_ms);
                    } else if misses > before {
                        self.hosts.get_mut(id).expect("listed").liveness =
                            Liveness::Suspect { misses };
                        self.notice(
                            now_ms,
                            Notice::HostSuspect {
                                host: id.clone(),
                                misses,
                                of: hb.misses_max,
                            },
                        );
                    }
                }
                Liveness::Fencing(FenceStage::Ipmi { deadline_ms }) if now_ms >= deadline_ms => {
                    let why = format!(
                        "BMC did not confirm power-off within {}",
                        secs(self.config.fence_timeout_ms)
                    );
                    self.ipmi_failed(now_ms, id, why);
                }
                Liveness::Fencing(FenceStage::LeaseRevoking {
                    attempt,
                    deadline_ms,
                }) if now_ms >= deadline_ms => {
                    if attempt >= self.config.lease_revoke_attempts_max {
                        self.fence_gave_up(now_ms, id);
                    } else {
                        self.hosts.get_mut(id).expect("listed").liveness =
                            Liveness::Fencing(FenceStage::LeaseRevoking {
                                attempt: attempt + 1,
                                deadline_ms: now_ms + self.config.lease_revoke_retry_ms,
                            });
                        self.command(Command::RevokeLease { host: id.clone() });
                    }
                }
                Liveness::Fencing(FenceStage::LeaseExpiring { safe_at_ms })
                    if now_ms >= safe_at_ms =>
                {
                    self.fenced(now_ms, id, FenceMethod::DfsLease);
                }
                _ => {}
            }
        }
        let vm_ids: Vec<VmId> = self.vms.keys().cloned().collect();
        for id in vm_ids {
            match self.vms[&id].state.clone() {
                VmState::Booting {
                    host, deadline_ms, ..
                } if now_ms >= deadline_ms => {
                    self.command(Command::StopVm {
                        vm: id.clone(),
                        host: host.clone(),
                    });
                    self.boot_failed(
                        now_ms,
                        &id,
                        &host,
                        "no answer before the boot timeout".into(),
                    );
                }
                VmState::Migrating {
                    from, deadline_ms, ..
                } if now_ms >= deadline_ms => {
                    // The source keeps the VM until switchover completes.
                    self.vms.get_mut(&id).expect("listed").state = VmState::Running { host: from };
                    self.notice(
                        now_ms,
                        Notice::MigrationFailed {
                            vm: id.clone(),
                            why: "timed out".into(),
                        },
                    );
                }
                _ => {}
            }
        }
        self.fail_back_sweep(now_ms);
        self.place_waiting(now_ms);
        self.refresh_spares(now_ms);
    }

    fn declare_offline(&mut self, now_ms: u64, host: &HostId, silent_ms: u64) {
        self.notice(
            now_ms,
            Notice::HostOffline {
                host: host.clone(),
                silent_ms,
            },
        );
        for vm in self.vms.values_mut() {
            let next = match &vm.state {
                VmState::Running { host: h } | VmState::Booting { host: h, .. } if h == host => {
                    Some(VmState::HostDown { host: host.clone() })
                }
                VmState::Migrating { from, .. } if from == host => {
                    Some(VmState::HostDown { host: host.clone() })
                }
                // The source still runs it; the half-arrived copy is discarded.
                VmState::Migrating { from, to, .. } if to == host => {
                    Some(VmState::Running { host: from.clone() })
                }
                _ => None,
            };
            if let Some(s) = next {
                if matches!(s, VmState::HostDown { .. }) {
                    vm.outage_since_ms = Some(now_ms);
                }
                vm.state = s;
            }
        }
        self.start_ipmi_fence(now_ms, host);
    }

    /// The BMC answered (or the IPMI call failed).
    pub fn handle_fence_result(&mut self, now_ms: u64, host: &HostId, result: Result<(), String>) {
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        if !matches!(h.liveness, Liveness::Fencing(FenceStage::Ipmi { .. })) {
            return; // late answer after the timeout already moved on
        }
        match result {
            Ok(()) => self.fenced(now_ms, host, FenceMethod::Ipmi),
            Err(why) => self.ipmi_failed(now_ms, host, why),
        }
        self.refresh_spares(now_ms);
    }

    fn ipmi_failed(&mut self, now_ms: u64, host: &HostId, why: String) {
        self.notice(
            now_ms,
            Notice::FenceAttemptFailed {
                host: host.clone(),
                method: FenceMethod::Ipmi,
                why,
            },
        );
        self.notice(
            now_ms,
            Notice::FenceStarted {
                host: host.clone(),
                method: FenceMethod::DfsLease,
            },
        );
        self.hosts.get_mut(host).expect("caller checked").liveness =
            Liveness::Fencing(FenceStage::LeaseRevoking {
                attempt: 1,
                deadline_ms: now_ms + self.config.lease_revoke_retry_ms,
            });
        self.command(Command::RevokeLease { host: host.clone() });
    }

    /// The DFS answered a revocation: the lease ends at `expires_at_ms`.
    pub fn handle_lease_revoked(
        &mut self,
        now_ms: u64,
        host: &HostId,
        result: Result<u64, String>,
    ) {
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        if !matches!(
            h.liveness,
            Liveness::Fencing(FenceStage::LeaseRevoking { .. })
        ) {
            return;
        }
        match result {
            Ok(expires_at_ms) => {
                let safe_at_ms = expires_at_ms.max(now_ms) + self.config.lease_margin_ms;
                let h = self.hosts.get_mut(host).expect("checked");
                h.liveness = Liveness::Fencing(FenceStage::LeaseExpiring { safe_at_ms });
                h.lease_revoked = true;
                self.notice(
                    now_ms,
                    Notice::LeaseRevoked {
                        host: host.clone(),
                        expires_at_ms,
                        safe_at_ms,
                    },
                );
            }
            Err(why) => self.notice(
                now_ms,
                Notice::FenceAttemptFailed {
                    host: host.clone(),
                    method: FenceMethod::DfsLease,
                    why,
                },
            ),
        }
    }

    fn fence_gave_up(&mut self, now_ms: u64, host: &HostId) {
        self.hosts.get_mut(host).expect("caller checked").liveness =
            Liveness::FenceFailed { at_ms: now_ms };
        self.notice(now_ms, Notice::FenceGaveUp { host: host.clone() });
        let ids: Vec<VmId> = self
            .vms
            .iter()
            .filter(|(_, v)| v.state == VmState::HostDown { host: host.clone() })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let reason = DownReason::FenceFailed { host: host.clone() };
            self.vms.get_mut(&id).expect("listed").state = VmState::Down {
                reason: reason.clone(),
            };
            self.notice(now_ms, Notice::VmDown { vm: id, reason });
        }
    }

    fn fenced(&mut self, now_ms: u64, host: &HostId, method: FenceMethod) {
        let h = self.hosts.get_mut(host).expect("caller checked");
        h.liveness = Liveness::Fenced {
            method,
            at_ms: now_ms,
            boot_id: h.boot_id,
        };
        self.notice(
            now_ms,
            Notice::HostFenced {
                host: host.clone(),
                method,
            },
        );
        // Only now may its VMs start anywhere else.
        let ids: Vec<VmId> = self
            .vms
            .iter()
            .filter(|(_, v)| v.state == VmState::HostDown { host: host.clone() })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let vm = self.vms.get_mut(&id).expect("listed");
            match vm.spec.ha {
                HaPolicy::Restart => {
                    vm.state = VmState::WaitingForCapacity {
                        failed_host: host.clone(),
                        reported: false,
                        retry_at_ms: now_ms,
                    };
                    vm.boot_attempts = 0;
                }
                HaPolicy::RestoreOnRepair => {
                    vm.state = VmState::WaitingForRepair {
                        host: vm.spec.home.clone(),
                    };
                    let home = vm.spec.home.clone();
                    self.notice(now_ms, Notice::VmWaitingForRepair { vm: id, host: home });
                }
                HaPolicy::Off => {
                    let reason = DownReason::HaOff { host: host.clone() };
                    vm.state = VmState::Down {
                        reason: reason.clone(),
                    };
                    self.notice(now_ms, Notice::VmDown { vm: id, reason });
                }
            }
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    /// Restarts what waits for capacity onto healthy spares, a failed host's
    /// VMs as one group where one spare can take them all.
    fn place_waiting(&mut self, now_ms: u64) {
        let spares: Vec<HostId> = self
            .hosts
            .values()
            .filter(|h| h.spare.is_some() && can_take_vms(h))
            .map(|h| h.spec.id.clone())
            .collect();
        let mut free: Vec<Resources> = spares.iter().map(|s| self.free_capacity(s)).collect();
        // Group by failed host (BTreeMap: deterministic), VMs by priority.
        let mut groups: BTreeMap<HostId, Vec<(u32, VmId)>> = BTreeMap::new();
        // VMs whose home is up again go there instead of to a spare.
        let mut go_home: Vec<VmId> = Vec::new();
        for (id, v) in &self.vms {
            if let VmState::WaitingForCapacity {
                failed_host,
                retry_at_ms,
                ..
            } = &v.state
            {
                if *retry_at_ms > now_ms {
                    continue; // backing off after a failed boot
                }
                if home_ready(&self.hosts, &v.spec.home) {
                    go_home.push(id.clone());
                    continue;
                }
                groups
                    .entry(failed_host.clone())
                    .or_default()
                    .push((v.spec.priority, id.clone()));
            }
        }
        for id in go_home {
            let home = self.vms[&id].spec.home.clone();
            if self.vms[&id]
                .spec
                .demand
                .fits_in(&self.free_capacity(&home))
            {
                self.boot(now_ms, &id, &home, BootReason::Restore);
            } else {
                groups
                    .entry(home)
                    .or_default()
                    .push((self.vms[&id].spec.priority, id.clone()));
            }
        }
        for (_, mut members) in groups {
            members.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let demands: Vec<Resources> = members
                .iter()
                .map(|(_, id)| self.vms[id].spec.demand)
                .collect();
            let placed = placement::place_group(&mut free, &demands);
            for ((_, id), spot) in members.iter().zip(placed) {
                match spot {
                    Some(i) => self.boot(now_ms, id, &spares[i], BootReason::Failover),
                    None => {
                        let vm = self.vms.get_mut(id).expect("listed");
                        if let VmState::WaitingForCapacity { reported, .. } = &mut vm.state {
                            if !*reported {
                                *reported = true;
                                let needs = vm.spec.demand;
                                self.notice(
                                    now_ms,
                                    Notice::VmWaitingForCapacity {
                                        vm: id.clone(),
                                        needs,
                                    },
                                );
                            }
                        }
                    }
                }
            }
        }
        self.schedule_new(now_ms);
        self.refresh_spares(now_ms);
    }

    /// VMs running on a spare while their home is healthy go home (failback
    /// does not depend on catching the moment the home returned).
    fn fail_back_sweep(&mut self, now_ms: u64) {
        self.fail_back_sweep_for(now_ms, None);
    }

    /// The sweep, for the VMs of one home host or of all.
    fn fail_back_sweep_for(&mut self, now_ms: u64, home: Option<&HostId>) {
        let candidates: Vec<(VmId, HostId, HostId)> = self
            .vms
            .iter()
            .filter_map(|(id, v)| match &v.state {
                VmState::Running { host }
                    if host != &v.spec.home
                        && home.is_none_or(|h| h == &v.spec.home)
                        && v.failback_not_before_ms <= now_ms
                        && self.hosts.get(host).is_some_and(|h| h.spare.is_some())
                        && home_ready(&self.hosts, &v.spec.home) =>
                {
                    Some((id.clone(), host.clone(), v.spec.home.clone()))
                }
                _ => None,
            })
            .collect();
        for (id, from, home) in candidates {
            self.fail_back(now_ms, &id, &from, &home);
        }
    }

    /// Production hosts that may take a new VM, with their free capacity.
    fn production_candidates(&self) -> (Vec<HostId>, Vec<Resources>) {
        let ids: Vec<HostId> = self
            .hosts
            .values()
            .filter(|h| h.spare.is_none() && h.spec.zone.runs_vms() && can_take_vms(h))
            .map(|h| h.spec.id.clone())
            .collect();
        let free = ids.iter().map(|h| self.free_capacity(h)).collect();
        (ids, free)
    }

    /// Places new VMs whose boot failed again, after their back-off.
    fn schedule_new(&mut self, now_ms: u64) {
        let due: Vec<VmId> = self
            .vms
            .iter()
            .filter(|(_, v)| matches!(v.state, VmState::Scheduling { retry_at_ms } if retry_at_ms <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let (ids, free) = self.production_candidates();
            match placement::most_free(&free, &self.vms[&id].spec.demand) {
                Some(i) => self.boot(now_ms, &id, &ids[i], BootReason::Create),
                None => {
                    // Try again after another back-off.
                    self.vms.get_mut(&id).expect("listed").state = VmState::Scheduling {
                        retry_at_ms: now_ms + self.config.boot_retry_backoff_ms,
                    };
                }
            }
        }
    }

    fn boot(&mut self, now_ms: u64, id: &VmId, host: &HostId, reason: BootReason) {
        let vm = self.vms.get_mut(id).expect("caller checked");
        vm.state = VmState::Booting {
            host: host.clone(),
            deadline_ms: now_ms + self.config.boot_timeout_ms,
            reason,
        };
        vm.boot_attempts += 1;
        let spec = vm.spec.clone();
        if reason == BootReason::Failover {
            self.failover_boots += 1;
        }
        self.notice(
            now_ms,
            Notice::VmBooting {
                vm: id.clone(),
                host: host.clone(),
                reason,
            },
        );
        self.command(Command::BootVm {
            vm: spec,
            host: host.clone(),
            reason,
        });
    }

    /// An agent finished (or failed) a boot.
    pub fn handle_boot_result(
        &mut self,
        now_ms: u64,
        vm: &VmId,
        host: &HostId,
        result: Result<(), String>,
    ) {
        let Some(rec) = self.vms.get_mut(vm) else {
            return;
        };
        match &rec.state {
            VmState::Booting { host: h, .. } if h == host => {}
            _ => return, // stale answer
        }
        match result {
            Ok(()) => {
                rec.state = VmState::Running { host: host.clone() };
                rec.outage_since_ms = None;
                rec.boot_attempts = 0;
                self.notice(
                    now_ms,
                    Notice::VmRunning {
                        vm: vm.clone(),
                        host: host.clone(),
                    },
                );
            }
            Err(why) => self.boot_failed(now_ms, vm, host, why),
        }
        self.refresh_spares(now_ms);
    }

    fn boot_failed(&mut self, now_ms: u64, id: &VmId, host: &HostId, why: String) {
        self.notice(
            now_ms,
            Notice::VmBootFailed {
                vm: id.clone(),
                host: host.clone(),
                why: why.clone(),
            },
        );
        let reason = match &self.vms[id].state {
            VmState::Booting { reason, .. } => *reason,
            _ => BootReason::Failover,
        };
        let retry_at_ms = now_ms + self.config.boot_retry_backoff_ms;
        let vm = self.vms.get_mut(id).expect("caller checked");
        if vm.boot_attempts >= self.config.boot_attempts_max {
            let reason = DownReason::BootFailed {
                attempts: vm.boot_attempts,
                last_error: why,
            };
            vm.state = VmState::Down {
                reason: reason.clone(),
            };
            self.notice(
                now_ms,
                Notice::VmDown {
                    vm: id.clone(),
                    reason,
                },
            );
        } else {
            vm.state = match reason {
                BootReason::Create => VmState::Scheduling { retry_at_ms },
                // A spare, or the repaired home host, could not boot it: it
                // waits for a spare, as after a failure.
                BootReason::Failover | BootReason::Restore => VmState::WaitingForCapacity {
                    failed_host: host.clone(),
                    reported: false,
                    retry_at_ms,
                },
            };
        }
    }

    /// The host rebooted before it was missed (a panic and a fast reboot):
    /// the guests it ran before died with it. What it lists now was started
    /// on the new boot and lives; boots and migrations in flight are left to
    /// their answers or time-outs. The dead restart by policy, at home first.
    fn on_quick_reboot(&mut self, now_ms: u64, host: &HostId, running: &[VmId]) {
        self.notice(now_ms, Notice::HostRebooted { host: host.clone() });
        let dead: Vec<VmId> = self
            .vms
            .iter()
            .filter(|(id, v)| {
                matches!(&v.state, VmState::Running { host: h } if h == host)
                    && !running.contains(id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            self.restart_dead(now_ms, &id, host, DownReason::HaOff { host: host.clone() });
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    /// A VM that died on a live `host` (reboot, guest crash) restarts by
    /// policy: in place when the host can run it — which can never make a
    /// second copy — else queued for its home or a spare. HA off: down.
    fn restart_dead(&mut self, now_ms: u64, id: &VmId, host: &HostId, if_off: DownReason) {
        let in_place = can_take_vms(&self.hosts[host]);
        let vm = self.vms.get_mut(id).expect("caller checked");
        vm.outage_since_ms = Some(now_ms);
        vm.boot_attempts = 0;
        match vm.spec.ha {
            HaPolicy::Off => {
                vm.state = VmState::Down {
                    reason: if_off.clone(),
                };
                self.notice(
                    now_ms,
                    Notice::VmDown {
                        vm: id.clone(),
                        reason: if_off,
                    },
                );
            }
            HaPolicy::Restart | HaPolicy::RestoreOnRepair if in_place => {
                vm.state = VmState::Stopped;
                self.boot(now_ms, id, host, BootReason::Restore);
            }
            HaPolicy::Restart | HaPolicy::RestoreOnRepair => {
                vm.state = VmState::WaitingForCapacity {
                    failed_host: host.clone(),
                    reported: false,
                    retry_at_ms: now_ms,
                };
            }
        }
    }

    /// The DFS answered a reinstatement.
    pub fn handle_lease_reinstated(
        &mut self,
        now_ms: u64,
        host: &HostId,
        result: Result<(), String>,
    ) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        if !h.lease_revoked {
            return;
        }
        match result {
            Ok(()) => {
                h.lease_revoked = false;
                self.notice(now_ms, Notice::LeaseReinstated { host: host.clone() });
                if self.hosts[host].liveness.is_up() {
                    self.on_host_back(now_ms, host);
                }
            }
            Err(why) => {
                // Asked again at the host's next heartbeat.
                self.notice(
                    now_ms,
                    Notice::FenceAttemptFailed {
                        host: host.clone(),
                        method: FenceMethod::DfsLease,
                        why: format!("reinstating the lease failed: {why}"),
                    },
                );
            }
        }
        self.refresh_spares(now_ms);
    }

    /// A repaired host heartbeats again: restore and fail back what is its —
    /// once the DFS lets it write again.
    fn on_host_back(&mut self, now_ms: u64, host: &HostId) {
        if self.hosts[host].lease_revoked {
            self.command(Command::ReinstateLease { host: host.clone() });
            return;
        }
        let ids: Vec<VmId> = self
            .vms
            .iter()
            .filter(|(_, v)| &v.spec.home == host)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let state = self.vms[&id].state.clone();
            match state {
                VmState::Running { host: on } if &on != host => {
                    self.fail_back(now_ms, &id, &on, host)
                }
                VmState::WaitingForCapacity { .. } | VmState::WaitingForRepair { .. } => {
                    let free = self.free_capacity(host);
                    if self.vms[&id].spec.demand.fits_in(&free) {
                        self.vms.get_mut(&id).expect("listed").boot_attempts = 0;
                        self.boot(now_ms, &id, host, BootReason::Restore);
                    }
                }
                _ => {}
            }
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    fn fail_back(&mut self, now_ms: u64, id: &VmId, from: &HostId, to: &HostId) {
        let blockers = {
            let vm = &self.vms[id];
            let ctx = MigrationContext {
                vm: &vm.spec,
                vm_running: true,
                source: &self.hosts[from].spec,
                target: &self.hosts[to].spec,
                target_up: self.hosts[to].liveness.is_up(),
                target_free: self.free_capacity(to),
                imc_mode: self.config.imc_mode,
            };
            migration_blockers(&ctx)
        };
        if !blockers.is_empty() {
            let vm = self.vms.get_mut(id).expect("caller checked");
            if !vm.failback_blocked {
                vm.failback_blocked = true;
                self.notice(
                    now_ms,
                    Notice::MigrationBlocked {
                        vm: id.clone(),
                        to: to.clone(),
                        why: join_blockers(&blockers),
                    },
                );
            }
            return;
        }
        self.vms
            .get_mut(id)
            .expect("caller checked")
            .failback_blocked = false;
        self.start_migration(now_ms, id, from, to);
    }

    fn start_migration(&mut self, now_ms: u64, id: &VmId, from: &HostId, to: &HostId) {
        self.vms.get_mut(id).expect("caller checked").state = VmState::Migrating {
            from: from.clone(),
            to: to.clone(),
            deadline_ms: now_ms + self.config.migration_timeout_ms,
        };
        self.notice(
            now_ms,
            Notice::VmMigrating {
                vm: id.clone(),
                from: from.clone(),
                to: to.clone(),
            },
        );
        self.command(Command::LiveMigrate {
            vm: id.clone(),
            from: from.clone(),
            to: to.clone(),
        });
    }

    /// The source agent finished (or failed) a live migration.
    pub fn handle_migration_result(
        &mut self,
        now_ms: u64,
        vm: &VmId,
        from: &HostId,
        to: &HostId,
        result: Result<(), String>,
    ) {
        let Some(rec) = self.vms.get_mut(vm) else {
            return;
        };
        match &rec.state {
            VmState::Migrating { from: f, to: t, .. } if f == from && t == to => {}
            _ => return,
        }
        match result {
            Ok(()) => {
                rec.state = VmState::Running { host: to.clone() };
                self.notice(
                    now_ms,
                    Notice::VmMigrated {
                        vm: vm.clone(),
                        to: to.clone(),
                    },
                );
            }
            Err(why) => {
                rec.state = VmState::Running { host: from.clone() };
                rec.failback_not_before_ms = now_ms + self.config.migration_retry_backoff_ms;
                self.notice(
                    now_ms,
                    Notice::MigrationFailed {
                        vm: vm.clone(),
                        why,
                    },
                );
            }
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    /// Recomputes each spare's pool state from where VMs are.
    fn refresh_spares(&mut self, now_ms: u64) {
        let spares: Vec<HostId> = self
            .hosts
            .values()
            .filter(|h| h.spare.is_some())
            .map(|h| h.spec.id.clone())
            .collect();
        for s in spares {
            let in_use = self.vms.values().any(|v| v.state.holds(&s));
            let h = &self.hosts[&s];
            let next = if !h.liveness.is_up() || h.lease_revoked {
                SpareState::Unavailable
            } else if in_use {
                SpareState::Active
            } else {
                SpareState::Free
            };
            let prev = h.spare.expect("filtered");
            if prev == next {
                continue;
            }
            self.hosts.get_mut(&s).expect("listed").spare = Some(next);
            let n = match (prev, next) {
                (_, SpareState::Active) => Notice::SpareActivated { spare: s },
                (_, SpareState::Free) => Notice::SpareReturned { spare: s },
                (_, SpareState::Unavailable) => Notice::SpareUnavailable { spare: s },
            };
            self.notice(now_ms, n);
        }
    }

    // ---- API -----------------------------------------------------------

    /// Creates a VM (RunInstances): on `host` if given, else on the up
    /// production host with the most free memory.
    pub fn create_vm(
        &mut self,
        now_ms: u64,
        mut spec: VmSpec,
        host: Option<HostId>,
    ) -> Result<HostId, ApiError> {
        if self.vms.contains_key(&spec.id) {
            return Err(ApiError::VmExists(spec.id));
        }
        let target = match host {
            Some(h) => {
                let rec = self
                    .hosts
                    .get(&h)
                    .ok_or_else(|| ApiError::NoSuchHost(h.clone()))?;
                let why = if !rec.liveness.is_up() {
                    Some(format!("host is {}", rec.liveness.name()))
                } else if rec.spec.maintenance {
                    Some("host is in maintenance".to_string())
                } else if !spec.demand.fits_in(&self.free_capacity(&h)) {
                    Some(format!(
                        "free {} < needed {}",
                        self.free_capacity(&h),
                        spec.demand
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(ApiError::HostUnusable { host: h, why });
                }
                h
            }
            None => {
                let (candidates, free) = self.production_candidates();
                let i = placement::most_free(&free, &spec.demand)
                    .ok_or(ApiError::NoCapacity(spec.demand))?;
                candidates[i].clone()
            }
        };
        spec.home = target.clone();
        let id = spec.id.clone();
        self.vms.insert(
            id.clone(),
            VmRecord {
                spec,
                state: VmState::Stopped,
                boot_attempts: 0,
                outage_since_ms: None,
                missed_reports: 0,
                failback_blocked: false,
                failback_not_before_ms: 0,
            },
        );
        self.boot(now_ms, &id, &target, BootReason::Create);
        self.refresh_spares(now_ms);
        Ok(target)
    }

    /// Live-migrates a running VM at an operator's request.
    pub fn migrate_vm(&mut self, now_ms: u64, vm: &VmId, to: &HostId) -> Result<(), ApiError> {
        let rec = self
            .vms
            .get(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        let target = self
            .hosts
            .get(to)
            .ok_or_else(|| ApiError::NoSuchHost(to.clone()))?;
        let VmState::Running { host: from } = &rec.state else {
            return Err(ApiError::NotRunning {
                vm: vm.clone(),
                state: rec.state.name(),
            });
        };
        let from = from.clone();
        let ctx = MigrationContext {
            vm: &rec.spec,
            vm_running: true,
            source: &self.hosts[&from].spec,
            target: &target.spec,
            target_up: target.liveness.is_up(),
            target_free: self.free_capacity(to),
            imc_mode: self.config.imc_mode,
        };
        let blockers = migration_blockers(&ctx);
        if !blockers.is_empty() {
            return Err(ApiError::MigrationBlocked {
                vm: vm.clone(),
                to: to.clone(),
                why: join_blockers(&blockers),
            });
        }
        self.start_migration(now_ms, vm, &from, to);
        self.refresh_spares(now_ms);
        Ok(())
    }

    /// Stops a running VM at an operator's request.
    pub fn stop_vm(&mut self, now_ms: u64, vm: &VmId) -> Result<(), ApiError> {
        let rec = self
            .vms
            .get_mut(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        let VmState::Running { host } = &rec.state else {
            return Err(ApiError::NotRunning {
                vm: vm.clone(),
                state: rec.state.name(),
            });
        };
        let host = host.clone();
        rec.state = VmState::Stopped;
        self.command(Command::StopVm {
            vm: vm.clone(),
            host,
        });
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
        Ok(())
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
