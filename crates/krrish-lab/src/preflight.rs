//! Checks an [`Inventory`]'s hosts before anything runs on them, as an
//! operator would by hand: each host answers its `run` prefix, runs its
//! krrish, has its links and its tunnel endpoint, reads the guest image
//! and sees the *same* DFS directory as the others; this machine reaches
//! each host's libvirt and each BMC (IPMI over LAN, `chassis power
//! status`) and holds the controller's and lease service's addresses;
//! the programs of the host's fault commands are found here (they are not
//! run: they would cut the host off).
//!
//! Every check is bounded in time ([`CHECK_TIMEOUT`]). A host that does
//! not answer its `run` prefix has its other remote checks reported as not
//! checked, never as passed.

// Real hosts on real time: a check's deadline is wall time.
#![allow(clippy::disallowed_methods)]

use crate::inventory::{Inventory, InventoryHost};
use std::process::Command;
use std::time::Duration;

/// The longest one check may take (an `ssh` to a dead host, an IPMI
/// request to a dark BMC).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The host, or `None` for this machine.
    pub host: Option<String>,
    pub check: &'static str,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    Failed(String),
    /// Not checked, and why (counted as not passed).
    NotChecked(String),
}

impl Finding {
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Passed(_))
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (word, text) = match &self.outcome {
            Outcome::Passed(t) => ("ok         ", t),
            Outcome::Failed(t) => ("FAILED     ", t),
            Outcome::NotChecked(t) => ("NOT CHECKED", t),
        };
        let host = self.host.as_deref().unwrap_or("(this machine)");
        write!(f, "{word}  {host:<16} {:<12} {text}", self.check)
    }
}

/// Every check, in a fixed order: this machine's, then host by host. The
/// hosts are checked at once (one thread each, at most
/// [`crate::inventory::HOSTS_MAX`]), so a run takes about one
/// [`CHECK_TIMEOUT`] however many hosts are dark (a BMC's check is tried
/// up to three times: a dark BMC costs three ipmitool timeouts, about
/// 15 s).
pub fn preflight(inv: &Inventory) -> Vec<Finding> {
    let mut out = Vec::new();
    let local = local_addresses();
    for (check, addr) in [("controller", inv.controller), ("lease", inv.lease_service)] {
        let outcome = match &local {
            Ok(list) if list.contains(&addr.to_string()) => {
                Outcome::Passed(format!("{addr} is this machine's"))
            }
            Ok(_) => Outcome::Failed(format!(
                "{addr} is not an address of this machine (the hosts' agents dial it)"
            )),
            Err(e) => Outcome::NotChecked(e.clone()),
        };
        out.push(Finding {
            host: None,
            check,
            outcome,
        });
    }
    let reach: Vec<Result<String, String>> = on_each_host(inv, |h| remote(h, &["true"], None));
    // The first host that answers writes a token into the DFS directory;
    // every host must read exactly it back.
    let token = format!("krrish-preflight-{}", std::process::id());
    let marker = inv.dfs_dir.join(format!(".{token}"));
    let marker_text = marker.to_string_lossy().into_owned();
    let writer = inv
        .hosts
        .iter()
        .zip(&reach)
        .find(|(_, r)| r.is_ok())
        .map(|(h, _)| {
            let wrote = remote(h, &["tee", &marker_text], Some(&token))
                .map(drop)
                .map_err(|e| format!("cannot write into the DFS directory: {e}"));
            (h, wrote)
        });
    let per_host = on_each_host(inv, |h| {
        let i = inv.hosts.iter().position(|x| x.id == h.id).unwrap_or(0);
        let mut found: Vec<(&'static str, Outcome)> = Vec::new();
        match &reach[i] {
            Ok(_) => {
                found.push((
                    "reach",
                    Outcome::Passed(format!("`{} true` answers", h.run.join(" "))),
                ));
                found.extend(on_a_reachable_host(
                    inv,
                    h,
                    &marker_text,
                    &token,
                    writer.as_ref(),
                ));
            }
            Err(e) => {
                found.push(("reach", Outcome::Failed(e.clone())));
                for check in ["krrish", "links", "guest image", "dfs"] {
                    found.push((
                        check,
                        Outcome::NotChecked("the host does not answer its `run`".into()),
                    ));
                }
            }
        }
        found.push(("libvirt", libvirt(&h.libvirt)));
        found.push(("bmc", bmc(h)));
        found.push(("faults", fault_programs(h)));
        found
    });
    for (h, found) in inv.hosts.iter().zip(per_host) {
        for (check, outcome) in found {
            out.push(Finding {
                host: Some(h.id.clone()),
                check,
                outcome,
            });
        }
    }
    if let Some((w, Ok(()))) = writer {
        let _ = remote(w, &["rm", "-f", &marker_text], None);
    }
    out
}

/// `f` on every host at once, results in the inventory's order.
fn on_each_host<T: Send>(inv: &Inventory, f: impl Fn(&InventoryHost) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let running: Vec<_> = inv
            .hosts
            .iter()
            .take(crate::inventory::HOSTS_MAX)
            .map(|h| scope.spawn(|| f(h)))
            .collect();
        running
            .into_iter()
            .map(|t| t.join().expect("a preflight check panicked"))
            .collect()
    })
}

