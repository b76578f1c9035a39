//! Failures per id within findtime, counted towards maxretry, and at most
//! `maxfailedids` of them.
//!
//! An attacker who owns an IPv6 prefix can fail from a new address on
//! every line, and each id stays until findtime forgets it: without a cap,
//! memory grows with the spray. So the ids are also kept in order of their
//! last failure, and when the cap is reached the oldest goes first, in
//! O(log n) per failure rather than a scan of every id.

use std::collections::BTreeMap;

use indexmap::IndexMap;

use super::ticket::Ticket;
use crate::filter::ipaddr::Fid;

/// A pending ticket's place in the age order: its last failure time (as an
/// integer in `f64::total_cmp` order) and, for ids that failed in the
/// same second, its serial, so that the one seen first goes first.
type Age = (i64, u64);

fn age_of(t: &Ticket) -> Age {
    let bits = t.time().to_bits() as i64;
    (bits ^ ((((bits >> 63) as u64) >> 1) as i64), t.serial())
}

#[derive(Debug, Clone)]
struct Slot {
    ticket: Ticket,
    /// The key this slot has in `ages`, kept here so that the two never
    /// disagree, whatever a caller does to the ticket through `get_mut`.
    age: Age,
}

/// Counts failures by fid as fail2ban's `FailManager` does.
#[derive(Debug, Clone)]
pub struct FailManager {
    list: IndexMap<Fid, Slot>,
    /// The index in `list` of each pending id, oldest last failure first:
    /// eviction and findtime cleanup take from the front.
    ages: BTreeMap<Age, usize>,
    max_retry: u32,
    max_time: f64,
    max_matches: usize,
    max_ids: usize,
    evicted: u64,
    fail_total: u64,
}

impl Default for FailManager {
    fn default() -> Self {
        FailManager::new()
    }
}

impl FailManager {
    /// fail2ban's defaults: maxretry 3, findtime 600, maxmatches 5; and no
    /// cap on ids.
    pub fn new() -> FailManager {
        FailManager {
            list: IndexMap::new(),
            ages: BTreeMap::new(),
            max_retry: 3,
            max_time: 600.0,
            max_matches: 5,
            max_ids: 0,
            evicted: 0,
            fail_total: 0,
        }
    }

    /// Sets maxretry.
    pub fn set_max_retry(&mut self, v: u32) {
        self.max_retry = v;
    }

    /// maxretry.
    pub fn max_retry(&self) -> u32 {
        self.max_retry
    }

    /// Sets findtime in seconds.
    pub fn set_max_time(&mut self, v: f64) {
        self.max_time = v;
    }

    /// findtime in seconds.
    pub fn max_time(&self) -> f64 {
        self.max_time
    }

    /// Sets maxmatches; zero keeps no matches at all.
    pub fn set_max_matches(&mut self, v: usize) {
        self.max_matches = v;
    }

    /// maxmatches.
    pub fn max_matches(&self) -> usize {
        self.max_matches
    }

    /// Sets maxfailedids, the most ids pending at once (zero: no cap); a
    /// lower cap than the ids pending drops the oldest at once.
    pub fn set_max_ids(&mut self, v: usize) {
        self.max_ids = v;
        if v > 0 {
            while self.list.len() > v {
                self.evict_oldest();
            }
        }
    }

    /// maxfailedids.
    pub fn max_ids(&self) -> usize {
        self.max_ids
    }

    /// How many ids the cap dropped since the last call.
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    /// Failures counted since start (`Total failed` in status).
    pub fn fail_total(&self) -> u64 {
        self.fail_total
    }

    /// Sets the total, e.g. after a reload.
    pub fn set_fail_total(&mut self, v: u64) {
        self.fail_total = v;
    }

    /// Ids with pending failures (`Currently failed` in status).
    pub fn size(&self) -> usize {
        self.list.len()
    }

    /// Ids and the sum of their retry counts.
    pub fn fail_count(&self) -> (usize, u64) {
        let sum = self.list.values().map(|s| s.ticket.retry() as u64).sum();
        (self.list.len(), sum)
    }

    /// The pending ticket for `fid`.
    pub fn get(&self, fid: &Fid) -> Option<&Ticket> {
        self.list.get(fid).map(|s| &s.ticket)
    }

