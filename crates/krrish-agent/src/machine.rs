//! The agent's logic, without I/O: the link to the controller (dial, notice a
//! dead link, redial with back-off), heartbeats, DFS lease renewals, disk
//! syncs and self-fencing. Every world drives this same machine; the shells
//! only move bytes, timers and driver calls.
//!
//! ```text
//!  Waiting(at) ──at──► Dialing(epoch, deadline) ──ok──► Connected(epoch)
//!     ▲                      │ failed / deadline            │ heartbeat not acked within
//!     │                      ▼                              │ ack_timeout, or closed
//!     └──── back-off (min, doubling, max) ◄─────────────────┘  (redial at once)
//! ```

use krrish_cloud::GuestConfig;
use krrish_core::ha::{DriverError, HostReport};
use krrish_core::lease::LeaseKeeper;
use krrish_core::timings::{jittered, mix64, AgentTimings};
use krrish_core::{BondHealth, HostId, VmId};
use krrish_wire::{AgentCommand, Frame};
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub host: HostId,
    pub controller_addr: String,
    pub timings: AgentTimings,
    /// Wait after boot before dialling the controller (hosts do not come up
    /// in lockstep; the simulator spreads them with its seed).
    pub start_delay_ms: u64,
}

impl AgentConfig {
    pub fn new(host: HostId, controller_addr: String) -> Self {
        Self {
            host,
            controller_addr,
            timings: AgentTimings::default(),
            start_delay_ms: 0,
        }
    }
}

/// What the shell must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentOutput {
    /// Open a connection to the controller; answer with
    /// [`AgentMachine::handle_dial_result`] carrying the same epoch.
    Dial {
        epoch: u64,
    },
    /// Drop the connection of this epoch (dead or abandoned).
    Disconnect {
        epoch: u64,
    },
    /// Read the host's status from the driver for a heartbeat; answer with
    /// [`AgentMachine::handle_status`].
    ReadStatus,
    Send(Frame),
    RunCommand {
        id: u64,
        command: AgentCommand,
    },
    /// Renew the DFS lease; answer with [`AgentMachine::handle_lease_result`].
    RenewLease,
    SyncDisks,
    /// The lease lapsed: stop every VM.
    SelfFence,
    Trace(String),
}

/// What the driver reads of the host for a heartbeat (a snapshot; the
/// machine turns it into the report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStatus {
    pub bonds: [BondHealth; 3],
    /// VMs whose domains run here now.
    pub running: Vec<VmId>,
    /// VMs this host is live-migrating away now.
    pub migrating_out: Vec<VmId>,
}

/// The link to the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Not connected; dial at `at_ms`.
    Waiting {
        at_ms: u64,
    },
    Dialing {
        epoch: u64,
        deadline_ms: u64,
    },
    Connected {
        epoch: u64,
        /// The oldest heartbeat sent since the last ack.
        unacked_since_ms: Option<u64>,
    },
}

const OUTPUT_QUEUE_MAX: usize = 1 << 16;

/// Ids of the commands the agent runs of its own accord (a guest change
/// that waited) start here, above every controller id (those are
/// `incarnation << 40 | n`, with fewer than 2^23 incarnations).
const OWN_COMMAND_ID_BASE: u64 = 1 << 63;

