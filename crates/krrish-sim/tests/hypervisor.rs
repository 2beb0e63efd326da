//! The simulated hypervisor answers as libvirt would where the control plane
//! depends on the answer.

use krrish_core::{HostId, VmId};
use krrish_sim::world::{DomainState, Timings, World};
use krrish_sim::{demo, TraceBuf};

/// Starting a VM on a host that is receiving it by live migration fails:
/// the half-copied domain is not a running guest, and a start that answered
/// "done" there would let the controller count a VM as running that is not.
#[test]
fn starting_a_vm_over_its_incoming_migration_fails() {
    let (hosts, vms) = demo::cluster(3, 1, 2);
    let mut world = World::new(1, hosts, vms, Timings::default(), TraceBuf::default());
    let (from, to, vm) = (
        HostId::new("hv-01"),
        HostId::new("hv-02"),
        VmId::new("vm-01-01"),
    );
    let (_, copy) = world.begin_migration(&from, &vm, &to).unwrap();
    let err = world.start_domain(1_000, &to, &vm).unwrap_err();
    assert!(!err.is_unavailable(), "the guest's trouble, not the host's");
    assert!(err.to_string().contains("live migration"), "{err}");
    assert_eq!(
        world.hosts[&to].domains[&vm].state,
        DomainState::Incoming {
            from: from.clone(),
            copy
        },
        "the incoming copy is untouched"
    );
    // Once the copy switched over, a start finds it running: done.
    world
        .finish_migration(2_000, &from, &vm, &to, copy)
        .unwrap();
    assert_eq!(world.start_domain(3_000, &to, &vm), Ok(()));
    assert_eq!(world.running_on(&vm), vec![to]);
}
