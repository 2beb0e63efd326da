//! Bringing VMs home: when a repaired host is back (and may write to the
//! DFS again), its VMs on spares live-migrate back — unless a migration
//! blocker says no — and those still waiting boot there; migration results,
//! with a back-off after a failure.

use super::affinity::UnitRefused;
use super::{
    home_ready, join_blockers, Command, DriverError, HaManager, Liveness, Notice, VmState,
};
use crate::ids::{HostId, VmId};
use crate::lease::PowerOnList;
use crate::migration::MigrationBlocker;
use crate::rules::{BreakCause, Fit, Strength};

impl HaManager {
    /// VMs running on a spare while their home is healthy go home (failback
    /// does not depend on catching the moment the home returned).
    pub(super) fn fail_back_sweep(&mut self, now_ms: u64) {
        self.fail_back_sweep_for(now_ms, None);
    }

    /// The sweep, for the VMs of one home host or of all.
    pub(super) fn fail_back_sweep_for(&mut self, now_ms: u64, home: Option<&HostId>) {
        // Only VMs running away from home qualify (the index keeps them).
        let vms = match home {
            Some(h) => self.vms.away_from(h),
            None => self.vms.away_from_home(),
        };
        let candidates: Vec<(VmId, HostId, HostId)> = vms
            .into_iter()
            .filter_map(|(id, v)| match &v.state {
                VmState::Running { host }
                    if host != &v.spec.home
                        && v.spec.failback
                        && home.is_none_or(|h| h == &v.spec.home)
                        && v.failback_not_before_ms <= now_ms
                        && home_ready(&self.hosts, &v.spec.home) =>
                {
                    Some((id.clone(), host.clone(), v.spec.home.clone()))
                }
                _ => None,
            })
            .collect();
        for (id, from, home) in candidates {
            self.fail_back(now_ms, &id, &from, &home);
        }
    }

