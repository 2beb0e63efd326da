//! Where and when VMs boot: restarting a failed host's VMs on spares with
//! room (as a group where one spare can take them all), placing new VMs
//! again after a failed boot, boot results, retries and giving up, VMs that
//! died on a live host, and each spare's pool state.

use super::{
    can_take_vms, home_ready, ApiError, BootReason, Command, DownReason, DriverError, HaManager,
    Liveness, Notice, SpareState, VmState,
};
use crate::ids::{HostId, VmId};
use crate::model::{HaPolicy, Resources};
use crate::placement::{self, Spot};
use crate::rules::{BreakCause, Fit};
use std::collections::BTreeMap;
use std::collections::BTreeSet;

impl HaManager {
    /// Restarts what waits for capacity onto healthy spares, a failed host's
    /// VMs as one group where one spare can take them all.
    pub(super) fn place_waiting(&mut self, now_ms: u64) {
        self.retry_boots_due(now_ms);
        self.retry_where_only_the_group_runs(now_ms);
        // VMs waiting for their home's repair whose home is fit again (it
        // may have come back before the VM was released to wait for it).
        let restorable = self.unsettled_where(|_, v| {
            matches!(&v.state, VmState::WaitingForRepair { host } if home_ready(&self.hosts, host))
                && v.spec.demand.fits_in(&self.free_capacity(&v.spec.home))
                && self.rules_let_go_home(&v.spec.id)
        });
        for id in restorable {
            let home = self.vms[&id].spec.home.clone();
            // Boots in this loop take room (and may be a rule's): check again.
            if self.vms[&id]
                .spec
                .demand
                .fits_in(&self.free_capacity(&home))
                && self.rules_let_go_home(&id)
            {
                self.vms.get_mut(&id).expect("listed").start_boot_round();
                self.boot_home(now_ms, &id);
            }
        }
        // VMs waiting for a home their must affinity group no longer runs
        // on (a group move cut short): they join the group where it runs.
        let stranded = self.unsettled_where(|id, v| {
            matches!(&v.state, VmState::WaitingForRepair { host } if home_ready(&self.hosts, host))
                && !self.rules_let_go_home(id)
        });
        for id in stranded {
            if let Some(host) = self.group_host(&id) {
                self.join_group(now_ms, &id, &host);
            }
        }
        let spares: Vec<HostId> = self
            .spare_ids
            .iter()
            .filter(|s| can_take_vms(&self.hosts[*s]))
            .cloned()
            .collect();
        // Group by failed host (BTreeMap: deterministic), VMs by priority.
        let mut groups: BTreeMap<HostId, Vec<(u32, VmId)>> = BTreeMap::new();
        // VMs whose home is up again go there instead of to a spare.
        let mut go_home: Vec<VmId> = Vec::new();
        // VMs whose must affinity group runs settled on one host join it
        // there (a group move cut short left them apart).
        let mut join: Vec<(VmId, HostId, HostId)> = Vec::new();
        // VMs not due yet (backing off after a failed boot, or waiting for
        // other hosts failing with theirs) still hold their rank.
        let mut not_yet: BTreeMap<HostId, Vec<(u32, VmId)>> = BTreeMap::new();
        for (id, v) in self.vms.unsettled() {
            if let VmState::WaitingForCapacity {
                failed_host,
                retry_at_ms,
                ..
            } = &v.state
            {
                if *retry_at_ms > now_ms {
                    not_yet
                        .entry(failed_host.clone())
                        .or_default()
                        .push((v.spec.priority, id.clone()));
                    continue;
                }
                if home_ready(&self.hosts, &v.spec.home) && self.may_boot_on(id, &v.spec.home) {
                    go_home.push(id.clone());
                    continue;
                }
                if let Some(h) = self.group_host(id) {
                    join.push((id.clone(), h, failed_host.clone()));
                    continue;
                }
                groups
                    .entry(failed_host.clone())
                    .or_default()
                    .push((v.spec.priority, id.clone()));
            }
        }
        for id in go_home {
            let home = self.vms[&id].spec.home.clone();
            if self.vms[&id]
                .spec
                .demand
                .fits_in(&self.free_capacity(&home))
                && self.rules_let_go_home(&id)
            {
                self.boot_home(now_ms, &id);
            } else {
                groups
                    .entry(home)
                    .or_default()
                    .push((self.vms[&id].spec.priority, id.clone()));
            }
        }
        for (id, host, failed_host) in join {
            if !self.join_group(now_ms, &id, &host) {
                groups
                    .entry(failed_host)
                    .or_default()
                    .push((self.vms[&id].spec.priority, id.clone()));
            }
        }
        // Joins may have taken spare room.
        let mut free: Vec<Resources> = spares.iter().map(|s| self.free_capacity(s)).collect();
        // Failovers compete by priority across failed hosts: a group's
        // rank is its highest priority. Hosts being fenced right now, and
        // VMs not due yet, reserve room first if they outrank (ties: those
        // due now win), so a priority-100 database is not starved by
        // whichever host happened to be fenced first.
        let mut ranked: Vec<RankedGroup> = groups
            .into_iter()
            .map(|(host, members)| RankedGroup::new(false, host, members))
            .collect();
        for (host, members) in not_yet {
            ranked.push(RankedGroup::new(true, host, members));
        }
        for h in self.hosts.values() {
            if !matches!(h.liveness, Liveness::Fencing(_)) {
                continue;
            }
            let host = h.spec.id.clone();
            let members: Vec<(u32, VmId)> = self
                .vms
                .iter()
                .filter(|(_, v)| {
                    self.effective_ha(&v.spec) == HaPolicy::Restart
                        && matches!(&v.state, VmState::HostDown { host: d } if d == &host)
                })
                .map(|(id, v)| (v.spec.priority, id.clone()))
                .collect();
            if !members.is_empty() {
                ranked.push(RankedGroup::new(true, host, members));
            }
        }
        ranked.sort_by(|a, b| {
            b.rank
                .cmp(&a.rank)
                .then(a.reservation.cmp(&b.reservation))
                .then(a.host.cmp(&b.host))
        });
        // Room held for VMs not placed yet counts for their rules too.
        let mut held: Vec<(VmId, HostId)> = Vec::new();
        for RankedGroup {
            reservation,
            mut members,
            ..
        } in ranked
        {
            members.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let demands: Vec<Resources> = members
                .iter()
                .map(|(_, id)| self.vms[id].spec.demand)
                .collect();
            // A must affinity group's VMs go to one spare or wait together.
            let ids: Vec<&VmId> = members.iter().map(|(_, id)| id).collect();
            let units = self.rules.units(&ids);
            let placed =
                placement::place_group_by_rules(&mut free, &demands, &units, |i, b, placed| {
                    let vm = &members[i].1;
                    if !self.may_boot_on(vm, &spares[b]) {
                        return Fit::Forbidden {
                            why: format!("its boot failed on {} already", spares[b]),
                        };
                    }
                    if !self.rules.names(vm) {
                        return Fit::Allowed { preference: 0 };
                    }
                    let mut also: Vec<(VmId, HostId)> = placed
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .filter_map(|(j, at)| {
                            at.map(|at| (members[j].1.clone(), spares[at].clone()))
                        })
                        .collect();
                    also.extend(held.iter().cloned());
                    self.rule_fit(vm, &spares[b], &also)
                });
            if reservation {
                // Room held for them; they boot once fenced (or due).
                held.extend(members.iter().zip(&placed).filter_map(|((_, id), spot)| {
                    Some((id.clone(), spares[spot.as_ref()?.bin].clone()))
                }));
                continue;
            }
            // Units that tried production hosts already (all or nothing).
            let mut unit_tried: Vec<(usize, bool)> = Vec::new();
            for (i, ((_, id), spot)) in members.iter().zip(placed).enumerate() {
                let unit = units[i];
                match spot {
                    Some(Spot { bin, breaks }) => {
                        self.boot(now_ms, id, &spares[bin], BootReason::Failover);
                        self.report_rule_broken(
                            now_ms,
                            id,
                            &spares[bin],
                            breaks,
                            BreakCause::NothingElseFitted,
                        );
                    }
                    None if self.may_fail_over_to_production(id)
                        && match unit_tried.iter().find(|(u, _)| *u == unit) {
                            Some((_, booted)) => *booted,
                            None => {
                                let whole: Vec<VmId> = (0..members.len())
                                    .filter(|j| units[*j] == unit)
                                    .map(|j| members[j].1.clone())
                                    .collect();
                                let booted = self.fail_over_to_production(now_ms, &whole, &held);
                                unit_tried.push((unit, booted));
                                booted
                            }
                        } => {}
                    None => {
                        // Its must group being stopped to move with it: it
                        // is placed with them, not waiting (no report).
                        if self.affinity_mate_evacuating(id) {
                            continue;
                        }
                        let needs = self.vms[id].spec.demand;
                        let held_back = self.held_back_by(id, &needs, &spares, &free, &held);
                        // Room only where its boot failed already?
                        let only_tried = spares
                            .iter()
                            .zip(&free)
                            .any(|(s, f)| needs.fits_in(f) && !self.may_boot_on(id, s));
                        let vm = self.vms.get_mut(id).expect("listed");
                        let tried = vm.boot_failed_on.clone();
                        if let VmState::WaitingForCapacity { reported, .. } = &mut vm.state {
                            if !*reported {
                                *reported = true;
                                let vm = id.clone();
                                self.notice(
                                    now_ms,
                                    match held_back {
                                        Some(why) => Notice::VmWaitingForRule { vm, why },
                                        None if only_tried => {
                                            Notice::VmWaitingForUntriedHost { vm, tried }
                                        }
                                        None => Notice::VmWaitingForCapacity { vm, needs },
                                    },
                                );
                            }
                        }
                    }
                }
            }
        }
        self.schedule_new(now_ms);
        self.refresh_spares(now_ms);
        self.dpm_power_on_if_short(now_ms);
    }

