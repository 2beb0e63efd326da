//! The Monte Carlo engine.
//!
//! A trial draws every host's history once — failures (independent or whole
//! racks at a time) and repairs over the horizon, spares included — then
//! replays that same history for each spare count S = 0..=spares_max. Rows
//! therefore differ only by what S changes (common random numbers), and the
//! drawing is paid once. During a replay every failure, repair and spare
//! loss calls `krrish_core::placement::place_group` on the healthy spares'
//! free capacity, grouping waiting VMs by host in id order — the decisions
//! the HA manager makes.

use crate::analytic;
use crate::model::{Lifetime, PlanInput, Repair};
use crate::stats::{mean_ci, ratio_ci, Estimate, RtoHistogram};
use krrish_core::placement::place_group_into;
use krrish_core::spares::spare_pool_size;
use krrish_core::VmId;
use krrish_core::{HaPolicy, Resources};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Weibull};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

mod by_rules;

pub const HOURS_PER_YEAR: f64 = 8_766.0;
/// Events one trial may draw: far above any realistic history, low enough to
/// stop a mistyped MTBF of seconds from eating the machine.
const EVENTS_PER_TRIAL_MAX: usize = 50_000_000;

/// The closed-form values, where the input fits their assumptions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Analytic {
    pub uncovered_host_fraction: f64,
    pub failures_without_spare: f64,
}

/// What `spares` spare hosts buy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub spares: usize,
    /// Time-average fraction of production hosts that are failed and have
    /// HA VMs no healthy spare holds.
    pub uncovered_host_fraction: Estimate,
    /// Fraction of production-host failures that found no spare with room.
    pub failures_without_spare: Estimate,
    /// VM-hours of downtime per year beyond the failover time.
    pub vm_hours_down_per_year: Estimate,
    /// Time-average fraction of VMs running (all downtime counted).
    pub vm_availability: Estimate,
    /// RTO of VMs that failed over to a spare, median and 99th percentile
    /// (pooled over all trials; the interval from batches of trials).
    pub rto_p50_s: Option<Estimate>,
    pub rto_p99_s: Option<Estimate>,
    /// Failovers behind the RTO figures.
    pub failovers: u64,
    pub analytic: Option<Analytic>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanResult {
    pub rows: Vec<Row>,
    pub production_hosts: usize,
    pub vms: usize,
    /// What the design notes' step table gives (≤10 → 1, 11–50 → 3, >50 → 5).
    pub step_table_spares: usize,
    pub seed: u64,
    pub trials: u32,
    pub years: f64,
    /// Host-years simulated per row (production hosts and spares).
    pub host_years: f64,
    pub failover_s: f64,
}

impl PlanResult {
    /// The fewest spares whose availability is at least `target` even at the
    /// low end of its 95 % interval.
    pub fn spares_for(&self, target: f64) -> Option<usize> {
        self.rows
            .iter()
            .find(|r| r.vm_availability.low() >= target)
            .map(|r| r.spares)
    }

    pub fn row(&self, spares: usize) -> Option<&Row> {
        self.rows.iter().find(|r| r.spares == spares)
    }
}

/// One host going down or coming back, in hours.
#[derive(Clone, Copy, Debug)]
struct Event {
    t: f64,
    host: u32,
    up: bool,
}

struct Draw<'a> {
    input: &'a PlanInput,
    life_exp: Option<Exp<f64>>,
    life_weibull: Option<Weibull<f64>>,
    repair_exp: Option<Exp<f64>>,
    repair_lognormal: Option<LogNormal<f64>>,
}

impl<'a> Draw<'a> {
    fn new(input: &'a PlanInput) -> Self {
        let (mut life_exp, mut life_weibull, mut repair_exp, mut repair_lognormal) =
            (None, None, None, None);
        match input.lifetime {
            Lifetime::Exponential { mtbf_hours } => {
                life_exp = Some(Exp::new(1.0 / mtbf_hours).expect("validated"))
            }
            Lifetime::Weibull { mtbf_hours, shape } => {
                let scale = mtbf_hours / gamma(1.0 + 1.0 / shape);
                life_weibull = Some(Weibull::new(scale, shape).expect("validated"));
            }
        }
        match input.repair {
            Repair::Exponential { mttr_hours } => {
                repair_exp = Some(Exp::new(1.0 / mttr_hours).expect("validated"))
            }
            Repair::Lognormal { mttr_hours, sigma } => {
                let mu = mttr_hours.ln() - sigma * sigma / 2.0;
                repair_lognormal = Some(LogNormal::new(mu, sigma).expect("validated"));
            }
        }
        Self {
            input,
            life_exp,
            life_weibull,
            repair_exp,
            repair_lognormal,
        }
    }

