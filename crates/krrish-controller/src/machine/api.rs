//! The operator API as the controller answers it: each request checked and
//! turned into core or cloud calls, with one trace line per call.

use super::{ControllerMachine, ControllerOutput};
use krrish_core::ha::{Liveness, VmState};
use krrish_core::{HostId, VmId, VmSpec};
use krrish_wire::{ApiFault, ApiReply, ApiRequest};

impl ControllerMachine {
    pub(crate) fn api(&mut self, now_ms: u64, request: ApiRequest) -> Result<ApiReply, ApiFault> {
        let reply = |message: String, data: serde_json::Value| ApiReply { message, data };
        let r = match request {
            ApiRequest::RunInstance {
                vm,
                host,
                image,
                vxnet,
            } => self.run_instance(now_ms, vm, host, image, vxnet),
            ApiRequest::StopInstance { vm } => self
                .core
                .stop_vm(now_ms, &vm)
                .map(|()| reply(format!("vm {vm} stopping"), serde_json::json!({ "vm": vm })))
                .map_err(ApiFault::from),
            ApiRequest::StartInstance { vm } => self
                .core
                .start_vm(now_ms, &vm)
                .map(|host| {
                    reply(
                        format!("vm {vm} starting on {host}"),
                        serde_json::json!({ "vm": vm, "host": host }),
                    )
                })
                .map_err(ApiFault::from),
            ApiRequest::RebootInstance { vm } => self
                .reboot_deliverable(&vm)
                .and_then(|()| self.core.reboot_vm(&vm).map_err(ApiFault::from))
                .map(|host| {
                    reply(
                        format!("vm {vm} rebooting on {host}"),
                        serde_json::json!({ "vm": vm, "host": host }),
                    )
                }),
            ApiRequest::TerminateInstance { vm } => self
                .core
                .terminate_vm(now_ms, &vm)
                .map(|hosts| {
                    let gone = self.cloud.forget_vm(&vm);
                    let mut said = format!("vm {vm} terminated");
                    if !hosts.is_empty() {
                        let on: Vec<&str> = hosts.iter().map(|h| h.as_str()).collect();
                        said.push_str(&format!(", stopping on {}", on.join(", ")));
                    }
                    if !gone.is_empty() {
                        said.push_str(&format!("; released {}", gone.join(", ")));
                    }
                    reply(said, serde_json::json!({ "vm": vm, "released": gone }))
                })
                .map_err(ApiFault::from),
            ApiRequest::MigrateInstance { vm, to } => self
                .core
                .migrate_vm(now_ms, &vm, &to)
                .map(|()| {
                    reply(
                        format!("vm {vm} migrating to {to}"),
                        serde_json::json!({ "vm": vm, "to": to }),
                    )
                })
                .map_err(ApiFault::from),
            ApiRequest::EnterMaintenance { host } => self
                .core
                .enter_maintenance(now_ms, &host)
                .map(|moves| {
                    let said: Vec<String> = moves
                        .iter()
                        .map(|(vm, to)| format!("{vm} -> {to}"))
                        .collect();
                    reply(
                        if said.is_empty() {
                            format!("host {host} in maintenance (it runs no VMs)")
                        } else {
                            format!("host {host} entering maintenance: {}", said.join(", "))
                        },
                        serde_json::json!({
                            "host": host,
                            "moving": moves
                                .iter()
                                .map(|(vm, to)| serde_json::json!({ "vm": vm, "to": to }))
                                .collect::<Vec<_>>(),
                        }),
                    )
                })
                .map_err(ApiFault::from),
            ApiRequest::ExitMaintenance { host } => self
                .core
                .exit_maintenance(now_ms, &host)
                .map(|()| {
                    reply(
                        format!("host {host} left maintenance"),
                        serde_json::json!({ "host": host }),
                    )
                })
                .map_err(ApiFault::from),
            ApiRequest::Cloud(request) => {
                self.release_volume_of_a_vm_that_runs_nowhere(&request);
                let core = &self.core;
                let where_is = |vm: &VmId| match &core.vms().get(vm)?.state {
                    VmState::Running { host } | VmState::Booting { host, .. } => Some(host.clone()),
                    _ => None,
                };
                self.cloud
                    .apply_placed(
                        request,
                        now_ms,
                        &|vm: &VmId| core.vms().contains_key(vm),
                        &where_is,
                    )
                    .map(|r| reply(r.message, r.data))
                    .map_err(ApiFault::from)
            }
            ApiRequest::PutRule { rule } => self
                .core
                .put_rule(&rule)
                .map(|replaced| {
                    reply(
                        format!(
                            "rule {} ({} {}) {}",
                            rule.name,
                            rule.strength,
                            rule.kind.name(),
                            if replaced { "replaced" } else { "set" }
                        ),
                        serde_json::json!({ "rule": rule, "replaced": replaced }),
                    )
                })
                .map_err(ApiFault::from),
            ApiRequest::DeleteRule { name } => self
                .core
                .delete_rule(&name)
                .map(|()| {
                    reply(
                        format!("rule {name} deleted"),
                        serde_json::json!({ "name": name }),
                    )
                })
                .map_err(ApiFault::from),
            ApiRequest::SetHa { enabled } => {
                self.core.set_ha_enabled(enabled);
                let on = if enabled { "on" } else { "off" };
                Ok(reply(
                    format!("HA switched {on} cluster-wide"),
                    serde_json::json!({ "enabled": enabled }),
                ))
            }
            ApiRequest::DescribeRules => {
                let core = &self.core;
                let file: Vec<&krrish_core::rules::RuleGroup> =
                    core.config().rules.groups().iter().collect();
                let data = serde_json::json!({
                    "ha_enabled": core.config().ha_enabled,
                    "cluster_file": file,
                    "api": core.operator_rules(),
                    "services": self.cloud.service_groups(),
                });
                return Ok(reply(
                    format!(
                        "{} rule groups from the cluster file, {} set through the API",
                        file.len(),
                        core.operator_rules().len()
                    ),
                    data,
                ));
            }
            ApiRequest::DescribeCluster => {
                let status = self.status();
                let message = format!("{} hosts, {} VMs", status.hosts.len(), status.vms.len());
                return serde_json::to_value(&status)
                    .map(|data| reply(message, data))
                    .map_err(|e| ApiFault {
                        code: "internal".into(),
                        message: format!("cannot encode the cluster status: {e}"),
                    });
            }
        };
        let line = match &r {
            Ok(s) => format!("api: {s}"),
            Err(e) => format!("api: refused: {e}"),
        };
        self.push(ControllerOutput::Trace(line));
        // A service created or deleted: its members' rule comes or goes.
        self.core.set_service_groups(self.cloud.service_groups());
        r
    }

