//! Placement rules between VMs and hosts (FusionCompute's and vSphere's
//! rule groups), and the one judgement of where a VM may go under them.
//!
//! A rule group is `must` (never broken, not even to fail over: the VM
//! waits and is reported) or `should` (broken only when nothing else fits,
//! and reported each time). Kinds:
//! - **affinity** — the listed VMs run on one host (an application and its
//!   cache); moving one moves the others with it (FusionCompute's 聚集虚拟机);
//! - **anti-affinity** — the listed VMs run on different hosts (a database's
//!   primary and standby never share a spare);
//! - **run-on** — the listed VMs run only on the listed hosts, preferring
//!   them in the order given;
//! - **not-on** — the listed VMs never run on the listed hosts.
//!
//! [`Rules::judge`] answers for one VM and one candidate host, given where
//! the other VMs may be (running, booting, migrating — every host a copy may
//! be alive on — and where a placement being decided has put them so far).
//! [`Rules::units`] binds a `must` affinity group's VMs placed in one
//! breath into one unit that goes to one host or waits whole.

use crate::ids::{HostId, VmId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How hard a rule binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strength {
    /// Never broken: a VM that can go nowhere else waits, and is reported.
    Must,
    /// Broken only when nothing else fits, and reported when it is.
    Should,
}

impl fmt::Display for Strength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strength::Must => "must",
            Strength::Should => "should",
        })
    }
}

/// What a rule group asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    /// The group's VMs run on one host, and move together.
    Affinity,
    /// The group's VMs run on different hosts.
    AntiAffinity,
    /// The group's VMs run only on these hosts, the first preferred.
    RunOn(Vec<HostId>),
    /// The group's VMs never run on these hosts.
    NotOn(Vec<HostId>),
}

/// One rule group, as an operator wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    pub strength: Strength,
    pub kind: RuleKind,
    pub vms: Vec<VmId>,
}

impl fmt::Display for RuleGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            RuleKind::Affinity => "affinity",
            RuleKind::AntiAffinity => "anti-affinity",
            RuleKind::RunOn(_) => "run-on",
            RuleKind::NotOn(_) => "not-on",
        };
        write!(f, "rule {} ({} {kind})", self.name, self.strength)
    }
}

/// What the rules say about putting a VM on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fit {
    /// No rule broken; `preference` orders allowed hosts (0 first: the
    /// position of the host in the VM's `run-on` lists).
    Allowed { preference: usize },
    /// Only `should` rules broken: allowed when nothing better fits.
    Breaks { why: String },
    /// A `must` rule broken: never.
    Forbidden { why: String },
}

impl Fit {
    /// The order candidates are preferred in: allowed (by preference), then
    /// breaking only `should` rules; `None` for forbidden.
    pub fn rank(&self) -> Option<(bool, usize)> {
        match self {
            Fit::Allowed { preference } => Some((false, *preference)),
            Fit::Breaks { .. } => Some((true, 0)),
            Fit::Forbidden { .. } => None,
        }
    }
}

/// Why a placement went where it breaks a `should` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakCause {
    /// The scheduler or the failover: no allowed host had room.
    NothingElseFitted,
    /// An operator named the host (a launch on it, a migration to it).
    OperatorNamedHost,
    /// Restore or failback to the VM's home: a should rule does not keep a
    /// VM on a spare (the spare is for the next failure).
    Home,
}

impl fmt::Display for BreakCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakCause::NothingElseFitted => "nothing else fitted",
            BreakCause::OperatorNamedHost => "the operator named the host",
            BreakCause::Home => "it is the VM's home",
        })
    }
}

/// The cluster's rule groups, indexed by the VMs they name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    groups: Vec<RuleGroup>,
    by_vm: BTreeMap<VmId, Vec<usize>>,
}

impl Rules {
    pub fn new(groups: Vec<RuleGroup>) -> Self {
        let mut by_vm: BTreeMap<VmId, Vec<usize>> = BTreeMap::new();
        for (i, g) in groups.iter().enumerate() {
            for vm in &g.vms {
                let of = by_vm.entry(vm.clone()).or_default();
                if !of.contains(&i) {
                    of.push(i);
                }
            }
        }
        Self { groups, by_vm }
    }

