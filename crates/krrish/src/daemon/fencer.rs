//! How the controller daemon fences: the power half by an external fence
//! agent (Pacemaker-style) or by IPMI over LAN itself (`ipmitool -I
//! lanplus`), the storage half by the DFS's lease service (`krrish dfs`).
//!
//! **Fence agent** (`kind: command`): the command gets `KRRISH_FENCE_HOST`,
//! `KRRISH_FENCE_IPMI` (the host's BMC address) and `KRRISH_FENCE_ACTION`
//! (`off` or `reboot`) in its environment; exit 0 means "confirmed off",
//! anything else (or no answer within the timeout, after which it is
//! killed) a failed fence.
//!
//! **IPMI** (`kind: ipmi`): `chassis power off` to the host's BMC at its
//! `ipmi` address, then `chassis power status` every half second until the
//! BMC says off — a BMC that accepted the command is not yet a host that is
//! off (fence_ipmilan does the same). A reboot is off, confirmed, then on.
//! The password reaches ipmitool as a file (`-f`), never on a command line.
//! The whole fence is bounded by the fencer's timeout.
//!
//! **DFS lease service** (the config's `dfs.lease_service`): renewals are
//! read from it (the second liveness channel) and a host's lease is revoked
//! there. Without one the controller says so and does without: no second
//! channel (a silent host is fenced on management silence alone, within
//! the storm limits) and no revocation — a host whose power fence fails is
//! retried and ends `fence-failed` with its VMs down, never assumed off.

use super::config::{FencerConfig, IpmiFencing};
use krrish_controller::Fencer;
use krrish_core::ha::{FenceAction, FenceError};
use krrish_core::{HostId, HostSpec};
use krrish_dfs::{LeaseClient, LeaseError};
use krrish_wire::tokio_net::MonotonicClock;
use krrish_wire::{Clock, TraceSink};
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Bytes of a tool's stdout and stderr kept each; the rest is read and
/// dropped so the tool never blocks on a full pipe.
const TOOL_OUTPUT_BYTES_MAX: u64 = 4096;
/// How often the IPMI fencer asks a BMC whether the host is off yet.
const IPMI_STATUS_EVERY: Duration = Duration::from_millis(500);

const NO_DFS: &str = "no DFS lease service configured";

pub struct DaemonFencer<T> {
    pub power: FencerConfig,
    pub clock: Rc<MonotonicClock>,
    pub trace: Rc<T>,
    pub dfs: Option<LeaseClient>,
}

/// What a tool printed, as far as kept.
struct ToolOutput {
    stdout: String,
    stderr: String,
}

impl<T: TraceSink> DaemonFencer<T> {
    pub fn new(
        power: FencerConfig,
        clock: Rc<MonotonicClock>,
        trace: Rc<T>,
        dfs: Option<LeaseClient>,
    ) -> Self {
        DaemonFencer {
            power,
            clock,
            trace,
            dfs,
        }
    }

    fn say(&self, text: &str) {
        self.trace.line(self.clock.now_ms(), "fencer", text);
    }

    /// What it fences with, for the controller's start-up line.
    pub fn describe(&self) -> String {
        match &self.power {
            FencerConfig::Command { argv, timeout_ms } => {
                format!("fence agent {} (timeout {timeout_ms} ms)", argv.join(" "))
            }
            FencerConfig::Ipmi(i) => format!(
                "IPMI over LAN (ipmitool lanplus, user {}, port {}, timeout {} ms)",
                i.username, i.port, i.timeout_ms
            ),
        }
    }