    /// No spare can take `unit` (one VM, or a must affinity group placed
    /// as one): it boots on the production host with the most free room
    /// for all of it (admission control's reserve is for this) that its
    /// rules allow and where none of its boots failed, if any — whether it
    /// did. `held`: room held on spares for VMs placed but not booted.
    fn fail_over_to_production(
        &mut self,
        now_ms: u64,
        unit: &[VmId],
        held: &[(VmId, HostId)],
    ) -> bool {
        // Must-affinity mates still to be placed (their boot failed, or a
        // restart delay holds them) follow the unit where it goes: it goes
        // only where they fit too and may boot — found by the adversary: a
        // member restarted alone on a host without room for its mate left
        // the mate down for ever.
        let mut whole = unit.to_vec();
        whole.extend(self.mates_to_place(unit));
        let candidates: Vec<HostId> = self
            .production_candidates()
            .0
            .into_iter()
            .filter(|h| whole.iter().all(|id| self.may_boot_on(id, h)))
            .collect();
        let free: Vec<Resources> = candidates.iter().map(|h| self.free_capacity(h)).collect();
        let demand = self.unit_demand(&whole);
        // A VM away from home is headed there: for its rules it counts at
        // its home too — found by the adversary: a must pair failed over
        // onto each other's homes and could never go back.
        let mut also = held.to_vec();
        if unit.iter().any(|id| self.rules.names(id)) {
            also.extend(
                self.vms
                    .away_from_home()
                    .into_iter()
                    .filter(|(_, v)| v.spec.failback)
                    .map(|(vm, v)| (vm.clone(), v.spec.home.clone())),
            );
        }
        let Ok(Spot { bin, .. }) = placement::most_free_by_rules(&free, &demand, |i| {
            if let [id] = unit {
                return self.rule_fit(id, &candidates[i], &also);
            }
            let mut also = also.clone();
            also.extend(unit.iter().map(|m| (m.clone(), candidates[i].clone())));
            let mut why_broken = Vec::new();
            for id in unit {
                match self.rule_fit(id, &candidates[i], &also) {
                    Fit::Forbidden { why } => return Fit::Forbidden { why },
                    Fit::Breaks { why } => why_broken.push(why),
                    Fit::Allowed { .. } => {}
                }
            }
            if why_broken.is_empty() {
                Fit::Allowed { preference: 0 }
            } else {
                Fit::Breaks {
                    why: why_broken.join("; "),
                }
            }
        }) else {
            return false;
        };
        let host = candidates[bin].clone();
        for id in unit {
            let breaks = self.should_breaks(id, &host);
            self.notice(
                now_ms,
                Notice::VmFailoverToProduction {
                    vm: id.clone(),
                    host: host.clone(),
                },
            );
            self.boot(now_ms, id, &host, BootReason::Failover);
            self.report_rule_broken(now_ms, id, &host, breaks, BreakCause::NothingElseFitted);
        }
        true
    }

