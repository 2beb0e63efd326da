//! The storage API calls: checks names, calls [`Storage`], shapes the reply.

use super::Storage;
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
        } => {
            let n = name("name", &n)?;
            let cost = st.create_volume(n.clone(), size_gib, provisioning)?;
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
        other => unreachable!("{other} is not a storage call"),
    })
}
