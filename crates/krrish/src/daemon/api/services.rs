//! The MongoDB replica-set and cache-cluster routes, as the RDB's
//! ([`super::rdb`]): each call is one [`CloudRequest`] over the operator
//! protocol; the answer's `data` is the body. Names and member ids are
//! checked here first (each id naming its field, `members[1]`,
//! `shards[0][1]`); the controller checks the rest (the number of members,
//! that they exist, differ, serve no other service and sit on different
//! hosts) and names the field.
//!
//! | route | request |
//! |---|---|
//! | `GET /v1/mongodbs` | DescribeMongodbs |
//! | `POST /v1/mongodbs {name, members}` | CreateMongodb → 201 |
//! | `GET`/`DELETE /v1/mongodbs/{name}` | one replica set / DeleteMongodb |
//! | `GET /v1/caches` | DescribeCaches |
//! | `POST /v1/caches {name, shards}` | CreateCache → 201 |
//! | `GET`/`DELETE /v1/caches/{name}` | one cache cluster / DeleteCache |
//!
//! Both services share their four handlers, generic over [`Service`].

use super::network::{body, cloud, created, named, one, Created};
use super::{check_id, Api, Fault};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use krrish_cloud::CloudRequest;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

pub(super) fn routes() -> Router<Api> {
    service::<Mongodb>().merge(service::<Cache>())
}

/// What a managed service's routes differ in.
trait Service: 'static {
    /// The collection's path; `ONE` is one of it by name.
    const PATH: &'static str;
    const ONE: &'static str;
    /// As the cloud names it in `no {KIND} named …`.
    const KIND: &'static str;
    /// The create call's body.
    type Body: DeserializeOwned + Send + 'static;
    fn describe() -> CloudRequest;
    /// The create call, its ids checked.
    fn create(b: Self::Body) -> Result<CloudRequest, Fault>;
    fn delete(name: String) -> CloudRequest;
}

fn service<S: Service>() -> Router<Api> {
    Router::new()
        .route(S::PATH, get(list::<S>).post(create::<S>))
        .route(S::ONE, get(show::<S>).delete(delete::<S>))
}

async fn list<S: Service>(State(api): State<Api>) -> Result<Json<Value>, Fault> {
    cloud(&api, S::describe()).await
}

async fn show<S: Service>(
    State(api): State<Api>,
    name: Path<String>,
) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    let Json(list) = cloud(&api, S::describe()).await?;
    one(list, S::KIND, &name)
}

async fn create<S: Service>(
    State(api): State<Api>,
    b: Result<Json<S::Body>, JsonRejection>,
) -> Result<Created, Fault> {
    let r = S::create(body(b)?)?;
    created(&api, r).await
}

async fn delete<S: Service>(
    State(api): State<Api>,
    name: Path<String>,
) -> Result<Json<Value>, Fault> {
    let name = named(name)?;
    cloud(&api, S::delete(name)).await
}

/// Each of `ids` checked as `{field}[i]`.
fn check_ids(field: &str, ids: &[String]) -> Result<(), Fault> {
    ids.iter()
        .enumerate()
        .try_for_each(|(i, id)| check_id(&format!("{field}[{i}]"), id))
}

// ---------------------------------------------------------------- mongodbs

struct Mongodb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMongodbBody {
    name: String,
    /// The first is the primary at epoch 1; the order is the priority.
    members: Vec<String>,
}

impl Service for Mongodb {
    const PATH: &'static str = "/v1/mongodbs";
    const ONE: &'static str = "/v1/mongodbs/{name}";
    const KIND: &'static str = "mongodb";
    type Body = CreateMongodbBody;

    fn describe() -> CloudRequest {
        CloudRequest::DescribeMongodbs
    }

    fn create(b: CreateMongodbBody) -> Result<CloudRequest, Fault> {
        check_id("name", &b.name)?;
        check_ids("members", &b.members)?;
        Ok(CloudRequest::CreateMongodb {
            name: b.name,
            members: b.members,
        })
    }

    fn delete(name: String) -> CloudRequest {
        CloudRequest::DeleteMongodb { name }
    }
}

// ------------------------------------------------------------------ caches

struct Cache;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCacheBody {
    name: String,
    /// Each shard `[master, replica…]`.
    shards: Vec<Vec<String>>,
}

impl Service for Cache {
    const PATH: &'static str = "/v1/caches";
    const ONE: &'static str = "/v1/caches/{name}";
    const KIND: &'static str = "cache";
    type Body = CreateCacheBody;

    fn describe() -> CloudRequest {
        CloudRequest::DescribeCaches
    }

    fn create(b: CreateCacheBody) -> Result<CloudRequest, Fault> {
        check_id("name", &b.name)?;
        for (i, shard) in b.shards.iter().enumerate() {
            check_ids(&format!("shards[{i}]"), shard)?;
        }
        Ok(CloudRequest::CreateCache {
            name: b.name,
            shards: b.shards,
        })
    }

    fn delete(name: String) -> CloudRequest {
        CloudRequest::DeleteCache { name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<CloudRequest, Fault>) -> String {
        let Fault(f) = r.unwrap_err();
        assert_eq!(f.code, "invalid-request");
        f.message
    }

    #[test]
    fn each_member_id_is_checked_naming_its_field() {
        let ok = Mongodb::create(CreateMongodbBody {
            name: "m-1".into(),
            members: vec!["a".into(), "b".into(), "c".into()],
        })
        .unwrap();
        assert!(
            matches!(ok, CloudRequest::CreateMongodb { ref members, .. } if members.len() == 3)
        );
        let m = refused(Mongodb::create(CreateMongodbBody {
            name: "m-1".into(),
            members: vec!["a".into(), "<b>".into()],
        }));
        assert!(m.starts_with("members[1]: "), "{m}");
        assert!(!m.contains("<b>"), "echoed: {m}");
        let m = refused(Cache::create(CreateCacheBody {
            name: "c-1".into(),
            shards: vec![vec!["a".into(), "b".into()], vec!["c".into(), "x;y".into()]],
        }));
        assert!(m.starts_with("shards[1][1]: "), "{m}");
        let m = refused(Cache::create(CreateCacheBody {
            name: "C".into(),
            shards: vec![],
        }));
        assert!(m.starts_with("name: "), "{m}");
    }

    #[test]
    fn bodies_refuse_unknown_fields() {
        let e = serde_json::from_str::<CreateMongodbBody>(
            r#"{"name":"m","members":["a"],"arbiter":"b"}"#,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("arbiter"), "{e}");
        let e = serde_json::from_str::<CreateCacheBody>(r#"{"name":"c","shards":[],"slots":1}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("slots"), "{e}");
    }
}
