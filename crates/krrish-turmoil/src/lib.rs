//! krrish-turmoil: the turmoil world. The controller and one agent per host
//! run as the real tokio services on turmoil hosts and talk over turmoil's
//! simulated TCP (connection resets on crash, partitions, held packets),
//! above the simulated cluster of `krrish-sim`. Socket-level realism; cost
//! grows with hosts × ticks, so it suits protocol and fault tests up to a
//! few dozen hosts (the event world, `krrish-event`, takes the rest).
//!
//! Map:
//! - [`world`] — [`SimWorld`]: builds the turmoil simulation, steps it,
//!   keeps turmoil's hosts and links in line with ground truth, runs the
//!   checkers; implements `krrish_sim::SimulatedWorld`.
//! - [`transport`] — turmoil's TCP and clock behind the services' seams.

pub mod transport;
pub mod world;

pub use world::SimWorld;
