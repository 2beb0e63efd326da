//! The simulated hypervisor's guest operations on the [`World`], answered
//! as libvirt would where the control plane depends on the answer: start
//! (from the DFS copy; a VM's injected boot failures), stop, reboot, a
//! host's self-fence, and live migrations (begin, abort, finish).

use crate::world::{Domain, DomainState, Outage, Recovery, World};
use krrish_cloud::GuestConfig;
use krrish_core::ha::{secs, DriverError};
use krrish_core::{BondName, HostId, VmId};

impl World {
    /// A guest starts on `h` from the DFS copy. The host's own trouble
    /// (no power, no storage network) is [`DriverError::Unavailable`]; the
    /// guest's is [`DriverError::Failed`].
    pub fn start_domain(&mut self, now_ms: u64, h: &HostId, vm: &VmId) -> Result<(), DriverError> {
        let unavailable = |why: &str| DriverError::Unavailable(why.into());
        let host = self.hosts.get_mut(h).ok_or(unavailable("no such host"))?;
        if !host.powered {
            return Err(unavailable("host is powered off"));
        }
        if !host.storage_up() {
            return Err(unavailable(
                "storage network (bond2) down: cannot open the DFS copy",
            ));
        }
        match host.domains.get(vm).map(|d| &d.state) {
            Some(DomainState::Running) => return Ok(()),
            // As libvirt: the name is taken by a migration's target domain,
            // which is not a running guest until the switch-over.
            Some(DomainState::Incoming { from, .. }) => {
                return Err(DriverError::Failed(format!(
                    "{vm} is the target of a live migration from {from} still under way"
                )))
            }
            None => {}
        }
        if let Some(left) = self.boots_to_fail.get_mut(vm) {
            *left -= 1;
            let left = *left;
            if left == 0 {
                self.boots_to_fail.remove(vm);
            }
            self.say(
                now_ms,
                &format!("{vm} failed to boot on {h} (injected; {left} more of its boots to fail)"),
            );
            return Err(DriverError::Failed(
                "the guest did not come up (injected boot failure)".into(),
            ));
        }
        let host = self.hosts.get_mut(h).expect("checked");
        host.domains.insert(
            vm.clone(),
            Domain {
                state: DomainState::Running,
                last_sync_ms: now_ms,
                guest: GuestConfig::default(),
            },
        );
        self.generation += 1;
        match self.outages.remove(vm) {
            Some(o) => {
                let r = Recovery {
                    vm: vm.clone(),
                    host: h.clone(),
                    at_ms: now_ms,
                    rto_ms: now_ms - o.since_ms,
                    rpo_ms: o.unsynced_ms,
                };
                self.say(
                    now_ms,
                    &format!(
                        "{vm} running on {h} from its DFS copy: down {} (RTO), lost {} of writes (RPO)",
                        secs(r.rto_ms),
                        secs(r.rpo_ms)
                    ),
                );
                self.recoveries.push(r);
            }
            None => self.say(now_ms, &format!("{vm} running on {h}")),
        }
        Ok(())
    }

    pub fn stop_domain(&mut self, now_ms: u64, h: &HostId, vm: &VmId) -> Result<(), String> {
        let host = self.hosts.get_mut(h).ok_or("no such host")?;
        if !host.powered {
            return Err("host is powered off".into());
        }
        if let Some(d) = host.domains.remove(vm) {
            self.generation += 1;
            self.say(now_ms, &format!("{vm} stopped on {h}"));
            // A stop the control plane orders is an outage too, unless
            // another copy runs on: it counts until the VM runs again.
            if d.state == DomainState::Running && self.running_on(vm).is_empty() {
                self.outages.insert(
                    vm.clone(),
                    Outage {
                        since_ms: now_ms,
                        unsynced_ms: now_ms.saturating_sub(d.last_sync_ms),
                        cause: format!("stopped on {h} by the control plane"),
                    },
                );
            }
        }
        Ok(())
    }

    /// A guest reboot completes: the domain stayed active throughout (as
    /// libvirt keeps it); the guest is back. Fails if the domain went away
    /// meanwhile (stopped, host powered off).
    pub fn reboot_domain(&mut self, now_ms: u64, h: &HostId, vm: &VmId) -> Result<(), String> {
        let host = self.hosts.get(h).ok_or("no such host")?;
        if !host.powered {
            return Err("host is powered off".into());
        }
        if !host
            .domains
            .get(vm)
            .is_some_and(|d| d.state == DomainState::Running)
        {
            return Err(format!("{vm} went away during its reboot"));
        }
        *self.reboots.entry(vm.clone()).or_default() += 1;
        self.generation += 1;
        self.say(now_ms, &format!("{vm} rebooted on {h}"));
        Ok(())
    }

    /// Self-fencing: the agent stops everything because its lease lapsed.
    pub fn self_fence(&mut self, now_ms: u64, h: &HostId) -> Result<(), String> {
        if !self.hosts.get(h).is_some_and(|x| x.powered) {
            return Err("host is powered off".into());
        }
        let killed = self.kill_domains(now_ms, h, "self-fenced: DFS lease lapsing");
        self.say(now_ms, &format!("{h} self-fenced: {killed} VMs stopped"));
        Ok(())
    }

