//! Helpers the integration tests share: a configuration tree in a
//! temporary directory, a real fail3ban-server on it driven through
//! fail3ban-client, and log writing.
//!
//! Every wait polls with a deadline: a test that fails does so with the
//! server's log in the message, never by hanging.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for anything the server should do "at once".
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A two-worker runtime for tests that drive sources from plain `#[test]`s.
pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) const SERVER: &str = env!("CARGO_BIN_EXE_fail3ban-server");
pub(crate) const CLIENT: &str = env!("CARGO_BIN_EXE_fail3ban-client");

/// Matches the lines the tests write, once fail2ban has cut the date out.
const FILTER: &str = r"[Definition]
failregex = ^\s*\S+ test\[\d+\]: auth failure from <HOST>$
";

/// Records every ban and unban as `ban <jail> <ip> <bantime>` /
/// `unban <jail> <ip>` lines.
const RECORD: &str = r#"[Definition]
actionban = echo "ban <name> <ip> <bantime>" >> <file>
actionunban = echo "unban <name> <ip>" >> <file>
[Init]
name = default
file = /dev/null
"#;

/// A configuration tree and the files the server writes, in one temporary
/// directory. `@T@` in configuration text stands for that directory.
pub(crate) struct Tree {
    tmp: tempfile::TempDir,
}

impl Tree {
    /// A tree with fail2ban.conf, the test filter, the recording action
    /// and a jail.conf made of `[DEFAULT]` settings and then `jails`.
    pub(crate) fn new(jails: &str) -> Tree {
        let tree = Tree {
            tmp: tempfile::Builder::new().prefix("f3srv").tempdir().unwrap(),
        };
        fs::create_dir_all(tree.conf().join("filter.d")).unwrap();
        fs::create_dir_all(tree.conf().join("action.d")).unwrap();
        tree.write_conf(
            "fail2ban.conf",
            "[Definition]
loglevel = INFO
logtarget = @T@/server.log
socket = @T@/f3.sock
pidfile = @T@/f3.pid
dbfile = @T@/f3.sqlite3
",
        );
        tree.write_conf("filter.d/test.conf", FILTER);
        tree.write_conf("action.d/record.conf", RECORD);
        tree.write_conf(
            "jail.conf",
            &format!(
                "[DEFAULT]
maxretry = 3
findtime = 10m
bantime = 1h
action = record[name=%(__name__)s, file=@T@/actions.log]

{jails}"
            ),
        );
        tree
    }

    pub(crate) fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    pub(crate) fn conf(&self) -> PathBuf {
        self.path("conf")
    }

