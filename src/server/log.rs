//! The server's log in fail2ban's line format:
//!
//! ```text
//! 2026-03-01 12:00:00,123 fail2ban.actions        [4242]: NOTICE  [sshd] Ban 203.0.113.7
//! ```
//!
//! The logger names keep fail2ban's `fail2ban.` prefix on purpose: the stock
//! recidive filter and existing log tooling match `fail2ban.actions`
//! literally (`fail3ban.actions` would not be recognised by them).
//!
//! With `logformat = json` (fail3ban's own option in `[Definition]`) each
//! line is instead one JSON object, for log shippers: see
//! [`LogFormat::Json`]. The plain format stays the default, so recidive and
//! log tooling keep working.
//!
//! Events come from `tracing`. fail2ban's NOTICE level (between INFO and
//! WARNING) has no tracing level; an INFO event with the field
//! `notice = true` stands for it (see [`notice!`]).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Logs at fail2ban's NOTICE level: `notice!(target: "fail2ban.actions",
/// "[{}] Ban {}", jail, ip)`.
#[macro_export]
macro_rules! notice {
    (target: $t:expr, $($arg:tt)+) => {
        tracing::info!(target: $t, notice = true, $($arg)+)
    };
}

/// fail2ban's log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Critical,
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

impl LogLevel {
    /// Parses fail2ban's level names (and their numbers).
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.trim().to_uppercase().as_str() {
            "CRITICAL" | "FATAL" | "50" => LogLevel::Critical,
            "ERROR" | "40" => LogLevel::Error,
            "WARNING" | "WARN" | "30" => LogLevel::Warning,
            "NOTICE" | "25" => LogLevel::Notice,
            "INFO" | "20" => LogLevel::Info,
            "DEBUG" | "TRACEDEBUG" | "HEAVYDEBUG" | "10" | "7" | "5" => LogLevel::Debug,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Critical => "CRITICAL",
            LogLevel::Error => "ERROR",
            LogLevel::Warning => "WARNING",
            LogLevel::Notice => "NOTICE",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
        }
    }
}

/// How a log line is written (`logformat` in `[Definition]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// fail2ban's line format.
    #[default]
    Plain,
    /// One JSON object a line: `time` (RFC 3339, local, milliseconds),
    /// `level`, `logger`, `pid`, `jail` when the message names one,
    /// `message`, and the event's other fields under `fields`. Text an
    /// attacker wrote stays inside a JSON string: quotes, newlines and
    /// control characters are escaped.
    Json,
}

impl LogFormat {
    /// The words `logformat` takes.
    pub const EXPECTED: &'static str = "plain or json";

    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim() {
            "plain" => Some(LogFormat::Plain),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Where log lines go (fail2ban's `logtarget`).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    File(PathBuf),
    Stdout,
    Stderr,
    /// Lines without a time stamp on stdout, for a service manager that
    /// stamps them itself.
    Sysout,
    Syslog,
    Journal,
}

impl Target {
    pub fn parse(s: &str) -> Target {
        match s.trim() {
            "STDOUT" => Target::Stdout,
            "STDERR" => Target::Stderr,
            "SYSOUT" => Target::Sysout,
            "SYSLOG" => Target::Syslog,
            "SYSTEMD-JOURNAL" => Target::Journal,
            path => Target::File(PathBuf::from(path)),
        }
    }

    fn stamped(&self) -> bool {
        !matches!(self, Target::Sysout | Target::Syslog | Target::Journal)
    }
}

enum Sink {
    File(File),
    Stdout,
    Stderr,
    Datagram(std::os::unix::net::UnixDatagram, PathBuf),
}

struct Inner {
    target: Target,
    level: LogLevel,
    format: LogFormat,
    sink: Sink,
}

/// The log, shared by the tracing layer and the server (which changes its
/// level and target, and reopens the file after rotation).
#[derive(Clone)]
pub struct Log {
    inner: Arc<Mutex<Inner>>,
    pid: u32,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.lock().expect("log lock");
        f.debug_struct("Log")
            .field("target", &i.target)
            .field("level", &i.level)
            .finish()
    }
}

fn open_sink(target: &Target) -> io::Result<Sink> {
    Ok(match target {
        Target::File(p) => Sink::File(super::files::open_append(p)?),
        Target::Stdout | Target::Sysout => Sink::Stdout,
        Target::Stderr => Sink::Stderr,
        Target::Syslog => {
            let s = std::os::unix::net::UnixDatagram::unbound()?;
            Sink::Datagram(s, PathBuf::from("/dev/log"))
        }
        Target::Journal => {
            let s = std::os::unix::net::UnixDatagram::unbound()?;
            Sink::Datagram(s, PathBuf::from("/run/systemd/journal/socket"))
        }
    })
}

impl Log {
    pub fn new(target: Target, level: LogLevel) -> io::Result<Log> {
        let sink = open_sink(&target)?;
        Ok(Log {
            inner: Arc::new(Mutex::new(Inner {
                target,
                level,
                format: LogFormat::Plain,
                sink,
            })),
            pid: std::process::id(),
        })
    }

