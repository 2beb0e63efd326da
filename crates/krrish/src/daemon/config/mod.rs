//! The daemons' config files: serde types (unknown fields are errors), then
//! checked by hand into [`ControllerConfig`] / [`AgentDaemonConfig`]. Every
//! error names file, line, column and what was expected, like the scenario
//! loader's (whose helpers this reuses). Relative paths in a config are
//! relative to the config file's directory, so a config and the files it
//! names move together.
//!
//! Map: this file holds the shared checks and the controller's and the DFS
//! lease service's configs; [`agent`] the agent's (driver kinds included).

use krrish_core::ha::HaConfig;
use krrish_core::timings::AgentTimings;
use krrish_core::{HostSpec, VmSpec};
use krrish_scenario::duration::Dur;
use krrish_scenario::load::{read_nonempty, yaml_error, Source};
use krrish_scenario::{load_cluster, Cluster, LoadError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod agent;
pub use agent::*;

// ---------------------------------------------------------------- file types

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControllerTimingsFile {
    heartbeat_interval: Option<Dur>,
    heartbeat_misses: Option<u32>,
    heartbeat_grace: Option<Dur>,
    fence_timeout: Option<Dur>,
    lease_duration: Option<Dur>,
    lease_margin: Option<Dur>,
    boot_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FencerKind {
    Command,
    Ipmi,
}

/// One map for every kind, checked by hand after parsing: serde's tagged
/// enums buffer their content and lose the line numbers of errors inside.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FencerFile {
    kind: FencerKind,
    command: Option<Vec<String>>,
    timeout: Option<Dur>,
    // kind: ipmi
    username: Option<String>,
    password_file: Option<PathBuf>,
    port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControllerFile {
    listen: String,
    store: PathBuf,
    cluster_file: PathBuf,
    #[serde(default)]
    timings: ControllerTimingsFile,
    fencer: FencerFile,
    pid_file: Option<PathBuf>,
    api: Option<ApiFile>,
    events_file: Option<PathBuf>,
    dfs: Option<DfsClientFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DfsClientFile {
    lease_service: String,
    timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    listen: String,
    token_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DfsFile {
    listen: String,
    store: PathBuf,
    max_lease: Option<Dur>,
    pid_file: Option<PathBuf>,
}

// ------------------------------------------------------------- checked types

/// `krrish dfs`: the DFS's lease service.
#[derive(Clone, Debug)]
pub struct DfsConfig {
    pub listen: SocketAddr,
    /// Where revocations are kept (redb): they outlive a restart.
    pub store: PathBuf,
    /// The longest lease granted; also how long a revocation after a
    /// restart waits for leases granted before it.
    pub max_lease_ms: u64,
    pub pid_file: Option<PathBuf>,
}

/// How the controller powers a host off.
#[derive(Clone, Debug, PartialEq)]
pub enum FencerConfig {
    /// A Pacemaker-style fence agent: `argv` run with `KRRISH_FENCE_*` in
    /// its environment; exit 0 = confirmed off. Killed after `timeout_ms`.
    Command { argv: Vec<String>, timeout_ms: u64 },
    /// IPMI over LAN (IPMI 2.0, `ipmitool -I lanplus`) to each host's BMC
    /// at its `ipmi` address: power off, then power status until "off".
    Ipmi(IpmiFencing),
}

/// The built-in IPMI fencer's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct IpmiFencing {
    pub username: String,
    /// Handed to ipmitool with `-f` (never on its command line).
    pub password_file: PathBuf,
    pub port: u16,
    /// The whole fence, power off to "off" confirmed.
    pub timeout_ms: u64,
}

#[derive(Clone, Debug)]
pub struct ControllerConfig {
    pub listen: SocketAddr,
    pub store: PathBuf,
    pub cluster_file: PathBuf,
    pub cluster: Cluster,
    pub ha: HaConfig,
    pub fencer: FencerConfig,
    pub pid_file: Option<PathBuf>,
    /// The HTTP API, when the config has an `api` section.
    pub api: Option<ApiConfig>,
    /// Where the typed control-plane events go as JSON lines, if anywhere.
    pub events_file: Option<PathBuf>,
    /// The DFS's lease service, when the config has a `dfs` section.
    pub dfs: Option<DfsClientConfig>,
}

/// Where a daemon reaches the DFS's lease service (`krrish dfs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DfsClientConfig {
    /// `host:port`.
    pub lease_service: String,
    /// Each call gives up after this.
    pub timeout_ms: u64,
}

/// A lease call gives up after this unless the config says otherwise.
pub const DFS_CALL_TIMEOUT_MS_DEFAULT: u64 = 2_000;

/// The controller's HTTP API: where it listens and the bearer token every
/// call must carry (read from `token_file` at start; never logged).
#[derive(Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub token_file: PathBuf,
    pub token: String,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("token_file", &self.token_file)
            .field("token", &"<redacted>")
            .finish()
    }
}

