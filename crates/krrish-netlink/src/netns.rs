//! Named network namespaces, made as `ip netns add` makes them (a bind
//! mount of a namespace file under `/run/netns`), so `ip netns exec` and
//! every other tool sees them too. Work inside one runs on a thread of its
//! own that entered the namespace: the rest of the process never moves.

use crate::links::Links;
use crate::{check_name, NetError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;

/// Where named namespaces live (iproute2's convention).
pub const NETNS_DIR: &str = "/run/netns";
/// Namespace names are file names under [`NETNS_DIR`]: kept short and plain.
const NETNS_NAME_MAX: usize = 32;

/// A named network namespace, the process's own (`Netns::current()`), or
/// another process's (`Netns::of_process`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: Option<String>,
    /// Another process's namespace (e.g. libvirtd's, where it makes its
    /// guests' taps), by pid.
    pid: Option<u32>,
}

impl Netns {
    /// The namespace this process runs in.
    pub fn current() -> Self {
        Netns {
            name: None,
            pid: None,
        }
    }

    /// The namespace process `pid` runs in (checked to be openable).
    pub fn of_process(pid: u32) -> Result<Self, NetError> {
        let ns = Netns {
            name: None,
            pid: Some(pid),
        };
        ns.file()?;
        Ok(ns)
    }

    /// An existing named namespace.
    pub fn open(name: &str) -> Result<Self, NetError> {
        check_name(name, NETNS_NAME_MAX)?;
        let ns = Netns {
            name: Some(name.to_string()),
            pid: None,
        };
        if !ns.path().is_some_and(|p| p.exists()) {
            return Err(NetError::Namespace {
                ns: name.to_string(),
                why: "does not exist".into(),
            });
        }
        Ok(ns)
    }

    pub fn exists(name: &str) -> bool {
        check_name(name, NETNS_NAME_MAX).is_ok() && PathBuf::from(NETNS_DIR).join(name).exists()
    }

    /// Makes a new namespace with only `lo` in it (brought up). Refuses a
    /// name already in use rather than adopting someone else's namespace.
    pub fn create(name: &str) -> Result<Self, NetError> {
        check_name(name, NETNS_NAME_MAX)?;
        let err = |why: String| NetError::Namespace {
            ns: name.to_string(),
            why,
        };
        let path = PathBuf::from(NETNS_DIR).join(name);
        if path.exists() {
            return Err(err("already exists".into()));
        }
        std::fs::create_dir_all(NETNS_DIR).map_err(|e| err(format!("{NETNS_DIR}: {e}")))?;
        File::create(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let target = path.clone();
        // unshare() moves only the calling thread: a thread of its own.
        let made = std::thread::spawn(move || -> Result<(), String> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind mount: {e}"))
        })
        .join()
        .map_err(|_| err("namespace thread panicked".into()))?;
        if let Err(why) = made {
            let _ = std::fs::remove_file(&path);
            return Err(err(why));
        }
        let ns = Netns {
            name: Some(name.to_string()),
            pid: None,
        };
        ns.run(|links| async move { links.set_up("lo").await })?;
        Ok(ns)
    }

    /// Removes the namespace; links in it go with it (veth peers too).
    pub fn delete(name: &str) -> Result<(), NetError> {
        check_name(name, NETNS_NAME_MAX)?;
        let path = PathBuf::from(NETNS_DIR).join(name);
        let err = |why: String| NetError::Namespace {
            ns: name.to_string(),
            why,
        };
        umount2(&path, MntFlags::MNT_DETACH).map_err(|e| err(format!("unmount: {e}")))?;
        std::fs::remove_file(&path).map_err(|e| err(format!("remove: {e}")))
    }

    /// `program`, to be run inside this namespace (`ip netns exec` for a
    /// named one, `nsenter` for a process's, as is for this process's own).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut c;
        match (&self.name, self.pid) {
            (Some(n), _) => {
                c = std::process::Command::new("ip");
                c.args(["netns", "exec", n]).arg(program);
            }
            (None, Some(pid)) => {
                c = std::process::Command::new("nsenter");
                c.arg(format!("--net=/proc/{pid}/ns/net")).arg(program);
            }
            (None, None) => c = std::process::Command::new(program),
        }
        c
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn path(&self) -> Option<PathBuf> {
        if let Some(pid) = self.pid {
            return Some(PathBuf::from(format!("/proc/{pid}/ns/net")));
        }
        self.name.as_ref().map(|n| PathBuf::from(NETNS_DIR).join(n))
    }

    /// An open handle on the namespace file, for moving links into it.
    pub(crate) fn file(&self) -> Result<File, NetError> {
        let path = match self.path() {
            Some(p) => p,
            None => PathBuf::from("/proc/self/ns/net"),
        };
        File::open(&path).map_err(|e| NetError::Namespace {
            ns: self.to_string(),
            why: format!("open {}: {e}", path.display()),
        })
    }

    /// Runs `work` with a netlink connection inside this namespace, on a
    /// thread that entered it, and waits for the answer.
    pub fn run<T, F, Fut>(&self, work: F) -> Result<T, NetError>
    where
        F: FnOnce(Links) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, NetError>>,
        T: Send + 'static,
    {
        let file = match self.path() {
            Some(_) => Some(self.file()?),
            None => None,
        };
        let label = self.to_string();
        std::thread::spawn(move || -> Result<T, NetError> {
            if let Some(f) = file {
                setns(f, CloneFlags::CLONE_NEWNET).map_err(|e| NetError::Namespace {
                    ns: label.clone(),
                    why: format!("setns: {e}"),
                })?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|e| NetError::Netlink(format!("runtime: {e}")))?;
            rt.block_on(async move {
                let (conn, handle, _) = rtnetlink::new_connection()
                    .map_err(|e| NetError::Netlink(format!("socket: {e}")))?;
                let conn = tokio::spawn(conn);
                let r = work(Links::new(handle)).await;
                conn.abort();
                r
            })
        })
        .join()
        .map_err(|_| NetError::Netlink("netlink thread panicked".into()))?
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.name, self.pid) {
            (Some(n), _) => f.write_str(n),
            (None, Some(pid)) => write!(f, "(process {pid}'s namespace)"),
            (None, None) => f.write_str("(this process's namespace)"),
        }
    }
}
