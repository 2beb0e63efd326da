//! Real guests through the real driver: needs `cargo xtask lab up` (the
//! `lab` step of `cargo xtask ci` runs it first, then this, then `lab
//! down`). Each test makes its own host namespace and DFS directory and
//! removes them again, also when it fails.

// Real guests on real time: wall time is what is measured.
#![allow(clippy::disallowed_methods)]

use krrish_agent::{Driver, GuestConfig, GuestEip, GuestNetwork, GuestNic};
use krrish_core::ha::BootReason;
use krrish_core::{BondHealth, HaPolicy, HostId, Resources, VmId, VmSpec};
use krrish_libvirt::driver::vm_address;
use krrish_libvirt::guest::UP_MARKER;
use krrish_libvirt::guest::{ask_ping, ask_read, ask_write};
use krrish_libvirt::names::{tap_name, volume_serial, ROOT_SERIAL};
use krrish_libvirt::{DomainType, GuestImage, LabHost, LibvirtDriver, MigrationPeer, TenantConfig};
use krrish_netlink::Netns;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const VM_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 80, 0, 0), 16);
static NO_NETWORK: GuestConfig = GuestConfig {
    network: GuestNetwork {
        nics: Vec::new(),
        eips: Vec::new(),
        routes: Vec::new(),
    },
    volumes: Vec::new(),
    disk_ops: Vec::new(),
    root_disk: 0,
};

fn guest(network: GuestNetwork) -> GuestConfig {
    GuestConfig {
        network,
        volumes: Vec::new(),
        disk_ops: Vec::new(),
        root_disk: 0,
    }
}
const BRIDGE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 80, 255, 1);

fn lab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/lab")
}

fn state(key: &str) -> String {
    let text = std::fs::read_to_string(lab_dir().join("state"))
        .expect("target/lab/state is missing: run `cargo xtask lab up` first");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("target/lab/state has no {key}: run `cargo xtask lab up`"))
        .to_string()
}

/// A lab host for one test: namespace `krl-<tag>` with the VM bridge and
/// three bonds of two veth members each; removed on drop.
struct TestHost {
    ns: String,
    host: HostId,
    dir: PathBuf,
}

impl TestHost {
    fn new(tag: &str) -> TestHost {
        let ns = format!("krl-{tag}");
        if Netns::exists(&ns) {
            Netns::delete(&ns).unwrap();
        }
        let dir = lab_dir().join("tests").join(tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let h = TestHost {
            ns: ns.clone(),
            host: HostId::new(format!("t{}-{tag}", std::process::id())),
            dir,
        };
        let n = Netns::create(&ns).unwrap();
        n.run(|links| async move {
            links.add_bridge("br-vm").await?;
            links
                .add_address("br-vm", IpAddr::V4(BRIDGE_ADDR), VM_NET.1)
                .await?;
            links.set_up("br-vm").await?;
            for bond in ["mgmt", "stor", "biz"] {
                for m in 0..2 {
                    let (a, b) = (format!("{bond}{m}"), format!("{bond}{m}-peer"));
                    links.add_veth(&a, &b).await?;
                    links.set_up(&a).await?;
                    links.set_up(&b).await?;
                }
            }
            Ok(())
        })
        .unwrap();
        h
    }

    fn config(&self) -> LabHost {
        let m = |b: &str| [format!("{b}0"), format!("{b}1")];
        LabHost {
            host: self.host.clone(),
            uri: state("libvirt_uri"),
            netns: Some(self.ns.clone()),
            vm_bridge: "br-vm".into(),
            bond_members: [m("mgmt"), m("biz"), m("stor")],
            guest: GuestImage::in_dir(&PathBuf::from(state("guest_dir"))),
            domain_type: DomainType::parse(&state("domain_type")).expect("domain_type"),
            dfs_dir: self.dir.join("dfs"),
            // Nothing renews here: these tests drive the guests only.
            lease_service: "127.0.0.1:1".into(),
            lease_timeout: Duration::from_secs(1),
            lease_duration_ms: 30_000,
            run_dir: self.dir.join("run"),
            vm_network: VM_NET,
            guest_memory_cap_mib: 128,
            boot_timeout: Duration::from_secs(60),
            tenant: None,
            migration_peers: Vec::new(),
        }
    }

    /// This host as another's migration peer, its guests on `uri`.
    fn as_peer(&self, uri: &str) -> MigrationPeer {
        MigrationPeer {
            host: self.host.clone(),
            uri: uri.to_string(),
            run_dir: self.dir.join("run"),
            address: "127.0.0.1".into(),
        }
    }

    /// One ping from the host's namespace; true if answered.
    fn ping(&self, ip: Ipv4Addr) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "ping", "-c", "1", "-W", "2"])
            .arg(ip.to_string())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Whether `tap` is in this host's namespace and a port of its
    /// bridge.
    fn has_port(&self, tap: &str) -> bool {
        Command::new("ip")
            .args(["-n", &self.ns, "-o", "link", "show", "dev", tap])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(" master br-vm "))
            .unwrap_or(false)
    }

    fn set_link(&self, link: &str, up: bool) {
        let l = link.to_string();
        Netns::open(&self.ns)
            .unwrap()
            .run(move |links| async move {
                if up {
                    links.set_up(&l).await
                } else {
                    links.set_down(&l).await
                }
            })
            .unwrap();
    }
}

