//! A real fail3ban-server against what must not stall, strip it or make it
//! forget: a resolver that never answers, a FIFO put where a log was, a
//! kill -9 in a burst of bans, a full disk under its database, a typo in a
//! reloaded configuration (issue 15, findings 1 to 4).

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::netns::{must, run};
use crate::server::{fail, jail, st};
use crate::util::{append, new_log, stamp, Server, Tree};

/// What a test's setup made, or the test fails with why it could not: a
/// test that uses it is `#[ignore]`d for what the setup needs (see
/// tests/prereq.rs).
macro_rules! need {
    ($setup:expr, $what:expr) => {
        match $setup {
            Ok(x) => x,
            Err(why) => panic!("prerequisite missing: {}: {why}", $what),
        }
    };
}

/// A network namespace whose resolver never answers: its resolv.conf
/// names 192.0.2.53, routed through a veth pair into a second namespace
/// that is not that address and forwards nothing, so queries are sent and
/// silently dropped, and getaddrinfo waits its whole timeout. Its
/// /etc/hosts knows one name, `known.example` (192.0.2.77), and nothing
/// else answers a name first (nsswitch: files, dns). Deleted on drop.
struct SilentDns {
    ns: String,
    peer: String,
}

/// The name the silent resolver is asked for.
const SILENT_NAME: &str = "attacker.example";

impl SilentDns {
    fn new() -> Result<SilentDns, String> {
        crate::prereq::Need::Netns.check()?;
        static N: AtomicUsize = AtomicUsize::new(0);
        let ns = format!(
            "f3dns-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dns = SilentDns {
            peer: format!("{ns}-p"),
            ns,
        };
        let _ = fs::remove_dir_all(dns.etc());
        let (ns, peer) = (dns.ns.as_str(), dns.peer.as_str());
        for n in [ns, peer] {
            let o = run("ip", &["netns", "add", n]);
            if !o.status.success() {
                return Err(format!(
                    "ip netns add refused: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
        }
        must(
            "ip",
            &[
                "-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", peer,
            ],
        );
        must(
            "ip",
            &["-n", ns, "addr", "add", "192.0.2.1/24", "dev", "v0"],
        );
        must(
            "ip",
            &["-n", peer, "addr", "add", "192.0.2.20/24", "dev", "v1"],
        );
        for (n, dev) in [(ns, "v0"), (peer, "v1"), (ns, "lo")] {
            must("ip", &["-n", n, "link", "set", dev, "up"]);
        }
        must(
            "ip",
            &[
                "-n",
                ns,
                "route",
                "add",
                "192.0.2.53/32",
                "via",
                "192.0.2.20",
            ],
        );
        fs::create_dir_all(dns.etc()).unwrap();
        fs::write(dns.etc().join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
        fs::write(
            dns.etc().join("hosts"),
            "127.0.0.1 localhost\n192.0.2.77 known.example\n",
        )
        .unwrap();
        fs::write(dns.etc().join("nsswitch.conf"), "hosts: files dns\n").unwrap();
        Ok(dns)
    }

    /// What `ip netns exec` mounts over /etc in the namespace.
    fn etc(&self) -> std::path::PathBuf {
        Path::new("/etc/netns").join(&self.ns)
    }

    /// The command that runs a program in the namespace.
    fn wrapper(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.ns]
    }

    /// Looks `name` up in the namespace as the server would (getaddrinfo);
    /// how long it took and whether it found anything.
    fn lookup(&self, name: &str) -> (Duration, bool) {
        let t = Instant::now();
        let o = run("ip", &["netns", "exec", &self.ns, "getent", "ahosts", name]);
        (t.elapsed(), o.status.success())
    }
}

impl Drop for SilentDns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.ns]);
        let _ = run("ip", &["netns", "del", &self.peer]);
        let _ = fs::remove_dir_all(self.etc());
    }
}

fn name_line(host: &str) -> String {
    format!("{} web1 test[4242]: auth failure from {host}\n", stamp())
}

/// Runs `f` (a client command) and fails unless it answered within 1 s.
fn within_a_second<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "{what} took {took:?}");
    v
}

