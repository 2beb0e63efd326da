//! Whether a ping gets through: the tenant network's records (vxnets,
//! routers, EIPs, aliases) walked hop by hop against the state of the
//! machines — where each VM really runs, and whether its host's VM network
//! (bond1) and uplink (bond0) carry traffic. Never a lookup that always says
//! yes: a VM whose host died is unreachable until it runs again elsewhere.
//!
//! The path model, from the notes: every host has a bridge on bond1 joined
//! to its VGW, which forwards to the uplink (bond0). Two VMs on one vxnet
//! talk over VXLAN between their hosts' bond1 (on one host, over the bridge
//! alone); vxnets joined to one router are routed the same way (routers are
//! distributed over the hosts' VGWs). An EIP is NATed by the VGW of the host
//! its VM runs on, so the outside reaches it through that host's uplink.

use super::{EipKind, GuestNetwork, Network, Nic};
use crate::name::Name;
use krrish_core::{HostId, VmId};
use std::net::Ipv4Addr;

/// What the data plane needs to know about the machines (ground truth in
/// a simulated world; the agents' reports in a real one).
pub trait Fabric {
    /// Hosts where the VM's guest runs now.
    fn running_on(&self, vm: &VmId) -> Vec<HostId>;
    /// The host is powered and its VM network (bond1) carries traffic.
    fn vm_network_up(&self, host: &HostId) -> bool;
    /// The host is powered and its uplink (bond0) carries traffic.
    fn uplink_up(&self, host: &HostId) -> bool;
    /// Whether it can tell about `vm` at all (a report read for some VMs
    /// knows only those; ground truth knows every VM).
    fn knows(&self, _vm: &VmId) -> bool {
        true
    }
    /// The interfaces and EIPs `vm`'s host was told to give it, where the
    /// fabric knows (a simulated hypervisor keeps them); `None`: not
    /// modelled, the records are taken as plugged.
    fn plugged(&self, _vm: &VmId) -> Option<GuestNetwork> {
        None
    }
}

/// Whether `vm`'s host plugged its interface `nic` (when the fabric
/// knows): a record the host was never told of carries no packet.
pub(crate) fn plugged_nic(
    fabric: &dyn Fabric,
    vm: &VmId,
    host: &HostId,
    nic: &Nic,
) -> Result<(), String> {
    match fabric.plugged(vm) {
        Some(g)
            if !g
                .nics
                .iter()
                .any(|n| n.vxnet == nic.vxnet && n.ip == nic.ip) =>
        {
            Err(format!(
                "{host} never gave {vm} its interface {} on vxnet {} (its host was not told)",
                nic.ip, nic.vxnet
            ))
        }
        _ => Ok(()),
    }
}

/// Where a ping starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Internet,
    /// The operator's external network.
    External,
    Vm(VmId),
}

/// What it is sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Vm(VmId),
    Ip(Ipv4Addr),
    Alias(Name),
    Eip(Name),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Internet => f.write_str("the internet"),
            Source::External => f.write_str("the external network"),
            Source::Vm(vm) => write!(f, "vm {vm}"),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Vm(vm) => write!(f, "vm {vm}"),
            Target::Ip(ip) => write!(f, "{ip}"),
            Target::Alias(a) => write!(f, "alias {a}"),
            Target::Eip(e) => write!(f, "eip {e}"),
        }
    }
}

/// How the ping got through, hop by hop (for traces and reports).
pub type Route = Vec<String>;

/// Where the packet is addressed after resolution.
enum Dest {
    /// A private address on a vxnet.
    Private(Nic),
    /// An EIP, NATed to the VM's routed interface.
    Public {
        eip: Name,
        kind: EipKind,
        address: Ipv4Addr,
        vm: VmId,
    },
}

