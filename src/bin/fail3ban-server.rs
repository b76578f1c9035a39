//! fail3ban-server: the daemon, with fail2ban-server's options.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use fail3ban::server::log::{Log, LogLayer, LogLevel, Target};
use fail3ban::server::{self, Server};
use tracing_subscriber::layer::SubscriberExt;

const USAGE: &str = "Usage: fail3ban-server [OPTIONS]

Options:
    -c, --conf <DIR>        configuration directory (default /etc/fail3ban);
                            any fail2ban tree, /etc/fail2ban included
    -s <FILE>               socket path
    -p <FILE>               pidfile path
    --loglevel <LEVEL>      logging level
    --logtarget <TARGET>    logging target: a file, STDOUT, STDERR, SYSLOG or SYSTEMD-JOURNAL
    -f                      start in foreground
    -b                      start in background (the default)
    -x                      accepted for fail2ban's command lines: a stale socket
                            is replaced without it, and nothing else at the
                            socket path (a file, a directory, a symlink) ever is
    -h, --help              this help
    -V, --version           the version";

#[derive(Debug)]
struct Args {
    conf: String,
    socket: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    loglevel: Option<String>,
    logtarget: Option<String>,
    foreground: bool,
}

fn parse_args() -> Result<Option<Args>> {
    let mut a = Args {
        conf: "/etc/fail3ban".into(),
        socket: None,
        pidfile: None,
        loglevel: None,
        logtarget: None,
        foreground: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().with_context(|| format!("{what} needs a value")),
            }
        };
        match name.as_str() {
            "-c" | "--conf" => a.conf = value("-c")?,
            "-s" | "--socket" => a.socket = Some(value("-s")?.into()),
            "-p" | "--pidfile" => a.pidfile = Some(value("-p")?.into()),
            "--loglevel" => a.loglevel = Some(value("--loglevel")?),
            "--logtarget" => a.logtarget = Some(value("--logtarget")?),
            "-f" => a.foreground = true,
            "-b" => a.foreground = false,
            "-x" | "--async" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("fail3ban {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(Some(a))
}

/// Starts the server again as a detached foreground process and returns.
/// It runs in `/`, as fail2ban's daemon does, so that it keeps no
/// directory in use; paths given relative to the caller's directory are
/// made absolute first.
fn daemonize(a: &Args) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("finding my own executable")?;
    let abs = |p: &Path| -> Result<OsString> {
        Ok(std::path::absolute(p)
            .with_context(|| format!("resolving {}", p.display()))?
            .into_os_string())
    };
    let mut args: Vec<OsString> = vec!["-f".into(), "-c".into(), abs(Path::new(&a.conf))?];
    for (flag, path) in [("-s", &a.socket), ("-p", &a.pidfile)] {
        if let Some(p) = path {
            args.extend([flag.into(), abs(p)?]);
        }
    }
    if let Some(level) = &a.loglevel {
        args.extend(["--loglevel".into(), level.into()]);
    }
    if let Some(target) = &a.logtarget {
        let target = match Target::parse(target) {
            Target::File(p) => abs(&p)?,
            _ => target.into(),
        };
        args.extend(["--logtarget".into(), target]);
    }
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe; it detaches the child from our
    // terminal and process group so it outlives the caller.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .context("starting the server in the background")?;
    Ok(())
}

fn run(args: Args) -> Result<()> {
    let paths = server::paths(&args.conf);
    let socket = args.socket.clone().unwrap_or(paths.socket);
    let pidfile = args.pidfile.clone().unwrap_or(paths.pidfile);
    let loader = fail3ban::config::parser::Loader::new(&args.conf);
    let early = fail3ban::config::server::early_options(&loader).unwrap_or_default();
    let level_text = args
        .loglevel
        .clone()
        .or_else(|| early.get("loglevel").map(|v| v.to_text()))
        .unwrap_or_else(|| "INFO".into());
    let target_text = args
        .logtarget
        .clone()
        .or_else(|| early.get("logtarget").map(|v| v.to_text()))
        .unwrap_or_else(|| "STDERR".into());
    let level = LogLevel::parse(&level_text)
        .with_context(|| format!("invalid log level {level_text:?}"))?;
    // A log in a format nobody asked for would go unread: a bad
    // `logformat` stops the start, naming file, section and option.
    let format = fail3ban::config::server::log_format(&loader)?;
    let log = Log::new(Target::parse(&target_text), level)
        .with_context(|| format!("opening the log {target_text}"))?
        .with_format(format);
    let subscriber = tracing_subscriber::registry().with(LogLayer::new(log.clone()));
    tracing::subscriber::set_global_default(subscriber).context("setting up logging")?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // The blocking pool builds the jails at start and writes the
        // database now and then: an idle thread ends after a second
        // instead of tokio's ten, so that the daemon, idle most of its
        // life, does not keep the stacks those left behind.
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let listener = server::control::bind(&socket)
            .await
            .with_context(|| format!("binding {}", socket.display()))?;
        if let Err(e) = write_pidfile(&pidfile) {
            let _ = std::fs::remove_file(&socket);
            return Err(e);
        }
        tracing::info!(
            "Starting Fail2ban v{} (fail3ban)",
            env!("CARGO_PKG_VERSION")
        );
        let log2 = log.clone();
        let srv = Arc::new(Server::new(&args.conf, log));
        // The logging options given on the command line win over the tree's.
        if args.loglevel.is_some() || args.logtarget.is_some() {
            srv.keep_log_options();
        }
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .expect("SIGHUP handler");
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return,
                    _ = term.recv() => return,
                    // fail2ban reopens its log on SIGUSR1/HUP for logrotate.
                    _ = hup.recv() => { let _ = log2.reopen(); }
                }
            }
        };
        server::run(srv, listener, shutdown).await;
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(&pidfile);
        Ok::<(), anyhow::Error>(())
    })
}

/// Writes the pid file, never through a symlink (see `server::files`).
fn write_pidfile(path: &Path) -> Result<()> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        let mut f = server::files::open_append(path)?;
        f.set_len(0)?;
        writeln!(f, "{}", std::process::id())
    };
    write().with_context(|| format!("writing the pid file {}", path.display()))
}

/// Nothing the server creates (log, pid file, socket, database and their
/// directories, filters it learns) may be writable by anyone but root,
/// nor readable by others, whatever umask it was started with: a log
/// others can write lets them forge the lines the recidive jail bans on.
/// A stricter umask (the unit's 0027, or 0077) is kept. The database and
/// the socket are made owner-only where they are created.
fn restrict_umask() {
    // SAFETY: umask only reads and sets the process's file creation mask;
    // called before any other thread exists.
    unsafe {
        let caller = libc::umask(0o077);
        libc::umask(caller | 0o027);
    }
}

/// glibc gives each thread that allocates an arena of its own, up to eight
/// per core, each keeping a few hundred KiB resident. The daemon's threads
/// (runtime workers, blocking-pool threads, the log readers) allocate
/// little, so two arenas serve them.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    restrict_umask();
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            return ExitCode::from(255);
        }
    };
    if !args.foreground {
        return match daemonize(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ERROR: {e:#}");
                ExitCode::from(255)
            }
        };
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            tracing::error!("{e:#}");
            ExitCode::from(255)
        }
    }
}