    fn life(&self, rng: &mut ChaCha8Rng) -> f64 {
        match (&self.life_exp, &self.life_weibull) {
            (Some(d), _) => d.sample(rng),
            (_, Some(d)) => d.sample(rng),
            _ => unreachable!("one lifetime distribution is set"),
        }
    }

    fn repair(&self, rng: &mut ChaCha8Rng) -> f64 {
        match (&self.repair_exp, &self.repair_lognormal) {
            (Some(d), _) => d.sample(rng),
            (_, Some(d)) => d.sample(rng),
            _ => unreachable!("one repair distribution is set"),
        }
    }

    /// Every host's history over `horizon` hours, sorted by time.
    fn history(&self, rng: &mut ChaCha8Rng, horizon: f64) -> Vec<Event> {
        let input = self.input;
        let spares = if input.spares_fail {
            input.spares_max
        } else {
            0
        };
        // Racks: production racks as given; spares round-robin over
        // `spare_racks`, or each in a rack of its own.
        let mut racks: Vec<u32> = input.hosts.iter().map(|h| h.rack).collect();
        let own_rack_base = racks.iter().copied().max().unwrap_or(0) + 1;
        for i in 0..spares {
            racks.push(match input.spare_racks.is_empty() {
                true => own_rack_base + i as u32,
                false => input.spare_racks[i % input.spare_racks.len()],
            });
        }
        let rack_events: Vec<Vec<f64>> = match input.rack_mtbf_hours {
            None => Vec::new(),
            Some(m) => {
                let d = Exp::new(1.0 / m).expect("validated");
                let top = racks.iter().copied().max().unwrap_or(0) as usize + 1;
                (0..top)
                    .map(|_| {
                        let mut v = Vec::new();
                        let mut t = d.sample(rng);
                        while t < horizon {
                            v.push(t);
                            t += d.sample(rng);
                        }
                        v
                    })
                    .collect()
            }
        };
        // A memoryless start can be drawn from the stationary state, so the
        // Monte Carlo is unbiased from hour 0; ageing hosts start new.
        let stationary = match (input.lifetime, input.repair) {
            (Lifetime::Exponential { mtbf_hours }, Repair::Exponential { mttr_hours }) => {
                Some(analytic::unavailability(mtbf_hours, mttr_hours))
            }
            _ => None,
        };
        let mut events = Vec::new();
        for (h, &host_rack) in racks.iter().enumerate() {
            let rack = &rack_events.get(host_rack as usize);
            let mut next_rack = 0usize;
            let mut t = 0.0;
            if stationary.is_some_and(|p| rng.random::<f64>() < p) {
                events.push(Event {
                    t: 0.0,
                    host: h as u32,
                    up: false,
                });
                t = self.repair(rng);
                if t >= horizon {
                    continue;
                }
                events.push(Event {
                    t,
                    host: h as u32,
                    up: true,
                });
            }
            while t < horizon {
                let mut fail = t + self.life(rng);
                if let Some(r) = rack {
                    while next_rack < r.len() && r[next_rack] <= t {
                        next_rack += 1;
                    }
                    if next_rack < r.len() && r[next_rack] < fail {
                        fail = r[next_rack];
                    }
                }
                if fail >= horizon {
                    break;
                }
                events.push(Event {
                    t: fail,
                    host: h as u32,
                    up: false,
                });
                t = fail + self.repair(rng);
                if t < horizon {
                    events.push(Event {
                        t,
                        host: h as u32,
                        up: true,
                    });
                }
                assert!(
                    events.len() < EVENTS_PER_TRIAL_MAX,
                    "more than {EVENTS_PER_TRIAL_MAX} events in one trial"
                );
            }
        }
        events.sort_by(|a, b| {
            a.t.total_cmp(&b.t)
                .then(a.host.cmp(&b.host))
                .then(a.up.cmp(&b.up))
        });
        events
    }
}

