//! Load balancers (`CreateLoadBalancers`, `AddLoadBalancerListeners`,
//! `AddLoadBalancerBackends` in QingCloud's names): listeners on ports,
//! backends per listener, a health check per listener whose verdicts come
//! from the data plane, and whether a request is served.
//!
//! - An **external** LB takes requests on an EIP (internet or external, as
//!   EIPs are); its backends are VMs on vxnets joined to a router (the
//!   router carries the EIP's traffic to them).
//! - An **internal** LB has an address on a vxnet, taken by the same policy
//!   as VMs' (last octet 1–198, `.247` is the gateway); its backends are VMs
//!   on that vxnet or on a vxnet joined to the same router, and only VMs that
//!   reach that vxnet reach it.
//! - LBs are **distributed** like routers: every host's VGW runs them, so an
//!   LB has no host of its own to fail. What fails is the way to a backend:
//!   its guest not running (or running twice), its host off, its host's VM
//!   network (bond1) down, or its interface gone.
//! - A **health check** per listener (defaults as HAProxy's: every 2 s,
//!   2 s time-out, 2 good checks to go in, 3 failed to go out) asks the data
//!   plane whether the LB reaches each backend. A backend is taken out of
//!   service after `unhealthy_threshold` failed checks in a row and put
//!   (back) in after `healthy_threshold` good ones: hysteresis, so one lost
//!   probe does not flap it. A new backend starts `new` (not in service)
//!   until it passes. The checks run on the controller's timer
//!   ([`super::Network::health_checks_due`], [`super::Network::run_health_checks`]),
//!   against a [`super::dataplane::Fabric`] the controller's shell reads
//!   ([`FabricReport`]).
//! - A request ([`serve::serve`]) is spread over the backends in service;
//!   those the data plane cannot reach right now lose their share of
//!   requests until the health check takes them out.
//!
//! Every call checks everything first and changes nothing when it refuses.

mod calls;
mod health;
mod records;
pub mod serve;

pub(crate) use calls::apply;
pub use health::FabricReport;
pub use records::NewLb;

use crate::name::Name;
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use thiserror::Error;

/// Bounds on load balancers (every collection is bounded).
#[derive(Clone, Copy, Debug)]
pub struct LbLimits {
    pub load_balancers: usize,
    /// Per load balancer.
    pub listeners: usize,
    /// Per listener.
    pub backends: usize,
}

pub const LB_LIMITS: LbLimits = LbLimits {
    load_balancers: 100,
    listeners: 16,
    backends: 64,
};

/// Accepted health-check settings (and the defaults, HAProxy's `inter 2s`,
/// `timeout check` = inter, `rise 2`, `fall 3`).
pub const CHECK_INTERVAL_MS: std::ops::RangeInclusive<u64> = 1_000..=300_000;
pub const CHECK_TIMEOUT_MIN_MS: u64 = 100;
pub const CHECK_THRESHOLD: std::ops::RangeInclusive<u32> = 1..=10;
/// Backend weights (HAProxy's `weight`, without 0: remove the backend).
pub const WEIGHT: std::ops::RangeInclusive<u32> = 1..=100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LbKind {
    /// On an EIP.
    External,
    /// On a vxnet.
    Internal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    #[default]
    Tcp,
    Http,
}

/// How requests are spread over the backends in service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// In turn, by weight.
    #[default]
    RoundRobin,
    /// To the backend with the fewest connections open.
    LeastConn,
    /// By a hash of the client's address (a client sticks to one backend).
    Source,
}

macro_rules! kebab_display {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
                f.write_str(v.as_str().unwrap_or("?"))
            }
        }
    };
}
kebab_display!(LbKind);
kebab_display!(Protocol);
kebab_display!(Balance);
kebab_display!(Health);

/// Where an LB takes requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Frontend {
    External { eip: Name },
    Internal { vxnet: Name, ip: Ipv4Addr },
}

/// A listener's health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub interval_ms: u64,
    /// A probe not answered within this fails.
    pub timeout_ms: u64,
    /// Good checks in a row that put a backend in service.
    pub healthy_threshold: u32,
    /// Failed checks in a row that take it out.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            interval_ms: 2_000,
            timeout_ms: 2_000,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// A health check as a request gives it: each field optional (default as
/// [`HealthCheck::default`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    #[serde(default)]
    pub interval_ms: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
}

/// A backend's standing with its listener's health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Added, not yet passed `healthy_threshold` checks: gets no requests.
    New,
    InService,
    /// Failed `unhealthy_threshold` checks in a row: gets no requests until
    /// it passes `healthy_threshold` in a row.
    OutOfService,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub vm: VmId,
    pub port: u16,
    pub weight: u32,
    pub health: Health,
    /// Its checks' results in a row.
    #[serde(flatten)]
    pub checks: crate::health::CheckCount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub port: u16,
    pub protocol: Protocol,
    pub balance: Balance,
    pub health_check: HealthCheck,
    pub backends: BTreeMap<VmId, Backend>,
    /// When its next health check is due (none without backends).
    #[serde(default)]
    pub next_check_ms: Option<u64>,
}