pub struct AgentMachine {
    cfg: AgentConfig,
    boot_id: u64,
    lease: LeaseKeeper,
    link: Link,
    epoch: u64,
    /// Failed dials in a row (for the back-off); a connection closed before
    /// the controller said anything on it counts as one.
    dial_failures: u32,
    /// The controller has sent a frame on the current link.
    heard_on_link: bool,
    /// When the link last went down (for the trace line on reconnect).
    down_since_ms: Option<u64>,
    next_heartbeat_ms: u64,
    next_renew_ms: u64,
    next_sync_ms: u64,
    lease_failures: FailureStreak,
    /// Failed renewals so far: each retry's spread (see [`jittered`]).
    lease_retries: u64,
    /// A renewal has been answered since this boot (success or not): until
    /// then the agent does not know it holds no lease.
    lease_answered: bool,
    sync_failures: FailureStreak,
    /// Boots under way, by VM: the command running it and the commands that
    /// asked for the same boot meanwhile (a controller resending after a
    /// restart). One boot per VM at a time: a second would finish after the
    /// first and could start a copy the VM had already moved away from.
    boots: BTreeMap<VmId, (u64, Vec<u64>)>,
    /// The serial of each boot under way (when the controller told one).
    boot_serials: BTreeMap<VmId, u64>,
    /// The last boot of each VM that failed here, by serial, and why: the
    /// same boot sent again (its answer was lost with a connection) is
    /// answered so again, not run again — a broken guest is not booted
    /// uncounted each time a flapping link reconnects.
    failed_boots: BTreeMap<VmId, (u64, DriverError)>,
    /// Stops ordered while the VM's boot was under way: run when it ends,
    /// so an answered stop means no copy is running and none is coming.
    stops_after_boot: BTreeMap<VmId, Vec<u64>>,
    /// One guest change (network, volumes) per VM at a time, in order:
    /// the change running, by VM (a boot counts as one, see `boots`). Two
    /// at once could end in either order and leave the older in place.
    guest_changing: BTreeMap<VmId, u64>,
    /// The change to run when the VM's boot or change under way ends: the
    /// latest asked only, with the commands it answers once it is in place
    /// (superseded changes are answered by it, never before: an answer
    /// means "what you asked, or newer, is in place" — the controller frees
    /// a detached volume on it). A change that came with a boot asked again
    /// answers nobody: the boot's own answer does.
    guest_next: BTreeMap<VmId, (Vec<u64>, GuestConfig)>,
    /// The controller's commands each change the agent runs on its own
    /// answers when it ends.
    guest_answers: BTreeMap<u64, Vec<u64>>,
    next_own_command: u64,
    out: VecDeque<AgentOutput>,
}

/// Boots under way on one host, at most (beyond, the controller is
/// misbehaving: refuse rather than grow).
const BOOTS_IN_FLIGHT_MAX: usize = 4_096;
/// Failed boots remembered (one per VM; the oldest VM's goes first).
const FAILED_BOOTS_KEPT: usize = 4_096;
/// Stops waiting on one VM's boot, at most.
const STOPS_WAITING_MAX: usize = 16;
/// Guest changes of one VM waiting to be answered by a later one, at most
/// (beyond, the oldest is answered as superseded, unapplied).
const GUEST_WAITERS_MAX: usize = 64;

impl AgentMachine {
    /// An agent on a host that booted with `boot_id`.
    pub fn new(now_ms: u64, cfg: AgentConfig, boot_id: u64) -> Self {
        let t = cfg.timings;
        let lease = LeaseKeeper::new(t.lease_duration_ms, t.lease_renew_every_ms, t.lease_lead_ms);
        Self {
            lease,
            boot_id,
            link: Link::Waiting {
                at_ms: now_ms + cfg.start_delay_ms,
            },
            epoch: 0,
            dial_failures: 0,
            heard_on_link: false,
            down_since_ms: None,
            next_heartbeat_ms: now_ms,
            next_renew_ms: now_ms,
            next_sync_ms: now_ms + cfg.start_delay_ms + t.sync_every_ms,
            lease_failures: FailureStreak::default(),
            lease_retries: 0,
            lease_answered: false,
            sync_failures: FailureStreak::default(),
            boots: BTreeMap::new(),
            boot_serials: BTreeMap::new(),
            failed_boots: BTreeMap::new(),
            stops_after_boot: BTreeMap::new(),
            guest_changing: BTreeMap::new(),
            guest_next: BTreeMap::new(),
            guest_answers: BTreeMap::new(),
            next_own_command: 0,
            out: VecDeque::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Connected { .. })
    }

    /// The epoch of the connection in use, if any.
    pub fn connected_epoch(&self) -> Option<u64> {
        match self.link {
            Link::Connected { epoch, .. } => Some(epoch),
            _ => None,
        }
    }

    fn push(&mut self, o: AgentOutput) {
        assert!(
            self.out.len() < OUTPUT_QUEUE_MAX,
            "agent output queue unbounded growth"
        );
        self.out.push_back(o);
    }

    fn trace(&mut self, s: String) {
        self.push(AgentOutput::Trace(s));
    }

