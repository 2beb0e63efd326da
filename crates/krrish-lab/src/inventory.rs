//! An inventory of physical lab hosts (`--inventory FILE`): how the runner
//! reaches each host, its hypervisor, its links and its BMC, and what the
//! hosts share (the DFS directory, the guest image, the controller's and
//! the lease service's addresses).
//!
//! ```yaml
//! controller: 10.20.0.1            # this machine on the management network
//! lease_service: 10.30.0.1         # this machine on the storage network
//! dfs_dir: /srv/krrish-dfs         # shared: the same directory on every host
//! guest_dir: /var/lib/krrish/guest # vmlinuz + initrd.gz, on every host
//! run_dir: /var/lib/krrish/run     # optional (this is the default): a run's
//!                                  # configs, pid files, logs, on each host
//! domain_type: kvm                 # or qemu (TCG)
//! vm_network: 10.80.0.0/16         # optional (this is the default): the
//!                                  # guests' addresses
//! ping_from: [ip, netns, exec, ops] # optional: a command prefix on this
//!                                  # machine that reaches vm_network; without
//!                                  # it no check can ping a guest
//! hosts:
//!   - id: hv-01
//!     run: [ssh, -o, BatchMode=yes, root@hv-01]  # runs a command there
//!     krrish: /usr/local/bin/krrish
//!     libvirt: qemu+ssh://root@hv-01/system       # from this machine
//!     # netns: krl-hv-01           # only for a host that is a namespace
//!     vm_bridge: br-vm
//!     underlay: 10.40.0.11         # its tunnel endpoint, on vm_bridge
//!     bonds:                       # two members each, in bond order
//!       management: [eno1, eno2]
//!       vm: [eno3, eno4]
//!       storage: [eno5, eno6]
//!     bmc: { address: 10.50.0.11, username: admin, password_file: bmc.pass }
//!     # optional: how the other hosts live-migrate guests here (its libvirt
//!     # as they reach it, and where its QEMU takes the memory); without it
//!     # failback to this host goes cold
//!     migration: { uri: "qemu+tcp://10.60.0.11/system", address: 10.60.0.11 }
//!     faults:                      # optional; run on this machine, not the host
//!       partition: [ssh, admin@sw-1, "interface eth1/11 shutdown"]
//!       heal: [ssh, admin@sw-1, "interface eth1/11 no shutdown"]
//!       bond_down: { storage: [/usr/local/bin/ports, hv-01, storage, off] }
//!       bond_up: { storage: [/usr/local/bin/ports, hv-01, storage, on] }
//!       bmc_down: [ssh, admin@sw-1, "interface eth1/41 shutdown"]  # its BMC's port
//!       bmc_up: [ssh, admin@sw-1, "interface eth1/41 no shutdown"]
//! ```
//!
//! A cut or a bond fault on a physical host cannot go through the host's
//! own `run` (taking its management links down would cut the ssh that
//! asks it to take them up again): it is the operator's switch-side
//! command, given per host and per fault, in pairs (a cut with its mend).
//!
//! Relative paths (`password_file`) are relative to the inventory file.
//! Every error names the file, the line and the field. [`Inventory::load`]
//! reads and checks the file; [`crate::preflight`] checks the hosts.

use krrish_core::ipam::parse_network;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// At most this many hosts (a lab, not a fleet).
pub const HOSTS_MAX: usize = 64;

/// The file, read and checked.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Where agents reach the controller this machine runs.
    pub controller: Ipv4Addr,
    /// Where agents reach the DFS lease service this machine runs.
    pub lease_service: Ipv4Addr,
    pub dfs_dir: PathBuf,
    pub guest_dir: PathBuf,
    /// Where a run keeps its files on each host (configs, pid files, logs,
    /// guest consoles).
    #[serde(default = "run_dir_default")]
    pub run_dir: PathBuf,
    pub domain_type: String,
    /// The guests' network (each VM's address is derived from its name in
    /// it, as in every world).
    #[serde(default = "vm_network_default")]
    pub vm_network: String,
    /// The command prefix on this machine from which guests answer ping
    /// (`[]`-less: none; then nothing that needs a guest's ping can run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_from: Option<Vec<String>>,
    pub hosts: Vec<InventoryHost>,
}

