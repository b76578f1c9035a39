//! The own tree's actions beyond the first firewalls (issue 18): the rest
//! of the iptables family, ufw, firewalld, hosts.deny, apf, shorewall,
//! each rendered and, where a firewall can run here, run for real in a
//! namespace of its own; and jails that name one of fail2ban's Python
//! actions, which fail3ban does not run.

use crate::own_tree::{action, ban, ban_cycle_in_netns, check_rendered, Recorder};
use crate::prereq::{need, Need, Netns};
use crate::util::{new_log, Server, Tree};

/// What each action must run, by step, as substrings of its commands.
const RENDERED: &[(&str, &[&str])] = &[
    (
        "iptables-new",
        &[
            "iptables -w -I \"$chain\" -m state --state NEW -p tcp -m multiport --dports ssh,8080:8090 -j f3b-sshd",
            "iptables -w -I f3b-sshd 1 -s 192.0.2.7 -j REJECT",
            "ip6tables -w -I f3b-sshd 1 -s 2001:db8::7 -j REJECT --reject-with icmp6-port-unreachable",
        ],
    ),
    (
        "iptables-multiport-log",
        &[
            "iptables -w -N f3b-sshd-log",
            "-j LOG --log-prefix \"$(expr 'f3b-sshd' : '\\(.\\{1,23\\}\\)'):DROP \" --log-level warning",
            "iptables -w -I f3b-sshd 1 -s 192.0.2.7 -j f3b-sshd-log",
            "iptables -w -D f3b-sshd -s 192.0.2.7 -j f3b-sshd-log",
            "iptables -w -X f3b-sshd-log",
        ],
    ),
    (
        "iptables-xt_recent-echo",
        &[
            "-m recent --update --seconds 3600 --name f3b-sshd -j REJECT",
            "echo +192.0.2.7 > /proc/net/xt_recent/f3b-sshd",
            "echo +2001:db8::7 > /proc/net/xt_recent/f3b-sshd6",
            "echo -192.0.2.7 > /proc/net/xt_recent/f3b-sshd",
            "echo / > /proc/net/xt_recent/f3b-sshd6",
        ],
    ),
    (
        "iptables-ipset-proto4",
        &[
            "ipset -exist create f3b-sshd hash:ip timeout 0  maxelem 65536",
            "ipset -exist add f3b-sshd 192.0.2.7 timeout 0",
            "ipset -exist del f3b-sshd 192.0.2.7",
        ],
    ),
    (
        "iptables-ipset-proto6",
        &[
            "-p tcp -m multiport --dports ssh,8080:8090 -m set --match-set f3b-sshd src",
            "ipset -exist add f3b6-sshd 2001:db8::7 timeout $(( 600 < 0 ? 0 : 600 ))",
        ],
    ),
    (
        "iptables-ipset-proto6-allports",
        &["iptables -w -I \"$chain\" -p tcp -m set --match-set f3b-sshd src -j REJECT"],
    ),
    (
        "symbiosis-blacklist-allports",
        &[
            "echo 'all' >| /etc/symbiosis/firewall/blacklist.d/192.0.2.7.auto",
            "iptables -w -I blacklist 1 -s 192.0.2.7 -j DROP",
            "ip6tables -w -I blacklist 1 -s 2001:db8::7 -j DROP",
            "rm -f /etc/symbiosis/firewall/blacklist.d/192.0.2.7.auto",
        ],
    ),
    (
        "hostsdeny",
        &[
            "printf '%s\\n' 'ALL: 192.0.2.7' >> /etc/hosts.deny",
            "printf '%s\\n' 'ALL: [2001:db8::7]' >> /etc/hosts.deny",
            "sed -i \"/^ALL: $IP\\$/d\" /etc/hosts.deny",
        ],
    ),
    (
        "ufw",
        &[
            "ufw prepend reject from 192.0.2.7 to any comment \"by fail3ban after 5 attempts against sshd\"",
            "ufw delete reject from 192.0.2.7 to any",
        ],
    ),
    (
        "firewallcmd-new",
        &[
            "firewall-cmd --direct --add-chain ipv4 filter f3b-sshd",
            "firewall-cmd --direct --add-rule ipv4 filter f3b-sshd 1000 -j RETURN",
            "firewall-cmd --direct --add-rule ipv4 filter INPUT_direct 0 -m state --state NEW -p tcp -m multiport --dports ssh,8080:8090 -j f3b-sshd",
            "firewall-cmd --direct --add-rule ipv4 filter f3b-sshd 0 -s 192.0.2.7 -j REJECT --reject-with icmp-port-unreachable",
            "firewall-cmd --direct --add-rule ipv6 filter f3b-sshd 0 -s 2001:db8::7 -j REJECT --reject-with icmp6-port-unreachable",
            "firewall-cmd --direct --remove-chain ipv4 filter f3b-sshd",
        ],
    ),
    (
        "firewallcmd-multiport",
        &["firewall-cmd --direct --add-rule ipv4 filter INPUT_direct 0 -m conntrack --ctstate NEW -p tcp -m multiport --dports ssh,8080:8090 -j f3b-sshd"],
    ),
    (
        "firewallcmd-allports",
        &[
            "firewall-cmd --direct --add-rule ipv6 filter INPUT_direct 0  -j f3b-sshd",
            "firewall-cmd --direct --remove-rule ipv4 filter f3b-sshd 0 -s 192.0.2.7 -j REJECT --reject-with icmp-port-unreachable",
        ],
    ),
    (
        "firewallcmd-ipset",
        &[
            "ipset -exist create f3b-sshd hash:ip timeout 0 maxelem 65536",
            "ipset -exist create f3b-sshd6 hash:ip timeout 0 maxelem 65536 family inet6",
            "firewall-cmd --direct --add-rule ipv4 filter INPUT_direct 0 -p tcp -m multiport --dports ssh,8080:8090 -m set --match-set f3b-sshd src -j REJECT",
            "ipset -exist add f3b-sshd6 2001:db8::7 timeout 0",
            "ipset -exist del f3b-sshd 192.0.2.7",
        ],
    ),
    (
        "firewallcmd-ipset[ipsettype=firewalld, actiontype=\"<allports>\", ipsettime=\"<timeout-bantime>\"]",
        &[
            "firewall-cmd --direct --new-ipset=f3b-sshd6 --type=hash:ip --option=timeout=0 --option=maxelem=65536 --option=family=inet6",
            "firewall-cmd --direct --add-rule ipv4 filter INPUT_direct 0 -p tcp -m set --match-set f3b-sshd src",
            "firewall-cmd --ipset=f3b-sshd --add-entry=192.0.2.7",
            "firewall-cmd --direct --delete-ipset=f3b-sshd",
        ],
    ),
    (
        "firewallcmd-rich-rules",
        &[
            "for p in $(echo 'ssh,8080:8090' | tr ',:' ' -'); do firewall-cmd --add-rich-rule=\"rule family='ipv4' source address='192.0.2.7' port port='$p' protocol='tcp' reject type='icmp-port-unreachable'\" || exit 1; done",
            "firewall-cmd --remove-rich-rule=\"rule family='ipv4' source address='192.0.2.7' port port='$p' protocol='tcp' reject type='icmp-port-unreachable'\"",
            "rule family='ipv6' source address='2001:db8::7'",
        ],
    ),
    (
        "firewallcmd-rich-logging",
        &["protocol='tcp' log prefix='f3b-sshd' level='info' limit value='1/m' reject type='icmp6-port-unreachable'"],
    ),
    (
        "apf",
        &["apf --deny 192.0.2.7 \"banned by fail3ban sshd\"", "apf --remove 192.0.2.7"],
    ),
    (
        "shorewall",
        &["shorewall reject 192.0.2.7", "shorewall6 reject 2001:db8::7", "shorewall allow 192.0.2.7"],
    ),
    (
        "shorewall-ipset-proto6",
        &[
            "ipset -quiet list -name f3b-sshd >/dev/null 2>&1 || ipset -quiet -exist create f3b-sshd hash:ip timeout 0 maxelem 65536",
            "ipset -exist add f3b-sshd6 2001:db8::7 timeout 0",
            "ipset -exist del f3b-sshd 192.0.2.7",
            "ipset flush f3b-sshd",
        ],
    ),
];

