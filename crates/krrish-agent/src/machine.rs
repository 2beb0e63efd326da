//! The agent's logic, without I/O.

use krrish_core::lease::LeaseKeeper;
use krrish_core::HostId;
use krrish_wire::{AgentCommand, Frame};
use std::collections::VecDeque;

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub host: HostId,
    pub controller_addr: String,
    pub heartbeat_interval_ms: u64,
    /// No ack from the controller for this long: drop the connection.
    pub ack_timeout_ms: u64,
    pub lease_duration_ms: u64,
    pub lease_renew_every_ms: u64,
    /// Stop VMs this long before the lease could lapse.
    pub lease_lead_ms: u64,
    pub sync_every_ms: u64,
    pub connect_timeout_ms: u64,
    pub reconnect_delay_ms: u64,
    /// Wait after boot before dialling the controller (hosts do not come up
    /// in lockstep; the simulator spreads them with its seed).
    pub start_delay_ms: u64,
}

impl AgentConfig {
    pub fn new(host: HostId, controller_addr: String) -> Self {
        Self {
            host,
            controller_addr,
            heartbeat_interval_ms: 6_000,
            ack_timeout_ms: 13_000,
            lease_duration_ms: 30_000,
            lease_renew_every_ms: 10_000,
            lease_lead_ms: 5_000,
            sync_every_ms: 10_000,
            connect_timeout_ms: 3_000,
            reconnect_delay_ms: 2_000,
            start_delay_ms: 0,
        }
    }
}

/// What the shell must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentOutput {
    /// Build a report from the driver and send a heartbeat.
    SendHeartbeat,
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
    /// The connection is dead (no acks): drop it and reconnect.
    Disconnect,
    Trace(String),
}

const OUTPUT_QUEUE_MAX: usize = 1 << 16;

pub struct AgentMachine {
    cfg: AgentConfig,
    lease: LeaseKeeper,
    connected: bool,
    last_ack_ms: u64,
    next_heartbeat_ms: u64,
    next_renew_ms: u64,
    next_sync_ms: u64,
    lease_failures: FailureStreak,
    sync_failures: FailureStreak,
    connect_failures: FailureStreak,
    out: VecDeque<AgentOutput>,
}