/// The second libvirt daemon `cargo xtask lab up` started (the box's
/// spares run there); a test that needs it fails saying it is missing.
fn second_libvirt() -> String {
    let uri = state("libvirt_uri_b");
    assert!(
        !uri.is_empty(),
        "the second libvirt daemon did not start at `cargo xtask lab up` (see its output): \
         nothing can live-migrate here"
    );
    uri
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let second = std::fs::read_to_string(lab_dir().join("state"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("libvirt_uri_b="))
                    .map(str::to_string)
            })
            .filter(|u| !u.is_empty());
        for uri in std::iter::once("qemu:///system".to_string()).chain(second) {
            let Ok(o) = Command::new("virsh")
                .args(["-c", &uri, "list", "--name"])
                .output()
            else {
                continue;
            };
            let prefix = format!("krrish.{}.", self.host);
            for d in String::from_utf8_lossy(&o.stdout).lines() {
                if d.starts_with(&prefix) {
                    let _ = Command::new("virsh")
                        .args(["-c", &uri, "destroy", d])
                        .output();
                }
            }
        }
        let _ = Netns::delete(&self.ns);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn vm(id: &str, host: &HostId) -> VmSpec {
    VmSpec {
        id: VmId::new(id),
        home: host.clone(),
        demand: Resources::new(1, 512, 1),
        ha: HaPolicy::Restart,
        priority: 0,
        passthrough_devices: Vec::new(),
        failback: true,
        restart_delay_ms: 0,
    }
}

fn local() -> (tokio::runtime::Runtime, tokio::task::LocalSet) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (rt, tokio::task::LocalSet::new())
}

/// How long a guest just booted has to answer its first command.
const GUEST_UP_WAIT: Duration = Duration::from_secs(45);

#[test]
fn a_real_guest_boots_answers_ping_reboots_and_stops() {
    let h = TestHost::new("boot");
    let driver = LibvirtDriver::new(h.config(), 1).unwrap();
    let spec = vm("vm-1", &h.host);
    let ip = vm_address(VM_NET, &spec.id);
    let (rt, local) = local();
    local.block_on(&rt, async {
        let t = Instant::now();
        driver
            .boot_vm(&spec, BootReason::Create, &NO_NETWORK)
            .await
            .unwrap();
        eprintln!(
            "lab: guest up {:.1} s after boot_vm",
            t.elapsed().as_secs_f64()
        );
        assert_eq!(driver.status().running, vec![spec.id.clone()]);
        assert!(h.ping(ip), "the guest at {ip} does not answer ping");
        // A second boot of a running guest is not a second guest.
        driver
            .boot_vm(&spec, BootReason::Create, &NO_NETWORK)
            .await
            .unwrap();
        assert_eq!(driver.status().running.len(), 1);

        let t = Instant::now();
        driver.reboot_vm(&spec.id).await.unwrap();
        eprintln!(
            "lab: guest back {:.1} s after reboot_vm",
            t.elapsed().as_secs_f64()
        );
        assert!(h.ping(ip), "the guest at {ip} does not answer after reboot");

        driver.stop_vm(&spec.id).await.unwrap();
        assert!(driver.status().running.is_empty());
        assert!(!h.ping(ip), "a stopped guest still answers at {ip}");
        // Stopping what is not running is not an error.
        driver.stop_vm(&spec.id).await.unwrap();
        // Booted again on the same host (its console file is reused): up,
        // not failed at the boot timeout for want of a marker it missed.
        driver
            .boot_vm(&spec, BootReason::Restore, &NO_NETWORK)
            .await
            .unwrap();
        assert!(h.ping(ip), "the guest booted again does not answer at {ip}");
        driver.stop_vm(&spec.id).await.unwrap();
    });
}

