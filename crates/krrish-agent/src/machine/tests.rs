//! The agent machine's own tests: links, dials, boots joined, guest
//! changes held during a boot, lease refusals.
use super::*;

fn drain(m: &mut AgentMachine) -> Vec<AgentOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn dial_epoch(out: &[AgentOutput]) -> Option<u64> {
    out.iter().find_map(|o| match o {
        AgentOutput::Dial { epoch } => Some(*epoch),
        _ => None,
    })
}

/// Runs the machine's own timers from `from` to `to`, returning outputs.
fn run(m: &mut AgentMachine, to: u64) -> Vec<AgentOutput> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let at = m.poll_timeout();
        if at > to {
            break;
        }
        m.handle_timeout(at);
        out.extend(drain(m));
    }
    out
}

/// One VM homed on hv-01, the host these tests' agent stands for.
fn vm_1() -> krrish_core::VmSpec {
    krrish_core::VmSpec {
        id: "vm-1".into(),
        home: "hv-01".into(),
        demand: krrish_core::Resources::new(1, 1024, 10),
        ha: krrish_core::HaPolicy::Restart,
        priority: 0,
        passthrough_devices: vec![],
        failback: true,
        restart_delay_ms: 0,
    }
}

fn connected(at: u64) -> AgentMachine {
    let mut m = AgentMachine::new(at, AgentConfig::new("hv-01".into(), "c:1".into()), 1);
    m.handle_timeout(at);
    let e = dial_epoch(&drain(&mut m)).expect("dials at start");
    assert!(m.handle_dial_result(at, e, Ok(())));
    let out = drain(&mut m);
    assert!(matches!(
        out[0],
        AgentOutput::Send(Frame::AgentHello { .. })
    ));
    assert!(out.contains(&AgentOutput::ReadStatus));
    m
}

#[test]
fn acked_heartbeats_keep_the_link() {
    let mut m = connected(0);
    for t in [6_000, 12_000, 18_000, 24_000] {
        m.handle_frame(t - 5_900, 1, Frame::HeartbeatAck);
        let out = run(&mut m, t);
        assert!(out.contains(&AgentOutput::ReadStatus), "{out:?}");
        assert!(m.is_connected());
    }
}

#[test]
fn an_unacked_heartbeat_drops_the_link_within_the_ack_timeout_and_redials_at_once() {
    let mut m = connected(0);
    let out = run(&mut m, 1_999);
    assert!(m.is_connected(), "{out:?}");
    let out = run(&mut m, 2_000);
    assert!(
        out.contains(&AgentOutput::Disconnect { epoch: 1 }),
        "{out:?}"
    );
    assert_eq!(dial_epoch(&out), Some(2), "{out:?}");
    assert!(!m.is_connected());
    // A stale frame from the old connection is ignored.
    m.handle_frame(2_100, 1, Frame::HeartbeatAck);
    assert!(!m.is_connected());
}

#[test]
fn failed_dials_back_off_doubling_to_the_cap_and_a_late_success_is_dropped() {
    let mut m = AgentMachine::new(0, AgentConfig::new("hv-01".into(), "c:1".into()), 1);
    let mut dials: Vec<(u64, u64)> = Vec::new();
    let mut t = 0;
    while dials.len() < 6 {
        t = m.poll_timeout();
        m.handle_timeout(t);
        if let Some(e) = dial_epoch(&drain(&mut m)) {
            dials.push((t, e));
        }
    }
    // Every dial hung until its 1 s deadline; back-off 250 ms doubling to 1 s.
    let gaps: Vec<u64> = dials.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert_eq!(gaps, vec![1_250, 1_500, 2_000, 2_000, 2_000]);
    // An answer to an abandoned dial is dropped.
    assert!(!m.handle_dial_result(t + 1, dials[0].1, Ok(())));
    assert!(!m.is_connected());
    // The current one is taken.
    assert!(m.handle_dial_result(t + 1, dials[5].1, Ok(())));
    assert!(m.is_connected());
}

