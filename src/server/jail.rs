//! One running jail: its log source, filter, counting and ban decisions,
//! and a queue to its actions.
//!
//! Three tasks per jail: the source feeds lines to the filter and the
//! engine (under a std mutex: nothing awaits while it is held; a failure
//! the ignorecommand must judge waits, with those after it, until the
//! command has answered with the lock released); an action worker runs
//! the action commands in order, so that a slow or hanging action delays
//! this jail's bans but never its counting nor another jail; an unban
//! timer sleeps until the next ban ends. A failure whose host is a name
//! the resolver has no answer for yet waits for it in a task of its own,
//! so that only that failure waits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::action::{Action, Actions, BanInfo, TagSource};
use crate::config::PyValue;
use crate::dns::{self, Resolver};
use crate::filter::ipaddr::{parse_id, parse_unspec, Fid, NotCanonical};
use crate::filter::{Failure, Filter};
use crate::jail::ignore::Check;
use crate::jail::increment::{BanFound, BanHistory, Increment, PrevBan};
use crate::jail::{Engine, Event, IgnoreList, Ticket};
use crate::notice;
use crate::source::{
    Backend, FilePosition, FileSource, FileSourceOptions, JournalOptions, JournalSource,
    JournalStart, LogEncoding, LogPath,
};
use crate::store::{Ban, BanData, Store};

use super::spec::JailSpec;

/// Unix time now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What the action worker is asked to do.
#[derive(Debug)]
enum Job {
    Ban(Box<Ticket>, BanFound),
    Restore(Box<Ticket>),
    Unban(Box<Ticket>, bool),
    /// Replace the actions (reload), keeping the bans in force.
    Reload(Vec<Action>),
    /// Flush the bans from the actions (the firewall), stop every action,
    /// then end. The bans stay in the store, to be restored at start.
    Stop {
        bans: Vec<Ticket>,
    },
}

/// Reads earlier bans from the store for bantime.increment.
struct History<'a> {
    store: Option<&'a dyn Store>,
    jail: &'a str,
}

impl BanHistory for History<'_> {
    fn last_ban(&self, fid: &Fid, overalljails: bool) -> Option<PrevBan> {
        let store = self.store?;
        let jail = (!overalljails).then_some(self.jail);
        match store.previous_ban(&fid.to_string(), jail) {
            Ok(Some(h)) => Some(PrevBan {
                count: h.bancount,
                time: h.time,
                ban_time: h.bantime,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::error!("[{}] reading ban history: {e}", self.jail);
                None
            }
        }
    }
}

/// The state behind the jail's mutex.
pub struct JailState {
    pub spec: JailSpec,
    pub filter: Filter,
    pub engine: Engine,
    pub ignore: IgnoreList,
    /// The files (or journal matches) being watched, for `status`.
    pub watched: Vec<String>,
    store: Option<Arc<dyn Store>>,
    /// Where unmatched lines go when the jail's `ai` is on.
    pub ai: Option<crate::ai::AiHandle>,
    /// How long the ignorecommand may run: the jail's action timeout.
    ignore_timeout: Duration,
    /// Failures whose host is a name not looked up yet: the source hands
    /// them to tasks that count them once it is (see [`await_names`]).
    awaiting_dns: Vec<Failure>,
}

/// What a batch of lines leaves to do once the jail's lock is released.
#[derive(Default)]
struct Processed {
    /// For the action worker.
    jobs: Vec<Job>,
    /// Failures from the first one the ignorecommand has to judge on, in
    /// order, for [`settle`].
    held: Vec<Ticket>,
}

/// The tags of one failure for the ignorecommand and the ignorecache key,
/// built only if one of them asks.
struct FailureTags<'a> {
    ticket: &'a Ticket,
    bantime: f64,
    info: std::cell::OnceCell<BanInfo>,
}

impl<'a> FailureTags<'a> {
    fn new(ticket: &'a Ticket, bantime: f64) -> FailureTags<'a> {
        FailureTags {
            ticket,
            bantime,
            info: std::cell::OnceCell::new(),
        }
    }

    fn info(&self) -> &BanInfo {
        self.info
            .get_or_init(|| ban_info(self.ticket, self.ticket.ban_time(self.bantime)))
    }
}

impl TagSource for FailureTags<'_> {
    fn tag(&self, name: &str) -> Option<String> {
        self.info().tag(name)
    }

    fn data(&self, key: &str) -> Option<String> {
        self.info().data(key)
    }
}

/// The jail's action timeout, which the ignorecommand runs under as
/// fail2ban runs it under its default one: the longest of its actions'
/// `timeout`, or that default when it has no action.
fn action_timeout(actions: &[Action]) -> Duration {
    actions
        .iter()
        .map(Action::timeout)
        .max()
        .unwrap_or(crate::action::DEFAULT_TIMEOUT)
}

