//! Health checks on the controller's timer (load balancers' and RDBs'). The cloud keeps
//! the check clock (each listener's next check); when checks are due the
//! controller asks its shell to read the data plane for the backends due
//! ([`ControllerOutput::ReadFabric`]) and runs the checks on the answer
//! ([`ControllerMachine::handle_fabric_report`]). One read is in flight at
//! a time; one unanswered for [`FABRIC_READ_TIMEOUT_MS`] is asked again.
//!
//! Where the answer comes from is the shell's business: the simulated
//! worlds read ground truth (what an LB's probe would find); the daemon,
//! with no probe service of its own, answers from the agents' reports
//! ([`ControllerMachine::believed_fabric`]).

use super::{ControllerMachine, ControllerOutput};
use krrish_cloud::network::lb::FabricReport;
use krrish_core::ha::{Liveness, VmState};
use krrish_core::{BondHealth, BondName, VmId};

/// A read of the data plane not answered by then is asked again.
pub const FABRIC_READ_TIMEOUT_MS: u64 = 10_000;

/// A read of the data plane in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FabricRead {
    pub id: u64,
    /// When it was asked: the checks due by then run on its answer.
    pub asked_at_ms: u64,
}

impl ControllerMachine {
    /// When the health checks next need the timer: the next check due, or
    /// the read in flight's time-out.
    pub(super) fn health_wake(&self) -> Option<u64> {
        match self.fabric_read {
            Some(r) => Some(r.asked_at_ms + FABRIC_READ_TIMEOUT_MS),
            None => self.cloud.health_checks_due(),
        }
    }

    /// Asks the shell to read the data plane when checks are due.
    pub(super) fn start_health_checks(&mut self, now_ms: u64) {
        if let Some(r) = self.fabric_read {
            if now_ms < r.asked_at_ms + FABRIC_READ_TIMEOUT_MS {
                return;
            }
            self.push(ControllerOutput::Trace(format!(
                "health checks: data-plane read {} unanswered after {} ms; asking again",
                r.id, FABRIC_READ_TIMEOUT_MS
            )));
            self.fabric_read = None;
        }
        if self.cloud.health_checks_due().is_none_or(|t| t > now_ms) {
            return;
        }
        let vms = self.cloud.health_check_targets(now_ms);
        self.next_fabric_read += 1;
        let id = self.next_fabric_read;
        self.fabric_read = Some(FabricRead {
            id,
            asked_at_ms: now_ms,
        });
        self.push(ControllerOutput::ReadFabric { read: id, vms });
    }

    /// The shell's answer to [`ControllerOutput::ReadFabric`] with the same
    /// `read`: the checks due when it was asked run on it. A failed read
    /// judges no backend (the checks are due again an interval later).
    pub fn handle_fabric_report(
        &mut self,
        now_ms: u64,
        read: u64,
        result: Result<FabricReport, String>,
    ) {
        let Some(asked) = self.fabric_read.filter(|r| r.id == read) else {
            return;
        };
        self.fabric_read = None;
        match result {
            Ok(report) => {
                let lines = self
                    .cloud
                    .run_health_checks(asked.asked_at_ms, now_ms, &report);
                for line in lines {
                    self.push(ControllerOutput::Trace(line));
                }
            }
            Err(why) => {
                self.push(ControllerOutput::Trace(format!(
                    "health checks: cannot read the data plane: {why}"
                )));
                self.cloud.skip_health_checks(asked.asked_at_ms, now_ms);
            }
        }
        self.drain(now_ms);
    }

    /// The data plane as the agents' reports show it: a VM runs where the
    /// core has it running; a host's VM network and uplink carry traffic
    /// while the host is up and the bond not reported down. For a shell
    /// with no probe of its own (the daemon).
    pub fn believed_fabric(&self, vms: &[VmId]) -> FabricReport {
        let mut r = FabricReport::default();
        for vm in vms {
            let on = match self.core.vms().get(vm).map(|v| &v.state) {
                Some(VmState::Running { host }) => vec![host.clone()],
                _ => Vec::new(),
            };
            for h in &on {
                let Some(rec) = self.core.hosts().get(h) else {
                    continue;
                };
                let carries = |b: BondName| {
                    matches!(rec.liveness, Liveness::Up) && rec.bonds[b.index()] != BondHealth::Down
                };
                if carries(BondName::Bond1) {
                    r.vm_network_up.insert(h.clone());
                }
                if carries(BondName::Bond0) {
                    r.uplink_up.insert(h.clone());
                }
            }
            r.running_on.insert(vm.clone(), on);
        }
        r
    }
}
