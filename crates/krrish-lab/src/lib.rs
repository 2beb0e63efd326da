//! krrish-lab: the lab in a box. A host is a network namespace with its
//! own links and its own agent process; all hosts' guests run in the one
//! libvirtd, each domain carrying its host's name.
//!
//! Map:
//! - [`topology`] — the networks: a management bridge the controller is on,
//!   a flat VM network with an "outside" namespace to ping guests from, and
//!   per host a namespace with bond members, the VM bridge and uplinks.
//! - [`power`] — a host's power: off = agent killed, domains destroyed,
//!   links down (what its BMC does); on = links up (the caller starts the
//!   agent again); whether its agent runs (its pid file).
//! - [`ipmi`] — IPMI over LAN from this machine (`ipmitool lanplus`,
//!   bounded): chassis power status, on, off.
//! - [`inventory`] — physical lab hosts (`--inventory FILE`): how to reach
//!   each, its libvirt, links and BMC, and the DFS they share; checked
//!   whole, every error naming file, line and field.
//! - [`preflight`] — checks an inventory's hosts before anything runs on
//!   them (reach, krrish, links, guest image, shared DFS, libvirt, BMC).
//! - [`remote`] — commands, files and background processes on an
//!   inventory host through its `run` prefix, bounded in time.

pub mod inventory;
pub mod ipmi;
pub mod power;
pub mod preflight;
pub mod remote;
pub mod topology;

pub use krrish_netlink::Netns;
pub use power::{power_off, power_on};
pub use topology::{HostNet, Topology};

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Net(#[from] krrish_netlink::NetError),
    #[error(transparent)]
    Libvirt(#[from] krrish_libvirt::LibvirtError),
    #[error("{0}")]
    Other(String),
}
