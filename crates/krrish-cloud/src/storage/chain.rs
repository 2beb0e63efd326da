//! A disk as a chain of differencing layers (the notes' 差分卷 and 快照链).
//!
//! Each layer maps block index → content fingerprint (a `u64`). A read walks
//! from a layer down through its parents; a block no layer holds falls
//! through to the disk's base (zeros for a volume, the backing image for a
//! root disk), which the caller supplies.
//!
//! - **snapshot**: the top layer is locked read-only and becomes the
//!   snapshot's layer; a new empty differencing layer goes on top of it.
//! - **revert**: the top becomes a new empty layer on the snapshot's layer.
//!   No snapshot is deleted, so later snapshots stay readable and
//!   revertible; the layers form a tree. What was written since the last
//!   snapshot (the old top) is discarded: unsnapshotted data is not
//!   protected (快照部分是被保护对象, 没有快照的部分就不是).
//! - **delete snapshot**: the snapshot's layer is merged forward into each
//!   layer built on it (a child keeps its own version of a block it already
//!   holds), then removed. No reader — the top or any other snapshot — sees
//!   a different block.
//!
//! Invariant (checked by [`Chain::check`]): every layer but the top is a
//! snapshot's read-only layer, so a chain holds at most snapshots + 1
//! layers; the top is writable and a leaf.
//!
//! The chain trusts its caller (the [`super::Storage`] facade) to have
//! checked names, counts and block ranges; it asserts them.

use crate::name::Name;
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A layer's number within its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LayerId(pub u32);

/// One differencing layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The layer this one differs from; `None`: the disk's base.
    pub parent: Option<LayerId>,
    /// Block index → content written in this layer.
    pub blocks: BTreeMap<u64, u64>,
    /// Locked by a snapshot.
    pub read_only: bool,
}

/// A disk's layers, its top (the layer writes go to) and its snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Blocks in the disk.
    blocks: u64,
    layers: BTreeMap<LayerId, Layer>,
    top: LayerId,
    next_layer: u32,
    /// Snapshot → its locked layer, by the VM that took it (a volume moves
    /// between VMs and keeps the layers of its earlier owners' snapshots).
    snapshots: BTreeMap<VmId, BTreeMap<Name, LayerId>>,
}

impl Chain {
    /// An empty disk of `blocks` blocks: one writable layer on the base.
    pub fn new(blocks: u64) -> Self {
        let mut layers = BTreeMap::new();
        layers.insert(
            LayerId(0),
            Layer {
                parent: None,
                blocks: BTreeMap::new(),
                read_only: false,
            },
        );
        Self {
            blocks,
            layers,
            top: LayerId(0),
            next_layer: 1,
            snapshots: BTreeMap::new(),
        }
    }

    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    pub fn top(&self) -> LayerId {
        self.top
    }

    pub fn layers(&self) -> &BTreeMap<LayerId, Layer> {
        &self.layers
    }

    /// Blocks held in all layers: the space the chain takes beyond its base.
    pub fn stored_blocks(&self) -> u64 {
        self.layers.values().map(|l| l.blocks.len() as u64).sum()
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshots.values().map(BTreeMap::len).sum()
    }

    /// The layer `vm`'s snapshot `name` locked, if this chain holds it.
    pub fn snapshot_layer(&self, vm: &VmId, name: &Name) -> Option<LayerId> {
        self.snapshots.get(vm)?.get(name).copied()
    }

    /// The current content of `block`; `None`: the base's.
    pub fn read(&self, block: u64) -> Option<u64> {
        self.read_from(self.top, block)
    }

    /// `block` as seen from `layer` down; `None`: the base's.
    pub fn read_from(&self, layer: LayerId, block: u64) -> Option<u64> {
        assert!(block < self.blocks, "block {block} of {}", self.blocks);
        let mut at = Some(layer);
        // Bounded: a path is at most as long as the chain has layers.
        for _ in 0..=self.layers.len() {
            let id = at?;
            let l = &self.layers[&id];
            if let Some(&d) = l.blocks.get(&block) {
                return Some(d);
            }
            at = l.parent;
        }
        unreachable!("layer cycle in a chain")
    }

