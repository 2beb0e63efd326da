//! The cloud's load-balancer routes. Each call is one [`CloudRequest`] over
//! the operator protocol; the answer's `data` is the body. Names are
//! checked here first, so a refusal names the HTTP field (`instance`, not
//! the protocol's `vm`); ports, weights and health-check values are
//! checked by the controller, whose refusals name the field too.
//!
//! | route | request |
//! |---|---|
//! | `GET /v1/load-balancers?kind=&instance=` | DescribeLoadBalancers, filtered |
//! | `POST /v1/load-balancers {name, kind, eip?, vxnet?, ip?}` | CreateLoadBalancer → 201 |
//! | `GET`/`DELETE /v1/load-balancers/{name}` | one LB / DeleteLoadBalancer |
//! | `POST /v1/load-balancers/{name}/listeners {port, protocol?, balance?, health_check?}` | AddListener → 201 |
//! | `DELETE /v1/load-balancers/{name}/listeners/{port}` | RemoveListener |
//! | `POST /v1/load-balancers/{name}/listeners/{port}/backends {instance, port?, weight?}` | AddBackend → 201 |
//! | `DELETE /v1/load-balancers/{name}/listeners/{port}/backends/{instance}` | RemoveBackend |

use super::network::{
    body, check_choice, check_filter, cloud, created, keep, named, one, query, Created,
};
use super::{check_id, Api, Fault};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use krrish_cloud::network::lb::{Balance, HealthCheckSpec, LbKind, Protocol};
use krrish_cloud::CloudRequest;
use serde::Deserialize;
use serde_json::Value;
use std::net::Ipv4Addr;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/load-balancers", get(lbs).post(create_lb))
        .route("/v1/load-balancers/{name}", get(lb).delete(delete_lb))
        .route("/v1/load-balancers/{name}/listeners", post(add_listener))
        .route(
            "/v1/load-balancers/{name}/listeners/{port}",
            delete(remove_listener),
        )
        .route(
            "/v1/load-balancers/{name}/listeners/{port}/backends",
            post(add_backend),
        )
        .route(
            "/v1/load-balancers/{name}/listeners/{port}/backends/{instance}",
            delete(remove_backend),
        )
}

/// The LB kinds as the API spells them.
const KINDS: [LbKind; 2] = [LbKind::External, LbKind::Internal];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LbFilter {
    /// `external` or `internal`.
    kind: Option<String>,
    /// Only LBs with this VM as a backend of some listener.
    instance: Option<String>,
}

fn filter_lbs(list: Value, f: &LbFilter) -> Value {
    keep(list, |l| {
        f.kind.as_deref().is_none_or(|k| l["kind"] == k)
            && f.instance.as_deref().is_none_or(|i| {
                let listeners = l["listeners"].as_array().into_iter().flatten();
                listeners
                    .flat_map(|x| x["backends"].as_array().into_iter().flatten())
                    .any(|b| b["vm"] == i)
            })
    })
}

async fn lbs(
    State(api): State<Api>,
    q: Result<Query<LbFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    let f = query(q)?;
    check_filter("instance", &f.instance)?;
    check_choice("kind", &f.kind, &KINDS.map(|k| k.to_string()))?;
    let Json(list) = cloud(&api, CloudRequest::DescribeLoadBalancers).await?;
    Ok(Json(filter_lbs(list, &f)))
}

async fn lb(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeLoadBalancers).await?;
    one(list, "load balancer", &name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateLbBody {
    name: String,
    kind: LbKind,
    /// An external LB's EIP.
    eip: Option<String>,
    /// An internal LB's vxnet, and its address there (else the first free).
    vxnet: Option<String>,
    ip: Option<Ipv4Addr>,
}

async fn create_lb(
    State(api): State<Api>,
    b: Result<Json<CreateLbBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    check_filter("eip", &b.eip)?;
    check_filter("vxnet", &b.vxnet)?;
    let r = CloudRequest::CreateLoadBalancer {
        name: b.name,
        kind: b.kind,
        eip: b.eip,
        vxnet: b.vxnet,
        ip: b.ip,
    };
    created(&api, r).await
}

async fn delete_lb(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::DeleteLoadBalancer { name }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerBody {
    port: u32,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default)]
    balance: Balance,
    #[serde(default)]
    health_check: HealthCheckSpec,
}

async fn add_listener(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<ListenerBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let lb = named(name)?;
    let b = body(b)?;
    let r = CloudRequest::AddListener {
        lb,
        port: b.port,
        protocol: b.protocol,
        balance: b.balance,
        health_check: b.health_check,
    };
    created(&api, r).await
}

/// `{name}` and `{port}` from the path, checked.
fn listener_path(name: String, port: &str) -> Result<(String, u32), Fault> {
    check_id("name", &name)?;
    let port = port
        .parse::<u32>()
        .map_err(|_| Fault::invalid("port: expected a port from 1 to 65535"))?;
    Ok((name, port))
}

