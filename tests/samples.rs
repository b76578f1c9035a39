//! Every stock filter over its sample log, checked against each line's
//! `# failJSON:` annotation the way fail2ban's own samplestestcase.py checks
//! them, but with fail3ban's config reader and filter engine (the reference
//! only supplies the filters and the annotated logs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use fail3ban::config::{read_filter, FilterSource, PyValue};
use fail3ban::filter::{ipaddr, Failure, Fid, Filter, FilterOptions};
use indexmap::IndexMap;
use jiff::tz::TimeZone;
use serde_json::Value;

/// fail2ban's test suite runs at this instant (`MyTime.setTime(TEST_NOW)`).
const TEST_NOW: f64 = 1124013600.0;
/// `TEST_NOW` as the journal backend would give the date text, in UTC.
const TEST_NOW_STR: &str = "2005-08-14T10:00:00";
/// The zone fail2ban's test suite sets in `TZ`.
const TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";

/// Options of one filter variant: JSON object from `filterOptions`, key
/// order kept as written (fail2ban builds the variant's name from it).
type Opts = Vec<(String, Value)>;

fn opt<'a>(opts: &'a Opts, key: &str) -> Option<&'a Value> {
    opts.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Evaluates the few Python expressions the sample logs use in
/// `test.condition` and `constraint`: comparisons of `name`,
/// `opts.get('key')` and string literals with `==` or `!=`.
fn eval_condition(expr: &str, name: &str, opts: &Opts) -> bool {
    let (op, pos) = if let Some(p) = expr.find("==") {
        ("==", p)
    } else if let Some(p) = expr.find("!=") {
        ("!=", p)
    } else {
        panic!("unsupported condition {expr:?}");
    };
    let operand = |s: &str| -> Option<String> {
        let s = s.trim();
        if s == "name" {
            return Some(name.to_string());
        }
        if let Some(k) = s
            .strip_prefix("opts.get(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let k = k.trim().trim_matches(['\'', '"']);
            return opt(opts, k).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        if s.len() >= 2 && (s.starts_with('\'') || s.starts_with('"')) {
            return Some(s[1..s.len() - 1].to_string());
        }
        panic!("unsupported operand {s:?} in condition {expr:?}");
    };
    let (a, b) = (operand(&expr[..pos]), operand(&expr[pos + 2..]));
    (a == b) == (op == "==")
}

/// Python's `str(dict)` of the filter options: the variant's cache key, so
/// that blocks with the same options share one filter (and its state).
fn py_dict(opts: &Opts) -> String {
    if opts.is_empty() {
        return String::new();
    }
    let items: Vec<String> = opts
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("'{k}': '{s}'"),
            other => format!("'{k}': {other}"),
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A filter variant as samplestestcase.py sets it up: every regex tried,
/// hosts kept raw, no time rules, local time in CET.
struct Variant {
    filter: Filter,
    failregex: Vec<String>,
    used: BTreeSet<usize>,
}

fn build(basedir: &Path, name: &str, opts: &Opts) -> Result<Variant, String> {
    let params: IndexMap<String, String> = opts
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect();
    let basedir = basedir.to_string_lossy();
    let commands = read_filter(
        FilterSource::Named {
            basedir: &basedir,
            name,
        },
        params,
        "jail",
        "auto",
    )
    .map_err(|e| format!("config: {e}"))?;
    let mut fo = FilterOptions {
        check_all_regex: true,
        return_raw_host: true,
        check_find_time: false,
        ..FilterOptions::default()
    };
    for cmd in commands {
        let verb = cmd.first().and_then(PyValue::as_str);
        let values: Vec<PyValue> = match (verb, cmd.get(3)) {
            (Some("multi-set"), Some(PyValue::List(l))) => l.clone(),
            (Some("set"), Some(v)) => vec![v.clone()],
            _ => return Err(format!("unexpected command {cmd:?}")),
        };
        let what = cmd.get(2).and_then(PyValue::as_str).unwrap_or("");
        for v in values {
            let text = v.to_text();
            match what {
                "prefregex" => fo.prefregex = Some(text),
                "addfailregex" => fo.failregex.push(text),
                "addignoreregex" => fo.ignoreregex.push(text),
                "maxlines" => {
                    fo.maxlines = text.parse().map_err(|_| format!("bad maxlines {text:?}"))?
                }
                "datepattern" => fo.datepattern = Some(text),
                _ => {}
            }
        }
    }
    let failregex = fo.failregex.clone();
    let mut filter = Filter::new(fo).map_err(|e| format!("filter: {e}"))?;
    filter
        .dates_mut()
        .set_local_timezone(TimeZone::posix(TZ).expect("test zone"));
    Ok(Variant {
        filter,
        failregex,
        used: BTreeSet::new(),
    })
}

/// `time.mktime` of the annotation's local time (CET/CEST), with its
/// fraction added the way the Python test adds it.
fn json_time(t: &str) -> Result<f64, String> {
    // strptime takes one-digit fields ("2005-03-7T02:09:33") too.
    let bad = || format!("time {t:?}: not %Y-%m-%dT%H:%M:%S[.%f]");
    let (main, frac) = t.split_once('.').unwrap_or((t, ""));
    let f: Vec<i64> = main
        .split(['-', 'T', ':'])
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if f.len() != 6 || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let micro: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    let dt = jiff::civil::DateTime::new(
        f[0] as i16,
        f[1] as i8,
        f[2] as i8,
        f[3] as i8,
        f[4] as i8,
        f[5] as i8,
        0,
    )
    .map_err(|e| format!("time {t:?}: {e}"))?;
    let zoned = dt
        .to_zoned(TimeZone::posix(TZ).expect("test zone"))
        .map_err(|e| format!("time {t:?}: {e}"))?;
    Ok(zoned.timestamp().as_second() as f64 + micro as f64 / 1_000_000.0)
}

/// What the Python test reads from the failure dict for key `k`.
fn actual_value(f: &Failure, k: &str) -> Value {
    if let Some(v) = f.data.get(k) {
        return Value::String(v.clone());
    }
    match k {
        "host" => f
            .fid
            .as_ref()
            .map_or(Value::Null, |x| Value::String(x.to_string())),
        "attempts" => Value::from(f.matches.len()),
        "users" if !f.users.is_empty() => {
            Value::Array(f.users.iter().cloned().map(Value::String).collect())
        }
        "matches" => Value::Array(f.matches.iter().cloned().map(Value::String).collect()),
        _ => Value::Null,
    }
}

fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Array(a), Value::Array(e)) => {
            let sort = |v: &Vec<Value>| {
                let mut s: Vec<String> = v.iter().map(Value::to_string).collect();
                s.sort();
                s
            };
            sort(a) == sort(e)
        }
        _ => actual == expected,
    }
}

