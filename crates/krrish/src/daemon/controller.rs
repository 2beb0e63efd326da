//! `krrish controller --config controller.yaml`: the control plane over real
//! TCP, its state in a redb file, hosts fenced by [`super::fencer`] (a fence
//! agent or IPMI, and the DFS lease service), and (with an `api` section)
//! the HTTP API of [`super::api`].

use super::api;
use super::config::{load_controller, ControllerConfig};
use super::fencer::DaemonFencer;
use super::{install_signals, runtime, shutdown_signal, PidFile, Stdout, STDOUT_FINISH_WAIT};
use anyhow::{Context, Result};
use krrish_cloud::network::lb::FabricReport;
use krrish_controller::{run_controller, ClusterStatus, ControllerMachine, FabricReader, Store};
use krrish_core::ha::HaManager;
use krrish_core::VmId;
use krrish_dfs::LeaseClient;
use krrish_wire::tokio_net::{MonotonicClock, TokioListen};
use krrish_wire::{Clock, TraceSink};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::mpsc;

/// VMs named one by one in the start-up summary; the rest are counted.
const SUMMARY_VMS_MAX: usize = 20;

/// The data plane for the load balancers' health checks, from the agents'
/// reports: there is no probe service on real hosts yet, so a backend is
/// reachable while the controller has its VM running on a host that is up
/// with its VM network (bond1) not reported down.
pub struct BelievedFabric {
    pub machine: Rc<RefCell<ControllerMachine>>,
}

impl FabricReader for BelievedFabric {
    async fn read_fabric(&self, vms: Vec<VmId>) -> Result<FabricReport, String> {
        Ok(self.machine.borrow().believed_fabric(&vms))
    }
}

/// The state the controller starts from, and the log line that says which.
/// The controller machine from its store (restored) or its cluster file
/// (new), and a line saying which.
fn start_machine(
    now_ms: u64,
    cfg: &ControllerConfig,
    store: &Store,
) -> Result<(ControllerMachine, String)> {
    let saved = store
        .load()
        .with_context(|| format!("cannot read the store {}", cfg.store.display()))?;
    let restored = saved.is_some();
    if let Some(snap) = &saved {
        let missing = snap.core.hosts_missing_from(&cfg.cluster.hosts);
        if let Some((vm, host)) = missing.first() {
            anyhow::bail!(
                "the store {} has {vm} on {host}, which {} no longer lists{}; put {host} back (a host leaves the cluster once nothing runs or waits there: drain it in maintenance first), or start from an empty store",
                cfg.store.display(),
                cfg.cluster_file.display(),
                match missing.len() {
                    1 => String::new(),
                    n => format!(" ({} hosts missing in all)", n),
                }
            );
        }
    }
    let m = ControllerMachine::start(
        now_ms,
        cfg.ha.clone(),
        cfg.cluster.hosts.clone(),
        cfg.cluster.vms.clone(),
        saved,
    );
    let line = if restored {
        format!(
            "restored state from {}: {}",
            cfg.store.display(),
            summary(m.core())
        )
    } else {
        format!(
            "new state for cluster {} from {}: {} (store {})",
            cfg.cluster.name,
            cfg.cluster_file.display(),
            summary(m.core()),
            cfg.store.display()
        )
    };
    Ok((m, line))
}

/// `N hosts, M VMs`, then hosts not up and VMs away from home by name, so
/// an operator sees at start what the controller remembers.
fn summary(core: &HaManager) -> String {
    let status = ClusterStatus::of(core);
    let mut s = format!("{} hosts, {} VMs", status.hosts.len(), status.vms.len());
    let down: Vec<String> = status
        .hosts
        .iter()
        .filter(|(_, h)| h.state != "up")
        .map(|(id, h)| format!("{id} {}", h.state))
        .collect();
    if !down.is_empty() {
        s.push_str(&format!("; hosts not up: {}", down.join(", ")));
    }
    let away: Vec<String> = core
        .vms()
        .iter()
        .filter_map(|(id, v)| {
            let st = status.vms.get(id)?;
            match &st.host {
                Some(h) if *h == v.spec.home => None,
                Some(h) => Some(format!("{id} {} on {h}", st.state)),
                None => Some(format!("{id} {}", st.state)),
            }
        })
        .collect();
    if !away.is_empty() {
        let n = away.len();
        let shown: Vec<&str> = away
            .iter()
            .take(SUMMARY_VMS_MAX)
            .map(String::as_str)
            .collect();
        s.push_str(&format!("; VMs away from home: {}", shown.join(", ")));
        if n > SUMMARY_VMS_MAX {
            s.push_str(&format!(" and {} more", n - SUMMARY_VMS_MAX));
        }
    }
    s
}

