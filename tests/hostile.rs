//! Log text an attacker wrote, through every command fail3ban builds from
//! a template: a real fail3ban-server, real logs, real `/bin/sh`.
//!
//! Each hostile value tries to create a canary file; the tests check that
//! no canary exists and that every command received the text unchanged,
//! byte for byte, whatever quotes its template put around the tag.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{append, append_bytes, new_log, stamp, Server, Tree};

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
    append(&log, &sshd_line(&users[1], "192.0.2.20"));
    for jail in ["dq", "sq"] {
        wait_ban(&mut s, jail, "192.0.2.1");
        wait_ban(&mut s, jail, "192.0.2.20");
    }
    for n in 1..=2 {
        let c = tree.path(&format!("canary-{n}"));
        assert!(!c.exists(), "user {n} ran as a command\n{}", s.report());
    }
    assert_eq!(
        fs::read_to_string(tree.path("dq.out")).unwrap(),
        format!(
            "checking 192.0.2.1 user {}\nchecking 192.0.2.20 user {}\n",
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

// ------------------------------------------------------------ the suite

/// Tags whose values can carry text from a log line, by the name their
/// output files carry.
const TAGS: [(&str, &str); 7] = [
    ("user", "<F-USER>"),
    ("note", "<F-NOTE>"),
    ("matches", "<matches>"),
    ("ipmatches", "<ipmatches>"),
    ("ipjailmatches", "<ipjailmatches>"),
    ("ip", "<ip>"),
    ("fid", "<fid>"),
];

/// Ways a template writes a tag: name, the command with `{T}` for the
/// tag and `{F}` for the output file (`%` doubled, as in action.d), and
/// what the command prints around the value.
const STYLES: [(&str, &str, &str, &str); 6] = [
    ("dq", "printf '%%s' \"{T}\" > {F}", "", ""),
    ("sq", "printf '%%s' '{T}' > {F}", "", ""),
    ("bare", "printf '%%s' {T} > {F}", "", ""),
    ("asg", "v={T}; printf '%%s' \"$v\" > {F}", "", ""),
    (
        "nest",
        "printf '[%%s]' \"$(printf '%%s' '{T}')\" > {F}",
        "[",
        "]",
    ),
    ("mix", "printf '%%s' \"a'{T}'b\" > {F}", "a'", "'b"),
];

/// The body of hook `hook`: every tag of `tags` in every style, each into
/// its own file `out/hook-style-tag-<F-IDX>`, lines of a multi-line
/// option.
fn hook_body(hook: &str, out: &str, tags: &[(&str, &str)]) -> String {
    let mut lines = Vec::new();
    for (tname, tag) in tags {
        for (sname, style, _, _) in STYLES {
            lines.push(
                style
                    .replace("{T}", tag)
                    .replace("{F}", &format!("{out}/{hook}-{sname}-{tname}-<F-IDX>")),
            );
        }
    }
    lines.join("\n    ")
}

/// Hostile log texts; `@C@` is the canary the value tries to create.
fn hostile_values() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "`touch @C@`",
        "$(touch @C@)",
        "x;touch @C@",
        "x; touch @C@ #",
        "x | touch @C@",
        "x && touch @C@",
        "x || touch @C@",
        "x & touch @C@ &",
        "'; touch @C@; '",
        "\"; touch @C@; \"",
        "'\"$(touch @C@)\"'",
        "\"'`touch @C@`'\"",
        "${IFS}touch${IFS}@C@",
        "$(touch${IFS}@C@)",
        "\\`touch @C@\\`",
        "\\\\\"; touch @C@; \\\\\" \\",
        "$((1))$(touch @C@)",
        "> @C@",
        "< /etc/hostname > @C@",
        "* ? [a] ~ ~root {a,b} .* > @C@",
        "<ip>$(touch @C@)<F-USER><br><sp>",
        "%s%n%b \\x41 \\0101 \\n \\c $(touch @C@)",
        "$0 $1 $@ ${f2bV_F_user} $f2bV_matches $(touch @C@)",
        "-e touch @C@ --",
        "!(touch @C@) { touch @C@; }",
        "#$(touch @C@)",
        ") ; touch @C@ ; (",
        "} ; touch @C@ ; {",
        "$'\\x41'; touch @C@",
        "a=$(touch @C@) b=`touch @C@`",
        "\u{fc} \u{1f642} $(touch @C@) \u{212e}",
        "\ttab\t$(touch\t@C@)\t",
        "car\rriage $(touch @C@)",
        "EOF\x0bF3BATCH\x0c$(touch @C@)",
        "\x1b[31mred\x1b[0m $(touch @C@)",
        "inert_value.1:2/3@4%5+6,7-8",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(b"ro\0ot $(touch @C@)".to_vec());
    v.push(b"\xff\xfe $(touch @C@) \xc3(".to_vec());
    let mut big = vec![b'A'; 32 * 1024];
    big.extend_from_slice(b"$(touch @C@)");
    big.resize(64 * 1024, b'B');
    v.push(big);
    v
}

/// Hostile texts spanning two lines of a log (a multi-line filter): the
/// parts before and after the line break.
const MULTI_LINE: [(&str, &str); 4] = [
    ("a", "$(touch @C@)"),
    ("'", "`touch @C@`'"),
    ("\"; touch @C@;", "\""),
    ("EOF", "F3BATCH ; touch @C@"),
];

/// What a line of a log becomes in fail3ban: invalid UTF-8 decoded to
/// U+FFFD, and NUL, which no argument of a process can hold, too.
fn decoded(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{fffd}")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// In `<F-USER>`, from an address.
    User,
    /// In a custom `<F-NOTE>`, from an address.
    Note,
    /// The failure id itself (`<F-ID>`): `<ip>` and `<fid>` carry it.
    Id,
}

/// One ban the suite expects, with what each tag must receive.
#[derive(Debug)]
struct Expected {
    idx: usize,
    jail: &'static str,
    kind: Kind,
    value: String,
    addr: String,
    matches: String,
}

impl Expected {
    fn tag(&self, name: &str) -> &str {
        match (name, self.kind) {
            ("user", Kind::User) | ("note", Kind::Note) => &self.value,
            ("user" | "note", _) => "",
            ("ip" | "fid", Kind::Id) => &self.value,
            ("ip" | "fid", _) => &self.addr,
            _ => &self.matches,
        }
    }
}

/// `printf %b` by /bin/sh itself (the mail action's formatting) of the
/// concatenated `parts`, given as parameters (each under the kernel's
/// limit on one argument, which the whole may pass).
fn printf_b(parts: &[&str]) -> Vec<u8> {
    let o = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("IFS=; printf %b \"$*\"")
        .arg("sh")
        .args(parts)
        .output()
        .unwrap();
    assert!(o.status.success());
    o.stdout
}

/// The suite's tree: jail `hostile` reads single lines (the value in
/// `<F-USER>`, in a custom `<F-NOTE>`, or as the failure id that `<ip>`
/// and `<fid>` carry), jail `multi` two-line failures. Both run the
/// ignorecommand, action `hostile` (every hook; actionban fails once, so
/// that actioncheck runs) and the mail action `hostilemail`, all writing
/// every tag in every style into `out/`.
fn suite_tree() -> Tree {
    let all_tags: Vec<(&str, &str)> = TAGS.to_vec();
    let f_tags: Vec<(&str, &str)> = TAGS[..2].to_vec();
    // A jail's option: the action's `<out>` is unknown there.
    let ignore = hook_body("ignore", "@T@/out", &all_tags);
    let mut jails = String::new();
    for name in ["hostile", "multi"] {
        jails.push_str(&format!(
            "[{name}]
enabled = true
filter = {name}
logpath = @T@/{name}.log
maxretry = 1
action = hostile[out=@T@/out]
         hostilemail[name=%(__name__)s, mailcmd=@T@/fakemail]
ignorecommand = {ignore}
    exit 1

"
        ));
    }
    let tree = Tree::new(&jails);
    fs::create_dir_all(tree.path("out")).unwrap();
    fs::create_dir_all(tree.path("canary")).unwrap();
    tree.write_conf(
        "filter.d/hostile.conf",
        r"[Definition]
failregex = ^\s*\S+ hostile\[\d+\]: idx <F-IDX>\d+</F-IDX> from <HOST> user <F-USER>.*</F-USER> end$
            ^\s*\S+ hostile\[\d+\]: idx <F-IDX>\d+</F-IDX> from <HOST> note <F-NOTE>.*</F-NOTE> end$
            ^\s*\S+ hostile\[\d+\]: idx <F-IDX>\d+</F-IDX> id <F-ID>.*</F-ID> end$
",
    );
    tree.write_conf(
        "filter.d/multi.conf",
        r"[Init]
maxlines = 2
[Definition]
failregex = ^\s*\S+ multi\[\d+\]: idx <F-IDX>\d+</F-IDX> from <HOST> user <F-USER>(?:.|\n)*</F-USER> end$
",
    );
    tree.write_conf(
        "action.d/hostile.conf",
        &format!(
            "[Definition]
actionstart = {}
actioncheck = {}
actionban = [ -e <out>/failed-once ] || {{ : > <out>/failed-once; exit 1; }}
    {}
actionunban = {}
actionstop = {}
[Init]
out = /dev/null
",
            hook_body("start", "<out>", &all_tags),
            hook_body("check", "<out>", &f_tags),
            hook_body("ban", "<out>", &all_tags),
            hook_body("unban", "<out>", &all_tags),
            hook_body("stop", "<out>", &all_tags),
        ),
    );
    // Shaped like the stock mail actions: a multi-line `printf %b "..."`
    // with a backquoted command, and the matches again with `%s`.
    tree.write_conf(
        "action.d/hostilemail.conf",
        "[Definition]
actionban = { printf %%b \"Date: `LC_ALL=C date +%%s`\\n\"; printf %%b \"Subject: [fail3ban] <name>: banned <ip>
            From: Fail3Ban <<sender>>\\n
            Matches:\\n
            <matches>\\n\"; printf %%s \"<matches>\"; } | <mailcmd> <F-IDX>
[Init]
name = default
sender = fail3ban
mailcmd = /bin/false
",
    );
    let fakemail = tree.path("fakemail");
    let mail = format!("#!/bin/sh\ncat > {}/mail-$1\n", tree.path("out").display());
    fs::write(&fakemail, mail).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fakemail, fs::Permissions::from_mode(0o755)).unwrap();
    tree
}

/// The lines of the `hostile` and `multi` logs, and the bans they cause.
fn suite_lines(canaries: &Path) -> (Vec<u8>, Vec<u8>, Vec<Expected>) {
    let mut expected = Vec::new();
    let mut single = Vec::new();
    let mut multi = Vec::new();
    for (i, raw) in hostile_values().iter().enumerate() {
        for (kind, base) in [(Kind::User, 0), (Kind::Note, 100), (Kind::Id, 200)] {
            let idx = base + i;
            let canary = canaries.join(idx.to_string()).display().to_string();
            let raw = replace_bytes(raw, b"@C@", canary.as_bytes());
            let addr = match kind {
                Kind::User => format!("192.0.2.{}", i + 100),
                Kind::Note => format!("198.51.100.{}", i + 1),
                Kind::Id => String::new(),
            };
            let place = match kind {
                Kind::User => format!("from {addr} user "),
                Kind::Note => format!("from {addr} note "),
                Kind::Id => "id ".to_string(),
            };
            let mut line = format!("{} web1 hostile[7]: idx {idx} {place}", stamp()).into_bytes();
            line.extend_from_slice(&raw);
            line.extend_from_slice(b" end");
            expected.push(Expected {
                idx,
                jail: "hostile",
                kind,
                value: decoded(&raw),
                addr,
                matches: decoded(&line),
            });
            line.push(b'\n');
            single.extend_from_slice(&line);
        }
    }
    for (i, (first, second)) in MULTI_LINE.iter().enumerate() {
        let idx = 300 + i;
        let canary = canaries.join(idx.to_string()).display().to_string();
        let (first, second) = (
            first.replace("@C@", &canary),
            second.replace("@C@", &canary),
        );
        let addr = format!("203.0.113.{}", i + 1);
        let one = format!(
            "{} web1 multi[7]: idx {idx} from {addr} user {first}",
            stamp()
        );
        // The second line has its own date: fail3ban cuts it, and the
        // text after it (from its space on) continues the value.
        let two = format!("{} {second} end", stamp());
        multi.extend_from_slice(format!("{one}\n{two}\n").as_bytes());
        expected.push(Expected {
            idx,
            jail: "multi",
            kind: Kind::User,
            value: format!("{first}\n {second}"),
            addr,
            matches: format!("{one}\n{two}"),
        });
    }
    (single, multi, expected)
}

/// Compares every file the commands wrote into `out` with what they must
/// have received; the differences, and how many files were compared.
fn compare_outputs(out: &Path, expected: &[Expected]) -> (Vec<String>, usize) {
    let mut compared = 0;
    let mut wrong = Vec::new();
    let mut check = |file: String, want: Vec<u8>| {
        let got = fs::read(out.join(&file)).unwrap_or_else(|e| format!("<{e}>").into_bytes());
        if got != want {
            wrong.push(format!(
                "{file}:\n  want {:?}\n  got  {:?}",
                short(&want),
                short(&got)
            ));
        }
        compared += 1;
    };
    let styled = |hook: &str, tname: &str, idx: &str, value: &str| {
        STYLES.map(|(sname, _, before, after)| {
            (
                format!("{hook}-{sname}-{tname}-{idx}"),
                format!("{before}{value}{after}").into_bytes(),
            )
        })
    };
    for e in expected {
        let idx = e.idx.to_string();
        for hook in ["ignore", "ban", "unban"] {
            for (tname, _) in TAGS {
                for (file, want) in styled(hook, tname, &idx, e.tag(tname)) {
                    check(file, want);
                }
            }
        }
        // The mail: its date line, then what printf %b makes of the
        // values (as /bin/sh's own printf does it), then the matches.
        let file = format!("mail-{idx}");
        let got = fs::read(out.join(&file)).unwrap_or_default();
        let date_end = got.iter().position(|&b| b == b'\n').unwrap_or(0);
        let date = String::from_utf8_lossy(&got[..date_end]).into_owned();
        let date_ok = date
            .strip_prefix("Date: ")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        let mut want = format!("{date}\n").into_bytes();
        if !date_ok {
            want = b"Date: <seconds>\n".to_vec();
        }
        want.extend(printf_b(&[
            &format!("Subject: [fail3ban] {}: banned ", e.jail),
            e.tag("ip"),
            "\nFrom: Fail3Ban <fail3ban>\\n\nMatches:\\n\n",
            &e.matches,
            "\\n",
        ]));
        want.extend_from_slice(e.matches.as_bytes());
        check(file, want);
    }
    // Hooks that run without a ban: no tag has a value there.
    for hook in ["start", "stop"] {
        for (tname, _) in TAGS {
            for (file, want) in styled(hook, tname, "", "") {
                check(file, want);
            }
        }
    }
    for (tname, _) in &TAGS[..2] {
        for (file, want) in styled("check", tname, "", "") {
            check(file, want);
        }
    }
    (wrong, compared)
}

/// The suite: every hostile value in `<F-USER>`, in a custom `<F-NOTE>`
/// and as the failure id (`<ip>`, `<fid>`), in `<matches>`, `<ipmatches>`
/// and `<ipjailmatches>`, through the ignorecommand, every hook of an
/// action and a mail action, each tag between `"`, between `'`, bare, in
/// an assignment, in `$(...)` and in `'` inside `"`. Nothing runs, and
/// every command receives the text unchanged. One server for all.
#[test]
fn hostile_log_text_reaches_every_template_command_as_text() {
    let tree = suite_tree();
    let out = tree.path("out");
    let canaries = tree.path("canary");
    let (single, multi, expected) = suite_lines(&canaries);
    new_log(tree.path("hostile.log"));
    new_log(tree.path("multi.log"));
    let mut s = Server::start(&tree);
    append_bytes(&tree.path("hostile.log"), &single);
    append_bytes(&tree.path("multi.log"), &multi);
    // The last file each hook writes.
    let all_written = |prefix: &str| {
        expected
            .iter()
            .all(|e| out.join(format!("{prefix}{}", e.idx)).exists())
    };
    s.wait("every ban ran", |_| all_written("ban-mix-fid-"));
    s.wait("every mail was sent", |_| all_written("mail-"));
    s.ok(&["unban", "--all"]);
    s.wait("every unban ran", |_| all_written("unban-mix-fid-"));
    s.stop();

    let ran: Vec<String> = fs::read_dir(&canaries)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(ran.is_empty(), "values ran as commands: {ran:?}");
    let (wrong, compared) = compare_outputs(&out, &expected);
    assert!(
        wrong.is_empty(),
        "{} of {compared} outputs differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let values = hostile_values().len() + MULTI_LINE.len();
    assert!(values >= 30, "{values}");
    eprintln!(
        "hostile: {values} values in {} bans, {compared} outputs compared, none ran",
        expected.len()
    );
}

/// The start of a long text, for messages.
fn short(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.chars().count() > 200 {
        format!(
            "{}... ({} bytes)",
            s.chars().take(200).collect::<String>(),
            b.len()
        )
    } else {
        s.into_owned()
    }
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}
