//! Load balancers on the data plane: whether an LB reaches a backend (what
//! its health check asks, and what a forwarded request needs), and whether
//! a request from the internet, the external network or a VM is served and
//! by which backends. Read against the machines' state like
//! [`crate::network::dataplane::ping`], never a lookup that always says yes.

use super::{Balance, Frontend, LoadBalancer};
use crate::name::Name;
use crate::network::dataplane::{plugged_nic, the_host, way_out, Fabric, Source};
use crate::network::{EipKind, Network, Nic};
use krrish_core::{HostId, VmId};

/// Whether the load balancer reaches `vm` now: the guest runs exactly
/// once, on a host whose VM network (bond1) carries the VXLAN from the
/// VGWs, and it has an interface the LB reaches. The host and interface.
pub fn reach_backend(
    net: &Network,
    fabric: &dyn Fabric,
    lb: &LoadBalancer,
    vm: &VmId,
) -> Result<(HostId, Nic), String> {
    let nic = net
        .backend_nic(lb, vm)
        .ok_or_else(|| format!("vm {vm} has no interface load balancer {} reaches", lb.name))?;
    let host = the_host(fabric, vm)?;
    if !fabric.vm_network_up(&host) {
        return Err(format!(
            "{host}'s VM network (bond1) carries no traffic: no VXLAN to {vm}"
        ));
    }
    plugged_nic(fabric, vm, &host, &nic)?;
    Ok((host, nic))
}

/// How one request (or a stream of them) to a listener fares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The backends the listener spreads requests over (in service).
    pub in_service: Vec<VmId>,
    /// Those of them that answer now.
    pub answered_by: Vec<VmId>,
    /// Those that do not, and why: their share of requests is lost until
    /// the health check takes them out.
    pub lost_at: Vec<(VmId, String)>,
    /// The share of this client's requests lost now, in whole percent
    /// (rounded down): round-robin and least-connections spread requests
    /// over the backends in service by weight, so a backend that does not
    /// answer loses its weight's share; source hashing sends all of one
    /// client's requests to one backend, so they are all lost or none.
    pub lost_percent: u32,
}

impl Served {
    /// Some request gets an answer.
    pub fn served(&self) -> bool {
        !self.answered_by.is_empty()
    }
}

/// Requests from `from` to `lb`'s listener on `port`. `Err` when they do
/// not reach the load balancer at all (and why); else which backends
/// answer.
pub fn serve(
    net: &Network,
    fabric: &dyn Fabric,
    from: &Source,
    lb: &Name,
    port: u16,
) -> Result<Served, String> {
    let lb = net.load_balancer(lb).map_err(|e| e.to_string())?;
    let listener = lb.listener(port).map_err(|e| e.to_string())?;
    // The client's host when the client is a VM on the same VXLAN fabric
    // (an internal LB): a backend elsewhere needs that host's bond1 too.
    let mut client_host = None;
    match &lb.frontend {
        Frontend::External { eip } => {
            let e = net.eip(eip).map_err(|e| e.to_string())?;
            match (from, e.kind) {
                (Source::Internet, EipKind::Internet) | (Source::External, EipKind::External) => {}
                (Source::Vm(src), _) => {
                    // Out through its own VGW and uplink, then in as from
                    // outside (as a ping to an EIP goes).
                    way_out(net, fabric, src)?;
                }
                (other, kind) => {
                    return Err(format!(
                        "load balancer {} is on {kind} eip {eip} ({}): not reachable from {other}",
                        lb.name, e.address
                    ))
                }
            }
        }
        Frontend::Internal { vxnet, ip } => {
            let Source::Vm(src) = from else {
                return Err(format!(
                    "load balancer {} is internal ({ip} on vxnet {vxnet}): not routed from {from}",
                    lb.name
                ));
            };
            let host = the_host(fabric, src)?;
            if net.backend_nic(lb, src).is_none() {
                return Err(format!(
                    "vm {src} has no interface on vxnet {vxnet} or a vxnet routed to it"
                ));
            }
            client_host = Some(host);
        }
    }
    let in_service = listener.in_service();
    if in_service.is_empty() {
        return Err(format!(
            "load balancer {} listener {port} has no backend in service",
            lb.name
        ));
    }
    let mut answered_by = Vec::new();
    let mut lost_at = Vec::new();
    for vm in &in_service {
        let reached = reach_backend(net, fabric, lb, vm).and_then(|(host, _)| match &client_host {
            Some(c) if *c != host && !fabric.vm_network_up(c) => Err(format!(
                "{c}'s VM network (bond1) carries no traffic: the client cannot reach {vm} on {host}"
            )),
            _ => Ok(()),
        });
        match reached {
            Ok(()) => answered_by.push(vm.clone()),
            Err(why) => lost_at.push((vm.clone(), why)),
        }
    }
    let weight = |vm: &VmId| listener.backends.get(vm).map_or(0, |b| b.weight);
    let lost_percent = match listener.balance {
        Balance::Source => {
            let client = match from {
                Source::Internet => "internet",
                Source::External => "external",
                Source::Vm(vm) => vm.as_str(),
            };
            let sticky = source_backend(client, &in_service, weight);
            if answered_by.contains(sticky) {
                0
            } else {
                100
            }
        }
        Balance::RoundRobin | Balance::LeastConn => {
            let total: u32 = in_service.iter().map(weight).sum();
            let lost: u32 = lost_at.iter().map(|(vm, _)| weight(vm)).sum();
            lost * 100 / total.max(1)
        }
    };
    Ok(Served {
        in_service,
        answered_by,
        lost_at,
        lost_percent,
    })
}

/// The backend source hashing gives `client`: a stable hash of its address
/// (here its name) over the backends in service, each taking a slice as
/// wide as its weight. The same client, the same backend while the set in
/// service does not change.
fn source_backend<'a>(
    client: &str,
    in_service: &'a [VmId],
    weight: impl Fn(&VmId) -> u32,
) -> &'a VmId {
    // FNV-1a: stable across runs and platforms (no seeded hasher).
    let hash = client.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let total: u64 = in_service.iter().map(|vm| u64::from(weight(vm))).sum();
    let mut slot = hash % total.max(1);
    for vm in in_service {
        let w = u64::from(weight(vm));
        if slot < w {
            return vm;
        }
        slot -= w;
    }
    &in_service[0]
}
