use krrish_sim::{demo, Fault, SimConfig, SimWorld};

#[test]
fn crash_fails_over_to_the_spare() {
    let (hosts, vms) = demo::cluster(8, 1, 2);
    let mut w = SimWorld::new(hosts, vms, SimConfig::default());
    w.run_until(30_000).unwrap();
    w.inject(&Fault::Crash("hv-03".into())).unwrap();
    w.run_until(120_000).unwrap();
    println!("{}", w.trace().text());
    let world = w.world();
    assert_eq!(world.running_on(&"vm-03-01".into()), vec!["spare-1".into()]);
}