    /// Begins a copy of `vm` from `h` to `to`: how long it takes, and the
    /// copy's number (for [`Self::finish_migration`]).
    pub fn begin_migration(
        &mut self,
        h: &HostId,
        vm: &VmId,
        to: &HostId,
    ) -> Result<(u64, u64), String> {
        let src = self.hosts.get(h).ok_or("no such host")?;
        if !matches!(src.domains.get(vm), Some(d) if d.state == DomainState::Running) {
            return Err(format!("{vm} is not running on {h}"));
        }
        if !src.bond(BondName::Bond1).carries_traffic() {
            return Err(format!("{h} VM network (bond1) down"));
        }
        let dst = self.hosts.get_mut(to).ok_or("no such target host")?;
        if !dst.powered || !dst.bond(BondName::Bond1).carries_traffic() {
            return Err(format!("target {to} unreachable on the VM network"));
        }
        if !dst.storage_up() {
            return Err(format!(
                "target {to} cannot open the VM's disk: storage network (bond2) down"
            ));
        }
        self.copies_begun += 1;
        let copy = self.copies_begun;
        let dst = self.hosts.get_mut(to).expect("checked");
        dst.domains.insert(
            vm.clone(),
            Domain {
                state: DomainState::Incoming {
                    from: h.clone(),
                    copy,
                },
                last_sync_ms: 0,
                guest: GuestConfig::default(),
            },
        );
        self.generation += 1;
        let mib = self
            .vms
            .get(vm)
            .map(|v| v.demand.memory_mib)
            .unwrap_or(1024);
        let copy_ms =
            mib * 1000 / self.timings.migrate_mib_per_s.max(1) + self.timings.migrate_pause_ms;
        Ok((copy_ms, copy))
    }

    /// Cancels a copy of `vm` from `h` to `to` still in flight: the half
    /// arrived copy is discarded (the copy's own task then fails).
    pub fn abort_migration(
        &mut self,
        now_ms: u64,
        h: &HostId,
        vm: &VmId,
        to: &HostId,
    ) -> Result<(), String> {
        let Some(dst) = self.hosts.get_mut(to) else {
            return Err("no such target host".into());
        };
        match dst.domains.get(vm).map(|d| &d.state) {
            Some(DomainState::Incoming { from, .. }) if from == h => {
                dst.domains.remove(vm);
                self.generation += 1;
                self.say(now_ms, &format!("migration of {vm} {h} -> {to} cancelled"));
                Ok(())
            }
            Some(DomainState::Running) => Err(format!("{vm} already switched over to {to}")),
            _ => Ok(()),
        }
    }

    /// Switch-over of copy `copy`: the target runs the VM, the source
    /// stops it. Another copy arriving there (this one was lost with its
    /// target's reboot, and the VM sent again) is not this one's to finish
    /// — found by the adversary: the first copy's timer switched the
    /// second over early.
    pub fn finish_migration(
        &mut self,
        now_ms: u64,
        h: &HostId,
        vm: &VmId,
        to: &HostId,
        copy: u64,
    ) -> Result<(), String> {
        let src_running = matches!(self.hosts.get(h).and_then(|x| x.domains.get(vm)), Some(d) if d.state == DomainState::Running);
        let dst_incoming = matches!(
            self.hosts.get(to).and_then(|x| x.domains.get(vm)).map(|d| &d.state),
            Some(DomainState::Incoming { copy: c, .. }) if *c == copy
        );
        if !src_running || !dst_incoming {
            return Err("migration interrupted".into());
        }
        // No lease, no disk: the target takes the disk over at the
        // switch-over, which it cannot without storage and a lease the DFS
        // honours. The half-arrived copy is discarded; the source runs on.
        let target_has_disk =
            self.hosts.get(to).is_some_and(|x| x.storage_up()) && self.leases.valid(to, now_ms);
        if !target_has_disk {
            self.hosts.get_mut(to).expect("checked").domains.remove(vm);
            self.generation += 1;
            return Err(format!(
                "switch-over refused: {to} cannot take {vm}'s disk (no storage or no DFS lease)"
            ));
        }
        let moved = self.hosts.get_mut(h).expect("checked").domains.remove(vm);
        let (last_sync, guest) = moved.map(|d| (d.last_sync_ms, d.guest)).unwrap_or_default();
        // The guest keeps its NICs and volumes; the target's agent is told
        // of them again (the controller re-sends it to the new host).
        self.hosts.get_mut(to).expect("checked").domains.insert(
            vm.clone(),
            Domain {
                state: DomainState::Running,
                last_sync_ms: last_sync,
                guest,
            },
        );
        self.generation += 1;
        self.say(now_ms, &format!("{vm} live-migrated {h} -> {to}"));
        Ok(())
    }
}
