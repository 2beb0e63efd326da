//! Domain XML, written with quick-xml's writer: every name, path and
//! command-line value is escaped by the library, so nothing a user typed
//! can add an element or attribute. (Names are also checked, see
//! [`crate::names`].)

use quick_xml::events::BytesText;
use quick_xml::Writer;
use std::io::{self, Cursor};
use std::path::PathBuf;

/// `kvm` where hardware acceleration works, `qemu` (TCG, software
/// emulation) where it does not — decided by a probe, not assumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainType {
    Kvm,
    Qemu,
}

impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Kvm => "kvm",
            DomainType::Qemu => "qemu",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kvm" => Some(DomainType::Kvm),
            "qemu" | "tcg" => Some(DomainType::Qemu),
            _ => None,
        }
    }
}

/// A disk image attached as a virtio disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    /// `vda`, `vdb`, …
    pub target: String,
    /// What the guest reads as the disk's serial number.
    pub serial: Option<String>,
}

fn write_disk<W: io::Write>(w: &mut Writer<W>, d: &DiskSpec) -> io::Result<()> {
    w.create_element("disk")
        .with_attribute(("type", "file"))
        .with_attribute(("device", "disk"))
        .write_inner_content(|w| {
            w.create_element("driver")
                .with_attribute(("name", "qemu"))
                .with_attribute(("type", "qcow2"))
                .write_empty()?;
            w.create_element("source")
                .with_attribute(("file", path_str(&d.path)?))
                .write_empty()?;
            w.create_element("target")
                .with_attribute(("dev", d.target.as_str()))
                .with_attribute(("bus", "virtio"))
                .write_empty()?;
            if let Some(s) = &d.serial {
                w.create_element("serial")
                    .write_text_content(BytesText::new(s))?;
            }
            Ok(())
        })?;
    Ok(())
}

/// One element alone (a device to plug into or out of a running domain).
fn fragment(
    write: impl FnOnce(&mut Writer<Cursor<Vec<u8>>>) -> io::Result<()>,
) -> io::Result<String> {
    let mut w = Writer::new(Cursor::new(Vec::new()));
    write(&mut w)?;
    String::from_utf8(w.into_inner().into_inner())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl DiskSpec {
    /// The `<disk>` element alone, to plug into or out of a running domain.
    pub fn to_xml(&self) -> io::Result<String> {
        fragment(|w| write_disk(w, self))
    }
}

/// A NIC on a tap device libvirt creates (`type='ethernet'`); the driver
/// then moves the tap into the host's namespace and bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicSpec {
    pub tap: String,
    pub mac: String,
}

/// Everything the domain XML says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSpec {
    pub name: String,
    pub domain_type: DomainType,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub disks: Vec<DiskSpec>,
    pub nics: Vec<NicSpec>,
    /// The serial console goes to this file (the guest's "up" line).
    pub console_log: PathBuf,
    /// A second serial port on this Unix socket: the guest answers
    /// commands there (`ping ADDR`), so checks can act from inside it.
    pub command_socket: Option<PathBuf>,
}

fn write_interface<W: io::Write>(w: &mut Writer<W>, n: &NicSpec) -> io::Result<()> {
    w.create_element("interface")
        .with_attribute(("type", "ethernet"))
        .write_inner_content(|w| {
            w.create_element("target")
                .with_attribute(("dev", n.tap.as_str()))
                .write_empty()?;
            w.create_element("mac")
                .with_attribute(("address", n.mac.as_str()))
                .write_empty()?;
            w.create_element("model")
                .with_attribute(("type", "virtio"))
                .write_empty()?;
            Ok(())
        })?;
    Ok(())
}

impl NicSpec {
    /// The `<interface>` element alone, to plug into or out of a running
    /// domain.
    pub fn to_xml(&self) -> io::Result<String> {
        fragment(|w| write_interface(w, self))
    }
}

fn path_str(p: &std::path::Path) -> io::Result<&str> {
    p.to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path is not UTF-8"))
}

