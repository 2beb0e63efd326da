//! Invariants, judged on ground truth after every simulation step. They read
//! the world and the control plane's records; they share no code with the
//! logic they judge.
//!
//! Safety:
//! - `single-instance` — a VM never runs on two hosts at once.
//! - `single-writer` — a VM's DFS disk never has two hosts writing it.
//! - `spare-accounting` — every spare is free, active or unavailable (the
//!   free count cannot go below zero), and a spare the control plane calls
//!   free runs nothing.
//! - `must-rules` — no `must` placement rule is ever broken by what runs:
//!   two VMs of a must anti-affinity group on one host, a VM of a must
//!   run-on group outside its hosts, of a must not-on group on one of them;
//!   the VMs of a must affinity group running on more than one host for
//!   longer than 3 minutes while none of them is being copied (a group
//!   move's members switch over one by one as their copies end, and one
//!   whose migration failed rejoins the others).
//! - `datastores` — while disk moves or datastore drains are under way:
//!   every disk lives on a datastore that exists, each move goes from
//!   where its disk lives to another that exists, one move a disk, at most
//!   two copies at once.
//! - `single-attachment` — a volume is plugged into one running guest at
//!   most (two writers of one disk corrupt it).
//! - `volume-holder` — a running guest that has a volume plugged in is the
//!   VM the cloud records it attached to, or being detached from (after a
//!   grace): a volume recorded free, or another VM's, while a guest still
//!   writes it, is one the control plane would hand to a second writer.
//! - `no-overcommit` — the guests running (or arriving) on a host never need
//!   more than it has (its memory times its overcommit ratio).
//! - `no-vm-lost` — every VM is known to the control plane, and one it
//!   believes running on a reachable host really runs there (after a grace
//!   for messages in flight).
//!
//! Liveness, judged once every fault has healed ([`converged`]): every host
//! up, every protected VM running once at home, every spare free.

use crate::world::{DomainState, World};
use krrish_core::ha::{secs, HaManager, VmState};
use krrish_core::rules::{RuleGroup, RuleKind, Strength};
use krrish_core::{HostId, VmId};
use std::collections::BTreeMap;
use std::fmt;

/// How long the VMs of a must affinity group may run apart with none of
/// them being copied: a member whose migration failed rejoins the others
/// (at once, or after the retry back-off of 60 s) by a copy of its own.
const AFFINITY_APART_GRACE_MS: u64 = 180_000;

/// How long a guest may write a volume the cloud records as not its own:
/// only messages in flight (a telling and its answer) separate the two.
const VOLUME_HOLDER_GRACE_MS: u64 = 5_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub at_ms: u64,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} broken at {}: {}",
            self.invariant,
            secs(self.at_ms),
            self.detail
        )
    }
}

pub struct Checkers {
    /// How long the control plane may believe something false about a VM
    /// (messages in flight, heartbeats not yet sent).
    pub belief_grace_ms: u64,
    seen_generation: u64,
    seen_trace_len: usize,
    seen_controller_up: bool,
    /// Disagreements being timed against the grace, keyed by a description.
    pending: BTreeMap<String, u64>,
    pub checks_run: u64,
}

impl Checkers {
    pub fn new(belief_grace_ms: u64) -> Self {
        Self {
            belief_grace_ms,
            seen_generation: u64::MAX,
            seen_trace_len: usize::MAX,
            seen_controller_up: false,
            pending: BTreeMap::new(),
            checks_run: 0,
        }
    }

