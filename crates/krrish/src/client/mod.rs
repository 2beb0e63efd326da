//! `krrish [--endpoint URL] [--token-file F] hosts …|instances …|vxnets …|
//! routers …|eips …|dns-aliases …|load-balancers …|rdbs …|mongodbs …|
//! caches …|images …|volumes …|snapshots …|datastores …|disk-moves …|
//! rules …|ha …`: the operator's client of the
//! controller's HTTP API ([`crate::daemon::api`]).
//!
//! Map:
//! - [`Endpoint`] — where and with which token; [`Endpoint::call`] is the
//!   one HTTP exchange, its failures typed as [`CallError`].
//! - [`main`] — the subcommands, table or JSON output; the network ones
//!   (`vxnets`, `routers`, `eips`, `dns-aliases`) in [`network`],
//!   `load-balancers` in [`lb`], `rdbs` in [`rdb`], `mongodbs` and
//!   `caches` (and what the managed services share) in [`services`],
//!   `rules` and `ha` in [`rules`], the
//!   storage ones (`images`, `volumes`, `snapshots`, `instances capture`)
//!   in [`storage`]; `datastores` and `disk-moves` (storage live
//!   migration) in [`datastores`].
//! - [`parse_mib`] / [`parse_gib`] — `4G`, `4096M`, `4096` sizes.
//!
//! Exit codes: 0 done; 1 the controller refused (`error: <code>: <message>`
//! on stderr); 2 it could not be asked (no token, no connection, bad input).

mod datastores;
mod lb;
mod network;
mod rdb;
mod rules;
mod services;
mod storage;

pub use datastores::{DatastoresCmd, DiskMovesCmd};
pub use lb::LoadBalancersCmd;
pub use network::{DnsAliasesCmd, EipsCmd, RoutersCmd, VxnetsCmd};
pub use rdb::RdbsCmd;
pub use rules::{HaCmd, RulesCmd};
pub use services::{CachesCmd, MongodbsCmd};
pub use storage::{ImagesCmd, SnapshotsCmd, VolumesCmd};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where the API is unless `--endpoint` says otherwise.
pub const ENDPOINT_DEFAULT: &str = "http://127.0.0.1:7480";
/// The token's environment variable (when there is no `--token-file`).
pub const TOKEN_ENV: &str = "KRRISH_API_TOKEN";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A little past the server's own 10 s wait for the controller.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read (a big cluster's instance list fits many times).
const REPLY_BYTES_MAX: u64 = 64 << 20;

/// The API client's options (before the subcommand).
#[derive(Args, Clone, Debug)]
pub struct ApiOpts {
    /// The controller's API.
    #[arg(long, global = true, value_name = "URL", default_value = ENDPOINT_DEFAULT)]
    pub endpoint: String,
    /// A file holding the API token (else the KRRISH_API_TOKEN variable).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
pub enum HostsCmd {
    /// Every host with its state, spare state and bonds.
    List,
    /// The moves DRS would make now to balance the production hosts.
    DrsPlan,
    /// Put a host in maintenance: its VMs live-migrate away (or, if any
    /// cannot, nothing changes and the answer says why).
    Maintenance { id: String },
    /// Take a host out of maintenance.
    Activate { id: String },
}

#[derive(Subcommand)]
pub enum InstancesCmd {
    /// VMs, optionally only those in one state or on one host.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        host: Option<String>,
    },
    /// One VM.
    Show { id: String },
    /// Create a VM (RunInstances).
    Run {
        #[arg(long)]
        id: String,
        #[arg(long)]
        cpu: u32,
        /// 4G, 4096M or 4096 (MiB).
        #[arg(long, value_parser = parse_mib)]
        memory: u64,
        /// 40G, 1T or 40 (GiB).
        #[arg(long, value_parser = parse_gib)]
        disk: Option<u64>,
        /// restart, restore-on-repair or off.
        #[arg(long)]
        ha: Option<String>,
        #[arg(long)]
        priority: Option<u32>,
        /// Place it on this host (else the one with most room).
        #[arg(long)]
        host: Option<String>,
        /// Boot from this image of the DFS repository.
        #[arg(long)]
        image: Option<String>,
        /// Join this vxnet at launch.
        #[arg(long)]
        vxnet: Option<String>,
    },
    /// Stop a VM.
    Stop { id: String },
    /// Start a stopped VM (at home if it has room, else where most room is).
    Start { id: String },
    /// Reboot a VM in place (the guest restarts on its host).
    Reboot { id: String },
    /// Terminate a VM: its addresses, EIP and alias associations and root
    /// disk go; attached volumes are detached and kept.
    Terminate { id: String },
    /// Live-migrate a VM.
    Migrate {
        id: String,
        #[arg(long)]
        to: String,
    },
    /// A new image from a VM's current disk content (CaptureInstance).
    Capture {
        id: String,
        /// The new image's name.
        #[arg(long)]
        image: String,
    },
}

