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
    // One segment per network per rack of HOSTS_PER_RACK hosts (the IP
    // policy gives a /24 fewer than 200 hosts), the spares a rack of their own.
    const HOSTS_PER_RACK: usize = 100;
    let mut racks: std::collections::BTreeMap<usize, [Segment; 4]> = Default::default();
    let mut make = |name: String, zone: Zone, rack: usize| {
        let nets = racks.entry(rack).or_insert_with(|| {
            let r = u8::try_from(rack).expect("at most 255 racks in a demo cluster");
            [0u8, 1, 2, 3].map(|net| Segment::new(Ipv4Addr::new(10, net, r, 0)))
        });
        let [uplink, vm_network, storage, ipmi] = nets
            .each_mut()
            .map(|s| s.allocate(zone).expect("a demo rack fits a /24"));
        HostSpec {
            id: HostId::new(name),
            zone,
            capacity: Resources::new(32, 128 * 1024, 2_000),
            cpu_model: "x86-64-v3".into(),
            memory_overcommit_percent: krrish_core::model::MEMORY_OVERCOMMIT_OFF,
            dvs: "dvs0".into(),
            maintenance: false,
            live_migration: true,
            rack: format!("rack-{}", rack + 1),
            addresses: HostAddresses {
                uplink,
                vm_network,
                storage,
                ipmi,
            },
        }
    };
    let mut out: Vec<HostSpec> = (1..=hosts)
        .map(|i| make(format!("hv-{i:02}"), Zone::Ecs, (i - 1) / HOSTS_PER_RACK))
        .collect();
    let spare_rack = hosts.div_ceil(HOSTS_PER_RACK);
    out.extend((1..=spares).map(|i| make(format!("spare-{i}"), Zone::Spare, spare_rack)));
    let vms = (1..=hosts)
        .flat_map(|h| {
            (1..=vms_per_host).map(move |v| VmSpec {
                id: VmId::new(format!("vm-{h:02}-{v:02}")),
                home: HostId::new(format!("hv-{h:02}")),
                demand: Resources::new(2, 8 * 1024, 40),
                ha: HaPolicy::Restart,
                priority: 0,
                passthrough_devices: Vec::new(),
                failback: true,
                restart_delay_ms: 0,
            })
        })
        .collect();
    (out, vms)
}
