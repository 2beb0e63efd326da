//! DPM against the two-party model (the core and hypervisors that answer
//! at once): idle hosts drained and powered off down to the load band, no
//! fence for them, and a standby host powered on again by an operator
//! taking it out of maintenance.

use krrish_core::ha::{Command, DpmConfig, HaConfig, Liveness, Standby, VmState};
use krrish_core::testkit::TwoParty as Model;
use krrish_core::{HostId, Resources};

/// Three production hosts a quarter loaded (four 1-vCPU, 4-GiB VMs each
/// on 16 vCPUs, 64 GiB), two spares, DPM every minute.
fn light_cluster() -> Model {
    Model::with_demand(
        HaConfig {
            dpm: Some(DpmConfig {
                interval_ms: 60_000,
                ..DpmConfig::default()
            }),
            failover_to_production: true,
            ..HaConfig::default()
        },
        Resources::new(1, 4 * 1024, 50),
    )
}

fn standby_hosts(m: &Model) -> Vec<String> {
    m.core
        .hosts()
        .iter()
        .filter(|(_, h)| matches!(h.standby, Standby::Off { .. }))
        .map(|(id, _)| id.to_string())
        .collect()
}

#[test]
fn idle_hosts_are_drained_and_powered_off_down_to_the_band_without_a_fence() {
    let mut m = light_cluster();
    m.advance(10 * 60_000);
    // 25 % on three hosts: one off leaves 37 % (< 45: go on), a second
    // leaves 75 % (< 81): two hosts off, one carries all twelve VMs.
    let off = standby_hosts(&m);
    assert_eq!(off.len(), 2, "standby: {off:?}");
    for h in &off {
        let rec = &m.core.hosts()[&HostId::new(h)];
        assert!(
            matches!(rec.liveness, Liveness::PoweredOff { .. }),
            "{h}: {:?}",
            rec.liveness
        );
        assert!(!m.hosts[&HostId::new(h)].powered, "{h} still has power");
    }
    let on: Vec<&HostId> = m
        .core
        .hosts()
        .iter()
        .filter(|(_, h)| h.spare.is_none() && h.liveness == Liveness::Up)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(on.len(), 1);
    for (vm, rec) in m.core.vms() {
        assert_eq!(
            rec.state,
            VmState::Running {
                host: on[0].clone()
            },
            "{vm}"
        );
    }
    assert_eq!(m.core.failover_boots(), 0);
    let fences = m
        .core
        .hosts()
        .values()
        .filter(|h| matches!(h.liveness, Liveness::Fenced { .. }))
        .count();
    assert_eq!(fences, 0);
    // The band holds: nothing more is powered off later.
    m.advance(10 * 60_000);
    assert_eq!(standby_hosts(&m), off);
}

#[test]
fn an_operator_taking_a_standby_host_out_of_maintenance_powers_it_on() {
    let mut m = light_cluster();
    m.advance(10 * 60_000);
    let off = standby_hosts(&m);
    let host = HostId::new(&off[0]);
    m.core
        .exit_maintenance(m.now, &host)
        .expect("a standby host may leave");
    let asked: Vec<Command> = std::iter::from_fn(|| m.core.poll_command()).collect();
    assert!(
        asked.contains(&Command::PowerHost {
            host: host.clone(),
            on: true
        }),
        "{asked:?}"
    );
    // The model's BMC powers it on a minute later; its first heartbeat
    // takes it out of maintenance.
    for c in asked {
        if let Command::PowerHost { host, on: true } = c {
            m.hosts.get_mut(&host).unwrap().power_on_at = Some(m.now + 60_000);
        }
    }
    m.advance(2 * 60_000);
    let rec = &m.core.hosts()[&host];
    assert_eq!(rec.liveness, Liveness::Up);
    assert_eq!(rec.standby, Standby::No);
    assert!(!rec.spec.maintenance);
}