/// Checks one processed line against its annotation; `Err` says why not.
fn check(found: &[&Failure], faildata: &BTreeMap<String, Value>) -> Result<(), String> {
    let want = faildata.get("match").and_then(Value::as_bool) == Some(true);
    if found.is_empty() {
        return if want {
            Err("Line not matched when should have".into())
        } else {
            Ok(())
        };
    }
    if !want {
        return Err("Line matched when shouldn't have".into());
    }
    if found.len() != 1 {
        let idx: Vec<usize> = found.iter().map(|f| f.failregex).collect();
        return Err(format!("Multiple regexs matched {idx:?}"));
    }
    let f = found[0];
    for (k, v) in faildata {
        if matches!(k.as_str(), "time" | "match" | "desc" | "constraint") {
            continue;
        }
        if let (true, Some(Fid::Addr(a)), Some(e)) = (
            k == "host" && !f.data.contains_key("host"),
            f.fid.as_ref(),
            v.as_str(),
        ) {
            // fail2ban's IPAddr equals a string naming the same address
            // ("2001:DB8::1" is "2001:db8::1").
            if Fid::Addr(*a) != ipaddr::parse_unspec(e) {
                return Err(format!("host: {a} != {e:?} (expected)"));
            }
            continue;
        }
        let a = actual_value(f, k);
        if !same(&a, v) {
            return Err(format!("{k}: {a} != {v} (expected)"));
        }
    }
    if let Some(t) = faildata.get("time").and_then(Value::as_str) {
        let want = json_time(t)?;
        if f.time != want {
            return Err(format!(
                "UTC Time mismatch {} != {want} (diff {:.3} seconds)",
                f.time,
                f.time - want
            ));
        }
    }
    Ok(())
}

/// The result of one filter's sample test.
#[derive(Default)]
struct Outcome {
    lines: usize,
    failures: usize,
    errors: Vec<String>,
}

