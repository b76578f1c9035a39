//! Differential test of date detection against the reference fail2ban's
//! `DateDetector`: every line of fail2ban's sample logs and a set of
//! generated lines, with the default templates, several `logtimezone`s, the
//! `datepattern`s of the stock filters and a few more, compared on found or
//! not, date text, time and template name.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fail3ban::filter::date::DateDetector;
use jiff::tz::TimeZone;

/// fail2ban's test clock: 2005-08-14 12:00:00 CEST.
const NOW: f64 = 1_124_013_600.0;
/// fail2ban's test time zone.
const TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";
const PYTHON: &str = "/usr/bin/python3";

/// Runs one detector per job over its lines and prints, per line, null or
/// [date text, time or null, template name] (or ["error", ...] when
/// fail2ban raises), as one JSON document.
const HARNESS: &str = r#"
import json, re, sys, time
time.tzset()
from fail2ban.server.mytime import MyTime
MyTime.setTime(1124013600)
from fail2ban.server import datedetector as ddm
from fail2ban.server.datedetector import DateDetector

# build the default cache first, as a running fail2ban has
DateDetector._defCache.templates

def reset_hits():
    # template objects are shared process-wide; a fresh detector in a fresh
    # process starts from zero
    for v in list(ddm.DD_patternCache._cache.values()):
        v[0].hits = 0
    for t in DateDetector._defCache.templates:
        t.hits = 0
    for t in ddm.DateDetectorCache.DEFAULT_TEMPLATES:
        if not isinstance(t, str):
            t.hits = 0

def make(job):
    reset_hits()
    dd = DateDetector()
    if job['tz'] is not None:
        dd.default_tz = job['tz']
    if job['pattern'] is not None:
        for p in filter(bool, map(str.strip, re.split('\n+', job['pattern']))):
            dd.appendTemplate(p)
    return dd

def one(dd, line):
    try:
        m, t = dd.matchTime(line)
    except Exception as e:
        return ['error', repr(e)]
    if not m:
        return None
    s, e = m.start(1), m.end(1)
    text = line[s:e] if s >= 0 else ''
    tm = None
    if text:
        try:
            r = dd.getTime(text, (m, t))
            tm = r[0] if r else None
        except Exception:
            tm = None
    return [text, tm, t.name]

out = []
for job in json.load(sys.stdin):
    dd = make(job)
    res = []
    for line in job['lines']:
        if job['fresh']:
            dd = make(job)
        res.append(one(dd, line))
    out.append(res)
json.dump(out, sys.stdout)
"#;

struct Job {
    label: String,
    pattern: Option<String>,
    tz: Option<String>,
    lines: Vec<String>,
    fresh: bool,
}

fn sample_lines(logs: &Path) -> Vec<(String, Vec<String>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(logs, &mut files);
    files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let lines = text
                .lines()
                .filter(|l| !l.starts_with("# "))
                .map(str::to_owned)
                .collect();
            (f.display().to_string(), lines)
        })
        .collect()
}

/// The `datepattern` values of the stock filters, without the ones that
/// need config interpolation, with `%%` unescaped.
fn stock_patterns(filter_d: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(filter_d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.next() {
            let Some(v) = l.strip_prefix("datepattern") else {
                continue;
            };
            let Some(v) = v.trim_start().strip_prefix('=') else {
                continue;
            };
            let mut value = v.trim().to_owned();
            while let Some(next) = lines.peek() {
                if next.starts_with([' ', '\t']) && !next.trim().is_empty() {
                    value.push('\n');
                    value.push_str(next.trim());
                    lines.next();
                } else {
                    break;
                }
            }
            if value.contains('<') && value.contains('>') && !value.contains("(?P<")
                || value.contains("%(")
            {
                continue;
            }
            out.insert(value.replace("%%", "%"));
        }
    }
    out
}

