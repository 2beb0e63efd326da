//! [`LibvirtDriver`]: the agent's driver on a real host. A VM boots from
//! its DFS copy (`<dfs>/vms/<vm>.qcow2`, made empty on first boot) as a
//! transient domain `krrish.<host>.<vm>`; its tap goes into the host's
//! namespace and bridge (a boot plugs it, and the status watch plugs the
//! tap of a copy arriving by live migration as the copy starts); "up" is
//! the guest's own marker on its console.
//! Bond health is read from the real links' carrier.
//!
//! The host's DFS lease is renewed with the lease service (`krrish dfs`)
//! over the host's own network, so a cut storage network stops renewals
//! as it would on real hardware.
//!
//! Live migration goes to the hosts named in `migration_peers` (each
//! with a libvirt daemon of its own; see [`crate::migration`]); to any
//! other host, and for guests with vxnet interfaces or volumes, it
//! answers `NotSupported` with the reason, and the core moves the VM cold.

use crate::disk_ops;
use crate::domain_xml::{DiskSpec, DomainSpec, DomainType, NicSpec};
use crate::guest::{cmdline, console_len, wait_up, GuestImage};
use crate::hypervisor::Hypervisor;
use crate::migration::{destination_xml, DestinationXmlError, MigrationPeer};
use crate::names::{domain_name, mac_of, stable_hash, tap_name, vm_of_domain, ROOT_SERIAL};
use crate::status::{StatusSource, StatusWatch};
use crate::tenant::{plug_tap, Tenant, TenantConfig};
use crate::volumes::{make_qcow2, Volumes};
use krrish_agent::{Driver, DriverError, GuestConfig, GuestNetwork, HostStatus};
use krrish_core::ha::BootReason;
use krrish_core::{HostId, VmId, VmSpec};
use krrish_netlink::Netns;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One lab (or physical) host as its agent sees it.
#[derive(Clone, Debug)]
pub struct LabHost {
    pub host: HostId,
    /// `qemu:///system`, or `test:///default` for quick checks.
    pub uri: String,
    /// The host's network namespace; `None` on a physical host.
    pub netns: Option<String>,
    /// The bridge guests' taps join.
    pub vm_bridge: String,
    /// Member links in bond order: bond0 (management), bond1 (VM
    /// network), bond2 (storage).
    pub bond_members: [[String; 2]; 3],
    pub guest: GuestImage,
    pub domain_type: DomainType,
    /// The DFS stand-in every host sees: `vms/`.
    pub dfs_dir: PathBuf,
    /// The DFS's lease service, `host:port`.
    pub lease_service: String,
    /// Each lease call gives up after this.
    pub lease_timeout: Duration,
    /// The lease the agent assumes; asked for at every renewal.
    pub lease_duration_ms: u64,
    /// This host's consoles.
    pub run_dir: PathBuf,
    /// The flat VM network: guests get an address derived from their id,
    /// the same on every host (so a VM keeps it across failover).
    pub vm_network: (Ipv4Addr, u8),
    /// Lab guests get at most this much memory, whatever the VM asks for.
    pub guest_memory_cap_mib: u64,
    pub boot_timeout: Duration,
    /// vxnets and EIPs; `None`: this host cannot give guests interfaces
    /// on vxnets (a VM that has some is refused, with the reason).
    pub tenant: Option<TenantConfig>,
    /// Hosts whose own libvirt daemon takes guests live from this one.
    pub migration_peers: Vec<MigrationPeer>,
}

/// Longest a live migration may copy before it is cancelled (a TCG guest
/// of 128 MiB moves in 1–3 s on the box).
const MIGRATION_MAX: Duration = Duration::from_secs(120);

/// A VM's address on the flat network: network + 2 + hash mod (size - 4),
/// so never the network, the .1 gateway-style address or the broadcast.
pub fn vm_address(network: (Ipv4Addr, u8), vm: &VmId) -> Ipv4Addr {
    let (net, prefix) = network;
    let size = 1u64 << (32 - u32::from(prefix.min(30)));
    let host_part = 2 + stable_hash(&[vm.as_str()]) % (size - 4);
    Ipv4Addr::from(u32::from(net) + host_part as u32)
}

