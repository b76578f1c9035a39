//! jail.conf, jail.d and jail.local: which jails are enabled, their options,
//! filter and actions, turned into the command stream fail2ban's client
//! sends to its server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use indexmap::IndexMap;

use super::definition::{convert, fill_stream, vars_of, Definition, Kind, OptType, FILTER_OPTS};
use super::error::{ConfigError, ErrorKind};
use super::glob::glob;
use super::options::{extract_options, split_with_options, splitwords};
use super::parser::{Loader, Merged};
use super::stream::{py_repr, Command, PyValue};

/// The fail2ban version whose configuration semantics fail3ban follows; it
/// is what `%(fail2ban_version)s` expands to.
pub const FAIL2BAN_VERSION: &str = "1.0.2";

type OptSpec = (&'static str, OptType, Option<DefaultValue>);

#[derive(Debug, Clone, Copy)]
enum DefaultValue {
    Bool(bool),
    Str(&'static str),
}

impl DefaultValue {
    fn value(self) -> PyValue {
        match self {
            DefaultValue::Bool(b) => PyValue::Bool(b),
            DefaultValue::Str(s) => PyValue::str(s),
        }
    }
}

const FIRST_PASS: &[OptSpec] = &[
    ("enabled", OptType::Bool, Some(DefaultValue::Bool(false))),
    ("backend", OptType::Str, Some(DefaultValue::Str("auto"))),
    ("filter", OptType::Str, Some(DefaultValue::Str(""))),
];

/// Jail options in the order fail2ban reads (and so prints) them.
const JAIL_OPTS: &[OptSpec] = &[
    ("enabled", OptType::Bool, Some(DefaultValue::Bool(false))),
    ("backend", OptType::Str, Some(DefaultValue::Str("auto"))),
    ("maxretry", OptType::Int, None),
    ("maxmatches", OptType::Int, None),
    ("findtime", OptType::Str, None),
    ("bantime", OptType::Str, None),
    ("bantime.increment", OptType::Bool, None),
    ("bantime.factor", OptType::Str, None),
    ("bantime.formula", OptType::Str, None),
    ("bantime.multipliers", OptType::Str, None),
    ("bantime.maxtime", OptType::Str, None),
    ("bantime.rndtime", OptType::Str, None),
    ("bantime.overalljails", OptType::Bool, None),
    ("ignorecommand", OptType::Str, None),
    ("ignoreself", OptType::Bool, None),
    ("ignoreip", OptType::Str, None),
    ("ignorecache", OptType::Str, None),
    ("filter", OptType::Str, Some(DefaultValue::Str(""))),
    ("logtimezone", OptType::Str, None),
    ("logencoding", OptType::Str, None),
    ("logpath", OptType::Str, None),
    ("action", OptType::Str, Some(DefaultValue::Str(""))),
    // fail3ban's own: fail2ban has none; printed only when set.
    ("ai", OptType::Str, None),
    ("ai_max_bantime", OptType::Str, None),
    ("maxfailedids", OptType::Int, None),
    // fail2ban 1.1.1's: they decide what becomes of a jail whose logpath
    // matches no file (see [`no_logs`]); the stream never carries them.
    ("skip_if_nologs", OptType::Bool, None),
    ("systemd_if_nologs", OptType::Bool, None),
];

/// What becomes of a jail whose logpath matches no file, as fail2ban
/// 1.1.1 decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLogs {
    /// The jail starts without files (fail2ban's `-d`; fail3ban follows
    /// the logpath's globs, so a file created later is read).
    Keep,
    /// `backend = auto` with a `journalmatch`: the jail reads the journal
    /// instead (`systemd_if_nologs`, on unless set false).
    Journal,
    /// `skip_if_nologs = true`: the jail is left out with a warning.
    Skip,
}

/// The decision for a jail without log files on `backend` (as written:
/// `auto[...]` switches, `AUTO` does not, as in fail2ban), whether it has a
/// journalmatch and its two options.
pub fn no_logs(backend: &str, journalmatch: bool, systemd_if_nologs: bool, skip: bool) -> NoLogs {
    if backend.starts_with("auto") && journalmatch && systemd_if_nologs {
        NoLogs::Journal
    } else if skip {
        NoLogs::Skip
    } else {
        NoLogs::Keep
    }
}

/// Reads options of one section, typed, as fail2ban's `getOptions` does:
/// unset options take their default when they have one; a value that does
/// not fit its type becomes the default, and is reported.
pub(crate) fn read_options(
    loader: &Loader,
    cfg: &Merged,
    section: &str,
    specs: &[(&str, OptType, Option<PyValue>)],
) -> Result<IndexMap<String, PyValue>, ConfigError> {
    let mut out = IndexMap::new();
    for (name, t, default) in specs {
        match cfg.ini.get(section, name, None) {
            Ok(v) => {
                let mut typed = convert(*t, &v, name);
                if typed == PyValue::None {
                    loader.problem(
                        ConfigError::bare(ErrorKind::BadValue {
                            expected: "an integer",
                            value: v,
                        })
                        .located(
                            origin(cfg, section, name).as_deref(),
                            section,
                            name,
                        ),
                    );
                    typed = default.clone().unwrap_or(PyValue::None);
                }
                out.insert(name.to_string(), typed);
            }
            Err(e) if matches!(e.kind, ErrorKind::NoSection(_)) => {
                out.insert(name.to_string(), default.clone().unwrap_or(PyValue::None));
            }
            Err(e) if e.kind == ErrorKind::NoOption => {
                if let Some(d) = default {
                    out.insert(name.to_string(), d.clone());
                }
            }
            Err(e) => return Err(e.located(origin(cfg, section, name).as_deref(), section, name)),
        }
    }
    Ok(out)
}

/// The file that set `option` for `section` (its own or [DEFAULT]).
pub(crate) fn origin(cfg: &Merged, section: &str, option: &str) -> Option<PathBuf> {
    cfg.ini
        .sections
        .get(section)
        .and_then(|s| s.get(option))
        .or_else(|| cfg.ini.defaults.get(option))
        .map(|v| v.file.as_ref().clone())
        .or_else(|| cfg.read.first().map(PathBuf::from))
}

fn specs(list: &[OptSpec]) -> Vec<(&'static str, OptType, Option<PyValue>)> {
    list.iter()
        .map(|(n, t, d)| (*n, *t, d.map(DefaultValue::value)))
        .collect()
}

/// An action as a jail uses it.
#[derive(Debug)]
enum Action {
    Def(Box<Definition>),
    /// A Python action (`*.py`): passed on as its path and parameters.
    Python(Command),
}

/// One jail, read.
#[derive(Debug)]
pub struct Jail {
    pub name: String,
    pub opts: IndexMap<String, PyValue>,
    filter: Option<Definition>,
    actions: Vec<Action>,
    /// Why the jail is skipped, when its filter or an action is unusable.
    pub error: Option<ConfigError>,
    /// Set by [`Jail::stream`] when the logpath matched no file.
    pub nologs: NoLogs,
    /// Where its filter options were set, by option.
    pub origins: IndexMap<String, super::Origin>,
    /// The fail2ban its tree was written for: 1.0.2 has no
    /// `systemd_if_nologs`.
    version: super::TreeVersion,
}

/// Caches merged filter.d and action.d files by name.
#[derive(Debug)]
pub struct Readers<'a> {
    pub loader: &'a Loader,
    merged: HashMap<String, Option<Rc<Merged>>>,
    /// The fail2ban the tree was written for.
    pub version: super::TreeVersion,
}

