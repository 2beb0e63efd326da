//! `cargo xtask bench`: measures, prints a Markdown report, and with
//! `--out FILE` writes it (BENCHMARKS.md). Wall-clock time is the point
//! here, so this binary reads the real clock.
#![allow(clippy::disallowed_methods)]

use anyhow::Result;
use krrish_sim::{demo, Fault, SimConfig, SimWorld};
use std::fmt::Write as _;
use std::time::Instant;

struct WorldRun {
    tick_ms: u64,
    sim_s: f64,
    wall_s: f64,
    rto_mean_s: f64,
    rto_max_s: f64,
    checks: u64,
}

/// 50 production hosts with 10 VMs each (500 VMs) and the 5 spares the rule
/// gives them; one simulated hour; hv-07 crashes at 10 min.
fn world_hour(tick_ms: u64, seed: u64) -> Result<WorldRun> {
    let (hosts, vms) = demo::cluster(50, 5, 10);
    let config = SimConfig {
        seed,
        tick_ms,
        ..SimConfig::default()
    };
    let started = Instant::now();
    let mut w = SimWorld::new(hosts, vms, config);
    w.run_until(600_000).map_err(|v| anyhow::anyhow!("{v}"))?;
    w.inject(&Fault::Crash("hv-07".into()))
        .map_err(|e| anyhow::anyhow!(e))?;
    w.run_until(3_600_000).map_err(|v| anyhow::anyhow!("{v}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let world = w.world();
    anyhow::ensure!(
        world.recoveries.len() == 10,
        "expected 10 recoveries, got {}",
        world.recoveries.len()
    );
    let rtos: Vec<f64> = world
        .recoveries
        .iter()
        .map(|r| r.rto_ms as f64 / 1000.0)
        .collect();
    Ok(WorldRun {
        tick_ms,
        sim_s: w.now_ms() as f64 / 1000.0,
        wall_s,
        rto_mean_s: rtos.iter().sum::<f64>() / rtos.len() as f64,
        rto_max_s: rtos.iter().cloned().fold(0.0, f64::max),
        checks: w.checks_run(),
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let quick = args.iter().any(|a| a == "--quick");
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(md, "Produced by `cargo xtask bench` (release build) on the project's standard machine: 2 cores, Debian 12. Figures move a little from run to run; the command is the reference.\n")?;

    writeln!(md, "## Simulated world (turmoil), full stack\n")?;
    writeln!(md, "50 production hosts × 10 VMs (500 VMs) + 5 spares; the real controller and 55 real agents over turmoil TCP; heartbeats every 6 s, DFS lease renewals and disk syncs every 10 s; checkers after every step; hv-07 crashes at 10 min and its 10 VMs fail over; one simulated hour.\n")?;
    writeln!(md, "| tick | simulated | wall | speed (sim s / wall s) | failover RTO mean / max | checker passes |")?;
    writeln!(md, "|---:|---:|---:|---:|---:|---:|")?;
    let ticks: &[u64] = if quick {
        &[1000]
    } else {
        &[100, 250, 500, 750, 1000]
    };
    for &t in ticks {
        let r = world_hour(t, 1)?;
        let line = format!(
            "| {} ms | {:.0} s | {:.2} s | **{:.0}×** | {:.1} s / {:.1} s | {} |",
            r.tick_ms,
            r.sim_s,
            r.wall_s,
            r.sim_s / r.wall_s,
            r.rto_mean_s,
            r.rto_max_s,
            r.checks
        );
        eprintln!("{line}");
        writeln!(md, "{line}")?;
    }
    print!("{md}");
    if let Some(path) = out {
        std::fs::write(&path, &md)?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
