//! The spare-pool sizing rule from the design notes.

/// Spare hosts for a cluster of `hosts` production hypervisors:
/// ≤ 10 → 1, 11–50 → 3, > 50 → 5 (and 0 for an empty cluster).
///
/// The notes call the sizes "odd, for leader election"; quorum parity is a
/// property of the voters, not of the spares — the planner (`krrish plan
/// spares`) shows what each size buys instead.
pub fn spare_pool_size(hosts: usize) -> usize {
    match hosts {
        0 => 0,
        1..=10 => 1,
        11..=50 => 3,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_table_boundaries() {
        let cases = [
            (0, 0),
            (1, 1),
            (8, 1),
            (10, 1),
            (11, 3),
            (30, 3),
            (50, 3),
            (51, 5),
            (60, 5),
            (1000, 5),
        ];
        for (hosts, want) in cases {
            assert_eq!(spare_pool_size(hosts), want, "hosts={hosts}");
        }
    }
}
