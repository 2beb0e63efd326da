//! The libvirt calls the driver makes, each a blocking call on one shared
//! connection, with typed errors that name the operation and the domain.

use std::sync::{Mutex, Once};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

/// A libvirt call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("libvirt {op} {domain}: {message}")]
pub struct LibvirtError {
    pub op: &'static str,
    pub domain: String,
    pub message: String,
}

fn err(op: &'static str, domain: &str, e: virt::error::Error) -> LibvirtError {
    LibvirtError {
        op,
        domain: domain.to_string(),
        message: e.message().to_string(),
    }
}

/// One connection to a libvirt daemon (or `test:///default`).
pub struct Hypervisor {
    uri: String,
    conn: Mutex<Connect>,
}

static QUIET: Once = Once::new();

impl Hypervisor {
    pub fn open(uri: &str) -> Result<Self, LibvirtError> {
        // Errors come back as values; libvirt must not also print them.
        QUIET.call_once(virt::error::clear_error_callback);
        let conn = Connect::open(Some(uri)).map_err(|e| err("connect", uri, e))?;
        Ok(Hypervisor {
            uri: uri.to_string(),
            conn: Mutex::new(conn),
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connect> {
        // A panic while holding it leaves the connection itself intact.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a transient domain from `xml` (gone once destroyed).
    pub fn start(&self, name: &str, xml: &str) -> Result<(), LibvirtError> {
        let c = self.conn();
        c.create_domain_xml(xml, 0)
            .map(drop)
            .map_err(|e| err("start", name, e))
    }

    /// Defines a persistent domain from `xml` and starts it.
    pub fn define_and_start(&self, name: &str, xml: &str) -> Result<(), LibvirtError> {
        let c = self.conn();
        let d = c
            .define_domain_xml(xml)
            .map_err(|e| err("define", name, e))?;
        d.create().map_err(|e| err("start", name, e))
    }

    fn lookup(&self, name: &str) -> Result<Option<Domain>, LibvirtError> {
        let c = self.conn();
        match c.lookup_domain_by_name(name) {
            Ok(d) => Ok(Some(d)),
            Err(e)
                if matches!(
                    e.code(),
                    virt::enumutil::Enum::Known(virt::error::ErrorNumber::NoDomain)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(err("lookup", name, e)),
        }
    }

    pub fn is_active(&self, name: &str) -> Result<bool, LibvirtError> {
        match self.lookup(name)? {
            Some(d) => d.is_active().map_err(|e| err("state", name, e)),
            None => Ok(false),
        }
    }

    /// Powers the domain off at once and forgets a persistent definition.
    /// Ok(false) if there was no such domain.
    pub fn destroy(&self, name: &str) -> Result<bool, LibvirtError> {
        let Some(d) = self.lookup(name)? else {
            return Ok(false);
        };
        // Asked first: a transient domain is gone once destroyed.
        let persistent = d.is_persistent().map_err(|e| err("state", name, e))?;
        if d.is_active().map_err(|e| err("state", name, e))? {
            d.destroy().map_err(|e| err("destroy", name, e))?;
        }
        if persistent {
            d.undefine_flags(sys::VIR_DOMAIN_UNDEFINE_NVRAM)
                .or_else(|_| d.undefine())
                .map_err(|e| err("undefine", name, e))?;
        }
        Ok(true)
    }

    /// Hard reset: the guest restarts in place, the domain stays active.
    pub fn reset(&self, name: &str) -> Result<(), LibvirtError> {
        match self.lookup(name)? {
            Some(d) => d.reset().map_err(|e| err("reset", name, e)),
            None => Err(LibvirtError {
                op: "reset",
                domain: name.to_string(),
                message: "no such domain".into(),
            }),
        }
    }

    /// Plugs a device (interface XML) into the running domain.
    pub fn attach_device(&self, name: &str, xml: &str) -> Result<(), LibvirtError> {
        let d = self.lookup(name)?.ok_or_else(|| LibvirtError {
            op: "attach",
            domain: name.to_string(),
            message: "no such domain".into(),
        })?;
        // The `_flags` variant: the plain one swallows errors (virt 0.5).
        d.attach_device_flags(xml, sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(|e| err("attach", name, e))
    }

    /// Unplugs a device from the running domain; a domain that is gone has
    /// nothing left to unplug.
    pub fn detach_device(&self, name: &str, xml: &str) -> Result<(), LibvirtError> {
        match self.lookup(name)? {
            Some(d) => d
                .detach_device_flags(xml, sys::VIR_DOMAIN_AFFECT_LIVE)
                .map_err(|e| err("detach", name, e)),
            None => Ok(()),
        }
    }

    /// One QMP command to the domain's QEMU (libvirt's
    /// `virDomainQemuMonitorCommand`); the reply's `return`, or the
    /// command's error as this call's. For what libvirt has no API for:
    /// internal snapshots of a running guest's disks.
    pub fn qmp(
        &self,
        name: &str,
        command: &serde_json::Value,
    ) -> Result<serde_json::Value, LibvirtError> {
        let d = self.lookup(name)?.ok_or_else(|| LibvirtError {
            op: "qmp",
            domain: name.to_string(),
            message: "no such domain".into(),
        })?;
        let reply = d
            .qemu_monitor_command(&command.to_string(), 0)
            .map_err(|e| err("qmp", name, e))?;
        let v: serde_json::Value = serde_json::from_str(&reply).map_err(|e| LibvirtError {
            op: "qmp",
            domain: name.to_string(),
            message: format!("unreadable reply {reply:?}: {e}"),
        })?;
        if let Some(e) = v.get("error") {
            return Err(LibvirtError {
                op: "qmp",
                domain: name.to_string(),
                message: e["desc"].as_str().unwrap_or("error").to_string(),
            });
        }
        Ok(v.get("return").cloned().unwrap_or(serde_json::Value::Null))
    }

    /// The domain's memory, in MiB.
    pub fn memory_mib(&self, name: &str) -> Result<u64, LibvirtError> {
        let d = self.lookup(name)?.ok_or_else(|| LibvirtError {
            op: "memory",
            domain: name.to_string(),
            message: "no such domain".into(),
        })?;
        d.max_memory()
            .map(|kib| kib / 1024)
            .map_err(|e| err("memory", name, e))
    }

    /// The domain's definition as another daemon may start it (libvirt's
    /// migratable XML: nothing only this daemon knows).
    pub fn migratable_xml(&self, name: &str) -> Result<String, LibvirtError> {
        let d = self.lookup(name)?.ok_or_else(|| LibvirtError {
            op: "dumpxml",
            domain: name.to_string(),
            message: "no such domain".into(),
        })?;
        d.xml_desc(sys::VIR_DOMAIN_XML_MIGRATABLE)
            .map_err(|e| err("dumpxml", name, e))
    }

    /// Live-migrates the running domain to the daemon at `dest_uri`,
    /// renamed `dest_name` and defined by `dest_xml` there (transient, as
    /// it was here). Managed by this process: it opens both connections,
    /// so `dest_uri` is what this host's processes use to reach that
    /// daemon. The shared connection is held only to find the domain, so
    /// status readings and an [`Self::abort_job`] go on meanwhile.
    pub fn migrate_live(
        &self,
        name: &str,
        dest_uri: &str,
        dest_name: &str,
        dest_xml: &str,
        migration_address: &str,
    ) -> Result<(), LibvirtError> {
        let d = self.lookup(name)?.ok_or_else(|| LibvirtError {
            op: "migrate",
            domain: name.to_string(),
            message: "no such domain".into(),
        })?;
        let dconn = Connect::open(Some(dest_uri)).map_err(|e| err("connect", dest_uri, e))?;
        let params = virt::domain::MigrateParameters {
            dest_name: Some(dest_name.to_string()),
            dest_xml: Some(dest_xml.to_string()),
            // The QEMUs talk over this address only (not every address
            // the destination has).
            uri: Some(format!("tcp://{migration_address}")),
            listen_address: Some(migration_address.to_string()),
            ..Default::default()
        };
        // UNSAFE only in libvirt's sense: it cannot tell that the disks'
        // directory is the DFS every host shares, and refuses a disk it
        // does not know to be shared storage.
        let flags = sys::VIR_MIGRATE_LIVE | sys::VIR_MIGRATE_UNSAFE;
        d.migrate3(&dconn, params, flags)
            .map(drop)
            .map_err(|e| err("migrate", name, e))
    }

    /// Cancels a live migration of the domain still copying (QEMU's
    /// `migrate_cancel`: libvirt sees the copy fail and cleans the
    /// destination up; virt 0.5 wraps no virDomainAbortJob, and this crate
    /// has no unsafe code). Ok when there is no such domain.
    pub fn cancel_migration(&self, name: &str) -> Result<(), LibvirtError> {
        if self.lookup(name)?.is_none() {
            return Ok(());
        }
        self.qmp(name, &serde_json::json!({ "execute": "migrate_cancel" }))
            .map(drop)
    }

    /// Names of the domains whose guests run here now, sorted: active ones
    /// except a migration's other copy, paused until (or since) the
    /// switch-over, and a domain whose QEMU is still starting.
    pub fn running_names(&self) -> Result<Vec<String>, LibvirtError> {
        Ok(self
            .active_domains()?
            .into_iter()
            .filter(|d| d.runs_here)
            .map(|d| d.name)
            .collect())
    }

    /// Names of the active domains, sorted.
    pub fn active_names(&self) -> Result<Vec<String>, LibvirtError> {
        Ok(self.active_domains()?.into_iter().map(|d| d.name).collect())
    }

    /// The active domains, sorted by name.
    pub fn active_domains(&self) -> Result<Vec<ActiveDomain>, LibvirtError> {
        use virt::domain::{DomainPausedReason, DomainState, DomainStateReason};
        use virt::enumutil::Enum;
        let c = self.conn();
        let doms = c
            .list_all_domains(sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            .map_err(|e| err("list", "*", e))?;
        let mut out = Vec::with_capacity(doms.len());
        for d in doms {
            // Measured on the box: an incoming copy is "paused (starting
            // up)", then "paused (migrating)" until it takes over; the
            // source is "paused (migrating)" from the switch-over on.
            let runs_here = !matches!(
                d.state(),
                Ok((
                    Enum::Known(DomainState::Paused),
                    Enum::Known(DomainStateReason::Paused(Enum::Known(
                        DomainPausedReason::Migration | DomainPausedReason::StartingUp
                    )))
                ))
            );
            let name = d.name().map_err(|e| err("name", "?", e))?;
            out.push(ActiveDomain { name, runs_here });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// An active domain, as [`Hypervisor::active_domains`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveDomain {
    pub name: String,
    /// Its guest runs here now: not a migration's other copy (paused until
    /// or since the switch-over), not a QEMU still starting.
    pub runs_here: bool,
}
