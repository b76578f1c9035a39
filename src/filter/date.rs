//! Date detection as fail2ban's `DateDetector` does it.
//!
//! A detector holds an ordered list of date templates. For each line it
//! first tries the template that won last time, within the same place of
//! the line; otherwise it searches all templates in order, prefers the date
//! nearest to the line start, and moves frequent winners towards the front
//! of the list. These rules decide which date wins when a line holds
//! several, so they follow fail2ban exactly.
//!
//! ```
//! use fail3ban::filter::date::DateDetector;
//!
//! let mut dd = DateDetector::new_default();
//! dd.set_timezone(Some("UTC")).unwrap();
//! let line = "2005-01-23 21:59:59 sshd[1]: Failed password";
//! let m = dd.match_time(line, 1_124_013_600.0).unwrap();
//! assert_eq!(m.time, 1_106_517_599.0);
//! assert_eq!(&line[m.span], "2005-01-23 21:59:59");
//! assert_eq!(dd.last_template(), Some("{^LN-BEG}ExYear(?P<_sep>[-/.])Month(?P=_sep)Day(?:T|  ?)24hour:Minute:Second(?:[.,]Microseconds)?(?:\\s*Zone offset)?"));
//! ```
//!
//! Times: `now` is Unix seconds (`f64`), injected by the caller and used for
//! dates without a year or a day; the detector never reads the clock while
//! matching. The one exception is `%ExY`, whose accepted decades (2000 up to
//! three years from now) are fixed from the system clock once per process,
//! as fail2ban fixes them when it starts.
//!
//! Known differences from fail2ban: a regex that does not compile is
//! reported when the detector is built (fail2ban reports it at first use);
//! digits outside ASCII never form a date; a conversion that would raise an
//! exception in fail2ban yields no time; `{NONE}` on an empty line gives an
//! empty match where fail2ban raises; the count of successful searches that
//! steers the search order is kept per detector (fail2ban shares it across
//! all detectors of a process, which only matters with several jails).

mod fast;
mod pyre;
mod strptime;
mod template;

pub(crate) use strptime::is_date_name;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use jiff::tz::TimeZone;

use template::{Template, LINE_BEGIN, LINE_END};

/// Where a date was found in a line and the time it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct DateMatch {
    /// Unix time in seconds, with fractions where the log has them.
    pub time: f64,
    /// Byte range of the date text in the line (fail2ban drops it before
    /// matching failregex).
    pub span: Range<usize>,
}

/// What [`DateDetector::find`] saw: a template matched, the date text it
/// cut out, and the time if fail2ban could convert it.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFound {
    /// Byte range of the date text (regex group 1). Empty when a template
    /// matched nothing (e.g. `{NONE}`): fail2ban then uses the last date
    /// seen or now.
    pub span: Range<usize>,
    /// Unix time, `None` when the text does not convert (invalid day,
    /// unknown zone...). fail2ban still cuts the text out of the line then.
    pub time: Option<f64>,
}

/// A template of a detector and how often it won, as fail2ban-regex prints
/// them under "Date template hits".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemplateHits<'a> {
    /// Name as fail2ban prints it.
    pub name: &'a str,
    /// Lines this template gave the date of.
    pub hits: u64,
    /// The `datepattern` it comes from (pattern templates only).
    pub pattern: Option<&'a str>,
    /// Its regex, in Python syntax as fail2ban prints it.
    pub regex: &'a str,
    /// fail2ban's sorting weight: hits x base weight / distance.
    pub weight: f64,
}

/// Errors building a detector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DateError {
    /// A `%` that starts no known directive, or a similar pattern error.
    #[error("invalid datepattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The regex built from a pattern does not compile.
    #[error("datepattern {pattern:?}: regex {regex:?} does not compile: {source}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// The regex fail2ban would build from it.
        regex: String,
        /// The PCRE2 error.
        source: pcre2::Error,
    },
    /// Two templates with the same name.
    #[error("there is already a date template named {0:?}")]
    Duplicate(String),
    /// A `logtimezone` fail2ban does not accept.
    #[error("unknown or unsupported time zone: {0:?}")]
    TimeZone(String),
}