impl AgentMachine {
    pub fn new(now_ms: u64, cfg: AgentConfig) -> Self {
        let lease = LeaseKeeper::new(
            cfg.lease_duration_ms,
            cfg.lease_renew_every_ms,
            cfg.lease_lead_ms,
        );
        Self {
            lease,
            connected: false,
            last_ack_ms: now_ms,
            next_heartbeat_ms: now_ms,
            next_renew_ms: now_ms,
            next_sync_ms: now_ms + cfg.start_delay_ms + cfg.sync_every_ms,
            lease_failures: FailureStreak::default(),
            sync_failures: FailureStreak::default(),
            connect_failures: FailureStreak::default(),
            out: VecDeque::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    fn push(&mut self, o: AgentOutput) {
        assert!(
            self.out.len() < OUTPUT_QUEUE_MAX,
            "agent output queue unbounded growth"
        );
        self.out.push_back(o);
    }

    pub fn poll_output(&mut self) -> Option<AgentOutput> {
        self.out.pop_front()
    }

    /// The next instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> u64 {
        let mut t = self.next_renew_ms.min(self.next_sync_ms);
        if self.connected {
            t = t.min(self.next_heartbeat_ms);
        }
        if let Some(f) = self.lease.self_fence_at() {
            t = t.min(f);
        }
        t
    }

    /// A connection to the controller is up (hello already sent).
    pub fn handle_connected(&mut self, now_ms: u64) {
        self.connected = true;
        self.last_ack_ms = now_ms;
        self.next_heartbeat_ms = now_ms + self.cfg.heartbeat_interval_ms;
        self.push(AgentOutput::SendHeartbeat);
    }

    pub fn handle_disconnected(&mut self, _now_ms: u64) {
        self.connected = false;
    }

    pub fn handle_frame(&mut self, now_ms: u64, frame: Frame) {
        match frame {
            Frame::HeartbeatAck => self.last_ack_ms = now_ms,
            Frame::Command { id, command } => {
                self.last_ack_ms = now_ms;
                self.push(AgentOutput::RunCommand { id, command });
            }
            other => self.push(AgentOutput::Trace(format!(
                "unexpected frame ignored: {other:?}"
            ))),
        }
    }

    pub fn handle_command_done(&mut self, _now_ms: u64, id: u64, outcome: Result<(), String>) {
        // When disconnected the result is dropped: the controller learns the
        // outcome from the next heartbeat's list of running VMs.
        if self.connected {
            self.push(AgentOutput::Send(Frame::CommandDone { id, outcome }));
        }
    }

    /// A lease renewal requested at `asked_ms` finished.
    pub fn handle_lease_result(&mut self, _now_ms: u64, asked_ms: u64, result: Result<(), String>) {
        if result.is_ok() {
            self.lease.renewed(asked_ms);
        }
        self.streak_trace(|m| &mut m.lease_failures, "DFS lease renewal", &result);
    }

    /// A disk sync finished.
    pub fn handle_sync_result(&mut self, _now_ms: u64, result: Result<(), String>) {
        self.streak_trace(|m| &mut m.sync_failures, "DFS sync", &result);
    }

    /// A connection attempt to the controller finished.
    pub fn handle_connect_result(&mut self, _now_ms: u64, result: Result<(), String>) {
        self.streak_trace(
            |m| &mut m.connect_failures,
            "connecting to the controller",
            &result,
        );
    }

    fn streak_trace(
        &mut self,
        streak: fn(&mut Self) -> &mut FailureStreak,
        what: &str,
        result: &Result<(), String>,
    ) {
        if let Some(line) = streak(self).record(what, result) {
            self.push(AgentOutput::Trace(line));
        }
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.connected && now_ms >= self.next_heartbeat_ms {
            if now_ms.saturating_sub(self.last_ack_ms) > self.cfg.ack_timeout_ms {
                self.connected = false;
                self.push(AgentOutput::Disconnect);
                self.push(AgentOutput::Trace(format!(
                    "no word from the controller for {} ms: reconnecting",
                    now_ms - self.last_ack_ms
                )));
            } else {
                self.push(AgentOutput::SendHeartbeat);
                self.next_heartbeat_ms = next_after(
                    self.next_heartbeat_ms,
                    self.cfg.heartbeat_interval_ms,
                    now_ms,
                );
            }
        }
        if now_ms >= self.next_renew_ms {
            self.push(AgentOutput::RenewLease);
            self.next_renew_ms =
                next_after(self.next_renew_ms, self.cfg.lease_renew_every_ms, now_ms);
        }
        if now_ms >= self.next_sync_ms {
            self.push(AgentOutput::SyncDisks);
            self.next_sync_ms = next_after(self.next_sync_ms, self.cfg.sync_every_ms, now_ms);
        }
        if self.lease.must_self_fence(now_ms) {
            self.push(AgentOutput::SelfFence);
            self.push(AgentOutput::Trace(
                "DFS lease about to lapse: stopping every VM (self-fence)".to_string(),
            ));
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
fn next_after(at: u64, every: u64, now: u64) -> u64 {
    if at > now {
        return at;
    }
    let behind = (now - at) / every + 1;
    at + behind * every
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(m: &mut AgentMachine) -> Vec<AgentOutput> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    #[test]
    fn heartbeats_then_reconnects_without_acks() {
        let mut m = AgentMachine::new(0, AgentConfig::new("hv-01".into(), "c:1".into()));
        m.handle_connected(0);
        assert_eq!(drain(&mut m), vec![AgentOutput::SendHeartbeat]);
        m.handle_timeout(6_000);
        let out = drain(&mut m);
        assert!(out.contains(&AgentOutput::SendHeartbeat), "{out:?}");
        m.handle_timeout(12_000);
        m.handle_frame(12_000, Frame::HeartbeatAck);
        drain(&mut m);
        m.handle_timeout(18_000);
        m.handle_timeout(24_000);
        assert!(!drain(&mut m).contains(&AgentOutput::Disconnect));
        m.handle_timeout(30_000);
        assert!(drain(&mut m).contains(&AgentOutput::Disconnect));
        assert!(!m.is_connected());
    }

    #[test]
    fn self_fences_when_renewals_keep_failing() {
        let mut m = AgentMachine::new(0, AgentConfig::new("hv-01".into(), "c:1".into()));
        m.handle_timeout(0);
        m.handle_lease_result(0, 0, Ok(()));
        for t in [10_000, 20_000] {
            m.handle_timeout(t);
            m.handle_lease_result(t, t, Err("storage down".into()));
        }
        drain(&mut m);
        assert_eq!(m.poll_timeout(), 25_000);
        m.handle_timeout(25_000);
        assert!(drain(&mut m).contains(&AgentOutput::SelfFence));
    }
}
