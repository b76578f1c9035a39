//! Bans before positions: a log position (or journal cursor) is saved
//! only once every ban the lines before it caused is recorded in the
//! store, so that a crash at any moment leaves each failure either read
//! again at the next start or banned by a record the start restores.
//!
//! The source opens an entry per batch, in order, with the position after
//! the batch, and hands a [`Hold`] on it to each ban the batch causes (and
//! to each failure still waiting for a name's lookup); the recorder
//! releases a ban's hold once its record is written. An entry is complete
//! when all its holds are released; the newest positions of the complete
//! entries at the front are safe to save. A hold dropped without being
//! released (a job lost at stop, a lookup cut short) leaves its entry
//! incomplete for good: the positions stop before its lines, which the
//! next start reads again, and the batches after it are not tracked.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::source::FilePosition;
use crate::store::{self, Store};

/// Where a batch leaves its source.
#[derive(Debug)]
pub(super) enum Mark {
    File(FilePosition),
    Cursor(String),
}

struct Entry {
    /// Holds not released yet.
    pending: usize,
    /// A hold was dropped unreleased: the entry never completes.
    abandoned: bool,
    mark: Option<Mark>,
}

/// Positions safe to save, newest per file.
#[derive(Default)]
struct Safe {
    files: BTreeMap<PathBuf, FilePosition>,
    cursor: Option<String>,
}

impl Safe {
    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.cursor.is_none()
    }

    fn add(&mut self, mark: Mark) {
        match mark {
            Mark::File(p) => {
                self.files.insert(p.path.clone(), p);
            }
            Mark::Cursor(c) => self.cursor = Some(c),
        }
    }

    /// Takes back what a failed save did not write, unless a newer
    /// position of the same file (or a newer cursor) became safe meanwhile.
    fn put_back(&mut self, old: Safe) {
        for (path, p) in old.files {
            self.files.entry(path).or_insert(p);
        }
        if self.cursor.is_none() {
            self.cursor = old.cursor;
        }
    }
}

#[derive(Default)]
struct Book {
    /// The sequence number of `entries[0]`.
    first: u64,
    /// The sequence number of the next batch.
    next: u64,
    /// Up to the first abandoned entry: nothing after it can be saved in
    /// this run, so nothing after it is kept.
    entries: VecDeque<Entry>,
    /// An entry was abandoned.
    stuck: bool,
    safe: Safe,
}

impl Book {
    /// Where the entry of batch `seq` is, if it is kept.
    fn index(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        (i < self.entries.len()).then_some(i)
    }

    /// Whether an entry at the front waits for holds that can be released.
    fn waiting(&self) -> bool {
        self.entries.front().is_some_and(|e| !e.abandoned)
    }
}

/// The batches of one jail's source whose bans are not all recorded yet.
#[derive(Default)]
pub(super) struct Ledger {
    book: Mutex<Book>,
    /// Positions became safe to save.
    ready: Notify,
    /// How saving positions went lately.
    trouble: Mutex<Trouble>,
}

/// A ban (or a failure that may become one) of a batch, not recorded yet.
/// [`release`](Hold::release) it once recorded; dropped unreleased, it
/// keeps the positions before its batch for good.
pub(super) struct Hold {
    ledger: Arc<Ledger>,
    seq: u64,
    released: bool,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hold({})", self.seq)
    }
}

impl Ledger {
    /// Opens the entry of the next batch, which leaves the source at
    /// `mark`; the hold returned is the source's own, to release once it
    /// has handed every ban of the batch on.
    pub(super) fn open(self: &Arc<Self>, mark: Option<Mark>) -> Hold {
        let mut book = self.book.lock().expect("ledger lock");
        let seq = book.next;
        book.next += 1;
        if !book.stuck {
            book.entries.push_back(Entry {
                pending: 1,
                abandoned: false,
                mark,
            });
        }
        Hold {
            ledger: self.clone(),
            seq,
            released: false,
        }
    }

    /// Resolves once positions became safe to save since the last call.
    pub(super) async fn ready(&self) {
        self.ready.notified().await;
    }

    fn account(&self, seq: u64, abandoned: bool) {
        let mut book = self.book.lock().expect("ledger lock");
        let Some(i) = book.index(seq) else { return };
        if abandoned {
            book.entries[i].abandoned = true;
            book.entries.truncate(i + 1);
            book.stuck = true;
            return;
        }
        let e = &mut book.entries[i];
        e.pending -= 1;
        if i != 0 || e.pending != 0 {
            return;
        }
        let mut any = false;
        while book
            .entries
            .front()
            .is_some_and(|e| e.pending == 0 && !e.abandoned)
        {
            let e = book.entries.pop_front().expect("front exists");
            book.first += 1;
            if let Some(m) = e.mark {
                book.safe.add(m);
                any = true;
            }
        }
        drop(book);
        if any {
            self.ready.notify_one();
        }
    }

    /// Waits (at most `within`) until the bans of every batch so far are
    /// recorded, then saves the positions: a source opened again reads on
    /// from the saved positions, and lines it reads again count again.
    pub(super) async fn drain(
        self: &Arc<Self>,
        store: Option<&Arc<dyn Store>>,
        jail: &str,
        within: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        while self.book.lock().expect("ledger lock").waiting() {
            if tokio::time::timeout_at(deadline, self.ready())
                .await
                .is_err()
            {
                break;
            }
        }
        self.save(store, jail).await;
    }

