//! The turmoil world: a `controller` host, one host per hypervisor running
//! the real agent over a [`SimDriver`], and an `operator` client that sends
//! API calls. The outer loop steps turmoil, applies faults, keeps turmoil's
//! view of power and links in line with the [`World`], and runs the checkers.

use crate::transport::{TurmoilClock, TurmoilConnect, TurmoilListen};
use krrish_agent::{run_agent, AgentConfig};
use krrish_controller::{run_controller, ControllerMachine, Store};
use krrish_core::ha::HaManager;
use krrish_core::{HostId, HostSpec, VmSpec};
use krrish_sim::checkers::{Checkers, Violation};
use krrish_sim::world::{PathState, SeededRng, World};
use krrish_sim::{Fault, SimConfig, SimDriver, SimFabric, SimFencer, TraceBuf};
use krrish_wire::{read_frame, write_frame, ApiRequest, Clock, Frame, CONTROLLER_PORT};
use std::cell::{Ref, RefCell};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::mpsc;

const CONTROLLER: &str = "controller";
const OPERATOR: &str = "operator";

pub struct SimWorld<'a> {
    sim: turmoil::Sim<'a>,
    world: Rc<RefCell<World>>,
    controller: Rc<RefCell<ControllerMachine>>,
    /// The controller's disk, which a guest write reaches at once.
    store: Rc<Store>,
    trace: TraceBuf,
    api: mpsc::UnboundedSender<ApiRequest>,
    checkers: Checkers,
    /// How turmoil currently treats controller <-> host (absent: ok).
    links: std::collections::BTreeMap<HostId, PathState>,
    /// Hosts whose path loses packets, and how many per hundred.
    lossy: std::collections::BTreeMap<HostId, u8>,
    pub config: SimConfig,
}

/// Turmoil's TCP does not retransmit, so a lossy path is modelled by what
/// loss does to a TCP stream on average: the link's latency tail is set so
/// that its mean delay (turmoil draws `max × Exp(5)`, mean a fifth of the
/// range) is the mean resend delay of the event world's TCP model — 200 ms
/// doubling per loss in a row, fifteen tries — capped at TCP's 120 s.
fn lossy_latency_max(loss_pct: u8, clean_max_ms: u64) -> Duration {
    let p = f64::from(loss_pct) / 100.0;
    let (mut mean_ms, mut delay_ms, mut rto_ms, mut p_k) = (0.0, 0.0, 200.0, 1.0);
    for _ in 0..=15 {
        mean_ms += p_k * (1.0 - p) * delay_ms;
        delay_ms += rto_ms;
        rto_ms = f64::min(rto_ms * 2.0, 120_000.0);
        p_k *= p;
    }
    let tail_ms = (5.0 * mean_ms).min(120_000.0) as u64;
    Duration::from_millis(clean_max_ms + tail_ms)
}

