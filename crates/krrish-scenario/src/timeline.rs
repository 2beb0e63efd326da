//! One timeline item of a scenario file turned into the actions it stands
//! for (faults, API calls, guest writes), each checked against the
//! cluster: unknown hosts and VMs, a `for` where it means nothing, a bad
//! NIC number or loss rate — errors name the line and the field.

use crate::cloud_item::{cloud_request, Item};
use crate::cluster::Cluster;
use crate::format::Step;
use crate::load::{host_ref, vm_ref, Action, LoadError, Source, TimedAction};
use krrish_core::{HostId, Resources, VmId, VmSpec};
use krrish_sim::world::PathState;
use krrish_sim::Fault;
use krrish_wire::ApiRequest;
use std::collections::BTreeSet;

fn nic(src: &Source<'_>, at: Option<(usize, usize)>, n: usize) -> Result<usize, LoadError> {
    if n > 1 {
        return Err(src.error(at, format!("nic: a bond has members 0 and 1, not {n}")));
    }
    Ok(n)
}

/// `for` makes sense only on the fault that starts something.
fn no_duration(
    src: &Source<'_>,
    at: Option<(usize, usize)>,
    key: &str,
    given: bool,
) -> Result<(), LoadError> {
    if given {
        return Err(src.error(
            src.find("for", "").or(at),
            format!("{key}: `for` belongs on the fault that starts the outage (nic_down, bond_down, cut, stall, lossy), not on {key}"),
        ));
    }
    Ok(())
}

/// The most boots a `fail_boots` item may fail (more than any retry
/// policy tries).
const FAIL_BOOTS_MAX: u32 = 1000;

/// A fault that names only a host (crash, repair, …).
type HostFault = fn(HostId) -> Fault;

