//! The managed-RDB routes. Each call is one [`CloudRequest`] over the
//! operator protocol; the answer's `data` is the body. Names are checked
//! here first; the controller checks the members (they exist, differ, are
//! in no other RDB, and sit on different hosts) and names the field.
//!
//! | route | request |
//! |---|---|
//! | `GET /v1/rdbs` | DescribeRdbs |
//! | `POST /v1/rdbs {name, primary, standby}` | CreateRdb → 201 |
//! | `GET`/`DELETE /v1/rdbs/{name}` | one RDB / DeleteRdb |
//! | `POST /v1/rdbs/{name}/switchover` | SwitchoverRdb |

use super::network::{body, cloud, created, named, one, Created};
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
        .route("/v1/rdbs", get(rdbs).post(create_rdb))
        .route("/v1/rdbs/{name}", get(rdb).delete(delete_rdb))
        .route("/v1/rdbs/{name}/switchover", post(switchover_rdb))
}

async fn rdbs(State(api): State<Api>) -> Result<Json<Value>, Fault> {
    cloud(&api, CloudRequest::DescribeRdbs).await
}

async fn rdb(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeRdbs).await?;
    one(list, "rdb", &name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRdbBody {
    name: String,
    primary: String,
    standby: String,
}

async fn create_rdb(
    State(api): State<Api>,
    b: Result<Json<CreateRdbBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    check_id("primary", &b.primary)?;
    check_id("standby", &b.standby)?;
    let r = CloudRequest::CreateRdb {
        name: b.name,
        primary: b.primary,
        standby: b.standby,
    };
    created(&api, r).await
}

async fn delete_rdb(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::DeleteRdb { name }).await
}

async fn switchover_rdb(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::SwitchoverRdb { name }).await
}
