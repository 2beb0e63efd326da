//! Swarms: for each seed, a random cluster and a random fault schedule,
//! written as the text of an ordinary scenario file and loaded by the same
//! loader — so a failing seed *is* a scenario file, and shrinking it leaves
//! a file ready to commit under `scenarios/regressions/`.
//!
//! Two phases (VOPR-style): faults from [`FAULTS_FROM_MS`] to
//! [`FAULTS_UNTIL_MS`], then `heal_all` at [`HEAL_AT_MS`], and the cluster
//! must have converged [`CONVERGE_WITHIN_MS`] later (every protected VM runs
//! once at home, every host up, every spare free, every managed service
//! serving). The checkers judge
//! safety all along.
//!
//! The fault vocabulary: host crash; power loss with the BMC; a dead BMC;
//! one NIC or a whole bond on each network, for a while or until healed;
//! management cuts and stalls of every length (100 ms to 5 min, log-uniform)
//! to one host or at the controller's switch; flapping links; a spare
//! failing while it hosts VMs; the DFS unreachable from the controller; more
//! host failures than spares; the controller crashing mid-failover; operator
//! live migrations; maintenance (a drain, a power-off, the way out); a
//! broken image (a VM's next boots fail) before its host dies — after
//! healing the operator mends it and starts the VM if it ended in `error`.
//! In some seeds an RDB, a MongoDB replica set and a cache shard are
//! created first (`converged` then also wants them serving); in some,
//! placement rule groups bind VMs (affinity, anti-affinity; must, should);
//! in some, DRS balances the hosts all along; in some, DPM powers idle
//! hosts off and on; in some, tenant VMs' disks move between datastores
//! (storage live migration, drains, balancing) while faults strike.

pub use crate::swarm_shrink::{shrink, SHRINK_RUNS_MAX};

use crate::load::{parse_scenario, LoadError, Scenario};
use krrish_core::{HostId, VmId, Zone};
use krrish_sim::world::SeededRng;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const FAULTS_FROM_MS: u64 = 60_000;
pub const FAULTS_UNTIL_MS: u64 = 30 * 60_000;
pub const HEAL_AT_MS: u64 = 40 * 60_000;
/// The convergence bound after healing.
pub const CONVERGE_WITHIN_MS: u64 = 20 * 60_000;
pub const END_MS: u64 = HEAL_AT_MS + CONVERGE_WITHIN_MS;
/// After healing, when the operator starts the VMs whose images broke.
const OPERATOR_START_AFTER_MS: u64 = 5 * 60_000;

/// One seed's cluster and schedule.
#[derive(Clone, Debug)]
pub struct SwarmCase {
    pub seed: u64,
    pub hosts: usize,
    /// `None`: the sizing rule.
    pub spares: Option<usize>,
    pub vms_per_host: usize,
    pub vm_vcpus: u32,
    pub vm_memory_gib: u64,
    /// One more VM per host with HA policy `restore-on-repair`.
    pub restore_on_repair: bool,
    /// One more VM per host with HA off.
    pub ha_off: bool,
    pub isolation_response: &'static str,
    pub fence_action: &'static str,
    /// Timeline items, each `(at, yaml lines of the action)`.
    pub items: Vec<(u64, String)>,
    /// Placement rule groups, each the yaml of one `rules:` entry.
    pub rules: Vec<String>,
    /// The cluster's `drs:` settings (flow yaml), if DRS is on.
    pub drs: Option<String>,
    /// The cluster's `dpm:` settings (flow yaml), if DPM is on (with
    /// failover beyond the spare pool, so it may power hosts on for it).
    pub dpm: Option<String>,
    /// Tenant VMs with volumes whose disks move between datastores while
    /// faults strike ([`storage_moves`]); the run must end with no move
    /// under way.
    pub storage: bool,
}

