//! krrish-wire: what crosses the network between the controller, the agents
//! and operators, and the seams that let the same services run over tokio
//! TCP in production and turmoil TCP in simulation.
//!
//! Map:
//! - [`Frame`] and friends — the protocol (JSON, one frame per message);
//!   operator requests are answered with [`ApiReply`] or a typed [`ApiFault`].
//! - [`read_frame`] / [`write_frame`] — length-prefixed framing, bounded.
//! - [`Connect`] / [`Listen`] — transport seams; [`tokio_net`] implements them
//!   for real sockets.
//! - [`Clock`] — where services read "now" (turmoil's clock in simulation).
//! - [`TraceSink`] — one-line-per-event trace output.

use krrish_cloud::GuestConfig;
use krrish_core::ha::{BootReason, DriverError, HostReport};
use krrish_core::{HostId, VmId, VmSpec};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted; a peer sending more is cut off.
pub const FRAME_BYTES_MAX: u32 = 16 << 20;

/// The port the controller listens on for agents and operators.
pub const CONTROLLER_PORT: u16 = 7400;

/// Every message, in both directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Agent → controller, first frame on a connection.
    AgentHello { host: HostId, boot_id: u64 },
    /// Agent → controller, every heartbeat interval.
    Heartbeat { report: HostReport },
    /// Controller → agent: heartbeat received (lets the agent notice a dead
    /// connection and reconnect).
    HeartbeatAck,
    /// Agent → controller: a command finished.
    CommandDone {
        id: u64,
        outcome: Result<(), DriverError>,
    },
    /// Controller → agent.
    Command { id: u64, command: AgentCommand },
    /// Operator → controller, first frame on a connection.
    OperatorHello,
    /// Operator → controller.
    Request { id: u64, request: ApiRequest },
    /// Controller → operator.
    Response {
        id: u64,
        result: Result<ApiReply, ApiFault>,
    },
}

/// What an accepted operator request did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiReply {
    /// For people (and the simulated worlds' traces): `vm X placed on h`.
    pub message: String,
    /// For programs: `{"vm": .., "host": ..}`, the cluster status, …
    pub data: serde_json::Value,
}

