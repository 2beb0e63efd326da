//! Why a call on the HA manager was refused ([`ApiError`], with its API
//! code), and why a host's backend ([`DriverError`]) or fencing
//! ([`FenceError`]) did not do what it was asked. Typed, so the core tells
//! a host that cannot be reached from a guest that failed.

use crate::ids::{HostId, VmId};
use crate::model::Resources;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApiError {
    #[error("vm {0} already exists")]
    VmExists(VmId),
    #[error("no vm named {0}")]
    NoSuchVm(VmId),
    #[error("no host named {0}")]
    NoSuchHost(HostId),
    #[error("host {host} cannot take the vm: {why}")]
    HostUnusable { host: HostId, why: String },
    #[error("no production host has room for {0}")]
    NoCapacity(Resources),
    #[error("vm {vm} cannot live-migrate to {to}: {why}")]
    MigrationBlocked { vm: VmId, to: HostId, why: String },
    #[error("vm {vm} is {state}, not running")]
    NotRunning { vm: VmId, state: &'static str },
    #[error("vm {vm} is {state}: only a stopped VM, or one in error, can be started")]
    NotStopped { vm: VmId, state: &'static str },
    #[error("vm {vm} was stopped on {host}, which has not confirmed it is off yet (no answer, no report, no fence); start it once {host} answers")]
    StopUnconfirmed { vm: VmId, host: HostId },
    #[error("vm {vm} may not run on {host}: {why}")]
    RuleForbids { vm: VmId, host: HostId, why: String },
    #[error("no host with room for vm {vm} is allowed by its rules: {why}")]
    NoAllowedHost { vm: VmId, why: String },
    #[error("host {host}: maintenance request refused: {why}")]
    MaintenanceRefused { host: HostId, why: String },
    #[error("host {host} cannot be drained; nothing was changed: {}", stuck.iter().map(|(vm, why)| format!("vm {vm}: {why}")).collect::<Vec<_>>().join("; "))]
    CannotDrain {
        host: HostId,
        stuck: Vec<(VmId, String)>,
    },
    #[error("rule `{name}` refused; nothing was changed: {why}")]
    RuleRefused { name: String, why: String },
    #[error("no rule named `{0}` set through the API")]
    NoSuchRule(String),
}

impl ApiError {
    /// A stable, kebab-case name for the kind of refusal: what API clients
    /// match on (the message is for people and may change).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::VmExists(_) => "vm-exists",
            ApiError::NoSuchVm(_) => "no-such-vm",
            ApiError::NoSuchHost(_) => "no-such-host",
            ApiError::HostUnusable { .. } => "host-unusable",
            ApiError::NoCapacity(_) => "no-capacity",
            ApiError::MigrationBlocked { .. } => "migration-blocked",
            ApiError::NotRunning { .. } => "not-running",
            ApiError::NotStopped { .. } => "not-stopped",
            ApiError::StopUnconfirmed { .. } => "stop-unconfirmed",
            ApiError::RuleForbids { .. } => "rule-forbids",
            ApiError::NoAllowedHost { .. } => "no-allowed-host",
            ApiError::MaintenanceRefused { .. } => "maintenance-refused",
            ApiError::CannotDrain { .. } => "cannot-drain",
            ApiError::RuleRefused { .. } => "rule-refused",
            ApiError::NoSuchRule(_) => "no-such-rule",
        }
    }
}

/// Why a host's backend could not do what it was asked. Crosses the wire
/// as this enum, so the controller can tell a host that cannot be reached
/// from a guest that failed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum DriverError {
    /// The operation was tried and failed (disk missing, no such domain, the
    /// guest did not come up).
    #[error("{0}")]
    Failed(String),
    /// The backend cannot be reached (host powered off, storage network
    /// down, hypervisor daemon gone).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This machine lacks the capability (no bonding in the kernel, no KVM).
    #[error("not supported here: {0}")]
    NotSupported(String),
}

impl DriverError {
    /// The host, not the guest, is the problem.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DriverError::Unavailable(_))
    }
}

/// Why fencing, or the DFS's lease service, did not do what the controller
/// asked. Typed so the core can tell a BMC that never answered from one
/// that refused, and both from fencing that is not set up at all.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum FenceError {
    /// No answer: the BMC or the DFS's metadata service is unreachable (no
    /// power, network down, timed out).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// It answered and refused or failed.
    #[error("{0}")]
    Failed(String),
    /// This controller has no such fencing or lease service configured.
    #[error("not configured: {0}")]
    NotConfigured(String),
}