    /// Every block written on the path from the base to `layer`, the
    /// nearest layer winning: the chain flattened as `layer` sees it.
    pub fn flatten_from(&self, layer: LayerId) -> BTreeMap<u64, u64> {
        let mut path = Vec::new();
        let mut at = Some(layer);
        while let Some(id) = at {
            assert!(path.len() <= self.layers.len(), "layer cycle in a chain");
            path.push(id);
            at = self.layers[&id].parent;
        }
        let mut out = BTreeMap::new();
        for id in path.iter().rev() {
            out.extend(self.layers[id].blocks.iter().map(|(&b, &d)| (b, d)));
        }
        out
    }

    pub fn flatten(&self) -> BTreeMap<u64, u64> {
        self.flatten_from(self.top)
    }

    pub(crate) fn write(&mut self, block: u64, data: u64) {
        assert!(block < self.blocks, "block {block} of {}", self.blocks);
        let top = self.layers.get_mut(&self.top).expect("top layer");
        assert!(!top.read_only, "the top layer is writable");
        top.blocks.insert(block, data);
    }

    fn new_layer(&mut self, parent: LayerId) -> LayerId {
        let id = LayerId(self.next_layer);
        self.next_layer = self.next_layer.checked_add(1).expect("layer ids");
        self.layers.insert(
            id,
            Layer {
                parent: Some(parent),
                blocks: BTreeMap::new(),
                read_only: false,
            },
        );
        id
    }

    /// Locks the top as `vm`'s snapshot `name` and starts a new top on it.
    pub(crate) fn snapshot(&mut self, vm: &VmId, name: &Name) {
        assert!(self.snapshot_layer(vm, name).is_none(), "snapshot exists");
        let locked = self.top;
        self.layers.get_mut(&locked).expect("top layer").read_only = true;
        self.snapshots
            .entry(vm.clone())
            .or_default()
            .insert(name.clone(), locked);
        self.top = self.new_layer(locked);
    }

    /// Moves the top back onto the snapshot's layer. Returns how many
    /// unsnapshotted blocks the old top held (now discarded).
    pub(crate) fn revert(&mut self, vm: &VmId, name: &Name) -> u64 {
        let target = self.snapshot_layer(vm, name).expect("snapshot exists");
        let old = self.top;
        assert!(
            !self.layers.values().any(|l| l.parent == Some(old)),
            "the top is a leaf"
        );
        let discarded = self.layers.remove(&old).expect("top layer");
        self.top = self.new_layer(target);
        discarded.blocks.len() as u64
    }

