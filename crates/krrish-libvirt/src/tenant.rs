//! The tenant network on a real host, made to match what the controller
//! says each guest here should have ([`GuestNetwork`]):
//!
//! - a **vxnet** is a bridge `kb<vni>` with a VXLAN link `kx<vni>` on it,
//!   over the host's VM network (`underlay`): unknown destinations flood to
//!   a multicast group, the rest is learnt — no per-peer table to keep;
//! - a guest's **NIC** on a vxnet is a tap on that bridge (plugged into the
//!   running guest, or written into its domain at boot); its MAC carries
//!   its address (see [`crate::names::vxnet_mac`]);
//! - a **routed** vxnet's gateway address is on the bridge of every host
//!   that runs a guest routed through it, with one MAC everywhere: the
//!   router is distributed, as the notes say, and has no host to lose;
//! - an **EIP** is an address this host answers for on `eip_link`, and
//!   nftables DNAT (in) and SNAT (out) to the guest's routed address;
//! - a **routed** guest gets out through its host: what it sends out of
//!   `eip_link` from a vxnet is SNATed to the host's address there (or to
//!   its EIP), so a guest reaches another guest's EIP the way the outside
//!   does; one sent to the EIP of a neighbour on this very host turns back
//!   at the gateway, SNATed to it (hairpin NAT). A guest pinging its *own*
//!   EIP is not reached: after the DNAT the packet's source and
//!   destination are the guest itself, and the kernel drops it before any
//!   postrouting rule could rewrite the source (measured; no rule found).
//!
//! - **routing** between the vxnets of one router: a host running a guest
//!   routed through it holds every vxnet of that router, with its gateway,
//!   and forwards between them; the answer comes back through the other
//!   guest's host, which holds them all too.

use crate::domain_xml::NicSpec;
use crate::hypervisor::Hypervisor;
use crate::names::{
    vxlan_link, vxnet_bridge, vxnet_gateway_mac, vxnet_mac, vxnet_mac_bytes, vxnet_tap_name,
    VXNET_BRIDGE_PREFIX,
};
use krrish_agent::{GuestEip, GuestNetwork, GuestNic};
use krrish_cloud::network::guest::VXNET_PREFIX;
use krrish_core::{HostId, VmId};
use krrish_netlink::{LinkName, Netns};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// The nftables table the NAT rules live in (replaced whole each time).
const NFT_TABLE: &str = "krrish_eip";
/// The packet mark that tells postrouting a packet came from a guest
/// (nftables sees no input interface there).
const FROM_A_GUEST: u32 = 0x6b72;
/// VXLAN's IANA port.
const VXLAN_PORT_NOTE: &str = "udp 4789";

/// Where a host's tenant network runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantConfig {
    /// The link VXLAN runs over.
    pub underlay: String,
    /// This host's tunnel endpoint: an address on `underlay`.
    pub local: Ipv4Addr,
    /// The multicast group vxnets flood unknown destinations to.
    pub group: Ipv4Addr,
    /// The link this host answers for its guests' EIPs on.
    pub eip_link: String,
}

impl TenantConfig {
    /// Checks the link names (they reach the kernel and nft).
    pub fn check(&self) -> Result<(), String> {
        for (what, l) in [("underlay", &self.underlay), ("eip_link", &self.eip_link)] {
            LinkName::new(l).map_err(|e| format!("tenant_network.{what}: {e}"))?;
        }
        if !self.group.is_multicast() {
            return Err(format!(
                "tenant_network.group: {} is not a multicast address (224.0.0.0/4)",
                self.group
            ));
        }
        Ok(())
    }
}

/// What this host has made, and for whom.
#[derive(Default)]
struct Made {
    /// Each local guest's network as plugged.
    vms: BTreeMap<VmId, GuestNetwork>,
    /// vxnets present here, with the gateway address their bridge holds.
    vxnets: BTreeMap<u32, Option<Ipv4Addr>>,
    /// What this host NATs now.
    nat: Nat,
    forwarding: bool,
}