#[test]
fn bond_health_comes_from_the_links_carrier() {
    let h = TestHost::new("bonds");
    let driver = LibvirtDriver::new(h.config(), 1).unwrap();
    use BondHealth::{Degraded, Down, Ok as Up};
    // The status is read off the agent's loop: a change shows within a
    // few polls.
    let shows = |want: [BondHealth; 3]| {
        for _ in 0..100 {
            if driver.status().bonds == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(driver.status().bonds, want);
    };
    shows([Up; 3]);
    h.set_link("stor0", false);
    shows([Up, Up, Degraded]);
    h.set_link("stor1", false);
    h.set_link("mgmt0-peer", false);
    shows([Degraded, Up, Down]);
    h.set_link("biz1", false);
    shows([Degraded, Degraded, Down]);
    h.set_link("stor0", true);
    h.set_link("mgmt0-peer", true);
    shows([Up, Degraded, Degraded]);
}

#[test]
fn a_self_fence_stops_every_guest_of_the_host_and_only_those() {
    let h = TestHost::new("fence");
    let other = TestHost::new("other");
    let driver = LibvirtDriver::new(h.config(), 1).unwrap();
    let bystander = LibvirtDriver::new(other.config(), 1).unwrap();
    let (rt, local) = local();
    local.block_on(&rt, async {
        let (a, b, c) = (
            vm("vm-a", &h.host),
            vm("vm-b", &h.host),
            vm("vm-c", &other.host),
        );
        let (ra, rb, rc) = tokio::join!(
            driver.boot_vm(&a, BootReason::Create, &NO_NETWORK),
            driver.boot_vm(&b, BootReason::Create, &NO_NETWORK),
            bystander.boot_vm(&c, BootReason::Create, &NO_NETWORK),
        );
        ra.unwrap();
        rb.unwrap();
        rc.unwrap();
        assert_eq!(driver.status().running, vec![a.id.clone(), b.id.clone()]);
        driver.stop_all_vms().await.unwrap();
        assert!(driver.status().running.is_empty());
        assert_eq!(bystander.status().running, vec![c.id.clone()]);
        assert!(other.ping(vm_address(VM_NET, &c.id)));
    });
}

#[test]
fn names_that_could_inject_are_refused_before_libvirt() {
    let h = TestHost::new("names");
    let driver = LibvirtDriver::new(h.config(), 1).unwrap();
    let (rt, local) = local();
    local.block_on(&rt, async {
        for bad in ["x</name><devices>", "a;reboot", "../etc", "Upper"] {
            let err = driver
                .boot_vm(&vm(bad, &h.host), BootReason::Create, &NO_NETWORK)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("VM name"), "{bad}: {err}");
        }
        assert!(driver.status().running.is_empty());
    });
}

#[test]
fn live_migration_is_reported_unsupported_not_passed() {
    let h = TestHost::new("migr");
    let driver = LibvirtDriver::new(h.config(), 1).unwrap();
    let (rt, local) = local();
    let err = local
        .block_on(
            &rt,
            driver.live_migrate(&VmId::new("vm-1"), &HostId::new("hv-2")),
        )
        .unwrap_err();
    assert!(
        matches!(err, krrish_agent::DriverError::NotSupported(_)),
        "{err}"
    );
}