#[tokio::test]
async fn own_actions_render_with_fail2ban_parameters() {
    check_rendered(RENDERED).await;
}

/// The iptables family for real in a namespace of its own: ban, unban,
/// stop, and nothing of the jail left.
#[tokio::test]
#[ignore = "needs root, ip, iptables, ip6tables, ipset and their kernel parts (xt_recent too)"]
async fn iptables_family_bans_in_a_netns() {
    need(&[
        Need::Firewalls,
        Need::KernelIptables,
        Need::KernelIpset,
        Need::KernelRecent,
    ]);
    let rules = "iptables -w -S; ip6tables -w -S";
    // xt_recent prints IPv6 addresses in full.
    let recent = "cat /proc/net/xt_recent/f3b-sshd; \
                  grep -q '^src=2001:0db8:0000:0000:0000:0000:0000:0007 ' /proc/net/xt_recent/f3b-sshd6 && echo 2001:db8::7";
    let recent_all = "iptables -w -S; ip6tables -w -S; ls /proc/net/xt_recent";
    let cases: &[(&str, &str, &str)] = &[
        (
            "iptables-new",
            "iptables -w -S f3b-sshd; ip6tables -w -S f3b-sshd",
            rules,
        ),
        (
            "iptables-multiport-log",
            "iptables -w -S f3b-sshd; ip6tables -w -S f3b-sshd",
            rules,
        ),
        ("iptables-xt_recent-echo", recent, recent_all),
        (
            "iptables-ipset-proto4",
            "ipset list f3b-sshd; ipset list f3b6-sshd",
            "ipset list -n; iptables -w -S; ip6tables -w -S",
        ),
        (
            "iptables-ipset-proto6",
            "ipset list f3b-sshd; ipset list f3b6-sshd",
            "ipset list -n; iptables -w -S; ip6tables -w -S",
        ),
        (
            "iptables-ipset-proto6-allports",
            "ipset list f3b-sshd; ipset list f3b6-sshd",
            "ipset list -n; iptables -w -S; ip6tables -w -S",
        ),
    ];
    let ns = Netns::new("f3b-act").expect("ip netns add");
    ban_cycle_in_netns(&ns, cases).await;
    // The jump rules really are what the files say: NEW only, and the log
    // chain in front of the block.
    let rec = Recorder::in_netns(&ns.0);
    let (_tmp, mut a) = action("iptables-new", rec.clone());
    a.ban(&ban("192.0.2.7")).await.unwrap();
    let input = ns.sh("iptables -w -S INPUT");
    assert!(
        input.contains("-m state --state NEW") && input.contains("-j f3b-sshd"),
        "{input}"
    );
    a.unban(&ban("192.0.2.7")).await.unwrap();
    a.stop().await.unwrap();
    let (_tmp, mut a) = action("iptables-multiport-log", rec.clone());
    a.ban(&ban("192.0.2.7")).await.unwrap();
    let log = ns.sh("iptables -w -S f3b-sshd-log");
    assert!(
        log.contains("-j LOG --log-prefix \"f3b-sshd:DROP \""),
        "{log}"
    );
    assert!(log.contains("-j REJECT"), "{log}");
    a.unban(&ban("192.0.2.7")).await.unwrap();
    a.stop().await.unwrap();
}

/// Symbiosis's chain `blacklist` (made here as Symbiosis makes it) gets
/// the ban, and its blacklist directory the address's file; the unban
/// takes both away.
#[tokio::test]
#[ignore = "needs root, ip, iptables, ip6tables and the kernel's iptables"]
async fn symbiosis_blacklist_bans_in_a_netns() {
    need(&[Need::Firewalls, Need::KernelIptables]);
    let ns = Netns::new("f3b-sym").expect("ip netns add");
    ns.sh("iptables -w -N blacklist; ip6tables -w -N blacklist");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // Output only while both the rule and the file are there.
    let show = format!(
        "for ip in 192.0.2.7 2001:db8::7; do test -f {d}/$ip.auto && \
         {{ iptables -w -S blacklist; ip6tables -w -S blacklist; }} | grep -q \" $ip/\" && echo $ip; done"
    );
    let spec = format!("symbiosis-blacklist-allports[blacklistdir=\"{d}\"]");
    let cases = [(
        spec.as_str(),
        show.as_str(),
        "iptables -w -S; ip6tables -w -S",
    )];
    ban_cycle_in_netns(&ns, &cases).await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// hosts.deny for real, on a file of the test's: a ban adds its line, an
/// unban removes that line and leaves the others (also one that only
/// looks alike: 192.0.2.70, or the address where a dot would match any
/// character).
#[tokio::test]
async fn hostsdeny_bans_in_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("hosts.deny");
    let others = "# local rules\nALL: 192.0.2.70\nALL: 192x0x2x7\nsshd: 192.0.2.7\n";
    std::fs::write(&file, others).unwrap();
    let rec = Recorder::here();
    let spec = format!("hostsdeny[file=\"{}\"]", file.display());
    let (_tmp, mut a) = action(&spec, rec.clone());
    let read = || std::fs::read_to_string(&file).unwrap();
    a.start().await.unwrap();
    a.ban(&ban("192.0.2.7")).await.unwrap();
    a.ban(&ban("2001:db8::7")).await.unwrap();
    assert_eq!(
        read(),
        format!("{others}ALL: 192.0.2.7\nALL: [2001:db8::7]\n")
    );
    a.unban(&ban("192.0.2.7")).await.unwrap();
    assert_eq!(read(), format!("{others}ALL: [2001:db8::7]\n"));
    a.unban(&ban("2001:db8::7")).await.unwrap();
    a.stop().await.unwrap();
    assert_eq!(read(), others);
}

/// A test `.py` action, as fail2ban's action.d/smtp.py is one: Python,
/// which fail3ban does not run.
const PY_ACTION: &str = "from fail2ban.server.actions import ActionBase\n\
class TestAction(ActionBase):\n    def ban(self, aInfo):\n        pass\n\
Action = TestAction\n";