/// Finding 1: with `usedns = warn` (the default) and a resolver that never
/// answers, failures whose host is a name wait for their lookup, and
/// nothing else does: `status` answers within 1 s throughout, another
/// jail counts and bans, a line with an address in the same jail is
/// counted at once, the name is looked up once (its negative answer is
/// cached) and a name /etc/hosts knows bans its address.
#[test]
#[ignore = "needs root and ip (network namespaces)"]
fn slow_dns_stalls_nothing() {
    let dns = need!(SilentDns::new(), "slow_dns_stalls_nothing");
    // The resolver must really be silent, or the test tests nothing; the
    // probe runs beside the test.
    let probe = std::thread::scope(|sc| {
        let probe = sc.spawn(|| dns.lookup(SILENT_NAME));
        let tree = Tree::new(&format!(
            "{}\n{}\n{}",
            jail("names", ""),
            jail("names2", ""),
            jail("good", "")
        ));
        for j in ["names", "names2", "good"] {
            new_log(tree.path(&format!("{j}.log")));
        }
        let mut s = Server::start_in(&tree, &dns.wrapper(), &[]);
        let lines = name_line(SILENT_NAME).repeat(4);
        append(&tree.path("names.log"), &lines);
        append(&tree.path("names2.log"), &lines);
        fail(&tree.path("names.log"), "192.0.2.9", 1);
        fail(&tree.path("good.log"), "192.0.2.30", 3);
        let t0 = Instant::now();
        let (mut good_at, mut addr_at) = (None, None);
        // Longer than any lookup timeout, so that the waiting lines are
        // seen through to their end.
        while t0.elapsed() < Duration::from_secs(12) {
            within_a_second("status", || s.ok(&["status"]));
            let good = within_a_second("status good", || s.status("good"));
            let names = within_a_second("status names", || s.status("names"));
            if good_at.is_none() && good == st(0, 3, &["192.0.2.30"], 1) {
                good_at = Some(t0.elapsed());
            }
            if addr_at.is_none() && names == st(1, 1, &[], 0) {
                addr_at = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let quick = Duration::from_secs(3);
        assert!(
            good_at.is_some_and(|t| t < quick),
            "the other jail banned after {good_at:?}\n{}",
            s.report()
        );
        assert!(
            addr_at.is_some_and(|t| t < quick),
            "the address line behind the names was counted after {addr_at:?}\n{}",
            s.report()
        );
        // The name found nothing: only the address line counts.
        assert_eq!(s.status("names"), st(1, 1, &[], 0), "{}", s.report());
        assert_eq!(s.status("names2"), st(0, 0, &[], 0), "{}", s.report());
        let unresolved = || {
            tree.server_log()
                .matches(&format!(
                    "Unable to find a corresponding IP address for {SILENT_NAME}"
                ))
                .count()
        };
        s.wait("the failed lookup is logged", |_| unresolved() >= 1);
        // Cached: the same name again costs no wait and no second lookup.
        append(&tree.path("names2.log"), &lines);
        append(
            &tree.path("names2.log"),
            &name_line("known.example").repeat(3),
        );
        let t1 = Instant::now();
        s.wait_status("names2", &st(0, 3, &["192.0.2.77"], 1));
        assert!(t1.elapsed() < quick, "{:?}\n{}", t1.elapsed(), s.report());
        within_a_second("status", || s.ok(&["status"]));
        assert_eq!(unresolved(), 1, "{}", s.report());
        s.terminate(Duration::from_secs(5));
        probe.join().unwrap()
    });
    assert!(
        !probe.1 && probe.0 >= Duration::from_secs(3),
        "the namespace's resolver is not silent (answered {} after {:?}): the test proves nothing",
        probe.1,
        probe.0
    );
}

/// Nothing blocks the control socket: under a resolver that never
/// answers, the server answers at once when it starts and its jails count
/// and ban at once, although `ignoreself` asks for the host's name (the
/// lookup runs in the background; loopback is ignored meanwhile).
#[test]
#[ignore = "needs root and ip (network namespaces)"]
fn silent_resolver_delays_no_startup() {
    let dns = need!(SilentDns::new(), "silent_resolver_delays_no_startup");
    // The host's name must really go to the silent resolver, or the test
    // tests nothing.
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (took, found) = dns.lookup(host.trim());
    assert!(
        !found && took >= Duration::from_secs(3),
        "the host's name answered ({found}) after {took:?}: the test proves nothing"
    );
    let tree = Tree::new(&format!("{}\n{}", jail("one", ""), jail("two", "")));
    for j in ["one", "two"] {
        new_log(tree.path(&format!("{j}.log")));
    }
    let t0 = Instant::now();
    let mut s = Server::start_in(&tree, &dns.wrapper(), &[]);
    let answered = t0.elapsed();
    let status = within_a_second("status", || s.ok(&["status"]));
    assert!(status.contains("one, two"), "{status}\n{}", s.report());
    fail(&tree.path("two.log"), "192.0.2.30", 3);
    fail(&tree.path("one.log"), "127.0.0.1", 3);
    fail(&tree.path("one.log"), "192.0.2.5", 1);
    s.wait_status("two", &st(0, 3, &["192.0.2.30"], 1));
    let banned = t0.elapsed();
    within_a_second("status one", || s.status("one"));
    s.wait_status("one", &st(1, 1, &[], 0));
    s.terminate(Duration::from_secs(5));
    assert!(
        answered < Duration::from_secs(1) && banned < Duration::from_secs(2),
        "the server answered after {answered:?} and banned after {banned:?}"
    );
}

/// Creates a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Finding 2: a FIFO moved over a followed log (and one a glob finds at
/// start) is refused with one clear log line; every other log, of this
/// jail and of others, is still read and bans; SIGTERM ends the server
/// within a few seconds.
#[test]
fn one_fifo_blinds_no_jail() {
    let tree = Tree::new(&format!(
        "{}\n{}\n[site]\nenabled = true\nfilter = test\nmaxretry = 1\nlogpath = @T@/site/*.log\n",
        jail("one", ""),
        jail("good", "")
    ));
    let (one, good) = (tree.path("one.log"), tree.path("good.log"));
    new_log(&one);
    new_log(&good);
    fs::create_dir(tree.path("site")).unwrap();
    mkfifo(&tree.path("site/a.log"));
    new_log(tree.path("site/b.log"));
    let mut s = Server::start(&tree);
    fail(&one, "192.0.2.1", 1);
    s.wait_status("one", &st(1, 1, &[], 0));
    mkfifo(&tree.path("fifo"));
    fs::rename(tree.path("fifo"), &one).unwrap();
    fail(&good, "192.0.2.20", 3);
    s.wait_status("good", &st(0, 3, &["192.0.2.20"], 1));
    fail(&tree.path("site/b.log"), "192.0.2.3", 1);
    s.wait_status("site", &st(0, 1, &["192.0.2.3"], 1));
    let refused = |name: &str| {
        tree.server_log()
            .lines()
            .filter(|l| l.contains(name) && l.contains("not a regular file"))
            .count()
    };
    s.wait("the FIFO over one.log is refused", |_| {
        refused("one.log") >= 1
    });
    // Several polls later, still one line each.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(refused("one.log"), 1, "{}", s.report());
    assert_eq!(refused("site/a.log"), 1, "{}", s.report());
    within_a_second("status one", || s.status("one"));
    s.terminate(Duration::from_secs(5));
}

/// A tree whose jail `one` banned 192.0.2.1 and holds one failure of
/// 192.0.2.20; jail.d exists, so that the watcher follows it.
fn banned_tree() -> Tree {
    let tree = Tree::new(&jail("one", ""));
    fs::create_dir(tree.conf().join("jail.d")).unwrap();
    new_log(tree.path("one.log"));
    tree
}

fn ban_one(s: &mut Server, tree: &Tree) {
    fail(&tree.path("one.log"), "192.0.2.1", 3);
    fail(&tree.path("one.log"), "192.0.2.20", 1);
    s.wait_status("one", &st(1, 4, &["192.0.2.1"], 1));
}

/// What a jail kept after a reload that failed: its failures, its ban
/// (never unbanned), and it still counts and bans with its old filter.
fn kept_running(s: &mut Server, tree: &Tree) {
    assert_eq!(
        s.status("one"),
        st(1, 4, &["192.0.2.1"], 1),
        "{}",
        s.report()
    );
    fail(&tree.path("one.log"), "192.0.2.20", 2);
    s.wait_status("one", &st(0, 6, &["192.0.2.1", "192.0.2.20"], 2));
    assert_eq!(tree.count("unban", "one", "192.0.2.1"), 0, "{}", s.report());
}

/// The error `status` shows: it names the file, the section and the option.
fn shown_error(s: &mut Server) -> String {
    let status = s.ok(&["status"]);
    let line = status
        .lines()
        .find(|l| l.contains("typo.conf"))
        .unwrap_or_else(|| panic!("status shows no error:\n{status}"));
    assert!(
        line.contains("[one]") && line.contains("filter") && line.contains("test-typo"),
        "{line}"
    );
    status
}

/// Finding 4, by command: `reload` with a jail whose filter does not
/// exist exits non-zero naming file, section and option; the jail keeps
/// running with its old settings, failures and bans; `status` shows the
/// error until a good reload clears it.
#[test]
fn typo_reload_unbans_no_one() {
    let tree = banned_tree();
    let mut s = Server::start(&tree);
    ban_one(&mut s, &tree);
    tree.write_conf("jail.d/typo.conf", "[one]\nfilter = test-typo\n");
    let (ok, out) = s.client(&["reload"]);
    assert!(!ok, "reload with a typo answered OK: {out}\n{}", s.report());
    assert!(
        out.contains("typo.conf") && out.contains("[one]") && out.contains("filter"),
        "{out}"
    );
    let status = shown_error(&mut s);
    assert!(status.contains("Jail list:\tone"), "{status}");
    kept_running(&mut s, &tree);
    let log = tree.server_log();
    assert!(
        !log.contains("is no longer configured") && log.contains("test-typo"),
        "{log}"
    );
    fs::remove_file(tree.conf().join("jail.d/typo.conf")).unwrap();
    s.ok(&["reload"]);
    let status = s.ok(&["status"]);
    assert!(!status.contains("typo"), "{status}");
    assert_eq!(
        status, "Status\n|- Number of jail:\t1\n`- Jail list:\tone\n",
        "{status}"
    );
}

/// Finding 4, through the watcher: the same typo written into jail.d
/// reloads on its own, and the jail is kept as by command.
#[test]
fn typo_watched_unbans_no_one() {
    let tree = banned_tree();
    let mut s = Server::start(&tree);
    ban_one(&mut s, &tree);
    tree.write_conf("jail.d/typo.conf", "[one]\nfilter = test-typo\n");
    s.wait("the watcher's reload failed", |_| {
        tree.server_log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("test-typo"))
    });
    shown_error(&mut s);
    kept_running(&mut s, &tree);
    assert!(
        !tree.server_log().contains("is no longer configured"),
        "{}",
        s.report()
    );
}

/// A jail really removed from the configuration is still stopped by a
/// reload, and its bans lifted, while another jail's error keeps that one.
#[test]
fn removed_jail_stops_beside_a_broken_one() {
    let tree = Tree::new(&format!("{}\n{}", jail("one", ""), jail("two", "")));
    new_log(tree.path("one.log"));
    new_log(tree.path("two.log"));
    let mut s = Server::start(&tree);
    fail(&tree.path("two.log"), "192.0.2.5", 3);
    s.wait_status("two", &st(0, 3, &["192.0.2.5"], 1));
    tree.write_conf(
        "jail.conf",
        &fs::read_to_string(tree.conf().join("jail.conf"))
            .unwrap()
            .replace("[two]\nenabled = true", "[two]\nenabled = false")
            .replace(
                "[one]\nenabled = true\nfilter = test",
                "[one]\nenabled = true\nfilter = test-typo",
            ),
    );
    let (ok, out) = s.client(&["reload"]);
    assert!(!ok, "{out}");
    s.wait("two's ban is lifted", |_| {
        tree.count("unban", "two", "192.0.2.5") == 1
    });
    let status = s.ok(&["status"]);
    assert!(
        status.contains("Jail list:\tone") && !status.contains("two"),
        "{status}"
    );
}

/// Records every ban as `ban <ip> <restored>`: a ban the jail made is
/// `ban <ip> 0`, one restored from the database at start `ban <ip> 1`.
const MARK: &str = r#"[Definition]
actionban = echo "ban <ip> <restored>" >> <file>
[Init]
file = /dev/null
"#;

/// A tree whose jail `burst` bans at the first failure with the `mark`
/// action into `marks.log`.
fn burst_tree() -> Tree {
    let tree = Tree::new(&jail(
        "burst",
        "maxretry = 1\naction = mark[file=@T@/marks.log]",
    ));
    tree.write_conf("action.d/mark.conf", MARK);
    new_log(tree.path("burst.log"));
    tree
}

/// The `ban <ip> <restored>` lines the mark action wrote.
fn marks(tree: &Tree) -> Vec<(String, bool)> {
    fs::read_to_string(tree.path("marks.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3 && w[0] == "ban").then(|| (w[1].to_string(), w[2] == "1"))
        })
        .collect()
}

/// `n` distinct test addresses: 2001:db8::1 onwards.
fn addresses(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let a = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16);
            a.to_string()
        })
        .collect()
}

