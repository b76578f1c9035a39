//! Every regex the model proposes is tried here, in fail3ban's own filter
//! engine, before anything is written. Each check is reported, so that a
//! rejection says exactly why.

use std::net::IpAddr;

use crate::filter::ipaddr::parse_unspec;
use crate::filter::{Filter, FilterOptions, UseDns};

use super::prescreen;

/// The corpus shipped with fail3ban: ordinary traffic of common services.
pub const SHIPPED_BENIGN: &str = include_str!("../../ai/benign-corpus.txt");

/// At most this share of recent lines of other shapes may match.
const MAX_RECENT_SHARE: f64 = 0.05;

/// Letters and digits a regex must spell out, outside classes and tags.
const MIN_LITERAL: usize = 6;

/// Addresses planted by the mutations: documentation ranges, never real.
const PLANT_V4: &str = "192.0.2.254";
const SWAP_V4: &str = "198.51.100.254";
const SWAP_V6: &str = "2001:db8::fe";

/// One check and how it went.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    /// Its name.
    pub name: &'static str,
    /// Passed?
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// All checks of one regex.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Report {
    /// In the order they ran; the first failure ends the run.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The first failure, worded for the audit trail.
    pub fn failure(&self) -> Option<String> {
        self.checks
            .iter()
            .find(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
    }

    fn add(&mut self, name: &'static str, r: Result<String, Rejected>) -> bool {
        let ok = r.is_ok();
        let detail = r.unwrap_or_else(|e| e.to_string());
        self.checks.push(Check { name, ok, detail });
        ok
    }
}

/// What the regex is checked against.
pub struct Evidence<'a> {
    /// The line that triggered the question.
    pub line: &'a str,
    /// The address the prescreen found in it.
    pub addr: &'a str,
    /// Lines judged benign in this log, and successful logins.
    pub benign: &'a [String],
    /// Recent lines of this log with another template than the trigger.
    pub recent: &'a [String],
}

/// Why a check rejected a generated regex.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    #[error("not anchored with ^")]
    NotAnchored,
    #[error("uses {0:?}")]
    Uses(&'static str),
    #[error("uses tags other than <HOST>: {0:?}")]
    OtherTags(Vec<String>),
    #[error("has {0} host captures, wants exactly one")]
    HostCaptures(usize),
    #[error("starts with a wildcard")]
    LeadingWildcard,
    #[error("has a bare {0:?}")]
    BareWildcard(&'static str),
    #[error("only {0} literal letters or digits, wants {MIN_LITERAL}")]
    FewLiterals(usize),
    #[error(transparent)]
    Compile(#[from] crate::filter::FilterError),
    #[error("extracts {got}, not {want}")]
    WrongAddress { got: String, want: String },
    #[error("does not match the line")]
    NoMatch,
    #[error("another address there gives {got}, not {want}")]
    NotFollowing { got: String, want: &'static str },
    #[error("no longer matches when the address changes")]
    LostMatch,
    #[error("extracts {got} from {line:?}")]
    Mutation { got: String, line: String },
    #[error("matches benign line {0:?}")]
    Benign(String),
    #[error("matches {hits} of {total} recent lines of other shapes")]
    Recent { hits: usize, total: usize },
}

/// Tags and groups a generated regex may not use: only `<HOST>` is
/// allowed, once, so that the model cannot choose the failure id.
fn structure(re: &str) -> Result<String, Rejected> {
    if !re.starts_with('^') {
        return Err(Rejected::NotAnchored);
    }
    for bad in ["(?P<", "(?<", "(?'", "%(", "\\K", "(?C", "(*"] {
        let found = re
            .match_indices(bad)
            .any(|(i, _)| !(bad == "(?<" && matches!(re.as_bytes().get(i + 3), Some(b'=' | b'!'))));
        if found {
            return Err(Rejected::Uses(bad));
        }
    }
    let mut tags = Vec::new();
    let b = re.as_bytes();
    for (i, _) in re.match_indices('<') {
        if i > 0 && b[i - 1] == b'\\' {
            continue;
        }
        let rest = &re[i + 1..];
        if let Some(end) = rest.find('>') {
            let name = &rest[..end];
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c))
            {
                tags.push(name.to_string());
            }
        }
    }
    if tags.iter().any(|t| t != "HOST") {
        return Err(Rejected::OtherTags(tags));
    }
    if tags.len() != 1 {
        return Err(Rejected::HostCaptures(tags.len()));
    }
    let after_anchor = &re[1..];
    for wild in [".", "(.", "(?:."] {
        if after_anchor.starts_with(wild) {
            return Err(Rejected::LeadingWildcard);
        }
    }
    let squeeze: String = re.replace("\\s*", "").replace("\\s+", "").replace(' ', "");
    for around in [
        ".*<HOST>",
        ".+<HOST>",
        ".*?<HOST>",
        ".+?<HOST>",
        "<HOST>.*",
        "<HOST>.+",
    ] {
        if squeeze.contains(around) {
            return Err(Rejected::BareWildcard(around));
        }
    }
    let literal = literal_chars(re);
    if literal < MIN_LITERAL {
        return Err(Rejected::FewLiterals(literal));
    }
    Ok(format!(
        "anchored, one <HOST>, {literal} literal characters"
    ))
}

/// Letters and digits outside character classes, escapes and the tag.
fn literal_chars(re: &str) -> usize {
    let re = re.replace("<HOST>", "");
    let mut n = 0;
    let mut chars = re.chars();
    let mut in_class = false;
    let mut in_count = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => in_count = true,
            '}' if in_count => in_count = false,
            c if c.is_ascii_alphanumeric() && !in_class && !in_count => n += 1,
            _ => {}
        }
    }
    n
}