/// Whether `fid` (with the failure `ticket`, if it comes from one) must
/// never be banned. The ignorecommand, when it has to run, runs as
/// actions run, with the jail's action timeout and the jail's lock
/// released: exit 0 ignores, 1 bans, anything else is logged and bans.
async fn ignored(state: &Mutex<JailState>, fid: &Fid, ticket: Option<&Ticket>, now: f64) -> bool {
    let (command, cache_key, timeout) = {
        let mut st = state.lock().expect("jail lock");
        let bantime = st.spec.bantime;
        let tags = ticket.map(|t| FailureTags::new(t, bantime));
        let tags = tags.as_ref().map(|t| t as &dyn TagSource);
        match st.ignore.check(fid, tags, now, true) {
            Check::Ignored(_) => return true,
            Check::NotIgnored => return false,
            Check::RunCommand { command, cache_key } => (command, cache_key, st.ignore_timeout),
        }
    };
    let out = crate::action::exec::execute_expecting(&command, timeout, &[0, 1]).await;
    let ignored = out.status == crate::action::exec::Status::Exited(0);
    let mut st = state.lock().expect("jail lock");
    matches!(
        st.ignore
            .command_answered(fid, cache_key.as_ref(), ignored, now, true),
        Check::Ignored(_)
    )
}

/// Counts the failures a batch held for the ignorecommand, in order, each
/// once its command answered (an earlier answer may since be in the
/// ignorecache), and hands their bans to the action worker.
async fn settle(state: &Mutex<JailState>, held: Vec<Ticket>, now: f64, jobs: &mpsc::Sender<Job>) {
    for ticket in held {
        if ignored(state, ticket.fid(), Some(&ticket), now).await {
            continue;
        }
        let mut js = Vec::new();
        state.lock().expect("jail lock").count(ticket, now, &mut js);
        for j in js {
            let _ = jobs.send(j).await;
        }
    }
}

fn ipv6_allowed() -> bool {
    crate::action::ipv6_allowed_by_system()
}

/// Builds the actions of `spec`.
pub fn build_actions(spec: &JailSpec) -> Vec<Action> {
    let mut out = Vec::with_capacity(spec.actions.len());
    for a in &spec.actions {
        let opts = a
            .options
            .iter()
            .map(|(k, v)| (k.clone(), PyValue::Str(v.clone())));
        match Action::new(&spec.name, &a.name, opts) {
            Ok(act) => out.push(
                act.with_ipv6(ipv6_allowed())
                    .with_jail_bantime(spec.bantime as i64),
            ),
            Err(e) => tracing::error!("[{}] action {}: {e}", spec.name, a.name),
        }
    }
    out
}

/// The jail's ignore list. Names in it are looked up (blocking, through
/// the daemon's cache): called off the runtime, outside the jail's lock.
fn ignore_list(spec: &JailSpec) -> IgnoreList {
    let resolver = Resolver::system();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let names = ["localhost", host.trim()];
    let mut ig = IgnoreList::new(
        &spec.name,
        crate::jail::ignore::self_addresses(&names, resolver),
    );
    ig.set_ignore_self(spec.ignoreself);
    for ip in &spec.ignoreip {
        ig.add_ignore_ip(ip, resolver);
    }
    if let Some(c) = spec.ignorecommand.as_deref().filter(|c| !c.is_empty()) {
        ig.set_ignore_command(c);
    }
    if let Some(c) = &spec.ignorecache {
        if let Err(e) = ig.set_ignore_cache(c) {
            tracing::error!("[{}] ignorecache: {e}", spec.name);
        }
    }
    ig
}

