//! The timeline's steps as a lab run plays them (`act`: faults through
//! the box's links and BMC emulator or an inventory's commands and BMCs,
//! API calls through the controller), and `krrish lab-fence`, what the
//! box's BMC does to a host's power.

use super::*;

impl LabRun<'_> {
    /// `h`'s BMC leaves (or rejoins) its network: in the box its address
    /// on the OGW bridge, on an inventory the operator's `bmc_down` /
    /// `bmc_up` command (a switch port).
    fn bmc_network(&mut self, h: &HostId, up: bool) -> Result<()> {
        match self.site {
            Site::Box(_) => Topology::set_bmc_address(self.bmc_address(h)?, up)?,
            Site::Inventory(_) => self.inventory_fault(&if up {
                Fault::BmcUp(h.clone())
            } else {
                Fault::BmcDown(h.clone())
            })?,
        }
        if up {
            self.bmc_dark.remove(h);
        } else {
            self.bmc_dark.insert(h.clone());
        }
        Ok(())
    }

    /// One timeline step, now.
    pub(super) fn act(&mut self, a: &Action) -> Result<()> {
        self.say(&format!("{a:?}"));
        match a {
            Action::Fault(Fault::Crash(h)) | Action::Fault(Fault::PowerLoss(h)) => {
                // As on a physical host: its BMC is asked over IPMI to cut
                // the power (a BMC already dark: the runner pulls the plug
                // itself; crashes of one instant were sent together).
                let (at, vms, by_ipmi) = match self.crashes_sent.remove(h) {
                    Some(sent) => sent,
                    None => {
                        let vms = self.vms_on(h)?;
                        let at = Instant::now();
                        let by_ipmi = if self.bmc_dark.contains(h) {
                            Err("its BMC is dark".to_string())
                        } else {
                            krrish_lab::ipmi::chassis_power(
                                &self.bmc_of(h)?,
                                krrish_lab::ipmi::PowerVerb::Off,
                            )
                        };
                        (at, vms, by_ipmi)
                    }
                };
                if let Err(e) = by_ipmi {
                    // A physical host whose BMC does not answer cannot be
                    // crashed from here.
                    let lab = self
                        .lab()
                        .map_err(|_| anyhow::anyhow!("crashing {h}: IPMI power off: {e}"))?;
                    self.say(&format!("{h}: IPMI power off: {e}; powering it off here"));
                    power_off(&self.run_dir, &lab.uris(), self.net(h)?)?;
                }
                if matches!(a, Action::Fault(Fault::PowerLoss(_))) {
                    // The BMC goes dark with the host: IPMI cannot confirm.
                    self.bmc_network(h, false)?;
                }
                self.agents.remove(h).map(|mut c| c.wait());
                self.crashes.push((h.clone(), at, vms));
                Ok(())
            }
            // As on a physical host: the BMC (back on its network) is
            // asked over IPMI to power the host on, and the host is on once
            // its agent runs.
            Action::Fault(Fault::Repair(h)) => {
                if matches!(self.site, Site::Box(_)) || self.bmc_dark.contains(h) {
                    self.bmc_network(h, true)?;
                }
                if self.powered_on(h) {
                    self.reboot_by_bmc(h)?;
                }
                if let Site::Inventory(_) = self.site {
                    return self.repair_inventory_host(h);
                }
                let bmc = self.bmc_of(h)?;
                let said = krrish_lab::ipmi::chassis_power(&bmc, krrish_lab::ipmi::PowerVerb::On)
                    .map_err(|e| anyhow::anyhow!("repairing {h}: IPMI power on: {e}"))?;
                self.say(&format!("{h}: BMC says `{said}`"));
                if !self.wait_power(h, true, POWER_ON_MAX) {
                    bail!(
                        "repairing {h}: its BMC said on, but no agent runs after {POWER_ON_MAX:?}"
                    );
                }
                Ok(())
            }
            Action::Fault(Fault::BmcDown(h)) => self.bmc_network(h, false),
            Action::Fault(Fault::BmcUp(h)) => self.bmc_network(h, true),
            // On inventory hosts: the operator's switch-side commands.
            Action::Fault(
                f @ (Fault::Partition(_)
                | Fault::Heal(_)
                | Fault::BondDown { .. }
                | Fault::BondUp { .. }),
            ) if matches!(self.site, Site::Inventory(_)) => self.inventory_fault(f),
            // A cut outside the host: its switch ports drop everything,
            // its own links keep their carrier (as in the simulated world).
            Action::Fault(Fault::Partition(h)) => Ok(Topology::set_forwarding(
                self.net(h)?.mgmt_root.to_vec(),
                false,
            )?),
            Action::Fault(Fault::Heal(h)) => {
                // A host that is off has its links down; its repair mends
                // the path with them.
                if !self.powered_on(h) {
                    self.say(&format!("{h} is powered off: its path is mended on repair"));
                    return Ok(());
                }
                Ok(Topology::set_forwarding(
                    self.net(h)?.mgmt_root.to_vec(),
                    true,
                )?)
            }
            Action::Fault(Fault::BondDown { host, bond }) => Ok(Topology::set_links(
                self.net(host)?.bond_uplinks(*bond),
                false,
            )?),
            Action::Fault(Fault::BondUp { host, bond }) => {
                // A host that is off (crashed, or fenced by its BMC while
                // cut off) stays silent: its links come back with power.
                if !self.powered_on(host) {
                    self.say(&format!(
                        "{host} is powered off: its links stay down until repair"
                    ));
                    return Ok(());
                }
                Ok(Topology::set_links(
                    self.net(host)?.bond_uplinks(*bond),
                    true,
                )?)
            }
            // The lease service's process: killed, started again (it
            // reads its revocations back from its store), or both.
            Action::Fault(Fault::DfsService(change)) => {
                use krrish_sim::DfsServiceChange as C;
                if matches!(change, C::Down | C::Restart) {
                    if let Some(mut c) = self.dfs.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                }
                if matches!(change, C::Up | C::Restart) && self.dfs.is_none() {
                    self.start_dfs()?;
                }
                Ok(())
            }
            Action::Api(ApiRequest::Cloud(r)) => self.cloud(r),
            Action::GuestWrite {
                vm,
                disk,
                block,
                data,
            } => self.guest_write(vm, disk, *block, *data),
            Action::Api(r) => {
                let api = self.api()?;
                let r = match r {
                    ApiRequest::RunInstance {
                        vm,
                        host,
                        image,
                        vxnet,
                    } => api.call(
                        "/v1/instances",
                        &[],
                        Some(json!({
                            "id": vm.id,
                            "cpu": vm.demand.vcpus,
                            "memory_mib": vm.demand.memory_mib,
                            "disk_gib": vm.demand.disk_gib,
                            "ha": vm.ha,
                            "priority": vm.priority,
                            "host": host,
                            "image": image,
                            "vxnet": vxnet,
                        })),
                    ),
                    ApiRequest::StopInstance { vm } => {
                        api.call(&format!("/v1/instances/{vm}/stop"), &[], Some(json!({})))
                    }
                    ApiRequest::StartInstance { vm } => {
                        api.call(&format!("/v1/instances/{vm}/start"), &[], Some(json!({})))
                    }
                    ApiRequest::RebootInstance { vm } => {
                        api.call(&format!("/v1/instances/{vm}/reboot"), &[], Some(json!({})))
                    }
                    ApiRequest::TerminateInstance { vm } => {
                        api.delete(&format!("/v1/instances/{vm}"))
                    }
                    other => bail!("{other:?} is not in the lab's vocabulary"),
                };
                r.map(drop).map_err(anyhow::Error::from)
            }
            other => bail!("{other:?} is not in the lab's vocabulary"),
        }
    }
}

