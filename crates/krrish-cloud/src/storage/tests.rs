//! Directed tests of the facade: every refusal leaves the state as it was;
//! VM snapshots across disks; boot from the DFS, sync, relink; capture.

use super::*;

fn n(s: &str) -> Name {
    Name::parse("name", s).unwrap()
}

fn vm(s: &str) -> VmId {
    VmId::from(s)
}

fn host(s: &str) -> HostId {
    HostId::from(s)
}

fn vol(s: &str) -> DiskRef {
    DiskRef::Volume(n(s))
}

fn root(s: &str) -> DiskRef {
    DiskRef::Root(vm(s))
}

const IMAGE_BLOCKS: u64 = 64;

/// An image `img` (64 blocks), vm-a and vm-b booted from it on h1, and
/// 1 GiB volumes v1 (thin) and v2 (thick), detached.
fn world(limits: StorageLimits) -> Storage {
    let mut s = Storage::new(limits);
    s.register_image(n("img"), IMAGE_BLOCKS, 7).unwrap();
    s.create_root_disk(vm("vm-a"), &n("img"), host("h1"), 0)
        .unwrap();
    s.create_root_disk(vm("vm-b"), &n("img"), host("h1"), 0)
        .unwrap();
    s.create_volume(n("v1"), 1, Provisioning::Thin, None)
        .unwrap();
    s.create_volume(n("v2"), 1, Provisioning::Thick, None)
        .unwrap();
    s
}

/// The VMs' hosts do the snapshot work queued (see `disk_ops`): the
/// chains change only then.
fn host_did(s: &mut Storage) {
    for v in ["vm-a", "vm-b", "vm-c"] {
        s.disk_ops_done(&vm(v), u64::MAX);
    }
}

/// Runs a call that must be refused; asserts it changed nothing (equal
/// value and equal serialized form) and returns the error's message.
fn refused<T: std::fmt::Debug>(
    s: &mut Storage,
    call: impl FnOnce(&mut Storage) -> Result<T, StorageError>,
) -> String {
    let before = s.clone();
    let json = serde_json::to_string(s).unwrap();
    let e = call(s).expect_err("the call should be refused");
    assert_eq!(*s, before, "a refused call changed the state: {e}");
    assert_eq!(serde_json::to_string(s).unwrap(), json);
    s.check().unwrap();
    e.to_string()
}

