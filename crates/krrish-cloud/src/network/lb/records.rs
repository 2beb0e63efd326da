//! The load balancers' records and the calls that change them.

use super::{
    Backend, Balance, Frontend, Health, HealthCheck, LbError, LbKind, Listener, LoadBalancer,
    Protocol, LB_LIMITS, WEIGHT,
};
use crate::name::Name;
use crate::network::resources::{not_found, VM_ZONE};
use crate::network::{Network, NetworkError, Nic};
use krrish_core::VmId;
use std::net::Ipv4Addr;

/// What creating a load balancer takes, as checked names.
#[derive(Clone, Debug)]
pub struct NewLb {
    pub name: Name,
    pub kind: LbKind,
    pub eip: Option<Name>,
    pub vxnet: Option<Name>,
    pub ip: Option<Ipv4Addr>,
}

fn field(field: &'static str, why: impl Into<String>) -> NetworkError {
    LbError::Field {
        field,
        why: why.into(),
    }
    .into()
}

impl Network {
    pub fn load_balancers(&self) -> impl Iterator<Item = &LoadBalancer> {
        self.lbs.values()
    }

    pub fn load_balancer(&self, name: &Name) -> Result<&LoadBalancer, NetworkError> {
        self.lbs
            .get(name)
            .ok_or_else(|| not_found("load balancer", name))
    }

    /// The load balancer taking requests on this EIP.
    pub fn lb_on_eip(&self, eip: &Name) -> Option<&LoadBalancer> {
        self.lbs
            .values()
            .find(|l| matches!(&l.frontend, Frontend::External { eip: e } if e == eip))
    }

    /// Internal load balancers' addresses on `vxnet`.
    pub(in crate::network) fn lb_addresses_on(&self, vxnet: &Name) -> Vec<(Ipv4Addr, &Name)> {
        self.lbs
            .values()
            .filter_map(|l| match &l.frontend {
                Frontend::Internal { vxnet: x, ip } if x == vxnet => Some((*ip, &l.name)),
                _ => None,
            })
            .collect()
    }

    /// Where the load balancer takes requests: its EIP's address or its
    /// address on its vxnet.
    pub fn lb_address(&self, lb: &LoadBalancer) -> Option<Ipv4Addr> {
        match &lb.frontend {
            Frontend::External { eip } => self.eips.get(eip).map(|e| e.address),
            Frontend::Internal { ip, .. } => Some(*ip),
        }
    }

    /// The interface of `vm` the load balancer reaches: for an internal
    /// one, on its vxnet or on a vxnet joined to the same router; for an
    /// external one, on a routed vxnet (the router carries the EIP's
    /// traffic).
    pub fn backend_nic(&self, lb: &LoadBalancer, vm: &VmId) -> Option<Nic> {
        let nics = self.nics_of(vm);
        match &lb.frontend {
            Frontend::External { .. } => self.routed_nic(vm),
            Frontend::Internal { vxnet, .. } => {
                let router = self.vxnets.get(vxnet).and_then(|v| v.router.as_ref());
                let same = nics.iter().find(|n| &n.vxnet == vxnet);
                same.or_else(|| {
                    nics.iter().find(|n| {
                        router.is_some()
                            && self.vxnets.get(&n.vxnet).and_then(|v| v.router.as_ref()) == router
                    })
                })
                .cloned()
            }
        }
    }

    /// What a backend of `lb` needs, in words.
    fn reach_expected(&self, lb: &LoadBalancer) -> String {
        match &lb.frontend {
            Frontend::External { .. } => {
                "an interface on a vxnet joined to a router (the router carries the eip's traffic)"
                    .into()
            }
            Frontend::Internal { vxnet, .. } => {
                match self.vxnets.get(vxnet).and_then(|v| v.router.as_ref()) {
                    Some(r) => format!("an interface on vxnet {vxnet} or on a vxnet of router {r}"),
                    None => format!("an interface on vxnet {vxnet} (not joined to a router)"),
                }
            }
        }
    }

    /// Listeners `vm` is a backend of: (load balancer, port).
    pub fn lb_backends_of(&self, vm: &VmId) -> Vec<(Name, u16)> {
        self.lbs
            .values()
            .flat_map(|l| {
                l.listeners
                    .values()
                    .filter(|x| x.backends.contains_key(vm))
                    .map(|x| (l.name.clone(), x.port))
            })
            .collect()
    }

    /// `vm` is gone: it leaves every listener. Whether it was on any.
    pub(in crate::network) fn forget_backend(&mut self, vm: &VmId) -> bool {
        let mut had = false;
        for l in self.lbs.values_mut() {
            for x in l.listeners.values_mut() {
                had |= x.backends.remove(vm).is_some();
                if x.backends.is_empty() {
                    x.next_check_ms = None;
                }
            }
        }
        had
    }

    fn lb_mut(&mut self, name: &Name) -> Result<&mut LoadBalancer, NetworkError> {
        self.lbs
            .get_mut(name)
            .ok_or_else(|| not_found("load balancer", name))
    }

    // ------------------------------------------------------------- calls