/// Applies the counting options of `spec` to an engine, keeping its state.
fn configure_engine(engine: &mut Engine, spec: &JailSpec, has_store: bool) -> Result<(), String> {
    engine.fail_manager.set_max_retry(spec.maxretry);
    engine.fail_manager.set_max_time(spec.findtime);
    engine
        .fail_manager
        .set_max_matches(spec.maxmatches.unwrap_or(super::spec::DEFAULT_MAXMATCHES));
    engine.fail_manager.set_max_ids(
        spec.maxfailedids
            .unwrap_or(super::spec::DEFAULT_MAXFAILEDIDS),
    );
    engine.ban_manager.set_ban_time(spec.bantime);
    engine.increment = if spec.increment == Some(true) && has_store {
        Some(Increment::new(&spec.increment_opts).map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok(())
}

/// Whether a jail can be built from `spec` (its filter compiles, its
/// counting options hold), without building it.
pub fn check_spec(spec: &JailSpec) -> Result<(), String> {
    Filter::new(spec.filter_options()).map_err(|e| e.to_string())?;
    configure_engine(&mut Engine::new(&spec.name), spec, true)
}

impl JailState {
    /// A jail's state from `spec`. Blocking (names in ignoreip are looked
    /// up): call it off the runtime.
    pub fn new(spec: JailSpec, store: Option<Arc<dyn Store>>) -> Result<JailState, String> {
        let filter = Filter::new(spec.filter_options()).map_err(|e| e.to_string())?;
        let mut engine = Engine::new(&spec.name);
        configure_engine(&mut engine, &spec, store.is_some())?;
        let ignore = ignore_list(&spec);
        Ok(JailState {
            spec,
            filter,
            engine,
            ignore,
            watched: Vec::new(),
            store,
            ai: None,
            ignore_timeout: crate::action::DEFAULT_TIMEOUT,
            awaiting_dns: Vec::new(),
        })
    }

    /// Takes a new configuration, keeping failures and bans.
    fn reconfigure(&mut self, spec: JailSpec, ignore: IgnoreList) -> Result<(), String> {
        if filter_changed(&spec, &self.spec) {
            self.filter = Filter::new(spec.filter_options()).map_err(|e| e.to_string())?;
        }
        configure_engine(&mut self.engine, &spec, self.store.is_some())?;
        self.ignore = ignore;
        self.spec = spec;
        Ok(())
    }

    fn events_to_jobs(&self, events: Vec<Event>, jobs: &mut Vec<Job>) {
        for ev in events {
            if let Event::Ban { ticket, found } = ev {
                jobs.push(Job::Ban(Box::new(ticket), found));
            }
        }
    }

    /// Counts one failure that is not ignored.
    fn count(&mut self, ticket: Ticket, now: f64, jobs: &mut Vec<Job>) {
        let history = History {
            store: self.store.as_deref(),
            jail: &self.spec.name,
        };
        let events = self
            .engine
            .add_failure(ticket, now, &history, &mut fastrand::f64);
        self.events_to_jobs(events, jobs);
    }

    /// Counts the failures the filter found, up to the first one the
    /// ignorecommand has to judge: that one and all after it are held, in
    /// order, for [`settle`].
    fn take_failures(
        &mut self,
        failures: Vec<crate::filter::Failure>,
        now: f64,
        out: &mut Processed,
    ) {
        for f in failures {
            if f.nofail {
                continue;
            }
            if let Some(name) = f.host_name.as_deref() {
                match Resolver::system().cached(name) {
                    Some(addrs) => {
                        let fids = dns::name_fids(name, &addrs, self.filter.options().usedns);
                        self.take_failures(f.resolved(fids), now, out);
                    }
                    None => self.awaiting_dns.push(f),
                }
                continue;
            }
            let ticket = match Ticket::from_failure(&f) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    refuse(&self.spec.name, &e);
                    continue;
                }
            };
            if !out.held.is_empty() {
                out.held.push(ticket);
                continue;
            }
            let tags = FailureTags::new(&ticket, self.spec.bantime);
            let check = self.ignore.check(ticket.fid(), Some(&tags), now, true);
            drop(tags);
            match check {
                Check::Ignored(_) => {}
                Check::NotIgnored => self.count(ticket, now, &mut out.jobs),
                Check::RunCommand { .. } => out.held.push(ticket),
            }
        }
    }

    /// Runs lines through the filter and the engine.
    fn process<'a>(
        &mut self,
        lines: impl Iterator<Item = &'a str>,
        in_operation: bool,
        now: f64,
    ) -> Processed {
        let mut out = Processed::default();
        self.filter.set_in_operation(in_operation);
        let ai = self
            .ai
            .clone()
            .filter(|_| self.spec.ai != crate::ai::Mode::Off);
        for line in lines {
            let Some(ai) = &ai else {
                let failures = self.filter.process_line(line, now);
                self.take_failures(failures, now, &mut out);
                continue;
            };
            let o = self.filter.process_line_outcome(line, now);
            if !o.is_matched() && !o.is_ignored() {
                self.offer_ai(ai, line, now);
            }
            self.take_failures(o.failures, now, &mut out);
        }
        self.engine.perform_svc(now, false);
        out
    }

    /// Hands a line no regex matched to the AI, with the prescreen's
    /// address (none when the line names an address never to be banned).
    fn offer_ai(&mut self, ai: &crate::ai::AiHandle, line: &str, now: f64) {
        let line = crate::ai::cut(line, crate::ai::MAX_LINE);
        let addr = crate::ai::prescreen::remote_address(line, &mut self.ignore, now).ok();
        ai.offer(crate::ai::Unmatched {
            jail: self.spec.name.clone(),
            mode: self.spec.ai,
            max_bantime: self.spec.ai_max_bantime,
            line: line.to_string(),
            addr,
        });
    }

    /// Journal entries: their time is known, the date text is cut already.
    fn process_journal(&mut self, lines: &[crate::source::JournalLine], now: f64) -> Processed {
        let mut out = Processed::default();
        self.filter.set_in_operation(true);
        for l in lines {
            let o = self
                .filter
                .process_dated("", &l.date_text, &l.text, l.time, now);
            if let Some(ai) = self
                .ai
                .clone()
                .filter(|_| self.spec.ai != crate::ai::Mode::Off)
            {
                if !o.is_matched() && !o.is_ignored() {
                    self.offer_ai(&ai, &l.text, now);
                }
            }
            self.take_failures(o.failures, now, &mut out);
        }
        self.engine.perform_svc(now, false);
        out
    }

    /// `set <jail> banip <ip>`.
    fn ban_ip(&mut self, fid: Fid, now: f64) -> Vec<Job> {
        let history = History {
            store: self.store.as_deref(),
            jail: &self.spec.name,
        };
        let events = self.engine.ban_ip(fid, now, &history, &mut fastrand::f64);
        let mut jobs = Vec::new();
        self.events_to_jobs(events, &mut jobs);
        jobs
    }

    /// `status <jail>`, as fail2ban answers it.
    pub fn status(&self) -> Value {
        let (failed, total_failed) = (
            self.engine.fail_manager.size(),
            self.engine.fail_manager.fail_total(),
        );
        let banned: Vec<String> = self
            .engine
            .ban_manager
            .ban_list()
            .iter()
            .map(|f| f.to_string())
            .collect();
        let source = if self.spec.backend.starts_with("systemd") {
            let m: Vec<String> = self.spec.journalmatch.iter().map(|m| m.join(" ")).collect();
            json!(["Journal matches", [m.join(" + ")]])
        } else {
            json!(["File list", self.watched])
        };
        json!([
            [
                "Filter",
                [
                    ["Currently failed", failed],
                    ["Total failed", total_failed],
                    source
                ]
            ],
            [
                "Actions",
                [
                    ["Currently banned", banned.len()],
                    ["Total banned", self.engine.ban_manager.ban_total()],
                    ["Banned IP list", banned]
                ]
            ]
        ])
    }
}