fn filter(re: &str) -> Result<Filter, Rejected> {
    Filter::new(FilterOptions {
        failregex: vec![re.to_string()],
        usedns: UseDns::No,
        check_find_time: false,
        ..FilterOptions::default()
    })
    .map_err(Rejected::from)
}

/// The address a filter extracts from one line, if it matches.
fn extract(f: &mut Filter, line: &str) -> Option<String> {
    f.process_line_outcome(line, super::pipeline::now())
        .failures
        .into_iter()
        .find(|x| !x.nofail)
        .map(|x| x.fid.map(|f| f.to_string()).unwrap_or_default())
}

fn same(a: &str, b: &str) -> bool {
    parse_unspec(a) == parse_unspec(b)
}

/// Lines where fields the attacker writes carry other addresses and text.
fn mutations(line: &str, addr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let others: Vec<_> = prescreen::addresses(line)
        .into_iter()
        .filter(|(_, t, _)| !same(t, addr))
        .collect();
    let mut base = line.to_string();
    for (_, t, _) in others.iter().rev() {
        base = base.replace(t.as_str(), "192.0.2.253");
    }
    if base != line {
        out.push(base.clone());
    }
    // Planted inside every quoted field, and at the end.
    for q in ['"', '\''] {
        let idx: Vec<usize> = base.match_indices(q).map(|(i, _)| i).collect();
        for pair in idx.chunks(2).filter(|p| p.len() == 2) {
            let mut l = base.clone();
            l.insert_str(pair[1], &format!(" from {PLANT_V4} user {PLANT_V4}"));
            out.push(l);
            let mut l = base.clone();
            l.insert_str(pair[0] + 1, &format!("{PLANT_V4} "));
            out.push(l);
        }
    }
    out.push(format!("{base} from {PLANT_V4} port 22"));
    out.push(format!("{base} {PLANT_V4}"));
    out
}

