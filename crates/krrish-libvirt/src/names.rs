//! Names the lab gives to what it creates for a VM. Host and VM names are
//! checked with the same rule as kernel link names (`a-z`, `0-9`, `-`), so
//! no name can carry markup into domain XML, an option into a command, or
//! `..` into a path.

use krrish_core::{HostId, VmId};
use std::net::Ipv4Addr;

/// Longest host or VM name the real world accepts.
pub const NAME_MAX: usize = 40;
/// Every domain krrish makes starts with this, then `<host>.`.
pub const DOMAIN_PREFIX: &str = "krrish.";

/// A checked host or VM name, or the reason it is refused.
pub fn checked(kind: &str, name: &str) -> Result<String, String> {
    krrish_netlink::check_name(name, NAME_MAX)
        .map(|()| name.to_string())
        .map_err(|e| format!("{kind} name {name:?} cannot be used on a real host: {e}"))
}

/// `krrish.<host>.<vm>`: dots never occur in checked names, so the host
/// and VM can be read back.
pub fn domain_name(host: &HostId, vm: &VmId) -> Result<String, String> {
    let h = checked("host", host.as_str())?;
    let v = checked("VM", vm.as_str())?;
    Ok(format!("{DOMAIN_PREFIX}{h}.{v}"))
}

/// The VM named by a domain of `host`, if the domain is one of its.
pub fn vm_of_domain(host: &HostId, domain: &str) -> Option<VmId> {
    let rest = domain.strip_prefix(DOMAIN_PREFIX)?;
    let vm = rest.strip_prefix(host.as_str())?.strip_prefix('.')?;
    krrish_netlink::check_name(vm, NAME_MAX).ok()?;
    Some(VmId::new(vm))
}

/// FNV-1a, 64 bit: stable across runs and machines.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The guest NIC's tap: `kt-` and 12 hex digits of the host and VM (15
/// bytes, the kernel's limit).
pub fn tap_name(host: &HostId, vm: &VmId) -> String {
    format!(
        "kt-{:012x}",
        stable_hash(&[host.as_str(), vm.as_str()]) & 0xffff_ffff_ffff
    )
}

