//! The agent daemon's config: its file types, the checked
//! [`AgentDaemonConfig`] (simulated or libvirt driver) and [`load_agent`].

use super::*;
use krrish_core::ipam::parse_network;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentTimingsFile {
    heartbeat_interval: Option<Dur>,
    lease_duration: Option<Dur>,
    ack_timeout: Option<Dur>,
    connect_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DriverKind {
    Sim,
    Libvirt,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DriverFile {
    kind: DriverKind,
    cluster_file: Option<PathBuf>,
    boot_time: Option<Dur>,
    seed: Option<u64>,
    // kind: libvirt
    uri: Option<String>,
    netns: Option<String>,
    vm_bridge: Option<String>,
    guest_dir: Option<PathBuf>,
    domain_type: Option<String>,
    dfs_dir: Option<PathBuf>,
    run_dir: Option<PathBuf>,
    vm_network: Option<String>,
    boot_timeout: Option<Dur>,
    guest_memory_cap_mib: Option<u64>,
    tenant_network: Option<TenantNetworkFile>,
    bond_members: Option<BondMembersFile>,
    migration_peers: Option<Vec<MigrationPeerFile>>,
}

/// `driver.migration_peers[]`: another host whose own libvirt daemon takes
/// this host's guests live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationPeerFile {
    host: String,
    uri: String,
    run_dir: PathBuf,
    address: String,
}

/// `driver.bond_members`: the two member links of each bond, as a
/// physical host names them (the lab in a box's are the default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BondMembersFile {
    management: [String; 2],
    vm: [String; 2],
    storage: [String; 2],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantNetworkFile {
    underlay: String,
    local: String,
    group: Option<String>,
    eip_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    host: String,
    controller: String,
    #[serde(default)]
    timings: AgentTimingsFile,
    driver: DriverFile,
    pid_file: Option<PathBuf>,
    dfs: Option<DfsClientFile>,
}

#[cfg_attr(not(feature = "lab"), allow(dead_code))]
/// The libvirt driver's settings, checked (see krrish-libvirt's
/// `LabHost`; this crate builds the driver only with the `lab` feature).
#[derive(Clone, Debug)]
pub struct LibvirtConfig {
    pub uri: String,
    pub netns: Option<String>,
    pub vm_bridge: String,
    pub guest_dir: PathBuf,
    /// `kvm` or `qemu` (TCG), as `cargo xtask lab up` probed it.
    pub domain_type: String,
    pub dfs_dir: PathBuf,
    pub run_dir: PathBuf,
    pub vm_network: (std::net::Ipv4Addr, u8),
    pub boot_timeout_ms: u64,
    pub guest_memory_cap_mib: u64,
    /// Where the host renews its DFS lease (the agent config's `dfs`).
    pub lease: DfsClientConfig,
    /// The lease the host assumes (the agent's `timings.lease_duration`).
    pub lease_duration_ms: u64,
    /// vxnets over VXLAN and EIPs by NAT; `None`: no guest here gets
    /// vxnet interfaces.
    pub tenant_network: Option<TenantNetworkConfig>,
    /// Each bond's two member links, in bond order (management, VM
    /// network, storage); `None`: the lab in a box's names.
    pub bond_members: Option<[[String; 2]; 3]>,
    /// Hosts this one live-migrates guests to (krrish-libvirt's
    /// `MigrationPeer`); none: live migration answers "not supported".
    pub migration_peers: Vec<MigrationPeerConfig>,
}

/// `driver.migration_peers[]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationPeerConfig {
    pub host: String,
    pub uri: String,
    pub run_dir: PathBuf,
    pub address: std::net::IpAddr,
}

/// `driver.tenant_network`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantNetworkConfig {
    /// The link VXLAN runs over (holds `local`).
    pub underlay: String,
    /// This host's tunnel endpoint address.
    pub local: std::net::Ipv4Addr,
    /// Where vxnets flood unknown destinations (default 239.1.1.1).
    pub group: std::net::Ipv4Addr,
    /// Where this host answers for EIPs (default: the underlay).
    pub eip_link: String,
}

/// The multicast group vxnets flood to unless the config says otherwise.
pub const VXLAN_GROUP_DEFAULT: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 1, 1, 1);