/// What one API call can come to besides an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The controller answered with an error.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    /// It could not be asked (or its answer could not be read).
    #[error("{0}")]
    Unreachable(String),
}

pub struct Endpoint {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Endpoint {
    pub fn new(opts: &ApiOpts) -> Result<Self, String> {
        let token = match &opts.token_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| format!("--token-file {}: {e}", f.display()))?,
            None => std::env::var(TOKEN_ENV)
                .map_err(|_| format!("no API token: pass --token-file FILE or set {TOKEN_ENV}"))?,
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err("the API token is empty".into());
        }
        // One line of printable characters, as the controller's token file
        // holds. A second line went into the HTTP header, which the client
        // refused, blaming the controller's reachability and printing the
        // token (found by the bad-input adversary); the token is never
        // echoed.
        if let Some((i, _)) = token.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
            let from = match &opts.token_file {
                Some(f) => format!("--token-file {}", f.display()),
                None => TOKEN_ENV.to_string(),
            };
            return Err(format!(
                "{from}: the API token has a space, line break or control character at offset {i}; expected one line of printable characters"
            ));
        }
        let base = opts.endpoint.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(format!(
                "--endpoint {base}: expected a URL such as {ENDPOINT_DEFAULT}"
            ));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .redirects(0)
            .build();
        Ok(Self { base, token, agent })
    }

    /// One call: `path` may carry a query; `body` makes it a POST.
    pub fn call(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, CallError> {
        let method = if body.is_some() { "POST" } else { "GET" };
        self.exchange(method, path, query, body)
    }

    /// A DELETE of `path`.
    pub fn delete(&self, path: &str) -> Result<Value, CallError> {
        self.exchange("DELETE", path, &[], None)
    }

    pub fn put(&self, path: &str, body: Value) -> Result<Value, CallError> {
        self.exchange("PUT", path, &[], Some(body))
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let req = self.agent.request(method, &url);
        let mut req = req.set("Authorization", &format!("Bearer {}", self.token));
        for (k, v) in query {
            req = req.query(k, v);
        }
        let r = match body {
            None => req.call(),
            Some(b) => req.send_json(b),
        };
        match r {
            Ok(resp) => read_json(resp).map_err(|e| {
                CallError::Unreachable(format!("{}: unreadable answer: {e}", self.base))
            }),
            Err(ureq::Error::Status(status, resp)) => match read_json(resp) {
                Ok(v) => Err(CallError::Refused {
                    code: v["code"].as_str().unwrap_or("unknown").to_string(),
                    message: v["message"].as_str().unwrap_or("").to_string(),
                }),
                Err(_) => Err(CallError::Refused {
                    code: format!("http-{status}"),
                    message: format!("{} answered HTTP {status}", self.base),
                }),
            },
            Err(ureq::Error::Transport(t)) => Err(CallError::Unreachable(format!(
                "cannot reach the controller's API at {}: {t}",
                self.base
            ))),
        }
    }
}

fn read_json(resp: ureq::Response) -> std::io::Result<Value> {
    use std::io::Read;
    let mut buf = Vec::new();
    resp.into_reader()
        .take(REPLY_BYTES_MAX)
        .read_to_end(&mut buf)?;
    serde_json::from_slice(&buf).map_err(std::io::Error::other)
}

