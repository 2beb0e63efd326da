//! One control plane, two worlds: the same scenario files run in the
//! turmoil world (sockets, a 100 ms tick) and the event world (an event
//! queue, exact latencies) and the controller decides the same things in the
//! same order. Times differ (turmoil delivers on tick boundaries), so the
//! comparison is of the controller's commands (`->` lines) without times.

use krrish_scenario::{load_scenario, run_scenario, RunOptions, WorldKind};
use std::path::PathBuf;

fn commands(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter(|l| l.contains(" controller ") && l.contains("       -> "))
        .map(|l| l[13..].to_string())
        .collect()
}

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn both_worlds_decide_the_same_commands_in_the_same_order() {
    let (mut compared, mut commands_compared) = (0, 0);
    for dir in ["ha", "detection"] {
        for f in files(dir) {
            let s = load_scenario(&f).unwrap_or_else(|e| panic!("{e}"));
            for seed in [None, Some(2), Some(3)] {
                let run = |world| {
                    let r = run_scenario(
                        &s,
                        RunOptions {
                            seed,
                            world,
                            progress: None,
                        },
                    );
                    assert!(
                        r.passed(),
                        "{} {world:?} seed {seed:?}: {:?}",
                        s.name,
                        r.failures
                    );
                    r
                };
                let (t, e) = (run(WorldKind::Turmoil), run(WorldKind::Event));
                let (ct, ce) = (commands(&t.trace), commands(&e.trace));
                commands_compared += ct.len();
                assert_eq!(
                    ct, ce,
                    "{} seed {:?}: the worlds decided differently",
                    s.name, t.seed
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 90, "only {compared} runs compared");
    assert!(
        commands_compared >= 300,
        "only {commands_compared} commands compared"
    );
}
