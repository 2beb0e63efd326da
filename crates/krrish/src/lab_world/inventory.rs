//! `--world lab --inventory FILE`: physical lab hosts. What is built is
//! the first step: the inventory is read and checked whole (every error
//! names the file, line and field), the hosts are checked as an operator
//! would before a run (krrish-lab's preflight), and each scenario is
//! reported NOT RUN with what it would need — never passed: its cluster's
//! hosts missing from the inventory, and each timeline step the inventory
//! gives no command for ([`needs`]). Running the daemons and guests on the
//! hosts is the next step (see the README).

use anyhow::Result;
use krrish_core::HostId;
use krrish_lab::inventory::{Inventory, BOND_ROLES};
use krrish_lab::preflight::{preflight, Outcome};
use krrish_scenario::load::Action;
use krrish_scenario::Scenario;
use krrish_sim::Fault;
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

fn no_command(line: usize, host: &HostId, field: &str) -> String {
    format!("line {line}: the inventory gives no `{field}` for {host}: this step cannot be played there")
}
