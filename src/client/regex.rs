//! fail3ban-regex: fail2ban-regex's arguments, behaviour and output. Tests a
//! filter (by name, with options, from a file, or a regex given inline)
//! against a log file or a line and reports what it finds.

use std::borrow::Cow;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use indexmap::IndexMap;

use crate::config::options::extract_options;
use crate::config::stream::{py_float, py_repr};
use crate::config::{read_filter, read_jail, FilterSource, PyValue, TreeVersion};
use crate::filter::date::DateFound;
use crate::filter::{DateDetector, Failure, Filter, FilterOptions, Hint, Prescreen, UseDns};
use crate::source::{JournalLine, LogEncoding};

mod journal;
use journal::JournalLog;

const USAGE: &str = "Usage: fail3ban-regex [OPTIONS] <LOG> <REGEX> [IGNOREREGEX]

Tests a filter: fail2ban-regex's arguments and output.

LOG:
  string                a string representing a log line
  filename              path to a log file (/var/log/auth.log)
  systemd-journal       the systemd journal, optionally with the systemd
                        backend's options (systemd-journal[journalfiles=...,
                        journalpath=..., journalflags=..., journalmatch=...])

REGEX:
  string                a string representing a 'failregex'
  filter                name of filter, optionally with options (sshd[mode=aggressive])
  filename              path to a filter file (filter.d/sshd.conf)

IGNOREREGEX:
  string                a string representing an 'ignoreregex'
  filename              path to a filter file (filter.d/sshd.conf)

Options:
  -c, --config=DIR      set alternate config directory (default /etc/fail3ban)
  -d, --datepattern=P   set custom pattern used to match date/times
  --timezone=TZ, --TZ=TZ
                        set time-zone used by convert time format
  -e, --encoding=ENC    file encoding (only UTF-8 and latin-1 are known)
  -r, --raw             raw hosts, don't resolve dns
  --usedns=USEDNS       DNS specified replacement of tags <HOST> in regexp
  -L, --maxlines=N      maxlines for multi-line regex
  -m, --journalmatch=M  journalctl style matches overriding the filter's
                        (systemd-journal only)
  -l, --log-level=L     log level
  -v, --verbose         increase verbosity
  --verbosity=N         set numerical level of verbosity (0..4)
  --verbose-date, --VD  verbose date patterns/regex in output
  --no-check-all        disable check for all regex's
  -o, --out=TOKEN       print failure information only (row, id, ip, msg, host, ...)
  --print-no-missed     do not print any missed lines
  --print-no-ignored    do not print any ignored lines
  --print-all-matched   print all matched lines
  --print-all-missed    print all missed lines, no matter how many
  --print-all-ignored   print all ignored lines, no matter how many
  -h, --help            show this help message and exit
  -V                    show the version";

/// Command-line options, as fail2ban-regex names them.
#[derive(Debug, Clone)]
pub struct Opts {
    pub config: String,
    pub datepattern: Option<String>,
    pub timezone: Option<String>,
    pub encoding: String,
    pub raw: bool,
    pub usedns: Option<String>,
    pub maxlines: usize,
    /// `-m`: journalctl-style matches, over the filter's journalmatch.
    pub journalmatch: Option<String>,
    pub verbose: u32,
    /// `-l`: fail2ban's log level name (CRITICAL, ERROR, WARNING, ...).
    pub log_level: Option<String>,
    pub verbose_date: bool,
    pub check_all: bool,
    pub out: Option<String>,
    pub print_no_missed: bool,
    pub print_no_ignored: bool,
    pub print_all_matched: bool,
    pub print_all_missed: bool,
    pub print_all_ignored: bool,
    pub args: Vec<String>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            config: "/etc/fail3ban".into(),
            datepattern: None,
            timezone: None,
            encoding: "UTF-8".into(),
            raw: false,
            usedns: None,
            maxlines: 0,
            journalmatch: None,
            verbose: 0,
            log_level: None,
            verbose_date: false,
            check_all: true,
            out: None,
            print_no_missed: false,
            print_no_ignored: false,
            print_all_matched: false,
            print_all_missed: false,
            print_all_ignored: false,
            args: Vec::new(),
        }
    }
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    #[error("no such option: {0}")]
    Unknown(String),
    #[error("{0} option requires an argument")]
    MissingValue(String),
    #[error("option {0}: invalid integer value: {1:?}")]
    BadInt(String, String),
    #[error("provide both <LOG> and <REGEX>.")]
    Args,
    #[error("--print-no-{0} and --print-all-{0} are mutually exclusive.")]
    Exclusive(&'static str),
}

/// What to do after parsing.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Opts>),
    Help,
    Version,
}

/// Parses arguments the way Python's optparse does for fail2ban-regex:
/// options anywhere, `--opt=value` or `--opt value`, `-Xvalue` or `-X value`,
/// bundled short flags (`-rv`).
pub fn parse_args(args: &[String]) -> Result<Parsed, UsageError> {
    let mut o = Opts::default();
    let mut i = 0;
    let takes_value = |name: &str| {
        matches!(
            name,
            "-c" | "--config"
                | "-d"
                | "--datepattern"
                | "--timezone"
                | "--TZ"
                | "-e"
                | "--encoding"
                | "--usedns"
                | "-L"
                | "--maxlines"
                | "-m"
                | "--journalmatch"
                | "-l"
                | "--log-level"
                | "--verbosity"
                | "-o"
                | "--out"
        )
    };
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            o.args.extend(args[i..].iter().cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            o.args.push(a.clone());
            continue;
        }
        // Split into option names and an attached value.
        let mut items: Vec<(String, Option<String>)> = Vec::new();
        if let Some(long) = a.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => items.push((format!("--{n}"), Some(v.to_string()))),
                None => items.push((a.clone(), None)),
            }
        } else {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let name = format!("-{}", chars[k]);
                k += 1;
                if takes_value(&name) && k < chars.len() {
                    items.push((name, Some(chars[k..].iter().collect())));
                    break;
                }
                items.push((name, None));
            }
        }
        for (name, mut value) in items {
            if takes_value(&name) && value.is_none() {
                value = Some(
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| UsageError::MissingValue(name.clone()))?,
                );
                i += 1;
            }
            let v = value.unwrap_or_default();
            let int = |v: &str| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| UsageError::BadInt(name.clone(), v.to_string()))
            };
            match name.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "-V" | "--version" => return Ok(Parsed::Version),
                "-c" | "--config" => o.config = v,
                "-d" | "--datepattern" => o.datepattern = Some(v),
                "--timezone" | "--TZ" => o.timezone = Some(v),
                "-e" | "--encoding" => o.encoding = v,
                "-r" | "--raw" => o.raw = true,
                "--usedns" => o.usedns = Some(v),
                "-L" | "--maxlines" => o.maxlines = int(&v)?,
                "-l" | "--log-level" => o.log_level = Some(v),
                "-m" | "--journalmatch" => o.journalmatch = Some(v),
                "-v" | "--verbose" => o.verbose += 1,
                "--verbosity" => o.verbose = int(&v)? as u32,
                "--verbose-date" | "--VD" => o.verbose_date = true,
                "-D" | "--debuggex" | "-t" | "--log-traceback" | "--full-traceback" => {}
                "--no-check-all" => o.check_all = false,
                "-o" | "--out" => o.out = Some(v),
                "--print-no-missed" => o.print_no_missed = true,
                "--print-no-ignored" => o.print_no_ignored = true,
                "--print-all-matched" => o.print_all_matched = true,
                "--print-all-missed" => o.print_all_missed = true,
                "--print-all-ignored" => o.print_all_ignored = true,
                other => return Err(UsageError::Unknown(other.to_string())),
            }
        }
    }
    if o.print_no_missed && o.print_all_missed {
        return Err(UsageError::Exclusive("missed"));
    }
    if o.print_no_ignored && o.print_all_ignored {
        return Err(UsageError::Exclusive("ignored"));
    }
    if !(2..=3).contains(&o.args.len()) {
        return Err(UsageError::Args);
    }
    Ok(Parsed::Run(Box::new(o)))
}

