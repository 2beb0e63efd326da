//! The lab's networks, made over rtnetlink (krrish-netlink).
//!
//! ```text
//!  initial namespace                       host namespace krl-<host>
//!  krl-mgmt 10.77.0.1/24 ── km<i>a ═══ mgmt0 10.77.0.<10+i>   (bond member 1)
//!                        └─ km<i>b ═══ mgmt1                  (bond member 2)
//!  krl-stor 10.78.0.1/24 ── ks<i>a ═══ stor0 10.78.0.<10+i>   (storage bond)
//!   (the DFS lease service) └─ ks<i>b ═══ stor1
//!  krl-vmnet ─────────────── kv<i> ═══ vmup ── br-vm 10.79.0.<10+i> ── guests' taps
//!      └── kvout ═══ out0 10.80.255.254/16, 10.79.0.254/24 (namespace krl-outside)
//!  biz0/biz1: veth pairs inside the host namespace
//!  per vxnet, made by the agent: kx<vni> (VXLAN over br-vm) ── kb<vni> ── guests' vxnet taps
//! ```
//! br-vm's 10.79.0.0/24 address is the host's tunnel endpoint (vxnets'
//! VXLAN runs between them) and where it answers for its guests' EIPs; the
//! outside namespace reaches the EIP pools on that network (the lab's
//! "internet" and "external network" at once), and so do the hosts: a
//! routed guest reaches an EIP out through its host's br-vm.
//! The runner makes them from the initial namespace (where it runs).
//! Without kernel bonding the two management members are plain veths on
//! the bridge (mgmt0 carries the address): their carrier is what the agent
//! reports as bond health; cutting a host's management network sets both
//! down.

use crate::LabError;
use krrish_core::{BondName, HostId};
use krrish_netlink::Netns;
use std::net::{IpAddr, Ipv4Addr};

/// Everything the lab makes in the kernel starts with this.
pub const PREFIX: &str = "krl-";
pub const MGMT_BRIDGE: &str = "krl-mgmt";
pub const VM_BRIDGE_ROOT: &str = "krl-vmnet";
pub const OUTSIDE_NS: &str = "krl-outside";
/// The controller's address on the management network.
pub const CONTROLLER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const MGMT_PREFIX: u8 = 24;
pub const STORAGE_BRIDGE: &str = "krl-stor";
/// The BMCs' network (OGW): each host's BMC answers IPMI on the host's
/// `ipmi` address, held by this bridge in the initial namespace.
pub const OGW_BRIDGE: &str = "krl-ogw";
/// The DFS's (lease service's) address on the storage network.
pub const STORAGE_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const STORAGE_PREFIX: u8 = 24;
/// The flat VM network (guests' addresses derive from their ids).
pub const VM_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 80, 0, 0), 16);
/// Where guests are pinged from.
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 80, 255, 254);
/// The bridge guests' taps join inside a host namespace.
pub const HOST_VM_BRIDGE: &str = "br-vm";
/// The hosts' tunnel endpoints and the outside's way to the EIPs.
pub const UNDERLAY_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 79, 0, 0), 24);
/// The outside namespace's address there.
pub const OUTSIDE_UNDERLAY_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 254);
/// The EIP pools (krrish-cloud's `EipKind::pool`): routed from the outside
/// onto the underlay network, where the host running the VM answers.
pub const EIP_POOLS: [(Ipv4Addr, u8); 2] = [
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
];
/// Hosts one lab can hold (management addresses .10 up; TCG guests are
/// slow, so a box holds a handful).
pub const HOSTS_MAX: usize = 16;

/// One host's names and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNet {
    pub host: HostId,
    pub index: usize,
    pub ns: String,
    pub mgmt_ip: Ipv4Addr,
    pub storage_ip: Ipv4Addr,
    /// Its tunnel endpoint (on br-vm).
    pub underlay_ip: Ipv4Addr,
    /// Root-side ends: the two management members, the two storage
    /// members and the VM uplink.
    pub mgmt_root: [String; 2],
    pub storage_root: [String; 2],
    pub vm_root: String,
}

impl HostNet {
    pub fn new(index: usize, host: &HostId) -> Result<Self, LabError> {
        if index >= HOSTS_MAX {
            return Err(LabError::Other(format!(
                "the lab in a box holds at most {HOSTS_MAX} hosts"
            )));
        }
        let ns = format!("{PREFIX}{host}");
        krrish_netlink::check_name(&ns, 32)?;
        Ok(HostNet {
            host: host.clone(),
            index,
            ns,
            mgmt_ip: Ipv4Addr::new(10, 77, 0, 10 + index as u8),
            storage_ip: Ipv4Addr::new(10, 78, 0, 10 + index as u8),
            underlay_ip: Ipv4Addr::new(10, 79, 0, 10 + index as u8),
            mgmt_root: [format!("km{index}a"), format!("km{index}b")],
            storage_root: [format!("ks{index}a"), format!("ks{index}b")],
            vm_root: format!("kv{index}"),
        })
    }