/// samplestestcase.py's `testSampleRegexs<NAME>` for one filter.
fn run_filter(logs: &Path, basedir: &Path, name: &str) -> Outcome {
    let mut out = Outcome::default();
    if !logs.join(name).is_file() {
        out.errors
            .push(format!("No sample log file available for '{name}' filter"));
        return out;
    }
    // Variants by name, shared by every block (and added file) using the
    // same options, as fail2ban caches them: state carries over.
    let mut variants: HashMap<String, Result<Variant, String>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut used_re: BTreeSet<String> = BTreeSet::new();
    let mut tests: Option<Vec<(String, Opts)>> = None;
    let mut common: Opts = Vec::new();
    let mut filenames = vec![name.to_string()];
    let mut i = 0;
    while i < filenames.len() {
        let filename = filenames[i].clone();
        i += 1;
        let bytes = std::fs::read(logs.join(&filename)).expect("read sample log");
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.split_inclusive('\n');
        let mut ignore_block = false;
        let mut lnnum = 0;
        while let Some(raw) = lines.next() {
            lnnum += 1;
            let faildata: BTreeMap<String, Value>;
            let mut line = raw;
            let body = raw.strip_suffix('\n').unwrap_or(raw);
            if let Some((kind, json)) = annotation(body) {
                let parsed: Value = match serde_json::from_str(json) {
                    Ok(v) => v,
                    Err(e) => {
                        out.errors.push(format!("{e}: {filename}:{lnnum}"));
                        continue;
                    }
                };
                match kind {
                    "fileOptions" => {
                        common = object(&parsed);
                        continue;
                    }
                    "filterOptions" => {
                        let mut list = Vec::new();
                        ignore_block = false;
                        let each: Vec<Value> = match parsed {
                            Value::Array(a) => a,
                            other => vec![other],
                        };
                        for fo in each {
                            let mut opts = common.clone();
                            for (k, v) in object(&fo) {
                                match opts.iter_mut().find(|(ok, _)| *ok == k) {
                                    Some(slot) => slot.1 = v,
                                    None => opts.push((k, v)),
                                }
                            }
                            if let Some(c) = opt(&opts, "test.condition").and_then(Value::as_str) {
                                ignore_block = !eval_condition(c, name, &opts);
                            }
                            if !ignore_block {
                                let flt_opts: Opts = opts
                                    .iter()
                                    .filter(|(k, _)| !k.starts_with("test."))
                                    .cloned()
                                    .collect();
                                let flt_name =
                                    match opt(&opts, "test.filter-name").and_then(Value::as_str) {
                                        Some(n) if !n.is_empty() => format!("{name}{n}"),
                                        _ => format!("{name}{}", py_dict(&flt_opts)),
                                    };
                                if !variants.contains_key(&flt_name) {
                                    variants
                                        .insert(flt_name.clone(), build(basedir, name, &flt_opts));
                                    order.push(flt_name.clone());
                                }
                                list.push((flt_name, opts));
                            }
                        }
                        tests = Some(list);
                        continue;
                    }
                    "addFILE" => {
                        if let Some(f) = parsed.as_str() {
                            filenames.push(f.to_string());
                        }
                        continue;
                    }
                    _ => {
                        faildata = match parsed {
                            Value::Object(m) => m.into_iter().collect(),
                            _ => BTreeMap::new(),
                        };
                        // The annotated line is the next one, whatever it is.
                        match lines.next() {
                            Some(l) => {
                                lnnum += 1;
                                line = l;
                            }
                            None => break,
                        }
                    }
                }
            } else if ignore_block || raw.starts_with('#') || raw.trim().is_empty() {
                continue;
            } else {
                faildata = BTreeMap::new();
            }
            if ignore_block {
                continue;
            }
            if tests.as_ref().is_none_or(Vec::is_empty) {
                if !variants.contains_key(name) {
                    variants.insert(name.to_string(), build(basedir, name, &Vec::new()));
                    order.push(name.to_string());
                }
                tests = Some(vec![(name.to_string(), Vec::new())]);
            }
            let mut line = line.trim_end_matches(['\r', '\n']).to_string();
            out.lines += 1;
            for (flt_name, opts) in tests.as_ref().unwrap() {
                if let Some(c) = faildata.get("constraint").and_then(Value::as_str) {
                    if !c.is_empty() && !eval_condition(c, name, opts) {
                        continue;
                    }
                }
                let variant = match variants.get_mut(flt_name).unwrap() {
                    Ok(v) => v,
                    Err(e) => {
                        out.errors.push(format!("{flt_name}: cannot build: {e}"));
                        continue;
                    }
                };
                let outcome = if opt(opts, "logtype").and_then(Value::as_str) != Some("journal") {
                    variant.filter.process_line_outcome(&line, TEST_NOW)
                } else {
                    // The journal gives the time; the line has no date.
                    if let Some(p) = opt(opts, "test.prefix-line").and_then(Value::as_str) {
                        line = format!("{p}{line}");
                    }
                    variant
                        .filter
                        .process_dated("", TEST_NOW_STR, &line, TEST_NOW, TEST_NOW)
                };
                let mut found = Vec::new();
                for f in &outcome.failures {
                    if f.fid.is_none() || f.nofail {
                        variant.used.insert(f.failregex);
                        used_re.insert(variant.failregex[f.failregex].clone());
                        continue;
                    }
                    found.push(f);
                }
                match check(&found, &faildata) {
                    Ok(()) => {
                        for f in &found {
                            out.failures += 1;
                            variant.used.insert(f.failregex);
                            used_re.insert(variant.failregex[f.failregex].clone());
                        }
                    }
                    Err(e) => {
                        let got: Vec<String> = found
                            .iter()
                            .map(|f| {
                                format!(
                                    "[{}] {} t={} {:?}",
                                    f.failregex,
                                    f.fid.as_ref().map(ToString::to_string).unwrap_or_default(),
                                    f.time,
                                    f.data
                                )
                            })
                            .collect();
                        out.errors.push(format!(
                            "{flt_name}: {e} on: {filename}:{lnnum}, line:\n      {line}\n    faildata: {faildata:?}\n    fail: {got:?}"
                        ));
                    }
                }
            }
        }
    }
    for flt_name in &order {
        if let Some(Ok(v)) = variants.get(flt_name) {
            for (idx, re) in v.failregex.iter().enumerate() {
                if !v.used.contains(&idx) && !used_re.contains(re) {
                    out.errors
                        .push(format!("{flt_name}: Regex has no samples: {idx}: {re:?}"));
                }
            }
        }
    }
    out
}

