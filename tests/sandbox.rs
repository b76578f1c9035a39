//! The file-system protections of the packaged unit, debian/fail3ban.service,
//! applied to a process as systemd applies them: in a private mount
//! namespace (`unshare --mount`), the paths ProtectSystem=, ProtectHome=
//! and ReadOnlyPaths= protect are read-only with every mount below them,
//! then the unit's ReadWritePaths= are writable again. The unit's
//! configuration directory there is a test tree, on a private overlay of
//! its parent, so the host's /etc and mounts are never touched.
//!
//! Everything is read from the unit file, so that a change to the unit or
//! to the paths fail3ban writes shows in the tests that run under it. A
//! file-system setting this module does not apply fails the parse rather
//! than being left out unnoticed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit the package installs (cargo-deb's `systemd-units`).
pub(crate) const UNIT: &str = "debian/fail3ban.service";

/// Settings of the file-system family that this module does not apply.
/// PrivateTmp= is not among them on purpose: the test trees keep their
/// logs and socket in /tmp, and fail3ban writes nothing of its own there.
const NOT_APPLIED: [&str; 9] = [
    "InaccessiblePaths",
    "TemporaryFileSystem",
    "BindPaths",
    "BindReadOnlyPaths",
    "RootDirectory",
    "RootImage",
    "ConfigurationDirectory",
    "StateDirectory",
    "ProtectProc",
];

/// What the packaged unit says about running the server and what it may
/// write.
#[derive(Debug)]
pub(crate) struct Unit {
    /// ExecStart=, split into words, `$VAR`s not yet substituted.
    exec_start: Vec<String>,
    /// Environment= assignments.
    env: HashMap<String, String>,
    /// Read-only paths, with every mount below them.
    read_only: Vec<String>,
    /// Writable paths again, and whether each may be missing (`-`).
    read_write: Vec<(String, bool)>,
}

impl Unit {
    /// The packaged unit, parsed.
    pub(crate) fn packaged() -> Unit {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(UNIT);
        Unit::parse(&std::fs::read_to_string(&path).unwrap())
    }

    fn parse(text: &str) -> Unit {
        let mut unit = Unit {
            exec_start: Vec::new(),
            env: HashMap::new(),
            read_only: Vec::new(),
            read_write: Vec::new(),
        };
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            assert!(!line.ends_with('\\'), "{UNIT}: continued lines: {line}");
            if let Some(name) = line.strip_prefix('[') {
                section = name.trim_end_matches(']').to_string();
                continue;
            }
            if section != "Service" {
                continue;
            }
            let (key, value) = line.split_once('=').unwrap();
            let (key, value) = (key.trim(), value.trim());
            assert!(
                !NOT_APPLIED.contains(&key),
                "{UNIT}: {key}= is not applied by tests/sandbox.rs: teach it"
            );
            match key {
                "ExecStart" => {
                    unit.exec_start = value.split_whitespace().map(String::from).collect();
                }
                "Environment" => {
                    let (k, v) = value.split_once('=').unwrap();
                    unit.env.insert(k.to_string(), v.to_string());
                }
                "ProtectSystem" => unit.read_only.extend(protect_system(value)),
                "ProtectHome" => unit.read_only.extend(protect_home(value)),
                "ReadOnlyPaths" => unit
                    .read_only
                    .extend(paths(value).into_iter().map(|(p, _)| p)),
                "ReadWritePaths" => unit.read_write.extend(paths(value)),
                _ => {}
            }
        }
        assert!(!unit.exec_start.is_empty(), "{UNIT}: no ExecStart=");
        unit
    }

    /// The configuration directory the unit runs with by default.
    pub(crate) fn conf_dir(&self) -> &str {
        &self.env["FAIL3BAN_CONF"]
    }

    /// ExecStart= with `env` over the unit's Environment=: `${VAR}` is one
    /// word, `$VAR` splits into words (none when empty), as systemd reads
    /// them.
    fn command_line(&self, env: &[(&str, &str)]) -> Vec<String> {
        let mut vars = self.env.clone();
        for (k, v) in env {
            vars.insert(k.to_string(), v.to_string());
        }
        let mut words = Vec::new();
        for w in &self.exec_start {
            if let Some(name) = w.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
                words.push(vars[name].clone());
            } else if let Some(name) = w.strip_prefix('$') {
                words.extend(vars[name].split_whitespace().map(String::from));
            } else {
                assert!(!w.contains('$'), "{UNIT}: ExecStart word {w}");
                words.push(w.clone());
            }
        }
        words
    }

    /// The unit's server command run under its protections, with `tree`
    /// at `conf` (which ExecStart= gets as FAIL3BAN_CONF) and the built
    /// fail3ban-server in place of the installed one. `scratch` is an
    /// empty directory for the namespace's private mounts.
    pub(crate) fn command(&self, tree: &Path, conf: &str, scratch: &Path) -> Command {
        let mut argv = self.command_line(&[("FAIL3BAN_CONF", conf)]);
        assert_eq!(
            argv[0], "/usr/bin/fail3ban-server",
            "{UNIT}: ExecStart runs {}",
            argv[0]
        );
        argv[0] = crate::util::SERVER.to_string();
        let conf = Path::new(conf);
        let parent = conf.parent().unwrap();
        let q = |p: &Path| quote(p.to_str().unwrap());
        let mut script = format!(
            "set -eu\n\
             mount -t tmpfs f3sandbox {s}\n\
             mkdir {s}/upper {s}/work\n\
             mount -t overlay f3sandbox -o lowerdir={p},upperdir={s}/upper,workdir={s}/work {p}\n\
             mkdir -p {c}\n\
             mount --bind {t} {c}\n",
            s = q(scratch),
            p = q(parent),
            c = q(conf),
            t = q(tree),
        );
        for p in &self.read_only {
            script.push_str(&format!(
                "if [ -e {p} ]; then\n  mount --rbind {p} {p}\n  \
                 findmnt -R -n -l -o TARGET {p} | while read -r m; do mount -o remount,bind,ro \"$m\"; done\nfi\n",
                p = quote(p)
            ));
        }
        for (p, optional) in &self.read_write {
            let bind = format!(
                "mount --bind {p} {p}; mount -o remount,bind,rw {p}",
                p = quote(p)
            );
            if *optional {
                script.push_str(&format!("if [ -e {} ]; then {bind}; fi\n", quote(p)));
            } else {
                script.push_str(&format!("{bind}\n"));
            }
        }
        script.push_str("exec \"$@\"\n");
        let mut cmd = Command::new("unshare");
        // No --fork: the server is the process the test started, and the
        // namespace ends with it.
        cmd.args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
            .arg(script)
            .arg("sh")
            .args(argv);
        cmd
    }
}

