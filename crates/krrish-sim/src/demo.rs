//! Generated clusters for tests and benchmarks (scenario files describe
//! their own clusters; this is for code that needs one quickly).

use krrish_core::ipam::Segment;
use krrish_core::model::HostAddresses;
use krrish_core::{HaPolicy, HostId, HostSpec, Resources, VmId, VmSpec, Zone};
use std::net::Ipv4Addr;

/// `hosts` ECS hosts `hv-01…` (32 vCPU, 128 GiB), `spares` spares
/// `spare-1…` of the same size, and `vms_per_host` VMs (2 vCPU, 8 GiB,
/// HA restart) on each ECS host.
pub fn cluster(hosts: usize, spares: usize, vms_per_host: usize) -> (Vec<HostSpec>, Vec<VmSpec>) {
    let mut nets = [
        Segment::new(Ipv4Addr::new(10, 0, 0, 0)),
        Segment::new(Ipv4Addr::new(10, 1, 0, 0)),
        Segment::new(Ipv4Addr::new(10, 2, 0, 0)),
        Segment::new(Ipv4Addr::new(10, 3, 0, 0)),
    ];
    let mut make = |name: String, zone: Zone| {
        let mut ip = || {
            nets.each_mut()
                .map(|s| s.allocate(zone).expect("demo cluster fits a /24"))
        };
        let [uplink, vm_network, storage, ipmi] = ip();
        HostSpec {
            id: HostId::new(name),
            zone,
            capacity: Resources::new(32, 128 * 1024, 2_000),
            cpu_model: "x86-64-v3".into(),
            memory_overcommit: false,
            dvs: "dvs0".into(),
            maintenance: false,
            rack: "rack-1".into(),
            addresses: HostAddresses {
                uplink,
                vm_network,
                storage,
                ipmi,
            },
        }
    };
    let mut out: Vec<HostSpec> = (1..=hosts)
        .map(|i| make(format!("hv-{i:02}"), Zone::Ecs))
        .collect();
    out.extend((1..=spares).map(|i| make(format!("spare-{i}"), Zone::Spare)));
    let vms = (1..=hosts)
        .flat_map(|h| {
            (1..=vms_per_host).map(move |v| VmSpec {
                id: VmId::new(format!("vm-{h:02}-{v:02}")),
                home: HostId::new(format!("hv-{h:02}")),
                demand: Resources::new(2, 8 * 1024, 40),
                ha: HaPolicy::Restart,
                priority: 0,
                passthrough_devices: Vec::new(),
            })
        })
        .collect();
    (out, vms)
}
