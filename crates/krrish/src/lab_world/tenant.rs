//! The tenant's resources in a lab run: the timeline's network and volume
//! calls go to the controller's HTTP API (the agents then plug real NICs,
//! VXLANs, NAT and disks); `nic` is judged by the controller and the
//! guest's own console, `ping` from inside a guest (its command port) or
//! from the outside namespace; `guest_write` and `disk` go through the
//! guest's command port (a volume no guest holds is read from its file on
//! the DFS); `volume` is the controller's word. Consoles, command ports
//! and the DFS are reached through [`super::reach`]: here in the box,
//! through each host's `run` on an inventory.
//!
//! `disk` as of a snapshot reads the qcow2 internal snapshot out of the
//! disk's file on the DFS.
//!
//! What the lab's data plane does not do yet, and so reports NOT RUN: a
//! guest pinging an EIP, and DNS aliases. (Routing between the vxnets of
//! one router is real: `lab/vxnets-of-one-router`.) The lab's outside is the internet and the external network
//! at once: a ping from one expected lost because the EIP is of the other
//! kind cannot be judged, and fails saying so.

use super::*;
use krrish_cloud::network::dataplane::{Source as PingFrom, Target};
use krrish_cloud::storage::DiskRef;
use krrish_cloud::CloudRequest;
use krrish_libvirt::guest::{ping_via, read_via, write_via};
use krrish_libvirt::names::{volume_serial, ROOT_SERIAL};

/// How long a guest has to answer one `ping` on its command port.
const GUEST_REPLY_WAIT: Duration = Duration::from_secs(10);
/// Tries before a ping that should get through is called lost (ARP, a
/// NIC still being configured in the guest).
const PING_TRIES: usize = 3;

/// The HTTP call a network request is: path, and the body of a POST (or
/// `None` for a DELETE). `None` when the lab does not take the request.
pub(super) fn cloud_call(r: &CloudRequest) -> Option<(String, Option<Value>)> {
    use CloudRequest as R;
    let p = |s: &str| crate::client::path_part(s);
    Some(match r {
        R::CreateVxnet { name, network } => {
            let mut b = json!({ "name": name });
            if let Some(n) = network {
                b["network"] = json!(n);
            }
            ("/v1/vxnets".into(), Some(b))
        }
        R::DeleteVxnet { name } => (format!("/v1/vxnets/{}", p(name)), None),
        R::JoinVxnet { vxnet, vm, ip } => {
            let mut b = json!({ "instance": vm });
            if let Some(ip) = ip {
                b["ip"] = json!(ip);
            }
            (format!("/v1/vxnets/{}/join", p(vxnet)), Some(b))
        }
        R::LeaveVxnet { vxnet, vm } => (
            format!("/v1/vxnets/{}/leave", p(vxnet)),
            Some(json!({ "instance": vm })),
        ),
        R::CreateRouter { name } => ("/v1/routers".into(), Some(json!({ "name": name }))),
        R::DeleteRouter { name } => (format!("/v1/routers/{}", p(name)), None),
        R::JoinRouter { router, vxnet } => (
            format!("/v1/routers/{}/join", p(router)),
            Some(json!({ "vxnet": vxnet })),
        ),
        R::LeaveRouter { router, vxnet } => (
            format!("/v1/routers/{}/leave", p(router)),
            Some(json!({ "vxnet": vxnet })),
        ),
        R::AllocateEip { name, kind } => (
            "/v1/eips".into(),
            Some(json!({ "name": name, "kind": kind })),
        ),
        R::ReleaseEip { name } => (format!("/v1/eips/{}", p(name)), None),
        R::AssociateEip { eip, vm } => (
            format!("/v1/eips/{}/associate", p(eip)),
            Some(json!({ "instance": vm })),
        ),
        R::DissociateEip { eip } => (format!("/v1/eips/{}/dissociate", p(eip)), Some(json!({}))),
        R::CreateVolume {
            name,
            size_gib,
            provisioning,
            datastore,
        } => (
            "/v1/volumes".into(),
            Some(json!({
                "name": name,
                "size_gib": size_gib,
                "provisioning": provisioning,
                "datastore": datastore,
            })),
        ),
        R::CreateImage { name, size_gib } => (
            "/v1/images".into(),
            Some(json!({ "name": name, "size_gib": size_gib })),
        ),
        R::DeleteVolume { name } => (format!("/v1/volumes/{}", p(name)), None),
        R::AttachVolume { volume, vm } => (
            format!("/v1/volumes/{}/attach", p(volume)),
            Some(json!({ "instance": vm })),
        ),
        R::DetachVolume { volume, vm } => (
            format!("/v1/volumes/{}/detach", p(volume)),
            Some(json!({ "instance": vm })),
        ),
        R::CreateSnapshot { vm, name } => (
            format!("/v1/instances/{}/snapshots", p(vm)),
            Some(json!({ "name": name })),
        ),
        R::DeleteSnapshot { vm, name } => (
            format!("/v1/instances/{}/snapshots/{}", p(vm), p(name)),
            None,
        ),
        R::RevertSnapshot { vm, name } => (
            format!("/v1/instances/{}/snapshots/{}/revert", p(vm), p(name)),
            Some(json!({})),
        ),
        _ => return None,
    })
}

