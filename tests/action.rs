//! Actions: stock action.d files through the configuration engine,
//! substituted as fail2ban's own `CommandAction` substitutes them, and real
//! runs of shell actions (order, timeouts, failures, repair, injection).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fail3ban::action::quoting::Lexer;
use fail3ban::action::{Action, ActionError, Actions, BanInfo, Runner, ShellCommand};
use fail3ban::config::{read_tree, PyValue};
use serde_json::{json, Value};

const TIME: f64 = 1_700_000_000.25;

/// Runs nothing; remembers every command, as the Python side does.
#[derive(Default)]
struct Recorder(Mutex<Vec<ShellCommand>>);

impl Runner for Recorder {
    fn run<'a>(
        &'a self,
        cmd: &'a ShellCommand,
        _timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        self.0.lock().unwrap().push(cmd.clone());
        Box::pin(async { true })
    }
}

fn cmd_json(c: &ShellCommand) -> Value {
    if c.args.is_empty() {
        Value::String(c.script.clone())
    } else {
        let mut v = vec![Value::String(c.script.clone())];
        v.extend(c.args.iter().map(|a| Value::String(a.clone())));
        Value::Array(v)
    }
}

/// fail2ban's command `cmd` (its `[script, values...]` JSON) with each
/// variable reference written as fail3ban writes it. fail2ban writes
/// `$f2bV_x` wherever the tag stood; fail3ban writes the form the place
/// needs (`"${f2bV_x}"` bare, `${f2bV_x}` between double quotes,
/// `'"${f2bV_x}"'` between single quotes), so that the command receives
/// the text unchanged where fail2ban's receives it split into words or
/// the variable's name. Everything else must be identical.
fn in_fail3ban_form(cmd: &Value) -> Value {
    let Some([Value::String(script), args @ ..]) = cmd.as_array().map(Vec::as_slice) else {
        return cmd.clone();
    };
    let Some((head, body)) = script.split_once('\n') else {
        return cmd.clone();
    };
    let mut vars: Vec<&str> = head
        .split_whitespace()
        .filter_map(|a| a.split_once('=').map(|(v, _)| v))
        .collect();
    // f2bV_a before f2bV_ab could take the other's place.
    vars.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut lexer = Lexer::new();
    let mut out = format!("{head}\n");
    let mut rest = body;
    'scan: while let Some(c) = rest.chars().next() {
        for var in &vars {
            if let Some(after) = rest.strip_prefix(&format!("${var}")) {
                out.push_str(&lexer.context().reference(var));
                lexer.push_value();
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        lexer.push_str(&rest[..c.len_utf8()]);
        rest = &rest[c.len_utf8()..];
    }
    let mut v = vec![Value::String(out)];
    v.extend(args.iter().cloned());
    Value::Array(v)
}

fn py_json(v: &PyValue) -> Value {
    match v {
        PyValue::Str(s) => json!(s),
        PyValue::Int(i) => json!(i),
        PyValue::Bool(b) => json!(b),
        PyValue::None => Value::Null,
        PyValue::List(l) => Value::Array(l.iter().map(py_json).collect()),
        PyValue::Dict(d) => Value::Object(d.iter().map(|(k, v)| (k.clone(), py_json(v))).collect()),
    }
}

/// A copy of the stock tree with `jail_local` and extra action.d files.
fn tree(root: &Path, jail_local: &str, extra: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("fail2ban");
    let st = Command::new("cp")
        .arg("-r")
        .arg(root.join("etc/fail2ban"))
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(dst.join("jail.local"), jail_local).unwrap();
    for (name, text) in extra {
        std::fs::write(dst.join("action.d").join(name), text).unwrap();
    }
    (tmp, dst)
}

/// The options of every action of `jail` in the stream, in order.
fn stream_actions(stream: &[Vec<PyValue>], jail: &str) -> Vec<(String, Vec<(String, PyValue)>)> {
    let mut out: Vec<(String, Vec<(String, PyValue)>)> = Vec::new();
    for cmd in stream {
        let s: Vec<Option<&str>> = cmd.iter().map(PyValue::as_str).collect();
        match s.as_slice() {
            [Some("set"), Some(j), Some("addaction"), Some(n)] if *j == jail => {
                out.push((n.to_string(), Vec::new()));
            }
            [Some("multi-set"), Some(j), Some("action"), Some(n), None] if *j == jail => {
                let entry = out.iter_mut().find(|(a, _)| a == n).unwrap();
                if let Some(PyValue::List(pairs)) = cmd.get(4) {
                    for p in pairs {
                        if let PyValue::List(kv) = p {
                            entry
                                .1
                                .push((kv[0].as_str().unwrap().to_string(), kv[1].clone()));
                        }
                    }
                }
            }
            [Some("set"), Some(j), Some("action"), Some(n), Some(k), _] if *j == jail => {
                let entry = out.iter_mut().find(|(a, _)| a == n).unwrap();
                entry.1.push((k.to_string(), cmd[5].clone()));
            }
            _ => {}
        }
    }
    out
}

/// fail2ban's CommandAction driven through the same steps, its executeCmd
/// replaced by a recorder.
const ORACLE: &str = r#"
import sys, json
from fail2ban.server.action import CommandAction
from fail2ban.server.actions import Actions
from fail2ban.server.ticket import BanTicket
from fail2ban.server.mytime import MyTime
from fail2ban.server.ipdns import DNSUtils
DNSUtils._IPv6IsAllowed = True
req = json.load(sys.stdin)
MyTime.setTime(req["time"])
rec = []
def ex(realCmd, timeout=60, **kw):
    if realCmd:
        rec.append(realCmd)
    return True
CommandAction.executeCmd = staticmethod(ex)
class J:
    def __init__(self, name):
        self.name = name
        self.database = None
        self.actions = Actions(self)
    def __str__(self):
        return self.name
out = {}
for a in req["actions"]:
    jail = J(req["jail"])
    act = CommandAction(jail, a["name"])
    for k, v in a["options"]:
        setattr(act, k, v)
    res = []
    for step in req["steps"]:
        del rec[:]
        ok = True
        try:
            if len(step) > 1:
                i = step[1]
                t = BanTicket(i["ip"], i["time"], i["matches"])
                t.setAttempt(i["failures"])
                t.setBanTime(i["bantime"])
                t.setBanCount(i["bancount"])
                t.restored = i["restored"]
                for k, v in i["data"].items():
                    t.setData(k, v)
                getattr(act, step[0])(jail.actions._getActionInfo(t))
            else:
                getattr(act, step[0])()
        except Exception as e:
            ok = False
        res.append({"ok": ok, "cmds": list(rec)})
    out[a["name"]] = res
print(json.dumps(out))
"#;

fn info_json(i: &BanInfo) -> Value {
    json!({
        "ip": i.ip, "time": i.time, "matches": i.matches, "failures": i.failures,
        "bantime": i.bantime, "bancount": i.bancount, "restored": i.restored,
        "data": i.data.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Steps both sides go through, by operation name and optional ban.
fn steps() -> Vec<(&'static str, Option<BanInfo>)> {
    let mut v4 = BanInfo::new("192.0.2.1", 1_699_999_990.5);
    v4.failures = 5;
    v4.bantime = 600;
    v4.bancount = 1;
    v4.matches = vec![
        "Nov 14 22:13:10 host sshd[1]: Invalid user $(touch /tmp/x) from 192.0.2.1".into(),
        "Nov 14 22:13:12 host sshd[1]: Invalid user `id`; rm -rf / 'q' \"d\" from 192.0.2.1".into(),
    ];
    v4.data.insert("user".into(), "$(touch /tmp/x)".into());
    v4.data.insert("fport".into(), "22".into());
    let mut v6 = BanInfo::new("2001:db8::1", 1_699_999_995.0);
    v6.failures = 3;
    v6.bantime = 3600;
    v6.bancount = 2;
    v6.matches = vec!["a line with <ip> and <F-USER> inside".into()];
    v6.data.insert("user".into(), "plain".into());
    let mut user = BanInfo::new("some-user", 1_699_999_999.0);
    user.failures = 2;
    user.bantime = -1;
    vec![
        ("start", None),
        ("ban", Some(user.clone())),
        ("ban", Some(v4.clone())),
        ("ban", Some(v6.clone())),
        ("reban", Some(v4.clone())),
        ("unban", Some(v4)),
        ("unban", Some(v6)),
        ("unban", Some(user)),
        ("flush", None),
        ("stop", None),
    ]
}

async fn ours(
    jail: &str,
    name: &str,
    stream: &[Vec<PyValue>],
    steps: &[(&str, Option<BanInfo>)],
) -> Vec<Value> {
    let rec = Arc::new(Recorder::default());
    let mut a = Action::from_stream(jail, name, stream)
        .unwrap()
        .with_runner(rec.clone())
        .with_clock(Arc::new(|| TIME))
        .with_ipv6(true);
    let mut out = Vec::new();
    for (op, info) in steps {
        rec.0.lock().unwrap().clear();
        let r: Result<(), ActionError> = match (*op, info) {
            ("start", _) => a.start().await,
            ("stop", _) => a.stop().await,
            ("flush", _) => a.flush().await.map(|_| ()),
            ("reload", _) => a.reload().await,
            ("ban", Some(i)) => a.ban(i).await,
            ("reban", Some(i)) => a.reban(i).await,
            ("unban", Some(i)) => a.unban(i).await,
            ("prolong", Some(i)) => a.prolong(i).await,
            _ => unreachable!(),
        };
        let cmds: Vec<Value> = rec.0.lock().unwrap().iter().map(cmd_json).collect();
        out.push(json!({"ok": r.is_ok(), "cmds": cmds}));
    }
    out
}

fn oracle(root: &Path, req: &Value) -> Value {
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(ORACLE)
        .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

const TAGS_ACTION: &str = "[Definition]
actionstart = echo start <family> <time> <bantime> <name> <F-USER>
actionban = echo ban <ip> <fid> <family> <ip-rev> <failures> <time> <bantime> <bancount> <restored>
    printf '%%s\\n' <matches>
    echo \"<ipmatches>\" '<ipjailmatches>' <ipfailures> <ipjailfailures>
    echo <F-USER> <F-PORT> <F-MISSING> <br>x<sp>y <port> <F-FAILURES> <F-MATCHES>
actionunban = echo unban <ip> <addr>
actionflush = echo flush <addr>
actionstop = echo stop <addr>
[Init]
port = ssh
addr = v4
[Init?family=inet6]
addr = v6
";

#[tokio::test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
async fn stock_actions_substitute_like_fail2ban() {
    let root = crate::prereq::reference();
    let jail_local = "[sshd]
enabled = true
backend = polling
logpath = /dev/null
action = iptables-multiport[port=\"ssh,2222\"]
         iptables-allports
         nftables-multiport
         nftables-allports
         iptables-ipset
         iptables-ipset-proto6
         route
         dummy
         sendmail-whois-lines
         mail
         tagtest

[eager]
enabled = true
backend = polling
logpath = /dev/null
filter = sshd
action = iptables-multiport[actionstart_on_demand=false]
         nftables-multiport[actionstart_on_demand=false]
         tagtest[actionstart_on_demand=false, timeout=\"2m\"]
";
    let (_tmp, dir) = tree(root, jail_local, &[("tagtest.conf", TAGS_ACTION)]);
    let conf = read_tree(dir.to_str().unwrap(), false).unwrap();
    let steps = steps();
    let mut compared = 0;
    for jail in ["sshd", "eager"] {
        let actions = stream_actions(&conf.stream, jail);
        assert!(actions.len() >= 3, "{jail}: {actions:?}");
        let req = json!({
            "jail": jail,
            "time": TIME,
            "actions": actions.iter().map(|(n, opts)| json!({
                "name": n,
                "options": opts.iter().map(|(k, v)| json!([k, py_json(v)])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "steps": steps.iter().map(|(op, i)| match i {
                Some(i) => json!([op, info_json(i)]),
                None => json!([op]),
            }).collect::<Vec<_>>(),
        });
        let theirs = oracle(root, &req);
        for (name, _) in &actions {
            let mine = ours(jail, name, &conf.stream, &steps).await;
            let expected = theirs[name].as_array().unwrap();
            for (i, (m, e)) in mine.iter().zip(expected).enumerate() {
                let mut e = e.clone();
                if let Some(cmds) = e["cmds"].as_array_mut() {
                    for c in cmds {
                        *c = in_fail3ban_form(c);
                    }
                }
                let e = &e;
                assert_eq!(
                    m, e,
                    "{jail}/{name} step {i} ({}):\n ours: {m:#}\n fail2ban: {e:#}",
                    steps[i].0
                );
                compared += m["cmds"].as_array().unwrap().len();
            }
        }
    }
    eprintln!(
        "action substitution: {compared} commands identical to fail2ban's (references aside)"
    );
    assert!(compared > 60, "{compared}");
}

/// A shell action writing what it does to `log` in a temp dir.
fn file_action(dir: &Path, extra: &[(&str, &str)]) -> Action {
    let log = dir.join("log");
    let mut opts: Vec<(String, PyValue)> = vec![
        ("log".into(), PyValue::str(log.to_str().unwrap())),
        ("actionstart".into(), "echo start >> <log>".into()),
        ("actionstop".into(), "echo stop >> <log>".into()),
        (
            "actionban".into(),
            "echo ban <ip> >> <log>; printf '%s|' <F-USER> >> <log>; printf '%s\\n' \"<matches>\" >> <log>".into(),
        ),
        ("actionunban".into(), "echo unban <ip> >> <log>".into()),
    ];
    for (k, v) in extra {
        opts.retain(|(o, _)| o != k);
        opts.push((k.to_string(), PyValue::str(*v)));
    }
    Action::new("test", "file", opts).unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[tokio::test]
async fn start_ban_unban_stop_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut actions = Actions::new(
        "test",
        vec![
            file_action(tmp.path(), &[]),
            file_action(
                tmp.path(),
                &[
                    ("actionstart", "echo start2 >> <log>"),
                    ("actionstop", "echo stop2 >> <log>"),
                ],
            ),
        ],
    );
    actions.start().await;
    let mut info = BanInfo::new("192.0.2.7", TIME);
    info.matches = vec!["line".into()];
    info.data.insert("user".into(), "bob".into());
    actions.ban(&info).await;
    actions.unban(&info).await;
    actions.stop().await;
    assert_eq!(
        read(&tmp.path().join("log")),
        "start\nstart2\nban 192.0.2.7\nbob|line\nban 192.0.2.7\nbob|line\nunban 192.0.2.7\nunban 192.0.2.7\nstop2\nstop\n"
    );
    eprintln!("action order: 10 lines in fail2ban's order");
}

#[tokio::test]
async fn reload_keeps_bans_and_takes_new_options() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = file_action(tmp.path(), &[("actionreload", "echo reload >> <log>")]);
    a.start().await.unwrap();
    let info = BanInfo::new("192.0.2.10", TIME);
    a.ban(&info).await.unwrap();
    let new = file_action(
        tmp.path(),
        &[
            ("actionreload", "echo reload2 >> <log>"),
            ("actionunban", "echo unban2 <ip> >> <log>"),
        ],
    );
    a.reload_from(new).await.unwrap();
    a.unban(&info).await.unwrap();
    a.stop().await.unwrap();
    assert_eq!(
        read(&tmp.path().join("log")),
        "start\nban 192.0.2.10\n|\nreload2\nunban2 192.0.2.10\nstop\n"
    );
}

#[tokio::test]
async fn norestored_actions_skip_restored_bans() {
    let tmp = tempfile::tempdir().unwrap();
    let mut quiet = file_action(tmp.path(), &[("actionban", "echo mail <ip> >> <log>")]);
    quiet = {
        let mut opts: Vec<(String, PyValue)> = quiet
            .template()
            .props()
            .iter()
            .map(|(k, v)| (k.clone(), PyValue::str(v.as_str())))
            .collect();
        opts.push(("norestored".into(), PyValue::Bool(true)));
        Action::new("test", "mail", opts).unwrap()
    };
    let mut actions = Actions::new("test", vec![file_action(tmp.path(), &[]), quiet]);
    let mut info = BanInfo::new("192.0.2.8", TIME);
    info.restored = true;
    actions.ban(&info).await;
    info.restored = false;
    info.ip = "192.0.2.9".into();
    actions.ban(&info).await;
    assert_eq!(
        read(&tmp.path().join("log")),
        "ban 192.0.2.8\n|\nban 192.0.2.9\n|\nmail 192.0.2.9\n"
    );
}

#[tokio::test]
async fn hanging_action_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = file_action(
        tmp.path(),
        &[
            ("actionban", "sleep 60; echo late >> <log>"),
            ("timeout", "1"),
        ],
    );
    let t0 = Instant::now();
    let r = a.ban(&BanInfo::new("192.0.2.1", TIME)).await;
    assert!(matches!(r, Err(ActionError::Ban(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(read(&tmp.path().join("log")), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_jail_does_not_block_another() {
    let tmp = tempfile::tempdir().unwrap();
    let mut slow = file_action(tmp.path(), &[("actionban", "sleep 3")]);
    let mut fast = file_action(tmp.path(), &[]);
    let t0 = Instant::now();
    let s = tokio::spawn(async move { slow.ban(&BanInfo::new("192.0.2.1", TIME)).await });
    fast.ban(&BanInfo::new("192.0.2.20", TIME)).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    s.await.unwrap().unwrap();
}

thread_local! {
    static LOG_BUF: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Writes log lines into the buffer of the current thread's [`Logs`].
struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOG_BUF.with(|buf| {
            if let Some(buf) = buf.borrow().as_ref() {
                buf.lock().unwrap().extend_from_slice(b);
            }
        });
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects what tracing logs on this thread (current-thread runtimes run
/// the actions there) while it is alive. One global subscriber rather than
/// scoped ones: tracing caches per call site whether anyone listens, which
/// makes scoped subscribers in parallel tests miss events.
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> Logs {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            let sub = tracing_subscriber::fmt()
                .with_writer(|| ThreadWriter)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_global_default(sub).expect("no other global subscriber");
        });
        let buf = Arc::new(Mutex::new(Vec::new()));
        LOG_BUF.with(|b| *b.borrow_mut() = Some(buf.clone()));
        Logs(buf)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        LOG_BUF.with(|b| *b.borrow_mut() = None);
    }
}

#[tokio::test]
async fn failing_action_is_logged_with_its_output() {
    let logs = Logs::capture();
    let tmp = tempfile::tempdir().unwrap();
    let mut actions = Actions::new(
        "test",
        vec![
            file_action(
                tmp.path(),
                &[("actionban", "echo out-text; echo err-text >&2; exit 4")],
            ),
            file_action(tmp.path(), &[]),
        ],
    );
    actions.ban(&BanInfo::new("192.0.2.3", TIME)).await;
    let text = logs.text();
    for want in [
        "-- exec: echo out-text",
        "-- stdout: \"out-text\"",
        "-- stderr: \"err-text\"",
        "-- returned 4",
        "Failed to execute ban jail 'test' action 'file' info '192.0.2.3': Error banning 192.0.2.3",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    // The second action still ran.
    assert_eq!(read(&tmp.path().join("log")), "ban 192.0.2.3\n|\n");
}

#[tokio::test]
async fn failed_check_runs_repair_then_bans_again() {
    let logs = Logs::capture();
    let tmp = tempfile::tempdir().unwrap();
    let ok = tmp.path().join("ok");
    let ok = ok.to_str().unwrap();
    let mut a = file_action(
        tmp.path(),
        &[
            ("actioncheck", &format!("test -e {ok}")),
            ("actionrepair", &format!("echo repair >> <log>; touch {ok}")),
            (
                "actionban",
                &format!("test -e {ok} && echo ban <ip> >> <log>"),
            ),
        ],
    );
    a.start().await.unwrap();
    let epoch = a.ban_epoch();
    a.ban(&BanInfo::new("192.0.2.4", TIME)).await.unwrap();
    assert_eq!(
        read(&tmp.path().join("log")),
        "start\nrepair\nban 192.0.2.4\n"
    );
    assert_eq!(a.ban_epoch(), epoch + 1);
    assert!(logs
        .text()
        .contains("Invariant check failed. Trying to restore a sane environment"));
}

#[tokio::test]
async fn failed_check_without_repair_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = tmp.path().join("ok");
    let ok = ok.to_str().unwrap();
    let mut a = file_action(
        tmp.path(),
        &[
            ("actioncheck", &format!("test -e {ok}")),
            ("actionstart", &format!("echo start >> <log>; touch {ok}")),
            (
                "actionban",
                &format!("test -e {ok} && echo ban <ip> >> <log>"),
            ),
        ],
    );
    a.start().await.unwrap();
    std::fs::remove_file(ok).unwrap();
    a.ban(&BanInfo::new("192.0.2.5", TIME)).await.unwrap();
    assert_eq!(
        read(&tmp.path().join("log")),
        "start\nstop\nstart\nban 192.0.2.5\n"
    );
}

#[tokio::test]
async fn unban_is_not_repaired_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = file_action(
        tmp.path(),
        &[
            ("actioncheck", "false"),
            ("actionrepair", "echo repair >> <log>"),
            ("actionunban", "false"),
        ],
    );
    let info = BanInfo::new("192.0.2.6", TIME);
    a.ban(&info).await.unwrap();
    assert!(a.unban(&info).await.is_err());
    assert_eq!(read(&tmp.path().join("log")), "ban 192.0.2.6\n|\n");
}

/// Hostile texts as they could reach an action from a log line.
fn hostile() -> Vec<String> {
    vec![
        "$(touch MARK)".into(),
        "`touch MARK`".into(),
        "x; touch MARK".into(),
        "x && touch MARK".into(),
        "x | touch MARK".into(),
        "'; touch MARK; '".into(),
        "\"; touch MARK; \"".into(),
        "x\ntouch MARK".into(),
        "x\r\ntouch MARK".into(),
        "a\0b; touch MARK".into(),
        "${IFS}touch${IFS}MARK".into(),
        "<ip>$(touch MARK)<F-USER>".into(),
        "\\\"; touch MARK #".into(),
        "* ? [a] ~ {a,b}".into(),
        "> MARK".into(),
    ]
}

#[tokio::test]
async fn log_values_never_execute() {
    let tmp = tempfile::tempdir().unwrap();
    let mark = tmp.path().join("MARK");
    let out = tmp.path().join("out");
    let mut cases = 0;
    for (n, text) in hostile().into_iter().enumerate() {
        let text = text.replace("MARK", mark.to_str().unwrap());
        for place in [
            "<matches>",
            "<F-USER>",
            "<fid>",
            "<ipmatches>",
            "<ipjailmatches>",
        ] {
            let _ = std::fs::remove_file(&out);
            let mut a = Action::new(
                "test",
                "inject",
                vec![
                    ("out".to_string(), PyValue::str(out.to_str().unwrap())),
                    // Quoted and unquoted: neither may run anything.
                    (
                        "actionban".to_string(),
                        PyValue::str(format!(
                            "printf '%s' \"{place}\" > <out>; echo {place} > /dev/null"
                        )),
                    ),
                ],
            )
            .unwrap();
            let mut info = BanInfo::new("192.0.2.1", TIME);
            info.matches = vec![text.clone()];
            info.data.insert("user".into(), text.clone());
            info.fid = Some(text.clone());
            a.ban(&info).await.unwrap();
            assert!(!mark.exists(), "case {n} {place}: {text:?} executed");
            assert_eq!(
                read(&out),
                text.replace('\0', "\u{fffd}"),
                "case {n} {place}: literal text expected"
            );
            cases += 1;
        }
    }
    eprintln!("shell injection: {cases} hostile values, none executed, all literal");
}

/// Fails joined commands (`restore`) when told to, and single commands
/// for 192.0.2.3; remembers every command.
#[derive(Default)]
struct Picky {
    fail_joined: bool,
    ran: Mutex<Vec<String>>,
}

impl Runner for Picky {
    fn run<'a>(
        &'a self,
        cmd: &'a ShellCommand,
        _timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        self.ran.lock().unwrap().push(cmd.script.clone());
        let joined = cmd.script.contains("restore");
        let ok = if joined {
            !self.fail_joined
        } else {
            !cmd.script.contains("192.0.2.3")
        };
        Box::pin(async move { ok })
    }
}

/// Set insertions queued together run as one command; when that command
/// fails, every ban of it is left to the one-by-one path, which reports
/// the failing one.
#[tokio::test]
async fn batched_bans_join_and_fall_back() {
    let infos: Vec<BanInfo> = ["192.0.2.1", "192.0.2.20", "192.0.2.3"]
        .iter()
        .map(|ip| BanInfo::new(*ip, TIME))
        .collect();
    let refs: Vec<&BanInfo> = infos.iter().collect();
    let opts = || {
        [("actionban", "ipset -exist add f2b-x <ip> timeout 0")]
            .map(|(k, v)| (k.to_string(), PyValue::str(v)))
    };
    let ok = Arc::new(Picky::default());
    let mut a = Action::new("j", "set", opts())
        .unwrap()
        .with_runner(ok.clone());
    assert_eq!(a.ban_batch(&refs).await.unwrap(), Vec::<usize>::new());
    assert_eq!(
        *ok.ran.lock().unwrap(),
        vec!["ipset -exist restore <<'F3BATCH'\nadd f2b-x 192.0.2.1 timeout 0\nadd f2b-x 192.0.2.20 timeout 0\nadd f2b-x 192.0.2.3 timeout 0\nF3BATCH"]
    );
    let picky = Arc::new(Picky {
        fail_joined: true,
        ..Picky::default()
    });
    let mut a = Action::new("j", "set", opts())
        .unwrap()
        .with_runner(picky.clone());
    let single = a.ban_batch(&refs).await.unwrap();
    assert_eq!(single, vec![0, 1, 2]);
    let results: Vec<bool> = {
        let mut r = Vec::new();
        for i in single {
            r.push(a.ban(refs[i]).await.is_ok());
        }
        r
    };
    assert_eq!(results, vec![true, true, false]);
}
