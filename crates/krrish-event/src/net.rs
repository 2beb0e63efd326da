//! The management network, message by message: a connection per agent
//! dial, seeded latency, FIFO per direction, and the path's condition from
//! ground truth — a cut drops messages and breaks the connection (neither
//! end is told: the agent's ack time-out and the controller's missed
//! heartbeats notice), a stall holds new messages and delivers them in
//! order when the path heals, and a lossy path loses packets one by one:
//! each loss costs the message a TCP retransmission timeout (200 ms,
//! doubling to at most 120 s, as Linux), later messages wait behind it, and
//! fifteen losses in a row break the connection (`tcp_retries2`).

use krrish_core::HostId;
use krrish_sim::world::{PathState, SeededRng};
use krrish_wire::Frame;
use std::collections::{BTreeMap, VecDeque};

/// Messages held on stalled paths, at most per host (beyond, the oldest
/// connection state is moot: TCP would have given up).
const HELD_PER_HOST_MAX: usize = 4_096;
/// Connections tracked at once.
const CONNS_MAX: usize = 1 << 20;
/// TCP's first retransmission timeout, and its ceiling (Linux `TCP_RTO_MIN`,
/// `TCP_RTO_MAX`).
const RTO_MIN_MS: u64 = 200;
const RTO_MAX_MS: u64 = 120_000;
/// Retransmissions of one segment before the connection is given up
/// (Linux `tcp_retries2`).
const RETRIES_MAX: u32 = 15;
/// A SYN's first retransmission timeout and its retries (Linux
/// `TCP_TIMEOUT_INIT`, `tcp_syn_retries`).
const SYN_RTO_MS: u64 = 1_000;
const SYN_RETRIES_MAX: u32 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    ToController,
    ToAgent,
}

/// Unboxed on purpose: a message waits in an event-queue slot that never
/// moves, and a box would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Msg {
    Frame(Frame),
    /// The sender closed the connection (a FIN, ordered after its frames).
    Closed,
}

#[derive(Clone, Debug)]
pub struct Conn {
    pub host: HostId,
    /// The agent incarnation (host boot) and dial epoch at its end.
    pub agent_incarnation: u64,
    pub epoch: u64,
    /// The controller incarnation at its end.
    pub controller_incarnation: u64,
    pub broken: bool,
    /// The last scheduled delivery each way (FIFO).
    last_at_ms: [u64; 2],
}

pub struct Net {
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    held: BTreeMap<HostId, VecDeque<(u64, Dir, Msg)>>,
    rng: SeededRng,
    latency_min_ms: u64,
    latency_max_ms: u64,
}

impl Net {
    pub fn new(seed: u64, latency_min_ms: u64, latency_max_ms: u64) -> Self {
        Self {
            conns: BTreeMap::new(),
            next_conn: 1,
            held: BTreeMap::new(),
            rng: SeededRng::new(seed.rotate_left(29) ^ 0x006e_6574),
            latency_min_ms,
            latency_max_ms: latency_max_ms.max(latency_min_ms),
        }
    }

    pub fn latency_ms(&mut self) -> u64 {
        self.latency_min_ms
            + self
                .rng
                .below(self.latency_max_ms - self.latency_min_ms + 1)
    }

