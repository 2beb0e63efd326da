//! What survives a controller restart: the [`CoreSnapshot`] to store, and how
//! a restarted controller resumes from it — deadlines re-based on the new
//! clock, every host just heard from (an isolated one still isolated, with
//! what the DFS said of it), a host caught mid-fence fenced again from the
//! start unless it shows a new boot within a heartbeat interval, the recent fences without evidence still counting against the
//! storm bound.

use super::{
    DownReason, FenceStage, HaConfig, HaManager, HostRecord, Liveness, Notice, VmRecord, VmState,
};
use crate::ids::{HostId, VmId};
use crate::model::{HostSpec, Resources};
use std::collections::BTreeMap;

/// What the controller persists: the records, without timers' meaning
/// (deadlines are re-based on restore).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CoreSnapshot {
    pub hosts: Vec<HostRecord>,
    pub vms: Vec<VmRecord>,
    pub failover_boots: u64,
    /// Restores so far (stores written before it existed read as 0).
    #[serde(default)]
    pub incarnation: u64,
    /// How long ago (as of the last timer) each recent fence without
    /// evidence of death happened: the storm bound outlives a restart.
    #[serde(default)]
    pub evidenceless_fence_ages_ms: Vec<u64>,
    /// Terminated VMs whose guests may still run: where, and what they need.
    #[serde(default)]
    pub terminated: Vec<(VmId, Vec<HostId>, Resources)>,
    /// The old clock's time of the snapshot (its last timer), so a wait
    /// still ahead (a restart delay) keeps what is left of it.
    #[serde(default)]
    pub taken_at_ms: u64,
    /// Rule groups set through the API.
    #[serde(default)]
    pub operator_rules: Vec<crate::rules::RuleGroup>,
    /// The cluster-wide HA switch as last set (absent: the cluster file's).
    #[serde(default)]
    pub ha_enabled: Option<bool>,
}

impl CoreSnapshot {
    /// The hosts this state names (a VM's home, where it runs or moves, a
    /// host it waits on) that `hosts` lacks, with a VM naming each: a
    /// cluster definition edited under a stored state. Restored anyway,
    /// those VMs would be shown on hosts the controller no longer knows,
    /// and never protected (found by the bad-input adversary).
    pub fn hosts_missing_from(&self, hosts: &[HostSpec]) -> Vec<(VmId, HostId)> {
        let known: std::collections::BTreeSet<&HostId> = hosts.iter().map(|h| &h.id).collect();
        let mut missing: BTreeMap<HostId, VmId> = BTreeMap::new();
        for vm in &self.vms {
            for h in super::vm_table::hosts_of(vm) {
                if !known.contains(&h) {
                    missing.entry(h).or_insert_with(|| vm.spec.id.clone());
                }
            }
        }
        missing.into_iter().map(|(h, vm)| (vm, h)).collect()
    }
}

impl HaManager {
    /// The state to persist.
    pub fn snapshot(&self) -> CoreSnapshot {
        CoreSnapshot {
            hosts: self.hosts.values().cloned().collect(),
            vms: self.vms.values().cloned().collect(),
            failover_boots: self.failover_boots,
            incarnation: self.incarnation,
            evidenceless_fence_ages_ms: self
                .evidenceless_fences
                .iter()
                .map(|&t| self.last_timeout_ms.saturating_sub(t))
                .collect(),
            terminated: self
                .terminated
                .iter()
                .map(|(vm, (hosts, demand))| (vm.clone(), hosts.clone(), *demand))
                .collect(),
            taken_at_ms: self.last_timeout_ms,
            operator_rules: self.operator_rules.clone(),
            ha_enabled: Some(self.config.ha_enabled),
        }
    }

