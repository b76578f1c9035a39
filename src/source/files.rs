//! The file source of a jail: its logpaths (glob patterns re-evaluated, so
//! files that appear later are picked up), each followed by a [`FileTail`],
//! woken by inotify or by polling.
//!
//! We use the `inotify` crate rather than `notify`: fail2ban's pyinotify
//! backend is Linux inotify with specific masks (IN_MODIFY on the file, IN_CREATE,
//! IN_MOVED_TO, ... on its directory), and `inotify` gives exactly that with
//! a pollable descriptor, without `notify`'s own thread and debouncing. The
//! events only wake the reader: what changed is always found by comparing
//! the path with the open file, so inotify and polling yield the same
//! lines, and a lost event (queue overflow) costs at most one poll interval.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchDescriptor, WatchMask};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;

use super::hub::{Follower, Hub};
use super::tail::{ReadStatus, TailStart};
use super::{FilePosition, FileTail, LogEncoding, SourceError, TailLine, DEFAULT_MAX_LINE};

/// Where to start a logpath with no saved position (`logpath = FILE tail`
/// in jail.conf). Files a glob finds later are new: they start at the head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// From the beginning (fail2ban's default, `head`).
    #[default]
    Head,
    /// From the end; as in fail2ban, a saved position is then ignored.
    Tail,
}

/// One `logpath` entry: a path or glob pattern, and where to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPath {
    /// A path, or a pattern with `*`, `?` or `[...]`.
    pub pattern: String,
    /// Where to start files found at startup.
    pub start: Start,
}

impl LogPath {
    /// `pattern`, read from the head.
    pub fn head(pattern: impl Into<String>) -> LogPath {
        LogPath {
            pattern: pattern.into(),
            start: Start::Head,
        }
    }

    /// `pattern`, read from the tail.
    pub fn tail(pattern: impl Into<String>) -> LogPath {
        LogPath {
            pattern: pattern.into(),
            start: Start::Tail,
        }
    }
}

/// How file changes are noticed (fail2ban's `backend` for files).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// inotify if it can be set up, else polling.
    #[default]
    Auto,
    /// inotify (`pyinotify`); falls back to polling, with an error logged,
    /// if inotify cannot be set up (e.g. too many inotify instances).
    Inotify,
    /// stat every poll interval.
    Polling,
}

impl FromStr for Backend {
    type Err = SourceError;

    /// fail2ban's names; `gamin` (gone from Linux distributions) means
    /// inotify. `systemd` is not a file backend: use a
    /// [`super::JournalSource`].
    fn from_str(s: &str) -> Result<Backend, SourceError> {
        match s.trim() {
            "auto" => Ok(Backend::Auto),
            "pyinotify" | "inotify" | "gamin" => Ok(Backend::Inotify),
            "polling" => Ok(Backend::Polling),
            other => Err(SourceError::UnknownBackend(other.to_string())),
        }
    }
}

/// Everything a [`FileSource`] needs.
#[derive(Clone, Debug)]
pub struct FileSourceOptions {
    /// The jail's name, for logs.
    pub jail: String,
    /// The jail's logpaths.
    pub paths: Vec<LogPath>,
    /// How changes are noticed.
    pub backend: Backend,
    /// `logencoding`.
    pub encoding: LogEncoding,
    /// Positions saved by the store; used for head logpaths whose first
    /// line still matches.
    pub saved: Vec<FilePosition>,
    /// Polling interval; with inotify, how often globs and missing files
    /// are looked at again.
    pub poll_interval: Duration,
    /// Longest line kept whole.
    pub max_line_len: usize,
    /// Most lines in one batch.
    pub batch_lines: usize,
    /// Batches the channel holds before the reader waits.
    pub channel_batches: usize,
}

impl FileSourceOptions {
    /// Defaults: backend auto, UTF-8, 1 s interval, 1 MiB lines.
    pub fn new(jail: impl Into<String>, paths: Vec<LogPath>) -> FileSourceOptions {
        FileSourceOptions {
            jail: jail.into(),
            paths,
            backend: Backend::Auto,
            encoding: LogEncoding::UTF8,
            saved: Vec::new(),
            poll_interval: Duration::from_secs(1),
            max_line_len: DEFAULT_MAX_LINE,
            batch_lines: 2048,
            channel_batches: 8,
        }
    }
}

