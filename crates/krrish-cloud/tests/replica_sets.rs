//! The election rules on a replica set driven check by check: the
//! majority rule elects the first ready member given, steps a primary
//! down without a majority and elects nobody until one is back; the
//! asynchronous rule promotes whoever is ready and takes the first member
//! back when none was.

use krrish_cloud::network::lb::FabricReport;
use krrish_cloud::replica_set::{Election, ReplicaSet};
use krrish_core::{HostId, VmId};

fn vm(x: &str) -> VmId {
    VmId::new(x)
}

/// `a` on hv-1, `b` on hv-2, `c` on hv-3; `up` say which run now.
fn fabric(up: &[&str]) -> FabricReport {
    let mut r = FabricReport::default();
    for (v, h) in [("a", "hv-1"), ("b", "hv-2"), ("c", "hv-3")] {
        if up.contains(&v) {
            r.running_on.insert(vm(v), vec![HostId::new(h)]);
            r.vm_network_up.insert(HostId::new(h));
        } else {
            r.running_on.insert(vm(v), Vec::new());
        }
    }
    r
}

fn set(members: &[&str]) -> ReplicaSet {
    let hosts = ["hv-1", "hv-2", "hv-3"];
    ReplicaSet::new(
        members
            .iter()
            .zip(hosts)
            .map(|(v, h)| (vm(v), HostId::new(h)))
            .collect(),
    )
}

/// `n` rounds of checks with `up` running (2 good, 3 failed thresholds).
fn rounds(s: &mut ReplicaSet, rule: Election, up: &[&str], n: usize) -> Vec<String> {
    let f = fabric(up);
    (0..n)
        .flat_map(|_| s.check("set", rule, (2, 3), &f))
        .collect()
}

#[test]
fn majority_elects_the_first_ready_member_and_keeps_a_primary_with_a_majority() {
    let mut s = set(&["a", "b", "c"]);
    // c away: a keeps a majority (2 of 3) and stays primary.
    rounds(&mut s, Election::Majority, &["a", "b"], 3);
    assert_eq!((s.primary.clone(), s.epoch), (Some(vm("a")), 1));
    // a dies too: b alone is no majority; nobody is elected.
    let lines = rounds(&mut s, Election::Majority, &["b"], 3);
    assert_eq!(s.primary, None, "{lines:?}");
    // c back, caught up at its first good check: after its second, b and
    // c are a majority and b, the first ready given, is elected.
    rounds(&mut s, Election::Majority, &["b", "c"], 1);
    assert_eq!(s.primary, None, "one good check is not healthy yet");
    rounds(&mut s, Election::Majority, &["b", "c"], 1);
    assert_eq!((s.primary.clone(), s.epoch), (Some(vm("b")), 2));
    assert_eq!(s.member(&vm("c")).unwrap().epoch, 2, "c took part");
    assert_eq!(s.member(&vm("a")).unwrap().epoch, 1, "a is stale");
}

#[test]
fn majority_lost_means_no_primary_until_it_is_back() {
    let mut s = set(&["a", "b", "c"]);
    // b and c go: a cannot reach a majority and steps down.
    let lines = rounds(&mut s, Election::Majority, &["a"], 3);
    assert_eq!(s.primary, None, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("primary a steps down: 1 of 3 members healthy, no majority")),
        "{lines:?}"
    );
    assert_eq!(s.epoch, 1);
    // c back: after two good checks a majority is healthy again; a and
    // c both saw epoch 1, so the first given (a) is elected at epoch 2.
    rounds(&mut s, Election::Majority, &["a", "c"], 1);
    assert_eq!(s.primary, None, "one good check is not healthy yet");
    rounds(&mut s, Election::Majority, &["a", "c"], 1);
    assert_eq!((s.primary.clone(), s.epoch), (Some(vm("a")), 2));
    // b back: it rejoins as a secondary.
    let lines = rounds(&mut s, Election::Majority, &["a", "b", "c"], 2);
    assert!(
        lines
            .iter()
            .any(|l| l == "set: vm b back with stale epoch 1; rejoins as secondary at epoch 2"),
        "{lines:?}"
    );
    assert_eq!(s.primary, Some(vm("a")));
}

#[test]
fn asynchronous_promotes_the_replica_and_then_the_first_member_back() {
    let mut s = set(&["a", "b"]);
    rounds(&mut s, Election::Asynchronous, &["b"], 3);
    assert_eq!((s.primary.clone(), s.epoch), (Some(vm("b")), 2));
    // Both gone: no master.
    let lines = rounds(&mut s, Election::Asynchronous, &[], 3);
    assert_eq!(s.primary, None, "{lines:?}");
    // a (the older master, stale) is back first: it becomes master; a
    // cache takes availability over the writes only b had.
    let lines = rounds(&mut s, Election::Asynchronous, &["a"], 2);
    assert_eq!((s.primary.clone(), s.epoch), (Some(vm("a")), 3));
    assert!(
        lines
            .iter()
            .any(|l| l == "set: a elected master at epoch 3 (writes it had not received are lost)"),
        "{lines:?}"
    );
}
