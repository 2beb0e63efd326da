//! What the managed services share: a **replica set** of VMs, one of which
//! is the primary, an **epoch** (a fencing token, MongoDB's term) bumped by
//! every election, members' health judged on the controller's timer
//! against one data-plane read ([`crate::network::dataplane::Fabric`]),
//! and the **election rule** that says who may take over:
//!
//! | rule | service | primary lost | nobody ready |
//! |---|---|---|---|
//! | [`Election::Synchronous`] | RDB (primary + standby) | the ready standby is promoted | no primary until the latest primary (the newest data) is back |
//! | [`Election::Majority`] | MongoDB replica set (3, 5 or 7) | the first ready member in the order given (its priority) is elected, only while a majority is healthy; without a majority the primary steps down | no primary until a majority is back |
//! | [`Election::Asynchronous`] | cache shard (master + replica) | the ready replica is promoted | the first member back becomes master (a cache accepts losing what was not replicated) |
//!
//! A member passes a check when its guest runs exactly once, on a host
//! whose VM network (bond1) carries traffic; it is unhealthy after
//! `unhealthy_threshold` failed checks in a row and healthy again after
//! `healthy_threshold` good ones ([`crate::health::CheckCount`]). Members
//! reached by a check learn the epoch: one that was away while it moved on
//! comes back with a stale epoch and rejoins as a secondary — never a
//! second primary. There is one `primary` field, so two primaries cannot
//! even be written down.

use crate::health::{CheckCount, Reached};
use crate::name::Name;
use crate::network::dataplane::{the_host, Fabric};
use krrish_core::{HostId, VmId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use thiserror::Error;

/// Default check interval (ms).
pub const CHECK_INTERVAL_MS: u64 = 2_000;
/// Failed checks in a row that make a member unhealthy.
pub const UNHEALTHY_THRESHOLD: u32 = 3;
/// Good checks in a row that make an unhealthy member healthy again.
pub const HEALTHY_THRESHOLD: u32 = 2;

/// Who may become primary, and when (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Election {
    Synchronous,
    Majority,
    Asynchronous,
}

impl Election {
    /// What the service calls its two roles.
    fn roles(self) -> (&'static str, &'static str) {
        match self {
            Election::Synchronous => ("primary", "standby"),
            Election::Majority => ("primary", "secondary"),
            Election::Asynchronous => ("master", "replica"),
        }
    }
}

/// One VM of a set, as its checks see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub vm: VmId,
    /// Healthy until `unhealthy_threshold` failed checks in a row; healthy
    /// again after `healthy_threshold` good ones.
    pub healthy: bool,
    /// Its checks' results in a row.
    #[serde(flatten)]
    pub checks: CheckCount,
    /// Where its guest ran at the latest check (or was placed at creation).
    pub host: Option<HostId>,
    /// The epoch it was last told of (stale while it was unreachable).
    pub epoch: u64,
}

impl Member {
    pub fn new(vm: VmId, host: HostId) -> Self {
        Member {
            vm,
            healthy: true,
            checks: Default::default(),
            host: Some(host),
            epoch: 1,
        }
    }

    /// Healthy, and its latest check passed.
    pub fn ready(&self) -> bool {
        self.healthy && self.checks.failures == 0
    }
}

/// The members, who is primary, and the epoch. Serialized flat into the
/// service that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSet {
    /// Given at creation; their order never changes (roles do).
    pub members: Vec<Member>,
    /// The member serving writes; `None` while none may.
    pub primary: Option<VmId>,
    /// The member that was primary last (the one with the newest data).
    pub latest_primary: VmId,
    pub epoch: u64,
}

impl ReplicaSet {
    /// The first member primary at epoch 1; `placed` pairs each VM with
    /// its host now.
    pub fn new(placed: Vec<(VmId, HostId)>) -> Self {
        let first = placed[0].0.clone();
        ReplicaSet {
            members: placed
                .into_iter()
                .map(|(vm, host)| Member::new(vm, host))
                .collect(),
            primary: Some(first.clone()),
            latest_primary: first,
            epoch: 1,
        }
    }

    pub fn member(&self, vm: &VmId) -> Option<&Member> {
        self.members.iter().find(|m| &m.vm == vm)
    }

