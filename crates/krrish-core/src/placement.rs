//! The one placement model. The HA manager, admission of new VMs and the
//! capacity planner all call these functions, so they cannot disagree.
//!
//! Nothing is ever over-committed: a demand is placed only where it
//! [`fits_in`](crate::model::Resources::fits_in) the free capacity, and the
//! free capacity is reduced as it is placed.

use crate::model::Resources;

/// Places a failed host's VMs (in restart order) onto takeover candidates.
///
/// `free[i]` is the free capacity of candidate `i`; it is reduced by what is
/// placed. If one candidate can take the whole group, the group goes there
/// together (best fit: the candidate left with the least free memory), which
/// keeps the other spares free for the next failure. Otherwise each VM goes,
/// in order, to the best-fitting candidate that still has room; what fits
/// nowhere gets `None` (waiting for capacity).
pub fn place_group(free: &mut [Resources], demands: &[Resources]) -> Vec<Option<usize>> {
    let mut out = Vec::with_capacity(demands.len());
    place_group_into(free, demands, &mut out);
    out
}

/// [`place_group`] writing into `out` (cleared first), for callers that
/// place millions of groups (the capacity planner).
pub fn place_group_into(
    free: &mut [Resources],
    demands: &[Resources],
    out: &mut Vec<Option<usize>>,
) {
    out.clear();
    let total = demands.iter().fold(Resources::ZERO, |acc, d| acc.add(d));
    if let Some(bin) = best_fit(free, &total) {
        free[bin] = free[bin].saturating_sub(&total);
        out.resize(demands.len(), Some(bin));
        return;
    }
    for d in demands {
        let bin = best_fit(free, d);
        if let Some(b) = bin {
            free[b] = free[b].saturating_sub(d);
        }
        out.push(bin);
    }
}

/// The candidate where `demand` fits leaving the least free memory (then
/// fewest vCPUs, then lowest index).
pub fn best_fit(free: &[Resources], demand: &Resources) -> Option<usize> {
    free.iter()
        .enumerate()
        .filter(|(_, f)| demand.fits_in(f))
        .min_by_key(|(i, f)| {
            let left = f.saturating_sub(demand);
            (left.memory_mib, left.vcpus, *i)
        })
        .map(|(i, _)| i)
}

/// Where a new VM goes: the candidate with the most free memory (spreading
/// load), then most free vCPUs, then lowest index.
pub fn most_free(free: &[Resources], demand: &Resources) -> Option<usize> {
    free.iter()
        .enumerate()
        .filter(|(_, f)| demand.fits_in(f))
        .max_by_key(|(i, f)| (f.memory_mib, f.vcpus, std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bin(v: u32, m: u64) -> Resources {
        Resources::new(v, m, 1_000)
    }
    fn vm(v: u32, m: u64) -> Resources {
        Resources::new(v, m, 10)
    }

    #[test]
    fn whole_group_prefers_the_tightest_single_spare() {
        let mut free = vec![bin(32, 128_000), bin(16, 40_000)];
        let placed = place_group(&mut free, &[vm(4, 16_000), vm(4, 16_000)]);
        assert_eq!(placed, vec![Some(1), Some(1)]);
        assert_eq!(free[1], Resources::new(8, 8_000, 980));
        assert_eq!(free[0], bin(32, 128_000));
    }

    #[test]
    fn what_does_not_fit_waits() {
        let mut free = vec![bin(8, 32_000)];
        let placed = place_group(&mut free, &[vm(4, 16_000), vm(4, 16_000), vm(4, 16_000)]);
        assert_eq!(placed, vec![Some(0), Some(0), None]);
    }

    #[test]
    fn a_group_too_big_for_one_spare_spreads_in_order() {
        let mut free = vec![bin(8, 32_000), bin(8, 32_000)];
        let placed = place_group(&mut free, &[vm(4, 16_000), vm(4, 16_000), vm(4, 16_000)]);
        assert_eq!(placed, vec![Some(0), Some(0), Some(1)]);
    }

    #[test]
    fn new_vms_spread_to_the_emptiest_host() {
        let free = vec![bin(8, 32_000), bin(8, 64_000), bin(8, 64_000)];
        assert_eq!(most_free(&free, &vm(2, 4_000)), Some(1));
        assert_eq!(most_free(&free, &vm(16, 4_000)), None);
    }

    fn arb_res() -> impl Strategy<Value = Resources> {
        (1u32..16, 1u64..64, 1u64..100).prop_map(|(v, m, d)| Resources::new(v, m * 1024, d))
    }

    proptest! {
        #[test]
        fn never_overcommits(
            bins in proptest::collection::vec((1u32..64, 1u64..256, 1u64..2000).prop_map(|(v, m, d)| Resources::new(v, m * 1024, d)), 0..6),
            demands in proptest::collection::vec(arb_res(), 0..20),
        ) {
            let mut free = bins.clone();
            let placed = place_group(&mut free, &demands);
            prop_assert_eq!(placed.len(), demands.len());
            let mut used = vec![Resources::ZERO; bins.len()];
            for (d, p) in demands.iter().zip(&placed) {
                if let Some(b) = p {
                    used[*b] = used[*b].add(d);
                }
            }
            for (b, cap) in bins.iter().enumerate() {
                prop_assert!(used[b].fits_in(cap), "bin {} over-committed: {} of {}", b, used[b], cap);
                prop_assert_eq!(free[b], cap.saturating_sub(&used[b]));
            }
            // A VM left waiting really fits nowhere in what was left.
            for (d, p) in demands.iter().zip(&placed) {
                if p.is_none() {
                    prop_assert!(free.iter().all(|f| !d.fits_in(f)), "{} waits but fits", d);
                }
            }
        }
    }
}