    /// Bond member names inside the namespace in bond order: bond0
    /// management, bond1 VM network (business), bond2 storage (the
    /// agent's `bond_members`).
    pub fn bond_members() -> [[String; 2]; 3] {
        let m = |b: &str| [format!("{b}0"), format!("{b}1")];
        [m("mgmt"), m("biz"), m("stor")]
    }

    pub fn netns(&self) -> Result<Netns, LabError> {
        Ok(Netns::open(&self.ns)?)
    }

    /// The root-side ends of every link that leaves the host.
    pub fn uplinks(&self) -> Vec<String> {
        let mut v = self.mgmt_root.to_vec();
        v.extend(self.storage_root.iter().cloned());
        v.push(self.vm_root.clone());
        v
    }

    /// The root-side ends of one bond's members (the business network's
    /// is the VM uplink: guests' traffic is what it carries).
    pub fn bond_uplinks(&self, bond: BondName) -> Vec<String> {
        match bond {
            BondName::Bond0 => self.mgmt_root.to_vec(),
            BondName::Bond2 => self.storage_root.to_vec(),
            BondName::Bond1 => vec![self.vm_root.clone()],
        }
    }
}

/// The whole lab's network.
#[derive(Clone, Debug)]
pub struct Topology {
    pub hosts: Vec<HostNet>,
}

