//! The controller's logic, without I/O: the HA core and the cloud's
//! resources, who is connected and which command is which. The operator
//! API's answers are in [`api`].

mod api;
mod guests;
mod health;

pub use health::FABRIC_READ_TIMEOUT_MS;

use crate::status::ClusterStatus;
use krrish_cloud::{Cloud, GuestConfig};
use krrish_core::ha::{
    Command, CoreSnapshot, DriverError, FenceAction, FenceError, HaConfig, HaManager, Notice,
    VmState,
};
use krrish_core::{HostId, HostSpec, VmId, VmSpec};
use krrish_wire::{AgentCommand, Frame};
use std::collections::{BTreeMap, VecDeque};

/// What the controller keeps on disk: the HA core's records and the
/// cloud's resources, written together.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ControllerSnapshot {
    pub core: CoreSnapshot,
    /// Stores written before the cloud's resources existed read as empty.
    #[serde(default)]
    pub cloud: Cloud,
}

/// What the shell must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum ControllerOutput {
    SendTo {
        conn: u64,
        frame: Frame,
    },
    /// Drop a connection (a newer one replaced it).
    Close {
        conn: u64,
    },
    /// Power the host off through its BMC; answer with
    /// [`ControllerMachine::handle_fence_result`].
    FenceIpmi {
        host: HostSpec,
        action: FenceAction,
    },
    /// Power the host off or on through its BMC (DPM); answer with
    /// [`ControllerMachine::handle_power_result`].
    PowerHost {
        host: HostSpec,
        on: bool,
    },
    /// Ask the DFS to revoke the host's lease; answer with
    /// [`ControllerMachine::handle_lease_revoked`].
    RevokeLease {
        host: HostId,
    },
    /// Ask the DFS to grant the host leases again; answer with
    /// [`ControllerMachine::handle_lease_reinstated`].
    ReinstateLease {
        host: HostId,
    },
    /// Ask the DFS when each host last renewed its lease; answer with
    /// [`ControllerMachine::handle_lease_renewals`] with the same `read`.
    ReadLeaseRenewals {
        read: u64,
    },
    /// Read the data plane for these VMs (where each runs, whether those
    /// hosts' bonds carry traffic) for the load balancers' health checks;
    /// answer with [`ControllerMachine::handle_fabric_report`] with the
    /// same `read`.
    ReadFabric {
        read: u64,
        vms: Vec<VmId>,
    },
    /// Something the control plane decided or observed (typed: scenario
    /// expectations match these; shells write them as trace lines).
    Event(Notice),
    /// Write the core's state to durable storage (the controller's own disk)
    /// before acting on what follows; answer with
    /// [`ControllerMachine::handle_saved`].
    Save {
        generation: u64,
        snapshot: Box<ControllerSnapshot>,
    },
    Trace(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    Unknown,
    Agent(HostId),
    Operator,
}

#[derive(Clone, Debug)]
enum Pending {
    /// `disk_ops_through`: the last snapshot op the command carried.
    Boot {
        vm: VmId,
        host: HostId,
        disk_ops_through: u64,
    },
    Migrate {
        vm: VmId,
        from: HostId,
        to: HostId,
        /// The core's copy serial, handed back with the answer.
        serial: u64,
    },
    Stop {
        vm: VmId,
        host: HostId,
    },
    Reboot {
        vm: VmId,
        host: HostId,
    },
    Abort {
        vm: VmId,
        from: HostId,
        to: HostId,
    },
    Guest {
        vm: VmId,
        host: HostId,
        disk_ops_through: u64,
    },
}

const OUTPUT_QUEUE_MAX: usize = 1 << 20;
/// Command ids are `incarnation << 40 | n`: 2^40 commands per incarnation,
/// 2^24 restarts.
const COMMAND_ID_INCARNATION_SHIFT: u32 = 40;
/// Commands one input may cascade into (failed boots re-place, …).
const CASCADE_MAX: usize = 100_000;