    /// The log written in `format` from now on.
    pub fn with_format(self, format: LogFormat) -> Log {
        self.inner.lock().expect("log lock").format = format;
        self
    }

    pub fn level(&self) -> LogLevel {
        self.inner.lock().expect("log lock").level
    }

    pub fn set_level(&self, level: LogLevel) {
        self.inner.lock().expect("log lock").level = level;
    }

    pub fn target(&self) -> Target {
        self.inner.lock().expect("log lock").target.clone()
    }

    pub fn set_target(&self, target: Target) -> io::Result<()> {
        let sink = open_sink(&target)?;
        let mut i = self.inner.lock().expect("log lock");
        i.target = target;
        i.sink = sink;
        Ok(())
    }

    /// Reopens the log file (after logrotate moved it away).
    pub fn reopen(&self) -> io::Result<()> {
        let target = self.target();
        self.set_target(target)
    }

    /// Formats and writes one line.
    pub fn write(&self, level: LogLevel, name: &str, message: &str) {
        self.write_event(
            level,
            name,
            &Fields {
                message: message.to_string(),
                ..Fields::default()
            },
        );
    }

    fn write_event(&self, level: LogLevel, name: &str, f: &Fields) {
        let mut i = self.inner.lock().expect("log lock");
        if level > i.level {
            return;
        }
        let line = match i.format {
            LogFormat::Plain => self.plain_line(&i.target, level, name, f),
            LogFormat::Json => self.json_line(level, name, f),
        };
        self.send(&mut i.sink, level, &line);
    }

    /// fail2ban's line: `2026-03-01 12:00:00,123 fail2ban.actions [42]: NOTICE  [sshd] Ban 203.0.113.7`.
    fn plain_line(&self, target: &Target, level: LogLevel, name: &str, f: &Fields) -> String {
        let message = &f.message;
        let mut line = String::with_capacity(96 + message.len() + f.extra.len());
        if target.stamped() {
            let now = jiff::Zoned::now();
            let _ = write!(
                line,
                "{},{:03} ",
                now.strftime("%Y-%m-%d %H:%M:%S"),
                now.millisecond()
            );
        }
        let _ = write!(
            line,
            "{name:<24}[{}]: {:<7} {message}{}",
            self.pid,
            level.name(),
            f.extra
        );
        line
    }

    /// [`LogFormat::Json`]'s line.
    fn json_line(&self, level: LogLevel, name: &str, f: &Fields) -> String {
        let now = jiff::Zoned::now();
        let mut obj = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            obj.insert(k.to_string(), v);
        };
        let time = format!(
            "{}.{:03}{}",
            now.strftime("%Y-%m-%dT%H:%M:%S"),
            now.millisecond(),
            now.strftime("%:z")
        );
        put("time", time.into());
        put("level", level.name().into());
        put("logger", name.into());
        put("pid", self.pid.into());
        let field_jail = f.fields.get("jail").and_then(|v| v.as_str());
        if let Some(jail) = field_jail.or_else(|| message_jail(&f.message)) {
            put("jail", jail.into());
        }
        put("message", f.message.as_str().into());
        if !f.fields.is_empty() {
            put("fields", serde_json::Value::Object(f.fields.clone()));
        }
        serde_json::Value::Object(obj).to_string()
    }

    fn send(&self, sink: &mut Sink, level: LogLevel, line: &str) {
        let res = match sink {
            Sink::File(f) => writeln!(f, "{line}"),
            Sink::Stdout => writeln!(io::stdout().lock(), "{line}"),
            Sink::Stderr => writeln!(io::stderr().lock(), "{line}"),
            Sink::Datagram(s, path) => {
                let prio = match level {
                    LogLevel::Critical => 2,
                    LogLevel::Error => 3,
                    LogLevel::Warning => 4,
                    LogLevel::Notice => 5,
                    LogLevel::Info => 6,
                    LogLevel::Debug => 7,
                };
                // Facility daemon (3): priority 3*8 + level.
                let msg = if path.ends_with("socket") {
                    format!("PRIORITY={prio}\nSYSLOG_IDENTIFIER=fail3ban\nMESSAGE={line}\n")
                } else {
                    format!("<{}>{line}", 24 + prio)
                };
                s.send_to(msg.as_bytes(), &*path).map(|_| ())
            }
        };
        // A log that cannot be written must not take the daemon down.
        let _ = res;
    }
}

/// fail2ban's logger name for an event: its target when that already is a
/// fail2ban name, else `fail2ban.<last module>`.
fn logger_name(target: &str) -> String {
    if target.starts_with("fail2ban") {
        return target.to_string();
    }
    let last = target.rsplit("::").next().unwrap_or(target);
    format!("fail2ban.{last}")
}

