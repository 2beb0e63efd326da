//! The IP allocation policy: per /24 segment, hosts of the OPS zone take last
//! octets below 149, other zones below 199, and `.247` is always the gateway.

use crate::model::Zone;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use thiserror::Error;

/// The gateway's last octet on every segment.
pub const GATEWAY_OCTET: u8 = 247;

/// `a.b.c.d/len` with len 8 to 30 and the address on the network's
/// boundary (a guests' network, as agent configs and inventories give it).
pub fn parse_network(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = text.split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    if !(8..=30).contains(&len) || u32::from(addr) & !(u32::MAX << (32 - len)) != 0 {
        return None;
    }
    Some((addr, len))
}

/// The first last octet that is *not* allowed for a host of `zone`.
pub fn last_octet_limit(zone: Zone) -> u8 {
    match zone {
        Zone::Ops => 149,
        _ => 199,
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum IpPolicyError {
    #[error("{ip} is not in segment {segment}/24")]
    OutsideSegment { ip: Ipv4Addr, segment: Ipv4Addr },
    /// `limit` is the first octet not allowed; the message states the
    /// inclusive range, `1 to limit - 1`.
    #[error(
        "{ip}: last octet {octet} is not allowed for zone {zone}: expected 1 to {}",
        .limit - 1
    )]
    OctetNotAllowed {
        ip: Ipv4Addr,
        octet: u8,
        zone: Zone,
        limit: u8,
    },
    #[error("{ip} is already assigned")]
    Duplicate { ip: Ipv4Addr },
    #[error("segment {segment}/24 has no free address for zone {zone} (last octet < {limit})")]
    Exhausted {
        segment: Ipv4Addr,
        zone: Zone,
        limit: u8,
    },
}

/// Allocator for one /24 segment (one network: uplink, VM, storage or IPMI).
#[derive(Clone, Debug)]
pub struct Segment {
    base: [u8; 3],
    used: BTreeSet<u8>,
}

impl Segment {
    /// `base` is any address in the segment; its last octet is ignored.
    pub fn new(base: Ipv4Addr) -> Self {
        let o = base.octets();
        Self {
            base: [o[0], o[1], o[2]],
            used: BTreeSet::new(),
        }
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], 0)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], GATEWAY_OCTET)
    }

    /// Checks that `ip` may be given to a host of `zone`, without taking it.
    pub fn check(&self, zone: Zone, ip: Ipv4Addr) -> Result<(), IpPolicyError> {
        let o = ip.octets();
        if o[..3] != self.base {
            return Err(IpPolicyError::OutsideSegment {
                ip,
                segment: self.network(),
            });
        }
        let limit = last_octet_limit(zone);
        if o[3] == 0 || o[3] >= limit {
            return Err(IpPolicyError::OctetNotAllowed {
                ip,
                octet: o[3],
                zone,
                limit,
            });
        }
        if self.used.contains(&o[3]) {
            return Err(IpPolicyError::Duplicate { ip });
        }
        Ok(())
    }

    /// Takes a specific address (from a cluster file).
    pub fn claim(&mut self, zone: Zone, ip: Ipv4Addr) -> Result<(), IpPolicyError> {
        self.check(zone, ip)?;
        self.used.insert(ip.octets()[3]);
        Ok(())
    }

    /// Takes the lowest free address allowed for `zone`.
    pub fn allocate(&mut self, zone: Zone) -> Result<Ipv4Addr, IpPolicyError> {
        let limit = last_octet_limit(zone);
        let octet =
            (1..limit)
                .find(|o| !self.used.contains(o))
                .ok_or(IpPolicyError::Exhausted {
                    segment: self.network(),
                    zone,
                    limit,
                })?;
        self.used.insert(octet);
        Ok(Ipv4Addr::new(
            self.base[0],
            self.base[1],
            self.base[2],
            octet,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ops_zone_stops_below_149() {
        let mut seg = Segment::new(Ipv4Addr::new(10, 0, 0, 0));
        for _ in 1..149 {
            seg.allocate(Zone::Ops).unwrap();
        }
        assert_eq!(
            seg.allocate(Zone::Ops),
            Err(IpPolicyError::Exhausted {
                segment: Ipv4Addr::new(10, 0, 0, 0),
                zone: Zone::Ops,
                limit: 149
            })
        );
        // Other zones may still use 149..198.
        assert_eq!(
            seg.allocate(Zone::Ecs).unwrap(),
            Ipv4Addr::new(10, 0, 0, 149)
        );
    }

    #[test]
    fn gateway_and_high_octets_are_refused() {
        let seg = Segment::new(Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(seg.gateway(), Ipv4Addr::new(10, 0, 0, 247));
        assert!(seg.check(Zone::Ecs, Ipv4Addr::new(10, 0, 0, 247)).is_err());
        assert!(seg.check(Zone::Ecs, Ipv4Addr::new(10, 0, 0, 199)).is_err());
        assert!(seg.check(Zone::Ecs, Ipv4Addr::new(10, 0, 0, 198)).is_ok());
        assert!(seg.check(Zone::Ops, Ipv4Addr::new(10, 0, 0, 149)).is_err());
        assert!(seg.check(Zone::Ecs, Ipv4Addr::new(10, 0, 1, 5)).is_err());
        // The message states the inclusive range, which excludes the octet.
        let e = seg.check(Zone::Ecs, Ipv4Addr::new(10, 0, 0, 199));
        assert_eq!(
            e.unwrap_err().to_string(),
            "10.0.0.199: last octet 199 is not allowed for zone ECS: expected 1 to 198"
        );
        let e = seg.check(Zone::Ops, Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(
            e.unwrap_err().to_string(),
            "10.0.0.0: last octet 0 is not allowed for zone OPS: expected 1 to 148"
        );
    }

    proptest! {
        #[test]
        fn allocations_are_unique_and_within_policy(zones in proptest::collection::vec(0usize..5, 1..300)) {
            let mut seg = Segment::new(Ipv4Addr::new(172, 16, 3, 0));
            let mut seen = BTreeSet::new();
            for z in zones {
                let zone = Zone::ALL[z];
                match seg.allocate(zone) {
                    Ok(ip) => {
                        let o = ip.octets()[3];
                        prop_assert!(o >= 1 && o < last_octet_limit(zone));
                        prop_assert_ne!(o, GATEWAY_OCTET);
                        prop_assert!(seen.insert(o), "duplicate {}", ip);
                    }
                    Err(IpPolicyError::Exhausted { .. }) => {
                        // Only when every allowed octet is taken.
                        prop_assert!((1..last_octet_limit(zone)).all(|o| seen.contains(&o)));
                    }
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
            }
        }
    }
}
