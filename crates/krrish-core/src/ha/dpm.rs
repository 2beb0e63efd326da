//! DPM (vSphere's distributed power management, the notes' 电源管理):
//! production hosts the load does not need are drained and powered off by
//! IPMI, and powered on again when it does — when the load rises past
//! `high_percent`, or when a failed host's VMs wait for room (failover
//! beyond the spare pool on: a powered-on host is where they go).
//!
//! A host goes to standby as maintenance does (the same drain, the same
//! "silent once drained = powered off, no fence"), one host a round, every
//! `interval`, only while the cluster is calm and the powered-on production
//! hosts' load is under `low_percent` and stays under `high_percent` on the
//! hosts left. Spares are never powered off: they are the failover
//! capacity. A host powered on comes back with a new boot and leaves
//! maintenance by itself; for two rounds after, nothing is powered off.

use super::drs::load_permille;
use super::{Command, HaManager, Liveness, Notice, VmState};
use crate::ids::HostId;
use crate::model::Resources;

/// DPM settings (the cluster file's `dpm:`; absent, DPM is off). The
/// defaults are vSphere DPM's target utilisation band, 63 % ± 18.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpmConfig {
    /// Power a host off while the powered-on production hosts' load is
    /// under this (per cent)…
    pub low_percent: u32,
    /// …and only if the hosts left stay under this; above it, power one on.
    pub high_percent: u32,
    /// How often DPM considers powering a host off.
    pub interval_ms: u64,
    /// How long a powered-on host has to heartbeat before DPM gives it up
    /// (and tries another).
    pub power_on_timeout_ms: u64,
}

impl Default for DpmConfig {
    fn default() -> Self {
        Self {
            low_percent: 45,
            high_percent: 81,
            interval_ms: 600_000,
            power_on_timeout_ms: 600_000,
        }
    }
}

/// Where a host stands with DPM (persisted with the host).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Standby {
    /// Not DPM's: powered on, or in an operator's maintenance.
    #[default]
    No,
    /// In maintenance for DPM, its VMs leaving.
    Draining,
    /// Drained; the power-off was asked of its BMC.
    PoweringOff,
    /// Powered off by DPM; not asked to power on before `not_before_ms`
    /// (a power-on that failed is not retried at once).
    Off { not_before_ms: u64 },
    /// Asked to power on; given up if silent at `deadline_ms`.
    PoweringOn { deadline_ms: u64 },
}

impl Standby {
    pub fn name(self) -> &'static str {
        match self {
            Standby::No => "no",
            Standby::Draining => "draining",
            Standby::PoweringOff => "powering-off",
            Standby::Off { .. } => "off",
            Standby::PoweringOn { .. } => "powering-on",
        }
    }
}

impl HaManager {
    /// The powered-on production hosts that take VMs, with each one's
    /// placed demand and placeable capacity.
    fn dpm_hosts(&self) -> Vec<(HostId, Resources, Resources)> {
        let (hosts, _) = self.production_candidates();
        hosts
            .into_iter()
            .map(|h| {
                let used = self
                    .vms
                    .on_host(&h)
                    .iter()
                    .filter(|(_, v)| v.holds(&h))
                    .fold(Resources::ZERO, |a, (_, v)| a.add(&v.spec.demand));
                let cap = self.hosts[&h].spec.placeable();
                (h, used, cap)
            })
            .collect()
    }

    /// The load (per mille) of the powered-on production hosts together.
    fn dpm_load(hosts: &[(HostId, Resources, Resources)]) -> u64 {
        let (used, cap) = hosts.iter().fold(
            (Resources::ZERO, Resources::ZERO),
            |(u, c), (_, used, cap)| (u.add(used), c.add(cap)),
        );
        load_permille(used, cap)
    }

