//! Operator requests: create a VM (on a named host or the production host
//! with the most free memory), live-migrate one, stop one. Each is checked
//! and either refused with an [`ApiError`] or turned into commands.

use super::{join_blockers, ApiError, BootReason, Command, HaManager, VmRecord, VmState};
use crate::ids::{HostId, VmId};
use crate::migration::{migration_blockers, MigrationContext};
use crate::model::VmSpec;
use crate::placement;

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
        let target = match host {
            Some(h) => {
                let rec = self
                    .hosts
                    .get(&h)
                    .ok_or_else(|| ApiError::NoSuchHost(h.clone()))?;
                let why = if !rec.liveness.is_up() {
                    Some(format!("host is {}", rec.liveness.name()))
                } else if rec.spec.maintenance {
                    Some("host is in maintenance".to_string())
                } else if !spec.demand.fits_in(&self.free_capacity(&h)) {
                    Some(format!(
                        "free {} < needed {}",
                        self.free_capacity(&h),
                        spec.demand
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(ApiError::HostUnusable { host: h, why });
                }
                h
            }
            None => {
                let (candidates, free) = self.production_candidates();
                let i = placement::most_free(&free, &spec.demand)
                    .ok_or(ApiError::NoCapacity(spec.demand))?;
                candidates[i].clone()
            }
        };
        spec.home = target.clone();
        let id = spec.id.clone();
        self.vms.insert(
            id.clone(),
            VmRecord {
                spec,
                state: VmState::Stopped,
                boot_attempts: 0,
                outage_since_ms: None,
                missed_reports: 0,
                failback_blocked: false,
                failback_not_before_ms: 0,
                settle_after_ms: None,
            },
        );
        self.boot(now_ms, &id, &target, BootReason::Create);
        self.refresh_spares(now_ms);
        Ok(target)
    }

    /// Live-migrates a running VM at an operator's request.
    pub fn migrate_vm(&mut self, now_ms: u64, vm: &VmId, to: &HostId) -> Result<(), ApiError> {
        let rec = self
            .vms
            .get(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        let target = self
            .hosts
            .get(to)
            .ok_or_else(|| ApiError::NoSuchHost(to.clone()))?;
        let VmState::Running { host: from } = &rec.state else {
            return Err(ApiError::NotRunning {
                vm: vm.clone(),
                state: rec.state.name(),
            });
        };
        let from = from.clone();
        let ctx = MigrationContext {
            vm: &rec.spec,
            vm_running: true,
            source: &self.hosts[&from].spec,
            target: &target.spec,
            target_up: target.liveness.is_up(),
            target_free: self.free_capacity(to),
            imc_mode: self.config.imc_mode,
        };
        let blockers = migration_blockers(&ctx);
        if !blockers.is_empty() {
            return Err(ApiError::MigrationBlocked {
                vm: vm.clone(),
                to: to.clone(),
                why: join_blockers(&blockers),
            });
        }
        self.start_migration(now_ms, vm, &from, to);
        self.refresh_spares(now_ms);
        Ok(())
    }

    /// Stops a running VM at an operator's request.
    pub fn stop_vm(&mut self, now_ms: u64, vm: &VmId) -> Result<(), ApiError> {
        let rec = self
            .vms
            .get_mut(vm)
            .ok_or_else(|| ApiError::NoSuchVm(vm.clone()))?;
        let VmState::Running { host } = &rec.state else {
            return Err(ApiError::NotRunning {
                vm: vm.clone(),
                state: rec.state.name(),
            });
        };
        let host = host.clone();
        rec.state = VmState::Stopped;
        self.command(Command::StopVm {
            vm: vm.clone(),
            host,
        });
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
        Ok(())
    }
}
