//! Every regex the model proposes is tried here, in fail3ban's own filter
//! engine, before anything is written. Each check is reported, so that a
//! rejection says exactly why.

use std::net::IpAddr;

use crate::filter::ipaddr::parse_unspec;
use crate::filter::{Filter, FilterOptions, UseDns};

use super::shape::{self, Client};

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

/// What a client may write to close the field it fills.
const CLOSERS: &[&str] = &["", "'", "\"", "]", ")"];

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
    /// The samples of the shape the model was shown.
    pub samples: &'a [String],
    /// Where the client is in them.
    pub client: &'a Client,
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
    #[error(
        "captures {got}, not the client {want}, when the fields the client writes hold \
         other text: {line:?}"
    )]
    Mutation {
        got: String,
        want: String,
        line: String,
    },
    #[error("no sample")]
    NoSample,
    #[error("extracts {got}, not the client {want}, from {line:?}")]
    NotTheClient {
        got: String,
        want: String,
        line: String,
    },
    #[error("does not match the sample {0:?}")]
    MissesSample(String),
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
    let canon = canonical(re);
    let after_anchor = skip_blanks(&canon[1..]);
    for wild in [".", "(.", "(?:.", "(?s"] {
        if after_anchor.starts_with(wild) {
            return Err(Rejected::LeadingWildcard);
        }
    }
    let squeeze: String = canon
        .replace("\\s*", "")
        .replace("\\s+", "")
        .replace(' ', "");
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

/// `re` with the spellings of "any character" that mean what `.` means
/// written as `.`, so that equivalent regexes are judged alike.
fn canonical(re: &str) -> String {
    let mut out = re.to_string();
    for any in [
        "[\\s\\S]", "[\\S\\s]", "[\\w\\W]", "[\\W\\w]", "[\\d\\D]", "[\\D\\d]", "[^\\n]", "\\N",
    ] {
        out = out.replace(any, ".");
    }
    for q in ["*?", "+?", "*", "+"] {
        out = out.replace(&format!("(?:.{q})"), &format!(".{q}"));
        out = out.replace(&format!("(.{q})"), &format!(".{q}"));
    }
    out
}

