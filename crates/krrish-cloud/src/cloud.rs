//! [`Cloud`]: everything the controller holds beside the HA core's hosts and
//! VMs, the one place API calls on it are answered, and the hooks by which
//! the HA core's placements and the (simulated) guests reach it.

use crate::cache::Caches;
use crate::mongodb::MongoDbs;
use crate::name::Name;
use crate::network::dataplane::Fabric;
use crate::network::Network;
use crate::rdb::Rdbs;
use crate::replica_set::{self as rs, MemberError, MemberLookup};
use crate::request::{CloudError, CloudReply, CloudRequest, Family};
use crate::storage::{BootPlan, Copier, DiskRef, Storage, BLOCK_BYTES};
use crate::storage::{DiskWriter, WriterOf};
use krrish_core::{HostId, VmId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How fast a host copies an image from the DFS repository in the
/// background (MiB/s): a 20 GiB image takes 205 s.
pub const IMAGE_SYNC_MIB_PER_S: u64 = 100;

/// How long copying `bytes` of image takes.
fn sync_ms(bytes: u64) -> u64 {
    bytes / (1 << 20) * 1000 / IMAGE_SYNC_MIB_PER_S
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cloud {
    pub network: Network,
    #[serde(default)]
    pub storage: Storage,
    /// Bumped by every change to `storage` or the syncs.
    #[serde(default)]
    storage_generation: u64,
    /// Images copying to hosts, and when each copy completes (by host,
    /// then image: JSON object keys must be strings).
    #[serde(default)]
    syncs: BTreeMap<HostId, BTreeMap<Name, u64>>,
    /// Managed RDB clusters (their check clock and counting included).
    #[serde(default)]
    pub rdbs: Rdbs,
    /// Bumped by every change to the managed services (RDBs, MongoDB
    /// replica sets, caches) but their health-check counting.
    #[serde(default)]
    rdb_generation: u64,
    #[serde(default)]
    pub mongodbs: MongoDbs,
    #[serde(default)]
    pub caches: Caches,
}

impl Cloud {
    /// Each managed service's members as a `should` anti-affinity group (an
    /// RDB's primary and standby, a MongoDB replica set's members, each
    /// cache shard's master and replicas): the HA manager keeps them on
    /// different hosts through failovers, restores and migrations whenever
    /// it can, and reports it when it cannot (one spare left for both: the
    /// service up on one host beats half of it down). An operator wanting
    /// them apart at any cost adds a `must` group in the cluster file.
    /// Named `rdb:NAME`, `mongodb:NAME`, `cache:NAME:SHARD`.
    pub fn service_groups(&self) -> Vec<krrish_core::rules::RuleGroup> {
        use krrish_core::rules::{RuleGroup, RuleKind, Strength};
        let group = |name: String, set: &crate::replica_set::ReplicaSet| RuleGroup {
            name,
            strength: Strength::Should,
            kind: RuleKind::AntiAffinity,
            vms: set.members.iter().map(|m| m.vm.clone()).collect(),
        };
        let mut out = Vec::new();
        for (name, r) in &self.rdbs.rdbs {
            out.push(group(format!("rdb:{name}"), &r.set));
        }
        for (name, m) in &self.mongodbs.sets {
            out.push(group(format!("mongodb:{name}"), &m.set));
        }
        for (name, c) in &self.caches.caches {
            for (i, shard) in c.shards.iter().enumerate() {
                out.push(group(format!("cache:{name}:{}", i + 1), shard));
            }
        }
        out
    }

    /// Changes with every change worth saving; equal generations, equal
    /// state but for load-balancer health checks counting towards a
    /// threshold and their clock (see [`crate::network::Network`]).
    pub fn generation(&self) -> u64 {
        self.network.generation() + self.storage_generation + self.rdb_generation
    }

    /// Answers one call at `now_ms`. `vm_exists` says whether the HA core
    /// knows a VM. A refused call changes nothing. Knowing no placements,
    /// it refuses `create-rdb` (see [`Cloud::apply_placed`]).
    pub fn apply(
        &mut self,
        request: CloudRequest,
        now_ms: u64,
        vm_exists: &dyn Fn(&VmId) -> bool,
    ) -> Result<CloudReply, CloudError> {
        self.apply_placed(request, now_ms, vm_exists, &|_| None)
    }

    /// [`Cloud::apply`], with `where_is` saying on which host the HA core
    /// has placed a VM (running or booting): RDB members must be on
    /// different hosts.
    pub fn apply_placed(
        &mut self,
        request: CloudRequest,
        now_ms: u64,
        vm_exists: &dyn Fn(&VmId) -> bool,
        where_is: &dyn Fn(&VmId) -> Option<HostId>,
    ) -> Result<CloudReply, CloudError> {
        match request.family() {
            Family::Service => {
                let changes = !request.is_describe();
                let member_of = |vm: &VmId| self.service_of(vm);
                let lookup = MemberLookup {
                    vm_exists,
                    where_is,
                    member_of: &member_of,
                };
                // The lookup reads the collections the call changes: it is
                // answered on copies, kept only when it succeeds.
                let (mut mongodbs, mut caches) = (self.mongodbs.clone(), self.caches.clone());
                let r = crate::service_calls::apply(
                    &mut mongodbs,
                    &mut caches,
                    request,
                    now_ms,
                    &lookup,
                )?;
                if changes {
                    self.mongodbs = mongodbs;
                    self.caches = caches;
                    self.rdb_generation += 1;
                }
                Ok(r)
            }
            Family::Rdb => {
                if let CloudRequest::CreateRdb {
                    primary, standby, ..
                } = &request
                {
                    self.refuse_other_service_members(&[
                        ("primary", primary),
                        ("standby", standby),
                    ])?;
                }
                let changes = !request.is_describe();
                let r =
                    crate::rdb::calls::apply(&mut self.rdbs, request, now_ms, vm_exists, where_is)?;
                if changes {
                    self.rdb_generation += 1;
                }
                Ok(r)
            }
            Family::Network => {
                crate::network::calls::apply(&mut self.network, request, now_ms, vm_exists)
            }
            Family::Storage => {
                let changes = !request.is_describe();
                let r = crate::storage::calls::apply(&mut self.storage, request, now_ms)?;
                if changes {
                    self.storage_generation += 1;
                }
                Ok(r)
            }
        }
    }

    /// The managed service `vm` is a member of, as `rdb db-1`,
    /// `mongodb m-1` or `cache c-1`.
    pub fn service_of(&self, vm: &VmId) -> Option<String> {
        if let Some(n) = self.rdbs.rdb_of(vm) {
            return Some(format!("rdb {n}"));
        }
        if let Some(n) = self.mongodbs.set_of(vm) {
            return Some(format!("mongodb {n}"));
        }
        self.caches.cache_of(vm).map(|n| format!("cache {n}"))
    }

    /// An RDB's members may serve no MongoDB or cache (the RDB's own
    /// checks refuse members of another RDB).
    fn refuse_other_service_members(&self, named: &[(&str, &String)]) -> Result<(), CloudError> {
        for (field, vm) in named {
            let vm = VmId::new(vm.as_str());
            if self.rdbs.rdb_of(&vm).is_some() {
                continue;
            }
            if let Some(service) = self.service_of(&vm) {
                return Err(rs::ServiceError::from(MemberError::InService {
                    field: field.to_string(),
                    vm,
                    service,
                })
                .into());
            }
        }
        Ok(())
    }

    /// Whether a VM may be launched from `image` (checked before the HA
    /// core places it, so a refused launch leaves nothing behind).
    pub fn check_image(&self, image: &str) -> Result<Name, CloudError> {
        let image = Name::parse("image", image)?;
        self.storage.image(&image)?;
        Ok(image)
    }

    /// A launched VM's root disk over `image`, on the host the core chose.
    /// The host boots it at once — from the DFS copy while the image syncs
    /// there if it lacks the image.
    pub fn create_root_disk(
        &mut self,
        vm: &VmId,
        image: &Name,
        host: &HostId,
        now_ms: u64,
    ) -> Result<BootPlan, CloudError> {
        let plan = self
            .storage
            .create_root_disk(vm.clone(), image, host.clone(), now_ms)?;
        self.after_boot_plan(plan, image, host, now_ms);
        Ok(plan)
    }

    /// Root disks whose VM the HA core now has on another host (`where_is`
    /// answers from the core's records), moved there: failovers, migrations
    /// and failbacks all end here, whichever path told the core.
    pub fn follow_placements(
        &mut self,
        now_ms: u64,
        where_is: &dyn Fn(&VmId) -> Option<HostId>,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let moved: Vec<(VmId, HostId)> = self
            .storage
            .root_disk_hosts()
            .filter_map(|(vm, on)| match where_is(vm) {
                Some(h) if &h != on => Some((vm.clone(), h)),
                _ => None,
            })
            .collect();
        for (vm, host) in moved {
            match self.vm_placed(&vm, &host, now_ms) {
                Some(BootPlan::FromDfs { .. }) => lines.push(format!(
                    "root disk of {vm} now on {host}: based on the DFS copy of its image until it syncs there"
                )),
                Some(BootPlan::Local) => lines.push(format!(
                    "root disk of {vm} now on {host}: based on its local image copy"
                )),
                None => {}
            }
        }
        lines
    }

    /// One step of the disk moves ([`Storage::step_moves`]): copies whose
    /// copier went are abandoned, due ones land (a mirror once its host is
    /// heard from after it), drains queue their disks again, queued moves
    /// start while copy slots are free. `writer_of` says who writes a
    /// VM's disks now. One line each, for the trace.
    pub fn step_disk_moves(&mut self, now_ms: u64, writer_of: WriterOf) -> Vec<String> {
        if !self.storage.has_disk_work() {
            return Vec::new();
        }
        let stepped = self.storage.step_moves(now_ms, writer_of);
        let mut lines = Vec::new();
        for (m, writer) in &stepped.abandoned {
            let why = match (&m.copying, writer) {
                (
                    Some((Copier::Mirror { host, .. }, _)),
                    DiskWriter::On {
                        host: h,
                        storage: false,
                        ..
                    },
                ) if h == host => {
                    format!("{host} lost its way to the DFS (storage network or lease): the mirror failed")
                }
                (Some((Copier::Mirror { host, .. }, _)), DiskWriter::On { host: h, .. })
                    if h == host =>
                {
                    format!("{host} rebooted: the mirror died with its hypervisor")
                }
                (Some((Copier::Mirror { host, .. }, _)), _) => {
                    format!("its VM no longer runs on {host}, whose hypervisor mirrored it")
                }
                _ => "its VM may be running (it writes the disk where it was)".into(),
            };
            lines.push(format!(
                "move of {} to datastore {} abandoned: {why}; the half copy is discarded, it stays on {}",
                m.disk, m.to, m.from
            ));
        }
        for m in &stepped.done {
            lines.push(format!(
                "{} moved to datastore {} ({} GiB from {}, {})",
                m.disk,
                m.to,
                m.gib,
                m.from,
                m.cause.as_str()
            ));
        }
        for m in &stepped.requeued {
            lines.push(format!(
                "{} queued to move to datastore {} (drain of {})",
                m.disk, m.to, m.from
            ));
        }
        for m in &stepped.started {
            lines.push(format!(
                "{} copying to datastore {} ({} GiB, {})",
                m.disk,
                m.to,
                m.gib,
                m.view().state
            ));
        }
        if !lines.is_empty() {
            self.storage_generation += 1;
        }
        lines
    }

    /// The HA core put `vm` on `host` (a failover boot, a migration, a
    /// failback): its root disk follows, re-based on that host's image copy
    /// or, lacking one, on the DFS copy while it syncs. VMs without a root
    /// disk (not launched from an image) have nothing to follow.
    pub fn vm_placed(&mut self, vm: &VmId, host: &HostId, now_ms: u64) -> Option<BootPlan> {
        let image = self.storage.describe_root_disk(vm).ok()?.image;
        let plan = self.storage.move_root_disk(vm, host.clone(), now_ms).ok()?;
        self.storage_generation += 1;
        self.after_boot_plan(plan, &image, host, now_ms);
        Some(plan)
    }

    fn after_boot_plan(&mut self, plan: BootPlan, image: &Name, host: &HostId, now_ms: u64) {
        self.storage_generation += 1;
        if plan == (BootPlan::FromDfs { sync_started: true }) {
            let bytes = self
                .storage
                .image(image)
                .map(|i| i.blocks * BLOCK_BYTES)
                .unwrap_or(0);
            self.syncs
                .entry(host.clone())
                .or_default()
                .insert(image.clone(), now_ms + sync_ms(bytes));
        }
    }

    /// A controller restored from its store: its clock may start anywhere,
    /// so every sync in flight completes its full copy time from now (at
    /// worst late, never early).
    pub fn restored(mut self, now_ms: u64) -> Self {
        self.network.restart_health_checks(now_ms);
        self.rdbs.restart_health_checks(now_ms);
        rs::restart_checks(self.mongodbs.sets.values_mut(), now_ms);
        rs::restart_checks(self.caches.caches.values_mut(), now_ms);
        self.storage.restart_moves(now_ms);
        let storage = &self.storage;
        for images in self.syncs.values_mut() {
            for (image, due) in images.iter_mut() {
                let bytes = storage
                    .image(image)
                    .map(|i| i.blocks * BLOCK_BYTES)
                    .unwrap_or(0);
                *due = now_ms + sync_ms(bytes);
            }
        }
        self
    }

    /// When the next image sync completes or disk copy is due.
    pub fn poll_timeout(&self) -> Option<u64> {
        let syncs = self.syncs.values().flat_map(|m| m.values()).min().copied();
        syncs.into_iter().chain(self.storage.next_move_done()).min()
    }

    /// Completes the syncs due by `now_ms`, re-linking the disks booted
    /// from the DFS copy; one line per sync, for the trace. (Disk copies
    /// due land in [`Cloud::step_disk_moves`], which knows who writes
    /// them.)
    pub fn handle_timeout(&mut self, now_ms: u64) -> Vec<String> {
        self.complete_syncs(now_ms)
    }

    fn complete_syncs(&mut self, now_ms: u64) -> Vec<String> {
        let due: Vec<(HostId, Name)> = self
            .syncs
            .iter()
            .flat_map(|(h, m)| {
                m.iter()
                    .filter(|(_, &t)| t <= now_ms)
                    .map(move |(i, _)| (h.clone(), i.clone()))
            })
            .collect();
        let mut lines = Vec::new();
        for (host, image) in due {
            if let Some(m) = self.syncs.get_mut(&host) {
                m.remove(&image);
                if m.is_empty() {
                    self.syncs.remove(&host);
                }
            }
            self.storage_generation += 1;
            match self.storage.image_synced(&host, &image) {
                Ok(vms) if vms.is_empty() => lines.push(format!("image {image} synced to {host}")),
                Ok(vms) => {
                    let vms: Vec<&str> = vms.iter().map(|v| v.as_str()).collect();
                    lines.push(format!(
                        "image {image} synced to {host}; re-linked the disks of {}",
                        vms.join(", ")
                    ))
                }
                Err(e) => lines.push(format!("image {image} sync to {host}: {e}")),
            }
        }
        lines
    }

    /// A terminated VM lets go of everything: addresses, EIP and alias
    /// associations, attached volumes (kept, detached), its root disk and
    /// snapshots. Returns what it let go of, for the reply.
    pub fn forget_vm(&mut self, vm: &VmId) -> Vec<String> {
        let mut gone = Vec::new();
        for nic in self.network.nics_of(vm) {
            gone.push(format!("{} on vxnet {}", nic.ip, nic.vxnet));
        }
        if let Some(e) = self.network.eip_of(vm) {
            gone.push(format!("eip {}", e.name));
        }
        for (lb, port) in self.network.lb_backends_of(vm) {
            gone.push(format!("backend of load balancer {lb} listener {port}"));
        }
        if let Some(rdb) = self.rdbs.forget_vm(vm) {
            gone.push(format!(
                "rdb {rdb} (a member terminated: the cluster is deleted)"
            ));
            self.rdb_generation += 1;
        }
        if let Some(m) = self.mongodbs.forget_vm(vm) {
            gone.push(format!(
                "mongodb {m} (a member terminated: the replica set is deleted)"
            ));
            self.rdb_generation += 1;
        }
        if let Some(c) = self.caches.forget_vm(vm) {
            gone.push(format!(
                "cache {c} (a member terminated: the cluster is deleted)"
            ));
            self.rdb_generation += 1;
        }
        self.network.forget_vm(vm);
        // Its snapshot work and its disks' moves die with it (its guest is
        // going away).
        self.storage.forget_disk_ops(vm);
        for m in self.storage.forget_moves_of(vm) {
            gone.push(format!(
                "move of its {} to datastore {} (called off)",
                m.disk, m.to
            ));
        }
        for v in self.storage.describe_volumes() {
            if v.attached_to.as_ref() == Some(vm) && self.storage.detach_volume(&v.name, vm).is_ok()
            {
                gone.push(format!("volume {} (detached, kept)", v.name));
            }
        }
        if self.storage.delete_root_disk(vm).is_ok() {
            gone.push("its root disk".into());
            self.syncs_changed();
        }
        gone
    }

    /// The simulated data plane: `vm`'s (simulated) host did its snapshot
    /// ops up to `through` on its disks just now (see
    /// [`crate::storage::Storage::disk_ops_applied`]).
    pub fn disk_ops_applied(&mut self, vm: &VmId, through: u64) -> usize {
        let n = self.storage.disk_ops_applied(vm, through);
        if n > 0 {
            self.storage_generation += 1;
        }
        n
    }

    /// `vm`'s host confirmed doing its snapshot ops up to `through` on its
    /// disks; returns how many that retired.
    pub fn disk_ops_done(&mut self, vm: &VmId, through: u64) -> usize {
        let n = self.storage.disk_ops_done(vm, through);
        if n > 0 {
            self.storage_generation += 1;
        }
        n
    }

    /// The host of the VM `volume` was detached from confirmed unplugging
    /// it, or that VM can run nowhere now: the volume is available again.
    pub fn volume_unplugged(&mut self, volume: &Name) -> bool {
        let was = self.storage.volume_unplugged(volume);
        if was {
            self.storage_generation += 1;
        }
        was
    }

    fn syncs_changed(&mut self) {
        self.storage_generation += 1;
    }

    /// The simulated data plane: a guest wrote `data` to `block` of `disk`.
    /// (Real guests write their qcow2 files; the model keeps per-block
    /// content so snapshot, revert and capture semantics are checked.)
    pub fn guest_write(&mut self, disk: &DiskRef, block: u64, data: u64) -> Result<(), CloudError> {
        self.storage.write(disk, block, data)?;
        self.storage_generation += 1;
        Ok(())
    }

    /// When the next health check is due: a load balancer's listener or an
    /// RDB cluster.
    pub fn health_checks_due(&self) -> Option<u64> {
        [
            self.network.health_checks_due(),
            self.rdbs.health_checks_due(),
            rs::checks_due(self.mongodbs.sets.values()),
            rs::checks_due(self.caches.caches.values()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The VMs the shell must read for the checks due by `due_by` (LB
    /// backends and RDB members), once each.
    pub fn health_check_targets(&self, due_by: u64) -> Vec<VmId> {
        let mut vms = self.network.health_check_targets(due_by);
        vms.extend(self.rdbs.health_check_targets(due_by));
        vms.extend(rs::check_targets(self.mongodbs.sets.values(), due_by));
        vms.extend(rs::check_targets(self.caches.caches.values(), due_by));
        vms.sort();
        vms.dedup();
        vms
    }

    /// Runs the checks due by `due_by` on one read of the data plane:
    /// load balancers' ([`Network::run_health_checks`]) and RDBs' (with
    /// their failovers). One line per change.
    pub fn run_health_checks(
        &mut self,
        due_by: u64,
        now_ms: u64,
        fabric: &dyn Fabric,
    ) -> Vec<String> {
        let mut lines = self.network.run_health_checks(due_by, now_ms, fabric);
        let mut services = self.rdbs.run_health_checks(due_by, now_ms, fabric);
        services.extend(rs::run_checks(
            self.mongodbs.sets.values_mut(),
            due_by,
            now_ms,
            fabric,
        ));
        services.extend(rs::run_checks(
            self.caches.caches.values_mut(),
            due_by,
            now_ms,
            fabric,
        ));
        if !services.is_empty() {
            self.rdb_generation += 1;
        }
        lines.extend(services);
        lines
    }

    /// The data plane could not be read: no check due by `due_by` is
    /// judged.
    pub fn skip_health_checks(&mut self, due_by: u64, now_ms: u64) {
        self.network.skip_health_checks(due_by, now_ms);
        self.rdbs.skip_health_checks(due_by, now_ms);
        rs::skip_checks(self.mongodbs.sets.values_mut(), due_by, now_ms);
        rs::skip_checks(self.caches.caches.values_mut(), due_by, now_ms);
    }
}
