//! Property tests of the HA state machine against a small model of hosts.
//!
//! The model answers the core's commands the way hardware would: IPMI powers
//! a host off if its BMC is alive; a revoked lease stops being renewed and the
//! host stops its VMs before it lapses; boots succeed on powered hosts that
//! may write to the DFS. Random crashes, power losses, BMC losses,
//! partitions and quick reboots are thrown at it, with operator migrations
//! that take time (and whose answers are lost when the source is cut off)
//! and controller restarts from the persisted snapshot. After every step: no VM runs twice.
//! After healing everything: every HA VM runs again and every spare is
//! accounted.

use krrish_core::ha::{
    Command, DpmConfig, FenceAction, FenceError, HaConfig, HostReport, IsolationResponse, VmState,
};
use krrish_core::rules::{RuleGroup, RuleKind, Rules, Strength};
use krrish_core::testkit::{Step as Op, TwoParty as Model};
use krrish_core::HaPolicy;
use krrish_core::{HostId, Resources, VmId};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1_000u64..60_000).prop_map(Op::Advance),
        1 => (0usize..5).prop_map(Op::Crash),
        1 => (0usize..5).prop_map(Op::PowerLoss),
        1 => (0usize..5).prop_map(Op::BmcDown),
        1 => (0usize..5).prop_map(Op::Partition),
        1 => (0usize..5).prop_map(Op::Heal),
        2 => (0usize..5).prop_map(Op::Repair),
        1 => (0usize..5).prop_map(Op::Reboot),
        2 => (0usize..12, 0usize..5).prop_map(|(v, h)| Op::Migrate(v, h)),
        1 => Just(Op::ControllerRestart),
        1 => Just(Op::DfsDown),
        1 => Just(Op::DfsUp),
        1 => (0usize..12, 1u32..8).prop_map(|(v, n)| Op::FailBoots(v, n)),
    ]
}

proptest! {
    // PROPTEST_CASES (CI, nightly) sets the budget; 256 cases otherwise.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn never_two_copies_and_converges_after_healing(
        ops in proptest::collection::vec(op(), 1..40),
        power_off in any::<bool>(),
        reboot in any::<bool>(),
        no_live_migration in any::<bool>(),
        ruled in any::<bool>(),
        dpm in any::<bool>(),
    ) {
        let response = if power_off {
            IsolationResponse::PowerOffAndRestart
        } else {
            IsolationResponse::LeaveRunning
        };
        // Copies take 2-20 s: a 12 s migration timeout makes some time out
        // and be cancelled.
        // With DPM the VMs are small (a host a quarter loaded), so it
        // powers hosts off and must power them on for failovers.
        let demand = if dpm { Resources::new(1, 4 * 1024, 50) } else { Resources::new(4, 12 * 1024, 50) };
        let mut m = Model::with_demand(HaConfig {
            isolation_response: response,
            migration_timeout_ms: 12_000,
            fence_action: if reboot { FenceAction::Reboot } else { FenceAction::Off },
            rules: if ruled { rule_groups() } else { Rules::default() },
            // DPM powers idle hosts off every minute, on when failover
            // needs them (failover beyond the spares on).
            dpm: dpm.then(|| DpmConfig { interval_ms: 60_000, power_on_timeout_ms: 120_000, ..DpmConfig::default() }),
            failover_to_production: dpm,
            ..HaConfig::default()
        }, demand);
        // Hypervisors that answer every live migration "not supported":
        // failback must go home cold, never retry for ever.
        m.no_live_migration = no_live_migration;
        for op in &ops {
            m.apply(op);
            // Must anti-affine VMs never share a host.
            let on: Vec<&HostId> = ["vm-2-0", "vm-3-0"]
                .iter()
                .filter_map(|vm| m.hosts.iter().find(|(_, h)| h.running.contains(&VmId::new(*vm))).map(|(id, _)| id))
                .collect();
            prop_assert!(!ruled || on.len() < 2 || on[0] != on[1], "anti-affine VMs share {:?}", on);
            // A VM in error ran out of boots: it runs nowhere, after at
            // most 1 + max_restart + max_relocate of them on distinct hosts.
            for (vm, rec) in m.core.vms() {
                if let VmState::Error { attempts, hosts, .. } = &rec.state {
                    prop_assert!(m.hosts.values().all(|h| !h.running.contains(vm)), "{} in error runs", vm);
                    prop_assert!(*attempts <= 3 && hosts.len() <= 2, "{}: {:?}", vm, rec.state);
                    let distinct: std::collections::BTreeSet<_> = hosts.iter().collect();
                    prop_assert_eq!(distinct.len(), hosts.len());
                }
            }
        }
        // Liveness: an operator repairs whatever is broken (a fence may
        // power off a host just repaired), mends broken images and starts
        // the VMs in error again, until things settle.
        m.slow_copies = false;
        m.boots_to_fail.clear();
        m.apply(&Op::DfsUp);
        for _ in 0..10 {
            for i in 0..5 {
                m.apply(&Op::Repair(i));
            }
            m.advance(60_000);
            let in_error: Vec<VmId> = m
                .core
                .vms()
                .iter()
                .filter(|(_, r)| matches!(r.state, VmState::Error { .. }))
                .map(|(id, _)| id.clone())
                .collect();
            for vm in in_error {
                // Refused only while no host has room: tried again next round.
                let _ = m.core.start_vm(m.now, &vm);
                m.drain();
            }
        }
        m.advance(600_000);
        for (vm, rec) in m.core.vms() {
            let running_somewhere = m.hosts.values().filter(|h| h.running.contains(vm)).count();
            match m.ha[vm] {
                HaPolicy::Restart | HaPolicy::RestoreOnRepair => {
                    prop_assert_eq!(running_somewhere, 1, "{} not running after healing: {:?}", vm, rec.state);
                    prop_assert!(matches!(rec.state, VmState::Running { .. }), "{} is {:?}", vm, rec.state);
                }
                HaPolicy::Off => prop_assert!(running_somewhere <= 1),
            }
        }
        // The must affinity pair runs on one host again.
        if ruled {
            let on: Vec<&HostId> = ["vm-1-0", "vm-1-1"]
                .iter()
                .filter_map(|vm| m.hosts.iter().find(|(_, h)| h.running.contains(&VmId::new(*vm))).map(|(id, _)| id))
                .collect();
            prop_assert!(on.len() == 2 && on[0] == on[1], "affinity pair apart after healing: {:?}", on);
        }
        // Every VM is home again and every spare back in the pool.
        let (free, active, unavailable) = m.core.spare_counts();
        prop_assert_eq!((free, active, unavailable), (2, 0, 0));
    }
}

