//! The controller machine caches the core's next wake-up across heartbeats
//! that decide nothing (`ControllerMachine::poll_timeout`). The argument —
//! such a heartbeat only moves its own host's deadline later — lives in a
//! comment; this holds it: under random faults in the event world, the
//! cached wake is never later than the one the core computes afresh (early
//! is harmless: the timeout then decides nothing and the cache is rebuilt).

use krrish_event::EventWorld;
use krrish_sim::{demo, Fault, SimConfig, SimulatedWorld};
use proptest::prelude::*;

fn fault(kind: u8, host: usize) -> Fault {
    let h = || {
        krrish_core::HostId::new(if host == 6 {
            "spare-1".to_string()
        } else {
            format!("hv-{:02}", host + 1)
        })
    };
    match kind {
        0 => Fault::Crash(h()),
        1 => Fault::PowerLoss(h()),
        2 => Fault::Partition(h()),
        3 => Fault::Stall(h()),
        4 => Fault::Heal(h()),
        5 => Fault::Repair(h()),
        6 => Fault::DfsUnreachable(true),
        7 => Fault::DfsUnreachable(false),
        8 => Fault::ControllerCrash,
        9 => Fault::ControllerRestart,
        _ => Fault::HealAll,
    }
}

/// `None` is "never": later than any time.
fn later(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (None, None) | (Some(_), None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]

    #[test]
    fn the_cached_wake_is_never_later_than_a_fresh_one(
        seed in 1u64..1_000,
        faults in proptest::collection::vec((0u8..11, 0usize..7, 1_000u64..40_000), 1..8),
    ) {
        let (hosts, vms) = demo::cluster(6, 1, 2);
        let config = SimConfig { seed, ..SimConfig::default() };
        let mut w = EventWorld::new(hosts, vms, config);
        // A crashed controller restarts 5 s later (a controller down for
        // good loses VMs by definition; the checkers would say so).
        let mut t = 20_000u64;
        let mut plan = Vec::new();
        for &(k, h, gap) in &faults {
            t += gap;
            plan.push((t, fault(k, h)));
            if matches!(plan.last(), Some((_, Fault::ControllerCrash))) {
                plan.push((t + 5_000, Fault::ControllerRestart));
            }
        }
        plan.sort_by_key(|(t, _)| *t);
        let mut plan = plan.into_iter().peekable();
        let end = 400_000;
        let mut now = 0;
        let mut compared = 0u32;
        while now < end {
            now += 250;
            w.run_until(now).map_err(|v| TestCaseError::fail(v.to_string()))?;
            while plan.peek().is_some_and(|(t, _)| *t <= now) {
                let (_, f) = plan.next().expect("peeked");
                w.inject(&f).map_err(TestCaseError::fail)?;
            }
            let c = w.controller();
            let (cached, fresh) = (c.poll_timeout(), c.core().poll_timeout());
            prop_assert!(
                !later(cached, fresh),
                "at {now} ms the cached wake {cached:?} is later than the core's {fresh:?}"
            );
            compared += 1;
        }
        prop_assert!(compared > 1_000);
    }
}
