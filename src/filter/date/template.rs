//! One date template: how fail2ban turns a `datepattern` into a regex
//! (boundaries, `{^LN-BEG}`, `{UNB}`, `**`), the regex itself, and what the
//! match means (strptime fields, epoch seconds or a TAI64N label).

use std::ops::Range;

use std::sync::Arc;

use pcre2::bytes::{Regex, RegexBuilder};

use crate::filter::pcre::{MatchState, SharedCode};

use super::pyre::to_pcre2;
use super::strptime::{self, Field, Fields, LocalZone, Now};
use super::DateError;

/// The regex only matches at the beginning of the line.
pub(super) const LINE_BEGIN: u8 = 8;
/// The regex only matches at the end of the line.
pub(super) const LINE_END: u8 = 4;
const WORD_BEGIN: u8 = 2;
const WORD_END: u8 = 1;

/// Which boundary a template gets on its left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Begin {
    /// None (`{UNB}` or the pattern asks for none).
    No,
    /// Start of a word: `(?=^|\b|\W)`.
    Word,
    /// Start of the line, after at most two non-word characters.
    Line,
}

#[derive(Debug, Clone)]
enum Kind {
    Pattern {
        fields: Vec<(usize, Field)>,
    },
    /// `anywhere`: the default unanchored epoch, which can only start at
    /// the line start, after a leading `[`, or after `audit(`.
    Epoch {
        group: usize,
        long: bool,
        anywhere: bool,
    },
    Tai64n,
}

/// Line features ([`line_features`]): the line is all ASCII.
pub(super) const ASCII: u8 = 1;
/// A month abbreviation (any case) followed by a space.
const MONTH_SPACE: u8 = 2;
/// A digit, `-` or `/`, then a digit or a space.
const DIGIT_SEP: u8 = 4;
/// Month-space was looked for.
const SCANNED_MONTH: u8 = 0x40;
/// Digit-separator was looked for.
const SCANNED_SEP: u8 = 0x20;

/// Line features as far as `tpl` needs them: ASCII is known from the
/// start (`ascii_feature`), each other feature is scanned for once, on the
/// first template that needs it.
pub(super) fn features_for(feats: &mut u8, tpl: &Template, line: &str) -> u8 {
    if tpl.needs == 0 || *feats & ASCII == 0 {
        return *feats;
    }
    let unknown = (tpl.needs & MONTH_SPACE != 0 && *feats & SCANNED_MONTH == 0)
        || (tpl.needs & DIGIT_SEP != 0 && *feats & SCANNED_SEP == 0);
    if unknown {
        // One plain pass looks for both (cheaper than a memchr call per
        // space) and stops once it found what this template needs.
        let (found, complete) = scan(line.as_bytes(), tpl.needs);
        let scanned = if complete {
            SCANNED_MONTH | SCANNED_SEP
        } else {
            (if found & MONTH_SPACE != 0 {
                SCANNED_MONTH
            } else {
                0
            }) | (if found & DIGIT_SEP != 0 {
                SCANNED_SEP
            } else {
                0
            })
        };
        *feats |= found | scanned;
    }
    *feats
}

/// The feature a line starts with before any scan.
pub(super) fn ascii_feature(line: &str) -> u8 {
    if line.is_ascii() {
        ASCII
    } else {
        0
    }
}

/// Default patterns whose every match holds `%b ` (a month abbreviation and
/// a space): a line without one cannot match them.
const NEED_MONTH_SPACE: [&str; 5] = [
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%b %d, %ExY %I:%M:%S %p",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
];
/// Default patterns whose every match holds a digit, `-` or `/`, and a
/// digit or space (`%d/%m`, `%m/%d`, `%m-%d`; `%d` may start with a space).
const NEED_DIGIT_SEP: [&str; 3] = [
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
];

/// Every feature of a line at once (the prefilter tests use it). Only
/// ASCII lines get features: elsewhere caseless matching and Unicode digits
/// make the shortcuts unsound, and nothing is ruled out.
#[cfg(test)]
pub(super) fn line_features(line: &str) -> u8 {
    let b = line.as_bytes();
    if !b.is_ascii() {
        return 0;
    }
    ASCII | scan(b, 0).0
}

