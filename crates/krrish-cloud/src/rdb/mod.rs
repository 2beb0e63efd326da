//! Managed relational databases (RDB): a cluster of two existing VMs, a
//! **primary** and a **standby**, on different hosts (anti-affinity), with
//! their own health and failover.
//!
//! - Created from two VMs that exist, are different, belong to no other
//!   RDB and are placed (running or booting) on **different hosts** now.
//! - An **epoch** (a fencing token) starts at 1 and is bumped by every
//!   promotion and switchover. Each member remembers the epoch it was last
//!   told of; a member that was unreachable while the epoch moved on holds
//!   a stale one, and is demoted to standby (told the new epoch) the first
//!   time a check reaches it again: the old primary never comes back as a
//!   second primary. There is one `primary` field, so two primaries cannot
//!   even be written down.
//! - **Health** is judged like a load balancer's backends ([`health`]): on
//!   the controller's timer, against the same data-plane read
//!   ([`crate::network::lb::FabricReport`]); a member passes when its guest
//!   runs exactly once, on a host whose VM network (bond1) is up. Every
//!   2 s by default; unhealthy after 3 failed checks in a row, healthy
//!   again after 2 good ones.
//! - **Failover**: at the check that makes the primary unhealthy, a healthy
//!   standby (whose latest check passed) is promoted (epoch + 1). If the
//!   standby is down too, the cluster has **no primary**; then only the
//!   member that was primary last (it has the newest data) may become
//!   primary again when it is back — a stale standby is never promoted, as
//!   it would lose the writes it never saw (availability is given up for
//!   the data, as a synchronous-replication RDB does).
//! - **Anti-affinity after failover** is reported, not enforced: when the
//!   HA core fails members over onto one host (one spare, say), describe
//!   says `degraded: members share <host>`. Enforcing it belongs to the
//!   placement rules (a later issue).
//!
//! Every call checks first and changes nothing when it refuses.

pub(crate) mod calls;
mod health;

use crate::name::Name;
use crate::replica_set::{CheckClock, Election, ReplicaSet};
use krrish_core::{HostId, VmId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// At most this many RDB clusters.
pub const RDB_MAX: usize = 100;
pub use crate::replica_set::{
    Member, CHECK_INTERVAL_MS as RDB_CHECK_INTERVAL_MS, HEALTHY_THRESHOLD as RDB_HEALTHY_THRESHOLD,
    UNHEALTHY_THRESHOLD as RDB_UNHEALTHY_THRESHOLD,
};

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Primary,
    Standby,
}

/// An RDB cluster: a replica set of two under the synchronous rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rdb {
    pub name: Name,
    /// The two members (in the order given), the primary, the epoch.
    #[serde(flatten)]
    pub set: ReplicaSet,
    #[serde(flatten)]
    pub clock: CheckClock,
}

impl Rdb {
    pub fn role(&self, vm: &VmId) -> Role {
        if self.set.is_primary(vm) {
            Role::Primary
        } else {
            Role::Standby
        }
    }

    pub fn member(&self, vm: &VmId) -> Option<&Member> {
        self.set.member(vm)
    }

    /// The standby: the member that is not the primary (while there is
    /// one).
    pub fn standby(&self) -> Option<&VmId> {
        let p = self.set.primary.as_ref()?;
        self.set.members.iter().map(|m| &m.vm).find(|vm| *vm != p)
    }

    /// `Some(host)` when both members ran on one host at the latest check.
    pub fn shared_host(&self) -> Option<&HostId> {
        self.set.shared_host()
    }

    /// As describe shows it.
    pub fn to_json(&self) -> serde_json::Value {
        let members = self.set.members_json(Election::Synchronous);
        serde_json::json!({
            "name": self.name,
            "primary": self.set.primary,
            "standby": self.standby(),
            "epoch": self.set.epoch,
            "members": members,
            "degraded": self.shared_host().map(|h| format!("members share {h}")),
        })
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RdbError {
    #[error("{field}: no vm named {vm}")]
    NoSuchVm { field: &'static str, vm: VmId },
    #[error("standby: {vm} is also the primary; an RDB needs two different VMs")]
    SameVm { vm: VmId },
    #[error("{field}: vm {vm} is not placed on a host (not running or booting)")]
    NotPlaced { field: &'static str, vm: VmId },
    #[error("standby: vm {standby} is on {host} with the primary {primary}: an RDB's members must be on different hosts (anti-affinity)")]
    SameHost {
        primary: VmId,
        standby: VmId,
        host: HostId,
    },
    #[error("{field}: vm {vm} is already a member of rdb {rdb}")]
    InRdb {
        field: &'static str,
        vm: VmId,
        rdb: Name,
    },
    #[error("name: rdb {name} already exists")]
    Exists { name: Name },
    #[error("name: no rdb named {name}")]
    NotFound { name: Name },
    #[error("name: at most {max} rdbs")]
    Limit { max: usize },
    #[error("name: rdb {name} cannot switch over: {why}")]
    NotReady { name: Name, why: String },
}

impl RdbError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            RdbError::NoSuchVm { .. } | RdbError::NotFound { .. } => "not-found",
            RdbError::SameVm { .. } | RdbError::SameHost { .. } | RdbError::NotPlaced { .. } => {
                "invalid-request"
            }
            RdbError::InRdb { .. } => "in-use",
            RdbError::Exists { .. } => "exists",
            RdbError::Limit { .. } => "limit",
            RdbError::NotReady { .. } => "conflict",
        }
    }
}

/// The RDB clusters, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rdbs {
    pub rdbs: BTreeMap<Name, Rdb>,
}

