//! `cargo xtask bench`: measures, prints a Markdown report, and with
//! `--out FILE` writes it (BENCHMARKS.md). Wall-clock time is the point
//! here, so this binary reads the real clock.
#![allow(clippy::disallowed_methods)]

use anyhow::Result;
use krrish_event::EventWorld;
use krrish_sim::{demo, Fault, SimConfig, SimulatedWorld};
use krrish_turmoil::SimWorld;
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

struct EventRun {
    hosts: usize,
    vms: usize,
    sim_s: f64,
    wall_s: f64,
    events: u64,
    recoveries: usize,
    checks: u64,
}

/// `hosts` production hosts × `vms_per_host` VMs and 5 spares in the event
/// world; one simulated hour; hv-07 crashes at 10 min.
fn event_hour(hosts: usize, vms_per_host: usize, seed: u64) -> Result<EventRun> {
    let (hs, vms) = demo::cluster(hosts, 5, vms_per_host);
    let n_vms = vms.len();
    let config = SimConfig {
        seed,
        ..SimConfig::default()
    };
    let started = Instant::now();
    let mut w = EventWorld::new(hs, vms, config);
    w.run_until(600_000).map_err(|v| anyhow::anyhow!("{v}"))?;
    w.inject(&Fault::Crash("hv-07".into()))
        .map_err(|e| anyhow::anyhow!(e))?;
    w.run_until(3_600_000).map_err(|v| anyhow::anyhow!("{v}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let recoveries = w.world().recoveries.len();
    anyhow::ensure!(
        recoveries == vms_per_host,
        "expected {vms_per_host} recoveries, got {recoveries}"
    );
    Ok(EventRun {
        hosts,
        vms: n_vms,
        sim_s: SimulatedWorld::now_ms(&w) as f64 / 1000.0,
        wall_s,
        events: w.events_run(),
        recoveries,
        checks: w.checks_run(),
    })
}

fn event_world(md: &mut String, quick: bool, sizes_arg: Option<&str>) -> Result<()> {
    writeln!(
        md,
        "## Event-driven world, full control plane
"
    )?;
    writeln!(md, "The shipped controller and agent machines on one event queue (no sockets, no runtime), the simulated hosts' operations, the message-level network (seeded latency 1–5 ms); heartbeats every 6 s, DFS lease renewals every 5 s, disk syncs every 10 s; the controller saving its state after every decision; the checkers every 100 ms of simulated time; N production hosts + 5 spares; hv-07 crashes at 10 min and its VMs fail over; one simulated hour. Target: ≥ 300 simulated host-hours per wall second at 1,000 hosts × 10 VMs.
")?;
    writeln!(
        md,
        "| hosts × VMs | VMs | events | wall (median of 3) | events / s | **host-hours / s** | recoveries | checker passes |"
    )?;
    writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    // `--sizes 200x10,1000x10` overrides (profiling one size).
    let parsed: Option<Vec<(usize, usize)>> = sizes_arg
        .map(|a| {
            a.split(',')
                .map(|p| {
                    p.split_once('x')
                        .and_then(|(h, v)| Some((h.parse().ok()?, v.parse().ok()?)))
                        .ok_or_else(|| {
                            anyhow::anyhow!("--sizes: {p:?} is not HOSTSxVMS (e.g. 1000x10)")
                        })
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let sizes: &[(usize, usize)] = match &parsed {
        Some(p) => p,
        None if quick => &[(50, 10)],
        None => &[(50, 10), (200, 10), (1000, 10)],
    };
    for &(h, v) in sizes {
        // The median of three runs: one run moves by ±10 % on this machine.
        let mut runs = (0..3)
            .map(|_| event_hour(h, v, 1))
            .collect::<Result<Vec<_>>>()?;
        runs.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
        let r = runs.swap_remove(1);
        let host_hours = (r.hosts + 5) as f64 * r.sim_s / 3600.0;
        let line = format!(
            "| {} × {v} | {} | {} | {:.2} s | {:.2e} | **{:.0}** | {} | {} |",
            r.hosts,
            r.vms,
            r.events,
            r.wall_s,
            r.events as f64 / r.wall_s,
            host_hours / r.wall_s,
            r.recoveries,
            r.checks
        );
        eprintln!("{line}");
        writeln!(md, "{line}")?;
    }
    writeln!(md)?;
    writeln!(md, "How (perf, 1,000 hosts): string compares and clones of host and VM ids in ordered maps were half of all samples, so ids are kept inline (names up to 24 bytes, zero-padded, compared as three big-endian words — the same order as the strings, no allocation to copy; longer names shared on the heap; a property test holds the order to the strings'); the event queue sifts 24-byte keys while events wait in fixed slots; each host's agent sits in a slot looked up once per event. Before that, the HA core's per-host VM index (a heartbeat costs its host's VMs, not the cloud's: 15 → 42 host-hours/s), the next wake-up cached across quiet heartbeats (→ 48), quiet hosts' reconciliation skipped (→ 69), the index also keeping where each VM runs, which run away from home (by home) and which missed a report (→ 109); then the ids and slots above, the spare refresh skipped for a quiet production host's heartbeat, the controller's timer visiting only hosts due for something, a sorted report compared in one walk, the checkers sorting running domains once (→ about 300). What remains is spread thin: the agents' output loop, the queue, host-status building and the controller's heartbeat path each a few per cent; ids as integers end to end would be the next step.\n")?;
    Ok(())
}

/// Swarm seeds of 20 production hosts (one simulated hour each, faults
/// drawn as usual) on every core, as `--swarm` runs them.
fn swarm(md: &mut String, quick: bool) -> Result<()> {
    use krrish_scenario::swarm::generate_sized;
    use krrish_scenario::{run_scenario, RunOptions, WorldKind};
    writeln!(md, "## Swarm\n")?;
    writeln!(md, "Random fault schedules (as `--swarm` draws them: faults, rules, DRS, DPM in about a quarter of seeds and storage moves in about 30 %) on clusters of 20 production hosts plus spares, one simulated hour each (faults, `heal_all` at 40 min, convergence checked at 60 min), event world, seeds spread over both cores. Target: ≥ 600 seeds per minute.\n")?;
    writeln!(md, "| seeds | failed | wall | **seeds / min** |")?;
    writeln!(md, "|---:|---:|---:|---:|")?;
    let n: u64 = if quick { 40 } else { 600 };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let started = Instant::now();
    let failed: u64 = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                sc.spawn(move || {
                    let mut failed = 0;
                    let mut seed = 1 + t;
                    while seed <= n {
                        let case = generate_sized(seed, Some(20));
                        let s = case
                            .scenario(std::path::Path::new("bench.yaml"))
                            .expect("a generated case loads");
                        let r = run_scenario(
                            &s,
                            RunOptions {
                                world: WorldKind::Event,
                                ..Default::default()
                            },
                        );
                        if !r.passed() {
                            failed += 1;
                            // A failing seed is a finding: keep it as a file.
                            let path = format!("target/bench-swarm-failed-{seed}.yaml");
                            let _ = std::fs::write(
                                &path,
                                case.to_yaml(r.failures.first().map(String::as_str)),
                            );
                            eprintln!(
                                "swarm seed {seed} (20 hosts) FAILED: {} — {path}",
                                r.failures.join("; ")
                            );
                        }
                        seed += threads;
                    }
                    failed
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker"))
            .sum()
    });
    let wall = started.elapsed().as_secs_f64();
    let line = format!(
        "| {n} | {failed} | {wall:.2} s | **{:.0}** |",
        n as f64 / wall * 60.0
    );
    eprintln!("{line}");
    writeln!(md, "{line}\n")?;
    Ok(())
}

/// The target: 2,000 trials of 200 hosts over 10 years in < 10 s.
fn planner(md: &mut String, quick: bool) -> Result<()> {
    use krrish_core::{HaPolicy, Resources};
    use krrish_plan::{plan, PlanInput};
    writeln!(md, "## Spare-pool planner (Monte Carlo)\n")?;
    writeln!(md, "200 production hosts × 10 VMs, exponential failures (MTBF 8760 h) and repairs (MTTR 24 h), spares failing too, 10 years, 2,000 trials (4 million production host-years per spare count); both cores.\n")?;
    writeln!(
        md,
        "| spare counts evaluated | host-years simulated | wall | host-years / s |"
    )?;
    writeln!(md, "|---|---:|---:|---:|")?;
    let trials = if quick { 200 } else { 2000 };
    for spares_max in [0usize, 10] {
        let vm = (Resources::new(2, 8 * 1024, 40), HaPolicy::Restart);
        let input = PlanInput {
            spares_max,
            trials,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            ..PlanInput::uniform(200, 10, 10, vm, Resources::new(32, 128 * 1024, 2_000))
        };
        let started = Instant::now();
        let r = plan(&input)?;
        let wall = started.elapsed().as_secs_f64();
        let hy = r.host_years * r.rows.len() as f64;
        let label = if spares_max == 0 {
            "1 (0 spares)".to_string()
        } else {
            format!("{} (0..={spares_max})", spares_max + 1)
        };
        let line = format!(
            "| {label} | {hy:.2e} | {wall:.2} s | **{:.2e}** |",
            hy / wall
        );
        eprintln!("{line}");
        writeln!(md, "{line}")?;
    }
    writeln!(md, "\nHow: each trial draws every host's failure/repair history once and replays it for every spare count (common random numbers), so extra rows cost only the replay; placement calls the core's `place_group_into` with reused buffers (allocation was a third of the profile before); trials are split over threads and merged in trial order, so the table does not depend on the thread count.")?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only event|turmoil|planner`: one section (while working on it).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let want = |s: &str| only.as_deref().is_none_or(|o| o == s);
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(md, "Produced by `cargo xtask bench` (release build) on the project's standard machine: 2 cores, Debian 12. Figures move a little from run to run; the command is the reference.\n")?;

    if want("event") {
        let sizes = args
            .iter()
            .position(|a| a == "--sizes")
            .and_then(|i| args.get(i + 1))
            .map(String::as_str);
        event_world(&mut md, quick, sizes)?;
    }
    if want("swarm") {
        swarm(&mut md, quick)?;
    }
    if want("turmoil") {
        writeln!(md, "## Simulated world (turmoil), full stack\n")?;
        writeln!(md, "50 production hosts × 10 VMs (500 VMs) + 5 spares; the real controller and 55 real agents over turmoil TCP; heartbeats every 6 s, DFS lease renewals every 5 s (read back by the controller while a host is silent) and disk syncs every 10 s; the controller writing its redb store after every decision; checkers after every step; hv-07 crashes at 10 min and its 10 VMs fail over; one simulated hour.\n")?;
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
        writeln!(md)?;
        writeln!(md, "How: turmoil steps every host every tick, so a run costs hosts × ticks whatever happens; profiling (perf) puts about 60 % of the time inside turmoil itself (its per-step walk over every link for every host, and hashing), and little in the controller, agents or checkers, which wake only on their timers and messages. The tick is therefore the lever. Timers inside a host fire at their exact time whatever the tick; what the tick quantises is network delivery: every message waits for the next step, so each hop costs up to one tick. At a 1 s tick a failover's detection, fence answer and boot report each arrive up to a second late (RTO about 2 s longer than at 100 ms, as the table shows). Scenarios run at 100 ms (their expectations are tight); runs that need ≥ 1000× at this size take the smallest tick the table shows reaching it. Two consecutive runs on a quiet machine agree within about 10 %; a concurrent build slows them by a quarter. The checkers run only when the world or the control plane changed since the last step (the pass counts above), which keeps them off the profile.\n")?;
    }
    if want("planner") {
        planner(&mut md, quick)?;
    }
    // Real guests: only when asked (`--only lab`, after `cargo xtask lab up`).
    if only.as_deref() == Some("lab") {
        lab(&mut md, if quick { 1 } else { 3 })?;
    }
    print!("{md}");
    if let Some(path) = out {
        let text = match (&only, std::fs::read_to_string(&path)) {
            // One section measured: it replaces its namesake in the file,
            // the others stay as they were.
            (Some(_), Ok(old)) => splice_sections(&old, &md),
            _ => md,
        };
        std::fs::write(&path, &text)?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

/// The lab in a box: `scenarios/lab/crash-fails-over.yaml` in the lab
/// world `runs` times, the real RTO beside the event world's.
fn lab(md: &mut String, runs: usize) -> Result<()> {
    let exe = "target/release/krrish";
    let file = "scenarios/lab/crash-fails-over.yaml";
    writeln!(md, "## Lab in a box: real RTO beside the simulated one\n")?;
    writeln!(md, "`{file}` with `--world lab` (built with `--features lab`, after `cargo xtask lab up`): hosts as network namespaces, the real controller and agent daemons, TCG guests (KVM is not usable on this machine) booted by libvirt from their DFS copy, hv-01 powered off by its lab BMC 10 s in; the real RTO is crash to the guest running on the spare and answering ping. Beside it, the event world's RTO for the same file and seed (its simulated guest boots in 20 s; the lab's in about 5 s). Heartbeats every 6 s, 3 misses, 1 s grace.\n")?;
    writeln!(
        md,
        "| run | real RTO | simulated RTO (event world) | wall |"
    )?;
    writeln!(md, "|---:|---:|---:|---:|")?;
    for i in 1..=runs {
        #[allow(clippy::disallowed_methods)] // real time is what is measured
        let t = std::time::Instant::now();
        let out = std::process::Command::new(exe)
            .args(["scenario", "run", "--world", "lab", file])
            .output()?;
        let wall = t.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            anyhow::bail!(
                "lab run {i} failed:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = text
            .lines()
            .find(|l| l.contains("real RTO"))
            .ok_or_else(|| anyhow::anyhow!("lab run {i}: no RTO line in:\n{text}"))?;
        let real = line
            .split("real RTO ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("?");
        let sim = line.rsplit(' ').next().unwrap_or("?");
        let row = format!("| {i} | **{real}** | {sim} | {wall:.0} s |");
        eprintln!("{row}");
        writeln!(md, "{row}")?;
    }
    writeln!(md)?;
    Ok(())
}

/// `old` with each `## ` section of `new` put in place of the section of
/// the same heading (appended if `old` has none).
fn splice_sections(old: &str, new: &str) -> String {
    fn sections(text: &str) -> (String, Vec<(String, String)>) {
        let mut head = String::new();
        let mut out: Vec<(String, String)> = Vec::new();
        for line in text.split_inclusive('\n') {
            if line.starts_with("## ") {
                out.push((line.trim_end().to_string(), String::new()));
            }
            match out.last_mut() {
                Some((_, body)) => body.push_str(line),
                None => head.push_str(line),
            }
        }
        (head, out)
    }
    let (head, mut kept) = sections(old);
    let (_, fresh) = sections(new);
    for (title, body) in fresh {
        match kept.iter_mut().find(|(t, _)| *t == title) {
            Some((_, b)) => *b = body,
            None => kept.push((title, body)),
        }
    }
    let mut text = head;
    for (_, body) in kept {
        text.push_str(&body);
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_section_replaces_its_namesake_and_keeps_the_rest() {
        let old = "# B\n\nintro\n\n## A\n\nold a\n\n## S\n\nold s\n";
        let new = "# B\n\nintro\n\n## S\n\nnew s\n";
        assert_eq!(
            super::splice_sections(old, new),
            "# B\n\nintro\n\n## A\n\nold a\n\n## S\n\nnew s\n"
        );
        let added = super::splice_sections(old, "# B\n\n## Z\n\nz\n");
        assert!(added.ends_with("## S\n\nold s\n## Z\n\nz\n"), "{added}");
    }
}
