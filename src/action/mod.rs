//! action.d templates turned into shell commands and run, as fail2ban's
//! `CommandAction` does.
//!
//! An [`Action`] is built from a jail's part of the configuration stream
//! (`addaction` and the `multi-set ... action` that follows). The jail then
//! drives it: [`Action::start`], [`Action::ban`] and [`Action::unban`] per
//! ticket, [`Action::flush`] and [`Action::stop`] at the end. Per-ban values
//! come from a [`TagSource`] (usually a [`BanInfo`]) and are escaped as
//! `template` explains; commands run through a [`Runner`].
//!
//! ```no_run
//! # async fn f() -> Result<(), fail3ban::action::ActionError> {
//! let tree = fail3ban::config::read_tree("/etc/fail2ban", false).unwrap();
//! let mut actions = fail3ban::action::Action::all_from_stream("sshd", &tree.stream)?;
//! for a in &mut actions {
//!     a.start().await?;
//! }
//! let info = fail3ban::action::BanInfo::new("192.0.2.1", 1_700_000_000.0);
//! for a in &mut actions {
//!     a.ban(&info).await?;
//! }
//! # Ok(())
//! # }
//! ```

pub mod batch;
pub mod exec;
pub mod quoting;
pub mod template;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::config::{Command, PyValue};
pub use exec::{Runner, ShellRunner};
pub use template::{BanInfo, Family, ShellCommand, TagSource, Template};

/// The default command timeout, fail2ban's: actions' `timeout` option,
/// and the ignorecommand's of a jail without actions.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Bits of the per-family state: started, and holding bans.
const STARTED: u8 = 1;
const HAS_BANS: u8 = 2;

/// Errors of actions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// An operation (start, stop, flush, reload) failed for some family.
    #[error("Error {operation} action {jail}/{action}: {cause}")]
    Operation {
        operation: &'static str,
        jail: String,
        action: String,
        cause: String,
    },
    /// The ban command failed.
    #[error("Error banning {0}")]
    Ban(String),
    /// The unban command failed.
    #[error("Error unbanning {0}")]
    Unban(String),
    /// The prolong command failed.
    #[error("Error prolonging {0}")]
    Prolong(String),
    /// The options refer to each other in a loop.
    #[error("{0}")]
    Template(String),
    /// An option has a value that cannot be used.
    #[error("action {action}: {option}: {message}")]
    BadOption {
        action: String,
        option: String,
        message: String,
    },
    /// The stream has no such action for the jail.
    #[error("no action {action} in jail {jail}")]
    NotFound { jail: String, action: String },
}

/// Where time comes from, injectable for tests (`<time>` of operations).
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    })
}

/// Whether this host has IPv6 addresses, which makes actions with
/// `?family=inet6` options start for IPv6 too (fail2ban's `allowipv6 = auto`).
pub fn ipv6_allowed_by_system() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty())
}

/// Operations whose success changes the per-family state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    Started,
    Stopped,
    Flushed,
    Nothing,
}