/// Where a VM is during a replay.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Loc {
    Home,
    Spare(u32),
    /// Down since `since` (hours), waiting for a spare or its home.
    Waiting {
        since: f64,
    },
}

/// Buffers reused across placements (the planner places millions).
#[derive(Default)]
struct Scratch {
    vms: Vec<usize>,
    up: Vec<usize>,
    free: Vec<Resources>,
    demands: Vec<Resources>,
    spots: Vec<Option<usize>>,
    hosts: Vec<u32>,
}

/// Sums one replay produces.
#[derive(Clone, Debug, Default)]
struct TrialSums {
    uncovered_host_hours: f64,
    failures: f64,
    failures_without_spare: f64,
    vm_down_hours: f64,
    vm_excess_hours: f64,
}

struct Replay<'a> {
    input: &'a PlanInput,
    offsets: Vec<usize>,
    demands: Vec<Resources>,
    restart: Vec<bool>,
    /// Each VM a placement rule names, by name → index (empty: no rules,
    /// and the placement is the core's plain `place_group`).
    ruled: BTreeMap<VmId, usize>,
    detect_h: f64,
    boot_h: f64,
    failover_h: f64,
}

impl<'a> Replay<'a> {
    fn new(input: &'a PlanInput) -> Self {
        let mut offsets = vec![0];
        let mut demands = Vec::new();
        let mut restart = Vec::new();
        for h in &input.hosts {
            for (d, p) in &h.vms {
                demands.push(*d);
                restart.push(*p == HaPolicy::Restart);
            }
            offsets.push(demands.len());
        }
        let failover_h = input.failover_s / 3600.0;
        let boot_h = input.boot_s.min(input.failover_s) / 3600.0;
        Self {
            input,
            offsets,
            demands,
            restart,
            ruled: input.rules.named(),
            detect_h: failover_h - boot_h,
            boot_h,
            failover_h,
        }
    }

    /// Replays `events` with `spares` spares.
    fn run(
        &self,
        events: &[Event],
        spares: usize,
        horizon: f64,
        rto: &mut RtoHistogram,
        x: &mut Scratch,
    ) -> TrialSums {
        let n = self.input.hosts.len();
        let mut st = ReplayState {
            loc: vec![Loc::Home; self.demands.len()],
            spare_up: vec![true; spares],
            spare_free: vec![self.input.spare_capacity; spares],
            waiting: BTreeSet::new(),
            waiting_count: vec![0; n],
            sums: TrialSums::default(),
        };
        let mut last_t = 0.0;
        for e in events {
            let h = e.host as usize;
            if h >= n && h - n >= spares {
                continue; // a spare this row does not have
            }
            st.sums.uncovered_host_hours += st.waiting.len() as f64 * (e.t - last_t);
            last_t = e.t;
            let t = e.t;
            match (h < n, e.up) {
                (true, false) => {
                    st.sums.failures += 1.0;
                    let vms = self.offsets[h]..self.offsets[h + 1];
                    for v in vms.clone() {
                        st.loc[v] = Loc::Waiting { since: t };
                    }
                    self.place(&mut st, h, t, rto, x);
                    let left = vms
                        .filter(|&v| self.restart[v] && matches!(st.loc[v], Loc::Waiting { .. }))
                        .count();
                    st.waiting_count[h] = left as u32;
                    if left > 0 {
                        st.sums.failures_without_spare += 1.0;
                        st.waiting.insert(h as u32);
                    }
                }
                (true, true) => {
                    for v in self.offsets[h]..self.offsets[h + 1] {
                        match st.loc[v] {
                            Loc::Spare(s) => {
                                // Live migration home: no downtime.
                                let f = &mut st.spare_free[s as usize];
                                *f = f.add(&self.demands[v]);
                            }
                            Loc::Waiting { since } => {
                                self.close(&mut st.sums, t - since + self.boot_h)
                            }
                            Loc::Home => {}
                        }
                        st.loc[v] = Loc::Home;
                    }
                    st.waiting_count[h] = 0;
                    st.waiting.remove(&(h as u32));
                    self.place_waiting(&mut st, t, rto, x);
                }
                (false, false) => {
                    let s = h - n;
                    st.spare_up[s] = false;
                    st.spare_free[s] = Resources::ZERO;
                    // Its guests die with it and wait again.
                    let ReplayState {
                        loc,
                        waiting,
                        waiting_count,
                        ..
                    } = &mut st;
                    for (v, l) in loc.iter_mut().enumerate() {
                        if *l == Loc::Spare(s as u32) {
                            *l = Loc::Waiting { since: t };
                            let home = self.offsets.partition_point(|&o| o <= v) - 1;
                            if waiting_count[home] == 0 {
                                waiting.insert(home as u32);
                            }
                            waiting_count[home] += 1;
                        }
                    }
                    self.place_waiting(&mut st, t, rto, x);
                }
                (false, true) => {
                    let s = h - n;
                    st.spare_up[s] = true;
                    st.spare_free[s] = self.input.spare_capacity;
                    self.place_waiting(&mut st, t, rto, x);
                }
            }
        }
        st.sums.uncovered_host_hours += st.waiting.len() as f64 * (horizon - last_t);
        // Outages still open at the horizon count up to it.
        for l in &st.loc {
            if let Loc::Waiting { since } = l {
                self.close(&mut st.sums, horizon - since);
            }
        }
        st.sums
    }

