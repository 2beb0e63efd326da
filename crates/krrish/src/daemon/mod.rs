//! The two daemons that ship: `krrish controller` and `krrish agent`.
//!
//! Map:
//! - [`config`] — their YAML configs, loaded with located errors.
//! - [`controller`] — the control plane over real TCP, its redb store and
//!   the fencing of [`fencer`].
//! - [`fencer`] — power fencing by a fence agent or IPMI over LAN
//!   (ipmitool), storage fencing by the DFS lease service.
//! - [`dfs`] — `krrish dfs`, the DFS lease service.
//! - [`api`] — the controller's HTTP/JSON API (`/v1/…`, bearer token),
//!   bridged into its event loop as operator connections.
//! - [`agent`] — one per hypervisor host, with the simulated driver until
//!   the libvirt one lands.
//!
//! Both log to stdout in the trace format the simulator writes
//! (`[   12.345s] controller       text`, time since the daemon started),
//! stop cleanly on SIGTERM/SIGINT (exit 0), and start nothing until their
//! config, cluster file, store and socket are all in hand: a bad config is
//! exit code 2 with `file:line:column: field: what was expected`.

pub mod agent;
pub mod api;
pub mod config;
pub mod controller;
pub mod dfs;
pub mod fencer;

use anyhow::{Context, Result};
use krrish_core::ha::secs;
use krrish_wire::TraceSink;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// How long a stopping daemon waits for its last log lines to be written.
pub const STDOUT_FINISH_WAIT: Duration = Duration::from_secs(2);

/// Lines waiting for the stdout writer; past this, lines are dropped and
/// counted rather than letting a stalled reader stall the daemon.
const STDOUT_LINES_QUEUED_MAX: usize = 8192;

/// The daemon's log: trace lines to stdout, written and flushed one by one
/// by a thread of its own. A daemon's log is read live (journald, a pipe, a
/// test); a reader that stops reading must not stop heartbeats and fencing,
/// so the daemon's loop only queues (bounded) and never blocks on stdout.
pub struct Stdout {
    tx: RefCell<Option<SyncSender<String>>>,
    dropped: Cell<u64>,
    done: Receiver<()>,
    /// `events_file`: the control plane's typed events, one JSON line each.
    events: RefCell<Option<std::fs::File>>,
}

impl Stdout {
    pub fn start() -> Self {
        let (tx, rx) = sync_channel::<String>(STDOUT_LINES_QUEUED_MAX);
        let (done_tx, done) = channel();
        std::thread::spawn(move || {
            for line in rx {
                let mut out = std::io::stdout().lock();
                // With stdout gone there is nowhere left to report a write
                // error; the daemon's job goes on.
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            let _ = done_tx.send(());
        });
        Self {
            tx: RefCell::new(Some(tx)),
            dropped: Cell::new(0),
            done,
            events: RefCell::new(None),
        }
    }

    /// Also writes every typed event to `path` as a JSON line
    /// (`{"at_ms", "kind", "host", "vm"}`), for comparing runs.
    pub fn record_events_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        *self.events.borrow_mut() = Some(f);
        Ok(())
    }

    /// Queues one preformatted line (dropped, and counted, when the queue
    /// is full).
    pub fn print(&self, line: String) {
        let tx = self.tx.borrow();
        let Some(tx) = tx.as_ref() else { return };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped.set(self.dropped.get() + 1),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Writes what is queued, waiting at most `limit` (stdout may be stuck),
    /// and stops the log.
    pub fn finish(&self, limit: Duration) {
        drop(self.tx.borrow_mut().take());
        let _ = self.done.recv_timeout(limit);
    }
}

impl TraceSink for Stdout {
    fn line(&self, at_ms: u64, source: &str, text: &str) {
        let dropped = self.dropped.replace(0);
        if dropped > 0 {
            self.print(trace_line(
                at_ms,
                "log",
                &format!("{dropped} lines dropped: stdout was not read fast enough"),
            ));
        }
        self.print(trace_line(at_ms, source, text));
    }

    fn event(&self, at_ms: u64, source: &str, notice: &krrish_core::ha::Notice) {
        // The record first: whoever saw the line finds the record (a test
        // under load read the file between the two).
        if let Some(f) = self.events.borrow_mut().as_mut() {
            let record = serde_json::json!({
                "at_ms": at_ms,
                "kind": notice.kind(),
                "host": notice.host().map(|h| h.as_str()),
                "vm": notice.vm().map(|v| v.as_str()),
            });
            // A lost record costs a comparison, never the daemon's job.
            let _ = writeln!(f, "{record}");
        }
        self.line(at_ms, source, &notice.to_string());
    }
}

/// The simulator's trace format: `[   12.345s] source           text`.
pub fn trace_line(at_ms: u64, source: &str, text: &str) -> String {
    format!("[{:>10}] {source:<16} {text}", secs(at_ms))
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

/// Both signals, installed before the services start so that a stop
/// request from then on is handled, not left to the default action.
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