/// A size in MiB: `4G`/`4GiB` (GiB), `4096M`/`4096MiB`, `4096` (MiB),
/// `1T` (TiB).
pub fn parse_mib(s: &str) -> Result<u64, String> {
    parse_size(s, 1).map_err(|why| format!("'{s}': {why}; expected 4G, 4096M or 4096 (MiB)"))
}

/// A size in GiB: `40G`, `1T`, `40` (GiB); MiB only in whole GiB.
pub fn parse_gib(s: &str) -> Result<u64, String> {
    let mib =
        parse_size(s, 1024).map_err(|why| format!("'{s}': {why}; expected 40G, 1T or 40 (GiB)"))?;
    if mib % 1024 != 0 {
        return Err(format!("'{s}': not a whole number of GiB"));
    }
    Ok(mib / 1024)
}

/// `s` in MiB, a bare number counting `bare_mib` MiB.
fn parse_size(s: &str, bare_mib: u64) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("no number".into());
    }
    let n: u64 = s[..digits].parse().map_err(|_| "too large".to_string())?;
    let unit = match s[digits..].to_ascii_uppercase().as_str() {
        "" => bare_mib,
        "M" | "MB" | "MI" | "MIB" => 1,
        "G" | "GB" | "GI" | "GIB" => 1024,
        "T" | "TB" | "TI" | "TIB" => 1024 * 1024,
        u => return Err(format!("unknown unit '{u}'")),
    };
    let mib = n.checked_mul(unit).ok_or("too large")?;
    if mib == 0 {
        return Err("must be more than 0".into());
    }
    Ok(mib)
}

/// Rows as aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        v => v.to_string(),
    }
}

fn rows(v: &Value, keys: &[&str]) -> Vec<Vec<String>> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|x| keys.iter().map(|k| text(&x[*k])).collect())
        .collect()
}

pub enum Cmd {
    Hosts(HostsCmd),
    Instances(InstancesCmd),
    Vxnets(VxnetsCmd),
    Routers(RoutersCmd),
    Eips(EipsCmd),
    DnsAliases(DnsAliasesCmd),
    LoadBalancers(LoadBalancersCmd),
    Rdbs(RdbsCmd),
    Rules(RulesCmd),
    Ha(HaCmd),
    Mongodbs(MongodbsCmd),
    Caches(CachesCmd),
    Images(ImagesCmd),
    Volumes(VolumesCmd),
    Snapshots(SnapshotsCmd),
    Datastores(DatastoresCmd),
    DiskMoves(DiskMovesCmd),
}

