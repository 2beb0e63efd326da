//! The network's API calls: checks names, calls [`Network`], shapes the reply.

use super::Network;
use crate::name::Name;
use crate::request::{vm_name, CloudError, CloudReply, CloudRequest};
use krrish_core::VmId;

/// Answers a network call ([`CloudRequest::family`] is `Network`).
pub(crate) fn apply(
    net: &mut Network,
    request: CloudRequest,
    now_ms: u64,
    vm_exists: &dyn Fn(&VmId) -> bool,
) -> Result<CloudReply, CloudError> {
    if request.is_load_balancer() {
        return super::lb::apply(net, request, now_ms, vm_exists);
    }
    use serde_json::json;
    use CloudRequest as R;
    let name = |field: &str, s: &str| Name::parse(field, s);
    let vm = vm_name;
    let reply = |message: String, data: serde_json::Value| CloudReply { message, data };
    Ok(match request {
        R::CreateVxnet { name: n, network } => {
            let v = net.create_vxnet(name("name", &n)?, network)?;
            reply(
                format!("vxnet {} created: {}/24, VNI {}", v.name, v.network, v.vni),
                json!(v),
            )
        }
        R::DeleteVxnet { name: n } => {
            let n = name("name", &n)?;
            net.delete_vxnet(&n)?;
            reply(format!("vxnet {n} deleted"), json!({ "vxnet": n }))
        }
        R::JoinVxnet { vxnet, vm: v, ip } => {
            let (x, v) = (name("vxnet", &vxnet)?, vm(&v)?);
            let ip = net.join_vxnet(&x, &v, vm_exists(&v), ip)?;
            reply(
                format!("vm {v} joined vxnet {x} at {ip}"),
                json!({ "vm": v, "vxnet": x, "ip": ip }),
            )
        }
        R::LeaveVxnet { vxnet, vm: v } => {
            let (x, v) = (name("vxnet", &vxnet)?, vm(&v)?);
            let ip = net.leave_vxnet(&x, &v)?;
            reply(
                format!("vm {v} left vxnet {x} ({ip} freed)"),
                json!({ "vm": v, "vxnet": x, "ip": ip }),
            )
        }
        R::CreateRouter { name: n } => {
            let r = net.create_router(name("name", &n)?)?;
            reply(format!("router {} created", r.name), json!(r))
        }
        R::DeleteRouter { name: n } => {
            let n = name("name", &n)?;
            net.delete_router(&n)?;
            reply(format!("router {n} deleted"), json!({ "router": n }))
        }
        R::JoinRouter { router, vxnet } => {
            let (r, x) = (name("router", &router)?, name("vxnet", &vxnet)?);
            net.join_router(&r, &x)?;
            reply(
                format!("vxnet {x} joined router {r}"),
                json!({ "router": r, "vxnet": x }),
            )
        }
        R::LeaveRouter { router, vxnet } => {
            let (r, x) = (name("router", &router)?, name("vxnet", &vxnet)?);
            net.leave_router(&r, &x)?;
            reply(
                format!("vxnet {x} left router {r}"),
                json!({ "router": r, "vxnet": x }),
            )
        }
        R::AllocateEip { name: n, kind } => {
            let e = net.allocate_eip(name("name", &n)?, kind)?;
            reply(
                format!("eip {} allocated: {} ({})", e.name, e.address, e.kind),
                json!(e),
            )
        }
        R::ReleaseEip { name: n } => {
            let n = name("name", &n)?;
            net.release_eip(&n)?;
            reply(format!("eip {n} released"), json!({ "eip": n }))
        }
        R::AssociateEip { eip, vm: v } => {
            let (e, v) = (name("eip", &eip)?, vm(&v)?);
            net.associate_eip(&e, &v, vm_exists(&v))?;
            reply(
                format!("eip {e} associated with vm {v}"),
                json!({ "eip": e, "vm": v }),
            )
        }
        R::DissociateEip { eip } => {
            let e = name("eip", &eip)?;
            let v = net.dissociate_eip(&e)?;
            reply(
                format!("eip {e} dissociated from vm {v}"),
                json!({ "eip": e, "vm": v }),
            )
        }
        R::CreateDnsAlias { name: n } => {
            let a = net.create_alias(name("name", &n)?)?;
            reply(format!("dns alias {} created", a.name), json!(a))
        }
        R::DeleteDnsAlias { name: n } => {
            let n = name("name", &n)?;
            net.delete_alias(&n)?;
            reply(format!("dns alias {n} deleted"), json!({ "alias": n }))
        }
        R::AssociateDnsAlias { alias, vm: v } => {
            let (a, v) = (name("alias", &alias)?, vm(&v)?);
            net.associate_alias(&a, &v, vm_exists(&v))?;
            reply(
                format!("dns alias {a} associated with vm {v}"),
                json!({ "alias": a, "vm": v }),
            )
        }
        R::DissociateDnsAlias { alias } => {
            let a = name("alias", &alias)?;
            let v = net.dissociate_alias(&a)?;
            reply(
                format!("dns alias {a} dissociated from vm {v}"),
                json!({ "alias": a, "vm": v }),
            )
        }
        R::DescribeVxnets => {
            let list: Vec<serde_json::Value> = net
                    .vxnets()
                    .map(|v| {
                        let nics = net.nics_on(&v.name);
                        json!({
                            "name": v.name, "vni": v.vni, "network": v.network,
                            "gateway": v.gateway(), "router": v.router,
                            "vms": nics.iter().map(|n| json!({"vm": n.vm, "ip": n.ip})).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
            reply(format!("{} vxnets", list.len()), json!(list))
        }
        R::DescribeRouters => {
            let list: Vec<serde_json::Value> = net
                .routers()
                .map(|r| {
                    let vxnets: Vec<&Name> = net
                        .vxnets()
                        .filter(|v| v.router.as_ref() == Some(&r.name))
                        .map(|v| &v.name)
                        .collect();
                    json!({ "name": r.name, "vxnets": vxnets })
                })
                .collect();
            reply(format!("{} routers", list.len()), json!(list))
        }
        R::DescribeEips => {
            let list: Vec<serde_json::Value> = net
                .eips()
                .map(|e| {
                    let mut v = json!(e);
                    v["load_balancer"] = json!(net.lb_on_eip(&e.name).map(|l| &l.name));
                    v
                })
                .collect();
            reply(format!("{} eips", list.len()), json!(list))
        }
        R::DescribeDnsAliases => {
            let list: Vec<serde_json::Value> = net
                .aliases()
                .map(|a| {
                    let ip = net.resolve(&a.name).ok().map(|(_, ip)| ip);
                    json!({ "name": a.name, "vm": a.vm, "resolves_to": ip })
                })
                .collect();
            reply(format!("{} dns aliases", list.len()), json!(list))
        }
        other => unreachable!("{other} is not a network call"),
    })
}
