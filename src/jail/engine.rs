//! One jail's decisions from failure to ban to unban, in fail2ban's order:
//! count the failure, ban at maxretry, weigh known bad ids
//! (bantime.increment), settle the ban time, and later unban.
//!
//! The ignore rules are not applied here: the caller checks
//! [`IgnoreList`](super::IgnoreList) before handing a failure or a manual
//! ban in, because an ignorecommand has to be run outside.

use std::collections::VecDeque;

use super::ban_manager::{BanManager, NotAdded};
use super::fail_manager::FailManager;
use super::increment::{self, BanFound, BanHistory, Increment};
use super::ticket::Ticket;
use crate::filter::ipaddr::Fid;

/// Something the actions (and the store) must act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A new ban: run `actionban`; write it to the store if
    /// `found.record`; run `actionprolong` too if `found.increased`.
    Ban {
        /// The ban ticket, its ban time settled.
        ticket: Ticket,
        /// The ban time and what to do about it.
        found: BanFound,
    },
    /// The id was already banned; its ban was extended if `prolonged`.
    AlreadyBanned {
        /// The id.
        fid: Fid,
        /// The existing ban now ends later.
        prolonged: bool,
    },
    /// The ban would already be over when made.
    Expired {
        /// The id.
        fid: Fid,
    },
}

/// The counting and ban state of one jail.
#[derive(Debug, Clone)]
pub struct Engine {
    name: String,
    /// Pending failures.
    pub fail_manager: FailManager,
    /// Bans in force.
    pub ban_manager: BanManager,
    /// bantime.increment, when on (and a store is there to remember bans).
    pub increment: Option<Increment>,
    queue: VecDeque<Ticket>,
    next_svc_time: f64,
    next_evicted_report: f64,
}

impl Engine {
    /// A jail with fail2ban's defaults.
    pub fn new(name: &str) -> Engine {
        Engine {
            name: name.to_string(),
            fail_manager: FailManager::new(),
            ban_manager: BanManager::new(),
            increment: None,
            queue: VecDeque::new(),
            next_svc_time: f64::NEG_INFINITY,
            next_evicted_report: f64::NEG_INFINITY,
        }
    }

    /// The jail's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes a failure the filter found at `now` (after the ignore check).
    /// A failure dated in the future counts as now.
    pub fn add_failure(
        &mut self,
        mut ticket: Ticket,
        now: f64,
        history: &dyn BanHistory,
        random: &mut dyn FnMut() -> f64,
    ) -> Vec<Event> {
        if ticket.time() > now {
            ticket.set_time(now);
        }
        let fid = ticket.fid().clone();
        tracing::info!(target: "fail2ban.filter", "[{}] Found {} - {}", self.name, fid, local_time(ticket.time()));
        let original = ticket.clone();
        let attempts = self.fail_manager.add_failure(ticket, 1);
        if attempts >= self.fail_manager.max_retry() {
            self.perform_ban(Some(&fid), now);
        }
        if self.increment.is_some() {
            self.failure_found(&original, history, now);
        }
        self.check_ban(now, history, random)
    }

    /// `fail2ban-client set <jail> banip <ip>`, after the ignore check.
    pub fn ban_ip(
        &mut self,
        fid: Fid,
        now: f64,
        history: &dyn BanHistory,
        random: &mut dyn FnMut() -> f64,
    ) -> Vec<Event> {
        self.queue.push_back(Ticket::new(fid, now, Vec::new()));
        self.check_ban(now, history, random)
    }

    /// Takes out the bans over at `now`, to be unbanned by the actions.
    pub fn unban_expired(&mut self, now: f64) -> Vec<Ticket> {
        let out = self.ban_manager.unban_list(now, usize::MAX);
        for t in &out {
            tracing::info!("[{}] Unban {}", self.name, t.fid());
        }
        out
    }

    /// When the next ban ends, for the scheduler to sleep until.
    pub fn next_unban_time(&self) -> Option<f64> {
        self.ban_manager.next_unban_time()
    }

    /// Forgets failures past findtime, at most every 5 seconds unless
    /// `force` (fail2ban's `performSvc`); and says, at most once a minute,
    /// how many ids maxfailedids dropped.
    pub fn perform_svc(&mut self, now: f64, force: bool) {
        self.report_evicted(now);
        if force || now >= self.next_svc_time {
            self.next_svc_time = now + 5.0;
            self.fail_manager.cleanup(now);
        }
    }

    /// A spray drops ids on every line: one warning a minute says how many,
    /// so that the log neither floods nor stays silent.
    fn report_evicted(&mut self, now: f64) {
        if now < self.next_evicted_report {
            return;
        }
        let dropped = self.fail_manager.take_evicted();
        if dropped > 0 {
            self.next_evicted_report = now + 60.0;
            tracing::warn!(
                "[{}] {} failing ids dropped, oldest first: more than maxfailedids = {} were pending",
                self.name,
                dropped,
                self.fail_manager.max_ids()
            );
        }
    }

    fn perform_ban(&mut self, fid: Option<&Fid>, now: f64) {
        while let Some(t) = self.fail_manager.to_ban(fid) {
            self.queue.push_back(t);
            if fid.is_some() {
                break;
            }
        }
        self.perform_svc(now, false);
    }