    pub fn poll_output(&mut self) -> Option<AgentOutput> {
        self.out.pop_front()
    }

    /// The next instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> u64 {
        let t = &self.cfg.timings;
        let mut at = self.next_renew_ms.min(self.next_sync_ms);
        match self.link {
            Link::Waiting { at_ms } => at = at.min(at_ms),
            Link::Dialing { deadline_ms, .. } => at = at.min(deadline_ms),
            Link::Connected {
                unacked_since_ms, ..
            } => {
                at = at.min(self.next_heartbeat_ms);
                if let Some(s) = unacked_since_ms {
                    at = at.min(s + t.ack_timeout_ms);
                }
            }
        }
        if let Some(f) = self.lease.self_fence_at() {
            at = at.min(f);
        }
        at
    }

    /// A dial of `epoch` finished. Returns whether the shell should keep the
    /// connection (false: stale or abandoned, drop it).
    pub fn handle_dial_result(
        &mut self,
        now_ms: u64,
        epoch: u64,
        result: Result<(), String>,
    ) -> bool {
        if !matches!(self.link, Link::Dialing { epoch: e, .. } if e == epoch) {
            return false;
        }
        match result {
            Ok(()) => {
                // Failures are forgiven once the controller answers on the
                // link (see `handle_closed`), not at the connect itself.
                self.heard_on_link = false;
                self.link = Link::Connected {
                    epoch,
                    unacked_since_ms: None,
                };
                if let Some(since) = self.down_since_ms.take() {
                    self.trace(format!(
                        "connected to the controller again after {} ms",
                        now_ms.saturating_sub(since)
                    ));
                }
                self.push(AgentOutput::Send(Frame::AgentHello {
                    host: self.cfg.host.clone(),
                    boot_id: self.boot_id,
                }));
                self.send_heartbeat(now_ms);
                true
            }
            Err(why) => {
                self.dial_failed(now_ms, &why);
                false
            }
        }
    }

    fn dial_failed(&mut self, now_ms: u64, why: &str) {
        let t = self.cfg.timings;
        self.dial_failures = self.dial_failures.saturating_add(1);
        if self.dial_failures == 1 {
            self.trace(format!(
                "cannot reach the controller ({}): {why}; retrying every {}–{} ms",
                self.cfg.controller_addr, t.reconnect_backoff_min_ms, t.reconnect_backoff_max_ms
            ));
        }
        let shift = (self.dial_failures - 1).min(16);
        let backoff = (t.reconnect_backoff_min_ms << shift).min(t.reconnect_backoff_max_ms);
        self.link = Link::Waiting {
            at_ms: now_ms + backoff,
        };
    }

    /// The shell saw the connection of `epoch` close (reset, end of stream).
    pub fn handle_closed(&mut self, now_ms: u64, epoch: u64) {
        if self.connected_epoch() != Some(epoch) {
            return;
        }
        if !self.heard_on_link {
            // Closed before the controller said anything: not a controller
            // (the API's port), or one that turns this agent away (another
            // agent runs as this host). Redialling at once made a storm of
            // thousands of connections a second (found by the bad-input
            // adversary): back off as for a failed dial, and say why.
            self.push(AgentOutput::Disconnect { epoch });
            self.down_since_ms.get_or_insert(now_ms);
            let why = format!(
                "the connection closed before the controller answered (is {} the controller's agent address, not its API's? does another agent run as {}?)",
                self.cfg.controller_addr, self.cfg.host
            );
            self.dial_failed(now_ms, &why);
            return;
        }
        self.trace("connection to the controller closed".to_string());
        self.link_down(now_ms);
    }

    /// The link is gone: redial at once (the first retry is not delayed, so
    /// a short cut costs one dial after it heals).
    fn link_down(&mut self, now_ms: u64) {
        if let Some(epoch) = self.connected_epoch() {
            self.push(AgentOutput::Disconnect { epoch });
        }
        self.down_since_ms.get_or_insert(now_ms);
        self.link = Link::Waiting { at_ms: now_ms };
    }

    pub fn handle_frame(&mut self, now_ms: u64, epoch: u64, frame: Frame) {
        if self.connected_epoch() != Some(epoch) {
            return; // from a connection already given up
        }
        self.heard_on_link = true;
        self.dial_failures = 0;
        match frame {
            Frame::HeartbeatAck => {
                if let Link::Connected {
                    unacked_since_ms, ..
                } = &mut self.link
                {
                    *unacked_since_ms = None;
                }
            }
            Frame::Command { id, command } => self.run_command(now_ms, id, command),
            other => self.trace(format!("unexpected frame ignored: {other:?}")),
        }
    }

    fn run_command(&mut self, now_ms: u64, id: u64, command: AgentCommand) {
        if let AgentCommand::StopVm { vm } = &command {
            if self.boots.contains_key(vm) {
                let waiting = self.stops_after_boot.entry(vm.clone()).or_default();
                if waiting.len() >= STOPS_WAITING_MAX {
                    let outcome = Err(DriverError::Unavailable(format!(
                        "{STOPS_WAITING_MAX} stops of {vm} already wait for its boot"
                    )));
                    self.push(AgentOutput::Send(Frame::CommandDone { id, outcome }));
                } else {
                    waiting.push(id);
                }
                return;
            }
        }
        if let AgentCommand::SetGuest { vm, guest } = &command {
            if self.boots.contains_key(vm) || self.guest_changing.contains_key(vm) {
                self.guest_later(vm, Some(id), guest.clone());
                return;
            }
            self.guest_changing.insert(vm.clone(), id);
        }
        if let AgentCommand::BootVm {
            vm, guest, serial, ..
        } = &command
        {
            if let Some((_, joined)) = self.boots.get_mut(&vm.id) {
                // The same boot again: answered when the one under way ends.
                // It may carry a newer network or volumes than the boot
                // under way (the controller sent them with it, telling
                // nothing else): applied once the boot ends — found by the
                // adversary, a NIC joined during a failover boot was lost.
                joined.push(id);
                self.guest_later(&vm.id, None, guest.clone());
                return;
            }
            if self.known_without_lease(now_ms) {
                // No lease, no disk: a guest booted now would run with no
                // lease to stop it when the host is fenced by revocation.
                let outcome = Err(DriverError::Unavailable(format!(
                    "{} holds no DFS lease: cannot open {}'s disk",
                    self.cfg.host, vm.id
                )));
                self.push(AgentOutput::Send(Frame::CommandDone { id, outcome }));
                return;
            }
            if self.boots.len() >= BOOTS_IN_FLIGHT_MAX {
                let outcome = Err(DriverError::Unavailable(format!(
                    "more than {BOOTS_IN_FLIGHT_MAX} boots under way on this host"
                )));
                self.push(AgentOutput::Send(Frame::CommandDone { id, outcome }));
                return;
            }
            if let Some((_, why)) = self
                .failed_boots
                .get(&vm.id)
                .filter(|(failed, _)| *serial != 0 && failed == serial)
            {
                let outcome = Err(why.clone());
                self.trace(format!(
                    "boot {serial} of {} failed here already: answered again, not run again",
                    vm.id
                ));
                self.push(AgentOutput::Send(Frame::CommandDone { id, outcome }));
                return;
            }
            self.boots.insert(vm.id.clone(), (id, Vec::new()));
            if *serial != 0 {
                self.boot_serials.insert(vm.id.clone(), *serial);
            }
        }
        self.push(AgentOutput::RunCommand { id, command });
    }

    /// Keeps `guest` to apply to `vm` once its boot or guest change under
    /// way ends; an earlier one kept is superseded, and answered with it.
    fn guest_later(&mut self, vm: &VmId, id: Option<u64>, guest: GuestConfig) {
        let (waiting, latest) = self
            .guest_next
            .entry(vm.clone())
            .or_insert_with(|| (Vec::new(), guest.clone()));
        *latest = guest;
        waiting.extend(id);
        if waiting.len() > GUEST_WAITERS_MAX {
            let oldest = waiting.remove(0);
            let outcome = Err(DriverError::Unavailable(format!(
                "superseded by {GUEST_WAITERS_MAX} later changes of {vm}'s network and volumes"
            )));
            self.push(AgentOutput::Send(Frame::CommandDone {
                id: oldest,
                outcome,
            }));
        }
    }

    /// Runs the change waiting for `vm`, if any and if nothing else changes
    /// its guest now.
    fn run_guest_next(&mut self, vm: &VmId) {
        if self.boots.contains_key(vm) || self.guest_changing.contains_key(vm) {
            return;
        }
        let Some((answers, guest)) = self.guest_next.remove(vm) else {
            return;
        };
        let id = OWN_COMMAND_ID_BASE + self.next_own_command;
        self.next_own_command += 1;
        self.guest_changing.insert(vm.clone(), id);
        self.guest_answers.insert(id, answers);
        self.push(AgentOutput::RunCommand {
            id,
            command: AgentCommand::SetGuest {
                vm: vm.clone(),
                guest,
            },
        });
    }

    pub fn handle_command_done(&mut self, _now_ms: u64, id: u64, outcome: Result<(), DriverError>) {
        let mut ids = vec![id];
        let mut guest_done = None;
        if let Some(vm) = self
            .guest_changing
            .iter()
            .find(|(_, running)| **running == id)
            .map(|(vm, _)| vm.clone())
        {
            self.guest_changing.remove(&vm);
            guest_done = Some(vm);
        }
        if id >= OWN_COMMAND_ID_BASE {
            ids = self.guest_answers.remove(&id).unwrap_or_default();
            if let (true, Err(e), Some(vm)) = (ids.is_empty(), &outcome, &guest_done) {
                // A change that came with a boot asked again: nobody waits
                // for it.
                self.trace(format!(
                    "applying {vm}'s network and volumes after its boot failed: {e}"
                ));
            }
        }
        let vm = self
            .boots
            .iter()
            .find(|(_, (running, _))| *running == id)
            .map(|(vm, _)| vm.clone());
        let mut stops = Vec::new();
        if let Some(vm) = &vm {
            let (_, joined) = self.boots.remove(vm).expect("found");
            ids.extend(joined);
            match (self.boot_serials.remove(vm), &outcome) {
                (Some(serial), Err(why)) => {
                    if self.failed_boots.len() >= FAILED_BOOTS_KEPT
                        && !self.failed_boots.contains_key(vm)
                    {
                        self.failed_boots.pop_first();
                    }
                    self.failed_boots.insert(vm.clone(), (serial, why.clone()));
                }
                _ => {
                    self.failed_boots.remove(vm);
                }
            }
            for id in self.stops_after_boot.remove(vm).unwrap_or_default() {
                stops.push((id, vm.clone()));
            }
        }
        // When disconnected the result is dropped: the controller learns the
        // outcome from the next heartbeat's list of running VMs.
        if self.is_connected() {
            for id in ids {
                let outcome = outcome.clone();
                self.push(AgentOutput::Send(Frame::CommandDone { id, outcome }));
            }
        }
        for vm in vm.iter().chain(guest_done.iter()) {
            self.run_guest_next(vm);
        }
        for (id, vm) in stops {
            self.push(AgentOutput::RunCommand {
                id,
                command: AgentCommand::StopVm { vm },
            });
        }
    }

    /// The host holds no DFS lease, as far as it knows. Before its first
    /// renewal is answered (the first thing an agent asks, milliseconds
    /// after start) it does not know, and neither reports nor refuses on
    /// that account: a host just booted is not a host that lost its lease.
    fn known_without_lease(&self, now_ms: u64) -> bool {
        self.lease_answered && !self.lease.holds_lease(now_ms)
    }

    /// A lease renewal requested at `asked_ms` finished.
    pub fn handle_lease_result(&mut self, now_ms: u64, asked_ms: u64, result: Result<(), String>) {
        self.lease_answered = true;
        if result.is_ok() {
            self.lease.renewed(asked_ms);
        } else {
            // Asked again soon, not at the next interval (see
            // `AgentTimings::lease_retry_ms`).
            self.lease_retries = self.lease_retries.wrapping_add(1);
            let salt = host_salt(&self.cfg.host) ^ self.lease_retries;
            let retry_at = now_ms + jittered(self.cfg.timings.lease_retry_ms(), salt);
            self.next_renew_ms = self.next_renew_ms.min(retry_at);
        }
        if let Some(line) = self.lease_failures.record("DFS lease renewal", &result) {
            self.trace(line);
        }
    }

    /// A disk sync finished.
    pub fn handle_sync_result(&mut self, _now_ms: u64, result: Result<(), String>) {
        if let Some(line) = self.sync_failures.record("DFS sync", &result) {
            self.trace(line);
        }
    }

    fn send_heartbeat(&mut self, now_ms: u64) {
        if let Link::Connected {
            unacked_since_ms, ..
        } = &mut self.link
        {
            unacked_since_ms.get_or_insert(now_ms);
        }
        self.push(AgentOutput::ReadStatus);
        self.next_heartbeat_ms = now_ms + self.cfg.timings.heartbeat_interval_ms;
    }

    /// The host's status, read for a heartbeat: sent as this boot's report
    /// if the link is still up (otherwise the next connection sends a fresh
    /// one).
    pub fn handle_status(&mut self, now_ms: u64, status: HostStatus) {
        if !self.is_connected() {
            return;
        }
        let booting = self
            .boots
            .keys()
            .filter(|vm| !status.running.contains(vm))
            .cloned()
            .collect();
        let report = HostReport {
            boot_id: self.boot_id,
            bonds: status.bonds,
            running: status.running,
            migrating_out: status.migrating_out,
            booting,
            holds_lease: !self.known_without_lease(now_ms),
        };
        self.push(AgentOutput::Send(Frame::Heartbeat { report }));
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        let t = self.cfg.timings;
        match self.link {
            Link::Waiting { at_ms } if now_ms >= at_ms => {
                self.epoch += 1;
                self.link = Link::Dialing {
                    epoch: self.epoch,
                    deadline_ms: now_ms + t.connect_timeout_ms,
                };
                self.push(AgentOutput::Dial { epoch: self.epoch });
            }
            Link::Dialing { deadline_ms, .. } if now_ms >= deadline_ms => {
                self.dial_failed(now_ms, "timed out");
            }
            Link::Connected {
                unacked_since_ms: Some(since),
                ..
            } if now_ms >= since + t.ack_timeout_ms => {
                self.trace(format!(
                    "heartbeat not acknowledged within {} ms: the link is dead, reconnecting",
                    now_ms - since
                ));
                self.link_down(now_ms);
            }
            Link::Connected { .. } if now_ms >= self.next_heartbeat_ms => {
                self.send_heartbeat(now_ms);
            }
            _ => {}
        }
        if now_ms >= self.next_renew_ms {
            self.push(AgentOutput::RenewLease);
            self.next_renew_ms = next_after(self.next_renew_ms, t.lease_renew_every_ms, now_ms);
        }
        if now_ms >= self.next_sync_ms {
            self.push(AgentOutput::SyncDisks);
            self.next_sync_ms = next_after(self.next_sync_ms, t.sync_every_ms, now_ms);
        }
        if self.lease.must_self_fence(now_ms) {
            self.push(AgentOutput::SelfFence);
            self.trace("DFS lease about to lapse: stopping every VM (self-fence)".to_string());
        }
    }
}

/// Failures in a row of one duty: the first failure and the recovery are
/// worth a trace line; the retries between them are not.
#[derive(Debug, Default)]
struct FailureStreak(u64);

impl FailureStreak {
    fn record(&mut self, what: &str, result: &Result<(), String>) -> Option<String> {
        match result {
            Ok(()) if self.0 > 0 => {
                let n = std::mem::take(&mut self.0);
                Some(format!("{what} works again after {n} failed attempts"))
            }
            Ok(()) => None,
            Err(why) => {
                self.0 += 1;
                (self.0 == 1).then(|| format!("{what} failed: {why} (retrying)"))
            }
        }
    }
}

/// The next multiple of `every` after `now`, starting from `at` (no bursts
/// after a long stall).
/// A number of the host's own, so hosts spread their retries differently.
fn host_salt(host: &HostId) -> u64 {
    host.as_str()
        .bytes()
        .fold(0, |h, b| mix64(h ^ u64::from(b)))
}

fn next_after(at: u64, every: u64, now: u64) -> u64 {
    if at > now {
        return at;
    }
    let behind = (now - at) / every + 1;
    at + behind * every
}

#[cfg(test)]
mod tests;
