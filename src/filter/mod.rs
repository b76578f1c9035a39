//! Filters: a log line and the time now in, failures out.
//!
//! Pure and synchronous: no files, jails or bans. A [`Filter`] mirrors
//! fail2ban's `Filter.processLine`/`findFailure`: the date is found and cut
//! out of the line, the prefregex must match, then each failregex is tried,
//! ignoreregex can veto a match, and multi-line failures are stitched
//! together by `<F-MLFID>` with the same cache rules as fail2ban.

pub mod date;
pub mod failregex;
pub mod ipaddr;
pub mod pcre;
pub mod prescreen;
pub mod pyre;

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use crate::config::TreeVersion;
pub use date::DateDetector;
use failregex::names::{
    CIDR, CONTENT, DNS, FID, IP4, IP6, MLFFORGET, MLFGAINED, MLFID, NOFAIL, USER,
};
pub use failregex::{FailRegex, Regex, UseDns};
use failregex::{GroupName, GroupText};
pub use ipaddr::{Addr, Fid};
pub use pcre::Limits;
pub use prescreen::{Hint, Prescreen};

/// Errors building a filter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A regex is empty after tag expansion.
    #[error("Cannot add empty regex")]
    EmptyRegex,
    /// PCRE2 rejected a regex.
    #[error("Unable to compile regular expression '{regex}':\n{message}")]
    Compile {
        /// The regex with tags expanded.
        regex: String,
        /// PCRE2's message.
        message: String,
    },
    /// A failregex has no group that identifies the failure.
    #[error("No failure-id group in '{regex}'")]
    NoFailureId {
        /// The regex with tags expanded.
        regex: String,
    },
    /// `maxlines` must be at least 1.
    #[error("maxlines must be integer greater than zero")]
    MaxLines,
    /// The date pattern or time zone was rejected by the date detector.
    #[error("datepattern {pattern:?}: {message}")]
    Date {
        /// The pattern or time zone.
        pattern: String,
        /// Why.
        message: String,
    },
}

/// Everything a filter is built from: resolved option values (as strings
/// from the config engine, already interpolated) plus the switches fail2ban
/// and fail2ban-regex set on a filter.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    /// `failregex`, one per line.
    pub failregex: Vec<String>,
    /// `ignoreregex`, one per line.
    pub ignoreregex: Vec<String>,
    /// `prefregex`.
    pub prefregex: Option<String>,
    /// `datepattern`; `None` means fail2ban's default templates.
    pub datepattern: Option<String>,
    /// `maxlines`: lines buffered for multi-line regexes.
    pub maxlines: usize,
    /// `usedns`.
    pub usedns: UseDns,
    /// The fail2ban whose tag expansions (the IPv6 group of `<HOST>`) the
    /// regexes get: the configuration tree's.
    pub version: TreeVersion,
    /// `logtimezone`.
    pub logtimezone: Option<String>,
    /// `findtime` in seconds: outside operation mode, older lines are skipped.
    pub findtime: f64,
    /// Try every failregex on every line (fail2ban-regex does); the daemon
    /// stops at the first match.
    pub check_all_regex: bool,
    /// Drop multi-line failures that have no id yet (the daemon does).
    pub ignore_pending: bool,
    /// Keep hosts as found, never resolve (fail2ban-regex `--raw`).
    pub return_raw_host: bool,
    /// Apply time sanity rules (the daemon does; fail2ban-regex does not).
    pub check_find_time: bool,
    /// In operation (tailing new lines) rather than reading a backlog.
    pub in_operation: bool,
    /// PCRE2 limits for every regex of the filter.
    pub limits: Limits,
}

impl Default for FilterOptions {
    fn default() -> Self {
        FilterOptions {
            failregex: Vec::new(),
            ignoreregex: Vec::new(),
            prefregex: None,
            datepattern: None,
            maxlines: 1,
            usedns: UseDns::Warn,
            version: TreeVersion::default(),
            logtimezone: None,
            findtime: 600.0,
            check_all_regex: false,
            ignore_pending: true,
            return_raw_host: false,
            check_find_time: true,
            in_operation: true,
            limits: Limits::default(),
        }
    }
}

/// One failure found in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Index of the failregex that matched.
    pub failregex: usize,
    /// The failure id: address, or the `<F-ID>` value. `None` only for a
    /// pending multi-line failure (with `ignore_pending` off).
    pub fid: Option<Fid>,
    /// The address when the id is something else (`<F-ID>` plus `<HOST>`).
    pub ip: Option<Fid>,
    /// Failure time, unix seconds.
    pub time: f64,
    /// The log lines that make up the failure, whole.
    pub matches: Vec<String>,
    /// Named groups (`user`, `ip4`, custom `F-*` names...), as fail2ban's
    /// dict holds them.
    pub data: GroupDict,
    /// Every user seen with this multi-line id.
    pub users: BTreeSet<String>,
    /// Not a failure: matched by `<F-NOFAIL>` or gained by `<F-MLFGAINED>`.
    pub nofail: bool,
    /// The host is a name, to be looked up (`usedns = yes` or `warn`):
    /// `fid` is `None` until [`Failure::resolved`] gives one failure per
    /// address found. The filter never looks names up itself: a lookup
    /// can take seconds, and only the failures that need one must wait.
    pub host_name: Option<String>,
}

impl Failure {
    /// The failures of a host name once it is looked up: this one for
    /// each address in `fids` (none when the name has no address).
    pub fn resolved(mut self, fids: Vec<Fid>) -> Vec<Failure> {
        self.host_name = None;
        fids.into_iter()
            .map(|fid| Failure {
                fid: Some(fid),
                ..self.clone()
            })
            .collect()
    }
}

/// A failure's named groups in the order fail2ban's dict keeps them: the
/// prefregex's, then the failregex's new ones, each group in pattern
/// order, with `None` for a group that took no part in the match
/// (fail2ban-regex's `-o row` prints them so). Lookups see set groups
/// only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupDict(Vec<(String, Option<String>)>);

impl GroupDict {
    /// The value of group `k`, if it took part.
    pub fn get(&self, k: &str) -> Option<&String> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_ref())
    }

    pub fn contains_key(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    /// The groups that took part, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().filter_map(|(k, v)| Some((k, v.as_ref()?)))
    }

    /// Every group, in order, `None` included.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
}

impl<'a> IntoIterator for &'a GroupDict {
    type Item = (&'a String, &'a String);
    type IntoIter = Box<dyn Iterator<Item = (&'a String, &'a String)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl std::ops::Index<&str> for GroupDict {
    type Output = String;
    fn index(&self, k: &str) -> &String {
        self.get(k).expect("no such group")
    }
}

impl FromIterator<(String, Option<String>)> for GroupDict {
    fn from_iter<I: IntoIterator<Item = (String, Option<String>)>>(it: I) -> GroupDict {
        GroupDict(it.into_iter().collect())
    }
}

/// What happened to one line, for fail2ban-regex-like callers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineOutcome {
    /// Failures found (including `nofail` ones with `check_all_regex`).
    pub failures: Vec<Failure>,
    /// Indices of the ignoreregex that matched.
    pub ignored_by: Vec<usize>,
    /// Whether the prefregex matched (false if there is none).
    pub prefregex_matched: bool,
    /// Time given to the line (`None` if no date and no fallback).
    pub time: Option<f64>,
}

impl LineOutcome {
    /// fail2ban-regex's "ignored": an ignoreregex or a nofail matched.
    pub fn is_ignored(&self) -> bool {
        !self.ignored_by.is_empty() || self.failures.iter().any(|f| f.nofail)
    }