    /// Whether `vm`'s rules let it run on its home host (a `must` rule can
    /// forbid it: another VM of an anti-affine group moved there meanwhile).
    pub(super) fn rules_let_go_home(&self, vm: &VmId) -> bool {
        let home = &self.vms[vm].spec.home;
        !matches!(self.rule_fit(vm, home, &[]), Fit::Forbidden { .. })
    }

    /// Production hosts that may take a new VM, with the room they have for it.
    pub(super) fn production_candidates(&self) -> (Vec<HostId>, Vec<Resources>) {
        let ids: Vec<HostId> = self
            .hosts
            .values()
            .filter(|h| h.spare.is_none() && h.spec.zone.runs_vms() && can_take_vms(h))
            .map(|h| h.spec.id.clone())
            .collect();
        let free = ids.iter().map(|h| self.room_for_tenants(h)).collect();
        (ids, free)
    }

    /// Places new VMs whose boot failed again, after their back-off.
    fn schedule_new(&mut self, now_ms: u64) {
        let due = self.unsettled_where(
            |_, v| matches!(v.state, VmState::Scheduling { retry_at_ms, .. } if retry_at_ms <= now_ms),
        );
        for id in due {
            let (ids, free) = self.production_candidates();
            let demand = self.vms[&id].spec.demand;
            // Room only where its boot failed already?
            let only_tried = ids
                .iter()
                .zip(&free)
                .any(|(h, f)| demand.fits_in(f) && !self.may_boot_on(&id, h));
            // Never a host where its boot failed already.
            let (ids, free): (Vec<HostId>, Vec<Resources>) = ids
                .into_iter()
                .zip(free)
                .filter(|(h, _)| self.may_boot_on(&id, h))
                .unzip();
            match self.tenant_spot(&id, &demand, &ids, &free) {
                Ok(Spot { bin, breaks }) => {
                    self.boot(now_ms, &id, &ids[bin], BootReason::Create);
                    self.report_rule_broken(
                        now_ms,
                        &id,
                        &ids[bin],
                        breaks,
                        BreakCause::NothingElseFitted,
                    );
                }
                Err(why) => {
                    // Try again after another back-off; said once.
                    let vm = self.vms.get_mut(&id).expect("listed");
                    let said = matches!(vm.state, VmState::Scheduling { reported: true, .. });
                    vm.state = VmState::Scheduling {
                        retry_at_ms: now_ms + self.config.boot_retry_backoff_ms,
                        reported: true,
                    };
                    let tried = vm.boot_failed_on.clone();
                    let only_tried = only_tried && !tried.is_empty();
                    if !said {
                        let vm = id.clone();
                        self.notice(
                            now_ms,
                            match why {
                                ApiError::NoAllowedHost { why, .. } => {
                                    Notice::VmWaitingForRule { vm, why }
                                }
                                _ if only_tried => Notice::VmWaitingForUntriedHost { vm, tried },
                                _ => Notice::VmWaitingForCapacity { vm, needs: demand },
                            },
                        );
                    }
                }
            }
        }
    }