#[test]
fn volume_refusals_name_the_resource_and_change_nothing() {
    let limits = StorageLimits {
        volumes_max: 3,
        volume_size_gib_max: 4,
        volumes_per_vm_max: 1,
        ..StorageLimits::default()
    };
    let mut s = world(limits);
    let e = refused(&mut s, |s| s.attach_volume(&n("nope"), &vm("vm-a")));
    assert_eq!(e, "volume nope: no such volume");
    refused(&mut s, |s| s.detach_volume(&n("nope"), &vm("vm-a")));
    refused(&mut s, |s| s.delete_volume(&n("nope")));
    refused(&mut s, |s| s.describe_volume(&n("nope")));
    refused(&mut s, |s| s.write(&vol("nope"), 0, 1));
    let e = refused(&mut s, |s| {
        s.create_volume(n("v1"), 1, Provisioning::Thin, None)
    });
    assert_eq!(e, "volume v1: the name is taken");
    let e = refused(&mut s, |s| {
        s.create_volume(n("v3"), 0, Provisioning::Thin, None)
    });
    assert_eq!(e, "size_gib: expected 1 to 4 GiB, got 0");
    let e = refused(&mut s, |s| {
        s.create_volume(n("v3"), 5, Provisioning::Thick, None)
    });
    assert_eq!(e, "size_gib: expected 1 to 4 GiB, got 5");
    let e = refused(&mut s, |s| {
        s.create_volume(n("v3"), u64::MAX, Provisioning::Thin, None)
    });
    assert_eq!(e, "size_gib: expected 1 to 4 GiB, got 18446744073709551615");
    let e = refused(&mut s, |s| s.attach_volume(&n("v1"), &vm("vm-x")));
    assert!(e.contains("vm-x: no root disk"), "{e}");
    let e = refused(&mut s, |s| s.detach_volume(&n("v1"), &vm("vm-a")));
    assert_eq!(e, "volume v1: not attached to any VM, so not to vm-a");

    s.attach_volume(&n("v1"), &vm("vm-b")).unwrap();
    let e = refused(&mut s, |s| s.attach_volume(&n("v1"), &vm("vm-a")));
    assert_eq!(e, "volume v1: already attached to vm-b; detach it first");
    refused(&mut s, |s| s.attach_volume(&n("v1"), &vm("vm-b")));
    let e = refused(&mut s, |s| s.detach_volume(&n("v1"), &vm("vm-a")));
    assert_eq!(e, "volume v1: attached to vm-b, not vm-a");
    let e = refused(&mut s, |s| s.delete_volume(&n("v1")));
    assert_eq!(
        e,
        "volume v1: attached to vm-b; expected a detached volume to delete"
    );
    let e = refused(&mut s, |s| s.attach_volume(&n("v2"), &vm("vm-b")));
    assert_eq!(e, "vm vm-b: already has the maximum of 1 volumes attached");

    s.create_volume(n("v3"), 4, Provisioning::ThickLazyZeroed, None)
        .unwrap();
    let e = refused(&mut s, |s| {
        s.create_volume(n("v4"), 1, Provisioning::Thin, None)
    });
    assert_eq!(
        e,
        "volume v4: the cloud already holds the maximum of 3 volumes"
    );
    let e = refused(&mut s, |s| s.write(&vol("v3"), 4 * BLOCKS_PER_GIB, 1));
    assert_eq!(
        e,
        "volume v3: block 4096 is out of range (the disk has 4096 blocks)"
    );

    // And the accepted calls do what they say. A detached volume is
    // neither attached nor deleted until its VM's host confirms the unplug.
    s.detach_volume(&n("v1"), &vm("vm-b")).unwrap();
    assert_eq!(
        s.describe_volume(&n("v1")).unwrap().status,
        VolumeStatus::Detaching
    );
    let e = refused(&mut s, |s| s.attach_volume(&n("v1"), &vm("vm-a")));
    assert_eq!(e, "volume v1: still being detached from vm-b (its host has not confirmed unplugging it); try again once the volume is available");
    refused(&mut s, |s| s.delete_volume(&n("v1")));
    assert!(s.volume_unplugged(&n("v1")));
    assert!(!s.volume_unplugged(&n("v1")), "unplugged once");
    assert_eq!(
        s.describe_volume(&n("v1")).unwrap().status,
        VolumeStatus::Available
    );
    s.attach_volume(&n("v1"), &vm("vm-a")).unwrap();
    assert_eq!(
        s.describe_volume(&n("v1")).unwrap().status,
        VolumeStatus::InUse
    );
    assert_eq!(
        s.describe_volume(&n("v1")).unwrap().attached_to,
        Some(vm("vm-a"))
    );
    s.delete_volume(&n("v2")).unwrap();
    assert_eq!(s.describe_volumes().len(), 2);
    s.check().unwrap();
}

