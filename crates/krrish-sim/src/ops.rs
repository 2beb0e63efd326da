//! The simulated hosts' and fencer's operations in "starts now, completes
//! at t" form: [`World::start_host_op`] does what happens at once and says
//! when the rest is due; [`World::finish_host_op`] does the rest at that
//! time. A tokio driver sleeps in between ([`crate::driver`]); the event
//! world schedules an event. Both worlds share this one model of how long
//! things take and what they change.

use crate::world::{DomainState, World};
use krrish_agent::{DriverError, GuestConfig, HostStatus};
use krrish_core::ha::{FenceAction, FenceError};
use krrish_core::{HostId, HostSpec, VmId, VmSpec};

/// What an agent asks its host's backend to do.
#[derive(Clone, Debug)]
pub enum HostOp {
    Boot(VmSpec, GuestConfig),
    /// The guest's interfaces, EIPs and volumes (done at once on a running
    /// guest).
    SetGuest {
        vm: VmId,
        guest: GuestConfig,
    },
    Stop(VmId),
    /// The guest restarts in place; done when it is back.
    Reboot(VmId),
    LiveMigrate {
        vm: VmId,
        to: HostId,
    },
    AbortMigration {
        vm: VmId,
        to: HostId,
    },
    RenewLease,
    SyncDisks,
    /// Self-fencing: every guest stops.
    StopAll,
}

/// A host operation under way.
#[derive(Clone, Debug)]
pub struct PendingHostOp {
    pub done_at_ms: u64,
    step: HostStep,
}

#[derive(Clone, Debug)]
enum HostStep {
    Boot(VmId, GuestConfig),
    SetGuest(VmId, GuestConfig),
    Stop(VmId),
    Reboot(VmId),
    Migrate { vm: VmId, to: HostId, copy: u64 },
    Abort { vm: VmId, to: HostId },
    Renew,
    Sync,
    StopAll,
}

/// What the controller asks of the BMCs and the DFS.
#[derive(Clone, Debug)]
pub enum FencerOp {
    Ipmi {
        host: HostSpec,
        action: FenceAction,
    },
    /// DPM's power-off of a drained host, or power-on of a standby one.
    Power {
        host: HostSpec,
        on: bool,
    },
    RevokeLease(HostId),
    ReinstateLease(HostId),
    ReadRenewals,
}

/// A fencer operation under way: done at `done_at_ms`, failing then with
/// `fails` if set (a BMC or the DFS that never answers: the caller waits
/// out its time-out).
#[derive(Clone, Debug)]
pub struct PendingFencerOp {
    pub done_at_ms: u64,
    op: FencerOp,
    fails: Option<FenceError>,
}

/// A fencer operation's answer, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FencerAnswer {
    Fenced(Result<(), FenceError>),
    Powered(Result<(), FenceError>),
    Revoked(Result<u64, FenceError>),
    Reinstated(Result<(), FenceError>),
    Renewals(Result<krrish_core::lease::LeaseRenewals, FenceError>),
}

impl FencerAnswer {
    fn failed(op: &FencerOp, why: FenceError) -> Self {
        match op {
            FencerOp::Ipmi { .. } => Self::Fenced(Err(why)),
            FencerOp::Power { .. } => Self::Powered(Err(why)),
            FencerOp::RevokeLease(_) => Self::Revoked(Err(why)),
            FencerOp::ReinstateLease(_) => Self::Reinstated(Err(why)),
            FencerOp::ReadRenewals => Self::Renewals(Err(why)),
        }
    }
}

impl World {
    /// What `h`'s agent reads for a heartbeat (nothing runs on a host that
    /// is off).
    pub fn host_status(&self, h: &HostId) -> HostStatus {
        let host = &self.hosts[h];
        if !host.powered {
            return HostStatus {
                bonds: host.bonds(),
                running: Vec::new(),
                migrating_out: Vec::new(),
            };
        }
        HostStatus {
            bonds: host.bonds(),
            running: host
                .domains
                .iter()
                .filter(|(_, d)| d.state == DomainState::Running)
                .map(|(id, _)| id.clone())
                .collect(),
            migrating_out: self.migrating_out_of(h),
        }
    }

    fn powered_or_unavailable(&self, h: &HostId) -> Result<(), DriverError> {
        if self.hosts.get(h).is_some_and(|x| x.powered) {
            Ok(())
        } else {
            Err(DriverError::Unavailable("host is powered off".into()))
        }
    }

