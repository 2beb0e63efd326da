//! The host side of the DFS lease: when an agent must stop its own VMs.
//!
//! The DFS grants a host a lease of `duration_ms` each time it renews. A host
//! that cannot renew (storage network down, or the lease revoked by the
//! controller) stops every VM `lead_ms` before its last lease could run out,
//! measured from when it *asked* — earlier than the DFS's grant — so the
//! host always stops first. The controller, for its part, waits for the
//! DFS's expiry plus a margin before starting the VMs elsewhere.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseKeeper {
    pub duration_ms: u64,
    pub renew_every_ms: u64,
    pub lead_ms: u64,
    /// When the last renewal that succeeded was *requested*.
    last_ok_asked_ms: Option<u64>,
    self_fenced: bool,
}

impl LeaseKeeper {
    pub fn new(duration_ms: u64, renew_every_ms: u64, lead_ms: u64) -> Self {
        assert!(
            renew_every_ms + lead_ms < duration_ms,
            "lease would lapse between renewals"
        );
        Self {
            duration_ms,
            renew_every_ms,
            lead_ms,
            last_ok_asked_ms: None,
            self_fenced: false,
        }
    }

    /// A renewal asked at `asked_ms` succeeded.
    pub fn renewed(&mut self, asked_ms: u64) {
        self.last_ok_asked_ms = Some(asked_ms);
        self.self_fenced = false;
    }

    /// Whether VMs must be stopped now (true once per lapse).
    pub fn must_self_fence(&mut self, now_ms: u64) -> bool {
        let Some(asked) = self.last_ok_asked_ms else {
            return false; // never held a lease: nothing runs under one
        };
        if self.self_fenced || now_ms + self.lead_ms < asked + self.duration_ms {
            return false;
        }
        self.self_fenced = true;
        true
    }

    /// The instant at which [`Self::must_self_fence`] turns true.
    pub fn self_fence_at(&self) -> Option<u64> {
        if self.self_fenced {
            return None;
        }
        self.last_ok_asked_ms
            .map(|a| (a + self.duration_ms).saturating_sub(self.lead_ms))
    }

    pub fn holds_lease(&self, now_ms: u64) -> bool {
        self.last_ok_asked_ms
            .is_some_and(|a| now_ms < a + self.duration_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_before_the_dfs_expiry_and_only_once() {
        let mut k = LeaseKeeper::new(30_000, 10_000, 5_000);
        k.renewed(1_000);
        assert!(!k.must_self_fence(25_999));
        assert_eq!(k.self_fence_at(), Some(26_000));
        assert!(k.must_self_fence(26_000));
        assert!(!k.must_self_fence(27_000));
        k.renewed(40_000);
        assert!(!k.must_self_fence(41_000));
    }
}
