//! Whether a host is alive, and what it runs: heartbeats (recovery from
//! suspect, a quick reboot, a fenced host coming back, bond changes), the
//! reconciliation of a live host's report with what the control plane
//! expects (stray copies, vanished VMs), and the clock — heartbeat misses
//! that make a host suspect and then offline, and every deadline that
//! expires (fencing stages, boots, migrations) in `handle_timeout`.

use super::{
    home_ready, secs, Command, DfsEvidence, DownReason, FenceMethod, FenceStage, HaManager,
    HostReport, Liveness, Notice, VmState, VANISHED_AFTER_REPORTS,
};
use crate::ids::{HostId, VmId};
use crate::model::{BondHealth, BondName};

impl HaManager {
    /// A heartbeat arrived from `host`.
    pub fn handle_heartbeat(&mut self, now_ms: u64, host: &HostId, report: &HostReport) {
        let Some(h) = self.hosts.get_mut(host) else {
            self.notice(now_ms, Notice::UnknownHost { host: host.clone() });
            return;
        };
        let liveness = h.liveness;
        // DPM's power-off was confirmed: a heartbeat from the boot it ended
        // was sent before (in flight, or held on the path) — stale.
        if matches!(liveness, Liveness::PoweredOff { .. })
            && matches!(h.standby, super::Standby::Off { .. })
            && h.boot_id == Some(report.boot_id)
        {
            return;
        }
        // A spare's state depends on the spares' fitness and the VM table:
        // a production host that was and stays up changing no VM leaves
        // both as they were (most heartbeats), so the refresh is skipped.
        let quiet_production = h.spare.is_none() && liveness == Liveness::Up;
        let vms_before = self.vms.version();
        let mass_silence_before = liveness.is_silent() && self.mass_silence();
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        let mut lease_changed = false;
        // Powered on from DPM's standby: fit for VMs, the waiting placed.
        let mut dpm_back = false;
        match liveness {
            Liveness::Up
            | Liveness::Suspect { .. }
            | Liveness::Isolated { .. }
            | Liveness::PoweredOff { .. } => {
                // Back from a power-off in maintenance, it ran nothing to lose.
                let rebooted = h.boot_id.is_some_and(|b| b != report.boot_id)
                    && !matches!(liveness, Liveness::PoweredOff { .. });
                h.last_heartbeat_ms = now_ms;
                h.boot_id = Some(report.boot_id);
                h.liveness = Liveness::Up;
                if h.lease_revoked {
                    // Still waiting for the DFS to take the host back.
                    self.command(Command::ReinstateLease { host: host.clone() });
                }
                match liveness {
                    Liveness::Suspect { .. } => {
                        self.notice(now_ms, Notice::HostRecovered { host: host.clone() })
                    }
                    Liveness::Isolated { since_ms, .. } => self.notice(
                        now_ms,
                        Notice::HostRejoined {
                            host: host.clone(),
                            isolated_ms: now_ms.saturating_sub(since_ms),
                        },
                    ),
                    Liveness::PoweredOff { .. } => {
                        self.notice(now_ms, Notice::HostBack { host: host.clone() });
                        dpm_back = self.dpm_host_on(now_ms, host);
                    }
                    _ => {}
                }
                if mass_silence_before && !self.mass_silence() {
                    self.restart_isolation_clocks(now_ms);
                }
                self.update_bonds(now_ms, host, report.bonds);
                lease_changed = self.update_lease(now_ms, host, report);
                if rebooted {
                    self.on_quick_reboot(now_ms, host, &report.running);
                }
                self.reconcile_running(now_ms, host, report);
                self.evacuate_if_due(now_ms, host);
                // Its VMs may be waiting on a spare for it to be fit again.
                if home_ready(&self.hosts, host) {
                    self.fail_back_sweep_for(now_ms, Some(host));
                }
            }
            // Restored mid-fence, nothing in flight towards it: a new boot
            // proves its guests died with the old one; the same boot is
            // reachable again without having been fenced — as a host whose
            // fence failed, its VMs run where it says.
            Liveness::Fencing(FenceStage::RebootProof { .. }) => {
                if h.boot_id.is_some_and(|b| b != report.boot_id) {
                    self.notice(
                        now_ms,
                        Notice::HostFenced {
                            host: host.clone(),
                            method: FenceMethod::Reboot,
                        },
                    );
                    self.rejoin(now_ms, host, report);
                    self.guests_gone(now_ms, host);
                    self.reconcile_running(now_ms, host, report);
                    self.on_host_back(now_ms, host);
                } else {
                    self.rejoin_unfenced(now_ms, host, report);
                }
            }
            // A fencing decision is final: heartbeats do not undo it.
            Liveness::Fencing(_) => {}
            Liveness::Fenced {
                boot_id, method, ..
            } => {
                // A powered-off host returns only by booting again; one cut
                // off by its lease may return as it is, once it runs nothing.
                let rebooted = boot_id != Some(report.boot_id);
                if rebooted || (method == FenceMethod::DfsLease && report.running.is_empty()) {
                    self.rejoin(now_ms, host, report);
                    self.reconcile_running(now_ms, host, report);
                    self.on_host_back(now_ms, host);
                } else {
                    // Fenced yet still running domains: stop them, do not
                    // take the host back until it is empty.
                    for vm in &report.running {
                        self.stray(now_ms, vm, host);
                    }
                }
            }
            Liveness::FenceFailed { .. } => self.rejoin_unfenced(now_ms, host, report),
        }
        if lease_changed || dpm_back {
            // Fit (or unfit) for VMs now: waiting ones may go there.
            self.refresh_spares(now_ms);
            self.place_waiting(now_ms);
        } else if !(quiet_production && self.vms.version() == vms_before) {
            self.refresh_spares(now_ms);
        }
    }

