//! krrish-sim: the simulated world.
//!
//! The controller and one agent per host run as real tokio services on
//! turmoil hosts and talk over turmoil TCP. Below the agents, the physics of
//! the cluster — power, BMCs, bonded NICs, hypervisor domains, DFS leases and
//! disk syncs — lives in one [`World`], behind the same `Driver` and
//! `Fencer` traits the real backends implement. One seed drives it all.
//!
//! Map:
//! - [`world`] — [`World`]: ground truth (what runs where, what is synced,
//!   who holds a lease), with RTO/RPO measurement.
//! - [`ops`] — the hosts' and fencer's operations in "starts now, completes
//!   at t" form, shared by every simulated world.
//! - [`driver`] — [`SimDriver`] (an agent's hypervisor/network/storage) and
//!   [`SimFencer`] (IPMI and DFS lease revocation).
//! - [`fault`] — [`Fault`]s a scenario or a swarm injects.
//! - [`checkers`] — invariants checked after every step, separate from the
//!   code they check.
//! - [`simulated`] — [`SimulatedWorld`], the trait every world implements
//!   for the scenario runner.
//! - [`harness`] — [`SimWorld`]: builds the turmoil simulation and steps it.
//! - [`trace`] — the one-line-per-event trace buffer.
//! - [`demo`] — generated clusters for tests and benchmarks.

pub mod checkers;
pub mod demo;
pub mod driver;
pub mod fault;
pub mod harness;
pub mod ops;
pub mod simulated;
pub mod trace;
pub mod world;

pub use checkers::{Checkers, Violation};
pub use driver::{SimDriver, SimFencer};
pub use fault::Fault;
pub use harness::{SimConfig, SimWorld};
pub use simulated::SimulatedWorld;
pub use trace::TraceBuf;
pub use world::{Timings, World};
