//! `krrish load-balancers …`: load balancers, their listeners and backends
//! through `/v1/load-balancers…`. Each function makes its one call and says
//! how the answer is shown as text.

use super::network::{filters, say, Shown};
use super::{path_part, table, text, Endpoint};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum LoadBalancersCmd {
    /// Load balancers, one row per backend with its health; optionally one
    /// load balancer, one kind, or those with one VM as a backend.
    Describe {
        name: Option<String>,
        /// external or internal.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        instance: Option<String>,
    },
    /// Create a load balancer (CreateLoadBalancers): external on an EIP, or
    /// internal with an address on a vxnet.
    Create {
        name: String,
        /// external or internal.
        #[arg(long)]
        kind: String,
        /// An external one's EIP.
        #[arg(long)]
        eip: Option<String>,
        /// An internal one's vxnet.
        #[arg(long)]
        vxnet: Option<String>,
        /// An internal one's address (else the first free one).
        #[arg(long)]
        ip: Option<String>,
    },
    /// Delete a load balancer with its listeners (its EIP stays allocated).
    Delete { name: String },
    /// Listen on a port (AddLoadBalancerListeners).
    AddListener {
        name: String,
        #[arg(long)]
        port: u32,
        /// tcp (default) or http.
        #[arg(long)]
        protocol: Option<String>,
        /// round-robin (default), least-conn or source.
        #[arg(long)]
        balance: Option<String>,
        /// Health check every this many ms (default 2000).
        #[arg(long)]
        check_interval_ms: Option<u64>,
        /// A check not answered within this fails (default: the interval).
        #[arg(long)]
        check_timeout_ms: Option<u64>,
        /// Good checks in a row to go in service (default 2).
        #[arg(long)]
        healthy_threshold: Option<u32>,
        /// Failed checks in a row to go out (default 3).
        #[arg(long)]
        unhealthy_threshold: Option<u32>,
    },
    /// Stop listening on a port (its backends go with it).
    RemoveListener {
        name: String,
        #[arg(long)]
        port: u32,
    },
    /// Put a VM behind a listener (AddLoadBalancerBackends).
    AddBackend {
        name: String,
        #[arg(long)]
        listener: u32,
        #[arg(long)]
        instance: String,
        /// The VM's port (default the listener's).
        #[arg(long)]
        port: Option<u32>,
        /// 1 to 100 (default 1).
        #[arg(long)]
        weight: Option<u32>,
    },
    /// Take a VM from behind a listener.
    RemoveBackend {
        name: String,
        #[arg(long)]
        listener: u32,
        #[arg(long)]
        instance: String,
    },
}