/// `^#+ ?(failJSON|fileOptions|filterOptions|addFILE):(.+)$`
fn annotation(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start_matches('#');
    if rest.len() == line.len() {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    for kind in ["failJSON", "fileOptions", "filterOptions", "addFILE"] {
        if let Some(json) = rest.strip_prefix(kind).and_then(|r| r.strip_prefix(':')) {
            if !json.is_empty() {
                return Some((kind, json));
            }
        }
    }
    None
}

fn object(v: &Value) -> Opts {
    match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    }
}

/// fail2ban's own test filters include common.conf by a path relative to
/// its source tree (1.0.2: `../../../../../../../config/filter.d/common.conf`,
/// 1.1.0: `../../../../config/filter.d/common.conf`). Recreate that layout
/// in a scratch directory, common.conf where each filter's `before` points,
/// so they load unmodified.
fn test_filter_dir(pkg: &Path, stock: &Path, scratch: &Path) -> PathBuf {
    let base = scratch.join("1/2/3/4/5/6");
    std::fs::create_dir_all(base.join("filter.d")).unwrap();
    for e in std::fs::read_dir(pkg.join("tests/config/filter.d")).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("zzz-") && n.ends_with(".conf") {
            std::fs::copy(e.path(), base.join("filter.d").join(&n)).unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            let before = text
                .lines()
                .find_map(|l| l.strip_prefix("before = "))
                .filter(|b| b.ends_with("config/filter.d/common.conf"));
            if let Some(before) = before {
                // Lexically: the intermediate directories need not exist.
                let mut at = base.join("filter.d");
                for part in before.trim().split('/') {
                    match part {
                        ".." => {
                            at.pop();
                        }
                        p => at.push(p),
                    }
                }
                assert!(
                    at.starts_with(scratch),
                    "{n}: {before} leaves the scratch dir"
                );
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                std::fs::copy(stock.join("filter.d/common.conf"), &at).unwrap();
            }
        }
    }
    base
}

