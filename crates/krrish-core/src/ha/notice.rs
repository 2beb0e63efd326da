//! What the HA manager reports: the [`Notice`]s that make up traces and
//! status, their kinds as scenario expectations name them, and the wording
//! they print as. No decisions live here, only their vocabulary.

use super::command::secs;
use super::{BootReason, DfsEvidence, DownReason, FenceMethod, IsolationResponse};
use crate::ids::{HostId, VmId};
use crate::model::{BondHealth, BondName, Resources};
use std::fmt;

/// Something the HA manager decided or observed, for traces and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    HostSuspect {
        host: HostId,
        misses: u32,
        of: u32,
    },
    HostRecovered {
        host: HostId,
    },
    /// Dead: silent on management, and the DFS shows it silent too (or
    /// cannot say, or the isolation response is to power it off).
    HostOffline {
        host: HostId,
        silent_ms: u64,
        evidence: DfsEvidence,
    },
    /// Silent on management for the detection window, alive on the DFS
    /// (or the DFS unreadable and fencing held): its VMs are left running.
    HostIsolated {
        host: HostId,
        silent_ms: u64,
        evidence: DfsEvidence,
        response: IsolationResponse,
    },
    /// An isolated host heartbeats again: nothing was moved, nothing to do.
    HostRejoined {
        host: HostId,
        isolated_ms: u64,
    },
    /// Many hosts silent at once, or too many fenced without evidence
    /// lately: the controller suspects the fault is at its own end.
    FencingHeld {
        silent: usize,
        of: usize,
        why: String,
    },
    DfsUnreadable {
        why: String,
    },
    /// A live host's VM network has been down for the grace: its VMs move.
    VmNetworkLost {
        host: HostId,
        for_ms: u64,
    },
    /// A VM that cannot live-migrate home moves cold.
    VmColdFailback {
        vm: VmId,
        from: HostId,
        to: HostId,
        why: String,
    },
    /// One side of a VM's migration is fenced: where it runs is read from
    /// the other side's next report.
    MigrationInDoubt {
        vm: VmId,
        fenced: HostId,
        other: HostId,
    },
    VmEvacuating {
        vm: VmId,
        host: HostId,
    },
    VmStopFailed {
        vm: VmId,
        host: HostId,
        why: String,
    },
    BondChanged {
        host: HostId,
        bond: BondName,
        health: BondHealth,
    },
    /// The host's agent holds a DFS lease again (`held`), or holds none
    /// (it cannot renew: it takes no VMs until it does).
    HostLease {
        host: HostId,
        held: bool,
    },
    FenceStarted {
        host: HostId,
        method: FenceMethod,
    },
    FenceAttemptFailed {
        host: HostId,
        method: FenceMethod,
        why: String,
    },
    LeaseRevoked {
        host: HostId,
        expires_at_ms: u64,
        safe_at_ms: u64,
    },
    HostFenced {
        host: HostId,
        method: FenceMethod,
    },
    FenceGaveUp {
        host: HostId,
    },
    HostBack {
        host: HostId,
    },
    HostRebooted {
        host: HostId,
    },
    LeaseReinstated {
        host: HostId,
    },
    SpareActivated {
        spare: HostId,
    },
    SpareReturned {
        spare: HostId,
    },
    SpareUnavailable {
        spare: HostId,
    },
    VmBooting {
        vm: VmId,
        host: HostId,
        reason: BootReason,
    },
    VmRunning {
        vm: VmId,
        host: HostId,
    },
    VmBootFailed {
        vm: VmId,
        host: HostId,
        why: String,
    },
    VmWaitingForCapacity {
        vm: VmId,
        needs: Resources,
    },
    /// Relocating after failed boots, and the only hosts with room are ones
    /// where its boot already failed.
    VmWaitingForUntriedHost {
        vm: VmId,
        tried: Vec<HostId>,
    },
    /// No answer to its boot before the boot timeout: stopped there before
    /// it is booted anywhere else; not counted as a failed boot.
    VmBootUnanswered {
        vm: VmId,
        host: HostId,
    },
    /// No spare could take it: it restarts on a production host.
    VmFailoverToProduction {
        vm: VmId,
        host: HostId,
    },
    /// Its host failed; its restart elsewhere waits until `until_ms` for
    /// the host to come back (its `restart_delay`).
    VmRestartDelayed {
        vm: VmId,
        host: HostId,
        until_ms: u64,
    },
    /// An operator put the host in maintenance: it takes no VMs, and
    /// `moving` VMs live-migrate away.
    HostEnteringMaintenance {
        host: HostId,
        moving: usize,
    },
    /// The host in maintenance runs nothing: it may be powered off (no
    /// fence, no failover).
    HostInMaintenance {
        host: HostId,
    },
    HostLeftMaintenance {
        host: HostId,
    },
    /// A host in maintenance, drained, went silent: taken as powered off.
    HostPoweredOff {
        host: HostId,
    },
    /// A VM still on a host in maintenance cannot move now (reported once
    /// per failed try; tried again after the migration back-off).
    DrainBlocked {
        vm: VmId,
        host: HostId,
        why: String,
    },
    /// DRS moves a VM from the most loaded production host to a less
    /// loaded one (loads in per cent, before the move).
    DrsMove {
        vm: VmId,
        from: HostId,
        to: HostId,
        from_load: u32,
        to_load: u32,
    },
    /// DPM puts a production host in standby: it drains, then is powered
    /// off (loads of the powered-on production hosts, per cent: now, and
    /// on the hosts left after it).
    DpmStandby {
        host: HostId,
        load: u32,
        after: u32,
    },
    /// The BMC confirmed DPM's power-off: the host is off, standing by.
    DpmPoweredOff {
        host: HostId,
    },
    /// DPM powers a standby host on: capacity is short.
    DpmPowerOn {
        host: HostId,
        why: String,
    },
    /// A DPM power-off or power-on did not work.
    DpmFailed {
        host: HostId,
        why: String,
    },
    /// Every boot allowed failed: it stays in `error` until an operator
    /// starts it again.
    VmInError {
        vm: VmId,
        attempts: u32,
        hosts: Vec<HostId>,
        last_error: String,
    },
    /// Room exists, but only where a `must` rule forbids the VM.
    VmWaitingForRule {
        vm: VmId,
        why: String,
    },
    /// A VM was placed breaking a `should` rule, for `cause`.
    RuleBroken {
        vm: VmId,
        host: HostId,
        why: String,
        cause: crate::rules::BreakCause,
    },
    VmWaitingForRepair {
        vm: VmId,
        host: HostId,
    },
    VmDown {
        vm: VmId,
        reason: DownReason,
    },
    VmMigrating {
        vm: VmId,
        from: HostId,
        to: HostId,
    },
    VmMigrated {
        vm: VmId,
        to: HostId,
    },
    MigrationBlocked {
        vm: VmId,
        to: HostId,
        why: String,
    },
    MigrationFailed {
        vm: VmId,
        why: String,
    },
    VmVanished {
        vm: VmId,
        host: HostId,
    },
    StrayCopy {
        vm: VmId,
        host: HostId,
    },
    UnknownHost {
        host: HostId,
    },
    /// The controller restarted from its store.
    Restored {
        hosts: usize,
        vms: usize,
        refencing: usize,
        /// How long hosts caught mid-fence have to show a new boot first.
        reboot_proof_ms: Option<u64>,
    },
}