fn filter_changed(a: &JailSpec, b: &JailSpec) -> bool {
    (
        &a.failregex,
        &a.ignoreregex,
        &a.prefregex,
        &a.datepattern,
        a.maxlines,
        &a.usedns,
        &a.logtimezone,
    ) != (
        &b.failregex,
        &b.ignoreregex,
        &b.prefregex,
        &b.datepattern,
        b.maxlines,
        &b.usedns,
        &b.logtimezone,
    ) || a.findtime != b.findtime
}

/// Says why an id is never banned (fail2ban's `Ignore <ip> by ...` line,
/// as a warning: a filter or a client gave an address nobody can trust).
fn refuse(jail: &str, e: &NotCanonical) {
    tracing::warn!(
        "[{jail}] Ignore {} by address check: {e}",
        e.text.escape_debug()
    );
}

/// The per-ban values the actions' tags need.
fn ban_info(ticket: &Ticket, bantime: f64) -> BanInfo {
    let mut info = BanInfo::new(
        ticket
            .ip()
            .map(|a| a.to_string())
            .unwrap_or_else(|| ticket.fid().to_string()),
        ticket.time(),
    );
    if ticket.ip().is_some() {
        info.fid = Some(ticket.fid().to_string());
    }
    info.failures = u64::from(ticket.attempts().max(1));
    info.bantime = if bantime < 0.0 { -1 } else { bantime as i64 };
    info.bancount = u64::from(ticket.ban_count());
    info.matches = ticket.matches().to_vec();
    info.restored = ticket.restored;
    info.data = ticket
        .data()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<IndexMap<_, _>>();
    info
}

fn store_ban(jail: &str, ticket: &Ticket, bantime: f64) -> Ban {
    let mut extra = serde_json::Map::new();
    for (k, v) in ticket.data() {
        extra.insert(k.clone(), Value::String(v.clone()));
    }
    Ban {
        jail: jail.to_string(),
        fid: ticket.fid().to_string(),
        time: ticket.time(),
        bantime,
        bancount: ticket.ban_count().max(1),
        data: BanData {
            matches: ticket.matches().to_vec(),
            failures: ticket.attempts().max(1),
            extra,
        },
    }
}

/// A running jail.
pub struct Jail {
    pub name: String,
    pub state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    unban_wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    source_restart: Arc<Notify>,
}

impl Jail {
    /// Starts a jail: actions started (unless on demand), active bans
    /// restored from the store, the log followed.
    pub async fn start(spec: JailSpec, store: Option<Arc<dyn Store>>) -> Result<Jail, String> {
        Jail::start_with_ai(spec, store, None).await
    }

