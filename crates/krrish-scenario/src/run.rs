//! Running a scenario in the simulated world.
//!
//! At each time on the timeline the runner steps the world up to it, applies
//! the actions due then (in file order), and then checks the expectations
//! due then — so an expectation `at: T` sees what happened at T. The
//! checkers run after every simulation step; the first broken invariant ends
//! the run. Expectations without `at` are checked at `end`.

use crate::load::{Action, Expect, Scenario};
use checks::evaluate;
use krrish_core::ha::secs;
use krrish_event::EventWorld;
use krrish_sim::world::Recovery;
use krrish_sim::SimulatedWorld;
use krrish_turmoil::SimWorld;
use std::path::PathBuf;
use std::time::Duration;

mod checks;
pub use checks::{judge_event, snapshot_is};

/// Which world drives the control plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorldKind {
    /// turmoil: real tokio services over simulated TCP, stepped per tick.
    #[default]
    Turmoil,
    /// The event queue: the same machines with no sockets or runtime.
    Event,
}

impl WorldKind {
    pub fn name(self) -> &'static str {
        match self {
            WorldKind::Turmoil => "turmoil",
            WorldKind::Event => "event",
        }
    }
}

impl std::str::FromStr for WorldKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "turmoil" => Ok(WorldKind::Turmoil),
            "event" => Ok(WorldKind::Event),
            other => Err(format!(
                "unknown world {other:?} (expected turmoil or event)"
            )),
        }
    }
}

#[derive(Default)]
pub struct RunOptions<'a> {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    pub world: WorldKind,
    /// Called now and then with (simulated ms, end ms).
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
}

#[derive(Clone, Debug)]
pub struct RunReport {
    pub name: String,
    pub path: PathBuf,
    pub seed: u64,
    pub world: WorldKind,
    /// Broken expectations and invariants, each with time and seed.
    pub failures: Vec<String>,
    pub sim_ms: u64,
    pub wall: Duration,
    /// The whole trace, starting with a `#` header line.
    pub trace: String,
    pub recoveries: Vec<Recovery>,
    pub checks_run: u64,
    /// The control plane's typed events in order: `kind host vm` (the
    /// subjects a run in another world can be compared on).
    pub events: Vec<String>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The command that replays this run exactly.
    pub fn reproduce(&self) -> String {
        let world = match self.world {
            WorldKind::Turmoil => String::new(),
            w => format!(" --world {}", w.name()),
        };
        format!(
            "cargo xtask scenario {} --seed {}{world}",
            self.path.display(),
            self.seed
        )
    }
}

/// Simulated time between progress callbacks.
const PROGRESS_EVERY_MS: u64 = 200_000;

/// Runs `s` in the simulated world `opts` names. A panic inside the
/// simulation (a bug) fails this run with its message rather than ending
/// the whole batch: the other scenarios still run and are reported.
pub fn run_scenario(s: &Scenario, opts: RunOptions<'_>) -> RunReport {
    let (seed, world) = (opts.seed.unwrap_or(s.seed), opts.world);
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_guarded(s, opts)));
    run.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|m| m.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        RunReport {
            name: s.name.clone(),
            path: s.path.clone(),
            seed,
            world,
            failures: vec![format!(
                "the simulation panicked (a bug in krrish, please report it): {what} (seed {seed})"
            )],
            sim_ms: 0,
            wall: Duration::ZERO,
            trace: format!(
                "# krrish scenario {} seed {seed}\n# panicked: {what}\n",
                s.name
            ),
            recoveries: Vec::new(),
            checks_run: 0,
            events: Vec::new(),
        }
    })
}

