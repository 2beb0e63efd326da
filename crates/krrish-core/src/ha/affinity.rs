//! Affinity groups in motion: the VMs that move with one being moved (an
//! operator's migration, a drain, a failback), the judgement of moving
//! them together — room for all of them, no migration blocker, no `must`
//! rule broken by any — and the sweep that rejoins a `must` group left
//! apart (one member's migration of a group move failed).

use super::{join_blockers, HaManager, VmState};
use crate::ids::{HostId, VmId};
use crate::model::Resources;
use crate::rules::{Fit, RuleKind, Strength};
use std::collections::BTreeMap;

/// Why a unit of VMs cannot move to a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum UnitRefused {
    /// A migration constraint (room, CPU, devices, …).
    Blocked(String),
    /// A `must` rule.
    Rule(String),
}

impl UnitRefused {
    pub(super) fn why(self) -> String {
        match self {
            UnitRefused::Blocked(why) | UnitRefused::Rule(why) => why,
        }
    }
}

impl HaManager {
    /// `vm` and its affinity mates (of either strength, following groups
    /// that share VMs) running on `from`: what moves when it moves.
    pub(super) fn moving_unit(&self, vm: &VmId, from: &HostId) -> Vec<VmId> {
        let mut unit = vec![vm.clone()];
        if self.rules.names(vm) {
            unit.extend(
                self.config
                    .rules
                    .affinity_mates(vm, None)
                    .into_iter()
                    .filter(|m| {
                        self.vms.get(m).is_some_and(
                            |r| matches!(&r.state, VmState::Running { host } if host == from),
                        )
                    }),
            );
        }
        unit
    }

    /// Judges live-migrating every VM of `unit` from `from` to `to` with
    /// `room` there, `also` placed already: the `should` rules each member
    /// breaks there, or why they cannot all go (naming the member when the
    /// unit has more than one).
    pub(super) fn judge_unit_move(
        &self,
        unit: &[VmId],
        from: &HostId,
        to: &HostId,
        room: Resources,
        also: &[(VmId, HostId)],
    ) -> Result<Vec<Option<String>>, UnitRefused> {
        let named = |m: &VmId, why: String| {
            if unit.len() > 1 {
                format!("{m} (moves with {}): {why}", unit[0])
            } else {
                why
            }
        };
        let mut left = room;
        let mut also = also.to_vec();
        also.extend(unit.iter().map(|m| (m.clone(), to.clone())));
        let mut breaks = Vec::with_capacity(unit.len());
        for m in unit {
            let spec = &self.vms[m].spec;
            let blockers = self.live_migration_blockers(spec, from, to, left);
            if !blockers.is_empty() {
                return Err(UnitRefused::Blocked(named(m, join_blockers(&blockers))));
            }
            left = left.saturating_sub(&spec.demand);
            breaks.push(match self.rule_fit(m, to, &also) {
                Fit::Forbidden { why } => return Err(UnitRefused::Rule(named(m, why))),
                Fit::Breaks { why } => Some(why),
                Fit::Allowed { .. } => None,
            });
        }
        if let Some(why) = self.anti_affine_home(unit, to) {
            return Err(UnitRefused::Rule(why));
        }
        Ok(breaks)
    }

    /// Why `unit` may not move to `to`: `to` is the home of a VM a member
    /// (not going home) must stay apart from, away from it now and going
    /// back by itself (failed over, its failback possible). A move makes
    /// `to` the member's home too, and two VMs that must stay apart would
    /// share a home: the one away could never go back (found by the HA
    /// property test: a failed-over VM held its spare for ever after an
    /// operator moved its anti-affine mate onto its home while its
    /// failback was being retried). A VM stopped, in error, down, or whose
    /// failback is off or impossible (live migration unsupported, cold
    /// failback off) does not hold its home.
    pub(super) fn anti_affine_home(&self, unit: &[VmId], to: &HostId) -> Option<String> {
        use crate::rules::{RuleKind, Strength};
        for g in self.rules.groups() {
            if g.strength != Strength::Must || !matches!(g.kind, RuleKind::AntiAffinity) {
                continue;
            }
            let Some(member) = unit
                .iter()
                .find(|m| g.vms.contains(m) && &self.vms[*m].spec.home != to)
            else {
                continue;
            };
            let away = g.vms.iter().filter(|o| !unit.contains(o)).find(|o| {
                self.vms
                    .get(*o)
                    .is_some_and(|v| &v.spec.home == to && self.goes_home_by_itself(v))
            });
            if let Some(other) = away {
                return Some(format!(
                    "{g}: {to} is the home of {other}, which goes back there ({member} would share it)"
                ));
            }
        }
        None
    }