    fn member_mut(&mut self, vm: &VmId) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| &m.vm == vm)
            .expect("a member")
    }

    pub fn is_primary(&self, vm: &VmId) -> bool {
        self.primary.as_ref() == Some(vm)
    }

    /// A host two or more members ran on at the latest check, if any.
    pub fn shared_host(&self) -> Option<&HostId> {
        let mut seen = BTreeSet::new();
        self.members
            .iter()
            .filter_map(|m| m.host.as_ref())
            .find(|h| !seen.insert(*h))
    }

    /// Makes `vm` primary at the next epoch. The members ready now take
    /// part (they know the epoch at once); the others learn it when a
    /// check reaches them again.
    fn elect(&mut self, vm: &VmId) -> u64 {
        self.epoch += 1;
        self.primary = Some(vm.clone());
        self.latest_primary = vm.clone();
        let epoch = self.epoch;
        self.member_mut(vm).epoch = epoch;
        for m in self.members.iter_mut().filter(|m| m.ready()) {
            m.epoch = epoch;
        }
        epoch
    }

    /// A planned handover to `to` (all members ready): the epoch moves on.
    pub fn switch_to(&mut self, to: &VmId) {
        self.elect(to);
        let epoch = self.epoch;
        for m in &mut self.members {
            m.epoch = epoch;
        }
    }

    /// How many members are healthy (past the thresholds' hysteresis).
    fn healthy_count(&self) -> usize {
        self.members.iter().filter(|m| m.healthy).count()
    }

    /// A majority of the members is healthy.
    fn majority_healthy(&self) -> bool {
        self.healthy_count() * 2 > self.members.len()
    }

    /// A majority of the members answered their latest check: who can
    /// vote in an election now. (Stepping down waits for the health
    /// hysteresis; electing must not count a member whose latest check
    /// already failed, or one of three alive elects itself.)
    fn majority_ready(&self) -> bool {
        self.members.iter().filter(|m| m.ready()).count() * 2 > self.members.len()
    }

    /// Who may become primary now under `rule`, the current one having
    /// failed or there being none.
    fn candidate(&self, rule: Election) -> Option<VmId> {
        let ready = |m: &&Member| m.ready() && !self.is_primary(&m.vm);
        match rule {
            Election::Synchronous => match &self.primary {
                Some(_) => self.members.iter().find(ready).map(|m| m.vm.clone()),
                None => self
                    .member(&self.latest_primary)
                    .filter(|m| m.ready())
                    .map(|m| m.vm.clone()),
            },
            Election::Majority => {
                if !self.majority_ready() {
                    return None;
                }
                // Every member a check reaches is caught up (it learns the
                // epoch, as it replicates): the first ready in the order
                // given at creation (its priority) wins.
                self.members.iter().find(ready).map(|m| m.vm.clone())
            }
            Election::Asynchronous => self.members.iter().find(ready).map(|m| m.vm.clone()),
        }
    }

    /// The members but `vm`, as a list for a log line.
    fn others(&self, vm: &VmId) -> String {
        let names: Vec<&str> = self
            .members
            .iter()
            .filter(|m| &m.vm != vm)
            .map(|m| m.vm.as_str())
            .collect();
        names.join(", ")
    }

    /// One round of checks on one data-plane read: health, then the
    /// election `rule` allows, then the epoch taught to the members
    /// reached. One line per change, each starting with `label` (e.g.
    /// `rdb db-1`).
    pub fn check(
        &mut self,
        label: &str,
        rule: Election,
        thresholds: (u32, u32),
        fabric: &dyn Fabric,
    ) -> Vec<String> {
        let (healthy_at, unhealthy_at) = thresholds;
        let mut lines = Vec::new();
        let was_shared = self.shared_host().cloned();
        for m in self.members.iter_mut() {
            let (host, result) = probe(fabric, &m.vm);
            m.host = host;
            match m.checks.record(result, healthy_at, unhealthy_at) {
                Some(Reached::Healthy) if !m.healthy => {
                    m.healthy = true;
                    lines.push(format!(
                        "{label}: vm {} healthy again after {healthy_at} good checks",
                        m.vm
                    ));
                }
                Some(Reached::Unhealthy) if m.healthy => {
                    m.healthy = false;
                    lines.push(format!(
                        "{label}: vm {} unhealthy after {unhealthy_at} failed checks: {}",
                        m.vm,
                        m.checks.failing.as_deref().unwrap_or("")
                    ));
                }
                _ => {}
            }
        }
        lines.extend(self.run_election(label, rule));
        let (primary_word, secondary_word) = rule.roles();
        let epoch = self.epoch;
        let primary = self.primary.clone();
        for m in self.members.iter_mut() {
            if m.checks.failures == 0 && m.epoch < epoch {
                let role = if primary.as_ref() == Some(&m.vm) {
                    primary_word
                } else {
                    secondary_word
                };
                lines.push(format!(
                    "{label}: vm {} back with stale epoch {}; rejoins as {role} at epoch {epoch}",
                    m.vm, m.epoch
                ));
                m.epoch = epoch;
            }
        }
        let shared = self.shared_host().cloned();
        if shared != was_shared {
            match shared {
                Some(h) => lines.push(format!("{label} degraded: members share {h}")),
                None => lines.push(format!("{label}: members on different hosts again")),
            }
        }
        lines
    }

    fn run_election(&mut self, label: &str, rule: Election) -> Vec<String> {
        let (primary_word, secondary_word) = rule.roles();
        match self.primary.clone() {
            Some(p) if !self.member(&p).expect("member").healthy => match self.candidate(rule) {
                Some(c) => {
                    let epoch = self.elect(&c);
                    let how = match rule {
                        Election::Majority => "elected",
                        _ => "promoted",
                    };
                    vec![format!(
                            "{label}: {primary_word} {p} down; {secondary_word} {c} {how} to {primary_word} at epoch {epoch}"
                        )]
                }
                None => {
                    self.primary = None;
                    let until = match rule {
                            Election::Synchronous => format!(
                                "{secondary_word} {} not healthy: no {primary_word} until {} (the newest data) is back",
                                self.others(&p),
                                self.latest_primary
                            ),
                            Election::Majority => format!(
                                "no majority: no {primary_word} until a majority of {} members is healthy",
                                self.members.len()
                            ),
                            Election::Asynchronous => format!(
                                "no {secondary_word} ready: no {primary_word} until a member is back"
                            ),
                        };
                    vec![format!("{label}: {primary_word} {p} down and {until}")]
                }
            },
            Some(p) if rule == Election::Majority && !self.majority_healthy() => {
                // It cannot reach a majority: it stops taking writes, as a
                // MongoDB primary steps down, so a majority elsewhere
                // could never be contradicted.
                self.primary = None;
                vec![format!(
                    "{label}: {primary_word} {p} steps down: {} of {} members healthy, no majority; read-only until a majority is healthy",
                    self.healthy_count(),
                    self.members.len()
                )]
            }
            Some(_) => Vec::new(),
            None => {
                let Some(c) = self.candidate(rule) else {
                    return Vec::new();
                };
                if rule == Election::Synchronous {
                    // The latest primary, with the newest data: the same
                    // epoch goes on.
                    self.primary = Some(c.clone());
                    return vec![format!(
                        "{label}: {c} (the latest {primary_word}) back; {primary_word} again at epoch {}",
                        self.epoch
                    )];
                }
                let epoch = self.elect(&c);
                let lost = match rule {
                    Election::Asynchronous => " (writes it had not received are lost)",
                    _ => "",
                };
                vec![format!(
                    "{label}: {c} elected {primary_word} at epoch {epoch}{lost}"
                )]
            }
        }
    }
}

