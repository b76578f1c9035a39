//! Looking ahead of a one-line filter on another thread.
//!
//! With `maxlines = 1`, what the prefregex and the failregexes are searched
//! on depends only on the line and its date span, not on anything the
//! filter remembers. A [`Prescreen`] holds its own compiled copies of the
//! filter's regexes and runs those searches ahead (on the thread that reads
//! and dates the lines), so that the filter then skips the searches that
//! cannot match. It only ever removes searches that would have answered
//! "no match" on the same subject with the same pattern, so the filter's
//! results stay the same; a search stopped by a limit is left to the filter
//! (which reports it).

use std::ops::Range;

use super::date::DateFound;
use super::{FailRegex, Filter, FilterError, Regex};

/// What a [`Prescreen`] found out about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// Length of the undated line the searches ran on: the filter checks
    /// it against its own buffer before it trusts the rest.
    pub(crate) undated_len: usize,
    /// The prefregex surely does not match.
    pub(crate) prefregex_fails: bool,
    /// Bit `i`: failregex `i` may match (clear: it surely does not).
    pub(crate) may_match: u64,
    /// The prefregex's match offsets, when it matched and has few enough
    /// groups: the filter takes them instead of searching.
    pub(crate) pre: Offsets<{ 2 * PRE_GROUPS }>,
    /// The first failregex that matched, if any, and its offsets when it
    /// has few enough groups: the filter takes them instead of searching
    /// again.
    pub(crate) first_fail: u8,
    pub(crate) fail: Offsets<{ 2 * FAIL_GROUPS }>,
}

/// Prefregex groups (whole match included) a hint carries.
const PRE_GROUPS: usize = 8;

/// Groups (whole match included) of the first matching failregex a hint
/// carries.
const FAIL_GROUPS: usize = 12;

/// No failregex matched.
const NO_FAIL: u8 = u8::MAX;

/// Match offsets copied out of one search, kept small (lines are far
/// shorter than 4 GiB; `u32::MAX` is an unset group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offsets<const N: usize> {
    at: [u32; N],
    /// How many of `at` are set (0: none).
    len: u8,
}

impl<const N: usize> Offsets<N> {
    const NONE: Self = Offsets { at: [0; N], len: 0 };

    /// Sets these (still `NONE`) offsets to a copy of `o` (PCRE2's
    /// offsets, `usize::MAX` for unset), or leaves them when it does not
    /// fit. In place: a hint is written once, where it is kept.
    fn set(&mut self, o: &[usize]) {
        if o.len() > N {
            return;
        }
        // Checked all at once rather than offset by offset: a loop
        // without branches (`usize::MAX` narrows to `u32::MAX`).
        let mut fits = true;
        for (d, &s) in self.at.iter_mut().zip(o) {
            *d = s as u32;
            fits &= s < u32::MAX as usize || s == usize::MAX;
        }
        if fits {
            self.len = o.len() as u8;
        } else {
            *self = Self::NONE;
        }
    }

    /// Makes these offsets `re`'s last match, as if it had searched the
    /// subject itself; false (and `re` unchanged) when there are none or
    /// they do not fit its groups.
    pub(crate) fn give_to(&self, re: &mut Regex) -> bool {
        if self.len == 0 {
            return false;
        }
        let n = usize::from(self.len);
        let mut buf = [0usize; N];
        for (d, &s) in buf.iter_mut().zip(&self.at[..n]) {
            *d = if s == u32::MAX {
                usize::MAX
            } else {
                s as usize
            };
        }
        re.set_offsets(&buf[..n])
    }
}

impl Hint {
    /// The failregex whose offsets the hint carries, if any.
    pub(crate) fn first_fail(&self) -> Option<usize> {
        (self.first_fail != NO_FAIL && self.fail.len > 0).then_some(usize::from(self.first_fail))
    }
}

/// Copies of a one-line filter's prefregex and failregexes.
#[derive(Debug)]
pub struct Prescreen {
    prefregex: Option<Regex>,
    failregex: Vec<FailRegex>,
    /// By a subject's first byte, the failregexes (bit `i`) that can start
    /// with it: most lines rule most failregexes out by their first byte,
    /// and one lookup beats asking each of them.
    by_first: Box<[u64; 257]>,
    undated: String,
    content: String,
}

impl Prescreen {
    /// The prescreen of `filter`, or `None` when it cannot have one: a
    /// multi-line filter (its buffer carries state) or more failregexes
    /// than a hint has bits.
    pub(crate) fn of(filter: &Filter) -> Result<Option<Prescreen>, FilterError> {
        let opts = filter.options();
        if opts.maxlines != 1 || opts.failregex.len() > 64 {
            return Ok(None);
        }
        let (prefregex, failregex) = super::compile_searches(opts)?;
        // Index 256 stands for the empty subject, which no first byte rules
        // out.
        let mut by_first = Box::new([0u64; 257]);
        for (i, fr) in failregex.iter().enumerate() {
            let first = fr.regex().anchored_start();
            for (b, m) in by_first.iter_mut().enumerate() {
                if b == 256 || first.is_none_or(|f| f[b]) {
                    *m |= 1 << i;
                }
            }
        }
        Ok(Some(Prescreen {
            prefregex,
            failregex,
            by_first,
            undated: String::new(),
            content: String::new(),
        }))
    }

