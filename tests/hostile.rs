//! Log text an attacker wrote, through every command fail3ban builds from
//! a template: a real fail3ban-server, real logs, real `/bin/sh`.
//!
//! Each hostile value tries to create a canary file; the tests check that
//! no canary exists and that every command received the text unchanged,
//! byte for byte, whatever quotes its template put around the tag.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use crate::util::{append, new_log, stamp, Server, Tree};

/// Captures the user name of an sshd-like line.
const USER_FILTER: &str = r"[Definition]
failregex = ^\s*\S+ sshd\[\d+\]: Invalid user <F-USER>.*</F-USER> from <HOST> port \d+$
";

fn sshd_line(user: &str, ip: &str) -> String {
    format!(
        "{} web1 sshd[77]: Invalid user {user} from {ip} port 22\n",
        stamp()
    )
}

/// Waits until the recording action banned `ip` in `jail`.
fn wait_ban(s: &mut Server, jail: &str, ip: &str) {
    s.wait(&format!("{jail} banned {ip}"), |s| {
        s.tree.count("ban", jail, ip) == 1
    });
}

// ------------------------------------------------------------ finding 1

/// Issue 13, finding 1: an ignorecommand that quotes the tag itself, with
/// `"` (the issue's own template) or with `'`, pasted the user name into
/// the script between single quotes that cancelled out, and an sshd user
/// name ran as root. The name must arrive as text.
#[test]
fn ignorecommand_quoted_tag_runs_nothing() {
    let tree = Tree::new(
        "[dq]
enabled = true
filter = user
logpath = @T@/auth.log
maxretry = 1
ignorecommand = /bin/echo \"checking <ip> user <F-USER>\" >> @T@/dq.out; exit 1

[sq]
enabled = true
filter = user
logpath = @T@/auth.log
maxretry = 1
ignorecommand = /bin/echo '<F-USER>' >> @T@/sq.out; exit 1
",
    );
    tree.write_conf("filter.d/user.conf", USER_FILTER);
    let canary = tree.path("canary");
    let users = [
        format!("`id>{}-1`", canary.display()),
        format!("$(touch {}-2)", canary.display()),
    ];
    let log = tree.path("auth.log");
    new_log(&log);
    let mut s = Server::start(&tree);
    append(&log, &sshd_line(&users[0], "192.0.2.1"));
    append(&log, &sshd_line(&users[1], "192.0.2.2"));
    for jail in ["dq", "sq"] {
        wait_ban(&mut s, jail, "192.0.2.1");
        wait_ban(&mut s, jail, "192.0.2.2");
    }
    for n in 1..=2 {
        let c = tree.path(&format!("canary-{n}"));
        assert!(!c.exists(), "user {n} ran as a command\n{}", s.report());
    }
    assert_eq!(
        fs::read_to_string(tree.path("dq.out")).unwrap(),
        format!(
            "checking 192.0.2.1 user {}\nchecking 192.0.2.2 user {}\n",
            users[0], users[1]
        )
    );
    assert_eq!(
        fs::read_to_string(tree.path("sq.out")).unwrap(),
        format!("{}\n{}\n", users[0], users[1])
    );
}

