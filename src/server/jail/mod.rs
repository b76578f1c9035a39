//! One running jail: its log source, filter, counting and ban decisions,
//! and a queue to its actions.
//!
//! Three tasks per jail: the source feeds lines to the filter and the
//! engine (under a std mutex: nothing awaits while it is held; a failure
//! the ignorecommand must judge waits, with those after it, until the
//! command has answered with the lock released); an action worker runs
//! the action commands in order, so that a slow or hanging action delays
//! this jail's bans but never its counting nor another jail; an unban
//! timer sleeps until the next ban ends. A failure whose host is a name
//! the resolver has no answer for yet waits for it in a task of its own,
//! so that only that failure waits.
//!
//! One file per job: [`Jail`] here is the handle the server holds (start,
//! ban and unban by hand, reload, stop); `state` is what sits behind the
//! lock (filter, counting, ban decisions); `ignorecommand` settles the
//! failures the ignorecommand must judge; `source` follows files or the
//! journal; `worker` runs the actions; `unban` ends bans on time; `build`
//! makes the parts of a jail from its spec; `view` answers the server's
//! questions about it.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::action::{Action, Actions};
use crate::filter::ipaddr::{parse_id, parse_unspec, NotCanonical};
use crate::jail::increment::BanFound;
use crate::jail::Ticket;
use crate::store::Store;

use super::clock::Clock;
use super::spec::JailSpec;

mod build;
mod error;
mod ignore_file;
mod ignorecommand;
mod ledger;
mod record;
mod source;
mod state;
mod store_write;
mod unban;
mod view;
mod worker;

pub use build::{build_actions, check_spec};
pub use error::{JailError, OpenError};
use state::JailState;
pub use view::BanEnd;

use build::{action_timeout, ignore_list};
use ignorecommand::ignored;
use ledger::{Hold, Ledger};
use source::{source_task, SourceCtx};
use state::refuse;
use store_write::store_write;
use unban::unban_timer;
use worker::action_worker;

/// What the action worker is asked to do.
#[derive(Debug)]
enum Job {
    /// A new ban; the hold on its lines' log position, if lines caused it.
    Ban(Box<Ticket>, BanFound, Option<Hold>),
    Restore(Box<Ticket>),
    Unban(Box<Ticket>, bool),
    /// Replace the actions (reload), keeping the bans in force.
    Reload(Vec<Action>),
    /// Flush the bans from the actions (the firewall), stop every action,
    /// then end. The bans stay in the store, to be restored at start.
    Stop {
        bans: Vec<Ticket>,
    },
}

impl Job {
    /// The job, holding the position of the batch `hold` holds if it is a
    /// ban to record.
    fn held_by(self, hold: &Hold) -> Job {
        match self {
            Job::Ban(t, found, _) => Job::Ban(t, found, Some(hold.another())),
            other => other,
        }
    }
}

/// A running jail.
pub struct Jail {
    pub name: String,
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    unban_wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    source_restart: Arc<Notify>,
    /// The source's batches whose bans are not all recorded yet.
    ledger: Arc<Ledger>,
    /// The time failures are counted and bans end by.
    clock: Clock,
}

impl Jail {
    /// Starts a jail: actions started (unless on demand), active bans
    /// restored from the store, the log followed; the AI, if any,
    /// connected before the first line is read. Every time of the jail
    /// (failures, findtime, bans, unbans) is taken from `clock`.
    pub async fn start(
        spec: JailSpec,
        store: Option<Arc<dyn Store>>,
        ai: Option<crate::ai::AiHandle>,
        clock: Clock,
    ) -> Result<Jail, JailError> {
        let name = spec.name.clone();
        let built = build_actions(&spec, clock);
        let ignore_timeout = action_timeout(&built);
        let mut actions = Actions::new(&name, built);
        let st = store.clone();
        let mut state = tokio::task::spawn_blocking(move || JailState::new(spec, st)).await??;
        state.ai = ai;
        state.ignore_timeout = ignore_timeout;
        let state = Arc::new(Mutex::new(state));
        if let Some(s) = &store {
            let (s, n) = (s.clone(), name.clone());
            store_write(&name, "adding the jail to the database", move || {
                s.add_jail(&n)
            })
            .await;
        }
        actions.start().await;
        let (tx, rx) = mpsc::channel::<Job>(65536);
        let (stop_tx, stop_rx) = watch::channel(false);
        let unban_wake = Arc::new(Notify::new());
        let worker = tokio::spawn(action_worker(
            name.clone(),
            actions,
            rx,
            store.clone(),
            state.clone(),
        ));
        // Bans still in force are applied again, once.
        if let Some(s) = &store {
            let (s2, n) = (s.clone(), name.clone());
            let t = clock.now();
            let bans = tokio::task::spawn_blocking(move || s2.current_bans(Some(&n), t)).await;
            match bans {
                Ok(Ok(bans)) => {
                    for b in bans {
                        let fid = match parse_id(&b.fid) {
                            Ok(fid) => fid,
                            Err(e) => {
                                refuse(&name, &e);
                                continue;
                            }
                        };
                        let mut ticket = Ticket::new(fid, b.time, b.data.matches.clone())
                            .with_failures(b.data.failures);
                        ticket.set_ban_time(Some(b.bantime));
                        ticket.set_ban_count(b.bancount, true);
                        ticket.restored = true;
                        let added = state
                            .lock()
                            .expect("jail lock")
                            .engine
                            .ban_manager
                            .add_ban_ticket(ticket.clone(), t);
                        if added.is_ok() {
                            let _ = tx.send(Job::Restore(Box::new(ticket))).await;
                        }
                    }
                }
                Ok(Err(e)) => tracing::error!("[{name}] restoring bans: {e}"),
                Err(e) => tracing::error!("[{name}] restoring bans: {e}"),
            }
        }
        let source_restart = Arc::new(Notify::new());
        let ledger = Arc::new(Ledger::default());
        let tasks = vec![
            tokio::spawn(unban_timer(
                state.clone(),
                tx.clone(),
                unban_wake.clone(),
                stop_rx.clone(),
                clock,
            )),
            tokio::spawn(source_task(
                SourceCtx::new(
                    state.clone(),
                    tx.clone(),
                    store.clone(),
                    unban_wake.clone(),
                    source_restart.clone(),
                    ledger.clone(),
                    clock,
                ),
                stop_rx.clone(),
            )),
        ];
        tracing::info!("Jail '{name}' started");
        Ok(Jail {
            name,
            state,
            jobs: tx,
            unban_wake,
            stop: stop_tx,
            tasks: Mutex::new(tasks),
            worker: Mutex::new(Some(worker)),
            source_restart,
            ledger,
            clock,
        })
    }

