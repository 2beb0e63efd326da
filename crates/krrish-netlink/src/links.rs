//! Links inside one namespace, over one netlink connection (see
//! [`crate::Netns::run`]). Names are checked ([`LinkName`]) before they
//! reach the kernel.

use crate::{LinkName, NetError, Netns};
use futures::TryStreamExt;
use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, LinkProtoInfoBridge};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

/// The kernel's "operation not supported" (EOPNOTSUPP), what rtnetlink
/// answers for a link kind this kernel lacks.
pub(crate) const EOPNOTSUPP: i32 = 95;

/// Link operations in the namespace the connection was opened in.
pub struct Links {
    handle: Handle,
}

/// `IFLA_BRPORT_STATE` and its values (linux/if_bridge.h).
const IFLA_BRPORT_STATE: u16 = 1;
const BR_STATE_DISABLED: u8 = 0;
const BR_STATE_FORWARDING: u8 = 3;

fn link_err(link: &str, e: rtnetlink::Error) -> NetError {
    NetError::Link {
        link: link.to_string(),
        why: e.to_string(),
    }
}

impl Links {
    pub(crate) fn new(handle: Handle) -> Self {
        Links { handle }
    }

    async fn get(&self, name: &str) -> Result<Option<LinkMessage>, NetError> {
        let name = LinkName::new(name)?;
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.as_str().to_string())
            .execute();
        match s.try_next().await {
            Ok(m) => Ok(m),
            // The kernel answers "no such device" as an error.
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code().abs() == 19 => Ok(None),
            Err(e) => Err(link_err(name.as_str(), e)),
        }
    }

    pub async fn index(&self, name: &str) -> Result<u32, NetError> {
        match self.get(name).await? {
            Some(m) => Ok(m.header.index),
            None => Err(NetError::NoSuchLink {
                link: name.to_string(),
            }),
        }
    }

    pub async fn exists(&self, name: &str) -> Result<bool, NetError> {
        Ok(self.get(name).await?.is_some())
    }

    /// Every link's name in this namespace, sorted.
    pub async fn names(&self) -> Result<Vec<String>, NetError> {
        let mut s = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(m) = s.try_next().await.map_err(|e| link_err("*", e))? {
            for a in &m.attributes {
                if let LinkAttribute::IfName(n) = a {
                    out.push(n.clone());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub async fn add_bridge(&self, name: &str) -> Result<(), NetError> {
        let n = LinkName::new(name)?;
        self.handle
            .link()
            .add(LinkBridge::new(n.as_str()).build())
            .execute()
            .await
            .map_err(|e| link_err(name, e))
    }

    /// A veth pair, both ends here (move one with [`Links::move_to`]).
    pub async fn add_veth(&self, name: &str, peer: &str) -> Result<(), NetError> {
        let (n, p) = (LinkName::new(name)?, LinkName::new(peer)?);
        self.handle
            .link()
            .add(LinkVeth::new(n.as_str(), p.as_str()).build())
            .execute()
            .await
            .map_err(|e| link_err(name, e))
    }

    /// A VXLAN device for `vni` over `underlay`, flooding unknown
    /// destinations to `group` (multicast: no per-peer table to keep),
    /// its packets from `local` (this host's tunnel endpoint) if given.
    pub async fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        underlay: &str,
        group: Ipv4Addr,
        local: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        let n = LinkName::new(name)?;
        let dev = self.index(underlay).await?;
        let mut b = LinkVxlan::new(n.as_str(), vni)
            .dev(dev)
            .group(group)
            .port(4789)
            .learning(true);
        if let Some(a) = local {
            b = b.local(a);
        }
        self.handle
            .link()
            .add(b.build())
            .execute()
            .await
            .map_err(|e| link_err(name, e))
    }

    pub async fn set_up(&self, name: &str) -> Result<(), NetError> {
        self.set(name, |b| b.up()).await
    }

    pub async fn set_down(&self, name: &str) -> Result<(), NetError> {
        self.set(name, |b| b.down()).await
    }

    /// Sets the link's MAC address.
    pub async fn set_mac(&self, name: &str, mac: [u8; 6]) -> Result<(), NetError> {
        self.set(name, |b| b.address(mac.to_vec())).await
    }

    /// Enslaves `name` to the bridge `bridge`.
    pub async fn set_master(&self, name: &str, bridge: &str) -> Result<(), NetError> {
        let master = self.index(bridge).await?;
        self.set(name, |b| b.controller(master)).await
    }

    /// Lets the bridge port `name` forward, or stops it (port state
    /// "disabled"): traffic through it is dropped while both ends keep
    /// their carrier — a switch dropping a host's packets, not a cable
    /// pulled. The bridge must not run STP (the lab's do not).
    pub async fn set_port_forwarding(&self, name: &str, forwarding: bool) -> Result<(), NetError> {
        let index = self.index(name).await?;
        // What `bridge link set dev NAME state N` sends: an AF_BRIDGE
        // setlink with IFLA_PROTINFO { IFLA_BRPORT_STATE }. (The
        // IFLA_INFO_SLAVE_DATA route is accepted by the kernel but leaves
        // the port forwarding.)
        let state: u8 = if forwarding {
            BR_STATE_FORWARDING
        } else {
            BR_STATE_DISABLED
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_STATE, vec![state])),
        ]));
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| link_err(name, e))
    }

    /// Moves `name` from here into `to`; it arrives down.
    pub async fn move_to(&self, name: &str, to: &Netns) -> Result<(), NetError> {
        let file = to.file()?;
        let fd = file.as_raw_fd();
        // `file` stays open until the kernel has answered.
        let r = self.set(name, |b| b.setns_by_fd(fd)).await;
        drop(file);
        r
    }

    async fn set(
        &self,
        name: &str,
        f: impl FnOnce(
            rtnetlink::LinkMessageBuilder<LinkUnspec>,
        ) -> rtnetlink::LinkMessageBuilder<LinkUnspec>,
    ) -> Result<(), NetError> {
        let index = self.index(name).await?;
        let msg = f(LinkUnspec::new_with_index(index)).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| link_err(name, e))
    }

    pub async fn add_address(&self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        let index = self.index(name).await?;
        self.handle
            .address()
            .add(index, addr, prefix)
            .replace()
            .execute()
            .await
            .map_err(|e| link_err(name, e))
    }

    /// Permanent neighbour entries on `name`: each address answers at its
    /// MAC without ARP (replacing what the cache held).
    pub async fn set_neighbours(
        &self,
        name: &str,
        neighbours: &[(Ipv4Addr, [u8; 6])],
    ) -> Result<(), NetError> {
        let index = self.index(name).await?;
        for (addr, mac) in neighbours {
            self.handle
                .neighbours()
                .add(index, IpAddr::V4(*addr))
                .link_layer_address(mac)
                .replace()
                .execute()
                .await
                .map_err(|e| link_err(name, e))?;
        }
        Ok(())
    }

    /// A route to `dest/prefix` straight out of `name` (on-link: the
    /// destinations answer ARP there), from `source` if given. Replaces a
    /// route to the same destination.
    pub async fn add_link_route(
        &self,
        name: &str,
        dest: Ipv4Addr,
        prefix: u8,
        source: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        let index = self.index(name).await?;
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest, prefix)
            .output_interface(index)
            .scope(RouteScope::Link);
        if let Some(s) = source {
            b = b.pref_source(s);
        }
        self.handle
            .route()
            .add(b.build())
            .replace()
            .execute()
            .await
            .map_err(|e| link_err(name, e))
    }

    /// The addresses on `name`, with their prefix lengths.
    pub async fn addresses(&self, name: &str) -> Result<Vec<(IpAddr, u8)>, NetError> {
        let index = self.index(name).await?;
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = found.try_next().await.map_err(|e| link_err(name, e))? {
            for a in &msg.attributes {
                if let AddressAttribute::Address(ip) = a {
                    out.push((*ip, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// Removes `addr` from `name`; an address not there is not an error.
    pub async fn del_address(&self, name: &str, addr: IpAddr) -> Result<(), NetError> {
        let index = self.index(name).await?;
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(addr)
            .execute();
        while let Some(msg) = found.try_next().await.map_err(|e| link_err(name, e))? {
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| link_err(name, e))?;
        }
        Ok(())
    }

    /// Whether `name` is some bridge's (or bond's) port; `None` when there
    /// is no such link here.
    pub async fn is_port(&self, name: &str) -> Result<Option<bool>, NetError> {
        Ok(self.get(name).await?.map(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::Controller(_)))
        }))
    }

    /// Up and with carrier (IFF_LOWER_UP): what a bond's or NIC's health
    /// report reads.
    pub async fn has_carrier(&self, name: &str) -> Result<bool, NetError> {
        match self.get(name).await? {
            Some(m) => Ok(m.header.flags.contains(LinkFlags::Up)
                && m.header.flags.contains(LinkFlags::LowerUp)),
            None => Err(NetError::NoSuchLink {
                link: name.to_string(),
            }),
        }
    }

    /// Deletes `name`; a link already gone is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), NetError> {
        let Some(m) = self.get(name).await? else {
            return Ok(());
        };
        self.handle
            .link()
            .del(m.header.index)
            .execute()
            .await
            .map_err(|e| link_err(name, e))
    }

    /// Asks the kernel for a link of kind `kind` (for probes): Ok(true) if
    /// it made one (and it is deleted again), Ok(false) if the kernel does
    /// not know the kind.
    pub(crate) async fn can_make(&self, msg: LinkMessage, name: &str) -> Result<bool, NetError> {
        match self.handle.link().add(msg).execute().await {
            Ok(()) => {
                self.delete(name).await?;
                Ok(true)
            }
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code().abs() == EOPNOTSUPP => Ok(false),
            Err(e) => Err(link_err(name, e)),
        }
    }
}
