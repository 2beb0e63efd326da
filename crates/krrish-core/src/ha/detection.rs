//! Dead or cut off: what a silent host is. A host silent on the management
//! network for the whole detection window is judged with a second,
//! independent channel — its DFS lease renewals over the storage network,
//! which the DFS reports — before anything is done to it:
//!
//! - renewals stopped too (none for three renewal intervals) → **dead**:
//!   fence, then fail over;
//! - renewals go on → **isolated**: alive, its VMs left running (the default
//!   isolation response), or fenced after one more heartbeat interval under
//!   `power-off-and-restart`;
//! - the DFS cannot be read → fenced as before, unless that would be a
//!   fencing storm — but only once every read asked from the verdict on,
//!   for two renewal intervals, has failed. A read that failed earlier says
//!   nothing about now: the DFS may have come back a moment before the
//!   verdict, and the host with it. And a read asked while the service is
//!   down fails only at its time-out, when the service (and the host's
//!   renewals) may be back: a service gone across the verdict gets the same
//!   two renewal intervals to come back as a restarted one gets to hear
//!   from every live host;
//! - the lease service (re)started less than two renewal intervals before
//!   its answer → no news either: while it was away no host could renew,
//!   and it lists a host only once it renews again — unless the host has
//!   not been seen renewing for longer than a lease (its lease lapsed).
//!
//! Fencing without independent evidence of death is bounded: none while more
//! than a third of the hosts are silent at once (the fault is then most
//! likely at the controller's own end), and at most `fence_storm_max` within
//! `fence_storm_window_ms`. Held hosts stay isolated, VMs running, until the
//! evidence changes.

use super::{FenceError, HaManager, Liveness, Notice};
use crate::ids::HostId;
use crate::lease::LeaseRenewals;
use std::collections::VecDeque;
use std::fmt;

/// What to do with a host that is cut off from management but alive on the
/// DFS (vSphere's host isolation response), per cluster.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationResponse {
    /// No fence, VMs stay; the host rejoins with no action.
    #[default]
    LeaveRunning,
    /// Fence (once isolated for one more heartbeat interval), then fail over.
    PowerOffAndRestart,
}

impl IsolationResponse {
    pub fn name(self) -> &'static str {
        match self {
            IsolationResponse::LeaveRunning => "leave-running",
            IsolationResponse::PowerOffAndRestart => "power-off-and-restart",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        [Self::LeaveRunning, Self::PowerOffAndRestart]
            .into_iter()
            .find(|r| r.name() == s)
    }
}

impl fmt::Display for IsolationResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the DFS says about a silent host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DfsEvidence {
    /// It renewed its lease within three renewal intervals: alive.
    Renewing { ago_ms: u64 },
    /// No renewal for longer (or never): it cannot be writing.
    Silent { ago_ms: Option<u64> },
    /// No fresh reading of the DFS.
    Unknown,
}

impl fmt::Display for DfsEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |ms: u64| super::secs(ms);
        match self {
            DfsEvidence::Renewing { ago_ms } => {
                write!(f, "DFS lease renewed {} ago: alive", s(*ago_ms))
            }
            DfsEvidence::Silent { ago_ms: Some(ms) } => {
                write!(f, "no DFS lease renewal for {}", s(*ms))
            }
            DfsEvidence::Silent { ago_ms: None } => write!(f, "no DFS lease renewal seen"),
            DfsEvidence::Unknown => write!(f, "DFS renewals unknown"),
        }
    }
}

/// Reading the DFS's renewal records: only while some host is silent. Each
/// read is tagged with the time it was asked (reads are asked at distinct
/// instants, so the tag is unique), because answers can overtake each
/// other: a read asked during an outage fails seconds after one asked once
/// the DFS is back has succeeded.
///
/// Reads are probes, as a monitor's: asked on their own (spread) schedule,
/// each given up on its own deadline, a few in flight at once. While reads
/// fail they are asked four times as often, so "unreadable for 10 s" rests
/// on a dozen failed reads, not on three or four — three reads in a row
/// each landing in a flapping service's down moments fenced a healthy host
/// (turmoil, where a 50 ms outage lasts one 100 ms tick).
#[derive(Clone, Debug, Default)]
pub(super) struct DfsReads {
    /// When the newest successful read was asked.
    last_read_ms: Option<u64>,
    /// When the newest read that failed (or was given up) was asked.
    last_failed_ms: Option<u64>,
    /// When the oldest failed read asked after the newest successful one
    /// was asked: the DFS has been unreadable since then, as far as known.
    failing_since_ms: Option<u64>,
    /// How many reads asked from `failing_since_ms` on have failed.
    failed_in_streak: u32,
    /// The reads asked and not yet answered, by their tags, oldest first
    /// (at most [`DFS_READS_IN_FLIGHT_MAX`]).
    in_flight: VecDeque<u64>,
    next_read_ms: u64,
    /// The last read failed (reported once per streak).
    failing: bool,
    /// From the newest answer taken: when it came, and since when the
    /// service had been listening (a restarted service lists a host only
    /// once it renews again).
    answered_ms: Option<u64>,
    listening_since_ms: Option<u64>,
    /// The end of the newest stretch of failed reads that lasted a renewal
    /// interval or more: renewals made then, in a process that may have
    /// restarted since, were never seen.
    blind_until_ms: Option<u64>,
}