impl LabRun<'_> {
    /// Crashes due at one instant (`due`: the timeline's steps at it) are
    /// sent to their BMCs together, one thread each, as hosts losing power
    /// together would: one IPMI call after another put seconds between
    /// them. Their steps then take the answers (`crashes_sent`); anything
    /// that cannot be asked ahead is left to its step.
    pub(super) fn crash_together(&mut self, due: &[&Action]) {
        let hosts: Vec<&HostId> = due
            .iter()
            .filter_map(|a| match a {
                Action::Fault(Fault::Crash(h) | Fault::PowerLoss(h)) => Some(h),
                _ => None,
            })
            .filter(|h| !self.bmc_dark.contains(*h))
            .collect();
        if hosts.len() < 2 {
            return;
        }
        let mut asks = Vec::new();
        for h in hosts {
            let (Ok(vms), Ok(bmc)) = (self.vms_on(h), self.bmc_of(h)) else {
                return;
            };
            asks.push((h.clone(), vms, bmc));
        }
        self.say(&format!(
            "{} crashes at one instant: their BMCs are asked together",
            asks.len()
        ));
        let sent: Vec<(HostId, CrashSent)> = std::thread::scope(|s| {
            let calls: Vec<_> = asks
                .into_iter()
                .map(|(h, vms, bmc)| {
                    s.spawn(move || {
                        let at = Instant::now();
                        let said =
                            krrish_lab::ipmi::chassis_power(&bmc, krrish_lab::ipmi::PowerVerb::Off);
                        (h, (at, vms, said))
                    })
                })
                .collect();
            calls.into_iter().filter_map(|c| c.join().ok()).collect()
        });
        self.crashes_sent.extend(sent);
    }

    /// A repair of a host that runs is a new boot, in every world (the
    /// simulated ones reboot it: its guests die, its agent starts afresh):
    /// here its BMC powers it off first; the repair's power on follows.
    fn reboot_by_bmc(&mut self, h: &HostId) -> Result<()> {
        self.say(&format!(
            "{h} is on: its repair is a new boot (IPMI power off, then on), as in the simulated worlds"
        ));
        let said =
            krrish_lab::ipmi::chassis_power(&self.bmc_of(h)?, krrish_lab::ipmi::PowerVerb::Off)
                .map_err(|e| anyhow::anyhow!("repairing {h}, which is on: IPMI power off: {e}"))?;
        self.say(&format!("{h}: BMC says `{said}`"));
        if !self.wait_power(h, false, POWER_ON_MAX) {
            bail!(
                "repairing {h}: its BMC said off, but its agent still runs after {POWER_ON_MAX:?}"
            );
        }
        self.agents.remove(h).map(|mut c| c.wait());
        Ok(())
    }
}