    /// Checks everything if anything changed since the last call (or a
    /// disagreement is being timed).
    ///
    /// `controller_up`: whether the controller process runs. A down
    /// controller holds no belief to judge (it tells operators nothing):
    /// the control plane's claims about where VMs run and about its spares
    /// are not timed while it is down, and their grace starts afresh when
    /// it is back — the restored controller must be right within it.
    pub fn check(
        &mut self,
        now_ms: u64,
        world: &World,
        core: &HaManager,
        cloud: &krrish_cloud::Cloud,
        trace_len: usize,
        controller_up: bool,
    ) -> Result<(), Violation> {
        if world.generation == self.seen_generation
            && trace_len == self.seen_trace_len
            && controller_up == self.seen_controller_up
            && self.pending.is_empty()
        {
            return Ok(());
        }
        self.seen_generation = world.generation;
        self.seen_trace_len = trace_len;
        self.seen_controller_up = controller_up;
        self.checks_run += 1;
        let fail = |invariant, detail| {
            Err(Violation {
                invariant,
                at_ms: now_ms,
                detail,
            })
        };

        // single-instance and single-writer: every running domain as
        // (vm, host), sorted — one allocation for the whole cloud.
        let mut running: Vec<(&VmId, &HostId)> = Vec::new();
        for h in world.hosts.values() {
            for (vm, d) in &h.domains {
                if d.state == DomainState::Running {
                    running.push((vm, &h.spec.id));
                }
            }
        }
        running.sort_unstable();
        for group in running.chunk_by(|a, b| a.0 == b.0) {
            if group.len() > 1 {
                let hosts: Vec<&HostId> = group.iter().map(|(_, h)| *h).collect();
                let vm = group[0].0;
                return fail("single-instance", format!("{vm} runs on {}", join(&hosts)));
            }
        }
        // (Unreached while single-instance holds; kept as its own check so
        // a change to the one above cannot silently drop it.)
        for group in running.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            // The hosts running it that can reach the DFS with a lease it
            // honours (World::writers_of, from the list already built).
            let vm = group[0].0;
            let writers: Vec<&HostId> = group
                .iter()
                .map(|(_, h)| *h)
                .filter(|h| world.hosts[*h].storage_up() && world.lease_valid(h, now_ms))
                .collect();
            if writers.len() > 1 {
                return fail(
                    "single-writer",
                    format!("{vm}'s DFS disk written by {}", join(&writers)),
                );
            }
        }

        // datastores: every disk on one that exists, moves consistent and
        // bounded (checked while disk moves or drains are under way).
        if cloud.storage.has_disk_work() {
            if let Err(detail) = cloud.storage.check_datastores() {
                return fail("datastores", detail);
            }
        }

        // must-rules (affinity apart: timed below)
        if let Some(detail) = must_rule_broken(&running, core.rules().groups()) {
            return fail("must-rules", detail);
        }
        // VMs with a live-migration copy arriving somewhere: a group move
        // still under way.
        let arriving: Vec<&VmId> = world
            .hosts
            .values()
            .flat_map(|h| {
                h.domains
                    .iter()
                    .filter(|(_, d)| matches!(d.state, DomainState::Incoming { .. }))
                    .map(|(vm, _)| vm)
            })
            .collect();
        let mut disagreements: Vec<(String, u64)> =
            affinity_apart(&running, &arriving, core.rules().groups())
                .into_iter()
                .map(|detail| (format!("must-rules: {detail}"), now_ms))
                .collect();

        // single-attachment
        let mut plugged: Vec<(&krrish_cloud::Name, &VmId, &HostId)> = Vec::new();
        for h in world.hosts.values() {
            for (vm, d) in &h.domains {
                if d.state == DomainState::Running {
                    plugged.extend(d.guest.volumes.iter().map(|v| (&v.name, vm, &h.spec.id)));
                }
            }
        }
        plugged.sort_unstable();
        for group in plugged.chunk_by(|a, b| a.0 == b.0) {
            if group.len() > 1 {
                let holders: Vec<String> = group
                    .iter()
                    .map(|(_, vm, h)| format!("{vm} on {h}"))
                    .collect();
                return fail(
                    "single-attachment",
                    format!(
                        "volume {} is plugged into {}",
                        group[0].0,
                        holders.join(" and ")
                    ),
                );
            }
        }

        // volume-holder
        for (volume, vm, host) in &plugged {
            let holder = match cloud.storage.describe_volume(volume) {
                Ok(v) => v,
                Err(_) => {
                    disagreements.push((
                        format!("volume-holder: {vm} on {host} writes volume {volume}, which the cloud deleted"),
                        now_ms,
                    ));
                    continue;
                }
            };
            let recorded = holder.attached_to.as_ref().or(cloud
                .storage
                .detaching_volumes()
                .find(|(v, _)| v == volume)
                .map(|(_, from)| from));
            if recorded != Some(*vm) {
                let says = match (&holder.attached_to, recorded) {
                    (Some(x), _) => format!("attached to {x}"),
                    (None, Some(x)) => format!("detaching from {x}"),
                    (None, None) => "available".to_string(),
                };
                disagreements.push((
                    format!("volume-holder: {vm} on {host} writes volume {volume}, which the cloud calls {says}"),
                    now_ms,
                ));
            }
        }