    /// Runs `program` to the end within `limit` (killed after it): its
    /// output if it exited 0, else a failed fence naming its status and
    /// stderr.
    async fn run_tool(
        &self,
        program: &str,
        args: &[String],
        env: &[(&str, String)],
        limit: Duration,
    ) -> Result<ToolOutput, FenceError> {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropped on the time-out below: the tool is killed, not left
            // to power hosts off after the controller stopped waiting.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| FenceError::NotConfigured(format!("{program}: cannot start: {e}")))?;
        let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
        let run = async {
            let (o, e) = tokio::join!(keep(out.take()), keep(err.take()));
            (child.wait().await, o, e)
        };
        let (status, o, e) = match tokio::time::timeout(limit, run).await {
            Ok(r) => r,
            Err(_) => {
                return Err(FenceError::Unreachable(format!(
                    "{program} did not finish within {} ms: killed",
                    limit.as_millis()
                )))
            }
        };
        let status = status.map_err(|e| FenceError::Failed(format!("{program}: {e}")))?;
        let output = ToolOutput {
            stdout: String::from_utf8_lossy(&o).trim().to_string(),
            stderr: String::from_utf8_lossy(&e).trim().to_string(),
        };
        if status.success() {
            return Ok(output);
        }
        Err(FenceError::Failed(if output.stderr.is_empty() {
            format!("{program} failed ({status})")
        } else {
            format!("{program} failed ({status}): {}", output.stderr)
        }))
    }

    /// Runs the configured fence agent for `host` with `action` (`off`,
    /// `reboot`, or `on` for DPM) in `KRRISH_FENCE_ACTION`.
    async fn fence_agent(
        &self,
        argv: &[String],
        timeout_ms: u64,
        host: &HostSpec,
        action: &str,
    ) -> Result<(), FenceError> {
        let program = &argv[0];
        self.say(&format!(
            "running {program} for {} (IPMI {}, action {action})",
            host.id, host.addresses.ipmi
        ));
        let env = [
            ("KRRISH_FENCE_HOST", host.id.to_string()),
            ("KRRISH_FENCE_IPMI", host.addresses.ipmi.to_string()),
            ("KRRISH_FENCE_ACTION", action.to_string()),
        ];
        self.run_tool(program, &argv[1..], &env, Duration::from_millis(timeout_ms))
            .await
            .map(drop)
            .map_err(|e| match e {
                FenceError::Failed(w) => FenceError::Failed(format!("fence agent {w}")),
                FenceError::Unreachable(w) => FenceError::Unreachable(format!("fence agent {w}")),
                FenceError::NotConfigured(w) => {
                    FenceError::NotConfigured(format!("fence agent {w}"))
                }
            })
    }

    /// One ipmitool call to `host`'s BMC, within `limit`.
    async fn ipmitool(
        &self,
        i: &IpmiFencing,
        host: &HostSpec,
        words: &[&str],
        limit: Duration,
    ) -> Result<String, FenceError> {
        let mut args: Vec<String> = [
            "-I",
            "lanplus",
            "-H",
            &host.addresses.ipmi.to_string(),
            "-p",
            &i.port.to_string(),
            "-U",
            &i.username,
            "-f",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(i.password_file.display().to_string());
        // ipmitool waits 3 s for an answer and asks twice more (a BMC busy
        // powering a host off answers late); the fence's deadline is above it.
        args.extend(["-R", "2", "-N", "3"].map(String::from));
        args.extend(words.iter().map(|w| w.to_string()));
        let out = self.run_tool("ipmitool", &args, &[], limit).await?;
        Ok(out.stdout)
    }

    async fn ipmi(
        &self,
        i: &IpmiFencing,
        host: &HostSpec,
        action: FenceAction,
    ) -> Result<(), FenceError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(i.timeout_ms);
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        self.say(&format!(
            "IPMI power off {} at {}:{}",
            host.id, host.addresses.ipmi, i.port
        ));
        self.ipmitool(i, host, &["chassis", "power", "off"], left())
            .await
            .map_err(|e| ipmi_error(host, e))?;
        // Accepted is not yet off: ask until the BMC says so.
        loop {
            let status = self
                .ipmitool(i, host, &["chassis", "power", "status"], left())
                .await
                .map_err(|e| ipmi_error(host, e))?;
            if status.to_ascii_lowercase().contains("is off") {
                break;
            }
            if left() <= IPMI_STATUS_EVERY {
                return Err(FenceError::Unreachable(format!(
                    "IPMI {}: still not off after {} ms (last status: {status:?})",
                    host.id, i.timeout_ms
                )));
            }
            tokio::time::sleep(IPMI_STATUS_EVERY).await;
        }
        self.say(&format!("IPMI: {} is off", host.id));
        if action == FenceAction::Reboot {
            self.ipmitool(i, host, &["chassis", "power", "on"], left())
                .await
                .map_err(|e| ipmi_error(host, e))?;
        }
        Ok(())
    }
}

