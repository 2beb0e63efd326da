//! What the HA manager asks of its drivers: the [`Command`]s a driver must
//! carry out (fence, revoke or reinstate a lease, boot, migrate, stop), with
//! the wording they print as. What it reports is in `notice.rs`. No
//! decisions live here, only their vocabulary.

use super::{BootReason, FenceAction};
use crate::ids::{HostId, VmId};
use crate::model::VmSpec;
use std::fmt;

#[cfg(doc)] // for the answer links below
use super::HaManager;

/// A decision for a driver to carry out. The controller routes each to the
/// right agent (or to the fencing devices) and reports the result back
/// through the matching `handle_*` method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Power the host off through its BMC. Answer: [`HaManager::handle_fence_result`].
    FenceIpmi { host: HostId, action: FenceAction },
    /// Revoke the host's DFS lease. Answer: [`HaManager::handle_lease_revoked`].
    RevokeLease { host: HostId },
    /// Let the DFS grant the (returned) host leases again. Answer:
    /// [`HaManager::handle_lease_reinstated`].
    ReinstateLease { host: HostId },
    /// Boot `vm` on `host` from its DFS copy. Answer: [`HaManager::handle_boot_result`].
    BootVm {
        vm: VmSpec,
        host: HostId,
        reason: BootReason,
        /// Which boot of the VM this is (its record's count, never reused):
        /// the same boot sent again carries the same serial, so an agent
        /// that already failed it answers again rather than booting again.
        serial: u64,
    },
    /// Live-migrate. Answer: [`HaManager::handle_migration_result`], with
    /// the same `serial`.
    LiveMigrate {
        vm: VmId,
        from: HostId,
        to: HostId,
        /// Which copy of the VM this is (its record's count, never
        /// reused): an answer to an earlier copy between the same two
        /// hosts — held up, arriving after the copy was sent again — is
        /// told apart and dropped (found by the adversary: a late "failed"
        /// for the first copy put the VM back on its source while the
        /// second copy switched over, and the controller stopped the only
        /// guest as a stray, or booted a second one).
        serial: u64,
    },
    /// Cancel a live migration in the source's hypervisor (it timed out).
    /// Answer: [`HaManager::handle_migration_aborted`].
    AbortMigration { vm: VmId, from: HostId, to: HostId },
    /// Stop a copy that must not run. No answer needed.
    StopVm { vm: VmId, host: HostId },
    /// Restart the guest in place (RebootInstances); the domain stays on
    /// `host`. No answer needed: a guest that does not come back shows as
    /// missing from the host's reports and is restarted there.
    RebootVm { vm: VmId, host: HostId },
    /// Power the host off (drained, for DPM) or on through its BMC. Answer:
    /// [`HaManager::handle_power_result`].
    PowerHost { host: HostId, on: bool },
    /// Ask the DFS when each host last renewed its lease. Answer:
    /// [`HaManager::handle_lease_renewals`] with the same `read` tag.
    ReadLeaseRenewals { read: u64 },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::FenceIpmi { host, action } => write!(f, "fence {host} via IPMI {action}"),
            Command::RevokeLease { host } => write!(f, "revoke DFS lease of {host}"),
            Command::ReinstateLease { host } => write!(f, "reinstate DFS lease of {host}"),
            Command::BootVm {
                vm, host, reason, ..
            } => {
                write!(f, "boot {} on {host} from DFS copy ({reason})", vm.id)
            }
            Command::LiveMigrate { vm, from, to, .. } => {
                write!(f, "live-migrate {vm} {from} -> {to}")
            }
            Command::AbortMigration { vm, from, to } => {
                write!(f, "abort the migration of {vm} {from} -> {to}")
            }
            Command::StopVm { vm, host } => write!(f, "stop {vm} on {host}"),
            Command::RebootVm { vm, host } => write!(f, "reboot {vm} on {host}"),
            Command::ReadLeaseRenewals { .. } => write!(f, "read the DFS's lease renewals"),
            Command::PowerHost { host, on } => {
                write!(
                    f,
                    "power {host} {} via IPMI (DPM)",
                    if *on { "on" } else { "off" }
                )
            }
        }
    }
}

/// Seconds with millisecond precision, as traces print times.
pub fn secs(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}
