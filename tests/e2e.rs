//! Bans that really block: a real sshd logging through a real rsyslogd,
//! fail3ban-server with the stock Debian sshd jail and stock firewall
//! actions, and a real ssh client in another network namespace whose
//! connections stop once it is banned.
//!
//! `F3_REPORT=1 cargo test --release --test tests e2e:: -- --include-ignored --nocapture`
//! prints every lab's logs and firewall, also when its test passed.

use std::fs;

use crate::netns::{Lab, Reach, ATTACKERS};
use crate::prereq::{need, Need};
use crate::util::append;

/// A user name sshd does not know: each attempt is one failure.
const NOBODY: &str = "nobody-e2e";

/// The lab with syslog, sshd and fail3ban-server running on the stock
/// tree with `jail_local`.
fn lab(tag: &str, jail_local: &str) -> Lab {
    let mut lab = Lab::new(tag);
    lab.start_syslog();
    lab.start_sshd();
    lab.stock_tree(crate::prereq::reference(), jail_local);
    lab.start_server();
    lab
}

/// jail.local for the stock sshd jail on the lab's auth.log.
fn sshd_jail(banaction: &str, extra: &str) -> String {
    format!(
        "[DEFAULT]
banaction = {banaction}
bantime = 1h
findtime = 10m

[sshd]
enabled = true
backend = auto
logpath = @T@/auth.log
maxretry = 3
{extra}
"
    )
}

/// Fails `n` ssh logins from `src`, then waits until the sshd jail lists
/// it as banned.
fn ban_by_ssh(lab: &Lab, src: &str, n: usize) {
    for _ in 0..n {
        lab.ssh_fail(src, NOBODY);
    }
    lab.wait(&format!("{src} is banned in sshd"), || {
        lab.banned("sshd").iter().any(|b| b == src)
    });
}

fn blocked(r: Reach) -> bool {
    matches!(r, Reach::Refused | Reach::Timeout)
}

/// No rule, chain, table or set of fail2ban's actions is left.
fn assert_clean(lab: &Lab) {
    let fw = lab.firewall();
    assert!(
        !fw.contains("f2b") && !fw.contains("fail2ban"),
        "left behind after stop:\n{fw}"
    );
}

/// Ban, block, spare the neighbour, unban, stop and leave nothing behind,
/// with the stock `banaction`; `firewall_names` is how the ruleset shows
/// the ban of 192.0.2.2.
fn ban_cycle(tag: &str, banaction: &str, kernel: Need) {
    need(&[Need::Lab, Need::Reference, kernel]);
    let mut lab = lab(tag, &sshd_jail(banaction, ""));
    let (attacker, neighbour) = (ATTACKERS[0], ATTACKERS[1]);
    assert_eq!(lab.probe(attacker), Reach::Open);
    assert_eq!(lab.probe(neighbour), Reach::Open);
    ban_by_ssh(&lab, attacker, 3);
    lab.wait("the attacker's connections are blocked", || {
        blocked(lab.probe(attacker))
    });
    assert!(
        lab.firewall().contains(attacker),
        "the ban is not in the ruleset:\n{}",
        lab.firewall()
    );
    assert_eq!(lab.probe(neighbour), Reach::Open, "{}", lab.report());
    assert_eq!(lab.banned("sshd"), vec![attacker.to_string()]);

    lab.ok(&["unban", attacker]);
    lab.wait("the attacker connects again after unban", || {
        lab.probe(attacker) == Reach::Open
    });
    assert!(!lab.firewall().contains(attacker), "{}", lab.firewall());

    // Banned again, then stopped: stop takes the ban and the chains away.
    ban_by_ssh(&lab, attacker, 3);
    lab.wait("blocked again", || blocked(lab.probe(attacker)));
    lab.stop_server();
    assert_clean(&lab);
    assert_eq!(lab.probe(attacker), Reach::Open);
}

#[test]
#[ignore = "needs root, the e2e lab's programs, the reference fail2ban and the kernel's iptables"]
fn ssh_ban_iptables_multiport() {
    ban_cycle("ipt", "iptables-multiport", Need::KernelIptables);
}

#[test]
#[ignore = "needs root, the e2e lab's programs, the reference fail2ban and the kernel's nf_tables"]
fn ssh_ban_nftables_multiport() {
    ban_cycle("nft", "nftables-multiport", Need::KernelNft);
}

