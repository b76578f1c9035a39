//! `fail3ban-client -d` against `fail2ban-client -d` on the same trees, line
//! for line; and `fail3ban-client -t` on broken trees.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::reference;

/// A configuration tree in a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
    name: &'static str,
}

impl Tree {
    /// The stock Debian tree with `files` written over it.
    fn stock(root: &Path, name: &'static str, files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&reference::stock_tree(root), dir.path());
        let t = Tree { dir, name };
        t.write(files);
        t
    }

    /// A tree made of `files` alone.
    fn bare(name: &'static str, files: &[(&str, &str)]) -> Tree {
        let t = Tree {
            dir: tempfile::tempdir().unwrap(),
            name,
        };
        t.write(files);
        t
    }

    fn write(&self, files: &[(&str, &str)]) {
        for (path, text) in files {
            let text = text.replace("@TREE@", self.path());
            let p = self.dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn logs(&self) -> PathBuf {
        let p = self.dir.path().join("logs");
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn ours(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fail3ban-client"))
        .args(args)
        .output()
        .unwrap()
}

/// Dumps `tree` with both clients: the number of lines compared, or where
/// they first differ.
fn compare(root: &Path, tree: &Tree) -> Result<usize, String> {
    let out = reference::run(root, "fail2ban-client", &["-c", tree.path(), "-d"]);
    let theirs = String::from_utf8_lossy(&out.stdout).into_owned();
    let their_err = String::from_utf8_lossy(&out.stderr).into_owned();
    let mine = ours(&["-c", tree.path(), "-d"]);
    let mine_out = String::from_utf8_lossy(&mine.stdout).into_owned();
    assert!(
        !theirs.lines().any(|l| l.starts_with("ERROR")) && theirs.lines().count() > 0,
        "tree {}: the reference rejected it:\n{theirs}\n{their_err}",
        tree.name
    );
    if theirs != mine_out {
        let t: Vec<&str> = theirs.lines().collect();
        let m: Vec<&str> = mine_out.lines().collect();
        let first = t
            .iter()
            .zip(&m)
            .position(|(a, b)| a != b)
            .unwrap_or(t.len().min(m.len()));
        return Err(format!(
            "dumps differ at line {} ({} vs {} lines)\nfail2ban: {}\nfail3ban: {}\nfail3ban stderr: {}",
            first + 1,
            t.len(),
            m.len(),
            t.get(first).unwrap_or(&"<end>"),
            m.get(first).unwrap_or(&"<end>"),
            String::from_utf8_lossy(&mine.stderr)
        ));
    }
    Ok(t_count(&theirs))
}

fn t_count(s: &str) -> usize {
    s.lines().count()
}

/// The section names of the stock jail.conf, in order.
fn stock_jails(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(reference::stock_tree(root).join("jail.conf")).unwrap();
    text.lines()
        .filter_map(|l| {
            l.strip_prefix('[')
                .and_then(|l| l.trim_end().strip_suffix(']'))
        })
        .filter(|s| *s != "INCLUDES" && *s != "DEFAULT")
        .map(String::from)
        .collect()
}

/// Trees that each exercise one part of fail2ban's configuration rules.
fn crafted(root: &Path) -> Vec<Tree> {
    vec![
        Tree::stock(
            root,
            "local overrides",
            &[
                (
                    "jail.local",
                    "[DEFAULT]\nbantime = 1h\nignoreip = 127.0.0.1/8 ::1\n           192.0.2.0/24, 2001:db8::/32\n\
                     [sshd]\nenabled = true\nport = %(known/port)s,2222\nlogpath = @TREE@/logs/auth.log\nmaxretry = 3\n",
                ),
                ("filter.d/sshd.local", "[Definition]\nfailregex = %(known/failregex)s\n            ^Extra failure from <HOST>$\n"),
                (
                    "action.d/iptables-multiport.local",
                    "[Definition]\nactionban = <known/actionban>\n            echo banned <ip> >> /dev/null\n",
                ),
                ("logs/auth.log", ""),
            ],
        ),
        Tree::stock(
            root,
            "jail.d order",
            &[
                ("jail.d/10-a.conf", "[sshd]\nenabled = true\nmaxretry = 1\nlogpath = @TREE@/logs/a.log\n"),
                ("jail.d/20-b.conf", "[sshd]\nmaxretry = 2\n[nginx-http-auth]\nenabled = true\nlogpath = @TREE@/logs/a.log\n"),
                ("jail.d/05-c.local", "[sshd]\nmaxretry = 5\nfindtime = 1h30m\n"),
                ("jail.d/30-d.local", "[sshd]\nmaxretry = 4\n"),
                ("jail.local", "[sshd]\nmaxretry = 3\nbantime = -1\n"),
                ("jail.d/10-a.local", "[nginx-http-auth]\nmaxretry = 7\n"),
                ("logs/a.log", ""),
            ],
        ),
        Tree::stock(
            root,
            "action parameters with quotes and commas",
            &[
                (
                    "jail.local",
                    "[sshd]\nenabled = true\nlogpath = @TREE@/logs/a.log\n\
                     action = iptables-multiport[name=ssh-x, port=\"ssh,2222\", protocol=tcp]\n\
                     \x20        sendmail-whois[dest=\"root@example.org, admin@example.org\", sender='f2b@example.org', sendername=\"Fail, Ban\"]\n\
                     \x20        iptables-allports[name=all][blocktype=DROP]\n\
                     \x20        smtp.py[host=\"localhost:25\", user=u, actname=mailer]\n\
                     \x20        dummy[init='a \"quoted\" value', target=@TREE@/logs/dummy]\n",
                ),
                ("logs/a.log", ""),
            ],
        ),
        Tree::stock(
            root,
            "known references",
            &[
                (
                    "filter.d/custom.conf",
                    "[INCLUDES]\nbefore = common.conf\n[Init]\nsvc = custom\n[Definition]\n_daemon = custom\n\
                     failregex = ^%(__prefix_line)sfailed login from <HOST>$\n\
                     ignoreregex =\n",
                ),
                (
                    "filter.d/custom.local",
                    "[Init]\nsvc = custom2\n[Definition]\nfailregex = <known/failregex>\n            ^%(__prefix_line)sbad user <F-USER>\\S+</F-USER> from <HOST>$\n",
                ),
                (
                    "action.d/custom.conf",
                    "[Definition]\nactionban = echo <chain> <known/chain> <ip> >> <target>\nactionunban = echo unban <ip>\n\
                     [Init]\nchain = INPUT\ntarget = /dev/null\n",
                ),
                ("action.d/custom.local", "[Init]\nchain = FORWARD\n"),
                (
                    "jail.local",
                    "[DEFAULT]\nchain = <known/chain>\n[custom]\nenabled = true\nfilter = custom\nlogpath = @TREE@/logs/a.log\n\
                     action = custom[chain=\"%(chain)s\"]\n         custom[name=second, chain=OUTPUT]\n",
                ),
                ("logs/a.log", ""),
            ],
        ),
        Tree::stock(
            root,
            "Init?family=inet6",
            &[
                (
                    "action.d/fam.conf",
                    "[Definition]\nactionban = <cmd> -I <chain> -s <ip> -j <blocktype>\nactionunban = <cmd> -D <chain> -s <ip>\n\
                     [Init]\ncmd = iptables\nchain = INPUT\nblocktype = REJECT\n\
                     [Init?family=inet6]\ncmd = ip6tables\nblocktype = REJECT --reject-with icmp6-port-unreachable\n",
                ),
                (
                    "jail.local",
                    "[sshd]\nenabled = true\nlogpath = @TREE@/logs/a.log\naction = fam\n         nftables-multiport[port=\"22,2222\"]\n",
                ),
                ("logs/a.log", ""),
            ],
        ),
        Tree::stock(
            root,
            "filter options and modes",
            &[
                (
                    "jail.local",
                    "[sshd]\nenabled = true\nmode = aggressive\nlogpath = @TREE@/logs/a.log\n\
                     [apache-auth]\nenabled = true\nfilter = apache-auth[logtype=file, mode=normal]\nlogpath = @TREE@/logs/b.log\n\
                     [postfix]\nenabled = true\nmode = ddos\nlogpath = @TREE@/logs/a.log\n\
                     [dovecot]\nenabled = true\nbackend = systemd\n\
                     [selinux-ssh]\nenabled = true\nlogpath = @TREE@/logs/a.log\n\
                     [opts]\nenabled = true\nfilter = optfilter[maxlines=3, word=\"refused, twice\"]\nlogpath = @TREE@/logs/a.log\n",
                ),
                (
                    "filter.d/optfilter.conf",
                    "[Init]\nword = denied\nmaxlines = 1\n[Definition]\nprefregex = ^<F-MLFID>\\S+</F-MLFID> <F-CONTENT>.+</F-CONTENT>$\n\
                     failregex = ^<word> for <HOST>$\n            ^also <word> <HOST>\nignoreregex = ^ignored <HOST>$\n\
                     datepattern = ^%%Y-%%m-%%d %%H:%%M:%%S\n              {^LN-BEG}\n\
                     journalmatch = _SYSTEMD_UNIT=x.service + \"_COMM=a b\"\n               SYSLOG_IDENTIFIER=x\n",
                ),
                ("logs/a.log", ""),
                ("logs/b.log", ""),
            ],
        ),
        Tree::stock(
            root,
            "multi-line actions",
            &[
                (
                    "jail.local",
                    "[DEFAULT]\nbanaction = nftables-multiport\nbanaction_allports = nftables-allports\ndestemail = root@example.org\n\
                     sender = fail3ban@example.org\nmta = mail\ncfemail = cf@example.org\ncfapikey = 0123abcd\n\
                     [sshd]\nenabled = true\nlogpath = @TREE@/logs/a.log\naction = %(action_mwl)s\n\
                     [recidive]\nenabled = true\nlogpath = @TREE@/logs/a.log\naction = %(action_mw)s\n\
                     [nginx-botsearch]\nenabled = true\nlogpath = @TREE@/logs/a.log\naction = %(action_xarf)s\n\
                     [pam-generic]\nenabled = true\nlogpath = @TREE@/logs/a.log\naction = %(action_cf_mwl)s\n",
                ),
                ("logs/a.log", ""),
            ],
        ),
        Tree::stock(
            root,
            "includes",
            &[
                ("filter.d/inc/base.conf", "[DEFAULT]\n_word = base\n[Definition]\nfailregex = ^base <HOST>$\n"),
                ("filter.d/inc/base.local", "[DEFAULT]\n_word = base-local\n"),
                ("filter.d/inc/after.conf", "[Definition]\nignoreregex = ^after <HOST> %(_word)s$\n"),
                (
                    "filter.d/withinc.conf",
                    "[INCLUDES]\nbefore = inc/base.conf\n         missing-optional.conf\n         common.conf\nafter = inc/after.conf\n\
                     [Definition]\nfailregex = %(known/failregex)s\n            ^%(__prefix_line)s%(_word)s <HOST>$\n",
                ),
                (
                    "jail.local",
                    "[INCLUDES]\nbefore = paths-debian.conf\nafter = jail-extra.conf\n\
                     [inc]\nenabled = true\nfilter = withinc\nlogpath = %(syslog_authpriv)s\n                @TREE@/logs/a.log\n",
                ),
                ("jail-extra.conf", "[inc]\nmaxretry = 9\n"),
                ("logs/a.log", ""),
            ],
        ),
        Tree::bare(
            "minimal tree and fail2ban.d",
            &[
                ("fail2ban.conf", "[Definition]\nloglevel = NOTICE\nlogtarget = SYSOUT\ndbpurgeage = 2d\n[Thread]\nstacksize = 0\n"),
                ("fail2ban.d/01-db.conf", "[Definition]\ndbmaxmatches = 20\ndbfile = :memory:\n"),
                ("fail2ban.local", "[Definition]\nallowipv6 = yes\n"),
                (
                    "jail.conf",
                    "[DEFAULT]\nenabled = false\nbackend = polling\naction = dummy\n\
                     [one]\nenabled = true\nfilter = f\nlogpath = @TREE@/logs/a.log\n\
                     [two]\nfilter = f\n",
                ),
                ("filter.d/f.conf", "[Definition]\nfailregex = ^fail <HOST>$\n"),
                ("action.d/dummy.conf", "[Definition]\nactionban = true <ip>\n"),
                ("logs/a.log", ""),
            ],
        ),
        Tree::bare(
            "interpolation and INI syntax",
            &[
                (
                    "jail.conf",
                    "# a comment\n; another\n[DEFAULT]\nPort: 22 ; inline comment\nlogdir = @TREE@/logs\nlogpath = %(logdir)s/%(__name__)s.log\n\
                     pct = 100%%\naction = a[val=\"%(pct)s\"]\n\
                     [first]\nenabled = yes\nfilter = f[x=%(port)s]\nlogpath = %(logdir)s/first.log\nmaxretry = 3\n\
                     \x20 # comment inside the value is dropped\n\n\
                     [second]\nenabled = on\nfilter = f\nignorecommand = %(first/maxretry)s %(default/port)s\n\
                     failregex = ^one <HOST>\n\n    ^two <HOST>\n    # comment\n    ^three <HOST> ;not a comment\n\
                     datepattern = %%d/%%b/%%Y\n",
                ),
                ("filter.d/f.conf", "[Init]\nx = none\n[Definition]\nfailregex = ^x=<x> <HOST>$\nusedns = no\n"),
                ("action.d/a.conf", "[Definition]\nactionban = echo <val> <ip> <name> <port>\n[Init]\nval = 0\n"),
                ("logs/first.log", ""),
                ("logs/second.log", ""),
            ],
        ),
        Tree::bare(
            "log paths, backends and ignoreip",
            &[
                (
                    "jail.conf",
                    "[DEFAULT]\nfilter = f\naction = a\n\
                     [globbed]\nenabled = true\nlogpath = @TREE@/logs/web-*.log\n          @TREE@/logs/other.log tail\n          @TREE@/logs/none-*.log\n\
                     [journal]\nenabled = true\nbackend = systemd[journalflags=1]\nlogpath = @TREE@/logs/ignored.log\n\
                     [ignores]\nenabled = true\nlogpath = @TREE@/logs/other.log\nignoreip = 127.0.0.1/8, ::1\n   192.0.2.1 198.51.100.0/24\nignoreself = false\n\
                     ignorecache = key=\"<ip>\", max-count=100, max-time=5m\nbantime.increment = true\nbantime.factor = 2\nbantime.maxtime = 1w\n\
                     bantime.overalljails = 1\nlogencoding = utf-8\nlogtimezone = UTC\nmaxmatches = 2\n",
                ),
                ("filter.d/f.conf", "[Definition]\nfailregex = ^fail <HOST>$\n"),
                ("action.d/a.conf", "[Definition]\nactionban = true <ip>\n"),
                ("logs/web-1.log", ""),
                ("logs/web-2.log", ""),
                ("logs/other.log", ""),
            ],
        ),
        Tree::bare(
            "jail-level filter options and skipped jails",
            &[
                (
                    "jail.conf",
                    "[DEFAULT]\naction = a\nlogpath = @TREE@/logs/a.log\n\
                     [override]\nenabled = true\nfilter = f\nusedns = raw\nmaxlines = 4\nprefregex = ^jail <F-CONTENT>.+</F-CONTENT>$\n\
                     failregex = ^jail-level <HOST>$\ndatepattern = {NONE}\n\
                     [nofilter]\nenabled = true\nfilter =\n\
                     [badfilter]\nenabled = true\nfilter = does-not-exist\n\
                     [badaction]\nenabled = true\nfilter = f\naction = a\n         nope[x=1]\n\
                     [badsyntax]\nenabled = true\nfilter = f[x=\"unterminated]\n",
                ),
                ("filter.d/f.conf", "[Definition]\nfailregex = ^fail <HOST>$\nmaxlines = 2\n"),
                ("action.d/a.conf", "[Definition]\nactionban = true <ip>\nactionstart_on_demand = true\nnorestored = 1\n"),
                ("logs/a.log", ""),
            ],
        ),
    ]
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn dumps_match_fail2ban() {
    crate::reference::against_each("config::dumps_match_fail2ban", "trees", dumps_match);
}

/// `-d` of both clients on the reference's stock tree (as it is, and with
/// every jail enabled), on the crafted trees and on fail2ban's own test
/// tree.
fn dumps_match(version: &'static str, root: &Path) -> reference::Tally {
    let mut trees = vec![Tree::stock(root, "stock Debian tree", &[])];

    let every = Tree::stock(root, "every jail enabled", &[]);
    let logs = every.logs();
    let mut local = String::new();
    let jails = stock_jails(root);
    for j in &jails {
        let log = logs.join(format!("{j}.log"));
        std::fs::write(&log, "").unwrap();
        local.push_str(&format!(
            "[{j}]\nenabled = true\nlogpath = {}\n\n",
            log.display()
        ));
    }
    std::fs::write(every.dir.path().join("jail.local"), local).unwrap();
    trees.push(every);
    trees.extend(crafted(root));
    // fail2ban's own test tree (broken actions, logtype checks, Init options).
    let own = Tree::bare("fail2ban's tests/config tree", &[]);
    copy_dir(
        &reference::package(root).join("tests/config"),
        own.dir.path(),
    );
    trees.push(own);

    let mut tally = reference::Tally::new(version);
    let mut lines = 0;
    for t in &trees {
        tally.compared += 1;
        match compare(root, t) {
            Ok(n) => {
                println!("config: {version}: {:<45} {n:>5} lines identical", t.name);
                lines += n;
            }
            Err(e) => tally.diffs.push((t.name.to_string(), e)),
        }
    }
    println!(
        "config: {version}: {} trees, {lines} lines identical ({} stock jails enabled at once)",
        trees.len(),
        jails.len()
    );
    assert!(trees.len() >= 15);
    tally
}

/// `-t` output of fail3ban for a tree: (success, stdout + stderr).
fn test_tree(tree: &Tree) -> (bool, String) {
    let o = ours(&["-c", tree.path(), "-t"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

fn assert_problem(files: &[(&str, &str)], expect: &[&str]) {
    let t = Tree::bare("broken", files);
    let (ok, text) = test_tree(&t);
    assert!(!ok, "expected -t to fail:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    for e in expect {
        assert!(
            text.contains(&e.replace("@TREE@", t.path())),
            "expected {e:?} in:\n{text}"
        );
    }
}

const OK_JAIL: &str = "[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n";
const OK_FILES: [(&str, &str); 3] = [
    (
        "filter.d/f.conf",
        "[Definition]\nfailregex = ^fail <HOST>$\n",
    ),
    ("action.d/a.conf", "[Definition]\nactionban = true <ip>\n"),
    ("logs/a.log", ""),
];

fn with_ok(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = OK_FILES.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_clean_tree_tests_ok() {
    let jail = format!("{OK_JAIL}[j]\nenabled = true\n");
    let jail: &'static str = Box::leak(jail.into_boxed_str());
    let t = Tree::bare("clean", &with_ok(&[("jail.conf", jail)]));
    let (ok, text) = test_tree(&t);
    assert!(ok, "{text}");
    assert!(
        text.contains("OK: configuration test is successful"),
        "{text}"
    );
}

#[test]
fn unknown_filter_and_action_are_named() {
    assert_problem(
        &with_ok(&[("jail.conf", "[DEFAULT]\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\nfilter = nosuch\n")]),
        &["@TREE@/jail.conf [j] filter: unknown filter \"nosuch\""],
    );
    assert_problem(
        &with_ok(&[("jail.conf", "[DEFAULT]\nfilter = f\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\naction = a\n  gone[x=1]\n")]),
        &["@TREE@/jail.conf [j] action: unknown action \"gone\""],
    );
}

#[test]
fn include_loop_is_named() {
    assert_problem(
        &with_ok(&[
            ("jail.conf", "[INCLUDES]\nafter = other.conf\n[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\n"),
            ("other.conf", "[INCLUDES]\nbefore = jail.conf\n"),
        ]),
        &["@TREE@/other.conf [INCLUDES] before: include loop"],
    );
}

#[test]
fn interpolation_loop_and_missing_reference_are_named() {
    assert_problem(
        &with_ok(&[("jail.conf", "[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\nport = %(x)s\nx = %(port)s\nbantime = %(port)s\n")]),
        &["@TREE@/jail.conf [j] bantime: interpolation deeper than 10 levels"],
    );
    assert_problem(
        &with_ok(&[("jail.conf", "[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\nfindtime = %(nothing)s\n")]),
        &["@TREE@/jail.conf [j] findtime: refers to %(nothing)s"],
    );
    assert_problem(
        &with_ok(&[
            ("jail.conf", "[DEFAULT]\nfilter = f\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\naction = t\n"),
            ("action.d/t.conf", "[Definition]\nactionban = <a>\n[Init]\na = <b>\nb = <a>\n"),
        ]),
        &["action.d/t.conf", "tags refer to themselves"],
    );
}

#[test]
fn bad_values_are_named() {
    assert_problem(
        &with_ok(&[("jail.conf", "[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\nbantime = 10 fortnights\nmaxretry = five\n")]),
        &[
            "@TREE@/jail.conf [j] bantime: expected a time",
            "@TREE@/jail.conf [j] maxretry: expected an integer, got \"five\"",
        ],
    );
    assert_problem(
        &with_ok(&[
            ("jail.conf", "[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\n"),
            ("jail.local", "[j]\nusedns = perhaps\n"),
        ]),
        &["@TREE@/jail.local [j] usedns: expected yes, warn, no or raw"],
    );
    // fail2ban 1.1.1's ignoreip files: `file:` needs a path.
    assert_problem(
        &with_ok(&[
            ("jail.conf", "[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\n"),
            ("jail.local", "[j]\nignoreip = 192.0.2.1 file:\n"),
        ]),
        &["@TREE@/jail.local [j] ignoreip: expected addresses, networks, names or file:<path>"],
    );
}

#[test]
fn unreadable_and_malformed_files_are_named() {
    let t = Tree::bare(
        "unreadable",
        &with_ok(&[(
            "jail.conf",
            "[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\n",
        )]),
    );
    // A directory where a file should be cannot be read, even by root.
    std::fs::create_dir(t.dir.path().join("jail.local")).unwrap();
    let (ok, text) = test_tree(&t);
    assert!(
        !ok && text.contains(&format!("{}/jail.local: cannot read", t.path())),
        "{text}"
    );

    assert_problem(
        &with_ok(&[("jail.conf", "enabled = true\n[j]\n")]),
        &["@TREE@/jail.conf: line 1: option outside any section"],
    );
    assert_problem(
        &with_ok(&[("jail.conf", "[j]\nenabled = true\njust words\n")]),
        &["@TREE@/jail.conf: line 3"],
    );
    assert_problem(
        &with_ok(&[("jail.conf", "[j]\nenabled = true\nEnabled = false\n")]),
        &["@TREE@/jail.conf [j] enabled"],
    );

    let t = Tree::bare(
        "not utf-8",
        &with_ok(&[(
            "jail.conf",
            "[DEFAULT]\nfilter = f\naction = a\nlogpath = @TREE@/logs/a.log\n[j]\nenabled = true\n",
        )]),
    );
    std::fs::write(
        t.dir.path().join("filter.d/f.local"),
        b"[Definition]\nfailregex = \xff\xfe <HOST>\n",
    )
    .unwrap();
    let (ok, text) = test_tree(&t);
    assert!(
        !ok && text.contains(&format!("{}/filter.d/f.local: not valid UTF-8", t.path())),
        "{text}"
    );
}

#[test]
fn missing_log_file_is_named_by_test_not_by_dump() {
    let files = with_ok(&[(
        "jail.conf",
        "[DEFAULT]\nfilter = f\naction = a\n[j]\nenabled = true\nlogpath = /nonexistent/x.log\n",
    )]);
    assert_problem(
        &files,
        &["@TREE@/jail.conf [j] logpath: no log file found for \"j\""],
    );
    let t = Tree::bare("dump", &files);
    let o = ours(&["-c", t.path(), "-d"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("['start', 'j']"));
}

#[test]
fn hostile_option_lists_do_not_crash() {
    let long = format!(
        "[j]\nenabled = true\nfilter = f[{}]\n",
        "a=\"x\",".repeat(20000)
    );
    let long: &'static str = Box::leak(long.into_boxed_str());
    let t = Tree::bare("hostile", &with_ok(&[("jail.conf", long)]));
    let o = ours(&["-c", t.path(), "-d"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn filters_read_like_fail2ban_regex() {
    crate::reference::against_each(
        "config::filters_read_like_fail2ban_regex",
        "filters",
        filters_read_like,
    );
}

/// The commands fail2ban's FilterReader makes of a few stock filters and
/// modes, against fail3ban's reader on the same tree.
fn filters_read_like(version: &'static str, root: &Path) -> reference::Tally {
    let tree = reference::stock_tree(root);
    let script = r#"
import sys, json
from fail2ban.client.filterreader import FilterReader
from fail2ban.helpers import extractOptions
base, spec = sys.argv[1], sys.argv[2]
name, opts = extractOptions(spec)
r = FilterReader(name, 'fail2ban-regex-jail', opts, share_config={}, basedir=base)
assert r.read()
r.applyAutoOptions('auto')
r.getOptions(None)
for c in r.convert(): print(repr(c))
"#;
    let mut tally = reference::Tally::new(version);
    for spec in [
        "sshd",
        "sshd[mode=aggressive]",
        "postfix[mode=ddos]",
        "apache-auth[logtype=journal]",
        "nginx-http-auth",
        "recidive",
    ] {
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", script, tree.to_str().unwrap(), spec])
            .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = String::from_utf8_lossy(&out.stdout).into_owned();
        let (name, params) = fail3ban::config::options::extract_options(spec).unwrap();
        let source = fail3ban::config::FilterSource::Named {
            basedir: tree.to_str().unwrap(),
            name: &name,
        };
        let cmds =
            fail3ban::config::read_filter(source, params, "fail2ban-regex-jail", "auto").unwrap();
        let mine: String = cmds
            .iter()
            .map(|c| format!("{}\n", fail3ban::config::format_command(c)))
            .collect();
        tally.compared += 1;
        if theirs != mine {
            tally.diffs.push((
                spec.to_string(),
                format!("--- fail2ban\n{theirs}--- fail3ban\n{mine}"),
            ));
        }
    }
    let e = fail3ban::config::read_filter(
        fail3ban::config::FilterSource::Named {
            basedir: tree.to_str().unwrap(),
            name: "no-such-filter",
        },
        Default::default(),
        "j",
        "auto",
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown filter"), "{e}");
    tally
}
