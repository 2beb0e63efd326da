//! A cluster file's `rules:` → the core's [`Rules`], checked: unique valid
//! names, known VMs and hosts, the fields each kind needs, and every `must`
//! rule holding where the VMs start (their home hosts).

use crate::format::{RuleEntry, RuleKindName};
use crate::load::{LoadError, Source};
use krrish_core::rules::{RuleGroup, RuleKind, Rules, Strength};
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
        if r.name.is_empty() || r.name.len() > 63 || r.name.contains(char::is_whitespace) {
            return bad("expected a name of 1 to 63 characters without spaces".into());
        }
        if !names.insert(r.name.as_str()) {
            return bad("defined twice".into());
        }
        let mut members: Vec<VmId> = Vec::with_capacity(r.vms.len());
        for vm in &r.vms {
            let id = VmId::new(vm);
            if !homes.contains_key(&id) {
                return bad(format!("no vm named `{vm}` in the cluster"));
            }
            if members.contains(&id) {
                return bad(format!("vm `{vm}` is listed twice"));
            }
            members.push(id);
        }
        let mut listed: Vec<HostId> = Vec::with_capacity(r.hosts.len());
        for h in &r.hosts {
            let id = HostId::new(h);
            match zones.get(&id) {
                None => return bad(format!("no host named `{h}` in the cluster")),
                Some(z) if !z.runs_vms() && *z != krrish_core::Zone::Spare => {
                    return bad(format!(
                        "host `{h}` is in zone {z}, which runs no VMs; \
                         expected ECS, DFS, KS or SPARE hosts"
                    ))
                }
                Some(_) => {}
            }
            if listed.contains(&id) {
                return bad(format!("host `{h}` is listed twice"));
            }
            listed.push(id);
        }
        let kind = match r.kind {
            RuleKindName::Affinity | RuleKindName::AntiAffinity => {
                let name = if r.kind == RuleKindName::Affinity {
                    "affinity"
                } else {
                    "anti-affinity"
                };
                if members.len() < 2 {
                    return bad(format!("{name} needs at least two vms"));
                }
                if !listed.is_empty() {
                    return bad(format!("{name} takes no `hosts`"));
                }
                if r.kind == RuleKindName::Affinity {
                    RuleKind::Affinity
                } else {
                    RuleKind::AntiAffinity
                }
            }
            RuleKindName::RunOn | RuleKindName::NotOn => {
                if members.is_empty() {
                    return bad("expected at least one vm in `vms`".into());
                }
                if listed.is_empty() {
                    return bad("expected at least one host in `hosts`".into());
                }
                if r.kind == RuleKindName::RunOn {
                    RuleKind::RunOn(listed)
                } else {
                    RuleKind::NotOn(listed)
                }
            }
        };
        let group = RuleGroup {
            name: r.name.clone(),
            strength: r.strength,
            kind,
            vms: members,
        };
        if group.strength == Strength::Must {
            if let Some(why) = broken_at_home(&group, &homes) {
                return bad(format!("a must rule broken where the VMs start: {why}"));
            }
        }
        groups.push(group);
    }
    Ok(Rules::new(groups))
}

/// How `group` is broken with every VM on its home host, if it is.
fn broken_at_home(group: &RuleGroup, homes: &BTreeMap<&VmId, &HostId>) -> Option<String> {
    let home = |vm: &VmId| homes[vm];
    match &group.kind {
        RuleKind::Affinity => {
            let first = &group.vms[0];
            group
                .vms
                .iter()
                .find(|vm| home(vm) != home(first))
                .map(|vm| {
                    format!(
                        "{first} is homed on {} and {vm} on {}",
                        home(first),
                        home(vm)
                    )
                })
        }
        RuleKind::AntiAffinity => {
            let mut seen: BTreeMap<&HostId, &VmId> = BTreeMap::new();
            group.vms.iter().find_map(|vm| {
                seen.insert(home(vm), vm)
                    .map(|other| format!("{other} and {vm} are both homed on {}", home(vm)))
            })
        }
        RuleKind::RunOn(hosts) => group
            .vms
            .iter()
            .find(|vm| !hosts.contains(home(vm)))
            .map(|vm| format!("{vm} is homed on {}, not one of its hosts", home(vm))),
        RuleKind::NotOn(hosts) => group
            .vms
            .iter()
            .find(|vm| hosts.contains(home(vm)))
            .map(|vm| format!("{vm} is homed on {}, which it excludes", home(vm))),
    }
}