/// One action of one jail: its options and its per-family state.
pub struct Action {
    jail: String,
    name: String,
    template: Template,
    timeout: Duration,
    flags: HashMap<String, bool>,
    /// Per family key (`inet4`, `inet6`, or empty): STARTED | HAS_BANS.
    started: IndexMap<String, u8>,
    /// The last successful command of an operation per family, so that an
    /// identical command is not run twice for two families.
    executed: HashMap<&'static str, IndexMap<String, String>>,
    ban_epoch: u64,
    runner: Arc<dyn Runner>,
    clock: Clock,
    ipv6_allowed: bool,
    jail_bantime: i64,
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("jail", &self.jail)
            .field("name", &self.name)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// The options every command action has, empty unless set.
const COMMANDS: [&str; 9] = [
    "actionstart",
    "actionban",
    "actionreban",
    "actionunban",
    "actioncheck",
    "actionrepair",
    "actionflush",
    "actionstop",
    "actionreload",
];

/// Options that are flags, not text for commands.
const FLAGS: [&str; 3] = [
    "actionstart_on_demand",
    "actionrepair_on_unban",
    "norestored",
];

fn py_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn truthy(v: &PyValue) -> bool {
    match v {
        PyValue::Str(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        ),
        other => other.truthy(),
    }
}

impl Action {
    /// An action named `name` of jail `jail` with the given options (as
    /// the stream's `multi-set` lists them).
    pub fn new(
        jail: &str,
        name: &str,
        options: impl IntoIterator<Item = (String, PyValue)>,
    ) -> Result<Action, ActionError> {
        let mut props: IndexMap<String, String> = COMMANDS
            .iter()
            .map(|c| (c.to_string(), String::new()))
            .collect();
        let mut timeout = DEFAULT_TIMEOUT.as_secs_f64();
        props.insert("timeout".into(), py_number(timeout));
        let mut flags = HashMap::new();
        for (key, value) in options {
            match key.as_str() {
                // The jail's bantime reaches actions per ban, never as an
                // option (fail2ban drops it too).
                "bantime" => continue,
                "timeout" => {
                    let secs = match &value {
                        PyValue::Int(i) => *i as f64,
                        v => crate::config::time::str2seconds(&v.to_text()).map_err(|m| {
                            ActionError::BadOption {
                                action: name.into(),
                                option: key.clone(),
                                message: m.to_string(),
                            }
                        })?,
                    };
                    if !(secs > 0.0 && secs.is_finite()) {
                        return Err(ActionError::BadOption {
                            action: name.into(),
                            option: key,
                            message: "expected a positive time".into(),
                        });
                    }
                    timeout = secs;
                    props.insert(key, py_number(secs));
                    continue;
                }
                k if FLAGS.contains(&k) => {
                    flags.insert(key.clone(), truthy(&value));
                }
                _ => {}
            }
            props.insert(key, value.to_text());
        }
        Ok(Action {
            jail: jail.into(),
            name: name.into(),
            template: Template::new(props),
            timeout: Duration::from_secs_f64(timeout),
            flags,
            started: IndexMap::new(),
            executed: HashMap::new(),
            ban_epoch: 0,
            runner: Arc::new(ShellRunner),
            clock: system_clock(),
            ipv6_allowed: ipv6_allowed_by_system(),
            jail_bantime: 600,
        })
    }

    /// The action `name` of `jail` as the configuration stream defines it.
    pub fn from_stream(jail: &str, name: &str, stream: &[Command]) -> Result<Action, ActionError> {
        let mut found = false;
        let mut options = Vec::new();
        for cmd in stream {
            let s: Vec<Option<&str>> = cmd.iter().map(PyValue::as_str).collect();
            match s.as_slice() {
                [Some("set"), Some(j), Some("addaction"), Some(n), ..]
                    if *j == jail && *n == name =>
                {
                    found = true;
                }
                [Some("multi-set"), Some(j), Some("action"), Some(n), None]
                    if *j == jail && *n == name =>
                {
                    if let Some(PyValue::List(pairs)) = cmd.get(4) {
                        for p in pairs {
                            if let PyValue::List(kv) = p {
                                if let [PyValue::Str(k), v] = kv.as_slice() {
                                    options.push((k.clone(), v.clone()));
                                }
                            }
                        }
                    }
                }
                [Some("set"), Some(j), Some("action"), Some(n), Some(k), _]
                    if *j == jail && *n == name =>
                {
                    options.push((k.to_string(), cmd[5].clone()));
                }
                _ => {}
            }
        }
        if !found {
            return Err(ActionError::NotFound {
                jail: jail.into(),
                action: name.into(),
            });
        }
        Action::new(jail, name, options)
    }

