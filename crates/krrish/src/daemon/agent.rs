//! `krrish agent --config agent.yaml`: one per hypervisor host. It dials the
//! controller, heartbeats, and carries out boots, stops and migrations
//! through its driver — today the simulated one.

use super::config::{load_agent, DriverConfig};
use super::{install_signals, runtime, shutdown_signal, PidFile, Stdout, STDOUT_FINISH_WAIT};
use anyhow::Result;
use krrish_agent::{run_agent, AgentConfig};
use krrish_core::HostId;
use krrish_sim::world::{Timings, World};
use krrish_sim::{SimDriver, TraceBuf};
use krrish_wire::tokio_net::{MonotonicClock, TokioConnect};
use krrish_wire::{Clock, TraceSink};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// How often the simulated world's own lines (`world  vm-1 running on …`)
/// are printed when no agent line comes along to carry them out first.
const WORLD_LINES_EVERY: Duration = Duration::from_millis(100);

/// The agent's lines, preceded by whatever the simulated world said since
/// (the world writes into a [`TraceBuf`]), so stdout stays in time order.
struct AgentTrace {
    out: Stdout,
    world: Option<TraceBuf>,
}

impl AgentTrace {
    fn flush_world(&self) {
        if let Some(w) = &self.world {
            for l in w.take() {
                self.out.print(l);
            }
        }
    }
}

impl TraceSink for AgentTrace {
    fn line(&self, at_ms: u64, source: &str, text: &str) {
        self.flush_world();
        self.out.line(at_ms, source, text);
    }
}

/// The agent's loop, whichever driver it runs (it never returns).
type AgentService = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// The libvirt driver of `host` as its agent config describes it; `boot_id`
/// names this power-on.
#[cfg(feature = "lab")]
pub fn libvirt_driver(
    host: HostId,
    lv: &super::config::LibvirtConfig,
    boot_id: u64,
) -> Result<krrish_libvirt::LibvirtDriver> {
    use krrish_libvirt::{DomainType, GuestImage, LabHost, LibvirtDriver, TenantConfig};
    let domain_type = DomainType::parse(&lv.domain_type)
        .ok_or_else(|| anyhow::anyhow!("driver.domain_type {:?}", lv.domain_type))?;
    let lab = LabHost {
        host,
        uri: lv.uri.clone(),
        netns: lv.netns.clone(),
        vm_bridge: lv.vm_bridge.clone(),
        bond_members: lv
            .bond_members
            .clone()
            .unwrap_or_else(krrish_lab::HostNet::bond_members),
        guest: GuestImage::in_dir(&lv.guest_dir),
        domain_type,
        dfs_dir: lv.dfs_dir.clone(),
        lease_service: lv.lease.lease_service.clone(),
        lease_timeout: Duration::from_millis(lv.lease.timeout_ms),
        lease_duration_ms: lv.lease_duration_ms,
        run_dir: lv.run_dir.clone(),
        vm_network: lv.vm_network,
        guest_memory_cap_mib: lv.guest_memory_cap_mib,
        boot_timeout: Duration::from_millis(lv.boot_timeout_ms),
        tenant: lv.tenant_network.clone().map(|t| TenantConfig {
            underlay: t.underlay,
            local: t.local,
            group: t.group,
            eip_link: t.eip_link,
        }),
        migration_peers: lv
            .migration_peers
            .iter()
            .map(|p| krrish_libvirt::MigrationPeer {
                host: HostId::new(&p.host),
                uri: p.uri.clone(),
                run_dir: p.run_dir.clone(),
                address: p.address.to_string(),
            })
            .collect(),
    };
    LibvirtDriver::new(lab, boot_id).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The agent on real guests through libvirt.
#[cfg(feature = "lab")]
fn libvirt_agent(
    agent_cfg: AgentConfig,
    host: HostId,
    lv: super::config::LibvirtConfig,
    clock: Rc<MonotonicClock>,
    trace: Rc<AgentTrace>,
) -> Result<(AgentService, String)> {
    // This process starting is the host powering on: a new boot id.
    #[allow(clippy::disallowed_methods)] // the real world's own clock
    let boot_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let driver = libvirt_driver(host, &lv, boot_id)?;
    let started = format!(
        "started with the libvirt driver ({}, domain type {}{})",
        lv.uri,
        lv.domain_type,
        lv.netns
            .as_deref()
            .map(|n| format!(", network namespace {n}"))
            .unwrap_or_default()
    );
    let service = run_agent(
        agent_cfg,
        Rc::new(TokioConnect),
        Rc::new(driver),
        clock,
        trace,
    );
    Ok((Box::pin(service), started))
}

#[cfg(not(feature = "lab"))]
fn libvirt_agent(
    _: AgentConfig,
    _: HostId,
    _: super::config::LibvirtConfig,
    _: Rc<MonotonicClock>,
    _: Rc<AgentTrace>,
) -> Result<(AgentService, String)> {
    anyhow::bail!(
        "driver.kind: libvirt: this krrish was built without the libvirt driver; \
         build it with `cargo build --release -p krrish --features lab` \
         (`cargo xtask lab up` installs libvirt-dev, which that needs)"
    )
}

/// Loads and checks everything, then runs until SIGTERM or SIGINT. Guests
/// are left running on the way out: an agent restart must never kill them.
pub fn main(config: &Path, check_only: bool) -> Result<()> {
    let cfg = load_agent(config)?;
    if check_only {
        println!("{}: ok", config.display());
        return Ok(());
    }
    let rt = runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (mut term, mut int) = install_signals()?;
        let clock = Rc::new(MonotonicClock::start());
        let host = HostId::new(cfg.host.clone());
        let mut agent_cfg = AgentConfig::new(host.clone(), cfg.controller.clone());
        agent_cfg.timings = cfg.timings;

        let _pid = cfg.pid_file.as_deref().map(PidFile::write).transpose()?;
        // One arm per driver kind.
        let (service, trace, started): (
            AgentService,
            _,
            _,
        ) = match cfg.driver {
            DriverConfig::Sim {
                spec,
                home_vms,
                boot_ms,
                seed,
            } => {
                let world_lines = TraceBuf::default();
                let timings = Timings {
                    boot_ms,
                    lease_duration_ms: cfg.timings.lease_duration_ms,
                    ..Timings::default()
                };
                let names: Vec<String> = home_vms.iter().map(|v| v.id.to_string()).collect();
                // This process's world is this one host: its guests, its
                // bonds, its own DFS lease. Other hosts live in their own
                // agents' processes.
                let world = Rc::new(RefCell::new(World::new(
                    seed,
                    vec![spec],
                    home_vms,
                    timings,
                    world_lines.clone(),
                )));
                let trace = Rc::new(AgentTrace {
                    out: Stdout::start(),
                    world: Some(world_lines),
                });
                let driver = SimDriver {
                    world,
                    host: host.clone(),
                    clock: clock.clone(),
                };
                let started = format!(
                    "started with the simulated driver (guest boot {boot_ms} ms): {} VMs running{}{}",
                    names.len(),
                    if names.is_empty() { "" } else { ": " },
                    names.join(", ")
                );
                let service = run_agent(
                    agent_cfg,
                    Rc::new(TokioConnect),
                    Rc::new(driver),
                    clock.clone(),
                    trace.clone(),
                );
                (Box::pin(service), trace, started)
            }
            DriverConfig::Libvirt(lv) => {
                let trace = Rc::new(AgentTrace {
                    out: Stdout::start(),
                    world: None,
                });
                let (service, started) = libvirt_agent(agent_cfg, host.clone(), *lv, clock.clone(), trace.clone())?;
                (service, trace, started)
            }
        };
        let source = format!("agent/{host}");
        let say = |text: &str| trace.line(clock.now_ms(), &source, text);
        say(&started);
        say(&format!("controller at {}", cfg.controller));

        let t = trace.clone();
        let _world_printer = tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(WORLD_LINES_EVERY).await;
                t.flush_world();
            }
        });
        tokio::select! {
            // `run_agent` never returns on its own.
            _ = service => anyhow::bail!("the agent loop ended unexpectedly"),
            signal = shutdown_signal(&mut term, &mut int) => {
                say(&format!("{signal}: shutting down, leaving guests running"));
            }
        }
        trace.flush_world();
        trace.out.finish(STDOUT_FINISH_WAIT);
        Ok(())
    })?;
    drop(local);
    drop(rt);
    Ok(())
}

