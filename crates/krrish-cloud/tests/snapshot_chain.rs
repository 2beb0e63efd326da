//! Model-based test of snapshot chains through the `Storage` facade.
//!
//! A VM's root disk (over an image) and a thin volume attached to it take
//! random writes, VM snapshots, snapshot deletions, reverts, the image's
//! sync and relink, and captures. The model is trivially correct: the full
//! content of each disk now and at every snapshot, as plain vectors. After
//! every step the disks' current content and every remaining snapshot's
//! content must equal the model's, refusals must change nothing, and the
//! chains' invariants must hold.

use krrish_cloud::storage::image::fingerprint;
use krrish_cloud::storage::{DiskRef, Provisioning, Storage, StorageLimits, BLOCK_BYTES};
use krrish_cloud::Name;
use krrish_core::{HostId, VmId};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const IMAGE_BLOCKS: u64 = 64;
const IMAGE_SEED: u64 = 42;
/// Writes land in the first blocks, so they collide across layers.
const HOT_BLOCKS: u64 = 12;
const SNAPSHOTS_MAX: usize = 4;
const NAMES: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Write { volume: bool, block: u64, data: u64 },
    Snapshot(usize),
    Delete(usize),
    Revert(usize),
    Synced,
    Capture,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 0..HOT_BLOCKS, 1..1000u64)
            .prop_map(|(volume, block, data)| Op::Write { volume, block, data }),
        3 => (0..NAMES).prop_map(Op::Snapshot),
        2 => (0..NAMES).prop_map(Op::Delete),
        2 => (0..NAMES).prop_map(Op::Revert),
        1 => Just(Op::Synced),
        1 => Just(Op::Capture),
    ]
}

fn name(s: &str) -> Name {
    Name::parse("name", s).unwrap()
}

fn snap(i: usize) -> Name {
    name(&format!("s{i}"))
}

/// The disks' full content: `[root, volume]`, blocks 0..HOT_BLOCKS plus
/// one far block each.
type Content = [Vec<u64>; 2];

struct Model {
    now: Content,
    snapshots: BTreeMap<usize, Content>,
    touched: BTreeSet<u64>,
    synced: bool,
}

fn probe_blocks(volume: bool) -> Vec<u64> {
    let far = if volume { 1023 } else { IMAGE_BLOCKS - 1 };
    (0..HOT_BLOCKS).chain([far]).collect()
}

fn disks() -> [DiskRef; 2] {
    [
        DiskRef::Root(VmId::from("vm-a")),
        DiskRef::Volume(name("vol")),
    ]
}

fn read_now(s: &Storage) -> Content {
    let [r, v] = disks();
    [
        probe_blocks(false)
            .into_iter()
            .map(|b| s.read(&r, b).unwrap())
            .collect(),
        probe_blocks(true)
            .into_iter()
            .map(|b| s.read(&v, b).unwrap())
            .collect(),
    ]
}

