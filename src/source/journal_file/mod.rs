//! A reader of journal files that does without libsystemd: each file
//! mapped read-only, its entries walked through the global entry array,
//! journalmatch applied with sd-journal's semantics, the entries of
//! several files merged in libsystemd's order, cursors in libsystemd's
//! format. libsystemd spends most of a journal jail's CPU time (hash
//! lookups, per-call state checks, a window cache over the files); this
//! reader does only what the jail needs.
//!
//! Every offset read from a file is checked against the map: a corrupt or
//! truncated file gives an error, never a read outside it. A file this
//! reader does not read (an unknown incompatible flag, a missing
//! decompression library) makes [`NativeJournal::open`] fail, and the
//! caller uses libsystemd instead.

// `ok_or_else` even for "cheap" errors: `ok_or` builds the error on every
// check and drops it (a call: FileError has fields that own memory), which
// the profile showed at a tenth of the server's instructions.
#![allow(clippy::unnecessary_lazy_evaluations)]

mod cursor;
mod decompress;
mod file;
mod matches;

use std::cmp::Ordering;
use std::path::PathBuf;

pub(crate) use cursor::{Cursor, Location};
use file::JournalFile;
use matches::{FileMatches, MatchSpec};

/// Why a journal file cannot be read here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Opening, mapping or examining the file failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// Not a regular file, or one that someone other than root can write
    /// (and so shorten under the map).
    #[error("not a regular file that only root can write")]
    Untrusted,
    /// The file does not start with a journal file's signature.
    #[error("not a journal file")]
    Signature,
    /// The file uses a feature this reader does not know.
    #[error("unknown incompatible flags {0:#x}")]
    Incompatible(u32),
    /// The file is compressed with a library that cannot be loaded.
    #[error("compressed, and {0} cannot be loaded")]
    Compression(&'static str),
    /// A compressed field does not decode.
    #[error("a compressed field does not decode")]
    Compressed,
    /// An offset or size points outside the file (corrupt or truncated).
    #[error("offset or size {0} out of the file")]
    Bounds(u64),
    /// An object is not of the type its reference says.
    #[error("object at {offset} has type {kind}, not the one referenced")]
    ObjectType {
        /// Where.
        offset: u64,
        /// The type found.
        kind: u8,
    },
    /// The journalmatch names more than 64 fields.
    #[error("too many journalmatch fields (at most 64)")]
    TooManyFields,
    /// No current entry, or a cursor that is not one.
    #[error("no entry here")]
    NoEntry,
    /// An error in one file.
    #[error("{path}: {error}")]
    In {
        /// The file.
        path: PathBuf,
        /// What.
        error: Box<FileError>,
    },
}

/// Where the next entry is looked for.
#[derive(Clone, Debug)]
enum Seek {
    Head,
    Tail,
    Realtime(u64),
    Cursor(Cursor),
    Entry(Location),
}

/// The next matching entry of a file, found but not handed out.
#[derive(Clone, Copy)]
struct Candidate {
    index: u64,
    offset: u64,
    loc: Location,
}

struct Member {
    file: JournalFile,
    matches: FileMatches,
    // The index of the next entry to look at going forward.
    pos: u64,
    cand: Option<Candidate>,
    // The file's global entry array the last lookup went through.
    hint: (u64, u64),
}

impl Member {
    fn location(&self, offset: u64) -> Result<Location, FileError> {
        let h = self.file.entry_head(offset)?;
        Ok(Location {
            seqnum_id: self.file.seqnum_id,
            seqnum: h.seqnum,
            boot_id: h.boot_id,
            monotonic: h.monotonic,
            realtime: h.realtime,
            xor_hash: h.xor_hash,
        })
    }

    fn entry(&mut self, i: u64) -> Result<(u64, Location), FileError> {
        let off = self.file.entry_offset(i, &mut self.hint)?;
        Ok((off, self.location(off)?))
    }

