//! The API calls on cloud resources, as they cross the wire, and how a
//! [`Cloud`] answers them. Names arrive as strings and are checked here, so
//! a refusal names the field that was wrong.

use crate::name::{Name, NameError};
use crate::network::lb::{Balance, HealthCheckSpec, LbKind, Protocol};
use crate::network::{EipKind, NetworkError};
use crate::storage::{Provisioning, StorageError};
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

    /// CreateLoadBalancers: `external` on an `eip`, or `internal` with an
    /// address on a `vxnet` (`ip`, or the first free one by the policy).
    CreateLoadBalancer {
        name: String,
        kind: LbKind,
        #[serde(default)]
        eip: Option<String>,
        #[serde(default)]
        vxnet: Option<String>,
        #[serde(default)]
        ip: Option<Ipv4Addr>,
    },
    /// DeleteLoadBalancers: listeners and backends go; the EIP stays.
    DeleteLoadBalancer {
        name: String,
    },
    /// AddLoadBalancerListeners: a port (1–65535, one listener each),
    /// `tcp` or `http`, `round-robin`, `least-conn` or `source`, and the
    /// health check (defaults: 2 s, time-out = interval, 2 in, 3 out).
    AddListener {
        lb: String,
        port: u32,
        #[serde(default)]
        protocol: Protocol,
        #[serde(default)]
        balance: Balance,
        #[serde(default)]
        health_check: HealthCheckSpec,
    },
    RemoveListener {
        lb: String,
        listener: u32,
    },
    /// AddLoadBalancerBackends: a VM the LB reaches, on `port` (default:
    /// the listener's), with `weight` (1–100, default 1).
    AddBackend {
        lb: String,
        listener: u32,
        vm: String,
        #[serde(default)]
        port: Option<u32>,
        #[serde(default)]
        weight: Option<u32>,
    },
    RemoveBackend {
        lb: String,
        listener: u32,
        vm: String,
    },
    DescribeLoadBalancers,

    /// Uploads an image to the DFS repository (its content is derived from
    /// its name).
    CreateImage {
        name: String,
        size_gib: u64,
    },
    DescribeImages,
    CreateVolume {
        name: String,
        size_gib: u64,
        #[serde(default = "thin")]
        provisioning: Provisioning,
        /// Where it lives; default: the datastore outside maintenance with
        /// the most free room.
        #[serde(default)]
        datastore: Option<String>,
    },
    DeleteVolume {
        name: String,
    },
    AttachVolume {
        volume: String,
        vm: String,
    },
    DetachVolume {
        volume: String,
        vm: String,
    },
    DescribeVolumes,
    /// Snapshots the VM's root disk and attached volumes together.
    CreateSnapshot {
        vm: String,
        name: String,
    },
    /// Merges the snapshot's layer forward; no disk reads differently.
    DeleteSnapshot {
        vm: String,
        name: String,
    },
    /// Resets the VM's disks to the snapshot (ResetInstances); deletes no
    /// snapshot.
    RevertSnapshot {
        vm: String,
        name: String,
    },
    DescribeSnapshots {
        vm: String,
    },
    /// A new image from the VM's current disk content (CaptureInstance).
    CaptureInstance {
        vm: String,
        image: String,
    },
    /// A DFS pool disks live on.
    CreateDatastore {
        name: String,
        capacity_gib: u64,
    },
    /// Deletes an empty datastore (drain it first): the notes' "shrink".
    DeleteDatastore {
        name: String,
    },
    DescribeDatastores,
    /// Maintenance: every disk on it moves to the others; it takes no new
    /// disks.
    DrainDatastore {
        name: String,
    },
    /// Out of maintenance: drain moves not yet copying are called off.
    ResumeDatastore {
        name: String,
    },
    /// Moves disks from the fullest datastores to the emptiest until their
    /// usage differs by at most `threshold_percent` points (default 10).
    BalanceDatastores {
        #[serde(default)]
        threshold_percent: Option<u64>,
    },
    /// Storage live migration of one disk: `vm`'s root disk or `volume`.
    MigrateDisk {
        #[serde(default)]
        vm: Option<String>,
        #[serde(default)]
        volume: Option<String>,
        datastore: String,
    },
    /// Calls off a disk's move (queued or copying): it stays where it is.
    CancelDiskMove {
        #[serde(default)]
        vm: Option<String>,
        #[serde(default)]
        volume: Option<String>,
    },
    DescribeDiskMoves,

    /// A managed RDB on two existing VMs on different hosts: `primary`
    /// (epoch 1) and `standby`.
    CreateRdb {
        name: String,
        primary: String,
        standby: String,
    },
    /// Deletes the cluster; its VMs stay.
    DeleteRdb {
        name: String,
    },
    DescribeRdbs,
    /// A planned swap of primary and standby (both healthy); the epoch
    /// moves on.
    SwitchoverRdb {
        name: String,
    },

    /// A MongoDB replica set of 3, 5 or 7 existing VMs on different hosts;
    /// the first is primary at epoch 1.
    CreateMongodb {
        name: String,
        members: Vec<String>,
    },
    /// Deletes the replica set; its VMs stay.
    DeleteMongodb {
        name: String,
    },
    DescribeMongodbs,
    /// A cache cluster: each shard `[master, replica…]`, 2 or 3 existing
    /// VMs on different hosts.
    CreateCache {
        name: String,
        shards: Vec<Vec<String>>,
    },
    /// Deletes the cluster; its VMs stay.
    DeleteCache {
        name: String,
    },
    DescribeCaches,
}

