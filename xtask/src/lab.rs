//! `cargo xtask lab up|down|status`: the lab in a box on this machine.
//!
//! `up` installs what is missing (apt), starts virtlogd and libvirtd when
//! they are not running, builds the guest (a Debian cloud kernel and a
//! busybox initramfs, cached in `target/lab/guest/`, never committed) and
//! probes whether KVM works or guests must use TCG. `down` removes every
//! domain, namespace and file the lab made and stops the daemons `up`
//! started. What `up` found is in `target/lab/state` (`key=value` lines),
//! which the lab tests and drivers read.

mod ci_step;
mod guest_image;
mod second_daemon;

pub use ci_step::{suite_step, CI_SCENARIOS};
use guest_image::build_guest;

use crate::{run, show};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Debian packages the lab needs, each with a file that proves it present.
pub const LAB_PACKAGES: &[(&str, &str)] = &[
    ("libvirt-daemon", "/usr/sbin/libvirtd"),
    (
        "libvirt-daemon-driver-qemu",
        "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
    ),
    ("libvirt-clients", "/usr/bin/virsh"),
    ("libvirt-dev", "/usr/include/libvirt/libvirt.h"),
    ("pkg-config", "/usr/bin/pkg-config"),
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("qemu-utils", "/usr/bin/qemu-img"),
    ("nftables", "/usr/sbin/nft"),
    ("ipmitool", "/usr/bin/ipmitool"),
    ("busybox-static", "/bin/busybox"),
    ("cpio", "/usr/bin/cpio"),
    ("iproute2", "/usr/bin/ip"),
    ("iputils-ping", "/usr/bin/ping"),
];

/// Everything the lab makes lives under here (in `target/`, so never
/// committed).
pub fn lab_dir() -> PathBuf {
    PathBuf::from("target/lab")
}

/// Namespaces the lab and its tests make start with this.
pub const NETNS_PREFIX: &str = "krl-";
/// Domains krrish makes start with this (see krrish-libvirt's names).
pub const DOMAIN_PREFIX: &str = "krrish.";
/// Marker the guest prints when its NIC is configured.
const UP_MARKER: &str = "krrish-guest up";
const LIBVIRT_URI: &str = "qemu:///system";
/// How long the KVM probe waits for the guest before deciding on TCG.
const KVM_PROBE_WAIT: Duration = Duration::from_secs(20);

pub fn lab(args: &[String]) -> Result<bool> {
    match args.first().map(String::as_str) {
        Some("up") => up().map(|()| true),
        Some("down") => down().map(|()| true),
        Some("status") => status().map(|()| true),
        _ => bail!("usage: cargo xtask lab <up | down | status>"),
    }
}

/// Installs whatever of [`LAB_PACKAGES`] is missing.
pub fn install_missing() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        eprintln!("xtask: system packages: all {} present", LAB_PACKAGES.len());
    }
    apt_install(&missing)
}

fn missing_packages() -> Vec<&'static str> {
    LAB_PACKAGES
        .iter()
        .filter(|(_, proof)| !Path::new(proof).exists())
        .map(|(p, _)| *p)
        .collect()
}

/// apt-get installs `pkgs` (after one `apt-get update`).
pub fn apt_install(pkgs: &[&str]) -> Result<()> {
    if pkgs.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", pkgs.join(" "));
    if !run(Command::new("apt-get").args(["update", "-qq"]))? {
        bail!("apt-get update failed; cannot install {}", pkgs.join(" "));
    }
    let mut c = Command::new("apt-get");
    c.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(pkgs)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if !run(&mut c)? {
        bail!("apt-get install {} failed", pkgs.join(" "));
    }
    Ok(())
}

/// Runs `cmd`, Ok(stdout) if it exited 0.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            show(cmd),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn libvirt_answers() -> bool {
    quiet_ok(Command::new("virsh").args(["-c", LIBVIRT_URI, "version"]))
}

/// The lab's state file: what `up` found and started.
struct State(Vec<(String, String)>);