fn read_snapshot(s: &Storage, i: usize) -> Content {
    let vm = VmId::from("vm-a");
    let [r, v] = disks();
    let at = |d: &DiskRef, b| s.read_at_snapshot(&vm, &snap(i), d, b).unwrap();
    [
        probe_blocks(false).into_iter().map(|b| at(&r, b)).collect(),
        probe_blocks(true).into_iter().map(|b| at(&v, b)).collect(),
    ]
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let vm = VmId::from("vm-a");
    let h1 = HostId::from("h1");
    let mut s = Storage::new(StorageLimits {
        snapshots_per_disk_max: SNAPSHOTS_MAX,
        ..StorageLimits::default()
    });
    s.register_image(name("img"), IMAGE_BLOCKS, IMAGE_SEED)
        .unwrap();
    s.create_root_disk(vm.clone(), &name("img"), h1.clone(), 0)
        .unwrap();
    s.create_volume(name("vol"), 1, Provisioning::Thin, None)
        .unwrap();
    s.attach_volume(&name("vol"), &vm).unwrap();
    let mut m = Model {
        now: [
            probe_blocks(false)
                .into_iter()
                .map(|b| fingerprint(IMAGE_SEED, b))
                .collect(),
            vec![0; HOT_BLOCKS as usize + 1],
        ],
        snapshots: BTreeMap::new(),
        touched: BTreeSet::new(),
        synced: false,
    };
    let [root, volume] = disks();
    let mut captures = 0;

    for (step, op) in ops.into_iter().enumerate() {
        let before = s.clone();
        let accepted = match &op {
            Op::Write {
                volume: on_volume,
                block,
                data,
            } => {
                let disk = if *on_volume { &volume } else { &root };
                s.write(disk, *block, *data).unwrap();
                m.now[usize::from(*on_volume)][*block as usize] = *data;
                if *on_volume {
                    m.touched.insert(*block);
                }
                true
            }
            Op::Snapshot(i) => {
                let ok = !m.snapshots.contains_key(i) && m.snapshots.len() < SNAPSHOTS_MAX;
                let r = s.snapshot(&vm, snap(*i), step as u64);
                prop_assert_eq!(r.is_ok(), ok, "snapshot s{}: {:?}", i, r);
                if ok {
                    m.snapshots.insert(*i, m.now.clone());
                }
                ok
            }
            Op::Delete(i) => {
                let ok = m.snapshots.remove(i).is_some();
                let r = s.delete_snapshot(&vm, &snap(*i));
                prop_assert_eq!(r.is_ok(), ok, "delete s{}: {:?}", i, r);
                ok
            }
            Op::Revert(i) => {
                let target = m.snapshots.get(i).cloned();
                let r = s.revert(&vm, &snap(*i));
                prop_assert_eq!(r.is_ok(), target.is_some(), "revert s{}: {:?}", i, r);
                if let Some(t) = target {
                    m.now = t;
                }
                r.is_ok()
            }
            Op::Synced => {
                let r = s.image_synced(&h1, &name("img"));
                prop_assert_eq!(r.is_ok(), !m.synced, "synced: {:?}", r);
                let ok = !m.synced;
                m.synced = true;
                ok
            }
            Op::Capture => {
                let image = name(&format!("cap{captures}"));
                let other = VmId::from(format!("vm-cap{captures}").as_str());
                captures += 1;
                s.capture(&vm, image.clone()).unwrap();
                s.create_root_disk(other.clone(), &image, HostId::from("h2"), 0)
                    .unwrap();
                let got: Vec<u64> = probe_blocks(false)
                    .into_iter()
                    .map(|b| s.read(&DiskRef::Root(other.clone()), b).unwrap())
                    .collect();
                prop_assert_eq!(&got, &m.now[0], "capture differs from the disk");
                s.delete_root_disk(&other).unwrap();
                true
            }
        };
        // The VM's host does the call's disk work (the chains change only
        // then: see `disk_ops`).
        s.disk_ops_done(&vm, u64::MAX);
        if !accepted {
            prop_assert!(
                s == before,
                "step {}: refused {:?} changed the state",
                step,
                op
            );
        }
        if let Err(e) = s.check() {
            return Err(TestCaseError::fail(format!("step {step} {op:?}: {e}")));
        }
        prop_assert_eq!(
            read_now(&s),
            m.now.clone(),
            "step {}: {:?}: current",
            step,
            op
        );
        for (i, content) in &m.snapshots {
            prop_assert_eq!(
                &read_snapshot(&s, *i),
                content,
                "step {}: {:?}: snapshot s{}",
                step,
                op,
                i
            );
        }
        let v = s.describe_volume(&name("vol")).unwrap();
        prop_assert_eq!(v.allocated_bytes, m.touched.len() as u64 * BLOCK_BYTES);
        prop_assert_eq!(v.snapshots, m.snapshots.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn disks_and_snapshots_read_as_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}

/// A sequence that exercises a fork: revert to an early snapshot, write,
/// delete the snapshot both branches grow from.
#[test]
fn directed_fork_sequence() {
    use Op::*;
    run(vec![
        Write {
            volume: false,
            block: 1,
            data: 1,
        },
        Snapshot(0),
        Write {
            volume: false,
            block: 1,
            data: 2,
        },
        Write {
            volume: true,
            block: 2,
            data: 2,
        },
        Snapshot(1),
        Revert(0),
        Write {
            volume: false,
            block: 3,
            data: 3,
        },
        Delete(0),
        Revert(1),
        Synced,
        Capture,
        Delete(1),
    ])
    .unwrap();
}