#[test]
fn a_boot_asked_again_while_under_way_joins_it_instead_of_booting_twice() {
    use krrish_core::ha::BootReason;
    let mut m = connected(0);
    m.handle_lease_result(0, 0, Ok(()));
    drain(&mut m);
    let vms = vm_1();
    let boot = |id| Frame::Command {
        id,
        command: AgentCommand::BootVm {
            vm: vms.clone(),
            reason: BootReason::Failover,
            guest: Default::default(),
            serial: 0,
        },
    };
    m.handle_frame(10, 1, boot(7));
    m.handle_frame(20, 1, boot(8));
    let runs: Vec<u64> = drain(&mut m)
        .into_iter()
        .filter_map(|o| match o {
            AgentOutput::RunCommand { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(runs, vec![7], "one boot runs");
    m.handle_command_done(30, 7, Ok(()));
    let done: Vec<u64> = drain(&mut m)
        .into_iter()
        .filter_map(|o| match o {
            AgentOutput::Send(Frame::CommandDone {
                id,
                outcome: Ok(()),
            }) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![7, 8], "both asks answered by the one boot");
    // Once it ended, a new boot of the VM runs again.
    m.handle_frame(40, 1, boot(9));
    assert!(drain(&mut m).contains(&AgentOutput::RunCommand {
        id: 9,
        command: AgentCommand::BootVm {
            vm: vms.clone(),
            reason: BootReason::Failover,
            guest: Default::default(),
            serial: 0,
        }
    }));
}

/// The id of the one command a step asked the driver to run, and what.
fn the_run(out: &[AgentOutput]) -> (u64, AgentCommand) {
    let runs: Vec<(u64, AgentCommand)> = out
        .iter()
        .filter_map(|o| match o {
            AgentOutput::RunCommand { id, command } => Some((*id, command.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 1, "{out:?}");
    runs.into_iter().next().expect("one")
}

fn answered(out: &[AgentOutput]) -> Vec<(u64, bool)> {
    out.iter()
        .filter_map(|o| match o {
            AgentOutput::Send(Frame::CommandDone { id, outcome }) => Some((*id, outcome.is_ok())),
            _ => None,
        })
        .collect()
}

#[test]
fn guest_changes_run_one_at_a_time_the_latest_only_answered_once_in_place() {
    use krrish_cloud::network::{GuestNetwork, GuestNic};
    use krrish_cloud::GuestConfig;
    use krrish_core::ha::BootReason;
    let mut m = connected(0);
    m.handle_lease_result(0, 0, Ok(()));
    drain(&mut m);
    let net = |last: u8| GuestConfig {
        network: GuestNetwork {
            nics: vec![GuestNic {
                vxnet: krrish_cloud::Name::parse("vxnet", "front").unwrap(),
                vni: 1000,
                ip: std::net::Ipv4Addr::new(10, 10, 1, last),
                prefix: 24,
                gateway: None,
            }],
            eips: Vec::new(),
            routes: Vec::new(),
        },
        volumes: Vec::new(),
        disk_ops: Vec::new(),
        root_disk: 0,
    };
    let set = |id, last| Frame::Command {
        id,
        command: AgentCommand::SetGuest {
            vm: vm_1().id,
            guest: net(last),
        },
    };
    m.handle_frame(
        10,
        1,
        Frame::Command {
            id: 5,
            command: AgentCommand::BootVm {
                vm: vm_1(),
                reason: BootReason::Create,
                guest: GuestConfig::default(),
                serial: 0,
            },
        },
    );
    drain(&mut m);
    m.handle_frame(20, 1, set(6, 10));
    m.handle_frame(30, 1, set(7, 11));
    let out = drain(&mut m);
    // Both wait for the boot: nothing runs, nobody is answered (an answer
    // means the change is in place).
    assert!(
        !out.iter()
            .any(|o| matches!(o, AgentOutput::RunCommand { .. })),
        "{out:?}"
    );
    assert_eq!(answered(&out), vec![]);
    m.handle_command_done(40, 5, Ok(()));
    let out = drain(&mut m);
    assert_eq!(answered(&out), vec![(5, true)], "the boot is answered");
    let (own, command) = the_run(&out);
    assert_eq!(
        command,
        AgentCommand::SetGuest {
            vm: vm_1().id,
            guest: net(11)
        },
        "the latest change runs once the boot is done"
    );
    // A change asked while that one runs waits for it.
    m.handle_frame(45, 1, set(8, 12));
    let out = drain(&mut m);
    assert!(
        !out.iter()
            .any(|o| matches!(o, AgentOutput::RunCommand { .. })),
        "{out:?}"
    );
    m.handle_command_done(50, own, Ok(()));
    let out = drain(&mut m);
    assert_eq!(
        answered(&out),
        vec![(6, true), (7, true)],
        "the superseded change is answered with the one that replaced it"
    );
    let (next, command) = the_run(&out);
    assert_eq!(
        command,
        AgentCommand::SetGuest {
            vm: vm_1().id,
            guest: net(12)
        }
    );
    m.handle_command_done(60, next, Err(DriverError::Unavailable("no".into())));
    assert_eq!(answered(&drain(&mut m)), vec![(8, false)]);
    // With nothing under way, a change runs at once under its own id.
    m.handle_frame(70, 1, set(9, 13));
    assert_eq!(the_run(&drain(&mut m)).0, 9);
    m.handle_command_done(80, 9, Ok(()));
    assert_eq!(answered(&drain(&mut m)), vec![(9, true)]);
}

#[test]
fn without_a_lease_no_guest_boots_and_the_report_says_so() {
    use krrish_core::ha::BootReason;
    let mut m = connected(0);
    m.handle_lease_result(0, 0, Ok(()));
    for t in [5_000, 10_000, 15_000, 20_000, 25_000] {
        m.handle_lease_result(t, t, Err("lease service unreachable".into()));
    }
    drain(&mut m);
    let boot = Frame::Command {
        id: 3,
        command: AgentCommand::BootVm {
            vm: vm_1(),
            reason: BootReason::Restore,
            guest: Default::default(),
            serial: 0,
        },
    };
    // The lease ran out at 30 s (asked at 0, 30 s long).
    m.handle_frame(31_000, 1, boot.clone());
    let out = drain(&mut m);
    assert!(
        !out.iter()
            .any(|o| matches!(o, AgentOutput::RunCommand { .. })),
        "{out:?}"
    );
    assert!(
        out.iter().any(|o| matches!(o,
            AgentOutput::Send(Frame::CommandDone { id: 3, outcome: Err(e) })
                if e.to_string().contains("holds no DFS lease"))),
        "{out:?}"
    );
    m.handle_status(
        31_000,
        HostStatus {
            bonds: [krrish_core::BondHealth::Ok; 3],
            running: vec![],
            migrating_out: vec![],
        },
    );
    assert!(drain(&mut m).iter().any(|o| matches!(o,
        AgentOutput::Send(Frame::Heartbeat { report }) if !report.holds_lease)));
    // Renewed again: it boots.
    m.handle_lease_result(32_000, 32_000, Ok(()));
    m.handle_frame(32_000, 1, boot);
    assert!(drain(&mut m)
        .iter()
        .any(|o| matches!(o, AgentOutput::RunCommand { id: 3, .. })));
}

#[test]
fn self_fences_when_renewals_keep_failing() {
    let mut m = AgentMachine::new(0, AgentConfig::new("hv-01".into(), "c:1".into()), 1);
    m.handle_timeout(0);
    m.handle_lease_result(0, 0, Ok(()));
    for t in [5_000, 10_000, 15_000, 20_000] {
        m.handle_timeout(t);
        m.handle_lease_result(t, t, Err("storage down".into()));
    }
    drain(&mut m);
    let out = run(&mut m, 25_000);
    assert!(out.contains(&AgentOutput::SelfFence), "{out:?}");
}

#[test]
fn a_failed_boot_sent_again_is_answered_again_not_run_again() {
    use krrish_core::ha::BootReason;
    let mut m = connected(0);
    m.handle_lease_result(0, 0, Ok(()));
    drain(&mut m);
    let boot = |id, serial| Frame::Command {
        id,
        command: AgentCommand::BootVm {
            vm: vm_1(),
            reason: BootReason::Create,
            guest: Default::default(),
            serial,
        },
    };
    m.handle_frame(10, 1, boot(7, 3));
    assert_eq!(the_run(&drain(&mut m)).0, 7);
    let why = DriverError::Failed("the guest did not come up".into());
    m.handle_command_done(20, 7, Err(why.clone()));
    drain(&mut m);
    // Boot 3 again (its answer was lost): the same failure, nothing run.
    m.handle_frame(30, 1, boot(8, 3));
    let out = drain(&mut m);
    assert!(
        out.iter()
            .all(|o| !matches!(o, AgentOutput::RunCommand { .. })),
        "{out:?}"
    );
    assert!(out.contains(&AgentOutput::Send(Frame::CommandDone {
        id: 8,
        outcome: Err(why.clone()),
    })));
    // Boot 4 is a new boot: it runs; and succeeding forgets the failure.
    m.handle_frame(40, 1, boot(9, 4));
    assert_eq!(the_run(&drain(&mut m)).0, 9);
    m.handle_command_done(50, 9, Ok(()));
    drain(&mut m);
    m.handle_frame(60, 1, boot(10, 4));
    assert_eq!(
        the_run(&drain(&mut m)).0,
        10,
        "a boot that worked is idempotent on the host"
    );
    // A controller that tells no serial (0) always gets a boot.
    m.handle_command_done(70, 10, Err(why.clone()));
    drain(&mut m);
    m.handle_frame(80, 1, boot(11, 0));
    assert_eq!(the_run(&drain(&mut m)).0, 11);
}

/// An agent whose first renewal (at 0) worked.
fn renewed_at_start() -> AgentMachine {
    let mut m = AgentMachine::new(0, AgentConfig::new("hv-01".into(), "c:1".into()), 1);
    m.handle_timeout(0);
    m.handle_lease_result(0, 0, Ok(()));
    drain(&mut m);
    m
}

/// Runs the machine's timers until it asks for a renewal (by `to`): when.
fn next_renewal(m: &mut AgentMachine, to: u64) -> Option<u64> {
    for _ in 0..10_000 {
        let at = m.poll_timeout();
        if at > to {
            return None;
        }
        m.handle_timeout(at);
        if drain(m).contains(&AgentOutput::RenewLease) {
            return Some(at);
        }
    }
    None
}

#[test]
fn a_failed_renewal_is_asked_again_after_a_second_not_the_next_interval() {
    let mut m = renewed_at_start();
    // The 5 s renewal fails at once (a service down for that moment) ...
    assert_eq!(next_renewal(&mut m, 5_000), Some(5_000));
    m.handle_lease_result(5_010, 5_000, Err("lease service down".into()));
    // ... and is asked again within 0.5–1.5 s (1 s, spread), not at 10 s.
    let retry = next_renewal(&mut m, 9_000).expect("a retry before the next interval");
    assert!((5_510..6_510).contains(&retry), "retry at {retry}");
    // That one works: back on a 5 s cadence from it.
    m.handle_lease_result(retry + 10, retry, Ok(()));
    assert_eq!(next_renewal(&mut m, retry + 6_000), Some(retry + 5_000));
}

#[test]
fn failed_renewals_are_retried_at_spread_instants_not_a_fixed_spacing() {
    // A service down on a period that divides a fixed retry spacing would
    // catch every retry; spread ones differ from one to the next.
    let mut m = renewed_at_start();
    let mut now = next_renewal(&mut m, 5_000).expect("the 5 s renewal");
    let mut gaps = Vec::new();
    for _ in 0..8 {
        m.handle_lease_result(now, now, Err("lease service down".into()));
        let next = next_renewal(&mut m, now + 5_000).expect("a retry");
        gaps.push(next - now);
        now = next;
    }
    assert!(gaps.iter().all(|g| (500..1_500).contains(g)), "{gaps:?}");
    gaps.sort_unstable();
    gaps.dedup();
    assert!(
        gaps.len() >= 6,
        "retries at too few distinct spacings: {gaps:?}"
    );
}

/// A connection the far end closes before saying anything (the API's port,
/// or a controller turning away a second agent for the same host) backs
/// off as a failed dial does, once explained — it was redialled at once,
/// thousands of times a second.
#[test]
fn a_connection_closed_before_the_controller_answered_backs_off() {
    let mut m = connected(0);
    let mut dials = Vec::new();
    let mut explained = 0;
    let mut now = 0;
    for _ in 0..6 {
        m.handle_closed(now, m.connected_epoch().unwrap());
        let out = drain(&mut m);
        explained += out
            .iter()
            .filter(|o| matches!(o, AgentOutput::Trace(t) if t.contains("closed before the controller answered")))
            .count();
        now = m.poll_timeout();
        m.handle_timeout(now);
        let e = dial_epoch(&drain(&mut m)).expect("dials again");
        dials.push(now);
        assert!(m.handle_dial_result(now, e, Ok(())));
        drain(&mut m);
    }
    assert_eq!(explained, 1, "explained once");
    let gaps: Vec<u64> = dials.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(dials[0] > 0, "the first redial waits: {dials:?}");
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "backs off: {gaps:?}");
    // A controller that answers forgives the failures: a later close
    // redials at once.
    m.handle_frame(now, m.connected_epoch().unwrap(), Frame::HeartbeatAck);
    m.handle_closed(now + 1, m.connected_epoch().unwrap());
    drain(&mut m);
    assert_eq!(m.poll_timeout(), now + 1);
}