/// Lines read from one file, in order, and where that file stands after
/// them. A batch may have no lines: it then reports a position only (a file
/// opened, or a rotation to a new file).
#[derive(Clone, Debug)]
pub struct FileBatch {
    /// The path the lines were read from.
    pub path: Arc<Path>,
    /// First-line MD5 of the file the lines come from.
    pub md5: Arc<str>,
    /// The lines; each carries the offset just after it.
    pub lines: Vec<TailLine>,
    /// Offset after the last line (or the current offset when there are
    /// no lines).
    pub offset: u64,
    /// Whether these lines were written after the source first reached the
    /// end of the file (fail2ban's `inOperation`).
    pub in_operation: bool,
}

impl FileBatch {
    /// The position after the whole batch, to persist once it is processed.
    pub fn position(&self) -> FilePosition {
        FilePosition {
            path: self.path.to_path_buf(),
            md5: self.md5.to_string(),
            offset: self.offset,
        }
    }

    /// The position just after line `i`.
    pub fn position_after(&self, i: usize) -> FilePosition {
        FilePosition {
            path: self.path.to_path_buf(),
            md5: self.md5.to_string(),
            offset: self.lines[i].end,
        }
    }
}

/// Follows a jail's log files on the thread shared by all file sources
/// (see `hub`); batches arrive through [`next`](Self::next).
#[derive(Debug)]
pub struct FileSource {
    // Boxed batches: the channel allocates a block of slots per source
    // up front, and most jails' logs sit idle.
    rx: mpsc::Receiver<Box<FileBatch>>,
    positions: HashMap<PathBuf, FilePosition>,
    shared: Arc<Shared>,
    // Resolves (with an error) once the reader is dropped.
    done: Option<oneshot::Receiver<()>>,
    backend: Backend,
}

// What the consumer and the reader both look at.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    // The reader holds a batch the channel had no room for: a receive
    // makes room, so it wakes the reader at once.
    blocked: AtomicBool,
}

impl FileSource {
    /// Starts following the logpaths. Missing or unreadable files are not
    /// errors: they are logged and retried every poll interval.
    pub fn spawn(opts: FileSourceOptions) -> Result<FileSource, SourceError> {
        let thread_err = |source| SourceError::Thread {
            what: "file",
            source,
        };
        let hub = Hub::get().map_err(thread_err)?;
        let inotify = match opts.backend {
            Backend::Polling => None,
            b => match Inotify::init() {
                Ok(i) => Some(i),
                Err(e) => {
                    let msg = "inotify unavailable, falling back to polling";
                    if b == Backend::Inotify {
                        tracing::error!(jail = %opts.jail, error = %e, "{msg}");
                    } else {
                        tracing::info!(jail = %opts.jail, error = %e, "{msg}");
                    }
                    None
                }
            },
        };
        let backend = if inotify.is_some() {
            Backend::Inotify
        } else {
            Backend::Polling
        };
        let (tx, rx) = mpsc::channel(opts.channel_batches.max(1));
        let (done_tx, done_rx) = oneshot::channel();
        let shared = Arc::new(Shared::default());
        hub.add(Box::new(Reader::new(
            opts,
            inotify,
            tx,
            shared.clone(),
            done_tx,
        )));
        Ok(FileSource {
            rx,
            positions: HashMap::new(),
            shared,
            done: Some(done_rx),
            backend,
        })
    }

    /// The backend in use (auto resolved).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The next batch; `None` once the source has stopped.
    pub async fn next(&mut self) -> Option<FileBatch> {
        let b = *self.rx.recv().await?;
        if self.shared.blocked.load(Ordering::SeqCst) {
            wake_hub();
        }
        self.positions.insert(b.path.to_path_buf(), b.position());
        Some(b)
    }

