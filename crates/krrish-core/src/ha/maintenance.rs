//! Maintenance mode by API. Entering it drains the host by live migration
//! (each VM to the production host with the most room that its rules and
//! the migration constraints allow) — or, if any VM could not move now, is
//! refused with the list and nothing changes. A host in maintenance takes
//! no VMs; once drained, its silence is taken as a power-off: no fence, no
//! failover. A migration that fails while draining is tried again after the
//! back-off. Leaving maintenance makes the host a target again.

use super::affinity::UnitRefused;
use super::{ApiError, HaManager, Liveness, Notice, VmState};
use crate::ids::{HostId, VmId};
use crate::placement::{self, Spot};
use crate::rules::{BreakCause, Fit};

impl HaManager {
    /// Puts `host` in maintenance and starts draining it; returns where
    /// each of its VMs goes. Refused — nothing changed — when the host is
    /// not up, is a spare running VMs, runs a VM that is not settled
    /// (booting, migrating, …), or runs one that cannot move now.
    pub fn enter_maintenance(
        &mut self,
        now_ms: u64,
        host: &HostId,
    ) -> Result<Vec<(VmId, HostId)>, ApiError> {
        let h = self
            .hosts
            .get(host)
            .ok_or_else(|| ApiError::NoSuchHost(host.clone()))?;
        let refuse = |why: String| ApiError::MaintenanceRefused {
            host: host.clone(),
            why,
        };
        if h.spec.maintenance {
            return Err(refuse("it is in maintenance already".into()));
        }
        if h.liveness != Liveness::Up {
            return Err(refuse(format!(
                "it is {}: a host that is not up is HA's to handle",
                h.verdict()
            )));
        }
        let mut running = Vec::new();
        for (id, v) in self.vms.on_host(host) {
            let here = v.hosts_that_may_run().contains(host) || v.holds(host);
            match &v.state {
                VmState::Running { host: on } if on == host => {
                    running.push((v.spec.priority, id.clone()))
                }
                state if here => {
                    return Err(refuse(format!(
                        "vm {id} is {} there; try again once it settles",
                        state.name()
                    )))
                }
                _ => {}
            }
        }
        if h.spare.is_some() && !running.is_empty() {
            return Err(refuse(
                "it is a spare running failed-over VMs; they leave when their homes are back"
                    .into(),
            ));
        }
        // Highest priority first: it gets the best room.
        running.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut planned: Vec<(VmId, HostId, Option<String>)> = Vec::new();
        let mut stuck = Vec::new();
        let (targets, mut free) = self.production_candidates();
        for (_, vm) in &running {
            // Moved already with an affinity mate ranked higher.
            if planned.iter().any(|(v, _, _)| v == vm) || stuck.iter().any(|(v, _)| v == vm) {
                continue;
            }
            let unit = self.moving_unit(vm, host);
            let also: Vec<(VmId, HostId)> = planned
                .iter()
                .map(|(v, h, _)| (v.clone(), h.clone()))
                .collect();
            match self.drain_target(&unit, host, &targets, &free, &also) {
                Ok((bin, breaks)) => {
                    free[bin] = free[bin].saturating_sub(&self.unit_demand(&unit));
                    for (m, breaks) in unit.into_iter().zip(breaks) {
                        planned.push((m, targets[bin].clone(), breaks));
                    }
                }
                Err(why) => stuck.extend(unit.into_iter().map(|m| (m, why.clone()))),
            }
        }
        if !stuck.is_empty() {
            return Err(ApiError::CannotDrain {
                host: host.clone(),
                stuck,
            });
        }
        self.hosts.get_mut(host).expect("checked").spec.maintenance = true;
        self.notice(
            now_ms,
            Notice::HostEnteringMaintenance {
                host: host.clone(),
                moving: planned.len(),
            },
        );
        for (vm, to, breaks) in &planned {
            self.start_migration(now_ms, vm, host, to);
            self.report_rule_broken(
                now_ms,
                vm,
                to,
                breaks.clone(),
                BreakCause::NothingElseFitted,
            );
        }
        if planned.is_empty() {
            self.notice(now_ms, Notice::HostInMaintenance { host: host.clone() });
        }
        self.refresh_spares(now_ms);
        Ok(planned.into_iter().map(|(vm, to, _)| (vm, to)).collect())
    }

