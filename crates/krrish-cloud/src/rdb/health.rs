//! RDB health and failover on the controller's timer: the same data-plane
//! read as the load balancers' checks ([`crate::Cloud::run_health_checks`]
//! runs both). Each cluster keeps its own check clock; the checking and
//! the election are the replica set's ([`crate::replica_set`]) under the
//! synchronous rule.

use super::Rdbs;
use crate::network::dataplane::Fabric;
use crate::replica_set::Election;
use krrish_core::VmId;
use std::collections::BTreeSet;

impl Rdbs {
    /// When the next check is due.
    pub fn health_checks_due(&self) -> Option<u64> {
        self.rdbs.values().map(|r| r.clock.next_check_ms).min()
    }

    /// The members of every cluster due by `due_by`.
    pub fn health_check_targets(&self, due_by: u64) -> Vec<VmId> {
        let vms: BTreeSet<&VmId> = self
            .rdbs
            .values()
            .filter(|r| r.clock.due(due_by))
            .flat_map(|r| r.set.members.iter().map(|m| &m.vm))
            .collect();
        vms.into_iter().cloned().collect()
    }

    /// Runs the checks of every cluster due by `due_by` whose members the
    /// fabric knows both of (read at `now_ms`); the others stay due.
    pub fn run_health_checks(
        &mut self,
        due_by: u64,
        now_ms: u64,
        fabric: &dyn Fabric,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        for r in self.rdbs.values_mut() {
            if !r.clock.due(due_by) || !r.set.members.iter().all(|m| fabric.knows(&m.vm)) {
                continue;
            }
            let label = format!("rdb {}", r.name);
            lines.extend(
                r.set
                    .check(&label, Election::Synchronous, r.clock.thresholds(), fabric),
            );
            r.clock.put_off(now_ms);
        }
        lines
    }

    /// The data plane could not be read: nothing judged, due again an
    /// interval later.
    pub fn skip_health_checks(&mut self, due_by: u64, now_ms: u64) {
        for r in self.rdbs.values_mut() {
            if r.clock.due(due_by) {
                r.clock.put_off(now_ms);
            }
        }
    }

    /// A controller restored from its store checks every cluster from
    /// `now_ms` on.
    pub fn restart_health_checks(&mut self, now_ms: u64) {
        for r in self.rdbs.values_mut() {
            r.clock.next_check_ms = now_ms;
        }
    }
}
