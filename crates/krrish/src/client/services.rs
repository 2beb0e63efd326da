//! `krrish mongodbs …` and `krrish caches …`: MongoDB replica sets and
//! cache clusters through `/v1/mongodbs…` and `/v1/caches…`, as `krrish
//! rdbs …` ([`super::rdb`]). Also what the three managed services share:
//! describing all or one, deleting, and the one-row-per-member table.

use super::network::{say, Shown};
use super::{path_part, table, text, CallError, Endpoint};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum MongodbsCmd {
    /// Replica sets, one row per member with its role, health and host;
    /// optionally one replica set.
    Describe { name: Option<String> },
    /// Create a replica set on 3, 5 or 7 existing VMs on different hosts;
    /// the first is the primary, the order is the election priority.
    Create {
        /// The replica set's name.
        name: String,
        /// A member VM (repeat: 3, 5 or 7 times).
        #[arg(long = "member", value_name = "VM", required = true)]
        members: Vec<String>,
    },
    /// Delete a replica set (its VMs stay).
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum CachesCmd {
    /// Cache clusters, one row per shard member with its role, health and
    /// host; optionally one cluster.
    Describe { name: Option<String> },
    /// Create a cache cluster of 1 to 16 shards, each a master and 1 or 2
    /// replicas (existing VMs on different hosts).
    Create {
        /// The cluster's name.
        name: String,
        /// A shard's VMs, master first (repeat once per shard).
        #[arg(long = "shard", value_name = "VM,VM[,VM]", required = true)]
        shards: Vec<String>,
    },
    /// Delete a cache cluster (its VMs stay).
    Delete { name: String },
}

pub fn mongodbs(ep: &Endpoint, cmd: MongodbsCmd) -> Shown {
    const PATH: &str = "/v1/mongodbs";
    Ok(match cmd {
        MongodbsCmd::Describe { name } => (describe(ep, PATH, name)?, Box::new(mongodb_table)),
        MongodbsCmd::Create { name, members } => (
            ep.call(PATH, &[], Some(json!({ "name": name, "members": members })))?,
            say(|v| {
                format!(
                    "mongodb {}: primary {}, secondaries {}, epoch {} (created)",
                    text(&v["name"]),
                    text(&v["primary"]),
                    with_role(v, "secondary"),
                    text(&v["epoch"])
                )
            }),
        ),
        MongodbsCmd::Delete { name } => delete(ep, PATH, "mongodb", &name)?,
    })
}

pub fn caches(ep: &Endpoint, cmd: CachesCmd) -> Shown {
    const PATH: &str = "/v1/caches";
    Ok(match cmd {
        CachesCmd::Describe { name } => (describe(ep, PATH, name)?, Box::new(cache_table)),
        CachesCmd::Create { name, shards } => {
            let shards: Vec<Vec<&str>> = shards
                .iter()
                .map(|s| s.split(',').map(str::trim).collect())
                .collect();
            (
                ep.call(PATH, &[], Some(json!({ "name": name, "shards": shards })))?,
                say(|v| {
                    let shards: Vec<String> = v["shards"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| {
                            format!(
                                "shard {} master {}, replicas {}",
                                text(&s["shard"]),
                                text(&s["master"]),
                                with_role(s, "replica")
                            )
                        })
                        .collect();
                    format!(
                        "cache {}: {}; state {} (created)",
                        text(&v["name"]),
                        shards.join("; "),
                        text(&v["state"])
                    )
                }),
            )
        }
        CachesCmd::Delete { name } => delete(ep, PATH, "cache", &name)?,
    })
}

/// Every service under `path`, or the one `name`d (as a list of one).
pub(super) fn describe(
    ep: &Endpoint,
    path: &str,
    name: Option<String>,
) -> Result<Value, CallError> {
    match name {
        Some(n) => Ok(json!([ep.call(
            &format!("{path}/{}", path_part(&n)),
            &[],
            None
        )?])),
        None => ep.call(path, &[], None),
    }
}

/// Deletes the `kind` service `name` under `path`.
pub(super) fn delete(ep: &Endpoint, path: &str, kind: &'static str, name: &str) -> Shown {
    Ok((
        ep.delete(&format!("{path}/{}", path_part(name)))?,
        say(move |v| format!("{kind} {} deleted", text(&v["name"]))),
    ))
}

/// The VMs of `set`'s members holding `role`, comma-separated.
fn with_role(set: &Value, role: &str) -> String {
    let vms: Vec<String> = set["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == role)
        .map(|m| text(&m["vm"]))
        .collect();
    if vms.is_empty() {
        "-".into()
    } else {
        vms.join(",")
    }
}

/// The columns [`member_rows`] adds after a table's own.
pub(super) const MEMBER_COLUMNS: [&str; 5] = ["VM", "ROLE", "HEALTH", "HOST", "DEGRADED"];

/// One row per member of `set` (an RDB, a replica set, a cache shard):
/// `lead`, then the member's VM, role, health and host, then `set`'s
/// `degraded`.
pub(super) fn member_rows(rows: &mut Vec<Vec<String>>, lead: &[String], set: &Value) {
    for m in set["members"].as_array().into_iter().flatten() {
        let health = if m["healthy"] == true {
            "healthy"
        } else {
            "unhealthy"
        };
        let mut row = lead.to_vec();
        row.extend([
            text(&m["vm"]),
            text(&m["role"]),
            health.into(),
            text(&m["host"]),
            text(&set["degraded"]),
        ]);
        rows.push(row);
    }
}

/// A table of `lead` columns, then [`MEMBER_COLUMNS`].
pub(super) fn member_table(lead: &[&str], rows: &[Vec<String>]) -> String {
    table(&[lead, &MEMBER_COLUMNS[..]].concat(), rows)
}

fn mongodb_table(v: &Value) -> String {
    let mut rows = Vec::new();
    for s in v.as_array().into_iter().flatten() {
        let lead = [text(&s["name"]), text(&s["epoch"]), text(&s["writable"])];
        member_rows(&mut rows, &lead, s);
    }
    member_table(&["NAME", "EPOCH", "WRITABLE"], &rows)
}

fn cache_table(v: &Value) -> String {
    let mut rows = Vec::new();
    for c in v.as_array().into_iter().flatten() {
        for s in c["shards"].as_array().into_iter().flatten() {
            let lead = [
                text(&c["name"]),
                text(&c["state"]),
                text(&s["shard"]),
                text(&s["epoch"]),
            ];
            member_rows(&mut rows, &lead, s);
        }
    }
    member_table(&["NAME", "STATE", "SHARD", "EPOCH"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_is_one_row_per_shard_member() {
        let v = json!([{
            "name": "c-1", "state": "ok",
            "shards": [
                {"shard": 1, "master": "a", "epoch": 1, "degraded": null, "members": [
                    {"vm": "a", "role": "master", "healthy": true, "host": "hv-01"},
                    {"vm": "b", "role": "replica", "healthy": false, "host": "hv-02"},
                ]},
                {"shard": 2, "master": "c", "epoch": 3, "degraded": "members share hv-01", "members": [
                    {"vm": "c", "role": "master", "healthy": true, "host": "hv-01"},
                ]},
            ],
        }]);
        assert_eq!(
            cache_table(&v),
            "\
NAME  STATE  SHARD  EPOCH  VM  ROLE     HEALTH     HOST   DEGRADED
c-1   ok     1      1      a   master   healthy    hv-01  -
c-1   ok     1      1      b   replica  unhealthy  hv-02  -
c-1   ok     2      3      c   master   healthy    hv-01  members share hv-01
"
        );
        assert_eq!(with_role(&v[0]["shards"][0], "replica"), "b");
        assert_eq!(with_role(&v[0]["shards"][1], "replica"), "-");
    }

    #[test]
    fn a_replica_set_is_one_row_per_member() {
        let v = json!([{
            "name": "m-1", "epoch": 2, "writable": true, "degraded": null,
            "members": [
                {"vm": "a", "role": "secondary", "healthy": false, "host": "hv-01"},
                {"vm": "b", "role": "primary", "healthy": true, "host": "hv-02"},
            ],
        }]);
        assert_eq!(
            mongodb_table(&v),
            "\
NAME  EPOCH  WRITABLE  VM  ROLE       HEALTH     HOST   DEGRADED
m-1   2      true      a   secondary  unhealthy  hv-01  -
m-1   2      true      b   primary    healthy    hv-02  -
"
        );
    }
}
