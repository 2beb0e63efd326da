//! The VM and host routes: `/v1/hosts`, `/v1/instances…`.

use super::{check_id, json_error, Api, Fault};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use krrish_core::ha::VmState;
use krrish_core::{HaPolicy, HostId, Resources, VmId, VmSpec};
use krrish_wire::ApiRequest;
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/hosts", get(hosts))
        .route(
            "/v1/hosts/{id}/maintenance",
            post(enter_maintenance).delete(exit_maintenance),
        )
        .route("/v1/drs/plan", get(drs_plan))
        .route("/v1/instances", get(instances).post(run))
        .route("/v1/instances/{id}", get(instance).delete(terminate))
        .route("/v1/instances/{id}/stop", post(stop))
        .route("/v1/instances/{id}/start", post(start))
        .route("/v1/instances/{id}/reboot", post(reboot))
        .route("/v1/instances/{id}/migrate", post(migrate))
}

async fn hosts(State(api): State<Api>) -> Result<Json<Value>, Fault> {
    let c = api.cluster().await?;
    let hosts = object(&c, "hosts")
        .map(|(id, h)| {
            json!({ "id": id, "state": h["state"], "spare": h["spare"], "bonds": h["bonds"], "standby": h["standby"] })
        })
        .collect();
    Ok(Json(Value::Array(hosts)))
}

/// The moves DRS would make now: `{ "enabled": bool, "moves": [...] }`.
async fn drs_plan(State(api): State<Api>) -> Result<Json<Value>, Fault> {
    let c = api.cluster().await?;
    let plan = &c["drs_plan"];
    Ok(Json(json!({
        "enabled": !plan.is_null(),
        "moves": plan.as_array().cloned().unwrap_or_default(),
    })))
}

fn object<'a>(c: &'a Value, key: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    c.get(key).and_then(Value::as_object).into_iter().flatten()
}

fn instance_json(id: &str, v: &Value) -> Value {
    json!({ "id": id, "state": v["state"], "host": v["host"] })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceFilter {
    state: Option<String>,
    host: Option<String>,
}

async fn instances(
    State(api): State<Api>,
    q: Result<Query<InstanceFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    let Query(q) = q.map_err(|e| Fault::invalid(e.body_text()))?;
    if let Some(s) = &q.state {
        if !VmState::NAMES.contains(&s.as_str()) {
            return Err(Fault::invalid(format!(
                "state: expected one of {}",
                VmState::NAMES.join(", ")
            )));
        }
    }
    if let Some(h) = &q.host {
        check_id("host", h)?;
    }
    let c = api.cluster().await?;
    let list = object(&c, "vms")
        .filter(|(_, v)| q.state.as_deref().is_none_or(|s| v["state"] == s))
        .filter(|(_, v)| q.host.as_deref().is_none_or(|h| v["host"] == h))
        .map(|(id, v)| instance_json(id, v))
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn instance(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, Fault> {
    check_id("id", &id)?;
    let c = api.cluster().await?;
    match c.get("vms").and_then(|v| v.get(&id)) {
        Some(v) => Ok(Json(instance_json(&id, v))),
        None => Err(Fault(
            krrish_core::ha::ApiError::NoSuchVm(VmId::new(id)).into(),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    id: String,
    cpu: u32,
    memory_mib: u64,
    #[serde(default)]
    disk_gib: u64,
    ha: Option<HaPolicy>,
    #[serde(default)]
    priority: u32,
    host: Option<String>,
    /// Launch from this image of the DFS repository.
    image: Option<String>,
    /// Join this vxnet at launch.
    vxnet: Option<String>,
}

/// Largest VM the API accepts, per resource (far past any real host).
const VCPUS_MAX: u32 = 4096;
const MEMORY_MIB_MAX: u64 = 64 << 20;
const DISK_GIB_MAX: u64 = 1 << 20;

async fn run(
    State(api): State<Api>,
    body: Result<Json<RunBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let Json(b) = body.map_err(json_error)?;
    check_id("id", &b.id)?;
    if let Some(h) = &b.host {
        check_id("host", h)?;
    }
    if let Some(i) = &b.image {
        check_id("image", i)?;
    }
    if let Some(x) = &b.vxnet {
        check_id("vxnet", x)?;
    }
    if b.cpu == 0 || b.cpu > VCPUS_MAX {
        return Err(Fault::invalid(format!("cpu: expected 1 to {VCPUS_MAX}")));
    }
    if b.memory_mib == 0 || b.memory_mib > MEMORY_MIB_MAX {
        return Err(Fault::invalid(format!(
            "memory_mib: expected 1 to {MEMORY_MIB_MAX}"
        )));
    }
    if b.disk_gib > DISK_GIB_MAX {
        return Err(Fault::invalid(format!(
            "disk_gib: expected at most {DISK_GIB_MAX}"
        )));
    }
    let host = b.host.map(HostId::new);
    let vm = VmSpec {
        id: VmId::new(b.id),
        // The core sets home to the host it places the VM on.
        home: host.clone().unwrap_or_else(|| HostId::new("")),
        demand: Resources {
            vcpus: b.cpu,
            memory_mib: b.memory_mib,
            disk_gib: b.disk_gib,
        },
        ha: b.ha.unwrap_or(HaPolicy::Restart),
        priority: b.priority,
        passthrough_devices: Vec::new(),
        failback: true,
        restart_delay_ms: 0,
    };
    let r = api
        .call(ApiRequest::RunInstance {
            vm,
            host,
            image: b.image,
            vxnet: b.vxnet,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(r.data)))
}

/// TerminateInstances: answered with what the VM let go of.
async fn terminate(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, Fault> {
    check_id("id", &id)?;
    let r = api
        .call(ApiRequest::TerminateInstance { vm: VmId::new(id) })
        .await?;
    Ok(Json(r.data))
}

/// Puts a host in maintenance: 202 with the VMs moving and where, or 409
/// (`cannot-drain`, each VM that cannot move and why; nothing changed).
async fn enter_maintenance(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    check_id("id", &id)?;
    let r = api
        .call(ApiRequest::EnterMaintenance {
            host: HostId::new(id),
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(r.data)))
}

/// Takes a host out of maintenance.
async fn exit_maintenance(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    check_id("id", &id)?;
    let r = api
        .call(ApiRequest::ExitMaintenance {
            host: HostId::new(id),
        })
        .await?;
    Ok(Json(r.data))
}

/// RebootInstances: the guest restarts in place.
async fn reboot(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    check_id("id", &id)?;
    let r = api
        .call(ApiRequest::RebootInstance { vm: VmId::new(id) })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(r.data)))
}

async fn stop(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    check_id("id", &id)?;
    let r = api
        .call(ApiRequest::StopInstance { vm: VmId::new(id) })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(r.data)))
}

async fn start(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    check_id("id", &id)?;
    let r = api
        .call(ApiRequest::StartInstance { vm: VmId::new(id) })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(r.data)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrateBody {
    to: String,
}

async fn migrate(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Result<Json<MigrateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    check_id("id", &id)?;
    let Json(b) = body.map_err(json_error)?;
    check_id("to", &b.to)?;
    let r = api
        .call(ApiRequest::MigrateInstance {
            vm: VmId::new(id),
            to: HostId::new(b.to),
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(r.data)))
}