impl<'a> Readers<'a> {
    pub fn new(loader: &'a Loader) -> Readers<'a> {
        Readers {
            loader,
            merged: HashMap::new(),
            version: super::TreeVersion::of(std::path::Path::new(loader.basedir())),
        }
    }

    fn read(&mut self, base: &str) -> Result<Option<Rc<Merged>>, ConfigError> {
        if let Some(m) = self.merged.get(base) {
            return Ok(m.clone());
        }
        let m = self.loader.read_base(base)?.map(Rc::new);
        self.merged.insert(base.to_string(), m.clone());
        Ok(m)
    }
}

/// `os.path.splitext(name)[0]` for a file name.
fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

/// Python's `json.dumps` of a flat map of strings.
fn json_dumps(map: &IndexMap<String, String>) -> String {
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why a jail is skipped: fail2ban's wording, kept so the stream matches.
fn jail_def_error(cfg: &Merged, jail: &str, option: &str, kind: ErrorKind) -> ConfigError {
    ConfigError::bare(kind).located(origin(cfg, jail, option).as_deref(), jail, option)
}

/// fail2ban's message for a skipped jail.
fn jail_def_message(e: &ConfigError) -> String {
    match &e.kind {
        ErrorKind::UnknownFilter(n) => format!("Unable to read the filter {}", py_repr(n)),
        ErrorKind::UnknownAction(n) => format!("Unable to read action {}", py_repr(n)),
        ErrorKind::OptionList { value, reason } if e.option.as_deref() == Some("filter") => {
            format!("Invalid filter definition {}: {reason}", py_repr(value))
        }
        ErrorKind::OptionList { value, reason } => {
            format!("Invalid action definition {}: {reason}", py_repr(value))
        }
        _ => e.to_string(),
    }
}

/// One line of a `logpath` value: the path and `head` or `tail`.
fn logpath_line(line: &str) -> (&str, &str) {
    match line.rsplit_once(' ') {
        Some((p, t)) => (p, t),
        None => (line, "head"),
    }
}

impl Jail {
    /// Reads jail `name` from the jail configuration `cfg`. `Ok(None)`: the
    /// jail is not enabled.
    pub fn read(
        readers: &mut Readers,
        cfg: &mut Merged,
        name: &str,
    ) -> Result<Option<Jail>, ConfigError> {
        let loader = readers.loader;
        let first = read_options(loader, cfg, name, &specs(FIRST_PASS))?;
        if !first.get("enabled").is_some_and(PyValue::truthy) {
            return Ok(None);
        }
        let mut jail = Jail {
            name: name.to_string(),
            opts: first.clone(),
            filter: None,
            actions: Vec::new(),
            error: None,
            nologs: NoLogs::Keep,
            origins: IndexMap::new(),
            version: readers.version,
        };
        match jail.read_parts(readers, cfg, &first) {
            Ok(()) => {}
            Err(PartError::Skip(e)) => {
                loader.problem(e.clone());
                jail.error = Some(e);
            }
            Err(PartError::Fatal(e)) => return Err(e),
        }
        Ok(Some(jail))
    }

    fn read_parts(
        &mut self,
        readers: &mut Readers,
        cfg: &mut Merged,
        first: &IndexMap<String, PyValue>,
    ) -> Result<(), PartError> {
        let name = self.name.clone();
        let flt = first
            .get("filter")
            .map(PyValue::to_text)
            .unwrap_or_default();
        let mut filter_params = Vec::new();
        if !flt.is_empty() {
            let (fname, fopts) = extract_options(&flt).map_err(|e| {
                PartError::Skip(jail_def_error(cfg, &name, "filter", e.kind.clone()))
            })?;
            filter_params = fopts.keys().cloned().collect();
            let Some(merged) = readers.read(&format!("filter.d/{fname}"))? else {
                return Err(PartError::Skip(jail_def_error(
                    cfg,
                    &name,
                    "filter",
                    ErrorKind::UnknownFilter(fname),
                )));
            };
            let mut filter = Definition::new(Kind::Filter, &fname, &name, fopts, merged);
            filter.apply_auto_options(
                &first
                    .get("backend")
                    .map(PyValue::to_text)
                    .unwrap_or_default(),
            );
            filter.get_options(&vars_of(first), true)?;
            let combined = filter.get_combined(&[])?;
            let file: Arc<PathBuf> = filter.path().clone();
            let texts: IndexMap<String, String> = combined
                .iter()
                .filter(|(_, v)| **v != PyValue::None)
                .map(|(k, v)| (k.clone(), v.to_text()))
                .collect();
            cfg.merge_section(&name, &texts, "known/", &file);
            self.filter = Some(filter);
        } else {
            tracing::warn!("No filter set for jail {name}");
        }
        let mut all = specs(JAIL_OPTS);
        all.extend(FILTER_OPTS.iter().map(|(n, t)| (*n, *t, None)));
        self.opts = read_options(readers.loader, cfg, &name, &all)?;
        let jail_vars = vars_of(&self.opts);
        if let Some(f) = &mut self.filter {
            f.get_options(&jail_vars, false)?;
        }
        // `action` too: the server refuses some (a Python action), and -t
        // then names the file that set it.
        let more = [("logtimezone", OptType::Str), ("action", OptType::Str)];
        for (opt, _) in FILTER_OPTS.iter().chain(&more) {
            let o = self.option_origin(cfg, &filter_params, opt);
            self.origins.insert(opt.to_string(), o);
        }
        let action_value = self
            .opts
            .get("action")
            .map(PyValue::to_text)
            .unwrap_or_default();
        for act in split_with_options(&action_value) {
            let act = act.trim();
            if act.is_empty() {
                continue;
            }
            let (aname, mut aopts) = extract_options(act).map_err(|e| {
                PartError::Skip(jail_def_error(cfg, &name, "action", e.kind.clone()))
            })?;
            if aname.ends_with(".py") {
                let actname = aopts
                    .shift_remove("actname")
                    .unwrap_or_else(|| stem(&aname).to_string());
                let path = format!("{}/action.d/{aname}", readers.loader.basedir());
                self.actions.push(Action::Python(vec![
                    "set".into(),
                    name.as_str().into(),
                    "addaction".into(),
                    actname.into(),
                    path.into(),
                    json_dumps(&aopts).into(),
                ]));
                continue;
            }
            let Some(merged) = readers.read(&format!("action.d/{aname}"))? else {
                // `smtp` where only fail2ban's smtp.py is: say so rather
                // than that there is no such action.
                let py = Path::new(readers.loader.basedir()).join(format!("action.d/{aname}.py"));
                let kind = if py.is_file() {
                    ErrorKind::PythonAction(py)
                } else {
                    ErrorKind::UnknownAction(aname)
                };
                return Err(PartError::Skip(jail_def_error(cfg, &name, "action", kind)));
            };
            // Each action of a jail needs a name of its own: `name` defaults
            // to the jail, and `actname` tells apart two uses of one file.
            let n = aopts
                .entry("name".to_string())
                .or_insert_with(|| name.clone())
                .clone();
            if !aopts.contains_key("actname") {
                let mut actname = aname.clone();
                if n != name {
                    match n.strip_prefix(name.as_str()) {
                        Some(rest) => actname.push_str(rest),
                        None => {
                            actname.push('-');
                            actname.push_str(&n);
                        }
                    }
                }
                aopts.insert("actname".into(), actname);
            }
            let mut action = Definition::new(Kind::Action, &aname, &name, aopts.clone(), merged);
            action.name = aopts["actname"].clone();
            action.get_options(&jail_vars, false)?;
            self.actions.push(Action::Def(Box::new(action)));
        }
        if self.actions.is_empty() {
            tracing::warn!("No actions were defined for {name}");
        }
        Ok(())
    }

    /// Where a filter option of this jail was set: the jail's section
    /// (or [DEFAULT]) wins over the filter's parameters in `filter =
    /// name[...]`, which win over the filter file.
    fn option_origin(&self, cfg: &Merged, filter_params: &[String], opt: &str) -> super::Origin {
        let at = |v: &crate::config::ini::Value, section: &str, option: &str| super::Origin {
            file: Some(v.file.as_ref().clone()),
            section: section.to_string(),
            option: option.to_string(),
        };
        let in_jail = |option: &str| {
            let own = cfg.ini.sections.get(&self.name).and_then(|s| s.get(option));
            match own {
                Some(v) => Some(at(v, &self.name, option)),
                None => cfg
                    .ini
                    .defaults
                    .get(option)
                    .map(|v| at(v, "DEFAULT", option)),
            }
        };
        if let Some(o) = in_jail(opt) {
            return o;
        }
        if filter_params.iter().any(|p| p == opt) {
            if let Some(o) = in_jail("filter") {
                return o;
            }
        }
        self.filter
            .as_ref()
            .and_then(|f| f.origin(opt))
            .unwrap_or_else(|| super::Origin {
                file: origin(cfg, &self.name, opt),
                section: self.name.clone(),
                option: opt.to_string(),
            })
    }

    /// [`no_logs`] for this jail on `backend`: the journalmatch is the
    /// jail's or its filter's, an empty one counting as set (fail2ban's
    /// `is not None`).
    fn no_logs_decision(&mut self, backend: &str) -> Result<NoLogs, ConfigError> {
        let set = |v: Option<&PyValue>| v.is_some_and(|v| *v != PyValue::None);
        let journalmatch = set(self.opts.get("journalmatch"))
            || match &mut self.filter {
                Some(f) => set(f.get_combined(&[])?.get("journalmatch")),
                None => false,
            };
        let flag = |name: &str, default: bool| match self.opts.get(name) {
            Some(PyValue::None) | None => default,
            Some(v) => v.truthy(),
        };
        Ok(no_logs(
            backend,
            journalmatch,
            // fail2ban 1.1.1's; a 1.0.2 tree is read as 1.0.2 reads it.
            flag(
                "systemd_if_nologs",
                self.version != super::TreeVersion::V1_0,
            ),
            flag("skip_if_nologs", false),
        ))
    }

    /// The glob patterns among the jail's logpaths, with `head` or
    /// `tail`: its stream names the files they match now, the file source
    /// follows the files that match them later too.
    pub fn log_globs(&self) -> Vec<(String, String)> {
        let Some(value) = self.opts.get("logpath") else {
            return Vec::new();
        };
        value
            .to_text()
            .split('\n')
            .map(logpath_line)
            .filter(|(path, _)| super::glob::has_magic(path))
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    /// The jail's commands. Missing log files are reported through
    /// `missing_log`; fail2ban's dump goes on without them.
    pub fn stream(
        &mut self,
        missing_log: &mut dyn FnMut(&str),
    ) -> Result<Vec<Command>, ConfigError> {
        let jail = PyValue::str(&self.name);
        if let Some(e) = &self.error {
            return Ok(vec![vec![
                "config-error".into(),
                format!(
                    "Jail '{}' skipped, because of wrong configuration: {}",
                    self.name,
                    jail_def_message(e)
                )
                .into(),
            ]]);
        }
        let mut stream = match &mut self.filter {
            Some(f) => f.filter_stream()?,
            None => Vec::new(),
        };
        fill_stream(&mut stream, &self.opts, &self.name)?;
        let mut logpaths = Vec::new();
        let mut backend = PyValue::str("auto");
        let systemd = self
            .opts
            .get("backend")
            .map(PyValue::to_text)
            .unwrap_or_default()
            .starts_with("systemd");
        let ignored = |o: &str| {
            matches!(
                o,
                "action" | "filter" | "enabled" | "skip_if_nologs" | "systemd_if_nologs"
            ) || FILTER_OPTS.iter().any(|(n, _)| *n == o)
        };
        self.nologs = NoLogs::Keep;
        let backend_text = self
            .opts
            .get("backend")
            .map(PyValue::to_text)
            .unwrap_or_else(|| "auto".into());
        let if_missing = self.no_logs_decision(&backend_text)?;
        for (opt, value) in &self.opts {
            match opt.as_str() {
                "logpath" => {
                    if systemd {
                        continue;
                    }
                    let mut found = 0;
                    for line in value.to_text().split('\n') {
                        let (path, tail) = logpath_line(line);
                        for p in glob(path) {
                            if !std::path::Path::new(&p).exists() {
                                tracing::warn!(
                                    "File {p} is a dangling link, thus cannot be monitored"
                                );
                                continue;
                            }
                            found += 1;
                            logpaths.push(vec![
                                "set".into(),
                                jail.clone(),
                                "addlogpath".into(),
                                p.into(),
                                tail.into(),
                            ]);
                        }
                    }
                    if found == 0 {
                        self.nologs = if_missing;
                        match self.nologs {
                            NoLogs::Keep => missing_log(&self.name),
                            NoLogs::Journal => tracing::warn!(
                                "Have not found any log file for {} jail, \
                                 switching backend to systemd",
                                self.name
                            ),
                            NoLogs::Skip => tracing::warn!(
                                "Have not found any log file for {} jail, \
                                 skipped (skip_if_nologs)",
                                self.name
                            ),
                        }
                    }
                }
                "backend" => backend = value.clone(),
                "ignoreip" => {
                    let mut c: Command = vec!["set".into(), jail.clone(), "addignoreip".into()];
                    c.extend(splitwords(&value.to_text()).into_iter().map(PyValue::from));
                    stream.push(c);
                }
                o if !ignored(o) => {
                    stream.push(vec!["set".into(), jail.clone(), o.into(), value.clone()])
                }
                _ => {}
            }
        }
        match self.nologs {
            NoLogs::Skip => {
                return Ok(vec![vec![
                    "config-error".into(),
                    format!(
                        "Jail '{}' skipped, because of missing log files (skip_if_nologs)",
                        self.name
                    )
                    .into(),
                ]]);
            }
            NoLogs::Journal => backend = PyValue::str("systemd"),
            NoLogs::Keep => {}
        }
        stream.extend(logpaths);
        for a in &mut self.actions {
            match a {
                Action::Def(d) => stream.extend(d.action_stream()?),
                Action::Python(c) => stream.push(c.clone()),
            }
        }
        stream.insert(0, vec!["add".into(), jail, backend]);
        Ok(stream)
    }
}

/// A jail-level failure: either the jail is skipped (fail2ban's
/// `JailDefError`), or the whole configuration is unusable.
enum PartError {
    Skip(ConfigError),
    Fatal(ConfigError),
}

impl From<ConfigError> for PartError {
    fn from(e: ConfigError) -> PartError {
        PartError::Fatal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_python() {
        let mut m = IndexMap::new();
        m.insert("a".to_string(), "x\"é".to_string());
        assert_eq!(json_dumps(&m), r#"{"a": "x\"\u00e9"}"#);
        assert_eq!(json_dumps(&IndexMap::new()), "{}");
    }

    /// fail2ban 1.1.1's order: the journal first (auto only, as written),
    /// then skip_if_nologs.
    #[test]
    fn no_logs_turns_to_the_journal_before_skipping() {
        assert_eq!(no_logs("auto", true, true, true), NoLogs::Journal);
        assert_eq!(no_logs("auto[x=1]", true, true, false), NoLogs::Journal);
        assert_eq!(no_logs("AUTO", true, true, false), NoLogs::Keep);
        assert_eq!(no_logs("auto", false, true, true), NoLogs::Skip);
        assert_eq!(no_logs("auto", true, false, true), NoLogs::Skip);
        assert_eq!(no_logs("polling", true, true, false), NoLogs::Keep);
    }
}