    /// What the agent said of its DFS lease; whether that changed. Lost
    /// and regained are told only within a boot that held one: a host that
    /// just booted holds none until its first renewal, which is no news.
    fn update_lease(&mut self, now_ms: u64, host: &HostId, report: &HostReport) -> bool {
        let h = self.hosts.get_mut(host).expect("caller checked");
        let held = report.holds_lease;
        if h.holds_lease == held {
            if held {
                h.lease_held_in_boot = Some(report.boot_id);
            }
            return false;
        }
        let same_boot = h.lease_held_in_boot == Some(report.boot_id);
        h.holds_lease = held;
        if held {
            h.lease_held_in_boot = Some(report.boot_id);
        }
        if same_boot {
            self.notice(
                now_ms,
                Notice::HostLease {
                    host: host.clone(),
                    held,
                },
            );
        }
        true
    }

    /// Reachable again without having been fenced (the fence failed, or a
    /// restored controller had not fenced it anew): nothing was started
    /// elsewhere, so its VMs simply run where they are. What it does not
    /// list provably runs nowhere (a live host's report is authoritative;
    /// after a new boot its old guests died): those go by policy, at home
    /// first.
    fn rejoin_unfenced(&mut self, now_ms: u64, host: &HostId, report: &HostReport) {
        self.rejoin(now_ms, host, report);
        let held = self.vms_on(host, |_, v| match &v.state {
            VmState::HostDown { host: h } => h == host,
            VmState::Down {
                reason: DownReason::FenceFailed { host: h },
            } => h == host,
            _ => false,
        });
        for id in held {
            if report.running.contains(&id) {
                let vm = self.vms.get_mut(&id).expect("listed");
                vm.state = VmState::Running { host: host.clone() };
                vm.outage_since_ms = None;
                self.changed_silently();
            } else {
                self.release_by_policy(now_ms, &id, host);
            }
        }
        self.on_host_back(now_ms, host);
    }

    /// A fenced (or unfenceable) host heartbeats again: it is up.
    fn rejoin(&mut self, now_ms: u64, host: &HostId, report: &HostReport) {
        let h = self.hosts.get_mut(host).expect("caller checked");
        h.liveness = Liveness::Up;
        h.last_heartbeat_ms = now_ms;
        h.boot_id = Some(report.boot_id);
        self.notice(now_ms, Notice::HostBack { host: host.clone() });
        self.update_bonds(now_ms, host, report.bonds);
        self.update_lease(now_ms, host, report);
    }

    fn update_bonds(&mut self, now_ms: u64, host: &HostId, bonds: [BondHealth; 3]) {
        let h = self.hosts.get_mut(host).expect("caller checked");
        let old = h.bonds;
        h.bonds = bonds;
        if bonds[BondName::Bond1.index()] == BondHealth::Down {
            h.vm_network_lost_since_ms.get_or_insert(now_ms);
        } else {
            h.vm_network_lost_since_ms = None;
        }
        for bond in BondName::ALL {
            let (was, is) = (old[bond.index()], bonds[bond.index()]);
            if was != is {
                self.notice(
                    now_ms,
                    Notice::BondChanged {
                        host: host.clone(),
                        bond,
                        health: is,
                    },
                );
            }
        }
    }

