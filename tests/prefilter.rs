//! The literal prefixes read from anchored patterns never turn away a
//! subject PCRE2 matches: every stock filter's failregexes, on every
//! suffix of every line of the reference's sample logs, against the same
//! pattern compiled by the `pcre2` crate, which has no such shortcut.

use fail3ban::config::{read_filter, FilterSource, PyValue, TreeVersion};
use fail3ban::filter::pcre::{self, CompileFlags, Limits};
use fail3ban::filter::{failregex, pyre, UseDns};
use pcre2::bytes::RegexBuilder;

/// A filter's failregexes, with its default options.
fn failregexes(basedir: &str, name: &str) -> Vec<String> {
    let Ok(commands) = read_filter(
        FilterSource::Named { basedir, name },
        Default::default(),
        "jail",
        "auto",
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for cmd in commands {
        let values = match (cmd.first().and_then(PyValue::as_str), cmd.get(3)) {
            (Some("multi-set"), Some(PyValue::List(l))) => l.clone(),
            (Some("set"), Some(v)) => vec![v.clone()],
            _ => continue,
        };
        if cmd.get(2).and_then(PyValue::as_str) == Some("addfailregex") {
            out.extend(values.iter().map(PyValue::to_text));
        }
    }
    out
}

fn reference_regex(pattern: &str, f: CompileFlags) -> Option<pcre2::bytes::Regex> {
    RegexBuilder::new()
        .utf(true)
        .ucp(!f.ascii)
        .caseless(f.caseless)
        .multi_line(f.multiline)
        .dotall(f.dotall)
        .extended(f.extended)
        .jit_if_available(true)
        .build(pattern)
        .ok()
}

/// The line and each of its suffixes after a space: where a prefregex's
/// content may begin.
fn subjects(line: &str) -> impl Iterator<Item = String> + '_ {
    let starts = std::iter::once(0).chain(
        line.char_indices()
            .filter(|&(_, c)| c == ' ')
            .map(|(i, _)| i + 1),
    );
    starts.map(move |i| format!("{}\n", &line[i..]))
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn prefixes_never_reject_a_match() {
    let root = crate::prereq::reference();
    let stock = crate::reference::stock_tree(root);
    let logs = crate::reference::package(root).join("tests/files/logs");
    let basedir = stock.to_string_lossy().into_owned();
    let names = crate::regex::stock_filters(root);
    let (mut with_prefix, mut regexes, mut searches, mut matches) = (0, 0, 0usize, 0usize);
    let mut wrong = Vec::new();
    for name in &names {
        let text = String::from_utf8_lossy(&std::fs::read(logs.join(name)).unwrap()).into_owned();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        for fr in failregexes(&basedir, name) {
            let tr = pyre::translate(&failregex::expand_tags(
                &fr,
                UseDns::Warn,
                TreeVersion::of(&stock),
            ));
            let Ok(mut ours) = pcre::Regex::new(&tr.pattern, tr.flags, Limits::default()) else {
                continue;
            };
            let Some(theirs) = reference_regex(&tr.pattern, tr.flags) else {
                continue;
            };
            regexes += 1;
            if ours.prefixes().next().is_none() {
                continue;
            }
            with_prefix += 1;
            for line in &lines {
                for s in subjects(line) {
                    searches += 1;
                    let Ok(expected) = theirs.is_match(s.as_bytes()) else {
                        continue;
                    };
                    matches += usize::from(expected);
                    if ours.search(&s) != Ok(expected) {
                        wrong.push(format!("{name}: {} on {s:?}", tr.pattern));
                    }
                }
            }
        }
    }
    println!(
        "prefilter: {} filters, {regexes} failregexes, {with_prefix} with prefixes, \
         {searches} searches, {matches} matches, {} disagreements",
        names.len(),
        wrong.len()
    );
    for w in wrong.iter().take(10) {
        println!("    {w}");
    }
    assert!(wrong.is_empty(), "prefixes turned away matches");
    // Not vacuous: about half the stock failregexes have a prefix (the
    // rest start with `<HOST>` or a syslog prefix), tried on hundreds of
    // subjects they match (fail2ban 1.0.2: 91 of 194, 367 matches).
    assert!(with_prefix >= 80, "{with_prefix} of {regexes}");
    assert!(matches >= 300, "{matches}");
}
