//! Expectations: what a scenario checks ([`Check`]) and how a file's
//! `expect:` items become them, each error located and naming the core's
//! own names (VM states, host verdicts, event kinds).

use crate::cluster::Cluster;
use crate::format::Expectation;
use crate::load::{host_ref, vm_ref, LoadError, Source};
use krrish_cloud::network::dataplane::{Source as PingFrom, Target};
use krrish_cloud::storage::{BackingState, DiskRef};
use krrish_cloud::Name;
use krrish_core::ha::{HostVerdict, VmState};
use krrish_core::{BondHealth, BondName, HostId, VmId};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    VmRunsOn {
        vm: VmId,
        host: Option<HostId>,
    },
    VmState {
        vm: VmId,
        state: &'static str,
    },
    HostState {
        host: HostId,
        state: HostVerdict,
    },
    Bond {
        host: HostId,
        bond: BondName,
        health: BondHealth,
    },
    Spares {
        total: Option<usize>,
        free: Option<usize>,
        active: Option<usize>,
        unavailable: Option<usize>,
    },
    RtoMax {
        vms: Vec<VmId>,
        max_ms: u64,
    },
    RpoMax {
        vms: Vec<VmId>,
        max_ms: u64,
    },
    Failovers(u64),
    TraceContains(String),
    TraceLacks(String),
    /// The cluster is whole again (see the format's `converged`).
    Converged,
    /// A ping through the simulated data plane gets through, or not.
    Ping {
        from: PingFrom,
        to: Target,
        reachable: bool,
    },
    /// The VM's address on a vxnet (`None`: not on it).
    Nic {
        vm: VmId,
        vxnet: Name,
        ip: Option<Ipv4Addr>,
    },
    /// The VM an EIP is associated with (`None`: none).
    Eip {
        eip: Name,
        vm: Option<VmId>,
    },
    /// A block of a disk reads `data` (as of a VM's snapshot if given).
    DiskReads {
        disk: DiskRef,
        snapshot: Option<(VmId, Name)>,
        /// For a volume read now with a `vm` named: read from inside that
        /// VM's guest, which must have the volume plugged in.
        reader: Option<VmId>,
        block: u64,
        data: u64,
    },
    /// The VM a volume is attached to (`None`: detached), and if given its
    /// status.
    Volume {
        volume: Name,
        attached_to: Option<VmId>,
        status: Option<krrish_cloud::storage::VolumeStatus>,
        datastore: Option<Name>,
    },
    /// A datastore's state and the disks on it (`name` given), or the disk
    /// moves queued or copying cloud-wide (`moving`).
    Datastore {
        name: Option<Name>,
        state: Option<String>,
        disks: Option<usize>,
        moving: Option<usize>,
    },
    /// A VM's snapshot and its status (`None`: no such snapshot).
    Snapshot {
        vm: VmId,
        name: Name,
        status: Option<krrish_cloud::storage::SnapshotStatus>,
    },
    /// Guest reboots of a VM completed (ground truth).
    Reboots {
        vm: VmId,
        count: u32,
    },
    /// Where a VM's root disk is based.
    RootDisk {
        vm: VmId,
        host: Option<HostId>,
        backing: Option<BackingState>,
        datastore: Option<Name>,
    },
    /// Requests from `from` to a load balancer's listener.
    Lb(LbCheck),
    /// An RDB cluster's primary (`None`: none), and if given its standby,
    /// epoch and whether its members share a host.
    Rdb {
        name: Name,
        primary: Option<VmId>,
        standby: Option<VmId>,
        epoch: Option<u64>,
        degraded: Option<bool>,
    },
    /// A MongoDB replica set's primary (`None`: none) and epoch.
    Mongodb {
        name: Name,
        primary: Option<VmId>,
        epoch: Option<u64>,
    },
    /// A cache cluster's state (`Some(true)`: ok), and one shard's master
    /// (`None`: none) and epoch.
    Cache {
        name: Name,
        ok: Option<bool>,
        shard: Option<ShardCheck>,
    },
    /// An event of this kind (about this host / VM) was raised (exactly
    /// `count` times, if given), or never.
    Event {
        kind: &'static str,
        host: Option<HostId>,
        vm: Option<VmId>,
        present: bool,
        count: Option<u32>,
    },
}

