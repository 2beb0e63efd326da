//! The tenant network: what an operator creates with `CreateVxnets`,
//! `CreateRouters`, `JoinRouter`, `JoinVxnet`, `AllocateEips`,
//! `AssociateEip`, `CreateDNSAliases`, `AssociateDNSAlias` (QingCloud's
//! names), and whether a packet gets through ([`dataplane`]).
//!
//! - A **vxnet** is a private network carried over VXLAN on the hosts' VM
//!   network (bond1), one /24 each. VMs take addresses by the notes' policy
//!   (last octet 1–198; `.247` is the gateway — the router's address).
//! - A **router** joins vxnets: VMs on vxnets of one router reach each other,
//!   and a VM can be reached through an EIP only from a routed vxnet (the
//!   router does the NAT). Routers are distributed: every host's VGW forwards
//!   for them, so a router has no host of its own to fail.
//! - An **EIP** is a public address from one of two pools: `internet` (the
//!   internet reaches it) or `external` (the operator's external network,
//!   e.g. a corporate LAN).
//! - A **DNS alias** names a VM; it resolves to the VM's private address.
//! - A **load balancer** ([`lb`]) takes requests on an EIP (external) or a
//!   vxnet address (internal) and spreads them over backend VMs its health
//!   checks find reachable.
//!
//! Every call checks everything first and changes nothing when it refuses.

mod addresses;
pub(crate) mod calls;
pub mod dataplane;
pub mod guest;
pub mod lb;
mod resources;

pub use guest::{GuestEip, GuestNetwork, GuestNic, GuestRoute};
pub use resources::{
    Alias, Eip, EipKind, Network, NetworkError, Nic, Router, Vxnet, NETWORK_LIMITS,
};
