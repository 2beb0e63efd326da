//! The file formats, as serde sees them. Every struct rejects unknown fields,
//! so a typo is an error that names the line, not a silently ignored key.
//! Conversion to core types happens by hand in [`crate::cluster`] and
//! [`crate::load`], where the semantic checks live.

use crate::duration::Dur;
pub use crate::settings::{DrsEntry, DrsWindowText, MemoryOvercommit};
use krrish_core::ha::{FenceAction, IsolationResponse};
use krrish_core::{BondHealth, BondName, HaPolicy, Zone};
use serde::Deserialize;

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Defaults to the file's path under `scenarios/`, without `.yaml`.
    pub name: Option<String>,
    pub description: Option<String>,
    /// The default seed; `--seed` overrides it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A cluster file, relative to the scenario file.
    pub cluster_file: Option<String>,
    /// Or the cluster inline.
    pub cluster: Option<ClusterFile>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub timeline: Vec<Step>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Simulated time at which the run stops.
    pub end: Dur,
}

fn default_seed() -> u64 {
    1
}

/// Timing and protocol knobs; each has the design's default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// turmoil's step (network delivery resolution). Default 100ms.
    pub tick: Option<Dur>,
    /// Default 6s.
    pub heartbeat_interval: Option<Dur>,
    /// Misses before a host is declared offline. Default 3.
    pub heartbeat_misses: Option<u32>,
    /// Default 1s.
    pub heartbeat_grace: Option<Dur>,
    /// How long to wait for a BMC to confirm a power-off. Default 10s.
    pub fence_timeout: Option<Dur>,
    /// DFS lease length. Default 30s.
    pub lease_duration: Option<Dur>,
    /// Wait after a revoked lease's expiry. Default 2s.
    pub lease_margin: Option<Dur>,
    /// Guest boot time in the simulated hypervisor. Default 20s.
    pub boot_time: Option<Dur>,
    /// Default 120s.
    pub boot_timeout: Option<Dur>,
    /// BMC answer time. Default 1s.
    pub ipmi_answer: Option<Dur>,
    /// How long IPMI waits for a silent BMC. Default 5s.
    pub ipmi_timeout: Option<Dur>,
    /// Network latency upper bound. Default 5ms.
    pub latency_max: Option<Dur>,
    /// Live-migration copy rate. Default 1000.
    pub migrate_mib_per_s: Option<u64>,
    /// Grace for the control plane's beliefs in the checkers. Default 60s.
    pub belief_grace: Option<Dur>,
    /// How long a live host's VM network may be down before its VMs move.
    /// Default 60s.
    pub vm_network_grace: Option<Dur>,
    /// A live migration not answered by then is cancelled. Default 600s.
    pub migration_timeout: Option<Dur>,
    /// Overrides the cluster's isolation response for this scenario.
    pub isolation_response: Option<IsolationResponse>,
    /// Overrides the cluster's isolation response delay.
    pub isolation_response_delay: Option<Dur>,
    /// Overrides the cluster's fence action for this scenario.
    pub fence_action: Option<FenceAction>,
    /// A VM that cannot live-migrate home moves cold (default true).
    pub cold_failback: Option<bool>,
}

