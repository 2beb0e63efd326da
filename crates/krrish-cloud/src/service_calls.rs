//! The MongoDB and cache calls as they cross the wire, answered.

use crate::cache::Caches;
use crate::mongodb::MongoDbs;
use crate::name::Name;
use crate::replica_set::MemberLookup;
use crate::request::{CloudError, CloudReply, CloudRequest};

/// Answers a call of `Family::Service`. A refused call changes nothing.
pub(crate) fn apply(
    mongodbs: &mut MongoDbs,
    caches: &mut Caches,
    request: CloudRequest,
    now_ms: u64,
    lookup: &MemberLookup,
) -> Result<CloudReply, CloudError> {
    use CloudRequest as R;
    let reply = |message: String, data: serde_json::Value| Ok(CloudReply { message, data });
    match request {
        R::CreateMongodb { name, members } => {
            let name = Name::parse("name", &name)?;
            let m = mongodbs.create(name, &members, now_ms, lookup)?;
            let placed: Vec<String> = m
                .set
                .members
                .iter()
                .map(|x| format!("{} on {}", x.vm, host_of(x)))
                .collect();
            reply(
                format!(
                    "mongodb {} created: primary {}, epoch 1",
                    m.name,
                    placed.join(", ")
                ),
                m.to_json(),
            )
        }
        R::DeleteMongodb { name } => {
            let name = Name::parse("name", &name)?;
            mongodbs.delete(&name)?;
            reply(
                format!("mongodb {name} deleted; its VMs stay"),
                serde_json::json!({ "name": name }),
            )
        }
        R::DescribeMongodbs => {
            let all: Vec<serde_json::Value> = mongodbs.sets.values().map(|m| m.to_json()).collect();
            reply(
                format!("{} mongodbs", all.len()),
                serde_json::Value::Array(all),
            )
        }
        R::CreateCache { name, shards } => {
            let name = Name::parse("name", &name)?;
            let c = caches.create(name, &shards, now_ms, lookup)?;
            let placed: Vec<String> = c
                .shards
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let m: Vec<String> = s
                        .members
                        .iter()
                        .map(|x| format!("{} on {}", x.vm, host_of(x)))
                        .collect();
                    format!("shard {}: master {}", i + 1, m.join(", replica "))
                })
                .collect();
            reply(
                format!("cache {} created: {}", c.name, placed.join("; ")),
                c.to_json(),
            )
        }
        R::DeleteCache { name } => {
            let name = Name::parse("name", &name)?;
            caches.delete(&name)?;
            reply(
                format!("cache {name} deleted; its VMs stay"),
                serde_json::json!({ "name": name }),
            )
        }
        R::DescribeCaches => {
            let all: Vec<serde_json::Value> = caches.caches.values().map(|c| c.to_json()).collect();
            reply(
                format!("{} caches", all.len()),
                serde_json::Value::Array(all),
            )
        }
        other => unreachable!("not a MongoDB or cache call: {other}"),
    }
}

fn host_of(m: &crate::replica_set::Member) -> String {
    m.host.as_ref().map(|h| h.to_string()).unwrap_or_default()
}
