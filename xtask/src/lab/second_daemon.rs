//! A second libvirt daemon ("daemon B") beside the system one, so that the
//! box's hosts can live-migrate: libvirt refuses a migration to the daemon
//! a guest already runs on ("same host"), and the box's spares run their
//! guests on B. Measured by the probe kept in
//! `fixtures/lab-probes/two-libvirt-daemons-live-migration.md`.
//!
//! B is an ordinary system-mode libvirtd (with its own virtlogd and
//! virtlockd) in a private mount namespace: its own directories are bound
//! over `/run/libvirt`, `/var/lib/libvirt`, `/var/cache/libvirt`,
//! `/var/log/libvirt` and `/etc/libvirt`, so it shares nothing with the
//! system daemon but the kernel, the network and the files guests use.
//! Its settings: a host UUID of its own (else libvirt sees one host), no
//! cgroup controllers (both daemons would put guests of the same id in
//! the same cgroup) and its own migration ports. The namespace lives as
//! long as B's processes; `lab down` kills them by their pid files.

use super::{output, quiet_ok};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// B's directory under the lab's.
fn dir() -> Result<PathBuf> {
    Ok(std::fs::canonicalize(".")?
        .join(super::lab_dir())
        .join("libvirt-b"))
}

/// The directories bound over the system's, in B's namespace.
const BOUND: [(&str, &str); 5] = [
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
    ("etc", "/etc/libvirt"),
];

/// B's daemons, in the order they stop (libvirtd first).
const DAEMONS: [&str; 3] = ["libvirtd", "virtlogd", "virtlockd"];

/// Migration ports of B's QEMUs (the system daemon's are 49152–49215).
const MIGRATION_PORTS: (u16, u16) = (49300, 49363);

/// How clients on this machine reach B.
fn uri_of(dir: &Path) -> Result<String> {
    let sock = dir.join("run").join("libvirt-sock");
    let s = sock
        .to_str()
        .context("the lab directory's path is not UTF-8")?;
    // The path goes into a URI's query unescaped.
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        bail!(
            "{s}: the second libvirt daemon's socket path has characters a libvirt URI would \
             need escaped; move the checkout to a plainer path"
        );
    }
    Ok(format!("qemu+unix:///system?socket={s}"))
}

fn answers(uri: &str) -> bool {
    quiet_ok(Command::new("virsh").args(["-c", uri, "version"]))
}

/// Starts B unless it answers already; its URI.
pub fn start() -> Result<String> {
    let dir = dir()?;
    let uri = uri_of(&dir)?;
    if answers(&uri) {
        return Ok(uri);
    }
    stop();
    for (d, _) in BOUND {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::create_dir_all(dir.join("host-run"))?;
    for (_, system) in BOUND {
        // Bind targets must exist (the system daemon may never have made
        // its cache directory).
        std::fs::create_dir_all(system).with_context(|| format!("creating {system}"))?;
    }
    output(
        Command::new("chown")
            .args(["libvirt-qemu:libvirt-qemu"])
            .arg(dir.join("lib")),
    )?;
    write_settings(&dir)?;
    let script = dir.join("start-in-namespace.sh");
    std::fs::write(&script, START_SCRIPT)?;
    output(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh"])
            .arg(&script)
            .arg(&dir),
    )
    .context("starting the second libvirt daemon in its mount namespace")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(&uri) {
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(dir.join("log").join("libvirtd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            bail!(
                "the second libvirtd started but {uri} does not answer after 30 s; its log ends: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(uri)
}

/// Run by `unshare` with B's directory as `$1`: binds B's directories
/// over the system's (keeping the system's sockets reachable at
/// `host-run`), then starts B's daemons with pid files of their own.
const START_SCRIPT: &str = r#"set -e
B="$1"
mount --bind /run/libvirt "$B/host-run"
mount --bind "$B/run" /run/libvirt
mount --bind "$B/lib" /var/lib/libvirt
mount --bind "$B/cache" /var/cache/libvirt
mount --bind "$B/log" /var/log/libvirt
mount --bind "$B/etc" /etc/libvirt
virtlogd -d -p "$B/virtlogd.pid"
virtlockd -d -p "$B/virtlockd.pid"
libvirtd -d -p "$B/libvirtd.pid"
"#;

/// B's `/etc/libvirt`: the system's (its lock manager line included),
/// with B's own host UUID, log file, cgroups and migration ports.
fn write_settings(dir: &Path) -> Result<()> {
    let etc = dir.join("etc");
    let _ = std::fs::remove_dir_all(&etc);
    output(Command::new("cp").args(["-a", "/etc/libvirt"]).arg(&etc))?;
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")?;
    append(
        &etc.join("libvirtd.conf"),
        &format!(
            "# The second daemon of `cargo xtask lab up`.\nhost_uuid = \"{}\"\nlog_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n",
            uuid.trim()
        ),
    )?;
    append(
        &etc.join("qemu.conf"),
        &format!(
            "# The second daemon of `cargo xtask lab up`.\ncgroup_controllers = [ ]\nmigration_port_min = {}\nmigration_port_max = {}\n",
            MIGRATION_PORTS.0, MIGRATION_PORTS.1
        ),
    )
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut t = std::fs::read_to_string(path).unwrap_or_default();
    if !t.is_empty() && !t.ends_with('\n') {
        t.push('\n');
    }
    t.push_str(text);
    std::fs::write(path, t).with_context(|| format!("writing {}", path.display()))
}

/// Stops B's daemons (by their pid files) and waits until they are gone;
/// what it stopped.
pub fn stop() -> Vec<String> {
    let Ok(dir) = dir() else {
        return Vec::new();
    };
    let mut stopped = Vec::new();
    for d in DAEMONS {
        let pid_file = dir.join(format!("{d}.pid"));
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            continue;
        };
        // Only if that pid is still this daemon (not a reused number).
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == d {
            let _ = Command::new("kill").arg(pid.to_string()).output();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                let state =
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if state
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            stopped.push(format!("second {d}"));
        }
        let _ = std::fs::remove_file(&pid_file);
    }
    stopped
}

/// Removes B's directory (after [`stop`]).
pub fn remove() -> Option<String> {
    let dir = dir().ok()?;
    if !dir.exists() {
        return None;
    }
    std::fs::remove_dir_all(&dir).ok()?;
    Some(dir.display().to_string())
}
