//! `--world lab --inventory FILE`: physical lab hosts. What is built is
//! the first step: the inventory is read and checked whole (every error
//! names the file, line and field), the hosts are checked as an operator
//! would before a run (krrish-lab's preflight), and each scenario is
//! reported NOT RUN with what it would need — never passed: its cluster's
//! hosts missing from the inventory, and each timeline step the inventory
//! gives no command for ([`needs`]). Running the daemons and guests on the
//! hosts is the next step (see the README).

use super::{CONTROLLER_PORT, DFS_PORT, VXLAN_GROUP};
use anyhow::{Context, Result};
use krrish_core::ha::HaConfig;
use krrish_core::HostId;
use krrish_lab::inventory::{Inventory, InventoryHost, BOND_ROLES};
use krrish_lab::power::agent_pid_file;
use krrish_lab::preflight::{preflight, Outcome};
use krrish_scenario::load::Action;
use krrish_scenario::Scenario;
use krrish_sim::Fault;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Checks `inventory` and its hosts; reports each of `files` NOT RUN.
pub fn on_inventory(files: &[PathBuf], inventory: &Path) -> Result<ExitCode> {
    let inv = match Inventory::load(inventory) {
        Ok(inv) => inv,
        Err(e) => {
            out!("FAIL  inventory {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    out!(
        "preflight of {} hosts from {}:",
        inv.hosts.len(),
        inventory.display()
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
    let mut not_run = 0;
    for f in files {
        let s = match krrish_scenario::load_scenario(f) {
            Ok(s) => s,
            Err(e) => {
                out!("FAIL  {:<36} cannot load", f.display());
                out!("      {e}");
                not_run += 1;
                continue;
            }
        };
        not_run += 1;
        out!("NOT RUN  {:<33} world=lab inventory", s.name);
        let missing: Vec<&str> = s
            .cluster
            .hosts
            .iter()
            .map(|h| h.id.as_str())
            .filter(|h| inv.host(h).is_none())
            .collect();
        if !missing.is_empty() {
            out!(
                "      its cluster's hosts not in the inventory: {}",
                missing.join(", ")
            );
        }
        for need in needs(&s, &inv) {
            out!("      {need}");
        }
        match write_agent_configs(&s, &inv) {
            Ok((dir, checked)) => out!(
                "      the agent configs a run would start with: {} ({})",
                dir.display(),
                if checked {
                    "each checked as the agent reads it"
                } else {
                    "not loaded here: the run directory is on the hosts"
                }
            ),
            Err(e) => out!("      its agent configs: {e:#}"),
        }
        out!("      running scenarios on inventory hosts is not built yet: the hosts were checked only");
    }
    out!("0 passed, 0 failed, {not_run} not run");
    Ok(ExitCode::FAILURE)
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

/// Writes the agent config of each inventory host of `s`'s cluster under
/// `target/lab/inventory/SCENARIO/` and, where the inventory's run
/// directory is on this machine too (a box described as an inventory),
/// checks each as the agent would load it; the directory, and whether
/// they were checked.
fn write_agent_configs(s: &Scenario, inv: &Inventory) -> Result<(PathBuf, bool)> {
    let checked = inv.run_dir.is_dir();
    let dir = Path::new("target/lab/inventory").join(s.name.replace('/', "-"));
    std::fs::create_dir_all(&dir)?;
    for spec in &s.cluster.hosts {
        let Some(h) = inv.host(spec.id.as_str()) else {
            continue;
        };
        let file = dir.join(format!("agent-{}.yaml", h.id));
        std::fs::write(&file, agent_config(inv, h, &s.config.ha))?;
        if checked {
            crate::daemon::config::load_agent(&file)
                .with_context(|| format!("{}: as the agent reads it", file.display()))?;
        }
    }
    Ok((dir, checked))
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
    });
    if let Some(ns) = &h.netns {
        driver["netns"] = json!(ns);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::{load_agent, DriverConfig};

    #[test]
    fn an_inventory_hosts_agent_config_loads_as_the_agent_reads_it() {
        let dir = std::env::temp_dir().join(format!("krrish-inv-agent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bmc.pass"), "secret\n").unwrap();
        let file = dir.join("lab.yaml");
        // The pid file's directory must exist where the agent reads it.
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir).unwrap();
        std::fs::write(
            &file,
            format!(
                "controller: 10.20.0.1\nlease_service: 10.30.0.1\ndfs_dir: /srv/krrish-dfs\n\
             guest_dir: /var/lib/krrish/guest\nrun_dir: {}\ndomain_type: qemu\nhosts:\n\
             \x20 - id: hv-01\n    run: [ip, netns, exec, krl-hv-01]\n    krrish: /usr/bin/krrish\n\
             \x20   libvirt: qemu:///system\n    netns: krl-hv-01\n    vm_bridge: br-vm\n\
             \x20   underlay: 10.40.0.11\n    bonds:\n      management: [eno1, eno2]\n\
             \x20     vm: [eno3, eno4]\n      storage: [eno5, eno6]\n\
             \x20   bmc: {{ address: 10.50.0.11, username: admin, password_file: bmc.pass }}\n",
                run_dir.display()
            ),
        )
        .unwrap();
        let inv = Inventory::load(&file).unwrap();
        let ha = HaConfig::default();
        let text = agent_config(&inv, &inv.hosts[0], &ha);
        let agent_file = dir.join("agent-hv-01.yaml");
        std::fs::write(&agent_file, &text).unwrap();
        let cfg = load_agent(&agent_file).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.host, "hv-01");
        assert_eq!(cfg.controller, "10.20.0.1:7700");
        assert_eq!(cfg.pid_file, Some(run_dir.join("agent-hv-01.pid")));
        assert_eq!(cfg.timings.heartbeat_interval_ms, ha.heartbeat.interval_ms);
        let DriverConfig::Libvirt(lv) = cfg.driver else {
            panic!("not the libvirt driver:\n{text}");
        };
        assert_eq!(lv.netns.as_deref(), Some("krl-hv-01"));
        assert_eq!(lv.domain_type, "qemu");
        assert_eq!(lv.dfs_dir, Path::new("/srv/krrish-dfs"));
        assert_eq!(lv.run_dir, run_dir.join("consoles").join("hv-01"));
        assert_eq!(lv.lease.lease_service, "10.30.0.1:7702");
        let bonds = lv.bond_members.expect("bond members given");
        assert_eq!(bonds[2], ["eno5".to_string(), "eno6".to_string()]);
        let t = lv.tenant_network.expect("tenant network given");
        assert_eq!(t.local.to_string(), "10.40.0.11");
        assert_eq!(t.underlay, "br-vm");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
