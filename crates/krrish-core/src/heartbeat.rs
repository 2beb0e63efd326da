//! Heartbeat miss counting for one host.
//!
//! A heartbeat is *missed* when none arrived within `interval` of the
//! previous one, plus a grace for delivery jitter. After `misses_max` misses
//! the host is declared offline (design: 3 × 6 s).

/// Settings shared by every host's tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub interval_ms: u64,
    pub misses_max: u32,
    /// Slack for delivery jitter before the first miss counts.
    pub grace_ms: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval_ms: 6_000,
            misses_max: 3,
            grace_ms: 1_000,
        }
    }
}

impl HeartbeatConfig {
    /// Misses counted at `now_ms` for a host last heard at `last_ms`.
    pub fn misses(&self, last_ms: u64, now_ms: u64) -> u32 {
        let silence = now_ms.saturating_sub(last_ms);
        if silence < self.grace_ms + self.interval_ms {
            return 0;
        }
        let misses = (silence - self.grace_ms) / self.interval_ms;
        misses.min(u64::from(u32::MAX)) as u32
    }

    /// When the next miss would be counted (the next instant worth waking).
    pub fn next_miss_at(&self, last_ms: u64, now_ms: u64) -> u64 {
        let next = u64::from(self.misses(last_ms, now_ms)) + 1;
        last_ms + self.grace_ms + next * self.interval_ms
    }

    /// Longest silence before a host is declared offline.
    pub fn detection_ms(&self) -> u64 {
        self.grace_ms + u64::from(self.misses_max) * self.interval_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn three_misses_at_six_seconds_take_nineteen_with_grace() {
        let c = HeartbeatConfig::default();
        assert_eq!(c.misses(0, 6_999), 0);
        assert_eq!(c.misses(0, 7_000), 1);
        assert_eq!(c.misses(0, 18_999), 2);
        assert_eq!(c.misses(0, 19_000), 3);
        assert_eq!(c.detection_ms(), 19_000);
    }

    proptest! {
        #[test]
        fn next_miss_is_where_the_count_grows(last in 0u64..1_000_000, dt in 0u64..100_000) {
            let c = HeartbeatConfig::default();
            let now = last + dt;
            let at = c.next_miss_at(last, now);
            prop_assert!(at > now);
            prop_assert_eq!(c.misses(last, at), c.misses(last, now) + 1);
            prop_assert_eq!(c.misses(last, at - 1), c.misses(last, now));
        }
    }
}