    /// Saves the positions whose bans are all recorded. One caller at a
    /// time: the source task, then the jail's stop once the source ended.
    pub(super) async fn save(self: &Arc<Self>, store: Option<&Arc<dyn Store>>, jail: &str) {
        let Some(store) = store.cloned() else {
            return;
        };
        let (ledger, jail) = (self.clone(), jail.to_string());
        let name = jail.clone();
        if let Err(e) =
            tokio::task::spawn_blocking(move || ledger.save_blocking(&*store, &jail)).await
        {
            tracing::error!("[{name}] saving log positions: the task failed: {e}");
        }
    }

    fn save_blocking(&self, store: &dyn Store, jail: &str) {
        let safe = std::mem::take(&mut self.book.lock().expect("ledger lock").safe);
        if safe.is_empty() {
            return;
        }
        let written = write_positions(store, jail, &safe);
        let error = match written {
            Ok(()) => None,
            Err(e) => {
                self.book.lock().expect("ledger lock").safe.put_back(safe);
                Some(e)
            }
        };
        let logged = self
            .trouble
            .lock()
            .expect("ledger lock")
            .after(error.as_ref());
        logged.log(
            jail,
            "saving the log positions",
            "they are saved again with the next ones",
        );
    }
}

fn write_positions(store: &dyn Store, jail: &str, safe: &Safe) -> store::Result<()> {
    for p in safe.files.values() {
        let path = p.path.to_string_lossy();
        store.set_log_position(jail, &path, &p.md5, p.offset)?;
    }
    if let Some(c) = &safe.cursor {
        store.set_journal_cursor(jail, c)?;
    }
    Ok(())
}

impl Hold {
    /// One more hold on the same batch.
    pub(super) fn another(&self) -> Hold {
        let mut book = self.ledger.book.lock().expect("ledger lock");
        if let Some(i) = book.index(self.seq) {
            book.entries[i].pending += 1;
        }
        Hold {
            ledger: self.ledger.clone(),
            seq: self.seq,
            released: false,
        }
    }

    /// What it held is recorded (or needs no record).
    pub(super) fn release(mut self) {
        self.released = true;
        self.ledger.account(self.seq, false);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.released {
            self.ledger.account(self.seq, true);
        }
    }
}

/// Store writes that keep failing (a full disk): logged once with their
/// cause when they start failing, once when they succeed again, and each
/// one in between at debug level, so that a flood of bans on a full disk
/// does not flood the log too.
#[derive(Default)]
pub(super) struct Trouble {
    /// Failed attempts since the last success.
    failed: u64,
}

/// What [`Trouble::after`] says to log.
pub(super) enum Logged<'e> {
    Nothing,
    Started(&'e store::Error),
    Again(&'e store::Error, u64),
    Over(u64),
}

impl Trouble {
    /// Takes the outcome of an attempt: `Some` error if it failed.
    pub(super) fn after<'e>(&mut self, error: Option<&'e store::Error>) -> Logged<'e> {
        match error {
            Some(e) => {
                self.failed += 1;
                if self.failed == 1 {
                    Logged::Started(e)
                } else {
                    Logged::Again(e, self.failed)
                }
            }
            None if self.failed > 0 => Logged::Over(std::mem::take(&mut self.failed)),
            None => Logged::Nothing,
        }
    }
}

impl Logged<'_> {
    /// Logs it: `what` failed, `then` says what becomes of what was not
    /// written.
    pub(super) fn log(&self, jail: &str, what: &str, then: &str) {
        match self {
            Logged::Nothing => {}
            Logged::Started(e) => tracing::error!("[{jail}] {what} failed: {e}; {then}"),
            Logged::Again(e, n) => tracing::debug!("[{jail}] {what} failed again ({n} times): {e}"),
            Logged::Over(n) => {
                tracing::warn!("[{jail}] {what} succeeded again after {n} failed attempts")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(offset: u64) -> Option<Mark> {
        Some(Mark::File(FilePosition {
            path: "/l".into(),
            md5: "m".into(),
            offset,
        }))
    }

    fn safe(l: &Ledger) -> Option<u64> {
        l.book
            .lock()
            .unwrap()
            .safe
            .files
            .values()
            .next()
            .map(|p| p.offset)
    }

    #[test]
    fn a_position_waits_for_the_bans_before_it() {
        let l = Arc::new(Ledger::default());
        let a = l.open(file(10));
        let ban = a.another();
        a.release();
        let b = l.open(file(20));
        b.release();
        assert_eq!(safe(&l), None, "batch 1's ban is not recorded");
        ban.release();
        assert_eq!(safe(&l), Some(20));
    }

    #[test]
    fn a_dropped_hold_stops_the_positions_before_its_batch() {
        let l = Arc::new(Ledger::default());
        l.open(file(10)).release();
        let a = l.open(file(20));
        drop(a.another());
        a.release();
        let c = l.open(file(30));
        c.another().release();
        c.release();
        assert_eq!(safe(&l), Some(10));
        assert_eq!(
            l.book.lock().unwrap().entries.len(),
            1,
            "only the abandoned one is kept"
        );
    }
}