/// Why an operator request was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiFault {
    /// Stable kebab-case kind (`no-such-vm`, …): what clients match on.
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<krrish_cloud::CloudError> for ApiFault {
    fn from(e: krrish_cloud::CloudError) -> Self {
        ApiFault {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

impl From<krrish_core::ha::ApiError> for ApiFault {
    fn from(e: krrish_core::ha::ApiError) -> Self {
        Self {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

/// What an agent is told to do on its host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AgentCommand {
    BootVm {
        vm: VmSpec,
        reason: BootReason,
        /// Its interfaces, EIPs and volumes as the cloud's records say at
        /// the boot.
        #[serde(default)]
        guest: GuestConfig,
        /// Which boot of the VM (0: not told): sent again after a lost
        /// answer, a boot the agent already failed is answered again, not
        /// run again.
        #[serde(default)]
        serial: u64,
    },
    /// The VM's network or volumes changed (or the agent may not know
    /// them): make the host match `guest` for `vm`, running here.
    SetGuest {
        vm: VmId,
        guest: GuestConfig,
    },
    StopVm {
        vm: VmId,
    },
    /// Restart the guest in place.
    RebootVm {
        vm: VmId,
    },
    LiveMigrate {
        vm: VmId,
        to: HostId,
    },
    /// Cancel a live migration of `vm` to `to` still copying.
    AbortMigration {
        vm: VmId,
        to: HostId,
    },
}

/// The operator API (QingCloud-style names in the docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ApiRequest {
    /// RunInstances: optionally from an image of the DFS repository (the
    /// VM gets a root disk over it) and into a vxnet (it gets an address).
    RunInstance {
        vm: VmSpec,
        host: Option<HostId>,
        #[serde(default)]
        image: Option<String>,
        #[serde(default)]
        vxnet: Option<String>,
    },
    /// StopInstances.
    StopInstance { vm: VmId },
    /// StartInstances: a stopped VM boots again (at home if it has room).
    StartInstance { vm: VmId },
    /// RebootInstances: the guest restarts in place.
    RebootInstance { vm: VmId },
    /// TerminateInstances: the VM, its addresses, its root disk and
    /// snapshots go; its volumes are detached and kept.
    TerminateInstance { vm: VmId },
    /// MigrateInstance (live).
    MigrateInstance { vm: VmId, to: HostId },
    /// Puts a host in maintenance, draining it by live migration.
    EnterMaintenance { host: HostId },
    /// Takes a host out of maintenance: it takes VMs again.
    ExitMaintenance { host: HostId },
    /// DescribeInstances + DescribeHosts: the cluster status (as the
    /// reply's `data`).
    DescribeCluster,
    /// Sets (or replaces) a placement rule group beside the cluster file's.
    PutRule {
        rule: krrish_core::rule_check::RuleWords,
    },
    /// Deletes a rule group set through the API.
    DeleteRule { name: String },
    /// The rule groups in force, by origin (as the reply's `data`).
    DescribeRules,
    /// The cluster-wide HA switch.
    SetHa { enabled: bool },
    /// A call on the cloud's other resources (vxnets, EIPs, …).
    Cloud(krrish_cloud::CloudRequest),
}

impl std::fmt::Display for ApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiRequest::RunInstance { vm, host, .. } => write!(
                f,
                "RunInstances {} ({}, HA {}) on {}",
                vm.id,
                vm.demand,
                vm.ha,
                host.as_ref().map(|h| h.as_str()).unwrap_or("any host")
            ),
            ApiRequest::StopInstance { vm } => write!(f, "StopInstances {vm}"),
            ApiRequest::StartInstance { vm } => write!(f, "StartInstances {vm}"),
            ApiRequest::TerminateInstance { vm } => write!(f, "TerminateInstances {vm}"),
            ApiRequest::RebootInstance { vm } => write!(f, "RebootInstances {vm}"),
            ApiRequest::MigrateInstance { vm, to } => write!(f, "MigrateInstance {vm} to {to}"),
            ApiRequest::EnterMaintenance { host } => write!(f, "EnterMaintenance {host}"),
            ApiRequest::ExitMaintenance { host } => write!(f, "ExitMaintenance {host}"),
            ApiRequest::DescribeCluster => write!(f, "DescribeCluster"),
            ApiRequest::PutRule { rule } => write!(
                f,
                "PutRule {} ({} {})",
                rule.name,
                rule.strength,
                rule.kind.name()
            ),
            ApiRequest::DeleteRule { name } => write!(f, "DeleteRule {name}"),
            ApiRequest::DescribeRules => write!(f, "DescribeRules"),
            ApiRequest::SetHa { enabled } => {
                write!(f, "SetHa {}", if *enabled { "on" } else { "off" })
            }
            ApiRequest::Cloud(r) => write!(f, "{r}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {FRAME_BYTES_MAX}-byte limit")]
    TooLarge(u32),
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, FrameError> {
    let len = match r.read_u32().await {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if len > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(serde_json::from_slice(&buf)?))
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
) -> Result<(), FrameError> {
    let body = serde_json::to_vec(frame)?;
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(u32::MAX))?;
    if len > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(len));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

/// Opens connections (agent → controller).
pub trait Connect {
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>>;
}

/// Accepts connections (the controller).
pub trait Listen {
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Stream>>;
}

/// Milliseconds since the world started: turmoil's clock in simulation, a
/// monotonic clock in production.
pub trait Clock {
    fn now_ms(&self) -> u64;
}

/// Where services write their one-line events.
pub trait TraceSink {
    fn line(&self, at_ms: u64, source: &str, text: &str);
    /// A typed control-plane event; by default, its line.
    fn event(&self, at_ms: u64, source: &str, notice: &krrish_core::ha::Notice) {
        self.line(at_ms, source, &notice.to_string());
    }
}

/// Real sockets and clocks.
pub mod tokio_net {
    use super::*;

    pub struct TokioConnect;

    impl Connect for TokioConnect {
        type Stream = tokio::net::TcpStream;
        async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(s)
        }
    }

    pub struct TokioListen(pub tokio::net::TcpListener);

    impl Listen for TokioListen {
        type Stream = tokio::net::TcpStream;
        async fn accept(&mut self) -> io::Result<Self::Stream> {
            let (s, _) = self.0.accept().await?;
            s.set_nodelay(true)?;
            Ok(s)
        }
    }

    /// Monotonic milliseconds since the clock was made (tokio's clock, so a
    /// paused test runtime controls it too).
    pub struct MonotonicClock(tokio::time::Instant);

    impl MonotonicClock {
        pub fn start() -> Self {
            Self(tokio::time::Instant::now())
        }
    }

    impl Clock for MonotonicClock {
        fn now_ms(&self) -> u64 {
            self.0.elapsed().as_millis() as u64
        }
    }

    /// Trace lines to standard error.
    pub struct StderrTrace;

    impl TraceSink for StderrTrace {
        fn line(&self, at_ms: u64, source: &str, text: &str) {
            eprintln!("[{}] {source:<12} {text}", krrish_core::ha::secs(at_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversize_is_refused() {
        let f = Frame::CommandDone {
            id: 7,
            outcome: Err(krrish_core::ha::DriverError::Unavailable(
                "disk gone".into(),
            )),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &f).await.unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).await.unwrap(), Some(f));
        assert_eq!(read_frame(&mut r).await.unwrap(), None);

        let mut big = (FRAME_BYTES_MAX + 1).to_be_bytes().to_vec();
        big.extend_from_slice(b"{}");
        let mut r = &big[..];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(FrameError::TooLarge(_))
        ));
    }
}
