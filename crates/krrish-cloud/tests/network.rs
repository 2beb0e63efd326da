//! The tenant network: every refusal leaves the state as it was; addresses
//! follow the policy; the data plane follows hosts, bonds and placement.

use krrish_cloud::network::dataplane::{ping, Fabric, Source, Target};
use krrish_cloud::network::EipKind;
use krrish_cloud::{Cloud, CloudRequest as R, Name};
use krrish_core::{HostId, VmId};
use std::collections::{BTreeMap, BTreeSet};

fn s(x: &str) -> String {
    x.to_string()
}

fn name(x: &str) -> Name {
    Name::parse("test", x).unwrap()
}

/// Three VMs, two vxnets on one router, an internet EIP on `web`.
fn cloud() -> Cloud {
    let mut c = Cloud::default();
    let known = |_: &VmId| true;
    for r in [
        R::CreateVxnet {
            name: s("front"),
            network: None,
        },
        R::CreateVxnet {
            name: s("back"),
            network: Some("10.20.30.0".parse().unwrap()),
        },
        R::CreateRouter { name: s("r1") },
        R::JoinRouter {
            router: s("r1"),
            vxnet: s("front"),
        },
        R::JoinRouter {
            router: s("r1"),
            vxnet: s("back"),
        },
        R::JoinVxnet {
            vxnet: s("front"),
            vm: s("web"),
            ip: None,
        },
        R::JoinVxnet {
            vxnet: s("back"),
            vm: s("db"),
            ip: Some("10.20.30.5".parse().unwrap()),
        },
        R::JoinVxnet {
            vxnet: s("front"),
            vm: s("cache"),
            ip: None,
        },
        R::AllocateEip {
            name: s("eip-1"),
            kind: EipKind::Internet,
        },
        R::AssociateEip {
            eip: s("eip-1"),
            vm: s("web"),
        },
        R::CreateDnsAlias { name: s("www") },
        R::AssociateDnsAlias {
            alias: s("www"),
            vm: s("web"),
        },
    ] {
        let what = r.to_string();
        c.apply(r, 0, &known)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    c
}

#[test]
fn refusals_name_the_problem_and_change_nothing() {
    let mut c = cloud();
    let before = c.clone();
    let known = |v: &VmId| v.as_str() != "ghost";
    let ip = |x: &str| Some(x.parse().unwrap());
    let cases: Vec<(R, &str, &str)> = vec![
        (
            R::DeleteVxnet { name: s("front") },
            "in-use",
            "VMs on it: cache, web",
        ),
        (
            R::DeleteVxnet { name: s("nope") },
            "not-found",
            "no vxnet named nope",
        ),
        (
            R::CreateVxnet {
                name: s("front"),
                network: None,
            },
            "exists",
            "already exists",
        ),
        (
            R::CreateVxnet {
                name: s("x"),
                network: ip("10.20.30.9"),
            },
            "in-use",
            "10.20.30.0/24",
        ),
        (
            R::CreateVxnet {
                name: s("x"),
                network: ip("8.8.8.0"),
            },
            "invalid-request",
            "private /24",
        ),
        (
            R::CreateVxnet {
                name: s("<b>x</b>"),
                network: None,
            },
            "invalid-request",
            "name: expected a name",
        ),
        (
            R::JoinVxnet {
                vxnet: s("front"),
                vm: s("ghost"),
                ip: None,
            },
            "not-found",
            "no vm named ghost",
        ),
        (
            R::JoinVxnet {
                vxnet: s("front"),
                vm: s("web"),
                ip: None,
            },
            "already-associated",
            "vxnet front",
        ),
        (
            R::JoinVxnet {
                vxnet: s("back"),
                vm: s("web"),
                ip: ip("10.20.30.247"),
            },
            "invalid-request",
            "ip: 10.20.30.247: last octet 247 is not allowed for zone ECS: expected 1 to 198",
        ),
        (
            R::JoinVxnet {
                vxnet: s("back"),
                vm: s("web"),
                ip: ip("10.20.30.199"),
            },
            "invalid-request",
            "ip: 10.20.30.199: last octet 199 is not allowed for zone ECS: expected 1 to 198",
        ),
        (
            R::JoinVxnet {
                vxnet: s("back"),
                vm: s("web"),
                ip: ip("10.20.30.0"),
            },
            "invalid-request",
            "ip: 10.20.30.0: last octet 0 is not allowed for zone ECS: expected 1 to 198",
        ),
        (
            R::JoinVxnet {
                vxnet: s("back"),
                vm: s("web"),
                ip: ip("10.20.31.4"),
            },
            "invalid-request",
            "ip: 10.20.31.4 is not in segment 10.20.30.0/24",
        ),
        (
            R::JoinVxnet {
                vxnet: s("back"),
                vm: s("web"),
                ip: ip("10.20.30.5"),
            },
            "in-use",
            "ip: 10.20.30.5 is already assigned",
        ),
        (
            R::JoinVxnet {
                vxnet: s("back"),
                vm: s("a;rm -rf /"),
                ip: None,
            },
            "invalid-request",
            "vm: expected a name",
        ),
        (
            R::LeaveVxnet {
                vxnet: s("back"),
                vm: s("web"),
            },
            "not-associated",
            "vxnet back",
        ),
        (
            R::AssociateEip {
                eip: s("eip-1"),
                vm: s("db"),
            },
            "already-associated",
            "vm web",
        ),
        // Found by the bad-input adversary: either left eip-1 associated
        // and leading nowhere.
        (
            R::LeaveVxnet {
                vxnet: s("front"),
                vm: s("web"),
            },
            "in-use",
            "vm web's interface on vxnet front is in use: eip eip-1, NATed to it",
        ),
        (
            R::LeaveRouter {
                router: s("r1"),
                vxnet: s("front"),
            },
            "in-use",
            "vxnet front's link to router r1 is in use: eip eip-1 of vm web",
        ),
        (
            R::ReleaseEip { name: s("eip-1") },
            "in-use",
            "dissociate it first",
        ),
        (R::DeleteRouter { name: s("r1") }, "in-use", "back, front"),
        (
            R::JoinRouter {
                router: s("r1"),
                vxnet: s("front"),
            },
            "already-associated",
            "router r1",
        ),
        (
            R::AssociateDnsAlias {
                alias: s("www"),
                vm: s("db"),
            },
            "already-associated",
            "vm web",
        ),
        (
            R::AssociateDnsAlias {
                alias: s("nope"),
                vm: s("db"),
            },
            "not-found",
            "no dns alias named nope",
        ),
        (
            R::DissociateEip { eip: s("nope") },
            "not-found",
            "no eip named nope",
        ),
    ];
    for (r, code, says) in cases {
        let what = r.to_string();
        let e = c.apply(r, 0, &known).expect_err(&what);
        assert_eq!(e.code(), code, "{what}: {e}");
        assert!(e.to_string().contains(says), "{what}: {e}");
        if says.starts_with("ip: ") {
            assert_eq!(e.to_string(), says, "{what}");
        }
        assert_eq!(c, before, "{what} changed the state");
    }
    // An EIP for a VM on an unrouted vxnet: refused, also unchanged.
    for r in [
        R::CreateVxnet {
            name: s("lone"),
            network: None,
        },
        R::JoinVxnet {
            vxnet: s("lone"),
            vm: s("solo"),
            ip: None,
        },
        R::AllocateEip {
            name: s("eip-2"),
            kind: EipKind::External,
        },
    ] {
        c.apply(r, 0, &known).unwrap();
    }
    let before = c.clone();
    let e = c
        .apply(
            R::AssociateEip {
                eip: s("eip-2"),
                vm: s("solo"),
            },
            0,
            &known,
        )
        .unwrap_err();
    assert!(e.to_string().contains("joined to a router"), "{e}");
    assert_eq!(c, before);
}

#[test]
fn addresses_follow_the_policy_until_exhausted() {
    let mut c = Cloud::default();
    let known = |_: &VmId| true;
    let join = |c: &mut Cloud, vm: String| {
        c.apply(
            R::JoinVxnet {
                vxnet: s("big"),
                vm,
                ip: None,
            },
            0,
            &known,
        )
    };
    c.apply(
        R::CreateVxnet {
            name: s("big"),
            network: None,
        },
        0,
        &known,
    )
    .unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..198 {
        let r = join(&mut c, format!("vm-{i}")).unwrap();
        let ip: std::net::Ipv4Addr = serde_json::from_value(r.data["ip"].clone()).unwrap();
        let o = ip.octets()[3];
        assert!((1..199).contains(&o), "{ip}");
        assert!(seen.insert(o), "{ip} twice");
    }
    let before = c.clone();
    let e = join(&mut c, s("one-more")).unwrap_err();
    assert_eq!(e.code(), "exhausted", "{e}");
    assert_eq!(c, before);
    // Leaving frees the address for the next one.
    c.apply(
        R::LeaveVxnet {
            vxnet: s("big"),
            vm: s("vm-7"),
        },
        0,
        &known,
    )
    .unwrap();
    let r = join(&mut c, s("one-more")).unwrap();
    assert_eq!(r.data["ip"], "192.168.0.8");
}

/// Ground truth by hand: where VMs run, which hosts' bonds are down.
#[derive(Default)]
struct Hand {
    on: BTreeMap<&'static str, Vec<&'static str>>,
    bond1_down: BTreeSet<&'static str>,
    bond0_down: BTreeSet<&'static str>,
}

impl Fabric for Hand {
    fn running_on(&self, vm: &VmId) -> Vec<HostId> {
        self.on
            .get(vm.as_str())
            .into_iter()
            .flatten()
            .map(|h| HostId::new(*h))
            .collect()
    }
    fn vm_network_up(&self, host: &HostId) -> bool {
        !self.bond1_down.contains(host.as_str())
    }
    fn uplink_up(&self, host: &HostId) -> bool {
        !self.bond0_down.contains(host.as_str())
    }
}

#[test]
fn the_data_plane_follows_placement_hosts_and_bonds() {
    let c = cloud();
    let net = &c.network;
    let mut f = Hand::default();
    f.on.insert("web", vec!["hv-01"]);
    f.on.insert("db", vec!["hv-02"]);
    f.on.insert("cache", vec!["hv-01"]);
    let web = Target::Vm(VmId::new("web"));
    let vm = |v: &str| Source::Vm(VmId::new(v));
    let eip = Target::Eip(name("eip-1"));
    let www = Target::Alias(name("www"));

    // Routed between vxnets, across hosts over VXLAN; on one host, the bridge.
    let r = ping(net, &f, &vm("db"), &web).unwrap();
    assert!(r.join(" ").contains("router r1"), "{r:?}");
    let r = ping(net, &f, &vm("cache"), &www).unwrap();
    assert!(r.join(" ").contains("bridge"), "{r:?}");
    // The internet reaches the EIP, not the private address; the external
    // network does not reach an internet EIP.
    assert!(ping(net, &f, &Source::Internet, &eip).is_ok());
    let e = ping(net, &f, &Source::Internet, &web).unwrap_err();
    assert!(e.contains("private address"), "{e}");
    let e = ping(net, &f, &Source::External, &eip).unwrap_err();
    assert!(e.contains("internet EIP"), "{e}");

    // web's host dies: nothing reaches it until it runs elsewhere.
    f.on.insert("web", vec![]);
    for (from, to) in [
        (Source::Internet, &eip),
        (vm("db"), &www),
        (vm("cache"), &web),
    ] {
        let e = ping(net, &f, &from, to).unwrap_err();
        assert!(e.contains("not running"), "{from} -> {to}: {e}");
    }
    f.on.insert("web", vec!["spare-1"]);
    let r = ping(net, &f, &Source::Internet, &eip).unwrap();
    assert!(r.join(" ").contains("spare-1"), "{r:?}");
    let r = ping(net, &f, &vm("cache"), &www).unwrap();
    assert!(r.join(" ").contains("VXLAN"), "{r:?}");

    // bond1 down on web's host: VXLAN is cut; bond0 down: the EIP is cut.
    f.bond1_down.insert("spare-1");
    assert!(ping(net, &f, &vm("db"), &web)
        .unwrap_err()
        .contains("bond1"));
    assert!(ping(net, &f, &Source::Internet, &eip).is_ok());
    f.bond0_down.insert("spare-1");
    assert!(ping(net, &f, &Source::Internet, &eip)
        .unwrap_err()
        .contains("bond0"));
    // Two copies at once: the data plane says so rather than pick one.
    f.on.insert("web", vec!["hv-01", "spare-1"]);
    assert!(ping(net, &f, &Source::Internet, &eip)
        .unwrap_err()
        .contains("at once"));
}