    /// Positions after the batches handed out by [`next`](Self::next), one
    /// per file: what to persist once those batches are processed.
    pub fn positions(&self) -> Vec<FilePosition> {
        let mut v: Vec<_> = self.positions.values().cloned().collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Stops the reader and waits until it has let go of its files. Lines
    /// read but not handed out are dropped; the positions returned do not
    /// cover them, so the next start reads them again.
    pub async fn stop(mut self) -> Vec<FilePosition> {
        self.shared.stop.store(true, Ordering::SeqCst);
        wake_hub();
        self.rx.close();
        if let Some(done) = self.done.take() {
            // The reader shares its thread with every jail's: should it be
            // stuck (a file system that hangs), the jail stops anyway.
            if tokio::time::timeout(STOP_WAIT, done).await.is_err() {
                tracing::error!(
                    "the file reader did not let go of its files within {STOP_WAIT:?}; stopping without it"
                );
            }
        }
        self.positions()
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        wake_hub();
    }
}

fn wake_hub() {
    // The hub exists: it was started before any source.
    if let Ok(h) = Hub::get() {
        h.wake();
    }
}

const DIR_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

// How long stopping waits for the reader to let go of its files.
const STOP_WAIT: Duration = Duration::from_secs(3);

const COALESCE: Duration = Duration::from_millis(2);

// How often a batch the channel had no room for is offered again if no
// receive wakes the reader first.
const RETRY: Duration = Duration::from_millis(50);

// Polling follows fail2ban's FilterPoll: its wait for a change looks at
// once, then after 0.2 s, 0.4 s more, 0.6 s more... (Utils.wait_for, each
// pause 0.2 s longer than the last) until its sleeptime of 2 s has passed,
// and starts over; after a change it reads and looks again at once. A
// fixed 1 s poll lost up to a second of lines to each copytruncate
// rotation, several times what fail2ban lost. The same schedule with a
// quarter of the step (a look is one stat per file) looks at a quiet log
// nine times every 2 s and at a busy one every 50 ms at most, so that it
// loses less than fail2ban whatever the moment of the rotation.
const POLL_STEP: Duration = Duration::from_millis(50);
const POLL_CYCLE: Duration = Duration::from_secs(2);

// Most read rounds over a jail's files in one turn, so that a flooded log
// leaves the other jails their turns.
const ROUNDS: usize = 8;

enum Sent {
    Yes,
    Full,
    Closed,
}

// How long the inode of a drained, rotated-away file is remembered, so that
// a glob matching the rotated name continues it instead of re-reading it.
const RETIRED_FOR: Duration = Duration::from_secs(600);

struct Reader {
    patterns: Vec<LogPath>,
    encoding: LogEncoding,
    max_line: usize,
    batch_lines: usize,
    poll_interval: Duration,
    saved: HashMap<PathBuf, FilePosition>,
    tails: Vec<FileTail>,
    known: HashSet<PathBuf>,
    first_scan: bool,
    empty_globs: HashSet<String>,
    retired: Vec<((u64, u64), u64, Instant)>,
    last_sent: HashMap<PathBuf, (String, u64)>,
    inotify: Option<Inotify>,
    dir_watches: HashMap<PathBuf, WatchDescriptor>,
    file_watches: HashMap<PathBuf, (u64, u64)>,
    tx: mpsc::Sender<Box<FileBatch>>,
    shared: Arc<Shared>,
    span: tracing::Span,
    rescan_due: bool,
    last_rescan: Instant,
    last_wake: Instant,
    // When lines are to be read next, after an inotify event.
    read_at: Option<Instant>,
    // Reading stopped before the files were drained.
    more: bool,
    // The last reading handed out lines.
    found: bool,
    // Polling: when the files are looked at next, fail2ban's way (see
    // POLL_STEP): the step grows after each look that finds nothing, and
    // starts over with a new cycle.
    look_at: Instant,
    look_step: Duration,
    look_cycle: Instant,
    pending: Option<Box<FileBatch>>,
    _done: oneshot::Sender<()>,
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

// The deepest directory of a pattern that has no glob characters.
fn literal_dir(pattern: &str) -> PathBuf {
    let mut dir = PathBuf::new();
    for comp in Path::new(pattern)
        .parent()
        .into_iter()
        .flat_map(|p| p.iter())
    {
        if has_magic(&comp.to_string_lossy()) {
            break;
        }
        dir.push(comp);
    }
    dir
}

impl Reader {
    fn new(
        opts: FileSourceOptions,
        inotify: Option<Inotify>,
        tx: mpsc::Sender<Box<FileBatch>>,
        shared: Arc<Shared>,
        done: oneshot::Sender<()>,
    ) -> Reader {
        let now = Instant::now();
        Reader {
            span: tracing::info_span!("jail", jail = %opts.jail),
            patterns: opts.paths,
            encoding: opts.encoding,
            max_line: opts.max_line_len,
            batch_lines: opts.batch_lines.max(1),
            poll_interval: opts.poll_interval,
            saved: opts
                .saved
                .into_iter()
                .map(|p| (p.path.clone(), p))
                .collect(),
            tails: Vec::new(),
            known: HashSet::new(),
            first_scan: true,
            empty_globs: HashSet::new(),
            retired: Vec::new(),
            last_sent: HashMap::new(),
            inotify,
            dir_watches: HashMap::new(),
            file_watches: HashMap::new(),
            tx,
            shared,
            rescan_due: true,
            last_rescan: now,
            last_wake: now - COALESCE * 4,
            read_at: None,
            more: false,
            found: false,
            look_at: now,
            look_step: Duration::ZERO,
            look_cycle: now,
            pending: None,
            _done: done,
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn send(&mut self, batch: Box<FileBatch>) -> Sent {
        self.shared.blocked.store(true, Ordering::SeqCst);
        match self.tx.try_send(batch) {
            Ok(()) => {
                self.shared.blocked.store(false, Ordering::SeqCst);
                Sent::Yes
            }
            Err(TrySendError::Full(batch)) => {
                self.pending = Some(batch);
                self.more = true;
                Sent::Full
            }
            Err(TrySendError::Closed(_)) => Sent::Closed,
        }
    }

    // Returns whether a directory changed (a file may have appeared).
    fn drain_events(&mut self, buf: &mut [u8]) -> bool {
        let Some(ino) = self.inotify.as_mut() else {
            return false;
        };
        let mut dir_changed = false;
        loop {
            match ino.read_events(buf) {
                Ok(evs) => {
                    let mut any = false;
                    for ev in evs {
                        any = true;
                        if ev.mask.contains(inotify::EventMask::Q_OVERFLOW)
                            || self.dir_watches.values().any(|w| *w == ev.wd)
                        {
                            dir_changed = true;
                        }
                    }
                    if !any {
                        return dir_changed;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return dir_changed,
                Err(e) => {
                    tracing::error!(error = %e, "reading inotify events failed; polling instead");
                    self.inotify = None;
                    return true;
                }
            }
        }
    }

    fn rescan(&mut self) {
        self.retired.retain(|r| r.2.elapsed() < RETIRED_FOR);
        let first = std::mem::replace(&mut self.first_scan, false);
        for i in 0..self.patterns.len() {
            let lp = self.patterns[i].clone();
            let paths: Vec<PathBuf> = if has_magic(&lp.pattern) {
                self.glob(&lp.pattern)
            } else {
                vec![PathBuf::from(&lp.pattern)]
            };
            for p in paths {
                if self.known.contains(&p) || self.open_elsewhere(&p) {
                    continue;
                }
                let start = self.start_for(&p, lp.start, first);
                tracing::debug!(path = %p.display(), ?start, "following log file");
                self.known.insert(p.clone());
                self.tails
                    .push(FileTail::new(p, start, self.encoding).with_max_line(self.max_line));
            }
        }
        // Most jails follow a file or two: the room a push leaves for three
        // more tails of a few hundred bytes each, in every jail, is given
        // back.
        self.tails.shrink_to_fit();
    }

    fn glob(&mut self, pattern: &str) -> Vec<PathBuf> {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let found: Vec<PathBuf> = match glob::glob_with(pattern, opts) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| {
                    let dir = p.is_dir();
                    if dir {
                        tracing::debug!(path = %p.display(), "glob {pattern} matches a directory; skipped");
                    }
                    !dir
                })
                .collect(),
            Err(e) => {
                if self.empty_globs.insert(pattern.to_string()) {
                    tracing::error!(pattern, error = %e, "bad logpath pattern");
                }
                return Vec::new();
            }
        };
        if found.is_empty() {
            if self.empty_globs.insert(pattern.to_string()) {
                tracing::warn!(
                    pattern,
                    "no file matches logpath {pattern} yet; will look again"
                );
            }
        } else {
            self.empty_globs.remove(pattern);
        }
        found
    }

    // A new name for a file a tail has open: a rotation in progress (the
    // tail drains it, and the next rescan continues it where it ended) or
    // a second name for the same file (read once).
    fn open_elsewhere(&self, p: &Path) -> bool {
        let Ok(m) = std::fs::metadata(p) else {
            return false;
        };
        let id = (m.dev(), m.ino());
        self.tails.iter().any(|t| t.holds(id))
    }

    fn start_for(&mut self, p: &Path, start: Start, first: bool) -> TailStart {
        if let Some(saved) = self.saved.remove(p) {
            if start == Start::Head {
                return TailStart::Saved {
                    md5: saved.md5,
                    offset: saved.offset,
                };
            }
        }
        if first {
            return match start {
                Start::Head => TailStart::Head,
                Start::Tail => TailStart::Tail,
            };
        }
        if let Ok(m) = std::fs::metadata(p) {
            let id = (m.dev(), m.ino());
            if let Some(r) = self.retired.iter().find(|r| r.0 == id) {
                tracing::debug!(path = %p.display(), offset = r.1, "rotated file already read up to here");
                return TailStart::Offset(r.1);
            }
        }
        TailStart::Head
    }

    // Reads the files until none has more, the channel is full or the turn
    // is used up; false once the consumer is gone.
    fn read_some(&mut self) -> bool {
        self.more = false;
        self.found = false;
        for _ in 0..ROUNDS {
            let mut more = false;
            for i in 0..self.tails.len() {
                if self.stopped() {
                    return false;
                }
                let tail = &mut self.tails[i];
                let was_in_operation = tail.in_operation();
                let mut lines = Vec::new();
                if tail.read(&mut lines, self.batch_lines) == ReadStatus::More {
                    more = true;
                }
                let now = Instant::now();
                for (id, offset) in tail.take_finished() {
                    self.retired.push((id, offset, now));
                }
                let tail = &self.tails[i];
                let key = (tail.md5().to_string(), tail.offset());
                let path = tail.path();
                if lines.is_empty()
                    && (tail.identity().is_none() || self.last_sent.get(path) == Some(&key))
                {
                    continue;
                }
                self.found |= !lines.is_empty();
                let batch = FileBatch {
                    path: Arc::from(path),
                    md5: Arc::from(key.0.as_str()),
                    offset: key.1,
                    lines,
                    in_operation: was_in_operation,
                };
                self.last_sent.insert(path.to_path_buf(), key);
                match self.send(Box::new(batch)) {
                    Sent::Yes => {}
                    Sent::Full => return true,
                    Sent::Closed => return false,
                }
            }
            if !more {
                return true;
            }
        }
        self.more = true;
        true
    }

    // Schedules the next look of a polling source (see POLL_STEP).
    fn next_look(&mut self, now: Instant) {
        if self.found {
            self.look_cycle = now;
            self.look_step = Duration::ZERO;
        } else {
            if now.duration_since(self.look_cycle) >= POLL_CYCLE {
                self.look_cycle = now;
                self.look_step = Duration::ZERO;
            }
            self.look_step = (self.look_step + POLL_STEP).min(POLL_CYCLE);
        }
        self.look_at = now + self.look_step;
    }

    fn refresh_watches(&mut self) {
        let Some(ino) = self.inotify.as_mut() else {
            return;
        };
        let mut dirs: Vec<PathBuf> = self
            .patterns
            .iter()
            .filter(|lp| has_magic(&lp.pattern))
            .map(|lp| literal_dir(&lp.pattern))
            .collect();
        for t in &self.tails {
            dirs.push(t.path().parent().map(Path::to_path_buf).unwrap_or_default());
        }
        for d in dirs {
            let d = if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            };
            if self.dir_watches.contains_key(&d) {
                continue;
            }
            if let Ok(wd) = ino.watches().add(&d, DIR_MASK) {
                tracing::debug!(dir = %d.display(), "Added monitor for the parent directory");
                self.dir_watches.insert(d, wd);
            }
        }
        for t in &self.tails {
            let Some(id) = t.identity() else { continue };
            if self.file_watches.get(t.path()) == Some(&id) {
                continue;
            }
            // The watch follows whatever inode the path names now; the one
            // on a rotated-away inode stays until the kernel drops it.
            match ino.watches().add(t.path(), WatchMask::MODIFY) {
                Ok(_) => {
                    self.file_watches.insert(t.path().to_path_buf(), id);
                }
                Err(e) => {
                    tracing::debug!(path = %t.path().display(), error = %e, "no file watch; polling covers it")
                }
            }
        }
        // A directory watch on a removed directory is gone; forget it so
        // that it is added again when the directory comes back.
        self.dir_watches.retain(|d, _| d.is_dir());
    }
}

impl Follower for Reader {
    fn fd(&self) -> Option<RawFd> {
        self.inotify.as_ref().map(|i| i.as_raw_fd())
    }