/// Runs every check on `re`; stops at the first failure.
pub fn validate(re: &str, ev: &Evidence<'_>) -> Report {
    let mut r = Report::default();
    if !r.add("structure", structure(re)) {
        return r;
    }
    let mut f = match filter(re) {
        Ok(f) => f,
        Err(e) => {
            r.add("compiles", Err(e));
            return r;
        }
    };
    r.add(
        "compiles",
        Ok("compiled by fail3ban's filter engine".into()),
    );
    let trigger = match extract(&mut f, ev.line) {
        Some(h) if same(&h, ev.addr) => Ok(format!("extracts {h}")),
        Some(h) => Err(Rejected::WrongAddress {
            got: h,
            want: ev.addr.to_string(),
        }),
        None => Err(Rejected::NoMatch),
    };
    if !r.add("trigger", trigger) {
        return r;
    }
    // The host must come from the address's position, not from a literal.
    let swap = if ev.addr.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()) {
        SWAP_V6
    } else {
        SWAP_V4
    };
    let swapped = ev.line.replacen(ev.addr, swap, 1);
    let moved = match extract(&mut f, &swapped) {
        Some(h) if same(&h, swap) => Ok(format!("follows the address ({swap})")),
        Some(h) => Err(Rejected::NotFollowing { got: h, want: swap }),
        None => Err(Rejected::LostMatch),
    };
    if !r.add("address", moved) {
        return r;
    }
    let mut variants = 0;
    for m in mutations(ev.line, ev.addr) {
        match extract(&mut f, &m) {
            Some(h) if !same(&h, ev.addr) => {
                r.add("mutations", Err(Rejected::Mutation { got: h, line: m }));
                return r;
            }
            Some(_) => variants += 1,
            None => {}
        }
    }
    r.add(
        "mutations",
        Ok(format!("{variants} mutated lines still give {}", ev.addr)),
    );
    let corpus = SHIPPED_BENIGN
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .chain(ev.benign.iter().cloned());
    let mut n = 0;
    for l in corpus {
        n += 1;
        if extract(&mut f, &l).is_some() {
            r.add("benign", Err(Rejected::Benign(l)));
            return r;
        }
    }
    r.add("benign", Ok(format!("matches none of {n} benign lines")));
    let hits = ev
        .recent
        .iter()
        .filter(|l| extract(&mut f, l).is_some())
        .count();
    let share = if ev.recent.is_empty() {
        0.0
    } else {
        hits as f64 / ev.recent.len() as f64
    };
    r.add(
        "recent",
        if share <= MAX_RECENT_SHARE {
            Ok(format!(
                "matches {hits} of {} recent other lines",
                ev.recent.len()
            ))
        } else {
            Err(Rejected::Recent {
                hits,
                total: ev.recent.len(),
            })
        },
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"203.0.113.7 - - [24/Nov/2026:23:44:58 +0000] "POST /xmlrpc.php HTTP/1.1" 200 412 "-" "Mozilla/5.0""#;
    const GOOD: &str = r#"^<HOST> \S+ \S+ \[\] "POST /xmlrpc\.php HTTP/[\d.]+" \d+"#;

    fn ev<'a>(benign: &'a [String]) -> Evidence<'a> {
        Evidence {
            line: LINE,
            addr: "203.0.113.7",
            benign,
            recent: &[],
        }
    }

    #[test]
    fn a_good_rule_passes() {
        let r = validate(GOOD, &ev(&[]));
        assert!(r.ok(), "{r:?}");
    }

    #[test]
    fn bad_rules_fail_with_a_reason() {
        for (re, why) in [
            ("^.*<HOST>", "structure"),
            (r#"^<HOST> .*"#, "structure"),
            (
                r#"^\S+ \S+ \S+ \[\] "POST /xmlrpc\.php HTTP/1\.1" \d+ \d+ "-" "Mozilla/5\.0 <HOST>"#,
                "trigger",
            ),
            (
                r#"^<HOST> \S+ \S+ \[\] "POST /xmlrpc\.php HTTP/[\d.]+" (((("#,
                "compiles",
            ),
            (r#"^<HOST> \S+ \S+ \[\] "(GET|POST) /"#, "benign"),
            (r#"^(?P<fid>\S+) <HOST> xmlrpc"#, "structure"),
            (r#"^<F-ID>\S+</F-ID> <HOST> xmlrpc"#, "structure"),
            (r#"^<HOST> \S+ \S+ <HOST> xmlrpc"#, "structure"),
        ] {
            let r = validate(re, &ev(&[]));
            assert!(!r.ok(), "{re} passed");
            assert_eq!(r.checks.last().unwrap().name, why, "{re}: {r:?}");
        }
    }
}
