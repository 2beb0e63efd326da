//! The host's status for heartbeats, read off the agent's loop. A
//! heartbeat must never wait on the hypervisor: libvirtd serializes calls,
//! and destroying or starting a TCG guest holds it for a second or more, so
//! reading libvirt inline once made every agent on the box miss a
//! heartbeat at the same moment. [`StatusWatch`] polls on threads of its
//! own — one for the guests (libvirt), one for the links (netlink), so
//! that a busy libvirtd never delays a link change either — and the driver
//! answers from their last readings.
//!
//! When libvirt does not answer, the last list of running guests is kept
//! (never reported as "none": the controller would restart guests that
//! still run); when a link cannot be read, its bond reports down.

use crate::hypervisor::Hypervisor;
use crate::names::{tap_name, vm_of_domain};
use crate::tenant::ensure_tap_plugged;
use krrish_agent::HostStatus;
use krrish_core::{BondHealth, HostId, VmId};
use krrish_netlink::Netns;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often the watch reads libvirt and the links.
pub const STATUS_POLL: Duration = Duration::from_millis(250);

/// What the watch reads from.
pub struct StatusSource {
    pub host: HostId,
    pub hv: Arc<Hypervisor>,
    pub netns: Netns,
    /// Member links in bond order: bond0 (management), bond1 (VM
    /// network), bond2 (storage).
    pub bond_members: [[String; 2]; 3],
    /// Where libvirt makes the guests' taps, and the bridge they join.
    pub tap_source: Netns,
    pub vm_bridge: String,
}

/// The guests of this host libvirt has active: those running here now, and
/// every one (with the copies arriving by live migration).
struct Guests {
    running: Vec<VmId>,
    active: Vec<VmId>,
}

impl StatusSource {
    /// The guests of this host running now, by libvirt.
    pub fn running(&self) -> Result<Vec<VmId>, crate::LibvirtError> {
        Ok(self.guests()?.running)
    }

    fn guests(&self) -> Result<Guests, crate::LibvirtError> {
        let (mut running, mut active) = (Vec::new(), Vec::new());
        for d in self.hv.active_domains()? {
            if let Some(vm) = vm_of_domain(&self.host, &d.name) {
                if d.runs_here {
                    running.push(vm.clone());
                }
                active.push(vm);
            }
        }
        Ok(Guests { running, active })
    }

    /// The taps of guests new since the last reading join this host's VM
    /// bridge — the copy a live migration brings here has its tap made by
    /// this host's libvirt as the copy starts, paused: plugged now, the
    /// guest has its network from the switch-over on (the source's agent
    /// cannot reach another host's namespace). A boot plugs its own tap
    /// too; either may come first. `plugged` keeps the guests done.
    fn plug_arrivals(&self, active: &[VmId], plugged: &mut std::collections::BTreeSet<VmId>) {
        plugged.retain(|vm| active.contains(vm));
        let new: Vec<&VmId> = active.iter().filter(|vm| !plugged.contains(*vm)).collect();
        for vm in new {
            let tap = tap_name(&self.host, vm);
            // Not made yet, or a link call failed: the next reading tries
            // again.
            if let Ok(true) =
                ensure_tap_plugged(&self.tap_source, &self.netns, &tap, &self.vm_bridge)
            {
                plugged.insert(vm.clone());
            }
        }
    }

    pub fn bonds(&self) -> [BondHealth; 3] {
        let members = self.bond_members.clone();
        self.netns
            .run(move |links| async move {
                let mut out = [BondHealth::Down; 3];
                for (i, [a, b]) in members.iter().enumerate() {
                    let up_a = links.has_carrier(a).await.unwrap_or(false);
                    let up_b = links.has_carrier(b).await.unwrap_or(false);
                    out[i] = BondHealth::from_members(up_a, up_b);
                }
                Ok(out)
            })
            .unwrap_or([BondHealth::Down; 3])
    }
}

struct Readings {
    latest: HostStatus,
    /// Fresh readings asked for, and the last ask the latest reading
    /// answers (it began after that ask).
    asked: u64,
    answered: u64,
    stop: bool,
    /// Guests restarting in place on reverted disks: reported running
    /// while their domain is down for it (a reset, not a death).
    resetting: std::collections::BTreeSet<VmId>,
    /// Guests this host is live-migrating away now.
    migrating_out: std::collections::BTreeSet<VmId>,
    /// Every guest libvirt has active here (copies arriving included), by
    /// the latest reading that succeeded, and when that reading began.
    active: Option<(Vec<VmId>, Instant)>,
}

/// The latest reading, refreshed every [`STATUS_POLL`] (and on demand)
/// until dropped.
pub struct StatusWatch {
    shared: Arc<(Mutex<Readings>, Condvar)>,
}

