//! DRS (FusionCompute's and vSphere's dynamic resource scheduling):
//! balancing the production hosts' load by live migration. Every
//! `interval` it plans — while the most and the least loaded production
//! hosts differ by more than `threshold_percent`, move a VM (with the
//! affinity mates that move with it) from the most loaded host to the
//! host that leaves the pair least loaded, never breaking a rule (not even
//! a `should` one), a migration constraint or the room kept for VMs coming
//! home — and executes the plan's first moves, at most `max_concurrent`
//! migrations a round, only inside its time window ("avoid business
//! peaks"), never while a host is failing, VMs are booting or waiting to
//! be placed, or migrations are still in flight.
//!
//! Load is the larger of the shares of vCPUs and of placeable memory
//! (memory times the overcommit ratio) that the host's VMs hold.

use super::{HaManager, Liveness, Notice, VmState};
use crate::ids::{HostId, VmId};
use crate::model::Resources;
use std::collections::BTreeSet;

/// DRS settings (the cluster file's `drs:`; absent, DRS is off).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrsConfig {
    /// Act when the most and the least loaded production hosts' loads
    /// differ by more than this many percentage points.
    pub threshold_percent: u32,
    /// Live migrations in flight at once (any cause: DRS waits for a slot).
    pub max_concurrent: u32,
    /// How often DRS looks.
    pub interval_ms: u64,
    /// The times of day (UTC) it may migrate; `None`: any time.
    pub window: Option<DrsWindow>,
}

impl Default for DrsConfig {
    fn default() -> Self {
        Self {
            threshold_percent: 20,
            max_concurrent: 2,
            interval_ms: 300_000,
            window: None,
        }
    }
}

/// A daily window, in minutes after midnight UTC: from `from_min` up to
/// (not including) `to_min`, across midnight when `to_min < from_min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrsWindow {
    pub from_min: u32,
    pub to_min: u32,
}

impl DrsWindow {
    /// Whether `now_ms` (milliseconds since an epoch at midnight UTC: the
    /// Unix epoch, or a simulation's start) falls inside the window.
    pub fn contains(&self, now_ms: u64) -> bool {
        let minute = ((now_ms / 60_000) % (24 * 60)) as u32;
        if self.from_min <= self.to_min {
            (self.from_min..self.to_min).contains(&minute)
        } else {
            minute >= self.from_min || minute < self.to_min
        }
    }
}

/// One move of a DRS plan: `vms` (a VM and the affinity mates moving with
/// it) from `from` to `to`; the two hosts' loads (per cent) before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrsMove {
    pub vms: Vec<VmId>,
    pub from: HostId,
    pub to: HostId,
    pub from_load: u32,
    pub to_load: u32,
}

/// How a candidate move ranks (lowest first): the peak load of the pair
/// after it, the target's load after it, the VM, the target's index.
type MoveRank = (u64, u64, VmId, usize);

/// A plan never holds more moves than this (it is recomputed every round).
const DRS_PLAN_MOVES_MAX: usize = 64;

/// `used` of `cap` in per mille: the larger of vCPUs and memory.
pub(super) fn load_permille(used: Resources, cap: Resources) -> u64 {
    let share = |u: u64, c: u64| (u * 1000).checked_div(c).unwrap_or(0);
    share(u64::from(used.vcpus), u64::from(cap.vcpus)).max(share(used.memory_mib, cap.memory_mib))
}

impl HaManager {
    /// The moves DRS would make now, in order (empty when DRS is off or
    /// the hosts are balanced within the threshold). Read-only: what an
    /// operator is shown, and what [`Self::drs_sweep`] executes.
    pub fn drs_plan(&self) -> Vec<DrsMove> {
        let limit = self.config.drs.as_ref().map_or(0, |d| d.max_concurrent);
        self.drs_plan_within(limit as usize)
    }

