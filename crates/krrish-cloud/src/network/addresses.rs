//! EIPs and DNS aliases: the addresses and names that point at one VM.

use super::resources::{
    not_found, Alias, Eip, EipKind, Network, NetworkError, Nic, NETWORK_LIMITS,
};
use crate::name::Name;
use krrish_core::VmId;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

impl Network {
    // -------------------------------------------------------------- EIPs

    /// The lowest free address of the kind's pool (last octet 1–254).
    pub fn allocate_eip(&mut self, name: Name, kind: EipKind) -> Result<&Eip, NetworkError> {
        if self.eips.contains_key(&name) {
            return Err(NetworkError::Exists {
                kind: "eip",
                name: name.to_string(),
            });
        }
        if self.eips.len() >= NETWORK_LIMITS.eips {
            return Err(NetworkError::Limit {
                kind: "eip",
                max: NETWORK_LIMITS.eips,
            });
        }
        let used: BTreeSet<Ipv4Addr> = self.eips.values().map(|e| e.address).collect();
        let [a, b, c] = kind.pool();
        let address = (1..=254u8)
            .map(|d| Ipv4Addr::new(a, b, c, d))
            .find(|ip| !used.contains(ip))
            .ok_or(NetworkError::PoolExhausted { kind })?;
        self.changed();
        Ok(self.eips.entry(name.clone()).or_insert(Eip {
            name,
            kind,
            address,
            vm: None,
        }))
    }

    /// Refused while associated.
    pub fn release_eip(&mut self, name: &Name) -> Result<(), NetworkError> {
        if let Some(vm) = &self.eip(name)?.vm {
            return Err(NetworkError::InUse {
                what: format!("eip {name}"),
                by: format!("associated with vm {vm}; dissociate it first"),
            });
        }
        if let Some(lb) = self.lb_on_eip(name) {
            return Err(NetworkError::InUse {
                what: format!("eip {name}"),
                by: format!("the address of load balancer {}; delete it first", lb.name),
            });
        }
        self.eips.remove(name);
        self.changed();
        Ok(())
    }

    /// One EIP per VM, one VM per EIP; the VM needs an interface on a
    /// vxnet joined to a router (the router does the NAT).
    pub fn associate_eip(
        &mut self,
        name: &Name,
        vm: &VmId,
        vm_exists: bool,
    ) -> Result<(), NetworkError> {
        let eip = self.eip(name)?;
        if !vm_exists {
            return Err(not_found("vm", vm));
        }
        if let Some(other) = &eip.vm {
            return Err(NetworkError::AlreadyAssociated {
                what: format!("eip {name}"),
                with: format!("vm {other}"),
            });
        }
        if let Some(lb) = self.lb_on_eip(name) {
            return Err(NetworkError::AlreadyAssociated {
                what: format!("eip {name}"),
                with: format!("load balancer {}", lb.name),
            });
        }
        if let Some(e) = self.eip_of(vm) {
            return Err(NetworkError::AlreadyAssociated {
                what: format!("vm {vm}"),
                with: format!("eip {}", e.name),
            });
        }
        if self.routed_nic(vm).is_none() {
            return Err(NetworkError::Invalid {
                what: format!("vm {vm}"),
                expected:
                    "an interface on a vxnet joined to a router (the router does the EIP's NAT)"
                        .into(),
            });
        }
        self.eips.get_mut(name).expect("checked").vm = Some(vm.clone());
        self.changed();
        Ok(())
    }

    pub fn dissociate_eip(&mut self, name: &Name) -> Result<VmId, NetworkError> {
        let Some(vm) = self.eip(name)?.vm.clone() else {
            return Err(NetworkError::NotAssociated {
                what: format!("eip {name}"),
                with: "any vm".into(),
            });
        };
        self.eips.get_mut(name).expect("checked").vm = None;
        self.changed();
        Ok(vm)
    }

    /// The interface an EIP of `vm` is NATed to: its first on a routed vxnet.
    pub fn routed_nic(&self, vm: &VmId) -> Option<Nic> {
        self.nics_of(vm).into_iter().find(|n| {
            self.vxnets
                .get(&n.vxnet)
                .is_some_and(|v| v.router.is_some())
        })
    }

    // ------------------------------------------------------- DNS aliases

    pub fn create_alias(&mut self, name: Name) -> Result<&Alias, NetworkError> {
        if self.aliases.contains_key(&name) {
            return Err(NetworkError::Exists {
                kind: "dns alias",
                name: name.to_string(),
            });
        }
        if self.aliases.len() >= NETWORK_LIMITS.aliases {
            return Err(NetworkError::Limit {
                kind: "dns alias",
                max: NETWORK_LIMITS.aliases,
            });
        }
        self.changed();
        Ok(self
            .aliases
            .entry(name.clone())
            .or_insert(Alias { name, vm: None }))
    }

    pub fn delete_alias(&mut self, name: &Name) -> Result<(), NetworkError> {
        self.alias(name)?;
        self.aliases.remove(name);
        self.changed();
        Ok(())
    }

    /// The VM needs an interface (the alias resolves to its address).
    pub fn associate_alias(
        &mut self,
        name: &Name,
        vm: &VmId,
        vm_exists: bool,
    ) -> Result<(), NetworkError> {
        let alias = self.alias(name)?;
        if !vm_exists {
            return Err(not_found("vm", vm));
        }
        if let Some(other) = &alias.vm {
            return Err(NetworkError::AlreadyAssociated {
                what: format!("dns alias {name}"),
                with: format!("vm {other}"),
            });
        }
        if self.nics_of(vm).is_empty() {
            return Err(NetworkError::Invalid {
                what: format!("vm {vm}"),
                expected: "an interface on a vxnet (the alias resolves to its address)".into(),
            });
        }
        self.aliases.get_mut(name).expect("checked").vm = Some(vm.clone());
        self.changed();
        Ok(())
    }

    pub fn dissociate_alias(&mut self, name: &Name) -> Result<VmId, NetworkError> {
        let Some(vm) = self.alias(name)?.vm.clone() else {
            return Err(NetworkError::NotAssociated {
                what: format!("dns alias {name}"),
                with: "any vm".into(),
            });
        };
        self.aliases.get_mut(name).expect("checked").vm = None;
        self.changed();
        Ok(vm)
    }

    /// What the alias resolves to: its VM's first address.
    pub fn resolve(&self, name: &Name) -> Result<(VmId, Ipv4Addr), NetworkError> {
        let alias = self.alias(name)?;
        let vm = alias
            .vm
            .clone()
            .ok_or_else(|| NetworkError::NotAssociated {
                what: format!("dns alias {name}"),
                with: "any vm".into(),
            })?;
        let nic = self
            .nics_of(&vm)
            .into_iter()
            .next()
            .ok_or_else(|| NetworkError::Invalid {
                what: format!("dns alias {name}"),
                expected: format!("vm {vm} to have an interface"),
            })?;
        Ok((vm, nic.ip))
    }
}
