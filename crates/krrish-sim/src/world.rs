//! Ground truth of the simulated cluster: power, BMCs, NICs, hypervisor
//! domains, DFS leases and syncs. The control plane never reads this
//! directly — only through its drivers — and the checkers judge it.

use crate::trace::TraceBuf;
use krrish_cloud::network::GuestNetwork;
use krrish_cloud::GuestConfig;
use krrish_core::ha::secs;
use krrish_core::lease::LeaseTable;
use krrish_core::{BondHealth, BondName, HostId, HostSpec, VmId, VmSpec};
use std::collections::BTreeMap;

/// How long physical operations take in the simulated world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timings {
    /// From boot command to a running guest.
    pub boot_ms: u64,
    /// A BMC confirming a power-off.
    pub ipmi_answer_ms: u64,
    /// How long an IPMI call waits for a BMC that does not answer.
    pub ipmi_timeout_ms: u64,
    /// One round trip to the DFS (lease renewal, revocation, sync).
    pub dfs_rtt_ms: u64,
    /// Live-migration memory copy rate (pre-copy, dirty pages included).
    pub migrate_mib_per_s: u64,
    /// The final pause to switch over.
    pub migrate_pause_ms: u64,
    pub lease_duration_ms: u64,
    /// A host's own boot after a power cycle (IPMI reboot fence).
    pub host_boot_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            boot_ms: 20_000,
            ipmi_answer_ms: 1_000,
            ipmi_timeout_ms: 5_000,
            dfs_rtt_ms: 20,
            migrate_mib_per_s: 1_000,
            migrate_pause_ms: 300,
            lease_duration_ms: 30_000,
            host_boot_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainState {
    Running,
    /// Receiving a live migration from `from`; not yet running here.
    /// `copy` names the copy (the world's count of copies begun): only
    /// that copy's switch-over completes it.
    Incoming {
        from: HostId,
        copy: u64,
    },
}

#[derive(Clone, Debug)]
pub struct Domain {
    pub state: DomainState,
    /// When this copy's writes last reached the DFS.
    pub last_sync_ms: u64,
    /// The interfaces, EIPs and volumes this host was told to give the
    /// guest.
    pub guest: GuestConfig,
}

#[derive(Clone, Debug)]
pub struct PhysHost {
    pub spec: HostSpec,
    pub powered: bool,
    pub bmc_powered: bool,
    pub boot_id: u64,
    /// Link state of the two member NICs of bond0, bond1, bond2.
    pub nics: [[bool; 2]; 3],
    /// The management path between the controller and this host, outside
    /// the host (switch, cable).
    pub path: PathState,
    /// Packets on that path lost, per hundred (TCP retransmits them: they
    /// arrive late, in order); 0 on a clean path.
    pub path_loss_pct: u8,
    pub domains: BTreeMap<VmId, Domain>,
}

impl PhysHost {
    pub fn bond(&self, b: BondName) -> BondHealth {
        let [a, c] = self.nics[b.index()];
        BondHealth::from_members(a, c)
    }
    pub fn bonds(&self) -> [BondHealth; 3] {
        BondName::ALL.map(|b| self.bond(b))
    }
    /// The storage network works from this host.
    pub fn storage_up(&self) -> bool {
        self.powered && self.bond(BondName::Bond2).carries_traffic()
    }
    /// What the network does to management traffic between the controller
    /// and this host on its side: bond0 down cuts it like a cut cable.
    pub fn path_state(&self) -> PathState {
        if !self.bond(BondName::Bond0).carries_traffic() {
            PathState::Cut
        } else {
            self.path
        }
    }
}

/// A management path's condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathState {
    #[default]
    Ok,
    /// Packets held and delivered later, in order (TCP retransmitting across
    /// a short outage: a congested or flapping switch port).
    Stalled,
    /// Packets dropped and connections broken (a switch rebooting, a cable
    /// pulled).
    Cut,
}

impl PathState {
    /// The worse of two conditions along one path.
    pub fn worst(self, other: PathState) -> PathState {
        self.max(other)
    }
}

