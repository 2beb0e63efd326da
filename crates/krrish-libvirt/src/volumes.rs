//! A guest's volumes on a real host: each volume is a qcow2 file on the
//! DFS (`<dfs>/volumes/<name>.qcow2`, made with `qemu-img` at its first
//! attach, thin), plugged into the guest as a virtio disk whose serial
//! number names it ([`crate::names::volume_serial`]) — written into the
//! domain at boot, hot-plugged and unplugged while it runs. A volume moves
//! with its VM: after a failover the spare plugs the same file (the lock
//! manager lets only one running guest hold it).

use crate::domain_xml::DiskSpec;
use crate::hypervisor::Hypervisor;
use crate::names::volume_serial;
use krrish_agent::GuestVolume;
use krrish_core::VmId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// Targets volumes take, after the root disk's `vda`.
const TARGETS: &str = "bcdefghijklmnopqrstuvwxyz";

/// One host's plugged volumes.
pub(crate) struct Volumes {
    dfs_dir: PathBuf,
    hv: Arc<Hypervisor>,
    /// Each local guest's volumes as plugged: name → disk.
    made: Mutex<BTreeMap<VmId, BTreeMap<String, DiskSpec>>>,
}

impl Volumes {
    pub fn new(dfs_dir: PathBuf, hv: Arc<Hypervisor>) -> Self {
        Volumes {
            dfs_dir,
            hv,
            made: Mutex::new(BTreeMap::new()),
        }
    }

    fn made(&self) -> std::sync::MutexGuard<'_, BTreeMap<VmId, BTreeMap<String, DiskSpec>>> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The volume's file on the DFS, made (thin) if it is not there yet.
    fn file(&self, v: &GuestVolume) -> Result<PathBuf, String> {
        let name = crate::names::checked("volume", v.name.as_str())?;
        let dir = self.dfs_dir.join("volumes");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("{name}.qcow2"));
        if !path.exists() {
            make_qcow2(&path, &format!("{}G", v.size_gib))?;
        }
        Ok(path)
    }

    fn disk(&self, v: &GuestVolume, target: char) -> Result<DiskSpec, String> {
        Ok(DiskSpec {
            path: self.file(v)?,
            target: format!("vd{target}"),
            serial: Some(volume_serial(v.name.as_str())),
        })
    }

    /// The disks to write into `vm`'s domain at boot (targets vdb, vdc, …).
    pub fn prepare_boot(&self, vms: &[GuestVolume]) -> Result<Vec<DiskSpec>, String> {
        if vms.len() > TARGETS.len() {
            return Err(format!(
                "{} volumes: a guest here takes at most {}",
                vms.len(),
                TARGETS.len()
            ));
        }
        vms.iter()
            .zip(TARGETS.chars())
            .map(|(v, t)| self.disk(v, t))
            .collect()
    }

    /// `vm` runs with `disks` (as [`Self::prepare_boot`] gave them).
    pub fn booted(&self, vm: &VmId, volumes: &[GuestVolume], disks: Vec<DiskSpec>) {
        let plugged = volumes
            .iter()
            .map(|v| v.name.to_string())
            .zip(disks)
            .collect();
        self.made().insert(vm.clone(), plugged);
    }

    /// Makes `vm`'s (running, as `domain`) volumes match `want`.
    pub fn set(&self, vm: &VmId, domain: &str, want: &[GuestVolume]) -> Result<(), String> {
        let mut made = self.made();
        let mut have = made.get(vm).cloned().unwrap_or_default();
        let gone: Vec<String> = have
            .keys()
            .filter(|n| !want.iter().any(|v| v.name.as_str() == n.as_str()))
            .cloned()
            .collect();
        for n in gone {
            let xml = have[&n].to_xml().map_err(|e| e.to_string())?;
            self.hv
                .detach_device(domain, &xml)
                .map_err(|e| e.to_string())?;
            have.remove(&n);
            made.insert(vm.clone(), have.clone());
        }
        for v in want {
            if have.contains_key(v.name.as_str()) {
                continue;
            }
            let used: Vec<char> = have
                .values()
                .filter_map(|d| d.target.chars().nth(2))
                .collect();
            let t = TARGETS
                .chars()
                .find(|c| !used.contains(c))
                .ok_or_else(|| format!("{vm} has every disk slot taken"))?;
            let disk = self.disk(v, t)?;
            let xml = disk.to_xml().map_err(|e| e.to_string())?;
            self.hv
                .attach_device(domain, &xml)
                .map_err(|e| e.to_string())?;
            have.insert(v.name.to_string(), disk);
            made.insert(vm.clone(), have.clone());
        }
        Ok(())
    }

    /// `vm` stopped here (its disks went with its domain).
    pub fn forget(&self, vm: &VmId) {
        self.made().remove(vm);
    }

    pub fn forget_all(&self) {
        self.made().clear();
    }
}

/// An empty qcow2 disk of `size` (`64M`, `2G`), made with qemu-img.
pub(crate) fn make_qcow2(path: &Path, size: &str) -> Result<(), String> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size)
        .output()
        .map_err(|e| format!("qemu-img: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "qemu-img create {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
