//! `krrish scenario run --world lab`: a scenario file against the lab in a
//! box — the real controller and agent daemons, the libvirt driver, real
//! guests (TCG where KVM is unusable), real links, real time.
//!
//! What a run does: builds the networks (krrish-lab), boots the cluster's
//! home VMs on their home hosts, starts the controller (root namespace, on
//! the management bridge, with the HTTP API on loopback and the lab's
//! fence agent) and one agent per host inside the host's namespace, waits
//! until every host is up, then plays the timeline in real time and checks
//! the expectations through the API, libvirt and ping. Everything it made
//! is removed at the end, pass or fail.
//!
//! The vocabulary the lab understands is a subset (see [`unsupported`]);
//! a scenario using anything else is reported NOT RUN with the reasons —
//! never passed. `vm_runs_on` here means: the controller says running on
//! that host, the domain runs in libvirt under that host's name, and the
//! guest answers ping from outside. Throughout the run a checker polls
//! libvirt: a VM with live domains on two hosts is a failure at once.

//! Map: this file holds the run itself — what the lab can run
//! ([`unsupported`]), the site (box or inventory) and the timeline loop;
//! [`faults`] plays each step (`act`) and is the box's BMC ([`fence`]); [`daemons`] starts and stops what a run needs
//! (home VMs, configs, controller and agents, teardown); [`checks`] judges
//! expectations, watches for a VM running twice and times recoveries;
//! [`inventory`] is what differs on an inventory's hosts (`--inventory`);
//! [`box_hosts`] leaves the box's hosts standing as such an inventory.

// Real guests on real time.
#![allow(clippy::disallowed_methods)]

mod box_hosts;
mod checks;
mod daemons;
mod faults;
mod inventory;
mod reach;
mod tenant;

pub use box_hosts::{down as hosts_down, up as hosts_up};
pub use faults::fence;
pub use inventory::{load_inventory_site, InventorySite};

use anyhow::{bail, Context, Result};
use krrish_core::ha::HostVerdict;
use krrish_core::{BondName, HostId, HostSpec, VmId};
use krrish_lab::topology::{CONTROLLER_IP, HOST_VM_BRIDGE, OUTSIDE_NS, STORAGE_SERVICE_IP, VM_NET};
use krrish_lab::{power_off, power_on, HostNet, Topology};
use krrish_libvirt::driver::vm_address;
use krrish_libvirt::names::{domain_name, vm_of_domain};
use krrish_libvirt::{DomainType, GuestImage, Hypervisor, LabHost, LibvirtDriver, TenantConfig};
use krrish_scenario::expect::Check;
use krrish_scenario::load::Action;
use krrish_scenario::Scenario;
use krrish_sim::Fault;
use krrish_wire::ApiRequest;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The controller's agent port and API port on this machine, and the DFS
/// lease service's on the storage network.
const CONTROLLER_PORT: u16 = 7700;
const API_PORT: u16 = 7701;
const DFS_PORT: u16 = 7702;
/// How often the double-run checker and waits poll.
const POLL: Duration = Duration::from_millis(500);
/// Longest wait for every host to be up after the daemons start.
const STARTUP_MAX: Duration = Duration::from_secs(90);
/// The multicast group the lab's vxnets flood to.
const VXLAN_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 1, 1, 1);
/// A lab holds few TCG guests.
const LAB_VMS_MAX: usize = 8;
/// Longest wait for a host's agent after its BMC powered it on.
const POWER_ON_MAX: Duration = Duration::from_secs(10);

/// What `cargo xtask lab up` left in `target/lab/state`.
pub struct LabState {
    pub dir: PathBuf,
    pub uri: String,
    /// The second libvirt daemon `lab up` started (the spares' guests run
    /// there, so that they live-migrate to and from the other hosts);
    /// `None`: it could not start, and nothing migrates live in the box.
    pub uri_b: Option<String>,
    pub guest_dir: PathBuf,
    pub domain_type: String,
    /// The venv Python with pyghmi, for the BMC emulator.
    pub bmc_python: PathBuf,
}

impl LabState {
    /// The libvirt daemon holding a box host's guests: a spare's is the
    /// second daemon when there is one.
    pub fn uri_of(&self, host: &HostSpec) -> &str {
        match (&self.uri_b, host.is_spare()) {
            (Some(b), true) => b,
            _ => &self.uri,
        }
    }

