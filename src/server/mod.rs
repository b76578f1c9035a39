//! The daemon: jails built from the configuration, run on tokio, driven
//! through the control socket.
//!
//! The configuration reaches the server as the same command stream that
//! `fail3ban-client -d` prints (`add`, `set`, `start`): the server applies
//! it command by command, so that a jail configured at start, by reload or
//! by `fail3ban-client set` goes through one path.

mod ai;
pub mod check;
pub mod clock;
pub mod control;
pub mod files;
pub mod jail;
pub mod log;
pub mod pickled;
pub mod spec;
pub mod transmitter;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio::sync::{Notify, RwLock};

use crate::client::protocol::{CommandError, ErrorKind};
use crate::config::time::str2seconds;
use crate::config::TreeVersion;
use crate::jail::status::{self, Flavor};
use crate::store::{Settings, SqliteStore, Store};

use self::clock::Clock;
use self::jail::{Jail, JailError};
use self::log::{Log, LogLevel, Target};
use self::spec::{command_to_json, text, JailSpec};

/// The server's own options (fail2ban.conf's [Definition]).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub loglevel: String,
    pub logtarget: String,
    pub syslogsocket: String,
    pub allowipv6: String,
    pub dbfile: Option<String>,
    pub dbpurgeage: f64,
    pub dbmaxmatches: u32,
    /// Where the metrics endpoint listens (`metrics`); off when `None`.
    pub metrics: Option<std::net::SocketAddr>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            loglevel: "INFO".into(),
            logtarget: "STDERR".into(),
            syslogsocket: "auto".into(),
            allowipv6: "auto".into(),
            dbfile: None,
            dbpurgeage: 86400.0,
            dbmaxmatches: 10,
            metrics: None,
        }
    }
}

/// The running daemon.
pub struct Server {
    conf_dir: String,
    pub log: Log,
    store: Mutex<Option<Arc<dyn Store>>>,
    jails: RwLock<IndexMap<String, Arc<Jail>>>,
    /// Jails added but not started yet.
    pending: Mutex<IndexMap<String, JailSpec>>,
    settings: Mutex<ServerSettings>,
    shutdown: Notify,
    /// Serialises reloads and start/stop of jails.
    reconfig: tokio::sync::Mutex<()>,
    /// The log level and target were given on the command line.
    keep_log: std::sync::atomic::AtomicBool,
    /// The AI rule generator, started by the first jail that wants it.
    ai: ai::AiSlot,
    /// Why jails of the configuration could not take it (at start or at
    /// the last reload), by jail, for `status`.
    config_errors: Mutex<IndexMap<String, String>>,
    /// The time the jails and the database purge go by.
    clock: Clock,
    /// The fail2ban the configuration tree was written for (at start or
    /// the last reload): jails added get its tag expansions.
    tree_version: Mutex<TreeVersion>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("conf_dir", &self.conf_dir)
            .finish_non_exhaustive()
    }
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::new(ErrorKind::Failed, e.to_string())
}

impl Server {
    pub fn new(conf_dir: &str, log: Log) -> Server {
        Server {
            conf_dir: conf_dir.to_string(),
            log,
            store: Mutex::new(None),
            jails: RwLock::new(IndexMap::new()),
            pending: Mutex::new(IndexMap::new()),
            settings: Mutex::new(ServerSettings::default()),
            shutdown: Notify::new(),
            reconfig: tokio::sync::Mutex::new(()),
            keep_log: std::sync::atomic::AtomicBool::new(false),
            ai: ai::AiSlot::default(),
            config_errors: Mutex::new(IndexMap::new()),
            clock: Clock::wall(),
            tree_version: Mutex::new(TreeVersion::default()),
        }
    }