    /// Compares what a live host runs with what the control plane expects.
    fn reconcile_running(&mut self, now_ms: u64, host: &HostId, report: &HostReport) {
        let running = &report.running[..];
        // Terminated guests this live host no longer runs: their room is
        // free (a report lists every guest it runs or is booting).
        if !self.terminated.is_empty() {
            let off: Vec<VmId> = self
                .terminated
                .iter()
                .filter(|(vm, (hosts, _))| {
                    hosts.contains(host) && !running.contains(vm) && !report.booting.contains(vm)
                })
                .map(|(vm, _)| vm.clone())
                .collect();
            for vm in &off {
                self.terminated_off(Some(vm), host);
            }
        }
        // Boots, migrations and stops whose answers were lost, migrations in
        // doubt or being cancelled: all about VMs in unsettled states that
        // name this host. A quiet host has none (the index says so at once).
        if self.vms.any_unsettled_on(host) {
            self.reconcile_unsettled(now_ms, host, report);
        } else if self.vms.runs_exactly(host, running) {
            // Every listed VM is expected here and every expected one is
            // listed: no stray, nothing vanished (the common heartbeat).
            self.place_waiting_if_any(now_ms);
            return;
        }
        for vm in running {
            let expected = match self.vms.get(vm).map(|v| &v.state) {
                None => false,
                Some(VmState::Running { host: h })
                | Some(VmState::Booting { host: h, .. })
                | Some(VmState::Evacuating { host: h }) => h == host,
                Some(VmState::Migrating { from, to, .. }) => from == host || to == host,
                Some(_) => false,
            };
            if !expected {
                self.stray(now_ms, vm, host);
            }
        }
        // A VM its live host stopped listing has died (guest crash, a reboot
        // the controller did not see). One report could be older than the
        // switch-over of a migration, so it takes two in a row. Restarting on
        // the same host can never make a second copy.
        let mut vanished = Vec::new();
        // Only records that change are touched (each touch re-indexes).
        let changing = self.vms_on(host, |id, v| {
            matches!(&v.state, VmState::Running { host: h } if h == host)
                && (v.missed_reports > 0 || !running.contains(id))
        });
        for id in changing {
            let v = self.vms.get_mut(&id).expect("listed");
            if running.contains(&id) {
                v.missed_reports = 0;
            } else {
                v.missed_reports += 1;
                if v.missed_reports >= VANISHED_AFTER_REPORTS {
                    v.missed_reports = 0;
                    vanished.push(id.clone());
                }
            }
        }
        for id in vanished {
            self.notice(
                now_ms,
                Notice::VmVanished {
                    vm: id.clone(),
                    host: host.clone(),
                },
            );
            self.restart_dead(
                now_ms,
                &id,
                host,
                DownReason::Vanished { host: host.clone() },
            );
        }
        self.place_waiting_if_any(now_ms);
    }

    /// A heartbeat may bring capacity: place VMs waiting for it, if any —
    /// and restore those waiting for a repair their home no longer needs
    /// (released to wait after it came back: a migration in doubt settled
    /// late; found by the HA property test).
    fn place_waiting_if_any(&mut self, now_ms: u64) {
        // (Waiting VMs are among the unsettled: the index, not the cloud.)
        if self.vms.unsettled().iter().any(|(_, v)| match &v.state {
            VmState::WaitingForCapacity { .. } => true,
            VmState::WaitingForRepair { host } => super::home_ready(&self.hosts, host),
            _ => false,
        }) {
            self.place_waiting(now_ms);
        }
    }