/// A failregex or ignoreregex and how often it hit.
#[derive(Debug, Clone)]
struct RegexStat {
    regex: String,
    hits: u64,
    /// (fid, time, several regexes matched) for `-v`.
    ips: Vec<(String, f64, bool)>,
}

impl RegexStat {
    fn new(regex: &str) -> RegexStat {
        RegexStat {
            regex: regex.to_string(),
            hits: 0,
            ips: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
struct LineStats {
    tested: u64,
    matched: u64,
    matched_lines: Vec<String>,
    missed: u64,
    missed_lines: Vec<String>,
    ignored: u64,
    ignored_lines: Vec<String>,
}

/// fail2ban-regex's `shortstr`: at most 53 characters.
fn shortstr(s: &str) -> String {
    if s.chars().count() > 53 {
        let head: String = s.chars().take(50).collect();
        format!("{head}...")
    } else {
        s.to_string()
    }
}

fn pprint_list(out: &mut dyn Write, lines: &[String], header: Option<&str>) -> io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let head = header.map(|h| format!("|- {h}\n")).unwrap_or_default();
    writeln!(out, "{head}|  {}\n`-", lines.join("\n|  "))
}

/// The tool's state while it runs.
struct Tool<'w> {
    opts: Opts,
    out: &'w mut dyn Write,
    filter_opts: FilterOptions,
    maxlines_set: bool,
    datepattern_set: bool,
    failregex: Vec<RegexStat>,
    ignoreregex: Vec<RegexStat>,
    /// Print limit for line lists (fail2ban-regex uses -L, else 20).
    print_limit: u64,
    stats: LineStats,
    prefregex_matched: u64,
    /// The prefregex's groups per matched line, for `-v`.
    prefregex_groups: Vec<String>,
    elapsed: f64,
    /// The backend the filter is read for: `systemd` when the log is the
    /// journal (a filter's `logtype` follows it).
    backend: &'static str,
    /// The journalmatch in force: `-m`'s, else the filter's last.
    journalmatch: Option<Vec<String>>,
    /// Whether lines are dated by a date detector: not for the journal
    /// without a datepattern, whose entries carry their time (and whose
    /// report then has no date template hits).
    detects_dates: bool,
}

/// A failure to run, already in fail2ban-regex's words.
struct Fatal(String);

impl<'w> Tool<'w> {
    fn say(&mut self, line: &str) -> io::Result<()> {
        if self.opts.out.is_none() {
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    fn set_maxlines(&mut self, v: usize) -> io::Result<()> {
        if !self.maxlines_set {
            self.filter_opts.maxlines = v;
            self.maxlines_set = true;
            self.say(&format!("Use         maxlines : {v}"))?;
        }
        Ok(())
    }

    fn set_datepattern(&mut self, p: &str) -> Result<(), Fatal> {
        if !self.datepattern_set {
            self.datepattern_set = true;
            self.filter_opts.datepattern = Some(p.to_string());
            let dd = crate::filter::DateDetector::from_pattern(p)
                .map_err(|e| Fatal(format!("ERROR: {e}")))?;
            let templates: Vec<_> = dd.templates().collect();
            let name = if templates.is_empty() || templates.len() > 2 {
                "Default Detectors".to_string()
            } else {
                templates[0].name.to_string()
            };
            self.say(&format!("Use      datepattern : {p} : {name}"))
                .map_err(io_fatal)?;
        }
        Ok(())
    }

    /// fail2ban-regex's `readRegex`: a filter (by name or path, with
    /// options) or a regex given inline.
    fn read_regex(&mut self, value: &str, fail: bool) -> Result<(), Fatal> {
        let kind = if fail { "failregex" } else { "ignoreregex" };
        let mut basedir = self.opts.config.clone();
        let mut file: Option<String> = None;
        let mut name = value.to_string();
        let mut params = IndexMap::new();
        let version = self.filter_opts.version;
        let mut jail_commands = None;
        if fail && looks_like_filter(value) {
            let (n, p) = extract_options(value).map_err(|e| {
                Fatal(format!(
                    "ERROR: Wrong filter name or options: {}\n       while parsing: {value}",
                    e.kind
                ))
            })?;
            name = n;
            params = p;
            if version == TreeVersion::V1_1 && names_a_jail(&name) {
                // The jail on the backend the log asks for, as fail2ban-regex
                // 1.1 passes it: the journal's matches are the jail's then.
                let mut add = params.clone();
                add.insert("backend".into(), self.backend.into());
                jail_commands = read_jail(&basedir, &name, &add).map_err(|e| {
                    Fatal(format!(
                        "ERROR: Failed to get jail for {}: {e}",
                        py_repr(value)
                    ))
                })?;
            }
            let has_ext = name.chars().rev().take(6).any(|c| c == '.');
            let tries: Vec<String> = if has_ext {
                vec![name.clone()]
            } else {
                vec![
                    name.clone(),
                    format!("{name}.conf"),
                    format!("{name}.local"),
                ]
            };
            for t in tries {
                let candidate = if !t.contains('/') {
                    if Path::new(&basedir)
                        .file_name()
                        .is_some_and(|f| f == "filter.d")
                    {
                        format!("{basedir}/{t}")
                    } else {
                        format!("{basedir}/filter.d/{t}")
                    }
                } else {
                    basedir = Path::new(&t)
                        .parent()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    t.clone()
                };
                if Path::new(&candidate).is_file() {
                    file = Some(candidate);
                    break;
                }
            }
        }
        if file.is_none() && jail_commands.is_none() {
            self.say(&format!("Use {kind:>11} line : {}", shortstr(value)))
                .map_err(io_fatal)?;
            let stat = RegexStat::new(value);
            if fail {
                self.failregex.push(stat);
                self.filter_opts.failregex.push(value.to_string());
            } else {
                self.ignoreregex.push(stat);
                self.filter_opts.ignoreregex.push(value.to_string());
            }
            return Ok(());
        }
        let in_tree = basedir == self.opts.config
            || Path::new(&basedir)
                .file_name()
                .is_some_and(|f| f == "filter.d")
            || (!name.chars().rev().take(6).any(|c| c == '.') && !name.contains('/'));
        // fail2ban 1.1 names the filter file alike for either kind.
        let label = |in_tree: bool| match version {
            TreeVersion::V1_0 if in_tree => format!("{kind:>11} filter"),
            TreeVersion::V1_0 => format!("{kind:>11}"),
            TreeVersion::V1_1 => format!("{:>11}", "filter"),
        };
        let commands = if let Some(commands) = jail_commands {
            self.say(&format!("Use {:>11} jail : {name}", ""))
                .map_err(io_fatal)?;
            if !params.is_empty() {
                self.say(&format!("Use jail/flt options : {}", py_dict(&params)))
                    .map_err(io_fatal)?;
            }
            Ok(commands)
        } else if in_tree {
            if Path::new(&basedir)
                .file_name()
                .is_some_and(|f| f == "filter.d")
            {
                basedir = Path::new(&basedir)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
            }
            let stem = Path::new(&name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or(name.clone());
            self.say(&format!(
                "Use {} file : {stem}, basedir: {basedir}",
                label(true)
            ))
            .map_err(io_fatal)?;
            if !params.is_empty() {
                self.say(&format!("Use   filter options : {}", py_dict(&params)))
                    .map_err(io_fatal)?;
            }
            read_filter(
                FilterSource::Named {
                    basedir: &basedir,
                    name: &stem,
                },
                params,
                "fail2ban-regex-jail",
                self.backend,
            )
        } else {
            let abs = std::fs::canonicalize(&name)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or(name.clone());
            self.say(&format!("Use {} file : {name}", label(false)))
                .map_err(io_fatal)?;
            if !params.is_empty() {
                self.say(&format!("Use   filter options : {}", py_dict(&params)))
                    .map_err(io_fatal)?;
            }
            read_filter(
                FilterSource::File(&abs),
                params,
                "fail2ban-regex-jail",
                self.backend,
            )
        };
        let commands = commands.map_err(|e| {
            Fatal(format!(
                "Wrong config file: {e}\nERROR: failed to load filter {value}"
            ))
        })?;
        let mut fails = Vec::new();
        let mut ignores = Vec::new();
        for cmd in commands {
            if cmd.get(2).and_then(PyValue::as_str) == Some("addjournalmatch") {
                // Each replaces the one before, as in fail2ban-regex; -m wins.
                if self.opts.journalmatch.is_none() {
                    self.journalmatch = Some(cmd[3..].iter().map(PyValue::to_text).collect());
                }
                continue;
            }
            let (verb, values): (&str, Vec<PyValue>) = match cmd.first().and_then(PyValue::as_str) {
                Some("multi-set") => match cmd.get(3) {
                    Some(PyValue::List(l)) => (cmd[2].as_str().unwrap_or(""), l.clone()),
                    _ => continue,
                },
                Some("set") => (
                    cmd.get(2).and_then(PyValue::as_str).unwrap_or(""),
                    cmd[3..].to_vec(),
                ),
                _ => continue,
            };
            for v in values {
                let text = v.to_text();
                match verb {
                    "prefregex" => self.filter_opts.prefregex = Some(text),
                    "addfailregex" => fails.push(text),
                    "addignoreregex" => ignores.push(text),
                    "maxlines" => {
                        let n = match v {
                            PyValue::Int(i) if i > 0 => i as usize,
                            _ => {
                                return Err(Fatal(format!(
                                "ERROR: Invalid value for maxlines ({text:?}) read from {value}"
                            )))
                            }
                        };
                        self.set_maxlines(n).map_err(io_fatal)?;
                    }
                    "datepattern" => self.set_datepattern(&text)?,
                    _ => {}
                }
            }
        }
        for r in fails {
            self.failregex.push(RegexStat::new(&r));
            self.filter_opts.failregex.push(r);
        }
        for r in ignores {
            self.ignoreregex.push(RegexStat::new(&r));
            self.filter_opts.ignoreregex.push(r);
        }
        Ok(())
    }
}

/// The version of the tree `-c` names (fail2ban-regex also takes its
/// filter.d for it).
fn tree_version(config: &str) -> TreeVersion {
    let dir = Path::new(config);
    match dir.file_name() {
        Some(f) if f == "filter.d" => TreeVersion::of(dir.parent().unwrap_or(dir)),
        _ => TreeVersion::of(dir),
    }
}

fn io_fatal(e: io::Error) -> Fatal {
    Fatal(format!("ERROR: {e}"))
}

/// A filter name that fail2ban-regex 1.1 first looks up as a jail: no path,
/// no `.conf`/`.local` file.
fn names_a_jail(name: &str) -> bool {
    !name.contains('/') && !name.ends_with(".conf") && !name.ends_with(".local")
}

/// A value that may name a filter: a path-like word with optional options.
fn looks_like_filter(value: &str) -> bool {
    let (head, rest) = match value.find('[') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    let slashes = head.len() - head.trim_start_matches('/').len();
    let word = &head[slashes..];
    slashes <= 3
        && !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || "/_-.".contains(c))
        && (rest.is_empty() || rest.ends_with(']'))
}

fn py_dict(m: &IndexMap<String, String>) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The text fail2ban-regex prints for `-o ...` of one failure.
/// `time` is the line's time: `None` for an undated line, which fail2ban
/// prints as `None`.
fn format_failure(fmt: &str, f: &Failure, time: Option<f64>, out: &mut Vec<String>) {
    let time = time.map_or_else(|| "None".into(), |_| py_float(f.time));
    let fid = f
        .fid
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "None".into());
    match fmt {
        "id" | "fid" => out.push(fid),
        "ip" => out.push(f.ip.as_ref().map(ToString::to_string).unwrap_or(fid)),
        "msg" => out.extend(f.matches.iter().cloned()),
        "row" => {
            let mut data: Vec<String> = f
                .data
                .entries()
                .map(|(k, v)| format!("{}: {}", py_repr(k), v.map_or("None".into(), py_repr)))
                .collect();
            if let Some(ip) = &f.ip {
                data.push(format!("'ip': {}", py_repr(&ip.to_string())));
            }
            out.push(format!(
                "[{},\t{},\t{{{}}}],",
                py_repr(&fid),
                time,
                data.join(", ")
            ));
        }
        key if !key.contains('<') => {
            let v = match key {
                "matches" => Some(format!(
                    "[{}]",
                    f.matches
                        .iter()
                        .map(|m| py_repr(m))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                _ => f.data.get(key).cloned(),
            };
            out.push(v.unwrap_or_else(|| "None".into()));
        }
        template => {
            let mut s = template.replace("<fid>", &fid).replace("<F-ID>", &fid);
            s = s.replace(
                "<ip>",
                &f.ip
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or(fid.clone()),
            );
            // A ticket made without a time gets now, which is what an
            // undated failure already carries.
            s = s.replace("<time>", &py_float(f.time));
            for (k, v) in &f.data {
                // Log-derived values are printed, never interpreted: NULs
                // are made visible so they cannot smuggle a pseudo tag.
                s = s.replace(
                    &format!("<F-{}>", k.to_uppercase()),
                    &v.replace('\0', "\\x00"),
                );
            }
            if s.contains("<msg>") {
                for m in &f.matches {
                    out.push(s.replace("<msg>", m));
                }
            } else {
                out.push(s);
            }
        }
    }
}

/// Where the lines come from.
enum Source {
    File(String),
    Lines(Vec<String>),
    Journal(JournalLog),
}

/// A line handed to the filter, with what is known of its date.
enum Input<'a> {
    /// Not yet dated.
    Plain(&'a str),
    /// Dated ahead by the reading thread, with the prescreen's hint.
    Found(&'a str, Option<DateFound>, f64, Option<&'a Hint>),
    /// A journal entry, which carries its date.
    Journal(&'a JournalLine),
}

/// The line as text (borrowed when it is valid UTF-8: no allocation per
/// line on the common path), and whether it decoded cleanly (invalid bytes
/// are replaced, as fail2ban's `decode(enc, 'replace')` does).
fn decode(bytes: &[u8], latin1: bool) -> (Cow<'_, str>, bool) {
    if latin1 && !bytes.is_ascii() {
        return (Cow::Owned(bytes.iter().map(|&b| b as char).collect()), true);
    }
    // from_utf8 validates much faster than the lossy decoder's chunking.
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), true),
        Err(_) => (String::from_utf8_lossy(bytes), false),
    }
}

/// Longest line read from a file; longer ones are cut (with a warning) so a
/// hostile log cannot exhaust memory.
const MAX_LINE: usize = 1 << 20;

/// The time a line is read at. Read for every line, so from the coarse
/// clock: a few nanoseconds instead of a precise read's twenty-odd, at the
/// price of lagging by at most a clock tick (a few milliseconds), far
/// below what dates without a year or findtime care about.
fn now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Something to report about the log while reading it, in line order.
#[derive(Debug, Clone, Copy)]
enum ReadNote {
    /// A line was cut at `MAX_LINE`.
    Long,
    /// A line did not decode (reported once per file).
    Decode,
}

/// Bytes of whole lines validated as UTF-8 at once: small enough to stay in
/// cache for the line's dating and screening right after, and no longer
/// than `MAX_LINE`, so that no line in such a block needs cutting.
const BLOCK: usize = 64 << 10;

/// A piece of the log as read: the lines in it are handed to the filter
/// thread by reference (a batch holds the chunk), not copied. It is only
/// written before its first line is handed out; after that it is shared
/// and read-only until every batch has let go of it, and then refilled.
type Chunk = Arc<Vec<u8>>;

/// Bytes a chunk mostly holds: little enough that what a read brings in is
/// still in cache when its lines are split, dated and screened.
const CHUNK_BYTES: usize = 256 << 10;

/// Bytes read into a chunk at the least, after the start of a line that
/// the last read cut: a long line (cut at `MAX_LINE` anyway) gets a chunk
/// as large as it needs.
const READ_MIN: usize = 128 << 10;

/// A line read: either in a chunk, which the receiver may keep, or text
/// only valid during the call it is handed to.
#[derive(Clone, Copy)]
enum Text<'a> {
    Shared(&'a Chunk, &'a str),
    Passing(&'a str),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match *self {
            Text::Shared(_, s) | Text::Passing(s) => s,
        }
    }
}

