//! One log file followed by its path: reading complete lines in big chunks
//! from a position, noticing rotation (rename, copytruncate, a file
//! replaced in place) and a file that is missing or cannot be read.
//!
//! The position of a file is fail2ban's triple: the path, the MD5 of its
//! first line (newline included, hex; empty while the file has no complete
//! first line) and the byte offset just after the last line handed out. The
//! MD5 tells on restart whether the file at the path is still the one the
//! offset belongs to.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use super::LogEncoding;

/// Lines longer than this (1 MiB) are truncated by default.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

// Reads of this size keep syscalls per line far below one at high line
// rates (a 16 KiB read holds ~200 log lines), while each followed file's
// buffer stays small: the buffer is resident, and a host follows many
// files (91 jails of the stock jail.conf took 23 MB with 256 KiB reads).
const CHUNK: usize = 16 * 1024;

// fail2ban re-hashes the first line every 30 s to notice a file replaced
// in place by a bigger one (same inode, size never went down).
const MD5_RECHECK: Duration = Duration::from_secs(30);
const CHEAP_FIRST_LINE: usize = 64 * 1024;

/// How long a file renamed or deleted away from the followed path is
/// still read after it last grew. A daemon goes on writing into the file
/// it has open until it reopens the path (rsyslog after logrotate's HUP,
/// a web server's workers finishing their requests); what it writes
/// there meanwhile is read too, as long as it writes at least this often.
pub const ROTATED_GRACE: Duration = Duration::from_secs(5);

/// Where reading a file stands, as the store keeps it (fail2ban's `logs`
/// table: path, firstlinemd5, lastfilepos).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FilePosition {
    /// The log path as configured (or as a glob found it).
    pub path: PathBuf,
    /// Hex MD5 of the file's first line, newline included; empty when the
    /// file had no complete first line.
    pub md5: String,
    /// Byte offset just after the last line handed out.
    pub offset: u64,
}

/// One line, decoded, without its line end, and the offset just after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailLine {
    /// The text (trailing `\r`s removed; NUL bytes kept).
    pub text: String,
    /// Offset just after the line's `\n`: where to restart after it.
    pub end: u64,
}

/// Where to start reading a file the first time it is opened. Later opens
/// (after a rotation or a deletion) always start at 0: it is a new file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailStart {
    /// From the beginning.
    Head,
    /// From the end as it is when the file is first opened.
    Tail,
    /// From a saved position, if the file's first line still has this MD5
    /// and the file is not shorter than the offset; else from 0.
    Saved {
        /// The saved first-line MD5.
        md5: String,
        /// The saved offset.
        offset: u64,
    },
    /// From this offset, trusted (the same inode was being read under
    /// another name); from 0 if the file is shorter.
    Offset(u64),
}

/// What [`FileTail::read`] left undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Lines may remain: the line budget was reached, or the tail switched
    /// files (a batch never mixes two files). Call again.
    More,
    /// Nothing more to read now.
    Idle,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Problem {
    Missing,
    IsDir,
    /// What it is instead (a FIFO, a device...).
    NotRegular(&'static str),
    Io(String),
}

/// A log file followed by path, read in chunks, one generation (inode) at a
/// time. Synchronous: [`super::FileSource`] drives it from its thread.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    encoding: LogEncoding,
    max_line: usize,
    start: Option<TailStart>,
    file: Option<File>,
    id: (u64, u64),
    md5: String,
    md5_at: Instant,
    first_line_len: usize,
    // Bytes read but not yet handed out; buf[head..] is the current line's
    // beginning (or its continuation in `long` mode), buf[..scanned] is
    // known to hold no newline past head.
    buf: Vec<u8>,
    head: usize,
    scanned: usize,
    // A line that outgrew max_line: its first bytes and how many of the
    // following ones were dropped.
    long: Option<(Vec<u8>, u64)>,
    line_pos: u64,
    read_pos: u64,
    // Earlier files of this path (renamed or deleted away), still read
    // until quiet for ROTATED_GRACE; oldest first.
    retiring: Vec<FileTail>,
    // When this file, retiring, last grew.
    grew_at: Instant,
    grace: Duration,
    // (device, inode) and offset of retiring files closed since the last
    // take_finished.
    finished: Vec<((u64, u64), u64)>,
    in_operation: bool,
    problem: Option<Problem>,
    decode_warned: bool,
}

