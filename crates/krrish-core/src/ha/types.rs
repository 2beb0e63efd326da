//! The records the HA manager keeps and answers with: what it believes about
//! each host (liveness, fencing stage, spare-pool state) and each VM (state,
//! why it is being booted or why it is down), and what an agent reports
//! (errors: `errors.rs`). Plain data with names for display; no decisions
//! live here.

use crate::ids::{HostId, VmId};
use crate::model::{BondHealth, BondName, HostSpec, VmSpec};
use std::fmt;

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
    /// The host booted again before a restored controller fenced it anew: a
    /// heartbeat from a new boot proves its old guests died.
    Reboot,
}

impl fmt::Display for FenceMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FenceMethod::Ipmi => "IPMI power-off",
            FenceMethod::DfsLease => "DFS lease expiry",
            FenceMethod::Reboot => "its own reboot (a heartbeat from a new boot)",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FenceStage {
    /// A controller restored mid-fence hears the host afresh, as every host:
    /// silent until `deadline_ms` (a detection window), it is fenced — held
    /// while the cluster is silent at large or the DFS shows it renewing,
    /// up to `held_until_ms`. Nothing is in flight towards it meanwhile.
    RebootProof {
        deadline_ms: u64,
        held_until_ms: u64,
    },
    Ipmi {
        deadline_ms: u64,
    },
    LeaseRevoking {
        attempt: u32,
        deadline_ms: u64,
    },
    LeaseExpiring {
        safe_at_ms: u64,
    },
}

/// What an IPMI fence does to the host (Pacemaker's `off` and `reboot`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FenceAction {
    /// Power off and leave off: the host returns only when repaired.
    #[default]
    Off,
    /// Power off, then on again: a host that comes back healthy rejoins
    /// with a new boot and gets its VMs back.
    Reboot,
}

impl fmt::Display for FenceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FenceAction::Off => "power-off",
            FenceAction::Reboot => "power cycle",
        })
    }
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
    /// Silent on the management network for the whole detection window, but
    /// not (yet) shown dead: its DFS renewals go on (`dfs_alive`), or the
    /// DFS could not be read and fencing is held back. Its VMs are left
    /// where they are; it rejoins with no action when heartbeats resume.
    Isolated {
        since_ms: u64,
        dfs_alive: bool,
    },
    /// In maintenance, drained (nothing may run there), and silent for the
    /// detection window: taken as powered off by its operator. Not fenced;
    /// nothing fails over. It rejoins when its heartbeats resume.
    PoweredOff {
        since_ms: u64,
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
            Liveness::Isolated { .. } => "isolated",
            Liveness::PoweredOff { .. } => "powered-off",
        }
    }
    /// Heartbeats stopped, and the host is not (yet) being fenced.
    pub fn is_silent(&self) -> bool {
        matches!(self, Liveness::Suspect { .. } | Liveness::Isolated { .. })
    }
    /// Reachable through its agent (heartbeats arrive, or only just stopped).
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
    /// Silence before this instant does not count towards detection: a
    /// mass silence ended then (its time says nothing about this host).
    /// Not persisted: a restored controller hears every host afresh.
    #[serde(skip)]
    pub silence_counted_from_ms: u64,
    pub boot_id: Option<u64>,
    pub bonds: [BondHealth; 3],
    /// `Some` for hosts of the SPARE zone.
    pub spare: Option<SpareState>,
    /// The DFS refuses this host's lease until the controller reinstates it.
    pub lease_revoked: bool,
    /// When the host last renewed its DFS lease, as the DFS last told us
    /// (the storage network's heartbeat). Not persisted: read afresh.
    #[serde(skip)]
    pub dfs_renewed_at_ms: Option<u64>,
    /// Since when its agent reports the VM network (bond1) down.
    #[serde(default)]
    pub vm_network_lost_since_ms: Option<u64>,
    /// Its agent's last report said it holds a DFS lease.
    #[serde(default = "holds_lease_default")]
    pub holds_lease: bool,
    /// The boot in which its agent last reported holding a lease: a host
    /// that boots reports none until its first renewal, which is no news.
    #[serde(default)]
    pub lease_held_in_boot: Option<u64>,
    /// Where it stands with DPM (powered off to save power, or on its way).
    #[serde(default)]
    pub standby: super::Standby,
}

