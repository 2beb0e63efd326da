//! Datastores and storage live migration (disk moves). Each call is one
//! [`CloudRequest`]; names are checked here first so a refusal names the
//! HTTP field (`instance`, not the protocol's `vm`).
//!
//! | route | request |
//! |---|---|
//! | `GET /v1/datastores`, `POST /v1/datastores {name, capacity_gib}` | DescribeDatastores, CreateDatastore → 201 |
//! | `DELETE /v1/datastores/{name}` | DeleteDatastore (empty ones) |
//! | `POST /v1/datastores/{name}/drain`, `…/resume` | DrainDatastore, ResumeDatastore |
//! | `GET /v1/disk-moves`, `POST /v1/disk-moves {instance \| volume, datastore}` | DescribeDiskMoves, MigrateDisk → 201 |
//! | `POST /v1/disk-moves/cancel {instance \| volume}` | CancelDiskMove |
//! | `POST /v1/disk-moves/balance {threshold_percent?}` | BalanceDatastores |

use super::network::{body, cloud, created, named, Created};
use super::{check_id, Api, Fault};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use krrish_cloud::CloudRequest;
use serde::Deserialize;
use serde_json::Value;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/datastores", get(datastores).post(create_datastore))
        .route(
            "/v1/datastores/{name}",
            axum::routing::delete(delete_datastore),
        )
        .route("/v1/datastores/{name}/drain", post(drain_datastore))
        .route("/v1/datastores/{name}/resume", post(resume_datastore))
        .route("/v1/disk-moves", get(disk_moves).post(migrate_disk))
        .route("/v1/disk-moves/cancel", post(cancel_disk_move))
        .route("/v1/disk-moves/balance", post(balance))
}

async fn datastores(State(api): State<Api>) -> Result<Json<Value>, Fault> {
    cloud(&api, CloudRequest::DescribeDatastores).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDatastoreBody {
    name: String,
    capacity_gib: u64,
}

async fn create_datastore(
    State(api): State<Api>,
    b: Result<Json<CreateDatastoreBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    let r = CloudRequest::CreateDatastore {
        name: b.name,
        capacity_gib: b.capacity_gib,
    };
    created(&api, r).await
}

async fn delete_datastore(
    State(api): State<Api>,
    name: Path<String>,
) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::DeleteDatastore { name }).await
}

async fn drain_datastore(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::DrainDatastore { name }).await
}

async fn resume_datastore(
    State(api): State<Api>,
    name: Path<String>,
) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::ResumeDatastore { name }).await
}

async fn disk_moves(State(api): State<Api>) -> Result<Json<Value>, Fault> {
    cloud(&api, CloudRequest::DescribeDiskMoves).await
}

/// One disk: an instance's root disk or a volume.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskBody {
    instance: Option<String>,
    volume: Option<String>,
    /// Only for a move.
    datastore: Option<String>,
}

impl DiskBody {
    /// The disk, checked: exactly one of `instance` and `volume`.
    fn disk(&self) -> Result<(Option<String>, Option<String>), Fault> {
        match (&self.instance, &self.volume) {
            (Some(i), None) => check_id("instance", i)?,
            (None, Some(v)) => check_id("volume", v)?,
            _ => {
                return Err(Fault::invalid(
                    "give either `instance` (its root disk) or `volume`: exactly one disk",
                ))
            }
        }
        Ok((self.instance.clone(), self.volume.clone()))
    }
}

async fn migrate_disk(
    State(api): State<Api>,
    b: Result<Json<DiskBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    let (vm, volume) = b.disk()?;
    let Some(datastore) = b.datastore else {
        return Err(Fault::invalid(
            "datastore: expected the datastore to move the disk to",
        ));
    };
    check_id("datastore", &datastore)?;
    let r = CloudRequest::MigrateDisk {
        vm,
        volume,
        datastore,
    };
    created(&api, r).await
}

async fn cancel_disk_move(
    State(api): State<Api>,
    b: Result<Json<DiskBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let b = body(b)?;
    let (vm, volume) = b.disk()?;
    if b.datastore.is_some() {
        return Err(Fault::invalid(
            "datastore: not taken when cancelling a move",
        ));
    }
    cloud(&api, CloudRequest::CancelDiskMove { vm, volume }).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BalanceBody {
    threshold_percent: Option<u64>,
}

async fn balance(
    State(api): State<Api>,
    b: Result<Json<BalanceBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let b = body(b)?;
    let r = CloudRequest::BalanceDatastores {
        threshold_percent: b.threshold_percent,
    };
    cloud(&api, r).await
}