fn vm_network_default() -> String {
    "10.80.0.0/16".into()
}

fn run_dir_default() -> PathBuf {
    PathBuf::from("/var/lib/krrish/run")
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InventoryHost {
    pub id: String,
    /// The command prefix that runs a command on the host (`ssh …`, or
    /// `ip netns exec …` for a namespace).
    pub run: Vec<String>,
    /// The krrish binary on the host (started as its agent).
    pub krrish: PathBuf,
    /// The host's libvirt, as this machine reaches it.
    pub libvirt: String,
    /// The network namespace the host's links live in, when the host is
    /// one (the lab in a box described as an inventory); its agent then
    /// plugs guests' taps in there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    pub vm_bridge: String,
    pub underlay: Ipv4Addr,
    pub bonds: Bonds,
    pub bmc: Bmc,
    /// How the other hosts live-migrate guests to this one; `None`: they
    /// do not (a namespace host on another libvirt than the others' is
    /// reached through its `libvirt`, at 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationEndpoint>,
    /// How this machine plays the timeline's cuts and bond faults on the
    /// host; a fault with no command here cannot be played on it.
    #[serde(default)]
    pub faults: FaultCommands,
}

/// `hosts[].migration`: a host's libvirt as the other hosts reach it, and
/// the address its QEMU takes a migrating guest's memory on (its migration
/// network).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MigrationEndpoint {
    pub uri: String,
    pub address: std::net::IpAddr,
}

/// Commands (argv, run on this machine) that cut the host off and mend it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FaultCommands {
    /// Cuts the host's management path outside it (`partition:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<Vec<String>>,
    /// Mends that cut (`heal:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heal: Option<Vec<String>>,
    /// Takes both members of a bond down (`bond_down:`), by bond.
    #[serde(default)]
    pub bond_down: PerBond,
    /// Brings them back (`bond_up:`).
    #[serde(default)]
    pub bond_up: PerBond,
    /// Takes the host's BMC off its network (`bmc_down:`; also a power
    /// loss's: the BMC goes dark with the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_down: Option<Vec<String>>,
    /// Brings it back (`bmc_up:`; also before a repair's power on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_up: Option<Vec<String>>,
}

/// One command per bond, each optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PerBond {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Vec<String>>,
}

impl PerBond {
    /// By bond index: 0 management, 1 VM network, 2 storage.
    pub fn get(&self, bond: usize) -> Option<&Vec<String>> {
        [&self.management, &self.vm, &self.storage]
            .get(bond)
            .and_then(|c| c.as_ref())
    }
}

impl FaultCommands {
    /// Every command given, with its field name (`faults.bond_down.vm`).
    pub fn all(&self) -> Vec<(String, &Vec<String>)> {
        let mut out = Vec::new();
        for (name, c) in [
            ("partition", &self.partition),
            ("heal", &self.heal),
            ("bmc_down", &self.bmc_down),
            ("bmc_up", &self.bmc_up),
        ] {
            out.extend(c.as_ref().map(|c| (format!("faults.{name}"), c)));
        }
        for (name, per) in [("bond_down", &self.bond_down), ("bond_up", &self.bond_up)] {
            for (b, bond) in BOND_ROLES.iter().enumerate() {
                out.extend(per.get(b).map(|c| (format!("faults.{name}.{bond}"), c)));
            }
        }
        out
    }