/// fail2ban's default templates, in its order.
pub(super) const DEFAULT_PATTERNS: [&str; 17] = [
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    "EPOCH",
    "{^LN-BEG}%H:%M:%S",
    "^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    "TAI64N",
];

/// The default templates, built once per process.
struct Defaults {
    ex_year: String,
    /// The 17 templates as listed.
    plain: Vec<Arc<Template>>,
    /// Line-anchored copies of the unanchored ones (weight 100), then the
    /// plain ones: the list a default detector starts with.
    all: Vec<Arc<Template>>,
    /// The anchored copies by the key fail2ban caches them under: a user
    /// pattern with the same key shares the template (and its weight).
    anchored: HashMap<String, Arc<Template>>,
}

static DEFAULTS: LazyLock<Defaults> = LazyLock::new(|| {
    let year = jiff::Zoned::now().year();
    let ex_year = strptime::ex_year_regex(i32::from(year));
    let none = HashMap::new();
    let plain: Vec<Arc<Template>> = DEFAULT_PATTERNS
        .iter()
        .map(|p| template_for(p, &ex_year, &none).expect("default date templates compile"))
        .collect();
    let mut anchored = HashMap::new();
    let mut first = Vec::new();
    for t in &plain {
        if t.name.starts_with("{^LN-BEG}") || t.name.starts_with('^') {
            continue;
        }
        let key_src = format!("{{^LN-BEG}}{}", t.pattern.as_deref().unwrap_or(&t.name));
        let mut a =
            (*template_for(&key_src, &ex_year, &none).expect("anchored templates compile")).clone();
        if a.name != t.name {
            a.weight = 100.0;
            let a = Arc::new(a);
            anchored.insert(cache_key(&key_src), Arc::clone(&a));
            first.push(a);
        }
    }
    let all = first.into_iter().chain(plain.iter().cloned()).collect();
    Defaults {
        ex_year,
        plain,
        all,
        anchored,
    }
});

/// fail2ban looks templates up by the pattern, upper-cased unless it has a
/// `%` directive.
fn cache_key(pattern: &str) -> String {
    if pattern.contains('%') {
        pattern.to_owned()
    } else {
        pattern.to_uppercase()
    }
}

/// The template a single `datepattern` line stands for (special names
/// EPOCH, LEPOCH, TAI64N and `{EPOCH}` markers, else a strptime pattern).
fn template_for(
    pattern: &str,
    ex_year: &str,
    anchored: &HashMap<String, Arc<Template>>,
) -> Result<Arc<Template>, DateError> {
    let key = cache_key(pattern);
    if let Some(t) = anchored.get(&key) {
        return Ok(Arc::clone(t));
    }
    // Many jails share a datepattern (their filters include the same
    // common.conf lines): while one detector holds its template, the
    // others reuse it instead of compiling their own.
    type Built = Vec<((String, String), Weak<Template>)>;
    static BUILT: Mutex<Built> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    built.retain(|(_, w)| w.strong_count() > 0);
    if let Some(t) = built
        .iter()
        .find(|((p, y), _)| p == pattern && y == ex_year)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(t);
    }
    let t = Arc::new(
        if key.contains("EPOCH") && !template::epoch_markers(pattern).is_empty() {
            Template::epoch(false, Some(pattern), key.contains("LEPOCH"))?
        } else {
            match key.as_str() {
                "EPOCH" => Template::epoch(false, None, false)?,
                "{^LN-BEG}EPOCH" | "^EPOCH" => Template::epoch(true, None, false)?,
                "LEPOCH" => Template::epoch(false, None, true)?,
                "{^LN-BEG}LEPOCH" | "^LEPOCH" => Template::epoch(true, None, true)?,
                "TAI64N" => Template::tai64n(false)?,
                "{^LN-BEG}TAI64N" | "^TAI64N" => Template::tai64n(true)?,
                _ => Template::pattern(pattern, ex_year)?,
            }
        },
    );
    built.push(((pattern.to_owned(), ex_year.to_owned()), Arc::downgrade(&t)));
    Ok(t)
}

