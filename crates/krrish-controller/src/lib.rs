//! krrish-controller: the control plane service.
//!
//! Map:
//! - [`machine`] — [`ControllerMachine`]: the HA core, the cloud's other
//!   resources (`krrish-cloud`), connection and command bookkeeping, fed with frames, fencing answers and timer expiries;
//!   it returns [`ControllerOutput`]s. Every world drives this same machine.
//! - [`status`] — [`ClusterStatus`], what operators (and scenario
//!   expectations) read.
//! - [`store`] — [`Store`], the [`ControllerSnapshot`] (core and cloud) in a
//!   redb database, written
//!   after every decision and read back on restart.
//! - [`service`] — [`run_controller`], the tokio shell: listener,
//!   per-connection reader/writer tasks, timers, the [`Fencer`] (IPMI and
//!   DFS lease) calls and the [`FabricReader`] (the data plane, for the load
//!   balancers' health checks).

pub mod machine;
pub mod service;
pub mod status;
pub mod store;

pub use machine::{
    ControllerMachine, ControllerOutput, ControllerSnapshot, FABRIC_READ_TIMEOUT_MS,
};
pub use service::{run_controller, FabricReader, Fencer};
pub use status::ClusterStatus;
pub use store::{Store, StoreError};