    /// fail2ban-regex's "matched": a real failure was found.
    pub fn is_matched(&self) -> bool {
        self.failures.iter().any(|f| !f.nofail)
    }
}

/// A buffered line split around its date: `text[..b]`, `text[b..d]`,
/// `text[d..]`. fail2ban matches on before + after.
#[derive(Debug)]
struct TupleLine {
    text: String,
    b: usize,
    d: usize,
}

impl TupleLine {
    fn new(before: &str, date: &str, after: &str) -> TupleLine {
        let mut text = String::with_capacity(before.len() + date.len() + after.len());
        text.push_str(before);
        text.push_str(date);
        text.push_str(after);
        TupleLine {
            text,
            b: before.len(),
            d: before.len() + date.len(),
        }
    }
    fn set(&mut self, before: &str, date: &str, after: &str) {
        self.text.clear();
        self.text.push_str(before);
        self.text.push_str(date);
        self.text.push_str(after);
        self.b = before.len();
        self.d = before.len() + date.len();
    }
    fn push_undated(&self, out: &mut String) {
        out.push_str(&self.text[..self.b]);
        out.push_str(&self.text[self.d..]);
    }
    fn undated_eq(&self, s: &str) -> bool {
        let (a, c) = (&self.text[..self.b], &self.text[self.d..]);
        s.len() == a.len() + c.len() && s.starts_with(a) && s.ends_with(c)
    }
}

type Line = Arc<TupleLine>;

/// Buffers reused from line to line so that a line that matches nothing
/// allocates little.
#[derive(Debug, Default)]
struct Scratch {
    /// What the failregexes search: the buffered lines without dates.
    buf: String,
    /// What the prefregex searched (its groups are read from here).
    pre_buf: String,
    /// The buffer as it was when the line came in.
    org: Vec<Line>,
    /// A line nothing else holds, to hold the next prefregex content.
    spare: Option<Line>,
    work: Work,
}

/// What [`Filter::record_failure`] works in, apart from the subjects it
/// reads, so that both can be borrowed from one [`Scratch`].
#[derive(Debug, Default)]
struct Work {
    /// The multi-line id of the failure being merged.
    mlfid: String,
    /// The groups of the failregex that matched, and of the prefregex.
    groups: Vec<(GroupName, Option<GroupText>)>,
    pre_groups: Vec<(GroupName, Option<GroupText>)>,
}

/// A failregex's match, for [`Filter::record_failure`].
struct Found<'a> {
    /// Which failregex.
    idx: usize,
    /// What it searched.
    subject: &'a str,
    /// What the prefregex searched.
    pre_subject: &'a str,
    /// The buffered lines the match covers.
    matched: &'a [Line],
    date: Option<f64>,
    now: f64,
}

fn join_lines(lines: &[Line], out: &mut String) {
    out.clear();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        l.push_undated(out);
    }
    out.push('\n');
}

/// A failure's named groups, as fail2ban's dict: a handful of entries,
/// so a vector searched in order beats a map. `None`: a group that took
/// no part in the match (a failregex's overrides the prefregex's value).
#[derive(Debug, Clone, Default)]
struct Groups(Vec<(GroupName, Option<GroupText>)>);

impl Groups {
    fn position(&self, k: GroupName) -> Option<usize> {
        self.0.iter().position(|(n, _)| *n == k)
    }
    fn get(&self, k: GroupName) -> Option<&str> {
        self.position(k).and_then(|i| self.0[i].1.as_deref())
    }
    /// Sets `k` as Python's `dict[k] = v` does: in place if it is there,
    /// else last.
    fn insert(&mut self, k: GroupName, v: Option<GroupText>) {
        match self.position(k) {
            Some(i) => self.0[i].1 = v,
            None => self.0.push((k, v)),
        }
    }
    /// Python's `dict.pop`: the order of the others is kept.
    fn remove(&mut self, k: GroupName) -> Option<GroupText> {
        self.position(k).and_then(|i| self.0.remove(i).1)
    }
    fn iter(&self) -> impl Iterator<Item = (GroupName, Option<&GroupText>)> {
        self.0.iter().map(|(k, v)| (*k, v.as_ref()))
    }
}

impl IntoIterator for Groups {
    type Item = (GroupName, Option<GroupText>);
    type IntoIter = std::vec::IntoIter<(GroupName, Option<GroupText>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Failure data as fail2ban keeps it in a dict while merging.
#[derive(Debug, Clone, Default)]
struct FailData {
    groups: Groups,
    users: Option<BTreeSet<String>>,
    matches: Vec<Line>,
    nofail_matches: Vec<Line>,
    mlfpending: bool,
    ip: Option<Fid>,
}

impl FailData {
    fn get(&self, k: GroupName) -> Option<&str> {
        self.groups.get(k)
    }
    /// Python truthiness of a group value: set and not empty.
    fn truthy(&self, k: GroupName) -> bool {
        self.get(k).is_some_and(|v| !v.is_empty())
    }
    fn pop_truthy(&mut self, k: GroupName) -> bool {
        self.groups.remove(k).is_some_and(|v| !v.is_empty())
    }
    fn update_users(&mut self) -> usize {
        if let Some(u) = self.get(USER).filter(|u| !u.is_empty()).map(str::to_string) {
            self.users.get_or_insert_with(BTreeSet::new).insert(u);
        }
        self.users.as_ref().map_or(0, BTreeSet::len)
    }
}

/// fail2ban's multi-line id cache: at most 100 entries, 5 minutes each,
/// oldest dropped first.
///
/// Entries carry a hash of their key: a lookup scans up to 100 keys that
/// mostly share their length (`host sshd[pid]: `), and comparing hashes
/// first avoids a string comparison for each. The hashes sit in their own
/// queue, beside the entries: a lookup that misses (every new session)
/// scans them all, and 100 hashes are 7 cache lines where 100 entries
/// are hundreds.
#[derive(Debug, Default)]
struct MlfidCache {
    entries: VecDeque<(String, FailData, f64)>,
    hashes: VecDeque<u32>,
}

/// The hash only has to tell keys apart; it takes eight bytes a step,
/// since a byte at a time (FNV) made a chain of twenty-odd dependent
/// multiplications of every lookup.
fn key_hash(k: &str) -> u32 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let mut words = k.as_bytes().chunks_exact(8);
    let mut h = (k.len() as u64).wrapping_mul(K);
    for w in &mut words {
        h = mix(h, u64::from_le_bytes(w.try_into().unwrap_or_default()));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(w));
    }
    (h ^ (h >> 32)) as u32
}

const MLFID_MAX_COUNT: usize = 100;
const MLFID_MAX_TIME: f64 = 300.0;

