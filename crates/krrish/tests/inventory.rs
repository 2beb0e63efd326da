//! `krrish scenario run --world lab --inventory FILE` as an operator runs
//! it, against a host that is a network namespace of this machine (its
//! `run` prefix is `ip netns exec`), a host that does not answer, libvirt's
//! built-in test driver and a BMC address nobody answers: the preflight
//! reports each check, the scenarios are NOT RUN, the exit code fails.
//! Root is required (namespaces), as on our standard machines and in CI;
//! ipmitool comes with the suite's system packages.
#![cfg(feature = "lab")]

use std::path::PathBuf;
use std::process::Command;

const NS: &str = "krl-inv-h1";

/// The namespace and scratch directory, removed again pass or fail.
struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn in_ns(args: &[&str]) {
    let mut all = vec!["ip", "netns", "exec", NS];
    all.extend_from_slice(args);
    sh(&all);
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn inventory(dir: &std::path::Path) -> String {
    format!(
        "\
controller: 127.0.0.1
lease_service: 192.0.2.99
dfs_dir: {dir}/dfs
guest_dir: {dir}/guest
domain_type: qemu
hosts:
  - id: hv-01
    run: [ip, netns, exec, {NS}]
    krrish: {krrish}
    libvirt: test:///default
    vm_bridge: br-vm
    underlay: 10.79.9.11
    bonds:
      management: [eno1, eno2]
      vm: [eno3, eno4]
      storage: [eno5, eno6]
    bmc: {{ address: 127.0.0.1, port: 9, username: admin, password_file: bmc.pass }}
    faults:
      partition: [ip, netns, exec, {NS}, ip, link, set, eno1, down]
      heal: [ip, netns, exec, {NS}, ip, link, set, eno1, up]
  - id: hv-02
    run: [ip, netns, exec, krl-inv-nowhere]
    krrish: {krrish}
    libvirt: test:///no/such/file.xml
    vm_bridge: br-vm
    underlay: 10.79.9.12
    bonds:
      management: [eno1, eno2]
      vm: [eno3, eno4]
      storage: [eno5, eno6]
    bmc: {{ address: 127.0.0.2, port: 9, username: admin, password_file: bmc.pass }}
",
        dir = dir.display(),
        krrish = env!("CARGO_BIN_EXE_krrish"),
    )
}

/// `krrish scenario run --world lab --inventory FILE` on three lab files:
/// a crash, a management cut and a storage bond fault of hv-01.
fn run_with(file: &std::path::Path) -> (std::process::Output, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_krrish"))
        .args(["scenario", "run", "--world", "lab", "--inventory"])
        .arg(file)
        .args([
            "scenarios/lab/crash-fails-over.yaml",
            "scenarios/lab/mgmt-cut-5s-nothing-happens.yaml",
            "scenarios/lab/storage-cut-restarts-on-spare.yaml",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (o, out)
}

/// The preflight's line for `host`'s `check` (columns as printed).
fn line<'a>(out: &'a str, host: &str, check: &str) -> &'a str {
    let key = format!("{host:<16} {check:<12}");
    out.lines()
        .find(|l| l.contains(&key))
        .map(str::trim_start)
        .unwrap_or_else(|| panic!("no {host} {check} line in:\n{out}"))
}

#[test]
fn the_preflight_checks_every_host_and_the_scenarios_are_not_run() {
    let dir = std::env::temp_dir().join(format!("krrish-inventory-{}", std::process::id()));
    let _ = Command::new("ip").args(["netns", "del", NS]).status();
    let _scratch = Scratch(dir.clone());
    std::fs::create_dir_all(dir.join("dfs")).unwrap();
    std::fs::create_dir_all(dir.join("guest")).unwrap();
    std::fs::write(dir.join("guest/vmlinuz"), "k").unwrap();
    std::fs::write(dir.join("guest/initrd.gz"), "i").unwrap();
    std::fs::write(dir.join("bmc.pass"), "secret\n").unwrap();
    sh(&["ip", "netns", "add", NS]);
    in_ns(&["ip", "link", "add", "br-vm", "type", "bridge"]);
    in_ns(&["ip", "addr", "add", "10.79.9.11/24", "dev", "br-vm"]);
    for i in 1..=6 {
        let (a, b) = (format!("eno{i}"), format!("eno{i}p"));
        in_ns(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
    }
    let file = dir.join("lab.yaml");
    std::fs::write(&file, inventory(&dir)).unwrap();

    let (o, out) = run_with(&file);
    assert!(!o.status.success(), "not run is not passed:\n{out}");
    assert!(out.contains("preflight of 2 hosts"), "{out}");
    assert!(
        line(&out, "(this machine)", "controller").starts_with("ok"),
        "{out}"
    );
    let lease = line(&out, "(this machine)", "lease");
    assert!(
        lease.starts_with("FAILED") && lease.contains("192.0.2.99"),
        "{out}"
    );
    for check in ["reach", "krrish", "links", "guest image", "dfs", "libvirt"] {
        assert!(
            line(&out, "hv-01", check).starts_with("ok"),
            "{check}:\n{out}"
        );
    }
    assert!(line(&out, "hv-01", "krrish").contains("krrish 0."), "{out}");
    assert!(line(&out, "hv-01", "dfs").contains("is shared"), "{out}");
    let bmc = line(&out, "hv-01", "bmc");
    assert!(
        bmc.starts_with("FAILED") && bmc.contains("127.0.0.1:9"),
        "{out}"
    );
    assert!(line(&out, "hv-02", "reach").starts_with("FAILED"), "{out}");
    for check in ["krrish", "links", "guest image", "dfs"] {
        assert!(
            line(&out, "hv-02", check).starts_with("NOT CHECKED"),
            "{check}:\n{out}"
        );
    }
    assert!(
        line(&out, "hv-02", "libvirt").starts_with("FAILED"),
        "{out}"
    );
    assert!(
        line(&out, "hv-01", "faults").starts_with("ok")
            && line(&out, "hv-01", "faults").contains("partition, heal"),
        "{out}"
    );
    assert!(
        line(&out, "hv-02", "faults").contains("none given"),
        "{out}"
    );
    assert!(
        out.contains("preflight: 9 passed, 5 failed, 4 not checked"),
        "{out}"
    );
    assert!(out.contains("NOT RUN  lab/crash-fails-over"), "{out}");
    assert!(
        out.contains("its cluster's hosts not in the inventory: spare-1"),
        "{out}"
    );
    // What each scenario would need from the inventory: hv-01 has its
    // cut and mend commands, no bond commands.
    let needs = |name: &str| -> Vec<&str> {
        out.split("NOT RUN  ")
            .find(|b| b.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
            .lines()
            .filter(|l| l.contains("the inventory gives no `faults"))
            .collect()
    };
    assert!(needs("lab/crash-fails-over").is_empty(), "{out}");
    // Why nothing ran, and what else the inventory lacks: a BMC where the
    // cluster's controller would not fence, a way to ping guests.
    assert!(
        out.contains("the preflight of the inventory's hosts failed (5 checks, above)"),
        "{out}"
    );
    assert!(
        out.contains(
            "hv-01: the cluster's ipmi address is 10.3.0.1, its BMC in the inventory is 127.0.0.1"
        ),
        "{out}"
    );
    assert!(
        out.contains("line 13: vm_runs_on also means the guest answers ping: the inventory gives no `ping_from`"),
        "{out}"
    );
    assert!(needs("lab/mgmt-cut-5s-nothing-happens").is_empty(), "{out}");
    let storage = needs("lab/storage-cut-restarts-on-spare");
    assert!(
        storage.len() == 1
            && storage[0].contains("`faults.bond_down.storage` for hv-01")
            && storage[0].trim_start().starts_with("line 10:"),
        "{out}"
    );
    assert!(out.contains("0 passed, 0 failed, 3 not run"), "{out}");
    // The DFS marker is gone again.
    assert_eq!(std::fs::read_dir(dir.join("dfs")).unwrap().count(), 0);

    // A missing link is named; so is a fault command's missing program.
    in_ns(&["ip", "link", "del", "eno4"]);
    let text = inventory(&dir).replacen("heal: [ip,", "heal: [/no/such/mend,", 1);
    std::fs::write(&file, text).unwrap();
    let (_, out) = run_with(&file);
    let faults = line(&out, "hv-01", "faults");
    assert!(
        faults.starts_with("FAILED") && faults.contains("faults.heal: `/no/such/mend` not found"),
        "{out}"
    );
    let links = line(&out, "hv-01", "links");
    assert!(
        links.starts_with("FAILED") && links.contains("eno4"),
        "{out}"
    );
}

#[test]
fn a_bad_inventory_is_refused_with_its_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("krrish-inventory-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bmc.pass"), "secret\n").unwrap();
    let file = dir.join("lab.yaml");
    let text = inventory(&dir).replacen("vm_bridge: br-vm", "vm_brige: br-vm", 1);
    std::fs::write(&file, text).unwrap();
    let (o, out) = run_with(&file);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains(&format!("{}:11: (yaml): ", file.display())) && out.contains("vm_brige"),
        "{out}"
    );
    assert!(
        !out.contains("preflight of"),
        "nothing runs on a bad file: {out}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_krrish"))
        .args(["scenario", "run", "--inventory", "x.yaml", "scenarios/lab/"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("goes with --world lab"));
}
