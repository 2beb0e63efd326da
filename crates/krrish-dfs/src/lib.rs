//! The DFS lease service, client side. The DFS grants each hypervisor host a
//! lease that the host renews over the storage network (its agent's
//! driver); the controller revokes a lease to fence a host at the storage
//! layer, and reads when each host last renewed as a second, independent
//! liveness channel. The service itself is `krrish dfs` (its table is
//! [`krrish_core::lease::LeaseTable`], shared with the simulated world).
//!
//! Map:
//! - [`protocol`] — the HTTP/JSON calls: paths, bodies, answers.
//! - [`LeaseClient`] — a blocking client with short time-outs (callers run
//!   it off their event loop), errors typed as [`LeaseError`].
//!
//! Why a service and not a lock manager: the DFS lease rule needs three
//! things from the storage side — renewals that fail when the storage
//! network does, a revocation with a known expiry, and renewal times the
//! controller can read. virtlockd's locks are fcntl locks released when a
//! process dies, with no expiry and nothing to read; sanlock's delta leases
//! have renewal times but need a watchdog device per host and cannot be
//! revoked by a third party. Both protect a *disk* from a second writer,
//! which is a different (complementary) guarantee.

pub mod protocol;

use krrish_core::HostId;
use protocol::{ErrorBody, RenewRequest, RenewalsAnswer, RevokeAnswer};
pub use protocol::{PowerOnClaim, RenewAnswer};
use std::time::Duration;

/// A lease call failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseError {
    /// The service did not answer (storage network down, service down,
    /// time-out): the caller cannot tell whether anything happened.
    #[error("DFS lease service at {at} unreachable: {why}")]
    Unreachable { at: String, why: String },
    /// The service answered no (revoked, too long, bad name).
    #[error("DFS lease service refused: {0}")]
    Refused(String),
    /// The service answered something this client does not understand.
    #[error("DFS lease service at {at}: unexpected answer: {why}")]
    Garbled { at: String, why: String },
}

/// Talks to one lease service (`host:port`).
#[derive(Clone, Debug)]
pub struct LeaseClient {
    address: String,
    agent: ureq::Agent,
}

impl LeaseClient {
    /// `address` is `host:port`; every call gives up after `timeout`.
    pub fn new(address: &str, timeout: Duration) -> Self {
        // One connection per call: a call every few seconds needs no pool,
        // and a pooled connection the server (or a cut network) has closed
        // would fail the next POST, which is not retried (seen in CI:
        // "Unexpected EOF" on a renewal after a revocation).
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            .max_idle_connections(0)
            .build();
        LeaseClient {
            address: address.to_string(),
            agent,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        r: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, LeaseError> {
        let garbled = |why: String| LeaseError::Garbled {
            at: self.address.clone(),
            why,
        };
        match r {
            Ok(resp) => resp.into_json().map_err(|e| garbled(e.to_string())),
            Err(ureq::Error::Status(status, resp)) => {
                let body: ErrorBody = resp
                    .into_json()
                    .map_err(|e| garbled(format!("HTTP {status}: {e}")))?;
                Err(LeaseError::Refused(body.error))
            }
            Err(ureq::Error::Transport(t)) => Err(LeaseError::Unreachable {
                at: self.address.clone(),
                why: t.to_string(),
            }),
        }
    }

    /// Renews `host`'s lease for `duration_ms`, telling what the host runs
    /// if it can date the list; answers how long the grant now runs, by
    /// the service's clock, and the grant's number.
    pub fn renew(
        &self,
        host: &HostId,
        duration_ms: u64,
        boot_id: u64,
        power_on: Option<PowerOnClaim>,
    ) -> Result<RenewAnswer, LeaseError> {
        let body = RenewRequest {
            duration_ms,
            boot_id,
            power_on,
        };
        let r = self
            .agent
            .post(&self.url(&protocol::renew_path(host)))
            .send_json(&body);
        self.answer::<RenewAnswer>(r)
    }

    /// Revokes `host`'s lease; returns how long the last lease it may hold
    /// still runs (0: none).
    pub fn revoke(&self, host: &HostId) -> Result<u64, LeaseError> {
        let r = self
            .agent
            .post(&self.url(&protocol::revoke_path(host)))
            .send_json(serde_json::json!({}));
        self.answer::<RevokeAnswer>(r).map(|a| a.expires_in_ms)
    }

    /// Lets `host` renew again.
    pub fn reinstate(&self, host: &HostId) -> Result<(), LeaseError> {
        let r = self
            .agent
            .post(&self.url(&protocol::reinstate_path(host)))
            .send_json(serde_json::json!({}));
        self.answer::<serde_json::Value>(r).map(drop)
    }

    /// Every host that renewed since the service started, with how long
    /// ago, and how long the service has been listening.
    pub fn renewals(&self) -> Result<RenewalsAnswer, LeaseError> {
        let r = self.agent.get(&self.url(protocol::LEASES_PATH)).call();
        self.answer::<RenewalsAnswer>(r)
    }
}