impl MlfidCache {
    fn position(&self, k: &str) -> Option<usize> {
        let h = key_hash(k);
        // Keys are unique, so searching from the back finds the same entry;
        // the ids of live sessions were mostly set recently.
        let (front, back) = self.hashes.as_slices();
        let hit = |base: usize, part: &[u32]| {
            let is = |i: usize| self.entries[base + i].0 == k;
            // Eight hashes at a time from the back, compared as a block
            // (vector compares, where a loop that stops at the first equal
            // one compares one by one), then the equal ones newest first.
            let blocks = part.rchunks_exact(8);
            let rest = blocks.remainder().len();
            for (b, block) in blocks.enumerate() {
                let start = part.len() - 8 * (b + 1);
                let mut mask = block
                    .iter()
                    .enumerate()
                    .fold(0u32, |m, (j, &eh)| m | (u32::from(eh == h) << j));
                while mask != 0 {
                    let j = 31 - mask.leading_zeros() as usize;
                    if is(start + j) {
                        return Some(base + start + j);
                    }
                    mask &= !(1 << j);
                }
            }
            (0..rest)
                .rev()
                .find(|&i| part[i] == h && is(i))
                .map(|i| base + i)
        };
        hit(front.len(), back).or_else(|| hit(0, front))
    }
    /// Where the live entry for `k` is (an expired one is dropped).
    fn find(&mut self, k: &str, now: f64) -> Option<usize> {
        let pos = self.position(k)?;
        if self.entries[pos].2 <= now {
            self.entries.remove(pos);
            self.hashes.remove(pos);
            return None;
        }
        Some(pos)
    }
    fn at(&mut self, pos: usize) -> &mut FailData {
        &mut self.entries[pos].1
    }
    /// Adds `k`, which [`MlfidCache::find`] just did not find, set to `v`
    /// and aging from `now` (fail2ban's `set` of a new key); returns where
    /// the entry is.
    fn add(&mut self, k: &str, v: FailData, now: f64) -> usize {
        debug_assert!(self.position(k).is_none());
        if self.entries.len() >= MLFID_MAX_COUNT {
            // Like fail2ban: pop from the front until a live entry was
            // popped while there is room (that live entry is lost too).
            while let Some(e) = self.entries.pop_front() {
                self.hashes.pop_front();
                if e.2 > now && self.entries.len() < MLFID_MAX_COUNT {
                    break;
                }
            }
        }
        self.entries
            .push_back((k.to_string(), v, now + MLFID_MAX_TIME));
        self.hashes.push_back(key_hash(k));
        self.entries.len() - 1
    }
    fn unset_at(&mut self, pos: usize) {
        self.entries.remove(pos);
        self.hashes.remove(pos);
    }
    /// Puts back the data of the entry at `pos` (from [`MlfidCache::find`]
    /// or [`MlfidCache::set`], with no change to the cache since).
    fn replace_at(&mut self, pos: usize, v: FailData) {
        self.entries[pos].1 = v;
    }
}

/// How the address text of a failure is turned into an id (fail2ban's
/// `cidr` argument to `IPAddr`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cidr {
    Unspec,
    Raw,
    Family(ipaddr::Family),
    Plen(u32),
}

fn make_fid(text: &str, cidr: Cidr) -> Fid {
    match cidr {
        Cidr::Raw => Fid::Raw(text.to_string()),
        Cidr::Unspec => ipaddr::parse_unspec(text),
        Cidr::Family(f) => ipaddr::parse(text, f, None),
        Cidr::Plen(p) => ipaddr::parse(text, ipaddr::Family::Any, Some(p)),
    }
}

/// A filter: fail2ban's failregex/ignoreregex/prefregex machine over a
/// buffer of `maxlines` lines.
pub struct Filter {
    opts: FilterOptions,
    prefregex: Option<Regex>,
    failregex: Vec<FailRegex>,
    ignoreregex: Vec<Regex>,
    dates: DateDetector,
    buffer: Vec<Line>,
    /// Boxed: it is taken out for every line, and moving a pointer is
    /// cheaper than moving the buffers.
    scratch: Option<Box<Scratch>>,
    last_time_text: String,
    last_date: Option<f64>,
    mlfid_cache: MlfidCache,
    next_no_time_warn: f64,
    next_sim_time_warn: f64,
    next_old_warn: f64,
    lean: bool,
    /// An outcome handed back with [`Filter::recycle`], cleared: its
    /// vectors hold the next line's failures without allocating.
    spare_outcome: Option<LineOutcome>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("failregex", &self.opts.failregex)
            .field("maxlines", &self.opts.maxlines)
            .finish_non_exhaustive()
    }
}

// The parts of a filter, each compiled by one function that both
// `Filter::new` (first error) and `check` (every error) call.

fn compile_prefregex(opts: &FilterOptions) -> Result<Option<Regex>, FilterError> {
    match opts.prefregex.as_deref() {
        Some(p) if !p.is_empty() => Ok(Some(Regex::new(
            p,
            false,
            opts.usedns,
            opts.version,
            opts.limits,
        )?)),
        _ => Ok(None),
    }
}

fn compile_failregex(
    regex: &str,
    prefregex: Option<&Regex>,
    opts: &FilterOptions,
) -> Result<FailRegex, FilterError> {
    FailRegex::new(
        regex,
        prefregex,
        opts.maxlines > 1,
        opts.usedns,
        opts.version,
        opts.limits,
    )
}

fn compile_ignoreregex(regex: &str, opts: &FilterOptions) -> Result<Regex, FilterError> {
    Regex::new(regex, false, opts.usedns, opts.version, opts.limits)
}

fn date_detector(opts: &FilterOptions) -> Result<DateDetector, FilterError> {
    match opts.datepattern.as_deref() {
        None => Ok(DateDetector::new_default()),
        Some(p) => DateDetector::from_pattern(p).map_err(|e| FilterError::Date {
            pattern: p.to_string(),
            message: e.to_string(),
        }),
    }
}

fn set_timezone(dates: &mut DateDetector, opts: &FilterOptions) -> Result<(), FilterError> {
    dates
        .set_timezone(opts.logtimezone.as_deref())
        .map_err(|e| FilterError::Date {
            pattern: opts.logtimezone.clone().unwrap_or_default(),
            message: e.to_string(),
        })
}

/// The prefregex and the failregexes of `opts`, compiled as a filter
/// searches them; a [`Prescreen`] compiles its copies here too, so that
/// they search exactly the same patterns.
fn compile_searches(opts: &FilterOptions) -> Result<(Option<Regex>, Vec<FailRegex>), FilterError> {
    let prefregex = compile_prefregex(opts)?;
    let failregex = opts
        .failregex
        .iter()
        .map(|r| compile_failregex(r, prefregex.as_ref(), opts))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((prefregex, failregex))
}

/// A problem [`check`] found: the option and the value it is about.
#[derive(Debug)]
pub struct OptionError {
    /// `failregex`, `ignoreregex`, `prefregex`, `datepattern`,
    /// `logtimezone` or `maxlines`.
    pub option: &'static str,
    /// The value (one line of a multi-line option).
    pub value: String,
    /// Why it cannot be used.
    pub error: FilterError,
}

