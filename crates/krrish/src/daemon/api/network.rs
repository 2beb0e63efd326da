//! The cloud's network routes: vxnets, routers, EIPs and DNS aliases. Each
//! call is one [`CloudRequest`] over the operator protocol; the answer's
//! `data` is the body. Names are checked here first, so a refusal names the
//! HTTP field (`instance`, not the protocol's `vm`); the controller checks
//! them again. A VM is `instance` in every body and filter. The helpers
//! here ([`cloud`], [`body`], [`keep`], …) serve the storage routes too.
//!
//! | route | request |
//! |---|---|
//! | `GET /v1/vxnets?router=&instance=` | DescribeVxnets, filtered |
//! | `POST /v1/vxnets {name, network?}` | CreateVxnet → 201 |
//! | `GET`/`DELETE /v1/vxnets/{name}` | one vxnet / DeleteVxnet |
//! | `POST /v1/vxnets/{name}/join {instance, ip?}`, `…/leave {instance}` | JoinVxnet, LeaveVxnet |
//! | `GET /v1/routers?vxnet=`, `POST /v1/routers {name}` | DescribeRouters, CreateRouter → 201 |
//! | `GET`/`DELETE /v1/routers/{name}` | one router / DeleteRouter |
//! | `POST /v1/routers/{name}/join {vxnet}`, `…/leave {vxnet}` | JoinRouter, LeaveRouter |
//! | `GET /v1/eips?instance=&kind=`, `POST /v1/eips {name, kind}` | DescribeEips, AllocateEip → 201 |
//! | `GET`/`DELETE /v1/eips/{name}` | one EIP / ReleaseEip |
//! | `POST /v1/eips/{name}/associate {instance}`, `…/dissociate` | AssociateEip, DissociateEip |
//! | `GET /v1/dns-aliases?instance=`, `POST /v1/dns-aliases {name}` | DescribeDnsAliases, CreateDnsAlias → 201 |
//! | `GET`/`DELETE /v1/dns-aliases/{name}` | one alias / DeleteDnsAlias |
//! | `POST /v1/dns-aliases/{name}/associate {instance}`, `…/dissociate` | AssociateDnsAlias, DissociateDnsAlias |

use super::{check_id, json_error, Api, Fault};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use krrish_cloud::network::EipKind;
use krrish_cloud::CloudRequest;
use krrish_wire::ApiRequest;
use serde::Deserialize;
use serde_json::Value;
use std::net::Ipv4Addr;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/vxnets", get(vxnets).post(create_vxnet))
        .route("/v1/vxnets/{name}", get(vxnet).delete(delete_vxnet))
        .route("/v1/vxnets/{name}/join", post(join_vxnet))
        .route("/v1/vxnets/{name}/leave", post(leave_vxnet))
        .route("/v1/routers", get(routers).post(create_router))
        .route("/v1/routers/{name}", get(router).delete(delete_router))
        .route("/v1/routers/{name}/join", post(join_router))
        .route("/v1/routers/{name}/leave", post(leave_router))
        .route("/v1/eips", get(eips).post(allocate_eip))
        .route("/v1/eips/{name}", get(eip).delete(release_eip))
        .route("/v1/eips/{name}/associate", post(associate_eip))
        .route("/v1/eips/{name}/dissociate", post(dissociate_eip))
        .route("/v1/dns-aliases", get(aliases).post(create_alias))
        .route("/v1/dns-aliases/{name}", get(alias).delete(delete_alias))
        .route("/v1/dns-aliases/{name}/associate", post(associate_alias))
        .route("/v1/dns-aliases/{name}/dissociate", post(dissociate_alias))
}

pub(super) type Created = (StatusCode, Json<Value>);

/// One cloud call; its answer's data.
pub(super) async fn cloud(api: &Api, request: CloudRequest) -> Result<Json<Value>, Fault> {
    Ok(Json(api.call(ApiRequest::Cloud(request)).await?.data))
}

pub(super) async fn created(api: &Api, request: CloudRequest) -> Result<Created, Fault> {
    Ok((StatusCode::CREATED, cloud(api, request).await?))
}

pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, Fault> {
    b.map(|Json(b)| b).map_err(json_error)
}

pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Fault> {
    q.map(|Query(q)| q)
        .map_err(|e| Fault::invalid(e.body_text()))
}

/// `{name}` from the path, checked.
pub(super) fn named(Path(name): Path<String>) -> Result<String, Fault> {
    check_id("name", &name)?;
    Ok(name)
}

/// An optional filter's value, checked as a name.
pub(super) fn check_filter(field: &str, v: &Option<String>) -> Result<(), Fault> {
    v.as_deref().map_or(Ok(()), |v| check_id(field, v))
}