/// Reads unanswered at once, at most: a read is given up two to four
/// seconds after it was asked, and failing reads are asked every quarter
/// to three quarters of a second, so sixteen cover an unreachable DFS.
const DFS_READS_IN_FLIGHT_MAX: usize = 16;

/// Failed reads, at least, before the DFS counts as unreadable (besides
/// the time they span): with reads spread, a service up most of the time
/// fails that many in a row only as often as it is down to the power of
/// this.
const DFS_FAILED_READS_MIN: u32 = 8;

impl HaManager {
    /// The DFS answered the read tagged `read` (see
    /// [`super::Command::ReadLeaseRenewals`]): `(host, ms since its last
    /// renewal)` for every host that renewed since the service started, and
    /// how long it has been listening.
    pub fn handle_lease_renewals(
        &mut self,
        now_ms: u64,
        read: u64,
        result: Result<LeaseRenewals, FenceError>,
    ) {
        let was_in_flight = self.dfs.in_flight.iter().position(|&r| r == read);
        if let Some(i) = was_in_flight {
            self.dfs.in_flight.remove(i);
        }
        match result {
            // An older answer than one already taken is no news.
            Ok(_) if self.dfs.last_read_ms.is_some_and(|at| at > read) => {}
            Ok(LeaseRenewals {
                hosts: ages,
                listening_for_ms,
                power_on,
            }) => {
                self.dfs_read_succeeded(read);
                self.dfs.failing = false;
                self.dfs.answered_ms = Some(now_ms);
                self.dfs.listening_since_ms = Some(now_ms.saturating_sub(listening_for_ms));
                // A renewal time only moves forward, and a host missing
                // from a read is no news: a lease service that restarted
                // lists a host only once it renews again (found in the lab:
                // a restart made a live, isolated host look dead and it was
                // fenced). Its last known renewal keeps ageing instead.
                for (host, ago) in ages {
                    if let Some(h) = self.hosts.get_mut(&host) {
                        let at = now_ms.saturating_sub(ago);
                        h.dfs_renewed_at_ms =
                            Some(h.dfs_renewed_at_ms.map_or(at, |was| was.max(at)));
                    }
                }
                for (host, list) in &power_on {
                    self.settle_in_doubt_by_power_on(now_ms, read, host, list);
                }
            }
            Err(why) => {
                // Given up already: counted failed then.
                if was_in_flight.is_some() {
                    self.dfs_read_failed(now_ms, read);
                }
                if !self.dfs.failing {
                    self.dfs.failing = true;
                    self.notice(
                        now_ms,
                        Notice::DfsUnreadable {
                            why: why.to_string(),
                        },
                    );
                }
            }
        }
        // A silent host may now be judged.
        self.handle_timeout(now_ms);
    }

    /// The read asked at `read` failed (answered so, or given up at
    /// `now_ms`): the next is asked sooner, and the streak grows.
    fn dfs_read_failed(&mut self, now_ms: u64, read: u64) {
        self.dfs.last_failed_ms = Some(self.dfs.last_failed_ms.map_or(read, |t| t.max(read)));
        if self.dfs.last_read_ms < Some(read) {
            self.dfs.failing_since_ms =
                Some(self.dfs.failing_since_ms.map_or(read, |t| t.min(read)));
            self.dfs.failed_in_streak = self.dfs.failed_in_streak.saturating_add(1);
        }
        let every = self.config.dfs_read_every_ms();
        let sooner = now_ms + crate::timings::jittered(every / 4, !read);
        self.dfs.next_read_ms = self.dfs.next_read_ms.min(sooner);
    }

