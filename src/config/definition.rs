//! filter.d and action.d files: options in [Definition], parameters in
//! [Init] that a jail may override (`filter = sshd[mode=aggressive]`,
//! `action = iptables[port=ssh]`), and `<tag>` substitution between them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use indexmap::IndexMap;

use super::error::{ConfigError, ErrorKind};
use super::interp::Vars;
use super::options::shlex_split;
use super::parser::{conditional, Merged};
use super::stream::{Command, PyValue};
use super::tags::substitute;

/// How an option's text is typed once resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptType {
    Str,
    Int,
    Bool,
}

/// The options a filter file may define, in fail2ban's order.
pub const FILTER_OPTS: &[(&str, OptType)] = &[
    ("usedns", OptType::Str),
    ("prefregex", OptType::Str),
    ("ignoreregex", OptType::Str),
    ("failregex", OptType::Str),
    ("maxlines", OptType::Int),
    ("datepattern", OptType::Str),
    ("journalmatch", OptType::Str),
];

/// The options an action file may define, in fail2ban's order.
pub const ACTION_OPTS: &[(&str, OptType)] = &[
    ("actionstart", OptType::Str),
    ("actionstart_on_demand", OptType::Bool),
    ("actionstop", OptType::Str),
    ("actionflush", OptType::Str),
    ("actionreload", OptType::Str),
    ("actioncheck", OptType::Str),
    ("actionrepair", OptType::Str),
    ("actionrepair_on_unban", OptType::Bool),
    ("actionban", OptType::Str),
    ("actionprolong", OptType::Str),
    ("actionreban", OptType::Str),
    ("actionunban", OptType::Str),
    ("norestored", OptType::Bool),
];

/// Action tags whose values come from log lines or the ban itself: they are
/// filled in at ban time (and escaped then), never at configuration time.
pub const ACTION_RUNTIME_TAGS: &[&str] = &[
    "matches",
    "ipmatches",
    "ipjailmatches",
    "timeout",
    "bantime",
];

/// Whether this is a filter or an action file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Filter,
    Action,
}

impl Kind {
    pub fn opts(self) -> &'static [(&'static str, OptType)] {
        match self {
            Kind::Filter => FILTER_OPTS,
            Kind::Action => ACTION_OPTS,
        }
    }
}

/// One filter or action as a jail uses it.
#[derive(Debug)]
pub struct Definition {
    pub kind: Kind,
    /// The file's name without directory and extension (`sshd`).
    pub file: String,
    /// The name the jail knows it by (for actions, `actname`).
    pub name: String,
    jail: String,
    cfg: Rc<Merged>,
    /// Parameters: from the jail's `name[...]`, then [Init].
    pub init_opts: IndexMap<String, String>,
    opts: IndexMap<String, Option<String>>,
    p_opts: Vars,
    cache: HashMap<String, Option<String>>,
    path: Arc<PathBuf>,
}

/// Python's `int()` of a string: optional sign, digits, single underscores
/// between digits, white space around.
pub fn py_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: i64 = clean.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Python's `_as_bool` of fail2ban.
pub fn py_bool(s: &str) -> bool {
    matches!(s.to_lowercase().as_str(), "1" | "on" | "true" | "yes")
}

/// Typed as `t`, or `None` (with a warning) when the text does not fit.
pub fn convert(t: OptType, v: &str, what: &str) -> PyValue {
    match t {
        OptType::Str => PyValue::Str(v.to_string()),
        OptType::Bool => PyValue::Bool(py_bool(v)),
        OptType::Int => match py_int(v) {
            Some(i) => PyValue::Int(i),
            None => {
                tracing::warn!("wrong int value {v:?} for {what:?}, using none");
                PyValue::None
            }
        },
    }
}

/// Text values of a map of typed values, as Python's `vars` sees them.
pub fn vars_of(opts: &IndexMap<String, PyValue>) -> IndexMap<String, String> {
    opts.iter()
        .filter(|(_, v)| **v != PyValue::None)
        .map(|(k, v)| (k.clone(), v.to_text()))
        .collect()
}

fn lowercase_vars(v: &IndexMap<String, String>) -> Vars {
    v.iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect()
}

impl Definition {
    pub fn new(
        kind: Kind,
        file: &str,
        jail: &str,
        init_opts: IndexMap<String, String>,
        cfg: Rc<Merged>,
    ) -> Definition {
        let dir = match kind {
            Kind::Filter => "filter.d",
            Kind::Action => "action.d",
        };
        let path = cfg.read.first().map_or_else(
            || PathBuf::from(format!("{dir}/{file}.conf")),
            PathBuf::from,
        );
        Definition {
            kind,
            file: file.to_string(),
            name: file.to_string(),
            jail: jail.to_string(),
            cfg,
            init_opts,
            opts: IndexMap::new(),
            p_opts: Vars::new(),
            cache: HashMap::new(),
            path: Arc::new(path),
        }
    }

    /// The file the definition was read from (its first file).
    pub fn path(&self) -> &Arc<PathBuf> {
        &self.path
    }

