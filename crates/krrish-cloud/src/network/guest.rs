//! What one VM's host must make real for it: the guest's interfaces on
//! vxnets (a VXLAN per vxnet, the guest's NIC on it) and the EIPs NATed to
//! it. The controller sends it to the agent of the host the VM runs on, at
//! boot and whenever the records change; the agent's driver makes the host
//! match it (a simulated host just keeps it).

use super::resources::Network;
use crate::name::Name;
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Every vxnet is one /24.
pub const VXNET_PREFIX: u8 = 24;

/// One VM's network, as its host realises it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestNetwork {
    /// In vxnet order.
    pub nics: Vec<GuestNic>,
    pub eips: Vec<GuestEip>,
    /// The other vxnets of the router the guest's routed vxnet is on, in
    /// vxnet order: the guest reaches them through its gateway, so its
    /// host holds their gateways too (the router is distributed: every
    /// host running a guest routed through it routes between all its
    /// vxnets).
    #[serde(default)]
    pub routes: Vec<GuestRoute>,
}

impl GuestNetwork {
    pub fn is_empty(&self) -> bool {
        self.nics.is_empty() && self.eips.is_empty() && self.routes.is_empty()
    }
}

impl std::fmt::Display for GuestNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nics: Vec<String> = self
            .nics
            .iter()
            .map(|n| format!("{} {} (vni {})", n.vxnet, n.ip, n.vni))
            .collect();
        let eips: Vec<String> = self
            .eips
            .iter()
            .map(|e| format!("eip {} -> {}", e.address, e.private))
            .collect();
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("routed to {} {}/{}", r.vxnet, r.network, r.prefix))
            .collect();
        if nics.is_empty() && eips.is_empty() && routes.is_empty() {
            return f.write_str("no interfaces");
        }
        f.write_str(&[nics, eips, routes].concat().join(", "))
    }
}

/// The guest's interface on one vxnet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestNic {
    pub vxnet: Name,
    /// The VXLAN network id that carries the vxnet between hosts.
    pub vni: u32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The router's address on this vxnet when the vxnet is the VM's
    /// routed one: the guest's default route, and the address the host
    /// answers for (every host's VGW holds it, as the routers are
    /// distributed).
    pub gateway: Option<Ipv4Addr>,
}

/// Another vxnet of the router the guest is routed through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestRoute {
    pub vxnet: Name,
    pub vni: u32,
    /// The vxnet's network address.
    pub network: Ipv4Addr,
    pub prefix: u8,
    /// The router's address on it.
    pub gateway: Ipv4Addr,
}

/// An EIP NATed to the VM: the host it runs on answers for `address` and
/// forwards to `private` (the VM's address on its routed vxnet).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestEip {
    pub name: Name,
    pub address: Ipv4Addr,
    pub private: Ipv4Addr,
}

impl Network {
    /// What `vm`'s host must realise for it now.
    pub fn guest_network(&self, vm: &VmId) -> GuestNetwork {
        let routed = self.routed_nic(vm);
        let nics = self
            .nics_of(vm)
            .into_iter()
            .filter_map(|n| {
                let x = self.vxnets.get(&n.vxnet)?;
                Some(GuestNic {
                    vni: x.vni,
                    ip: n.ip,
                    prefix: VXNET_PREFIX,
                    gateway: (routed.as_ref() == Some(&n)).then(|| x.gateway()),
                    vxnet: n.vxnet,
                })
            })
            .collect();
        let eips = match (&routed, self.eip_of(vm)) {
            (Some(nic), Some(e)) => vec![GuestEip {
                name: e.name.clone(),
                address: e.address,
                private: nic.ip,
            }],
            _ => Vec::new(),
        };
        let router = routed
            .as_ref()
            .and_then(|n| self.vxnets.get(&n.vxnet)?.router.clone());
        let routes = self
            .vxnets
            .values()
            .filter(|x| {
                router.is_some()
                    && x.router == router
                    && routed.as_ref().is_none_or(|n| n.vxnet != x.name)
            })
            .map(|x| GuestRoute {
                vxnet: x.name.clone(),
                vni: x.vni,
                network: x.network,
                prefix: VXNET_PREFIX,
                gateway: x.gateway(),
            })
            .collect();
        GuestNetwork { nics, eips, routes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::EipKind;

    fn name(kind: &str, s: &str) -> Name {
        Name::parse(kind, s).unwrap()
    }

    #[test]
    fn a_vm_gets_its_nics_its_routed_gateway_and_its_eip() {
        let mut net = Network::default();
        let vm = VmId::new("vm-1");
        net.create_vxnet(name("vxnet", "front"), Some(Ipv4Addr::new(10, 10, 1, 0)))
            .unwrap();
        net.create_vxnet(name("vxnet", "back"), Some(Ipv4Addr::new(10, 10, 2, 0)))
            .unwrap();
        assert!(net.guest_network(&vm).is_empty());
        net.join_vxnet(
            &name("vxnet", "front"),
            &vm,
            true,
            Some(Ipv4Addr::new(10, 10, 1, 10)),
        )
        .unwrap();
        net.join_vxnet(&name("vxnet", "back"), &vm, true, None)
            .unwrap();
        let g = net.guest_network(&vm);
        assert_eq!(g.nics.len(), 2);
        assert!(g.nics.iter().all(|n| n.gateway.is_none()), "{g:?}");
        assert_ne!(g.nics[0].vni, g.nics[1].vni);
        assert!(g.eips.is_empty());

        net.create_router(name("router", "r1")).unwrap();
        net.join_router(&name("router", "r1"), &name("vxnet", "front"))
            .unwrap();
        net.allocate_eip(name("eip", "e1"), EipKind::Internet)
            .unwrap();
        net.associate_eip(&name("eip", "e1"), &vm, true).unwrap();
        let g = net.guest_network(&vm);
        let front = g.nics.iter().find(|n| n.vxnet.as_str() == "front").unwrap();
        assert_eq!(front.gateway, Some(Ipv4Addr::new(10, 10, 1, 247)));
        assert_eq!(front.ip, Ipv4Addr::new(10, 10, 1, 10));
        assert_eq!(g.eips.len(), 1);
        assert_eq!(g.eips[0].private, front.ip);
        assert_eq!(g.eips[0].address, Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(
            g.nics.iter().filter(|n| n.gateway.is_some()).count(),
            1,
            "one default route"
        );
    }
}