/// Drops the boundaries a template adds itself, so that it can sit inside a
/// `{DATE}` of a user pattern.
fn unbound(s: &str) -> &str {
    let s = s.strip_prefix("{UNB}").unwrap_or(s);
    let s = s.strip_prefix("{^LN-BEG}").unwrap_or(s);
    let s = s
        .strip_prefix(r"(^|\b|\W)")
        .or_else(|| s.strip_prefix(r"(?:^|\b|\W)"))
        .unwrap_or(s);
    s.strip_suffix(r"(?=\b|\W|$)").unwrap_or(s)
}

/// Replaces each unescaped `{DATE}` (any case) of `pre` by `with`.
fn replace_date(pre: &str, with: &str) -> String {
    let upper = pre.to_ascii_uppercase();
    let mut out = String::with_capacity(pre.len() + with.len());
    let mut last = 0;
    let mut i = 0;
    while let Some(off) = upper[i..].find("{DATE}") {
        let at = i + off;
        if at == 0 || pre.as_bytes()[at - 1] != b'\\' {
            out.push_str(&pre[last..at]);
            out.push_str(with);
            last = at + 6;
        }
        i = at + 6;
    }
    out.push_str(&pre[last..]);
    out
}

struct Entry {
    tpl: Arc<Template>,
    locs: crate::filter::pcre::MatchState,
    /// Lines won.
    hits: u64,
    /// Successful searches, won or not (fail2ban's `template.hits`).
    matched: u64,
    /// Byte range of the search `locs` holds the captures of.
    locs_range: Option<(usize, usize)>,
    last_used: f64,
    /// Char offset of its last winning match.
    distance: usize,
}

impl Entry {
    fn new(tpl: Arc<Template>) -> Entry {
        Entry {
            locs: tpl.capture_locations(),
            tpl,
            hits: 0,
            matched: 0,
            locs_range: None,
            last_used: 0.0,
            distance: 0x7fff_ffff,
        }
    }

    fn weight(&self) -> f64 {
        self.hits as f64 * self.tpl.weight / self.distance.max(1) as f64
    }
}

/// A match found during one detection: template index, char offsets of the
/// whole match, byte offsets of the match and of the date text.
#[derive(Clone)]
struct Cand {
    idx: usize,
    dist: usize,
    end: usize,
    date: Option<Range<usize>>,
    all: Range<usize>,
    /// Byte range searched.
    range: (usize, usize),
}

/// Finds dates in log lines; see the module documentation.
pub struct DateDetector {
    entries: Vec<Entry>,
    /// Char offset of the last winning match, the char before it and the
    /// char at it (`None`: outside the line).
    last_pos: (usize, Option<char>, Option<char>),
    /// Char end of the last winning match, the char before and after it.
    last_end: (usize, Option<char>, Option<char>),
    last_idx: usize,
    first_unused: usize,
    default_tz: Option<i32>,
    zone: strptime::LocalZone,
    /// Features of the line being searched (set by `find`).
    feats: u8,
    /// The last pattern time converted: consecutive lines mostly carry the
    /// same date, and strptime's work is a good part of a line's cost.
    conv: ConvCache,
    /// Times of the hand matcher's lines.
    minute: fast::MinuteCache,
    /// Tests turn the hand matcher off to compare with the regex path.
    #[cfg(test)]
    no_fast: bool,
}

