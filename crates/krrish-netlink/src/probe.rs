//! Capability probes: ask the kernel, in a throwaway namespace, whether it
//! can make a kind of link. A missing capability is a plain answer that
//! callers report as "not run", never as a pass.

use crate::{NetError, Netns};
use rtnetlink::LinkBond;

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    Available,
    /// Why not, in words fit for a report.
    Unavailable(String),
}

impl Capability {
    pub fn is_available(&self) -> bool {
        matches!(self, Capability::Available)
    }
}

/// Can this kernel make bonds? Tried in a namespace of its own
/// (`probe_ns`), which is removed again.
pub fn probe_bonding(probe_ns: &str) -> Result<Capability, NetError> {
    let ns = Netns::create(probe_ns)?;
    let made = ns.run(|links| async move {
        links
            .can_make(LinkBond::new("probe-bond0").build(), "probe-bond0")
            .await
    });
    Netns::delete(probe_ns)?;
    Ok(if made? {
        Capability::Available
    } else {
        Capability::Unavailable(
            "bonding unavailable on this host: the kernel has no bonding driver \
             (creating a bond answered EOPNOTSUPP)"
                .into(),
        )
    })
}
