//! Live migration between two libvirt daemons, one per host.
//!
//! The source host's agent drives it (libvirt's "managed direct"
//! migration: this process opens both daemons). The guest keeps its
//! memory, disks (the DFS files every host sees) and address; what names
//! its host changes on the way, in the destination's definition:
//! - the domain's name, `krrish.<from>.<vm>` → `krrish.<to>.<vm>` (the
//!   destination's agent knows its guests by it): libvirt's destination
//!   name parameter (the definition itself must keep the source's name);
//! - its tap, console file and command socket (per host, see
//!   [`crate::names::tap_name`] and the driver's run directory).
//!
//! The destination's definition is the source's migratable XML with those
//! values swapped, by an XML reader and writer (never text search): a
//! value is replaced only where it is a whole attribute value.
//!
//! Only a guest with its root disk and its one NIC on the VM network
//! moves live here: vxnet interfaces and volumes are set up per host by
//! the agents (taps in vxnet bridges, volume records), and nothing hands
//! them over yet — such a guest gets `NotSupported`, and a failback goes
//! home cold instead.

use krrish_core::HostId;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, Writer};
use std::io::Cursor;
use std::path::PathBuf;

/// Another host's libvirt daemon this host may live-migrate guests to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationPeer {
    pub host: HostId,
    /// How this host's processes reach that daemon.
    pub uri: String,
    /// That host's console and command-socket directory.
    pub run_dir: PathBuf,
    /// Where that host's QEMU listens for the guest's memory (the box:
    /// 127.0.0.1; a physical host: its migration network address).
    pub address: String,
}

/// Why a definition cannot move as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationXmlError {
    /// The guest has devices only its host's agent sets up.
    #[error("{0}")]
    NotMovable(String),
    #[error("unreadable domain XML: {0}")]
    Unreadable(String),
}

/// The destination's definition: `source` (the migratable XML of domain
/// `name`) with every attribute value equal to one of `values`' first
/// members replaced by the second.
pub fn destination_xml(
    source: &str,
    name: &str,
    values: &[(String, String)],
) -> Result<String, DestinationXmlError> {
    let bad = |e: &dyn std::fmt::Display| DestinationXmlError::Unreadable(e.to_string());
    let mut reader = Reader::from_str(source);
    let mut writer = Writer::new(Cursor::new(Vec::new()));
    let mut path: Vec<String> = Vec::new();
    let (mut nics, mut disks, mut named) = (0usize, 0usize, false);
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        let out = match event {
            Event::Eof => break,
            Event::Start(e) => {
                let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                count(&tag, &e, &path, &mut nics, &mut disks);
                let swapped = swap_values(&e, values).map_err(|e| bad(&e))?;
                path.push(tag);
                Event::Start(swapped)
            }
            Event::Empty(e) => {
                let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                count(&tag, &e, &path, &mut nics, &mut disks);
                Event::Empty(swap_values(&e, values).map_err(|e| bad(&e))?)
            }
            Event::End(e) => {
                path.pop();
                Event::End(e)
            }
            Event::Text(t) if path == ["domain", "name"] => {
                let text = t.decode().map_err(|e| bad(&e))?;
                if text.trim() != name {
                    return Err(DestinationXmlError::Unreadable(format!(
                        "the definition names {:?}, not {name:?}",
                        text.trim()
                    )));
                }
                named = true;
                Event::Text(t)
            }
            other => other,
        };
        writer.write_event(out).map_err(|e| bad(&e))?;
    }
    if !named {
        return Err(DestinationXmlError::Unreadable(
            "no <name> in the domain's definition".into(),
        ));
    }
    if nics > 1 || disks > 1 {
        return Err(DestinationXmlError::NotMovable(format!(
            "{name} has {nics} network interfaces and {disks} disks: only a guest with its \
             root disk and its VM-network interface moves live (vxnet interfaces and volumes \
             are not handed over between hosts' agents)"
        )));
    }
    String::from_utf8(writer.into_inner().into_inner()).map_err(|e| bad(&e))
}

/// Counts the guest's NICs and disks (devices directly under `<devices>`).
fn count(tag: &str, e: &BytesStart<'_>, path: &[String], nics: &mut usize, disks: &mut usize) {
    if path != ["domain", "devices"] {
        return;
    }
    match tag {
        "interface" => *nics += 1,
        "disk" => {
            let is_disk = e
                .try_get_attribute("device")
                .ok()
                .flatten()
                .is_none_or(|a| a.value.as_ref() == b"disk");
            if is_disk {
                *disks += 1;
            }
        }
        _ => {}
    }
}