    fn close(&self, sums: &mut TrialSums, downtime_h: f64) {
        sums.vm_down_hours += downtime_h;
        sums.vm_excess_hours += (downtime_h - self.failover_h).max(0.0);
    }

    /// Places host `h`'s waiting restart VMs onto healthy spares; returns how
    /// many were placed.
    fn place(
        &self,
        st: &mut ReplayState,
        h: usize,
        t: f64,
        rto: &mut RtoHistogram,
        x: &mut Scratch,
    ) -> usize {
        // Plain slices for the hot loop: borrowing through the struct kept
        // the compiler from inlining and from dropping bounds checks.
        let loc: &mut [Loc] = &mut st.loc;
        let spare_up: &[bool] = &st.spare_up;
        let spare_free: &mut [Resources] = &mut st.spare_free;
        let sums = &mut st.sums;
        x.vms.clear();
        x.vms.extend(
            (self.offsets[h]..self.offsets[h + 1])
                .filter(|&v| self.restart[v] && matches!(loc[v], Loc::Waiting { .. })),
        );
        if x.vms.is_empty() {
            return 0;
        }
        x.up.clear();
        x.up.extend((0..spare_up.len()).filter(|&s| spare_up[s]));
        if x.up.is_empty() {
            return 0;
        }
        x.free.clear();
        x.free.extend(x.up.iter().map(|&s| spare_free[s]));
        x.demands.clear();
        x.demands.extend(x.vms.iter().map(|&v| self.demands[v]));
        if self.ruled.is_empty() {
            place_group_into(&mut x.free, &x.demands, &mut x.spots);
        } else {
            self.place_by_rules(loc, x);
        }
        let mut placed = 0;
        for (&v, spot) in x.vms.iter().zip(&x.spots) {
            if let (Some(i), Loc::Waiting { since }) = (*spot, loc[v]) {
                // Detection and fencing run from the outage's start; the boot
                // follows whichever ends later, that or the wait for room.
                let down = (t - since).max(self.detect_h) + self.boot_h;
                self.close(sums, down);
                rto.add(down * 3600.0);
                loc[v] = Loc::Spare(x.up[i] as u32);
                placed += 1;
            }
        }
        for (i, &s) in x.up.iter().enumerate() {
            spare_free[s] = x.free[i];
        }
        placed
    }

    /// Places what waits, host by host in id order (as the core does).
    fn place_waiting(&self, st: &mut ReplayState, t: f64, rto: &mut RtoHistogram, x: &mut Scratch) {
        if st.waiting.is_empty() || !st.spare_up.iter().any(|&u| u) {
            return;
        }
        let mut hosts = std::mem::take(&mut x.hosts);
        hosts.clear();
        hosts.extend(st.waiting.iter().copied());
        for &h in &hosts {
            let placed = self.place(st, h as usize, t, rto, x) as u32;
            let left = &mut st.waiting_count[h as usize];
            *left -= placed.min(*left);
            if *left == 0 {
                st.waiting.remove(&h);
            }
        }
        x.hosts = hosts;
    }
}