/// Splits bytes into lines the way fail2ban-regex reads them, one piece of
/// the log after the other.
struct Splitter {
    latin1: bool,
    /// Inside the rest of a line that was cut: dropped up to its newline.
    skipping: bool,
    decode_warned: bool,
    notes: Vec<ReadNote>,
}

impl Splitter {
    /// The longest run of whole lines at the start of `block` (which ends
    /// in a newline) that decodes as it is, and whether it is all ASCII.
    fn valid_lines<'d>(&self, block: &'d [u8]) -> (&'d str, bool) {
        if block.is_ascii() {
            // SAFETY: ASCII is valid UTF-8 (checking it again as UTF-8 would
            // read the block twice).
            return (unsafe { std::str::from_utf8_unchecked(block) }, true);
        }
        let valid = if self.latin1 {
            // Latin-1 text borrows only ASCII: other bytes become chars.
            block.iter().position(|b| !b.is_ascii()).unwrap_or(0)
        } else {
            match std::str::from_utf8(block) {
                Ok(s) => return (s, false),
                Err(e) => e.valid_up_to(),
            }
        };
        let end = memchr::memrchr(b'\n', &block[..valid]).map_or(0, |p| p + 1);
        // Valid up to `valid`, so up to the newline before it as well.
        let text = std::str::from_utf8(&block[..end]).unwrap_or_default();
        (text, false)
    }

    /// Hands `each` the lines `data` holds (the whole rest of the log when
    /// `eof`), with whether each is known to be all ASCII. Returns how many
    /// bytes it used (the rest waits for more), and false once `each` says
    /// to stop.
    fn split<'d>(
        &mut self,
        data: &'d [u8],
        eof: bool,
        each: &mut impl FnMut(Cow<'d, str>, bool, &[ReadNote]) -> io::Result<bool>,
    ) -> io::Result<(usize, bool)> {
        let mut start = 0;
        // Up to where lines are decoded one by one: the rest of a block that
        // did not decode whole (so that no byte is checked more than twice).
        let mut slow_until = 0;
        loop {
            let pending = &data[start..];
            if self.skipping {
                match memchr::memchr(b'\n', pending) {
                    Some(p) => {
                        start += p + 1;
                        self.skipping = false;
                    }
                    None => return Ok((data.len(), true)),
                }
                continue;
            }
            // Whole lines that are valid as a block are valid one by one;
            // only those of a block that is not are decoded line by line.
            if start >= slow_until {
                let window = &pending[..pending.len().min(BLOCK)];
                if let Some(q) = memchr::memrchr(b'\n', window) {
                    let (text, ascii) = self.valid_lines(&pending[..=q]);
                    if text.len() <= q {
                        slow_until = start + q + 1;
                    }
                    let mut from = 0;
                    for p in memchr::memchr_iter(b'\n', text.as_bytes()) {
                        let go_on = each(Cow::Borrowed(&text[from..=p]), ascii, &self.notes)?;
                        self.notes.clear();
                        from = p + 1;
                        if !go_on {
                            return Ok((start + from, false));
                        }
                    }
                    start += text.len();
                    if start >= slow_until {
                        continue;
                    }
                }
            }
            let pending = &data[start..];
            let line: &[u8] = match memchr::memchr(b'\n', pending) {
                Some(p) if p < MAX_LINE => {
                    start += p + 1;
                    &pending[..=p]
                }
                // fail2ban-regex waits for the end of a line: a last line
                // without one is not read (it may still be written), unless
                // it ends in a carriage return.
                None if pending.len() < MAX_LINE => {
                    if eof && pending.last() == Some(&b'\r') {
                        start = data.len();
                        pending
                    } else {
                        return Ok((start, true));
                    }
                }
                _ => {
                    self.notes.push(ReadNote::Long);
                    start += MAX_LINE;
                    self.skipping = true;
                    &pending[..MAX_LINE]
                }
            };
            let (text, clean) = decode(line, self.latin1);
            if !clean && !self.decode_warned {
                // Once per file, like fail2ban: the rest would flood.
                self.decode_warned = true;
                self.notes.push(ReadNote::Decode);
            }
            let go_on = each(text, false, &self.notes)?;
            self.notes.clear();
            if !go_on {
                return Ok((start, false));
            }
        }
    }
}