/// Whether a member serves now: its guest runs exactly once, on a host
/// whose VM network (bond1) carries traffic.
fn probe(fabric: &dyn Fabric, vm: &VmId) -> (Option<HostId>, Result<(), String>) {
    match the_host(fabric, vm) {
        Ok(h) if fabric.vm_network_up(&h) => (Some(h), Ok(())),
        Ok(h) => (
            Some(h.clone()),
            Err(format!(
                "{h}'s VM network (bond1) carries no traffic: {vm} is unreachable"
            )),
        ),
        Err(why) => (None, Err(why)),
    }
}

/// A service's check clock and thresholds, serialized flat into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckClock {
    pub interval_ms: u64,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    pub next_check_ms: u64,
}

impl CheckClock {
    /// The defaults, first due one interval after `now_ms`.
    pub fn starting(now_ms: u64) -> Self {
        CheckClock {
            interval_ms: CHECK_INTERVAL_MS,
            unhealthy_threshold: UNHEALTHY_THRESHOLD,
            healthy_threshold: HEALTHY_THRESHOLD,
            next_check_ms: now_ms + CHECK_INTERVAL_MS,
        }
    }

    pub fn thresholds(&self) -> (u32, u32) {
        (self.healthy_threshold, self.unhealthy_threshold)
    }

    pub fn due(&self, due_by: u64) -> bool {
        self.next_check_ms <= due_by
    }