/// Sends one ping; `Err` says at which hop and why it was lost.
pub fn ping(
    net: &Network,
    fabric: &dyn Fabric,
    from: &Source,
    to: &Target,
) -> Result<Route, String> {
    let mut route = Route::new();
    let dest = resolve(net, to, &mut route)?;
    match dest {
        Dest::Private(nic) => {
            let Source::Vm(src) = from else {
                return Err(format!(
                    "{} is a private address on vxnet {}: not routed from {from}",
                    nic.ip, nic.vxnet
                ));
            };
            private(net, fabric, src, &nic, &mut route)?;
        }
        Dest::Public {
            eip,
            kind,
            address,
            vm,
        } => {
            match from {
                Source::Internet if kind == EipKind::Internet => {}
                Source::External if kind == EipKind::External => {}
                Source::Vm(src) => {
                    // Out through the source's own VGW and uplink, then in
                    // as from outside.
                    let (host, nic) = running(net, fabric, src)?;
                    way_out(net, fabric, src)?;
                    route.push(format!("{src} {} on {host} -> out through its VGW", nic.ip));
                }
                other => {
                    return Err(format!(
                        "eip {eip} {address} is an {kind} EIP: not reachable from {other}"
                    ))
                }
            }
            let (host, _) = running(net, fabric, &vm)?;
            let nic = net
                .routed_nic(&vm)
                .ok_or_else(|| format!("vm {vm} left its routed vxnet: eip {eip} leads nowhere"))?;
            if !fabric.uplink_up(&host) {
                return Err(format!(
                    "{host}'s uplink (bond0) is down: eip {eip} {address} NATed there is cut off"
                ));
            }
            plugged_nic(fabric, &vm, &host, &nic)?;
            if fabric
                .plugged(&vm)
                .is_some_and(|g| !g.eips.iter().any(|e| e.address == address))
            {
                return Err(format!(
                    "{host} does not NAT eip {eip} {address} for {vm} (its host was not told)"
                ));
            }
            route.push(format!(
                "{address} (eip {eip}) -> NAT on {host}'s VGW -> {vm} {}",
                nic.ip
            ));
        }
    }
    Ok(route)
}

fn resolve(net: &Network, to: &Target, route: &mut Route) -> Result<Dest, String> {
    let first_nic = |vm: &VmId| {
        net.nics_of(vm)
            .into_iter()
            .next()
            .ok_or_else(|| format!("vm {vm} has no interface"))
    };
    Ok(match to {
        Target::Vm(vm) => Dest::Private(first_nic(vm)?),
        Target::Alias(a) => {
            let (vm, ip) = net.resolve(a).map_err(|e| e.to_string())?;
            route.push(format!("alias {a} resolves to {ip} ({vm})"));
            Dest::Private(net.nic_with(ip).expect("resolved from a nic"))
        }
        Target::Eip(e) => {
            let eip = net.eip(e).map_err(|e| e.to_string())?;
            let vm = eip
                .vm
                .clone()
                .ok_or_else(|| format!("eip {e} is not associated with any vm"))?;
            Dest::Public {
                eip: eip.name.clone(),
                kind: eip.kind,
                address: eip.address,
                vm,
            }
        }
        Target::Ip(ip) => {
            if let Some(nic) = net.nic_with(*ip) {
                Dest::Private(nic)
            } else if let Some(eip) = net.eips().find(|e| e.address == *ip) {
                let vm = eip
                    .vm
                    .clone()
                    .ok_or_else(|| format!("{ip} (eip {}) is not associated", eip.name))?;
                Dest::Public {
                    eip: eip.name.clone(),
                    kind: eip.kind,
                    address: eip.address,
                    vm,
                }
            } else {
                return Err(format!("no interface or eip has {ip}"));
            }
        }
    })
}

/// The host the VM runs on, and its first interface.
/// Where `vm`'s one guest runs: an error when nowhere or on several hosts.
pub(crate) fn the_host(fabric: &dyn Fabric, vm: &VmId) -> Result<HostId, String> {
    let hosts = fabric.running_on(vm);
    match hosts.as_slice() {
        [] => Err(format!("vm {vm} is not running anywhere")),
        [h] => Ok(h.clone()),
        many => {
            let names: Vec<&str> = many.iter().map(|h| h.as_str()).collect();
            Err(format!(
                "vm {vm} runs on {} at once: its address is split",
                names.join(" and ")
            ))
        }
    }
}

