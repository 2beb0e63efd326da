//! The storage API calls: checks names, calls [`Storage`], shapes the reply.

use super::{DiskRef, MoveCause, Storage, StorageError};
use crate::name::Name;
use crate::request::{vm_name, CloudError, CloudReply, CloudRequest};
use serde_json::json;

/// An uploaded image's content: a fingerprint of its name (FNV-1a), so two
/// images differ and one image reads the same in every run.
pub fn content_seed(name: &Name) -> u64 {
    name.as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The one disk a request names: `vm` (its root disk) or `volume`.
fn disk_named(vm: Option<String>, volume: Option<String>) -> Result<DiskRef, CloudError> {
    match (vm, volume) {
        (Some(vm), None) => Ok(DiskRef::Root(vm_name(&vm)?)),
        (None, Some(v)) => Ok(DiskRef::Volume(Name::parse("volume", &v)?)),
        _ => Err(StorageError::OneDisk.into()),
    }
}

/// Answers a storage call ([`CloudRequest::family`] is `Storage`).
pub(crate) fn apply(
    st: &mut Storage,
    request: CloudRequest,
    now_ms: u64,
) -> Result<CloudReply, CloudError> {
    use CloudRequest as R;
    let name = |field: &str, s: &str| Name::parse(field, s);
    let reply = |message: String, data: serde_json::Value| CloudReply { message, data };
    Ok(match request {
        R::CreateImage { name: n, size_gib } => {
            let n = name("name", &n)?;
            let seed = content_seed(&n);
            st.create_image(n.clone(), size_gib, seed)?;
            reply(
                format!("image {n} created ({size_gib} GiB) in the DFS repository"),
                json!({ "image": n, "size_gib": size_gib }),
            )
        }
        R::DescribeImages => {
            let list = st.describe_images();
            reply(format!("{} images", list.len()), json!(list))
        }
        R::CreateVolume {
            name: n,
            size_gib,
            provisioning,
            datastore,
        } => {
            let n = name("name", &n)?;
            let ds = datastore.map(|d| name("datastore", &d)).transpose()?;
            let cost = st.create_volume(n.clone(), size_gib, provisioning, ds.as_ref())?;
            reply(
                format!(
                    "volume {n} created ({size_gib} GiB, {}): {} blocks allocated, {} zeroed",
                    provisioning.as_str(),
                    cost.allocated_blocks,
                    cost.zeroed_blocks
                ),
                json!(st.describe_volume(&n)?),
            )
        }
        R::DeleteVolume { name: n } => {
            let n = name("name", &n)?;
            st.delete_volume(&n)?;
            reply(format!("volume {n} deleted"), json!({ "volume": n }))
        }
        R::AttachVolume { volume, vm } => {
            let (v, vm) = (name("volume", &volume)?, vm_name(&vm)?);
            st.attach_volume(&v, &vm)?;
            reply(
                format!("volume {v} attached to vm {vm}"),
                json!({ "volume": v, "vm": vm }),
            )
        }
        R::DetachVolume { volume, vm } => {
            let (v, vm) = (name("volume", &volume)?, vm_name(&vm)?);
            st.detach_volume(&v, &vm)?;
            reply(
                format!("volume {v} detached from vm {vm}"),
                json!({ "volume": v, "vm": vm }),
            )
        }
        R::DescribeVolumes => {
            let list = st.describe_volumes();
            reply(format!("{} volumes", list.len()), json!(list))
        }
        R::CreateSnapshot { vm, name: n } => {
            let (vm, n) = (vm_name(&vm)?, name("name", &n)?);
            st.snapshot(&vm, n.clone(), now_ms)?;
            reply(
                format!("snapshot {n} of vm {vm} requested: creating until its host has taken it"),
                json!({ "vm": vm, "snapshot": n }),
            )
        }
        R::DeleteSnapshot { vm, name: n } => {
            let (vm, n) = (vm_name(&vm)?, name("name", &n)?);
            st.delete_snapshot(&vm, &n)?;
            reply(
                format!("snapshot {n} of vm {vm} deleted (merged forward)"),
                json!({ "vm": vm, "snapshot": n }),
            )
        }
        R::RevertSnapshot { vm, name: n } => {
            let (vm, n) = (vm_name(&vm)?, name("name", &n)?);
            st.revert(&vm, &n)?;
            reply(
                format!(
                    "vm {vm} reset to snapshot {n} (its host restarts it on the reverted disks)"
                ),
                json!({ "vm": vm, "snapshot": n }),
            )
        }
        R::DescribeSnapshots { vm } => {
            let vm = vm_name(&vm)?;
            let list = st.describe_snapshots(&vm)?;
            reply(format!("{} snapshots of vm {vm}", list.len()), json!(list))
        }
        R::CaptureInstance { vm, image } => {
            let (vm, i) = (vm_name(&vm)?, name("image", &image)?);
            st.capture(&vm, i.clone())?;
            reply(
                format!("vm {vm} captured as image {i}"),
                json!({ "vm": vm, "image": i }),
            )
        }
        R::CreateDatastore {
            name: n,
            capacity_gib,
        } => {
            let n = name("name", &n)?;
            st.create_datastore(n.clone(), capacity_gib)?;
            reply(
                format!("datastore {n} created ({capacity_gib} GiB)"),
                json!({ "datastore": n, "capacity_gib": capacity_gib }),
            )
        }
        R::DeleteDatastore { name: n } => {
            let n = name("name", &n)?;
            st.delete_datastore(&n)?;
            reply(format!("datastore {n} deleted"), json!({ "datastore": n }))
        }
        R::DescribeDatastores => {
            let list = st.describe_datastores();
            reply(format!("{} datastores", list.len()), json!(list))
        }
        R::DrainDatastore { name: n } => {
            let n = name("name", &n)?;
            let plan = st.drain_datastore(&n, now_ms)?;
            let waiting: Vec<String> = plan.waiting.iter().map(|d| d.to_string()).collect();
            let mut message = format!(
                "datastore {n} in maintenance: {} disk moves queued",
                plan.queued.len()
            );
            if !waiting.is_empty() {
                message += &format!("; {} wait for room: {}", waiting.len(), waiting.join(", "));
            }
            if plan.called_off > 0 {
                message += &format!("; {} moves to it called off", plan.called_off);
            }
            let queued: Vec<_> = plan.queued.iter().map(|m| m.view()).collect();
            reply(
                message,
                json!({ "datastore": n, "queued": queued, "waiting": waiting }),
            )
        }
        R::ResumeDatastore { name: n } => {
            let n = name("name", &n)?;
            let called_off = st.resume_datastore(&n)?;
            reply(
                format!("datastore {n} out of maintenance: {called_off} queued moves called off"),
                json!({ "datastore": n, "called_off": called_off }),
            )
        }
        R::BalanceDatastores { threshold_percent } => {
            let t = threshold_percent.unwrap_or(super::datastore::BALANCE_THRESHOLD_PERCENT);
            if t > 100 {
                return Err(StorageError::ThresholdPercent(t).into());
            }
            let planned: Vec<_> = st
                .balance_datastores(t, now_ms)
                .iter()
                .map(|m| m.view())
                .collect();
            reply(
                format!(
                    "{} disk moves queued to bring the datastores within {t} points",
                    planned.len()
                ),
                json!(planned),
            )
        }
        R::MigrateDisk {
            vm,
            volume,
            datastore,
        } => {
            let disk = disk_named(vm, volume)?;
            let ds = name("datastore", &datastore)?;
            let m = st
                .queue_disk_move(disk, &ds, MoveCause::Operator, now_ms)?
                .view();
            reply(
                format!(
                    "{} moving {} -> {} ({} GiB): queued",
                    m.disk, m.from, m.to, m.gib
                ),
                json!(m),
            )
        }
        R::CancelDiskMove { vm, volume } => {
            let disk = disk_named(vm, volume)?;
            let m = st.cancel_disk_move(&disk)?.view();
            reply(
                format!(
                    "move of {} to {} called off: it stays on {}",
                    m.disk, m.to, m.from
                ),
                json!(m),
            )
        }
        R::DescribeDiskMoves => {
            let list = st.describe_disk_moves();
            reply(format!("{} disk moves", list.len()), json!(list))
        }
        other => unreachable!("{other} is not a storage call"),
    })
}
