//! Active bans, their end times, and the totals `status` shows.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use indexmap::IndexMap;

use super::ticket::{Ticket, MAX_TIME, PERMANENT};
use crate::filter::ipaddr::Fid;

/// An end-of-ban time, totally ordered so that it can key a `BTreeSet`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Deadline(f64);

impl Eq for Deadline {}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Why [`BanManager::add_ban_ticket`] did not add a ticket.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NotAdded {
    /// The ban would already be over: `Ignore <ip>, expired bantime`.
    Expired,
    /// The id is already banned; `prolonged` if the new ticket ends later
    /// and the existing ban was extended to its end.
    AlreadyBanned {
        /// The existing ban was extended.
        prolonged: bool,
    },
}

/// The bans of one jail, as fail2ban's `BanManager` keeps them.
///
/// Besides the map, a set ordered by end time answers "when is the next
/// unban" in O(log n), so that a scheduler can sleep until then instead of
/// polling. Permanent bans are not in the set.
#[derive(Debug, Clone)]
pub struct BanManager {
    list: IndexMap<Fid, Ticket>,
    deadlines: BTreeSet<(Deadline, Fid)>,
    ban_time: f64,
    ban_total: u64,
    unban_total: u64,
}

impl Default for BanManager {
    fn default() -> Self {
        BanManager::new()
    }
}

impl BanManager {
    /// No bans, bantime 600.
    pub fn new() -> BanManager {
        BanManager {
            list: IndexMap::new(),
            deadlines: BTreeSet::new(),
            ban_time: 600.0,
            ban_total: 0,
            unban_total: 0,
        }
    }

    /// Sets the jail's bantime (whole seconds, as fail2ban truncates it;
    /// `-1` for permanent). Tickets without their own ban time follow it.
    pub fn set_ban_time(&mut self, secs: f64) {
        self.ban_time = secs.trunc();
        self.reindex_all();
    }

    /// The jail's bantime.
    pub fn ban_time(&self) -> f64 {
        self.ban_time
    }

    /// Bans since start (`Total banned`).
    pub fn ban_total(&self) -> u64 {
        self.ban_total
    }

    /// Bans since start that ended or were lifted (not those a stop
    /// takes out).
    pub fn unban_total(&self) -> u64 {
        self.unban_total
    }

    /// Sets the total, e.g. after a reload.
    pub fn set_ban_total(&mut self, v: u64) {
        self.ban_total = v;
    }

    /// Bans in force (`Currently banned`).
    pub fn size(&self) -> usize {
        self.list.len()
    }

    /// Whether `fid` is banned.
    pub fn contains(&self, fid: &Fid) -> bool {
        self.list.contains_key(fid)
    }

    /// The ticket banning `fid`.
    pub fn get(&self, fid: &Fid) -> Option<&Ticket> {
        self.list.get(fid)
    }

    /// The banned ids in the order they were banned (`Banned IP list`).
    pub fn ban_list(&self) -> Vec<&Fid> {
        self.list.keys().collect()
    }

    /// The banned tickets with their end of ban, soonest first
    /// (`get <jail> banip --with-time`).
    pub fn ban_list_by_end(&self) -> Vec<(&Ticket, f64)> {
        let mut v: Vec<(&Ticket, f64)> = self
            .list
            .values()
            .map(|t| (t, t.end_of_ban(self.ban_time)))
            .collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        v
    }

