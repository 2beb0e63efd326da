//! Broken files get errors that name file, line (and column where known) and
//! what was expected. One table, one `check` helper.

use krrish_scenario::load_scenario;
use std::path::PathBuf;

const CLUSTER: &str = "cluster:\n  host_groups:\n    - { prefix: hv-, count: 2, zone: ECS }\n";

/// Two hosts, three VMs (a and c share hv-01), and the start of `rules:`.
const RULED: &str = "cluster:\n  host_groups:\n    - { prefix: hv-, count: 2, zone: ECS }\n  vms:\n    - { name: a, host: hv-01, vcpus: 1, memory_gib: 1 }\n    - { name: b, host: hv-02, vcpus: 1, memory_gib: 1 }\n    - { name: c, host: hv-01, vcpus: 1, memory_gib: 1 }\n  rules:\n";

/// Writes `text` as a scenario file and asserts the error names
/// `file:line` (and `:column` if given) and contains `message`.
fn check(name: &str, text: &str, line: usize, column: Option<usize>, message: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("load-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    let err = load_scenario(&path).expect_err("the file is broken");
    let shown = err.to_string();
    let mut at = format!("{}:{line}", path.display());
    if let Some(c) = column {
        at.push_str(&format!(":{c}"));
    }
    assert!(
        shown.starts_with(&at),
        "{name}: expected the error at {at}, got: {shown}"
    );
    assert!(
        shown.contains(message),
        "{name}: expected {message:?} in: {shown}"
    );
}

#[test]
fn broken_files_are_located() {
    let end = "end: 60s\n";
    let cases: Vec<(&str, String, usize, Option<usize>, &str)> = vec![
        ("unknown-top-field", format!("seeed: 3\n{CLUSTER}{end}"), 1, Some(1), "unknown field `seeed`"),
        ("missing-end", CLUSTER.to_string(), 1, None, "missing field `end`"),
        (
            "unknown-event-kind",
            format!("{CLUSTER}expect:\n  - event: {{ kind: fenced, host: hv-01 }}\n{end}"),
            5,
            Some(20),
            "event.kind: `fenced` is not an event kind; expected one of host-suspect",
        ),
        (
            "unknown-host",
            format!("{CLUSTER}timeline:\n  - at: 10s\n    crash: hv-99\n{end}"),
            6,
            Some(12),
            "no host named `hv-99`",
        ),
        (
            "bad-duration",
            format!("{CLUSTER}timeline:\n  - at: 10x\n    crash: hv-01\n{end}"),
            5,
            None,
            "unknown unit 'x'",
        ),
        (
            "two-actions",
            format!("{CLUSTER}timeline:\n  - at: 10s\n    crash: hv-01\n    repair: hv-01\n{end}"),
            5,
            Some(1),
            "2 actions",
        ),
        (
            "no-action",
            format!("{CLUSTER}timeline:\n  - at: 10s\n{end}"),
            5,
            Some(1),
            "no action",
        ),
        (
            "bad-host-state",
            format!("{CLUSTER}expect:\n  - host_state: {{ host: hv-01, state: sleepy }}\n{end}"),
            5,
            None,
            "`sleepy` is not a host state",
        ),
        (
            "after-end",
            format!("{CLUSTER}expect:\n  - at: 90s\n    failovers: 0\n{end}"),
            5,
            Some(1),
            "after `end`",
        ),
        (
            "nic-index",
            format!("{CLUSTER}timeline:\n  - at: 1s\n    nic_down: {{ host: hv-01, bond: bond0, nic: 2 }}\n{end}"),
            5,
            Some(1),
            "members 0 and 1",
        ),
        (
            "bad-bond",
            format!("{CLUSTER}timeline:\n  - at: 1s\n    bond_down: {{ host: hv-01, bond: bond7 }}\n{end}"),
            6,
            None,
            "unknown variant `bond7`",
        ),
        (
            "bad-zone",
            "cluster:\n  hosts:\n    - { name: a, zone: GPU }\nend: 1s\n".to_string(),
            3,
            None,
            "unknown variant `GPU`",
        ),
        (
            "overcommit-out-of-range",
            "cluster:\n  hosts:\n    - { name: a, zone: ECS, memory_overcommit: 5 }\nend: 1s\n".to_string(),
            3,
            None,
            "memory_overcommit: 5 is out of range; expected true, false or a ratio from 1.0 to 3.0",
        ),
        (
            "overcommit-not-a-ratio",
            "cluster:\n  defaults: { memory_overcommit: lots }\n  hosts:\n    - { name: a, zone: ECS }\nend: 1s\n".to_string(),
            2,
            None,
            "expected true, false or a ratio from 1.0 to 3.0 (such as 1.5)",
        ),
        (
            "drs-threshold-out-of-range",
            "cluster:\n  hosts:\n    - { name: a, zone: ECS }\n  drs: { threshold_percent: 0 }\nend: 1s\n".to_string(),
            4,
            None,
            "drs.threshold_percent: expected 1 to 100, not 0",
        ),
        (
            "drs-window-malformed",
            "cluster:\n  hosts:\n    - { name: a, zone: ECS }\n  drs: { window: \"22:00-25:00\" }\nend: 1s\n".to_string(),
            4,
            None,
            "drs.window: `22:00-25:00`: `25:00` is not a time of day; expected HH:MM-HH:MM (UTC), such as 22:00-06:00",
        ),
        (
            "dpm-band-upside-down",
            "cluster:\n  hosts:\n    - { name: a, zone: ECS }\n  dpm: { low_percent: 80, high_percent: 60 }\nend: 1s\n".to_string(),
            4,
            None,
            "dpm: low_percent (80) must be below high_percent (60)",
        ),
        (
            "dpm-unknown-field",
            "cluster:\n  hosts:\n    - { name: a, zone: ECS }\n  dpm: { low: 30 }\nend: 1s\n".to_string(),
            4,
            None,
            "unknown field `low`, expected one of `low_percent`, `high_percent`, `interval`, `power_on_timeout`",
        ),
        (
            "negative-spares",
            "cluster:\n  spares: -1\nend: 1s\n".to_string(),
            2,
            None,
            "cannot be negative",
        ),
        (
            "rule-names-an-unknown-vm",
            format!("{RULED}    - {{ name: apart, kind: anti-affinity, strength: must, vms: [a, zz] }}\n{end}"),
            9,
            None,
            "rules: rule `apart`: no vm named `zz` in the cluster",
        ),
        (
            "must-rule-broken-at-home",
            format!("{RULED}    - {{ name: apart, kind: anti-affinity, strength: must, vms: [a, c] }}\n{end}"),
            9,
            None,
            "a must rule broken where the VMs start: a and c are both homed on hv-01",
        ),
        (
            "run-on-without-hosts",
            format!("{RULED}    - {{ name: pin, kind: run-on, strength: should, vms: [a] }}\n{end}"),
            9,
            None,
            "rule `pin`: expected at least one host in `hosts`",
        ),
        (
            "must-affinity-homed-apart",
            format!("{RULED}    - {{ name: together, kind: affinity, strength: must, vms: [a, b] }}\n{end}"),
            9,
            None,
            "rule `together`: a must rule broken where the VMs start: a is homed on hv-01 and b on hv-02",
        ),
        (
            "affinity-of-one",
            format!("{RULED}    - {{ name: together, kind: affinity, strength: should, vms: [a] }}\n{end}"),
            9,
            None,
            "rule `together`: affinity needs at least two vms",
        ),
        (
            "rule-with-an-empty-name",
            format!("{RULED}    - {{ name: '', kind: anti-affinity, strength: must, vms: [a, b] }}\n{end}"),
            9,
            None,
            "rule ``: expected a name of 1 to 63 characters",
        ),
        (
            "rule-names-a-host-that-runs-no-vms",
            "cluster:\n  hosts:\n    - { name: ops-1, zone: OPS }\n    - { name: hv-01, zone: ECS }\n  vms:\n    - { name: a, host: hv-01, vcpus: 1, memory_gib: 1 }\n  rules:\n    - { name: pin, kind: run-on, strength: should, vms: [a], hosts: [ops-1] }\nend: 1s\n".to_string(),
            8,
            None,
            "host `ops-1` is in zone OPS, which runs no VMs",
        ),
        (
            "rule-without-strength",
            format!("{RULED}    - {{ name: apart, kind: anti-affinity, vms: [a, b] }}\n{end}"),
            9,
            None,
            "missing field `strength`",
        ),
        (
            "fail-boots-of-nothing",
            format!("{RULED}timeline:\n  - at: 10s\n    fail_boots: {{ vm: zz, count: 2 }}\n{end}"),
            11,
            None,
            "no VM named `zz`",
        ),
        (
            "fail-no-boots",
            format!("{RULED}timeline:\n  - at: 10s\n    fail_boots: {{ vm: a, count: 1001 }}\n{end}"),
            11,
            Some(33),
            "fail_boots.count: expected 0 (mended) to 1000 boots to fail, not 1001",
        ),
        (
            "too-many-restarts",
            "cluster:\n  max_restart: 11\n  host_groups:\n    - { prefix: hv-, count: 2, zone: ECS }\nend: 1s\n".to_string(),
            2,
            None,
            "max_restart: expected 0 to 10, not 11",
        ),
        (
            "count-on-no-event",
            format!("{CLUSTER}expect:\n  - no_event: {{ kind: vm-error, count: 2 }}\n{end}"),
            5,
            None,
            "a count belongs on `event`",
        ),
        (
            "overcommitted-home",
            "cluster:\n  hosts:\n    - { name: hv-01, zone: ECS, vcpus: 4 }\n  vms:\n    - { name: a, host: hv-01, vcpus: 8, memory_gib: 1 }\nend: 1s\n".to_string(),
            5,
            None,
            "host hv-01 is over-committed",
        ),
        (
            "ip-policy",
            "cluster:\n  hosts:\n    - name: ops-1\n      zone: OPS\n      uplink_ip: 10.0.0.160\nend: 1s\n".to_string(),
            5,
            Some(18),
            "10.0.0.160: last octet 160 is not allowed for zone OPS: expected 1 to 148",
        ),
        (
            "vm-on-spare",
            "cluster:\n  hosts:\n    - { name: s-1, zone: SPARE }\n  spares: 1\n  vms:\n    - { name: a, host: s-1, vcpus: 1, memory_gib: 1 }\nend: 1s\n".to_string(),
            6,
            None,
            "VMs are homed on ECS, DFS or KS hosts",
        ),
        (
            "missing-cluster-file",
            "cluster_file: nowhere.yaml\nend: 1s\n".to_string(),
            1,
            Some(15),
            "cluster_file `nowhere.yaml` not found",
        ),
        (
            "lb-listener-port",
            format!("{CLUSTER}expect:\n  - lb: {{ name: lb-1, listener: 0, from: internet, served: true }}\n{end}"),
            5,
            Some(33),
            "lb.listener: 0 is out of range: expected a port from 1 to 65535",
        ),
        (
            "lb-unknown-backend",
            format!("{CLUSTER}expect:\n  - lb: {{ name: lb-1, listener: 80, from: internet, backends_in_service: [vm-99] }}\n{end}"),
            5,
            Some(75),
            "lb.backends_in_service: no VM named `vm-99`",
        ),
        (
            "lb-nothing-checked",
            format!("{CLUSTER}expect:\n  - lb: {{ name: lb-1, listener: 80, from: internet }}\n{end}"),
            5,
            Some(1),
            "lb: give at least one of served, backends_in_service, answered_by, lost_percent",
        ),
        (
            "lb-lost-over-100",
            format!("{CLUSTER}expect:\n  - lb: {{ name: lb-1, listener: 80, from: internet, lost_percent: 150 }}\n{end}"),
            5,
            None,
            "lb.lost_percent: 150 is not a percentage (0-100)",
        ),
        (
            "mongodb-epoch-zero",
            format!("{CLUSTER}expect:\n  - mongodb: {{ name: m-1, primary: none, epoch: 0 }}\n{end}"),
            5,
            None,
            "mongodb.epoch: epochs start at 1",
        ),
        (
            "cache-master-without-shard",
            format!("{CLUSTER}expect:\n  - cache: {{ name: c-1, master: none }}\n{end}"),
            5,
            None,
            "cache: `master` and `epoch` are a shard's: give `shard` (from 1) too",
        ),
        (
            "cache-bad-state",
            format!("{CLUSTER}expect:\n  - cache: {{ name: c-1, state: broken }}\n{end}"),
            5,
            None,
            "cache.state: expected `ok` or `fail`, not `broken`",
        ),
        (
            "lb-bad-protocol",
            format!("{CLUSTER}timeline:\n  - at: 1s\n    cloud: {{ action: add-listener, lb: lb-1, port: 80, protocol: udp }}\n{end}"),
            6,
            Some(66),
            "timeline[0].cloud.protocol: unknown variant `udp`, expected `tcp` or `http`",
        ),
        (
            "rdb-unknown-primary",
            format!("{CLUSTER}expect:\n  - rdb: {{ name: db-1, primary: vm-99 }}\n{end}"),
            5,
            None,
            "no VM named `vm-99`",
        ),
        (
            "rdb-epoch-zero",
            format!("{CLUSTER}expect:\n  - rdb: {{ name: db-1, primary: none, epoch: 0 }}\n{end}"),
            5,
            None,
            "rdb.epoch: epochs start at 1",
        ),
        (
            "rdb-bad-name",
            format!("{CLUSTER}expect:\n  - rdb: {{ name: DB, primary: none }}\n{end}"),
            5,
            None,
            "rdb.name: expected a name",
        ),
        (
            "rdb-unknown-field",
            format!("{CLUSTER}expect:\n  - rdb: {{ name: db-1, primary: none, secondary: vm-1 }}\n{end}"),
            5,
            None,
            "unknown field `secondary`",
        ),
        ("empty", "\n".to_string(), 0, None, "the file is empty"),
    ];
    for (name, text, line, col, msg) in cases {
        if line == 0 {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("load-errors");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}.yaml"));
            std::fs::write(&path, &text).unwrap();
            let e = load_scenario(&path).unwrap_err();
            assert!(e.to_string().contains(msg), "{name}: {e}");
            assert_eq!(e.line, None);
            continue;
        }
        check(name, &text, line, col, msg);
    }
}

