//! The source task: follows a jail's files or journal and feeds their
//! lines to the jail's state, its jobs to the worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use crate::dns::{self, Resolver};
use crate::source::{FilePosition, FileSource, JournalSource};
use crate::store::Store;

use super::super::spec::BackendKind;
use super::build::{file_source, journal_source};
use super::ignorecommand::settle;
use super::state::{JailState, Processed};
use super::store_write::store_write;
use super::{now, Job, OpenError};

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
) -> (String, Result<Opened, OpenError>) {
    let spec = state.lock().expect("jail lock").spec.clone();
    let name = spec.name.clone();
    let opened = match spec.backend.kind() {
        BackendKind::Journal(journal) => match journal_source(&spec, journal, store) {
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

// What a jail's source task shares with the loops that follow its source.
struct SourceCtx {
    name: String,
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    store: Option<Arc<dyn Store>>,
    wake: Arc<Notify>,
    restart: Arc<Notify>,
    /// Room for failures waiting for a name's lookup.
    dns_slots: Arc<tokio::sync::Semaphore>,
}

/// The most failures of one jail that wait for names to be looked up; a
/// flood of lines naming hosts beyond that is dropped (and logged), so
/// that the memory they take stays bounded.
const MAX_AWAITING_DNS: usize = 10_000;

/// Counts, once their names are looked up, the failures the last lines
/// left waiting (`JailState::awaiting_dns`), each in a task of its own: the
/// jail reads and counts the lines after them meanwhile, and a name that
/// never answers holds up only its own lines, for the resolver's timeout.
fn await_names(ctx: &SourceCtx, stop: &watch::Receiver<bool>) {
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
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let name = f.host_name.clone().unwrap_or_default();
            let addrs = tokio::select! {
                a = Resolver::system().resolve(&name) => a,
                _ = stop.changed() => return,
            };
            let t = now();
            let done = {
                let mut st = state.lock().expect("jail lock");
                let fids = dns::name_fids(&name, &addrs, st.filter.options().usedns);
                let mut done = Processed::default();
                st.take_failures(f.resolved(fids), t, &mut done);
                done
            };
            let any = !done.jobs.is_empty() || !done.held.is_empty();
            for j in done.jobs {
                let _ = jobs.send(j).await;
            }
            settle(&state, done.held, t, &jobs).await;
            if any {
                wake.notify_one();
            }
        });
    }
}

pub(super) async fn source_task(
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    store: Option<Arc<dyn Store>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    restart: Arc<Notify>,
) {
    let mut ctx = SourceCtx {
        name: String::new(),
        state,
        jobs,
        store,
        wake,
        restart,
        dns_slots: Arc::new(tokio::sync::Semaphore::new(MAX_AWAITING_DNS)),
    };
    loop {
        let (name, opened) = open_source(&ctx.state, ctx.store.as_deref());
        ctx.name = name;
        // Boxed: only the loop of the source in use takes room.
        let again = match opened {
            Ok(Opened::Files(src)) => Box::pin(follow_files(src, &ctx, &mut stop)).await,
            Ok(Opened::Journal(src)) => Box::pin(follow_journal(src, &ctx, &mut stop)).await,
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

// Returns whether to open the source again (false: the jail stops).
async fn follow_journal(
    mut src: JournalSource,
    ctx: &SourceCtx,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let SourceCtx {
        name,
        state,
        jobs,
        store,
        wake,
        restart,
        ..
    } = ctx;
    loop {
        tokio::select! {
            b = src.next() => {
                let Some(batch) = b else { return true };
                let t = now();
                let done = state.lock().expect("jail lock").process_journal(&batch.lines, t);
                await_names(ctx, stop);
                for j in done.jobs { let _ = jobs.send(j).await; }
                settle(state, done.held, t, jobs).await;
                wake.notify_one();
                if let (Some(s), Some(p)) = (store, batch.position()) {
                    let (s, n) = (s.clone(), name.clone());
                    store_write(name, "saving the journal cursor", move || s.set_journal_cursor(&n, &p.cursor)).await;
                }
            }
            _ = stop.changed() => {
                let _ = src.stop().await;
                return false;
            }
            _ = restart.notified() => {
                let _ = src.stop().await;
                return true;
            }
        }
    }
}

async fn save_positions(ctx: &SourceCtx, positions: Vec<FilePosition>) {
    let Some(s) = ctx.store.clone() else { return };
    let name = ctx.name.clone();
    let n = name.clone();
    let saved = tokio::task::spawn_blocking(move || {
        for p in positions {
            let path = p.path.to_string_lossy().into_owned();
            if let Err(e) = s.set_log_position(&n, &path, &p.md5, p.offset) {
                tracing::error!("[{n}] saving the position in {path}: {e}");
            }
        }
    })
    .await;
    if let Err(e) = saved {
        tracing::error!("[{name}] saving log positions: the task failed: {e}");
    }
}

// Returns whether to open the source again (false: the jail stops).
async fn follow_files(
    mut src: FileSource,
    ctx: &SourceCtx,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let SourceCtx {
        state,
        jobs,
        wake,
        restart,
        ..
    } = ctx;
    loop {
        tokio::select! {
            b = src.next() => {
                let Some(batch) = b else { return true };
                let t = now();
                let done = {
                    let mut st = state.lock().expect("jail lock");
                    let path = batch.path.to_string_lossy().into_owned();
                    if !st.watched.contains(&path) {
                        st.watched.push(path);
                    }
                    st.process(batch.lines.iter().map(|l| l.text.as_str()), batch.in_operation, t)
                };
                await_names(ctx, stop);
                let any = !done.jobs.is_empty() || !done.held.is_empty();
                for j in done.jobs { let _ = jobs.send(j).await; }
                settle(state, done.held, t, jobs).await;
                if any { wake.notify_one(); }
                save_positions(ctx, vec![batch.position()]).await;
            }
            _ = stop.changed() => {
                let positions = src.stop().await;
                save_positions(ctx, positions).await;
                return false;
            }
            _ = restart.notified() => {
                let positions = src.stop().await;
                save_positions(ctx, positions).await;
                return true;
            }
        }
    }
}