    /// `home` booted again or came back: news the migration back-off of
    /// its VMs away from it did not know (it was set by a failure the old
    /// boot or the absence caused). They may go home at once. Found by the
    /// lab's adversary: the home rebooted mid failback, libvirt's "failed"
    /// came before the new boot was heard of, and the VM waited out the
    /// back-off on its spare.
    pub(super) fn home_news_ends_back_off(&mut self, home: &HostId) {
        let waiting: Vec<VmId> = self
            .vms
            .away_from(home)
            .into_iter()
            .filter(|(_, v)| v.failback_not_before_ms > 0)
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            self.vms
                .get_mut(&id)
                .expect("listed")
                .failback_not_before_ms = 0;
        }
    }

    /// A repaired host heartbeats again: restore and fail back what is its —
    /// once the DFS lets it write again.
    pub(super) fn on_host_back(&mut self, now_ms: u64, host: &HostId) {
        self.home_news_ends_back_off(host);
        if self.hosts[host].lease_revoked {
            self.command(Command::ReinstateLease { host: host.clone() });
            return;
        }
        if !super::home_ready(&self.hosts, host) {
            // Back, but not fit to run VMs (no storage or VM network, in
            // maintenance): its VMs stay where they are; the failback sweep
            // moves them once it is.
            self.refresh_spares(now_ms);
            self.place_waiting(now_ms);
            return;
        }
        let ids: Vec<VmId> = self
            .vms
            .iter()
            .filter(|(_, v)| &v.spec.home == host)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let state = self.vms[&id].state.clone();
            match state {
                VmState::Running { host: on } if &on != host && self.vms[&id].spec.failback => {
                    self.fail_back(now_ms, &id, &on, host)
                }
                // Its home is a host like another for a VM relocating after
                // failed boots: it counts, and it is not tried twice.
                VmState::WaitingForCapacity { .. } | VmState::WaitingForRepair { .. } => {
                    let free = self.free_capacity(host);
                    if self.vms[&id].spec.demand.fits_in(&free)
                        && self.rules_let_go_home(&id)
                        && self.may_boot_on(&id, host)
                    {
                        self.boot_home(now_ms, &id);
                    }
                }
                _ => {}
            }
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    /// `id` on `from` goes home to `to`, with its affinity mates there
    /// that go home to `to` too (a unit moves together or not at all).
    fn fail_back(&mut self, now_ms: u64, id: &VmId, from: &HostId, to: &HostId) {
        // Started with a mate earlier in the same sweep?
        if !matches!(&self.vms[id].state, VmState::Running { host } if host == from) {
            return;
        }
        // Mates homed elsewhere come too when a must rule binds them (a
        // group move cut short split their homes; the group keeps one).
        let must_mates = self.rules.affinity_mates(id, Some(Strength::Must));
        let unit: Vec<VmId> = self
            .moving_unit(id, from)
            .into_iter()
            .filter(|m| {
                let v = &self.vms[m];
                m == id
                    || (v.spec.failback
                        && v.failback_not_before_ms <= now_ms
                        && (v.spec.home == *to || must_mates.contains(m)))
            })
            .collect();
        if unit.len() > 1 {
            return self.fail_back_unit(now_ms, &unit, from, to);
        }
        let blockers =
            self.live_migration_blockers(&self.vms[id].spec, from, to, self.free_capacity(to));
        // A must rule keeps it off its home (it stays, reported); a should
        // rule does not (the spare is for the next failure): it goes, and
        // the break is reported.
        let breaks = match self.rule_fit(id, to, &[]) {
            Fit::Forbidden { why } => {
                self.fail_back_blocked(now_ms, id, to, why);
                return;
            }
            Fit::Breaks { why } => Some(why),
            Fit::Allowed { .. } => None,
        };
        if self.config.cold_failback && only_live_blockers(&blockers) {
            self.cold_fail_back(now_ms, id, from, to, join_blockers(&blockers));
            self.report_rule_broken(now_ms, id, to, breaks, BreakCause::Home);
            return;
        }
        if !blockers.is_empty() {
            self.fail_back_blocked(now_ms, id, to, join_blockers(&blockers));
            return;
        }
        self.vms
            .get_mut(id)
            .expect("caller checked")
            .failback_blocked = false;
        self.start_migration(now_ms, id, from, to);
        self.report_rule_broken(now_ms, id, to, breaks, BreakCause::Home);
    }

    /// An affinity unit goes home together: live when every member may,
    /// cold (each stopped and booted at home) when only live-migration
    /// constraints stop one and cold failback is on; else it stays whole,
    /// reported.
    fn fail_back_unit(&mut self, now_ms: u64, unit: &[VmId], from: &HostId, to: &HostId) {
        let room = self.free_capacity(to);
        match self.judge_unit_move(unit, from, to, room, &[]) {
            Ok(breaks) => {
                for (m, breaks) in unit.iter().zip(breaks) {
                    self.vms.get_mut(m).expect("listed").failback_blocked = false;
                    self.start_migration(now_ms, m, from, to);
                    self.report_rule_broken(now_ms, m, to, breaks, BreakCause::Home);
                }
            }
            Err(UnitRefused::Blocked(why))
                if self.config.cold_failback
                    && self.unit_demand(unit).fits_in(&room)
                    && unit.iter().all(|m| {
                        let b = self.live_migration_blockers(&self.vms[m].spec, from, to, room);
                        b.is_empty() || only_live_blockers(&b)
                    }) =>
            {
                let also: Vec<(VmId, HostId)> =
                    unit.iter().map(|m| (m.clone(), to.clone())).collect();
                if let Some(why) = unit.iter().find_map(|m| match self.rule_fit(m, to, &also) {
                    Fit::Forbidden { why } => Some(why),
                    _ => None,
                }) {
                    return self.fail_back_blocked(now_ms, &unit[0], to, why);
                }
                for m in unit {
                    // One home for the group: `to`.
                    self.vms.get_mut(m).expect("listed").spec.home = to.clone();
                    self.cold_fail_back(now_ms, m, from, to, why.clone());
                }
            }
            Err(refused) => self.fail_back_blocked(now_ms, &unit[0], to, refused.why()),
        }
    }

    /// `id` cannot go home to `to` for `why`: it stays, reported once (until
    /// a failback starts).
    pub(super) fn fail_back_blocked(&mut self, now_ms: u64, id: &VmId, to: &HostId, why: String) {
        let vm = self.vms.get_mut(id).expect("caller checked");
        if !vm.failback_blocked {
            vm.failback_blocked = true;
            self.notice(
                now_ms,
                Notice::MigrationBlocked {
                    vm: id.clone(),
                    to: to.clone(),
                    why,
                },
            );
        }
    }

    /// It cannot go home live, but home can run it: stop it on the spare
    /// (the answer, or a report without it, confirms) and boot it at home
    /// from its DFS copy.
    fn cold_fail_back(&mut self, now_ms: u64, id: &VmId, from: &HostId, to: &HostId, why: String) {
        self.notice(
            now_ms,
            Notice::VmColdFailback {
                vm: id.clone(),
                from: from.clone(),
                to: to.clone(),
                why,
            },
        );
        let vm = self.vms.get_mut(id).expect("caller checked");
        vm.state = VmState::Evacuating { host: from.clone() };
        vm.boot_unanswered = None;
        vm.outage_since_ms = Some(now_ms);
        vm.failback_blocked = false;
        self.command(Command::StopVm {
            vm: id.clone(),
            host: from.clone(),
        });
    }

    pub(super) fn start_migration(&mut self, now_ms: u64, id: &VmId, from: &HostId, to: &HostId) {
        let rec = self.vms.get_mut(id).expect("caller checked");
        rec.missed_reports = 0;
        rec.migration_serial += 1;
        let serial = rec.migration_serial;
        rec.state = VmState::Migrating {
            from: from.clone(),
            to: to.clone(),
            deadline_ms: now_ms + self.config.migration_timeout_ms,
        };
        self.notice(
            now_ms,
            Notice::VmMigrating {
                vm: id.clone(),
                from: from.clone(),
                to: to.clone(),
            },
        );
        self.command(Command::LiveMigrate {
            vm: id.clone(),
            from: from.clone(),
            to: to.clone(),
            serial,
        });
    }

    /// The source agent finished (or failed) copy `serial` of a live
    /// migration; an answer to an earlier copy is dropped.
    pub fn handle_migration_result(
        &mut self,
        now_ms: u64,
        vm: &VmId,
        from: &HostId,
        to: &HostId,
        serial: u64,
        result: Result<(), DriverError>,
    ) {
        let Some(rec) = self.vms.get_mut(vm) else {
            return;
        };
        match &rec.state {
            VmState::Migrating { from: f, to: t, .. }
                if f == from && t == to && rec.migration_serial == serial => {}
            _ => return,
        }
        // In doubt by the source: the target was fenced or rebooted mid
        // copy.
        let target_lost = matches!(&rec.settled_by, Some((by, _)) if by == from);
        rec.settled_by = None;
        rec.migration_aborting = false;
        rec.missed_reports = 0;
        // The side the answer puts the VM on may be fenced or rebooted by
        // now: then it runs nowhere.
        let lands_on = if result.is_ok() { to } else { from };
        if matches!(self.hosts[lands_on].liveness, Liveness::Fenced { .. })
            || (result.is_ok() && target_lost)
        {
            if result.is_ok() {
                self.moved_home_with_the_copy(vm, to);
            }
            self.lost_with(now_ms, vm, lands_on);
            self.refresh_spares(now_ms);
            self.place_waiting(now_ms);
            return;
        }
        let to_is_production = self.hosts[to].spare.is_none();
        // Whether a failed failback may go home cold instead (see below).
        let home_can_take_it = self.config.cold_failback
            && home_ready(&self.hosts, to)
            && self.vms[vm].spec.home == *to
            && self.vms[vm].spec.demand.fits_in(&self.free_capacity(to));
        let rec = self.vms.get_mut(vm).expect("checked");
        match result {
            Ok(()) => {
                rec.state = VmState::Running { host: to.clone() };
                rec.outage_since_ms = None;
                // A VM moved to a production host lives there now (an
                // operator's migration): failback brings home only VMs that
                // failed over to a spare.
                if to_is_production {
                    rec.spec.home = to.clone();
                }
                self.notice(
                    now_ms,
                    Notice::VmMigrated {
                        vm: vm.clone(),
                        to: to.clone(),
                    },
                );
                self.report_if_drained(now_ms, from);
            }
            Err(why) => {
                rec.state = VmState::Running { host: from.clone() };
                // A copy that failed because its target was lost is no
                // reason to wait: the target's return is what counts.
                // One that never began — the source's agent not connected
                // (as just after a controller restart) or its host unable
                // for now — is tried again after a heartbeat, not the
                // whole back-off (found by the adversary: the VM stayed on
                // its spare a minute because the restored controller sent
                // the copy before the spare's agent was back).
                if !target_lost {
                    let wait = match why {
                        DriverError::Unavailable(_) => self.config.heartbeat.interval_ms,
                        _ => self.config.migration_retry_backoff_ms,
                    };
                    rec.failback_not_before_ms = now_ms + wait;
                }
                // A failback the hypervisor cannot do live (whatever the
                // specs said) goes cold now rather than being retried for
                // ever; the VM is still on its spare, its home still ready.
                let cold = matches!(why, DriverError::NotSupported(_)) && home_can_take_it;
                self.notice(
                    now_ms,
                    Notice::MigrationFailed {
                        vm: vm.clone(),
                        why: why.to_string(),
                    },
                );
                if cold {
                    self.cold_fail_back(now_ms, vm, from, to, why.to_string());
                }
            }
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    /// `host`'s power-on list, read from the DFS by the read asked at
    /// `read_ms`: it settles the migrations in doubt waiting on `host`
    /// while its reports do not come (its management network cut, the
    /// host isolated but renewing its lease). A VM missing from a list
    /// taken after the doubt began runs on neither side: the other side
    /// went down before, and a copy cannot switch over after its
    /// source or target died. A VM on the list may run there: it waits
    /// for the host's report, as before.
    ///
    /// The list was taken no earlier than `taken_ago_ms` before the DFS
    /// answered, and the DFS answered after `read_ms`: so no earlier than
    /// `read_ms - taken_ago_ms` on this clock.
    pub(super) fn settle_in_doubt_by_power_on(
        &mut self,
        now_ms: u64,
        read_ms: u64,
        host: &HostId,
        list: &PowerOnList,
    ) {
        if !self
            .hosts
            .get(host)
            .is_some_and(|h| !matches!(h.liveness, Liveness::Up))
        {
            return; // reporting: its next report settles, in every world alike
        }
        let Some(taken_after) = read_ms.checked_sub(list.taken_ago_ms) else {
            return;
        };
        let missing = self.vms_on(host, |id, v| {
            matches!(&v.state, VmState::Migrating { from, to, .. } if from == host || to == host)
                && v.settled_by
                    .as_ref()
                    .is_some_and(|(by, since)| by == host && *since <= taken_after)
                // Not a binary search: a list is sorted by the services
                // that keep one, but its absence decides a restart.
                && !list.vms.contains(id)
        });
        if missing.is_empty() {
            return;
        }
        for id in missing {
            self.notice(
                now_ms,
                Notice::MigrationSettledByDfs {
                    vm: id.clone(),
                    host: host.clone(),
                },
            );
            self.settle_in_doubt_not_on(now_ms, &id, host);
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    /// A VM in doubt is not on `host`, the side its migration waited on,
    /// and no copy is in flight there: if `host` was the source, the copy
    /// switched over and died with its target; if the target, the VM died
    /// with its source.
    fn settle_in_doubt_not_on(&mut self, now_ms: u64, id: &VmId, host: &HostId) {
        let VmState::Migrating { from, to, .. } = self.vms[id].state.clone() else {
            unreachable!("in doubt means migrating")
        };
        if &from == host {
            self.moved_home_with_the_copy(id, &to);
            self.lost_with(now_ms, id, &to);
        } else {
            self.release_by_policy(now_ms, id, &from);
        }
    }

    /// Migrations in doubt. A VM migrating between two hosts may run on
    /// either until the outcome is known, so when one side is fenced it is
    /// not failed over: the other side's next report decides (it lists the
    /// VM: it runs there; it does not: it died with the fenced side). Only
    /// when both sides are fenced is it surely nowhere.
    pub(super) fn migration_side_fenced(&mut self, now_ms: u64, fenced: &HostId) {
        let in_doubt = self.vms_on(fenced, |_, v| {
            matches!(&v.state, VmState::Migrating { from, to, .. } if from == fenced || to == fenced)
        });
        for id in in_doubt {
            let VmState::Migrating { from, to, .. } = self.vms[&id].state.clone() else {
                unreachable!("listed as migrating")
            };
            let other = if &from == fenced { &to } else { &from };
            let other_fenced = matches!(self.hosts[other].liveness, Liveness::Fenced { .. });
            if other_fenced {
                self.release_by_policy(now_ms, &id, fenced);
            } else {
                let vm = self.vms.get_mut(&id).expect("listed");
                vm.settled_by = Some((other.clone(), now_ms));
                vm.outage_since_ms.get_or_insert(now_ms);
                self.notice(
                    now_ms,
                    Notice::MigrationInDoubt {
                        vm: id,
                        fenced: fenced.clone(),
                        other: other.clone(),
                    },
                );
            }
        }
    }

    /// A report from `host`, the surviving side of migrations in doubt.
    ///
    /// A source that still copies the VM to its fenced target is not taken
    /// at its word yet: the copy could still switch over. It is told to
    /// cancel the copy, and the answer (or a later report with no copy in
    /// flight) settles the VM.
    pub(super) fn settle_migrations_in_doubt(
        &mut self,
        now_ms: u64,
        host: &HostId,
        running: &[VmId],
        migrating_out: &[VmId],
    ) {
        let due = self.vms_on(host, |_, v| {
            matches!(&v.state, VmState::Migrating { from, to, .. } if from == host || to == host)
                && v.settled_by
                    .as_ref()
                    .is_some_and(|(by, t)| by == host && *t <= now_ms)
        });
        for id in due {
            let VmState::Migrating { from, to, .. } = self.vms[&id].state.clone() else {
                unreachable!("listed as migrating")
            };
            if &from == host && migrating_out.contains(&id) {
                let vm = self.vms.get_mut(&id).expect("listed");
                if !vm.migration_aborting {
                    vm.migration_aborting = true;
                    self.notice(
                        now_ms,
                        Notice::MigrationFailed {
                            vm: id.clone(),
                            why: format!(
                                "{to} is fenced or rebooted: cancelling the copy still in flight"
                            ),
                        },
                    );
                    self.command(Command::AbortMigration { vm: id, from, to });
                }
                continue;
            }
            if running.contains(&id) {
                let vm = self.vms.get_mut(&id).expect("listed");
                vm.state = VmState::Running { host: host.clone() };
                vm.settled_by = None;
                vm.migration_aborting = false;
                vm.outage_since_ms = None;
                self.notice(
                    now_ms,
                    Notice::VmRunning {
                        vm: id,
                        host: host.clone(),
                    },
                );
            } else {
                // Not here, no copy in flight.
                self.settle_in_doubt_not_on(now_ms, &id, host);
            }
        }
    }

    /// A copy that switched over to a production host moved the VM's home
    /// there (an operator's or DRS's move), even when the VM then died
    /// with that host: it restarts there, not at its old home (found by
    /// the adversary: the finished move was undone, and DRS moved it again).
    fn moved_home_with_the_copy(&mut self, vm: &VmId, to: &HostId) {
        if self.hosts[to].spare.is_none() {
            self.vms.get_mut(vm).expect("caller checked").spec.home = to.clone();
        }
    }

    /// `vm` died with `host`'s loss: restarted by policy — elsewhere if
    /// `host` is fenced, in place (by policy) if it rebooted and is up.
    fn lost_with(&mut self, now_ms: u64, vm: &VmId, host: &HostId) {
        if matches!(self.hosts[host].liveness, Liveness::Fenced { .. }) {
            self.release_by_policy(now_ms, vm, host);
        } else {
            self.restart_dead(
                now_ms,
                vm,
                host,
                super::DownReason::HaOff { host: host.clone() },
            );
        }
    }

    /// The source's hypervisor answered a cancellation: `Ok` — no copy is
    /// left on the target, the VM runs on its source, the target's room is
    /// free; `Err` — it could not cancel (most likely the switch-over had
    /// happened): the hosts' reports say where the VM is.
    pub fn handle_migration_aborted(
        &mut self,
        now_ms: u64,
        vm: &VmId,
        from: &HostId,
        to: &HostId,
        result: Result<(), DriverError>,
    ) {
        let Some(rec) = self.vms.get_mut(vm) else {
            return;
        };
        let in_flight = matches!(&rec.state,
            VmState::Migrating { from: f, to: t, .. } if f == from && t == to);
        if !in_flight || !rec.migration_aborting {
            return;
        }
        if let Err(why) = result {
            self.notice(
                now_ms,
                Notice::MigrationFailed {
                    vm: vm.clone(),
                    why: format!("cancelling failed ({why}): the reports will tell"),
                },
            );
            return;
        }
        rec.migration_aborting = false;
        rec.settled_by = None;
        if matches!(self.hosts[from].liveness, Liveness::Fenced { .. }) {
            self.release_by_policy(now_ms, vm, from);
        } else {
            let rec = self.vms.get_mut(vm).expect("checked");
            rec.state = VmState::Running { host: from.clone() };
            rec.failback_not_before_ms = now_ms + self.config.migration_retry_backoff_ms;
            self.changed_silently();
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    /// Cancellations whose answer may have been lost are asked again at
    /// each report of the source.
    pub(super) fn abort_again(&mut self, host: &HostId) {
        let aborting = self.vms_on(host, |_, v| {
            v.migration_aborting
                && matches!(&v.state, VmState::Migrating { from, .. } if from == host)
        });
        for vm in aborting {
            let VmState::Migrating { from, to, .. } = self.vms[&vm].state.clone() else {
                unreachable!("listed as migrating")
            };
            self.command(Command::AbortMigration { vm, from, to });
        }
    }
}

/// Blockers that stop a live migration but not a cold move (stop, then
/// boot from the DFS copy): the VM's devices and the hosts' CPU, memory
/// and switch settings. Room, health and maintenance stop both.
pub(super) fn only_live_blockers(blockers: &[MigrationBlocker]) -> bool {
    !blockers.is_empty()
        && blockers.iter().all(|b| {
            matches!(
                b,
                MigrationBlocker::PassthroughDevices(_)
                    | MigrationBlocker::CpuIncompatible { .. }
                    | MigrationBlocker::OvercommitMismatch { .. }
                    | MigrationBlocker::DifferentDvs { .. }
                    | MigrationBlocker::LiveMigrationUnsupported { .. }
            )
        })
}

impl HaManager {
    /// A migration whose command never reached the source (lost on a dead
    /// connection): the source still runs the VM but reports no copy in
    /// flight, twice in a row (one report may have been built before the
    /// command arrived). The command is sent again with a fresh deadline —
    /// safe, as no copy is under way — if the target is up; else the
    /// migration is cancelled.
    pub(super) fn resend_lost_migrations(
        &mut self,
        now_ms: u64,
        host: &HostId,
        running: &[VmId],
        migrating_out: &[VmId],
    ) {
        let candidates = self.vms_on(host, |_, v| {
            matches!(&v.state, VmState::Migrating { from, .. } if from == host)
                && !v.migration_aborting
                && v.settled_by.is_none()
        });
        for id in candidates {
            let copying = migrating_out.contains(&id) || !running.contains(&id);
            let timeout = self.config.migration_timeout_ms;
            let vm = self.vms.get_mut(&id).expect("listed");
            if copying {
                vm.missed_reports = 0;
                continue;
            }
            vm.missed_reports += 1;
            if vm.missed_reports < super::VANISHED_AFTER_REPORTS {
                continue;
            }
            vm.missed_reports = 0;
            let VmState::Migrating { to, .. } = &vm.state else {
                unreachable!("listed as migrating")
            };
            let to = to.clone();
            if !matches!(self.hosts[&to].liveness, Liveness::Up) {
                // Never sent again to a target that is failing (or being
                // fenced): a copy begun now could switch over after the
                // fence. It is cancelled instead, for good measure (a copy
                // begun meanwhile is discarded), and the answer puts the
                // VM back on its source.
                vm.migration_aborting = true;
                self.notice(
                    now_ms,
                    Notice::MigrationFailed {
                        vm: id.clone(),
                        why: format!("{to} is not up: cancelling rather than sending it again"),
                    },
                );
                self.command(Command::AbortMigration {
                    vm: id,
                    from: host.clone(),
                    to,
                });
                continue;
            }
            if let VmState::Migrating { deadline_ms, .. } = &mut vm.state {
                *deadline_ms = now_ms + timeout;
            }
            // A new copy: an answer to the lost one, should it come, is
            // dropped.
            vm.migration_serial += 1;
            let serial = vm.migration_serial;
            self.command(Command::LiveMigrate {
                vm: id,
                from: host.clone(),
                to,
                serial,
            });
        }
    }
}