    /// [`Jail::start`], with the AI connected before the first line is read.
    pub async fn start_with_ai(
        spec: JailSpec,
        store: Option<Arc<dyn Store>>,
        ai: Option<crate::ai::AiHandle>,
    ) -> Result<Jail, String> {
        let name = spec.name.clone();
        let built = build_actions(&spec);
        let ignore_timeout = action_timeout(&built);
        let mut actions = Actions::new(&name, built);
        let st = store.clone();
        let mut state = tokio::task::spawn_blocking(move || JailState::new(spec, st))
            .await
            .map_err(|e| e.to_string())??;
        state.ai = ai;
        state.ignore_timeout = ignore_timeout;
        let state = Arc::new(Mutex::new(state));
        if let Some(s) = &store {
            let (s, n) = (s.clone(), name.clone());
            let _ = tokio::task::spawn_blocking(move || s.add_jail(&n)).await;
        }
        actions.start().await;
        let (tx, rx) = mpsc::channel::<Job>(65536);
        let (stop_tx, stop_rx) = watch::channel(false);
        let unban_wake = Arc::new(Notify::new());
        let worker = tokio::spawn(action_worker(
            name.clone(),
            actions,
            rx,
            store.clone(),
            state.clone(),
        ));
        // Bans still in force are applied again, once.
        if let Some(s) = &store {
            let (s2, n) = (s.clone(), name.clone());
            let t = now();
            let bans = tokio::task::spawn_blocking(move || s2.current_bans(Some(&n), t)).await;
            match bans {
                Ok(Ok(bans)) => {
                    for b in bans {
                        let fid = match parse_id(&b.fid) {
                            Ok(fid) => fid,
                            Err(e) => {
                                refuse(&name, &e);
                                continue;
                            }
                        };
                        let mut ticket = Ticket::new(fid, b.time, b.data.matches.clone())
                            .with_failures(b.data.failures);
                        ticket.set_ban_time(Some(b.bantime));
                        ticket.set_ban_count(b.bancount, true);
                        ticket.restored = true;
                        let added = state
                            .lock()
                            .expect("jail lock")
                            .engine
                            .ban_manager
                            .add_ban_ticket(ticket.clone(), t);
                        if added.is_ok() {
                            let _ = tx.send(Job::Restore(Box::new(ticket))).await;
                        }
                    }
                }
                Ok(Err(e)) => tracing::error!("[{name}] restoring bans: {e}"),
                Err(e) => tracing::error!("[{name}] restoring bans: {e}"),
            }
        }
        let source_restart = Arc::new(Notify::new());
        let tasks = vec![
            tokio::spawn(unban_timer(
                state.clone(),
                tx.clone(),
                unban_wake.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(source_task(
                state.clone(),
                tx.clone(),
                store.clone(),
                unban_wake.clone(),
                stop_rx.clone(),
                source_restart.clone(),
            )),
        ];
        tracing::info!("Jail '{name}' started");
        Ok(Jail {
            name,
            state,
            jobs: tx,
            unban_wake,
            stop: stop_tx,
            tasks: Mutex::new(tasks),
            worker: Mutex::new(Some(worker)),
            source_restart,
        })
    }

    /// Bans `ip` by hand; `Ok(false)` when it is ignored or already
    /// banned, an error when it is no canonical address.
    pub async fn ban_ip(&self, ip: &str) -> Result<bool, NotCanonical> {
        let fid = parse_id(ip).inspect_err(|e| refuse(&self.name, e))?;
        let t = now();
        if ignored(&self.state, &fid, None, t).await {
            return Ok(false);
        }
        let jobs = {
            let mut st = self.state.lock().expect("jail lock");
            if st.engine.ban_manager.contains(&fid) {
                return Ok(false);
            }
            st.ban_ip(fid, t)
        };
        let banned = !jobs.is_empty();
        for j in jobs {
            let _ = self.jobs.send(j).await;
        }
        self.unban_wake.notify_one();
        Ok(banned)
    }

    /// Unbans `ip`; `false` when it was not banned here.
    pub async fn unban_ip(&self, ip: &str) -> bool {
        let fid = parse_unspec(ip);
        let ticket = self
            .state
            .lock()
            .expect("jail lock")
            .engine
            .ban_manager
            .remove(&fid);
        match ticket {
            Some(t) => {
                let _ = self.jobs.send(Job::Unban(Box::new(t), true)).await;
                true
            }
            None => false,
        }
    }

    /// Unbans everything; returns how many.
    pub async fn unban_all(&self) -> usize {
        let tickets = self
            .state
            .lock()
            .expect("jail lock")
            .engine
            .ban_manager
            .flush();
        let n = tickets.len();
        for t in tickets {
            let _ = self.jobs.send(Job::Unban(Box::new(t), true)).await;
        }
        n
    }

    /// Takes a new configuration without losing failures or bans.
    pub async fn reload(&self, spec: JailSpec) -> Result<(), String> {
        let (spec, ignore) = tokio::task::spawn_blocking(move || {
            let ignore = ignore_list(&spec);
            (spec, ignore)
        })
        .await
        .map_err(|e| e.to_string())?;
        let (source_changed, new_actions) = {
            let mut st = self.state.lock().expect("jail lock");
            let changed = st.spec.logpaths != spec.logpaths
                || st.spec.logglobs != spec.logglobs
                || st.spec.backend != spec.backend
                || st.spec.journalmatch != spec.journalmatch
                || st.spec.logencoding != spec.logencoding;
            let new_actions = (st.spec.actions != spec.actions).then(|| build_actions(&spec));
            if let Some(a) = &new_actions {
                st.ignore_timeout = action_timeout(a);
            }
            st.reconfigure(spec, ignore)?;
            (changed, new_actions)
        };
        if let Some(a) = new_actions {
            let _ = self.jobs.send(Job::Reload(a)).await;
        }
        if source_changed {
            self.source_restart.notify_one();
        }
        self.unban_wake.notify_one();
        Ok(())
    }

    /// Stops the jail: the source and timers end, the bans are flushed
    /// from the actions and the actions stop. The bans stay in the store
    /// (to be restored at the next start) unless `unban`.
    pub async fn stop(&self, unban: bool) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().expect("jail lock").drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        let (tickets, store) = {
            let mut st = self.state.lock().expect("jail lock");
            (st.engine.ban_manager.flush(), st.store.clone())
        };
        if let (true, Some(s)) = (unban, store) {
            let name = self.name.clone();
            let _ = tokio::task::spawn_blocking(move || s.remove_bans(&name, None)).await;
        }
        let _ = self.jobs.send(Job::Stop { bans: tickets }).await;
        let worker = self.worker.lock().expect("jail lock").take();
        if let Some(w) = worker {
            let _ = w.await;
        }
        tracing::info!("Jail '{}' stopped", self.name);
    }
}

async fn action_worker(
    jail: String,
    mut actions: Actions,
    mut rx: mpsc::Receiver<Job>,
    store: Option<Arc<dyn Store>>,
    state: Arc<Mutex<JailState>>,
) {
    // A job taken from the queue while gathering a batch of bans, to be
    // done right after it.
    let mut held: Option<Job> = None;
    loop {
        let job = match held.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => break,
            },
        };
        // Running a job's actions takes KiBs of future state; boxed, an
        // idle jail (most of them) keeps only what waiting for a job needs.
        let job = Box::pin(run_job(
            &jail,
            &mut actions,
            &mut rx,
            &mut held,
            job,
            &store,
            &state,
        ));
        if !job.await {
            break;
        }
    }
}

