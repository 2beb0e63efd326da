//! The controller daemon's HTTP/JSON API (`/v1/…`), a thin shell over the
//! operator protocol: each HTTP call opens an in-process pipe to the
//! controller's event loop, speaks `OperatorHello` + one `Request` on it,
//! and turns the typed `Response` into JSON and an HTTP status. The
//! controller machine and the simulated worlds do not know HTTP exists.
//!
//! Map:
//! - [`instances`] — `/v1/hosts`, `/v1/instances…` (the HA core's calls).
//! - [`network`] — `/v1/vxnets…`, `/v1/routers…`, `/v1/eips…`,
//!   `/v1/dns-aliases…` (the cloud's network resources).
//! - [`lb`] — `/v1/load-balancers…` (listeners, backends, their health).
//! - [`rdb`] — `/v1/rdbs…` (managed RDBs: create, delete, switchover).
//! - [`services`] — `/v1/mongodbs…`, `/v1/caches…` (MongoDB replica sets
//!   and cache clusters: create, delete).
//! - [`storage`] — `/v1/images`, `/v1/volumes…`,
//!   `/v1/instances/{id}/snapshots…`, `/v1/instances/{id}/capture` (the
//!   cloud's storage).
//! - [`datastores`] — `/v1/datastores…`, `/v1/disk-moves…` (datastores and
//!   storage live migration: drain, balance, one disk's move).
//! - [`Bridged`] — the controller's `Listen`: real TCP connections (agents,
//!   operators) or the API's pipes ([`Conn`]), from one bounded channel.
//! - [`serve`] — the axum server: bearer-token check, routes, error mapping.
//! - [`Fault`] / [`status_of`] — `{"code","message"}` and its HTTP status.
//! - [`check_id`] — the names accepted in ids (no markup, no shell syntax).
//!
//! Bounds: pipes waiting for the controller ([`PIPES_QUEUED_MAX`], then
//! 503), HTTP connections open at once ([`CONNECTIONS_MAX`], then the
//! kernel's backlog) and idle ([`IDLE_TIMEOUT`], then closed), request bodies ([`BODY_BYTES_MAX`]), the controller's
//! answer ([`CALL_TIMEOUT`], then 503) and refusal log lines queued
//! ([`LOG_LINES_QUEUED_MAX`], then dropped).

mod datastores;
mod instances;
mod lb;
mod network;
mod rdb;
mod rules;
mod services;
mod storage;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use krrish_wire::tokio_net::TokioListen;
use krrish_wire::{read_frame, write_frame, ApiFault, ApiReply, ApiRequest, Frame, Listen};
use serde_json::{json, Value};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// API calls waiting for the controller loop to take their pipe.
pub const PIPES_QUEUED_MAX: usize = 64;
/// HTTP connections served at once; further ones wait in the backlog.
pub const CONNECTIONS_MAX: usize = 256;
/// Largest request body (a VM spec is a few hundred bytes).
pub const BODY_BYTES_MAX: usize = 64 << 10;
/// How long a call waits for the controller's answer before a 503.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP connection that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines from the API's tasks waiting for the daemon's log.
pub const LOG_LINES_QUEUED_MAX: usize = 1024;
/// Characters of a refused call's path written to the log.
const LOGGED_PATH_CHARS_MAX: usize = 200;
/// Buffer of one in-process pipe, each way.
const PIPE_BYTES: usize = 64 << 10;

// ------------------------------------------------------------ the listener

