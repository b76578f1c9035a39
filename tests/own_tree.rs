//! fail3ban's own configuration tree (config/ with the repository root's
//! filter.d, action.d and jail.d, installed together as /etc/fail3ban):
//! checked by fail3ban-client, its actions rendered for real bans, and the
//! firewall actions run in a network namespace of their own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fail3ban::action::{Action, BanInfo, Runner, ShellCommand};
use fail3ban::config::read_tree;

use crate::prereq::{need, Need, Netns};

const CLIENT: &str = env!("CARGO_BIN_EXE_fail3ban-client");

/// Every jail jail.conf defines.
fn all_jails() -> std::collections::BTreeSet<String> {
    crate::own_filters::jails(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/jail.conf"))
}

/// The parts of the tree in the repository: `config/` and the root's
/// directories, each installed under /etc/fail3ban by the package.
const PARTS: &[&str] = &["config/.", "filter.d", "action.d", "jail.d"];

/// The tree as the package installs it, assembled in `tmp`.
pub fn own_tree(tmp: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dst = tmp.join("fail3ban");
    std::fs::create_dir_all(&dst).unwrap();
    for part in PARTS {
        let st = Command::new("cp")
            .arg("-r")
            .arg(repo.join(part))
            .arg(&dst)
            .status()
            .unwrap();
        assert!(st.success(), "cp {part}");
    }
    dst
}

/// A copy of the tree with `jail_local`, and an empty log every jail reads.
pub fn tree_with(jail_local: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = own_tree(tmp.path());
    std::fs::write(tmp.path().join("empty.log"), "").unwrap();
    let text = jail_local.replace("@LOG@", tmp.path().join("empty.log").to_str().unwrap());
    std::fs::write(dst.join("jail.local"), text).unwrap();
    (tmp, dst)
}

/// A program's stdout and stderr, as one text.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn client(args: &[&str]) -> (bool, String) {
    let out = Command::new(CLIENT).args(args).output().unwrap();
    (out.status.success(), text(&out))
}

#[test]
fn shipped_tree_tests_ok() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = own_tree(tmp.path());
    let (ok, out) = client(&["-c", tree.to_str().unwrap(), "-t"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("OK: configuration test is successful"),
        "{out}"
    );
    // Only sshd is on out of the box, on the journal (Debian has no
    // auth.log without a syslog daemon).
    let (ok, out) = client(&["-c", tree.to_str().unwrap(), "-d"]);
    assert!(ok, "{out}");
    assert!(out.contains("['add', 'sshd', 'systemd']"), "{out}");
    assert_eq!(out.matches("['add', ").count(), 1, "{out}");
}

#[test]
fn every_jail_enabled_tests_ok() {
    let jails = all_jails();
    let mut local = String::from("[DEFAULT]\nbackend = auto\n");
    for j in &jails {
        local.push_str(&format!("[{j}]\nenabled = true\nlogpath = @LOG@\n"));
    }
    let (_tmp, dir) = tree_with(&local);
    let (ok, out) = client(&["-c", dir.to_str().unwrap(), "-t"]);
    assert!(ok, "{out}");
    let (ok, out) = client(&["-c", dir.to_str().unwrap(), "-d"]);
    assert!(ok, "{out}");
    for j in &jails {
        assert!(out.contains(&format!("['start', '{j}']")), "{j}: {out}");
    }
}

/// The own tree with every jail enabled starts, and `status` lists every
/// jail (issue 18). Each jail reads an empty file and bans through the
/// dummy action into the test's directory: nothing touches this host's
/// firewall or journal.
#[test]
fn every_jail_enabled_starts_and_status_lists_every_jail() {
    use crate::util::{Server, Tree};
    let jails = all_jails();
    let tree = Tree::new("");
    std::fs::remove_dir_all(tree.conf()).unwrap();
    std::fs::rename(own_tree(tree.dir()), tree.conf()).unwrap();
    std::fs::write(tree.path("empty.log"), "").unwrap();
    tree.write_conf(
        "fail3ban.local",
        "[Definition]\nloglevel = INFO\nlogtarget = @T@/server.log\nsocket = @T@/f3.sock\npidfile = @T@/f3.pid\ndbfile = @T@/f3.sqlite3\n",
    );
    let mut local = String::new();
    for j in &jails {
        local.push_str(&format!(
            "[{j}]\nenabled = true\nbackend = auto\nlogpath = @T@/empty.log\naction = dummy[target=@T@/dummy]\n"
        ));
    }
    tree.write_conf("jail.local", &local);
    let mut server = Server::start(&tree);
    let want = format!("Number of jail:\t{}", jails.len());
    server.wait("every jail started", |s| s.ok(&["status"]).contains(&want));
    let status = server.ok(&["status"]);
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("`- Jail list:\t"))
        .unwrap_or_else(|| panic!("no jail list in:\n{status}"));
    let listed: std::collections::BTreeSet<String> = list.split(", ").map(str::to_string).collect();
    assert_eq!(listed, jails, "{status}\n{}", tree.server_log());
    println!(
        "own tree: every jail enabled: {} jails running",
        listed.len()
    );
    server.stop();
}