    /// `host` was fenced while other hosts are going silent too (a
    /// correlated failure: a rack, a switch): its VMs wait one heartbeat
    /// interval for those to be declared, so that failovers decided
    /// together compete by priority. A lone failure waits for nothing.
    pub(super) fn wait_for_other_failures(&mut self, now_ms: u64, host: &HostId) {
        let others_failing = self.hosts.values().any(|h| {
            &h.spec.id != host
                && matches!(h.liveness, Liveness::Suspect { .. } | Liveness::Fencing(_))
        });
        if !others_failing {
            return;
        }
        let until = now_ms + self.config.heartbeat.interval_ms;
        for v in self.vms.values_mut() {
            if let VmState::WaitingForCapacity {
                failed_host,
                retry_at_ms,
                ..
            } = &mut v.state
            {
                if failed_host == host {
                    *retry_at_ms = (*retry_at_ms).max(until);
                }
            }
        }
    }

    /// `host`'s agent (re)connected: commands sent on its old connection —
    /// or held while it had none — may never have arrived. Boots and stops
    /// in flight there are sent again with a fresh deadline; both are
    /// idempotent on one host (a second boot of a running guest does
    /// nothing, and neither can make a copy elsewhere), and neither counts
    /// as another attempt. Migrations are not resent: their outcome is read
    /// from the hosts' reports.
    pub fn handle_agent_connected(&mut self, now_ms: u64, host: &HostId) {
        let booting = self.vms_on(
            host,
            |_, v| matches!(&v.state, VmState::Booting { host: h, .. } if h == host),
        );
        for id in booting {
            let timeout = self.config.boot_timeout_ms;
            let vm = self.vms.get_mut(&id).expect("listed");
            let VmState::Booting {
                reason,
                deadline_ms,
                ..
            } = &mut vm.state
            else {
                unreachable!("listed as booting")
            };
            *deadline_ms = now_ms + timeout;
            let reason = *reason;
            let spec = vm.spec.clone();
            // The same boot: an agent that failed it answers again.
            let serial = vm.boot_serial;
            self.command(Command::BootVm {
                vm: spec,
                host: host.clone(),
                reason,
                serial,
            });
        }
        // A VM whose boot went unanswered waits for the first report: it
        // may be running here after all, and then it stays.
        let stopping = self.vms_on(host, |_, v| {
            matches!(&v.state, VmState::Evacuating { host: h } if h == host)
                && v.boot_unanswered.is_none()
        });
        for vm in stopping {
            self.command(Command::StopVm {
                vm,
                host: host.clone(),
            });
        }
    }