/// The directories ProtectSystem= makes read-only.
fn protect_system(value: &str) -> Vec<String> {
    let dirs: &[&str] = match value {
        "no" | "false" => &[],
        "yes" | "true" => &["/usr", "/boot", "/efi"],
        "full" => &["/usr", "/boot", "/efi", "/etc"],
        "strict" => panic!("{UNIT}: ProtectSystem=strict is not applied by tests/sandbox.rs"),
        other => panic!("{UNIT}: ProtectSystem={other}"),
    };
    dirs.iter().map(|d| d.to_string()).collect()
}

/// The directories ProtectHome= makes read-only.
fn protect_home(value: &str) -> Vec<String> {
    match value {
        "no" | "false" => Vec::new(),
        "read-only" => ["/home", "/root", "/run/user"].map(String::from).to_vec(),
        other => panic!("{UNIT}: ProtectHome={other} is not applied by tests/sandbox.rs"),
    }
}

/// A path list: each path, and whether it may be missing (`-`).
fn paths(value: &str) -> Vec<(String, bool)> {
    value
        .split_whitespace()
        .map(|p| match p.strip_prefix('-') {
            Some(p) => (p.to_string(), true),
            None => {
                assert!(p.starts_with('/'), "{UNIT}: path {p}");
                (p.to_string(), false)
            }
        })
        .collect()
}

/// `s` as one shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The directories the package installs under /etc/fail3ban (the asset
/// destinations in Cargo.toml's `[package.metadata.deb]`), relative to it.
pub(crate) fn packaged_conf_dirs() -> Vec<PathBuf> {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut dirs: Vec<PathBuf> = manifest
        .split('"')
        .filter_map(|w| w.strip_prefix("etc/fail3ban/"))
        .filter(|w| w.ends_with('/'))
        .map(PathBuf::from)
        .collect();
    dirs.sort();
    dirs.dedup();
    assert!(
        dirs.contains(&PathBuf::from("filter.d")),
        "Cargo.toml ships {dirs:?}"
    );
    dirs
}

#[test]
fn the_packaged_unit_is_read() {
    let unit = Unit::packaged();
    assert_eq!(unit.conf_dir(), "/etc/fail3ban");
    assert!(unit.read_only.iter().any(|p| p == "/etc"), "{unit:?}");
    let argv = unit.command_line(&[("FAIL3BAN_CONF", "/etc/fail2ban")]);
    assert!(
        argv.windows(2).any(|w| w == ["-c", "/etc/fail2ban"]),
        "{argv:?}"
    );
    assert!(argv.iter().all(|w| !w.is_empty()), "{argv:?}");
}
