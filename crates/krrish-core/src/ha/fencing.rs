//! Making sure an offline host can no longer run anything before its VMs
//! start elsewhere: IPMI power-off first, else a revoked DFS lease that has
//! provably expired, else giving up (its VMs stay down). Once a host is
//! fenced its VMs are released by their HA policy; a returned host's lease
//! is reinstated here too.

use super::{
    Command, DownReason, FenceError, FenceMethod, FenceStage, HaManager, Liveness, Notice, VmState,
};
use crate::ids::{HostId, VmId};
use crate::model::HaPolicy;

impl HaManager {
    /// Fencing starts (or starts over) with an IPMI power-off.
    pub(super) fn start_ipmi_fence(&mut self, now_ms: u64, host: &HostId) {
        self.hosts.get_mut(host).expect("caller checked").liveness =
            Liveness::Fencing(FenceStage::Ipmi {
                deadline_ms: now_ms + self.config.fence_timeout_ms,
            });
        self.notice(
            now_ms,
            Notice::FenceStarted {
                host: host.clone(),
                method: FenceMethod::Ipmi,
            },
        );
        self.command(Command::FenceIpmi {
            host: host.clone(),
            action: self.config.fence_action,
        });
    }

    /// A host restored mid-fence stayed silent a whole detection window:
    /// fenced — unless the cluster is silent at large (the controller
    /// suspects itself) or the DFS shows the host renewing, which holds the
    /// fence a heartbeat interval at a time, up to its limit.
    pub(super) fn no_reboot_proof(&mut self, now_ms: u64, host: &HostId) {
        let Liveness::Fencing(FenceStage::RebootProof { held_until_ms, .. }) =
            self.hosts[host].liveness
        else {
            return;
        };
        let renewing = matches!(
            self.dfs_evidence(now_ms, host),
            super::DfsEvidence::Renewing { .. }
        );
        if (self.mass_silence() || renewing) && now_ms < held_until_ms {
            self.hosts.get_mut(host).expect("checked").liveness =
                Liveness::Fencing(FenceStage::RebootProof {
                    deadline_ms: now_ms + self.config.heartbeat.interval_ms,
                    held_until_ms,
                });
            return;
        }
        self.start_ipmi_fence(now_ms, host);
    }

    /// The BMC answered (or the IPMI call failed).
    pub fn handle_fence_result(
        &mut self,
        now_ms: u64,
        host: &HostId,
        result: Result<(), FenceError>,
    ) {
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        if !matches!(h.liveness, Liveness::Fencing(FenceStage::Ipmi { .. })) {
            return; // late answer after the timeout already moved on
        }
        match result {
            Ok(()) => self.fenced(now_ms, host, FenceMethod::Ipmi),
            Err(why) => self.ipmi_failed(now_ms, host, why.to_string()),
        }
        self.refresh_spares(now_ms);
    }

    pub(super) fn ipmi_failed(&mut self, now_ms: u64, host: &HostId, why: String) {
        self.notice(
            now_ms,
            Notice::FenceAttemptFailed {
                host: host.clone(),
                method: FenceMethod::Ipmi,
                why,
            },
        );
        self.notice(
            now_ms,
            Notice::FenceStarted {
                host: host.clone(),
                method: FenceMethod::DfsLease,
            },
        );
        self.hosts.get_mut(host).expect("caller checked").liveness =
            Liveness::Fencing(FenceStage::LeaseRevoking {
                attempt: 1,
                deadline_ms: now_ms + self.config.lease_revoke_retry_ms,
            });
        self.command(Command::RevokeLease { host: host.clone() });
    }

    /// The DFS answered a revocation: the lease ends at `expires_at_ms`.
    pub fn handle_lease_revoked(
        &mut self,
        now_ms: u64,
        host: &HostId,
        result: Result<u64, FenceError>,
    ) {
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        if !matches!(
            h.liveness,
            Liveness::Fencing(FenceStage::LeaseRevoking { .. })
        ) {
            return;
        }
        match result {
            Ok(expires_at_ms) => {
                let safe_at_ms = expires_at_ms.max(now_ms) + self.config.lease_margin_ms;
                let h = self.hosts.get_mut(host).expect("checked");
                h.liveness = Liveness::Fencing(FenceStage::LeaseExpiring { safe_at_ms });
                h.lease_revoked = true;
                self.notice(
                    now_ms,
                    Notice::LeaseRevoked {
                        host: host.clone(),
                        expires_at_ms,
                        safe_at_ms,
                    },
                );
            }
            Err(why) => self.notice(
                now_ms,
                Notice::FenceAttemptFailed {
                    host: host.clone(),
                    method: FenceMethod::DfsLease,
                    why: why.to_string(),
                },
            ),
        }
    }

    /// A host that could not be fenced is tried again from the start; its
    /// VMs are again waiting for the fence rather than given up.
    pub(super) fn retry_fence(&mut self, now_ms: u64, host: &HostId) {
        let held = self.vms_on(host, |_, v| {
            matches!(&v.state, VmState::Down { reason: DownReason::FenceFailed { host: h } } if h == host)
        });
        for id in held {
            self.vms.get_mut(&id).expect("listed").state = VmState::HostDown { host: host.clone() };
        }
        self.start_ipmi_fence(now_ms, host);
    }

