//! The expectations' checks against a simulated world's state: where VMs
//! run, hosts' states, trace lines, the cloud's records (NICs, EIPs,
//! volumes, snapshots, disks' blocks), load balancers and services.

use crate::load::Check;
use krrish_core::ha::secs;
use krrish_sim::world::Recovery;
use krrish_sim::SimulatedWorld;
use std::net::Ipv4Addr;

pub(super) fn evaluate(world: &dyn SimulatedWorld, check: &Check) -> Result<(), String> {
    let core = world.core();
    match check {
        Check::VmRunsOn { vm, host } => {
            let on = world.world().running_on(vm);
            let want: Vec<_> = host.iter().cloned().collect();
            if on == want {
                Ok(())
            } else {
                Err(format!(
                    "vm {vm} runs on [{}], expected {}",
                    on.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", "),
                    host.as_ref().map(|h| h.as_str()).unwrap_or("nowhere")
                ))
            }
        }
        Check::VmState { vm, state } => {
            let got = core
                .vms()
                .get(vm)
                .map(|v| v.state.name())
                .unwrap_or("unknown");
            if got == *state {
                Ok(())
            } else {
                Err(format!("vm {vm} is {got}, expected {state}"))
            }
        }
        Check::HostState { host, state } => {
            let got = core.hosts()[host].verdict();
            if got == *state {
                Ok(())
            } else {
                Err(format!("host {host} is {got}, expected {state}"))
            }
        }
        Check::Bond { host, bond, health } => {
            let got = core.hosts()[host].bonds[bond.index()];
            if got == *health {
                Ok(())
            } else {
                Err(format!("host {host} {bond} is {got}, expected {health}"))
            }
        }
        Check::Spares {
            total,
            free,
            active,
            unavailable,
        } => {
            let (f, a, u) = core.spare_counts();
            let t = f + a + u;
            let mut wrong = Vec::new();
            for (name, want, got) in [
                ("total", total, t),
                ("free", free, f),
                ("active", active, a),
                ("unavailable", unavailable, u),
            ] {
                if let Some(w) = want {
                    if *w != got {
                        wrong.push(format!("{name} {got} (expected {w})"));
                    }
                }
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("spares: {}", wrong.join(", ")))
            }
        }
        Check::RtoMax { vms, max_ms } => bound(world, vms, *max_ms, "RTO", |r| r.rto_ms),
        Check::RpoMax { vms, max_ms } => bound(world, vms, *max_ms, "RPO", |r| r.rpo_ms),
        Check::Failovers(n) => {
            let got = core.failover_boots();
            if got == *n {
                Ok(())
            } else {
                Err(format!("{got} failover boots, expected {n}"))
            }
        }
        Check::Converged => {
            krrish_sim::checkers::converged(&world.world(), &world.core())?;
            services_serving(&world.cloud())
        }
        Check::Ping {
            from,
            to,
            reachable,
        } => {
            let cloud = world.cloud();
            let ground = world.world();
            match (
                krrish_cloud::network::dataplane::ping(&cloud.network, &*ground, from, to),
                reachable,
            ) {
                (Ok(_), true) | (Err(_), false) => Ok(()),
                (Ok(route), false) => Err(format!(
                    "ping from {from} to {to} got through ({}), expected it lost",
                    route.join("; ")
                )),
                (Err(why), true) => Err(format!("ping from {from} to {to} lost: {why}")),
            }
        }
        Check::Lb(c) => lb_check(world, c),
        Check::Rdb {
            name,
            primary,
            standby,
            epoch,
            degraded,
        } => {
            let cloud = world.cloud();
            let r = cloud.rdbs.get(name).map_err(|e| e.to_string())?;
            let show = |v: Option<&krrish_core::VmId>| {
                v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            };
            let mut wrong = Vec::new();
            if r.set.primary.as_ref() != primary.as_ref() {
                wrong.push(format!(
                    "primary {}, expected {}",
                    show(r.set.primary.as_ref()),
                    show(primary.as_ref())
                ));
            }
            if standby.is_some() && r.standby() != standby.as_ref() {
                wrong.push(format!(
                    "standby {}, expected {}",
                    show(r.standby()),
                    show(standby.as_ref())
                ));
            }
            if epoch.is_some_and(|e| e != r.set.epoch) {
                wrong.push(format!(
                    "epoch {}, expected {}",
                    r.set.epoch,
                    epoch.unwrap_or(0)
                ));
            }
            if let Some(d) = degraded {
                let shared = r.shared_host();
                if shared.is_some() != *d {
                    wrong.push(match shared {
                        Some(h) => format!("degraded (members share {h}), expected not"),
                        None => "not degraded, expected degraded".into(),
                    });
                }
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("rdb {name}: {}", wrong.join(", ")))
            }
        }
        Check::Mongodb {
            name,
            primary,
            epoch,
        } => {
            let cloud = world.cloud();
            let m = cloud.mongodbs.get(name).map_err(|e| e.to_string())?;
            let wrong = set_roles_wrong(&m.set, "primary", primary.as_ref(), *epoch);
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("mongodb {name}: {}", wrong.join(", ")))
            }
        }
        Check::Cache { name, ok, shard } => {
            let cloud = world.cloud();
            let c = cloud.caches.get(name).map_err(|e| e.to_string())?;
            let mut wrong = Vec::new();
            if let Some(ok) = ok {
                let want = if *ok { "ok" } else { "fail" };
                if c.state() != want {
                    wrong.push(format!("state {}, expected {want}", c.state()));
                }
            }
            if let Some(x) = shard {
                let Some(s) = c.shard(x.shard) else {
                    return Err(format!(
                        "cache {name}: no shard {} (it has {})",
                        x.shard,
                        c.shards.len()
                    ));
                };
                let master = x.master.as_ref().map(|m| m.as_ref());
                let w = match master {
                    Some(m) => set_roles_wrong(s, "master", m, x.epoch),
                    None => set_roles_wrong(s, "master", s.primary.as_ref(), x.epoch),
                };
                wrong.extend(w.into_iter().map(|w| format!("shard {}: {w}", x.shard)));
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("cache {name}: {}", wrong.join(", ")))
            }
        }
        Check::Nic { vm, vxnet, ip } => {
            let cloud = world.cloud();
            let got = cloud
                .network
                .nics_of(vm)
                .into_iter()
                .find(|n| &n.vxnet == vxnet)
                .map(|n| n.ip);
            if got == *ip {
                Ok(())
            } else {
                let show = |x: Option<Ipv4Addr>| x.map(|i| i.to_string()).unwrap_or("none".into());
                Err(format!(
                    "vm {vm} on vxnet {vxnet}: address {}, expected {}",
                    show(got),
                    show(*ip)
                ))
            }
        }
        Check::DiskReads {
            disk,
            snapshot,
            reader,
            block,
            data,
        } => {
            if let Some(vm) = reader {
                world.world().guest_has_disk(vm, disk)?;
            }
            let cloud = world.cloud();
            let got = match snapshot {
                Some((vm, s)) => cloud.storage.read_at_snapshot(vm, s, disk, *block),
                None => cloud.storage.read(disk, *block),
            }
            .map_err(|e| e.to_string())?;
            let when = snapshot
                .as_ref()
                .map(|(vm, s)| format!(" as of snapshot {s} of {vm}"))
                .unwrap_or_default();
            if got == *data {
                Ok(())
            } else {
                Err(format!(
                    "block {block} of {disk}{when} reads {got}, expected {data}"
                ))
            }
        }
        Check::Snapshot { vm, name, status } => {
            let got = world
                .cloud()
                .storage
                .describe_snapshots(vm)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|s| s.name == *name)
                .map(|s| s.status);
            snapshot_is(vm, name, got, *status)
        }
        Check::Volume {
            volume,
            attached_to,
            status,
            datastore,
        } => {
            let cloud = world.cloud();
            let view = cloud
                .storage
                .describe_volume(volume)
                .map_err(|e| e.to_string())?;
            let got = view.attached_to;
            if datastore.as_ref().is_some_and(|d| d != &view.datastore) {
                Err(format!(
                    "volume {volume} is on datastore {}, expected {}",
                    view.datastore,
                    datastore.as_ref().expect("checked")
                ))
            } else if status.is_some_and(|s| s != view.status) {
                Err(format!(
                    "volume {volume} is {}, expected {}",
                    view.status.as_str(),
                    status.map(|s| s.as_str()).unwrap_or_default()
                ))
            } else if got == *attached_to {
                Ok(())
            } else {
                let show = |x: &Option<krrish_core::VmId>| {
                    x.as_ref().map(|v| v.to_string()).unwrap_or("none".into())
                };
                Err(format!(
                    "volume {volume} is attached to {}, expected {}",
                    show(&got),
                    show(attached_to)
                ))
            }
        }
        Check::Reboots { vm, count } => {
            let got = world.world().reboots.get(vm).copied().unwrap_or(0);
            if got == *count {
                Ok(())
            } else {
                Err(format!("vm {vm} rebooted {got} times, expected {count}"))
            }
        }
        Check::Datastore {
            name,
            state,
            disks,
            moving,
        } => {
            let cloud = world.cloud();
            let mut wrong = Vec::new();
            if let Some(n) = name {
                let all = cloud.storage.describe_datastores();
                let Some(d) = all.iter().find(|d| &d.name == n) else {
                    return Err(format!("datastore {n}: no such datastore"));
                };
                if state.as_ref().is_some_and(|s| s != &d.state) {
                    wrong.push(format!(
                        "is {}, expected {}",
                        d.state,
                        state.as_ref().expect("checked")
                    ));
                }
                if disks.is_some_and(|k| k != d.disks) {
                    wrong.push(format!(
                        "holds {} disks, expected {}",
                        d.disks,
                        disks.expect("checked")
                    ));
                }
            }
            let moves = cloud.storage.describe_disk_moves();
            if moving.is_some_and(|k| k != moves.len()) {
                let shown: Vec<String> = moves
                    .iter()
                    .map(|m| format!("{} -> {} ({})", m.disk, m.to, m.state))
                    .collect();
                wrong.push(format!(
                    "{} disk moves under way, expected {}: {}",
                    moves.len(),
                    moving.expect("checked"),
                    shown.join(", ")
                ));
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                let who = name
                    .as_ref()
                    .map_or("datastores".to_string(), |n| format!("datastore {n}"));
                Err(format!("{who}: {}", wrong.join("; ")))
            }
        }
        Check::RootDisk {
            vm,
            host,
            backing,
            datastore,
        } => {
            let cloud = world.cloud();
            let d = cloud
                .storage
                .describe_root_disk(vm)
                .map_err(|e| e.to_string())?;
            let mut wrong = Vec::new();
            if let Some(h) = host {
                if &d.host != h {
                    wrong.push(format!("on {}, expected {h}", d.host));
                }
            }
            if let Some(b) = backing {
                if &d.backing != b {
                    wrong.push(format!("based {:?}, expected {b:?}", d.backing));
                }
            }
            if let Some(ds) = datastore {
                if &d.datastore != ds {
                    wrong.push(format!("on datastore {}, expected {ds}", d.datastore));
                }
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("root disk of {vm}: {}", wrong.join("; ")))
            }
        }
        Check::Eip { eip, vm } => {
            let cloud = world.cloud();
            let got = cloud.network.eip(eip).map(|e| e.vm.clone());
            match got {
                Ok(got) if got == *vm => Ok(()),
                Ok(got) => {
                    let show = |x: &Option<krrish_core::VmId>| {
                        x.as_ref().map(|v| v.to_string()).unwrap_or("none".into())
                    };
                    Err(format!(
                        "eip {eip} is associated with {}, expected {}",
                        show(&got),
                        show(vm)
                    ))
                }
                Err(e) => Err(e.to_string()),
            }
        }
        Check::Event {
            kind,
            host,
            vm,
            present,
            count,
        } => {
            let events = world.trace().events();
            let found: Vec<String> = events
                .iter()
                .filter(|(_, n)| {
                    n.kind() == *kind
                        && host.as_ref().is_none_or(|h| n.host() == Some(h))
                        && vm.as_ref().is_none_or(|v| n.vm() == Some(v))
                })
                .map(|(at, n)| format!("at {}: {n}", secs(*at)))
                .collect();
            judge_event(kind, host.as_ref(), vm.as_ref(), *present, *count, &found)
        }
        Check::TraceContains(s) => {
            if world.trace().lines().iter().any(|l| l.contains(s.as_str())) {
                Ok(())
            } else {
                Err(format!("the trace has no line containing {s:?}"))
            }
        }
        Check::TraceLacks(s) => match world
            .trace()
            .lines()
            .iter()
            .find(|l| l.contains(s.as_str()))
        {
            None => Ok(()),
            Some(l) => Err(format!("the trace has {l:?}")),
        },
    }
}

