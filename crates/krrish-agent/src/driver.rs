//! What a host's backend must do for the agent.

use crate::machine::HostStatus;
use krrish_cloud::GuestConfig;
use krrish_core::ha::BootReason;
use krrish_core::{HostId, VmId, VmSpec};
use std::future::Future;

/// Typed, and carried over the wire as such (the core's own enum).
pub use krrish_core::ha::DriverError;

/// A host's compute, network and storage backend.
///
/// Status reads are synchronous snapshots; actions are async and take the
/// time the real operation takes (in simulation, simulated time).
pub trait Driver {
    /// Changes every time the host powers on.
    fn boot_id(&self) -> u64;
    /// Link state of the bonds, the VMs whose domains run here and those
    /// being live-migrated away now: what a heartbeat reports.
    fn status(&self) -> HostStatus;

    /// Boots `vm` from its DFS copy (the backing image may sync later),
    /// with the interfaces, EIPs and volumes of `guest`. A guest already
    /// running here is a success at once, not a second boot.
    fn boot_vm(
        &self,
        vm: &VmSpec,
        reason: BootReason,
        guest: &GuestConfig,
    ) -> impl Future<Output = Result<(), DriverError>>;
    /// Makes the host match `guest` for `vm` (interfaces and volumes
    /// plugged in or out of a running guest, EIPs answered for or not);
    /// the same again changes nothing.
    fn set_guest(
        &self,
        vm: &VmId,
        guest: &GuestConfig,
    ) -> impl Future<Output = Result<(), DriverError>>;
    fn stop_vm(&self, vm: &VmId) -> impl Future<Output = Result<(), DriverError>>;
    /// Restarts a running guest in place (the domain stays defined and
    /// active, as `virsh reboot` keeps it); done when the guest is back.
    fn reboot_vm(&self, vm: &VmId) -> impl Future<Output = Result<(), DriverError>>;
    /// Iterative pre-copy, then a short pause to switch over to `to`.
    fn live_migrate(&self, vm: &VmId, to: &HostId)
        -> impl Future<Output = Result<(), DriverError>>;
    /// Cancels a live migration of `vm` to `to` that is still copying; Ok
    /// when no copy is left on the target (also when none was in flight),
    /// Err when the switch-over already happened.
    fn abort_migration(
        &self,
        vm: &VmId,
        to: &HostId,
    ) -> impl Future<Output = Result<(), DriverError>>;
    /// Renews this host's DFS lease over the storage network.
    fn renew_lease(&self) -> impl Future<Output = Result<(), DriverError>>;
    /// Incremental, file-level sync of local VM disks to the DFS.
    fn sync_disks(&self) -> impl Future<Output = Result<(), DriverError>>;
    /// The lease lapsed: stop every VM now (self-fencing).
    fn stop_all_vms(&self) -> impl Future<Output = Result<(), DriverError>>;
}
