//! The NAT table against the real kernel: a host namespace with a vxnet
//! bridge, two guest namespaces on it, and an outside namespace on the
//! host's EIP link (root, `nft` and `ping` required, as on our standard
//! machines and in CI, whose first step installs them).

use super::*;
use krrish_netlink::Netns;

const HOST: &str = "krl-nat-host";
const OUTSIDE: &str = "krl-nat-out";
const GUESTS: [(&str, [u8; 4]); 2] = [
    ("krl-nat-g1", [10, 10, 1, 11]),
    ("krl-nat-g2", [10, 10, 1, 12]),
];
const EIP: [u8; 4] = [203, 0, 113, 1];

/// The namespaces, removed again when the test ends, pass or fail.
struct Namespaces(Vec<&'static str>);
impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Netns::delete(n);
        }
    }
}

fn sh(ns: &str, args: &[&str], stdin: Option<&str>) {
    let mut c = Netns::open(ns).unwrap().command(args[0]);
    c.args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?} in {ns}: {e}"));
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pings(ns: &str, to: [u8; 4]) -> bool {
    let to = Ipv4Addr::from(to).to_string();
    (0..3).any(|_| {
        Netns::open(ns)
            .unwrap()
            .command("ping")
            .args(["-c", "1", "-W", "1", &to])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// The host's conntrack line for pings from `from` to `to`.
fn tracked(from: [u8; 4], to: [u8; 4]) -> String {
    let table = Netns::open(HOST)
        .unwrap()
        .command("cat")
        .arg("/proc/net/nf_conntrack")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let want = format!("src={} dst={} ", Ipv4Addr::from(from), Ipv4Addr::from(to));
    table
        .lines()
        .find(|l| l.contains(" icmp ") && l.contains(&want))
        .unwrap_or_default()
        .to_string()
}

fn make_world() -> Namespaces {
    let all = vec![HOST, OUTSIDE, GUESTS[0].0, GUESTS[1].0];
    for n in &all {
        if Netns::exists(n) {
            Netns::delete(n).unwrap();
        }
        Netns::create(n).unwrap();
    }
    let made = Namespaces(all);
    let bridge = vxnet_bridge(1000);
    sh(
        HOST,
        &["ip", "link", "add", &bridge, "type", "bridge"],
        None,
    );
    sh(
        HOST,
        &["ip", "addr", "add", "10.10.1.1/24", "dev", &bridge],
        None,
    );
    sh(HOST, &["ip", "link", "set", &bridge, "up"], None);
    sh(
        HOST,
        &["ip", "link", "add", "br-vm", "type", "bridge"],
        None,
    );
    sh(
        HOST,
        &["ip", "addr", "add", "10.79.0.10/24", "dev", "br-vm"],
        None,
    );
    sh(
        HOST,
        &["ip", "addr", "add", "203.0.113.1/32", "dev", "br-vm"],
        None,
    );
    sh(HOST, &["ip", "link", "set", "br-vm", "up"], None);
    sh(HOST, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], None);
    let plug = |peer_ns: &str, port: &str, bridge: &str| {
        sh(
            HOST,
            &[
                "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", peer_ns,
            ],
            None,
        );
        sh(
            HOST,
            &["ip", "link", "set", port, "master", bridge, "up"],
            None,
        );
        sh(peer_ns, &["ip", "link", "set", "eth0", "up"], None);
    };
    for (i, (ns, ip)) in GUESTS.iter().enumerate() {
        plug(ns, &format!("g{i}"), &bridge);
        let addr = format!("{}/24", Ipv4Addr::from(*ip));
        sh(ns, &["ip", "addr", "add", &addr, "dev", "eth0"], None);
        sh(
            ns,
            &["ip", "route", "add", "default", "via", "10.10.1.1"],
            None,
        );
    }
    plug(OUTSIDE, "out", "br-vm");
    sh(
        OUTSIDE,
        &["ip", "addr", "add", "10.79.0.20/24", "dev", "eth0"],
        None,
    );
    sh(
        OUTSIDE,
        &["ip", "route", "add", "203.0.113.0/24", "dev", "eth0"],
        None,
    );
    made
}

#[test]
fn routed_guests_get_out_and_reach_a_neighbours_eip_through_the_real_kernel() {
    let _made = make_world();
    let cfg = lab_config();
    let nat = Nat {
        eips: [GuestEip {
            name: krrish_cloud::Name::parse("eip", "e1").unwrap(),
            address: EIP.into(),
            private: GUESTS[0].1.into(),
        }]
        .into(),
        way_out: true,
    };
    sh(HOST, &["nft", "-f", "-"], Some(&nft_script(&cfg, &nat)));

    assert!(
        pings(OUTSIDE, EIP),
        "the outside does not reach the EIP (DNAT)"
    );
    // (guest, destination, the address the reply goes to, what it shows).
    // The outside has no route to the vxnet: only a SNATed packet returns.
    let cases = [
        (
            1,
            [10, 79, 0, 20],
            "10.79.0.10",
            "a routed guest gets out as its host",
        ),
        (
            0,
            [10, 79, 0, 20],
            "203.0.113.1",
            "the EIP's guest leaves as its EIP",
        ),
        (
            1,
            EIP,
            "10.10.1.1",
            "hairpin: a neighbour's EIP on this very host, SNATed to the gateway",
        ),
    ];
    for (guest, to, reply_to, what) in cases {
        let (ns, from) = GUESTS[guest];
        assert!(pings(ns, to), "no answer: {what}");
        let line = tracked(from, to);
        assert!(line.contains(&format!("dst={reply_to} ")), "{what}: {line}");
    }
}