#[test]
#[ignore = "needs root, the e2e lab's programs, the reference fail2ban and the kernel's ip_set and xt_set"]
fn ssh_ban_iptables_ipset() {
    ban_cycle("ipset", "iptables-ipset", Need::KernelIpset);
}

/// The administrator wipes the firewall while fail3ban runs; the next ban
/// fails, actioncheck notices, the action is restarted and every active
/// ban is applied again.
fn repair(tag: &str, banaction: &str, kernel: Need, wipe: &[&[&str]]) {
    need(&[Need::Lab, Need::Reference, kernel]);
    let mut lab = lab(tag, &sshd_jail(banaction, ""));
    let (first, second, bystander) = (ATTACKERS[0], ATTACKERS[1], ATTACKERS[2]);
    ban_by_ssh(&lab, first, 3);
    lab.wait("the first attacker is blocked", || {
        blocked(lab.probe(first))
    });
    for cmd in wipe {
        lab.in_srv_ok(cmd);
    }
    assert_eq!(
        lab.probe(first),
        Reach::Open,
        "the wipe left the ban:\n{}",
        lab.firewall()
    );
    ban_by_ssh(&lab, second, 3);
    lab.wait("the second attacker is blocked", || {
        blocked(lab.probe(second))
    });
    lab.wait("the first ban is restored", || blocked(lab.probe(first)));
    assert_eq!(lab.probe(bystander), Reach::Open, "{}", lab.report());
    let log = fs::read_to_string(lab.path("fail3ban.log")).unwrap_or_default();
    assert!(
        log.contains("Invariant check failed"),
        "no repair in the log:\n{log}"
    );
    lab.stop_server();
    assert_clean(&lab);
}

#[test]
#[ignore = "needs root, the e2e lab's programs, the reference fail2ban and the kernel's iptables"]
fn repair_after_iptables_flush() {
    repair(
        "ript",
        "iptables-multiport",
        Need::KernelIptables,
        &[&["iptables", "-w", "-F"], &["iptables", "-w", "-X"]],
    );
}

#[test]
#[ignore = "needs root, the e2e lab's programs, the reference fail2ban and the kernel's nf_tables"]
fn repair_after_nft_flush() {
    repair(
        "rnft",
        "nftables-multiport",
        Need::KernelNft,
        &[&["nft", "flush", "ruleset"]],
    );
}

/// Records each ban's `<F-USER>` and `<matches>`, one file each per
/// address, as an action an administrator might write.
const RECORD_USER: &str = r#"[Definition]
actionban = printf '%%s' "<F-USER>" > <dir>/<ip>.user
            printf '%%s' "<matches>" > <dir>/<ip>.matches
actionunban = rm -f <dir>/<ip>.user <dir>/<ip>.matches
[Init]
dir = /nonexistent
"#;

