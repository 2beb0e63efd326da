//! `krrish scenario run|check`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use krrish_core::ha::secs;
use krrish_scenario::{load_scenario, run_scenario, RunOptions, WorldKind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--world`: the simulated worlds, or the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorldArg {
    Turmoil,
    Event,
    Lab,
}

impl WorldArg {
    fn simulated(self) -> Option<WorldKind> {
        match self {
            WorldArg::Turmoil => Some(WorldKind::Turmoil),
            WorldArg::Event => Some(WorldKind::Event),
            WorldArg::Lab => None,
        }
    }
}

#[derive(Subcommand)]
pub enum ScenarioCmd {
    /// Run scenarios in the simulated world.
    Run(Box<RunArgs>),
    /// Load and validate scenarios (and their clusters) without running them.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// Scenario files or directories (searched for *.yaml). Default: scenarios/
    paths: Vec<PathBuf>,
    /// Run with this seed instead of each scenario's own.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run every scenario once per seed in this range (`1..20`, inclusive),
    /// to explore timings the scenario's own seed does not hit.
    #[arg(long, value_name = "FIRST..LAST", value_parser = parse_seed_range)]
    seeds: Option<(u64, u64)>,
    /// Write the trace of the (single) scenario to this file.
    #[arg(long, value_name = "FILE")]
    trace_out: Option<PathBuf>,
    /// Write every scenario's trace into this directory.
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<PathBuf>,
    /// Where traces of failed runs go.
    #[arg(long, value_name = "DIR", default_value = "target/scenario-traces")]
    failed_trace_dir: PathBuf,
    /// Which world drives the control plane: `turmoil` (sockets, stepped
    /// per tick), `event` (the event queue, fast) or `lab` (the real
    /// daemons, libvirt guests and kernel links of the lab in a box; needs
    /// `cargo xtask lab up` and a krrish built with `--features lab`).
    /// Default: turmoil for files, event for swarms.
    #[arg(long, value_name = "turmoil|event|lab")]
    world: Option<WorldArg>,
    /// With `--world lab`: physical lab hosts instead of the box, as this
    /// inventory file describes them (checked, then the hosts' preflight;
    /// what the inventory cannot play is reported NOT RUN, with why).
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Random clusters and fault schedules, one per seed (`--seeds`, default
    /// 1..100, or one `--seed`), instead of files.
    #[arg(long, conflicts_with_all = ["paths", "trace_dir"])]
    swarm: bool,
    /// With --swarm: reduce each failing seed to a minimal scenario file
    /// under scenarios/regressions/ that fails the same way.
    #[arg(long, requires = "swarm")]
    shrink: bool,
    /// With --swarm: run only slice i of n of the seed range (e.g. 3/64).
    #[arg(long, value_name = "i/n", requires = "swarm", value_parser = crate::swarm::parse_shard)]
    shard: Option<(u64, u64)>,
    /// With --swarm: seeds run at once (default: the machine's cores).
    #[arg(long, value_name = "N", requires = "swarm")]
    jobs: Option<usize>,
    /// With --swarm: write the results as JUnit XML to this file.
    #[arg(long, value_name = "FILE", requires = "swarm")]
    junit: Option<PathBuf>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Scenario files or directories. Default: scenarios/
    paths: Vec<PathBuf>,
}

pub fn main(cmd: ScenarioCmd) -> Result<ExitCode> {
    match cmd {
        ScenarioCmd::Run(a) => run(*a),
        ScenarioCmd::Check(a) => check(a),
    }
}

/// Scenario files under the given paths, sorted, each once.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths.to_vec()
    };
    let mut out = Vec::new();
    for p in &paths {
        if p.is_dir() {
            walk(p, &mut out, 0).with_context(|| format!("reading {}", p.display()))?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        bail!(
            "no scenario files (*.yaml) under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(out)
}

/// The `*.yaml` files under `dir`. A directory reached twice (symbolic
/// links in a cycle multiplied one scenario 87,381 times — found by the
/// bad-input adversary) is walked once; only regular files are taken (a
/// FIFO named `*.yaml` blocked the run).
fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    walk_once(dir, out, depth, &mut seen)
}

fn walk_once(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    depth: usize,
    seen: &mut std::collections::BTreeSet<PathBuf>,
) -> std::io::Result<()> {
    if depth > 16 || !seen.insert(dir.canonicalize()?) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk_once(&p, out, depth + 1, seen)?;
        } else if p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    let files = collect(&a.paths)?;
    let (mut ok, mut bad) = (0, 0);
    for f in &files {
        match load_scenario(f) {
            Ok(s) => {
                ok += 1;
                out!(
                    "ok    {:<36} {} hosts ({} spares), {} VMs, {} timeline items, {} expectations",
                    s.name,
                    s.cluster.hosts.len(),
                    s.cluster.spare_hosts,
                    s.cluster.vms.len(),
                    s.timeline.len(),
                    s.expectations.len()
                );
            }
            Err(e) => {
                bad += 1;
                out!("error {e}");
            }
        }
    }
    out!("{ok} passed, {bad} failed");
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run(a: RunArgs) -> Result<ExitCode> {
    if a.inventory.is_some() && !matches!(a.world, Some(WorldArg::Lab)) {
        bail!("--inventory describes physical lab hosts: it goes with --world lab");
    }
    if a.swarm {
        let mut seeds: Vec<u64> = match (a.seed, a.seeds) {
            (Some(s), _) => vec![s],
            (None, Some((lo, hi))) => (lo..=hi).collect(),
            (None, None) => (1..=100).collect(),
        };
        if let Some((i, n)) = a.shard {
            seeds = crate::swarm::shard(&seeds, i, n).to_vec();
        }
        if a.trace_out.is_some() && seeds.len() != 1 {
            bail!("--trace-out takes one run; give one --seed");
        }
        return crate::swarm::run(crate::swarm::SwarmArgs {
            seeds,
            jobs: a
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            world: match a.world.map(|w| (w, w.simulated())) {
                None => WorldKind::Event,
                Some((_, Some(w))) => w,
                Some((_, None)) => bail!("--world lab runs scenario files, not swarms"),
            },
            shrink: a.shrink,
            junit: a.junit,
            trace_out: a.trace_out,
            failed_trace_dir: a.failed_trace_dir,
            regressions_dir: PathBuf::from("scenarios/regressions"),
        });
    }
    let files = collect(&a.paths)?;
    let world = match a.world.map(|w| (w, w.simulated())) {
        None => WorldKind::default(),
        Some((_, Some(w))) => w,
        Some((_, None)) => return run_lab(&files, &a),
    };
    if a.trace_out.is_some() && files.len() != 1 {
        bail!(
            "--trace-out takes one scenario ({} given); use --trace-dir for many",
            files.len()
        );
    }
    if let Some(out) = &a.trace_out {
        crate::output_file::not_an_input(out, "--trace-out", "a trace", &files)?;
    }
    if let Some(d) = &a.trace_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let seeds: Vec<Option<u64>> = match a.seeds {
        Some((lo, hi)) => (lo..=hi).map(Some).collect(),
        None => vec![a.seed],
    };
    if a.trace_out.is_some() && seeds.len() != 1 {
        bail!("--trace-out takes one run; use --trace-dir with --seeds");
    }
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        for seed in &seeds {
            let Some(s) = load_reported(f) else {
                failed += 1;
                continue;
            };
            #[allow(clippy::disallowed_methods)] // progress pacing only
            let mut last = std::time::Instant::now();
            let name = s.name.clone();
            let mut progress = |sim_ms: u64, end_ms: u64| {
                if last.elapsed().as_secs_f64() >= 2.0 {
                    #[allow(clippy::disallowed_methods)]
                    {
                        last = std::time::Instant::now();
                    }
                    eprintln!(
                        "      {name}: {} of {} simulated",
                        secs(sim_ms),
                        secs(end_ms)
                    );
                }
            };
            let report = run_scenario(
                &s,
                RunOptions {
                    seed: *seed,
                    world,
                    progress: Some(&mut progress),
                },
            );
            let verdict = if report.passed() { "PASS" } else { "FAIL" };
            out!(
                "{verdict}  {:<36} seed={:<6} sim={:>9}  wall={:.2}s",
                report.name,
                report.seed,
                secs(report.sim_ms),
                report.wall.as_secs_f64()
            );
            if let Some(out) = &a.trace_out {
                std::fs::write(out, &report.trace)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            if let Some(d) = &a.trace_dir {
                let p = d.join(trace_file_name(&report.name, report.seed));
                std::fs::write(&p, &report.trace)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            if report.passed() {
                passed += 1;
            } else {
                failed += 1;
                for why in &report.failures {
                    out!("      {why}");
                }
                std::fs::create_dir_all(&a.failed_trace_dir).ok();
                let p = a
                    .failed_trace_dir
                    .join(trace_file_name(&report.name, report.seed));
                if std::fs::write(&p, &report.trace).is_ok() {
                    out!("      trace: {}", p.display());
                }
                out!("      reproduce: {}", report.reproduce());
            }
        }
    }
    out!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--world lab`: each file once, in real time, against the lab in a box;
/// beside each real RTO, the event world's for the same file and seed.
#[cfg(feature = "lab")]
fn run_lab(files: &[PathBuf], a: &RunArgs) -> Result<ExitCode> {
    if a.seeds.is_some() || a.seed.is_some() {
        bail!("--world lab runs in real time: seeds do not apply");
    }
    let (lab, inventory);
    let site = match &a.inventory {
        Some(file) => match crate::lab_world::load_inventory_site(file) {
            Ok(i) => {
                inventory = i;
                crate::lab_world::Site::Inventory(&inventory)
            }
            Err(e) => {
                out!("FAIL  {e:#}");
                out!("0 passed, 0 failed, {} not run", files.len());
                return Ok(ExitCode::FAILURE);
            }
        },
        None => {
            lab = crate::lab_world::LabState::load(Path::new("target/lab"))?;
            crate::lab_world::Site::Box(&lab)
        }
    };
    let exe = std::env::current_exe().context("finding this krrish binary")?;
    let (mut passed, mut failed, mut not_run) = (0, 0, 0);
    for f in files {
        let Some(s) = load_reported(f) else {
            failed += 1;
            continue;
        };
        #[allow(clippy::disallowed_methods)] // the lab runs in real time
        let started = std::time::Instant::now();
        let outcome = crate::lab_world::run(&s, f, site, &exe);
        let wall = started.elapsed().as_secs_f64();
        let sim = run_scenario(
            &s,
            RunOptions {
                seed: None,
                world: WorldKind::Event,
                progress: None,
            },
        );
        match outcome {
            Ok(crate::lab_world::LabOutcome::Passed { rtos, events }) => {
                passed += 1;
                out!("PASS  {:<36} world=lab  wall={wall:.1}s", s.name);
                for (vm, rto) in rtos {
                    let simulated = sim
                        .recoveries
                        .iter()
                        .find(|r| r.vm == vm)
                        .map(|r| secs(r.rto_ms))
                        .unwrap_or_else(|| "none".into());
                    out!("      {vm}: real RTO {rto:.1}s, simulated (event world, seed {}) {simulated}", sim.seed);
                }
                for l in krrish_scenario::run::compare_events(&events, &sim.events) {
                    out!("      {l}");
                }
            }
            Ok(crate::lab_world::LabOutcome::Failed { why, events }) => {
                failed += 1;
                out!("FAIL  {:<36} world=lab  wall={wall:.1}s", s.name);
                for w in why {
                    out!("      {w}");
                }
                for l in krrish_scenario::run::compare_events(&events, &sim.events) {
                    out!("      {l}");
                }
                out!(
                    "      logs: {}/ (kept until the next lab run)",
                    site.local_run_dir().display()
                );
            }
            Ok(crate::lab_world::LabOutcome::NotRun(why)) => {
                not_run += 1;
                out!("NOT RUN  {:<33} world=lab", s.name);
                for w in why {
                    out!("      {w}");
                }
            }
            Err(e) => {
                failed += 1;
                out!("FAIL  {:<36} world=lab: {e:#}", s.name);
            }
        }
    }
    out!("{passed} passed, {failed} failed, {not_run} not run");
    Ok(if failed == 0 && not_run == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(not(feature = "lab"))]
fn run_lab(_: &[PathBuf], _: &RunArgs) -> Result<ExitCode> {
    bail!(
        "--world lab: this krrish was built without the lab; use \
         `cargo xtask scenario --world lab …` (it builds with --features lab \
         after `cargo xtask lab up`)"
    )
}

/// The scenario in `f`, or None after printing why it cannot be loaded
/// (a failure of the run).
fn load_reported(f: &Path) -> Option<krrish_scenario::Scenario> {
    match load_scenario(f) {
        Ok(s) => Some(s),
        Err(e) => {
            out!("FAIL  {:<36} cannot load", f.display());
            out!("      {e}");
            None
        }
    }
}

fn parse_seed_range(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s
        .split_once("..")
        .ok_or_else(|| format!("expected FIRST..LAST, such as 1..20, not `{s}`"))?;
    let lo: u64 = lo
        .trim()
        .parse()
        .map_err(|_| format!("`{lo}` is not a seed"))?;
    let hi: u64 = hi
        .trim()
        .parse()
        .map_err(|_| format!("`{hi}` is not a seed"))?;
    if hi < lo {
        return Err(format!("the range {lo}..{hi} is empty"));
    }
    if hi - lo >= 1_000_000 {
        return Err("at most a million seeds at once".into());
    }
    Ok((lo, hi))
}

fn trace_file_name(name: &str, seed: u64) -> String {
    format!("{}.seed{seed}.log", name.replace('/', "-"))
}