/// Template (by address), local `now` seconds and field texts of the last
/// conversion, and its result.
#[derive(Default)]
struct ConvCache {
    tpl: usize,
    now: i64,
    key: Vec<u8>,
    time: Option<f64>,
    valid: bool,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for DateDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DateDetector")
            .field("templates", &self.templates().collect::<Vec<_>>())
            .field("default_tz", &self.default_tz)
            .finish_non_exhaustive()
    }
}

/// Seconds after which fail2ban considers a template long unused.
const UNUSED_TIME: f64 = 300.0;

impl DateDetector {
    /// A detector without templates (finds no dates).
    pub(crate) fn empty() -> DateDetector {
        DateDetector {
            entries: Vec::new(),
            last_pos: (1, None, None),
            last_end: (0x7fff_ffff, None, None),
            last_idx: usize::MAX,
            first_unused: 0,
            default_tz: None,
            zone: strptime::LocalZone::new(TimeZone::system()),
            feats: 0,
            conv: ConvCache::default(),
            minute: fast::MinuteCache::default(),
            #[cfg(test)]
            no_fast: false,
        }
    }

    /// fail2ban's default template set, local time in the system zone (the
    /// `TZ` environment variable, else /etc/localtime).
    pub fn new_default() -> DateDetector {
        let mut dd = DateDetector::empty();
        dd.add_defaults(None);
        // Kept for the life of a jail: no room left over from growing.
        dd.entries.shrink_to_fit();
        dd
    }

    /// A detector for a filter's `datepattern` value (after config
    /// interpolation, so `%` is single): one pattern per line. Besides
    /// strptime patterns it takes `{^LN-BEG}` (the line-anchored defaults),
    /// `{DEFAULT}`, patterns with `{DATE}` (each default inside the pattern),
    /// `{NONE}`, EPOCH, LEPOCH and TAI64N. An empty value means the defaults.
    pub fn from_pattern(value: &str) -> Result<DateDetector, DateError> {
        let mut dd = DateDetector::empty();
        for p in value.split('\n').map(str::trim).filter(|p| !p.is_empty()) {
            dd.append(p)?;
        }
        if dd.entries.is_empty() {
            dd.add_defaults(None);
        }
        dd.entries.shrink_to_fit();
        Ok(dd)
    }

    fn push(&mut self, tpl: Arc<Template>, ignore_dup: bool) -> Result<(), DateError> {
        // A scan rather than a set of names: a daemon keeps a detector per
        // jail, and a few dozen templates make the scan cheap.
        if self.entries.iter().any(|e| e.tpl.name == tpl.name) {
            if ignore_dup {
                return Ok(());
            }
            return Err(DateError::Duplicate(tpl.name.clone()));
        }
        self.entries.push(Entry::new(tpl));
        Ok(())
    }

    fn add_defaults(&mut self, only_flags: Option<u8>) {
        for t in &DEFAULTS.all {
            if only_flags.is_some_and(|f| t.flags & f == 0) {
                continue;
            }
            // only duplicate names can fail, and those are ignored here
            let _ = self.push(Arc::clone(t), true);
        }
    }

    fn append(&mut self, pattern: &str) -> Result<(), DateError> {
        let key = cache_key(pattern);
        let d = &*DEFAULTS;
        match key.as_str() {
            "{^LN-BEG}" => self.add_defaults(Some(LINE_BEGIN)),
            "{DEFAULT}" => self.add_defaults(None),
            k if k.contains("{DATE}") => {
                let ignore_dup = !self.entries.is_empty();
                for t in &d.plain {
                    let inner = t.pattern.as_deref().unwrap_or(&t.name);
                    let wrapped = replace_date(pattern, unbound(inner));
                    let tpl = template_for(&wrapped, &d.ex_year, &d.anchored)?;
                    self.push(tpl, ignore_dup)?;
                }
            }
            "{NONE}" => {
                let tpl = Arc::new(Template::pattern("{UNB}^", &d.ex_year)?);
                self.push(tpl, false)?;
            }
            _ => {
                let tpl = template_for(pattern, &d.ex_year, &d.anchored)?;
                self.push(tpl, false)?;
            }
        }
        Ok(())
    }