/// A must affinity pair (two restart VMs of hv-1) and a must
/// anti-affinity pair (restart VMs of hv-2 and hv-3).
fn rule_groups() -> Rules {
    let group = |name: &str, kind, vms: [&str; 2]| RuleGroup {
        name: name.into(),
        strength: Strength::Must,
        kind,
        vms: vms.iter().map(|v| VmId::new(*v)).collect(),
    };
    Rules::new(vec![
        group("together", RuleKind::Affinity, ["vm-1-0", "vm-1-1"]),
        group("apart", RuleKind::AntiAffinity, ["vm-2-0", "vm-3-0"]),
    ])
}

#[test]
fn suspect_host_that_heartbeats_again_is_not_fenced() {
    let mut m = Model::new();
    m.advance(12_000);
    m.apply(&Op::Partition(0));
    m.advance(9_000); // one or two misses, not three
    m.apply(&Op::Heal(0));
    m.advance(60_000);
    assert_eq!(m.core.failover_boots(), 0);
    assert_eq!(m.core.hosts()[&HostId::new("hv-1")].liveness.name(), "up");
}

#[test]
fn a_host_that_cannot_be_fenced_keeps_its_vms_down_rather_than_doubling_them() {
    let mut m = Model::new();
    m.advance(12_000);
    // BMC dead and the DFS never answers revocations: model that by making
    // the host unreachable while leaving its lease alone.
    m.apply(&Op::BmcDown(0));
    m.apply(&Op::Partition(0));
    // Intercept: answer revocations with errors.
    let mut now = m.now;
    let (mut gave_up, mut retried) = (false, false);
    for _ in 0..300 {
        now += 1_000;
        // The other hosts go on heartbeating (else every host is silent and
        // the controller rightly suspects itself).
        if now.is_multiple_of(6_000) {
            for (id, h) in m.hosts.iter().filter(|(id, _)| id.as_str() != "hv-1") {
                let report = HostReport::healthy(h.boot_id, h.running.iter().cloned().collect());
                m.core.handle_heartbeat(now, id, &report);
            }
        }
        m.core.handle_timeout(now);
        while let Some(c) = m.core.poll_command() {
            match c {
                Command::FenceIpmi { host, .. } => {
                    retried |= gave_up;
                    m.core.handle_fence_result(
                        now,
                        &host,
                        Err(FenceError::Unreachable("BMC silent".into())),
                    )
                }
                Command::RevokeLease { host } => m.core.handle_lease_revoked(
                    now,
                    &host,
                    Err(FenceError::Unreachable("DFS unreachable".into())),
                ),
                Command::BootVm { .. } => panic!("booted a VM of an unfenced host: {c:?}"),
                _ => {}
            }
        }
        gave_up |= m.core.hosts()[&HostId::new("hv-1")].liveness.name() == "fence-failed";
        if gave_up {
            let state = m.core.vms()[&VmId::new("vm-1-0")].state.name();
            assert!(["down", "host-down"].contains(&state), "{state}");
        }
    }
    assert!(gave_up, "the fence never failed for good");
    assert!(retried, "a failed fence is tried again later");
    assert_eq!(m.core.failover_boots(), 0);
}