impl HostRecord {
    /// Where the silence that detection counts began: the last heartbeat,
    /// or the end of a mass silence if later.
    pub fn silence_start_ms(&self) -> u64 {
        self.last_heartbeat_ms.max(self.silence_counted_from_ms)
    }
}

/// The controller's one verdict on a host, from its management heartbeats,
/// DFS renewals, bond reports and fencing state (the README's matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostVerdict {
    /// Heartbeats arrive, every bond works on both NICs.
    Up,
    /// Heartbeats arrive; a bond runs on one NIC. Reported, no action.
    Degraded,
    /// Heartbeats missed, inside the detection window.
    Suspect,
    /// Silent on management for the window but alive on the DFS (or the DFS
    /// unreadable and fencing held): VMs left running.
    Isolated,
    /// Heartbeats arrive; both NICs of bond1 down: its VMs are unreachable
    /// and are moved after a grace.
    VmNetworkLost,
    /// Heartbeats arrive; both NICs of bond2 down: no DFS, the agent stops
    /// its VMs before its lease lapses and they restart elsewhere.
    StorageLost,
    /// Dead (silent on management and on the DFS), being fenced.
    Fencing,
    Fenced,
    FenceFailed,
    /// In maintenance and drained, and silent: powered off by its operator.
    PoweredOff,
}

impl HostVerdict {
    pub const ALL: [HostVerdict; 10] = [
        HostVerdict::Up,
        HostVerdict::Degraded,
        HostVerdict::Suspect,
        HostVerdict::Isolated,
        HostVerdict::VmNetworkLost,
        HostVerdict::StorageLost,
        HostVerdict::Fencing,
        HostVerdict::Fenced,
        HostVerdict::FenceFailed,
        HostVerdict::PoweredOff,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HostVerdict::Up => "up",
            HostVerdict::Degraded => "degraded",
            HostVerdict::Suspect => "suspect",
            HostVerdict::Isolated => "isolated",
            HostVerdict::VmNetworkLost => "vm-network-lost",
            HostVerdict::StorageLost => "storage-lost",
            HostVerdict::Fencing => "fencing",
            HostVerdict::Fenced => "fenced",
            HostVerdict::FenceFailed => "fence-failed",
            HostVerdict::PoweredOff => "powered-off",
        }
    }

    /// The verdict named `name`, as scenario files and status output spell it.
    pub fn from_name(name: &str) -> Option<HostVerdict> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