    /// Sets `logtimezone`: the zone of dates that carry none. fail2ban
    /// accepts `UTC`/`GMT`/`Z` or a known abbreviation (CET, EST, ...),
    /// optionally followed by `[+-]hh[[:]mm]`, or the offset alone. `None`
    /// means local time.
    pub fn set_timezone(&mut self, tz: Option<&str>) -> Result<(), DateError> {
        self.conv.valid = false;
        self.minute.clear();
        self.default_tz = match tz {
            None => None,
            Some(tz) => {
                Some(strptime::zone_offset(tz).ok_or_else(|| DateError::TimeZone(tz.to_owned()))?)
            }
        };
        Ok(())
    }

    /// Sets the zone "local time" means (the system zone by default); for
    /// tests and for daemons that must not depend on their environment.
    pub fn set_local_timezone(&mut self, tz: TimeZone) {
        self.conv.valid = false;
        self.minute.clear();
        self.zone = strptime::LocalZone::new(tz);
    }

    /// The templates in their current order, with their hits.
    pub fn templates(&self) -> impl Iterator<Item = TemplateHits<'_>> + '_ {
        self.entries.iter().map(|e| TemplateHits {
            name: &e.tpl.name,
            hits: e.hits,
            pattern: e.tpl.pattern.as_deref(),
            regex: &e.tpl.regex,
            weight: e.weight(),
        })
    }

    /// Name of the template that won the last line with a date.
    pub fn last_template(&self) -> Option<&str> {
        self.entries.get(self.last_idx).map(|e| e.tpl.name.as_str())
    }

    /// The date of a line and its position, if a template matches and its
    /// text converts to a time. `now` is Unix seconds.
    pub fn match_time(&mut self, line: &str, now: f64) -> Option<DateMatch> {
        let f = self.find(line, now)?;
        if f.span.is_empty() {
            return None;
        }
        Some(DateMatch {
            time: f.time?,
            span: f.span,
        })
    }

    /// Like [`match_time`](Self::match_time), but also reports a template
    /// that matched without a usable time, as fail2ban's filter needs.
    pub fn find(&mut self, line: &str, now: f64) -> Option<DateFound> {
        if let Some(found) = self.find_syslog(line, now) {
            return Some(found);
        }
        self.feats = template::ascii_feature(line);
        let cand = self.search(line)?;
        self.win(line, &cand, now);
        let idx = self.last_idx;
        let span = match &cand.date {
            Some(r) => r.clone(),
            None => cand.all.start..cand.all.start,
        };
        let e = &mut self.entries[idx];
        if e.locs_range != Some(cand.range) {
            // the winner was searched again since this match: redo it
            let (start, end) = cand.range;
            let f = template::features_for(&mut self.feats, &e.tpl, line);
            e.tpl.search(&mut e.locs, line, start, end, f);
            e.locs_range = Some(cand.range);
        }
        let time = match self.zone.now(now) {
            Some(now) if !span.is_empty() => {
                let e = &self.entries[idx];
                let c = &mut self.conv;
                let tpl = Arc::as_ptr(&e.tpl) as usize;
                if e.tpl.time_key(&e.locs, line, &mut c.scratch) {
                    if !(c.valid && c.tpl == tpl && c.now == now.local && c.key == c.scratch) {
                        c.time = e
                            .tpl
                            .time(&e.locs, line, self.default_tz, now, &mut self.zone);
                        c.tpl = tpl;
                        c.now = now.local;
                        std::mem::swap(&mut c.key, &mut c.scratch);
                        c.valid = true;
                    }
                    c.time
                } else {
                    e.tpl
                        .time(&e.locs, line, self.default_tz, now, &mut self.zone)
                }
            }
            _ => None,
        };
        Some(DateFound { span, time })
    }

