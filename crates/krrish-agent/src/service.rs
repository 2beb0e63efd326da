//! The thin tokio shell around [`AgentMachine`]: it dials when the machine
//! says so, moves frames, runs timers and driver calls as local tasks. Every
//! decision — when to dial, when a link is dead, when to give up — is the
//! machine's. Must run inside a `tokio::task::LocalSet` (turmoil hosts do).

use crate::driver::Driver;
use crate::machine::{AgentConfig, AgentMachine, AgentOutput};
use krrish_wire::{read_frame, write_frame, AgentCommand, Clock, Connect, Frame, TraceSink};
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{spawn_local, JoinHandle};

/// Bound on frames waiting to be written to the controller.
const OUTBOX_MAX: usize = 1024;
/// Bound on events waiting for the agent loop.
const EVENTS_MAX: usize = 4096;

enum Event<S> {
    Dialled(u64, Result<S, String>),
    Frame(u64, Box<Frame>),
    Closed(u64),
    CommandDone(u64, Result<(), crate::DriverError>),
    Lease {
        asked_ms: u64,
        result: Result<(), String>,
    },
    Synced(Result<(), String>),
    Note(String),
}

struct Link {
    epoch: u64,
    outbox: mpsc::Sender<Frame>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Link {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs the agent until the task is dropped (host crash) — it never returns
/// on its own; operating failures become reconnects and trace lines.
pub async fn run_agent<C, D, K, T>(
    cfg: AgentConfig,
    connect: Rc<C>,
    driver: Rc<D>,
    clock: Rc<K>,
    trace: Rc<T>,
) where
    C: Connect + 'static,
    D: Driver + 'static,
    K: Clock + 'static,
    T: TraceSink + 'static,
{
    let source = format!("agent/{}", cfg.host);
    let (tx, mut rx) = mpsc::channel::<Event<C::Stream>>(EVENTS_MAX);
    let mut m = AgentMachine::new(clock.now_ms(), cfg.clone(), driver.boot_id());
    let mut link: Option<Link> = None;

    loop {
        let now = clock.now_ms();
        m.handle_timeout(now);
        while let Some(out) = m.poll_output() {
            match out {
                AgentOutput::Dial { epoch } => {
                    let (c, tx, addr) = (connect.clone(), tx.clone(), cfg.controller_addr.clone());
                    // The machine gives up at its own deadline; this bound
                    // only keeps hung dials from piling up.
                    let limit = Duration::from_millis(2 * cfg.timings.connect_timeout_ms);
                    spawn_local(async move {
                        let r = match tokio::time::timeout(limit, c.connect(&addr)).await {
                            Ok(r) => r.map_err(|e| e.to_string()),
                            Err(_) => Err("timed out".to_string()),
                        };
                        let _ = tx.send(Event::Dialled(epoch, r)).await;
                    });
                }
                AgentOutput::Disconnect { epoch } => {
                    if link.as_ref().is_some_and(|l| l.epoch == epoch) {
                        link = None;
                    }
                }
                AgentOutput::ReadStatus => m.handle_status(now, driver.status()),
                AgentOutput::Send(f) => send(&link, f),
                AgentOutput::RunCommand { id, command } => {
                    let (d, tx) = (driver.clone(), tx.clone());
                    spawn_local(async move {
                        let r = match &command {
                            AgentCommand::BootVm {
                                vm, reason, guest, ..
                            } => d.boot_vm(vm, *reason, guest).await,
                            AgentCommand::SetGuest { vm, guest } => d.set_guest(vm, guest).await,
                            AgentCommand::StopVm { vm } => d.stop_vm(vm).await,
                            AgentCommand::RebootVm { vm } => d.reboot_vm(vm).await,
                            AgentCommand::LiveMigrate { vm, to } => d.live_migrate(vm, to).await,
                            AgentCommand::AbortMigration { vm, to } => {
                                d.abort_migration(vm, to).await
                            }
                        };
                        let _ = tx.send(Event::CommandDone(id, r)).await;
                    });
                }
                AgentOutput::RenewLease => {
                    let (d, tx) = (driver.clone(), tx.clone());
                    spawn_local(async move {
                        let result = d.renew_lease().await.map_err(|e| e.to_string());
                        let _ = tx
                            .send(Event::Lease {
                                asked_ms: now,
                                result,
                            })
                            .await;
                    });
                }
                AgentOutput::SyncDisks => {
                    let (d, tx) = (driver.clone(), tx.clone());
                    spawn_local(async move {
                        let r = d.sync_disks().await.map_err(|e| e.to_string());
                        let _ = tx.send(Event::Synced(r)).await;
                    });
                }
                AgentOutput::SelfFence => {
                    let (d, tx) = (driver.clone(), tx.clone());
                    spawn_local(async move {
                        if let Err(e) = d.stop_all_vms().await {
                            let _ = tx
                                .send(Event::Note(format!("self-fence failed: {e}")))
                                .await;
                        }
                    });
                }
                AgentOutput::Trace(s) => trace.line(now, &source, &s),
            }
        }

        let wake_ms = m.poll_timeout();
        let sleep = tokio::time::sleep(Duration::from_millis(wake_ms.saturating_sub(now)));
        let ev = tokio::select! {
            biased;
            ev = rx.recv() => ev,
            _ = sleep => None,
        };
        let Some(ev) = ev else { continue };
        let now = clock.now_ms();
        match ev {
            Event::Dialled(e, Ok(stream)) => {
                // Open the link before the machine queues its hello.
                let (mut rd, mut wr) = tokio::io::split(stream);
                let (out_tx, mut out_rx) = mpsc::channel::<Frame>(OUTBOX_MAX);
                let txr = tx.clone();
                let reader = spawn_local(async move {
                    while let Ok(Some(f)) = read_frame(&mut rd).await {
                        if txr.send(Event::Frame(e, Box::new(f))).await.is_err() {
                            return;
                        }
                    }
                    let _ = txr.send(Event::Closed(e)).await;
                });
                let txw = tx.clone();
                let writer = spawn_local(async move {
                    while let Some(f) = out_rx.recv().await {
                        if write_frame(&mut wr, &f).await.is_err() {
                            let _ = txw.send(Event::Closed(e)).await;
                            return;
                        }
                    }
                });
                let candidate = Link {
                    epoch: e,
                    outbox: out_tx,
                    tasks: [reader, writer],
                };
                if m.handle_dial_result(now, e, Ok(())) {
                    link = Some(candidate);
                }
            }
            Event::Dialled(e, Err(why)) => {
                m.handle_dial_result(now, e, Err(why));
            }
            Event::Frame(e, f) => m.handle_frame(now, e, *f),
            Event::Closed(e) => m.handle_closed(now, e),
            Event::CommandDone(id, r) => m.handle_command_done(now, id, r),
            Event::Lease { asked_ms, result } => m.handle_lease_result(now, asked_ms, result),
            Event::Synced(r) => m.handle_sync_result(now, r),
            Event::Note(s) => trace.line(now, &source, &s),
        }
    }
}

fn send(link: &Option<Link>, f: Frame) {
    if let Some(l) = link {
        // A full outbox means the connection is stuck; the ack timeout will
        // replace it. Dropping here keeps the agent loop bounded.
        let _ = l.outbox.try_send(f);
    }
}