    /// Every action of `jail`, in the order the stream adds them (the order
    /// fail2ban bans in; it stops them in reverse).
    pub fn all_from_stream(jail: &str, stream: &[Command]) -> Result<Vec<Action>, ActionError> {
        let names: Vec<&str> = stream
            .iter()
            .filter_map(|cmd| match cmd.as_slice() {
                [PyValue::Str(s), PyValue::Str(j), PyValue::Str(a), PyValue::Str(n), ..]
                    if s == "set" && j == jail && a == "addaction" =>
                {
                    Some(n.as_str())
                }
                _ => None,
            })
            .collect();
        names
            .into_iter()
            .map(|n| Action::from_stream(jail, n, stream))
            .collect()
    }

    /// Runs commands through `runner` instead of `/bin/sh`.
    pub fn with_runner(mut self, runner: Arc<dyn Runner>) -> Action {
        self.runner = runner;
        self
    }

    /// Takes `<time>` of operations from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Action {
        self.clock = clock;
        self
    }

    /// Whether conditional actions start for IPv6 as well as IPv4.
    pub fn with_ipv6(mut self, allowed: bool) -> Action {
        self.ipv6_allowed = allowed;
        self
    }

    /// The jail's bantime, for `<bantime>` in operations.
    pub fn with_jail_bantime(mut self, secs: i64) -> Action {
        self.jail_bantime = secs;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn jail(&self) -> &str {
        &self.jail
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Raised when a repair ran: bans older than this need a reban.
    pub fn ban_epoch(&self) -> u64 {
        self.ban_epoch
    }

    /// Restored bans skip this action (mail notifications, say).
    pub fn norestored(&self) -> bool {
        self.flag("norestored")
    }

    /// The action can lengthen a ban in place.
    pub fn prolongable(&self) -> bool {
        self.template
            .get("actionprolong")
            .is_some_and(|c| !c.trim().is_empty())
    }

    /// The action can remove all its bans at once.
    pub fn has_flush(&self) -> bool {
        self.has("actionflush")
    }

    fn has(&self, opt: &str) -> bool {
        self.template.get(opt).is_some_and(|c| !c.is_empty())
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.get(name).copied().unwrap_or(false)
    }

    /// Start per family at the first ban rather than at jail start: as
    /// configured, or else whenever the action has `?family=` options.
    pub fn start_on_demand(&self) -> bool {
        self.flags
            .get("actionstart_on_demand")
            .copied()
            .unwrap_or_else(|| self.template.has_conditional())
    }

    fn families(&self) -> Vec<String> {
        if let Some(f) = self.template.get("families") {
            return f
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if self.template.has_conditional() {
            let mut v = vec!["inet4".to_string()];
            if self.ipv6_allowed {
                v.push("inet6".into());
            }
            v
        } else {
            vec![String::new()]
        }
    }

    fn state(&self, family: &str) -> u8 {
        self.started.get(family).copied().unwrap_or(0)
    }

    /// The command an operation (`<actionstart>`) resolves to for a family
    /// before any ban information is filled in.
    fn operation(&self, tag: &str, family: &str) -> Result<String, ActionError> {
        let fam = Family::from_key(family);
        let cmd = self.template.replace_tag(tag, &fam.conditional())?;
        if family.is_empty() || !cmd.contains('<') {
            return Ok(cmd);
        }
        struct FamilyOnly<'a>(&'a str);
        impl TagSource for FamilyOnly<'_> {
            fn tag(&self, name: &str) -> Option<String> {
                (name == "family").then(|| self.0.to_string())
            }
            fn data(&self, _: &str) -> Option<String> {
                None
            }
        }
        Ok(template::replace_dynamic_tags(&cmd, &FamilyOnly(family)).script)
    }

    /// The command `tag` (`<actionban>`) resolves to for one ban, as it
    /// would run.
    pub fn command(
        &self,
        tag: &str,
        info: &dyn TagSource,
        family: Family,
    ) -> Result<ShellCommand, ActionError> {
        let cmd = self.template.replace_tag(tag, &family.conditional())?;
        Ok(template::replace_dynamic_tags(&cmd, info))
    }

    async fn run(&self, cmd: &ShellCommand) -> bool {
        if cmd.is_empty() {
            tracing::debug!("Nothing to do");
            return true;
        }
        let started = crate::metrics::actions::enabled().then(std::time::Instant::now);
        let ok = self.runner.run(cmd, self.timeout).await;
        if let Some(t) = started {
            crate::metrics::actions::record(&self.jail, &self.name, t.elapsed(), ok);
        }
        ok
    }

    fn executed_elsewhere(&self, tag: &'static str, family: &str, cmd: &str) -> bool {
        self.executed
            .get(tag)
            .is_some_and(|m| m.iter().any(|(f, c)| f != family && c == cmd))
    }

    fn forget_executed(&mut self, tag: &'static str, family: &str) {
        if let Some(m) = self.executed.get_mut(tag) {
            if let Some(cmd) = m.shift_remove(family) {
                m.retain(|_, c| *c != cmd);
            }
        }
    }

    /// Runs an operation for each family (all started ones when `families`
    /// is empty), skipping a family whose command just ran for another.
    async fn execute_operation(
        &mut self,
        tag: &'static str,
        operation: &'static str,
        families: Vec<String>,
        after: After,
    ) -> Result<(), ActionError> {
        let families = if families.is_empty() {
            self.started
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(f, _)| f.clone())
                .collect()
        } else {
            families
        };
        let mut ok = true;
        let mut cause = "'Script error'".to_string();
        for family in families {
            let cmd = match self.operation(tag, &family) {
                Ok(c) => c,
                Err(e) => {
                    ok = false;
                    cause = e.to_string();
                    continue;
                }
            };
            let mut ret = true;
            if !cmd.is_empty() && !self.executed_elsewhere(tag, &family, &cmd) {
                let info = BanInfo::operation(
                    Family::from_key(&family),
                    (self.clock)(),
                    self.jail_bantime,
                );
                let real = template::replace_dynamic_tags(&cmd, &info);
                ret = self.run(&real).await;
                ok &= ret;
            }
            if ret {
                match after {
                    After::Started => {
                        self.forget_executed("<actionstop>", &family);
                        self.started.insert(family.clone(), STARTED);
                    }
                    After::Stopped => self.forget_executed("<actionstart>", &family),
                    After::Flushed => {
                        if let Some(v) = self.started.get_mut(&family) {
                            if *v != 0 {
                                *v &= !HAS_BANS;
                            }
                        }
                    }
                    After::Nothing => {}
                }
            }
            if ret && !cmd.is_empty() {
                self.executed.entry(tag).or_default().insert(family, cmd);
            } else {
                self.forget_executed(tag, &family);
            }
        }
        if ok {
            Ok(())
        } else {
            Err(ActionError::Operation {
                operation,
                jail: self.jail.clone(),
                action: self.name.clone(),
                cause,
            })
        }
    }

