//! The simulated backends, behind the same traits the real ones implement,
//! plus turmoil's transport and clock.

use crate::world::{DomainState, World};
use krrish_agent::{Driver, DriverError};
use krrish_controller::Fencer;
use krrish_core::ha::{BootReason, FenceAction};
use krrish_core::{BondHealth, HostId, HostSpec, VmId, VmSpec};
use krrish_wire::{Clock, Connect, Listen};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

/// Simulated time, shared by every host.
pub struct TurmoilClock;

impl Clock for TurmoilClock {
    fn now_ms(&self) -> u64 {
        turmoil::sim_elapsed()
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

pub struct TurmoilConnect;

impl Connect for TurmoilConnect {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr).await
    }
}

pub struct TurmoilListen(pub turmoil::net::TcpListener);

impl Listen for TurmoilListen {
    type Stream = turmoil::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        Ok(self.0.accept().await?.0)
    }
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// One host's hypervisor, bonds and DFS client.
pub struct SimDriver {
    pub world: Rc<RefCell<World>>,
    pub host: HostId,
    /// The world's clock: turmoil's in the turmoil world, a monotonic one
    /// when the simulated hosts sit behind real sockets.
    pub clock: Rc<dyn Clock>,
}

impl SimDriver {
    fn powered(&self) -> Result<(), DriverError> {
        if self.world.borrow().hosts[&self.host].powered {
            Ok(())
        } else {
            Err(DriverError::Unavailable("host is powered off".into()))
        }
    }
}

impl Driver for SimDriver {
    fn boot_id(&self) -> u64 {
        self.world.borrow().hosts[&self.host].boot_id
    }

    fn bonds(&self) -> [BondHealth; 3] {
        self.world.borrow().hosts[&self.host].bonds()
    }

