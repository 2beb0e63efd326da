//! The physical and virtual model: zones, hosts with four networks, VMs.

use crate::ids::{HostId, VmId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// Kinds of host (the design notes' zones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Zone {
    /// Control plane and monitoring.
    Ops,
    Ks,
    /// Hyper zone, compute part.
    Ecs,
    /// Hyper zone, storage part.
    Dfs,
    /// The spare pool: hosts kept empty to take over a failed host's VMs.
    Spare,
}

impl Zone {
    pub const ALL: [Zone; 5] = [Zone::Ops, Zone::Ks, Zone::Ecs, Zone::Dfs, Zone::Spare];

    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Ops => "OPS",
            Zone::Ks => "KS",
            Zone::Ecs => "ECS",
            Zone::Dfs => "DFS",
            Zone::Spare => "SPARE",
        }
    }

    /// Whether hosts of this zone run tenant VMs in normal operation.
    pub fn runs_vms(self) -> bool {
        matches!(self, Zone::Ecs | Zone::Dfs | Zone::Ks)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three bonded networks of a hypervisor host. The fourth network, OGW
/// (IPMI, out of band), has no bond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BondName {
    /// VGW uplink (1 GbE ×2). Carries the management traffic (heartbeats,
    /// commands) between controller and agents.
    Bond0,
    /// EGW middle network (10 GbE ×2): the VM (tenant) network, bridge br0.
    Bond1,
    /// DGW lower network (10 GbE ×2): storage, DFS sync and leases.
    Bond2,
}

impl BondName {
    pub const ALL: [BondName; 3] = [BondName::Bond0, BondName::Bond1, BondName::Bond2];

    pub fn index(self) -> usize {
        match self {
            BondName::Bond0 => 0,
            BondName::Bond1 => 1,
            BondName::Bond2 => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BondName::Bond0 => "bond0",
            BondName::Bond1 => "bond1",
            BondName::Bond2 => "bond2",
        }
    }

    /// What the network is for, as operators call it.
    pub fn role(self) -> &'static str {
        match self {
            BondName::Bond0 => "management/uplink",
            BondName::Bond1 => "VM network",
            BondName::Bond2 => "storage",
        }
    }

    /// Member NIC names, in the order of `nic` indexes 0 and 1.
    pub fn members(self) -> [&'static str; 2] {
        match self {
            BondName::Bond0 => ["eth0", "eth1"],
            BondName::Bond1 => ["eth2", "eth3"],
            BondName::Bond2 => ["eth4", "eth5"],
        }
    }
}

impl fmt::Display for BondName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health of one bond: it survives one member NIC failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BondHealth {
    Ok,
    /// One member NIC down; traffic continues on the other.
    Degraded,
    /// Both members down: the network is cut for this host.
    Down,
}

impl BondHealth {
    /// Health from the two members' link state.
    pub fn from_members(nic0_up: bool, nic1_up: bool) -> Self {
        match (nic0_up, nic1_up) {
            (true, true) => BondHealth::Ok,
            (false, false) => BondHealth::Down,
            _ => BondHealth::Degraded,
        }
    }
    pub fn carries_traffic(self) -> bool {
        self != BondHealth::Down
    }
}

impl fmt::Display for BondHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BondHealth::Ok => "ok",
            BondHealth::Degraded => "degraded",
            BondHealth::Down => "down",
        })
    }
}

/// Compute, memory and disk, as capacity or as demand.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Resources {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
}

impl Resources {
    pub const ZERO: Resources = Resources {
        vcpus: 0,
        memory_mib: 0,
        disk_gib: 0,
    };

    pub fn new(vcpus: u32, memory_mib: u64, disk_gib: u64) -> Self {
        Self {
            vcpus,
            memory_mib,
            disk_gib,
        }
    }

    /// vCPUs of a host: sockets × cores × threads (two 8-core HT CPUs → 32).
    pub fn vcpus_of(sockets: u32, cores_per_socket: u32, threads_per_core: u32) -> u32 {
        sockets * cores_per_socket * threads_per_core
    }

    pub fn fits_in(&self, free: &Resources) -> bool {
        self.vcpus <= free.vcpus
            && self.memory_mib <= free.memory_mib
            && self.disk_gib <= free.disk_gib
    }

    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            vcpus: self.vcpus.saturating_sub(other.vcpus),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            disk_gib: self.disk_gib.saturating_sub(other.disk_gib),
        }
    }

    pub fn add(&self, other: &Resources) -> Resources {
        Resources {
            vcpus: self.vcpus + other.vcpus,
            memory_mib: self.memory_mib + other.memory_mib,
            disk_gib: self.disk_gib + other.disk_gib,
        }
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vCPU, {} MiB, {} GiB",
            self.vcpus, self.memory_mib, self.disk_gib
        )
    }
}

