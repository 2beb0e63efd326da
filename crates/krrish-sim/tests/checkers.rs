//! The checkers catch what they claim to: worlds built by hand to break each
//! invariant, and a clean one that breaks none.

use krrish_core::ha::{HaConfig, HaManager};
use krrish_sim::world::{Domain, DomainState, Timings, World};
use krrish_sim::{demo, Checkers, TraceBuf};

fn setup() -> (World, HaManager) {
    let (hosts, vms) = demo::cluster(3, 1, 2);
    let world = World::new(
        1,
        hosts.clone(),
        vms.clone(),
        Timings::default(),
        TraceBuf::default(),
    );
    let core = HaManager::new(0, HaConfig::default(), hosts, vms);
    (world, core)
}

/// A second, running copy of `vm` on `host`: what the control plane must
/// never cause.
fn start_copy(world: &mut World, host: &str, vm: &str) {
    let h = world.hosts.get_mut(&host.into()).unwrap();
    h.domains.insert(vm.into(), running(0));
}

fn running(since: u64) -> Domain {
    Domain {
        state: DomainState::Running,
        last_sync_ms: since,
        guest: Default::default(),
    }
}

#[test]
fn a_clean_world_passes() {
    let (world, core) = setup();
    let mut c = Checkers::new(10_000);
    assert_eq!(
        c.check(
            1_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true
        ),
        Ok(())
    );
}

#[test]
fn a_vm_on_two_hosts_breaks_single_instance() {
    let (mut world, core) = setup();
    start_copy(&mut world, "spare-1", "vm-01-01");
    let v = Checkers::new(10_000)
        .check(
            1_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true,
        )
        .unwrap_err();
    assert_eq!(v.invariant, "single-instance");
    assert!(
        v.detail.contains("vm-01-01 runs on hv-01 and spare-1"),
        "{}",
        v.detail
    );
    assert_eq!(v.at_ms, 1_000);
}

#[test]
fn a_writer_without_a_valid_lease_does_not_count() {
    let (mut world, core) = setup();
    start_copy(&mut world, "spare-1", "vm-01-01");
    // hv-01 is cut off from the DFS: only one host writes, but the VM still
    // runs twice, which single-instance reports first.
    world.hosts.get_mut(&"hv-01".into()).unwrap().nics[2] = [false, false];
    assert_eq!(
        world.writers_of(&"vm-01-01".into(), 1_000),
        vec!["spare-1".into()]
    );
    let v = Checkers::new(10_000)
        .check(
            1_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true,
        )
        .unwrap_err();
    assert_eq!(v.invariant, "single-instance");
}

#[test]
fn guests_beyond_capacity_break_no_overcommit() {
    let (mut world, core) = setup();
    let h = world.hosts.get_mut(&"hv-02".into()).unwrap();
    for i in 0..20 {
        h.domains
            .insert(format!("ghost-{i}").as_str().into(), running(0));
    }
    // Ghosts are not VMs of the cluster; give them specs so they count.
    for i in 0..20 {
        let mut spec = world.vms[&"vm-02-01".into()].clone();
        spec.id = format!("ghost-{i}").as_str().into();
        world.vms.insert(spec.id.clone(), spec);
    }
    let v = Checkers::new(10_000)
        .check(
            1_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true,
        )
        .unwrap_err();
    // The ghosts are unknown to the control plane too, but capacity is checked first.
    assert_eq!(v.invariant, "no-overcommit", "{v}");
}

#[test]
fn a_belief_that_stays_wrong_past_the_grace_breaks_no_vm_lost() {
    let (mut world, core) = setup();
    world
        .hosts
        .get_mut(&"hv-03".into())
        .unwrap()
        .domains
        .clear();
    let mut c = Checkers::new(10_000);
    // Within the grace: the control plane may not know yet.
    assert_eq!(
        c.check(
            1_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true
        ),
        Ok(())
    );
    assert_eq!(
        c.check(
            11_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true
        ),
        Ok(())
    );
    let v = c
        .check(
            11_001,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true,
        )
        .unwrap_err();
    assert_eq!(v.invariant, "no-vm-lost");
    assert!(
        v.detail.contains("says vm-03-01 runs on hv-03"),
        "{}",
        v.detail
    );
}

#[test]
fn a_free_spare_running_guests_breaks_spare_accounting() {
    let (mut world, core) = setup();
    let vm = world
        .hosts
        .get_mut(&"hv-01".into())
        .unwrap()
        .domains
        .remove(&"vm-01-01".into())
        .unwrap();
    world
        .hosts
        .get_mut(&"spare-1".into())
        .unwrap()
        .domains
        .insert("vm-01-01".into(), vm);
    let mut c = Checkers::new(5_000);
    assert_eq!(
        c.check(0, &world, &core, &krrish_cloud::Cloud::default(), 0, true),
        Ok(())
    );
    let v = c
        .check(
            6_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true,
        )
        .unwrap_err();
    assert_eq!(v.invariant, "spare-accounting", "{v}");
}