    /// What [`find`](Self::find) gives when the last winner is the anchored
    /// syslog template and its hand matcher is sure of the match: the same
    /// bookkeeping and time as a regex search, at a fraction of the cost
    /// (most lines of a syslog file take this way).
    fn find_syslog(&mut self, line: &str, now: f64) -> Option<DateFound> {
        #[cfg(test)]
        if self.no_fast {
            return None;
        }
        let i = self.last_idx;
        let e = self.entries.get_mut(i)?;
        if !e.tpl.syslog {
            return None;
        }
        let s = fast::syslog(line)?;
        // as `search` does for an anchored last winner, except that the
        // captures in `locs` are not this line's
        e.matched += 1;
        e.locs_range = None;
        // no ASCII claim: `win` then reads chars the safe way, and only
        // near the line start
        self.feats = 0;
        let cand = Cand {
            idx: i,
            dist: 0,
            end: s.len,
            date: Some(0..s.len),
            all: 0..s.len,
            range: (0, line.len()),
        };
        self.win(line, &cand, now);
        let tz = self.default_tz;
        let zone = &mut self.zone;
        let time = zone.now(now).and_then(|n| {
            self.minute.time(&s, n.local, |second| {
                let hms = [s.hour, s.minute, second];
                strptime::finish(n.year, s.month, s.day, hms, tz, true, false, n, zone)
            })
        });
        Some(DateFound {
            span: 0..s.len,
            time: time.map(|t| t as f64),
        })
    }

    /// Runs template `i` on the line within char offsets `[from, to)`.
    fn try_template(&mut self, i: usize, line: &str, from: usize, to: usize) -> Option<Cand> {
        // In an ASCII line chars are bytes: no need to count them.
        let ascii = self.feats & template::ASCII != 0;
        let (start, end) = if ascii {
            (from.min(line.len()), to.min(line.len()))
        } else {
            (
                byte_idx(line, from).unwrap_or(line.len()),
                byte_idx(line, to).unwrap_or(line.len()),
            )
        };
        let e = &mut self.entries[i];
        e.locs_range = None;
        let f = template::features_for(&mut self.feats, &e.tpl, line);
        let hit = e.tpl.search(&mut e.locs, line, start, end, f)?;
        e.locs_range = Some((start, end));
        e.matched += 1;
        let (dist, end_char) = if ascii {
            (hit.all.start, hit.all.end)
        } else {
            (char_idx(line, hit.all.start), char_idx(line, hit.all.end))
        };
        Some(Cand {
            idx: i,
            dist,
            end: end_char,
            date: hit.date,
            all: hit.all,
            range: (start, end),
        })
    }

    /// [`char_at`], without counting chars when the line is ASCII.
    fn char_at_in(&self, line: &str, c: isize) -> Option<char> {
        if self.feats & template::ASCII != 0 {
            let c = usize::try_from(c).ok()?;
            return line.as_bytes().get(c).map(|&b| char::from(b));
        }
        char_at(line, c)
    }