    /// The number of entries that come before `at`.
    fn boundary(&mut self, at: &Seek, up: bool) -> Result<u64, FileError> {
        let n = self.file.n_entries()?;
        let before = |l: &Location| -> bool {
            match at {
                Seek::Head => false,
                Seek::Tail => true,
                // Going up, an entry at the time is before it (libsystemd
                // lands on the last entry at or before the time).
                Seek::Realtime(t) if up => l.realtime <= *t,
                Seek::Realtime(t) => l.realtime < *t,
                Seek::Cursor(c) => l.compare_cursor(c).is_lt(),
                Seek::Entry(e) => l.compare(e).is_lt(),
            }
        };
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let mut hint = (0, 0);
            let off = self.file.entry_offset(mid, &mut hint)?;
            if before(&self.location(off)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Finds the next matching entry from `pos` on, if none is pending.
    fn fill(&mut self) -> Result<(), FileError> {
        if self.cand.is_some() {
            return Ok(());
        }
        let mut n = self.file.n_entries()?;
        if self.pos >= n {
            // journald may have appended entries (and grown the file).
            self.file.refresh()?;
            n = self.file.n_entries()?;
        }
        if n > self.matches.entries_seen {
            self.matches.extend(&self.file)?;
            self.matches.entries_seen = n;
        }
        while self.pos < n {
            let i = self.pos;
            self.pos += 1;
            let off = self.file.entry_offset(i, &mut self.hint)?;
            if self.matches.entry_matches(&self.file, off)? {
                self.cand = Some(Candidate {
                    index: i,
                    offset: off,
                    loc: self.location(off)?,
                });
                break;
            }
        }
        Ok(())
    }

    /// The last matching entry before index `end`.
    fn last_before(&mut self, end: u64) -> Result<Option<Candidate>, FileError> {
        let n = self.file.n_entries()?;
        if n > self.matches.entries_seen {
            self.matches.extend(&self.file)?;
            self.matches.entries_seen = n;
        }
        let mut i = end.min(n);
        while i > 0 {
            i -= 1;
            let (off, loc) = self.entry(i)?;
            if self.matches.entry_matches(&self.file, off)? {
                return Ok(Some(Candidate {
                    index: i,
                    offset: off,
                    loc,
                }));
            }
        }
        Ok(None)
    }
}

/// Journal files read together, as `sd_journal_open_files` reads them.
pub(crate) struct NativeJournal {
    members: Vec<Member>,
    // The entry handed out last: (member, candidate).
    current: Option<(usize, Candidate)>,
    seek: Seek,
    threshold: usize,
    buf: Vec<u8>,
}

fn within(path: &std::path::Path) -> impl Fn(FileError) -> FileError + '_ {
    move |error| FileError::In {
        path: path.to_path_buf(),
        error: Box::new(error),
    }
}

impl NativeJournal {
    /// Opens `paths` with journalmatch `groups` (each a list of
    /// `FIELD=value` words ANDed, the groups ORed). Fails if any file
    /// cannot be read natively.
    pub(crate) fn open(
        paths: &[PathBuf],
        groups: &[Vec<String>],
        threshold: usize,
    ) -> Result<NativeJournal, FileError> {
        let spec = MatchSpec::new(groups)?;
        let mut members = Vec::new();
        for p in paths {
            let file = JournalFile::open(p).map_err(within(p))?;
            let matches = FileMatches::new(&spec);
            members.push(Member {
                file,
                matches,
                pos: 0,
                cand: None,
                hint: (0, 0),
            });
        }
        Ok(NativeJournal {
            members,
            current: None,
            seek: Seek::Head,
            threshold,
            buf: Vec::new(),
        })
    }

    fn seek(&mut self, at: Seek) -> Result<(), FileError> {
        for m in &mut self.members {
            m.pos = m.boundary(&at, false).map_err(within(m.file.path()))?;
            m.cand = None;
        }
        self.current = None;
        self.seek = at;
        Ok(())
    }

    pub(crate) fn seek_head(&mut self) -> Result<(), FileError> {
        self.seek(Seek::Head)
    }

    pub(crate) fn seek_tail(&mut self) -> Result<(), FileError> {
        self.seek(Seek::Tail)
    }

    pub(crate) fn seek_realtime_usec(&mut self, usec: u64) -> Result<(), FileError> {
        self.seek(Seek::Realtime(usec))
    }

