//! The management network, message by message: a connection per agent
//! dial, seeded latency, FIFO per direction, and the path's condition from
//! ground truth — a cut drops messages and breaks the connection (neither
//! end is told: the agent's ack time-out and the controller's missed
//! heartbeats notice), a stall holds new messages and delivers them in
//! order when the path heals.

use krrish_core::HostId;
use krrish_sim::world::{PathState, SeededRng};
use krrish_wire::Frame;
use std::collections::{BTreeMap, VecDeque};

/// Messages held on stalled paths, at most per host (beyond, the oldest
/// connection state is moot: TCP would have given up).
const HELD_PER_HOST_MAX: usize = 4_096;
/// Connections tracked at once.
const CONNS_MAX: usize = 1 << 20;

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

    /// Sends `msg` on `conn` now over a path in state `path`: Some(when it
    /// arrives, with the message back), or None when it was dropped or is
    /// held until the path heals (the message then stays here).
    pub fn route(
        &mut self,
        now_ms: u64,
        path: PathState,
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
                let i = dir as usize;
                let at = (now_ms + lat).max(c.last_at_ms[i]);
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
