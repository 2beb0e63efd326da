//! How a run reaches what lives on the hosts — a guest's command port, its
//! console, the DFS's files: directly in the box (one machine), through
//! each host's `run` on an inventory (`krrish lab-guest-ask`, `cat`,
//! `qemu-io` there). The checks in [`super::tenant`] ask through here, so
//! they read the same on both.

use super::*;

impl LabRun<'_> {
    /// Where `host`'s guests keep their consoles and command ports.
    pub(super) fn consoles_dir(&self, host: &HostId) -> PathBuf {
        let run_dir = match self.site {
            Site::Box(_) => &self.run_dir,
            Site::Inventory(i) => &i.inv.run_dir,
        };
        run_dir.join("consoles").join(host.as_str())
    }

    /// `vm`'s file `ext` (`console`, `cmd`) on `host`.
    pub(super) fn console_of(&self, host: &HostId, vm: &VmId, ext: &str) -> PathBuf {
        self.consoles_dir(host).join(format!("{vm}.{ext}"))
    }

    /// The DFS as the hosts see it.
    pub(super) fn dfs_dir(&self) -> PathBuf {
        match self.site {
            Site::Box(_) => self.run_dir.join("dfs"),
            Site::Inventory(i) => i.inv.dfs_dir.clone(),
        }
    }

    /// Sends `request` to `vm`'s guest on `host` and returns its reply.
    pub(super) fn guest_ask(
        &self,
        host: &HostId,
        vm: &VmId,
        request: &str,
        wait: Duration,
    ) -> Result<String, String> {
        let socket = self.console_of(host, vm, "cmd");
        let Site::Inventory(_) = self.site else {
            return krrish_libvirt::guest::ask(&socket, request, wait);
        };
        let krrish = self
            .inventory_host(host)
            .map_err(|e| e.to_string())?
            .krrish
            .to_string_lossy()
            .into_owned();
        let socket = socket.to_string_lossy().into_owned();
        let wait_ms = wait.as_millis().to_string();
        let mut args = vec![
            krrish.as_str(),
            "lab-guest-ask",
            "--socket",
            socket.as_str(),
            "--wait-ms",
            wait_ms.as_str(),
            "--",
        ];
        args.extend(request.split(' '));
        self.remote(host)
            .map_err(|e| e.to_string())?
            .command(&args, wait + REMOTE_SLACK)
            .map(|out| out.trim().to_string())
    }

    /// The text of `path` on `host` ("" when it cannot be read, as a
    /// console not yet written).
    pub(super) fn host_file_text(&self, host: &HostId, path: &Path) -> String {
        match self.site {
            Site::Box(_) => std::fs::read_to_string(path).unwrap_or_default(),
            Site::Inventory(_) => self
                .remote(host)
                .ok()
                .and_then(|r| {
                    r.command(&["cat", &path.to_string_lossy()], REMOTE_SLACK)
                        .ok()
                })
                .unwrap_or_default(),
        }
    }

    /// Runs `args` where the DFS is: here in the box; on an inventory, on
    /// the first host whose `run` answers (every host mounts the DFS at
    /// `dfs_dir`). Its stdout, or why not (its stderr).
    pub(super) fn on_the_dfs(&self, args: &[&str]) -> Result<String, String> {
        let Site::Inventory(i) = self.site else {
            // The box's DFS is this machine's directory.
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            return krrish_lab::remote::bounded(c, None, DFS_CALL_MAX);
        };
        let mut why = Vec::new();
        for h in &i.inv.hosts {
            let remote = krrish_lab::remote::Remote {
                host: &h.id,
                run: &h.run,
            };
            match remote.command(args, DFS_CALL_MAX) {
                Ok(out) => return Ok(out),
                Err(e) => why.push(e),
            }
        }
        Err(format!(
            "{}: no host could run it: {}",
            args.join(" "),
            why.join("; ")
        ))
    }
}

/// What a call through a host's `run` may take beyond its own wait (an
/// ssh connection, a process start).
const REMOTE_SLACK: Duration = Duration::from_secs(20);

/// A command on the DFS (a `qemu-img convert` of a snapshot, a read).
const DFS_CALL_MAX: Duration = Duration::from_secs(60);
