//! The controller's store: a real redb file survives a reopen, and a core
//! restored from it re-fences what was being fenced and re-bases deadlines.

use krrish_controller::{ControllerMachine, ControllerOutput, Store};
use krrish_core::ha::{Command, FenceStage, HaConfig, HaManager, HostReport, Liveness, VmState};
use krrish_core::{BondHealth, HostId};
use krrish_sim::demo;
use std::path::PathBuf;
use std::rc::Rc;

fn a_core_mid_fence() -> HaManager {
    let (hosts, vms) = demo::cluster(3, 1, 2);
    let mut core = HaManager::new(0, HaConfig::default(), hosts, vms);
    // Only the spare reports: after 19 s the others are offline and being fenced.
    let report = HostReport {
        migrating_out: vec![],
        boot_id: 1,
        bonds: [BondHealth::Ok; 3],
        running: vec![],
    };
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
    core.handle_lease_renewals(19_000, reads[0], Ok(vec![]));
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
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), None, "a new store is empty");
        store.save(&core.snapshot()).unwrap();
    }
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.load().unwrap(), Some(core.snapshot()));
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
    m.handle_lease_renewals(19_000, read, Ok(vec![])); // none renews: fencing starts
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