    /// Checked (or skipped) at `now_ms`: due an interval later.
    pub fn put_off(&mut self, now_ms: u64) {
        let next = self.next_check_ms + self.interval_ms;
        self.next_check_ms = if next > now_ms {
            next
        } else {
            now_ms + self.interval_ms
        };
    }
}

/// A managed service checked on its own clock: an RDB, a MongoDB replica
/// set, a cache cluster. The functions below run any collection of them
/// on the controller's timer.
pub trait Checked {
    fn clock(&self) -> &CheckClock;
    fn clock_mut(&mut self) -> &mut CheckClock;
    /// Every member of every set it holds.
    fn member_vms(&self) -> Vec<&VmId>;
    /// One round of checks on one data-plane read; a line per change.
    fn check(&mut self, fabric: &dyn Fabric) -> Vec<String>;
}

/// [`Checked`] for a service that is one replica set (`set`) on its own
/// clock (`clock`), named `name`, under one election rule: its lines say
/// `<kind> <name>: …`.
macro_rules! checked_single_set {
    ($service:ty, $kind:literal, $rule:expr) => {
        impl $crate::replica_set::Checked for $service {
            fn clock(&self) -> &$crate::replica_set::CheckClock {
                &self.clock
            }

            fn clock_mut(&mut self) -> &mut $crate::replica_set::CheckClock {
                &mut self.clock
            }

            fn member_vms(&self) -> Vec<&krrish_core::VmId> {
                self.set.members.iter().map(|m| &m.vm).collect()
            }

            fn check(&mut self, fabric: &dyn $crate::network::dataplane::Fabric) -> Vec<String> {
                let label = format!(concat!($kind, " {}"), self.name);
                let thresholds = self.clock.thresholds();
                self.set.check(&label, $rule, thresholds, fabric)
            }
        }
    };
}
pub(crate) use checked_single_set;

/// Refuses a new service named `name` of `kind` when the name is taken or
/// `max` exist already.
pub fn may_add<V>(
    existing: &std::collections::BTreeMap<Name, V>,
    kind: &'static str,
    name: &Name,
    max: usize,
) -> Result<(), ServiceError> {
    if existing.contains_key(name) {
        return Err(ServiceError::Exists {
            kind,
            name: name.clone(),
        });
    }
    if existing.len() >= max {
        return Err(ServiceError::Limit { kind, max });
    }
    Ok(())
}

/// When the next check of any of `all` is due.
pub fn checks_due<'a, S: Checked + 'a>(all: impl Iterator<Item = &'a S>) -> Option<u64> {
    all.map(|s| s.clock().next_check_ms).min()
}

/// The members of those due by `due_by`.
pub fn check_targets<'a, S: Checked + 'a>(
    all: impl Iterator<Item = &'a S>,
    due_by: u64,
) -> Vec<VmId> {
    let vms: BTreeSet<&VmId> = all
        .filter(|s| s.clock().due(due_by))
        .flat_map(|s| s.member_vms())
        .collect();
    vms.into_iter().cloned().collect()
}

/// Runs the checks of those due by `due_by` whose members the fabric
/// (read at `now_ms`) knows all of; the others stay due.
pub fn run_checks<'a, S: Checked + 'a>(
    all: impl Iterator<Item = &'a mut S>,
    due_by: u64,
    now_ms: u64,
    fabric: &dyn Fabric,
) -> Vec<String> {
    let mut lines = Vec::new();
    for s in all {
        if !s.clock().due(due_by) || !s.member_vms().iter().all(|vm| fabric.knows(vm)) {
            continue;
        }
        lines.extend(s.check(fabric));
        s.clock_mut().put_off(now_ms);
    }
    lines
}

/// The data plane could not be read: nothing judged, due again an
/// interval later.
pub fn skip_checks<'a, S: Checked + 'a>(
    all: impl Iterator<Item = &'a mut S>,
    due_by: u64,
    now_ms: u64,
) {
    for s in all {
        if s.clock().due(due_by) {
            s.clock_mut().put_off(now_ms);
        }
    }
}

/// A controller restored from its store checks each from `now_ms` on.
pub fn restart_checks<'a, S: Checked + 'a>(all: impl Iterator<Item = &'a mut S>, now_ms: u64) {
    for s in all {
        s.clock_mut().next_check_ms = now_ms;
    }
}