/// The property test's model as its shrunk failures ran: rule groups on,
/// VMs leave running when isolated, 12 s migration time-out, big VMs.
fn ruled_model() -> Model {
    Model::with_demand(
        HaConfig {
            isolation_response: IsolationResponse::LeaveRunning,
            migration_timeout_ms: 12_000,
            rules: rule_groups(),
            ..HaConfig::default()
        },
        Resources::new(4, 12 * 1024, 50),
    )
}

/// Found by the property test (PROPTEST_CASES=10000): vm-1-0's restore
/// failed once on hv-1, where its must affinity mate runs; its retry fell
/// due while hv-1 was suspect for a moment, so it was relocated — to
/// spares the rule forbids, its home excluded as tried — and waited for
/// ever. Now it waits for hv-1 and boots there once it is fit.
#[test]
fn a_retry_due_while_its_host_is_suspect_waits_for_that_host() {
    let mut m = ruled_model();
    for op in [
        Op::FailBoots(0, 1),
        Op::PowerLoss(0),
        Op::DfsDown,
        Op::Advance(30_001),
        Op::Advance(5_001),
        Op::Advance(22_001),
        Op::Repair(0),
        Op::Advance(5_001),
        Op::Partition(0),
        Op::Advance(5_001),
    ] {
        m.apply(&op);
    }
    let vm = VmId::new("vm-1-0");
    assert!(
        matches!(m.core.vms()[&vm].state, VmState::RetryingBoot { .. }),
        "{:?}",
        m.core.vms()[&vm].state
    );
    m.apply(&Op::DfsUp);
    m.apply(&Op::Heal(0));
    m.advance(120_000);
    let hv1 = HostId::new("hv-1");
    assert_eq!(
        m.core.vms()[&vm].state,
        VmState::Running { host: hv1.clone() }
    );
    assert!(m.hosts[&hv1].running.contains(&vm));
    assert!(m.hosts[&hv1].running.contains(&VmId::new("vm-1-1")));
}

/// Found by the property test (PROPTEST_CASES=40000): hv-2 crashed,
/// vm-2-0 failed over to a spare and its failback timed out; before it was
/// retried an operator moved vm-3-0 — which must stay apart from vm-2-0 —
/// onto hv-2, making hv-2 its home too. vm-2-0 could never go back and
/// held the spare for ever. The move is refused now, saying why.
#[test]
fn a_move_onto_the_home_of_an_anti_affine_vm_away_from_it_is_refused() {
    let mut m = ruled_model();
    for op in [
        Op::Crash(1),
        Op::Advance(1_001),
        Op::Advance(27_001),
        Op::Repair(1),
        Op::Advance(48_001),
    ] {
        m.apply(&op);
    }
    let (vm2, vm3, hv2) = (
        VmId::new("vm-2-0"),
        VmId::new("vm-3-0"),
        HostId::new("hv-2"),
    );
    assert!(
        matches!(&m.core.vms()[&vm2].state, VmState::Running { host } if host != &hv2),
        "{:?}",
        m.core.vms()[&vm2].state
    );
    let refused = m.core.migrate_vm(m.now, &vm3, &hv2).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("hv-2 is the home of vm-2-0, which goes back there"),
        "{refused}"
    );
    m.slow_copies = false;
    m.advance(300_000);
    assert_eq!(
        m.core.vms()[&vm2].state,
        VmState::Running { host: hv2.clone() }
    );
    assert_eq!(m.core.spare_counts(), (2, 0, 0));
}