/// A VM that stopped running because of a fault, not an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    pub since_ms: u64,
    /// Writes not yet on the DFS when the copy died: lost (the RPO).
    pub unsynced_ms: u64,
    pub cause: String,
}

/// A VM back up after an outage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub vm: VmId,
    pub host: HostId,
    pub at_ms: u64,
    pub rto_ms: u64,
    pub rpo_ms: u64,
}

/// A small seeded generator (SplitMix64): the world's only randomness.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub struct World {
    pub hosts: BTreeMap<HostId, PhysHost>,
    /// The controller's own management link (its switch): a fault here
    /// reaches every host at once.
    pub controller_path: PathState,
    /// The controller cannot reach the DFS's metadata service: lease
    /// revocations, reinstatements and renewal reads fail (the hosts' own
    /// storage paths are unaffected).
    pub dfs_unreachable_from_controller: bool,
    /// The DFS's lease service is down: no renewal, revocation or read.
    pub dfs_service_down: bool,
    /// Hosts a BMC power-cycled, and when they come up again.
    /// Hosts their BMC powers on at a time, and why (a reboot fence, DPM).
    pub power_on_at: BTreeMap<HostId, (u64, &'static str)>,
    pub vms: BTreeMap<VmId, VmSpec>,
    /// VMs the operator asked to terminate: the control plane may forget
    /// them (the checkers do not count them lost).
    pub retired: std::collections::BTreeSet<VmId>,
    /// Guest reboots completed, by VM.
    pub reboots: BTreeMap<VmId, u32>,
    pub leases: LeaseTable,
    pub outages: BTreeMap<VmId, Outage>,
    pub recoveries: Vec<Recovery>,
    pub timings: Timings,
    trace: TraceBuf,
    /// Bumped on every change that a checker cares about.
    pub generation: u64,
    /// Live-migration copies begun (each incoming domain's `copy`).
    pub copies_begun: u64,
    rng: SeededRng,
    /// Live migrations in flight by source host, as of a generation (read
    /// for every heartbeat; rebuilt only when the world changed).
    outgoing: std::cell::RefCell<(u64, BTreeMap<HostId, Vec<VmId>>)>,
    /// Snapshot ops hosts did on VMs' disks since the world last took them
    /// ([`Self::take_disk_ops_done`]): (VM, the last op done).
    disk_ops_done: Vec<(VmId, u64)>,
    /// VMs whose next boots fail, wherever tried, and how many more
    /// ([`crate::Fault::FailBoots`]); never zero.
    pub boots_to_fail: BTreeMap<VmId, u32>,
}

/// Snapshot-op reports the world holds between two takes (each step takes
/// them all).
const DISK_OPS_DONE_MAX: usize = 1 << 16;

impl World {
    /// The snapshot ops hosts did on VMs' disks since the last take: the
    /// simulated worlds apply them to the disks' model at once, as a real
    /// host's disks change when it does them (not when its answer
    /// arrives).
    pub fn take_disk_ops_done(&mut self) -> Vec<(VmId, u64)> {
        std::mem::take(&mut self.disk_ops_done)
    }

    pub(crate) fn disk_ops_done_by_host(&mut self, vm: &VmId, through: u64) {
        assert!(
            self.disk_ops_done.len() < DISK_OPS_DONE_MAX,
            "disk op reports unbounded growth"
        );
        self.disk_ops_done.push((vm.clone(), through));
    }

