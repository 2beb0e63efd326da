//! `krrish controller --config controller.yaml`: the control plane over real
//! TCP, its state in a redb file, hosts fenced by an external fence agent,
//! and (with an `api` section) the HTTP API of [`super::api`].

use super::api;
use super::config::{load_controller, ControllerConfig, FencerConfig};
use super::{install_signals, runtime, shutdown_signal, PidFile, Stdout, STDOUT_FINISH_WAIT};
use anyhow::{Context, Result};
use krrish_cloud::network::lb::FabricReport;
use krrish_controller::{
    run_controller, ClusterStatus, ControllerMachine, FabricReader, Fencer, Store,
};
use krrish_core::ha::{FenceAction, FenceError, HaManager};
use krrish_core::{HostId, HostSpec, VmId};
use krrish_dfs::{LeaseClient, LeaseError};
use krrish_wire::tokio_net::{MonotonicClock, TokioListen};
use krrish_wire::{Clock, TraceSink};
use std::cell::RefCell;
use std::path::Path;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Bytes of a fence agent's stderr kept for the error; the rest is read and
/// dropped so the agent never blocks on a full pipe.
const FENCE_STDERR_BYTES_MAX: u64 = 4096;
/// VMs named one by one in the start-up summary; the rest are counted.
const SUMMARY_VMS_MAX: usize = 20;

/// Fencing through an external command, Pacemaker-style: the command gets
/// `KRRISH_FENCE_HOST`, `KRRISH_FENCE_IPMI` (the host's BMC address) and
/// `KRRISH_FENCE_ACTION` (`off` or `reboot`) in its environment; exit 0
/// means "confirmed off", anything else (or no answer within the timeout,
/// after which it is killed) a failed fence.
///
/// The storage half of fencing is the DFS's lease service (`krrish dfs`,
/// the config's `dfs.lease_service`): renewals are read from it (the
/// second liveness channel) and a host's lease is revoked there. Without
/// one configured the controller says so and does without: no second
/// channel (a silent host is fenced on management silence alone, within
/// the storm limits) and no revocation — a host whose fence agent fails
/// is retried and ends `fence-failed` with its VMs down, never assumed off.
pub struct CommandFencer<T> {
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub clock: Rc<MonotonicClock>,
    pub trace: Rc<T>,
    pub dfs: Option<LeaseClient>,
}

/// A lease call off the event loop (the client blocks).
async fn lease_call<R: Send + 'static>(
    client: &Option<LeaseClient>,
    call: impl FnOnce(&LeaseClient) -> Result<R, LeaseError> + Send + 'static,
) -> Result<R, FenceError> {
    let Some(c) = client.clone() else {
        return Err(FenceError::NotConfigured(NO_DFS.to_string()));
    };
    tokio::task::spawn_blocking(move || call(&c))
        .await
        .map_err(|e| FenceError::Failed(format!("DFS lease call: {e}")))?
        .map_err(|e| match e {
            LeaseError::Unreachable { .. } => FenceError::Unreachable(e.to_string()),
            LeaseError::Refused(_) | LeaseError::Garbled { .. } => {
                FenceError::Failed(e.to_string())
            }
        })
}

impl<T: TraceSink> CommandFencer<T> {
    fn say(&self, text: &str) {
        self.trace.line(self.clock.now_ms(), "fence-agent", text);
    }
}

const NO_DFS: &str = "no DFS lease service configured";

