//! The controller's store: a real redb file survives a reopen, and a core
//! restored from it re-fences what was being fenced and re-bases deadlines.

use krrish_controller::{ControllerMachine, ControllerOutput, ControllerSnapshot, Store};
use krrish_core::ha::{Command, FenceStage, HaConfig, HaManager, HostReport, Liveness, VmState};
use krrish_core::HostId;
use krrish_sim::demo;
use std::path::PathBuf;
use std::rc::Rc;

fn a_core_mid_fence() -> HaManager {
    let (hosts, vms) = demo::cluster(3, 1, 2);
    let mut core = HaManager::new(0, HaConfig::default(), hosts, vms);
    // Only the spare reports: after 19 s the others are offline and being fenced.
    let report = HostReport::healthy(1, vec![]);
    core.handle_heartbeat(18_000, &HostId::new("spare-1"), &report);
    core.handle_timeout(19_000);
    // No host renews its DFS lease: the silent ones are dead.
    let reads: Vec<u64> = std::iter::from_fn(|| core.poll_command())
        .filter_map(|c| match c {
            Command::ReadLeaseRenewals { read } => Some(read),
            _ => None,
        })
        .collect();
    assert_eq!(reads.len(), 1, "one read before an evidence-less fence");
    core.handle_lease_renewals(19_000, reads[0], Ok(listening_long()));
    while core.poll_command().is_some() {}
    while core.poll_notice().is_some() {}
    // hv-01's BMC answered: fenced. With hv-02 failing too its VMs wait one
    // heartbeat interval (failovers decided together compete by priority),
    // then boot on the spare.
    core.handle_fence_result(19_500, &HostId::new("hv-01"), Ok(()));
    core.handle_heartbeat(24_000, &HostId::new("spare-1"), &report);
    core.handle_timeout(25_500);
    core
}

#[test]
fn a_snapshot_survives_closing_and_reopening_the_file() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("controller-store.redb");
    let _ = std::fs::remove_file(&path);
    let core = a_core_mid_fence();
    let mut cloud = krrish_cloud::Cloud::default();
    let vxnet = krrish_cloud::CloudRequest::CreateVxnet {
        name: "vxnet-1".into(),
        network: None,
    };
    cloud.apply(vxnet, 0, &|_| true).unwrap();
    let snap = ControllerSnapshot {
        core: core.snapshot(),
        cloud,
    };
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), None, "a new store is empty");
        store.save(&snap).unwrap();
    }
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.load().unwrap(), Some(snap));
}

#[test]
fn restoring_fences_again_from_the_start_and_rebases_deadlines() {
    let core = a_core_mid_fence();
    let (hosts, _) = demo::cluster(3, 1, 2);
    // A new process whose clock starts at 0 again.
    let mut restored = HaManager::restore(0, HaConfig::default(), hosts, core.snapshot());
    let hv2 = &restored.hosts()[&HostId::new("hv-02")];
    assert_eq!(
        hv2.liveness,
        Liveness::Fencing(FenceStage::Ipmi {
            deadline_ms: 10_000
        })
    );
    assert!(matches!(
        restored.hosts()[&HostId::new("hv-01")].liveness,
        Liveness::Fenced { .. }
    ));
    // A VM that was booting keeps waiting for its answer, with a fresh deadline.
    let booting = restored
        .vms()
        .values()
        .find(|v| matches!(v.state, VmState::Booting { .. }))
        .expect("hv-01's VMs were booting on the spare");
    assert!(matches!(
        booting.state,
        VmState::Booting {
            deadline_ms: 120_000,
            ..
        }
    ));
    let mut fenced_again = Vec::new();
    while let Some(c) = restored.poll_command() {
        fenced_again.push(c.to_string());
    }
    assert!(
        fenced_again.contains(&"fence hv-02 via IPMI power-off".to_string()),
        "{fenced_again:?}"
    );
    assert!(
        !fenced_again.iter().any(|c| c.starts_with("boot")),
        "nothing boots before fencing: {fenced_again:?}"
    );
}

#[test]
fn the_machine_writes_after_decisions_and_not_otherwise() {
    let store = Rc::new(Store::in_memory().unwrap());
    let (hosts, vms) = demo::cluster(2, 1, 1);
    let core = HaManager::new(0, HaConfig::default(), hosts, vms);
    let mut m = ControllerMachine::durable(0, core);
    // The shell's part: execute saves, collect the rest.
    let run = |m: &mut ControllerMachine| {
        let mut outputs = Vec::new();
        while let Some(o) = m.poll_output() {
            if let ControllerOutput::Save {
                generation,
                snapshot,
            } = &o
            {
                store.save(snapshot).unwrap();
                m.handle_saved(*generation, Ok(()));
            }
            outputs.push(o);
        }
        outputs
    };
    run(&mut m);
    let first = store.load().unwrap().expect("written at start");
    m.handle_timeout(100); // nothing decided: nothing written
    let idle = run(&mut m);
    assert!(!idle
        .iter()
        .any(|o| matches!(o, ControllerOutput::Save { .. })));
    m.handle_timeout(19_000); // hosts silent: the DFS is asked
    let mut out = run(&mut m);
    let read = out
        .iter()
        .find_map(|o| match o {
            ControllerOutput::ReadLeaseRenewals { read } => Some(*read),
            _ => None,
        })
        .expect("the DFS is read before a verdict");
    m.handle_lease_renewals(19_000, read, Ok(listening_long())); // none renews: fencing starts
    out.extend(run(&mut m));
    let after = store.load().unwrap().unwrap();
    assert_ne!(first, after);
    // The save comes before the fence it records goes out.
    let save = out
        .iter()
        .position(|o| matches!(o, ControllerOutput::Save { .. }));
    let fence = out
        .iter()
        .position(|o| matches!(o, ControllerOutput::FenceIpmi { .. }));
    assert!(save.is_some() && fence.is_some(), "{out:?}");
    assert!(save < fence, "write-ahead: {out:?}");
}