    /// Whether `v`, away from its home, will go back there without an
    /// operator: its failback is on and, when it runs elsewhere, possible
    /// (live, or cold when cold failback is on); a failover in flight
    /// counts (it ends on a spare, then fails back).
    fn goes_home_by_itself(&self, v: &super::VmRecord) -> bool {
        if !v.spec.failback {
            return false;
        }
        match &v.state {
            // Being placed anew (its boot failed): its home is wherever it
            // lands, not this one.
            VmState::Scheduling { .. } => false,
            VmState::Stopped | VmState::Error { .. } | VmState::Down { .. } => false,
            VmState::Running { host } if host == &v.spec.home => false,
            VmState::Running { host } => {
                self.config.cold_failback
                    || !super::failback::only_live_blockers(&self.live_migration_blockers(
                        &v.spec,
                        host,
                        &v.spec.home,
                        v.spec.demand,
                    ))
            }
            _ => true,
        }
    }

    /// Whether a `must` rule keeps `vm` off `host` for good as things
    /// stand: a run-on or not-on rule, or its must affinity group alive
    /// elsewhere.
    pub(super) fn must_rule_keeps_off(&self, vm: &VmId, host: &HostId) -> bool {
        // Judged with every other VM nowhere: only host rules speak.
        let static_rule = matches!(
            self.rules.judge(vm, host, |_| Vec::new()),
            crate::rules::Fit::Forbidden { .. }
        );
        static_rule || self.affinity_forbids(vm, host)
    }

    /// Whether a `must` affinity group keeps `vm` off `host` now (another
    /// member is alive elsewhere).
    pub(super) fn affinity_forbids(&self, vm: &VmId, host: &HostId) -> bool {
        self.config
            .rules
            .affinity_mates(vm, Some(Strength::Must))
            .iter()
            .any(|m| {
                let on = self.hosts_that_may_run(m);
                !on.is_empty() && !on.contains(host)
            })
    }

    /// Whether a VM of `vm`'s must affinity group is being stopped to move
    /// (it will be placed with `vm`).
    pub(super) fn affinity_mate_evacuating(&self, vm: &VmId) -> bool {
        self.rules.names(vm)
            && self
                .config
                .rules
                .affinity_mates(vm, Some(Strength::Must))
                .iter()
                .any(|m| {
                    matches!(
                        self.vms.get(m).map(|r| &r.state),
                        Some(VmState::Evacuating { .. })
                    )
                })
    }

    /// The host `vm`'s must affinity group runs on, when every member
    /// alive runs there, settled, and it can take VMs: where `vm` belongs.
    pub(super) fn group_host(&self, vm: &VmId) -> Option<HostId> {
        if !self.rules.names(vm) {
            return None;
        }
        let mut at: Option<&HostId> = None;
        for m in self.rules.affinity_mates(vm, Some(Strength::Must)) {
            match self.vms.get(&m).map(|r| &r.state) {
                Some(VmState::Running { host }) => {
                    if at.is_some_and(|a| a != host) {
                        return None;
                    }
                    at = Some(host);
                }
                Some(
                    VmState::Booting { .. }
                    | VmState::Migrating { .. }
                    | VmState::Evacuating { .. }
                    | VmState::RetryingBoot { .. },
                ) => return None,
                _ => {}
            }
        }
        let at = at?;
        super::can_take_vms(&self.hosts[at]).then(|| at.clone())
    }

    /// Boots `vm` (waiting after its host failed) on `host`, where its
    /// must affinity group runs, if it has room there and may boot there;
    /// on a production host that becomes its home (its group lives there
    /// now). Whether it did.
    pub(super) fn join_group(&mut self, now_ms: u64, vm: &VmId, host: &HostId) -> bool {
        let fits = self.vms[vm].spec.demand.fits_in(&self.free_capacity(host));
        if !fits
            || !self.may_boot_on(vm, host)
            || matches!(self.rule_fit(vm, host, &[]), Fit::Forbidden { .. })
        {
            return false;
        }
        if self.hosts[host].spare.is_none() {
            self.vms.get_mut(vm).expect("caller checked").spec.home = host.clone();
        }
        let breaks = self.should_breaks(vm, host);
        self.boot(now_ms, vm, host, super::BootReason::Failover);
        self.report_rule_broken(
            now_ms,
            vm,
            host,
            breaks,
            crate::rules::BreakCause::NothingElseFitted,
        );
        true
    }