    /// Keeps the current log level and target whatever the configuration
    /// says (they were given on the command line).
    pub fn keep_log_options(&self) {
        self.keep_log
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn conf_dir(&self) -> &str {
        &self.conf_dir
    }

    fn store(&self) -> Option<Arc<dyn Store>> {
        self.store.lock().expect("store lock").clone()
    }

    /// Asks the server to stop (the `stop` command).
    pub fn request_shutdown(&self) {
        self.shutdown.notify_one();
    }

    /// Resolves when a `stop` command arrived.
    pub async fn shutdown_requested(&self) {
        self.shutdown.notified().await;
    }

    /// Reads the configuration tree and applies its stream: server options,
    /// then every jail added and started.
    pub async fn load_config(&self) -> Result<(), crate::config::ConfigError> {
        // Read on the thread that starts the jails, not on the blocking
        // pool as a reload reads it: there, the tree's allocations went to
        // a second malloc arena, which kept their peak (1.9 MiB more heap
        // after start, measured).
        let tree = crate::config::read_tree(&self.conf_dir, false)?;
        for p in &tree.problems {
            tracing::error!("{p}");
        }
        *self.tree_version.lock().expect("tree version lock") = tree.version;
        let mut errors = jail_errors(&tree);
        // Jails whose action could not be added: without it a jail would
        // ban nothing, so it does not start (as a reload leaves it out).
        let mut actionless = std::collections::HashSet::new();
        for cmd in &tree.stream {
            let cmd = command_to_json(cmd);
            if let [verb, jail] = &cmd[..] {
                if text(verb) == "start" {
                    if actionless.contains(&text(jail)) {
                        continue;
                    }
                    self.set_log_globs(&tree, &text(jail));
                }
            }
            if let Err(e) = self.command(&cmd).await {
                let words: Vec<String> = cmd.iter().map(text).collect();
                tracing::error!("Command {words:?} has failed. Received {e}");
                if let [verb, jail, what, ..] = &words[..] {
                    if verb == "set" && what == "addaction" {
                        actionless.insert(jail.clone());
                    }
                }
                if let [verb, jail, ..] = &words[..] {
                    if verb == "start" || verb == "set" {
                        errors
                            .entry(jail.clone())
                            .or_insert_with(|| format!("[{jail}] {}", e.message));
                    }
                }
            }
        }
        let running = self.jails.read().await;
        let mut known = self.config_errors.lock().expect("errors lock");
        for (name, e) in errors {
            let outcome = if running.contains_key(&name) {
                "runs without the option"
            } else {
                "is not running"
            };
            known.insert(name.clone(), format!("{e} (jail '{name}' {outcome})"));
        }
        Ok(())
    }

    /// The error rows `status` adds (none when every jail took its
    /// configuration: then it answers exactly as fail2ban does).
    fn config_error_rows(&self, only: Option<&str>) -> Vec<Value> {
        self.config_errors
            .lock()
            .expect("errors lock")
            .iter()
            .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
            .map(|(_, e)| json!(["Configuration error", e]))
            .collect()
    }

    /// The jails' names, sorted as fail2ban lists them, and with a
    /// flavour each jail's status in it.
    async fn statuses(
        &self,
        flavor: Option<&Flavor>,
    ) -> (Vec<String>, Option<Vec<(String, Value)>>) {
        let jails = self.jails.read().await;
        let mut names: Vec<String> = jails.keys().cloned().collect();
        names.sort();
        let each = flavor.map(|f| {
            names
                .iter()
                .map(|n| (n.clone(), status::jail_status(&jails[n].counts(), f)))
                .collect()
        });
        (names, each)
    }

    /// `status`, or with `all` (`status --all FLAVOR`) every jail's
    /// status in that flavour too.
    pub async fn status(&self, all: Option<&Flavor>) -> Value {
        let (names, each) = self.statuses(all).await;
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut status = status::server_status(&list, each);
        if let Value::Array(rows) = &mut status {
            // Before the jails' statuses, which fail2ban's client reads last.
            rows.splice(2..2, self.config_error_rows(None));
        }
        status
    }

    /// `stats`: every jail's backend and counts.
    pub async fn stats(&self) -> Value {
        let (_, each) = self.statuses(Some(&Flavor::Stats)).await;
        status::stats(each.unwrap_or_default())
    }

    async fn jail(&self, name: &str) -> Result<Arc<Jail>, CommandError> {
        self.jails
            .read()
            .await
            .get(name)
            .cloned()
            .ok_or_else(|| CommandError::unknown_jail(name))
    }

    async fn jail_status(&self, name: &str, flavor: &Flavor) -> Result<Value, CommandError> {
        let j = self.jail(name).await?;
        let mut status = status::jail_status(&j.counts(), flavor);
        let errors = self.config_error_rows(Some(name));
        if let (false, Value::Array(sections)) = (errors.is_empty(), &mut status) {
            sections.push(json!(["Configuration", errors]));
        }
        Ok(status)
    }

    /// The settings of a jail, running or pending.
    async fn spec(&self, name: &str) -> Result<JailSpec, CommandError> {
        if let Some(s) = self.pending.lock().expect("pending lock").get(name) {
            return Ok(s.clone());
        }
        let j = self.jail(name).await?;
        Ok(j.spec())
    }

    /// Changes a jail's settings: a pending jail directly, a running one
    /// through a reload that keeps its state.
    async fn change_spec(
        &self,
        name: &str,
        f: impl FnOnce(&mut JailSpec) -> Result<Value, CommandError>,
    ) -> Result<Value, CommandError> {
        {
            let mut pending = self.pending.lock().expect("pending lock");
            if let Some(s) = pending.get_mut(name) {
                return f(s);
            }
        }
        let j = self.jail(name).await?;
        let mut spec = j.spec();
        let v = f(&mut spec)?;
        j.reload(spec)
            .await
            .map_err(|e| CommandError::new(ErrorKind::InvalidValue, e.to_string()))?;
        Ok(v)
    }

    async fn add_jail(&self, name: &str, backend: &str) -> Result<(), CommandError> {
        if self.jails.read().await.contains_key(name) {
            return Err(CommandError::new(ErrorKind::DuplicateJail, name));
        }
        let mut pending = self.pending.lock().expect("pending lock");
        if pending.contains_key(name) {
            return Err(CommandError::new(ErrorKind::DuplicateJail, name));
        }
        let backend = spec::JailBackend::parse(backend)
            .map_err(|e| CommandError::new(ErrorKind::InvalidValue, e.to_string()))?;
        let mut spec = JailSpec::new(name, backend);
        spec.version = *self.tree_version.lock().expect("tree version lock");
        pending.insert(name.to_string(), spec);
        Ok(())
    }

    async fn start_jail(&self, name: &str) -> Result<(), CommandError> {
        let spec = self
            .pending
            .lock()
            .expect("pending lock")
            .shift_remove(name);
        let Some(spec) = spec else {
            // Already running: fail2ban answers with no error.
            return self.jail(name).await.map(|_| ());
        };
        self.run_jail(name, spec)
            .await
            .map_err(|e| CommandError::new(ErrorKind::InvalidValue, e.to_string()))
    }

    async fn stop_jail(&self, name: &str) -> Result<(), CommandError> {
        let j = self.jails.write().await.shift_remove(name);
        match j {
            Some(j) => {
                j.stop(false).await;
                Ok(())
            }
            None => {
                if self
                    .pending
                    .lock()
                    .expect("pending lock")
                    .shift_remove(name)
                    .is_some()
                {
                    return Ok(());
                }
                Err(CommandError::unknown_jail(name))
            }
        }
    }

    /// Stops every jail (in reverse order of start).
    pub async fn stop_all_jails(&self) {
        let jails: Vec<Arc<Jail>> = {
            let mut map = self.jails.write().await;
            map.drain(..).map(|(_, j)| j).collect()
        };
        for j in jails.into_iter().rev() {
            j.stop(false).await;
        }
    }

    async fn unban_all(&self) -> usize {
        let jails: Vec<Arc<Jail>> = self.jails.read().await.values().cloned().collect();
        let mut n = 0;
        for j in jails {
            n += j.unban_all().await;
        }
        n
    }

    async fn unban_everywhere(&self, ip: &str) -> usize {
        let jails: Vec<Arc<Jail>> = self.jails.read().await.values().cloned().collect();
        let mut n = 0;
        for j in jails {
            if j.unban_ip(ip).await {
                n += 1;
            }
        }
        n
    }

    async fn banned(&self, ids: &[String]) -> Value {
        let jails = self.jails.read().await;
        if ids.is_empty() {
            let all: Vec<Value> = jails
                .iter()
                .map(|(name, j)| json!({ name: j.banned() }))
                .collect();
            return json!(all);
        }
        let per_ip: Vec<Value> = ids
            .iter()
            .map(|ip| {
                let fid = crate::filter::ipaddr::parse_unspec(ip);
                let names: Vec<&String> = jails
                    .iter()
                    .filter(|(_, j)| j.is_banned(&fid))
                    .map(|(n, _)| n)
                    .collect();
                json!(names)
            })
            .collect();
        json!(per_ip)
    }

    /// `reload [jail]`: the configuration read again; jails keep their
    /// failures and bans unless restarted.
    ///
    /// A jail whose new configuration has an error (a filter or action
    /// that cannot be read, a value the jail cannot take) is neither
    /// reloaded nor stopped: it keeps running as it was, with its failures
    /// and bans, and the reload fails naming the error, which `status`
    /// shows until a reload without it. Only a jail that is no longer in
    /// the configuration at all stops.
    async fn reload(
        &self,
        only: Option<&str>,
        restart: bool,
        unban: bool,
        all: bool,
        if_exists: bool,
    ) -> Result<(), CommandError> {
        let _guard = self.reconfig.lock().await;
        let dir = self.conf_dir.clone();
        let tree = tokio::task::spawn_blocking(move || crate::config::read_tree(&dir, false))
            .await
            .map_err(failed)?
            .map_err(failed)?;
        for p in &tree.problems {
            tracing::error!("{p}");
        }
        let (mut specs, mut broken) = self.new_specs(&tree).await;
        if let Some(name) = only {
            broken.retain(|n, _| n == name);
            let spec = specs.shift_remove(name);
            specs.clear();
            match spec {
                Some(spec) => {
                    specs.insert(name.to_string(), spec);
                }
                None if broken.is_empty() && if_exists => return Ok(()),
                None if broken.is_empty() => return Err(CommandError::unknown_jail(name)),
                None => {}
            }
        }
        let running: Vec<String> = self.jails.read().await.keys().cloned().collect();
        // Jails no longer configured stop (only on a full reload).
        if only.is_none() {
            for name in &running {
                if !specs.contains_key(name) && !broken.contains_key(name) {
                    tracing::info!("Jail '{name}' is no longer configured: stopping it");
                    let j = self.jails.write().await.shift_remove(name);
                    if let Some(j) = j {
                        j.stop(true).await;
                    }
                }
            }
        }
        for (name, spec) in specs {
            if let Err(e) = self.apply_spec(&name, spec, restart, unban).await {
                broken.insert(name, e.to_string());
            }
        }
        let _ = all;
        let mut errors = Vec::new();
        for (name, e) in &broken {
            let outcome = if self.jails.read().await.contains_key(name) {
                "keeps its previous settings"
            } else {
                "is not running"
            };
            tracing::error!("[{name}] reload failed, the jail {outcome}: {e}");
            errors.push((name.clone(), format!("{e} (jail '{name}' {outcome})")));
        }
        let message: Vec<String> = errors.iter().map(|(_, m)| m.clone()).collect();
        {
            let mut known = self.config_errors.lock().expect("errors lock");
            match only {
                Some(name) => {
                    known.shift_remove(name);
                }
                None => known.clear(),
            }
            known.extend(errors);
        }
        if message.is_empty() {
            Ok(())
        } else {
            Err(failed(message.join("\n")))
        }
    }

    /// Gives the pending jail `name` the glob patterns of its logpaths.
    fn set_log_globs(&self, tree: &crate::config::Tree, name: &str) {
        let Some(globs) = tree.log_globs.get(name) else {
            return;
        };
        if let Some(s) = self.pending.lock().expect("pending lock").get_mut(name) {
            s.logglobs = globs.clone();
        }
    }

    /// The settings of every jail of `tree`, built without starting
    /// anything (server options are applied on the way), and the errors
    /// of the jails that cannot have theirs, by jail.
    async fn new_specs(
        &self,
        tree: &crate::config::Tree,
    ) -> (IndexMap<String, JailSpec>, IndexMap<String, String>) {
        let mut broken = jail_errors(tree);
        *self.tree_version.lock().expect("tree version lock") = tree.version;
        let mut specs: IndexMap<String, JailSpec> = IndexMap::new();
        for cmd in &tree.stream {
            let cmd = command_to_json(cmd);
            let word = |i: usize| cmd.get(i).map(text).unwrap_or_default();
            match spec::apply(&mut specs, &cmd) {
                Ok(true) => {}
                // Server options.
                Ok(false) if word(0) == "set" => {
                    let _ = self.set_server_option(&word(1), cmd.get(2)).await;
                }
                Ok(false) => {}
                Err(e) => {
                    let jail = word(1);
                    broken
                        .entry(jail.clone())
                        .or_insert_with(|| format!("[{jail}] {}: {}", word(2), e.message));
                }
            }
        }
        specs.retain(|name, _| !broken.contains_key(name));
        for (name, spec) in specs.iter_mut() {
            spec.version = tree.version;
            if let Some(globs) = tree.log_globs.get(name) {
                spec.logglobs = globs.clone();
            }
        }
        (specs, broken)
    }

    /// Gives the jail `name` its new settings: a running jail reloads
    /// (keeping its state) or restarts, a new one starts. On an error a
    /// running jail is left as it was, when it can be.
    async fn apply_spec(
        &self,
        name: &str,
        spec: JailSpec,
        restart: bool,
        unban: bool,
    ) -> Result<(), JailError> {
        let existing = self.jails.read().await.get(name).cloned();
        match existing {
            Some(j) if !restart => {
                if unban {
                    j.unban_all().await;
                }
                j.reload(spec).await?;
                self.attach_ai(&j);
                return Ok(());
            }
            Some(j) => {
                // Checked before the jail stops, which could not be undone.
                jail::check_spec(&spec)?;
                self.jails.write().await.shift_remove(name);
                j.stop(unban).await;
            }
            None => {}
        }
        self.run_jail(name, spec).await
    }

    /// Starts the jail `name` and adds it to the running ones.
    async fn run_jail(&self, name: &str, spec: JailSpec) -> Result<(), JailError> {
        if let Some(why) = self.ai_rule_refusal(name).await? {
            return Err(JailError::AiRule(why));
        }
        let ai = self.ai_for(&spec);
        // Boxed: a jail's start takes KiBs of future state (see `command`).
        let jail = Box::pin(Jail::start(spec, self.store(), ai, self.clock)).await?;
        self.attach_ai(&jail);
        self.jails
            .write()
            .await
            .insert(name.to_string(), Arc::new(jail));
        Ok(())
    }

    /// Why `name`, if it is the jail of an AI rule, may not start: a
    /// configuration read before its rule was found invalid or rejected
    /// still names it.
    async fn ai_rule_refusal(&self, name: &str) -> Result<Option<String>, JailError> {
        let Some(store) = self.store().filter(|_| name.starts_with("ai-")) else {
            return Ok(None);
        };
        let name = name.to_string();
        let why = tokio::task::spawn_blocking(move || {
            crate::ai::evidence::refusal(store.as_ref(), &name)
        });
        Ok(why.await?)
    }

    /// `set <option> <value>` for the server's own options; `None` when
    /// `target` is not one (then it is a jail).
    async fn set_server_option(
        &self,
        target: &str,
        value: Option<&Value>,
    ) -> Result<Option<Value>, CommandError> {
        let v = value.map(text).unwrap_or_default();
        let keep_log = self.keep_log.load(std::sync::atomic::Ordering::Relaxed);
        match target {
            "loglevel" | "logtarget" if keep_log => {}
            "loglevel" => {
                let level = LogLevel::parse(&v).ok_or_else(|| {
                    CommandError::new(ErrorKind::InvalidValue, format!("Invalid log level {v:?}"))
                })?;
                self.log.set_level(level);
                self.settings.lock().expect("settings lock").loglevel = v.clone();
            }
            "logtarget" => {
                self.log.set_target(Target::parse(&v)).map_err(failed)?;
                self.settings.lock().expect("settings lock").logtarget = v.clone();
            }
            "syslogsocket" => self.settings.lock().expect("settings lock").syslogsocket = v.clone(),
            "allowipv6" => self.settings.lock().expect("settings lock").allowipv6 = v.clone(),
            "thread" => {}
            "metrics" => {
                let addr = crate::metrics::parse_address(&v)
                    .map_err(|e| CommandError::new(ErrorKind::InvalidValue, e.to_string()))?;
                // Recorded from the first action started on, the endpoint
                // itself opened once the configuration is loaded.
                if addr.is_some() {
                    crate::metrics::actions::enable();
                }
                self.settings.lock().expect("settings lock").metrics = addr;
            }
            "ai" => self.set_ai_settings(value),
            "dbfile" => {
                if v.is_empty() || v.eq_ignore_ascii_case("none") {
                    *self.store.lock().expect("store lock") = None;
                    self.settings.lock().expect("settings lock").dbfile = None;
                } else {
                    self.open_store(&own_path(&v));
                }
            }
            "dbpurgeage" => {
                let secs = match value {
                    Some(Value::Number(n)) => n.as_f64().unwrap_or(86400.0),
                    _ => str2seconds(&v)
                        .map_err(|e| CommandError::new(ErrorKind::InvalidValue, e.to_string()))?,
                };
                self.settings.lock().expect("settings lock").dbpurgeage = secs;
                self.apply_store_settings();
            }
            "dbmaxmatches" => {
                let n = v.trim().parse::<u32>().map_err(|_| {
                    CommandError::new(
                        ErrorKind::InvalidValue,
                        format!("Invalid dbmaxmatches {v:?}"),
                    )
                })?;
                self.settings.lock().expect("settings lock").dbmaxmatches = n;
                self.apply_store_settings();
            }
            _ => return Ok(None),
        }
        Ok(Some(value.cloned().unwrap_or(Value::Null)))
    }

    fn get_server_option(&self, target: &str) -> Option<Value> {
        let s = self.settings.lock().expect("settings lock");
        Some(match target {
            "loglevel" => json!(s.loglevel),
            "logtarget" => json!(s.logtarget),
            "syslogsocket" => json!(s.syslogsocket),
            "allowipv6" => json!(s.allowipv6),
            "dbfile" => json!(s.dbfile),
            "dbpurgeage" => {
                if s.dbfile.is_none() {
                    Value::Null
                } else {
                    json!(s.dbpurgeage as i64)
                }
            }
            "dbmaxmatches" => json!(s.dbmaxmatches),
            "metrics" => json!(s.metrics.map(|a| a.to_string())),
            _ => return None,
        })
    }

    fn apply_store_settings(&self) {
        let s = self.settings.lock().expect("settings lock").clone();
        if let Some(store) = self.store() {
            store.set_settings(Settings {
                purge_age: s.dbpurgeage,
                max_matches: s.dbmaxmatches as usize,
            });
        }
    }

    fn open_store(&self, path: &str) {
        let s = self.settings.lock().expect("settings lock").clone();
        if let Some(dir) = PathBuf::from(path).parent() {
            if !dir.as_os_str().is_empty() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        match SqliteStore::open(
            path,
            Settings {
                purge_age: s.dbpurgeage,
                max_matches: s.dbmaxmatches as usize,
            },
        ) {
            Ok(store) => {
                let store: Arc<dyn Store> = Arc::new(store);
                if let Err(e) = store.purge(self.clock.now()) {
                    tracing::error!("purging the database {path}: {e}");
                }
                // Before any jail of the configuration starts: an AI rule
                // that matches a line since judged benign is not loaded.
                crate::ai::evidence::recheck(store.as_ref(), Path::new(&self.conf_dir));
                *self.store.lock().expect("store lock") = Some(store);
                self.settings.lock().expect("settings lock").dbfile = Some(path.to_string());
            }
            Err(e) => {
                // The jails go on without persistence rather than not at all.
                tracing::error!("Unable to open the database {path}: {e}; going on without one");
                *self.store.lock().expect("store lock") = None;
            }
        }
    }

    /// Jails that follow files but had none when configured: fail2ban's
    /// configuration drops a logpath that matches no file, so only reading
    /// the configuration again can find it once it exists (a glob pattern
    /// the source looks at itself).
    async fn jails_without_logs(&self) -> Vec<String> {
        self.jails
            .read()
            .await
            .iter()
            .filter(|(_, j)| j.has_no_logs())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Reloads the jails of [`Server::jails_without_logs`] whose log files
    /// have appeared since.
    pub async fn rescan_missing_logs(&self) {
        let waiting = self.jails_without_logs().await;
        if waiting.is_empty() {
            return;
        }
        let dir = self.conf_dir.clone();
        let tree = tokio::task::spawn_blocking(move || crate::config::read_tree(&dir, false)).await;
        let Ok(Ok(tree)) = tree else {
            return;
        };
        for name in waiting {
            let found = tree.stream.iter().any(|cmd| {
                let cmd = command_to_json(cmd);
                cmd.len() > 3
                    && text(&cmd[0]) == "set"
                    && text(&cmd[1]) == name
                    && text(&cmd[2]) == "addlogpath"
            });
            if found {
                tracing::info!("[{name}] its log file appeared: reloading the jail");
                // Boxed: the task that runs this loop keeps its future
                // for the daemon's life, the reload's only while it runs.
                let reload = Box::pin(self.reload(Some(&name), false, false, false, true));
                if let Err(e) = reload.await {
                    tracing::error!("[{name}] reload after its log file appeared failed: {e}");
                }
            }
        }
    }

    /// Purges the database from time to time (dbpurgeage).
    pub fn purge_store(&self) {
        if let Some(s) = self.store() {
            if let Err(e) = s.purge(self.clock.now()) {
                tracing::error!("purging the database: {e}");
            }
        }
    }
}

impl crate::metrics::Sampler for Server {
    async fn sample_jails(&self) -> Vec<crate::metrics::JailSample> {
        let jails: Vec<Arc<Jail>> = self.jails.read().await.values().cloned().collect();
        jails.iter().map(|j| j.metrics_sample()).collect()
    }

    fn sample_ai(&self) -> Option<crate::metrics::AiSample> {
        self.ai_metrics()
    }
}

/// Opens the metrics endpoint when the configuration asks for one; a bind
/// that fails is logged and the server goes on without it.
async fn start_metrics(server: &Arc<Server>) -> Option<tokio::task::JoinHandle<()>> {
    let addr = server.settings.lock().expect("settings lock").metrics?;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!("Metrics endpoint listening on http://{addr}/metrics");
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                server.clone(),
            )))
        }
        Err(e) => {
            tracing::error!("Unable to open the metrics endpoint on {addr}: {e}");
            None
        }
    }
}

