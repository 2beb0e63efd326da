//! Faults injected into the simulated world.

use crate::world::PathState;
use krrish_core::{BondName, HostId, VmId};
use std::fmt;

/// What happens to the DFS's lease service process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DfsServiceChange {
    Down,
    Up,
    Restart,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The host dies (power, kernel panic); its BMC still answers.
    Crash(HostId),
    /// The host loses power together with its BMC: IPMI cannot confirm.
    PowerLoss(HostId),
    /// The BMC alone loses power or its OGW link: IPMI cannot answer, the
    /// host itself keeps running.
    BmcDown(HostId),
    BmcUp(HostId),
    /// One member NIC of a bond fails (`nic` 0 or 1).
    NicDown {
        host: HostId,
        bond: BondName,
        nic: usize,
    },
    NicUp {
        host: HostId,
        bond: BondName,
        nic: usize,
    },
    /// Both members of a bond fail.
    BondDown {
        host: HostId,
        bond: BondName,
    },
    BondUp {
        host: HostId,
        bond: BondName,
    },
    /// The management path between controller and host is cut outside the
    /// host (switch, cable): packets dropped, connections broken. The host
    /// and its other networks keep working.
    Partition(HostId),
    /// The same path stalls: packets are held and delivered when it heals
    /// (TCP retransmitting across a short outage).
    Stall(HostId),
    /// The same path loses `percent` of its packets (1–99): TCP resends
    /// each lost one after its retransmission timeout (200 ms, doubling), so
    /// messages arrive late and in order; fifteen losses in a row break the
    /// connection.
    Lossy {
        host: HostId,
        percent: u8,
    },
    /// The path works again (after a cut, a stall or loss).
    Heal(HostId),
    /// The controller's own management link (its switch) cuts, stalls or
    /// heals: every host at once.
    ControllerPath(PathState),
    /// The host is repaired and powered on: new boot, all links up.
    Repair(HostId),
    /// The DFS's metadata service becomes unreachable from the controller
    /// (`true`) or reachable again: revocations and renewal reads fail.
    DfsUnreachable(bool),
    /// The DFS's lease service itself goes down, comes back up (a new
    /// process: it remembers its revocations, not the renewals) or
    /// restarts at once.
    DfsService(DfsServiceChange),
    /// Every fault ends: hosts that are off are repaired, NICs, bonds, BMCs
    /// and paths are back, the DFS is reachable, the controller runs.
    HealAll,
    /// The controller process dies (its store survives).
    ControllerCrash,
    /// The controller starts again and restores from its store.
    ControllerRestart,
    /// The hypervisor fails `vm`'s next `count` boots, wherever they are
    /// tried (a corrupt image, a bad device, a guest that panics at start).
    FailBoots {
        vm: VmId,
        count: u32,
    },
}

