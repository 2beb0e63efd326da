//! [`EventWorld`]: the shipped controller and agent machines, the simulated
//! hosts' operations ([`krrish_sim::ops`]) and the message-level network
//! ([`crate::net`]), driven by one queue of timed events. No sockets, no
//! async runtime, no shell: every decision is the machines'; this file only
//! moves their outputs to where and when they arrive.

use crate::net::{Dir, Msg, Net};
use crate::queue::EventQueue;
use krrish_agent::{AgentConfig, AgentMachine};
use krrish_controller::{ControllerMachine, ControllerSnapshot};
use krrish_core::ha::HaManager;
use krrish_core::{HostId, HostSpec, VmSpec};
use krrish_sim::checkers::{Checkers, Violation};
use krrish_sim::ops::{FencerAnswer, PendingFencerOp, PendingHostOp};
use krrish_sim::world::{PathState, SeededRng, World};
use krrish_sim::{Fault, SimConfig, SimulatedWorld, TraceBuf};
use krrish_wire::{ApiRequest, Frame};
use std::cell::{Ref, RefCell};
use std::collections::BTreeMap;

/// Why a host operation was started, so its answer goes to the right place.
#[derive(Clone, Debug)]
pub(crate) enum OpFor {
    Command(u64),
    Lease { asked_ms: u64 },
    Sync,
    SelfFence,
}

/// Who asked the fencer (the BMCs and the DFS) for what: its answer goes back
/// to the controller under this.
#[derive(Clone, Debug)]
pub(crate) enum FencerAsk {
    /// An operation on one host (fence, revoke or reinstate its lease).
    Host(HostId),
    /// A DPM power-off (`on` false) or power-on of one host.
    Power { host: HostId, on: bool },
    /// The DFS's renewal records, read tagged `read`.
    Renewals { read: u64 },
}

#[derive(Clone, Debug)]
pub(crate) enum Ev {
    AgentTimer {
        host: HostId,
        incarnation: u64,
    },
    ControllerTimer {
        incarnation: u64,
    },
    /// A message arrives at one end of a connection.
    Deliver {
        conn: u64,
        dir: Dir,
        msg: Msg,
    },
    /// The controller accepts a connection an agent dialled.
    Accepted {
        conn: u64,
    },
    /// An agent learns how its dial went.
    Dialled {
        host: HostId,
        incarnation: u64,
        epoch: u64,
        result: Result<u64, String>,
    },
    HostOpDone {
        host: HostId,
        incarnation: u64,
        why: OpFor,
        op: PendingHostOp,
    },
    FencerOpDone {
        incarnation: u64,
        asked: FencerAsk,
        op: PendingFencerOp,
    },
    /// A BMC powers a host on again (reboot fence).
    PowerOnDue,
    /// The operator's request reaches the controller.
    Request {
        incarnation: u64,
        id: u64,
        request: ApiRequest,
    },
    /// The controller's answer reaches the operator.
    Reply {
        text: String,
    },
}

pub(crate) struct Agent {
    pub(crate) machine: AgentMachine,
    pub(crate) incarnation: u64,
    /// The timer event in the queue (an event for another time is stale).
    pub(crate) wake_ms: Option<u64>,
    /// Connection ids by dial epoch.
    pub(crate) conns: BTreeMap<u64, u64>,
}

/// Events handled in one run, at most per simulated hour of a 10,000-host
/// cluster; a run beyond is a feedback loop, not a simulation.
const EVENTS_PER_RUN_MAX: u64 = 1 << 40;