/// Requests from `from` to a load balancer's listener: served or not;
/// exactly these backends in service; exactly these answering; this share
/// of the requests lost.
#[derive(Clone, Debug, PartialEq)]
pub struct LbCheck {
    pub lb: Name,
    pub listener: u16,
    pub from: PingFrom,
    pub served: Option<bool>,
    pub in_service: Option<Vec<VmId>>,
    pub answered_by: Option<Vec<VmId>>,
    pub lost_percent: Option<u32>,
}

/// One cache shard's expected master and epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardCheck {
    /// From 1.
    pub shard: usize,
    pub master: Option<Option<VmId>>,
    pub epoch: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// `None`: at the end of the run.
    pub at_ms: Option<u64>,
    pub check: Check,
    pub line: usize,
}

pub(crate) fn check(
    src: &Source<'_>,
    at: Option<(usize, usize)>,
    e: Expectation,
    cluster: &Cluster,
    known_vms: &BTreeSet<VmId>,
) -> Result<Check, LoadError> {
    let mut checks = Vec::new();
    let h = |key: &str, name: &str| host_ref(src, key, name, cluster);
    let v = |key: &str, name: &str| vm_ref(src, key, name, known_vms);
    if let Some(x) = e.vm_runs_on {
        let host = if x.host == "nowhere" {
            None
        } else {
            Some(h("host", &x.host)?)
        };
        checks.push(Check::VmRunsOn {
            vm: v("vm", &x.vm)?,
            host,
        });
    }
    if let Some(x) = e.vm_state {
        let state = one_of(
            src,
            at,
            "vm_state.state",
            "a VM state",
            &x.state,
            &VmState::NAMES,
        )?;
        checks.push(Check::VmState {
            vm: v("vm", &x.vm)?,
            state,
        });
    }
    if let Some(x) = e.host_state {
        let names = HostVerdict::ALL.map(HostVerdict::name);
        let name = one_of(
            src,
            at,
            "host_state.state",
            "a host state",
            &x.state,
            &names,
        )?;
        checks.push(Check::HostState {
            host: h("host", &x.host)?,
            state: HostVerdict::from_name(name).expect("listed"),
        });
    }
    if let Some(x) = e.bond_state {
        checks.push(Check::Bond {
            host: h("host", &x.host)?,
            bond: x.bond,
            health: x.health,
        });
    }
    if let Some(x) = e.spares {
        checks.push(Check::Spares {
            total: x.total,
            free: x.free,
            active: x.active,
            unavailable: x.unavailable,
        });
    }
    if let Some(b) = e.rto_max {
        let vms = b
            .vms
            .iter()
            .map(|n| v("vms", n))
            .collect::<Result<_, _>>()?;
        checks.push(Check::RtoMax {
            vms,
            max_ms: b.max.ms(),
        });
    }
    if let Some(b) = e.rpo_max {
        let vms = b
            .vms
            .iter()
            .map(|n| v("vms", n))
            .collect::<Result<_, _>>()?;
        checks.push(Check::RpoMax {
            vms,
            max_ms: b.max.ms(),
        });
    }
    if let Some(n) = e.failovers {
        checks.push(Check::Failovers(n));
    }
    if let Some(s) = e.trace_contains {
        checks.push(Check::TraceContains(s));
    }
    if let Some(s) = e.trace_lacks {
        checks.push(Check::TraceLacks(s));
    }
    for (key, present, r) in [("event", true, e.event), ("no_event", false, e.no_event)] {
        if let Some(r) = r {
            let kind = one_of(
                src,
                at,
                &format!("{key}.kind"),
                "an event kind",
                &r.kind,
                krrish_core::ha::Notice::KINDS,
            )?;
            if r.count.is_some() && !present {
                return Err(src.error(
                    at,
                    "no_event.count: a count belongs on `event` (exactly that many); `no_event` means none",
                ));
            }
            checks.push(Check::Event {
                kind,
                host: r.host.as_deref().map(|x| h("host", x)).transpose()?,
                vm: r.vm.as_deref().map(|x| v("vm", x)).transpose()?,
                present,
                count: r.count,
            });
        }
    }
    let name = |key: &str, value: &str| {
        Name::parse(key, value).map_err(|e| src.error(src.find(key, value).or(at), e.to_string()))
    };
    if let Some(p) = e.ping {
        let from = match p.from.as_str() {
            "internet" => PingFrom::Internet,
            "external" => PingFrom::External,
            vm => PingFrom::Vm(v("from", vm)?),
        };
        let mut to = Vec::new();
        if let Some(x) = &p.to_vm {
            to.push(Target::Vm(v("to_vm", x)?));
        }
        if let Some(x) = &p.to_alias {
            to.push(Target::Alias(name("to_alias", x)?));
        }
        if let Some(x) = &p.to_eip {
            to.push(Target::Eip(name("to_eip", x)?));
        }
        if let Some(x) = p.to_ip {
            to.push(Target::Ip(x));
        }
        let [to] = <[Target; 1]>::try_from(to).map_err(|_| {
            src.error(
                at,
                "ping: give exactly one of to_vm, to_alias, to_eip, to_ip",
            )
        })?;
        checks.push(Check::Ping {
            from,
            to,
            reachable: p.reachable,
        });
    }
    if let Some(n) = e.nic {
        let ip = match n.ip.as_str() {
            "none" => None,
            x => Some(x.parse::<Ipv4Addr>().map_err(|_| {
                src.error(
                    src.find("ip", x).or(at),
                    format!("nic.ip: `{x}` is not an IPv4 address; expected one, or `none`"),
                )
            })?),
        };
        checks.push(Check::Nic {
            vm: v("vm", &n.vm)?,
            vxnet: name("vxnet", &n.vxnet)?,
            ip,
        });
    }
    if let Some(x) = e.eip {
        let vm = match x.vm.as_str() {
            "none" => None,
            vm => Some(v("vm", vm)?),
        };
        checks.push(Check::Eip {
            eip: name("name", &x.name)?,
            vm,
        });
    }
    if let Some(d) = e.disk {
        let vm = d.vm.as_deref().map(|x| v("vm", x)).transpose()?;
        let disk = match (&d.volume, &vm) {
            (Some(x), _) => DiskRef::Volume(name("volume", x)?),
            (None, Some(vm)) => DiskRef::Root(vm.clone()),
            (None, None) => {
                return Err(src.error(at, "disk: give `vm` (its root disk) or `volume`"))
            }
        };
        let reader = match (&disk, &d.snapshot) {
            (DiskRef::Volume(_), None) => vm.clone(),
            _ => None,
        };
        let snapshot = match (&d.snapshot, vm) {
            (Some(s), Some(vm)) => Some((vm, name("snapshot", s)?)),
            (Some(_), None) => {
                return Err(src.error(at, "disk.snapshot: give the `vm` whose snapshot it is"))
            }
            (None, _) => None,
        };
        checks.push(Check::DiskReads {
            disk,
            snapshot,
            reader,
            block: d.block,
            data: d.data,
        });
    }
    if let Some(x) = e.volume {
        let attached_to = match x.attached_to.as_str() {
            "none" => None,
            vm => Some(v("attached_to", vm)?),
        };
        checks.push(Check::Volume {
            volume: name("name", &x.name)?,
            attached_to,
            status: x.status,
            datastore: x
                .datastore
                .as_deref()
                .map(|d| name("datastore", d))
                .transpose()?,
        });
    }
    if let Some(x) = e.snapshot {
        use krrish_cloud::storage::SnapshotStatus as S;
        let status = match x.status.as_str() {
            "creating" => Some(S::Creating),
            "available" => Some(S::Available),
            "absent" => None,
            other => {
                return Err(src.error(
                    src.find("status", other).or(at),
                    format!(
                        "snapshot.status: `{other}` is not a snapshot status; expected one of creating, available, absent"
                    ),
                ))
            }
        };
        checks.push(Check::Snapshot {
            vm: v("vm", &x.vm)?,
            name: name("name", &x.name)?,
            status,
        });
    }
    if let Some(r) = e.reboots {
        checks.push(Check::Reboots {
            vm: v("vm", &r.vm)?,
            count: r.count,
        });
    }
    if let Some(r) = e.root_disk {
        checks.push(Check::RootDisk {
            vm: v("vm", &r.vm)?,
            host: r.host.as_deref().map(|x| h("host", x)).transpose()?,
            backing: r.backing,
            datastore: r
                .datastore
                .as_deref()
                .map(|d| name("datastore", d))
                .transpose()?,
        });
    }
    if let Some(d) = e.datastore {
        if let Some(s) = d.state.as_deref() {
            if !["active", "draining", "drained"].contains(&s) {
                return Err(src.error(
                    src.find("state", s).or(at),
                    format!("datastore.state: `{s}` is not a datastore state; expected one of active, draining, drained"),
                ));
            }
        }
        if d.name.is_none() && (d.state.is_some() || d.disks.is_some()) {
            return Err(src.error(
                at,
                "datastore: `state` and `disks` need the datastore's `name`",
            ));
        }
        if d.state.is_none() && d.disks.is_none() && d.moving.is_none() {
            return Err(src.error(
                at,
                "datastore: expected `state`, `disks` (with `name`) or `moving`",
            ));
        }
        checks.push(Check::Datastore {
            name: d.name.as_deref().map(|n| name("name", n)).transpose()?,
            state: d.state,
            disks: d.disks,
            moving: d.moving,
        });
    }
    if let Some(x) = e.lb {
        checks.push(lb_check(src, at, x, known_vms)?);
    }
    if let Some(x) = e.rdb {
        let name = Name::parse("rdb.name", &x.name)
            .map_err(|e| src.error(src.find("name", &x.name).or(at), e.to_string()))?;
        let primary = match x.primary.as_str() {
            "none" => None,
            vm => Some(vm_ref(src, "primary", vm, known_vms)?),
        };
        let standby = x
            .standby
            .as_deref()
            .map(|vm| vm_ref(src, "standby", vm, known_vms))
            .transpose()?;
        if let (Some(p), Some(s)) = (&primary, &standby) {
            if p == s {
                return Err(src.error(
                    src.find("standby", s.as_str()).or(at),
                    format!("rdb.standby: `{s}` is also the primary"),
                ));
            }
        }
        epoch_from_one(src, at, "rdb", x.epoch)?;
        checks.push(Check::Rdb {
            name,
            primary,
            standby,
            epoch: x.epoch,
            degraded: x.degraded,
        });
    }
    if let Some(x) = e.mongodb {
        let name = Name::parse("mongodb.name", &x.name)
            .map_err(|e| src.error(src.find("name", &x.name).or(at), e.to_string()))?;
        let primary = match x.primary.as_str() {
            "none" => None,
            vm => Some(vm_ref(src, "primary", vm, known_vms)?),
        };
        epoch_from_one(src, at, "mongodb", x.epoch)?;
        checks.push(Check::Mongodb {
            name,
            primary,
            epoch: x.epoch,
        });
    }
    if let Some(x) = e.cache {
        checks.push(cache_check(src, at, x, known_vms)?);
    }
    match e.converged {
        Some(true) => checks.push(Check::Converged),
        Some(false) => return Err(src.error(at, "converged: only `true` can be expected")),
        None => {}
    }
    match checks.len() {
        1 => Ok(checks.pop().expect("one")),
        0 => Err(src.error(at, "expectation has no check: expected one of vm_runs_on, vm_state, host_state, bond_state, spares, rto_max, rpo_max, failovers, trace_contains, trace_lacks, converged, event, no_event, ping, nic, eip, disk, volume, snapshot, root_disk, datastore, reboots, lb, rdb, mongodb, cache")),
        n => Err(src.error(at, format!("expectation has {n} checks; give each its own item"))),
    }
}

