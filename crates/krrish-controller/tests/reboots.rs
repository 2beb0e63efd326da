//! A reboot goes to the VM's host once: refused while the host cannot be
//! reached, and a reboot lost with its connection is said to be lost.

use krrish_controller::{ControllerMachine, ControllerOutput};
use krrish_core::ha::{HaConfig, HaManager};
use krrish_sim::demo;
use krrish_wire::{AgentCommand, ApiRequest, Frame};

const OPERATOR: u64 = 9;

fn drain(m: &mut ControllerMachine) -> Vec<ControllerOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn traces(outs: &[ControllerOutput]) -> Vec<String> {
    outs.iter()
        .filter_map(|o| match o {
            ControllerOutput::Trace(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_reboot_is_refused_while_the_host_is_unreachable_and_a_lost_one_is_said() {
    let (hosts, vms) = demo::cluster(2, 1, 1);
    let host = hosts[0].id.clone();
    let vm = vms.iter().find(|v| v.home == host).unwrap().id.clone();
    let mut m = ControllerMachine::new(HaManager::new(0, HaConfig::default(), hosts, vms));
    m.handle_opened(OPERATOR);
    m.handle_frame(0, OPERATOR, Frame::OperatorHello);
    let hello = |m: &mut ControllerMachine, conn| {
        m.handle_opened(conn);
        m.handle_frame(
            10,
            conn,
            Frame::AgentHello {
                host: host.clone(),
                boot_id: 1,
            },
        );
        drain(m)
    };
    let reboot = |m: &mut ControllerMachine| {
        let request = ApiRequest::RebootInstance { vm: vm.clone() };
        m.handle_frame(20, OPERATOR, Frame::Request { id: 1, request });
        drain(m)
    };
    let sent_to = |outs: &[ControllerOutput]| {
        outs.iter()
            .filter_map(|o| match o {
                ControllerOutput::SendTo {
                    conn,
                    frame:
                        Frame::Command {
                            command: AgentCommand::RebootVm { .. },
                            ..
                        },
                } => Some(*conn),
                _ => None,
            })
            .collect::<Vec<_>>()
    };

    // No agent: refused, naming the host.
    let outs = reboot(&mut m);
    assert!(sent_to(&outs).is_empty());
    let t = traces(&outs).join("\n");
    assert!(
        t.contains(&format!(
            "api: refused: vm {vm} runs on {host}, whose agent is not connected"
        )),
        "{t}"
    );

    // Connected: sent. The connection is replaced before the answer: the
    // reboot is said to be lost, not silently dropped.
    hello(&mut m, 1);
    assert_eq!(sent_to(&reboot(&mut m)), [1]);
    let t = traces(&hello(&mut m, 2)).join("\n");
    assert!(
        t.contains(&format!(
            "reboot of {vm} on {host} lost with the connection"
        )),
        "{t}"
    );
    // And on a close.
    assert_eq!(sent_to(&reboot(&mut m)), [2]);
    m.handle_closed(30, 2);
    let t = traces(&drain(&mut m)).join("\n");
    assert!(t.contains("lost with the connection"), "{t}");
}
