//! A VM's snapshot ops ([`krrish_cloud::storage::disk_ops`]) done on its
//! real disks as qcow2 internal snapshots, named by the op's tag:
//!
//! - while no guest runs, with `qemu-img snapshot` (which takes the image's
//!   lock: a guest still holding the disk anywhere makes it fail, never
//!   corrupt);
//! - while the guest runs, through its QEMU (QMP
//!   `blockdev-snapshot-internal-sync` for all its disks in one
//!   `transaction`, so they are taken together;
//!   `blockdev-snapshot-delete-internal-sync`). QEMU has no live disk-only
//!   revert: a revert restarts the guest ([`needs_restart`]).
//!
//! The last op done is written beside the root disk (`<vm>.qcow2.ops`)
//! after each op, so the host that boots the VM next (a spare, after a
//! crash) does what is left and nothing twice. Every op is idempotent
//! against a crash between doing it and writing that number: a snapshot
//! already there is not taken again, one already gone is not deleted, and
//! a revert is only ever done with the guest down, before it boots.

use crate::hypervisor::Hypervisor;
use krrish_cloud::storage::{DiskAction, DiskOp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the last op done on the VM whose root disk is `root` is kept.
fn marker(root: &Path) -> PathBuf {
    let mut p = root.as_os_str().to_owned();
    p.push(".ops");
    PathBuf::from(p)
}

/// The last op done on the disks of the VM whose root disk is `root`.
pub(crate) fn done_through(root: &Path) -> u64 {
    std::fs::read_to_string(marker(root))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn record(root: &Path, seq: u64) -> Result<(), String> {
    let path = marker(root);
    let tmp = path.with_extension("ops.new");
    std::fs::write(&tmp, format!("{seq}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Forgets what was done (a root disk made anew).
pub(crate) fn reset_marker(root: &Path) -> Result<(), String> {
    match std::fs::remove_file(marker(root)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", marker(root).display())),
    }
}

/// The ops of `ops` not yet done on the disks of `root`'s VM.
pub(crate) fn pending<'a>(root: &Path, ops: &'a [DiskOp]) -> Vec<&'a DiskOp> {
    let done = done_through(root);
    ops.iter().filter(|op| op.seq > done).collect()
}

/// Whether the guest must go down for what is left: a revert.
pub(crate) fn needs_restart(root: &Path, ops: &[DiskOp]) -> bool {
    pending(root, ops)
        .iter()
        .any(|op| op.action == DiskAction::Revert)
}

/// The files an op touches: the root disk, then its volumes.
fn files(root: &Path, volume_dir: &Path, op: &DiskOp) -> Result<Vec<PathBuf>, String> {
    let mut out = vec![root.to_path_buf()];
    for v in &op.volumes {
        let name = crate::names::checked("volume", v.as_str())?;
        out.push(volume_dir.join(format!("{name}.qcow2")));
    }
    Ok(out)
}

fn qemu_img(args: &[&str], file: &Path) -> Result<String, String> {
    let out = Command::new("qemu-img")
        .args(args)
        .arg(file)
        .output()
        .map_err(|e| format!("qemu-img: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "qemu-img {} {}: {}",
            args.join(" "),
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The internal snapshots a stopped disk holds, by tag.
fn tags_on_file(file: &Path) -> Result<Vec<String>, String> {
    let info = qemu_img(&["info", "--output=json"], file)?;
    let v: Value = serde_json::from_str(&info)
        .map_err(|e| format!("qemu-img info {}: {e}", file.display()))?;
    Ok(tags_of(&v["snapshots"]))
}

fn tags_of(snapshots: &Value) -> Vec<String> {
    snapshots
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Does the ops left with no guest running (before a boot).
pub(crate) fn apply_offline(root: &Path, volume_dir: &Path, ops: &[DiskOp]) -> Result<(), String> {
    for op in pending(root, ops) {
        for file in files(root, volume_dir, op)? {
            let has = tags_on_file(&file)?.contains(&op.tag);
            match op.action {
                DiskAction::Snapshot if !has => {
                    qemu_img(&["snapshot", "-c", &op.tag], &file)?;
                }
                DiskAction::DeleteSnapshot if has => {
                    qemu_img(&["snapshot", "-d", &op.tag], &file)?;
                }
                DiskAction::Revert if has => {
                    qemu_img(&["snapshot", "-a", &op.tag], &file)?;
                }
                DiskAction::Revert => {
                    return Err(format!(
                        "op {op}: {} holds no snapshot {}",
                        file.display(),
                        op.tag
                    ));
                }
                DiskAction::Snapshot | DiskAction::DeleteSnapshot => {}
            }
        }
        record(root, op.seq)?;
    }
    Ok(())
}

/// A running guest's disks as its QEMU sees them: file → (node name,
/// internal snapshots).
fn block_nodes(
    hv: &Hypervisor,
    domain: &str,
) -> Result<BTreeMap<PathBuf, (String, Vec<String>)>, String> {
    let blocks = hv
        .qmp(domain, &json!({ "execute": "query-block" }))
        .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for b in blocks.as_array().into_iter().flatten() {
        let inserted = &b["inserted"];
        let Some(node) = inserted["node-name"].as_str() else {
            continue;
        };
        let tags = tags_of(&inserted["image"]["snapshots"]);
        // The top image's file, as QEMU names it in either field.
        for file in [&inserted["file"], &inserted["image"]["filename"]] {
            if let Some(f) = file.as_str() {
                out.insert(PathBuf::from(f), (node.to_string(), tags.clone()));
            }
        }
    }
    Ok(out)
}

/// Does the ops left while the guest runs as `domain`. A revert among
/// them is refused: the caller restarts the guest for it
/// ([`needs_restart`]).
pub(crate) fn apply_online(
    hv: &Hypervisor,
    domain: &str,
    root: &Path,
    volume_dir: &Path,
    ops: &[DiskOp],
) -> Result<(), String> {
    for op in pending(root, ops) {
        let nodes = block_nodes(hv, domain)?;
        let mut actions = Vec::new();
        for file in files(root, volume_dir, op)? {
            let (node, tags) = nodes.get(&file).ok_or_else(|| {
                format!(
                    "op {op}: {domain} has no disk {} plugged in",
                    file.display()
                )
            })?;
            let has = tags.contains(&op.tag);
            match op.action {
                DiskAction::Snapshot if !has => actions.push(json!({
                    "type": "blockdev-snapshot-internal-sync",
                    "data": { "device": node, "name": op.tag },
                })),
                DiskAction::DeleteSnapshot if has => {
                    hv.qmp(
                        domain,
                        &json!({
                            "execute": "blockdev-snapshot-delete-internal-sync",
                            "arguments": { "device": node, "name": op.tag },
                        }),
                    )
                    .map_err(|e| format!("op {op}: {e}"))?;
                }
                DiskAction::Revert => {
                    return Err(format!(
                        "op {op}: a running guest cannot be reverted in place"
                    ))
                }
                DiskAction::Snapshot | DiskAction::DeleteSnapshot => {}
            }
        }
        if !actions.is_empty() {
            hv.qmp(
                domain,
                &json!({ "execute": "transaction", "arguments": { "actions": actions } }),
            )
            .map_err(|e| format!("op {op}: {e}"))?;
        }
        record(root, op.seq)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use krrish_cloud::Name;

    fn op(seq: u64, action: DiskAction, tag: &str) -> DiskOp {
        DiskOp {
            seq,
            action,
            name: Name::parse("name", &tag[..2]).unwrap(),
            tag: tag.into(),
            volumes: vec![Name::parse("volume", "data-1").unwrap()],
        }
    }

    #[test]
    fn the_marker_sits_beside_the_root_disk_and_counts_ops_done() {
        let dir = std::env::temp_dir().join(format!("krrish-disk-ops-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("app-1.qcow2");
        let ops = [
            op(1, DiskAction::Snapshot, "s1.1"),
            op(2, DiskAction::Revert, "s1.1"),
            op(3, DiskAction::DeleteSnapshot, "s1.1"),
        ];
        assert_eq!(done_through(&root), 0);
        assert!(needs_restart(&root, &ops));
        record(&root, 2).unwrap();
        assert_eq!(marker(&root), dir.join("app-1.qcow2.ops"));
        assert_eq!(done_through(&root), 2);
        let left: Vec<u64> = pending(&root, &ops).iter().map(|o| o.seq).collect();
        assert_eq!(left, vec![3]);
        assert!(!needs_restart(&root, &ops));
        reset_marker(&root).unwrap();
        assert_eq!(done_through(&root), 0);
        let files = files(&root, &dir.join("volumes"), &ops[0]).unwrap();
        assert_eq!(files, vec![root.clone(), dir.join("volumes/data-1.qcow2")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn snapshot_lists_are_read_from_qemu_json() {
        let v = json!([{ "name": "s1.1", "id": "1" }, { "name": "s2.4", "id": "2" }]);
        assert_eq!(tags_of(&v), vec!["s1.1", "s2.4"]);
        assert!(tags_of(&Value::Null).is_empty());
    }
}