    /// The ticket as it is now, wherever it went: still pending, queued
    /// for ban, or neither (merged into an older ticket of the same id).
    fn current<'a>(&'a mut self, t: &Ticket) -> Option<&'a mut Ticket> {
        let Engine {
            fail_manager,
            queue,
            ..
        } = self;
        if let Some(p) = fail_manager.get_mut(t.fid()).filter(|p| p.is_same(t)) {
            return Some(p);
        }
        queue.iter_mut().find(|q| q.is_same(t))
    }

    fn failure_found(&mut self, original: &Ticket, history: &dyn BanHistory, now: f64) {
        let max_retry = self.fail_manager.max_retry();
        let prev = history.last_ban(original.fid(), false);
        let seen = self
            .current(original)
            .map(|c| c.clone())
            .unwrap_or_else(|| original.clone());
        let Some(kb) = increment::failure_found(prev.as_ref(), &seen, max_retry) else {
            return;
        };
        tracing::info!(
            "[{}] Found {}, bad - {}, {} # -> {}{}",
            self.name,
            original.fid(),
            original.time(),
            kb.ban_count,
            kb.extra_retry + 1,
            if kb.extra_retry + 1 >= max_retry {
                ", Ban"
            } else {
                ""
            }
        );
        let retry = self.fail_manager.add_observed(seen, kb.extra_retry);
        if let Some(c) = self.current(original) {
            c.set_ban_count(kb.ban_count, false);
        }
        if retry >= max_retry {
            self.perform_ban(Some(original.fid()), now);
        }
    }

    fn check_ban(
        &mut self,
        now: f64,
        history: &dyn BanHistory,
        random: &mut dyn FnMut() -> f64,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(ticket) = self.queue.pop_front() {
            let fid = ticket.fid().clone();
            let btime = ticket.ban_time(self.ban_manager.ban_time());
            match self.ban_manager.add_ban_ticket(ticket, now) {
                Ok(()) => {
                    let prev = self
                        .increment
                        .as_ref()
                        .and_then(|i| history.last_ban(&fid, i.overalljails()));
                    let inc = self.increment.as_ref();
                    let name = &self.name;
                    let mut found = None;
                    self.ban_manager.update(&fid, |t| {
                        found = Some(increment::ban_found(
                            name,
                            inc,
                            prev.as_ref(),
                            t,
                            btime,
                            now,
                            random,
                        ));
                        t.banned = true;
                    });
                    tracing::debug!("[{}] Ban {}", self.name, fid);
                    let ticket = self.ban_manager.get(&fid).cloned().expect("just banned");
                    let found = found.expect("ban_found ran");
                    events.push(Event::Ban { ticket, found });
                }
                Err(NotAdded::Expired) => {
                    tracing::info!("[{}] Ignore {}, expired bantime", self.name, fid);
                    events.push(Event::Expired { fid });
                }
                Err(NotAdded::AlreadyBanned { prolonged }) => {
                    tracing::debug!("[{}] {} already banned", self.name, fid);
                    events.push(Event::AlreadyBanned { fid, prolonged });
                }
            }
        }
        events
    }
}

/// A time as fail2ban's log writes it (`2026-11-24 22:00:00`, local time).
fn local_time(t: f64) -> String {
    jiff::Timestamp::from_second(t as i64)
        .map(|ts| {
            ts.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ipaddr::parse_unspec;
    use crate::jail::increment::{IncrementOptions, PrevBan};

    struct OnePrev(Option<PrevBan>);
    impl BanHistory for OnePrev {
        fn last_ban(&self, _: &Fid, _: bool) -> Option<PrevBan> {
            self.0
        }
    }

    fn fail(ip: &str, t: f64) -> Ticket {
        Ticket::new(parse_unspec(ip), t, vec![format!("line at {t}")])
    }

    #[test]
    fn bans_at_maxretry_and_unbans_after_bantime() {
        let mut e = Engine::new("sshd");
        e.fail_manager.set_max_retry(2);
        let r = &mut || 0.0;
        assert!(e
            .add_failure(fail("192.0.2.1", 10.0), 10.0, &(), r)
            .is_empty());
        let ev = e.add_failure(fail("192.0.2.1", 20.0), 20.0, &(), r);
        let [Event::Ban { ticket, found }] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(ticket.time(), 20.0);
        assert_eq!(found.ban_time, 600.0);
        assert_eq!(e.next_unban_time(), Some(620.0));
        assert!(e.unban_expired(620.0).is_empty());
        assert_eq!(e.unban_expired(621.0).len(), 1);
    }

    #[test]
    fn known_bad_id_is_banned_sooner_and_longer() {
        let mut e = Engine::new("sshd");
        e.fail_manager.set_max_retry(3);
        e.increment = Some(Increment::new(&IncrementOptions::default()).unwrap());
        let h = OnePrev(Some(PrevBan {
            count: 2,
            time: 5.0,
            ban_time: 1200.0,
        }));
        let r = &mut || 0.0;
        // Banned twice before: one failure counts 3 = maxretry.
        let ev = e.add_failure(fail("192.0.2.1", 10.0), 10.0, &h, r);
        let [Event::Ban { ticket, found }] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(found.ban_time, 2400.0);
        assert!(found.increased && found.record);
        assert_eq!(ticket.ban_count(), 3);
        assert_eq!(e.next_unban_time(), Some(2410.0));
    }
}
