//! fail3ban's own tree against fail2ban's stock tree: how much of it the own
//! tree covers (printed while it is incomplete), and whether each own
//! filter finds on fail2ban's sample log of the same name what fail2ban's
//! filter finds there (a test failure for any own filter that does not:
//! the own filters are written by this project, fail2ban's are the oracle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::reference::{package, stock_tree};
use crate::regex::{fail2ban, fail3ban};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `*.conf` names in `dir`, without the suffix.
fn conf_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".conf").map(str::to_string))
        .collect()
}

/// The jails a jail.conf defines: its sections but INCLUDES and DEFAULT.
pub fn jails(jail_conf: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(jail_conf)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.strip_suffix(']').map(str::to_string))
        .filter(|s| s != "INCLUDES" && s != "DEFAULT")
        .collect()
}

/// Firewalls of the BSDs and macOS: no Linux system runs them.
const NOT_LINUX: &[&str] = &[
    "bsd-ipfw",
    "ipfilter",
    "ipfw",
    "npf",
    "osx-afctl",
    "osx-ipfw",
    "pf",
];

/// The stock actions a Linux system can use: every action.d file but the
/// BSD and macOS firewalls and the `*-common` parts other actions include
/// that ban nothing themselves (sendmail-common defines the mail actions'
/// actionban and counts).
fn linux_actions(dir: &Path) -> BTreeSet<String> {
    conf_names(dir)
        .into_iter()
        .filter(|n| !NOT_LINUX.contains(&n.as_str()))
        .filter(|n| {
            !n.ends_with("-common")
                || std::fs::read_to_string(dir.join(format!("{n}.conf")))
                    .unwrap()
                    .lines()
                    .any(|l| l.starts_with("actionban"))
        })
        .collect()
}

/// "N/M" of `want` that `have` holds, and the missing ones.
fn present(have: &BTreeSet<String>, want: &BTreeSet<String>) -> (String, Vec<String>) {
    let missing: Vec<String> = want.difference(have).cloned().collect();
    (
        format!("{}/{}", want.len() - missing.len(), want.len()),
        missing,
    )
}

/// Prints how much of each reference's stock tree the own tree covers:
/// jails, filters and Linux actions of the same name. It fails on nothing
/// while the own tree is incomplete (issue 18).
#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn own_tree_coverage() {
    let own_jails = jails(&repo().join("config/jail.conf"));
    let own_filters = conf_names(&repo().join("filter.d"));
    let own_actions = conf_names(&repo().join("action.d"));
    for r in crate::prereq::references() {
        let stock = stock_tree(r.root());
        let (j, jm) = present(&own_jails, &jails(&stock.join("jail.conf")));
        let (f, fm) = present(&own_filters, &conf_names(&stock.join("filter.d")));
        let (a, am) = present(&own_actions, &linux_actions(&stock.join("action.d")));
        println!(
            "own tree against fail2ban {}: jails present {j}, filters {f}, Linux actions {a}",
            r.version
        );
        println!("    missing jails: {}", jm.join(" "));
        println!("    missing filters: {}", fm.join(" "));
        println!("    missing Linux actions: {}", am.join(" "));
    }
}

/// What a fail2ban-regex run found: each failure's id and time (`-o row`,
/// whose third column holds the regex's own group names, which say how a
/// filter is written rather than what it found), and the lines each
/// failure was made of (`-o msg`).
#[derive(PartialEq, Debug)]
struct Found {
    rows: Vec<(String, When)>,
    msgs: Vec<String>,
}

/// A failure's time as two runs can agree on it.
#[derive(PartialEq, Debug)]
enum When {
    /// The time its line gave.
    At(f64),
    /// The time it was read at: a line whose date pattern matched an empty
    /// date (ejabberd's old message lines), which both programs date by the
    /// clock, seconds apart.
    Clock,
    /// No number.
    Unreadable,
}

impl When {
    /// How far from now a time counts as the clock's: sample logs are
    /// years old, a run takes seconds.
    const CLOCK_SLACK: f64 = 600.0;

    fn of(time: Option<f64>) -> When {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        match time {
            Some(t) if (now - t).abs() < Self::CLOCK_SLACK => When::Clock,
            Some(t) => When::At(t),
            None => When::Unreadable,
        }
    }
}

