//! The API calls on cloud resources, as they cross the wire, and how a
//! [`Cloud`] answers them. Names arrive as strings and are checked here, so
//! a refusal names the field that was wrong.

use crate::name::{Name, NameError};
use crate::network::{EipKind, Network, NetworkError};
use krrish_core::VmId;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CloudRequest {
    CreateVxnet {
        name: String,
        /// The /24 (any address in it); default `192.168.<n>.0`.
        #[serde(default)]
        network: Option<Ipv4Addr>,
    },
    DeleteVxnet {
        name: String,
    },
    JoinVxnet {
        vxnet: String,
        vm: String,
        #[serde(default)]
        ip: Option<Ipv4Addr>,
    },
    LeaveVxnet {
        vxnet: String,
        vm: String,
    },
    CreateRouter {
        name: String,
    },
    DeleteRouter {
        name: String,
    },
    JoinRouter {
        router: String,
        vxnet: String,
    },
    LeaveRouter {
        router: String,
        vxnet: String,
    },
    AllocateEip {
        name: String,
        kind: EipKind,
    },
    ReleaseEip {
        name: String,
    },
    AssociateEip {
        eip: String,
        vm: String,
    },
    DissociateEip {
        eip: String,
    },
    CreateDnsAlias {
        name: String,
    },
    DeleteDnsAlias {
        name: String,
    },
    AssociateDnsAlias {
        alias: String,
        vm: String,
    },
    DissociateDnsAlias {
        alias: String,
    },
    DescribeVxnets,
    DescribeRouters,
    DescribeEips,
    DescribeDnsAliases,
}

/// A name as a log shows it: as given when it follows the rule, quoted and
/// escaped when not (so markup or control characters never reach a log raw).
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if crate::name::is_valid(self.0) {
            f.write_str(self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

impl std::fmt::Display for CloudRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use CloudRequest as R;
        let s = Shown;
        match self {
            R::CreateVxnet { name, network } => match network {
                Some(n) => write!(f, "CreateVxnets {} {}/24", s(name), n),
                None => write!(f, "CreateVxnets {}", s(name)),
            },
            R::DeleteVxnet { name } => write!(f, "DeleteVxnets {}", s(name)),
            R::JoinVxnet { vxnet, vm, ip } => match ip {
                Some(ip) => write!(f, "JoinVxnet {} to {} at {}", s(vm), s(vxnet), ip),
                None => write!(f, "JoinVxnet {} to {}", s(vm), s(vxnet)),
            },
            R::LeaveVxnet { vxnet, vm } => write!(f, "LeaveVxnet {} from {}", s(vm), s(vxnet)),
            R::CreateRouter { name } => write!(f, "CreateRouters {}", s(name)),
            R::DeleteRouter { name } => write!(f, "DeleteRouters {}", s(name)),
            R::JoinRouter { router, vxnet } => {
                write!(f, "JoinRouter {} to {}", s(vxnet), s(router))
            }
            R::LeaveRouter { router, vxnet } => {
                write!(f, "LeaveRouter {} from {}", s(vxnet), s(router))
            }
            R::AllocateEip { name, kind } => write!(f, "AllocateEips {} ({})", s(name), kind),
            R::ReleaseEip { name } => write!(f, "ReleaseEips {}", s(name)),
            R::AssociateEip { eip, vm } => write!(f, "AssociateEip {} with {}", s(eip), s(vm)),
            R::DissociateEip { eip } => write!(f, "DissociateEips {}", s(eip)),
            R::CreateDnsAlias { name } => write!(f, "CreateDNSAliases {}", s(name)),
            R::DeleteDnsAlias { name } => write!(f, "DeleteDNSAliases {}", s(name)),
            R::AssociateDnsAlias { alias, vm } => {
                write!(f, "AssociateDNSAlias {} with {}", s(alias), s(vm))
            }
            R::DissociateDnsAlias { alias } => write!(f, "DissociateDNSAliases {}", s(alias)),
            R::DescribeVxnets => f.write_str("DescribeVxnets"),
            R::DescribeRouters => f.write_str("DescribeRouters"),
            R::DescribeEips => f.write_str("DescribeEips"),
            R::DescribeDnsAliases => f.write_str("DescribeDNSAliases"),
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CloudError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Network(#[from] NetworkError),
}

impl CloudError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            CloudError::Name(_) => "invalid-request",
            CloudError::Network(e) => e.code(),
        }
    }
}

/// A successful answer: one line for people, data for programs.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudReply {
    pub message: String,
    pub data: serde_json::Value,
}

/// Everything the cloud holds beside the HA core's hosts and VMs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cloud {
    pub network: Network,
}

impl Cloud {
    /// Changes with every change; equal generations, equal state.
    pub fn generation(&self) -> u64 {
        self.network.generation()
    }

    /// Answers one call. `vm_exists` says whether the HA core knows a VM.
    /// A refused call changes nothing.
    pub fn apply(
        &mut self,
        request: CloudRequest,
        vm_exists: &dyn Fn(&VmId) -> bool,
    ) -> Result<CloudReply, CloudError> {
        use serde_json::json;
        use CloudRequest as R;
        let name = |field: &str, s: &str| Name::parse(field, s);
        let vm =
            |s: &str| -> Result<VmId, CloudError> { Ok(VmId::new(Name::parse("vm", s)?.as_str())) };
        let reply = |message: String, data: serde_json::Value| CloudReply { message, data };
        let net = &mut self.network;
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
                let list: Vec<_> = net.eips().collect();
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
        })
    }
}