fn thin() -> Provisioning {
    Provisioning::Thin
}

/// Which part of the cloud answers a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Network,
    Storage,
    Rdb,
    /// MongoDB replica sets and cache clusters.
    Service,
}

impl CloudRequest {
    pub fn family(&self) -> Family {
        use CloudRequest as R;
        match self {
            R::CreateImage { .. }
            | R::DescribeImages
            | R::CreateVolume { .. }
            | R::DeleteVolume { .. }
            | R::AttachVolume { .. }
            | R::DetachVolume { .. }
            | R::DescribeVolumes
            | R::CreateSnapshot { .. }
            | R::DeleteSnapshot { .. }
            | R::RevertSnapshot { .. }
            | R::DescribeSnapshots { .. }
            | R::CaptureInstance { .. }
            | R::CreateDatastore { .. }
            | R::DeleteDatastore { .. }
            | R::DescribeDatastores
            | R::DrainDatastore { .. }
            | R::ResumeDatastore { .. }
            | R::BalanceDatastores { .. }
            | R::MigrateDisk { .. }
            | R::CancelDiskMove { .. }
            | R::DescribeDiskMoves => Family::Storage,
            R::CreateRdb { .. }
            | R::DeleteRdb { .. }
            | R::DescribeRdbs
            | R::SwitchoverRdb { .. } => Family::Rdb,
            R::CreateMongodb { .. }
            | R::DeleteMongodb { .. }
            | R::DescribeMongodbs
            | R::CreateCache { .. }
            | R::DeleteCache { .. }
            | R::DescribeCaches => Family::Service,
            _ => Family::Network,
        }
    }

    /// Whether the call is on load balancers (a network call).
    pub fn is_load_balancer(&self) -> bool {
        use CloudRequest as R;
        matches!(
            self,
            R::CreateLoadBalancer { .. }
                | R::DeleteLoadBalancer { .. }
                | R::AddListener { .. }
                | R::RemoveListener { .. }
                | R::AddBackend { .. }
                | R::RemoveBackend { .. }
                | R::DescribeLoadBalancers
        )
    }

    /// Whether the call only reads.
    pub fn is_describe(&self) -> bool {
        use CloudRequest as R;
        matches!(
            self,
            R::DescribeVxnets
                | R::DescribeRouters
                | R::DescribeEips
                | R::DescribeDnsAliases
                | R::DescribeLoadBalancers
                | R::DescribeImages
                | R::DescribeVolumes
                | R::DescribeSnapshots { .. }
                | R::DescribeDatastores
                | R::DescribeDiskMoves
                | R::DescribeRdbs
                | R::DescribeMongodbs
                | R::DescribeCaches
        )
    }
}

/// A VM named in a request, checked by the naming rule.
pub(crate) fn vm_name(s: &str) -> Result<VmId, CloudError> {
    Ok(VmId::new(Name::parse("vm", s)?.as_str()))
}