/// Where two runs' lists first part, said as `difference` says it.
fn first_difference<T: PartialEq + std::fmt::Debug>(
    what: &str,
    reference: &[T],
    own: &[T],
) -> String {
    (0..reference.len().max(own.len()))
        .find(|&i| reference.get(i) != own.get(i))
        .map(|i| {
            format!(
                "; first differing {what} #{}: fail2ban {:?}, own {:?}",
                i + 1,
                reference.get(i),
                own.get(i)
            )
        })
        .unwrap_or_default()
}

/// One `-o row` line's id and time. fail2ban prints a time of whole
/// seconds as an int where fail3ban-regex prints a float: the value counts.
fn row(line: &str) -> Option<(String, When)> {
    let rest = line.strip_prefix('[')?;
    let mut cols = rest.splitn(3, ",\t");
    let id = cols.next()?.trim_matches('\'').to_string();
    let time = cols.next()?.parse::<f64>().ok();
    Some((id, When::of(time)))
}

/// Runs `run` (a fail2ban-regex or fail3ban-regex with the arguments
/// before the output format) with `-o row` and `-o msg`.
fn found(run: impl Fn(&[&str]) -> std::process::Output, args: &[&str]) -> Result<Found, String> {
    let text = |fmt: &str| {
        let mut a = vec!["-o", fmt];
        a.extend_from_slice(args);
        let out = run(&a);
        if !out.status.success() {
            return Err(format!(
                "exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let rows = text("row")?.lines().filter_map(row).collect();
    let msgs = text("msg")?.lines().map(str::to_string).collect();
    Ok(Found { rows, msgs })
}

/// How `own` differs from `reference`, in a few lines.
fn difference(reference: &Found, own: &Found) -> String {
    let ids = |f: &Found| f.rows.iter().map(|r| r.0.clone()).collect::<BTreeSet<_>>();
    let (r, o) = (ids(reference), ids(own));
    let mut out = format!(
        "fail2ban {} failures ({} ids), own {} failures ({} ids)",
        reference.rows.len(),
        r.len(),
        own.rows.len(),
        o.len()
    );
    let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
        a.difference(b)
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    out += &format!(
        "; only fail2ban's: [{}]; only own: [{}]",
        only(&r, &o),
        only(&o, &r)
    );
    out += &first_difference("failure", &reference.rows, &own.rows);
    out += &first_difference("matched line", &reference.msgs, &own.msgs);
    out
}

/// The option sets to run a filter with on its sample log: none (its
/// defaults), each mode the stock filter defines (`mdre-<mode>` or
/// `mode-<mode>` options), and each set the log's `# filterOptions:`
/// annotations name (without fail2ban's test-only `test.condition`).
fn option_sets(stock_filter: &Path, log: &Path) -> Vec<BTreeMap<String, String>> {
    let mut sets: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
    let mut add = |set: BTreeMap<String, String>| {
        if !sets.contains(&set) {
            sets.push(set);
        }
    };
    let text = std::fs::read_to_string(stock_filter).unwrap();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("mdre-").or_else(|| l.strip_prefix("mode-")) else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[name.len()..];
        if !name.is_empty() && (after.trim_start().starts_with('=') || after.starts_with("-other"))
        {
            add(BTreeMap::from([("mode".to_string(), name)]));
        }
    }
    let bytes = std::fs::read(log).unwrap();
    for l in String::from_utf8_lossy(&bytes).lines() {
        let Some(json) = l.strip_prefix("# filterOptions:") else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(json.trim()).expect("filterOptions is JSON");
        let list = match v {
            serde_json::Value::Array(a) => a,
            o => vec![o],
        };
        for o in list {
            let set: BTreeMap<String, String> = o
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "test.condition")
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect();
            add(set);
        }
    }
    sets
}

/// `name[k="v", ...]`, or `name` without options.
fn spec(name: &str, set: &BTreeMap<String, String>) -> String {
    if set.is_empty() {
        return name.to_string();
    }
    let opts: Vec<String> = set.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}[{}]", opts.join(", "))
}

/// The own filters that have a stock counterpart with a sample log in
/// `root`'s package, and the own filters that have none.
fn comparable(root: &Path) -> (Vec<String>, Vec<String>) {
    let logs = package(root).join("tests/files/logs");
    let stock = conf_names(&stock_tree(root).join("filter.d"));
    conf_names(&repo().join("filter.d"))
        .into_iter()
        .filter(|n| n != "common" && !n.ends_with("-common"))
        .partition(|n| stock.contains(n) && logs.join(n).is_file())
}

/// The 1.1.0 reference, whose filters fail3ban's own follow where 1.0.2's
/// find something else.
fn newest() -> &'static crate::prereq::Reference {
    let refs = crate::prereq::references();
    refs.iter()
        .find(|r| r.version == "1.1.0")
        .expect("1.1.0 reference")
}

