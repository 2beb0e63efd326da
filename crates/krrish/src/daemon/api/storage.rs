//! The cloud's storage routes: images, volumes, snapshots and capture. Each
//! call is one [`CloudRequest`] over the operator protocol; the answer's
//! `data` is the body (images reshaped, see [`image_json`]). Names are
//! checked here first, so a refusal names the HTTP field (`instance`, not
//! the protocol's `vm`); the controller checks them again. A VM is
//! `instance` in bodies and filters, `{id}` in paths as in the instance
//! routes.
//!
//! | route | request |
//! |---|---|
//! | `GET /v1/images`, `POST /v1/images {name, size_gib}` | DescribeImages, CreateImage → 201 |
//! | `GET /v1/volumes?instance=`, `POST /v1/volumes {name, size_gib, provisioning?, datastore?}` | DescribeVolumes, CreateVolume → 201 |
//! | `GET`/`DELETE /v1/volumes/{name}` | one volume / DeleteVolume |
//! | `POST /v1/volumes/{name}/attach {instance}`, `…/detach {instance}` | AttachVolume, DetachVolume |
//! | `GET /v1/instances/{id}/snapshots`, `POST … {name}` | DescribeSnapshots, CreateSnapshot → 201 |
//! | `DELETE /v1/instances/{id}/snapshots/{name}` | DeleteSnapshot |
//! | `POST /v1/instances/{id}/snapshots/{name}/revert` | RevertSnapshot (ResetInstances) |
//! | `POST /v1/instances/{id}/capture {image}` | CaptureInstance → 201 |

use super::network::{body, check_filter, cloud, created, keep, named, query};
use super::network::{Created, InstanceBody, NameBody};
use super::{check_id, Api, Fault};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use krrish_cloud::storage::{Provisioning, BLOCKS_PER_GIB};
use krrish_cloud::CloudRequest;
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/images", get(images).post(create_image))
        .route("/v1/volumes", get(volumes).post(create_volume))
        .route("/v1/volumes/{name}", get(volume).delete(delete_volume))
        .route("/v1/volumes/{name}/attach", post(attach_volume))
        .route("/v1/volumes/{name}/detach", post(detach_volume))
        // `{id}`, as the instance routes name it (one router, one name).
        .route(
            "/v1/instances/{id}/snapshots",
            get(snapshots).post(create_snapshot),
        )
        .route(
            "/v1/instances/{id}/snapshots/{name}",
            axum::routing::delete(delete_snapshot),
        )
        .route(
            "/v1/instances/{id}/snapshots/{name}/revert",
            post(revert_snapshot),
        )
        .route("/v1/instances/{id}/capture", post(capture))
}

/// A size in GiB from a body: at least 1 (the controller words its own
/// upper bound).
fn check_size(size_gib: u64) -> Result<(), Fault> {
    if size_gib == 0 {
        return Err(Fault::invalid("size_gib: expected at least 1 GiB"));
    }
    Ok(())
}

/// `{id}` from the path: a VM, checked as the instance routes check it.
fn instance(id: &str) -> Result<(), Fault> {
    check_id("id", id)
}

/// No query parameters: an unknown one is refused, not ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFilter {}

// ------------------------------------------------------------------ images

/// An image as the API shows it: `{name, size_gib, source, vm}`, `source`
/// `registered` or `captured` (then `vm` is the VM it was captured from).
fn image_json(i: &Value) -> Value {
    let (source, vm) = match &i["source"] {
        Value::Object(o) if o.contains_key("captured") => ("captured", o["captured"]["vm"].clone()),
        Value::String(s) => (s.as_str(), Value::Null),
        _ => ("unknown", Value::Null),
    };
    json!({
        "name": i["name"],
        "size_gib": i["blocks"].as_u64().map(|b| b / BLOCKS_PER_GIB),
        "source": source,
        "vm": vm,
    })
}