pub struct ControllerMachine {
    core: HaManager,
    /// The cloud's other resources (vxnets, EIPs, …).
    cloud: Cloud,
    /// The data-plane read in flight for the health checks, and the last
    /// read's id.
    fabric_read: Option<health::FabricRead>,
    next_fabric_read: u64,
    conns: BTreeMap<u64, Role>,
    agents: BTreeMap<HostId, u64>,
    /// Commands awaiting an answer, with the connection they went out on.
    pending: BTreeMap<u64, (u64, Pending)>,
    next_command_id: u64,
    out: VecDeque<ControllerOutput>,
    /// Whether the shell keeps the state on a disk (it executes `Save`).
    durable: bool,
    /// The core generation last handed to the shell to save.
    saved_generation: Option<u64>,
    /// The core's next wake-up as last computed, and the generation then.
    /// A heartbeat that decides nothing only moves its own host's deadline
    /// later, so the cached wake stays valid (at worst early, never late);
    /// every other input drops the cache.
    wake_cache: std::cell::Cell<Option<(u64, Option<u64>)>>,
    /// What each VM's host was last told of the VM's network and volumes
    /// (at its boot or since): sent again when the records or the VM's
    /// host change. `None`: the host may hold anything (a telling failed or
    /// was lost with a connection) — told again even when there is nothing
    /// to tell now, or a stale NIC or EIP would stay (found by the
    /// adversary). Not saved: a restarted controller tells every running
    /// VM's host again.
    told_guests: BTreeMap<VmId, (HostId, Option<GuestConfig>)>,
    /// The (core, cloud) generations `told_guests` was last brought up to
    /// date at; `None` after an input that may call for telling again.
    guests_followed_at: Option<(u64, u64)>,
    /// VMs whose host refused their last telling, for the back-off.
    guest_retry: BTreeMap<VmId, guests::GuestRetry>,
    /// Each volume being detached, with the first command id whose telling
    /// reflects the detach (see [`guests`]).
    detach_marks: BTreeMap<krrish_cloud::Name, u64>,
}

impl ControllerMachine {
    pub fn new(core: HaManager) -> Self {
        // An agent answers a command whenever it ends, on whatever
        // connection is then open — possibly to a later incarnation of this
        // controller. Ids carry the incarnation in their high bits, so an
        // answer to an earlier incarnation's command matches nothing here.
        let next_command_id = (core.incarnation() << COMMAND_ID_INCARNATION_SHIFT) + 1;
        Self {
            core,
            cloud: Cloud::default(),
            fabric_read: None,
            next_fabric_read: 0,
            conns: BTreeMap::new(),
            agents: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_command_id,
            out: VecDeque::new(),
            durable: false,
            saved_generation: None,
            wake_cache: std::cell::Cell::new(None),
            told_guests: BTreeMap::new(),
            guests_followed_at: None,
            guest_retry: BTreeMap::new(),
            detach_marks: BTreeMap::new(),
        }
    }

    /// A durable controller starting from what its store holds: restored
    /// from `saved`, or new from the cluster definition when the store is
    /// empty.
    pub fn start(
        now_ms: u64,
        config: HaConfig,
        hosts: Vec<HostSpec>,
        initial_vms: Vec<VmSpec>,
        saved: Option<ControllerSnapshot>,
    ) -> Self {
        match saved {
            Some(snap) => {
                let core = HaManager::restore(now_ms, config, hosts, snap.core);
                let mut m = Self::new(core);
                m.cloud = snap.cloud.restored(now_ms);
                m.core.set_service_groups(m.cloud.service_groups());
                m.durable = true;
                m.drain(now_ms);
                m
            }
            None => Self::durable(now_ms, HaManager::new(now_ms, config, hosts, initial_vms)),
        }
    }

    /// A controller whose shell keeps its state on disk: after every
    /// decision it emits [`ControllerOutput::Save`]; what the core decided
    /// while being built or restored goes out now.
    pub fn durable(now_ms: u64, core: HaManager) -> Self {
        let mut m = Self::new(core);
        m.durable = true;
        m.drain(now_ms);
        m
    }

    /// Asks the shell to save the core's state if it changed since the last
    /// request — ahead of the outputs from index `first` on, the decisions
    /// that state records (write-ahead: a restarted controller never forgets
    /// a fence or a boot it already sent).
    fn persist(&mut self, first: usize) {
        if !self.durable {
            return;
        }
        let generation = self.generation();
        if self.saved_generation == Some(generation) {
            return;
        }
        self.saved_generation = Some(generation);
        assert!(
            self.out.len() < OUTPUT_QUEUE_MAX,
            "controller output queue unbounded growth"
        );
        let save = ControllerOutput::Save {
            generation,
            snapshot: Box::new(ControllerSnapshot {
                core: self.core.snapshot(),
                cloud: self.cloud.clone(),
            }),
        };
        self.out.insert(first.min(self.out.len()), save);
    }

