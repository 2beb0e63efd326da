//! Closed forms for the case the Monte Carlo can be checked against:
//! independent, exponential failures and repairs, spares that do not fail,
//! and every host's VMs fitting on one spare. Then the number of failed
//! production hosts K is Binomial(N, p) with p = MTTR / (MTBF + MTTR)
//! (each host alternates independently; repairs happen in parallel), each
//! failed host holds one spare while there is one, and failures arrive at
//! rate (N − K)·λ, so a failure sees K with weight (N − K)·π_K.

/// π_k = P(K = k) for k = 0..=n, computed in log space.
pub fn binomial_pmf(n: usize, p: f64) -> Vec<f64> {
    assert!((0.0..1.0).contains(&p));
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_c = 0.0; // ln C(n, k)
    let mut out = Vec::with_capacity(n + 1);
    for k in 0..=n {
        if k > 0 {
            log_c += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        out.push((log_c + k as f64 * lp + (n - k) as f64 * lq).exp());
    }
    out
}

/// Probability a host is down in the long run.
pub fn unavailability(mtbf_hours: f64, mttr_hours: f64) -> f64 {
    mttr_hours / (mtbf_hours + mttr_hours)
}

/// Time-average fraction of production hosts failed and not covered.
pub fn uncovered_host_fraction(n: usize, p: f64, spares: usize) -> f64 {
    binomial_pmf(n, p)
        .iter()
        .enumerate()
        .map(|(k, pi)| k.saturating_sub(spares) as f64 * pi)
        .sum::<f64>()
        / n as f64
}

/// Fraction of host failures that find no spare free.
pub fn failures_without_spare(n: usize, p: f64, spares: usize) -> f64 {
    let pmf = binomial_pmf(n, p);
    let rate = |k: usize| (n - k) as f64 * pmf[k];
    let all: f64 = (0..=n).map(rate).sum();
    let blocked: f64 = (spares.min(n)..=n).map(rate).sum();
    blocked / all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmf_sums_to_one_and_has_the_right_mean() {
        let pmf = binomial_pmf(200, 24.0 / 8784.0);
        let sum: f64 = pmf.iter().sum();
        let mean: f64 = pmf.iter().enumerate().map(|(k, p)| k as f64 * p).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        assert!((mean - 200.0 * 24.0 / 8784.0).abs() < 1e-9);
    }

    #[test]
    fn no_spares_means_every_failure_is_uncovered() {
        let p = 0.01;
        assert!((uncovered_host_fraction(10, p, 0) - p).abs() < 1e-12);
        assert!((failures_without_spare(10, p, 0) - 1.0).abs() < 1e-12);
        assert!(uncovered_host_fraction(10, p, 10) < 1e-15);
    }
}