/// User names an attacker chooses, sent by a real ssh client, logged by
/// sshd through rsyslogd, found by the stock filter and handed to an
/// action that uses them in its command: nothing runs, the action gets
/// them as logged.
#[test]
#[ignore = "needs root, the e2e lab's programs and the reference fail2ban"]
fn hostile_user_names_reach_the_action_as_text() {
    need(&[Need::Lab, Need::Reference]);
    let reference = crate::prereq::reference();
    let mut lab = Lab::new("inj");
    lab.start_syslog();
    lab.start_sshd();
    lab.stock_tree(
        reference,
        "[sshd]
enabled = true
backend = auto
logpath = @T@/auth.log
maxretry = 1
action = record-user[dir=@T@/rec]
",
    );
    lab.write_conf("action.d/record-user.conf", RECORD_USER);
    fs::create_dir(lab.path("rec")).unwrap();
    lab.start_server();
    // Relative markers (ssh cuts names at a '/'): the server's working
    // directory, where its actions run, is the lab directory.
    let users = [
        "$(touch${IFS}pwned1)".to_string(),
        "`touch${IFS}pwned2`".to_string(),
        "`id`".to_string(),
        "a;touch${IFS}pwned3".to_string(),
        "a'b\"c".to_string(),
        "a|touch${IFS}pwned5&".to_string(),
        // No ssh client sends a newline in a name (nor would sshd log it
        // raw): this one goes to rsyslogd as if sshd had logged it.
        "x\n$(touch pwned4)\n".to_string(),
    ];
    for (user, src) in users.iter().zip(ATTACKERS) {
        if user.contains('\n') {
            lab.syslog_as_sshd(&format!("Invalid user {user} from {src} port 4242"));
        } else {
            lab.ssh_fail(src, user);
        }
    }
    let n = users.len();
    lab.wait("every address is banned", || lab.banned("sshd").len() == n);
    let rec = |src: &str, what: &str| fs::read_to_string(lab.path(&format!("rec/{src}.{what}")));
    lab.wait("the action ran for every ban", || {
        ATTACKERS[..n].iter().all(|s| rec(s, "matches").is_ok())
    });
    let auth = lab.auth_log();
    for (user, src) in users.iter().zip(ATTACKERS) {
        // What sshd logged for this address (it escapes control
        // characters), as the filter's <F-USER> reads it.
        let line = auth
            .lines()
            .find(|l| l.contains("Invalid user") && l.contains(&format!(" from {src} port")))
            .unwrap_or_else(|| panic!("sshd logged no attempt from {src}:\n{auth}"));
        let logged = line
            .split_once("Invalid user ")
            .and_then(|(_, r)| r.rsplit_once(&format!(" from {src} port")))
            .map(|(u, _)| u)
            .unwrap();
        if !user.contains('\n') {
            assert_eq!(logged, user, "sshd logged the name differently");
        }
        assert_eq!(rec(src, "user").unwrap(), logged, "user of {src}");
        assert_eq!(rec(src, "matches").unwrap(), line, "matches of {src}");
    }
    for i in 1..=5 {
        assert!(
            !lab.path(&format!("pwned{i}")).exists(),
            "a user name was run as a command (pwned{i})"
        );
    }
    lab.stop_server();
}

/// Records recidive's bans with their bantime.
const RECORD_BANTIME: &str = r#"[Definition]
actionban = echo "<ip> <bantime>" >> <file>
[Init]
file = /dev/null
"#;

/// fail3ban's own log read by the stock recidive jail and filter: an
/// address banned by sshd three times is banned for a week on every port.
#[test]
#[ignore = "needs root, the e2e lab's programs, the reference fail2ban and the kernel's iptables"]
fn recidive_bans_for_a_week() {
    need(&[Need::Lab, Need::Reference, Need::KernelIptables]);
    let reference = crate::prereq::reference();
    let mut lab = Lab::new("rec");
    lab.start_syslog();
    lab.start_sshd();
    lab.stock_tree(
        reference,
        "[DEFAULT]
banaction = iptables-multiport
banaction_allports = iptables-allports

[sshd]
enabled = true
backend = auto
logpath = @T@/auth.log
maxretry = 1
bantime = 2

[recidive]
enabled = true
backend = auto
logpath = @T@/fail3ban.log
maxretry = 3
action = %(action_)s
         record-bantime[file=@T@/recidive.rec]
",
    );
    lab.write_conf("action.d/record-bantime.conf", RECORD_BANTIME);
    lab.start_server();
    let (attacker, neighbour) = (ATTACKERS[0], ATTACKERS[1]);
    for round in 1..=3 {
        lab.wait("the attacker may connect", || {
            lab.probe(attacker) == Reach::Open
        });
        ban_by_ssh(&lab, attacker, 1);
        if round < 3 {
            lab.wait("the short sshd ban ends", || lab.banned("sshd").is_empty());
        }
    }
    lab.wait("recidive bans the attacker", || {
        lab.banned("recidive").iter().any(|b| b == attacker)
    });
    lab.wait("the week-long ban is recorded", || {
        fs::read_to_string(lab.path("recidive.rec")).is_ok_and(|r| !r.is_empty())
    });
    assert_eq!(
        fs::read_to_string(lab.path("recidive.rec")).unwrap(),
        format!("{attacker} 604800\n")
    );
    // The sshd ban ends after 2 s; recidive's, on every port, holds.
    lab.wait("the sshd ban ends", || lab.banned("sshd").is_empty());
    assert!(blocked(lab.probe(attacker)), "{}", lab.report());
    assert_eq!(lab.probe(neighbour), Reach::Open);
    assert_eq!(lab.ok(&["get", "recidive", "bantime"]).trim(), "604800");
    lab.stop_server();
    assert_clean(&lab);
}

