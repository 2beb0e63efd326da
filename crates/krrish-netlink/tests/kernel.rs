//! Against the real kernel, in namespaces these tests make and remove
//! (root required, as on our standard machines and in CI).

use krrish_netlink::{probe_bonding, Capability, Netns};
use std::net::{IpAddr, Ipv4Addr};

fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "these tests make network namespaces and need root; they were NOT run"
    );
}

/// A namespace removed again when the test ends, pass or fail.
struct Scratch(String);
impl Scratch {
    fn new(tag: &str) -> (Scratch, Netns) {
        require_root();
        let name = format!("krl-nt-{tag}-{}", std::process::id());
        if Netns::exists(&name) {
            Netns::delete(&name).unwrap();
        }
        let ns = Netns::create(&name).unwrap();
        (Scratch(name), ns)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Netns::delete(&self.0);
    }
}

#[test]
fn a_namespace_is_made_used_and_removed() {
    let (s, ns) = Scratch::new("life");
    assert!(Netns::exists(&s.0));
    let names = ns.run(|l| async move { l.names().await }).unwrap();
    assert_eq!(names, vec!["lo".to_string()], "a new namespace has only lo");
    assert!(ns
        .run(|l| async move { l.has_carrier("lo").await })
        .unwrap());
    // The same name twice is refused, not adopted.
    assert!(Netns::create(&s.0).is_err());
    let name = s.0.clone();
    drop(s);
    assert!(!Netns::exists(&name));
    assert!(Netns::open(&name).is_err());
}

#[test]
fn veth_carrier_follows_both_ends_and_moves_between_namespaces() {
    let (_a, ns_a) = Scratch::new("va");
    let (_b, ns_b) = Scratch::new("vb");
    let target = ns_b.clone();
    ns_a.run(move |l| async move {
        l.add_veth("up0", "up0-peer").await?;
        l.move_to("up0-peer", &target).await?;
        l.set_up("up0").await?;
        l.add_address("up0", IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)), 24)
            .await
    })
    .unwrap();
    // The peer is down in the other namespace: no carrier here yet.
    assert!(!ns_a
        .run(|l| async move { l.has_carrier("up0").await })
        .unwrap());
    assert!(!ns_a
        .run(|l| async move { l.exists("up0-peer").await })
        .unwrap());
    ns_b.run(|l| async move { l.set_up("up0-peer").await })
        .unwrap();
    assert!(ns_a
        .run(|l| async move { l.has_carrier("up0").await })
        .unwrap());
    ns_b.run(|l| async move { l.set_down("up0-peer").await })
        .unwrap();
    assert!(!ns_a
        .run(|l| async move { l.has_carrier("up0").await })
        .unwrap());
}

/// One ping from namespace `ns` to `to`; true if answered. A machine
/// without `ping` fails the test saying so (`cargo xtask ci` installs
/// iputils-ping), rather than as a lost packet.
fn ping_from(ns: &str, to: Ipv4Addr) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1"])
        .arg(to.to_string())
        .output()
        .expect("ip netns exec runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No such file or directory"),
        "ping is not installed (apt-get install iputils-ping; `cargo xtask ci` does): {stderr}"
    );
    out.status.success()
}

#[test]
fn a_disabled_bridge_port_drops_traffic_and_keeps_carrier() {
    let (_sw, switch) = Scratch::new("sw");
    let (h, host) = Scratch::new("hp");
    let target = host.clone();
    switch
        .run(move |l| async move {
            l.add_bridge("sw0").await?;
            l.add_address("sw0", IpAddr::V4(Ipv4Addr::new(10, 98, 0, 1)), 24)
                .await?;
            l.set_up("sw0").await?;
            l.add_veth("port0", "nic0").await?;
            l.move_to("nic0", &target).await?;
            l.set_master("port0", "sw0").await?;
            l.set_up("port0").await
        })
        .unwrap();
    host.run(|l| async move {
        l.set_up("nic0").await?;
        l.add_address("nic0", IpAddr::V4(Ipv4Addr::new(10, 98, 0, 2)), 24)
            .await
    })
    .unwrap();
    let gw = Ipv4Addr::new(10, 98, 0, 1);
    assert!(ping_from(&h.0, gw), "no path through an enabled port");
    switch
        .run(|l| async move { l.set_port_forwarding("port0", false).await })
        .unwrap();
    assert!(!ping_from(&h.0, gw), "a disabled port forwarded");
    assert!(
        host.run(|l| async move { l.has_carrier("nic0").await })
            .unwrap(),
        "the host lost carrier: the cut was not outside it"
    );
    switch
        .run(|l| async move { l.set_port_forwarding("port0", true).await })
        .unwrap();
    assert!(ping_from(&h.0, gw), "forwarding did not come back");
}

#[test]
fn bridges_and_vxlan_are_made_and_enslaved() {
    let (_s, ns) = Scratch::new("br");
    ns.run(|l| async move {
        l.add_veth("under0", "under0-p").await?;
        l.set_up("under0").await?;
        l.set_up("under0-p").await?;
        l.add_bridge("br-vm").await?;
        l.add_vxlan("vx100", 100, "under0", Ipv4Addr::new(239, 1, 1, 1), None)
            .await?;
        l.set_master("vx100", "br-vm").await?;
        l.set_up("br-vm").await?;
        l.set_up("vx100").await?;
        Ok(())
    })
    .unwrap();
    let names = ns.run(|l| async move { l.names().await }).unwrap();
    for want in ["br-vm", "vx100", "under0", "under0-p"] {
        assert!(
            names.contains(&want.to_string()),
            "{want} missing: {names:?}"
        );
    }
    ns.run(|l| async move { l.delete("vx100").await }).unwrap();
    ns.run(|l| async move { l.delete("vx100").await }).unwrap();
    assert!(!ns.run(|l| async move { l.exists("vx100").await }).unwrap());
}

#[test]
fn bad_names_never_reach_the_kernel() {
    let (_s, ns) = Scratch::new("names");
    // (Upper case is a name: physical hosts have `Eth0`, see
    // krrish_core::link_name.)
    for bad in ["a/b", "x;reboot", "waytoolonglinkname", "-x", "..", "a b"] {
        let b = bad.to_string();
        let err = ns
            .run(move |l| async move { l.add_bridge(&b).await })
            .unwrap_err();
        assert!(err.to_string().contains("bad name"), "{bad}: {err}");
    }
    assert!(Netns::create("../etc").is_err());
    assert!(Netns::open("a b").is_err());
}

#[test]
fn the_bonding_probe_answers_from_the_kernel() {
    require_root();
    let cap = probe_bonding(&format!("krl-nt-bond-{}", std::process::id())).unwrap();
    // Either answer is legitimate; what matters is that it came from the
    // kernel and that "unavailable" says so in words.
    let has_bonding = std::path::Path::new("/sys/class/net/bonding_masters").exists()
        || std::fs::read_to_string("/proc/modules")
            .map(|m| m.contains("bonding"))
            .unwrap_or(false);
    match &cap {
        Capability::Available => {}
        Capability::Unavailable(why) => {
            assert!(why.contains("bonding unavailable on this host"), "{why}");
            assert!(
                !has_bonding,
                "the kernel shows bonding, yet the probe says no"
            );
        }
    }
    eprintln!("bonding on this kernel: {cap:?}");
}