    /// A DPM round: standby hosts move on (drained → powered off; a
    /// power-on unanswered → given up), a host is powered on when capacity
    /// is short, and — when due and calm — one is put in standby.
    pub(super) fn dpm_sweep(&mut self, now_ms: u64) {
        let Some(dpm) = self.config.dpm.clone() else {
            return;
        };
        self.dpm_advance(now_ms);
        self.dpm_power_on_if_short(now_ms);
        if now_ms < self.dpm_next_at_ms {
            return;
        }
        self.dpm_next_at_ms = now_ms + dpm.interval_ms.max(1);
        // HA first: no standby while any host is not up (failed, fenced,
        // in an operator's maintenance and off) save DPM's own standby
        // hosts, or a spare runs failed-over VMs, or a VM waits or is down.
        let in_motion = self
            .hosts
            .values()
            .any(|h| h.standby != Standby::No && !matches!(h.standby, Standby::Off { .. }));
        let unhealthy = self.hosts.values().any(|h| {
            let standby_off = matches!(h.standby, Standby::Off { .. })
                && matches!(h.liveness, Liveness::PoweredOff { .. });
            !(h.liveness == Liveness::Up || standby_off)
                || h.spare.is_some_and(|s| s != super::SpareState::Free)
        });
        let vms_out = self
            .vms
            .iter()
            .any(|(_, v)| !matches!(v.state, VmState::Running { .. } | VmState::Stopped));
        if in_motion
            || unhealthy
            || vms_out
            || !self.calm_for_moves(now_ms)
            || self.dpm_capacity_short(now_ms).is_some()
        {
            return;
        }
        let hosts = self.dpm_hosts();
        if hosts.len() < 2 {
            return;
        }
        let load = Self::dpm_load(&hosts);
        if load >= u64::from(dpm.low_percent) * 10 {
            return;
        }
        // The least loaded first (then by name): fewest VMs to move.
        let mut order: Vec<(u64, HostId)> = hosts
            .iter()
            .map(|(h, used, cap)| (load_permille(*used, *cap), h.clone()))
            .collect();
        order.sort();
        for (_, candidate) in order {
            let rest: Vec<(HostId, Resources, Resources)> = hosts
                .iter()
                .filter(|(h, _, _)| h != &candidate)
                .cloned()
                .collect();
            let moved = hosts
                .iter()
                .find(|(h, _, _)| h == &candidate)
                .map_or(Resources::ZERO, |(_, used, _)| *used);
            let (used, cap) = rest
                .iter()
                .fold((moved, Resources::ZERO), |(u, c), (_, used, cap)| {
                    (u.add(used), c.add(cap))
                });
            let after = load_permille(used, cap);
            if after >= u64::from(dpm.high_percent) * 10 {
                continue;
            }
            // The drain is maintenance's, all or nothing.
            if self.enter_maintenance(now_ms, &candidate).is_err() {
                continue;
            }
            self.hosts.get_mut(&candidate).expect("listed").standby = Standby::Draining;
            self.notice(
                now_ms,
                Notice::DpmStandby {
                    host: candidate.clone(),
                    load: (load / 10) as u32,
                    after: (after / 10) as u32,
                },
            );
            self.dpm_advance(now_ms);
            return;
        }
    }

    /// Hosts in standby move on: a drained one is powered off; one whose
    /// drain was cut short (it failed, or an operator took it out of
    /// maintenance) is DPM's no more; a power-on unanswered is given up.
    pub(super) fn dpm_advance(&mut self, now_ms: u64) {
        let standby: Vec<(HostId, Standby)> = self
            .hosts
            .values()
            .filter(|h| h.standby != Standby::No)
            .map(|h| (h.spec.id.clone(), h.standby))
            .collect();
        for (host, state) in standby {
            let h = &self.hosts[&host];
            // A VM still running there, not leaving (its migration failed
            // or was refused), or one of its VMs caught in a failure (the
            // host rebooted mid-drain: restarting, waiting for its repair)
            // — DPM gives the host back rather than retry a drain or hold
            // a VM off its home for power's sake.
            let stuck = self.vms.on_host(&host).iter().find_map(|(id, v)| {
                let trouble = match &v.state {
                    VmState::Running { host: on } => on == &host,
                    VmState::Migrating { .. } | VmState::Stopped => false,
                    _ => true,
                };
                trouble.then(|| (*id).clone())
            });
            let give_up = if !h.spec.maintenance {
                Some("taken out of maintenance".to_string())
            } else if h.liveness != Liveness::Up {
                Some(format!("it is {} mid-drain", h.verdict()))
            } else {
                stuck.map(|vm| format!("vm {vm} did not leave it ({})", self.vms[&vm].state.name()))
            };
            match state {
                Standby::Draining if give_up.is_some() => {
                    self.dpm_give_back(now_ms, &host, give_up.expect("matched"));
                }
                Standby::Draining if self.drained(&host) => {
                    self.hosts.get_mut(&host).expect("listed").standby = Standby::PoweringOff;
                    self.command(Command::PowerHost {
                        host: host.clone(),
                        on: false,
                    });
                }
                Standby::PoweringOn { deadline_ms } if now_ms >= deadline_ms => {
                    self.hosts.get_mut(&host).expect("listed").standby = Standby::Off {
                        not_before_ms: now_ms + self.dpm_interval_ms(),
                    };
                    self.notice(
                        now_ms,
                        Notice::DpmFailed {
                            host: host.clone(),
                            why: format!(
                                "powered on but not heard from within {}",
                                super::secs(self.dpm_power_on_timeout_ms())
                            ),
                        },
                    );
                }
                _ => {}
            }
        }
    }