#[test]
fn a_vm_the_world_learns_through_a_boot_is_judged_too() {
    // A VM created through the API reaches the world only through its boot.
    let (mut world, core) = setup();
    let mut big = world.vms.values().next().unwrap().clone();
    big.id = "api-1".into();
    big.demand = krrish_core::Resources::new(1_000, 1, 1);
    start_copy(&mut world, "hv-02", "api-1");
    // Unknown to the world, it is not weighed...
    assert_eq!(
        Checkers::new(10_000).check(
            1_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true
        ),
        Ok(())
    );
    // ...once learned, it is: too big for hv-02, and unknown to the core.
    world.learn_vm(&big);
    let v = Checkers::new(10_000)
        .check(
            1_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true,
        )
        .unwrap_err();
    assert_eq!(v.invariant, "no-overcommit", "{v}");
}

/// A guest on `host` running `vm` with `volume` plugged in.
fn guest_with_volume(world: &mut World, host: &str, vm: &str, volume: &str) {
    let mut d = running(0);
    d.guest.volumes.push(krrish_cloud::GuestVolume {
        name: krrish_cloud::Name::parse("volume", volume).unwrap(),
        size_gib: 1,
    });
    world
        .hosts
        .get_mut(&host.into())
        .unwrap()
        .domains
        .insert(vm.into(), d);
}

#[test]
fn one_volume_in_two_running_guests_breaks_single_attachment() {
    let (mut world, core) = setup();
    guest_with_volume(&mut world, "hv-01", "vm-01-01", "data-1");
    guest_with_volume(&mut world, "hv-02", "vm-02-01", "data-1");
    let v = Checkers::new(10_000)
        .check(
            1_000,
            &world,
            &core,
            &krrish_cloud::Cloud::default(),
            0,
            true,
        )
        .unwrap_err();
    assert_eq!(v.invariant, "single-attachment");
    assert!(
        v.detail
            .contains("data-1 is plugged into vm-01-01 on hv-01 and vm-02-01 on hv-02"),
        "{}",
        v.detail
    );
}

#[test]
fn a_guest_writing_a_volume_the_cloud_calls_free_breaks_volume_holder_after_5_s() {
    let (mut world, core) = setup();
    guest_with_volume(&mut world, "hv-01", "vm-01-01", "data-1");
    let mut cloud = krrish_cloud::Cloud::default();
    cloud
        .storage
        .create_volume(
            krrish_cloud::Name::parse("volume", "data-1").unwrap(),
            1,
            krrish_cloud::storage::Provisioning::Thin,
            None,
        )
        .unwrap();
    let mut c = Checkers::new(60_000);
    // Messages may be in flight for a moment; not for 5 s.
    assert_eq!(c.check(1_000, &world, &core, &cloud, 0, true), Ok(()));
    world.generation += 1;
    let v = c.check(6_001, &world, &core, &cloud, 0, true).unwrap_err();
    assert_eq!(v.invariant, "volume-holder");
    assert!(
        v.detail
            .contains("vm-01-01 on hv-01 writes volume data-1, which the cloud calls available"),
        "{}",
        v.detail
    );
}

#[test]
fn a_down_controllers_stale_belief_is_timed_only_once_it_is_back() {
    let (mut world, core) = setup();
    // The control plane believes vm-01-01 runs on hv-01; it does not.
    world
        .hosts
        .get_mut(&"hv-01".into())
        .unwrap()
        .domains
        .remove(&"vm-01-01".into());
    world.generation += 1;
    let cloud = krrish_cloud::Cloud::default();
    let mut c = Checkers::new(10_000);
    // Down for a minute: nothing is timed.
    for t in (1_000..=61_000).step_by(5_000) {
        assert_eq!(
            c.check(t, &world, &core, &cloud, 0, false),
            Ok(()),
            "at {t}"
        );
    }
    // Back: the grace starts now, and then it is broken.
    assert_eq!(c.check(62_000, &world, &core, &cloud, 0, true), Ok(()));
    assert_eq!(c.check(71_000, &world, &core, &cloud, 0, true), Ok(()));
    let v = c.check(72_500, &world, &core, &cloud, 0, true).unwrap_err();
    assert_eq!(v.invariant, "no-vm-lost");
    assert!(
        v.detail.contains("vm-01-01 runs on hv-01, but it does not"),
        "{}",
        v.detail
    );
}
