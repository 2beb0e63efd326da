//! Rule groups and the cluster-wide HA switch set by operators through the
//! API, beside the cluster file's: checked as the loader checks a file's
//! (the same [`RuleWords::check`]), a `must` group refused while it does
//! not hold where its VMs run now (or while one of them is moving), the
//! file's own groups and the services' implicit ones left alone. Both are
//! persisted with the core's state.

use super::{ApiError, HaManager, VmState};
use crate::ids::{HostId, VmId};
use crate::rule_check::RuleWords;
use crate::rules::{RuleGroup, Rules, Strength};

/// Operators' groups at most (the judging is bounded by the rules' count).
const OPERATOR_RULES_MAX: usize = 1_000;
/// Placements of a `must` group's members judged at most when it is set.
const PLACEMENTS_JUDGED_MAX: usize = 4_096;

impl HaManager {
    /// The rules in force again: the file's, the operators', the services'.
    pub(super) fn rebuild_rules(&mut self) {
        let mut all = self.config.rules.groups().to_vec();
        all.extend(self.operator_rules.iter().cloned());
        all.extend(self.service_groups.iter().cloned());
        self.rules = Rules::new(all);
    }

    /// The groups set through the API.
    pub fn operator_rules(&self) -> &[RuleGroup] {
        &self.operator_rules
    }

    /// Sets (or replaces) an operator's rule group; `Ok(true)` when it
    /// replaced one of the same name. Binds placements from now on; a VM
    /// already placed is not moved (a `must` group must hold already).
    pub fn put_rule(&mut self, words: &RuleWords) -> Result<bool, ApiError> {
        let refuse = |why: String| ApiError::RuleRefused {
            name: words.name.clone(),
            why,
        };
        if words.name.contains(':') {
            return Err(refuse(
                "`:` is kept for the managed services' own groups (rdb:NAME, …)".into(),
            ));
        }
        if self
            .config
            .rules
            .groups()
            .iter()
            .any(|g| g.name == words.name)
        {
            return Err(refuse(
                "a group of the cluster file has this name; change the file".into(),
            ));
        }
        let group = words
            .check(
                |vm| self.vms.contains_key(vm),
                |h| self.hosts.get(h).map(|r| r.spec.zone),
            )
            .map_err(refuse)?;
        let replaces = self
            .operator_rules
            .iter()
            .position(|g| g.name == group.name);
        if replaces.is_none() && self.operator_rules.len() >= OPERATOR_RULES_MAX {
            return Err(refuse(format!(
                "{OPERATOR_RULES_MAX} groups are set already; delete one first"
            )));
        }
        if group.strength == Strength::Must {
            // A copy in flight may be alive on two hosts: judged once it
            // lands.
            if let Some(vm) = group.vms.iter().find(|vm| {
                matches!(
                    self.vms[*vm].state,
                    VmState::Migrating { .. }
                        | VmState::Booting { .. }
                        | VmState::Evacuating { .. }
                )
            }) {
                return Err(refuse(format!(
                    "vm {vm} is {}: a must group is set once its VMs settle",
                    self.vms[vm].state.name()
                )));
            }
            // Every host a member may be alive on counts — a host being
            // fenced under it too (found by the adversary: a group was
            // accepted while both members still ran on a host mid-fence).
            let may_run: Vec<Vec<HostId>> = group
                .vms
                .iter()
                .map(|vm| self.hosts_that_may_run(vm))
                .collect();
            // Judged on every combination of those hosts (a member on no
            // host runs nowhere): one host each is the common case, two
            // for a VM caught on a host being fenced.
            let combinations = may_run
                .iter()
                .map(|h| h.len().max(1))
                .try_fold(1usize, |n, k| n.checked_mul(k))
                .filter(|n| *n <= PLACEMENTS_JUDGED_MAX);
            let Some(combinations) = combinations else {
                return Err(refuse(format!(
                    "its VMs may be alive on too many hosts to judge (over {PLACEMENTS_JUDGED_MAX} placements); set it once they settle"
                )));
            };
            for n in 0..combinations {
                // The n-th combination, as digits in each member's base.
                let mut pick = Vec::with_capacity(may_run.len());
                let mut rest = n;
                for hosts in &may_run {
                    let base = hosts.len().max(1);
                    pick.push(hosts.get(rest % base).cloned());
                    rest /= base;
                }
                let at = |vm: &VmId| -> Option<HostId> {
                    let i = group.vms.iter().position(|v| v == vm)?;
                    pick[i].clone()
                };
                if let Some(why) = group.broken_where(at, "running on") {
                    return Err(refuse(format!(
                        "a must rule must hold where the VMs run now: {why}"
                    )));
                }
            }
            // Then at the VMs' homes too, as the loader does: two VMs a
            // must rule keeps apart sharing a home, one of them away now,
            // would keep it from ever going back (found by an adversary: a
            // failed-over VM held its spare for ever).
            let apart = matches!(group.kind, crate::rules::RuleKind::AntiAffinity);
            if let Some(why) = apart
                .then(|| {
                    group.broken_where(
                        |vm| self.vms.get(vm).map(|r| r.spec.home.clone()),
                        "homed on",
                    )
                })
                .flatten()
            {
                return Err(refuse(format!(
                    "a must rule must hold at the VMs' homes: {why}"
                )));
            }
        }
        match replaces {
            Some(i) => self.operator_rules[i] = group,
            None => self.operator_rules.push(group),
        }
        self.rebuild_rules();
        self.changed_silently();
        Ok(replaces.is_some())
    }

    /// Deletes an operator's rule group.
    pub fn delete_rule(&mut self, name: &str) -> Result<(), ApiError> {
        if self.config.rules.groups().iter().any(|g| g.name == name) {
            return Err(ApiError::RuleRefused {
                name: name.to_string(),
                why: "it is the cluster file's; change the file".into(),
            });
        }
        let Some(i) = self.operator_rules.iter().position(|g| g.name == name) else {
            return Err(ApiError::NoSuchRule(name.to_string()));
        };
        self.operator_rules.remove(i);
        self.rebuild_rules();
        self.changed_silently();
        Ok(())
    }

    /// The cluster-wide HA switch: off, failed hosts are still detected and
    /// fenced but nothing restarts; on again, failures from then on are
    /// handled (VMs already down stay down until started).
    pub fn set_ha_enabled(&mut self, enabled: bool) {
        if self.config.ha_enabled != enabled {
            self.config.ha_enabled = enabled;
            self.changed_silently();
        }
    }

    /// Restores the operators' groups and switch (from the store).
    pub(super) fn restore_operator_settings(
        &mut self,
        rules: Vec<RuleGroup>,
        ha_enabled: Option<bool>,
    ) {
        self.operator_rules = rules;
        if let Some(on) = ha_enabled {
            self.config.ha_enabled = on;
        }
        self.rebuild_rules();
    }
}