/// hv-1 crashed, vm-1-0 failed over to a spare, hv-1 was repaired, and
/// vm-1-0's live copy home is under way (fast copies): the model, the VM,
/// its home and the spare.
fn vm_1_0_failing_back_home() -> (Model, VmId, HostId, HostId) {
    let mut m = Model::new();
    m.slow_copies = false;
    m.advance(12_000);
    m.apply(&Op::Crash(0));
    m.advance(120_000);
    let (vm, hv1) = (VmId::new("vm-1-0"), HostId::new("hv-1"));
    let VmState::Running { host: spare } = m.core.vms()[&vm].state.clone() else {
        panic!("vm-1-0 not failed over: {:?}", m.core.vms()[&vm].state)
    };
    assert_ne!(spare, hv1);
    m.apply(&Op::Repair(0));
    for _ in 0..120 {
        if m.copying.iter().any(|c| c.vm == vm && c.to == hv1) {
            return (m, vm, hv1, spare);
        }
        m.advance(1_000);
    }
    panic!("vm-1-0's failback never began")
}

/// Found by the lab's adversary (2026-12-04): hv-1 rebooted a second
/// after vm-1-0's live failback began. libvirt answered "failed" before
/// the new boot was heard of, and vm-1-0 waited out the 60 s migration
/// back-off on its spare. The home's new boot is news the back-off did
/// not know: the failback is tried again at once.
#[test]
fn a_home_that_boots_again_mid_failback_is_tried_again_without_waiting_out_the_back_off() {
    let (mut m, vm, hv1, _) = vm_1_0_failing_back_home();
    let copying_home = |m: &Model| m.copying.iter().any(|c| c.vm == vm && c.to == hv1);
    let failed_at = m.now;
    m.apply(&Op::Reboot(0));
    assert!(!copying_home(&m));
    // Well inside the 60 s back-off: vm-1-0 is on its way home or there.
    for _ in 0..30 {
        if copying_home(&m) || m.hosts[&hv1].running.contains(&vm) {
            break;
        }
        m.advance(1_000);
    }
    assert!(
        copying_home(&m) || m.hosts[&hv1].running.contains(&vm),
        "{} s after the failed failback vm-1-0 is still {:?}",
        (m.now - failed_at) / 1_000,
        m.core.vms()[&vm].state
    );
    m.advance(60_000);
    assert_eq!(m.core.vms()[&vm].state, VmState::Running { host: hv1 });
}

/// Found by the adversary (2026-12-04): a held-up answer to an earlier
/// copy between the same two hosts settled the copy sent after it, and
/// the controller took a VM switching over to its home for one back on
/// its spare. Each copy has a serial; an answer to another is dropped.
#[test]
fn an_answer_to_an_earlier_copy_does_not_settle_the_current_one() {
    // Small VMs: hv-2 has room for one more.
    let mut m = Model::with_demand(HaConfig::default(), Resources::new(1, 2 * 1024, 10));
    m.advance(12_000);
    let (vm, hv2) = (VmId::new("vm-1-0"), HostId::new("hv-2"));
    m.core.migrate_vm(m.now, &vm, &hv2).unwrap();
    m.drain();
    let copy = m.copying.iter().find(|c| c.vm == vm).expect("a copy began");
    let (from, serial) = (copy.from.clone(), copy.serial);
    let earlier = Err(krrish_core::ha::DriverError::Failed("interrupted".into()));
    m.core
        .handle_migration_result(m.now, &vm, &from, &hv2, serial - 1, earlier);
    assert!(
        matches!(m.core.vms()[&vm].state, VmState::Migrating { .. }),
        "{:?}",
        m.core.vms()[&vm].state
    );
    m.slow_copies = false;
    m.advance(30_000);
    assert_eq!(m.core.vms()[&vm].state, VmState::Running { host: hv2 });
}

/// Found by the adversary (2026-12-04): vm-1-0's failback switched over,
/// its answer was lost with its source's management network (cut, the
/// source isolated but renewing its DFS lease), and its home rebooted:
/// the VM ran nowhere, and the copy stayed in doubt until the cut healed
/// (300 s). Each lease renewal tells the DFS what the host runs (its
/// power-on list); the controller reads the source's there.
#[test]
fn a_copy_that_switched_over_is_settled_through_the_dfs_while_its_source_is_cut_off() {
    let (mut m, vm, hv1, spare) = vm_1_0_failing_back_home();
    let copying_home = |m: &Model| m.copying.iter().any(|c| c.vm == vm && c.to == hv1);
    let spare_index = m.index_of(spare.as_str());
    m.apply(&Op::Partition(spare_index));
    for _ in 0..120 {
        if !copying_home(&m) {
            break;
        }
        m.advance(100);
    }
    assert!(
        m.hosts[&hv1].running.contains(&vm),
        "the copy did not switch over"
    );
    m.apply(&Op::Reboot(0));
    assert!(
        runs_again_within(&mut m, &vm, 90),
        "vm-1-0 still runs nowhere 90 s after its home rebooted, its source cut off: {:?}",
        m.core.vms()[&vm].state
    );
    assert!(m.hosts[&spare].partitioned, "settled before the cut healed");
}

