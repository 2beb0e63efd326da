//! A lab host's power, as its BMC would switch it: off kills the host's
//! agent, destroys its guests and takes its links down; on brings the
//! links back (the caller starts a new agent: a new boot).

use crate::topology::{HostNet, Topology};
use crate::LabError;
use krrish_libvirt::names::DOMAIN_PREFIX;
use krrish_libvirt::Hypervisor;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;

/// The agent's pid file for `host` in a lab run directory.
pub fn agent_pid_file(run_dir: &Path, host: &str) -> std::path::PathBuf {
    run_dir.join(format!("agent-{host}.pid"))
}

/// The pid of `host`'s agent, if its pid file names a live process: the
/// lab host has power.
pub fn agent_running(run_dir: &Path, host: &str) -> Option<i32> {
    let text = std::fs::read_to_string(agent_pid_file(run_dir, host)).ok()?;
    let pid = text.trim().parse::<i32>().ok()?;
    // Signal 0: is it there (a zombie not yet reaped counts as gone).
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    });
    (kill(Pid::from_raw(pid), None).is_ok() && !zombie).then_some(pid)
}

/// Kills `host`'s agent (by its pid file) and forgets the file.
pub fn kill_agent(run_dir: &Path, host: &str) {
    if let Some(pid) = agent_running(run_dir, host) {
        // Gone already is as good as killed.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(agent_pid_file(run_dir, host));
}

/// Powers `host` off: its guests go on every libvirt daemon of `uris`
/// (the box runs two). Idempotent: a host already off is off.
pub fn power_off(run_dir: &Path, uris: &[String], net: &HostNet) -> Result<(), LabError> {
    kill_agent(run_dir, net.host.as_str());
    let prefix = format!("{DOMAIN_PREFIX}{}.", net.host);
    for uri in uris {
        let hv = Hypervisor::open(uri)?;
        for d in hv.active_names()? {
            if d.starts_with(&prefix) {
                hv.destroy(&d)?;
            }
        }
    }
    Topology::set_links(net.uplinks(), false)?;
    Topology::forget_tenant_network(net)
}

/// Powers `host` on (a repair): its links come back up, and any path cut
/// outside it is mended with it.
pub fn power_on(net: &HostNet) -> Result<(), LabError> {
    // Links first: the kernel refuses to let a port that is down forward.
    Topology::set_links(net.uplinks(), true)?;
    Topology::set_forwarding(net.mgmt_root.to_vec(), true)
}
