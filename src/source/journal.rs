//! The systemd journal as a source (`backend = systemd`): journalmatch with
//! `+` for OR, journalflags, journalfiles, journalpath, a start position
//! (cursor, time, head or tail), and each entry formatted into a line plus
//! its time exactly as fail2ban's systemd backend does.
//!
//! Runtime dependency only: `libsystemd.so.0` (Debian package libsystemd0),
//! loaded when a journal source starts; nothing is needed to build.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::journal_entries::Entries;
use super::sdjournal::{Journal, Wake};
use super::{LogEncoding, SourceError, DEFAULT_MAX_LINE};

// fail2ban opens the system journal only (SD_JOURNAL_SYSTEM) unless told
// otherwise, so that many user journals do not exhaust file descriptors.
const SD_JOURNAL_SYSTEM: i32 = 4;

// How long one sd_journal_wait lasts: the bound on noticing a stop request.
const WAIT_USEC: u64 = 200_000;

/// Where a journal source starts.
#[derive(Clone, Debug, PartialEq)]
pub enum JournalStart {
    /// The oldest entry.
    Head,
    /// Only entries added from now on.
    Tail,
    /// Entries at or after this time (seconds since the epoch); fail2ban
    /// starts at max(saved time, now - findtime).
    Time(f64),
    /// The entry after the one this cursor names (the last one processed).
    /// If the journal no longer has it, the nearest entry after its place.
    Cursor(String),
}

/// Everything a [`JournalSource`] needs.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// The jail's name, for logs.
    pub jail: String,
    /// Each `journalmatch` value as words, e.g. `["_SYSTEMD_UNIT=sshd.service",
    /// "+", "_COMM=sshd"]`: words are ANDed, `+` starts an OR'ed group, and
    /// separate values are OR'ed.
    pub matches: Vec<Vec<String>>,
    /// `journalflags` (sd_journal_open flags); default SYSTEM only (4), or
    /// 0 with journalfiles/journalpath.
    pub flags: Option<i32>,
    /// `journalfiles`: journal files or glob patterns.
    pub files: Vec<String>,
    /// `journalpath`: a directory of journal files.
    pub path: Option<String>,
    /// `namespace`: a journal namespace.
    pub namespace: Option<String>,
    /// fail2ban 1.1.1's `rotated`: whether rotated (archived) journal files
    /// are opened too; without journalfiles or a namespace, only the
    /// current files are when it is off (the default).
    pub rotated: bool,
    /// Where to start.
    pub start: JournalStart,
    /// `logencoding`, for fields that are not UTF-8.
    pub encoding: LogEncoding,
    /// Longest line kept whole (longer ones are truncated).
    pub max_line_len: usize,
    /// Most lines in one batch.
    pub batch_lines: usize,
    /// Batches the channel holds before the reader waits.
    pub channel_batches: usize,
    /// Whether to wait for new entries at the end (a jail), or to stop
    /// there and close the channel (fail3ban-regex).
    pub follow: bool,
    /// Whether journal files opened by name (journalfiles, or the current
    /// files when rotated ones are left out) are read without libsystemd
    /// when they can be (the default); libsystemd reads them otherwise.
    pub native: bool,
}

impl JournalOptions {
    /// Defaults: the system journal, no match, from the tail.
    pub fn new(jail: impl Into<String>) -> JournalOptions {
        JournalOptions {
            jail: jail.into(),
            matches: Vec::new(),
            flags: None,
            files: Vec::new(),
            path: None,
            namespace: None,
            rotated: false,
            start: JournalStart::Tail,
            encoding: LogEncoding::UTF8,
            max_line_len: DEFAULT_MAX_LINE,
            batch_lines: 1024,
            channel_batches: 8,
            follow: true,
            native: true,
        }
    }
}

