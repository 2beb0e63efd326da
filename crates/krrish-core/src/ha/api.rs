//! Operator requests: create a VM (on a named host or the production host
//! with the most free memory), live-migrate one, stop one. Each is checked
//! and either refused with an [`ApiError`] or turned into commands.

use super::{ApiError, BootReason, Command, DownReason, HaManager, VmRecord, VmState};
use crate::ids::{HostId, VmId};
use crate::model::{Resources, VmSpec};
use crate::rules::{BreakCause, Fit};

impl HaManager {
    /// Creates a VM (RunInstances): on `host` if given, else on the up
    /// production host with the most free memory.
    pub fn create_vm(
        &mut self,
        now_ms: u64,
        mut spec: VmSpec,
        host: Option<HostId>,
    ) -> Result<HostId, ApiError> {
        if self.vms.contains_key(&spec.id) {
            return Err(ApiError::VmExists(spec.id));
        }
        let named = host.is_some();
        let (target, breaks) = match host {
            Some(h) => {
                if !self.hosts.contains_key(&h) {
                    return Err(ApiError::NoSuchHost(h));
                }
                if let Some(why) = self.cannot_take(&h, &spec.demand) {
                    return Err(ApiError::HostUnusable { host: h, why });
                }
                match self.rule_fit(&spec.id, &h, &[]) {
                    Fit::Forbidden { why } => {
                        return Err(ApiError::RuleForbids {
                            vm: spec.id,
                            host: h,
                            why,
                        })
                    }
                    Fit::Breaks { why } => (h, Some(why)),
                    Fit::Allowed { .. } => (h, None),
                }
            }
            None => self.most_room_for(&spec.id, &spec.demand)?,
        };
        spec.home = target.clone();
        let id = spec.id.clone();
        self.vms.insert(VmRecord::new(spec, VmState::Stopped));
        self.boot(now_ms, &id, &target, BootReason::Create);
        let cause = if named {
            BreakCause::OperatorNamedHost
        } else {
            BreakCause::NothingElseFitted
        };
        self.report_rule_broken(now_ms, &id, &target, breaks, cause);
        self.refresh_spares(now_ms);
        Ok(target)
    }