impl<'a> SimWorld<'a> {
    pub fn new(hosts: Vec<HostSpec>, vms: Vec<VmSpec>, config: SimConfig) -> Self {
        let mut b = turmoil::Builder::new();
        b.rng_seed(config.seed)
            .tick_duration(Duration::from_millis(config.tick_ms))
            .simulation_duration(Duration::from_secs(100 * 365 * 24 * 3600))
            .min_message_latency(Duration::from_millis(config.latency_min_ms))
            .max_message_latency(Duration::from_millis(config.latency_max_ms))
            .tcp_capacity(4096);
        let mut sim = b.build();
        let trace = TraceBuf::default();
        let mut timings = config.timings.clone();
        timings.lease_duration_ms = config.ha.lease_duration_ms;
        let world = Rc::new(RefCell::new(World::new(
            config.seed,
            hosts.clone(),
            vms.clone(),
            timings,
            trace.clone(),
        )));
        // Heartbeat phases differ per host, as on a real cluster.
        let mut phases = SeededRng::new(config.seed.rotate_left(17));
        // The controller's disk: survives its crashes, as a file would.
        let store = Rc::new(Store::in_memory().expect("an in-memory redb opens"));
        let first = HaManager::new(0, config.ha.clone(), hosts.clone(), vms.clone());
        let controller = Rc::new(RefCell::new(ControllerMachine::new(first)));

        let controller_disk = store.clone();
        {
            let (m, w, t) = (controller.clone(), world.clone(), trace.clone());
            let (ha, specs, initial_vms) = (config.ha.clone(), hosts.clone(), vms);
            sim.host(CONTROLLER, move || {
                let (m, w, t) = (m.clone(), w.clone(), t.clone());
                // Every (re)start reads the store: empty the first time.
                let now = TurmoilClock.now_ms();
                let saved = store.load().unwrap_or_else(|e| {
                    panic!("the simulated controller store is unreadable: {e}")
                });
                *m.borrow_mut() = ControllerMachine::start(
                    now,
                    ha.clone(),
                    specs.clone(),
                    initial_vms.clone(),
                    saved,
                );
                let store = store.clone();
                async move {
                    let bind = (IpAddr::V4(Ipv4Addr::UNSPECIFIED), CONTROLLER_PORT);
                    let listener = TurmoilListen(turmoil::net::TcpListener::bind(bind).await?);
                    run_controller(
                        listener,
                        m,
                        Some(store),
                        Rc::new(SimFencer {
                            world: w.clone(),
                            clock: Rc::new(TurmoilClock),
                        }),
                        Rc::new(SimFabric { world: w }),
                        Rc::new(TurmoilClock),
                        Rc::new(t),
                    )
                    .await;
                    Ok(())
                }
            });
        }
        for h in &hosts {
            let mut cfg = AgentConfig::new(h.id.clone(), format!("{CONTROLLER}:{CONTROLLER_PORT}"));
            // turmoil delivers a message at the next step: a round trip
            // takes up to two ticks plus latency.
            cfg.timings = config
                .ha
                .agent_timings()
                .for_round_trip(2 * (config.tick_ms + config.latency_max_ms));
            cfg.start_delay_ms = phases.below(config.ha.heartbeat.interval_ms);
            let (w, t, id) = (world.clone(), trace.clone(), h.id.clone());
            sim.host(h.id.as_str(), move || {
                let (w, t, cfg) = (w.clone(), t.clone(), cfg.clone());
                let driver = Rc::new(SimDriver {
                    world: w,
                    host: id.clone(),
                    clock: Rc::new(TurmoilClock),
                });
                async move {
                    run_agent(
                        cfg,
                        Rc::new(TurmoilConnect),
                        driver,
                        Rc::new(TurmoilClock),
                        Rc::new(t),
                    )
                    .await;
                    Ok(())
                }
            });
        }
        let (api, mut api_rx) = mpsc::unbounded_channel::<ApiRequest>();
        {
            let t = trace.clone();
            sim.client(OPERATOR, async move {
                // As a real API client: one connection, redialled (once per
                // request) when the controller restarted under it.
                let mut conn: Option<turmoil::net::TcpStream> = None;
                let mut id = 0;
                while let Some(request) = api_rx.recv().await {
                    id += 1;
                    t.push(
                        TurmoilClock.now_ms(),
                        OPERATOR,
                        &format!("request {request}"),
                    );
                    let mut reply = None;
                    for _attempt in 0..2 {
                        if conn.is_none() {
                            conn = dial_controller().await;
                        }
                        let Some(s) = conn.as_mut() else { break };
                        let request = Frame::Request {
                            id,
                            request: request.clone(),
                        };
                        let answer = match write_frame(s, &request).await {
                            Ok(()) => read_frame(s).await.ok().flatten(),
                            Err(_) => None,
                        };
                        match answer {
                            Some(frame) => {
                                reply = Some(frame);
                                break;
                            }
                            // Closed under us: the controller restarted.
                            None => conn = None,
                        }
                    }
                    let text = match reply {
                        Some(Frame::Response { result: Ok(r), .. }) => format!("ok: {r}"),
                        Some(Frame::Response { result: Err(e), .. }) => format!("refused: {e}"),
                        None => "refused: controller unreachable".to_string(),
                        Some(other) => format!("unexpected reply {other:?}"),
                    };
                    t.push(TurmoilClock.now_ms(), OPERATOR, &text);
                }
                Ok(())
            });
        }
        Self {
            sim,
            world,
            controller,
            store: controller_disk,
            trace,
            api,
            checkers: Checkers::new(config.belief_grace_ms),
            links: Default::default(),
            lossy: Default::default(),
            config,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.sim.elapsed().as_millis() as u64
    }

    pub fn trace(&self) -> &TraceBuf {
        &self.trace
    }

    pub fn world(&self) -> Ref<'_, World> {
        self.world.borrow()
    }

