//! `krrish scenario run --swarm`: random clusters and fault schedules, one
//! per seed, in the event world by default. Prints each seed's parameters
//! and verdict, a progress line on long runs, the replay command of a
//! failure; `--shrink` reduces a failure to a scenario file under
//! `scenarios/regressions/`; `--shard i/n` runs one slice of the seed range;
//! `--junit` writes the results as JUnit XML.

use anyhow::{Context, Result};
use krrish_core::ha::secs;
use krrish_scenario::swarm::{self, failure_kind, generate, SwarmCase};
use krrish_scenario::{run_scenario, RunOptions, WorldKind};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub struct SwarmArgs {
    pub seeds: Vec<u64>,
    /// Seeds run at once (threads); results print in seed order.
    pub jobs: usize,
    pub world: WorldKind,
    pub shrink: bool,
    pub junit: Option<PathBuf>,
    pub trace_out: Option<PathBuf>,
    pub failed_trace_dir: PathBuf,
    /// Where `--shrink` writes (the repository's regressions directory).
    pub regressions_dir: PathBuf,
}

/// The seeds of slice `i` of `n` (1-based) of `seeds`, contiguous.
pub fn shard(seeds: &[u64], i: u64, n: u64) -> &[u64] {
    let len = seeds.len() as u64;
    let (from, to) = ((i - 1) * len / n, i * len / n);
    &seeds[from as usize..to as usize]
}

pub fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("expected i/n, such as 3/64, not `{s}`"))?;
    let i: u64 = i
        .trim()
        .parse()
        .map_err(|_| format!("`{i}` is not a number"))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number"))?;
    if n == 0 || i == 0 || i > n {
        return Err(format!("shard {i}/{n}: expected 1 ≤ i ≤ n"));
    }
    Ok((i, n))
}

struct Outcome {
    seed: u64,
    summary: String,
    wall_s: f64,
    failures: Vec<String>,
}

fn replay(seed: u64, world: WorldKind) -> String {
    let w = if world == WorldKind::Event {
        String::new()
    } else {
        format!(" --world {}", world.name())
    };
    format!("cargo xtask scenario --swarm --seed {seed}{w}")
}