pub struct EventWorld {
    pub(crate) now_ms: u64,
    pub(crate) queue: EventQueue<Ev>,
    pub(crate) world: RefCell<World>,
    pub(crate) controller: RefCell<ControllerMachine>,
    pub(crate) controller_up: bool,
    pub(crate) controller_incarnation: u64,
    pub(crate) controller_wake_ms: Option<u64>,
    /// The controller's disk: the last state it saved.
    pub(crate) disk: Option<ControllerSnapshot>,
    /// The operator's connection to the current controller (one per
    /// controller incarnation, opened at the first request).
    pub(crate) operator_conn: Option<(u64, u64)>,
    pub(crate) next_request_id: u64,
    pub(crate) hosts: Vec<HostSpec>,
    pub(crate) initial_vms: Vec<VmSpec>,
    pub(crate) agents: crate::agents::Agents,
    pub(crate) agent_configs: BTreeMap<HostId, AgentConfig>,
    pub(crate) next_incarnation: u64,
    pub(crate) net: Net,
    pub(crate) trace: TraceBuf,
    pub(crate) checkers: Checkers,
    pub(crate) next_check_ms: u64,
    pub(crate) events_run: u64,
    pub config: SimConfig,
}

impl EventWorld {
    pub fn new(hosts: Vec<HostSpec>, vms: Vec<VmSpec>, config: SimConfig) -> Self {
        let trace = TraceBuf::default();
        let mut timings = config.timings.clone();
        timings.lease_duration_ms = config.ha.lease_duration_ms;
        let world = World::new(
            config.seed,
            hosts.clone(),
            vms.clone(),
            timings,
            trace.clone(),
        );
        // Heartbeat phases differ per host, as on a real cluster (the same
        // draw as the turmoil world's).
        let mut phases = SeededRng::new(config.seed.rotate_left(17));
        let agent_timings = config
            .ha
            .agent_timings()
            .for_round_trip(2 * config.latency_max_ms);
        let agent_configs = hosts
            .iter()
            .map(|h| {
                let mut cfg = AgentConfig::new(h.id.clone(), "controller".into());
                cfg.timings = agent_timings;
                cfg.start_delay_ms = phases.below(config.ha.heartbeat.interval_ms);
                (h.id.clone(), cfg)
            })
            .collect();
        let first = HaManager::new(0, config.ha.clone(), hosts.clone(), vms.clone());
        let mut w = Self {
            now_ms: 0,
            queue: EventQueue::default(),
            world: RefCell::new(world),
            controller: RefCell::new(ControllerMachine::new(first)),
            controller_up: false,
            controller_incarnation: 0,
            controller_wake_ms: None,
            disk: None,
            operator_conn: None,
            next_request_id: 0,
            hosts: hosts.clone(),
            initial_vms: vms,
            agents: crate::agents::Agents::for_hosts(hosts.iter().map(|h| &h.id)),
            agent_configs,
            next_incarnation: 0,
            net: Net::new(config.seed, config.latency_min_ms, config.latency_max_ms),
            trace,
            checkers: Checkers::new(config.belief_grace_ms),
            next_check_ms: config.tick_ms,
            events_run: 0,
            config,
        };
        w.start_controller();
        for h in &hosts {
            w.start_agent(&h.id);
        }
        w
    }

    pub fn events_run(&self) -> u64 {
        self.events_run
    }