/// Remembers commands; runs them after `prefix` (`ip netns exec <ns>`,
/// or nothing: on this host) when one is given.
pub(crate) struct Recorder {
    pub(crate) cmds: Mutex<Vec<ShellCommand>>,
    prefix: Option<Vec<String>>,
}

impl Recorder {
    /// Runs nothing: every command succeeds.
    pub(crate) fn recording() -> Arc<Recorder> {
        Recorder::with(None)
    }

    /// Runs each command in the network namespace `ns`.
    pub(crate) fn in_netns(ns: &str) -> Arc<Recorder> {
        Recorder::with(Some(vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            ns.into(),
        ]))
    }

    /// Runs each command on this host (for actions that only write files).
    pub(crate) fn here() -> Arc<Recorder> {
        Recorder::with(Some(Vec::new()))
    }

    fn with(prefix: Option<Vec<String>>) -> Arc<Recorder> {
        Arc::new(Recorder {
            cmds: Mutex::new(Vec::new()),
            prefix,
        })
    }
}

impl Runner for Recorder {
    fn run<'a>(
        &'a self,
        cmd: &'a ShellCommand,
        _timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        self.cmds.lock().unwrap().push(cmd.clone());
        Box::pin(async move {
            let Some(prefix) = &self.prefix else {
                return true;
            };
            let argv: Vec<&str> = prefix
                .iter()
                .map(String::as_str)
                .chain(["/bin/sh", "-c", &cmd.script])
                .collect();
            let out = Command::new(argv[0])
                .args(&argv[1..])
                .args(&cmd.args)
                .output()
                .unwrap();
            if !out.status.success() {
                eprintln!(
                    "command failed: {}\n{}",
                    cmd.script,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            out.status.success()
        })
    }
}

/// The `action` of jail sshd as the tree resolves it, with `runner`.
pub(crate) fn action(spec: &str, runner: Arc<Recorder>) -> (tempfile::TempDir, Action) {
    // Firewall actions get the jail's ports the way jail.conf's action_
    // passes them.
    let spec_full = if spec.contains('[') {
        spec.to_string()
    } else {
        format!("{spec}[port=\"%(port)s\", protocol=\"%(protocol)s\", chain=\"%(chain)s\"]")
    };
    let local = format!(
        "[sshd]\nenabled = true\nbackend = auto\nlogpath = @LOG@\nport = ssh,8080:8090\naction = {spec_full}\n"
    );
    let (tmp, dir) = tree_with(&local);
    let tree = read_tree(dir.to_str().unwrap(), false).unwrap();
    let name = spec.split('[').next().unwrap();
    let a = Action::from_stream("sshd", name, &tree.stream)
        .unwrap()
        .with_runner(runner)
        .with_ipv6(true);
    (tmp, a)
}

pub(crate) fn ban(ip: &str) -> BanInfo {
    let mut b = BanInfo::new(ip, 1_700_000_000.0);
    b.failures = 5;
    b.bantime = 600;
    b.matches = vec!["Failed password for $(reboot) from 192.0.2.7".into()];
    b
}

/// start, two bans, one unban, flush, stop: the commands each ran.
pub(crate) async fn lifecycle(a: &mut Action, rec: &Recorder) -> Vec<Vec<String>> {
    let mut steps = Vec::new();
    let take = || {
        let v: Vec<String> = rec
            .cmds
            .lock()
            .unwrap()
            .drain(..)
            .map(|c| c.script)
            .collect();
        v
    };
    a.start().await.unwrap();
    steps.push(take());
    a.ban(&ban("192.0.2.7")).await.unwrap();
    steps.push(take());
    a.ban(&ban("2001:db8::7")).await.unwrap();
    steps.push(take());
    a.unban(&ban("192.0.2.7")).await.unwrap();
    steps.push(take());
    a.stop().await.unwrap();
    steps.push(take());
    steps
}

/// What each action must run, by step, as substrings of the commands.
const RENDERED: &[(&str, &[&str])] = &[
    (
        "iptables-multiport",
        &[
            "iptables -w -I f3b-sshd 1 -s 192.0.2.7 -j REJECT --reject-with icmp-port-unreachable",
            "ip6tables -w -I f3b-sshd 1 -s 2001:db8::7 -j REJECT --reject-with icmp6-port-unreachable",
            "for chain in $(echo 'INPUT' | tr ',' ' '); do iptables -w -I \"$chain\" -p tcp -m multiport --dports ssh,8080:8090 -j f3b-sshd || exit 1; done",
            "iptables -w -D f3b-sshd -s 192.0.2.7 -j REJECT",
        ],
    ),
    (
        "iptables-allports",
        &["iptables -w -I \"$chain\" -p tcp -j f3b-sshd", "-s 192.0.2.7 -j REJECT"],
    ),
    (
        "iptables-ipset",
        &[
            "ipset -exist create f3b-sshd hash:ip timeout 0",
            "ipset -exist create f3b6-sshd hash:ip timeout 0 family inet6",
            "ipset -exist add f3b-sshd 192.0.2.7 timeout $(( 600 < 0 ? 0 : 600 ))",
            "ipset -exist del f3b-sshd 192.0.2.7",
        ],
    ),
    (
        "nftables-multiport",
        &[
            "nft add element inet f3b-table addr-set-sshd \\{ 192.0.2.7 \\}",
            "nft add element inet f3b-table addr6-set-sshd \\{ 2001:db8::7 \\}",
            "th dport \\{ $(echo 'ssh,8080:8090' | sed 's/:/-/g') \\} ip saddr @addr-set-sshd reject",
        ],
    ),
    (
        "nftables-allports",
        &["meta l4proto \\{ tcp \\} ip6 saddr @addr6-set-sshd reject"],
    ),
    (
        "route",
        &["ip route add unreachable 192.0.2.7", "ip route del unreachable 192.0.2.7"],
    ),
    ("dummy", &["echo \"ban 192.0.2.7 600\" >> /run/fail3ban/fail3ban.dummy"]),
    (
        "sendmail-whois-lines[dest=admin@example.com]",
        &["/usr/sbin/sendmail -f \"fail3ban\" \"admin@example.com\"", "\"${f2bV_matches}\"", "whois 192.0.2.7"],
    ),
    ("sendmail", &["banned 192.0.2.7", "after 5 attempts"]),
    ("sendmail-whois", &["whois 2001:db8::7"]),
];

#[tokio::test]
async fn actions_render_with_fail2ban_parameters() {
    check_rendered(RENDERED).await;
}

/// Each action of `table` through its life cycle (nothing run): every
/// substring it lists is in its commands, no tag is left and the log
/// line never reaches the script text.
pub(crate) async fn check_rendered(table: &[(&str, &[&str])]) {
    for (spec, want) in table {
        let rec = Recorder::recording();
        let (_tmp, mut a) = action(spec, rec.clone());
        let steps = lifecycle(&mut a, &rec).await;
        let all = steps.concat().join("\n");
        for w in *want {
            assert!(all.contains(w), "{spec}: {w:?} not in:\n{all}");
        }
        // Every tag resolved: no "<name>" left for the shell to choke on.
        let re = regex_tag(&all);
        assert!(re.is_none(), "{spec}: unresolved tag {re:?} in:\n{all}");
        // The log line never reaches the script text.
        assert!(!all.contains("$(reboot)"), "{spec}: {all}");
        println!("own actions: {spec}: {} commands", steps.concat().len());
    }
}

/// The first `<word>` left in `s`, if any (shell's `<<` and `< 0` are not
/// tags).
pub(crate) fn regex_tag(s: &str) -> Option<String> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c != b'<' {
            continue;
        }
        let rest = &s[i + 1..];
        let end = rest.find('>')?;
        let word = &rest[..end];
        if !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c))
            && !word.contains("fail3ban")
            && !word.contains('@')
        {
            return Some(word.to_string());
        }
    }
    None
}

