//! Datastores and storage live migration through the cloud's calls: moves
//! queued with their room reserved, copied two at a time, completed on the
//! timer, abandoned when their mirror's host is left; drain, balance and
//! the refusals that change nothing.

use krrish_cloud::storage::{DiskRef, DiskWriter, DEFAULT_DATASTORE};
use krrish_cloud::{Cloud, CloudError, CloudRequest, Name};
use krrish_core::{HostId, VmId};
use serde_json::Value;

fn call(c: &mut Cloud, r: CloudRequest, now_ms: u64) -> Result<Value, CloudError> {
    let answer = c.apply(r, now_ms, &|_| true).map(|r| r.data);
    c.storage
        .check()
        .expect("the storage's invariants hold after every call");
    answer
}

fn ok(c: &mut Cloud, r: CloudRequest, now_ms: u64) -> Value {
    let shown = r.to_string();
    call(c, r, now_ms).unwrap_or_else(|e| panic!("{shown}: {e}"))
}

fn datastore(name: &str, capacity_gib: u64) -> CloudRequest {
    CloudRequest::CreateDatastore {
        name: name.into(),
        capacity_gib,
    }
}

fn volume(name: &str, size_gib: u64, on: Option<&str>) -> CloudRequest {
    CloudRequest::CreateVolume {
        name: name.into(),
        size_gib,
        provisioning: krrish_cloud::storage::Provisioning::Thick,
        datastore: on.map(String::from),
    }
}

fn migrate_volume(v: &str, to: &str) -> CloudRequest {
    CloudRequest::MigrateDisk {
        vm: None,
        volume: Some(v.into()),
        datastore: to.into(),
    }
}

fn migrate_root(vm: &str, to: &str) -> CloudRequest {
    CloudRequest::MigrateDisk {
        vm: Some(vm.into()),
        volume: None,
        datastore: to.into(),
    }
}

fn n(s: &str) -> Name {
    Name::parse("name", s).unwrap()
}

fn on(c: &Cloud, disk: &DiskRef) -> String {
    c.storage.datastore_of(disk).unwrap().to_string()
}

fn vol(v: &str) -> DiskRef {
    DiskRef::Volume(n(v))
}

/// A cloud with `ds-a` (100 GiB) and `ds-b` (100 GiB) beside the default,
/// and `web-1` launched from a 1 GiB image on `hv-01`.
fn cloud() -> Cloud {
    let mut c = Cloud::default();
    ok(&mut c, datastore("ds-a", 100), 0);
    ok(&mut c, datastore("ds-b", 100), 0);
    let image = CloudRequest::CreateImage {
        name: "base".into(),
        size_gib: 1,
    };
    ok(&mut c, image, 0);
    let base = Name::parse("image", "base").unwrap();
    c.create_root_disk(&VmId::new("web-1"), &base, &HostId::new("hv-01"), 0)
        .unwrap();
    c
}

/// Every VM runs on `host` (boot 1), its agent heard at `heard_ms`.
fn runs_on(host: &'static str, heard_ms: u64) -> impl Fn(&VmId) -> DiskWriter {
    move |_| DiskWriter::On {
        host: HostId::new(host),
        boot: 1,
        heard_ms,
        storage: true,
    }
}

/// No VM runs anywhere.
fn nowhere(_: &VmId) -> DiskWriter {
    DiskWriter::Nowhere
}

/// Steps the moves until none is left, each at its due time, with no VM
/// running; returns the time of the last.
fn run_moves_to_the_end(c: &mut Cloud, mut now: u64) -> u64 {
    loop {
        c.step_disk_moves(now, &nowhere);
        let Some(t) = c.storage.next_move_done() else {
            return now;
        };
        now = t;
    }
}