    /// Where this file sets `option`: [Init] (whose values win), else
    /// [Definition].
    pub fn origin(&self, option: &str) -> Option<super::Origin> {
        ["Init", "Definition"].into_iter().find_map(|section| {
            let v = self.cfg.ini.sections.get(section)?.get(option)?;
            Some(super::Origin {
                file: Some(v.file.as_ref().clone()),
                section: section.to_string(),
                option: option.to_string(),
            })
        })
    }

    fn located(&self, e: ConfigError) -> ConfigError {
        if e.file.is_none() {
            e.in_file(self.path.as_path())
        } else {
            e
        }
    }

    /// fail2ban's `logtype` parameter, set from the jail's backend unless the
    /// filter or the jail chose one.
    pub fn apply_auto_options(&mut self, backend: &str) {
        let set = self.init_opts.get("logtype").is_some_and(|v| !v.is_empty());
        let own = self
            .cfg
            .ini
            .sections
            .get("Definition")
            .is_some_and(|s| s.contains_key("logtype"));
        if !set && !own {
            let t = if backend.starts_with("systemd") {
                "journal"
            } else {
                "file"
            };
            self.init_opts.insert("logtype".into(), t.into());
        }
    }

    /// Reads the definition options, with the jail's options `p_opts` taking
    /// precedence, and the [Init] parameters. `all` also takes every other
    /// [Definition] option.
    pub fn get_options(
        &mut self,
        p_opts: &IndexMap<String, String>,
        all: bool,
    ) -> Result<(), ConfigError> {
        let mut p = p_opts.clone();
        for (k, v) in &self.init_opts {
            p.insert(k.clone(), v.clone());
        }
        let vars = lowercase_vars(&p);
        let mut opts = IndexMap::new();
        for (name, _) in self.kind.opts() {
            if p.contains_key(*name) {
                continue;
            }
            match self.cfg.ini.get("Definition", name, Some(&vars)) {
                Ok(v) => {
                    opts.insert(name.to_string(), Some(v));
                }
                Err(e) if matches!(e.kind, ErrorKind::NoSection(_)) => {
                    opts.insert(name.to_string(), None);
                }
                Err(e) if e.kind == ErrorKind::NoOption => {}
                Err(e) => return Err(self.located(e)),
            }
        }
        self.opts = opts;
        self.p_opts = vars;
        if self.cfg.has_section("Init") {
            let own: Vec<String> = self.cfg.ini.sections["Init"].keys().cloned().collect();
            for opt in own {
                let mut v = None;
                if !opt.starts_with("known/") {
                    let got = self
                        .cfg
                        .ini
                        .get("Init", &opt, None)
                        .map_err(|e| self.located(e))?;
                    self.init_opts.insert(format!("known/{opt}"), got.clone());
                    v = Some(got);
                }
                if !self.init_opts.contains_key(&opt) {
                    let got = match v {
                        Some(v) => v,
                        None => self
                            .cfg
                            .ini
                            .get("Init", &opt, None)
                            .map_err(|e| self.located(e))?,
                    };
                    self.init_opts.insert(opt, got);
                }
            }
        }
        if all && self.cfg.has_section("Definition") {
            let own: Vec<String> = self.cfg.ini.sections["Definition"]
                .keys()
                .cloned()
                .collect();
            for opt in own {
                if self.opts.contains_key(&opt) {
                    continue;
                }
                let v = self
                    .cfg
                    .ini
                    .get("Definition", &opt, None)
                    .map_err(|e| self.located(e))?;
                self.opts.insert(opt, Some(v));
            }
        }
        Ok(())
    }

    /// A [Definition] option (or `known/`, `sec/` reference) looked up for a
    /// tag that no option or parameter defines.
    fn comb_option(
        cfg: &Merged,
        p_opts: &Vars,
        cache: &mut HashMap<String, Option<String>>,
        name: &str,
    ) -> Result<Option<String>, ConfigError> {
        if let Some(v) = cache.get(name) {
            return Ok(v.clone());
        }
        let v = match cfg.ini.get_ex("Definition", name, Some(p_opts)) {
            Ok(v) => Some(v),
            Err(e) if matches!(e.kind, ErrorKind::NoSection(_) | ErrorKind::NoOption) => None,
            Err(e) => return Err(e),
        };
        cache.insert(name.to_string(), v.clone());
        Ok(v)
    }

    /// Options and parameters together, with `<tags>` between them resolved
    /// and typed values converted.
    pub fn get_combined(
        &mut self,
        ignore: &[&str],
    ) -> Result<IndexMap<String, PyValue>, ConfigError> {
        let mut combined = self.opts.clone();
        for (k, v) in &self.init_opts {
            combined.insert(k.clone(), Some(v.clone()));
        }
        if combined.is_empty() {
            return Ok(IndexMap::new());
        }
        let mut ignore: HashSet<String> = ignore.iter().map(|s| s.to_string()).collect();
        for k in combined.keys() {
            if let Some((base, _)) = conditional(k) {
                ignore.insert(base.to_string());
            }
        }
        let (cfg, p_opts, cache) = (&self.cfg, &self.p_opts, &mut self.cache);
        let subst = substitute(&combined, "", &ignore, &mut |name| {
            Definition::comb_option(cfg, p_opts, cache, name)
        })
        .map_err(|e| self.located(e.in_section("Definition")))?;
        let types: HashMap<&str, OptType> = self.kind.opts().iter().copied().collect();
        Ok(subst
            .into_iter()
            .map(|(k, v)| {
                let v = match (v, types.get(k.as_str())) {
                    (None, _) => PyValue::None,
                    (Some(v), Some(t)) => convert(*t, &v, &k),
                    (Some(v), None) => PyValue::Str(v),
                };
                (k, v)
            })
            .collect())
    }

