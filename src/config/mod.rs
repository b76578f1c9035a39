//! fail2ban's configuration, read as fail2ban reads it.
//!
//! Reading happens in two stages. The first turns a tree (fail2ban.conf,
//! jail.conf, jail.d, filter.d, action.d, with their .local overrides) into
//! the command stream fail2ban's client would send its server: every
//! include, interpolation and `<tag>` resolved exactly as fail2ban resolves
//! them, which `fail3ban-client -d` prints. The second stage (`typed`)
//! checks and types those values for the server.
//!
//! ```no_run
//! let conf = fail3ban::config::read_tree("/etc/fail2ban", false).unwrap();
//! for cmd in &conf.stream {
//!     println!("{}", fail3ban::config::format_command(cmd));
//! }
//! ```

pub mod ai;
pub mod definition;
pub mod error;
pub mod glob;
pub mod inherit;
pub mod ini;
pub mod interp;
pub mod jail;
pub mod options;
pub mod parser;
pub mod server;
pub mod stream;
pub mod tags;
pub mod time;
pub mod typed;
pub mod version;

pub use error::{ConfigError, ErrorKind};
pub use stream::{format_command, Command, PyValue};
pub use version::TreeVersion;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;

use jail::{origin, Jail, Readers, FAIL2BAN_VERSION};
use parser::Loader;

/// A configuration tree, resolved.
#[derive(Debug)]
pub struct Tree {
    /// The command stream, as `fail2ban-client -d` prints it.
    pub stream: Vec<Command>,
    /// Problems found on the way; empty for a clean tree. fail2ban logs most
    /// of these and goes on; `fail3ban-client -t` reports them all.
    pub problems: Vec<ConfigError>,
    /// Where each filter option of each jail was set, by (jail, option).
    pub origins: HashMap<(String, String), Origin>,
    /// The problems of enabled jails, by jail: a jail skipped because its
    /// filter or an action cannot be read, or one of its options has a
    /// value the server cannot take. A reload keeps such a jail as it runs.
    pub jail_errors: IndexMap<String, Vec<ConfigError>>,
    /// The glob patterns among each enabled jail's logpaths, with `head`
    /// or `tail`, by jail. The stream names the files they match when it
    /// is read (fail2ban's `-d` does); the server also follows files that
    /// match them later.
    pub log_globs: IndexMap<String, Vec<(String, String)>>,
    /// The fail2ban the tree was written for, whose behaviour fail3ban
    /// follows where 1.0.2 and 1.1 differ.
    pub version: TreeVersion,
}

/// Where an option was set: for problems found once the values are used
/// (a regex that does not compile), which the stream no longer locates.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The file.
    pub file: Option<PathBuf>,
    /// Its section (a jail, `Definition` or `Init` of a filter).
    pub section: String,
    /// The option there (a jail's `filter` for `filter = name[opt=...]`).
    pub option: String,
}

impl Tree {
    /// An error about `option` of `jail`, located where that option was
    /// set (in the jail's section when that is not known).
    pub fn locate(&self, jail: &str, option: &str, kind: ErrorKind) -> ConfigError {
        match self.origins.get(&(jail.to_string(), option.to_string())) {
            Some(o) => ConfigError::bare(kind).located(o.file.as_deref(), &o.section, &o.option),
            None => ConfigError::bare(kind).located(None, jail, option),
        }
    }
}

/// Reads the tree under `basedir`. `strict_logs` makes a jail without any
/// log file a problem, as fail2ban's `-t` does (`-d` tolerates it).
///
/// An error is returned when the tree cannot be used at all (bad syntax, an
/// interpolation that cannot be resolved): fail2ban's reader gives up on the
/// whole configuration then, too.
pub fn read_tree(basedir: &str, strict_logs: bool) -> Result<Tree, ConfigError> {
    if !std::path::Path::new(basedir).is_dir() {
        return Err(ConfigError::new(
            basedir,
            ErrorKind::Unreadable("base configuration directory does not exist".into()),
        ));
    }
    let loader = Loader::new(basedir);
    let mut stream = server::read(&loader)?;
    let mut readers = Readers::new(&loader);
    let mut jails = Vec::new();
    if let Some(mut cfg) = read_jail_conf(&loader)? {
        let names: Vec<String> = cfg
            .sections()
            .filter(|s| *s != "INCLUDES")
            .map(String::from)
            .collect();
        for name in names {
            if let Some(j) = Jail::read(&mut readers, &mut cfg, &name)? {
                for (opt, kind) in typed::check_options(&j.opts) {
                    loader.problem(ConfigError::bare(kind).located(
                        origin(&cfg, &name, &opt).as_deref(),
                        &name,
                        &opt,
                    ));
                }
                jails.push((j, origin(&cfg, &name, "logpath")));
            }
        }
    } else {
        loader.problem(ConfigError::new(
            basedir,
            ErrorKind::NotFound("jail".into()),
        ));
    }
    let mut starts = Vec::new();
    let mut origins = HashMap::new();
    let mut log_globs = IndexMap::new();
    for (jail, logpath_file) in &mut jails {
        let globs = jail.log_globs();
        if !globs.is_empty() {
            log_globs.insert(jail.name.clone(), globs);
        }
        for (option, o) in std::mem::take(&mut jail.origins) {
            origins.insert((jail.name.clone(), option), o);
        }
        let mut missing = |name: &str| {
            tracing::warn!("Have not found any log file for {name} jail");
            if strict_logs {
                loader.problem(
                    ConfigError::bare(ErrorKind::NoLogFile(name.to_string())).located(
                        logpath_file.as_deref(),
                        name,
                        "logpath",
                    ),
                );
            }
        };
        stream.extend(jail.stream(&mut missing)?);
        // A skipped jail follows nothing; one switched to the journal
        // follows no files.
        if jail.nologs != jail::NoLogs::Keep {
            log_globs.shift_remove(&jail.name);
        }
        if jail.error.is_none() && jail.nologs != jail::NoLogs::Skip {
            starts.push(vec![PyValue::str("start"), PyValue::str(&jail.name)]);
        }
    }
    stream.extend(starts);
    let problems = loader.problems();
    let mut jail_errors: IndexMap<String, Vec<ConfigError>> = IndexMap::new();
    for p in &problems {
        let Some(section) = p.section.as_deref() else {
            continue;
        };
        if jails.iter().any(|(j, _)| j.name == section) {
            jail_errors
                .entry(section.to_string())
                .or_default()
                .push(p.clone());
        }
    }
    Ok(Tree {
        stream,
        problems,
        origins,
        jail_errors,
        log_globs,
        version: readers.version,
    })
}

