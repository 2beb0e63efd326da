//! `krrish`: the operator's and developer's command line.
//!
//! - `krrish scenario run [PATH…]` — run scenario files (or directories of
//!   them) in the simulated world; one line per scenario, then
//!   `N passed, M failed`.
//! - `krrish scenario check [PATH…]` — load and validate only.
//! - `krrish plan spares …` — what each spare-pool size buys ([`plan`]).
//! - `krrish controller --config FILE` / `krrish agent --config FILE` — the
//!   daemons ([`daemon`]); `--check` loads and validates the config only.
//! - `krrish [--endpoint URL] [--token-file F] hosts …|instances …` — the
//!   controller's HTTP API from the command line ([`client`]).

/// `println!` for the CLI's reports: a reader that went away (`krrish
/// scenario run | head`) ends the process quietly with the shell's SIGPIPE
/// status, 141, instead of a panic.
macro_rules! out {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// Like [`out!`] without the newline.
macro_rules! out_raw {
    ($($t:tt)*) => { $crate::write_stdout(format_args!($($t)*)) };
}

mod client;
mod daemon;
#[cfg(feature = "lab")]
mod lab_world;
mod output_file;
mod plan;
mod plan_validate;
mod scenario;
mod swarm;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "krrish",
    version,
    about = "krrish: IaaS control plane, simulator and HA test harness"
)]
struct Cli {
    #[command(flatten)]
    api: client::ApiOpts,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum LabHostsCmd {
    /// Builds the cluster's hosts (namespaces, links, BMC emulator; needs
    /// `cargo xtask lab up`) and writes the inventory describing them.
    Up {
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
    },
    /// Removes what `up` made.
    Down,
}

/// `krrish lab-hosts up|down`.
fn lab_hosts(c: LabHostsCmd) -> ExitCode {
    #[cfg(feature = "lab")]
    {
        let r = match c {
            LabHostsCmd::Up { cluster } => lab_world::hosts_up(&cluster).map(|inv| {
                out!("{}", inv.display());
            }),
            LabHostsCmd::Down => lab_world::hosts_down(),
        };
        match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("krrish lab-hosts: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
    #[cfg(not(feature = "lab"))]
    {
        let _ = c;
        eprintln!("krrish lab-hosts: this krrish was built without the lab (build it with --features lab)");
        ExitCode::FAILURE
    }
}

#[derive(Subcommand)]
enum Top {
    /// Run or check scenario files.
    #[command(subcommand)]
    Scenario(scenario::ScenarioCmd),
    /// Capacity planning.
    #[command(subcommand)]
    Plan(plan::PlanCmd),
    /// Run the controller daemon (stops on SIGTERM/SIGINT).
    Controller(DaemonArgs),
    /// Run a host's agent daemon (stops on SIGTERM/SIGINT; guests keep running).
    Agent(DaemonArgs),
    /// Run the DFS's lease service on the storage network (stops on
    /// SIGTERM/SIGINT; revocations are kept in its store).
    Dfs(DaemonArgs),
    /// The lab's fence agent (run by the controller in `--world lab`):
    /// powers off KRRISH_FENCE_HOST as its BMC would.
    #[command(hide = true)]
    LabFence {
        #[arg(long)]
        run_dir: PathBuf,
    },
    /// A lab run's provisioning of an inventory host (run there through
    /// the inventory's `run`): boots the cluster's VMs whose home is the
    /// agent config's host, through its libvirt driver, then exits.
    #[command(hide = true)]
    LabBootHome {
        /// The host's agent config (`driver.kind: libvirt`).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The cluster file naming the VMs and their homes.
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
    },
    /// A lab run's question to a guest on an inventory host (run there
    /// through the inventory's `run`): sends REQUEST (`ping IP`, `read
    /// SERIAL BLOCK`, `write SERIAL BLOCK DATA`) to the guest's command
    /// port and prints its reply; exits 1, saying why, when none came.
    #[command(hide = true)]
    LabGuestAsk {
        /// The guest's command port (a unix socket its QEMU listens on).
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// How long to wait for the reply, in milliseconds.
        #[arg(long, value_name = "MS")]
        wait_ms: u64,
        /// The request's words.
        #[arg(required = true, num_args = 1..)]
        request: Vec<String>,
    },
    /// The lab in a box's hosts left standing and described as an
    /// inventory (target/lab/inventory-hosts/inventory.yaml), for
    /// `scenario run --world lab --inventory` without physical hosts.
    #[command(subcommand)]
    LabHosts(LabHostsCmd),
    /// Hosts, through the controller's API.
    #[command(subcommand)]
    Hosts(client::HostsCmd),
    /// VMs, through the controller's API.
    #[command(subcommand)]
    Instances(client::InstancesCmd),
    /// Private networks (vxnets), through the controller's API.
    #[command(subcommand)]
    Vxnets(client::VxnetsCmd),
    /// Routers joining vxnets, through the controller's API.
    #[command(subcommand)]
    Routers(client::RoutersCmd),
    /// Elastic IPs, through the controller's API.
    #[command(subcommand)]
    Eips(client::EipsCmd),
    /// DNS aliases, through the controller's API.
    #[command(subcommand)]
    DnsAliases(client::DnsAliasesCmd),
    /// Load balancers, their listeners and backends, through the
    /// controller's API.
    #[command(subcommand)]
    LoadBalancers(client::LoadBalancersCmd),
    /// Managed RDBs (primary, standby, epoch, failover), through the
    /// controller's API.
    #[command(subcommand)]
    Rdbs(client::RdbsCmd),
    /// Placement rule groups (affinity, anti-affinity, run-on, not-on;
    /// must or should) set at run time, through the controller's API.
    #[command(subcommand)]
    Rules(client::RulesCmd),
    /// The cluster-wide HA switch, through the controller's API.
    #[command(subcommand)]
    Ha(client::HaCmd),
    /// Managed MongoDB replica sets (majority elections, epoch), through
    /// the controller's API.
    #[command(subcommand)]
    Mongodbs(client::MongodbsCmd),
    /// Managed cache clusters (shards of a master and replicas), through
    /// the controller's API.
    #[command(subcommand)]
    Caches(client::CachesCmd),
    /// Images of the DFS repository, through the controller's API.
    #[command(subcommand)]
    Images(client::ImagesCmd),
    /// Volumes, through the controller's API.
    #[command(subcommand)]
    Volumes(client::VolumesCmd),
    /// VM snapshots (root disk and attached volumes), through the
    /// controller's API.
    #[command(subcommand)]
    Snapshots(client::SnapshotsCmd),
    /// Datastores (DFS pools): add, drain, balance, delete, through the
    /// controller's API.
    #[command(subcommand)]
    Datastores(client::DatastoresCmd),
    /// Storage live migration: move one disk between datastores while its
    /// VM runs, through the controller's API.
    #[command(subcommand)]
    DiskMoves(client::DiskMovesCmd),
}

#[derive(Args)]
struct DaemonArgs {
    /// The daemon's YAML config (see fixtures/daemons/).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Load and validate the config (and the files it names), then exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Top::Scenario(cmd) => scenario::main(cmd),
        Top::Plan(cmd) => plan::main(cmd),
        Top::Controller(a) => {
            return daemon::exit(
                daemon::controller::main(&a.config, a.check),
                "krrish controller",
            )
        }
        Top::Agent(a) => {
            return daemon::exit(daemon::agent::main(&a.config, a.check), "krrish agent")
        }
        Top::Dfs(a) => return daemon::exit(daemon::dfs::main(&a.config, a.check), "krrish dfs"),
        Top::LabBootHome { config, cluster } => {
            #[cfg(feature = "lab")]
            return daemon::exit(
                daemon::agent::boot_home(&config, &cluster),
                "krrish lab-boot-home",
            );
            #[cfg(not(feature = "lab"))]
            {
                eprintln!(
                    "krrish lab-boot-home {} {}: this krrish was built without the libvirt driver \
                     (build it with --features lab)",
                    config.display(),
                    cluster.display()
                );
                return ExitCode::FAILURE;
            }
        }
        Top::LabGuestAsk {
            socket,
            wait_ms,
            request,
        } => {
            #[cfg(feature = "lab")]
            return match krrish_libvirt::guest::ask(
                &socket,
                &request.join(" "),
                std::time::Duration::from_millis(wait_ms),
            ) {
                Ok(reply) => {
                    println!("{reply}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("krrish lab-guest-ask {}: {e}", socket.display());
                    ExitCode::FAILURE
                }
            };
            #[cfg(not(feature = "lab"))]
            {
                eprintln!(
                    "krrish lab-guest-ask {} {wait_ms} {request:?}: this krrish was built without the libvirt driver \
                     (build it with --features lab)",
                    socket.display()
                );
                return ExitCode::FAILURE;
            }
        }
        Top::LabFence { run_dir } => {
            #[cfg(feature = "lab")]
            return match lab_world::fence(&run_dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lab fence: {e:#}");
                    ExitCode::FAILURE
                }
            };
            #[cfg(not(feature = "lab"))]
            {
                eprintln!(
                    "lab fence {}: this krrish was built without the lab",
                    run_dir.display()
                );
                return ExitCode::FAILURE;
            }
        }
        Top::LabHosts(c) => return lab_hosts(c),
        Top::Hosts(c) => return client::main(&cli.api, client::Cmd::Hosts(c)),
        Top::Instances(c) => return client::main(&cli.api, client::Cmd::Instances(c)),
        Top::Vxnets(c) => return client::main(&cli.api, client::Cmd::Vxnets(c)),
        Top::Routers(c) => return client::main(&cli.api, client::Cmd::Routers(c)),
        Top::Eips(c) => return client::main(&cli.api, client::Cmd::Eips(c)),
        Top::DnsAliases(c) => return client::main(&cli.api, client::Cmd::DnsAliases(c)),
        Top::LoadBalancers(c) => return client::main(&cli.api, client::Cmd::LoadBalancers(c)),
        Top::Rdbs(c) => return client::main(&cli.api, client::Cmd::Rdbs(c)),
        Top::Rules(c) => return client::main(&cli.api, client::Cmd::Rules(c)),
        Top::Ha(c) => return client::main(&cli.api, client::Cmd::Ha(c)),
        Top::Mongodbs(c) => return client::main(&cli.api, client::Cmd::Mongodbs(c)),
        Top::Caches(c) => return client::main(&cli.api, client::Cmd::Caches(c)),
        Top::Images(c) => return client::main(&cli.api, client::Cmd::Images(c)),
        Top::Volumes(c) => return client::main(&cli.api, client::Cmd::Volumes(c)),
        Top::Snapshots(c) => return client::main(&cli.api, client::Cmd::Snapshots(c)),
        Top::Datastores(c) => return client::main(&cli.api, client::Cmd::Datastores(c)),
        Top::DiskMoves(c) => return client::main(&cli.api, client::Cmd::DiskMoves(c)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        panic!("cannot write to stdout: {e}");
    }
}