/// The mutable state of one replay (one trial, one spare count).
struct ReplayState {
    loc: Vec<Loc>,
    spare_up: Vec<bool>,
    spare_free: Vec<Resources>,
    /// Production hosts with restart VMs waiting (= uncovered), in id order.
    waiting: BTreeSet<u32>,
    waiting_count: Vec<u32>,
    sums: TrialSums,
}

/// What one planner thread returns: per trial (in its share), per row, the
/// sums; per row, per batch of trials, the RTO histogram.
type ThreadOutput = (Vec<Vec<TrialSums>>, Vec<Vec<RtoHistogram>>);

/// Batches of trials behind the RTO quantiles' intervals.
const RTO_BATCHES: usize = 20;

/// `pooled` with a t-interval from the spread of per-batch values.
fn batch_ci(pooled: f64, each: &[f64]) -> Estimate {
    // t(0.975, df) for df = 1..=19; batches are at most 20.
    const T975: [f64; 19] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093,
    ];
    let n = each.len();
    if n < 2 || each.iter().any(|x| !x.is_finite()) {
        return Estimate {
            mean: pooled,
            ci95: f64::INFINITY,
        };
    }
    let m = each.iter().sum::<f64>() / n as f64;
    let var = each.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    Estimate {
        mean: pooled,
        ci95: T975[(n - 2).min(18)] * (var / n as f64).sqrt(),
    }
}

/// Gamma function (Lanczos), for the Weibull scale from its mean.
pub fn gamma(x: f64) -> f64 {
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
}

