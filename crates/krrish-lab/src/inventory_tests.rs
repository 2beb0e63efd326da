//! Tests of [`super`]: loading, checking and naming lines of an inventory.
use super::*;

const GOOD: &str = "\
controller: 10.20.0.1
lease_service: 10.30.0.1
dfs_dir: /srv/krrish-dfs
guest_dir: /var/lib/krrish/guest
domain_type: kvm
hosts:
  - id: hv-01
    run: [ssh, -o, BatchMode=yes, root@hv-01]
    krrish: /usr/local/bin/krrish
    libvirt: qemu+ssh://root@hv-01/system
    vm_bridge: br-vm
    underlay: 10.40.0.11
    bonds:
      management: [eno1, eno2]
      vm: [eno3, eno4]
      storage: [eno5, eno6]
    bmc: { address: 10.50.0.11, username: admin, password_file: bmc.pass }
  - id: hv-02
    run: [ssh, root@hv-02]
    krrish: /usr/local/bin/krrish
    libvirt: qemu+ssh://root@hv-02/system
    vm_bridge: br-vm
    underlay: 10.40.0.12
    bonds:
      management: [eno1, eno2]
      vm: [eno3, eno4]
      storage: [eno5, eno6]
    bmc: { address: 10.50.0.12, username: admin, password_file: bmc.pass }
    faults:
      partition: [ssh, admin@sw-1, \"interface eth1/12 shutdown\"]
      heal: [ssh, admin@sw-1, \"interface eth1/12 no shutdown\"]
      bond_down: { vm: [/usr/local/bin/ports, hv-02, vm, off] }
      bond_up: { vm: [/usr/local/bin/ports, hv-02, vm, on] }
";

/// `text` as `lab.yaml` in a fresh directory with `bmc.pass` beside it.
fn load(tag: &str, text: &str) -> Result<Inventory, InventoryError> {
    let dir = std::env::temp_dir().join(format!("krrish-inv-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bmc.pass"), "secret\n").unwrap();
    let file = dir.join("lab.yaml");
    std::fs::write(&file, text).unwrap();
    let r = Inventory::load(&file);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

#[test]
fn an_inventory_written_by_its_serializer_loads_back_and_names_lines() {
    let inv = load("serde-good", GOOD).unwrap();
    // (Its password files as given: the loaded ones were made absolute
    // in a directory gone since.)
    let absolute = inv.hosts[0].bmc.password_file.display().to_string();
    let text = serde_yaml::to_string(&inv)
        .unwrap()
        .replace(&absolute, "bmc.pass");
    // Items start with whatever key comes first (`- id:` here, but not
    // necessarily): the line is still found in the right host's block.
    let again = load("again", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again.hosts.len(), 2);
    assert_eq!(again.hosts[1].faults, inv.hosts[1].faults);
    assert_eq!(again.hosts[1].bonds, inv.hosts[1].bonds);
    let text = text.replacen("- id: hv-02\n", "- id: hv-02\n  vm_bridge: x y\n", 1);
    let text = text.replacen(
        "  vm_bridge: br-vm\n  underlay: 10.40.0.12",
        "  underlay: 10.40.0.12",
        1,
    );
    let e = load("moved", &text).unwrap_err();
    let line = text.lines().position(|l| l == "  vm_bridge: x y").unwrap() + 1;
    assert_eq!(e.field, "hosts[1] (hv-02).vm_bridge", "{e}\n{text}");
    assert_eq!(e.line, Some(line), "{e}\n{text}");
    // A list whose items open with another key than `id`.
    let reordered = GOOD
        .replace(
            "  - id: hv-01\n    run: [ssh, -o, BatchMode=yes, root@hv-01]",
            "  - run: [ssh, -o, BatchMode=yes, root@hv-01]\n    id: hv-01",
        )
        .replace(
            "  - id: hv-02\n    run: [ssh, root@hv-02]",
            "  - run: [ssh, root@hv-02]\n    id: hv-02",
        )
        .replace(
            "underlay: 10.40.0.12",
            "underlay: 10.40.0.12\n    vm_bridge: x y",
        )
        .replacen(
            "    vm_bridge: br-vm\n    underlay: 10.40.0.12",
            "    underlay: 10.40.0.12",
            1,
        );
    let e = load("reordered", &reordered).unwrap_err();
    let line = reordered
        .lines()
        .position(|l| l == "    vm_bridge: x y")
        .unwrap()
        + 1;
    assert_eq!(e.field, "hosts[1] (hv-02).vm_bridge", "{e}\n{reordered}");
    assert_eq!(e.line, Some(line), "{e}\n{reordered}");
}

#[test]
fn two_hosts_in_one_namespace_are_refused() {
    let text = GOOD.replace(
        "    vm_bridge: br-vm\n",
        "    netns: ns-a\n    vm_bridge: br-vm\n",
    );
    let e = load("two-ns", &text).unwrap_err();
    let line = text
        .rfind("netns: ns-a")
        .map(|at| text[..at].lines().count());
    assert_eq!(e.field, "hosts[1] (hv-02).netns", "{e}");
    assert_eq!(e.line, line, "{e}");
    assert!(e.why.contains("ns-a is hv-01's namespace too"), "{e}");
}

#[test]
fn a_good_inventory_loads_with_its_password_files_made_absolute() {
    let inv = load("good", GOOD).unwrap();
    assert_eq!(inv.hosts.len(), 2);
    let h = inv.host("hv-02").unwrap();
    assert_eq!(h.run, ["ssh", "root@hv-02"]);
    assert!(h.bmc.password_file.is_absolute());
    assert!(h.bmc.password_file.ends_with("bmc.pass"));
    assert_eq!(
        h.bonds.in_order()[2],
        ["eno5".to_string(), "eno6".to_string()]
    );
    // Fault commands are optional: hv-01 has none, hv-02 a cut and
    // its VM-network bond.
    assert!(inv.host("hv-01").unwrap().faults.all().is_empty());
    let fields: Vec<String> = h.faults.all().into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "faults.partition",
            "faults.heal",
            "faults.bond_down.vm",
            "faults.bond_up.vm"
        ]
    );
    assert_eq!(h.faults.bond_up.get(1).unwrap().last().unwrap(), "on");
    assert!(h.faults.bond_down.get(2).is_none());
}

#[test]
fn a_host_that_is_a_namespace_and_a_run_directory_are_taken_as_given() {
    let inv = load("good-namespace", GOOD).unwrap();
    assert_eq!(inv.run_dir, Path::new("/var/lib/krrish/run"));
    assert_eq!(inv.host("hv-01").unwrap().netns, None);
    let text = second("vm_bridge: br-vm", "netns: krl-hv-02\n    vm_bridge: br-vm").replace(
        "domain_type: kvm",
        "run_dir: /work/lab/run\ndomain_type: kvm",
    );
    let inv = load("netns", &text).unwrap();
    assert_eq!(inv.run_dir, Path::new("/work/lab/run"));
    assert_eq!(
        inv.host("hv-02").unwrap().netns.as_deref(),
        Some("krl-hv-02")
    );
}

#[test]
fn a_misspelt_field_is_named_with_its_line() {
    let e = load("typo", &second("vm_bridge:", "vm_brige:")).unwrap_err();
    assert_eq!(e.line, Some(22), "{e}");
    assert!(e.why.contains("vm_brige"), "{e}");
    assert!(e.to_string().contains("lab.yaml:22"), "{e}");
}

/// GOOD with the second host's `from` (or the only one) made `to`.
fn second(from: &str, to: &str) -> String {
    let at = GOOD.rfind(from).unwrap();
    format!("{}{to}{}", &GOOD[..at], &GOOD[at + from.len()..])
}

#[test]
fn each_wrong_value_names_its_host_field_and_line() {
    let cases = [
        (
            "id: hv-02",
            "id: hv-01",
            "hosts[1] (hv-01).id",
            18,
            "named twice",
        ),
        ("id: hv-02", "id: HV_02", "hosts[1] (HV_02).id", 18, "a-z"),
        (
            "run: [ssh, root@hv-02]",
            "run: []",
            "hosts[1] (hv-02).run",
            19,
            "prefix",
        ),
        (
            "krrish: /usr/local/bin/krrish",
            "krrish: bin/krrish",
            "hosts[1] (hv-02).krrish",
            20,
            "not absolute",
        ),
        (
            "libvirt: qemu+ssh://root@hv-02/system",
            "libvirt: hv-02",
            "hosts[1] (hv-02).libvirt",
            21,
            "URI",
        ),
        (
            "    bmc: { address: 10.50.0.12",
            "    migration: { uri: hv-02, address: 10.60.0.12 }\n    bmc: { address: 10.50.0.12",
            "hosts[1] (hv-02).migration.uri",
            28,
            "qemu+tcp://",
        ),
        (
            "[eno5, eno6]",
            "[eno5, \"x; reboot\"]",
            "hosts[1] (hv-02).bonds.storage",
            27,
            "x; reboot",
        ),
        (
            "address: 10.50.0.12",
            "address: 10.50.0.11",
            "hosts[1] (hv-02).bmc.address",
            28,
            "hv-01's BMC",
        ),
        (
            "password_file: bmc.pass",
            "password_file: nope.pass",
            "hosts[1] (hv-02).bmc.password_file",
            28,
            "nope.pass",
        ),
        (
            "domain_type: kvm",
            "domain_type: xen",
            "domain_type",
            5,
            "kvm or qemu",
        ),
        (
            "dfs_dir: /srv/krrish-dfs",
            "dfs_dir: dfs",
            "dfs_dir",
            3,
            "not absolute",
        ),
        (
            "domain_type: kvm",
            "run_dir: /var/run dir\ndomain_type: kvm",
            "run_dir",
            5,
            "expected a-z",
        ),
        (
            "vm_bridge: br-vm\n    underlay: 10.40.0.12",
            "netns: \"bad/ns\"\n    vm_bridge: br-vm\n    underlay: 10.40.0.12",
            "hosts[1] (hv-02).netns",
            22,
            "bad/ns",
        ),
        (
            "dfs_dir: /srv/krrish-dfs",
            "dfs_dir: /srv/a b",
            "dfs_dir",
            3,
            "` `",
        ),
        (
            "      heal: [ssh, admin@sw-1, \"interface eth1/12 no shutdown\"]\n",
            "",
            "hosts[1] (hv-02).faults.partition",
            30,
            "without `faults.heal`",
        ),
        (
            "bond_up: { vm:",
            "bond_up: { storage:",
            "hosts[1] (hv-02).faults.bond_down.vm",
            32,
            "without `faults.bond_up.vm`",
        ),
        (
            "bond_down: { vm: [/usr/local/bin/ports, hv-02, vm, off] }",
            "bond_down: { vm: [] }",
            "hosts[1] (hv-02).faults.bond_down.vm",
            32,
            "expected a command",
        ),
        ("heal: [", "mend: [", "(yaml)", 31, "mend"),
        (
            "domain_type: kvm",
            "domain_type: kvm\nvm_network: 10.80.0.1/16",
            "vm_network",
            6,
            "expected an IPv4 network",
        ),
        (
            "domain_type: kvm",
            "domain_type: kvm\nping_from: [ip, \"\"]",
            "ping_from",
            6,
            "expected a command prefix",
        ),
        (
            "krrish: /usr/local/bin/krrish",
            "krrish: /bin/k;rm",
            "hosts[1] (hv-02).krrish",
            20,
            "`;`",
        ),
    ];
    for (from, to, field, line, why) in cases {
        let e = load("bad", &second(from, to)).unwrap_err();
        assert_eq!(e.field, field, "{from} -> {to}: {e}");
        assert_eq!(e.line, Some(line), "{from} -> {to}: {e}");
        assert!(
            e.why.contains(why) || e.to_string().contains(why),
            "{from} -> {to}: {e}"
        );
    }
}

#[test]
fn every_host_with_a_problem_is_named_not_only_the_first() {
    let text = GOOD
        .replacen("domain_type: kvm", "domain_type: xen", 1)
        .replacen(
            "management: [eno1, eno2]",
            "management: [eno1, \"eno 2\"]",
            1,
        )
        .replacen("libvirt: qemu+ssh://root@hv-02/system", "libvirt: hv-02", 1);
    let e = load("all-problems", &text).unwrap_err();
    assert_eq!(e.field, "domain_type", "{e}");
    assert_eq!(e.also.len(), 2, "{e}");
    assert!(
        e.also[0].contains("hosts[0] (hv-01).bonds.management"),
        "{e}"
    );
    assert!(e.also[1].contains("hosts[1] (hv-02).libvirt"), "{e}");
    // Each on its own line, with the file and line.
    let shown = e.to_string();
    assert_eq!(shown.lines().count(), 3, "{shown}");
    assert!(shown.lines().all(|l| l.contains("lab.yaml:")), "{shown}");
}

#[test]
fn a_vlan_sub_interface_is_a_link_name() {
    let text = GOOD.replacen("vm: [eno3, eno4]", "vm: [bond0.100, eno4]", 1);
    let inv = load("vlan", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.hosts[0].bonds.vm[0], "bond0.100");
}