/// `MONTH_SPACE` and `DIGIT_SEP` of an ASCII line, and whether the whole
/// line was scanned: it stops early once all of `want` is found.
fn scan(b: &[u8], want: u8) -> (u8, bool) {
    let mut f = 0;
    for (p, &c) in b.iter().enumerate() {
        match c {
            // `| 0x20` lower-cases ASCII letters and turns no other byte
            // into one, and month names are all letters.
            b' ' if f & MONTH_SPACE == 0 && p >= 3 => {
                let m = u32::from_le_bytes([b[p - 3] | 0x20, b[p - 2] | 0x20, b[p - 1] | 0x20, 0]);
                if MONTHS.contains(&m) {
                    f |= MONTH_SPACE;
                    if want != 0 && f & want == want {
                        return (f, false);
                    }
                }
            }
            b'-' | b'/'
                if f & DIGIT_SEP == 0
                    && p >= 1
                    && b[p - 1].is_ascii_digit()
                    && b.get(p + 1)
                        .is_some_and(|&c| c.is_ascii_digit() || c == b' ') =>
            {
                f |= DIGIT_SEP;
                if want != 0 && f & want == want {
                    return (f, false);
                }
            }
            _ => {}
        }
    }
    (f, true)
}

const MONTHS: [u32; 12] = {
    let names = *b"janfebmaraprmayjunjulaugsepoctnovdec";
    let mut m = [0u32; 12];
    let mut i = 0;
    while i < 12 {
        m[i] = u32::from_le_bytes([names[3 * i], names[3 * i + 1], names[3 * i + 2], 0]);
        i += 1;
    }
    m
};

/// The features a template's pattern needs (0: no prefilter).
fn needs_for(pattern: &str) -> u8 {
    let p = pattern.strip_prefix("{^LN-BEG}").unwrap_or(pattern);
    if NEED_MONTH_SPACE.contains(&p) {
        MONTH_SPACE
    } else if NEED_DIGIT_SEP.contains(&p) {
        DIGIT_SEP
    } else {
        0
    }
}

/// A compiled date template.
#[derive(Debug, Clone)]
pub(super) struct Template {
    /// Name as fail2ban prints it (fail2ban-regex "Date template hits").
    pub name: String,
    /// The `datepattern` it was built from, for pattern templates.
    pub pattern: Option<String>,
    /// The regex in Python syntax, as fail2ban builds it.
    pub regex: String,
    pub flags: u8,
    /// 100 for the line-anchored copies of the default templates, so that
    /// they bubble up first.
    pub weight: f64,
    /// What searches run (see `compile_matchers`).
    m_utf: Arc<SharedCode>,
    m_ascii: Option<Arc<SharedCode>>,
    /// Line features every match needs ([`needs_for`]).
    needs: u8,
    /// `{^LN-BEG}` templates: bytes the date can start with.
    line_start: Option<Box<[bool; 256]>>,
    /// Matches may be found by [`super::fast::syslog`] instead of the regex.
    pub syslog: bool,
    kind: Kind,
}

/// Where one template matched.
pub(super) struct Hit {
    /// Whole match (byte offsets).
    pub all: Range<usize>,
    /// Group 1, the date text fail2ban cuts out of the line (`None` if the
    /// group did not take part).
    pub date: Option<Range<usize>>,
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// End of a `(?flags)` group at `i` (`\(\?\w+\)`), if there is one.
fn flag_group_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'(') || b.get(i + 1) != Some(&b'?') {
        return None;
    }
    let mut j = i + 2;
    while j < b.len() && is_word(b[j]) {
        j += 1;
    }
    (j > i + 2 && b.get(j) == Some(&b')')).then_some(j + 1)
}

fn count_parens(b: &[u8], i: usize) -> usize {
    b[i..].iter().take_while(|&&c| c == b'(').count()
}

/// Positions reachable after `\(*(?:\(\?\w+\))?` at the start of `b`, in the
/// order a backtracking engine tries them.
fn after_open(b: &[u8]) -> Vec<usize> {
    let n = count_parens(b, 0);
    let mut v = Vec::new();
    for k in (0..=n).rev() {
        if let Some(e) = flag_group_end(b, k) {
            v.push(e);
        }
        v.push(k);
    }
    v
}

/// The regex begins with a line anchor or `**`, so it needs no left word
/// boundary.
fn starts_unbound(r: &str) -> bool {
    let b = r.as_bytes();
    after_open(b).into_iter().any(|c| {
        let p = c + count_parens(b, c);
        b.get(c) == Some(&b'^')
            || b[p..].starts_with(b"**")
            || (b.get(c) == Some(&b'(')
                && (b[c + 1..].starts_with(b"^") || b[c + 1..].starts_with(b"?:^")))
    })
}