    /// Starts a stopped VM (StartInstances): on its home host when that
    /// has room, else on the production host with the most free room (which
    /// becomes its home). Refused while its stop is unconfirmed. A VM in
    /// `error` (every boot allowed failed) starts the same way, its failed
    /// boots forgotten: this is how an operator clears the state.
    pub fn start_vm(&mut self, now_ms: u64, vm: &VmId) -> Result<HostId, ApiError> {
        let rec = self
            .vms
            .get(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        let startable = match &rec.state {
            VmState::Stopped | VmState::Error { .. } => true,
            // Down and surely running nowhere (its host fenced, or it
            // vanished from a live one): an operator may start it.
            VmState::Down { reason } => !matches!(reason, DownReason::FenceFailed { .. }),
            _ => false,
        };
        if !startable {
            return Err(ApiError::NotStopped {
                vm: vm.clone(),
                state: rec.state.name(),
            });
        }
        if let Some(host) = &rec.stop_unconfirmed_on {
            return Err(ApiError::StopUnconfirmed {
                vm: vm.clone(),
                host: host.clone(),
            });
        }
        let (home, demand) = (rec.spec.home.clone(), rec.spec.demand);
        let (target, breaks) = if self.hosts.contains_key(&home)
            && self.cannot_take(&home, &demand).is_none()
            && matches!(self.rule_fit(vm, &home, &[]), Fit::Allowed { .. })
        {
            (home, None)
        } else {
            self.most_room_for(vm, &demand)?
        };
        let rec = self.vms.get_mut(vm).expect("checked");
        rec.spec.home = target.clone();
        rec.start_boot_round();
        self.boot(now_ms, vm, &target, BootReason::Create);
        self.report_rule_broken(now_ms, vm, &target, breaks, BreakCause::NothingElseFitted);
        self.refresh_spares(now_ms);
        Ok(target)
    }

    /// Why `host` cannot take a new tenant needing `demand`, if it cannot.
    fn cannot_take(&self, host: &HostId, demand: &Resources) -> Option<String> {
        if let Some(why) = self.unfit_for_tenants(host) {
            return Some(why);
        }
        let room = self.room_for_tenants(host);
        (!demand.fits_in(&room)).then(|| {
            format!(
                "free {room} (after the room kept for its own VMs coming home) < needed {demand}"
            )
        })
    }

    /// The production host with the most room for `vm` needing `demand`
    /// that its rules allow, and the `should` rules broken there.
    fn most_room_for(
        &self,
        vm: &VmId,
        demand: &Resources,
    ) -> Result<(HostId, Option<String>), ApiError> {
        let (candidates, free) = self.production_candidates();
        let spot = self.tenant_spot(vm, demand, &candidates, &free)?;
        Ok((candidates[spot.bin].clone(), spot.breaks))
    }

    /// Live-migrates a running VM at an operator's request.
    pub fn migrate_vm(&mut self, now_ms: u64, vm: &VmId, to: &HostId) -> Result<(), ApiError> {
        let rec = self
            .vms
            .get(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        if !self.hosts.contains_key(to) {
            return Err(ApiError::NoSuchHost(to.clone()));
        }
        let VmState::Running { host: from } = &rec.state else {
            return Err(ApiError::NotRunning {
                vm: vm.clone(),
                state: rec.state.name(),
            });
        };
        let from = from.clone();
        if let Some(why) = self.unfit_for_tenants(to) {
            return Err(ApiError::MigrationBlocked {
                vm: vm.clone(),
                to: to.clone(),
                why,
            });
        }
        // Its affinity mates on the same host go with it (FusionCompute:
        // migrating one VM of an affinity group moves the others).
        let unit = self.moving_unit(vm, &from);
        let breaks = self
            .judge_unit_move(&unit, &from, to, self.room_for_tenants(to), &[])
            .map_err(|refused| ApiError::MigrationBlocked {
                vm: vm.clone(),
                to: to.clone(),
                why: refused.why(),
            })?;
        for (m, breaks) in unit.iter().zip(breaks) {
            self.start_migration(now_ms, m, &from, to);
            self.report_rule_broken(now_ms, m, to, breaks, BreakCause::OperatorNamedHost);
        }
        self.refresh_spares(now_ms);
        Ok(())
    }

    /// Why an operator may not put a VM on `host` now, if so: the same
    /// rules the loader and the scheduler apply. Spares are for failed
    /// hosts' VMs only (else the next failover finds half the room, and the
    /// failback sweep would undo the placement at once).
    fn unfit_for_tenants(&self, host: &HostId) -> Option<String> {
        let h = &self.hosts[host];
        Some(if h.spare.is_some() {
            "it is a spare: spares take only the VMs of failed hosts".to_string()
        } else if !h.spec.zone.runs_vms() {
            format!("zone {} runs no tenant VMs", h.spec.zone)
        } else if h.liveness != super::Liveness::Up {
            format!("host is {}", h.verdict())
        } else if h.spec.maintenance {
            "host is in maintenance".to_string()
        } else if h.boot_id.is_none() {
            "its agent has not reported yet".to_string()
        } else if h.lease_revoked {
            "its DFS lease is revoked".to_string()
        } else if !super::can_take_vms(h) {
            format!(
                "host is {}: a guest there could not open its disk or serve",
                h.verdict()
            )
        } else {
            return None;
        })
    }

    /// Terminates a VM (TerminateInstances), whatever its state: its record
    /// goes, and every host where a copy may run or be starting is told to
    /// stop it. A copy whose stop is lost shows up in that host's next
    /// report as a stray and is stopped then; no copy of it is ever started
    /// again. Returns the hosts told.
    pub fn terminate_vm(&mut self, now_ms: u64, vm: &VmId) -> Result<Vec<HostId>, ApiError> {
        let rec = self
            .vms
            .remove(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        // Where the guest may still run — also a host being fenced, or
        // whose fence failed (the adversary freed a volume such a guest
        // still wrote), and a stop not yet confirmed.
        let hosts = rec.hosts_that_may_run();
        for host in &hosts {
            self.command(Command::StopVm {
                vm: vm.clone(),
                host: host.clone(),
            });
        }
        // Its room stays held where it may still run, until that is known.
        if !hosts.is_empty() {
            self.terminated
                .insert(vm.clone(), (hosts.clone(), rec.spec.demand));
            self.spares_computed_from = None;
        }
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
        Ok(hosts)
    }

    /// Where a VM an operator names runs; refused if unknown or not running.
    fn running_host(&self, vm: &VmId) -> Result<HostId, ApiError> {
        let rec = self
            .vms
            .get(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        match &rec.state {
            VmState::Running { host } => Ok(host.clone()),
            other => Err(ApiError::NotRunning {
                vm: vm.clone(),
                state: other.name(),
            }),
        }
    }

    /// Reboots a running VM in place (RebootInstances).
    pub fn reboot_vm(&mut self, vm: &VmId) -> Result<HostId, ApiError> {
        let host = self.running_host(vm)?;
        self.command(Command::RebootVm {
            vm: vm.clone(),
            host: host.clone(),
        });
        Ok(host)
    }

    /// Stops a running VM at an operator's request. A VM that runs
    /// nowhere and is being recovered (waiting for a host, retrying a
    /// boot, in error, down) is stopped at once: its recovery is called
    /// off. One that may run somewhere it is not known to (booting,
    /// migrating, its host being fenced) is refused.
    pub fn stop_vm(&mut self, now_ms: u64, vm: &VmId) -> Result<(), ApiError> {
        let rec = self
            .vms
            .get(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        let idle = match &rec.state {
            VmState::WaitingForCapacity { .. }
            | VmState::Scheduling { .. }
            | VmState::WaitingForRepair { .. }
            | VmState::RetryingBoot { .. }
            | VmState::Error { .. } => true,
            VmState::Down { reason } => !matches!(reason, DownReason::FenceFailed { .. }),
            _ => false,
        };
        if idle && rec.hosts_that_may_run().is_empty() {
            let rec = self.vms.get_mut(vm).expect("checked");
            rec.state = VmState::Stopped;
            rec.start_boot_round();
            rec.outage_since_ms = None;
            self.refresh_spares(now_ms);
            self.place_waiting(now_ms);
            return Ok(());
        }
        let host = self.running_host(vm)?;
        let rec = self.vms.get_mut(vm).expect("checked");
        rec.state = VmState::Stopped;
        rec.stop_unconfirmed_on = Some(host.clone());
        self.command(Command::StopVm {
            vm: vm.clone(),
            host,
        });
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
        Ok(())
    }
}
