//! Comparing two worlds' control-plane event sequences.

use krrish_scenario::run::compare_events;

fn v(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

#[test]
fn equal_sequences_say_so_and_different_ones_name_the_first_difference() {
    let a = v(&[
        "host-offline hv-01",
        "host-fenced hv-01",
        "vm-running spare-1 vm-1",
    ]);
    assert_eq!(
        compare_events(&a, &a),
        vec!["control-plane events: the same 3 in both worlds".to_string()]
    );
    let b = v(&[
        "host-offline hv-01",
        "fence-attempt-failed hv-01",
        "host-fenced hv-01",
    ]);
    let d = compare_events(&a, &b);
    assert!(d[0].contains("lab 3, event world 3"), "{d:?}");
    assert!(d[0].contains("#2"), "{d:?}");
    assert!(d[0].contains("\"host-fenced hv-01\""), "{d:?}");
    let shorter = compare_events(&a[..1], &a);
    assert!(
        shorter[0].contains("#2") && shorter[0].contains("(none)"),
        "{shorter:?}"
    );
}
