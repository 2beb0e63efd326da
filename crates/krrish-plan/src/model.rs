//! Planner inputs and their validation.

use krrish_core::rules::Rules;
use krrish_core::{HaPolicy, HostId, Resources, VmId};
use std::collections::BTreeMap;
use thiserror::Error;

/// The cluster's placement rules, as the planner obeys them on spares:
/// the core's rule groups, each VM's name (in the order of `hosts[..].vms`,
/// host after host) and the names of the spares a replay may use, in order
/// (the cluster's own, then `spare-N`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanRules {
    pub rules: Rules,
    pub vm_names: Vec<VmId>,
    pub spare_names: Vec<HostId>,
}

impl PlanRules {
    pub fn new(
        rules: Rules,
        vm_names: Vec<VmId>,
        mut spare_names: Vec<HostId>,
        spares_max: usize,
    ) -> Self {
        let mut n = 1;
        while spare_names.len() < spares_max {
            let name = HostId::new(format!("spare-{n}"));
            if !spare_names.contains(&name) {
                spare_names.push(name);
            }
            n += 1;
        }
        Self {
            rules,
            vm_names,
            spare_names,
        }
    }

    /// The name of the replay's spare `s` (0-based).
    pub fn spare(&self, s: usize) -> HostId {
        self.spare_names
            .get(s)
            .cloned()
            .unwrap_or_else(|| HostId::new(format!("spare-{}", s + 1)))
    }

    /// The index of each VM a rule names.
    pub fn named(&self) -> BTreeMap<VmId, usize> {
        self.vm_names
            .iter()
            .enumerate()
            .filter(|(_, v)| self.rules.names(v))
            .map(|(i, v)| (v.clone(), i))
            .collect()
    }
}

/// Time to failure of a host (hours).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lifetime {
    /// Memoryless, mean `mtbf_hours`.
    Exponential { mtbf_hours: f64 },
    /// Weibull with mean `mtbf_hours` and `shape` (> 1: ageing, < 1: infant
    /// mortality). A repaired host is as good as new.
    Weibull { mtbf_hours: f64, shape: f64 },
}

impl Lifetime {
    pub fn mean_hours(&self) -> f64 {
        match *self {
            Lifetime::Exponential { mtbf_hours } | Lifetime::Weibull { mtbf_hours, .. } => {
                mtbf_hours
            }
        }
    }
}

/// Time to repair a failed host (hours).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Repair {
    Exponential {
        mttr_hours: f64,
    },
    /// Lognormal with mean `mttr_hours` and log-space deviation `sigma`.
    Lognormal {
        mttr_hours: f64,
        sigma: f64,
    },
}

impl Repair {
    pub fn mean_hours(&self) -> f64 {
        match *self {
            Repair::Exponential { mttr_hours } | Repair::Lognormal { mttr_hours, .. } => mttr_hours,
        }
    }
}

