//! The simulated world end to end: a crash fails over, and the RPO is what
//! the sync cadence allows.

use krrish_sim::{demo, Fault, SimConfig};
use krrish_turmoil::SimWorld;

#[test]
fn a_crash_fails_over_to_the_spare_and_measures_rto_and_rpo() {
    let (hosts, vms) = demo::cluster(8, 1, 2);
    let mut w = SimWorld::new(hosts, vms, SimConfig::default());
    w.run_until(30_000).unwrap();
    w.inject(&Fault::Crash("hv-03".into())).unwrap();
    w.run_until(120_000).unwrap();
    let world = w.world();
    assert_eq!(world.running_on(&"vm-03-01".into()), vec!["spare-1".into()]);
    assert_eq!(world.recoveries.len(), 2);
    for r in &world.recoveries {
        // detection ≤ 19 s + IPMI 1 s + boot ≤ 23 s, plus ticks
        assert!(r.rto_ms <= 45_000, "{r:?}");
        // the agent syncs every 10 s
        assert!(r.rpo_ms <= 10_000, "{r:?}");
    }
}

#[test]
fn injecting_a_fault_on_an_unknown_host_is_refused() {
    let (hosts, vms) = demo::cluster(2, 1, 1);
    let mut w = SimWorld::new(hosts, vms, SimConfig::default());
    let e = w.inject(&Fault::Crash("hv-99".into())).unwrap_err();
    assert!(e.contains("hv-99"), "{e}");
}
