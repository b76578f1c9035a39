//! What enters from outside is checked where it enters (issue 13): ids
//! from log lines, the client and the database before any ban, and every
//! regex of a configuration by `fail3ban-client -t`.

use std::process::Command;

use fail3ban::store::{Ban, Settings, SqliteStore, Store};

use crate::server::{fail, fail_line};
use crate::util::{append, new_log, Server, Tree};

const CLIENT: &str = env!("CARGO_BIN_EXE_fail3ban-client");

/// Ids that are no canonical address, but that inet_aton (and so iptables,
/// nft, ipset, route) reads as one: leading zeros (octal), hex, fewer than
/// four parts, a zone, a trailing dot.
const NON_CANONICAL: &[&str] = &[
    "127.000.000.001",
    "0x7f000001",
    "192.0.2.051",
    "127.1",
    "2130706433",
    "198.51.100.010",
    "0300.0000.0002.0001",
    "::1%lo",
    "192.0.2.1.",
];

/// Canonical spellings of addresses in ignoreip: compared as addresses.
const IGNORED_SPELLINGS: &[&str] = &[
    "0:0:0:0:0:0:0:1",
    "[::1]",
    "::ffff:192.0.2.9",
    "2001:DB8::5",
    "192.0.2.77",
];

/// Issue 13, finding 6: a failure id that is no canonical address but
/// that a firewall would read as one is never banned, whichever way it
/// comes in (a filter's `<F-ID>` or `<HOST>`, `set <jail> banip`, the
/// database at start); canonical spellings are compared with ignoreip as
/// addresses; other raw ids (user names) are banned as fail2ban bans them.
#[test]
fn non_canonical_addresses_are_never_banned() {
    let ignore = "ignoreself = false\nignoreip = 127.0.0.1 ::1 192.0.2.0/24 2001:db8::/32\n";
    let tree = Tree::new(&format!(
        "[byid]\nenabled = true\nfilter = anyid\nlogpath = @T@/byid.log\nmaxretry = 1\n{ignore}\n\
         [byhost]\nenabled = true\nfilter = test\nlogpath = @T@/byhost.log\nmaxretry = 1\n{ignore}\n"
    ));
    tree.write_conf(
        "filter.d/anyid.conf",
        "[Definition]\nfailregex = ^\\s*\\S+ test\\[\\d+\\]: auth failure from <F-ID>\\S+</F-ID>$\n",
    );
    let (byid, byhost) = (tree.path("byid.log"), tree.path("byhost.log"));
    new_log(&byid);
    new_log(&byhost);
    // Bans in the database (as an import from fail2ban, which bans such
    // ids, would leave them) are checked again when they are restored.
    {
        let store = SqliteStore::open(tree.path("f3.sqlite3"), Settings::default()).unwrap();
        store.add_jail("byid").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for fid in ["127.000.000.001", "192.0.2.051", "203.0.113.30"] {
            store
                .add_ban(&Ban::new("byid", fid, now - 10.0, 3600.0))
                .unwrap();
        }
    }
    let mut s = Server::start(&tree);
    s.wait("the canonical ban is restored", |_| {
        tree.count("ban", "byid", "203.0.113.30") == 1
    });

    let mut lines = String::new();
    for id in NON_CANONICAL.iter().chain(IGNORED_SPELLINGS) {
        lines.push_str(&fail_line(id));
    }
    // Processed after the others: once they are banned, all lines were.
    lines.push_str(&fail_line("alice"));
    lines.push_str(&fail_line("198.51.100.9"));
    append(&byid, &lines);
    for ip in ["127.000.000.001", "192.0.2.051", "198.51.100.010"] {
        fail(&byhost, ip, 1);
    }
    fail(&byhost, "198.51.100.9", 1);
    s.wait("the canonical ids are banned", |_| {
        tree.count("ban", "byid", "alice") == 1
            && tree.count("ban", "byid", "198.51.100.9") == 1
            && tree.count("ban", "byhost", "198.51.100.9") == 1
    });

    for id in ["127.000.000.001", "0x7f000001", "198.51.100.010"] {
        let (ok, out) = s.client(&["set", "byid", "banip", id]);
        assert!(!ok, "banip {id} must fail: {out}");
        assert!(out.contains(id), "the error names {id}: {out}");
    }
    assert_eq!(s.ok(&["set", "byid", "banip", "203.0.113.20"]).trim(), "1");
    s.wait("the manual ban ran", |_| {
        tree.count("ban", "byid", "203.0.113.20") == 1
    });

    let mut banned: Vec<String> = tree
        .actions()
        .into_iter()
        .filter(|l| l.starts_with("ban "))
        .collect();
    banned.sort();
    assert_eq!(
        banned,
        vec![
            "ban byhost 198.51.100.9 3600",
            "ban byid 198.51.100.9 3600",
            "ban byid 203.0.113.20 3600",
            "ban byid 203.0.113.30 3600",
            "ban byid alice 3600",
        ],
        "{}",
        s.report()
    );
    let log = tree.server_log();
    for id in NON_CANONICAL {
        assert!(
            log.lines()
                .any(|l| l.contains("WARNING") && l.contains(&format!("[byid] Ignore {id} "))),
            "no warning names {id}\n{}",
            s.report()
        );
    }
    assert!(
        log.contains("[byhost] Ignore 198.51.100.010 "),
        "{}",
        s.report()
    );
}