    /// A read asked at `read` succeeded: failures asked before it are over.
    /// (One asked later stays a failure; the newest stands for it, which
    /// only starts the streak later.)
    fn dfs_read_succeeded(&mut self, read: u64) {
        let renew_every = self.config.agent_timings().lease_renew_every_ms;
        if let (Some(from), Some(newest)) = (self.dfs.failing_since_ms, self.dfs.last_failed_ms) {
            if newest < read && newest >= from + renew_every {
                self.dfs.blind_until_ms = self.dfs.blind_until_ms.max(Some(newest));
            }
        }
        self.dfs.last_read_ms = Some(read);
        self.dfs.failing_since_ms = self.dfs.last_failed_ms.filter(|&failed| failed > read);
        self.dfs.failed_in_streak = u32::from(self.dfs.failing_since_ms.is_some());
    }

    /// Whether every read asked from `since_ms` (or from when the reads
    /// began to fail, if later) for two renewal intervals has failed, and
    /// enough of them to be sure: the DFS is known unreadable since then,
    /// for long enough that a live host would have been seen renewing had
    /// the service come back.
    fn dfs_unreadable_since(&self, since_ms: u64) -> bool {
        let long_enough = self.config.agent_timings().dfs_listen_needed_ms();
        match (self.dfs.failing_since_ms, self.dfs.last_failed_ms) {
            (Some(from), Some(newest)) => {
                newest >= from.max(since_ms) + long_enough
                    && self.dfs.failed_in_streak >= DFS_FAILED_READS_MIN
            }
            _ => false,
        }
    }

    /// What the DFS says about `host` now.
    pub fn dfs_evidence(&self, now_ms: u64, host: &HostId) -> DfsEvidence {
        let fresh_ms = 2 * self.config.dfs_read_every_ms();
        match self.dfs.last_read_ms {
            Some(at) if now_ms.saturating_sub(at) <= fresh_ms => {}
            _ => return DfsEvidence::Unknown,
        }
        let silent_after = self.config.agent_timings().dfs_silent_after_ms();
        let h = self.hosts.get(host);
        let renewed = h.and_then(|h| h.dfs_renewed_at_ms);
        if let Some(at) = renewed.filter(|&at| now_ms.saturating_sub(at) <= silent_after) {
            return DfsEvidence::Renewing {
                ago_ms: now_ms.saturating_sub(at),
            };
        }
        let silent = DfsEvidence::Silent {
            ago_ms: renewed.map(|at| now_ms.saturating_sub(at)),
        };
        let Some(answered) = self.dfs.answered_ms else {
            return DfsEvidence::Unknown;
        };
        // Not seen alive (renewing, or heartbeating if never seen
        // renewing) for longer than a lease by the newest answer itself,
        // from a service that had listened for a renewal interval and a
        // retry (a live host renews there in that time): its lease has
        // lapsed, and a service restarting too often for two intervals is
        // no excuse (found by an adversary: a dead host was never fenced
        // while the lease service restarted every 8 s — nor, never seen
        // renewing, when the restarts began before the first read). One
        // restarting faster than that still tells nothing: a live host's
        // renewals land in processes gone before they are read.
        // Counted from no earlier than the end of the newest long stretch
        // the controller could not read at all: renewals then went unseen,
        // and a restart since lost them (found by an adversary: 25 s
        // unreadable, a restart, a 4 s storage blip — a cut-off host whose
        // real gap was 6 s read as unseen for 36 s).
        let alive_at = renewed
            .max(h.map(|h| h.last_heartbeat_ms))
            .max(self.dfs.blind_until_ms);
        if alive_at.is_some_and(|at| answered.saturating_sub(at) > self.config.lease_duration_ms)
            && self.dfs_listened_for_one_renewal()
        {
            return silent;
        }
        // Missing or stale in a service that has not listened for two
        // renewals' time: no news (found by an adversary: a 5 s outage
        // of the lease service during a 15 s cut got the isolated,
        // healthy host fenced before its first renewal after).
        if self.dfs_listened_too_briefly() {
            return DfsEvidence::Unknown;
        }
        // Stale by the newest answer itself, not by a figure aged since
        // (the host may have renewed after it was read: a rebooted,
        // renewing host was fenced on a read 2.8 s old) — and counted from
        // no earlier than the answering service's start: a renewal just
        // before a restart is lost with the process, unread (found by an
        // adversary: a restart 30 ms after a cut-off host renewed, then a
        // 6 s storage blip, read as 15 s of silence).
        let listening_since = self.dfs.listening_since_ms.unwrap_or(0);
        let from = renewed.unwrap_or(0).max(listening_since);
        if answered.saturating_sub(from) > silent_after {
            silent
        } else {
            DfsEvidence::Unknown
        }
    }