// Returns false once the jail's actions are stopped.
async fn run_job(
    jail: &str,
    actions: &mut Actions,
    rx: &mut mpsc::Receiver<Job>,
    held: &mut Option<Job>,
    job: Job,
    store: &Option<Arc<dyn Store>>,
    state: &Arc<Mutex<JailState>>,
) -> bool {
    match job {
        Job::Ban(..) | Job::Restore(..) => {
            let mut batch = vec![job];
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(j @ (Job::Ban(..) | Job::Restore(..))) => batch.push(j),
                    Ok(other) => {
                        *held = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            ban_jobs(jail, actions, store.as_ref(), state, batch).await;
        }
        Job::Unban(ticket, manual) => {
            let bt = ticket.ban_time_opt().unwrap_or(600.0);
            let ip = ban_info(&ticket, bt);
            notice!(target: "fail2ban.actions", "[{jail}] Unban {}", ip.ip);
            if manual {
                if let Some(s) = store {
                    let (s, j, f) = (s.clone(), jail.to_string(), ticket.fid().to_string());
                    let _ = tokio::task::spawn_blocking(move || s.remove_bans(&j, Some(&f))).await;
                }
            }
            actions.unban(&ip).await;
        }
        Job::Reload(new) => {
            let bans: Vec<BanInfo> = {
                let st = state.lock().expect("jail lock");
                st.engine
                    .ban_manager
                    .tickets()
                    .map(|t| ban_info(t, t.ban_time(st.spec.bantime)))
                    .collect()
            };
            let mut old: Vec<Action> = std::mem::take(actions).into_actions();
            let mut next = Vec::new();
            for a in new {
                match old.iter().position(|o| o.name() == a.name()) {
                    Some(i) => {
                        let mut o = old.remove(i);
                        if let Err(e) = o.reload_from(a).await {
                            tracing::error!("[{jail}] reloading action {}: {e}", o.name());
                        }
                        next.push(o);
                    }
                    None => {
                        let mut a = a;
                        if let Err(e) = a.start().await {
                            tracing::error!("[{jail}] starting action {}: {e}", a.name());
                        }
                        for b in &bans {
                            let _ = a.ban(b).await;
                        }
                        next.push(a);
                    }
                }
            }
            for mut o in old {
                for b in &bans {
                    let _ = o.unban(b).await;
                }
                let _ = o.stop().await;
            }
            *actions = Actions::new(jail, next);
        }
        Job::Stop { bans } => {
            let infos: Vec<BanInfo> = bans
                .iter()
                .map(|t| {
                    let ip = ban_info(t, t.ban_time_opt().unwrap_or(600.0));
                    notice!(target: "fail2ban.actions", "[{jail}] Unban {}", ip.ip);
                    ip
                })
                .collect();
            actions.flush(&infos, true).await;
            actions.stop().await;
            return false;
        }
    }
    true
}

/// The most bans the action worker hands to the actions at once.
const BATCH_MAX: usize = 5000;

/// Bans (new or restored) that were waiting together in the queue: logged
/// and recorded one by one, applied by the actions in as few commands as
/// they allow.
async fn ban_jobs(
    jail: &str,
    actions: &mut Actions,
    store: Option<&Arc<dyn Store>>,
    state: &Mutex<JailState>,
    jobs: Vec<Job>,
) {
    let mut infos = Vec::with_capacity(jobs.len());
    let mut records = Vec::new();
    let mut prolong = Vec::new();
    for job in jobs {
        match job {
            Job::Ban(ticket, found) => {
                let ip = ban_info(&ticket, found.ban_time);
                notice!(target: "fail2ban.actions", "[{jail}] Ban {}", ip.ip);
                if found.record {
                    records.push(store_ban(jail, &ticket, found.ban_time));
                }
                if found.increased {
                    prolong.push(infos.len());
                }
                infos.push(ip);
            }
            Job::Restore(ticket) => {
                let bt = ticket.ban_time_opt().unwrap_or(600.0);
                let ip = ban_info(&ticket, bt);
                notice!(target: "fail2ban.actions", "[{jail}] Restore Ban {}", ip.ip);
                infos.push(ip);
            }
            other => tracing::error!("[{jail}] not a ban: {other:?}"),
        }
    }
    // The records are written while the actions run (fail2ban writes
    // them from another thread too): the time from a failure to its ban
    // is what a jail is judged by.
    let recorded = match (store, records.is_empty()) {
        (Some(s), false) => {
            let (s, jail) = (s.clone(), jail.to_string());
            Some(tokio::task::spawn_blocking(move || {
                for b in &records {
                    if let Err(e) = s.add_ban(b) {
                        tracing::error!("[{jail}] recording the ban of {}: {e}", b.fid);
                    }
                }
            }))
        }
        _ => None,
    };
    let epochs = actions.epochs();
    actions.ban_all(&infos).await;
    if let Some(r) = recorded {
        if let Err(e) = r.await {
            tracing::error!("recording bans: {e}");
        }
    }
    reban_after_repair(jail, actions, state, &epochs, &infos).await;
    for i in prolong {
        actions.prolong(&infos[i]).await;
    }
}

/// A ban that failed and made an action repair itself (actioncheck, then
/// stop and start) took that action's other bans with it: every other
/// ban in force is applied again with the actions that repaired, as
/// fail2ban does after a ban epoch moved.
async fn reban_after_repair(
    jail: &str,
    actions: &mut Actions,
    state: &Mutex<JailState>,
    before: &[u64],
    just_banned: &[BanInfo],
) {
    if actions.epochs() == before {
        return;
    }
    let just: std::collections::HashSet<&str> = just_banned.iter().map(|b| b.ip.as_str()).collect();
    let others: Vec<BanInfo> = {
        let st = state.lock().expect("jail lock");
        st.engine
            .ban_manager
            .tickets()
            .map(|t| ban_info(t, t.ban_time(st.spec.bantime)))
            .filter(|b| !just.contains(b.ip.as_str()))
            .collect()
    };
    for b in &others {
        notice!(target: "fail2ban.actions", "[{jail}] Reban {}", b.ip);
        if !actions.reban_repaired(b, before).await {
            break;
        }
    }
}

async fn unban_timer(
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = state.lock().expect("jail lock").engine.next_unban_time();
        let wait = match next {
            Some(t) => Duration::from_secs_f64((t - now()).clamp(0.0, 86400.0)),
            None => Duration::from_secs(86400),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => continue,
            _ = stop.changed() => return,
        }
        let expired = state.lock().expect("jail lock").engine.unban_expired(now());
        for t in expired {
            if jobs.send(Job::Unban(Box::new(t), false)).await.is_err() {
                return;
            }
        }
    }
}