/// The byte before `i` is not a backslash.
fn unescaped(b: &[u8], i: usize) -> bool {
    i == 0 || b[i - 1] != b'\\'
}

/// The regex ends with `$`, `\b`, `\s` or `**`, so it needs no right word
/// boundary.
fn ends_unbound(r: &str) -> bool {
    let b = r.as_bytes();
    let n = b.len();
    let tail = |s: &[u8]| n >= s.len() && b.ends_with(s) && unescaped(b, n - s.len());
    if tail(b"$") || tail(b"$)") || tail(b"\\b") || tail(b"\\s") {
        return true;
    }
    trailing_stars(b).is_some()
}

/// Start of a `**` followed only by `)`s at the end of `b`.
fn trailing_stars(b: &[u8]) -> Option<usize> {
    let m = b.len() - b.iter().rev().take_while(|&&c| c == b')').count();
    (m >= 2 && &b[m - 2..m] == b"**" && unescaped(b, m - 2)).then(|| m - 2)
}

/// Has a capturing group: a `(` neither escaped, nor followed by `?`, nor
/// right after `(?`.
fn has_group(r: &str) -> bool {
    let b = r.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'('
            && b.get(i + 1) != Some(&b'?')
            && unescaped(b, i)
            && !(i >= 2 && &b[i - 2..i] == b"(?")
    })
}

/// Wraps the body of the regex into group 1, leaving a leading `^` (and
/// flag groups around it) and a trailing `$` outside.
fn wrap_group(r: &str) -> String {
    if r.contains('\n') {
        return r.to_owned();
    }
    let b = r.as_bytes();
    let mut p = flag_group_end(b, 0).unwrap_or(0);
    if b.get(p) == Some(&b'^') {
        p += 1;
    }
    if let Some(e) = flag_group_end(b, p) {
        p = e;
    }
    let (body, dollar) = match r[p..].strip_suffix('$') {
        Some(body) => (body, "$"),
        None => (&r[p..], ""),
    };
    format!("{}({}){}", &r[..p], body, dollar)
}

fn line_begin(r: &str) -> bool {
    let b = r.as_bytes();
    [flag_group_end(b, 0), Some(0)]
        .into_iter()
        .flatten()
        .any(|c| {
            let s = &b[c..];
            s.starts_with(b"^")
                || ((s.starts_with(b"(^") || s.starts_with(b"(?:^"))
                    && s.get(if s[1] == b'^' { 2 } else { 4 }) != Some(&b'|'))
        })
}

fn line_end(r: &str) -> bool {
    let b = r.as_bytes();
    let n = b.len();
    [1, 2].into_iter().any(|k| {
        n >= k
            && (if k == 1 {
                b.ends_with(b"$")
            } else {
                b.ends_with(b"$)")
            })
            && (n == k || !matches!(b[n - k - 1], b'\\' | b'|'))
    })
}

/// Removes the `**` markers (no boundary) at both ends.
fn strip_stars(r: &str) -> String {
    let b = r.as_bytes();
    let mut cut: Vec<usize> = Vec::new();
    for c in after_open(b) {
        let p = c + count_parens(b, c);
        if b[p..].starts_with(b"**") {
            cut.push(p);
            break;
        }
    }
    if let Some(p) = trailing_stars(b) {
        if cut.first().is_none_or(|&c| p >= c + 2) {
            cut.push(p);
        }
    }
    let mut out = r.to_owned();
    for &p in cut.iter().rev() {
        out.replace_range(p..p + 2, "");
    }
    out
}

/// The first `(?flags)` with lower-case letters, which fail2ban moves to the
/// front of the final regex.
fn global_flags(r: &str) -> Option<Range<usize>> {
    let b = r.as_bytes();
    (0..b.len()).find_map(|i| {
        if b[i] != b'(' || b.get(i + 1) != Some(&b'?') {
            return None;
        }
        let n = b[i + 2..]
            .iter()
            .take_while(|c| c.is_ascii_lowercase())
            .count();
        (n > 0 && b.get(i + 2 + n) == Some(&b')')).then(|| i..i + 3 + n)
    })
}