impl Rdbs {
    pub fn get(&self, name: &Name) -> Result<&Rdb, RdbError> {
        self.rdbs
            .get(name)
            .ok_or_else(|| RdbError::NotFound { name: name.clone() })
    }

    /// The RDB `vm` is a member of.
    pub fn rdb_of(&self, vm: &VmId) -> Option<&Name> {
        self.rdbs
            .values()
            .find(|r| r.member(vm).is_some())
            .map(|r| &r.name)
    }

    /// Creates a cluster: `primary` at epoch 1, first checked at
    /// `now_ms` + one interval. `vm_exists` and `where_is` answer from the
    /// HA core.
    pub fn create(
        &mut self,
        name: Name,
        primary: VmId,
        standby: VmId,
        now_ms: u64,
        vm_exists: &dyn Fn(&VmId) -> bool,
        where_is: &dyn Fn(&VmId) -> Option<HostId>,
    ) -> Result<&Rdb, RdbError> {
        if self.rdbs.contains_key(&name) {
            return Err(RdbError::Exists { name });
        }
        if self.rdbs.len() >= RDB_MAX {
            return Err(RdbError::Limit { max: RDB_MAX });
        }
        for (field, vm) in [("primary", &primary), ("standby", &standby)] {
            if !vm_exists(vm) {
                return Err(RdbError::NoSuchVm {
                    field,
                    vm: vm.clone(),
                });
            }
        }
        if primary == standby {
            return Err(RdbError::SameVm { vm: primary });
        }
        for (field, vm) in [("primary", &primary), ("standby", &standby)] {
            if let Some(rdb) = self.rdb_of(vm) {
                return Err(RdbError::InRdb {
                    field,
                    vm: vm.clone(),
                    rdb: rdb.clone(),
                });
            }
        }
        let placed = |field: &'static str, vm: &VmId| {
            where_is(vm).ok_or_else(|| RdbError::NotPlaced {
                field,
                vm: vm.clone(),
            })
        };
        let (ph, sh) = (placed("primary", &primary)?, placed("standby", &standby)?);
        if ph == sh {
            return Err(RdbError::SameHost {
                primary,
                standby,
                host: ph,
            });
        }
        let rdb = Rdb {
            name: name.clone(),
            set: ReplicaSet::new(vec![(primary, ph), (standby, sh)]),
            clock: CheckClock::starting(now_ms),
        };
        Ok(self.rdbs.entry(name).or_insert(rdb))
    }

    pub fn delete(&mut self, name: &Name) -> Result<Rdb, RdbError> {
        self.rdbs
            .remove(name)
            .ok_or_else(|| RdbError::NotFound { name: name.clone() })
    }

    /// A planned swap: only while there is a primary and both members are
    /// healthy with their latest check passed. The epoch moves on.
    pub fn switchover(&mut self, name: &Name) -> Result<&Rdb, RdbError> {
        let r = self.get(name)?;
        let not_ready = |why: String| RdbError::NotReady {
            name: name.clone(),
            why,
        };
        let Some(standby) = r.standby().cloned() else {
            return Err(not_ready("it has no primary".into()));
        };
        for m in &r.set.members {
            if !m.ready() {
                return Err(not_ready(format!("vm {} is not healthy", m.vm)));
            }
        }
        let r = self.rdbs.get_mut(name).expect("checked above");
        r.set.switch_to(&standby);
        Ok(r)
    }

    /// A terminated VM leaves: the cluster it was in is deleted (an RDB is
    /// two VMs or nothing). Its name, if any.
    pub fn forget_vm(&mut self, vm: &VmId) -> Option<Name> {
        let name = self.rdb_of(vm)?.clone();
        self.rdbs.remove(&name);
        Some(name)
    }
}