    /// The lease service of the newest answer had been listening for less
    /// than two renewal intervals then: a live host may not have renewed
    /// there yet.
    fn dfs_listened_too_briefly(&self) -> bool {
        !self.dfs_listened_for(self.config.agent_timings().dfs_listen_needed_ms())
    }

    /// The lease service of the newest answer had been listening for a
    /// renewal interval and a retry then: every live host with a working
    /// storage path had renewed there.
    fn dfs_listened_for_one_renewal(&self) -> bool {
        let t = self.config.agent_timings();
        self.dfs_listened_for(t.lease_renew_every_ms + t.lease_retry_ms())
    }

    /// The lease service of the newest answer had been listening for at
    /// least `ms` then (a service that does not say counts as long).
    fn dfs_listened_for(&self, ms: u64) -> bool {
        match (self.dfs.answered_ms, self.dfs.listening_since_ms) {
            (Some(answered), Some(since)) => answered.saturating_sub(since) >= ms,
            _ => true,
        }
    }

    /// Some host is silent: the DFS is worth reading.
    fn wants_dfs_reads(&self) -> bool {
        self.hosts.values().any(|h| {
            h.liveness.is_silent()
                || matches!(
                    h.liveness,
                    Liveness::Fencing(super::FenceStage::RebootProof { .. })
                )
        })
    }

    /// Asks the DFS for its renewals when a read is due, after giving up
    /// the reads past their deadlines (each counts as failed).
    pub(super) fn read_dfs_if_due(&mut self, now_ms: u64) {
        self.give_up_dfs_reads(now_ms);
        if !self.wants_dfs_reads() || now_ms < self.dfs.next_read_ms {
            return;
        }
        self.read_dfs_now(now_ms);
    }

    /// Gives up every read unanswered past its deadline.
    fn give_up_dfs_reads(&mut self, now_ms: u64) {
        let mut kept = VecDeque::with_capacity(self.dfs.in_flight.len());
        for since in std::mem::take(&mut self.dfs.in_flight) {
            if now_ms < self.dfs_give_up_at(since) {
                kept.push_back(since);
            } else {
                self.dfs_read_failed(now_ms, since);
            }
        }
        self.dfs.in_flight = kept;
    }

    /// Asks the DFS now, unless a read is unanswered and the next is not
    /// yet due (a verdict asks at once, not once per answer), or too many
    /// are unanswered.
    fn read_dfs_now(&mut self, now_ms: u64) {
        self.give_up_dfs_reads(now_ms);
        if !self.dfs.in_flight.is_empty() && now_ms < self.dfs.next_read_ms {
            return;
        }
        if self.dfs.in_flight.len() >= DFS_READS_IN_FLIGHT_MAX {
            // Due again when one is given up, not before: a wake that is
            // already due would come back at once.
            let give_ups = self.dfs.in_flight.iter().map(|&s| self.dfs_give_up_at(s));
            self.dfs.next_read_ms = give_ups.min().expect("in flight");
            return;
        }
        if self
            .dfs
            .in_flight
            .back()
            .is_some_and(|&last| last >= now_ms)
        {
            // Asked this very instant (the tag must stay unique): the
            // next is due on the usual schedule, set then.
            return;
        }
        self.dfs.in_flight.push_back(now_ms);
        // Spread, not every `every` exactly: reads at a fixed spacing all
        // fell into the down moments of a service flapping on a period
        // that divides it, and "every read for 10 s failed" fenced a
        // healthy host while the DFS was up 90 % of the time (found by an
        // adversary). While reads fail, four times as often.
        let every = self.config.dfs_read_every_ms();
        let every = if self.dfs.failing_since_ms.is_some() {
            every / 4
        } else {
            every
        };
        self.dfs.next_read_ms = now_ms + crate::timings::jittered(every, now_ms);
        self.command(super::Command::ReadLeaseRenewals { read: now_ms });
    }

    /// When the read asked at `since_ms` is given up unanswered: after one
    /// read interval and up to one more, spread like the reads themselves
    /// (reads asked at each give-up of the one before kept a fixed 2 s
    /// spacing, and fell into a flapping service's down moments each time).
    fn dfs_give_up_at(&self, since_ms: u64) -> u64 {
        let every = self.config.dfs_read_every_ms();
        since_ms + every / 2 + crate::timings::jittered(every, !since_ms)
    }