// ------------------------------------------------------------------- loading

/// Shortest heartbeat interval accepted (as in scenario settings).
const HEARTBEAT_INTERVAL_MIN_MS: u64 = 100;
/// Shortest DFS lease accepted (as in scenario settings).
const LEASE_DURATION_MIN_MS: u64 = 3_000;

fn parse<T: for<'de> Deserialize<'de>>(src: &Source<'_>) -> Result<T, LoadError> {
    serde_yaml::from_str(src.text).map_err(|e| yaml_error(src, e))
}

/// `key`'s value in the file (first occurrence), else the top-level key
/// `section`, for errors found after parsing.
fn at(src: &Source<'_>, key: &str, section: &str) -> Option<(usize, usize)> {
    src.find(key, "").or_else(|| src.key_line(section))
}

/// The first `driver.<key>` given (`true`) that this driver kind does not
/// take, as an error at its line: `driver.<key>: <why>`.
fn refuse_given(src: &Source<'_>, fields: &[(&str, bool)], why: &str) -> Result<(), LoadError> {
    match fields.iter().find(|(_, given)| *given) {
        Some((key, _)) => Err(src.error(
            src.find(key, "").or_else(|| src.key_line("driver")),
            format!("driver.{key}: {why}"),
        )),
        None => Ok(()),
    }
}

/// A listening daemon's `listen`, `store` and `pid_file`: the address
/// parsed, the files beside the config and their directories there.
fn daemon_files(
    src: &Source<'_>,
    path: &Path,
    listen: &str,
    example: &str,
    store: &Path,
    pid_file: &Option<PathBuf>,
) -> Result<(SocketAddr, PathBuf, Option<PathBuf>), LoadError> {
    let addr: SocketAddr = listen.parse().map_err(|e| {
        src.error(
            at(src, "listen", "listen"),
            format!("listen: '{listen}': {e}; expected an address and port such as {example}"),
        )
    })?;
    if store.as_os_str().is_empty() {
        return Err(src.error(
            at(src, "store", "store"),
            "store: expected a file name (created on first start)",
        ));
    }
    let store = beside(path, store);
    check_dir(
        src,
        "store",
        &store,
        "the store file itself is created on first start",
    )?;
    let pid_file = pid_file.as_ref().map(|p| beside(path, p));
    if let Some(p) = &pid_file {
        check_dir(
            src,
            "pid_file",
            p,
            "the pid file itself is written at start",
        )?;
    }
    Ok((addr, store, pid_file))
}

/// `fencer.<key>` given to a fencer kind that does not take it.
fn refuse_fencer_field(
    src: &Source<'_>,
    key: &str,
    given: bool,
    kind: &str,
) -> Result<(), LoadError> {
    if !given {
        return Ok(());
    }
    Err(src.error(
        src.find(key, "").or_else(|| src.key_line("fencer")),
        format!("fencer.{key}: `kind: {kind}` does not take this"),
    ))
}

