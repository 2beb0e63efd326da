//! krrish-event: the event-driven world. The same controller and agent
//! machines that ship, the same simulated hosts, faults, checkers and trace
//! as the turmoil world — driven by one priority queue of timed events
//! instead of sockets and a runtime, so a simulated hour of a thousand hosts
//! takes seconds. The default world for swarms and large clusters.
//!
//! Map:
//! - [`queue`] — [`EventQueue`], bounded, earliest first, ties in order.
//! - [`net`] — the management network message by message: latency, FIFO,
//!   cuts that break connections, stalls that hold messages.
//! - [`world`] — [`EventWorld`], which moves machine outputs to where and
//!   when they arrive and implements `krrish_sim::SimulatedWorld`.

pub mod net;
pub mod queue;
pub mod world;

pub use queue::EventQueue;
pub use world::EventWorld;
