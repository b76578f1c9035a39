//! Running one command with `/bin/sh -c` under a timeout: every process
//! fail3ban starts (actions, their hooks, mail, the ignorecommand) starts
//! here.
//!
//! Each command gets its own process group, so that a timeout ends the
//! whole tree a script started (a `sleep` inside a pipeline, say) and not
//! just the shell. Nothing here is shared between commands: a slow action
//! of one jail never waits on a lock another jail holds.
//!
//! Each command gets a fixed environment, not the daemon's: the daemon
//! holds the AI's API key and whatever else its service file gives it,
//! and an action (a webhook, a mail, a script found on the net) has no
//! business seeing them. See [`environment`].

use std::ffi::OsString;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::template::ShellCommand;

/// Output kept per stream; the rest is read and dropped so that a chatty
/// command does not block on a full pipe.
const MAX_OUTPUT: usize = 64 * 1024;

/// How long a timed-out group gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(200);

/// How long to wait for the pipes to close once the shell has ended; a
/// daemon that left the group may keep them open forever.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// `PATH` of every command: the system's directories, in the order a
/// root shell has them. A program anywhere else is named by its path.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `HOME` of every command: fail3ban runs as root.
pub const HOME: &str = "/root";

/// Variables passed on from the daemon when it has them: the locale and
/// the time zone, which change what commands print (dates in mails), not
/// what they may do.
const PASSED: [&str; 16] = [
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_ADDRESS",
    "LC_COLLATE",
    "LC_CTYPE",
    "LC_IDENTIFICATION",
    "LC_MEASUREMENT",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NAME",
    "LC_NUMERIC",
    "LC_PAPER",
    "LC_TELEPHONE",
    "LC_TIME",
    "TZ",
];

/// Whether a variable's name says it may hold a secret. Such a variable
/// is never passed on, whatever [`PASSED`] comes to hold.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.starts_with("OPENAI")
        || [
            "KEY",
            "TOKEN",
            "SECRET",
            "PASSW",
            "CREDENTIAL",
            "AUTH",
            "COOKIE",
            "PRIVATE",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// The environment of every command: `PATH` and `HOME` as above, and
/// those of [`PASSED`] the daemon has. Nothing else: `/bin/sh` adds `PWD`
/// itself, and commands run in `/`.
pub fn environment() -> &'static [(OsString, OsString)] {
    static ENV: OnceLock<Vec<(OsString, OsString)>> = OnceLock::new();
    ENV.get_or_init(|| build_environment(std::env::vars_os(), &PASSED))
}

fn build_environment(
    daemon: impl Iterator<Item = (OsString, OsString)>,
    passed: &[&str],
) -> Vec<(OsString, OsString)> {
    let mut env = vec![
        (OsString::from("PATH"), OsString::from(PATH)),
        (OsString::from("HOME"), OsString::from(HOME)),
    ];
    for (name, value) in daemon {
        let Some(n) = name.to_str() else { continue };
        if passed.contains(&n) && !looks_secret(n) {
            env.push((name, value));
        }
    }
    env
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// It ran past its timeout and its process group was killed.
    TimedOut,
    /// It could not be started.
    SpawnFailed(String),
}

/// The result of one command.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: Status,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }
}

/// Runs commands for actions. The server uses [`ShellRunner`]; tests record
/// what would run.
pub trait Runner: Send + Sync {
    /// Runs `cmd`, true when it succeeded.
    fn run<'a>(
        &'a self,
        cmd: &'a ShellCommand,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// Runs commands with `/bin/sh`, logging failures as fail2ban does.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShellRunner;

impl Runner for ShellRunner {
    fn run<'a>(
        &'a self,
        cmd: &'a ShellCommand,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move { execute(cmd, timeout).await.success() })
    }
}

/// Kills the process group when dropped while armed: if whoever awaits a
/// command goes away (shutdown), its processes must not linger. Declared
/// after the child, so it drops (and kills) before the child is reaped.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&self, signal: i32) {
        if let Some(pgid) = self.0 {
            // SAFETY: plain syscall on a process group this module created.
            unsafe {
                libc::killpg(pgid, signal);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill(libc::SIGKILL);
    }
}