/// `p` relative to the config file's directory unless absolute.
fn beside(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    config.parent().unwrap_or(Path::new(".")).join(p)
}

fn cluster(src: &Source<'_>, key: &str, path: &Path) -> Result<Cluster, LoadError> {
    load_cluster(path).map_err(|e| src.error(src.find(key, ""), format!("{key}: {e}")))
}

pub fn load_controller(path: &Path) -> Result<ControllerConfig, LoadError> {
    let text = read_nonempty(
        path,
        "a controller config (listen, store, cluster_file, fencer)",
    )?;
    let src = Source {
        file: path,
        text: &text,
    };
    let f: ControllerFile = parse(&src)?;

    let (listen, store, pid_file) =
        daemon_files(&src, path, &f.listen, "0.0.0.0:7400", &f.store, &f.pid_file)?;

    let cluster_file = beside(path, &f.cluster_file);
    let cluster = cluster(&src, "cluster_file", &cluster_file)?;

    let mut ha = HaConfig::default();
    cluster.apply_to(&mut ha);
    let t = &f.timings;
    let bad = |key: &str, why: &str| {
        src.error(
            at(&src, key, "timings"),
            format!("timings.{key}: expected {why}"),
        )
    };
    if let Some(d) = t.heartbeat_interval {
        if d.ms() < HEARTBEAT_INTERVAL_MIN_MS {
            return Err(bad("heartbeat_interval", "at least 100ms"));
        }
        ha.heartbeat.interval_ms = d.ms();
    }
    if let Some(n) = t.heartbeat_misses {
        if n == 0 || n > 100 {
            return Err(bad("heartbeat_misses", "1 to 100"));
        }
        ha.heartbeat.misses_max = n;
    }
    if let Some(d) = t.heartbeat_grace {
        ha.heartbeat.grace_ms = d.ms();
    }
    if let Some(d) = t.fence_timeout {
        if d.ms() == 0 {
            return Err(bad("fence_timeout", "more than 0"));
        }
        ha.fence_timeout_ms = d.ms();
    }
    if let Some(d) = t.lease_duration {
        if d.ms() < LEASE_DURATION_MIN_MS {
            return Err(bad("lease_duration", "at least 3s"));
        }
        ha.lease_duration_ms = d.ms();
    }
    if let Some(d) = t.lease_margin {
        ha.lease_margin_ms = d.ms();
    }
    if let Some(d) = t.boot_timeout {
        if d.ms() == 0 {
            return Err(bad("boot_timeout", "more than 0"));
        }
        ha.boot_timeout_ms = d.ms();
    }

    let fence_timeout = |given: Option<Dur>| match given {
        None => Ok(ha.fence_timeout_ms),
        Some(d) if d.ms() > 0 && d.ms() <= ha.fence_timeout_ms => Ok(d.ms()),
        Some(_) => Err(src.error(
            src.find("timeout", ""),
            format!(
                "fencer.timeout: expected more than 0 and at most timings.fence_timeout ({} ms): \
                 the controller stops waiting for the fence then",
                ha.fence_timeout_ms
            ),
        )),
    };
    let fencer = match f.fencer.kind {
        FencerKind::Ipmi => {
            refuse_fencer_field(&src, "command", f.fencer.command.is_some(), "ipmi")?;
            let username = match &f.fencer.username {
                Some(u) if !u.is_empty() && u.len() <= 16 && !u.contains(char::is_whitespace) => {
                    u.clone()
                }
                _ => {
                    return Err(src.error(
                        src.find("username", "").or_else(|| src.key_line("fencer")),
                        "fencer.username: expected the BMC user (1 to 16 characters, no spaces; \
                         IPMI's limit)",
                    ))
                }
            };
            let Some(pw) = &f.fencer.password_file else {
                return Err(src.error(
                    src.find("kind", "ipmi").or_else(|| src.key_line("fencer")),
                    "fencer.password_file: expected a file holding the BMC password \
                     (handed to ipmitool with -f, never on a command line)",
                ));
            };
            let password_file = beside(path, pw);
            if let Err(e) = std::fs::metadata(&password_file) {
                return Err(src.error(
                    src.find("password_file", ""),
                    format!("fencer.password_file: {}: {e}", password_file.display()),
                ));
            }
            let port = match f.fencer.port {
                Some(0) => {
                    return Err(src.error(
                        src.find("port", ""),
                        "fencer.port: expected a UDP port, 1 to 65535 (IPMI's is 623)",
                    ))
                }
                Some(p) => p,
                None => 623,
            };
            FencerConfig::Ipmi(IpmiFencing {
                username,
                password_file,
                port,
                timeout_ms: fence_timeout(f.fencer.timeout)?,
            })
        }
        FencerKind::Command => {
            let argv = match &f.fencer.command {
                Some(a) if !a.is_empty() && !a[0].is_empty() => a.clone(),
                _ => {
                    return Err(src.error(
                        src.find("command", "").or_else(|| src.key_line("fencer")),
                        "fencer.command: expected the fence agent and its arguments, \
                         such as [/usr/local/sbin/fence-host, --verbose]",
                    ))
                }
            };
            // A program named by a relative path lives beside the config;
            // a bare name is looked up in PATH as a shell would.
            let mut argv = argv;
            if argv[0].contains('/') {
                argv[0] = beside(path, Path::new(&argv[0])).display().to_string();
            }
            for (key, given) in [
                ("username", f.fencer.username.is_some()),
                ("password_file", f.fencer.password_file.is_some()),
                ("port", f.fencer.port.is_some()),
            ] {
                refuse_fencer_field(&src, key, given, "command")?;
            }
            FencerConfig::Command {
                argv,
                timeout_ms: fence_timeout(f.fencer.timeout)?,
            }
        }
    };

    let api = f
        .api
        .as_ref()
        .map(|a| api_config(&src, path, a))
        .transpose()?;
    if f.dfs.is_none() && src.key_line("dfs").is_some() {
        return Err(src.error(
            src.key_line("dfs"),
            "dfs: expected `lease_service: host:port` (an empty section would turn the \
             second liveness channel off without saying so; remove it to run without one)",
        ));
    }
    let dfs = f
        .dfs
        .as_ref()
        .map(|d| dfs_client(&src, d, ha.heartbeat.interval_ms, "the heartbeat interval"))
        .transpose()?;
    // Found by the bad-input adversary: each of these passed `--check` and
    // failed at start.
    if let Some(a) = api.as_ref().filter(|a| a.listen == listen) {
        return Err(src.error(
            src.key_line("api"),
            format!(
                "api.listen: {} is the agents' `listen` too; expected another port",
                a.listen
            ),
        ));
    }
    let events_file = f.events_file.as_ref().map(|p| beside(path, p));
    if let Some(p) = &events_file {
        check_dir(
            &src,
            "events_file",
            p,
            "the events file itself is appended to",
        )?;
    }

    Ok(ControllerConfig {
        listen,
        store,
        cluster_file,
        cluster,
        ha,
        fencer,
        pid_file,
        api,
        events_file,
        dfs,
    })
}