impl OptionError {
    /// Why, without the value (a regex's expansion of `<HOST>` is long).
    pub fn reason(&self) -> String {
        match &self.error {
            // An offset into the expansion of `<HOST>` would mislead.
            FilterError::Compile { message, regex } if *regex != self.value => message
                .rsplit_once(" at offset ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_string(),
            FilterError::Compile { message, .. } => message.clone(),
            FilterError::NoFailureId { .. } => {
                "no group identifies the failure (<HOST>, <ADDR>, <F-ID>, <F-MLFID>...)".into()
            }
            FilterError::Date { pattern, message } => message
                .strip_prefix(&format!("datepattern {pattern:?}: "))
                .unwrap_or(message)
                .to_string(),
            other => other.to_string(),
        }
    }
}

/// Builds every part of a filter from `opts` as [`Filter::new`] does, and
/// returns every problem instead of the first (for `fail3ban-client -t`).
pub fn check(opts: &FilterOptions) -> Vec<OptionError> {
    let mut out = Vec::new();
    let mut problem = |option, value: &str, error| {
        out.push(OptionError {
            option,
            value: value.to_string(),
            error,
        })
    };
    if opts.maxlines == 0 {
        problem("maxlines", "0", FilterError::MaxLines);
    }
    let prefregex = compile_prefregex(opts).unwrap_or_else(|e| {
        problem("prefregex", opts.prefregex.as_deref().unwrap_or(""), e);
        None
    });
    let broken_prefregex =
        opts.prefregex.as_deref().is_some_and(|p| !p.is_empty()) && prefregex.is_none();
    for r in &opts.failregex {
        match compile_failregex(r, prefregex.as_ref(), opts) {
            // Its failure id may well be in the prefregex that failed.
            Err(FilterError::NoFailureId { .. }) if broken_prefregex => {}
            Err(e) => problem("failregex", r, e),
            Ok(_) => {}
        }
    }
    for r in &opts.ignoreregex {
        if let Err(e) = compile_ignoreregex(r, opts) {
            problem("ignoreregex", r, e);
        }
    }
    let mut dates = date_detector(opts).unwrap_or_else(|e| {
        problem("datepattern", opts.datepattern.as_deref().unwrap_or(""), e);
        DateDetector::new_default()
    });
    if let Err(e) = set_timezone(&mut dates, opts) {
        problem("logtimezone", opts.logtimezone.as_deref().unwrap_or(""), e);
    }
    out
}

impl Filter {
    /// Builds a filter; every regex is compiled here, and JIT-compiled on
    /// its first search.
    pub fn new(opts: FilterOptions) -> Result<Filter, FilterError> {
        if opts.maxlines == 0 {
            return Err(FilterError::MaxLines);
        }
        let (prefregex, failregex) = compile_searches(&opts)?;
        let ignoreregex = opts
            .ignoreregex
            .iter()
            .map(|r| compile_ignoreregex(r, &opts))
            .collect::<Result<Vec<_>, _>>()?;
        let mut dates = date_detector(&opts)?;
        set_timezone(&mut dates, &opts)?;
        Ok(Filter {
            opts,
            prefregex,
            failregex,
            ignoreregex,
            dates,
            buffer: Vec::new(),
            scratch: Some(Box::default()),
            last_time_text: String::new(),
            last_date: None,
            mlfid_cache: MlfidCache::default(),
            next_no_time_warn: f64::MIN,
            next_sim_time_warn: f64::MIN,
            next_old_warn: f64::MIN,
            lean: false,
            spare_outcome: None,
        })
    }

    /// The options the filter was built from.
    pub fn options(&self) -> &FilterOptions {
        &self.opts
    }

    /// The compiled failregexes.
    pub fn failregexes(&self) -> &[FailRegex] {
        &self.failregex
    }

    /// The compiled ignoreregexes.
    pub fn ignoreregexes(&self) -> &[Regex] {
        &self.ignoreregex
    }

    /// The compiled prefregex.
    pub fn prefregex(&self) -> Option<&Regex> {
        self.prefregex.as_ref()
    }

    /// Whether lines now come in as they are written (the daemon tailing a
    /// log) rather than from a backlog read at start.
    pub fn set_in_operation(&mut self, on: bool) {
        self.opts.in_operation = on;
    }

    /// Lean failures carry no `matches`, `data` or `users` (left empty),
    /// an address found in the line is not parsed into their `fid` and
    /// `ip` (left `None`), and [`Filter::prefregex_groups`] is not kept up
    /// to date; everything else (how many failures a line gives, their
    /// failregex, time and `nofail`), and what the filter remembers
    /// between lines, stays the same.
    /// For callers that only count failures (fail3ban-regex without `-o` or
    /// `-v`): copying those out for each failure costs more than finding it.
    pub fn set_lean_failures(&mut self, on: bool) {
        self.lean = on;
    }

    /// Hands back an outcome the caller is done with, so that the next
    /// one reuses its memory.
    pub fn recycle(&mut self, mut out: LineOutcome) {
        out.failures.clear();
        out.ignored_by.clear();
        out.prefregex_matched = false;
        out.time = None;
        self.spare_outcome = Some(out);
    }

    /// The date detector, with its templates' hit counts.
    pub fn dates(&self) -> &DateDetector {
        &self.dates
    }

    /// The date detector, to set the zone "local time" means: tests pin it
    /// as fail2ban's test suite pins `TZ`.
    pub fn dates_mut(&mut self) -> &mut DateDetector {
        &mut self.dates
    }

    /// The prefregex's groups on the last line it matched, in pattern
    /// order (fail2ban-regex `-v` prints them).
    pub fn prefregex_groups(&self) -> Vec<(String, Option<String>)> {
        self.prefregex
            .as_ref()
            .zip(self.scratch.as_ref())
            .map(|(p, s)| p.groups(&s.pre_buf))
            .unwrap_or_default()
    }

    /// Lines currently buffered (multi-line filters).
    pub fn buffered_lines(&self) -> impl Iterator<Item = &str> {
        self.buffer.iter().map(|l| l.text.as_str())
    }

    /// Processes one log line (without its newline); `now` is unix time.
    pub fn process_line(&mut self, line: &str, now: f64) -> Vec<Failure> {
        self.process_line_outcome(line, now).failures
    }

    /// Like [`Filter::process_line`], with what fail2ban-regex reports.
    pub fn process_line_outcome(&mut self, line: &str, now: f64) -> LineOutcome {
        let found = self.dates.find(line, now);
        self.process_found(line, found, now)
    }

    /// A [`Prescreen`] of this filter, for another thread to look ahead
    /// of [`Filter::process_found_hinted`]; `None` for a multi-line filter.
    pub fn prescreen(&self) -> Result<Option<Prescreen>, FilterError> {
        Prescreen::of(self)
    }

    /// [`Filter::process_found`] with what the filter's [`Prescreen`]
    /// answered for the same line and date: the searches it ruled out are
    /// skipped.
    pub fn process_found_hinted(
        &mut self,
        line: &str,
        found: Option<date::DateFound>,
        now: f64,
        hint: Option<&Hint>,
    ) -> LineOutcome {
        let mut tuple: (&str, &str, &str) = ("", "", line);
        let mut date = None;
        let mut last_text_tuple = false;
        let mut no_date = false;
        match found {
            Some(m) if m.span.start < m.span.end && line.get(m.span.clone()).is_some() => {
                let (s, e) = (m.span.start, m.span.end);
                tuple = (&line[..s], &line[s..e], &line[e..]);
                // A date text that does not convert (year 0, day 31 of a
                // short month) is still cut out of the line, as fail2ban
                // does; the line is then treated as undated.
                if let Some(t) = m.time {
                    date = Some(t);
                    self.last_time_text.clear();
                    self.last_time_text.push_str(&line[s..e]);
                    self.last_date = Some(t);
                } else {
                    tracing::error!("findFailure failed to parse timeText: {}", &line[s..e]);
                }
            }
            Some(_) => {
                // Found but empty (`{NONE}` or an optional date): reuse a
                // recent date, else now.
                match self.last_date {
                    Some(d) if d > now - 60.0 => {
                        last_text_tuple = true;
                        date = Some(d);
                    }
                    _ => date = Some(now),
                }
            }
            None => {}
        }
        if date.is_none() {
            no_date = true;
            match self.last_date {
                Some(d) if d > now - 60.0 => {
                    last_text_tuple = true;
                    date = Some(d);
                }
                _ if self.opts.check_find_time && self.opts.in_operation => date = Some(now),
                _ => {}
            }
        }
        if let (true, Some(d)) = (self.opts.check_find_time, date) {
            if self.opts.in_operation {
                let delta = (d - now) as i64;
                if delta.abs() > 60 {
                    if now >= self.next_sim_time_warn {
                        self.next_sim_time_warn = now + 86400.0;
                        tracing::warn!(
                            "Detected a log entry {}s {} the current time in operation mode. \
                             This looks like a {} problem. Treating such entries as if they just happened.",
                            delta.abs(),
                            if delta < 0 { "before" } else { "after" },
                            if (-3300..0).contains(&delta) { "latency" } else { "timezone" }
                        );
                        tracing::warn!(
                            "Please check a jail for a timing issue. Line with odd timestamp: {line}"
                        );
                    }
                    date = Some(now);
                    self.last_date = Some(now);
                }
            } else if d < now - self.opts.findtime {
                if now >= self.next_old_warn {
                    self.next_old_warn = now + 86400.0;
                    tracing::warn!(
                        "Ignoring all log entries older than {}s; these are probably messages \
                         generated while fail2ban was not running.",
                        self.opts.findtime
                    );
                }
                return LineOutcome {
                    time: date,
                    ..LineOutcome::default()
                };
            }
        }
        if self.hint_rules_all_out(
            hint,
            if last_text_tuple {
                line.len()
            } else {
                tuple.0.len() + tuple.2.len()
            },
        ) {
            return LineOutcome {
                time: date,
                prefregex_matched: self.prefregex.is_some()
                    && hint.is_some_and(|h| !h.prefregex_fails),
                ..LineOutcome::default()
            };
        }
        if self.opts.maxlines == 1 && self.lean && self.ignoreregex.is_empty() {
            let parts = if last_text_tuple {
                ("", "", line)
            } else {
                tuple
            };
            return self.find_failure_lean(parts, last_text_tuple, date, no_date, now, hint);
        }
        let last_text = std::mem::take(&mut self.last_time_text);
        let tl = if last_text_tuple {
            self.new_line("", &last_text, line)
        } else {
            self.new_line(tuple.0, tuple.1, tuple.2)
        };
        self.last_time_text = last_text;
        self.find_failure(tl, date, no_date, now, hint)
    }

