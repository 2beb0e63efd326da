//! The one placement model. The HA manager, admission of new VMs and the
//! capacity planner all call these functions, so they cannot disagree.
//!
//! Nothing is ever over-committed: a demand is placed only where it
//! [`fits_in`](crate::model::Resources::fits_in) the free capacity, and the
//! free capacity is reduced as it is placed.

use crate::model::Resources;
use crate::rules::Fit;

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

/// Where one member of a group goes under placement rules, and the
/// `should` rules it breaks there (reported by the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spot {
    pub bin: usize,
    pub breaks: Option<String>,
}

/// [`place_group`] under placement rules: `fit(member, bin, placed)` judges
/// putting `member` on candidate `bin` while the group's other members are
/// where `placed` says (`placed[j]`, `None` for not placed yet). `units[i]`
/// binds members into units (members with one label — the index of the
/// unit's first member — go to one candidate together or wait together:
/// a `must` affinity group; see [`crate::rules::Rules::units`]).
///
/// The whole group goes to one candidate only where no rule objects for
/// any member. Otherwise each unit, in order of its first member, goes to
/// the allowed candidate with room for all of it ranked first — no rule
/// broken before a `should` rule broken, then the rules' host preference,
/// then best fit — and never where a `must` rule forbids any member; a
/// unit with nowhere to go gets `None` for each member (it waits).
/// With no rules it places exactly as [`place_group`].
pub fn place_group_by_rules(
    free: &mut [Resources],
    demands: &[Resources],
    units: &[usize],
    mut fit: impl FnMut(usize, usize, &[Option<usize>]) -> Fit,
) -> Vec<Option<Spot>> {
    debug_assert_eq!(units.len(), demands.len());
    let total = demands.iter().fold(Resources::ZERO, |acc, d| acc.add(d));
    let together = (0..free.len())
        .filter(|b| total.fits_in(&free[*b]))
        .filter_map(|b| {
            let placed = vec![Some(b); demands.len()];
            let mut worst = 0;
            for i in 0..demands.len() {
                match fit(i, b, &placed) {
                    Fit::Allowed { preference } => worst = worst.max(preference),
                    _ => return None,
                }
            }
            let left = free[b].saturating_sub(&total);
            Some(((worst, left.memory_mib, left.vcpus, b), b))
        })
        .min()
        .map(|(_, b)| b);
    if let Some(bin) = together {
        free[bin] = free[bin].saturating_sub(&total);
        return vec![Some(Spot { bin, breaks: None }); demands.len()];
    }
    let mut placed: Vec<Option<usize>> = vec![None; demands.len()];
    let mut out: Vec<Option<Spot>> = vec![None; demands.len()];
    for first in (0..demands.len()).filter(|i| units[*i] == *i) {
        let unit: Vec<usize> = (first..demands.len())
            .filter(|j| units[*j] == first)
            .collect();
        let d = unit
            .iter()
            .fold(Resources::ZERO, |acc, j| acc.add(&demands[*j]));
        let mut best: Option<(UnitRank, Vec<Option<String>>)> = None;
        for b in (0..free.len()).filter(|b| d.fits_in(&free[*b])) {
            let mut trial = placed.clone();
            for j in &unit {
                trial[*j] = Some(b);
            }
            let mut rank = (false, 0);
            let mut breaks = Vec::with_capacity(unit.len());
            let judged = unit.iter().all(|j| {
                let verdict = fit(*j, b, &trial);
                let Some(r) = verdict.rank() else {
                    return false;
                };
                rank = rank.max(r);
                breaks.push(match verdict {
                    Fit::Breaks { why } => Some(why),
                    _ => None,
                });
                true
            });
            if !judged {
                continue;
            }
            let left = free[b].saturating_sub(&d);
            let key = (rank.0, rank.1, left.memory_mib, left.vcpus, b);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, breaks));
            }
        }
        if let Some(((_, _, _, _, bin), breaks)) = best {
            free[bin] = free[bin].saturating_sub(&d);
            for (j, breaks) in unit.iter().zip(breaks) {
                placed[*j] = Some(bin);
                out[*j] = Some(Spot { bin, breaks });
            }
        }
    }
    out
}

/// How a candidate ranks for a unit: any `should` rule broken, the rules'
/// host preference, then memory and vCPUs left (best fit), then index.
type UnitRank = (bool, usize, u64, u32, usize);

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

