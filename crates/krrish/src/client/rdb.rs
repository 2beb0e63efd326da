//! `krrish rdbs …`: managed RDBs through `/v1/rdbs…`. Each function makes
//! its one call and says how the answer is shown as text.

use super::network::{say, Shown};
use super::services::{delete, describe, member_rows, member_table};
use super::{path_part, text, Endpoint};
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
    const PATH: &str = "/v1/rdbs";
    let one = |name: &str| format!("{PATH}/{}", path_part(name));
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
        C::Describe { name } => (describe(ep, PATH, name)?, Box::new(rdb_table)),
        C::Create {
            name,
            primary,
            standby,
        } => (
            ep.call(
                PATH,
                &[],
                Some(json!({ "name": name, "primary": primary, "standby": standby })),
            )?,
            say(move |v| format!("{} (created)", roles(v))),
        ),
        C::Delete { name } => delete(ep, PATH, "rdb", &name)?,
        C::Switchover { name } => (
            ep.call(&format!("{}/switchover", one(&name)), &[], Some(json!({})))?,
            say(move |v| format!("{} (switched over)", roles(v))),
        ),
    })
}

fn rdb_table(v: &Value) -> String {
    let mut rows = Vec::new();
    for r in v.as_array().into_iter().flatten() {
        member_rows(&mut rows, &[text(&r["name"]), text(&r["epoch"])], r);
    }
    member_table(&["NAME", "EPOCH"], &rows)
}