    /// Runs actionstart, unless the action starts on demand at its first
    /// ban.
    #[tracing::instrument(skip(self), fields(jail = %self.jail, action = %self.name))]
    pub async fn start(&mut self) -> Result<(), ActionError> {
        self.start_family(None, false).await
    }

    async fn start_family(&mut self, family: Option<&str>, force: bool) -> Result<(), ActionError> {
        if self.start_on_demand() {
            if !force {
                return Ok(());
            }
        } else if !force && family.is_some_and(|f| self.state(f) != 0) {
            return Ok(());
        }
        let families = match family {
            Some(f) => vec![f.to_string()],
            None => self.families(),
        };
        self.execute_operation("<actionstart>", "starting", families, After::Started)
            .await
    }

    /// Runs actionban for one ban, starting the family first if the action
    /// starts on demand.
    #[tracing::instrument(skip_all, fields(jail = %self.jail, action = %self.name))]
    pub async fn ban(&mut self, info: &BanInfo) -> Result<(), ActionError> {
        self.ban_with("<actionban>", info).await
    }

    async fn ban_with(&mut self, tag: &'static str, info: &BanInfo) -> Result<(), ActionError> {
        let family = info.family();
        let key = family.as_str();
        if self.start_on_demand() && self.state(key) == 0 {
            // A ban that is not an address starts every family, as fail2ban
            // does, since it cannot tell which one will be needed.
            let which = (family != Family::Unspec).then_some(key);
            self.start_family(which, true).await?;
        }
        if !self.process(tag, info, family).await? {
            return Err(ActionError::Ban(info.ip.clone()));
        }
        *self.started.entry(key.to_string()).or_insert(0) |= STARTED | HAS_BANS;
        Ok(())
    }