#[test]
fn snapshot_refusals_change_nothing() {
    let limits = StorageLimits {
        snapshots_per_disk_max: 2,
        ..StorageLimits::default()
    };
    let mut s = world(limits);
    s.attach_volume(&n("v1"), &vm("vm-a")).unwrap();
    s.snapshot(&vm("vm-a"), n("s1"), 10).unwrap();
    host_did(&mut s);

    let e = refused(&mut s, |s| s.snapshot(&vm("vm-x"), n("s1"), 11));
    assert_eq!(e, "vm vm-x: no root disk (create it from an image first)");
    let e = refused(&mut s, |s| s.snapshot(&vm("vm-a"), n("s1"), 11));
    assert_eq!(e, "vm vm-a: snapshot s1 exists");
    let e = refused(&mut s, |s| s.delete_snapshot(&vm("vm-a"), &n("s9")));
    assert_eq!(e, "vm vm-a: no snapshot s9");
    refused(&mut s, |s| s.revert(&vm("vm-a"), &n("s9")));
    refused(&mut s, |s| {
        s.read_at_snapshot(&vm("vm-a"), &n("s9"), &root("vm-a"), 0)
    });
    let e = refused(&mut s, |s| {
        s.read_at_snapshot(&vm("vm-a"), &n("s1"), &vol("v2"), 0)
    });
    assert_eq!(e, "vm vm-a: snapshot s1 does not cover volume v2");
    refused(&mut s, |s| {
        s.read_at_snapshot(&vm("vm-a"), &n("s1"), &root("vm-b"), 0)
    });
    let e = refused(&mut s, |s| {
        s.read_at_snapshot(&vm("vm-a"), &n("s1"), &root("vm-a"), IMAGE_BLOCKS)
    });
    assert_eq!(
        e,
        "root disk of vm vm-a: block 64 is out of range (the disk has 64 blocks)"
    );

    // The volume's chain fills first: v1 carries vm-b's snapshot too.
    // (vm-a's host has done its snapshots: the volume may go.)
    s.disk_ops_done(&vm("vm-a"), u64::MAX);
    s.detach_volume(&n("v1"), &vm("vm-a")).unwrap();
    s.volume_unplugged(&n("v1"));
    let e = refused(&mut s, |s| s.revert(&vm("vm-a"), &n("s1")));
    assert_eq!(
        e,
        "vm vm-a: snapshot s1 covers volume v1, which is detached; expected it attached to vm-a to revert"
    );
    s.attach_volume(&n("v1"), &vm("vm-b")).unwrap();
    let e = refused(&mut s, |s| s.revert(&vm("vm-a"), &n("s1")));
    assert!(e.contains("which is attached to vm-b;"), "{e}");
    s.snapshot(&vm("vm-b"), n("s1"), 12).unwrap();
    host_did(&mut s);
    let e = refused(&mut s, |s| s.snapshot(&vm("vm-b"), n("s2"), 13));
    assert_eq!(
        e,
        "volume v1: already holds the maximum of 2 snapshots; delete one first"
    );
    s.snapshot(&vm("vm-a"), n("s2"), 13).unwrap();
    host_did(&mut s);
    let e = refused(&mut s, |s| s.snapshot(&vm("vm-a"), n("s3"), 14));
    assert_eq!(
        e,
        "root disk of vm vm-a: already holds the maximum of 2 snapshots; delete one first"
    );
    s.delete_snapshot(&vm("vm-a"), &n("s1")).unwrap();
    host_did(&mut s);
    s.snapshot(&vm("vm-a"), n("s3"), 14).unwrap();
    host_did(&mut s);
    s.check().unwrap();
}

#[test]
fn create_image_refuses_a_size_in_the_callers_gib() {
    let limits = StorageLimits {
        image_blocks_max: 4 * BLOCKS_PER_GIB,
        ..StorageLimits::default()
    };
    let mut s = world(limits);
    for (size_gib, says) in [
        (0, "size_gib: expected 1 to 4 GiB, got 0"),
        (5, "size_gib: expected 1 to 4 GiB, got 5"),
        (
            u64::MAX,
            "size_gib: expected 1 to 4 GiB, got 18446744073709551615",
        ),
    ] {
        let e = refused(&mut s, |s| s.create_image(n("new"), size_gib, 1));
        assert_eq!(e, says);
    }
    let e = refused(&mut s, |s| s.create_image(n("img"), 0, 1));
    assert_eq!(e, "image img: the name is taken");
    s.create_image(n("new"), 4, 1).unwrap();
    let new = s.describe_images().into_iter().find(|i| i.name == n("new"));
    assert_eq!(new.map(|i| i.blocks), Some(4 * BLOCKS_PER_GIB));
}

