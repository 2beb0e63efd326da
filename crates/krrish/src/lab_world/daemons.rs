//! Starting and stopping what a lab run needs: the home VMs, the daemons'
//! configs and processes, the API client, and the teardown.

use super::*;

/// The BMC emulator (run with the venv Python `cargo xtask lab up` made).
pub(super) const BMC_SCRIPT: &str = include_str!("../../../krrish-lab/bmc/lab_bmc.py");
/// The lab BMCs' user.
pub(super) const BMC_USER: &str = "admin";

impl LabRun<'_> {
    /// The cluster's VMs boot on their home hosts before the daemons start
    /// (the controller starts out believing they run there).
    pub(super) fn provision(&mut self) -> Result<()> {
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
                results.push(
                    d.boot_vm(vm, krrish_core::ha::BootReason::Create, &Default::default())
                        .await,
                );
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

    /// The configs of what this machine runs: the lease service and the
    /// controller (its fencer: IPMI to the BMCs, the box's emulated ones
    /// or the inventory's).
    pub(super) fn write_service_configs(&self, cluster_file: &Path) -> Result<()> {
        let ha = &self.s.config.ha;
        let d = &self.run_dir;
        let (controller_ip, lease_ip) = self.service_addresses();
        std::fs::write(d.join("api-token"), "lab-token-not-secret\n")?;
        let timings = format!(
            "timings:\n  heartbeat_interval: {}ms\n  heartbeat_misses: {}\n  heartbeat_grace: {}ms\n  fence_timeout: {}ms\n  lease_duration: {}ms\n",
            ha.heartbeat.interval_ms,
            ha.heartbeat.misses_max,
            ha.heartbeat.grace_ms,
            ha.fence_timeout_ms,
            ha.lease_duration_ms,
        );
        std::fs::write(
            d.join("dfs.yaml"),
            format!(
                "listen: {lease_ip}:{DFS_PORT}\nstore: dfs-leases.redb\nmax_lease: {}ms\n",
                // Exactly what the agents ask for: a revocation right
                // after the service's start waits no longer than a lease.
                ha.lease_duration_ms
            ),
        )?;
        let bmc = match self.site {
            Site::Box(_) => krrish_lab::inventory::Bmc {
                address: std::net::Ipv4Addr::UNSPECIFIED,
                port: 623,
                username: BMC_USER.into(),
                password_file: d.join("bmc-password"),
            },
            // One user, password and port for all (checked before the run).
            Site::Inventory(_) => self.bmc_of(&self.s.cluster.hosts[0].id)?,
        };
        let controller = format!(
            "listen: {controller_ip}:{CONTROLLER_PORT}\nstore: {store}\ncluster_file: {cluster}\nevents_file: events.jsonl\n{timings}fencer:\n  kind: ipmi\n  username: {user}\n  password_file: {pw}\n  port: {port}\napi:\n  listen: 127.0.0.1:{API_PORT}\n  token_file: api-token\ndfs:\n  lease_service: {lease_ip}:{DFS_PORT}\n",
            store = d.join("controller.redb").display(),
            cluster = cluster_file.display(),
            user = bmc.username,
            pw = bmc.password_file.display(),
            port = bmc.port,
        );
        std::fs::write(d.join("controller.yaml"), controller)
            .context("writing the controller's config")
    }

    /// The box's agent configs, beside the rest of the run's files: the
    /// box's hosts described as an inventory, each host's config from it
    /// as an inventory host's is (so both paths run the same agents).
    pub(super) fn write_box_agent_configs(&self) -> Result<()> {
        let lab = self.lab()?;
        let exe = std::env::current_exe().context("this krrish binary")?;
        let d = &self.run_dir;
        let mut hosts = Vec::new();
        for h in &self.s.cluster.hosts {
            hosts.push(box_hosts::box_host(lab, &exe, d, h, self.net(&h.id)?));
        }
        let inv = box_hosts::box_inventory(lab, d, hosts);
        for x in &inv.hosts {
            let text = inventory::agent_config(&inv, x, &self.s.config.ha);
            std::fs::write(d.join(format!("agent-{}.yaml", x.id)), text)?;
        }
        Ok(())
    }

    pub(super) fn log_file(&self, name: &str) -> Result<std::fs::File> {
        Ok(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.run_dir.join(format!("{name}.log")))?)
    }

    /// The hosts' BMCs: IPMI over LAN on each host's `ipmi` address (the
    /// OGW bridge holds them), served by the pyghmi emulator of
    /// `crates/krrish-lab/bmc/lab_bmc.py`; power off is `krrish lab-fence`.
    /// Daemons an aborted run left behind (their command lines name this
    /// run directory) would hold its ports: they go first.
    pub(super) fn kill_strays(&self) {
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(format!("{}/", self.run_dir.display()))
            .status();
    }

    pub(super) fn start_bmcs(&mut self) -> Result<()> {
        let d = &self.run_dir;
        std::fs::write(d.join("lab_bmc.py"), BMC_SCRIPT)?;
        std::fs::write(d.join("bmc-password"), "lab-bmc-not-secret\n")?;
        let bmc_python = self.lab()?.bmc_python.clone();
        let mut c = dies_with_the_runner(&bmc_python);
        c.arg(d.join("lab_bmc.py"))
            .arg("--krrish")
            .arg(&self.exe)
            .arg("--run-dir")
            .arg(d)
            .args(["--user", BMC_USER, "--password-file"])
            .arg(d.join("bmc-password"));
        for h in &self.s.cluster.hosts {
            let ip = h.addresses.ipmi;
            Topology::set_bmc_address(ip, true)?;
            c.arg(format!("{}={ip}", h.id));
        }
        let child = c
            .stdout(std::fs::File::create(d.join("bmc.out"))?)
            .stderr(self.log_file("bmc")?)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting the BMC emulator with {}", bmc_python.display()))?;
        self.bmc = Some(child);
        let start = Instant::now();
        loop {
            let out = std::fs::read_to_string(d.join("bmc.out")).unwrap_or_default();
            if out.lines().any(|l| l == "ready") {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.bmc.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(d.join("bmc.log")).unwrap_or_default();
                bail!(
                    "the BMC emulator stopped at start ({status}): {}",
                    log.trim()
                );
            }
            if start.elapsed() > STARTUP_MAX {
                bail!(
                    "the BMC emulator was not ready in {} s",
                    STARTUP_MAX.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The DFS's lease service, on the storage bridge (before the
    /// controller and agents, which call it).
    pub(super) fn start_dfs(&mut self) -> Result<()> {
        let log = self.log_file("dfs")?;
        let child = dies_with_the_runner(&self.exe)
            .arg("dfs")
            .arg("--config")
            .arg(self.run_dir.join("dfs.yaml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting the DFS lease service")?;
        self.dfs = Some(child);
        let client = krrish_dfs::LeaseClient::new(
            &format!("{}:{DFS_PORT}", self.service_addresses().1),
            Duration::from_secs(1),
        );
        let start = Instant::now();
        while let Err(e) = client.renewals() {
            if start.elapsed() > STARTUP_MAX {
                bail!(
                    "the DFS lease service did not answer: {e} (log in {})",
                    self.run_dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub(super) fn start_controller(&mut self) -> Result<()> {
        let log = self.log_file("controller")?;
        let child = dies_with_the_runner(&self.exe)
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

    pub(super) fn start_agent(&mut self, h: &HostId) -> Result<()> {
        if let Site::Inventory(_) = self.site {
            return self.start_inventory_agent(h);
        }
        let child = spawn_agent(&self.exe, &self.run_dir, self.net(h)?)?;
        if let Some(mut old) = self.agents.insert(h.clone(), child) {
            let _ = old.wait();
        }
        Ok(())
    }

    pub(super) fn api(&self) -> Result<crate::client::Endpoint> {
        crate::client::Endpoint::new(&crate::client::ApiOpts {
            endpoint: format!("http://127.0.0.1:{API_PORT}"),
            token_file: Some(self.run_dir.join("api-token")),
            output: crate::client::Output::Json,
        })
        .map_err(|e| anyhow::anyhow!(e))
    }

    pub(super) fn get(&self, path: &str) -> Result<Value> {
        self.api()?
            .call(path, &[], None)
            .map_err(|e| anyhow::anyhow!("GET {path}: {e}"))
    }

    pub(super) fn wait_all_up(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            // A daemon that stopped at start (a bad config) fails the run
            // now, with its own words.
            let mut gone: Vec<String> = Vec::new();
            for (h, c) in self.agents.iter_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    gone.push(format!("agent-{h} ({status})"));
                }
            }
            for (name, c) in [("controller", &mut self.controller), ("dfs", &mut self.dfs)] {
                if let Some(Ok(Some(status))) = c.as_mut().map(Child::try_wait) {
                    gone.push(format!("{name} ({status})"));
                }
            }
            if let Some(first) = gone.first() {
                let name = first.split(' ').next().unwrap_or_default();
                let log = std::fs::read_to_string(self.run_dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                bail!(
                    "{} stopped at start: {}",
                    gone.join(", "),
                    log.lines().last().unwrap_or("(no log)")
                );
            }
            // Up by the controller (which starts out believing every
            // host up) and heard from: each agent's connection is in its
            // log.
            let log =
                std::fs::read_to_string(self.run_dir.join("controller.log")).unwrap_or_default();
            let heard = |h: &HostId| log.contains(&format!("agent {h} connected"));
            let silent: Vec<&HostId> = self
                .s
                .cluster
                .hosts
                .iter()
                .map(|h| &h.id)
                .filter(|h| !heard(h))
                .collect();
            if let Ok(Value::Array(hosts)) = self.get("/v1/hosts") {
                if silent.is_empty()
                    && !hosts.is_empty()
                    && hosts.iter().all(|h| h["state"] == "up")
                {
                    return Ok(());
                }
            }
            if start.elapsed() > STARTUP_MAX && !silent.is_empty() {
                bail!(
                    "no agent connected from {} {} s after the daemons started (logs in {}{})",
                    silent
                        .iter()
                        .map(|h| h.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    STARTUP_MAX.as_secs(),
                    self.run_dir.display(),
                    match self.site {
                        Site::Box(_) => String::new(),
                        Site::Inventory(i) =>
                            format!("; each agent's in {} on its host", i.inv.run_dir.display()),
                    }
                );
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

    /// Stops the daemons, destroys every guest, removes the networks.
    pub(super) fn stop_everything(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.agents) {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Agents a BMC powered on are not the runner's children.
        if let Site::Box(_) = self.site {
            for h in &self.s.cluster.hosts {
                krrish_lab::power::kill_agent(&self.run_dir, h.id.as_str());
            }
        }
        for mut c in [self.controller.take(), self.dfs.take(), self.bmc.take()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        match self.site {
            Site::Box(lab) => {
                for uri in lab.uris() {
                    let Ok(hv) = Hypervisor::open(&uri) else {
                        continue;
                    };
                    for d in hv.active_names().unwrap_or_default() {
                        if d.starts_with(krrish_libvirt::names::DOMAIN_PREFIX) {
                            let _ = hv.destroy(&d);
                        }
                    }
                }
            }
            Site::Inventory(_) => self.stop_inventory_hosts(),
        }
        if let Some(topo) = &self.topo {
            if let Err(e) = topo.teardown() {
                eprintln!("lab: removing the networks failed: {e}");
            }
        }
    }
}

/// `program`, to be killed when the runner dies however it dies (Ctrl-C,
/// SIGKILL): a controller left running would go on fencing hosts with
/// nobody watching. util-linux's `setpriv` sets Linux's parent-death
/// signal and execs it (the same process: its parent is the runner).
fn dies_with_the_runner(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--pdeathsig", "KILL", "--"]).arg(program);
    c
}

/// Starts the agent of the lab host `net` in its namespace with its config
/// from `run_dir` (`agent-HOST.yaml`, which names its pid file), its output
/// appended to `agent-HOST.log` there. Used by the runner at the start and
/// by the lab BMC's power on (then the agent outlives the BMC's call).
pub(super) fn spawn_agent(exe: &Path, run_dir: &Path, net: &HostNet) -> Result<Child> {
    let h = &net.host;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join(format!("agent-{h}.log")))?;
    net.netns()?
        .command(exe)
        .arg("agent")
        .arg("--config")
        .arg(run_dir.join(format!("agent-{h}.yaml")))
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {h}'s agent"))
}