pub fn load_balancers(ep: &Endpoint, cmd: LoadBalancersCmd) -> Shown {
    use LoadBalancersCmd as C;
    let lb = |name: &str| format!("/v1/load-balancers/{}", path_part(name));
    Ok(match cmd {
        C::Describe {
            name,
            kind,
            instance,
        } => {
            let v = match name {
                Some(n) => json!([ep.call(&lb(&n), &[], None)?]),
                None => ep.call(
                    "/v1/load-balancers",
                    &filters(&[("kind", &kind), ("instance", &instance)]),
                    None,
                )?,
            };
            (v, Box::new(lb_table))
        }
        C::Create {
            name,
            kind,
            eip,
            vxnet,
            ip,
        } => {
            let mut b = json!({ "name": name, "kind": kind });
            for (k, v) in [("eip", eip), ("vxnet", vxnet), ("ip", ip)] {
                if let Some(v) = v {
                    b[k] = json!(v);
                }
            }
            (
                ep.call("/v1/load-balancers", &[], Some(b))?,
                say(|v| {
                    format!(
                        "load balancer {} created: {} at {}",
                        text(&v["name"]),
                        text(&v["kind"]),
                        text(&v["address"])
                    )
                }),
            )
        }
        C::Delete { name } => (
            ep.delete(&lb(&name))?,
            say(|v| format!("load balancer {} deleted", text(&v["load_balancer"]))),
        ),
        C::AddListener {
            name,
            port,
            protocol,
            balance,
            check_interval_ms,
            check_timeout_ms,
            healthy_threshold,
            unhealthy_threshold,
        } => {
            let mut b = json!({ "port": port });
            for (k, v) in [("protocol", protocol), ("balance", balance)] {
                if let Some(v) = v {
                    b[k] = json!(v);
                }
            }
            let mut hc = json!({});
            for (k, v) in [
                ("interval_ms", check_interval_ms),
                ("timeout_ms", check_timeout_ms),
                ("healthy_threshold", healthy_threshold.map(u64::from)),
                ("unhealthy_threshold", unhealthy_threshold.map(u64::from)),
            ] {
                if let Some(v) = v {
                    hc[k] = json!(v);
                }
            }
            b["health_check"] = hc;
            (
                ep.call(&format!("{}/listeners", lb(&name)), &[], Some(b))?,
                say(|v| {
                    let hc = &v["health_check"];
                    format!(
                        "load balancer {} listens on port {} ({}, {}; health check every {} ms, {} in, {} out)",
                        text(&v["load_balancer"]),
                        text(&v["port"]),
                        text(&v["protocol"]),
                        text(&v["balance"]),
                        text(&hc["interval_ms"]),
                        text(&hc["healthy_threshold"]),
                        text(&hc["unhealthy_threshold"])
                    )
                }),
            )
        }
        C::RemoveListener { name, port } => (
            ep.delete(&format!("{}/listeners/{port}", lb(&name)))?,
            say(|v| {
                format!(
                    "load balancer {} no longer listens on port {}",
                    text(&v["load_balancer"]),
                    text(&v["port"])
                )
            }),
        ),
        C::AddBackend {
            name,
            listener,
            instance,
            port,
            weight,
        } => {
            let mut b = json!({ "instance": instance });
            for (k, v) in [("port", port), ("weight", weight)] {
                if let Some(v) = v {
                    b[k] = json!(v);
                }
            }
            (
                ep.call(
                    &format!("{}/listeners/{listener}/backends", lb(&name)),
                    &[],
                    Some(b),
                )?,
                say(|v| {
                    format!(
                        "vm {} port {} (weight {}) added to load balancer {} listener {}: {}",
                        text(&v["vm"]),
                        text(&v["port"]),
                        text(&v["weight"]),
                        text(&v["load_balancer"]),
                        text(&v["listener"]),
                        text(&v["health"])
                    )
                }),
            )
        }
        C::RemoveBackend {
            name,
            listener,
            instance,
        } => (
            ep.delete(&format!(
                "{}/listeners/{listener}/backends/{}",
                lb(&name),
                path_part(&instance)
            ))?,
            say(|v| {
                format!(
                    "vm {} removed from load balancer {} listener {}",
                    text(&v["vm"]),
                    text(&v["load_balancer"]),
                    text(&v["listener"])
                )
            }),
        ),
    })
}

/// `NAME KIND ADDRESS LISTENER BACKEND WEIGHT HEALTH`, one row per backend
/// (`-` where a load balancer has no listener or a listener no backend).
fn lb_table(v: &Value) -> String {
    let mut rows = Vec::new();
    for l in v.as_array().into_iter().flatten() {
        let head = [text(&l["name"]), text(&l["kind"]), text(&l["address"])];
        let listeners: Vec<&Value> = l["listeners"].as_array().into_iter().flatten().collect();
        if listeners.is_empty() {
            rows.push([&head[..], &["-".into(), "-".into(), "-".into(), "-".into()]].concat());
        }
        for x in listeners {
            let on = format!("{}/{}", text(&x["port"]), text(&x["protocol"]));
            let backends: Vec<&Value> = x["backends"].as_array().into_iter().flatten().collect();
            if backends.is_empty() {
                rows.push([&head[..], &[on.clone(), "-".into(), "-".into(), "-".into()]].concat());
            }
            for b in backends {
                rows.push(
                    [
                        &head[..],
                        &[
                            on.clone(),
                            format!("{}:{}", text(&b["vm"]), text(&b["port"])),
                            text(&b["weight"]),
                            text(&b["health"]),
                        ],
                    ]
                    .concat(),
                );
            }
        }
    }
    table(
        &[
            "NAME", "KIND", "ADDRESS", "LISTENER", "BACKEND", "WEIGHT", "HEALTH",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_backend_with_its_health() {
        let v = json!([
            {"name": "lb-1", "kind": "external", "address": "203.0.113.1", "listeners": [
                {"port": 80, "protocol": "http", "backends": [
                    {"vm": "vm-1", "port": 80, "weight": 1, "health": "in-service"},
                    {"vm": "web-2", "port": 8080, "weight": 3, "health": "new"}]},
                {"port": 443, "protocol": "tcp", "backends": []}]},
            {"name": "lb-2", "kind": "internal", "address": "10.1.2.2", "listeners": []},
        ]);
        assert_eq!(
            lb_table(&v),
            "NAME  KIND      ADDRESS      LISTENER  BACKEND     WEIGHT  HEALTH\n\
             lb-1  external  203.0.113.1  80/http   vm-1:80     1       in-service\n\
             lb-1  external  203.0.113.1  80/http   web-2:8080  3       new\n\
             lb-1  external  203.0.113.1  443/tcp   -           -       -\n\
             lb-2  internal  10.1.2.2     -         -           -       -\n"
        );
    }
}