#[test]
fn image_refusals_change_nothing() {
    let limits = StorageLimits {
        images_max: 2,
        image_blocks_max: 100,
        root_disks_max: 3,
        hosts_max: 2,
        ..StorageLimits::default()
    };
    let mut s = world(limits);
    let e = refused(&mut s, |s| s.register_image(n("img"), 10, 1));
    assert_eq!(e, "image img: the name is taken");
    let e = refused(&mut s, |s| s.register_image(n("big"), 101, 1));
    assert_eq!(e, "image big: expected a size of 1 to 100 blocks, got 101");
    refused(&mut s, |s| s.register_image(n("none"), 0, 1));
    let e = refused(&mut s, |s| {
        s.create_root_disk(vm("vm-c"), &n("nope"), host("h1"), 0)
    });
    assert_eq!(e, "image nope: no such image");
    let e = refused(&mut s, |s| {
        s.create_root_disk(vm("vm-a"), &n("img"), host("h1"), 0)
    });
    assert_eq!(e, "vm vm-a: already has a root disk");
    let e = refused(&mut s, |s| s.image_synced(&host("h2"), &n("img")));
    assert_eq!(e, "host h2: image img is not syncing to it");
    refused(&mut s, |s| s.image_synced(&host("h1"), &n("nope")));
    let e = refused(&mut s, |s| s.capture(&vm("vm-a"), n("img")));
    assert_eq!(e, "image img: the name is taken");
    refused(&mut s, |s| s.capture(&vm("vm-x"), n("cap")));

    s.create_root_disk(vm("vm-c"), &n("img"), host("h2"), 0)
        .unwrap();
    let e = refused(&mut s, |s| {
        s.create_root_disk(vm("vm-d"), &n("img"), host("h1"), 0)
    });
    assert_eq!(
        e,
        "vm vm-d: the cloud already holds the maximum of 3 root disks"
    );
    s.delete_root_disk(&vm("vm-c")).unwrap();
    let e = refused(&mut s, |s| {
        s.create_root_disk(vm("vm-d"), &n("img"), host("h3"), 0)
    });
    assert_eq!(
        e,
        "host h3: the image caches already cover the maximum of 2 hosts"
    );
    s.capture(&vm("vm-a"), n("cap")).unwrap();
    let e = refused(&mut s, |s| s.capture(&vm("vm-a"), n("cap2")));
    assert_eq!(
        e,
        "image cap2: the repository already holds the maximum of 2 images"
    );
    s.image_synced(&host("h1"), &n("img")).unwrap();
    refused(&mut s, |s| s.image_synced(&host("h1"), &n("img")));

    s.attach_volume(&n("v1"), &vm("vm-a")).unwrap();
    let e = refused(&mut s, |s| s.delete_root_disk(&vm("vm-a")));
    assert_eq!(
        e,
        "vm vm-a: volumes v1 are attached; detach them before deleting the root disk"
    );
}

fn disk_content(s: &Storage, disk: &DiskRef, blocks: u64) -> Vec<u64> {
    (0..blocks).map(|b| s.read(disk, b).unwrap()).collect()
}

