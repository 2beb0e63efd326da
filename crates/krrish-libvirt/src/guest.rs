//! The lab guest: a Debian cloud kernel and a busybox initramfs (built by
//! `cargo xtask lab up`) whose init loads the virtio drivers, sets the
//! address it finds on the kernel command line and prints [`UP_MARKER`]
//! on the serial console. It answers ping, configures the vxnet NICs
//! plugged into it, and answers `ping ADDR` on its command port (a second
//! serial port on a Unix socket): [`ask_ping`].

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The line the guest's init prints once its NIC is configured.
pub const UP_MARKER: &str = "krrish-guest up";
/// How often the console file is read while waiting for the marker.
const CONSOLE_POLL: Duration = Duration::from_millis(100);

/// Kernel and initramfs on disk (readable by the hypervisor's user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

impl GuestImage {
    /// The image `cargo xtask lab up` builds into `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        GuestImage {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.gz"),
        }
    }

    pub fn missing(&self) -> Option<&Path> {
        [&self.kernel, &self.initrd]
            .into_iter()
            .find(|p| !p.exists())
            .map(PathBuf::as_path)
    }
}

/// The kernel command line that tells the guest its name and address.
pub fn cmdline(vm: &str, ip: Ipv4Addr, prefix: u8) -> String {
    format!("console=ttyS0 quiet panic=-1 krrish.vm={vm} krrish.ip={ip}/{prefix}")
}

/// Waits until the console file shows the guest's marker after byte
/// `from` (earlier lines belong to earlier boots). Err(text seen) on
/// timeout.
pub async fn wait_up(console: &Path, from: u64, vm: &str, timeout: Duration) -> Result<(), String> {
    let want = format!("{UP_MARKER} vm={vm} ");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let text = std::fs::read(console).unwrap_or_default();
        let start = (from as usize).min(text.len());
        let tail = String::from_utf8_lossy(&text[start..]);
        if tail.contains(&want) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let last: Vec<&str> = tail.lines().rev().take(3).collect();
            return Err(format!(
                "the guest did not report up within {} s (console: {})",
                timeout.as_secs(),
                if last.is_empty() {
                    "empty".to_string()
                } else {
                    last.into_iter().rev().collect::<Vec<_>>().join(" | ")
                }
            ));
        }
        tokio::time::sleep(CONSOLE_POLL).await;
    }
}

/// Bytes in the console file now (where the next boot's lines start).
pub fn console_len(console: &Path) -> u64 {
    std::fs::metadata(console).map(|m| m.len()).unwrap_or(0)
}

/// Asks the guest behind `socket` (its command port) to ping `to`: Ok(true)
/// if it got an answer. Err when the guest does not reply within `wait`.
pub fn ask_ping(socket: &Path, to: Ipv4Addr, wait: Duration) -> Result<bool, String> {
    ping_via(|c| ask(socket, c, wait), to)
}

/// [`ask_ping`] through `ask` (a command line in, the guest's reply out:
/// this machine's socket, or a host's `krrish lab-guest-ask`).
pub fn ping_via(
    ask: impl FnOnce(&str) -> Result<String, String>,
    to: Ipv4Addr,
) -> Result<bool, String> {
    ask(&format!("ping {to}")).map(|r| r == "ok")
}

/// Asks the guest to write `data` at the start of 1 MiB block `block` of
/// the disk with serial `serial` (see [`crate::names::volume_serial`]).
pub fn ask_write(
    socket: &Path,
    serial: &str,
    block: u64,
    data: u64,
    wait: Duration,
) -> Result<(), String> {
    write_via(|c| ask(socket, c, wait), serial, block, data)
}

/// [`ask_write`] through `ask` (see [`ping_via`]).
pub fn write_via(
    ask: impl FnOnce(&str) -> Result<String, String>,
    serial: &str,
    block: u64,
    data: u64,
) -> Result<(), String> {
    match ask(&format!("write {serial} {block} {data}"))?.as_str() {
        "ok" => Ok(()),
        other => Err(format!(
            "the guest could not write block {block} of disk {serial}: {other}"
        )),
    }
}

/// What the guest reads at the start of block `block` of disk `serial`
/// (0 where nothing was written).
pub fn ask_read(socket: &Path, serial: &str, block: u64, wait: Duration) -> Result<u64, String> {
    read_via(|c| ask(socket, c, wait), serial, block)
}

/// [`ask_read`] through `ask` (see [`ping_via`]).
pub fn read_via(
    ask: impl FnOnce(&str) -> Result<String, String>,
    serial: &str,
    block: u64,
) -> Result<u64, String> {
    let r = ask(&format!("read {serial} {block}"))?;
    r.parse()
        .map_err(|_| format!("the guest could not read block {block} of disk {serial}: {r}"))
}

/// How long one try of a command waits for its reply before the command
/// is sent again (on a new connection): a guest still starting may miss
/// the first (the lab saw a first write go unanswered for 45 s while a
/// second, sent later, was answered at once). Commands are idempotent.
const ASK_TRY: Duration = Duration::from_secs(5);

/// Sends one command line to the guest's command port and returns the
/// rest of its reply line (`krrish-reply <command> <rest>`), sending it
/// again every [`ASK_TRY`] until `wait` has passed.
pub fn ask(socket: &Path, command: &str, wait: Duration) -> Result<String, String> {
    // Tries of ASK_TRY each, the last one shorter: `wait` in all (no wall
    // clock read here; the reads' own timeouts keep the time).
    let mut left = wait.max(Duration::from_millis(1));
    loop {
        let try_wait = left.min(ASK_TRY);
        left -= try_wait;
        match ask_once(socket, command, try_wait) {
            Err(AskError::NoReply(_)) if !left.is_zero() => continue,
            Err(AskError::NoReply(why)) => {
                return Err(format!(
                    "the guest did not reply to `{command}` within {} s: {why}",
                    wait.as_secs()
                ))
            }
            Err(AskError::Other(why)) => return Err(why),
            Ok(r) => return Ok(r),
        }
    }
}

enum AskError {
    /// Nothing came back in time: worth sending again.
    NoReply(String),
    Other(String),
}

fn ask_once(socket: &Path, command: &str, wait: Duration) -> Result<String, AskError> {
    use std::io::{BufRead, BufReader, Write};
    let shown = socket.display();
    let other = |e: std::io::Error| AskError::Other(format!("{shown}: {e}"));
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| AskError::Other(format!("the guest's command port {shown}: {e}")))?;
    s.set_read_timeout(Some(wait)).map_err(other)?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(other)?;
    let want = format!("krrish-reply {command} ");
    // `write S B D` is answered as `write S B ok`: match on the first
    // words the reply repeats.
    let words: Vec<&str> = command.split(' ').collect();
    let echo = match words.first() {
        Some(&"write") => format!("krrish-reply {} ", words[..3.min(words.len())].join(" ")),
        _ => want,
    };
    let mut lines = BufReader::new(s);
    // Replies to earlier asks (a timed-out one) may come first.
    for _ in 0..ASK_LINES_MAX {
        let mut line = String::new();
        match lines.read_line(&mut line) {
            Ok(0) => {
                return Err(AskError::Other(format!(
                    "{shown}: closed before the guest replied"
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(AskError::NoReply(e.to_string())),
        }
        if let Some(r) = line.trim().strip_prefix(&echo) {
            return Ok(r.to_string());
        }
    }
    Err(AskError::Other(format!(
        "{shown}: no reply to `{command}` in {ASK_LINES_MAX} lines"
    )))
}

/// Lines read from a command port for one reply at most.
const ASK_LINES_MAX: usize = 64;