/// A locally administered MAC, the same for a VM wherever it runs (so
/// neighbours' caches stay right across a failover).
pub fn mac_of(vm: &VmId) -> String {
    let h = stable_hash(&[vm.as_str()]);
    let b = h.to_be_bytes();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// The tap of a VM's NIC on the vxnet with VXLAN id `vni`: `kn-` and 12
/// hex digits of the host, VM and vni.
pub fn vxnet_tap_name(host: &HostId, vm: &VmId, vni: u32) -> String {
    let vni = vni.to_string();
    format!(
        "kn-{:012x}",
        stable_hash(&[host.as_str(), vm.as_str(), &vni]) & 0xffff_ffff_ffff
    )
}

/// The file of `vm`'s root disk on the DFS (under `vms/`): one per
/// incarnation, so a VM launched again under a terminated one's name never
/// boots its old disk.
pub fn root_disk_file(vm: &VmId, incarnation: u64) -> String {
    match incarnation {
        0 => format!("{vm}.qcow2"),
        n => format!("{vm}.{n}.qcow2"),
    }
}

/// The incarnation of `vm` a root disk file name (as [`root_disk_file`]
/// makes it) is of, if it is one of `vm`'s.
pub fn root_disk_incarnation(vm: &VmId, file: &str) -> Option<u64> {
    let rest = file.strip_prefix(vm.as_str())?.strip_suffix(".qcow2")?;
    match rest {
        "" => Some(0),
        r => r.strip_prefix('.')?.parse().ok(),
    }
}

/// The serial number a volume's disk shows the guest (virtio-blk takes
/// 20 characters): how the guest — and a check acting through it — finds
/// the volume whatever device name it got. The root disk's is `root`.
pub fn volume_serial(volume: &str) -> String {
    format!("v{:015x}", stable_hash(&[volume]) & 0x0fff_ffff_ffff_ffff)
}

/// The root disk's serial (see [`volume_serial`]).
pub const ROOT_SERIAL: &str = "root";

/// What every vxnet bridge's name starts with.
pub const VXNET_BRIDGE_PREFIX: &str = "kb";

/// The bridge a vxnet's guests and its VXLAN link join on a host.
pub fn vxnet_bridge(vni: u32) -> String {
    format!("{VXNET_BRIDGE_PREFIX}{vni}")
}

/// The VXLAN link that carries a vxnet between hosts.
pub fn vxlan_link(vni: u32) -> String {
    format!("kx{vni}")
}

/// The MAC of a guest's NIC on a vxnet says the guest's address there
/// (the lab guest reads it, having no DHCP): `52:4b:` and the address, or,
/// on the guest's routed vxnet, `56:` + the gateway's last octet + the
/// address (the guest's default route goes there). Every vxnet is a /24.
pub fn vxnet_mac(ip: Ipv4Addr, gateway: Option<Ipv4Addr>) -> String {
    let m = vxnet_mac_bytes(ip, gateway);
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// [`vxnet_mac`] as bytes.
pub fn vxnet_mac_bytes(ip: Ipv4Addr, gateway: Option<Ipv4Addr>) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    let (first, second) = match gateway {
        Some(g) => (0x56, g.octets()[3]),
        None => (0x52, 0x4b),
    };
    [first, second, a, b, c, d]
}

/// The MAC every host's vxnet bridge has, so the distributed router's
/// gateway address answers with one MAC wherever the guest runs.
pub fn vxnet_gateway_mac(vni: u32) -> [u8; 6] {
    let v = vni.to_be_bytes();
    [0x5a, 0x4b, v[0], v[1], v[2], v[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_disk_file_names_its_vm_and_incarnation_and_no_other() {
        let vm = VmId::new("app-1");
        for n in [0, 1, 12] {
            let file = root_disk_file(&vm, n);
            assert_eq!(root_disk_incarnation(&vm, &file), Some(n), "{file}");
        }
        for other in [
            "app-10.qcow2",
            "app-1.qcow2.ops",
            "app-1.x.qcow2",
            "app-2.1.qcow2",
        ] {
            assert_eq!(root_disk_incarnation(&vm, other), None, "{other}");
        }
    }

    #[test]
    fn vxnet_names_fit_the_kernel_and_macs_carry_the_address() {
        let h = HostId::new("hv-01");
        let t = vxnet_tap_name(&h, &VmId::new("vm-1"), 1000);
        assert_eq!(t.len(), 15);
        assert_ne!(t, vxnet_tap_name(&h, &VmId::new("vm-1"), 1001));
        for n in [t, vxnet_bridge(16_777_215), vxlan_link(16_777_215)] {
            assert!(krrish_netlink::LinkName::new(&n).is_ok(), "{n}");
        }
        let ip = Ipv4Addr::new(10, 10, 1, 10);
        assert_eq!(vxnet_mac(ip, None), "52:4b:0a:0a:01:0a");
        assert_eq!(
            vxnet_mac(ip, Some(Ipv4Addr::new(10, 10, 1, 247))),
            "56:f7:0a:0a:01:0a"
        );
        assert_ne!(&mac_of(&VmId::new("vm-1"))[..5], "52:4b");
    }

    #[test]
    fn domain_names_round_trip_and_refuse_markup() {
        let h = HostId::new("hv-01");
        let d = domain_name(&h, &VmId::new("vm-1")).unwrap();
        assert_eq!(d, "krrish.hv-01.vm-1");
        assert_eq!(vm_of_domain(&h, &d), Some(VmId::new("vm-1")));
        assert_eq!(vm_of_domain(&HostId::new("hv-0"), &d), None);
        for bad in ["<x>", "a'b", "a;b", "../x", "a.b", "A"] {
            assert!(domain_name(&h, &VmId::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn taps_fit_the_kernel_and_differ() {
        let h = HostId::new("hv-01");
        let a = tap_name(&h, &VmId::new("vm-1"));
        let b = tap_name(&h, &VmId::new("vm-2"));
        assert_eq!(a.len(), 15);
        assert_ne!(a, b);
        assert!(krrish_netlink::LinkName::new(&a).is_ok());
    }
}
