//! The hosts' data plane follows the cloud's records: the host running a
//! VM is told the VM's network when it joins a vxnet, told again when its
//! agent reconnects, not told again for nothing, and told again after a
//! failed telling.

use krrish_cloud::network::GuestNetwork;
use krrish_cloud::CloudRequest;
use krrish_cloud::GuestConfig;
use krrish_controller::{ControllerMachine, ControllerOutput};
use krrish_core::ha::{DriverError, HaConfig, HaManager};
use krrish_core::{HostId, VmId};
use krrish_sim::demo;
use krrish_wire::{AgentCommand, ApiRequest, Frame};

const OPERATOR: u64 = 9;
const AGENT: u64 = 1;

fn drain(m: &mut ControllerMachine) -> Vec<ControllerOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn call(m: &mut ControllerMachine, now: u64, json: &str) -> Vec<ControllerOutput> {
    let request = ApiRequest::Cloud(serde_json::from_str::<CloudRequest>(json).unwrap());
    m.handle_frame(now, OPERATOR, Frame::Request { id: 1, request });
    drain(m)
}

/// (command id, vm, network) of every SetNetwork sent to the agent.
fn told(outs: &[ControllerOutput]) -> Vec<(u64, VmId, GuestNetwork)> {
    outs.iter()
        .filter_map(|o| match o {
            ControllerOutput::SendTo {
                conn,
                frame:
                    Frame::Command {
                        id,
                        command: AgentCommand::SetGuest { vm, guest },
                    },
            } if *conn == AGENT => Some((*id, vm.clone(), guest.network.clone())),
            _ => None,
        })
        .collect()
}

fn hello(m: &mut ControllerMachine, now: u64, conn: u64, host: &HostId) -> Vec<ControllerOutput> {
    m.handle_opened(conn);
    m.handle_frame(
        now,
        conn,
        Frame::AgentHello {
            host: host.clone(),
            boot_id: 1,
        },
    );
    drain(m)
}

#[test]
fn a_vm_joining_a_vxnet_has_its_host_told_and_told_again_only_when_needed() {
    let (hosts, vms) = demo::cluster(2, 1, 1);
    let host = hosts[0].id.clone();
    let vm = vms.iter().find(|v| v.home == host).unwrap().id.clone();
    let mut m = ControllerMachine::new(HaManager::new(0, HaConfig::default(), hosts, vms));
    m.handle_opened(OPERATOR);
    m.handle_frame(0, OPERATOR, Frame::OperatorHello);
    let outs = hello(&mut m, 0, AGENT, &host);
    assert!(
        told(&outs).is_empty(),
        "a VM with no interfaces: nothing to tell"
    );

    call(
        &mut m,
        10,
        r#"{"action": "create-vxnet", "name": "front", "network": "10.10.1.0"}"#,
    );
    let outs = call(
        &mut m,
        20,
        &format!(
            r#"{{"action": "join-vxnet", "vxnet": "front", "vm": "{vm}", "ip": "10.10.1.10"}}"#
        ),
    );
    let t = told(&outs);
    assert_eq!(t.len(), 1, "{outs:?}");
    let (id, who, net) = &t[0];
    assert_eq!(who, &vm);
    assert_eq!(net.nics.len(), 1);
    assert_eq!(net.nics[0].ip.to_string(), "10.10.1.10");
    assert_eq!(
        net.nics[0].vni,
        m.cloud().network.vxnets().next().unwrap().vni
    );

    // An unrelated call tells nobody again.
    let outs = call(&mut m, 30, r#"{"action": "create-router", "name": "r1"}"#);
    assert!(told(&outs).is_empty(), "{outs:?}");

    // The agent could not apply it: told again at the next input.
    m.handle_frame(
        40,
        AGENT,
        Frame::CommandDone {
            id: *id,
            outcome: Err(DriverError::Failed("netlink said no".into())),
        },
    );
    let outs = drain(&mut m);
    assert_eq!(told(&outs).len(), 1, "{outs:?}");

    // A new agent process (same host, new connection) is told again.
    let outs = hello(&mut m, 50, AGENT + 10, &host);
    let again: Vec<_> = outs
        .iter()
        .filter(|o| {
            matches!(
                o,
                ControllerOutput::SendTo {
                    conn,
                    frame: Frame::Command {
                        command: AgentCommand::SetGuest { .. },
                        ..
                    },
                } if *conn == AGENT + 10
            )
        })
        .collect();
    assert_eq!(again.len(), 1, "{outs:?}");

    // Leaving the vxnet tells the empty network.
    let outs = call(
        &mut m,
        60,
        &format!(r#"{{"action": "leave-vxnet", "vxnet": "front", "vm": "{vm}"}}"#),
    );
    let left: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            ControllerOutput::SendTo {
                frame:
                    Frame::Command {
                        command: AgentCommand::SetGuest { guest, .. },
                        ..
                    },
                ..
            } => Some(guest.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(left, vec![GuestConfig::default()], "{outs:?}");
}
