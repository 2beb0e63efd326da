//! What a VM's host must make real for it, from the cloud's records: its
//! network ([`GuestNetwork`]: vxnet NICs and EIPs) and its volumes. The
//! controller sends it to the agent of the host the VM runs on, with the
//! boot and whenever it changes; the agent's driver makes the host match
//! (a simulated host keeps it, and the simulated data plane and disks only
//! honour what a host was told).

use crate::network::GuestNetwork;
use crate::{Cloud, Name};
use krrish_core::VmId;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestConfig {
    pub network: GuestNetwork,
    /// Attached volumes, in name order.
    #[serde(default)]
    pub volumes: Vec<GuestVolume>,
}

/// A volume attached to the VM: a disk on the DFS its host plugs in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestVolume {
    pub name: Name,
    pub size_gib: u64,
}

impl GuestConfig {
    pub fn is_empty(&self) -> bool {
        self.network.is_empty() && self.volumes.is_empty()
    }
}

impl std::fmt::Display for GuestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.network)?;
        if !self.volumes.is_empty() {
            let v: Vec<String> = self
                .volumes
                .iter()
                .map(|v| format!("{} ({} GiB)", v.name, v.size_gib))
                .collect();
            write!(f, "; volumes {}", v.join(", "))?;
        }
        Ok(())
    }
}

impl Cloud {
    /// What `vm`'s host must realise for it now.
    pub fn guest_config(&self, vm: &VmId) -> GuestConfig {
        GuestConfig {
            network: self.network.guest_network(vm),
            volumes: self
                .storage
                .describe_volumes()
                .into_iter()
                .filter(|v| v.attached_to.as_ref() == Some(vm))
                .map(|v| GuestVolume {
                    name: v.name,
                    size_gib: v.size_gib,
                })
                .collect(),
        }
    }
}
