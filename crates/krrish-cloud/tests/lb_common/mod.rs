//! What the load-balancer tests share: a cloud with an external and an
//! internal LB, ground truth by hand, and a round of health checks as the
//! controller runs one.

#![allow(dead_code)]

use krrish_cloud::network::dataplane::Fabric;
use krrish_cloud::network::lb::{FabricReport, Health};
use krrish_cloud::network::GuestNetwork;
use krrish_cloud::{Cloud, CloudRequest, Name};
use krrish_core::{HostId, VmId};
use std::collections::{BTreeMap, BTreeSet};

/// A request as the wire (and a scenario's `cloud:` item) carries it.
pub fn req(json: &str) -> CloudRequest {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

pub fn known(v: &VmId) -> bool {
    v.as_str() != "ghost"
}

pub fn ok(c: &mut Cloud, now: u64, json: &str) -> serde_json::Value {
    c.apply(req(json), now, &known)
        .unwrap_or_else(|e| panic!("{json}: {e}"))
        .data
}

pub fn name(x: &str) -> Name {
    Name::parse("test", x).unwrap()
}

pub fn vm(x: &str) -> VmId {
    VmId::new(x)
}

/// `front` (routed by r1, web-a, web-b, client), `back` (routed by r1,
/// db), `lonely` (no router, solo); an external LB `ext` on internet EIP
/// `eip-lb` with listener 80 (web-a, web-b), an internal LB `int` on
/// `back` with listener 5432 (db).
pub fn cloud() -> Cloud {
    let mut c = Cloud::default();
    for r in [
        r#"{"action":"create-router","name":"r1"}"#,
        r#"{"action":"create-vxnet","name":"front"}"#,
        r#"{"action":"create-vxnet","name":"back","network":"10.20.30.0"}"#,
        r#"{"action":"create-vxnet","name":"lonely"}"#,
        r#"{"action":"join-router","router":"r1","vxnet":"front"}"#,
        r#"{"action":"join-router","router":"r1","vxnet":"back"}"#,
        r#"{"action":"join-vxnet","vxnet":"front","vm":"web-a"}"#,
        r#"{"action":"join-vxnet","vxnet":"front","vm":"web-b"}"#,
        r#"{"action":"join-vxnet","vxnet":"front","vm":"client"}"#,
        r#"{"action":"join-vxnet","vxnet":"back","vm":"db"}"#,
        r#"{"action":"join-vxnet","vxnet":"lonely","vm":"solo"}"#,
        r#"{"action":"allocate-eip","name":"eip-lb","kind":"internet"}"#,
        r#"{"action":"allocate-eip","name":"eip-vm","kind":"internet"}"#,
        r#"{"action":"allocate-eip","name":"eip-x","kind":"external"}"#,
        r#"{"action":"associate-eip","eip":"eip-vm","vm":"client"}"#,
        r#"{"action":"create-load-balancer","name":"ext","kind":"external","eip":"eip-lb"}"#,
        r#"{"action":"add-listener","lb":"ext","port":80,"protocol":"http"}"#,
        r#"{"action":"add-backend","lb":"ext","listener":80,"vm":"web-a"}"#,
        r#"{"action":"add-backend","lb":"ext","listener":80,"vm":"web-b","port":8080,"weight":3}"#,
        r#"{"action":"create-load-balancer","name":"int","kind":"internal","vxnet":"back"}"#,
        r#"{"action":"add-listener","lb":"int","port":5432,"balance":"least-conn",
            "health_check":{"interval_ms":5000,"healthy_threshold":1,"unhealthy_threshold":2}}"#,
        r#"{"action":"add-backend","lb":"int","listener":5432,"vm":"db"}"#,
    ] {
        ok(&mut c, 1_000, r);
    }
    c
}

/// Ground truth by hand.
#[derive(Default)]
pub struct Hand {
    pub on: BTreeMap<&'static str, Vec<&'static str>>,
    pub bond1_down: BTreeSet<&'static str>,
    pub bond0_down: BTreeSet<&'static str>,
    /// What a VM's host was told to plug, for the VMs given (others: the
    /// records are taken as plugged).
    pub plugged: BTreeMap<&'static str, GuestNetwork>,
}

impl Fabric for Hand {
    fn running_on(&self, vm: &VmId) -> Vec<HostId> {
        let hosts = self.on.get(vm.as_str()).into_iter().flatten();
        hosts.map(|h| HostId::new(*h)).collect()
    }
    fn vm_network_up(&self, host: &HostId) -> bool {
        !self.bond1_down.contains(host.as_str())
    }
    fn uplink_up(&self, host: &HostId) -> bool {
        !self.bond0_down.contains(host.as_str())
    }
    fn plugged(&self, vm: &VmId) -> Option<GuestNetwork> {
        self.plugged.get(vm.as_str()).cloned()
    }
}

pub fn all_up() -> Hand {
    let mut f = Hand::default();
    for (v, h) in [
        ("web-a", "hv-01"),
        ("web-b", "hv-02"),
        ("client", "hv-03"),
        ("db", "hv-02"),
        ("solo", "hv-04"),
    ] {
        f.on.insert(v, vec![h]);
    }
    f
}

pub fn health(c: &Cloud, lb: &str, port: u16, v: &str) -> (Health, u32, u32) {
    let b = &c.network.load_balancer(&name(lb)).unwrap().listeners[&port].backends[&vm(v)];
    (b.health, b.checks.passes, b.checks.failures)
}

/// One round as the controller runs it: the targets due, read off the
/// fabric, checked.
pub fn round(c: &mut Cloud, now: u64, f: &Hand) -> Vec<String> {
    let vms = c.network.health_check_targets(now);
    let report = FabricReport::read(f, &vms);
    c.network.run_health_checks(now, now, &report)
}
