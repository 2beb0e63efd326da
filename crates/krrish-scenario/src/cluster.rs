//! Cluster files → core specs, with the domain rules checked: unique names,
//! VMs only on hypervisor zones, no over-committed home host, the IP policy,
//! and the spare pool sized by the rule unless the file says otherwise.

use crate::format::{ClusterFile, SparesRule};
use crate::load::{LoadError, Source};
use krrish_core::ipam::Segment;
use krrish_core::model::{HostAddresses, MEMORY_OVERCOMMIT_OFF};
use krrish_core::spares::spare_pool_size;
use krrish_core::{HostId, HostSpec, Resources, VmId, VmSpec, Zone};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// A cluster ready for the simulator, the controller and the planner.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub hosts: Vec<HostSpec>,
    pub vms: Vec<VmSpec>,
    pub imc_mode: bool,
    pub isolation_response: krrish_core::ha::IsolationResponse,
    /// Set in the cluster file (else the core's default).
    pub isolation_response_delay_ms: Option<u64>,
    pub fence_action: krrish_core::ha::FenceAction,
    /// Boots of a VM tried again where one failed, then elsewhere (set in
    /// the cluster file, else the core's defaults).
    pub max_restart: Option<u32>,
    pub max_relocate: Option<u32>,
    /// The cluster-wide HA switch.
    pub ha_enabled: bool,
    pub failover_to_production: bool,
    pub admission_reserve_percent: u8,
    /// DRS (absent: off).
    pub drs: Option<krrish_core::ha::DrsConfig>,
    /// DPM (absent: off).
    pub dpm: Option<krrish_core::ha::DpmConfig>,
    /// Placement rule groups, checked against the hosts and the VMs' homes.
    pub rules: krrish_core::rules::Rules,
    /// Hypervisor hosts (ECS, DFS, KS): what the sizing rule counts.
    pub production_hosts: usize,
    pub spare_hosts: usize,
}

impl Cluster {
    /// Puts the cluster file's HA settings into `ha` (what a scenario or a
    /// daemon's own settings override is theirs to set afterwards).
    pub fn apply_to(&self, ha: &mut krrish_core::ha::HaConfig) {
        ha.imc_mode = self.imc_mode;
        ha.rules = self.rules.clone();
        ha.isolation_response = self.isolation_response;
        if let Some(ms) = self.isolation_response_delay_ms {
            ha.isolation_response_delay_ms = ms;
        }
        ha.fence_action = self.fence_action;
        ha.max_restart = self.max_restart.unwrap_or(ha.max_restart);
        ha.max_relocate = self.max_relocate.unwrap_or(ha.max_relocate);
        ha.ha_enabled = self.ha_enabled;
        ha.failover_to_production = self.failover_to_production;
        ha.admission_reserve_percent = self.admission_reserve_percent;
        ha.drs = self.drs.clone();
        ha.dpm = self.dpm.clone();
    }
}

const HOSTS_MAX: usize = 10_000;
/// The most `max_restart` or `max_relocate` a cluster may set.
const BOOT_RETRIES_MAX: u32 = 10;
const VMS_MAX: usize = 1_000_000;

/// The API's naming rule (a name the cluster file accepts but the API
/// refuses could never be addressed: `instances stop DB.1` was refused —
/// found by the bad-input adversary), and not a name the worlds reserve.
fn valid_name(n: &str) -> bool {
    krrish_cloud::name::is_valid(n) && n != "controller" && n != "operator" && n != "nowhere"
}

struct Draft {
    spec: HostSpec,
    explicit: [Option<Ipv4Addr>; 4],
}

