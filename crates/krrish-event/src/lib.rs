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
//! - [`world`] — [`EventWorld`]: the queue's loop, deliveries, ground truth
//!   followed (power, paths), faults; implements `krrish_sim::SimulatedWorld`.
//! - `controller_side` / `agent_side` — moving each machine's outputs to
//!   where and when they take effect.

mod agent_side;
mod agents;
mod controller_side;
pub mod net;
pub mod queue;
pub mod world;

pub use queue::EventQueue;
pub use world::EventWorld;
