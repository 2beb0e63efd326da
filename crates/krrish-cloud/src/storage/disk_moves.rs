//! Disk moves under way: who copies each disk (its VM's host mirroring
//! it, or the DFS), when a copy lands or is abandoned, and the copies
//! started as slots free up — [`Storage::step_moves`], driven by what the
//! HA core says of each disk's writer ([`DiskWriter`]). Queuing, drains
//! and balancing live in [`super::datastore`].

use super::datastore::{copy_ms, DiskMove, DISK_MOVES_AT_ONCE};
use super::{DiskRef, Storage};
use krrish_core::{HostId, VmId};
use serde::{Deserialize, Serialize};

/// Who copies a disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Copier {
    /// The hypervisor of the host its VM runs on, in that host's boot,
    /// mirroring the guest's writes.
    Mirror { host: HostId, boot: u64 },
    /// The DFS, with no guest writing the disk.
    Dfs,
}

/// Who writes a disk now, as the HA core knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskWriter {
    /// No guest: a detached volume, or a VM that surely runs nowhere.
    Nowhere,
    /// Its VM runs on `host`, which is up in boot `boot`; its agent was
    /// last heard at `heard_ms`, reaching the DFS (`storage`: its storage
    /// network up and a lease held) or not.
    On {
        host: HostId,
        boot: u64,
        heard_ms: u64,
        storage: bool,
    },
    /// Its VM may be alive where nothing can mirror it now: booting,
    /// migrating, stopping, its host suspect or being fenced.
    InFlux,
}

/// Who writes a VM's disks now ([`DiskWriter`]), as the HA core says.
pub type WriterOf<'a> = &'a dyn Fn(&VmId) -> DiskWriter;

/// What one [`Storage::step_moves`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MovesStepped {
    /// Copies given up, with who writes the disk now.
    pub abandoned: Vec<(DiskMove, DiskWriter)>,
    /// Drains' disks queued again.
    pub requeued: Vec<DiskMove>,
    /// Copies completed: the disk lives on its target.
    pub done: Vec<DiskMove>,
    /// Copies started.
    pub started: Vec<DiskMove>,
}

impl Storage {
    /// Whether disk moves are queued or copying, or a datastore is in
    /// maintenance: [`crate::Cloud::follow_placements`] has work.
    pub fn has_disk_work(&self) -> bool {
        !self.disk_moves.is_empty() || self.datastores.values().any(|d| d.draining)
    }

    /// When the next copy under way is due (a mirror completes only once
    /// its host is heard from after that).
    pub fn next_move_done(&self) -> Option<u64> {
        self.disk_moves
            .iter()
            .filter(|m| !m.awaiting_report)
            .filter_map(|m| m.copying.as_ref().map(|(_, t)| *t))
            .min()
    }

    /// Lands a completed move: the disk lives on its target now.
    fn land(&mut self, m: &DiskMove) {
        match &m.disk {
            DiskRef::Root(vm) => {
                if let Some(d) = self.root_disks.get_mut(vm) {
                    d.datastore = m.to.clone();
                }
            }
            DiskRef::Volume(v) => {
                if let Some(v) = self.volumes.get_mut(v) {
                    v.datastore = m.to.clone();
                }
            }
        }
    }

    /// The VM whose guest writes `disk` (a root disk's VM, an attached
    /// volume's).
    fn writer_vm(&self, disk: &DiskRef) -> Option<VmId> {
        match disk {
            DiskRef::Root(vm) => Some(vm.clone()),
            DiskRef::Volume(v) => self.volumes.get(v)?.attached_to.clone(),
        }
    }

    fn writer(&self, disk: &DiskRef, writer_of: WriterOf) -> DiskWriter {
        self.writer_vm(disk)
            .map_or(DiskWriter::Nowhere, |vm| writer_of(&vm))
    }

