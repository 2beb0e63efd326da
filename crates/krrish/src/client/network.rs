//! `krrish vxnets|routers|eips|dns-aliases …`: the cloud's network
//! resources through `/v1/vxnets…`, `/v1/routers…`, `/v1/eips…` and
//! `/v1/dns-aliases…`. Each function makes its one call and says how the
//! answer is shown as text.

use super::{path_part, rows, table, text, CallError, Endpoint, Render};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum VxnetsCmd {
    /// Vxnets, optionally only those on one router or with one VM.
    List {
        #[arg(long)]
        router: Option<String>,
        #[arg(long)]
        instance: Option<String>,
    },
    /// Create a private network (CreateVxnets).
    Create {
        name: String,
        /// Its /24, as any address in it (default 192.168.<n>.0).
        #[arg(long)]
        network: Option<String>,
    },
    /// Delete a vxnet no VM and no router is on.
    Delete { name: String },
    /// Put a VM on a vxnet (JoinVxnet).
    Join {
        name: String,
        #[arg(long)]
        instance: String,
        /// The address to take (else the first free one).
        #[arg(long)]
        ip: Option<String>,
    },
    /// Take a VM off a vxnet (LeaveVxnet).
    Leave {
        name: String,
        #[arg(long)]
        instance: String,
    },
}

#[derive(Subcommand)]
pub enum RoutersCmd {
    /// Routers with their vxnets.
    List {
        /// Only the router this vxnet is joined to.
        #[arg(long)]
        vxnet: Option<String>,
    },
    /// Create a router (CreateRouters).
    Create { name: String },
    /// Delete a router no vxnet is joined to.
    Delete { name: String },
    /// Join a vxnet to a router (JoinRouter).
    Join {
        router: String,
        #[arg(long)]
        vxnet: String,
    },
    /// Take a vxnet off a router (LeaveRouter).
    Leave {
        router: String,
        #[arg(long)]
        vxnet: String,
    },
}

#[derive(Subcommand)]
pub enum EipsCmd {
    /// EIPs, optionally only one VM's or one kind.
    List {
        #[arg(long)]
        instance: Option<String>,
        /// internet or external.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Take an address from a pool (AllocateEips).
    Allocate {
        name: String,
        /// internet or external.
        #[arg(long)]
        kind: String,
    },
    /// Give an EIP back (ReleaseEips).
    Release { name: String },
    /// Point an EIP at a VM (AssociateEip).
    Associate {
        #[arg(long)]
        eip: String,
        #[arg(long)]
        instance: String,
    },
    /// Take an EIP off its VM (DissociateEips).
    Dissociate { eip: String },
}

#[derive(Subcommand)]
pub enum DnsAliasesCmd {
    /// DNS aliases with their VM and the address they resolve to.
    List {
        #[arg(long)]
        instance: Option<String>,
    },
    /// Create an alias (CreateDNSAliases).
    Create { name: String },
    /// Delete an alias.
    Delete { name: String },
    /// Point an alias at a VM (AssociateDNSAlias).
    Associate {
        #[arg(long)]
        alias: String,
        #[arg(long)]
        instance: String,
    },
    /// Take an alias off its VM (DissociateDNSAliases).
    Dissociate { alias: String },
}

pub(super) type Shown = Result<(Value, Render), CallError>;

/// A query of the filters given.
pub(super) fn filters<'a>(f: &[(&'a str, &'a Option<String>)]) -> Vec<(&'a str, &'a str)> {
    f.iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect()
}

/// One line from the answer's fields: `line(&v)`.
pub(super) fn say(line: impl Fn(&Value) -> String + 'static) -> Render {
    Box::new(move |v| line(v) + "\n")
}

