//! The agent's timings, derived from the two numbers the HA design fixes
//! (the heartbeat interval and the DFS lease length), so that no default is
//! written twice: the controller judges silence with the same numbers the
//! agents keep.

/// How often an agent heartbeats, renews, syncs and redials, and how soon it
/// gives up on a silent link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentTimings {
    pub heartbeat_interval_ms: u64,
    /// A heartbeat not acknowledged within this long means the link is dead:
    /// drop it and dial again (well inside one detection window).
    pub ack_timeout_ms: u64,
    /// A dial that has not connected within this long has failed.
    pub connect_timeout_ms: u64,
    /// Back-off between failed dials: from min, doubling, capped at max.
    pub reconnect_backoff_min_ms: u64,
    pub reconnect_backoff_max_ms: u64,
    pub lease_duration_ms: u64,
    /// DFS renewals: the storage network's heartbeat, which the controller
    /// reads back from the DFS as a second channel.
    pub lease_renew_every_ms: u64,
    /// Stop VMs this long before the lease could lapse.
    pub lease_lead_ms: u64,
    pub sync_every_ms: u64,
}

impl AgentTimings {
    /// The design's derivation: with a 6 s heartbeat and a 30 s lease, a
    /// 2 s ack timeout, 1 s dial timeout, 250 ms–1 s back-off, a renewal
    /// every 5 s, self-fencing 5 s before expiry, a disk sync every 10 s.
    pub fn derive(heartbeat_interval_ms: u64, lease_duration_ms: u64) -> Self {
        let hb = heartbeat_interval_ms.max(1);
        Self {
            heartbeat_interval_ms: hb,
            ack_timeout_ms: (hb / 3).max(1),
            connect_timeout_ms: (hb / 6).max(1),
            reconnect_backoff_min_ms: (hb / 24).max(1),
            reconnect_backoff_max_ms: (hb / 6).max(1),
            lease_duration_ms,
            lease_renew_every_ms: (lease_duration_ms / 6).max(1),
            lease_lead_ms: (lease_duration_ms / 6).max(1),
            sync_every_ms: (lease_duration_ms / 3).max(1),
        }
    }

    /// The same timings on a network whose round trip can take up to
    /// `round_trip_max_ms`: an ack or a dial is never given up on before an
    /// answer could have come back (with a margin of half a round trip).
    pub fn for_round_trip(self, round_trip_max_ms: u64) -> Self {
        let floor = round_trip_max_ms + round_trip_max_ms / 2;
        Self {
            ack_timeout_ms: self.ack_timeout_ms.max(floor),
            connect_timeout_ms: self.connect_timeout_ms.max(floor),
            ..self
        }
    }

    /// A host whose DFS renewals stopped this long ago is no longer writing:
    /// three renewals missed. One renewal interval plus a storage blip of up
    /// to about eight seconds (the retries land within 1.5 s of its end);
    /// with two, a 4 s blip of a cut-off host's storage bond left a 10.4 s
    /// gap and the healthy host was fenced (found by an adversary).
    pub fn dfs_silent_after_ms(&self) -> u64 {
        3 * self.lease_renew_every_ms
    }

    /// How long a (re)started lease service, or an unreadable one, must be
    /// so before what it lacks is news: two renewal intervals, in which
    /// every live host with a working storage path renews (a failed
    /// renewal is retried within 1.5 s).
    pub fn dfs_listen_needed_ms(&self) -> u64 {
        2 * self.lease_renew_every_ms
    }

    /// After a failed renewal the next is asked this soon, not a whole
    /// renewal interval later: a lease service that flaps (down a second
    /// in every five) must not catch every renewal of every host down and
    /// let their leases lapse while it is up most of the time (found by
    /// an adversary: the whole cluster self-fenced).
    pub fn lease_retry_ms(&self) -> u64 {
        (self.lease_renew_every_ms / 5).max(1)
    }
}

/// `base_ms` spread over [base/2, 3·base/2), by `salt`: deterministic (one
/// seed, one run), but no fixed period. Retries and reads asked at a fixed
/// spacing lock in phase with an outage of a period that divides it — a
/// service down 51 ms in every 510 caught every 1.02 s retry of every host
/// (found by an adversary) — while spread ones each land down only as
/// often as the service is down.
pub fn jittered(base_ms: u64, salt: u64) -> u64 {
    let base = base_ms.max(2);
    base / 2 + mix64(salt) % base
}

/// splitmix64's mixing: neighbouring inputs give unrelated outputs.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Default for AgentTimings {
    fn default() -> Self {
        Self::derive(6_000, 30_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_defaults() {
        let t = AgentTimings::default();
        assert_eq!(t.ack_timeout_ms, 2_000);
        assert_eq!(t.connect_timeout_ms, 1_000);
        assert_eq!(t.reconnect_backoff_min_ms, 250);
        assert_eq!(t.reconnect_backoff_max_ms, 1_000);
        assert_eq!(t.lease_renew_every_ms, 5_000);
        assert_eq!(t.dfs_silent_after_ms(), 15_000);
        assert_eq!(t.dfs_listen_needed_ms(), 10_000);
        // The lease keeper's precondition holds.
        assert!(t.lease_renew_every_ms + t.lease_lead_ms < t.lease_duration_ms);
        // Reconnecting takes a small part of one 19 s detection window.
        assert!(t.ack_timeout_ms + t.connect_timeout_ms + t.reconnect_backoff_max_ms < 6_000);
    }
}
