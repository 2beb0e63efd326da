//! `krrish rules …` and `krrish ha …`: placement rule groups and the
//! cluster-wide HA switch through `/v1/rules…` and `/v1/ha`.

use super::network::{say, Shown};
use super::{path_part, table, text, Endpoint};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum RulesCmd {
    /// Every rule group in force: the cluster file's, those set through
    /// the API, and the managed services' own.
    List,
    /// Set (or replace) a rule group beside the cluster file's.
    Set {
        name: String,
        /// affinity, anti-affinity, run-on or not-on.
        #[arg(long)]
        kind: String,
        /// must (never broken) or should (broken only when nothing else fits).
        #[arg(long)]
        strength: String,
        /// The VMs, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        vms: Vec<String>,
        /// run-on, not-on: the hosts, comma-separated (run-on: preferred first).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
    },
    /// Delete a rule group set through the API.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum HaCmd {
    /// Whether HA is on cluster-wide.
    Show,
    /// Failed hosts' VMs restart again (failures from now on).
    On,
    /// Failed hosts are still detected and fenced; nothing restarts.
    Off,
}

pub fn rules(ep: &Endpoint, cmd: RulesCmd) -> Shown {
    Ok(match cmd {
        RulesCmd::List => (ep.call("/v1/rules", &[], None)?, Box::new(rule_table)),
        RulesCmd::Set {
            name,
            kind,
            strength,
            vms,
            hosts,
        } => (
            ep.put(
                &format!("/v1/rules/{}", path_part(&name)),
                json!({ "kind": kind, "strength": strength, "vms": vms, "hosts": hosts }),
            )?,
            say(|v| {
                let r = &v["rule"];
                format!(
                    "rule {} ({} {}) {}",
                    text(&r["name"]),
                    text(&r["strength"]),
                    text(&r["kind"]),
                    if v["replaced"] == true {
                        "replaced"
                    } else {
                        "set"
                    }
                )
            }),
        ),
        RulesCmd::Delete { name } => (
            ep.delete(&format!("/v1/rules/{}", path_part(&name)))?,
            say(|v| format!("rule {} deleted", text(&v["name"]))),
        ),
    })
}

pub fn ha(ep: &Endpoint, cmd: HaCmd) -> Shown {
    let shown = say(|v| {
        let on = if v["enabled"] == true { "on" } else { "off" };
        format!("HA is {on} cluster-wide")
    });
    Ok(match cmd {
        HaCmd::Show => (ep.call("/v1/ha", &[], None)?, shown),
        HaCmd::On => (ep.put("/v1/ha", json!({ "enabled": true }))?, shown),
        HaCmd::Off => (ep.put("/v1/ha", json!({ "enabled": false }))?, shown),
    })
}

/// One row per group: where it comes from, its name, kind, strength, VMs
/// and hosts.
fn rule_table(v: &Value) -> String {
    let mut rows = Vec::new();
    for (origin, key) in [
        ("file", "cluster_file"),
        ("api", "api"),
        ("service", "services"),
    ] {
        for g in v[key].as_array().into_iter().flatten() {
            let (kind, hosts) = match &g["kind"] {
                Value::String(k) => (k.clone(), String::new()),
                Value::Object(o) => o
                    .iter()
                    .next()
                    .map(|(k, hs)| {
                        let hs: Vec<String> =
                            hs.as_array().into_iter().flatten().map(text).collect();
                        (k.clone(), hs.join(","))
                    })
                    .unwrap_or_default(),
                other => (text(other), String::new()),
            };
            let vms: Vec<String> = g["vms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            rows.push(vec![
                origin.to_string(),
                text(&g["name"]),
                kind,
                text(&g["strength"]),
                vms.join(","),
                hosts,
            ]);
        }
    }
    let on = if v["ha_enabled"] == true { "on" } else { "off" };
    format!(
        "HA is {on} cluster-wide\n{}",
        table(
            &["ORIGIN", "NAME", "KIND", "STRENGTH", "VMS", "HOSTS"],
            &rows
        )
    )
}
