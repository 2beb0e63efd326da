//! `--world lab --inventory FILE`: the lab's run on an inventory's hosts.
//! The inventory is read and checked whole (every error names the file,
//! line and field) and the hosts are checked as an operator would before a
//! run (krrish-lab's preflight). Then each scenario runs as in the box —
//! the same controller and lease service on this machine, one agent per
//! host, real time — with what differs here:
//!
//! - each host is reached through its `run`: the cluster file and its
//!   agent config are written there (under `run_dir`), its home VMs booted
//!   by `krrish lab-boot-home`, its agent started detached (pid file in
//!   `run_dir`) and watched and killed through the pid file;
//! - a crash is `chassis power off` to its BMC, a repair `power on`, then
//!   the runner waits for the host to answer and starts its agent unless
//!   it runs (a box's emulated BMC starts it itself);
//! - cuts and bond faults are the inventory's switch-side commands, run on
//!   this machine; a repair also mends what is still cut (as in the box);
//! - the double-run watch and `vm_runs_on` read each host's libvirt, and
//!   guests are pinged through the inventory's `ping_from`.
//!
//! What cannot be played or checked there makes the scenario NOT RUN with
//! the reasons ([`unsupported`]), never passed.

use super::{LabRun, CONTROLLER_PORT, DFS_PORT, POWER_ON_MAX, VXLAN_GROUP};
use anyhow::{bail, Context, Result};
use krrish_core::ha::HaConfig;
use krrish_core::HostId;
use krrish_lab::inventory::{Inventory, InventoryHost, BOND_ROLES};
use krrish_lab::power::agent_pid_file;
use krrish_lab::preflight::{preflight, Outcome};
use krrish_lab::remote::Remote;
use krrish_scenario::expect::Check;
use krrish_scenario::load::Action;
use krrish_scenario::Scenario;
use krrish_sim::Fault;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One short call to a host (a pid check, a file, a kill).
const CALL_MAX: Duration = Duration::from_secs(20);
/// Booting a host's home VMs (TCG guests boot slowly).
const BOOT_HOME_MAX: Duration = Duration::from_secs(300);
/// A physical host's boot after its BMC powered it on.
const HOST_BOOT_MAX: Duration = Duration::from_secs(600);
/// A switch-side fault command.
const FAULT_COMMAND_MAX: Duration = Duration::from_secs(30);

/// A checked inventory and where this machine keeps a run's own files.
pub struct InventorySite {
    pub inv: Inventory,
    pub local_dir: PathBuf,
    /// Preflight checks that failed: then nothing runs on the hosts.
    pub preflight_failed: usize,
}

/// Reads and checks `file` (an error says what is wrong), then checks its
/// hosts, printing each finding; with any failed, no scenario runs there.
pub fn load_inventory_site(file: &Path) -> Result<InventorySite> {
    let inv = Inventory::load(file).map_err(|e| anyhow::anyhow!("inventory {e}"))?;
    out!(
        "preflight of {} hosts from {}:",
        inv.hosts.len(),
        file.display()
    );
    let findings = preflight(&inv);
    for f in &findings {
        out!("  {f}");
    }
    let count = |p: fn(&Outcome) -> bool| findings.iter().filter(|f| p(&f.outcome)).count();
    let (ok, failed, unchecked) = (
        count(|o| matches!(o, Outcome::Passed(_))),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::NotChecked(_))),
    );
    out!("preflight: {ok} passed, {failed} failed, {unchecked} not checked");
    Ok(InventorySite {
        inv,
        local_dir: PathBuf::from("target/lab/inventory-run"),
        preflight_failed: failed,
    })
}

