//! A jail's settings, accumulated from the commands that configure it
//! (`add`, `set <jail> ...`, `multi-set <jail> ...`), the same commands the
//! configuration stream and `fail3ban-client set` send.

use indexmap::IndexMap;
use serde_json::Value;

use crate::client::protocol::{CommandError, ErrorKind};
use crate::config::time::str2seconds;
use crate::config::{Command, PyValue, TreeVersion};
use crate::filter::{FilterOptions, UseDns};
use crate::jail::increment::IncrementOptions;

/// Turns a configuration command into the protocol's JSON values.
pub fn command_to_json(cmd: &Command) -> Vec<Value> {
    cmd.iter().map(py_to_json).collect()
}

fn py_to_json(v: &PyValue) -> Value {
    match v {
        PyValue::Str(s) => Value::String(s.clone()),
        PyValue::Int(i) => Value::from(*i),
        PyValue::Bool(b) => Value::Bool(*b),
        PyValue::None => Value::Null,
        PyValue::List(l) => Value::Array(l.iter().map(py_to_json).collect()),
        PyValue::Dict(d) => {
            Value::Object(d.iter().map(|(k, v)| (k.clone(), py_to_json(v))).collect())
        }
    }
}

/// A value's text as fail2ban's server reads it.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn bool_of(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        other => crate::config::definition::py_bool(&text(other)),
    }
}

fn invalid(what: &str, v: &Value) -> CommandError {
    CommandError::new(
        ErrorKind::InvalidValue,
        format!("Invalid value for {what}: {}", text(v)),
    )
}

fn int_of(what: &str, v: &Value) -> Result<i64, CommandError> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| invalid(what, v)),
        other => {
            crate::config::definition::py_int(&text(other)).ok_or_else(|| invalid(what, other))
        }
    }
}

fn seconds_of(what: &str, v: &Value) -> Result<f64, CommandError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| invalid(what, v)),
        other => str2seconds(&text(other)).map_err(|_| invalid(what, other)),
    }
}

/// An ignoreip item as the jail keeps (and `get <jail> ignoreip` lists)
/// it: a `file:` item in one spelling whichever way it was written;
/// `None` for `file:` without a path.
fn ignoreip_item(w: &str) -> Option<String> {
    if !w.starts_with("file:") {
        return Some(w.to_string());
    }
    crate::jail::ignore::file_item(w).map(|p| crate::jail::ignore::file_item_text(&p))
}

