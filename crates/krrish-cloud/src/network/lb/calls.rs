//! The load balancers' API calls: checks names, ports and ranges, calls
//! [`Network`], shapes the reply.

use super::records::NewLb;
use super::{port, LoadBalancer};
use crate::name::Name;
use crate::network::Network;
use crate::request::{vm_name, CloudError, CloudReply, CloudRequest};
use krrish_core::VmId;
use serde_json::{json, Value};

/// A load balancer as `DescribeLoadBalancers` shows it.
pub fn describe(net: &Network, lb: &LoadBalancer) -> Value {
    let (eip, vxnet) = match &lb.frontend {
        super::Frontend::External { eip } => (Some(eip), None),
        super::Frontend::Internal { vxnet, .. } => (None, Some(vxnet)),
    };
    let listeners: Vec<Value> = lb
        .listeners
        .values()
        .map(|x| {
            json!({
                "port": x.port,
                "protocol": x.protocol,
                "balance": x.balance,
                "health_check": x.health_check,
                "backends": x.backends.values().collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "name": lb.name,
        "kind": lb.kind(),
        "address": net.lb_address(lb),
        "eip": eip,
        "vxnet": vxnet,
        "listeners": listeners,
    })
}

/// Answers a load-balancer call.
pub(crate) fn apply(
    net: &mut Network,
    request: CloudRequest,
    now_ms: u64,
    vm_exists: &dyn Fn(&VmId) -> bool,
) -> Result<CloudReply, CloudError> {
    use CloudRequest as R;
    let name = |field: &str, s: &str| Name::parse(field, s);
    let opt = |field: &str, s: Option<String>| s.map(|s| Name::parse(field, &s)).transpose();
    let reply = |message: String, data: Value| CloudReply { message, data };
    Ok(match request {
        R::CreateLoadBalancer {
            name: n,
            kind,
            eip,
            vxnet,
            ip,
        } => {
            let new = NewLb {
                name: name("name", &n)?,
                kind,
                eip: opt("eip", eip)?,
                vxnet: opt("vxnet", vxnet)?,
                ip,
            };
            let lb = net.create_lb(new)?.clone();
            let at = net
                .lb_address(&lb)
                .map(|a| a.to_string())
                .unwrap_or_default();
            let on = match &lb.frontend {
                super::Frontend::External { eip } => format!("eip {eip}"),
                super::Frontend::Internal { vxnet, .. } => format!("vxnet {vxnet}"),
            };
            reply(
                format!(
                    "load balancer {} created: {} on {on} at {at}",
                    lb.name,
                    lb.kind()
                ),
                describe(net, &lb),
            )
        }
        R::DeleteLoadBalancer { name: n } => {
            let n = name("name", &n)?;
            let lb = net.delete_lb(&n)?;
            let freed = match &lb.frontend {
                super::Frontend::External { eip } => format!("eip {eip} kept"),
                super::Frontend::Internal { vxnet, ip } => format!("{ip} on vxnet {vxnet} freed"),
            };
            reply(
                format!("load balancer {n} deleted ({freed})"),
                json!({ "load_balancer": n }),
            )
        }
        R::AddListener {
            lb,
            port: p,
            protocol,
            balance,
            health_check,
        } => {
            let lb = name("lb", &lb)?;
            let p = port("port", p)?;
            let check = health_check.check()?;
            let x = net.add_listener(&lb, p, protocol, balance, check)?;
            let hc = x.health_check;
            reply(
                format!(
                    "load balancer {lb} listens on port {p} ({protocol}, {balance}; health check every {} ms, {} in, {} out)",
                    hc.interval_ms, hc.healthy_threshold, hc.unhealthy_threshold
                ),
                json!({
                    "load_balancer": lb, "port": p, "protocol": protocol,
                    "balance": balance, "health_check": hc,
                }),
            )
        }
        R::RemoveListener { lb, listener } => {
            let lb = name("lb", &lb)?;
            let p = port("listener", listener)?;
            let x = net.remove_listener(&lb, p)?;
            let gone: Vec<&str> = x.backends.keys().map(|v| v.as_str()).collect();
            let said = if gone.is_empty() {
                "it had no backends".to_string()
            } else {
                format!("backends removed: {}", gone.join(", "))
            };
            reply(
                format!("load balancer {lb} no longer listens on port {p} ({said})"),
                json!({ "load_balancer": lb, "port": p, "backends_removed": gone }),
            )
        }
        R::AddBackend {
            lb,
            listener,
            vm,
            port: bp,
            weight,
        } => {
            let lb = name("lb", &lb)?;
            let p = port("listener", listener)?;
            let vm = vm_name(&vm)?;
            let bp = bp.map(|x| port("port", x)).transpose()?;
            let b = net.add_backend(&lb, p, &vm, vm_exists(&vm), bp, weight, now_ms)?;
            reply(
                format!(
                    "vm {vm} port {} (weight {}) added to load balancer {lb} listener {p}: {} until it passes its health checks",
                    b.port, b.weight, b.health
                ),
                json!({
                    "load_balancer": lb, "listener": p, "vm": vm,
                    "port": b.port, "weight": b.weight, "health": b.health,
                }),
            )
        }
        R::RemoveBackend { lb, listener, vm } => {
            let lb = name("lb", &lb)?;
            let p = port("listener", listener)?;
            let vm = vm_name(&vm)?;
            net.remove_backend(&lb, p, &vm)?;
            reply(
                format!("vm {vm} removed from load balancer {lb} listener {p}"),
                json!({ "load_balancer": lb, "listener": p, "vm": vm }),
            )
        }
        R::DescribeLoadBalancers => {
            let list: Vec<Value> = net.load_balancers().map(|l| describe(net, l)).collect();
            reply(format!("{} load balancers", list.len()), json!(list))
        }
        other => unreachable!("{other} is not a load-balancer call"),
    })
}