/// `e` with each attribute whose whole (unescaped) value is a key of
/// `values` given that key's new value.
fn swap_values(
    e: &BytesStart<'_>,
    values: &[(String, String)],
) -> Result<BytesStart<'static>, quick_xml::Error> {
    let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut out = BytesStart::new(tag);
    for a in e.attributes() {
        let a = a.map_err(quick_xml::Error::from)?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a.unescape_value()?.into_owned();
        let value = values
            .iter()
            .find(|(from, _)| *from == value)
            .map_or(value, |(_, to)| to.clone());
        out.push_attribute((key.as_str(), value.as_str()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain_xml::{DiskSpec, DomainSpec, DomainType, NicSpec};

    fn spec(disks: usize, nics: usize) -> DomainSpec {
        DomainSpec {
            name: "krrish.spare-1.vm-1".into(),
            domain_type: DomainType::Qemu,
            memory_mib: 128,
            vcpus: 1,
            kernel: "/lab/vmlinuz".into(),
            initrd: "/lab/initrd.gz".into(),
            cmdline: "console=ttyS0 krrish.vm=vm-1".into(),
            disks: (0..disks)
                .map(|i| DiskSpec {
                    path: format!("/dfs/vms/vm-1.{i}.qcow2").into(),
                    target: format!("vd{}", (b'a' + i as u8) as char),
                    serial: None,
                })
                .collect(),
            nics: (0..nics)
                .map(|i| NicSpec {
                    tap: format!("kt-aaaaaaaaaa0{i}"),
                    mac: format!("52:54:00:00:00:0{i}"),
                })
                .collect(),
            console_log: "/run/spare-1/vm-1.console".into(),
            command_socket: Some("/run/spare-1/vm-1.cmd".into()),
        }
    }

    fn swaps() -> Vec<(String, String)> {
        [
            ("kt-aaaaaaaaaa00", "kt-bbbbbbbbbbbb"),
            ("/run/spare-1/vm-1.console", "/run/hv-01/vm-1.console"),
            ("/run/spare-1/vm-1.cmd", "/run/hv-01/vm-1.cmd"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .to_vec()
    }

    #[test]
    fn the_destination_gets_its_own_name_tap_and_files_and_nothing_else_changes() {
        let xml = spec(1, 1).to_xml().unwrap();
        let out = destination_xml(&xml, "krrish.spare-1.vm-1", &swaps()).unwrap();
        for want in [
            "<name>krrish.spare-1.vm-1</name>",
            "dev=\"kt-bbbbbbbbbbbb\"",
            "path=\"/run/hv-01/vm-1.console\"",
            "path=\"/run/hv-01/vm-1.cmd\"",
            "file=\"/dfs/vms/vm-1.0.qcow2\"",
            "<kernel>/lab/vmlinuz</kernel>",
            "<cmdline>console=ttyS0 krrish.vm=vm-1</cmdline>",
            "address=\"52:54:00:00:00:00\"",
        ] {
            assert!(out.contains(want), "missing {want} in {out}");
        }
        for gone in ["/run/spare-1", "kt-aaaaaaaaaa00"] {
            assert!(!out.contains(gone), "{gone} left in {out}");
        }
    }

    #[test]
    fn a_value_is_swapped_only_where_it_is_a_whole_attribute() {
        // The old console path inside the kernel command line is text,
        // not an attribute: it stays.
        let mut s = spec(1, 1);
        s.cmdline = "log=/run/spare-1/vm-1.console".into();
        let out = destination_xml(&s.to_xml().unwrap(), "krrish.spare-1.vm-1", &swaps()).unwrap();
        assert!(
            out.contains("<cmdline>log=/run/spare-1/vm-1.console</cmdline>"),
            "{out}"
        );
    }

    #[test]
    fn a_guest_with_vxnet_interfaces_or_volumes_is_not_movable() {
        for (disks, nics) in [(2, 1), (1, 2)] {
            let xml = spec(disks, nics).to_xml().unwrap();
            let e = destination_xml(&xml, "krrish.spare-1.vm-1", &swaps()).unwrap_err();
            assert!(
                matches!(&e, DestinationXmlError::NotMovable(m) if m.contains("moves live")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn a_definition_of_another_domain_is_refused() {
        let xml = spec(1, 1).to_xml().unwrap();
        let e = destination_xml(&xml, "krrish.spare-1.vm-2", &swaps()).unwrap_err();
        assert!(matches!(e, DestinationXmlError::Unreadable(_)), "{e:?}");
    }
}
