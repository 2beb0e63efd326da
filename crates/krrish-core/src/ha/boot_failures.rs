//! Failed boots: a VM is booted again on the same host (`max_restart`
//! times), then once each on hosts where its boot has not failed
//! (`max_relocate` of them), then put in `error` — where nothing retries it
//! until an operator starts it again. Never retried for ever, never
//! dropped without a report.

use super::{can_take_vms, BootReason, DriverError, HaManager, Notice, VmState};
use crate::ids::{HostId, VmId};
use crate::rules::Fit;

/// How a boot came to count as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BootFailure {
    /// The host answered that the boot failed; `host_unavailable` when it
    /// said it cannot run guests at all (no storage, no hypervisor): it is
    /// not retried there.
    Answered { host_unavailable: bool },
    /// No answer before the boot timeout, and stopped there since: its
    /// agent may never have seen it, so it is neither an attempt nor a
    /// host tried.
    Unanswered,
}

impl HaManager {
    /// Whether `vm`'s boot has not failed on `host` since it last ran.
    pub(super) fn may_boot_on(&self, vm: &VmId, host: &HostId) -> bool {
        !self.vms[vm].boot_failed_on.contains(host)
    }

    /// An agent answered that a boot failed.
    pub(super) fn boot_failed(&mut self, now_ms: u64, id: &VmId, host: &HostId, why: &DriverError) {
        self.notice(
            now_ms,
            Notice::VmBootFailed {
                vm: id.clone(),
                host: host.clone(),
                why: why.to_string(),
            },
        );
        let reason = match &self.vms[id].state {
            VmState::Booting { reason, .. } => *reason,
            _ => BootReason::Failover,
        };
        let failure = BootFailure::Answered {
            host_unavailable: why.is_unavailable(),
        };
        self.boot_failed_as(now_ms, id, host, why.to_string(), reason, failure);
    }

    /// A failed boot (already reported) of a VM booted for `reason`: booted
    /// again on `host` after a back-off, relocated, or in `error`.
    pub(super) fn boot_failed_as(
        &mut self,
        now_ms: u64,
        id: &VmId,
        host: &HostId,
        why: String,
        reason: BootReason,
        failure: BootFailure,
    ) {
        let retry_at_ms = now_ms + self.config.boot_retry_backoff_ms;
        let (max_restart, max_relocate) = (self.config.max_restart, self.config.max_relocate);
        let host_fit = can_take_vms(&self.hosts[host]);
        let vm = self.vms.get_mut(id).expect("caller checked");
        let host_unavailable = match failure {
            BootFailure::Unanswered => {
                self.relocate(id, host, reason, retry_at_ms);
                return;
            }
            BootFailure::Answered { host_unavailable } => host_unavailable,
        };
        if !vm.boot_failed_on.contains(host) {
            vm.boot_failed_on.push(host.clone());
        }
        let tried = vm.boot_failed_on.len() as u32;
        // Restarts happen on the first host only; every boot so far was there.
        let restarts_done = vm.boot_attempts.saturating_sub(1);
        if tried == 1 && restarts_done < max_restart && !host_unavailable && host_fit {
            vm.state = VmState::RetryingBoot {
                host: host.clone(),
                retry_at_ms,
                reason,
            };
        } else if tried - 1 < max_relocate && self.untried_host_exists(id, reason) {
            // A host that cannot run guests at all is left at once.
            let at = if host_unavailable {
                now_ms
            } else {
                retry_at_ms
            };
            self.relocate(id, host, reason, at);
        } else {
            let vm = self.vms.get_mut(id).expect("caller checked");
            let why = if tried - 1 < max_relocate {
                format!("{why}; no host it has not failed on is left to try")
            } else {
                why
            };
            let (attempts, hosts) = (vm.boot_attempts, vm.boot_failed_on.clone());
            vm.state = VmState::Error {
                attempts,
                hosts: hosts.clone(),
                last_error: why.clone(),
            };
            self.notice(
                now_ms,
                Notice::VmInError {
                    vm: id.clone(),
                    attempts,
                    hosts,
                    last_error: why,
                },
            );
        }
    }