/// A host's link name by the one rule (krrish-core's `link_name`).
fn link_name_ok(n: &str) -> bool {
    krrish_core::link_name::check_link_name(n).is_ok()
}

/// `driver.migration_peers`, checked: names and addresses.
fn migration_peers(
    src: &Source<'_>,
    this_host: &str,
    config: &Path,
    peers: &[MigrationPeerFile],
) -> Result<Vec<MigrationPeerConfig>, LoadError> {
    let mut out: Vec<MigrationPeerConfig> = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let bad = |key: &str, value: &str, what: &str| {
            src.error(
                src.find(key, value)
                    .or_else(|| src.key_line("migration_peers")),
                format!("driver.migration_peers[{i}].{key}: expected {what}, got {value:?}"),
            )
        };
        if p.host == this_host || out.iter().any(|o| o.host == p.host) {
            return Err(bad(
                "host",
                &p.host,
                "another host, named once (not this host)",
            ));
        }
        let host_ok = !p.host.is_empty()
            && p.host.len() <= 63
            && p.host.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
            });
        if !host_ok {
            return Err(bad(
                "host",
                &p.host,
                "a host name (1-63 of a-z, 0-9, ., _, -)",
            ));
        }
        if p.uri.trim().is_empty() {
            return Err(bad("uri", &p.uri, "that host's libvirt URI"));
        }
        let address = p.address.parse().map_err(|_| {
            bad(
                "address",
                &p.address,
                "the IP address that host's QEMU takes migrations on",
            )
        })?;
        out.push(MigrationPeerConfig {
            host: p.host.clone(),
            uri: p.uri.clone(),
            run_dir: beside(config, &p.run_dir),
            address,
        });
    }
    Ok(out)
}

/// `driver.bond_members`, checked: kernel link names.
fn bond_members(src: &Source<'_>, b: &BondMembersFile) -> Result<[[String; 2]; 3], LoadError> {
    let bonds = [
        ("management", &b.management),
        ("vm", &b.vm),
        ("storage", &b.storage),
    ];
    for (role, members) in bonds {
        for m in members.iter() {
            if !link_name_ok(m) {
                return Err(src.error(
                    src.find(role, "").or_else(|| src.key_line("bond_members")),
                    format!(
                        "driver.bond_members.{role}: {m:?}: expected {}",
                        krrish_core::link_name::LINK_NAME_RULE
                    ),
                ));
            }
        }
    }
    Ok([b.management.clone(), b.vm.clone(), b.storage.clone()])
}

fn tenant_network(
    src: &Source<'_>,
    t: &TenantNetworkFile,
) -> Result<TenantNetworkConfig, LoadError> {
    let bad = |key: &str, value: &str, what: &str| {
        src.error(
            src.find(key, "").or_else(|| src.key_line("driver")),
            format!("driver.tenant_network.{key}: expected {what}, got {value:?}"),
        )
    };
    let link = |key: &str, v: &str| {
        if link_name_ok(v) {
            Ok(v.to_string())
        } else {
            Err(bad(key, v, krrish_core::link_name::LINK_NAME_RULE))
        }
    };
    let underlay = link("underlay", &t.underlay)?;
    let eip_link = match &t.eip_link {
        Some(l) => link("eip_link", l)?,
        None => underlay.clone(),
    };
    let local = t
        .local
        .parse()
        .map_err(|_| bad("local", &t.local, "this host's IPv4 tunnel address"))?;
    let group = match &t.group {
        Some(g) => match g.parse::<std::net::Ipv4Addr>() {
            Ok(a) if a.is_multicast() => a,
            _ => return Err(bad("group", g, "an IPv4 multicast address (224.0.0.0/4)")),
        },
        None => VXLAN_GROUP_DEFAULT,
    };
    Ok(TenantNetworkConfig {
        underlay,
        local,
        group,
        eip_link,
    })
}

/// The agent's hypervisor backend.
#[derive(Clone, Debug)]
pub enum DriverConfig {
    /// The simulated hypervisor standing for this one host: its home VMs
    /// from the cluster file run at start.
    Sim {
        spec: HostSpec,
        home_vms: Vec<VmSpec>,
        boot_ms: u64,
        seed: u64,
    },
    /// Real guests through libvirt (with the `lab` feature).
    Libvirt(Box<LibvirtConfig>),
}

