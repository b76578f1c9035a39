//! fail2ban.conf, fail2ban.d and fail2ban.local: the server's own options.

use super::definition::OptType;
use super::error::ConfigError;
use super::jail::read_options;
use super::parser::{Loader, Merged};
use super::stream::{Command, PyValue};
use crate::server::log::LogFormat;

/// Options the client reads first (socket, pid file, logging), with their
/// defaults; the logging ones also override what the server section says.
const EARLY: &[(&str, &str)] = &[
    ("socket", "/var/run/fail2ban/fail2ban.sock"),
    ("pidfile", "/var/run/fail2ban/fail2ban.pid"),
    ("loglevel", "INFO"),
    ("logtarget", "/var/log/fail2ban.log"),
    ("syslogsocket", "auto"),
];

/// The server options, with their order in the stream.
const OPTIONS: &[(&str, OptType, Option<&str>, u8)] = &[
    ("loglevel", OptType::Str, Some("INFO"), 12),
    ("logtarget", OptType::Str, Some("STDERR"), 13),
    ("syslogsocket", OptType::Str, Some("auto"), 11),
    ("allowipv6", OptType::Str, Some("auto"), 14),
    (
        "dbfile",
        OptType::Str,
        Some("/var/lib/fail2ban/fail2ban.sqlite3"),
        50,
    ),
    ("dbmaxmatches", OptType::Int, None, 51),
    ("dbpurgeage", OptType::Str, Some("1d"), 51),
    // fail3ban's own: the metrics endpoint, off unless set.
    ("metrics", OptType::Str, None, 15),
];

/// The options of [`OPTIONS`] fail2ban does not have.
const FAIL3BAN_ONLY: &[&str] = &["metrics"];

fn specs<'a>(
    list: impl Iterator<Item = (&'a str, OptType, Option<&'a str>)>,
) -> Vec<(&'a str, OptType, Option<PyValue>)> {
    list.map(|(n, t, d)| (n, t, d.map(PyValue::str))).collect()
}

/// fail3ban's own tree names its server file fail3ban.conf; a fail2ban
/// tree has fail2ban.conf.
fn base_name(loader: &Loader) -> &'static str {
    if std::path::Path::new(&format!("{}/fail3ban.conf", loader.basedir())).exists() {
        "fail3ban"
    } else {
        "fail2ban"
    }
}

/// The early options (socket, pidfile, logging) of a tree.
pub fn early_options(loader: &Loader) -> Result<indexmap::IndexMap<String, PyValue>, ConfigError> {
    let cfg = loader.read_base(base_name(loader))?.unwrap_or_default();
    early(loader, &cfg)
}

fn early(
    loader: &Loader,
    cfg: &Merged,
) -> Result<indexmap::IndexMap<String, PyValue>, ConfigError> {
    read_options(
        loader,
        cfg,
        "Definition",
        &specs(EARLY.iter().map(|(n, d)| (*n, OptType::Str, Some(*d)))),
    )
}

/// The file errors in the server's options are reported against.
fn server_file(loader: &Loader, cfg: &Merged) -> String {
    cfg.read
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{}/fail2ban.conf", loader.basedir()))
}

/// fail3ban's own `logformat` of `[Definition]` (fail2ban has no such
/// option): how the daemon writes its log, `plain` unless set. It is not
/// part of the command stream, which fail2ban's server must be able to
/// read: the daemon reads it once at start.
pub fn log_format(loader: &Loader) -> Result<LogFormat, ConfigError> {
    // A tree that cannot be read is reported by the reading of the whole
    // configuration that follows, with the log already open.
    let Ok(Some(cfg)) = loader.read_base(base_name(loader)) else {
        return Ok(LogFormat::Plain);
    };
    log_format_of(loader, &cfg)
}

fn log_format_of(loader: &Loader, cfg: &Merged) -> Result<LogFormat, ConfigError> {
    let opts = read_options(
        loader,
        cfg,
        "Definition",
        &specs(std::iter::once(("logformat", OptType::Str, Some("plain")))),
    )?;
    let value = opts
        .get("logformat")
        .map(|v| v.to_text())
        .unwrap_or_default();
    LogFormat::parse(&value).ok_or_else(|| {
        let file = super::jail::origin(cfg, "Definition", "logformat")
            .unwrap_or_else(|| server_file(loader, cfg).into());
        ConfigError::new(
            file,
            super::ErrorKind::BadValue {
                expected: LogFormat::EXPECTED,
                value,
            },
        )
        .in_section("Definition")
        .for_option("logformat")
    })
}

