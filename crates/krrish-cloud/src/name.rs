//! Resource names. One rule for every resource the API accepts (VMs, hosts,
//! vxnets, EIPs, volumes, snapshots, …): 1 to 63 characters `a-z`, `0-9`
//! and `-`, starting with a letter or digit.

use std::fmt;
use thiserror::Error;

/// The longest name accepted.
pub const NAME_MAX: usize = 63;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{field}: expected a name of 1 to {NAME_MAX} characters a-z, 0-9 and '-', starting with a letter or digit")]
pub struct NameError {
    /// Which field held the refused name. The name itself is not echoed: it
    /// may be the markup being refused.
    pub field: String,
}

/// Whether `s` follows the naming rule.
pub fn is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= NAME_MAX
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A checked resource name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// `field` names the request field in the error.
    pub fn parse(field: &str, s: &str) -> Result<Self, NameError> {
        if is_valid(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(NameError {
                field: field.to_string(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::parse("name", &s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_shell_and_case_are_refused() {
        for bad in [
            "",
            "-a",
            "A",
            "a b",
            "a;rm",
            "<b>",
            "a/b",
            "a.b",
            "$(x)",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_valid(bad), "{bad:?} accepted");
        }
        for good in ["a", "0", "vxnet-1", "eip-a1b2", &"a".repeat(63)] {
            assert!(is_valid(good), "{good:?} refused");
        }
        let e = Name::parse("vxnet", "<script>").unwrap_err();
        assert!(!e.to_string().contains("script"), "{e}");
        assert!(e.to_string().starts_with("vxnet: "), "{e}");
    }
}
