//! fail3ban-client: fail2ban-client's commands and output.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use fail3ban::config::{format_command, read_tree};

const USAGE: &str = "Usage: fail3ban-client [OPTIONS] <COMMAND>

Options:
    -c, --conf <DIR>        configuration directory (default /etc/fail3ban);
                            any fail2ban tree, /etc/fail2ban included
    -d                      dump the resolved configuration as commands
    -t, --test              test the configuration
    -v / -q                 more / less logging
    -h, --help              this help
    -V, --version           the version";

struct Args {
    conf: String,
    dump: bool,
    test: bool,
    verbose: i32,
    rest: Vec<String>,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        conf: "/etc/fail3ban".into(),
        dump: false,
        test: false,
        verbose: 1,
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
            "-d" => args.dump = true,
            "-t" | "--test" => args.test = true,
            "-v" => args.verbose += 1,
            "-q" => args.verbose -= 1,
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
    Ok(Some(args))
}

fn init_tracing(verbose: i32) {
    let level = match verbose {
        i32::MIN..=0 => tracing::Level::ERROR,
        1 => tracing::Level::WARN,
        2 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .init();
}

fn run() -> Result<ExitCode> {
    let Some(args) = parse_args()? else {
        return Ok(ExitCode::SUCCESS);
    };
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
            Ok(tree) => tree.problems,
            Err(e) => vec![e],
        };
        if problems.is_empty() {
            println!("OK: configuration test is successful");
            return Ok(ExitCode::SUCCESS);
        }
        for p in &problems {
            eprintln!("ERROR: {p}");
        }
        eprintln!("ERROR: test configuration failed");
        return Ok(ExitCode::FAILURE);
    }
    if args.rest.is_empty() {
        bail!("no command given\n{USAGE}");
    }
    bail!(
        "the server commands are not available yet: {}",
        args.rest.join(" ")
    )
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}
