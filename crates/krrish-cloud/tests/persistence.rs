//! The cloud as the controller saves it: JSON (the store's format) round
//! trips every state, including image syncs in flight, and a restore
//! re-bases the syncs on the new process's clock.

use krrish_cloud::storage::{BackingState, BootPlan};
use krrish_cloud::{Cloud, CloudRequest, Name};
use krrish_core::{HostId, VmId};

#[test]
fn a_cloud_with_syncs_in_flight_round_trips_and_rebases() {
    let mut c = Cloud::default();
    let image = CloudRequest::CreateImage {
        name: "base".into(),
        size_gib: 2,
    };
    c.apply(image, 0, &|_| true).unwrap();
    let (vm, host) = (VmId::new("web-1"), HostId::new("hv-04"));
    let base = Name::parse("image", "base").unwrap();
    let plan = c.create_root_disk(&vm, &base, &host, 1_000_000).unwrap();
    assert_eq!(plan, BootPlan::FromDfs { sync_started: true });
    let due = c.poll_timeout().expect("a sync in flight");
    assert_eq!(due, 1_000_000 + 20_480, "2 GiB at 100 MiB/s");

    let json = serde_json::to_string(&c).expect("a cloud always serializes");
    let back: Cloud = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);

    // A new process whose clock starts at 0: the sync completes a full copy
    // time from then, not at the old clock's instant.
    let mut restored = back.restored(0);
    assert_eq!(restored.poll_timeout(), Some(20_480));
    assert!(restored.handle_timeout(20_479).is_empty());
    let lines = restored.handle_timeout(20_480);
    assert_eq!(
        lines,
        vec!["image base synced to hv-04; re-linked the disks of web-1"]
    );
    let d = restored.storage.describe_root_disk(&vm).unwrap();
    assert_eq!(d.backing, BackingState::Relinked);
    assert_eq!(restored.poll_timeout(), None);
}