/// Patterns from fail2ban's own date tests and directives the stock
/// filters do not use.
const EXTRA_PATTERNS: &[&str] = &[
    r"^%ExY-%Exm-%Exd %H:%M:%S(?: ?%Exz)?",
    "^%B %Exd %I:%ExM:%ExS**",
    "^%y %U %A %ExH:%ExM:%ExS**",
    "^%y %W %w %ExH:%ExM:%ExS**",
    "^%ExH:%ExM:%ExS**",
    "^%m/%d %ExH:%ExM:%ExS**",
    "^%Y-%m-%d**",
    "^%Y-%m-%d%z**",
    r"(?<=\|\s){LEPOCH}(?=\s\|)",
    "LEPOCH",
    "EPOCH",
    "{^LN-BEG}TAI64N",
    "%j %H:%M",
    "%c",
    "%x %X",
    "{UNB}%H:%M:%S",
    "%H:%M:%S",
    "%l:%M %p",
    "%b %d %H:%M:%S %Z",
    r"%d\.%m\.%Y %H:%M:%S %z",
    "{NONE}",
    "{DEFAULT}",
    "{^LN-BEG}%ExY%Exm%Exd%ExH%ExM%ExS**",
    r"\[%H:%M:%S %d.%m.%Y\]$",
    r"%Y%m%d %H%M%S",
    "{^LN-BEG}%ExY-%Exm-%Exd %ExH:%ExM:%ExS(?: %Z)?",
    "%ExY-%Exm-%Exd[T ]%ExH:%ExM:%ExS(?:\\.%f)?%Exz",
    "^%a %b %Exd %ExH:%ExM:%ExS %ExY\n{^LN-BEG}",
    "prefix {DATE} suffix",
];

/// Lines with dates in many shapes and places, near the test clock's
/// rollover points, invalid ones, and odd characters.
fn generated_lines() -> Vec<String> {
    let dates = [
        "Jan 23 21:59:59",
        "Sun Jan 23 21:59:59 2005",
        "Sun Jan 23 2005 21:59:59",
        "Aug 14 11:59:59",
        "Aug 14 12:00:01",
        "Aug 15 12:00:00",
        "Aug 15 12:00:01",
        "Aug 15 11:00:00 +0200",
        "Dec 31 23:59:59",
        "Feb 29 10:00:00",
        "Feb 29 10:00:00 2004",
        "2005-01-23 21:59:59",
        "2005-01-23T21:59:59.123456+02:00",
        "2005-01-23 21:59:59 UTC",
        "2005-02-30 21:59:59",
        "2005-01-23 23:59:60",
        "2005/01/23 21:59:59",
        "23/01/2005 21:59:59",
        "23/01/05 21:59:59",
        "23/Jan/2005:21:59:59 -0000",
        "23-Jan-2005 21:59:59.252",
        "01/23/2005:21:59:59",
        "01-23-2005 21:59:59.252",
        "1106513999",
        "1106513999.123",
        "[1106513999]",
        "audit(1106513999.000:987)",
        "1106513999000",
        "1106513999000000",
        "<01/23/05@21:59:59>",
        "050123 21:59:59",
        "050123  1:59:59",
        "Jan 23, 2005 9:59:59 PM",
        "Jan 23, 2005 12:59:59 AM",
        "Jan-23-05 21:59:59",
        "20050123T215959",
        "20050123 215959.5 +0100",
        "PDT Apr 16 21:05:29",
        "EST Apr 16 21:05:29",
        "+00:00 Jan 23 21:59:59.011 2005",
        "@4000000041f4104f00000000",
        "12:00:01",
        "11:59:59",
        "00:00:00",
        "Wed Aug 14 11:00:00 2005",
        "2005-08-14 12:00:00",
        "01 11 Wednesday 21:59:59",
        "January 23 12:59:59",
        "226 10:00",
        "08/14/05 11:00:00",
        "Sun Aug 14 11:00:00 2005",
        "2017-01-23 15:00:00 CET+0130",
        "2017-01-23 15:00:00 CEST",
        "2017-01-23 15:00:00 XYZ",
        "2017-01-23 15:00:00 -10:45",
        "20:00:00 01.02.2003",
        "[20:00:00 01.02.2003]",
        "01.02.2003 20:00:00 +0100",
        "9:05 pm",
        "auth-error | 1138049999000 | x",
    ];
    let shapes = [
        "{}",
        "{} sshd[123]: Failed password for root from 192.0.2.1",
        "[{}] error",
        "host {} message",
        "x{}y",
        "prefix {} suffix",
        "é {} ü",
        "\u{0}{}\u{0}",
        "server mysqld[1]: {} -- 2003-03-07 17:05:01 more",
    ];
    let mut out = Vec::new();
    for s in shapes {
        for d in dates {
            out.push(s.replace("{}", d));
        }
    }
    out.push(String::new());
    out.push("no date here at all".to_owned());
    out
}