pub fn vxnets(ep: &Endpoint, cmd: VxnetsCmd) -> Shown {
    Ok(match cmd {
        VxnetsCmd::List { router, instance } => (
            ep.call(
                "/v1/vxnets",
                &filters(&[("router", &router), ("instance", &instance)]),
                None,
            )?,
            Box::new(vxnet_table),
        ),
        VxnetsCmd::Create { name, network } => {
            let mut b = json!({ "name": name });
            if let Some(n) = network {
                b["network"] = json!(n);
            }
            (
                ep.call("/v1/vxnets", &[], Some(b))?,
                say(|v| {
                    format!(
                        "vxnet {} created: {}/24, VNI {}",
                        text(&v["name"]),
                        text(&v["network"]),
                        text(&v["vni"])
                    )
                }),
            )
        }
        VxnetsCmd::Delete { name } => (
            ep.delete(&format!("/v1/vxnets/{}", path_part(&name)))?,
            say(|v| format!("vxnet {} deleted", text(&v["vxnet"]))),
        ),
        VxnetsCmd::Join { name, instance, ip } => {
            let mut b = json!({ "instance": instance });
            if let Some(ip) = ip {
                b["ip"] = json!(ip);
            }
            (
                ep.call(
                    &format!("/v1/vxnets/{}/join", path_part(&name)),
                    &[],
                    Some(b),
                )?,
                say(|v| {
                    format!(
                        "vm {} joined vxnet {} at {}",
                        text(&v["vm"]),
                        text(&v["vxnet"]),
                        text(&v["ip"])
                    )
                }),
            )
        }
        VxnetsCmd::Leave { name, instance } => (
            ep.call(
                &format!("/v1/vxnets/{}/leave", path_part(&name)),
                &[],
                Some(json!({ "instance": instance })),
            )?,
            say(|v| {
                format!(
                    "vm {} left vxnet {} ({} freed)",
                    text(&v["vm"]),
                    text(&v["vxnet"]),
                    text(&v["ip"])
                )
            }),
        ),
    })
}

/// `NAME NETWORK GATEWAY VNI ROUTER INSTANCES`, instances as `vm:ip`.
fn vxnet_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            let nics: Vec<String> = x["vms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| format!("{}:{}", text(&n["vm"]), text(&n["ip"])))
                .collect();
            vec![
                text(&x["name"]),
                format!("{}/24", text(&x["network"])),
                text(&x["gateway"]),
                text(&x["vni"]),
                text(&x["router"]),
                if nics.is_empty() {
                    "-".into()
                } else {
                    nics.join(",")
                },
            ]
        })
        .collect();
    table(
        &["NAME", "NETWORK", "GATEWAY", "VNI", "ROUTER", "INSTANCES"],
        &rows,
    )
}

pub fn routers(ep: &Endpoint, cmd: RoutersCmd) -> Shown {
    let join = |router: &str, verb: &str, vxnet: String| {
        ep.call(
            &format!("/v1/routers/{}/{verb}", path_part(router)),
            &[],
            Some(json!({ "vxnet": vxnet })),
        )
    };
    Ok(match cmd {
        RoutersCmd::List { vxnet } => (
            ep.call("/v1/routers", &filters(&[("vxnet", &vxnet)]), None)?,
            Box::new(|v| {
                let mut r = rows(v, &["name", "vxnets"]);
                for row in &mut r {
                    if row[1].is_empty() {
                        row[1] = "-".into();
                    }
                }
                table(&["NAME", "VXNETS"], &r)
            }),
        ),
        RoutersCmd::Create { name } => (
            ep.call("/v1/routers", &[], Some(json!({ "name": name })))?,
            say(|v| format!("router {} created", text(&v["name"]))),
        ),
        RoutersCmd::Delete { name } => (
            ep.delete(&format!("/v1/routers/{}", path_part(&name)))?,
            say(|v| format!("router {} deleted", text(&v["router"]))),
        ),
        RoutersCmd::Join { router, vxnet } => (
            join(&router, "join", vxnet)?,
            say(|v| {
                format!(
                    "vxnet {} joined router {}",
                    text(&v["vxnet"]),
                    text(&v["router"])
                )
            }),
        ),
        RoutersCmd::Leave { router, vxnet } => (
            join(&router, "leave", vxnet)?,
            say(|v| {
                format!(
                    "vxnet {} left router {}",
                    text(&v["vxnet"]),
                    text(&v["router"])
                )
            }),
        ),
    })
}