#[test]
fn an_attached_volume_is_mirrored_by_its_vms_host_and_lands_on_its_target() {
    let mut c = cloud();
    ok(&mut c, volume("data", 20, Some("ds-a")), 0);
    ok(
        &mut c,
        CloudRequest::AttachVolume {
            volume: "data".into(),
            vm: "web-1".into(),
        },
        0,
    );
    let m = ok(&mut c, migrate_volume("data", "ds-b"), 1_000);
    assert_eq!(m["state"], "queued");
    // Its room on ds-b is reserved at once.
    let ds = ok(&mut c, CloudRequest::DescribeDatastores, 1_000);
    let b = ds
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "ds-b")
        .unwrap();
    assert_eq!(
        (b["used_gib"].as_u64(), b["reserved_gib"].as_u64()),
        (Some(0), Some(20))
    );

    let lines = c.step_disk_moves(1_000, &runs_on("hv-01", 1_000));
    assert_eq!(
        lines,
        vec!["volume data copying to datastore ds-b (20 GiB, copying (mirror on hv-01))"]
    );
    // 20 GiB at 200 MiB/s.
    assert_eq!(c.storage.next_move_done(), Some(1_000 + 102_400));
    // The disk's layers are held while it moves.
    let refused = call(
        &mut c,
        CloudRequest::CreateSnapshot {
            vm: "web-1".into(),
            name: "s1".into(),
        },
        2_000,
    )
    .unwrap_err();
    assert_eq!(refused.code(), "in-use");
    assert!(
        refused.to_string().contains("moving to datastore ds-b"),
        "{refused}"
    );
    let moved = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.contains(" moved to "))
            .collect()
    };
    assert!(moved(c.step_disk_moves(103_399, &runs_on("hv-01", 103_399))).is_empty());
    // Due, but its host not heard from since: a host that died before the
    // end never reports the mirror done.
    assert!(moved(c.step_disk_moves(103_400, &runs_on("hv-01", 103_399))).is_empty());
    assert_eq!(on(&c, &vol("data")), "ds-a");
    assert_eq!(
        moved(c.step_disk_moves(104_000, &runs_on("hv-01", 103_900))),
        vec!["volume data moved to datastore ds-b (20 GiB from ds-a, operator)"]
    );
    assert_eq!(on(&c, &vol("data")), "ds-b");
    let ds = ok(&mut c, CloudRequest::DescribeDatastores, 103_400);
    let get = |name: &str, field: &str| {
        ds.as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()[field]
            .as_u64()
    };
    assert_eq!(get("ds-a", "used_gib"), Some(0));
    assert_eq!(get("ds-b", "used_gib"), Some(20));
    assert_eq!(get("ds-b", "reserved_gib"), Some(0));
    assert_eq!(c.storage.next_move_done(), None);
}

#[test]
fn a_mirror_dies_with_its_hosts_boot_and_waits_while_its_vm_is_in_flux() {
    let mut c = cloud();
    ok(&mut c, volume("data", 1, Some("ds-a")), 0);
    let attach = CloudRequest::AttachVolume {
        volume: "data".into(),
        vm: "web-1".into(),
    };
    ok(&mut c, attach, 0);
    let in_flux = |_: &VmId| DiskWriter::InFlux;
    // Queued while its VM is in flux (booting, migrating): not started.
    ok(&mut c, migrate_volume("data", "ds-b"), 0);
    assert!(c.step_disk_moves(0, &in_flux).is_empty());
    assert_eq!(c.storage.describe_disk_moves()[0].state, "queued");
    c.step_disk_moves(1_000, &runs_on("hv-01", 1_000));
    // Due while its host is suspect: held, neither landed nor abandoned.
    assert!(c.step_disk_moves(9_000, &in_flux).is_empty());
    assert_eq!(on(&c, &vol("data")), "ds-a");
    // The host is back in a new boot: its hypervisor's mirror died.
    let rebooted = |_: &VmId| DiskWriter::On {
        host: HostId::new("hv-01"),
        boot: 2,
        heard_ms: 9_500,
        storage: true,
    };
    let lines = c.step_disk_moves(9_500, &rebooted);
    assert_eq!(
        lines,
        vec!["move of volume data to datastore ds-b abandoned: hv-01 rebooted: the mirror died with its hypervisor; the half copy is discarded, it stays on ds-a"]
    );
    assert_eq!(on(&c, &vol("data")), "ds-a");
}

#[test]
fn a_mirror_fails_when_its_host_loses_the_dfs() {
    let mut c = cloud();
    ok(&mut c, migrate_root("web-1", "ds-a"), 0);
    c.step_disk_moves(0, &runs_on("hv-01", 0));
    let cut_off = |_: &VmId| DiskWriter::On {
        host: HostId::new("hv-01"),
        boot: 1,
        heard_ms: 3_000,
        storage: false,
    };
    let lines = c.step_disk_moves(3_000, &cut_off);
    assert_eq!(
        lines,
        vec!["move of root disk of vm web-1 to datastore ds-a abandoned: hv-01 lost its way to the DFS (storage network or lease): the mirror failed; the half copy is discarded, it stays on dfs"]
    );
    // Asked again, it waits queued until the host reaches the DFS again.
    ok(&mut c, migrate_root("web-1", "ds-a"), 3_000);
    assert!(c.step_disk_moves(4_000, &cut_off).is_empty());
    assert_eq!(c.storage.describe_disk_moves()[0].state, "queued");
}

