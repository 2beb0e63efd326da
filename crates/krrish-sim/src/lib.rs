//! krrish-sim: the simulated cluster, whichever world drives the control
//! plane over it (turmoil's sockets in `krrish-turmoil`, the event queue in
//! `krrish-event`). The physics of the cluster — power, BMCs, bonded NICs,
//! hypervisor domains, DFS leases and disk syncs — lives in one [`World`];
//! faults, checkers and the trace are here too. No turmoil in this crate:
//! what differs between worlds is only how messages and timers move. One
//! seed drives it all.
//!
//! Map:
//! - [`world`] — [`World`]: ground truth (what runs where, what is synced,
//!   who holds a lease), with RTO/RPO measurement.
//! - [`hypervisor`] — the world's guest operations as libvirt answers them:
//!   start (with injected boot failures), stop, reboot, self-fence, live
//!   migrations.
//! - [`ops`] — the hosts' and fencer's operations in "starts now, completes
//!   at t" form, shared by every simulated world.
//! - [`driver`] — [`SimDriver`] (an agent's hypervisor/network/storage),
//!   [`SimFencer`] (IPMI and DFS lease revocation) and [`SimFabric`] (the
//!   data plane, for the load balancers' health checks).
//! - [`fault`] — [`Fault`]s a scenario or a swarm injects.
//! - [`checkers`] — invariants checked after every step, separate from the
//!   code they check.
//! - [`simulated`] — [`SimulatedWorld`], the trait every world implements
//!   for the scenario runner.
//! - [`config`] — [`SimConfig`], what every world is configured with.
//! - [`trace`] — the one-line-per-event trace buffer.
//! - [`demo`] — generated clusters for tests and benchmarks.

pub mod checkers;
pub mod config;
pub mod demo;
pub mod driver;
pub mod fault;
pub mod hypervisor;
pub mod ops;
pub mod simulated;
pub mod trace;
pub mod world;

pub use checkers::{Checkers, Violation};
pub use config::SimConfig;
pub use driver::{SimDriver, SimFabric, SimFencer};
pub use fault::{DfsServiceChange, Fault};
pub use simulated::SimulatedWorld;
pub use trace::TraceBuf;
pub use world::{Timings, World};
