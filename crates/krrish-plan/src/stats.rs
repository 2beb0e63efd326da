//! Estimates with 95 % confidence intervals, and a mergeable RTO histogram.

use serde::Serialize;

/// A Monte Carlo estimate: `mean ± ci95` (half-width of the 95 % interval).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci95: f64,
}

impl Estimate {
    pub fn low(&self) -> f64 {
        self.mean - self.ci95
    }
    pub fn high(&self) -> f64 {
        self.mean + self.ci95
    }
}

const Z95: f64 = 1.959_963_984_540_054;

/// Mean of independent per-trial values with a normal-approximation 95 %
/// interval (trials are many; each is itself an average over years).
pub fn mean_ci(xs: &[f64]) -> Estimate {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return Estimate::default();
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return Estimate {
            mean,
            ci95: f64::INFINITY,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Estimate {
        mean,
        ci95: Z95 * (var / n).sqrt(),
    }
}

/// Ratio of sums Σnum / Σden over trials, with a delta-method 95 % interval.
pub fn ratio_ci(num: &[f64], den: &[f64]) -> Estimate {
    assert_eq!(num.len(), den.len());
    let n = num.len() as f64;
    let (sn, sd): (f64, f64) = (num.iter().sum(), den.iter().sum());
    if sd == 0.0 || num.len() < 2 {
        return Estimate {
            mean: 0.0,
            ci95: f64::INFINITY,
        };
    }
    let r = sn / sd;
    let dbar = sd / n;
    let var = num
        .iter()
        .zip(den)
        .map(|(x, y)| (x - r * y).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    Estimate {
        mean: r,
        ci95: Z95 * (var / n).sqrt() / dbar,
    }
}

/// RTO samples: the nominal failover time counted exactly (most samples),
/// the rest in log-spaced bins (1.2 % wide) from the nominal value up.
#[derive(Clone, Debug)]
pub struct RtoHistogram {
    nominal_s: f64,
    nominal: u64,
    bins: Vec<u64>,
}

const BINS: usize = 1_600;
const BIN_RATIO: f64 = 1.012;

impl RtoHistogram {
    pub fn new(nominal_s: f64) -> Self {
        Self {
            nominal_s,
            nominal: 0,
            bins: vec![0; BINS],
        }
    }

    pub fn add(&mut self, rto_s: f64) {
        if rto_s <= self.nominal_s * (1.0 + 1e-9) {
            self.nominal += 1;
            return;
        }
        let i = ((rto_s / self.nominal_s).ln() / BIN_RATIO.ln()).floor() as usize;
        self.bins[i.min(BINS - 1)] += 1;
    }

    pub fn merge(&mut self, other: &RtoHistogram) {
        self.nominal += other.nominal;
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            *a += b;
        }
    }

    pub fn count(&self) -> u64 {
        self.nominal + self.bins.iter().sum::<u64>()
    }

    /// The `q` quantile (0 < q ≤ 1), rounded up to its bin's upper edge.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        if rank <= self.nominal {
            return Some(self.nominal_s);
        }
        let mut seen = self.nominal;
        for (i, c) in self.bins.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.nominal_s * BIN_RATIO.powi(i as i32 + 1));
            }
        }
        Some(f64::INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_shrinks_with_more_trials() {
        let few: Vec<f64> = (0..10).map(|i| (i % 3) as f64).collect();
        let many: Vec<f64> = (0..1000).map(|i| (i % 3) as f64).collect();
        assert!(mean_ci(&many).ci95 < mean_ci(&few).ci95);
        assert!((mean_ci(&many).mean - 0.999).abs() < 1e-9);
    }

    #[test]
    fn quantiles_of_mostly_nominal_samples() {
        let mut h = RtoHistogram::new(40.0);
        for _ in 0..98 {
            h.add(40.0);
        }
        h.add(400.0);
        h.add(4000.0);
        assert_eq!(h.quantile(0.5), Some(40.0));
        let p99 = h.quantile(0.99).unwrap();
        assert!((400.0..400.0 * BIN_RATIO * 1.0001).contains(&p99), "{p99}");
    }

    #[test]
    fn ratio_of_sums() {
        let e = ratio_ci(&[1.0, 3.0, 2.0], &[10.0, 10.0, 10.0]);
        assert!((e.mean - 0.2).abs() < 1e-12);
        assert!(e.ci95 > 0.0);
    }
}
