//! `krrish lab-hosts up|down`: the lab in a box's hosts left standing and
//! described as an inventory, so that `--world lab --inventory` runs on a
//! machine without physical hosts (CI does). `up` builds the namespaces
//! and links of a cluster's hosts, starts the BMC emulator on their `ipmi`
//! addresses (detached: it outlives the command) and writes
//! `target/lab/inventory-hosts/inventory.yaml`: each host reached by
//! `ip netns exec`, its cuts and bond faults as iproute2 commands on the
//! root-side ends of its links (an operator's switch-side commands),
//! guests pinged from the outside namespace. `down` stops and removes all
//! of it (`cargo xtask lab down` removes it too).

use super::*;
use krrish_lab::inventory::{Bmc, Bonds, Inventory, InventoryHost};

/// The standing hosts' directory under the lab's (the BMC emulator's
/// power on finds the lab's state one level up).
const DIR: &str = "inventory-hosts";

/// The inventory file `up` writes, in the standing hosts' directory.
const INVENTORY_FILE: &str = "inventory.yaml";

/// `krrish lab-hosts up --cluster FILE`: the inventory's path.
pub fn up(cluster_file: &Path) -> Result<PathBuf> {
    let lab = LabState::load(Path::new("target/lab"))?;
    let exe = std::env::current_exe().context("this krrish binary")?;
    let dir = lab.dir.join(DIR);
    // The cluster first: a bad file leaves standing hosts as they are.
    // (Its errors name the file, line and field.)
    let cluster =
        krrish_scenario::load_cluster(cluster_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    if dir.exists() {
        down()?;
    }
    std::fs::create_dir_all(dir.join("dfs"))?;
    let hosts: Vec<HostId> = cluster.hosts.iter().map(|h| h.id.clone()).collect();
    std::fs::write(
        dir.join("hosts"),
        hosts.iter().map(|h| format!("{h}\n")).collect::<String>(),
    )?;
    let topo = Topology::build(&hosts).context("building the hosts' networks")?;
    let result = start_bmcs(&lab, &exe, &dir, &cluster).and_then(|()| {
        let text = inventory_text(&lab, &exe, &dir, &cluster, &topo)?;
        let file = dir.join(INVENTORY_FILE);
        std::fs::write(&file, text)?;
        Inventory::load(&file).map_err(|e| anyhow::anyhow!("the inventory written: {e}"))?;
        Ok(file)
    });
    if result.is_err() {
        let _ = down();
    }
    result
}

/// The BMC emulator for every host, detached, with its pid in `bmc.pid`.
fn start_bmcs(
    lab: &LabState,
    exe: &Path,
    dir: &Path,
    cluster: &krrish_scenario::Cluster,
) -> Result<()> {
    std::fs::write(dir.join("lab_bmc.py"), daemons::BMC_SCRIPT)?;
    std::fs::write(dir.join("bmc-password"), "lab-bmc-not-secret\n")?;
    let mut c = Command::new("setsid");
    c.arg(&lab.bmc_python)
        .arg(dir.join("lab_bmc.py"))
        .arg("--krrish")
        .arg(exe)
        .arg("--run-dir")
        .arg(dir)
        .args(["--user", daemons::BMC_USER, "--password-file"])
        .arg(dir.join("bmc-password"));
    for h in &cluster.hosts {
        Topology::set_bmc_address(h.addresses.ipmi, true)?;
        c.arg(format!("{}={}", h.id, h.addresses.ipmi));
    }
    let log = std::fs::File::create(dir.join("bmc.log"))?;
    let mut child = c
        .stdout(std::fs::File::create(dir.join("bmc.out"))?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the BMC emulator")?;
    std::fs::write(dir.join("bmc.pid"), format!("{}\n", child.id()))?;
    let start = Instant::now();
    loop {
        let out = std::fs::read_to_string(dir.join("bmc.out")).unwrap_or_default();
        if out.lines().any(|l| l == "ready") {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("bmc.log")).unwrap_or_default();
            bail!(
                "the BMC emulator stopped at start ({status}): {}",
                log.trim()
            );
        }
        if start.elapsed() > STARTUP_MAX {
            bail!("the BMC emulator was not ready in {STARTUP_MAX:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The box's hosts as an inventory whose files live in `dir` (the
/// standing hosts', or a run's: its agent configs come from it too, see
/// `inventory::agent_config`).
pub(super) fn box_inventory(lab: &LabState, dir: &Path, hosts: Vec<InventoryHost>) -> Inventory {
    Inventory {
        controller: CONTROLLER_IP,
        lease_service: STORAGE_SERVICE_IP,
        dfs_dir: dir.join("dfs"),
        guest_dir: lab.guest_dir.clone(),
        run_dir: dir.to_path_buf(),
        domain_type: lab.domain_type.clone(),
        vm_network: format!("{}/{}", VM_NET.0, VM_NET.1),
        ping_from: Some(
            ["ip", "netns", "exec", OUTSIDE_NS]
                .map(String::from)
                .to_vec(),
        ),
        hosts,
    }
}

/// Box host `h` as an inventory host, no fault commands: reached by `ip
/// netns exec`, its libvirt (a spare's is the box's second daemon), its
/// links, its BMC (password in `dir`).
pub(super) fn box_host(
    lab: &LabState,
    exe: &Path,
    dir: &Path,
    h: &HostSpec,
    net: &HostNet,
) -> InventoryHost {
    let [management, vm, storage] = HostNet::bond_members();
    InventoryHost {
        id: h.id.to_string(),
        run: ["ip", "netns", "exec", &net.ns].map(String::from).to_vec(),
        krrish: exe.to_path_buf(),
        libvirt: lab.uri_of(h).to_string(),
        netns: Some(net.ns.clone()),
        vm_bridge: HOST_VM_BRIDGE.into(),
        underlay: net.underlay_ip,
        bonds: Bonds {
            management,
            vm,
            storage,
        },
        bmc: Bmc {
            address: h.addresses.ipmi,
            port: 623,
            username: daemons::BMC_USER.into(),
            password_file: dir.join("bmc-password"),
        },
        // Reached through `libvirt` at 127.0.0.1 when on the other daemon.
        migration: None,
        faults: Default::default(),
    }
}

/// The inventory of the standing hosts, as YAML from its own type.
fn inventory_text(
    lab: &LabState,
    exe: &Path,
    dir: &Path,
    cluster: &krrish_scenario::Cluster,
    topo: &Topology,
) -> Result<String> {
    use krrish_lab::inventory::{FaultCommands, PerBond};
    let sh = |steps: Vec<String>| Some(vec!["sh".into(), "-c".into(), steps.join(" && ")]);
    // What `bridge link` (disabled 0) and `ip link` do to the switch's
    // side of links.
    let ports = |links: &[String], state: u8| {
        sh(links
            .iter()
            .map(|l| format!("bridge link set dev {l} state {state}"))
            .collect())
    };
    // A mend leaves a port that is down alone: its host is off, and its
    // power on brings the port back forwarding (the kernel refuses a
    // state change on a port that is down).
    let mend_ports = |links: &[String]| {
        sh(links
            .iter()
            .map(|l| {
                format!(
                    "{{ [ -z \"$(ip link show dev {l} up)\" ] || bridge link set dev {l} state 3; }}"
                )
            })
            .collect())
    };
    let links = |links: Vec<String>, up: &str| {
        sh(links
            .iter()
            .map(|l| format!("ip link set dev {l} {up}"))
            .collect())
    };
    let bmc_address = |ip: std::net::Ipv4Addr, verb: &str| {
        sh(vec![format!(
            "ip addr {verb} {ip}/32 dev {}",
            krrish_lab::topology::OGW_BRIDGE
        )])
    };
    let mut hosts = Vec::new();
    for h in &cluster.hosts {
        let net = topo.host(&h.id).context("a host without networks")?;
        let per_bond = |up: &str| PerBond {
            management: links(net.bond_uplinks(BondName::Bond0), up),
            vm: links(net.bond_uplinks(BondName::Bond1), up),
            storage: links(net.bond_uplinks(BondName::Bond2), up),
        };
        let mut x = box_host(lab, exe, dir, h, net);
        x.faults = FaultCommands {
            partition: ports(&net.mgmt_root, 0),
            heal: mend_ports(&net.mgmt_root),
            bond_down: per_bond("down"),
            bond_up: per_bond("up"),
            // The BMC's address leaves (or rejoins) the OGW network.
            bmc_down: bmc_address(h.addresses.ipmi, "del"),
            bmc_up: bmc_address(h.addresses.ipmi, "add"),
        };
        hosts.push(x);
    }
    let inv = box_inventory(lab, dir, hosts);
    Ok(format!(
        "# The lab in a box's hosts, standing (`krrish lab-hosts up`): \
         an inventory for `--world lab --inventory`.\n{}",
        serde_yaml::to_string(&inv)?
    ))
}

/// `krrish lab-hosts down`: the BMC emulator, the agents and guests, the
/// networks and the directory, gone. What is gone already is fine.
pub fn down() -> Result<()> {
    let lab = LabState::load(Path::new("target/lab"))?;
    let dir = lab.dir.join(DIR);
    if let Ok(pid) = std::fs::read_to_string(dir.join("bmc.pid")) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    let hosts: Vec<HostId> = std::fs::read_to_string(dir.join("hosts"))
        .unwrap_or_default()
        .lines()
        .map(HostId::new)
        .collect();
    for h in &hosts {
        krrish_lab::power::kill_agent(&dir, h.as_str());
    }
    // Daemons whose command lines name the directory (an agent whose pid
    // file is gone).
    let _ = Command::new("pkill")
        .arg("-KILL")
        .arg("-f")
        .arg(format!("{}/", dir.display()))
        .status();
    for uri in lab.uris() {
        let Ok(hv) = Hypervisor::open(&uri) else {
            continue;
        };
        for d in hv.active_names().unwrap_or_default() {
            if hosts.iter().any(|h| vm_of_domain(h, &d).is_some()) {
                let _ = hv.destroy(&d);
            }
        }
    }
    let nets = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| HostNet::new(i, h))
        .collect::<Result<Vec<_>, _>>()?;
    Topology { hosts: nets }.teardown()?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}