/// `krrish lab-boot-home --config agent.yaml --cluster cluster.yaml`: boots
/// the cluster's VMs whose home is this agent's host, through the libvirt
/// driver its config describes, and exits — a lab run provisioning a
/// physical host (through the inventory's `run`) before its agent starts.
/// A VM already running there is left as it is.
#[cfg(feature = "lab")]
pub fn boot_home(config: &Path, cluster_file: &Path) -> Result<()> {
    use krrish_agent::Driver;
    let cfg = load_agent(config)?;
    let DriverConfig::Libvirt(lv) = &cfg.driver else {
        anyhow::bail!(
            "{}: driver.kind is not libvirt: only real guests are booted here",
            config.display()
        );
    };
    let cluster = krrish_scenario::load_cluster(cluster_file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cluster_file.display()))?;
    let host = HostId::new(cfg.host.clone());
    if !cluster.hosts.iter().any(|h| h.id == host) {
        anyhow::bail!(
            "{}: no host {host} in it (the agent config's `host`)",
            cluster_file.display()
        );
    }
    let driver = libvirt_driver(host.clone(), lv, 1)?;
    let rt = runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let running = driver.status().running;
        let mut failed = Vec::new();
        for vm in cluster.vms.iter().filter(|v| v.home == host) {
            if running.contains(&vm.id) {
                println!("{}: running on {host} already", vm.id);
                continue;
            }
            match driver
                .boot_vm(vm, krrish_core::ha::BootReason::Create, &Default::default())
                .await
            {
                Ok(()) => println!("{}: booted on {host}", vm.id),
                Err(e) => failed.push(format!("{}: {e}", vm.id)),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("booting on {host}: {}", failed.join("; "))
        }
    })
}