    /// The pending ticket for `fid`, mutably.
    pub fn get_mut(&mut self, fid: &Fid) -> Option<&mut Ticket> {
        self.list.get_mut(fid).map(|s| &mut s.ticket)
    }

    /// Adds a failure found by the filter (or a client's `attempt`),
    /// counting `count` towards the retry count; returns the id's retry
    /// count now.
    ///
    /// A failure older than the pending ticket still counts but does not
    /// move its time back, so the findtime window only ever slides forward.
    pub fn add_failure(&mut self, ticket: Ticket, count: u32) -> u32 {
        self.add(ticket, count, false)
    }

    /// Adds `count` more retries for an id that bantime.increment knows as
    /// bad. Unlike [`add_failure`](Self::add_failure), an id no longer
    /// pending (banned meanwhile) is not added back; the ticket's own
    /// retry count is returned then.
    pub fn add_observed(&mut self, ticket: Ticket, count: u32) -> u32 {
        self.add(ticket, count, true)
    }

    fn add(&mut self, ticket: Ticket, count: u32, observed: bool) -> u32 {
        let max_time = self.max_time;
        let max_matches = self.max_matches;
        let attempts = match self.list.get_index_of(ticket.fid()) {
            Some(idx) => {
                let pending = &mut self.list[idx].ticket;
                let (matches, attempt) = if pending.is_same(&ticket) {
                    // Its matches are already there; only the attempt counts.
                    (None, 1)
                } else {
                    let m = (max_matches > 0).then(|| ticket.matches());
                    (m, ticket.attempts().max(1))
                };
                pending.adjust_time(ticket.time(), max_time);
                pending.inc(matches, attempt, count);
                if max_matches > 0 {
                    let m = pending.matches();
                    if m.len() > max_matches {
                        let keep = m[m.len() - max_matches..].to_vec();
                        pending.set_matches(keep);
                    }
                } else {
                    pending.set_matches(Vec::new());
                }
                let retry = pending.retry();
                self.reorder(idx);
                retry
            }
            None => {
                if observed {
                    return ticket.retry();
                }
                let mut ticket = ticket;
                if count > ticket.attempts() {
                    ticket.set_retry(count);
                }
                let r = ticket.retry();
                self.insert(ticket);
                r
            }
        };
        self.fail_total += 1;
        if tracing::enabled!(tracing::Level::DEBUG) {
            let summary: Vec<String> = self
                .ages
                .values()
                .map(|&i| {
                    let (k, s) = self.list.get_index(i).expect("ages index list");
                    format!("{k}:{}", s.ticket.retry())
                })
                .collect();
            tracing::debug!(
                "Total # of detected failures: {}. Current failures from {} IPs (IP:count): {}",
                self.fail_total,
                self.list.len(),
                summary.join(", ")
            );
        }
        attempts
    }

    /// Adds a new pending id, first making room under maxfailedids.
    fn insert(&mut self, ticket: Ticket) {
        if self.max_ids > 0 {
            while self.list.len() >= self.max_ids {
                self.evict_oldest();
            }
        }
        let age = age_of(&ticket);
        let idx = self.list.len();
        self.list.insert(ticket.fid().clone(), Slot { ticket, age });
        self.ages.insert(age, idx);
    }

    fn evict_oldest(&mut self) {
        if let Some((_, idx)) = self.ages.pop_first() {
            self.remove_at(idx);
            self.evicted += 1;
        }
    }

    /// Moves the id at `idx` in the age order after its time changed.
    fn reorder(&mut self, idx: usize) {
        let slot = &mut self.list[idx];
        let age = age_of(&slot.ticket);
        if age != slot.age {
            self.ages.remove(&slot.age);
            self.ages.insert(age, idx);
            slot.age = age;
        }
    }

    /// Takes out the id at `idx`. The last id moves into its place (so no
    /// other index shifts), and its entry in `ages` follows.
    fn remove_at(&mut self, idx: usize) -> Ticket {
        let (_, slot) = self.list.swap_remove_index(idx).expect("index in list");
        self.ages.remove(&slot.age);
        if let Some(moved) = self.list.get_index(idx).map(|(_, s)| s.age) {
            self.ages.insert(moved, idx);
        }
        slot.ticket
    }