/// What a guest is booted again from (a revert restarts it): all of its
/// [`VmSpec`] that reaches the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GuestShape {
    id: VmId,
    memory_mib: u64,
}

pub struct LibvirtDriver {
    cfg: LabHost,
    hv: Arc<Hypervisor>,
    netns: Netns,
    /// Where libvirtd makes guests' taps: its own namespace.
    tap_source: Netns,
    boot_id: u64,
    lease: krrish_dfs::LeaseClient,
    status: StatusWatch,
    tenant: Arc<Tenant>,
    volumes: Arc<Volumes>,
    /// How each guest running here was booted: a revert boots it again.
    specs: std::sync::Mutex<std::collections::BTreeMap<VmId, GuestShape>>,
    /// The latest lease grant received (its number) and when: the next
    /// renewal's power-on list, read after it, names it.
    last_grant: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
}

/// libvirtd's pid file (the daemon started with `-d`).
const LIBVIRTD_PID_FILE: &str = "/run/libvirtd.pid";

/// The namespace the local libvirtd runs in (and makes taps in); this
/// process's own when libvirtd's cannot be found.
fn libvirtd_netns() -> Netns {
    std::fs::read_to_string(LIBVIRTD_PID_FILE)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .and_then(|pid| Netns::of_process(pid).ok())
        .unwrap_or_else(Netns::current)
}

fn failed(e: impl std::fmt::Display) -> DriverError {
    DriverError::Failed(e.to_string())
}

impl LibvirtDriver {
    /// Connects to libvirt and checks the guest image and namespace exist.
    pub fn new(cfg: LabHost, boot_id: u64) -> Result<Self, DriverError> {
        if let Some(p) = cfg.guest.missing() {
            return Err(DriverError::Unavailable(format!(
                "guest image {} is missing (run `cargo xtask lab up`)",
                p.display()
            )));
        }
        let netns = match &cfg.netns {
            Some(n) => Netns::open(n).map_err(|e| DriverError::Unavailable(e.to_string()))?,
            None => Netns::current(),
        };
        let hv = Hypervisor::open(&cfg.uri).map_err(|e| DriverError::Unavailable(e.to_string()))?;
        for d in [cfg.dfs_dir.join("vms"), cfg.run_dir.clone()] {
            std::fs::create_dir_all(&d)
                .map_err(|e| DriverError::Unavailable(format!("{}: {e}", d.display())))?;
        }
        let lease = krrish_dfs::LeaseClient::new(&cfg.lease_service, cfg.lease_timeout);
        if let Some(t) = &cfg.tenant {
            t.check().map_err(DriverError::Unavailable)?;
        }
        let hv = Arc::new(hv);
        let tap_source = libvirtd_netns();
        let tenant = Arc::new(Tenant::new(
            cfg.tenant.clone(),
            cfg.host.clone(),
            netns.clone(),
            tap_source.clone(),
            hv.clone(),
        ));
        let volumes = Arc::new(Volumes::new(cfg.dfs_dir.clone(), hv.clone()));
        let status = StatusWatch::start(StatusSource {
            host: cfg.host.clone(),
            hv: hv.clone(),
            netns: netns.clone(),
            bond_members: cfg.bond_members.clone(),
            tap_source: tap_source.clone(),
            vm_bridge: cfg.vm_bridge.clone(),
        });
        Ok(LibvirtDriver {
            lease,
            status,
            cfg,
            hv,
            netns,
            tap_source,
            boot_id,
            tenant,
            volumes,
            specs: Default::default(),
            last_grant: Default::default(),
        })
    }

    pub fn config(&self) -> &LabHost {
        &self.cfg
    }