fn filter_names(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("filter.d"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| keep(n))
        .filter_map(|n| n.strip_suffix(".conf").map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn every_filter_on_its_sample_log() {
    crate::reference::against_each(
        "samples::every_filter_on_its_sample_log",
        "filters",
        every_filter,
    );
}

/// Every stock filter and fail2ban's own test filters of one reference
/// over that reference's sample logs.
fn every_filter(version: &'static str, root: &Path) -> crate::reference::Tally {
    let stock = crate::reference::stock_tree(root);
    let pkg = crate::reference::package(root);
    let logs = pkg.join("tests/files/logs");
    let scratch = tempfile::tempdir().unwrap();
    let test_dir = test_filter_dir(&pkg, &stock, scratch.path());
    let mut runs: Vec<(String, PathBuf)> = Vec::new();
    for n in filter_names(&stock, |n| {
        n.ends_with(".conf") && !n.ends_with("common.conf")
    }) {
        runs.push((n, stock.clone()));
    }
    for n in filter_names(&test_dir, |n| n.starts_with("zzz-") && n.ends_with(".conf")) {
        runs.push((n, test_dir.clone()));
    }
    let mut tally = crate::reference::Tally::new(version);
    for (name, basedir) in &runs {
        tally.compared += 1;
        let o = run_filter(&logs, basedir, name);
        if o.errors.is_empty() {
            println!(
                "samples: {version}: {name}  {} lines, {} failures, ok",
                o.lines, o.failures
            );
        } else {
            let shown: Vec<&str> = o.errors.iter().take(8).map(String::as_str).collect();
            tally.diffs.push((
                name.clone(),
                format!(
                    "{} lines, {} failures, {} problems:\n    {}",
                    o.lines,
                    o.failures,
                    o.errors.len(),
                    shown.join("\n    ")
                ),
            ));
        }
    }
    assert!(runs.len() >= 90, "too few filters found: {}", runs.len());
    tally
}

/// Filters the package must ship, each with a sample log of its own.
const OWN_FILTERS: &[&str] = &[
    "3proxy",
    "apache-auth",
    "apache-badbots",
    "apache-botsearch",
    "apache-fakegooglebot",
    "apache-modsecurity",
    "apache-nohome",
    "apache-noscript",
    "apache-overflows",
    "apache-pass",
    "apache-shellshock",
    "assp",
    "asterisk",
    "bitwarden",
    "centreon",
    "counter-strike",
    "courier-auth",
    "courier-smtp",
    "cyrus-imap",
    "dante",
    "directadmin",
    "domino-smtp",
    "dovecot",
    "dropbear",
    "drupal-auth",
    "ejabberd-auth",
    "exim",
    "exim-spam",
    "freeswitch",
    "froxlor-auth",
    "gitlab",
    "grafana",
    "groupoffice",
    "gssftpd",
    "guacamole",
    "haproxy-http-auth",
    "horde",
    "kerio",
    "lighttpd-auth",
    "mongodb-auth",
    "monit",
    "monitorix",
    "mssql-auth",
    "murmur",
    "mysqld-auth",
    "nagios",
    "named-refused",
    "nginx-bad-request",
    "nginx-botsearch",
    "nginx-forbidden",
    "nginx-http-auth",
    "nginx-limit-req",
    "nsd",
    "openhab",
    "openwebmail",
    "oracleims",
    "pam-generic",
    "perdition",
    "php-url-fopen",
    "phpmyadmin-syslog",
    "portsentry",
    "postfix",
    "proftpd",
    "pure-ftpd",
    "qmail",
    "recidive",
    "roundcube-auth",
    "routeros-auth",
    "scanlogd",
    "screensharingd",
    "selinux-ssh",
    "sendmail-auth",
    "sendmail-reject",
    "sieve",
    "slapd",
    "softethervpn",
    "sogo-auth",
    "solid-pop3d",
    "squid",
    "squirrelmail",
    "sshd",
    "stunnel",
    "suhosin",
    "tine20",
    "traefik-auth",
    "uwimap-auth",
    "vsftpd",
    "webmin-auth",
    "wordpress",
    "wuftpd",
    "xinetd-fail",
    "znc-adminlog",
    "zoneminder",
];

/// fail3ban's own filter.d (at the repository root) over its own sample logs
/// (tests/files/logs), by the same checker as the stock filters.
#[test]
fn own_filters_on_their_sample_logs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = repo;
    let logs = repo.join("tests/files/logs");
    // The *-common.conf files are parts other filters include.
    let names = filter_names(tree, |n| {
        n.ends_with(".conf") && !n.ends_with("common.conf")
    });
    for want in OWN_FILTERS {
        assert!(
            names.iter().any(|n| n == want),
            "filter.d/{want}.conf is missing"
        );
    }
    let (mut passed, mut failed) = (0, 0);
    for name in &names {
        let o = run_filter(&logs, tree, name);
        let ok = o.errors.is_empty() && o.failures > 0;
        println!(
            "own samples: {name}  {} lines, {} failures, {}",
            o.lines,
            o.failures,
            if ok { "ok" } else { "FAILED" }
        );
        for e in o.errors.iter().take(8) {
            println!("    {e}");
        }
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    assert_eq!(failed, 0, "own filters disagree with their sample logs");
}