/// jail.conf with jail.d and the .local files, merged, with the options
/// fail2ban adds to [DEFAULT] and `__name__`s resolved.
fn read_jail_conf(loader: &Loader) -> Result<Option<parser::Merged>, ConfigError> {
    let Some(mut cfg) = loader.read_base("jail")? else {
        return Ok(None);
    };
    let file = Arc::new(PathBuf::from(cfg.read[0].clone()));
    let defaults = [
        ("fail2ban_version", FAIL2BAN_VERSION.to_string()),
        ("fail2ban_confpath", loader.basedir().to_string()),
    ];
    for (k, v) in defaults {
        cfg.ini.defaults.insert(
            k.to_string(),
            ini::Value {
                text: v,
                file: file.clone(),
            },
        );
    }
    inherit::resolve(loader, &mut cfg);
    Ok(Some(cfg))
}

/// Reads jail `name` of the tree under `basedir` as fail2ban-regex 1.1
/// does for a NAME that is a jail (gh-2655): enabled or not, with
/// `add_opts` (the options given with the name, and the backend) over the
/// jail's and its filter's, and its log files not required. Returns the
/// jail's commands; `Ok(None)` when the tree has no such jail.
pub fn read_jail(
    basedir: &str,
    name: &str,
    add_opts: &IndexMap<String, String>,
) -> Result<Option<Vec<Command>>, ConfigError> {
    // Only a tree with its jail.conf has jails: a directory of filter.d and
    // jail.d alone (a source tree) names filters.
    if !std::path::Path::new(basedir).join("jail.conf").is_file() {
        return Ok(None);
    }
    let loader = Loader::new(basedir);
    let Some(mut cfg) = read_jail_conf(&loader)? else {
        return Ok(None);
    };
    if name == "INCLUDES" || !cfg.sections().any(|s| s == name) {
        return Ok(None);
    }
    let file = Arc::new(PathBuf::from(cfg.read[0].clone()));
    let mut opts = add_opts.clone();
    opts.insert("enabled".into(), "true".into());
    cfg.merge_section(name, &opts, "", &file);
    let mut readers = Readers::new(&loader);
    let Some(mut jail) = Jail::read(&mut readers, &mut cfg, name)? else {
        return Ok(None);
    };
    if let Some(e) = jail.error.take() {
        return Err(e);
    }
    jail.stream(&mut |_| {}).map(Some)
}

/// Where a filter file comes from.
#[derive(Debug, Clone)]
pub enum FilterSource<'a> {
    /// `filter.d/<name>` under a configuration directory, with its .local
    /// files, as a jail reads it.
    Named { basedir: &'a str, name: &'a str },
    /// One file outside any tree, with its includes.
    File(&'a str),
}

/// Reads one filter with parameters (`sshd[mode=aggressive]`'s options) the
/// way fail2ban-regex does, for a jail named `jail` on `backend`, and
/// returns its commands (`addfailregex`, `prefregex`, `datepattern`, ...).
pub fn read_filter(
    source: FilterSource,
    params: IndexMap<String, String>,
    jail: &str,
    backend: &str,
) -> Result<Vec<Command>, ConfigError> {
    let (loader, merged, name) = match source {
        FilterSource::Named { basedir, name } => {
            let loader = Loader::new(basedir);
            let merged = loader.read_base(&format!("filter.d/{name}"))?;
            (loader, merged, name.to_string())
        }
        FilterSource::File(path) => {
            let loader = Loader::new("/");
            let merged = loader.read_files(&[path.to_string()])?;
            let merged = (!merged.read.is_empty()).then_some(merged);
            let stem = std::path::Path::new(path)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(path)
                .to_string();
            (loader, merged, stem)
        }
    };
    let Some(merged) = merged else {
        return Err(ConfigError::bare(ErrorKind::UnknownFilter(name)));
    };
    if let Some(p) = loader.problems().into_iter().next() {
        return Err(p);
    }
    let mut def = definition::Definition::new(
        definition::Kind::Filter,
        &name,
        jail,
        params,
        std::rc::Rc::new(merged),
    );
    def.apply_auto_options(backend);
    def.get_options(&IndexMap::new(), false)?;
    def.filter_stream()
}