    /// The sum of what `unit` needs.
    /// The `must` affinity mates of `unit`'s VMs outside it that run
    /// nowhere and wait to be placed: where the unit goes, they must go.
    pub(super) fn mates_to_place(&self, unit: &[VmId]) -> Vec<VmId> {
        let mut mates: Vec<VmId> = unit
            .iter()
            .flat_map(|id| self.config.rules.affinity_mates(id, Some(Strength::Must)))
            .filter(|m| !unit.contains(m))
            .filter(|m| {
                self.hosts_that_may_run(m).is_empty()
                    && matches!(
                        self.vms.get(m).map(|v| &v.state),
                        Some(
                            VmState::WaitingForCapacity { .. }
                                | VmState::RetryingBoot { .. }
                                | VmState::Scheduling { .. }
                        )
                    )
            })
            .collect();
        mates.sort();
        mates.dedup();
        mates
    }

    pub(super) fn unit_demand(&self, unit: &[VmId]) -> Resources {
        unit.iter()
            .fold(Resources::ZERO, |acc, m| acc.add(&self.vms[m].spec.demand))
    }

    /// A `must` affinity group whose VMs all run settled but on more than
    /// one host (one migration of a group move failed, the others did not)
    /// is brought together on the host running most of them (ties: a
    /// production host, then the first by name): each member elsewhere live-migrates there once its
    /// back-off is over, or is reported as blocked.
    pub(super) fn rejoin_affinity_sweep(&mut self, now_ms: u64) {
        let mut moves: Vec<(VmId, HostId, HostId)> = Vec::new();
        for g in self.rules.groups() {
            if g.kind != RuleKind::Affinity || g.strength != Strength::Must {
                continue;
            }
            let mut by_host: BTreeMap<&HostId, usize> = BTreeMap::new();
            let mut settled = true;
            for m in &g.vms {
                match self.vms.get(m).map(|r| &r.state) {
                    Some(VmState::Running { host }) => *by_host.entry(host).or_default() += 1,
                    // Alive nowhere: it binds nothing.
                    Some(
                        VmState::Stopped
                        | VmState::Down { .. }
                        | VmState::Error { .. }
                        | VmState::WaitingForCapacity { .. }
                        | VmState::WaitingForRepair { .. }
                        | VmState::Scheduling { .. },
                    )
                    | None => {}
                    // In motion: wait for it to settle.
                    Some(_) => settled = false,
                }
            }
            if !settled || by_host.len() < 2 {
                continue;
            }
            // Most members; then a production host over a spare (the
            // spare is for the next failure); then the first by name.
            let target = by_host
                .iter()
                .max_by_key(|(h, n)| {
                    let production = self.hosts.get(**h).is_some_and(|r| r.spare.is_none());
                    (**n, production, std::cmp::Reverse(**h))
                })
                .map(|(h, _)| (*h).clone())
                .expect("two hosts at least");
            for m in &g.vms {
                if let Some(VmState::Running { host }) = self.vms.get(m).map(|r| &r.state) {
                    if host != &target && self.vms[m].failback_not_before_ms <= now_ms {
                        moves.push((m.clone(), host.clone(), target.clone()));
                    }
                }
            }
        }
        for (vm, from, to) in moves {
            // An earlier move of this sweep may have started it already.
            if !matches!(&self.vms[&vm].state, VmState::Running { host } if host == &from) {
                continue;
            }
            // Only from a host that answers (a silent one's VM is HA's —
            // found by the adversary: a migration sent from a dead host).
            if self.hosts[&from].liveness != super::Liveness::Up {
                continue;
            }
            let room = self.free_capacity(&to);
            let fit = super::can_take_vms(&self.hosts[&to]) && !self.hosts[&to].spec.maintenance;
            match self.judge_unit_move(std::slice::from_ref(&vm), &from, &to, room, &[]) {
                Ok(_) if fit => {
                    self.vms.get_mut(&vm).expect("listed").failback_blocked = false;
                    self.start_migration(now_ms, &vm, &from, &to);
                }
                Ok(_) => self.fail_back_blocked(
                    now_ms,
                    &vm,
                    &to,
                    format!("to rejoin its affinity group: {to} takes no VMs now"),
                ),
                Err(why) => self.fail_back_blocked(
                    now_ms,
                    &vm,
                    &to,
                    format!("to rejoin its affinity group: {}", why.why()),
                ),
            }
        }
    }
}