/// Loads and checks everything, then runs until SIGTERM or SIGINT.
pub fn main(config: &Path, check_only: bool) -> Result<()> {
    let cfg = load_controller(config)?;
    if check_only {
        println!("{}: ok", config.display());
        return Ok(());
    }
    // Bound before the runtime exists so that a taken port fails start-up
    // before anything else happens.
    let std_listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    std_listener
        .set_nonblocking(true)
        .context("cannot make the listening socket non-blocking")?;
    let api_listener = match &cfg.api {
        None => None,
        Some(a) => {
            let l = std::net::TcpListener::bind(a.listen)
                .with_context(|| format!("cannot listen on {} for the API", a.listen))?;
            l.set_nonblocking(true)
                .context("cannot make the API socket non-blocking")?;
            Some(l)
        }
    };
    let store = Store::open(&cfg.store)?;

    let rt = runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (mut term, mut int) = install_signals()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .context("cannot register the listening socket")?;
        let clock = Rc::new(MonotonicClock::start());
        let trace = Rc::new(Stdout::start());
        if let Some(p) = &cfg.events_file {
            trace
                .record_events_to(p)
                .with_context(|| format!("events_file {}", p.display()))?;
        }
        let (machine, line) = start_machine(clock.now_ms(), &cfg, &store)?;
        let _pid = cfg.pid_file.as_deref().map(PidFile::write).transpose()?;
        let fencer = DaemonFencer::new(
            cfg.fencer.clone(),
            clock.clone(),
            trace.clone(),
            cfg.dfs
                .as_ref()
                .map(|d| LeaseClient::new(&d.lease_service, Duration::from_millis(d.timeout_ms))),
        );
        let say = |text: &str| trace.line(clock.now_ms(), "controller", text);
        say(&format!("listening on {} for agents", cfg.listen));
        say(&line);
        say(&match &cfg.dfs {
            Some(d) => format!(
                "fencing with {} and the DFS lease service at {} (renewals read as the \
                 second liveness channel; leases revoked)",
                fencer.describe(),
                d.lease_service
            ),
            None => format!(
                "fencing with {} (no DFS lease service: hosts are fenced by the fence agent \
                 alone, on management silence alone)",
                fencer.describe()
            ),
        });
        let machine = Rc::new(RefCell::new(machine));
        let store = Rc::new(store);
        let (listener, pipes) = api::Bridged::new(TokioListen(listener));
        let http = match (&cfg.api, api_listener) {
            (Some(a), Some(l)) => {
                let l = tokio::net::TcpListener::from_std(l)
                    .context("cannot register the API socket")?;
                // The API's tasks are Send (axum spawns them); their log
                // lines reach the (single-threaded) log through a queue.
                let (log_tx, mut log_rx) = mpsc::channel::<String>(api::LOG_LINES_QUEUED_MAX);
                let (t, k) = (trace.clone(), clock.clone());
                tokio::task::spawn_local(async move {
                    while let Some(line) = log_rx.recv().await {
                        t.line(k.now_ms(), "controller", &line);
                    }
                });
                say(&format!(
                    "API on http://{} (token from {})",
                    a.listen,
                    a.token_file.display()
                ));
                Some(api::serve(l, pipes, a.token.clone(), log_tx))
            }
            _ => {
                drop(pipes);
                None
            }
        };
        let http = async move {
            match http {
                Some(h) => h.await,
                None => std::future::pending().await,
            }
        };
        let fabric = Rc::new(BelievedFabric {
            machine: machine.clone(),
        });
        let service = run_controller(
            listener,
            machine,
            Some(store),
            Rc::new(fencer),
            fabric,
            clock.clone(),
            trace.clone(),
        );
        tokio::select! {
            // `run_controller` never returns on its own.
            _ = service => anyhow::bail!("the controller loop ended unexpectedly"),
            r = http => anyhow::bail!("the API server ended unexpectedly: {r:?}"),
            signal = shutdown_signal(&mut term, &mut int) => {
                // State is saved write-ahead (before each decision goes
                // out), so there is nothing left to flush. Nothing runs
                // once this future ends: the listener and the agents'
                // connections close when the local set is dropped below.
                say(&format!("{signal}: shutting down"));
            }
        }
        trace.finish(STDOUT_FINISH_WAIT);
        Ok(())
    })?;
    // Spawned tasks (the acceptor holding the listener, connection tasks)
    // live in the local set: dropping it closes them before exit.
    drop(local);
    drop(rt);
    Ok(())
}
