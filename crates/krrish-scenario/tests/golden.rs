//! Golden traces for the core scenarios (Proxmox-HA style: command list plus
//! expected log), and the determinism meta-test: one seed, one trace, byte
//! for byte.

use krrish_scenario::{load_scenario, run_scenario, RunOptions, RunReport, WorldKind};
use std::path::PathBuf;

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(format!("{name}.yaml"))
}

fn run(name: &str, seed: Option<u64>) -> RunReport {
    run_in(WorldKind::Turmoil, name, seed)
}

fn run_in(world: WorldKind, name: &str, seed: Option<u64>) -> RunReport {
    let s = load_scenario(&scenario(name)).unwrap_or_else(|e| panic!("{e}"));
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
        "{name} failed in the {world:?} world: {:?}",
        r.failures
    );
    r
}

const CORE: [&str; 11] = [
    "ha/host-crash",
    "ha/nic-degraded",
    "ha/isolation",
    "ha/power-loss",
    "ha/isolation-no-bmc",
    "ha/repair-failback",
    "ha/two-failures-one-spare",
    "ha/non-ha-vm",
    "ha/storage-loss",
    "ha/controller-restart",
    "ha/controller-restart-quiet",
];

#[test]
fn golden_traces() {
    for name in CORE {
        let r = run(name, None);
        // The trace file name carries the path with '/' as '__'.
        insta::assert_snapshot!(name.replace('/', "__"), r.trace);
    }
}

#[test]
fn the_same_seed_gives_a_byte_identical_trace() {
    for name in CORE
        .iter()
        .chain(&["ops/run-and-migrate", "sizing/spares-30"])
    {
        for world in [WorldKind::Turmoil, WorldKind::Event] {
            let a = run_in(world, name, Some(42));
            let b = run_in(world, name, Some(42));
            assert!(
                a.trace == b.trace,
                "{name}: two {world:?} runs with seed 42 differ"
            );
        }
    }
}

#[test]
fn the_seed_changes_the_run() {
    let a = run("ha/host-crash", Some(1));
    let b = run("ha/host-crash", Some(2));
    assert_ne!(
        a.trace, b.trace,
        "seeds 1 and 2 gave the same trace: is the seed used at all?"
    );
}