impl State {
    fn path() -> PathBuf {
        lab_dir().join("state")
    }
    fn load() -> State {
        let text = std::fs::read_to_string(Self::path()).unwrap_or_default();
        State(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn set(&mut self, k: &str, v: &str) {
        self.0.retain(|(key, _)| key != k);
        self.0.push((k.to_string(), v.to_string()));
    }
    fn save(&self) -> Result<()> {
        std::fs::create_dir_all(lab_dir())?;
        let text: String = self.0.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(Self::path(), text).context("writing target/lab/state")
    }
}

fn up() -> Result<()> {
    let started = Instant::now();
    apt_install(&missing_packages())?;
    let mut state = State::load();
    start_libvirt(&mut state)?;
    let guest = build_guest()?;
    state.set("guest_dir", &guest.display().to_string());
    let bmc_python = build_bmc_venv()?;
    state.set("bmc_python", &bmc_python.display().to_string());
    let accel = probe_accel(&guest)?;
    state.set("domain_type", accel);
    state.set("libvirt_uri", LIBVIRT_URI);
    // Live migration in the box needs it; without it every other step
    // still runs, and the live ones say why they cannot.
    let second = match second_daemon::start() {
        Ok(uri) => {
            state.set("libvirt_uri_b", &uri);
            format!("; a second libvirtd for live migration at {uri}")
        }
        Err(e) => {
            state.set("libvirt_uri_b", "");
            eprintln!(
                "xtask: WARNING: the second libvirt daemon did not start: {e:#}\n\
                 xtask: WARNING: nothing migrates live in the box; live-migration scenarios are NOT RUN"
            );
            "; NO second libvirtd (no live migration)".to_string()
        }
    };
    state.save()?;
    eprintln!(
        "xtask: lab up in {:.1} s: guests use domain type `{accel}`{}{second}; state in {}",
        started.elapsed().as_secs_f64(),
        if accel == "qemu" {
            " (TCG: KVM is not usable here)"
        } else {
            ""
        },
        State::path().display()
    );
    Ok(())
}

/// The BMC emulator's Python: pyghmi (the IPMI server OpenStack's
/// virtualbmc is built on), pinned, in a venv under the lab directory;
/// kept while the pin holds.
const PYGHMI: &str = "pyghmi==1.6.19";

fn build_bmc_venv() -> Result<PathBuf> {
    let dir = std::fs::canonicalize(".")?.join(lab_dir()).join("bmc-venv");
    let python = dir.join("bin").join("python");
    let stamp = dir.join("krrish-pin");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(PYGHMI) {
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let venv = || run(Command::new("python3").args(["-m", "venv"]).arg(&dir));
    // Debian's own python3 keeps venv in a package of its own.
    if !venv().unwrap_or(false) {
        let _ = std::fs::remove_dir_all(&dir);
        apt_install(&["python3", "python3-venv"])?;
    }
    if !python.exists() && !venv()? {
        bail!(
            "python3 -m venv {} failed: the lab's BMC emulator needs Python 3 with venv \
             (apt-get install python3-venv)",
            dir.display()
        );
    }
    let pip = dir.join("bin").join("pip");
    if !run(Command::new(&pip).args(["install", "--quiet", PYGHMI]))? {
        bail!(
            "{} install {PYGHMI} failed (PyPI unreachable?)",
            pip.display()
        );
    }
    std::fs::write(&stamp, PYGHMI)?;
    eprintln!("xtask: BMC emulator ({PYGHMI}) in {}", dir.display());
    Ok(python)
}

/// libvirtd wants the `libvirt-qemu` user (the daemon-system package
/// normally makes it) and virtlogd running first; there is no systemd on
/// our machines, so both are started by hand.
fn start_libvirt(state: &mut State) -> Result<()> {
    if !quiet_ok(Command::new("getent").args(["group", "kvm"])) {
        output(Command::new("groupadd").args(["-r", "kvm"]))?;
    }
    kvm_device_for_group_kvm()?;
    let lock_manager_changed = use_virtlockd(state)?;
    if libvirt_answers() && !lock_manager_changed {
        return Ok(());
    }
    // The checks below look for the daemons by name: the second daemon's
    // would pass for the system's (it starts again after them).
    second_daemon::stop();
    if lock_manager_changed && quiet_ok(Command::new("pgrep").args(["-x", "libvirtd"])) {
        eprintln!("xtask: restarting libvirtd for its lock manager (virtlockd)");
        let _ = Command::new("pkill").args(["-x", "libvirtd"]).output();
        let deadline = Instant::now() + Duration::from_secs(15);
        while quiet_ok(Command::new("pgrep").args(["-x", "libvirtd"])) {
            if Instant::now() > deadline {
                bail!("libvirtd did not stop within 15 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if !quiet_ok(Command::new("getent").args(["group", "kvm"])) {
        output(Command::new("groupadd").args(["-r", "kvm"]))?;
    }
    if !quiet_ok(Command::new("getent").args(["group", "libvirt-qemu"])) {
        output(Command::new("groupadd").args(["-r", "libvirt-qemu"]))?;
    }
    if !quiet_ok(Command::new("id").arg("libvirt-qemu")) {
        output(Command::new("useradd").args([
            "-r",
            "-g",
            "libvirt-qemu",
            "-G",
            "kvm",
            "libvirt-qemu",
        ]))?;
    }
    for d in ["/var/log/libvirt", "/var/run/libvirt", "/var/lib/libvirt"] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {d}"))?;
    }
    if !quiet_ok(Command::new("pgrep").args(["-x", "virtlogd"])) {
        output(Command::new("virtlogd").arg("-d"))?;
        state.set("started_virtlogd", "yes");
    }
    if !quiet_ok(Command::new("pgrep").args(["-x", "virtlockd"])) {
        output(Command::new("virtlockd").arg("-d"))?;
        state.set("started_virtlockd", "yes");
    }
    if !quiet_ok(Command::new("pgrep").args(["-x", "libvirtd"])) {
        output(Command::new("libvirtd").arg("-d"))?;
        state.set("started_libvirtd", "yes");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !libvirt_answers() {
        if Instant::now() > deadline {
            bail!("libvirtd started but {LIBVIRT_URI} does not answer after 15 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// QEMU's settings file and the line that makes libvirt take a lock on
/// every guest disk through virtlockd (fcntl locks on the image files; our
/// DFS stand-in is one directory, so the lock covers every lab host).
const QEMU_CONF: &str = "/etc/libvirt/qemu.conf";
const LOCKD_LINE: &str = "lock_manager = \"lockd\"";

/// Disk locks by a real lock manager: libvirt's virtlockd refuses to start
/// a guest whose disk another running guest holds — a second guard, at the
/// storage, behind the controller's "never two copies". Returns whether the
/// settings changed (libvirtd must then restart to read them). What it
/// changed is recorded so that `lab down` undoes exactly that.
fn use_virtlockd(state: &mut State) -> Result<bool> {
    let text = std::fs::read_to_string(QEMU_CONF).ok();
    let has = |t: &str| t.lines().any(|l| l.trim() == LOCKD_LINE);
    match &text {
        Some(t) if has(t) => Ok(false),
        Some(t) => {
            let mut t = t.clone();
            if !t.ends_with('\n') && !t.is_empty() {
                t.push('\n');
            }
            t.push_str(&format!("{LOCKD_LINE}\n"));
            std::fs::write(QEMU_CONF, t).with_context(|| format!("writing {QEMU_CONF}"))?;
            state.set("qemu_conf", "appended");
            Ok(true)
        }
        None => {
            std::fs::create_dir_all("/etc/libvirt")?;
            std::fs::write(
                QEMU_CONF,
                format!(
                    "# Written by `cargo xtask lab up`; `lab down` removes it.\n{LOCKD_LINE}\n"
                ),
            )
            .with_context(|| format!("writing {QEMU_CONF}"))?;
            state.set("qemu_conf", "created");
            Ok(true)
        }
    }
}

/// Undoes [`use_virtlockd`]'s change to QEMU's settings.
fn undo_virtlockd(state: &State) -> Option<String> {
    match state.get("qemu_conf") {
        Some("created") => std::fs::remove_file(QEMU_CONF)
            .ok()
            .map(|()| QEMU_CONF.to_string()),
        Some("appended") => {
            let text = std::fs::read_to_string(QEMU_CONF).ok()?;
            let kept: String = text
                .lines()
                .filter(|l| l.trim() != LOCKD_LINE)
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(QEMU_CONF, kept)
                .ok()
                .map(|()| format!("the lock_manager line of {QEMU_CONF}"))
        }
        _ => None,
    }
}

/// Debian's udev rule gives `/dev/kvm` to group `kvm`, mode 0660; without
/// udev it stays root-only. libvirt then probes QEMU with KVM as root but
/// finds KVM unusable for its `libvirt-qemu` user, throws its capability
/// cache away on every call and re-probes: 48 s per domain start,
/// measured. Setting the rule's ownership brings a start back to 0.3 s.
fn kvm_device_for_group_kvm() -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dev = Path::new("/dev/kvm");
    let Ok(meta) = std::fs::metadata(dev) else {
        return Ok(());
    };
    if meta.mode() & 0o060 == 0o060 && group_name(meta.gid()).as_deref() == Some("kvm") {
        return Ok(());
    }
    output(Command::new("chgrp").args(["kvm", "/dev/kvm"]))?;
    output(Command::new("chmod").args(["0660", "/dev/kvm"]))?;
    eprintln!("xtask: /dev/kvm set to root:kvm 0660 (Debian's udev rule; no udev here)");
    Ok(())
}

fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next();
        (f.next()?.parse::<u32>().ok()? == gid).then(|| name.to_string())
    })
}

/// KVM if a guest actually boots with it (on our machines `/dev/kvm`
/// exists but hangs guests), else `qemu` (TCG). Cached in the state file
/// once decided.
fn probe_accel(guest: &Path) -> Result<&'static str> {
    if let Some(t) = State::load().get("domain_type") {
        if t == "kvm" || t == "qemu" {
            eprintln!("xtask: domain type `{t}` (probed earlier; `lab down` forgets it)");
            return Ok(if t == "kvm" { "kvm" } else { "qemu" });
        }
    }
    if !Path::new("/dev/kvm").exists() {
        return Ok("qemu");
    }
    let run = std::fs::canonicalize(".")?.join(lab_dir()).join("probe");
    std::fs::create_dir_all(&run)?;
    let console = run.join("kvm-probe.console");
    let _ = std::fs::remove_file(&console);
    let name = format!("{DOMAIN_PREFIX}probe.kvm");
    let xml = probe_domain_xml(
        &name,
        &guest.join("vmlinuz").display().to_string(),
        &guest.join("initrd.gz").display().to_string(),
        &console.display().to_string(),
    )?;
    let xml_file = run.join("kvm-probe.xml");
    std::fs::write(&xml_file, xml)?;
    let started = quiet_ok(
        Command::new("virsh")
            .args(["-c", LIBVIRT_URI, "create"])
            .arg(&xml_file),
    );
    let mut booted = false;
    if started {
        let deadline = Instant::now() + KVM_PROBE_WAIT;
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&console).unwrap_or_default();
            if text.contains(UP_MARKER) {
                booted = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = Command::new("virsh")
            .args(["-c", LIBVIRT_URI, "destroy", &name])
            .output();
    }
    let _ = std::fs::remove_dir_all(&run);
    Ok(if booted { "kvm" } else { "qemu" })
}

/// The KVM probe's domain, written with an XML writer (paths come from
/// the checkout's location, which may hold any character).
fn probe_domain_xml(name: &str, kernel: &str, initrd: &str, console: &str) -> Result<String> {
    use quick_xml::events::BytesText;
    let mut w = quick_xml::Writer::new(std::io::Cursor::new(Vec::new()));
    w.create_element("domain")
        .with_attribute(("type", "kvm"))
        .write_inner_content(|w| {
            w.create_element("name")
                .write_text_content(BytesText::new(name))?;
            w.create_element("memory")
                .with_attribute(("unit", "MiB"))
                .write_text_content(BytesText::new("128"))?;
            w.create_element("vcpu")
                .write_text_content(BytesText::new("1"))?;
            w.create_element("os").write_inner_content(|w| {
                w.create_element("type")
                    .with_attribute(("arch", "x86_64"))
                    .with_attribute(("machine", "pc"))
                    .write_text_content(BytesText::new("hvm"))?;
                w.create_element("kernel")
                    .write_text_content(BytesText::new(kernel))?;
                w.create_element("initrd")
                    .write_text_content(BytesText::new(initrd))?;
                w.create_element("cmdline")
                    .write_text_content(BytesText::new("console=ttyS0 quiet krrish.vm=probe"))?;
                Ok(())
            })?;
            w.create_element("devices").write_inner_content(|w| {
                w.create_element("serial")
                    .with_attribute(("type", "file"))
                    .write_inner_content(|w| {
                        w.create_element("source")
                            .with_attribute(("path", console))
                            .write_empty()?;
                        w.create_element("target")
                            .with_attribute(("port", "0"))
                            .write_empty()?;
                        Ok(())
                    })?;
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(String::from_utf8(w.into_inner().into_inner())?)
}

/// Removes every domain (`krrish.*`), namespace (`krl-*`) and file the
/// lab made, and stops the daemons `up` started. Safe to run twice.
pub fn down() -> Result<()> {
    let state = State::load();
    let mut removed = Vec::new();
    let uris =
        std::iter::once(LIBVIRT_URI).chain(state.get("libvirt_uri_b").filter(|u| !u.is_empty()));
    for uri in uris {
        if !quiet_ok(Command::new("virsh").args(["-c", uri, "version"])) {
            continue;
        }
        let names = output(Command::new("virsh").args(["-c", uri, "list", "--all", "--name"]))?;
        for n in names
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(DOMAIN_PREFIX))
        {
            let _ = Command::new("virsh")
                .args(["-c", uri, "destroy", n])
                .output();
            let _ = Command::new("virsh")
                .args(["-c", uri, "undefine", n])
                .output();
            removed.push(format!("domain {n}"));
        }
    }
    // Before the system daemons: `pkill -x libvirtd` would take B too,
    // without its pid file's care.
    removed.extend(second_daemon::stop());
    removed.extend(second_daemon::remove());
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(NETNS_PREFIX) {
                output(Command::new("ip").args(["netns", "del", &n]))?;
                removed.push(format!("namespace {n}"));
            }
        }
    }
    // Root-side links of the lab's networks (their namespaced peers went
    // with the namespaces): the bridges and any stray uplinks.
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let ours = n.starts_with(NETNS_PREFIX)
                || n == "kvout"
                || is_lab_uplink(&n, "km")
                || is_lab_uplink(&n, "ks")
                || is_lab_uplink(&n, "kv");
            if ours {
                let _ = Command::new("ip").args(["link", "del", &n]).output();
                removed.push(format!("link {n}"));
            }
        }
    }
    for (flag, daemon) in [
        ("started_libvirtd", "libvirtd"),
        ("started_virtlogd", "virtlogd"),
        ("started_virtlockd", "virtlockd"),
    ] {
        if state.get(flag) == Some("yes") {
            let _ = Command::new("pkill").args(["-x", daemon]).output();
            removed.push(format!("daemon {daemon}"));
        }
    }
    for d in ["run", "dfs", "tests", "inventory-hosts", "inventory-run"] {
        let p = lab_dir().join(d);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            removed.push(p.display().to_string());
        }
    }
    // Daemons of a lab run that was killed, and of standing hosts (their
    // command lines name the lab's run directory or the hosts').
    for d in ["run", "inventory-hosts", "inventory-run"] {
        let run_dir = std::fs::canonicalize(".")?.join(lab_dir()).join(d);
        if quiet_ok(
            Command::new("pkill")
                .arg("-KILL")
                .arg("-f")
                .arg(format!("{}/", run_dir.display())),
        ) {
            removed.push(format!("stray lab daemons of {d}/"));
        }
    }
    if let Some(undone) = undo_virtlockd(&state) {
        removed.push(undone);
    }
    let _ = std::fs::remove_file(State::path());
    eprintln!(
        "xtask: lab down: removed {}",
        if removed.is_empty() {
            "nothing (nothing was up)".to_string()
        } else {
            removed.join(", ")
        }
    );
    Ok(())
}

/// `km<i>a`, `km<i>b`, `kv<i>`: krrish-lab's root-side uplink names.
fn is_lab_uplink(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return false;
    };
    let digits = rest.trim_end_matches(['a', 'b']);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && rest.len() - digits.len() <= 1
}

fn status() -> Result<()> {
    let state = State::load();
    println!(
        "libvirt ({LIBVIRT_URI}): {}",
        if libvirt_answers() {
            "answers"
        } else {
            "not running"
        }
    );
    println!(
        "second libvirt (live migration): {}",
        match state.get("libvirt_uri_b").filter(|u| !u.is_empty()) {
            Some(u) if quiet_ok(Command::new("virsh").args(["-c", u, "version"])) =>
                format!("{u} answers"),
            Some(u) => format!("{u} not running"),
            None => "not started".to_string(),
        }
    );
    println!(
        "domain type: {}",
        state.get("domain_type").unwrap_or("not probed")
    );
    println!("guest: {}", state.get("guest_dir").unwrap_or("not built"));
    let missing = missing_packages();
    println!(
        "packages: {}",
        if missing.is_empty() {
            "all present".to_string()
        } else {
            format!("missing {}", missing.join(" "))
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_probe_domain_keeps_odd_paths_as_text() {
        let xml = super::probe_domain_xml(
            "krrish.probe.kvm",
            "/w/it's <here>/vmlinuz",
            "/w/a&b/initrd.gz",
            "/w/c\"d/console",
        )
        .unwrap();
        assert!(xml.starts_with("<domain type=\"kvm\">"), "{xml}");
        assert!(
            xml.contains("<kernel>/w/it&apos;s &lt;here&gt;/vmlinuz</kernel>"),
            "{xml}"
        );
        assert!(
            xml.contains("<initrd>/w/a&amp;b/initrd.gz</initrd>"),
            "{xml}"
        );
        assert!(xml.contains("path=\"/w/c&quot;d/console\""), "{xml}");
        assert!(!xml.contains("<here>"), "{xml}");
    }
}