#[test]
fn a_dfs_copy_is_abandoned_when_its_vm_may_run() {
    let mut c = cloud();
    ok(&mut c, migrate_root("web-1", "ds-a"), 0);
    // web-1 is stopped: the DFS copies its root disk.
    let lines = c.step_disk_moves(0, &nowhere);
    assert_eq!(
        lines,
        vec!["root disk of vm web-1 copying to datastore ds-a (1 GiB, copying (dfs))"]
    );
    // It is started (booting: in flux) before the copy ends.
    let lines = c.step_disk_moves(2_000, &|_| DiskWriter::InFlux);
    assert!(
        lines[0].contains("abandoned: its VM may be running"),
        "{lines:?}"
    );
    assert!(c.storage.describe_disk_moves().is_empty());
}

#[test]
fn a_mirror_is_abandoned_when_its_vm_leaves_the_host_and_the_disk_stays_put() {
    let mut c = cloud();
    let root = DiskRef::Root(VmId::new("web-1"));
    let before = on(&c, &root);
    ok(&mut c, migrate_root("web-1", "ds-a"), 0);
    c.step_disk_moves(0, &runs_on("hv-01", 0));
    // hv-01 dies; web-1 is failed over to spare-1.
    let lines = c.step_disk_moves(30_000, &runs_on("spare-1", 30_000));
    assert!(
        lines[0].starts_with("move of root disk of vm web-1 to datastore ds-a abandoned: its VM no longer runs on hv-01"),
        "{lines:?}"
    );
    assert_eq!(on(&c, &root), before);
    assert!(c.storage.describe_disk_moves().is_empty());
    assert_eq!(c.storage.next_move_done(), None);
    // Nothing reserved any more; the operator may ask again.
    let ds = ok(&mut c, CloudRequest::DescribeDatastores, 30_000);
    assert!(ds
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["reserved_gib"] == 0));
}

#[test]
fn two_copies_at_a_time_the_rest_wait_in_order() {
    let mut c = cloud();
    for v in ["v1", "v2", "v3"] {
        ok(&mut c, volume(v, 1, Some("ds-a")), 0);
        ok(&mut c, migrate_volume(v, "ds-b"), 0);
    }
    // Detached volumes: the DFS copies them, whatever the hosts do.
    c.step_disk_moves(0, &nowhere);
    let states: Vec<String> = c
        .storage
        .describe_disk_moves()
        .iter()
        .map(|m| m.state.clone())
        .collect();
    assert_eq!(states, ["copying (dfs)", "copying (dfs)", "queued"]);
    let refused = call(
        &mut c,
        CloudRequest::AttachVolume {
            volume: "v1".into(),
            vm: "web-1".into(),
        },
        10,
    )
    .unwrap_err();
    assert_eq!(refused.code(), "in-use");
    let lines = c.step_disk_moves(5_120, &nowhere);
    assert_eq!(
        lines,
        vec![
            "volume v1 moved to datastore ds-b (1 GiB from ds-a, operator)",
            "volume v2 moved to datastore ds-b (1 GiB from ds-a, operator)",
            "volume v3 copying to datastore ds-b (1 GiB, copying (dfs))"
        ]
    );
    c.step_disk_moves(10_240, &nowhere);
    for v in ["v1", "v2", "v3"] {
        assert_eq!(on(&c, &vol(v)), "ds-b");
    }
}

