//! The network's records and the calls that change them.

use super::lb::{LbError, LoadBalancer};
use crate::name::Name;
use krrish_core::ipam::{IpPolicyError, Segment};
use krrish_core::{VmId, Zone};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use thiserror::Error;

/// Bounds on what one cloud holds (every collection is bounded).
#[derive(Clone, Copy, Debug)]
pub struct NetworkLimits {
    pub vxnets: usize,
    pub routers: usize,
    pub eips: usize,
    pub aliases: usize,
}

pub const NETWORK_LIMITS: NetworkLimits = NetworkLimits {
    vxnets: 250,
    routers: 64,
    eips: 500,
    aliases: 1_000,
};

/// VMs take addresses as the notes' "other zones" do: last octet 1–198.
pub(super) const VM_ZONE: Zone = Zone::Ecs;
/// The first VXLAN network id handed out; vxnet `n` (0-based) gets
/// `VNI_BASE + n` and the /24 `192.168.n.0` unless given one.
const VNI_BASE: u32 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EipKind {
    /// Reached from the internet.
    Internet,
    /// Reached from the operator's external network.
    External,
}

impl EipKind {
    /// The pool's /24 (documentation ranges: never a real address).
    pub(super) fn pool(self) -> [u8; 3] {
        match self {
            EipKind::Internet => [203, 0, 113],
            EipKind::External => [198, 51, 100],
        }
    }
}

impl std::fmt::Display for EipKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EipKind::Internet => "internet",
            EipKind::External => "external",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vxnet {
    pub name: Name,
    pub vni: u32,
    /// The /24's network address.
    pub network: Ipv4Addr,
    pub router: Option<Name>,
}

impl Vxnet {
    pub fn gateway(&self) -> Ipv4Addr {
        Segment::new(self.network).gateway()
    }
}

