//! krrish-plan: what each spare-pool size buys.
//!
//! Map:
//! - [`model`] — [`PlanInput`]: hosts, their VMs, racks, failure and repair
//!   distributions, the failover time; validated with [`PlanError`].
//! - [`engine`] — the event-driven Monte Carlo. Per trial it draws every
//!   host's failures and repairs once (common random numbers), then replays
//!   that history for each spare count, placing VMs with
//!   `krrish_core::placement::place_group` — the function the HA manager uses
//!   (`engine/by_rules.rs`: under a cluster's rule groups, the core's
//!   rule-aware placement and judgement).
//! - [`stats`] — estimates with 95 % confidence intervals, RTO histogram.
//! - [`analytic`] — closed forms for independent exponential failures, to
//!   cross-check the Monte Carlo.
//! - [`report`] — the table, JSON rows and the SVG plot.

pub mod analytic;
pub mod engine;
pub mod model;
pub mod report;
pub mod stats;

pub use engine::{plan, PlanResult, Row};
pub use model::{Lifetime, PlanError, PlanHost, PlanInput, PlanRules, Repair};