#[test]
fn a_drained_datastore_empties_takes_nothing_new_and_can_then_be_deleted() {
    let mut c = cloud();
    for v in ["v1", "v2"] {
        ok(&mut c, volume(v, 30, Some("ds-a")), 0);
    }
    // Before the drain: a datastore with disks cannot go.
    let refused = call(
        &mut c,
        CloudRequest::DeleteDatastore {
            name: "ds-a".into(),
        },
        0,
    );
    assert_eq!(refused.unwrap_err().code(), "in-use");
    let plan = ok(
        &mut c,
        CloudRequest::DrainDatastore {
            name: "ds-a".into(),
        },
        0,
    );
    assert_eq!(plan["queued"].as_array().unwrap().len(), 2);
    // Each to the datastore with the most room: the default (1 PiB).
    assert!(plan["queued"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["to"] == DEFAULT_DATASTORE));
    let refused = call(&mut c, volume("v3", 1, Some("ds-a")), 0).unwrap_err();
    assert!(refused.to_string().contains("in maintenance"), "{refused}");
    // One disk of a drain is not cancelled alone (the drain would queue
    // it again): the drain is called off by resuming the datastore.
    let cancel = CloudRequest::CancelDiskMove {
        vm: None,
        volume: Some("v1".into()),
    };
    let refused = call(&mut c, cancel, 0).unwrap_err();
    assert!(
        refused.to_string().contains("resume the datastore"),
        "{refused}"
    );
    let due = run_moves_to_the_end(&mut c, 0);
    // 30 GiB each, both at once.
    assert_eq!(due, 153_600);
    let ds = ok(&mut c, CloudRequest::DescribeDatastores, due);
    let a = ds
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "ds-a")
        .unwrap();
    assert_eq!(
        (a["state"].as_str(), a["disks"].as_u64()),
        (Some("drained"), Some(0))
    );
    ok(
        &mut c,
        CloudRequest::DeleteDatastore {
            name: "ds-a".into(),
        },
        due,
    );
    assert_eq!(on(&c, &vol("v1")), DEFAULT_DATASTORE);
}

#[test]
fn a_disk_that_fits_nowhere_waits_and_moves_once_room_appears() {
    let mut c = Cloud::default();
    ok(&mut c, datastore("small", 10), 0);
    ok(&mut c, datastore("tiny", 5), 0);
    ok(&mut c, volume("big", 8, Some("small")), 0);
    // The default datastore would take it: drain it first so only `tiny`
    // is left outside maintenance.
    ok(
        &mut c,
        CloudRequest::DrainDatastore {
            name: DEFAULT_DATASTORE.into(),
        },
        0,
    );
    let plan = ok(
        &mut c,
        CloudRequest::DrainDatastore {
            name: "small".into(),
        },
        0,
    );
    assert_eq!(plan["waiting"], serde_json::json!(["volume big"]));
    assert!(c.step_disk_moves(0, &nowhere).is_empty());
    ok(&mut c, datastore("roomy", 50), 1_000);
    let lines = c.step_disk_moves(1_000, &nowhere);
    assert_eq!(
        lines,
        vec![
            "volume big queued to move to datastore roomy (drain of small)",
            "volume big copying to datastore roomy (8 GiB, copying (dfs))"
        ]
    );
}

#[test]
fn balancing_narrows_the_gap_below_the_threshold_and_stops() {
    let mut c = cloud();
    // ds-a holds 60 GiB in six disks, ds-b nothing; the default is huge
    // and near empty: drain it so only ds-a and ds-b balance.
    ok(
        &mut c,
        CloudRequest::DrainDatastore {
            name: DEFAULT_DATASTORE.into(),
        },
        0,
    );
    for i in 0..6 {
        ok(&mut c, volume(&format!("v{i}"), 10, Some("ds-a")), 0);
    }
    let planned = ok(
        &mut c,
        CloudRequest::BalanceDatastores {
            threshold_percent: Some(15),
        },
        0,
    );
    let moved = planned.as_array().unwrap().len();
    let now = run_moves_to_the_end(&mut c, 0);
    let ds = ok(&mut c, CloudRequest::DescribeDatastores, now);
    let pct = |name: &str| {
        ds.as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()["used_percent"]
            .as_u64()
            .unwrap()
    };
    // The root disk drained from the default counts on one of them too.
    assert!(pct("ds-a").abs_diff(pct("ds-b")) <= 15, "{ds}");
    assert!((2..=4).contains(&moved), "{planned}");
    // A second call finds nothing to do.
    let again = ok(
        &mut c,
        CloudRequest::BalanceDatastores {
            threshold_percent: Some(15),
        },
        now,
    );
    assert_eq!(again.as_array().unwrap().len(), 0);
}

