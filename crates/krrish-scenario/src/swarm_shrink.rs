//! Shrinking a failing swarm case to a smaller one that fails the same
//! way: faults and rule groups dropped one at a time, hosts renumbered
//! from hv-01, the cluster made smaller and plainer.

use crate::swarm::{failure_kind, run_case, SwarmCase};

/// One way to make a case smaller.
type Reduction = dyn Fn(&mut SwarmCase);

/// Runs a shrink may spend at most.
pub const SHRINK_RUNS_MAX: usize = 400;

/// Reduces a failing case to a smaller one that fails the same way
/// (`kind`): drops faults one at a time, then shrinks the cluster. Greedy
/// and bounded by [`SHRINK_RUNS_MAX`] runs; `on_try` sees every attempt.
pub fn shrink(
    case: &SwarmCase,
    world: crate::WorldKind,
    kind: &str,
    mut on_try: impl FnMut(&SwarmCase, bool),
) -> SwarmCase {
    let mut best = case.clone();
    let mut runs = 0;
    let mut still_fails = |c: &SwarmCase, runs: &mut usize| -> bool {
        *runs += 1;
        let same = match run_case(c, world) {
            Ok(()) => false,
            Err(f) => failure_kind(&f).as_deref() == Some(kind),
        };
        on_try(c, same);
        same
    };
    // Faults, one at a time, until none can go.
    loop {
        let mut progressed = false;
        let mut i = best.items.len();
        while i > 0 && runs < SHRINK_RUNS_MAX {
            i -= 1;
            let mut c = best.clone();
            c.items.remove(i);
            if still_fails(&c, &mut runs) {
                best = c;
                progressed = true;
            }
        }
        if !progressed || runs >= SHRINK_RUNS_MAX {
            break;
        }
    }
    // Rule groups, one at a time.
    let mut i = best.rules.len();
    while i > 0 && runs < SHRINK_RUNS_MAX {
        i -= 1;
        let mut c = best.clone();
        c.rules.remove(i);
        if still_fails(&c, &mut runs) {
            best = c;
        }
    }
    // The hosts the faults name, renumbered from hv-01 (so the cluster can
    // shrink below the highest name).
    if runs < SHRINK_RUNS_MAX {
        let c = renumber_hosts(&best);
        if (c.items != best.items || c.rules != best.rules) && still_fails(&c, &mut runs) {
            best = c;
        }
    }
    // The cluster: fewer hosts, fewer and plainer VMs, the sizing rule.
    let mut tries: Vec<Box<Reduction>> = Vec::new();
    for hosts in [8usize, 12, 16, 24, 32, 48, 64, 96, 128] {
        tries.push(Box::new(move |c: &mut SwarmCase| {
            c.hosts = c.hosts.min(hosts)
        }));
    }
    tries.push(Box::new(|c| c.restore_on_repair = false));
    tries.push(Box::new(|c| c.ha_off = false));
    for k in 1..=5 {
        tries.push(Box::new(move |c: &mut SwarmCase| {
            c.vms_per_host = c.vms_per_host.min(k)
        }));
    }
    tries.push(Box::new(|c| c.spares = None));
    tries.push(Box::new(|c| c.drs = None));
    tries.push(Box::new(|c| c.dpm = None));
    for t in &tries {
        if runs >= SHRINK_RUNS_MAX {
            break;
        }
        let mut c = best.clone();
        t(&mut c);
        if c.hosts == best.hosts
            && c.vms_per_host == best.vms_per_host
            && c.restore_on_repair == best.restore_on_repair
            && c.ha_off == best.ha_off
            && c.spares == best.spares
            && c.drs == best.drs
            && c.dpm == best.dpm
        {
            continue; // no change
        }
        if still_fails(&c, &mut runs) {
            best = c;
        }
    }
    best
}

/// Production host numbers in `text`: every `hv-N` not followed by a digit.
fn host_numbers(text: &str) -> Vec<(usize, usize, u64)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = text[i..].find("hv-") {
        let start = i + off;
        let digits_from = start + 3;
        let mut end = digits_from;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let before_ok = start == 0 || !b[start - 1].is_ascii_alphanumeric();
        if end > digits_from && before_ok {
            if let Ok(n) = text[digits_from..end].parse() {
                out.push((start, end, n));
            }
        }
        i = end.max(start + 3);
    }
    out
}

/// The case with the production hosts its faults name renumbered 1, 2, …
/// in order of first mention (VM names follow their home: `vm-hv-14-1`
/// becomes `vm-hv-01-1`).
fn renumber_hosts(case: &SwarmCase) -> SwarmCase {
    let mut order: Vec<u64> = Vec::new();
    let texts = case.items.iter().map(|(_, item)| item).chain(&case.rules);
    for text in texts {
        for (_, _, n) in host_numbers(text) {
            if !order.contains(&n) {
                order.push(n);
            }
        }
    }
    let renumber = |text: &mut String| {
        let mut out = String::new();
        let mut last = 0;
        for (start, end, n) in host_numbers(text) {
            let new = order.iter().position(|&m| m == n).expect("collected") + 1;
            out.push_str(&text[last..start]);
            out.push_str(&format!("hv-{new:02}"));
            last = end;
        }
        out.push_str(&text[last..]);
        *text = out;
    };
    let mut c = case.clone();
    c.items.iter_mut().for_each(|(_, item)| renumber(item));
    c.rules.iter_mut().for_each(renumber);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::generate;

    #[test]
    fn renumbering_maps_hosts_and_their_vms_in_order_of_mention() {
        let mut c = generate(1);
        c.items = vec![
            (1_000, "cut: { host: hv-14, for: 5s }".into()),
            (2_000, "migrate: { vm: vm-hv-14-1, to: hv-03 }".into()),
            (3_000, "crash: spare-1".into()),
        ];
        let r = renumber_hosts(&c);
        let texts: Vec<&str> = r.items.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "cut: { host: hv-01, for: 5s }",
                "migrate: { vm: vm-hv-01-1, to: hv-02 }",
                "crash: spare-1"
            ]
        );
    }
}