/// Applies one command of a configuration stream to the jails it builds:
/// `add` makes one, `set`/`multi-set` change one already added.
/// `Ok(false)`: the command is about no jail here (a server option).
pub fn apply(specs: &mut IndexMap<String, JailSpec>, cmd: &[Value]) -> Result<bool, CommandError> {
    let word = |i: usize| cmd.get(i).map(text).unwrap_or_default();
    let (verb, jail) = (word(0), word(1));
    match verb.as_str() {
        "add" => {
            let backend = match cmd.get(2).map(text) {
                Some(b) => JailBackend::parse(&b)
                    .map_err(|e| CommandError::new(ErrorKind::InvalidValue, e.to_string()))?,
                None => JailBackend::default(),
            };
            specs.insert(jail.clone(), JailSpec::new(&jail, backend));
        }
        "set" | "multi-set" => {
            let Some(spec) = specs.get_mut(&jail) else {
                return Ok(false);
            };
            let what = word(2);
            let args = cmd.get(3..).unwrap_or_default();
            if verb == "set" {
                spec.set(&what, args)?;
            } else {
                spec.multi_set(&what, args)?;
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// fail2ban's backends, in its words (`Jail._BACKENDS`), for the error
/// an unknown one gets.
const BACKENDS: &str = "['pyinotify', 'gamin', 'polling', 'systemd']";

/// Why a jail's `backend` was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// fail2ban's own words (`Jail._setBackend`).
    #[error("Unknown backend {0}. Must be among {BACKENDS} or 'auto'")]
    Unknown(String),
    /// `name[options]` does not parse.
    #[error("backend {text:?}: {message}")]
    Syntax { text: String, message: String },
    /// `systemd[journalflags=...]` is no number.
    #[error("journalflags: not a number: {0}")]
    JournalFlags(String),
    /// `systemd[rotated=...]` is neither on nor off.
    #[error("rotated: expected on or off, got {0:?}")]
    Rotated(String),
}

/// A jail's `backend`, parsed once when the jail is added: files, with how
/// their changes are noticed, or the journal, with its options.
#[derive(Debug, Clone, PartialEq)]
pub struct JailBackend {
    /// As configured: `get <jail> backend` answers with it, as fail2ban does.
    text: String,
    kind: BackendKind,
}

/// What a jail reads.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendKind {
    Files(crate::source::Backend),
    Journal(JournalBackend),
}

/// `backend = systemd[journalflags=1, journalfiles=..., journalpath=...,
/// namespace=...]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalBackend {
    pub flags: Option<i32>,
    pub files: Vec<String>,
    pub path: Option<String>,
    pub namespace: Option<String>,
    /// fail2ban 1.1.1's `rotated`: whether rotated journal files are read
    /// too (default off).
    pub rotated: bool,
}

impl JournalBackend {
    /// Sets one option of `systemd[...]` (fail2ban-regex's
    /// `systemd-journal[...]` takes the same); false for one it does not
    /// know.
    pub fn set(&mut self, key: &str, value: String) -> Result<bool, BackendError> {
        match key {
            "journalflags" => {
                self.flags = Some(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| BackendError::JournalFlags(value.clone()))?,
                )
            }
            // fail2ban's splitwords: spaces, commas and newlines separate.
            "journalfiles" => {
                self.files = value
                    .split([' ', ',', '\n'])
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(String::from)
                    .collect()
            }
            "journalpath" => self.path = Some(value),
            "namespace" => self.namespace = Some(value),
            "rotated" => {
                self.rotated = match value.trim().to_ascii_lowercase().as_str() {
                    "1" | "on" | "true" | "yes" => true,
                    "0" | "off" | "false" | "no" => false,
                    _ => return Err(BackendError::Rotated(value.clone())),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Writes what the journal is opened on into `opts`.
    pub fn apply(&self, opts: &mut crate::source::JournalOptions) {
        opts.flags = self.flags;
        opts.files = self.files.clone();
        opts.path = self.path.clone();
        opts.namespace = self.namespace.clone();
        opts.rotated = self.rotated;
    }
}

impl JailBackend {
    /// Parses `name[options]`; the name is matched ignoring case, as
    /// fail2ban does.
    pub fn parse(text: &str) -> Result<JailBackend, BackendError> {
        let (name, params) =
            crate::config::options::extract_options(text).map_err(|e| BackendError::Syntax {
                text: text.to_string(),
                message: e.to_string(),
            })?;
        let name = name.trim().to_ascii_lowercase();
        let kind = match name.as_str() {
            "systemd" => {
                let mut j = JournalBackend::default();
                for (k, v) in params {
                    if !j.set(&k, v)? {
                        tracing::warn!("unknown journal option {k} in {text:?}");
                    }
                }
                BackendKind::Journal(j)
            }
            other => BackendKind::Files(
                other
                    .parse()
                    .map_err(|_| BackendError::Unknown(other.to_string()))?,
            ),
        };
        Ok(JailBackend {
            text: text.to_string(),
            kind,
        })
    }

    /// The backend as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn kind(&self) -> &BackendKind {
        &self.kind
    }

    /// Whether the jail reads the journal rather than files.
    pub fn is_journal(&self) -> bool {
        matches!(self.kind, BackendKind::Journal(_))
    }
}

impl Default for JailBackend {
    fn default() -> JailBackend {
        JailBackend {
            text: "auto".into(),
            kind: BackendKind::Files(crate::source::Backend::Auto),
        }
    }
}

/// Matches a failure ticket keeps when `maxmatches` is not configured:
/// fail2ban's FailManager default (the stock jail.conf sets it to
/// maxretry, but a tree without that line gets 5, not maxretry).
pub const DEFAULT_MAXMATCHES: usize = 5;

/// Failure ids a jail tracks at once when `maxfailedids` is not
/// configured; fail3ban-jail.conf(5) gives the reasoning behind the figure.
pub const DEFAULT_MAXFAILEDIDS: usize = 50_000;

/// One action of a jail: its name and its options (`actionban`, ...,
/// and [Init] parameters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionSpec {
    pub name: String,
    pub options: IndexMap<String, String>,
}

/// Everything that configures one jail.
#[derive(Debug, Clone, PartialEq)]
pub struct JailSpec {
    pub name: String,
    pub backend: JailBackend,
    pub usedns: UseDns,
    pub prefregex: Option<String>,
    pub maxlines: usize,
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    pub datepattern: Option<String>,
    pub journalmatch: Vec<Vec<String>>,
    pub maxretry: u32,
    pub maxmatches: Option<usize>,
    /// fail3ban's `maxfailedids`: the most failure ids pending at once
    /// (0: no cap); `None` until configured.
    pub maxfailedids: Option<usize>,
    pub findtime: f64,
    pub bantime: f64,
    /// `None` until configured: fail2ban answers `get` with None then.
    pub increment: Option<bool>,
    pub increment_opts: IncrementOptions,
    /// `None` until configured (fail2ban answers False then).
    pub ignorecommand: Option<String>,
    pub ignoreself: bool,
    pub ignoreip: Vec<String>,
    pub ignorecache: Option<String>,
    pub logtimezone: Option<String>,
    pub logencoding: String,
    /// Log files with `head` or `tail`.
    pub logpaths: Vec<(String, String)>,
    /// The glob patterns among the configured logpaths, with `head` or
    /// `tail` (the configuration's [`crate::config::Tree::log_globs`]): the
    /// source follows files that match them later too. No command sets
    /// them: fail2ban's `addlogpath` takes a file.
    pub logglobs: Vec<(String, String)>,
    pub actions: Vec<ActionSpec>,
    /// fail3ban's `ai` option.
    pub ai: crate::ai::Mode,
    /// fail3ban's `ai_max_bantime`: the cap on AI jails' bantime until
    /// approved.
    pub ai_max_bantime: Option<f64>,
    /// The fail2ban the configuration tree was written for: the filter's
    /// tags expand as that version's do.
    pub version: TreeVersion,
}

impl JailSpec {
    /// A jail as fail2ban's server creates it before any `set`.
    pub fn new(name: &str, backend: JailBackend) -> JailSpec {
        JailSpec {
            name: name.to_string(),
            backend,
            usedns: UseDns::Warn,
            prefregex: None,
            maxlines: 1,
            failregex: Vec::new(),
            ignoreregex: Vec::new(),
            datepattern: None,
            journalmatch: Vec::new(),
            maxretry: 3,
            maxmatches: None,
            maxfailedids: None,
            findtime: 600.0,
            bantime: 600.0,
            increment: None,
            increment_opts: IncrementOptions::default(),
            ignorecommand: None,
            ignoreself: true,
            ignoreip: Vec::new(),
            ignorecache: None,
            logtimezone: None,
            logencoding: "auto".into(),
            logpaths: Vec::new(),
            logglobs: Vec::new(),
            actions: Vec::new(),
            ai: crate::ai::Mode::Off,
            ai_max_bantime: None,
            version: TreeVersion::default(),
        }
    }

    /// The filter's options for the daemon.
    pub fn filter_options(&self) -> FilterOptions {
        FilterOptions {
            failregex: self.failregex.clone(),
            ignoreregex: self.ignoreregex.clone(),
            prefregex: self.prefregex.clone().filter(|p| !p.is_empty()),
            datepattern: self.datepattern.clone().filter(|p| !p.is_empty()),
            maxlines: self.maxlines.max(1),
            usedns: self.usedns,
            version: self.version,
            logtimezone: self.logtimezone.clone().filter(|p| !p.is_empty()),
            findtime: self.findtime,
            ..FilterOptions::default()
        }
    }

    fn action_mut(&mut self, name: &str) -> Result<&mut ActionSpec, CommandError> {
        self.actions
            .iter_mut()
            .find(|a| a.name == name)
            .ok_or_else(|| {
                CommandError::new(
                    ErrorKind::InvalidValue,
                    format!("Invalid action name {name:?}"),
                )
            })
    }

    /// Applies `set <jail> <what> <args...>`; returns the value fail2ban's
    /// server answers with.
    pub fn set(&mut self, what: &str, args: &[Value]) -> Result<Value, CommandError> {
        let first = args.first().cloned().unwrap_or(Value::Null);
        let t = text(&first);
        let words = || args.iter().map(text).collect::<Vec<_>>();
        match what {
            "usedns" => self.usedns = UseDns::parse(&t),
            "prefregex" => self.prefregex = Some(t),
            "maxlines" => {
                let n = int_of(what, &first)?;
                if n < 1 {
                    return Err(invalid(what, &first));
                }
                self.maxlines = n as usize;
            }
            "addfailregex" => self.failregex.extend(words()),
            "delfailregex" => {
                let i = int_of(what, &first)? as usize;
                if i >= self.failregex.len() {
                    return Err(invalid(what, &first));
                }
                self.failregex.remove(i);
            }
            "addignoreregex" => self.ignoreregex.extend(words()),
            "delignoreregex" => {
                let i = int_of(what, &first)? as usize;
                if i >= self.ignoreregex.len() {
                    return Err(invalid(what, &first));
                }
                self.ignoreregex.remove(i);
            }
            "datepattern" => self.datepattern = Some(t),
            "addjournalmatch" => self.journalmatch.push(words()),
            "deljournalmatch" => {
                let w = words();
                self.journalmatch.retain(|m| *m != w);
            }
            "ai" => self.ai = crate::ai::Mode::parse(&t).ok_or_else(|| invalid(what, &first))?,
            "ai_max_bantime" => self.ai_max_bantime = Some(seconds_of(what, &first)?),
            "maxretry" => self.maxretry = int_of(what, &first)?.max(0) as u32,
            "maxmatches" => self.maxmatches = Some(int_of(what, &first)?.max(0) as usize),
            "maxfailedids" => {
                let n = int_of(what, &first)?;
                self.maxfailedids = Some(usize::try_from(n).map_err(|_| invalid(what, &first))?);
            }
            "findtime" => self.findtime = seconds_of(what, &first)?,
            "bantime" => self.bantime = seconds_of(what, &first)?,
            "bantime.increment" => self.increment = Some(bool_of(&first)),
            "bantime.factor" => self.increment_opts.factor = Some(t),
            "bantime.formula" => self.increment_opts.formula = Some(t),
            "bantime.multipliers" => self.increment_opts.multipliers = Some(t),
            "bantime.maxtime" => self.increment_opts.maxtime = Some(t),
            "bantime.rndtime" => self.increment_opts.rndtime = Some(t),
            "bantime.overalljails" => self.increment_opts.overalljails = bool_of(&first),
            "ignorecommand" => self.ignorecommand = Some(t),
            "ignoreself" => self.ignoreself = bool_of(&first),
            "addignoreip" => {
                for w in words() {
                    let w = ignoreip_item(&w).ok_or_else(|| invalid(what, &Value::String(w)))?;
                    if !self.ignoreip.contains(&w) {
                        self.ignoreip.push(w);
                    }
                }
            }
            "delignoreip" => {
                let w: Vec<String> = words()
                    .iter()
                    .map(|w| ignoreip_item(w).unwrap_or_else(|| w.clone()))
                    .collect();
                self.ignoreip.retain(|i| !w.contains(i));
            }
            "ignorecache" => self.ignorecache = Some(t).filter(|s| !s.is_empty()),
            "logtimezone" => self.logtimezone = Some(t),
            "logencoding" => self.logencoding = t,
            "addlogpath" => {
                let tail = args.get(1).map(text).unwrap_or_else(|| "head".into());
                if !self.logpaths.iter().any(|(p, _)| *p == t) {
                    self.logpaths.push((t, tail));
                }
            }
            "dellogpath" => self.logpaths.retain(|(p, _)| *p != t),
            "addaction" => {
                // `addaction <name> <file.py> <json>`: fail2ban's Python
                // actions, which fail3ban does not run.
                if let Some(py) = args.get(1).map(text).filter(|p| p.ends_with(".py")) {
                    let kind = crate::config::ErrorKind::PythonAction(py.into());
                    return Err(CommandError::new(ErrorKind::Failed, kind.to_string()));
                }
                if !self.actions.iter().any(|a| a.name == t) {
                    self.actions.push(ActionSpec {
                        name: t,
                        options: IndexMap::new(),
                    });
                }
            }
            "delaction" => self.actions.retain(|a| a.name != t),
            "action" => {
                // `set <jail> action <name> <option> <value>`
                let value = args.get(2).map(text).unwrap_or_default();
                let opt = args.get(1).map(text).ok_or_else(CommandError::invalid)?;
                self.action_mut(&t)?.options.insert(opt, value.clone());
                return Ok(Value::String(value));
            }
            _ => {
                return Err(CommandError::new(
                    ErrorKind::Failed,
                    format!(
                        "Invalid command {} (no set action or not yet implemented)",
                        crate::config::stream::py_repr(what)
                    ),
                ))
            }
        }
        Ok(first)
    }

    /// Applies `multi-set <jail> <what> [values]` (and
    /// `multi-set <jail> action <name> [[opt, value], ...]`).
    pub fn multi_set(&mut self, what: &str, args: &[Value]) -> Result<Value, CommandError> {
        if what == "action" {
            let name = args.first().map(text).ok_or_else(CommandError::invalid)?;
            let Some(Value::Array(pairs)) = args.get(1) else {
                return Err(CommandError::invalid());
            };
            let action = self.action_mut(&name)?;
            for p in pairs {
                if let Value::Array(kv) = p {
                    if let [k, v] = kv.as_slice() {
                        action.options.insert(text(k), text(v));
                    }
                }
            }
            return Ok(Value::Null);
        }
        let Some(Value::Array(values)) = args.first() else {
            return Err(CommandError::invalid());
        };
        for v in values {
            self.set(what, std::slice::from_ref(v))?;
        }
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_build_a_spec() {
        let mut s = JailSpec::new("sshd", JailBackend::default());
        s.set("maxretry", &[json!(5)]).unwrap();
        s.set("findtime", &[json!("10m")]).unwrap();
        s.set("bantime", &[json!("-1")]).unwrap();
        s.multi_set("addfailregex", &[json!(["^a <HOST>$", "^b <HOST>$"])])
            .unwrap();
        s.set("addignoreip", &[json!("127.0.0.1/8"), json!("::1")])
            .unwrap();
        s.set("addlogpath", &[json!("/var/log/auth.log"), json!("tail")])
            .unwrap();
        s.set("addaction", &[json!("iptables")]).unwrap();
        s.multi_set(
            "action",
            &[
                json!("iptables"),
                json!([["actionban", "echo <ip>"], ["port", "ssh"]]),
            ],
        )
        .unwrap();
        assert_eq!(s.maxretry, 5);
        assert_eq!(s.findtime, 600.0);
        assert_eq!(s.bantime, -1.0);
        assert_eq!(s.failregex.len(), 2);
        assert_eq!(s.ignoreip, vec!["127.0.0.1/8", "::1"]);
        assert_eq!(
            s.logpaths,
            vec![("/var/log/auth.log".to_string(), "tail".to_string())]
        );
        assert_eq!(s.actions[0].options["actionban"], "echo <ip>");
        assert!(s.set("findtime", &[json!("soon")]).is_err());
        assert!(s.set("nonsense", &[json!(1)]).is_err());
    }

    #[test]
    fn unknown_backend_is_refused() {
        let mut specs = IndexMap::new();
        let e = apply(&mut specs, &[json!("add"), json!("sshd"), json!("sytemd")]).unwrap_err();
        assert_eq!(
            e.message,
            "Unknown backend sytemd. Must be among ['pyinotify', 'gamin', 'polling', 'systemd'] or 'auto'"
        );
        assert!(specs.is_empty());
        apply(&mut specs, &[json!("add"), json!("a"), json!("Polling")]).unwrap();
        let b = &specs["a"].backend;
        assert_eq!(
            b.kind(),
            &BackendKind::Files(crate::source::Backend::Polling)
        );
        assert_eq!(b.as_str(), "Polling");
        let j = JailBackend::parse("systemd[journalflags=4, journalpath=/run/log/x]").unwrap();
        assert_eq!(
            j.kind(),
            &BackendKind::Journal(JournalBackend {
                flags: Some(4),
                path: Some("/run/log/x".into()),
                ..JournalBackend::default()
            })
        );
        assert!(matches!(
            JailBackend::parse("systemd[journalflags=x]"),
            Err(BackendError::JournalFlags(_))
        ));
        let BackendKind::Journal(j) = JailBackend::parse("systemd[rotated=on]").unwrap().kind
        else {
            unreachable!()
        };
        assert!(j.rotated);
        assert!(matches!(
            JailBackend::parse("systemd[rotated=sometimes]"),
            Err(BackendError::Rotated(_))
        ));
    }
}