/// The configuration errors of each jail of `tree`, one text per jail.
fn jail_errors(tree: &crate::config::Tree) -> IndexMap<String, String> {
    tree.jail_errors
        .iter()
        .map(|(name, errors)| {
            let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
            (name.clone(), texts.join("; "))
        })
        .collect()
}

/// How often jails without any log file look for it again.
const LOG_RESCAN: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the server: the configuration loaded, the control socket served,
/// the tree watched, until `shutdown` resolves or a `stop` command comes.
pub async fn run(
    server: Arc<Server>,
    listener: tokio::net::UnixListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if let Err(e) = server.load_config().await {
        tracing::error!("{e}");
    }
    let metrics = start_metrics(&server).await;
    let control = tokio::spawn(control::serve(server.clone(), listener));
    let watcher = tokio::spawn(watch::watch(server.clone()));
    let purger = {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                server.purge_store();
            }
        })
    };
    let log_rescan = {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOG_RESCAN).await;
                server.rescan_missing_logs().await;
            }
        })
    };
    tokio::select! {
        _ = shutdown => {}
        _ = server.shutdown_requested() => {}
    }
    tracing::info!("Shutdown in progress...");
    server.stop_all_jails().await;
    control.abort();
    watcher.abort();
    purger.abort();
    log_rescan.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    tracing::info!("Exiting Fail2ban");
}

