//! Load balancers' records: every refusal names its field and leaves the
//! state as it was; addresses, listeners and backends come and go whole.

mod lb_common;

use krrish_cloud::network::lb::Health;
use krrish_cloud::{Cloud, CloudRequest};
use lb_common::*;

#[test]
fn refusals_name_the_field_and_change_nothing() {
    let mut c = cloud();
    let before = c.clone();
    let cases: &[(&str, &str, &str)] = &[
        // Creating.
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"external"}"#,
            "invalid-request",
            "eip: an external load balancer needs an eip",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"external","eip":"eip-x","vxnet":"front"}"#,
            "invalid-request",
            "vxnet: an external load balancer takes requests on an eip",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"internal"}"#,
            "invalid-request",
            "vxnet: an internal load balancer needs a vxnet",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"internal","vxnet":"front","eip":"eip-x"}"#,
            "invalid-request",
            "eip: an internal load balancer takes requests on a vxnet address",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"external","eip":"eip-9"}"#,
            "not-found",
            "no eip named eip-9",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"external","eip":"eip-vm"}"#,
            "already-associated",
            "eip eip-vm is already associated with vm client",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"external","eip":"eip-lb"}"#,
            "already-associated",
            "eip eip-lb is already associated with load balancer ext",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"internal","vxnet":"nope"}"#,
            "not-found",
            "no vxnet named nope",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"internal","vxnet":"back","ip":"10.20.30.247"}"#,
            "invalid-request",
            "ip: 10.20.30.247: last octet 247 is not allowed for zone ECS: expected 1 to 198",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"internal","vxnet":"back","ip":"10.20.30.199"}"#,
            "invalid-request",
            "ip: 10.20.30.199: last octet 199 is not allowed for zone ECS: expected 1 to 198",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"internal","vxnet":"back","ip":"10.9.9.9"}"#,
            "invalid-request",
            "ip: 10.9.9.9 is not in segment 10.20.30.0/24",
        ),
        (
            r#"{"action":"create-load-balancer","name":"x","kind":"internal","vxnet":"back","ip":"10.20.30.1"}"#,
            "in-use",
            "ip: 10.20.30.1 is already assigned",
        ),
        (
            r#"{"action":"create-load-balancer","name":"ext","kind":"external","eip":"eip-x"}"#,
            "exists",
            "a load balancer named ext already exists",
        ),
        (
            r#"{"action":"create-load-balancer","name":"<b>","kind":"external","eip":"eip-x"}"#,
            "invalid-request",
            "name: expected a name",
        ),
        // Listeners.
        (
            r#"{"action":"add-listener","lb":"nope","port":80}"#,
            "not-found",
            "no load balancer named nope",
        ),
        (
            r#"{"action":"add-listener","lb":"ext","port":0}"#,
            "invalid-request",
            "port: 0 is out of range: expected a port from 1 to 65535",
        ),
        (
            r#"{"action":"add-listener","lb":"ext","port":70000}"#,
            "invalid-request",
            "port: 70000 is out of range",
        ),
        (
            r#"{"action":"add-listener","lb":"ext","port":80}"#,
            "exists",
            "port: load balancer ext already has a listener on port 80",
        ),
        (
            r#"{"action":"add-listener","lb":"ext","port":81,"health_check":{"interval_ms":10}}"#,
            "invalid-request",
            "health_check.interval_ms: 10 is out of range",
        ),
        (
            r#"{"action":"add-listener","lb":"ext","port":81,"health_check":{"interval_ms":2000,"timeout_ms":3000}}"#,
            "invalid-request",
            "health_check.timeout_ms: 3000 is out of range",
        ),
        (
            r#"{"action":"add-listener","lb":"ext","port":81,"health_check":{"healthy_threshold":0}}"#,
            "invalid-request",
            "health_check.healthy_threshold: 0 is out of range",
        ),
        (
            r#"{"action":"add-listener","lb":"ext","port":81,"health_check":{"unhealthy_threshold":11}}"#,
            "invalid-request",
            "health_check.unhealthy_threshold: 11 is out of range",
        ),
        (
            r#"{"action":"remove-listener","lb":"ext","listener":81}"#,
            "not-found",
            "listener: load balancer ext has no listener on port 81",
        ),
        // Backends.
        (
            r#"{"action":"add-backend","lb":"ext","listener":81,"vm":"db"}"#,
            "not-found",
            "listener: load balancer ext has no listener on port 81",
        ),
        (
            r#"{"action":"add-backend","lb":"ext","listener":80,"vm":"ghost"}"#,
            "not-found",
            "no vm named ghost",
        ),
        (
            r#"{"action":"add-backend","lb":"ext","listener":80,"vm":"web-a"}"#,
            "exists",
            "vm: web-a is already a backend of listener 80 of load balancer ext",
        ),
        (
            r#"{"action":"add-backend","lb":"ext","listener":80,"vm":"solo"}"#,
            "invalid-request",
            "vm: solo has no interface load balancer ext reaches: expected an interface on a vxnet joined to a router",
        ),
        (
            r#"{"action":"add-backend","lb":"int","listener":5432,"vm":"solo"}"#,
            "invalid-request",
            "expected an interface on vxnet back or on a vxnet of router r1",
        ),
        (
            r#"{"action":"add-backend","lb":"ext","listener":80,"vm":"db","weight":0}"#,
            "invalid-request",
            "weight: 0 is out of range: expected 1 to 100",
        ),
        (
            r#"{"action":"add-backend","lb":"ext","listener":80,"vm":"db","port":0}"#,
            "invalid-request",
            "port: 0 is out of range",
        ),
        (
            r#"{"action":"remove-backend","lb":"ext","listener":80,"vm":"db"}"#,
            "not-found",
            "vm: db is not a backend of listener 80 of load balancer ext",
        ),
        (
            r#"{"action":"delete-load-balancer","name":"nope"}"#,
            "not-found",
            "no load balancer named nope",
        ),
        // The network around them.
        (
            r#"{"action":"release-eip","name":"eip-lb"}"#,
            "in-use",
            "eip eip-lb is in use: the address of load balancer ext; delete it first",
        ),
        (
            r#"{"action":"associate-eip","eip":"eip-lb","vm":"web-a"}"#,
            "already-associated",
            "eip eip-lb is already associated with load balancer ext",
        ),
    ];
    for (json, code, says) in cases {
        let e = c.apply(req(json), 2_000, &known).unwrap_err();
        assert_eq!(e.code(), *code, "{json}: {e}");
        assert!(e.to_string().contains(says), "{json}: {e}");
        if says.starts_with("ip: ") {
            assert_eq!(e.to_string(), *says, "{json}");
        }
        assert_eq!(c, before, "{json} changed the state");
    }
    // The internal LB's vxnet, once its VM left, is still in use by it; an
    // address taken by the LB is not handed to a VM.
    ok(
        &mut c,
        2_000,
        r#"{"action":"leave-vxnet","vxnet":"back","vm":"db"}"#,
    );
    let before = c.clone();
    let e = c
        .apply(
            req(r#"{"action":"delete-vxnet","name":"back"}"#),
            2_000,
            &known,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "vxnet back is in use: internal load balancer int on it; delete it first"
    );
    let e = c
        .apply(
            req(r#"{"action":"join-vxnet","vxnet":"back","vm":"solo","ip":"10.20.30.2"}"#),
            2_000,
            &known,
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "ip: 10.20.30.2 is already assigned");
    assert_eq!(c, before);
    // Unknown fields and kinds never reach the model.
    for bad in [
        r#"{"action":"add-listener","lb":"ext","port":81,"colour":"red"}"#,
        r#"{"action":"add-listener","lb":"ext","port":81,"protocol":"udp"}"#,
        r#"{"action":"add-listener","lb":"ext","port":81,"balance":"random"}"#,
        r#"{"action":"add-listener","lb":"ext","port":81,"health_check":{"rise":2}}"#,
        r#"{"action":"create-load-balancer","name":"x","kind":"sideways"}"#,
    ] {
        assert!(serde_json::from_str::<CloudRequest>(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_internal_address_follows_the_policy_and_is_freed_with_its_lb() {
    let mut c = cloud();
    // db took 10.20.30.1, the LB the next free one.
    let d = ok(&mut c, 0, r#"{"action":"describe-load-balancers"}"#);
    assert_eq!(d[1]["name"], "int");
    assert_eq!(d[1]["address"], "10.20.30.2");
    assert_eq!(d[1]["vxnet"], "back");
    assert_eq!(d[0]["address"], "203.0.113.1");
    assert_eq!(d[0]["eip"], "eip-lb");
    assert_eq!(d[0]["listeners"][0]["backends"][1]["port"], 8080);
    assert_eq!(d[0]["listeners"][0]["backends"][1]["weight"], 3);
    assert_eq!(d[0]["listeners"][0]["backends"][1]["health"], "new");
    assert_eq!(d[0]["listeners"][0]["health_check"]["interval_ms"], 2000);
    assert_eq!(d[0]["listeners"][0]["health_check"]["timeout_ms"], 2000);
    let eips = ok(&mut c, 0, r#"{"action":"describe-eips"}"#);
    assert_eq!(eips[0]["name"], "eip-lb");
    assert_eq!(eips[0]["load_balancer"], "ext");
    // A VM joining skips it; deleting the LB frees it.
    let r = ok(
        &mut c,
        0,
        r#"{"action":"join-vxnet","vxnet":"back","vm":"web-a"}"#,
    );
    assert_eq!(r["ip"], "10.20.30.3");
    ok(
        &mut c,
        0,
        r#"{"action":"delete-load-balancer","name":"int"}"#,
    );
    let r = ok(
        &mut c,
        0,
        r#"{"action":"join-vxnet","vxnet":"back","vm":"web-b"}"#,
    );
    assert_eq!(r["ip"], "10.20.30.2");
    // The external LB's EIP stays allocated and can be released after it.
    ok(
        &mut c,
        0,
        r#"{"action":"delete-load-balancer","name":"ext"}"#,
    );
    ok(&mut c, 0, r#"{"action":"release-eip","name":"eip-lb"}"#);
    assert_eq!(c.network.health_checks_due(), None);
}

#[test]
fn listeners_and_backends_come_and_go_with_their_checks() {
    let mut c = cloud();
    ok(
        &mut c,
        0,
        r#"{"action":"remove-backend","lb":"int","listener":5432,"vm":"db"}"#,
    );
    // ext's listener is still due; int's has nothing to check.
    assert_eq!(
        c.network.health_check_targets(u64::MAX),
        [vm("web-a"), vm("web-b")]
    );
    ok(
        &mut c,
        0,
        r#"{"action":"remove-listener","lb":"ext","listener":80}"#,
    );
    assert_eq!(c.network.health_checks_due(), None);
    ok(
        &mut c,
        40_000,
        r#"{"action":"add-backend","lb":"int","listener":5432,"vm":"client"}"#,
    );
    assert_eq!(c.network.health_checks_due(), Some(40_000));
    // A terminated VM leaves every listener (and says so).
    let gone = c.forget_vm(&vm("client"));
    assert!(
        gone.contains(&"backend of load balancer int listener 5432".to_string()),
        "{gone:?}"
    );
    assert_eq!(c.network.health_checks_due(), None);
}

#[test]
fn a_saved_cloud_round_trips_and_a_restore_checks_from_its_new_clock() {
    let mut c = cloud();
    round(&mut c, 1_000, &all_up());
    let json = serde_json::to_string(&c).unwrap();
    let back: Cloud = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    let restored = back.restored(7);
    assert_eq!(restored.network.health_checks_due(), Some(7));
    assert_eq!(health(&restored, "int", 5432, "db").0, Health::InService);
}