impl StatusWatch {
    /// Reads once now (so the first heartbeat is true), then keeps reading
    /// on a thread of its own.
    pub fn start(source: StatusSource) -> Self {
        let first = HostStatus {
            bonds: source.bonds(),
            running: source.running().unwrap_or_default(),
            migrating_out: Vec::new(),
        };
        let shared = Arc::new((
            Mutex::new(Readings {
                latest: first,
                asked: 0,
                answered: 0,
                stop: false,
                resetting: Default::default(),
                migrating_out: Default::default(),
                active: None,
            }),
            Condvar::new(),
        ));
        let source = Arc::new(source);
        // The links: every poll, whatever libvirtd is doing.
        let (s, src) = (shared.clone(), source.clone());
        std::thread::spawn(move || {
            let (m, cv) = &*s;
            loop {
                let g = lock(m);
                let (g, _) = cv
                    .wait_timeout_while(g, STATUS_POLL, |r| !r.stop)
                    .unwrap_or_else(|p| p.into_inner());
                if g.stop {
                    return;
                }
                drop(g);
                let bonds = src.bonds();
                lock(m).latest.bonds = bonds;
            }
        });
        // The guests: every poll, and at once when a fresh reading is asked.
        let s = shared.clone();
        std::thread::spawn(move || {
            let (m, cv) = &*s;
            let mut plugged = std::collections::BTreeSet::new();
            loop {
                let ask = {
                    let g = lock(m);
                    let (g, _) = cv
                        .wait_timeout_while(g, STATUS_POLL, |r| r.asked == r.answered && !r.stop)
                        .unwrap_or_else(|p| p.into_inner());
                    if g.stop {
                        return;
                    }
                    g.asked
                };
                #[allow(clippy::disallowed_methods)] // the real world: its own clock
                let began = Instant::now();
                let guests = source.guests();
                if let Ok(g) = &guests {
                    source.plug_arrivals(&g.active, &mut plugged);
                }
                let mut g = lock(m);
                // Unanswered: the last list stands (never "none").
                if let Ok(guests) = guests {
                    g.latest.running = guests.running;
                    g.active = Some((guests.active, began));
                }
                g.answered = ask;
                cv.notify_all();
            }
        });
        StatusWatch { shared }
    }

    pub fn latest(&self) -> HostStatus {
        let g = lock(&self.shared.0);
        let mut status = g.latest.clone();
        if !g.resetting.is_empty() {
            status.running.extend(g.resetting.iter().cloned());
            status.running.sort();
            status.running.dedup();
        }
        status.migrating_out = g.migrating_out.iter().cloned().collect();
        status
    }

    /// What this host runs — every active guest, copies arriving and
    /// guests restarting in place included — by a reading begun at or
    /// after `since`; `None` if the latest is older (the lease renewal's
    /// power-on list must be taken after the grant it names).
    pub fn power_on_since(&self, since: Instant) -> Option<Vec<VmId>> {
        let g = lock(&self.shared.0);
        let (active, began) = g.active.as_ref()?;
        if *began < since {
            return None;
        }
        let mut vms = active.clone();
        vms.extend(g.resetting.iter().cloned());
        vms.sort();
        vms.dedup();
        Some(vms)
    }

    /// `vm` is (or no longer is) being live-migrated away from this host.
    pub fn set_migrating_out(&self, vm: &VmId, migrating: bool) {
        mark(&mut lock(&self.shared.0).migrating_out, vm, migrating);
    }

    /// Whether `vm` is being live-migrated away from this host now.
    pub fn is_migrating_out(&self, vm: &VmId) -> bool {
        lock(&self.shared.0).migrating_out.contains(vm)
    }

    /// `vm` is (or no longer is) restarting in place: see `resetting`.
    pub fn set_resetting(&self, vm: &VmId, resetting: bool) {
        mark(&mut lock(&self.shared.0).resetting, vm, resetting);
    }

    /// A handle that asks for fresh readings from any thread.
    pub fn handle(&self) -> StatusWatchHandle {
        StatusWatchHandle(self.shared.clone())
    }
}

/// Asks a [`StatusWatch`] for a fresh reading.
#[derive(Clone)]
pub struct StatusWatchHandle(Arc<(Mutex<Readings>, Condvar)>);

impl StatusWatchHandle {
    /// Waits (blocking) for a reading begun after this call: what the
    /// driver does after changing a guest, so that no heartbeat after the
    /// change reports the state from before it.
    pub fn refresh(&self) {
        let (m, cv) = &*self.0;
        let mut g = lock(m);
        g.asked += 1;
        let ask = g.asked;
        cv.notify_all();
        let _g = cv
            .wait_while(g, |r| r.answered < ask && !r.stop)
            .unwrap_or_else(|p| p.into_inner());
    }
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        let (m, cv) = &*self.shared;
        lock(m).stop = true;
        cv.notify_all();
    }
}

/// `vm` in `set` or not.
fn mark(set: &mut std::collections::BTreeSet<VmId>, vm: &VmId, present: bool) {
    if present {
        set.insert(vm.clone());
    } else {
        set.remove(vm);
    }
}

fn lock(m: &Mutex<Readings>) -> std::sync::MutexGuard<'_, Readings> {
    // A reading is replaced whole: a panicked writer left a whole one.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