    /// Bans `ip` by hand; `Ok(false)` when it is ignored or already
    /// banned, an error when it is no canonical address.
    pub async fn ban_ip(&self, ip: &str) -> Result<bool, NotCanonical> {
        let fid = parse_id(ip).inspect_err(|e| refuse(&self.name, e))?;
        let t = self.clock.now();
        if ignored(&self.state, &fid, None, t).await {
            return Ok(false);
        }
        let jobs = {
            let mut st = self.state.lock().expect("jail lock");
            if st.engine.ban_manager.contains(&fid) {
                return Ok(false);
            }
            st.ban_ip(fid, t)
        };
        let banned = !jobs.is_empty();
        for j in jobs {
            let _ = self.jobs.send(j).await;
        }
        self.unban_wake.notify_one();
        Ok(banned)
    }

    /// Unbans `ip`; `false` when it was not banned here.
    pub async fn unban_ip(&self, ip: &str) -> bool {
        let fid = parse_unspec(ip);
        let ticket = self
            .state
            .lock()
            .expect("jail lock")
            .engine
            .ban_manager
            .remove(&fid);
        match ticket {
            Some(t) => {
                let _ = self.jobs.send(Job::Unban(Box::new(t), true)).await;
                true
            }
            None => false,
        }
    }

    /// Unbans everything; returns how many.
    pub async fn unban_all(&self) -> usize {
        let tickets = self
            .state
            .lock()
            .expect("jail lock")
            .engine
            .ban_manager
            .flush();
        let n = tickets.len();
        for t in tickets {
            let _ = self.jobs.send(Job::Unban(Box::new(t), true)).await;
        }
        n
    }

    /// Takes a new configuration without losing failures or bans.
    pub async fn reload(&self, spec: JailSpec) -> Result<(), JailError> {
        let (spec, ignore) = tokio::task::spawn_blocking(move || {
            let ignore = ignore_list(&spec);
            (spec, ignore)
        })
        .await?;
        let (source_changed, new_actions) = {
            let mut st = self.state.lock().expect("jail lock");
            let changed = st.spec.logpaths != spec.logpaths
                || st.spec.logglobs != spec.logglobs
                || st.spec.backend != spec.backend
                || st.spec.journalmatch != spec.journalmatch
                || st.spec.logencoding != spec.logencoding;
            let new_actions =
                (st.spec.actions != spec.actions).then(|| build_actions(&spec, self.clock));
            if let Some(a) = &new_actions {
                st.ignore_timeout = action_timeout(a);
            }
            st.reconfigure(spec, ignore)?;
            (changed, new_actions)
        };
        if let Some(a) = new_actions {
            let _ = self.jobs.send(Job::Reload(a)).await;
        }
        if source_changed {
            self.source_restart.notify_one();
        }
        self.unban_wake.notify_one();
        Ok(())
    }

    /// Stops the jail: the source and timers end, the bans are flushed
    /// from the actions and the actions stop. The bans stay in the store
    /// (to be restored at the next start) unless `unban`.
    pub async fn stop(&self, unban: bool) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().expect("jail lock").drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        let (tickets, store) = {
            let mut st = self.state.lock().expect("jail lock");
            (st.engine.ban_manager.flush(), st.store.clone())
        };
        if let (true, Some(s)) = (unban, store) {
            let name = self.name.clone();
            store_write(
                &self.name,
                "removing its bans from the database",
                move || s.remove_bans(&name, None),
            )
            .await;
        }
        let _ = self.jobs.send(Job::Stop { bans: tickets }).await;
        let worker = self.worker.lock().expect("jail lock").take();
        if let Some(w) = worker {
            let _ = w.await;
        }
        // The source has ended and the worker has recorded what it could:
        // the positions of the lines whose bans are all recorded.
        let store = self.state.lock().expect("jail lock").store.clone();
        self.ledger.save(store.as_ref(), &self.name).await;
        tracing::info!("Jail '{}' stopped", self.name);
    }
}
