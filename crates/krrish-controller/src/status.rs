//! The cluster as the control plane sees it.

use krrish_core::ha::{HaManager, VmState};
use krrish_core::{BondHealth, HostId, VmId};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    /// up, suspect, fencing, fenced, fence-failed.
    pub state: &'static str,
    /// For spares: free, active, unavailable.
    pub spare: Option<&'static str>,
    pub bonds: [BondHealth; 3],
    /// DPM's hold on it: draining, powering-off, off, powering-on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmStatus {
    /// running, booting, migrating, host-down, waiting-for-capacity, …
    pub state: &'static str,
    /// Where it runs (or boots, or migrates from).
    pub host: Option<HostId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub hosts: BTreeMap<HostId, HostStatus>,
    pub vms: BTreeMap<VmId, VmStatus>,
    pub spares_free: usize,
    pub spares_active: usize,
    pub spares_unavailable: usize,
    /// The moves DRS would make now (`None`: DRS is off).
    pub drs_plan: Option<Vec<DrsPlanned>>,
}

/// One move of the DRS plan, as operators are shown it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DrsPlanned {
    pub vms: Vec<VmId>,
    pub from: HostId,
    pub to: HostId,
    /// The two hosts' loads (per cent) before the move.
    pub from_load: u32,
    pub to_load: u32,
}

impl ClusterStatus {
    pub fn of(core: &HaManager) -> Self {
        let hosts = core
            .hosts()
            .iter()
            .map(|(id, h)| {
                (
                    id.clone(),
                    HostStatus {
                        state: h.verdict().name(),
                        spare: h.spare.map(|s| s.name()),
                        bonds: h.bonds,
                        standby: (h.standby != krrish_core::ha::Standby::No)
                            .then(|| h.standby.name()),
                    },
                )
            })
            .collect();
        let vms = core
            .vms()
            .iter()
            .map(|(id, v)| {
                let host = match &v.state {
                    VmState::Running { host } | VmState::Booting { host, .. } => Some(host.clone()),
                    VmState::Migrating { from, .. } => Some(from.clone()),
                    _ => None,
                };
                (
                    id.clone(),
                    VmStatus {
                        state: v.state.name(),
                        host,
                    },
                )
            })
            .collect();
        let (free, active, unavailable) = core.spare_counts();
        Self {
            hosts,
            vms,
            spares_free: free,
            spares_active: active,
            spares_unavailable: unavailable,
            drs_plan: core.config().drs.as_ref().map(|_| {
                core.drs_plan()
                    .into_iter()
                    .map(|m| DrsPlanned {
                        vms: m.vms,
                        from: m.from,
                        to: m.to,
                        from_load: m.from_load,
                        to_load: m.to_load,
                    })
                    .collect()
            }),
        }
    }
}