impl FileTail {
    /// A tail for `path`; nothing is opened until the first [`read`](Self::read).
    pub fn new(path: impl Into<PathBuf>, start: TailStart, encoding: LogEncoding) -> FileTail {
        let in_operation = start == TailStart::Tail;
        FileTail {
            path: path.into(),
            encoding,
            max_line: DEFAULT_MAX_LINE,
            start: Some(start),
            file: None,
            id: (0, 0),
            md5: String::new(),
            md5_at: Instant::now(),
            first_line_len: 0,
            buf: Vec::new(),
            head: 0,
            scanned: 0,
            long: None,
            line_pos: 0,
            read_pos: 0,
            retiring: Vec::new(),
            grew_at: Instant::now(),
            grace: ROTATED_GRACE,
            finished: Vec::new(),
            in_operation,
            problem: None,
            decode_warned: false,
        }
    }

    /// Sets the longest line kept whole; longer ones are truncated (the
    /// rest up to the newline is dropped, never handed out as lines of
    /// their own, so a long line cannot smuggle in a forged one).
    pub fn with_max_line(mut self, max_line: usize) -> FileTail {
        self.max_line = max_line.max(64);
        self
    }

    /// Sets how long a rotated file is still read after it last grew
    /// (default [`ROTATED_GRACE`]).
    pub fn with_rotated_grace(mut self, grace: Duration) -> FileTail {
        self.grace = grace;
        self
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The position after the last line handed out.
    pub fn position(&self) -> FilePosition {
        FilePosition {
            path: self.path.clone(),
            md5: self.md5.clone(),
            offset: self.line_pos,
        }
    }

    /// The first-line MD5 of the file being read.
    pub fn md5(&self) -> &str {
        &self.md5
    }

    /// The offset after the last line handed out.
    pub fn offset(&self) -> u64 {
        self.line_pos
    }

    /// Whether the end of the file was reached once: lines from now on are
    /// new ones (fail2ban's `inOperation`).
    pub fn in_operation(&self) -> bool {
        self.in_operation
    }

    /// (device, inode) of the open file, if one is open.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.file.as_ref().map(|_| self.id)
    }

    /// Whether the file with this (device, inode) is open, at the path or
    /// as a rotated file still read.
    pub fn holds(&self, id: (u64, u64)) -> bool {
        self.identity() == Some(id) || self.retiring.iter().any(|r| r.holds(id))
    }

    /// The rotated files closed since the last call: (device, inode) and
    /// the offset reading ended at.
    pub fn take_finished(&mut self) -> Vec<((u64, u64), u64)> {
        std::mem::take(&mut self.finished)
    }

    /// Reads up to `max_lines` complete lines into `out`. Never fails: a
    /// problem with the file is logged once and retried on the next call.
    ///
    /// Lines of a rotated file still read come first; they carry the
    /// position in the file at the path (where a restart resumes).
    pub fn read(&mut self, out: &mut Vec<TailLine>, max_lines: usize) -> ReadStatus {
        if self.read_retiring(out, max_lines) {
            return ReadStatus::More;
        }
        if self.file.is_none() && !self.open() {
            return ReadStatus::Idle;
        }
        if self.check() {
            return ReadStatus::More;
        }
        match self.read_lines(out, max_lines) {
            Ok(true) => ReadStatus::More,
            Ok(false) => {
                self.in_operation = true;
                ReadStatus::Idle
            }
            Err(e) => {
                self.report(Problem::Io(e.to_string()));
                self.file = None;
                ReadStatus::Idle
            }
        }
    }

    fn report(&mut self, p: Problem) {
        if self.problem.as_ref() == Some(&p) {
            return;
        }
        let path = self.path.display();
        match &p {
            Problem::Missing => {
                tracing::warn!(path = %path, "Log absence detected for {path}: no such file; will retry")
            }
            Problem::IsDir => tracing::error!(
                path = %path,
                "Log path {path} is a directory, not a log file; will retry"
            ),
            Problem::NotRegular(kind) => tracing::error!(
                path = %path,
                "Log path {path} is not a regular file but a {kind}: refused, never opened; will look again"
            ),
            Problem::Io(e) => {
                tracing::error!(path = %path, error = %e, "Unable to read {path}: {e}; will retry")
            }
        }
        self.problem = Some(p);
    }