    /// Every host powered with all links up; every VM running on its home,
    /// fully synced; every host holding a fresh lease.
    pub fn new(
        seed: u64,
        hosts: Vec<HostSpec>,
        vms: Vec<VmSpec>,
        timings: Timings,
        trace: TraceBuf,
    ) -> Self {
        let mut phys: BTreeMap<HostId, PhysHost> = hosts
            .into_iter()
            .map(|spec| {
                (
                    spec.id.clone(),
                    PhysHost {
                        spec,
                        powered: true,
                        bmc_powered: true,
                        boot_id: 1,
                        nics: [[true; 2]; 3],
                        path: PathState::Ok,
                        path_loss_pct: 0,
                        domains: BTreeMap::new(),
                    },
                )
            })
            .collect();
        for vm in &vms {
            let h = phys
                .get_mut(&vm.home)
                .expect("cluster validated: home exists");
            h.domains.insert(
                vm.id.clone(),
                Domain {
                    state: DomainState::Running,
                    last_sync_ms: 0,
                    guest: GuestConfig::default(),
                },
            );
        }
        let mut leases = LeaseTable::new();
        for h in phys.keys() {
            leases.grant_at_start(h.clone(), 0, timings.lease_duration_ms);
        }
        Self {
            retired: Default::default(),
            reboots: BTreeMap::new(),
            hosts: phys,
            controller_path: PathState::Ok,
            dfs_unreachable_from_controller: false,
            dfs_service_down: false,
            power_on_at: BTreeMap::new(),
            vms: vms.into_iter().map(|v| (v.id.clone(), v)).collect(),
            leases,
            outages: BTreeMap::new(),
            recoveries: Vec::new(),
            timings,
            trace,
            generation: 0,
            copies_begun: 0,
            rng: SeededRng::new(seed),
            outgoing: std::cell::RefCell::new((u64::MAX, BTreeMap::new())),
            disk_ops_done: Vec::new(),
            boots_to_fail: BTreeMap::new(),
        }
    }

    /// VMs `h` is live-migrating away now (a copy in flight to another host).
    pub fn migrating_out_of(&self, h: &HostId) -> Vec<VmId> {
        let mut cache = self.outgoing.borrow_mut();
        if cache.0 != self.generation {
            let mut by_source: BTreeMap<HostId, Vec<VmId>> = BTreeMap::new();
            for host in self.hosts.values() {
                for (vm, d) in &host.domains {
                    if let DomainState::Incoming { from, .. } = &d.state {
                        by_source.entry(from.clone()).or_default().push(vm.clone());
                    }
                }
            }
            for vms in by_source.values_mut() {
                vms.sort();
            }
            *cache = (self.generation, by_source);
        }
        cache.1.get(h).cloned().unwrap_or_default()
    }

    /// The operator asked to terminate `vm`.
    pub fn retire_vm(&mut self, vm: &VmId) {
        if self.retired.insert(vm.clone()) {
            self.generation += 1;
        }
    }

    /// A VM the hypervisors are asked to run: known from then on.
    pub fn learn_vm(&mut self, vm: &VmSpec) {
        if !self.vms.contains_key(&vm.id) {
            self.vms.insert(vm.id.clone(), vm.clone());
            self.generation += 1;
        }
    }

    /// One guest's boot time: the configured time ±15 %, seeded.
    pub fn boot_time_ms(&mut self) -> u64 {
        let base = self.timings.boot_ms;
        let spread = base * 3 / 10;
        base - spread / 2 + self.rng.below(spread + 1)
    }

    pub(crate) fn say(&self, now_ms: u64, text: &str) {
        self.trace.push(now_ms, "world", text);
    }

    /// How management traffic between the controller and `h` fares now.
    pub fn management_path(&self, h: &HostId) -> PathState {
        self.hosts.get(h).map_or(PathState::Cut, |p| {
            p.path_state().worst(self.controller_path)
        })
    }

    /// Packets lost per hundred on the management path to `h` (0: none).
    pub fn management_loss_pct(&self, h: &HostId) -> u8 {
        self.hosts.get(h).map_or(0, |p| p.path_loss_pct)
    }

    /// Whether `vm`'s guest runs and has `disk` plugged in (its root disk,
    /// or a volume its host was told of): only then can it read or write
    /// it. Errs saying why not.
    pub fn guest_has_disk(
        &self,
        vm: &VmId,
        disk: &krrish_cloud::storage::DiskRef,
    ) -> Result<(), String> {
        use krrish_cloud::storage::DiskRef;
        let running = self.hosts.values().find_map(|h| {
            h.domains
                .get(vm)
                .filter(|d| d.state == DomainState::Running)
                .map(|d| (&h.spec.id, d))
        });
        let Some((host, d)) = running else {
            return Err(format!("{vm} runs nowhere: no guest to use {disk}"));
        };
        match disk {
            DiskRef::Root(_) => Ok(()),
            DiskRef::Volume(v) if d.guest.volumes.iter().any(|w| w.name == *v) => Ok(()),
            DiskRef::Volume(v) => Err(format!("{vm} on {host} has no volume {v} plugged in")),
        }
    }