    /// Runs actionban for many bans in few commands when [`batch::join`]
    /// can join them ([`batch::CHUNK`] bans per command, which keeps each
    /// script well under the kernel's limit on one argument); the indices
    /// of `infos` still to be banned one by one: all of a chunk whose bans
    /// could not be joined or whose joined command failed (the single path
    /// then checks, repairs and reports each failing ban).
    pub async fn ban_batch(&mut self, infos: &[&BanInfo]) -> Result<Vec<usize>, ActionError> {
        if infos.len() < 2 || infos.iter().any(|i| i.family() == Family::Unspec) {
            return Ok((0..infos.len()).collect());
        }
        let mut single = Vec::new();
        for (n, chunk) in infos.chunks(batch::CHUNK).enumerate() {
            let base = n * batch::CHUNK;
            if !self.ban_joined(chunk).await? {
                single.extend(base..base + chunk.len());
            }
        }
        Ok(single)
    }

    /// One joined actionban for `infos`; false if they cannot be joined
    /// or the command failed.
    async fn ban_joined(&mut self, infos: &[&BanInfo]) -> Result<bool, ActionError> {
        let mut cmds = Vec::with_capacity(infos.len());
        for info in infos {
            cmds.push(self.command("<actionban>", *info, info.family())?);
        }
        let Some(joined) = batch::join(&cmds) else {
            return Ok(false);
        };
        let mut families: Vec<Family> = infos.iter().map(|i| i.family()).collect();
        families.sort_by_key(|f| f.as_str());
        families.dedup();
        for f in &families {
            if self.start_on_demand() && self.state(f.as_str()) == 0 {
                self.start_family(Some(f.as_str()), true).await?;
            }
        }
        if !self.run(&joined).await {
            tracing::warn!(
                "[{}] {}: {} bans in one command failed; banning them one by one",
                self.jail,
                self.name,
                infos.len()
            );
            return Ok(false);
        }
        for f in families {
            *self.started.entry(f.as_str().to_string()).or_insert(0) |= STARTED | HAS_BANS;
        }
        Ok(true)
    }

    /// Bans again after a repair: actionreban if there is one, else
    /// actionban.
    pub async fn reban(&mut self, info: &BanInfo) -> Result<(), ActionError> {
        let tag = if self.has("actionreban") {
            "<actionreban>"
        } else {
            "<actionban>"
        };
        self.ban_with(tag, info).await
    }

    /// Runs actionprolong for a ban whose time grew.
    pub async fn prolong(&mut self, info: &BanInfo) -> Result<(), ActionError> {
        if !self.process("<actionprolong>", info, info.family()).await? {
            return Err(ActionError::Prolong(info.ip.clone()));
        }
        Ok(())
    }

    /// Runs actionunban, if this family holds bans at all.
    #[tracing::instrument(skip_all, fields(jail = %self.jail, action = %self.name))]
    pub async fn unban(&mut self, info: &BanInfo) -> Result<(), ActionError> {
        let family = info.family();
        if self.state(family.as_str()) & HAS_BANS != 0
            && !self.process("<actionunban>", info, family).await?
        {
            return Err(ActionError::Unban(info.ip.clone()));
        }
        Ok(())
    }