/// Why the lab cannot judge this ping, if it cannot.
pub(super) fn ping_unsupported(from: &PingFrom, to: &Target) -> Option<String> {
    match (from, to) {
        (PingFrom::Vm(_), Target::Vm(_) | Target::Ip(_) | Target::Eip(_)) => None,
        (PingFrom::Vm(_), Target::Alias(_)) => Some(format!(
            "a guest pinging {to} (the lab's guests resolve no names)"
        )),
        (PingFrom::Internet | PingFrom::External, Target::Eip(_) | Target::Ip(_)) => None,
        (_, _) => Some(format!("a ping from {from} to {to}")),
    }
}

/// How long a guest has to answer a disk read or write.
const GUEST_DISK_WAIT: Duration = Duration::from_secs(10);

impl LabRun<'_> {
    /// The guest a disk is read through, and the disk's serial there;
    /// `Err(volume)`: a volume attached to no VM.
    fn disk_holder(&self, disk: &DiskRef) -> Result<Result<(VmId, String), String>, String> {
        match disk {
            DiskRef::Root(vm) => Ok(Ok((vm.clone(), ROOT_SERIAL.to_string()))),
            DiskRef::Volume(v) => {
                let got = self
                    .get(&format!(
                        "/v1/volumes/{}",
                        crate::client::path_part(v.as_str())
                    ))
                    .map_err(|e| e.to_string())?;
                match got["attached_to"].as_str() {
                    Some(vm) => Ok(Ok((VmId::new(vm), volume_serial(v.as_str())))),
                    None => Ok(Err(v.to_string())),
                }
            }
        }
    }

    /// `vm`'s guest writes one of its disks (found by its serial: the
    /// guest must have it plugged in).
    pub(super) fn guest_write(
        &self,
        vm: &VmId,
        disk: &DiskRef,
        block: u64,
        data: u64,
    ) -> Result<()> {
        let serial = disk_serial(disk);
        let host = self.host_of(vm).map_err(|e| anyhow::anyhow!(e))?;
        write_via(
            |c| self.guest_ask(&host, vm, c, GUEST_DISK_WAIT),
            &serial,
            block,
            data,
        )
        .map_err(|e| anyhow::anyhow!("{vm} on {host}: {e}"))
    }

    /// What `block` of `disk` reads: from inside `reader`'s guest if
    /// given, else from inside the guest holding it, else from its file.
    pub(super) fn check_disk(
        &self,
        disk: &DiskRef,
        reader: Option<&VmId>,
        block: u64,
        data: u64,
    ) -> Result<(), String> {
        let holder = match reader {
            Some(vm) => Ok((vm.clone(), disk_serial(disk))),
            None => self.disk_holder(disk)?,
        };
        let got = match holder {
            Ok((vm, serial)) => {
                let host = self.host_of(&vm)?;
                read_via(
                    |c| self.guest_ask(&host, &vm, c, GUEST_DISK_WAIT),
                    &serial,
                    block,
                )
                .map_err(|e| format!("{vm} on {host}: {e}"))?
            }
            Err(volume) => self.read_volume_file(
                &self
                    .dfs_dir()
                    .join("volumes")
                    .join(format!("{volume}.qcow2")),
                block,
            )?,
        };
        if got == data {
            Ok(())
        } else {
            Err(format!("{disk} block {block} reads {got}, expected {data}"))
        }
    }

    /// What `block` of `disk` reads as of `vm`'s snapshot `name`: the
    /// qcow2 internal snapshot (its tag from the API) copied out of the
    /// disk's file on the DFS — with `-U`, as the running guest's QEMU
    /// holds the file — and read there.
    pub(super) fn check_disk_at_snapshot(
        &self,
        disk: &DiskRef,
        vm: &VmId,
        name: &krrish_cloud::Name,
        block: u64,
        data: u64,
    ) -> Result<(), String> {
        let list = self.snapshots_of(vm)?;
        let Some(tag) = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name.as_str())
            .and_then(|s| s["tag"].as_str())
        else {
            return Err(format!("snapshot {name} of {vm}: the controller has none"));
        };
        let dfs = self.dfs_dir();
        let file = match disk {
            // The newest incarnation's file (a VM launched again under a
            // terminated one's name has a new disk).
            DiskRef::Root(vm) => {
                let listing = self.on_the_dfs(&["ls", "-1", &dfs.join("vms").to_string_lossy()])?;
                let newest = listing
                    .lines()
                    .filter_map(|name| krrish_libvirt::names::root_disk_incarnation(vm, name))
                    .max()
                    .ok_or_else(|| format!("no root disk file of {vm} on the DFS"))?;
                dfs.join("vms")
                    .join(krrish_libvirt::names::root_disk_file(vm, newest))
            }
            DiskRef::Volume(v) => dfs.join("volumes").join(format!("{v}.qcow2")),
        };
        // Beside the disks on the DFS: wherever the read runs, it sees it.
        let copy = dfs.join(format!("snapshot-read-{}.qcow2", std::process::id()));
        let (file, copy_arg) = (file.to_string_lossy(), copy.to_string_lossy());
        let snapshot = format!("snapshot.name={tag}");
        self.on_the_dfs(&[
            "qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", "-l", &snapshot, &file,
            &copy_arg,
        ])
        .map_err(|e| format!("reading snapshot {tag} of {file}: {e}"))?;
        let got = self.read_volume_file(&copy, block);
        // Best effort: a scratch copy, named by this run's process.
        let _ = self.on_the_dfs(&["rm", "-f", &copy_arg]);
        let got = got?;
        if got == data {
            Ok(())
        } else {
            Err(format!(
                "{disk} block {block} reads {got} as of snapshot {name} of {vm}, expected {data}"
            ))
        }
    }

    /// `vm`'s snapshots, as the controller's API lists them.
    fn snapshots_of(&self, vm: &VmId) -> Result<Value, String> {
        self.get(&format!(
            "/v1/instances/{}/snapshots",
            crate::client::path_part(vm.as_str())
        ))
        .map_err(|e| e.to_string())
    }

    pub(super) fn check_snapshot(
        &self,
        vm: &VmId,
        name: &krrish_cloud::Name,
        want: Option<krrish_cloud::storage::SnapshotStatus>,
    ) -> Result<(), String> {
        use krrish_cloud::storage::SnapshotStatus as S;
        let list = self.snapshots_of(vm)?;
        let got = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name.as_str())
            .map(|s| match s["status"].as_str() {
                Some("creating") => Ok(S::Creating),
                Some("available") => Ok(S::Available),
                other => Err(format!("snapshot {name} of {vm}: status {other:?}")),
            })
            .transpose()?;
        krrish_scenario::run::snapshot_is(vm, name, got, want)
    }

    pub(super) fn check_volume(
        &self,
        volume: &krrish_cloud::Name,
        attached_to: Option<&VmId>,
        status: Option<krrish_cloud::storage::VolumeStatus>,
    ) -> Result<(), String> {
        let view = self
            .get(&format!(
                "/v1/volumes/{}",
                crate::client::path_part(volume.as_str())
            ))
            .map_err(|e| e.to_string())?;
        if let Some(want) = status {
            let got = view["status"].as_str().unwrap_or("absent");
            if got != want.as_str() {
                return Err(format!(
                    "volume {volume}: the controller says {got}, expected {}",
                    want.as_str()
                ));
            }
        }
        let got = view["attached_to"].as_str().map(VmId::new);
        if got.as_ref() == attached_to {
            Ok(())
        } else {
            let show = |x: Option<&VmId>| x.map(|v| v.to_string()).unwrap_or("none".into());
            Err(format!(
                "volume {volume}: the controller says attached to {}, expected {}",
                show(got.as_ref()),
                show(attached_to)
            ))
        }
    }

    /// Sends a network request to the controller's API.
    pub(super) fn cloud(&self, r: &CloudRequest) -> Result<()> {
        let (path, body) =
            cloud_call(r).with_context(|| format!("{r} is not in the lab's vocabulary"))?;
        let api = self.api()?;
        match body {
            Some(b) => api.call(&path, &[], Some(b)),
            None => api.delete(&path),
        }
        .map(drop)
        .map_err(|e| anyhow::Error::from(e).context(r.to_string()))
    }

    /// The address a ping to `to` is sent to, as the controller's records
    /// say (a VM's first vxnet address).
    fn address_of(&self, to: &Target) -> Result<std::net::Ipv4Addr, String> {
        match to {
            Target::Ip(ip) => Ok(*ip),
            Target::Vm(vm) => self
                .vxnet_addresses(vm)?
                .into_iter()
                .next()
                .map(|(_, ip)| ip)
                .ok_or_else(|| format!("vm {vm} has no interface")),
            Target::Eip(e) => {
                let v = self
                    .get(&format!(
                        "/v1/eips/{}",
                        crate::client::path_part(e.as_str())
                    ))
                    .map_err(|e| e.to_string())?;
                v["address"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("eip {e}: no address in {v}"))
            }
            Target::Alias(a) => Err(format!("alias {a}: not in the lab's vocabulary")),
        }
    }

    /// A ping from the internet (or external network) expected lost
    /// because it is sent to an associated EIP of the other kind cannot be
    /// judged here: the lab has one outside.
    fn outside_can_judge_lost(
        &self,
        from: &PingFrom,
        addr: std::net::Ipv4Addr,
    ) -> Result<(), String> {
        let kind = match from {
            PingFrom::Internet => "internet",
            PingFrom::External => "external",
            PingFrom::Vm(_) => return Ok(()),
        };
        let eips = self.get("/v1/eips").map_err(|e| e.to_string())?;
        let other = eips.as_array().into_iter().flatten().find(|e| {
            e["address"].as_str() == Some(addr.to_string().as_str())
                && !e["vm"].is_null()
                && e["kind"].as_str() != Some(kind)
        });
        match other {
            Some(e) => Err(format!(
                "ping from {from} to {addr} expected lost because eip {} is an {} EIP: the lab's outside is the internet and the external network at once, so it cannot judge this",
                e["name"], e["kind"]
            )),
            None => Ok(()),
        }
    }

    /// `vm`'s vxnet addresses as the controller says, in vxnet order.
    fn vxnet_addresses(&self, vm: &VmId) -> Result<Vec<(String, std::net::Ipv4Addr)>, String> {
        let list = self.get("/v1/vxnets").map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for x in list.as_array().into_iter().flatten() {
            for m in x["vms"].as_array().into_iter().flatten() {
                if m["vm"] == vm.as_str() {
                    if let Some(ip) = m["ip"].as_str().and_then(|i| i.parse().ok()) {
                        out.push((x["name"].as_str().unwrap_or("?").to_string(), ip));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The host the controller runs `vm` on.
    fn host_of(&self, vm: &VmId) -> Result<HostId, String> {
        let v = self
            .get(&format!("/v1/instances/{vm}"))
            .map_err(|e| e.to_string())?;
        match (v["state"].as_str(), v["host"].as_str()) {
            (Some("running"), Some(h)) => Ok(HostId::new(h)),
            (state, _) => Err(format!("vm {vm} is {} (not running)", state.unwrap_or("?"))),
        }
    }

    pub(super) fn check_nic(
        &self,
        vm: &VmId,
        vxnet: &krrish_cloud::Name,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Result<(), String> {
        let got = self
            .vxnet_addresses(vm)?
            .into_iter()
            .find(|(x, _)| x == vxnet.as_str())
            .map(|(_, a)| a);
        if got != ip {
            let show = |x: Option<std::net::Ipv4Addr>| {
                x.map(|i| i.to_string()).unwrap_or_else(|| "none".into())
            };
            return Err(format!(
                "vm {vm} on vxnet {vxnet}: the controller says {}, expected {}",
                show(got),
                show(ip)
            ));
        }
        // The guest itself configured it (its init prints each NIC).
        if let Some(ip) = ip {
            let host = self.host_of(vm)?;
            let console = self.console_of(&host, vm, "console");
            let text = self.host_file_text(&host, &console);
            let line = format!("krrish-guest nic vm={vm} ");
            let want = format!(" ip={ip}");
            if !text
                .lines()
                .any(|l| l.contains(&line) && l.trim_end().ends_with(&want))
            {
                return Err(format!(
                    "vm {vm} on {host}: the controller gives it {ip} on vxnet {vxnet}, but the guest has no NIC with it (console {})",
                    console.display()
                ));
            }
        }
        Ok(())
    }

    pub(super) fn check_ping(
        &self,
        from: &PingFrom,
        to: &Target,
        reachable: bool,
    ) -> Result<(), String> {
        if let Some(why) = ping_unsupported(from, to) {
            return Err(format!("{why}: not checked in the lab"));
        }
        let addr = self.address_of(to)?;
        if !reachable {
            self.outside_can_judge_lost(from, addr)?;
        }
        let tries = if reachable { PING_TRIES } else { 1 };
        let mut got = false;
        for _ in 0..tries {
            got = match from {
                PingFrom::Vm(src) => {
                    let host = self.host_of(src)?;
                    ping_via(|c| self.guest_ask(&host, src, c, GUEST_REPLY_WAIT), addr)?
                }
                _ => self.ping(addr),
            };
            if got {
                break;
            }
        }
        match (got, reachable) {
            (true, true) | (false, false) => Ok(()),
            (true, false) => Err(format!(
                "ping from {from} to {to} ({addr}) got through, expected it lost"
            )),
            (false, true) => Err(format!(
                "ping from {from} to {to} ({addr}) lost ({tries} tries)"
            )),
        }
    }
}

impl LabRun<'_> {
    /// What block `block` of a volume's file (no guest holds it) starts
    /// with: 20 digits a guest wrote, or 0. Read with `qemu-io` (its hex
    /// dump) where the DFS is.
    fn read_volume_file(&self, file: &Path, block: u64) -> Result<u64, String> {
        const LEN: usize = 20;
        let text = self.on_the_dfs(&[
            "qemu-io",
            "-f",
            "qcow2",
            "-r",
            "-c",
            &format!("read -v {} {LEN}", block * 1_048_576),
            &file.to_string_lossy(),
        ])?;
        if !text.contains("read 20/20 bytes") {
            return Err(format!(
                "qemu-io read of {}: {}",
                file.display(),
                text.trim()
            ));
        }
        Ok(digits_of(&hex_dump_bytes(&text, LEN)))
    }
}

/// The bytes of qemu-io's `read -v` dump (`OFFSET:  hh hh …  ascii`),
/// at most `len`.
fn hex_dump_bytes(dump: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for line in dump.lines() {
        let Some((_, rest)) = line.split_once(':') else {
            continue;
        };
        let want = (len - out.len()).min(16);
        for t in rest.split_whitespace().take(want) {
            match u8::from_str_radix(t, 16) {
                Ok(b) if t.len() == 2 => out.push(b),
                _ => break,
            }
        }
        if out.len() >= len {
            break;
        }
    }
    out
}

/// The number a guest wrote (20 ASCII digits), or 0 for anything else.
fn digits_of(bytes: &[u8]) -> u64 {
    let text: String = bytes
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| *b as char)
        .collect();
    text.parse().unwrap_or(0)
}

/// The serial number a guest knows `disk` by.
fn disk_serial(disk: &DiskRef) -> String {
    match disk {
        DiskRef::Root(_) => ROOT_SERIAL.to_string(),
        DiskRef::Volume(v) => volume_serial(v.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_call_the_lab_takes_has_a_route() {
        let join = CloudRequest::JoinVxnet {
            vxnet: "front".into(),
            vm: "vm-1".into(),
            ip: Some("10.10.1.10".parse().unwrap()),
        };
        let (path, body) = cloud_call(&join).unwrap();
        assert_eq!(path, "/v1/vxnets/front/join");
        assert_eq!(
            body.unwrap(),
            json!({"instance": "vm-1", "ip": "10.10.1.10"})
        );
        let release = CloudRequest::ReleaseEip { name: "e1".into() };
        assert_eq!(cloud_call(&release), Some(("/v1/eips/e1".into(), None)));
        assert!(cloud_call(&CloudRequest::CreateDnsAlias { name: "a".into() }).is_none());
    }

    #[test]
    fn a_qemu_io_dump_reads_back_as_the_number_written() {
        let dump = "00300000:  30 30 30 30 30 30 30 30 30 30 30 30 30 30 30 30  0000000000000000\n\
                    00300010:  30 39 30 30  0900\n\
                    read 20/20 bytes at offset 3145728\n";
        assert_eq!(digits_of(&hex_dump_bytes(dump, 20)), 900);
        let zeros =
            "00400000:  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................\n\
                     00400010:  00 00 00 00  ....\n";
        assert_eq!(digits_of(&hex_dump_bytes(zeros, 20)), 0);
    }

    #[test]
    fn pings_the_lab_cannot_judge_say_why() {
        let vm = |s: &str| VmId::new(s);
        assert!(ping_unsupported(&PingFrom::Vm(vm("a")), &Target::Vm(vm("b"))).is_none());
        let eip = Target::Eip(krrish_cloud::Name::parse("eip", "e1").unwrap());
        assert!(ping_unsupported(&PingFrom::Internet, &eip).is_none());
        assert!(ping_unsupported(&PingFrom::Vm(vm("a")), &eip).is_none());
        let alias = Target::Alias(krrish_cloud::Name::parse("alias", "db").unwrap());
        let why = ping_unsupported(&PingFrom::Vm(vm("a")), &alias).unwrap();
        assert!(why.contains("a guest pinging alias db"), "{why}");
        assert!(ping_unsupported(&PingFrom::External, &Target::Vm(vm("b"))).is_some());
    }
}