/// A VM's interface on a vxnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    pub vm: VmId,
    pub vxnet: Name,
    pub ip: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router {
    pub name: Name,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eip {
    pub name: Name,
    pub kind: EipKind,
    pub address: Ipv4Addr,
    pub vm: Option<VmId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub name: Name,
    pub vm: Option<VmId>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NetworkError {
    #[error("no {kind} named {name}")]
    NotFound { kind: &'static str, name: String },
    #[error("a {kind} named {name} already exists")]
    Exists { kind: &'static str, name: String },
    #[error("{what} is in use: {by}")]
    InUse { what: String, by: String },
    #[error("{what} is already associated with {with}")]
    AlreadyAssociated { what: String, with: String },
    #[error("{what} is not associated with {with}")]
    NotAssociated { what: String, with: String },
    #[error("{0}")]
    Policy(#[from] IpPolicyError),
    /// The address the caller gave in the field `ip` breaks the policy.
    #[error("ip: {0}")]
    Ip(IpPolicyError),
    #[error("{what}: expected {expected}")]
    Invalid { what: String, expected: String },
    #[error("at most {max} {kind}s")]
    Limit { kind: &'static str, max: usize },
    #[error("the {kind} EIP pool is exhausted")]
    PoolExhausted { kind: EipKind },
    #[error(transparent)]
    Lb(#[from] LbError),
}

impl NetworkError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            NetworkError::NotFound { .. } => "not-found",
            NetworkError::Exists { .. } => "exists",
            NetworkError::InUse { .. } => "in-use",
            NetworkError::AlreadyAssociated { .. } => "already-associated",
            NetworkError::NotAssociated { .. } => "not-associated",
            NetworkError::Policy(IpPolicyError::Exhausted { .. }) => "exhausted",
            NetworkError::Policy(IpPolicyError::Duplicate { .. })
            | NetworkError::Ip(IpPolicyError::Duplicate { .. }) => "in-use",
            NetworkError::Ip(IpPolicyError::Exhausted { .. }) => "exhausted",
            NetworkError::Policy(_) | NetworkError::Ip(_) | NetworkError::Invalid { .. } => {
                "invalid-request"
            }
            NetworkError::Limit { .. } => "limit",
            NetworkError::PoolExhausted { .. } => "exhausted",
            NetworkError::Lb(e) => e.code(),
        }
    }
}

pub(super) fn not_found(kind: &'static str, name: &impl ToString) -> NetworkError {
    NetworkError::NotFound {
        kind,
        name: name.to_string(),
    }
}

/// The tenant network of one cloud.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub(super) vxnets: BTreeMap<Name, Vxnet>,
    pub(super) routers: BTreeMap<Name, Router>,
    /// Each VM's interfaces, by vxnet.
    pub(super) nics: BTreeMap<VmId, BTreeMap<Name, Ipv4Addr>>,
    pub(super) eips: BTreeMap<Name, Eip>,
    pub(super) aliases: BTreeMap<Name, Alias>,
    /// Load balancers ([`super::lb`]).
    #[serde(default)]
    pub(super) lbs: BTreeMap<Name, LoadBalancer>,
    /// Bumped by every change (persistence skips unchanged states) — not
    /// by a health check that only counts towards a threshold: a restored
    /// controller starts counting again.
    generation: u64,
}

impl Network {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn vxnets(&self) -> impl Iterator<Item = &Vxnet> {
        self.vxnets.values()
    }

    pub fn vxnet(&self, name: &Name) -> Result<&Vxnet, NetworkError> {
        self.vxnets
            .get(name)
            .ok_or_else(|| not_found("vxnet", name))
    }

    pub fn routers(&self) -> impl Iterator<Item = &Router> {
        self.routers.values()
    }

    pub fn eips(&self) -> impl Iterator<Item = &Eip> {
        self.eips.values()
    }

    pub fn eip(&self, name: &Name) -> Result<&Eip, NetworkError> {
        self.eips.get(name).ok_or_else(|| not_found("eip", name))
    }

    pub fn aliases(&self) -> impl Iterator<Item = &Alias> {
        self.aliases.values()
    }

    pub fn alias(&self, name: &Name) -> Result<&Alias, NetworkError> {
        self.aliases
            .get(name)
            .ok_or_else(|| not_found("dns alias", name))
    }

    /// A VM's interfaces, in vxnet order.
    pub fn nics_of(&self, vm: &VmId) -> Vec<Nic> {
        self.nics
            .get(vm)
            .into_iter()
            .flatten()
            .map(|(vxnet, ip)| Nic {
                vm: vm.clone(),
                vxnet: vxnet.clone(),
                ip: *ip,
            })
            .collect()
    }

    /// Every interface on `vxnet`.
    pub fn nics_on(&self, vxnet: &Name) -> Vec<Nic> {
        self.nics
            .iter()
            .filter_map(|(vm, nics)| {
                nics.get(vxnet).map(|ip| Nic {
                    vm: vm.clone(),
                    vxnet: vxnet.clone(),
                    ip: *ip,
                })
            })
            .collect()
    }

    /// The interface holding `ip`, on any vxnet.
    pub fn nic_with(&self, ip: Ipv4Addr) -> Option<Nic> {
        self.nics.iter().find_map(|(vm, nics)| {
            nics.iter().find(|(_, a)| **a == ip).map(|(vxnet, _)| Nic {
                vm: vm.clone(),
                vxnet: vxnet.clone(),
                ip,
            })
        })
    }

    /// The EIP associated with `vm`, if any.
    pub fn eip_of(&self, vm: &VmId) -> Option<&Eip> {
        self.eips.values().find(|e| e.vm.as_ref() == Some(vm))
    }

    pub(super) fn changed(&mut self) {
        self.generation += 1;
    }

    // ------------------------------------------------------------ vxnets

    /// `network`: the /24 to use (any address in it); by default
    /// `192.168.<n>.0` for the first free `n`.
    pub fn create_vxnet(
        &mut self,
        name: Name,
        network: Option<Ipv4Addr>,
    ) -> Result<&Vxnet, NetworkError> {
        if self.vxnets.contains_key(&name) {
            return Err(NetworkError::Exists {
                kind: "vxnet",
                name: name.to_string(),
            });
        }
        if self.vxnets.len() >= NETWORK_LIMITS.vxnets {
            return Err(NetworkError::Limit {
                kind: "vxnet",
                max: NETWORK_LIMITS.vxnets,
            });
        }
        let taken: BTreeSet<Ipv4Addr> = self.vxnets.values().map(|v| v.network).collect();
        let network = match network {
            Some(ip) => {
                let o = ip.octets();
                let net = Ipv4Addr::new(o[0], o[1], o[2], 0);
                if !net.is_private() {
                    return Err(NetworkError::Invalid {
                        what: format!("network {ip}"),
                        expected: "a private /24 (10/8, 172.16/12, 192.168/16)".into(),
                    });
                }
                if taken.contains(&net) {
                    return Err(NetworkError::InUse {
                        what: format!("network {net}/24"),
                        by: "another vxnet".into(),
                    });
                }
                net
            }
            None => (0..=255u8)
                .map(|n| Ipv4Addr::new(192, 168, n, 0))
                .find(|n| !taken.contains(n))
                .ok_or(NetworkError::Limit {
                    kind: "default /24 under 192.168",
                    max: 256,
                })?,
        };
        let used_vnis: BTreeSet<u32> = self.vxnets.values().map(|v| v.vni).collect();
        let vni = (VNI_BASE..)
            .find(|v| !used_vnis.contains(v))
            .expect("fewer vxnets than VNIs");
        self.changed();
        Ok(self.vxnets.entry(name.clone()).or_insert(Vxnet {
            name,
            vni,
            network,
            router: None,
        }))
    }

    /// Refused while a VM is on it.
    pub fn delete_vxnet(&mut self, name: &Name) -> Result<(), NetworkError> {
        self.vxnet(name)?;
        let on = self.nics_on(name);
        if !on.is_empty() {
            let vms: Vec<String> = on.iter().map(|n| n.vm.to_string()).collect();
            return Err(NetworkError::InUse {
                what: format!("vxnet {name}"),
                by: format!("VMs on it: {}", vms.join(", ")),
            });
        }
        if let Some((_, lb)) = self.lb_addresses_on(name).first() {
            return Err(NetworkError::InUse {
                what: format!("vxnet {name}"),
                by: format!("internal load balancer {lb} on it; delete it first"),
            });
        }
        self.vxnets.remove(name);
        self.changed();
        Ok(())
    }

    /// The addresses taken on `vxnet`: its VMs' and internal load
    /// balancers'.
    pub(super) fn segment(&self, vxnet: &Name) -> Result<Segment, NetworkError> {
        let mut segment = Segment::new(self.vxnet(vxnet)?.network);
        let taken = self.nics_on(vxnet).into_iter().map(|n| n.ip);
        for ip in taken.chain(self.lb_addresses_on(vxnet).into_iter().map(|(ip, _)| ip)) {
            segment
                .claim(VM_ZONE, ip)
                .expect("addresses on a vxnet were checked when given");
        }
        Ok(segment)
    }

    /// A VM joins `vxnet`, at `ip` (checked against the policy) or at the
    /// lowest free address. `vm_exists` says whether the HA core knows it.
    pub fn join_vxnet(
        &mut self,
        vxnet: &Name,
        vm: &VmId,
        vm_exists: bool,
        ip: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, NetworkError> {
        self.vxnet(vxnet)?;
        if !vm_exists {
            return Err(not_found("vm", vm));
        }
        if let Some(ip) = self.nics.get(vm).and_then(|n| n.get(vxnet)) {
            return Err(NetworkError::AlreadyAssociated {
                what: format!("vm {vm}"),
                with: format!("vxnet {vxnet} (address {ip})"),
            });
        }
        let mut segment = self.segment(vxnet)?;
        let ip = match ip {
            Some(ip) => {
                segment.claim(VM_ZONE, ip).map_err(NetworkError::Ip)?;
                ip
            }
            None => segment.allocate(VM_ZONE)?,
        };
        self.nics
            .entry(vm.clone())
            .or_default()
            .insert(vxnet.clone(), ip);
        self.changed();
        Ok(ip)
    }

    pub fn leave_vxnet(&mut self, vxnet: &Name, vm: &VmId) -> Result<Ipv4Addr, NetworkError> {
        self.vxnet(vxnet)?;
        let Some(ip) = self.nics.get(vm).and_then(|n| n.get(vxnet)).copied() else {
            return Err(NetworkError::NotAssociated {
                what: format!("vm {vm}"),
                with: format!("vxnet {vxnet}"),
            });
        };
        if let Some(eip) = self.eip_stranded_without(vm, vxnet) {
            return Err(NetworkError::InUse {
                what: format!("vm {vm}'s interface on vxnet {vxnet}"),
                by: format!("eip {eip}, NATed to it (dissociate the eip first)"),
            });
        }
        let nics = self.nics.get_mut(vm).expect("checked");
        nics.remove(vxnet);
        if nics.is_empty() {
            self.nics.remove(vm);
        }
        self.changed();
        Ok(ip)
    }

    /// A VM is gone: its interfaces, EIP, aliases and load-balancer
    /// backends let go.
    pub fn forget_vm(&mut self, vm: &VmId) {
        let had = self.nics.remove(vm).is_some() | self.forget_backend(vm);
        let mut released = false;
        for e in self.eips.values_mut().filter(|e| e.vm.as_ref() == Some(vm)) {
            e.vm = None;
            released = true;
        }
        for a in self
            .aliases
            .values_mut()
            .filter(|a| a.vm.as_ref() == Some(vm))
        {
            a.vm = None;
            released = true;
        }
        if had || released {
            self.changed();
        }
    }

    // ----------------------------------------------------------- routers

    pub fn create_router(&mut self, name: Name) -> Result<&Router, NetworkError> {
        if self.routers.contains_key(&name) {
            return Err(NetworkError::Exists {
                kind: "router",
                name: name.to_string(),
            });
        }
        if self.routers.len() >= NETWORK_LIMITS.routers {
            return Err(NetworkError::Limit {
                kind: "router",
                max: NETWORK_LIMITS.routers,
            });
        }
        self.changed();
        Ok(self.routers.entry(name.clone()).or_insert(Router { name }))
    }

    /// Refused while a vxnet is joined to it.
    pub fn delete_router(&mut self, name: &Name) -> Result<(), NetworkError> {
        if !self.routers.contains_key(name) {
            return Err(not_found("router", name));
        }
        let joined: Vec<String> = self
            .vxnets
            .values()
            .filter(|v| v.router.as_ref() == Some(name))
            .map(|v| v.name.to_string())
            .collect();
        if !joined.is_empty() {
            return Err(NetworkError::InUse {
                what: format!("router {name}"),
                by: format!("vxnets joined: {}", joined.join(", ")),
            });
        }
        self.routers.remove(name);
        self.changed();
        Ok(())
    }

    pub fn join_router(&mut self, router: &Name, vxnet: &Name) -> Result<(), NetworkError> {
        if !self.routers.contains_key(router) {
            return Err(not_found("router", router));
        }
        match &self.vxnet(vxnet)?.router {
            Some(r) => Err(NetworkError::AlreadyAssociated {
                what: format!("vxnet {vxnet}"),
                with: format!("router {r}"),
            }),
            None => {
                self.vxnets.get_mut(vxnet).expect("checked").router = Some(router.clone());
                self.changed();
                Ok(())
            }
        }
    }

    pub fn leave_router(&mut self, router: &Name, vxnet: &Name) -> Result<(), NetworkError> {
        if !self.routers.contains_key(router) {
            return Err(not_found("router", router));
        }
        if self.vxnet(vxnet)?.router.as_ref() != Some(router) {
            return Err(NetworkError::NotAssociated {
                what: format!("vxnet {vxnet}"),
                with: format!("router {router}"),
            });
        }
        let stranded = self.eips.values().find_map(|e| {
            let vm = e.vm.as_ref()?;
            let eip = self.eip_stranded_without(vm, vxnet)?;
            Some((eip, vm.clone()))
        });
        if let Some((eip, vm)) = stranded {
            return Err(NetworkError::InUse {
                what: format!("vxnet {vxnet}'s link to router {router}"),
                by: format!("eip {eip} of vm {vm}, NATed through it (dissociate the eip first)"),
            });
        }
        self.vxnets.get_mut(vxnet).expect("checked").router = None;
        self.changed();
        Ok(())
    }

    /// The EIP of `vm` that would lead nowhere without its interface on
    /// `vxnet` or that vxnet's router (its only routed interface): leaving
    /// either once stranded the EIP, still associated (found by the
    /// bad-input adversary; associating refuses that very state).
    fn eip_stranded_without(&self, vm: &VmId, vxnet: &Name) -> Option<Name> {
        let eip = self.eip_of(vm)?.name.clone();
        let still_routed = self.nics_of(vm).into_iter().any(|n| {
            n.vxnet != *vxnet
                && self
                    .vxnets
                    .get(&n.vxnet)
                    .is_some_and(|v| v.router.is_some())
        });
        (!still_routed).then_some(eip)
    }
}