pub(crate) fn build_cluster(src: &Source<'_>, f: ClusterFile) -> Result<Cluster, LoadError> {
    let d = &f.defaults;
    let base = |vcpus: Option<u32>, mem: Option<u64>, disk: Option<u64>| {
        Resources::new(
            vcpus.or(d.vcpus).unwrap_or(Resources::vcpus_of(2, 8, 2)),
            mem.or(d.memory_gib).unwrap_or(128) * 1024,
            disk.or(d.disk_gib).unwrap_or(2_000),
        )
    };
    let cpu = |c: &Option<String>| {
        c.clone()
            .or(d.cpu_model.clone())
            .unwrap_or_else(|| "x86-64-v3".into())
    };
    let unaddressed = HostAddresses {
        uplink: Ipv4Addr::UNSPECIFIED,
        vm_network: Ipv4Addr::UNSPECIFIED,
        storage: Ipv4Addr::UNSPECIFIED,
        ipmi: Ipv4Addr::UNSPECIFIED,
    };
    let mut drafts: Vec<Draft> = Vec::new();
    for h in &f.hosts {
        drafts.push(Draft {
            spec: HostSpec {
                id: HostId::new(&h.name),
                zone: h.zone,
                capacity: base(h.vcpus, h.memory_gib, h.disk_gib),
                cpu_model: cpu(&h.cpu_model),
                memory_overcommit_percent: h
                    .memory_overcommit
                    .or(d.memory_overcommit)
                    .map_or(MEMORY_OVERCOMMIT_OFF, |m| m.0),
                dvs: h
                    .dvs
                    .clone()
                    .or(d.dvs.clone())
                    .unwrap_or_else(|| "dvs0".into()),
                maintenance: h.maintenance,
                live_migration: h.live_migration.or(d.live_migration).unwrap_or(true),
                rack: h
                    .rack
                    .clone()
                    .or(d.rack.clone())
                    .unwrap_or_else(|| "rack-1".into()),
                addresses: unaddressed.clone(),
            },
            explicit: [h.uplink_ip, h.vm_ip, h.storage_ip, h.ipmi_ip],
        });
    }
    for g in &f.host_groups {
        if g.count > HOSTS_MAX {
            return Err(src.error(
                src.find("count", &g.count.to_string()),
                format!("host_groups.count: at most {HOSTS_MAX}"),
            ));
        }
        if g.racks == Some(0) {
            return Err(src.error(
                src.find("racks", "0"),
                "host_groups.racks: expected at least 1",
            ));
        }
        for i in 0..g.count {
            let rack = match g.racks {
                Some(r) => format!("rack-{}", i % r + 1),
                None => d.rack.clone().unwrap_or_else(|| "rack-1".into()),
            };
            drafts.push(Draft {
                spec: HostSpec {
                    id: HostId::new(format!("{}{:02}", g.prefix, g.start + i)),
                    zone: g.zone,
                    capacity: base(g.vcpus, g.memory_gib, g.disk_gib),
                    cpu_model: cpu(&g.cpu_model),
                    memory_overcommit_percent: d
                        .memory_overcommit
                        .map_or(MEMORY_OVERCOMMIT_OFF, |m| m.0),
                    dvs: d.dvs.clone().unwrap_or_else(|| "dvs0".into()),
                    maintenance: false,
                    live_migration: d.live_migration.unwrap_or(true),
                    rack,
                    addresses: unaddressed.clone(),
                },
                explicit: [None; 4],
            });
        }
    }
    let production = drafts.iter().filter(|x| x.spec.zone.runs_vms()).count();
    let listed_spares = drafts.iter().filter(|x| x.spec.zone == Zone::Spare).count();
    let wanted = match f.spares {
        SparesRule::Auto => spare_pool_size(production),
        SparesRule::Count(n) => n,
    };
    if wanted > production.max(1) * 2 && f.spares != SparesRule::Auto {
        return Err(src.error(
            src.key_line("spares"),
            format!("spares: {wanted} spares for {production} hypervisor hosts is more than twice the hosts; expected a smaller pool"),
        ));
    }
    if listed_spares > wanted {
        return Err(src.error(
            src.key_line("spares"),
            format!("spares: {wanted} wanted but {listed_spares} SPARE hosts are listed; raise `spares` or list fewer"),
        ));
    }
    let (cap, mem) = (
        base(None, None, None),
        d.memory_overcommit.map_or(MEMORY_OVERCOMMIT_OFF, |m| m.0),
    );
    let mut n = 0;
    while drafts.iter().filter(|x| x.spec.zone == Zone::Spare).count() < wanted {
        n += 1;
        let id = HostId::new(format!("spare-{n}"));
        if drafts.iter().any(|x| x.spec.id == id) {
            continue;
        }
        drafts.push(Draft {
            spec: HostSpec {
                id,
                zone: Zone::Spare,
                capacity: cap,
                cpu_model: cpu(&None),
                memory_overcommit_percent: mem,
                dvs: d.dvs.clone().unwrap_or_else(|| "dvs0".into()),
                maintenance: false,
                live_migration: d.live_migration.unwrap_or(true),
                rack: d.rack.clone().unwrap_or_else(|| "rack-1".into()),
                addresses: unaddressed.clone(),
            },
            explicit: [None; 4],
        });
    }
    if drafts.len() > HOSTS_MAX {
        return Err(src.error(None, format!("{} hosts; at most {HOSTS_MAX}", drafts.len())));
    }

    // Names.
    let mut seen = BTreeSet::new();
    for x in &drafts {
        let name = x.spec.id.as_str();
        if !valid_name(name) {
            return Err(src.error(
                src.find("name", name).or(src.find("prefix", name)),
                format!("host name `{name}`: expected 1 to 63 characters a-z, 0-9 and '-', starting with a letter or digit (the API's names), and not controller/operator/nowhere"),
            ));
        }
        if !seen.insert(name.to_string()) {
            return Err(src.error(
                src.find_last("name", name),
                format!("host `{name}` is defined twice"),
            ));
        }
    }

    // Addresses: explicit ones first (checked against the policy), then the rest.
    let n = &f.networks;
    let mut segs = [
        Segment::new(n.uplink.unwrap_or(Ipv4Addr::new(10, 0, 0, 0))),
        Segment::new(n.vm.unwrap_or(Ipv4Addr::new(10, 1, 0, 0))),
        Segment::new(n.storage.unwrap_or(Ipv4Addr::new(10, 2, 0, 0))),
        Segment::new(n.ipmi.unwrap_or(Ipv4Addr::new(10, 3, 0, 0))),
    ];
    const KEYS: [&str; 4] = ["uplink_ip", "vm_ip", "storage_ip", "ipmi_ip"];
    let mut addrs: Vec<[Ipv4Addr; 4]> = vec![[Ipv4Addr::UNSPECIFIED; 4]; drafts.len()];
    for (i, x) in drafts.iter().enumerate() {
        for k in 0..4 {
            if let Some(ip) = x.explicit[k] {
                segs[k].claim(x.spec.zone, ip).map_err(|e| {
                    src.error(
                        src.find(KEYS[k], &ip.to_string()),
                        format!("{}: {e} (host {})", KEYS[k], x.spec.id),
                    )
                })?;
                addrs[i][k] = ip;
            }
        }
    }
    for (i, x) in drafts.iter().enumerate() {
        for k in 0..4 {
            if x.explicit[k].is_none() {
                addrs[i][k] = segs[k].allocate(x.spec.zone).map_err(|e| {
                    src.error(src.key_line("networks"), format!("host {}: {e}", x.spec.id))
                })?;
            }
        }
    }
    let hosts: Vec<HostSpec> = drafts
        .into_iter()
        .zip(addrs)
        .map(|(x, [uplink, vm_network, storage, ipmi])| HostSpec {
            addresses: HostAddresses {
                uplink,
                vm_network,
                storage,
                ipmi,
            },
            ..x.spec
        })
        .collect();

    // VMs.
    let by_name: BTreeMap<&str, &HostSpec> = hosts.iter().map(|h| (h.id.as_str(), h)).collect();
    let mut vms: Vec<VmSpec> = Vec::new();
    let mut add = |vm: VmSpec, key: &str, near: &str| -> Result<(), LoadError> {
        let host = by_name.get(vm.home.as_str()).ok_or_else(|| {
            src.error(
                src.find("host", vm.home.as_str()),
                format!("vm {}: no host named `{}`", vm.id, vm.home),
            )
        })?;
        if !host.zone.runs_vms() {
            return Err(src.error(
                src.find("host", vm.home.as_str()),
                format!(
                    "vm {}: host {} is in zone {}; VMs are homed on ECS, DFS or KS hosts",
                    vm.id, vm.home, host.zone
                ),
            ));
        }
        if !valid_name(vm.id.as_str()) {
            return Err(src.error(
                src.find(key, near),
                format!("vm name `{}`: expected 1 to 63 characters a-z, 0-9 and '-', starting with a letter or digit (the API's names)", vm.id),
            ));
        }
        if vm.demand.vcpus == 0 || vm.demand.memory_mib == 0 {
            return Err(src.error(
                src.find(key, near),
                format!("vm {}: vcpus and memory_gib must be above 0", vm.id),
            ));
        }
        vms.push(vm);
        Ok(())
    };
    for v in &f.vms {
        let Some(home) = &v.host else {
            return Err(src.error(
                src.find("name", &v.name),
                format!("vm {}: `host` is required in a cluster file", v.name),
            ));
        };
        for (key, set) in [("image", v.image.is_some()), ("vxnet", v.vxnet.is_some())] {
            if set {
                return Err(src.error(
                    src.find(key, "").or(src.find("name", &v.name)),
                    format!(
                        "vm {}: `{key}` belongs to a scenario's run_instance, not a cluster file (cluster VMs have no image or vxnet)",
                        v.name
                    ),
                ));
            }
        }
        add(
            VmSpec {
                id: VmId::new(&v.name),
                home: HostId::new(home),
                demand: Resources::new(v.vcpus, v.memory_gib * 1024, v.disk_gib),
                ha: v.ha,
                priority: v.priority,
                passthrough_devices: v.passthrough.clone(),
                failback: v.failback,
                restart_delay_ms: v.restart_delay.map_or(0, |d| d.ms()),
            },
            "name",
            &v.name,
        )?;
    }
    for g in &f.vm_groups {
        let targets: Vec<String> = if g.hosts.is_empty() {
            hosts
                .iter()
                .filter(|h| h.zone.runs_vms())
                .map(|h| h.id.as_str().to_string())
                .collect()
        } else {
            g.hosts.clone()
        };
        if g.per_host.saturating_mul(targets.len()) > VMS_MAX {
            return Err(src.error(
                src.find("per_host", &g.per_host.to_string()),
                format!("vm_groups: more than {VMS_MAX} VMs"),
            ));
        }
        for t in &targets {
            for j in 1..=g.per_host {
                add(
                    VmSpec {
                        id: VmId::new(format!("{}{t}-{j}", g.prefix)),
                        home: HostId::new(t),
                        demand: Resources::new(g.vcpus, g.memory_gib * 1024, g.disk_gib),
                        ha: g.ha,
                        priority: g.priority,
                        passthrough_devices: Vec::new(),
                        failback: g.failback,
                        restart_delay_ms: g.restart_delay.map_or(0, |d| d.ms()),
                    },
                    "prefix",
                    &g.prefix,
                )?;
            }
        }
    }
    let mut vm_names = BTreeSet::new();
    for v in &vms {
        if !vm_names.insert(v.id.clone()) {
            return Err(src.error(
                src.find_last("name", v.id.as_str()),
                format!("vm `{}` is defined twice", v.id),
            ));
        }
    }
    // No home host over-committed.
    let mut used: BTreeMap<&HostId, Resources> = BTreeMap::new();
    for v in &vms {
        let u = used.entry(&v.home).or_default();
        *u = u.add(&v.demand);
    }
    for (h, u) in &used {
        let cap = by_name[h.as_str()].placeable();
        if !u.fits_in(&cap) {
            return Err(src.error(
                src.find("host", h.as_str())
                    .or(src.find("name", h.as_str())),
                format!("host {h} is over-committed: its VMs need {u}, it has {cap}"),
            ));
        }
    }
    let rules = crate::cluster_rules::rules(src, &f.rules, &hosts, &vms)?;
    for (key, n) in [
        ("max_restart", f.max_restart),
        ("max_relocate", f.max_relocate),
    ] {
        if let Some(n) = n.filter(|n| *n > BOOT_RETRIES_MAX) {
            return Err(src.error(
                src.find(key, &n.to_string()),
                format!("{key}: expected 0 to {BOOT_RETRIES_MAX}, not {n}"),
            ));
        }
    }
    let drs = match &f.drs {
        None => None,
        Some(e) => {
            let d = krrish_core::ha::DrsConfig::default();
            let checked = |key: &str, v: Option<u32>, lo: u32, hi: u32, default: u32| {
                let v = v.unwrap_or(default);
                if (lo..=hi).contains(&v) {
                    Ok(v)
                } else {
                    Err(src.error(
                        src.find(key, &v.to_string()),
                        format!("drs.{key}: expected {lo} to {hi}, not {v}"),
                    ))
                }
            };
            Some(krrish_core::ha::DrsConfig {
                threshold_percent: checked(
                    "threshold_percent",
                    e.threshold_percent,
                    1,
                    100,
                    d.threshold_percent,
                )?,
                max_concurrent: checked(
                    "max_concurrent",
                    e.max_concurrent,
                    1,
                    64,
                    d.max_concurrent,
                )?,
                interval_ms: match e.interval.map(|i| i.ms()) {
                    Some(0) => {
                        return Err(src.error(
                            src.key_line("interval"),
                            "drs.interval: expected a positive duration such as 5m",
                        ))
                    }
                    Some(ms) => ms,
                    None => d.interval_ms,
                },
                window: e.window.map(|w| w.0),
            })
        }
    };
    let dpm = f.dpm.as_ref().map(|e| e.config(src)).transpose()?;
    Ok(Cluster {
        drs,
        dpm,
        max_restart: f.max_restart,
        max_relocate: f.max_relocate,
        ha_enabled: f.ha_enabled,
        failover_to_production: f.failover_to_production,
        admission_reserve_percent: f.admission_reserve_percent,
        rules,
        name: f.name.unwrap_or_else(|| {
            src.file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        production_hosts: production,
        spare_hosts: hosts.iter().filter(|h| h.zone == Zone::Spare).count(),
        hosts,
        vms,
        imc_mode: f.imc_mode,
        isolation_response: f.isolation_response,
        isolation_response_delay_ms: f.isolation_response_delay.map(|d| d.ms()),
        fence_action: f.fence_action,
    })
}
