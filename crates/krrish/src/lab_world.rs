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

// Real guests on real time.
#![allow(clippy::disallowed_methods)]

use anyhow::{bail, Context, Result};
use krrish_core::ha::HostVerdict;
use krrish_core::{BondName, HostId, VmId};
use krrish_lab::topology::{CONTROLLER_IP, HOST_VM_BRIDGE, OUTSIDE_NS, VM_NET};
use krrish_lab::{power_off, power_on, HostNet, Topology};
use krrish_libvirt::driver::vm_address;
use krrish_libvirt::names::{domain_name, vm_of_domain};
use krrish_libvirt::{DomainType, GuestImage, Hypervisor, LabHost, LibvirtDriver};
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

/// The controller's agent port and API port on this machine.
const CONTROLLER_PORT: u16 = 7700;
const API_PORT: u16 = 7701;
/// How often the double-run checker and waits poll.
const POLL: Duration = Duration::from_millis(500);
/// Longest wait for every host to be up after the daemons start.
const STARTUP_MAX: Duration = Duration::from_secs(90);
/// A lab holds few TCG guests.
const LAB_VMS_MAX: usize = 8;

/// What `cargo xtask lab up` left in `target/lab/state`.
pub struct LabState {
    pub dir: PathBuf,
    pub uri: String,
    pub guest_dir: PathBuf,
    pub domain_type: String,
}

impl LabState {
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
            guest_dir: PathBuf::from(get("guest_dir")?),
            domain_type: get("domain_type")?,
        })
    }
}