    fn search(&mut self, line: &str) -> Option<Cand> {
        const ANCHORED: u8 = LINE_BEGIN | LINE_END;
        let n = self.entries.len();
        let mut found: Option<Cand> = None;
        let mut skip = usize::MAX;
        let i = self.last_idx;
        if i < n {
            let flags = self.entries[i].tpl.flags;
            let m = if flags & ANCHORED != 0 {
                skip = i;
                self.try_template(i, line, 0, usize::MAX)
            } else {
                let (d, before, at) = self.last_pos;
                let (e, e_before, e_after) = self.last_end;
                // same surroundings as last time: search only there
                let left = self.char_at_in(line, d as isize - 1) == before
                    || (self.char_at_in(line, d as isize) == at
                        && !at.is_some_and(char::is_alphanumeric));
                let right = self.char_at_in(line, e as isize) == e_after
                    || (self.char_at_in(line, e as isize - 1) == e_before
                        && !e_before.is_some_and(char::is_alphanumeric));
                if left && right {
                    self.try_template(i, line, d, e)
                } else {
                    skip = i;
                    self.try_template(i, line, 0, usize::MAX)
                }
            };
            if let Some(m) = m {
                if n == 1
                    || flags & ANCHORED != 0
                    || (m.dist == self.last_pos.0 && m.end == self.last_end.0)
                {
                    return Some(m);
                }
                found = Some(m);
            }
        }
        for i in 0..n {
            if i == skip {
                continue;
            }
            let Some(m) = self.try_template(i, line, 0, usize::MAX) else {
                continue;
            };
            let e = &self.entries[i];
            if i + 1 >= n
                || e.tpl.flags & ANCHORED != 0
                || (m.dist == 0 && e.hits > 0 && self.entries[i + 1].matched == 0)
            {
                return Some(m);
            }
            if m.dist > e.distance || m.dist > self.last_pos.0 {
                // maybe a date inside the message: keep the nearest, go on
                if m.dist < found.as_ref().map_or(0x7fff_ffff, |f| f.dist) {
                    found = Some(m);
                }
                continue;
            }
            return Some(m);
        }
        found
    }

    fn win(&mut self, line: &str, m: &Cand, now: f64) {
        let mut i = m.idx;
        let e = &mut self.entries[i];
        e.hits += 1;
        e.last_used = now;
        e.distance = m.dist;
        if self.first_unused == i {
            self.first_unused += 1;
        }
        self.last_pos = (
            m.dist,
            self.char_at_in(line, m.dist as isize - 1),
            self.char_at_in(line, m.dist as isize),
        );
        let before_end = if m.end == 0 {
            line.chars().next_back()
        } else {
            self.char_at_in(line, m.end as isize - 1)
        };
        self.last_end = (m.end, before_end, self.char_at_in(line, m.end as isize));
        if i != 0 && i != self.last_idx {
            i = self.reorder(i);
        }
        self.last_idx = i;
    }

    /// Moves a winner up: to the first unused place or half-way to the
    /// front if it outweighs what is there, else one place if it outweighs
    /// its neighbour.
    fn reorder(&mut self, num: usize) -> usize {
        let e = &self.entries[num];
        let untime = e.last_used - UNUSED_TIME;
        let weight = e.weight();
        let moveable = |pos: usize| {
            let p = &self.entries[pos];
            weight > p.weight() || untime > p.last_used
        };
        let mut pos = if self.first_unused < num {
            self.first_unused
        } else {
            num / 2
        };
        if !moveable(pos) {
            if pos == num - 1 {
                return num;
            }
            pos = num - 1;
            if !moveable(pos) {
                return num;
            }
        }
        let e = self.entries.remove(num);
        self.entries.insert(pos, e);
        while self.first_unused < self.entries.len() && self.entries[self.first_unused].hits > 0 {
            self.first_unused += 1;
        }
        pos
    }
}

/// Char index of a byte offset on a char boundary.
fn char_idx(line: &str, b: usize) -> usize {
    let prefix = &line.as_bytes()[..b];
    if prefix.is_ascii() {
        b
    } else {
        line[..b].chars().count()
    }
}

/// Byte offset of a char index; `None` past the end of the line.
fn byte_idx(line: &str, c: usize) -> Option<usize> {
    if c > line.len() {
        // a line never has more chars than bytes
        return None;
    }
    if line.as_bytes()[..c].is_ascii() {
        return Some(c);
    }
    line.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(line.len()))
        .nth(c)
}

/// Python's `line[c:c+1]`: the char at a char index, `None` for the empty
/// string (negative or past the end).
fn char_at(line: &str, c: isize) -> Option<char> {
    let c = usize::try_from(c).ok()?;
    line.get(byte_idx(line, c)?..)?.chars().next()
}

#[cfg(test)]
mod tests;
