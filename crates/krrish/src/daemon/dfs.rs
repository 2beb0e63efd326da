//! `krrish dfs --config dfs.yaml`: the DFS's lease service, on the storage
//! network. Hosts' agents renew their leases here (a host whose storage
//! network is down cannot, and stops its VMs before its lease runs out);
//! the controller revokes a host's lease to fence it at the storage layer
//! and reads when each host last renewed, its second liveness channel.
//! The calls are in `krrish_dfs::protocol`; the grants live in a
//! [`LeaseTable`], the same one the simulated world keeps.
//!
//! Revocations are written to a redb file before they are answered, so a
//! restarted service still refuses a fenced host; grants live in memory
//! only, so after a restart a revocation is answered with the longest
//! lease that may have been granted before it (the table's
//! `after_restart`).
//!
//! Each renewal may carry the host's power-on list (the VMs of every
//! domain on it), listed after the host received an earlier grant it
//! names by number: the service dates the list by that grant and hands it
//! to the controller with the renewals, which settles migrations in doubt
//! on a host whose management network is cut. A list naming a grant the
//! service does not know (before its restart, or too old) is not kept.
//!
//! The service trusts its network, as the DFS does: the storage network is
//! closed to guests and tenants. It has no token.

use super::api::Limited;
use super::config::{load_dfs, DfsConfig};
use super::{install_signals, runtime, shutdown_signal, PidFile, Stdout, STDOUT_FINISH_WAIT};
use anyhow::{Context, Result};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use krrish_core::lease::{LeaseRefusal, LeaseTable, PowerOnList, POWER_ON_VMS_MAX};
use krrish_core::timings::mix64;
use krrish_core::HostId;
use krrish_dfs::protocol::{
    check_host_name, ErrorBody, RenewAnswer, RenewRequest, Renewal, RenewalsAnswer, RevokeAnswer,
    LEASES_PATH,
};
use krrish_wire::tokio_net::MonotonicClock;
use krrish_wire::{Clock, TraceSink};
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Hosts whose lease is revoked, with nothing as the value.
const REVOKED: TableDefinition<&str, ()> = TableDefinition::new("revoked");
/// Connections served at once (one per host renewing, plus the
/// controller's).
const CONNECTIONS_MAX: usize = 512;
/// Log lines waiting for stdout; past this they are dropped.
const LOG_LINES_QUEUED_MAX: usize = 1024;
/// Largest request body (a renewal is some 40 bytes, its power-on list
/// up to `POWER_ON_VMS_MAX` names).
const BODY_BYTES_MAX: usize = 64 + POWER_ON_VMS_MAX * 72;
/// Hosts whose boot the service remembers for its log (and whose grants
/// it numbers).
const BOOTS_KEPT_MAX: usize = 4096;
/// Grants per host the service remembers, to date power-on lists by (a
/// list names the latest grant its host had received: renewals every few
/// seconds, so a few grants cover any list not held up for long).
const GRANTS_KEPT: usize = 8;

struct Shared {
    table: LeaseTable,
    db: Database,
    clock: MonotonicClock,
    max_lease_ms: u64,
    /// Each host's boot at its last renewal: a new boot is logged.
    boots: BTreeMap<HostId, u64>,
    /// Each host's latest grants: (number, when), oldest first.
    grants: BTreeMap<HostId, VecDeque<(u64, u64)>>,
    /// Grant numbers are this service's own: a seed drawn at its start,
    /// mixed with a count (unguessable across restarts, never repeated).
    grant_seed: u64,
    grants_made: u64,
    log: mpsc::Sender<String>,
}

impl Shared {
    fn say(&self, line: String) {
        let _ = self.log.try_send(line);
    }