/// A filter that must be one of `choices` (as the API spells them), if
/// given.
pub(super) fn check_choice(
    field: &str,
    v: &Option<String>,
    choices: &[String],
) -> Result<(), Fault> {
    match v {
        Some(v) if !choices.contains(v) => Err(Fault::invalid(format!(
            "{field}: expected {}",
            choices.join(" or ")
        ))),
        _ => Ok(()),
    }
}

/// The element of a describe list called `name`, or `not-found` worded as
/// the cloud words it.
pub(super) fn one(list: Value, kind: &str, name: &str) -> Result<Json<Value>, Fault> {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == name)
        .cloned()
        .map(Json)
        .ok_or_else(|| Fault::new("not-found", format!("no {kind} named {name}")))
}

/// The elements of a describe list that `keep` accepts.
pub(super) fn keep(list: Value, keep: impl Fn(&Value) -> bool) -> Value {
    match list {
        Value::Array(a) => Value::Array(a.into_iter().filter(keep).collect()),
        other => other,
    }
}

// ------------------------------------------------------------------ vxnets

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VxnetFilter {
    /// Only vxnets joined to this router.
    router: Option<String>,
    /// Only vxnets this VM has joined.
    instance: Option<String>,
}

fn filter_vxnets(list: Value, f: &VxnetFilter) -> Value {
    keep(list, |v| {
        f.router.as_deref().is_none_or(|r| v["router"] == r)
            && f.instance.as_deref().is_none_or(|i| {
                v["vms"]
                    .as_array()
                    .is_some_and(|nics| nics.iter().any(|n| n["vm"] == i))
            })
    })
}

async fn vxnets(
    State(api): State<Api>,
    q: Result<Query<VxnetFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    let f = query(q)?;
    check_filter("router", &f.router)?;
    check_filter("instance", &f.instance)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeVxnets).await?;
    Ok(Json(filter_vxnets(list, &f)))
}

async fn vxnet(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeVxnets).await?;
    one(list, "vxnet", &name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVxnetBody {
    name: String,
    /// The /24 (any address in it); default `192.168.<n>.0`.
    network: Option<Ipv4Addr>,
}

async fn create_vxnet(
    State(api): State<Api>,
    b: Result<Json<CreateVxnetBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    let r = CloudRequest::CreateVxnet {
        name: b.name,
        network: b.network,
    };
    created(&api, r).await
}

async fn delete_vxnet(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::DeleteVxnet { name }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinVxnetBody {
    instance: String,
    /// The address to take; else the first free one.
    ip: Option<Ipv4Addr>,
}

async fn join_vxnet(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<JoinVxnetBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let vxnet = named(name)?;
    let b = body(b)?;
    check_id("instance", &b.instance)?;
    let r = CloudRequest::JoinVxnet {
        vxnet,
        vm: b.instance,
        ip: b.ip,
    };
    cloud(&api, r).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaveVxnetBody {
    instance: String,
}

async fn leave_vxnet(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<LeaveVxnetBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let vxnet = named(name)?;
    let b = body(b)?;
    check_id("instance", &b.instance)?;
    let r = CloudRequest::LeaveVxnet {
        vxnet,
        vm: b.instance,
    };
    cloud(&api, r).await
}

// ----------------------------------------------------------------- routers

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterFilter {
    /// Only the router this vxnet is joined to.
    vxnet: Option<String>,
}

fn filter_routers(list: Value, f: &RouterFilter) -> Value {
    keep(list, |r| {
        f.vxnet.as_deref().is_none_or(|x| {
            r["vxnets"]
                .as_array()
                .is_some_and(|xs| xs.iter().any(|v| v == x))
        })
    })
}

async fn routers(
    State(api): State<Api>,
    q: Result<Query<RouterFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    let f = query(q)?;
    check_filter("vxnet", &f.vxnet)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeRouters).await?;
    Ok(Json(filter_routers(list, &f)))
}

async fn router(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeRouters).await?;
    one(list, "router", &name)
}

/// `{name}`: what creating a router, a DNS alias or a snapshot takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NameBody {
    pub(super) name: String,
}

async fn create_router(
    State(api): State<Api>,
    b: Result<Json<NameBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    created(&api, CloudRequest::CreateRouter { name: b.name }).await
}

