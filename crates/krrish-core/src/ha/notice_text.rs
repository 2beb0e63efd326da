//! How each [`Notice`] prints: the wording of traces, status and events.

use super::command::secs;
use super::{DfsEvidence, Notice};
use crate::ids::HostId;

use std::fmt;

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Notice::*;
        match self {
            HostSuspect { host, misses, of } => {
                write!(f, "host {host} suspect: {misses} of {of} heartbeats missed")
            }
            HostRecovered { host } => write!(f, "host {host} heartbeats resumed"),
            HostLease { host, held: true } => write!(f, "host {host} holds a DFS lease again"),
            HostLease { host, held: false } => write!(
                f,
                "host {host} holds no DFS lease (it cannot renew): it takes no VMs until it does"
            ),
            HostOffline {
                host,
                silent_ms,
                evidence: evidence @ DfsEvidence::Renewing { .. },
            } => write!(
                f,
                "host {host} offline: silent for {}, isolated ({evidence}) and the isolation response is power-off-and-restart",
                secs(*silent_ms)
            ),
            HostOffline {
                host,
                silent_ms,
                evidence,
            } => write!(
                f,
                "host {host} offline: silent for {} ({evidence})",
                secs(*silent_ms)
            ),
            HostIsolated {
                host,
                silent_ms,
                evidence,
                response,
            } => write!(
                f,
                "host {host} isolated: silent on management for {} ({evidence}); response {response}",
                secs(*silent_ms)
            ),
            HostRejoined { host, isolated_ms } => write!(
                f,
                "host {host} rejoined after {} isolated: nothing was moved",
                secs(*isolated_ms)
            ),
            FencingHeld { silent, of, why } => write!(
                f,
                "not fencing without independent evidence: {silent} of {of} hosts silent at once; {why}"
            ),
            DfsUnreadable { why } => write!(f, "cannot read the DFS's lease renewals: {why}"),
            VmNetworkLost { host, for_ms } => write!(
                f,
                "host {host} VM network (bond1) down for {}: moving its VMs",
                secs(*for_ms)
            ),
            VmColdFailback { vm, from, to, why } => write!(
                f,
                "vm {vm} cannot live-migrate home ({why}): stopping it on {from} to boot it on {to} from its DFS copy"
            ),
            MigrationInDoubt { vm, fenced, other } => write!(
                f,
                "vm {vm} was migrating between {fenced} and {other}; {fenced} is fenced or rebooted: {other}'s next report (or, while it is cut off, its power-on list on the DFS) tells where it runs"
            ),
            MigrationSettledByDfs { vm, host } => write!(
                f,
                "vm {vm} is not on {host}, as {host}'s power-on list on the DFS tells (its management network is cut): the migration is settled without its report"
            ),
            VmEvacuating { vm, host } => {
                write!(f, "vm {vm} stopping on {host} to restart where the VM network works")
            }
            VmStopFailed { vm, host, why } => {
                write!(f, "vm {vm} could not be stopped on {host}: {why}")
            }
            BondChanged { host, bond, health } => {
                write!(f, "host {host} {bond} ({}) {health}", bond.role())
            }
            FenceStarted { host, method } => write!(f, "fencing {host} by {method}"),
            FenceAttemptFailed { host, method, why } => {
                write!(f, "fencing {host} by {method} failed: {why}")
            }
            LeaseRevoked {
                host,
                expires_at_ms,
                safe_at_ms,
            } => write!(
                f,
                "DFS lease of {host} revoked: expires at {}, safe at {}",
                secs(*expires_at_ms),
                secs(*safe_at_ms)
            ),
            HostFenced { host, method } => write!(f, "host {host} fenced by {method}"),
            FenceGaveUp { host } => write!(
                f,
                "host {host} could not be fenced: its VMs stay down until an operator acts"
            ),
            HostBack { host } => write!(f, "host {host} is back"),
            HostRebooted { host } => write!(f, "host {host} rebooted: its guests died with it"),
            LeaseReinstated { host } => write!(f, "DFS lease of {host} reinstated"),
            SpareActivated { spare } => write!(f, "spare {spare} active"),
            SpareReturned { spare } => write!(f, "spare {spare} returned to the pool"),
            SpareUnavailable { spare } => write!(f, "spare {spare} unavailable"),
            VmBooting { vm, host, reason } => write!(f, "vm {vm} booting on {host} ({reason})"),
            VmRunning { vm, host } => write!(f, "vm {vm} running on {host}"),
            VmBootFailed { vm, host, why } => write!(f, "vm {vm} failed to boot on {host}: {why}"),
            VmWaitingForCapacity { vm, needs } => {
                write!(f, "vm {vm} waiting for capacity (needs {needs})")
            }
            VmWaitingForRule { vm, why } => {
                write!(f, "vm {vm} waits: room only where its rules forbid ({why})")
            }
            VmWaitingForUntriedHost { vm, tried } => write!(
                f,
                "vm {vm} waits for a host it has not failed to boot on (tried {})",
                join_hosts(tried)
            ),
            VmBootUnanswered { vm, host } => write!(
                f,
                "vm {vm}: no answer from {host} before the boot timeout: stopping it there before booting it anywhere else"
            ),
            VmFailoverToProduction { vm, host } => write!(
                f,
                "vm {vm}: no spare can take it; restarting on production host {host}"
            ),
            VmRestartDelayed { vm, host, until_ms } => write!(
                f,
                "vm {vm} waits until {} for {host} to come back before restarting elsewhere (restart delay)",
                secs(*until_ms)
            ),
            HostEnteringMaintenance { host, moving } => write!(
                f,
                "host {host} entering maintenance: it takes no VMs; {moving} VMs live-migrate away"
            ),
            HostInMaintenance { host } => write!(
                f,
                "host {host} in maintenance and drained: it may be powered off (no fence, no failover)"
            ),
            HostLeftMaintenance { host } => write!(f, "host {host} left maintenance: it takes VMs again"),
            HostPoweredOff { host } => write!(
                f,
                "host {host} (in maintenance, running nothing) is silent: taken as powered off, not fenced"
            ),
            DpmStandby { host, load, after } => write!(
                f,
                "DPM puts {host} in standby: the powered-on production hosts are {load} % loaded, {after} % without it; draining it, then powering it off"
            ),
            DpmPowerOn { host, why } => write!(f, "DPM powers {host} on: {why}"),
            DpmPoweredOff { host } => write!(
                f,
                "DPM: {host} is powered off (its BMC confirmed), standing by: no fence, no failover"
            ),
            DpmFailed { host, why } => write!(f, "DPM on {host}: {why}"),
            DrainBlocked { vm, host, why } => write!(
                f,
                "vm {vm} cannot leave {host} (in maintenance) now: {why}; tried again later"
            ),
            DrsMove {
                vm,
                from,
                to,
                from_load,
                to_load,
            } => write!(
                f,
                "DRS: vm {vm} moves {from} -> {to} to balance load ({from} {from_load} %, {to} {to_load} %)"
            ),
            VmInError {
                vm,
                attempts,
                hosts,
                last_error,
            } => write!(
                f,
                "vm {vm} in error: {attempts} boots failed (on {}; last: {last_error}); an operator must start it again",
                join_hosts(hosts)
            ),
            RuleBroken {
                vm,
                host,
                why,
                cause,
            } => {
                write!(
                    f,
                    "vm {vm} placed on {host} breaking a should rule ({why}): {cause}"
                )
            }
            VmWaitingForRepair { vm, host } => {
                write!(
                    f,
                    "vm {vm} waits for {host} to be repaired (restore-on-repair)"
                )
            }
            VmDown { vm, reason } => write!(f, "vm {vm} down: {reason}"),
            VmMigrating { vm, from, to } => write!(f, "vm {vm} live-migrating {from} -> {to}"),
            VmMigrated { vm, to } => write!(f, "vm {vm} migrated to {to}"),
            MigrationBlocked { vm, to, why } => {
                write!(f, "vm {vm} cannot live-migrate to {to}: {why}")
            }
            MigrationFailed { vm, why } => write!(f, "vm {vm} migration failed: {why}"),
            VmVanished { vm, host } => {
                write!(
                    f,
                    "vm {vm} no longer runs on {host} (missing from its reports)"
                )
            }
            StrayCopy { vm, host } => write!(f, "vm {vm} has a stray copy on {host}: stopping it"),
            Restored {
                hosts,
                vms,
                refencing,
                reboot_proof_ms,
            } => {
                write!(
                    f,
                    "state restored: {hosts} hosts, {vms} VMs; fencing {refencing} host(s) again from the start"
                )?;
                match reboot_proof_ms {
                    Some(ms) => write!(f, " unless one shows a new boot within {}", secs(*ms)),
                    None => Ok(()),
                }
            }
            UnknownHost { host } => write!(f, "heartbeat from unknown host {host} ignored"),
        }
    }
}

/// Host names, comma-separated, in the order given.
fn join_hosts(hosts: &[HostId]) -> String {
    hosts
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