/// Why `s` cannot run on `inv`'s hosts (beyond the box's vocabulary): its
/// hosts missing, BMCs the controller would not reach, timeline steps with
/// no command, and what only the box can do or check.
pub fn unsupported(s: &Scenario, inv: &Inventory) -> Vec<String> {
    let mut why = Vec::new();
    let missing: Vec<&str> = s
        .cluster
        .hosts
        .iter()
        .map(|h| h.id.as_str())
        .filter(|h| inv.host(h).is_none())
        .collect();
    if !missing.is_empty() {
        why.push(format!(
            "its cluster's hosts not in the inventory: {}",
            missing.join(", ")
        ));
    }
    // The controller fences at the cluster's `ipmi` addresses with one
    // user, password and port.
    let mut first: Option<(&str, &krrish_lab::inventory::Bmc)> = None;
    for spec in &s.cluster.hosts {
        let Some(h) = inv.host(spec.id.as_str()) else {
            continue;
        };
        if h.bmc.address != spec.addresses.ipmi {
            why.push(format!(
                "{}: the cluster's ipmi address is {}, its BMC in the inventory is {}: the controller fences at the cluster's (give the host `ipmi_ip: {}` in the cluster file)",
                h.id, spec.addresses.ipmi, h.bmc.address, h.bmc.address
            ));
        }
        match first {
            None => first = Some((&h.id, &h.bmc)),
            Some((id, b)) => {
                if (&b.username, &b.password_file, b.port)
                    != (&h.bmc.username, &h.bmc.password_file, h.bmc.port)
                {
                    why.push(format!(
                        "{}: its BMC's username, password_file or port differ from {id}'s: the controller's fencer takes one",
                        h.id
                    ));
                }
            }
        }
    }
    why.extend(needs(s, inv));
    for e in &s.expectations {
        // Guests' consoles, command ports and disks are read on the hosts
        // through their `run`; pings from outside need `ping_from`.
        let from_outside = matches!(
            &e.check,
            Check::Ping { from, .. } if !matches!(from, krrish_cloud::network::dataplane::Source::Vm(_))
        );
        if from_outside && inv.ping_from.is_none() {
            why.push(format!(
                "line {}: a ping from outside the hosts: the inventory gives no `ping_from`",
                e.line
            ));
        }
        if matches!(e.check, Check::VmRunsOn { host: Some(_), .. }) && inv.ping_from.is_none() {
            why.push(format!(
                "line {}: vm_runs_on also means the guest answers ping: the inventory gives no `ping_from`",
                e.line
            ));
        }
    }
    why
}

/// The timeline steps of `s` that `inv` gives no way to play on a host in
/// it: a cut or a bond fault needs the host's `faults.*` command (and its
/// undoing pair, which the inventory's check makes sure of). Crashes and
/// repairs go through the host's BMC, which every host has.
pub fn needs(s: &Scenario, inv: &Inventory) -> Vec<String> {
    let mut out = Vec::new();
    for t in &s.timeline {
        let Action::Fault(f) = &t.action else {
            continue;
        };
        let bond_field = |name: &str, bond: &krrish_core::BondName| {
            format!("faults.{name}.{}", BOND_ROLES[bond.index()])
        };
        let (host, field) = match f {
            Fault::Partition(h) => (h, "faults.partition".to_string()),
            Fault::Heal(h) => (h, "faults.heal".to_string()),
            Fault::BondDown { host, bond } => (host, bond_field("bond_down", bond)),
            Fault::BondUp { host, bond } => (host, bond_field("bond_up", bond)),
            // The BMC goes dark with the host (paired with `bmc_up`).
            Fault::PowerLoss(h) | Fault::BmcDown(h) => (h, "faults.bmc_down".to_string()),
            Fault::BmcUp(h) => (h, "faults.bmc_up".to_string()),
            _ => continue,
        };
        // A host not in the inventory is reported once, above.
        let given = inv
            .host(host.as_str())
            .map(|x| x.faults.all().iter().any(|(f, _)| *f == field));
        if given == Some(false) {
            out.push(no_command(t.line, host, &field));
        }
    }
    out
}