/// One timeline entry: `at` and exactly one action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub at: Dur,
    pub crash: Option<String>,
    pub power_loss: Option<String>,
    pub bmc_down: Option<String>,
    pub bmc_up: Option<String>,
    pub nic_down: Option<NicRef>,
    pub nic_up: Option<NicRef>,
    pub bond_down: Option<BondRef>,
    pub bond_up: Option<BondRef>,
    pub partition: Option<String>,
    pub heal: Option<String>,
    /// A management cut for a while: packets dropped, connections broken.
    pub cut: Option<LinkFault>,
    /// A management stall for a while: packets held, then delivered.
    pub stall: Option<LinkFault>,
    /// A lossy management path for a while: `percent` of the packets lost
    /// (1–99), each resent by TCP after its retransmission timeout.
    pub lossy: Option<LossyLink>,
    pub repair: Option<String>,
    pub run_instance: Option<VmEntry>,
    pub stop_instance: Option<String>,
    /// StartInstances: a stopped VM boots again.
    pub start_instance: Option<String>,
    /// TerminateInstances: the VM and its addresses and root disk go.
    pub terminate_instance: Option<String>,
    /// RebootInstances: the guest restarts in place.
    pub reboot_instance: Option<String>,
    pub migrate: Option<MigrateRef>,
    /// An operator puts a host in maintenance (its VMs live-migrate away).
    pub enter_maintenance: Option<String>,
    /// An operator takes a host out of maintenance.
    pub exit_maintenance: Option<String>,
    /// An operator sets (or replaces) a placement rule group through the
    /// API: `set_rule: { name, kind, strength, vms, hosts }`.
    pub set_rule: Option<RuleEntry>,
    /// An operator deletes a rule group set through the API.
    pub delete_rule: Option<String>,
    /// An operator switches HA cluster-wide: `ha: on` or `ha: off`.
    pub ha: Option<String>,
    /// An API call on the cloud's resources, as the wire carries it:
    /// `{ action: create-vxnet, name: vxnet-1 }` (actions and fields in the
    /// README's cloud API table). Read as YAML here and as a
    /// `krrish_cloud::CloudRequest` by the loader, so that an error names
    /// the field and its line.
    pub cloud: Option<serde_yaml::Value>,
    /// The simulated data plane: a guest writes a block of its root disk
    /// (or of an attached `volume`).
    pub guest_write: Option<GuestWriteRef>,
    /// The simulated hypervisor fails a VM's next `count` boots, wherever
    /// they are tried: `fail_boots: { vm: db-1, count: 3 }`.
    pub fail_boots: Option<FailBootsRef>,
    /// The controller process: `crash` (its store survives) or `restart`.
    pub controller: Option<ControllerAction>,
    /// The DFS's metadata service as the controller sees it: `unreachable`
    /// (revocations and renewal reads fail) or `reachable`; or the lease
    /// service itself: `down`, `up`, `restart`.
    pub dfs: Option<DfsAction>,
    /// `heal_all: true` — every fault ends at once: hosts that are off are
    /// repaired, every NIC, bond, BMC and management path is back, the DFS
    /// is reachable and a crashed controller restarts (a swarm's second
    /// phase).
    pub heal_all: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DfsAction {
    Unreachable,
    Reachable,
    /// The lease service itself stops (renewals fail everywhere).
    Down,
    /// It starts again: revocations kept, renewals forgotten.
    Up,
    /// Down and up at once.
    Restart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControllerAction {
    Crash,
    Restart,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicRef {
    pub host: String,
    pub bond: BondName,
    /// 0 or 1: which member of the bond.
    pub nic: usize,
    /// With `nic_down`: comes back up after this long.
    #[serde(rename = "for")]
    pub duration: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BondRef {
    pub host: String,
    pub bond: BondName,
    /// With `bond_down`: comes back up after this long.
    #[serde(rename = "for")]
    pub duration: Option<Dur>,
}

/// Where a management cut or stall happens, and for how long: the path to
/// one host (`host: H`), or the controller's own switch (`controller: true`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFault {
    pub host: Option<String>,
    #[serde(default)]
    pub controller: bool,
    #[serde(rename = "for")]
    pub duration: Dur,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossyLink {
    pub host: String,
    pub percent: u8,
    #[serde(rename = "for")]
    pub duration: Dur,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailBootsRef {
    pub vm: String,
    pub count: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateRef {
    pub vm: String,
    pub to: String,
}

/// One expectation: optional `at` (default: the end) and exactly one check.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub at: Option<Dur>,
    /// Where the VM runs (ground truth); `host: nowhere` for not running.
    pub vm_runs_on: Option<VmOn>,
    /// The control plane's state for the VM (the core's names).
    pub vm_state: Option<VmStateRef>,
    /// The control plane's verdict on the host (the core's names).
    pub host_state: Option<HostStateRef>,
    /// The control plane's view of a bond: ok, degraded, down.
    pub bond_state: Option<BondStateRef>,
    pub spares: Option<SpareCounts>,
    /// Every recovery of these VMs (all, if none listed) took at most `max`;
    /// at least one recovery must have happened.
    pub rto_max: Option<Bound>,
    /// Every recovery lost at most `max` of writes.
    pub rpo_max: Option<Bound>,
    /// Exactly this many boots onto takeover spares.
    pub failovers: Option<u64>,
    pub trace_contains: Option<String>,
    pub trace_lacks: Option<String>,
    /// `converged: true` — the cluster is whole again: every VM with an HA
    /// policy runs exactly once, on its home host, and the control plane
    /// says so; every host is up; every spare is free.
    pub converged: Option<bool>,
    /// The control plane raised this event by then (`kind` as in the
    /// README's list; `host` and `vm` narrow it).
    pub event: Option<EventRef>,
    /// The control plane never raised such an event up to then.
    pub no_event: Option<EventRef>,
    /// A ping through the simulated data plane gets through (or not).
    pub ping: Option<PingRef>,
    /// The VM's address on a vxnet, as the control plane records it
    /// (`ip: none` for not on it).
    pub nic: Option<VmNicRef>,
    /// Which VM an EIP is associated with (`vm: none` for none).
    pub eip: Option<EipRef>,
    /// What a block of a disk reads — now, or as of a VM's snapshot.
    pub disk: Option<DiskReadRef>,
    /// Which VM a volume is attached to (`attached_to: none` for none).
    pub volume: Option<VolumeRef>,
    /// A VM's snapshot: `creating`, `available`, or `absent`.
    pub snapshot: Option<SnapshotRef>,
    /// Where a VM's root disk is based: its host and which image copy.
    pub root_disk: Option<RootDiskRef>,
    /// A datastore's state and disks, or the disk moves under way.
    pub datastore: Option<DatastoreRef>,
    /// How many guest reboots of a VM completed (ground truth).
    pub reboots: Option<RebootsRef>,
    /// Requests to a load balancer's listener: served or not, the backends
    /// in service (the control plane's health checks) and the ones that
    /// answer (the data plane).
    pub lb: Option<LbCheckRef>,
    /// An RDB cluster's roles as the control plane has them: the primary
    /// (`none` for none), the standby, the epoch, whether degraded
    /// (members share a host).
    pub rdb: Option<RdbCheckRef>,
    /// A MongoDB replica set's primary (`none` while it has no majority)
    /// and epoch.
    pub mongodb: Option<MongodbCheckRef>,
    /// A cache cluster's state (`ok`, `fail`) and/or one shard's master
    /// (`none` for none) and epoch.
    pub cache: Option<CacheCheckRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongodbCheckRef {
    pub name: String,
    pub primary: String,
    pub epoch: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheCheckRef {
    pub name: String,
    pub state: Option<String>,
    pub shard: Option<u32>,
    pub master: Option<String>,
    pub epoch: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdbCheckRef {
    pub name: String,
    pub primary: String,
    pub standby: Option<String>,
    pub epoch: Option<u64>,
    pub degraded: Option<bool>,
}

/// `from`: `internet`, `external` or a VM; at least one of `served`,
/// `backends_in_service`, `answered_by`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbCheckRef {
    pub name: String,
    pub listener: u32,
    pub from: String,
    pub served: Option<bool>,
    pub backends_in_service: Option<Vec<String>>,
    pub answered_by: Option<Vec<String>>,
    /// The share of the client's requests lost now (whole percent).
    pub lost_percent: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootsRef {
    pub vm: String,
    pub count: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestWriteRef {
    pub vm: String,
    pub volume: Option<String>,
    pub block: u64,
    pub data: u64,
}

/// The root disk of `vm`, or `volume`; with `snapshot`, as of `vm`'s
/// snapshot of that name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskReadRef {
    pub vm: Option<String>,
    pub volume: Option<String>,
    pub snapshot: Option<String>,
    pub block: u64,
    pub data: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRef {
    pub name: String,
    pub attached_to: String,
    /// `available`, `in-use` or `detaching` (detached, its VM's host has
    /// not confirmed the unplug yet); unchecked when absent.
    #[serde(default)]
    pub status: Option<krrish_cloud::storage::VolumeStatus>,
    /// The datastore it lives on; unchecked when absent.
    #[serde(default)]
    pub datastore: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRef {
    pub vm: String,
    pub name: String,
    /// `creating` (the VM's host has not yet taken it on its disks),
    /// `available`, or `absent` (no such snapshot).
    pub status: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootDiskRef {
    pub vm: String,
    pub host: Option<String>,
    pub backing: Option<krrish_cloud::storage::BackingState>,
    /// The datastore it lives on.
    pub datastore: Option<String>,
}

/// A datastore's state (`active`, `draining`, `drained`) and/or how many
/// disks live on it; `moving: N` — how many disk moves are queued or
/// copying cloud-wide.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreRef {
    pub name: Option<String>,
    pub state: Option<String>,
    pub disks: Option<usize>,
    pub moving: Option<usize>,
}

/// `from`: `internet`, `external` or a VM; exactly one `to_*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingRef {
    pub from: String,
    pub to_vm: Option<String>,
    pub to_alias: Option<String>,
    pub to_eip: Option<String>,
    pub to_ip: Option<std::net::Ipv4Addr>,
    pub reachable: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmNicRef {
    pub vm: String,
    pub vxnet: String,
    pub ip: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EipRef {
    pub name: String,
    pub vm: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRef {
    pub kind: String,
    pub host: Option<String>,
    pub vm: Option<String>,
    /// Exactly this many such events (with `event` only).
    pub count: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmOn {
    pub vm: String,
    pub host: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmStateRef {
    pub vm: String,
    pub state: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostStateRef {
    pub host: String,
    pub state: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BondStateRef {
    pub host: String,
    pub bond: BondName,
    pub health: BondHealth,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpareCounts {
    pub total: Option<usize>,
    pub free: Option<usize>,
    pub active: Option<usize>,
    pub unavailable: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    #[serde(default)]
    pub vms: Vec<String>,
    pub max: Dur,
}

/// A cluster file (also accepted inline in a scenario under `cluster:`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub name: Option<String>,
    #[serde(default)]
    pub defaults: HostDefaults,
    #[serde(default)]
    pub networks: Networks,
    #[serde(default)]
    pub hosts: Vec<HostEntry>,
    #[serde(default)]
    pub host_groups: Vec<HostGroup>,
    /// `auto` (the sizing rule: ≤10 → 1, 11–50 → 3, >50 → 5) or a number.
    /// Listed SPARE hosts count; `spare-N` hosts are added to make up the rest.
    #[serde(default)]
    pub spares: SparesRule,
    #[serde(default)]
    pub vms: Vec<VmEntry>,
    #[serde(default)]
    pub vm_groups: Vec<VmGroup>,
    /// Placement rule groups (affinity, anti-affinity, run-on, not-on; must or should).
    #[serde(default)]
    pub rules: Vec<RuleEntry>,
    /// CPU-compatibility mode for live migration across CPU models.
    #[serde(default)]
    pub imc_mode: bool,
    /// A host cut off from management but alive on the DFS: `leave-running`
    /// (default) or `power-off-and-restart`.
    #[serde(default)]
    pub isolation_response: IsolationResponse,
    /// How long an isolated host must stay so before `power-off-and-restart`
    /// acts (default 30s, as vSphere HA's isolation policy delay).
    #[serde(default)]
    pub isolation_response_delay: Option<Dur>,
    /// What an IPMI fence does: `off` (default) or `reboot`.
    #[serde(default)]
    pub fence_action: FenceAction,
    /// A failed boot is tried again on the same host this many times
    /// (default 1, at most 10).
    pub max_restart: Option<u32>,
    /// …then once on each of this many other hosts (default 1, at most 10);
    /// after that the VM is in `error` until an operator starts it.
    pub max_relocate: Option<u32>,
    /// The cluster-wide HA switch (default true): false, every VM is
    /// treated as `ha: off`.
    #[serde(default = "default_ha_enabled")]
    pub ha_enabled: bool,
    /// A failed host's VM no spare can take restarts on a production host
    /// with room (default false: it waits for a spare).
    #[serde(default)]
    pub failover_to_production: bool,
    /// Admission control: per cent of each production host's vCPUs and
    /// memory kept from tenant placement for failovers (default 0).
    #[serde(default)]
    pub admission_reserve_percent: u8,
    /// Load balancing by live migration; absent, DRS is off.
    pub drs: Option<DrsEntry>,
    /// Powering idle production hosts off and on; absent, DPM is off.
    pub dpm: Option<crate::settings::DpmEntry>,
}

fn default_ha_enabled() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SparesRule {
    #[default]
    Auto,
    Count(usize),
}

impl<'de> Deserialize<'de> for SparesRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SparesRule;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`auto` or a number of spare hosts")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SparesRule, E> {
                Ok(SparesRule::Count(v as usize))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SparesRule, E> {
                usize::try_from(v)
                    .map(SparesRule::Count)
                    .map_err(|_| E::custom("the number of spares cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SparesRule, E> {
                match v {
                    "auto" => Ok(SparesRule::Auto),
                    _ => Err(E::custom(format!(
                        "expected `auto` or a number of spare hosts, found `{v}`"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Host properties applied where a host or group does not say otherwise.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDefaults {
    pub vcpus: Option<u32>,
    #[serde(default, deserialize_with = "memory_gib_opt")]
    pub memory_gib: Option<u64>,
    #[serde(default, deserialize_with = "disk_gib_opt")]
    pub disk_gib: Option<u64>,
    pub cpu_model: Option<String>,
    pub dvs: Option<String>,
    pub memory_overcommit: Option<MemoryOvercommit>,
    pub rack: Option<String>,
    pub live_migration: Option<bool>,
}

/// The first address of each /24 segment (defaults 10.0/1/2/3.0.0).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Networks {
    pub uplink: Option<std::net::Ipv4Addr>,
    pub vm: Option<std::net::Ipv4Addr>,
    pub storage: Option<std::net::Ipv4Addr>,
    pub ipmi: Option<std::net::Ipv4Addr>,
}

// The host properties repeat in HostDefaults, HostEntry and HostGroup on
// purpose: serde's `flatten` would switch `deny_unknown_fields` off, and a
// typo in a cluster file must stay an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    pub name: String,
    pub zone: Zone,
    pub vcpus: Option<u32>,
    #[serde(default, deserialize_with = "memory_gib_opt")]
    pub memory_gib: Option<u64>,
    #[serde(default, deserialize_with = "disk_gib_opt")]
    pub disk_gib: Option<u64>,
    pub cpu_model: Option<String>,
    pub dvs: Option<String>,
    pub memory_overcommit: Option<MemoryOvercommit>,
    pub rack: Option<String>,
    pub live_migration: Option<bool>,
    #[serde(default)]
    pub maintenance: bool,
    pub uplink_ip: Option<std::net::Ipv4Addr>,
    pub vm_ip: Option<std::net::Ipv4Addr>,
    pub storage_ip: Option<std::net::Ipv4Addr>,
    pub ipmi_ip: Option<std::net::Ipv4Addr>,
}

/// `count` hosts named `{prefix}{NN}` (two digits, from `start`, default 1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostGroup {
    pub prefix: String,
    pub count: usize,
    pub zone: Zone,
    #[serde(default = "one")]
    pub start: usize,
    pub vcpus: Option<u32>,
    #[serde(default, deserialize_with = "memory_gib_opt")]
    pub memory_gib: Option<u64>,
    #[serde(default, deserialize_with = "disk_gib_opt")]
    pub disk_gib: Option<u64>,
    pub cpu_model: Option<String>,
    /// Spread the group round-robin over this many racks `rack-1…`.
    pub racks: Option<usize>,
}

fn one() -> usize {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmEntry {
    pub name: String,
    /// Home host; for `run_instance`, optional (the scheduler picks).
    pub host: Option<String>,
    pub vcpus: u32,
    #[serde(deserialize_with = "memory_gib")]
    pub memory_gib: u64,
    #[serde(default = "default_disk", deserialize_with = "disk_gib")]
    pub disk_gib: u64,
    #[serde(default = "default_ha")]
    pub ha: HaPolicy,
    #[serde(default)]
    pub priority: u32,
    #[serde(default)]
    pub passthrough: Vec<String>,
    /// Back home from a spare once its home is fit (default true).
    #[serde(default = "default_failback")]
    pub failback: bool,
    /// Wait this long for its failed host to come back before restarting
    /// it elsewhere (default 0: at once).
    pub restart_delay: Option<Dur>,
    /// `run_instance` only: launch from this image of the DFS repository.
    pub image: Option<String>,
    /// `run_instance` only: join this vxnet at launch.
    pub vxnet: Option<String>,
}

/// Memory one host or VM may have, at most (1 PiB): beyond, sums over a
/// cluster could overflow (a size of 2^54 GiB once wrapped to 0 MiB).
pub const MEMORY_GIB_MAX: u64 = 1 << 20;
/// Disk one host or VM may have, at most (1 EiB).
pub const DISK_GIB_MAX: u64 = 1 << 30;

fn bounded<'de, D: serde::Deserializer<'de>>(d: D, what: &str, max: u64) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v > max {
        return Err(serde::de::Error::custom(format!(
            "{what}: expected at most {max}, not {v}"
        )));
    }
    Ok(v)
}

fn memory_gib<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    bounded(d, "memory_gib", MEMORY_GIB_MAX)
}

fn disk_gib<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    bounded(d, "disk_gib", DISK_GIB_MAX)
}

fn memory_gib_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    memory_gib(d).map(Some)
}

fn disk_gib_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    disk_gib(d).map(Some)
}

fn default_disk() -> u64 {
    20
}
fn default_ha() -> HaPolicy {
    HaPolicy::Restart
}
fn default_failback() -> bool {
    true
}

/// `per_host` VMs named `{prefix}{host}-{N}` on each listed host (default:
/// every ECS/DFS/KS host).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmGroup {
    pub prefix: String,
    pub per_host: usize,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub vcpus: u32,
    #[serde(deserialize_with = "memory_gib")]
    pub memory_gib: u64,
    #[serde(default = "default_disk", deserialize_with = "disk_gib")]
    pub disk_gib: u64,
    #[serde(default = "default_ha")]
    pub ha: HaPolicy,
    #[serde(default)]
    pub priority: u32,
    #[serde(default = "default_failback")]
    pub failback: bool,
    pub restart_delay: Option<Dur>,
}

/// One placement rule group of a cluster file: the words the API takes
/// too, checked by the same code.
pub use krrish_core::rule_check::RuleWords as RuleEntry;