    /// Starts `op` on `h`'s backend now. Err: it failed at once.
    pub fn start_host_op(
        &mut self,
        now_ms: u64,
        h: &HostId,
        op: HostOp,
    ) -> Result<PendingHostOp, DriverError> {
        let rtt = self.timings.dfs_rtt_ms;
        let (after_ms, step) = match op {
            HostOp::Boot(vm, guest) => {
                self.powered_or_unavailable(h)?;
                // The world learns VMs created through the API here, so the
                // checkers judge them too.
                self.learn_vm(&vm);
                // A hypervisor asked to start a guest it already runs says
                // so at once (libvirt: "domain is already active"); the
                // driver's contract makes that a success.
                let running_here = self.hosts[h]
                    .domains
                    .get(&vm.id)
                    .is_some_and(|d| d.state == DomainState::Running);
                if !running_here {
                    self.volumes_unlocked(h, &vm.id, &guest)?;
                }
                let boot_ms = if running_here { 0 } else { self.boot_time_ms() };
                (boot_ms, HostStep::Boot(vm.id, guest))
            }
            HostOp::SetGuest { vm, guest } => {
                self.powered_or_unavailable(h)?;
                (0, HostStep::SetGuest(vm, guest))
            }
            HostOp::Stop(vm) => (0, HostStep::Stop(vm)),
            HostOp::Reboot(vm) => {
                self.powered_or_unavailable(h)?;
                if !self.hosts[h]
                    .domains
                    .get(&vm)
                    .is_some_and(|d| d.state == DomainState::Running)
                {
                    return Err(DriverError::Failed(format!("{vm} is not running on {h}")));
                }
                (self.boot_time_ms(), HostStep::Reboot(vm))
            }
            HostOp::LiveMigrate { vm, to } => {
                self.powered_or_unavailable(h)?;
                // A hypervisor that cannot live-migrate says so at once,
                // as libvirt does without a peer to migrate to.
                for x in [h, &to] {
                    if self.hosts.get(x).is_some_and(|x| !x.spec.live_migration) {
                        return Err(DriverError::NotSupported(format!(
                            "{x}'s hypervisor cannot live-migrate"
                        )));
                    }
                }
                let (copy_ms, copy) = self
                    .begin_migration(h, &vm, &to)
                    .map_err(DriverError::Failed)?;
                (copy_ms, HostStep::Migrate { vm, to, copy })
            }
            HostOp::AbortMigration { vm, to } => {
                self.powered_or_unavailable(h)?;
                (0, HostStep::Abort { vm, to })
            }
            HostOp::RenewLease => (rtt, HostStep::Renew),
            HostOp::SyncDisks => (rtt, HostStep::Sync),
            HostOp::StopAll => (0, HostStep::StopAll),
        };
        Ok(PendingHostOp {
            done_at_ms: now_ms + after_ms,
            step,
        })
    }

    /// Completes an operation started by [`Self::start_host_op`], at its
    /// `done_at_ms`.
    pub fn finish_host_op(
        &mut self,
        now_ms: u64,
        h: &HostId,
        op: PendingHostOp,
    ) -> Result<(), DriverError> {
        match op.step {
            HostStep::Boot(vm, guest) => {
                // As libvirt: a disk locked by a guest elsewhere stops the
                // domain from starting at all.
                self.volumes_unlocked(h, &vm, &guest)?;
                self.start_domain(now_ms, h, &vm)?;
                self.set_guest(h, &vm, guest)
            }
            HostStep::SetGuest(vm, guest) => self.set_guest(h, &vm, guest),
            HostStep::Stop(vm) => self
                .stop_domain(now_ms, h, &vm)
                .map_err(DriverError::Failed),
            HostStep::Reboot(vm) => self
                .reboot_domain(now_ms, h, &vm)
                .map_err(DriverError::Failed),
            HostStep::Migrate { vm, to, copy } => self
                .finish_migration(now_ms, h, &vm, &to, copy)
                .map_err(DriverError::Failed),
            HostStep::Abort { vm, to } => self
                .abort_migration(now_ms, h, &vm, &to)
                .map_err(DriverError::Failed),
            HostStep::Renew => self
                .renew_lease(now_ms, h)
                .map_err(DriverError::Unavailable),
            HostStep::Sync => self.sync_disks(now_ms, h).map_err(DriverError::Unavailable),
            HostStep::StopAll => self.self_fence(now_ms, h).map_err(DriverError::Failed),
        }
    }