#[test]
fn boot_from_dfs_then_sync_then_relink_keeps_what_the_disk_reads() {
    let mut s = Storage::new(StorageLimits::default());
    s.register_image(n("img"), IMAGE_BLOCKS, 7).unwrap();
    let plan = s
        .create_root_disk(vm("vm-a"), &n("img"), host("h1"), 100)
        .unwrap();
    assert_eq!(plan, BootPlan::FromDfs { sync_started: true });
    let plan = s
        .create_root_disk(vm("vm-b"), &n("img"), host("h1"), 200)
        .unwrap();
    assert_eq!(
        plan,
        BootPlan::FromDfs {
            sync_started: false
        }
    );
    assert_eq!(
        s.describe_host_cache(&host("h1")),
        vec![(n("img"), CacheState::Syncing)]
    );
    let a = root("vm-a");
    assert_eq!(
        s.describe_root_disk(&vm("vm-a")).unwrap().backing,
        BackingState::BootsFromDfs
    );
    // Unwritten blocks read as the image.
    assert_eq!(s.read(&a, 5).unwrap(), image::fingerprint(7, 5));
    s.write(&a, 3, 33).unwrap();
    s.snapshot(&vm("vm-a"), n("before-relink"), 300).unwrap();
    host_did(&mut s);
    s.write(&a, 4, 44).unwrap();
    let before = disk_content(&s, &a, IMAGE_BLOCKS);
    let before_b = disk_content(&s, &root("vm-b"), IMAGE_BLOCKS);

    let relinked = s.image_synced(&host("h1"), &n("img")).unwrap();
    assert_eq!(relinked, vec![vm("vm-a"), vm("vm-b")]);
    assert_eq!(
        s.describe_root_disk(&vm("vm-a")).unwrap().backing,
        BackingState::Relinked
    );
    assert_eq!(
        s.describe_host_cache(&host("h1")),
        vec![(n("img"), CacheState::Ready)]
    );
    assert_eq!(disk_content(&s, &a, IMAGE_BLOCKS), before);
    assert_eq!(disk_content(&s, &root("vm-b"), IMAGE_BLOCKS), before_b);
    let snap = |s: &Storage, b| {
        s.read_at_snapshot(&vm("vm-a"), &n("before-relink"), &a, b)
            .unwrap()
    };
    assert_eq!(snap(&s, 3), 33);
    assert_eq!(snap(&s, 4), image::fingerprint(7, 4));

    // The next VM on h1 boots from the local copy; on h2 from the DFS.
    let plan = s
        .create_root_disk(vm("vm-c"), &n("img"), host("h1"), 400)
        .unwrap();
    assert_eq!(plan, BootPlan::Local);
    assert_eq!(
        s.describe_root_disk(&vm("vm-c")).unwrap().backing,
        BackingState::Local
    );
    let plan = s
        .create_root_disk(vm("vm-d"), &n("img"), host("h2"), 400)
        .unwrap();
    assert_eq!(plan, BootPlan::FromDfs { sync_started: true });
    assert_eq!(
        s.image_synced(&host("h2"), &n("img")).unwrap(),
        vec![vm("vm-d")]
    );
    s.check().unwrap();
}

#[test]
fn capture_reads_as_the_disk_did_and_boots_anew() {
    let mut s = world(StorageLimits::default());
    let a = root("vm-a");
    s.write(&a, 0, 100).unwrap();
    s.write(&a, 9, 900).unwrap();
    s.snapshot(&vm("vm-a"), n("s1"), 1).unwrap();
    host_did(&mut s);
    s.write(&a, 9, 901).unwrap();
    s.write(&a, 63, 6300).unwrap();
    let disk = disk_content(&s, &a, IMAGE_BLOCKS);
    s.capture(&vm("vm-a"), n("cap")).unwrap();
    assert_eq!(
        s.describe_images()
            .into_iter()
            .map(|i| (i.name.to_string(), i.blocks, i.source))
            .collect::<Vec<_>>(),
        vec![
            (
                "cap".into(),
                IMAGE_BLOCKS,
                ImageSource::Captured { vm: vm("vm-a") }
            ),
            ("img".into(), IMAGE_BLOCKS, ImageSource::Registered),
        ]
    );
    // The capture is a copy: later writes to vm-a do not reach it.
    s.write(&a, 0, 101).unwrap();
    s.create_root_disk(vm("vm-c"), &n("cap"), host("h2"), 2)
        .unwrap();
    assert_eq!(disk_content(&s, &root("vm-c"), IMAGE_BLOCKS), disk);
    // A capture of a capture keeps both generations of writes.
    s.write(&root("vm-c"), 1, 11).unwrap();
    s.capture(&vm("vm-c"), n("cap2")).unwrap();
    let mut expected = disk.clone();
    expected[1] = 11;
    s.create_root_disk(vm("vm-d"), &n("cap2"), host("h1"), 3)
        .unwrap();
    assert_eq!(disk_content(&s, &root("vm-d"), IMAGE_BLOCKS), expected);
    s.check().unwrap();
}