/// Reads a log the way fail2ban-regex does: line by line, a last line
/// without its newline left unread, overlong lines cut, invalid bytes
/// replaced. `each` gets each line (newline kept), whether it is known to
/// be all ASCII (false: not known), and the notes to report before it, and
/// returns whether to go on.
///
/// The log is read, not mapped: a mapped log that another process
/// truncates (logrotate's copytruncate) kills the reader with SIGBUS, and
/// one rewritten in place would change text already checked as UTF-8.
fn read_log(
    path: &str,
    latin1: bool,
    mut each: impl FnMut(Text<'_>, bool, &[ReadNote]) -> io::Result<bool>,
) -> Result<(), Fatal> {
    let mut f = std::fs::File::open(path).map_err(|e| Fatal(format!("{e}")))?;
    let mut splitter = Splitter {
        latin1,
        skipping: false,
        decode_warned: false,
        notes: Vec::new(),
    };
    // Chunks handed out before, to refill once no batch holds them.
    let mut spare: Vec<Chunk> = Vec::new();
    let mut cur: Chunk = Arc::new(vec![0u8; CHUNK_BYTES]);
    let (mut start, mut end) = (0, 0);
    loop {
        let buf = Arc::get_mut(&mut cur).expect("a chunk is only read into before it is shared");
        let n = loop {
            match f.read(&mut buf[end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(io_fatal)?,
            }
        };
        let eof = n == 0;
        end += n;
        let (used, go_on) = splitter
            .split(
                &cur[start..end],
                eof,
                &mut |line, ascii, notes| match line {
                    Cow::Borrowed(s) => each(Text::Shared(&cur, s), ascii, notes),
                    Cow::Owned(s) => each(Text::Passing(&s), ascii, notes),
                },
            )
            .map_err(io_fatal)?;
        start += used;
        if !go_on || eof {
            break;
        }
        // The start of a line still being read moves to a chunk that no
        // batch holds, and the rest of it is read after it there.
        let want = end - start + READ_MIN;
        let mut next = match spare
            .iter()
            .position(|c| Arc::strong_count(c) == 1 && c.len() >= want)
        {
            Some(i) => spare.swap_remove(i),
            None => Arc::new(vec![0u8; want.max(CHUNK_BYTES)]),
        };
        let to = Arc::get_mut(&mut next).expect("a spare chunk no batch holds");
        to[..end - start].copy_from_slice(&cur[start..end]);
        end -= start;
        start = 0;
        spare.push(std::mem::replace(&mut cur, next));
        // Batches in flight hold a few chunks at the most; more are not
        // worth keeping.
        spare.truncate(16);
    }
    Ok(())
}

/// Lines read and dated ahead of the filter, with the notes between them.
#[derive(Default)]
struct Batch {
    /// The chunks its lines are in (mostly one).
    chunks: Vec<Chunk>,
    /// The lines that are not in a chunk (those decoded into new text).
    text: String,
    items: Vec<Item>,
    /// What the prescreen found, for the items that name one: kept apart,
    /// so that a hint is written once and then only read by reference.
    hints: Vec<Hint>,
}

impl Batch {
    /// The text of an item's line.
    fn line(&self, at: &LineAt) -> &str {
        match *at {
            LineAt::Chunk { chunk, start, end } => {
                let bytes = &self.chunks[chunk][start..end];
                // SAFETY: these bytes were a `&str` (checked UTF-8) when the
                // item was made, and a chunk is not written while a batch
                // holds it.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            LineAt::Copied { start, end } => &self.text[start..end],
        }
    }

    /// Empties it for the reading thread to fill again.
    fn clear(&mut self) {
        self.chunks.clear();
        self.text.clear();
        self.items.clear();
        self.hints.clear();
    }
}

enum Item {
    Note(ReadNote),
    Line {
        text: LineAt,
        found: Option<DateFound>,
        now: f64,
        /// Index in the batch's hints.
        hint: Option<usize>,
    },
}

/// Where an item's line is.
enum LineAt {
    /// In one of the batch's chunks.
    Chunk {
        chunk: usize,
        start: usize,
        end: usize,
    },
    /// In the batch's text.
    Copied { start: usize, end: usize },
}

/// Lines per batch: enough to make the hand-over between threads cheap.
const BATCH: usize = 512;

/// Batches sent and not yet taken by the filter at or above which the
/// reading thread runs the prescreen again (it stops when none are left).
const PRESCREEN_BEHIND: usize = 2;

/// The reading thread: reads and dates each line the filter would look at
/// (the same lines, in the same order, with the same clock reads as the
/// filter would do itself) and sends them on in batches, with what the
/// filter's prescreen found in each. Stops when the receiver is gone.
/// Gives the detector back.
///
/// The prescreen moves work from the filter to this thread, so it only
/// runs while the filter is the slower of the two: while batches queue up
/// (`queued` counts those sent and not yet taken). When the filter waits
/// for lines, as with a cheap filter on lines that are costly to date, it
/// would only slow this thread down. Lines without a hint are filtered
/// the same, just with every search done by the filter.
fn read_and_date(
    path: &str,
    latin1: bool,
    mut dates: DateDetector,
    mut prescreen: Option<Prescreen>,
    tx: mpsc::SyncSender<Batch>,
    free: mpsc::Receiver<Batch>,
    queued: &AtomicUsize,
) -> (DateDetector, Result<(), Fatal>) {
    let mut batch = Batch::default();
    let mut screening = true;
    let read = read_log(path, latin1, |text, ascii, notes| {
        batch.items.extend(notes.iter().map(|&n| Item::Note(n)));
        let raw = text.as_str();
        let line = raw.trim_end_matches(['\r', '\n']);
        if !(line.starts_with('#') || line.is_empty()) {
            let now = now();
            let found = dates.find(line, now);
            // With its newline, so that the prescreen need not add one.
            let ended = match raw.as_bytes().get(line.len()) {
                Some(b'\n') => &raw[..=line.len()],
                _ => line,
            };
            let hint = prescreen
                .as_mut()
                .filter(|_| screening)
                .and_then(|p| p.scan_into(ended, found.as_ref(), ascii, &mut batch.hints));
            let text = match text {
                Text::Shared(chunk, m) => {
                    if !batch.chunks.last().is_some_and(|c| Arc::ptr_eq(c, chunk)) {
                        batch.chunks.push(Arc::clone(chunk));
                    }
                    // Where the line is in its chunk.
                    let start = m.as_ptr() as usize - chunk.as_ptr() as usize;
                    LineAt::Chunk {
                        chunk: batch.chunks.len() - 1,
                        start,
                        end: start + line.len(),
                    }
                }
                Text::Passing(_) => {
                    let start = batch.text.len();
                    batch.text.push_str(line);
                    LineAt::Copied {
                        start,
                        end: batch.text.len(),
                    }
                }
            };
            batch.items.push(Item::Line {
                text,
                found,
                now,
                hint,
            });
        }
        if batch.items.len() >= BATCH {
            let next = free.try_recv().unwrap_or_default();
            let waiting = queued.fetch_add(1, Ordering::Relaxed);
            if waiting >= PRESCREEN_BEHIND {
                screening = true;
            } else if waiting == 0 {
                screening = false;
            }
            if tx.send(std::mem::replace(&mut batch, next)).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    });
    if !batch.items.is_empty() {
        let _ = tx.send(batch);
    }
    (dates, read)
}

/// The resolver for `<HOST>` names, started at the first one. A one-shot
/// tool waits for names as fail2ban-regex does, up to a minute.
fn resolver() -> &'static crate::dns::Resolver {
    static RESOLVER: std::sync::OnceLock<crate::dns::Resolver> = std::sync::OnceLock::new();
    RESOLVER.get_or_init(|| crate::dns::Resolver::getaddrinfo(std::time::Duration::from_secs(60)))
}

impl Tool<'_> {
    fn process(&mut self, filter: &mut Filter, source: Source) -> Result<(), Fatal> {
        let t0 = Instant::now();
        let latin1 = matches!(
            self.opts.encoding.to_lowercase().as_str(),
            "latin-1" | "latin1" | "iso-8859-1"
        );
        let out_fmt = self.opts.out.clone();
        // Only -o and -v read a failure's matches and groups.
        filter.set_lean_failures(out_fmt.is_none() && self.opts.verbose == 0);
        let mut printed: Vec<String> = Vec::new();
        let multiline = filter.options().maxlines > 1;
        // Reading and dating run on a second thread when there is a core
        // for it; the filter then gets lines already dated, in order.
        let pipelined = matches!(source, Source::File(_))
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        let dates = pipelined.then(|| filter.take_dates());
        let prescreen = if pipelined {
            filter.prescreen().map_err(|e| Fatal(e.to_string()))?
        } else {
            None
        };
        // A journal entry's line as the report prints it: its date text,
        // then its text.
        let mut joined = String::new();
        let mut handle = |tool: &mut Tool, input: Input| -> io::Result<()> {
            let line = match input {
                Input::Plain(l) | Input::Found(l, ..) => {
                    let line = l.trim_end_matches(['\r', '\n']);
                    if line.starts_with('#') || line.is_empty() {
                        return Ok(());
                    }
                    line
                }
                // Every entry is a line, whatever its text.
                Input::Journal(l) => {
                    joined.clear();
                    joined.push_str(&l.date_text);
                    joined.push_str(&l.text);
                    joined.as_str()
                }
            };
            let before: Vec<String> = if multiline {
                filter.buffered_lines().map(str::to_string).collect()
            } else {
                Vec::new()
            };
            let full = before.len() >= filter.options().maxlines;
            let mut outcome = match input {
                Input::Found(_, found, now, hint) => {
                    filter.process_found_hinted(line, found, now, hint)
                }
                Input::Plain(_) => filter.process_line_outcome(line, now()),
                Input::Journal(l) => filter.process_dated("", &l.date_text, &l.text, l.time, now()),
            };
            if outcome.failures.iter().any(|f| f.host_name.is_some()) {
                let use_dns = filter.options().usedns;
                resolver().resolve_failures_blocking(&mut outcome.failures, use_dns);
            }
            let ignored = outcome.is_ignored();
            let any_real = outcome.is_matched();
            if let Some(fmt) = &out_fmt {
                if any_real && !ignored {
                    printed.clear();
                    for f in outcome.failures.iter().filter(|f| !f.nofail) {
                        format_failure(fmt, f, outcome.time, &mut printed);
                    }
                    for p in &printed {
                        writeln!(tool.out, "{p}")?;
                    }
                }
                return Ok(());
            }
            // fail2ban-regex flags a failure as "multiple regex matched"
            // when more than one real failure of the line came before it.
            let mut real_before = 0;
            for f in &outcome.failures {
                if let Some(r) = tool.failregex.get_mut(f.failregex) {
                    r.hits += 1;
                    if tool.opts.verbose > 0 {
                        let id = f
                            .fid
                            .as_ref()
                            .map_or_else(|| "None".into(), ToString::to_string);
                        r.ips.push((id, f.time, real_before > 1));
                    }
                }
                if !f.nofail {
                    real_before += 1;
                }
            }
            for &i in &outcome.ignored_by {
                if let Some(r) = tool.ignoreregex.get_mut(i) {
                    r.hits += 1;
                }
            }
            if outcome.prefregex_matched {
                tool.prefregex_matched += 1;
                if tool.opts.verbose > 0 {
                    let n = tool.prefregex_groups.len() as u64;
                    if n < tool.print_limit {
                        let groups: Vec<String> = filter
                            .prefregex_groups()
                            .iter()
                            .map(|(k, v)| {
                                let v = v.as_deref().map_or("None".into(), py_repr);
                                format!("{}: {v}", py_repr(k))
                            })
                            .collect();
                        tool.prefregex_groups
                            .push(format!("{{{}}}", groups.join(", ")));
                    } else if n == tool.print_limit {
                        tool.prefregex_groups.push("...".into());
                    }
                }
            }
            if multiline {
                // Lines a multi-line failure used up count as matched, not
                // missed, as fail2ban-regex counts them.
                let now_buf: Vec<&str> = filter.buffered_lines().collect();
                for b in before.iter().skip(usize::from(full)) {
                    if !now_buf.contains(&b.as_str()) {
                        if let Some(pos) = tool.stats.missed_lines.iter().position(|m| m == b) {
                            tool.stats.missed_lines.remove(pos);
                        }
                        if tool.opts.print_all_matched {
                            tool.stats.matched_lines.push(b.clone());
                        }
                        tool.stats.matched += 1;
                        tool.stats.missed = tool.stats.missed.saturating_sub(1);
                    }
                }
            }
            let limit = tool.print_limit + 1;
            if ignored {
                tool.stats.ignored += 1;
                if !tool.opts.print_no_ignored
                    && (tool.opts.print_all_ignored || tool.stats.ignored <= limit)
                {
                    tool.stats.ignored_lines.push(line.to_string());
                }
            } else if any_real {
                tool.stats.matched += 1;
                if tool.opts.print_all_matched {
                    tool.stats.matched_lines.push(line.to_string());
                }
            } else {
                tool.stats.missed += 1;
                if !tool.opts.print_no_missed
                    && (tool.opts.print_all_missed || tool.stats.missed <= limit)
                {
                    tool.stats.missed_lines.push(line.to_string());
                }
            }
            tool.stats.tested += 1;
            filter.recycle(outcome);
            Ok(())
        };
        let encoding = self.opts.encoding.clone();
        let emit = |note: ReadNote, path: &str| match note {
            ReadNote::Long => tracing::warn!("line longer than {MAX_LINE} bytes cut in {path}"),
            ReadNote::Decode => {
                tracing::warn!("Error decoding line from '{path}' with '{encoding}'.")
            }
        };
        let mut dates_back = None;
        match (source, dates) {
            (Source::Lines(lines), _) => {
                for l in lines {
                    handle(self, Input::Plain(&l)).map_err(io_fatal)?;
                }
            }
            (Source::Journal(log), _) => {
                let matches = self.journalmatch.clone();
                let encoding = LogEncoding::new(&self.opts.encoding)
                    .map_err(|e| Fatal(format!("ERROR: {e}")))?;
                log.read(matches.as_deref(), encoding, |l| {
                    handle(self, Input::Journal(l))?;
                    Ok(true)
                })
                .map_err(|e| Fatal(format!("ERROR: {e}")))?;
            }
            (Source::File(path), None) => {
                read_log(&path, latin1, |line, _, notes| {
                    for &n in notes {
                        emit(n, &path);
                    }
                    handle(self, Input::Plain(line.as_str()))?;
                    Ok(true)
                })?;
            }
            (Source::File(path), Some(dates)) => {
                let queued = AtomicUsize::new(0);
                let (dates, read) = std::thread::scope(|s| -> (DateDetector, Result<(), Fatal>) {
                    let (tx, rx) = mpsc::sync_channel::<Batch>(4);
                    let (free_tx, free_rx) = mpsc::channel::<Batch>();
                    let (p, q) = (path.as_str(), &queued);
                    let reader =
                        s.spawn(move || read_and_date(p, latin1, dates, prescreen, tx, free_rx, q));
                    let mut res = Ok(());
                    'batches: for mut b in rx {
                        queued.fetch_sub(1, Ordering::Relaxed);
                        // Taken out, so that the lines can be read from the
                        // batch while its items are drained.
                        let mut items = std::mem::take(&mut b.items);
                        for item in items.drain(..) {
                            let r = match item {
                                Item::Note(n) => {
                                    emit(n, &path);
                                    Ok(())
                                }
                                Item::Line {
                                    text,
                                    found,
                                    now,
                                    hint,
                                } => {
                                    let hint = hint.and_then(|i| b.hints.get(i));
                                    handle(self, Input::Found(b.line(&text), found, now, hint))
                                }
                            };
                            if let Err(e) = r {
                                res = Err(io_fatal(e));
                                break 'batches;
                            }
                        }
                        b.clear();
                        b.items = items;
                        let _ = free_tx.send(b);
                    }
                    match reader.join() {
                        Ok((dates, read)) => (dates, res.and(read)),
                        Err(p) => std::panic::resume_unwind(p),
                    }
                });
                dates_back = Some(dates);
                read?;
            }
        }
        if let Some(d) = dates_back {
            filter.put_dates(d);
        }
        self.elapsed = t0.elapsed().as_secs_f64();
        Ok(())
    }

    fn print_lines(&mut self, kind: &str) -> io::Result<()> {
        let (count, lines, all) = match kind {
            "matched" => (
                self.stats.matched,
                &self.stats.matched_lines,
                self.opts.print_all_matched,
            ),
            "ignored" => (
                self.stats.ignored,
                &self.stats.ignored_lines,
                self.opts.print_all_ignored,
            ),
            _ => (
                self.stats.missed,
                &self.stats.missed_lines,
                self.opts.print_all_missed,
            ),
        };
        if count == 0 {
            return Ok(());
        }
        let mut cap = kind.to_string();
        cap[..1].make_ascii_uppercase();
        let header = format!("{cap} line(s):");
        if count < self.print_limit || all {
            let l: Vec<String> = lines.iter().map(|x| x.trim_end().to_string()).collect();
            pprint_list(self.out, &l, Some(&header))
        } else {
            writeln!(
                self.out,
                "{header} too many to print.  Use --print-all-{kind} to print all {count} lines"
            )
        }
    }

    fn print_date_hits(&mut self, filter: &Filter) -> io::Result<()> {
        writeln!(self.out, "\nDate template hits:")?;
        let mut lines = Vec::new();
        for t in filter.dates().templates() {
            if self.opts.verbose > 0 || t.hits > 0 {
                lines.push(format!("[{}] {}", t.hits, t.name));
                if self.opts.verbose_date {
                    lines.push(format!(
                        "    # weight: {:.3}, pattern: {}",
                        t.weight,
                        t.pattern.unwrap_or("")
                    ));
                    lines.push(format!("    # regex:   {}", t.regex));
                }
            }
        }
        pprint_list(self.out, &lines, Some("[# of hits] date format"))
    }

    fn print_stats(&mut self, filter: &Filter) -> io::Result<()> {
        writeln!(self.out, "\nResults\n=======")?;
        if let Some(pre) = filter.prefregex() {
            writeln!(self.out, "\nPrefregex: {} total", self.prefregex_matched)?;
            let mut lines = vec![pre.expanded().to_string()];
            lines.extend(self.prefregex_groups.iter().map(|g| format!("    {g}")));
            pprint_list(self.out, &lines, None)?;
        }
        for (title, list) in [
            ("Failregex", self.failregex.clone()),
            ("Ignoreregex", self.ignoreregex.clone()),
        ] {
            let mut total = 0;
            let mut lines = Vec::new();
            for (i, r) in list.iter().enumerate() {
                total += r.hits;
                if r.hits > 0 || self.opts.verbose > 0 {
                    lines.push(format!("{:2}) [{}] {}", i + 1, r.hits, r.regex));
                }
                if self.opts.verbose > 0 {
                    for (id, t, several) in &r.ips {
                        lines.push(format!(
                            "    {id}  {}{}",
                            ctime(*t),
                            if *several {
                                " (multiple regex matched)"
                            } else {
                                ""
                            }
                        ));
                    }
                }
            }
            writeln!(self.out, "\n{title}: {total} total")?;
            pprint_list(self.out, &lines, Some(" #) [# of hits] regular expression"))?;
        }
        if self.detects_dates {
            self.print_date_hits(filter)?;
        }
        let s = &self.stats;
        writeln!(
            self.out,
            "\nLines: {} lines, {} ignored, {} matched, {} missed",
            s.tested, s.ignored, s.matched, s.missed
        )?;
        writeln!(self.out, "[processed in {:.2} sec]", self.elapsed)?;
        writeln!(self.out)?;
        if self.opts.print_all_matched {
            self.print_lines("matched")?;
        }
        if !self.opts.print_no_ignored {
            self.print_lines("ignored")?;
        }
        if !self.opts.print_no_missed {
            self.print_lines("missed")?;
        }
        Ok(())
    }
}

/// fail2ban's `str2LogLevel` names (and numbers) as a tracing level;
/// CRITICAL (fail2ban-regex's default) shows errors only.
fn log_level(name: &str) -> tracing::level_filters::LevelFilter {
    use tracing::level_filters::LevelFilter as L;
    let upper = name.trim().to_uppercase();
    match upper.as_str() {
        "CRITICAL" | "FATAL" | "ERROR" => L::ERROR,
        "WARNING" | "WARN" | "NOTICE" => L::WARN,
        "INFO" | "MSG" => L::INFO,
        "DEBUG" => L::DEBUG,
        "TRACEDEBUG" | "HEAVYDEBUG" => L::TRACE,
        n => match n.parse::<u32>() {
            Ok(v) if v >= 40 => L::ERROR,
            Ok(v) if v >= 25 => L::WARN,
            Ok(v) if v >= 20 => L::INFO,
            Ok(v) if v >= 10 => L::DEBUG,
            Ok(_) => L::TRACE,
            Err(_) => L::WARN,
        },
    }
}

/// `time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(t))`.
fn ctime(t: f64) -> String {
    let ts = jiff::Timestamp::from_second(t as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%a %b %d %H:%M:%S %Y")
        .to_string()
}

/// Runs fail3ban-regex with `args` (without the program name), writing to
/// `out`. Returns the process exit code.
pub fn run(args: &[String], out: &mut dyn Write) -> i32 {
    let opts = match parse_args(args) {
        Ok(Parsed::Run(o)) => *o,
        Ok(Parsed::Help) => {
            let _ = writeln!(out, "{USAGE}");
            return 0;
        }
        Ok(Parsed::Version) => {
            let _ = writeln!(out, "{}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(e) => {
            eprintln!("{USAGE}\n\nERROR: {e}");
            return 255;
        }
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let level = opts.log_level.as_deref().map(log_level);
    let go = || match run_opts(opts, &mut out) {
        Ok(()) => 0,
        Err(Fatal(msg)) => {
            let _ = writeln!(out, "{msg}");
            255
        }
    };
    let code = match level {
        // `-l` replaces whatever the binary set up, for this run only.
        Some(level) => {
            let sub = tracing_subscriber::fmt()
                .with_writer(io::stderr)
                .with_max_level(level)
                .with_target(false)
                .with_ansi(false)
                .without_time()
                .finish();
            tracing::subscriber::with_default(sub, go)
        }
        None => go(),
    };
    let _ = out.flush();
    code
}

fn run_opts(opts: Opts, out: &mut dyn Write) -> Result<(), Fatal> {
    if opts.out.is_none() {
        writeln!(out, "\nRunning tests\n=============\n").map_err(io_fatal)?;
    }
    let mut filter_opts = FilterOptions {
        check_all_regex: opts.check_all && opts.out.is_none(),
        ignore_pending: opts.out.is_some(),
        return_raw_host: opts.raw,
        check_find_time: false,
        in_operation: false,
        logtimezone: opts.timezone.clone(),
        version: tree_version(&opts.config),
        ..FilterOptions::default()
    };
    if let Some(d) = &opts.usedns {
        filter_opts.usedns = UseDns::parse(d);
    }
    let print_limit = if opts.maxlines > 0 {
        opts.maxlines as u64
    } else {
        20
    };
    let mut tool = Tool {
        opts: opts.clone(),
        out,
        filter_opts,
        maxlines_set: false,
        datepattern_set: false,
        failregex: Vec::new(),
        ignoreregex: Vec::new(),
        print_limit,
        stats: LineStats::default(),
        prefregex_matched: 0,
        prefregex_groups: Vec::new(),
        elapsed: 0.0,
        backend: "auto",
        journalmatch: None,
        detects_dates: true,
    };
    if opts.maxlines > 0 {
        tool.set_maxlines(opts.maxlines).map_err(io_fatal)?;
    }
    if let Some(d) = &opts.datepattern {
        tool.set_datepattern(d)?;
    }
    let (log, regex) = (opts.args[0].clone(), opts.args[1].clone());
    let journal = log.starts_with("systemd-journal");
    let mut journal_log = None;
    if journal {
        tool.backend = "systemd";
        let j = JournalLog::parse(&log).map_err(|e| Fatal(format!("ERROR: {e}")))?;
        // fail3ban's own: a journalmatch among the options counts as -m.
        if tool.opts.journalmatch.is_none() {
            tool.opts.journalmatch = j.journalmatch.as_ref().map(|m| m.join(" "));
            tool.journalmatch = j.journalmatch.clone();
        }
        journal_log = Some(j);
    }
    if let Some(m) = &opts.journalmatch {
        tool.journalmatch =
            Some(journal::match_words(m).map_err(|e| Fatal(format!("ERROR: {e}")))?);
    }
    tool.read_regex(&regex, true)?;
    if let Some(ig) = opts.args.get(2) {
        tool.read_regex(ig, false)?;
    }
    let source = if Path::new(&log).is_file() {
        tool.say(&format!("Use         log file : {log}"))
            .map_err(io_fatal)?;
        tool.say(&format!("Use         encoding : {}", opts.encoding))
            .map_err(io_fatal)?;
        Source::File(log)
    } else if let Some(j) = journal_log {
        tool.say("Use         systemd journal").map_err(io_fatal)?;
        tool.say(&format!("Use         encoding : {}", opts.encoding))
            .map_err(io_fatal)?;
        // Entries carry their time: without a datepattern no detector runs.
        tool.detects_dates = tool.datepattern_set;
        tool.datepattern_set = true;
        if let Some(m) = tool.journalmatch.as_ref().filter(|m| !m.is_empty()) {
            let m = m.join(" ");
            tool.say(&format!("Use    journal match : {m}"))
                .map_err(io_fatal)?;
        }
        Source::Journal(j)
    } else if tool.filter_opts.maxlines <= 1 && !log.contains('\n') {
        tool.say(&format!(
            "Use      single line : {}",
            shortstr(&log.replace('\n', "\\n"))
        ))
        .map_err(io_fatal)?;
        Source::Lines(vec![log])
    } else {
        let lines: Vec<String> = log.split('\n').map(String::from).collect();
        tool.say(&format!("Use      multi line : {} line(s)", lines.len()))
            .map_err(io_fatal)?;
        for (i, l) in lines.iter().enumerate() {
            if i >= 5 {
                tool.say("| ...").map_err(io_fatal)?;
                break;
            }
            tool.say(&format!("| {:>2.2}: {}", (i + 1).to_string(), shortstr(l)))
                .map_err(io_fatal)?;
        }
        tool.say("`-").map_err(io_fatal)?;
        Source::Lines(lines)
    };
    tool.say("").map_err(io_fatal)?;
    let mut filter =
        Filter::new(tool.filter_opts.clone()).map_err(|e| Fatal(format!("ERROR: {e}")))?;
    tool.process(&mut filter, source)?;
    if tool.opts.out.is_none() {
        tool.print_stats(&filter).map_err(io_fatal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `read_log` gives for `bytes`: each line with its notes, up to
    /// `stop_after` lines.
    fn read_all(bytes: &[u8], latin1: bool, stop_after: usize) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, bytes).unwrap();
        let mut out = Vec::new();
        read_log(path.to_str().unwrap(), latin1, |line, ascii, notes| {
            let line = line.as_str();
            // Known to be ASCII only when it is.
            assert!(!ascii || line.is_ascii(), "{line:?}");
            out.push((line.to_string(), format!("{notes:?}")));
            Ok(out.len() < stop_after)
        })
        .map_err(|e| e.0)
        .unwrap();
        out
    }

    /// The reading as fail2ban-regex does it, spelled the slow and obvious
    /// way: line by line through a limited `read_until`.
    fn read_slowly(bytes: &[u8], latin1: bool, stop_after: usize) -> Vec<(String, String)> {
        use std::io::BufRead;
        let mut r = io::BufReader::new(bytes);
        let mut out = Vec::new();
        let mut warned = false;
        loop {
            let mut buf = Vec::new();
            let mut notes = Vec::new();
            let n = (&mut r)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut buf)
                .unwrap();
            if n == 0 || (n < MAX_LINE && !matches!(buf.last(), Some(b'\n' | b'\r'))) {
                break;
            }
            if n == MAX_LINE && buf.last() != Some(&b'\n') {
                notes.push(ReadNote::Long);
                r.read_until(b'\n', &mut Vec::new()).unwrap();
            }
            let (line, clean) = decode(&buf, latin1);
            if !clean && !warned {
                warned = true;
                notes.push(ReadNote::Decode);
            }
            out.push((line.into_owned(), format!("{notes:?}")));
            if out.len() >= stop_after {
                break;
            }
        }
        out
    }

    /// A pipe hands over a few bytes at a time, lines cut anywhere: each
    /// read starts a chunk with the start of the line it cut.
    #[test]
    fn read_log_reads_a_pipe_in_pieces() {
        let bytes = [
            &b"short line\n".repeat(30_000)[..],
            b"bad \xff\n",
            &"\u{e9}t\u{e9} \u{20ac}\n".repeat(20_000).into_bytes(),
            &"a".repeat(MAX_LINE + 3).into_bytes(),
            b"\nlast\n",
        ]
        .concat();
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (path, data) = (fifo.clone(), bytes.clone());
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            for piece in data.chunks(4093) {
                w.write_all(piece).unwrap();
            }
        });
        let mut got = Vec::new();
        read_log(fifo.to_str().unwrap(), false, |line, _, notes| {
            got.push((line.as_str().to_string(), format!("{notes:?}")));
            Ok(true)
        })
        .map_err(|e| e.0)
        .unwrap();
        writer.join().unwrap();
        assert!(got == read_slowly(&bytes, false, usize::MAX));
    }

    /// Cut lines, lines at the edges of the limit and of the file, bad
    /// bytes (alone and amid blocks that otherwise decode whole) and an
    /// early stop read exactly as the obvious reader does, across the
    /// chunks the log is read in.
    #[test]
    fn read_log_splits_as_line_by_line_reading() {
        let a = |n: usize| "a".repeat(n);
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"one\ntwo\n".to_vec(),
            b"one\ntwo".to_vec(),
            b"one\ntwo\r".to_vec(),
            b"\n\n\r\n".to_vec(),
            b"bad \xff\n\xfe again\nfine\n".to_vec(),
            b"caf\xe9 latin\n".to_vec(),
            format!("{}\nnext\n", a(MAX_LINE - 1)).into_bytes(),
            format!("{}\nnext\n", a(MAX_LINE)).into_bytes(),
            format!("{}\nnext\n", a(MAX_LINE + 1)).into_bytes(),
            format!("{}\nnext\n", a(3 * MAX_LINE + 7)).into_bytes(),
            format!("x\n{}", a(MAX_LINE)).into_bytes(),
            format!("x\n{}", a(MAX_LINE - 1)).into_bytes(),
            format!("x\n{}\r", a(MAX_LINE - 2)).into_bytes(),
            format!("{}\n", "short line\n".repeat(300_000)).into_bytes(),
            [
                &b"short line\n".repeat(20_000)[..],
                b"bad \xff\n",
                &b"then \xc3\xa9\n".repeat(20_000),
            ]
            .concat(),
            [
                &b"caf\xc3\xa9 \xe2\x82\xac\n".repeat(20_000)[..],
                b"\xe9t\xe9\n",
                &b"x\n".repeat(9),
            ]
            .concat(),
            format!("{}{}\nnext\n", "short\n".repeat(30_000), a(MAX_LINE + 5)).into_bytes(),
            format!("{}{}\nnext\n", "short\n".repeat(30_000), a(BLOCK + 5)).into_bytes(),
            format!("{}\n{}\r", a(BLOCK - 1), "\u{e9}".repeat(BLOCK)).into_bytes(),
        ];
        for bytes in &cases {
            for latin1 in [false, true] {
                for stop in [1, 25_000, usize::MAX] {
                    let slow = read_slowly(bytes, latin1, stop);
                    let fast = read_all(bytes, latin1, stop);
                    assert!(
                        fast == slow,
                        "{} bytes, latin1 {latin1}, stop {stop}",
                        bytes.len()
                    );
                }
            }
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn optparse_like_parsing() {
        let Parsed::Run(o) = parse_args(&args(&[
            "-rv", "--out=id", "log", "-L5", "sshd", "-c", "/etc/x",
        ]))
        .unwrap() else {
            panic!()
        };
        assert!(o.raw);
        assert_eq!(o.verbose, 1);
        assert_eq!(o.out.as_deref(), Some("id"));
        assert_eq!(o.maxlines, 5);
        assert_eq!(o.config, "/etc/x");
        assert_eq!(o.args, vec!["log", "sshd"]);
        assert!(matches!(parse_args(&args(&["one"])), Err(UsageError::Args)));
        assert!(matches!(
            parse_args(&args(&["--bogus", "a", "b"])),
            Err(UsageError::Unknown(_))
        ));
    }

    #[test]
    fn filter_names() {
        assert!(looks_like_filter("sshd"));
        assert!(looks_like_filter("sshd[mode=aggressive]"));
        assert!(looks_like_filter("/etc/fail2ban/filter.d/sshd.conf"));
        assert!(!looks_like_filter("^Failed .* from <HOST>$"));
        assert!(!looks_like_filter("////x"));
    }

    #[test]
    fn a_line_against_an_inline_regex() {
        let mut out = Vec::new();
        let code = run(
            &args(&[
                "-o",
                "id",
                "Jan  1 10:00:00 h sshd[1]: bad 192.0.2.7",
                "bad <HOST>$",
            ]),
            &mut out,
        );
        assert_eq!(code, 0);
        assert_eq!(String::from_utf8(out).unwrap(), "192.0.2.7\n");
    }
}