    fn running_vms(&self) -> Vec<VmId> {
        let w = self.world.borrow();
        let h = &w.hosts[&self.host];
        if !h.powered {
            return Vec::new();
        }
        h.domains
            .iter()
            .filter(|(_, d)| d.state == crate::world::DomainState::Running)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn migrating_out(&self) -> Vec<VmId> {
        let w = self.world.borrow();
        if !w.hosts[&self.host].powered {
            return Vec::new();
        }
        w.hosts
            .values()
            .flat_map(|h| h.domains.iter())
            .filter(
                |(_, d)| matches!(&d.state, DomainState::Incoming { from } if from == &self.host),
            )
            .map(|(vm, _)| vm.clone())
            .collect()
    }

    async fn boot_vm(&self, vm: &VmSpec, _reason: BootReason) -> Result<(), DriverError> {
        self.powered()?;
        // The world learns VMs created through the API here, so the checkers
        // judge them too (their size, whether the control plane knows them).
        self.world.borrow_mut().learn_vm(vm);
        let boot_ms = self.world.borrow_mut().boot_time_ms();
        sleep_ms(boot_ms).await;
        self.world
            .borrow_mut()
            .start_domain(self.clock.now_ms(), &self.host, &vm.id)
            .map_err(DriverError::Failed)
    }

    async fn stop_vm(&self, vm: &VmId) -> Result<(), DriverError> {
        self.world
            .borrow_mut()
            .stop_domain(self.clock.now_ms(), &self.host, vm)
            .map_err(DriverError::Failed)
    }

    async fn live_migrate(&self, vm: &VmId, to: &HostId) -> Result<(), DriverError> {
        self.powered()?;
        let copy_ms = self
            .world
            .borrow_mut()
            .begin_migration(&self.host, vm, to)
            .map_err(DriverError::Failed)?;
        sleep_ms(copy_ms).await;
        self.world
            .borrow_mut()
            .finish_migration(self.clock.now_ms(), &self.host, vm, to)
            .map_err(DriverError::Failed)
    }

    async fn abort_migration(&self, vm: &VmId, to: &HostId) -> Result<(), DriverError> {
        self.powered()?;
        self.world
            .borrow_mut()
            .abort_migration(self.clock.now_ms(), &self.host, vm, to)
            .map_err(DriverError::Failed)
    }

    async fn renew_lease(&self) -> Result<(), DriverError> {
        let rtt = self.world.borrow().timings.dfs_rtt_ms;
        sleep_ms(rtt).await;
        self.world
            .borrow_mut()
            .renew_lease(self.clock.now_ms(), &self.host)
            .map_err(DriverError::Unavailable)
    }

    async fn sync_disks(&self) -> Result<(), DriverError> {
        let rtt = self.world.borrow().timings.dfs_rtt_ms;
        sleep_ms(rtt).await;
        self.world
            .borrow_mut()
            .sync_disks(self.clock.now_ms(), &self.host)
            .map_err(DriverError::Unavailable)
    }

    async fn stop_all_vms(&self) -> Result<(), DriverError> {
        self.world
            .borrow_mut()
            .self_fence(self.clock.now_ms(), &self.host)
            .map_err(DriverError::Failed)
    }
}

/// IPMI (over the OGW network) and the DFS's lease authority.
pub struct SimFencer {
    pub world: Rc<RefCell<World>>,
    pub clock: Rc<dyn Clock>,
}

impl SimFencer {
    /// One request to the DFS's metadata service: a round trip, or a
    /// time-out when the controller cannot reach it.
    async fn dfs_round_trip(&self) -> Result<(), String> {
        let (rtt, unreachable, timeout) = {
            let w = self.world.borrow();
            (
                w.timings.dfs_rtt_ms,
                w.dfs_unreachable_from_controller,
                w.timings.ipmi_timeout_ms,
            )
        };
        if unreachable {
            sleep_ms(timeout).await;
            return Err("DFS metadata service unreachable from the controller".into());
        }
        sleep_ms(rtt).await;
        if self.world.borrow().dfs_unreachable_from_controller {
            return Err("DFS metadata service stopped answering".into());
        }
        Ok(())
    }
}

impl Fencer for SimFencer {
    async fn ipmi_fence(&self, host: &HostSpec, action: FenceAction) -> Result<(), String> {
        let (bmc_up, answer_ms, timeout_ms) = {
            let w = self.world.borrow();
            let h = w
                .hosts
                .get(&host.id)
                .ok_or_else(|| format!("no BMC known for {}", host.id))?;
            (
                h.bmc_powered,
                w.timings.ipmi_answer_ms,
                w.timings.ipmi_timeout_ms,
            )
        };
        if !bmc_up {
            sleep_ms(timeout_ms).await;
            return Err(format!("BMC {} does not answer", host.addresses.ipmi));
        }
        sleep_ms(answer_ms).await;
        // The BMC may have lost power while we waited.
        if !self.world.borrow().hosts[&host.id].bmc_powered {
            return Err(format!("BMC {} stopped answering", host.addresses.ipmi));
        }
        let now = self.clock.now_ms();
        let mut w = self.world.borrow_mut();
        w.power_off(now, &host.id, false, "IPMI power-off");
        if action == FenceAction::Reboot {
            w.schedule_power_on(now, &host.id);
        }
        Ok(())
    }

    async fn revoke_lease(&self, host: &HostId) -> Result<u64, String> {
        self.dfs_round_trip().await?;
        Ok(self
            .world
            .borrow_mut()
            .revoke_lease(self.clock.now_ms(), host))
    }

    async fn lease_renewals(&self) -> Result<Vec<(HostId, u64)>, String> {
        self.dfs_round_trip().await?;
        let now = self.clock.now_ms();
        Ok(self.world.borrow().renewal_ages(now))
    }

    async fn reinstate_lease(&self, host: &HostId) -> Result<(), String> {
        self.dfs_round_trip().await?;
        self.world
            .borrow_mut()
            .reinstate_lease(self.clock.now_ms(), host);
        Ok(())
    }
}