async fn images(
    State(api): State<Api>,
    q: Result<Query<NoFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    query(q)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeImages).await?;
    let list = list.as_array().into_iter().flatten().map(image_json);
    Ok(Json(Value::Array(list.collect())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateImageBody {
    name: String,
    size_gib: u64,
}

async fn create_image(
    State(api): State<Api>,
    b: Result<Json<CreateImageBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    check_size(b.size_gib)?;
    let r = CloudRequest::CreateImage {
        name: b.name,
        size_gib: b.size_gib,
    };
    created(&api, r).await
}

// ----------------------------------------------------------------- volumes

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeFilter {
    /// Only the volumes attached to this VM.
    instance: Option<String>,
}

fn filter_volumes(list: Value, f: &VolumeFilter) -> Value {
    keep(list, |v| {
        f.instance.as_deref().is_none_or(|i| v["attached_to"] == i)
    })
}

async fn volumes(
    State(api): State<Api>,
    q: Result<Query<VolumeFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    let f = query(q)?;
    check_filter("instance", &f.instance)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeVolumes).await?;
    Ok(Json(filter_volumes(list, &f)))
}

/// The volume called `name` in a describe list, or `not-found` worded as
/// the storage words it.
fn one_volume(list: Value, name: &str) -> Result<Json<Value>, Fault> {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == name)
        .cloned()
        .map(Json)
        .ok_or_else(|| Fault::new("not-found", format!("volume {name}: no such volume")))
}

async fn volume(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeVolumes).await?;
    one_volume(list, &name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVolumeBody {
    name: String,
    size_gib: u64,
    /// `thin` (default), `thick` or `thick-lazy-zeroed`.
    provisioning: Option<Provisioning>,
    /// The datastore it lives on (default: the one with most free room).
    datastore: Option<String>,
}

async fn create_volume(
    State(api): State<Api>,
    b: Result<Json<CreateVolumeBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    check_size(b.size_gib)?;
    if let Some(ds) = &b.datastore {
        check_id("datastore", ds)?;
    }
    let r = CloudRequest::CreateVolume {
        name: b.name,
        size_gib: b.size_gib,
        provisioning: b.provisioning.unwrap_or(Provisioning::Thin),
        datastore: b.datastore,
    };
    created(&api, r).await
}

async fn delete_volume(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::DeleteVolume { name }).await
}

async fn attach_volume(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<InstanceBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let volume = named(name)?;
    let b = body(b)?;
    check_id("instance", &b.instance)?;
    let r = CloudRequest::AttachVolume {
        volume,
        vm: b.instance,
    };
    cloud(&api, r).await
}

async fn detach_volume(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<InstanceBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let volume = named(name)?;
    let b = body(b)?;
    check_id("instance", &b.instance)?;
    let r = CloudRequest::DetachVolume {
        volume,
        vm: b.instance,
    };
    cloud(&api, r).await
}

// --------------------------------------------------------------- snapshots

async fn snapshots(
    State(api): State<Api>,
    Path(id): Path<String>,
    q: Result<Query<NoFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    instance(&id)?;
    query(q)?;
    cloud(&api, CloudRequest::DescribeSnapshots { vm: id }).await
}

async fn create_snapshot(
    State(api): State<Api>,
    Path(id): Path<String>,
    b: Result<Json<NameBody>, JsonRejection>,
) -> Result<Created, Fault> {
    instance(&id)?;
    let b = body(b)?;
    check_id("name", &b.name)?;
    created(
        &api,
        CloudRequest::CreateSnapshot {
            vm: id,
            name: b.name,
        },
    )
    .await
}

/// `{id}` and `{name}` from a snapshot's path, checked.
fn snapshot_path(Path((id, name)): Path<(String, String)>) -> Result<(String, String), Fault> {
    instance(&id)?;
    check_id("name", &name)?;
    Ok((id, name))
}

async fn delete_snapshot(
    State(api): State<Api>,
    p: Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let (vm, name) = snapshot_path(p)?;
    cloud(&api, CloudRequest::DeleteSnapshot { vm, name }).await
}