    /// The part of [`Self::reconcile_running`] about VMs in flight on
    /// `host`: lost answers and migrations in doubt.
    fn reconcile_unsettled(&mut self, now_ms: u64, host: &HostId, report: &HostReport) {
        let (running, migrating_out, booting) = (
            &report.running[..],
            &report.migrating_out[..],
            &report.booting[..],
        );
        // An operator's stop is confirmed by a live report without the VM
        // (neither running nor booting there): it runs nowhere now.
        let stopped_here = self.vms_on(host, |id, v| {
            v.stop_unconfirmed_on.as_ref() == Some(host)
                && !running.contains(id)
                && !booting.contains(id)
        });
        for id in stopped_here {
            self.vms.get_mut(&id).expect("listed").stop_unconfirmed_on = None;
        }
        // A boot whose answer was lost (connection replaced) shows up here.
        let booted: Vec<VmId> = running
            .iter()
            .filter(|vm| {
                matches!(self.vms.get(*vm).map(|v| &v.state),
                    Some(VmState::Booting { host: h, .. }) if h == host)
            })
            .cloned()
            .collect();
        for vm in booted {
            self.handle_boot_result(now_ms, &vm, host, Ok(()));
        }
        // So does a migration whose answer was lost: the target runs it
        // (a target lists a VM only after the switch-over).
        let arrived: Vec<(VmId, HostId)> = running
            .iter()
            .filter_map(|vm| match self.vms.get(vm).map(|v| &v.state) {
                Some(VmState::Migrating { from, to, .. }) if to == host => {
                    Some((vm.clone(), from.clone()))
                }
                _ => None,
            })
            .collect();
        for (vm, from) in arrived {
            let serial = self.vms[&vm].migration_serial;
            self.handle_migration_result(now_ms, &vm, &from, host, serial, Ok(()));
        }
        self.settle_migrations_in_doubt(now_ms, host, running, migrating_out);
        self.abort_again(host);
        self.resend_lost_migrations(now_ms, host, running, migrating_out);
        // A stop whose answer was lost shows up here too.
        let evacuating = self.vms_on(
            host,
            |_, v| matches!(&v.state, VmState::Evacuating { host: h } if h == host),
        );
        for vm in evacuating {
            if booting.contains(&vm) {
                // The agent stops it when its boot ends.
                continue;
            }
            if running.contains(&vm) && self.vms[&vm].boot_unanswered.is_some() {
                // Its unanswered boot worked after all, and nothing else
                // runs it: keep it here (a stop still in flight would only
                // make it vanish, and it would restart here).
                let rec = self.vms.get_mut(&vm).expect("listed");
                let reason = rec.boot_unanswered.take().expect("checked");
                rec.state = VmState::Booting {
                    host: host.clone(),
                    deadline_ms: now_ms,
                    reason,
                };
                self.handle_boot_result(now_ms, &vm, host, Ok(()));
                continue;
            }
            if running.contains(&vm) {
                // Still there: ask again (the first stop may have failed).
                self.command(Command::StopVm {
                    vm,
                    host: host.clone(),
                });
            } else {
                self.handle_stop_result(now_ms, &vm, host, Ok(()));
            }
        }
    }

    fn stray(&mut self, now_ms: u64, vm: &VmId, host: &HostId) {
        self.notice(
            now_ms,
            Notice::StrayCopy {
                vm: vm.clone(),
                host: host.clone(),
            },
        );
        self.command(Command::StopVm {
            vm: vm.clone(),
            host: host.clone(),
        });
    }

