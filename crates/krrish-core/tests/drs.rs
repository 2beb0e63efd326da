//! DRS's plan against a cluster built by hand: what moves, where, and
//! what the rules keep in place.

use krrish_core::ha::{DrsConfig, HaConfig, HaManager, HostReport};
use krrish_core::rules::{RuleGroup, RuleKind, Rules, Strength};
use krrish_core::testkit::host;
use krrish_core::{HaPolicy, HostId, Resources, VmId, VmSpec, Zone};

/// Every host's agent reports once (a host the controller has not heard
/// from takes no VMs), listing the VMs homed there.
fn heard(mut m: HaManager) -> HaManager {
    let hosts: Vec<HostId> = m.hosts().keys().cloned().collect();
    for h in hosts {
        let running: Vec<VmId> = m
            .vms()
            .iter()
            .filter(|(_, v)| v.spec.home == h)
            .map(|(id, _)| id.clone())
            .collect();
        let report = HostReport::healthy(1, running);
        m.handle_heartbeat(1_000, &h, &report);
    }
    m
}

fn vm(name: &str, home: &str) -> VmSpec {
    VmSpec {
        id: VmId::new(name),
        home: HostId::new(home),
        demand: Resources::new(2, 8 * 1024, 10),
        ha: HaPolicy::Restart,
        priority: 0,
        passthrough_devices: vec![],
        failback: true,
        restart_delay_ms: 0,
    }
}

/// hv-1 carries six 8-GiB VMs of 64 GiB (75 %), hv-2 one (12 %), hv-3
/// none; a spare.
fn cluster(rules: Rules) -> HaManager {
    let hosts = vec![
        host("hv-1", Zone::Ecs),
        host("hv-2", Zone::Ecs),
        host("hv-3", Zone::Ecs),
        host("spare-1", Zone::Spare),
    ];
    let mut vms: Vec<VmSpec> = (1..=6).map(|i| vm(&format!("a-{i}"), "hv-1")).collect();
    vms.push(vm("b-1", "hv-2"));
    let config = HaConfig {
        drs: Some(DrsConfig::default()),
        rules,
        ..HaConfig::default()
    };
    heard(HaManager::new(0, config, hosts, vms))
}

fn moves(m: &HaManager) -> Vec<(Vec<String>, String, String)> {
    m.drs_plan()
        .into_iter()
        .map(|mv| {
            (
                mv.vms.iter().map(|v| v.to_string()).collect(),
                mv.from.to_string(),
                mv.to.to_string(),
            )
        })
        .collect()
}

#[test]
fn the_most_loaded_host_gives_to_the_least_until_within_the_threshold() {
    let m = cluster(Rules::default());
    let plan = moves(&m);
    // Every move leaves hv-1, never for a spare.
    assert!(
        plan.iter()
            .all(|(_, from, to)| from == "hv-1" && to != "spare-1"),
        "{plan:?}"
    );
    assert_eq!(plan[0].2, "hv-3", "the emptiest first: {plan:?}");
    // 75/12/0 → 37/25/25 (within 20 points) takes three moves.
    assert_eq!(plan.len(), 3, "{plan:?}");
    // Loads are reported before each move.
    let first = &m.drs_plan()[0];
    assert_eq!((first.from_load, first.to_load), (75, 0));
}

#[test]
fn no_rule_is_broken_not_even_a_should_one() {
    let group = |name: &str, strength, kind, vms: &[&str]| RuleGroup {
        name: name.into(),
        strength,
        kind,
        vms: vms.iter().map(|v| VmId::new(*v)).collect(),
    };
    let rules = Rules::new(vec![
        // a-1..a-3 may run only on hv-1 (should): they never move.
        group(
            "stay",
            Strength::Should,
            RuleKind::RunOn(vec![HostId::new("hv-1")]),
            &["a-1", "a-2", "a-3"],
        ),
        // a-4 and a-5 move as one.
        group("pair", Strength::Must, RuleKind::Affinity, &["a-4", "a-5"]),
        // a-6 never joins b-1.
        group(
            "apart",
            Strength::Must,
            RuleKind::AntiAffinity,
            &["a-6", "b-1"],
        ),
    ]);
    let m = cluster(rules);
    let plan = moves(&m);
    assert!(!plan.is_empty());
    for (vms, _, to) in &plan {
        assert!(
            !vms.iter()
                .any(|v| ["a-1", "a-2", "a-3"].contains(&v.as_str())),
            "{plan:?}"
        );
        if vms.contains(&"a-4".to_string()) || vms.contains(&"a-5".to_string()) {
            assert_eq!(vms, &vec!["a-4".to_string(), "a-5".to_string()], "{plan:?}");
        }
        if vms.contains(&"a-6".to_string()) {
            assert_ne!(to, "hv-2", "{plan:?}");
        }
    }
}

#[test]
fn off_balanced_or_alone_there_is_nothing_to_plan() {
    let mut m = cluster(Rules::default());
    assert!(!m.drs_plan().is_empty());
    // Balanced within a threshold of 80 points.
    let hosts = vec![host("hv-1", Zone::Ecs), host("hv-2", Zone::Ecs)];
    let config = HaConfig {
        drs: Some(DrsConfig {
            threshold_percent: 80,
            ..DrsConfig::default()
        }),
        ..HaConfig::default()
    };
    let vms: Vec<VmSpec> = (1..=6).map(|i| vm(&format!("a-{i}"), "hv-1")).collect();
    m = heard(HaManager::new(0, config, hosts.clone(), vms.clone()));
    assert!(m.drs_plan().is_empty());
    // DRS off.
    let off = heard(HaManager::new(0, HaConfig::default(), hosts, vms));
    assert!(off.drs_plan().is_empty());
}