/// The checks that run on the host itself.
fn on_a_reachable_host(
    inv: &Inventory,
    h: &InventoryHost,
    marker: &str,
    token: &str,
    writer: Option<&(&InventoryHost, Result<(), String>)>,
) -> Vec<(&'static str, Outcome)> {
    let mut found = Vec::new();
    let krrish = h.krrish.to_string_lossy();
    found.push((
        "krrish",
        match remote(h, &[&krrish, "--version"], None) {
            Ok(v) => Outcome::Passed(v.trim().to_string()),
            Err(e) => Outcome::Failed(e),
        },
    ));
    found.push(("links", links(h)));
    let guest = inv.guest_dir.to_string_lossy();
    let files = ["vmlinuz", "initrd.gz"].map(|f| format!("{guest}/{f}"));
    found.push((
        "guest image",
        match remote(h, &["test", "-r", &files[0], "-a", "-r", &files[1]], None) {
            Ok(_) => Outcome::Passed(format!("{} and {} readable", files[0], files[1])),
            Err(_) => Outcome::Failed(format!(
                "{} or {} is missing (copy the guest `cargo xtask lab up` builds)",
                files[0], files[1]
            )),
        },
    ));
    let dfs = inv.dfs_dir.display();
    found.push((
        "dfs",
        match writer {
            Some((w, Ok(()))) => match remote(h, &["cat", marker], None) {
                Ok(t) if t.trim() == token => {
                    Outcome::Passed(format!("{dfs} is shared (reads {}'s marker)", w.id))
                }
                Ok(t) => Outcome::Failed(format!(
                    "{dfs}: {}'s marker reads `{}` here: not the directory the others see",
                    w.id,
                    t.trim()
                )),
                Err(e) => Outcome::Failed(format!("{dfs} is not shared with {}: {e}", w.id)),
            },
            Some((w, Err(e))) if w.id == h.id => Outcome::Failed(e.clone()),
            Some((w, Err(_))) => {
                Outcome::NotChecked(format!("{} could not write its marker", w.id))
            }
            None => Outcome::NotChecked("no host answers".into()),
        },
    ));
    found
}

/// The host's VM bridge holds its tunnel endpoint; each bond member exists.
fn links(h: &InventoryHost) -> Outcome {
    let mut missing = Vec::new();
    for m in h.bonds.in_order().iter().flatten() {
        if remote(h, &["ip", "-o", "link", "show", "dev", m], None).is_err() {
            missing.push(m.clone());
        }
    }
    let bridge = remote(
        h,
        &["ip", "-o", "-4", "addr", "show", "dev", &h.vm_bridge],
        None,
    );
    let endpoint = match &bridge {
        Ok(text) => text.contains(&format!("inet {}/", h.underlay)),
        Err(_) => false,
    };
    match (missing.is_empty(), &bridge, endpoint) {
        (true, Ok(_), true) => Outcome::Passed(format!(
            "6 bond members, {} with {}",
            h.vm_bridge, h.underlay
        )),
        (_, Err(_), _) => Outcome::Failed(format!("no link {}", h.vm_bridge)),
        (_, Ok(_), false) => Outcome::Failed(format!(
            "{} does not hold the underlay address {}",
            h.vm_bridge, h.underlay
        )),
        (false, _, _) => Outcome::Failed(format!("missing bond members: {}", missing.join(", "))),
    }
}

fn libvirt(uri: &str) -> Outcome {
    match krrish_libvirt::Hypervisor::open(uri).and_then(|hv| hv.active_names()) {
        Ok(names) => Outcome::Passed(format!("{uri} answers ({} running domains)", names.len())),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn bmc(h: &InventoryHost) -> Outcome {
    match crate::ipmi::chassis_power(&h.bmc, crate::ipmi::PowerVerb::Status) {
        Ok(text) => Outcome::Passed(format!("{}:{} says `{text}`", h.bmc.address, h.bmc.port)),
        Err(e) => Outcome::Failed(e),
    }
}

/// This machine's IPv4 addresses.
fn local_addresses() -> Result<Vec<String>, String> {
    let mut c = Command::new("ip");
    c.args(["-o", "-4", "addr", "show"]);
    let text = bounded(c, None)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.position(|x| x == "inet")?;
            Some(w.next()?.split('/').next()?.to_string())
        })
        .collect())
}

/// `args` on `h` through its `run` prefix; its stdout, or why not.
fn remote(h: &InventoryHost, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut c = Command::new(&h.run[0]);
    c.args(&h.run[1..]).args(args);
    bounded(c, stdin)
}

/// Runs `c` for at most [`CHECK_TIMEOUT`]; its stdout if it exits 0.
pub(crate) fn bounded(c: Command, stdin: Option<&str>) -> Result<String, String> {
    crate::remote::bounded(c, stdin.map(str::as_bytes), CHECK_TIMEOUT)
}

/// Whether the program of each of `h`'s fault commands (run on this
/// machine) is here: a path that is an executable file, or a name found on
/// `PATH`. The commands themselves are not run.
fn fault_programs(h: &InventoryHost) -> Outcome {
    let given = h.faults.all();
    if given.is_empty() {
        return Outcome::Passed(
            "none given (its cuts and bond faults are reported not run)".into(),
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = given
        .iter()
        .filter(|(_, argv)| {
            let program = std::path::Path::new(&argv[0]);
            if argv[0].contains('/') {
                !is_executable(program)
            } else {
                !std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
            }
        })
        .map(|(field, argv)| format!("{field}: `{}` not found on this machine", argv[0]))
        .collect();
    if missing.is_empty() {
        let fields: Vec<&str> = given
            .iter()
            .map(|(f, _)| f.trim_start_matches("faults."))
            .collect();
        Outcome::Passed(format!("{} (programs found here)", fields.join(", ")))
    } else {
        Outcome::Failed(missing.join("; "))
    }
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