/// `fail3ban-client -c DIR -t`: exit status and stderr.
fn check_tree(tree: &Tree) -> (bool, String) {
    let o = Command::new(CLIENT)
        .arg("-c")
        .arg(tree.conf())
        .arg("-t")
        .output()
        .expect("run fail3ban-client -t");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout),
    )
}

/// Issue 13, finding 8: `-t` compiles every failregex, ignoreregex,
/// prefregex and datepattern of every enabled jail through the code the
/// server builds filters with, and names file, section and option of
/// each that would stop a jail at start.
#[test]
fn dash_t_rejects_broken_filters() {
    let jail = |name: &str, filter: &str, extra: &str| {
        format!("[{name}]\nenabled = true\nfilter = {filter}\nlogpath = @T@/{name}.log\n{extra}\n")
    };
    let tree = Tree::new(&format!(
        "{}{}{}{}{}{}[off]\nenabled = false\nfilter = badfail\nlogpath = @T@/off.log\n",
        jail("good", "test", ""),
        jail("badfail", "badfail", ""),
        jail("nohost", "nohost", ""),
        jail("badignore", "test", "ignoreregex = ^oops$"),
        jail("baddate", "baddate", ""),
        jail("badpref", "badpref", ""),
    ));
    for j in [
        "good",
        "badfail",
        "nohost",
        "badignore",
        "baddate",
        "badpref",
    ] {
        new_log(tree.path(&format!("{j}.log")));
    }
    let good = "[Definition]\nfailregex = ^x <HOST>$\n";
    for f in ["badfail", "nohost", "baddate", "badpref"] {
        tree.write_conf(&format!("filter.d/{f}.conf"), good);
    }
    let (ok, out) = check_tree(&tree);
    assert!(ok, "the tree is good so far: {out}");

    tree.write_conf(
        "filter.d/badfail.conf",
        "[Definition]\nfailregex = ^ok <HOST>$\n            ^bad( <HOST>$\n",
    );
    tree.write_conf(
        "filter.d/nohost.conf",
        "[Definition]\nfailregex = ^no host here$\n",
    );
    tree.write_conf(
        "filter.d/baddate.conf",
        "[Definition]\nfailregex = ^x <HOST>$\ndatepattern = ^%%Y-%%m-%%d (\n",
    );
    tree.write_conf(
        "filter.d/badpref.conf",
        "[Definition]\nprefregex = ^<F-CONTENT>.+</F-CONTENT>$\nfailregex = ^x <HOST>$\n",
    );
    tree.write_conf(
        "filter.d/badpref.local",
        "[Definition]\nprefregex = ^(?P<x.+$\n",
    );
    tree.write_conf("jail.local", "[badignore]\nignoreregex = ^oops[a-$\n");
    let (ok, out) = check_tree(&tree);
    assert!(!ok, "-t must fail: {out}");
    for want in [
        "filter.d/badfail.conf [Definition] failregex: \"^bad( <HOST>$\"",
        "filter.d/nohost.conf [Definition] failregex: \"^no host here$\"",
        "jail.local [badignore] ignoreregex: \"^oops[a-$\"",
        "filter.d/baddate.conf [Definition] datepattern: \"^%Y-%m-%d (\"",
        "filter.d/badpref.local [Definition] prefregex: \"^(?P<x.+$\"",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ERROR: ") && l.contains(want)),
            "missing {want:?} in:\n{out}"
        );
    }
    assert!(
        !out.contains("[good]") && !out.contains("[off]") && !out.contains("^ok <HOST>"),
        "only the broken ones are named:\n{out}"
    );
}