/// What a host NATs: the EIPs it answers for, and whether a local guest
/// is routed (it then gets out through this host).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Nat {
    eips: BTreeSet<GuestEip>,
    way_out: bool,
}

impl Nat {
    fn of(guests: &BTreeMap<VmId, GuestNetwork>) -> Nat {
        Nat {
            eips: guests
                .values()
                .flat_map(|g| g.eips.iter().cloned())
                .collect(),
            way_out: guests
                .values()
                .flat_map(|g| &g.nics)
                .any(|n| n.gateway.is_some()),
        }
    }

    fn is_empty(&self) -> bool {
        self.eips.is_empty() && !self.way_out
    }
}

/// One host's tenant network.
pub(crate) struct Tenant {
    cfg: Option<TenantConfig>,
    host: HostId,
    netns: Netns,
    /// Where libvirtd makes taps (its own namespace).
    tap_source: Netns,
    hv: Arc<Hypervisor>,
    made: Mutex<Made>,
}

fn ip(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

/// A guest NIC's tap and MAC, and the bridge it joins.
pub(crate) struct PlannedNic {
    pub spec: NicSpec,
    pub bridge: String,
}

impl Tenant {
    pub fn new(
        cfg: Option<TenantConfig>,
        host: HostId,
        netns: Netns,
        tap_source: Netns,
        hv: Arc<Hypervisor>,
    ) -> Self {
        Tenant {
            cfg,
            host,
            netns,
            tap_source,
            hv,
            made: Mutex::new(Made::default()),
        }
    }

    fn made(&self) -> std::sync::MutexGuard<'_, Made> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn plan(&self, vm: &VmId, nic: &GuestNic) -> Result<PlannedNic, String> {
        if nic.prefix != VXNET_PREFIX {
            return Err(format!(
                "vxnet {} is a /{}; guests here take /{} vxnets only",
                nic.vxnet, nic.prefix, VXNET_PREFIX
            ));
        }
        Ok(PlannedNic {
            spec: NicSpec {
                tap: vxnet_tap_name(&self.host, vm, nic.vni),
                mac: vxnet_mac(nic.ip, nic.gateway),
            },
            bridge: vxnet_bridge(nic.vni),
        })
    }

    fn config(&self, vm: &VmId, network: &GuestNetwork) -> Result<Option<&TenantConfig>, String> {
        match &self.cfg {
            Some(c) => Ok(Some(c)),
            None if network.is_empty() => Ok(None),
            None => Err(format!(
                "{} has no `tenant_network` in its driver config: cannot give {vm} {network}",
                self.host
            )),
        }
    }

    /// Before `vm` boots with `network`: its vxnets exist here; the NICs
    /// to write into its domain.
    pub fn prepare_boot(
        &self,
        vm: &VmId,
        network: &GuestNetwork,
    ) -> Result<Vec<PlannedNic>, String> {
        if self.config(vm, network)?.is_none() {
            return Ok(Vec::new());
        }
        let planned = network
            .nics
            .iter()
            .map(|n| self.plan(vm, n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut made = self.made();
        let mut want = made.vms.clone();
        want.insert(vm.clone(), network.clone());
        self.make_vxnets(&mut made, &want)?;
        // Counted from now on: another guest's boot or stop reconciling
        // meanwhile must keep this one's vxnets (two failovers at once
        // removed a bridge the other was about to plug into — found by the
        // lab's adversary). A boot that fails forgets it again.
        made.vms.insert(vm.clone(), network.clone());
        Ok(planned)
    }

    /// `vm` runs, its NICs' taps are in libvirtd's namespace: plugs them,
    /// answers for its EIPs.
    pub fn booted(
        &self,
        vm: &VmId,
        network: &GuestNetwork,
        nics: &[PlannedNic],
    ) -> Result<(), String> {
        let Some(cfg) = self.config(vm, network)?.cloned() else {
            return Ok(());
        };
        for n in nics {
            plug_tap(&self.tap_source, &self.netns, &n.spec.tap, &n.bridge)?;
        }
        let mut made = self.made();
        made.vms.insert(vm.clone(), network.clone());
        self.make_nat(&cfg, &mut made)
    }

    /// Makes `vm`'s (running, as `domain`) network here match `network`.
    pub fn set(&self, vm: &VmId, domain: &str, network: &GuestNetwork) -> Result<(), String> {
        let Some(cfg) = self.config(vm, network)?.cloned() else {
            return Ok(());
        };
        if !self.hv.is_active(domain).map_err(|e| e.to_string())? {
            return Err(format!("{vm} is not running on {}", self.host));
        }
        let mut made = self.made();
        let had = made.vms.get(vm).cloned().unwrap_or_default();
        if had == *network {
            return Ok(());
        }
        let old = had
            .nics
            .iter()
            .map(|n| self.plan(vm, n))
            .collect::<Result<Vec<_>, _>>()?;
        let new = network
            .nics
            .iter()
            .map(|n| self.plan(vm, n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut want = made.vms.clone();
        want.insert(vm.clone(), network.clone());
        self.make_vxnets(&mut made, &want)?;
        // Out first: a NIC whose MAC changed (its vxnet got or lost its
        // router) is the same tap name plugged again.
        for o in &old {
            if !new.iter().any(|n| n.spec == o.spec) {
                let xml = o.spec.to_xml().map_err(|e| e.to_string())?;
                self.hv
                    .detach_device(domain, &xml)
                    .map_err(|e| e.to_string())?;
            }
        }
        // The vm's entry says what is plugged now: a failure below leaves
        // it true, and the next telling plugs the rest.
        let mut plugged = GuestNetwork {
            nics: had
                .nics
                .iter()
                .filter(|h| network.nics.contains(h))
                .cloned()
                .collect(),
            eips: had.eips.clone(),
            routes: had.routes.clone(),
        };
        made.vms.insert(vm.clone(), plugged.clone());
        for (nic, n) in network.nics.iter().zip(&new) {
            if old.iter().any(|o| o.spec == n.spec) {
                continue;
            }
            let xml = n.spec.to_xml().map_err(|e| e.to_string())?;
            self.hv
                .attach_device(domain, &xml)
                .map_err(|e| e.to_string())?;
            plug_tap(&self.tap_source, &self.netns, &n.spec.tap, &n.bridge)?;
            plugged.nics.push(nic.clone());
            made.vms.insert(vm.clone(), plugged.clone());
        }
        made.vms.insert(vm.clone(), network.clone());
        let all = made.vms.clone();
        self.make_vxnets(&mut made, &all)?;
        self.make_nat(&cfg, &mut made)
    }

    /// `vm` stopped here (its taps went with its domain).
    pub fn forget(&self, vm: &VmId) -> Result<(), String> {
        let Some(cfg) = self.cfg.clone() else {
            return Ok(());
        };
        let mut made = self.made();
        if made.vms.remove(vm).is_none() {
            return Ok(());
        }
        let all = made.vms.clone();
        self.make_vxnets(&mut made, &all)?;
        self.make_nat(&cfg, &mut made)
    }

    /// Every guest here stopped.
    pub fn forget_all(&self) -> Result<(), String> {
        let Some(cfg) = self.cfg.clone() else {
            return Ok(());
        };
        let mut made = self.made();
        made.vms.clear();
        self.make_vxnets(&mut made, &BTreeMap::new())?;
        self.make_nat(&cfg, &mut made)
    }

    /// The vxnets `want` uses exist here with the right gateway address;
    /// those it does not use are gone.
    fn make_vxnets(
        &self,
        made: &mut Made,
        want: &BTreeMap<VmId, GuestNetwork>,
    ) -> Result<(), String> {
        let Some(cfg) = self.cfg.clone() else {
            return Ok(());
        };
        let mut vxnets: BTreeMap<u32, Option<Ipv4Addr>> = BTreeMap::new();
        for n in want.values().flat_map(|g| &g.nics) {
            let gw = vxnets.entry(n.vni).or_default();
            if n.gateway.is_some() {
                *gw = n.gateway;
            }
        }
        // The other vxnets of a local guest's router: their bridges and
        // gateways here, so this host routes its guests' packets into them
        // (and their answers back).
        for r in want.values().flat_map(|g| &g.routes) {
            vxnets.insert(r.vni, Some(r.gateway));
        }
        let routing = vxnets.values().filter(|g| g.is_some()).count() > 1;
        if routing && !made.forwarding {
            self.command("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"], None)?;
            made.forwarding = true;
        }
        let (have, netns) = (made.vxnets.clone(), self.netns.clone());
        let (add, remove): (Vec<_>, Vec<_>) = (
            vxnets
                .iter()
                .filter(|(v, g)| have.get(v) != Some(g))
                .map(|(v, g)| (*v, *g, have.get(v).copied().flatten()))
                .collect(),
            have.keys()
                .filter(|v| !vxnets.contains_key(v))
                .copied()
                .collect(),
        );
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        netns
            .run(move |l| async move {
                for (vni, gateway, old_gateway) in add {
                    let (br, vx) = (vxnet_bridge(vni), vxlan_link(vni));
                    if !l.exists(&br).await? {
                        l.add_bridge(&br).await?;
                        l.set_mac(&br, vxnet_gateway_mac(vni)).await?;
                        l.add_vxlan(&vx, vni, &cfg.underlay, cfg.group, Some(cfg.local))
                            .await?;
                        l.set_master(&vx, &br).await?;
                        l.set_up(&vx).await?;
                        l.set_up(&br).await?;
                    }
                    if let Some(g) = old_gateway.filter(|g| Some(*g) != gateway) {
                        l.del_address(&br, ip(g)).await?;
                    }
                    if let Some(g) = gateway {
                        l.add_address(&br, ip(g), VXNET_PREFIX).await?;
                        l.set_neighbours(&br, &routed_neighbours(g)).await?;
                    }
                }
                for vni in remove {
                    l.delete(&vxlan_link(vni)).await?;
                    l.delete(&vxnet_bridge(vni)).await?;
                }
                Ok(())
            })
            .map_err(|e| format!("vxnets on {} ({VXLAN_PORT_NOTE}): {e}", self.host))?;
        made.vxnets = vxnets;
        Ok(())
    }

    /// This host answers for exactly its guests' EIPs and NATs them, and
    /// lets its routed guests out.
    fn make_nat(&self, cfg: &TenantConfig, made: &mut Made) -> Result<(), String> {
        let want = Nat::of(&made.vms);
        if want == made.nat {
            return Ok(());
        }
        if !want.is_empty() && !made.forwarding {
            self.command("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"], None)?;
            made.forwarding = true;
        }
        let script = nft_script(cfg, &want);
        self.command("nft", &["-f", "-"], Some(&script))?;
        let (add, remove): (Vec<Ipv4Addr>, Vec<Ipv4Addr>) = (
            want.eips
                .iter()
                .filter(|e| !made.nat.eips.iter().any(|m| m.address == e.address))
                .map(|e| e.address)
                .collect(),
            made.nat
                .eips
                .iter()
                .filter(|m| !want.eips.iter().any(|e| e.address == m.address))
                .map(|m| m.address)
                .collect(),
        );
        let link = cfg.eip_link.clone();
        let added = add.clone();
        self.netns
            .run(move |l| async move {
                for a in remove {
                    l.del_address(&link, ip(a)).await?;
                }
                for a in added {
                    l.add_address(&link, ip(a), 32).await?;
                }
                Ok(())
            })
            .map_err(|e| format!("EIP addresses on {}: {e}", self.host))?;
        // Neighbours that knew the EIP at its previous host learn the new
        // one at once (a gratuitous ARP), not when their cache expires.
        for a in add {
            let a = a.to_string();
            let args = ["arping", "-U", "-c", "1", "-I", cfg.eip_link.as_str(), &a];
            self.command("busybox", &args, None)?;
        }
        made.nat = want;
        Ok(())
    }

    /// Runs `program` in this host's namespace.
    fn command(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
        let mut c = self.netns.command(program);
        c.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| format!("{program} on {}: {e}", self.host))?;
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input
                .write_all(text.as_bytes())
                .map_err(|e| format!("{program} on {}: {e}", self.host))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{program} on {}: {e}", self.host))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {} on {}: {}",
                args.join(" "),
                self.host,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// The NAT table, whole: declaring it first makes deleting it safe when
/// it does not exist yet; the kernel applies the script atomically.
fn nft_script(cfg: &TenantConfig, nat: &Nat) -> String {
    let mut s = format!("table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\n");
    if nat.is_empty() {
        return s;
    }
    let link = &cfg.eip_link;
    let guests = format!("{VXNET_BRIDGE_PREFIX}*");
    s.push_str(&format!("table ip {NFT_TABLE} {{\n"));
    s.push_str(
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
    );
    if nat.way_out {
        // A mark set where a guest's packet comes in says so at postrouting
        // (measured: `iifname` there misses a packet turning back on its
        // bridge).
        s.push_str(&format!(
            "    iifname \"{guests}\" meta mark set {FROM_A_GUEST:#x}\n"
        ));
    }
    for e in &nat.eips {
        s.push_str(&format!(
            "    ip daddr {} dnat to {}\n",
            e.address, e.private
        ));
    }
    s.push_str("  }\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
    for e in &nat.eips {
        s.push_str(&format!(
            "    ip saddr {} oifname \"{link}\" snat to {}\n",
            e.private, e.address
        ));
    }
    if nat.way_out {
        s.push_str(&format!(
            "    meta mark {FROM_A_GUEST:#x} oifname \"{link}\" snat to {}\n",
            cfg.local
        ));
        s.push_str(&format!(
            "    ct status dnat meta mark {FROM_A_GUEST:#x} oifname \"{guests}\" masquerade\n"
        ));
    }
    s.push_str("  }\n}\n");
    s
}

/// Moves a tap libvirt made (in `from`, libvirtd's namespace) into the
/// host's namespace and onto `bridge`, up.
pub(crate) fn plug_tap(from: &Netns, to: &Netns, tap: &str, bridge: &str) -> Result<(), String> {
    if ensure_tap_plugged(from, to, tap, bridge)? {
        Ok(())
    } else {
        Err(format!(
            "link {tap}: no such link (libvirt made no tap by that name)"
        ))
    }
}

/// [`plug_tap`], idempotent and safe to race with itself — a boot plugs
/// its guest's tap, and the status watch plugs the taps of guests that
/// arrive by live migration (their tap appears as the incoming copy
/// starts, before the switch-over): a tap already moved, or already a
/// port, is left as it is. False when the tap is in neither namespace.
pub(crate) fn ensure_tap_plugged(
    from: &Netns,
    to: &Netns,
    tap: &str,
    bridge: &str,
) -> Result<bool, String> {
    let (tap, bridge, ns) = (tap.to_string(), bridge.to_string(), to.clone());
    // A failed move may be the other plugger's success: the namespace
    // below decides.
    let moved = if ns.name().is_some() {
        let (t, target) = (tap.clone(), ns.clone());
        from.run(move |links| async move {
            match links.exists(&t).await? {
                true => links.move_to(&t, &target).await,
                false => Ok(()),
            }
        })
        .map_err(|e| e.to_string())
    } else {
        Ok(())
    };
    let here = ns
        .run(move |links| async move {
            Ok(match links.is_port(&tap).await? {
                None => false,
                Some(true) => {
                    links.set_up(&tap).await?;
                    true
                }
                Some(false) => {
                    links.set_master(&tap, &bridge).await?;
                    links.set_up(&tap).await?;
                    true
                }
            })
        })
        .map_err(|e| e.to_string())?;
    match moved {
        Err(e) if !here => Err(e),
        _ => Ok(here),
    }
}

/// Every guest address of a routed vxnet (gateway `gateway`, a /24) with
/// the MAC its routed NIC has. Every host holds the gateway with one MAC,
/// so an ARP answer to it from a guest on another host would be taken by
/// that host's own bridge and never come back: a host routing into a vxnet
/// knows its guests' MACs instead (they carry their addresses), as a
/// distributed router's hosts are given their neighbours rather than
/// learning them.
fn routed_neighbours(gateway: Ipv4Addr) -> Vec<(Ipv4Addr, [u8; 6])> {
    let [a, b, c, g] = gateway.octets();
    (1..=254u8)
        .filter(|d| *d != g)
        .map(|d| {
            let addr = Ipv4Addr::new(a, b, c, d);
            (addr, vxnet_mac_bytes(addr, Some(gateway)))
        })
        .collect()
}

/// The lab's tenant network as the NAT tests use it: br-vm at 10.79.0.10.
#[cfg(test)]
fn lab_config() -> TenantConfig {
    TenantConfig {
        underlay: "br-vm".into(),
        local: Ipv4Addr::new(10, 79, 0, 10),
        group: Ipv4Addr::new(239, 1, 1, 1),
        eip_link: "br-vm".into(),
    }
}

#[cfg(test)]
#[path = "tenant_nat_kernel_tests.rs"]
mod nat_kernel_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn eip(address: [u8; 4], private: [u8; 4]) -> GuestEip {
        GuestEip {
            name: krrish_cloud::Name::parse("eip", "e1").unwrap(),
            address: address.into(),
            private: private.into(),
        }
    }

    #[test]
    fn the_nft_script_replaces_the_table_whole() {
        let cfg = lab_config();
        let none = nft_script(&cfg, &Nat::default());
        assert_eq!(none, "table ip krrish_eip\ndelete table ip krrish_eip\n");
        let one = Nat {
            eips: [eip([203, 0, 113, 1], [10, 10, 1, 10])].into(),
            way_out: false,
        };
        let s = nft_script(&cfg, &one);
        assert!(s.starts_with(&none), "{s}");
        assert!(s.contains("ip daddr 203.0.113.1 dnat to 10.10.1.10"), "{s}");
        assert!(
            s.contains("ip saddr 10.10.1.10 oifname \"br-vm\" snat to 203.0.113.1"),
            "{s}"
        );
        assert!(!s.contains("masquerade"), "{s}");
    }

    #[test]
    fn routed_guests_get_out_through_their_host_and_turn_back_at_the_gateway() {
        let cfg = lab_config();
        let routed = Nat {
            eips: [eip([203, 0, 113, 1], [10, 10, 1, 10])].into(),
            way_out: true,
        };
        let s = nft_script(&cfg, &routed);
        let own = s
            .find("ip saddr 10.10.1.10 oifname \"br-vm\" snat to 203.0.113.1")
            .expect("the EIP's own SNAT");
        let out = s
            .find("meta mark 0x6b72 oifname \"br-vm\" snat to 10.79.0.10")
            .expect("the way out");
        assert!(own < out, "a guest with an EIP leaves as its EIP: {s}");
        assert!(
            s.contains("iifname \"kb*\" meta mark set 0x6b72"),
            "what a guest sends is marked: {s}"
        );
        assert!(
            s.contains("ct status dnat meta mark 0x6b72 oifname \"kb*\" masquerade"),
            "{s}"
        );
    }

    #[test]
    fn a_config_with_a_bad_link_or_group_is_refused() {
        let good = lab_config();
        assert!(good.check().is_ok());
        let bad_link = TenantConfig {
            eip_link: "x\"; flush".into(),
            ..good.clone()
        };
        assert!(bad_link.check().unwrap_err().contains("eip_link"));
        let bad_group = TenantConfig {
            group: Ipv4Addr::new(10, 0, 0, 1),
            ..good
        };
        assert!(bad_group.check().unwrap_err().contains("multicast"));
    }
}