pub fn eips(ep: &Endpoint, cmd: EipsCmd) -> Shown {
    Ok(match cmd {
        EipsCmd::List { instance, kind } => (
            ep.call(
                "/v1/eips",
                &filters(&[("instance", &instance), ("kind", &kind)]),
                None,
            )?,
            Box::new(|v| {
                table(
                    &["NAME", "ADDRESS", "KIND", "INSTANCE"],
                    &rows(v, &["name", "address", "kind", "vm"]),
                )
            }),
        ),
        EipsCmd::Allocate { name, kind } => (
            ep.call("/v1/eips", &[], Some(json!({ "name": name, "kind": kind })))?,
            say(|v| {
                format!(
                    "eip {} allocated: {} ({})",
                    text(&v["name"]),
                    text(&v["address"]),
                    text(&v["kind"])
                )
            }),
        ),
        EipsCmd::Release { name } => (
            ep.delete(&format!("/v1/eips/{}", path_part(&name)))?,
            say(|v| format!("eip {} released", text(&v["eip"]))),
        ),
        EipsCmd::Associate { eip, instance } => (
            ep.call(
                &format!("/v1/eips/{}/associate", path_part(&eip)),
                &[],
                Some(json!({ "instance": instance })),
            )?,
            say(|v| {
                format!(
                    "eip {} associated with vm {}",
                    text(&v["eip"]),
                    text(&v["vm"])
                )
            }),
        ),
        EipsCmd::Dissociate { eip } => (
            ep.call(
                &format!("/v1/eips/{}/dissociate", path_part(&eip)),
                &[],
                Some(json!({})),
            )?,
            say(|v| {
                format!(
                    "eip {} dissociated from vm {}",
                    text(&v["eip"]),
                    text(&v["vm"])
                )
            }),
        ),
    })
}

pub fn dns_aliases(ep: &Endpoint, cmd: DnsAliasesCmd) -> Shown {
    Ok(match cmd {
        DnsAliasesCmd::List { instance } => (
            ep.call(
                "/v1/dns-aliases",
                &filters(&[("instance", &instance)]),
                None,
            )?,
            Box::new(|v| {
                table(
                    &["NAME", "INSTANCE", "RESOLVES-TO"],
                    &rows(v, &["name", "vm", "resolves_to"]),
                )
            }),
        ),
        DnsAliasesCmd::Create { name } => (
            ep.call("/v1/dns-aliases", &[], Some(json!({ "name": name })))?,
            say(|v| format!("dns alias {} created", text(&v["name"]))),
        ),
        DnsAliasesCmd::Delete { name } => (
            ep.delete(&format!("/v1/dns-aliases/{}", path_part(&name)))?,
            say(|v| format!("dns alias {} deleted", text(&v["alias"]))),
        ),
        DnsAliasesCmd::Associate { alias, instance } => (
            ep.call(
                &format!("/v1/dns-aliases/{}/associate", path_part(&alias)),
                &[],
                Some(json!({ "instance": instance })),
            )?,
            say(|v| {
                format!(
                    "dns alias {} associated with vm {}",
                    text(&v["alias"]),
                    text(&v["vm"])
                )
            }),
        ),
        DnsAliasesCmd::Dissociate { alias } => (
            ep.call(
                &format!("/v1/dns-aliases/{}/dissociate", path_part(&alias)),
                &[],
                Some(json!({})),
            )?,
            say(|v| {
                format!(
                    "dns alias {} dissociated from vm {}",
                    text(&v["alias"]),
                    text(&v["vm"])
                )
            }),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxnets_show_their_network_and_instances() {
        let v = json!([
            {"name": "net-1", "network": "10.1.2.0", "gateway": "10.1.2.1", "vni": 1001,
             "router": "r1", "vms": [{"vm": "vm-1", "ip": "10.1.2.2"}, {"vm": "web-1", "ip": "10.1.2.3"}]},
            {"name": "net-2", "network": "192.168.2.0", "gateway": "192.168.2.1", "vni": 1002,
             "router": null, "vms": []},
        ]);
        assert_eq!(
            vxnet_table(&v),
            "NAME   NETWORK         GATEWAY      VNI   ROUTER  INSTANCES\n\
             net-1  10.1.2.0/24     10.1.2.1     1001  r1      vm-1:10.1.2.2,web-1:10.1.2.3\n\
             net-2  192.168.2.0/24  192.168.2.1  1002  -       -\n"
        );
    }

    #[test]
    fn only_the_filters_given_are_sent() {
        let (r, i) = (Some("r1".to_string()), None);
        assert_eq!(
            filters(&[("router", &r), ("instance", &i)]),
            [("router", "r1")]
        );
    }
}