fn run_guarded(s: &Scenario, mut opts: RunOptions<'_>) -> RunReport {
    // Wall time is reported, never used by the simulation.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let seed = opts.seed.unwrap_or(s.seed);
    let mut config = s.config.clone();
    config.seed = seed;
    let (hosts, vms) = (s.cluster.hosts.clone(), s.cluster.vms.clone());
    let mut world: Box<dyn SimulatedWorld> = match opts.world {
        WorldKind::Turmoil => Box::new(SimWorld::new(hosts, vms, config)),
        WorldKind::Event => Box::new(EventWorld::new(hosts, vms, config)),
    };
    let world = world.as_mut();
    let mut failures = Vec::new();

    // Points in time where something happens, in order.
    let mut times: Vec<u64> = s.timeline.iter().map(|a| a.at_ms).collect();
    times.extend(s.expectations.iter().filter_map(|e| e.at_ms));
    times.push(s.end_ms);
    times.sort_unstable();
    times.dedup();

    'run: for t in times {
        while world.now_ms() < t {
            let next = t.min(world.now_ms() + PROGRESS_EVERY_MS);
            if let Err(v) = world.run_until(next) {
                failures.push(format!("{v} (seed {seed})"));
                break 'run;
            }
            if let Some(p) = opts.progress.as_mut() {
                p(world.now_ms(), s.end_ms);
            }
        }
        for a in s.timeline.iter().filter(|a| a.at_ms == t) {
            match &a.action {
                Action::Fault(f) => {
                    if let Err(e) = world.inject(f) {
                        failures.push(format!("timeline line {}: {e}", a.line));
                    }
                }
                Action::Api(r) => world.api(r.clone()),
                Action::GuestWrite {
                    vm,
                    disk,
                    block,
                    data,
                } => {
                    if let Err(e) = world.guest_write(vm, disk, *block, *data) {
                        failures.push(format!("timeline line {}: guest write: {e}", a.line));
                    }
                }
            }
        }
        let due: Vec<&Expect> = s
            .expectations
            .iter()
            .filter(|e| e.at_ms == Some(t) || (e.at_ms.is_none() && t == s.end_ms))
            .collect();
        for e in due {
            if let Err(why) = evaluate(world, &e.check) {
                failures.push(format!(
                    "expectation at line {} ({}) failed at {}: {why} (seed {seed})",
                    e.line,
                    e.at_ms.map(secs).unwrap_or_else(|| "end".into()),
                    secs(world.now_ms())
                ));
            }
        }
    }

    let mut trace = format!("# krrish scenario {} seed {seed}\n", s.name);
    trace.push_str(&world.trace().text());
    let recoveries = world.world().recoveries.clone();
    let events = world
        .trace()
        .events()
        .iter()
        .map(|(_, n)| event_key(n))
        .collect();
    RunReport {
        name: s.name.clone(),
        path: s.path.clone(),
        seed,
        world: opts.world,
        failures,
        sim_ms: world.now_ms(),
        #[allow(clippy::disallowed_methods)]
        wall: started.elapsed(),
        trace,
        recoveries,
        checks_run: world.checks_run(),
        events,
    }
}

/// How one run's event sequence (`lab`: the lab world's, or any other
/// world's) compares with a simulated run's, in words.
pub fn compare_events(lab: &[String], sim: &[String]) -> Vec<String> {
    if lab == sim {
        return vec![format!(
            "control-plane events: the same {} in both worlds",
            lab.len()
        )];
    }
    let first = lab
        .iter()
        .zip(sim)
        .position(|(a, b)| a != b)
        .unwrap_or(lab.len().min(sim.len()));
    let show = |v: &[String]| {
        let mut s: Vec<&str> = v.iter().take(EVENTS_SHOWN).map(String::as_str).collect();
        if v.len() > EVENTS_SHOWN {
            s.push("…");
        }
        s.join(" | ")
    };
    vec![
        format!(
            "control-plane events differ: lab {}, event world {}; first difference at #{}: lab {:?}, event world {:?}",
            lab.len(),
            sim.len(),
            first + 1,
            lab.get(first).map_or("(none)", String::as_str),
            sim.get(first).map_or("(none)", String::as_str),
        ),
        format!("  lab:         {}", show(lab)),
        format!("  event world: {}", show(sim)),
    ]
}

/// Events listed when two sequences differ.
const EVENTS_SHOWN: usize = 24;

/// What two runs of one scenario in different worlds are compared on: the
/// event's kind and its subjects, not its timings.
pub fn event_key(n: &krrish_core::ha::Notice) -> String {
    let mut k = n.kind().to_string();
    if let Some(h) = n.host() {
        k.push(' ');
        k.push_str(h.as_str());
    }
    if let Some(v) = n.vm() {
        k.push(' ');
        k.push_str(v.as_str());
    }
    k
}