    /// Every libvirt daemon of the box.
    pub fn uris(&self) -> Vec<String> {
        std::iter::once(self.uri.clone())
            .chain(self.uri_b.clone())
            .collect()
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("state");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: the lab is not up (run `cargo xtask lab up` first)",
                path.display()
            )
        })?;
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
                .with_context(|| format!("{}: no `{k}` (run `cargo xtask lab up`)", path.display()))
        };
        Ok(LabState {
            dir: std::fs::canonicalize(dir)?,
            uri: get("libvirt_uri")?,
            uri_b: get("libvirt_uri_b").ok().filter(|u| !u.is_empty()),
            guest_dir: PathBuf::from(get("guest_dir")?),
            domain_type: get("domain_type")?,
            bmc_python: PathBuf::from(get("bmc_python")?),
        })
    }
}

/// Where a lab run plays: the lab in a box (this machine's namespaces,
/// its one libvirt, the BMC emulator the run starts) or the hosts of an
/// inventory (each reached through its `run`, its own libvirt and its
/// real BMC; cuts through the inventory's fault commands).
#[derive(Clone, Copy)]
pub enum Site<'a> {
    Box(&'a LabState),
    Inventory(&'a InventorySite),
}

impl Site<'_> {
    /// Where this machine keeps a run's own files (the controller's and
    /// the lease service's configs, store and logs; in the box, the
    /// hosts' too).
    pub fn local_run_dir(&self) -> PathBuf {
        match self {
            Site::Box(lab) => lab.dir.join("run"),
            Site::Inventory(i) => i.local_dir.clone(),
        }
    }
}

/// Why each part of `s` cannot run at `site` (empty: all of it can).
pub fn unsupported(s: &Scenario, site: Site) -> Vec<String> {
    match site {
        Site::Box(_) => unsupported_in_the_box(s),
        Site::Inventory(i) => {
            let mut why = inventory::unsupported(s, &i.inv);
            if i.preflight_failed > 0 {
                why.insert(
                    0,
                    format!(
                        "the preflight of the inventory's hosts failed ({} checks, above): nothing runs on them",
                        i.preflight_failed
                    ),
                );
            }
            // The rest of the vocabulary is the box's (its size is not).
            why.extend(outside_the_lab_vocabulary(s));
            why
        }
    }
}

/// Why each part of `s` cannot run in the lab in a box.
fn unsupported_in_the_box(s: &Scenario) -> Vec<String> {
    let mut why = Vec::new();
    if s.cluster.hosts.len() > krrish_lab::topology::HOSTS_MAX {
        why.push(format!(
            "{} hosts (the lab in a box holds {})",
            s.cluster.hosts.len(),
            krrish_lab::topology::HOSTS_MAX
        ));
    }
    if s.cluster.vms.len() > LAB_VMS_MAX {
        why.push(format!(
            "{} VMs (the lab in a box boots at most {LAB_VMS_MAX} TCG guests)",
            s.cluster.vms.len()
        ));
    }
    why.extend(outside_the_lab_vocabulary(s));
    why
}