    fn open(&mut self) -> bool {
        let (file, meta) = match open_regular(&self.path) {
            Ok(x) => x,
            Err(p) => {
                // A file missing when we first look is new when it comes:
                // all of it is to be read.
                if p == Problem::Missing && self.start == Some(TailStart::Tail) {
                    self.start = Some(TailStart::Head);
                }
                self.report(p);
                return false;
            }
        };
        let (md5, first_len) = match first_line_md5_len(&file, self.max_line) {
            Ok(m) => m,
            Err(e) => {
                self.report(Problem::Io(e.to_string()));
                return false;
            }
        };
        let size = meta.len();
        let first = self.start.is_some();
        let start = match self.start.take() {
            None | Some(TailStart::Head) => 0,
            Some(TailStart::Tail) => size,
            Some(TailStart::Offset(o)) => {
                if o <= size {
                    o
                } else {
                    0
                }
            }
            Some(TailStart::Saved { md5: saved, offset }) => {
                if saved == md5 && offset <= size {
                    offset
                } else {
                    tracing::info!(
                        path = %self.path.display(),
                        saved_md5 = %saved, md5 = %md5, saved_offset = offset, size,
                        "log file changed since the saved position; reading it from the beginning"
                    );
                    0
                }
            }
        };
        let mut file = file;
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            self.report(Problem::Io(e.to_string()));
            return false;
        }
        if self.problem.take().is_some() {
            tracing::info!(path = %self.path.display(), "Log presence detected for file {}", self.path.display());
        }
        if first {
            tracing::info!(path = %self.path.display(), pos = start, hash = %md5,
                "Added logfile: {:?} (pos = {start}, hash = {md5})", self.path.display().to_string());
        } else {
            tracing::info!(path = %self.path.display(), hash = %md5, "reading new file {} from the beginning", self.path.display());
        }
        self.file = Some(file);
        self.id = (meta.dev(), meta.ino());
        self.md5 = md5;
        self.first_line_len = first_len;
        self.md5_at = Instant::now();
        self.reset_to(start);
        true
    }

    fn reset_to(&mut self, pos: u64) {
        self.buf.clear();
        self.head = 0;
        self.scanned = 0;
        self.long = None;
        self.line_pos = pos;
        self.read_pos = pos;
    }

    /// Compares the open file with what the path names now; true when
    /// the open file was renamed or deleted away (it is then retiring).
    fn check(&mut self) -> bool {
        let Some(file) = self.file.as_ref() else {
            return false;
        };
        let meta = match fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(path = %self.path.display(), error = %e,
                    "Log absence detected (possibly rotation) for {}", self.path.display());
                self.retire();
                return true;
            }
        };
        if (meta.dev(), meta.ino()) != self.id {
            tracing::info!(path = %self.path.display(), old_inode = self.id.1, new_inode = meta.ino(),
                "Log rotation detected for {} (new file)", self.path.display());
            self.retire();
            return true;
        }
        let size = meta.len();
        let mut replaced = size < self.read_pos;
        // Hashing a short first line on every growth is one small pread, and
        // it catches a file truncated and refilled past our offset between
        // two looks; a very long first line is only re-hashed now and then.
        let cheap = self.first_line_len < CHEAP_FIRST_LINE;
        if !replaced
            && size > self.read_pos
            && (self.md5.is_empty() || cheap || self.md5_at.elapsed() >= MD5_RECHECK)
        {
            if let Ok((md5, len)) = first_line_md5_len(file, self.max_line) {
                self.md5_at = Instant::now();
                self.first_line_len = len;
                if !self.md5.is_empty() && md5 != self.md5 {
                    replaced = true;
                }
                self.md5 = md5;
            }
        }
        if replaced {
            tracing::info!(path = %self.path.display(), size, pos = self.read_pos,
                "Log rotation detected for {} (truncated or replaced in place)", self.path.display());
            let file = self.file.as_mut().expect("checked above");
            if let Err(e) = file.seek(SeekFrom::Start(0)) {
                self.report(Problem::Io(e.to_string()));
                self.file = None;
                return false;
            }
            (self.md5, self.first_line_len) =
                first_line_md5_len(file, self.max_line).unwrap_or_default();
            self.md5_at = Instant::now();
            self.reset_to(0);
        }
        false
    }

    /// Moves the open file to the retiring ones: it is read on while its
    /// writer still writes into it, and the path is opened anew. Until the
    /// new file is open, the position stays the old file's.
    fn retire(&mut self) {
        let mut fresh = FileTail::new(self.path.clone(), TailStart::Head, self.encoding)
            .with_max_line(self.max_line)
            .with_rotated_grace(self.grace);
        fresh.start = None;
        let mut old = std::mem::replace(self, fresh);
        self.retiring = std::mem::take(&mut old.retiring);
        self.finished = std::mem::take(&mut old.finished);
        self.in_operation = old.in_operation;
        self.decode_warned = old.decode_warned;
        self.md5 = old.md5.clone();
        self.line_pos = old.line_pos;
        self.read_pos = old.line_pos;
        old.grew_at = Instant::now();
        self.retiring.push(old);
    }

    /// Reads the retiring files, oldest first, and closes those quiet for
    /// [`ROTATED_GRACE`]; true when it handed out lines (so that a batch
    /// holds lines of one file only).
    fn read_retiring(&mut self, out: &mut Vec<TailLine>, max_lines: usize) -> bool {
        let before = out.len();
        let mut i = 0;
        while i < self.retiring.len() && out.len() == before {
            let old = &mut self.retiring[i];
            let was = old.read_pos;
            let done = match old.read_lines(out, max_lines) {
                Ok(_) => {
                    if old.read_pos != was {
                        old.grew_at = Instant::now();
                    }
                    old.grew_at.elapsed() >= old.grace
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e,
                        "Unable to read the rotated file of {}: {e}", self.path.display());
                    true
                }
            };
            if !done || out.len() > before {
                i += 1;
                continue;
            }
            let mut old = self.retiring.remove(i);
            old.flush_partial(out);
            tracing::debug!(path = %self.path.display(), offset = old.line_pos,
                "finished reading the rotated file");
            self.finished.push((old.id, old.line_pos));
        }
        for l in &mut out[before..] {
            l.end = self.line_pos;
        }
        out.len() > before
    }

    /// Hands out complete lines until `max_lines` (returns true) or the end
    /// of the file (returns false).
    fn read_lines(&mut self, out: &mut Vec<TailLine>, max_lines: usize) -> io::Result<bool> {
        let mut count = 0;
        loop {
            while count < max_lines {
                let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..]) else {
                    self.scanned = self.buf.len();
                    break;
                };
                let nl = self.scanned + i;
                let end;
                if let Some((long, dropped)) = self.long.take() {
                    let dropped = dropped + (nl - self.head) as u64;
                    end = self.line_pos + long.len() as u64 + dropped + 1;
                    tracing::warn!(path = %self.path.display(), kept = long.len(), dropped,
                        "line longer than {} bytes in {}: truncated", self.max_line, self.path.display());
                    self.emit(&long, end, out);
                } else {
                    end = self.line_pos + (nl - self.head) as u64 + 1;
                    if self.line_pos == 0 && self.md5.is_empty() && nl - self.head < self.max_line {
                        // The file was empty when it was opened: the first
                        // line is handed out now, so its md5 must be known
                        // now, or the saved position would not match the
                        // file at the next start and it would be read again.
                        self.md5 = hex(&Md5::digest(&self.buf[self.head..=nl]));
                        self.first_line_len = nl - self.head + 1;
                        self.md5_at = Instant::now();
                    }
                    let (head, buf) = (self.head, std::mem::take(&mut self.buf));
                    self.emit(&buf[head..nl], end, out);
                    self.buf = buf;
                }
                self.line_pos = end;
                self.head = nl + 1;
                self.scanned = self.head;
                count += 1;
            }
            if count >= max_lines {
                return Ok(true);
            }
            self.bound_partial();
            if self.head > 0 {
                self.buf.copy_within(self.head.., 0);
                self.buf.truncate(self.buf.len() - self.head);
                self.scanned -= self.head;
                self.head = 0;
            }
            let Some(file) = self.file.as_mut() else {
                return Ok(false);
            };
            let old = self.buf.len();
            self.buf.resize(old + CHUNK, 0);
            let n = loop {
                match file.read(&mut self.buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                // Caught up: give the read buffer back while the log is
                // quiet (most of a daemon's logs are, most of the time).
                self.buf.shrink_to_fit();
                return Ok(false);
            }
            self.read_pos += n as u64;
        }
    }

    // Keeps the unfinished line within max_line bytes.
    fn bound_partial(&mut self) {
        let partial = self.buf.len() - self.head;
        if let Some((_, dropped)) = self.long.as_mut() {
            *dropped += partial as u64;
            self.buf.truncate(self.head);
            self.scanned = self.head;
        } else if partial > self.max_line {
            let cut = self.cut_point(&self.buf[self.head..]);
            let kept = self.buf[self.head..self.head + cut].to_vec();
            self.long = Some((kept, (partial - cut) as u64));
            self.buf.truncate(self.head);
            self.scanned = self.head;
        }
    }

    // The last line of a rotated file, which will never get its newline.
    fn flush_partial(&mut self, out: &mut Vec<TailLine>) {
        let partial = (self.buf.len() - self.head) as u64;
        if let Some((long, dropped)) = self.long.take() {
            let end = self.line_pos + long.len() as u64 + dropped + partial;
            self.emit(&long, end, out);
            self.line_pos = end;
        } else if partial > 0 {
            let end = self.line_pos + partial;
            let (head, buf) = (self.head, std::mem::take(&mut self.buf));
            self.emit(&buf[head..], end, out);
            self.buf = buf;
            self.line_pos = end;
        }
        self.buf.clear();
        self.head = 0;
        self.scanned = 0;
    }

    // Where to cut a line longer than max_line: at a UTF-8 character
    // boundary, so the kept text decodes cleanly.
    fn cut_point(&self, bytes: &[u8]) -> usize {
        let mut cut = self.max_line.min(bytes.len());
        if self.encoding == LogEncoding::UTF8 && cut < bytes.len() {
            let lim = cut.saturating_sub(3);
            while cut > lim && bytes[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
        }
        cut
    }

    fn emit(&mut self, mut bytes: &[u8], end: u64, out: &mut Vec<TailLine>) {
        if bytes.len() > self.max_line {
            tracing::warn!(path = %self.path.display(), len = bytes.len(),
                "line longer than {} bytes in {}: truncated", self.max_line, self.path.display());
            bytes = &bytes[..self.cut_point(bytes)];
        }
        while let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        let (text, bad) = self.encoding.decode(bytes);
        if bad && !self.decode_warned {
            self.decode_warned = true;
            tracing::warn!(path = %self.path.display(), encoding = self.encoding.name(),
                "Error decoding line from '{}' with '{}'. Consider setting logencoding to appropriate encoding for this jail. Continuing to process line ignoring invalid characters",
                self.path.display(), self.encoding.name());
        }
        out.push(TailLine {
            text: text.into_owned(),
            end,
        });
    }
}