/// A mistake inside a timeline `cloud:` item is reported at the field's
/// own line and column, with its path below the item (serde alone would
/// give the item's line and no field).
#[test]
fn cloud_item_errors_name_the_field_and_its_line() {
    let end = "end: 60s\n";
    let one =
        |cloud: &str| format!("{CLUSTER}timeline:\n  - at: 1s\n    cloud: {{ {cloud} }}\n{end}");
    let cases: Vec<(&str, String, usize, usize, &str)> = vec![
        (
            "cloud-size-not-a-number",
            one("action: create-volume, name: v, size_gib: big"),
            6,
            56,
            "timeline[0].cloud.size_gib: invalid type: string \"big\", expected u64",
        ),
        (
            "cloud-negative-port",
            one("action: add-listener, lb: lb-1, port: -5"),
            6,
            52,
            "timeline[0].cloud.port: invalid value: integer `-5`, expected u32",
        ),
        (
            "cloud-unknown-eip-kind",
            one("action: allocate-eip, name: e, kind: intranet"),
            6,
            51,
            "timeline[0].cloud.kind: unknown variant `intranet`, expected `internet` or `external`",
        ),
        (
            "cloud-bad-network",
            one("action: create-vxnet, name: n, network: 300.1.1.0"),
            6,
            54,
            "timeline[0].cloud.network: invalid IPv4 address syntax",
        ),
        (
            "cloud-shards-not-lists",
            one("action: create-cache, name: c, shards: [a, b]"),
            6,
            53,
            "timeline[0].cloud.shards[0]: invalid type: string \"a\", expected a sequence",
        ),
        (
            "cloud-unknown-field",
            one("action: create-volume, name: v, size_gib: 1, colour: red"),
            6,
            59,
            "timeline[0].cloud.colour: unknown field `colour`, expected one of `name`, `size_gib`, `provisioning`",
        ),
        (
            "cloud-unknown-health-check-field",
            one("action: add-listener, lb: lb-1, port: 80, health_check: { interval_ms: 2000, rise: 2 }"),
            6,
            91,
            "timeline[0].cloud.health_check.rise: unknown field `rise`",
        ),
        (
            "cloud-unknown-action",
            one("action: frobnicate, name: v"),
            6,
            22,
            "timeline[0].cloud.action: unknown variant `frobnicate`, expected one of `create-vxnet`",
        ),
        (
            "cloud-missing-field",
            one("action: create-volume, name: v"),
            6,
            12,
            "timeline[0].cloud: missing field `size_gib`",
        ),
        (
            // Block style, in the second item: its own line, not the
            // first `weight:` or `size_gib:` in the file.
            "cloud-negative-weight-block",
            format!(
                "{CLUSTER}timeline:\n  - at: 1s\n    cloud: {{ action: create-volume, name: v, size_gib: 1 }}\n  - at: 2s\n    cloud:\n      action: add-backend\n      lb: lb-1\n      listener: 80\n      vm: hv-01-vm\n      weight: -1\n{end}"
            ),
            13,
            15,
            "timeline[1].cloud.weight: invalid value: integer `-1`, expected u32",
        ),
        (
            "cloud-unknown-field-block",
            format!(
                "{CLUSTER}timeline:\n  - at: 1s\n    cloud:\n      action: create-image\n      name: img\n      size_gib: 1\n      colour: red\nexpect:\n  - failovers: 0\n{end}"
            ),
            10,
            7,
            "timeline[0].cloud.colour: unknown field `colour`, expected `name` or `size_gib`",
        ),
    ];
    for (name, text, line, col, msg) in cases {
        check(name, &text, line, Some(col), msg);
        // The column is the last thing before the message.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("load-errors");
        let e = load_scenario(&dir.join(format!("{name}.yaml"))).unwrap_err();
        assert_eq!((e.line, e.column), (Some(line), Some(col)), "{name}: {e}");
        assert!(e.message.starts_with(msg), "{name}: {e}");
    }
}

#[test]
fn every_shipped_scenario_loads() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut n = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            load_scenario(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 12, "only {n} scenarios found");
}
