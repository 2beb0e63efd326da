//! Load balancers on the data plane: health checks move a backend only at
//! a threshold (hysteresis); requests are spread over the backends in
//! service and lost at the ones the data plane cannot reach.

mod lb_common;

use krrish_cloud::network::dataplane::{Fabric, Source};
use krrish_cloud::network::lb::serve::serve;
use krrish_cloud::network::lb::{FabricReport, Health};
use krrish_cloud::Cloud;
use lb_common::*;

#[test]
fn health_checks_move_a_backend_only_at_a_threshold() {
    let mut c = cloud();
    let mut f = all_up();
    let ext = |c: &Cloud, v| health(c, "ext", 80, v);
    // Both listeners' first checks are due when their first backend came.
    assert_eq!(c.network.health_checks_due(), Some(1_000));
    assert!(c.network.health_check_targets(999).is_empty());
    assert_eq!(
        c.network.health_check_targets(1_000),
        [vm("db"), vm("web-a"), vm("web-b")]
    );
    // New backends are not in service until they pass twice (ext: default
    // rise 2) or once (int: rise 1).
    let g0 = c.generation();
    let lines = round(&mut c, 1_000, &f);
    assert_eq!(ext(&c, "web-a"), (Health::New, 1, 0));
    assert_eq!(
        lines,
        ["load balancer int listener 5432: backend db in service after 1 good checks"]
    );
    assert!(c.generation() > g0, "a backend moved: saved");
    // The next checks: ext every 2 s, int every 5 s.
    assert_eq!(c.network.health_checks_due(), Some(3_000));
    assert_eq!(
        c.network.health_check_targets(3_000),
        [vm("web-a"), vm("web-b")]
    );
    let lines = round(&mut c, 3_000, &f);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with("backend web-a in service after 2 good checks"));
    assert_eq!(ext(&c, "web-a"), (Health::InService, 2, 0));

    // web-a's host dies. Checks fail; it stays in service until the third
    // failure in a row (fall 3); counting changes no saved generation.
    f.on.insert("web-a", vec![]);
    let g1 = c.generation();
    assert!(round(&mut c, 5_000, &f).is_empty());
    assert_eq!(ext(&c, "web-a"), (Health::InService, 0, 1));
    assert!(round(&mut c, 7_000, &f).is_empty());
    assert_eq!(ext(&c, "web-a"), (Health::InService, 0, 2));
    assert_eq!(c.generation(), g1, "counting alone is not a change to save");
    // One good check in between starts the count again.
    f.on.insert("web-a", vec!["hv-01"]);
    assert!(round(&mut c, 9_000, &f).is_empty());
    assert_eq!(ext(&c, "web-a"), (Health::InService, 1, 0));
    f.on.insert("web-a", vec![]);
    for t in [11_000, 13_000] {
        assert!(round(&mut c, t, &f).is_empty());
    }
    assert_eq!(ext(&c, "web-a"), (Health::InService, 0, 2));
    let lines = round(&mut c, 15_000, &f);
    assert_eq!(
        lines,
        ["load balancer ext listener 80: backend web-a taken out of service after 3 failed checks: vm web-a is not running anywhere"]
    );
    assert_eq!(ext(&c, "web-a"), (Health::OutOfService, 0, 3));
    assert!(c.generation() > g1);
    // Counts stop at the threshold: a settled state reads the same.
    let settled = c.clone();
    round(&mut c, 17_000, &f);
    assert_eq!(ext(&c, "web-a"), (Health::OutOfService, 0, 3));
    assert_eq!(
        c.network.load_balancers().collect::<Vec<_>>()[0].listeners[&80].backends,
        settled.network.load_balancers().collect::<Vec<_>>()[0].listeners[&80].backends
    );

    // It runs again on the spare: back after two good checks, not one.
    f.on.insert("web-a", vec!["spare-1"]);
    assert!(round(&mut c, 19_000, &f).is_empty());
    assert_eq!(ext(&c, "web-a"), (Health::OutOfService, 1, 0));
    let lines = round(&mut c, 21_000, &f);
    assert_eq!(
        lines,
        ["load balancer ext listener 80: backend web-a put back in service after 2 good checks"]
    );
    // bond1 down on its host fails the check too; two copies at once too.
    f.bond1_down.insert("spare-1");
    round(&mut c, 23_000, &f);
    let b = &c.network.load_balancer(&name("ext")).unwrap().listeners[&80].backends[&vm("web-a")];
    assert!(
        b.checks.failing.as_deref().unwrap().contains("bond1"),
        "{b:?}"
    );
    f.bond1_down.clear();
    f.on.insert("web-a", vec!["hv-01", "spare-1"]);
    round(&mut c, 25_000, &f);
    let b = &c.network.load_balancer(&name("ext")).unwrap().listeners[&80].backends[&vm("web-a")];
    assert!(
        b.checks.failing.as_deref().unwrap().contains("at once"),
        "{b:?}"
    );
    // web-b never failed.
    assert_eq!(ext(&c, "web-b"), (Health::InService, 2, 0));
}