    pub fn controller(&self) -> Ref<'_, ControllerMachine> {
        self.controller.borrow()
    }

    // ---- ground truth follows -------------------------------------------

    /// Agents start on hosts that came up and vanish from hosts that went
    /// down; held messages move on (or are lost) as paths heal (or are cut).
    pub(crate) fn sync_hosts(&mut self) {
        let (up, down): (Vec<HostId>, Vec<HostId>) = {
            let w = self.world.borrow();
            let up = w
                .hosts
                .iter()
                .filter(|(id, h)| h.powered && !self.agents.contains_key(id))
                .map(|(id, _)| id.clone())
                .collect();
            let down = self
                .agents
                .keys()
                .filter(|id| !w.hosts[*id].powered)
                .cloned()
                .collect();
            (up, down)
        };
        for h in down {
            // Power gone: no FIN, no RST; its connections just go quiet.
            if let Some(a) = self.agents.remove(&h) {
                for conn in a.conns.values() {
                    self.net.break_conn(*conn);
                }
            }
        }
        for h in up {
            self.start_agent(&h);
        }
        for h in self.net.stalled_hosts() {
            let path = self.world.borrow().management_path(&h);
            match path {
                PathState::Stalled => {}
                PathState::Cut => {
                    for (conn, _, _) in self.net.take_held(&h) {
                        self.net.break_conn(conn);
                    }
                }
                PathState::Ok => {
                    for (conn, dir, msg) in self.net.take_held(&h) {
                        self.send(conn, dir, msg);
                    }
                }
            }
        }
        if let Some(at) = self
            .world
            .borrow()
            .power_on_at
            .values()
            .map(|&(at, _)| at)
            .min()
        {
            self.queue.push(at.max(self.now_ms), Ev::PowerOnDue);
        }
    }

    // ---- the loop --------------------------------------------------------

    fn handle(&mut self, ev: Ev) {
        let now = self.now_ms;
        match ev {
            Ev::AgentTimer { host, incarnation } => {
                let Some(slot) = self.agents.slot(&host) else {
                    return;
                };
                let Some(a) = self.agents.at_mut(slot) else {
                    return;
                };
                if a.incarnation != incarnation || a.wake_ms != Some(now) {
                    return; // stale
                }
                a.wake_ms = None;
                a.machine.handle_timeout(now);
                self.after_agent_at(slot, &host);
            }
            Ev::ControllerTimer { incarnation } => {
                if !self.controller_up
                    || incarnation != self.controller_incarnation
                    || self.controller_wake_ms != Some(now)
                {
                    return;
                }
                self.controller_wake_ms = None;
                self.controller.borrow_mut().handle_timeout(now);
                self.after_controller();
            }
            Ev::Accepted { conn } => {
                let Some(c) = self.net.conn(conn) else { return };
                if self.controller_up && c.controller_incarnation == self.controller_incarnation {
                    self.controller.borrow_mut().handle_opened(conn);
                    self.after_controller();
                }
            }
            Ev::Dialled {
                host,
                incarnation,
                epoch,
                result,
            } => {
                let Some(slot) = self.agents.slot(&host) else {
                    return;
                };
                let Some(a) = self.agents.at_mut(slot) else {
                    return;
                };
                if a.incarnation != incarnation {
                    return;
                }
                match result {
                    Ok(conn) => {
                        a.conns.insert(epoch, conn);
                        if !a.machine.handle_dial_result(now, epoch, Ok(())) {
                            a.conns.remove(&epoch);
                            self.send(conn, Dir::ToController, Msg::Closed);
                            self.net.break_conn(conn);
                        }
                    }
                    Err(why) => {
                        a.machine.handle_dial_result(now, epoch, Err(why));
                    }
                }
                self.after_agent_at(slot, &host);
            }
            Ev::Deliver { conn, dir, msg } => self.deliver(conn, dir, msg),
            Ev::HostOpDone {
                host,
                incarnation,
                why,
                op,
            } => {
                // A host that lost power since never finishes what it began.
                let Some(slot) = self.agents.slot(&host) else {
                    return;
                };
                if self
                    .agents
                    .at_mut(slot)
                    .is_none_or(|a| a.incarnation != incarnation)
                {
                    return;
                }
                let r = self.world.borrow_mut().finish_host_op(now, &host, op);
                self.host_op_answer_at(slot, &host, why, r);
                // (No host powers on or off by its own operations.)
                self.after_agent_at(slot, &host);
            }
            Ev::FencerOpDone {
                incarnation,
                asked,
                op,
            } => {
                // A controller that died meanwhile never got to the BMC.
                if !self.controller_up || incarnation != self.controller_incarnation {
                    return;
                }
                let answer = self.world.borrow_mut().finish_fencer_op(now, op);
                self.sync_hosts();
                {
                    let mut c = self.controller.borrow_mut();
                    match (answer, asked) {
                        (FencerAnswer::Fenced(r), FencerAsk::Host(h)) => {
                            c.handle_fence_result(now, &h, r)
                        }
                        (FencerAnswer::Powered(r), FencerAsk::Power { host, on }) => {
                            c.handle_power_result(now, &host, on, r)
                        }
                        (FencerAnswer::Revoked(r), FencerAsk::Host(h)) => {
                            c.handle_lease_revoked(now, &h, r)
                        }
                        (FencerAnswer::Reinstated(r), FencerAsk::Host(h)) => {
                            c.handle_lease_reinstated(now, &h, r)
                        }
                        (FencerAnswer::Renewals(r), FencerAsk::Renewals { read }) => {
                            c.handle_lease_renewals(now, read, r)
                        }
                        (answer, asked) => unreachable!("{answer:?} does not answer {asked:?}"),
                    }
                }
                self.after_controller();
            }
            Ev::PowerOnDue => {
                self.world.borrow_mut().power_on_due(now);
                self.sync_hosts();
            }
            Ev::Request {
                incarnation,
                id,
                request,
            } => {
                if !self.controller_up || incarnation != self.controller_incarnation {
                    self.trace
                        .push(now, "operator", "refused: controller unreachable");
                    return;
                }
                let conn = match self.operator_conn {
                    Some((inc, conn)) if inc == incarnation => conn,
                    _ => {
                        let conn = self.net.open("operator".into(), 0, 0, incarnation);
                        self.operator_conn = Some((incarnation, conn));
                        let mut c = self.controller.borrow_mut();
                        c.handle_opened(conn);
                        c.handle_frame(now, conn, Frame::OperatorHello);
                        conn
                    }
                };
                self.controller.borrow_mut().handle_frame(
                    now,
                    conn,
                    Frame::Request { id, request },
                );
                self.after_controller();
            }
            Ev::Reply { text } => self.trace.push(now, "operator", &text),
        }
    }

    fn deliver(&mut self, conn: u64, dir: Dir, msg: Msg) {
        let now = self.now_ms;
        let Some(c) = self.net.conn(conn).cloned() else {
            return;
        };
        let path = self.world.borrow().management_path(&c.host);
        if !self.net.arrives(path, conn) {
            return;
        }
        match dir {
            Dir::ToController => {
                if !self.controller_up || c.controller_incarnation != self.controller_incarnation {
                    return;
                }
                {
                    let mut m = self.controller.borrow_mut();
                    match msg {
                        Msg::Frame(f) => m.handle_frame(now, conn, f),
                        Msg::Closed => m.handle_closed(now, conn),
                    }
                }
                self.after_controller();
            }
            Dir::ToAgent => {
                let Some(slot) = self.agents.slot(&c.host) else {
                    return;
                };
                let Some(a) = self.agents.at_mut(slot) else {
                    return;
                };
                if a.incarnation != c.agent_incarnation {
                    return;
                }
                match msg {
                    Msg::Frame(f) => a.machine.handle_frame(now, c.epoch, f),
                    Msg::Closed => a.machine.handle_closed(now, c.epoch),
                }
                self.after_agent_at(slot, &c.host);
            }
        }
    }

    /// Snapshot ops a host did in the event just handled change the disks'
    /// model now (a down controller's records learn them from the hosts'
    /// answers).
    fn apply_disk_ops_done(&mut self) {
        let done = self.world.borrow_mut().take_disk_ops_done();
        if done.is_empty() || !self.controller_up {
            return;
        }
        for (vm, through) in done {
            self.controller
                .borrow_mut()
                .disk_ops_applied(self.now_ms, &vm, through);
        }
        self.after_controller();
    }

    fn check(&mut self) -> Result<(), Violation> {
        if self.trace.is_full() {
            return Err(Violation {
                invariant: "bounded-trace",
                at_ms: self.now_ms,
                detail: format!(
                    "more than {} trace lines",
                    krrish_sim::trace::TRACE_LINES_MAX
                ),
            });
        }
        let world = self.world.borrow();
        let controller = self.controller.borrow();
        self.checkers.check(
            self.now_ms,
            &world,
            controller.core(),
            controller.cloud(),
            self.trace.len(),
            self.controller_up,
        )
    }
}

