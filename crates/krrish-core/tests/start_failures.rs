//! Start failures against the two-party model: a VM whose every boot fails
//! is booted `1 + max_restart + max_relocate` times — the first host first
//! and again, then one boot on each of `max_relocate` other hosts — and
//! then is in `error`, where nothing boots it again until an operator
//! starts it.

use krrish_core::ha::{HaConfig, Notice, VmState};
use krrish_core::testkit::TwoParty as Model;
use krrish_core::{HaPolicy, HostId, Resources, VmId, VmSpec};

fn new_vm(name: &str) -> VmSpec {
    VmSpec {
        id: VmId::new(name),
        home: HostId::new(""),
        demand: Resources::new(1, 1024, 10),
        ha: HaPolicy::Restart,
        priority: 0,
        passthrough_devices: vec![],
        failback: true,
        restart_delay_ms: 0,
    }
}

/// The hosts `vm` was booted on, in order, from the notices so far.
fn boots(m: &mut Model, vm: &VmId, seen: &mut Vec<HostId>) {
    while let Some((_, n)) = m.core.poll_notice() {
        if let Notice::VmBooting { vm: v, host, .. } = n {
            if &v == vm {
                seen.push(host);
            }
        }
    }
}

#[test]
fn a_vm_failing_every_boot_ends_in_error_after_exactly_its_allowed_boots() {
    for max_restart in 0..=2 {
        for max_relocate in 0..=2 {
            let mut m = Model::with_config(HaConfig {
                max_restart,
                max_relocate,
                ..HaConfig::default()
            });
            m.advance(12_000);
            // Room for it on every production host: its HA-off VM goes.
            for h in 1..=3 {
                let gone = VmId::new(format!("vm-{h}-3"));
                m.core.terminate_vm(m.now, &gone).expect("exists");
                m.drain();
            }
            m.advance(12_000);
            let vm = VmId::new("broken");
            let first = HostId::new("hv-1");
            m.boots_to_fail.insert(vm.clone(), 1_000);
            let mut seen = Vec::new();
            boots(&mut m, &vm, &mut seen);
            m.core
                .create_vm(m.now, new_vm("broken"), Some(first.clone()))
                .expect("hv-1 has room");
            m.drain();
            for _ in 0..30 {
                m.advance(60_000);
                boots(&mut m, &vm, &mut seen);
            }
            let case = format!("max_restart {max_restart}, max_relocate {max_relocate}");
            let tries = (1 + max_restart + max_relocate) as usize;
            assert_eq!(seen.len(), tries, "{case}: booted on {seen:?}");
            assert!(
                seen[..=max_restart as usize].iter().all(|h| h == &first),
                "{case}: {seen:?}"
            );
            let others = &seen[1 + max_restart as usize..];
            let mut distinct: Vec<&HostId> = others.iter().filter(|h| *h != &first).collect();
            distinct.sort();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                others.len(),
                "{case}: relocations to new hosts only: {seen:?}"
            );
            let rec = &m.core.vms()[&vm];
            let VmState::Error {
                attempts, hosts, ..
            } = &rec.state
            else {
                panic!("{case}: {:?}", rec.state)
            };
            assert_eq!(*attempts as usize, tries, "{case}");
            assert_eq!(hosts.len(), 1 + max_relocate as usize, "{case}: {hosts:?}");
            assert!(m.hosts.values().all(|h| !h.running.contains(&vm)));

            // Mended, an operator's start runs it.
            m.boots_to_fail.clear();
            m.core.start_vm(m.now, &vm).expect("a VM in error starts");
            m.drain();
            m.advance(60_000);
            assert!(
                matches!(m.core.vms()[&vm].state, VmState::Running { .. }),
                "{case}: {:?}",
                m.core.vms()[&vm].state
            );
        }
    }
}