    /// When a DFS read will be due, or the oldest unanswered one given up.
    pub(super) fn dfs_read_wake(&self) -> Option<u64> {
        let give_ups = self.dfs.in_flight.iter().map(|&s| self.dfs_give_up_at(s));
        let next = self.wants_dfs_reads().then_some(self.dfs.next_read_ms);
        next.into_iter().chain(give_ups).min()
    }

    /// When an isolated host (since `since_ms`) is next worth judging.
    pub(super) fn isolation_wake(&self, since_ms: u64, dfs_alive: bool) -> Option<u64> {
        let confirm = since_ms + self.isolation_wait_ms(dfs_alive);
        (confirm > self.last_timeout_ms).then_some(confirm)
    }

    /// How long an isolated host stays so before it is fenced: alive on the
    /// DFS, the isolation response's delay; without evidence (held back),
    /// one more heartbeat interval.
    fn isolation_wait_ms(&self, dfs_alive: bool) -> u64 {
        if dfs_alive {
            self.config.isolation_response_delay_ms
        } else {
            self.config.heartbeat.interval_ms
        }
    }

    /// `host` has been silent on management for the whole detection window
    /// (or is isolated and being judged again): dead, isolated, or held.
    pub(super) fn judge_silent(&mut self, now_ms: u64, host: &HostId, silent_ms: u64) {
        if self.silent_in_maintenance(now_ms, host) {
            return;
        }
        let evidence = self.dfs_evidence(now_ms, host);
        if matches!(evidence, DfsEvidence::Silent { .. }) {
            self.declare_offline(now_ms, host, silent_ms, evidence);
            return;
        }
        let h = &self.hosts[host];
        // Alive: renewing now, or isolated because it was renewing and not
        // seen to stop since. A controller that lost its own view of the DFS
        // has learned nothing about the host: it keeps what it knew, and
        // fences only once the DFS answers that the renewals stopped.
        let alive = match evidence {
            DfsEvidence::Renewing { .. } => true,
            DfsEvidence::Silent { .. } => false,
            DfsEvidence::Unknown => matches!(
                h.liveness,
                Liveness::Isolated {
                    dfs_alive: true,
                    ..
                }
            ),
        };
        let isolated_since = match h.liveness {
            Liveness::Isolated { since_ms, .. } => Some(since_ms),
            _ => None,
        };
        let response = self.config.isolation_response;
        let confirmed = isolated_since.is_some_and(|s| now_ms >= s + self.isolation_wait_ms(alive));
        let wants_fence = if alive {
            response == IsolationResponse::PowerOffAndRestart && confirmed
        } else {
            // No evidence either way: fence as before, at once — or, once
            // held back, after one more silent interval.
            isolated_since.is_none() || confirmed
        };
        if wants_fence && !alive {
            // Fencing without evidence needs a read asked since the verdict
            // came due to have failed; until then the host is judged again
            // on each answer.
            let due_ms = match isolated_since {
                Some(since_ms) => since_ms + self.config.heartbeat.interval_ms,
                None => h.silence_start_ms() + self.config.heartbeat.detection_ms(),
            };
            if !self.dfs_unreadable_since(due_ms.min(now_ms)) {
                if isolated_since.is_none() {
                    // Counted out; the read's answer (or its giving up)
                    // wakes the judgement, or else the next miss. The
                    // misses as counted now, not the most it takes: a
                    // wake is then always ahead (with the most, a judgement
                    // at a later miss woke itself at the same instant for
                    // ever).
                    let hb = self.config.heartbeat;
                    let start = self.hosts[host].silence_start_ms();
                    let misses = hb.misses(start, now_ms).max(hb.misses_max);
                    self.hosts.get_mut(host).expect("caller checked").liveness =
                        Liveness::Suspect { misses };
                }
                // A service too young to tell is read again on the usual
                // schedule, not at once after each answer.
                if self.dfs_listened_too_briefly() {
                    self.read_dfs_if_due(now_ms);
                } else {
                    self.read_dfs_now(now_ms);
                }
                return;
            }
        }
        if wants_fence && self.may_fence_without_evidence(now_ms, host) {
            self.declare_offline(now_ms, host, silent_ms, evidence);
            return;
        }
        match isolated_since {
            None => {
                self.hosts.get_mut(host).expect("caller checked").liveness = Liveness::Isolated {
                    since_ms: now_ms,
                    dfs_alive: alive,
                };
                self.notice(
                    now_ms,
                    Notice::HostIsolated {
                        host: host.clone(),
                        silent_ms,
                        evidence,
                        response,
                    },
                );
            }
            Some(since_ms) => {
                // A fence held back is re-armed: once the storm is over the
                // host must stay silent one more interval to be fenced (the
                // last hosts to reconnect after a switch heals are not
                // fenced for being last).
                let since_ms = if wants_fence { now_ms } else { since_ms };
                self.hosts.get_mut(host).expect("caller checked").liveness = Liveness::Isolated {
                    since_ms,
                    dfs_alive: alive,
                };
            }
        }
    }

