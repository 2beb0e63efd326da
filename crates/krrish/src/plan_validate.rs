//! `krrish plan spares --validate N`: the fast model checked against the
//! real HA manager. The first N trials' failure histories — the very ones
//! the planner draws ([`trial_history`]) — are replayed through the event
//! world: the shipped controller and agent machines over the simulated
//! cluster the plan describes, with the step table's spares. Each failure is
//! a crash with the BMC answering or a power loss that takes the BMC too (in
//! the proportion `--power-loss-fraction`); each repair brings the host back
//! (and its VMs fail back); spares fail too when the plan says so.
//!
//! Years cannot be simulated heartbeat by heartbeat, so time is compressed:
//! between two consecutive changes the event world runs at most
//! [`WINDOW_MS`] (ten minutes: failover, fencing by lease expiry and
//! failback all settle well within), and the state it reaches is taken to
//! hold for the rest of the real interval. At the end of each window, every
//! production host down in the history whose HA VMs are not all running is
//! *uncovered* for that interval — the same quantity the fast model counts —
//! and a failure whose VMs are not running at the end of its first window
//! found no spare. Every HA VM's recovery time (RTO) is recorded by failure
//! mode. The fast model is run on the same N trials, so the two columns
//! differ only by what the model leaves out.

use anyhow::{bail, Result};
use krrish_core::ha::secs;
use krrish_core::{HaPolicy, HostId, HostSpec, VmId, VmSpec, Zone};
use krrish_event::EventWorld;
use krrish_plan::engine::{trial_history, HOURS_PER_YEAR};
use krrish_plan::{plan, PlanInput};
use krrish_sim::world::SeededRng;
use krrish_sim::{Fault, SimConfig, SimulatedWorld};
use std::collections::BTreeMap;

/// Simulated time run between two consecutive changes of a history, at most.
pub const WINDOW_MS: u64 = 10 * 60_000;
/// When the first change happens (the cluster settled, every agent connected).
const SETTLE_MS: u64 = 60_000;