    pub fn controller(&self) -> Ref<'_, ControllerMachine> {
        self.controller.borrow()
    }

    pub fn checks_run(&self) -> u64 {
        self.checkers.checks_run
    }

    /// One turmoil tick, then power/link bookkeeping and the checkers.
    pub fn step(&mut self) -> Result<(), Violation> {
        if let Err(e) = self.sim.step() {
            return Err(Violation {
                invariant: "simulation",
                at_ms: self.now_ms(),
                detail: format!("a simulated host failed: {e}"),
            });
        }
        let now = self.now_ms();
        self.world.borrow_mut().power_on_due(now);
        self.sync_turmoil();
        self.apply_disk_ops_done(now);
        if self.trace.is_full() {
            return Err(Violation {
                invariant: "bounded-trace",
                at_ms: now,
                detail: format!(
                    "more than {} trace lines",
                    krrish_sim::trace::TRACE_LINES_MAX
                ),
            });
        }
        let controller_up = self.sim.is_host_running(CONTROLLER);
        let world = self.world.borrow();
        let controller = self.controller.borrow();
        self.checkers.check(
            now,
            &world,
            controller.core(),
            controller.cloud(),
            self.trace.len(),
            controller_up,
        )
    }

    /// The snapshot ops hosts did this step change the disks' model now
    /// (a down controller's records learn them from the hosts' answers).
    fn apply_disk_ops_done(&mut self, now: u64) {
        let done = self.world.borrow_mut().take_disk_ops_done();
        if done.is_empty() || !self.sim.is_host_running(CONTROLLER) {
            return;
        }
        let mut m = self.controller.borrow_mut();
        for (vm, through) in done {
            m.disk_ops_applied(now, &vm, through);
        }
        if let Some((generation, snapshot)) = m.take_save() {
            let r = self.store.save(&snapshot).map_err(|e| e.to_string());
            m.handle_saved(generation, r);
        }
    }

    /// Steps until simulated time reaches `t_ms`.
    pub fn run_until(&mut self, t_ms: u64) -> Result<(), Violation> {
        while self.now_ms() < t_ms {
            self.step()?;
        }
        Ok(())
    }

    /// Keeps turmoil's hosts and links in line with the world's power and
    /// management paths (IPMI power-offs happen inside the world): a cut
    /// drops packets (turmoil partition), a stall holds them (turmoil hold)
    /// until it heals (turmoil release delivers them).
    fn sync_turmoil(&mut self) {
        let world = self.world.borrow();
        let mut crash = Vec::new();
        // Powered on again by something other than a repair (a BMC power
        // cycle): the host boots, its agent starts afresh.
        let mut boot = Vec::new();
        let mut changes = Vec::new();
        let mut loss_changes = Vec::new();
        for (id, h) in &world.hosts {
            if !h.powered && self.sim.is_host_running(id.as_str()) {
                crash.push(id.clone());
            }
            if h.powered && !self.sim.is_host_running(id.as_str()) {
                boot.push(id.clone());
            }
            let want = if h.powered {
                world.management_path(id)
            } else {
                PathState::Ok
            };
            let loss = if h.powered { h.path_loss_pct } else { 0 };
            if self.lossy.get(id).copied().unwrap_or(0) != loss {
                loss_changes.push((id.clone(), loss));
            }
            let have = self.links.get(id).copied().unwrap_or_default();
            if want != have {
                changes.push((id.clone(), have, want));
            }
        }
        drop(world);
        for id in crash {
            self.sim.crash(id.as_str());
        }
        for id in boot {
            self.sim.bounce(id.as_str());
        }
        for (id, loss) in loss_changes {
            let clean = self.config.latency_max_ms;
            let max = match loss {
                0 => Duration::from_millis(clean),
                p => lossy_latency_max(p, clean),
            };
            self.sim
                .set_link_max_message_latency(CONTROLLER, id.as_str(), max);
            if loss == 0 {
                self.lossy.remove(&id);
            } else {
                self.lossy.insert(id, loss);
            }
        }
        for (id, have, want) in changes {
            let h = id.as_str();
            match (have, want) {
                (PathState::Stalled, PathState::Ok) => self.sim.release(CONTROLLER, h),
                (PathState::Cut, PathState::Ok) => self.sim.repair(CONTROLLER, h),
                (_, PathState::Cut) => self.sim.partition(CONTROLLER, h),
                (PathState::Ok, PathState::Stalled) => self.sim.hold(CONTROLLER, h),
                (PathState::Cut, PathState::Stalled) => {
                    self.sim.repair(CONTROLLER, h);
                    self.sim.hold(CONTROLLER, h);
                }
                (same, _) => unreachable!("{same:?} is not a change"),
            }
            if want == PathState::Ok {
                self.links.remove(&id);
            } else {
                self.links.insert(id, want);
            }
        }
    }

    /// Sends an API call from the operator client.
    pub fn api(&mut self, request: ApiRequest) {
        if let ApiRequest::TerminateInstance { vm } = &request {
            self.world.borrow_mut().retire_vm(vm);
        }
        let _ = self.api.send(request);
    }

    /// Applies a fault now. Errs on an unknown host or NIC.
    pub fn inject(&mut self, fault: &Fault) -> Result<(), String> {
        // turmoil knows a host's clock only once the simulation has run: a
        // crash or restart before the first tick panicked ("host instant
        // not set", found by the bad-input adversary). Such a fault at 0 s
        // comes one tick later.
        let restarts = matches!(
            fault,
            Fault::ControllerCrash | Fault::ControllerRestart | Fault::HealAll | Fault::Repair(_)
        );
        if restarts && self.sim.elapsed().is_zero() {
            self.step().map_err(|v| v.detail)?;
        }
        let now = self.now_ms();
        if let Some(host) = fault.host() {
            if !self.world.borrow().hosts.contains_key(host) {
                return Err(format!("no host named {host}"));
            }
        }
        self.trace.push(now, "fault", &fault.to_string());
        match fault {
            Fault::ControllerCrash => self.sim.crash(CONTROLLER),
            Fault::ControllerRestart => self.sim.bounce(CONTROLLER),
            Fault::HealAll if !self.sim.is_host_running(CONTROLLER) => self.sim.bounce(CONTROLLER),
            _ => {}
        }
        self.world.borrow_mut().apply_fault(now, fault)?;
        if let Fault::Repair(h) = fault {
            // A new boot: the agent starts afresh.
            self.sim.bounce(h.as_str());
        }
        self.sync_turmoil();
        Ok(())
    }
}