pub(crate) fn step_action(
    src: &Source<'_>,
    item: Item,
    at_ms: u64,
    s: Step,
    cluster: &Cluster,
    known_vms: &mut BTreeSet<VmId>,
) -> Result<Vec<TimedAction>, LoadError> {
    let line = item.line;
    let at = Some((line, 1));
    let mut actions: Vec<Action> = Vec::new();
    // A fault given `for: D` is undone D later by this one.
    let mut undo: Option<(u64, Fault)> = None;
    let dur = |key: &str, d: crate::duration::Dur| {
        if d.ms() == 0 {
            Err(src.error(at, format!("{key}.for: expected a duration after 0s")))
        } else {
            Ok(d.ms())
        }
    };
    let h = |key: &str, name: &str| host_ref(src, key, name, cluster);
    // Faults named by a host alone.
    let by_host: [(&str, &Option<String>, HostFault); 7] = [
        ("crash", &s.crash, Fault::Crash),
        ("power_loss", &s.power_loss, Fault::PowerLoss),
        ("bmc_down", &s.bmc_down, Fault::BmcDown),
        ("bmc_up", &s.bmc_up, Fault::BmcUp),
        ("partition", &s.partition, Fault::Partition),
        ("heal", &s.heal, Fault::Heal),
        ("repair", &s.repair, Fault::Repair),
    ];
    for (key, name, fault) in by_host {
        if let Some(x) = name {
            actions.push(Action::Fault(fault(h(key, x)?)));
        }
    }
    if let Some(x) = &s.nic_down {
        let (host, bond, nic) = (h("host", &x.host)?, x.bond, nic(src, at, x.nic)?);
        if let Some(d) = x.duration {
            let up = Fault::NicUp {
                host: host.clone(),
                bond,
                nic,
            };
            undo = Some((dur("nic_down", d)?, up));
        }
        actions.push(Action::Fault(Fault::NicDown { host, bond, nic }));
    }
    if let Some(x) = &s.nic_up {
        no_duration(src, at, "nic_up", x.duration.is_some())?;
        actions.push(Action::Fault(Fault::NicUp {
            host: h("host", &x.host)?,
            bond: x.bond,
            nic: nic(src, at, x.nic)?,
        }));
    }
    if let Some(x) = &s.bond_down {
        let (host, bond) = (h("host", &x.host)?, x.bond);
        if let Some(d) = x.duration {
            let up = Fault::BondUp {
                host: host.clone(),
                bond,
            };
            undo = Some((dur("bond_down", d)?, up));
        }
        actions.push(Action::Fault(Fault::BondDown { host, bond }));
    }
    if let Some(x) = &s.bond_up {
        no_duration(src, at, "bond_up", x.duration.is_some())?;
        actions.push(Action::Fault(Fault::BondUp {
            host: h("host", &x.host)?,
            bond: x.bond,
        }));
    }
    for (key, link, state) in [
        ("cut", &s.cut, PathState::Cut),
        ("stall", &s.stall, PathState::Stalled),
    ] {
        let Some(x) = link else { continue };
        let (start, end) = match (&x.host, x.controller) {
            (Some(name), false) => {
                let host = h("host", name)?;
                let start = match state {
                    PathState::Cut => Fault::Partition(host.clone()),
                    _ => Fault::Stall(host.clone()),
                };
                (start, Fault::Heal(host))
            }
            (None, true) => (
                Fault::ControllerPath(state),
                Fault::ControllerPath(PathState::Ok),
            ),
            _ => {
                return Err(src.error(
                    src.find(key, "").or(at),
                    format!("{key}: give `host: <name>` (the path to one host) or `controller: true` (the controller's own switch), not both or neither"),
                ))
            }
        };
        undo = Some((dur(key, x.duration)?, end));
        actions.push(Action::Fault(start));
    }
    if let Some(x) = &s.lossy {
        let host = h("host", &x.host)?;
        if !(1..=99).contains(&x.percent) {
            return Err(src.error(
                src.find("percent", "").or(at),
                format!(
                    "lossy.percent: expected 1–99 (packets lost per hundred), not {} — a total loss is a `cut`",
                    x.percent
                ),
            ));
        }
        undo = Some((dur("lossy", x.duration)?, Fault::Heal(host.clone())));
        actions.push(Action::Fault(Fault::Lossy {
            host,
            percent: x.percent,
        }));
    }
    if let Some(v) = &s.run_instance {
        let host = match &v.host {
            Some(n) => Some(h("host", n)?),
            None => None,
        };
        if !krrish_cloud::name::is_valid(&v.name) {
            // As the API refuses it (a scenario once made a VM the API
            // could never address).
            return Err(src.error(
                src.find_key_path(item.line, item.end, &["run_instance", "name"])
                    .map(|k| k.value())
                    .or(at),
                "run_instance.name: expected 1 to 63 characters a-z, 0-9 and '-', starting with a letter or digit (the API's names)",
            ));
        }
        let id = VmId::new(&v.name);
        if !known_vms.insert(id.clone()) {
            return Err(src.error(
                src.find_key_path(item.line, item.end, &["run_instance", "name"])
                    .map(|k| k.value())
                    .or(at),
                format!("run_instance: VM `{}` already exists", v.name),
            ));
        }
        actions.push(Action::Api(ApiRequest::RunInstance {
            vm: VmSpec {
                id,
                home: host.clone().unwrap_or_else(|| HostId::new("")),
                demand: Resources::new(v.vcpus, v.memory_gib * 1024, v.disk_gib),
                ha: v.ha,
                priority: v.priority,
                passthrough_devices: v.passthrough.clone(),
                failback: v.failback,
                restart_delay_ms: v.restart_delay.map_or(0, |d| d.ms()),
            },
            host,
            image: v.image.clone(),
            vxnet: v.vxnet.clone(),
        }));
    }
    if let Some(c) = s.controller {
        actions.push(Action::Fault(match c {
            crate::format::ControllerAction::Crash => Fault::ControllerCrash,
            crate::format::ControllerAction::Restart => Fault::ControllerRestart,
        }));
    }
    if let Some(d) = s.dfs {
        use crate::format::DfsAction as D;
        use krrish_sim::DfsServiceChange as C;
        actions.push(Action::Fault(match d {
            D::Unreachable => Fault::DfsUnreachable(true),
            D::Reachable => Fault::DfsUnreachable(false),
            D::Down => Fault::DfsService(C::Down),
            D::Up => Fault::DfsService(C::Up),
            D::Restart => Fault::DfsService(C::Restart),
        }));
    }
    match s.heal_all {
        Some(true) => actions.push(Action::Fault(Fault::HealAll)),
        Some(false) => return Err(src.error(at, "heal_all: only `true` means something here")),
        None => {}
    }
    if let Some(v) = &s.stop_instance {
        actions.push(Action::Api(ApiRequest::StopInstance {
            vm: vm_ref(src, "stop_instance", v, known_vms)?,
        }));
    }
    if let Some(v) = &s.start_instance {
        actions.push(Action::Api(ApiRequest::StartInstance {
            vm: vm_ref(src, "start_instance", v, known_vms)?,
        }));
    }
    if let Some(v) = &s.reboot_instance {
        actions.push(Action::Api(ApiRequest::RebootInstance {
            vm: vm_ref(src, "reboot_instance", v, known_vms)?,
        }));
    }
    if let Some(v) = &s.terminate_instance {
        actions.push(Action::Api(ApiRequest::TerminateInstance {
            vm: vm_ref(src, "terminate_instance", v, known_vms)?,
        }));
    }
    if let Some(m) = &s.migrate {
        actions.push(Action::Api(ApiRequest::MigrateInstance {
            vm: vm_ref(src, "vm", &m.vm, known_vms)?,
            to: h("to", &m.to)?,
        }));
    }
    if let Some(x) = &s.enter_maintenance {
        actions.push(Action::Api(ApiRequest::EnterMaintenance {
            host: h("enter_maintenance", x)?,
        }));
    }
    if let Some(x) = &s.exit_maintenance {
        actions.push(Action::Api(ApiRequest::ExitMaintenance {
            host: h("exit_maintenance", x)?,
        }));
    }
    if let Some(r) = &s.set_rule {
        actions.push(Action::Api(ApiRequest::PutRule { rule: r.clone() }));
    }
    if let Some(name) = &s.delete_rule {
        actions.push(Action::Api(ApiRequest::DeleteRule { name: name.clone() }));
    }
    if let Some(x) = &s.ha {
        let enabled = match x.as_str() {
            "on" => true,
            "off" => false,
            other => {
                return Err(src.error(
                    src.find("ha", other).or(at),
                    format!("ha: expected on or off, not `{other}`"),
                ))
            }
        };
        actions.push(Action::Api(ApiRequest::SetHa { enabled }));
    }
    if let Some(v) = &s.cloud {
        let r = cloud_request(src, item, v)?;
        actions.push(Action::Api(ApiRequest::Cloud(r)));
    }
    if let Some(w) = &s.guest_write {
        let vm = vm_ref(src, "vm", &w.vm, known_vms)?;
        let disk = match &w.volume {
            Some(v) => krrish_cloud::storage::DiskRef::Volume(
                krrish_cloud::Name::parse("volume", v)
                    .map_err(|e| src.error(src.find("volume", v).or(at), e.to_string()))?,
            ),
            None => krrish_cloud::storage::DiskRef::Root(vm.clone()),
        };
        actions.push(Action::GuestWrite {
            vm,
            disk,
            block: w.block,
            data: w.data,
        });
    }
    if let Some(f) = &s.fail_boots {
        let vm = vm_ref(src, "vm", &f.vm, known_vms)?;
        if f.count > FAIL_BOOTS_MAX {
            return Err(src.error(
                src.find_key_path(item.line, item.end, &["fail_boots", "count"])
                    .map(|k| k.value())
                    .or(at),
                format!(
                    "fail_boots.count: expected 0 (mended) to {FAIL_BOOTS_MAX} boots to fail, not {}",
                    f.count
                ),
            ));
        }
        actions.push(Action::Fault(Fault::FailBoots { vm, count: f.count }));
    }
    match actions.len() {
        1 => {
            let mut out = vec![TimedAction {
                at_ms,
                action: actions.pop().expect("one"),
                line,
            }];
            if let Some((d, fault)) = undo {
                out.push(TimedAction {
                    at_ms: at_ms + d,
                    action: Action::Fault(fault),
                    line,
                });
            }
            Ok(out)
        }
        0 => Err(src.error(
            at,
            "timeline item has no action: expected one of crash, power_loss, bmc_down, bmc_up, nic_down, nic_up, bond_down, bond_up, partition, heal, cut, stall, lossy, repair, controller, dfs, heal_all, run_instance, stop_instance, start_instance, reboot_instance, terminate_instance, migrate, enter_maintenance, exit_maintenance, set_rule, delete_rule, ha, cloud, guest_write, fail_boots",
        )),
        n => Err(src.error(at, format!("timeline item has {n} actions; give each its own item with its own `at`"))),
    }
}