    /// Refuses to plug into `vm` on `h` a volume a running guest elsewhere
    /// holds, as libvirt's lock manager (virtlockd) refuses in the lab:
    /// "resource ... is locked".
    fn volumes_unlocked(
        &self,
        h: &HostId,
        vm: &VmId,
        guest: &GuestConfig,
    ) -> Result<(), DriverError> {
        for v in &guest.volumes {
            for (x, host) in &self.hosts {
                for (other, d) in &host.domains {
                    let same = x == h && other == vm;
                    if !same
                        && d.state == DomainState::Running
                        && d.guest.volumes.iter().any(|w| w.name == v.name)
                    {
                        return Err(DriverError::Failed(format!(
                            "volume {} is locked: {other} on {x} holds it",
                            v.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Gives `vm`'s guest on `h` its interfaces, EIPs and volumes.
    fn set_guest(&mut self, h: &HostId, vm: &VmId, guest: GuestConfig) -> Result<(), DriverError> {
        self.volumes_unlocked(h, vm, &guest)?;
        match self
            .hosts
            .get_mut(h)
            .and_then(|x| x.domains.get_mut(vm))
            .filter(|d| d.state == DomainState::Running)
        {
            Some(d) => {
                let through = guest.disk_ops_through();
                if d.guest != guest {
                    d.guest = guest;
                    self.generation += 1;
                }
                if through > 0 {
                    self.disk_ops_done_by_host(vm, through);
                }
                Ok(())
            }
            None => Err(DriverError::Failed(format!("{vm} is not running on {h}"))),
        }
    }

    /// Starts a fencer operation now (IPMI over the OGW network, or one
    /// request to the DFS's metadata service).
    pub fn start_fencer_op(&mut self, now_ms: u64, op: FencerOp) -> PendingFencerOp {
        let t = &self.timings;
        let (after_ms, fails) = match &op {
            FencerOp::Ipmi { host, .. } | FencerOp::Power { host, .. } => {
                match self.hosts.get(&host.id) {
                    None => (
                        0,
                        Some(FenceError::NotConfigured(format!(
                            "no BMC known for {}",
                            host.id
                        ))),
                    ),
                    Some(h) if !h.bmc_powered => (
                        t.ipmi_timeout_ms,
                        Some(FenceError::Unreachable(format!(
                            "BMC {} does not answer",
                            host.addresses.ipmi
                        ))),
                    ),
                    Some(_) => (t.ipmi_answer_ms, None),
                }
            }
            _ if self.dfs_unreachable_from_controller || self.dfs_service_down => (
                t.ipmi_timeout_ms,
                Some(FenceError::Unreachable(
                    "DFS metadata service unreachable from the controller".into(),
                )),
            ),
            _ => (t.dfs_rtt_ms, None),
        };
        PendingFencerOp {
            done_at_ms: now_ms + after_ms,
            op,
            fails,
        }
    }

    /// Completes a fencer operation at its `done_at_ms`.
    pub fn finish_fencer_op(&mut self, now_ms: u64, pending: PendingFencerOp) -> FencerAnswer {
        let op = pending.op;
        if let Some(why) = pending.fails {
            return FencerAnswer::failed(&op, why);
        }
        // The BMC may have lost power, or the DFS stopped answering, while
        // we waited.
        let gone = match &op {
            FencerOp::Ipmi { host, .. } | FencerOp::Power { host, .. } => {
                (!self.hosts[&host.id].bmc_powered).then(|| {
                    FenceError::Unreachable(format!(
                        "BMC {} stopped answering",
                        host.addresses.ipmi
                    ))
                })
            }
            _ => (self.dfs_unreachable_from_controller || self.dfs_service_down)
                .then(|| FenceError::Unreachable("DFS metadata service stopped answering".into())),
        };
        if let Some(why) = gone {
            return FencerAnswer::failed(&op, why);
        }
        match op {
            FencerOp::Ipmi { host, action } => {
                self.power_off(now_ms, &host.id, false, "IPMI power-off");
                if action == FenceAction::Reboot {
                    self.schedule_power_on(now_ms, &host.id, "reboot fence");
                }
                FencerAnswer::Fenced(Ok(()))
            }
            FencerOp::Power { host, on } => {
                if on {
                    // Off by DPM's hand: it boots after the host's boot time.
                    if !self.hosts[&host.id].powered {
                        self.schedule_power_on(now_ms, &host.id, "DPM");
                    }
                } else {
                    self.power_off(now_ms, &host.id, false, "IPMI power-off by DPM");
                }
                FencerAnswer::Powered(Ok(()))
            }
            FencerOp::RevokeLease(h) => FencerAnswer::Revoked(Ok(self.revoke_lease(now_ms, &h))),
            FencerOp::ReinstateLease(h) => {
                self.reinstate_lease(now_ms, &h);
                FencerAnswer::Reinstated(Ok(()))
            }
            FencerOp::ReadRenewals => FencerAnswer::Renewals(Ok(self.renewals(now_ms))),
        }
    }
}