/// Requests from `from` to `lb`'s listener, as expected.
fn lb_check(world: &dyn SimulatedWorld, c: &crate::expect::LbCheck) -> Result<(), String> {
    let (lb, listener, from, served) = (&c.lb, c.listener, &c.from, c.served);
    let (in_service, answered_by) = (c.in_service.as_deref(), c.answered_by.as_deref());
    let cloud = world.cloud();
    let ground = world.world();
    let what = format!("load balancer {lb} listener {listener} from {from}");
    let mut wrong = Vec::new();
    if let Some(want) = in_service {
        let got = cloud
            .network
            .load_balancer(lb)
            .map_err(|e| e.to_string())?
            .listener(listener)
            .map_err(|e| e.to_string())?
            .in_service();
        if got != want {
            wrong.push(format!(
                "backends in service [{}], expected [{}]",
                join(&got),
                join(want)
            ));
        }
    }
    let s = krrish_cloud::network::lb::serve::serve(&cloud.network, &*ground, from, lb, listener);
    let lost = |s: &krrish_cloud::network::lb::serve::Served| {
        s.lost_at
            .iter()
            .map(|(vm, why)| format!("{vm}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match (&s, served) {
        (Ok(s), Some(false)) if s.served() => wrong.push(format!(
            "served by [{}], expected not served",
            join(&s.answered_by)
        )),
        (Ok(s), Some(true)) if !s.served() => {
            wrong.push(format!("not served: lost at {}", lost(s)))
        }
        (Err(why), Some(true)) => wrong.push(format!("not served: {why}")),
        _ => {}
    }
    if let Some(want) = answered_by {
        match &s {
            Ok(s) if s.answered_by == want => {}
            Ok(s) => wrong.push(format!(
                "answered by [{}], expected [{}]{}",
                join(&s.answered_by),
                join(want),
                if s.lost_at.is_empty() {
                    String::new()
                } else {
                    format!(" (lost at {})", lost(s))
                }
            )),
            Err(_) if want.is_empty() => {}
            Err(why) => wrong.push(format!(
                "answered by none, expected [{}]: {why}",
                join(want)
            )),
        }
    }
    if let Some(want) = c.lost_percent {
        match &s {
            Ok(s) if s.lost_percent == want => {}
            Ok(s) => wrong.push(format!(
                "{}% of requests lost, expected {want}%{}",
                s.lost_percent,
                if s.lost_at.is_empty() {
                    String::new()
                } else {
                    format!(" (lost at {})", lost(s))
                }
            )),
            Err(_) if want == 100 => {}
            Err(why) => wrong.push(format!("all requests lost, expected {want}%: {why}")),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {}", wrong.join("; ")))
    }
}

fn bound(
    world: &dyn SimulatedWorld,
    vms: &[krrish_core::VmId],
    max_ms: u64,
    what: &str,
    get: impl Fn(&Recovery) -> u64,
) -> Result<(), String> {
    let w = world.world();
    let rs: Vec<&Recovery> = w
        .recoveries
        .iter()
        .filter(|r| vms.is_empty() || vms.contains(&r.vm))
        .collect();
    if rs.is_empty() {
        return Err(format!(
            "no recovery happened{}",
            if vms.is_empty() {
                String::new()
            } else {
                format!(" for {}", join(vms))
            }
        ));
    }
    for vm in vms {
        if !rs.iter().any(|r| &r.vm == vm) {
            return Err(format!("{vm} never recovered"));
        }
    }
    let over: Vec<String> = rs
        .iter()
        .filter(|r| get(r) > max_ms)
        .map(|r| format!("{} {what} {}", r.vm, secs(get(r))))
        .collect();
    if over.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "over the {what} bound of {}: {}",
            secs(max_ms),
            over.join(", ")
        ))
    }
}

