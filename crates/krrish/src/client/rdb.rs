//! `krrish rdbs …`: managed RDBs through `/v1/rdbs…`. Each function makes
//! its one call and says how the answer is shown as text.

use super::network::{say, Shown};
use super::{path_part, table, text, Endpoint};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum RdbsCmd {
    /// RDBs, one row per member with its role, health and host; optionally
    /// one RDB.
    Describe { name: Option<String> },
    /// Create an RDB on two existing VMs on different hosts.
    Create {
        name: String,
        #[arg(long)]
        primary: String,
        #[arg(long)]
        standby: String,
    },
    /// Delete an RDB (its VMs stay).
    Delete { name: String },
    /// Swap primary and standby (both must be healthy); the epoch moves on.
    Switchover { name: String },
}

pub fn rdbs(ep: &Endpoint, cmd: RdbsCmd) -> Shown {
    use RdbsCmd as C;
    let one = |name: &str| format!("/v1/rdbs/{}", path_part(name));
    let roles = |v: &Value| {
        format!(
            "rdb {}: primary {}, standby {}, epoch {}",
            text(&v["name"]),
            text(&v["primary"]),
            text(&v["standby"]),
            text(&v["epoch"])
        )
    };
    Ok(match cmd {
        C::Describe { name } => {
            let v = match name {
                Some(n) => json!([ep.call(&one(&n), &[], None)?]),
                None => ep.call("/v1/rdbs", &[], None)?,
            };
            (v, Box::new(rdb_table))
        }
        C::Create {
            name,
            primary,
            standby,
        } => (
            ep.call(
                "/v1/rdbs",
                &[],
                Some(json!({ "name": name, "primary": primary, "standby": standby })),
            )?,
            say(move |v| format!("{} (created)", roles(v))),
        ),
        C::Delete { name } => (
            ep.delete(&one(&name))?,
            say(|v| format!("rdb {} deleted", text(&v["name"]))),
        ),
        C::Switchover { name } => (
            ep.call(&format!("{}/switchover", one(&name)), &[], Some(json!({})))?,
            say(move |v| format!("{} (switched over)", roles(v))),
        ),
    })
}

fn rdb_table(v: &Value) -> String {
    let mut rows = Vec::new();
    for r in v.as_array().into_iter().flatten() {
        for m in r["members"].as_array().into_iter().flatten() {
            rows.push(vec![
                text(&r["name"]),
                text(&r["epoch"]),
                text(&m["vm"]),
                text(&m["role"]),
                if m["healthy"] == true {
                    "healthy"
                } else {
                    "unhealthy"
                }
                .into(),
                text(&m["host"]),
                text(&r["degraded"]),
            ]);
        }
    }
    table(
        &["NAME", "EPOCH", "VM", "ROLE", "HEALTH", "HOST", "DEGRADED"],
        &rows,
    )
}
