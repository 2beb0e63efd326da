//! krrish-libvirt: the agent's [`Driver`](krrish_agent::Driver) on a real
//! hypervisor through libvirt (crate `virt`).
//!
//! Map:
//! - [`names`] — the domain and tap names a host's VMs get; every VM and
//!   host name is checked before it reaches libvirt, the kernel or a path.
//! - [`domain_xml`] — domain XML written with an XML writer (never by string
//!   formatting): direct kernel boot, virtio disk and NIC, serial to a file.
//! - [`guest`] — the lab guest (kernel + initramfs) and its "up" marker.
//! - [`hypervisor`] — the libvirt calls themselves, with typed errors.
//! - [`driver`] — [`LibvirtDriver`]: boots guests from their DFS copies,
//!   plugs their taps into the host namespace's bridge, renews the host's
//!   DFS lease with the lease service.
//! - [`migration`] — live migration to another host's libvirt daemon: the
//!   destination's definition (its name, tap, console) from the source's.
//! - [`tenant`] — the tenant network: a VXLAN and a bridge per vxnet,
//!   guests' NICs plugged in and out, EIPs by nftables NAT.
//! - `disk_ops` — snapshots, their deletion and revert on the real disks
//!   (qcow2 internal snapshots: `qemu-img` while the guest is down, QMP
//!   while it runs; a revert restarts the guest).
//! - [`volumes`] — a guest's volumes: qcow2 files on the DFS plugged in as
//!   virtio disks whose serial names them.
//! - [`status`] — what heartbeats report (running guests, the real links'
//!   carrier as bond health), read on a thread of its own so a heartbeat
//!   never waits on libvirtd.

mod disk_ops;
pub mod domain_xml;
pub mod driver;
pub mod guest;
pub mod hypervisor;
pub mod migration;
pub mod names;
pub mod status;
pub mod tenant;
pub mod volumes;

pub use domain_xml::{DomainSpec, DomainType};
pub use driver::{LabHost, LibvirtDriver};
pub use guest::GuestImage;
pub use hypervisor::{Hypervisor, LibvirtError};
pub use migration::MigrationPeer;
pub use tenant::TenantConfig;