/// A connection to the controller loop: a socket or an API call's pipe.
pub enum Conn {
    Tcp(tokio::net::TcpStream),
    Pipe(DuplexStream),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Pipe(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Pipe(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Pipe(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Pipe(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The controller's listener: TCP connections and the API's pipes.
pub struct Bridged {
    tcp: TokioListen,
    pipes: Option<mpsc::Receiver<DuplexStream>>,
}

impl Bridged {
    /// `tcp` alone, plus the sender API calls hand their pipes to.
    pub fn new(tcp: TokioListen) -> (Self, mpsc::Sender<DuplexStream>) {
        let (tx, rx) = mpsc::channel(PIPES_QUEUED_MAX);
        (
            Self {
                tcp,
                pipes: Some(rx),
            },
            tx,
        )
    }
}

impl Listen for Bridged {
    type Stream = Conn;
    async fn accept(&mut self) -> io::Result<Conn> {
        loop {
            let Some(pipes) = self.pipes.as_mut() else {
                return self.tcp.accept().await.map(Conn::Tcp);
            };
            // Both arms are cancel-safe.
            tokio::select! {
                s = self.tcp.accept() => return s.map(Conn::Tcp),
                p = pipes.recv() => match p {
                    Some(p) => return Ok(Conn::Pipe(p)),
                    // No API (or it stopped): sockets only from now on.
                    None => self.pipes = None,
                },
            }
        }
    }
}

// ------------------------------------------------------------------ errors

/// An API error as sent: `{"code": "no-such-vm", "message": "…"}`.
#[derive(Debug)]
pub struct Fault(pub ApiFault);

impl Fault {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Self(ApiFault {
            code: code.to_string(),
            message: message.into(),
        })
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid-request", message)
    }
    fn busy(message: impl Into<String>) -> Self {
        Self::new("unavailable", message)
    }
}

/// The HTTP status for an error code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "no-such-vm" | "no-such-host" | "no-such-rule" | "not-found" => StatusCode::NOT_FOUND,
        // The HA core's refusals, then the cloud's (vxnets, EIPs, volumes, …).
        "vm-exists"
        | "host-unusable"
        | "no-capacity"
        | "migration-blocked"
        | "not-running"
        | "not-stopped"
        | "stop-unconfirmed"
        | "exists"
        | "in-use"
        | "already-associated"
        | "not-associated"
        | "exhausted"
        | "limit"
        | "host-unreachable"
        | "rule-forbids"
        | "no-allowed-host"
        | "maintenance-refused"
        | "cannot-drain"
        | "rule-refused" => StatusCode::CONFLICT,
        "invalid-request" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "method-not-allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let status = status_of(&self.0.code);
        let mut r = (
            status,
            Json(json!({ "code": self.0.code, "message": self.0.message })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// Ids the API accepts for VMs, hosts and the cloud's resources:
/// `[a-z0-9][a-z0-9-]{0,62}` (the cloud's one naming rule), so a name never
/// carries markup or shell syntax into logs, UIs or scripts.
fn check_id(field: &str, s: &str) -> Result<(), Fault> {
    // The refused name is not echoed: it may be the markup we refuse.
    krrish_cloud::Name::parse(field, s)
        .map(drop)
        .map_err(|e| Fault::invalid(e.to_string()))
}

// ---------------------------------------------------------------- the server

#[derive(Clone)]
struct Api {
    pipes: mpsc::Sender<DuplexStream>,
    token: Arc<str>,
    log: mpsc::Sender<String>,
}

impl Api {
    /// Queues a line for the daemon's log (dropped when the log is behind).
    fn log(&self, line: String) {
        let _ = self.log.try_send(line);
    }

    /// One operator request over a fresh pipe into the controller loop.
    async fn call(&self, request: ApiRequest) -> Result<ApiReply, Fault> {
        let (mut ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        self.pipes.try_send(theirs).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Fault::busy("the controller is busy; retry"),
            mpsc::error::TrySendError::Closed(_) => Fault::busy("the controller is not running"),
        })?;
        let exchange = async {
            write_frame(&mut ours, &Frame::OperatorHello).await?;
            write_frame(&mut ours, &Frame::Request { id: 1, request }).await?;
            loop {
                match read_frame(&mut ours).await? {
                    Some(Frame::Response { id: 1, result }) => return Ok(result),
                    Some(_) => continue,
                    None => {
                        return Err(krrish_wire::FrameError::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the controller closed the call",
                        )))
                    }
                }
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Err(_) => Err(Fault::busy(format!(
                "the controller did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
            Ok(Err(e)) => Err(Fault::busy(format!("the controller is unreachable: {e}"))),
            Ok(Ok(r)) => r.map_err(Fault),
        }
    }

    async fn cluster(&self) -> Result<Value, Fault> {
        Ok(self.call(ApiRequest::DescribeCluster).await?.data)
    }
}

/// Serves the API on `listener` until the future is dropped. Refusals of
/// unauthenticated calls go to `log` (without the token).
pub async fn serve(
    listener: tokio::net::TcpListener,
    pipes: mpsc::Sender<DuplexStream>,
    token: String,
    log: mpsc::Sender<String>,
) -> io::Result<()> {
    let api = Api {
        pipes,
        token: token.into(),
        log,
    };
    let app = Router::new()
        .merge(instances::routes())
        .merge(network::routes())
        .merge(lb::routes())
        .merge(rdb::routes())
        .merge(rules::routes())
        .merge(services::routes())
        .merge(storage::routes())
        .merge(datastores::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(api.clone(), auth))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(api);
    let listener = Limited::new(listener, CONNECTIONS_MAX);
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>()).await
}

/// Every call needs `Authorization: Bearer <token>`.
async fn auth(
    State(api): State<Api>,
    axum::extract::ConnectInfo(Peer(peer)): axum::extract::ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().strip_prefix(b"Bearer ").unwrap_or(b""));
    let why = match given {
        None => "no bearer token",
        Some(t) if same(t, api.token.as_bytes()) => return next.run(req).await,
        Some(_) => "wrong bearer token",
    };
    // The path is the caller's: cut short so it cannot flood the log.
    let path: String = req
        .uri()
        .path()
        .chars()
        .take(LOGGED_PATH_CHARS_MAX)
        .collect();
    api.log(format!(
        "api: refused {} {path} from {peer}: {why}",
        req.method()
    ));
    Fault::new(
        "unauthorized",
        format!("{why}: send Authorization: Bearer <token>"),
    )
    .into_response()
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn not_found(uri: Uri) -> Fault {
    Fault::new("not-found", format!("no route {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Fault {
    Fault::new(
        "method-not-allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn json_error(e: JsonRejection) -> Fault {
    Fault::invalid(e.body_text())
}

// ------------------------------------------------- bounded HTTP connections

/// A TCP listener that serves at most [`CONNECTIONS_MAX`] connections at
/// once: past that it stops accepting until one closes.
pub(crate) struct Limited {
    inner: tokio::net::TcpListener,
    slots: Arc<Semaphore>,
}

impl Limited {
    /// Serves at most `connections_max` connections of `inner` at once.
    pub(crate) fn new(inner: tokio::net::TcpListener, connections_max: usize) -> Self {
        Limited {
            inner,
            slots: Arc::new(Semaphore::new(connections_max)),
        }
    }
}

/// The caller's address, for the log.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Limited>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Limited>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A connection holding its slot until dropped.
pub(crate) struct Slotted {
    s: tokio::net::TcpStream,
    /// Reset by every byte read; when it fires before the next one, the
    /// connection is closed (a caller that sends nothing frees its slot).
    idle: Pin<Box<tokio::time::Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl axum::serve::Listener for Limited {
    type Io = Slotted;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Slotted, SocketAddr) {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (s, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let idle = Box::pin(tokio::time::sleep(IDLE_TIMEOUT));
        (
            Slotted {
                s,
                idle,
                _slot: slot,
            },
            addr,
        )
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for Slotted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.s).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let at = tokio::time::Instant::now() + IDLE_TIMEOUT;
                    this.idle.as_mut().reset(at);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.idle.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the caller sent nothing for too long",
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Slotted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().s).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().s).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().s).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krrish_core::{HostId, Resources, VmId};

    #[test]
    fn ids_refuse_markup_and_shell_syntax() {
        for ok in ["web-1", "a", "0vm", &"a".repeat(63)] {
            assert!(check_id("id", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "Web",
            "x;rm -rf",
            "<b>",
            "a b",
            "a$(id)",
            "a/b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(check_id("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_core_refusal_maps_to_its_status() {
        use krrish_core::ha::ApiError;
        let (vm, h) = (VmId::new("v"), HostId::new("h"));
        let cases = [
            (ApiError::NoSuchVm(vm.clone()), 404),
            (ApiError::NoSuchHost(h.clone()), 404),
            (ApiError::VmExists(vm.clone()), 409),
            (
                ApiError::HostUnusable {
                    host: h.clone(),
                    why: "down".into(),
                },
                409,
            ),
            (ApiError::NoCapacity(Resources::ZERO), 409),
            (
                ApiError::RuleForbids {
                    vm: vm.clone(),
                    host: h.clone(),
                    why: "anti-affinity".into(),
                },
                409,
            ),
            (
                ApiError::NoAllowedHost {
                    vm: vm.clone(),
                    why: "anti-affinity".into(),
                },
                409,
            ),
            (
                ApiError::MigrationBlocked {
                    vm: vm.clone(),
                    to: h.clone(),
                    why: "pinned".into(),
                },
                409,
            ),
            (
                ApiError::NotRunning {
                    vm: vm.clone(),
                    state: "stopped",
                },
                409,
            ),
            (
                ApiError::MaintenanceRefused {
                    host: h.clone(),
                    why: "fenced".into(),
                },
                409,
            ),
            (
                ApiError::CannotDrain {
                    host: h,
                    stuck: vec![(vm, "passthrough".into())],
                },
                409,
            ),
        ];
        for (e, want) in cases {
            let message = e.to_string();
            let f = ApiFault::from(e);
            assert_eq!(f.message, message);
            assert_eq!(status_of(&f.code).as_u16(), want, "{}", f.code);
        }
        assert_eq!(status_of("invalid-request"), StatusCode::BAD_REQUEST);
        assert_eq!(status_of("unauthorized"), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of("unavailable"), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"ab", b"abc"));
        assert!(!same(b"", b"abc"));
    }
}
