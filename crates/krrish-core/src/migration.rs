//! Live-migration preconditions (FusionCompute / vSphere rules from the
//! design notes). The HA manager checks them before failback; the API checks
//! them before an operator's migration.

use crate::model::{HostSpec, Resources, VmSpec};
use std::fmt;

/// Why a live migration may not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationBlocker {
    VmNotRunning,
    PassthroughDevices(Vec<String>),
    TargetInMaintenance,
    TargetIsSource,
    TargetLacksCapacity {
        free: Resources,
        needed: Resources,
    },
    /// Memory-overcommit settings (percent of physical memory placement
    /// may commit; 100 = off) differ between source and target.
    OvercommitMismatch {
        source: u32,
        target: u32,
    },
    /// CPU models differ and the cluster's IMC mode is off.
    CpuIncompatible {
        source: String,
        target: String,
    },
    /// Hosts on different distributed virtual switches.
    DifferentDvs {
        source: String,
        target: String,
    },
    TargetUnhealthy,
    /// This host's hypervisor cannot live-migrate (the source's named
    /// first when neither can).
    LiveMigrationUnsupported {
        host: crate::ids::HostId,
    },
}

impl fmt::Display for MigrationBlocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VmNotRunning => write!(f, "VM is not running"),
            Self::PassthroughDevices(d) => {
                write!(f, "passthrough devices attached: {}", d.join(", "))
            }
            Self::TargetInMaintenance => write!(f, "target host is in maintenance"),
            Self::TargetIsSource => write!(f, "target is the host the VM runs on"),
            Self::TargetLacksCapacity { free, needed } => {
                write!(f, "target lacks capacity (free {free}; needs {needed})")
            }
            Self::OvercommitMismatch { source, target } => write!(
                f,
                "memory-overcommit settings differ (source {}, target {})",
                overcommit_setting(*source),
                overcommit_setting(*target)
            ),
            Self::CpuIncompatible { source, target } => {
                write!(
                    f,
                    "CPU models differ ({source} vs {target}) and IMC mode is off"
                )
            }
            Self::DifferentDvs { source, target } => {
                write!(
                    f,
                    "hosts are on different virtual switches ({source} vs {target})"
                )
            }
            Self::TargetUnhealthy => write!(f, "target host is not up"),
            Self::LiveMigrationUnsupported { host } => {
                write!(f, "{host}'s hypervisor cannot live-migrate")
            }
        }
    }
}

/// What a caller knows about the migration beyond the static specs.
pub struct MigrationContext<'a> {
    pub vm: &'a VmSpec,
    pub vm_running: bool,
    pub source: &'a HostSpec,
    pub target: &'a HostSpec,
    pub target_up: bool,
    pub target_free: Resources,
    /// The cluster's CPU-compatibility (IMC) mode.
    pub imc_mode: bool,
}

/// Every blocker, in a fixed order (empty = may migrate).
pub fn migration_blockers(c: &MigrationContext<'_>) -> Vec<MigrationBlocker> {
    let mut out = Vec::new();
    if !c.vm_running {
        out.push(MigrationBlocker::VmNotRunning);
    }
    if !c.vm.passthrough_devices.is_empty() {
        out.push(MigrationBlocker::PassthroughDevices(
            c.vm.passthrough_devices.clone(),
        ));
    }
    if c.source.id == c.target.id {
        out.push(MigrationBlocker::TargetIsSource);
    }
    if !c.target_up {
        out.push(MigrationBlocker::TargetUnhealthy);
    }
    if c.target.maintenance {
        out.push(MigrationBlocker::TargetInMaintenance);
    }
    if !c.vm.demand.fits_in(&c.target_free) {
        out.push(MigrationBlocker::TargetLacksCapacity {
            free: c.target_free,
            needed: c.vm.demand,
        });
    }
    if c.source.memory_overcommit_percent != c.target.memory_overcommit_percent {
        out.push(MigrationBlocker::OvercommitMismatch {
            source: c.source.memory_overcommit_percent,
            target: c.target.memory_overcommit_percent,
        });
    }
    if c.source.cpu_model != c.target.cpu_model && !c.imc_mode {
        out.push(MigrationBlocker::CpuIncompatible {
            source: c.source.cpu_model.clone(),
            target: c.target.cpu_model.clone(),
        });
    }
    if c.source.dvs != c.target.dvs {
        out.push(MigrationBlocker::DifferentDvs {
            source: c.source.dvs.clone(),
            target: c.target.dvs.clone(),
        });
    }
    if let Some(h) = [c.source, c.target].iter().find(|h| !h.live_migration) {
        out.push(MigrationBlocker::LiveMigrationUnsupported { host: h.id.clone() });
    }
    out
}

/// An overcommit setting as operators write it: "off" or the ratio.
fn overcommit_setting(percent: u32) -> String {
    if percent == crate::model::MEMORY_OVERCOMMIT_OFF {
        "off".into()
    } else {
        let ratio = format!("{}.{:02}", percent / 100, percent % 100);
        ratio
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HaPolicy, MEMORY_OVERCOMMIT_ON};
    use crate::testkit::host;
    use crate::Zone;

    #[test]
    fn overcommit_ratio_grows_placeable_memory_and_must_match_to_migrate() {
        let plain = host("hv-1", Zone::Ecs);
        let mut over = host("hv-2", Zone::Ecs);
        over.memory_overcommit_percent = MEMORY_OVERCOMMIT_ON;
        assert_eq!(plain.placeable(), plain.capacity);
        assert_eq!(over.placeable().memory_mib, 96 * 1024);
        assert_eq!(over.placeable().vcpus, over.capacity.vcpus);
        let vm = VmSpec {
            id: "vm".into(),
            home: "hv-2".into(),
            demand: Resources::new(2, 1024, 10),
            ha: HaPolicy::Restart,
            priority: 0,
            passthrough_devices: vec![],
            failback: true,
            restart_delay_ms: 0,
        };
        let blockers = migration_blockers(&MigrationContext {
            vm: &vm,
            vm_running: true,
            source: &over,
            target: &plain,
            target_up: true,
            target_free: plain.placeable(),
            imc_mode: false,
        });
        assert_eq!(
            blockers.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            vec!["memory-overcommit settings differ (source 1.5, target off)"]
        );
    }
}