/// The fields of a journal entry that make its line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalEntry {
    /// `_HOSTNAME`.
    pub hostname: Option<Vec<u8>>,
    /// `SYSLOG_IDENTIFIER`.
    pub syslog_identifier: Option<Vec<u8>>,
    /// `_COMM`.
    pub comm: Option<Vec<u8>>,
    /// `SYSLOG_PID`.
    pub syslog_pid: Option<Vec<u8>>,
    /// `_PID`.
    pub pid: Option<Vec<u8>>,
    /// Every `MESSAGE` value (an entry may have several).
    pub messages: Vec<Vec<u8>>,
    /// `_SOURCE_REALTIME_TIMESTAMP` (µs, as text).
    pub source_realtime: Option<Vec<u8>>,
    /// `_SOURCE_MONOTONIC_TIMESTAMP` (µs, as text).
    pub source_monotonic: Option<Vec<u8>>,
    /// The entry's realtime timestamp (µs).
    pub realtime_usec: u64,
    /// The entry's monotonic timestamp (µs).
    pub monotonic_usec: u64,
    /// The entry's cursor.
    pub cursor: String,
}

impl JournalEntry {
    /// Records one `FIELD=value` datum; the first value of a field wins,
    /// except MESSAGE, whose values are all kept.
    pub fn add_field(&mut self, datum: &[u8]) {
        let Some((field, value)) = Field::of(datum) else {
            return;
        };
        let slot = match field {
            Field::Message => {
                self.messages.push(value.to_vec());
                return;
            }
            Field::Hostname => &mut self.hostname,
            Field::SyslogIdentifier => &mut self.syslog_identifier,
            Field::Comm => &mut self.comm,
            Field::SyslogPid => &mut self.syslog_pid,
            Field::Pid => &mut self.pid,
            Field::SourceRealtime => &mut self.source_realtime,
            Field::SourceMonotonic => &mut self.source_monotonic,
        };
        if slot.is_none() {
            *slot = Some(value.to_vec());
        }
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            slots: [
                self.hostname.as_deref(),
                self.syslog_identifier.as_deref(),
                self.comm.as_deref(),
                self.syslog_pid.as_deref(),
                self.pid.as_deref(),
                self.source_realtime.as_deref(),
                self.source_monotonic.as_deref(),
            ],
            realtime_usec: self.realtime_usec,
        }
    }
}

/// The fields a line is made of; the discriminant indexes [`Fields::slots`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Hostname,
    SyslogIdentifier,
    Comm,
    SyslogPid,
    Pid,
    SourceRealtime,
    SourceMonotonic,
    Message,
}

const SLOTS: usize = Field::Message as usize;

impl Field {
    /// Splits `FIELD=value` and names the field, if a line needs it.
    fn of(datum: &[u8]) -> Option<(Field, &[u8])> {
        let eq = memchr::memchr(b'=', datum)?;
        let field = match &datum[..eq] {
            b"MESSAGE" => Field::Message,
            b"_HOSTNAME" => Field::Hostname,
            b"SYSLOG_IDENTIFIER" => Field::SyslogIdentifier,
            b"_COMM" => Field::Comm,
            b"SYSLOG_PID" => Field::SyslogPid,
            b"_PID" => Field::Pid,
            b"_SOURCE_REALTIME_TIMESTAMP" => Field::SourceRealtime,
            b"_SOURCE_MONOTONIC_TIMESTAMP" => Field::SourceMonotonic,
            _ => return None,
        };
        Some((field, &datum[eq + 1..]))
    }
}

/// An entry's fields, borrowed from a [`JournalEntry`] or from the
/// reader's scratch buffer (MESSAGE values are passed beside).
struct Fields<'a> {
    slots: [Option<&'a [u8]>; SLOTS],
    realtime_usec: u64,
}

impl<'a> Fields<'a> {
    fn get(&self, f: Field) -> Option<&'a [u8]> {
        self.slots[f as usize]
    }
}

/// The reader's copy of the current entry's fields: one buffer reused from
/// entry to entry, so reading an entry allocates nothing.
#[derive(Default)]
struct Scratch {
    buf: Vec<u8>,
    slots: [Option<(usize, usize)>; SLOTS],
    messages: Vec<(usize, usize)>,
}

impl Scratch {
    fn clear(&mut self) {
        self.buf.clear();
        self.slots = [None; SLOTS];
        self.messages.clear();
    }

    /// As [`JournalEntry::add_field`].
    fn add(&mut self, datum: &[u8]) {
        let Some((field, value)) = Field::of(datum) else {
            return;
        };
        let at = (self.buf.len(), self.buf.len() + value.len());
        if field == Field::Message {
            self.messages.push(at);
        } else if self.slots[field as usize].is_none() {
            self.slots[field as usize] = Some(at);
        } else {
            return;
        }
        self.buf.extend_from_slice(value);
    }

