//! What a lab run checks: expectations through the API, libvirt and ping;
//! the double-run watch; recovery times.

use super::*;

impl LabRun<'_> {
    /// Where libvirt runs each VM per `read`: host(s) by VM (a domain's
    /// name says its host).
    pub(super) fn real_placements(&self, read: &DomainsRead) -> BTreeMap<VmId, Vec<HostId>> {
        let mut out: BTreeMap<VmId, Vec<HostId>> = BTreeMap::new();
        for d in &read.names {
            for h in &self.s.cluster.hosts {
                if let Some(vm) = vm_of_domain(&h.id, d) {
                    out.entry(vm).or_default().push(h.id.clone());
                }
            }
        }
        out
    }

    /// [`Self::real_placements`] now; an error if a host's libvirt did
    /// not answer while its BMC does not say it is off (a check cannot
    /// tell where a VM runs without it).
    fn placements_now(&self) -> Result<BTreeMap<VmId, Vec<HostId>>, String> {
        let read = self.libvirts().read();
        let mut unknown = Vec::new();
        for h in &self.s.cluster.hosts {
            let uri = match self.site {
                Site::Box(lab) => lab.uri_of(h),
                Site::Inventory(i) => match i.inv.host(h.id.as_str()) {
                    Some(x) => x.libvirt.as_str(),
                    None => continue,
                },
            };
            if !read.unreachable.iter().any(|u| u == uri) {
                continue;
            }
            let off = self.bmc_of(&h.id).is_ok_and(|b| {
                krrish_lab::ipmi::chassis_power(&b, krrish_lab::ipmi::PowerVerb::Status)
                    .is_ok_and(|said| said.ends_with("off"))
            });
            if !off {
                unknown.push(format!("{} ({uri})", h.id));
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "the libvirt of {} did not answer and its BMC does not say off: where the VMs run is not known",
                unknown.join(", ")
            ));
        }
        Ok(self.real_placements(&read))
    }

    pub(super) fn check_no_double_run(&mut self, read: &DomainsRead) {
        for (vm, hosts) in self.real_placements(read) {
            if hosts.len() > 1 {
                let f = format!(
                    "{vm} runs on {} hosts at once: {:?} (at {:.1} s)",
                    hosts.len(),
                    hosts,
                    self.t0.elapsed().as_secs_f64()
                );
                if !self.failures.contains(&f) {
                    self.say(&f);
                    self.failures.push(f);
                }
            }
        }
    }

    /// Records the real RTO of a crashed host's VMs: crash to running
    /// elsewhere (per libvirt) and answering ping.
    pub(super) fn note_recoveries(&mut self, read: &DomainsRead) {
        let placed = self.real_placements(read);
        let net = self.vm_network();
        let mut found = Vec::new();
        for (host, at, vms) in &self.crashes {
            for vm in vms {
                if self.rtos.iter().any(|(v, _)| v == vm) {
                    continue;
                }
                let elsewhere = placed
                    .get(vm)
                    .is_some_and(|hs| hs.iter().any(|h| h != host));
                if elsewhere && self.ping_within(vm_address(net, vm), PROBE_WAIT) {
                    found.push((vm.clone(), at.elapsed().as_secs_f64()));
                }
            }
        }
        // A VM caught by two crashes (its host's, then the spare's it was
        // booting on) is timed from the first.
        found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        found.dedup_by(|a, b| a.0 == b.0);
        for (vm, rto) in found {
            self.say(&format!(
                "{vm} back after its host's crash: real RTO {rto:.1} s"
            ));
            self.rtos.push((vm, rto));
        }
    }

    pub(super) fn trace_text(&self) -> String {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(&self.run_dir) {
            let mut logs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for l in logs {
                text.push_str(&std::fs::read_to_string(l).unwrap_or_default());
            }
        }
        text.push_str(&self.inventory_agent_logs());
        text
    }

    /// One expectation, judged now.
    pub(super) fn check(&self, c: &Check) -> Result<(), String> {
        let instance = |vm: &VmId| -> Result<Value, String> {
            self.get(&format!("/v1/instances/{vm}"))
                .map_err(|e| e.to_string())
        };
        match c {
            Check::VmRunsOn { vm, host } => {
                if host.is_none() {
                    // Nowhere: not running by the controller (a terminated
                    // VM is not known at all) and no domain in libvirt.
                    if let Some(hosts) = self.placements_now()?.get(vm) {
                        return Err(format!(
                            "{vm}: expected nowhere, libvirt runs it on {hosts:?}"
                        ));
                    }
                    return match self.get(&format!("/v1/instances/{vm}")) {
                        Ok(v) if v["state"] == "running" => Err(format!(
                            "{vm}: expected nowhere, the controller says running on {}",
                            v["host"]
                        )),
                        Ok(_) => Ok(()),
                        Err(e) if e.to_string().contains("no-such-vm") => Ok(()),
                        Err(e) => Err(e.to_string()),
                    };
                }
                let v = instance(vm)?;
                let (state, at) = (v["state"].as_str().unwrap_or("?"), v["host"].as_str());
                match host {
                    None => Ok(()),
                    Some(h) => {
                        if state != "running" || at != Some(h.as_str()) {
                            return Err(format!("{vm}: expected running on {h}, the controller says {state} on {at:?}"));
                        }
                        let name = domain_name(h, vm)?;
                        let placed = self.placements_now()?;
                        if !placed.get(vm).is_some_and(|hs| hs.contains(h)) {
                            return Err(format!("{vm}: the controller says running on {h}, but libvirt runs no {name}"));
                        }
                        let ip = vm_address(self.vm_network(), vm);
                        if !self.ping(ip) {
                            return Err(format!(
                                "{vm}: runs on {h} but does not answer ping at {ip}"
                            ));
                        }
                        Ok(())
                    }
                }
            }
            Check::VmState { vm, state } => {
                let v = instance(vm)?;
                if v["state"] != *state {
                    return Err(format!(
                        "{vm}: expected {state}, the controller says {}",
                        v["state"]
                    ));
                }
                Ok(())
            }
            Check::HostState { host, state } => {
                let hosts = self.get("/v1/hosts").map_err(|e| e.to_string())?;
                let got = hosts
                    .as_array()
                    .and_then(|a| a.iter().find(|h| h["id"] == host.as_str()))
                    .map(|h| h["state"].clone())
                    .unwrap_or(Value::Null);
                if got != HostVerdict::name(*state) {
                    return Err(format!(
                        "{host}: expected {state}, the controller says {got}"
                    ));
                }
                Ok(())
            }
            Check::TraceContains(t) => {
                if self.trace_text().contains(t.as_str()) {
                    Ok(())
                } else {
                    Err(format!("the daemons' logs lack {t:?}"))
                }
            }
            Check::TraceLacks(t) => {
                if self.trace_text().contains(t.as_str()) {
                    Err(format!("the daemons' logs contain {t:?}"))
                } else {
                    Ok(())
                }
            }
            Check::Converged => {
                let all = self.get("/v1/instances").map_err(|e| e.to_string())?;
                let placed = self.placements_now()?;
                for i in all.as_array().cloned().unwrap_or_default() {
                    let vm = VmId::new(i["id"].as_str().unwrap_or("?"));
                    if i["state"] != "running" {
                        return Err(format!("{vm} is {} (not converged)", i["state"]));
                    }
                    let h = HostId::new(i["host"].as_str().unwrap_or("?"));
                    if placed.get(&vm) != Some(&vec![h.clone()]) {
                        return Err(format!(
                            "{vm}: the controller says {h}, libvirt runs it on {:?}",
                            placed.get(&vm)
                        ));
                    }
                }
                Ok(())
            }
            Check::Nic { vm, vxnet, ip } => self.check_nic(vm, vxnet, *ip),
            Check::DiskReads {
                disk,
                snapshot: None,
                reader,
                block,
                data,
            } => self.check_disk(disk, reader.as_ref(), *block, *data),
            Check::DiskReads {
                disk,
                snapshot: Some((vm, name)),
                block,
                data,
                ..
            } => self.check_disk_at_snapshot(disk, vm, name, *block, *data),
            Check::Volume {
                volume,
                attached_to,
                status,
                ..
            } => self.check_volume(volume, attached_to.as_ref(), *status),
            Check::Snapshot { vm, name, status } => self.check_snapshot(vm, name, *status),
            Check::Event {
                kind,
                host,
                vm,
                present,
                count,
            } => {
                let events = super::read_event_records(&self.run_dir.join("events.jsonl"));
                let found: Vec<String> = events
                    .iter()
                    .filter(|e| {
                        e["kind"] == *kind
                            && host.as_ref().is_none_or(|h| e["host"] == h.as_str())
                            && vm.as_ref().is_none_or(|v| e["vm"] == v.as_str())
                    })
                    .map(|e| format!("in the lab: {e}"))
                    .collect();
                krrish_scenario::run::judge_event(
                    kind,
                    host.as_ref(),
                    vm.as_ref(),
                    *present,
                    *count,
                    &found,
                )
            }
            Check::Ping {
                from,
                to,
                reachable,
            } => self.check_ping(from, to, *reachable),
            other => Err(format!("{other:?} is not checked in the lab")),
        }
    }
}

impl LabRun<'_> {
    /// One ping from outside the hosts (the box's outside namespace, or
    /// the inventory's `ping_from`); true if answered within 2 s.
    pub(super) fn ping(&self, ip: std::net::Ipv4Addr) -> bool {
        self.ping_within(ip, "2")
    }

    fn ping_within(&self, ip: std::net::Ipv4Addr, wait_s: &str) -> bool {
        let mut c = match self.site {
            Site::Box(_) => {
                let Ok(outside) = krrish_lab::Netns::open(OUTSIDE_NS) else {
                    return false;
                };
                outside.command("ping")
            }
            Site::Inventory(i) => {
                // Checked before the run: no `ping_from`, no ping check.
                let Some(prefix) = &i.inv.ping_from else {
                    return false;
                };
                let mut c = Command::new(&prefix[0]);
                c.args(&prefix[1..]).arg("ping");
                c
            }
        };
        c.args(["-c", "1", "-W", wait_s])
            .arg(ip.to_string())
            .stdin(Stdio::null())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

/// How long a recovery probe waits for its answer: short, so probing a VM
/// still booting does not hold the timeline up (seconds, as ping's `-W`
/// takes them).
const PROBE_WAIT: &str = "0.2";
