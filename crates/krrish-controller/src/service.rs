//! The tokio shell around [`ControllerMachine`]. Runs inside a
//! `tokio::task::LocalSet` (turmoil hosts do; the CLI sets one up).

use crate::machine::{ControllerMachine, ControllerOutput};
use crate::store::Store;
use krrish_cloud::network::lb::FabricReport;
use krrish_core::ha::{FenceAction, FenceError};
use krrish_core::{HostId, HostSpec, VmId};
use krrish_wire::{read_frame, write_frame, Clock, Frame, Listen, TraceSink};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{spawn_local, JoinHandle};

/// Power and storage fencing, reached out of band.
pub trait Fencer {
    /// Powers `host` off through its BMC (IPMI over the OGW network) — and,
    /// with [`FenceAction::Reboot`], on again. Ok once it is confirmed off;
    /// Err when the BMC does not answer or refuses.
    fn ipmi_fence(
        &self,
        host: &HostSpec,
        action: FenceAction,
    ) -> impl Future<Output = Result<(), FenceError>>;
    /// Powers `host` off (confirmed off) or on (asked: the host's heartbeat
    /// says it is up) through its BMC, for DPM.
    fn ipmi_power(&self, host: &HostSpec, on: bool)
        -> impl Future<Output = Result<(), FenceError>>;
    /// Revokes `host`'s DFS lease; Ok(when the last lease it holds expires,
    /// in the world's milliseconds).
    fn revoke_lease(&self, host: &HostId) -> impl Future<Output = Result<u64, FenceError>>;
    /// Lets the DFS grant `host` leases again (it was repaired).
    fn reinstate_lease(&self, host: &HostId) -> impl Future<Output = Result<(), FenceError>>;
    /// The DFS's record of lease renewals: for each host that ever renewed,
    /// how many milliseconds ago it last did (the storage network's
    /// heartbeat, a second channel beside the management network's).
    fn lease_renewals(
        &self,
    ) -> impl Future<Output = Result<krrish_core::lease::LeaseRenewals, FenceError>>;
}

/// The data plane as the load balancers' health checks see it: where the
/// asked VMs' guests run and whether those hosts' bonds carry traffic.
pub trait FabricReader {
    fn read_fabric(&self, vms: Vec<VmId>) -> impl Future<Output = Result<FabricReport, String>>;
}

const EVENTS_MAX: usize = 1 << 14;
const OUTBOX_MAX: usize = 1024;
/// Connections open at once; more are refused.
const CONNECTIONS_MAX: usize = 4096;

enum Event<S> {
    Opened(S),
    Frame(u64, Frame),
    Closed(u64),
    Fence(HostId, Result<(), FenceError>),
    Lease(HostId, Result<u64, FenceError>),
    Power(HostId, bool, Result<(), FenceError>),
    Reinstated(HostId, Result<(), FenceError>),
    Renewals(u64, Result<krrish_core::lease::LeaseRenewals, FenceError>),
    Fabric(u64, Result<FabricReport, String>),
}

struct Conn {
    outbox: mpsc::Sender<Frame>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs the controller until the task is dropped. With a `store`, the
/// machine's `Save` outputs are written to it before anything else happens.
pub async fn run_controller<L, F, R, K, T>(
    mut listener: L,
    machine: Rc<RefCell<ControllerMachine>>,
    store: Option<Rc<Store>>,
    fencer: Rc<F>,
    fabric: Rc<R>,
    clock: Rc<K>,
    trace: Rc<T>,
) where
    L: Listen + 'static,
    F: Fencer + 'static,
    R: FabricReader + 'static,
    K: Clock + 'static,
    T: TraceSink + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Event<L::Stream>>(EVENTS_MAX);
    let txa = tx.clone();
    let _acceptor = spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(s) => {
                    if txa.send(Event::Opened(s)).await.is_err() {
                        return;
                    }
                }
                // Transient accept errors (fd limits): back off, go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let mut conns: BTreeMap<u64, Conn> = BTreeMap::new();
    let mut next_conn = 1u64;

