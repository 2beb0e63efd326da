//! The cluster's rule groups applied to the HA manager's placements: where
//! the other VMs of a rule may be alive (every host a copy may run on, and
//! where a placement being decided puts them), the spot for a new tenant,
//! and the reports of rules that held a VM back or were broken.

use super::{ApiError, BootReason, HaManager, Notice, VmState};
use crate::ids::{HostId, VmId};
use crate::model::Resources;
use crate::placement::{self, Spot};
use crate::rules::{BreakCause, Fit};

impl HaManager {
    /// What the rules say about `vm` on `host`; `also` lists placements
    /// decided in the same breath but not made yet.
    pub(super) fn rule_fit(&self, vm: &VmId, host: &HostId, also: &[(VmId, HostId)]) -> Fit {
        let rules = &self.rules;
        if !rules.names(vm) {
            return Fit::Allowed { preference: 0 };
        }
        rules.judge(vm, host, |other| {
            let mut on = self.hosts_that_may_run(other);
            // A VM stopped to move home cold is headed there: its home
            // counts as taken, as the far end of a live migration does.
            // One about to boot again where its boot failed holds that host.
            if let Some(rec) = self.vms.get(other) {
                match &rec.state {
                    VmState::Evacuating { .. } => on.push(rec.spec.home.clone()),
                    VmState::RetryingBoot { host, .. } => on.push(host.clone()),
                    _ => {}
                }
            }
            on.extend(
                also.iter()
                    .filter(|(v, _)| v == other)
                    .map(|(_, h)| h.clone()),
            );
            on
        })
    }

    /// Where a tenant `vm` needing `demand` goes among `candidates` (with
    /// their room): see [`placement::most_free_by_rules`].
    pub(super) fn tenant_spot(
        &self,
        vm: &VmId,
        demand: &Resources,
        candidates: &[HostId],
        free: &[Resources],
    ) -> Result<Spot, ApiError> {
        // A new home never takes the home of a VM it must stay apart from
        // while that one is away and going back (see `anti_affine_home`).
        placement::most_free_by_rules(free, demand, |i| {
            match self.anti_affine_home(std::slice::from_ref(vm), &candidates[i]) {
                Some(why) => Fit::Forbidden { why },
                None => self.rule_fit(vm, &candidates[i], &[]),
            }
        })
        .map_err(|forbidden| match forbidden {
            Some(why) => ApiError::NoAllowedHost {
                vm: vm.clone(),
                why,
            },
            None => ApiError::NoCapacity(*demand),
        })
    }

    /// Why `vm` needing `demand` waits although one of `candidates` (with
    /// `free` room) could take it: the first `must` rule in the way (`also`:
    /// placements decided but not made yet).
    pub(super) fn held_back_by(
        &self,
        vm: &VmId,
        demand: &Resources,
        candidates: &[HostId],
        free: &[Resources],
        also: &[(VmId, HostId)],
    ) -> Option<String> {
        if !self.rules.names(vm) {
            return None;
        }
        let forbidden = |h: &HostId| match self.rule_fit(vm, h, also) {
            Fit::Forbidden { why } => Some(why),
            _ => None,
        };
        // Its home, fit again and with room, counts as a candidate too.
        let home = &self.vms[vm].spec.home;
        let home_has_room =
            super::home_ready(&self.hosts, home) && demand.fits_in(&self.free_capacity(home));
        candidates
            .iter()
            .zip(free)
            .filter(|(_, f)| demand.fits_in(f))
            .find_map(|(h, _)| forbidden(h))
            .or_else(|| home_has_room.then(|| forbidden(home)).flatten())
    }

    /// `vm` went to `host` breaking the `should` rules in `breaks`, if
    /// any, for `cause`.
    pub(super) fn report_rule_broken(
        &mut self,
        now_ms: u64,
        vm: &VmId,
        host: &HostId,
        breaks: Option<String>,
        cause: BreakCause,
    ) {
        if let Some(why) = breaks {
            self.notice(
                now_ms,
                Notice::RuleBroken {
                    vm: vm.clone(),
                    host: host.clone(),
                    why,
                    cause,
                },
            );
        }
    }

    /// Boots `vm` at its home to restore it (the callers checked room and
    /// that no must rule forbids it), reporting a should rule it breaks.
    pub(super) fn boot_home(&mut self, now_ms: u64, vm: &VmId) {
        let home = self.vms[vm].spec.home.clone();
        let breaks = self.should_breaks(vm, &home);
        self.boot(now_ms, vm, &home, BootReason::Restore);
        self.report_rule_broken(now_ms, vm, &home, breaks, BreakCause::Home);
    }

    /// The `should` rules `vm` breaks on `host`, if only such.
    pub(super) fn should_breaks(&self, vm: &VmId, host: &HostId) -> Option<String> {
        match self.rule_fit(vm, host, &[]) {
            Fit::Breaks { why } => Some(why),
            _ => None,
        }
    }
}