/// The agent config of inventory host `h` for a run with `ha`'s timings:
/// its local libvirt, the inventory's links, bonds and directories, the
/// controller and lease service this machine runs. Written as YAML by a
/// serializer from the checked inventory, so no value can add a field.
pub fn agent_config(inv: &Inventory, h: &InventoryHost, ha: &HaConfig) -> String {
    let run_dir = &inv.run_dir;
    let [management, vm, storage] = h.bonds.in_order();
    let mut driver = json!({
        "kind": "libvirt",
        // The agent runs on the host: its own libvirt.
        "uri": "qemu:///system",
        "vm_bridge": h.vm_bridge,
        "guest_dir": inv.guest_dir,
        "domain_type": inv.domain_type,
        "dfs_dir": inv.dfs_dir,
        "run_dir": run_dir.join("consoles").join(&h.id),
        "tenant_network": {
            "underlay": h.vm_bridge,
            "local": h.underlay.to_string(),
            "group": VXLAN_GROUP.to_string(),
        },
        "bond_members": { "management": management, "vm": vm, "storage": storage },
        "vm_network": inv.vm_network,
    });
    if let Some(ns) = &h.netns {
        driver["netns"] = json!(ns);
        // A host that is a namespace of this machine (the box described
        // as an inventory) uses the libvirt this machine reaches it by —
        // the box's spares run on its second daemon.
        driver["uri"] = json!(h.libvirt);
    }
    // Its migration peers: the hosts whose `migration` says how to reach
    // them, and — in the box — the namespace hosts on another libvirt
    // daemon than its own. Without any, live migration answers "not
    // supported" and failback goes cold.
    let peers: Vec<serde_json::Value> = inv
        .hosts
        .iter()
        .filter(|o| o.id != h.id)
        .filter_map(|o| {
            let (uri, address) = match &o.migration {
                Some(m) => (m.uri.clone(), m.address.to_string()),
                None if h.netns.is_some() && o.netns.is_some() && o.libvirt != h.libvirt => {
                    (o.libvirt.clone(), "127.0.0.1".to_string())
                }
                None => return None,
            };
            Some(json!({
                "host": o.id,
                "uri": uri,
                "run_dir": run_dir.join("consoles").join(&o.id),
                "address": address,
            }))
        })
        .collect();
    if !peers.is_empty() {
        driver["migration_peers"] = json!(peers);
    }
    let config = json!({
        "host": h.id,
        "controller": format!("{}:{CONTROLLER_PORT}", inv.controller),
        "pid_file": agent_pid_file(run_dir, &h.id),
        "dfs": { "lease_service": format!("{}:{DFS_PORT}", inv.lease_service) },
        "timings": {
            "heartbeat_interval": format!("{}ms", ha.heartbeat.interval_ms),
            "lease_duration": format!("{}ms", ha.lease_duration_ms),
        },
        "driver": driver,
    });
    serde_yaml::to_string(&config).expect("a JSON value is YAML")
}

fn no_command(line: usize, host: &HostId, field: &str) -> String {
    format!("line {line}: the inventory gives no `{field}` for {host}: this step cannot be played there")
}

/// The run's file of `h` on the hosts: its agent config, log and pid
/// file, and the cluster file.
fn host_files(inv: &Inventory, h: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        inv.run_dir.join(format!("agent-{h}.yaml")),
        inv.run_dir.join(format!("agent-{h}.log")),
        agent_pid_file(&inv.run_dir, h),
    )
}