async fn delete_router(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::DeleteRouter { name }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VxnetBody {
    vxnet: String,
}

async fn join_router(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<VxnetBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let router = named(name)?;
    let b = body(b)?;
    check_id("vxnet", &b.vxnet)?;
    let r = CloudRequest::JoinRouter {
        router,
        vxnet: b.vxnet,
    };
    cloud(&api, r).await
}

async fn leave_router(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<VxnetBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let router = named(name)?;
    let b = body(b)?;
    check_id("vxnet", &b.vxnet)?;
    let r = CloudRequest::LeaveRouter {
        router,
        vxnet: b.vxnet,
    };
    cloud(&api, r).await
}

// -------------------------------------------------------------------- EIPs

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EipFilter {
    /// Only the EIP associated with this VM.
    instance: Option<String>,
    /// `internet` or `external`.
    kind: Option<String>,
}

fn filter_eips(list: Value, f: &EipFilter) -> Value {
    keep(list, |e| {
        f.instance.as_deref().is_none_or(|i| e["vm"] == i)
            && f.kind.as_deref().is_none_or(|k| e["kind"] == k)
    })
}

/// The EIP kinds as the API spells them.
const EIP_KINDS: [EipKind; 2] = [EipKind::Internet, EipKind::External];

async fn eips(
    State(api): State<Api>,
    q: Result<Query<EipFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    let f = query(q)?;
    check_filter("instance", &f.instance)?;
    check_choice("kind", &f.kind, &EIP_KINDS.map(|k| k.to_string()))?;
    let Json(list) = cloud(&api, CloudRequest::DescribeEips).await?;
    Ok(Json(filter_eips(list, &f)))
}

async fn eip(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeEips).await?;
    one(list, "eip", &name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocateEipBody {
    name: String,
    kind: EipKind,
}

async fn allocate_eip(
    State(api): State<Api>,
    b: Result<Json<AllocateEipBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    let r = CloudRequest::AllocateEip {
        name: b.name,
        kind: b.kind,
    };
    created(&api, r).await
}

async fn release_eip(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::ReleaseEip { name }).await
}

/// `{instance}`: the VM an EIP, a DNS alias or a volume is associated with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InstanceBody {
    pub(super) instance: String,
}

async fn associate_eip(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<InstanceBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let eip = named(name)?;
    let b = body(b)?;
    check_id("instance", &b.instance)?;
    let r = CloudRequest::AssociateEip {
        eip,
        vm: b.instance,
    };
    cloud(&api, r).await
}

async fn dissociate_eip(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let eip = named(name)?;
    cloud(&api, CloudRequest::DissociateEip { eip }).await
}

// ------------------------------------------------------------- DNS aliases

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasFilter {
    /// Only the aliases of this VM.
    instance: Option<String>,
}

fn filter_aliases(list: Value, f: &AliasFilter) -> Value {
    keep(list, |a| f.instance.as_deref().is_none_or(|i| a["vm"] == i))
}

async fn aliases(
    State(api): State<Api>,
    q: Result<Query<AliasFilter>, QueryRejection>,
) -> Result<Json<Value>, Fault> {
    let f = query(q)?;
    check_filter("instance", &f.instance)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeDnsAliases).await?;
    Ok(Json(filter_aliases(list, &f)))
}

async fn alias(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let Json(list) = cloud(&api, CloudRequest::DescribeDnsAliases).await?;
    one(list, "dns alias", &name)
}

async fn create_alias(
    State(api): State<Api>,
    b: Result<Json<NameBody>, JsonRejection>,
) -> Result<Created, Fault> {
    let b = body(b)?;
    check_id("name", &b.name)?;
    created(&api, CloudRequest::CreateDnsAlias { name: b.name }).await
}

async fn delete_alias(State(api): State<Api>, name: Path<String>) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, CloudRequest::DeleteDnsAlias { name }).await
}

async fn associate_alias(
    State(api): State<Api>,
    name: Path<String>,
    b: Result<Json<InstanceBody>, JsonRejection>,
) -> Result<Json<Value>, Fault> {
    let alias = named(name)?;
    let b = body(b)?;
    check_id("instance", &b.instance)?;
    let r = CloudRequest::AssociateDnsAlias {
        alias,
        vm: b.instance,
    };
    cloud(&api, r).await
}

async fn dissociate_alias(
    State(api): State<Api>,
    name: Path<String>,
) -> Result<Json<Value>, Fault> {
    let alias = named(name)?;
    cloud(&api, CloudRequest::DissociateDnsAlias { alias }).await
}

#[cfg(test)]
mod tests {
    use super::super::status_of;
    use super::*;
    use krrish_cloud::{Cloud, CloudError};
    use krrish_core::VmId;
    use krrish_wire::ApiFault;
    use serde_json::json;