    /// Whether `id` may fail over to production hosts when no spare takes
    /// it: with `failover_to_production`, or when its home is in
    /// maintenance — the drain cut short by its death meant to move it to
    /// one anyway ("the drain goes on from there"; found by the adversary:
    /// a VM whose spare boots failed waited for ever on a home that takes
    /// no VMs).
    pub(super) fn may_fail_over_to_production(&self, id: &VmId) -> bool {
        self.config.failover_to_production
            || self
                .hosts
                .get(&self.vms[id].spec.home)
                .is_some_and(|h| h.spec.maintenance)
    }

    pub(super) fn boot(&mut self, now_ms: u64, id: &VmId, host: &HostId, reason: BootReason) {
        let vm = self.vms.get_mut(id).expect("caller checked");
        vm.state = VmState::Booting {
            host: host.clone(),
            deadline_ms: now_ms + self.config.boot_timeout_ms,
            reason,
        };
        vm.boot_attempts += 1;
        vm.boot_serial += 1;
        let serial = vm.boot_serial;
        if reason == BootReason::Create {
            // A new VM's home is where it first runs: a re-placed create
            // (its first host failed it) moves its home along.
            vm.spec.home = host.clone();
        }
        let spec = vm.spec.clone();
        if reason == BootReason::Failover {
            self.failover_boots += 1;
        }
        self.notice(
            now_ms,
            Notice::VmBooting {
                vm: id.clone(),
                host: host.clone(),
                reason,
            },
        );
        self.command(Command::BootVm {
            vm: spec,
            host: host.clone(),
            reason,
            serial,
        });
    }

    /// An agent finished (or failed) a boot.
    pub fn handle_boot_result(
        &mut self,
        now_ms: u64,
        vm: &VmId,
        host: &HostId,
        result: Result<(), DriverError>,
    ) {
        let Some(rec) = self.vms.get_mut(vm) else {
            return;
        };
        match &rec.state {
            VmState::Booting { host: h, .. } if h == host => {}
            _ => return, // stale answer
        }
        match result {
            Ok(()) => {
                rec.state = VmState::Running { host: host.clone() };
                rec.outage_since_ms = None;
                rec.start_boot_round();
                // Its home in maintenance (a drain cut short): it lives on
                // the production host it came up on, as the drain meant.
                let home = rec.spec.home.clone();
                let rehome = &home != host
                    && self.hosts[host].spare.is_none()
                    && self.hosts.get(&home).is_some_and(|h| h.spec.maintenance);
                if rehome {
                    self.vms.get_mut(vm).expect("checked").spec.home = host.clone();
                }
                self.notice(
                    now_ms,
                    Notice::VmRunning {
                        vm: vm.clone(),
                        host: host.clone(),
                    },
                );
            }
            Err(why) => self.boot_failed(now_ms, vm, host, &why),
        }
        self.refresh_spares(now_ms);
    }