fn file_source(spec: &JailSpec, store: Option<&dyn Store>) -> Result<FileSource, String> {
    // The files the configuration found, then its glob patterns, which
    // the source looks at again for files created since.
    let paths: Vec<LogPath> = spec
        .logpaths
        .iter()
        .chain(&spec.logglobs)
        .map(|(p, t)| {
            if t == "tail" {
                LogPath::tail(p)
            } else {
                LogPath::head(p)
            }
        })
        .collect();
    let mut opts = FileSourceOptions::new(spec.name.clone(), paths);
    opts.backend = spec
        .backend
        .split('[')
        .next()
        .unwrap_or("auto")
        .parse::<Backend>()
        .unwrap_or(Backend::Auto);
    let enc = if spec.logencoding == "auto" {
        "utf-8"
    } else {
        spec.logencoding.as_str()
    };
    opts.encoding = LogEncoding::new(enc).unwrap_or(LogEncoding::UTF8);
    if let Some(s) = store {
        match s.log_positions(&spec.name) {
            Ok(saved) => {
                opts.saved = saved
                    .into_iter()
                    .map(|(path, md5, offset)| FilePosition {
                        path: PathBuf::from(path),
                        md5,
                        offset,
                    })
                    .collect()
            }
            Err(e) => tracing::error!("[{}] reading saved log positions: {e}", spec.name),
        }
    }
    FileSource::spawn(opts).map_err(|e| e.to_string())
}

fn journal_source(spec: &JailSpec, store: Option<&dyn Store>) -> Result<JournalSource, String> {
    let mut opts = JournalOptions::new(spec.name.clone());
    opts.matches = spec.journalmatch.clone();
    // `backend = systemd[journalflags=1, journalpath=/x, ...]`.
    let (_, params) =
        crate::config::options::extract_options(&spec.backend).map_err(|e| e.to_string())?;
    for (k, v) in params {
        match k.as_str() {
            "journalflags" => {
                opts.flags = Some(
                    v.parse()
                        .map_err(|_| format!("journalflags: not a number: {v}"))?,
                )
            }
            "journalfiles" => opts.files = v.split_whitespace().map(String::from).collect(),
            "journalpath" => opts.path = Some(v),
            "namespace" => opts.namespace = Some(v),
            other => tracing::warn!("[{}] unknown journal option {other}", spec.name),
        }
    }
    opts.start = JournalStart::Time(now() - spec.findtime);
    if let Some(s) = store {
        if let Ok(Some(c)) = s.journal_cursor(&spec.name) {
            opts.start = JournalStart::Cursor(c);
        }
    }
    JournalSource::spawn(opts).map_err(|e| e.to_string())
}

enum Opened {
    Files(FileSource),
    Journal(JournalSource),
}

// Opens the jail's source. The copy of the spec it needs is dropped before
// the jail waits on anything: a running jail keeps no second copy of its
// spec (filters and action texts) in its source task.
fn open_source(
    state: &Mutex<JailState>,
    store: Option<&dyn Store>,
) -> (String, Result<Opened, String>) {
    let spec = state.lock().expect("jail lock").spec.clone();
    let name = spec.name.clone();
    let opened = if spec.backend.starts_with("systemd") {
        match journal_source(&spec, store) {
            Ok(src) => {
                state.lock().expect("jail lock").watched =
                    spec.journalmatch.iter().map(|m| m.join(" ")).collect();
                Ok(Opened::Journal(src))
            }
            Err(e) => Err(format!("[{name}] cannot read the journal: {e}")),
        }
    } else {
        match file_source(&spec, store) {
            Ok(src) => {
                state.lock().expect("jail lock").watched = spec
                    .logpaths
                    .iter()
                    .flat_map(|(p, _)| crate::config::glob::glob(p))
                    .collect();
                Ok(Opened::Files(src))
            }
            Err(e) => Err(format!("[{name}] cannot follow its logs: {e}")),
        }
    };
    (name, opened)
}

// What a jail's source task shares with the loops that follow its source.
struct SourceCtx {
    name: String,
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    store: Option<Arc<dyn Store>>,
    wake: Arc<Notify>,
    restart: Arc<Notify>,
    /// Room for failures waiting for a name's lookup.
    dns_slots: Arc<tokio::sync::Semaphore>,
}

/// The most failures of one jail that wait for names to be looked up; a
/// flood of lines naming hosts beyond that is dropped (and logged), so
/// that the memory they take stays bounded.
const MAX_AWAITING_DNS: usize = 10_000;

