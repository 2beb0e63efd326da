//! A rule group as an operator writes it — in a cluster file or an API
//! call — turned into a checked [`RuleGroup`]: a valid name, each VM and
//! host once, the fields its kind needs, every VM and host known (hosts
//! that run VMs or spares), and, for a `must` rule, whether it holds where
//! the VMs are placed now. One checker for both doors, so a file and the
//! API refuse the same groups with the same words.

use crate::ids::{HostId, VmId};
use crate::model::Zone;
use crate::rules::{RuleGroup, RuleKind, Strength};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kinds by name (`affinity`, `anti-affinity`, `run-on`, `not-on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKindName {
    AntiAffinity,
    RunOn,
    NotOn,
    Affinity,
}

impl RuleKindName {
    pub fn name(self) -> &'static str {
        match self {
            RuleKindName::Affinity => "affinity",
            RuleKindName::AntiAffinity => "anti-affinity",
            RuleKindName::RunOn => "run-on",
            RuleKindName::NotOn => "not-on",
        }
    }
}

/// A rule group in an operator's words, unchecked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleWords {
    pub name: String,
    pub kind: RuleKindName,
    /// `must` (never broken) or `should` (broken only when nothing else fits).
    pub strength: Strength,
    pub vms: Vec<String>,
    /// `run-on` and `not-on`: the hosts (for `run-on`, in order of preference).
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl RuleWords {
    /// The group, checked against the cluster: `vm_known` says whether a VM
    /// exists, `host_zone` a host's zone. Errs with why, in words that name
    /// the offending VM, host or field.
    pub fn check(
        &self,
        vm_known: impl Fn(&VmId) -> bool,
        host_zone: impl Fn(&HostId) -> Option<Zone>,
    ) -> Result<RuleGroup, String> {
        let n = &self.name;
        if n.is_empty() || n.len() > 63 || n.contains(char::is_whitespace) {
            return Err("expected a name of 1 to 63 characters without spaces".into());
        }
        let mut members: Vec<VmId> = Vec::with_capacity(self.vms.len());
        for vm in &self.vms {
            let id = VmId::new(vm);
            if !vm_known(&id) {
                return Err(format!("no vm named `{vm}` in the cluster"));
            }
            if members.contains(&id) {
                return Err(format!("vm `{vm}` is listed twice"));
            }
            members.push(id);
        }
        let mut listed: Vec<HostId> = Vec::with_capacity(self.hosts.len());
        for h in &self.hosts {
            let id = HostId::new(h);
            match host_zone(&id) {
                None => return Err(format!("no host named `{h}` in the cluster")),
                Some(z) if !z.runs_vms() && z != Zone::Spare => {
                    return Err(format!(
                        "host `{h}` is in zone {z}, which runs no VMs; \
                         expected ECS, DFS, KS or SPARE hosts"
                    ))
                }
                Some(_) => {}
            }
            if listed.contains(&id) {
                return Err(format!("host `{h}` is listed twice"));
            }
            listed.push(id);
        }
        let name = self.kind.name();
        let kind = match self.kind {
            RuleKindName::Affinity | RuleKindName::AntiAffinity => {
                if members.len() < 2 {
                    return Err(format!("{name} needs at least two vms"));
                }
                if !listed.is_empty() {
                    return Err(format!("{name} takes no `hosts`"));
                }
                if self.kind == RuleKindName::Affinity {
                    RuleKind::Affinity
                } else {
                    RuleKind::AntiAffinity
                }
            }
            RuleKindName::RunOn | RuleKindName::NotOn => {
                if members.is_empty() {
                    return Err("expected at least one vm in `vms`".into());
                }
                if listed.is_empty() {
                    return Err("expected at least one host in `hosts`".into());
                }
                if self.kind == RuleKindName::RunOn {
                    RuleKind::RunOn(listed)
                } else {
                    RuleKind::NotOn(listed)
                }
            }
        };
        Ok(RuleGroup {
            name: self.name.clone(),
            strength: self.strength,
            kind,
            vms: members,
        })
    }
}

impl RuleGroup {
    /// How the group is broken with each VM where `place` puts it (a VM
    /// placed nowhere binds nothing), if it is; `verb` says what the place
    /// is ("homed on", "running on").
    pub fn broken_where(
        &self,
        place: impl Fn(&VmId) -> Option<HostId>,
        verb: &str,
    ) -> Option<String> {
        let placed: Vec<(&VmId, HostId)> = self
            .vms
            .iter()
            .filter_map(|vm| place(vm).map(|h| (vm, h)))
            .collect();
        match &self.kind {
            RuleKind::Affinity => {
                let (first, at) = placed.first()?;
                placed
                    .iter()
                    .find(|(_, h)| h != at)
                    .map(|(vm, h)| format!("{first} is {verb} {at} and {vm} on {h}"))
            }
            RuleKind::AntiAffinity => {
                let mut seen: BTreeMap<&HostId, &VmId> = BTreeMap::new();
                placed.iter().find_map(|(vm, h)| {
                    seen.insert(h, vm)
                        .map(|other| format!("{other} and {vm} are both {verb} {h}"))
                })
            }
            RuleKind::RunOn(hosts) => placed
                .iter()
                .find(|(_, h)| !hosts.contains(h))
                .map(|(vm, h)| format!("{vm} is {verb} {h}, not one of its hosts")),
            RuleKind::NotOn(hosts) => placed
                .iter()
                .find(|(_, h)| hosts.contains(h))
                .map(|(vm, h)| format!("{vm} is {verb} {h}, which it excludes")),
        }
    }
}