    /// A VM that died on a live `host` (reboot, guest crash) restarts by
    /// policy: in place when the host can run it — which can never make a
    /// second copy — else queued for its home or a spare. HA off: down.
    pub(super) fn restart_dead(
        &mut self,
        now_ms: u64,
        id: &VmId,
        host: &HostId,
        if_off: DownReason,
    ) {
        let in_place = can_take_vms(&self.hosts[host]);
        let ha = self.effective_ha(&self.vms[id].spec);
        let vm = self.vms.get_mut(id).expect("caller checked");
        vm.outage_since_ms = Some(now_ms);
        vm.start_boot_round();
        vm.settled_by = None;
        vm.migration_aborting = false;
        match ha {
            HaPolicy::Off => {
                vm.state = VmState::Down {
                    reason: if_off.clone(),
                };
                self.notice(
                    now_ms,
                    Notice::VmDown {
                        vm: id.clone(),
                        reason: if_off,
                    },
                );
            }
            HaPolicy::Restart | HaPolicy::RestoreOnRepair if in_place => {
                vm.state = VmState::Stopped;
                self.boot(now_ms, id, host, BootReason::Restore);
            }
            HaPolicy::Restart | HaPolicy::RestoreOnRepair => {
                vm.state = VmState::WaitingForCapacity {
                    failed_host: host.clone(),
                    reported: false,
                    retry_at_ms: now_ms,
                };
            }
        }
    }

    /// Recomputes each spare's pool state from where VMs are.
    pub(super) fn refresh_spares(&mut self, now_ms: u64) {
        if self.spare_ids.is_empty() {
            return;
        }
        // Recomputed only when a VM record or a spare's fitness changed
        // (after most heartbeats, neither did).
        let fit: Vec<bool> = self
            .spare_ids
            .iter()
            .map(|s| {
                let h = &self.hosts[s];
                h.liveness.is_up() && !h.lease_revoked && !h.spec.maintenance
            })
            .collect();
        let from = Some((self.vms.version(), fit));
        if self.spares_computed_from == from {
            return;
        }
        self.spares_computed_from = from;
        let spares = self.spare_ids.clone();
        // Each spare's own VMs (the index), not the cloud's.
        let in_use_set: BTreeSet<HostId> = spares
            .iter()
            .filter(|s| {
                self.vms.on_host(s).iter().any(|(_, v)| v.holds(s))
                    || self.terminated.values().any(|(hosts, _)| hosts.contains(s))
            })
            .cloned()
            .collect();
        for s in spares {
            let in_use = in_use_set.contains(&s);
            let h = &self.hosts[&s];
            // A spare in maintenance takes no failovers: not free.
            let next = if !h.liveness.is_up() || h.lease_revoked || h.spec.maintenance {
                SpareState::Unavailable
            } else if in_use {
                SpareState::Active
            } else {
                SpareState::Free
            };
            let prev = h.spare.expect("filtered");
            if prev == next {
                continue;
            }
            self.hosts.get_mut(&s).expect("listed").spare = Some(next);
            let n = match (prev, next) {
                (_, SpareState::Active) => Notice::SpareActivated { spare: s },
                (_, SpareState::Free) => Notice::SpareReturned { spare: s },
                (_, SpareState::Unavailable) => Notice::SpareUnavailable { spare: s },
            };
            self.notice(now_ms, n);
        }
    }
}

/// A failed host's VMs competing for spare room: ranked by their highest
/// priority; a reservation holds room without booting.
struct RankedGroup {
    rank: u32,
    reservation: bool,
    host: HostId,
    /// (priority, VM).
    members: Vec<(u32, VmId)>,
}

impl RankedGroup {
    fn new(reservation: bool, host: HostId, members: Vec<(u32, VmId)>) -> Self {
        let rank = members.iter().map(|m| m.0).max().unwrap_or(0);
        Self {
            rank,
            reservation,
            host,
            members,
        }
    }
}