    /// The controller can talk to `h`'s agent now.
    pub fn management_up(&self, h: &HostId) -> bool {
        self.hosts.get(h).is_some_and(|p| p.powered) && self.management_path(h) == PathState::Ok
    }

    pub fn host(&self, h: &HostId) -> Option<&PhysHost> {
        self.hosts.get(h)
    }

    /// Hosts where `vm` runs now.
    pub fn running_on(&self, vm: &VmId) -> Vec<HostId> {
        self.hosts
            .values()
            .filter(|h| matches!(h.domains.get(vm), Some(d) if d.state == DomainState::Running))
            .map(|h| h.spec.id.clone())
            .collect()
    }

    pub fn lease_valid(&self, h: &HostId, now_ms: u64) -> bool {
        self.leases.valid(h, now_ms)
    }

    /// Hosts that are writing `vm`'s disk now: a running copy that can reach
    /// the DFS and holds a lease the DFS honours.
    pub fn writers_of(&self, vm: &VmId, now_ms: u64) -> Vec<HostId> {
        self.running_on(vm)
            .into_iter()
            .filter(|h| self.hosts[h].storage_up() && self.lease_valid(h, now_ms))
            .collect()
    }

    /// Stops every domain on `h` because of a fault; records outages.
    pub(crate) fn kill_domains(&mut self, now_ms: u64, h: &HostId, cause: &str) -> usize {
        let host = self.hosts.get_mut(h).expect("caller checked");
        let domains = std::mem::take(&mut host.domains);
        let mut killed = 0;
        for (vm, d) in domains {
            if d.state == DomainState::Running {
                killed += 1;
                self.outages.insert(
                    vm,
                    Outage {
                        since_ms: now_ms,
                        unsynced_ms: now_ms.saturating_sub(d.last_sync_ms),
                        cause: cause.to_string(),
                    },
                );
            }
        }
        // Migrations that were copying from this host die with it.
        for other in self.hosts.values_mut() {
            other.domains.retain(
                |_, d| !matches!(&d.state, DomainState::Incoming { from, .. } if from == h),
            );
        }
        self.generation += 1;
        killed
    }

    pub fn power_off(&mut self, now_ms: u64, h: &HostId, with_bmc: bool, cause: &str) {
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if !host.powered && (!with_bmc || !host.bmc_powered) {
            return;
        }
        host.powered = false;
        if with_bmc {
            host.bmc_powered = false;
        }
        let killed = self.kill_domains(now_ms, h, cause);
        self.say(
            now_ms,
            &format!("{h} powered off ({cause}); {killed} VMs stopped"),
        );
    }

    /// The host is repaired: power, BMC and every NIC back; a new boot; no
    /// domains; its management path restored.
    pub fn power_on(&mut self, now_ms: u64, h: &HostId) {
        if !self.hosts.contains_key(h) {
            return;
        }
        // A live host repaired is rebooted: its guests die, and migrations
        // copying from it with them (found by the adversary: a target kept
        // a dead incoming copy for ever).
        self.kill_domains(now_ms, h, "repair (reboot)");
        let host = self.hosts.get_mut(h).expect("checked");
        host.powered = true;
        host.bmc_powered = true;
        host.boot_id += 1;
        host.nics = [[true; 2]; 3];
        host.path = PathState::Ok;
        host.path_loss_pct = 0;
        // A revocation outlives reboots: only the controller lifts it.
        self.leases.forget_grants(h);
        self.generation += 1;
        self.say(now_ms, &format!("{h} repaired and powered on"));
    }

    /// The BMC powers `h` on after its boot time (`why`: a reboot fence,
    /// DPM).
    pub fn schedule_power_on(&mut self, now_ms: u64, h: &HostId, why: &'static str) {
        let at = now_ms + self.timings.host_boot_ms;
        self.power_on_at.insert(h.clone(), (at, why));
    }