    /// RunInstances, whole or not at all: the image and the vxnet are
    /// checked (on a copy of the cloud) before the core places the VM, so a
    /// refusal anywhere leaves nothing behind.
    fn run_instance(
        &mut self,
        now_ms: u64,
        vm: VmSpec,
        host: Option<HostId>,
        image: Option<String>,
        vxnet: Option<String>,
    ) -> Result<ApiReply, ApiFault> {
        let id = vm.id.clone();
        let extras = image.is_some() || vxnet.is_some();
        let mut probe = if extras {
            Some(self.cloud.clone())
        } else {
            None
        };
        let image = match (&image, &mut probe) {
            (Some(i), Some(_)) => Some(self.cloud.check_image(i)?),
            _ => None,
        };
        let vxnet = match (vxnet, &mut probe) {
            (Some(x), Some(p)) => {
                let x = krrish_cloud::Name::parse("vxnet", &x)
                    .map_err(krrish_cloud::CloudError::from)?;
                p.network
                    .join_vxnet(&x, &id, true, None)
                    .map_err(krrish_cloud::CloudError::from)?;
                Some(x)
            }
            _ => None,
        };
        if let (Some(i), Some(p)) = (&image, &mut probe) {
            // Limits on root disks and image caches, on the copy.
            p.create_root_disk(&id, i, &HostId::new("probe"), now_ms)?;
        }
        let on = self.core.create_vm(now_ms, vm, host)?;
        let mut said = format!("vm {id} placed on {on}");
        let mut data = serde_json::json!({ "vm": id, "host": on });
        if let Some(i) = &image {
            let plan = self
                .cloud
                .create_root_disk(&id, i, &on, now_ms)
                .expect("checked on a copy of the cloud");
            let from = match plan {
                krrish_cloud::storage::BootPlan::Local => "its local copy",
                krrish_cloud::storage::BootPlan::FromDfs { .. } => "the DFS copy while it syncs",
            };
            said.push_str(&format!(", booting image {i} from {from}"));
            data["image"] = serde_json::json!(i);
        }
        if let Some(x) = &vxnet {
            let ip = self
                .cloud
                .network
                .join_vxnet(x, &id, true, None)
                .expect("checked on a copy of the cloud");
            said.push_str(&format!(", {ip} on vxnet {x}"));
            data["vxnet"] = serde_json::json!(x);
            data["ip"] = serde_json::json!(ip);
        }
        Ok(ApiReply {
            message: said,
            data,
        })
    }

    /// A reboot goes to the VM's host once, now: refused (not accepted and
    /// lost) while that host's agent is not connected or its heartbeats
    /// are missed (the connection may be dead without its close seen yet).
    fn reboot_deliverable(&self, vm: &VmId) -> Result<(), ApiFault> {
        let Some(VmState::Running { host }) = self.core.vms().get(vm).map(|r| &r.state) else {
            // The core words the refusal (no such VM, not running).
            return Ok(());
        };
        let why = match self.core.hosts().get(host).map(|h| &h.liveness) {
            _ if !self.agents.contains_key(host) => "whose agent is not connected",
            Some(Liveness::Up) => return Ok(()),
            _ => "whose heartbeats are missed",
        };
        Err(ApiFault {
            code: "host-unreachable".into(),
            message: format!(
                "vm {vm} runs on {host}, {why}: a reboot cannot be delivered now; try again once {host} is back"
            ),
        })
    }

    /// A volume detached from a VM that runs nowhere (stopped, down) is
    /// not held for the snapshot work the VM's next boot would do (see
    /// `Storage::release_volume_from_disk_ops`). Only when the detach will
    /// go through: a refused call changes nothing.
    fn release_volume_of_a_vm_that_runs_nowhere(&mut self, request: &krrish_cloud::CloudRequest) {
        let krrish_cloud::CloudRequest::DetachVolume { volume, vm } = request else {
            return;
        };
        let (Ok(volume), vm) = (krrish_cloud::Name::parse("volume", volume), VmId::new(vm)) else {
            return;
        };
        let attached_here = self
            .cloud
            .storage
            .describe_volume(&volume)
            .is_ok_and(|v| v.attached_to.as_ref() == Some(&vm));
        if attached_here && self.core.hosts_that_may_run(&vm).is_empty() {
            self.cloud
                .storage
                .release_volume_from_disk_ops(&vm, &volume);
        }
    }
}
