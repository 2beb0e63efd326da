//! `krrish plan spares`: what each spare-pool size buys.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use krrish_core::heartbeat::HeartbeatConfig;
use krrish_core::rules::Rules;
use krrish_core::spares::spare_pool_size;
use krrish_core::{HaConfig, HaPolicy, HostId, Resources, VmId, Zone};
use krrish_plan::{analytic, plan, report, Lifetime, PlanHost, PlanInput, PlanRules, Repair};
use krrish_scenario::load_cluster;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PlanCmd {
    /// Size the spare pool: availability bought by each spare count.
    Spares(SparesArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct SparesArgs {
    /// Production (hypervisor) hosts, each with --vms-per-host VMs.
    #[arg(long, required_unless_present = "cluster", conflicts_with = "cluster")]
    hosts: Option<usize>,
    /// A cluster file (as in scenarios): its hypervisor hosts, VMs, racks and
    /// spare size.
    #[arg(long, value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// Mean time between failures of one host, hours.
    #[arg(long, default_value_t = 8760.0, allow_negative_numbers = true)]
    mtbf_hours: f64,
    /// Mean time to repair a host, hours.
    #[arg(long, default_value_t = 24.0, allow_negative_numbers = true)]
    mttr_hours: f64,
    /// Weibull shape for host lifetimes (default: exponential). >1 = ageing.
    #[arg(long, allow_negative_numbers = true)]
    weibull_shape: Option<f64>,
    /// Lognormal sigma for repair times (default: exponential).
    #[arg(long, allow_negative_numbers = true)]
    repair_sigma: Option<f64>,
    /// Correlated failures: mean hours between whole-rack outages.
    #[arg(long, allow_negative_numbers = true)]
    rack_mtbf_hours: Option<f64>,
    /// Hosts per rack when --hosts is used.
    #[arg(long, default_value_t = 10)]
    rack_size: usize,
    /// Spares never fail (the analytic model's assumption).
    #[arg(long)]
    spares_dont_fail: bool,
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    years: f64,
    #[arg(long, default_value_t = 2000)]
    trials: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Evaluate 0..=N spares (default: until more would not matter).
    #[arg(long)]
    max_spares: Option<usize>,
    /// With --hosts: VMs per host, each --vm-vcpus × --vm-memory-gib.
    #[arg(long, default_value_t = 10)]
    vms_per_host: usize,
    #[arg(long, default_value_t = 2)]
    vm_vcpus: u32,
    #[arg(long, default_value_t = 8)]
    vm_memory_gib: u64,
    /// Detection + fencing + boot, seconds (default from the HA settings).
    #[arg(long, allow_negative_numbers = true)]
    failover_seconds: Option<f64>,
    /// Guest boot time, seconds.
    #[arg(long, default_value_t = 20.0, allow_negative_numbers = true)]
    boot_seconds: f64,
    /// Check the model against the real HA manager: replay the first N
    /// trials' failure histories in the event world, print the measured
    /// uncovered fraction, failures without a spare and RTOs beside the
    /// model's for those trials, then the table again with the measured
    /// mean failover time.
    #[arg(long, value_name = "N")]
    validate: Option<u32>,
    /// With --validate: the share of failures that are power losses taking
    /// the BMC too (fenced by DFS lease expiry, not IPMI).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    power_loss_fraction: f64,
    /// Report the fewest spares that reach this VM availability.
    #[arg(long, allow_negative_numbers = true)]
    target_availability: Option<f64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write an SVG of availability against spare count.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Worker threads (the result does not depend on it).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn main(cmd: PlanCmd) -> Result<ExitCode> {
    match cmd {
        PlanCmd::Spares(a) => spares(a),
    }
}

fn spares(a: SparesArgs) -> Result<ExitCode> {
    for (name, v) in [
        ("--mtbf-hours", a.mtbf_hours),
        ("--mttr-hours", a.mttr_hours),
        ("--years", a.years),
        ("--boot-seconds", a.boot_seconds),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name} must be a positive number of hours or seconds, not {v}");
        }
    }
    for (name, v) in [
        ("--weibull-shape", a.weibull_shape),
        ("--repair-sigma", a.repair_sigma),
        ("--rack-mtbf-hours", a.rack_mtbf_hours),
        ("--failover-seconds", a.failover_seconds),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                bail!("{name} must be a positive number, not {v}");
            }
        }
    }
    if a.trials == 0 {
        bail!("--trials must be at least 1");
    }
    // Bounds checked before any work (the model checks them too, but only
    // after a uniform cluster of --hosts is built: 10^11 hosts aborted on
    // allocation — found by the bad-input adversary).
    let bounds: [(&str, u64, u64, u64); 6] = [
        ("--trials", u64::from(a.trials), 1, 1_000_000),
        ("--hosts", a.hosts.unwrap_or(1) as u64, 0, 100_000),
        ("--vms-per-host", a.vms_per_host as u64, 0, 10_000),
        ("--vm-vcpus", u64::from(a.vm_vcpus), 1, 1_024),
        (
            "--vm-memory-gib",
            a.vm_memory_gib,
            1,
            krrish_scenario::format::MEMORY_GIB_MAX,
        ),
        (
            "--validate",
            u64::from(a.validate.unwrap_or(1)),
            1,
            1_000_000,
        ),
    ];
    for (name, v, min, max) in bounds {
        if !(min..=max).contains(&v) {
            bail!("{name} must be between {min} and {max}, not {v}");
        }
    }
    if a.years > 1_000.0 {
        bail!("--years must be at most 1000, not {}", a.years);
    }
    if let (Some(h), None) = (a.hosts, &a.cluster) {
        let vms = h as u64 * a.vms_per_host as u64;
        if vms > 1_000_000 {
            bail!(
                "--hosts {h} × --vms-per-host {} = {vms} VMs; at most 1000000",
                a.vms_per_host
            );
        }
    }
    if let Some(plot) = &a.plot {
        let inputs: Vec<PathBuf> = a.cluster.iter().cloned().collect();
        crate::output_file::not_an_input(plot, "--plot", "an SVG plot", &inputs)?;
    }
    if a.validate.is_some() && a.cluster.is_none() && (a.vm_vcpus != 2 || a.vm_memory_gib != 8) {
        bail!("--validate with --hosts simulates 2 vCPU / 8 GiB VMs; give a --cluster file for other sizes");
    }
    if let Some(t) = a.target_availability {
        if !(t > 0.0 && t < 1.0) {
            bail!("--target-availability must be between 0 and 1 (such as 0.9999), not {t}");
        }
    }
    if a.rack_size == 0 {
        bail!("--rack-size must be at least 1");
    }
    let (hosts, spare_capacity, cluster_rules) = match (&a.cluster, a.hosts) {
        (Some(path), _) => from_cluster(path)?,
        (None, Some(0)) => bail!("--hosts must be at least 1"),
        (None, Some(n)) => {
            let vm = Resources::new(a.vm_vcpus, a.vm_memory_gib * 1024, 40);
            let u = PlanInput::uniform(
                n,
                a.rack_size,
                a.vms_per_host,
                (vm, HaPolicy::Restart),
                Resources::new(32, 128 * 1024, 2_000),
            );
            (u.hosts, u.spare_capacity, None)
        }
        (None, None) => bail!("give --hosts N or --cluster FILE"),
    };
    let n = hosts.len();
    let n_hosts = n;
    let failover_s = a.failover_seconds.unwrap_or_else(|| {
        let ha = HaConfig::default();
        let hb: HeartbeatConfig = ha.heartbeat;
        (hb.detection_ms() as f64 + 1_000.0) / 1000.0 + a.boot_seconds
    });
    let lifetime = match a.weibull_shape {
        Some(shape) => Lifetime::Weibull {
            mtbf_hours: a.mtbf_hours,
            shape,
        },
        None => Lifetime::Exponential {
            mtbf_hours: a.mtbf_hours,
        },
    };
    let repair = match a.repair_sigma {
        Some(sigma) => Repair::Lognormal {
            mttr_hours: a.mttr_hours,
            sigma,
        },
        None => Repair::Exponential {
            mttr_hours: a.mttr_hours,
        },
    };
    let spares_max = match a.max_spares {
        Some(m) if m > n => bail!("--max-spares {m} is more than the {n} production hosts"),
        Some(m) => m,
        None => sensible_max(n, a.mtbf_hours, a.mttr_hours),
    };
    let racks = hosts.iter().map(|h| h.rack).max().unwrap_or(0) + 1;
    let input = PlanInput {
        hosts,
        spare_capacity,
        spare_racks: (0..racks).collect(),
        spares_max,
        lifetime,
        repair,
        rack_mtbf_hours: a.rack_mtbf_hours,
        spares_fail: !a.spares_dont_fail,
        failover_s,
        boot_s: a.boot_seconds,
        years: a.years,
        trials: a.trials,
        seed: a.seed,
        threads: a.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        rules: cluster_rules
            .map(|(rules, vms, spares)| PlanRules::new(rules, vms, spares, spares_max))
            .unwrap_or_default(),
    };
    eprintln!(
        "seed {} ({} trials × {} years, {} hosts, 0..={} spares)",
        a.seed, a.trials, a.years, n, spares_max
    );
    #[allow(clippy::disallowed_methods)] // reporting speed only
    let started = std::time::Instant::now();
    let result = plan(&input)?;
    let wall = started.elapsed().as_secs_f64();
    eprintln!(
        "simulated {:.2e} host-years per row in {:.2}s ({:.2e} host-years/s over {} rows)",
        result.host_years,
        wall,
        result.host_years * result.rows.len() as f64 / wall,
        result.rows.len()
    );
    match a.format {
        Format::Table => out_raw!("{}", report::table(&result, a.target_availability)),
        Format::Json => out!("{}", report::json(&result, a.target_availability)),
    }
    if let Some(n) = a.validate {
        let (hosts, vms) = match &a.cluster {
            Some(p) => {
                let c = load_cluster(p).map_err(|e| anyhow::anyhow!("{e}"))?;
                (c.hosts, c.vms)
            }
            None => {
                if a.vm_vcpus != 2 || a.vm_memory_gib != 8 {
                    bail!("--validate with --hosts simulates 2 vCPU / 8 GiB VMs; give a --cluster file for other sizes");
                }
                krrish_sim::demo::cluster(n_hosts, spare_pool_size(n_hosts), a.vms_per_host)
            }
        };
        let spares = hosts.iter().filter(|h| h.zone == Zone::Spare).count();
        eprintln!("validating: {n} trials' histories through the event world…");
        let progress = |trial: u32, m: &crate::plan_validate::Measured| {
            eprintln!(
                "  trial {}/{n}: {} failures so far, {} without a spare",
                trial + 1,
                m.failures,
                m.failures_without_spare
            )
        };
        let measured = crate::plan_validate::run(
            &hosts,
            &vms,
            &input,
            n,
            a.power_loss_fraction,
            a.seed,
            &progress,
        )?;
        let (text, mean) = crate::plan_validate::report(&measured, &input, spares)?;
        out!("\n{text}");
        let again = plan(&PlanInput {
            failover_s: mean,
            ..input.clone()
        })?;
        out!("the table again with the measured mean failover time:");
        out_raw!("{}", report::table(&again, a.target_availability));
    }
    if let Some(p) = &a.plot {
        std::fs::write(p, report::svg(&result, a.target_availability))
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Enough rows that one more spare would change nothing visible: beyond the
/// point where more than that many hosts are down with probability < 1e-7,
/// and at least two past the step table.
fn sensible_max(n: usize, mtbf: f64, mttr: f64) -> usize {
    let p = analytic::unavailability(mtbf, mttr);
    let pmf = analytic::binomial_pmf(n, p.min(0.999_999));
    let mut tail = 1.0;
    let mut s = 0;
    for (k, pk) in pmf.iter().enumerate() {
        tail -= pk;
        s = k;
        if tail < 1e-7 {
            break;
        }
    }
    (s + 2).max(spare_pool_size(n) + 2).min(n).min(64)
}

/// A cluster's rule groups with its VMs' names (in the planner's order)
/// and its spares' names.
type ClusterRules = (Rules, Vec<VmId>, Vec<HostId>);

fn from_cluster(
    path: &std::path::Path,
) -> Result<(Vec<PlanHost>, Resources, Option<ClusterRules>)> {
    let c = load_cluster(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut racks: BTreeMap<&str, u32> = BTreeMap::new();
    let production: Vec<_> = c.hosts.iter().filter(|h| h.zone.runs_vms()).collect();
    if production.is_empty() {
        bail!(
            "{}: no hypervisor (ECS, DFS or KS) hosts to protect",
            path.display()
        );
    }
    let hosts = production
        .iter()
        .map(|h| {
            let next = racks.len() as u32;
            let rack = *racks.entry(h.rack.as_str()).or_insert(next);
            let vms = c
                .vms
                .iter()
                .filter(|v| v.home == h.id)
                .map(|v| (v.demand, v.ha))
                .collect();
            PlanHost { rack, vms }
        })
        .collect();
    // The VMs' names in the same order: host after host, as listed.
    let vm_names: Vec<VmId> = production
        .iter()
        .flat_map(|h| {
            c.vms
                .iter()
                .filter(|v| v.home == h.id)
                .map(|v| v.id.clone())
        })
        .collect();
    let spare_names: Vec<HostId> = c
        .hosts
        .iter()
        .filter(|h| h.zone == Zone::Spare)
        .map(|h| h.id.clone())
        .collect();
    let rules = (!c.rules.is_empty()).then(|| (c.rules.clone(), vm_names, spare_names));
    let spare = c
        .hosts
        .iter()
        .find(|h| h.zone == Zone::Spare)
        .map(|h| h.placeable())
        .unwrap_or_else(|| {
            production
                .iter()
                .map(|h| h.placeable())
                .max()
                .expect("non-empty")
        });
    Ok((hosts, spare, rules))
}