    /// A controller restarting from `snap`. Host specs come from the cluster
    /// definition (`hosts`); states from the snapshot. Every deadline is
    /// re-based on `now_ms` (the new process's clock may start anywhere);
    /// every host counts as just heard from; a host that was being fenced is
    /// fenced again from the start — never skipped, unless within one
    /// heartbeat interval it proves a new boot; VMs booting or migrating
    /// keep waiting for their answers or time-outs.
    pub fn restore(
        now_ms: u64,
        config: HaConfig,
        hosts: Vec<HostSpec>,
        snap: CoreSnapshot,
    ) -> Self {
        let mut m = Self::new(now_ms, config, hosts, Vec::new());
        m.restore_operator_settings(snap.operator_rules, snap.ha_enabled);
        let known: BTreeMap<HostId, HostRecord> = snap
            .hosts
            .into_iter()
            .map(|h| (h.spec.id.clone(), h))
            .collect();
        m.terminated = snap
            .terminated
            .into_iter()
            .map(|(vm, hosts, demand)| (vm, (hosts, demand)))
            .collect();
        let mut refence = Vec::new();
        let mut awaiting_proof = 0;
        for (id, rec) in m.hosts.iter_mut() {
            let Some(old) = known.get(id) else { continue };
            rec.boot_id = old.boot_id;
            // The store's word over the cluster file's: the API may have
            // put it in maintenance, or taken it out, since.
            rec.spec.maintenance = old.spec.maintenance;
            rec.bonds = old.bonds;
            rec.spare = old.spare;
            rec.lease_revoked = old.lease_revoked;
            // What its agent last said of its lease: a host that reported
            // holding none is given no VM by the restarted controller
            // either (found by an adversary: restarted during a long lease
            // service outage, the controller booted VMs onto hosts without
            // a lease, and after two refused boots left them in error).
            rec.holds_lease = old.holds_lease;
            rec.lease_held_in_boot = old.lease_held_in_boot;
            rec.standby = match old.standby {
                super::Standby::PoweringOn { .. } => super::Standby::PoweringOn {
                    deadline_ms: now_ms
                        + m.config.dpm.as_ref().map_or(0, |d| d.power_on_timeout_ms),
                },
                other => other,
            };
            rec.liveness = match old.liveness {
                // A powered-off host in maintenance is heard afresh too: still
                // silent, it is taken as off again after a detection window.
                Liveness::Up | Liveness::Suspect { .. } | Liveness::PoweredOff { .. } => {
                    Liveness::Up
                }
                // What was known stays known: an isolated host seen alive on
                // the DFS is not fenced for the new controller's lack of a
                // DFS reading. Like every host it counts as just heard from:
                // its isolation delay starts after a whole detection window.
                Liveness::Isolated { dfs_alive, .. } => Liveness::Isolated {
                    since_ms: now_ms + m.config.heartbeat.detection_ms(),
                    dfs_alive,
                },
                // Heard afresh, as every host: fenced again from the start
                // if silent a whole detection window — unless it shows a
                // new boot (repaired while no controller ran: its guests
                // died with the old boot, and a power-off now would only
                // switch the repaired host off) or reports from the same
                // boot (reachable, never fenced: its VMs run where it says).
                Liveness::Fencing(_) if rec.boot_id.is_some() => {
                    awaiting_proof += 1;
                    let window = m.config.heartbeat.detection_ms();
                    Liveness::Fencing(FenceStage::RebootProof {
                        deadline_ms: now_ms + window,
                        held_until_ms: now_ms + window + m.config.isolation_response_delay_ms,
                    })
                }
                Liveness::Fencing(_) => {
                    refence.push(id.clone());
                    Liveness::Fencing(FenceStage::Ipmi {
                        deadline_ms: now_ms + m.config.fence_timeout_ms,
                    })
                }
                Liveness::Fenced {
                    method, boot_id, ..
                } => Liveness::Fenced {
                    method,
                    at_ms: now_ms,
                    boot_id,
                },
                Liveness::FenceFailed { .. } => Liveness::FenceFailed { at_ms: now_ms },
            };
        }
        for mut vm in snap.vms {
            vm.state = match vm.state {
                VmState::Booting { host, reason, .. } => VmState::Booting {
                    host,
                    reason,
                    deadline_ms: now_ms + m.config.boot_timeout_ms,
                },
                VmState::Migrating { from, to, .. } => VmState::Migrating {
                    from,
                    to,
                    deadline_ms: now_ms + m.config.migration_timeout_ms,
                },
                // What is left of a wait (a restart delay, a back-off) is
                // kept — found by the adversary: a restart forgot a restart
                // delay and failed a VM over needlessly.
                VmState::WaitingForCapacity {
                    failed_host,
                    reported,
                    retry_at_ms,
                } => VmState::WaitingForCapacity {
                    failed_host,
                    reported,
                    retry_at_ms: match snap.taken_at_ms {
                        0 => now_ms, // a store from before the field
                        taken => now_ms + retry_at_ms.saturating_sub(taken),
                    },
                },
                VmState::Scheduling { reported, .. } => VmState::Scheduling {
                    reported,
                    retry_at_ms: now_ms,
                },
                VmState::RetryingBoot { host, reason, .. } => VmState::RetryingBoot {
                    host,
                    reason,
                    retry_at_ms: now_ms,
                },
                VmState::Down {
                    reason:
                        DownReason::BootFailed {
                            attempts,
                            last_error,
                        },
                } => VmState::Error {
                    attempts,
                    hosts: vm.boot_failed_on.clone(),
                    last_error,
                },
                other => other,
            };
            vm.outage_since_ms = vm.outage_since_ms.map(|_| now_ms);
            // A doubt waits for news newer than when it began: on this
            // clock, the restore (the old process's clock may be far ahead
            // — a daemon's starts at 0 — and no report or power-on list
            // would ever be new enough; found by the adversary).
            vm.settled_by = vm.settled_by.map(|(host, _)| (host, now_ms));
            vm.failback_not_before_ms = 0;
            vm.missed_reports = 0;
            m.vms.insert(vm);
        }
        m.failover_boots = snap.failover_boots;
        m.incarnation = snap.incarnation + 1;
        // Oldest first, as recorded; ages re-based on the new clock (a
        // controller's downtime is not counted: conservative).
        let mut fences: Vec<u64> = snap
            .evidenceless_fence_ages_ms
            .iter()
            .map(|&age| now_ms.saturating_sub(age))
            .collect();
        fences.sort_unstable();
        m.evidenceless_fences = fences.into_iter().collect();
        m.notice(
            now_ms,
            Notice::Restored {
                hosts: m.hosts.len(),
                vms: m.vms.len(),
                refencing: refence.len() + awaiting_proof,
                reboot_proof_ms: (awaiting_proof > 0).then(|| m.config.heartbeat.detection_ms()),
            },
        );
        for id in refence {
            m.start_ipmi_fence(now_ms, &id);
        }
        m
    }
}
