//! krrish-agent: one per host. It heartbeats to the controller, keeps the
//! host's DFS lease and incremental disk sync going, stops its own VMs when
//! the lease lapses, and carries out the controller's commands through a
//! [`Driver`] — simulated (`krrish-sim`) or real (libvirt, netlink).
//!
//! Map:
//! - [`machine`] — [`AgentMachine`], the agent's logic as a state machine fed
//!   with frames, results and timer expiries; it returns [`AgentOutput`]s.
//!   Every world (turmoil, event-driven, real) drives this same machine.
//! - [`driver`] — the [`Driver`] trait the backends implement.
//! - [`service`] — [`run_agent`], the thin tokio shell: connection, timers,
//!   driver calls.

pub mod driver;
pub mod machine;
pub mod service;

pub use driver::{Driver, DriverError};
pub use krrish_cloud::network::{GuestEip, GuestNetwork, GuestNic};
pub use krrish_cloud::{GuestConfig, GuestVolume};
pub use machine::{AgentConfig, AgentMachine, AgentOutput, HostStatus};
pub use service::run_agent;