    pub fn open(&mut self, host: HostId, agent_incarnation: u64, epoch: u64, ctl: u64) -> u64 {
        assert!(self.conns.len() < CONNS_MAX, "connections unbounded growth");
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                host,
                agent_incarnation,
                epoch,
                controller_incarnation: ctl,
                broken: false,
                last_at_ms: [0; 2],
            },
        );
        id
    }

    pub fn conn(&self, id: u64) -> Option<&Conn> {
        self.conns.get(&id)
    }

    /// Both ends are gone or have let go: forget it.
    pub fn forget(&mut self, id: u64) {
        self.conns.remove(&id);
    }

    pub fn break_conn(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.broken = true;
        }
    }

    /// How long losses delay a message on a path losing `loss_pct` of its
    /// packets: None when the connection gives up first.
    fn retransmission_delay_ms(&mut self, loss_pct: u8) -> Option<u64> {
        self.resend_delay_ms(loss_pct, RTO_MIN_MS, RETRIES_MAX)
    }

    /// How long losses delay a connection's handshake (the SYN or its
    /// answer lost) on a path losing `loss_pct`: None when the dial gives up.
    pub fn handshake_delay_ms(&mut self, loss_pct: u8) -> Option<u64> {
        self.resend_delay_ms(loss_pct, SYN_RTO_MS, SYN_RETRIES_MAX)
    }

    fn resend_delay_ms(&mut self, loss_pct: u8, first_rto_ms: u64, tries: u32) -> Option<u64> {
        let (mut delay, mut rto) = (0, first_rto_ms);
        // No draw on a clean path: its runs stay what they were.
        if loss_pct == 0 {
            return Some(0);
        }
        for _ in 0..tries {
            if self.rng.below(100) >= u64::from(loss_pct) {
                return Some(delay);
            }
            delay += rto;
            rto = (rto * 2).min(RTO_MAX_MS);
        }
        None
    }

    /// Sends `msg` on `conn` now over a path in state `path` losing
    /// `loss_pct` of its packets: Some(when it arrives, with the message
    /// back), or None when it was dropped or is held until the path heals
    /// (the message then stays here).
    pub fn route(
        &mut self,
        now_ms: u64,
        (path, loss_pct): (PathState, u8),
        conn: u64,
        dir: Dir,
        msg: Msg,
    ) -> Option<(u64, Msg)> {
        let lat = self.latency_ms();
        let c = self.conns.get_mut(&conn)?;
        if c.broken {
            return None;
        }
        match path {
            PathState::Cut => {
                c.broken = true;
                None
            }
            PathState::Stalled => {
                let q = self.held.entry(c.host.clone()).or_default();
                if q.len() >= HELD_PER_HOST_MAX {
                    c.broken = true;
                } else {
                    q.push_back((conn, dir, msg));
                }
                None
            }
            PathState::Ok => {
                let Some(resent) = self.retransmission_delay_ms(loss_pct) else {
                    let c = self.conns.get_mut(&conn).expect("looked up");
                    c.broken = true;
                    return None;
                };
                let c = self.conns.get_mut(&conn).expect("looked up");
                let i = dir as usize;
                let at = (now_ms + lat + resent).max(c.last_at_ms[i]);
                c.last_at_ms[i] = at;
                Some((at, msg))
            }
        }
    }

    /// A message arriving on `conn`: false when the connection broke on the
    /// way (a cut meanwhile) and it is lost.
    pub fn arrives(&mut self, path: PathState, conn: u64) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if path == PathState::Cut {
            c.broken = true;
        }
        !c.broken
    }

    /// Hosts with messages held on a stalled path.
    pub fn stalled_hosts(&self) -> Vec<HostId> {
        self.held.keys().cloned().collect()
    }

    /// The messages held for `host`, in order, to be sent again (its path
    /// healed) or dropped (it was cut).
    pub fn take_held(&mut self, host: &HostId) -> VecDeque<(u64, Dir, Msg)> {
        self.held.remove(host).unwrap_or_default()
    }

    pub fn open_count(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_msg() -> Msg {
        Msg::Closed
    }

    #[test]
    fn a_lossy_path_delays_messages_in_order_and_a_clean_one_does_not_draw() {
        let mut net = Net::new(7, 1, 1);
        let c = net.open(HostId::new("hv-01"), 1, 1, 1);
        // Clean path: latency only.
        let (at, _) = net
            .route(0, (PathState::Ok, 0), c, Dir::ToController, frame_msg())
            .unwrap();
        assert_eq!(at, 1);
        // 50 % loss: some of 200 messages wait for resends (≥ 200 ms), and
        // arrivals never go backwards (one stream, in order).
        let mut last = 0;
        let mut late = 0;
        for i in 0..200u64 {
            let now = 1_000 + i;
            let (at, _) = net
                .route(now, (PathState::Ok, 50), c, Dir::ToController, frame_msg())
                .expect("fifteen losses in a row are too rare at 50 %");
            assert!(at >= last, "message {i} overtook one sent before it");
            if at >= now + 201 {
                late += 1;
            }
            last = at;
        }
        assert!(
            (50..=200).contains(&late),
            "{late} of 200 delayed by a resend"
        );
    }

    #[test]
    fn a_path_losing_nearly_everything_breaks_the_connection() {
        let mut net = Net::new(3, 1, 1);
        let c = net.open(HostId::new("hv-01"), 1, 1, 1);
        let mut broke = false;
        for i in 0..1_000 {
            if net
                .route(i, (PathState::Ok, 99), c, Dir::ToAgent, frame_msg())
                .is_none()
            {
                broke = true;
                break;
            }
        }
        assert!(broke);
        assert!(net.conn(c).unwrap().broken);
        assert_eq!(net.handshake_delay_ms(0), Some(0));
    }
}