    /// Numbers a grant just made to `host` at `now` (none for a host beyond
    /// the hosts kept: its lists go undated, so unused).
    fn grant(&mut self, host: &HostId, now: u64) -> Option<u64> {
        if self.grants.len() >= BOOTS_KEPT_MAX && !self.grants.contains_key(host) {
            return None;
        }
        self.grants_made += 1;
        let number = mix64(self.grant_seed ^ self.grants_made);
        let kept = self.grants.entry(host.clone()).or_default();
        if kept.len() >= GRANTS_KEPT {
            kept.pop_front();
        }
        kept.push_back((number, now));
        Some(number)
    }
}

#[derive(Clone)]
struct Service(Arc<Mutex<Shared>>);

impl Service {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A handler that panicked left the table as it was before its call
        // (every change is one table call), so the data is still sound.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn refuse(status: StatusCode, error: String) -> Response {
    (status, Json(ErrorBody { error })).into_response()
}

fn host_of(name: &str) -> Result<HostId, String> {
    check_host_name(name).map(|()| HostId::new(name))
}

/// The revoked hosts in `db` (none in a new file).
fn read_revoked(db: &Database) -> Result<Vec<HostId>> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(REVOKED) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut hosts = Vec::new();
    for row in table.iter()? {
        let (k, _) = row?;
        hosts.push(HostId::new(k.value()));
    }
    Ok(hosts)
}

fn write_revoked(db: &Database, host: &HostId, revoked: bool) -> Result<(), String> {
    let why = |e: &dyn std::fmt::Display| format!("cannot record the revocation of {host}: {e}");
    let tx = db.begin_write().map_err(|e| why(&e))?;
    {
        let mut t = tx.open_table(REVOKED).map_err(|e| why(&e))?;
        let written = if revoked {
            t.insert(host.as_str(), ()).map(drop)
        } else {
            t.remove(host.as_str()).map(drop)
        };
        written.map_err(|e| why(&e))?;
    }
    tx.commit().map_err(|e| why(&e))
}

async fn renew(
    State(s): State<Service>,
    UrlPath(host): UrlPath<String>,
    body: Result<Json<RenewRequest>, JsonRejection>,
) -> Response {
    let host = match host_of(&host) {
        Ok(h) => h,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; expected {{\"duration_ms\": <ms>, \"boot_id\": <n>}} of at most {BODY_BYTES_MAX} bytes",
                    e.body_text()
                ),
            )
        }
    };
    if req.duration_ms == 0 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "duration_ms: expected more than 0".into(),
        );
    }
    if let Some(p) = req
        .power_on
        .as_ref()
        .filter(|p| p.vms.len() > POWER_ON_VMS_MAX)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "power_on.vms: {} VMs; expected at most {POWER_ON_VMS_MAX}",
                p.vms.len()
            ),
        );
    }
    let mut s = s.lock();
    let now = s.clock.now_ms();
    let max = s.max_lease_ms;
    match s.table.renew(now, &host, req.duration_ms, Some(max)) {
        Ok(until) => {
            let grant = s.grant(&host, now);
            if let Some(claim) = req.power_on {
                // Dated by the grant it names, if this service made it.
                let granted_at = s.grants.get(&host).and_then(|g| {
                    g.iter()
                        .find(|(number, _)| *number == claim.after_grant)
                        .map(|(_, at)| *at)
                });
                if let Some(at) = granted_at {
                    let names: Vec<String> = claim.vms.iter().map(|v| v.to_string()).collect();
                    if s.table.power_on_list(&host, claim.vms, at) {
                        s.say(format!(
                            "{host} runs [{}] (its power-on list)",
                            names.join(", ")
                        ));
                    }
                }
            }
            let new_boot = s.boots.get(&host) != Some(&req.boot_id);
            if new_boot && (s.boots.len() < BOOTS_KEPT_MAX || s.boots.contains_key(&host)) {
                s.boots.insert(host.clone(), req.boot_id);
                s.say(format!(
                    "{host} renews (boot {}, {} ms leases)",
                    req.boot_id, req.duration_ms
                ));
            }
            Json(RenewAnswer {
                expires_in_ms: until - now,
                grant,
            })
            .into_response()
        }
        Err(r @ LeaseRefusal::Revoked) => refuse(StatusCode::CONFLICT, format!("{host}: {r}")),
        Err(r @ LeaseRefusal::TooLong { .. }) => {
            refuse(StatusCode::UNPROCESSABLE_ENTITY, format!("{host}: {r}"))
        }
    }
}