    /// The filter's commands for its jail.
    pub fn filter_stream(&mut self) -> Result<Vec<Command>, ConfigError> {
        let opts = self.get_combined(&[])?;
        let mut stream = Vec::new();
        fill_stream(&mut stream, &opts, &self.jail).map_err(|e| self.located(e))?;
        Ok(stream)
    }

    /// The action's commands for its jail.
    pub fn action_stream(&mut self) -> Result<Vec<Command>, ConfigError> {
        let opts = self.get_combined(ACTION_RUNTIME_TAGS)?;
        let known = |k: &str| ACTION_OPTS.iter().any(|(n, _)| *n == k);
        let mut multi: Vec<PyValue> = Vec::new();
        for (k, v) in &opts {
            if known(k) && !k.starts_with("known/") {
                multi.push(PyValue::List(vec![k.as_str().into(), v.clone()]));
            }
        }
        for (k, v) in &self.init_opts {
            if !known(k) && !k.starts_with("known/") {
                multi.push(PyValue::List(vec![k.as_str().into(), v.as_str().into()]));
            }
        }
        let jail = PyValue::str(&self.jail);
        let mut stream = vec![vec![
            "set".into(),
            jail.clone(),
            "addaction".into(),
            self.name.as_str().into(),
        ]];
        if multi.len() > 1 {
            stream.push(vec![
                "multi-set".into(),
                jail,
                "action".into(),
                self.name.as_str().into(),
                PyValue::List(multi),
            ]);
        } else if let Some(PyValue::List(kv)) = multi.pop() {
            let mut c = vec![
                "set".into(),
                jail,
                "action".into(),
                self.name.as_str().into(),
            ];
            c.extend(kv);
            stream.push(c);
        }
        Ok(stream)
    }
}

/// Appends the commands for filter-related options (`failregex`,
/// `usedns`, ...) found in `opts`, in fail2ban's order: `usedns` first,
/// then `prefregex`/`maxlines`, then regexes and the rest as they come.
pub fn fill_stream(
    stream: &mut Vec<Command>,
    opts: &IndexMap<String, PyValue>,
    jail: &str,
) -> Result<(), ConfigError> {
    let mut prio0 = 0;
    let j = || PyValue::str(jail);
    for (opt, value) in opts {
        if *value == PyValue::None {
            continue;
        }
        let text = value.to_text();
        match opt.as_str() {
            "failregex" | "ignoreregex" => {
                let multi: Vec<PyValue> = text
                    .split('\n')
                    .filter(|r| !r.is_empty())
                    .map(PyValue::from)
                    .collect();
                let cmd = format!("add{opt}");
                if multi.len() > 1 {
                    stream.push(vec![
                        "multi-set".into(),
                        j(),
                        cmd.into(),
                        PyValue::List(multi),
                    ]);
                } else if let Some(r) = multi.into_iter().next() {
                    stream.push(vec!["set".into(), j(), cmd.into(), r]);
                }
            }
            "usedns" | "maxlines" | "prefregex" => {
                let at = if opt == "usedns" { 0 } else { prio0 };
                stream.insert(
                    at.min(stream.len()),
                    vec!["set".into(), j(), opt.as_str().into(), value.clone()],
                );
                prio0 += 1;
            }
            "journalmatch" => {
                for m in text.split('\n').filter(|m| !m.is_empty()) {
                    let words = shlex_split(m).map_err(|why| {
                        ConfigError::bare(ErrorKind::BadValue {
                            expected: "shell words",
                            value: format!("{m} ({why})"),
                        })
                        .for_option("journalmatch")
                    })?;
                    let mut c = vec!["set".into(), j(), "addjournalmatch".into()];
                    c.extend(words.into_iter().map(PyValue::from));
                    stream.push(c);
                }
            }
            // fail2ban tests membership in the string "datepattern" here, so
            // any option named like a piece of it is sent as well.
            o if !o.is_empty() && "datepattern".contains(o) => {
                stream.push(vec!["set".into(), j(), o.into(), value.clone()]);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int() {
        assert_eq!(py_int(" 5 "), Some(5));
        assert_eq!(py_int("-1"), Some(-1));
        assert_eq!(py_int("1_000"), Some(1000));
        assert_eq!(py_int("1h"), None);
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("0x10"), None);
    }

    #[test]
    fn python_bool() {
        assert!(py_bool("True"));
        assert!(py_bool("on"));
        assert!(!py_bool("enabled"));
    }
}
