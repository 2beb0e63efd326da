//! Placement rule groups and the cluster-wide HA switch, set at run time
//! beside the cluster file's (persisted in the controller's store). The
//! controller checks a group as the loader checks a file's, and refuses a
//! `must` group that does not hold where its VMs run now.
//!
//! | route | request |
//! |---|---|
//! | `GET /v1/rules` | DescribeRules: the file's, the API's, the services' groups |
//! | `PUT /v1/rules/{name} {kind, strength, vms, hosts}` | PutRule (set or replace) |
//! | `DELETE /v1/rules/{name}` | DeleteRule (the API's only) |
//! | `GET /v1/ha` | the switch |
//! | `PUT /v1/ha {enabled}` | SetHa |

use super::network::{body, named};
use super::{Api, Fault};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use krrish_core::rule_check::{RuleKindName, RuleWords};
use krrish_core::rules::Strength;
use krrish_wire::ApiRequest;
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/rules", get(rules))
        .route(
            "/v1/rules/{name}",
            axum::routing::put(put_rule).delete(delete_rule),
        )
        .route("/v1/ha", get(ha).put(set_ha))
}

async fn rules(State(api): State<Api>) -> Result<Json<Value>, Fault> {
    Ok(Json(api.call(ApiRequest::DescribeRules).await?.data))
}

/// A group's body: the name is the path's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    kind: RuleKindName,
    strength: Strength,
    vms: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
}

async fn put_rule(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<RuleBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let b = body(b)?;
    let rule = RuleWords {
        name,
        kind: b.kind,
        strength: b.strength,
        vms: b.vms,
        hosts: b.hosts,
    };
    Ok(Json(api.call(ApiRequest::PutRule { rule }).await?.data))
}

async fn delete_rule(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    Ok(Json(api.call(ApiRequest::DeleteRule { name }).await?.data))
}

async fn ha(State(api): State<Api>) -> Result<Json<Value>, Fault> {
    let r = api.call(ApiRequest::DescribeRules).await?;
    Ok(Json(json!({ "enabled": r.data["ha_enabled"] })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HaBody {
    enabled: bool,
}

async fn set_ha(
    State(api): State<Api>,
    b: Result<Json<HaBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let b = body(b)?;
    let r = api.call(ApiRequest::SetHa { enabled: b.enabled }).await?;
    Ok(Json(r.data))
}
