//! The simulated backends, behind the same traits the real ones implement,
//! for worlds with an async runtime (turmoil's, or tokio's over real
//! sockets).

use crate::ops::{FencerAnswer, FencerOp, HostOp};
use crate::world::World;
use krrish_agent::{Driver, DriverError, HostStatus};
use krrish_cloud::network::lb::FabricReport;
use krrish_cloud::GuestConfig;
use krrish_controller::{FabricReader, Fencer};
use krrish_core::ha::{BootReason, FenceAction, FenceError};
use krrish_core::{HostId, HostSpec, VmId, VmSpec};
use krrish_wire::Clock;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// One host's hypervisor, bonds and DFS client: the world's operations
/// ([`crate::ops`]), with tokio sleeping between their start and finish.
pub struct SimDriver {
    pub world: Rc<RefCell<World>>,
    pub host: HostId,
    /// The world's clock: turmoil's in the turmoil world, a monotonic one
    /// when the simulated hosts sit behind real sockets.
    pub clock: Rc<dyn Clock>,
}

impl SimDriver {
    async fn run(&self, op: HostOp) -> Result<(), DriverError> {
        let now = self.clock.now_ms();
        let pending = self.world.borrow_mut().start_host_op(now, &self.host, op)?;
        if pending.done_at_ms > now {
            sleep_ms(pending.done_at_ms - now).await;
        }
        self.world
            .borrow_mut()
            .finish_host_op(self.clock.now_ms(), &self.host, pending)
    }
}

impl Driver for SimDriver {
    fn boot_id(&self) -> u64 {
        self.world.borrow().hosts[&self.host].boot_id
    }

    fn status(&self) -> HostStatus {
        self.world.borrow().host_status(&self.host)
    }

    async fn boot_vm(
        &self,
        vm: &VmSpec,
        _reason: BootReason,
        guest: &GuestConfig,
    ) -> Result<(), DriverError> {
        self.run(HostOp::Boot(vm.clone(), guest.clone())).await
    }

    async fn set_guest(&self, vm: &VmId, guest: &GuestConfig) -> Result<(), DriverError> {
        self.run(HostOp::SetGuest {
            vm: vm.clone(),
            guest: guest.clone(),
        })
        .await
    }

    async fn stop_vm(&self, vm: &VmId) -> Result<(), DriverError> {
        self.run(HostOp::Stop(vm.clone())).await
    }

    async fn reboot_vm(&self, vm: &VmId) -> Result<(), DriverError> {
        self.run(HostOp::Reboot(vm.clone())).await
    }

    async fn live_migrate(&self, vm: &VmId, to: &HostId) -> Result<(), DriverError> {
        self.run(HostOp::LiveMigrate {
            vm: vm.clone(),
            to: to.clone(),
        })
        .await
    }

    async fn abort_migration(&self, vm: &VmId, to: &HostId) -> Result<(), DriverError> {
        self.run(HostOp::AbortMigration {
            vm: vm.clone(),
            to: to.clone(),
        })
        .await
    }

    async fn renew_lease(&self) -> Result<(), DriverError> {
        self.run(HostOp::RenewLease).await
    }

    async fn sync_disks(&self) -> Result<(), DriverError> {
        self.run(HostOp::SyncDisks).await
    }

    async fn stop_all_vms(&self) -> Result<(), DriverError> {
        self.run(HostOp::StopAll).await
    }
}

/// IPMI (over the OGW network) and the DFS's lease authority: the world's
/// fencer operations with tokio sleeping in between.
pub struct SimFencer {
    pub world: Rc<RefCell<World>>,
    pub clock: Rc<dyn Clock>,
}

impl SimFencer {
    async fn run(&self, op: FencerOp) -> FencerAnswer {
        let now = self.clock.now_ms();
        let pending = self.world.borrow_mut().start_fencer_op(now, op);
        if pending.done_at_ms > now {
            sleep_ms(pending.done_at_ms - now).await;
        }
        self.world
            .borrow_mut()
            .finish_fencer_op(self.clock.now_ms(), pending)
    }
}

impl Fencer for SimFencer {
    async fn ipmi_fence(&self, host: &HostSpec, action: FenceAction) -> Result<(), FenceError> {
        let op = FencerOp::Ipmi {
            host: host.clone(),
            action,
        };
        match self.run(op).await {
            FencerAnswer::Fenced(r) => r,
            other => unreachable!("IPMI answered {other:?}"),
        }
    }

    async fn ipmi_power(&self, host: &HostSpec, on: bool) -> Result<(), FenceError> {
        let op = FencerOp::Power {
            host: host.clone(),
            on,
        };
        match self.run(op).await {
            FencerAnswer::Powered(r) => r,
            other => unreachable!("IPMI power answered {other:?}"),
        }
    }

    async fn revoke_lease(&self, host: &HostId) -> Result<u64, FenceError> {
        match self.run(FencerOp::RevokeLease(host.clone())).await {
            FencerAnswer::Revoked(r) => r,
            other => unreachable!("revocation answered {other:?}"),
        }
    }

    async fn lease_renewals(&self) -> Result<krrish_core::lease::LeaseRenewals, FenceError> {
        match self.run(FencerOp::ReadRenewals).await {
            FencerAnswer::Renewals(r) => r,
            other => unreachable!("renewal read answered {other:?}"),
        }
    }

    async fn reinstate_lease(&self, host: &HostId) -> Result<(), FenceError> {
        match self.run(FencerOp::ReinstateLease(host.clone())).await {
            FencerAnswer::Reinstated(r) => r,
            other => unreachable!("reinstatement answered {other:?}"),
        }
    }
}

/// The data plane as a load balancer's probe finds it: ground truth, read
/// at once (the probe's round trip is far inside a check interval).
pub struct SimFabric {
    pub world: Rc<RefCell<World>>,
}

impl FabricReader for SimFabric {
    async fn read_fabric(&self, vms: Vec<VmId>) -> Result<FabricReport, String> {
        Ok(FabricReport::read(&*self.world.borrow(), &vms))
    }
}