    fn fields(&self, realtime_usec: u64) -> Fields<'_> {
        Fields {
            slots: self.slots.map(|s| s.map(|(a, b)| &self.buf[a..b])),
            realtime_usec,
        }
    }

    fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.messages.iter().map(|&(a, b)| &self.buf[a..b])
    }
}

/// One journal entry as a line: what fail2ban's filter sees for it.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalLine {
    /// The entry's time in ISO 8601 with the local UTC offset the process
    /// started with (as python-systemd gives it to fail2ban), followed by a
    /// space: the date part of fail2ban's line tuple.
    pub date_text: String,
    /// `HOST IDENT[PID]: MESSAGE`, newlines written as `\n`.
    pub text: String,
    /// The entry's time, seconds since the epoch.
    pub time: f64,
    /// The entry's cursor. A [`JournalSource`] sets it on the last line of
    /// each batch only (the others' is empty): formatting a cursor costs
    /// more than formatting the line, and only a batch's end is kept.
    pub cursor: String,
}

/// Where reading the journal stands: the last entry handed out.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalPosition {
    /// Its cursor (start again with [`JournalStart::Cursor`]).
    pub cursor: String,
    /// Its time (fail2ban keeps this one).
    pub time: f64,
}

/// Journal lines in order.
#[derive(Clone, Debug)]
pub struct JournalBatch {
    /// The lines.
    pub lines: Vec<JournalLine>,
    /// Whether they were read after the end of the journal was first
    /// reached (fail2ban's `inOperation`).
    pub in_operation: bool,
}

impl JournalBatch {
    /// The position after the batch.
    pub fn position(&self) -> Option<JournalPosition> {
        self.lines
            .last()
            .filter(|l| !l.cursor.is_empty())
            .map(|l| JournalPosition {
                cursor: l.cursor.clone(),
                time: l.time,
            })
    }
}

// Python's int() on a field: surrounding whitespace allowed, `_` between
// digits allowed, no base prefix.
fn py_int(v: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    s.replace('_', "").parse().ok()
}

// Python's repr() of bytes, which fail2ban prints for a PID that is not a
// number.
fn py_bytes_repr(v: &[u8]) -> String {
    let quote = if v.contains(&b'\'') && !v.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut s = String::from("b");
    s.push(quote as char);
    for &c in v {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if c == quote => {
                s.push('\\');
                s.push(c as char);
            }
            0x20..=0x7e => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(quote as char);
    s
}

// The local UTC offset when first asked, in seconds: python-systemd
// (235, Debian 12) converts journal times with the offset the process
// started with, for every entry, and fail2ban prints that.
fn startup_offset() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as libc::time_t;
        // SAFETY: localtime_r writes into the zeroed tm we own.
        let tm = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            libc::localtime_r(&now, &mut tm);
            tm
        };
        tm.tm_gmtoff as i64
    })
}

// Days since 1970-01-01 to a civil date (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `usec` as Python's `datetime.isoformat()` writes an aware datetime in
/// a fixed UTC offset: microseconds only when not zero, then `+HH:MM`.
#[cfg(test)]
fn iso_with_offset(usec: u64, offset: i64) -> String {
    let mut s = String::new();
    push_iso(&mut s, usec, offset);
    s
}