/// The ban records of `jail` in the database at `db`, per address.
fn recorded(db: &Path, jail: &str) -> std::collections::HashMap<String, usize> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut q = conn
        .prepare("SELECT ip, COUNT(*) FROM bans WHERE jail = ?1 GROUP BY ip")
        .unwrap();
    let rows = q
        .query_map([jail], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The position saved for the log at `path` of `jail` (0 if none).
fn saved_position(db: &Path, jail: &str, path: &Path) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT lastfilepos FROM logs WHERE jail = ?1 AND path = ?2",
        (jail, path.to_str().unwrap()),
        |r| r.get::<_, i64>(0),
    )
    .map(|p| p as u64)
    .unwrap_or(0)
}

/// How many bans `status <jail>` shows.
fn banned_count(s: &mut Server, jail: &str) -> usize {
    s.ok(&["status", jail])
        .lines()
        .find_map(|l| l.split("Currently banned:").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (up to `within`) until `jail` shows `n` bans.
fn wait_banned(s: &mut Server, jail: &str, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = banned_count(s, jail);
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{jail} shows {now} bans, not {n}, after {within:?}\n{}",
            s.report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to `within`) until the action has banned (or restored) each
/// address of `ips`: the jail shows a ban before its action ran.
fn wait_applied(s: &mut Server, ips: &[String], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen: std::collections::HashSet<String> =
            marks(s.tree).into_iter().map(|(ip, _)| ip).collect();
        let missing = ips.iter().filter(|ip| !seen.contains(*ip)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} bans not applied after {within:?}\n{}",
            s.report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each address of `ips` was banned once: by the jail (`ban <ip> 0`) at
/// most once over both runs, restored from the database at the restart
/// (`ban <ip> 1`) at most once, by one or the other at least once; and
/// the database holds one ban record of it. (A ban recorded but not yet
/// applied at the kill is applied by its restore only.)
fn banned_once_each(tree: &Tree, ips: &[String], db: &Path, jail: &str) {
    let mut made = std::collections::HashMap::<&str, usize>::new();
    let mut restored = std::collections::HashMap::<&str, usize>::new();
    let all = marks(tree);
    for (ip, r) in &all {
        *(if *r { &mut restored } else { &mut made })
            .entry(ip.as_str())
            .or_default() += 1;
    }
    let records = recorded(db, jail);
    for ip in ips {
        let ip = ip.as_str();
        let (m, r) = (
            made.get(ip).copied().unwrap_or(0),
            restored.get(ip).copied().unwrap_or(0),
        );
        assert!(
            m <= 1 && r <= 1 && m + r >= 1,
            "{ip} banned {m} times by the jail, {r} times restored"
        );
        assert_eq!(
            records.get(ip),
            Some(&1),
            "{ip} has {:?} ban records",
            records.get(ip)
        );
    }
    assert_eq!(records.len(), ips.len(), "records of other addresses");
}

/// Finding 3: kill -9 about 0.3 s into a burst of 3,000 failing addresses
/// (maxretry 1), while the bans are still being applied; after a restart
/// on the same database all 3,000 are banned, each once: no address is
/// banned twice by the jail (a ban restored from the database at start
/// is told apart by its `<restored>` tag) nor recorded twice.
#[test]
fn crash_loses_no_ban() {
    const N: usize = 3000;
    let tree = burst_tree();
    let log = tree.path("burst.log");
    let ips = addresses(N);
    let mut s = Server::start(&tree);
    let burst: String = ips.iter().map(|ip| crate::server::fail_line(ip)).collect();
    let t0 = Instant::now();
    append(&log, &burst);
    s.wait("the first ban is applied", |_| !marks(&tree).is_empty());
    std::thread::sleep(Duration::from_millis(300).saturating_sub(t0.elapsed()));
    s.kill9();
    let at_kill = marks(&tree).len();
    assert!(
        at_kill < N,
        "all {N} bans were applied before the kill after {:?}: the test proves nothing",
        t0.elapsed()
    );
    let db = tree.path("f3.sqlite3");
    println!(
        "kill -9 after {:?}: {at_kill} bans applied, {} recorded, position {}",
        t0.elapsed(),
        recorded(&db, "burst").len(),
        saved_position(&db, "burst", &log)
    );
    let mut s = Server::start(&tree);
    wait_banned(&mut s, "burst", N, Duration::from_secs(60));
    wait_applied(&mut s, &ips, Duration::from_secs(60));
    s.wait("every ban is recorded", |_| {
        recorded(&db, "burst").len() == N
    });
    banned_once_each(&tree, &ips, &db, "burst");
}

/// A small tmpfs mounted on a directory of a test's tree, so that its
/// files can fill it; unmounted on drop (lazily: a killed server's files
/// may still be closing).
struct SmallTmpfs {
    dir: std::path::PathBuf,
}

impl SmallTmpfs {
    fn new(dir: &Path, size: &str) -> Result<SmallTmpfs, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root (mount -t tmpfs)".into());
        }
        fs::create_dir_all(dir).unwrap();
        let dir_s = dir.to_str().unwrap();
        let o = run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "f3full",
                dir_s,
            ],
        );
        if !o.status.success() {
            return Err(format!(
                "mount -t tmpfs refused: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(SmallTmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills the file system to the last byte with a file; its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut f = fs::File::create(&path).unwrap();
        for chunk in [1 << 16, 4096, 512, 1] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", self.dir.to_str().unwrap()]);
    }
}

/// Finding 3, on a full disk: the database sits on a small tmpfs filled
/// to the brim. Failures still ban (the actions run), the failed record
/// is logged once with its cause (not once per ban), and the saved log
/// position stays before the lines whose bans are not recorded. Once
/// space returns, the bans are recorded and the position advances; a
/// kill -9 and a restart then find every ban, each banned once.
#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn full_disk_loses_no_ban() {
    crate::prereq::need(&[crate::prereq::Need::Root]);
    let tree = burst_tree();
    let disk = need!(
        SmallTmpfs::new(&tree.path("db"), "2m"),
        "full_disk_loses_no_ban"
    );
    let conf = fs::read_to_string(tree.conf().join("fail2ban.conf")).unwrap();
    tree.write_conf(
        "fail2ban.conf",
        &conf.replace("/f3.sqlite3", "/db/f3.sqlite3"),
    );
    let db = tree.path("db/f3.sqlite3");
    let log = tree.path("burst.log");
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    let mut s = Server::start(&tree);
    let mut ips = addresses(1);
    append(&log, &crate::server::fail_line(&ips[0]));
    wait_banned(&mut s, "burst", 1, WAIT_BANS);
    s.wait("the position is saved", |_| {
        saved_position(&db, "burst", &log) == size(&log)
    });
    let before = size(&log);
    let filler = disk.fill();
    let full_lines = || {
        tree.server_log()
            .lines()
            .filter(|l| l.contains("full"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    // Two bursts, the second once the first one's error is logged.
    for burst in [addresses(21)[1..].to_vec(), addresses(26)[21..].to_vec()] {
        append(
            &log,
            &burst
                .iter()
                .map(|ip| crate::server::fail_line(ip))
                .collect::<String>(),
        );
        ips.extend(burst);
        wait_banned(&mut s, "burst", ips.len(), WAIT_BANS);
        s.wait("the bans are applied", |_| marks(&tree).len() == ips.len());
        s.wait("the full disk is logged", |_| !full_lines().is_empty());
    }
    // Longer than a retry of the records.
    std::thread::sleep(Duration::from_secs(4));
    let full = full_lines();
    assert_eq!(full.len(), 1, "{full:#?}\n{}", s.report());
    assert!(full[0].contains("database or disk is full"), "{}", full[0]);
    assert_eq!(
        saved_position(&db, "burst", &log),
        before,
        "the position moved past unrecorded bans\n{}",
        s.report()
    );
    fs::remove_file(filler).unwrap();
    s.wait("the bans are recorded and the position saved", |_| {
        recorded(&db, "burst").len() == ips.len()
            && saved_position(&db, "burst", &log) == size(&log)
    });
    s.kill9();
    let mut s = Server::start(&tree);
    wait_banned(&mut s, "burst", ips.len(), WAIT_BANS);
    wait_applied(&mut s, &ips, WAIT_BANS);
    banned_once_each(&tree, &ips, &db, "burst");
    drop(s);
}

/// Longest wait for a few bans.
const WAIT_BANS: Duration = Duration::from_secs(20);