    /// DPM gives a host it was draining back to the cluster: out of
    /// maintenance (its own), HA's again like any host; reported.
    fn dpm_give_back(&mut self, now_ms: u64, host: &HostId, why: String) {
        let h = self.hosts.get_mut(host).expect("caller checked");
        h.standby = Standby::No;
        let was_in_maintenance = std::mem::replace(&mut h.spec.maintenance, false);
        self.notice(
            now_ms,
            Notice::DpmFailed {
                host: host.clone(),
                why: format!("{why}: standby given up"),
            },
        );
        if was_in_maintenance {
            self.notice(now_ms, Notice::HostLeftMaintenance { host: host.clone() });
            self.refresh_spares(now_ms);
            self.fail_back_sweep_for(now_ms, Some(host));
        }
    }

    fn dpm_interval_ms(&self) -> u64 {
        self.config.dpm.as_ref().map_or(0, |d| d.interval_ms)
    }

    fn dpm_power_on_timeout_ms(&self) -> u64 {
        self.config
            .dpm
            .as_ref()
            .map_or(0, |d| d.power_on_timeout_ms)
    }

    /// Why more capacity is needed now, if it is: VMs of failed hosts wait
    /// for room that a production host could give, or the powered-on hosts
    /// are loaded above `high_percent`.
    fn dpm_capacity_short(&self, now_ms: u64) -> Option<String> {
        let dpm = self.config.dpm.as_ref()?;
        let waiting = self.dpm_waiting(now_ms).len();
        if waiting > 0 {
            return Some(format!("{waiting} VM(s) of failed hosts wait for room"));
        }
        let load = Self::dpm_load(&self.dpm_hosts());
        (load > u64::from(dpm.high_percent) * 10).then(|| {
            format!(
                "the powered-on hosts are {} % loaded (above {} %)",
                load / 10,
                dpm.high_percent
            )
        })
    }

    /// The failed hosts' VMs waiting for room (reported, past any restart
    /// delay) that a production host could take: failover beyond the spare
    /// pool on.
    fn dpm_waiting(&self, now_ms: u64) -> Vec<crate::ids::VmId> {
        if !self.config.failover_to_production {
            return Vec::new();
        }
        self.vms
            .unsettled()
            .iter()
            .filter(|(_, v)| {
                matches!(v.state, VmState::WaitingForCapacity { reported: true, retry_at_ms, .. }
                    if retry_at_ms <= now_ms)
            })
            .map(|(id, _)| (*id).clone())
            .collect()
    }

    /// Whether powering `host` on gives room to some waiting VM: its rules
    /// allow it there and its boot never failed there (found by the
    /// adversary: DPM powered on two hosts a must run-on VM could not use
    /// before the one it could). With nothing waiting (load), any host.
    fn dpm_host_helps(&self, host: &HostId, waiting: &[crate::ids::VmId]) -> bool {
        waiting.is_empty()
            || waiting.iter().any(|vm| {
                self.may_boot_on(vm, host)
                    && !matches!(
                        self.rule_fit(vm, host, &[]),
                        crate::rules::Fit::Forbidden { .. }
                    )
            })
    }

    /// Powers a standby host on when capacity is short and none is on its
    /// way already: the one with the most placeable room (then by name).
    pub(super) fn dpm_power_on_if_short(&mut self, now_ms: u64) {
        if self.config.dpm.is_none()
            || self
                .hosts
                .values()
                .any(|h| matches!(h.standby, Standby::PoweringOn { .. }))
        {
            return;
        }
        let Some(why) = self.dpm_capacity_short(now_ms) else {
            return;
        };
        let waiting = self.dpm_waiting(now_ms);
        let best = self
            .hosts
            .values()
            .filter(|h| {
                matches!(h.standby, Standby::Off { not_before_ms } if not_before_ms <= now_ms)
                    && matches!(h.liveness, Liveness::PoweredOff { .. })
                    && self.dpm_host_helps(&h.spec.id, &waiting)
            })
            .max_by(|a, b| {
                let (ra, rb) = (a.spec.placeable(), b.spec.placeable());
                (ra.memory_mib, ra.vcpus)
                    .cmp(&(rb.memory_mib, rb.vcpus))
                    .then_with(|| b.spec.id.cmp(&a.spec.id))
            })
            .map(|h| h.spec.id.clone());
        let Some(host) = best else {
            return;
        };
        self.power_on_standby(now_ms, &host, why);
    }

