//! Datastores and storage live migration through the cloud's calls: moves
//! queued with their room reserved, copied two at a time, completed on the
//! timer, abandoned when their mirror's host is left; drain, balance and
//! the refusals that change nothing.

use krrish_cloud::storage::{DiskRef, DEFAULT_DATASTORE};
use krrish_cloud::{Cloud, CloudError, CloudRequest, Name};
use krrish_core::{HostId, VmId};
use serde_json::Value;

fn call(c: &mut Cloud, r: CloudRequest, now_ms: u64) -> Result<Value, CloudError> {
    c.apply(r, now_ms, &|_| true).map(|r| r.data)
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

fn runs_on(host: &'static str) -> impl Fn(&VmId) -> Option<HostId> {
    move |_| Some(HostId::new(host))
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

    let lines = c.follow_placements(1_000, &runs_on("hv-01"));
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
    assert!(moved(c.handle_timeout(103_399)).is_empty());
    assert_eq!(on(&c, &vol("data")), "ds-a");
    assert_eq!(
        moved(c.handle_timeout(103_400)),
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
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_mirror_is_abandoned_when_its_vm_leaves_the_host_and_the_disk_stays_put() {
    let mut c = cloud();
    let root = DiskRef::Root(VmId::new("web-1"));
    let before = on(&c, &root);
    let m = CloudRequest::MigrateDisk {
        vm: Some("web-1".into()),
        volume: None,
        datastore: "ds-a".into(),
    };
    ok(&mut c, m, 0);
    c.follow_placements(0, &runs_on("hv-01"));
    // hv-01 dies; web-1 is failed over to spare-1.
    let lines = c.follow_placements(30_000, &runs_on("spare-1"));
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
    c.follow_placements(0, &|_| None);
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
    c.handle_timeout(5_120);
    let lines = c.follow_placements(5_120, &|_| None);
    assert_eq!(
        lines,
        vec!["volume v3 copying to datastore ds-b (1 GiB, copying (dfs))"]
    );
    c.handle_timeout(10_240);
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
    c.follow_placements(0, &|_| None);
    let mut due = 0;
    while let Some(t) = c.storage.next_move_done() {
        due = t;
        c.handle_timeout(t);
    }
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
    assert!(c.follow_placements(0, &|_| None).is_empty());
    ok(&mut c, datastore("roomy", 50), 1_000);
    let lines = c.follow_placements(1_000, &|_| None);
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
    let mut now = 0;
    loop {
        c.follow_placements(now, &|_| None);
        let Some(t) = c.storage.next_move_done() else {
            break;
        };
        now = t;
        c.handle_timeout(t);
    }
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
    c.follow_placements(0, &|_| None);
    let json = serde_json::to_string(&c).unwrap();
    let mut back: Cloud = serde_json::from_str::<Cloud>(&json).unwrap().restored(50);
    assert_eq!(back.poll_timeout(), Some(50 + 5_120));
    back.handle_timeout(5_170);
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
    c.follow_placements(0, &runs_on("hv-01"));
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