/// A backend whose host was never told its NIC (the records have it, the
/// host does not) fails its checks like an unreachable one: the LB path
/// honours what the hosts plugged, as the ping path does (found by the
/// adversary: it served through a NIC nobody plugged).
#[test]
fn a_backend_its_host_never_plugged_fails_its_checks() {
    let mut c = cloud();
    let mut f = all_up();
    f.plugged.insert("db", Default::default());
    round(&mut c, 1_000, &f);
    let b = &c.network.load_balancer(&name("int")).unwrap().listeners[&5432].backends[&vm("db")];
    let why = b.checks.failing.clone().unwrap_or_default();
    assert!(why.contains("never gave db its interface"), "{why:?}");
    assert_ne!(b.health, Health::InService);
    // Once its host has it, the backend is reached.
    f.plugged.insert("db", c.network.guest_network(&vm("db")));
    round(&mut c, 6_000, &f);
    assert_eq!(health(&c, "int", 5432, "db").0, Health::InService);
}

#[test]
fn a_backend_leaving_its_vxnet_fails_its_checks_and_a_late_round_reschedules() {
    let mut c = cloud();
    let f = all_up();
    round(&mut c, 1_000, &f);
    assert_eq!(health(&c, "int", 5432, "db").0, Health::InService);
    ok(
        &mut c,
        2_000,
        r#"{"action":"leave-vxnet","vxnet":"back","vm":"db"}"#,
    );
    // int checks every 5 s, falls after 2. A round answered late (the
    // controller was busy) does not run twice, and the next is an interval
    // after it.
    let lines = round(&mut c, 6_000, &f);
    assert!(lines.iter().all(|l| !l.contains("int")), "{lines:?}");
    let l = &c.network.load_balancer(&name("int")).unwrap().listeners[&5432];
    assert_eq!(l.next_check_ms, Some(11_000));
    let b = &l.backends[&vm("db")];
    assert_eq!(
        b.checks.failing.as_deref(),
        Some("vm db has no interface load balancer int reaches")
    );
    let lines = c
        .network
        .run_health_checks(11_000, 30_000, &FabricReport::read(&f, &[vm("db")]));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &c.network.load_balancer(&name("int")).unwrap().listeners[&5432];
    assert_eq!(l.next_check_ms, Some(35_000));
}

#[test]
fn a_listener_due_after_the_read_was_asked_stays_due() {
    let mut c = cloud();
    let f = all_up();
    // A read asked for ext's backends alone (int's listener became due
    // after it was asked): int is not checked, and not put off either.
    let report = FabricReport::read(&f, &[vm("web-a"), vm("web-b")]);
    c.network.run_health_checks(1_000, 1_000, &report);
    let due = |c: &Cloud, lb: &str, port: u16| {
        c.network.load_balancer(&name(lb)).unwrap().listeners[&port].next_check_ms
    };
    assert_eq!(due(&c, "ext", 80), Some(3_000));
    assert_eq!(due(&c, "int", 5432), Some(1_000));
    assert_eq!(c.network.health_checks_due(), Some(1_000));
    assert_eq!(health(&c, "int", 5432, "db"), (Health::New, 0, 0));
}