fn fmt_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl SwarmCase {
    /// One line of parameters, printed for every seed.
    pub fn summary(&self) -> String {
        format!(
            "hosts={} spares={} vms={}x{} ({} vCPU, {} GiB){}{}{}{}{}{} isolation={} fence={} faults={}",
            self.hosts,
            self.spares
                .map(|n| n.to_string())
                .unwrap_or_else(|| "auto".into()),
            self.hosts,
            self.vms_per_host,
            self.vm_vcpus,
            self.vm_memory_gib,
            if self.restore_on_repair {
                " +restore-on-repair"
            } else {
                ""
            },
            if self.ha_off { " +ha-off" } else { "" },
            if self.rules.is_empty() {
                String::new()
            } else {
                format!(" rules={}", self.rules.len())
            },
            if self.drs.is_some() { " +drs" } else { "" },
            if self.dpm.is_some() { " +dpm" } else { "" },
            if self.storage { " +storage" } else { "" },
            self.isolation_response,
            self.fence_action,
            self.items.len()
        )
    }

    fn cluster_yaml(&self) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "cluster:");
        let _ = writeln!(y, "  name: swarm-{}", self.seed);
        let _ = writeln!(
            y,
            "  defaults: {{ vcpus: 32, memory_gib: 128, disk_gib: 2000 }}"
        );
        let _ = writeln!(y, "  host_groups:");
        let racks = self.hosts.div_ceil(20).max(1);
        let _ = writeln!(
            y,
            "    - {{ prefix: hv-, count: {}, zone: ECS, racks: {racks} }}",
            self.hosts
        );
        match self.spares {
            Some(n) => {
                let _ = writeln!(y, "  spares: {n}");
            }
            None => {
                let _ = writeln!(y, "  spares: auto");
            }
        }
        let _ = writeln!(y, "  isolation_response: {}", self.isolation_response);
        let _ = writeln!(y, "  fence_action: {}", self.fence_action);
        let _ = writeln!(y, "  vm_groups:");
        let _ = writeln!(
            y,
            "    - {{ prefix: vm-, per_host: {}, vcpus: {}, memory_gib: {}, disk_gib: 40, ha: restart }}",
            self.vms_per_host, self.vm_vcpus, self.vm_memory_gib
        );
        if self.restore_on_repair {
            let _ = writeln!(
                y,
                "    - {{ prefix: ro-, per_host: 1, vcpus: 2, memory_gib: 4, disk_gib: 20, ha: restore-on-repair }}"
            );
        }
        if self.ha_off {
            let _ = writeln!(
                y,
                "    - {{ prefix: off-, per_host: 1, vcpus: 2, memory_gib: 4, disk_gib: 20, ha: off }}"
            );
        }
        if let Some(drs) = &self.drs {
            let _ = writeln!(y, "  drs: {drs}");
        }
        if let Some(dpm) = &self.dpm {
            let _ = writeln!(y, "  dpm: {dpm}");
            let _ = writeln!(y, "  failover_to_production: true");
        }
        if !self.rules.is_empty() {
            let _ = writeln!(y, "  rules:");
            for r in &self.rules {
                let _ = writeln!(y, "    - {r}");
            }
        }
        y
    }

    /// The scenario file's text.
    pub fn to_yaml(&self, failure: Option<&str>) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "description: >");
        match failure {
            None => {
                let _ = writeln!(
                    y,
                    "  Swarm seed {}: {}. Replay: cargo xtask scenario --swarm --seed {}",
                    self.seed,
                    self.summary(),
                    self.seed
                );
            }
            Some(f) => {
                let _ = writeln!(
                    y,
                    "  Shrunk from swarm seed {} (cargo xtask scenario --swarm --seed {}) to {}.",
                    self.seed,
                    self.seed,
                    self.summary()
                );
                let _ = writeln!(y, "  It failed with: {}", f.replace('\n', " "));
            }
        }
        let _ = writeln!(y, "seed: {}", self.seed);
        y.push_str(&self.cluster_yaml());
        let _ = writeln!(y, "timeline:");
        let mut items = self.items.clone();
        items.sort_by_key(|(at, _)| *at);
        for (at, action) in &items {
            let _ = writeln!(y, "  - at: {}", fmt_ms(*at));
            for line in action.lines() {
                let _ = writeln!(y, "    {line}");
            }
        }
        let _ = writeln!(y, "  - at: {}", fmt_ms(HEAL_AT_MS));
        let _ = writeln!(y, "    heal_all: true");
        // The operator mends the broken images and starts what ended in
        // `error` (refused, and harmless, for a VM that recovered).
        for vm in self.broken_images() {
            let _ = writeln!(y, "  - at: {}", fmt_ms(HEAL_AT_MS));
            let _ = writeln!(y, "    fail_boots: {{ vm: {vm}, count: 0 }}");
            let _ = writeln!(
                y,
                "  - at: {}",
                fmt_ms(HEAL_AT_MS + OPERATOR_START_AFTER_MS)
            );
            let _ = writeln!(y, "    start_instance: {vm}");
        }
        let _ = writeln!(y, "expect:");
        let _ = writeln!(y, "  - converged: true");
        if self.storage {
            // Every disk move ended (landed or abandoned) once healed.
            let _ = writeln!(y, "  - at: {}", fmt_ms(END_MS));
            let _ = writeln!(y, "    datastore: {{ moving: 0 }}");
        }
        let _ = writeln!(y, "end: {}", fmt_ms(END_MS));
        y
    }

    /// The VMs whose boots the schedule breaks (`fail_boots`), once each.
    fn broken_images(&self) -> Vec<String> {
        let mut vms: Vec<String> = self
            .items
            .iter()
            .filter_map(|(_, s)| s.strip_prefix("fail_boots: { vm: "))
            .filter_map(|rest| rest.split(',').next())
            .map(str::to_string)
            .collect();
        vms.sort();
        vms.dedup();
        vms
    }

    /// Loads the case with the scenario loader (`path` names it in errors).
    pub fn scenario(&self, path: &Path) -> Result<Scenario, LoadError> {
        parse_scenario(path, &self.to_yaml(None))
    }

    /// The path the case's file gets under `scenarios/regressions/`.
    pub fn regression_path(&self) -> PathBuf {
        PathBuf::from(format!("scenarios/regressions/swarm-{}.yaml", self.seed))
    }
}