#[test]
fn refusals_name_what_was_wrong_and_change_nothing() {
    let mut c = cloud();
    ok(&mut c, volume("data", 20, Some("ds-a")), 0);
    ok(&mut c, datastore("mini", 5), 0);
    let before = serde_json::to_string(&c).unwrap();
    let cases = [
        (
            migrate_volume("data", "ds-a"),
            "invalid-request",
            "already on datastore ds-a",
        ),
        (
            migrate_volume("data", "mini"),
            "no-capacity",
            "20 GiB needed, 5 GiB free",
        ),
        (
            migrate_volume("data", "nope"),
            "not-found",
            "datastore nope: no such datastore",
        ),
        (
            migrate_volume("nope", "ds-b"),
            "not-found",
            "volume nope: no such volume",
        ),
        (
            CloudRequest::MigrateDisk {
                vm: Some("web-1".into()),
                volume: Some("data".into()),
                datastore: "ds-b".into(),
            },
            "invalid-request",
            "exactly one disk",
        ),
        (datastore("ds-a", 10), "exists", "the name is taken"),
        (
            datastore("zero", 0),
            "invalid-request",
            "capacity_gib: expected 1 to",
        ),
        (
            CloudRequest::BalanceDatastores {
                threshold_percent: Some(101),
            },
            "invalid-request",
            "threshold_percent: expected 0 to 100",
        ),
        (
            CloudRequest::ResumeDatastore {
                name: "ds-a".into(),
            },
            "not-associated",
            "not in maintenance",
        ),
        (
            CloudRequest::CancelDiskMove {
                vm: None,
                volume: Some("data".into()),
            },
            "not-associated",
            "not moving",
        ),
        (
            volume("fat", 10, Some("mini")),
            "no-capacity",
            "datastore mini: 10 GiB needed, 5 GiB free",
        ),
    ];
    for (r, code, words) in cases {
        let shown = r.to_string();
        let e = call(&mut c, r, 0).unwrap_err();
        assert_eq!(e.code(), code, "{shown}: {e}");
        assert!(e.to_string().contains(words), "{shown}: {e}");
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            before,
            "{shown} changed the cloud"
        );
    }
}

#[test]
fn a_cloud_saved_before_datastores_loads_with_every_disk_on_the_default() {
    let mut c = cloud();
    ok(&mut c, volume("data", 2, None), 0);
    let mut json: Value = serde_json::to_value(&c).unwrap();
    let st = json["storage"].as_object_mut().unwrap();
    st.remove("datastores");
    st.remove("disk_moves");
    st["volumes"]["data"]
        .as_object_mut()
        .unwrap()
        .remove("datastore");
    st["root_disks"]["web-1"]
        .as_object_mut()
        .unwrap()
        .remove("datastore");
    let old: Cloud = serde_json::from_value(json).unwrap();
    assert_eq!(on(&old, &vol("data")), DEFAULT_DATASTORE);
    assert_eq!(
        on(&old, &DiskRef::Root(VmId::new("web-1"))),
        DEFAULT_DATASTORE
    );
    let names: Vec<String> = old
        .storage
        .describe_datastores()
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(names, [DEFAULT_DATASTORE]);
}

#[test]
fn a_copy_in_flight_survives_a_restore_and_takes_its_full_time_again() {
    let mut c = cloud();
    ok(&mut c, volume("data", 1, Some("ds-a")), 0);
    ok(&mut c, migrate_volume("data", "ds-b"), 0);
    c.step_disk_moves(0, &nowhere);
    let json = serde_json::to_string(&c).unwrap();
    let mut back: Cloud = serde_json::from_str::<Cloud>(&json).unwrap().restored(50);
    assert_eq!(back.poll_timeout(), Some(50 + 5_120));
    back.step_disk_moves(5_170, &nowhere);
    assert_eq!(on(&back, &vol("data")), "ds-b");
}

#[test]
fn terminating_a_vm_calls_off_its_disks_moves() {
    let mut c = cloud();
    ok(&mut c, volume("data", 1, None), 0);
    ok(
        &mut c,
        CloudRequest::AttachVolume {
            volume: "data".into(),
            vm: "web-1".into(),
        },
        0,
    );
    ok(&mut c, migrate_volume("data", "ds-b"), 0);
    c.step_disk_moves(0, &runs_on("hv-01", 0));
    let gone = c.forget_vm(&VmId::new("web-1"));
    assert!(
        gone.contains(&"move of its volume data to datastore ds-b (called off)".to_string()),
        "{gone:?}"
    );
    assert!(
        gone.contains(&"volume data (detached, kept)".to_string()),
        "{gone:?}"
    );
    assert!(c.storage.describe_disk_moves().is_empty());
}