    /// Whether one more host may be fenced with no proof that it is dead;
    /// records the fence if so. Says why not, once per episode.
    fn may_fence_without_evidence(&mut self, now_ms: u64, host: &HostId) -> bool {
        let (silent, of) = self.silent_share(Some(host));
        let window = self.config.fence_storm_window_ms;
        while self
            .evidenceless_fences
            .front()
            .is_some_and(|&t| t + window <= now_ms)
        {
            self.evidenceless_fences.pop_front();
        }
        let why = if is_mass_silence(silent, of) {
            Some(
                "more than a third of the hosts: the controller or its switch is the likely fault"
                    .to_string(),
            )
        } else if self.evidenceless_fences.len() >= self.config.fence_storm_max as usize {
            Some(format!(
                "{} hosts already fenced without evidence within {}",
                self.evidenceless_fences.len(),
                super::secs(window)
            ))
        } else {
            None
        };
        match why {
            Some(why) => {
                if !self.storm_reported {
                    self.storm_reported = true;
                    self.notice(now_ms, Notice::FencingHeld { silent, of, why });
                }
                false
            }
            None => {
                assert!(
                    self.evidenceless_fences.len() < 1 << 16,
                    "fence history unbounded"
                );
                self.evidenceless_fences.push_back(now_ms);
                true
            }
        }
    }

    /// How many hosts are silent (counting `also`, being judged), of those
    /// up or silent.
    fn silent_share(&self, also: Option<&HostId>) -> (usize, usize) {
        let silent = self
            .hosts
            .values()
            .filter(|h| h.liveness.is_silent() || Some(&h.spec.id) == also)
            .count();
        let of = self
            .hosts
            .values()
            .filter(|h| h.liveness == Liveness::Up || h.liveness.is_silent())
            .count();
        (silent, of)
    }

    /// So many hosts silent at once that the fault is likely the
    /// controller's own: no single host's isolation can be told apart.
    pub(super) fn mass_silence(&self) -> bool {
        let (silent, of) = self.silent_share(None);
        is_mass_silence(silent, of)
    }

    /// A mass silence just ended (a host rejoined): every host still
    /// silent is judged from now on as if it had gone silent now. Time
    /// spent silent with most of the cluster says nothing about that host,
    /// so the last hosts to reconnect after a switch heals — or one cut
    /// again right after — get the whole detection window and then the
    /// whole isolation delay before any fence, as a host cut on its own.
    /// Not a host the DFS shows dead (its renewals stopped): that evidence
    /// is its own.
    pub(super) fn restart_isolation_clocks(&mut self, now_ms: u64) {
        let detected_ms = now_ms + self.config.heartbeat.detection_ms();
        let ids: Vec<HostId> = self
            .hosts
            .iter()
            .filter(|(id, h)| {
                h.liveness.is_silent()
                    && !matches!(self.dfs_evidence(now_ms, id), DfsEvidence::Silent { .. })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let h = self.hosts.get_mut(&id).expect("listed");
            match &mut h.liveness {
                Liveness::Isolated { since_ms, .. } => *since_ms = (*since_ms).max(detected_ms),
                suspect => {
                    *suspect = Liveness::Suspect { misses: 0 };
                    h.silence_counted_from_ms = now_ms;
                }
            }
        }
    }

    /// Forget a held storm once no host is silent any more.
    pub(super) fn storm_over_check(&mut self) {
        if self.storm_reported && !self.wants_dfs_reads() {
            self.storm_reported = false;
        }
    }
}

/// More than a third of the hosts (and at least two) silent at once.
fn is_mass_silence(silent: usize, of: usize) -> bool {
    silent >= 2 && silent * 3 > of
}