    /// `vm`'s snapshots on this chain (also of ones deleted whose merge
    /// its host had not yet done).
    pub fn snapshots_of(&self, vm: &VmId) -> Vec<Name> {
        self.snapshots
            .get(vm)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// [`Self::delete_snapshot`] if this chain holds the snapshot (a
    /// snapshot never taken here has no layer); whether it did.
    pub(crate) fn delete_snapshot_if_held(&mut self, vm: &VmId, name: &Name) -> bool {
        let held = self.snapshot_layer(vm, name).is_some();
        if held {
            self.delete_snapshot(vm, name);
        }
        held
    }

    /// Merges the snapshot's layer forward into every layer built on it and
    /// removes it.
    pub(crate) fn delete_snapshot(&mut self, vm: &VmId, name: &Name) {
        let per_vm = self.snapshots.get_mut(vm).expect("snapshot exists");
        let gone = per_vm.remove(name).expect("snapshot exists");
        if per_vm.is_empty() {
            self.snapshots.remove(vm);
        }
        let layer = self.layers.remove(&gone).expect("snapshot layer");
        let children: Vec<LayerId> = self
            .layers
            .iter()
            .filter(|(_, l)| l.parent == Some(gone))
            .map(|(&id, _)| id)
            .collect();
        for id in children {
            let child = self.layers.get_mut(&id).expect("child layer");
            for (&b, &d) in &layer.blocks {
                // The child's own write is newer and wins.
                child.blocks.entry(b).or_insert(d);
            }
            child.parent = layer.parent;
        }
    }

    /// The structural invariants; `Err` names the first broken one.
    pub fn check(&self) -> Result<(), String> {
        let top = self.layers.get(&self.top).ok_or("top layer missing")?;
        if top.read_only {
            return Err("top layer read-only".into());
        }
        let mut snap_layers = std::collections::BTreeSet::new();
        for (vm, per_vm) in &self.snapshots {
            for (name, id) in per_vm {
                let l = self
                    .layers
                    .get(id)
                    .ok_or(format!("snapshot {vm}/{name}: layer missing"))?;
                if !l.read_only {
                    return Err(format!("snapshot {vm}/{name}: layer writable"));
                }
                if !snap_layers.insert(*id) {
                    return Err(format!("snapshot {vm}/{name}: layer shared"));
                }
            }
        }
        if self.layers.len() != snap_layers.len() + 1 {
            return Err(format!(
                "{} layers for {} snapshots",
                self.layers.len(),
                snap_layers.len()
            ));
        }
        for (id, l) in &self.layers {
            if *id != self.top && !snap_layers.contains(id) {
                return Err(format!("layer {} is neither top nor snapshot", id.0));
            }
            if l.parent == Some(self.top) {
                return Err("the top has a child".into());
            }
            if let Some(p) = l.parent {
                if !self.layers.contains_key(&p) {
                    return Err(format!("layer {}: parent {} missing", id.0, p.0));
                }
            }
            if l.blocks.keys().any(|&b| b >= self.blocks) {
                return Err(format!("layer {}: block out of range", id.0));
            }
            // Acyclic: the walk to the base ends within len() steps.
            let mut at = l.parent;
            let mut steps = 0;
            while let Some(p) = at {
                steps += 1;
                if steps > self.layers.len() {
                    return Err(format!("layer {}: cycle", id.0));
                }
                at = self.layers[&p].parent;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse("snapshot", s).unwrap()
    }

    #[test]
    fn snapshot_locks_top_and_reads_as_of_it() {
        let vm = VmId::from("vm-a");
        let mut c = Chain::new(8);
        c.write(1, 10);
        c.snapshot(&vm, &n("s1"));
        c.write(1, 11);
        c.write(2, 20);
        let s1 = c.snapshot_layer(&vm, &n("s1")).unwrap();
        assert!(c.layers()[&s1].read_only);
        assert_eq!(c.read(1), Some(11));
        assert_eq!(c.read_from(s1, 1), Some(10));
        assert_eq!(c.read_from(s1, 2), None);
        c.check().unwrap();
    }

    #[test]
    fn delete_merges_forward_and_later_writes_win() {
        let vm = VmId::from("vm-a");
        let mut c = Chain::new(8);
        c.write(1, 10);
        c.write(3, 30);
        c.snapshot(&vm, &n("s1"));
        c.write(1, 11);
        c.snapshot(&vm, &n("s2"));
        c.write(4, 40);
        c.delete_snapshot(&vm, &n("s1"));
        let s2 = c.snapshot_layer(&vm, &n("s2")).unwrap();
        assert_eq!(c.read_from(s2, 1), Some(11));
        assert_eq!(c.read_from(s2, 3), Some(30));
        assert_eq!(c.read(4), Some(40));
        assert_eq!(c.layers().len(), 2);
        // Block 1 was overwritten in the later layer: the merge dropped 10.
        assert_eq!(c.stored_blocks(), 3);
        c.check().unwrap();
    }

    #[test]
    fn revert_keeps_later_snapshots_and_deleting_a_fork_point_feeds_both_branches() {
        let vm = VmId::from("vm-a");
        let mut c = Chain::new(8);
        c.write(0, 1);
        c.snapshot(&vm, &n("s1"));
        c.write(0, 2);
        c.snapshot(&vm, &n("s2"));
        c.write(0, 3);
        assert_eq!(c.revert(&vm, &n("s1")), 1);
        assert_eq!(c.read(0), Some(1));
        let s2 = c.snapshot_layer(&vm, &n("s2")).unwrap();
        assert_eq!(c.read_from(s2, 0), Some(2));
        c.write(5, 5);
        // s1's layer now has two children: s2's layer and the new top.
        c.delete_snapshot(&vm, &n("s1"));
        assert_eq!(c.read(0), Some(1));
        assert_eq!(c.read(5), Some(5));
        let s2 = c.snapshot_layer(&vm, &n("s2")).unwrap();
        assert_eq!(c.read_from(s2, 0), Some(2));
        c.check().unwrap();
        c.revert(&vm, &n("s2"));
        assert_eq!(c.read(0), Some(2));
        assert_eq!(c.read(5), None);
        c.check().unwrap();
    }
}