/// A jail that names a Python action, as `smtp.py[...]` or as `smtp`
/// where only action.d/smtp.py exists, fails: `-t` names the file and
/// the native actions to use instead, and a real server does not run the
/// jail (another jail beside it runs).
#[test]
fn py_action_fails_with_a_clear_error() {
    let tree = Tree::new(
        "[good]
enabled = true
filter = test
logpath = @T@/a.log

[bypath]
enabled = true
filter = test
logpath = @T@/a.log
action = smtp.py[host=\"localhost:25\", dest=root]

[byname]
enabled = true
filter = test
logpath = @T@/a.log
action = smtp
",
    );
    tree.write_conf("action.d/smtp.py", PY_ACTION);
    new_log(tree.path("a.log"));
    let out = std::process::Command::new(crate::util::CLIENT)
        .arg("-c")
        .arg(tree.conf())
        .arg("-t")
        .output()
        .unwrap();
    let said = crate::own_tree::text(&out);
    assert!(!out.status.success(), "-t passed:\n{said}");
    for jail in ["bypath", "byname"] {
        let line = said
            .lines()
            .find(|l| l.contains(&format!("[{jail}]")))
            .unwrap_or_else(|| panic!("{jail} not named:\n{said}"));
        assert!(line.contains("jail.conf"), "{jail}: {line}");
        assert!(line.contains("action.d/smtp.py"), "{jail}: {line}");
        assert!(line.contains("Python"), "{jail}: {line}");
        assert!(line.contains("use the action smtp "), "{jail}: {line}");
    }
    let mut s = Server::start(&tree);
    let status = s.ok(&["status"]);
    assert!(status.contains("good"), "{status}");
    for jail in ["bypath", "byname"] {
        assert!(
            !s.client(&["status", jail]).0,
            "{jail} runs:\n{}",
            s.report()
        );
    }
    let log = tree.server_log();
    assert!(log.contains("action.d/smtp.py"), "{log}");
    s.stop();
}

/// shorewall-ipset-proto6 for real in a namespace: the sets Shorewall's
/// rules would name get the bans and lose them; stop empties them (they
/// stay: Shorewall holds on to them).
#[tokio::test]
#[ignore = "needs root, ip, ipset and the kernel's ip_set"]
async fn shorewall_ipset_fills_its_sets_in_a_netns() {
    need(&[Need::Firewalls, Need::KernelIpset]);
    let ns = Netns::new("f3b-shw").expect("ip netns add");
    let rec = Recorder::in_netns(&ns.0);
    let (_tmp, mut a) = action("shorewall-ipset-proto6", rec.clone());
    let sets = "ipset list f3b-sshd; ipset list f3b-sshd6";
    a.start().await.unwrap();
    a.ban(&ban("192.0.2.7")).await.unwrap();
    a.ban(&ban("2001:db8::7")).await.unwrap();
    let banned = ns.sh(sets);
    assert!(
        banned.contains("192.0.2.7") && banned.contains("2001:db8::7"),
        "{banned}"
    );
    a.unban(&ban("192.0.2.7")).await.unwrap();
    let after = ns.sh(sets);
    assert!(
        !after.contains("192.0.2.7") && after.contains("2001:db8::7"),
        "{after}"
    );
    a.stop().await.unwrap();
    let left = ns.sh(sets);
    assert!(!left.contains("2001:db8::7"), "{left}");
    assert_eq!(ns.sh("ipset list -n"), "f3b-sshd\nf3b-sshd6\n");
}

/// A private copy of ufw's configuration and a wrapper that runs ufw on
/// it: each run in a mount namespace of its own (unshare -m, private, so
/// that the bind mounts over /etc/ufw and /etc/default/ufw never reach
/// the host's), in whatever network namespace it is started in.
struct UfwCopy {
    dir: tempfile::TempDir,
}

impl UfwCopy {
    fn new() -> UfwCopy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let st = std::process::Command::new("cp")
            .args(["-a", "/etc/ufw"])
            .arg(d.join("etc-ufw"))
            .status()
            .unwrap();
        assert!(st.success(), "cp -a /etc/ufw");
        // No sysctl settings: the test's namespace needs none.
        std::fs::write(d.join("sysctl.conf"), "").unwrap();
        let defaults = std::fs::read_to_string("/etc/default/ufw").unwrap();
        let defaults: String = defaults
            .lines()
            .map(|l| match l.starts_with("IPT_SYSCTL=") {
                true => format!("IPT_SYSCTL={}\n", d.join("sysctl.conf").display()),
                false => format!("{l}\n"),
            })
            .collect();
        std::fs::write(d.join("default-ufw"), defaults).unwrap();
        let wrapper = format!(
            "#!/bin/sh\nexec unshare -m --propagation private /bin/sh -c \
             'mount --bind {d}/etc-ufw /etc/ufw && mount --bind {d}/default-ufw /etc/default/ufw && exec ufw \"$@\"' ufw \"$@\"\n",
            d = d.display()
        );
        let w = d.join("ufw");
        std::fs::write(&w, wrapper).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
        UfwCopy { dir }
    }

    fn ufw(&self) -> String {
        self.dir.path().join("ufw").display().to_string()
    }
}

/// ufw for real: enabled in a network namespace on its own copy of the
/// configuration, a ban is a rule in ufw's status and its chains, the
/// unban takes it away, and the host's /etc/ufw is as it was.
#[tokio::test]
#[ignore = "needs root, ip, ufw, unshare, mount and the kernel's iptables"]
async fn ufw_bans_in_a_netns() {
    need(&[Need::Ufw, Need::KernelIptables]);
    let host_rules = std::fs::read("/etc/ufw/user.rules").unwrap();
    let copy = UfwCopy::new();
    let ufw = copy.ufw();
    let ns = Netns::new("f3b-ufw").expect("ip netns add");
    let out = ns.run(&[&ufw, "--force", "enable"]);
    assert!(out.status.success(), "{}", crate::own_tree::text(&out));
    let show = format!("{ufw} status | grep REJECT; iptables -w -S ufw-user-input; ip6tables -w -S ufw6-user-input");
    // ufw's own chains settle on their own after `enable`: the jail's
    // rules are in its user chains.
    let show_all = format!(
        "{ufw} status verbose; iptables -w -S ufw-user-input; ip6tables -w -S ufw6-user-input"
    );
    let spec = format!("ufw[ufw=\"{ufw}\"]");
    ban_cycle_in_netns(&ns, &[(spec.as_str(), show.as_str(), show_all.as_str())]).await;
    // What ufw wrote went to the copy, never to the host's.
    let rules = std::fs::read_to_string(copy.dir.path().join("etc-ufw/user.rules")).unwrap();
    assert!(
        rules.contains("### tuple ###") || rules.contains("*filter"),
        "{rules}"
    );
    assert_eq!(std::fs::read("/etc/ufw/user.rules").unwrap(), host_rules);
}

/// firewalld in a network namespace of its own, on a D-Bus system bus of
/// its own (a dbus-daemon with the test's configuration), its
/// configuration a private copy bind-mounted over /etc/firewalld in a
/// private mount namespace. Both daemons are ended when it is dropped.
struct Firewalld {
    child: std::process::Child,
    dir: tempfile::TempDir,
    ns: Netns,
}

