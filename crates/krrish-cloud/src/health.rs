//! Health-check results in a row, counted towards two thresholds: what
//! load-balancer backends and RDB members share. A target goes healthy
//! after `healthy_at` good checks in a row and unhealthy after
//! `unhealthy_at` failed ones (hysteresis: one result never flips it).

use serde::{Deserialize, Serialize};

/// The consecutive results of one target's checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCount {
    /// Good checks in a row (at most the healthy threshold).
    pub passes: u32,
    /// Failed checks in a row (at most the unhealthy threshold).
    pub failures: u32,
    /// Why the latest check failed (none once one passes).
    pub failing: Option<String>,
}

/// A threshold one check reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reached {
    Healthy,
    Unhealthy,
}

impl CheckCount {
    /// Counts one result; the threshold it has reached, if any (the
    /// target is then healthy, or unhealthy — it may already have been).
    pub fn record(
        &mut self,
        result: Result<(), String>,
        healthy_at: u32,
        unhealthy_at: u32,
    ) -> Option<Reached> {
        match result {
            Ok(()) => {
                self.failures = 0;
                self.failing = None;
                self.passes = (self.passes + 1).min(healthy_at);
                (self.passes >= healthy_at).then_some(Reached::Healthy)
            }
            Err(why) => {
                self.passes = 0;
                self.failures = (self.failures + 1).min(unhealthy_at);
                self.failing = Some(why);
                (self.failures >= unhealthy_at).then_some(Reached::Unhealthy)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_reached_only_by_results_in_a_row() {
        let mut c = CheckCount::default();
        assert_eq!(c.record(Err("down".into()), 2, 3), None);
        assert_eq!(c.record(Err("down".into()), 2, 3), None);
        assert_eq!(c.record(Ok(()), 2, 3), None, "a pass resets the failures");
        assert_eq!((c.passes, c.failures, c.failing.as_deref()), (1, 0, None));
        for _ in 0..2 {
            c.record(Err("down".into()), 2, 3);
        }
        assert_eq!(c.record(Err("gone".into()), 2, 3), Some(Reached::Unhealthy));
        assert_eq!(c.failing.as_deref(), Some("gone"));
        assert_eq!(c.record(Err("gone".into()), 2, 3), Some(Reached::Unhealthy));
        assert_eq!(c.failures, 3, "counts stop at the threshold");
        assert_eq!(c.record(Ok(()), 2, 3), None);
        assert_eq!(c.record(Ok(()), 2, 3), Some(Reached::Healthy));
    }
}
