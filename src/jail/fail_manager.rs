//! Failures per id within findtime, counted towards maxretry.

use indexmap::IndexMap;

use super::ticket::Ticket;
use crate::filter::ipaddr::Fid;

/// Counts failures by fid as fail2ban's `FailManager` does.
///
/// The map keeps insertion order because `to_ban(None)` hands out the
/// oldest id over the limit first, as fail2ban's dict does.
#[derive(Debug, Clone)]
pub struct FailManager {
    list: IndexMap<Fid, Ticket>,
    max_retry: u32,
    max_time: f64,
    max_matches: usize,
    fail_total: u64,
}

impl Default for FailManager {
    fn default() -> Self {
        FailManager::new()
    }
}

impl FailManager {
    /// fail2ban's defaults: maxretry 3, findtime 600, maxmatches 5.
    pub fn new() -> FailManager {
        FailManager {
            list: IndexMap::new(),
            max_retry: 3,
            max_time: 600.0,
            max_matches: 5,
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
        let sum = self.list.values().map(|t| t.retry() as u64).sum();
        (self.list.len(), sum)
    }

    /// The pending ticket for `fid`.
    pub fn get(&self, fid: &Fid) -> Option<&Ticket> {
        self.list.get(fid)
    }

    /// The pending ticket for `fid`, mutably.
    pub fn get_mut(&mut self, fid: &Fid) -> Option<&mut Ticket> {
        self.list.get_mut(fid)
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
        let attempts = match self.list.get_mut(ticket.fid()) {
            Some(pending) => {
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
                pending.retry()
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
                self.list.insert(ticket.fid().clone(), ticket);
                r
            }
        };
        self.fail_total += 1;
        if tracing::enabled!(tracing::Level::DEBUG) {
            let summary: Vec<String> = self
                .list
                .iter()
                .map(|(k, v)| format!("{k}:{}", v.retry()))
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

    /// Forgets ids whose last failure is findtime or more before `now`.
    pub fn cleanup(&mut self, now: f64) {
        let limit = now - self.max_time;
        self.list.retain(|_, t| t.time() > limit);
    }

    /// Forgets `fid`.
    pub fn del_failure(&mut self, fid: &Fid) {
        self.list.shift_remove(fid);
    }

    /// Takes out a ticket that reached maxretry: `fid`'s if given and
    /// pending, otherwise the first pending id over the limit (fail2ban
    /// also falls back to any id when the given one is not pending).
    pub fn to_ban(&mut self, fid: Option<&Fid>) -> Option<Ticket> {
        let max_retry = self.max_retry;
        let idx = match fid.and_then(|f| self.list.get_index_of(f)) {
            Some(i) => (self.list[i].retry() >= max_retry).then_some(i),
            None => self.list.values().position(|t| t.retry() >= max_retry),
        }?;
        self.list.shift_remove_index(idx).map(|(_, t)| t)
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
