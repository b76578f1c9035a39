//! What fail2ban 1.1.1's ChangeLog adds for jails, backends and actions,
//! through a real fail3ban-server driven by fail3ban-client: jails whose
//! logpath matches no file (`skip_if_nologs`, `systemd_if_nologs`).

use crate::util::{new_log, Server, Tree};

use crate::server::{fail, jail, st};

/// A filter for the test lines that also names a journal match, so that a
/// jail on `backend = auto` can turn to the journal.
const JOURNAL_FILTER: &str = r"[Definition]
failregex = ^\s*\S+ test\[\d+\]: auth failure from <HOST>$
journalmatch = _SYSTEMD_UNIT=f3test.service
";

/// The jail names `status` lists.
fn jails(s: &mut Server) -> String {
    let out = s.ok(&["status"]);
    out.lines()
        .find_map(|l| l.split_once("Jail list:"))
        .map(|(_, list)| list.trim().to_string())
        .unwrap_or_default()
}

/// `skip_if_nologs = true`: a jail whose logpath matches no file is left
/// out with a warning; the other jails start.
#[test]
fn skip_if_nologs_leaves_the_jail_out_and_starts_the_rest() {
    let tree = Tree::new(&format!(
        "{}{}",
        jail("one", ""),
        jail("gone", "skip_if_nologs = true")
    ));
    new_log(tree.path("one.log"));
    let mut s = Server::start(&tree);
    assert_eq!(jails(&mut s), "one", "{}", s.report());
    assert!(!s.client(&["status", "gone"]).0, "{}", s.report());
    let log = tree.server_log();
    assert!(
        log.contains("WARNING") && log.contains("gone jail, skipped (skip_if_nologs)"),
        "{}",
        s.report()
    );
    // The file appearing later changes nothing until a reload, which then
    // starts the jail.
    new_log(tree.path("gone.log"));
    s.ok(&["reload"]);
    s.wait("the jail starts on reload", |s| {
        s.client(&["status", "gone"]).0
    });
}

/// Without `skip_if_nologs`, a jail without files starts as before.
#[test]
fn a_jail_without_logs_and_without_skip_still_starts() {
    let tree = Tree::new(&jail("bare", "skip_if_nologs = false"));
    let mut s = Server::start(&tree);
    assert_eq!(jails(&mut s), "bare", "{}", s.report());
}

/// `backend = auto` with a journalmatch and no log file: the jail reads the
/// journal instead (1.1.1's `systemd_if_nologs`, on by default) and says so;
/// `systemd_if_nologs = false` keeps it on files.
#[test]
fn auto_backend_without_logs_switches_to_the_journal() {
    let tree = Tree::new(
        "[sw]
enabled = true
filter = jtest
logpath = @T@/absent.log

[stay]
enabled = true
filter = jtest
logpath = @T@/absent.log
systemd_if_nologs = false

[found]
enabled = true
filter = jtest
logpath = @T@/found.log
",
    );
    tree.write_conf("filter.d/jtest.conf", JOURNAL_FILTER);
    new_log(tree.path("found.log"));
    let mut s = Server::start(&tree);
    let sw = s.ok(&["status", "sw"]);
    assert!(
        sw.contains("Journal matches:\t_SYSTEMD_UNIT=f3test.service"),
        "{sw}\n{}",
        s.report()
    );
    assert_eq!(s.ok(&["get", "sw", "backend"]).trim(), "systemd");
    for j in ["stay", "found"] {
        let out = s.ok(&["status", j]);
        assert!(out.contains("File list:"), "{j}: {out}\n{}", s.report());
        assert_eq!(s.ok(&["get", j, "backend"]).trim(), "auto");
    }
    let log = tree.server_log();
    assert!(
        log.contains("Have not found any log file for sw jail, switching backend to systemd"),
        "{}",
        s.report()
    );
    assert!(!log.contains("for stay jail, switching"), "{}", s.report());
}

/// The ignoreip lines `get <jail> ignoreip` prints, without the tree's
/// `|-`/`` `- `` marks.
fn ignoreip(s: &mut Server, jail: &str) -> Vec<String> {
    s.ok(&["get", jail, "ignoreip"])
        .lines()
        .filter_map(|l| l.strip_prefix("|- ").or_else(|| l.strip_prefix("`- ")))
        .map(String::from)
        .collect()
}

/// `ignoreip = file:<path>` mixed with plain entries: the file's addresses
/// and networks (`#` comments, several per line) are never banned, the
/// file is reread when it changes, `get` lists it as `file:<path>` however
/// it was written, and `addignoreip`/`delignoreip` take it.
#[test]
fn ignoreip_file_is_read_reread_and_listed() {
    let tree = Tree::new(&jail(
        "one",
        "ignoreip = 203.0.113.9 file:///@T@/trusted.list",
    ));
    let list = tree.path("trusted.list");
    std::fs::write(&list, "# trusted\n192.0.2.7, 198.51.100.0/24 # office\n").unwrap();
    let log = tree.path("one.log");
    new_log(&log);
    let mut s = Server::start(&tree);
    let item = format!("file:{}", list.display());
    assert_eq!(
        ignoreip(&mut s, "one"),
        [item.clone(), "203.0.113.9".into()]
    );

    fail(&log, "192.0.2.7", 3);
    fail(&log, "198.51.100.20", 3);
    fail(&log, "192.0.2.99", 3);
    s.wait_status("one", &st(0, 3, &["192.0.2.99"], 1));
    let out = tree.server_log();
    assert!(
        out.contains("[one] Ignore 192.0.2.7 by ip"),
        "{}",
        s.report()
    );
    assert!(
        out.contains("[one] Ignore 198.51.100.20 by ip"),
        "{}",
        s.report()
    );

    // A new list, written as editors write (rename over the old one).
    let tmp = tree.path("trusted.tmp");
    std::fs::write(&tmp, "192.0.2.50 # only this one now\n").unwrap();
    std::fs::rename(&tmp, &list).unwrap();
    s.wait("the changed list is read", |s| {
        // A check more than a second after the last one looks at the file.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fail(&log, "192.0.2.61", 1);
        s.tree.server_log().contains("1 addresses or networks read")
    });
    fail(&log, "192.0.2.50", 3);
    fail(&log, "192.0.2.7", 3);
    s.wait("192.0.2.7 is banned", |s| {
        s.status("one").list_has("192.0.2.7")
    });
    assert!(!s.status("one").list_has("192.0.2.50"), "{}", s.report());
    assert!(
        tree.server_log().contains("[one] Ignore 192.0.2.50 by ip"),
        "{}",
        s.report()
    );

    // Removed in another spelling, added back; `file:` alone is refused.
    let other = format!("file://{}", list.display());
    s.ok(&["set", "one", "delignoreip", &other]);
    assert_eq!(ignoreip(&mut s, "one"), ["203.0.113.9"]);
    s.ok(&["set", "one", "addignoreip", &item]);
    assert_eq!(
        ignoreip(&mut s, "one"),
        [item.clone(), "203.0.113.9".into()]
    );
    assert!(!s.client(&["set", "one", "addignoreip", "file:"]).0);
}
