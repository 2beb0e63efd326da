//! The suite's simulated sweeps (the event world over many seeds, the
//! swarm, seed exploration) run alongside the lab's real-time step rather
//! than after it: the lab mostly waits on real guests and real timers, the
//! sweeps are pure computation on one core. They run at the lowest CPU
//! priority (`nice -n 19`: the kernel gives the lab's daemons and guests
//! the CPU whenever they want it), from a copy of the suite's `krrish`
//! binary (the lab step may rebuild the workspace's crates meanwhile), and
//! write their output to `target/suite-logs/<step>.log` so as not to garble
//! the lab's; their failure lines are kept for the suite's end as any
//! step's, and each one's summary line is printed when it ends.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Instant;

/// One step of the sweeps: `krrish scenario run` with each argument list.
pub struct Sweep {
    pub name: &'static str,
    pub runs: Vec<Vec<String>>,
}

/// How a sweep ended.
pub struct Outcome {
    pub name: &'static str,
    pub result: Result<bool>,
    pub secs: u64,
    pub log: PathBuf,
}

const LOG_DIR: &str = "target/suite-logs";

/// Starts `sweeps`, one after another, on a thread of their own; `krrish`
/// is the suite's binary, copied first.
pub fn start(krrish: &Path, sweeps: Vec<Sweep>) -> Result<JoinHandle<Vec<Outcome>>> {
    std::fs::create_dir_all(LOG_DIR).with_context(|| format!("creating {LOG_DIR}"))?;
    let frozen = Path::new(LOG_DIR).join("krrish");
    std::fs::copy(krrish, &frozen)
        .with_context(|| format!("copying {} to {}", krrish.display(), frozen.display()))?;
    for s in &sweeps {
        eprintln!(
            "xtask: alongside the lab, at the lowest CPU priority: {} (output in {})",
            s.name,
            log_of(s.name).display()
        );
    }
    Ok(std::thread::spawn(move || {
        sweeps
            .into_iter()
            .map(|s| {
                let started = Instant::now();
                let log = log_of(s.name);
                let result = run_sweep(&frozen, &s, &log);
                Outcome {
                    name: s.name,
                    result,
                    secs: started.elapsed().as_secs(),
                    log,
                }
            })
            .collect()
    }))
}

fn log_of(name: &str) -> PathBuf {
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Path::new(LOG_DIR).join(format!("{slug}.log"))
}

/// The sweep's runs, in order, into one log (each run's output appended);
/// true when every one passed.
fn run_sweep(krrish: &Path, sweep: &Sweep, log: &Path) -> Result<bool> {
    let _ = std::fs::remove_file(log); // an earlier suite's
    let mut all = true;
    for (i, args) in sweep.runs.iter().enumerate() {
        let part = log.with_extension(format!("{i}.log"));
        let mut c = Command::new("nice");
        c.args(["-n", "19"])
            .arg(krrish)
            .args(["scenario", "run"])
            .args(args);
        all &= crate::failures::run_keeping_logged(sweep.name, &mut c, &part)?;
        append(&part, log)?;
    }
    Ok(all)
}

fn append(part: &Path, log: &Path) -> Result<()> {
    let text = std::fs::read(part).with_context(|| format!("reading {}", part.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    std::io::Write::write_all(&mut f, &text)
        .with_context(|| format!("writing {}", log.display()))?;
    std::fs::remove_file(part).with_context(|| format!("removing {}", part.display()))
}

/// The runner's summary lines of a sweep's log (`N passed, M failed`, and
/// the swarm's), to be printed with the suite's own output.
pub fn summary(log: &Path) -> Vec<String> {
    let Ok(f) = std::fs::File::open(log) else {
        return vec![format!("(no log at {})", log.display())];
    };
    BufReader::new(f)
        .lines()
        .map_while(|l| l.ok())
        .filter(|l| l.contains(" passed, ") && l.contains(" failed"))
        .collect()
}
