//! `krrish images|volumes|snapshots …` and `krrish instances capture`: the
//! cloud's storage through `/v1/images`, `/v1/volumes…` and
//! `/v1/instances/{id}/snapshots…`. Each function makes its one call and
//! says how the answer is shown as text.

use super::network::{filters, say, Shown};
use super::{parse_gib, path_part, rows, table, text, Endpoint};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum ImagesCmd {
    /// The DFS repository's images with their size and source.
    List,
    /// Upload an image to the DFS repository (CreateImage).
    Create {
        name: String,
        /// 20G, 1T or 20 (GiB).
        #[arg(long, value_parser = parse_gib)]
        size: u64,
    },
}

/// How a volume's blocks are allocated and zeroed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProvisioningArg {
    /// Allocate and zero a block on its first write.
    Thin,
    /// Allocate and zero everything at create.
    Thick,
    /// Allocate everything at create, zero a block on its first write.
    ThickLazyZeroed,
}

impl ProvisioningArg {
    /// As the API spells it.
    fn as_str(self) -> &'static str {
        match self {
            Self::Thin => "thin",
            Self::Thick => "thick",
            Self::ThickLazyZeroed => "thick-lazy-zeroed",
        }
    }
}

#[derive(Subcommand)]
pub enum VolumesCmd {
    /// Volumes, optionally only those attached to one VM.
    List {
        #[arg(long)]
        instance: Option<String>,
    },
    /// Create a detached volume (CreateVolumes).
    Create {
        name: String,
        /// 10G, 1T or 10 (GiB).
        #[arg(long, value_parser = parse_gib)]
        size: u64,
        /// thin (default), thick or thick-lazy-zeroed.
        #[arg(long, value_enum)]
        provisioning: Option<ProvisioningArg>,
        /// The datastore it lives on (default: the one with most room).
        #[arg(long)]
        datastore: Option<String>,
    },
    /// Delete a detached volume (DeleteVolumes).
    Delete { name: String },
    /// Attach a volume to a VM (AttachVolumes).
    Attach {
        name: String,
        #[arg(long)]
        instance: String,
    },
    /// Detach a volume from its VM (DetachVolumes).
    Detach {
        name: String,
        #[arg(long)]
        instance: String,
    },
}

#[derive(Subcommand)]
pub enum SnapshotsCmd {
    /// One VM's snapshots.
    List {
        #[arg(long)]
        instance: String,
    },
    /// Snapshot a VM's root disk and attached volumes together
    /// (CreateSnapshots).
    Create {
        name: String,
        #[arg(long)]
        instance: String,
    },
    /// Delete a snapshot; its layer is merged forward (DeleteSnapshots).
    Delete {
        name: String,
        #[arg(long)]
        instance: String,
    },
    /// Reset a VM's disks to a snapshot (ResetInstances).
    Revert {
        name: String,
        #[arg(long)]
        instance: String,
    },
}

pub fn images(ep: &Endpoint, cmd: ImagesCmd) -> Shown {
    Ok(match cmd {
        ImagesCmd::List => (ep.call("/v1/images", &[], None)?, Box::new(image_table)),
        ImagesCmd::Create { name, size } => (
            ep.call(
                "/v1/images",
                &[],
                Some(json!({ "name": name, "size_gib": size })),
            )?,
            say(|v| {
                format!(
                    "image {} created ({} GiB)",
                    text(&v["image"]),
                    text(&v["size_gib"])
                )
            }),
        ),
    })
}

/// `NAME SIZE SOURCE INSTANCE`, the instance a captured image came from.
fn image_table(v: &Value) -> String {
    let mut r = rows(v, &["name", "size_gib", "source", "vm"]);
    for row in &mut r {
        row[1].push('G');
    }
    table(&["NAME", "SIZE", "SOURCE", "INSTANCE"], &r)
}

pub fn volumes(ep: &Endpoint, cmd: VolumesCmd) -> Shown {
    let attach = |name: &str, verb: &str, instance: String| {
        ep.call(
            &format!("/v1/volumes/{}/{verb}", path_part(name)),
            &[],
            Some(json!({ "instance": instance })),
        )
    };
    Ok(match cmd {
        VolumesCmd::List { instance } => (
            ep.call("/v1/volumes", &filters(&[("instance", &instance)]), None)?,
            Box::new(volume_table),
        ),
        VolumesCmd::Create {
            name,
            size,
            provisioning,
            datastore,
        } => {
            let mut b = json!({ "name": name, "size_gib": size });
            if let Some(p) = provisioning {
                b["provisioning"] = json!(p.as_str());
            }
            if let Some(d) = datastore {
                b["datastore"] = json!(d);
            }
            (
                ep.call("/v1/volumes", &[], Some(b))?,
                say(|v| {
                    format!(
                        "volume {} created ({} GiB, {})",
                        text(&v["name"]),
                        text(&v["size_gib"]),
                        text(&v["provisioning"])
                    )
                }),
            )
        }
        VolumesCmd::Delete { name } => (
            ep.delete(&format!("/v1/volumes/{}", path_part(&name)))?,
            say(|v| format!("volume {} deleted", text(&v["volume"]))),
        ),
        VolumesCmd::Attach { name, instance } => (
            attach(&name, "attach", instance)?,
            say(|v| {
                format!(
                    "volume {} attached to vm {}",
                    text(&v["volume"]),
                    text(&v["vm"])
                )
            }),
        ),
        VolumesCmd::Detach { name, instance } => (
            attach(&name, "detach", instance)?,
            say(|v| {
                format!(
                    "volume {} detached from vm {}",
                    text(&v["volume"]),
                    text(&v["vm"])
                )
            }),
        ),
    })
}

