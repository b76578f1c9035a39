//! The source task: follows a jail's files or journal and feeds their
//! lines to the jail's state, its jobs to the worker.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use crate::dns::{self, Resolver};
use crate::source::{FileBatch, FileSource, JournalBatch, JournalSource};
use crate::store::Store;

use super::super::clock::Clock;
use super::super::spec::BackendKind;
use super::build::{file_source, journal_source};
use super::ignorecommand::settle;
use super::ledger::{Hold, Ledger, Mark};
use super::state::{JailState, Processed};
use super::{Job, OpenError};

enum Opened {
    Files(FileSource),
    Journal(JournalSource),
}

// Opens the jail's source. The copy of the spec it needs is dropped before
// the jail waits on anything: a running jail keeps no second copy of its
// spec (filters and action texts) in its source task.
fn open_source(
    state: &Mutex<JailState>,
    store: Option<&dyn Store>,
    now: f64,
) -> (String, Result<Opened, OpenError>) {
    let spec = state.lock().expect("jail lock").spec.clone();
    let name = spec.name.clone();
    let opened = match spec.backend.kind() {
        BackendKind::Journal(journal) => match journal_source(&spec, journal, store, now) {
            Ok(src) => {
                state.lock().expect("jail lock").watched =
                    spec.journalmatch.iter().map(|m| m.join(" ")).collect();
                Ok(Opened::Journal(src))
            }
            Err(source) => Err(OpenError {
                jail: name.clone(),
                what: "read the journal",
                source,
            }),
        },
        BackendKind::Files(backend) => match file_source(&spec, *backend, store) {
            Ok(src) => {
                state.lock().expect("jail lock").watched = spec
                    .logpaths
                    .iter()
                    .flat_map(|(p, _)| crate::config::glob::glob(p))
                    .collect();
                Ok(Opened::Files(src))
            }
            Err(source) => Err(OpenError {
                jail: name.clone(),
                what: "follow its logs",
                source,
            }),
        },
    };
    (name, opened)
}

/// What a jail's source task shares with the loops that follow its source.
pub(super) struct SourceCtx {
    name: String,
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    store: Option<Arc<dyn Store>>,
    wake: Arc<Notify>,
    restart: Arc<Notify>,
    /// Room for failures waiting for a name's lookup.
    dns_slots: Arc<tokio::sync::Semaphore>,
    /// The batches whose bans are not all recorded: a position is saved
    /// once they are.
    ledger: Arc<Ledger>,
    clock: Clock,
}

impl SourceCtx {
    pub(super) fn new(
        state: Arc<Mutex<JailState>>,
        jobs: mpsc::Sender<Job>,
        store: Option<Arc<dyn Store>>,
        wake: Arc<Notify>,
        restart: Arc<Notify>,
        ledger: Arc<Ledger>,
        clock: Clock,
    ) -> SourceCtx {
        SourceCtx {
            name: String::new(),
            state,
            jobs,
            store,
            wake,
            restart,
            dns_slots: Arc::new(tokio::sync::Semaphore::new(MAX_AWAITING_DNS)),
            ledger,
            clock,
        }
    }
}

/// The most failures of one jail that wait for names to be looked up; a
/// flood of lines naming hosts beyond that is dropped (and logged), so
/// that the memory they take stays bounded.
const MAX_AWAITING_DNS: usize = 10_000;

/// Counts, once their names are looked up, the failures the last lines
/// left waiting (`JailState::awaiting_dns`), each in a task of its own: the
/// jail reads and counts the lines after them meanwhile, and a name that
/// never answers holds up only its own lines, for the resolver's timeout.
/// Each holds the position of its batch (`hold`) until its bans are handed
/// on; one cut short by the jail's stop leaves that position unsaved.
fn await_names(ctx: &SourceCtx, stop: &watch::Receiver<bool>, hold: &Hold) {
    let failures = std::mem::take(&mut ctx.state.lock().expect("jail lock").awaiting_dns);
    for f in failures {
        let Ok(slot) = ctx.dns_slots.clone().try_acquire_owned() else {
            tracing::warn!(
                "[{}] {MAX_AWAITING_DNS} failures are waiting for DNS already: dropped the one of {}",
                ctx.name,
                f.host_name.as_deref().unwrap_or_default()
            );
            continue;
        };
        let (state, jobs, wake) = (ctx.state.clone(), ctx.jobs.clone(), ctx.wake.clone());
        let clock = ctx.clock;
        let mut stop = stop.clone();
        let hold = hold.another();
        tokio::spawn(async move {
            let _slot = slot;
            let name = f.host_name.clone().unwrap_or_default();
            let addrs = tokio::select! {
                a = Resolver::system().resolve(&name) => a,
                _ = stop.changed() => return,
            };
            let t = clock.now();
            let done = {
                let mut st = state.lock().expect("jail lock");
                let fids = dns::name_fids(&name, &addrs, st.filter.options().usedns);
                let mut done = Processed::default();
                st.take_failures(f.resolved(fids), t, &mut done);
                done
            };
            let any = hand_on(done, t, &state, &jobs, &hold).await;
            hold.release();
            if any {
                wake.notify_one();
            }
        });
    }
}