/// An agent answers a command when it ends, on whatever connection is then
/// open. After a restart the controller must not take an answer to its
/// previous incarnation's command for one of its own.
#[test]
fn an_answer_to_an_earlier_incarnations_command_matches_nothing() {
    use krrish_core::VmId;
    use krrish_wire::{ApiRequest, Frame};
    let store = Rc::new(Store::in_memory().unwrap());
    let (hosts, vms) = demo::cluster(3, 1, 2);
    let (vm1, vm2) = (VmId::new("vm-01-01"), VmId::new("vm-01-02"));
    // Executes saves; returns the ids of commands sent to the agent on conn 1.
    let run = |m: &mut ControllerMachine| {
        let mut ids = Vec::new();
        while let Some(o) = m.poll_output() {
            match o {
                ControllerOutput::Save {
                    generation,
                    snapshot,
                } => {
                    store.save(&snapshot).unwrap();
                    m.handle_saved(generation, Ok(()));
                }
                ControllerOutput::SendTo {
                    conn: 1,
                    frame: Frame::Command { id, .. },
                } => ids.push(id),
                _ => {}
            }
        }
        ids
    };
    // Every agent connects (hv-01 on conn 1) and reports; the operator asks
    // for a live migration of `vm` off hv-01.
    let migrate = |m: &mut ControllerMachine, now: u64, vm: &VmId, to: &str| {
        let homes = ["hv-01", "hv-02", "hv-03", "spare-1"];
        for (conn, host) in (1u64..).zip(homes) {
            let host = HostId::new(host);
            m.handle_opened(conn);
            let hello = Frame::AgentHello {
                host: host.clone(),
                boot_id: 1,
            };
            m.handle_frame(now, conn, hello);
            let running = m
                .core()
                .vms()
                .values()
                .filter(|v| v.spec.home == host)
                .map(|v| v.spec.id.clone())
                .collect();
            let report = HostReport::healthy(1, running);
            m.handle_frame(now, conn, Frame::Heartbeat { report });
        }
        m.handle_opened(9);
        m.handle_frame(now, 9, Frame::OperatorHello);
        let request = ApiRequest::MigrateInstance {
            vm: vm.clone(),
            to: HostId::new(to),
        };
        m.handle_frame(now, 9, Frame::Request { id: 1, request });
    };

    let core = HaManager::new(0, HaConfig::default(), hosts.clone(), vms);
    assert_eq!(core.incarnation(), 0);
    let mut first = ControllerMachine::durable(0, core);
    migrate(&mut first, 1_000, &vm1, "hv-02");
    let old_ids = run(&mut first);
    assert_eq!(old_ids.len(), 1, "one migration command: {old_ids:?}");

    // The controller dies; the next one restores from the store.
    let snap = store.load().unwrap().expect("saved before the command");
    let mut second =
        ControllerMachine::start(0, HaConfig::default(), hosts.clone(), vec![], Some(snap));
    assert_eq!(second.core().incarnation(), 1);
    migrate(&mut second, 500, &vm2, "hv-03");
    let new_ids = run(&mut second);
    assert_eq!(new_ids.len(), 1, "one migration command: {new_ids:?}");
    assert_ne!(old_ids, new_ids, "an incarnation's command ids are its own");

    // The first migration's answer reaches the second incarnation.
    let done = Frame::CommandDone {
        id: old_ids[0],
        outcome: Ok(()),
    };
    second.handle_frame(2_000, 1, done);
    run(&mut second);
    let state = |vm: &VmId| second.core().vms()[vm].state.clone();
    assert!(
        matches!(state(&vm2), VmState::Migrating { ref to, .. } if to.as_str() == "hv-03"),
        "vm-01-02 still migrating, not taken as moved: {:?}",
        state(&vm2)
    );
    // A third incarnation again draws from its own range.
    let snap = store.load().unwrap().expect("saved");
    let third = ControllerMachine::start(0, HaConfig::default(), hosts, vec![], Some(snap));
    assert_eq!(third.core().incarnation(), 2);
}

/// A read of a lease service up since the start, where no host renewed.
fn listening_long() -> krrish_core::lease::LeaseRenewals {
    krrish_core::lease::LeaseRenewals {
        hosts: vec![],
        listening_for_ms: 19_000,
        power_on: vec![],
    }
}
