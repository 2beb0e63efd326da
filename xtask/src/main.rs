//! `cargo xtask …`: the project's own commands.
//!
//! - `scenario [ARGS…]` — run scenarios in the simulated world (the main job);
//!   arguments go to `krrish scenario run` (paths, `--seed`, `--seeds`,
//!   `--trace-out`, …). Default: every file under `scenarios/`.
//! - `ci` — the whole suite, as CI runs it: system packages, fmt, clippy,
//!   tests, real guests in the lab in a box, every scenario in the turmoil world and in the event world, a
//!   fixed budget of seed exploration, a fixed number of swarm seeds (JUnit
//!   XML in `target/swarm-ci.xml`) — those three simulated sweeps run
//!   alongside the lab's real-time step, at the lowest CPU priority (see
//!   [`alongside`]). Prints `N passed, M failed` over its steps.
//! - `nightly` — the same with large exploration budgets; `nightly
//!   --inventory FILE` adds the lab scenarios on physical hosts (those the
//!   inventory cannot play are reported NOT RUN, with why).
//! - `bench` — the benchmarks, written to `BENCHMARKS.md`.
//! - `lab up|down|status` — the lab in a box: libvirt, the guest image,
//!   the KVM/TCG probe (see [`lab`]). `ci` runs the real-guest tests
//!   between an `up` and a `down`.

// Tooling on the real machine: wall time is what it waits on and reports.
#![allow(clippy::disallowed_methods)]