    /// [`Filter::find_failure`] for a lean one-line filter without
    /// ignoreregexes, the line split around its date in `parts` (the date
    /// text is the last one seen when `last_text`). Nothing reads such a
    /// filter's buffer or a failure's lines, so the line is not buffered:
    /// it is only joined into the subject, and the prefregex's content
    /// searched in place when it runs to the end of the line.
    fn find_failure_lean(
        &mut self,
        parts: (&str, &str, &str),
        last_text: bool,
        date: Option<f64>,
        no_date: bool,
        now: f64,
        hint: Option<&Hint>,
    ) -> LineOutcome {
        let mut scratch = self.scratch.take().unwrap_or_default();
        let Scratch {
            buf, pre_buf, work, ..
        } = &mut *scratch;
        let mut out = self.spare_outcome.take().unwrap_or_default();
        out.time = date;
        // A line of the general path, left behind: it would be reported
        // as buffered.
        self.buffer.clear();
        buf.clear();
        buf.push_str(parts.0);
        buf.push_str(parts.2);
        buf.push('\n');
        let hint = hint.filter(|h| h.undated_len == buf.len());
        let mut subject: &str = buf;
        let mut ascii: Option<bool> = None;
        if let Some(pre) = self.prefregex.as_mut() {
            if !prefregex_matches(pre, hint, buf, &mut ascii) {
                self.scratch = Some(scratch);
                return out;
            }
            out.prefregex_matched = true;
            if let Some((s, e)) = pre
                .special
                .content
                .and_then(|i| pre.group_span(i))
                .filter(|(s, e)| s < e)
            {
                // The failregexes search the content and a newline, as
                // the one line the buffer would then hold.
                if e + 1 == buf.len() {
                    subject = &buf[s..];
                } else {
                    pre_buf.clear();
                    pre_buf.push_str(&buf[s..e]);
                    pre_buf.push('\n');
                    subject = pre_buf;
                    ascii = None;
                }
            }
        }
        let candidates = candidates(self.failregex.len(), hint);
        for idx in candidates {
            let fr = self.failregex[idx].regex_mut();
            let given = hint.is_some_and(|h| h.first_fail() == Some(idx) && h.fail.give_to(fr));
            if !given && !fr.search_known(subject, *ascii.get_or_insert_with(|| subject.is_ascii()))
            {
                continue;
            }
            fr.groups_into(subject, None, true, &mut work.groups);
            if no_date
                && self.match_without_date(date, now, |f| {
                    let d = if last_text {
                        f.last_time_text.as_str()
                    } else {
                        parts.1
                    };
                    (d.to_string(), format!("{}{d}{}", parts.0, parts.2))
                })
            {
                continue;
            }
            let found = Found {
                idx,
                subject,
                pre_subject: buf,
                matched: &[],
                date,
                now,
            };
            if !self.record_failure(found, work, &mut out) {
                break;
            }
            if !self.opts.check_all_regex {
                // The general path leaves the buffer without the line the
                // match covered: what is left to search is the newline.
                subject = "\n";
                ascii = Some(true);
            }
        }
        self.scratch = Some(scratch);
        out
    }

    /// Takes the date detector out, so that another thread can date lines
    /// ahead of [`Filter::process_found`]; put it back with
    /// [`Filter::put_dates`] before reading its hits.
    pub fn take_dates(&mut self) -> DateDetector {
        std::mem::replace(&mut self.dates, DateDetector::empty())
    }

    /// Puts back a detector taken with [`Filter::take_dates`].
    pub fn put_dates(&mut self, dates: DateDetector) {
        self.dates = dates;
    }

    /// Like [`Filter::process_line_outcome`], with the line already dated:
    /// `found` is what this filter's detector (see [`Filter::take_dates`])
    /// answered for the line and `now`. Lines must come in the order they
    /// were dated.
    pub fn process_found(
        &mut self,
        line: &str,
        found: Option<date::DateFound>,
        now: f64,
    ) -> LineOutcome {
        self.process_found_hinted(line, found, now, None)
    }

    /// Whether `hint`, made for a subject of `undated` bytes plus its
    /// newline, leaves this one-line filter nothing to search or report:
    /// the prefregex fails, or (when lean, which leaves the prefregex's
    /// groups unread) no failregex can match. The line then need not be
    /// buffered: a one-line filter's buffer is replaced by the next line
    /// before anything reads it.
    fn hint_rules_all_out(&self, hint: Option<&Hint>, undated: usize) -> bool {
        let n = self.failregex.len();
        hint.is_some_and(|h| {
            self.opts.maxlines == 1
                && self.ignoreregex.is_empty()
                && h.undated_len == undated + 1
                && (h.prefregex_fails
                    || (self.lean && n <= 64 && h.may_match & (u64::MAX >> (64 - n.max(1))) == 0))
        })
    }

    /// A buffered line. With one line buffered, the previous line's
    /// allocation is reused when nothing else holds it: `find_failure`
    /// drops it from the buffer anyway.
    fn new_line(&mut self, before: &str, date: &str, after: &str) -> Line {
        if self.opts.maxlines == 1 && self.buffer.len() == 1 {
            if let Some(mut l) = self.buffer.pop() {
                if let Some(t) = Arc::get_mut(&mut l) {
                    t.set(before, date, after);
                    return l;
                }
                self.buffer.push(l);
            }
        }
        Arc::new(TupleLine::new(before, date, after))
    }

    /// Processes a line whose time is already known (the journal): `before`,
    /// `date_text` and `after` are the line split around its date text
    /// (`before` and `date_text` may be empty).
    pub fn process_dated(
        &mut self,
        before: &str,
        date_text: &str,
        after: &str,
        time: f64,
        now: f64,
    ) -> LineOutcome {
        self.last_time_text.clear();
        self.last_time_text.push_str(date_text);
        self.last_date = Some(time);
        let tl = self.new_line(before, date_text, after);
        self.find_failure(tl, Some(time), false, now, None)
    }