/// How one own filter fared against reference `r`'s on its sample log:
/// the lines to print for it, and whether it agrees.
fn check_filter(r: &crate::prereq::Reference, name: &str) -> (Vec<String>, bool) {
    let own = repo().to_string_lossy().into_owned();
    let root = r.root();
    let tree = stock_tree(root).to_string_lossy().into_owned();
    let log = package(root).join("tests/files/logs").join(name);
    let log_s = log.to_string_lossy().into_owned();
    let sets = option_sets(
        &stock_tree(root).join(format!("filter.d/{name}.conf")),
        &log,
    );
    let mut problems = Vec::new();
    let mut followed = Vec::new();
    for set in &sets {
        let spec = spec(name, set);
        let reference = found(|a| fail2ban(root, a), &["-c", &tree, &log_s, &spec]);
        let mine = found(fail3ban, &["-c", &own, &log_s, &spec]);
        match (reference, mine) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(a), Ok(b)) => {
                // 1.0.2 only: does 1.1.0's filter find what the
                // own one does on this log?
                let newer = (r.version != "1.1.0")
                    .then(|| {
                        let n = newest().root();
                        let t = stock_tree(n).to_string_lossy().into_owned();
                        found(|a| fail2ban(n, a), &["-c", &t, &log_s, &spec]).ok()
                    })
                    .flatten();
                if newer.as_ref() == Some(&b) {
                    followed.push(format!("{spec}: {}", difference(&a, &b)));
                } else {
                    problems.push(format!("{spec}: {}", difference(&a, &b)));
                }
            }
            (a, b) => problems.push(format!("{spec}: fail2ban {:?}, own {:?}", a.err(), b.err())),
        }
    }
    let mut lines: Vec<String> = followed
        .iter()
        .map(|f| {
            format!(
                "own filters: {} {name}: 1.0.2's filter differs from 1.1.0's here, the own one follows 1.1: {f}",
                r.version
            )
        })
        .collect();
    if problems.is_empty() {
        lines.push(format!(
            "own filters: {} {name}: agrees in {} runs",
            r.version,
            sets.len()
        ));
    } else {
        lines.push(format!("own filters: {} {name}: DISAGREES", r.version));
        lines.extend(problems.iter().map(|p| format!("    {p}")));
    }
    (lines, problems.is_empty())
}

/// Every own filter that has a stock counterpart finds on fail2ban's
/// sample log of that name, in every mode the stock filter has and with
/// every option set the log's annotations name, the same failures as the
/// stock filter: the same ids at the same times, made of the same lines,
/// in the same order. Against each reference's own filter and sample log;
/// where 1.0.2's filter finds something else than 1.1.0's on 1.0.2's log
/// and the own filter finds what 1.1.0's does, the own filter follows 1.1
/// (printed, not a failure). There is no list of excused own filters.
///
/// Each reference run is a Python start, so the filters are checked on a
/// few threads; each filter's lines are printed together, in name order.
#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn own_filters_agree_with_fail2ban() {
    const WORKERS: usize = 3;
    let mut failed = Vec::new();
    for r in crate::prereq::references() {
        let (names, alone) = comparable(r.root());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<(usize, (Vec<String>, bool))> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(name) = names.get(i) else { break done };
                            done.push((i, check_filter(r, name)));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a worker panicked"))
                .collect()
        });
        results.sort_by_key(|(i, _)| *i);
        let mut agree = 0;
        for (name, (_, (lines, ok))) in names.iter().zip(results) {
            for l in &lines {
                println!("{l}");
            }
            if ok {
                agree += 1;
            } else {
                failed.push(format!("{} {name}", r.version));
            }
        }
        println!(
            "own filters agree with fail2ban {}'s on {agree}/{} sample logs (no sample log there: {})",
            r.version,
            names.len(),
            alone.join(" ")
        );
    }
    assert!(
        failed.is_empty(),
        "own filters that disagree with fail2ban's: {failed:?}"
    );
}