    /// The first command given without its pair (a cut nobody could mend,
    /// or a mend of nothing), as (the field given, the field missing).
    fn unpaired(&self) -> Option<(String, String)> {
        let mut pairs = vec![
            (
                "faults.partition".to_string(),
                self.partition.is_some(),
                "faults.heal".to_string(),
                self.heal.is_some(),
            ),
            (
                "faults.bmc_down".to_string(),
                self.bmc_down.is_some(),
                "faults.bmc_up".to_string(),
                self.bmc_up.is_some(),
            ),
        ];
        for (b, bond) in BOND_ROLES.iter().enumerate() {
            pairs.push((
                format!("faults.bond_down.{bond}"),
                self.bond_down.get(b).is_some(),
                format!("faults.bond_up.{bond}"),
                self.bond_up.get(b).is_some(),
            ));
        }
        pairs
            .into_iter()
            .find_map(|(a, has_a, b, has_b)| match (has_a, has_b) {
                (true, false) => Some((a, b)),
                (false, true) => Some((b, a)),
                _ => None,
            })
    }
}

/// The bonds by index, as the inventory names them.
pub const BOND_ROLES: [&str; 3] = ["management", "vm", "storage"];

/// Two members per bond, as the agent's `bond_members` takes them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bonds {
    pub management: [String; 2],
    pub vm: [String; 2],
    pub storage: [String; 2],
}