    pub fn groups(&self) -> &[RuleGroup] {
        &self.groups
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether any rule names `vm` (most VMs: none, and judging is free).
    pub fn names(&self, vm: &VmId) -> bool {
        self.by_vm.contains_key(vm)
    }

    /// May `vm` go to `host`? `where_is(other)` lists the hosts another VM
    /// may be alive on (or is being placed on).
    pub fn judge(
        &self,
        vm: &VmId,
        host: &HostId,
        mut where_is: impl FnMut(&VmId) -> Vec<HostId>,
    ) -> Fit {
        let Some(groups) = self.by_vm.get(vm) else {
            return Fit::Allowed { preference: 0 };
        };
        let mut forbidden: Vec<String> = Vec::new();
        let mut broken: Vec<String> = Vec::new();
        let mut preference = 0;
        let mut closure_judged = false;
        for g in groups.iter().map(|i| &self.groups[*i]) {
            let why = match &g.kind {
                // Wherever another member is alive, this one must be too
                // (a member alive nowhere yet binds nothing). Must groups
                // that share VMs bind as one: a VM goes where any VM of
                // either is (else the VM between them may never run again)
                // — judged once, over the whole closure.
                RuleKind::Affinity if g.strength == Strength::Must => {
                    if closure_judged {
                        None
                    } else {
                        closure_judged = true;
                        let mates = self.affinity_mates(vm, Some(Strength::Must));
                        affinity_apart(g, host, &mates, &mut where_is)
                    }
                }
                RuleKind::Affinity => {
                    let mates: Vec<VmId> = g.vms.iter().filter(|o| *o != vm).cloned().collect();
                    affinity_apart(g, host, &mates, &mut where_is)
                }
                RuleKind::AntiAffinity => g
                    .vms
                    .iter()
                    .filter(|other| *other != vm)
                    .find(|other| where_is(other).contains(host))
                    .map(|other| format!("{g}: {other} is on {host}")),
                RuleKind::RunOn(hosts) => match hosts.iter().position(|h| h == host) {
                    Some(i) => {
                        preference = preference.max(i);
                        None
                    }
                    None => Some(format!("{g}: {host} is not one of its hosts")),
                },
                RuleKind::NotOn(hosts) => hosts
                    .contains(host)
                    .then(|| format!("{g}: {host} is one of the hosts it excludes")),
            };
            if let Some(why) = why {
                match g.strength {
                    Strength::Must => forbidden.push(why),
                    Strength::Should => broken.push(why),
                }
            }
        }
        if !forbidden.is_empty() {
            Fit::Forbidden {
                why: forbidden.join("; "),
            }
        } else if !broken.is_empty() {
            Fit::Breaks {
                why: broken.join("; "),
            }
        } else {
            Fit::Allowed { preference }
        }
    }
}

/// Why `host` breaks affinity group `g` (judged over `mates`): the first
/// mate alive elsewhere, and where.
fn affinity_apart(
    g: &RuleGroup,
    host: &HostId,
    mates: &[VmId],
    where_is: &mut impl FnMut(&VmId) -> Vec<HostId>,
) -> Option<String> {
    mates.iter().find_map(|other| {
        let mut on = where_is(other);
        on.sort();
        on.dedup();
        (!on.is_empty() && !on.contains(host)).then(|| {
            let on: Vec<&str> = on.iter().map(|h| h.as_str()).collect();
            format!("{g}: {other} is on {}", on.join(" and "))
        })
    })
}

impl Rules {
    /// The VMs bound to `vm` by affinity groups (of `strength`, or of both
    /// when `None`), following groups that share VMs; `vm` not included.
    /// The VMs that move with it.
    pub fn affinity_mates(&self, vm: &VmId, strength: Option<Strength>) -> Vec<VmId> {
        let mut found: Vec<VmId> = vec![vm.clone()];
        let mut next = 0;
        // Bounded: each VM enters `found` once.
        while next < found.len() {
            let at = found[next].clone();
            next += 1;
            for g in self.by_vm.get(&at).into_iter().flatten() {
                let g = &self.groups[*g];
                if g.kind != RuleKind::Affinity || strength.is_some_and(|s| s != g.strength) {
                    continue;
                }
                for other in &g.vms {
                    if !found.contains(other) {
                        found.push(other.clone());
                    }
                }
            }
        }
        found.remove(0);
        found
    }

