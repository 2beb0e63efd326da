//! The Monte Carlo against the closed forms, determinism, and bad input.

use krrish_core::{HaPolicy, Resources};
use krrish_plan::{plan, Lifetime, PlanError, PlanInput, Repair};

/// Hosts filled to 30 of 32 vCPUs: a spare takes one host's VMs and has no
/// room for a single VM of another (the closed form's assumption).
fn input(hosts: usize, spares_max: usize) -> PlanInput {
    let vm = (Resources::new(3, 12 * 1024, 40), HaPolicy::Restart);
    PlanInput {
        spare_racks: vec![],
        spares_max,
        lifetime: Lifetime::Exponential { mtbf_hours: 500.0 },
        repair: Repair::Exponential { mttr_hours: 50.0 },
        spares_fail: false,
        years: 5.0,
        trials: 300,
        seed: 11,
        threads: 2,
        ..PlanInput::uniform(hosts, 10, 10, vm, Resources::new(32, 128 * 1024, 2_000))
    }
}

#[test]
fn monte_carlo_agrees_with_the_binomial_model() {
    // p = 50/550 ≈ 0.091: with 20 hosts about 1.8 are down at any time, so
    // every spare count from 0 to 4 matters.
    let r = plan(&input(20, 5)).unwrap();
    for row in &r.rows {
        let a = row.analytic.expect("independent exponential case");
        for (what, mc, exact) in [
            (
                "uncovered_host_fraction",
                row.uncovered_host_fraction,
                a.uncovered_host_fraction,
            ),
            (
                "failures_without_spare",
                row.failures_without_spare,
                a.failures_without_spare,
            ),
        ] {
            // Within twice the 95 % half-width (about four standard errors).
            let tolerance = 2.0 * mc.ci95 + 1e-9;
            assert!(
                (mc.mean - exact).abs() <= tolerance,
                "{what} with {} spares: Monte Carlo {:.3e} ±{:.1e}, exact {:.3e}",
                row.spares,
                mc.mean,
                mc.ci95,
                exact
            );
        }
    }
    // The check has teeth: the figures are far from zero where it matters.
    assert!(r.rows[1].uncovered_host_fraction.mean > 1e-2);
    assert!(r.rows[3].failures_without_spare.mean > 1e-3);
}

#[test]
fn more_spares_never_cover_less() {
    let mut i = input(30, 6);
    i.spares_fail = true;
    i.rack_mtbf_hours = Some(20_000.0);
    let r = plan(&i).unwrap();
    for w in r.rows.windows(2) {
        // Common random numbers: the same history for every row.
        assert!(w[1].uncovered_host_fraction.mean <= w[0].uncovered_host_fraction.mean + 1e-15);
        assert!(w[1].vm_availability.mean >= w[0].vm_availability.mean - 1e-15);
    }
    assert!(
        r.rows.iter().all(|x| x.analytic.is_none()),
        "racks and failing spares: no closed form"
    );
}

#[test]
fn one_seed_one_table_whatever_the_threads() {
    let mut a = input(25, 4);
    a.trials = 64;
    let mut b = a.clone();
    b.threads = 1;
    let mut c = a.clone();
    c.threads = 7;
    let (ra, rb, rc) = (plan(&a).unwrap(), plan(&b).unwrap(), plan(&c).unwrap());
    assert_eq!(ra, rb);
    assert_eq!(ra, rc);
    let mut d = a.clone();
    d.seed = 12;
    assert_ne!(plan(&d).unwrap().rows, ra.rows, "the seed is used");
}

#[test]
fn ageing_and_lognormal_repairs_run_and_hurt_when_heavier() {
    let mut i = input(20, 3);
    i.lifetime = Lifetime::Weibull {
        mtbf_hours: 500.0,
        shape: 1.5,
    };
    i.repair = Repair::Lognormal {
        mttr_hours: 50.0,
        sigma: 1.0,
    };
    let light = plan(&i).unwrap();
    i.repair = Repair::Lognormal {
        mttr_hours: 100.0,
        sigma: 1.0,
    };
    let heavy = plan(&i).unwrap();
    assert!(
        heavy.rows[1].uncovered_host_fraction.mean > light.rows[1].uncovered_host_fraction.mean
    );
}

