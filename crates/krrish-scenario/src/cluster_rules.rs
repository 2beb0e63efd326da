//! A cluster file's `rules:` → the core's [`Rules`], checked: unique valid
//! names, known VMs and hosts, the fields each kind needs, and every `must`
//! rule holding where the VMs start (their home hosts).

use crate::format::RuleEntry;
use crate::load::{LoadError, Source};
use krrish_core::rules::{Rules, Strength};
use krrish_core::{HostId, HostSpec, VmId, VmSpec};
use std::collections::{BTreeMap, BTreeSet};

/// More rule groups than any cluster we model; a bound on the judging.
const RULES_MAX: usize = 1_000;

pub(crate) fn rules(
    src: &Source<'_>,
    entries: &[RuleEntry],
    hosts: &[HostSpec],
    vms: &[VmSpec],
) -> Result<Rules, LoadError> {
    if entries.len() > RULES_MAX {
        return Err(src.error(
            src.key_line("rules"),
            format!("{} rule groups; at most {RULES_MAX}", entries.len()),
        ));
    }
    let lines = src.nested_list_items("rules");
    let homes: BTreeMap<&VmId, &HostId> = vms.iter().map(|v| (&v.id, &v.home)).collect();
    let zones: BTreeMap<&HostId, krrish_core::Zone> =
        hosts.iter().map(|h| (&h.id, h.zone)).collect();
    let mut names = BTreeSet::new();
    let mut groups = Vec::with_capacity(entries.len());
    for (i, r) in entries.iter().enumerate() {
        let at = lines.get(i).map(|l| (*l, 1)).or(src.find("name", &r.name));
        let bad = |why: String| Err(src.error(at, format!("rules: rule `{}`: {why}", r.name)));
        if !names.insert(r.name.as_str()) {
            return bad("defined twice".into());
        }
        let group = match r.check(|vm| homes.contains_key(vm), |h| zones.get(h).copied()) {
            Ok(g) => g,
            Err(why) => return bad(why),
        };
        if group.strength == Strength::Must {
            let home = |vm: &VmId| homes.get(vm).map(|h| (*h).clone());
            if let Some(why) = group.broken_where(home, "homed on") {
                return bad(format!("a must rule broken where the VMs start: {why}"));
            }
        }
        groups.push(group);
    }
    Ok(Rules::new(groups))
}