    /// Takes `host` out of maintenance: it takes VMs again (its own waiting
    /// on spares come home).
    pub fn exit_maintenance(&mut self, now_ms: u64, host: &HostId) -> Result<(), ApiError> {
        let h = self
            .hosts
            .get_mut(host)
            .ok_or_else(|| ApiError::NoSuchHost(host.clone()))?;
        if !h.spec.maintenance {
            return Err(ApiError::MaintenanceRefused {
                host: host.clone(),
                why: "it is not in maintenance".into(),
            });
        }
        // A host DPM powered off (or is powering off) is powered on; it
        // takes VMs once it heartbeats from its new boot.
        // A power-off in flight lands anyway (found by the adversary: the
        // host was handed back, took a VM, and was switched off under it).
        if h.standby == super::Standby::PoweringOff
            || matches!(h.standby, super::Standby::Off { .. }) && !h.liveness.is_up()
        {
            let why = "an operator took it out of maintenance".to_string();
            self.power_on_standby(now_ms, host, why);
            return Ok(());
        }
        h.standby = super::Standby::No;
        h.spec.maintenance = false;
        self.notice(now_ms, Notice::HostLeftMaintenance { host: host.clone() });
        self.refresh_spares(now_ms);
        self.fail_back_sweep_for(now_ms, Some(host));
        self.place_waiting(now_ms);
        Ok(())
    }

    /// Where the VMs of `unit` (one VM and the affinity mates moving with
    /// it) on `from` may live-migrate together among `targets` (with
    /// `free` room, `also` placed already): the most room their rules allow
    /// and no migration blocker stops — with the `should` rules each member
    /// breaks there; else why not.
    fn drain_target(
        &self,
        unit: &[VmId],
        from: &HostId,
        targets: &[HostId],
        free: &[crate::model::Resources],
        also: &[(VmId, HostId)],
    ) -> Result<(usize, Vec<Option<String>>), String> {
        let mut why_not = None;
        // Never the host being drained: no room there for this.
        let free: Vec<crate::model::Resources> = targets
            .iter()
            .zip(free)
            .map(|(h, f)| {
                if h == from {
                    crate::model::Resources::ZERO
                } else {
                    *f
                }
            })
            .collect();
        let demand = self.unit_demand(unit);
        let mut judged: Vec<Option<Vec<Option<String>>>> = vec![None; targets.len()];
        let spot = placement::most_free_by_rules(&free, &demand, |i| {
            match self.judge_unit_move(unit, from, &targets[i], free[i], also) {
                Ok(breaks) => {
                    let why: Vec<String> = breaks.iter().flatten().cloned().collect();
                    judged[i] = Some(breaks);
                    if why.is_empty() {
                        // The rules' host preference, as for one VM.
                        let mut also = also.to_vec();
                        also.extend(unit.iter().map(|m| (m.clone(), targets[i].clone())));
                        match self.rule_fit(&unit[0], &targets[i], &also) {
                            Fit::Allowed { preference } => Fit::Allowed { preference },
                            _ => Fit::Allowed { preference: 0 },
                        }
                    } else {
                        Fit::Breaks {
                            why: why.join("; "),
                        }
                    }
                }
                Err(UnitRefused::Blocked(why)) => {
                    why_not.get_or_insert_with(|| format!("to {}: {why}", targets[i]));
                    Fit::Forbidden { why }
                }
                Err(UnitRefused::Rule(why)) => Fit::Forbidden { why },
            }
        });
        let vm = &unit[0];
        let spec = &self.vms[vm].spec;
        match spot {
            Ok(Spot { bin, .. }) => Ok((bin, judged[bin].take().expect("judged allowed"))),
            Err(forbidden) => Err(match (why_not, forbidden) {
                (Some(why), _) => format!("no host it may live-migrate to ({why})"),
                (None, Some(why)) => format!("no host its rules allow: {why}"),
                (None, None) if unit.len() > 1 => format!(
                    "no production host has room for {} with the {} VMs of its affinity group ({demand} in all)",
                    spec.id,
                    unit.len()
                ),
                (None, None) => format!("no production host has room for {}", spec.demand),
            }),
        }
    }