    /// Hosts whose scheduled power-on is due come up: a new boot, no guests,
    /// their links as they were (a reboot mends no cable).
    pub fn power_on_due(&mut self, now_ms: u64) {
        let due: Vec<(HostId, &str)> = self
            .power_on_at
            .iter()
            .filter(|(_, &(at, _))| at <= now_ms)
            .map(|(h, &(_, why))| (h.clone(), why))
            .collect();
        for (h, why) in due {
            self.power_on_at.remove(&h);
            let Some(host) = self.hosts.get_mut(&h) else {
                continue;
            };
            if host.powered || !host.bmc_powered {
                continue; // repaired meanwhile, or lost its power for good
            }
            host.powered = true;
            host.boot_id += 1;
            host.domains.clear();
            self.leases.forget_grants(&h);
            self.generation += 1;
            self.say(now_ms, &format!("{h} powered on again by its BMC ({why})"));
        }
    }

    pub fn renew_lease(&mut self, now_ms: u64, h: &HostId) -> Result<(), String> {
        let host = self.hosts.get(h).ok_or("no such host")?;
        if !host.storage_up() {
            return Err("storage network (bond2) down".into());
        }
        if self.dfs_service_down {
            return Err("the DFS lease service is down".into());
        }
        // The renewal tells what the host runs (its power-on list): every
        // domain, copies coming in included, as of this very instant.
        let vms = host.domains.keys().cloned().collect();
        self.leases
            .renew(now_ms, h, self.timings.lease_duration_ms, None)
            .map_err(|refused| refused.to_string())?;
        let _changed = self.leases.power_on_list(h, vms, now_ms);
        Ok(())
    }

    /// What the DFS tells the controller: for each host that ever renewed,
    /// how long ago its last renewal was.
    pub fn renewals(&self, now_ms: u64) -> krrish_core::lease::LeaseRenewals {
        self.leases.renewals(now_ms)
    }

    /// Returns when the last lease `h` holds expires.
    pub fn revoke_lease(&mut self, now_ms: u64, h: &HostId) -> u64 {
        let at = self.leases.revoke(h);
        self.generation += 1;
        self.say(
            now_ms,
            &format!("DFS revoked the lease of {h} (valid until {})", secs(at)),
        );
        at
    }

    pub fn reinstate_lease(&mut self, now_ms: u64, h: &HostId) {
        if self.leases.reinstate(h) {
            self.generation += 1;
            self.say(now_ms, &format!("DFS reinstated the lease of {h}"));
        }
    }

    pub fn sync_disks(&mut self, now_ms: u64, h: &HostId) -> Result<(), String> {
        let valid = self.lease_valid(h, now_ms);
        let host = self.hosts.get_mut(h).ok_or("no such host")?;
        if !host.storage_up() {
            return Err("storage network (bond2) down".into());
        }
        if host.domains.is_empty() {
            return Ok(()); // nothing to sync
        }
        if !valid {
            return Err("no valid DFS lease".into());
        }
        for d in host.domains.values_mut() {
            if d.state == DomainState::Running {
                d.last_sync_ms = now_ms;
            }
        }
        Ok(())
    }
}

/// The data plane reads ground truth: where guests run, which hosts are
/// powered and which bonds carry traffic.
impl krrish_cloud::network::dataplane::Fabric for World {
    fn running_on(&self, vm: &VmId) -> Vec<HostId> {
        World::running_on(self, vm)
    }

    fn vm_network_up(&self, host: &HostId) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|h| h.powered && h.bond(BondName::Bond1).carries_traffic())
    }

    fn uplink_up(&self, host: &HostId) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|h| h.powered && h.bond(BondName::Bond0).carries_traffic())
    }

    /// What the VM's host was told (one running guest; several: the
    /// first, the ping fails on the split anyway).
    fn plugged(&self, vm: &VmId) -> Option<GuestNetwork> {
        self.hosts.values().find_map(|h| {
            h.domains
                .get(vm)
                .filter(|d| d.state == DomainState::Running)
                .map(|d| d.guest.network.clone())
        })
    }
}
