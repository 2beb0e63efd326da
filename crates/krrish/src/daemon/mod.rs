//! The two daemons that ship: `krrish controller` and `krrish agent`.
//!
//! Map:
//! - [`config`] — their YAML configs, loaded with located errors.
//! - [`controller`] — the control plane over real TCP, its redb store and
//!   an external fence agent ([`controller::CommandFencer`]).
//! - [`agent`] — one per hypervisor host, with the simulated driver until
//!   the libvirt one lands.
//!
//! Both log to stdout in the trace format the simulator writes
//! (`[   12.345s] controller       text`, time since the daemon started),
//! stop cleanly on SIGTERM/SIGINT (exit 0), and start nothing until their
//! config, cluster file, store and socket are all in hand: a bad config is
//! exit code 2 with `file:line:column: field: what was expected`.

pub mod agent;
pub mod config;
pub mod controller;

use anyhow::{Context, Result};
use krrish_core::ha::secs;
use krrish_wire::TraceSink;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Trace lines to stdout, each flushed at once: a daemon's log is read live
/// (by journald, a pipe, a test), and a crash must not lose buffered lines.
pub struct StdoutTrace;

impl TraceSink for StdoutTrace {
    fn line(&self, at_ms: u64, source: &str, text: &str) {
        print_line(&format!("[{:>10}] {source:<16} {text}", secs(at_ms)));
    }
}

/// One preformatted line to stdout. Write errors are dropped on purpose:
/// with stdout gone there is nowhere left to report them, and the daemon's
/// job (heartbeats, fencing) must go on.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A pid file that is removed again on a clean exit (fence scripts read it
/// to find the process; after a crash it stays, naming a dead pid).
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn write(path: &Path) -> Result<Self> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid file {}", path.display()))?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Which signal asked the daemon to stop.
pub async fn shutdown_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Both signals, installed before anything starts so that a stop request
/// during start-up is not lost to the default action.
pub fn install_signals() -> Result<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok((term, int))
}

/// The single-threaded runtime both daemons run in: the services are
/// `!Send` (`Rc`, `RefCell`) and run on a `LocalSet`.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// How a daemon ended: a start-up failure is exit code 2 (nothing was
/// started), a stop on a signal 0.
pub fn exit(result: Result<()>, what: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {what}: {e:#}");
            ExitCode::from(2)
        }
    }
}