/// Issue 13, finding 1: the ignorecommand had no timeout and ran on a
/// runtime thread under the jail's lock. It now runs as actions run, with
/// the jail's action timeout (1 s here): a hanging one is killed and the
/// address banned, the jail answers meanwhile, and exit 0 still ignores.
#[test]
fn ignorecommand_runs_with_the_action_timeout() {
    let tree = Tree::new(
        "[slow]
enabled = true
filter = user
logpath = @T@/auth.log
maxretry = 1
action = record[name=slow, file=@T@/actions.log, timeout=1]
ignorecommand = case <ip> in 192.0.2.9) exit 0;; esac; sleep 30
",
    );
    tree.write_conf("filter.d/user.conf", USER_FILTER);
    let log = tree.path("auth.log");
    new_log(&log);
    let mut s = Server::start(&tree);
    append(&log, &sshd_line("trusted", "192.0.2.9"));
    append(&log, &sshd_line("guest", "192.0.2.1"));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    // The command sleeps; the jail's state is not held meanwhile.
    let q = Instant::now();
    s.ok(&["status", "slow"]);
    assert!(
        q.elapsed() < Duration::from_millis(900),
        "status took {:?} while the ignorecommand ran\n{}",
        q.elapsed(),
        s.report()
    );
    wait_ban(&mut s, "slow", "192.0.2.1");
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "the ban took {:?}: the ignorecommand was not cut at 1 s",
        t0.elapsed()
    );
    assert_eq!(tree.count("ban", "slow", "192.0.2.9"), 0, "{}", s.report());
    let log = tree.server_log();
    assert!(log.contains("Ignore 192.0.2.9 by command"), "{log}");
    assert!(log.contains("timed out after 1 seconds"), "{log}");
}

// ------------------------------------------------------------ finding 2

/// The variables the daemon is started with: secrets an AI-enabled
/// daemon holds, and what actions may see.
const DAEMON_ENV: [(&str, &str); 12] = [
    ("OPENAI_API_KEY", "sk-f3secret-key"),
    ("OPENAI_ORG_ID", "org-f3secret"),
    ("OPENAI_PROJECT_ID", "proj-f3secret"),
    ("OPENAI_BASE_URL", "http://127.0.0.1:9/f3secret"),
    ("NATS_TOKEN", "f3secret-nats"),
    ("DB_PASSWORD", "f3secret-pw"),
    ("AWS_SECRET_ACCESS_KEY", "f3secret-aws"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("TZ", "UTC"),
    ("HOME", "/nonexistent/f3secret-home"),
    ("PATH", "/nonexistent/f3secret-bin:/usr/bin:/bin"),
];

/// `env` output as a map (no value here spans lines).
fn env_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Issue 13, finding 2: every action saw the daemon's whole environment,
/// the OpenAI key included. Actions, their hooks and the ignorecommand
/// get the documented set only, and run in `/`.
#[test]
fn actions_get_a_clean_environment() {
    let tree = Tree::new(
        "[env]
enabled = true
filter = user
logpath = @T@/auth.log
maxretry = 1
action = record[name=env, file=@T@/actions.log]
         envdump[out=@T@]
ignorecommand = env > @T@/env-ignore; exit 1
",
    );
    tree.write_conf("filter.d/user.conf", USER_FILTER);
    tree.write_conf(
        "action.d/envdump.conf",
        "[Definition]
actionstart = env > <out>/env-start
actionban = env > <out>/env-ban
actionunban = env > <out>/env-unban
actionstop = env > <out>/env-stop
",
    );
    let log = tree.path("auth.log");
    new_log(&log);
    let mut s = Server::start_with_env(&tree, &DAEMON_ENV);
    append(&log, &sshd_line("guest", "192.0.2.1"));
    wait_ban(&mut s, "env", "192.0.2.1");
    s.wait("the env action banned", |s| s.tree.path("env-ban").exists());
    s.ok(&["unban", "--all"]);
    s.wait("the env action unbanned", |s| {
        s.tree.path("env-unban").exists()
    });
    s.stop();
    let want: BTreeMap<String, String> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("TZ", "UTC"),
        // Set by /bin/sh itself, from the working directory.
        ("PWD", "/"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for hook in ["ignore", "start", "ban", "unban", "stop"] {
        let text = fs::read_to_string(tree.path(&format!("env-{hook}")))
            .unwrap_or_else(|e| panic!("env-{hook}: {e}\n{}", s.report()));
        assert!(!text.contains("f3secret"), "{hook} saw a secret:\n{text}");
        assert_eq!(env_map(&text), want, "{hook}");
    }
}