/// The timeline steps and checks of `s` no lab world plays or judges.
fn outside_the_lab_vocabulary(s: &Scenario) -> Vec<String> {
    let mut why = Vec::new();
    for t in &s.timeline {
        let ok = match &t.action {
            Action::Fault(f) => matches!(
                f,
                Fault::Crash(_)
                    | Fault::PowerLoss(_)
                    | Fault::Repair(_)
                    | Fault::BmcDown(_)
                    | Fault::BmcUp(_)
                    | Fault::Partition(_)
                    | Fault::Heal(_)
                    | Fault::BondDown {
                        bond: BondName::Bond0 | BondName::Bond2,
                        ..
                    }
                    | Fault::BondUp {
                        bond: BondName::Bond0 | BondName::Bond2,
                        ..
                    }
                    | Fault::DfsService(_)
            ),
            Action::Api(ApiRequest::Cloud(r)) => tenant::cloud_call(r).is_some(),
            Action::Api(r) => matches!(
                r,
                ApiRequest::RunInstance { .. }
                    | ApiRequest::StopInstance { .. }
                    | ApiRequest::StartInstance { .. }
                    | ApiRequest::RebootInstance { .. }
                    | ApiRequest::TerminateInstance { .. }
            ),
            Action::GuestWrite { .. } => true,
        };
        if !ok {
            why.push(format!(
                "line {}: {:?} (not in the lab's vocabulary yet)",
                t.line, t.action
            ));
        }
    }
    for e in &s.expectations {
        if let Check::Ping { from, to, .. } = &e.check {
            if let Some(r) = tenant::ping_unsupported(from, to) {
                why.push(format!("line {}: {r} (not checked in the lab yet)", e.line));
            }
            continue;
        }
        let ok = matches!(
            e.check,
            Check::VmRunsOn { .. }
                | Check::VmState { .. }
                | Check::HostState { .. }
                | Check::TraceContains(_)
                | Check::TraceLacks(_)
                | Check::Converged
                | Check::Nic { .. }
                | Check::Volume {
                    datastore: None,
                    ..
                }
                | Check::Snapshot { .. }
                | Check::Event { .. }
                | Check::DiskReads { .. }
        );
        if !ok {
            why.push(format!(
                "line {}: {:?} (not checked in the lab yet)",
                e.line, e.check
            ));
        }
    }
    why
}

/// One outcome of a lab run; `events` are the controller's typed events
/// as `kind host vm` (see `krrish_scenario::run::event_key`).
pub enum LabOutcome {
    Passed {
        rtos: Vec<(VmId, f64)>,
        events: Vec<String>,
    },
    Failed {
        why: Vec<String>,
        events: Vec<String>,
    },
    NotRun(Vec<String>),
}

/// The site's libvirts, kept open; one that errs is opened again at the
/// next read.
struct Libvirts {
    conns: Vec<(String, Option<Hypervisor>)>,
}

/// One read of every libvirt: the active domains' names, and the URIs
/// that did not answer (their domains unknown).
struct DomainsRead {
    names: Vec<String>,
    unreachable: Vec<String>,
}

impl Libvirts {
    fn read(&mut self) -> DomainsRead {
        let mut read = DomainsRead {
            names: Vec::new(),
            unreachable: Vec::new(),
        };
        for (uri, conn) in &mut self.conns {
            if conn.is_none() {
                *conn = Hypervisor::open(uri).ok();
            }
            // A live migration's other copy (paused until or since the
            // switch-over) runs no guest: it is not a second run.
            match conn.as_ref().map(Hypervisor::running_names) {
                Some(Ok(names)) => read.names.extend(names),
                _ => {
                    *conn = None;
                    read.unreachable.push(uri.clone());
                }
            }
        }
        read
    }
}

/// The controller's events file, read back as comparison keys.
fn read_events(path: &Path) -> Vec<String> {
    read_event_records(path)
        .into_iter()
        .map(|v| {
            let mut k = v["kind"].as_str().unwrap_or("?").to_string();
            for f in ["host", "vm"] {
                if let Some(x) = v[f].as_str() {
                    k.push(' ');
                    k.push_str(x);
                }
            }
            k
        })
        .collect()
}

/// The controller's events file, one JSON object a line (`kind`, and
/// `host`, `vm` where the event has them).
fn read_event_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// Runs `s` at `site`. `exe` is this krrish binary (started as the
/// daemons here; in the box also as the agents and the fence agent).
pub fn run(s: &Scenario, file: &Path, site: Site, exe: &Path) -> Result<LabOutcome> {
    let why = unsupported(s, site);
    if !why.is_empty() {
        return Ok(LabOutcome::NotRun(why));
    }
    let cluster_file = cluster_file_of(file)?;
    let run_dir = site.local_run_dir();
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let run_dir = std::fs::canonicalize(&run_dir)?;
    let hosts: Vec<HostId> = s.cluster.hosts.iter().map(|h| h.id.clone()).collect();
    let topo = match site {
        Site::Box(_) => {
            std::fs::write(
                run_dir.join("hosts"),
                hosts.iter().map(|h| format!("{h}\n")).collect::<String>(),
            )?;
            Some(Topology::build(&hosts).context("building the lab's networks")?)
        }
        Site::Inventory(_) => None,
    };
    let mut lab_run = LabRun {
        s,
        site,
        exe: exe.to_path_buf(),
        run_dir,
        topo,
        controller: None,
        dfs: None,
        bmc: None,
        agents: BTreeMap::new(),
        bmc_dark: Default::default(),
        t0: Instant::now(),
        failures: Vec::new(),
        crashes: Vec::new(),
        rtos: Vec::new(),
        open_cuts: BTreeMap::new(),
        crashes_sent: BTreeMap::new(),
    };
    let result = lab_run.play(&cluster_file);
    lab_run.stop_everything();
    result?;
    let events = read_events(&lab_run.run_dir.join("events.jsonl"));
    if lab_run.failures.is_empty() {
        Ok(LabOutcome::Passed {
            rtos: lab_run.rtos,
            events,
        })
    } else {
        Ok(LabOutcome::Failed {
            why: lab_run.failures,
            events,
        })
    }
}

