//! Load-balancer health checks on the controller's timer: due checks ask
//! the shell for one data-plane read at a time, the answer moves backends
//! (saved only when one moves), a stale answer is ignored, an unanswered
//! read is asked again, and a restored controller checks from its new
//! clock.

use krrish_cloud::network::lb::{FabricReport, Health};
use krrish_cloud::{CloudRequest, Name};
use krrish_controller::{
    ControllerMachine, ControllerOutput, ControllerSnapshot, FABRIC_READ_TIMEOUT_MS,
};
use krrish_core::ha::{HaConfig, HaManager};
use krrish_core::{HostId, VmId};
use krrish_sim::demo;
use krrish_wire::{ApiRequest, Frame};

const OPERATOR: u64 = 9;

fn call(m: &mut ControllerMachine, now: u64, json: &str) -> Vec<ControllerOutput> {
    let request: CloudRequest = serde_json::from_str(json).unwrap();
    let request = ApiRequest::Cloud(request);
    m.handle_frame(now, OPERATOR, Frame::Request { id: 1, request });
    let outs = drain(m);
    let ok = outs.iter().any(|o| {
        matches!(
            o,
            ControllerOutput::SendTo {
                frame: Frame::Response { result: Ok(_), .. },
                ..
            }
        )
    });
    assert!(ok, "{json}: {outs:?}");
    outs
}

fn drain(m: &mut ControllerMachine) -> Vec<ControllerOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn reads(outs: &[ControllerOutput]) -> Vec<(u64, Vec<VmId>)> {
    outs.iter()
        .filter_map(|o| match o {
            ControllerOutput::ReadFabric { read, vms } => Some((*read, vms.clone())),
            _ => None,
        })
        .collect()
}

