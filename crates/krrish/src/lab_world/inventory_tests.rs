//! Tests of [`super`]: agent configs from an inventory, the peers it
//! gives, and what an inventory can play.
use super::*;
use crate::daemon::config::{load_agent, DriverConfig};

/// A scratch directory with a BMC password file and a run directory,
/// and an inventory of `hosts` (YAML list items, two-space indented)
/// written in it with `extra` top-level lines.
fn inventory_in(name: &str, extra: &str, hosts: &str) -> (PathBuf, Inventory) {
    let dir = std::env::temp_dir().join(format!("krrish-inv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(dir.join("bmc.pass"), "secret\n").unwrap();
    let file = dir.join("lab.yaml");
    std::fs::write(
        &file,
        format!(
            "controller: 10.20.0.1\nlease_service: 10.30.0.1\ndfs_dir: /srv/krrish-dfs\n\
             guest_dir: /var/lib/krrish/guest\nrun_dir: {}\ndomain_type: qemu\n{extra}hosts:\n{hosts}",
            dir.join("run").display()
        ),
    )
    .unwrap();
    let inv = Inventory::load(&file).unwrap_or_else(|e| panic!("{e}"));
    (dir, inv)
}

/// One inventory host; `bmc` its BMC's address, `faults` its block.
fn host(id: &str, bmc: &str, faults: &str) -> String {
    format!(
        "  - id: {id}\n    run: [ip, netns, exec, krl-{id}]\n    krrish: /usr/bin/krrish\n\
         \x20   libvirt: qemu:///system\n    netns: krl-{id}\n    vm_bridge: br-vm\n\
         \x20   underlay: 10.40.0.11\n    bonds:\n      management: [eno1, eno2]\n\
         \x20     vm: [eno3, eno4]\n      storage: [eno5, eno6]\n\
         \x20   bmc: {{ address: {bmc}, username: admin, password_file: bmc.pass }}\n{faults}"
    )
}

#[test]
fn an_inventory_hosts_agent_config_loads_as_the_agent_reads_it() {
    let (dir, inv) = inventory_in("agent", "", &host("hv-01", "10.50.0.11", ""));
    let run_dir = dir.join("run");
    let ha = HaConfig::default();
    let text = agent_config(&inv, &inv.hosts[0], &ha);
    let agent_file = dir.join("agent-hv-01.yaml");
    std::fs::write(&agent_file, &text).unwrap();
    let cfg = load_agent(&agent_file).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(cfg.host, "hv-01");
    assert_eq!(cfg.controller, "10.20.0.1:7700");
    assert_eq!(cfg.pid_file, Some(run_dir.join("agent-hv-01.pid")));
    assert_eq!(cfg.timings.heartbeat_interval_ms, ha.heartbeat.interval_ms);
    let DriverConfig::Libvirt(lv) = cfg.driver else {
        panic!("not the libvirt driver:\n{text}");
    };
    assert_eq!(lv.netns.as_deref(), Some("krl-hv-01"));
    assert_eq!(lv.domain_type, "qemu");
    assert_eq!(lv.dfs_dir, Path::new("/srv/krrish-dfs"));
    assert_eq!(lv.run_dir, run_dir.join("consoles").join("hv-01"));
    assert_eq!(lv.lease.lease_service, "10.30.0.1:7702");
    let bonds = lv.bond_members.expect("bond members given");
    assert_eq!(bonds[2], ["eno5".to_string(), "eno6".to_string()]);
    let t = lv.tenant_network.expect("tenant network given");
    assert_eq!(t.local.to_string(), "10.40.0.11");
    assert_eq!(t.underlay, "br-vm");
    assert!(lv.migration_peers.is_empty(), "one libvirt: no peers");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Host `i`'s agent config, written to `dir` and loaded as the agent
/// loads it: its libvirt driver's part.
fn libvirt_config_of(
    dir: &Path,
    inv: &Inventory,
    i: usize,
) -> Box<crate::daemon::config::LibvirtConfig> {
    let agent_file = dir.join(format!("agent-{i}.yaml"));
    std::fs::write(
        &agent_file,
        agent_config(inv, &inv.hosts[i], &HaConfig::default()),
    )
    .unwrap();
    let DriverConfig::Libvirt(lv) = load_agent(&agent_file).unwrap().driver else {
        panic!("not the libvirt driver");
    };
    lv
}

#[test]
fn namespace_hosts_on_another_libvirt_are_migration_peers() {
    let other = "qemu+unix:///system?socket=/lab/libvirt-b/run/libvirt-sock";
    let hosts = [
        host("hv-01", "10.50.0.11", ""),
        host("hv-02", "10.50.0.12", ""),
        host("spare-1", "10.50.0.13", "").replace("qemu:///system", other),
    ]
    .concat();
    let (dir, inv) = inventory_in("peers", "", &hosts);
    let peers_of = |i: usize| {
        let lv = libvirt_config_of(&dir, &inv, i);
        (lv.uri.clone(), lv.migration_peers)
    };
    let (uri, peers) = peers_of(0);
    assert_eq!(uri, "qemu:///system");
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].host, "spare-1");
    assert_eq!(peers[0].uri, other);
    assert_eq!(
        peers[0].run_dir,
        dir.join("run").join("consoles").join("spare-1")
    );
    let (uri, peers) = peers_of(2);
    assert_eq!(uri, other);
    let hosts: Vec<&str> = peers.iter().map(|p| p.host.as_str()).collect();
    assert_eq!(hosts, ["hv-01", "hv-02"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn physical_hosts_with_a_migration_endpoint_are_each_others_peers() {
    let physical = |id: &str, bmc: &str, migration: &str| {
        host(id, bmc, "")
            .replace(&format!("    netns: krl-{id}\n"), "")
            .replace("    bonds:", &format!("{migration}    bonds:"))
    };
    let hosts = [
        physical(
            "hv-01",
            "10.50.0.11",
            "    migration: { uri: \"qemu+tcp://10.60.0.11/system\", address: 10.60.0.11 }\n",
        ),
        physical(
            "hv-02",
            "10.50.0.12",
            "    migration: { uri: \"qemu+tcp://10.60.0.12/system\", address: 10.60.0.12 }\n",
        ),
        physical("hv-03", "10.50.0.13", ""),
    ]
    .concat();
    let (dir, inv) = inventory_in("physical-peers", "", &hosts);
    let peers_of = |i: usize| {
        let lv = libvirt_config_of(&dir, &inv, i);
        assert_eq!(
            lv.uri, "qemu:///system",
            "an agent uses its host's own libvirt"
        );
        lv.migration_peers
            .into_iter()
            .map(|p| (p.host, p.uri, p.address.to_string()))
            .collect::<Vec<_>>()
    };
    let peer = |h: &str, n: u8| {
        (
            h.to_string(),
            format!("qemu+tcp://10.60.0.{n}/system"),
            format!("10.60.0.{n}"),
        )
    };
    assert_eq!(peers_of(0), [peer("hv-02", 12)]);
    assert_eq!(peers_of(1), [peer("hv-01", 11)]);
    // A host without an endpoint takes no live migration, but may
    // send its guests to those that do.
    assert_eq!(peers_of(2), [peer("hv-01", 11), peer("hv-02", 12)]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scenario the next test asks an inventory to play: a cut, a
/// power loss, a VM's placement and pings from outside and from a
/// guest, on two hosts and the spare the loader adds (ipmi addresses
/// 10.3.0.1, .2 and .3).
const SCENARIO: &str = "cluster:\n  name: two\n  hosts:\n    - { name: hv-01, zone: ECS }\n\
    \x20   - { name: hv-02, zone: ECS }\n  vms:\n    - { name: vm-1, host: hv-01, vcpus: 1, memory_gib: 1 }\n\
    timeline:\n  - at: 10s\n    partition: hv-01\n  - at: 15s\n    heal: hv-01\n\
    \x20 - at: 20s\n    power_loss: hv-02\n\
    expect:\n  - vm_runs_on: { vm: vm-1, host: hv-01 }\n  - host_state: { host: hv-01, state: up }\n\
    \x20 - ping: { from: internet, to_ip: 203.0.113.1, reachable: true }\n\
    \x20 - ping: { from: vm-1, to_ip: 10.80.0.1, reachable: true }\n\
    end: 60s\n";

#[test]
fn what_an_inventory_cannot_play_is_named_with_its_line() {
    let s = krrish_scenario::parse_scenario(Path::new("t.yaml"), SCENARIO).unwrap();
    // hv-01 with no fault commands and a BMC the cluster does not
    // name; hv-02 missing; no `ping_from`.
    let (dir, inv) = inventory_in("cannot", "", &host("hv-01", "10.50.0.11", ""));
    let why = unsupported(&s, &inv);
    let has = |needle: &str| {
        assert!(
            why.iter().any(|w| w.contains(needle)),
            "no reason with {needle:?} in {why:#?}"
        )
    };
    has("its cluster's hosts not in the inventory: hv-02, spare-1");
    has("hv-01: the cluster's ipmi address is 10.3.0.1, its BMC in the inventory is 10.50.0.11");
    has("line 9: the inventory gives no `faults.partition` for hv-01");
    has("line 11: the inventory gives no `faults.heal` for hv-01");
    has("line 16: vm_runs_on also means the guest answers ping");
    // A ping from outside needs `ping_from`; one from a guest goes
    // through its host's `run` (line 19: no reason).
    has("line 18: a ping from outside the hosts: the inventory gives no `ping_from`");
    // (The power loss of hv-02, not in the inventory, is not named
    // again.)
    assert_eq!(why.len(), 6, "{why:#?}");
    let _ = std::fs::remove_dir_all(&dir);

    // Both hosts, their cluster addresses, the cut's commands and a
    // ping prefix: only the power loss is left — hv-02's BMC cannot
    // be taken off its network without its `bmc_down` command.
    let faults = "    faults: { partition: [cut, hv-01], heal: [mend, hv-01] }\n";
    let hosts = host("hv-01", "10.3.0.1", faults)
        + &host("hv-02", "10.3.0.2", "")
        + &host("spare-1", "10.3.0.3", "");
    let (dir, inv) = inventory_in("can", "ping_from: [ip, netns, exec, ops]\n", &hosts);
    let why = unsupported(&s, &inv);
    assert_eq!(why.len(), 1, "{why:#?}");
    assert!(
        why[0].contains("line 13: the inventory gives no `faults.bmc_down` for hv-02"),
        "{why:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // With its BMC's port commands, everything can be played.
    let bmc = "    faults: { bmc_down: [port, off], bmc_up: [port, on] }\n";
    let hosts = host("hv-01", "10.3.0.1", faults)
        + &host("hv-02", "10.3.0.2", bmc)
        + &host("spare-1", "10.3.0.3", "");
    let (dir, inv) = inventory_in("all", "ping_from: [ip, netns, exec, ops]\n", &hosts);
    let why = unsupported(&s, &inv);
    assert!(why.is_empty(), "{why:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
