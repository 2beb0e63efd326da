//! `krrish plan spares --validate N`: the fast model's failover time checked
//! against the real HA manager. N single-host failures (a crash with the
//! BMC answering, or a power loss that takes the BMC too, in the proportion
//! `--power-loss-fraction`) are run in the event world — the shipped
//! controller and agent machines over the simulated cluster the plan
//! describes, with the step table's spares — and every HA VM's measured
//! recovery time (RTO) is reported beside the model's fixed `failover_s`.
//! The planner is then run again with the measured mean, so the table shows
//! what the difference costs.
//!
//! What this does not check: coverage under overlapping failures (the fast
//! model's uncovered fraction). That needs failure histories of years of
//! simulated time, which the event world cannot replay at this size yet.

use anyhow::{bail, Result};
use krrish_core::ha::secs;
use krrish_core::{HaPolicy, HostSpec, VmSpec, Zone};
use krrish_event::EventWorld;
use krrish_sim::world::SeededRng;
use krrish_sim::{Fault, SimConfig, SimulatedWorld};

/// One failure's measured recoveries.
pub struct Episode {
    pub power_loss: bool,
    pub rtos_s: Vec<f64>,
    /// HA VMs that were not running again within the episode's bound.
    pub unrecovered: usize,
}

/// How long after a failure its VMs must be running again, at most.
const EPISODE_MS: u64 = 15 * 60_000;
/// When the failure happens (the cluster settled, every agent connected).
const FAIL_AT_MS: u64 = 60_000;

pub fn run(
    hosts: &[HostSpec],
    vms: &[VmSpec],
    episodes: usize,
    power_loss_fraction: f64,
    seed: u64,
) -> Result<Vec<Episode>> {
    let production: Vec<&HostSpec> = hosts.iter().filter(|h| h.zone != Zone::Spare).collect();
    if production.is_empty() {
        bail!("no production hosts to fail");
    }
    if !(0.0..=1.0).contains(&power_loss_fraction) {
        bail!("--power-loss-fraction must be within 0..=1, not {power_loss_fraction}");
    }
    let mut rng = SeededRng::new(seed ^ 0x0076_616c_6964);
    let mut out = Vec::with_capacity(episodes);
    for i in 0..episodes {
        let victim = production[rng.below(production.len() as u64) as usize]
            .id
            .clone();
        let power_loss = (rng.below(1_000_000) as f64) < power_loss_fraction * 1_000_000.0;
        let config = SimConfig {
            seed: seed.wrapping_add(i as u64),
            ..SimConfig::default()
        };
        let mut w = EventWorld::new(hosts.to_vec(), vms.to_vec(), config);
        let err = |v: krrish_sim::Violation| anyhow::anyhow!("episode {i}: {v}");
        w.run_until(FAIL_AT_MS).map_err(err)?;
        let fault = if power_loss {
            Fault::PowerLoss(victim.clone())
        } else {
            Fault::Crash(victim.clone())
        };
        w.inject(&fault).map_err(|e| anyhow::anyhow!(e))?;
        w.run_until(FAIL_AT_MS + EPISODE_MS).map_err(err)?;
        let world = w.world();
        let ha_vms: Vec<&VmSpec> = vms
            .iter()
            .filter(|v| v.home == victim && v.ha == HaPolicy::Restart)
            .collect();
        let rtos_s: Vec<f64> = world
            .recoveries
            .iter()
            .map(|r| r.rto_ms as f64 / 1000.0)
            .collect();
        let unrecovered = ha_vms
            .iter()
            .filter(|v| !world.recoveries.iter().any(|r| r.vm == v.id))
            .count();
        out.push(Episode {
            power_loss,
            rtos_s,
            unrecovered,
        });
    }
    Ok(out)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// The report: measured RTO by failure mode beside the model's.
pub fn report(episodes: &[Episode], model_failover_s: f64) -> (String, f64) {
    let mut text = String::new();
    let mut all: Vec<f64> = Vec::new();
    text.push_str(&format!(
        "validation: {} single-host failures in the event world (the real HA manager), RTO of every HA VM\n",
        episodes.len()
    ));
    text.push_str("failure                        failures    VMs    rto_p50    rto_p99    rto_max   unrecovered\n");
    for (name, pl) in [
        ("crash (BMC answers)", false),
        ("power loss (BMC dead)", true),
    ] {
        let eps: Vec<&Episode> = episodes.iter().filter(|e| e.power_loss == pl).collect();
        let mut r: Vec<f64> = eps.iter().flat_map(|e| e.rtos_s.iter().copied()).collect();
        r.sort_by(|a, b| a.total_cmp(b));
        let unrecovered: usize = eps.iter().map(|e| e.unrecovered).sum();
        text.push_str(&format!(
            "{name:<30} {:>8} {:>6} {:>10} {:>10} {:>10} {:>13}\n",
            eps.len(),
            r.len(),
            fmt_s(quantile(&r, 0.5)),
            fmt_s(quantile(&r, 0.99)),
            fmt_s(r.last().copied().unwrap_or(f64::NAN)),
            unrecovered
        ));
        all.extend(r);
    }
    let mean = if all.is_empty() {
        model_failover_s
    } else {
        all.iter().sum::<f64>() / all.len() as f64
    };
    text.push_str(&format!(
        "the fast model assumes {} per failover; measured mean {}\n",
        secs((model_failover_s * 1000.0) as u64),
        secs((mean * 1000.0) as u64)
    ));
    (text, mean)
}

fn fmt_s(s: f64) -> String {
    if s.is_nan() {
        "-".into()
    } else {
        format!("{s:.1}s")
    }
}