/// Applies fail2ban's boundary rules to a regex; returns it with its flags.
/// `name` gets the `{^LN-BEG}` prefix when the line boundary is added.
fn bound(regex: &str, begin: Begin, end: bool, name: &mut String) -> (String, u8) {
    let mut r = regex.trim().to_owned();
    let gf = global_flags(&r).map(|g| {
        let s = r[g.clone()].to_owned();
        r.replace_range(g, "");
        s
    });
    let bound_begin = begin != Begin::No && !starts_unbound(&r);
    let bound_end = end && !ends_unbound(&r);
    if !has_group(&r) {
        r = wrap_group(&r);
    }
    let mut flags = 0;
    if bound_begin {
        if begin == Begin::Line {
            flags |= LINE_BEGIN;
            r.insert_str(0, r"^(?:\W{0,2})?");
            if !name.starts_with("{^LN-BEG}") {
                name.insert_str(0, "{^LN-BEG}");
            }
        } else {
            flags |= WORD_BEGIN;
            r.insert_str(0, r"(?=^|\b|\W)");
        }
    }
    if bound_end {
        flags |= WORD_END;
        r.push_str(r"(?=\b|\W|$)");
    }
    if line_begin(&r) {
        flags |= LINE_BEGIN;
    }
    if line_end(&r) {
        flags |= LINE_END;
    }
    let mut r = strip_stars(&r);
    if let Some(gf) = gf {
        r.insert_str(0, &gf);
    }
    (r, flags)
}

/// Backtracking steps allowed per start position. Built-in templates need a
/// few dozen; this only stops a catastrophic user pattern (the crate has no
/// match-limit setter, hence the inline start option).
const MATCH_LIMIT: u32 = 100_000;

/// The pattern as fail2ban's users see it fail: compiled through the `pcre2`
/// crate for its error and group names (matching uses `compile_matchers`).
fn compile(pattern: &str, regex: &str) -> Result<Regex, DateError> {
    RegexBuilder::new()
        .utf(true)
        .ucp(true)
        .build(&format!(
            "(*LIMIT_MATCH={MATCH_LIMIT}){}",
            with_start_class(&to_pcre2(regex), true)
        ))
        .map_err(|source| DateError::Regex {
            pattern: pattern.to_owned(),
            regex: regex.to_owned(),
            source,
        })
}

/// The regexes a template matches with: the pattern as compiled above
/// (UTF, Unicode properties), and a byte-mode copy for lines that are all
/// ASCII, where both read every byte alike and the copy needs no Unicode
/// tables for `\b`, `\d` or `\w`. The copy is only made from an ASCII
/// pattern; anything it cannot take stays on the UTF regex.
fn compile_matchers(
    pattern: &str,
    regex: &str,
) -> Result<(Arc<SharedCode>, Option<Arc<SharedCode>>), DateError> {
    let pcre = to_pcre2(regex);
    let utf = SharedCode::new(
        &format!(
            "(*LIMIT_MATCH={MATCH_LIMIT}){}",
            with_start_class(&pcre, true)
        ),
        true,
    )
    .map_err(|e| DateError::Pattern {
        pattern: pattern.to_owned(),
        reason: e.to_string(),
    })?;
    let ascii = if pcre.is_ascii() && !pcre.contains("(*") {
        SharedCode::new(
            &format!(
                "(*LIMIT_MATCH={MATCH_LIMIT}){}",
                with_start_class(&pcre, false)
            ),
            false,
        )
        .ok()
        .filter(|a| a.group_count() == utf.group_count())
        .map(Arc::new)
    } else {
        None
    };
    Ok((Arc::new(utf), ascii))
}

/// The word boundary fail2ban puts before a date, in PCRE2 syntax.
const WORD_BOUNDARY: &str = r"(?=^|\b|\W)";

/// Puts a lookahead for the bytes a date can start with before the word
/// boundary. The boundary alone hides from PCRE2 where a match can start,
/// so it tries every position of the line; with the lookahead it skips to
/// the next possible first byte. The lookahead only repeats what the date
/// regex requires anyway: the template matches exactly the same text.
/// The left boundary of `{^LN-BEG}` templates, in PCRE2 syntax.
const LINE_BOUNDARY: &str = r"^(?:\W{0,2})?";

/// For a template anchored by `{^LN-BEG}` (after global flags only, none
/// of them multi-line): the bytes its date can start with. The date then
/// starts at the line start or after one or two non-word characters, so a
/// line whose first word character comes earlier than a possible first
/// byte cannot match: answering that here saves a call into PCRE2 for most
/// of these templates on most lines.
fn line_start_bytes(pcre: &str) -> Option<Box<[bool; 256]>> {
    let at = pcre.find(LINE_BOUNDARY)?;
    let (flags, rest) = (&pcre[..at], &pcre[at + LINE_BOUNDARY.len()..]);
    let only_flags = flags.split_inclusive(')').all(|f| {
        f.strip_prefix("(?")
            .and_then(|f| f.strip_suffix(')'))
            .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphabetic()))
    });
    if !only_flags || flags.contains('m') || flags.contains('x') {
        return None;
    }
    SharedCode::new(&format!("{flags}{rest}"), true)
        .ok()?
        .start_bytes()
}