        // no-overcommit
        for h in world.hosts.values() {
            let need = h
                .domains
                .keys()
                .filter_map(|vm| world.vms.get(vm))
                .fold(krrish_core::Resources::ZERO, |acc, v| acc.add(&v.demand));
            // Beyond its memory overcommit ratio (judged from the spec's
            // percentage here, not through the core's placement).
            let c = h.spec.capacity;
            let allowed = krrish_core::Resources {
                memory_mib: c.memory_mib * u64::from(h.spec.memory_overcommit_percent) / 100,
                ..c
            };
            if !need.fits_in(&allowed) {
                return fail(
                    "no-overcommit",
                    format!(
                        "{} holds guests needing {need}; it may commit {allowed} (memory overcommit {} %)",
                        h.spec.id, h.spec.memory_overcommit_percent
                    ),
                );
            }
        }

        // spare-accounting
        let spares = core.hosts().values().filter(|h| h.spare.is_some()).count();
        let (free, active, unavailable) = core.spare_counts();
        if free + active + unavailable != spares {
            return fail(
                "spare-accounting",
                format!(
                    "{spares} spares but {free} free + {active} active + {unavailable} unavailable"
                ),
            );
        }
        for h in core.hosts().values() {
            if h.spare == Some(krrish_core::ha::SpareState::Free) {
                if let Some(p) = world.hosts.get(&h.spec.id) {
                    let n = p
                        .domains
                        .values()
                        .filter(|d| d.state == DomainState::Running)
                        .count();
                    if n > 0 {
                        disagreements.push((
                            format!(
                                "spare-accounting: spare {} counted free but runs {n} VMs",
                                h.spec.id
                            ),
                            now_ms,
                        ));
                    }
                }
            }
        }

        // no-vm-lost
        for vm in world.vms.keys().filter(|vm| !world.retired.contains(*vm)) {
            let Some(rec) = core.vms().get(vm) else {
                return fail(
                    "no-vm-lost",
                    format!("{vm} is unknown to the control plane"),
                );
            };
            if let VmState::Running { host } = &rec.state {
                let reachable = world.management_up(host);
                let there = running.binary_search(&(vm, host)).is_ok();
                if reachable && !there {
                    disagreements.push((
                        format!(
                            "no-vm-lost: control plane says {vm} runs on {host}, but it does not"
                        ),
                        now_ms,
                    ));
                }
            }
        }

        if !controller_up {
            disagreements.retain(|(key, _)| key.starts_with("volume-holder"));
        }
        let mut still = BTreeMap::new();
        for (key, at) in disagreements {
            let since = self.pending.get(&key).copied().unwrap_or(at);
            let grace = if key.starts_with("volume-holder") {
                VOLUME_HOLDER_GRACE_MS
            } else if key.starts_with("must-rules") {
                AFFINITY_APART_GRACE_MS
            } else {
                self.belief_grace_ms
            };
            if now_ms - since > grace {
                let invariant = if key.starts_with("spare") {
                    "spare-accounting"
                } else if key.starts_with("must-rules") {
                    "must-rules"
                } else if key.starts_with("volume-holder") {
                    "volume-holder"
                } else {
                    "no-vm-lost"
                };
                return fail(invariant, format!("{key} (for {})", secs(now_ms - since)));
            }
            still.insert(key, since);
        }
        self.pending = still;
        Ok(())
    }
}