    /// Every refusal the cloud gives maps to its documented status: driven
    /// through the real model, not a list of codes copied here.
    #[test]
    fn every_cloud_refusal_maps_to_its_status() {
        let mut c = Cloud::default();
        let vms = |v: &VmId| v.as_str() == "vm-1" || v.as_str() == "vm-2";
        let mut ok = |r: CloudRequest| c.apply(r, 0, &vms).unwrap();
        ok(CloudRequest::CreateVxnet {
            name: "net-1".into(),
            network: None,
        });
        ok(CloudRequest::JoinVxnet {
            vxnet: "net-1".into(),
            vm: "vm-1".into(),
            ip: None,
        });
        ok(CloudRequest::CreateRouter { name: "r1".into() });
        ok(CloudRequest::JoinRouter {
            router: "r1".into(),
            vxnet: "net-1".into(),
        });
        ok(CloudRequest::AllocateEip {
            name: "eip-1".into(),
            kind: EipKind::Internet,
        });
        ok(CloudRequest::AssociateEip {
            eip: "eip-1".into(),
            vm: "vm-1".into(),
        });
        ok(CloudRequest::CreateDnsAlias { name: "db".into() });
        let cases = [
            (
                CloudRequest::DeleteVxnet {
                    name: "nope".into(),
                },
                "not-found",
                404,
            ),
            (
                CloudRequest::CreateVxnet {
                    name: "net-1".into(),
                    network: None,
                },
                "exists",
                409,
            ),
            (
                CloudRequest::DeleteVxnet {
                    name: "net-1".into(),
                },
                "in-use",
                409,
            ),
            (
                CloudRequest::AssociateEip {
                    eip: "eip-1".into(),
                    vm: "vm-2".into(),
                },
                "already-associated",
                409,
            ),
            (
                CloudRequest::DissociateDnsAlias { alias: "db".into() },
                "not-associated",
                409,
            ),
            (
                CloudRequest::CreateRouter { name: "<b>".into() },
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
        // Pool and count limits, which take many calls to reach.
        for code in ["exhausted", "limit"] {
            assert_eq!(status_of(code), StatusCode::CONFLICT);
        }
    }

    #[test]
    fn list_filters_keep_only_the_matching_resources() {
        let vxnets = json!([
            {"name": "a", "router": "r1", "vms": [{"vm": "vm-1", "ip": "10.0.0.2"}]},
            {"name": "b", "router": null, "vms": []},
        ]);
        let names = |v: Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x["name"].as_str().unwrap().to_string())
                .collect()
        };
        let f = |router: Option<&str>, instance: Option<&str>| VxnetFilter {
            router: router.map(Into::into),
            instance: instance.map(Into::into),
        };
        assert_eq!(
            names(filter_vxnets(vxnets.clone(), &f(None, None))),
            ["a", "b"]
        );
        assert_eq!(
            names(filter_vxnets(vxnets.clone(), &f(Some("r1"), None))),
            ["a"]
        );
        assert_eq!(
            names(filter_vxnets(vxnets.clone(), &f(None, Some("vm-1")))),
            ["a"]
        );
        assert!(names(filter_vxnets(vxnets, &f(Some("r2"), Some("vm-1")))).is_empty());

        let routers = json!([{"name": "r1", "vxnets": ["a"]}, {"name": "r2", "vxnets": []}]);
        let f = RouterFilter {
            vxnet: Some("a".into()),
        };
        assert_eq!(names(filter_routers(routers, &f)), ["r1"]);

        let eips = json!([
            {"name": "e1", "kind": "internet", "vm": "vm-1"},
            {"name": "e2", "kind": "external", "vm": null},
        ]);
        let f = |instance: Option<&str>, kind: Option<&str>| EipFilter {
            instance: instance.map(Into::into),
            kind: kind.map(Into::into),
        };
        assert_eq!(
            names(filter_eips(eips.clone(), &f(Some("vm-1"), None))),
            ["e1"]
        );
        assert_eq!(
            names(filter_eips(eips.clone(), &f(None, Some("external")))),
            ["e2"]
        );
        assert!(names(filter_eips(eips, &f(Some("vm-1"), Some("external")))).is_empty());

        let aliases = json!([{"name": "db", "vm": "vm-1"}, {"name": "www", "vm": null}]);
        let f = AliasFilter {
            instance: Some("vm-1".into()),
        };
        assert_eq!(names(filter_aliases(aliases, &f)), ["db"]);
    }

    #[test]
    fn one_resource_or_not_found_as_the_cloud_words_it() {
        let list = json!([{"name": "a", "vni": 1001}]);
        assert_eq!(one(list.clone(), "vxnet", "a").unwrap().0["vni"], 1001);
        let Fault(f) = one(list, "vxnet", "b").unwrap_err();
        assert_eq!(
            (f.code.as_str(), f.message.as_str()),
            ("not-found", "no vxnet named b")
        );
    }

    #[test]
    fn the_eip_kinds_are_spelled_as_serde_reads_them() {
        for k in EIP_KINDS {
            let back: EipKind = serde_json::from_value(json!(k.to_string())).unwrap();
            assert_eq!(back, k);
        }
    }
}