/// Whether a line can hold a date that starts with one of `first` within
/// its first three bytes, after non-word characters only. Non-ASCII bytes
/// (Unicode word characters or not) leave the answer to PCRE2.
fn may_start_line(line: &[u8], first: &[bool; 256]) -> bool {
    for &b in line.iter().take(3) {
        if first[usize::from(b)] || !b.is_ascii() {
            return true;
        }
        if b.is_ascii_alphanumeric() || b == b'_' {
            return false;
        }
    }
    false
}

fn with_start_class(pcre: &str, utf: bool) -> String {
    let Some(at) = pcre.find(WORD_BOUNDARY) else {
        return pcre.to_owned();
    };
    let (flags, rest) = (&pcre[..at], &pcre[at + WORD_BOUNDARY.len()..]);
    // Only a leading boundary, after global flags such as `(?iu)`.
    let only_flags = flags.split_inclusive(')').all(|f| {
        f.strip_prefix("(?")
            .and_then(|f| f.strip_suffix(')'))
            .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphabetic()))
    });
    if !only_flags {
        return pcre.to_owned();
    }
    let date = format!("{flags}{rest}");
    let flags_utf = super::super::pcre::CompileFlags::default();
    let Ok(re) = super::super::pcre::Regex::new(&date, flags_utf, Default::default()) else {
        return pcre.to_owned();
    };
    let Some(set) = re.start_bytes() else {
        return pcre.to_owned();
    };
    let mut class = String::new();
    for b in 0..0x80u8 {
        if set[usize::from(b)] {
            class.push_str(&format!("\\x{{{b:02x}}}"));
        }
    }
    if set[0x80..].iter().any(|&s| s) {
        // In UTF mode these are lead bytes: allow every non-ASCII char.
        class.push_str(if utf {
            "\\x{80}-\\x{10ffff}"
        } else {
            "\\x{80}-\\x{ff}"
        });
    }
    if class.is_empty() {
        return pcre.to_owned();
    }
    format!("{flags}(?=[{class}]){WORD_BOUNDARY}{rest}")
}

/// `{EPOCH}`/`{LEPOCH}` (any case, not escaped) in a pattern: their ranges.
pub(super) fn epoch_markers(pattern: &str) -> Vec<(Range<usize>, bool)> {
    let upper = pattern.to_ascii_uppercase();
    let b = upper.as_bytes();
    let mut v = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' && unescaped(b, i) {
            for (tok, long) in [(&b"{EPOCH}"[..], false), (&b"{LEPOCH}"[..], true)] {
                if b[i..].starts_with(tok) {
                    v.push((i..i + tok.len(), long));
                }
            }
        }
        i += 1;
    }
    v
}

const EPOCH_RE: &str = r"\d{10,11}\b(?:\.\d{3,6})?";
const LONG_EPOCH_RE: &str = r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?";

