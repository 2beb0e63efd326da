//! The agents' side of the event world: an agent per powered host, its
//! outputs moved — dials answered by the network, frames sent, driver calls
//! started as simulated operations that complete later in the queue.

use crate::net::{Dir, Msg};
use crate::world::{Agent, Ev, EventWorld, OpFor};
use krrish_agent::{AgentMachine, AgentOutput};
use krrish_core::ha::DriverError;
use krrish_core::HostId;
use krrish_sim::ops::HostOp;
use krrish_sim::world::PathState;
use krrish_wire::AgentCommand;
use std::collections::BTreeMap;

impl EventWorld {
    // ---- the agents ----------------------------------------------------

    pub(crate) fn start_agent(&mut self, host: &HostId) {
        let boot_id = self.world.borrow().hosts[host].boot_id;
        self.next_incarnation += 1;
        let cfg = self.agent_configs[host].clone();
        let machine = AgentMachine::new(self.now_ms, cfg, boot_id);
        self.agents.insert(
            host,
            Agent {
                machine,
                incarnation: self.next_incarnation,
                wake_ms: None,
                conns: BTreeMap::new(),
            },
        );
        self.after_agent(host);
    }

    /// Moves an agent's outputs and re-arms its timer.
    pub(crate) fn after_agent(&mut self, host: &HostId) {
        if let Some(slot) = self.agents.slot(host) {
            self.after_agent_at(slot, host);
        }
    }

    /// [`Self::after_agent`] for the host in `slot` (looked up already).
    pub(crate) fn after_agent_at(&mut self, slot: usize, host: &HostId) {
        let now = self.now_ms;
        loop {
            let Some(a) = self.agents.at_mut(slot) else {
                return;
            };
            let Some(out) = a.machine.poll_output() else {
                break;
            };
            let incarnation = a.incarnation;
            match out {
                AgentOutput::Dial { epoch } => self.dial(host, incarnation, epoch),
                AgentOutput::Disconnect { epoch } => {
                    if let Some(conn) = a.conns.remove(&epoch) {
                        self.send(conn, Dir::ToController, Msg::Closed);
                        self.net.break_conn(conn);
                    }
                }
                AgentOutput::ReadStatus => {
                    let status = self.world.borrow().host_status(host);
                    a.machine.handle_status(now, status);
                }
                AgentOutput::Send(frame) => {
                    let conn = a.machine.connected_epoch().and_then(|e| a.conns.get(&e));
                    if let Some(&conn) = conn {
                        self.send(conn, Dir::ToController, Msg::Frame(frame));
                    }
                }
                AgentOutput::RunCommand { id, command } => {
                    let op = match command {
                        AgentCommand::BootVm { vm, guest, .. } => HostOp::Boot(vm, guest),
                        AgentCommand::SetGuest { vm, guest } => HostOp::SetGuest { vm, guest },
                        AgentCommand::StopVm { vm } => HostOp::Stop(vm),
                        AgentCommand::RebootVm { vm } => HostOp::Reboot(vm),
                        AgentCommand::LiveMigrate { vm, to } => HostOp::LiveMigrate { vm, to },
                        AgentCommand::AbortMigration { vm, to } => {
                            HostOp::AbortMigration { vm, to }
                        }
                    };
                    self.host_op(host, incarnation, OpFor::Command(id), op);
                }
                AgentOutput::RenewLease => {
                    let why = OpFor::Lease { asked_ms: now };
                    self.host_op(host, incarnation, why, HostOp::RenewLease);
                }
                AgentOutput::SyncDisks => {
                    self.host_op(host, incarnation, OpFor::Sync, HostOp::SyncDisks)
                }
                AgentOutput::SelfFence => {
                    self.host_op(host, incarnation, OpFor::SelfFence, HostOp::StopAll)
                }
                AgentOutput::Trace(s) => self.trace.push(now, &format!("agent/{host}"), &s),
            }
        }
        let a = self.agents.at_mut(slot).expect("checked in the loop");
        let t = a.machine.poll_timeout().max(now);
        if a.wake_ms != Some(t) {
            a.wake_ms = Some(t);
            let incarnation = a.incarnation;
            self.queue.push(
                t,
                Ev::AgentTimer {
                    host: host.clone(),
                    incarnation,
                },
            );
        }
    }

    pub(crate) fn host_op(&mut self, host: &HostId, incarnation: u64, why: OpFor, op: HostOp) {
        let now = self.now_ms;
        let started = self.world.borrow_mut().start_host_op(now, host, op);
        match started {
            Ok(op) => self.queue.push(
                op.done_at_ms,
                Ev::HostOpDone {
                    host: host.clone(),
                    incarnation,
                    why,
                    op,
                },
            ),
            Err(e) => self.host_op_answer(host, why, Err(e)),
        }
    }

    pub(crate) fn host_op_answer(
        &mut self,
        host: &HostId,
        why: OpFor,
        result: Result<(), DriverError>,
    ) {
        if let Some(slot) = self.agents.slot(host) {
            self.host_op_answer_at(slot, host, why, result);
        }
    }

    /// [`Self::host_op_answer`] for the host in `slot`.
    pub(crate) fn host_op_answer_at(
        &mut self,
        slot: usize,
        host: &HostId,
        why: OpFor,
        result: Result<(), DriverError>,
    ) {
        let now = self.now_ms;
        let Some(a) = self.agents.at_mut(slot) else {
            return;
        };
        match why {
            OpFor::Command(id) => a.machine.handle_command_done(now, id, result),
            OpFor::Lease { asked_ms } => {
                a.machine
                    .handle_lease_result(now, asked_ms, result.map_err(|e| e.to_string()))
            }
            OpFor::Sync => a
                .machine
                .handle_sync_result(now, result.map_err(|e| e.to_string())),
            OpFor::SelfFence => {
                if let Err(e) = result {
                    self.trace.push(
                        now,
                        &format!("agent/{host}"),
                        &format!("self-fence failed: {e}"),
                    );
                }
            }
        }
    }

    pub(crate) fn dial(&mut self, host: &HostId, incarnation: u64, epoch: u64) {
        let now = self.now_ms;
        let (path, loss) = {
            let w = self.world.borrow();
            (w.management_path(host), w.management_loss_pct(host))
        };
        if path != PathState::Ok {
            return; // no answer: the agent's own dial deadline decides
        }
        let Some(handshake) = self.net.handshake_delay_ms(loss) else {
            return; // every SYN lost: the dial's deadline decides
        };
        let rtt = self.net.latency_ms() + self.net.latency_ms() + handshake;
        let result = if self.controller_up {
            let conn = self.net.open(
                host.clone(),
                incarnation,
                epoch,
                self.controller_incarnation,
            );
            self.queue.push(now + rtt / 2, Ev::Accepted { conn });
            Ok(conn)
        } else {
            Err("connection refused".to_string())
        };
        self.queue.push(
            now + rtt,
            Ev::Dialled {
                host: host.clone(),
                incarnation,
                epoch,
                result,
            },
        );
    }

    pub(crate) fn send(&mut self, conn: u64, dir: Dir, msg: Msg) {
        let Some(c) = self.net.conn(conn) else { return };
        let path = {
            let w = self.world.borrow();
            (w.management_path(&c.host), w.management_loss_pct(&c.host))
        };
        if let Some((at, msg)) = self.net.route(self.now_ms, path, conn, dir, msg) {
            self.queue.push(at, Ev::Deliver { conn, dir, msg });
        }
    }
}