fn ip(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

impl Topology {
    /// Makes the networks for `hosts` (anything left from an earlier run
    /// is removed first). On failure, removes what it made.
    pub fn build(hosts: &[HostId]) -> Result<Topology, LabError> {
        let nets = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostNet::new(i, h))
            .collect::<Result<Vec<_>, _>>()?;
        let topo = Topology { hosts: nets };
        topo.teardown()?;
        if let Err(e) = topo.make() {
            let _ = topo.teardown();
            return Err(e);
        }
        Ok(topo)
    }

    fn make(&self) -> Result<(), LabError> {
        Netns::current().run(|l| async move {
            l.add_bridge(MGMT_BRIDGE).await?;
            l.add_address(MGMT_BRIDGE, ip(CONTROLLER_IP), MGMT_PREFIX)
                .await?;
            l.set_up(MGMT_BRIDGE).await?;
            l.add_bridge(OGW_BRIDGE).await?;
            l.set_up(OGW_BRIDGE).await?;
            l.add_bridge(STORAGE_BRIDGE).await?;
            l.add_address(STORAGE_BRIDGE, ip(STORAGE_SERVICE_IP), STORAGE_PREFIX)
                .await?;
            l.set_up(STORAGE_BRIDGE).await?;
            l.add_bridge(VM_BRIDGE_ROOT).await?;
            l.set_up(VM_BRIDGE_ROOT).await
        })?;
        let outside = Netns::create(OUTSIDE_NS)?;
        let out = outside.clone();
        Netns::current().run(move |l| async move {
            l.add_veth("kvout", "out0").await?;
            l.move_to("out0", &out).await?;
            l.set_master("kvout", VM_BRIDGE_ROOT).await?;
            l.set_up("kvout").await
        })?;
        outside.run(|l| async move {
            l.add_address("out0", ip(OUTSIDE_IP), VM_NET.1).await?;
            l.add_address("out0", ip(OUTSIDE_UNDERLAY_IP), UNDERLAY_NET.1)
                .await?;
            l.set_up("out0").await?;
            for (net, len) in EIP_POOLS {
                l.add_link_route("out0", net, len, Some(OUTSIDE_UNDERLAY_IP))
                    .await?;
            }
            Ok(())
        })?;
        for h in &self.hosts {
            let ns = Netns::create(&h.ns)?;
            let (hn, target) = (h.clone(), ns.clone());
            Netns::current().run(move |l| async move {
                let members = [
                    (&hn.mgmt_root[0], "mgmt0", MGMT_BRIDGE),
                    (&hn.mgmt_root[1], "mgmt1", MGMT_BRIDGE),
                    (&hn.storage_root[0], "stor0", STORAGE_BRIDGE),
                    (&hn.storage_root[1], "stor1", STORAGE_BRIDGE),
                ];
                for (root, inner, bridge) in members {
                    l.add_veth(root, inner).await?;
                    l.move_to(inner, &target).await?;
                    l.set_master(root, bridge).await?;
                    l.set_up(root).await?;
                }
                l.add_veth(&hn.vm_root, "vmup").await?;
                l.move_to("vmup", &target).await?;
                l.set_master(&hn.vm_root, VM_BRIDGE_ROOT).await?;
                l.set_up(&hn.vm_root).await
            })?;
            let (mgmt_ip, storage_ip, underlay_ip) = (h.mgmt_ip, h.storage_ip, h.underlay_ip);
            ns.run(move |l| async move {
                for m in ["mgmt0", "mgmt1", "stor0", "stor1"] {
                    l.set_up(m).await?;
                }
                l.add_address("mgmt0", ip(mgmt_ip), MGMT_PREFIX).await?;
                l.add_address("stor0", ip(storage_ip), STORAGE_PREFIX)
                    .await?;
                for b in ["biz"] {
                    for m in 0..2 {
                        let (a, p) = (format!("{b}{m}"), format!("{b}{m}-peer"));
                        l.add_veth(&a, &p).await?;
                        l.set_up(&a).await?;
                        l.set_up(&p).await?;
                    }
                }
                l.add_bridge(HOST_VM_BRIDGE).await?;
                l.set_master("vmup", HOST_VM_BRIDGE).await?;
                l.set_up("vmup").await?;
                l.add_address(HOST_VM_BRIDGE, ip(underlay_ip), UNDERLAY_NET.1)
                    .await?;
                l.set_up(HOST_VM_BRIDGE).await?;
                // The EIPs are out there, as for the outside: a routed
                // guest's packet to one leaves through br-vm.
                for (net, len) in EIP_POOLS {
                    l.add_link_route(HOST_VM_BRIDGE, net, len, Some(underlay_ip))
                        .await?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Removes every namespace and root-side link this topology names, and
    /// the bridges. What is already gone is fine.
    pub fn teardown(&self) -> Result<(), LabError> {
        let mut ns_names: Vec<String> = self.hosts.iter().map(|h| h.ns.clone()).collect();
        ns_names.push(OUTSIDE_NS.to_string());
        for n in ns_names {
            if Netns::exists(&n) {
                Netns::delete(&n)?;
            }
        }
        // Veth root ends vanish with their namespaced peers; the bridges
        // and any stragglers go here.
        let mut links: Vec<String> = self.hosts.iter().flat_map(HostNet::uplinks).collect();
        links.extend(
            [
                "kvout",
                MGMT_BRIDGE,
                STORAGE_BRIDGE,
                OGW_BRIDGE,
                VM_BRIDGE_ROOT,
            ]
            .map(String::from),
        );
        Netns::current().run(move |l| async move {
            for n in &links {
                l.delete(n).await?;
            }
            Ok(())
        })?;
        Ok(())
    }

    pub fn host(&self, host: &HostId) -> Option<&HostNet> {
        self.hosts.iter().find(|h| &h.host == host)
    }

    /// Lets the switch ports `links` (root-side ends on a lab bridge)
    /// forward or drops everything through them, carrier untouched: a
    /// management path cut outside the host.
    pub fn set_forwarding(links: Vec<String>, forwarding: bool) -> Result<(), LabError> {
        Netns::current().run(move |l| async move {
            for n in &links {
                l.set_port_forwarding(n, forwarding).await?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// A BMC's address on the OGW network comes (its BMC has power and
    /// link) or goes (IPMI to it is answered by nobody).
    pub fn set_bmc_address(address: Ipv4Addr, present: bool) -> Result<(), LabError> {
        Netns::current().run(move |l| async move {
            if present {
                l.add_address(OGW_BRIDGE, ip(address), 32).await
            } else {
                l.del_address(OGW_BRIDGE, ip(address)).await
            }
        })?;
        Ok(())
    }

    /// What a host loses with its power: the tenant network its agent made
    /// in the kernel (vxnet bridges and VXLAN links, EIP addresses, NAT
    /// rules). A repaired host starts from none, as after a real power
    /// cycle.
    pub fn forget_tenant_network(net: &HostNet) -> Result<(), LabError> {
        let ns = net.netns()?;
        let underlay = net.underlay_ip;
        ns.run(move |l| async move {
            for n in l.names().await? {
                let ours = |p: &str| {
                    n.strip_prefix(p)
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                };
                if ours("kb") || ours("kx") {
                    l.delete(&n).await?;
                }
            }
            for (a, _) in l.addresses(HOST_VM_BRIDGE).await? {
                if a != ip(underlay) {
                    l.del_address(HOST_VM_BRIDGE, a).await?;
                }
            }
            Ok(())
        })?;
        let out = ns
            .command("nft")
            .args(["flush", "ruleset"])
            .output()
            .map_err(|e| LabError::Other(format!("nft in {}: {e}", net.ns)))?;
        if !out.status.success() {
            return Err(LabError::Other(format!(
                "nft flush ruleset in {}: {}",
                net.ns,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Sets the root-side ends of `links` up or down (a switch port).
    pub fn set_links(links: Vec<String>, up: bool) -> Result<(), LabError> {
        Netns::current().run(move |l| async move {
            for n in &links {
                if up {
                    l.set_up(n).await?;
                } else {
                    l.set_down(n).await?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }
}