impl SimulatedWorld for EventWorld {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn run_until(&mut self, t_ms: u64) -> Result<(), Violation> {
        loop {
            let next_event = self.queue.peek_at().unwrap_or(u64::MAX);
            if next_event <= t_ms && next_event <= self.next_check_ms {
                let (at, ev) = self.queue.pop().expect("peeked");
                self.now_ms = self.now_ms.max(at);
                self.events_run += 1;
                assert!(self.events_run < EVENTS_PER_RUN_MAX, "event loop runaway");
                self.handle(ev);
                self.apply_disk_ops_done();
            } else if self.next_check_ms <= t_ms {
                // The checkers look at the world as often as the turmoil
                // world steps (`tick`).
                self.now_ms = self.now_ms.max(self.next_check_ms);
                self.next_check_ms += self.config.tick_ms.max(1);
                self.check()?;
            } else {
                self.now_ms = self.now_ms.max(t_ms);
                return Ok(());
            }
        }
    }

    fn inject(&mut self, fault: &Fault) -> Result<(), String> {
        let now = self.now_ms;
        if let Some(host) = fault.host() {
            if !self.world.borrow().hosts.contains_key(host) {
                return Err(format!("no host named {host}"));
            }
        }
        self.trace.push(now, "fault", &fault.to_string());
        self.world.borrow_mut().apply_fault(now, fault)?;
        match fault {
            Fault::ControllerCrash => self.crash_controller(),
            Fault::ControllerRestart => {
                self.crash_controller();
                self.start_controller();
            }
            Fault::HealAll if !self.controller_up => self.start_controller(),
            Fault::Repair(h) => {
                // A new boot: the agent starts afresh.
                if let Some(a) = self.agents.remove(h) {
                    for conn in a.conns.values() {
                        self.net.break_conn(*conn);
                    }
                }
            }
            _ => {}
        }
        self.sync_hosts();
        Ok(())
    }