    pub fn create_lb(&mut self, new: NewLb) -> Result<&LoadBalancer, NetworkError> {
        let NewLb {
            name,
            kind,
            eip,
            vxnet,
            ip,
        } = new;
        if self.lbs.contains_key(&name) {
            return Err(NetworkError::Exists {
                kind: "load balancer",
                name: name.to_string(),
            });
        }
        if self.lbs.len() >= LB_LIMITS.load_balancers {
            return Err(NetworkError::Limit {
                kind: "load balancer",
                max: LB_LIMITS.load_balancers,
            });
        }
        let frontend = match kind {
            LbKind::External => {
                if vxnet.is_some() || ip.is_some() {
                    let f = if vxnet.is_some() { "vxnet" } else { "ip" };
                    return Err(field(
                        f,
                        "an external load balancer takes requests on an eip, not on a vxnet address",
                    ));
                }
                let eip = eip.ok_or_else(|| {
                    field(
                        "eip",
                        "an external load balancer needs an eip (allocate one first)",
                    )
                })?;
                let e = self.eip(&eip)?;
                if let Some(vm) = &e.vm {
                    return Err(NetworkError::AlreadyAssociated {
                        what: format!("eip {eip}"),
                        with: format!("vm {vm}"),
                    });
                }
                if let Some(other) = self.lb_on_eip(&eip) {
                    return Err(NetworkError::AlreadyAssociated {
                        what: format!("eip {eip}"),
                        with: format!("load balancer {}", other.name),
                    });
                }
                Frontend::External { eip }
            }
            LbKind::Internal => {
                if eip.is_some() {
                    return Err(field(
                        "eip",
                        "an internal load balancer takes requests on a vxnet address, not on an eip",
                    ));
                }
                let vxnet = vxnet
                    .ok_or_else(|| field("vxnet", "an internal load balancer needs a vxnet"))?;
                let mut segment = self.segment(&vxnet)?;
                let ip = match ip {
                    Some(ip) => {
                        segment.claim(VM_ZONE, ip).map_err(NetworkError::Ip)?;
                        ip
                    }
                    None => segment.allocate(VM_ZONE)?,
                };
                Frontend::Internal { vxnet, ip }
            }
        };
        self.changed();
        Ok(self.lbs.entry(name.clone()).or_insert(LoadBalancer {
            name,
            frontend,
            listeners: Default::default(),
        }))
    }

    /// Listeners and backends go with it; its EIP stays allocated, its
    /// vxnet address is freed.
    pub fn delete_lb(&mut self, name: &Name) -> Result<LoadBalancer, NetworkError> {
        self.load_balancer(name)?;
        self.changed();
        Ok(self.lbs.remove(name).expect("checked"))
    }

    pub fn add_listener(
        &mut self,
        lb: &Name,
        port: u16,
        protocol: Protocol,
        balance: Balance,
        health_check: HealthCheck,
    ) -> Result<&Listener, NetworkError> {
        let l = self.load_balancer(lb)?;
        if l.listeners.contains_key(&port) {
            return Err(LbError::ListenerExists {
                lb: lb.clone(),
                port,
            }
            .into());
        }
        if l.listeners.len() >= LB_LIMITS.listeners {
            return Err(NetworkError::Limit {
                kind: "listener",
                max: LB_LIMITS.listeners,
            });
        }
        self.changed();
        let l = self.lb_mut(lb)?;
        Ok(l.listeners.entry(port).or_insert(Listener {
            port,
            protocol,
            balance,
            health_check,
            backends: Default::default(),
            next_check_ms: None,
        }))
    }

    pub fn remove_listener(&mut self, lb: &Name, port: u16) -> Result<Listener, NetworkError> {
        self.load_balancer(lb)?.listener(port)?;
        self.changed();
        let l = self.lb_mut(lb)?;
        Ok(l.listeners.remove(&port).expect("checked"))
    }

    /// A backend starts [`Health::New`]; a listener's first backend has its
    /// first health check at `now_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_backend(
        &mut self,
        lb: &Name,
        listener: u16,
        vm: &VmId,
        vm_exists: bool,
        port: Option<u16>,
        weight: Option<u32>,
        now_ms: u64,
    ) -> Result<&Backend, NetworkError> {
        let weight = weight.unwrap_or(1);
        if !WEIGHT.contains(&weight) {
            return Err(LbError::OutOfRange {
                field: "weight",
                value: weight.into(),
                expected: format!("{} to {}", WEIGHT.start(), WEIGHT.end()),
            }
            .into());
        }
        let l = self.load_balancer(lb)?;
        let x = l.listener(listener)?;
        if !vm_exists {
            return Err(not_found("vm", vm));
        }
        if x.backends.contains_key(vm) {
            return Err(LbError::BackendExists {
                lb: lb.clone(),
                port: listener,
                vm: vm.clone(),
            }
            .into());
        }
        if x.backends.len() >= LB_LIMITS.backends {
            return Err(NetworkError::Limit {
                kind: "backend",
                max: LB_LIMITS.backends,
            });
        }
        if self.backend_nic(l, vm).is_none() {
            return Err(LbError::Unreachable {
                lb: lb.clone(),
                vm: vm.clone(),
                expected: self.reach_expected(l),
            }
            .into());
        }
        self.changed();
        let x = self
            .lb_mut(lb)?
            .listeners
            .get_mut(&listener)
            .expect("checked");
        x.next_check_ms.get_or_insert(now_ms);
        Ok(x.backends.entry(vm.clone()).or_insert(Backend {
            vm: vm.clone(),
            port: port.unwrap_or(listener),
            weight,
            health: Health::New,
            checks: Default::default(),
        }))
    }

    pub fn remove_backend(
        &mut self,
        lb: &Name,
        listener: u16,
        vm: &VmId,
    ) -> Result<Backend, NetworkError> {
        let x = self.load_balancer(lb)?.listener(listener)?;
        if !x.backends.contains_key(vm) {
            return Err(LbError::NoBackend {
                lb: lb.clone(),
                port: listener,
                vm: vm.clone(),
            }
            .into());
        }
        self.changed();
        let x = self
            .lb_mut(lb)?
            .listeners
            .get_mut(&listener)
            .expect("checked");
        let b = x.backends.remove(vm).expect("checked");
        if x.backends.is_empty() {
            x.next_check_ms = None;
        }
        Ok(b)
    }
}