/// Up to [`TOOL_OUTPUT_BYTES_MAX`] bytes of `pipe`; the rest is read and
/// dropped.
async fn keep<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut kept = Vec::new();
    if let Some(mut s) = pipe {
        let _ = (&mut s)
            .take(TOOL_OUTPUT_BYTES_MAX)
            .read_to_end(&mut kept)
            .await;
        let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
    }
    kept
}

/// An ipmitool failure as a fence error naming the host; "cannot start"
/// (no ipmitool installed) says what to install.
fn ipmi_error(host: &HostSpec, e: FenceError) -> FenceError {
    match e {
        FenceError::NotConfigured(w) => FenceError::NotConfigured(format!(
            "IPMI {}: {w} (install ipmitool: apt-get install ipmitool)",
            host.id
        )),
        FenceError::Failed(w) => FenceError::Failed(format!("IPMI {}: {w}", host.id)),
        FenceError::Unreachable(w) => FenceError::Unreachable(format!("IPMI {}: {w}", host.id)),
    }
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

impl<T: TraceSink> Fencer for DaemonFencer<T> {
    async fn ipmi_fence(&self, host: &HostSpec, action: FenceAction) -> Result<(), FenceError> {
        match &self.power {
            FencerConfig::Command { argv, timeout_ms } => {
                let action = match action {
                    FenceAction::Off => "off",
                    FenceAction::Reboot => "reboot",
                };
                self.fence_agent(argv, *timeout_ms, host, action).await
            }
            FencerConfig::Ipmi(i) => self.ipmi(i, host, action).await,
        }
    }

    async fn ipmi_power(&self, host: &HostSpec, on: bool) -> Result<(), FenceError> {
        match &self.power {
            FencerConfig::Command { argv, timeout_ms } => {
                let action = if on { "on" } else { "off" };
                self.fence_agent(argv, *timeout_ms, host, action).await
            }
            FencerConfig::Ipmi(i) if on => {
                let limit = Duration::from_millis(i.timeout_ms);
                self.say(&format!(
                    "IPMI power on {} at {}:{} (DPM)",
                    host.id, host.addresses.ipmi, i.port
                ));
                self.ipmitool(i, host, &["chassis", "power", "on"], limit)
                    .await
                    .map(drop)
                    .map_err(|e| ipmi_error(host, e))
            }
            FencerConfig::Ipmi(i) => self.ipmi(i, host, FenceAction::Off).await,
        }
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

    async fn lease_renewals(&self) -> Result<krrish_core::lease::LeaseRenewals, FenceError> {
        let all = lease_call(&self.dfs, |c| c.renewals()).await?;
        let power_on = all
            .hosts
            .iter()
            .filter_map(|r| Some((r.host.clone(), r.power_on.clone()?)))
            .collect();
        Ok(krrish_core::lease::LeaseRenewals {
            power_on,
            hosts: all.hosts.into_iter().map(|r| (r.host, r.age_ms)).collect(),
            // A service that does not say has listened long: as before.
            listening_for_ms: all.listening_for_ms.unwrap_or(u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krrish_sim::TraceBuf;
    use std::path::Path;
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
            let f = DaemonFencer::new(
                FencerConfig::Command {
                    argv: vec![dir.join("fence.sh").display().to_string(), "--flag".into()],
                    timeout_ms,
                },
                Rc::new(MonotonicClock::start()),
                Rc::new(TraceBuf::default()),
                None,
            );
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
            let f = DaemonFencer::new(
                FencerConfig::Command {
                    argv: vec!["/bin/true".into()],
                    timeout_ms: 1_000,
                },
                Rc::new(MonotonicClock::start()),
                Rc::new(TraceBuf::default()),
                None,
            );
            let h = HostId::new("hv-01");
            assert!(f.revoke_lease(&h).await.is_err());
            assert!(f.lease_renewals().await.is_err());
            assert_eq!(f.reinstate_lease(&h).await, Ok(()));
        });
    }
}