// The `{}` body is read and dropped: a body left unread makes the server
// close a keep-alive connection a client may reuse.
async fn revoke(
    State(s): State<Service>,
    UrlPath(host): UrlPath<String>,
    _body: axum::body::Bytes,
) -> Response {
    let host = match host_of(&host) {
        Ok(h) => h,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let mut s = s.lock();
    // Written before it is answered: a restart keeps the host fenced.
    if let Err(why) = write_revoked(&s.db, &host, true) {
        s.say(why.clone());
        return refuse(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    let now = s.clock.now_ms();
    let until = s.table.revoke(&host);
    let left = until.saturating_sub(now);
    s.say(format!("revoked the lease of {host} (runs {left} ms more)"));
    Json(RevokeAnswer {
        expires_in_ms: left,
    })
    .into_response()
}

async fn reinstate(
    State(s): State<Service>,
    UrlPath(host): UrlPath<String>,
    _body: axum::body::Bytes,
) -> Response {
    let host = match host_of(&host) {
        Ok(h) => h,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let mut s = s.lock();
    if let Err(why) = write_revoked(&s.db, &host, false) {
        s.say(why.clone());
        return refuse(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    let was = s.table.reinstate(&host);
    if was {
        s.say(format!("reinstated the lease of {host}"));
    }
    Json(serde_json::json!({ "was_revoked": was })).into_response()
}

async fn renewals(State(s): State<Service>) -> Json<RenewalsAnswer> {
    let s = s.lock();
    let now = s.clock.now_ms();
    let power_on: BTreeMap<HostId, PowerOnList> =
        s.table.renewals(now).power_on.into_iter().collect();
    let hosts = s
        .table
        .iter()
        .filter_map(|(h, r)| {
            r.renewed_at_ms.map(|at| Renewal {
                host: h.clone(),
                age_ms: now.saturating_sub(at),
                revoked: r.revoked,
                power_on: power_on.get(h).cloned(),
            })
        })
        .collect();
    let listening_for_ms = Some(s.table.renewals(now).listening_for_ms);
    Json(RenewalsAnswer {
        hosts,
        listening_for_ms,
    })
}

async fn method_not_allowed() -> Response {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; expected GET {LEASES_PATH} or POST {LEASES_PATH}/<host>/renew|revoke|reinstate"),
    )
}

async fn not_found() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        format!("no such call; expected {LEASES_PATH}[/<host>/renew|revoke|reinstate]"),
    )
}

fn router(service: Service) -> Router {
    Router::new()
        .route(LEASES_PATH, get(renewals))
        .route(&format!("{LEASES_PATH}/{{host}}/renew"), post(renew))
        .route(&format!("{LEASES_PATH}/{{host}}/revoke"), post(revoke))
        .route(
            &format!("{LEASES_PATH}/{{host}}/reinstate"),
            post(reinstate),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(service)
}

/// The service over `db`, its hosts in `revoked` still revoked.
fn service(
    db: Database,
    revoked: Vec<HostId>,
    max_lease_ms: u64,
    log: mpsc::Sender<String>,
) -> Service {
    let clock = MonotonicClock::start();
    let grant_seed = std::hash::BuildHasher::hash_one(
        &std::collections::hash_map::RandomState::new(),
        std::process::id(),
    );
    let table = LeaseTable::after_restart(clock.now_ms(), max_lease_ms, revoked);
    Service(Arc::new(Mutex::new(Shared {
        table,
        db,
        clock,
        max_lease_ms,
        boots: BTreeMap::new(),
        grants: BTreeMap::new(),
        grant_seed,
        grants_made: 0,
        log,
    })))
}

async fn serve(listener: tokio::net::TcpListener, service: Service) -> std::io::Result<()> {
    axum::serve(
        Limited::new(listener, CONNECTIONS_MAX),
        router(service).into_make_service(),
    )
    .await
}

/// Loads and checks everything, then serves until SIGTERM or SIGINT.
pub fn main(config: &Path, check_only: bool) -> Result<()> {
    let cfg: DfsConfig = load_dfs(config)?;
    if check_only {
        println!("{}: ok", config.display());
        return Ok(());
    }
    let std_listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    std_listener
        .set_nonblocking(true)
        .context("cannot make the listening socket non-blocking")?;
    let db = Database::create(&cfg.store)
        .with_context(|| format!("cannot open the lease store {}", cfg.store.display()))?;
    let revoked = read_revoked(&db)
        .with_context(|| format!("cannot read the lease store {}", cfg.store.display()))?;

    let rt = runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (mut term, mut int) = install_signals()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .context("cannot register the listening socket")?;
        let clock = std::rc::Rc::new(MonotonicClock::start());
        let trace = std::rc::Rc::new(Stdout::start());
        let _pid = cfg.pid_file.as_deref().map(PidFile::write).transpose()?;
        let say = |text: &str| trace.line(clock.now_ms(), "dfs", text);
        say(&format!(
            "lease service on http://{} (leases up to {} ms; store {})",
            cfg.listen,
            cfg.max_lease_ms,
            cfg.store.display()
        ));
        if !revoked.is_empty() {
            let names: Vec<&str> = revoked.iter().map(HostId::as_str).collect();
            say(&format!("still revoked: {}", names.join(", ")));
        }
        say(&format!(
            "leases granted before this start are unknown: a revocation in the next {} ms \
             is answered with that much",
            cfg.max_lease_ms
        ));
        let (log, mut log_rx) = mpsc::channel::<String>(LOG_LINES_QUEUED_MAX);
        let (t, k) = (trace.clone(), clock.clone());
        tokio::task::spawn_local(async move {
            while let Some(line) = log_rx.recv().await {
                t.line(k.now_ms(), "dfs", &line);
            }
        });
        let server = serve(listener, service(db, revoked, cfg.max_lease_ms, log));
        tokio::select! {
            r = server => anyhow::bail!("the lease service ended unexpectedly: {r:?}"),
            signal = shutdown_signal(&mut term, &mut int) => {
                say(&format!("{signal}: shutting down"));
            }
        }
        trace.finish(STDOUT_FINISH_WAIT);
        Ok(())
    })?;
    drop(local);
    drop(rt);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use krrish_dfs::{LeaseClient, LeaseError};
    use std::time::Duration;

    /// Runs a service over the store at `path` on a thread of its own;
    /// returns its address.
    fn start(path: &Path) -> String {
        let db = Database::create(path).unwrap();
        let revoked = read_revoked(&db).unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let rt = runtime().unwrap();
            rt.block_on(async move {
                let (log, mut rx) = mpsc::channel(64);
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                let l = tokio::net::TcpListener::from_std(std_listener).unwrap();
                serve(l, service(db, revoked, 60_000, log)).await
            })
        });
        addr
    }

    fn store(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("krrish-dfs-{name}-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn renew_revoke_read_reinstate_over_http() {
        let path = store("roundtrip");
        let c = LeaseClient::new(&start(&path), Duration::from_secs(5));
        let h1 = HostId::new("h1");
        let left = c.renew(&h1, 30_000, 1, None).unwrap().expires_in_ms;
        assert!((29_000..=30_000).contains(&left), "{left}");
        let answer = c.renewals().unwrap();
        // Just started: the read says it has listened only briefly.
        assert!(
            answer.listening_for_ms.is_some_and(|ms| ms < 5_000),
            "{answer:?}"
        );
        let r = answer.hosts;
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].host.as_str(), r[0].revoked), ("h1", false));
        assert!(r[0].age_ms < 5_000);
        // Just started: leases granted before this start may still run.
        let left = c.revoke(&h1).unwrap();
        assert!((55_000..=60_000).contains(&left), "{left}");
        match c.renew(&h1, 30_000, 1, None) {
            Err(LeaseError::Refused(why)) => {
                assert_eq!(why, "h1: lease revoked by the controller")
            }
            other => panic!("{other:?}"),
        }
        assert!(c.renewals().unwrap().hosts[0].revoked);
        c.reinstate(&h1).unwrap();
        assert!(c.renew(&h1, 30_000, 2, None).is_ok());
        match c.renew(&h1, 120_000, 2, None) {
            Err(LeaseError::Refused(why)) => assert_eq!(
                why,
                "h1: asked for a 120000 ms lease; this DFS grants at most 60000 ms"
            ),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_revocation_outlives_a_restart_of_the_service() {
        let path = store("restart");
        let h2 = HostId::new("h2");
        {
            let db = Database::create(&path).unwrap();
            write_revoked(&db, &h2, true).unwrap();
        }
        let c = LeaseClient::new(&start(&path), Duration::from_secs(5));
        assert!(matches!(
            c.renew(&h2, 30_000, 1, None),
            Err(LeaseError::Refused(_))
        ));
        assert!(c.renew(&HostId::new("h3"), 30_000, 1, None).is_ok());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn names_that_could_escape_are_refused_and_nothing_is_recorded() {
        let path = store("names");
        let c = LeaseClient::new(&start(&path), Duration::from_secs(5));
        match c.revoke(&HostId::new("H..x")) {
            Err(LeaseError::Refused(why)) => assert!(why.contains("expected 1 to 63"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(c.renewals().unwrap().hosts.is_empty());
        let unreachable = LeaseClient::new("127.0.0.1:1", Duration::from_secs(2));
        assert!(matches!(
            unreachable.renew(&HostId::new("h1"), 30_000, 1, None),
            Err(LeaseError::Unreachable { .. })
        ));
        let _ = std::fs::remove_file(&path);
    }

    /// A power-on list is kept only when dated by a grant this service made
    /// to that host: then the read hands it to the controller, with how
    /// long ago it was taken at the earliest.
    #[test]
    fn a_power_on_list_is_kept_only_when_it_names_a_grant_made_to_its_host() {
        let path = store("power-on");
        let c = LeaseClient::new(&start(&path), Duration::from_secs(5));
        let (h1, h2) = (HostId::new("h1"), HostId::new("h2"));
        let claim = |vms: &[&str], after_grant| {
            Some(krrish_dfs::PowerOnClaim {
                vms: vms.iter().copied().map(krrish_core::VmId::new).collect(),
                after_grant,
            })
        };
        let g1 = c
            .renew(&h1, 30_000, 1, None)
            .unwrap()
            .grant
            .expect("numbered");
        let g2 = c
            .renew(&h2, 30_000, 1, None)
            .unwrap()
            .grant
            .expect("numbered");
        assert_ne!(g1, g2);
        // h2 names h1's grant, h1 a grant never made: neither is kept.
        c.renew(&h2, 30_000, 1, claim(&["vm-9"], g1)).unwrap();
        c.renew(&h1, 30_000, 1, claim(&["vm-9"], g1 ^ g2)).unwrap();
        let read = c.renewals().unwrap();
        assert!(read.hosts.iter().all(|r| r.power_on.is_none()), "{read:?}");
        // h1 names its own grant: kept, and read back.
        c.renew(&h1, 30_000, 1, claim(&["vm-2", "vm-1"], g1))
            .unwrap();
        let read = c.renewals().unwrap();
        let h1_list = read.hosts.iter().find(|r| r.host == h1).unwrap();
        let list = h1_list.power_on.as_ref().expect("kept");
        assert_eq!(
            list.vms,
            vec![
                krrish_core::VmId::new("vm-1"),
                krrish_core::VmId::new("vm-2")
            ]
        );
        assert!(list.taken_ago_ms < 5_000, "{list:?}");
        let _ = std::fs::remove_file(&path);
    }
}