fn trial_rng(seed: u64, trial: u32) -> ChaCha8Rng {
    // SplitMix64 of (seed, trial): independent streams, any thread count.
    let mut z = seed ^ (u64::from(trial).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

/// A host going down or coming back in one trial's history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HostChange {
    pub t_hours: f64,
    /// `0..hosts.len()`: the production host at that index of
    /// [`PlanInput::hosts`]; from `hosts.len()` on, the spares in order
    /// (only when spares fail).
    pub host: usize,
    pub up: bool,
}

/// Trial `trial`'s failure and repair history, exactly as [`plan`] draws
/// and replays it (so a validation can replay the same histories elsewhere
/// and compare with the fast model's figures for those trials).
pub fn trial_history(input: &PlanInput, trial: u32) -> Result<Vec<HostChange>, crate::PlanError> {
    input.validate()?;
    let draw = Draw::new(input);
    let mut rng = trial_rng(input.seed, trial);
    Ok(draw
        .history(&mut rng, input.years * HOURS_PER_YEAR)
        .into_iter()
        .map(|e| HostChange {
            t_hours: e.t,
            host: e.host as usize,
            up: e.up,
        })
        .collect())
}

/// Whether the closed forms apply to `input`.
fn analytic_applies(input: &PlanInput) -> Option<(f64, f64)> {
    let (Lifetime::Exponential { mtbf_hours }, Repair::Exponential { mttr_hours }) =
        (input.lifetime, input.repair)
    else {
        return None;
    };
    if input.rack_mtbf_hours.is_some() || input.spares_fail {
        return None;
    }
    // Identical hosts, all VMs restarted, one host's load fitting a spare
    // and nothing of another host fitting in what is left: then each failed
    // host holds exactly one spare, as the binomial model assumes.
    let first = &input.hosts[0];
    let load = first.vms.iter().fold(Resources::ZERO, |a, (d, _)| a.add(d));
    let left = input.spare_capacity.saturating_sub(&load);
    let applies = !first.vms.is_empty()
        && load.fits_in(&input.spare_capacity)
        && first
            .vms
            .iter()
            .all(|(d, p)| *p == HaPolicy::Restart && !d.fits_in(&left))
        && input.hosts.iter().all(|h| h.vms == first.vms);
    applies.then_some((mtbf_hours, mttr_hours))
}

/// Runs the Monte Carlo for every spare count 0..=spares_max.
pub fn plan(input: &PlanInput) -> Result<PlanResult, crate::PlanError> {
    input.validate()?;
    let rows_n = input.spares_max + 1;
    let horizon = input.years * HOURS_PER_YEAR;
    let replay = Replay::new(input);
    let draw = Draw::new(input);
    let threads = input.threads.clamp(1, 64);
    // Per trial, per row: the sums; and per thread, per row, per batch of
    // trials (trial % batches, so independent of threads): RTO histograms.
    let batches = (input.trials as usize).min(RTO_BATCHES);
    let chunks: Vec<ThreadOutput> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (replay, draw) = (&replay, &draw);
                scope.spawn(move || {
                    let mut hist: Vec<Vec<RtoHistogram>> = (0..rows_n)
                        .map(|_| {
                            (0..batches)
                                .map(|_| RtoHistogram::new(input.failover_s))
                                .collect()
                        })
                        .collect();
                    let mut out = Vec::new();
                    let mut scratch = Scratch::default();
                    // Trials k, k + threads, …: each thread's share.
                    let mut trial = k as u32;
                    while trial < input.trials {
                        let mut rng = trial_rng(input.seed, trial);
                        let events = draw.history(&mut rng, horizon);
                        let per_row = (0..rows_n)
                            .map(|s| {
                                let h = &mut hist[s][trial as usize % batches];
                                replay.run(&events, s, horizon, h, &mut scratch)
                            })
                            .collect();
                        out.push(per_row);
                        trial += threads as u32;
                    }
                    (out, hist)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("planner thread panicked"))
            .collect()
    });
    // Back into trial order, so the result does not depend on threads.
    let mut by_trial: Vec<Option<&Vec<TrialSums>>> = vec![None; input.trials as usize];
    for (k, (out, _)) in chunks.iter().enumerate() {
        for (i, sums) in out.iter().enumerate() {
            by_trial[k + i * threads] = Some(sums);
        }
    }
    let by_trial: Vec<&Vec<TrialSums>> = by_trial
        .into_iter()
        .map(|x| x.expect("every trial ran"))
        .collect();
    let n = input.hosts.len() as f64;
    let vms = input.vm_count() as f64;
    let analytic = analytic_applies(input);
    let rows = (0..rows_n)
        .map(|s| {
            let col = |f: &dyn Fn(&TrialSums) -> f64| {
                by_trial.iter().map(|t| f(&t[s])).collect::<Vec<f64>>()
            };
            let mut per_batch: Vec<RtoHistogram> = (0..batches)
                .map(|_| RtoHistogram::new(input.failover_s))
                .collect();
            for (_, h) in &chunks {
                for (b, hb) in h[s].iter().enumerate() {
                    per_batch[b].merge(hb);
                }
            }
            let mut hist = RtoHistogram::new(input.failover_s);
            for hb in &per_batch {
                hist.merge(hb);
            }
            let quantile = |q: f64| {
                hist.quantile(q).map(|pooled| {
                    let each: Vec<f64> = per_batch.iter().filter_map(|h| h.quantile(q)).collect();
                    batch_ci(pooled, &each)
                })
            };
            Row {
                spares: s,
                uncovered_host_fraction: mean_ci(&col(&|t| t.uncovered_host_hours / (n * horizon))),
                failures_without_spare: ratio_ci(
                    &col(&|t| t.failures_without_spare),
                    &col(&|t| t.failures),
                ),
                vm_hours_down_per_year: mean_ci(&col(&|t| t.vm_excess_hours / input.years)),
                vm_availability: mean_ci(&col(&|t| {
                    if vms == 0.0 {
                        1.0
                    } else {
                        1.0 - t.vm_down_hours / (vms * horizon)
                    }
                })),
                rto_p50_s: quantile(0.5),
                rto_p99_s: quantile(0.99),
                failovers: hist.count(),
                analytic: analytic.map(|(mtbf, mttr)| {
                    let p = analytic::unavailability(mtbf, mttr);
                    Analytic {
                        uncovered_host_fraction: analytic::uncovered_host_fraction(
                            input.hosts.len(),
                            p,
                            s,
                        ),
                        failures_without_spare: analytic::failures_without_spare(
                            input.hosts.len(),
                            p,
                            s,
                        ),
                    }
                }),
            }
        })
        .collect();
    let spare_years = if input.spares_fail {
        input.spares_max as f64
    } else {
        0.0
    };
    Ok(PlanResult {
        rows,
        production_hosts: input.hosts.len(),
        vms: input.vm_count(),
        step_table_spares: spare_pool_size(input.hosts.len()),
        seed: input.seed,
        trials: input.trials,
        years: input.years,
        host_years: (n + spare_years) * input.years * f64::from(input.trials),
        failover_s: input.failover_s,
    })
}