    /// Writes a configuration file atomically (as editors do), so that the
    /// watcher never reads half of it.
    pub(crate) fn write_conf(&self, rel: &str, text: &str) {
        let text = text.replace("@T@", self.dir().to_str().unwrap());
        let dest = self.conf().join(rel);
        let tmp = dest.with_extension("tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &dest).unwrap();
    }

    /// The lines the recording action wrote.
    pub(crate) fn actions(&self) -> Vec<String> {
        fs::read_to_string(self.path("actions.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// How many times the action ran `verb` ("ban"/"unban") for `ip` in
    /// `jail`.
    pub(crate) fn count(&self, verb: &str, jail: &str, ip: &str) -> usize {
        self.actions()
            .iter()
            .filter(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() >= 3 && w[0] == verb && w[1] == jail && w[2] == ip
            })
            .count()
    }

    pub(crate) fn server_log(&self) -> String {
        fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }
}

/// The current local time as fail2ban's default date templates read it.
pub(crate) fn stamp() -> String {
    jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Creates a log holding one line that no filter matches.
///
/// A log that is empty when the server opens it can race with its first
/// write (see `restart_after_log_started_empty`): the tests that are not
/// about that start with a line.
pub(crate) fn new_log(path: impl AsRef<Path>) {
    fs::write(path, format!("{} web1 syslogd: restart\n", stamp())).unwrap();
}

/// Appends `text` to the log at `path` in one write, as a burst arrives.
pub(crate) fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

/// [`append`] of bytes that need not be text (NUL, invalid UTF-8).
pub(crate) fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// A fail3ban-server in the foreground, killed when dropped.
pub(crate) struct Server<'a> {
    pub(crate) tree: &'a Tree,
    child: Option<Child>,
}

impl<'a> Server<'a> {
    /// Starts the server on `tree` and waits until it answers.
    pub(crate) fn start(tree: &'a Tree) -> Server<'a> {
        Server::start_with_env(tree, &[])
    }

    /// [`Server::start`] with these variables added to the environment
    /// the server inherits from the test.
    pub(crate) fn start_with_env(tree: &'a Tree, env: &[(&str, &str)]) -> Server<'a> {
        Server::start_in(tree, &[], env)
    }

    /// Starts the server through `wrapper` (a command that runs the
    /// server as its arguments, e.g. `ip netns exec NS`; none if empty),
    /// with `env` added to its environment, and waits until it answers.
    pub(crate) fn start_in(tree: &'a Tree, wrapper: &[&str], env: &[(&str, &str)]) -> Server<'a> {
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(SERVER);
                c
            }
            None => Command::new(SERVER),
        };
        cmd.arg("-f")
            .arg("-c")
            .arg(tree.conf())
            .envs(env.iter().copied());
        Server::start_cmd(tree, cmd)
    }

    /// Starts `cmd`, a command that runs the server in the foreground on
    /// `tree` (whatever path it gives the tree), and waits until it
    /// answers fail3ban-client on the tree.
    pub(crate) fn start_cmd(tree: &'a Tree, mut cmd: Command) -> Server<'a> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(tree.path("server.out"))
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start fail3ban-server");
        let mut s = Server {
            tree,
            child: Some(child),
        };
        s.wait("the server answers a ping", |s| s.client(&["ping"]).0);
        s
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Runs fail3ban-client on the tree: success and stdout.
    pub(crate) fn client(&mut self, args: &[&str]) -> (bool, String) {
        let (code, out) = self.client_code(args);
        (code == Some(0), out)
    }

    /// Runs fail3ban-client on the tree: its exit code and stdout.
    pub(crate) fn client_code(&mut self, args: &[&str]) -> (Option<i32>, String) {
        if let Some(c) = &mut self.child {
            if let Ok(Some(st)) = c.try_wait() {
                panic!("the server exited ({st}):\n{}", self.report());
            }
        }
        let o = Command::new(CLIENT)
            .arg("-c")
            .arg(self.tree.conf())
            .arg("--timeout")
            .arg("10")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run fail3ban-client");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// Runs fail3ban-client, which must succeed; its stdout.
    pub(crate) fn ok(&mut self, args: &[&str]) -> String {
        let (ok, out) = self.client(args);
        assert!(
            ok,
            "fail3ban-client {args:?} failed: {out}\n{}",
            self.report()
        );
        out
    }

    /// What to show when something goes wrong.
    pub(crate) fn report(&self) -> String {
        format!(
            "--- server.log\n{}--- server.out\n{}--- actions.log\n{}",
            self.tree.server_log(),
            fs::read_to_string(self.tree.path("server.out")).unwrap_or_default(),
            self.tree.actions().join("\n"),
        )
    }

    /// Polls `cond` until it holds, or panics after [`WAIT`].
    pub(crate) fn wait(&mut self, what: &str, mut cond: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if cond(self) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting until {what}\n{}", self.report());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the server has opened the log at `path` (its "Added
    /// logfile" line). `ping` answers before the jails' sources have
    /// looked at their files: a file renamed away before that is never
    /// read, which is no rotation a running server sees.
    pub(crate) fn wait_following(&mut self, path: &Path) {
        let added = format!("Added logfile: {:?}", path.display().to_string());
        self.wait(&format!("the server follows {}", path.display()), |s| {
            s.tree.server_log().contains(&added)
        });
    }

    /// `stop` through the client; the process must then end.
    pub(crate) fn stop(&mut self) {
        self.ok(&["stop"]);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + WAIT;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the server did not end after stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; the process must then end within `within`.
    pub(crate) fn terminate(&mut self, within: Duration) {
        let mut child = self.child.take().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child, which has not been reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not end within {within:?} of SIGTERM\n{}",
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown, no flush.
    ///
    /// Returns once no process answers on the server's socket any more: a
    /// process the server was forking for an action when it was killed
    /// holds the socket until it execs, and a server started meanwhile
    /// would take it for a live one and refuse to start.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let sock = self.tree.path("f3.sock");
        let deadline = Instant::now() + WAIT;
        while std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{} still answers after kill -9",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        // `F3_REPORT=1 cargo test server:: -- --nocapture` shows what each
        // server did, also when its test passed.
        if std::env::var_os("F3_REPORT").is_some() {
            eprintln!("{}", self.report());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Kills (SIGKILL) the process whose pid a pid file holds, when dropped:
/// a server started in the background outlives a test that fails before
/// it could stop it.
pub(crate) struct PidGuard(pub(crate) PathBuf);

impl Drop for PidGuard {
    fn drop(&mut self) {
        let Ok(pid) = fs::read_to_string(&self.0) else {
            return;
        };
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: kill(2) on a pid the server wrote for itself.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Writes a schema-4 database with fail2ban's code: an active ban, an
/// expired one, a permanent one in another jail, and a repeat offender.
const WRITER: &str = r#"
import sys, time
from fail2ban.server.database import Fail2BanDb
from fail2ban.server.ticket import BanTicket
from fail2ban.tests.dummyjail import DummyJail
db = Fail2BanDb(sys.argv[1])
now = time.time()
jails = {n: DummyJail(name=n) for n in ('sshd', 'recidive')}
for j in jails.values():
    db.addJail(j)
def ban(jail, ip, t, bantime, count=1):
    tk = BanTicket(ip, t, ['%s failed from %s' % (int(t), ip)])
    tk.setBanTime(bantime)
    tk.setBanCount(count)
    tk.setAttempt(5)
    db.addBan(jails[jail], tk)
ban('sshd', '192.0.2.1', now - 60, 3600)
ban('sshd', '192.0.2.20', now - 7200, 600)
ban('recidive', '2001:db8::3', now - 30, -1)
ban('sshd', '192.0.2.4', now - 5000, 600, 1)
ban('sshd', '192.0.2.4', now - 100, 1200, 2)
print(db.getBansMerged('192.0.2.4').getAttempt())
"#;

/// A fail2ban database at `path`, written by the reference fail2ban under
/// `reference`: five bans of jails sshd and recidive, three still active
/// (192.0.2.1 and 192.0.2.4 in sshd, 2001:db8::3 in recidive).
pub fn write_fail2ban_db(reference: &Path, path: &Path) {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(WRITER)
        .arg(path)
        .env(
            "PYTHONPATH",
            reference.join("usr/lib/python3/dist-packages"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::own_tree::text(&out));
}

/// Every file under `dir` (or `dir` itself) with its content, sorted by
/// path: two equal digests mean the same files, byte for byte.
pub fn digest(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else if p.exists() {
            files.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    files.sort();
    files
}

// ---------------------------------------------------------------- journal

/// Writes `entries` (fields, in journal export format; values may be any
/// bytes) into `out` (a `.journal` file) with systemd-journal-remote,
/// which a test that calls it needs (`Need::JournalRemote`).
pub(crate) fn make_journal_raw(out: &Path, entries: &[Vec<(&str, Vec<u8>)>]) {
    make_journal_env(out, entries, &[]);
}

/// [`make_journal_raw`] with systemd-journal-remote's environment
/// extended by `env`, e.g. `SYSTEMD_JOURNAL_COMPACT=0` for a regular
/// (not compact) file or `SYSTEMD_JOURNAL_COMPRESS=LZ4`.
pub(crate) fn make_journal_env(out: &Path, entries: &[Vec<(&str, Vec<u8>)>], env: &[(&str, &str)]) {
    use crate::prereq::{Need, JOURNAL_REMOTE};
    crate::prereq::need(&[Need::JournalRemote]);
    let mut export = Vec::new();
    for e in entries {
        for (k, v) in e {
            if v.contains(&b'\n') || std::str::from_utf8(v).is_err() {
                // binary-safe form: name, newline, LE64 length, data
                export.extend_from_slice(k.as_bytes());
                export.push(b'\n');
                export.extend_from_slice(&(v.len() as u64).to_le_bytes());
                export.extend_from_slice(v);
                export.push(b'\n');
            } else {
                export.extend_from_slice(k.as_bytes());
                export.push(b'=');
                export.extend_from_slice(v);
                export.push(b'\n');
            }
        }
        export.push(b'\n');
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", out.display()))
        .arg("-")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run systemd-journal-remote");
    child.stdin.take().unwrap().write_all(&export).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "systemd-journal-remote: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