/// What the replayed histories measured.
#[derive(Default)]
pub struct Measured {
    pub trials: u32,
    /// RTOs of HA VMs whose home crashed with the BMC answering.
    pub crash_rtos_s: Vec<f64>,
    /// … whose home lost power with its BMC (fenced by lease expiry).
    pub power_loss_rtos_s: Vec<f64>,
    /// Other recoveries (VMs moved off a spare that failed).
    pub other_rtos_s: Vec<f64>,
    /// Recoveries after waiting for a spare longer than a window (their
    /// wait is counted as uncovered time).
    pub waited: u64,
    pub failures: u64,
    pub failures_without_spare: u64,
    pub uncovered_host_hours: f64,
    pub production_host_hours: f64,
    /// Event-world time the replay took, simulated.
    pub simulated_ms: u64,
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    hosts: &[HostSpec],
    vms: &[VmSpec],
    input: &PlanInput,
    trials: u32,
    power_loss_fraction: f64,
    seed: u64,
    progress: &dyn Fn(u32, &Measured),
) -> Result<Measured> {
    let production: Vec<HostId> = hosts
        .iter()
        .filter(|h| h.zone.runs_vms())
        .map(|h| h.id.clone())
        .collect();
    let spares: Vec<HostId> = hosts
        .iter()
        .filter(|h| h.zone == Zone::Spare)
        .map(|h| h.id.clone())
        .collect();
    if production.is_empty() {
        bail!("no production hosts to fail");
    }
    if production.len() != input.hosts.len() {
        bail!(
            "the cluster has {} production hosts but the plan {}",
            production.len(),
            input.hosts.len()
        );
    }
    if !(0.0..=1.0).contains(&power_loss_fraction) {
        bail!("--power-loss-fraction must be within 0..=1, not {power_loss_fraction}");
    }
    // The HA VMs a spare should cover, by home.
    // Each VM's home, as the history numbers production hosts.
    let home_index: BTreeMap<&VmId, usize> = vms
        .iter()
        .filter_map(|v| Some((&v.id, production.iter().position(|p| p == &v.home)?)))
        .collect();
    let mut restart_vms: BTreeMap<&HostId, Vec<&VmSpec>> = BTreeMap::new();
    for v in vms.iter().filter(|v| v.ha == HaPolicy::Restart) {
        restart_vms.entry(&v.home).or_default().push(v);
    }
    let horizon_h = input.years * HOURS_PER_YEAR;
    let mut m = Measured::default();
    let mut rng = SeededRng::new(seed ^ 0x0076_616c_6964);
    for trial in 0..trials {
        let history = trial_history(input, trial).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut config = SimConfig {
            seed: seed.wrapping_add(u64::from(trial)),
            ..SimConfig::default()
        };
        // The HA manager obeys the rules the model obeyed.
        config.ha.rules = input.rules.rules.clone();
        let mut w = EventWorld::new(hosts.to_vec(), vms.to_vec(), config);
        let err = |v: krrish_sim::Violation| anyhow::anyhow!("trial {trial}: {v}");
        let mut now = SETTLE_MS;
        w.run_until(now).map_err(err)?;
        // Production hosts down in the history: since when (hours), how,
        // and whether their first window has been judged yet.
        let mut down: BTreeMap<usize, (bool, bool)> = BTreeMap::new();
        let mut prev_h = 0.0;
        let mut recoveries_seen = 0;
        let changes = history.iter().map(Some).chain([None]);
        for change in changes {
            let t_h = change.map_or(horizon_h, |c| c.t_hours);
            let gap_ms = ((t_h - prev_h) * 3_600_000.0) as u64;
            now += gap_ms.min(WINDOW_MS);
            w.run_until(now).map_err(err)?;
            // The state the window reached holds for the real interval.
            let world = w.world();
            let covered = |host: &HostId| {
                restart_vms
                    .get(host)
                    .into_iter()
                    .flatten()
                    .all(|v| world.running_on(&v.id).len() == 1)
            };
            // A failure is judged after a full window (a shorter gap may
            // end before its failover could).
            let full = gap_ms >= WINDOW_MS || change.is_none();
            for (&i, (_, judged)) in down.iter_mut() {
                let ok = covered(&production[i]);
                if !ok {
                    m.uncovered_host_hours += t_h - prev_h;
                }
                if full && !*judged {
                    m.failures_without_spare += u64::from(!ok);
                    *judged = true;
                }
            }
            for r in &world.recoveries[recoveries_seen..] {
                let mode = home_index.get(&r.vm).and_then(|i| down.get(i));
                // A VM that waited for capacity waited in compressed time:
                // its wait is in the uncovered hours, not in the RTOs.
                if r.rto_ms >= WINDOW_MS {
                    m.waited += 1;
                    continue;
                }
                let rto = r.rto_ms as f64 / 1000.0;
                match mode {
                    Some((false, _)) => m.crash_rtos_s.push(rto),
                    Some((true, _)) => m.power_loss_rtos_s.push(rto),
                    None => m.other_rtos_s.push(rto),
                }
            }
            recoveries_seen = world.recoveries.len();
            drop(world);
            let Some(c) = change else { break };
            prev_h = t_h;
            let (host, is_production) = if c.host < production.len() {
                (&production[c.host], true)
            } else if let Some(s) = spares.get(c.host - production.len()) {
                (s, false)
            } else {
                continue; // a spare the world does not have
            };
            let fault = if c.up {
                if is_production {
                    down.remove(&c.host);
                }
                Fault::Repair(host.clone())
            } else {
                let power_loss = (rng.below(1_000_000) as f64) < power_loss_fraction * 1_000_000.0;
                if is_production {
                    m.failures += 1;
                    down.insert(c.host, (power_loss, false));
                }
                if power_loss {
                    Fault::PowerLoss(host.clone())
                } else {
                    Fault::Crash(host.clone())
                }
            };
            w.inject(&fault)
                .map_err(|e| anyhow::anyhow!("trial {trial}: {e}"))?;
            // Drop the trace as it goes: a replay's is long and unread.
            w.trace().take();
        }
        m.trials += 1;
        m.production_host_hours += production.len() as f64 * horizon_h;
        m.simulated_ms += now;
        progress(trial, &m);
    }
    Ok(m)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// The report: the measured figures beside the fast model's on the same
/// trials; and the measured mean failover time (to run the table again).
pub fn report(m: &Measured, input: &PlanInput, spares: usize) -> Result<(String, f64)> {
    let model = plan(&PlanInput {
        trials: m.trials,
        spares_max: input.spares_max.max(spares),
        ..input.clone()
    })?;
    let row = model
        .row(spares)
        .ok_or_else(|| anyhow::anyhow!("the model has no row for {spares} spares"))?;
    let mut t = String::new();
    t.push_str(&format!(
        "validation: {} trials × {} years replayed through the event world (the real HA manager), {} spares; \
         each gap between changes compressed to at most {}\n",
        m.trials,
        input.years,
        spares,
        secs(WINDOW_MS)
    ));
    t.push_str(&format!(
        "{:<28} {:>16} {:>16}\n",
        "", "fast model", "HA manager"
    ));
    let measured_uncovered = if m.production_host_hours > 0.0 {
        m.uncovered_host_hours / m.production_host_hours
    } else {
        0.0
    };
    let measured_without = if m.failures > 0 {
        m.failures_without_spare as f64 / m.failures as f64
    } else {
        0.0
    };
    t.push_str(&format!(
        "{:<28} {:>16} {:>16}\n",
        "uncovered_host_fraction",
        format!("{:.2e}", row.uncovered_host_fraction.mean),
        format!("{measured_uncovered:.2e}")
    ));
    t.push_str(&format!(
        "{:<28} {:>16} {:>16}\n",
        "failures_without_spare",
        format!("{:.2e}", row.failures_without_spare.mean),
        format!(
            "{measured_without:.2e} ({}/{})",
            m.failures_without_spare, m.failures
        )
    ));
    let all = sorted(
        &[
            m.crash_rtos_s.as_slice(),
            &m.power_loss_rtos_s,
            &m.other_rtos_s,
        ]
        .concat(),
    );
    t.push_str(&format!(
        "{:<28} {:>16} {:>16}\n",
        "failover_p50 (spare free)",
        fmt_s(input.failover_s),
        fmt_s(quantile(&all, 0.5))
    ));
    t.push_str(&format!(
        "{:<28} {:>16} {:>16}\n",
        "failover_p99 (spare free)",
        fmt_s(input.failover_s),
        fmt_s(quantile(&all, 0.99))
    ));
    t.push_str("measured RTO by failure      VMs    rto_p50    rto_p99    rto_max\n");
    for (name, v) in [
        ("crash (BMC answers)", &m.crash_rtos_s),
        ("power loss (BMC dead)", &m.power_loss_rtos_s),
        ("off a failed spare", &m.other_rtos_s),
    ] {
        let s = sorted(v);
        t.push_str(&format!(
            "{name:<26} {:>6} {:>10} {:>10} {:>10}\n",
            s.len(),
            fmt_s(quantile(&s, 0.5)),
            fmt_s(quantile(&s, 0.99)),
            fmt_s(s.last().copied().unwrap_or(f64::NAN)),
        ));
    }
    let mean = if all.is_empty() {
        input.failover_s
    } else {
        all.iter().sum::<f64>() / all.len() as f64
    };
    t.push_str(&format!(
        "{} recoveries came after waiting for a spare (their wait is in the uncovered fraction); \
         the fast model assumes {} per failover, measured mean {}; {:.1} h of event-world time simulated\n",
        m.waited,
        secs((input.failover_s * 1000.0) as u64),
        secs((mean * 1000.0) as u64),
        m.simulated_ms as f64 / 3_600_000.0
    ));
    Ok((t, mean))
}

fn fmt_s(s: f64) -> String {
    if s.is_nan() {
        "-".into()
    } else {
        format!("{s:.1}s")
    }
}