/// One production host: its rack and the VMs it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanHost {
    pub rack: u32,
    /// Demands and HA policies of its VMs, in restart order.
    pub vms: Vec<(Resources, HaPolicy)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlanInput {
    pub hosts: Vec<PlanHost>,
    /// Capacity of each spare host.
    pub spare_capacity: Resources,
    /// Racks the spares sit in, round-robin (empty: a rack of their own).
    pub spare_racks: Vec<u32>,
    /// Spare counts to evaluate: 0..=spares_max.
    pub spares_max: usize,
    pub lifetime: Lifetime,
    pub repair: Repair,
    /// Whole-rack failures (power, top-of-rack switch), if any: mean hours
    /// between events per rack. Each takes every host in the rack down.
    pub rack_mtbf_hours: Option<f64>,
    /// Spares fail and get repaired like any host.
    pub spares_fail: bool,
    /// Detection + fencing + boot: how long a VM is down when a spare takes
    /// it at once.
    pub failover_s: f64,
    /// Boot time alone (a VM restored at home, or placed after waiting).
    pub boot_s: f64,
    pub years: f64,
    pub trials: u32,
    pub seed: u64,
    /// Worker threads (results do not depend on it).
    pub threads: usize,
    /// Placement rules on the spares (none: [`PlanRules::default`]).
    pub rules: PlanRules,
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum PlanError {
    #[error("{what} must be a positive number, not {value}")]
    NotPositive { what: &'static str, value: f64 },
    #[error("{what} must be at most {max}, not {value}")]
    TooLarge {
        what: &'static str,
        value: f64,
        max: f64,
    },
    #[error("the cluster has no production hosts to protect")]
    NoHosts,
    #[error("{spares} spares for {hosts} production hosts: at most as many spares as hosts")]
    TooManySpares { spares: usize, hosts: usize },
    #[error("host {host} carries VMs that need {need}, more than a spare ({spare}) can ever hold")]
    NeverFits {
        host: usize,
        need: String,
        spare: String,
    },
}

pub(crate) fn positive(what: &'static str, value: f64) -> Result<(), PlanError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(PlanError::NotPositive { what, value })
    }
}

impl PlanInput {
    /// `hosts` identical hosts in racks of `rack_size`, each carrying
    /// `vms_per_host` copies of `vm`, spares of `spare_capacity` spread over
    /// the same racks; for the rest the design's defaults: exponential
    /// failures every 8760 h and repairs in 24 h, spares failing too, 40 s
    /// failover (19 s detection, 1 s fence, 20 s boot), no rack outages,
    /// 0..=5 spares, 10 years × 2000 trials, seed 1, one thread.
    pub fn uniform(
        hosts: usize,
        rack_size: usize,
        vms_per_host: usize,
        vm: (Resources, HaPolicy),
        spare_capacity: Resources,
    ) -> Self {
        let rack_size = rack_size.max(1);
        let racks = hosts.div_ceil(rack_size).max(1) as u32;
        Self {
            hosts: (0..hosts)
                .map(|i| PlanHost {
                    rack: (i / rack_size) as u32,
                    vms: vec![vm; vms_per_host],
                })
                .collect(),
            spare_capacity,
            spare_racks: (0..racks).collect(),
            spares_max: 5.min(hosts),
            lifetime: Lifetime::Exponential { mtbf_hours: 8760.0 },
            repair: Repair::Exponential { mttr_hours: 24.0 },
            rack_mtbf_hours: None,
            spares_fail: true,
            failover_s: 40.0,
            boot_s: 20.0,
            years: 10.0,
            trials: 2000,
            seed: 1,
            threads: 1,
            rules: PlanRules::default(),
        }
    }

    pub fn validate(&self) -> Result<(), PlanError> {
        if self.hosts.is_empty() {
            return Err(PlanError::NoHosts);
        }
        if self.spares_max > self.hosts.len() {
            return Err(PlanError::TooManySpares {
                spares: self.spares_max,
                hosts: self.hosts.len(),
            });
        }
        positive(
            "the mean time between failures (hours)",
            self.lifetime.mean_hours(),
        )?;
        positive("the mean time to repair (hours)", self.repair.mean_hours())?;
        if let Lifetime::Weibull { shape, .. } = self.lifetime {
            positive("the Weibull shape", shape)?;
        }
        if let Repair::Lognormal { sigma, .. } = self.repair {
            positive("the lognormal sigma", sigma)?;
        }
        if let Some(r) = self.rack_mtbf_hours {
            positive("the rack mean time between failures (hours)", r)?;
        }
        positive("years", self.years)?;
        positive("trials", f64::from(self.trials))?;
        if self.years > 1_000.0 {
            return Err(PlanError::TooLarge {
                what: "years",
                value: self.years,
                max: 1_000.0,
            });
        }
        if self.trials > 1_000_000 {
            return Err(PlanError::TooLarge {
                what: "trials",
                value: f64::from(self.trials),
                max: 1e6,
            });
        }
        if self.hosts.len() > 100_000 {
            return Err(PlanError::TooLarge {
                what: "hosts",
                value: self.hosts.len() as f64,
                max: 1e5,
            });
        }
        positive("the failover time (s)", self.failover_s)?;
        if !(self.boot_s.is_finite() && self.boot_s >= 0.0) {
            return Err(PlanError::NotPositive {
                what: "the boot time (s)",
                value: self.boot_s,
            });
        }
        Ok(())
    }

    pub fn production_hosts(&self) -> usize {
        self.hosts.len()
    }

    pub fn vm_count(&self) -> usize {
        self.hosts.iter().map(|h| h.vms.len()).sum()
    }
}
