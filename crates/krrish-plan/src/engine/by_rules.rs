//! The replay's placement under a cluster's rule groups: the core's
//! rule-aware placement and judgement, with the replay's VMs and spares
//! named as the cluster names them.

use super::{Loc, Replay, Scratch};
use krrish_core::placement::place_group_by_rules;
use krrish_core::rules::Fit;

impl Replay<'_> {
    /// `place_group_into` under the cluster's rules (the core's rule-aware
    /// placement and judgement): another VM of a rule is on the spare it
    /// runs on, or where this group's placement puts it.
    pub(super) fn place_by_rules(&self, loc: &[Loc], x: &mut Scratch) {
        let names = &self.input.rules;
        let (vms, up) = (&x.vms, &x.up);
        // A must affinity group's VMs go to one spare or wait together.
        let named: Vec<&krrish_core::VmId> = vms.iter().map(|v| &names.vm_names[*v]).collect();
        let units = names.rules.units(&named);
        let spots = place_group_by_rules(&mut x.free, &x.demands, &units, |i, b, placed| {
            let vm = &names.vm_names[vms[i]];
            if !self.ruled.contains_key(vm) {
                return Fit::Allowed { preference: 0 };
            }
            names.rules.judge(vm, &names.spare(up[b]), |other| {
                let Some(&o) = self.ruled.get(other) else {
                    return Vec::new();
                };
                let mut on = Vec::new();
                if let Loc::Spare(s) = loc[o] {
                    on.push(names.spare(s as usize));
                }
                if let Some(j) = vms.iter().position(|&v| v == o) {
                    if let Some(at) = placed[j] {
                        on.push(names.spare(up[at]));
                    }
                }
                on
            })
        });
        x.spots.clear();
        x.spots.extend(spots.into_iter().map(|s| s.map(|s| s.bin)));
    }
}
