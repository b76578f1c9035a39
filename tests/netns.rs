//! A small lab in network namespaces for the end-to-end tests: a server
//! namespace (192.0.2.1) and an attacker namespace (192.0.2.2 and up)
//! joined by a veth pair and nothing else, a real rsyslogd and OpenSSH
//! sshd in the server namespace, and fail3ban-server beside them.
//!
//! Everything the lab starts is killed and both namespaces are deleted
//! when it is dropped, also when a test panics. No route leaves the pair:
//! packets from either namespace can only reach the other one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest wait for anything that should happen "at once".
pub const WAIT: Duration = Duration::from_secs(30);

const SERVER: &str = env!("CARGO_BIN_EXE_fail3ban-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_fail3ban-client");

/// The server namespace's address (sshd listens there).
pub const SRV: &str = "192.0.2.1";
/// Addresses of the attacker namespace, all on its end of the pair.
pub const ATTACKERS: [&str; 8] = [
    "192.0.2.2",
    "192.0.2.3",
    "192.0.2.4",
    "192.0.2.5",
    "192.0.2.6",
    "192.0.2.7",
    "192.0.2.8",
    "192.0.2.9",
];

/// Runs a command; its output, whatever its status.
pub(crate) fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"))
}

/// Runs a command that must succeed; its stdout.
pub(crate) fn must(prog: &str, args: &[&str]) -> String {
    let o = run(prog, args);
    assert!(
        o.status.success(),
        "{prog} {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// How a TCP connection to sshd from one address ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Connected and sshd sent its banner.
    Open,
    /// Refused (a REJECT rule answers with ICMP port unreachable).
    Refused,
    /// No answer (a DROP rule).
    Timeout,
    /// Anything else.
    Other,
}

/// Connects from `src` to port 22 of the server, reads the banner.
const PROBE: &str = r#"
import socket, sys
s = socket.socket()
s.settimeout(2)
s.bind((sys.argv[1], 0))
try:
    s.connect((sys.argv[2], 22))
    print("open" if s.recv(64).startswith(b"SSH-") else "other")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("other", e)
"#;

/// The namespaces, deleted when dropped.
struct Namespaces {
    srv: String,
    atk: String,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.srv, &self.atk] {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// The lab: namespaces, the daemons in them, a temporary directory.
pub struct Lab {
    /// rsyslogd and sshd, killed when the lab is dropped.
    daemons: Vec<Child>,
    server: Option<Child>,
    ns: Namespaces,
    tmp: tempfile::TempDir,
}

impl Lab {
    /// Two fresh namespaces joined by a veth pair. `tag` keeps names
    /// unique between tests running at once.
    pub fn new(tag: &str) -> Lab {
        static N: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "f3e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespaces {
            srv: format!("{id}-s"),
            atk: format!("{id}-a"),
        };
        for n in [&ns.srv, &ns.atk] {
            let _ = run("ip", &["netns", "del", n]);
            must("ip", &["netns", "add", n]);
        }
        let tmp = tempfile::Builder::new().prefix("f3e2e").tempdir().unwrap();
        let lab = Lab {
            daemons: Vec::new(),
            server: None,
            ns,
            tmp,
        };
        let (s, a) = (lab.ns.srv.as_str(), lab.ns.atk.as_str());
        must(
            "ip",
            &[
                "-n", s, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", a,
            ],
        );
        must("ip", &["-n", s, "addr", "add", "192.0.2.1/24", "dev", "v0"]);
        for addr in ATTACKERS {
            must(
                "ip",
                &["-n", a, "addr", "add", &format!("{addr}/24"), "dev", "v1"],
            );
        }
        for (n, dev) in [(s, "v0"), (a, "v1"), (s, "lo"), (a, "lo")] {
            must("ip", &["-n", n, "link", "set", dev, "up"]);
        }
        lab
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    /// `text` with `@T@` standing for the lab's directory.
    pub fn expand(&self, text: &str) -> String {
        text.replace("@T@", self.dir().to_str().unwrap())
    }

    /// Runs a program in the server namespace.
    pub fn in_srv(&self, args: &[&str]) -> Output {
        let mut a = vec!["netns", "exec", self.ns.srv.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Stdout of a program in the server namespace that must succeed.
    pub fn in_srv_ok(&self, args: &[&str]) -> String {
        let o = self.in_srv(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Starts rsyslogd in the server namespace: a socket of its own
    /// (`dev/log` in the lab directory) and auth/authpriv messages into
    /// `auth.log` in the classic syslog format, timestamps included.
    pub fn start_syslog(&mut self) {
        fs::create_dir_all(self.path("dev")).unwrap();
        let conf = self.expand(
            r#"module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="@T@/dev/log" CreatePath="on" RateLimit.Interval="0")
global(workDirectory="@T@")
auth,authpriv.* action(type="omfile" file="@T@/auth.log" template="RSYSLOG_TraditionalFileFormat")
"#,
        );
        fs::write(self.path("rsyslog.conf"), conf).unwrap();
        let out = fs::File::create(self.path("rsyslog.out")).unwrap();
        let rsyslog_conf = self.path("rsyslog.conf");
        let pid = self.path("rsyslog.pid");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.srv, "rsyslogd", "-n", "-f"])
            .arg(&rsyslog_conf)
            .arg("-i")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start rsyslogd");
        self.daemons.push(child);
        let sock = self.path("dev/log");
        self.wait("rsyslogd made its socket", || sock.exists());
    }

    /// Starts a real sshd on 192.0.2.1:22 in the server namespace, with
    /// its own host key and configuration. It logs with syslog(3) to
    /// `/dev/log`, which in its private mount namespace is the lab's
    /// rsyslogd socket (bind mounts made there never reach the host).
    pub fn start_sshd(&mut self) {
        let key = self.path("ssh_host_ed25519_key");
        must(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
        );
        let conf = self.expand(
            "Port 22
ListenAddress 192.0.2.1
HostKey @T@/ssh_host_ed25519_key
PidFile @T@/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
StrictModes no
SyslogFacility AUTH
LogLevel INFO
MaxStartups 100
LoginGraceTime 20
",
        );
        fs::write(self.path("sshd_config"), conf).unwrap();
        let script = self.expand(
            "set -e
for f in null zero random urandom; do : > @T@/dev/$f; mount --bind /dev/$f @T@/dev/$f; done
mount --bind @T@/dev /dev
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -m 755 /run/sshd
exec /usr/sbin/sshd -D -f @T@/sshd_config
",
        );
        let out = fs::File::create(self.path("sshd.out")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.srv, "unshare", "-m"])
            .args(["--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start sshd");
        self.daemons.push(child);
        self.wait("sshd answers", || self.probe(ATTACKERS[0]) == Reach::Open);
        self.wait("sshd logs through rsyslogd", || {
            self.auth_log()
                .contains("Server listening on 192.0.2.1 port 22")
        });
    }

    /// What rsyslogd wrote to auth.log so far.
    pub fn auth_log(&self) -> String {
        fs::read_to_string(self.path("auth.log")).unwrap_or_default()
    }

    /// A TCP connection from `src` (an attacker address) to sshd.
    pub fn probe(&self, src: &str) -> Reach {
        let o = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.ns.atk,
                "python3",
                "-c",
                PROBE,
                src,
                SRV,
            ],
        );
        let out = String::from_utf8_lossy(&o.stdout);
        match out.split_whitespace().next() {
            Some("open") => Reach::Open,
            Some("refused") => Reach::Refused,
            Some("timeout") => Reach::Timeout,
            _ => Reach::Other,
        }
    }

    /// One ssh login attempt from `src` as `user`, which sshd refuses: no
    /// key, no password (BatchMode). The user name goes through an
    /// ssh_config file: ssh refuses shell metacharacters in names given on
    /// its command line, not in names from its configuration.
    pub fn ssh_fail(&self, src: &str, user: &str) {
        assert!(
            !user.contains(['\n', '%', ' ', '/']),
            "ssh_config cannot carry {user:?}"
        );
        let quoted = user.replace('\\', "\\\\").replace('"', "\\\"");
        let conf = self.path(&format!("ssh_config-{src}"));
        fs::write(
            &conf,
            format!(
                "Host target\n HostName {SRV}\n User \"{quoted}\"\n BindAddress {src}\n BatchMode yes\n StrictHostKeyChecking no\n UserKnownHostsFile /dev/null\n IdentitiesOnly yes\n IdentityFile /dev/null\n ConnectTimeout 5\n LogLevel QUIET\n"
            ),
        )
        .unwrap();
        let o = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.ns.atk,
                "timeout",
                "20",
                "ssh",
                "-F",
                conf.to_str().unwrap(),
                "target",
                "true",
            ],
        );
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("invalid characters"),
            "ssh refused the user name {user:?}"
        );
    }

    /// Sends `message` to the lab's rsyslogd as `sshd[4242]` (facility
    /// auth), for what no ssh client can send: a user name holding a
    /// newline, say.
    pub fn syslog_as_sshd(&self, message: &str) {
        let sock = self.path("dev/log");
        let args = [
            "-u",
            sock.to_str().unwrap(),
            "-t",
            "sshd",
            "--id=4242",
            "-p",
            "auth.info",
            "--",
            message,
        ];
        must("logger", &args);
    }

    /// Copies the reference fail2ban's stock tree to `conf/` and adds a
    /// fail2ban.local keeping the daemon's files (log, socket, pid,
    /// database) in the lab, and `jail_local` as jail.local.
    pub fn stock_tree(&self, reference: &Path, jail_local: &str) {
        must(
            "cp",
            &[
                "-r",
                reference.join("etc/fail2ban").to_str().unwrap(),
                self.path("conf").to_str().unwrap(),
            ],
        );
        self.write_conf(
            "fail2ban.local",
            "[Definition]
loglevel = INFO
logtarget = @T@/fail3ban.log
socket = @T@/f3.sock
pidfile = @T@/f3.pid
dbfile = @T@/f3.sqlite3
",
        );
        self.write_conf("jail.local", jail_local);
    }

    /// Writes a file under `conf/`, `@T@` expanded.
    pub fn write_conf(&self, rel: &str, text: &str) {
        fs::write(self.path("conf").join(rel), self.expand(text)).unwrap();
    }

    /// Starts fail3ban-server in the server namespace on `conf/`.
    pub fn start_server(&mut self) {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("server.out"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.srv, SERVER, "-f", "-x", "-c"])
            .arg(self.path("conf"))
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start fail3ban-server");
        self.server = Some(child);
        self.wait("fail3ban-server answers", || self.client(&["ping"]).0);
    }

    /// fail3ban-client on the lab's tree: success and stdout.
    pub fn client(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new(CLIENT)
            .arg("-c")
            .arg(self.path("conf"))
            .args(["--timeout", "30"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run fail3ban-client");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// fail3ban-client, which must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.client(args);
        assert!(ok, "fail3ban-client {args:?}: {out}\n{}", self.report());
        out
    }

    /// The addresses `status <jail>` lists as banned.
    pub fn banned(&self, jail: &str) -> Vec<String> {
        self.ok(&["status", jail])
            .lines()
            .find_map(|l| l.split_once("Banned IP list:"))
            .map(|(_, v)| v.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }

    /// `stop` through the client; the server must then end.
    pub fn stop_server(&mut self) {
        self.ok(&["stop"]);
        let mut child = self.server.take().unwrap();
        let deadline = Instant::now() + WAIT;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "fail3ban-server did not end after stop\n{}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole firewall state of the server namespace (iptables,
    /// ip6tables, nftables, ipset).
    pub fn firewall(&self) -> String {
        let mut s = String::new();
        for cmd in [
            &["iptables-save"][..],
            &["ip6tables-save"],
            &["nft", "list", "ruleset"],
            &["ipset", "list"],
        ] {
            let o = self.in_srv(cmd);
            s.push_str(&format!("--- {}\n", cmd.join(" ")));
            s.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        s
    }

    /// Logs to show when something fails.
    pub fn report(&self) -> String {
        let read = |f: &str| {
            String::from_utf8_lossy(&fs::read(self.path(f)).unwrap_or_default()).into_owned()
        };
        format!(
            "--- fail3ban.log\n{}--- server.out\n{}--- auth.log\n{}--- sshd.out\n{}--- rsyslog.out\n{}{}",
            read("fail3ban.log"),
            read("server.out"),
            read("auth.log"),
            read("sshd.out"),
            read("rsyslog.out"),
            self.firewall()
        )
    }

    /// Polls `cond` until it holds; panics with the lab's logs after
    /// [`WAIT`].
    pub fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond() {
            if Instant::now() > deadline {
                panic!("timed out waiting until {what}\n{}", self.report());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("F3_REPORT").is_some() {
            eprintln!("{}", self.report());
        }
        // The server first: its actions must not run against a namespace
        // that is going away.
        for c in self.server.iter_mut().chain(self.daemons.iter_mut().rev()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
