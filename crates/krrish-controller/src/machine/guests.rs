//! The hosts follow the cloud's records of each VM's network and volumes
//! (its [`GuestConfig`]): the host of each running VM is told whenever the
//! records, the VM's host or that host's knowledge change.
//!
//! - A telling that fails is retried with back-off (0.5 s doubling to
//!   30 s), not at every input: a host refusing a change (a disk still
//!   locked elsewhere) is not asked again thousands of times a second —
//!   the lab adversary saw 2,920 retries in 10 s.
//! - A detached volume stays `detaching` until the VM's host answers a
//!   telling sent after the detach (the agent answers only once that change
//!   or a newer one is in place), or until the VM can run nowhere (stopped,
//!   fenced). Only then can it be attached elsewhere: a guest on a host
//!   cut off from the controller keeps the disk plugged in and writable,
//!   and a second writer would corrupt it.

use super::{ControllerMachine, ControllerOutput, Pending};
use krrish_cloud::{GuestConfig, Name};
use krrish_core::ha::VmState;
use krrish_core::{HostId, VmId};
use krrish_wire::AgentCommand;
use std::collections::BTreeSet;

/// The first wait before telling a host again after it refused a change.
const RETRY_FIRST_MS: u64 = 500;
/// The longest wait between tellings a host keeps refusing.
const RETRY_MAX_MS: u64 = 30_000;

/// A VM whose host refused its last telling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct GuestRetry {
    /// Refusals in a row.
    failures: u32,
    /// Not told again before this; `None` while a telling is out.
    not_before_ms: Option<u64>,
}

impl GuestRetry {
    fn wait_ms(failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(16);
        (RETRY_FIRST_MS << doublings).min(RETRY_MAX_MS)
    }
}

impl ControllerMachine {
    /// The earliest time a refused telling is due again.
    pub(super) fn guest_retry_wake(&self) -> Option<u64> {
        self.guest_retry
            .values()
            .filter_map(|r| r.not_before_ms)
            .min()
    }

    /// Brings every running VM's host up to date with the records.
    pub(super) fn follow_guests(&mut self, now_ms: u64) {
        // Checked at every input while a volume is detaching: a stop's
        // answer or a terminated guest confirmed off changes no
        // generation, and a quiet cloud would keep the volume for ever
        // (found by the adversary).
        if !self.detach_marks.is_empty() {
            self.release_volumes_of_dead_guests();
        }
        let at = (self.core.generation(), self.cloud.generation());
        let retry_due = self
            .guest_retry
            .values()
            .any(|r| r.not_before_ms.is_some_and(|t| t <= now_ms));
        if self.guests_followed_at == Some(at) && !retry_due {
            return;
        }
        self.guests_followed_at = Some(at);
        self.mark_detaches();
        self.release_volumes_of_dead_guests();
        let running: Vec<(VmId, HostId)> = self
            .core
            .vms()
            .iter()
            .filter_map(|(vm, r)| match &r.state {
                VmState::Running { host } | VmState::Booting { host, .. } => {
                    Some((vm.clone(), host.clone()))
                }
                _ => None,
            })
            .collect();
        let live: BTreeSet<&VmId> = running.iter().map(|(v, _)| v).collect();
        self.told_guests.retain(|vm, _| live.contains(vm));
        self.guest_retry.retain(|vm, _| live.contains(vm));
        for (vm, host) in running {
            if self.told_guests.get(&vm).is_some_and(|(h, _)| *h != host) {
                // A new host: the old one's refusals say nothing of it.
                self.guest_retry.remove(&vm);
            }
            if self
                .guest_retry
                .get(&vm)
                .is_some_and(|r| r.not_before_ms.is_some_and(|t| t > now_ms))
            {
                // Refused: told again when due.
                continue;
            }
            let want = self.cloud.guest_config(&vm);
            if !self.unplug_unconfirmed(&vm) && !self.disk_ops_unconfirmed(&vm) {
                match self.told_guests.get(&vm) {
                    Some((h, Some(told))) if *h == host && *told == want => {
                        // In place (a boot told it since): nothing is due.
                        self.guest_retry.remove(&vm);
                        continue;
                    }
                    // Nothing told, nothing to tell (a VM with no interfaces
                    // and no volumes).
                    None if want.is_empty() => continue,
                    _ => {}
                }
            }
            self.tell_guest(vm, host, want);
        }
    }

    fn tell_guest(&mut self, vm: VmId, host: HostId, want: GuestConfig) {
        let pending = Pending::Guest {
            vm: vm.clone(),
            host: host.clone(),
            disk_ops_through: want.disk_ops_through(),
        };
        let command = AgentCommand::SetGuest {
            vm: vm.clone(),
            guest: want.clone(),
        };
        // Due now: either out, or waiting for the agent to connect.
        if let Some(r) = self.guest_retry.get_mut(&vm) {
            r.not_before_ms = None;
        }
        match self.send_to_agent(&host, command, pending) {
            Ok(()) => {
                self.push(ControllerOutput::Trace(format!(
                    "network of {vm} on {host}: {want}"
                )));
                self.told_guests.insert(vm, (host, Some(want)));
            }
            // Told when its agent connects (see `AgentHello`).
            Err(_) => {
                self.told_guests.insert(vm, (host, None));
            }
        }
    }