/// Counts, once their names are looked up, the failures the last lines
/// left waiting (`JailState::awaiting_dns`), each in a task of its own: the
/// jail reads and counts the lines after them meanwhile, and a name that
/// never answers holds up only its own lines, for the resolver's timeout.
fn await_names(ctx: &SourceCtx, stop: &watch::Receiver<bool>) {
    let failures = std::mem::take(&mut ctx.state.lock().expect("jail lock").awaiting_dns);
    for f in failures {
        let Ok(slot) = ctx.dns_slots.clone().try_acquire_owned() else {
            tracing::warn!(
                "[{}] {MAX_AWAITING_DNS} failures are waiting for DNS already: dropped the one of {}",
                ctx.name,
                f.host_name.as_deref().unwrap_or_default()
            );
            continue;
        };
        let (state, jobs, wake) = (ctx.state.clone(), ctx.jobs.clone(), ctx.wake.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let name = f.host_name.clone().unwrap_or_default();
            let addrs = tokio::select! {
                a = Resolver::system().resolve(&name) => a,
                _ = stop.changed() => return,
            };
            let t = now();
            let done = {
                let mut st = state.lock().expect("jail lock");
                let fids = dns::name_fids(&name, &addrs, st.filter.options().usedns);
                let mut done = Processed::default();
                st.take_failures(f.resolved(fids), t, &mut done);
                done
            };
            let any = !done.jobs.is_empty() || !done.held.is_empty();
            for j in done.jobs {
                let _ = jobs.send(j).await;
            }
            settle(&state, done.held, t, &jobs).await;
            if any {
                wake.notify_one();
            }
        });
    }
}

async fn source_task(
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    store: Option<Arc<dyn Store>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    restart: Arc<Notify>,
) {
    let mut ctx = SourceCtx {
        name: String::new(),
        state,
        jobs,
        store,
        wake,
        restart,
        dns_slots: Arc::new(tokio::sync::Semaphore::new(MAX_AWAITING_DNS)),
    };
    loop {
        let (name, opened) = open_source(&ctx.state, ctx.store.as_deref());
        ctx.name = name;
        // Boxed: only the loop of the source in use takes room.
        let again = match opened {
            Ok(Opened::Files(src)) => Box::pin(follow_files(src, &ctx, &mut stop)).await,
            Ok(Opened::Journal(src)) => Box::pin(follow_journal(src, &ctx, &mut stop)).await,
            Err(e) => {
                tracing::error!("{e}");
                tokio::select! {
                    _ = stop.changed() => false,
                    _ = ctx.restart.notified() => true,
                    _ = tokio::time::sleep(Duration::from_secs(10)) => true,
                }
            }
        };
        if !again {
            return;
        }
    }
}

// Returns whether to open the source again (false: the jail stops).
async fn follow_journal(
    mut src: JournalSource,
    ctx: &SourceCtx,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let SourceCtx {
        name,
        state,
        jobs,
        store,
        wake,
        restart,
        ..
    } = ctx;
    loop {
        tokio::select! {
            b = src.next() => {
                let Some(batch) = b else { return true };
                let t = now();
                let done = state.lock().expect("jail lock").process_journal(&batch.lines, t);
                await_names(ctx, stop);
                for j in done.jobs { let _ = jobs.send(j).await; }
                settle(state, done.held, t, jobs).await;
                wake.notify_one();
                if let (Some(s), Some(p)) = (store, batch.position()) {
                    let (s, n) = (s.clone(), name.clone());
                    let _ = tokio::task::spawn_blocking(move || s.set_journal_cursor(&n, &p.cursor)).await;
                }
            }
            _ = stop.changed() => {
                let _ = src.stop().await;
                return false;
            }
            _ = restart.notified() => {
                let _ = src.stop().await;
                return true;
            }
        }
    }
}

async fn save_positions(ctx: &SourceCtx, positions: Vec<FilePosition>) {
    let Some(s) = ctx.store.clone() else { return };
    let name = ctx.name.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for p in positions {
            let path = p.path.to_string_lossy().into_owned();
            if let Err(e) = s.set_log_position(&name, &path, &p.md5, p.offset) {
                tracing::error!("[{name}] saving the position in {path}: {e}");
            }
        }
    })
    .await;
}

// Returns whether to open the source again (false: the jail stops).
async fn follow_files(
    mut src: FileSource,
    ctx: &SourceCtx,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let SourceCtx {
        state,
        jobs,
        wake,
        restart,
        ..
    } = ctx;
    loop {
        tokio::select! {
            b = src.next() => {
                let Some(batch) = b else { return true };
                let t = now();
                let done = {
                    let mut st = state.lock().expect("jail lock");
                    let path = batch.path.to_string_lossy().into_owned();
                    if !st.watched.contains(&path) {
                        st.watched.push(path);
                    }
                    st.process(batch.lines.iter().map(|l| l.text.as_str()), batch.in_operation, t)
                };
                await_names(ctx, stop);
                let any = !done.jobs.is_empty() || !done.held.is_empty();
                for j in done.jobs { let _ = jobs.send(j).await; }
                settle(state, done.held, t, jobs).await;
                if any { wake.notify_one(); }
                save_positions(ctx, vec![batch.position()]).await;
            }
            _ = stop.changed() => {
                let positions = src.stop().await;
                save_positions(ctx, positions).await;
                return false;
            }
            _ = restart.notified() => {
                let positions = src.stop().await;
                save_positions(ctx, positions).await;
                return true;
            }
        }
    }
}