    /// Runs actionflush for each family holding bans. `Ok(false)`: the
    /// action has no flush command and each ban must be unbanned instead.
    #[tracing::instrument(skip(self), fields(jail = %self.jail, action = %self.name))]
    pub async fn flush(&mut self) -> Result<bool, ActionError> {
        if !self.has("actionflush") {
            return Ok(false);
        }
        let families: Vec<String> = self
            .started
            .iter()
            .filter(|(_, v)| **v & (STARTED | HAS_BANS) == STARTED | HAS_BANS)
            .map(|(f, _)| f.clone())
            .collect();
        if families.is_empty() {
            return Ok(true);
        }
        self.execute_operation("<actionflush>", "flushing", families, After::Flushed)
            .await?;
        Ok(true)
    }

    /// Runs actionstop for every started family.
    #[tracing::instrument(skip(self), fields(jail = %self.jail, action = %self.name))]
    pub async fn stop(&mut self) -> Result<(), ActionError> {
        self.stop_family(None).await
    }

    async fn stop_family(&mut self, family: Option<&str>) -> Result<(), ActionError> {
        let families: Vec<String> = match family {
            None => {
                let f: Vec<String> = self
                    .started
                    .iter()
                    .filter(|(_, v)| **v != 0)
                    .map(|(f, _)| f.clone())
                    .collect();
                if f.is_empty() {
                    return Ok(());
                }
                self.started.clear();
                f
            }
            Some(f) => match self.started.get_mut(f) {
                Some(v) => {
                    *v = 0;
                    vec![f.to_string()]
                }
                None => return Ok(()),
            },
        };
        self.execute_operation("<actionstop>", "stopping", families, After::Stopped)
            .await
    }

    /// Takes the options of `new`, the same action read again by a
    /// configuration reload, keeping which families are started and hold
    /// bans (the firewall still has them), then runs actionreload.
    pub async fn reload_from(&mut self, new: Action) -> Result<(), ActionError> {
        self.template = new.template;
        self.timeout = new.timeout;
        self.flags = new.flags;
        // Commands remembered as run were the old options' commands.
        self.executed.clear();
        self.reload().await
    }

    /// Runs actionreload for every started family.
    pub async fn reload(&mut self) -> Result<(), ActionError> {
        self.execute_operation("<actionreload>", "reloading", Vec::new(), After::Nothing)
            .await
    }

    /// Runs actioncheck for every started family and repairs what fails.
    /// `before_repair` returning false skips the repair. False if some
    /// family could not be restored.
    pub async fn consistency_check(
        &mut self,
        before_repair: Option<&(dyn Fn() -> bool + Send + Sync)>,
    ) -> Result<bool, ActionError> {
        let mut ok = true;
        if !self.has("actioncheck") {
            return Ok(ok);
        }
        let families: Vec<(String, u8)> =
            self.started.iter().map(|(f, v)| (f.clone(), *v)).collect();
        for (family, state) in families {
            if state != 0 && self.invariant_check(&family, before_repair, true).await? != 1 {
                self.started.insert(family.clone(), 0);
                self.forget_executed("<actionstart>", &family);
                ok = false;
            }
        }
        Ok(ok)
    }

    /// actioncheck, then actionrepair (or stop and start) if it fails:
    /// 1 sane, 0 not restored, -1 repair declined by `before_repair`.
    async fn invariant_check(
        &mut self,
        mut family: &str,
        before_repair: Option<&(dyn Fn() -> bool + Send + Sync)>,
        force_start: bool,
    ) -> Result<i8, ActionError> {
        if !force_start && !self.started.contains_key(family) {
            return Ok(1);
        }
        let check = ShellCommand::plain(self.operation("<actioncheck>", family)?);
        if check.is_empty() || self.run(&check).await {
            return Ok(1);
        }
        if before_repair.is_some_and(|f| !f()) {
            return Ok(-1);
        }
        tracing::error!("Invariant check failed. Trying to restore a sane environment");
        self.ban_epoch += 1;
        let repair = ShellCommand::plain(self.operation("<actionrepair>", family)?);
        if !repair.is_empty() {
            if !self.run(&repair).await {
                self.started.insert(family.to_string(), 0);
                tracing::error!("Unable to restore environment");
                return Ok(0);
            }
            self.started.insert(family.to_string(), STARTED);
        } else {
            // No repair command: restart, which drops the bans of this
            // family; the jail rebans them because the epoch moved. An
            // action without `?family=` options was started as a whole (the
            // empty family), so that is what restarts; fail2ban restarts
            // the ban's family there, finds the start command already run
            // for the empty one and so never really restarts.
            if !self.started.contains_key(family) && self.started.contains_key("") {
                family = "";
            }
            if let Err(e) = self.stop_family(Some(family)).await {
                tracing::debug!("stop before restart failed: {e}");
            }
            let force = force_start || !self.start_on_demand();
            self.start_family(Some(family), force).await?;
        }
        if self.state(family) != 0 && !self.run(&check).await {
            tracing::error!("Unable to restore environment");
            return Ok(0);
        }
        Ok(1)
    }