impl<T: TraceSink> Fencer for CommandFencer<T> {
    async fn ipmi_fence(&self, host: &HostSpec, action: FenceAction) -> Result<(), FenceError> {
        let action = match action {
            FenceAction::Off => "off",
            FenceAction::Reboot => "reboot",
        };
        let program = &self.argv[0];
        self.say(&format!(
            "running {program} for {} (IPMI {}, action {action})",
            host.id, host.addresses.ipmi
        ));
        let mut child = tokio::process::Command::new(program)
            .args(&self.argv[1..])
            .env("KRRISH_FENCE_HOST", host.id.as_str())
            .env("KRRISH_FENCE_IPMI", host.addresses.ipmi.to_string())
            .env("KRRISH_FENCE_ACTION", action)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Dropped on the time-out below: the agent is killed, not left
            // to power hosts off after the controller stopped waiting.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                FenceError::NotConfigured(format!("fence agent {program}: cannot start: {e}"))
            })?;
        let mut stderr = child.stderr.take();
        let run = async {
            let mut kept = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = (&mut *s)
                    .take(FENCE_STDERR_BYTES_MAX)
                    .read_to_end(&mut kept)
                    .await;
                let _ = tokio::io::copy(s, &mut tokio::io::sink()).await;
            }
            (child.wait().await, kept)
        };
        let (status, stderr) = match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => {
                return Err(FenceError::Unreachable(format!(
                    "fence agent {program} did not finish within {} ms: killed",
                    self.timeout.as_millis()
                )))
            }
        };
        let status =
            status.map_err(|e| FenceError::Failed(format!("fence agent {program}: {e}")))?;
        if status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&stderr);
        let stderr = stderr.trim();
        Err(FenceError::Failed(if stderr.is_empty() {
            format!("fence agent {program} failed ({status})")
        } else {
            format!("fence agent {program} failed ({status}): {stderr}")
        }))
    }

    async fn revoke_lease(&self, host: &HostId) -> Result<u64, FenceError> {
        let h = host.clone();
        let left = lease_call(&self.dfs, move |c| c.revoke(&h)).await?;
        // The service's "runs N ms more" counted from its answer, which is
        // no later than now: now + N is never early.
        Ok(self.clock.now_ms() + left)
    }

    async fn reinstate_lease(&self, host: &HostId) -> Result<(), FenceError> {
        if self.dfs.is_none() {
            // Nothing was revoked (see `revoke_lease`), so nothing to undo.
            return Ok(());
        }
        let h = host.clone();
        lease_call(&self.dfs, move |c| c.reinstate(&h)).await
    }

    async fn lease_renewals(&self) -> Result<Vec<(HostId, u64)>, FenceError> {
        let all = lease_call(&self.dfs, |c| c.renewals()).await?;
        Ok(all.into_iter().map(|r| (r.host, r.age_ms)).collect())
    }
}

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
        let fencer = match &cfg.fencer {
            FencerConfig::Command { argv, timeout_ms } => CommandFencer {
                argv: argv.clone(),
                timeout: Duration::from_millis(*timeout_ms),
                clock: clock.clone(),
                trace: trace.clone(),
                dfs: cfg.dfs.as_ref().map(|d| {
                    LeaseClient::new(&d.lease_service, Duration::from_millis(d.timeout_ms))
                }),
            },
        };
        let say = |text: &str| trace.line(clock.now_ms(), "controller", text);
        say(&format!("listening on {} for agents", cfg.listen));
        say(&line);
        say(&match &cfg.dfs {
            Some(d) => format!(
                "fencing with {} and the DFS lease service at {} (renewals read as the \
                 second liveness channel; leases revoked)",
                fencer_name(&cfg.fencer),
                d.lease_service
            ),
            None => format!(
                "fencing with {} (no DFS lease service: hosts are fenced by the fence agent \
                 alone, on management silence alone)",
                fencer_name(&cfg.fencer)
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

fn fencer_name(f: &FencerConfig) -> String {
    match f {
        FencerConfig::Command { argv, timeout_ms } => {
            format!("fence agent {} (timeout {timeout_ms} ms)", argv.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krrish_sim::TraceBuf;
    use std::path::PathBuf;

    /// A scratch directory with `script` as an executable `fence.sh`.
    fn scratch(name: &str, script: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("krrish-fence-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("fence.sh");
        std::fs::write(&p, format!("#!/bin/sh\ncd {}\n{script}", dir.display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn fence(dir: &Path, timeout_ms: u64, action: FenceAction) -> Result<(), FenceError> {
        let rt = crate::daemon::runtime().unwrap();
        let host = krrish_sim::demo::cluster(2, 1, 1).0.remove(0);
        rt.block_on(async {
            let f = CommandFencer {
                argv: vec![dir.join("fence.sh").display().to_string(), "--flag".into()],
                timeout: Duration::from_millis(timeout_ms),
                clock: Rc::new(MonotonicClock::start()),
                trace: Rc::new(TraceBuf::default()),
                dfs: None,
            };
            f.ipmi_fence(&host, action).await
        })
    }

    #[test]
    fn exit_0_is_confirmed_off_and_the_agent_is_told_host_bmc_and_action() {
        let dir = scratch(
            "ok",
            "echo \"$1 $KRRISH_FENCE_HOST $KRRISH_FENCE_IPMI $KRRISH_FENCE_ACTION\" > asked\nexit 0\n",
        );
        let host = krrish_sim::demo::cluster(2, 1, 1).0.remove(0);
        assert_eq!(fence(&dir, 5_000, FenceAction::Reboot), Ok(()));
        let asked = std::fs::read_to_string(dir.join("asked")).unwrap();
        assert_eq!(
            asked.trim(),
            format!("--flag {} {} reboot", host.id, host.addresses.ipmi)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failing_agent_is_a_failed_fence_with_its_stderr() {
        let dir = scratch("fail", "echo 'BMC refused the login' >&2\nexit 3\n");
        let err = fence(&dir, 5_000, FenceAction::Off).unwrap_err();
        assert!(matches!(err, FenceError::Failed(_)), "{err:?}");
        let err = err.to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("BMC refused the login"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_agent_that_does_not_answer_in_time_fails_and_is_killed() {
        // Killed, the shell never gets to `touch late`.
        let dir = scratch("hang", "sleep 1\ntouch late\nexit 0\n");
        let err = fence(&dir, 100, FenceAction::Off).unwrap_err();
        assert!(matches!(err, FenceError::Unreachable(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("did not finish within 100 ms: killed"),
            "{err}"
        );
        std::thread::sleep(Duration::from_millis(1_500));
        assert!(!dir.join("late").exists(), "the fence agent ran on");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_agent_fails_and_without_a_dfs_nothing_is_assumed() {
        let dir = std::env::temp_dir().join("krrish-fence-no-such-dir");
        let err = fence(&dir, 1_000, FenceAction::Off).unwrap_err();
        assert!(matches!(err, FenceError::NotConfigured(_)), "{err:?}");
        let err = err.to_string();
        assert!(err.contains("cannot start"), "{err}");
        // No DFS: revocation fails (the core then retries and ends
        // fence-failed instead of waiting out a lease that does not exist).
        let rt = crate::daemon::runtime().unwrap();
        rt.block_on(async {
            let f = CommandFencer {
                argv: vec!["/bin/true".into()],
                timeout: Duration::from_secs(1),
                clock: Rc::new(MonotonicClock::start()),
                trace: Rc::new(TraceBuf::default()),
                dfs: None,
            };
            let h = HostId::new("hv-01");
            assert!(f.revoke_lease(&h).await.is_err());
            assert!(f.lease_renewals().await.is_err());
            assert_eq!(f.reinstate_lease(&h).await, Ok(()));
        });
    }
}