    /// A host answered a telling (`id`) of `vm`'s network and volumes.
    pub(super) fn handle_guest_answer(
        &mut self,
        now_ms: u64,
        id: u64,
        vm: VmId,
        host: HostId,
        outcome: Result<(), krrish_core::ha::DriverError>,
    ) {
        match outcome {
            Ok(()) => {
                self.guest_retry.remove(&vm);
                // What the answer says is in place matters only if the VM
                // can be nowhere else.
                if self.core.hosts_that_may_run(&vm) == [host.clone()] {
                    let unplugged: Vec<Name> = self
                        .cloud
                        .storage
                        .detaching_volumes()
                        .filter(|(v, from)| {
                            **from == vm && self.detach_marks.get(*v).is_some_and(|m| *m <= id)
                        })
                        .map(|(v, _)| v.clone())
                        .collect();
                    for v in unplugged {
                        self.volume_unplugged(&v, format!("{host} unplugged it from {vm}"));
                    }
                }
            }
            Err(why) => {
                // A refusal from a host the VM has left says nothing of
                // where it runs now (found by the adversary: its retry
                // entry was never cleared, and the event world woke the
                // controller at the same instant for ever).
                match self.told_guests.get_mut(&vm) {
                    Some((h, told)) if *h == host => *told = None,
                    _ => {
                        self.push(ControllerOutput::Trace(format!(
                            "network and volumes of {vm} on {host} not applied: {why}; {vm} has left {host}"
                        )));
                        return;
                    }
                }
                let retry = self.guest_retry.entry(vm.clone()).or_default();
                retry.failures = retry.failures.saturating_add(1);
                let wait_ms = GuestRetry::wait_ms(retry.failures);
                retry.not_before_ms = Some(now_ms + wait_ms);
                self.guests_followed_at = None;
                self.push(ControllerOutput::Trace(format!(
                    "network and volumes of {vm} on {host} not applied: {why}; telling again in {} ms",
                    wait_ms
                )));
            }
        }
    }

    /// `host` did `vm`'s snapshot ops up to `through` on its disks: they
    /// retire if the guest can run nowhere else (an answer from a host
    /// the VM has left says nothing of the disks now).
    pub(super) fn disk_ops_done(&mut self, vm: &VmId, host: &HostId, through: u64) {
        if through == 0 || self.core.hosts_that_may_run(vm) != [host.clone()] {
            return;
        }
        let done = self.cloud.disk_ops_done(vm, through);
        if done > 0 {
            self.push(ControllerOutput::Trace(format!(
                "{host} did {done} snapshot op(s) of {vm} on its disks, through #{through}"
            )));
        }
    }

    /// Whether `vm` has snapshot ops no command out carries: a telling
    /// answered while the VM could still run elsewhere (an old host's stop
    /// unconfirmed) retired nothing, and nothing else would tell it again.
    fn disk_ops_unconfirmed(&self, vm: &VmId) -> bool {
        if self.cloud.storage.disk_ops(vm).is_empty() {
            return false;
        }
        !self.pending.values().any(|(_, p)| match p {
            Pending::Guest { vm: v, .. } | Pending::Boot { vm: v, .. } => v == vm,
            _ => false,
        })
    }

    /// Whether a volume was detached from `vm` and no telling sent since
    /// is out: its host must be told (even of nothing) to confirm.
    fn unplug_unconfirmed(&self, vm: &VmId) -> bool {
        let marks: Vec<u64> = self
            .cloud
            .storage
            .detaching_volumes()
            .filter(|(_, from)| *from == vm)
            .filter_map(|(v, _)| self.detach_marks.get(v).copied())
            .collect();
        let Some(&mark) = marks.iter().max() else {
            return false;
        };
        !self
            .pending
            .iter()
            .any(|(id, (_, p))| *id >= mark && matches!(p, Pending::Guest { vm: v, .. } if v == vm))
    }

    /// Each detach is marked with the first command id that can confirm it:
    /// a telling sent from now on reflects it. (Not saved: a restarted
    /// controller marks again, and its tellings all follow the detach.)
    fn mark_detaches(&mut self) {
        let next = self.next_command_id;
        let detaching: BTreeSet<Name> = self
            .cloud
            .storage
            .detaching_volumes()
            .map(|(v, _)| v.clone())
            .collect();
        self.detach_marks.retain(|v, _| detaching.contains(v));
        for v in detaching {
            self.detach_marks.entry(v).or_insert(next);
        }
    }

    /// A volume detached from a VM that can run nowhere now is unplugged.
    fn release_volumes_of_dead_guests(&mut self) {
        let dead: Vec<(Name, VmId)> = self
            .cloud
            .storage
            .detaching_volumes()
            .filter(|(_, vm)| self.core.hosts_that_may_run(vm).is_empty())
            .map(|(v, vm)| (v.clone(), vm.clone()))
            .collect();
        for (v, vm) in dead {
            self.volume_unplugged(&v, format!("{vm} runs nowhere"));
        }
    }

    fn volume_unplugged(&mut self, volume: &Name, why: String) {
        if self.cloud.volume_unplugged(volume) {
            self.detach_marks.remove(volume);
            self.push(ControllerOutput::Trace(format!(
                "volume {volume} available: {why}"
            )));
        }
    }
}