/// The jail a message names by fail2ban's convention, `[sshd] Ban …`.
fn message_jail(message: &str) -> Option<&str> {
    let rest = message.strip_prefix('[')?;
    let (jail, _) = rest.split_once("] ")?;
    (!jail.is_empty() && !jail.contains(['[', ']'])).then_some(jail)
}

/// An event's message and other fields: as fail2ban's line shows them
/// (` name=value` after the message) and as JSON values.
#[derive(Default)]
struct Fields {
    message: String,
    notice: bool,
    extra: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    fn other(&mut self, field: &Field, text: std::fmt::Arguments<'_>, value: serde_json::Value) {
        let _ = write!(self.extra, " {}={text}", field.name());
        self.fields.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "notice" {
            self.notice = value;
        } else {
            self.other(field, format_args!("{value}"), value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.other(field, format_args!("{value:?}"), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.other(field, format_args!("{value:?}"), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.other(field, format_args!("{value:?}"), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.other(field, format_args!("{value}"), value.into());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let text = format!("{value:?}");
            self.other(field, format_args!("{text}"), text.clone().into());
        }
    }
}

/// A tracing layer that writes events to a [`Log`].
pub struct LogLayer {
    log: Log,
}

impl LogLayer {
    pub fn new(log: Log) -> LogLayer {
        LogLayer { log }
    }
}

impl<S: Subscriber> Layer<S> for LogLayer {
    // The level can change at run time (`set loglevel`): ask every time.
    fn register_callsite(
        &self,
        _metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    // Events the log would drop are not even built: `tracing::enabled!`
    // guards expensive summaries (the failure list, per failure) that
    // otherwise cost more than the line they describe.
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        let wanted = match *metadata.level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warning,
            // NOTICE events are INFO events with a field this cannot see.
            Level::INFO => LogLevel::Notice,
            _ => LogLevel::Debug,
        };
        wanted <= self.log.level()
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let level = match *event.metadata().level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warning,
            Level::INFO if f.notice => LogLevel::Notice,
            Level::INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        };
        self.log
            .write_event(level, &logger_name(event.metadata().target()), &f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn lines_in_fail2ban_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        let log = Log::new(Target::File(path.clone()), LogLevel::Info).unwrap();
        let sub = tracing_subscriber::registry().with(LogLayer::new(log.clone()));
        tracing::subscriber::with_default(sub, || {
            notice!(target: "fail2ban.actions", "[{}] Ban {}", "sshd", "203.0.113.7");
            tracing::debug!("not written at INFO");
            tracing::warn!(target: "fail2ban.filter", "[sshd] something odd");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let pid = std::process::id();
        assert!(
            lines[0].ends_with(&format!(
                " fail2ban.actions        [{pid}]: NOTICE  [sshd] Ban 203.0.113.7"
            )),
            "{}",
            lines[0]
        );
        assert_eq!(lines[0].as_bytes()[19], b',');
        assert!(
            lines[1].contains("fail2ban.filter         [")
                && lines[1].contains("WARNING [sshd] something odd")
        );
    }

    /// An event's other fields follow the message in the plain line, as
    /// before the JSON format, and are values under `fields` in JSON.
    #[test]
    fn fields_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let event = |format: LogFormat, name: &str| {
            let path = dir.path().join(name);
            let log = Log::new(Target::File(path.clone()), LogLevel::Info)
                .unwrap()
                .with_format(format);
            let sub = tracing_subscriber::registry().with(LogLayer::new(log));
            tracing::subscriber::with_default(sub, || {
                tracing::info!(target: "fail2ban.filter", path = %"/var/log/a b.log", pos = 42u64,
                               ratio = 0.5, new = true, "[sshd] Found \"x\"\u{1b}\n");
            });
            std::fs::read_to_string(&path).unwrap()
        };
        let plain = event(LogFormat::Plain, "plain.log");
        assert!(
            plain.ends_with(
                "INFO    [sshd] Found \"x\"\u{1b}\n path=/var/log/a b.log pos=42 ratio=0.5 new=true\n"
            ),
            "{plain:?}"
        );
        let json = event(LogFormat::Json, "json.log");
        assert_eq!(json.lines().count(), 1, "{json:?}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["jail"], "sshd");
        assert_eq!(v["message"], "[sshd] Found \"x\"\u{1b}\n");
        assert_eq!(
            v["fields"],
            serde_json::json!({"path": "/var/log/a b.log", "pos": 42, "ratio": 0.5, "new": true})
        );
        assert_eq!(LogFormat::parse("yaml"), None);
    }

    #[test]
    fn levels() {
        assert_eq!(LogLevel::parse("notice"), Some(LogLevel::Notice));
        assert!(LogLevel::Warning < LogLevel::Info);
        assert_eq!(LogLevel::parse("loud"), None);
    }
}