    /// One step of the copies, at `now_ms`:
    /// - a mirror whose VM left its host (or whose host rebooted, or that
    ///   now runs nowhere) is abandoned; one due completes once its host's
    ///   agent is heard from after the due time (the host reports the job
    ///   done — a host that died before then never does); while its VM is
    ///   in flux (migrating, its host suspect) it waits;
    /// - a DFS copy is abandoned when its disk's VM may be running (it
    ///   writes the source), and completes when due;
    /// - queued moves start while slots are free: mirrored by the host its
    ///   VM runs on, copied by the DFS if it runs nowhere, left queued
    ///   while it is in flux.
    pub fn step_moves(&mut self, now_ms: u64, writer_of: WriterOf) -> MovesStepped {
        let mut stepped = MovesStepped::default();
        let mut kept = Vec::new();
        for m in std::mem::take(&mut self.disk_moves) {
            let Some((copier, due)) = &m.copying else {
                kept.push(m);
                continue;
            };
            let writer = self.writer(&m.disk, writer_of);
            let (lost, done) = match (copier, &writer) {
                (
                    Copier::Mirror { host, boot },
                    DiskWriter::On {
                        host: h,
                        boot: b,
                        heard_ms,
                        storage,
                    },
                ) => {
                    // A host cut off from the DFS fails its mirror job.
                    if h != host || b != boot || !storage {
                        (true, false)
                    } else {
                        (false, now_ms >= *due && *heard_ms >= *due)
                    }
                }
                (Copier::Mirror { .. }, DiskWriter::InFlux) => (false, false),
                (Copier::Mirror { .. }, DiskWriter::Nowhere) => (true, false),
                (Copier::Dfs, DiskWriter::Nowhere) => (false, now_ms >= *due),
                (Copier::Dfs, _) => (true, false),
            };
            let overdue = now_ms >= *due;
            if lost {
                stepped.abandoned.push((m, writer));
            } else if done {
                self.land(&m);
                stepped.done.push(m);
            } else {
                let mut m = m;
                m.awaiting_report = overdue;
                kept.push(m);
            }
        }
        self.disk_moves = kept;
        stepped.requeued = self.requeue_drains(now_ms);
        let mut copying = self
            .disk_moves
            .iter()
            .filter(|m| m.copying.is_some())
            .count();
        for i in 0..self.disk_moves.len() {
            if copying >= DISK_MOVES_AT_ONCE {
                break;
            }
            if self.disk_moves[i].copying.is_some() {
                continue;
            }
            let copier = match self.writer(&self.disk_moves[i].disk, writer_of) {
                DiskWriter::On {
                    host,
                    boot,
                    storage: true,
                    ..
                } => Copier::Mirror { host, boot },
                DiskWriter::On { storage: false, .. } => continue,
                DiskWriter::Nowhere => Copier::Dfs,
                DiskWriter::InFlux => continue,
            };
            let m = &mut self.disk_moves[i];
            m.copying = Some((copier, now_ms + copy_ms(m.gib)));
            copying += 1;
            stepped.started.push(m.clone());
        }
        stepped
    }

    /// After a controller restart: every copy under way takes its full
    /// time again from now (at worst late, never early).
    pub fn restart_moves(&mut self, now_ms: u64) {
        for m in &mut self.disk_moves {
            if let Some((_, due)) = &mut m.copying {
                *due = now_ms + copy_ms(m.gib);
                m.awaiting_report = false;
            }
        }
    }

    /// Moves of `vm`'s disks (its root disk, its attached volumes), called
    /// off as the VM is terminated: its guest goes, and so do the mirrors.
    pub fn forget_moves_of(&mut self, vm: &VmId) -> Vec<DiskMove> {
        let writes = |m: &DiskMove| self.writer_vm(&m.disk).as_ref() == Some(vm);
        let (gone, left): (Vec<DiskMove>, Vec<DiskMove>) =
            self.disk_moves.iter().cloned().partition(writes);
        self.disk_moves = left;
        gone
    }
}