    /// Seeks to a cursor; an error if it is not one.
    pub(crate) fn seek_cursor(&mut self, c: &str) -> Result<(), FileError> {
        let c = Cursor::parse(c).ok_or_else(|| FileError::NoEntry)?;
        self.seek(Seek::Cursor(c))
    }

    /// Moves to the next matching entry; false at the end.
    pub(crate) fn next(&mut self) -> Result<bool, FileError> {
        loop {
            let mut best: Option<(usize, Candidate)> = None;
            for (i, m) in self.members.iter_mut().enumerate() {
                m.fill().map_err(within(m.file.path()))?;
                if let Some(c) = m.cand {
                    if best.is_none_or(|(_, b)| c.loc.compare(&b.loc).is_lt()) {
                        best = Some((i, c));
                    }
                }
            }
            let Some((i, c)) = best else {
                return Ok(false);
            };
            self.members[i].cand = None;
            // The same entry in two files (a copy) is handed out once.
            if self
                .current
                .is_some_and(|(_, cur)| cur.loc.compare(&c.loc) == Ordering::Equal)
            {
                continue;
            }
            self.current = Some((i, c));
            return Ok(true);
        }
    }

    /// Moves to the previous matching entry; false at the start.
    pub(crate) fn previous(&mut self) -> Result<bool, FileError> {
        let at = match self.current {
            Some((_, c)) => Seek::Entry(c.loc),
            None => self.seek.clone(),
        };
        let mut ends = Vec::with_capacity(self.members.len());
        let mut best: Option<(usize, Candidate)> = None;
        for (i, m) in self.members.iter_mut().enumerate() {
            let end = m.boundary(&at, true).map_err(within(m.file.path()))?;
            ends.push(end);
            if let Some(c) = m.last_before(end).map_err(within(m.file.path()))? {
                if best.is_none_or(|(_, b)| c.loc.compare(&b.loc).is_gt()) {
                    best = Some((i, c));
                }
            }
        }
        let Some((bi, c)) = best else {
            return Ok(false);
        };
        for (i, (m, end)) in self.members.iter_mut().zip(ends).enumerate() {
            m.cand = None;
            m.pos = if i == bi { c.index + 1 } else { end };
        }
        self.current = Some((bi, c));
        Ok(true)
    }

    fn current(&self) -> Result<(usize, Candidate), FileError> {
        self.current.ok_or_else(|| FileError::NoEntry)
    }

    pub(crate) fn location(&self) -> Result<Location, FileError> {
        Ok(self.current()?.1.loc)
    }

    pub(crate) fn cursor(&self) -> Result<String, FileError> {
        Ok(self.location()?.cursor())
    }

    pub(crate) fn test_cursor(&self, c: &str) -> Result<bool, FileError> {
        let c = Cursor::parse(c).ok_or_else(|| FileError::NoEntry)?;
        Ok(self.location()?.is(&c))
    }

    /// Calls `f` with each `FIELD=value` of the current entry, decompressed
    /// (and, compressed, cut at the data threshold, as libsystemd does).
    /// An unreadable field ends the entry's fields, as with libsystemd.
    pub(crate) fn for_each_field(&mut self, mut f: impl FnMut(&[u8])) -> Result<(), FileError> {
        let (i, c) = self.current()?;
        let file = &self.members[i].file;
        let threshold = self.threshold;
        let buf = &mut self.buf;
        let mut failed = None;
        file.entry_items(c.offset, |off| {
            let d = match file.data(off) {
                Ok(d) => d,
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            };
            if d.flags == 0 {
                f(d.payload);
                return true;
            }
            if let Err(e) = decompress::decode(d.flags, d.payload, buf) {
                failed = Some(e);
                return false;
            }
            if threshold > 0 && buf.len() > threshold {
                buf.truncate(threshold);
            }
            f(buf);
            true
        })
        .map_err(within(file.path()))?;
        if let Some(e) = failed {
            tracing::debug!(error = %e, "journal entry field unreadable");
        }
        Ok(())
    }

    /// The files, to log which ones are read natively.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &std::path::Path> {
        self.members.iter().map(|m| m.file.path())
    }
}