impl krrish_sim::SimulatedWorld for SimWorld<'_> {
    fn now_ms(&self) -> u64 {
        SimWorld::now_ms(self)
    }
    fn run_until(&mut self, t_ms: u64) -> Result<(), Violation> {
        SimWorld::run_until(self, t_ms)
    }
    fn inject(&mut self, fault: &Fault) -> Result<(), String> {
        SimWorld::inject(self, fault)
    }
    fn api(&mut self, request: ApiRequest) {
        SimWorld::api(self, request)
    }
    fn guest_write(
        &mut self,
        vm: &krrish_core::VmId,
        disk: &krrish_cloud::storage::DiskRef,
        block: u64,
        data: u64,
    ) -> Result<(), String> {
        self.world().guest_has_disk(vm, disk)?;
        if !self.sim.is_host_running(CONTROLLER) {
            return Err(
                "the controller is down: guest writes are kept in its storage records".into(),
            );
        }
        let now = self.now_ms();
        self.trace.push(
            now,
            "guest",
            &format!("writes {data} to block {block} of {disk}"),
        );
        let mut m = self.controller.borrow_mut();
        m.guest_write(now, disk, block, data)
            .map_err(|e| e.to_string())?;
        // The write is on the disk now, as a guest's write is; the service
        // loop would save only when it next wakes, and a controller crash
        // before that lost an acknowledged write (found by an adversary).
        if let Some((generation, snapshot)) = m.take_save() {
            let r = self.store.save(&snapshot).map_err(|e| e.to_string());
            m.handle_saved(generation, r);
        }
        Ok(())
    }
    fn trace(&self) -> &TraceBuf {
        &self.trace
    }
    fn world(&self) -> Ref<'_, World> {
        self.world.borrow()
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

/// The operator's connection to the controller's API, if it is up.
async fn dial_controller() -> Option<turmoil::net::TcpStream> {
    let addr = format!("{CONTROLLER}:{CONTROLLER_PORT}");
    let mut s = turmoil::net::TcpStream::connect(addr).await.ok()?;
    write_frame(&mut s, &Frame::OperatorHello).await.ok()?;
    Some(s)
}