/// Where the daemon keeps its socket, pid file and database.
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    pub socket: PathBuf,
    pub pidfile: PathBuf,
}

/// fail2ban's default paths in a fail2ban tree become fail3ban's own, so
/// that fail3ban never takes over fail2ban's socket or its database
/// (whose schema is fail2ban's).
pub fn own_path(p: &str) -> String {
    match p {
        "/var/run/fail2ban/fail2ban.sock" | "/run/fail2ban/fail2ban.sock" => {
            "/run/fail3ban/fail3ban.sock".into()
        }
        "/var/run/fail2ban/fail2ban.pid" | "/run/fail2ban/fail2ban.pid" => {
            "/run/fail3ban/fail3ban.pid".into()
        }
        "/var/lib/fail2ban/fail2ban.sqlite3" => "/var/lib/fail3ban/fail3ban.sqlite3".into(),
        other => other.into(),
    }
}

/// The database file a configuration tree names (the last `dbfile` of its
/// server options) as it is written, fail2ban's own in a fail2ban tree;
/// `None` when the tree keeps no database file (`none`, empty, `:memory:`).
/// [`own_path`] of it is the file fail3ban's server opens.
pub fn configured_dbfile(conf_dir: &str) -> Result<Option<String>, crate::config::ConfigError> {
    let loader = crate::config::parser::Loader::new(conf_dir);
    let stream = crate::config::server::read(&loader)?;
    let db = stream
        .iter()
        .filter(|c| c.len() == 3)
        .filter(|c| c[0].as_str() == Some("set") && c[1].as_str() == Some("dbfile"))
        .map(|c| c[2].to_text())
        .next_back()
        .unwrap_or_else(|| "/var/lib/fail2ban/fail2ban.sqlite3".into());
    let none = db.is_empty() || db.eq_ignore_ascii_case("none") || db == ":memory:";
    Ok((!none).then_some(db))
}

/// The socket and pid file a configuration tree names (its early
/// options), fail2ban's defaults mapped to fail3ban's.
pub fn paths(conf_dir: &str) -> Paths {
    let loader = crate::config::parser::Loader::new(conf_dir);
    let early = crate::config::server::early_options(&loader).unwrap_or_default();
    let get = |k: &str, d: &str| {
        early
            .get(k)
            .map(|v| v.to_text())
            .unwrap_or_else(|| d.to_string())
    };
    Paths {
        socket: PathBuf::from(own_path(&get("socket", "/run/fail3ban/fail3ban.sock"))),
        pidfile: PathBuf::from(own_path(&get("pidfile", "/run/fail3ban/fail3ban.pid"))),
    }
}