/// Addresses of one host on its four networks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAddresses {
    /// bond0 (VGW uplink / management).
    pub uplink: Ipv4Addr,
    /// bond1 (EGW, VM network).
    pub vm_network: Ipv4Addr,
    /// bond2 (DGW, storage).
    pub storage: Ipv4Addr,
    /// OGW: the BMC's IPMI address.
    pub ipmi: Ipv4Addr,
}

/// A host as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    pub id: HostId,
    pub zone: Zone,
    pub capacity: Resources,
    /// CPU model name; live migration between different models needs the
    /// cluster's CPU-compatibility (IMC) mode.
    pub cpu_model: String,
    /// Memory overcommit, as a percentage of the physical memory that
    /// placement may commit (100: off; FusionCompute's switch on: 150).
    /// Must match on both ends of a live migration.
    #[serde(default = "no_overcommit")]
    pub memory_overcommit_percent: u32,
    /// Distributed virtual switch the host's br0 belongs to.
    pub dvs: String,
    /// Hosts in maintenance take no new VMs and no migrations.
    pub maintenance: bool,
    /// Its hypervisor can live-migrate guests in and out (a migration
    /// network, peers of one hypervisor family). A host that cannot gives
    /// and takes VMs cold only: failback stops the VM on the spare and
    /// boots it at home from its DFS copy.
    #[serde(default = "live_migration_default")]
    pub live_migration: bool,
    /// Failure domain (rack / power feed), for correlated faults.
    pub rack: String,
    pub addresses: HostAddresses,
}

/// Hosts saved before the field existed could live-migrate.
fn live_migration_default() -> bool {
    true
}

/// Hosts saved before the ratio existed: the switch is read from the
/// cluster file again at start, so none is assumed.
fn no_overcommit() -> u32 {
    MEMORY_OVERCOMMIT_OFF
}

/// No memory overcommit: placement commits the physical memory only.
pub const MEMORY_OVERCOMMIT_OFF: u32 = 100;
/// The ratio a plain "overcommit on" switch means (FusionCompute's
/// memory-overcommit switch: up to 150 % of physical memory).
pub const MEMORY_OVERCOMMIT_ON: u32 = 150;
/// The highest ratio a host may be given (3×).
pub const MEMORY_OVERCOMMIT_MAX: u32 = 300;

impl HostSpec {
    pub fn is_spare(&self) -> bool {
        self.zone == Zone::Spare
    }

    /// What placement may commit on this host: its vCPUs and disk, and its
    /// memory times the overcommit ratio (sharing, ballooning and swap make
    /// up the difference; DESIGN "memory overcommit").
    pub fn placeable(&self) -> Resources {
        let c = self.capacity;
        Resources {
            memory_mib: c.memory_mib * u64::from(self.memory_overcommit_percent.max(1)) / 100,
            ..c
        }
    }
}

/// What to do with a VM when its host fails (FusionCompute's policies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HaPolicy {
    /// HA on: restart on a spare from the DFS copy, fail back on repair.
    Restart,
    /// Wait for the original host to be repaired, then boot there.
    RestoreOnRepair,
    /// HA off: the VM stays down and is reported so.
    Off,
}

impl fmt::Display for HaPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HaPolicy::Restart => "restart",
            HaPolicy::RestoreOnRepair => "restore-on-repair",
            HaPolicy::Off => "off",
        })
    }
}

/// A VM as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    pub id: VmId,
    /// The host the VM belongs on; failback returns it here.
    pub home: HostId,
    pub demand: Resources,
    pub ha: HaPolicy,
    /// Restart order on failover: higher first, then by id.
    pub priority: u32,
    /// Passthrough devices (GPU, USB) pin a VM: no live migration.
    pub passthrough_devices: Vec<String>,
    /// Moved back home from a spare once its home is fit again (default);
    /// `false`: it stays on the spare until an operator moves it.
    #[serde(default = "failback_default")]
    pub failback: bool,
    /// After its host is found dead, wait this long (from the verdict) for
    /// the host to come back before restarting it elsewhere: a host back in
    /// time (a reboot fence, a quick repair) needs no failover. 0: at once.
    #[serde(default)]
    pub restart_delay_ms: u64,
}

fn failback_default() -> bool {
    true
}