    pub(super) fn fence_gave_up(&mut self, now_ms: u64, host: &HostId) {
        self.hosts.get_mut(host).expect("caller checked").liveness =
            Liveness::FenceFailed { at_ms: now_ms };
        self.notice(now_ms, Notice::FenceGaveUp { host: host.clone() });
        let ids = self.vms_on(
            host,
            |_, v| matches!(&v.state, VmState::HostDown { host: h } if h == host),
        );
        for id in ids {
            let reason = DownReason::FenceFailed { host: host.clone() };
            self.vms.get_mut(&id).expect("listed").state = VmState::Down {
                reason: reason.clone(),
            };
            self.notice(now_ms, Notice::VmDown { vm: id, reason });
        }
    }

    pub(super) fn fenced(&mut self, now_ms: u64, host: &HostId, method: FenceMethod) {
        let h = self.hosts.get_mut(host).expect("caller checked");
        h.liveness = Liveness::Fenced {
            method,
            at_ms: now_ms,
            boot_id: h.boot_id,
        };
        self.notice(
            now_ms,
            Notice::HostFenced {
                host: host.clone(),
                method,
            },
        );
        self.guests_gone(now_ms, host);
        self.refresh_spares(now_ms);
        self.place_waiting(now_ms);
    }

    /// The host's guests are provably off (fenced, or it booted again): what
    /// ran there is released by policy, migrations to or from it settled.
    pub(super) fn guests_gone(&mut self, now_ms: u64, host: &HostId) {
        // Operators' stops and terminations there are done.
        self.terminated_off(None, host);
        let stopped = self.vms_on(host, |_, v| v.stop_unconfirmed_on.as_ref() == Some(host));
        for id in stopped {
            self.vms.get_mut(&id).expect("listed").stop_unconfirmed_on = None;
        }
        // Only now may its VMs start anywhere else.
        let ids = self.vms_on(
            host,
            |_, v| matches!(&v.state, VmState::HostDown { host: h } if h == host),
        );
        for id in ids {
            self.release_by_policy(now_ms, &id, host);
        }
        self.wait_for_other_failures(now_ms, host);
        self.migration_side_fenced(now_ms, host);
    }

    /// A VM whose host is fenced (it runs nowhere) goes where its HA
    /// policy says: waiting for a spare, for its home's repair, or down.
    pub(super) fn release_by_policy(&mut self, now_ms: u64, id: &VmId, host: &HostId) {
        let id = id.clone();
        let mut ha = self.effective_ha(&self.vms[&id].spec);
        // A home in maintenance takes no restore: the drain its death cut
        // short meant to move the VM, so it is restarted elsewhere (found
        // by the adversary: it waited for ever on a repaired home still in
        // maintenance).
        let home_in_maintenance = self
            .hosts
            .get(&self.vms[&id].spec.home)
            .is_some_and(|h| h.spec.maintenance);
        if ha == HaPolicy::RestoreOnRepair && home_in_maintenance {
            ha = HaPolicy::Restart;
        }
        let vm = self.vms.get_mut(&id).expect("caller checked");
        vm.outage_since_ms.get_or_insert(now_ms);
        vm.settled_by = None;
        vm.migration_aborting = false;
        // A new outage: its boots are counted afresh.
        vm.start_boot_round();
        {
            match ha {
                HaPolicy::Restart => {
                    // A restart delay counts from the host's verdict: back
                    // by then, the VM boots at home and nothing fails over.
                    let delay = vm.spec.restart_delay_ms;
                    let since = vm.outage_since_ms.unwrap_or(now_ms);
                    let retry_at_ms = (since + delay).max(now_ms);
                    vm.state = VmState::WaitingForCapacity {
                        failed_host: host.clone(),
                        reported: false,
                        retry_at_ms,
                    };
                    if retry_at_ms > now_ms {
                        self.notice(
                            now_ms,
                            Notice::VmRestartDelayed {
                                vm: id,
                                host: host.clone(),
                                until_ms: retry_at_ms,
                            },
                        );
                    }
                }
                HaPolicy::RestoreOnRepair => {
                    vm.state = VmState::WaitingForRepair {
                        host: vm.spec.home.clone(),
                    };
                    let home = vm.spec.home.clone();
                    self.notice(now_ms, Notice::VmWaitingForRepair { vm: id, host: home });
                }
                HaPolicy::Off => {
                    let reason = DownReason::HaOff { host: host.clone() };
                    vm.state = VmState::Down {
                        reason: reason.clone(),
                    };
                    self.notice(now_ms, Notice::VmDown { vm: id, reason });
                }
            }
        }
    }

    /// The DFS answered a reinstatement.
    pub fn handle_lease_reinstated(
        &mut self,
        now_ms: u64,
        host: &HostId,
        result: Result<(), FenceError>,
    ) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        if !h.lease_revoked {
            return;
        }
        match result {
            Ok(()) => {
                h.lease_revoked = false;
                self.notice(now_ms, Notice::LeaseReinstated { host: host.clone() });
                if self.hosts[host].liveness.is_up() {
                    self.on_host_back(now_ms, host);
                }
            }
            Err(why) => {
                // Asked again at the host's next heartbeat.
                self.notice(
                    now_ms,
                    Notice::FenceAttemptFailed {
                        host: host.clone(),
                        method: FenceMethod::DfsLease,
                        why: format!("reinstating the lease failed: {why}"),
                    },
                );
            }
        }
        self.refresh_spares(now_ms);
    }
}