    /// Runs a ban-time command; if it fails and the action has a check,
    /// checks, repairs and tries once more.
    async fn process(
        &mut self,
        tag: &'static str,
        info: &BanInfo,
        family: Family,
    ) -> Result<bool, ActionError> {
        let mut attempts = 0;
        loop {
            if attempts > 0 && self.has("actioncheck") {
                let unban = tag == "<actionunban>";
                let repair_on_unban = self.flag("actionrepair_on_unban");
                let before = move || {
                    if unban && !repair_on_unban {
                        tracing::error!("Invariant check failed. Unban is impossible.");
                        return false;
                    }
                    true
                };
                if self
                    .invariant_check(family.as_str(), Some(&before), !unban)
                    .await?
                    != 1
                {
                    return Ok(false);
                }
            }
            let real = self.command(tag, info, family)?;
            let ret = self.run(&real).await;
            attempts += 1;
            if ret || attempts > 1 {
                return Ok(ret);
            }
        }
    }
}

/// The actions of one jail, driven in fail2ban's order and with its error
/// handling: one failing action is logged and does not keep the others
/// from running.
#[derive(Debug, Default)]
pub struct Actions {
    jail: String,
    actions: Vec<Action>,
}

impl Actions {
    pub fn new(jail: &str, actions: Vec<Action>) -> Actions {
        Actions {
            jail: jail.into(),
            actions,
        }
    }

    /// The jail's actions as the configuration stream lists them.
    pub fn from_stream(jail: &str, stream: &[Command]) -> Result<Actions, ActionError> {
        Ok(Actions::new(jail, Action::all_from_stream(jail, stream)?))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter()
    }

