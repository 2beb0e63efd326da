//! Managed MongoDB replica sets: 3, 5 or 7 existing VMs on different hosts
//! (anti-affinity at creation), the first given the primary at epoch
//! (MongoDB's term) 1, under the majority rule ([`crate::replica_set`]):
//!
//! - a primary needs a **majority** of the members ready; it steps down
//!   when it cannot have one (two of three members down, say), and the set
//!   is read-only until a majority is back;
//! - when the primary's host dies, at the check that makes it unhealthy
//!   (the third failed in a row) the first ready member in the order given
//!   (its priority) is elected, epoch + 1 — every member a check reaches
//!   is caught up, as it replicates;
//! - the old primary back rejoins as a secondary with its stale epoch
//!   replaced — never a second primary.
//!
//! Every call checks first and changes nothing when it refuses.

use crate::name::Name;
use crate::replica_set::{
    checked_single_set, may_add, CheckClock, Election, MemberError, MemberLookup, ReplicaSet,
    ServiceError,
};
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many replica sets.
pub const MONGODB_MAX: usize = 100;

/// One replica set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MongoDb {
    pub name: Name,
    #[serde(flatten)]
    pub set: ReplicaSet,
    #[serde(flatten)]
    pub clock: CheckClock,
}

impl MongoDb {
    /// As describe shows it.
    pub fn to_json(&self) -> serde_json::Value {
        let members = self.set.members_json(Election::Majority);
        serde_json::json!({
            "name": self.name,
            "primary": self.set.primary,
            "epoch": self.set.epoch,
            "writable": self.set.primary.is_some(),
            "members": members,
            "degraded": self.set.shared_host().map(|h| format!("members share {h}")),
        })
    }
}

checked_single_set!(MongoDb, "mongodb", Election::Majority);

/// The replica sets, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MongoDbs {
    pub sets: BTreeMap<Name, MongoDb>,
}

impl MongoDbs {
    pub fn get(&self, name: &Name) -> Result<&MongoDb, ServiceError> {
        self.sets.get(name).ok_or_else(|| ServiceError::NotFound {
            kind: "mongodb",
            name: name.clone(),
        })
    }

    /// The replica set `vm` is a member of.
    pub fn set_of(&self, vm: &VmId) -> Option<&Name> {
        self.sets
            .values()
            .find(|s| s.set.member(vm).is_some())
            .map(|s| &s.name)
    }

    /// A replica set of `members` (3, 5 or 7, each on its own host now).
    pub fn create(
        &mut self,
        name: Name,
        members: &[String],
        now_ms: u64,
        lookup: &MemberLookup,
    ) -> Result<&MongoDb, ServiceError> {
        may_add(&self.sets, "mongodb", &name, MONGODB_MAX)?;
        if !matches!(members.len(), 3 | 5 | 7) {
            return Err(MemberError::Shape {
                field: "members".into(),
                why: format!(
                    "a replica set has 3, 5 or 7 members (an odd number, so a majority exists), not {}",
                    members.len()
                ),
            }
            .into());
        }
        let named: Vec<(String, String)> = members
            .iter()
            .enumerate()
            .map(|(i, vm)| (format!("members[{i}]"), vm.clone()))
            .collect();
        let all_one_group = 0..named.len();
        let placed = lookup.place(&named, std::slice::from_ref(&all_one_group))?;
        let set = MongoDb {
            name: name.clone(),
            set: ReplicaSet::new(placed),
            clock: CheckClock::starting(now_ms),
        };
        Ok(self.sets.entry(name).or_insert(set))
    }

    pub fn delete(&mut self, name: &Name) -> Result<MongoDb, ServiceError> {
        self.sets
            .remove(name)
            .ok_or_else(|| ServiceError::NotFound {
                kind: "mongodb",
                name: name.clone(),
            })
    }

    /// A terminated VM leaves: its replica set is deleted (members are
    /// given at creation and never replaced). Its name, if any.
    pub fn forget_vm(&mut self, vm: &VmId) -> Option<Name> {
        let name = self.set_of(vm)?.clone();
        self.sets.remove(&name);
        Some(name)
    }
}