    /// The banned tickets, in ban order.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.list.values()
    }

    /// When the next ban ends, if any ban is not permanent. Unban happens
    /// once the clock is strictly past it.
    pub fn next_unban_time(&self) -> Option<f64> {
        self.deadlines.first().map(|(d, _)| d.0)
    }

    fn index(&mut self, fid: &Fid, ticket_end: f64) {
        if ticket_end < MAX_TIME {
            self.deadlines.insert((Deadline(ticket_end), fid.clone()));
        }
    }

    fn unindex(&mut self, fid: &Fid, ticket_end: f64) {
        self.deadlines.remove(&(Deadline(ticket_end), fid.clone()));
    }

    fn reindex_all(&mut self) {
        self.deadlines.clear();
        let bt = self.ban_time;
        let ends: Vec<(Fid, f64)> = self
            .list
            .iter()
            .map(|(k, t)| (k.clone(), t.end_of_ban(bt)))
            .collect();
        for (fid, end) in ends {
            self.index(&fid, end);
        }
    }

    /// Bans `ticket` at `now`. A new ban counts in the total and raises the
    /// ticket's ban count. An id already banned is not banned twice, but
    /// its ban is extended when the new ticket would end later: the new
    /// ban time, plus how much later the new ticket is.
    pub fn add_ban_ticket(&mut self, mut ticket: Ticket, now: f64) -> Result<(), NotAdded> {
        let bt = self.ban_time;
        let eob = ticket.end_of_ban(bt);
        if eob < now {
            return Err(NotAdded::Expired);
        }
        let fid = ticket.fid().clone();
        if let Some(old) = self.list.get(&fid) {
            let old_eob = old.end_of_ban(bt);
            if eob <= old_eob {
                return Err(NotAdded::AlreadyBanned { prolonged: false });
            }
            let mut btm = ticket.ban_time(bt);
            if btm != PERMANENT {
                let dif = ticket.time() - old.time();
                if dif > 0.0 {
                    btm += dif;
                }
            }
            self.update(&fid, |t| t.set_ban_time(Some(btm)));
            return Err(NotAdded::AlreadyBanned { prolonged: true });
        }
        ticket.incr_ban_count(1);
        self.index(&fid, eob);
        self.list.insert(fid, ticket);
        self.ban_total += 1;
        Ok(())
    }

    /// Changes the ticket banning `fid` (its ban time, say) and keeps the
    /// unban schedule in step; returns whether `fid` is banned.
    pub fn update(&mut self, fid: &Fid, f: impl FnOnce(&mut Ticket)) -> bool {
        let bt = self.ban_time;
        let Some(t) = self.list.get_mut(fid) else {
            return false;
        };
        let before = t.end_of_ban(bt);
        f(t);
        let after = t.end_of_ban(bt);
        if before != after {
            self.unindex(fid, before);
            self.index(fid, after);
        }
        true
    }

    /// Takes out the bans that are over at `now` (strictly past their
    /// end), at most `max_count` of them, soonest first.
    pub fn unban_list(&mut self, now: f64, max_count: usize) -> Vec<Ticket> {
        let mut out = Vec::new();
        while out.len() < max_count {
            let Some((d, _)) = self.deadlines.first() else {
                break;
            };
            if now.partial_cmp(&d.0) != Some(Ordering::Greater) {
                break;
            }
            let (_, fid) = self.deadlines.pop_first().expect("first exists");
            if let Some(t) = self.list.shift_remove(&fid) {
                out.push(t);
            }
        }
        self.unban_total += out.len() as u64;
        out
    }

    /// Takes out every ban (`unban --all`, jail stop).
    pub fn flush(&mut self) -> Vec<Ticket> {
        self.deadlines.clear();
        self.list.drain(..).map(|(_, t)| t).collect()
    }

    /// Takes out the ban of `fid` (`unbanip`).
    pub fn remove(&mut self, fid: &Fid) -> Option<Ticket> {
        let t = self.list.shift_remove(fid)?;
        self.unindex(fid, t.end_of_ban(self.ban_time));
        self.unban_total += 1;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ipaddr::parse_unspec;

    fn t(ip: &str, time: f64) -> Ticket {
        Ticket::new(parse_unspec(ip), time, vec![])
    }

    #[test]
    fn ban_and_unban() {
        let mut bm = BanManager::new();
        bm.set_ban_time(600.0);
        assert_eq!(bm.add_ban_ticket(t("192.0.2.1", 100.0), 100.0), Ok(()));
        assert_eq!(bm.add_ban_ticket(t("192.0.2.2", 50.0), 100.0), Ok(()));
        assert_eq!(bm.next_unban_time(), Some(650.0));
        assert_eq!(bm.get(&parse_unspec("192.0.2.1")).unwrap().ban_count(), 1);
        assert!(bm.unban_list(650.0, usize::MAX).is_empty());
        let u = bm.unban_list(650.5, usize::MAX);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].fid().to_string(), "192.0.2.2");
        assert_eq!(bm.next_unban_time(), Some(700.0));
        assert_eq!(bm.size(), 1);
        assert_eq!(bm.ban_total(), 2);
    }

    #[test]
    fn expired_ticket_is_refused() {
        let mut bm = BanManager::new();
        assert_eq!(
            bm.add_ban_ticket(t("x", 0.0), 601.0),
            Err(NotAdded::Expired)
        );
    }

    #[test]
    fn later_ticket_prolongs() {
        let mut bm = BanManager::new();
        bm.add_ban_ticket(t("x", 100.0), 100.0).unwrap();
        assert_eq!(
            bm.add_ban_ticket(t("x", 150.0), 150.0),
            Err(NotAdded::AlreadyBanned { prolonged: true })
        );
        let b = bm.get(&parse_unspec("x")).unwrap();
        assert_eq!(b.ban_time_opt(), Some(650.0));
        assert_eq!(bm.next_unban_time(), Some(750.0));
        assert_eq!(bm.ban_total(), 1);
        // An earlier-ending ticket changes nothing.
        assert_eq!(
            bm.add_ban_ticket(t("x", 120.0), 150.0),
            Err(NotAdded::AlreadyBanned { prolonged: false })
        );
    }

    #[test]
    fn permanent_is_never_unbanned() {
        let mut bm = BanManager::new();
        bm.set_ban_time(-1.0);
        bm.add_ban_ticket(t("x", 0.0), 0.0).unwrap();
        assert_eq!(bm.next_unban_time(), None);
        assert!(bm.unban_list(1e15, usize::MAX).is_empty());
        assert_eq!(bm.remove(&parse_unspec("x")).unwrap().ban_count(), 1);
        assert_eq!(bm.size(), 0);
    }

    #[test]
    fn update_reschedules() {
        let mut bm = BanManager::new();
        bm.add_ban_ticket(t("x", 0.0), 0.0).unwrap();
        bm.update(&parse_unspec("x"), |t| t.set_ban_time(Some(1200.0)));
        assert_eq!(bm.next_unban_time(), Some(1200.0));
        bm.update(&parse_unspec("x"), |t| t.set_ban_time(Some(PERMANENT)));
        assert_eq!(bm.next_unban_time(), None);
    }
}