#[test]
fn a_vm_snapshot_covers_its_volumes_and_revert_moves_them_together() {
    let mut s = world(StorageLimits::default());
    let (a, v1, v2) = (root("vm-a"), vol("v1"), vol("v2"));
    s.attach_volume(&n("v1"), &vm("vm-a")).unwrap();
    s.write(&a, 1, 10).unwrap();
    s.write(&v1, 1, 10).unwrap();
    s.snapshot(&vm("vm-a"), n("s1"), 5).unwrap();
    host_did(&mut s);
    s.write(&a, 1, 11).unwrap();
    s.write(&v1, 1, 11).unwrap();
    s.write(&v1, 2, 22).unwrap();
    // Attached after s1: revert leaves it alone.
    s.attach_volume(&n("v2"), &vm("vm-a")).unwrap();
    s.write(&v2, 1, 12).unwrap();
    s.snapshot(&vm("vm-a"), n("s2"), 6).unwrap();
    host_did(&mut s);
    let views = s.describe_snapshots(&vm("vm-a")).unwrap();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].volumes, [n("v1")].into_iter().collect());
    assert_eq!(views[1].volumes, [n("v1"), n("v2")].into_iter().collect());

    s.revert(&vm("vm-a"), &n("s1")).unwrap();
    host_did(&mut s);
    assert_eq!(s.read(&a, 1).unwrap(), 10);
    assert_eq!(s.read(&v1, 1).unwrap(), 10);
    assert_eq!(s.read(&v1, 2).unwrap(), 0);
    assert_eq!(s.read(&v2, 1).unwrap(), 12);
    // s2 survived the revert.
    let at_s2 = |s: &Storage, d: &DiskRef, b| s.read_at_snapshot(&vm("vm-a"), &n("s2"), d, b);
    assert_eq!(at_s2(&s, &a, 1).unwrap(), 11);
    assert_eq!(at_s2(&s, &v1, 2).unwrap(), 22);
    s.revert(&vm("vm-a"), &n("s2")).unwrap();
    host_did(&mut s);
    assert_eq!(s.read(&v1, 2).unwrap(), 22);

    // Deleting a covered volume drops it from the snapshots.
    s.disk_ops_done(&vm("vm-a"), u64::MAX);
    s.detach_volume(&n("v2"), &vm("vm-a")).unwrap();
    s.volume_unplugged(&n("v2"));
    s.delete_volume(&n("v2")).unwrap();
    assert_eq!(
        s.describe_snapshots(&vm("vm-a")).unwrap()[1].volumes,
        [n("v1")].into_iter().collect()
    );
    s.revert(&vm("vm-a"), &n("s2")).unwrap();
    host_did(&mut s);

    // Deleting the VM's disk merges its layers away on the volumes it
    // covered, leaving their content as it was.
    s.disk_ops_done(&vm("vm-a"), u64::MAX);
    s.detach_volume(&n("v1"), &vm("vm-a")).unwrap();
    let content = disk_content(&s, &v1, 8);
    s.delete_root_disk(&vm("vm-a")).unwrap();
    assert_eq!(s.describe_volume(&n("v1")).unwrap().snapshots, 0);
    assert_eq!(disk_content(&s, &v1, 8), content);
    assert_eq!(s.chain(&v1).unwrap().layers().len(), 1);
    s.check().unwrap();
}

