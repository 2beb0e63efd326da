//! What a VM's host must make real for it, from the cloud's records: its
//! network ([`GuestNetwork`]: vxnet NICs and EIPs) and its volumes. The
//! controller sends it to the agent of the host the VM runs on, with the
//! boot and whenever it changes; the agent's driver makes the host match
//! (a simulated host keeps it, and the simulated data plane and disks only
//! honour what a host was told).

use crate::network::GuestNetwork;
use crate::storage::DiskOp;
use crate::{Cloud, Name};
use krrish_core::VmId;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestConfig {
    pub network: GuestNetwork,
    /// Attached volumes, in name order.
    #[serde(default)]
    pub volumes: Vec<GuestVolume>,
    /// Snapshot work on the VM's disks its host has not confirmed, in
    /// order ([`crate::storage::disk_ops`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disk_ops: Vec<DiskOp>,
    /// Which root disk of its name the VM has (see
    /// [`crate::storage::RootDisk::incarnation`]); 0: none recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub root_disk: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A volume attached to the VM: a disk on the DFS its host plugs in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestVolume {
    pub name: Name,
    pub size_gib: u64,
}

impl GuestConfig {
    /// The last snapshot op it carries (0: none).
    pub fn disk_ops_through(&self) -> u64 {
        self.disk_ops.last().map_or(0, |op| op.seq)
    }

    pub fn is_empty(&self) -> bool {
        self.network.is_empty() && self.volumes.is_empty() && self.disk_ops.is_empty()
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
        if !self.disk_ops.is_empty() {
            let ops: Vec<String> = self.disk_ops.iter().map(|o| o.to_string()).collect();
            write!(f, "; disk ops {}", ops.join(", "))?;
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
            disk_ops: self.storage.disk_ops(vm).to_vec(),
            root_disk: self.storage.root_disk_incarnation(vm),
        }
    }
}
