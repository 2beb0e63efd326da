//! Newtype identifiers. Names are what operators write in cluster files and
//! read in traces, so the ids are the names themselves.
//!
//! They are also the keys of every ordered map in the control plane and the
//! simulator, compared and copied millions of times a simulated hour. So a
//! name of up to [`INLINE_MAX`] bytes (every host and VM name in practice) is
//! kept inline, zero-padded, and two such names compare as three big-endian
//! machine words: the same order as their strings (a name holding a NUL byte
//! is kept on the heap, so padding never ties with content), no allocation to
//! copy one. Longer names live behind an `Arc` and compare as strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Longest name kept inline.
pub const INLINE_MAX: usize = 24;

/// A name: inline when short, shared on the heap when long.
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    /// Zero-padded bytes and the length; never holds a NUL byte.
    Inline {
        bytes: [u8; INLINE_MAX],
        len: u8,
    },
    Heap(Arc<str>),
}

impl Name {
    pub fn new(s: &str) -> Self {
        if s.len() <= INLINE_MAX && !s.as_bytes().contains(&0) {
            let mut bytes = [0u8; INLINE_MAX];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name(Repr::Inline {
                bytes,
                len: s.len() as u8,
            })
        } else {
            Name(Repr::Heap(Arc::from(s)))
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { bytes, len } => std::str::from_utf8(&bytes[..*len as usize])
                .expect("built from a str, cut at its length"),
            Repr::Heap(s) => s,
        }
    }
}

/// Word `i` of an inline name, read big-endian so that words order as bytes.
#[inline(always)]
fn word(bytes: &[u8; INLINE_MAX], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
    u64::from_be_bytes(w)
}

impl PartialEq for Name {
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Inline { bytes: a, .. }, Repr::Inline { bytes: b, .. }) => a == b,
            // Inline exactly when short and NUL-free: a mixed pair differs.
            (Repr::Heap(a), Repr::Heap(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for Name {}

impl Ord for Name {
    #[inline(always)]
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            // No NUL inside a name, so zero padding sorts a prefix first,
            // exactly as the strings would.
            // Most names differ in their first word: stop there.
            (Repr::Inline { bytes: a, .. }, Repr::Inline { bytes: b, .. }) => {
                for i in 0..INLINE_MAX / 8 {
                    let (x, y) = (word(a, i), word(b, i));
                    if x != y {
                        return x.cmp(&y);
                    }
                }
                Ordering::Equal
            }
            _ => self.as_str().cmp(other.as_str()),
        }
    }
}
impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Name::new(&s))
    }
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Name);

        impl $name {
            pub fn new(name: impl AsRef<str>) -> Self {
                Self(Name::new(name.as_ref()))
            }
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }
    };
}

name_id!(
    /// A hypervisor (or spare, or OPS) host, by name.
    HostId
);
name_id!(
    /// A virtual machine, by name.
    VmId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{0,30}",
            "[\\x00-\\x7f]{0,30}",
            ".{0,30}",
            Just("hv-01".to_string()),
            Just("hv-01\0".to_string()),
        ]
    }

    proptest! {
        /// Order, equality and hash agree with the strings', whatever mix of
        /// inline and heap names is compared.
        #[test]
        fn names_order_as_their_strings(a in any_name(), b in any_name()) {
            let (na, nb) = (Name::new(&a), Name::new(&b));
            prop_assert_eq!(na.cmp(&nb), a.cmp(&b));
            prop_assert_eq!(na == nb, a == b);
            prop_assert_eq!(na.as_str(), a.as_str());
            let h = |n: &Name| {
                let mut s = std::collections::hash_map::DefaultHasher::new();
                n.hash(&mut s);
                s.finish()
            };
            if a == b {
                prop_assert_eq!(h(&na), h(&nb));
            }
        }
    }

    #[test]
    fn a_name_round_trips_through_json_and_debug_shows_the_type() {
        let id = HostId::new("hv-0007");
        let long = VmId::new("a-vm-name-much-longer-than-twenty-four-bytes");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"hv-0007\"");
        let back: VmId = serde_json::from_str(&serde_json::to_string(&long).unwrap()).unwrap();
        assert_eq!(back, long);
        assert_eq!(format!("{id:?}"), "HostId(\"hv-0007\")");
        assert_eq!(long.to_string().len(), 44);
        assert!(HostId::new("hv-1") < HostId::new("hv-10"));
        assert!(HostId::new("hv-10") < HostId::new("hv-2"));
    }
}