    /// Runs the searches the filter would run on `line`, dated `found` by
    /// the filter's own detector. `None` when the filter's subject would
    /// depend on its state: a date text found that does not convert (the
    /// filter may then keep the line whole).
    pub fn scan(&mut self, line: &str, found: Option<&DateFound>) -> Option<Hint> {
        let mut hints = Vec::with_capacity(1);
        self.scan_into(line, found, false, &mut hints)?;
        hints.pop()
    }

    /// [`Prescreen::scan`], adding the hint to `hints` (its index is
    /// returned): it is written in place, not moved there. Told that the
    /// line is all ASCII (`ascii`: the caller knows it, which saves checking
    /// each subject; false: not known). `text` is the line, or the line and
    /// one newline after it: a subject that runs to the end of the line is
    /// then searched in place instead of copied with a newline added.
    pub fn scan_into(
        &mut self,
        text: &str,
        found: Option<&DateFound>,
        ascii: bool,
        hints: &mut Vec<Hint>,
    ) -> Option<usize> {
        debug_assert!(!ascii || text.is_ascii());
        let ended = text.strip_suffix('\n');
        let line = ended.unwrap_or(text);
        let cut: Option<Range<usize>> = match found {
            Some(m) if m.span.start < m.span.end && line.get(m.span.clone()).is_some() => {
                m.time?;
                Some(m.span.clone())
            }
            _ => None,
        };
        // The filter's buffer of one line, joined: the line without its
        // date, and a newline.
        let mut subject = match (cut, ended) {
            (None, Some(_)) => text,
            (Some(r), Some(_)) if r.start == 0 => &text[r.end..],
            (cut, _) => {
                self.undated.clear();
                match cut {
                    Some(r) => {
                        self.undated.push_str(&line[..r.start]);
                        self.undated.push_str(&line[r.end..]);
                    }
                    None => self.undated.push_str(line),
                }
                self.undated.push('\n');
                self.undated.as_str()
            }
        };
        let at = hints.len();
        hints.push(Hint {
            undated_len: subject.len(),
            prefregex_fails: false,
            may_match: u64::MAX,
            pre: Offsets::NONE,
            first_fail: NO_FAIL,
            fail: Offsets::NONE,
        });
        let hint = &mut hints[at];
        // Exactly whether the subject is ASCII: a line that is not may lose
        // its only other bytes with its date.
        let mut ascii = ascii || subject.is_ascii();
        if let Some(pre) = self.prefregex.as_mut() {
            match pre.try_search_known(subject, ascii) {
                Ok(true) => {}
                Ok(false) => {
                    hint.prefregex_fails = true;
                    return Some(at);
                }
                Err(_) => return Some(at),
            }
            if let Some(o) = pre.offsets() {
                hint.pre.set(o);
            }
            if let Some((s, e)) = pre
                .special
                .content
                .and_then(|i| pre.group_span(i))
                .filter(|(s, e)| s < e)
            {
                if e + 1 == subject.len() {
                    // The content runs to the newline (`.+$`, the usual
                    // case): it is the subject's own tail, no copy needed.
                    subject = &subject[s..];
                } else {
                    self.content.clear();
                    self.content.push_str(&subject[s..e]);
                    self.content.push('\n');
                    subject = self.content.as_str();
                    ascii = ascii || subject.is_ascii();
                }
            }
        }
        let first = subject.as_bytes().first().map_or(256, |&b| usize::from(b));
        let mut bits = self.by_first[first];
        hint.may_match = bits;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let re = self.failregex[i].regex_mut();
            match re.try_search_known(subject, ascii) {
                Ok(false) => hint.may_match &= !(1u64 << i),
                Ok(true) if hint.first_fail == NO_FAIL => {
                    hint.first_fail = i as u8;
                    if let Some(o) = re.offsets() {
                        hint.fail.set(o);
                    }
                }
                _ => {}
            }
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterOptions;

    fn opts() -> FilterOptions {
        FilterOptions {
            prefregex: Some(
                r"^\s*<F-MLFID>\S+ app\[\d+\]:</F-MLFID> <F-CONTENT>.+</F-CONTENT>$".into(),
            ),
            failregex: vec![
                r"^<F-NOFAIL>connect</F-NOFAIL> from <ADDR>$".into(),
                r"^auth failed for <F-USER>\S+</F-USER>$".into(),
                r"^bad token from <HOST>$".into(),
                r"^<F-MLFFORGET>closed</F-MLFFORGET>$".into(),
            ],
            check_all_regex: true,
            ignore_pending: false,
            check_find_time: false,
            ..FilterOptions::default()
        }
    }

    const LINES: &[&str] = &[
        "Jan  2 03:04:05 host app[7]: connect from 192.0.2.3",
        "Jan  2 03:04:06 host app[7]: auth failed for bob",
        "Jan  2 03:04:06 host other[7]: auth failed for bob",
        "Jan  2 03:04:07 host app[8]: bad token from 198.51.100.4",
        "Jan  2 03:04:08 host app[7]: closed",
        "no date here app[9]: bad token from 203.0.113.5",
        "Feb 30 03:04:09 host app[9]: bad token from 203.0.113.6",
        "Jan  2 03:04:10 host app[9]: nothing to see",
    ];

    /// A filter fed the prescreen's hints answers exactly as one that
    /// searches everything itself, and the hints did rule searches out.
    #[test]
    fn hints_change_nothing_but_the_work() {
        let now = 1.7e9;
        let mut plain = Filter::new(opts()).unwrap();
        let mut hinted = Filter::new(opts()).unwrap();
        let mut pre = hinted.prescreen().unwrap().unwrap();
        let mut dates = hinted.take_dates();
        let (mut pre_fails, mut skipped) = (0, 0);
        for line in LINES {
            let found = dates.find(line, now);
            let hint = pre.scan(line, found.as_ref());
            if let Some(h) = hint {
                pre_fails += usize::from(h.prefregex_fails);
                skipped += (h.may_match & 0b1111 ^ 0b1111).count_ones();
            }
            let a = plain.process_line_outcome(line, now);
            let b = hinted.process_found_hinted(line, found, now, hint.as_ref());
            assert_eq!(a, b, "{line}");
            // fail3ban-regex -v prints them for every line.
            assert_eq!(
                plain.prefregex_groups(),
                hinted.prefregex_groups(),
                "{line}"
            );
        }
        assert!(pre_fails >= 2, "{pre_fails}");
        assert!(skipped >= 12, "{skipped}");
    }

    /// Lean filters (fail3ban-regex counting) skip lines a hint rules out
    /// altogether, and still count the same.
    #[test]
    fn lean_hinted_filters_count_the_same() {
        let now = 1.7e9;
        let mut plain = Filter::new(opts()).unwrap();
        let mut hinted = Filter::new(opts()).unwrap();
        plain.set_lean_failures(true);
        hinted.set_lean_failures(true);
        let mut pre = hinted.prescreen().unwrap().unwrap();
        let mut dates = hinted.take_dates();
        for line in LINES.iter().chain(LINES) {
            let found = dates.find(line, now);
            let hint = pre.scan(line, found.as_ref());
            let a = plain.process_line_outcome(line, now);
            let b = hinted.process_found_hinted(line, found, now, hint.as_ref());
            assert_eq!(a, b, "{line}");
        }
    }

    /// The line with its newline, known ASCII or not, is screened as the
    /// line alone: the subjects searched in place are the ones the copies
    /// would be.
    #[test]
    fn a_line_with_its_newline_gives_the_same_hint() {
        let now = 1.7e9;
        let f = Filter::new(opts()).unwrap();
        let mut pre = f.prescreen().unwrap().unwrap();
        let mut dates = Filter::new(opts()).unwrap().take_dates();
        let mut hints = Vec::new();
        for line in LINES.iter().copied().chain(["app[3]: caf\u{e9}", ""]) {
            let found = dates.find(line, now);
            let alone = pre.scan(line, found.as_ref());
            let text = format!("{line}\n");
            for ascii in [false, line.is_ascii()] {
                hints.clear();
                let at = pre.scan_into(&text, found.as_ref(), ascii, &mut hints);
                assert_eq!(at.map(|i| hints[i]), alone, "{line}");
            }
        }
    }

    /// A hint made for another line is not trusted.
    #[test]
    fn a_hint_for_another_subject_is_ignored() {
        let now = 1.7e9;
        let mut f = Filter::new(opts()).unwrap();
        let mut pre = f.prescreen().unwrap().unwrap();
        let mut dates = f.take_dates();
        let other = LINES[0];
        let hint = pre.scan(other, dates.find(other, now).as_ref());
        let line = "Jan  2 03:04:07 host app[8]: bad token from 198.51.100.44";
        let found = dates.find(line, now);
        let out = f.process_found_hinted(line, found, now, hint.as_ref());
        assert!(out.is_matched());
    }

    /// Multi-line filters carry state in their buffer: no prescreen.
    #[test]
    fn no_prescreen_for_multi_line_filters() {
        let f = Filter::new(FilterOptions {
            maxlines: 2,
            ..opts()
        })
        .unwrap();
        assert!(f.prescreen().unwrap().is_none());
    }
}