/// The `cluster_file:` of a scenario, absolute.
fn cluster_file_of(file: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(file)?;
    let v: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let rel = v
        .get("cluster_file")
        .and_then(|c| c.as_str())
        .with_context(|| {
            format!(
                "{}: the lab needs `cluster_file:` (not an inline cluster)",
                file.display()
            )
        })?;
    let p = file.parent().unwrap_or(Path::new(".")).join(rel);
    std::fs::canonicalize(&p)
        .with_context(|| format!("{}: cluster_file {}", file.display(), p.display()))
}

struct LabRun<'a> {
    s: &'a Scenario,
    site: Site<'a>,
    exe: PathBuf,
    /// This machine's directory of the run (see [`Site::local_run_dir`]).
    run_dir: PathBuf,
    /// The box's networks (none on inventory hosts).
    topo: Option<Topology>,
    controller: Option<Child>,
    dfs: Option<Child>,
    bmc: Option<Child>,
    agents: BTreeMap<HostId, Child>,
    /// Hosts whose BMC is off its network (`bmc_down`, `power_loss`).
    bmc_dark: std::collections::BTreeSet<HostId>,
    t0: Instant,
    failures: Vec<String>,
    /// (host, when, its VMs then) for the RTO.
    crashes: Vec<(HostId, Instant, Vec<VmId>)>,
    rtos: Vec<(VmId, f64)>,
    /// On inventory hosts: the faults still in force by host, as the
    /// fields of the commands that undo them (a repair or the run's end
    /// runs them).
    open_cuts: BTreeMap<HostId, std::collections::BTreeSet<String>>,
    /// Crashes due at one instant whose BMCs were asked together (see
    /// `crash_together`): when, the host's VMs then, the BMC's answer.
    crashes_sent: BTreeMap<HostId, CrashSent>,
}

/// A crash's IPMI power off sent ahead of its step: when it was sent, the
/// host's VMs then, and the BMC's answer.
type CrashSent = (Instant, Vec<VmId>, Result<String, String>);

