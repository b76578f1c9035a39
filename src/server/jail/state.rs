//! The state behind a jail's lock: its filter, counting and ban decisions.

use std::sync::Arc;
use std::time::Duration;

use crate::dns::{self, Resolver};
use crate::filter::ipaddr::{Fid, NotCanonical};
use crate::filter::{Failure, Filter};
use crate::jail::ignore::Check;
use crate::jail::increment::{BanHistory, PrevBan};
use crate::jail::status::{self, JailCounts, Watched};
use crate::jail::{Engine, Event, IgnoreList, Ticket};
use crate::store::Store;

use super::super::spec::{BackendKind, JailSpec};
use super::build::{configure_engine, ignore_list};
use super::ignorecommand::FailureTags;
use super::{JailError, Job};

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
pub(super) struct JailState {
    pub(super) spec: JailSpec,
    pub(super) filter: Filter,
    pub(super) engine: Engine,
    pub(super) ignore: IgnoreList,
    /// The files (or journal matches) being watched, for `status`.
    pub(super) watched: Vec<String>,
    pub(super) store: Option<Arc<dyn Store>>,
    /// Where unmatched lines go when the jail's `ai` is on.
    pub(super) ai: Option<crate::ai::AiHandle>,
    /// How long the ignorecommand may run: the jail's action timeout.
    pub(super) ignore_timeout: Duration,
    /// Failures whose host is a name not looked up yet: the source hands
    /// them to tasks that count them once it is (see [`await_names`]).
    pub(super) awaiting_dns: Vec<Failure>,
    /// Lines read and lines that gave failures, for the metrics.
    pub(super) lines_read: u64,
    pub(super) lines_matched: u64,
    /// How far each file is read, kept only while the metrics endpoint is
    /// on (its lag behind the log).
    pub(super) read_to: Vec<(Arc<std::path::Path>, u64)>,
    /// The time of the newest journal entry read, kept only while the
    /// metrics endpoint is on (the journal's lag).
    pub(super) journal_read_at: Option<f64>,
}

/// What a batch of lines leaves to do once the jail's lock is released.
#[derive(Default)]
pub(super) struct Processed {
    /// For the action worker.
    pub(super) jobs: Vec<Job>,
    /// Failures from the first one the ignorecommand has to judge on, in
    /// order, for [`settle`].
    pub(super) held: Vec<Ticket>,
}

impl JailState {
    /// A jail's state from `spec`. Blocking (names in ignoreip are looked
    /// up): call it off the runtime.
    pub fn new(spec: JailSpec, store: Option<Arc<dyn Store>>) -> Result<JailState, JailError> {
        let filter = Filter::new(spec.filter_options())?;
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
            lines_read: 0,
            lines_matched: 0,
            read_to: Vec::new(),
            journal_read_at: None,
        })
    }

    /// Takes a new configuration, keeping failures and bans.
    pub(super) fn reconfigure(
        &mut self,
        spec: JailSpec,
        ignore: IgnoreList,
    ) -> Result<(), JailError> {
        if filter_changed(&spec, &self.spec) {
            self.filter = Filter::new(spec.filter_options())?;
        }
        configure_engine(&mut self.engine, &spec, self.store.is_some())?;
        self.ignore = ignore;
        self.spec = spec;
        Ok(())
    }

    fn events_to_jobs(&self, events: Vec<Event>, jobs: &mut Vec<Job>) {
        for ev in events {
            if let Event::Ban { ticket, found } = ev {
                jobs.push(Job::Ban(Box::new(ticket), found, None));
            }
        }
    }

    /// Counts one failure that is not ignored.
    pub(super) fn count(&mut self, ticket: Ticket, now: f64, jobs: &mut Vec<Job>) {
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
    /// Notes that `path` is read up to `offset`.
    pub(super) fn note_read_to(&mut self, path: &Arc<std::path::Path>, offset: u64) {
        match self.read_to.iter_mut().find(|(p, _)| p == path) {
            Some((_, o)) => *o = offset,
            None => self.read_to.push((path.clone(), offset)),
        }
    }

    /// Counts a line the filter read, which gave `failures`.
    fn count_line(&mut self, failures: &[Failure]) {
        self.lines_read += 1;
        self.lines_matched += u64::from(!failures.is_empty());
    }

    pub(super) fn take_failures(
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
    pub(super) fn process<'a>(
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
                self.count_line(&failures);
                self.take_failures(failures, now, &mut out);
                continue;
            };
            let o = self.filter.process_line_outcome(line, now);
            if !o.is_matched() && !o.is_ignored() {
                self.offer_ai(ai, line, now);
            }
            self.count_line(&o.failures);
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
    pub(super) fn process_journal(
        &mut self,
        lines: &[crate::source::JournalLine],
        now: f64,
    ) -> Processed {
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
            self.count_line(&o.failures);
            self.take_failures(o.failures, now, &mut out);
        }
        self.engine.perform_svc(now, false);
        out
    }

    /// `set <jail> banip <ip>`.
    pub(super) fn ban_ip(&mut self, fid: Fid, now: f64) -> Vec<Job> {
        let history = History {
            store: self.store.as_deref(),
            jail: &self.spec.name,
        };
        let events = self.engine.ban_ip(fid, now, &history, &mut fastrand::f64);
        let mut jobs = Vec::new();
        self.events_to_jobs(events, &mut jobs);
        jobs
    }

    /// The jail's counts for a metrics scrape: integers only, so that the
    /// lock is held for a copy of them.
    pub fn metrics_sample(&self) -> crate::metrics::JailSample {
        crate::metrics::JailSample {
            jail: self.spec.name.clone(),
            lines_read: self.lines_read,
            lines_matched: self.lines_matched,
            failures_total: self.engine.fail_manager.fail_total(),
            failed: self.engine.fail_manager.size() as u64,
            bans_total: self.engine.ban_manager.ban_total(),
            unbans_total: self.engine.ban_manager.unban_total(),
            banned: self.engine.ban_manager.size() as u64,
            read_to: self.read_to.clone(),
            journal_read_at: self.journal_read_at,
        }
    }

    /// The jail's counts, which every `status` flavour is made of.
    pub fn counts(&self) -> JailCounts {
        let (backend, watched) = match self.spec.backend.kind() {
            BackendKind::Journal(_) => (
                "systemd".to_string(),
                Watched::Journal(self.spec.journalmatch.clone()),
            ),
            BackendKind::Files(b) => (
                status::backend_name(b).to_string(),
                Watched::Files(self.watched.clone()),
            ),
        };
        JailCounts {
            backend,
            failed: self.engine.fail_manager.size(),
            total_failed: self.engine.fail_manager.fail_total(),
            watched,
            banned: self
                .engine
                .ban_manager
                .ban_list()
                .iter()
                .map(|f| f.to_string())
                .collect(),
            total_banned: self.engine.ban_manager.ban_total(),
        }
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
pub(super) fn refuse(jail: &str, e: &NotCanonical) {
    tracing::warn!(
        "[{jail}] Ignore {} by address check: {e}",
        e.text.escape_debug()
    );
}
