//! `krrish datastores …` and `krrish disk-moves …`: datastores (DFS pools)
//! and storage live migration through `/v1/datastores…` and
//! `/v1/disk-moves…`. Each function makes its one call and says how the
//! answer is shown as text.

use super::network::{say, Shown};
use super::{parse_gib, path_part, rows, table, text, Endpoint};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum DatastoresCmd {
    /// Datastores with their capacity, use and state.
    List,
    /// Add a datastore (CreateDatastores).
    Create {
        name: String,
        /// 500G, 2T or 500 (GiB).
        #[arg(long, value_parser = parse_gib)]
        capacity: u64,
    },
    /// Delete an empty datastore (drain it first).
    Delete { name: String },
    /// Maintenance: move every disk off it; it takes no new disks.
    Drain { name: String },
    /// Out of maintenance: drain moves not yet copying are called off.
    Resume { name: String },
    /// Move disks from the fullest datastores to the emptiest.
    Balance {
        /// Usage may differ by this many percentage points (default 10).
        #[arg(long)]
        threshold_percent: Option<u64>,
    },
}

/// One disk: an instance's root disk or a volume.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct DiskArg {
    /// The instance whose root disk moves.
    #[arg(long)]
    instance: Option<String>,
    /// The volume that moves.
    #[arg(long)]
    volume: Option<String>,
}

impl DiskArg {
    fn body(&self) -> Value {
        match (&self.instance, &self.volume) {
            (Some(i), _) => json!({ "instance": i }),
            (_, v) => json!({ "volume": v }),
        }
    }
}

#[derive(Subcommand)]
pub enum DiskMovesCmd {
    /// Disk moves queued or copying.
    List,
    /// Move one disk to another datastore while its VM runs (storage live
    /// migration).
    Start {
        #[command(flatten)]
        disk: DiskArg,
        /// The datastore to move it to.
        #[arg(long)]
        datastore: String,
    },
    /// Call off a disk's move; it stays where it is.
    Cancel {
        #[command(flatten)]
        disk: DiskArg,
    },
}

fn datastore_table(v: &Value) -> String {
    let mut r = rows(
        v,
        &[
            "name",
            "capacity_gib",
            "used_gib",
            "reserved_gib",
            "used_percent",
            "disks",
            "state",
        ],
    );
    for row in &mut r {
        for cell in &mut row[1..=3] {
            cell.push('G');
        }
        row[4].push('%');
    }
    table(
        &[
            "NAME", "CAPACITY", "USED", "RESERVED", "USE", "DISKS", "STATE",
        ],
        &r,
    )
}

fn move_table(v: &Value) -> String {
    let mut r = rows(v, &["disk", "from", "to", "gib", "cause", "state"]);
    for row in &mut r {
        row[3].push('G');
    }
    table(&["DISK", "FROM", "TO", "SIZE", "CAUSE", "STATE"], &r)
}

pub fn datastores(ep: &Endpoint, cmd: DatastoresCmd) -> Shown {
    let one = |name: &str, verb: &str| {
        ep.call(
            &format!("/v1/datastores/{}/{verb}", path_part(name)),
            &[],
            Some(json!({})),
        )
    };
    Ok(match cmd {
        DatastoresCmd::List => (
            ep.call("/v1/datastores", &[], None)?,
            Box::new(datastore_table),
        ),
        DatastoresCmd::Create { name, capacity } => (
            ep.call(
                "/v1/datastores",
                &[],
                Some(json!({ "name": name, "capacity_gib": capacity })),
            )?,
            say(|v| {
                format!(
                    "datastore {} created ({} GiB)",
                    text(&v["datastore"]),
                    text(&v["capacity_gib"])
                )
            }),
        ),
        DatastoresCmd::Delete { name } => (
            ep.delete(&format!("/v1/datastores/{}", path_part(&name)))?,
            say(|v| format!("datastore {} deleted", text(&v["datastore"]))),
        ),
        DatastoresCmd::Drain { name } => (
            one(&name, "drain")?,
            Box::new(|v: &Value| {
                let mut s = format!(
                    "datastore {} in maintenance; moves queued:\n{}",
                    text(&v["datastore"]),
                    move_table(&v["queued"])
                );
                if v["waiting"].as_array().is_some_and(|w| !w.is_empty()) {
                    s += &format!("waiting for room: {}\n", text(&v["waiting"]));
                }
                s
            }),
        ),
        DatastoresCmd::Resume { name } => (
            one(&name, "resume")?,
            say(|v| {
                format!(
                    "datastore {} out of maintenance ({} queued moves called off)",
                    text(&v["datastore"]),
                    text(&v["called_off"])
                )
            }),
        ),
        DatastoresCmd::Balance { threshold_percent } => {
            let b = match threshold_percent {
                Some(t) => json!({ "threshold_percent": t }),
                None => json!({}),
            };
            (
                ep.call("/v1/disk-moves/balance", &[], Some(b))?,
                Box::new(move_table),
            )
        }
    })
}

pub fn disk_moves(ep: &Endpoint, cmd: DiskMovesCmd) -> Shown {
    Ok(match cmd {
        DiskMovesCmd::List => (ep.call("/v1/disk-moves", &[], None)?, Box::new(move_table)),
        DiskMovesCmd::Start { disk, datastore } => {
            let mut b = disk.body();
            b["datastore"] = json!(datastore);
            (
                ep.call("/v1/disk-moves", &[], Some(b))?,
                say(|v| {
                    format!(
                        "{} moving {} -> {} ({} GiB): {}",
                        text(&v["disk"]),
                        text(&v["from"]),
                        text(&v["to"]),
                        text(&v["gib"]),
                        text(&v["state"])
                    )
                }),
            )
        }
        DiskMovesCmd::Cancel { disk } => (
            ep.call("/v1/disk-moves/cancel", &[], Some(disk.body()))?,
            say(|v| {
                format!(
                    "move of {} to {} called off: it stays on {}",
                    text(&v["disk"]),
                    text(&v["to"]),
                    text(&v["from"])
                )
            }),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_show_sizes_use_and_state() {
        let ds = json!([{ "name": "ds-a", "capacity_gib": 100, "used_gib": 40,
            "reserved_gib": 20, "used_percent": 60, "disks": 2, "state": "draining" }]);
        let t = datastore_table(&ds);
        assert!(t.contains("ds-a"), "{t}");
        assert!(
            t.contains("100G") && t.contains("40G") && t.contains("20G"),
            "{t}"
        );
        assert!(t.contains("60%") && t.contains("draining"), "{t}");
        let moves = json!([{ "disk": "volume v-1", "from": "ds-a", "to": "ds-b", "gib": 20,
            "cause": "drain", "state": "copying (dfs)" }]);
        let t = move_table(&moves);
        assert!(
            t.contains("volume v-1") && t.contains("20G") && t.contains("copying (dfs)"),
            "{t}"
        );
    }
}