/// Advances a second at a time, at most `seconds`, until `vm` runs on some
/// host: whether it does.
fn runs_again_within(m: &mut Model, vm: &VmId, seconds: u32) -> bool {
    for _ in 0..seconds {
        if m.hosts.values().any(|h| h.running.contains(vm)) {
            return true;
        }
        m.advance(1_000);
    }
    m.hosts.values().any(|h| h.running.contains(vm))
}

/// The twin of the test above, found while fixing it: vm-1-0's copy to
/// hv-2 is under way, hv-2's management network is cut (isolated, still
/// renewing), and the source reboots: the copy died with it, and the VM
/// waited on hv-2's report for the whole cut. hv-2's power-on list,
/// taken after the reboot, does not hold vm-1-0: it restarts at once.
#[test]
fn a_copy_whose_source_rebooted_is_settled_through_the_dfs_while_its_target_is_cut_off() {
    let mut m = Model::with_demand(HaConfig::default(), Resources::new(1, 2 * 1024, 10));
    m.advance(12_000);
    let (vm, hv2) = (VmId::new("vm-1-0"), HostId::new("hv-2"));
    m.core.migrate_vm(m.now, &vm, &hv2).unwrap();
    m.drain();
    let copy = m.copying.iter().find(|c| c.vm == vm).expect("a copy began");
    let source = m.index_of(copy.from.as_str());
    m.apply(&Op::Partition(m.index_of("hv-2")));
    m.advance(1_000);
    m.apply(&Op::Reboot(source));
    assert!(
        runs_again_within(&mut m, &vm, 90),
        "vm-1-0 still runs nowhere 90 s after its source rebooted, its target cut off: {:?}",
        m.core.vms()[&vm].state
    );
    assert!(m.hosts[&hv2].partitioned, "settled before the cut healed");
    assert!(
        !m.hosts[&hv2].running.contains(&vm),
        "{:?}",
        m.hosts[&hv2].running
    );
}

/// Found by the adversary (2026-12-04), by reading: a copy in doubt keeps
/// the instant its doubt began, and a restored controller kept the old
/// process's instant — a daemon's clock starts at 0 again, so no report or
/// power-on list was ever new enough to settle it. The restore re-bases it.
#[test]
fn a_restored_controller_can_still_settle_a_copy_in_doubt() {
    let mut m = Model::with_demand(HaConfig::default(), Resources::new(1, 2 * 1024, 10));
    m.advance(600_000);
    let (vm, hv2) = (VmId::new("vm-1-0"), HostId::new("hv-2"));
    m.core.migrate_vm(m.now, &vm, &hv2).unwrap();
    m.drain();
    let source = m
        .copying
        .iter()
        .find(|c| c.vm == vm)
        .expect("a copy")
        .from
        .clone();
    m.apply(&Op::Partition(m.index_of(source.as_str())));
    m.apply(&Op::Reboot(m.index_of("hv-2")));
    m.advance(7_000); // the new boot is heard of; the source is silent
    let doubt = m.core.vms()[&vm].settled_by.clone();
    assert!(
        doubt.as_ref().is_some_and(|(_, at)| *at >= 600_000),
        "{doubt:?}"
    );
    // The new process's clock is at 1 s.
    let restored = krrish_core::ha::HaManager::restore(
        1_000,
        m.config.clone(),
        m.specs.clone(),
        m.core.snapshot(),
    );
    let settled_by = restored.vms()[&vm].settled_by.clone();
    assert!(
        settled_by.as_ref().is_some_and(|(_, at)| *at <= 1_000),
        "{settled_by:?}"
    );
}

/// A stored state names hosts a cluster definition edited since may lack
/// (found by the bad-input adversary: restored anyway, a VM showed on a
/// host the controller no longer knew, unprotected). The controller
/// refuses to start on it, naming one VM per missing host.
#[test]
fn a_stored_state_names_the_hosts_an_edited_cluster_lacks() {
    let mut m = Model::new();
    m.advance(12_000);
    let snap = m.core.snapshot();
    assert!(snap.hosts_missing_from(&m.specs).is_empty());
    let hv1 = HostId::new("hv-1");
    let without: Vec<_> = m.specs.iter().filter(|h| h.id != hv1).cloned().collect();
    let missing = snap.hosts_missing_from(&without);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].1, hv1);
    assert!(missing[0].0.as_str().starts_with("vm-1-"), "{missing:?}");
}