fn traces(outs: &[ControllerOutput]) -> Vec<&str> {
    outs.iter()
        .filter_map(|o| match o {
            ControllerOutput::Trace(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

fn saves(outs: &[ControllerOutput]) -> usize {
    outs.iter()
        .filter(|o| matches!(o, ControllerOutput::Save { .. }))
        .count()
}

fn health(m: &ControllerMachine) -> Health {
    let lb = m
        .cloud()
        .network
        .load_balancer(&Name::parse("lb", "lb-1").unwrap())
        .unwrap();
    lb.listeners[&80].backends[&VmId::new("vm-01-01")].health
}

/// vm-01-01 on a routed vxnet, behind an external LB's listener 80
/// (checks every 2 s, 2 in, 3 out), its first check due at 1 s; and the
/// state saved then.
fn machine() -> (ControllerMachine, ControllerSnapshot) {
    let (hosts, vms) = demo::cluster(2, 1, 1);
    let mut m = ControllerMachine::durable(0, HaManager::new(0, HaConfig::default(), hosts, vms));
    m.handle_opened(OPERATOR);
    m.handle_frame(0, OPERATOR, Frame::OperatorHello);
    for json in [
        r#"{"action":"create-router","name":"r1"}"#,
        r#"{"action":"create-vxnet","name":"net-1"}"#,
        r#"{"action":"join-router","router":"r1","vxnet":"net-1"}"#,
        r#"{"action":"join-vxnet","vxnet":"net-1","vm":"vm-01-01"}"#,
        r#"{"action":"allocate-eip","name":"eip-1","kind":"internet"}"#,
        r#"{"action":"create-load-balancer","name":"lb-1","kind":"external","eip":"eip-1"}"#,
        r#"{"action":"add-listener","lb":"lb-1","port":80}"#,
    ] {
        call(&mut m, 500, json);
    }
    let outs = call(
        &mut m,
        1_000,
        r#"{"action":"add-backend","lb":"lb-1","listener":80,"vm":"vm-01-01"}"#,
    );
    let saved = outs
        .into_iter()
        .find_map(|o| match o {
            ControllerOutput::Save { snapshot, .. } => Some(*snapshot),
            _ => None,
        })
        .expect("the call is saved");
    (m, saved)
}

fn up_on(host: &str) -> FabricReport {
    let mut r = FabricReport::default();
    r.running_on
        .insert(VmId::new("vm-01-01"), vec![HostId::new(host)]);
    r.vm_network_up.insert(HostId::new(host));
    r
}

#[test]
fn checks_run_on_the_timer_one_read_at_a_time() {
    let (mut m, _) = machine();
    assert_eq!(m.poll_timeout(), Some(1_000), "the first check is due now");
    m.handle_timeout(1_000);
    let outs = drain(&mut m);
    assert_eq!(reads(&outs), [(1, vec![VmId::new("vm-01-01")])]);
    // While it is in flight nothing more is asked; the timer waits for its
    // time-out, not for the check that is already due.
    assert!(m.poll_timeout().unwrap() > 1_000);
    m.handle_timeout(1_500);
    assert!(reads(&drain(&mut m)).is_empty());
    // A stale answer is ignored; the right one counts one good check.
    m.handle_fabric_report(1_000, 7, Ok(up_on("hv-01")));
    m.handle_fabric_report(1_000, 1, Ok(up_on("hv-01")));
    let outs = drain(&mut m);
    assert_eq!(health(&m), Health::New);
    assert_eq!(saves(&outs), 0, "counting is not saved: {outs:?}");
    assert_eq!(m.poll_timeout(), Some(3_000));
    // The second good check puts it in service, and that is saved.
    m.handle_timeout(3_000);
    let (read, _) = reads(&drain(&mut m))[0].clone();
    m.handle_fabric_report(3_000, read, Ok(up_on("hv-01")));
    let outs = drain(&mut m);
    assert_eq!(health(&m), Health::InService);
    assert_eq!(
        traces(&outs),
        ["load balancer lb-1 listener 80: backend vm-01-01 in service after 2 good checks"]
    );
    assert_eq!(saves(&outs), 1);

    // A read never answered is asked again after its time-out.
    m.handle_timeout(5_000);
    assert_eq!(reads(&drain(&mut m)).len(), 1);
    m.handle_timeout(5_000 + FABRIC_READ_TIMEOUT_MS - 1);
    assert!(reads(&drain(&mut m)).is_empty());
    m.handle_timeout(5_000 + FABRIC_READ_TIMEOUT_MS);
    let outs = drain(&mut m);
    let said = traces(&outs);
    assert!(
        said.iter().any(|l| l.contains("unanswered after")),
        "{said:?}"
    );
    let (read, _) = reads(&outs)[0].clone();
    // A failed read judges nothing.
    m.handle_fabric_report(15_000, read, Err("probe service down".into()));
    let outs = drain(&mut m);
    assert_eq!(
        traces(&outs),
        ["health checks: cannot read the data plane: probe service down"]
    );
    assert_eq!(health(&m), Health::InService);
    // ... and puts the checks off an interval, rather than asking again at
    // once.
    m.handle_timeout(15_000);
    assert!(reads(&drain(&mut m)).is_empty());

    // Three reads finding it nowhere take it out.
    for t in [17_000, 19_000, 21_000] {
        m.handle_timeout(t);
        let (read, _) = reads(&drain(&mut m))[0].clone();
        m.handle_fabric_report(
            t,
            read,
            Ok(FabricReport::read(
                &FabricReport::default(),
                &[VmId::new("vm-01-01")],
            )),
        );
    }
    let outs = drain(&mut m);
    assert_eq!(health(&m), Health::OutOfService, "{outs:?}");
}

#[test]
fn a_restored_controller_checks_from_its_new_clock_and_believes_its_agents() {
    let (mut m, snapshot) = machine();
    m.handle_timeout(1_000);
    assert_eq!(reads(&drain(&mut m)).len(), 1);
    let (hosts, _) = demo::cluster(2, 1, 1);
    let mut back = ControllerMachine::start(50, HaConfig::default(), hosts, vec![], Some(snapshot));
    drain(&mut back);
    assert!(back.poll_timeout().unwrap() <= 50);
    back.handle_timeout(50);
    let asked = reads(&drain(&mut back));
    assert_eq!(asked.len(), 1, "a fresh read, not the old one's answer");
    // The daemon's answer: where the core has the VM running, the host up.
    let mut want = up_on("hv-01");
    want.uplink_up.insert(HostId::new("hv-01"));
    assert_eq!(back.believed_fabric(&asked[0].1), want);
}
