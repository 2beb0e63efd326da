//! The lease service's HTTP/JSON calls. Host names travel in the path and
//! are checked by the service (`a-z`, `0-9`, `-`, `_`, `.`; at most 63).
//!
//! | call | body | answer |
//! |---|---|---|
//! | `POST /v1/leases/{host}/renew` | [`RenewRequest`] | [`RenewAnswer`]; 409 when revoked |
//! | `POST /v1/leases/{host}/revoke` | `{}` | [`RevokeAnswer`] |
//! | `POST /v1/leases/{host}/reinstate` | `{}` | `{"was_revoked": bool}` |
//! | `GET /v1/leases` | — | [`RenewalsAnswer`] |
//!
//! Refusals are `{"error": "..."}` with a 4xx status. Durations are the
//! service's own (monotonic) milliseconds, relative to when it answered,
//! so no two clocks are ever compared.

use krrish_core::lease::PowerOnList;
use krrish_core::{HostId, VmId};
use serde::{Deserialize, Serialize};

pub const LEASES_PATH: &str = "/v1/leases";
/// Longest host name the service takes.
pub const HOST_NAME_MAX: usize = 63;

pub fn renew_path(host: &HostId) -> String {
    format!("{LEASES_PATH}/{host}/renew")
}
pub fn revoke_path(host: &HostId) -> String {
    format!("{LEASES_PATH}/{host}/revoke")
}
pub fn reinstate_path(host: &HostId) -> String {
    format!("{LEASES_PATH}/{host}/reinstate")
}

/// Whether `name` is a host name the service takes, and if not why.
pub fn check_host_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= HOST_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host name {:?}: expected 1 to {HOST_NAME_MAX} characters of a-z, 0-9, '-', '_', '.'",
            name.chars().take(HOST_NAME_MAX + 1).collect::<String>()
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// How long the host assumes its lease runs (it stops its VMs before
    /// that, counted from when it asked): the service grants exactly this,
    /// up to its maximum.
    pub duration_ms: u64,
    /// The host's boot, for the service's log.
    pub boot_id: u64,
    /// What the host runs, listed after it received an earlier grant;
    /// absent from older agents (and on an agent's first renewal).
    #[serde(default)]
    pub power_on: Option<PowerOnClaim>,
}

/// A host's power-on list (see [`krrish_core::lease::PowerOnList`]): the
/// VMs of every domain on it, listed after the host had received the
/// grant numbered `after_grant` — which proves to the service how fresh
/// the list is, whatever the network held the request up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerOnClaim {
    pub vms: Vec<VmId>,
    pub after_grant: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewAnswer {
    pub expires_in_ms: u64,
    /// This grant's number, to name in the next renewal's power-on list;
    /// absent from older services.
    #[serde(default)]
    pub grant: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeAnswer {
    pub expires_in_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewal {
    pub host: HostId,
    pub age_ms: u64,
    pub revoked: bool,
    /// The host's latest power-on list the service could date; absent
    /// from older services.
    #[serde(default)]
    pub power_on: Option<PowerOnList>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalsAnswer {
    pub hosts: Vec<Renewal>,
    /// How long the service has been listening (it lists a host only once
    /// it renewed since it started); absent from older services.
    #[serde(default)]
    pub listening_for_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_that_could_escape_a_path_are_refused() {
        assert!(check_host_name("hv-01.lab").is_ok());
        for bad in ["", "../x", "a/b", "A", "h 1", "h%2f", &"x".repeat(64)] {
            let e = check_host_name(bad).unwrap_err();
            assert!(e.contains("expected 1 to 63"), "{bad}: {e}");
        }
    }
}