/// [`most_free`] under placement rules: `fit(i)` judges candidate `i`.
/// Allowed candidates before those breaking only `should` rules, then the
/// rules' host preference, then the most free memory and vCPUs, then the
/// lowest index. `Err(Some(why))` when room exists only where a `must` rule
/// forbids (`why` names the first such rule), `Err(None)` when there is no
/// room at all.
pub fn most_free_by_rules(
    free: &[Resources],
    demand: &Resources,
    mut fit: impl FnMut(usize) -> Fit,
) -> Result<Spot, Option<String>> {
    let mut forbidden: Option<String> = None;
    let best = free
        .iter()
        .enumerate()
        .filter(|(_, f)| demand.fits_in(f))
        .filter_map(|(i, f)| {
            let verdict = fit(i);
            match verdict.rank() {
                Some(rank) => Some((
                    (
                        rank,
                        std::cmp::Reverse(f.memory_mib),
                        std::cmp::Reverse(f.vcpus),
                        i,
                    ),
                    verdict,
                )),
                None => {
                    if let (None, Fit::Forbidden { why }) = (&forbidden, verdict) {
                        forbidden = Some(why);
                    }
                    None
                }
            }
        })
        .min_by(|a, b| a.0.cmp(&b.0));
    match best {
        Some(((_, _, _, bin), verdict)) => Ok(Spot {
            bin,
            breaks: match verdict {
                Fit::Breaks { why } => Some(why),
                _ => None,
            },
        }),
        None => Err(forbidden),
    }
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

    /// Members 0 and 1 never on one bin.
    fn apart(i: usize, b: usize, placed: &[Option<usize>]) -> Fit {
        if placed[1 - i] == Some(b) {
            Fit::Forbidden {
                why: "apart".into(),
            }
        } else {
            Fit::Allowed { preference: 0 }
        }
    }

    #[test]
    fn anti_affine_members_of_a_group_split_across_spares() {
        // Two anti-affine VMs that one spare could take together.
        let mut free = vec![bin(32, 128_000), bin(32, 128_000)];
        let demands = [vm(4, 16_000), vm(4, 16_000)];
        let placed = place_group_by_rules(&mut free, &demands, &[0, 1], apart);
        let bins: Vec<usize> = placed.iter().map(|s| s.as_ref().unwrap().bin).collect();
        assert_eq!(bins, vec![0, 1]);
        // With one spare the second waits.
        let mut one = vec![bin(32, 128_000)];
        let placed = place_group_by_rules(&mut one, &demands, &[0, 1], apart);
        assert!(placed[0].is_some() && placed[1].is_none());
    }

    #[test]
    fn a_unit_goes_to_one_bin_with_room_for_all_of_it_or_waits_whole() {
        // Members 0 and 2 bound (a must affinity group), 1 alone; the
        // whole group fits nowhere, and bin 0 (the best fit for member 0
        // alone) has no room for the unit.
        let mut free = vec![bin(32, 20_000), bin(32, 36_000)];
        let demands = [vm(2, 16_000), vm(2, 8_000), vm(2, 16_000)];
        let anywhere = |_: usize, _: usize, _: &[Option<usize>]| Fit::Allowed { preference: 0 };
        let placed = place_group_by_rules(&mut free, &demands, &[0, 1, 0], anywhere);
        let bins: Vec<Option<usize>> = placed.iter().map(|s| s.as_ref().map(|s| s.bin)).collect();
        assert_eq!(bins, vec![Some(1), Some(0), Some(1)]);
        let left: Vec<u64> = free.iter().map(|f| f.memory_mib).collect();
        assert_eq!(left, vec![12_000, 4_000]);
        // No bin has room for the unit: both members wait, the lone one goes.
        let mut free = vec![bin(32, 20_000), bin(32, 20_000)];
        let placed = place_group_by_rules(&mut free, &demands, &[0, 1, 0], anywhere);
        assert!(placed[0].is_none() && placed[2].is_none());
        assert!(placed[1].is_some());
    }

    /// Bin 1 preferred by a should rule.
    fn prefers_1(i: usize) -> Fit {
        if i == 0 {
            Fit::Breaks {
                why: "prefers 1".into(),
            }
        } else {
            Fit::Allowed { preference: 0 }
        }
    }

    #[test]
    fn should_rules_are_broken_only_when_nothing_else_fits() {
        let free = vec![bin(8, 64_000), bin(8, 32_000)];
        let spot = most_free_by_rules(&free, &vm(2, 4_000), prefers_1).unwrap();
        assert_eq!(
            spot,
            Spot {
                bin: 1,
                breaks: None
            }
        );
        let spot = most_free_by_rules(&free, &vm(2, 40_000), prefers_1).unwrap();
        assert_eq!(spot.bin, 0);
        assert_eq!(spot.breaks.as_deref(), Some("prefers 1"));
        let none = most_free_by_rules(&free, &vm(2, 4_000), |_| Fit::Forbidden {
            why: "never".into(),
        });
        assert_eq!(none, Err(Some("never".into())));
        let none = most_free_by_rules(&free, &vm(64, 4_000), |_| Fit::Allowed { preference: 0 });
        assert_eq!(none, Err(None));
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
            // With no rules, rule-aware placement places exactly the same.
            let mut free_by_rules = bins.clone();
            let alone: Vec<usize> = (0..demands.len()).collect();
            let by_rules = place_group_by_rules(&mut free_by_rules, &demands, &alone, |_, _, _| Fit::Allowed { preference: 0 });
            let by_rules: Vec<Option<usize>> = by_rules.into_iter().map(|s| s.map(|s| s.bin)).collect();
            prop_assert_eq!(&by_rules, &placed);
            prop_assert_eq!(&free_by_rules, &free);
            // A VM left waiting really fits nowhere in what was left.
            for (d, p) in demands.iter().zip(&placed) {
                if p.is_none() {
                    prop_assert!(free.iter().all(|f| !d.fits_in(f)), "{} waits but fits", d);
                }
            }
        }
    }
}
