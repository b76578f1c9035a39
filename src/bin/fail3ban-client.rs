//! fail3ban-client: fail2ban-client's commands and output.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fail3ban::client::beautify::{beautify, beautify_error};
use fail3ban::client::protocol::{decode_response, encode_request, Response};
use fail3ban::config::{format_command, read_tree};
use serde_json::Value;

const USAGE: &str = "Usage: fail3ban-client [OPTIONS] <COMMAND>

Options:
    -c, --conf <DIR>        configuration directory (default /etc/fail3ban);
                            any fail2ban tree, /etc/fail2ban included
    -s <FILE>               socket path
    -p <FILE>               pidfile path
    -d                      dump the resolved configuration as commands
    -t, --test              test the configuration
    -q / -v                 less / more output
    --json                  JSON output for status, stats, banned, get JAIL banip
                            [--with-time] and ai (also accepted as the last word);
                            shapes in docs/json/; a failure is an
                            object with an error key
    --timeout <SECONDS>     how long to wait for the server (default 30)
    --str2sec <STRING>      convert time abbreviation format to seconds
    -h, --help              this help
    -V, --version           the version

Commands (as fail2ban-client's):
    start | stop | restart | reload [<JAIL>] [--restart] [--unban] [--all] [--if-exists]
    status [<JAIL> [FLAVOR]] | status --all [FLAVOR] | stat[istic]s
    ping | version | banned [IP ...] | unban --all | unban IP ...
    set <JAIL> banip IP ... | set <JAIL> unbanip [--report-absent] IP ...
    set <JAIL> <OPTION> <VALUE> | get <JAIL> <OPTION> | get <OPTION> | flushlogs

fail3ban's own:
    import-fail2ban-db [PATH]   import bans and ban history from a fail2ban database
                                (default /var/lib/fail2ban/fail2ban.sqlite3) into the
                                database of the configuration (its dbfile)
    migrate [--dry-run]         move from fail2ban: test /etc/fail2ban, import its
                                database, point /etc/default/fail3ban at /etc/fail2ban,
                                stop and disable fail2ban, enable and start fail3ban;
                                fail2ban's files are only read
    migrate --undo [--dry-run]  go back: /etc/fail3ban, fail3ban stopped and disabled,
                                fail2ban enabled and started";

struct Args {
    conf: String,
    socket: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    dump: bool,
    test: bool,
    verbose: i32,
    timeout: f64,
    json: bool,
    rest: Vec<String>,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        conf: "/etc/fail3ban".into(),
        socket: None,
        pidfile: None,
        dump: false,
        test: false,
        verbose: 1,
        timeout: 30.0,
        json: false,
        rest: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if !args.rest.is_empty() {
            args.rest.push(a);
            continue;
        }
        match a.as_str() {
            "-c" | "--conf" => args.conf = it.next().context("-c needs a directory")?,
            s if s.starts_with("--conf=") => args.conf = s["--conf=".len()..].to_string(),
            "-s" => args.socket = Some(it.next().context("-s needs a path")?.into()),
            "-p" => args.pidfile = Some(it.next().context("-p needs a path")?.into()),
            "-d" | "--dp" | "--dump-pretty" => args.dump = true,
            "-t" | "--test" => args.test = true,
            "--json" => args.json = true,
            "-v" => args.verbose += 1,
            "-q" => args.verbose -= 1,
            "-x" | "-f" | "-b" | "-i" | "--str" | "--async" => {}
            "--timeout" => {
                args.timeout = it
                    .next()
                    .context("--timeout needs seconds")?
                    .parse()
                    .context("--timeout")?
            }
            "--str2sec" => {
                let value = it.next().context("--str2sec needs a time")?;
                str2sec(&value)?;
                return Ok(None);
            }
            s if s.starts_with("--str2sec=") => {
                str2sec(&s["--str2sec=".len()..])?;
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("fail3ban {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            s if s.starts_with('-') && s.len() > 1 => bail!("unknown option {s}\n{USAGE}"),
            _ => args.rest.push(a),
        }
    }
    // `status sshd --json`: how the option is often typed.
    if args.rest.len() > 1 && args.rest.last().map(String::as_str) == Some("--json") {
        args.rest.pop();
        args.json = true;
    }
    Ok(Some(args))
}

/// `--str2sec TIME`: the seconds, printed as fail2ban prints them.
fn str2sec(value: &str) -> Result<()> {
    let secs = fail3ban::config::time::str2seconds_text(value)
        .with_context(|| format!("--str2sec {value:?}"))?;
    println!("{secs}");
    Ok(())
}

fn init_tracing(verbose: i32) {
    let level = match verbose {
        i32::MIN..=0 => tracing::Level::ERROR,
        1 => tracing::Level::WARN,
        2 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Scripts that capture stderr must not get colour escapes.
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .init();
}

/// One command to the server and its answer.
fn send(socket: &Path, cmd: &[Value], timeout: Duration) -> Result<Response> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "Failed to access socket path: {}. Is fail3ban running?",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(encode_request(cmd).as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("reading the server's answer")?;
    decode_response(line.trim_end()).context("the server's answer is not valid")
}

fn ping(socket: &Path) -> bool {
    matches!(
        send(socket, &[Value::from("ping")], Duration::from_secs(2)),
        Ok(Response::Ok(_))
    )
}

/// Starts fail3ban-server (next to this program) in the background and
/// waits until it answers.
fn start_server(args: &Args, socket: &Path, pidfile: &Path) -> Result<()> {
    if ping(socket) {
        bail!("Server already running");
    }
    let exe = std::env::current_exe()?.with_file_name("fail3ban-server");
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(["-b", "-c", &args.conf, "-s"])
        .arg(socket)
        .arg("-p")
        .arg(pidfile);
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    if !status.success() {
        bail!("fail3ban-server could not be started");
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    while Instant::now() < deadline {
        if ping(socket) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "Failed to start server: it did not answer within {} seconds",
        args.timeout
    )
}

fn stop_server(socket: &Path, timeout: f64) -> Result<()> {
    match send(
        socket,
        &[Value::from("stop")],
        Duration::from_secs_f64(timeout),
    )? {
        Response::Ok(v) => println!("{}", beautify(&["stop".to_string()], &v)),
        Response::Error(e) => bail!("{}", beautify_error(&e)),
    }
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn run(args: &Args) -> Result<ExitCode> {
    init_tracing(args.verbose);
    if args.dump {
        let tree =
            read_tree(&args.conf, false).with_context(|| format!("reading {}", args.conf))?;
        let mut out = String::new();
        for cmd in &tree.stream {
            out.push_str(&format_command(cmd));
            out.push('\n');
        }
        print!("{out}");
        if !args.test {
            return Ok(ExitCode::SUCCESS);
        }
    }
    if args.test {
        let problems = match read_tree(&args.conf, true) {
            Ok(tree) => {
                let mut p = fail3ban::server::check::jails(&tree);
                p.splice(0..0, tree.problems);
                p
            }
            Err(e) => vec![e],
        };
        if problems.is_empty() {
            println!("OK: configuration test is successful");
            if args.rest.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
        } else {
            for p in &problems {
                eprintln!("ERROR: {p}");
            }
            eprintln!("ERROR: test configuration failed");
            return Ok(ExitCode::from(255));
        }
    }
    if args.rest.is_empty() {
        bail!("no command given\n{USAGE}");
    }
    match words_first(&args.rest) {
        "import-fail2ban-db" => return import_db(args),
        "migrate" => return migrate(&args.rest[1..]),
        _ => {}
    }
    let paths = fail3ban::server::paths(&args.conf);
    let socket = args.socket.clone().unwrap_or(paths.socket);
    let pidfile = args.pidfile.clone().unwrap_or(paths.pidfile);
    let words = args.rest.clone();
    if args.json {
        return json_command(&socket, &words, args.timeout);
    }
    match words[0].as_str() {
        "start" if words.len() == 1 => {
            start_server(args, &socket, &pidfile)?;
            return Ok(ExitCode::SUCCESS);
        }
        "stop" if words.len() == 1 => {
            stop_server(&socket, args.timeout)?;
            return Ok(ExitCode::SUCCESS);
        }
        "restart" if words.len() == 1 => {
            if ping(&socket) {
                stop_server(&socket, args.timeout)?;
            }
            start_server(args, &socket, &pidfile)?;
            return Ok(ExitCode::SUCCESS);
        }
        "restart" => {
            // `restart <jail>`: reload it with a restart.
            let mut cmd = vec!["reload".to_string(), words[1].clone(), "--restart".into()];
            cmd.extend(words[2..].iter().cloned());
            return command(&socket, &cmd, args.timeout, args.verbose);
        }
        _ => {}
    }
    command(&socket, &words, args.timeout, args.verbose)
}

fn words_first(words: &[String]) -> &str {
    words.first().map_or("", String::as_str)
}

/// `import-fail2ban-db [PATH]`: fail2ban's bans and history into ours.
fn import_db(args: &Args) -> Result<ExitCode> {
    use fail3ban::client::migrate::{import_database, import_summary};
    let src = PathBuf::from(
        args.rest
            .get(1)
            .map_or("/var/lib/fail2ban/fail2ban.sqlite3", String::as_str),
    );
    if args.rest.len() > 2 {
        bail!("import-fail2ban-db takes one database path\n{USAGE}");
    }
    let Some(dst) = fail3ban::server::configured_dbfile(&args.conf)
        .with_context(|| format!("reading the server options of {}", args.conf))?
    else {
        bail!(
            "the configuration in {} keeps no database (dbfile): nothing to import into",
            args.conf
        );
    };
    let dst = PathBuf::from(fail3ban::server::own_path(&dst));
    if !src.is_file() {
        bail!("no fail2ban database at {}", src.display());
    }
    let stats = import_database(&src, &dst)?;
    println!("{}", import_summary(&stats, &src, &dst));
    let paths = fail3ban::server::paths(&args.conf);
    if stats.active > 0 && ping(&paths.socket) {
        println!("fail3ban is running: restart it to apply the imported bans");
    }
    Ok(ExitCode::SUCCESS)
}

/// `migrate [--dry-run] [--undo]`: from fail2ban to fail3ban, or back.
fn migrate(words: &[String]) -> Result<ExitCode> {
    use fail3ban::client::migrate::{run, Options, System};
    let mut opts = Options::default();
    for w in words {
        match w.as_str() {
            "--dry-run" | "-n" => opts.dry_run = true,
            "--undo" => opts.undo = true,
            other => bail!("migrate: unknown argument {other}\n{USAGE}"),
        }
    }
    let mut out = std::io::stdout().lock();
    run(&System::this_machine(), opts, &mut out)
        .context("migrate stopped at this step; the steps before it are done")?;
    Ok(ExitCode::SUCCESS)
}

fn command(socket: &Path, words: &[String], timeout: f64, verbose: i32) -> Result<ExitCode> {
    let cmd: Vec<Value> = words.iter().map(|w| Value::from(w.as_str())).collect();
    match send(socket, &cmd, Duration::from_secs_f64(timeout))? {
        Response::Ok(v) => {
            if verbose >= 0 {
                println!("{}", beautify(words, &v));
            }
            Ok(ExitCode::SUCCESS)
        }
        Response::Error(e) => {
            tracing::error!("NOK: ({})", e.message);
            println!("{}", beautify_error(&e));
            Ok(ExitCode::from(255))
        }
    }
}

/// `--json`: the answer shaped by [`fail3ban::client::json`]; a failed
/// command is `{"error": ...}` on stdout with fail2ban's exit code.
fn json_command(socket: &Path, words: &[String], timeout: f64) -> Result<ExitCode> {
    use fail3ban::client::json;
    let request = json::request(words)?;
    let cmd: Vec<Value> = request.iter().map(|w| Value::from(w.as_str())).collect();
    let (out, code) = match send(socket, &cmd, Duration::from_secs_f64(timeout))? {
        Response::Ok(v) => (json::shape(words, &v)?, ExitCode::SUCCESS),
        Response::Error(e) => (json::error(&e), ExitCode::from(255)),
    };
    println!("{out}");
    Ok(code)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            // Whether `--json` was asked for is not known when the options
            // could not be read: a script that asked for it still gets an
            // object.
            if std::env::args().any(|a| a == "--json") {
                println!(
                    "{}",
                    fail3ban::client::json::client_error(&format!("{e:#}"))
                );
            } else {
                eprintln!("ERROR: {e:#}");
            }
            return ExitCode::from(255);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) if args.json => {
            println!(
                "{}",
                fail3ban::client::json::client_error(&format!("{e:#}"))
            );
            ExitCode::from(255)
        }
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::from(255)
        }
    }
}