    /// [`Self::drs_plan`] moving units of at most `max_unit` VMs (a group
    /// bigger than the migrations allowed at once is left where it is,
    /// and the plan moves what it can instead — found by the adversary:
    /// a must trio as the best move stalled DRS for ever).
    fn drs_plan_within(&self, max_unit: usize) -> Vec<DrsMove> {
        let Some(drs) = &self.config.drs else {
            return Vec::new();
        };
        // Targets keep the room their own VMs need to come home.
        let (hosts, mut room) = self.production_candidates();
        if hosts.len() < 2 {
            return Vec::new();
        }
        let cap: Vec<Resources> = hosts
            .iter()
            .map(|h| self.hosts[h].spec.placeable())
            .collect();
        // Load as it will be: a VM migrating counts at its target only
        // (counted on both ends, DRS saw load that was not there and moved
        // VMs back and forth — found by the adversary).
        let mut used: Vec<Resources> = vec![Resources::ZERO; hosts.len()];
        for (i, h) in hosts.iter().enumerate() {
            for (_, v) in self.vms.on_host(h) {
                let here = match &v.state {
                    VmState::Migrating { to, .. } => to == h,
                    _ => v.holds(h),
                };
                if here {
                    used[i] = used[i].add(&v.spec.demand);
                }
            }
        }
        let mut moved: BTreeSet<VmId> = BTreeSet::new();
        // A VM away from home, or waiting to come back, counts at its home
        // for the rules (DRS must not put a must anti-affine VM there
        // meanwhile — found by the adversary).
        let mut also: Vec<(VmId, HostId)> = self
            .vms
            .iter()
            .filter(|(_, v)| match &v.state {
                VmState::Running { host } => host != &v.spec.home && v.spec.failback,
                VmState::WaitingForCapacity { .. }
                | VmState::WaitingForRepair { .. }
                | VmState::RetryingBoot { .. } => true,
                _ => false,
            })
            .map(|(id, v)| (id.clone(), v.spec.home.clone()))
            .collect();
        let mut plan = Vec::new();
        let threshold = u64::from(drs.threshold_percent) * 10;
        while plan.len() < DRS_PLAN_MOVES_MAX {
            let loads: Vec<u64> = (0..hosts.len())
                .map(|i| load_permille(used[i], cap[i]))
                .collect();
            let hi = (0..hosts.len())
                .max_by_key(|i| (loads[*i], std::cmp::Reverse(*i)))
                .expect("two hosts");
            let lo = (0..hosts.len())
                .min_by_key(|i| (loads[*i], *i))
                .expect("two hosts");
            if loads[hi] - loads[lo] <= threshold {
                break;
            }
            let from = &hosts[hi];
            // (peak of the pair after the move, the target's load after
            // it, VM, target): the least loaded target among equals.
            let mut best: Option<(MoveRank, Vec<VmId>)> = None;
            for (vm, v) in self.vms.on_host(from) {
                if !matches!(&v.state, VmState::Running { host } if host == from)
                    || moved.contains(vm)
                {
                    continue;
                }
                let unit = self.moving_unit(vm, from);
                if unit.len() > max_unit || unit.iter().any(|m| moved.contains(m)) {
                    continue;
                }
                let d = self.unit_demand(&unit);
                for j in (0..hosts.len()).filter(|j| *j != hi && d.fits_in(&room[*j])) {
                    let after_from = load_permille(used[hi].saturating_sub(&d), cap[hi]);
                    let after_to = load_permille(used[j].add(&d), cap[j]);
                    let peak = after_from.max(after_to);
                    // Only a move that lowers the pair's peak: no ping-pong.
                    if peak >= loads[hi] {
                        continue;
                    }
                    let key = (peak, after_to, vm.clone(), j);
                    if best.as_ref().is_some_and(|(k, _)| *k <= key) {
                        continue;
                    }
                    // No rule broken at all, no migration constraint.
                    let judged = self.judge_unit_move(&unit, from, &hosts[j], room[j], &also);
                    if judged.is_ok_and(|breaks| breaks.iter().all(Option::is_none)) {
                        best = Some((key, unit.clone()));
                    }
                }
            }
            let Some(((_, _, _, j), unit)) = best else {
                break;
            };
            let d = self.unit_demand(&unit);
            plan.push(DrsMove {
                vms: unit.clone(),
                from: from.clone(),
                to: hosts[j].clone(),
                from_load: (loads[hi] / 10) as u32,
                to_load: (loads[j] / 10) as u32,
            });
            used[hi] = used[hi].saturating_sub(&d);
            used[j] = used[j].add(&d);
            room[j] = room[j].saturating_sub(&d);
            for m in unit {
                also.push((m.clone(), hosts[j].clone()));
                moved.insert(m);
            }
        }
        plan
    }