impl DomainSpec {
    pub fn to_xml(&self) -> io::Result<String> {
        let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
        let memory = self.memory_mib.to_string();
        let vcpus = self.vcpus.to_string();
        w.create_element("domain")
            .with_attribute(("type", self.domain_type.as_str()))
            .write_inner_content(|w| {
                w.create_element("name")
                    .write_text_content(BytesText::new(&self.name))?;
                w.create_element("memory")
                    .with_attribute(("unit", "MiB"))
                    .write_text_content(BytesText::new(&memory))?;
                w.create_element("vcpu")
                    .write_text_content(BytesText::new(&vcpus))?;
                w.create_element("os").write_inner_content(|w| {
                    w.create_element("type")
                        .with_attribute(("arch", "x86_64"))
                        .with_attribute(("machine", "pc"))
                        .write_text_content(BytesText::new("hvm"))?;
                    w.create_element("kernel")
                        .write_text_content(BytesText::new(path_str(&self.kernel)?))?;
                    w.create_element("initrd")
                        .write_text_content(BytesText::new(path_str(&self.initrd)?))?;
                    w.create_element("cmdline")
                        .write_text_content(BytesText::new(&self.cmdline))?;
                    Ok(())
                })?;
                // ACPI: the PCI bus takes NICs plugged into a running
                // guest (a vxnet joined) only with it.
                w.create_element("features").write_inner_content(|w| {
                    w.create_element("acpi").write_empty()?;
                    w.create_element("apic").write_empty()?;
                    Ok(())
                })?;
                w.create_element("on_crash")
                    .write_text_content(BytesText::new("destroy"))?;
                w.create_element("devices").write_inner_content(|w| {
                    for d in &self.disks {
                        write_disk(w, d)?;
                    }
                    for n in &self.nics {
                        write_interface(w, n)?;
                    }
                    let log = path_str(&self.console_log)?;
                    w.create_element("serial")
                        .with_attribute(("type", "file"))
                        .write_inner_content(|w| {
                            w.create_element("source")
                                .with_attribute(("path", log))
                                .write_empty()?;
                            w.create_element("target")
                                .with_attribute(("port", "0"))
                                .write_empty()?;
                            Ok(())
                        })?;
                    if let Some(sock) = &self.command_socket {
                        w.create_element("serial")
                            .with_attribute(("type", "unix"))
                            .write_inner_content(|w| {
                                w.create_element("source")
                                    .with_attribute(("mode", "bind"))
                                    .with_attribute(("path", path_str(sock)?))
                                    .write_empty()?;
                                w.create_element("target")
                                    .with_attribute(("port", "1"))
                                    .write_empty()?;
                                Ok(())
                            })?;
                    }
                    Ok(())
                })?;
                Ok(())
            })?;
        String::from_utf8(w.into_inner().into_inner())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, cmdline: &str) -> DomainSpec {
        DomainSpec {
            name: name.into(),
            domain_type: DomainType::Qemu,
            memory_mib: 128,
            vcpus: 1,
            kernel: "/lab/vmlinuz".into(),
            initrd: "/lab/initrd.gz".into(),
            cmdline: cmdline.into(),
            disks: vec![DiskSpec {
                path: "/dfs/vms/vm-1.qcow2".into(),
                target: "vda".into(),
                serial: Some("root".into()),
            }],
            nics: vec![NicSpec {
                tap: "kt-0123456789ab".into(),
                mac: "52:54:00:00:00:01".into(),
            }],
            console_log: "/lab/run/vm-1.console".into(),
            command_socket: Some("/lab/run/vm-1.cmd".into()),
        }
    }

    #[test]
    fn markup_in_values_stays_text() {
        let xml = spec("a</name><devices>", "x' y=\"<z>\" & w")
            .to_xml()
            .unwrap();
        assert!(
            xml.contains("<name>a&lt;/name&gt;&lt;devices&gt;</name>"),
            "{xml}"
        );
        assert!(!xml.contains("<z>"), "{xml}");
        assert_eq!(xml.matches("<devices>").count(), 1, "{xml}");
    }

    #[test]
    fn the_domain_says_what_the_spec_says() {
        let xml = spec("krrish.hv-01.vm-1", "console=ttyS0").to_xml().unwrap();
        for want in [
            "<domain type=\"qemu\">",
            "<memory unit=\"MiB\">128</memory>",
            "<kernel>/lab/vmlinuz</kernel>",
            "<source file=\"/dfs/vms/vm-1.qcow2\"/>",
            "<serial>root</serial>",
            "<target dev=\"kt-0123456789ab\"/>",
            "<source path=\"/lab/run/vm-1.console\"/>",
            "<serial type=\"unix\">",
            "<source mode=\"bind\" path=\"/lab/run/vm-1.cmd\"/>",
            "<target port=\"1\"/>",
        ] {
            assert!(xml.contains(want), "missing {want} in {xml}");
        }
    }
}