fn join(vms: &[krrish_core::VmId]) -> String {
    vms.iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What differs between a replica set and the expected primary (called
/// `role`) and epoch.
fn set_roles_wrong(
    set: &krrish_cloud::replica_set::ReplicaSet,
    role: &str,
    primary: Option<&krrish_core::VmId>,
    epoch: Option<u64>,
) -> Vec<String> {
    let show =
        |v: Option<&krrish_core::VmId>| v.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
    let mut wrong = Vec::new();
    if set.primary.as_ref() != primary {
        wrong.push(format!(
            "{role} {}, expected {}",
            show(set.primary.as_ref()),
            show(primary)
        ));
    }
    if let Some(e) = epoch.filter(|e| *e != set.epoch) {
        wrong.push(format!("epoch {}, expected {e}", set.epoch));
    }
    wrong
}

/// Part of `converged`: every managed service serves again — an RDB and a
/// MongoDB replica set with a primary, a cache with every shard's master —
/// with every member healthy.
fn services_serving(cloud: &krrish_cloud::Cloud) -> Result<(), String> {
    let mut wrong = Vec::new();
    let mut judge = |what: String, set: &krrish_cloud::replica_set::ReplicaSet| {
        if set.primary.is_none() {
            wrong.push(format!("{what} has no primary"));
        }
        for m in set.members.iter().filter(|m| !m.healthy) {
            wrong.push(format!("{what}: member {} unhealthy", m.vm));
        }
    };
    for r in cloud.rdbs.rdbs.values() {
        judge(format!("rdb {}", r.name), &r.set);
    }
    for m in cloud.mongodbs.sets.values() {
        judge(format!("mongodb {}", m.name), &m.set);
    }
    for c in cloud.caches.caches.values() {
        for (i, s) in c.shards.iter().enumerate() {
            judge(format!("cache {} shard {}", c.name, i + 1), s);
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("not converged: {}", wrong.join("; ")))
    }
}

/// A snapshot's status against the expected one (`None`: absent).
pub fn snapshot_is(
    vm: &krrish_core::VmId,
    name: &krrish_cloud::Name,
    got: Option<krrish_cloud::storage::SnapshotStatus>,
    want: Option<krrish_cloud::storage::SnapshotStatus>,
) -> Result<(), String> {
    let show =
        |s: Option<krrish_cloud::storage::SnapshotStatus>| s.map_or("absent", |s| s.as_str());
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "snapshot {name} of {vm} is {}, expected {}",
            show(got),
            show(want)
        ))
    }
}

/// An `event`/`no_event` expectation judged against the first matching
/// event found (`found`: how it reads), in any world.
pub fn judge_event(
    kind: &str,
    host: Option<&krrish_core::HostId>,
    vm: Option<&krrish_core::VmId>,
    present: bool,
    count: Option<u32>,
    found: &[String],
) -> Result<(), String> {
    let what = format!(
        "{kind}{}{}",
        host.map(|h| format!(" on {h}")).unwrap_or_default(),
        vm.map(|v| format!(" for {v}")).unwrap_or_default()
    );
    match (found.first(), present, count) {
        (_, true, Some(n)) if found.len() == n as usize => Ok(()),
        (_, true, Some(n)) => Err(format!(
            "{} {what} events were raised, expected exactly {n}{}",
            found.len(),
            if found.is_empty() {
                String::new()
            } else {
                format!(": {}", found.join("; "))
            }
        )),
        (Some(_), true, None) | (None, false, _) => Ok(()),
        (None, true, None) => Err(format!("no {what} event was raised")),
        (Some(e), false, _) => Err(format!("a {what} event was raised {e}")),
    }
}