/// Whether `cond` holds within 3 s (a driver's status is read every
/// 250 ms).
fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Live migration between the box's two libvirt daemons, both ways: the
/// guest keeps running (no new boot: its console on the destination has
/// no "up" line), has its tap on the destination's bridge (the
/// destination's status watch plugs it as the copy starts — the source
/// plugs nothing), answers ping in its new host's
/// namespace only, is reported there and no longer here, reboots there,
/// and goes back.
#[test]
fn a_guest_live_migrates_between_two_libvirt_daemons_and_back_without_a_new_boot() {
    let second = second_libvirt();
    let (a, b) = (TestHost::new("lma"), TestHost::new("lmb"));
    let mut on_a = a.config();
    on_a.uri = second.clone();
    on_a.migration_peers = vec![b.as_peer("qemu:///system")];
    let mut on_b = b.config();
    // One DFS: the guest's disk is the same file wherever it runs.
    on_b.dfs_dir = on_a.dfs_dir.clone();
    on_b.migration_peers = vec![a.as_peer(&second)];
    let (da, db) = (
        LibvirtDriver::new(on_a, 1).unwrap(),
        LibvirtDriver::new(on_b, 1).unwrap(),
    );
    let spec = vm("vm-1", &a.host);
    let ip = vm_address(VM_NET, &spec.id);
    let console_on_b = b.dir.join("run").join("vm-1.console");
    let (rt, local) = local();
    local.block_on(&rt, async {
        da.boot_vm(&spec, BootReason::Create, &NO_NETWORK)
            .await
            .unwrap();
        assert!(a.ping(ip), "the guest at {ip} does not answer on a");
        let t = Instant::now();
        da.live_migrate(&spec.id, &b.host).await.unwrap();
        eprintln!(
            "lab: live migration between daemons in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        // b's watch plugs the tap when it sees the incoming copy: before
        // the switch-over as a rule, one reading later while b's libvirtd
        // is busy (CI runs the lab tests two at a time: measured once
        // unplugged at the return).
        let tap_on_b = tap_name(&b.host, &spec.id);
        eprintln!(
            "lab: the tap on b's bridge as the migration returned: {}",
            b.has_port(&tap_on_b)
        );
        assert!(
            eventually(|| b.has_port(&tap_on_b)),
            "{tap_on_b} never joined b's bridge"
        );
        assert!(da.status().running.is_empty(), "{:?}", da.status());
        assert!(da.status().migrating_out.is_empty());
        // b's agent reads its libvirt every 250 ms.
        assert!(
            eventually(|| db.status().running == [spec.id.clone()]),
            "{:?}",
            db.status()
        );
        assert!(b.ping(ip), "the migrated guest does not answer on b");
        assert!(!a.ping(ip), "the migrated guest still answers on a");
        let console = std::fs::read_to_string(&console_on_b).unwrap_or_default();
        assert!(
            !console.contains(UP_MARKER),
            "the guest booted again on b: {console}"
        );
        // A host that is not a peer: not supported, nothing moved.
        let err = db
            .live_migrate(&spec.id, &HostId::new("hv-elsewhere"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, krrish_agent::DriverError::NotSupported(_)),
            "{err}"
        );
        assert_eq!(db.status().running, vec![spec.id.clone()]);
        // Nothing in flight: nothing to cancel, and no copy on a.
        db.abort_migration(&spec.id, &a.host).await.unwrap();
        db.reboot_vm(&spec.id).await.unwrap();
        assert!(b.ping(ip), "the guest does not answer after a reboot on b");
        db.live_migrate(&spec.id, &a.host).await.unwrap();
        assert!(eventually(|| a.has_port(&tap_name(&a.host, &spec.id))));
        assert!(
            eventually(|| da.status().running == [spec.id.clone()]),
            "{:?}",
            da.status()
        );
        assert!(db.status().running.is_empty());
        assert!(a.ping(ip), "the guest migrated back does not answer on a");
        da.stop_vm(&spec.id).await.unwrap();
    });
}

/// virtlockd (`lock_manager = "lockd"`, set by `cargo xtask lab up`) holds
/// a lock on every running guest's disk: a second guest on the same DFS
/// copy — the VM booted on a second host while it still runs on the first
/// — is refused by libvirt itself, whatever the controller believed.
#[test]
fn a_disk_a_running_guest_holds_is_refused_to_a_second_guest() {
    let a = TestHost::new("lka");
    let b = TestHost::new("lkb");
    let on_a = LibvirtDriver::new(a.config(), 1).unwrap();
    let mut cfg_b = b.config();
    cfg_b.dfs_dir = a.config().dfs_dir; // one DFS, two hosts
    let on_b = LibvirtDriver::new(cfg_b, 1).unwrap();
    let spec = vm("vm-locked", &a.host);
    let (rt, local) = local();
    local.block_on(&rt, async {
        on_a.boot_vm(&spec, BootReason::Create, &NO_NETWORK)
            .await
            .unwrap();
        let second = on_b.boot_vm(&spec, BootReason::Failover, &NO_NETWORK).await;
        let why = format!("{second:?}");
        assert!(
            second.is_err() && why.to_lowercase().contains("lock"),
            "a second guest on a held disk was not refused by the lock manager: {why}"
        );
        assert!(on_b.status().running.is_empty(), "{:?}", on_b.status());
        // Once the first copy is gone, the disk is free.
        on_a.stop_vm(&spec.id).await.unwrap();
        on_b.boot_vm(&spec, BootReason::Failover, &NO_NETWORK)
            .await
            .unwrap();
        assert_eq!(on_b.status().running, vec![spec.id.clone()]);
        on_b.stop_vm(&spec.id).await.unwrap();
    });
}

/// Two hosts joined by one underlay link (`und` in each, 10.79.0.1 and
/// .2): VXLAN between them.
fn two_hosts_on_one_underlay(a: &TestHost, b: &TestHost) {
    let (na, nb) = (Netns::open(&a.ns).unwrap(), Netns::open(&b.ns).unwrap());
    let target = nb.clone();
    na.run(move |l| async move {
        l.add_veth("und", "und-peer").await?;
        l.move_to("und-peer", &target).await
    })
    .unwrap();
    na.run(|l| async move {
        l.add_address("und", IpAddr::V4(Ipv4Addr::new(10, 79, 0, 1)), 24)
            .await?;
        l.set_up("und").await
    })
    .unwrap();
    nb.run(|l| async move {
        l.add_address("und-peer", IpAddr::V4(Ipv4Addr::new(10, 79, 0, 2)), 24)
            .await?;
        l.set_up("und-peer").await
    })
    .unwrap();
}

fn tenant(underlay: &str, local: [u8; 4]) -> Option<TenantConfig> {
    Some(TenantConfig {
        underlay: underlay.into(),
        local: local.into(),
        group: Ipv4Addr::new(239, 1, 1, 1),
        eip_link: underlay.into(),
    })
}

fn nic(ip: [u8; 4], gateway: Option<[u8; 4]>) -> GuestNic {
    GuestNic {
        vxnet: krrish_cloud::Name::parse("vxnet", "front").unwrap(),
        vni: 1000,
        ip: ip.into(),
        prefix: 24,
        gateway: gateway.map(Ipv4Addr::from),
    }
}

/// Asks the guest to ping `to`, a few times while its NICs come up.
fn guest_reaches(driver: &LibvirtDriver, vm: &VmId, to: [u8; 4], want: bool) -> bool {
    let to = Ipv4Addr::from(to);
    let mut last = None;
    for _ in 0..8 {
        match ask_ping(&driver.command_socket(vm), to, Duration::from_secs(10)) {
            Ok(r) if r == want => return true,
            other => last = Some(other),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("lab: {vm} ping {to}: last answer {last:?}, wanted {want}");
    false
}

#[test]
fn guests_on_one_vxnet_reach_each_other_across_hosts_and_an_eip_reaches_one() {
    let a = TestHost::new("vxa");
    let b = TestHost::new("vxb");
    two_hosts_on_one_underlay(&a, &b);
    let mut cfg_a = a.config();
    cfg_a.tenant = tenant("und", [10, 79, 0, 1]);
    let mut cfg_b = b.config();
    cfg_b.tenant = tenant("und-peer", [10, 79, 0, 2]);
    let (on_a, on_b) = (
        LibvirtDriver::new(cfg_a, 1).unwrap(),
        LibvirtDriver::new(cfg_b, 1).unwrap(),
    );
    let (x, y) = (vm("vm-x", &a.host), vm("vm-y", &b.host));
    let x_net = GuestNetwork {
        nics: vec![nic([10, 10, 1, 10], None)],
        eips: Vec::new(),
        routes: Vec::new(),
    };
    let y_net = GuestNetwork {
        nics: vec![nic([10, 10, 1, 11], None)],
        eips: Vec::new(),
        routes: Vec::new(),
    };
    let (rt, local) = local();
    local.block_on(&rt, async {
        // x boots with its NIC; y boots bare and gets its NIC plugged in.
        let x_guest = guest(x_net.clone());
        let (rx, ry) = tokio::join!(
            on_a.boot_vm(&x, BootReason::Create, &x_guest),
            on_b.boot_vm(&y, BootReason::Create, &NO_NETWORK),
        );
        rx.unwrap();
        ry.unwrap();
        assert!(
            guest_reaches(&on_a, &x.id, [10, 10, 1, 10], true),
            "x does not reach its own vxnet address"
        );
        assert!(guest_reaches(&on_a, &x.id, [10, 10, 1, 11], false));
        on_b.set_guest(&y.id, &guest(y_net.clone())).await.unwrap();
        on_b.set_guest(&y.id, &guest(y_net.clone())).await.unwrap(); // again: no change
        assert!(
            guest_reaches(&on_a, &x.id, [10, 10, 1, 11], true),
            "x on {} does not reach y on {} over VXLAN",
            a.host,
            b.host
        );
        assert!(guest_reaches(&on_b, &y.id, [10, 10, 1, 10], true));

        // x's vxnet gets a router, x an EIP: b's namespace (the outside
        // here) reaches x through a's NAT; x's MAC changes, so its NIC is
        // plugged again.
        let routed = GuestNetwork {
            nics: vec![nic([10, 10, 1, 10], Some([10, 10, 1, 247]))],
            eips: vec![GuestEip {
                name: krrish_cloud::Name::parse("eip", "e1").unwrap(),
                address: Ipv4Addr::new(203, 0, 113, 5),
                private: Ipv4Addr::new(10, 10, 1, 10),
            }],
            routes: Vec::new(),
        };
        on_a.set_guest(&x.id, &guest(routed)).await.unwrap();
        Netns::open(&b.ns)
            .unwrap()
            .run(|l| async move {
                l.add_link_route("und-peer", Ipv4Addr::new(203, 0, 113, 0), 24, None)
                    .await
            })
            .unwrap();
        let mut reached = false;
        for _ in 0..20 {
            if b.ping(Ipv4Addr::new(203, 0, 113, 5)) {
                reached = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(
            reached,
            "the EIP 203.0.113.5 does not reach x through {}'s NAT",
            a.host
        );
        assert!(guest_reaches(&on_a, &x.id, [10, 10, 1, 11], true));

        // y leaves the vxnet: x no longer reaches it.
        on_b.set_guest(&y.id, &NO_NETWORK).await.unwrap();
        assert!(guest_reaches(&on_a, &x.id, [10, 10, 1, 11], false));
        on_a.stop_vm(&x.id).await.unwrap();
        on_b.stop_vm(&y.id).await.unwrap();
        assert!(
            !b.ping(Ipv4Addr::new(203, 0, 113, 5)),
            "the EIP outlived its VM"
        );
    });
    // The host's vxnet went with its last guest.
    let left = Netns::open(&a.ns)
        .unwrap()
        .run(|l| async move { l.names().await })
        .unwrap();
    assert!(
        !left.iter().any(|n| n == "kb1000" || n == "kx1000"),
        "{left:?}"
    );
}

#[test]
fn a_vm_with_vxnet_nics_on_a_host_without_a_tenant_network_is_refused_with_the_reason() {
    let h = TestHost::new("notenant");
    let driver = LibvirtDriver::new(h.config(), 1).unwrap();
    let spec = vm("vm-n", &h.host);
    let net = GuestNetwork {
        nics: vec![nic([10, 10, 1, 12], None)],
        eips: Vec::new(),
        routes: Vec::new(),
    };
    let (rt, local) = local();
    let err = local
        .block_on(&rt, driver.boot_vm(&spec, BootReason::Create, &guest(net)))
        .unwrap_err();
    assert!(err.to_string().contains("tenant_network"), "{err}");
    assert!(driver.status().running.is_empty());
}

fn volume(name: &str, size_gib: u64) -> krrish_agent::GuestVolume {
    krrish_agent::GuestVolume {
        name: krrish_cloud::Name::parse("volume", name).unwrap(),
        size_gib,
    }
}

/// A few tries while a hot-plugged disk appears in the guest.
fn read_until(driver: &LibvirtDriver, vm: &VmId, serial: &str, block: u64) -> Result<u64, String> {
    let mut last = Err("never asked".to_string());
    for _ in 0..10 {
        last = ask_read(
            &driver.command_socket(vm),
            serial,
            block,
            Duration::from_secs(10),
        );
        if last.is_ok() {
            return last;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    last
}

#[test]
fn a_volume_plugs_in_and_out_keeps_its_data_and_moves_to_another_host() {
    let a = TestHost::new("vola");
    let b = TestHost::new("volb");
    let on_a = LibvirtDriver::new(a.config(), 1).unwrap();
    let mut cfg_b = b.config();
    cfg_b.dfs_dir = a.config().dfs_dir; // one DFS, two hosts
    let on_b = LibvirtDriver::new(cfg_b, 1).unwrap();
    let x = vm("vm-vx", &a.host);
    let data1 = volume_serial("data-1");
    let with = |vols: Vec<krrish_agent::GuestVolume>| GuestConfig {
        network: GuestNetwork::default(),
        volumes: vols,
        disk_ops: Vec::new(),
        root_disk: 0,
    };
    let (rt, local) = local();
    local.block_on(&rt, async {
        // Booted with the volume written into its domain.
        on_a.boot_vm(&x, BootReason::Create, &with(vec![volume("data-1", 1)]))
            .await
            .unwrap();
        let sock = on_a.command_socket(&x.id);
        let wait = Duration::from_secs(10);
        // The first command waits for the guest to be up: the domain runs
        // once boot_vm returns, the guest's init takes longer when the
        // other lab tests boot TCG guests beside it (CI saw > 10 s).
        ask_write(&sock, &data1, 3, 900, GUEST_UP_WAIT).unwrap();
        ask_write(&sock, ROOT_SERIAL, 7, 111, wait).unwrap();
        assert_eq!(ask_read(&sock, &data1, 3, wait), Ok(900));
        assert_eq!(ask_read(&sock, &data1, 4, wait), Ok(0), "never written");
        assert_eq!(ask_read(&sock, ROOT_SERIAL, 7, wait), Ok(111));
        // Unplugged from the running guest: gone from it.
        on_a.set_guest(&x.id, &NO_NETWORK).await.unwrap();
        let mut gone = false;
        for _ in 0..20 {
            if ask_read(&sock, &data1, 3, wait).is_err() {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(
            gone,
            "data-1 still readable in the guest after it was unplugged"
        );
        // Plugged into the running guest again: the same data.
        on_a.set_guest(&x.id, &with(vec![volume("data-1", 1)]))
            .await
            .unwrap();
        assert_eq!(read_until(&on_a, &x.id, &data1, 3), Ok(900));
        on_a.stop_vm(&x.id).await.unwrap();

        // The VM on another host (a failover): its root disk and volume
        // are the same files on the DFS.
        on_b.boot_vm(&x, BootReason::Failover, &with(vec![volume("data-1", 1)]))
            .await
            .unwrap();
        let sock = on_b.command_socket(&x.id);
        assert_eq!(ask_read(&sock, &data1, 3, wait), Ok(900));
        assert_eq!(ask_read(&sock, ROOT_SERIAL, 7, wait), Ok(111));
        on_b.stop_vm(&x.id).await.unwrap();
    });
}

/// The internal snapshots a qcow2 file holds (read with `-U`: a running
/// guest holds the file's lock).
fn tags_on(file: &std::path::Path) -> Vec<String> {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["snapshots"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn snapshots_are_taken_live_and_a_revert_restarts_the_guest_on_the_old_disks() {
    use krrish_cloud::storage::{DiskAction, DiskOp};
    let a = TestHost::new("snpa");
    let b = TestHost::new("snpb");
    let on_a = LibvirtDriver::new(a.config(), 1).unwrap();
    let mut cfg_b = b.config();
    cfg_b.dfs_dir = a.config().dfs_dir; // one DFS, two hosts
    let dfs = cfg_b.dfs_dir.clone();
    let on_b = LibvirtDriver::new(cfg_b, 1).unwrap();
    let x = vm("vm-sn", &a.host);
    let (root, vol) = (
        dfs.join("vms/vm-sn.qcow2"),
        dfs.join("volumes/data-sn.qcow2"),
    );
    let data = volume_serial("data-sn");
    let op = |seq, action, tag: &str| DiskOp {
        seq,
        action,
        name: krrish_cloud::Name::parse("name", &tag[..2]).unwrap(),
        tag: tag.into(),
        volumes: vec![krrish_cloud::Name::parse("volume", "data-sn").unwrap()],
    };
    let ops = [
        op(1, DiskAction::Snapshot, "s1.1"),
        op(2, DiskAction::Revert, "s1.1"),
        op(3, DiskAction::DeleteSnapshot, "s1.1"),
        op(4, DiskAction::Snapshot, "s2.4"),
    ];
    let with = |n: usize| GuestConfig {
        network: GuestNetwork::default(),
        volumes: vec![volume("data-sn", 1)],
        disk_ops: ops[..n].to_vec(),
        root_disk: 0,
    };
    let wait = Duration::from_secs(10);
    let (rt, local) = local();
    local.block_on(&rt, async {
        on_a.boot_vm(&x, BootReason::Create, &with(0))
            .await
            .unwrap();
        let sock = on_a.command_socket(&x.id);
        ask_write(&sock, &data, 3, 900, GUEST_UP_WAIT).unwrap();
        ask_write(&sock, ROOT_SERIAL, 7, 111, wait).unwrap();
        // Taken live, on both disks together.
        on_a.set_guest(&x.id, &with(1)).await.unwrap();
        assert_eq!(tags_on(&root), vec!["s1.1"]);
        assert_eq!(tags_on(&vol), vec!["s1.1"]);
        ask_write(&sock, &data, 3, 901, wait).unwrap();
        ask_write(&sock, ROOT_SERIAL, 7, 222, wait).unwrap();
        // Reverted: the guest restarts on the disks as they were, and
        // stays reported running throughout.
        on_a.set_guest(&x.id, &with(2)).await.unwrap();
        assert!(on_a.status().running.contains(&x.id));
        assert_eq!(ask_read(&sock, ROOT_SERIAL, 7, GUEST_UP_WAIT), Ok(111));
        assert_eq!(ask_read(&sock, &data, 3, wait), Ok(900));
        assert_eq!(tags_on(&root), vec!["s1.1"], "a revert deletes nothing");
        // Told the same ops again (a lost answer): nothing is redone.
        ask_write(&sock, ROOT_SERIAL, 7, 333, wait).unwrap();
        on_a.set_guest(&x.id, &with(2)).await.unwrap();
        assert_eq!(ask_read(&sock, ROOT_SERIAL, 7, wait), Ok(333));
        // Deleted live.
        on_a.set_guest(&x.id, &with(3)).await.unwrap();
        assert!(tags_on(&root).is_empty());
        assert!(tags_on(&vol).is_empty());
        on_a.stop_vm(&x.id).await.unwrap();

        // A snapshot of the stopped VM is taken by the host that boots it
        // next, before its guest runs.
        on_b.boot_vm(&x, BootReason::Failover, &with(4))
            .await
            .unwrap();
        assert_eq!(tags_on(&root), vec!["s2.4"]);
        assert_eq!(tags_on(&vol), vec!["s2.4"]);
        let sock = on_b.command_socket(&x.id);
        assert_eq!(ask_read(&sock, ROOT_SERIAL, 7, GUEST_UP_WAIT), Ok(333));
        on_b.stop_vm(&x.id).await.unwrap();

        // Terminated and launched again under its name: a new root disk
        // (its own file), not the old one with its snapshots.
        let again = GuestConfig {
            root_disk: 2,
            ..with(0)
        };
        on_b.boot_vm(&x, BootReason::Create, &again).await.unwrap();
        let sock = on_b.command_socket(&x.id);
        assert_eq!(ask_read(&sock, ROOT_SERIAL, 7, GUEST_UP_WAIT), Ok(0));
        assert!(tags_on(&dfs.join("vms/vm-sn.2.qcow2")).is_empty());
        on_b.stop_vm(&x.id).await.unwrap();
    });
}