/// Opens the log at `path` for reading if it is a regular file.
///
/// Whoever can write into a followed log's directory can put anything at
/// its path. The type is looked at before opening, since opening a FIFO
/// blocks until a writer comes (the one thread that reads every jail's
/// logs with it) and opening a device can act on it (a tape rewinds, a
/// terminal becomes ours). The path can change between the look and the
/// open, so the open cannot block either (O_NONBLOCK) nor take a
/// terminal (O_NOCTTY), and what was opened is looked at again.
fn open_regular(path: &Path) -> Result<(File, Metadata), Problem> {
    let io_problem = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => Problem::Missing,
        _ => Problem::Io(e.to_string()),
    };
    regular(&fs::metadata(path).map_err(io_problem)?)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_problem)?;
    let meta = file.metadata().map_err(io_problem)?;
    regular(&meta)?;
    crate::untrusted_file::clear_nonblocking(&file).map_err(io_problem)?;
    Ok((file, meta))
}

/// Refuses what is not a regular file, naming what it is.
fn regular(meta: &Metadata) -> Result<(), Problem> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    if t.is_dir() {
        return Err(Problem::IsDir);
    }
    Err(Problem::NotRegular(crate::untrusted_file::kind(t)))
}

/// Hex MD5 of the first line (newline included), or empty when there is no
/// complete first line yet. A first line longer than `limit` is hashed on
/// its first `limit` bytes. Reads with pread: the file offset is untouched.
/// Also returns how many bytes were hashed.
fn first_line_md5_len(file: &File, limit: usize) -> io::Result<(String, usize)> {
    let mut hasher = Md5::new();
    let mut buf = [0u8; 8192];
    let mut off = 0usize;
    while off < limit {
        let want = buf.len().min(limit - off);
        let n = match file.read_at(&mut buf[..want], off as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((String::new(), off));
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            hasher.update(&buf[..=i]);
            return Ok((hex(&hasher.finalize()), off + i + 1));
        }
        hasher.update(&buf[..n]);
        off += n;
    }
    Ok((hex(&hasher.finalize()), off))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, data: &[u8]) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(data).unwrap();
    }

    fn read_all(t: &mut FileTail) -> Vec<TailLine> {
        let mut out = Vec::new();
        while t.read(&mut out, 3) == ReadStatus::More {}
        out
    }

    fn texts(v: &[TailLine]) -> Vec<&str> {
        v.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn md5_of_first_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        fs::write(&p, b"abc").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(first_line_md5_len(&f, 1 << 20).unwrap().0, "");
        fs::write(&p, b"abc\ndef\n").unwrap();
        // md5("abc\n")
        assert_eq!(
            first_line_md5_len(&f, 1 << 20).unwrap().0,
            "0bee89b07a248e27c83fc3d5951213c1"
        );
    }

    #[test]
    fn partial_lines_wait_and_crlf() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        fs::write(&p, b"one\r\ntw").unwrap();
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8);
        let out = read_all(&mut t);
        assert_eq!(texts(&out), ["one"]);
        assert_eq!(out[0].end, 5);
        assert_eq!(t.offset(), 5);
        assert!(t.in_operation());
        append(&p, b"o\r\r\nthree\n");
        let out = read_all(&mut t);
        assert_eq!(texts(&out), ["two", "three"]);
        assert_eq!(t.offset(), 17);
    }

    #[test]
    fn long_line_truncated_and_next_line_intact() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut data = vec![b'x'; 300_000];
        data.extend_from_slice(b"\nshort\n");
        fs::write(&p, &data).unwrap();
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8).with_max_line(1000);
        let out = read_all(&mut t);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text.len(), 1000);
        assert_eq!(out[0].end, 300_001);
        assert_eq!(out[1].text, "short");
        assert_eq!(out[1].end, data.len() as u64);
    }

    #[test]
    fn truncation_cuts_at_char_boundary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut data = "é".repeat(600).into_bytes();
        data.push(b'\n');
        fs::write(&p, &data).unwrap();
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8).with_max_line(1001);
        let out = read_all(&mut t);
        assert_eq!(out[0].text, "é".repeat(500));
    }

    #[test]
    fn saved_position_checked_by_md5() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        fs::write(&p, b"first\nsecond\nthird\n").unwrap();
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8);
        let mut out = Vec::new();
        t.read(&mut out, 2);
        let pos = t.position();
        assert_eq!(pos.offset, 13);
        let mut t = FileTail::new(
            &p,
            TailStart::Saved {
                md5: pos.md5.clone(),
                offset: pos.offset,
            },
            LogEncoding::UTF8,
        );
        assert_eq!(texts(&read_all(&mut t)), ["third"]);
        fs::write(&p, b"other\nsecond\nthird\nfourth\n").unwrap();
        let mut t = FileTail::new(
            &p,
            TailStart::Saved {
                md5: pos.md5,
                offset: pos.offset,
            },
            LogEncoding::UTF8,
        );
        assert_eq!(read_all(&mut t).len(), 4);
    }

    #[test]
    fn tail_start_and_missing_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut t = FileTail::new(&p, TailStart::Tail, LogEncoding::UTF8);
        assert!(read_all(&mut t).is_empty());
        fs::write(&p, b"first\n").unwrap();
        // Missing when we first looked: everything in it is new.
        assert_eq!(texts(&read_all(&mut t)), ["first"]);
        let q = d.path().join("b.log");
        fs::write(&q, b"old\n").unwrap();
        let mut t = FileTail::new(&q, TailStart::Tail, LogEncoding::UTF8);
        // There when we first looked: "old" is skipped.
        assert!(read_all(&mut t).is_empty());
        append(&q, b"new\n");
        assert_eq!(texts(&read_all(&mut t)), ["new"]);
    }

    #[test]
    fn rename_rotation_drains_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        fs::write(&p, b"a1\n").unwrap();
        // No grace: the last line, which will never get its newline, is
        // handed out at once.
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8)
            .with_rotated_grace(Duration::ZERO);
        assert_eq!(texts(&read_all(&mut t)), ["a1"]);
        append(&p, b"a2\na3");
        fs::rename(&p, d.path().join("a.log.1")).unwrap();
        fs::write(&p, b"b1\n").unwrap();
        assert_eq!(texts(&read_all(&mut t)), ["a2", "a3", "b1"]);
        assert_eq!(t.offset(), 3);
    }

    /// A writer that goes on writing into the renamed file (until it
    /// reopens the path) is read too, until the file is quiet for the
    /// grace period; positions stay those of the file at the path.
    #[test]
    fn rotated_file_read_until_quiet() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let old = d.path().join("a.log.1");
        fs::write(&p, b"a1\n").unwrap();
        let grace = Duration::from_millis(300);
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8).with_rotated_grace(grace);
        assert_eq!(texts(&read_all(&mut t)), ["a1"]);
        fs::rename(&p, &old).unwrap();
        fs::write(&p, b"b1\n").unwrap();
        assert_eq!(texts(&read_all(&mut t)), ["b1"]);
        append(&old, b"a2\n");
        let out = read_all(&mut t);
        assert_eq!(texts(&out), ["a2"]);
        assert_eq!(out[0].end, 3, "the position in the file at the path");
        assert_eq!(t.offset(), 3);
        let id = fs::metadata(&old).unwrap();
        assert!(t.holds((id.dev(), id.ino())));
        assert!(t.take_finished().is_empty());
        std::thread::sleep(grace + Duration::from_millis(50));
        append(&p, b"b2\n");
        assert_eq!(texts(&read_all(&mut t)), ["b2"]);
        assert_eq!(t.take_finished(), [((id.dev(), id.ino()), 6)]);
        assert!(!t.holds((id.dev(), id.ino())));
        append(&old, b"a3\n");
        assert!(read_all(&mut t).is_empty(), "closed once quiet");
    }

    #[test]
    fn copytruncate_restarts_at_zero() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        fs::write(&p, b"line one\nline two\n").unwrap();
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8);
        assert_eq!(read_all(&mut t).len(), 2);
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, b"x\n");
        assert_eq!(texts(&read_all(&mut t)), ["x"]);
    }

    #[test]
    fn directory_is_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        fs::create_dir(&p).unwrap();
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8);
        assert!(read_all(&mut t).is_empty());
        fs::remove_dir(&p).unwrap();
        fs::write(&p, b"ok\n").unwrap();
        assert_eq!(texts(&read_all(&mut t)), ["ok"]);
    }

    /// A FIFO (nobody writing) and a character device are refused without
    /// being waited on; a file put back in their place is read.
    #[test]
    fn fifo_and_device_are_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut t = FileTail::new(&p, TailStart::Head, LogEncoding::UTF8);
        let started = Instant::now();
        assert!(read_all(&mut t).is_empty());
        assert_eq!(t.problem, Some(Problem::NotRegular("FIFO")));
        assert!(started.elapsed() < Duration::from_secs(1));
        let mut dev = FileTail::new("/dev/zero", TailStart::Head, LogEncoding::UTF8);
        assert!(read_all(&mut dev).is_empty());
        assert_eq!(dev.problem, Some(Problem::NotRegular("character device")));
        fs::remove_file(&p).unwrap();
        fs::write(&p, b"ok\n").unwrap();
        assert_eq!(texts(&read_all(&mut t)), ["ok"]);
    }
}