pub fn run(a: SwarmArgs) -> Result<ExitCode> {
    #[allow(clippy::disallowed_methods)] // wall time for the report only
    let started = std::time::Instant::now();
    #[allow(clippy::disallowed_methods)]
    let mut last_progress = std::time::Instant::now();
    let total = a.seeds.len();
    let mut outcomes = Vec::with_capacity(total);
    let (mut passed, mut failed) = (0usize, 0usize);
    // Workers take seeds in order and send back (index, case, report); the
    // main thread prints them in seed order. Every run is a pure function
    // of its seed, whichever thread runs it.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    let world = a.world;
    let seeds = &a.seeds;
    let jobs = a.jobs.clamp(1, 64);
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..jobs {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { return };
                let case = generate(seed);
                let path = PathBuf::from(format!("swarm/seed-{seed}.yaml"));
                let report = case.scenario(&path).map(|s| {
                    run_scenario(
                        &s,
                        RunOptions {
                            world,
                            ..Default::default()
                        },
                    )
                });
                if tx.send((i, case, report)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut pending = std::collections::BTreeMap::new();
        let mut done = 0usize;
        for (i, case, report) in rx {
            pending.insert(i, (case, report));
            while let Some((case, report)) = pending.remove(&done) {
                let seed = case.seed;
                let r = report
                    .with_context(|| format!("swarm seed {seed}: generated an invalid scenario"))?;
                let verdict = if r.passed() { "PASS" } else { "FAIL" };
                out!(
                    "{verdict}  swarm seed={seed:<8} {}  sim={}  wall={:.2}s",
                    case.summary(),
                    secs(r.sim_ms),
                    r.wall.as_secs_f64()
                );
                if let Some(out) = &a.trace_out {
                    std::fs::write(out, &r.trace)
                        .with_context(|| format!("writing {}", out.display()))?;
                }
                if r.passed() {
                    passed += 1;
                } else {
                    failed += 1;
                    for why in &r.failures {
                        out!("      {why}");
                    }
                    std::fs::create_dir_all(&a.failed_trace_dir).ok();
                    let p = a.failed_trace_dir.join(format!("swarm.seed{seed}.log"));
                    if std::fs::write(&p, &r.trace).is_ok() {
                        out!("      trace: {}", p.display());
                    }
                    out!("      reproduce: {}", replay(seed, world));
                    if a.shrink {
                        shrink_and_write(&case, world, &r.failures, &a.regressions_dir)?;
                    }
                }
                outcomes.push(Outcome {
                    seed,
                    summary: case.summary(),
                    wall_s: r.wall.as_secs_f64(),
                    failures: r.failures,
                });
                done += 1;
                if last_progress.elapsed().as_secs_f64() >= 5.0 && done < total {
                    #[allow(clippy::disallowed_methods)]
                    {
                        last_progress = std::time::Instant::now();
                    }
                    let per_min = done as f64 / started.elapsed().as_secs_f64() * 60.0;
                    eprintln!(
                        "[{done:>8}/{total}] {:>3}%  {passed} passed, {failed} failed  ({per_min:.0} seeds/min)",
                        done * 100 / total.max(1)
                    );
                }
            }
        }
        Ok(())
    })?;
    let wall = started.elapsed().as_secs_f64();
    out!(
        "{passed} passed, {failed} failed  ({total} swarm seeds in {wall:.1}s, {:.0} seeds/min)",
        total as f64 / wall.max(1e-9) * 60.0
    );
    if let Some(j) = &a.junit {
        std::fs::write(j, junit(&outcomes, a.world))
            .with_context(|| format!("writing {}", j.display()))?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn shrink_and_write(
    case: &SwarmCase,
    world: WorldKind,
    failures: &[String],
    dir: &Path,
) -> Result<()> {
    let Some(kind) = failure_kind(failures) else {
        return Ok(());
    };
    out!(
        "      shrinking (fails with: {kind}; at most {} runs)…",
        swarm::SHRINK_RUNS_MAX
    );
    let mut tries = 0;
    let small = swarm::shrink(case, world, &kind, |_, _| tries += 1);
    let failure = match swarm::run_case(&small, world) {
        Err(f) => f.first().cloned().unwrap_or_default(),
        Ok(()) => unreachable!("the shrunk case fails by construction"),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let p = dir.join(format!("swarm-{}.yaml", case.seed));
    std::fs::write(&p, small.to_yaml(Some(&failure)))
        .with_context(|| format!("writing {}", p.display()))?;
    out!(
        "      shrunk in {tries} runs: {} faults (from {}), {} hosts (from {}) -> {}",
        small.items.len(),
        case.items.len(),
        small.hosts,
        case.hosts,
        p.display()
    );
    Ok(())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One `<testcase>` per seed, so shards' files merge by concatenating
/// their test cases (every JUnit consumer accepts several suites).
fn junit(outcomes: &[Outcome], world: WorldKind) -> String {
    let failures = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    let time: f64 = outcomes.iter().map(|o| o.wall_s).sum();
    let mut x = String::new();
    let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        x,
        r#"<testsuite name="krrish-swarm-{}" tests="{}" failures="{failures}" time="{time:.3}">"#,
        world.name(),
        outcomes.len()
    );
    for o in outcomes {
        let _ = write!(
            x,
            r#"  <testcase classname="swarm" name="seed {} ({})" time="{:.3}""#,
            o.seed,
            xml_escape(&o.summary),
            o.wall_s
        );
        if o.failures.is_empty() {
            let _ = writeln!(x, "/>");
        } else {
            let _ = writeln!(x, ">");
            let _ = writeln!(
                x,
                r#"    <failure message="{}">{}&#10;reproduce: {}</failure>"#,
                xml_escape(&o.failures[0]),
                xml_escape(&o.failures.join("\n")),
                replay(o.seed, world)
            );
            let _ = writeln!(x, "  </testcase>");
        }
    }
    let _ = writeln!(x, "</testsuite>");
    x
}