    /// Runs the ignoreregexes on `buf` (or on the failregex's matched lines
    /// in multi-line mode). Returns whether one matched.
    fn ignore_line(
        &mut self,
        buf: &str,
        matched: Option<(&[Line], &[Line])>,
        out: &mut LineOutcome,
    ) -> bool {
        let mut own;
        let subject = match matched {
            Some((m, _)) if self.opts.maxlines > 1 => {
                own = String::new();
                join_lines(m, &mut own);
                own.as_str()
            }
            _ => buf,
        };
        let mut found = false;
        for (i, re) in self.ignoreregex.iter_mut().enumerate() {
            if re.search(subject) {
                found = true;
                out.ignored_by.push(i);
                if !self.opts.check_all_regex || self.opts.maxlines > 1 {
                    if let Some((_, unmatched)) = matched {
                        self.buffer.clear();
                        self.buffer.extend(unmatched.iter().cloned());
                    }
                }
                if !self.opts.check_all_regex {
                    break;
                }
            }
        }
        found
    }

    fn find_failure(
        &mut self,
        line: Line,
        date: Option<f64>,
        no_date: bool,
        now: f64,
        hint: Option<&Hint>,
    ) -> LineOutcome {
        let mut scratch = self.scratch.take().unwrap_or_default();
        let out = self.find_failure_in(line, date, no_date, now, hint, &mut scratch);
        // A line that a prefregex replaced by its content and that no
        // failure kept: its allocation holds the next line's content.
        if scratch.org.len() == 1 {
            if let Some(l) = scratch.org.pop().filter(|l| Arc::strong_count(l) == 1) {
                scratch.spare = Some(l);
            }
        }
        scratch.org.clear();
        self.scratch = Some(scratch);
        out
    }

    fn find_failure_in(
        &mut self,
        line: Line,
        date: Option<f64>,
        no_date: bool,
        now: f64,
        hint: Option<&Hint>,
        scratch: &mut Scratch,
    ) -> LineOutcome {
        let Scratch {
            buf,
            pre_buf,
            org,
            spare,
            work,
        } = scratch;
        let mut out = self.spare_outcome.take().unwrap_or_default();
        out.time = date;
        let maxlines = self.opts.maxlines;
        if maxlines > 1 {
            self.buffer.push(line.clone());
            if self.buffer.len() > maxlines {
                let extra = self.buffer.len() - maxlines;
                self.buffer.drain(..extra);
            }
        } else {
            self.buffer.clear();
            self.buffer.push(line.clone());
        }
        org.extend(self.buffer.iter().cloned());
        let org: &[Line] = org;
        join_lines(org, buf);
        let mut buf_valid = true;
        // Only a search needs it, and with a hint there may be none.
        let mut buf_ascii: Option<bool> = None;
        // A hint is only good for the subject it was computed on.
        let hint = hint.filter(|h| maxlines == 1 && h.undated_len == buf.len());

        if !self.ignoreregex.is_empty()
            && self.ignoreregex.len() + 2 < self.failregex.len()
            && self.ignore_line(buf, None, &mut out)
        {
            return out;
        }

        if let Some(pre) = self.prefregex.as_mut() {
            if !prefregex_matches(pre, hint, buf, &mut buf_ascii) {
                return out;
            }
            out.prefregex_matched = true;
            if let Some(c) = pre
                .group_at(buf, pre.special.content)
                .filter(|c| !c.is_empty())
            {
                let repl = match spare.take() {
                    Some(mut l) => match Arc::get_mut(&mut l) {
                        Some(t) => {
                            t.set("", "", c);
                            l
                        }
                        None => Arc::new(TupleLine::new("", "", c)),
                    },
                    None => Arc::new(TupleLine::new("", "", c)),
                };
                self.buffer.clear();
                self.buffer.push(repl);
            }
            // Keep what the prefregex searched: its groups are read on a
            // failure, after `buf` was rebuilt.
            std::mem::swap(buf, pre_buf);
            buf_valid = false;
        }

        let candidates = candidates(self.failregex.len(), hint);
        for idx in candidates {
            if !buf_valid {
                join_lines(&self.buffer, buf);
                buf_valid = true;
                buf_ascii = None;
            }
            let fr = self.failregex[idx].regex_mut();
            let given = hint.is_some_and(|h| h.first_fail() == Some(idx) && h.fail.give_to(fr));
            if !given && !fr.search_known(buf, *buf_ascii.get_or_insert_with(|| buf.is_ascii())) {
                continue;
            }
            fr.groups_into(buf, None, self.lean, &mut work.groups);
            let (matched, unmatched) = matched_lines(fr, buf, org);
            if !self.ignoreregex.is_empty()
                && self.ignore_line(buf, Some((&matched, &unmatched)), &mut out)
            {
                buf_valid = false;
                if !self.opts.check_all_regex {
                    break;
                }
                continue;
            }
            if no_date
                && self.match_without_date(date, now, |_| {
                    let lines: Vec<&str> = matched.iter().map(|l| l.text.as_str()).collect();
                    let d = line.text.get(line.b..line.d).unwrap_or("");
                    (d.to_string(), lines.join("\n"))
                })
            {
                continue;
            }
            if !self.opts.check_all_regex || maxlines > 1 {
                self.buffer.clear();
                self.buffer.extend(unmatched.iter().cloned());
                buf_valid = false;
            }
            let found = Found {
                idx,
                subject: buf,
                pre_subject: pre_buf,
                matched: &matched,
                date,
                now,
            };
            if !self.record_failure(found, work, &mut out) {
                break;
            }
        }
        out
    }

    /// fail2ban's warning (at most once a day) for a match in a line with
    /// no date, with the date text and the matched lines `texts` gives;
    /// returns whether the match is then dropped.
    fn match_without_date(
        &mut self,
        date: Option<f64>,
        now: f64,
        texts: impl FnOnce(&Self) -> (String, String),
    ) -> bool {
        if now >= self.next_no_time_warn {
            self.next_no_time_warn = now + 86400.0;
            let (date_text, matched) = texts(self);
            tracing::warn!(
                "Found a match but no valid date/time found for {:?}. Match without a timestamp: {}. \
                 Please try setting a custom date pattern (see man page jail.conf(5)).",
                date_text,
                matched
            );
        }
        date.is_none() && self.opts.check_find_time
    }