impl Notice {
    /// Every kind's name, as scenario expectations write it.
    pub const KINDS: &'static [&'static str] = &[
        "host-suspect",
        "host-recovered",
        "host-lease-held",
        "host-lease-lost",
        "host-offline",
        "host-isolated",
        "host-rejoined",
        "fencing-held",
        "dfs-unreadable",
        "vm-network-lost",
        "vm-cold-failback",
        "migration-in-doubt",
        "vm-evacuating",
        "vm-stop-failed",
        "bond-changed",
        "fence-started",
        "fence-attempt-failed",
        "lease-revoked",
        "host-fenced",
        "fence-gave-up",
        "host-back",
        "host-rebooted",
        "lease-reinstated",
        "spare-activated",
        "spare-returned",
        "spare-unavailable",
        "vm-booting",
        "vm-running",
        "vm-boot-failed",
        "vm-waiting-for-capacity",
        "vm-waiting-for-untried-host",
        "vm-restart-delayed",
        "vm-boot-unanswered",
        "vm-failover-to-production",
        "host-entering-maintenance",
        "host-in-maintenance",
        "host-left-maintenance",
        "host-powered-off",
        "drain-blocked",
        "drs-move",
        "dpm-standby",
        "dpm-powered-off",
        "dpm-power-on",
        "dpm-failed",
        "vm-error",
        "vm-waiting-for-rule",
        "rule-broken",
        "vm-waiting-for-repair",
        "vm-down",
        "vm-migrating",
        "vm-migrated",
        "migration-blocked",
        "migration-failed",
        "vm-vanished",
        "stray-copy",
        "unknown-host",
        "restored",
    ];

    /// The kind's name (one of [`Self::KINDS`]).
    pub fn kind(&self) -> &'static str {
        use Notice::*;
        match self {
            HostSuspect { .. } => "host-suspect",
            HostRecovered { .. } => "host-recovered",
            HostOffline { .. } => "host-offline",
            HostIsolated { .. } => "host-isolated",
            HostRejoined { .. } => "host-rejoined",
            FencingHeld { .. } => "fencing-held",
            DfsUnreadable { .. } => "dfs-unreadable",
            VmNetworkLost { .. } => "vm-network-lost",
            VmColdFailback { .. } => "vm-cold-failback",
            MigrationInDoubt { .. } => "migration-in-doubt",
            VmEvacuating { .. } => "vm-evacuating",
            VmStopFailed { .. } => "vm-stop-failed",
            BondChanged { .. } => "bond-changed",
            HostLease { held: true, .. } => "host-lease-held",
            HostLease { held: false, .. } => "host-lease-lost",
            FenceStarted { .. } => "fence-started",
            FenceAttemptFailed { .. } => "fence-attempt-failed",
            LeaseRevoked { .. } => "lease-revoked",
            HostFenced { .. } => "host-fenced",
            FenceGaveUp { .. } => "fence-gave-up",
            HostBack { .. } => "host-back",
            HostRebooted { .. } => "host-rebooted",
            LeaseReinstated { .. } => "lease-reinstated",
            SpareActivated { .. } => "spare-activated",
            SpareReturned { .. } => "spare-returned",
            SpareUnavailable { .. } => "spare-unavailable",
            VmBooting { .. } => "vm-booting",
            VmRunning { .. } => "vm-running",
            VmBootFailed { .. } => "vm-boot-failed",
            VmWaitingForCapacity { .. } => "vm-waiting-for-capacity",
            VmWaitingForUntriedHost { .. } => "vm-waiting-for-untried-host",
            VmInError { .. } => "vm-error",
            VmRestartDelayed { .. } => "vm-restart-delayed",
            VmBootUnanswered { .. } => "vm-boot-unanswered",
            VmFailoverToProduction { .. } => "vm-failover-to-production",
            HostEnteringMaintenance { .. } => "host-entering-maintenance",
            HostInMaintenance { .. } => "host-in-maintenance",
            HostLeftMaintenance { .. } => "host-left-maintenance",
            HostPoweredOff { .. } => "host-powered-off",
            DrainBlocked { .. } => "drain-blocked",
            DrsMove { .. } => "drs-move",
            DpmStandby { .. } => "dpm-standby",
            DpmPoweredOff { .. } => "dpm-powered-off",
            DpmPowerOn { .. } => "dpm-power-on",
            DpmFailed { .. } => "dpm-failed",
            VmWaitingForRule { .. } => "vm-waiting-for-rule",
            RuleBroken { .. } => "rule-broken",
            VmWaitingForRepair { .. } => "vm-waiting-for-repair",
            VmDown { .. } => "vm-down",
            VmMigrating { .. } => "vm-migrating",
            VmMigrated { .. } => "vm-migrated",
            MigrationBlocked { .. } => "migration-blocked",
            MigrationFailed { .. } => "migration-failed",
            VmVanished { .. } => "vm-vanished",
            StrayCopy { .. } => "stray-copy",
            UnknownHost { .. } => "unknown-host",
            Restored { .. } => "restored",
        }
    }

    /// The host the event is about, if one (for a VM event: where it is,
    /// goes or went; for a spare event: the spare).
    pub fn host(&self) -> Option<&HostId> {
        use Notice::*;
        match self {
            HostSuspect { host, .. }
            | HostRecovered { host }
            | HostOffline { host, .. }
            | HostIsolated { host, .. }
            | HostRejoined { host, .. }
            | VmNetworkLost { host, .. }
            | VmEvacuating { host, .. }
            | VmStopFailed { host, .. }
            | BondChanged { host, .. }
            | HostLease { host, .. }
            | FenceStarted { host, .. }
            | FenceAttemptFailed { host, .. }
            | LeaseRevoked { host, .. }
            | HostFenced { host, .. }
            | FenceGaveUp { host }
            | HostBack { host }
            | HostRebooted { host }
            | LeaseReinstated { host }
            | VmBooting { host, .. }
            | VmRunning { host, .. }
            | VmBootFailed { host, .. }
            | VmWaitingForRepair { host, .. }
            | RuleBroken { host, .. }
            | HostEnteringMaintenance { host, .. }
            | VmRestartDelayed { host, .. }
            | VmBootUnanswered { host, .. }
            | VmFailoverToProduction { host, .. }
            | HostInMaintenance { host }
            | HostLeftMaintenance { host }
            | HostPoweredOff { host }
            | DpmStandby { host, .. }
            | DpmPoweredOff { host }
            | DpmPowerOn { host, .. }
            | DpmFailed { host, .. }
            | DrainBlocked { host, .. }
            | VmVanished { host, .. }
            | StrayCopy { host, .. }
            | UnknownHost { host } => Some(host),
            SpareActivated { spare } | SpareReturned { spare } | SpareUnavailable { spare } => {
                Some(spare)
            }
            VmColdFailback { to, .. }
            | DrsMove { to, .. }
            | VmMigrating { to, .. }
            | VmMigrated { to, .. }
            | MigrationBlocked { to, .. } => Some(to),
            MigrationInDoubt { fenced, .. } => Some(fenced),
            FencingHeld { .. }
            | DfsUnreadable { .. }
            | VmWaitingForCapacity { .. }
            | VmWaitingForUntriedHost { .. }
            | VmInError { .. }
            | VmWaitingForRule { .. }
            | VmDown { .. }
            | MigrationFailed { .. }
            | Restored { .. } => None,
        }
    }

    /// The VM the event is about, if one.
    pub fn vm(&self) -> Option<&VmId> {
        use Notice::*;
        match self {
            VmColdFailback { vm, .. }
            | MigrationInDoubt { vm, .. }
            | VmEvacuating { vm, .. }
            | VmStopFailed { vm, .. }
            | VmBooting { vm, .. }
            | VmRunning { vm, .. }
            | VmBootFailed { vm, .. }
            | VmWaitingForCapacity { vm, .. }
            | VmWaitingForUntriedHost { vm, .. }
            | VmInError { vm, .. }
            | DrainBlocked { vm, .. }
            | DrsMove { vm, .. }
            | VmRestartDelayed { vm, .. }
            | VmBootUnanswered { vm, .. }
            | VmFailoverToProduction { vm, .. }
            | VmWaitingForRule { vm, .. }
            | RuleBroken { vm, .. }
            | VmWaitingForRepair { vm, .. }
            | VmDown { vm, .. }
            | VmMigrating { vm, .. }
            | VmMigrated { vm, .. }
            | MigrationBlocked { vm, .. }
            | MigrationFailed { vm, .. }
            | VmVanished { vm, .. }
            | StrayCopy { vm, .. } => Some(vm),
            _ => None,
        }
    }
}

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
                "vm {vm} was migrating between {fenced} and {other}; {fenced} is fenced or rebooted: {other}'s next report tells where it runs"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_lists_every_kind_once_and_events_name_their_host() {
        let mut k = Notice::KINDS.to_vec();
        k.sort_unstable();
        k.dedup();
        assert_eq!(k.len(), Notice::KINDS.len());
        let n = Notice::HostFenced {
            host: "hv-01".into(),
            method: FenceMethod::Ipmi,
        };
        assert!(Notice::KINDS.contains(&n.kind()));
        assert_eq!(n.host().map(|h| h.as_str()), Some("hv-01"));
        assert_eq!(n.vm(), None);
    }
}