/// Runs one client command; the exit code as documented above.
pub fn main(opts: &ApiOpts, cmd: Cmd) -> ExitCode {
    let ep = match Endpoint::new(opts) {
        Ok(ep) => ep,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&ep, opts.output, cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ CallError::Refused { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(e @ CallError::Unreachable(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// How an answer is shown as text.
type Render = Box<dyn Fn(&Value) -> String>;

fn run(ep: &Endpoint, output: Output, cmd: Cmd) -> Result<(), CallError> {
    let (v, show): (Value, Render) = match cmd {
        Cmd::Vxnets(c) => network::vxnets(ep, c)?,
        Cmd::Routers(c) => network::routers(ep, c)?,
        Cmd::Eips(c) => network::eips(ep, c)?,
        Cmd::DnsAliases(c) => network::dns_aliases(ep, c)?,
        Cmd::LoadBalancers(c) => lb::load_balancers(ep, c)?,
        Cmd::Rdbs(c) => rdb::rdbs(ep, c)?,
        Cmd::Rules(c) => rules::rules(ep, c)?,
        Cmd::Ha(c) => rules::ha(ep, c)?,
        Cmd::Mongodbs(c) => services::mongodbs(ep, c)?,
        Cmd::Caches(c) => services::caches(ep, c)?,
        Cmd::Images(c) => storage::images(ep, c)?,
        Cmd::Volumes(c) => storage::volumes(ep, c)?,
        Cmd::Snapshots(c) => storage::snapshots(ep, c)?,
        Cmd::Datastores(c) => datastores::datastores(ep, c)?,
        Cmd::DiskMoves(c) => datastores::disk_moves(ep, c)?,
        Cmd::Instances(InstancesCmd::Capture { id, image }) => storage::capture(ep, &id, image)?,
        Cmd::Hosts(HostsCmd::List) => (
            ep.call("/v1/hosts", &[], None)?,
            Box::new(|v| {
                table(
                    &["HOST", "STATE", "SPARE", "BONDS"],
                    &rows(v, &["id", "state", "spare", "bonds"]),
                )
            }),
        ),
        Cmd::Hosts(HostsCmd::DrsPlan) => (
            ep.call("/v1/drs/plan", &[], None)?,
            Box::new(|v| {
                if v["enabled"] != true {
                    return "DRS is off (no `drs:` in the cluster file)\n".to_string();
                }
                let moves: Vec<String> = v["moves"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let vms: Vec<String> = m["vms"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(text)
                            .collect();
                        format!(
                            "{} {} -> {} ({} {} %, {} {} %)\n",
                            vms.join("+"),
                            text(&m["from"]),
                            text(&m["to"]),
                            text(&m["from"]),
                            m["from_load"],
                            text(&m["to"]),
                            m["to_load"]
                        )
                    })
                    .collect();
                if moves.is_empty() {
                    "DRS: balanced, nothing to move\n".to_string()
                } else {
                    moves.concat()
                }
            }),
        ),
        Cmd::Hosts(HostsCmd::Maintenance { id }) => (
            ep.call(
                &format!("/v1/hosts/{}/maintenance", path_part(&id)),
                &[],
                Some(json!({})),
            )?,
            Box::new(|v| {
                let moving: Vec<String> = v["moving"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| format!("{} -> {}", text(&m["vm"]), text(&m["to"])))
                    .collect();
                if moving.is_empty() {
                    format!(
                        "host {} in maintenance (it runs no VMs)\n",
                        text(&v["host"])
                    )
                } else {
                    format!(
                        "host {} entering maintenance: {}\n",
                        text(&v["host"]),
                        moving.join(", ")
                    )
                }
            }),
        ),
        Cmd::Hosts(HostsCmd::Activate { id }) => (
            ep.delete(&format!("/v1/hosts/{}/maintenance", path_part(&id)))?,
            Box::new(|v| format!("host {} left maintenance\n", text(&v["host"]))),
        ),
        Cmd::Instances(InstancesCmd::List { state, host }) => {
            let mut q = Vec::new();
            if let Some(s) = &state {
                q.push(("state", s.as_str()));
            }
            if let Some(h) = &host {
                q.push(("host", h.as_str()));
            }
            (
                ep.call("/v1/instances", &q, None)?,
                Box::new(|v| table(&["ID", "STATE", "HOST"], &rows(v, &["id", "state", "host"]))),
            )
        }
        Cmd::Instances(InstancesCmd::Show { id }) => (
            ep.call(&format!("/v1/instances/{}", path_part(&id)), &[], None)?,
            Box::new(|v| {
                table(
                    &["ID", "STATE", "HOST"],
                    &rows(&json!([v]), &["id", "state", "host"]),
                )
            }),
        ),
        Cmd::Instances(InstancesCmd::Run {
            id,
            cpu,
            memory,
            disk,
            ha,
            priority,
            host,
            image,
            vxnet,
        }) => {
            let mut body = json!({ "id": id, "cpu": cpu, "memory_mib": memory });
            if let Some(i) = image {
                body["image"] = json!(i);
            }
            if let Some(x) = vxnet {
                body["vxnet"] = json!(x);
            }
            if let Some(d) = disk {
                body["disk_gib"] = json!(d);
            }
            if let Some(h) = ha {
                body["ha"] = json!(h);
            }
            if let Some(p) = priority {
                body["priority"] = json!(p);
            }
            if let Some(h) = host {
                body["host"] = json!(h);
            }
            (
                ep.call("/v1/instances", &[], Some(body))?,
                Box::new(|v| {
                    let mut line = format!("vm {} placed on {}", text(&v["vm"]), text(&v["host"]));
                    if v["image"].is_string() {
                        line.push_str(&format!(", image {}", text(&v["image"])));
                    }
                    if v["ip"].is_string() {
                        line.push_str(&format!(
                            ", {} on vxnet {}",
                            text(&v["ip"]),
                            text(&v["vxnet"])
                        ));
                    }
                    line + "\n"
                }),
            )
        }
        Cmd::Instances(InstancesCmd::Stop { id }) => (
            ep.call(
                &format!("/v1/instances/{}/stop", path_part(&id)),
                &[],
                Some(json!({})),
            )?,
            Box::new(|v| format!("vm {} stopping\n", text(&v["vm"]))),
        ),
        Cmd::Instances(InstancesCmd::Start { id }) => (
            ep.call(
                &format!("/v1/instances/{}/start", path_part(&id)),
                &[],
                Some(json!({})),
            )?,
            Box::new(|v| format!("vm {} starting on {}\n", text(&v["vm"]), text(&v["host"]))),
        ),
        Cmd::Instances(InstancesCmd::Reboot { id }) => (
            ep.call(
                &format!("/v1/instances/{}/reboot", path_part(&id)),
                &[],
                Some(json!({})),
            )?,
            Box::new(|v| format!("vm {} rebooting on {}\n", text(&v["vm"]), text(&v["host"]))),
        ),
        Cmd::Instances(InstancesCmd::Terminate { id }) => (
            ep.delete(&format!("/v1/instances/{}", path_part(&id)))?,
            Box::new(|v| {
                let released: Vec<String> = v["released"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                if released.is_empty() {
                    format!("vm {} terminated\n", text(&v["vm"]))
                } else {
                    format!(
                        "vm {} terminated; released {}\n",
                        text(&v["vm"]),
                        released.join(", ")
                    )
                }
            }),
        ),
        Cmd::Instances(InstancesCmd::Migrate { id, to }) => (
            ep.call(
                &format!("/v1/instances/{}/migrate", path_part(&id)),
                &[],
                Some(json!({ "to": to })),
            )?,
            Box::new(|v| format!("vm {} migrating to {}\n", text(&v["vm"]), text(&v["to"]))),
        ),
    };
    match output {
        Output::Json => out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Output::Table => out_raw!("{}", show(&v)),
    }
    Ok(())
}

/// `id` percent-encoded for a path segment (the server refuses odd ids
/// itself; this only keeps them from changing the URL's shape).
pub(crate) fn path_part(id: &str) -> String {
    let mut s = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_are_mib() {
        assert_eq!(parse_mib("4G"), Ok(4096));
        assert_eq!(parse_mib("4GiB"), Ok(4096));
        assert_eq!(parse_mib("4096M"), Ok(4096));
        assert_eq!(parse_mib("4096"), Ok(4096));
        assert_eq!(parse_mib("1T"), Ok(1 << 20));
        assert_eq!(parse_mib("512m"), Ok(512));
        for bad in ["", "G", "4X", "-4G", "0", "4.5G", "99999999999999999999G"] {
            assert!(parse_mib(bad).is_err(), "{bad}");
        }
        assert!(parse_mib("4X").unwrap_err().contains("unknown unit 'X'"));
    }

    #[test]
    fn disk_sizes_are_gib() {
        assert_eq!(parse_gib("40G"), Ok(40));
        assert_eq!(parse_gib("40"), Ok(40));
        assert_eq!(parse_gib("1T"), Ok(1024));
        assert_eq!(parse_gib("2048M"), Ok(2));
        assert!(parse_gib("100M").is_err());
    }

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["ID", "STATE", "HOST"],
            &[
                vec!["vm-1".into(), "running".into(), "hv-01".into()],
                vec!["web-long".into(), "booting".into(), "-".into()],
            ],
        );
        assert_eq!(
            t,
            "ID        STATE    HOST\nvm-1      running  hv-01\nweb-long  booting  -\n"
        );
    }

    #[test]
    fn odd_ids_stay_one_path_segment() {
        assert_eq!(path_part("x;rm -rf"), "x%3Brm%20-rf");
        assert_eq!(path_part("../hosts"), "%2E%2E%2Fhosts");
    }
}