    /// What follows a failregex's match (its groups in `work.groups`): the
    /// failure's data is gathered from the prefregex's groups and the
    /// failregex's, merged by multi-line id, and the failures it gives are
    /// added to `out`. Returns whether the filter goes on to the next
    /// failregex.
    fn record_failure(&mut self, found: Found<'_>, work: &mut Work, out: &mut LineOutcome) -> bool {
        let Work {
            mlfid: mlfid_buf,
            groups,
            pre_groups,
        } = work;
        let now = found.now;
        let defcidr = if self.opts.usedns == UseDns::Raw || self.opts.return_raw_host {
            Cidr::Raw
        } else {
            Cidr::Unspec
        };
        let mut fail = FailData::default();
        if let Some(pre) = self.prefregex.as_ref() {
            pre.groups_into(
                found.pre_subject,
                pre.special.content,
                self.lean,
                pre_groups,
            );
            fail.groups.0.reserve(pre_groups.len() + groups.len());
            for (k, v) in pre_groups.drain(..) {
                if k != CONTENT {
                    fail.groups.insert(k, v);
                }
            }
        }
        // Python's `dict.update`: the failregex's groups win, `None` too.
        for (k, v) in groups.drain(..) {
            fail.groups.insert(k, v);
        }
        let mlfid = fail.get(MLFID).map(|m| {
            mlfid_buf.clear();
            mlfid_buf.push_str(m);
            mlfid_buf.as_str()
        });
        let mut linked = None;
        if let Some(mlfid) = mlfid {
            linked = self.merge_failure(mlfid, &mut fail, found.matched, now);
            if fail.truthy(NOFAIL) && !self.opts.check_all_regex {
                if let Some(pos) = linked {
                    self.mlfid_cache.replace_at(pos, fail);
                }
                return false;
            }
        } else if !self.lean {
            fail.matches.extend(found.matched.iter().cloned());
        }

        let mut cidr = defcidr;
        let mut raw = defcidr == Cidr::Raw;
        let fid_text = fail.get(FID);
        let plen = || {
            fail.get(CIDR)
                .filter(|c| !c.is_empty())
                .and_then(|c| c.parse::<u32>().ok())
        };
        let ip_text: Option<&str> = if let Some(ip) = fail.get(IP4) {
            cidr = plen().map_or(Cidr::Family(ipaddr::Family::V4), Cidr::Plen);
            raw = true;
            Some(ip)
        } else if let Some(ip) = fail.get(IP6) {
            cidr = plen().map_or(Cidr::Family(ipaddr::Family::V6), Cidr::Plen);
            raw = true;
            Some(ip)
        } else if let Some(dns) = fail.get(DNS) {
            Some(dns)
        } else {
            if fid_text.is_none() && mlfid.is_none() {
                tracing::error!(
                    regex = %self.failregex[found.idx].regex().expanded(),
                    "No group found in {:?}",
                    found.subject
                );
                return true;
            }
            raw = true;
            fid_text
        };
        let mut host_name = None;
        // The id of the one failure, if there is one.
        let fid: Option<Option<Fid>> = match ip_text {
            None => {
                fail.mlfpending = true;
                if !self.opts.check_all_regex && self.opts.ignore_pending {
                    if let Some(pos) = linked {
                        self.mlfid_cache.replace_at(pos, fail);
                    }
                    return false;
                }
                Some(None)
            }
            // One failure, whose id a lean caller does not read.
            Some(_) if raw && self.lean => Some(None),
            Some(ip) if raw => match fid_text {
                Some(f) if f != ip => {
                    let (ip, f) = (make_fid(ip, cidr), make_fid(f, defcidr));
                    fail.ip = Some(ip);
                    Some(Some(f))
                }
                _ => Some(Some(make_fid(ip, cidr))),
            },
            Some(ip) => match host_id(ip, self.opts.usedns) {
                HostId::Addr(f) => Some(Some(f)),
                HostId::Name => {
                    host_name = Some(ip.to_string());
                    Some(None)
                }
                HostId::Nothing => None,
            },
        };
        let nofail = fail.truthy(NOFAIL);
        if let Some(fid) = fid {
            let (matches, data, users) = if self.lean {
                Default::default()
            } else {
                (
                    fail.matches.iter().map(|l| l.text.clone()).collect(),
                    fail.groups
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.map(|v| v.to_string())))
                        .collect(),
                    fail.users.clone().unwrap_or_default(),
                )
            };
            out.failures.push(Failure {
                failregex: found.idx,
                fid,
                ip: fail.ip.clone(),
                time: found.date.unwrap_or(found.now),
                matches,
                data,
                users,
                nofail,
                host_name,
            });
        }
        if let Some(pos) = linked {
            self.mlfid_cache.replace_at(pos, fail);
        }
        self.opts.check_all_regex
    }

    /// fail2ban's `_mergeFailure`: folds this match into the failure cached
    /// under the same multi-line id, leaving the merged data in `fail`.
    /// Returns where the cached entry is, if `fail` is (still) it; the
    /// caller must then put it back with `MlfidCache::replace_at` (fail2ban
    /// shares one dict, we move it).
    fn merge_failure(
        &mut self,
        mlfid: &str,
        fail: &mut FailData,
        matched: &[Line],
        now: f64,
    ) -> Option<usize> {
        let mut nf = 0u8;
        if fail.truthy(MLFGAINED) {
            nf |= 8 | 1;
            if !fail.truthy(NOFAIL) {
                let g = GroupText::from(fail.get(MLFGAINED).unwrap_or_default());
                fail.groups.insert(NOFAIL, Some(g));
            }
        } else if fail.truthy(NOFAIL) {
            nf |= 1;
        }
        if fail.pop_truthy(MLFFORGET) {
            nf |= 2;
        }
        let users;
        let linked;
        if let Some(pos) = self.mlfid_cache.find(mlfid, now) {
            // Taken out here, put back by the caller once it is done with it.
            let mut m = std::mem::take(self.mlfid_cache.at(pos));
            if let Some(u) = fail.get(USER).filter(|u| !u.is_empty()) {
                let set = m.users.get_or_insert_with(BTreeSet::new);
                if !set.contains(u) {
                    set.insert(u.to_string());
                }
            }
            users = m.users.as_ref().map_or(0, BTreeSet::len);
            if m.pop_truthy(NOFAIL) {
                nf |= 4;
            }
            if m.pop_truthy(MLFGAINED) {
                nf |= 4;
            }
            if nf & 8 != 0 {
                m.mlfpending = false;
            }
            if nf & 4 == 0 && !m.mlfpending {
                m.matches.clear();
            }
            // fail2ban merges only the values that are set.
            for (k, v) in std::mem::take(&mut fail.groups) {
                if v.is_some() {
                    m.groups.insert(k, v);
                }
            }
            *fail = m;
            if nf & 2 != 0 {
                self.mlfid_cache.unset_at(pos);
                linked = None;
            } else {
                linked = Some(pos);
            }
        } else if nf & 2 == 0 {
            users = fail.update_users();
            // A new entry: fail2ban caches it here, so it ages from now.
            linked = Some(self.mlfid_cache.add(mlfid, FailData::default(), now));
        } else {
            users = 0;
            linked = None;
        }
        if std::mem::take(&mut fail.mlfpending) || users > 1 {
            fail.groups.remove(NOFAIL);
            fail.groups.remove(MLFGAINED);
            nf &= !(8 | 1);
        }
        if self.lean {
            // Nothing reads the lines, and holding them would keep
            // `new_line` from reusing their allocation.
        } else if nf & 1 == 0 {
            let mut m = std::mem::take(&mut fail.nofail_matches);
            m.append(&mut fail.matches);
            if nf & 8 == 0 {
                m.extend(matched.iter().cloned());
            }
            fail.matches = m;
        } else if nf & 3 == 1 {
            fail.nofail_matches.extend(matched.iter().cloned());
        }
        linked
    }
}

/// Whether the prefregex `pre` matches `buf` (whose `is_ascii` is
/// remembered in `ascii`), as the prescreen's hint for the same subject
/// says, or else as searched.
fn prefregex_matches(
    pre: &mut Regex,
    hint: Option<&Hint>,
    buf: &str,
    ascii: &mut Option<bool>,
) -> bool {
    match hint {
        Some(h) if h.prefregex_fails => false,
        // The prescreen's copy searched this same subject.
        Some(h) if h.pre.give_to(pre) => true,
        _ => pre.search_known(buf, *ascii.get_or_insert_with(|| buf.is_ascii())),
    }
}

/// The failregexes (of `n`) that may match, in order: those the hint's
/// bits leave (for the first 64), then every one after those.
fn candidates(n: usize, hint: Option<&Hint>) -> impl Iterator<Item = usize> {
    let mut bits = hint.map_or(u64::MAX, |h| h.may_match);
    if n < 64 {
        bits &= (1u64 << n) - 1;
    }
    std::iter::from_fn(move || {
        (bits != 0).then(|| {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            i
        })
    })
    .chain(64..n)
}