/// "root disk of VM" / "volume NAME" for a request naming one disk.
fn disk_words(
    f: &mut std::fmt::Formatter<'_>,
    vm: &Option<String>,
    volume: &Option<String>,
) -> std::fmt::Result {
    match (vm, volume) {
        (Some(vm), None) => write!(f, "root disk of {}", Shown(vm)),
        (None, Some(v)) => write!(f, "volume {}", Shown(v)),
        _ => f.write_str("(give vm or volume)"),
    }
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
            R::CreateLoadBalancer {
                name,
                kind,
                eip,
                vxnet,
                ip,
            } => {
                write!(f, "CreateLoadBalancers {} ({kind}", s(name))?;
                if let Some(e) = eip {
                    write!(f, ", eip {}", s(e))?;
                }
                if let Some(x) = vxnet {
                    write!(f, ", vxnet {}", s(x))?;
                }
                if let Some(ip) = ip {
                    write!(f, ", {ip}")?;
                }
                f.write_str(")")
            }
            R::DeleteLoadBalancer { name } => write!(f, "DeleteLoadBalancers {}", s(name)),
            R::AddListener {
                lb,
                port,
                protocol,
                balance,
                ..
            } => write!(
                f,
                "AddLoadBalancerListeners {} port {port} ({protocol}, {balance})",
                s(lb)
            ),
            R::RemoveListener { lb, listener } => {
                write!(f, "DeleteLoadBalancerListeners {} port {listener}", s(lb))
            }
            R::AddBackend {
                lb, listener, vm, ..
            } => write!(
                f,
                "AddLoadBalancerBackends {} to {} listener {listener}",
                s(vm),
                s(lb)
            ),
            R::RemoveBackend { lb, listener, vm } => write!(
                f,
                "DeleteLoadBalancerBackends {} from {} listener {listener}",
                s(vm),
                s(lb)
            ),
            R::DescribeLoadBalancers => f.write_str("DescribeLoadBalancers"),
            R::CreateImage { name, size_gib } => {
                write!(f, "CreateImage {} ({size_gib} GiB)", s(name))
            }
            R::DescribeImages => f.write_str("DescribeImages"),
            R::CreateVolume {
                name,
                size_gib,
                provisioning,
                datastore,
            } => {
                write!(
                    f,
                    "CreateVolumes {} ({size_gib} GiB, {}",
                    s(name),
                    provisioning.as_str()
                )?;
                if let Some(ds) = datastore {
                    write!(f, ", on {}", s(ds))?;
                }
                f.write_str(")")
            }
            R::DeleteVolume { name } => write!(f, "DeleteVolumes {}", s(name)),
            R::AttachVolume { volume, vm } => {
                write!(f, "AttachVolumes {} to {}", s(volume), s(vm))
            }
            R::DetachVolume { volume, vm } => {
                write!(f, "DetachVolumes {} from {}", s(volume), s(vm))
            }
            R::DescribeVolumes => f.write_str("DescribeVolumes"),
            R::CreateSnapshot { vm, name } => {
                write!(f, "CreateSnapshots {} of {}", s(name), s(vm))
            }
            R::DeleteSnapshot { vm, name } => {
                write!(f, "DeleteSnapshots {} of {}", s(name), s(vm))
            }
            R::RevertSnapshot { vm, name } => {
                write!(f, "ResetInstances {} to snapshot {}", s(vm), s(name))
            }
            R::DescribeSnapshots { vm } => write!(f, "DescribeSnapshots of {}", s(vm)),
            R::CaptureInstance { vm, image } => {
                write!(f, "CaptureInstance {} as image {}", s(vm), s(image))
            }
            R::CreateDatastore { name, capacity_gib } => {
                write!(f, "CreateDatastores {} ({capacity_gib} GiB)", s(name))
            }
            R::DeleteDatastore { name } => write!(f, "DeleteDatastores {}", s(name)),
            R::DescribeDatastores => f.write_str("DescribeDatastores"),
            R::DrainDatastore { name } => write!(f, "DrainDatastore {}", s(name)),
            R::ResumeDatastore { name } => write!(f, "ResumeDatastore {}", s(name)),
            R::BalanceDatastores { threshold_percent } => match threshold_percent {
                Some(t) => write!(f, "BalanceDatastores (within {t} points)"),
                None => f.write_str("BalanceDatastores"),
            },
            R::MigrateDisk {
                vm,
                volume,
                datastore,
            } => {
                f.write_str("MigrateDisk ")?;
                disk_words(f, vm, volume)?;
                write!(f, " to {}", s(datastore))
            }
            R::CancelDiskMove { vm, volume } => {
                f.write_str("CancelDiskMove ")?;
                disk_words(f, vm, volume)
            }
            R::DescribeDiskMoves => f.write_str("DescribeDiskMoves"),
            R::CreateRdb {
                name,
                primary,
                standby,
            } => write!(
                f,
                "CreateRDB {} (primary {}, standby {})",
                s(name),
                s(primary),
                s(standby)
            ),
            R::DeleteRdb { name } => write!(f, "DeleteRDBs {}", s(name)),
            R::DescribeRdbs => f.write_str("DescribeRDBs"),
            R::SwitchoverRdb { name } => write!(f, "SwitchoverRDB {}", s(name)),
            R::CreateMongodb { name, members } => {
                let m: Vec<String> = members.iter().map(|v| s(v).to_string()).collect();
                write!(f, "CreateMongoDB {} ({})", s(name), m.join(", "))
            }
            R::DeleteMongodb { name } => write!(f, "DeleteMongoDBs {}", s(name)),
            R::DescribeMongodbs => f.write_str("DescribeMongoDBs"),
            R::CreateCache { name, shards } => {
                let m: Vec<String> = shards
                    .iter()
                    .map(|sh| {
                        let vms: Vec<String> = sh.iter().map(|v| s(v).to_string()).collect();
                        format!("[{}]", vms.join(", "))
                    })
                    .collect();
                write!(f, "CreateCache {} ({})", s(name), m.join(", "))
            }
            R::DeleteCache { name } => write!(f, "DeleteCaches {}", s(name)),
            R::DescribeCaches => f.write_str("DescribeCaches"),
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CloudError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Rdb(#[from] crate::rdb::RdbError),
    #[error(transparent)]
    Service(#[from] crate::replica_set::ServiceError),
}

impl From<crate::network::lb::LbError> for CloudError {
    fn from(e: crate::network::lb::LbError) -> Self {
        CloudError::Network(e.into())
    }
}

impl CloudError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            CloudError::Name(_) => "invalid-request",
            CloudError::Network(e) => e.code(),
            CloudError::Storage(e) => e.code(),
            CloudError::Rdb(e) => e.code(),
            CloudError::Service(e) => e.code(),
        }
    }
}

/// A successful answer: one line for people, data for programs.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudReply {
    pub message: String,
    pub data: serde_json::Value,
}