/// An `lb:` expectation: the listener a port, the VMs known, something to
/// check.
fn lb_check(
    src: &Source<'_>,
    at: Option<(usize, usize)>,
    x: crate::format::LbCheckRef,
    known_vms: &BTreeSet<VmId>,
) -> Result<Check, LoadError> {
    // The first line from the item's on that has both `key` and `value`.
    let near = |key: &str, value: &str| {
        at.and_then(|(line, _)| {
            src.text
                .lines()
                .enumerate()
                .skip(line.saturating_sub(1))
                .find_map(|(i, l)| {
                    let k = l.find(key)?;
                    let v = l[k..].find(value)? + k;
                    Some((i + 1, v + 1))
                })
        })
        .or(at)
    };
    let lb = Name::parse("lb.name", &x.name)
        .map_err(|e| src.error(near("name", &x.name), e.to_string()))?;
    let listener = krrish_cloud::network::lb::port("lb.listener", x.listener)
        .map_err(|e| src.error(near("listener", &x.listener.to_string()), e.to_string()))?;
    let from = match x.from.as_str() {
        "internet" => PingFrom::Internet,
        "external" => PingFrom::External,
        vm => PingFrom::Vm(vm_ref(src, "from", vm, known_vms)?),
    };
    let vms = |key: &str, list: Option<Vec<String>>| -> Result<Option<Vec<VmId>>, LoadError> {
        let Some(list) = list else { return Ok(None) };
        let mut out = BTreeSet::new();
        for v in &list {
            let id = VmId::new(v.as_str());
            if !known_vms.contains(&id) {
                return Err(src.error(near(key, v), format!("lb.{key}: no VM named `{v}`")));
            }
            if !out.insert(id) {
                return Err(src.error(near(key, v), format!("lb.{key}: `{v}` is listed twice")));
            }
        }
        Ok(Some(out.into_iter().collect()))
    };
    let in_service = vms("backends_in_service", x.backends_in_service)?;
    let answered_by = vms("answered_by", x.answered_by)?;
    if x.served.is_none()
        && in_service.is_none()
        && answered_by.is_none()
        && x.lost_percent.is_none()
    {
        return Err(src.error(
            at,
            "lb: give at least one of served, backends_in_service, answered_by, lost_percent",
        ));
    }
    if let Some(p) = x.lost_percent.filter(|p| *p > 100) {
        return Err(src.error(
            near("lost_percent", &p.to_string()),
            format!("lb.lost_percent: {p} is not a percentage (0-100)"),
        ));
    }
    Ok(Check::Lb(LbCheck {
        lb,
        listener,
        from,
        served: x.served,
        in_service,
        answered_by,
        lost_percent: x.lost_percent,
    }))
}