/// fail2ban's `Regex.search` bookkeeping: which buffered lines the match
/// covers (minus lines eaten by `<SKIPLINES>`) and which it leaves.
///
/// One buffered line is the common case and needs no copy.
fn matched_lines<'o>(re: &Regex, buf: &str, org: &'o [Line]) -> (Cow<'o, [Line]>, Cow<'o, [Line]>) {
    if org.len() <= 1 {
        return (Cow::Borrowed(org), Cow::Borrowed(&[]));
    }
    let (start, end) = re.span();
    let bytes = buf.as_bytes();
    let line_start = bytes[..(start + 1).min(bytes.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    // An empty match at 0 makes Python search from the last char.
    let from = if end == 0 {
        bytes.len().saturating_sub(1)
    } else {
        end - 1
    };
    let line_end = bytes[from.min(bytes.len())..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| from + p + 1);
    let count = |upto: usize| bytes[..upto].iter().filter(|&&b| b == b'\n').count();
    let (c1, c2) = (
        count(line_start).min(org.len()),
        count(line_end).min(org.len()),
    );
    let mut matched: Vec<Line> = org[c1..c2.max(c1)].to_vec();
    let mut unmatched: Vec<Line> = org[..c1].to_vec();
    let mut n = 0;
    for skipped in re.skipped_lines(buf) {
        if let Some(m) = matched[n.min(matched.len())..]
            .iter()
            .position(|l| l.undated_eq(skipped))
        {
            unmatched.push(matched.remove(n + m));
            n += m;
        }
    }
    unmatched.extend(org[c2.max(c1)..].iter().cloned());
    (Cow::Owned(matched), Cow::Owned(unmatched))
}

/// What a `<HOST>` text identifies (fail2ban's `DNSUtils.textToIp`
/// without the lookup).
enum HostId {
    /// An address found in the text.
    Addr(Fid),
    /// No address: a name to look up, as `usedns` allows.
    Name,
    /// No address, and `usedns` forbids a lookup.
    Nothing,
}

fn host_id(text: &str, use_dns: UseDns) -> HostId {
    if let Some(ip) = ipaddr::search_ip(text) {
        if let f @ Fid::Addr(_) = ipaddr::parse_unspec(ip) {
            return HostId::Addr(f);
        }
    }
    if matches!(use_dns, UseDns::Yes | UseDns::Warn) {
        HostId::Name
    } else {
        HostId::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(fail: &[&str], ignore: &[&str], pre: Option<&str>) -> Filter {
        Filter::new(FilterOptions {
            failregex: fail.iter().map(|s| s.to_string()).collect(),
            ignoreregex: ignore.iter().map(|s| s.to_string()).collect(),
            prefregex: pre.map(str::to_string),
            check_find_time: false,
            ..FilterOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn date_is_cut_before_matching() {
        let mut f = filter(
            &[r"^ host sshd\[\d+\]: Failed for <F-USER>\S+</F-USER> from <HOST>$"],
            &[],
            None,
        );
        let out = f.process_line(
            "Jan  2 03:04:05 host sshd[12]: Failed for bob from 192.0.2.1",
            1.7e9,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].fid.as_ref().unwrap().to_string(), "192.0.2.1");
        assert_eq!(out[0].data["user"], "bob");
        assert_eq!(out[0].matches.len(), 1);
        assert!(out[0].matches[0].starts_with("Jan  2"));
    }

    /// A host that is a name is handed out to be looked up, never looked
    /// up here; an address in the text is taken as it is; `usedns = no`
    /// drops the name.
    #[test]
    fn names_are_left_to_the_caller() {
        let mut f = filter(&["from <HOST>$"], &[], None);
        let out = f.process_line("x from attacker.example", 0.0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].fid, None);
        assert_eq!(out[0].host_name.as_deref(), Some("attacker.example"));
        let out = f.process_line("x from 192.0.2.4", 0.0);
        assert_eq!(out[0].fid.as_ref().unwrap().to_string(), "192.0.2.4");
        assert_eq!(out[0].host_name, None);
        let mut no = Filter::new(FilterOptions {
            failregex: vec!["from <HOST>$".into()],
            usedns: UseDns::No,
            check_find_time: false,
            ..FilterOptions::default()
        })
        .unwrap();
        assert!(no.process_line("x from attacker.example", 0.0).is_empty());
    }

    #[test]
    fn ignoreregex_vetoes_and_is_reported() {
        let mut f = filter(&["from <HOST>"], &["from 192.0.2.9"], None);
        let o = f.process_line_outcome("x from 192.0.2.9", 0.0);
        assert!(o.failures.is_empty());
        assert_eq!(o.ignored_by, vec![0]);
        assert!(o.is_ignored());
        assert_eq!(f.process_line("x from 192.0.2.8", 0.0).len(), 1);
    }

    #[test]
    fn prefregex_content_and_fid() {
        let mut f = filter(
            &["^bad <F-ID>\\w+</F-ID>$"],
            &[],
            Some("^app: <F-CONTENT>.+</F-CONTENT>$"),
        );
        let out = f.process_line("app: bad token42", 0.0);
        assert_eq!(out[0].fid, Some(Fid::Raw("token42".into())));
        assert!(f.process_line("other: bad token42", 0.0).is_empty());
    }

    #[test]
    fn multi_line_id_carries_the_host() {
        let mut f = filter(
            &[
                r"^\[<F-MLFID>\d+</F-MLFID>\] <F-NOFAIL>connect</F-NOFAIL> from <ADDR>$",
                r"^\[<F-MLFID>\d+</F-MLFID>\] auth failed$",
            ],
            &[],
            None,
        );
        assert!(f
            .process_line("[7] connect from 192.0.2.3", 100.0)
            .is_empty());
        let out = f.process_line("[7] auth failed", 101.0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].fid.as_ref().unwrap().to_string(), "192.0.2.3");
        assert_eq!(out[0].matches.len(), 2);
    }

    /// Lookups find every live key, wherever the deque's ring has put it,
    /// and nothing else, however full the cache.
    #[test]
    fn mlfid_cache_finds_its_keys() {
        let mut c = MlfidCache::default();
        let key = |i: usize| format!("host sshd[{i}]: ");
        for i in 0..350 {
            assert_eq!(c.find(&key(i), 0.0), None);
            let pos = c.add(&key(i), FailData::default(), 0.0);
            assert_eq!(c.entries[pos].0, key(i));
            if i % 7 == 3 {
                let p = c.position(&key(i - 2)).unwrap();
                c.unset_at(p);
            }
            for j in i.saturating_sub(40)..=i {
                match c.position(&key(j)) {
                    Some(p) => assert_eq!(c.entries[p].0, key(j)),
                    None => assert!(j % 7 == 1 || j + 100 <= i, "{j} lost at {i}"),
                }
            }
        }
    }

    #[test]
    fn backtracking_bomb_is_cut_short() {
        let mut f = Filter::new(FilterOptions {
            failregex: vec![r"^(\w+\s?)*$<F-ID/>".into()],
            check_find_time: false,
            limits: Limits {
                match_limit: 100_000,
                ..Limits::default()
            },
            ..FilterOptions::default()
        })
        .unwrap();
        let line = format!("{}!", "ab ".repeat(5000));
        let t = std::time::Instant::now();
        assert!(f.process_line(&line, 0.0).is_empty());
        assert!(t.elapsed().as_secs_f64() < 1.0);
    }

    #[test]
    fn bad_options_are_errors() {
        let e = Filter::new(FilterOptions {
            failregex: vec!["(unclosed <HOST>".into()],
            ..FilterOptions::default()
        });
        assert!(matches!(e, Err(FilterError::Compile { .. })));
        let e = Filter::new(FilterOptions {
            maxlines: 0,
            ..FilterOptions::default()
        });
        assert!(matches!(e, Err(FilterError::MaxLines)));
    }
}
