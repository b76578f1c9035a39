//! The recorder: writes a jail's new bans to the store, off the runtime,
//! while the actions apply them, and keeps those it could not write (a
//! full disk) to write them later, holding their lines' log positions
//! back until it has.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::{self, Ban, Store};

use super::ledger::{Hold, Trouble};

/// How often the records that could not be written are tried again.
pub(super) const RETRY: Duration = Duration::from_secs(3);

/// A ban to write, and the hold on its lines' position (none for a ban by
/// hand).
pub(super) struct Record {
    pub(super) ban: Ban,
    pub(super) hold: Option<Hold>,
}

/// What one write of records came to.
pub(super) struct Outcome {
    /// Not written, in order.
    failed: Vec<Record>,
    /// Why the first of them was not.
    error: Option<store::Error>,
}

pub(super) struct Recorder {
    jail: String,
    store: Option<Arc<dyn Store>>,
    /// Records not written yet, oldest first.
    waiting: Vec<Record>,
    trouble: Trouble,
}

impl Recorder {
    pub(super) fn new(jail: &str, store: Option<Arc<dyn Store>>) -> Recorder {
        Recorder {
            jail: jail.to_string(),
            store,
            waiting: Vec::new(),
            trouble: Trouble::default(),
        }
    }

    /// The store the bans go to.
    pub(super) fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Whether records wait to be tried again.
    pub(super) fn waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Starts writing `new` after the records still waiting, on a blocking
    /// thread; [`finish`](Self::finish) takes the outcome. Without a store
    /// there is nothing to wait for.
    pub(super) fn start(&mut self, new: Vec<Record>) -> Option<JoinHandle<Outcome>> {
        let Some(store) = self.store.clone() else {
            new.into_iter()
                .filter_map(|r| r.hold)
                .for_each(Hold::release);
            return None;
        };
        let mut records = std::mem::take(&mut self.waiting);
        records.extend(new);
        if records.is_empty() {
            return None;
        }
        Some(tokio::task::spawn_blocking(move || write(&*store, records)))
    }

    /// Takes the outcome of [`start`](Self::start): what failed waits for
    /// the next write or the next retry, and the trouble is logged once.
    pub(super) async fn finish(&mut self, writing: Option<JoinHandle<Outcome>>) {
        let Some(writing) = writing else { return };
        match writing.await {
            Ok(o) => {
                self.waiting = o.failed;
                let then = format!(
                    "{} ban(s) in force but not recorded, retried every {}s; the log position waits for them",
                    self.waiting.len(),
                    RETRY.as_secs()
                );
                self.trouble
                    .after(o.error.as_ref())
                    .log(&self.jail, "recording bans", &then);
            }
            // The records went with the task: their holds dropped, the
            // positions stay before their lines, read again at next start.
            Err(e) => tracing::error!("[{}] recording bans: {e}", self.jail),
        }
    }

    /// Tries the waiting records again.
    pub(super) async fn retry(&mut self) {
        let w = self.start(Vec::new());
        self.finish(w).await;
    }

    /// At stop: one last try; what is still not written is read again
    /// from the logs at the next start.
    pub(super) async fn stop(&mut self) {
        if !self.waiting() {
            return;
        }
        self.retry().await;
        if self.waiting() {
            tracing::error!(
                "[{}] stopping with {} ban(s) not recorded: their log lines are read again at the next start",
                self.jail,
                self.waiting.len()
            );
        }
    }
}

fn write(store: &dyn Store, records: Vec<Record>) -> Outcome {
    let mut out = Outcome {
        failed: Vec::new(),
        error: None,
    };
    for r in records {
        match store.add_ban(&r.ban) {
            Ok(()) => {
                if let Some(h) = r.hold {
                    h.release();
                }
            }
            Err(e) => {
                tracing::debug!("recording the ban of {}: {e}", r.ban.fid);
                out.error.get_or_insert(e);
                out.failed.push(r);
            }
        }
    }
    out
}