/// `NAME SIZE PROVISIONING STATUS INSTANCE SNAPSHOTS`.
fn volume_table(v: &Value) -> String {
    let mut r = rows(
        v,
        &[
            "name",
            "size_gib",
            "provisioning",
            "status",
            "attached_to",
            "snapshots",
        ],
    );
    for row in &mut r {
        row[1].push('G');
    }
    table(
        &[
            "NAME",
            "SIZE",
            "PROVISIONING",
            "STATUS",
            "INSTANCE",
            "SNAPSHOTS",
        ],
        &r,
    )
}

pub fn snapshots(ep: &Endpoint, cmd: SnapshotsCmd) -> Shown {
    let base = |vm: &str| format!("/v1/instances/{}/snapshots", path_part(vm));
    let one = |vm: &str, name: &str| format!("{}/{}", base(vm), path_part(name));
    Ok(match cmd {
        SnapshotsCmd::List { instance } => (
            ep.call(&base(&instance), &[], None)?,
            Box::new(snapshot_table),
        ),
        SnapshotsCmd::Create { name, instance } => (
            ep.call(&base(&instance), &[], Some(json!({ "name": name })))?,
            say(|v| {
                format!(
                    "snapshot {} of vm {} requested (creating until its host has taken it)",
                    text(&v["snapshot"]),
                    text(&v["vm"])
                )
            }),
        ),
        SnapshotsCmd::Delete { name, instance } => (
            ep.delete(&one(&instance, &name))?,
            say(|v| {
                format!(
                    "snapshot {} of vm {} deleted",
                    text(&v["snapshot"]),
                    text(&v["vm"])
                )
            }),
        ),
        SnapshotsCmd::Revert { name, instance } => (
            ep.call(
                &format!("{}/revert", one(&instance, &name)),
                &[],
                Some(json!({})),
            )?,
            say(|v| {
                format!(
                    "vm {} reset to snapshot {}",
                    text(&v["vm"]),
                    text(&v["snapshot"])
                )
            }),
        ),
    })
}

/// `NAME INSTANCE STATUS VOLUMES TAKEN-AT-MS` (the controller's clock).
fn snapshot_table(v: &Value) -> String {
    let mut r = rows(v, &["name", "vm", "status", "volumes", "taken_at_ms"]);
    for row in &mut r {
        if row[3].is_empty() {
            row[3] = "-".into();
        }
    }
    table(
        &["NAME", "INSTANCE", "STATUS", "VOLUMES", "TAKEN-AT-MS"],
        &r,
    )
}

/// `krrish instances capture VM --image NAME` (CaptureInstance).
pub fn capture(ep: &Endpoint, id: &str, image: String) -> Shown {
    Ok((
        ep.call(
            &format!("/v1/instances/{}/capture", path_part(id)),
            &[],
            Some(json!({ "image": image })),
        )?,
        say(|v| {
            format!(
                "vm {} captured as image {}",
                text(&v["vm"]),
                text(&v["image"])
            )
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_tables_show_sizes_sources_and_attachments() {
        let images = json!([
            {"name": "base", "size_gib": 20, "source": "registered", "vm": null},
            {"name": "gold", "size_gib": 20, "source": "captured", "vm": "web-1"},
        ]);
        assert_eq!(
            image_table(&images),
            "NAME  SIZE  SOURCE      INSTANCE\n\
             base  20G   registered  -\n\
             gold  20G   captured    web-1\n"
        );
        let volumes = json!([
            {"name": "data-1", "size_gib": 10, "provisioning": "thick-lazy-zeroed",
             "status": "in-use", "attached_to": "web-1", "snapshots": 1},
            {"name": "old", "size_gib": 2, "provisioning": "thin",
             "status": "detaching", "attached_to": null, "snapshots": 0},
            {"name": "scratch", "size_gib": 1, "provisioning": "thin",
             "status": "available", "attached_to": null, "snapshots": 0},
        ]);
        assert_eq!(
            volume_table(&volumes),
            "NAME     SIZE  PROVISIONING       STATUS     INSTANCE  SNAPSHOTS\n\
             data-1   10G   thick-lazy-zeroed  in-use     web-1     1\n\
             old      2G    thin               detaching  -         0\n\
             scratch  1G    thin               available  -         0\n"
        );
        let snapshots = json!([
            {"name": "s1", "vm": "web-1", "volumes": ["data-1"], "taken_at_ms": 1200, "status": "available"},
            {"name": "s2", "vm": "web-1", "volumes": [], "taken_at_ms": 3400, "status": "creating"},
        ]);
        assert_eq!(
            snapshot_table(&snapshots),
            "NAME  INSTANCE  STATUS     VOLUMES  TAKEN-AT-MS\n\
             s1    web-1     available  data-1   1200\n\
             s2    web-1     creating   -        3400\n"
        );
    }

    #[test]
    fn provisioning_is_spelled_as_the_api_reads_it() {
        for p in ProvisioningArg::value_variants() {
            let name = p.to_possible_value().unwrap();
            assert_eq!(name.get_name(), p.as_str());
            let back: krrish_cloud::storage::Provisioning =
                serde_json::from_value(json!(p.as_str())).unwrap();
            assert_eq!(back.as_str(), p.as_str());
        }
    }
}