#[test]
fn a_spare_too_small_for_a_host_leaves_some_vms_waiting() {
    let mut i = input(10, 2);
    // 4 × 40 GiB per host; a spare holds 128 GiB: one spare takes 3 of a
    // failed host's VMs, two spares take all 4 (spread, as the core does).
    i.hosts
        .iter_mut()
        .for_each(|h| h.vms = vec![(Resources::new(8, 40 * 1024, 40), HaPolicy::Restart); 4]);
    let r = plan(&i).unwrap();
    assert!(r.rows.iter().all(|x| x.analytic.is_none()));
    assert!(
        r.rows[1].failures_without_spare.mean > 0.99,
        "{:?}",
        r.rows[1].failures_without_spare
    );
    // Two spares take a whole host, but then leave little for the next one.
    assert!(
        r.rows[2].failures_without_spare.high() < r.rows[1].failures_without_spare.low(),
        "{:?} vs {:?}",
        r.rows[2].failures_without_spare,
        r.rows[1].failures_without_spare
    );
    let p99 = r.rows[1].rto_p99_s.unwrap();
    assert!(
        p99.mean > 3600.0,
        "the fourth VM waits for a repair: {p99:?}"
    );
    assert!(p99.ci95.is_finite() && p99.ci95 > 0.0, "{p99:?}");
    let p50 = r.rows[2].rto_p50_s.unwrap();
    assert_eq!(
        (p50.mean, p50.ci95),
        (40.0, 0.0),
        "most failovers take the nominal time"
    );
}

#[test]
fn half_full_hosts_share_spares_beyond_the_binomial_model() {
    // 10 × 2 vCPU / 8 GiB: a spare has room for more than one failed host's
    // VMs, so coverage beats one-host-per-spare.
    let mut i = input(20, 3);
    i.hosts
        .iter_mut()
        .for_each(|h| h.vms = vec![(Resources::new(2, 8 * 1024, 40), HaPolicy::Restart); 10]);
    let packed = plan(&i).unwrap();
    let strict = plan(&input(20, 3)).unwrap();
    assert!(
        packed.rows[2].uncovered_host_fraction.mean
            < 0.5 * strict.rows[2].uncovered_host_fraction.mean
    );
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let cases: Vec<(PlanInput, &str)> = vec![
        (
            {
                let mut i = input(5, 2);
                i.lifetime = Lifetime::Exponential { mtbf_hours: 0.0 };
                i
            },
            "mean time between failures",
        ),
        (
            {
                let mut i = input(5, 2);
                i.repair = Repair::Exponential { mttr_hours: -3.0 };
                i
            },
            "mean time to repair",
        ),
        (input(5, 6), "6 spares for 5 production hosts"),
        (
            {
                let mut i = input(5, 2);
                i.hosts.clear();
                i
            },
            "no production hosts",
        ),
        (
            {
                let mut i = input(5, 2);
                i.years = 0.0;
                i
            },
            "years",
        ),
        (
            {
                let mut i = input(5, 2);
                i.rack_mtbf_hours = Some(f64::NAN);
                i
            },
            "rack",
        ),
    ];
    for (i, want) in cases {
        let e: PlanError = plan(&i).unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
    }
}

/// `trial_history` hands out the very histories `plan` replays: with no
/// spares every down production host is uncovered, so the down-time summed
/// from the published histories is the fast model's uncovered fraction.
#[test]
fn published_histories_are_the_ones_the_planner_replays() {
    use krrish_plan::engine::{trial_history, HOURS_PER_YEAR};
    let mut i = input(8, 0);
    i.trials = 20;
    let horizon = i.years * HOURS_PER_YEAR;
    let r = plan(&i).unwrap();
    let mut fractions = Vec::new();
    for trial in 0..i.trials {
        let h = trial_history(&i, trial).unwrap();
        assert!(h.windows(2).all(|w| w[0].t_hours <= w[1].t_hours));
        let mut down_since: Vec<Option<f64>> = vec![None; 8];
        let mut down_hours = 0.0;
        for c in &h {
            assert!(c.host < 8, "spares do not fail in this input");
            if c.up {
                down_hours += c.t_hours - down_since[c.host].take().expect("down before up");
            } else {
                assert!(down_since[c.host].is_none(), "down twice");
                down_since[c.host] = Some(c.t_hours);
            }
        }
        down_hours += down_since
            .iter()
            .flatten()
            .map(|t| horizon - t)
            .sum::<f64>();
        fractions.push(down_hours / (8.0 * horizon));
    }
    let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
    let model = r.rows[0].uncovered_host_fraction.mean;
    assert!(
        (mean - model).abs() <= 1e-9 * model.max(1e-12),
        "histories give {mean:e}, the planner {model:e}"
    );
    assert!(model > 1e-2, "the check has teeth");
    assert_ne!(trial_history(&i, 0).unwrap(), trial_history(&i, 1).unwrap());
}