    /// Forgets ids whose last failure is findtime or more before `now`.
    pub fn cleanup(&mut self, now: f64) {
        let limit = now - self.max_time;
        while let Some((_, &idx)) = self.ages.first_key_value() {
            if self.list[idx].ticket.time() > limit {
                break;
            }
            self.remove_at(idx);
        }
    }

    /// Forgets `fid`.
    pub fn del_failure(&mut self, fid: &Fid) {
        if let Some(idx) = self.list.get_index_of(fid) {
            self.remove_at(idx);
        }
    }

    /// Takes out a ticket that reached maxretry: `fid`'s if given and
    /// pending, otherwise the pending id over the limit whose last failure
    /// is oldest (fail2ban also falls back to any id when the given one is
    /// not pending).
    pub fn to_ban(&mut self, fid: Option<&Fid>) -> Option<Ticket> {
        let max_retry = self.max_retry;
        let over = |s: &Slot| s.ticket.retry() >= max_retry;
        let idx = match fid.and_then(|f| self.list.get_index_of(f)) {
            Some(i) => over(&self.list[i]).then_some(i),
            None => self.ages.values().copied().find(|&i| over(&self.list[i])),
        }?;
        Some(self.remove_at(idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ipaddr::parse_unspec;

    fn fail(ip: &str, time: f64, line: &str) -> Ticket {
        Ticket::new(parse_unspec(ip), time, vec![line.to_string()])
    }

    #[test]
    fn bans_at_maxretry() {
        let mut fm = FailManager::new();
        fm.set_max_retry(3);
        assert_eq!(fm.add_failure(fail("192.0.2.1", 10.0, "a"), 1), 1);
        assert_eq!(fm.add_failure(fail("192.0.2.1", 20.0, "b"), 1), 2);
        assert!(fm.to_ban(None).is_none());
        assert_eq!(fm.add_failure(fail("192.0.2.1", 30.0, "c"), 1), 3);
        let t = fm.to_ban(Some(&parse_unspec("192.0.2.1"))).unwrap();
        assert_eq!(t.retry(), 3);
        assert_eq!(t.attempts(), 3);
        assert_eq!(t.matches(), ["a", "b", "c"]);
        assert_eq!(t.time(), 30.0);
        assert_eq!(fm.size(), 0);
        assert_eq!(fm.fail_total(), 3);
    }

    #[test]
    fn keeps_last_maxmatches() {
        let mut fm = FailManager::new();
        fm.set_max_matches(2);
        fm.set_max_retry(10);
        for (i, l) in ["a", "b", "c", "d"].iter().enumerate() {
            fm.add_failure(fail("x", i as f64, l), 1);
        }
        assert_eq!(fm.get(&parse_unspec("x")).unwrap().matches(), ["c", "d"]);
        fm.set_max_matches(0);
        fm.add_failure(fail("x", 5.0, "e"), 1);
        assert!(fm.get(&parse_unspec("x")).unwrap().matches().is_empty());
    }

    #[test]
    fn out_of_order_failure_keeps_window() {
        let mut fm = FailManager::new();
        fm.set_max_retry(10);
        fm.add_failure(fail("x", 100.0, "a"), 1);
        fm.add_failure(fail("x", 50.0, "b"), 1);
        let t = fm.get(&parse_unspec("x")).unwrap();
        assert_eq!(t.time(), 100.0);
        assert_eq!(t.retry(), 2);
    }

    #[test]
    fn cleanup_past_findtime() {
        let mut fm = FailManager::new();
        fm.set_max_time(600.0);
        fm.add_failure(fail("a", 0.0, "a"), 1);
        fm.add_failure(fail("b", 100.0, "b"), 1);
        fm.cleanup(600.0);
        assert_eq!(fm.size(), 1);
        fm.cleanup(700.0);
        assert_eq!(fm.size(), 0);
    }

    fn ids(fm: &FailManager) -> Vec<String> {
        let mut v: Vec<String> = fm.list.keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn cap_drops_the_oldest_last_failure_first() {
        let mut fm = FailManager::new();
        fm.set_max_retry(10);
        fm.set_max_ids(3);
        fm.add_failure(fail("192.0.2.1", 10.0, "a"), 1);
        fm.add_failure(fail("192.0.2.2", 20.0, "b"), 1);
        fm.add_failure(fail("192.0.2.3", 30.0, "c"), 1);
        // .1 fails again, so .2's last failure is now the oldest.
        fm.add_failure(fail("192.0.2.1", 40.0, "d"), 1);
        fm.add_failure(fail("192.0.2.4", 50.0, "e"), 1);
        assert_eq!(ids(&fm), ["192.0.2.1", "192.0.2.3", "192.0.2.4"]);
        // In the same second, the id seen first goes first: .3, .1, then .4.
        fm.add_failure(fail("192.0.2.5", 50.0, "f"), 1);
        fm.add_failure(fail("192.0.2.6", 50.0, "g"), 1);
        assert_eq!(ids(&fm), ["192.0.2.4", "192.0.2.5", "192.0.2.6"]);
        fm.add_failure(fail("192.0.2.7", 50.0, "h"), 1);
        assert_eq!(ids(&fm), ["192.0.2.5", "192.0.2.6", "192.0.2.7"]);
        assert_eq!(fm.take_evicted(), 4);
        assert_eq!(fm.take_evicted(), 0);
        // Every failure still counts in the total.
        assert_eq!(fm.fail_total(), 8);
        // A lower cap drops the oldest at once; zero is no cap.
        fm.set_max_ids(1);
        assert_eq!(ids(&fm), ["192.0.2.7"]);
        assert_eq!(fm.take_evicted(), 2);
        fm.set_max_ids(0);
        for i in 0..100 {
            fm.add_failure(fail(&format!("2001:db8::{i}"), 60.0, "x"), 1);
        }
        assert_eq!(fm.size(), 101);
        assert_eq!(fm.take_evicted(), 0);
    }

    /// Adds, bans, deletions, cleanups and evictions in a pseudo-random
    /// mix, against a plain list: the same ids stay, and the age index
    /// always points at the right slots.
    #[test]
    fn age_index_follows_every_removal() {
        let mut fm = FailManager::new();
        fm.set_max_retry(4);
        fm.set_max_time(50.0);
        fm.set_max_ids(8);
        // (id, last failure time, first seen), as the cap should see them.
        let mut model: Vec<(String, f64, usize)> = Vec::new();
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for step in 0..3000usize {
            let now = step as f64 / 4.0;
            let id = format!("192.0.2.{}", next(20));
            let fid = parse_unspec(&id);
            match next(10) {
                0 => {
                    fm.del_failure(&fid);
                    model.retain(|m| m.0 != id);
                }
                1 => {
                    fm.cleanup(now);
                    model.retain(|m| m.1 > now - 50.0);
                }
                _ => {
                    let retry = fm.add_failure(fail(&id, now, "l"), 1);
                    match model.iter_mut().find(|m| m.0 == id) {
                        Some(m) => m.1 = now,
                        None => {
                            if model.len() == 8 {
                                let oldest = (0..model.len())
                                    .min_by(|&a, &b| {
                                        let (x, y) = (&model[a], &model[b]);
                                        x.1.total_cmp(&y.1).then(x.2.cmp(&y.2))
                                    })
                                    .unwrap();
                                model.remove(oldest);
                            }
                            model.push((id.clone(), now, step));
                        }
                    }
                    if retry >= 4 {
                        assert!(fm.to_ban(Some(&fid)).is_some());
                        model.retain(|m| m.0 != id);
                    }
                }
            }
            assert_eq!(fm.ages.len(), fm.list.len());
            for (age, &idx) in &fm.ages {
                assert_eq!(fm.list[idx].age, *age, "step {step}");
            }
            let mut want: Vec<String> = model.iter().map(|m| m.0.clone()).collect();
            want.sort();
            assert_eq!(ids(&fm), want, "step {step}");
        }
    }

    #[test]
    fn observed_does_not_readd() {
        let mut fm = FailManager::new();
        let t = fail("x", 0.0, "a");
        assert_eq!(fm.add_observed(t.clone(), 2), 0);
        assert_eq!(fm.size(), 0);
        fm.add_failure(t.clone(), 1);
        // The same ticket again counts one attempt, no new match.
        assert_eq!(fm.add_observed(t, 2), 3);
        let p = fm.get(&parse_unspec("x")).unwrap();
        assert_eq!(p.attempts(), 2);
        assert_eq!(p.matches().len(), 1);
    }
}