    loop {
        let now = clock.now_ms();
        {
            let mut m = machine.borrow_mut();
            if m.poll_timeout().is_some_and(|t| t <= now) {
                m.handle_timeout(now);
            }
        }
        loop {
            let out = machine.borrow_mut().poll_output();
            let Some(out) = out else { break };
            match out {
                ControllerOutput::SendTo { conn, frame } => {
                    if let Some(c) = conns.get(&conn) {
                        let _ = c.outbox.try_send(frame);
                    }
                }
                ControllerOutput::Close { conn } => {
                    conns.remove(&conn);
                }
                ControllerOutput::FenceIpmi { host, action } => {
                    let (f, tx) = (fencer.clone(), tx.clone());
                    spawn_local(async move {
                        let r = f.ipmi_fence(&host, action).await;
                        let _ = tx.send(Event::Fence(host.id, r)).await;
                    });
                }
                ControllerOutput::PowerHost { host, on } => {
                    let (f, tx) = (fencer.clone(), tx.clone());
                    spawn_local(async move {
                        let r = f.ipmi_power(&host, on).await;
                        let _ = tx.send(Event::Power(host.id, on, r)).await;
                    });
                }
                ControllerOutput::RevokeLease { host } => {
                    let (f, tx) = (fencer.clone(), tx.clone());
                    spawn_local(async move {
                        let r = f.revoke_lease(&host).await;
                        let _ = tx.send(Event::Lease(host, r)).await;
                    });
                }
                ControllerOutput::ReinstateLease { host } => {
                    let (f, tx) = (fencer.clone(), tx.clone());
                    spawn_local(async move {
                        let r = f.reinstate_lease(&host).await;
                        let _ = tx.send(Event::Reinstated(host, r)).await;
                    });
                }
                ControllerOutput::ReadLeaseRenewals { read } => {
                    let (f, tx) = (fencer.clone(), tx.clone());
                    spawn_local(async move {
                        let r = f.lease_renewals().await;
                        let _ = tx.send(Event::Renewals(read, r)).await;
                    });
                }
                ControllerOutput::ReadFabric { read, vms } => {
                    let (f, tx) = (fabric.clone(), tx.clone());
                    spawn_local(async move {
                        let r = f.read_fabric(vms).await;
                        let _ = tx.send(Event::Fabric(read, r)).await;
                    });
                }
                ControllerOutput::Save {
                    generation,
                    snapshot,
                } => {
                    let r = match &store {
                        Some(st) => st.save(&snapshot).map_err(|e| e.to_string()),
                        None => Err("no store configured".to_string()),
                    };
                    machine.borrow_mut().handle_saved(generation, r);
                }
                ControllerOutput::Trace(s) => trace.line(now, "controller", &s),
                ControllerOutput::Event(n) => trace.event(now, "controller", &n),
            }
        }

        let wake = machine.borrow().poll_timeout();
        let ev = match wake {
            Some(t) => {
                let sleep = tokio::time::sleep(Duration::from_millis(t.saturating_sub(now)));
                tokio::select! {
                    biased;
                    ev = rx.recv() => ev,
                    _ = sleep => None,
                }
            }
            None => rx.recv().await,
        };
        let Some(ev) = ev else { continue };
        let now = clock.now_ms();
        match ev {
            Event::Opened(stream) => {
                if conns.len() >= CONNECTIONS_MAX {
                    trace.line(now, "controller", "connection refused: too many open");
                    continue;
                }
                let id = next_conn;
                next_conn += 1;
                let (mut rd, mut wr) = tokio::io::split(stream);
                let (out_tx, mut out_rx) = mpsc::channel::<Frame>(OUTBOX_MAX);
                let txr = tx.clone();
                let reader = spawn_local(async move {
                    while let Ok(Some(f)) = read_frame(&mut rd).await {
                        if txr.send(Event::Frame(id, f)).await.is_err() {
                            return;
                        }
                    }
                    let _ = txr.send(Event::Closed(id)).await;
                });
                let writer = spawn_local(async move {
                    while let Some(f) = out_rx.recv().await {
                        if write_frame(&mut wr, &f).await.is_err() {
                            return;
                        }
                    }
                });
                conns.insert(
                    id,
                    Conn {
                        outbox: out_tx,
                        tasks: [reader, writer],
                    },
                );
                machine.borrow_mut().handle_opened(id);
            }
            Event::Frame(conn, f) => {
                if conns.contains_key(&conn) {
                    machine.borrow_mut().handle_frame(now, conn, f);
                }
            }
            Event::Closed(conn) => {
                conns.remove(&conn);
                machine.borrow_mut().handle_closed(now, conn);
            }
            Event::Fence(host, r) => machine.borrow_mut().handle_fence_result(now, &host, r),
            Event::Lease(host, r) => machine.borrow_mut().handle_lease_revoked(now, &host, r),
            Event::Power(host, on, r) => {
                machine.borrow_mut().handle_power_result(now, &host, on, r)
            }
            Event::Reinstated(host, r) => {
                machine.borrow_mut().handle_lease_reinstated(now, &host, r)
            }
            Event::Renewals(read, r) => machine.borrow_mut().handle_lease_renewals(now, read, r),
            Event::Fabric(read, r) => machine.borrow_mut().handle_fabric_report(now, read, r),
        }
    }
}
