//! The libvirt calls themselves against libvirt's built-in test driver
//! (`test:///default`: no daemon, no guest), as part of every test run.

use krrish_libvirt::domain_xml::{DiskSpec, NicSpec};
use krrish_libvirt::{DomainSpec, DomainType, Hypervisor};

fn spec(name: &str) -> DomainSpec {
    DomainSpec {
        name: name.into(),
        domain_type: DomainType::Qemu,
        memory_mib: 128,
        vcpus: 1,
        kernel: "/nonexistent/vmlinuz".into(),
        initrd: "/nonexistent/initrd.gz".into(),
        cmdline: "console=ttyS0".into(),
        disks: vec![DiskSpec {
            path: "/nonexistent/disk.qcow2".into(),
            target: "vda".into(),
            serial: None,
        }],
        nics: vec![NicSpec {
            tap: "kt-000000000001".into(),
            mac: "52:54:00:00:00:01".into(),
        }],
        console_log: "/nonexistent/console".into(),
        command_socket: None,
    }
}

/// The test driver cannot hot-plug (the lab tests plug into real
/// guests): its refusal comes back typed, naming the call and the domain.
#[test]
fn a_refused_plug_names_the_call_and_the_domain() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let name = "krrish.hv-01.plug";
    let _ = hv.destroy(name);
    hv.start(name, &spec(name).to_xml().unwrap()).unwrap();
    let nic = NicSpec {
        tap: "kn-000000000001".into(),
        mac: "52:4b:0a:0a:01:0a".into(),
    };
    let xml = nic.to_xml().unwrap();
    assert!(xml.starts_with("<interface type=\"ethernet\">"), "{xml}");
    let refused = hv.attach_device(name, &xml).unwrap_err();
    assert_eq!((refused.op, refused.domain.as_str()), ("attach", name));
    assert!(refused.message.contains("not supported"), "{refused}");
    let err = hv.attach_device("krrish.hv-01.none", &xml).unwrap_err();
    assert!(err.to_string().contains("no such domain"), "{err}");
    hv.destroy(name).unwrap();
    // Unplugging from a domain that is gone has nothing left to do.
    hv.detach_device(name, &xml).unwrap();
}

#[test]
fn transient_domains_start_list_and_vanish_on_destroy() {
    // The test driver is one hypervisor per process, shared by the tests
    // running beside this one: only this test's domain is judged (another
    // test's came and went in CI between the two lists).
    let hv = Hypervisor::open("test:///default").unwrap();
    let mine = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| n.starts_with("krrish.hv-01.vm-"))
            .collect()
    };
    assert_eq!(mine(hv.active_names().unwrap()), Vec::<String>::new());
    let xml = spec("krrish.hv-01.vm-1").to_xml().unwrap();
    hv.start("krrish.hv-01.vm-1", &xml).unwrap();
    assert!(hv.is_active("krrish.hv-01.vm-1").unwrap());
    assert_eq!(
        mine(hv.active_names().unwrap()),
        vec!["krrish.hv-01.vm-1".to_string()]
    );
    // Starting the same name twice is refused by libvirt, not doubled.
    let err = hv.start("krrish.hv-01.vm-1", &xml).unwrap_err();
    assert_eq!(err.op, "start");
    assert!(hv.destroy("krrish.hv-01.vm-1").unwrap());
    assert!(!hv.is_active("krrish.hv-01.vm-1").unwrap());
    assert!(!hv.destroy("krrish.hv-01.vm-1").unwrap(), "destroyed twice");
    assert_eq!(mine(hv.active_names().unwrap()), Vec::<String>::new());
}

#[test]
fn persistent_domains_are_undefined_by_destroy() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let xml = spec("krrish.hv-02.vm-9").to_xml().unwrap();
    hv.define_and_start("krrish.hv-02.vm-9", &xml).unwrap();
    assert!(hv.is_active("krrish.hv-02.vm-9").unwrap());
    assert!(hv.destroy("krrish.hv-02.vm-9").unwrap());
    // Undefined as well: a fresh define under the name works.
    hv.define_and_start("krrish.hv-02.vm-9", &xml).unwrap();
    assert!(hv.destroy("krrish.hv-02.vm-9").unwrap());
}

#[test]
fn a_bad_uri_is_a_typed_error_naming_it() {
    let err = Hypervisor::open("nosuchdriver:///x").err().expect("opened");
    assert_eq!(err.op, "connect");
    assert_eq!(err.domain, "nosuchdriver:///x");
}