    /// Takes a pending [`ControllerOutput::Save`] out of the queue, for a
    /// shell that must make a change durable before it returns (a world
    /// standing for a guest's disk write). Answer it with
    /// [`Self::handle_saved`] as usual.
    pub fn take_save(&mut self) -> Option<(u64, Box<ControllerSnapshot>)> {
        let at = self
            .out
            .iter()
            .position(|o| matches!(o, ControllerOutput::Save { .. }))?;
        match self.out.remove(at) {
            Some(ControllerOutput::Save {
                generation,
                snapshot,
            }) => Some((generation, snapshot)),
            _ => None,
        }
    }

    /// The shell's answer to [`ControllerOutput::Save`]. A failed write is
    /// reported and retried at the next decision.
    pub fn handle_saved(&mut self, generation: u64, result: Result<(), String>) {
        if let Err(e) = result {
            self.push(ControllerOutput::Trace(format!(
                "cannot save state (generation {generation}): {e}"
            )));
            if self.saved_generation == Some(generation) {
                self.saved_generation = None;
            }
        }
    }

    pub fn core(&self) -> &HaManager {
        &self.core
    }

    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// Changes with every change worth saving (the core's or the cloud's).
    fn generation(&self) -> u64 {
        self.core.generation() + self.cloud.generation()
    }

    pub fn status(&self) -> ClusterStatus {
        ClusterStatus::of(&self.core)
    }

