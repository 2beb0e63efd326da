//! A live host that cannot serve its VMs: both NICs of its VM network
//! (bond1) are down while management works. Its VMs are unreachable to
//! customers, so at the first report after `vm_network_grace_ms` that still
//! shows bond1 down the controller stops them there through the agent — no power-off needed — and once each stop is
//! confirmed (by the agent's answer or a report that no longer lists the
//! VM), restarts them on a spare like a failover. When bond1 returns, the
//! failback sweep live-migrates them home.
//!
//! Only `restart` VMs move: `restore-on-repair` VMs wait at home for the
//! network to come back, and HA-off VMs are left alone.

use super::boot_failures::BootFailure;
use super::{DriverError, HaManager, Notice, VmState};
use crate::ids::{HostId, VmId};
use crate::model::HaPolicy;

impl HaManager {
    /// A fresh report from `host` (a live host): if it still shows bond1
    /// down once the grace has run out, its `restart` VMs are stopped.
    /// Acting only on a report received after the grace — never on a timer
    /// over the last one — means a VM network that came back while reports
    /// were late (a management blip) moves nothing.
    pub(super) fn evacuate_if_due(&mut self, now_ms: u64, host: &HostId) {
        let grace = self.config.vm_network_grace_ms;
        let Some(since) = self.hosts[host].vm_network_lost_since_ms else {
            return;
        };
        if now_ms < since + grace {
            return;
        }
        let vms = self.vms_on(host, |_, v| {
            self.effective_ha(&v.spec) == HaPolicy::Restart
                && matches!(&v.state, VmState::Running { host: h } if h == host)
        });
        if vms.is_empty() {
            return;
        }
        self.notice(
            now_ms,
            Notice::VmNetworkLost {
                host: host.clone(),
                for_ms: now_ms - since,
            },
        );
        for vm in vms {
            let rec = self.vms.get_mut(&vm).expect("listed");
            rec.state = VmState::Evacuating { host: host.clone() };
            rec.boot_unanswered = None;
            rec.outage_since_ms = Some(now_ms);
            self.notice(
                now_ms,
                Notice::VmEvacuating {
                    vm: vm.clone(),
                    host: host.clone(),
                },
            );
            self.command(super::Command::StopVm {
                vm,
                host: host.clone(),
            });
        }
    }

    /// An agent answered a stop. Only a VM being evacuated waits for it:
    /// once stopped, it may start elsewhere (its old copy is gone).
    pub fn handle_stop_result(
        &mut self,
        now_ms: u64,
        vm: &VmId,
        host: &HostId,
        result: Result<(), DriverError>,
    ) {
        if result.is_ok() && self.terminated.contains_key(vm) {
            self.terminated_off(Some(vm), host);
            self.refresh_spares(now_ms);
            self.place_waiting(now_ms);
        }
        let Some(rec) = self.vms.get_mut(vm) else {
            return;
        };
        if rec.stop_unconfirmed_on.as_ref() == Some(host) && result.is_ok() {
            // An operator's stop, done: it may start again anywhere.
            rec.stop_unconfirmed_on = None;
            return;
        }
        if !matches!(&rec.state, VmState::Evacuating { host: h } if h == host) {
            return;
        }
        match result {
            Ok(()) if rec.boot_unanswered.is_some() => {
                let reason = rec.boot_unanswered.take().expect("checked");
                // Its agent may never have seen the boot (a cut, a stall):
                // not counted as an attempt, as a boot for an agent that is
                // not connected is not.
                rec.boot_attempts = rec.boot_attempts.saturating_sub(1);
                self.boot_failed_as(
                    now_ms,
                    vm,
                    host,
                    "no answer before the boot timeout; stopped there".into(),
                    reason,
                    BootFailure::Unanswered,
                );
                self.refresh_spares(now_ms);
                self.place_waiting(now_ms);
            }
            Ok(()) => {
                rec.state = VmState::WaitingForCapacity {
                    failed_host: host.clone(),
                    reported: false,
                    retry_at_ms: now_ms,
                };
                rec.start_boot_round();
                self.refresh_spares(now_ms);
                self.place_waiting(now_ms);
            }
            Err(why) => self.notice(
                now_ms,
                Notice::VmStopFailed {
                    vm: vm.clone(),
                    host: host.clone(),
                    why: why.to_string(),
                },
            ),
        }
    }
}