/// `re` past the atoms at its start that match only white space, or
/// nothing: `^\s*.*?` starts with a wildcard as `^.*?` does.
fn skip_blanks(mut re: &str) -> &str {
    const BLANKS: &[&str] = &["\\s", " ", "[ ]", "[ \\t]", "\\t", "[\\t ]"];
    loop {
        let before = re.len();
        for b in BLANKS {
            if let Some(rest) = re.strip_prefix(b) {
                if let Some(rest) = rest
                    .strip_prefix('*')
                    .or_else(|| rest.strip_prefix('+'))
                    .or_else(|| rest.strip_prefix('?'))
                {
                    re = rest.strip_prefix('?').unwrap_or(rest);
                }
            }
        }
        if re.len() == before {
            return re;
        }
    }
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

/// `line` with `range` replaced by `with`.
fn splice(line: &str, range: &std::ops::Range<usize>, with: &str) -> String {
    format!("{}{with}{}", &line[..range.start], &line[range.end..])
}

/// Lines where the fields the client writes hold hostile text: another
/// address, a closing quote or bracket followed by the literal text around
/// the client's address with another address in it, the rest of the line
/// or the whole line again.
fn mutations(line: &str, client: &std::ops::Range<usize>) -> Vec<String> {
    let fields = shape::fields(line, client);
    let before = fields
        .iter()
        .filter(|f| f.end <= client.start)
        .map(|f| f.end)
        .max()
        .unwrap_or(0);
    let after = fields
        .iter()
        .filter(|f| f.start >= client.end)
        .map(|f| f.start)
        .min()
        .unwrap_or(line.len());
    let around = format!(
        "{}{PLANT_V4}{}",
        &line[before..client.start],
        &line[client.end..after]
    );
    let planted = splice(line, client, PLANT_V4);
    let mut out = Vec::new();
    for f in &fields {
        let orig = &line[f.clone()];
        // The rest of the line, the client's address in it replaced.
        let rest = if f.end <= client.start {
            format!(
                "{}{PLANT_V4}{}",
                &line[f.end..client.start],
                &line[client.end..]
            )
        } else {
            line[f.end..].to_string()
        };
        let mut payloads = vec![
            PLANT_V4.to_string(),
            format!("{orig}{rest}"),
            format!("{orig} {planted}"),
        ];
        payloads.extend(CLOSERS.iter().map(|c| format!("{orig}{c}{around}")));
        out.extend(payloads.iter().map(|p| splice(line, f, p)));
    }
    out.extend(CLOSERS.iter().map(|c| format!("{line}{c} {around}")));
    out.push(format!("{line} {PLANT_V4}"));
    out
}

/// The benign check: `f` matches no line of the shipped corpus nor of
/// `benign`.
fn benign_check(f: &mut Filter, benign: &[String]) -> Result<String, Rejected> {
    let corpus = SHIPPED_BENIGN
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .chain(benign.iter().map(String::as_str));
    let mut n = 0;
    for l in corpus {
        n += 1;
        if extract(f, l).is_some() {
            return Err(Rejected::Benign(l.to_string()));
        }
    }
    Ok(format!("matches none of {n} benign lines"))
}

/// The benign check alone, for a rule already made: why `re` may not be
/// loaded, worded as [`Report::failure`] words it, or `None`.
pub fn benign_failure(re: &str, benign: &[String]) -> Option<String> {
    let mut r = Report::default();
    match filter(re) {
        Ok(mut f) => r.add("benign", benign_check(&mut f, benign)),
        Err(e) => r.add("compiles", Err(e)),
    };
    r.failure()
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
    let mut first = None;
    let mut trigger = Err(Rejected::NoSample);
    for line in ev.samples {
        let Some((at, addr)) = shape::address_of(line, ev.client) else {
            continue;
        };
        trigger = match extract(&mut f, line) {
            Some(h) if same(&h, &addr) => Ok(format!(
                "extracts the client from {} samples",
                ev.samples.len()
            )),
            Some(h) => Err(Rejected::NotTheClient {
                got: h,
                want: addr.to_string(),
                line: line.clone(),
            }),
            None => Err(Rejected::MissesSample(line.clone())),
        };
        if trigger.is_err() {
            break;
        }
        first.get_or_insert((line.as_str(), at, addr));
    }
    if !r.add("trigger", trigger) {
        return r;
    }
    let Some((line, at, addr)) = first else {
        return r;
    };
    // The host must come from the client's position, not from a literal.
    let swap = if addr.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()) {
        SWAP_V6
    } else {
        SWAP_V4
    };
    let moved = match extract(&mut f, &splice(line, &at, swap)) {
        Some(h) if same(&h, swap) => Ok(format!("follows the address ({swap})")),
        Some(h) => Err(Rejected::NotFollowing { got: h, want: swap }),
        None => Err(Rejected::LostMatch),
    };
    if !r.add("address", moved) {
        return r;
    }
    let mut variants = 0;
    let all = mutations(line, &at);
    for m in &all {
        match extract(&mut f, m) {
            Some(h) if !same(&h, &addr) => {
                r.add(
                    "mutations",
                    Err(Rejected::Mutation {
                        got: h,
                        want: addr.to_string(),
                        line: m.clone(),
                    }),
                );
                return r;
            }
            Some(_) => variants += 1,
            None => {}
        }
    }
    r.add(
        "mutations",
        Ok(format!(
            "{} mutated lines: {variants} still give {addr}, the others do not match",
            all.len()
        )),
    );
    if !r.add("benign", benign_check(&mut f, ev.benign)) {
        return r;
    }
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

    const CLIENT: Client = Client {
        slot: 0,
        sources: 1,
    };

    fn ev<'a>(samples: &'a [String], benign: &'a [String]) -> Evidence<'a> {
        Evidence {
            samples,
            client: &CLIENT,
            benign,
            recent: &[],
        }
    }

    #[test]
    fn a_good_rule_passes() {
        let r = validate(GOOD, &ev(&[LINE.to_string()], &[]));
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
            let r = validate(re, &ev(&[LINE.to_string()], &[]));
            assert!(!r.ok(), "{re} passed");
            assert_eq!(r.checks.last().unwrap().name, why, "{re}: {r:?}");
        }
    }

    /// Issue 16, finding 9: regexes that match the same lines get the same
    /// verdict and the same reason.
    #[test]
    fn equivalent_regexes_are_judged_alike() {
        let samples = [LINE.to_string()];
        for (a, b) in [
            (
                r#"^.*?\b<HOST> \S+ \S+ \[\] "POST /xmlrpc\.php HTTP/[\d.]+" \d+"#,
                r#"^\s*.*?\b<HOST> \S+ \S+ \[\] "POST /xmlrpc\.php HTTP/[\d.]+" \d+"#,
            ),
            (
                r#"^.*?\b<HOST> \S+ \S+ \[\] "POST /xmlrpc\.php HTTP/[\d.]+" \d+"#,
                r#"^ *(?:.*?)\b<HOST> \S+ \S+ \[\] "POST /xmlrpc\.php HTTP/[\d.]+" \d+"#,
            ),
            (
                r#"^.*<HOST> \S+ \S+ \[\] "POST /xmlrpc\.php"#,
                r#"^[\s\S]*<HOST> \S+ \S+ \[\] "POST /xmlrpc\.php"#,
            ),
            (
                r#"^<HOST>.*"POST /xmlrpc\.php"#,
                r#"^<HOST>[^\n]*"POST /xmlrpc\.php"#,
            ),
            (GOOD, &GOOD.replacen("^", r"^\s*", 1)),
        ] {
            let (ra, rb) = (
                validate(a, &ev(&samples, &[])),
                validate(b, &ev(&samples, &[])),
            );
            assert_eq!(
                ra.failure(),
                rb.failure(),
                "{a} / {b} are judged differently"
            );
            assert_eq!(ra.ok(), rb.ok(), "{a} / {b}");
        }
    }

    /// Issue 16, finding 2: a rule with no end anchor lets a user name
    /// that closes the quote and repeats the text around `<HOST>` choose
    /// the address; anchored, it does not.
    #[test]
    fn unclosed_quote_rule_fails_the_mutations() {
        let samples = [
            "web1 auth[42]: login failed for user 'alice' from 203.0.113.61 (bad password)"
                .to_string(),
        ];
        let ev = ev(&samples, &[]);
        let open = r"^\s*\S+ auth\[\d+\]: login failed for user '[^']*' from <HOST>";
        let r = validate(open, &ev);
        assert_eq!(r.checks.last().unwrap().name, "mutations", "{r:?}");
        assert!(r.failure().unwrap().contains(PLANT_V4), "{r:?}");
        let closed = format!(r"{open} \(bad password\)$");
        let r = validate(&closed, &ev);
        assert!(r.ok(), "{r:?}");
    }

    #[test]
    fn mutations_of_wide_characters_never_split_one() {
        let samples = [
            "login failed for user '\u{e9}\u{3000}x' from 203.0.113.61 id=\u{e9}42\u{fc} ok"
                .to_string(),
        ];
        let ev = ev(&samples, &[]);
        let r = validate(
            r"^login failed for user '[^']*' from <HOST> id=\S+ ok$",
            &ev,
        );
        assert!(r.ok(), "{r:?}");
    }
}