/// The firewall actions for real, in a namespace of their own (never the
/// host's): after a ban the address is in the firewall, after the unban
/// it is gone, after stop nothing of the jail is left.
#[tokio::test]
#[ignore = "needs root, ip, iptables, ip6tables, nft, ipset and their kernel parts"]
async fn firewall_actions_ban_in_a_netns() {
    need(&[
        Need::Firewalls,
        Need::KernelIptables,
        Need::KernelNft,
        Need::KernelIpset,
    ]);
    let cases: &[(&str, &str, &str)] = &[
        (
            "iptables-multiport",
            "iptables -w -S f3b-sshd; ip6tables -w -S f3b-sshd",
            "iptables -w -S; ip6tables -w -S",
        ),
        (
            "iptables-allports",
            "iptables -w -S f3b-sshd; ip6tables -w -S f3b-sshd",
            "iptables -w -S; ip6tables -w -S",
        ),
        (
            "iptables-ipset",
            "ipset list f3b-sshd; ipset list f3b6-sshd",
            "ipset list -n; iptables -w -S",
        ),
        (
            "nftables-multiport",
            "nft list ruleset",
            "nft list ruleset | grep -v '^\\s*$'",
        ),
        (
            "nftables-allports",
            "nft list ruleset",
            "nft list ruleset | grep -v '^\\s*$'",
        ),
        (
            "route",
            "ip route show table all type unreachable",
            "ip route show table all type unreachable",
        ),
    ];
    let ns = Netns::new("f3b-own").expect("ip netns add");
    ban_cycle_in_netns(&ns, cases).await;
}

