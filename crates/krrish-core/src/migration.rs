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
    /// Memory-overcommit switch differs between source and target.
    OvercommitMismatch,
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
            Self::OvercommitMismatch => write!(f, "memory-overcommit settings differ"),
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
    if c.source.memory_overcommit != c.target.memory_overcommit {
        out.push(MigrationBlocker::OvercommitMismatch);
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
