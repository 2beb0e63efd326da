//! The production transport path: the same controller and agent services
//! over real tokio TCP on 127.0.0.1 with the real monotonic clock (timings
//! scaled down), against the simulated hosts. A crash must fail over exactly
//! as it does in the turmoil world.

use krrish_agent::{run_agent, AgentConfig};
use krrish_controller::{run_controller, ControllerMachine};
use krrish_core::ha::{HaConfig, HaManager};
use krrish_core::heartbeat::HeartbeatConfig;
use krrish_core::timings::AgentTimings;
use krrish_core::HostId;
use krrish_sim::world::{Timings, World};
use krrish_sim::{demo, SimDriver, SimFabric, SimFencer, TraceBuf};
use krrish_wire::tokio_net::{MonotonicClock, TokioConnect, TokioListen};
use krrish_wire::Clock;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Waits (in real time, bounded) until `cond` holds.
async fn wait_until(limit: Duration, what: &str, trace: &TraceBuf, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not within {limit:?}\n{}", trace.text());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_crash_fails_over_over_real_sockets() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let clock = Rc::new(MonotonicClock::start());
        let (hosts, vms) = demo::cluster(3, 1, 2);
        let ha = HaConfig {
            heartbeat: HeartbeatConfig {
                interval_ms: 200,
                misses_max: 3,
                // Generous: a loaded machine may stall a real-time loop.
                grace_ms: 1_000,
            },
            fence_timeout_ms: 1_000,
            lease_duration_ms: 3_000,
            lease_margin_ms: 200,
            boot_timeout_ms: 5_000,
            ..HaConfig::default()
        };
        let timings = Timings {
            boot_ms: 300,
            ipmi_answer_ms: 50,
            ipmi_timeout_ms: 300,
            dfs_rtt_ms: 5,
            lease_duration_ms: 3_000,
            ..Timings::default()
        };
        let trace = TraceBuf::default();
        let world = Rc::new(RefCell::new(World::new(
            7,
            hosts.clone(),
            vms.clone(),
            timings,
            trace.clone(),
        )));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let core = HaManager::new(clock.now_ms(), ha, hosts.clone(), vms);
        let machine = Rc::new(RefCell::new(ControllerMachine::new(core)));
        let fencer = SimFencer {
            world: world.clone(),
            clock: clock.clone(),
        };
        let _controller = tokio::task::spawn_local(run_controller(
            TokioListen(listener),
            machine.clone(),
            None,
            Rc::new(fencer),
            Rc::new(SimFabric {
                world: world.clone(),
            }),
            clock.clone(),
            Rc::new(trace.clone()),
        ));
        let mut agents = BTreeMap::new();
        for h in &hosts {
            let mut cfg = AgentConfig::new(h.id.clone(), addr.clone());
            cfg.timings = AgentTimings {
                // Generous: a loaded machine may stall a real-time loop.
                ack_timeout_ms: 800,
                connect_timeout_ms: 500,
                ..AgentTimings::derive(200, 3_000)
            };
            let driver = SimDriver {
                world: world.clone(),
                host: h.id.clone(),
                clock: clock.clone(),
            };
            let task = run_agent(
                cfg,
                Rc::new(TokioConnect),
                Rc::new(driver),
                clock.clone(),
                Rc::new(trace.clone()),
            );
            agents.insert(h.id.clone(), tokio::task::spawn_local(task));
        }

        wait_until(
            Duration::from_secs(5),
            "every agent reports",
            &trace,
            || {
                machine
                    .borrow()
                    .core()
                    .hosts()
                    .values()
                    .all(|h| h.boot_id.is_some())
            },
        )
        .await;

        // hv-02 loses power: its agent dies with it.
        let victim = HostId::new("hv-02");
        world
            .borrow_mut()
            .power_off(clock.now_ms(), &victim, false, "crash");
        agents[&victim].abort();

        wait_until(
            Duration::from_secs(10),
            "vm-02-01 and vm-02-02 run on spare-1",
            &trace,
            || {
                let w = world.borrow();
                w.running_on(&"vm-02-01".into()) == vec![HostId::new("spare-1")]
                    && w.running_on(&"vm-02-02".into()) == vec![HostId::new("spare-1")]
            },
        )
        .await;
        let text = trace.text();
        assert!(
            text.contains("host hv-02 fenced by IPMI power-off"),
            "{text}"
        );
        assert_eq!(machine.borrow().core().spare_counts(), (0, 1, 0));
        // Everything else kept running where it was.
        assert_eq!(
            world.borrow().running_on(&"vm-01-01".into()),
            vec![HostId::new("hv-01")]
        );
    });
}