/// Each `(action, show, show_all)` of `cases` for real in `ns`: `show`
/// lists the jail's bans, `show_all` the whole firewall. After a ban the
/// address is in `show`, after the unban it is gone, after stop nothing of
/// the jail is left and (nftables aside, whose table stays) `show_all` is
/// as before.
pub(crate) async fn ban_cycle_in_netns(ns: &Netns, cases: &[(&str, &str, &str)]) {
    for (spec, show, show_all) in cases {
        let before = ns.sh(show_all);
        let rec = Recorder::in_netns(&ns.0);
        let (_tmp, mut a) = action(spec, rec.clone());
        a.start().await.unwrap();
        a.ban(&ban("192.0.2.7")).await.unwrap();
        a.ban(&ban("2001:db8::7")).await.unwrap();
        let banned = ns.sh(show);
        assert!(
            banned.contains("192.0.2.7"),
            "{spec}: not banned:\n{banned}"
        );
        assert!(
            banned.contains("2001:db8::7"),
            "{spec}: v6 not banned:\n{banned}"
        );
        a.unban(&ban("192.0.2.7")).await.unwrap();
        let after = ns.sh(show);
        assert!(
            !after.contains("192.0.2.7"),
            "{spec}: still banned:\n{after}"
        );
        assert!(after.contains("2001:db8::7"), "{spec}: v6 lost:\n{after}");
        if !a.has_flush() {
            // Without actionflush, the server unbans each ban before stop.
            a.unban(&ban("2001:db8::7")).await.unwrap();
        }
        a.stop().await.unwrap();
        let left = ns.sh(show_all);
        assert!(
            !left.contains("2001:db8::7")
                && !left.contains("f3b-sshd")
                && !left.contains("addr-set-sshd"),
            "{spec}: left behind:\n{left}"
        );
        if !spec.starts_with("nftables") {
            assert_eq!(before, left, "{spec}: firewall not as before");
        }
        println!("own actions: {spec}: banned, unbanned and stopped for real in a netns");
    }
}