/// How `vm` reaches the outside: through its routed vxnet's VGW and its
/// host's uplink (bond0). Its host, or why it cannot get out.
pub(crate) fn way_out(net: &Network, fabric: &dyn Fabric, vm: &VmId) -> Result<HostId, String> {
    let host = the_host(fabric, vm)?;
    if net.routed_nic(vm).is_none() {
        return Err(format!(
            "vm {vm} has no interface on a routed vxnet: no way out"
        ));
    }
    if !fabric.uplink_up(&host) {
        return Err(format!(
            "{host}'s uplink (bond0) is down: {vm} cannot get out"
        ));
    }
    Ok(host)
}

fn running(net: &Network, fabric: &dyn Fabric, vm: &VmId) -> Result<(HostId, Nic), String> {
    let host = the_host(fabric, vm)?;
    let nic = net
        .nics_of(vm)
        .into_iter()
        .next()
        .ok_or_else(|| format!("vm {vm} has no interface"))?;
    Ok((host, nic))
}

/// Whether `vm`'s host routes its packets into `vxnet` (when the fabric
/// knows): it was told the vxnet as one of the guest's router's, or as its
/// routed NIC's.
fn routes_to(fabric: &dyn Fabric, vm: &VmId, host: &HostId, vxnet: &Name) -> Result<(), String> {
    match fabric.plugged(vm) {
        Some(g)
            if !g.routes.iter().any(|r| r.vxnet == *vxnet)
                && !g
                    .nics
                    .iter()
                    .any(|n| n.vxnet == *vxnet && n.gateway.is_some()) =>
        {
            Err(format!(
                "{host} does not route {vm}'s packets into vxnet {vxnet} (its host was not told the router's vxnets)"
            ))
        }
        _ => Ok(()),
    }
}

/// VM to a private address: one vxnet, or two vxnets of one router.
fn private(
    net: &Network,
    fabric: &dyn Fabric,
    src: &VmId,
    dst: &Nic,
    route: &mut Route,
) -> Result<(), String> {
    let (src_host, _) = running(net, fabric, src)?;
    let (dst_host, _) = running(net, fabric, &dst.vm)?;
    plugged_nic(fabric, &dst.vm, &dst_host, dst)?;
    let src_nics = net.nics_of(src);
    let same = src_nics.iter().find(|n| n.vxnet == dst.vxnet);
    if let Some(n) = same {
        plugged_nic(fabric, src, &src_host, n)?;
    }
    let via = match same {
        Some(n) => format!("vxnet {} ({} -> {})", dst.vxnet, n.ip, dst.ip),
        None => {
            let dst_router = net
                .vxnet(&dst.vxnet)
                .ok()
                .and_then(|v| v.router.clone())
                .ok_or_else(|| {
                    format!(
                        "vm {src} has no interface on vxnet {} and it is not routed",
                        dst.vxnet
                    )
                })?;
            let n = src_nics
                .iter()
                .find(|n| {
                    net.vxnet(&n.vxnet)
                        .is_ok_and(|v| v.router.as_ref() == Some(&dst_router))
                })
                .ok_or_else(|| {
                    format!(
                        "vm {src} has no interface on a vxnet of router {dst_router} (which routes {})",
                        dst.vxnet
                    )
                })?;
            plugged_nic(fabric, src, &src_host, n)?;
            // The router is distributed: the sender's host routes the
            // packet into the other vxnet, the receiver's host routes the
            // answer back; each must have been told the router's vxnets.
            routes_to(fabric, src, &src_host, &dst.vxnet)?;
            routes_to(fabric, &dst.vm, &dst_host, &n.vxnet)?;
            format!(
                "router {dst_router} (vxnet {} {} -> vxnet {} {})",
                n.vxnet, n.ip, dst.vxnet, dst.ip
            )
        }
    };
    if src_host != dst_host {
        for h in [&src_host, &dst_host] {
            if !fabric.vm_network_up(h) {
                return Err(format!(
                    "{h}'s VM network (bond1) is down: no VXLAN between {src_host} and {dst_host}"
                ));
            }
        }
        route.push(format!(
            "{src} on {src_host} -> VXLAN -> {} on {dst_host} via {via}",
            dst.vm
        ));
    } else {
        route.push(format!(
            "{src} -> {} over {src_host}'s bridge via {via}",
            dst.vm
        ));
    }
    Ok(())
}