/// Hands what a batch (or a lookup) left to do on to the action worker,
/// each ban holding the batch's position: its bans, then the failures
/// the ignorecommand must judge. Whether there was anything.
async fn hand_on(
    done: Processed,
    now: f64,
    state: &Mutex<JailState>,
    jobs: &mpsc::Sender<Job>,
    hold: &Hold,
) -> bool {
    let any = !done.jobs.is_empty() || !done.held.is_empty();
    for j in done.jobs {
        let _ = jobs.send(j.held_by(hold)).await;
    }
    // Boxed, and only when there is something to judge: waiting for an
    // ignorecommand takes KiBs of future state, which every jail's source
    // loop would otherwise keep for its whole life.
    if !done.held.is_empty() {
        Box::pin(settle(state, done.held, now, jobs, hold)).await;
    }
    any
}

pub(super) async fn source_task(mut ctx: SourceCtx, mut stop: watch::Receiver<bool>) {
    loop {
        let (name, opened) = open_source(&ctx.state, ctx.store.as_deref(), ctx.clock.now());
        ctx.name = name;
        // Boxed: only the loop of the source in use takes room.
        let again = match opened {
            Ok(Opened::Files(src)) => Box::pin(follow(src, &ctx, &mut stop)).await,
            Ok(Opened::Journal(src)) => Box::pin(follow(src, &ctx, &mut stop)).await,
            Err(e) => {
                tracing::error!("{e}");
                tokio::select! {
                    _ = stop.changed() => false,
                    _ = ctx.restart.notified() => true,
                    _ = tokio::time::sleep(Duration::from_secs(10)) => true,
                }
            }
        };
        if !again {
            return;
        }
    }
}

/// A jail's source as the one loop that follows it ([`follow`]) sees it:
/// files and the journal differ only in what a batch is, where a batch
/// leaves the source (its ledger mark) and how the jail counts it.
trait Source: Send {
    type Batch: Send;
    /// The next batch of lines; none once the reader has ended.
    fn next_batch(&mut self) -> impl Future<Output = Option<Self::Batch>> + Send;
    /// Where the source stands once `batch` is counted: saved once the
    /// bans of its lines are recorded.
    fn mark(batch: &Self::Batch) -> Option<Mark>;
    /// Counts `batch`, under the jail's lock.
    fn count(batch: &Self::Batch, st: &mut JailState, now: f64) -> Processed;
    /// Stops the reader. The position it reached is not saved: the ledger
    /// saves those whose bans are recorded.
    fn stop_reading(self) -> impl Future<Output = ()> + Send;
}

impl Source for FileSource {
    type Batch = FileBatch;

    fn next_batch(&mut self) -> impl Future<Output = Option<FileBatch>> + Send {
        self.next()
    }

    fn mark(batch: &FileBatch) -> Option<Mark> {
        Some(Mark::File(batch.position()))
    }

    fn count(batch: &FileBatch, st: &mut JailState, now: f64) -> Processed {
        let path = batch.path.to_string_lossy().into_owned();
        if !st.watched.contains(&path) {
            st.watched.push(path);
        }
        if crate::metrics::enabled() {
            st.note_read_to(&batch.path, batch.offset);
        }
        st.process(
            batch.lines.iter().map(|l| l.text.as_str()),
            batch.in_operation,
            now,
        )
    }

    async fn stop_reading(self) {
        let _ = self.stop().await;
    }
}

impl Source for JournalSource {
    type Batch = JournalBatch;

    fn next_batch(&mut self) -> impl Future<Output = Option<JournalBatch>> + Send {
        self.next()
    }

    fn mark(batch: &JournalBatch) -> Option<Mark> {
        batch.position().map(|p| Mark::Cursor(p.cursor))
    }

    fn count(batch: &JournalBatch, st: &mut JailState, now: f64) -> Processed {
        if crate::metrics::enabled() {
            let newest = batch.lines.iter().map(|l| l.time).fold(f64::MIN, f64::max);
            if st.journal_read_at.is_none_or(|t| t < newest) {
                st.journal_read_at = Some(newest);
            }
        }
        st.process_journal(&batch.lines, now)
    }

    async fn stop_reading(self) {
        let _ = self.stop().await;
    }
}

/// How long a source that is opened again (its logs changed by a reload)
/// waits for the bans of the lines it read to be recorded, so that it
/// reads on after them rather than again.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// Follows `src` until the jail stops (false) or its source is to be
/// opened again (true): each batch counted, its bans handed on holding
/// its mark, the marks whose bans are recorded saved.
async fn follow<S: Source>(mut src: S, ctx: &SourceCtx, stop: &mut watch::Receiver<bool>) -> bool {
    let SourceCtx {
        state,
        jobs,
        wake,
        restart,
        ledger,
        ..
    } = ctx;
    loop {
        tokio::select! {
            b = src.next_batch() => {
                let Some(batch) = b else { return true };
                let hold = ledger.open(S::mark(&batch));
                let t = ctx.clock.now();
                let done = S::count(&batch, &mut state.lock().expect("jail lock"), t);
                await_names(ctx, stop, &hold);
                let any = hand_on(done, t, state, jobs, &hold).await;
                hold.release();
                if any { wake.notify_one(); }
            }
            _ = ledger.ready() => ledger.save(ctx.store.as_ref(), &ctx.name).await,
            _ = stop.changed() => {
                src.stop_reading().await;
                return false;
            }
            _ = restart.notified() => {
                src.stop_reading().await;
                Box::pin(ledger.drain(ctx.store.as_ref(), &ctx.name, REOPEN_WAIT)).await;
                return true;
            }
        }
    }
}