    /// Whether a host where `id`'s boot has not failed could ever take it
    /// when booted for `reason` (whatever its state now: it may recover):
    /// a production host for a new VM; a spare or its home (or, with
    /// `failover_to_production`, any production host) for the others —
    /// and where no `must` rule keeps it off: a run-on or not-on rule, or
    /// its affinity group running where its boot failed (it would wait for
    /// ever — found by the HA property test and an adversary).
    fn untried_host_exists(&self, id: &VmId, reason: BootReason) -> bool {
        let home = &self.vms[id].spec.home;
        let to_production = self.may_fail_over_to_production(id);
        self.hosts.values().any(|h| {
            // A host in maintenance takes VMs only once an operator says
            // so, which may never be: not a host left to try (found by the
            // adversary: a VM waited for ever on its home in maintenance).
            if h.spec.maintenance {
                return false;
            }
            let production = h.spare.is_none() && h.spec.zone.runs_vms();
            let eligible = match reason {
                BootReason::Create => production,
                BootReason::Failover | BootReason::Restore => {
                    h.spare.is_some() || &h.spec.id == home || (production && to_production)
                }
            };
            eligible
                && self.may_boot_on(id, &h.spec.id)
                && !self.must_rule_keeps_off(id, &h.spec.id)
        })
    }

    /// `id` is placed again, after `retry_at_ms`, on a host where its boot
    /// has not failed: a new VM among the production hosts, a failed or
    /// restored one among the spares (or its home, when fit).
    fn relocate(&mut self, id: &VmId, host: &HostId, reason: BootReason, retry_at_ms: u64) {
        let vm = self.vms.get_mut(id).expect("caller checked");
        vm.state = match reason {
            BootReason::Create => VmState::Scheduling {
                retry_at_ms,
                reported: false,
            },
            BootReason::Failover | BootReason::Restore => VmState::WaitingForCapacity {
                failed_host: host.clone(),
                reported: false,
                retry_at_ms,
            },
        };
    }

    /// VMs waiting to be placed (failover or relocation, back-off over)
    /// whose must affinity group runs settled on a host where their boot
    /// failed once: that host is the only one their rule lets them ever
    /// run on, so the failure there is forgotten and they are placed with
    /// their group (a restart there; if it fails again, no host is left to
    /// try and they go to `error`). Found by an adversary: a retry's host
    /// crashed, was cut from the VM network or did not answer during the
    /// back-off; the VM was relocated, its group came back to that host,
    /// and it waited for ever.
    pub(super) fn retry_where_only_the_group_runs(&mut self, now_ms: u64) {
        let waiting = self.unsettled_where(|_, v| {
            !v.boot_failed_on.is_empty()
                && matches!(
                    v.state,
                    VmState::WaitingForCapacity { retry_at_ms, .. }
                        | VmState::Scheduling { retry_at_ms, .. } if retry_at_ms <= now_ms
                )
        });
        for id in waiting {
            let Some(host) = self.group_host(&id) else {
                continue;
            };
            let vm = self.vms.get_mut(&id).expect("listed");
            if vm.boot_failed_on.contains(&host) {
                vm.boot_failed_on.retain(|h| h != &host);
            }
        }
    }

    /// VMs whose back-off after a failed boot is over boot again on the
    /// same host — or are relocated, if it cannot take them now (its
    /// restarts left unused: they are not attempts) and another host ever
    /// could. When none could (its must affinity group runs there, where
    /// its boot failed once), it waits for this host to be fit again: a
    /// relocation would wait for ever (found by the HA property test: a
    /// retry due while its host was suspect for a moment).
    pub(super) fn retry_boots_due(&mut self, now_ms: u64) {
        let due = self.unsettled_where(|_, v| {
            matches!(v.state, VmState::RetryingBoot { retry_at_ms, .. } if retry_at_ms <= now_ms)
        });
        for id in due {
            let VmState::RetryingBoot { host, reason, .. } = self.vms[&id].state.clone() else {
                unreachable!("listed as retrying")
            };
            let fit = can_take_vms(&self.hosts[&host])
                && !matches!(self.rule_fit(&id, &host, &[]), Fit::Forbidden { .. });
            if fit {
                self.boot(now_ms, &id, &host, reason);
            } else if self.untried_host_exists(&id, reason) {
                self.relocate(&id, &host, reason, now_ms);
            } else {
                let backoff = self.config.boot_retry_backoff_ms;
                let vm = self.vms.get_mut(&id).expect("listed");
                vm.state = VmState::RetryingBoot {
                    host,
                    retry_at_ms: now_ms + backoff,
                    reason,
                };
            }
        }
    }
}