#[derive(Clone, Debug)]
pub struct AgentDaemonConfig {
    pub host: String,
    pub controller: String,
    pub timings: AgentTimings,
    pub driver: DriverConfig,
    pub pid_file: Option<PathBuf>,
}

/// Simulated guest boot time unless the agent config says otherwise.
const SIM_BOOT_MS_DEFAULT: u64 = 20_000;
pub fn load_agent(path: &Path) -> Result<AgentDaemonConfig, LoadError> {
    let text = read_nonempty(path, "an agent config (host, controller, driver)")?;
    let src = Source {
        file: path,
        text: &text,
    };
    let f: AgentFile = parse(&src)?;
    let pid_file = f.pid_file.as_ref().map(|p| beside(path, p));
    if let Some(p) = &pid_file {
        check_dir(
            &src,
            "pid_file",
            p,
            "the pid file itself is written at start",
        )?;
    }

    check_address(&f.controller).map_err(|why| {
        src.error(
            at(&src, "controller", "controller"),
            format!(
                "controller: '{}': {why}; expected the controller's address and port such as 10.0.0.5:7400",
                f.controller
            ),
        )
    })?;

    let t = &f.timings;
    let bad = |key: &str, why: &str| {
        src.error(
            at(&src, key, "timings"),
            format!("timings.{key}: expected {why}"),
        )
    };
    let defaults = HaConfig::default();
    let hb = t
        .heartbeat_interval
        .map_or(defaults.heartbeat.interval_ms, Dur::ms);
    if hb < HEARTBEAT_INTERVAL_MIN_MS {
        return Err(bad("heartbeat_interval", "at least 100ms"));
    }
    let lease = t.lease_duration.map_or(defaults.lease_duration_ms, Dur::ms);
    if lease < LEASE_DURATION_MIN_MS {
        return Err(bad("lease_duration", "at least 3s"));
    }
    let mut timings = AgentTimings::derive(hb, lease);
    for (key, given, slot) in [
        ("ack_timeout", t.ack_timeout, &mut timings.ack_timeout_ms),
        (
            "connect_timeout",
            t.connect_timeout,
            &mut timings.connect_timeout_ms,
        ),
    ] {
        if let Some(d) = given {
            // Past the lease, a dead link would be noticed after the host
            // had already stopped its guests: no use.
            if d.ms() == 0 || d.ms() >= lease {
                return Err(bad(key, "more than 0 and less than lease_duration"));
            }
            *slot = d.ms();
        }
    }

    let driver = match f.driver.kind {
        DriverKind::Libvirt => {
            let d = &f.driver;
            refuse_given(
                &src,
                &[
                    ("cluster_file", d.cluster_file.is_some()),
                    ("boot_time", d.boot_time.is_some()),
                    ("seed", d.seed.is_some()),
                ],
                "only `kind: sim` takes this (the libvirt driver boots real guests the controller asks for)",
            )?;
            let need = |v: Option<String>, key: &str, what: &str| {
                v.ok_or_else(|| {
                    src.error(
                        src.find("kind", "libvirt")
                            .or_else(|| src.key_line("driver")),
                        format!("driver.{key}: expected {what}"),
                    )
                })
            };
            let path =
                |p: &Option<PathBuf>| p.as_ref().map(|p| beside(path, p).display().to_string());
            let domain_type = d.domain_type.clone().unwrap_or_else(|| "qemu".into());
            if domain_type != "qemu" && domain_type != "kvm" {
                return Err(src.error(
                    src.find("domain_type", "")
                        .or_else(|| src.key_line("driver")),
                    format!("driver.domain_type: expected kvm or qemu (TCG), got {domain_type:?}"),
                ));
            }
            let net_text = d
                .vm_network
                .clone()
                .unwrap_or_else(|| "10.80.0.0/16".into());
            let vm_network = parse_network(&net_text).ok_or_else(|| {
                src.error(
                    src.find("vm_network", "").or_else(|| src.key_line("driver")),
                    format!("driver.vm_network: expected an IPv4 network such as 10.80.0.0/16 (prefix 8 to 30), got {net_text:?}"),
                )
            })?;
            DriverConfig::Libvirt(Box::new(LibvirtConfig {
                uri: d.uri.clone().unwrap_or_else(|| "qemu:///system".into()),
                netns: d.netns.clone(),
                vm_bridge: d.vm_bridge.clone().unwrap_or_else(|| "br-vm".into()),
                guest_dir: need(
                    path(&d.guest_dir),
                    "guest_dir",
                    "the guest image directory (cargo xtask lab up makes target/lab/guest)",
                )?
                .into(),
                domain_type,
                dfs_dir: need(
                    path(&d.dfs_dir),
                    "dfs_dir",
                    "the DFS directory every host sees",
                )?
                .into(),
                run_dir: need(
                    path(&d.run_dir),
                    "run_dir",
                    "a directory for this host's guest consoles",
                )?
                .into(),
                vm_network,
                boot_timeout_ms: d.boot_timeout.map_or(60_000, Dur::ms),
                guest_memory_cap_mib: d.guest_memory_cap_mib.unwrap_or(128),
                lease: match &f.dfs {
                    Some(l) => dfs_client(
                        &src,
                        l,
                        timings.lease_renew_every_ms,
                        "the lease renewal interval (a sixth of timings.lease_duration)",
                    )?,
                    None => {
                        return Err(src.error(
                            src.find("kind", "libvirt")
                                .or_else(|| src.key_line("driver")),
                            "dfs: expected a `dfs` section with `lease_service: host:port` \
                             (a real host renews its DFS lease with `krrish dfs`)",
                        ))
                    }
                },
                lease_duration_ms: timings.lease_duration_ms,
                tenant_network: d
                    .tenant_network
                    .as_ref()
                    .map(|t| tenant_network(&src, t))
                    .transpose()?,
                bond_members: d
                    .bond_members
                    .as_ref()
                    .map(|b| bond_members(&src, b))
                    .transpose()?,
                migration_peers: migration_peers(
                    &src,
                    &f.host,
                    src.file,
                    d.migration_peers.as_deref().unwrap_or_default(),
                )?,
            }))
        }
        DriverKind::Sim => {
            let d = &f.driver;
            refuse_given(
                &src,
                &[
                    ("uri", d.uri.is_some()),
                    ("netns", d.netns.is_some()),
                    ("vm_bridge", d.vm_bridge.is_some()),
                    ("guest_dir", d.guest_dir.is_some()),
                    ("domain_type", d.domain_type.is_some()),
                    ("dfs_dir", d.dfs_dir.is_some()),
                    ("run_dir", d.run_dir.is_some()),
                    ("vm_network", d.vm_network.is_some()),
                    ("boot_timeout", d.boot_timeout.is_some()),
                    ("guest_memory_cap_mib", d.guest_memory_cap_mib.is_some()),
                    ("tenant_network", d.tenant_network.is_some()),
                    ("bond_members", d.bond_members.is_some()),
                    ("migration_peers", d.migration_peers.is_some()),
                ],
                "only `kind: libvirt` takes this",
            )?;
            if f.dfs.is_some() {
                return Err(src.error(
                    src.key_line("dfs"),
                    "dfs: only `driver.kind: libvirt` takes this (the simulated driver renews \
                     its lease with the simulated DFS)",
                ));
            }
            let Some(cf) = &f.driver.cluster_file else {
                return Err(src.error(
                    src.find("kind", "sim").or_else(|| src.key_line("driver")),
                    "driver.cluster_file: expected the cluster file (the sim driver takes this host's spec and home VMs from it)",
                ));
            };
            let cluster = cluster(&src, "cluster_file", &beside(path, cf))?;
            let Some(spec) = cluster.hosts.iter().find(|h| h.id.as_str() == f.host) else {
                return Err(src.error(
                    at(&src, "host", "host"),
                    format!(
                        "host: no host named `{}` in cluster `{}`",
                        f.host, cluster.name
                    ),
                ));
            };
            let home_vms = cluster
                .vms
                .iter()
                .filter(|v| v.home == spec.id)
                .cloned()
                .collect();
            let boot_ms = f.driver.boot_time.map_or(SIM_BOOT_MS_DEFAULT, Dur::ms);
            DriverConfig::Sim {
                spec: spec.clone(),
                home_vms,
                boot_ms,
                seed: f.driver.seed.unwrap_or(1),
            }
        }
    };

    Ok(AgentDaemonConfig {
        host: f.host,
        controller: f.controller,
        timings,
        driver,
        pid_file,
    })
}