fn run_reference(root: &Path, jobs: &[Job]) -> Vec<Vec<serde_json_lite::Value>> {
    let input = serde_json_lite::jobs_to_json(jobs);
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(HARNESS)
        .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
        .env("TZ", TZ)
        .env("LANG", "C.UTF-8")
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the reference python");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "reference harness failed");
    serde_json_lite::parse_results(&String::from_utf8(out.stdout).unwrap())
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn date_detection_matches_fail2ban() {
    crate::reference::against_each(
        "date::date_detection_matches_fail2ban",
        "jobs",
        date_detection,
    );
}

/// Every job (sample logs, generated lines, zones, stock datepatterns)
/// through the reference's date detector and fail3ban's.
fn date_detection(version: &'static str, root: &Path) -> crate::reference::Tally {
    let pkg = root.join("usr/lib/python3/dist-packages/fail2ban");
    let samples = sample_lines(&pkg.join("tests/files/logs"));
    let all: Vec<String> = samples
        .iter()
        .flat_map(|(_, l)| l.iter().cloned())
        .collect();
    let generated = generated_lines();
    let mut jobs = Vec::new();
    for (file, lines) in &samples {
        jobs.push(Job {
            label: format!("default, {file}"),
            pattern: None,
            tz: None,
            lines: lines.clone(),
            fresh: false,
        });
    }
    jobs.push(Job {
        label: "default, fresh detector per line".to_owned(),
        pattern: None,
        tz: None,
        lines: all.iter().chain(&generated).cloned().collect(),
        fresh: true,
    });
    for tz in ["UTC", "UTC+0300", "CET+0130", "GMT-12", "EST", "-0430"] {
        jobs.push(Job {
            label: format!("default, logtimezone {tz}"),
            pattern: None,
            tz: Some(tz.to_owned()),
            lines: all.iter().chain(&generated).cloned().collect(),
            fresh: false,
        });
    }
    let mut patterns: Vec<String> = stock_patterns(&root.join("etc/fail2ban/filter.d"))
        .into_iter()
        .collect();
    let stock = patterns.len();
    patterns.extend(EXTRA_PATTERNS.iter().map(|s| s.to_string()));
    for p in &patterns {
        jobs.push(Job {
            label: format!("datepattern {p:?}"),
            pattern: Some(p.clone()),
            tz: None,
            lines: all.iter().chain(&generated).cloned().collect(),
            fresh: false,
        });
    }

    let expected = run_reference(root, &jobs);
    assert_eq!(expected.len(), jobs.len());
    let cet = TimeZone::posix(TZ).unwrap();
    let (mut compared, mut diffs, mut errors) = (0usize, 0usize, 0usize);
    let mut raised = std::collections::BTreeMap::new();
    let mut differing: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (job, want) in jobs.iter().zip(&expected) {
        let make = || {
            let mut dd = match &job.pattern {
                None => DateDetector::new_default(),
                Some(p) => {
                    DateDetector::from_pattern(p).unwrap_or_else(|e| panic!("{}: {e}", job.label))
                }
            };
            dd.set_local_timezone(cet.clone());
            dd.set_timezone(job.tz.as_deref()).unwrap();
            dd
        };
        let mut dd = make();
        for (line, want) in job.lines.iter().zip(want) {
            if job.fresh {
                dd = make();
            }
            let found = dd.find(line, NOW);
            let got = found.map(|f| {
                (
                    line[f.span].to_owned(),
                    f.time,
                    dd.last_template().unwrap_or("").to_owned(),
                )
            });
            if let Some(err) = want.error() {
                errors += 1;
                *raised
                    .entry(format!("{}: {err}", job.label))
                    .or_insert(0usize) += 1;
                continue;
            }
            compared += 1;
            let same = match (&got, want.as_found()) {
                (None, None) => true,
                (Some((text, time, name)), Some((wtext, wtime, wname))) => {
                    text == &wtext
                        && name == &wname
                        && match (time, wtime) {
                            (None, None) => true,
                            (Some(a), Some(b)) => (a - b).abs() < 1e-6,
                            _ => false,
                        }
                }
                _ => false,
            };
            if !same {
                diffs += 1;
                let lines = differing.entry(&job.label).or_default();
                if lines.len() < 5 {
                    lines.push(format!(
                        "  line: {line:?}\n  fail2ban: {:?}\n  fail3ban: {got:?}",
                        want.as_found()
                    ));
                }
            }
        }
    }
    for (what, n) in &raised {
        println!("date: {version}: fail2ban raised on {n} lines: {what}");
    }
    println!(
        "date: {version}: {compared} lines compared ({} sample lines, {} generated, {} jobs, {stock} stock datepatterns), {diffs} differences, {errors} lines where fail2ban raises (skipped)",
        all.len(),
        generated.len(),
        jobs.len()
    );
    crate::reference::Tally {
        version,
        compared: jobs.len(),
        diffs: differing
            .into_iter()
            .map(|(label, lines)| (label.to_owned(), lines.join("\n")))
            .collect(),
    }
}

/// Just enough JSON for the harness, to keep serde out of the dependencies.
mod serde_json_lite {
    use super::Job;

    pub fn quote(s: &str) -> String {
        let mut o = String::with_capacity(s.len() + 2);
        o.push('"');
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    }

    fn opt(s: &Option<String>) -> String {
        s.as_deref().map_or("null".to_owned(), quote)
    }

    pub fn jobs_to_json(jobs: &[Job]) -> String {
        let items: Vec<String> = jobs
            .iter()
            .map(|j| {
                let lines: Vec<String> = j.lines.iter().map(|l| quote(l)).collect();
                format!(
                    "{{\"pattern\":{},\"tz\":{},\"fresh\":{},\"lines\":[{}]}}",
                    opt(&j.pattern),
                    opt(&j.tz),
                    j.fresh,
                    lines.join(",")
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    #[derive(Debug, Clone)]
    pub enum Value {
        Null,
        Num(f64),
        Str(String),
        List(Vec<Value>),
    }

    impl Value {
        /// The exception fail2ban raised, if it did.
        pub fn error(&self) -> Option<&str> {
            match self {
                Value::List(v) => match (v.first(), v.get(1)) {
                    (Some(Value::Str(s)), Some(Value::Str(e))) if s == "error" && v.len() == 2 => {
                        Some(e)
                    }
                    _ => None,
                },
                _ => None,
            }
        }

        /// (text, time, template name) of a found date.
        pub fn as_found(&self) -> Option<(String, Option<f64>, String)> {
            let Value::List(v) = self else { return None };
            let text = match &v[0] {
                Value::Str(s) => s.clone(),
                _ => return None,
            };
            let time = match &v[1] {
                Value::Num(n) => Some(*n),
                _ => None,
            };
            let name = match &v[2] {
                Value::Str(s) => s.clone(),
                _ => String::new(),
            };
            Some((text, time, name))
        }
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && (self.s[self.i] as char).is_ascii_whitespace() {
                self.i += 1;
            }
        }

        fn value(&mut self) -> Value {
            self.ws();
            match self.s[self.i] {
                b'n' => {
                    self.i += 4;
                    Value::Null
                }
                b'[' => {
                    self.i += 1;
                    let mut v = Vec::new();
                    loop {
                        self.ws();
                        if self.s[self.i] == b']' {
                            self.i += 1;
                            break;
                        }
                        v.push(self.value());
                        self.ws();
                        if self.s[self.i] == b',' {
                            self.i += 1;
                        }
                    }
                    Value::List(v)
                }
                b'"' => Value::Str(self.string()),
                _ => {
                    let start = self.i;
                    while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
                        self.i += 1;
                    }
                    let t = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                    Value::Num(t.parse().unwrap())
                }
            }
        }

        fn hex4(&mut self) -> u32 {
            let h = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
            self.i += 4;
            u32::from_str_radix(h, 16).unwrap()
        }

        fn string(&mut self) -> String {
            self.i += 1;
            let mut out = String::new();
            loop {
                let start = self.i;
                while self.s[self.i] != b'"' && self.s[self.i] != b'\\' {
                    self.i += 1;
                }
                out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap());
                if self.s[self.i] == b'"' {
                    self.i += 1;
                    return out;
                }
                self.i += 1;
                let e = self.s[self.i];
                self.i += 1;
                match e {
                    b'n' => out.push('\n'),
                    b't' => out.push('\t'),
                    b'r' => out.push('\r'),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'u' => {
                        let mut c = self.hex4();
                        if (0xd800..0xdc00).contains(&c) && self.s[self.i] == b'\\' {
                            self.i += 2;
                            let lo = self.hex4();
                            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                        }
                        out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other as char),
                }
            }
        }
    }

    pub fn parse_results(s: &str) -> Vec<Vec<Value>> {
        let mut p = P {
            s: s.as_bytes(),
            i: 0,
        };
        match p.value() {
            Value::List(jobs) => jobs
                .into_iter()
                .map(|j| match j {
                    Value::List(v) => v,
                    _ => panic!("bad harness output"),
                })
                .collect(),
            _ => panic!("bad harness output"),
        }
    }
}