async fn revert_snapshot(
    State(api): State<Api>,
    p: Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let (vm, name) = snapshot_path(p)?;
    cloud(&api, CloudRequest::RevertSnapshot { vm, name }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureBody {
    /// The new image's name.
    image: String,
}

async fn capture(
    State(api): State<Api>,
    Path(id): Path<String>,
    b: Result<Json<CaptureBody>, JsonRejection>,
) -> Result<Created, Fault> {
    instance(&id)?;
    let b = body(b)?;
    check_id("image", &b.image)?;
    created(
        &api,
        CloudRequest::CaptureInstance {
            vm: id,
            image: b.image,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::super::status_of;
    use super::*;
    use krrish_cloud::{Cloud, CloudError};
    use krrish_wire::ApiFault;

    /// Every storage refusal the API's calls can meet maps to its
    /// documented status: driven through the real model.
    #[test]
    fn every_storage_refusal_maps_to_its_status() {
        let mut c = Cloud::default();
        let vms = |v: &krrish_core::VmId| v.as_str() == "vm-1" || v.as_str() == "vm-2";
        c.apply(
            CloudRequest::CreateImage {
                name: "base".into(),
                size_gib: 2,
            },
            0,
            &vms,
        )
        .unwrap();
        for vm in ["vm-1", "vm-2"] {
            let image = c.check_image("base").unwrap();
            c.create_root_disk(
                &krrish_core::VmId::new(vm),
                &image,
                &krrish_core::HostId::new("hv-01"),
                0,
            )
            .unwrap();
        }
        let mut ok = |r: CloudRequest| c.apply(r, 0, &vms).unwrap();
        ok(CloudRequest::CreateVolume {
            name: "data".into(),
            size_gib: 1,
            provisioning: Provisioning::Thin,
            datastore: None,
        });
        ok(CloudRequest::AttachVolume {
            volume: "data".into(),
            vm: "vm-1".into(),
        });
        ok(CloudRequest::CreateSnapshot {
            vm: "vm-1".into(),
            name: "s1".into(),
        });
        let cases = [
            (
                CloudRequest::DeleteVolume {
                    name: "nope".into(),
                },
                "not-found",
                404,
            ),
            (
                CloudRequest::DescribeSnapshots { vm: "vm-9".into() },
                "not-found",
                404,
            ),
            (
                CloudRequest::CreateImage {
                    name: "base".into(),
                    size_gib: 1,
                },
                "exists",
                409,
            ),
            (
                CloudRequest::AttachVolume {
                    volume: "data".into(),
                    vm: "vm-2".into(),
                },
                "already-associated",
                409,
            ),
            (
                CloudRequest::DetachVolume {
                    volume: "data".into(),
                    vm: "vm-2".into(),
                },
                "not-associated",
                409,
            ),
            (
                CloudRequest::DeleteVolume {
                    name: "data".into(),
                },
                "in-use",
                409,
            ),
            (
                CloudRequest::CreateVolume {
                    name: "zero".into(),
                    size_gib: 0,
                    provisioning: Provisioning::Thin,
                    datastore: None,
                },
                "invalid-request",
                400,
            ),
            (
                CloudRequest::CaptureInstance {
                    vm: "vm-1".into(),
                    image: "<b>".into(),
                },
                "invalid-request",
                400,
            ),
        ];
        for (r, code, status) in cases {
            let e: CloudError = c.apply(r.clone(), 0, &vms).unwrap_err();
            let f = ApiFault::from(e);
            assert_eq!(f.code, code, "{r}: {}", f.message);
            assert_eq!(status_of(&f.code).as_u16(), status, "{r}");
        }
    }

    #[test]
    fn images_show_their_size_and_source() {
        let registered =
            json!({"name": "base", "blocks": 20 * BLOCKS_PER_GIB, "source": "registered"});
        assert_eq!(
            image_json(&registered),
            json!({"name": "base", "size_gib": 20, "source": "registered", "vm": null})
        );
        let captured = json!({"name": "gold", "blocks": BLOCKS_PER_GIB,
                              "source": {"captured": {"vm": "web-1"}}});
        assert_eq!(
            image_json(&captured),
            json!({"name": "gold", "size_gib": 1, "source": "captured", "vm": "web-1"})
        );
    }

    /// The shape [`image_json`] reads is the one the storage writes.
    #[test]
    fn image_json_reads_the_describe_answer() {
        let mut c = Cloud::default();
        let none = |_: &krrish_core::VmId| false;
        c.apply(
            CloudRequest::CreateImage {
                name: "base".into(),
                size_gib: 3,
            },
            0,
            &none,
        )
        .unwrap();
        let list = c
            .apply(CloudRequest::DescribeImages, 0, &none)
            .unwrap()
            .data;
        assert_eq!(
            image_json(&list[0]),
            json!({"name": "base", "size_gib": 3, "source": "registered", "vm": null})
        );
    }

    #[test]
    fn volumes_filter_by_their_instance() {
        let list = json!([
            {"name": "a", "attached_to": "vm-1"},
            {"name": "b", "attached_to": null},
        ]);
        let names = |v: Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x["name"].as_str().unwrap().to_string())
                .collect()
        };
        let f = |i: Option<&str>| VolumeFilter {
            instance: i.map(Into::into),
        };
        assert_eq!(names(filter_volumes(list.clone(), &f(None))), ["a", "b"]);
        assert_eq!(names(filter_volumes(list.clone(), &f(Some("vm-1")))), ["a"]);
        assert!(names(filter_volumes(list.clone(), &f(Some("vm-2")))).is_empty());
        assert_eq!(one_volume(list.clone(), "b").unwrap().0["name"], "b");
        let Fault(e) = one_volume(list, "c").unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("not-found", "volume c: no such volume")
        );
    }
}