impl Template {
    fn new(
        name: String,
        pattern: Option<String>,
        regex: String,
        flags: u8,
        kind: Kind,
    ) -> Result<Template, DateError> {
        let re = compile(pattern.as_deref().unwrap_or(&name), &regex)?;
        let (m_utf, m_ascii) = compile_matchers(pattern.as_deref().unwrap_or(&name), &regex)?;
        let needs = pattern.as_deref().map_or(0, needs_for);
        let line_start = line_start_bytes(&to_pcre2(&regex));
        let kind = match kind {
            Kind::Pattern { .. } => Kind::Pattern {
                fields: re
                    .capture_names()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| Some((i, Field::from_group(n.as_deref()?)?)))
                    .take(strptime::MAX_FIELDS)
                    .collect(),
            },
            k => k,
        };
        Ok(Template {
            name,
            pattern,
            regex,
            flags,
            weight: 1.0,
            m_utf,
            m_ascii,
            needs,
            line_start,
            syslog: false,
            kind,
        })
    }

    /// A strptime pattern (`DatePatternRegex`), with `{UNB}` and
    /// `{^LN-BEG}` prefixes.
    pub(super) fn pattern(pattern: &str, ex_year: &str) -> Result<Template, DateError> {
        let (mut begin, mut end) = (Begin::Word, true);
        let mut p = pattern;
        if let Some(rest) = p.strip_prefix("{UNB}") {
            p = rest;
            begin = Begin::No;
            end = false;
        }
        if begin != Begin::No {
            if let Some(rest) = p.strip_prefix("{^LN-BEG}") {
                p = rest;
                begin = Begin::Line;
            }
        }
        let (mut regex, mut name) =
            strptime::expand(p, ex_year).ok_or_else(|| DateError::Pattern {
                pattern: pattern.to_owned(),
                reason: "unknown directive or unescaped `%`".to_owned(),
            })?;
        if strptime::wants_ignore_case(p) {
            regex.insert_str(0, "(?iu)");
        }
        let (regex, flags) = bound(&regex, begin, end, &mut name);
        let mut t = Template::new(
            name,
            Some(pattern.to_owned()),
            regex,
            flags,
            Kind::Pattern { fields: Vec::new() },
        )?;
        t.syslog = pattern == super::fast::SYSLOG_PATTERN;
        Ok(t)
    }

    /// Unix seconds (`EPOCH`) or milli/microseconds too (`LEPOCH`): at the
    /// line start, in `[...]` there, or in a SELinux `audit(...)`; or only at
    /// the line start; or where a custom pattern puts `{EPOCH}`.
    pub(super) fn epoch(
        line_begin_only: bool,
        pattern: Option<&str>,
        long: bool,
    ) -> Result<Template, DateError> {
        let num = if long { LONG_EPOCH_RE } else { EPOCH_RE };
        let mut name = match (pattern, long) {
            (Some(p), _) => p.to_owned(),
            (None, false) => "Epoch".to_owned(),
            (None, true) => "LongEpoch".to_owned(),
        };
        let anywhere = pattern.is_none() && !line_begin_only;
        let (regex, flags, group) = if let Some(p) = pattern {
            let mut r = String::from("(");
            let mut last = 0;
            for (m, _) in epoch_markers(p) {
                r.push_str(&p[last..m.start]);
                r.push('(');
                r.push_str(num);
                r.push(')');
                last = m.end;
            }
            r.push_str(&p[last..]);
            r.push(')');
            let (r, f) = bound(&r, Begin::Word, true, &mut name);
            (r, f, 2)
        } else if !line_begin_only {
            let r = r"((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))%s)(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))"
                .replace("%s", num);
            let (r, f) = bound(&r, Begin::No, true, &mut name);
            (r, f, 1)
        } else {
            let r = r"((?P<square>(?<=^\[))?%s)(?(square)(?=\]))".replace("%s", num);
            let (r, f) = bound(&r, Begin::Line, true, &mut name);
            (r, f, 1)
        };
        Template::new(
            name,
            None,
            regex,
            flags,
            Kind::Epoch {
                group,
                long,
                anywhere,
            },
        )
    }

    /// A TAI64N label (`@` and 24 hex digits), anywhere or at the line start.
    pub(super) fn tai64n(line_begin: bool) -> Result<Template, DateError> {
        let mut name = "TAI64N".to_owned();
        let begin = if line_begin { Begin::Line } else { Begin::No };
        let (regex, flags) = bound("@[0-9a-f]{24}", begin, true, &mut name);
        Template::new(name, None, regex, flags, Kind::Tai64n)
    }

    pub(super) fn capture_locations(&self) -> MatchState {
        MatchState::new(self.m_utf.group_count())
    }

    /// Searches `line[..end]` from `start` (byte offsets; a regex may look
    /// behind `start`, never past `end`). `feats`: the line's
    /// [`line_features`].
    pub(super) fn search(
        &self,
        locs: &mut MatchState,
        line: &str,
        start: usize,
        end: usize,
        feats: u8,
    ) -> Option<Hit> {
        if self.needs != 0 && feats & ASCII != 0 && feats & self.needs == 0 {
            return None;
        }
        if let Some(first) = &self.line_start {
            if start > 0 || !may_start_line(line.as_bytes(), first) {
                return None;
            }
        }
        let end = end.min(line.len());
        if start > end {
            return None;
        }
        let subject = &line.as_bytes()[..end];
        let text = line.get(..end)?;
        if let Kind::Epoch { anywhere: true, .. } = self.kind {
            // PCRE2 cannot see that this regex only starts at three kinds
            // of places and tries each position of the line with its
            // lookbehinds: rule out lines where none of them is followed by
            // ten digits. Bytes beyond ASCII may be Unicode digits, which
            // `\d` takes.
            let digits = |from: usize| {
                subject.len() >= from + 10
                    && subject[from..from + 10]
                        .iter()
                        .all(|b| b.is_ascii_digit() || *b >= 0x80)
            };
            let at_start =
                start == 0 && (digits(0) || (subject.first() == Some(&b'[') && digits(1)));
            let from = start.saturating_sub(6);
            if !at_start && memchr::memmem::find(&subject[from..], b"audit(").is_none() {
                return None;
            }
        }
        // an engine error (JIT stack exhausted) counts as no date
        // Both regexes have the same groups, so they share `locs`.
        let re = match &self.m_ascii {
            Some(a) if feats & ASCII != 0 => a,
            _ => &self.m_utf,
        };
        let (s, e) = locs.search_at(re, text, start).ok()??;
        Some(Hit {
            all: s..e,
            date: locs.group(1).map(|(s, e)| s..e),
        })
    }

    /// Writes what [`Template::time`] reads from the last search with
    /// `locs` (each field's text) to `key`, so that a caller can reuse the
    /// time converted for an equal key with the same `Now`. `false` for
    /// templates whose time is not worth caching.
    pub(super) fn time_key(&self, locs: &MatchState, line: &str, key: &mut Vec<u8>) -> bool {
        let Kind::Pattern { fields } = &self.kind else {
            return false;
        };
        key.clear();
        for &(i, _) in fields {
            match locs.group(i).and_then(|(s, e)| line.get(s..e)) {
                Some(t) => {
                    key.extend_from_slice(&(t.len() as u32).to_le_bytes());
                    key.extend_from_slice(t.as_bytes());
                }
                None => key.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
        }
        true
    }

    /// The time the last search with `locs` stands for.
    pub(super) fn time(
        &self,
        locs: &MatchState,
        line: &str,
        default_tz: Option<i32>,
        now: Now,
        zone: &mut LocalZone,
    ) -> Option<f64> {
        let text = |i: usize| locs.group(i).and_then(|(s, e)| line.get(s..e));
        match &self.kind {
            Kind::Pattern { fields } => {
                let mut f = Fields::new();
                for &(i, field) in fields {
                    if field == Field::AmPm {
                        f.ampm = Some(text(i));
                    } else if let Some(t) = text(i) {
                        f.push(field, t);
                    }
                }
                strptime::fields_to_time(&f, default_tz, now, zone).map(|t| t as f64)
            }
            Kind::Epoch { group, long, .. } => {
                let v = text(*group)?;
                let secs: f64 = v.parse().ok()?;
                Some(if *long && v.len() >= 13 {
                    if v.len() >= 16 && !v.contains('.') {
                        secs / 1_000_000.0
                    } else {
                        secs / 1000.0
                    }
                } else {
                    secs
                })
            }
            Kind::Tai64n => {
                let v = text(1)?;
                let hex = v.get(2..17)?;
                i64::from_str_radix(hex, 16).ok().map(|s| s as f64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_start_prefilter_agrees_with_the_regex() {
        let lines = [
            "2026-01-05 10:00:00 x",
            "[2026-01-05 10:00:00] x",
            "[[2026-01-05 10:00:00 x",
            "[[[2026-01-05 10:00:00 x",
            "x2026-01-05 10:00:00",
            "192.0.2.1 - - [20/Oct/2026:00:00:00 +0000]",
            "Jan  5 10:00:00 host",
            "<01/05/26@10:00:00> x",
            "@4000000063f1e5b90a2e1c1c x",
            " 1672531200 x",
            "1672531200",
            "",
            "[",
            "é2026-01-05 10:00:00",
        ];
        let none = std::collections::HashMap::new();
        let ex_year = &super::super::DEFAULTS.ex_year;
        let mut with_prefilter = 0;
        for p in super::super::DEFAULT_PATTERNS {
            let pat = if p.starts_with("{^LN-BEG}") {
                p.to_string()
            } else {
                format!("{{^LN-BEG}}{p}")
            };
            let mut t = (*super::super::template_for(&pat, ex_year, &none).unwrap()).clone();
            with_prefilter += usize::from(t.line_start.is_some());
            let mut locs = t.capture_locations();
            for l in lines {
                let fast = t.search(&mut locs, l, 0, l.len(), 0).map(|h| h.all);
                t.line_start = None;
                let slow = t.search(&mut locs, l, 0, l.len(), 0).map(|h| h.all);
                t.line_start = line_start_bytes(&to_pcre2(&t.regex));
                assert_eq!(fast, slow, "{pat} on {l:?}");
            }
        }
        assert!(with_prefilter >= 10, "{with_prefilter}");
    }

    #[test]
    fn prefiltered_patterns_are_defaults() {
        for p in NEED_MONTH_SPACE.iter().chain(&NEED_DIGIT_SEP) {
            assert!(super::super::DEFAULT_PATTERNS.contains(p), "{p}");
        }
    }

    /// The prefilters only rule out lines the regex cannot match: each
    /// template agrees with its regex run without them.
    #[test]
    fn prefilters_agree_with_the_regex() {
        let lines = [
            "Jan  5 10:00:00 host x",
            "jan 15 10:00:00 host x",
            "Oct/20 10:00:00 host x",
            "x [20/Oct/2026:00:00:00 +0000] y",
            "12/ 5/2026:10:00:00 z",
            "12-05-2026 10:00:00 z",
            "05/12/26 10:00:00 z",
            "Sat Jan 12, 2026 1:00:00 PM",
            "Jan 12, 2026 1:00:00 PM",
            "CET Mon Jan  5 10:00:00 2026",
            "+0100 Jan  5 10:00:00",
            "nothing 1/x -/ 3- here",
            "Jän 5 10:00:00 non-ASCII",
        ];
        let none = std::collections::HashMap::new();
        for p in NEED_MONTH_SPACE.iter().chain(&NEED_DIGIT_SEP) {
            for pat in [p.to_string(), format!("{{^LN-BEG}}{p}")] {
                let ex_year = &super::super::DEFAULTS.ex_year;
                let t = super::super::template_for(&pat, ex_year, &none).unwrap();
                assert_ne!(t.needs, 0);
                let mut locs = t.capture_locations();
                for l in lines {
                    let f = line_features(l);
                    let fast = t.search(&mut locs, l, 0, l.len(), f).map(|h| h.all);
                    let slow = t.search(&mut locs, l, 0, l.len(), 0).map(|h| h.all);
                    assert_eq!(fast, slow, "{pat} on {l:?}");
                }
            }
        }
    }

    fn b(r: &str, begin: Begin, end: bool) -> (String, String, u8) {
        let mut name = r.to_owned();
        let (re, f) = bound(r, begin, end, &mut name);
        (re, name, f)
    }

    #[test]
    fn group_added() {
        assert_eq!(b("^a{3,5}b?c*$", Begin::Word, true).0, "^(a{3,5}b?c*)$");
        assert_eq!(wrap_group("(?i)^x$"), "(?i)^(x)$");
    }

    #[test]
    fn boundaries() {
        let (re, _, f) = b("x", Begin::Word, true);
        assert_eq!(re, r"(?=^|\b|\W)(x)(?=\b|\W|$)");
        assert_eq!(f, WORD_BEGIN | WORD_END);
        let (re, name, f) = b("x", Begin::Line, true);
        assert_eq!(re, r"^(?:\W{0,2})?(x)(?=\b|\W|$)");
        assert_eq!(name, "{^LN-BEG}x");
        assert_eq!(f, LINE_BEGIN | WORD_END);
        let (re, _, f) = b("(?iu)**time:x**", Begin::Word, true);
        assert_eq!(re, "(?iu)(time:x)");
        assert_eq!(f, 0);
        let (re, _, f) = b(r"\**x\**", Begin::Word, true);
        assert_eq!(re, r"(?=^|\b|\W)(\**x\**)(?=\b|\W|$)");
        assert_eq!(f, WORD_BEGIN | WORD_END);
        let (_, _, f) = b("(?:^|x)", Begin::Word, true);
        assert_eq!(f, WORD_END);
        let (_, _, f) = b("x$", Begin::Word, true);
        assert_eq!(f, WORD_BEGIN | LINE_END);
    }

    #[test]
    fn epoch_templates() {
        let t = Template::epoch(false, None, false).unwrap();
        assert_eq!(t.name, "Epoch");
        assert_eq!(t.flags, WORD_END);
        let t = Template::epoch(true, None, false).unwrap();
        assert_eq!(t.name, "{^LN-BEG}Epoch");
        let t = Template::tai64n(false).unwrap();
        assert_eq!(t.regex, r"(@[0-9a-f]{24})(?=\b|\W|$)");
    }
}