    fn api(&mut self, request: ApiRequest) {
        if let ApiRequest::TerminateInstance { vm } = &request {
            self.world.borrow_mut().retire_vm(vm);
        }
        self.next_request_id += 1;
        self.trace
            .push(self.now_ms, "operator", &format!("request {request}"));
        let at = self.now_ms + self.net.latency_ms();
        let incarnation = self.controller_incarnation;
        let id = self.next_request_id;
        self.queue.push(
            at,
            Ev::Request {
                incarnation,
                id,
                request,
            },
        );
    }

    fn trace(&self) -> &TraceBuf {
        &self.trace
    }

    fn world(&self) -> Ref<'_, World> {
        self.world.borrow()
    }

    fn guest_write(
        &mut self,
        vm: &krrish_core::VmId,
        disk: &krrish_cloud::storage::DiskRef,
        block: u64,
        data: u64,
    ) -> Result<(), String> {
        self.world().guest_has_disk(vm, disk)?;
        if !self.controller_up {
            return Err(
                "the controller is down: guest writes are kept in its storage records".into(),
            );
        }
        let now = self.now_ms;
        self.trace.push(
            now,
            "guest",
            &format!("writes {data} to block {block} of {disk}"),
        );
        let r = self
            .controller
            .borrow_mut()
            .guest_write(now, disk, block, data)
            .map_err(|e| e.to_string());
        self.after_controller();
        r
    }

    fn core(&self) -> Ref<'_, HaManager> {
        Ref::map(self.controller.borrow(), |c| c.core())
    }

    fn cloud(&self) -> Ref<'_, krrish_cloud::Cloud> {
        Ref::map(self.controller.borrow(), |c| c.cloud())
    }

    fn checks_run(&self) -> u64 {
        self.checkers.checks_run
    }
}