/// Why a set of VMs cannot become a managed service's members.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MemberError {
    #[error("{field}: no vm named {vm}")]
    NoSuchVm { field: String, vm: VmId },
    #[error("{field}: vm {vm} is given twice; members must be different VMs")]
    Twice { field: String, vm: VmId },
    #[error("{field}: vm {vm} is not placed on a host (not running or booting)")]
    NotPlaced { field: String, vm: VmId },
    #[error("{field}: vm {vm} is on {host} with {other}: members must be on different hosts (anti-affinity)")]
    SameHost {
        field: String,
        vm: VmId,
        other: VmId,
        host: HostId,
    },
    #[error("{field}: vm {vm} is already a member of {service}")]
    InService {
        field: String,
        vm: VmId,
        service: String,
    },
    #[error("{field}: {why}")]
    Shape { field: String, why: String },
}

/// How a new service's members are looked up: whether a VM exists, where
/// the HA core placed it, and which service (if any) it already serves.
pub struct MemberLookup<'a> {
    pub vm_exists: &'a dyn Fn(&VmId) -> bool,
    pub where_is: &'a dyn Fn(&VmId) -> Option<HostId>,
    pub member_of: &'a dyn Fn(&VmId) -> Option<String>,
}

impl MemberLookup<'_> {
    /// Checks candidate members (`field` names each in errors), the VMs of
    /// each group in `groups` on pairwise different hosts; their hosts.
    pub fn place(
        &self,
        named: &[(String, String)],
        groups: &[std::ops::Range<usize>],
    ) -> Result<Vec<(VmId, HostId)>, MemberError> {
        let mut vms = Vec::new();
        for (field, s) in named {
            let name = Name::parse("vm", s).map_err(|e| MemberError::Shape {
                field: field.clone(),
                why: e.to_string(),
            })?;
            let vm = VmId::new(name.as_str());
            if !(self.vm_exists)(&vm) {
                return Err(MemberError::NoSuchVm {
                    field: field.clone(),
                    vm,
                });
            }
            if vms.contains(&vm) {
                return Err(MemberError::Twice {
                    field: field.clone(),
                    vm,
                });
            }
            if let Some(service) = (self.member_of)(&vm) {
                return Err(MemberError::InService {
                    field: field.clone(),
                    vm,
                    service,
                });
            }
            vms.push(vm);
        }
        let mut placed = Vec::new();
        for ((field, _), vm) in named.iter().zip(&vms) {
            let host = (self.where_is)(vm).ok_or_else(|| MemberError::NotPlaced {
                field: field.clone(),
                vm: vm.clone(),
            })?;
            placed.push((vm.clone(), host));
        }
        for g in groups {
            for i in g.clone() {
                for j in g.start..i {
                    if placed[i].1 == placed[j].1 {
                        return Err(MemberError::SameHost {
                            field: named[i].0.clone(),
                            vm: placed[i].0.clone(),
                            other: placed[j].0.clone(),
                            host: placed[i].1.clone(),
                        });
                    }
                }
            }
        }
        Ok(placed)
    }
}

impl MemberError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            MemberError::NoSuchVm { .. } => "not-found",
            MemberError::InService { .. } => "in-use",
            _ => "invalid-request",
        }
    }
}

/// Why a call on a MongoDB replica set or a cache cluster was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ServiceError {
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error("name: {kind} {name} already exists")]
    Exists { kind: &'static str, name: Name },
    #[error("name: no {kind} named {name}")]
    NotFound { kind: &'static str, name: Name },
    #[error("name: at most {max} {kind}s")]
    Limit { kind: &'static str, max: usize },
}

impl ServiceError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Member(e) => e.code(),
            ServiceError::Exists { .. } => "exists",
            ServiceError::NotFound { .. } => "not-found",
            ServiceError::Limit { .. } => "limit",
        }
    }
}

impl ReplicaSet {
    /// The members as describe shows them, each with its role as `rule`
    /// names it.
    pub fn members_json(&self, rule: Election) -> Vec<serde_json::Value> {
        self.members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "vm": m.vm,
                    "role": rule.role_of(self, &m.vm),
                    "healthy": m.healthy,
                    "host": m.host,
                    "epoch": m.epoch,
                    "stale": m.epoch < self.epoch,
                    "failing": m.checks.failing,
                })
            })
            .collect()
    }
}

impl Election {
    /// The role `vm` holds in `set`, as this rule names it.
    pub fn role_of(self, set: &ReplicaSet, vm: &VmId) -> &'static str {
        let (primary, secondary) = self.roles();
        if set.is_primary(vm) {
            primary
        } else {
            secondary
        }
    }
}
