//! [`SimulatedWorld`]: what the scenario runner (and the swarm) needs of a
//! world, whichever drives the control plane — turmoil's sockets or the
//! event queue. Ground truth, faults, checkers and the trace are the same
//! in every world; only how messages and timers move differs.

use crate::checkers::Violation;
use crate::fault::Fault;
use crate::trace::TraceBuf;
use crate::world::World;
use krrish_core::ha::HaManager;
use krrish_wire::ApiRequest;
use std::cell::Ref;

pub trait SimulatedWorld {
    /// Simulated time now.
    fn now_ms(&self) -> u64;
    /// Runs every event up to and including `t_ms`, checking the invariants
    /// as it goes; the first broken one ends the run.
    fn run_until(&mut self, t_ms: u64) -> Result<(), Violation>;
    /// Applies a fault now. Errs on an unknown host or NIC, changing nothing.
    fn inject(&mut self, fault: &Fault) -> Result<(), String>;
    /// Sends an API call from the operator.
    fn api(&mut self, request: ApiRequest);
    /// The simulated data plane: `vm`'s guest writes `data` to `block` of
    /// one of its disks, which it must have plugged in (ground truth). The
    /// model keeps disk content in the controller's storage records (saved
    /// with its next save), so a write while the controller is down is
    /// refused.
    fn guest_write(
        &mut self,
        vm: &krrish_core::VmId,
        disk: &krrish_cloud::storage::DiskRef,
        block: u64,
        data: u64,
    ) -> Result<(), String>;
    fn trace(&self) -> &TraceBuf;
    /// Ground truth.
    fn world(&self) -> Ref<'_, World>;
    /// The control plane's records (the last controller's, while it is
    /// down).
    fn core(&self) -> Ref<'_, HaManager>;
    /// The cloud's resources as the control plane records them (the last
    /// controller's, while it is down).
    fn cloud(&self) -> Ref<'_, krrish_cloud::Cloud>;
    /// How many times the checkers judged a changed world.
    fn checks_run(&self) -> u64;
}