#[test]
fn a_report_judges_only_the_vms_it_was_read_for() {
    let mut c = cloud();
    let f = all_up();
    // Read for web-a alone: web-b and db are not judged this round.
    let report = FabricReport::read(&f, &[vm("web-a")]);
    c.network.run_health_checks(1_000, 1_000, &report);
    assert_eq!(health(&c, "ext", 80, "web-a"), (Health::New, 1, 0));
    assert_eq!(health(&c, "ext", 80, "web-b"), (Health::New, 0, 0));
    assert_eq!(health(&c, "int", 5432, "db"), (Health::New, 0, 0));
    // A report read while web-a's host is off: not running.
    let mut off = all_up();
    off.on.insert("web-a", vec![]);
    let report = FabricReport::read(&off, &[vm("web-a")]);
    assert!(report.knows(&vm("web-a")) && !report.knows(&vm("web-b")));
    assert!(report.running_on(&vm("web-a")).is_empty());
}

#[test]
fn requests_spread_over_the_backends_in_service_and_are_lost_at_dead_ones() {
    let mut c = cloud();
    let mut f = all_up();
    let lb = name("ext");
    // No backend in service yet: nothing is served.
    let e = serve(&c.network, &f, &Source::Internet, &lb, 80).unwrap_err();
    assert!(e.contains("no backend in service"), "{e}");
    round(&mut c, 1_000, &f);
    round(&mut c, 3_000, &f);
    let s = serve(&c.network, &f, &Source::Internet, &lb, 80).unwrap();
    assert_eq!(s.in_service, [vm("web-a"), vm("web-b")]);
    assert_eq!(s.answered_by, s.in_service);
    assert!(s.served());
    // An internet EIP: not from the external network; from a VM, out
    // through its uplink and back in.
    let e = serve(&c.network, &f, &Source::External, &lb, 80).unwrap_err();
    assert!(e.contains("internet eip eip-lb"), "{e}");
    let client = Source::Vm(vm("client"));
    assert!(serve(&c.network, &f, &client, &lb, 80).unwrap().served());
    f.bond0_down.insert("hv-03");
    let e = serve(&c.network, &f, &client, &lb, 80).unwrap_err();
    assert!(e.contains("bond0"), "{e}");
    f.bond0_down.clear();
    // Unknown listener, unknown LB.
    let e = serve(&c.network, &f, &Source::Internet, &lb, 81).unwrap_err();
    assert_eq!(e, "listener: load balancer ext has no listener on port 81");
    assert!(serve(&c.network, &f, &Source::Internet, &name("x"), 80).is_err());

    // web-a's host dies: until the check takes it out, its share is lost.
    f.on.insert("web-a", vec![]);
    let s = serve(&c.network, &f, &Source::Internet, &lb, 80).unwrap();
    assert_eq!(s.in_service, [vm("web-a"), vm("web-b")]);
    assert_eq!(s.answered_by, [vm("web-b")]);
    assert_eq!(s.lost_at[0].0, vm("web-a"));
    for t in [5_000, 7_000, 9_000] {
        round(&mut c, t, &f);
    }
    let s = serve(&c.network, &f, &Source::Internet, &lb, 80).unwrap();
    assert_eq!(
        (s.in_service.clone(), s.answered_by),
        (vec![vm("web-b")], vec![vm("web-b")])
    );
    // Both dead: not served, though the LB is reached.
    f.on.insert("web-b", vec![]);
    assert!(!serve(&c.network, &f, &Source::Internet, &lb, 80)
        .unwrap()
        .served());

    // The internal LB: from a VM on a vxnet of its router, not from the
    // internet or from a VM on an unrouted vxnet.
    let int = name("int");
    let from_client = serve(&c.network, &f, &client, &int, 5432).unwrap();
    assert_eq!(from_client.answered_by, [vm("db")]);
    let e = serve(&c.network, &f, &Source::Internet, &int, 5432).unwrap_err();
    assert!(e.contains("internal (10.20.30.2 on vxnet back)"), "{e}");
    let e = serve(&c.network, &f, &Source::Vm(vm("solo")), &int, 5432).unwrap_err();
    assert!(e.contains("no interface on vxnet back"), "{e}");
    // The client's own bond1 down cuts it from a backend on another host.
    f.bond1_down.insert("hv-03");
    let s = serve(&c.network, &f, &client, &int, 5432).unwrap();
    assert!(!s.served() && s.lost_at[0].1.contains("hv-03"), "{s:?}");
}