async fn remove_listener(
    State(api): State<Api>,
    Path((name, port)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let (lb, listener) = listener_path(name, &port)?;
    cloud(&api, CloudRequest::RemoveListener { lb, listener }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendBody {
    instance: String,
    /// The VM's port; default the listener's.
    port: Option<u32>,
    /// 1 to 100; default 1.
    weight: Option<u32>,
}

async fn add_backend(
    State(api): State<Api>,
    Path((name, port)): Path<(String, String)>,
    b: Result<Json<BackendBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let (lb, listener) = listener_path(name, &port)?;
    let b = body(b)?;
    check_id("instance", &b.instance)?;
    let r = CloudRequest::AddBackend {
        lb,
        listener,
        vm: b.instance,
        port: b.port,
        weight: b.weight,
    };
    created(&api, r).await
}

async fn remove_backend(
    State(api): State<Api>,
    Path((name, port, instance)): Path<(String, String, String)>,
) -> Result<Json<Value>, Fault> {
    let (lb, listener) = listener_path(name, &port)?;
    check_id("instance", &instance)?;
    let r = CloudRequest::RemoveBackend {
        lb,
        listener,
        vm: instance,
    };
    cloud(&api, r).await
}

#[cfg(test)]
mod tests {
    use super::super::status_of;
    use super::*;
    use krrish_cloud::{Cloud, CloudError};
    use krrish_core::VmId;
    use krrish_wire::ApiFault;
    use serde_json::json;

    /// Every refusal of the load-balancer calls maps to its documented
    /// status: driven through the real model.
    #[test]
    fn every_lb_refusal_maps_to_its_status() {
        let mut c = Cloud::default();
        let vms = |v: &VmId| v.as_str() == "vm-1";
        let mut ok = |json: Value| {
            let r: CloudRequest = serde_json::from_value(json).unwrap();
            c.apply(r, 0, &vms).unwrap();
        };
        ok(json!({"action": "create-router", "name": "r1"}));
        ok(json!({"action": "create-vxnet", "name": "net-1"}));
        ok(json!({"action": "join-router", "router": "r1", "vxnet": "net-1"}));
        ok(json!({"action": "join-vxnet", "vxnet": "net-1", "vm": "vm-1"}));
        ok(json!({"action": "allocate-eip", "name": "eip-1", "kind": "internet"}));
        ok(
            json!({"action": "create-load-balancer", "name": "lb-1", "kind": "external", "eip": "eip-1"}),
        );
        ok(json!({"action": "add-listener", "lb": "lb-1", "port": 80}));
        ok(json!({"action": "add-backend", "lb": "lb-1", "listener": 80, "vm": "vm-1"}));
        let cases = [
            (
                json!({"action": "delete-load-balancer", "name": "nope"}),
                "not-found",
                404,
            ),
            (
                json!({"action": "remove-listener", "lb": "lb-1", "listener": 81}),
                "not-found",
                404,
            ),
            (
                json!({"action": "remove-backend", "lb": "lb-1", "listener": 80, "vm": "vm-2"}),
                "not-found",
                404,
            ),
            (
                json!({"action": "add-listener", "lb": "lb-1", "port": 80}),
                "exists",
                409,
            ),
            (
                json!({"action": "add-backend", "lb": "lb-1", "listener": 80, "vm": "vm-1"}),
                "exists",
                409,
            ),
            (
                json!({"action": "release-eip", "name": "eip-1"}),
                "in-use",
                409,
            ),
            (
                json!({"action": "associate-eip", "eip": "eip-1", "vm": "vm-1"}),
                "already-associated",
                409,
            ),
            (
                json!({"action": "add-listener", "lb": "lb-1", "port": 0}),
                "invalid-request",
                400,
            ),
            (
                json!({"action": "create-load-balancer", "name": "lb-2", "kind": "external"}),
                "invalid-request",
                400,
            ),
        ];
        for (r, code, status) in cases {
            let r: CloudRequest = serde_json::from_value(r).unwrap();
            let e: CloudError = c.apply(r.clone(), 0, &vms).unwrap_err();
            let f = ApiFault::from(e);
            assert_eq!(f.code, code, "{r}: {}", f.message);
            assert_eq!(status_of(&f.code).as_u16(), status, "{r}");
        }
    }

    #[test]
    fn list_filters_keep_only_the_matching_lbs() {
        let list = json!([
            {"name": "a", "kind": "external", "listeners": [{"port": 80, "backends": [{"vm": "vm-1"}]}]},
            {"name": "b", "kind": "internal", "listeners": []},
        ]);
        let names = |v: Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x["name"].as_str().unwrap().to_string())
                .collect()
        };
        let f = |kind: Option<&str>, instance: Option<&str>| LbFilter {
            kind: kind.map(Into::into),
            instance: instance.map(Into::into),
        };
        assert_eq!(names(filter_lbs(list.clone(), &f(None, None))), ["a", "b"]);
        assert_eq!(
            names(filter_lbs(list.clone(), &f(Some("internal"), None))),
            ["b"]
        );
        assert_eq!(
            names(filter_lbs(list.clone(), &f(None, Some("vm-1")))),
            ["a"]
        );
        assert!(names(filter_lbs(list, &f(Some("internal"), Some("vm-1")))).is_empty());
    }

    #[test]
    fn the_lb_kinds_are_spelled_as_serde_reads_them() {
        for k in KINDS {
            let back: LbKind = serde_json::from_value(json!(k.to_string())).unwrap();
            assert_eq!(back, k);
        }
        assert!(listener_path("lb-1".into(), "eighty").is_err());
        assert_eq!(listener_path("lb-1".into(), "80").unwrap().1, 80);
    }
}