fn join(hosts: &[&HostId]) -> String {
    hosts
        .iter()
        .map(|h| h.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A `must` rule broken by the running guests (`running`: (vm, host),
/// sorted), judged from the rule's text alone.
fn must_rule_broken(running: &[(&VmId, &HostId)], groups: &[RuleGroup]) -> Option<String> {
    for g in groups.iter().filter(|g| g.strength == Strength::Must) {
        let members = running.iter().filter(|(vm, _)| g.vms.contains(vm));
        match &g.kind {
            RuleKind::AntiAffinity => {
                let mut on: BTreeMap<&HostId, &VmId> = BTreeMap::new();
                for (vm, host) in members {
                    if let Some(other) = on.insert(host, vm) {
                        return Some(format!(
                            "anti-affinity rule {}: {other} and {vm} both run on {host}",
                            g.name
                        ));
                    }
                }
            }
            RuleKind::RunOn(hosts) => {
                if let Some((vm, host)) = members.into_iter().find(|(_, h)| !hosts.contains(h)) {
                    return Some(format!(
                        "run-on rule {}: {vm} runs on {host}, not one of {}",
                        g.name,
                        join(&hosts.iter().collect::<Vec<_>>())
                    ));
                }
            }
            // Timed: see `affinity_apart`.
            RuleKind::Affinity => {}
            RuleKind::NotOn(hosts) => {
                if let Some((vm, host)) = members.into_iter().find(|(_, h)| hosts.contains(h)) {
                    return Some(format!(
                        "not-on rule {}: {vm} runs on {host}, which it excludes",
                        g.name
                    ));
                }
            }
        }
    }
    None
}

/// Each `must` affinity group whose running guests are on more than one
/// host, said as the hosts each runs on (the same words while it lasts) —
/// but for a group with a member still being copied somewhere (`arriving`):
/// its members switch over one by one as their copies end.
fn affinity_apart(
    running: &[(&VmId, &HostId)],
    arriving: &[&VmId],
    groups: &[RuleGroup],
) -> Vec<String> {
    let mut apart = Vec::new();
    for g in groups.iter().filter(|g| {
        g.strength == Strength::Must
            && g.kind == RuleKind::Affinity
            && !g.vms.iter().any(|vm| arriving.contains(&vm))
    }) {
        let on: Vec<String> = running
            .iter()
            .filter(|(vm, _)| g.vms.contains(vm))
            .map(|(vm, host)| format!("{vm} on {host}"))
            .collect();
        let hosts: std::collections::BTreeSet<&HostId> = running
            .iter()
            .filter(|(vm, _)| g.vms.contains(vm))
            .map(|(_, host)| *host)
            .collect();
        if hosts.len() > 1 {
            apart.push(format!(
                "affinity rule {}: its VMs run apart ({})",
                g.name,
                on.join(", ")
            ));
        }
    }
    apart
}

/// Liveness after healing: the cluster is whole again. Every host is up
/// (or DPM's: powered off and standing by, or on its way there — a DPM
/// drain is planned work, as its migrations are);
/// every VM with an HA policy runs exactly once, on its home host, and the
/// control plane says so — but for VMs waiting for an operator: stopped by
/// one, or in `error` after every boot allowed failed (where it must run
/// nowhere); every spare is free. Errs with what is not (the first few,
/// and how many).
/// Whether `v` is live-migrating away from its home as DPM drains it (it
/// still runs at home; the drain is planned work).
fn dpm_drains(core: &HaManager, v: &krrish_core::ha::VmRecord) -> bool {
    matches!(&v.state, VmState::Migrating { from, .. }
        if from == &v.spec.home
            && core.hosts().get(from).is_some_and(|h| h.standby == krrish_core::ha::Standby::Draining))
}

pub fn converged(world: &World, core: &HaManager) -> Result<(), String> {
    use krrish_core::ha::HostVerdict;
    use krrish_core::HaPolicy;
    let mut wrong = Vec::new();
    for (id, h) in core.hosts() {
        let verdict = h.verdict();
        use krrish_core::ha::Standby;
        let dpm_standby = match h.standby {
            Standby::Off { .. } => verdict == HostVerdict::PoweredOff,
            Standby::Draining | Standby::PoweringOff => true,
            Standby::No | Standby::PoweringOn { .. } => false,
        };
        if verdict != HostVerdict::Up && !dpm_standby {
            wrong.push(format!("host {id} is {verdict}"));
        }
    }
    for (id, v) in core.vms() {
        if matches!(v.state, VmState::Error { .. }) {
            let on = world.running_on(id);
            if !on.is_empty() {
                let on: Vec<&HostId> = on.iter().collect();
                wrong.push(format!("{id} is in error but runs on [{}]", join(&on)));
            }
            continue;
        }
        if core.effective_ha(&v.spec) == HaPolicy::Off || v.state == VmState::Stopped {
            continue;
        }
        let home = &v.spec.home;
        let on = world.running_on(id);
        if on.len() != 1 || &on[0] != home {
            let on: Vec<&HostId> = on.iter().collect();
            wrong.push(format!(
                "{id} runs on [{}], expected its home {home}",
                join(&on)
            ));
        } else if !matches!(&v.state, VmState::Running { host } if host == home)
            && !dpm_drains(core, v)
        {
            wrong.push(format!(
                "{id} runs at home on {home} but the control plane says {}",
                v.state.name()
            ));
        }
    }
    let (free, active, unavailable) = core.spare_counts();
    if active + unavailable > 0 {
        wrong.push(format!(
            "spares: {free} free, {active} active, {unavailable} unavailable"
        ));
    }
    if wrong.is_empty() {
        return Ok(());
    }
    let n = wrong.len();
    wrong.truncate(5);
    Err(format!(
        "not converged: {}{}",
        wrong.join("; "),
        if n > 5 {
            format!(" (and {} more)", n - 5)
        } else {
            String::new()
        }
    ))
}