fn push_iso(s: &mut String, usec: u64, offset: i64) {
    use std::fmt::Write;
    let secs = (usec / 1_000_000) as i64 + offset;
    let micros = usec % 1_000_000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if micros != 0 {
        let _ = write!(s, ".{micros:06}");
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let off = offset.abs();
    let _ = write!(s, "{sign}{:02}:{:02}", off / 3600, off % 3600 / 60);
    if off % 60 != 0 {
        let _ = write!(s, ":{:02}", off % 60);
    }
}

// Appends `v`, with newlines written as `\n` (fail2ban escapes the whole
// line).
fn push_escaped(out: &mut String, v: &str) {
    let mut rest = v;
    while let Some(i) = memchr::memchr(b'\n', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        out.push_str("\\n");
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

// Appends the PID fail2ban prints for a SYSLOG_PID or _PID value, or returns
// false when it prints none (empty, or zero: Python's int() made 0 falsy).
fn push_pid(out: &mut String, v: &[u8]) -> bool {
    // Plain decimal without a leading zero prints as it is.
    if !v.is_empty() && v[0] != b'0' && v.len() < 39 && v.iter().all(u8::is_ascii_digit) {
        out.push('[');
        // Checked just above: ASCII digits.
        out.push_str(std::str::from_utf8(v).unwrap_or_default());
        out.push(']');
        return true;
    }
    let pid = match py_int(v) {
        Some(0) => return false,
        Some(n) => n.to_string(),
        None if v.is_empty() => return false,
        None => py_bytes_repr(v),
    };
    out.push('[');
    out.push_str(&pid);
    out.push(']');
    true
}

/// Formats an entry as fail2ban's `formatJournalEntry`: `HOST`, then
/// `IDENT[PID]:` (SYSLOG_IDENTIFIER or _COMM, SYSLOG_PID or _PID), then for
/// the kernel its monotonic time as `[%12.6f]`, then MESSAGE (values joined
/// by a space); the time is `_SOURCE_REALTIME_TIMESTAMP` or the entry's own.
pub fn format_entry(e: &JournalEntry, enc: LogEncoding) -> JournalLine {
    let messages = e.messages.iter().map(Vec::as_slice);
    let (date_text, text, time) = format_fields(&e.fields(), messages, || e.monotonic_usec, enc);
    JournalLine {
        date_text,
        text,
        time,
        cursor: e.cursor.clone(),
    }
}

/// [`format_entry`] on borrowed fields: the date text, the line and the
/// time. `monotonic` is asked only for a kernel line without
/// `_SOURCE_MONOTONIC_TIMESTAMP`.
fn format_fields<'m>(
    f: &Fields<'_>,
    messages: impl Iterator<Item = &'m [u8]>,
    monotonic: impl FnOnce() -> u64,
    enc: LogEncoding,
) -> (String, String, f64) {
    let mut text = String::with_capacity(160);
    if let Some(h) = f.get(Field::Hostname).filter(|h| !h.is_empty()) {
        push_escaped(&mut text, &enc.decode_utf8_first(h));
    }
    let ident = f
        .get(Field::SyslogIdentifier)
        .filter(|v| !v.is_empty())
        .or_else(|| f.get(Field::Comm));
    if let Some(ident) = ident.filter(|v| !v.is_empty()) {
        if !text.is_empty() {
            text.push(' ');
        }
        let tag_at = text.len();
        push_escaped(&mut text, &enc.decode_utf8_first(ident));
        let syslog_pid = f.get(Field::SyslogPid);
        if !syslog_pid.is_some_and(|v| push_pid(&mut text, v)) {
            if let Some(v) = f.get(Field::Pid) {
                push_pid(&mut text, v);
            }
        }
        text.push(':');
        if &text[tag_at..] == "kernel:" {
            let mono = f
                .get(Field::SourceMonotonic)
                .and_then(py_int)
                .map(|v| v as f64)
                .unwrap_or_else(|| monotonic() as f64);
            use std::fmt::Write;
            let _ = write!(text, " [{:12.6}]", mono / 1e6);
        }
    }
    // MESSAGE always makes a part, even empty, so a tag is followed by a space.
    if ident.is_some_and(|v| !v.is_empty()) || f.get(Field::Hostname).is_some_and(|h| !h.is_empty())
    {
        text.push(' ');
    }
    for (i, m) in messages.enumerate() {
        if i > 0 {
            text.push(' ');
        }
        push_escaped(&mut text, &enc.decode_utf8_first(m));
    }
    let usec = f
        .get(Field::SourceRealtime)
        .and_then(py_int)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(f.realtime_usec);
    let mut date_text = String::with_capacity(34);
    push_iso(&mut date_text, usec, startup_offset());
    date_text.push(' ');
    let time = (usec / 1_000_000) as f64 + (usec % 1_000_000) as f64 / 1e6;
    (date_text, text, time)
}

/// Reads the journal on a thread of its own; batches arrive through
/// [`next`](Self::next).
#[derive(Debug)]
pub struct JournalSource {
    rx: mpsc::Receiver<JournalBatch>,
    native: bool,
    position: Option<JournalPosition>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl JournalSource {
    /// Opens the journal, adds the matches and seeks; errors here (no
    /// libsystemd, a bad match, journalfiles matching nothing) are returned.
    pub fn spawn(opts: JournalOptions) -> Result<JournalSource, SourceError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(opts.channel_batches.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("f3b-journal-{}", opts.jail))
            .spawn(move || {
                let span = tracing::info_span!("jail", jail = %opts.jail);
                let _g = span.enter();
                match Reader::open(&opts) {
                    Ok(r) => {
                        let _ = ready_tx.send(Ok(r.j.is_native()));
                        r.run(&opts, tx, &stop2);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|source| SourceError::Thread {
                what: "journal",
                source,
            })?;
        let native = match ready_rx.recv() {
            Ok(Ok(native)) => native,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                return Err(SourceError::JournalUnavailable(
                    "journal reader thread died while opening".into(),
                ))
            }
        };
        Ok(JournalSource {
            rx,
            native,
            position: None,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the journal is read without libsystemd (see
    /// [`JournalOptions::native`]).
    pub fn is_native(&self) -> bool {
        self.native
    }

    /// The next batch; `None` once the source has stopped.
    pub async fn next(&mut self) -> Option<JournalBatch> {
        let b = self.rx.recv().await?;
        if let Some(p) = b.position() {
            self.position = Some(p);
        }
        Some(b)
    }

    /// The position after the last batch handed out, to persist once it is
    /// processed.
    pub fn position(&self) -> Option<&JournalPosition> {
        self.position.as_ref()
    }

    /// Stops the reader and waits for its thread; returns the position after
    /// the last batch handed out.
    pub async fn stop(mut self) -> Option<JournalPosition> {
        self.stop.store(true, Ordering::SeqCst);
        self.rx.close();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        self.position.take()
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Reader {
    j: Entries,
    skip_cursor: Option<String>,
    // The entry under the read position has not been handed out yet.
    current_pending: bool,
    in_operation: bool,
    // The current files opened by name when rotated ones are left out
    // (see journal_files): a change in them reopens the journal.
    listed: Option<Vec<(std::path::PathBuf, u64)>>,
    // The listing a reopen last failed on, so that it is logged once.
    reopen_failed: Option<Vec<(std::path::PathBuf, u64)>>,
}

impl Reader {
    fn open(opts: &JournalOptions) -> Result<Reader, SourceError> {
        let mut files: Vec<String> = Vec::new();
        for pat in &opts.files {
            match glob::glob(pat) {
                Ok(paths) => files.extend(
                    paths
                        .filter_map(Result::ok)
                        .map(|p| p.to_string_lossy().into_owned()),
                ),
                Err(_) => files.push(pat.clone()),
            }
        }
        files.sort();
        files.dedup();
        if !opts.files.is_empty() && files.is_empty() {
            return Err(SourceError::NoJournalFiles(opts.files.clone()));
        }
        let given = !files.is_empty() || opts.path.as_deref().is_some_and(|p| !p.is_empty());
        let flags = opts
            .flags
            .unwrap_or(if given { 0 } else { SD_JOURNAL_SYSTEM });
        let path = opts.path.as_deref().filter(|p| !p.is_empty());
        let listed = (files.is_empty() && !opts.rotated && opts.namespace.is_none())
            .then(|| listing(opts))
            .filter(|l| !l.is_empty());
        // The files opened by name, which the native reader can read.
        let mut named: Vec<std::path::PathBuf> = Vec::new();
        let mut j = if let Some(l) = &listed {
            named = l.iter().map(|(p, _)| p.clone()).collect();
            let names: Vec<String> = l
                .iter()
                .map(|(p, _)| p.to_string_lossy().into_owned())
                .collect();
            Journal::open_files(&names, 0)?
        } else if let Some(p) = path {
            Journal::open_directory(p, flags)?
        } else if !files.is_empty() {
            named = files.iter().map(std::path::PathBuf::from).collect();
            Journal::open_files(&files, flags)?
        } else if let Some(ns) = &opts.namespace {
            Journal::open_namespace(ns, flags)?
        } else {
            Journal::open(flags)?
        };
        j.set_data_threshold(opts.max_line_len)?;
        add_matches(&mut j, &opts.matches)?;
        let j = if opts.native && !named.is_empty() {
            let groups: Vec<Vec<String>> = opts
                .matches
                .iter()
                .flat_map(|m| m.split(|w| w == "+").map(<[String]>::to_vec))
                .collect();
            Entries::native(j, &named, &groups, opts.max_line_len)
        } else {
            Entries::sd(j)
        };
        if opts.matches.is_empty() {
            tracing::info!("Jail started without 'journalmatch' set. Jail regexs will be checked against all journal entries, which is not advised for performance reasons.");
        }
        let mut r = Reader {
            j,
            skip_cursor: None,
            current_pending: false,
            in_operation: false,
            listed,
            reopen_failed: None,
        };
        r.seek(&opts.start)?;
        Ok(r)
    }

    fn seek(&mut self, start: &JournalStart) -> Result<(), SourceError> {
        match start {
            JournalStart::Head => self.j.seek_head()?,
            JournalStart::Tail => {
                self.in_operation = true;
                self.j.seek_tail()?;
                if !self.j.previous()? {
                    // An empty journal: seek_tail then next can skip the
                    // first entries written later; seek to now instead.
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    self.j.seek_realtime_usec(now.as_micros() as u64)?;
                }
            }
            JournalStart::Time(t) => {
                let usec = (t.max(0.0) * 1e6) as u64;
                self.j.seek_realtime_usec(usec)?;
                // Step back so that a time past the end does not leave us in
                // dead space (fail2ban does the same); previous() lands on
                // the last entry at or before the time, which is ours if it
                // is exactly at it.
                if self.j.previous()? && self.j.realtime_usec()? >= usec {
                    self.current_pending = true;
                }
            }
            JournalStart::Cursor(c) => match self.j.seek_cursor(c) {
                Ok(()) => self.skip_cursor = Some(c.clone()),
                Err(e) => {
                    tracing::warn!(cursor = %c, error = %e, "bad journal cursor; reading from the head");
                    self.j.seek_head()?;
                }
            },
        }
        Ok(())
    }

    /// Whether the current files opened by name came or went (journald
    /// rotated one): sd-journal follows no new file among files so opened.
    fn files_changed(&self, opts: &JournalOptions) -> bool {
        self.listed.as_ref().is_some_and(|l| listing(opts) != *l)
    }

    /// The journal opened again on the current files, after the last entry
    /// read (from the head of the new files if none was).
    fn reopen(&mut self, opts: &JournalOptions) -> Result<Reader, SourceError> {
        let mut o = opts.clone();
        o.start = match self.j.cursor() {
            Ok(c) => JournalStart::Cursor(c),
            Err(_) => JournalStart::Head,
        };
        let mut r = Reader::open(&o)?;
        r.in_operation = self.in_operation;
        Ok(r)
    }

    /// The current entry as a line.
    fn line(&mut self, sc: &mut Scratch, enc: LogEncoding) -> Result<JournalLine, SourceError> {
        sc.clear();
        self.j.for_each_field(|d| sc.add(d))?;
        let realtime = self.j.realtime_usec()?;
        let j = &mut self.j;
        let (date_text, text, time) = format_fields(
            &sc.fields(realtime),
            sc.messages(),
            || j.monotonic_usec().unwrap_or(0),
            enc,
        );
        Ok(JournalLine {
            date_text,
            text,
            time,
            cursor: String::new(),
        })
    }

    fn run(mut self, opts: &JournalOptions, tx: mpsc::Sender<JournalBatch>, stop: &AtomicBool) {
        let batch = opts.batch_lines.max(1);
        let mut scratch = Scratch::default();
        loop {
            let mut lines = Vec::new();
            let mut at_end = false;
            while lines.len() < batch {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let step = if std::mem::take(&mut self.current_pending) {
                    Ok(true)
                } else {
                    self.j.next()
                };
                match step {
                    Ok(true) => {}
                    Ok(false) => {
                        at_end = true;
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "Error reading line from systemd journal");
                        at_end = true;
                        break;
                    }
                }
                if let Some(c) = self.skip_cursor.take() {
                    if self.j.test_cursor(&c).unwrap_or(false) {
                        continue;
                    }
                }
                match self.line(&mut scratch, opts.encoding) {
                    Ok(mut l) => {
                        truncate_line(&mut l.text, opts.max_line_len);
                        lines.push(l);
                    }
                    Err(e) => tracing::error!(error = %e, "Error reading systemd journal entry"),
                }
            }
            if let Some(last) = lines.last_mut() {
                // The read position is still on the batch's last entry (or
                // on an entry after it that was skipped): journalctl
                // --cursor-file takes the cursor the same way after
                // sd_journal_next reported the end.
                match self.j.cursor() {
                    Ok(c) => last.cursor = c,
                    Err(e) => {
                        tracing::warn!(error = %e, "journal cursor unreadable: position not kept")
                    }
                }
                let b = JournalBatch {
                    lines,
                    in_operation: self.in_operation,
                };
                if tx.blocking_send(b).is_err() {
                    return;
                }
            }
            if !at_end {
                continue;
            }
            if !opts.follow {
                return;
            }
            if !self.in_operation {
                self.in_operation = true;
                tracing::info!("Jail is in operation now (process new journal entries)");
            }
            loop {
                if stop.load(Ordering::SeqCst) || tx.is_closed() {
                    return;
                }
                match self.j.wait(WAIT_USEC) {
                    Ok(Wake::Nop) if self.files_changed(opts) => {
                        match self.reopen(opts) {
                            Ok(r) => self = r,
                            Err(e) => {
                                // Tried again at every wait (a new file may
                                // be half written), said once per listing.
                                let now = Some(listing(opts));
                                if self.reopen_failed != now {
                                    tracing::error!(error = %e, "reopening the systemd journal failed");
                                    self.reopen_failed = now;
                                }
                            }
                        }
                        break;
                    }
                    Ok(Wake::Nop) => continue,
                    Ok(Wake::Append) => break,
                    // The native reader maps grown files again as it
                    // reads; files that came or went are seen above.
                    Ok(Wake::Invalidate) if self.j.is_native() => break,
                    Ok(Wake::Invalidate) => {
                        // Files were added, rotated or vacuumed: step back and
                        // forth so the read position is valid again.
                        if self.j.previous().unwrap_or(false) {
                            let _ = self.j.next();
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "waiting for the systemd journal failed");
                        std::thread::sleep(std::time::Duration::from_micros(WAIT_USEC));
                    }
                }
            }
        }
    }
}

/// The current journal files to open by name when rotated ones are left
/// out: journalpath's, or the system's (its journal only, unless
/// journalflags say otherwise).
fn listing(opts: &JournalOptions) -> Vec<(std::path::PathBuf, u64)> {
    let path = opts.path.as_deref().filter(|p| !p.is_empty());
    let flags = opts
        .flags
        .unwrap_or(if path.is_some() { 0 } else { SD_JOURNAL_SYSTEM });
    super::journal_files::current(path, flags & SD_JOURNAL_SYSTEM != 0)
}

fn truncate_line(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        tracing::warn!(
            len = s.len(),
            "journal entry longer than {max} bytes: truncated"
        );
        s.truncate(cut);
    }
}

/// Adds journalmatch values as fail2ban does: within one value, words are
/// ANDed and `+` separates OR'ed groups; values are OR'ed with each other.
fn add_matches(j: &mut Journal, matches: &[Vec<String>]) -> Result<(), SourceError> {
    let mut any = false;
    for m in matches {
        let groups: Vec<&[String]> = m.split(|w| w == "+").collect();
        if any {
            j.add_disjunction()?;
        }
        for g in groups {
            for w in g {
                j.add_match(w)?;
            }
            j.add_disjunction()?;
            any = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[&str]) -> JournalEntry {
        let mut e = JournalEntry {
            realtime_usec: 1_700_000_000_000_000,
            monotonic_usec: 12_345_678,
            cursor: "c".into(),
            ..Default::default()
        };
        for f in fields {
            e.add_field(f.as_bytes());
        }
        e
    }

    #[test]
    fn format_like_fail2ban() {
        let enc = LogEncoding::UTF8;
        let l = format_entry(
            &entry(&[
                "_HOSTNAME=h",
                "SYSLOG_IDENTIFIER=sshd",
                "_PID=12",
                "MESSAGE=a\nb",
            ]),
            enc,
        );
        assert_eq!(l.text, "h sshd[12]: a\\nb");
        assert_eq!(l.time, 1_700_000_000.0);
        let l = format_entry(&entry(&["_COMM=su", "SYSLOG_PID=0", "MESSAGE=x"]), enc);
        assert_eq!(l.text, "su: x");
        let l = format_entry(&entry(&["_COMM=su", "SYSLOG_PID=abc", "MESSAGE=x"]), enc);
        assert_eq!(l.text, "su[b'abc']: x");
        let l = format_entry(&entry(&["_HOSTNAME=h", "MESSAGE=only"]), enc);
        assert_eq!(l.text, "h only");
        let l = format_entry(
            &entry(&["SYSLOG_IDENTIFIER=kernel", "MESSAGE=oops", "MESSAGE=twice"]),
            enc,
        );
        assert_eq!(l.text, "kernel: [   12.345678] oops twice");
        let l = format_entry(
            &entry(&["MESSAGE=m", "_SOURCE_REALTIME_TIMESTAMP=1700000001500000"]),
            enc,
        );
        assert_eq!(l.time, 1_700_000_001.5);
        assert!(l.date_text.contains(":21.500000"), "{}", l.date_text);
        let l = format_entry(&entry(&["MESSAGE=caf\u{e9}"]), enc);
        assert_eq!(l.text, "caf\u{e9}");
    }

    // The reader formats from its scratch buffer; format_entry from an
    // owned entry: both must give the same line.
    #[test]
    fn scratch_formats_as_an_entry() {
        let cases: &[&[&str]] = &[
            &[
                "_HOSTNAME=h",
                "SYSLOG_IDENTIFIER=sshd",
                "_PID=12",
                "MESSAGE=a\nb",
            ],
            &["_COMM=su", "SYSLOG_PID=0", "_PID=7", "MESSAGE=x"],
            &["_COMM=su", "SYSLOG_PID=012", "MESSAGE=x"],
            &["_COMM=su", "SYSLOG_PID= 1_2 ", "MESSAGE=x"],
            &["_COMM=su", "SYSLOG_PID=abc", "MESSAGE=x"],
            &["SYSLOG_IDENTIFIER=", "_COMM=cron", "_PID=", "MESSAGE=y"],
            &["_HOSTNAME=h", "_HOSTNAME=other", "MESSAGE="],
            &["_HOSTNAME=h\nx", "MESSAGE=only"],
            &["SYSLOG_IDENTIFIER=kernel", "MESSAGE=oops", "MESSAGE=twice"],
            &[
                "SYSLOG_IDENTIFIER=kernel",
                "_SOURCE_MONOTONIC_TIMESTAMP=5000000",
                "MESSAGE=k",
            ],
            &["MESSAGE=m", "_SOURCE_REALTIME_TIMESTAMP=1700000001500000"],
            &["NOT_A_FIELD", "OTHER=1", "MESSAGE=caf\u{e9}"],
        ];
        for fields in cases {
            let e = entry(fields);
            let want = format_entry(&e, LogEncoding::UTF8);
            let mut sc = Scratch::default();
            sc.add(b"STALE=1");
            sc.clear();
            for f in *fields {
                sc.add(f.as_bytes());
            }
            let (date_text, text, time) = format_fields(
                &sc.fields(e.realtime_usec),
                sc.messages(),
                || e.monotonic_usec,
                LogEncoding::UTF8,
            );
            assert_eq!(
                (date_text, text, time),
                (want.date_text, want.text, want.time),
                "{fields:?}"
            );
        }
        let l = format_entry(
            &entry(&["_COMM=su", "SYSLOG_PID=012", "MESSAGE=x"]),
            LogEncoding::UTF8,
        );
        assert_eq!(l.text, "su[12]: x");
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_with_offset(0, 0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            iso_with_offset(1_700_000_000_123_456, 3600),
            "2023-11-14T23:13:20.123456+01:00"
        );
        assert_eq!(
            iso_with_offset(951_782_400_000_000, -5 * 3600 - 30 * 60),
            "2000-02-28T18:30:00-05:30"
        );
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn python_ints() {
        assert_eq!(py_int(b" 12 "), Some(12));
        assert_eq!(py_int(b"1_0"), Some(10));
        assert_eq!(py_int(b"0x1"), None);
        assert_eq!(py_bytes_repr(b"a'b\x01"), "b\"a'b\\x01\"");
    }
}