/// Draws from the seed.
struct Draw(SeededRng);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.0.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.0.below(100) < percent
    }
    /// Log-uniform in [lo, hi]: short and long equally likely per decade.
    fn log_ms(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        let u = self.0.below(1_000_000) as f64 / 1_000_000.0;
        let v = (a + (b - a) * u).exp() as u64;
        // Whole milliseconds, rounded to 100 ms above a second.
        if v >= 1000 {
            v / 100 * 100
        } else {
            v.max(lo)
        }
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Names in a generated cluster, read back from the loaded cluster.
struct Names {
    production: Vec<HostId>,
    spares: Vec<HostId>,
    vms: Vec<VmId>,
    /// Each VM and its home host.
    homes: Vec<(VmId, HostId)>,
}

/// The case for `seed`: cluster size 8–190 hosts (most small, a few large),
/// 1–8 faults.
pub fn generate(seed: u64) -> SwarmCase {
    generate_sized(seed, None)
}

/// The case for `seed` with `hosts` production hosts if given (benchmarks
/// hold the size fixed; the rest is drawn as usual).
pub fn generate_sized(seed: u64, hosts: Option<usize>) -> SwarmCase {
    let mut d = Draw(SeededRng::new(seed ^ 0x5357_4152_4d00));
    let drawn = match d.below(10) {
        0..=5 => d.range(8, 24),
        6..=8 => d.range(25, 80),
        _ => d.range(81, 190),
    } as usize;
    let hosts = hosts.unwrap_or(drawn);
    let (vm_vcpus, vm_memory_gib) = *d.pick(&[(2u32, 8u64), (4, 16), (4, 8), (8, 16)]);
    let (restore_on_repair, ha_off) = (d.chance(30), d.chance(30));
    // What fits a 32-vCPU, 128-GiB host beside the small extra VMs.
    let extras = restore_on_repair as u64 + ha_off as u64;
    let fit = ((32 - 2 * extras) / vm_vcpus as u64).min((128 - 4 * extras) / vm_memory_gib);
    let vms_per_host = d.range(1, fit.min(6)) as usize;
    let spares = if d.chance(70) {
        None
    } else {
        Some(d.range(1, 5) as usize)
    };
    let mut case = SwarmCase {
        seed,
        hosts,
        spares,
        vms_per_host,
        vm_vcpus,
        vm_memory_gib,
        restore_on_repair,
        ha_off,
        isolation_response: ["leave-running", "power-off-and-restart"][d.below(2) as usize],
        fence_action: ["off", "off", "reboot"][d.below(3) as usize],
        items: Vec::new(),
        rules: Vec::new(),
        drs: None,
        dpm: None,
        storage: false,
    };
    let names = names(&case);
    let faults = d.range(1, 8);
    for _ in 0..faults {
        fault(&mut d, &names, &mut case.items);
    }
    if d.chance(40) {
        managed_services(&names, &mut case.items);
    }
    // Drawn last: the draws before stay those of the seeds drawn before
    // rules were.
    case.rules = rule_groups(&mut d, &names);
    // DRS in some seeds: balancing while faults strike and heal.
    if d.chance(30) {
        let window = if d.chance(50) {
            String::new()
        } else {
            let from = d.range(0, 50);
            format!(", window: \"00:{from:02}-00:{:02}\"", from + d.range(5, 9))
        };
        case.drs = Some(format!(
            "{{ threshold_percent: {}, max_concurrent: {}, interval: {}s{window} }}",
            d.range(5, 40),
            d.range(1, 3),
            d.range(10, 600)
        ));
    }
    // DPM in some seeds (drawn after DRS, so earlier seeds keep their
    // draws): idle hosts powered off and on while faults strike.
    if d.chance(25) {
        case.dpm = Some(format!(
            "{{ low_percent: {}, high_percent: {}, interval: {}s, power_on_timeout: {}s }}",
            d.range(30, 60),
            d.range(70, 90),
            d.range(20, 300),
            d.range(60, 600)
        ));
    }
    // Storage live migration in some seeds (drawn last, as above).
    if d.chance(30) {
        storage_moves(&mut d, &names, &mut case.items);
        case.storage = true;
    }
    case
}

/// Tenant VMs launched from an image (so they have root disks) on the
/// first production hosts, each with a volume on `ds-a`; during the fault
/// window, storage live migrations of their volumes and root disks
/// between `ds-a`, `ds-b` (and the default `dfs`), a datastore drained and
/// later resumed, a balance. Faults and HA move the VMs under the copies.
fn storage_moves(d: &mut Draw, n: &Names, items: &mut Vec<(u64, String)>) {
    items.push((
        2_000,
        "cloud: { action: create-image, name: swarm-img, size_gib: 1 }".into(),
    ));
    for ds in ["ds-a", "ds-b"] {
        items.push((
            2_000,
            format!("cloud: {{ action: create-datastore, name: {ds}, capacity_gib: 400 }}"),
        ));
    }
    let tenants = d.range(1, 3).min(n.production.len() as u64) as usize;
    for (i, host) in n.production.iter().take(tenants).enumerate() {
        items.push((
            4_000,
            format!("run_instance: {{ name: tenant-{i}, vcpus: 1, memory_gib: 1, image: swarm-img, host: {host} }}"),
        ));
        items.push((
            5_000,
            format!(
                "cloud: {{ action: create-volume, name: vol-{i}, size_gib: {}, provisioning: {}, datastore: ds-a }}",
                d.range(1, 20),
                d.pick(&["thin", "thick"])
            ),
        ));
        items.push((
            6_000,
            format!("cloud: {{ action: attach-volume, volume: vol-{i}, vm: tenant-{i} }}"),
        ));
    }
    for _ in 0..d.range(1, 5) {
        let at = d.range(FAULTS_FROM_MS / 100, FAULTS_UNTIL_MS / 100) * 100;
        let i = d.below(tenants as u64);
        let to = *d.pick(&["ds-a", "ds-b", "dfs"]);
        match d.below(5) {
            0 | 1 => items.push((
                at,
                format!("cloud: {{ action: migrate-disk, volume: vol-{i}, datastore: {to} }}"),
            )),
            2 => items.push((
                at,
                format!("cloud: {{ action: migrate-disk, vm: tenant-{i}, datastore: {to} }}"),
            )),
            3 => {
                let ds = *d.pick(&["ds-a", "ds-b"]);
                items.push((
                    at,
                    format!("cloud: {{ action: drain-datastore, name: {ds} }}"),
                ));
                items.push((
                    at + d.range(60, 600) * 1000,
                    format!("cloud: {{ action: resume-datastore, name: {ds} }}"),
                ));
            }
            _ => items.push((
                at,
                format!(
                    "cloud: {{ action: balance-datastores, threshold_percent: {} }}",
                    d.range(0, 30)
                ),
            )),
        }
    }
}

/// Placement rule groups in some seeds: one to three, each `must` or
/// `should` — affinity among VMs homed on one host, or anti-affinity among
/// the first VMs of two or three hosts (so every must rule holds where the
/// VMs start).
fn rule_groups(d: &mut Draw, n: &Names) -> Vec<String> {
    let mut out = Vec::new();
    if !d.chance(40) {
        return out;
    }
    for i in 0..d.range(1, 3) {
        let strength = *d.pick(&["must", "should"]);
        let on = |h: &HostId| -> Vec<&VmId> {
            n.homes
                .iter()
                .filter(|(_, home)| home == h)
                .map(|(vm, _)| vm)
                .collect()
        };
        let (kind, members): (&str, Vec<&VmId>) = if d.chance(50) {
            let here = on(d.pick(&n.production));
            if here.len() < 2 {
                continue;
            }
            let k = d.range(2, here.len().min(3) as u64) as usize;
            ("affinity", here[..k].to_vec())
        } else {
            let k = d.range(2, 3).min(n.production.len() as u64) as usize;
            let mut hosts = n.production.clone();
            for j in 0..k {
                let pick = j + d.below((hosts.len() - j) as u64) as usize;
                hosts.swap(j, pick);
            }
            let firsts: Vec<&VmId> = hosts[..k]
                .iter()
                .filter_map(|h| on(h).first().copied())
                .collect();
            if firsts.len() < 2 {
                continue;
            }
            ("anti-affinity", firsts)
        };
        let vms: Vec<&str> = members.iter().map(|v| v.as_str()).collect();
        out.push(format!(
            "{{ name: r{i}, kind: {kind}, strength: {strength}, vms: [{}] }}",
            vms.join(", ")
        ));
    }
    out
}

/// When the services are created: after the agents have reported.
const SERVICES_AT_MS: u64 = 10_000;

/// An RDB, a MongoDB replica set and a cache shard of three on the first VM of
/// the first eight production hosts (each service's members on different
/// hosts), created before the faults; `converged` then also requires each
/// to serve again with every member healthy.
fn managed_services(n: &Names, items: &mut Vec<(u64, String)>) {
    let first: Vec<String> = n
        .production
        .iter()
        .take(8)
        .map(|h| format!("vm-{h}-1"))
        .filter(|v| n.vms.iter().any(|x| x.as_str() == v))
        .collect();
    let [a, b, c, d, e, f, g, h] = first.as_slice() else {
        return;
    };
    items.push((
        SERVICES_AT_MS,
        format!("cloud: {{ action: create-rdb, name: swarm-db, primary: {a}, standby: {b} }}"),
    ));
    items.push((
        SERVICES_AT_MS,
        format!("cloud: {{ action: create-mongodb, name: swarm-mongo, members: [{c}, {d}, {e}] }}"),
    ));
    items.push((
        SERVICES_AT_MS,
        format!("cloud: {{ action: create-cache, name: swarm-cache, shards: [[{f}, {g}, {h}]] }}"),
    ));
}

fn names(case: &SwarmCase) -> Names {
    let s = parse_scenario(Path::new("<swarm>"), &case.to_yaml(None))
        .unwrap_or_else(|e| panic!("swarm seed {}: generated cluster invalid: {e}", case.seed));
    let mut n = Names {
        production: Vec::new(),
        spares: Vec::new(),
        vms: s.cluster.vms.iter().map(|v| v.id.clone()).collect(),
        homes: s
            .cluster
            .vms
            .iter()
            .map(|v| (v.id.clone(), v.home.clone()))
            .collect(),
    };
    for h in &s.cluster.hosts {
        if h.zone == Zone::Spare {
            n.spares.push(h.id.clone());
        } else {
            n.production.push(h.id.clone());
        }
    }
    n
}

fn fault(d: &mut Draw, n: &Names, items: &mut Vec<(u64, String)>) {
    let at = d.range(FAULTS_FROM_MS / 100, FAULTS_UNTIL_MS / 100) * 100;
    let all: Vec<&HostId> = n.production.iter().chain(&n.spares).collect();
    let host = |d: &mut Draw| (*d.pick(&all)).clone();
    let prod = |d: &mut Draw| d.pick(&n.production).clone();
    let bond = |d: &mut Draw| *d.pick(&["bond0", "bond1", "bond2"]);
    let mut push = |at: u64, s: String| items.push((at, s));
    match d.below(19) {
        0 | 1 => push(at, format!("crash: {}", prod(d))),
        2 => push(at, format!("power_loss: {}", host(d))),
        3 => {
            let h = host(d);
            push(at, format!("bmc_down: {h}"));
            if d.chance(50) {
                let back = at + d.log_ms(1_000, 600_000);
                push(back, format!("bmc_up: {h}"));
            }
        }
        4 => {
            let (h, b, nic) = (host(d), bond(d), d.below(2));
            let dur = if d.chance(70) {
                format!(", for: {}", fmt_ms(d.log_ms(100, 600_000)))
            } else {
                String::new()
            };
            push(
                at,
                format!("nic_down: {{ host: {h}, bond: {b}, nic: {nic}{dur} }}"),
            );
        }
        5 => {
            let (h, b) = (host(d), bond(d));
            let dur = if d.chance(80) {
                format!(", for: {}", fmt_ms(d.log_ms(100, 600_000)))
            } else {
                String::new()
            };
            push(at, format!("bond_down: {{ host: {h}, bond: {b}{dur} }}"));
        }
        6 | 7 => {
            let dur = fmt_ms(d.log_ms(100, 300_000));
            push(at, format!("cut: {{ host: {}, for: {dur} }}", host(d)));
        }
        8 => {
            let dur = fmt_ms(d.log_ms(100, 60_000));
            push(at, format!("stall: {{ host: {}, for: {dur} }}", host(d)));
        }
        9 => {
            let kind = *d.pick(&["cut", "stall"]);
            let dur = fmt_ms(d.log_ms(100, 120_000));
            push(at, format!("{kind}: {{ controller: true, for: {dur} }}"));
        }
        10 => {
            // A flapping link: short cuts in a row.
            let h = host(d);
            let mut t = at;
            for _ in 0..d.range(3, 6) {
                let dur = d.log_ms(300, 5_000);
                push(t, format!("cut: {{ host: {h}, for: {} }}", fmt_ms(dur)));
                t += dur + d.range(2, 30) * 1000;
            }
        }
        11 => {
            // A spare fails while it hosts the VMs it took over.
            push(at, format!("crash: {}", prod(d)));
            if !n.spares.is_empty() {
                let s = d.pick(&n.spares).clone();
                push(at + d.range(90, 240) * 1000, format!("crash: {s}"));
            }
        }
        12 => {
            let dur = d.log_ms(5_000, 300_000);
            push(at, "dfs: unreachable".into());
            push(at + dur, "dfs: reachable".into());
        }
        13 => {
            // More failures than spares, within half a minute.
            let k = (n.spares.len() + 1).min(n.production.len());
            let mut hosts = n.production.clone();
            for i in 0..k {
                let j = i + d.below((hosts.len() - i) as u64) as usize;
                hosts.swap(i, j);
                push(at + d.below(30_000), format!("crash: {}", hosts[i]));
            }
        }
        14 => {
            // The controller dies in the middle of a failover.
            push(at, format!("crash: {}", prod(d)));
            let c = at + d.range(10, 60) * 1000;
            push(c, "controller: crash".into());
            push(c + d.range(5, 60) * 1000, "controller: restart".into());
        }
        15 => {
            // A lossy path: light loss (retransmission jitter) to heavy
            // (connections giving up), for seconds to minutes.
            let pct = *d.pick(&[2u8, 10, 30, 50, 80]);
            let dur = fmt_ms(d.log_ms(1_000, 300_000));
            push(
                at,
                format!("lossy: {{ host: {}, percent: {pct}, for: {dur} }}", host(d)),
            );
        }
        17 => {
            // Maintenance: a drain (refused if a VM cannot move), perhaps a
            // power-off for it, and the way out.
            let h = prod(d);
            push(at, format!("enter_maintenance: {h}"));
            if d.chance(50) {
                push(at + d.range(60, 300) * 1000, format!("crash: {h}"));
            }
            if d.chance(70) {
                push(
                    at + d.range(120, 900) * 1000,
                    format!("exit_maintenance: {h}"),
                );
            }
        }
        18 => {
            // A broken image: the next boots of a VM fail, then its host dies.
            let vm = d.pick(&n.vms).clone();
            push(
                at,
                format!("fail_boots: {{ vm: {vm}, count: {} }}", d.range(1, 6)),
            );
            push(at + d.range(1, 60) * 1000, format!("crash: {}", prod(d)));
        }
        _ => {
            let vm = d.pick(&n.vms).clone();
            push(
                at,
                format!("migrate: {{ vm: {vm}, to: {} }}", d.pick(&n.production)),
            );
        }
    }
}

/// What kind of failure a run ended in, for "fails the same way": the
/// broken invariant's name, `converged`, or `expectation`.
pub fn failure_kind(failures: &[String]) -> Option<String> {
    let f = failures.first()?;
    if f.starts_with("cannot load") {
        return Some("cannot-load".into());
    }
    if let Some(rest) = f.strip_prefix("invariant ") {
        return rest.split_whitespace().next().map(str::to_string);
    }
    Some(if f.contains("not converged") {
        "converged".into()
    } else {
        "expectation".into()
    })
}

/// Runs a case; `Err` with its failures, or `Err(["cannot load: …"])`.
pub fn run_case(case: &SwarmCase, world: crate::WorldKind) -> Result<(), Vec<String>> {
    let path = PathBuf::from(format!("swarm/seed-{}.yaml", case.seed));
    let s = case
        .scenario(&path)
        .map_err(|e| vec![format!("cannot load: {e}")])?;
    let r = crate::run_scenario(
        &s,
        crate::RunOptions {
            world,
            ..Default::default()
        },
    );
    if r.passed() {
        Ok(())
    } else {
        Err(r.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_generates_the_same_valid_case() {
        for seed in [1, 2, 3, 99, 12345] {
            let (a, b) = (generate(seed), generate(seed));
            assert_eq!(a.to_yaml(None), b.to_yaml(None));
            a.scenario(Path::new("t.yaml"))
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        assert_ne!(generate(1).to_yaml(None), generate(2).to_yaml(None));
    }

    #[test]
    fn failures_are_classified_by_what_broke() {
        let inv = vec!["invariant single-instance broken at 1.000s: x".to_string()];
        assert_eq!(failure_kind(&inv).as_deref(), Some("single-instance"));
        let conv = vec!["expectation at line 3 (end) failed at 9.000s: not converged: x".into()];
        assert_eq!(failure_kind(&conv).as_deref(), Some("converged"));
        let load = vec!["cannot load: x".to_string()];
        assert_eq!(failure_kind(&load).as_deref(), Some("cannot-load"));
        assert_eq!(failure_kind(&[]), None);
    }
}
