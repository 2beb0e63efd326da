//! krrish-scenario: scenario and cluster files, and running them.
//!
//! Map:
//! - [`duration`] — `30s`, `2m`, `1h30m`, `500ms` in files.
//! - [`format`] — the serde types of scenario and cluster files (unknown
//!   fields are rejected); `settings` — the settings with a syntax of their
//!   own (memory overcommit, DRS and its window).
//! - [`cluster`] — cluster file → core `HostSpec`s and `VmSpec`s, by hand,
//!   with the IP policy, spare sizing and capacity checked; `cluster_rules`
//!   — its placement rule groups, checked against hosts and homes.
//! - [`expect`] — expectations (`Check`) and their loading.
//! - [`load`] — reading files; every error names file, line, column and what
//!   was expected ([`LoadError`]).
//! - `timeline` — one timeline item → its actions (faults, API calls,
//!   guest writes), checked against the cluster; `cloud_item` — a `cloud:`
//!   item → its request, an error pointing at the field.
//! - [`swarm`] — random clusters and fault schedules per seed, as scenario
//!   text; `swarm_shrink` — shrinking a failing one.
//! - [`run`] — the runner: timeline, faults, API calls, expectations and
//!   invariants over the simulated world; [`RunReport`] with the trace.

mod cloud_item;
pub mod cluster;
mod cluster_rules;
pub mod duration;
pub mod expect;
pub mod format;
pub mod load;
pub mod run;
mod settings;
pub mod swarm;
mod swarm_shrink;
mod timeline;

pub use cluster::Cluster;
pub use load::{load_cluster, load_scenario, parse_scenario, LoadError, Scenario};
pub use run::{run_scenario, RunOptions, RunReport, WorldKind};