impl<'a> LabRun<'a> {
    fn inventory(&self) -> Result<&'a InventorySite> {
        match self.site {
            super::Site::Inventory(i) => Ok(i),
            super::Site::Box(_) => bail!("not on inventory hosts"),
        }
    }

    pub(super) fn inventory_host(&self, h: &HostId) -> Result<&'a InventoryHost> {
        self.inventory()?
            .inv
            .host(h.as_str())
            .with_context(|| format!("no host {h} in the inventory"))
    }

    pub(super) fn remote(&self, h: &HostId) -> Result<Remote<'a>> {
        let x = self.inventory_host(h)?;
        Ok(Remote {
            host: &x.id,
            run: &x.run,
        })
    }

    /// Before the daemons: each host given the cluster file and its agent
    /// config; a host left off (crashed in an earlier run) powered on by
    /// its BMC; what an earlier run left (cuts, agents, guests, the DFS's
    /// VM copies and volumes) mended or removed; then the home VMs booted.
    pub(super) fn prepare_inventory_hosts(&mut self, cluster_file: &Path) -> Result<()> {
        let site = self.inventory()?;
        let inv = &site.inv;
        let cluster_text = std::fs::read_to_string(cluster_file)
            .with_context(|| format!("{}", cluster_file.display()))?;
        let cluster_on_hosts = inv.run_dir.join("cluster.yaml");
        let ids: Vec<HostId> = self.s.cluster.hosts.iter().map(|h| h.id.clone()).collect();
        // The files first: a host's boot may start its agent with them.
        for h in &ids {
            let x = self.inventory_host(h)?;
            let remote = self.remote(h)?;
            let (config, _, _) = host_files(inv, h.as_str());
            remote
                .put_file(&cluster_on_hosts, cluster_text.as_bytes(), CALL_MAX)
                .map_err(|e| anyhow::anyhow!("the cluster file to {h}: {e}"))?;
            let text = agent_config(inv, x, &self.s.config.ha);
            remote
                .put_file(&config, text.as_bytes(), CALL_MAX)
                .map_err(|e| anyhow::anyhow!("its agent config to {h}: {e}"))?;
            // A copy here, to read what each host was given.
            std::fs::write(self.run_dir.join(format!("agent-{h}.yaml")), &text)?;
        }
        for h in &ids {
            let bmc = self.bmc_of(h)?;
            let status = krrish_lab::ipmi::chassis_power(&bmc, krrish_lab::ipmi::PowerVerb::Status)
                .map_err(|e| anyhow::anyhow!("{h}: IPMI power status: {e}"))?;
            if status.ends_with("off") {
                krrish_lab::ipmi::chassis_power(&bmc, krrish_lab::ipmi::PowerVerb::On)
                    .map_err(|e| anyhow::anyhow!("{h} is off: IPMI power on: {e}"))?;
                self.say(&format!("{h} was off: powered on by its BMC"));
                self.wait_answering(h)?;
            }
        }
        // A run killed mid-way left its cuts: every mend the inventory
        // gives is run (mends are idempotent: a port already up stays up).
        for h in &ids {
            let x = self.inventory_host(h)?;
            for (field, _) in x.faults.all() {
                if field == "faults.heal" || field.starts_with("faults.bond_up.") {
                    self.run_fault_command(h, &field).with_context(|| {
                        format!("mending what an earlier run may have cut on {h}")
                    })?;
                }
            }
        }
        self.stop_inventory_hosts();
        // The DFS is shared: one host clears krrish's parts of it.
        let dfs = &inv.dfs_dir;
        self.remote(&ids[0])?
            .command(
                &[
                    "rm",
                    "-rf",
                    &dfs.join("vms").to_string_lossy(),
                    &dfs.join("volumes").to_string_lossy(),
                ],
                CALL_MAX,
            )
            .map_err(|e| anyhow::anyhow!("clearing the DFS's VM copies: {e}"))?;
        for h in &ids {
            let (_, log, _) = host_files(inv, h.as_str());
            let consoles = inv.run_dir.join("consoles").join(h.as_str());
            self.remote(h)?
                .command(
                    &[
                        "rm",
                        "-rf",
                        &log.to_string_lossy(),
                        &consoles.to_string_lossy(),
                    ],
                    CALL_MAX,
                )
                .map_err(|e| anyhow::anyhow!("clearing {h}'s run files: {e}"))?;
        }
        let t = Instant::now();
        for spec in &self.s.cluster.hosts {
            if !self.s.cluster.vms.iter().any(|v| v.home == spec.id) {
                continue;
            }
            let x = self.inventory_host(&spec.id)?;
            let (config, _, _) = host_files(inv, x.id.as_str());
            let said = self
                .remote(&spec.id)?
                .command(
                    &[
                        &x.krrish.to_string_lossy(),
                        "lab-boot-home",
                        "--config",
                        &config.to_string_lossy(),
                        "--cluster",
                        &cluster_on_hosts.to_string_lossy(),
                    ],
                    BOOT_HOME_MAX,
                )
                .map_err(|e| anyhow::anyhow!("booting {}'s home VMs: {e}", spec.id))?;
            for l in said.lines() {
                self.say(&format!("{}: {l}", spec.id));
            }
        }
        self.say(&format!(
            "home VMs booted on the inventory's hosts in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// `h`'s agent, started on it in the background.
    pub(super) fn start_inventory_agent(&mut self, h: &HostId) -> Result<()> {
        let inv = &self.inventory()?.inv;
        let x = self.inventory_host(h)?;
        let (config, log, _) = host_files(inv, h.as_str());
        let argv = [
            x.krrish.to_string_lossy().into_owned(),
            "agent".into(),
            "--config".into(),
            config.to_string_lossy().into_owned(),
        ];
        self.remote(h)?
            .start_detached(&argv, &log, CALL_MAX)
            .map_err(|e| anyhow::anyhow!("starting {h}'s agent: {e}"))
    }

    /// Whether `h`'s agent runs (its pid file names a live process).
    pub(super) fn inventory_agent_alive(&self, h: &HostId) -> bool {
        let (Ok(site), Ok(remote)) = (self.inventory(), self.remote(h)) else {
            return false;
        };
        let (_, _, pid) = host_files(&site.inv, h.as_str());
        remote.pid_alive(&pid, CALL_MAX)
    }

    /// A repair: `power on` to its BMC, the host answering its `run`
    /// again, what is still cut mended, its agent running.
    pub(super) fn repair_inventory_host(&mut self, h: &HostId) -> Result<()> {
        let bmc = self.bmc_of(h)?;
        let said = krrish_lab::ipmi::chassis_power(&bmc, krrish_lab::ipmi::PowerVerb::On)
            .map_err(|e| anyhow::anyhow!("repairing {h}: IPMI power on: {e}"))?;
        self.say(&format!("{h}: BMC says `{said}`"));
        self.wait_answering(h)?;
        self.mend_cuts(h);
        // A host whose boot starts its agent (a service, or the box's
        // emulated BMC) is given a moment to.
        if !self.wait_power(h, true, Duration::from_secs(5)) {
            self.start_inventory_agent(h)?;
        }
        if !self.wait_power(h, true, POWER_ON_MAX) {
            bail!(
                "repairing {h}: no agent runs {POWER_ON_MAX:?} after it was started (its log: {})",
                host_files(&self.inventory()?.inv, h.as_str()).1.display()
            );
        }
        Ok(())
    }

    /// Waits for `h` to answer its `run` after a power on (a physical
    /// host boots).
    fn wait_answering(&self, h: &HostId) -> Result<()> {
        let remote = self.remote(h)?;
        let start = Instant::now();
        while let Err(e) = remote.command(&["true"], CALL_MAX) {
            if start.elapsed() > HOST_BOOT_MAX {
                bail!("{h}: powered on, but it does not answer its `run` after {HOST_BOOT_MAX:?}: {e}");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(())
    }

    /// A cut or a bond fault: the inventory's command for it, run here.
    pub(super) fn inventory_fault(&mut self, f: &Fault) -> Result<()> {
        let bond_field = |name: &str, bond: &krrish_core::BondName| {
            format!("faults.{name}.{}", BOND_ROLES[bond.index()])
        };
        // (host, the command's field, the field that undoes it, a cut?)
        let (host, field, undo, cuts) = match f {
            Fault::Partition(h) => (
                h,
                "faults.partition".to_string(),
                "faults.heal".to_string(),
                true,
            ),
            Fault::Heal(h) => (
                h,
                "faults.heal".to_string(),
                "faults.heal".to_string(),
                false,
            ),
            Fault::BondDown { host, bond } => (
                host,
                bond_field("bond_down", bond),
                bond_field("bond_up", bond),
                true,
            ),
            Fault::BondUp { host, bond } => (
                host,
                bond_field("bond_up", bond),
                bond_field("bond_up", bond),
                false,
            ),
            Fault::BmcDown(h) => (
                h,
                "faults.bmc_down".to_string(),
                "faults.bmc_up".to_string(),
                true,
            ),
            Fault::BmcUp(h) => (
                h,
                "faults.bmc_up".to_string(),
                "faults.bmc_up".to_string(),
                false,
            ),
            other => bail!("{other:?} is not a cut"),
        };
        self.run_fault_command(host, &field)?;
        let open = self.open_cuts.entry(host.clone()).or_default();
        if cuts {
            open.insert(undo);
        } else {
            open.remove(&undo);
        }
        Ok(())
    }

    fn run_fault_command(&self, h: &HostId, field: &str) -> Result<()> {
        let x = self.inventory_host(h)?;
        let argv = x
            .faults
            .all()
            .into_iter()
            .find(|(f, _)| f == field)
            .map(|(_, c)| c.clone())
            .with_context(|| format!("the inventory gives no `{field}` for {h}"))?;
        let mut c = std::process::Command::new(&argv[0]);
        c.args(&argv[1..]);
        krrish_lab::remote::bounded(c, None, FAULT_COMMAND_MAX)
            .map(drop)
            .map_err(|e| {
                let shown: Vec<String> = argv
                    .iter()
                    .map(|a| {
                        if a.contains(|c: char| c.is_whitespace() || c == '\'') {
                            krrish_lab::remote::quote(a)
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                anyhow::anyhow!("{h}: `{field}` ({}): {e}", shown.join(" "))
            })
    }

    /// Runs the undoing command of each fault still open on `h`.
    fn mend_cuts(&mut self, h: &HostId) {
        for field in self.open_cuts.remove(h).unwrap_or_default() {
            if let Err(e) = self.run_fault_command(h, &field) {
                self.say(&format!("mending {h}: {e:#}"));
            }
        }
    }

    /// The end of a run (and its start, for what an aborted one left):
    /// every cut mended, every agent killed, every guest of the cluster's
    /// hosts destroyed.
    pub(super) fn stop_inventory_hosts(&mut self) {
        let Ok(site) = self.inventory() else {
            return;
        };
        let ids: Vec<HostId> = self.s.cluster.hosts.iter().map(|h| h.id.clone()).collect();
        for h in &ids {
            self.mend_cuts(h);
            let (_, _, pid) = host_files(&site.inv, h.as_str());
            if let Ok(remote) = self.remote(h) {
                if let Err(e) = remote.kill_pid_file(&pid, CALL_MAX) {
                    self.say(&format!("stopping {h}'s agent: {e}"));
                }
            }
        }
        let mut libvirts = self.libvirts();
        let read = libvirts.read();
        for u in &read.unreachable {
            self.say(&format!(
                "libvirt {u} does not answer: its guests were not destroyed"
            ));
        }
        for (uri, conn) in &libvirts.conns {
            let Some(hv) = conn else { continue };
            for d in hv.active_names().unwrap_or_default() {
                if ids
                    .iter()
                    .any(|h| krrish_libvirt::names::vm_of_domain(h, &d).is_some())
                {
                    if let Err(e) = hv.destroy(&d) {
                        self.say(&format!("destroying {d} on {uri}: {e}"));
                    }
                }
            }
        }
    }

    /// The agents' logs on the hosts (for trace checks and failures).
    pub(super) fn inventory_agent_logs(&self) -> String {
        let Ok(site) = self.inventory() else {
            return String::new();
        };
        let mut text = String::new();
        for h in &self.s.cluster.hosts {
            let (_, log, _) = host_files(&site.inv, h.id.as_str());
            if let Ok(remote) = self.remote(&h.id) {
                text.push_str(
                    &remote
                        .command(&["cat", &log.to_string_lossy()], CALL_MAX)
                        .unwrap_or_default(),
                );
            }
        }
        text
    }
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