    fn deadline(&self) -> Option<Instant> {
        let mut at = self.last_rescan + self.poll_interval;
        if let Some(r) = self.read_at {
            at = at.min(r);
        }
        if self.inotify.is_none() {
            at = at.min(self.look_at);
        }
        if self.pending.is_some() {
            at = at.min(Instant::now() + RETRY);
        } else if self.more {
            at = Instant::now();
        }
        Some(at)
    }

    fn turn(&mut self, readable: bool, scratch: &mut [u8]) -> bool {
        if self.stopped() {
            return false;
        }
        let span = self.span.clone();
        let _g = span.enter();
        let now = Instant::now();
        if readable {
            self.rescan_due |= self.drain_events(scratch);
            // A writer appending line by line sends one event per write;
            // under such a flood (wakes less than a millisecond apart) a
            // short pause lets lines pile up so that each read takes many
            // of them. Slower writes are read at once: the time from a
            // failure to its ban is what a jail is judged by, and a line
            // not yet read when logrotate truncates the file is lost.
            let at = if now.saturating_duration_since(self.last_wake) < COALESCE / 2 {
                now + COALESCE
            } else {
                now
            };
            self.read_at = Some(self.read_at.map_or(at, |r| r.min(at)));
            self.last_wake = now;
        }
        let polling = self.inotify.is_none();
        let mut read = self.read_at.is_some_and(|t| t <= now) || (polling && self.look_at <= now);
        if self.rescan_due || now.duration_since(self.last_rescan) >= self.poll_interval {
            if self.first_scan && self.patterns.is_empty() {
                tracing::warn!("no logpath: the file source has nothing to follow");
            }
            self.rescan();
            self.last_rescan = now;
            self.rescan_due = false;
            read = true;
        }
        if let Some(batch) = self.pending.take() {
            match self.send(batch) {
                Sent::Yes => {}
                Sent::Full => return true,
                Sent::Closed => return false,
            }
        }
        if !(read || self.more) {
            return true;
        }
        if read {
            self.read_at = None;
        }
        if !self.read_some() {
            return false;
        }
        if polling && read {
            self.next_look(now);
        }
        self.refresh_watches();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends() {
        assert_eq!("auto".parse::<Backend>().unwrap(), Backend::Auto);
        assert_eq!("pyinotify".parse::<Backend>().unwrap(), Backend::Inotify);
        assert_eq!("polling".parse::<Backend>().unwrap(), Backend::Polling);
        assert!("systemd".parse::<Backend>().is_err());
    }

    #[test]
    fn literal_dirs() {
        assert_eq!(literal_dir("/var/log/*.log"), PathBuf::from("/var/log"));
        assert_eq!(literal_dir("/var/log/*/x.log"), PathBuf::from("/var/log"));
        assert_eq!(literal_dir("x*.log"), PathBuf::from(""));
    }
}
