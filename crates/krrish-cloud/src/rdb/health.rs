//! RDB health and failover on the controller's timer: the same data-plane
//! read as the load balancers' checks ([`crate::Cloud::run_health_checks`]
//! runs both). Each cluster keeps its own check clock; the checking and
//! the election are the replica set's ([`crate::replica_set`]) under the
//! synchronous rule.

use super::{Rdb, Rdbs};
use crate::network::dataplane::Fabric;
use crate::replica_set::{self as rs, checked_single_set, Election};
use krrish_core::VmId;

checked_single_set!(Rdb, "rdb", Election::Synchronous);

impl Rdbs {
    /// When the next check is due.
    pub fn health_checks_due(&self) -> Option<u64> {
        rs::checks_due(self.rdbs.values())
    }

    /// The members of every cluster due by `due_by`.
    pub fn health_check_targets(&self, due_by: u64) -> Vec<VmId> {
        rs::check_targets(self.rdbs.values(), due_by)
    }

    /// Runs the checks of every cluster due by `due_by` whose members the
    /// fabric knows both of (read at `now_ms`); the others stay due.
    pub fn run_health_checks(
        &mut self,
        due_by: u64,
        now_ms: u64,
        fabric: &dyn Fabric,
    ) -> Vec<String> {
        rs::run_checks(self.rdbs.values_mut(), due_by, now_ms, fabric)
    }

    /// The data plane could not be read: nothing judged, due again an
    /// interval later.
    pub fn skip_health_checks(&mut self, due_by: u64, now_ms: u64) {
        rs::skip_checks(self.rdbs.values_mut(), due_by, now_ms)
    }

    /// A controller restored from its store checks every cluster from
    /// `now_ms` on.
    pub fn restart_health_checks(&mut self, now_ms: u64) {
        rs::restart_checks(self.rdbs.values_mut(), now_ms)
    }
}