/// The server's part of the command stream.
pub fn read(loader: &Loader) -> Result<Vec<Command>, ConfigError> {
    let cfg: Merged = loader.read_base(base_name(loader))?.unwrap_or_default();
    let file = server_file(loader, &cfg);
    if let Err(e) = log_format_of(loader, &cfg) {
        loader.problem(e);
    }
    let early = early(loader, &cfg)?;
    let mut opts = read_options(
        loader,
        &cfg,
        "Definition",
        &specs(OPTIONS.iter().map(|(n, t, d, _)| (*n, *t, *d))),
    )?;
    // The client's own reading of the logging options wins, as in fail2ban.
    for k in ["loglevel", "logtarget", "syslogsocket"] {
        if let Some(v) = early.get(k) {
            opts.insert(k.to_string(), v.clone());
        }
    }
    for (opt, kind) in super::typed::check_options(&opts) {
        // The file that set the option (fail2ban.local over .conf).
        let at = cfg
            .ini
            .sections
            .get("Definition")
            .and_then(|s| s.get(&opt))
            .map(|v| v.file.as_ref().clone())
            .unwrap_or_else(|| file.clone().into());
        loader.problem(
            ConfigError::new(at, kind)
                .in_section("Definition")
                .for_option(&opt),
        );
        // A bad address leaves the endpoint off rather than the server
        // failing the command as if `metrics` were a jail.
        if opt == "metrics" {
            opts.shift_remove(&opt);
        }
    }
    let mut ordered: Vec<(u8, Command)> = Vec::new();
    if cfg.has_section("Thread") {
        let thread = read_options(loader, &cfg, "Thread", &[("stacksize", OptType::Int, None)])?;
        if !thread.is_empty() {
            let d = PyValue::Dict(thread.into_iter().collect());
            ordered.push((0, vec!["set".into(), "thread".into(), d]));
        }
    }
    for (name, _, _, order) in OPTIONS {
        // fail3ban's own options appear only when set: a tree without them
        // dumps as fail2ban dumps it.
        if FAIL3BAN_ONLY.contains(name) && opts.get(*name).is_none_or(|v| *v == PyValue::None) {
            continue;
        }
        if let Some(v) = opts.get(*name) {
            ordered.push((*order, vec!["set".into(), (*name).into(), v.clone()]));
        }
    }
    if let Some(ai) = ai_section(loader, &cfg, &file) {
        ordered.push((60, ai));
    }
    // Same order, then by option name, as fail2ban sorts them.
    ordered.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1[1].to_text().cmp(&b.1[1].to_text()))
    });
    Ok(ordered.into_iter().map(|(_, c)| c).collect())
}

/// fail3ban's [AI] section (fail2ban has none, so a stock tree prints
/// nothing for it): one `set ai {options}` command, each option checked
/// here so that a bad one is reported with its file, section and name.
fn ai_section(loader: &Loader, cfg: &Merged, file: &str) -> Option<Command> {
    let names: Vec<String> = cfg.ini.sections.get("AI")?.keys().cloned().collect();
    let mut items = Vec::new();
    let mut check = super::ai::Settings::default();
    for name in names.into_iter().filter(|n| n != "__name__") {
        let value = match cfg.ini.get("AI", &name, None) {
            Ok(v) => v,
            Err(e) => {
                loader.problem(e.located(Some(std::path::Path::new(file)), "AI", &name));
                continue;
            }
        };
        if let Err(e) = check.set(&name, &value) {
            let kind = match e {
                super::ai::SettingsError::BadValue {
                    expected, value, ..
                } => super::ErrorKind::BadValue { expected, value },
                _ => super::ErrorKind::Syntax("unknown option of the [AI] section".into()),
            };
            loader.problem(
                ConfigError::new(file, kind)
                    .in_section("AI")
                    .for_option(&name),
            );
            continue;
        }
        items.push((name, PyValue::str(&value)));
    }
    Some(vec!["set".into(), "ai".into(), PyValue::Dict(items)])
}