    /// A DRS round, when due: inside the window, with the cluster calm (no
    /// host suspect, isolated or being fenced; no VM booting, being stopped
    /// to move, backing off or migrating), the plan's first moves start,
    /// `max_concurrent` migrations at most.
    pub(super) fn drs_sweep(&mut self, now_ms: u64) {
        let Some(drs) = self.config.drs.clone() else {
            return;
        };
        if now_ms < self.drs_next_at_ms {
            return;
        }
        self.drs_next_at_ms = now_ms + drs.interval_ms.max(1);
        if drs.window.is_some_and(|w| !w.contains(now_ms)) {
            return;
        }
        if !self.calm_for_moves(now_ms) {
            return;
        }
        let mut slots = drs.max_concurrent as usize;
        for mv in self.drs_plan_within(slots) {
            if mv.vms.len() > slots {
                break;
            }
            slots -= mv.vms.len();
            for vm in &mv.vms {
                self.notice(
                    now_ms,
                    Notice::DrsMove {
                        vm: vm.clone(),
                        from: mv.from.clone(),
                        to: mv.to.clone(),
                        from_load: mv.from_load,
                        to_load: mv.to_load,
                    },
                );
                self.start_migration(now_ms, vm, &mv.from, &mv.to);
            }
        }
    }

    /// Whether the cluster is calm enough to move VMs for load or power
    /// (DRS, DPM): no host suspect, isolated or being fenced — HA first —
    /// no VM booting, being stopped to move, backing off between boots or
    /// waiting for room, and no migration in flight (loads are settled
    /// first: no ping-pong).
    pub(super) fn calm_for_moves(&self, now_ms: u64) -> bool {
        let failing = self.hosts.values().any(|h| {
            matches!(
                h.liveness,
                Liveness::Suspect { .. } | Liveness::Isolated { .. } | Liveness::Fencing(_)
            )
        });
        let busy = self.vms.unsettled().iter().any(|(_, v)| {
            matches!(
                v.state,
                VmState::Migrating { .. }
                    | VmState::Booting { .. }
                    | VmState::Evacuating { .. }
                    | VmState::RetryingBoot { .. }
                    | VmState::Scheduling { .. }
            ) || matches!(v.state, VmState::WaitingForCapacity { retry_at_ms, .. } if retry_at_ms > now_ms)
        });
        !failing && !busy
    }

    /// When DRS looks next, if it is on.
    pub(super) fn drs_wake(&self) -> Option<u64> {
        self.config.drs.as_ref().map(|_| self.drs_next_at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_hold_their_minutes_and_may_cross_midnight() {
        let at = |h: u64, m: u64| (h * 60 + m) * 60_000;
        let night = DrsWindow {
            from_min: 22 * 60,
            to_min: 6 * 60,
        };
        assert!(night.contains(at(23, 0)) && night.contains(at(2, 0)));
        assert!(!night.contains(at(6, 0)) && !night.contains(at(12, 0)));
        // The next day too.
        assert!(night.contains(at(24 + 1, 0)));
        let lunch = DrsWindow {
            from_min: 12 * 60,
            to_min: 13 * 60,
        };
        assert!(lunch.contains(at(12, 30)) && !lunch.contains(at(13, 0)));
    }

    #[test]
    fn load_is_the_larger_share() {
        let cap = Resources::new(32, 128 * 1024, 1000);
        assert_eq!(
            load_permille(Resources::new(8, 96 * 1024, 0), cap),
            750,
            "memory"
        );
        assert_eq!(
            load_permille(Resources::new(16, 32 * 1024, 0), cap),
            500,
            "vCPUs"
        );
    }
}
