//! krrish-core: the control plane's decisions, with no I/O.
//!
//! Nothing here touches a clock, a socket, a file or a global RNG. Time comes
//! in as `now_ms` arguments; decisions go out as [`ha::Command`]s; events come
//! in through `handle_*` methods. Every `if` about *whether* to act lives here,
//! so the controller, the simulators and the capacity planner all share it.
//!
//! Map:
//! - [`ids`] — newtype ids (`HostId`, `VmId`).
//! - [`model`] — zones, hosts with their bonded networks, VMs, HA policies,
//!   resources.
//! - [`ipam`] — the IP policy per zone (OPS last octet < 149, others < 199,
//!   gateway .247).
//! - [`link_name`] — the one rule for a host's network link names
//!   (`bond0.100` yes, `../x` or `-f` no).
//! - [`spares`] — the spare-pool sizing rule (≤10 → 1, 11–50 → 3, >50 → 5).
//! - [`heartbeat`] — miss counting for one host.
//! - [`timings`] — the agent's timings, derived from the heartbeat interval
//!   and the lease length.
//! - [`lease`] — when an agent that lost its DFS lease stops its VMs.
//! - [`placement`] — the one placement model: new VMs, failover onto spares,
//!   admission; the planner calls the same functions.
//! - [`rules`] — placement rule groups (affinity, anti-affinity, run-on,
//!   not-on; must or should) and the one judgement of where a VM may go
//!   under them; [`rule_check`] — a group in an operator's words (file or
//!   API) checked into one.
//! - [`migration`] — live-migration preconditions.
//! - [`ha`] — the HA state machine: suspect → offline → fence (IPMI, then DFS
//!   lease) → takeover spare → boot from DFS → failback by live migration.
//!   One file per kind of decision:
//!   - `ha/mod.rs` — `HaConfig`, the `HaManager` itself, its views and output queues.
//!   - `ha/types.rs` — host and VM records: liveness, fence stage, spare and VM states.
//!   - `ha/errors.rs` — refusals of API calls, driver and fencing errors.
//!   - `ha/command.rs` — `Command`s for drivers, as they print.
//!   - `ha/notice.rs` — `Notice`s for traces and status; `ha/notice_text.rs` — how they print.
//!   - `ha/liveness.rs` — heartbeats, what hosts run, misses → offline, every deadline.
//!   - `ha/fencing.rs` — IPMI, else DFS lease, else give up; then release VMs by policy.
//!   - `ha/recovery.rs` — boots: failover onto spares (and production hosts,
//!     if allowed), results, spare states.
//!   - `ha/boot_failures.rs` — failed boots: restart in place, relocate to
//!     untried hosts, then `error`.
//!   - `ha/maintenance.rs` — maintenance by API: drain or refuse, no fence
//!     for a drained host powered off.
//!   - `ha/failback.rs` — VMs back home by live migration once their host is back.
//!   - `ha/placement_rules.rs` — the rule groups applied to every placement.
//!   - `ha/affinity.rs` — affinity groups moving together, and rejoining.
//!   - `ha/drs.rs` — DRS: load balancing by live migration.
//!   - `ha/dpm.rs` — DPM: idle production hosts drained and powered off,
//!     powered on when failover or load needs them.
//!   - `ha/operator_rules.rs` — rule groups and the HA switch set through
//!     the API, persisted.
//!   - `ha/api.rs` — create, start, migrate and stop VMs on an operator's request.
//!   - `ha/persist.rs` — `CoreSnapshot`, and a restarted controller resuming from it.
//!   - `ha/vm_table.rs` — the VM records indexed by the hosts they name.
//! - [`testkit`] — `TwoParty`: the HA manager against a model of hosts, a
//!   step harness for directed HA cases in microseconds (no world).

pub mod ha;
pub mod heartbeat;
pub mod ids;
pub mod ipam;
pub mod lease;
pub mod link_name;
pub mod migration;
pub mod model;
pub mod placement;
pub mod rule_check;
pub mod rules;
pub mod spares;
pub mod testkit;
pub mod timings;

pub use ha::{Command, HaConfig, HaManager, Notice};
pub use ids::{HostId, VmId};
pub use model::{BondHealth, BondName, HaPolicy, HostSpec, Resources, VmSpec, Zone};