/// The `dfs` section: the address checked, the time-out at most `max_ms`
/// (`max_what`): a call that hangs must not hold up what comes next.
fn dfs_client(
    src: &Source<'_>,
    d: &DfsClientFile,
    max_ms: u64,
    max_what: &str,
) -> Result<DfsClientConfig, LoadError> {
    let address_ok = if d.lease_service.contains('/') {
        Err("a URL, not an address".to_string())
    } else {
        check_address(&d.lease_service)
    };
    address_ok.map_err(|why| {
        src.error(
            at(src, "lease_service", "dfs"),
            format!(
                "dfs.lease_service: '{}': {why}; expected the lease service's host:port, \
                 such as 10.78.0.1:7490",
                d.lease_service
            ),
        )
    })?;
    let timeout_ms = match d.timeout {
        None => DFS_CALL_TIMEOUT_MS_DEFAULT.min(max_ms),
        Some(t) if t.ms() > 0 && t.ms() <= max_ms => t.ms(),
        Some(_) => {
            return Err(src.error(
                at(src, "timeout", "dfs"),
                format!("dfs.timeout: expected more than 0 and at most {max_what} ({max_ms} ms)"),
            ))
        }
    };
    Ok(DfsClientConfig {
        lease_service: d.lease_service.clone(),
        timeout_ms,
    })
}

