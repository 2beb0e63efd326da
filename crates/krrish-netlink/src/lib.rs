//! krrish-netlink: the real network of a lab host, over the kernel's own
//! interfaces. Every call goes to rtnetlink; nothing shells out to `ip`.
//!
//! Map:
//! - [`netns`] — named network namespaces (`/run/netns/NAME`, as
//!   `ip netns` makes them) and running netlink work inside one.
//! - [`links`] — bridges, veth pairs, VXLAN, moving links between
//!   namespaces, up/down, addresses, carrier state.
//! - [`probe`] — what this kernel can do (bonding, VLAN), asked of the
//!   kernel itself: a missing capability is reported, never assumed.
//! - [`LinkName`] — names that reach the kernel: checked before use.

pub mod links;
pub mod netns;
pub mod probe;

pub use links::Links;
pub use netns::Netns;
pub use probe::{probe_bonding, Capability};

/// Why a network operation failed. Names the object it was about.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bad name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    #[error("network namespace {ns}: {why}")]
    Namespace { ns: String, why: String },
    #[error("link {link}: {why}")]
    Link { link: String, why: String },
    #[error("link {link}: no such link")]
    NoSuchLink { link: String },
    #[error("netlink: {0}")]
    Netlink(String),
}

/// Linux interface names by krrish-core's one rule
/// ([`krrish_core::link_name`]): at most 15 bytes of letters, digits, `.`,
/// `_` and `-`, not starting with `-` or `.`, so a name can never carry a
/// path, an option or markup into the kernel, nft or a file name — and a
/// host's `bond0.100` is still a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkName(String);

impl LinkName {
    pub const MAX_LEN: usize = 15;

    pub fn new(name: &str) -> Result<Self, NetError> {
        krrish_core::link_name::check_link_name(name).map_err(|why| NetError::BadName {
            name: name.to_string(),
            why,
        })?;
        Ok(LinkName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LinkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The one naming rule for everything the lab creates in the kernel or on
/// disk: 1..=`max` bytes of `a-z`, `0-9` and `-`, not starting with `-`.
pub fn check_name(name: &str, max: usize) -> Result<(), NetError> {
    let bad = |why| {
        Err(NetError::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > max {
        return bad("too long");
    }
    if name.starts_with('-') {
        return bad("starts with '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only a-z, 0-9 and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_inject_are_refused() {
        for bad in [
            "",
            "-x",
            "a/b",
            "a b",
            "x;rm",
            "<br>",
            "..",
            "abcdefghijklmnop",
        ] {
            assert!(LinkName::new(bad).is_err(), "{bad:?} accepted");
        }
        // A VLAN sub-interface of a physical host.
        assert!(LinkName::new("bond0.100").is_ok());
        assert_eq!(LinkName::new("br-vm").unwrap().as_str(), "br-vm");
        assert!(LinkName::new("abcdefghijklmno").is_ok());
    }
}
