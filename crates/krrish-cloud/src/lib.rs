//! The cloud's resources, as the controller keeps them: what an operator
//! creates through the API beside the VMs the HA core places. Sans-IO like
//! `krrish-core`: no clock, no sockets; every call checks first and changes
//! nothing when it refuses (a typed [`CloudError`] says why).
//!
//! - [`name`] — resource names: `[a-z0-9][a-z0-9-]{0,62}`, so no markup or
//!   shell syntax ever reaches a log, a UI or a script.
//! - [`network`] — vxnets (private networks, IPs allocated by the policy),
//!   routers, EIPs (internet and external), DNS aliases, load balancers
//!   ([`network::lb`]: external on an EIP or internal on a vxnet, listeners,
//!   backends, health checks with hysteresis), and the data plane that says
//!   whether a packet gets through — or a request is served — given where
//!   VMs run and the state of hosts and bonds.
//! - [`storage`] — volumes (thin, thick, thick lazy-zeroed), disks as
//!   snapshot chains of differencing layers holding per-block content, and
//!   the DFS image repository.
//! - [`rdb`] — managed RDB clusters: a primary and a standby VM on
//!   different hosts, an epoch (fencing token), health judged on the same
//!   data-plane read as the LB checks, the standby promoted when the
//!   primary is down, the old primary back only as standby.
//! - [`replica_set`] — what the managed services share: members, the
//!   primary, the epoch, health checks and the election rule (synchronous
//!   for RDB, majority for MongoDB, asynchronous for cache shards).
//! - [`mongodb`] — MongoDB replica sets of 3, 5 or 7 VMs on different hosts:
//!   a primary only with a majority ready, the newest member elected.
//! - [`cache`] — Redis-Cluster-style caches: shards of a master and
//!   replicas on different hosts; a replica promoted when its master dies;
//!   cluster state `fail` while a shard has no master.
//! - [`health`] — health-check results in a row counted towards two
//!   thresholds (load-balancer backends and RDB members alike).
//! - [`CloudRequest`] — the API calls on these resources as they cross the
//!   wire; [`Cloud`] holds the resources, answers the calls
//!   ([`Cloud::apply`]), follows the HA core's placements
//!   ([`Cloud::vm_placed`]), completes image syncs on its timer, and takes
//!   the simulated guests' writes. Load-balancer health checks keep their
//!   clock in the network's records; the controller runs them on its timer
//!   against a [`network::lb::FabricReport`] its shell reads; the RDBs'
//!   checks ride on the same read ([`Cloud::run_health_checks`]).

pub mod cache;
mod cloud;
pub mod guest;
pub mod health;
pub mod mongodb;
pub mod name;
pub mod network;
pub mod rdb;
pub mod replica_set;
mod request;
mod service_calls;
pub mod storage;

pub use cloud::{Cloud, IMAGE_SYNC_MIB_PER_S};
pub use guest::{GuestConfig, GuestVolume};
pub use name::{Name, NameError};
pub use request::{CloudError, CloudReply, CloudRequest, Family};