#[test]
fn the_state_round_trips_through_json() {
    let mut s = world(StorageLimits::default());
    s.attach_volume(&n("v1"), &vm("vm-a")).unwrap();
    s.write(&vol("v1"), 3, 3).unwrap();
    s.snapshot(&vm("vm-a"), n("s1"), 1).unwrap();
    host_did(&mut s);
    s.write(&root("vm-a"), 3, 3).unwrap();
    s.image_synced(&host("h1"), &n("img")).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    let back: Storage = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn a_moved_disk_keeps_its_content_and_boots_from_what_the_new_host_has() {
    let mut s = world(StorageLimits::default());
    let a = root("vm-a");
    s.write(&a, 2, 22).unwrap();
    s.snapshot(&vm("vm-a"), n("s1"), 1).unwrap();
    host_did(&mut s);
    s.image_synced(&host("h1"), &n("img")).unwrap();
    let content = disk_content(&s, &a, IMAGE_BLOCKS);

    let plan = s.move_root_disk(&vm("vm-a"), host("h2"), 5).unwrap();
    assert_eq!(plan, BootPlan::FromDfs { sync_started: true });
    let view = s.describe_root_disk(&vm("vm-a")).unwrap();
    assert_eq!(
        (view.host, view.backing),
        (host("h2"), BackingState::BootsFromDfs)
    );
    assert_eq!(disk_content(&s, &a, IMAGE_BLOCKS), content);
    assert_eq!(
        s.image_synced(&host("h2"), &n("img")).unwrap(),
        vec![vm("vm-a")]
    );
    assert_eq!(disk_content(&s, &a, IMAGE_BLOCKS), content);

    // Back to h1, which holds the image: local at once.
    let plan = s.move_root_disk(&vm("vm-a"), host("h1"), 6).unwrap();
    assert_eq!(plan, BootPlan::Local);
    assert_eq!(disk_content(&s, &a, IMAGE_BLOCKS), content);
    let same = s.clone();
    assert_eq!(
        s.move_root_disk(&vm("vm-a"), host("h1"), 7).unwrap(),
        BootPlan::Local
    );
    assert_eq!(s, same);
    assert_eq!(
        s.read_at_snapshot(&vm("vm-a"), &n("s1"), &a, 2).unwrap(),
        22
    );
    refused(&mut s, |s| s.move_root_disk(&vm("vm-x"), host("h1"), 8));
    s.check().unwrap();
}

#[test]
fn snapshot_calls_queue_ops_for_the_host_in_order_until_it_confirms_them() {
    let mut s = world(StorageLimits::default());
    s.attach_volume(&n("v1"), &vm("vm-a")).unwrap();
    s.snapshot(&vm("vm-a"), n("s1"), 10).unwrap();
    s.snapshot(&vm("vm-a"), n("s2"), 20).unwrap();
    s.revert(&vm("vm-a"), &n("s1")).unwrap();
    s.delete_snapshot(&vm("vm-a"), &n("s1")).unwrap();
    // s1 again: a new tag, never the deleted one's.
    s.snapshot(&vm("vm-a"), n("s1"), 30).unwrap();
    let ops: Vec<String> = s
        .disk_ops(&vm("vm-a"))
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(
        ops,
        [
            "#1 snapshot s1.1",
            "#2 snapshot s2.2",
            "#3 revert to s1.1",
            "#4 delete snapshot s1.1",
            "#5 snapshot s1.5"
        ]
    );
    assert!(s
        .disk_ops(&vm("vm-a"))
        .iter()
        .all(|o| o.volumes == [n("v1")]));
    assert!(s.disk_ops(&vm("vm-b")).is_empty());
    let status = |s: &Storage, name: &str| {
        s.describe_snapshots(&vm("vm-a"))
            .unwrap()
            .into_iter()
            .find(|v| v.name == n(name))
            .map(|v| v.status)
    };
    assert_eq!(status(&s, "s2"), Some(SnapshotStatus::Creating));
    // The volume an unconfirmed op names stays plugged in.
    let e = refused(&mut s, |s| s.detach_volume(&n("v1"), &vm("vm-a")));
    assert!(e.contains("#1 snapshot s1.1") && e.contains("vm-a"), "{e}");
    // Nothing is on the chains yet: a creating snapshot cannot be read,
    // and a write lands before the snapshot its host has not yet taken.
    let e = s
        .read_at_snapshot(&vm("vm-a"), &n("s2"), &root("vm-a"), 0)
        .unwrap_err();
    assert!(e.to_string().contains("still being taken"), "{e}");
    s.write(&root("vm-a"), 0, 5).unwrap();
    assert_eq!(s.disk_ops_done(&vm("vm-a"), 2), 2);
    assert_eq!(status(&s, "s2"), Some(SnapshotStatus::Available));
    assert_eq!(
        s.read_at_snapshot(&vm("vm-a"), &n("s2"), &root("vm-a"), 0),
        Ok(5)
    );
    // Written before the host reverted: lost with the revert.
    s.write(&root("vm-a"), 0, 6).unwrap();
    assert_eq!(s.read(&root("vm-a"), 0), Ok(6));
    assert_eq!(status(&s, "s1"), Some(SnapshotStatus::Creating));
    assert_eq!(s.disk_ops_done(&vm("vm-a"), 2), 0, "done once");
    assert_eq!(s.disk_ops_done(&vm("vm-a"), 5), 3);
    assert_eq!(status(&s, "s1"), Some(SnapshotStatus::Available));
    assert_eq!(
        s.read(&root("vm-a"), 0),
        s.read_at_snapshot(&vm("vm-a"), &n("s1"), &root("vm-a"), 0),
        "reverted to s1 (taken before any write)"
    );
    assert_eq!(
        s.read_at_snapshot(&vm("vm-a"), &n("s2"), &root("vm-a"), 0),
        Ok(5)
    );
    s.detach_volume(&n("v1"), &vm("vm-a")).unwrap();
    // Deleting a snapshot that covers a volume detached since: the op
    // touches only the disks the VM still has.
    s.delete_snapshot(&vm("vm-a"), &n("s2")).unwrap();
    let last = s.disk_ops(&vm("vm-a")).last().unwrap().clone();
    assert_eq!(last.to_string(), "#6 delete snapshot s2.2");
    assert!(last.volumes.is_empty());
    s.check().unwrap();
}

#[test]
fn unconfirmed_ops_are_bounded_per_vm() {
    let mut s = world(StorageLimits::default());
    s.snapshot(&vm("vm-a"), n("s"), 0).unwrap();
    for _ in 1..DISK_OPS_PENDING_MAX {
        s.revert(&vm("vm-a"), &n("s")).unwrap();
    }
    assert_eq!(s.disk_ops(&vm("vm-a")).len(), DISK_OPS_PENDING_MAX);
    let e = refused(&mut s, |s| s.revert(&vm("vm-a"), &n("s")));
    assert!(e.contains("64 snapshot operations already wait"), "{e}");
    refused(&mut s, |s| s.snapshot(&vm("vm-a"), n("u"), 0));
    s.disk_ops_done(&vm("vm-a"), 1);
    s.revert(&vm("vm-a"), &n("s")).unwrap();
}

#[test]
fn a_vm_launched_again_under_its_name_gets_a_new_root_disk() {
    let mut s = world(StorageLimits::default());
    let (a, b) = (
        s.root_disk_incarnation(&vm("vm-a")),
        s.root_disk_incarnation(&vm("vm-b")),
    );
    assert_eq!((a, b), (1, 2));
    s.delete_root_disk(&vm("vm-a")).unwrap();
    assert_eq!(s.root_disk_incarnation(&vm("vm-a")), 0, "none now");
    s.create_root_disk(vm("vm-a"), &n("img"), host("h1"), 0)
        .unwrap();
    assert_eq!(s.root_disk_incarnation(&vm("vm-a")), 3);
    let back: Storage = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s, "the count survives a save");
}