impl Fault {
    /// The hypervisor host the fault is about (none for controller faults).
    pub fn host(&self) -> Option<&HostId> {
        Some(match self {
            Fault::ControllerCrash
            | Fault::ControllerRestart
            | Fault::FailBoots { .. }
            | Fault::HealAll
            | Fault::ControllerPath(_)
            | Fault::DfsUnreachable(_)
            | Fault::DfsService(_) => return None,
            Fault::Crash(h)
            | Fault::PowerLoss(h)
            | Fault::Partition(h)
            | Fault::Stall(h)
            | Fault::Heal(h)
            | Fault::Lossy { host: h, .. }
            | Fault::Repair(h)
            | Fault::BmcDown(h)
            | Fault::BmcUp(h)
            | Fault::NicDown { host: h, .. }
            | Fault::NicUp { host: h, .. }
            | Fault::BondDown { host: h, .. }
            | Fault::BondUp { host: h, .. } => h,
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::DfsService(DfsServiceChange::Down) => {
                write!(f, "the DFS lease service goes down (renewals and revocations fail)")
            }
            Fault::DfsService(DfsServiceChange::Up) => write!(
                f,
                "the DFS lease service is back (a new process: revocations kept, renewals forgotten)"
            ),
            Fault::DfsService(DfsServiceChange::Restart) => write!(
                f,
                "the DFS lease service restarts (revocations kept, renewals forgotten)"
            ),
            Fault::Crash(h) => write!(f, "crash {h} (BMC still up)"),
            Fault::PowerLoss(h) => write!(f, "power loss on {h} and its BMC"),
            Fault::BmcDown(h) => write!(f, "BMC of {h} unreachable (host keeps running)"),
            Fault::BmcUp(h) => write!(f, "BMC of {h} reachable again"),
            Fault::NicDown { host, bond, nic } => {
                write!(f, "{host} {bond} member {} down", bond.members()[*nic])
            }
            Fault::NicUp { host, bond, nic } => {
                write!(f, "{host} {bond} member {} up", bond.members()[*nic])
            }
            Fault::BondDown { host, bond } => write!(f, "{host} {bond} ({}) down", bond.role()),
            Fault::BondUp { host, bond } => write!(f, "{host} {bond} ({}) up", bond.role()),
            Fault::Partition(h) => write!(f, "management network between controller and {h} cut"),
            Fault::Stall(h) => write!(
                f,
                "management network between controller and {h} stalled (packets held)"
            ),
            Fault::Lossy { host, percent } => write!(
                f,
                "management network between controller and {host} loses {percent}% of packets (TCP retransmits)"
            ),
            Fault::Heal(h) => write!(f, "management network between controller and {h} healed"),
            Fault::ControllerPath(PathState::Cut) => {
                write!(
                    f,
                    "the controller's management switch fails: every host cut off"
                )
            }
            Fault::ControllerPath(PathState::Stalled) => write!(
                f,
                "the controller's management switch stalls: every host's packets held"
            ),
            Fault::ControllerPath(PathState::Ok) => {
                write!(f, "the controller's management switch works again")
            }
            Fault::Repair(h) => write!(f, "repair {h}"),
            Fault::DfsUnreachable(true) => {
                write!(
                    f,
                    "the DFS metadata service is unreachable from the controller"
                )
            }
            Fault::DfsUnreachable(false) => {
                write!(
                    f,
                    "the DFS metadata service is reachable from the controller again"
                )
            }
            Fault::HealAll => write!(
                f,
                "every fault heals: hosts repaired, links, BMCs, paths and the DFS back"
            ),
            Fault::ControllerCrash => write!(f, "controller crashes"),
            Fault::ControllerRestart => write!(f, "controller restarts"),
            Fault::FailBoots { vm, count: 0 } => {
                write!(f, "{vm}'s image mended: its boots work again")
            }
            Fault::FailBoots { vm, count } => {
                write!(f, "the hypervisor fails the next {count} boots of {vm}")
            }
        }
    }
}

impl crate::world::World {
    /// What `fault` does to ground truth (controller crashes and restarts
    /// are the world's runner's business: they change no hardware). Errs on
    /// an unknown host or NIC, changing nothing.
    pub fn apply_fault(&mut self, now_ms: u64, fault: &Fault) -> Result<(), String> {
        if let Some(host) = fault.host() {
            if !self.hosts.contains_key(host) {
                return Err(format!("no host named {host}"));
            }
        }
        match fault {
            Fault::Crash(h) => self.power_off(now_ms, h, false, "crash"),
            Fault::PowerLoss(h) => self.power_off(now_ms, h, true, "power loss with its BMC"),
            Fault::NicDown { host, bond, nic } | Fault::NicUp { host, bond, nic } => {
                if *nic > 1 {
                    return Err(format!("nic must be 0 or 1, not {nic}"));
                }
                let up = matches!(fault, Fault::NicUp { .. });
                self.hosts.get_mut(host).expect("checked").nics[bond.index()][*nic] = up;
                self.generation += 1;
            }
            Fault::BondDown { host, bond } | Fault::BondUp { host, bond } => {
                let up = matches!(fault, Fault::BondUp { .. });
                self.hosts.get_mut(host).expect("checked").nics[bond.index()] = [up, up];
                self.generation += 1;
            }
            Fault::Partition(h) | Fault::Stall(h) | Fault::Heal(h) => {
                let host = self.hosts.get_mut(h).expect("checked");
                host.path = match fault {
                    Fault::Partition(_) => PathState::Cut,
                    Fault::Stall(_) => PathState::Stalled,
                    _ => PathState::Ok,
                };
                if matches!(fault, Fault::Heal(_)) {
                    host.path_loss_pct = 0;
                }
                self.generation += 1;
            }
            Fault::Lossy { host, percent } => {
                if !(1..=99).contains(percent) {
                    return Err(format!(
                        "loss must be 1–99 per cent, not {percent} (a cut is 100)"
                    ));
                }
                self.hosts.get_mut(host).expect("checked").path_loss_pct = *percent;
                self.generation += 1;
            }
            Fault::DfsUnreachable(down) => {
                self.dfs_unreachable_from_controller = *down;
                self.generation += 1;
            }
            Fault::DfsService(change) => {
                match change {
                    DfsServiceChange::Down => self.dfs_service_down = true,
                    DfsServiceChange::Up if !self.dfs_service_down => {}
                    DfsServiceChange::Up | DfsServiceChange::Restart => {
                        self.dfs_service_down = false;
                        let max = self.timings.lease_duration_ms;
                        self.leases.service_restarted(now_ms, max);
                    }
                }
                self.generation += 1;
            }
            Fault::ControllerPath(state) => {
                self.controller_path = *state;
                self.generation += 1;
            }
            Fault::Repair(h) => self.power_on(now_ms, h),
            Fault::BmcDown(h) | Fault::BmcUp(h) => {
                self.hosts.get_mut(h).expect("checked").bmc_powered =
                    matches!(fault, Fault::BmcUp(_));
                self.generation += 1;
            }
            Fault::HealAll => {
                let off: Vec<HostId> = self
                    .hosts
                    .iter()
                    .filter(|(_, h)| !h.powered)
                    .map(|(id, _)| id.clone())
                    .collect();
                for h in &off {
                    self.power_on(now_ms, h);
                }
                for h in self.hosts.values_mut() {
                    h.nics = [[true; 2]; 3];
                    h.path = PathState::Ok;
                    h.path_loss_pct = 0;
                    h.bmc_powered = true;
                }
                self.power_on_at.clear();
                self.controller_path = PathState::Ok;
                self.dfs_unreachable_from_controller = false;
                if self.dfs_service_down {
                    self.dfs_service_down = false;
                    let max = self.timings.lease_duration_ms;
                    self.leases.service_restarted(now_ms, max);
                }
                self.generation += 1;
            }
            Fault::FailBoots { vm, count } => {
                if *count == 0 {
                    self.boots_to_fail.remove(vm);
                } else {
                    self.boots_to_fail.insert(vm.clone(), *count);
                }
            }
            Fault::ControllerCrash | Fault::ControllerRestart => {}
        }
        Ok(())
    }
}