impl LabRun<'_> {
    fn say(&self, text: &str) {
        eprintln!("lab  {:>8.3}s  {text}", self.t0.elapsed().as_secs_f64());
    }

    /// `h`'s networks in the box.
    fn net(&self, h: &HostId) -> Result<&HostNet> {
        self.topo
            .as_ref()
            .context("not in the lab in a box")?
            .host(h)
            .with_context(|| format!("no host {h} in the lab"))
    }

    /// The box's state (`cargo xtask lab up`); an error on inventory hosts.
    fn lab(&self) -> Result<&LabState> {
        match self.site {
            Site::Box(lab) => Ok(lab),
            Site::Inventory(_) => bail!("not in the lab in a box"),
        }
    }

    /// Each libvirt holding the hosts' guests, once, not yet opened.
    fn libvirts(&self) -> Libvirts {
        let mut uris: Vec<String> = match self.site {
            Site::Box(lab) => lab.uris(),
            Site::Inventory(i) => self
                .s
                .cluster
                .hosts
                .iter()
                .filter_map(|h| i.inv.host(h.id.as_str()))
                .map(|h| h.libvirt.clone())
                .collect(),
        };
        uris.sort();
        uris.dedup();
        Libvirts {
            conns: uris.into_iter().map(|u| (u, None)).collect(),
        }
    }

    /// The guests' network.
    fn vm_network(&self) -> (std::net::Ipv4Addr, u8) {
        match self.site {
            Site::Box(_) => VM_NET,
            Site::Inventory(i) => i.inv.vm_network(),
        }
    }

    /// The controller's address on the management network, and the lease
    /// service's on the storage network (both on this machine).
    fn service_addresses(&self) -> (std::net::Ipv4Addr, std::net::Ipv4Addr) {
        match self.site {
            Site::Box(_) => (CONTROLLER_IP, STORAGE_SERVICE_IP),
            Site::Inventory(i) => (i.inv.controller, i.inv.lease_service),
        }
    }

    /// Where `h`'s BMC answers IPMI: its `ipmi` address in the cluster.
    fn bmc_address(&self, h: &HostId) -> Result<std::net::Ipv4Addr> {
        self.s
            .cluster
            .hosts
            .iter()
            .find(|x| &x.id == h)
            .map(|x| x.addresses.ipmi)
            .with_context(|| format!("no host {h} in the cluster"))
    }

    fn host_spec(&self, h: &HostId) -> Result<&HostSpec> {
        self.s
            .cluster
            .hosts
            .iter()
            .find(|x| &x.id == h)
            .with_context(|| format!("no host {h} in the cluster"))
    }

    /// The libvirt daemon of box host `h` (see [`LabState::uri_of`]).
    fn box_uri(&self, h: &HostId) -> Result<String> {
        Ok(self.lab()?.uri_of(self.host_spec(h)?).to_string())
    }

    fn driver_for(&self, h: &HostId) -> Result<LibvirtDriver> {
        let net = self.net(h)?;
        let cfg = LabHost {
            host: h.clone(),
            uri: self.box_uri(h)?,
            netns: Some(net.ns.clone()),
            vm_bridge: HOST_VM_BRIDGE.into(),
            bond_members: HostNet::bond_members(),
            guest: GuestImage::in_dir(&self.lab()?.guest_dir),
            domain_type: DomainType::parse(&self.lab()?.domain_type).context("domain_type")?,
            dfs_dir: self.run_dir.join("dfs"),
            lease_service: format!("{STORAGE_SERVICE_IP}:{DFS_PORT}"),
            lease_timeout: Duration::from_secs(2),
            lease_duration_ms: self.s.config.ha.lease_duration_ms,
            run_dir: self.run_dir.join("consoles").join(h.as_str()),
            vm_network: VM_NET,
            guest_memory_cap_mib: 128,
            boot_timeout: Duration::from_secs(60),
            tenant: Some(TenantConfig {
                underlay: HOST_VM_BRIDGE.into(),
                local: net.underlay_ip,
                group: VXLAN_GROUP,
                eip_link: HOST_VM_BRIDGE.into(),
            }),
            // Home VMs are only booted through this driver (the agents'
            // own, with their peers, come from their configs).
            migration_peers: Vec::new(),
        };
        LibvirtDriver::new(cfg, 1).map_err(|e| anyhow::anyhow!("{h}: {e}"))
    }

    fn play(&mut self, cluster_file: &Path) -> Result<()> {
        self.kill_strays();
        self.write_service_configs(cluster_file)?;
        match self.site {
            Site::Box(_) => {
                self.provision()?;
                self.write_box_agent_configs()?;
            }
            Site::Inventory(_) => self.prepare_inventory_hosts(cluster_file)?,
        }
        self.start_dfs()?;
        if matches!(self.site, Site::Box(_)) {
            self.start_bmcs()?;
        }
        self.start_controller()?;
        for h in self
            .s
            .cluster
            .hosts
            .iter()
            .map(|h| h.id.clone())
            .collect::<Vec<_>>()
        {
            self.start_agent(&h)?;
        }
        self.wait_all_up()?;
        self.t0 = Instant::now();
        self.say("every host up: the timeline starts");
        // Every libvirt must answer at the start; later one may not (a
        // physical host's dies with its power) and is opened again.
        let mut libvirts = self.libvirts();
        if let Some(u) = libvirts.read().unreachable.first() {
            bail!("libvirt {u} does not answer: the double-run watch cannot read it");
        }
        let mut timeline: Vec<_> = self.s.timeline.iter().collect();
        timeline.sort_by_key(|t| t.at_ms);
        let mut expects: Vec<_> = self.s.expectations.iter().collect();
        expects.sort_by_key(|e| e.at_ms.unwrap_or(u64::MAX));
        let (mut ti, mut ei) = (0, 0);
        loop {
            let now = self.t0.elapsed().as_millis() as u64;
            if ti < timeline.len() && timeline[ti].at_ms <= now {
                let at = timeline[ti].at_ms;
                let same_instant: Vec<&Action> = timeline[ti..]
                    .iter()
                    .take_while(|t| t.at_ms == at)
                    .map(|t| &t.action)
                    .collect();
                self.crash_together(&same_instant);
            }
            while ti < timeline.len() && timeline[ti].at_ms <= now {
                let t = timeline[ti];
                match self.act(&t.action) {
                    Ok(()) => {}
                    // As in the simulated worlds, a call the controller
                    // refuses is an answer, not a failure: the scenario
                    // judges it (`trace_contains: "api: refused: …"` reads
                    // the controller's log).
                    Err(e) if is_refusal(&e) => {
                        self.say(&format!("line {}: refused: {e:#}", t.line))
                    }
                    Err(e) => self.failures.push(format!("line {}: {e:#}", t.line)),
                }
                ti += 1;
            }
            while ei < expects.len() && expects[ei].at_ms.is_some_and(|a| a <= now) {
                let e = expects[ei];
                if let Err(why) = self.check(&e.check) {
                    self.failures.push(format!("line {}: {why}", e.line));
                }
                ei += 1;
            }
            let read = libvirts.read();
            self.check_no_double_run(&read);
            self.note_recoveries(&read);
            if now >= self.s.end_ms {
                break;
            }
            // Wake for the next step on time, else poll.
            let now = self.t0.elapsed().as_millis() as u64;
            let next = [
                timeline.get(ti).map(|t| t.at_ms),
                expects.get(ei).and_then(|e| e.at_ms),
                Some(self.s.end_ms),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now);
            std::thread::sleep(POLL.min(Duration::from_millis(next.saturating_sub(now))));
        }
        for e in &expects[ei..] {
            if let Err(why) = self.check(&e.check) {
                self.failures.push(format!("line {}: {why}", e.line));
            }
        }
        Ok(())
    }

    /// Whether `h` has power: its agent process is alive (a crash or the
    /// lab BMC's power off killed it; its power on starts a new one).
    /// Waits up to `within` for `h` to be powered on (`on`) or off; false
    /// if it was not by then.
    fn wait_power(&mut self, h: &HostId, on: bool, within: Duration) -> bool {
        let start = Instant::now();
        while self.powered_on(h) != on {
            if start.elapsed() > within {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }

    fn powered_on(&mut self, h: &HostId) -> bool {
        if let Site::Inventory(_) = self.site {
            return self.inventory_agent_alive(h);
        }
        // Reap a runner-started agent that was killed, so it is not a
        // process still.
        if let Some(c) = self.agents.get_mut(h) {
            if !matches!(c.try_wait(), Ok(None)) {
                self.agents.remove(h);
            }
        }
        krrish_lab::power::agent_running(&self.run_dir, h.as_str()).is_some()
    }

    /// `h`'s BMC as an operator reaches it (the cluster's `ipmi` address;
    /// on inventory hosts, the inventory's, which must be the same).
    fn bmc_of(&self, h: &HostId) -> Result<krrish_lab::inventory::Bmc> {
        if let Site::Inventory(i) = self.site {
            return i
                .inv
                .host(h.as_str())
                .map(|x| x.bmc.clone())
                .with_context(|| format!("no host {h} in the inventory"));
        }
        Ok(krrish_lab::inventory::Bmc {
            address: self.bmc_address(h)?,
            port: 623,
            username: daemons::BMC_USER.into(),
            password_file: self.run_dir.join("bmc-password"),
        })
    }

    /// The VMs the controller places on `h` now.
    fn vms_on(&self, h: &HostId) -> Result<Vec<VmId>> {
        let v = self.get("/v1/instances")?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|i| i["host"] == h.as_str())
                    .filter_map(|i| i["id"].as_str().map(VmId::new))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Whether `e` is the controller refusing a call (not a call that could not
/// be made).
fn is_refusal(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::client::CallError>(),
            Some(crate::client::CallError::Refused { .. })
        )
    })
}
