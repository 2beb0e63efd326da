//! What the HA manager reports: the [`Notice`]s that make up traces and
//! status, and their kinds as scenario expectations name them (the wording
//! they print as: `notice_text.rs`). No decisions live here, only their
//! vocabulary.

use super::{BootReason, DfsEvidence, DownReason, FenceMethod, IsolationResponse};
use crate::ids::{HostId, VmId};
use crate::model::{BondHealth, BondName, Resources};

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
    /// A migration in doubt waited on `host`, whose management network is
    /// cut: its power-on list on the DFS (sent with its lease renewals)
    /// says the VM is not there.
    MigrationSettledByDfs {
        vm: VmId,
        host: HostId,
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
        "migration-settled-by-dfs",
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
            MigrationSettledByDfs { .. } => "migration-settled-by-dfs",
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
            MigrationSettledByDfs { host, .. } => Some(host),
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
            | MigrationSettledByDfs { vm, .. }
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