/// Why each part of `s` cannot run in the lab (empty: all of it can).
pub fn unsupported(s: &Scenario) -> Vec<String> {
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
    for t in &s.timeline {
        let ok = match &t.action {
            Action::Fault(f) => matches!(
                f,
                Fault::Crash(_)
                    | Fault::PowerLoss(_)
                    | Fault::Repair(_)
                    | Fault::Partition(_)
                    | Fault::Heal(_)
                    | Fault::BondDown {
                        bond: BondName::Bond0,
                        ..
                    }
                    | Fault::BondUp {
                        bond: BondName::Bond0,
                        ..
                    }
            ),
            Action::Api(r) => matches!(
                r,
                ApiRequest::StopInstance { .. }
                    | ApiRequest::StartInstance { .. }
                    | ApiRequest::RebootInstance { .. }
                    | ApiRequest::TerminateInstance { .. }
            ),
            Action::GuestWrite { .. } => false,
        };
        if !ok {
            why.push(format!(
                "line {}: {:?} (not in the lab's vocabulary yet)",
                t.line, t.action
            ));
        }
    }
    for e in &s.expectations {
        let ok = matches!(
            e.check,
            Check::VmRunsOn { .. }
                | Check::VmState { .. }
                | Check::HostState { .. }
                | Check::TraceContains(_)
                | Check::TraceLacks(_)
                | Check::Converged
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

/// The controller's events file, read back as comparison keys.
fn read_events(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
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

/// Runs `s` in the lab. `exe` is this krrish binary (started as the
/// daemons and as the fence agent).
pub fn run(s: &Scenario, file: &Path, lab: &LabState, exe: &Path) -> Result<LabOutcome> {
    let why = unsupported(s);
    if !why.is_empty() {
        return Ok(LabOutcome::NotRun(why));
    }
    let cluster_file = cluster_file_of(file)?;
    let run_dir = lab.dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let hosts: Vec<HostId> = s.cluster.hosts.iter().map(|h| h.id.clone()).collect();
    std::fs::write(
        run_dir.join("hosts"),
        hosts.iter().map(|h| format!("{h}\n")).collect::<String>(),
    )?;
    let topo = Topology::build(&hosts).context("building the lab's networks")?;
    let mut lab_run = LabRun {
        s,
        lab,
        exe: exe.to_path_buf(),
        run_dir,
        topo,
        controller: None,
        agents: BTreeMap::new(),
        t0: Instant::now(),
        failures: Vec::new(),
        crashes: Vec::new(),
        rtos: Vec::new(),
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
    lab: &'a LabState,
    exe: PathBuf,
    run_dir: PathBuf,
    topo: Topology,
    controller: Option<Child>,
    agents: BTreeMap<HostId, Child>,
    t0: Instant,
    failures: Vec<String>,
    /// (host, when, its VMs then) for the RTO.
    crashes: Vec<(HostId, Instant, Vec<VmId>)>,
    rtos: Vec<(VmId, f64)>,
}

impl LabRun<'_> {
    fn say(&self, text: &str) {
        eprintln!("lab  {:>8.3}s  {text}", self.t0.elapsed().as_secs_f64());
    }

    fn net(&self, h: &HostId) -> Result<&HostNet> {
        self.topo
            .host(h)
            .with_context(|| format!("no host {h} in the lab"))
    }

    fn driver_for(&self, h: &HostId) -> Result<LibvirtDriver> {
        let net = self.net(h)?;
        let cfg = LabHost {
            host: h.clone(),
            uri: self.lab.uri.clone(),
            netns: Some(net.ns.clone()),
            vm_bridge: HOST_VM_BRIDGE.into(),
            bond_members: HostNet::bond_members(),
            guest: GuestImage::in_dir(&self.lab.guest_dir),
            domain_type: DomainType::parse(&self.lab.domain_type).context("domain_type")?,
            dfs_dir: self.run_dir.join("dfs"),
            run_dir: self.run_dir.join("consoles").join(h.as_str()),
            vm_network: VM_NET,
            guest_memory_cap_mib: 128,
            boot_timeout: Duration::from_secs(60),
        };
        LibvirtDriver::new(cfg, 1).map_err(|e| anyhow::anyhow!("{h}: {e}"))
    }

    fn play(&mut self, cluster_file: &Path) -> Result<()> {
        self.provision()?;
        self.write_configs(cluster_file)?;
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
        let hv = Hypervisor::open(&self.lab.uri)?;
        let mut timeline: Vec<_> = self.s.timeline.iter().collect();
        timeline.sort_by_key(|t| t.at_ms);
        let mut expects: Vec<_> = self.s.expectations.iter().collect();
        expects.sort_by_key(|e| e.at_ms.unwrap_or(u64::MAX));
        let (mut ti, mut ei) = (0, 0);
        loop {
            let now = self.t0.elapsed().as_millis() as u64;
            while ti < timeline.len() && timeline[ti].at_ms <= now {
                let t = timeline[ti];
                if let Err(e) = self.act(&t.action) {
                    self.failures.push(format!("line {}: {e:#}", t.line));
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
            self.check_no_double_run(&hv);
            self.note_recoveries(&hv);
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

    /// The cluster's VMs boot on their home hosts before the daemons start
    /// (the controller starts out believing they run there).
    fn provision(&mut self) -> Result<()> {
        use krrish_agent::Driver;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let local = tokio::task::LocalSet::new();
        let mut boots = Vec::new();
        for vm in &self.s.cluster.vms {
            boots.push((vm.clone(), self.driver_for(&vm.home)?));
        }
        let t = Instant::now();
        local.block_on(&rt, async {
            let mut results = Vec::new();
            for (vm, d) in &boots {
                results.push(d.boot_vm(vm, krrish_core::ha::BootReason::Create).await);
            }
            for ((vm, _), r) in boots.iter().zip(results) {
                r.map_err(|e| anyhow::anyhow!("booting {} on {}: {e}", vm.id, vm.home))?;
            }
            anyhow::Ok(())
        })?;
        self.say(&format!(
            "{} home VMs booted in {:.1} s",
            boots.len(),
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    fn write_configs(&self, cluster_file: &Path) -> Result<()> {
        let ha = &self.s.config.ha;
        let d = &self.run_dir;
        std::fs::write(d.join("api-token"), "lab-token-not-secret\n")?;
        let timings = format!(
            "timings:\n  heartbeat_interval: {}ms\n  heartbeat_misses: {}\n  heartbeat_grace: {}ms\n  fence_timeout: {}ms\n  lease_duration: {}ms\n",
            ha.heartbeat.interval_ms,
            ha.heartbeat.misses_max,
            ha.heartbeat.grace_ms,
            ha.fence_timeout_ms,
            ha.lease_duration_ms,
        );
        let controller = format!(
            "listen: {CONTROLLER_IP}:{CONTROLLER_PORT}\nstore: {store}\ncluster_file: {cluster}\nevents_file: events.jsonl\n{timings}fencer:\n  kind: command\n  command: [{exe}, lab-fence, --run-dir, {run}]\napi:\n  listen: 127.0.0.1:{API_PORT}\n  token_file: api-token\n",
            store = d.join("controller.redb").display(),
            cluster = cluster_file.display(),
            exe = yaml_str(&self.exe.display().to_string()),
            run = yaml_str(&d.display().to_string()),
        );
        std::fs::write(d.join("controller.yaml"), controller)?;
        for h in &self.s.cluster.hosts {
            let net = self.net(&h.id)?;
            let agent = format!(
                "host: {host}\ncontroller: {CONTROLLER_IP}:{CONTROLLER_PORT}\npid_file: {pid}\ntimings:\n  heartbeat_interval: {hb}ms\n  lease_duration: {lease}ms\ndriver:\n  kind: libvirt\n  uri: {uri}\n  netns: {ns}\n  vm_bridge: {HOST_VM_BRIDGE}\n  guest_dir: {guest}\n  domain_type: {dt}\n  dfs_dir: {dfs}\n  run_dir: {cons}\n  vm_network: {net}/{len}\n",
                host = h.id,
                pid = krrish_lab::power::agent_pid_file(d, h.id.as_str()).display(),
                hb = ha.heartbeat.interval_ms,
                lease = ha.lease_duration_ms,
                uri = self.lab.uri,
                ns = net.ns,
                guest = self.lab.guest_dir.display(),
                dt = self.lab.domain_type,
                dfs = d.join("dfs").display(),
                cons = d.join("consoles").join(h.id.as_str()).display(),
                net = VM_NET.0,
                len = VM_NET.1,
            );
            std::fs::write(d.join(format!("agent-{}.yaml", h.id)), agent)?;
        }
        Ok(())
    }

    fn log_file(&self, name: &str) -> Result<std::fs::File> {
        Ok(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.run_dir.join(format!("{name}.log")))?)
    }

    fn start_controller(&mut self) -> Result<()> {
        let log = self.log_file("controller")?;
        let child = Command::new(&self.exe)
            .arg("controller")
            .arg("--config")
            .arg(self.run_dir.join("controller.yaml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting the controller")?;
        self.controller = Some(child);
        Ok(())
    }

    fn start_agent(&mut self, h: &HostId) -> Result<()> {
        let ns = self.net(h)?.ns.clone();
        let log = self.log_file(&format!("agent-{h}"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&self.exe)
            .arg("agent")
            .arg("--config")
            .arg(self.run_dir.join(format!("agent-{h}.yaml")))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {h}'s agent"))?;
        if let Some(mut old) = self.agents.insert(h.clone(), child) {
            let _ = old.wait();
        }
        Ok(())
    }

    fn api(&self) -> Result<crate::client::Endpoint> {
        crate::client::Endpoint::new(&crate::client::ApiOpts {
            endpoint: format!("http://127.0.0.1:{API_PORT}"),
            token_file: Some(self.run_dir.join("api-token")),
            output: crate::client::Output::Json,
        })
        .map_err(|e| anyhow::anyhow!(e))
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.api()?
            .call(path, &[], None)
            .map_err(|e| anyhow::anyhow!("GET {path}: {e}"))
    }

    fn wait_all_up(&self) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(Value::Array(hosts)) = self.get("/v1/hosts") {
                if !hosts.is_empty() && hosts.iter().all(|h| h["state"] == "up") {
                    return Ok(());
                }
            }
            if start.elapsed() > STARTUP_MAX {
                bail!(
                    "not every host was up {} s after the daemons started (logs in {})",
                    STARTUP_MAX.as_secs(),
                    self.run_dir.display()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn act(&mut self, a: &Action) -> Result<()> {
        self.say(&format!("{a:?}"));
        match a {
            Action::Fault(Fault::Crash(h)) | Action::Fault(Fault::PowerLoss(h)) => {
                let vms = self.vms_on(h)?;
                let at = Instant::now();
                power_off(&self.run_dir, &self.lab.uri, self.net(h)?)?;
                self.agents.remove(h).map(|mut c| c.wait());
                self.crashes.push((h.clone(), at, vms));
                Ok(())
            }
            Action::Fault(Fault::Repair(h)) => {
                power_on(self.net(h)?)?;
                self.start_agent(h)
            }
            Action::Fault(Fault::Partition(h)) | Action::Fault(Fault::BondDown { host: h, .. }) => {
                Ok(Topology::set_links(self.net(h)?.mgmt_root.to_vec(), false)?)
            }
            Action::Fault(Fault::Heal(h)) | Action::Fault(Fault::BondUp { host: h, .. }) => {
                // A host that is off (crashed, or fenced by its BMC while
                // cut off) stays silent: its links come back with power.
                if !self.powered_on(h) {
                    self.say(&format!(
                        "{h} is powered off: its links stay down until repair"
                    ));
                    return Ok(());
                }
                Ok(Topology::set_links(self.net(h)?.mgmt_root.to_vec(), true)?)
            }
            Action::Api(r) => {
                let api = self.api()?;
                let r = match r {
                    ApiRequest::StopInstance { vm } => {
                        api.call(&format!("/v1/instances/{vm}/stop"), &[], Some(json!({})))
                    }
                    ApiRequest::StartInstance { vm } => {
                        api.call(&format!("/v1/instances/{vm}/start"), &[], Some(json!({})))
                    }
                    ApiRequest::RebootInstance { vm } => {
                        api.call(&format!("/v1/instances/{vm}/reboot"), &[], Some(json!({})))
                    }
                    ApiRequest::TerminateInstance { vm } => {
                        api.delete(&format!("/v1/instances/{vm}"))
                    }
                    other => bail!("{other:?} is not in the lab's vocabulary"),
                };
                r.map(drop).map_err(|e| anyhow::anyhow!("{e}"))
            }
            other => bail!("{other:?} is not in the lab's vocabulary"),
        }
    }

    /// Whether `h` has power: its agent process is alive (a crash or the
    /// lab BMC's fence killed it; a repair starts a new one).
    fn powered_on(&mut self, h: &HostId) -> bool {
        match self.agents.get_mut(h) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
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

    /// Where libvirt runs each VM now: host(s) by VM.
    fn real_placements(&self, hv: &Hypervisor) -> BTreeMap<VmId, Vec<HostId>> {
        let mut out: BTreeMap<VmId, Vec<HostId>> = BTreeMap::new();
        for d in hv.active_names().unwrap_or_default() {
            for h in &self.topo.hosts {
                if let Some(vm) = vm_of_domain(&h.host, &d) {
                    out.entry(vm).or_default().push(h.host.clone());
                }
            }
        }
        out
    }

    fn check_no_double_run(&mut self, hv: &Hypervisor) {
        for (vm, hosts) in self.real_placements(hv) {
            if hosts.len() > 1 {
                let f = format!(
                    "{vm} runs on {} hosts at once: {:?} (at {:.1} s)",
                    hosts.len(),
                    hosts,
                    self.t0.elapsed().as_secs_f64()
                );
                if !self.failures.contains(&f) {
                    self.say(&f);
                    self.failures.push(f);
                }
            }
        }
    }

    /// Records the real RTO of a crashed host's VMs: crash to running
    /// elsewhere (per libvirt) and answering ping.
    fn note_recoveries(&mut self, hv: &Hypervisor) {
        let placed = self.real_placements(hv);
        let mut found = Vec::new();
        for (host, at, vms) in &self.crashes {
            for vm in vms {
                if self.rtos.iter().any(|(v, _)| v == vm) {
                    continue;
                }
                let elsewhere = placed
                    .get(vm)
                    .is_some_and(|hs| hs.iter().any(|h| h != host));
                if elsewhere && ping_within(vm_address(VM_NET, vm), PROBE_WAIT) {
                    found.push((vm.clone(), at.elapsed().as_secs_f64()));
                }
            }
        }
        // A VM caught by two crashes (its host's, then the spare's it was
        // booting on) is timed from the first.
        found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        found.dedup_by(|a, b| a.0 == b.0);
        for (vm, rto) in found {
            self.say(&format!(
                "{vm} back after its host's crash: real RTO {rto:.1} s"
            ));
            self.rtos.push((vm, rto));
        }
    }

    fn trace_text(&self) -> String {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(&self.run_dir) {
            let mut logs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for l in logs {
                text.push_str(&std::fs::read_to_string(l).unwrap_or_default());
            }
        }
        text
    }

    fn check(&self, c: &Check) -> Result<(), String> {
        let instance = |vm: &VmId| -> Result<Value, String> {
            self.get(&format!("/v1/instances/{vm}"))
                .map_err(|e| e.to_string())
        };
        match c {
            Check::VmRunsOn { vm, host } => {
                if host.is_none() {
                    // Nowhere: not running by the controller (a terminated
                    // VM is not known at all) and no domain in libvirt.
                    let hv = Hypervisor::open(&self.lab.uri).map_err(|e| e.to_string())?;
                    if let Some(hosts) = self.real_placements(&hv).get(vm) {
                        return Err(format!(
                            "{vm}: expected nowhere, libvirt runs it on {hosts:?}"
                        ));
                    }
                    return match self.get(&format!("/v1/instances/{vm}")) {
                        Ok(v) if v["state"] == "running" => Err(format!(
                            "{vm}: expected nowhere, the controller says running on {}",
                            v["host"]
                        )),
                        Ok(_) => Ok(()),
                        Err(e) if e.to_string().contains("no-such-vm") => Ok(()),
                        Err(e) => Err(e.to_string()),
                    };
                }
                let v = instance(vm)?;
                let (state, at) = (v["state"].as_str().unwrap_or("?"), v["host"].as_str());
                match host {
                    None => Ok(()),
                    Some(h) => {
                        if state != "running" || at != Some(h.as_str()) {
                            return Err(format!("{vm}: expected running on {h}, the controller says {state} on {at:?}"));
                        }
                        let hv = Hypervisor::open(&self.lab.uri).map_err(|e| e.to_string())?;
                        let name = domain_name(h, vm)?;
                        if !hv.is_active(&name).map_err(|e| e.to_string())? {
                            return Err(format!("{vm}: the controller says running on {h}, but libvirt runs no {name}"));
                        }
                        let ip = vm_address(VM_NET, vm);
                        if !ping(ip) {
                            return Err(format!(
                                "{vm}: runs on {h} but does not answer ping at {ip}"
                            ));
                        }
                        Ok(())
                    }
                }
            }
            Check::VmState { vm, state } => {
                let v = instance(vm)?;
                if v["state"] != *state {
                    return Err(format!(
                        "{vm}: expected {state}, the controller says {}",
                        v["state"]
                    ));
                }
                Ok(())
            }
            Check::HostState { host, state } => {
                let hosts = self.get("/v1/hosts").map_err(|e| e.to_string())?;
                let got = hosts
                    .as_array()
                    .and_then(|a| a.iter().find(|h| h["id"] == host.as_str()))
                    .map(|h| h["state"].clone())
                    .unwrap_or(Value::Null);
                if got != HostVerdict::name(*state) {
                    return Err(format!(
                        "{host}: expected {state}, the controller says {got}"
                    ));
                }
                Ok(())
            }
            Check::TraceContains(t) => {
                if self.trace_text().contains(t.as_str()) {
                    Ok(())
                } else {
                    Err(format!("the daemons' logs lack {t:?}"))
                }
            }
            Check::TraceLacks(t) => {
                if self.trace_text().contains(t.as_str()) {
                    Err(format!("the daemons' logs contain {t:?}"))
                } else {
                    Ok(())
                }
            }
            Check::Converged => {
                let all = self.get("/v1/instances").map_err(|e| e.to_string())?;
                let hv = Hypervisor::open(&self.lab.uri).map_err(|e| e.to_string())?;
                let placed = self.real_placements(&hv);
                for i in all.as_array().cloned().unwrap_or_default() {
                    let vm = VmId::new(i["id"].as_str().unwrap_or("?"));
                    if i["state"] != "running" {
                        return Err(format!("{vm} is {} (not converged)", i["state"]));
                    }
                    let h = HostId::new(i["host"].as_str().unwrap_or("?"));
                    if placed.get(&vm) != Some(&vec![h.clone()]) {
                        return Err(format!(
                            "{vm}: the controller says {h}, libvirt runs it on {:?}",
                            placed.get(&vm)
                        ));
                    }
                }
                Ok(())
            }
            other => Err(format!("{other:?} is not checked in the lab")),
        }
    }

    /// Stops the daemons, destroys every guest, removes the networks.
    fn stop_everything(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.agents) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(hv) = Hypervisor::open(&self.lab.uri) {
            for d in hv.active_names().unwrap_or_default() {
                if d.starts_with(krrish_libvirt::names::DOMAIN_PREFIX) {
                    let _ = hv.destroy(&d);
                }
            }
        }
        if let Err(e) = self.topo.teardown() {
            eprintln!("lab: removing the networks failed: {e}");
        }
    }
}

/// One ping from the outside namespace; true if answered within 2 s.
fn ping(ip: std::net::Ipv4Addr) -> bool {
    ping_within(ip, "2")
}

/// How long a recovery probe waits for its answer: short, so probing a VM
/// still booting does not hold the timeline up (seconds, as ping's `-W`
/// takes them).
const PROBE_WAIT: &str = "0.2";

fn ping_within(ip: std::net::Ipv4Addr, wait_s: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", OUTSIDE_NS, "ping", "-c", "1", "-W", wait_s])
        .arg(ip.to_string())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A YAML flow-sequence item, quoted.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `krrish lab-fence --run-dir DIR`: the controller's fence agent in the
/// lab. It powers off `KRRISH_FENCE_HOST` as its BMC would (agent killed,
/// guests destroyed, links down); exit 0 = confirmed off.
pub fn fence(run_dir: &Path) -> Result<()> {
    let host = std::env::var("KRRISH_FENCE_HOST").context("KRRISH_FENCE_HOST is not set")?;
    let action = std::env::var("KRRISH_FENCE_ACTION").unwrap_or_else(|_| "off".into());
    let hosts = std::fs::read_to_string(run_dir.join("hosts"))
        .with_context(|| format!("{}/hosts", run_dir.display()))?;
    let index = hosts
        .lines()
        .position(|l| l == host)
        .with_context(|| format!("no lab host {host}"))?;
    let net = HostNet::new(index, &HostId::new(&host))?;
    let state = LabState::load(run_dir.parent().context("run dir has a parent")?)?;
    power_off(run_dir, &state.uri, &net)?;
    eprintln!("lab BMC: {host} powered off (action {action}; the lab powers on only on repair)");
    Ok(())
}