impl fmt::Display for HostVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl HostRecord {
    pub fn verdict(&self) -> HostVerdict {
        let bond = |b: BondName| self.bonds[b.index()];
        match self.liveness {
            Liveness::Up if bond(BondName::Bond2) == BondHealth::Down => HostVerdict::StorageLost,
            Liveness::Up if bond(BondName::Bond1) == BondHealth::Down => HostVerdict::VmNetworkLost,
            Liveness::Up if self.bonds.contains(&BondHealth::Degraded) => HostVerdict::Degraded,
            Liveness::Up => HostVerdict::Up,
            Liveness::Suspect { .. } => HostVerdict::Suspect,
            Liveness::Isolated { .. } => HostVerdict::Isolated,
            Liveness::Fencing(_) => HostVerdict::Fencing,
            Liveness::Fenced { .. } => HostVerdict::Fenced,
            Liveness::FenceFailed { .. } => HostVerdict::FenceFailed,
            Liveness::PoweredOff { .. } => HostVerdict::PoweredOff,
        }
    }
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
    /// Stores written before the `error` state hold failed boots so; a
    /// controller restoring one reads it as [`VmState::Error`].
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
        /// Its wait for a host was reported.
        #[serde(default)]
        reported: bool,
    },
    WaitingForRepair {
        host: HostId,
    },
    /// Its boot on `host` failed: booted there again at `retry_at_ms`
    /// (`max_restart`), its room there held meanwhile.
    RetryingBoot {
        host: HostId,
        retry_at_ms: u64,
        reason: BootReason,
    },
    /// Every boot allowed failed (`1 + max_restart + max_relocate`, on the
    /// hosts listed, in order): nothing retries it until an operator starts
    /// it again.
    Error {
        attempts: u32,
        hosts: Vec<HostId>,
        last_error: String,
    },
    Down {
        reason: DownReason,
    },
    Stopped,
    /// Being stopped on a live host that cannot serve it (its VM network is
    /// lost), to restart elsewhere once the stop is confirmed.
    Evacuating {
        host: HostId,
    },
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
            VmState::RetryingBoot { .. } => "retrying-boot",
            VmState::Error { .. } => "error",
            VmState::Down { .. } => "down",
            VmState::Stopped => "stopped",
            VmState::Evacuating { .. } => "evacuating",
        }
    }

    /// Every state's name, as scenario files and status output spell them.
    pub const NAMES: [&'static str; 12] = [
        "running",
        "booting",
        "migrating",
        "evacuating",
        "host-down",
        "waiting-for-capacity",
        "scheduling",
        "waiting-for-repair",
        "retrying-boot",
        "error",
        "down",
        "stopped",
    ];

    /// Hosts whose capacity this VM holds now.
    pub(super) fn holds(&self, host: &HostId) -> bool {
        match self {
            VmState::Running { host: h }
            | VmState::Booting { host: h, .. }
            | VmState::RetryingBoot { host: h, .. }
            | VmState::Evacuating { host: h } => h == host,
            VmState::Migrating { from, to, .. } => from == host || to == host,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmRecord {
    pub spec: VmSpec,
    pub state: VmState,
    /// Boots tried since the VM last ran (or was last started afresh).
    pub boot_attempts: u32,
    /// The hosts where those boots failed, in order, once each: a
    /// relocation after failed boots goes to a host not listed.
    #[serde(default)]
    pub boot_failed_on: Vec<HostId>,
    /// Boots ever ordered for this VM (the last one's serial).
    #[serde(default)]
    pub boot_serial: u64,
    /// Live-migration copies ever ordered for this VM (the last one's
    /// serial: only its answer counts).
    #[serde(default)]
    pub migration_serial: u64,
    /// When the control plane declared the VM's host offline.
    pub outage_since_ms: Option<u64>,
    /// Reports in a row from its (live) host that did not list it.
    pub missed_reports: u32,
    /// Failback to its home is blocked (and was reported once).
    pub failback_blocked: bool,
    /// No failback before this (after a failed migration), so a VM that died
    /// on its spare is seen missing before it is moved again.
    pub failback_not_before_ms: u64,
    /// Migrating, and one side of the migration is fenced: the surviving
    /// side's (this host's) first report from this instant on says where
    /// the VM runs.
    #[serde(default)]
    pub settled_by: Option<(HostId, u64)>,
    /// Migrating past its deadline: the copy is being cancelled in the
    /// source's hypervisor; the target's room is held until that is known.
    #[serde(default)]
    pub migration_aborting: bool,
    /// Evacuating because its boot got no answer in time (the boot's
    /// reason): once the stop is confirmed it counts as a failed boot.
    #[serde(default)]
    pub boot_unanswered: Option<BootReason>,
    /// Stopped by an operator on this host, and not yet known to be off
    /// there (no answer, no report without it, no fence): it may not start
    /// anywhere until it is — a start elsewhere could make a second copy.
    #[serde(default)]
    pub stop_unconfirmed_on: Option<HostId>,
}

impl VmRecord {
    /// Whether this VM holds room on `host`: its state places it there, or
    /// an operator stopped it there and the host has not confirmed it is
    /// off (the guest may still run: its room is not free yet).
    pub fn holds(&self, host: &HostId) -> bool {
        self.state.holds(host) || self.stop_unconfirmed_on.as_ref() == Some(host)
    }

    /// The hosts where this VM's guest may be alive: where it runs, boots,
    /// migrates or is being evacuated; a host being fenced under it, or
    /// whose fence failed; a stop not yet confirmed. In order, once each.
    pub fn hosts_that_may_run(&self) -> Vec<HostId> {
        let mut hosts: Vec<HostId> = match &self.state {
            VmState::Running { host }
            | VmState::Booting { host, .. }
            | VmState::Evacuating { host }
            | VmState::HostDown { host }
            | VmState::Down {
                reason: DownReason::FenceFailed { host },
            } => vec![host.clone()],
            VmState::Migrating { from, to, .. } => vec![from.clone(), to.clone()],
            VmState::WaitingForCapacity { .. }
            | VmState::Scheduling { .. }
            | VmState::WaitingForRepair { .. }
            | VmState::RetryingBoot { .. }
            | VmState::Error { .. }
            | VmState::Down { .. }
            | VmState::Stopped => Vec::new(),
        };
        if let Some(h) = &self.stop_unconfirmed_on {
            if !hosts.contains(h) {
                hosts.push(h.clone());
            }
        }
        hosts
    }

    /// A fresh count of boots: it ran, a new outage began, or an operator
    /// started it again.
    pub fn start_boot_round(&mut self) {
        self.boot_attempts = 0;
        self.boot_failed_on.clear();
    }

    /// A VM in `state` with nothing pending: no attempts, no outage, no
    /// migration in doubt.
    pub fn new(spec: VmSpec, state: VmState) -> Self {
        Self {
            spec,
            state,
            boot_attempts: 0,
            boot_failed_on: Vec::new(),
            boot_serial: 0,
            migration_serial: 0,
            outage_since_ms: None,
            missed_reports: 0,
            failback_blocked: false,
            failback_not_before_ms: 0,
            settled_by: None,
            migration_aborting: false,
            boot_unanswered: None,
            stop_unconfirmed_on: None,
        }
    }
}

/// What an agent reports with each heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostReport {
    /// Changes every time the host powers on.
    pub boot_id: u64,
    pub bonds: [BondHealth; 3],
    /// VMs whose domains run on the host now.
    pub running: Vec<VmId>,
    /// VMs whose boot the agent has under way (not yet running): a stop
    /// ordered meanwhile runs when the boot ends.
    #[serde(default)]
    pub booting: Vec<VmId>,
    /// VMs this host is live-migrating away now (copy in flight): how the
    /// controller tells a migration under way from one whose command never
    /// arrived.
    #[serde(default)]
    pub migrating_out: Vec<VmId>,
    /// The agent holds a DFS lease now (it may open VM disks). A host
    /// without one takes no VMs, whatever its bonds say: its lease service
    /// is unreachable even though its storage links are up.
    #[serde(default = "holds_lease_default")]
    pub holds_lease: bool,
}

impl HostReport {
    /// A healthy host's report: a lease held, every bond working, `running`
    /// its guests, nothing booting or migrating away.
    pub fn healthy(boot_id: u64, running: Vec<VmId>) -> Self {
        Self {
            boot_id,
            bonds: [BondHealth::Ok; 3],
            running,
            booting: Vec::new(),
            migrating_out: Vec::new(),
            holds_lease: true,
        }
    }
}

/// Agents that predate the field always reported with a lease in mind.
fn holds_lease_default() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vm_state_name_is_listed_once() {
        let h = HostId::new("h");
        let all = [
            VmState::Running { host: h.clone() },
            VmState::Booting {
                host: h.clone(),
                deadline_ms: 0,
                reason: BootReason::Create,
            },
            VmState::Migrating {
                from: h.clone(),
                to: h.clone(),
                deadline_ms: 0,
            },
            VmState::Evacuating { host: h.clone() },
            VmState::HostDown { host: h.clone() },
            VmState::WaitingForCapacity {
                failed_host: h.clone(),
                reported: false,
                retry_at_ms: 0,
            },
            VmState::Scheduling {
                retry_at_ms: 0,
                reported: false,
            },
            VmState::WaitingForRepair { host: h.clone() },
            VmState::RetryingBoot {
                host: h.clone(),
                retry_at_ms: 0,
                reason: BootReason::Create,
            },
            VmState::Error {
                attempts: 3,
                hosts: vec![h.clone()],
                last_error: "e".into(),
            },
            VmState::Down {
                reason: DownReason::HaOff { host: h },
            },
            VmState::Stopped,
        ];
        let names: Vec<&str> = all.iter().map(|s| s.name()).collect();
        assert_eq!(names, VmState::NAMES);
        for v in HostVerdict::ALL {
            assert_eq!(HostVerdict::from_name(v.name()), Some(v));
        }
    }
}