/// Longest lease the DFS grants unless its config says otherwise.
pub const DFS_MAX_LEASE_MS_DEFAULT: u64 = 60_000;

pub fn load_dfs(path: &Path) -> Result<DfsConfig, LoadError> {
    let text = read_nonempty(path, "a DFS lease service config (listen, store)")?;
    let src = Source {
        file: path,
        text: &text,
    };
    let f: DfsFile = parse(&src)?;
    let (listen, store, pid_file) = daemon_files(
        &src,
        path,
        &f.listen,
        "10.78.0.1:7490 (on the storage network)",
        &f.store,
        &f.pid_file,
    )?;
    let max_lease_ms = match f.max_lease {
        None => DFS_MAX_LEASE_MS_DEFAULT,
        Some(d) if d.ms() >= LEASE_DURATION_MIN_MS => d.ms(),
        Some(_) => {
            return Err(src.error(
                at(&src, "max_lease", "max_lease"),
                "max_lease: expected at least 3s (the shortest lease a host may ask for)",
            ))
        }
    };
    Ok(DfsConfig {
        listen,
        store,
        max_lease_ms,
        pid_file,
    })
}

/// Longest API token accepted (it travels in a header).
const API_TOKEN_BYTES_MAX: usize = 4096;

fn api_config(src: &Source<'_>, path: &Path, a: &ApiFile) -> Result<ApiConfig, LoadError> {
    let listen: SocketAddr = a.listen.parse().map_err(|e| {
        src.error(
            src.find("listen", &a.listen)
                .or_else(|| src.key_line("api")),
            format!(
                "api.listen: '{}': {e}; expected an address and port such as 127.0.0.1:7480",
                a.listen
            ),
        )
    })?;
    let token_file = beside(path, &a.token_file);
    let bad = |why: String| {
        src.error(
            src.find("token_file", "").or_else(|| src.key_line("api")),
            format!("api.token_file: {}: {why}", token_file.display()),
        )
    };
    let text =
        std::fs::read_to_string(&token_file).map_err(|e| bad(format!("cannot read: {e}")))?;
    // What goes wrong is said; the token itself is never repeated.
    let token = text.trim();
    if token.is_empty() {
        return Err(bad(
            "empty; expected the API token (one line, such as the output of \
             `openssl rand -hex 32`)"
                .into(),
        ));
    }
    if token.len() > API_TOKEN_BYTES_MAX || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(format!(
            "expected one line of at most {API_TOKEN_BYTES_MAX} printable ASCII characters \
             without spaces"
        )));
    }
    Ok(ApiConfig {
        listen,
        token_file,
        token: token.to_string(),
    })
}

/// `file`'s directory exists (checked before start, so a typo is a config
/// error rather than a daemon that started half way).
fn check_dir(src: &Source<'_>, key: &str, file: &Path, note: &str) -> Result<(), LoadError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if file.is_dir() {
        return Err(src.error(
            at(src, key, key),
            format!(
                "{key}: {} is a directory; expected a file ({note})",
                file.display()
            ),
        ));
    }
    if dir.is_dir() {
        return Ok(());
    }
    Err(src.error(
        at(src, key, key),
        format!(
            "{key}: directory {} does not exist; create it ({note})",
            dir.display()
        ),
    ))
}

/// `host:port` with a numeric port; the host part may be a name (resolved
/// at each dial, so a controller that moves is found again).
fn check_address(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("no port".into());
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("'{port}' is not a port number")),
    }
}
