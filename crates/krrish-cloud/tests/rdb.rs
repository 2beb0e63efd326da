//! RDB clusters: creation refusals leave the cloud clone-equal; the
//! standby is promoted at exactly the threshold-th failed check of the
//! primary; the old primary comes back as standby; a stale standby is
//! never promoted; members sharing a host are reported.

use krrish_cloud::network::lb::FabricReport;
use krrish_cloud::rdb::Role;
use krrish_cloud::{Cloud, CloudError, CloudRequest, Name};
use krrish_core::{HostId, VmId};

fn req(json: &str) -> CloudRequest {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn vm(x: &str) -> VmId {
    VmId::new(x)
}

fn host(x: &str) -> HostId {
    HostId::new(x)
}

/// Where the HA core has each VM: `a` on hv-1, `b` on hv-2, `c` on hv-1,
/// `d` on hv-3, `idle` placed nowhere; `ghost` does not exist.
fn where_is(v: &VmId) -> Option<HostId> {
    match v.as_str() {
        "a" | "c" => Some(host("hv-1")),
        "b" => Some(host("hv-2")),
        "d" => Some(host("hv-3")),
        _ => None,
    }
}

fn exists(v: &VmId) -> bool {
    v.as_str() != "ghost"
}

fn apply(c: &mut Cloud, now: u64, json: &str) -> Result<serde_json::Value, CloudError> {
    c.apply_placed(req(json), now, &exists, &where_is)
        .map(|r| r.data)
}

fn created() -> Cloud {
    let mut c = Cloud::default();
    apply(
        &mut c,
        1_000,
        r#"{"action":"create-rdb","name":"db","primary":"a","standby":"b"}"#,
    )
    .unwrap();
    c
}

/// The data plane: each VM running on one host with its VM network up.
fn fabric(running: &[(&str, &str)]) -> FabricReport {
    let mut r = FabricReport::default();
    for v in ["a", "b"] {
        r.running_on.insert(vm(v), Vec::new());
    }
    for (v, h) in running {
        r.running_on.insert(vm(v), vec![host(h)]);
        r.vm_network_up.insert(host(h));
    }
    r
}

/// One round at the next due time; its lines.
fn round(c: &mut Cloud, f: &FabricReport) -> (u64, Vec<String>) {
    let now = c.health_checks_due().expect("a check is due");
    assert_eq!(c.health_check_targets(now), vec![vm("a"), vm("b")]);
    (now, c.run_health_checks(now, now, f))
}

fn name(x: &str) -> Name {
    Name::parse("t", x).unwrap()
}

#[test]
fn refusals_name_the_field_and_change_nothing() {
    let c0 = created();
    for (json, want) in [
        (
            r#"{"action":"create-rdb","name":"db2","primary":"d","standby":"d"}"#,
            "standby: d is also the primary; an RDB needs two different VMs",
        ),
        (
            r#"{"action":"create-rdb","name":"db2","primary":"d","standby":"ghost"}"#,
            "standby: no vm named ghost",
        ),
        (
            r#"{"action":"create-rdb","name":"db2","primary":"d","standby":"idle"}"#,
            "standby: vm idle is not placed on a host (not running or booting)",
        ),
        (
            r#"{"action":"create-rdb","name":"db2","primary":"c","standby":"a"}"#,
            "standby: vm a is already a member of rdb db",
        ),
        (
            r#"{"action":"create-rdb","name":"db2","primary":"b","standby":"d"}"#,
            "primary: vm b is already a member of rdb db",
        ),
        (
            r#"{"action":"create-rdb","name":"db","primary":"c","standby":"d"}"#,
            "name: rdb db already exists",
        ),
        (
            r#"{"action":"delete-rdb","name":"nope"}"#,
            "name: no rdb named nope",
        ),
        (
            r#"{"action":"switchover-rdb","name":"nope"}"#,
            "name: no rdb named nope",
        ),
    ] {
        let mut c = c0.clone();
        let e = apply(&mut c, 2_000, json).unwrap_err();
        assert_eq!(e.to_string(), want, "{json}");
        assert_eq!(c, c0, "{json} changed the state");
    }
    // Anti-affinity: c and d are fine, c and a's host hv-1 is not.
    let mut c = Cloud::default();
    let e = apply(
        &mut c,
        0,
        r#"{"action":"create-rdb","name":"db","primary":"a","standby":"c"}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "standby: vm c is on hv-1 with the primary a: an RDB's members must be on different hosts (anti-affinity)"
    );
    assert_eq!(e.code(), "invalid-request");
    assert_eq!(c, Cloud::default());
    // Without placements (plain apply), creation is refused.
    let mut c = Cloud::default();
    assert!(c
        .apply(
            req(r#"{"action":"create-rdb","name":"db","primary":"a","standby":"b"}"#),
            0,
            &exists
        )
        .is_err());
    assert_eq!(c, Cloud::default());
}

#[test]
fn standby_promoted_at_exactly_the_threshold_and_old_primary_returns_as_standby() {
    let mut c = created();
    let d = apply(&mut c, 1_500, r#"{"action":"describe-rdbs"}"#).unwrap();
    assert_eq!(d[0]["primary"], "a");
    assert_eq!(d[0]["standby"], "b");
    assert_eq!(d[0]["epoch"], 1);
    assert_eq!(c.health_checks_due(), Some(3_000));
    let both = fabric(&[("a", "hv-1"), ("b", "hv-2")]);
    let (t, lines) = round(&mut c, &both);
    assert_eq!(t, 3_000);
    assert!(lines.is_empty(), "{lines:?}");
    // hv-1 dies: two failed checks change nothing.
    let only_b = fabric(&[("b", "hv-2")]);
    for _ in 0..2 {
        let (_, lines) = round(&mut c, &only_b);
        assert!(lines.is_empty(), "{lines:?}");
        let r = c.rdbs.get(&name("db")).unwrap();
        assert_eq!((r.set.primary.clone(), r.set.epoch), (Some(vm("a")), 1));
    }
    // The third promotes b at epoch 2.
    let (t, lines) = round(&mut c, &only_b);
    assert_eq!(t, 9_000);
    assert!(lines
        .iter()
        .any(|l| l == "rdb db: primary a down; standby b promoted to primary at epoch 2"));
    let r = c.rdbs.get(&name("db")).unwrap();
    assert_eq!(r.set.primary, Some(vm("b")));
    assert_eq!(r.standby(), Some(&vm("a")));
    assert_eq!(r.set.epoch, 2);
    assert_eq!(r.member(&vm("a")).unwrap().epoch, 1, "a is stale");
    // a keeps failing: still standby, b stays primary.
    for _ in 0..5 {
        round(&mut c, &only_b);
    }
    assert_eq!(c.rdbs.get(&name("db")).unwrap().set.primary, Some(vm("b")));
    // a boots on the spare: back as standby, demoted to epoch 2.
    let back = fabric(&[("a", "spare-1"), ("b", "hv-2")]);
    let (_, lines) = round(&mut c, &back);
    assert!(lines
        .iter()
        .any(|l| l == "rdb db: vm a back with stale epoch 1; rejoins as standby at epoch 2"));
    let r = c.rdbs.get(&name("db")).unwrap();
    assert_eq!(r.role(&vm("a")), Role::Standby);
    assert_eq!(r.role(&vm("b")), Role::Primary);
    assert_eq!((r.set.epoch, r.member(&vm("a")).unwrap().epoch), (2, 2));
    // Healthy again after two good checks; then a switchover is allowed.
    round(&mut c, &back);
    assert!(
        c.rdbs
            .get(&name("db"))
            .unwrap()
            .member(&vm("a"))
            .unwrap()
            .healthy
    );
    apply(&mut c, 50_000, r#"{"action":"switchover-rdb","name":"db"}"#).unwrap();
    let r = c.rdbs.get(&name("db")).unwrap();
    assert_eq!((r.set.primary.clone(), r.set.epoch), (Some(vm("a")), 3));
}

#[test]
fn both_down_only_the_latest_primary_takes_over_again() {
    let mut c = created();
    let none = fabric(&[]);
    for _ in 0..3 {
        round(&mut c, &none);
    }
    let r = c.rdbs.get(&name("db")).unwrap();
    assert_eq!(r.set.primary, None);
    assert_eq!(r.set.epoch, 1);
    // The stale standby b comes back first: never promoted.
    let only_b = fabric(&[("b", "hv-2")]);
    for _ in 0..5 {
        round(&mut c, &only_b);
    }
    let r = c.rdbs.get(&name("db")).unwrap();
    assert_eq!(r.set.primary, None, "a stale standby must not be promoted");
    let d = apply(&mut c, 0, r#"{"action":"switchover-rdb","name":"db"}"#).unwrap_err();
    assert_eq!(
        d.to_string(),
        "name: rdb db cannot switch over: it has no primary"
    );
    // a, the latest primary, is back: primary again at the same epoch.
    let both = fabric(&[("a", "hv-1"), ("b", "hv-2")]);
    round(&mut c, &both);
    let r = c.rdbs.get(&name("db")).unwrap();
    assert_eq!(r.set.primary, None, "one good check is not healthy yet");
    round(&mut c, &both);
    let r = c.rdbs.get(&name("db")).unwrap();
    assert_eq!((r.set.primary.clone(), r.set.epoch), (Some(vm("a")), 1));
}

#[test]
fn standby_down_when_primary_dies_means_no_primary_and_switchover_refused() {
    let mut c = created();
    let only_a = fabric(&[("a", "hv-1")]);
    round(&mut c, &only_a);
    let c0 = c.clone();
    let e = apply(&mut c, 0, r#"{"action":"switchover-rdb","name":"db"}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "name: rdb db cannot switch over: vm b is not healthy"
    );
    assert_eq!(c, c0);
}

#[test]
fn members_on_one_host_are_reported_degraded() {
    let mut c = created();
    let shared = fabric(&[("a", "spare-1"), ("b", "spare-1")]);
    let (_, lines) = round(&mut c, &shared);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("rdb db degraded: members share spare-1")));
    let d = apply(&mut c, 0, r#"{"action":"describe-rdbs"}"#).unwrap();
    assert_eq!(d[0]["degraded"], "members share spare-1");
    let apart = fabric(&[("a", "hv-1"), ("b", "hv-2")]);
    round(&mut c, &apart);
    let d = apply(&mut c, 0, r#"{"action":"describe-rdbs"}"#).unwrap();
    assert_eq!(d[0]["degraded"], serde_json::Value::Null);
}

#[test]
fn a_member_running_twice_is_unhealthy_and_terminating_one_deletes_the_cluster() {
    let mut c = created();
    let mut split = fabric(&[("b", "hv-2")]);
    split
        .running_on
        .insert(vm("a"), vec![host("hv-1"), host("spare-1")]);
    split.vm_network_up.insert(host("hv-1"));
    for _ in 0..3 {
        round(&mut c, &split);
    }
    assert_eq!(c.rdbs.get(&name("db")).unwrap().set.primary, Some(vm("b")));
    let gone = c.forget_vm(&vm("a"));
    assert!(gone.iter().any(|g| g.starts_with("rdb db")), "{gone:?}");
    assert!(c.rdbs.rdbs.is_empty());
    assert_eq!(c.health_checks_due(), None);
}

#[test]
fn restored_cloud_checks_from_now_and_round_trips() {
    let c = created();
    let json = serde_json::to_string(&c).unwrap();
    let back: Cloud = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    let restored = back.restored(7);
    assert_eq!(restored.health_checks_due(), Some(7));
}