    pub fn poll_output(&mut self) -> Option<ControllerOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        let generation = self.core.generation();
        let wake = match self.wake_cache.get() {
            Some((g, wake)) if g == generation => wake,
            _ => {
                let wake = self.core.poll_timeout();
                self.wake_cache.set(Some((generation, wake)));
                wake
            }
        };
        [
            wake,
            self.cloud.poll_timeout(),
            self.health_wake(),
            self.guest_retry_wake(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn push(&mut self, o: ControllerOutput) {
        assert!(
            self.out.len() < OUTPUT_QUEUE_MAX,
            "controller output queue unbounded growth"
        );
        self.out.push_back(o);
    }

    pub fn handle_opened(&mut self, conn: u64) {
        self.conns.insert(conn, Role::Unknown);
    }

    pub fn handle_closed(&mut self, now_ms: u64, conn: u64) {
        self.wake_cache.set(None);
        self.forget_pending_on(conn);
        if let Some(Role::Agent(host)) = self.conns.remove(&conn) {
            if self.agents.get(&host) == Some(&conn) {
                self.agents.remove(&host);
                self.push(ControllerOutput::Trace(format!(
                    "agent {host} disconnected"
                )));
            }
        }
        self.drain(now_ms);
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.wake_cache.set(None);
        self.core.handle_timeout(now_ms);
        for line in self.cloud.handle_timeout(now_ms) {
            self.push(ControllerOutput::Trace(line));
        }
        self.start_health_checks(now_ms);
        self.drain(now_ms);
    }

    /// The simulated data plane: a guest wrote `data` to `block` of one of
    /// its disks (see [`krrish_cloud::Cloud::guest_write`]).
    pub fn guest_write(
        &mut self,
        now_ms: u64,
        disk: &krrish_cloud::storage::DiskRef,
        block: u64,
        data: u64,
    ) -> Result<(), krrish_cloud::CloudError> {
        self.cloud.guest_write(disk, block, data)?;
        self.drain(now_ms);
        Ok(())
    }

    /// The simulated data plane: `vm`'s simulated host did its snapshot
    /// ops up to `through` on its disks just now (the answer saying so
    /// comes later; see [`krrish_cloud::Cloud::disk_ops_applied`]).
    pub fn disk_ops_applied(&mut self, now_ms: u64, vm: &VmId, through: u64) {
        self.cloud.disk_ops_applied(vm, through);
        self.drain(now_ms);
    }

    pub fn handle_fence_result(
        &mut self,
        now_ms: u64,
        host: &HostId,
        result: Result<(), FenceError>,
    ) {
        self.wake_cache.set(None);
        self.core.handle_fence_result(now_ms, host, result);
        self.drain(now_ms);
    }

    pub fn handle_power_result(
        &mut self,
        now_ms: u64,
        host: &HostId,
        on: bool,
        result: Result<(), FenceError>,
    ) {
        self.wake_cache.set(None);
        self.core.handle_power_result(now_ms, host, on, result);
        self.drain(now_ms);
    }

    pub fn handle_lease_revoked(
        &mut self,
        now_ms: u64,
        host: &HostId,
        result: Result<u64, FenceError>,
    ) {
        self.wake_cache.set(None);
        self.core.handle_lease_revoked(now_ms, host, result);
        self.drain(now_ms);
    }

    pub fn handle_lease_reinstated(
        &mut self,
        now_ms: u64,
        host: &HostId,
        result: Result<(), FenceError>,
    ) {
        self.wake_cache.set(None);
        self.core.handle_lease_reinstated(now_ms, host, result);
        self.drain(now_ms);
    }

    pub fn handle_lease_renewals(
        &mut self,
        now_ms: u64,
        read: u64,
        result: Result<krrish_core::lease::LeaseRenewals, FenceError>,
    ) {
        self.wake_cache.set(None);
        self.core.handle_lease_renewals(now_ms, read, result);
        self.drain(now_ms);
    }

    pub fn handle_frame(&mut self, now_ms: u64, conn: u64, frame: Frame) {
        if !matches!(frame, Frame::Heartbeat { .. }) {
            self.wake_cache.set(None);
        }
        let role = self.conns.get(&conn).cloned().unwrap_or(Role::Unknown);
        match (role, frame) {
            (Role::Unknown, Frame::AgentHello { host, boot_id }) => {
                if !self.core.hosts().contains_key(&host) {
                    self.push(ControllerOutput::Trace(format!(
                        "hello from unknown host {host}: closing"
                    )));
                    self.push(ControllerOutput::Close { conn });
                    return;
                }
                // A new agent process may not know its guests' networks
                // and volumes.
                for (h, told) in self.told_guests.values_mut() {
                    if *h == host {
                        *told = None;
                    }
                }
                self.guests_followed_at = None;
                if let Some(old) = self.agents.insert(host.clone(), conn) {
                    self.conns.remove(&old);
                    self.forget_pending_on(old);
                    self.push(ControllerOutput::Close { conn: old });
                }
                self.conns.insert(conn, Role::Agent(host.clone()));
                self.push(ControllerOutput::Trace(format!(
                    "agent {host} connected (boot {boot_id})"
                )));
                self.core.handle_agent_connected(now_ms, &host);
            }
            (Role::Unknown, Frame::OperatorHello) => {
                self.conns.insert(conn, Role::Operator);
            }
            (Role::Agent(host), Frame::Heartbeat { report }) => {
                self.core.handle_heartbeat(now_ms, &host, &report);
                self.push(ControllerOutput::SendTo {
                    conn,
                    frame: Frame::HeartbeatAck,
                });
            }
            (Role::Agent(_), Frame::CommandDone { id, outcome }) => {
                match self.pending.remove(&id).map(|(_, p)| p) {
                    Some(Pending::Boot {
                        vm,
                        host,
                        disk_ops_through,
                    }) => {
                        let ok = outcome.is_ok();
                        self.core.handle_boot_result(now_ms, &vm, &host, outcome);
                        if ok {
                            self.disk_ops_done(&vm, &host, disk_ops_through);
                        }
                    }
                    Some(Pending::Migrate {
                        vm,
                        from,
                        to,
                        serial,
                    }) => self
                        .core
                        .handle_migration_result(now_ms, &vm, &from, &to, serial, outcome),
                    Some(Pending::Reboot { vm, host }) => {
                        self.push(ControllerOutput::Trace(match outcome {
                            Ok(()) => format!("vm {vm} rebooted on {host}"),
                            Err(why) => format!("reboot of {vm} on {host} failed: {why}"),
                        }))
                    }
                    Some(Pending::Stop { vm, host }) => {
                        self.core.handle_stop_result(now_ms, &vm, &host, outcome)
                    }
                    Some(Pending::Abort { vm, from, to }) => self
                        .core
                        .handle_migration_aborted(now_ms, &vm, &from, &to, outcome),
                    Some(Pending::Guest {
                        vm,
                        host,
                        disk_ops_through,
                    }) => {
                        let ok = outcome.is_ok();
                        self.handle_guest_answer(now_ms, id, vm.clone(), host.clone(), outcome);
                        if ok {
                            self.disk_ops_done(&vm, &host, disk_ops_through);
                        }
                    }
                    None => {}
                }
            }
            (Role::Operator, Frame::Request { id, request }) => {
                let result = self.api(now_ms, request);
                self.push(ControllerOutput::SendTo {
                    conn,
                    frame: Frame::Response { id, result },
                });
            }
            (role, frame) => {
                self.push(ControllerOutput::Trace(format!(
                    "unexpected frame from {role:?} connection {conn}: {frame:?}; closing"
                )));
                self.push(ControllerOutput::Close { conn });
            }
        }
        self.drain(now_ms);
    }

    /// The cloud's root disks follow the core's placements.
    fn follow_placements(&mut self, now_ms: u64) {
        self.step_disk_moves(now_ms);
        if self.cloud.storage.root_disk_hosts().next().is_none() {
            return;
        }
        let core = &self.core;
        let where_is = |vm: &VmId| match &core.vms().get(vm)?.state {
            VmState::Running { host } | VmState::Booting { host, .. } => Some(host.clone()),
            _ => None,
        };
        for line in self.cloud.follow_placements(now_ms, &where_is) {
            self.push(ControllerOutput::Trace(line));
        }
    }

    /// The cloud's disk moves, told who writes each VM's disks: a VM
    /// running on a host that is up (its boot, when last heard), one that
    /// surely runs nowhere, or one in flux (booting, migrating, its host
    /// not up).
    fn step_disk_moves(&mut self, now_ms: u64) {
        use krrish_cloud::storage::DiskWriter;
        if !self.cloud.storage.has_disk_work() {
            return;
        }
        let core = &self.core;
        let writer_of = |vm: &VmId| {
            let may_run = core.hosts_that_may_run(vm);
            if may_run.is_empty() {
                return DiskWriter::Nowhere;
            }
            let running_on = match core.vms().get(vm).map(|v| &v.state) {
                Some(VmState::Running { host }) if may_run == [host.clone()] => host,
                _ => return DiskWriter::InFlux,
            };
            match core.hosts().get(running_on) {
                Some(h) if matches!(h.liveness, krrish_core::ha::Liveness::Up) => DiskWriter::On {
                    host: running_on.clone(),
                    boot: h.boot_id.unwrap_or(0),
                    heard_ms: h.last_heartbeat_ms,
                    storage: h.holds_lease && h.bonds[2] != krrish_core::BondHealth::Down,
                },
                _ => DiskWriter::InFlux,
            }
        };
        for line in self.cloud.step_disk_moves(now_ms, &writer_of) {
            self.push(ControllerOutput::Trace(line));
        }
    }

    /// Moves the core's notices and commands out, routing commands.
    fn drain(&mut self, now_ms: u64) {
        let first = self.out.len();
        for _ in 0..CASCADE_MAX {
            let mut progressed = false;
            while let Some((_, n)) = self.core.poll_notice() {
                progressed = true;
                self.push(ControllerOutput::Event(n));
            }
            while let Some(c) = self.core.poll_command() {
                progressed = true;
                self.dispatch(now_ms, c);
            }
            if !progressed {
                self.follow_placements(now_ms);
                self.follow_guests(now_ms);
                self.persist(first);
                return;
            }
        }
        panic!("command cascade did not settle within {CASCADE_MAX} rounds");
    }

    fn dispatch(&mut self, now_ms: u64, c: Command) {
        // Reading the DFS's renewals is routine polling, not a decision.
        if !matches!(c, Command::ReadLeaseRenewals { .. }) {
            self.push(ControllerOutput::Trace(format!("-> {c}")));
        }
        match c {
            Command::FenceIpmi { host, action } => {
                let spec = self.core.hosts()[&host].spec.clone();
                self.push(ControllerOutput::FenceIpmi { host: spec, action });
            }
            Command::PowerHost { host, on } => {
                let spec = self.core.hosts()[&host].spec.clone();
                self.push(ControllerOutput::PowerHost { host: spec, on });
            }
            Command::RevokeLease { host } => self.push(ControllerOutput::RevokeLease { host }),
            Command::ReinstateLease { host } => {
                self.push(ControllerOutput::ReinstateLease { host })
            }
            Command::ReadLeaseRenewals { read } => {
                self.push(ControllerOutput::ReadLeaseRenewals { read })
            }
            Command::BootVm {
                vm,
                host,
                reason,
                serial,
            } => {
                let id = vm.id.clone();
                let guest = self.cloud.guest_config(&id);
                let pending = Pending::Boot {
                    vm: id.clone(),
                    host: host.clone(),
                    disk_ops_through: guest.disk_ops_through(),
                };
                let told = (host.clone(), Some(guest.clone()));
                let command = AgentCommand::BootVm {
                    vm,
                    reason,
                    guest,
                    serial,
                };
                if let Err(why) = self.send_to_agent(&host, command, pending) {
                    // Not a failed boot: the core sends it again when the
                    // agent connects, or gives up at the boot deadline.
                    self.push(ControllerOutput::Trace(format!(
                        "boot of {id} on {host} waits for its agent: {why}"
                    )));
                } else {
                    self.told_guests.insert(id, told);
                }
            }
            Command::LiveMigrate {
                vm,
                from,
                to,
                serial,
            } => {
                let pending = Pending::Migrate {
                    vm: vm.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    serial,
                };
                let cmd = AgentCommand::LiveMigrate {
                    vm: vm.clone(),
                    to: to.clone(),
                };
                if let Err(why) = self.send_to_agent(&from, cmd, pending) {
                    self.core.handle_migration_result(
                        now_ms,
                        &vm,
                        &from,
                        &to,
                        serial,
                        Err(DriverError::Unavailable(why)),
                    );
                }
            }
            Command::AbortMigration { vm, from, to } => {
                let pending = Pending::Abort {
                    vm: vm.clone(),
                    from: from.clone(),
                    to: to.clone(),
                };
                let cmd = AgentCommand::AbortMigration { vm: vm.clone(), to };
                if let Err(why) = self.send_to_agent(&from, cmd, pending) {
                    // Asked again at the source's next report.
                    self.push(ControllerOutput::Trace(format!(
                        "cannot cancel the migration of {vm} yet: {why}"
                    )));
                }
            }
            Command::RebootVm { vm, host } => {
                let pending = Pending::Reboot {
                    vm: vm.clone(),
                    host: host.clone(),
                };
                if let Err(why) =
                    self.send_to_agent(&host, AgentCommand::RebootVm { vm: vm.clone() }, pending)
                {
                    self.push(ControllerOutput::Trace(format!(
                        "cannot reboot {vm} on {host}: {why}"
                    )));
                }
            }
            Command::StopVm { vm, host } => {
                let pending = Pending::Stop {
                    vm: vm.clone(),
                    host: host.clone(),
                };
                if let Err(why) =
                    self.send_to_agent(&host, AgentCommand::StopVm { vm: vm.clone() }, pending)
                {
                    // Retried when the host heartbeats with the VM still running.
                    self.push(ControllerOutput::Trace(format!(
                        "cannot stop {vm} on {host} yet: {why}"
                    )));
                }
            }
        }
    }

    /// Answers cannot come back on a closed (or replaced) connection:
    /// heartbeats and the core's timeouts settle its boots, stops and
    /// migrations, and guest changes are told again; a reboot is not
    /// retried (it might run twice), so its loss is said.
    fn forget_pending_on(&mut self, conn: u64) {
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (c, _))| *c == conn)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some((_, Pending::Reboot { vm, host })) = self.pending.remove(&id) {
                self.push(ControllerOutput::Trace(format!(
                    "reboot of {vm} on {host} lost with the connection: not known to have happened, not retried"
                )));
            }
        }
    }

    fn send_to_agent(
        &mut self,
        host: &HostId,
        command: AgentCommand,
        pending: Pending,
    ) -> Result<(), String> {
        let Some(&conn) = self.agents.get(host) else {
            return Err(format!("agent of {host} is not connected"));
        };
        let id = self.next_command_id;
        self.next_command_id += 1;
        assert!(
            self.pending.len() < OUTPUT_QUEUE_MAX,
            "pending commands unbounded growth"
        );
        self.pending.insert(id, (conn, pending));
        self.push(ControllerOutput::SendTo {
            conn,
            frame: Frame::Command { id, command },
        });
        Ok(())
    }
}