    /// Labels binding `vms` (placed in one breath) into units: VMs of one
    /// `must` affinity group share a label and go to one host together or
    /// wait together; others are alone. `labels[i]` is the index of the
    /// first VM of `i`'s unit.
    pub fn units(&self, vms: &[&VmId]) -> Vec<usize> {
        let mut labels: Vec<usize> = (0..vms.len()).collect();
        for (i, vm) in vms.iter().enumerate() {
            if labels[i] != i || !self.names(vm) {
                continue;
            }
            let mates = self.affinity_mates(vm, Some(Strength::Must));
            for (j, other) in vms.iter().enumerate().skip(i + 1) {
                if mates.contains(other) {
                    labels[j] = i;
                }
            }
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: &str) -> HostId {
        HostId::new(n)
    }
    fn v(n: &str) -> VmId {
        VmId::new(n)
    }
    fn group(strength: Strength, kind: RuleKind, vms: &[&str]) -> RuleGroup {
        RuleGroup {
            name: "g".into(),
            strength,
            kind,
            vms: vms.iter().map(|n| v(n)).collect(),
        }
    }

    #[test]
    fn anti_affine_vms_may_not_share_a_host() {
        let rules = Rules::new(vec![group(
            Strength::Must,
            RuleKind::AntiAffinity,
            &["db-1", "db-2"],
        )]);
        let on = |vm: &VmId| {
            if vm == &v("db-2") {
                vec![h("spare-1")]
            } else {
                vec![]
            }
        };
        assert!(matches!(
            rules.judge(&v("db-1"), &h("spare-1"), on),
            Fit::Forbidden { why } if why == "rule g (must anti-affinity): db-2 is on spare-1"
        ));
        assert_eq!(
            rules.judge(&v("db-1"), &h("spare-2"), on),
            Fit::Allowed { preference: 0 }
        );
        // A VM no rule names is judged by nothing.
        assert_eq!(
            rules.judge(&v("web"), &h("spare-1"), on),
            Fit::Allowed { preference: 0 }
        );
    }

    #[test]
    fn run_on_orders_its_hosts_and_should_rules_only_break() {
        let rules = Rules::new(vec![
            group(
                Strength::Should,
                RuleKind::RunOn(vec![h("hv-02"), h("hv-01")]),
                &["app"],
            ),
            group(Strength::Must, RuleKind::NotOn(vec![h("hv-03")]), &["app"]),
        ]);
        let none = |_: &VmId| Vec::new();
        assert_eq!(
            rules.judge(&v("app"), &h("hv-02"), none),
            Fit::Allowed { preference: 0 }
        );
        assert_eq!(
            rules.judge(&v("app"), &h("hv-01"), none),
            Fit::Allowed { preference: 1 }
        );
        assert!(matches!(
            rules.judge(&v("app"), &h("spare-1"), none),
            Fit::Breaks { .. }
        ));
        assert!(matches!(
            rules.judge(&v("app"), &h("hv-03"), none),
            Fit::Forbidden { .. }
        ));
        assert!(Fit::Allowed { preference: 1 }.rank() < Fit::Breaks { why: String::new() }.rank());
    }

    #[test]
    fn affinity_keeps_a_vm_where_its_mates_are_alive() {
        let rules = Rules::new(vec![group(
            Strength::Must,
            RuleKind::Affinity,
            &["app", "cache"],
        )]);
        // cache migrating hv-01 -> hv-02: alive on both.
        let moving = |vm: &VmId| {
            if vm == &v("cache") {
                vec![h("hv-01"), h("hv-02")]
            } else {
                vec![]
            }
        };
        assert_eq!(
            rules.judge(&v("app"), &h("hv-02"), moving),
            Fit::Allowed { preference: 0 }
        );
        assert!(matches!(
            rules.judge(&v("app"), &h("spare-1"), moving),
            Fit::Forbidden { why } if why == "rule g (must affinity): cache is on hv-01 and hv-02"
        ));
        // A mate alive nowhere binds nothing.
        assert_eq!(
            rules.judge(&v("app"), &h("spare-1"), |_: &VmId| Vec::new()),
            Fit::Allowed { preference: 0 }
        );
    }

    #[test]
    fn must_affinity_binds_units_through_shared_vms_and_should_does_not() {
        let mut a = group(Strength::Must, RuleKind::Affinity, &["a", "b"]);
        a.name = "ab".into();
        let mut b = group(Strength::Must, RuleKind::Affinity, &["b", "c"]);
        b.name = "bc".into();
        let mut c = group(Strength::Should, RuleKind::Affinity, &["c", "d"]);
        c.name = "cd".into();
        let rules = Rules::new(vec![a, b, c]);
        assert_eq!(
            rules.affinity_mates(&v("a"), Some(Strength::Must)),
            vec![v("b"), v("c")]
        );
        assert_eq!(
            rules.affinity_mates(&v("a"), None),
            vec![v("b"), v("c"), v("d")]
        );
        let (x, a, d, c) = (v("x"), v("a"), v("d"), v("c"));
        assert_eq!(rules.units(&[&x, &a, &d, &c]), vec![0, 1, 2, 1]);
    }
}