    fn console(&self, vm: &VmId) -> PathBuf {
        self.cfg.run_dir.join(format!("{vm}.console"))
    }

    /// The guest's command port (see [`crate::guest`]).
    pub fn command_socket(&self, vm: &VmId) -> PathBuf {
        self.cfg.run_dir.join(format!("{vm}.cmd"))
    }

    /// The VM's root disk file: one per incarnation, so a VM launched
    /// again under a terminated one's name never boots its old disk.
    fn dfs_disk(&self, vm: &VmId, guest: &GuestConfig) -> PathBuf {
        let file = crate::names::root_disk_file(vm, guest.root_disk);
        self.cfg.dfs_dir.join("vms").join(file)
    }

    fn volume_dir(&self) -> PathBuf {
        self.cfg.dfs_dir.join("volumes")
    }

    fn specs(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<VmId, GuestShape>> {
        self.specs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A libvirt call off the agent's thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Hypervisor) -> Result<T, crate::LibvirtError> + Send + 'static,
    ) -> Result<T, DriverError> {
        let hv = self.hv.clone();
        tokio::task::spawn_blocking(move || f(&hv))
            .await
            .map_err(|e| DriverError::Unavailable(format!("libvirt call panicked: {e}")))?
            .map_err(failed)
    }

    /// After a guest changed (or failed to): waits for a status reading
    /// that saw it, so the next heartbeat is not older than this answer.
    async fn changed<T>(&self, r: Result<T, DriverError>) -> Result<T, DriverError> {
        let watch = self.status.handle();
        let _ = tokio::task::spawn_blocking(move || watch.refresh()).await;
        r
    }

    /// Plugs the tap libvirt made (in libvirtd's namespace, the machine's
    /// initial one — the agent itself may run inside the host's) into the
    /// host's namespace and bridge.
    fn plug_tap(&self, tap: &str) -> Result<(), DriverError> {
        plug_tap(&self.tap_source, &self.netns, tap, &self.cfg.vm_bridge).map_err(failed)
    }

    /// Tenant-network work off the agent's thread (netlink, nft, libvirt).
    async fn tenant<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tenant) -> Result<T, String> + Send + 'static,
    ) -> Result<T, DriverError> {
        let t = self.tenant.clone();
        tokio::task::spawn_blocking(move || f(&t))
            .await
            .map_err(|e| DriverError::Unavailable(format!("tenant network call panicked: {e}")))?
            .map_err(DriverError::Failed)
    }
}