    /// Time passed: count heartbeat misses, expire fencing and boot waits.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.last_timeout_ms = self.last_timeout_ms.max(now_ms);
        self.read_dfs_if_due(now_ms);
        // Only hosts whose own record is due for something: a quiet cloud's
        // timer does not look a thousand hosts up by name. Each is judged
        // again from its record as it is when its turn comes.
        let ids: Vec<HostId> = self
            .hosts
            .iter()
            .filter(|(_, h)| self.timer_due(h, now_ms).is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            let Some(due) = self.timer_due(&self.hosts[id], now_ms) else {
                continue;
            };
            match due {
                TimerDue::Silent { silent_ms } => self.judge_silent(now_ms, id, silent_ms),
                TimerDue::Miss { misses } => {
                    self.hosts.get_mut(id).expect("listed").liveness = Liveness::Suspect { misses };
                    self.notice(
                        now_ms,
                        Notice::HostSuspect {
                            host: id.clone(),
                            misses,
                            of: self.config.heartbeat.misses_max,
                        },
                    );
                }
                TimerDue::NoRebootProof => self.no_reboot_proof(now_ms, id),
                TimerDue::IpmiUnconfirmed => {
                    let why = format!(
                        "BMC did not confirm power-off within {}",
                        secs(self.config.fence_timeout_ms)
                    );
                    self.ipmi_failed(now_ms, id, why);
                }
                TimerDue::RevokeUnanswered { attempt } => {
                    if attempt >= self.config.lease_revoke_attempts_max {
                        self.fence_gave_up(now_ms, id);
                    } else {
                        self.hosts.get_mut(id).expect("listed").liveness =
                            Liveness::Fencing(FenceStage::LeaseRevoking {
                                attempt: attempt + 1,
                                deadline_ms: now_ms + self.config.lease_revoke_retry_ms,
                            });
                        self.command(Command::RevokeLease { host: id.clone() });
                    }
                }
                TimerDue::LeaseExpired => self.fenced(now_ms, id, FenceMethod::DfsLease),
                TimerDue::FenceRetry => self.retry_fence(now_ms, id),
            }
        }
        // Deadlines belong to booting and migrating VMs: the unsettled ones.
        let vm_ids = self.unsettled_where(|_, v| {
            matches!(v.state, VmState::Booting { .. } | VmState::Migrating { .. })
        });
        for id in vm_ids {
            match self.vms[&id].state.clone() {
                VmState::Booting {
                    host,
                    deadline_ms,
                    reason,
                } if now_ms >= deadline_ms => {
                    // The boot may have worked on a host that cannot tell us
                    // (cut off, stalled): booting it elsewhere now could run
                    // it twice. Stop it there first, as an evacuation; it
                    // counts as a failed boot once the stop is confirmed (by
                    // the answer, or a report without it), or the host is
                    // fenced.
                    self.notice(
                        now_ms,
                        Notice::VmBootUnanswered {
                            vm: id.clone(),
                            host: host.clone(),
                        },
                    );
                    let rec = self.vms.get_mut(&id).expect("listed");
                    rec.state = VmState::Evacuating { host: host.clone() };
                    rec.boot_unanswered = Some(reason);
                    self.command(Command::StopVm {
                        vm: id.clone(),
                        host: host.clone(),
                    });
                }
                VmState::Migrating {
                    from,
                    to,
                    deadline_ms,
                } if now_ms >= deadline_ms
                    && self.vms[&id].settled_by.is_none()
                    && !self.vms[&id].migration_aborting =>
                {
                    // Not assumed back on its source: a copy still running
                    // could complete into room given away. Cancel it and
                    // hold both hosts' room until the answer (or a report).
                    self.vms.get_mut(&id).expect("listed").migration_aborting = true;
                    self.notice(
                        now_ms,
                        Notice::MigrationFailed {
                            vm: id.clone(),
                            why: "timed out: cancelling it in the hypervisor".into(),
                        },
                    );
                    self.command(Command::AbortMigration {
                        vm: id.clone(),
                        from,
                        to,
                    });
                }
                _ => {}
            }
        }
        self.storm_over_check();
        self.fail_back_sweep(now_ms);
        // Before the drain sweep: a DPM drain whose migration failed is
        // given up rather than tried again.
        self.dpm_sweep(now_ms);
        self.drain_sweep(now_ms);
        self.rejoin_affinity_sweep(now_ms);
        self.drs_sweep(now_ms);
        self.place_waiting(now_ms);
        self.refresh_spares(now_ms);
    }

    pub(super) fn declare_offline(
        &mut self,
        now_ms: u64,
        host: &HostId,
        silent_ms: u64,
        evidence: DfsEvidence,
    ) {
        self.notice(
            now_ms,
            Notice::HostOffline {
                host: host.clone(),
                silent_ms,
                evidence,
            },
        );
        for vm in self.vms.values_mut() {
            let next = match &vm.state {
                VmState::Running { host: h }
                | VmState::Booting { host: h, .. }
                | VmState::Evacuating { host: h }
                    if h == host =>
                {
                    Some(VmState::HostDown { host: host.clone() })
                }
                // A VM migrating to or from the host stays `migrating`: it
                // may run on either side until the outcome is known (see
                // failback.rs, migrations in doubt).
                _ => None,
            };
            if let Some(s) = next {
                if matches!(s, VmState::HostDown { .. }) {
                    vm.outage_since_ms = Some(now_ms);
                }
                vm.state = s;
            }
        }
        self.start_ipmi_fence(now_ms, host);
    }

    /// The host rebooted before it was missed (a panic and a fast reboot):
    /// the guests it ran before died with it. What it lists now was started
    /// on the new boot and lives; boots and migrations in flight are left to
    /// their answers or time-outs. The dead restart by policy, at home first.
    fn on_quick_reboot(&mut self, now_ms: u64, host: &HostId, running: &[VmId]) {
        self.notice(now_ms, Notice::HostRebooted { host: host.clone() });
        self.home_news_ends_back_off(host);
        let dead = self.vms_on(host, |id, v| {
            matches!(&v.state, VmState::Running { host: h } if h == host) && !running.contains(id)
        });
        for id in dead {
            self.restart_dead(now_ms, &id, host, DownReason::HaOff { host: host.clone() });
        }
        // Migrations the old incarnation took part in ended with it. A VM
        // copied away from it is not here (the new boot does not list it)
        // but may run on the target, if the switch-over came first — found
        // by the adversary: taking the reboot for a failed migration booted
        // a second copy. The target's next report says (as when a side is
        // fenced). A VM copied to it may have switched over and died here,
        // or still run on its source: the source's answer or next report
        // says — until then no new copy begins (found by the adversary:
        // taken for a failed copy and sent again at once, the VM ran
        // nowhere while the controller waited on the new copy, or the old
        // copy's late answer was taken for the new one's).
        let migrating = self.vms_on(host,
            |_, v| matches!(&v.state, VmState::Migrating { from, to, .. } if from == host || to == host),
        );
        for id in migrating {
            let VmState::Migrating { from, .. } = self.vms[&id].state.clone() else {
                unreachable!("listed as migrating")
            };
            if running.contains(&id) {
                continue; // listed by the new boot: the report path settles it
            }
            let VmState::Migrating { to, .. } = self.vms[&id].state.clone() else {
                unreachable!("listed as migrating")
            };
            if &from == host {
                let vm = self.vms.get_mut(&id).expect("listed");
                vm.settled_by = Some((to.clone(), now_ms));
                vm.migration_aborting = false;
                vm.outage_since_ms.get_or_insert(now_ms);
                self.notice(
                    now_ms,
                    Notice::MigrationInDoubt {
                        vm: id.clone(),
                        fenced: host.clone(),
                        other: to,
                    },
                );
                continue;
            }
            let vm = self.vms.get_mut(&id).expect("listed");
            vm.settled_by = Some((from.clone(), now_ms));
            vm.migration_aborting = false;
            self.notice(
                now_ms,
                Notice::MigrationInDoubt {
                    vm: id.clone(),
                    fenced: host.clone(),
                    other: from,
                },
            );
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }
}

