//! The hosts' data plane follows the cloud's records: the host running a
//! VM is told the VM's network when it joins a vxnet, told again when its
//! agent reconnects, not told again for nothing, and told again after a
//! failed telling, with back-off. A detached volume is available only once
//! the VM's host confirms the unplug.

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

    // The agent could not apply it: told again after a back-off (0.5 s,
    // then doubling), not at every input — a host refusing a change is
    // not asked thousands of times a second.
    let refuse = |m: &mut ControllerMachine, now, id| {
        m.handle_frame(
            now,
            AGENT,
            Frame::CommandDone {
                id,
                outcome: Err(DriverError::Failed("netlink said no".into())),
            },
        );
        drain(m)
    };
    let outs = refuse(&mut m, 40, *id);
    assert!(told(&outs).is_empty(), "{outs:?}");
    assert!(m.poll_timeout().is_some_and(|t| t <= 540));
    m.handle_timeout(539);
    assert!(told(&drain(&mut m)).is_empty(), "not before 0.5 s");
    m.handle_timeout(540);
    let t = told(&drain(&mut m));
    assert_eq!(t.len(), 1, "told again at 0.5 s");
    refuse(&mut m, 600, t[0].0);
    m.handle_timeout(1_599);
    assert!(told(&drain(&mut m)).is_empty(), "the wait doubles");
    m.handle_timeout(1_600);
    assert_eq!(told(&drain(&mut m)).len(), 1, "told again at 1 s");

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

/// The command ids of every SetGuest sent, with its volumes.
fn volumes_told(outs: &[ControllerOutput]) -> Vec<(u64, Vec<String>)> {
    outs.iter()
        .filter_map(|o| match o {
            ControllerOutput::SendTo {
                frame:
                    Frame::Command {
                        id,
                        command: AgentCommand::SetGuest { guest, .. },
                    },
                ..
            } => Some((
                *id,
                guest.volumes.iter().map(|v| v.name.to_string()).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn volume_status(m: &ControllerMachine, name: &str) -> String {
    let n = krrish_cloud::Name::parse("volume", name).unwrap();
    m.cloud()
        .storage
        .describe_volume(&n)
        .unwrap()
        .status
        .as_str()
        .to_string()
}

/// The agent on `conn` answers command `id`: done.
fn done_on(m: &mut ControllerMachine, now: u64, conn: u64, id: u64) {
    m.handle_frame(
        now,
        conn,
        Frame::CommandDone {
            id,
            outcome: Ok(()),
        },
    );
    drain(m);
}

fn done(m: &mut ControllerMachine, now: u64, id: u64) {
    done_on(m, now, AGENT, id);
}

#[test]
fn a_detached_volume_is_available_only_once_the_vms_host_confirms_the_unplug() {
    let (hosts, vms) = demo::cluster(2, 1, 1);
    let host = hosts[0].id.clone();
    let mut m = ControllerMachine::new(HaManager::new(0, HaConfig::default(), hosts, vms));
    m.handle_opened(OPERATOR);
    m.handle_frame(0, OPERATOR, Frame::OperatorHello);
    hello(&mut m, 0, AGENT, &host);
    heartbeat(&mut m, 10);
    call(
        &mut m,
        20,
        r#"{"action": "create-image", "name": "tiny", "size_gib": 1}"#,
    );
    // A VM launched from the image (volumes attach to VMs with a root
    // disk), booted by the agent.
    let vm = VmId::new("app-1");
    let spec = krrish_core::VmSpec {
        id: vm.clone(),
        home: host.clone(),
        demand: krrish_core::Resources {
            vcpus: 1,
            memory_mib: 1024,
            disk_gib: 20,
        },
        ha: krrish_core::HaPolicy::Restart,
        priority: 0,
        passthrough_devices: Vec::new(),
        failback: true,
        restart_delay_ms: 0,
    };
    let request = ApiRequest::RunInstance {
        vm: spec,
        host: Some(host.clone()),
        image: Some("tiny".into()),
        vxnet: None,
    };
    m.handle_frame(30, OPERATOR, Frame::Request { id: 2, request });
    let boot = drain(&mut m)
        .iter()
        .find_map(|o| match o {
            ControllerOutput::SendTo {
                frame:
                    Frame::Command {
                        id,
                        command: AgentCommand::BootVm { .. },
                    },
                ..
            } => Some(*id),
            _ => None,
        })
        .expect("booted");
    done(&mut m, 40, boot);
    call(
        &mut m,
        100_002,
        r#"{"action": "create-volume", "name": "data-1", "size_gib": 1}"#,
    );
    let outs = call(
        &mut m,
        100_003,
        &format!(r#"{{"action": "attach-volume", "volume": "data-1", "vm": "{vm}"}}"#),
    );
    let t = volumes_told(&outs);
    assert_eq!(t.len(), 1, "{outs:?}");
    let attach_id = t[0].0;
    assert_eq!(volume_status(&m, "data-1"), "in-use");

    let outs = call(
        &mut m,
        100_010,
        &format!(r#"{{"action": "detach-volume", "volume": "data-1", "vm": "{vm}"}}"#),
    );
    let t = volumes_told(&outs);
    assert_eq!(t.len(), 1, "{outs:?}");
    let (detach_id, volumes) = t[0].clone();
    assert!(volumes.is_empty());
    assert_eq!(volume_status(&m, "data-1"), "detaching");
    // The answer to the telling sent before the detach confirms nothing.
    done(&mut m, 100_020, attach_id);
    assert_eq!(volume_status(&m, "data-1"), "detaching");
    // Its connection lost, the host is told again when it is back, and
    // that telling's answer frees the volume.
    m.handle_closed(100_030, AGENT);
    drain(&mut m);
    done(&mut m, 100_040, detach_id);
    assert_eq!(
        volume_status(&m, "data-1"),
        "detaching",
        "answered on no connection"
    );
    let outs = hello(&mut m, 100_050, AGENT + 1, &host);
    let t = volumes_told(&outs);
    assert_eq!(t.len(), 1, "told again on reconnect: {outs:?}");
    done_on(&mut m, 100_060, AGENT + 1, t[0].0);
    assert_eq!(volume_status(&m, "data-1"), "available");
}

fn heartbeat(m: &mut ControllerMachine, now: u64) {
    m.handle_frame(
        now,
        AGENT,
        Frame::Heartbeat {
            report: krrish_core::ha::HostReport {
                boot_id: 1,
                bonds: [krrish_core::BondHealth::Ok; 3],
                running: Vec::new(),
                booting: Vec::new(),
                migrating_out: Vec::new(),
                holds_lease: true,
            },
        },
    );
    drain(m);
}
