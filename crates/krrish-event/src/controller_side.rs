//! The controller's side of the event world: (re)starting it from its
//! disk, and moving its outputs — frames onto connections, fencer
//! operations into the queue, saves onto the disk, events into the trace.

use crate::net::{Dir, Msg};
use crate::world::{Ev, EventWorld, FencerAsk};
use krrish_cloud::network::lb::FabricReport;
use krrish_controller::{ControllerMachine, ControllerOutput};
use krrish_sim::ops::FencerOp;
use krrish_wire::Frame;

impl EventWorld {
    // ---- the controller ------------------------------------------------

    /// (Re)starts the controller from its disk (empty the first time).
    pub(crate) fn start_controller(&mut self) {
        let now = self.now_ms;
        let ha = self.config.ha.clone();
        self.controller_incarnation += 1;
        self.controller_up = true;
        self.controller_wake_ms = None;
        self.operator_conn = None;
        *self.controller.borrow_mut() = ControllerMachine::start(
            now,
            ha,
            self.hosts.clone(),
            self.initial_vms.clone(),
            self.disk.clone(),
        );
        self.after_controller();
    }

    pub(crate) fn crash_controller(&mut self) {
        self.controller_up = false;
        self.controller_wake_ms = None;
        self.operator_conn = None;
    }

    /// Moves the controller's outputs and re-arms its timer.
    pub(crate) fn after_controller(&mut self) {
        if !self.controller_up {
            return;
        }
        let now = self.now_ms;
        loop {
            let out = self.controller.borrow_mut().poll_output();
            let Some(out) = out else { break };
            match out {
                ControllerOutput::SendTo { conn, frame } => {
                    if self.operator_conn.is_some_and(|(_, c)| c == conn) {
                        let text = match frame {
                            Frame::Response { result: Ok(r), .. } => format!("ok: {r}"),
                            Frame::Response { result: Err(e), .. } => format!("refused: {e}"),
                            other => format!("unexpected reply {other:?}"),
                        };
                        let at = now + self.net.latency_ms();
                        self.queue.push(at, Ev::Reply { text });
                    } else {
                        self.send(conn, Dir::ToAgent, Msg::Frame(frame));
                    }
                }
                ControllerOutput::Close { conn } => {
                    self.send(conn, Dir::ToAgent, Msg::Closed);
                    self.net.break_conn(conn);
                }
                ControllerOutput::FenceIpmi { host, action } => {
                    let id = host.id.clone();
                    self.fencer_op(FencerAsk::Host(id), FencerOp::Ipmi { host, action });
                }
                ControllerOutput::PowerHost { host, on } => {
                    let id = host.id.clone();
                    self.fencer_op(
                        FencerAsk::Power { host: id, on },
                        FencerOp::Power { host, on },
                    );
                }
                ControllerOutput::RevokeLease { host } => {
                    self.fencer_op(FencerAsk::Host(host.clone()), FencerOp::RevokeLease(host))
                }
                ControllerOutput::ReinstateLease { host } => self.fencer_op(
                    FencerAsk::Host(host.clone()),
                    FencerOp::ReinstateLease(host),
                ),
                ControllerOutput::ReadLeaseRenewals { read } => {
                    self.fencer_op(FencerAsk::Renewals { read }, FencerOp::ReadRenewals)
                }
                ControllerOutput::ReadFabric { read, vms } => {
                    // A probe's round trip is far inside a check interval:
                    // ground truth now, answered at once.
                    let report = FabricReport::read(&*self.world.borrow(), &vms);
                    self.controller
                        .borrow_mut()
                        .handle_fabric_report(now, read, Ok(report));
                }
                ControllerOutput::Save {
                    generation,
                    snapshot,
                } => {
                    self.disk = Some(*snapshot);
                    self.controller
                        .borrow_mut()
                        .handle_saved(generation, Ok(()));
                }
                ControllerOutput::Trace(s) => self.trace.push(now, "controller", &s),
                ControllerOutput::Event(n) => self.trace.push_event(now, "controller", &n),
            }
        }
        if let Some(t) = self.controller.borrow().poll_timeout() {
            let t = t.max(now);
            if self.controller_wake_ms != Some(t) {
                self.controller_wake_ms = Some(t);
                let incarnation = self.controller_incarnation;
                self.queue.push(t, Ev::ControllerTimer { incarnation });
            }
        }
    }

    pub(crate) fn fencer_op(&mut self, asked: FencerAsk, op: FencerOp) {
        let op = self.world.borrow_mut().start_fencer_op(self.now_ms, op);
        let incarnation = self.controller_incarnation;
        self.queue.push(
            op.done_at_ms,
            Ev::FencerOpDone {
                incarnation,
                asked,
                op,
            },
        );
    }
}