/// What the clock makes due for one host, judged from its record alone.
enum TimerDue {
    /// Silent the whole detection window, or isolated and judged again.
    Silent {
        silent_ms: u64,
    },
    /// One more heartbeat missed.
    Miss {
        misses: u32,
    },
    /// Restored mid-fence, and no new boot heard of in time.
    NoRebootProof,
    IpmiUnconfirmed,
    RevokeUnanswered {
        attempt: u32,
    },
    LeaseExpired,
    FenceRetry,
}

impl HaManager {
    fn timer_due(&self, h: &super::HostRecord, now_ms: u64) -> Option<TimerDue> {
        let hb = self.config.heartbeat;
        match h.liveness {
            Liveness::Up | Liveness::Suspect { .. } => {
                let misses = hb.misses(h.silence_start_ms(), now_ms);
                let before = match h.liveness {
                    Liveness::Suspect { misses } => misses,
                    _ => 0,
                };
                if misses >= hb.misses_max {
                    Some(TimerDue::Silent {
                        silent_ms: now_ms - h.last_heartbeat_ms,
                    })
                } else {
                    (misses > before).then_some(TimerDue::Miss { misses })
                }
            }
            Liveness::Isolated { .. } => Some(TimerDue::Silent {
                silent_ms: now_ms.saturating_sub(h.last_heartbeat_ms),
            }),
            Liveness::Fencing(FenceStage::RebootProof { deadline_ms, .. }) => {
                (now_ms >= deadline_ms).then_some(TimerDue::NoRebootProof)
            }
            Liveness::Fencing(FenceStage::Ipmi { deadline_ms }) => {
                (now_ms >= deadline_ms).then_some(TimerDue::IpmiUnconfirmed)
            }
            Liveness::Fencing(FenceStage::LeaseRevoking {
                attempt,
                deadline_ms,
            }) => (now_ms >= deadline_ms).then_some(TimerDue::RevokeUnanswered { attempt }),
            Liveness::Fencing(FenceStage::LeaseExpiring { safe_at_ms }) => {
                (now_ms >= safe_at_ms).then_some(TimerDue::LeaseExpired)
            }
            Liveness::FenceFailed { at_ms } => {
                (now_ms >= at_ms + self.config.fence_retry_ms).then_some(TimerDue::FenceRetry)
            }
            Liveness::Fenced { .. } | Liveness::PoweredOff { .. } => None,
        }
    }
}