    /// The VMs of a host in maintenance running on a spare (it failed
    /// while draining, and they failed over): the drain goes on from the
    /// spare — each live-migrates to a production host, its new home —
    /// rather than holding the spare for the whole maintenance (found by
    /// the swarm: a host left in maintenance after a crash mid-drain kept
    /// a spare active for ever).
    fn drain_from_spares(&mut self, now_ms: u64) {
        let homes: Vec<HostId> = self
            .hosts
            .values()
            .filter(|h| h.spec.maintenance)
            .map(|h| h.spec.id.clone())
            .collect();
        for home in homes {
            let on_spares: Vec<(VmId, HostId)> = self
                .vms
                .away_from(&home)
                .into_iter()
                .filter_map(|(id, v)| match &v.state {
                    VmState::Running { host }
                        if self.hosts[host].spare.is_some()
                            && self.hosts[host].liveness == Liveness::Up
                            && v.failback_not_before_ms <= now_ms =>
                    {
                        Some((id.clone(), host.clone()))
                    }
                    _ => None,
                })
                .collect();
            for (vm, spare) in on_spares {
                if !matches!(&self.vms[&vm].state, VmState::Running { host } if host == &spare) {
                    continue; // moved with a mate already
                }
                self.drain_one(now_ms, &vm, &spare, &home);
            }
        }
    }

    /// VMs still running on a host in maintenance (a drain migration
    /// failed) try again once their back-off is over; one that cannot move
    /// now is reported and tried after another. Its VMs on spares go on.
    pub(super) fn drain_sweep(&mut self, now_ms: u64) {
        self.drain_from_spares(now_ms);
        let hosts: Vec<HostId> = self
            .hosts
            .values()
            .filter(|h| h.spec.maintenance && h.liveness == Liveness::Up)
            .map(|h| h.spec.id.clone())
            .collect();
        for host in hosts {
            let left = self.vms_on(&host, |_, v| {
                matches!(&v.state, VmState::Running { host: on } if on == &host)
                    && v.failback_not_before_ms <= now_ms
            });
            for vm in left {
                // Started with an affinity mate earlier in this sweep?
                if !matches!(&self.vms[&vm].state, VmState::Running { host: on } if on == &host) {
                    continue;
                }
                self.drain_one(now_ms, &vm, &host, &host);
            }
        }
    }

    /// `vm` (with the affinity mates moving with it) leaves `from` for the
    /// production host with the most room its rules and the migration
    /// constraints allow — or, with nowhere to go now, is reported as
    /// blocked (the drain of `draining`) and tried after the back-off.
    fn drain_one(&mut self, now_ms: u64, vm: &VmId, from: &HostId, draining: &HostId) {
        let (targets, free) = self.production_candidates();
        let unit = self.moving_unit(vm, from);
        match self.drain_target(&unit, from, &targets, &free, &[]) {
            Ok((bin, breaks)) => {
                let to = targets[bin].clone();
                for (m, breaks) in unit.iter().zip(breaks) {
                    self.start_migration(now_ms, m, from, &to);
                    self.report_rule_broken(now_ms, m, &to, breaks, BreakCause::NothingElseFitted);
                }
            }
            Err(why) => {
                self.vms
                    .get_mut(vm)
                    .expect("caller checked")
                    .failback_not_before_ms = now_ms + self.config.migration_retry_backoff_ms;
                self.notice(
                    now_ms,
                    Notice::DrainBlocked {
                        vm: vm.clone(),
                        host: draining.clone(),
                        why,
                    },
                );
            }
        }
    }

    /// Whether nothing may run on `host`: no VM's record places a copy
    /// there, holds room there, or may still be stopping there.
    pub(super) fn drained(&self, host: &HostId) -> bool {
        self.vms
            .on_host(host)
            .iter()
            .all(|(_, v)| !v.holds(host) && !v.hosts_that_may_run().contains(host))
            && !self
                .terminated
                .values()
                .any(|(hosts, _)| hosts.contains(host))
    }

    /// `host` in maintenance, drained, went silent: powered off by its
    /// operator. Whether that is what happened (else it is judged as any
    /// silent host).
    pub(super) fn silent_in_maintenance(&mut self, now_ms: u64, host: &HostId) -> bool {
        if !self.hosts[host].spec.maintenance || !self.drained(host) {
            return false;
        }
        self.hosts.get_mut(host).expect("caller checked").liveness =
            Liveness::PoweredOff { since_ms: now_ms };
        self.notice(now_ms, Notice::HostPoweredOff { host: host.clone() });
        self.dpm_silent(host);
        true
    }

    /// After a VM left `from`: a host in maintenance that now runs nothing
    /// is reported drained.
    pub(super) fn report_if_drained(&mut self, now_ms: u64, from: &HostId) {
        if self.hosts.get(from).is_some_and(|h| h.spec.maintenance) && self.drained(from) {
            self.notice(now_ms, Notice::HostInMaintenance { host: from.clone() });
            if self.hosts[from].standby == super::Standby::Draining {
                self.dpm_advance(now_ms);
            }
        }
    }
}