async fn read_capped(r: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut r) = r else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    // On the heap: an 8 KiB array would make this future, and every
    // stack frame that builds and spawns it (inlined into the callers of
    // `execute`, the server's start among them), 8 KiB larger, several
    // times over for the copies; stack pages once touched stay resident.
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Runs `cmd` with `/bin/sh -c`, its values as positional parameters,
/// stdin from /dev/null, in `/` with [`environment`], and kills its
/// process group after `timeout`. Failures are logged with the command
/// and its output.
pub async fn execute(cmd: &ShellCommand, timeout: Duration) -> Output {
    execute_expecting(cmd, timeout, &[0]).await
}

/// [`execute`], with the exit codes that are not failures (the
/// ignorecommand's 1 means "ban", as fail2ban's `success_codes`).
pub async fn execute_expecting(cmd: &ShellCommand, timeout: Duration, ok: &[i32]) -> Output {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    tracing::trace!("{id:x} -- exec: {cmd}");
    let output = run(cmd, timeout).await;
    log_result(id, cmd, timeout, &output, ok);
    output
}

async fn run(cmd: &ShellCommand, timeout: Duration) -> Output {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&cmd.script)
        .args(&cmd.args)
        .env_clear()
        .envs(environment().iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                status: Status::SpawnFailed(e.to_string()),
                stdout: Vec::new(),
                stderr: Vec::new(),
            }
        }
    };
    let mut guard = GroupGuard(child.id().and_then(|p| i32::try_from(p).ok()));
    let stdout = tokio::spawn(read_capped(child.stdout.take()));
    let stderr = tokio::spawn(read_capped(child.stderr.take()));
    let status = tokio::select! {
        s = child.wait() => Some(s),
        _ = tokio::time::sleep(timeout) => None,
    };
    // Signals go to the group only while the shell is unreaped: its pid
    // (the group id) cannot be reused by another command before that.
    let status = match status {
        Some(Ok(s)) => match (s.code(), s.signal()) {
            (Some(c), _) => Status::Exited(c),
            (None, Some(sig)) => Status::Signaled(sig),
            _ => Status::Exited(-1),
        },
        Some(Err(e)) => Status::SpawnFailed(e.to_string()),
        None => {
            guard.kill(libc::SIGTERM);
            tokio::time::sleep(TERM_GRACE).await;
            // The whole tree, even if the shell obeyed: its children may
            // have ignored SIGTERM.
            guard.kill(libc::SIGKILL);
            let _ = child.wait().await;
            Status::TimedOut
        }
    };
    guard.0 = None;
    let drain = |h: tokio::task::JoinHandle<Vec<u8>>| async move {
        match tokio::time::timeout(DRAIN_WAIT, h).await {
            Ok(Ok(v)) => v,
            _ => Vec::new(),
        }
    };
    let stdout = drain(stdout).await;
    let stderr = drain(stderr).await;
    Output {
        status,
        stdout,
        stderr,
    }
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// Logs as fail2ban's `Utils.executeCmd`: quiet on success, on failure the
/// command, every line of its output, and how it ended.
fn log_result(id: u64, cmd: &ShellCommand, timeout: Duration, out: &Output, ok: &[i32]) {
    if matches!(out.status, Status::Exited(c) if ok.contains(&c)) {
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            tracing::debug!("{id:x} -- stdout: {l:?}");
        }
        if let Status::Exited(c) = out.status {
            tracing::debug!("{id:x} -- returned successfully {c}");
        }
        return;
    }
    tracing::error!("{id:x} -- exec: {cmd}");
    match &out.status {
        Status::SpawnFailed(e) => {
            tracing::error!("{cmd} -- failed with {e}");
            return;
        }
        Status::TimedOut => {
            tracing::error!(
                "{id:x} -- timed out after {} seconds.",
                timeout.as_secs_f64()
            );
        }
        _ => {}
    }
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        tracing::error!("{id:x} -- stdout: {l:?}");
    }
    for l in String::from_utf8_lossy(&out.stderr).lines() {
        tracing::error!("{id:x} -- stderr: {l:?}");
    }
    match out.status {
        Status::Signaled(sig) => {
            tracing::error!(
                "{id:x} -- killed with {} (return code: {})",
                signal_name(sig),
                -sig
            );
        }
        Status::Exited(code) if code > 128 => {
            tracing::error!(
                "{id:x} -- killed with {} (return code: {code})",
                signal_name(code - 128)
            );
        }
        Status::Exited(code) => {
            tracing::error!("{id:x} -- returned {code}");
            if code == 127 {
                tracing::info!(
                    "HINT on 127: \"Command not found\".  Make sure that all commands in {:?} \
                     are in the PATH of fail3ban-server process.",
                    cmd.script
                );
            }
        }
        Status::TimedOut => tracing::error!(
            "{id:x} -- killed with SIGKILL (return code: -{})",
            libc::SIGKILL
        ),
        Status::SpawnFailed(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn runs_with_parameters() {
        let cmd = ShellCommand {
            script: "f2bV_x=$0 \nprintf '%s' \"$f2bV_x\"; echo err >&2".into(),
            args: vec!["$(id) `id`".into()],
        };
        let out = execute(&cmd, Duration::from_secs(5)).await;
        assert!(out.success());
        assert_eq!(out.stdout, b"$(id) `id`");
        assert_eq!(out.stderr, b"err\n");
    }

    /// What a command sees: the fixed set, never a secret, even one the
    /// allow-list were to name.
    #[test]
    fn environment_is_fixed_and_never_secret() {
        let daemon = [
            ("OPENAI_API_KEY", "sk-x"),
            ("OPENAI_ORG_ID", "org-x"),
            ("OPENAI_PROJECT_ID", "proj-x"),
            ("NATS_TOKEN", "t"),
            ("DB_PASSWORD", "p"),
            ("AWS_SECRET_ACCESS_KEY", "k"),
            ("GITHUB_TOKEN", "g"),
            ("x_api_key", "k"),
            ("LANG", "C.UTF-8"),
            ("TZ", "UTC"),
            ("HOME", "/home/x"),
            ("PATH", "/opt/x:/usr/bin"),
            ("LD_PRELOAD", "/tmp/x.so"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let names = |passed: &[&str]| -> Vec<String> {
            build_environment(daemon.clone().into_iter(), passed)
                .into_iter()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect()
        };
        let want = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "LANG=C.UTF-8",
            "TZ=UTC",
        ];
        assert_eq!(names(&PASSED), want);
        let mut grown: Vec<&str> = PASSED.to_vec();
        grown.extend(daemon.iter().filter_map(|(k, _)| k.to_str()));
        let grown = names(&grown);
        assert!(grown.contains(&"LD_PRELOAD=/tmp/x.so".to_string()));
        for (k, _) in &daemon[..8] {
            let k = k.to_str().unwrap();
            assert!(looks_secret(k), "{k}");
            assert!(!grown.iter().any(|v| v.starts_with(k)), "{k} passed");
        }
        for k in PASSED.iter().chain(&["PATH", "HOME"]) {
            assert!(!looks_secret(k), "{k}");
        }
    }

    #[tokio::test]
    async fn runs_in_root_with_the_fixed_environment() {
        let out = execute(&ShellCommand::plain("pwd; env"), Duration::from_secs(5)).await;
        assert!(out.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("/\n"), "{text}");
        let mut names: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        names.sort();
        let mut want: Vec<&str> = environment()
            .iter()
            .filter_map(|(k, _)| k.to_str())
            .chain(["PWD"])
            .collect();
        want.sort();
        assert_eq!(names, want);
    }

    #[tokio::test]
    async fn exit_codes() {
        let out = execute(&ShellCommand::plain("exit 3"), Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Exited(3));
        let out = execute(
            &ShellCommand::plain("kill -TERM $$"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(out.status, Status::Signaled(libc::SIGTERM));
    }

    #[tokio::test]
    async fn timeout_kills_the_group() {
        let t0 = Instant::now();
        let out = execute(
            &ShellCommand::plain("trap '' TERM; sleep 30 | cat; sleep 30"),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(out.status, Status::TimedOut);
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn output_is_capped() {
        let out = execute(
            &ShellCommand::plain("head -c 1000000 /dev/zero"),
            Duration::from_secs(10),
        )
        .await;
        assert!(out.success());
        assert_eq!(out.stdout.len(), MAX_OUTPUT);
    }
}