/// `krrish lab-fence --run-dir DIR`: what the lab BMC does to a host's
/// power. `KRRISH_FENCE_ACTION=off` (the default) powers
/// `KRRISH_FENCE_HOST` off as its BMC would (agent killed, guests
/// destroyed, links down); `on` brings its links up and starts its agent
/// (a new boot), unless it runs already. Exit 0 = confirmed.
pub fn fence(run_dir: &Path) -> Result<()> {
    let host = std::env::var("KRRISH_FENCE_HOST").context("KRRISH_FENCE_HOST is not set")?;
    let action = std::env::var("KRRISH_FENCE_ACTION").unwrap_or_else(|_| "off".into());
    if !matches!(action.as_str(), "on" | "off") {
        bail!("KRRISH_FENCE_ACTION={action}: expected on or off");
    }
    let hosts = std::fs::read_to_string(run_dir.join("hosts"))
        .with_context(|| format!("{}/hosts", run_dir.display()))?;
    let index = hosts
        .lines()
        .position(|l| l == host)
        .with_context(|| format!("no lab host {host}"))?;
    let net = HostNet::new(index, &HostId::new(&host))?;
    if action == "on" {
        if krrish_lab::power::agent_running(run_dir, &host).is_some() {
            eprintln!("lab BMC: {host} is on already");
            return Ok(());
        }
        power_on(&net)?;
        let exe = std::env::current_exe().context("this krrish binary")?;
        // Not waited for: the host runs on after the BMC's call.
        drop(daemons::spawn_agent(&exe, run_dir, &net)?);
        let start = Instant::now();
        while krrish_lab::power::agent_running(run_dir, &host).is_none() {
            if start.elapsed() > POWER_ON_MAX {
                bail!("{host}: its agent did not start within {POWER_ON_MAX:?} (see agent-{host}.log)");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("lab BMC: {host} powered on (a new agent)");
        return Ok(());
    }
    let state = LabState::load(run_dir.parent().context("run dir has a parent")?)?;
    power_off(run_dir, &state.uris(), &net)?;
    eprintln!("lab BMC: {host} powered off");
    Ok(())
}