/// `value` must be one of `allowed` (the core's own names); the error names
/// the field and lists them.
fn one_of(
    src: &Source<'_>,
    at: Option<(usize, usize)>,
    field: &str,
    what: &str,
    value: &str,
    allowed: &[&'static str],
) -> Result<&'static str, LoadError> {
    if let Some(name) = allowed.iter().find(|a| **a == value) {
        return Ok(name);
    }
    let key = field.rsplit('.').next().unwrap_or(field);
    Err(src.error(
        src.find(key, value).or(at),
        format!(
            "{field}: `{value}` is not {what}; expected one of {}",
            allowed.join(", ")
        ),
    ))
}

/// Epochs start at 1: a 0 is refused where it was written.
fn epoch_from_one(
    src: &Source<'_>,
    at: Option<(usize, usize)>,
    what: &str,
    epoch: Option<u64>,
) -> Result<(), LoadError> {
    if epoch == Some(0) {
        return Err(src.error(
            src.find("epoch", "0").or(at),
            format!("{what}.epoch: epochs start at 1"),
        ));
    }
    Ok(())
}

fn cache_check(
    src: &Source<'_>,
    at: Option<(usize, usize)>,
    x: crate::format::CacheCheckRef,
    known_vms: &BTreeSet<VmId>,
) -> Result<Check, LoadError> {
    let name = Name::parse("cache.name", &x.name)
        .map_err(|e| src.error(src.find("name", &x.name).or(at), e.to_string()))?;
    let ok = match x.state.as_deref() {
        None => None,
        Some("ok") => Some(true),
        Some("fail") => Some(false),
        Some(other) => {
            return Err(src.error(
                src.find("state", other).or(at),
                format!("cache.state: expected `ok` or `fail`, not `{other}`"),
            ))
        }
    };
    epoch_from_one(src, at, "cache", x.epoch)?;
    let shard = match x.shard {
        None if x.master.is_some() || x.epoch.is_some() => {
            return Err(src.error(
                at,
                "cache: `master` and `epoch` are a shard's: give `shard` (from 1) too",
            ))
        }
        None => None,
        Some(0) => {
            return Err(src.error(
                src.find("shard", "0").or(at),
                "cache.shard: shards are numbered from 1",
            ))
        }
        Some(n) => Some(ShardCheck {
            shard: n as usize,
            master: x
                .master
                .as_deref()
                .map(|m| match m {
                    "none" => Ok(None),
                    vm => vm_ref(src, "master", vm, known_vms).map(Some),
                })
                .transpose()?,
            epoch: x.epoch,
        }),
    };
    if ok.is_none() && shard.is_none() {
        return Err(src.error(
            at,
            "cache: expected `state`, or `shard` with `master` or `epoch`",
        ));
    }
    Ok(Check::Cache { name, ok, shard })
}
