//! Managed cache clusters, Redis Cluster style: 1–16 **shards**, each a
//! master and one or two replicas on different hosts (anti-affinity within
//! a shard at creation), each shard its own replica set under the
//! asynchronous rule ([`crate::replica_set`]):
//!
//! - when a master's host dies, at the check that makes it unhealthy its
//!   ready replica is promoted (the shard's epoch + 1) — replication is
//!   asynchronous, so what the master had not yet sent is lost, as a cache
//!   accepts;
//! - with no member of a shard ready, the shard has no master and the
//!   cluster state is `fail` (its slots are unserved, Redis's
//!   `cluster-require-full-coverage`); the first member back becomes master;
//! - an old master back rejoins as a replica — never a second master.
//!
//! Every call checks first and changes nothing when it refuses.

use crate::name::Name;
use crate::network::dataplane::Fabric;
use crate::replica_set::{
    may_add, CheckClock, Checked, Election, MemberError, MemberLookup, ReplicaSet, ServiceError,
};
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many cache clusters.
pub const CACHE_MAX: usize = 100;
/// At most this many shards per cluster.
pub const CACHE_SHARDS_MAX: usize = 16;

/// One cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    pub name: Name,
    /// Shard `i` (numbered from 1 in lines and describe) is `shards[i-1]`.
    pub shards: Vec<ReplicaSet>,
    #[serde(flatten)]
    pub clock: CheckClock,
}

impl Cache {
    /// `ok` when every shard has a master; `fail` otherwise.
    pub fn state(&self) -> &'static str {
        if self.shards.iter().all(|s| s.primary.is_some()) {
            "ok"
        } else {
            "fail"
        }
    }

    /// Shard `n` (from 1).
    pub fn shard(&self, n: usize) -> Option<&ReplicaSet> {
        n.checked_sub(1).and_then(|i| self.shards.get(i))
    }

    /// As describe shows it.
    pub fn to_json(&self) -> serde_json::Value {
        let shards: Vec<serde_json::Value> = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let members = s.members_json(Election::Asynchronous);
                serde_json::json!({
                    "shard": i + 1,
                    "master": s.primary,
                    "epoch": s.epoch,
                    "members": members,
                    "degraded": s.shared_host().map(|h| format!("members share {h}")),
                })
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "state": self.state(),
            "shards": shards,
        })
    }
}

impl Checked for Cache {
    fn clock(&self) -> &CheckClock {
        &self.clock
    }

    fn clock_mut(&mut self) -> &mut CheckClock {
        &mut self.clock
    }

    fn member_vms(&self) -> Vec<&VmId> {
        self.shards
            .iter()
            .flat_map(|s| s.members.iter().map(|m| &m.vm))
            .collect()
    }

    fn check(&mut self, fabric: &dyn Fabric) -> Vec<String> {
        let state_before = self.state();
        let thresholds = self.clock.thresholds();
        let mut lines = Vec::new();
        for (i, s) in self.shards.iter_mut().enumerate() {
            let label = format!("cache {} shard {}", self.name, i + 1);
            lines.extend(s.check(&label, Election::Asynchronous, thresholds, fabric));
        }
        let state = self.state();
        if state != state_before {
            let unserved: Vec<String> = self
                .shards
                .iter()
                .enumerate()
                .filter(|(_, s)| s.primary.is_none())
                .map(|(i, _)| (i + 1).to_string())
                .collect();
            lines.push(match state {
                "ok" => format!(
                    "cache {}: cluster state ok: every shard has a master",
                    self.name
                ),
                _ => format!(
                    "cache {}: cluster state fail: shard {} has no master (its slots are unserved)",
                    self.name,
                    unserved.join(", ")
                ),
            });
        }
        lines
    }
}

/// The cache clusters, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caches {
    pub caches: BTreeMap<Name, Cache>,
}

impl Caches {
    pub fn get(&self, name: &Name) -> Result<&Cache, ServiceError> {
        self.caches.get(name).ok_or_else(|| ServiceError::NotFound {
            kind: "cache",
            name: name.clone(),
        })
    }

    /// The cluster `vm` is a member of.
    pub fn cache_of(&self, vm: &VmId) -> Option<&Name> {
        self.caches
            .values()
            .find(|c| c.shards.iter().any(|s| s.member(vm).is_some()))
            .map(|c| &c.name)
    }

    /// A cluster of `shards`, each `[master, replica…]` (2 or 3 VMs on
    /// different hosts now).
    pub fn create(
        &mut self,
        name: Name,
        shards: &[Vec<String>],
        now_ms: u64,
        lookup: &MemberLookup,
    ) -> Result<&Cache, ServiceError> {
        may_add(&self.caches, "cache", &name, CACHE_MAX)?;
        if shards.is_empty() || shards.len() > CACHE_SHARDS_MAX {
            return Err(MemberError::Shape {
                field: "shards".into(),
                why: format!(
                    "a cache cluster has 1 to {CACHE_SHARDS_MAX} shards, not {}",
                    shards.len()
                ),
            }
            .into());
        }
        let mut named = Vec::new();
        let mut groups = Vec::new();
        for (i, shard) in shards.iter().enumerate() {
            if !matches!(shard.len(), 2 | 3) {
                return Err(MemberError::Shape {
                    field: format!("shards[{i}]"),
                    why: format!(
                        "a shard is a master and 1 or 2 replicas (2 or 3 VMs), not {}",
                        shard.len()
                    ),
                }
                .into());
            }
            let start = named.len();
            for (j, vm) in shard.iter().enumerate() {
                named.push((format!("shards[{i}][{j}]"), vm.clone()));
            }
            groups.push(start..named.len());
        }
        let mut placed = lookup.place(&named, &groups)?.into_iter();
        let sets = groups
            .iter()
            .map(|g| ReplicaSet::new(placed.by_ref().take(g.len()).collect()))
            .collect();
        let cache = Cache {
            name: name.clone(),
            shards: sets,
            clock: CheckClock::starting(now_ms),
        };
        Ok(self.caches.entry(name).or_insert(cache))
    }

    pub fn delete(&mut self, name: &Name) -> Result<Cache, ServiceError> {
        self.caches
            .remove(name)
            .ok_or_else(|| ServiceError::NotFound {
                kind: "cache",
                name: name.clone(),
            })
    }

    /// A terminated VM leaves: its cluster is deleted. Its name, if any.
    pub fn forget_vm(&mut self, vm: &VmId) -> Option<Name> {
        let name = self.cache_of(vm)?.clone();
        self.caches.remove(&name);
        Some(name)
    }
}