    /// Asks `host`'s BMC to power it on; it leaves maintenance when it
    /// heartbeats from its new boot.
    pub(super) fn power_on_standby(&mut self, now_ms: u64, host: &HostId, why: String) {
        self.hosts.get_mut(host).expect("caller checked").standby = Standby::PoweringOn {
            deadline_ms: now_ms + self.dpm_power_on_timeout_ms().max(1),
        };
        self.notice(
            now_ms,
            Notice::DpmPowerOn {
                host: host.clone(),
                why,
            },
        );
        self.command(Command::PowerHost {
            host: host.clone(),
            on: true,
        });
    }

    /// The BMC answered a power-on or power-off.
    pub fn handle_power_result(
        &mut self,
        now_ms: u64,
        host: &HostId,
        on: bool,
        result: Result<(), super::FenceError>,
    ) {
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        let Err(why) = result else {
            // Confirmed off by its BMC: off now, as a fence's answer is
            // (waiting for its silence, it showed as suspect for a
            // detection window — found by the adversary). A power-on says
            // the rest by the host's heartbeat from its new boot.
            if !on && h.standby == Standby::PoweringOff && self.drained(host) {
                let h = self.hosts.get_mut(host).expect("checked");
                h.liveness = Liveness::PoweredOff { since_ms: now_ms };
                h.standby = Standby::Off { not_before_ms: 0 };
                self.notice(now_ms, Notice::DpmPoweredOff { host: host.clone() });
                self.refresh_spares(now_ms);
            }
            return;
        };
        match (on, h.standby) {
            (false, Standby::PoweringOff) => {
                // Still on: it is the cluster's again.
                self.dpm_give_back(now_ms, host, format!("power-off failed: {why}"));
                self.place_waiting(now_ms);
            }
            (true, Standby::PoweringOn { .. }) => {
                self.hosts.get_mut(host).expect("checked").standby = Standby::Off {
                    not_before_ms: now_ms + self.dpm_interval_ms(),
                };
                self.notice(
                    now_ms,
                    Notice::DpmFailed {
                        host: host.clone(),
                        why: format!("power-on failed: {why}"),
                    },
                );
                self.dpm_power_on_if_short(now_ms);
            }
            _ => {}
        }
    }

    /// A host DPM powered off went silent: it is off.
    pub(super) fn dpm_silent(&mut self, host: &HostId) {
        let h = self.hosts.get_mut(host).expect("caller checked");
        if matches!(h.standby, Standby::PoweringOff | Standby::Draining) {
            h.standby = Standby::Off { not_before_ms: 0 };
        }
    }

    /// A powered-off host heartbeats from a new boot: powered on by DPM
    /// (or by hand), it leaves DPM's maintenance and takes VMs again.
    pub(super) fn dpm_host_on(&mut self, now_ms: u64, host: &HostId) -> bool {
        let h = self.hosts.get_mut(host).expect("caller checked");
        if !matches!(h.standby, Standby::Off { .. } | Standby::PoweringOn { .. }) {
            return false;
        }
        h.standby = Standby::No;
        h.spec.maintenance = false;
        self.notice(now_ms, Notice::HostLeftMaintenance { host: host.clone() });
        // Hysteresis: nothing is powered off for two rounds after a
        // power-on (vSphere judges power-offs over a longer history than
        // power-ons), so a host just powered on is not switched off again
        // at once.
        let interval = self.dpm_interval_ms();
        self.dpm_next_at_ms = self.dpm_next_at_ms.max(now_ms + 2 * interval);
        true
    }

    /// When DPM looks next, if it is on: its round, or a power-on's
    /// deadline.
    pub(super) fn dpm_wake(&self) -> Option<u64> {
        self.config.dpm.as_ref()?;
        let deadlines = self.hosts.values().filter_map(|h| match h.standby {
            Standby::PoweringOn { deadline_ms } => Some(deadline_ms),
            _ => None,
        });
        deadlines.chain([self.dpm_next_at_ms]).min()
    }
}