impl Firewalld {
    fn start() -> Firewalld {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let st = std::process::Command::new("cp")
            .args(["-a", "/etc/firewalld"])
            .arg(dir.path().join("etc"))
            .status()
            .unwrap();
        assert!(st.success(), "cp -a /etc/firewalld");
        std::fs::write(
            dir.path().join("bus.conf"),
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                 <busconfig><type>system</type><listen>unix:path={d}/bus</listen><auth>EXTERNAL</auth>\
                 <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\
                 <allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>\n"
            ),
        )
        .unwrap();
        let script = format!(
            "mount --bind {d}/etc /etc/firewalld\n\
             dbus-daemon --config-file={d}/bus.conf --fork\n\
             export DBUS_SYSTEM_BUS_ADDRESS=unix:path={d}/bus\n\
             exec firewalld --nofork --nopid --log-target file --log-file {d}/firewalld.log\n"
        );
        let ns = Netns::new("f3b-fwd").expect("ip netns add");
        let child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "unshare",
                "-m",
                "--propagation",
                "private",
            ])
            .args(["/bin/sh", "-ec", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("out")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
            .spawn()
            .unwrap();
        let fw = Firewalld { child, dir, ns };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while fw.ns.sh(&format!("{} --state 2>&1", fw.cmd())).trim() != "running" {
            assert!(
                std::time::Instant::now() < deadline,
                "firewalld did not come up:\n{}",
                fw.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        fw
    }

    /// firewall-cmd on this firewalld's bus.
    fn cmd(&self) -> String {
        format!(
            "env DBUS_SYSTEM_BUS_ADDRESS=unix:path={}/bus firewall-cmd",
            self.dir.path().display()
        )
    }

    fn log(&self) -> String {
        ["out", "err", "firewalld.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        // Every process in the namespace is this test's: firewalld and
        // its dbus-daemon.
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", &self.ns.0])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            // SAFETY: kill(2) of a process of this test's namespace.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// The firewallcmd actions for real against a running firewalld: ban,
/// unban, stop, and nothing of the jail left in firewalld or the kernel.
#[tokio::test]
#[ignore = "needs root, ip, firewalld, firewall-cmd, dbus-daemon, unshare, mount and the kernel's iptables and ip_set"]
async fn firewallcmd_actions_ban_in_a_netns() {
    need(&[Need::Firewalld, Need::KernelIptables, Need::KernelIpset]);
    let fw = Firewalld::start();
    let cmd = fw.cmd();
    let rules = "iptables -w -S; ip6tables -w -S";
    let chain = "iptables -w -S f3b-sshd; ip6tables -w -S f3b-sshd";
    let sets = "ipset list f3b-sshd; ipset list f3b-sshd6";
    let sets_all = "ipset list -n; iptables -w -S; ip6tables -w -S";
    let rich = format!("{cmd} --list-rich-rules");
    let cases: Vec<(String, &str, &str)> = vec![
        ("firewallcmd-new".into(), chain, rules),
        ("firewallcmd-multiport".into(), chain, rules),
        ("firewallcmd-allports".into(), chain, rules),
        ("firewallcmd-ipset".into(), sets, sets_all),
        ("firewallcmd-rich-rules".into(), &rich, &rich),
        ("firewallcmd-rich-logging".into(), &rich, &rich),
    ];
    let cases: Vec<(String, &str, &str)> = cases
        .into_iter()
        .map(|(a, show, all)| {
            (
                format!("{a}[port=\"ssh,8080:8090\", protocol=\"tcp\", firewallcmd=\"{cmd}\"]"),
                show,
                all,
            )
        })
        .collect();
    let cases: Vec<(&str, &str, &str)> =
        cases.iter().map(|(a, s, l)| (a.as_str(), *s, *l)).collect();
    ban_cycle_in_netns(&fw.ns, &cases).await;
    assert!(!fw.log().contains("ERROR"), "{}", fw.log());
}

// Reporting and remote-blocking actions (issue 18, rep9): rendered, and
// run for real against stand-ins on this host (a loopback HTTP server,
// scripts in place of apprise, nsupdate and ssh).

/// What each reporting action must run, as substrings of its commands.
const RENDERED_REPORTING: &[(&str, &[&str])] = &[
    (
        "abuseipdb[abuseipdb_apikey=k1, abuseipdb_category=\"18,22\"]",
        &[
            "comment=$(printf '%.1000s\\n...' \"${f2bV_matches}\")",
            "curl -sSf \"https://api.abuseipdb.com/api/v2/report\" -H \"Accept: application/json\" -H \"Key: k1\"",
            "--data-urlencode \"ip=2001:db8::7\" --data-urlencode \"categories=18,22\"",
        ],
    ),
    (
        "cloudflare[cfuser=me@example.com, cftoken=k1]",
        &[
            "-H \"X-Auth-Email: me@example.com\" -H \"X-Auth-Key: k1\"",
            "{\"mode\":\"block\",\"configuration\":{\"target\":\"ip\",\"value\":\"192.0.2.7\"},\"notes\":\"Fail2Ban sshd\"}",
            "{\"target\":\"ip6\",\"value\":\"2001:db8::7\"}",
            "--data-urlencode \"configuration_value=192.0.2.7\" --data-urlencode \"notes=Fail2Ban sshd\"",
            "\"https://api.cloudflare.com/client/v4/user/firewall/access_rules/rules/$id\"",
        ],
    ),
    (
        "cloudflare-token[cfzone=z1, cftoken=k1]",
        &[
            "-H \"Authorization: Bearer k1\"",
            "\"https://api.cloudflare.com/client/v4/zones/z1/firewall/access_rules/rules\"",
            "{\"mode\":\"block\",\"configuration\":{\"target\":\"ip6\",\"value\":\"2001:db8::7\"},\"notes\":\"Fail2Ban sshd\"}",
            "--data-urlencode \"configuration.value=192.0.2.7\"",
        ],
    ),
    (
        "ipthreat[ipthreat_apikey=k1]",
        &[
            "-H \"X-API-KEY: k1\"",
            "{\\\"ip\\\":\\\"192.0.2.7\\\",\\\"flags\\\":\\\"8\\\",\\\"system\\\":\\\"sshd\\\"",
        ],
    ),
    (
        "mynetwatchman[mnwlogin=me@example.com, mnwpass=pw, port=22]",
        &[
            "printf %s \"me@example.com\" | od -An -v -tx1",
            "date -u -d \"@1700000000.0\" +%Y-%m-%d+%H:%M:%S",
            "\"http://mynetwatchman.com/insertwebreport.asp?AT=2&AV=0&AgentEmail=$login&AgentPassword=$pass&AttackerIP=192.0.2.7&SrcPort=0&ProtocolID=$proto&DestPort=22&AttackCount=5&VictimIP=$(ip -4",
            "> \"/run/fail3ban/tmp-mynetwatchman.out\"",
        ],
    ),
    (
        "netscaler[ns_host=ns.example.com, ns_auth=dTpw, ns_dataset=banned]",
        &[
            "curl -sSf -k -H \"Authorization: Basic dTpw\" -o /dev/null \"https://ns.example.com/nitro/v1/config\"",
            "-X PUT -d '{\"policydataset_value_binding\":{\"name\":\"banned\",\"value\":\"2001:db8::7\"}}' \"https://ns.example.com/nitro/v1/config/\"",
            "-X DELETE \"https://ns.example.com/nitro/v1/config/policydataset_value_binding/banned?args=value:192.0.2.7\"",
        ],
    ),
    (
        "apprise",
        &[
            "| apprise -c \"/etc/fail3ban/apprise.conf\" -t \"[fail3ban] sshd: started on $(uname -n)\"",
            "printf %s \"The address 192.0.2.7 has been banned by fail3ban after 5 attempts against sshd.\" | apprise -c \"/etc/fail3ban/apprise.conf\" -n warning",
            "stopped on $(uname -n)",
        ],
    ),
    (
        "nsupdate[domain=dnsbl.example.com, keyfile=/etc/k.key]",
        &[
            "\"7.2.0.192.dnsbl.example.com\" \"7.2.0.192.dnsbl.example.com\" \"60\" \"Your IP has been banned\" | /usr/bin/nsupdate -k \"/etc/k.key\"",
            "\"7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.dnsbl.example.com\"",
            "printf 'update delete %s\\nsend\\n' \"7.2.0.192.dnsbl.example.com\"",
        ],
    ),
    (
        "nginx-block-map",
        &[
            "touch '/etc/nginx//blacklisted-sessions.map'",
            "row=$(printf '%s' \"192.0.2.7\")",
            ">> '/etc/nginx//blacklisted-sessions.map'; if [ -f \"/run/nginx.pid\" ] && nginx -qt; then nginx -s reload",
            "truncate -s 0 '/etc/nginx//blacklisted-sessions.map'",
        ],
    ),
    (
        "mikrotik[host=192.0.2.1, user=admin, keyfile=/root/.ssh/mt]",
        &[
            "ssh -o BatchMode=yes -l \"admin\" -p \"22\" -i \"/root/.ssh/mt\" \"192.0.2.1\" \"/ip firewall address-list add list=\\\"Fail2Ban\\\" address=192.0.2.7 comment=f3b-sshd-192.0.2.7\"",
            "\"/ip firewall address-list remove [find list=\\\"Fail2Ban\\\" comment=f3b-sshd-192.0.2.7]\"",
            "\"/ip firewall address-list remove [find list=\\\"Fail2Ban\\\" comment~\\\"f3b-sshd-*\\\"]\"",
        ],
    ),
];

#[tokio::test]
async fn reporting_actions_render_with_fail2ban_parameters() {
    check_rendered(RENDERED_REPORTING).await;
}

/// A web server on 127.0.0.1 (Python's http.server, started by the test)
/// that answers every request with `reply` and writes each down: method,
/// path, headers and body. Ended when dropped.
struct HttpStandIn {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// The stand-in server's program: its port on the first line of stdout.
const HTTP_STAND_IN: &str = r#"
import http.server, sys
log, reply = sys.argv[1], sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        with open(log, "a") as f:
            f.write(f"{self.command} {self.path}\n{self.headers}{body}\n----\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    do_GET = do_POST = do_PUT = do_DELETE = answer
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

impl HttpStandIn {
    fn start(reply: &str) -> HttpStandIn {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(HTTP_STAND_IN)
            .arg(dir.path().join("requests"))
            .arg(reply)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the stand-in's port");
        HttpStandIn { child, dir, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, as written down.
    fn requests(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("requests")).unwrap_or_default()
    }
}

impl Drop for HttpStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each HTTP action through start, two bans (IPv4, IPv6), an unban and
/// stop, its URL option pointed at a stand-in on loopback: the requests
/// arrive with the key, the address, and the log lines (with their
/// `$(reboot)`) as data.
#[tokio::test]
async fn http_reporting_actions_reach_a_loopback_server() {
    let mut cases: Vec<(String, HttpStandIn, Vec<String>)> = Vec::new();
    let s = HttpStandIn::start("{}");
    let spec = format!(
        "abuseipdb[abuseipdb_apikey=k1, abuseipdb_category=\"18,22\", abuseipdb_url=\"{}\"]",
        s.url("/api/v2/report")
    );
    let want = vec![
        "POST /api/v2/report".into(),
        "Key: k1".into(),
        "comment=Failed+password+for+%24%28reboot%29+from+192.0.2.7%0A...&ip=192.0.2.7&categories=18%2C22".into(),
        "&ip=2001%3Adb8%3A%3A7&".into(),
    ];
    cases.push((spec, s, want));
    let s = HttpStandIn::start("{}");
    let spec = format!(
        "ipthreat[ipthreat_apikey=k1, ipthreat_url=\"{}\"]",
        s.url("/api/report")
    );
    let want = vec![
        "POST /api/report".into(),
        "X-API-KEY: k1".into(),
        "{\"ip\":\"2001:db8::7\",\"flags\":\"8\",\"system\":\"sshd\",\"notes\":\"fail3ban\"}"
            .into(),
    ];
    cases.push((spec, s, want));
    let rules = "{\"success\":true,\"result\":[{\"id\":\"r1\",\"mode\":\"block\"}]}";
    let s = HttpStandIn::start(rules);
    let spec = format!(
        "cloudflare[cfuser=me@example.com, cftoken=k1, _cf_api_url=\"{}\"]",
        s.url("/rules")
    );
    let want = vec![
        "POST /rules\n".into(),
        "X-Auth-Email: me@example.com".into(),
        "X-Auth-Key: k1".into(),
        "{\"mode\":\"block\",\"configuration\":{\"target\":\"ip6\",\"value\":\"2001:db8::7\"},\"notes\":\"Fail2Ban sshd\"}".into(),
        "GET /rules?mode=block&configuration_target=ip&configuration_value=192.0.2.7&notes=Fail2Ban+sshd&page=1&per_page=1".into(),
        "DELETE /rules/r1\n".into(),
    ];
    cases.push((spec, s, want));
    let s = HttpStandIn::start(rules);
    let spec = format!(
        "cloudflare-token[cfzone=z1, cftoken=k1, _cf_api_url=\"{}\"]",
        s.url("/zones/z1/rules")
    );
    let want = vec![
        "Authorization: Bearer k1".into(),
        "{\"mode\":\"block\",\"configuration\":{\"target\":\"ip\",\"value\":\"192.0.2.7\"},\"notes\":\"Fail2Ban sshd\"}".into(),
        "GET /zones/z1/rules?mode=block&notes=Fail2Ban+sshd&configuration.target=ip&configuration.value=192.0.2.7".into(),
        "DELETE /zones/z1/rules/r1\n".into(),
        "{\"cascade\":\"none\"}".into(),
    ];
    cases.push((spec, s, want));
    let s = HttpStandIn::start("{}");
    let spec = format!(
        "netscaler[ns_auth=dTpw, ns_dataset=banned, ns_curlopts=\"\", ns_url=\"{}\"]",
        s.url("/nitro/v1/config")
    );
    let want = vec![
        "GET /nitro/v1/config\n".into(),
        "Authorization: Basic dTpw".into(),
        "PUT /nitro/v1/config/\n".into(),
        "{\"policydataset_value_binding\":{\"name\":\"banned\",\"value\":\"2001:db8::7\"}}".into(),
        "DELETE /nitro/v1/config/policydataset_value_binding/banned?args=value:192.0.2.7\n".into(),
    ];
    cases.push((spec, s, want));
    let s = HttpStandIn::start("<p>Attack Report Insert Successful</p>");
    let tmp = tempfile::tempdir().unwrap();
    let spec = format!(
        "mynetwatchman[mnwlogin=\"me@example.com\", mnwpass=\"p w\", port=22, myip=198.51.100.1, mnwurl=\"{}\", tmpfile=\"{}\"]",
        s.url("/insertwebreport.asp"),
        tmp.path().join("mnw").display()
    );
    let want = vec![
        "GET /insertwebreport.asp?AT=2&AV=0&AgentEmail=%6d%65%40%65%78%61%6d%70%6c%65%2e%63%6f%6d&AgentPassword=%70%20%77&AttackerIP=192.0.2.7&SrcPort=0&ProtocolID=6&DestPort=22&AttackCount=5&VictimIP=198.51.100.1&AttackDateTime=2023-11-14+22:13:20".into(),
        "User-Agent: fail3ban".into(),
    ];
    cases.push((spec, s, want));
    for (spec, server, want) in &cases {
        let rec = Recorder::here();
        let (_tmp, mut a) = action(spec, rec.clone());
        crate::own_tree::lifecycle(&mut a, &rec).await;
        let got = server.requests();
        for w in want {
            assert!(got.contains(w.as_str()), "{spec}: {w:?} not in:\n{got}");
        }
    }
    // The report was taken: nothing of it is kept.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// A script at `dir/name` that writes its arguments and its standard
/// input down in `dir/name.log`, in place of a program an action runs.
fn stand_in(dir: &std::path::Path, name: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let log = dir.join(format!("{name}.log"));
    let script = format!(
        "#!/bin/sh\n{{ printf 'args:'; printf ' [%s]' \"$@\"; echo; cat; echo; }} >> '{}'\n",
        log.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// apprise, nsupdate and mikrotik run for real with stand-ins for
/// apprise, nsupdate and ssh: what each would have received.
#[tokio::test]
async fn reporting_actions_run_their_programs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases = [
        (
            format!("apprise[apprise=\"{} -c /etc/a.conf\"]", stand_in(d, "apprise")),
            "apprise",
            vec![
                "args: [-c] [/etc/a.conf] [-t] [[fail3ban] sshd: started on ".to_string(),
                "] [-n] [warning] [-t] [[fail3ban] sshd: banned 2001:db8::7 on ".into(),
                "The address 192.0.2.7 has been banned by fail3ban after 5 attempts against sshd.".into(),
                "The jail sshd has been stopped.".into(),
            ],
        ),
        (
            format!(
                "nsupdate[domain=dnsbl.example.com, keyfile=/etc/k.key, nsupdatecmd=\"{}\"]",
                stand_in(d, "nsupdate")
            ),
            "nsupdate",
            vec![
                "args: [-k] [/etc/k.key]\nprereq nxrrset 7.2.0.192.dnsbl.example.com TXT\nupdate add 7.2.0.192.dnsbl.example.com 60 IN TXT \"Your IP has been banned\"\nsend\n".to_string(),
                "update add 7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.dnsbl.example.com 60".into(),
                "update delete 7.2.0.192.dnsbl.example.com\nsend\n".into(),
            ],
        ),
        (
            format!("mikrotik[command=\"{}\"]", stand_in(d, "ssh")),
            "ssh",
            vec![
                "args: [/ip firewall address-list add list=\"Fail2Ban\" address=192.0.2.7 comment=f3b-sshd-192.0.2.7]".to_string(),
                "args: [/ip firewall address-list remove [find list=\"Fail2Ban\" comment=f3b-sshd-192.0.2.7]]".into(),
                "args: [/ip firewall address-list remove [find list=\"Fail2Ban\" comment~\"f3b-sshd-*\"]]".into(),
            ],
        ),
    ];
    for (spec, name, want) in &cases {
        let rec = Recorder::here();
        let (_tmp, mut a) = action(spec, rec.clone());
        crate::own_tree::lifecycle(&mut a, &rec).await;
        let got = std::fs::read_to_string(d.join(format!("{name}.log"))).unwrap_or_default();
        for w in want {
            assert!(got.contains(w.as_str()), "{spec}: {w:?} not in:\n{got}");
        }
    }
}

/// nginx-block-map on a map file of the test's: bans add `\<id> 1;`
/// lines, an unban takes its own away (not one that only looks alike),
/// an id that could write entries of its own into nginx's map is refused,
/// and stop empties the file. nginx is not running (no pid file): no
/// reload is tried.
#[tokio::test]
async fn nginx_block_map_writes_its_map() {
    let tmp = tempfile::tempdir().unwrap();
    let map = tmp.path().join("blacklisted-sessions.map");
    let spec = format!(
        "nginx-block-map[srv_cfg_path=\"{d}\", srv_pid=\"{d}/none.pid\"]",
        d = tmp.path().display()
    );
    let rec = Recorder::here();
    let (_tmp, mut a) = action(&spec, rec.clone());
    let read = || std::fs::read_to_string(&map).unwrap();
    let with_fid = |fid: &str| {
        let mut b = ban("192.0.2.7");
        b.fid = Some(fid.into());
        b
    };
    a.start().await.unwrap();
    assert_eq!(read(), "");
    for fid in ["s.1", "s:1", "aB/+=9_~@-"] {
        a.ban(&with_fid(fid)).await.unwrap();
    }
    assert_eq!(read(), "\\s.1 1;\n\\s:1 1;\n\\aB/+=9_~@- 1;\n");
    for fid in ["x 0;\ndefault 1", "y;", "$(reboot)", ""] {
        assert!(a.ban(&with_fid(fid)).await.is_err(), "{fid:?} banned");
    }
    a.unban(&with_fid("s.1")).await.unwrap();
    assert_eq!(read(), "\\s:1 1;\n\\aB/+=9_~@- 1;\n");
    a.stop().await.unwrap();
    assert_eq!(read(), "");
}

// Reporting actions: mail, mail through sendmail, abuse reports
// (issue 18, mail9).

/// What each reporting action must run, by step, as substrings of its
/// commands.
const RENDERED_MAIL: &[(&str, &[&str])] = &[
    (
        "mail[dest=admin@example.com]",
        &[
            "| mail -E 'set escape' -s \"[fail3ban] sshd: started on ",
            "The address 192.0.2.7 has been banned by fail3ban after 5 attempts against sshd.",
            "\"[fail3ban] sshd: banned 2001:db8::7 from ",
            "\" admin@example.com",
        ],
    ),
    (
        "mail-whois",
        &["whois 192.0.2.7 2>&1 || echo \"(whois not available)\"", "| mail -E 'set escape' -s \"[fail3ban] sshd: banned 192.0.2.7 from "],
    ),
    (
        "mail-whois-lines[logpath=\"/var/log/a.log\", grepmax=7]",
        &[
            "whois 2001:db8::7",
            "logpath=\"/var/log/a.log\"; grep -h -wF -e \"192.0.2.7\" -- $logpath 2>/dev/null | tail -n 7",
        ],
    ),
    (
        "mail-buffered[lines=3]",
        &[
            "printf '%s: %s (%s failures)\\n' \"$(date)\" \"192.0.2.7\" \"5\" >> \"/run/fail3ban/mail-buffered-sshd.txt\"",
            "-ge 3 ]; then",
            "cat \"/run/fail3ban/mail-buffered-sshd.txt\"",
        ],
    ),
    (
        "sendmail-buffered",
        &[
            ">> \"/run/fail3ban/sendmail-buffered-sshd.txt\"",
            "| /usr/sbin/sendmail -f \"fail3ban\" \"root\" && rm -f \"/run/fail3ban/sendmail-buffered-sshd.txt\"",
        ],
    ),
    (
        "sendmail-whois-matches",
        &["whois 192.0.2.7 2>&1", "printf '%s\\n' \"${f2bV_matches}\""],
    ),
    (
        "sendmail-whois-ipmatches",
        &["Matches with 5 failures of 2001:db8::7:", "\"${f2bV_ipmatches}\""],
    ),
    (
        "sendmail-whois-ipjailmatches",
        &["Matches in sshd with 5 failures of 192.0.2.7:", "\"${f2bV_ipjailmatches}\""],
    ),
    (
        "sendmail-geoip-lines",
        &[
            "geoiplookup -f /usr/share/GeoIP/GeoIP.dat \"192.0.2.7\"",
            "geoiplookup -f /usr/share/GeoIP/GeoIPASNum.dat \"2001:db8::7\"",
            "grep -h -wF -e \"192.0.2.7\" -- $logpath",
        ],
    ),
    (
        "complain",
        &[
            "RESOLVER_ADDR=\"7.2.0.192.abuse-contacts.abusix.org\"",
            "| mail -E 'set escape' -s \"Abuse from 192.0.2.7\"  -- $ADDRESSES",
        ],
    ),
    (
        "blocklist_de[email=\"admin@example.com\", apikey=\"k3y\", service=\"sshd\", agent=\"fail3ban/test\"]",
        &[
            "curl --silent --show-error --fail --max-time 30 --data-urlencode \"server=admin@example.com\" --data-urlencode \"apikey=k3y\" --data-urlencode \"service=sshd\" --data-urlencode \"ip=192.0.2.7\" --data-urlencode \"logs=${f2bV_matches}\n\"",
            "\"https://www.blocklist.de/en/httpreports.html\"",
        ],
    ),
    (
        "dshield[userid=12345, port=\"%(port)s\"]",
        &[
            "\"12345\" \"5\" \"192.0.2.7\" \"???\" ",
            "\"ssh,8080:8090\" \"$PROTOCOL\" \"\" >> \"/run/fail3ban/dshield-sshd.buffer\"",
            "\"FORMAT DSHIELD USERID 12345 TZ $(date +%z",
        ],
    ),
    (
        "xarf-login-attack",
        &[
            "RESOLVER_ADDR=\"7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.abuse-contacts.abusix.org\"",
            "REPORTID=1700000000.0@",
            "printf '\\n%s\\n' \"${f2bV_ipmatches}\"",
            "| /usr/sbin/sendmail -f fail3ban@",
        ],
    ),
];

#[tokio::test]
async fn mail_actions_render_with_fail2ban_parameters() {
    check_rendered(RENDERED_MAIL).await;
}

/// A mail program of the test's: each run writes its arguments and its
/// standard input to `sent.<n>` in the test's directory.
struct FakeMail {
    dir: tempfile::TempDir,
}

impl FakeMail {
    fn new() -> FakeMail {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("mail");
        std::fs::write(
            &prog,
            format!(
                "#!/bin/sh\nn=$(ls {d} | grep -c '^sent')\n\
                 {{ printf 'ARGS'; printf ' [%s]' \"$@\"; printf '\\n'; cat; }} > {d}/sent.$n\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeMail { dir }
    }

    fn prog(&self) -> String {
        self.dir.path().join("mail").display().to_string()
    }

    /// The mails sent so far, in order.
    fn sent(&self) -> Vec<String> {
        (0..)
            .map(|n| self.dir.path().join(format!("sent.{n}")))
            .take_while(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

/// The mail actions for real, with a mail program of the test's: each
/// mail goes to the right address with the right subject, and the log
/// line (which holds `$(reboot)`) arrives in the body as it was written,
/// never run. whois is the test's too: no traffic leaves the machine.
#[tokio::test]
async fn mail_actions_send_log_lines_as_data() {
    let fake = FakeMail::new();
    let m = fake.prog();
    let d = fake.dir.path().display().to_string();
    let log = fake.dir.path().join("auth.log");
    std::fs::write(
        &log,
        "Failed password for $(reboot) from 192.0.2.7\nFailed password from 192.0.2.70\n",
    )
    .unwrap();
    let whois = "_whois=\"echo WHOIS <ip>\"";
    // What each must send; and what it must not (a line of another
    // address that only begins alike).
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("mail-whois-lines[mailcmd=\"{m} -s\", dest=admin@example.com, logpath=\"{}\", {whois}]", log.display()),
            vec!["ARGS [-s] [[fail3ban] sshd: banned 192.0.2.7 from ", "] [admin@example.com]", "WHOIS 192.0.2.7", "\nFailed password for $(reboot) from 192.0.2.7\n"],
        ),
        (
            format!("sendmail-whois-matches[mailcmd=\"{m} -f fail3ban admin@example.com\", {whois}]"),
            vec!["ARGS [-f] [fail3ban] [admin@example.com]\nSubject: [fail3ban] sshd: banned 192.0.2.7 on ", "WHOIS 192.0.2.7", "Matches:\nFailed password for $(reboot) from 192.0.2.7\n"],
        ),
        (
            format!("sendmail-whois-ipjailmatches[mailcmd=\"{m}\", {whois}]"),
            vec!["Matches in sshd with 5 failures of 192.0.2.7:\nFailed password for $(reboot) from 192.0.2.7\n"],
        ),
        (
            format!("mail-buffered[mailcmd=\"{m} -s\", lines=2, tmpfile=\"{d}/buffer\"]"),
            vec!["ARGS [-s] [[fail3ban] sshd: summary from ", ": 192.0.2.7 (5 failures)\n", ": 2001:db8::7 (5 failures)\n"],
        ),
        (
            format!("dshield[mailcmd=\"{m} -s\", lines=2, tmpfile=\"{d}/dshield\", port=22, myip=198.51.100.1]"),
            vec!["ARGS [-s] [FORMAT DSHIELD USERID 0 TZ ", " fail3ban] [reports@dshield.org]\n", "\t0\t5\t192.0.2.7\t???\t198.51.100.1\t22\t6\t\n", "\t0\t5\t2001:db8::7\t???\t198.51.100.1\t22\t6\t\n"],
        ),
    ];
    for (spec, want) in &cases {
        let before = fake.sent().len();
        let rec = Recorder::here();
        let (_tmp, mut a) = action(spec, rec.clone());
        a.start().await.unwrap();
        a.ban(&ban("192.0.2.7")).await.unwrap();
        a.ban(&ban("2001:db8::7")).await.unwrap();
        a.stop().await.unwrap();
        let sent = fake.sent()[before..].join("\n----\n");
        for w in want {
            assert!(sent.contains(w), "{spec}: {w:?} not in:\n{sent}");
        }
        assert!(!sent.contains("192.0.2.70"), "{spec}: {sent}");
        println!("own actions: {spec}: {} mails", fake.sent().len() - before);
    }
    // The buffer went out in one mail and is gone.
    assert!(!fake.dir.path().join("buffer").exists());
}

/// An HTTP server of the test's on 127.0.0.1 (Python's http.server;
/// .ci/run installs python3 and curl):
/// answers every POST with 200 and writes its path and body to `req`.
/// Ended when dropped.
struct HttpSink {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl HttpSink {
    fn start() -> HttpSink {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with open(sys.argv[1] + '/req', 'wb') as f:
            f.write(self.path.encode() + b'\n' + self.headers.get('User-Agent', '').encode() + b'\n' + body)
        self.send_response(200)
        self.end_headers()
s = http.server.HTTPServer(('127.0.0.1', 0), H)
open(sys.argv[1] + '/port.tmp', 'w').write(str(s.server_port))
os.rename(sys.argv[1] + '/port.tmp', sys.argv[1] + '/port')
s.serve_forever()
"#;
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let port_file = dir.path().join("port");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !port_file.exists() {
            let gone = child.try_wait().unwrap();
            assert!(
                gone.is_none() && std::time::Instant::now() < deadline,
                "http.server did not start: {gone:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(port_file).unwrap().parse().unwrap();
        HttpSink { child, dir, port }
    }

    fn request(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("req")).unwrap_or_default()
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// blocklist_de for real against the test's HTTP server on loopback: the
/// report carries the account, the address and the log line exactly as
/// written ($(reboot) never run), form-encoded.
#[tokio::test]
async fn blocklist_de_reports_over_http() {
    let sink = HttpSink::start();
    let spec = format!(
        "blocklist_de[email=\"admin@example.com\", apikey=\"k3y\", service=\"sshd\", agent=\"fail3ban/test\", url=\"http://127.0.0.1:{}/en/httpreports.html\"]",
        sink.port
    );
    let rec = Recorder::here();
    let (_tmp, mut a) = action(&spec, rec.clone());
    a.start().await.unwrap();
    assert!(a.ban(&ban("192.0.2.7")).await.is_ok());
    let req = sink.request();
    assert_eq!(
        req,
        "/en/httpreports.html\nfail3ban/test\n\
         server=admin%40example.com&apikey=k3y&service=sshd&ip=192.0.2.7\
         &logs=Failed+password+for+%24%28reboot%29+from+192.0.2.7%0A&format=text"
    );
    a.stop().await.unwrap();
}

/// complain and xarf-login-attack for real, with a mail program and a dig
/// of the test's: the abuse contacts the DNS answers get the report with
/// the log line as written; what only poses as an address (an option for
/// mail(1), a command) gets nothing.
#[tokio::test]
async fn complain_mails_only_what_looks_like_an_address() {
    let fake = FakeMail::new();
    let dig = fake.dir.path().join("dig");
    std::fs::write(
        &dig,
        "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/dig.args\"\n\
         echo '\"abuse@example.net,-Ssendmail=/tmp/x,noc@example.org;reboot, hostmaster@example.com\"'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dig, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = fake.dir.path().join("auth.log");
    std::fs::write(&log, "Failed password for $(reboot) from 192.0.2.7\n").unwrap();
    let spec = format!(
        "complain[mailcmd=\"{} -s\", dig=\"{}\", logpath=\"{}\"]",
        fake.prog(),
        dig.display(),
        log.display()
    );
    // xarf-login-attack asks the same and mails through sendmail.
    let xarf = format!(
        "xarf-login-attack[mailcmd=\"{}\", dig=\"{}\", sender=fail3ban@example.com, service=ssh, port=22]",
        fake.prog(),
        dig.display()
    );
    for spec in [&spec, &xarf] {
        let rec = Recorder::here();
        let (_tmp, mut a) = action(spec, rec.clone());
        a.start().await.unwrap();
        a.ban(&ban("192.0.2.7")).await.unwrap();
        a.stop().await.unwrap();
    }
    let asked = std::fs::read_to_string(fake.dir.path().join("dig.args")).unwrap();
    assert_eq!(
        asked,
        "+short -t txt -q 7.2.0.192.abuse-contacts.abusix.org\n"
    );
    let sent = fake.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[0].starts_with(
            "ARGS [-s] [Abuse from 192.0.2.7] [--] [abuse@example.net] [hostmaster@example.com]\n"
        ),
        "{}",
        sent[0]
    );
    assert!(
        sent[0].contains("from the address 192.0.2.7,"),
        "{}",
        sent[0]
    );
    assert!(
        sent[0].contains("\nFailed password for $(reboot) from 192.0.2.7\n"),
        "{}",
        sent[0]
    );
    let x = &sent[1];
    assert!(
        x.starts_with(
            "ARGS [-f] [fail3ban@example.com] [--] [abuse@example.net] [hostmaster@example.com]\n\
             Subject: abuse report about 192.0.2.7 - "
        ),
        "{x}"
    );
    for w in [
        "\nReported-From: fail3ban@example.com\n",
        "\nService: ssh\n",
        "\nSource: 192.0.2.7\nPort: 22\n",
        "\nOccurances: 5\n",
        "\nFailed password for $(reboot) from 192.0.2.7\n",
        "\n--Abuse1700000000.0-bfbb0f920793ac03cb8634bde14d8a1e--\n",
    ] {
        assert!(x.contains(w), "{w:?} not in:\n{x}");
    }
}

// smtp: the native action for fail2ban's smtp.py (issue 18, smtp9).

/// The password the tests give smtp; it must reach the server's AUTH and
/// never curl's command line.
const SMTP_PASSWORD: &str = "pw-s3cret-7";

/// What smtp must run: curl's SMTP with one --mail-rcpt per recipient,
/// the login only in the config on curl's stdin, STARTTLS required for
/// ssl.
const RENDERED_SMTP: &[(&str, &[&str])] = &[
    (
        "smtp[host=\"mail.example.com:587\", ssl=true, user=\"f3b\", password=\"pw-s3cret-7\", dest=\"a@example.com, b@example.com\", sender=\"f3b@example.com\", matchtype=ipjailmatches]",
        &[
            "subject=\"started on ",
            "subject=\"banned 192.0.2.7 from ",
            "\"The IP 192.0.2.7 has just been banned for 600 seconds\" \"by Fail3Ban after 5 attempts against sshd.\"",
            "\"${f2bV_ipjailmatches}\"",
            "pw=\"pw-s3cret-7\"; [ -z \"\" ] || IFS= read -r pw < \"\"; printf 'user = \"%s:%s\"\\n' \"f3b\" \"$pw\"; fi | curl ",
            "[Tt]rue|1|[Yy]es|on) echo --ssl-reqd",
            "--url \"smtp://mail.example.com:587\" --mail-from \"f3b@example.com\" \"$@\" --upload-file /dev/fd/3 -K -",
            "printf '%s' \"a@example.com, b@example.com\" | tr ',' ' '",
        ],
    ),
    ("smtp", &["--url \"smtp://localhost:25\" --mail-from \"fail3ban\"", "if [ -n \"\" ]"]),
];

#[tokio::test]
async fn smtp_renders_with_smtp_py_options() {
    check_rendered(RENDERED_SMTP).await;
    // The password is only an argument of the shell's builtin printf,
    // never of curl (the one program the command runs that gets it).
    let rec = Recorder::recording();
    let (_tmp, mut a) = action(RENDERED_SMTP[0].0, rec.clone());
    for step in crate::own_tree::lifecycle(&mut a, &rec).await.concat() {
        for part in step.split('|').filter(|p| p.contains("curl ")) {
            assert!(!part.contains(SMTP_PASSWORD), "{part}");
        }
    }
}

/// An SMTP server of the test's on 127.0.0.1 (python3), enough of one
/// for curl: EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT. Each
/// session goes to `session.<n>`: what the client said, the message as
/// sent and the AUTH credentials decoded. Ended when dropped.
struct SmtpSink {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

const SMTP_SINK: &str = r#"
import base64, socket, sys
out = sys.argv[1]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(5)
print(srv.getsockname()[1], flush=True)
n = 0
while True:
    c, _ = srv.accept()
    f = c.makefile("rb")
    def say(s):
        c.sendall(s.encode() + b"\r\n")
    def line():
        return f.readline().decode("utf-8", "replace").rstrip("\r\n")
    log = []
    say("220 sink ESMTP")
    while True:
        l = line()
        log.append("C: " + l)
        u = l.upper()
        if u.startswith("EHLO"):
            c.sendall(b"250-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
        elif u.startswith("AUTH PLAIN"):
            arg = l[10:].strip()
            if not arg:
                say("334 ")
                arg = line()
            log.append("AUTH " + base64.b64decode(arg).decode().replace("\0", "|"))
            say("235 ok")
        elif u.startswith("AUTH LOGIN"):
            say("334 VXNlcm5hbWU6")
            user = base64.b64decode(line()).decode()
            say("334 UGFzc3dvcmQ6")
            pw = base64.b64decode(line()).decode()
            log.append("AUTH |" + user + "|" + pw)
            say("235 ok")
        elif u.startswith("DATA"):
            say("354 go")
            data = []
            while True:
                d = line()
                if d == ".":
                    break
                data.append(d[1:] if d.startswith(".") else d)
            log.append("DATA\n" + "\n".join(data) + "\n.")
            say("250 queued")
        elif u.startswith("QUIT") or not l:
            say("221 bye")
            break
        else:
            say("250 ok")
    c.close()
    with open(f"{out}/session.{n}.tmp", "w") as o:
        o.write("\n".join(log) + "\n")
    import os
    os.rename(f"{out}/session.{n}.tmp", f"{out}/session.{n}")
    n += 1
"#;

impl SmtpSink {
    fn start() -> SmtpSink {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(SMTP_SINK)
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the sink's port");
        SmtpSink { child, dir, port }
    }

    /// The sessions so far, in order.
    fn sessions(&self) -> Vec<String> {
        (0..)
            .map(|n| self.dir.path().join(format!("session.{n}")))
            .take_while(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// smtp for real against the test's SMTP server on loopback: start, a
/// ban and stop each send one mail from the sender to every recipient,
/// after AUTH with the password; the ban mail has the subject and the
/// hostile log line as text (`$(reboot)` never run, a lone "." line
/// not ending the message).
#[tokio::test]
async fn smtp_mails_through_a_loopback_server() {
    let sink = SmtpSink::start();
    let spec = format!(
        "smtp[host=\"127.0.0.1:{}\", user=\"f3b\", password=\"{SMTP_PASSWORD}\", sender=\"f3b@example.com\", sendername=\"Fail Three\", dest=\"a@example.com, b@example.com\", matchtype=matches]",
        sink.port
    );
    let rec = Recorder::here();
    let (_tmp, mut a) = action(&spec, rec.clone());
    let s = smtp_cycle(&mut a, &sink).await;
    assert_eq!(s.len(), 3, "{s:#?}");
    // With passwordfile the password is in no script (no command line) at
    // all, and still reaches AUTH.
    let pwfile = sink.dir.path().join("pw");
    std::fs::write(&pwfile, format!("{SMTP_PASSWORD}\n")).unwrap();
    let spec = spec.replace(
        &format!("password=\"{SMTP_PASSWORD}\""),
        &format!("passwordfile=\"{}\"", pwfile.display()),
    );
    let rec = Recorder::here();
    let (_tmp, mut a) = action(&spec, rec.clone());
    let s = smtp_cycle(&mut a, &sink).await;
    assert_eq!(s.len(), 3, "{s:#?}");
    for c in rec.cmds.lock().unwrap().iter() {
        assert!(!c.script.contains(SMTP_PASSWORD), "{}", c.script);
        assert!(!c.args.iter().any(|a| a.contains(SMTP_PASSWORD)));
    }
}

/// start, a ban with hostile log lines and stop of smtp `a`: checks the
/// three mails `sink` gets and returns them.
async fn smtp_cycle(a: &mut fail3ban::action::Action, sink: &SmtpSink) -> Vec<String> {
    let before = sink.sessions().len();
    let mut b = ban("192.0.2.7");
    b.matches.push(".".into());
    b.matches
        .push("Failed password for `id` from 192.0.2.7".into());
    a.start().await.unwrap();
    a.ban(&b).await.unwrap();
    a.stop().await.unwrap();
    let s = sink.sessions()[before..].to_vec();
    assert_eq!(s.len(), 3, "{s:#?}");
    for (session, subject) in s
        .iter()
        .zip(["started on ", "banned 192.0.2.7 from ", "stopped on "])
    {
        for w in [
            &format!("AUTH |f3b|{SMTP_PASSWORD}\n") as &str,
            "C: MAIL FROM:<f3b@example.com>",
            "C: RCPT TO:<a@example.com>\nC: RCPT TO:<b@example.com>\n",
            &format!("\nSubject: [Fail3Ban] sshd: {subject}"),
            "\nFrom: Fail Three <f3b@example.com>\nTo: a@example.com, b@example.com\n",
        ] {
            assert!(session.contains(w), "{w:?} not in:\n{session}");
        }
    }
    assert!(
        s[1].contains(
            "The IP 192.0.2.7 has just been banned for 600 seconds\nby Fail3Ban after 5 attempts against sshd.\n\n\
             Matches for this ban:\nFailed password for $(reboot) from 192.0.2.7\n.\n\
             Failed password for `id` from 192.0.2.7\n\nRegards,\nFail3Ban\n."
        ),
        "{}",
        s[1]
    );
    s
}