/// `chain = INPUT,FORWARD` (fail2ban 1.1.1's several chains): the jail's
/// traffic is sent to its rules from each chain, for real in a namespace,
/// and stop leaves the firewall as it was.
#[tokio::test]
#[ignore = "needs root, ip, iptables, ip6tables, nft, ipset and their kernel parts"]
async fn iptables_chain_list_jumps_from_each_chain_in_a_netns() {
    need(&[Need::Firewalls, Need::KernelIptables, Need::KernelIpset]);
    let ns = Netns::new("f3b-chains").expect("ip netns add");
    let show_all = "iptables -w -S; ip6tables -w -S; ipset list -n";
    for (name, jump) in [
        ("iptables-multiport", "-j f3b-sshd"),
        ("iptables-allports", "-j f3b-sshd"),
        ("iptables-ipset", "--match-set f3b-sshd src"),
    ] {
        let before = ns.sh(show_all);
        let rec = Recorder::in_netns(&ns.0);
        let spec = format!("{name}[port=\"ssh\", protocol=\"tcp\", chain=\"INPUT,FORWARD\"]");
        let (_tmp, mut a) = action(&spec, rec.clone());
        a.start().await.unwrap();
        a.ban(&ban("192.0.2.7")).await.unwrap();
        let rules = ns.sh("iptables -w -S INPUT; iptables -w -S FORWARD");
        for chain in ["INPUT", "FORWARD"] {
            let from = format!("-A {chain} ");
            assert!(
                rules
                    .lines()
                    .any(|l| l.starts_with(&from) && l.contains(jump)),
                "{name}: no jump from {chain}:\n{rules}"
            );
        }
        let banned = ns.sh("iptables -w -S f3b-sshd 2>/dev/null; ipset list f3b-sshd 2>/dev/null");
        assert!(
            banned.contains("192.0.2.7"),
            "{name}: not banned:\n{banned}"
        );
        a.unban(&ban("192.0.2.7")).await.unwrap();
        a.stop().await.unwrap();
        assert_eq!(before, ns.sh(show_all), "{name}: firewall not as before");
        println!("own actions: {name} with chain = INPUT,FORWARD: for real in a netns");
    }
}

/// The apache-fakegooglebot jail's ignorecommand, which the own tree ships
/// as fail2ban's does (filter.d/ignorecommands/apache-fakegooglebot): an
/// address is Google's only if its reverse name is under googlebot.com or
/// google.com and that name resolves back to it. Its lookups go through
/// `getent`, here a stand-in on PATH that answers from a table, so that no
/// query leaves the machine.
#[test]
fn fakegooglebot_ignorecommand_trusts_only_names_that_resolve_back() {
    use std::os::unix::fs::PermissionsExt;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("filter.d/ignorecommands/apache-fakegooglebot");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "the package installs it executable");
    let bin = tempfile::tempdir().unwrap();
    let getent = bin.path().join("getent");
    // "hosts ADDR" is the reverse lookup, "ahosts NAME" the forward one.
    std::fs::write(
        &getent,
        r#"#!/bin/sh
case "$1 $2" in
"hosts 192.0.2.10") echo "192.0.2.10      crawl-192-0-2-10.googlebot.com" ;;
"ahosts crawl-192-0-2-10.googlebot.com") printf '192.0.2.10 STREAM crawl-192-0-2-10.googlebot.com\n192.0.2.10 DGRAM\n' ;;
"hosts 2001:db8::10") echo "2001:db8::10    rate-limited-proxy.google.com" ;;
"ahosts rate-limited-proxy.google.com") echo "2001:db8::10 STREAM rate-limited-proxy.google.com" ;;
"hosts 192.0.2.12") echo "192.0.2.12      liar.googlebot.com" ;;
"ahosts liar.googlebot.com") echo "198.51.100.13 STREAM liar.googlebot.com" ;;
"hosts 192.0.2.14") echo "192.0.2.14      crawl.googlebot.com.example.net" ;;
"ahosts crawl.googlebot.com.example.net") echo "192.0.2.14 STREAM crawl.googlebot.com.example.net" ;;
*) exit 2 ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&getent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let status = |args: &[&str]| {
        Command::new(&script)
            .args(args)
            .env("PATH", &path)
            .output()
            .unwrap()
            .status
            .code()
    };
    // Google's, by name and back.
    assert_eq!(status(&["192.0.2.10"]), Some(0));
    assert_eq!(status(&["2001:db8::10", "5"]), Some(0));
    // A googlebot.com name whose forward lookup names another address.
    assert_eq!(status(&["192.0.2.12"]), Some(1));
    // A name that only contains googlebot.com.
    assert_eq!(status(&["192.0.2.14"]), Some(1));
    // No reverse name at all.
    assert_eq!(status(&["203.0.113.7"]), Some(1));
    // Not an address, not a timeout, too many arguments.
    assert_eq!(status(&["192.0.2.10;id"]), Some(2));
    assert_eq!(status(&["192.0.2.10", "5s"]), Some(2));
    assert_eq!(status(&["192.0.2.10", "5", "x"]), Some(2));
}