impl Listener {
    /// The backends requests are spread over now.
    pub fn in_service(&self) -> Vec<VmId> {
        self.backends
            .values()
            .filter(|b| b.health == Health::InService)
            .map(|b| b.vm.clone())
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub name: Name,
    pub frontend: Frontend,
    pub listeners: BTreeMap<u16, Listener>,
}

impl LoadBalancer {
    pub fn kind(&self) -> LbKind {
        match self.frontend {
            Frontend::External { .. } => LbKind::External,
            Frontend::Internal { .. } => LbKind::Internal,
        }
    }

    pub fn listener(&self, port: u16) -> Result<&Listener, LbError> {
        self.listeners
            .get(&port)
            .ok_or_else(|| LbError::NoListener {
                lb: self.name.clone(),
                port,
            })
    }
}

/// Refusals particular to load balancers; each names the request field.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LbError {
    #[error("{field}: {value} is out of range: expected {expected}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        expected: String,
    },
    #[error("{field}: {why}")]
    Field { field: &'static str, why: String },
    #[error("listener: load balancer {lb} has no listener on port {port}")]
    NoListener { lb: Name, port: u16 },
    #[error("port: load balancer {lb} already has a listener on port {port}")]
    ListenerExists { lb: Name, port: u16 },
    #[error("vm: {vm} is already a backend of listener {port} of load balancer {lb}")]
    BackendExists { lb: Name, port: u16, vm: VmId },
    #[error("vm: {vm} is not a backend of listener {port} of load balancer {lb}")]
    NoBackend { lb: Name, port: u16, vm: VmId },
    #[error("vm: {vm} has no interface load balancer {lb} reaches: expected {expected}")]
    Unreachable {
        lb: Name,
        vm: VmId,
        expected: String,
    },
}

impl LbError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            LbError::OutOfRange { .. } | LbError::Field { .. } | LbError::Unreachable { .. } => {
                "invalid-request"
            }
            LbError::NoListener { .. } | LbError::NoBackend { .. } => "not-found",
            LbError::ListenerExists { .. } | LbError::BackendExists { .. } => "exists",
        }
    }
}

/// A port as a request gives it (`field` names it in the refusal).
pub fn port(field: &'static str, value: u32) -> Result<u16, LbError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or(LbError::OutOfRange {
            field,
            value: value.into(),
            expected: "a port from 1 to 65535".into(),
        })
}

impl HealthCheckSpec {
    /// The check with defaults filled in, every value in range.
    pub fn check(self) -> Result<HealthCheck, LbError> {
        let d = HealthCheck::default();
        let interval_ms = self.interval_ms.unwrap_or(d.interval_ms);
        if !CHECK_INTERVAL_MS.contains(&interval_ms) {
            return Err(LbError::OutOfRange {
                field: "health_check.interval_ms",
                value: interval_ms,
                expected: format!(
                    "{} to {} ms",
                    CHECK_INTERVAL_MS.start(),
                    CHECK_INTERVAL_MS.end()
                ),
            });
        }
        // Unset, the time-out is the interval (HAProxy's `timeout check`).
        let timeout_ms = self.timeout_ms.unwrap_or(interval_ms);
        if !(CHECK_TIMEOUT_MIN_MS..=interval_ms).contains(&timeout_ms) {
            return Err(LbError::OutOfRange {
                field: "health_check.timeout_ms",
                value: timeout_ms,
                expected: format!(
                    "{CHECK_TIMEOUT_MIN_MS} ms to the interval ({interval_ms} ms): a check ends before the next starts"
                ),
            });
        }
        let threshold = |field: &'static str, v: Option<u32>, default: u32| {
            let v = v.unwrap_or(default);
            if CHECK_THRESHOLD.contains(&v) {
                Ok(v)
            } else {
                Err(LbError::OutOfRange {
                    field,
                    value: v.into(),
                    expected: format!(
                        "{} to {} checks",
                        CHECK_THRESHOLD.start(),
                        CHECK_THRESHOLD.end()
                    ),
                })
            }
        };
        Ok(HealthCheck {
            interval_ms,
            timeout_ms,
            healthy_threshold: threshold(
                "health_check.healthy_threshold",
                self.healthy_threshold,
                d.healthy_threshold,
            )?,
            unhealthy_threshold: threshold(
                "health_check.unhealthy_threshold",
                self.unhealthy_threshold,
                d.unhealthy_threshold,
            )?,
        })
    }
}