/// The sshd jail as the own tree resolves it out of the box (reading
/// auth.log), written as a filter file fail3ban-regex can run: its
/// prefregex, failregexes, ignoreregexes, datepattern and maxlines from
/// `fail3ban-client -d`'s stream.
fn sshd_jail_as_filter(dir: &Path) -> PathBuf {
    use fail3ban::config::stream::PyValue;
    let tmp = tempfile::tempdir().unwrap();
    let tree = crate::own_tree::own_tree(tmp.path());
    // The sample log is a file: the jail reads auth.log, as on a machine
    // where the package's postinst found one (the journal never holds
    // the sample's Solaris and relay prefixes).
    std::fs::write(
        tree.join("paths-overrides.local"),
        "[DEFAULT]\nsshd_backend = auto\n",
    )
    .unwrap();
    let resolved = fail3ban::config::read_tree(tree.to_str().unwrap(), false).unwrap();
    let mut opts: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let text = |v: &PyValue| match v {
        PyValue::Str(s) => s.clone(),
        PyValue::Int(i) => i.to_string(),
        other => panic!("unexpected value {other:?}"),
    };
    for cmd in &resolved.stream {
        let words: Vec<String> = cmd.iter().take(3).map(|v| format!("{v}")).collect();
        if words.len() < 3 || words[1] != "'sshd'" {
            continue;
        }
        let key = match words[2].trim_matches('\'') {
            "prefregex" => "prefregex",
            "addfailregex" => "failregex",
            "addignoreregex" => "ignoreregex",
            "datepattern" => "datepattern",
            "maxlines" => "maxlines",
            _ => continue,
        };
        let entry = opts.entry(key).or_default();
        match &cmd[3] {
            PyValue::List(l) => entry.extend(l.iter().map(text)),
            v => entry.push(text(v)),
        }
    }
    assert!(
        opts.contains_key("failregex"),
        "no failregex for sshd: {opts:?}"
    );
    // The values are resolved: a % left in them is a regex's, which the
    // file's interpolation must not read.
    let mut file = String::from("[Definition]\n");
    for (k, vs) in &opts {
        let vs: Vec<String> = vs.iter().map(|v| v.replace('%', "%%")).collect();
        file += &format!("{k} = {}\n", vs.join("\n    "));
    }
    let path = dir.join("sshd-jail.conf");
    std::fs::write(&path, file).unwrap();
    path
}

/// Issue 18's done-when: the sshd jail the package turns on finds on
/// fail2ban's sshd sample log everything fail2ban's sshd jail finds there
/// (1.1's fail2ban-regex runs a jail's filter with the jail's options).
#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn default_sshd_jail_finds_what_fail2ban_finds() {
    let r = newest();
    let root = r.root();
    let tree = stock_tree(root).to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let filter = sshd_jail_as_filter(tmp.path());
    let mut missed = Vec::new();
    for reference in crate::prereq::references() {
        let log = package(reference.root()).join("tests/files/logs/sshd");
        let log = log.to_string_lossy().into_owned();
        let stock = found(|a| fail2ban(root, a), &["-c", &tree, &log, "sshd"]).unwrap();
        let mine = found(fail3ban, &[&log, filter.to_str().unwrap()]).unwrap();
        let ids = |f: &Found| f.rows.iter().map(|r| r.0.clone()).collect::<BTreeSet<_>>();
        let (want, have) = (ids(&stock), ids(&mine));
        println!(
            "default sshd jail on fail2ban {}'s sshd sample log: fail2ban's jail finds {} ids, the own jail {}",
            reference.version,
            want.len(),
            have.len()
        );
        missed.extend(
            want.difference(&have)
                .map(|id| format!("{}: {id}", reference.version)),
        );
        if stock != mine {
            missed.push(format!(
                "{}: {}",
                reference.version,
                difference(&stock, &mine)
            ));
        }
    }
    assert!(missed.is_empty(), "the own sshd jail misses: {missed:#?}");
}