    /// The actions themselves, in order (to rebuild the set on reload).
    pub fn into_actions(self) -> Vec<Action> {
        self.actions
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Action> {
        self.actions.iter_mut()
    }

    /// Starts every action, in order.
    pub async fn start(&mut self) {
        for a in &mut self.actions {
            if let Err(e) = a.start().await {
                tracing::error!(
                    "Failed to start jail '{}' action '{}': {e}",
                    self.jail,
                    a.name
                );
            }
        }
    }

    /// Bans with every action, in order; restored bans skip `norestored`
    /// actions.
    pub async fn ban(&mut self, info: &BanInfo) {
        for a in &mut self.actions {
            if info.restored && a.norestored() {
                continue;
            }
            if let Err(e) = a.ban(info).await {
                tracing::error!(
                    "Failed to execute ban jail '{}' action '{}' info '{}': {e}",
                    self.jail,
                    a.name,
                    info.ip
                );
            }
        }
    }

    /// Bans all of `infos`, with each action joining the bans into one
    /// command where it can ([`Action::ban_batch`]) and banning the rest
    /// one by one, in order.
    pub async fn ban_all(&mut self, infos: &[BanInfo]) {
        if infos.len() == 1 {
            return self.ban(&infos[0]).await;
        }
        for a in &mut self.actions {
            let todo: Vec<&BanInfo> = infos
                .iter()
                .filter(|i| !(i.restored && a.norestored()))
                .collect();
            let single = match a.ban_batch(&todo).await {
                Ok(rest) => rest,
                Err(e) => {
                    tracing::error!(
                        "Failed to execute ban jail '{}' action '{}': {e}",
                        self.jail,
                        a.name
                    );
                    (0..todo.len()).collect()
                }
            };
            for i in single {
                if let Err(e) = a.ban(todo[i]).await {
                    tracing::error!(
                        "Failed to execute ban jail '{}' action '{}' info '{}': {e}",
                        self.jail,
                        a.name,
                        todo[i].ip
                    );
                }
            }
        }
    }

    /// Each action's ban epoch, to tell after a ban which actions
    /// repaired themselves (and so lost the bans they held).
    pub fn epochs(&self) -> Vec<u64> {
        self.actions.iter().map(Action::ban_epoch).collect()
    }

    /// Rebans with each action whose epoch moved past its entry in
    /// `before` (see [`Actions::epochs`]); false at the first failure.
    pub async fn reban_repaired(&mut self, info: &BanInfo, before: &[u64]) -> bool {
        for (a, &epoch) in self.actions.iter_mut().zip(before) {
            if a.ban_epoch() <= epoch || (info.restored && a.norestored()) {
                continue;
            }
            if let Err(e) = a.reban(info).await {
                tracing::error!(
                    "Failed to execute reban jail '{}' action '{}' info '{}': {e}",
                    self.jail,
                    a.name,
                    info.ip
                );
                return false;
            }
        }
        true
    }

    /// Prolongs with the actions that can.
    pub async fn prolong(&mut self, info: &BanInfo) {
        for a in &mut self.actions {
            if (info.restored && a.norestored()) || !a.prolongable() {
                continue;
            }
            if let Err(e) = a.prolong(info).await {
                tracing::error!(
                    "Failed to execute ban jail '{}' action '{}' info '{}': {e}",
                    self.jail,
                    a.name,
                    info.ip
                );
            }
        }
    }

    /// Unbans with every action, in order.
    pub async fn unban(&mut self, info: &BanInfo) {
        for a in &mut self.actions {
            if let Err(e) = a.unban(info).await {
                tracing::error!(
                    "Failed to execute unban jail '{}' action '{}' info '{}': {e}",
                    self.jail,
                    a.name,
                    info.ip
                );
            }
        }
    }

    /// Removes all `bans`: actions with actionflush flush at once, the
    /// others unban one by one. `stopping` declines repairs a failed flush
    /// would otherwise try (unless the action repairs on unban).
    pub async fn flush(&mut self, bans: &[BanInfo], stopping: bool) {
        let mut single = Vec::new();
        for (i, a) in self.actions.iter_mut().enumerate() {
            if !a.has_flush() {
                single.push(i);
                continue;
            }
            tracing::info!("[{}] Flush ticket(s) with {}", self.jail, a.name);
            match a.flush().await {
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(
                        "Failed to flush bans in jail '{}' action '{}': {e}",
                        self.jail,
                        a.name
                    );
                    tracing::info!("No flush occurred, do consistency check");
                    let repair_on_unban = a.flag("actionrepair_on_unban");
                    let before = move || {
                        if stopping && !repair_on_unban {
                            tracing::error!("Invariant check failed. Flush is impossible.");
                            return false;
                        }
                        true
                    };
                    if let Err(e) = a.consistency_check(Some(&before)).await {
                        tracing::error!("{e}");
                    }
                }
            }
        }
        for info in bans {
            for &i in &single {
                let a = &mut self.actions[i];
                if let Err(e) = a.unban(info).await {
                    tracing::error!(
                        "Failed to execute unban jail '{}' action '{}' info '{}': {e}",
                        self.jail,
                        a.name,
                        info.ip
                    );
                }
            }
        }
    }

    /// Stops every action, in reverse order.
    pub async fn stop(&mut self) {
        for a in self.actions.iter_mut().rev() {
            if let Err(e) = a.stop().await {
                tracing::error!(
                    "Failed to stop jail '{}' action '{}': {e}",
                    self.jail,
                    a.name
                );
            }
        }
    }
}