impl Bonds {
    /// In bond order: bond0 management, bond1 VM network, bond2 storage.
    pub fn in_order(&self) -> [[String; 2]; 3] {
        [
            self.management.clone(),
            self.vm.clone(),
            self.storage.clone(),
        ]
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bmc {
    pub address: Ipv4Addr,
    /// IPMI's UDP port (623 unless given).
    #[serde(default = "ipmi_port")]
    pub port: u16,
    pub username: String,
    /// Absolute once loaded.
    pub password_file: PathBuf,
}

fn ipmi_port() -> u16 {
    623
}

/// A problem found in the file: its line, the field, why.
type Problem = (Option<usize>, String, String);

/// What is wrong with an inventory file, and where: the first problem,
/// and the others found with it (each host's first), one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {field}: {why}{}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), also.iter().map(|a| format!("\n{a}")).collect::<String>())]
pub struct InventoryError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The field, as a path (`hosts[1] (hv-02).bmc.password_file`).
    pub field: String,
    pub why: String,
    /// The other problems, each as `file:line: field: why`.
    pub also: Vec<String>,
}

impl Inventory {
    /// Reads `file` and checks it whole: nothing is used from a file with
    /// any error in it.
    pub fn load(file: &Path) -> Result<Inventory, InventoryError> {
        let err = |line, field: &str, why: String| InventoryError {
            file: file.to_path_buf(),
            line,
            field: field.to_string(),
            why,
            also: Vec::new(),
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| err(None, "(file)", format!("cannot read it: {e}")))?;
        let mut inv: Inventory = serde_yaml::from_str(&text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            err(line, "(yaml)", e.to_string())
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        for h in &mut inv.hosts {
            if h.bmc.password_file.is_relative() {
                h.bmc.password_file = base.join(&h.bmc.password_file);
            }
        }
        let mut problems = inv.check(&text).into_iter();
        if let Some((line, field, why)) = problems.next() {
            let mut e = err(line, &field, why);
            e.also = problems
                .map(|(line, field, why)| err(line, &field, why).to_string())
                .collect();
            return Err(e);
        }
        Ok(inv)
    }

    /// The guests' network, checked at load.
    pub fn vm_network(&self) -> (Ipv4Addr, u8) {
        parse_network(&self.vm_network).expect("checked at load")
    }

    pub fn host(&self, id: &str) -> Option<&InventoryHost> {
        self.hosts.iter().find(|h| h.id == id)
    }

    /// The meaning the types cannot hold, every problem (a host's first
    /// one); `text` gives the lines.
    fn check(&self, text: &str) -> Vec<Problem> {
        let top = |key: &str| line_of(text, 0, &format!("{key}:"));
        let mut problems = Vec::new();
        if self.hosts.is_empty() {
            problems.push((top("hosts"), "hosts".into(), "no hosts".into()));
        }
        if self.hosts.len() > HOSTS_MAX {
            // Nothing said of each of so many hosts.
            return vec![(
                top("hosts"),
                "hosts".into(),
                format!("{} hosts, at most {HOSTS_MAX}", self.hosts.len()),
            )];
        }
        for (key, path) in [
            ("dfs_dir", &self.dfs_dir),
            ("guest_dir", &self.guest_dir),
            ("run_dir", &self.run_dir),
        ] {
            if let Err(why) = remote_path(path) {
                problems.push((
                    top(key),
                    key.into(),
                    format!("{why} (the same path on every host)"),
                ));
            }
        }
        if !matches!(self.domain_type.as_str(), "kvm" | "qemu") {
            problems.push((
                top("domain_type"),
                "domain_type".into(),
                format!("`{}`: expected kvm or qemu", self.domain_type),
            ));
        }
        if parse_network(&self.vm_network).is_none() {
            problems.push((
                top("vm_network"),
                "vm_network".into(),
                format!(
                    "`{}`: expected an IPv4 network such as 10.80.0.0/16 (prefix 8 to 30)",
                    self.vm_network
                ),
            ));
        }
        if let Some(p) = &self.ping_from {
            if p.is_empty() || p.iter().any(String::is_empty) {
                problems.push((
                    top("ping_from"),
                    "ping_from".into(),
                    "expected a command prefix, e.g. [ip, netns, exec, ops]".into(),
                ));
            }
        }
        let starts = host_item_lines(text);
        for i in 0..self.hosts.len() {
            if let Err(p) = self.check_host(text, &starts, i) {
                problems.push(p);
            }
        }
        problems
    }

    /// Host `i`'s first problem.
    fn check_host(&self, text: &str, starts: &[usize], i: usize) -> Result<(), Problem> {
        let h = &self.hosts[i];
        {
            // The host's block, then the field's own line in it.
            let block = (starts.get(i).copied(), starts.get(i + 1).copied());
            let field = |f: &str| format!("hosts[{i}] ({}).{f}", h.id);
            // The field's line: each part of its path found after the one
            // before, inside the host's block (the nearest found stands).
            let fail = |f: &str, why: String| {
                let at = block.0.map(|from| {
                    let to = block.1.unwrap_or(usize::MAX);
                    f.split('.').fold(from, |at, k| {
                        line_of(text, at, &format!("{k}:"))
                            .filter(|&l| l < to)
                            .unwrap_or(at)
                    })
                });
                Err((at, field(f), why))
            };
            if h.id.is_empty()
                || h.id.len() > 32
                || !h
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return fail("id", "expected 1 to 32 of a-z, 0-9 and -".into());
            }
            if self.hosts[..i].iter().any(|o| o.id == h.id) {
                return fail("id", "named twice".into());
            }
            if h.run.is_empty() || h.run.iter().any(String::is_empty) {
                return fail(
                    "run",
                    "expected a command prefix, e.g. [ssh, root@hv-01]".into(),
                );
            }
            if let Err(why) = remote_path(&h.krrish) {
                return fail("krrish", why);
            }
            if !h.libvirt.contains("://") {
                return fail(
                    "libvirt",
                    format!(
                        "`{}`: expected a URI such as qemu+ssh://root@hv-01/system",
                        h.libvirt
                    ),
                );
            }
            if let Some(m) = &h.migration {
                if !m.uri.contains("://") || m.uri.contains(char::is_whitespace) {
                    return fail(
                        "migration.uri",
                        format!(
                            "`{}`: expected the host's libvirt URI as the other hosts reach it, \
                             such as qemu+tcp://10.60.0.11/system",
                            m.uri
                        ),
                    );
                }
            }
            let bonds = h.bonds.in_order();
            let mut links = vec![("vm_bridge", &h.vm_bridge)];
            for (m, f) in bonds
                .iter()
                .zip(["bonds.management", "bonds.vm", "bonds.storage"])
            {
                links.extend([(f, &m[0]), (f, &m[1])]);
            }
            for (f, name) in links {
                if let Err(e) = krrish_netlink::LinkName::new(name) {
                    return fail(f, e.to_string());
                }
            }
            if let Some(ns) = &h.netns {
                if let Err(e) = krrish_netlink::check_name(ns, 32) {
                    return fail("netns", e.to_string());
                }
                if let Some(o) = self.hosts[..i]
                    .iter()
                    .find(|o| o.netns.as_ref() == Some(ns))
                {
                    return fail("netns", format!("{ns} is {}'s namespace too", o.id));
                }
            }
            if h.bmc.username.is_empty() {
                return fail("bmc.username", "empty".into());
            }
            match std::fs::read_to_string(&h.bmc.password_file) {
                Ok(p) if !p.trim().is_empty() => {}
                Ok(_) => {
                    return fail(
                        "bmc.password_file",
                        format!("{} is empty", h.bmc.password_file.display()),
                    )
                }
                Err(e) => {
                    return fail(
                        "bmc.password_file",
                        format!("{}: {e}", h.bmc.password_file.display()),
                    )
                }
            }
            for (f, argv) in h.faults.all() {
                if argv.is_empty() || argv.iter().any(String::is_empty) {
                    return fail(
                        &f,
                        "expected a command, e.g. [ssh, admin@sw-1, \"interface eth1/11 shutdown\"]"
                            .into(),
                    );
                }
            }
            if let Some((given, missing)) = h.faults.unpaired() {
                return fail(
                    &given,
                    format!(
                        "given without `{missing}`: a fault is played only if it can be undone"
                    ),
                );
            }
            if let Some(o) = self.hosts[..i]
                .iter()
                .find(|o| o.bmc.address == h.bmc.address)
            {
                return fail(
                    "bmc.address",
                    format!("{} is {}'s BMC too", h.bmc.address, o.id),
                );
            }
        }
        Ok(())
    }
}

/// The line (1-based) where each item of the top-level `hosts:` list
/// starts: the lines that open an item (`- `) at the first item's
/// indentation, whatever key each item starts with.
fn host_item_lines(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(from) = lines.iter().position(|l| l.starts_with("hosts:")) else {
        return Vec::new();
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let Some(first) = lines[from + 1..]
        .iter()
        .find(|l| l.trim_start().starts_with("- "))
        .map(|l| indent(l))
    else {
        return Vec::new();
    };
    lines
        .iter()
        .enumerate()
        .skip(from + 1)
        // The list ends at the next top-level key.
        .take_while(|(_, l)| {
            l.is_empty() || l.starts_with(' ') || l.starts_with('-') || l.starts_with('#')
        })
        .filter(|(_, l)| indent(l) == first && l.trim_start().starts_with("- "))
        .map(|(i, _)| i + 1)
        .collect()
}

/// A path handed to a host's `run` (ssh joins its arguments into one
/// shell line): absolute, and nothing a shell would read.
fn remote_path(p: &Path) -> Result<(), String> {
    let text = p.to_string_lossy();
    if !p.is_absolute() {
        return Err(format!("{text} is not absolute"));
    }
    match text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._+-".contains(*c)))
    {
        Some(c) => Err(format!("{text}: `{c}` (expected a-z, A-Z, 0-9 and /._+-)")),
        None => Ok(()),
    }
}

/// The 1-based line, at or after line index `from`, whose text (after
/// indentation and a list dash) starts with `start`.
fn line_of(text: &str, from: usize, start: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| {
            let t = l.trim_start();
            t.strip_prefix("- ").unwrap_or(t).starts_with(start)
        })
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