/// Failure lines of the stock sshd filter for addresses `from..to` of
/// 2001:db8::/32 (IPv4's documentation ranges are too small for 20,000),
/// each from its own sshd process as sshd logs them.
fn bulk_lines(from: u32, to: u32) -> String {
    let now = jiff::Zoned::now().strftime("%b %d %H:%M:%S").to_string();
    (from..to)
        .map(|i| {
            format!(
                "{now} vm sshd[{}]: Invalid user x from 2001:db8::{:x}:{:x} port 22\n",
                100_000 + i,
                i >> 16,
                i & 0xffff
            )
        })
        .collect()
}

/// Waits until `count()` reaches `n`; the time it took. Panics after
/// `limit`.
fn time_until(
    lab: &Lab,
    what: &str,
    n: usize,
    limit: std::time::Duration,
    count: impl Fn() -> usize,
) -> std::time::Duration {
    let t0 = std::time::Instant::now();
    loop {
        let c = count();
        if c >= n {
            return t0.elapsed();
        }
        if t0.elapsed() > limit {
            panic!(
                "{what}: {c} of {n} after {limit:?}\n{}",
                String::from_utf8_lossy(&fs::read(lab.path("fail3ban.log")).unwrap_or_default())
                    .lines()
                    .filter(|l| !l.contains("] Ban ") && !l.contains("Found"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A burst of 5,000 bans and a restart restoring 20,000, through a stock
/// set-based action: each done in under 10 s, every address in the set.
fn at_scale(tag: &str, banaction: &str, kernel: Need, count: &dyn Fn(&Lab) -> usize) {
    need(&[Need::Lab, Need::Reference, kernel]);
    let reference = crate::prereq::reference();
    let mut lab = Lab::new(tag);
    lab.stock_tree(
        reference,
        &format!(
            "[sshd]
enabled = false

[bulk]
enabled = true
filter = sshd
port = ssh
backend = auto
logpath = @T@/bulk.log
maxretry = 1
bantime = 1d
banaction = {banaction}
"
        ),
    );
    let log = lab.path("bulk.log");
    // A first line no filter matches: an empty log can race with its
    // first write (see server::restart_after_log_started_empty).
    fs::write(&log, "Nov 25 00:00:00 vm syslogd: restart\n").unwrap();
    lab.start_server();
    let limit = std::time::Duration::from_secs(10);
    append(&log, &bulk_lines(0, 5000));
    let burst = time_until(&lab, "5,000-ban burst", 5000, limit, || count(&lab));
    append(&log, &bulk_lines(5000, 20000));
    time_until(
        &lab,
        "20,000 bans",
        20000,
        std::time::Duration::from_secs(60),
        || count(&lab),
    );
    lab.stop_server();
    assert_eq!(count(&lab), 0, "{}", lab.firewall().len());
    lab.start_server();
    let restore = time_until(&lab, "20,000 bans restored", 20000, limit, || count(&lab));
    eprintln!("{banaction}: 5,000-ban burst {burst:?}, 20,000-ban restore {restore:?}");
    assert_eq!(count(&lab), 20000);
    lab.stop_server();
    assert_clean(&lab);
}

/// Elements of a set listed by `ipset list` or `nft list set`.
fn elements(listing: &str) -> usize {
    listing.matches("2001:db8:").count()
}

#[test]
#[ignore = "needs root, the e2e lab's programs, the reference fail2ban and the kernel's ip_set and xt_set"]
fn scale_ipset() {
    at_scale("sipset", "iptables-ipset", Need::KernelIpset, &|lab| {
        elements(&String::from_utf8_lossy(
            &lab.in_srv(&["ipset", "list", "f2b-bulk6"]).stdout,
        ))
    });
}

#[test]
#[ignore = "needs root, the e2e lab's programs, the reference fail2ban and the kernel's nf_tables"]
fn scale_nftables() {
    at_scale("snft", "nftables-multiport", Need::KernelNft, &|lab| {
        elements(&String::from_utf8_lossy(
            &lab.in_srv(&["nft", "list", "set", "inet", "f2b-table", "addr6-set-bulk"])
                .stdout,
        ))
    });
}