mod alongside;
mod failures;
mod lab;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    if let Err(e) = std::env::set_current_dir(&root) {
        eprintln!("xtask: cannot enter {}: {e}", root.display());
        return ExitCode::from(2);
    }
    let result = match args.first().map(String::as_str) {
        Some("scenario") => scenario(&args[1..]),
        Some("ci") => suite(&Budget::CI, None),
        Some("nightly") => match &args[1..] {
            [] => suite(&Budget::NIGHTLY, None),
            [flag, file] if flag == "--inventory" => suite(&Budget::NIGHTLY, Some(Path::new(file))),
            _ => {
                eprintln!("usage: cargo xtask nightly [--inventory FILE]");
                return ExitCode::from(2);
            }
        },
        Some("bench") => bench(&args[1..]),
        Some("lab") => lab::lab(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <scenario [ARGS…] | ci | nightly [--inventory FILE] | bench | lab up|down|status>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Incremental state doubles what a debug build keeps on disk and buys
    // nothing on a clean CI clone.
    c.env("CARGO_INCREMENTAL", "0");
    c
}

fn run(cmd: &mut Command) -> Result<bool> {
    eprintln!("xtask: $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", show(cmd)))?;
    Ok(status.success())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `cargo run --release -p krrish [--features F] -- ARGS`.
fn krrish_with(features: Option<&str>, args: &[&str]) -> Command {
    let mut c = cargo();
    c.args(["run", "--quiet", "--release", "--package", "krrish"]);
    if let Some(f) = features {
        c.args(["--features", f]);
    }
    c.arg("--");
    c.args(args);
    c
}

fn scenario(args: &[String]) -> Result<bool> {
    // The lab world needs the real drivers compiled in.
    let lab = args.windows(2).any(|w| w[0] == "--world" && w[1] == "lab")
        || args.iter().any(|a| a == "--world=lab");
    scenario_with(lab.then_some("lab"), args)
}

fn scenario_with(features: Option<&str>, args: &[String]) -> Result<bool> {
    let mut c = krrish_with(features, &["scenario", "run"]);
    c.args(args);
    run(&mut c)
}

/// What the suite's test build is: the whole workspace with the lab's
/// drivers compiled into `krrish` (their system packages are installed by
/// then). The same arguments everywhere, so that cargo builds the
/// workspace once: `cargo test` also builds the `krrish` binary (its
/// integration tests run it) with exactly these features and dev-dependency
/// features, and every scenario run of the suite uses that binary rather
/// than a second (release) build of everything — one build fewer, about five
/// minutes on CI's two cores.
const SUITE_TEST_ARGS: &[&str] = &["test", "--workspace", "--features", "krrish/lab"];

/// The suite's test runs go on past a failing test binary: every failure
/// is named, not only the first.
const NO_FAIL_FAST: &str = "--no-fail-fast";

/// The suite's scenario runs: `target/debug/krrish`, as the tests step built
/// it (built here first if that step did not; a no-op when it did).
fn suite_scenario(args: &[String]) -> Result<bool> {
    let mut c = Command::new(suite_binary()?);
    c.args(["scenario", "run"]).args(args);
    failures::run_keeping("krrish scenario run", &mut c)
}

/// `target/debug/krrish` as the tests step builds it (built now if it was
/// not).
fn suite_binary() -> Result<PathBuf> {
    if !run(cargo().args(SUITE_TEST_ARGS).args(["--no-run", "--quiet"]))? {
        anyhow::bail!("building the workspace's tests (and krrish with them) failed");
    }
    Ok(Path::new("target").join("debug").join("krrish"))
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

struct Budget {
    name: &'static str,
    /// Seeds every scenario runs with, beyond its own.
    seeds: &'static str,
    /// proptest cases for the property tests.
    proptest_cases: &'static str,
    /// Seeds every scenario runs with in the event world (fast).
    event_seeds: &'static str,
    /// Swarm seeds (random clusters and fault schedules).
    swarm_seeds: &'static str,
    /// The `scenarios/lab/` files run against real guests (`None`: all).
    lab_scenarios: Option<&'static [&'static str]>,
}

impl Budget {
    const CI: Budget = Budget {
        name: "ci",
        seeds: "1..4",
        proptest_cases: "256",
        event_seeds: "1..50",
        swarm_seeds: "1..300",
        lab_scenarios: Some(lab::CI_SCENARIOS),
    };
    const NIGHTLY: Budget = Budget {
        name: "nightly",
        seeds: "1..500",
        proptest_cases: "20000",
        event_seeds: "1..2000",
        swarm_seeds: "1..20000",
        lab_scenarios: None,
    };
}

/// Installs missing Debian packages (CI machines start bare): the lab's,
/// which include what the workspace needs to build (`libvirt-dev` for the
/// `virt` crate).
fn system_packages() -> Result<bool> {
    lab::install_missing()?;
    Ok(true)
}

/// What a clean `cargo xtask ci` leaves in `target/` (1.8 GiB measured,
/// see the README's Development section), with room to spare.
const SUITE_DISK_NEED_MIB: u64 = 4 * 1024;

/// Says loudly, before an hour of compiling fails on it, when the disk
/// holding `target/` has less room than the suite needs.
fn check_free_space() {
    let out = Command::new("df").args(["-Pk", "."]).output();
    let free_kib = out.ok().and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let line = text.lines().nth(1)?.to_string();
        line.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    match free_kib {
        Some(kib) if kib / 1024 < SUITE_DISK_NEED_MIB => eprintln!(
            "xtask: WARNING: only {} MiB free on the disk holding target/; \
             the suite needs about {SUITE_DISK_NEED_MIB} MiB and will fail \
             with \"No space left on device\" if it runs out",
            kib / 1024
        ),
        Some(_) => {}
        None => eprintln!("xtask: could not tell the free disk space (`df -Pk .` failed)"),
    }
}

/// The suite at `budget`; with `inventory`, the lab scenarios on those
/// physical hosts too.
fn suite(budget: &Budget, inventory: Option<&Path>) -> Result<bool> {
    check_free_space();
    type Step<'a> = (&'a str, Box<dyn Fn() -> Result<bool> + 'a>);
    let steps: Vec<Step> = vec![
        ("system packages", Box::new(system_packages)),
        (
            "format",
            Box::new(|| run(cargo().args(["fmt", "--all", "--", "--check"]))),
        ),
        (
            "clippy",
            Box::new(|| {
                run(cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    // The lab's code too (libvirt-dev is installed by now).
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ]))
            }),
        ),
        (
            "tests",
            Box::new(|| {
                failures::run_keeping(
                    "cargo test",
                    cargo()
                        .args(SUITE_TEST_ARGS)
                        .arg(NO_FAIL_FAST)
                        .env("PROPTEST_CASES", budget.proptest_cases),
                )
            }),
        ),
        ("scenarios", Box::new(|| suite_scenario(&[]))),
    ];
    // Run while the lab's real-time steps do (see `alongside`).
    let sweeps = vec![
        alongside::Sweep {
            name: "scenarios in the event world",
            runs: vec![
                args(&["--world", "event"]),
                args(&["--world", "event", "--seeds", budget.event_seeds]),
            ],
        },
        alongside::Sweep {
            name: "swarm",
            runs: vec![args(&[
                "--swarm",
                "--seeds",
                budget.swarm_seeds,
                "--junit",
                &format!("target/swarm-{}.xml", budget.name),
            ])],
        },
        alongside::Sweep {
            name: "seed exploration",
            runs: vec![args(&[
                "--seeds",
                budget.seeds,
                "--trace-dir",
                "target/scenario-traces/explore",
            ])],
        },
    ];
    let mut real: Vec<Step> = vec![(
        "lab in a box: real guests",
        Box::new(|| lab::suite_step(budget.lab_scenarios)),
    )];
    if let Some(file) = inventory {
        real.push((
            "physical lab hosts (inventory)",
            Box::new(move || {
                suite_scenario(&[
                    "--world".into(),
                    "lab".into(),
                    "--inventory".into(),
                    file.display().to_string(),
                    "scenarios/lab".into(),
                ])
            }),
        ));
    }
    let (mut passed, mut failed) = (0, 0);
    let mut failed_steps = Vec::new();
    let mut took = Vec::new();
    let mut record = |name: &str, result: Result<bool>, secs: u64| {
        let verdict = match result {
            Ok(true) => {
                passed += 1;
                "passed"
            }
            Ok(false) => {
                failed += 1;
                failed_steps.push(name.to_string());
                "FAILED"
            }
            Err(e) => {
                failed += 1;
                failed_steps.push(format!("{name} ({e:#})"));
                "FAILED"
            }
        };
        took.push((name.to_string(), verdict, secs));
    };
    let timed = |name: &str, step: &dyn Fn() -> Result<bool>| {
        eprintln!("xtask: == {} step: {name}", budget.name);
        let started = std::time::Instant::now();
        (step(), started.elapsed().as_secs())
    };
    for (name, step) in &steps {
        let (result, secs) = timed(name, step);
        record(name, result, secs);
    }
    let started_sweeps = suite_binary().and_then(|krrish| alongside::start(&krrish, sweeps));
    for (name, step) in &real {
        let (result, secs) = timed(name, step);
        record(name, result, secs);
    }
    match started_sweeps {
        Ok(handle) => {
            eprintln!("xtask: waiting for the sweeps that ran alongside the lab");
            let outcomes = handle
                .join()
                .map_err(|_| anyhow::anyhow!("the sweeps' thread panicked"))?;
            for o in outcomes {
                for line in alongside::summary(&o.log) {
                    eprintln!("xtask: {}: {line} (output in {})", o.name, o.log.display());
                }
                record(o.name, o.result, o.secs);
            }
        }
        Err(e) => record("simulated sweeps", Err(e), 0),
    }
    // Where the time goes (CI's limit is 90 minutes on 2 cores; the suite
    // is kept well under 30).
    for (name, verdict, secs) in &took {
        eprintln!(
            "xtask: {verdict:>6} {:>3}m{:02}s  {name}",
            secs / 60,
            secs % 60
        );
    }
    if !failed_steps.is_empty() {
        failures::print_kept();
        eprintln!("xtask: failed steps: {}", failed_steps.join(", "));
    }
    println!("{}: {passed} passed, {failed} failed", budget.name);
    Ok(failed == 0)
}

/// Runs the benchmarks; writes BENCHMARKS.md unless told `--out` elsewhere
/// (`--quick`, a short smoke run, writes nothing unless told).
fn bench(args: &[String]) -> Result<bool> {
    if args.windows(2).any(|w| w[0] == "--only" && w[1] == "lab") {
        // The lab section runs krrish with the real drivers compiled in.
        let built = run(cargo().args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "krrish",
            "--features",
            "lab",
        ]))?;
        if !built {
            return Ok(false);
        }
    }
    let mut c = cargo();
    c.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "krrish-bench",
        "--",
    ]);
    c.args(args);
    if !args.iter().any(|a| a == "--out" || a == "--quick") {
        c.args(["--out", "BENCHMARKS.md"]);
    }
    run(&mut c)
}