/// What the driver's calls do; each is followed by a fresh status
/// reading (see `changed`).
impl LibvirtDriver {
    async fn boot(&self, vm: &GuestShape, guest: &GuestConfig) -> Result<(), DriverError> {
        let network: &GuestNetwork = &guest.network;
        let name = domain_name(&self.cfg.host, &vm.id).map_err(DriverError::Failed)?;
        let n = name.clone();
        let (active, runs) = self
            .blocking(move |hv| Ok((hv.is_active(&n)?, hv.running_names()?.contains(&n))))
            .await?;
        if runs {
            return Ok(());
        }
        if active {
            // A live migration's incoming copy left here (its source
            // died mid-copy): paused, no guest in it; it goes, and the
            // VM boots as asked.
            let n = name.clone();
            self.blocking(move |hv| hv.destroy(&n)).await?;
        }
        let disk = self.dfs_disk(&vm.id, guest);
        if !disk.exists() {
            let d = disk.clone();
            tokio::task::spawn_blocking(move || {
                make_qcow2(&d, "64M")?;
                disk_ops::reset_marker(&d)
            })
            .await
            .map_err(failed)?
            .map_err(DriverError::Failed)?;
        }
        let (vols, want) = (self.volumes.clone(), guest.volumes.clone());
        let volume_disks = tokio::task::spawn_blocking(move || vols.prepare_boot(&want))
            .await
            .map_err(failed)?
            .map_err(DriverError::Failed)?;
        // Snapshot work left on these disks, while no guest holds them.
        let (root, dir, ops) = (disk.clone(), self.volume_dir(), guest.disk_ops.clone());
        tokio::task::spawn_blocking(move || disk_ops::apply_offline(&root, &dir, &ops))
            .await
            .map_err(failed)?
            .map_err(DriverError::Failed)?;
        let ip = vm_address(self.cfg.vm_network, &vm.id);
        let tap = tap_name(&self.cfg.host, &vm.id);
        let console = self.console(&vm.id);
        let command_socket = self.command_socket(&vm.id);
        let (id, net) = (vm.id.clone(), network.clone());
        let vxnet_nics = self.tenant(move |t| t.prepare_boot(&id, &net)).await?;
        let mut nics = vec![NicSpec {
            tap: tap.clone(),
            mac: mac_of(&vm.id),
        }];
        nics.extend(vxnet_nics.iter().map(|n| n.spec.clone()));
        let spec = DomainSpec {
            name: name.clone(),
            domain_type: self.cfg.domain_type,
            memory_mib: vm.memory_mib.min(self.cfg.guest_memory_cap_mib),
            vcpus: 1,
            kernel: self.cfg.guest.kernel.clone(),
            initrd: self.cfg.guest.initrd.clone(),
            cmdline: cmdline(vm.id.as_str(), ip, self.cfg.vm_network.1),
            disks: std::iter::once(DiskSpec {
                path: disk,
                target: "vda".into(),
                serial: Some(ROOT_SERIAL.into()),
            })
            .chain(volume_disks.iter().cloned())
            .collect(),
            nics,
            console_log: console.clone(),
            command_socket: Some(command_socket.clone()),
        };
        let xml = spec.to_xml().map_err(failed)?;
        // QEMU truncates the console file when the guest starts: an earlier
        // boot's lines would hide the new "up" marker (read from the old
        // length, it was never seen and the guest was destroyed after the
        // boot timeout — found by the lab's adversary). Start from empty.
        for f in [&console, &command_socket] {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(failed(format!("{}: {e}", f.display()))),
            }
        }
        let from = 0;
        let n = name.clone();
        if let Err(e) = self.blocking(move |hv| hv.start(&n, &xml)).await {
            let id = vm.id.clone();
            let _ = self.tenant(move |t| t.forget(&id)).await;
            return Err(e);
        }
        let (id, net) = (vm.id.clone(), network.clone());
        let plugged = match self.plug_tap(&tap) {
            Ok(()) => self.tenant(move |t| t.booted(&id, &net, &vxnet_nics)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = plugged {
            let n = name.clone();
            let _ = self.blocking(move |hv| hv.destroy(&n)).await;
            let id = vm.id.clone();
            let _ = self.tenant(move |t| t.forget(&id)).await;
            return Err(e);
        }
        self.volumes.booted(&vm.id, &guest.volumes, volume_disks);
        if let Err(why) = wait_up(&console, from, vm.id.as_str(), self.cfg.boot_timeout).await {
            let n = name.clone();
            let _ = self.blocking(move |hv| hv.destroy(&n)).await;
            let id = vm.id.clone();
            let _ = self.tenant(move |t| t.forget(&id)).await;
            self.volumes.forget(&vm.id);
            return Err(DriverError::Failed(format!("{name}: {why}")));
        }
        self.specs().insert(vm.id.clone(), vm.clone());
        Ok(())
    }

    /// Makes a running guest match `guest`: its devices, then the snapshot
    /// work left on its disks (through its QEMU; a revert restarts it).
    async fn set_guest_and_disks(&self, vm: &VmId, guest: &GuestConfig) -> Result<(), DriverError> {
        let root = self.dfs_disk(vm, guest);
        if disk_ops::needs_restart(&root, &guest.disk_ops) {
            return self.restart_on_reverted_disks(vm, guest).await;
        }
        self.set_guest_devices(vm, guest).await?;
        if disk_ops::pending(&root, &guest.disk_ops).is_empty() {
            return Ok(());
        }
        let name = domain_name(&self.cfg.host, vm).map_err(DriverError::Failed)?;
        let (dir, ops) = (self.volume_dir(), guest.disk_ops.clone());
        self.blocking(move |hv| {
            disk_ops::apply_online(hv, &name, &root, &dir, &ops).map_err(|message| {
                crate::LibvirtError {
                    op: "snapshot",
                    domain: name.clone(),
                    message,
                }
            })
        })
        .await
    }

    /// A revert: the guest goes down, its disks go back (with the rest of
    /// the work left, in order), and it boots again here. Heartbeats keep
    /// reporting it running meanwhile: a reset, not a death.
    async fn restart_on_reverted_disks(
        &self,
        vm: &VmId,
        guest: &GuestConfig,
    ) -> Result<(), DriverError> {
        let known = self.specs().get(vm).cloned();
        let spec = match known {
            Some(s) => s,
            None => {
                // It arrived by live migration: its shape from its domain.
                let name = domain_name(&self.cfg.host, vm).map_err(DriverError::Failed)?;
                let memory_mib = self.blocking(move |hv| hv.memory_mib(&name)).await?;
                GuestShape {
                    id: vm.clone(),
                    memory_mib,
                }
            }
        };
        self.status.set_resetting(vm, true);
        let r = match self.stop(vm).await {
            Ok(()) => self.boot(&spec, guest).await,
            Err(e) => Err(e),
        };
        self.status.set_resetting(vm, false);
        r
    }

    async fn stop(&self, vm: &VmId) -> Result<(), DriverError> {
        let name = domain_name(&self.cfg.host, vm).map_err(DriverError::Failed)?;
        self.blocking(move |hv| hv.destroy(&name)).await?;
        self.specs().remove(vm);
        self.volumes.forget(vm);
        let id = vm.clone();
        self.tenant(move |t| t.forget(&id)).await
    }

    async fn set_guest_devices(&self, vm: &VmId, guest: &GuestConfig) -> Result<(), DriverError> {
        let name = domain_name(&self.cfg.host, vm).map_err(DriverError::Failed)?;
        let (id, net, domain) = (vm.clone(), guest.network.clone(), name.clone());
        self.tenant(move |t| t.set(&id, &domain, &net)).await?;
        let (vols, id, want) = (self.volumes.clone(), vm.clone(), guest.volumes.clone());
        tokio::task::spawn_blocking(move || vols.set(&id, &name, &want))
            .await
            .map_err(failed)?
            .map_err(DriverError::Failed)
    }

    async fn reboot(&self, vm: &VmId) -> Result<(), DriverError> {
        let name = domain_name(&self.cfg.host, vm).map_err(DriverError::Failed)?;
        let console = self.console(vm);
        let from = console_len(&console);
        let n = name.clone();
        self.blocking(move |hv| hv.reset(&n)).await?;
        wait_up(&console, from, vm.as_str(), self.cfg.boot_timeout)
            .await
            .map_err(|why| DriverError::Failed(format!("{name}: {why}")))
    }

    async fn stop_all(&self) -> Result<(), DriverError> {
        let host = self.cfg.host.clone();
        self.blocking(move |hv| {
            for n in hv.active_names()? {
                if vm_of_domain(&host, &n).is_some() {
                    hv.destroy(&n)?;
                }
            }
            Ok(())
        })
        .await?;
        self.volumes.forget_all();
        self.specs().clear();
        self.tenant(|t| t.forget_all()).await
    }
}

/// Live migration (see [`crate::migration`]).
impl LibvirtDriver {
    fn peer(&self, to: &HostId) -> Result<&MigrationPeer, DriverError> {
        self.cfg
            .migration_peers
            .iter()
            .find(|p| p.host == *to)
            .ok_or_else(|| {
                DriverError::NotSupported(format!(
                    "{} cannot live-migrate to {to}: {to} is not one of its migration peers \
                     (hosts with a libvirt daemon of their own: {})",
                    self.cfg.host,
                    if self.cfg.migration_peers.is_empty() {
                        "none".to_string()
                    } else {
                        self.cfg
                            .migration_peers
                            .iter()
                            .map(|p| p.host.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ))
            })
    }

    async fn migrate_out(&self, vm: &VmId, to: &HostId) -> Result<(), DriverError> {
        let peer = self.peer(to)?.clone();
        let name = domain_name(&self.cfg.host, vm).map_err(DriverError::Failed)?;
        let dest_name = domain_name(to, vm).map_err(DriverError::Failed)?;
        let n = name.clone();
        let source_xml = self.blocking(move |hv| hv.migratable_xml(&n)).await?;
        let path = |p: PathBuf| p.display().to_string();
        let swaps = vec![
            (tap_name(&self.cfg.host, vm), tap_name(to, vm)),
            (
                path(self.console(vm)),
                path(peer.run_dir.join(format!("{vm}.console"))),
            ),
            (
                path(self.command_socket(vm)),
                path(peer.run_dir.join(format!("{vm}.cmd"))),
            ),
        ];
        let dest_xml = destination_xml(&source_xml, &name, &swaps).map_err(|e| match e {
            DestinationXmlError::NotMovable(why) => DriverError::NotSupported(why),
            e => failed(e),
        })?;
        self.status.set_migrating_out(vm, true);
        let hv = self.hv.clone();
        let (n, dn, uri, address) = (
            name.clone(),
            dest_name.clone(),
            peer.uri.clone(),
            peer.address.clone(),
        );
        let mut copy = tokio::task::spawn_blocking(move || {
            hv.migrate_live(&n, &uri, &dn, &dest_xml, &address)
        });
        let copied = match tokio::time::timeout(MIGRATION_MAX, &mut copy).await {
            Ok(r) => r,
            Err(_) => {
                let n = name.clone();
                let _ = self.blocking(move |hv| hv.cancel_migration(&n)).await;
                copy.await
            }
        };
        self.status.set_migrating_out(vm, false);
        copied
            .map_err(|e| DriverError::Unavailable(format!("libvirt call panicked: {e}")))?
            .map_err(failed)?;
        // The guest runs there now, whatever follows: the answer says so
        // (an error would tell the controller it is still here — found by
        // the lab's adversary: the destination powered off just after the
        // switch-over and the controller took the guest for one still
        // running on this host). Its tap joined that host's bridge as the
        // copy started (that host's status watch plugs it); nothing of it
        // is left here.
        self.specs().remove(vm);
        self.volumes.forget(vm);
        let id = vm.clone();
        if let Err(e) = self.tenant(move |t| t.forget(&id)).await {
            eprintln!("krrish-libvirt: {vm} moved to {to}; forgetting its tenant set-up here: {e}");
        }
        Ok(())
    }

    /// Cancels a copy still in flight; Ok when no copy runs on `to` once
    /// this host's migration call has returned.
    async fn cancel_migration(&self, vm: &VmId, to: &HostId) -> Result<(), DriverError> {
        let peer = self.peer(to)?.clone();
        let name = domain_name(&self.cfg.host, vm).map_err(DriverError::Failed)?;
        if self.status.is_migrating_out(vm) {
            let n = name.clone();
            self.blocking(move |hv| hv.cancel_migration(&n)).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while self.status.is_migrating_out(vm) {
                if tokio::time::Instant::now() > deadline {
                    return Err(DriverError::Failed(format!(
                        "{vm}: its migration to {to} did not end within 30 s of the cancel"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let dest_name = domain_name(to, vm).map_err(DriverError::Failed)?;
        let there = tokio::task::spawn_blocking(move || {
            Hypervisor::open(&peer.uri).and_then(|hv| hv.running_names())
        })
        .await
        .map_err(failed)?
        .map_err(|e| DriverError::Unavailable(e.to_string()))?;
        if there.contains(&dest_name) {
            return Err(DriverError::Failed(format!(
                "{vm} already switched over to {to}"
            )));
        }
        Ok(())
    }
}

impl Driver for LibvirtDriver {
    fn boot_id(&self) -> u64 {
        self.boot_id
    }

    fn status(&self) -> HostStatus {
        // Never a libvirt call here: see `StatusWatch`.
        self.status.latest()
    }

    async fn boot_vm(
        &self,
        vm: &VmSpec,
        _reason: BootReason,
        guest: &GuestConfig,
    ) -> Result<(), DriverError> {
        let shape = GuestShape {
            id: vm.id.clone(),
            memory_mib: vm.demand.memory_mib,
        };
        let r = self.boot(&shape, guest).await;
        self.changed(r).await
    }

    async fn set_guest(&self, vm: &VmId, guest: &GuestConfig) -> Result<(), DriverError> {
        let r = self.set_guest_and_disks(vm, guest).await;
        self.changed(r).await
    }

    async fn stop_vm(&self, vm: &VmId) -> Result<(), DriverError> {
        let r = self.stop(vm).await;
        self.changed(r).await
    }

    async fn reboot_vm(&self, vm: &VmId) -> Result<(), DriverError> {
        let r = self.reboot(vm).await;
        self.changed(r).await
    }

    async fn live_migrate(&self, vm: &VmId, to: &HostId) -> Result<(), DriverError> {
        let r = self.migrate_out(vm, to).await;
        self.changed(r).await
    }

    async fn abort_migration(&self, vm: &VmId, to: &HostId) -> Result<(), DriverError> {
        self.cancel_migration(vm, to).await
    }

    async fn renew_lease(&self) -> Result<(), DriverError> {
        let (c, host) = (self.lease.clone(), self.cfg.host.clone());
        let (duration, boot) = (self.cfg.lease_duration_ms, self.boot_id);
        // The power-on list from the status watch's readings (never a
        // libvirt call on the lease's path), if one was read after the
        // last grant came back.
        let last_grant = *self.last_grant.lock().unwrap_or_else(|p| p.into_inner());
        let power_on = last_grant.and_then(|(after_grant, received)| {
            let vms = self.status.power_on_since(received)?;
            Some(krrish_dfs::PowerOnClaim { vms, after_grant })
        });
        let answer = tokio::task::spawn_blocking(move || c.renew(&host, duration, boot, power_on))
            .await
            .map_err(failed)?
            .map_err(|e| DriverError::Unavailable(e.to_string()))?;
        if let Some(grant) = answer.grant {
            #[allow(clippy::disallowed_methods)] // the real world: its own clock
            let received = std::time::Instant::now();
            *self.last_grant.lock().unwrap_or_else(|p| p.into_inner()) = Some((grant, received));
        }
        let granted = answer.expires_in_ms;
        // The service grants what was asked, from its answer (after the
        // ask); less would let the lease run out before this host stops
        // its guests.
        if granted < duration {
            return Err(DriverError::Failed(format!(
                "the DFS granted {granted} ms, less than the {duration} ms asked"
            )));
        }
        Ok(())
    }

    async fn sync_disks(&self) -> Result<(), DriverError> {
        // Guests' disks live on the DFS stand-in itself: nothing to copy.
        Ok(())
    }

    async fn stop_all_vms(&self) -> Result<(), DriverError> {
        let r = self.stop_all().await;
        self.changed(r).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_addresses_are_inside_the_network_and_stable() {
        let net = (Ipv4Addr::new(10, 80, 0, 0), 16);
        for i in 0..500 {
            let vm = VmId::new(format!("vm-{i}"));
            let a = vm_address(net, &vm);
            assert_eq!(a, vm_address(net, &vm));
            let o = a.octets();
            assert_eq!((o[0], o[1]), (10, 80), "{a}");
            assert!(u32::from(a) >= u32::from(net.0) + 2, "{a}");
            assert!(u32::from(a) < u32::from(net.0) + 65534, "{a}");
        }
    }
}