/// Eight VMs named in placement order, bound in four must pairs (2k and
/// 2k+1) of `kind`, for two spares.
fn must_pairs(kind: krrish_core::rules::RuleKind) -> krrish_plan::PlanRules {
    use krrish_core::rules::{RuleGroup, Rules, Strength};
    use krrish_core::VmId;
    let names: Vec<VmId> = (0..8).map(|i| VmId::new(format!("vm-{i}"))).collect();
    let pairs = (0..4)
        .map(|k| RuleGroup {
            name: format!("pair-{k}"),
            strength: Strength::Must,
            kind: kind.clone(),
            vms: vec![names[2 * k].clone(), names[2 * k + 1].clone()],
        })
        .collect();
    krrish_plan::PlanRules::new(Rules::new(pairs), names, Vec::new(), 2)
}

/// Pairs of VMs on the two hosts of each rack, whole racks failing: one
/// spare could take both VMs of a failed rack, unless a must anti-affinity
/// rule keeps each pair apart — then the second waits for a repair.
#[test]
fn must_anti_affinity_pairs_need_more_spares() {
    use krrish_core::rules::RuleKind;
    let vm = (Resources::new(8, 32 * 1024, 40), HaPolicy::Restart);
    let base = PlanInput {
        spares_max: 2,
        rack_mtbf_hours: Some(2_000.0),
        spares_fail: false,
        years: 5.0,
        trials: 300,
        seed: 5,
        threads: 2,
        ..PlanInput::uniform(8, 2, 1, vm, Resources::new(32, 128 * 1024, 2_000))
    };
    // VM i is on host i; hosts 2k and 2k+1 share rack k.
    let ruled = PlanInput {
        rules: must_pairs(RuleKind::AntiAffinity),
        ..base.clone()
    };
    let free = plan(&base).unwrap();
    let apart = plan(&ruled).unwrap();
    let one = |r: &krrish_plan::PlanResult| r.row(1).unwrap().failures_without_spare.mean;
    let two = |r: &krrish_plan::PlanResult| r.row(2).unwrap().failures_without_spare.mean;
    // One spare: the rule leaves half of every rack failure waiting.
    assert!(
        one(&apart) > one(&free) + 0.2,
        "with the rule {} vs without {}",
        one(&apart),
        one(&free)
    );
    // Two spares take a rack's pair apart: the rule costs little then.
    assert!(
        two(&apart) < one(&apart) / 2.0,
        "{} vs {}",
        two(&apart),
        one(&apart)
    );
}

/// Two VMs on each host; each spare has room for one of them. Without
/// rules a failed host's VMs split over two spares; a must affinity pair
/// is one unit that no spare can take, so it waits for the repair: more
/// VM-hours down, however many spares.
#[test]
fn must_affinity_pairs_need_a_spare_with_room_for_the_pair() {
    use krrish_core::rules::RuleKind;
    let vm = (Resources::new(8, 32 * 1024, 40), HaPolicy::Restart);
    let base = PlanInput {
        spares_max: 2,
        spares_fail: false,
        years: 5.0,
        trials: 300,
        seed: 7,
        threads: 2,
        ..PlanInput::uniform(4, 1, 2, vm, Resources::new(32, 48 * 1024, 2_000))
    };
    // VMs 2k and 2k+1 are on host k.
    let ruled = PlanInput {
        rules: must_pairs(RuleKind::Affinity),
        ..base.clone()
    };
    let free = plan(&base).unwrap();
    let together = plan(&ruled).unwrap();
    let down = |r: &krrish_plan::PlanResult| r.row(2).unwrap().vm_hours_down_per_year.mean;
    assert!(
        down(&together) > 10.0 * down(&free),
        "two spares: {} VM-hours down a year with the pairs bound, {} without",
        down(&together),
        down(&free)
    );
}
