//! The failure/ban ticket: one id, the time of its last failure, its
//! matches and counters, and once banned its ban time and count.
//!
//! fail2ban has three classes (`Ticket`, `FailTicket`, `BanTicket`) and
//! changes an object's class in place when a failure becomes a ban; one
//! struct serves all three here, since the fields are the same.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::filter::ipaddr::{Addr, Fid, NotCanonical};

/// The end of a permanent ban, fail2ban's `Ticket.MAX_TIME` (year 4461763).
pub const MAX_TIME: f64 = 0x7FFF_FFFF_FFFF_u64 as f64;

/// A ban time of `-1` means permanent, as in jail.conf.
pub const PERMANENT: f64 = -1.0;

/// Serials tell "the same ticket" from "another ticket with the same id":
/// fail2ban's FailManager compares object identity, and a clone here is the
/// same logical ticket.
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// A failure or ban ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    serial: u64,
    fid: Fid,
    ip: Option<Addr>,
    time: f64,
    first_time: f64,
    retry: u32,
    attempts: u32,
    matches: Vec<String>,
    ban_count: u32,
    ban_time: Option<f64>,
    /// Sorted by name. A boxed slice rather than a map: a pending ticket
    /// usually holds one pair (`ip4`/`ip6`), and a B-tree node for it
    /// would cost half a kilobyte per tracked id.
    data: Box<[(String, String)]>,
    /// Read back from the store at start-up rather than found anew.
    pub restored: bool,
    /// Every action has run its ban for it.
    pub banned: bool,
}

impl Ticket {
    /// A new failure ticket at `time`, with no attempt counted yet: the
    /// FailManager counts the first one when it takes the ticket.
    pub fn new(fid: Fid, time: f64, matches: Vec<String>) -> Ticket {
        Ticket {
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            fid,
            ip: None,
            time,
            first_time: time,
            retry: 0,
            attempts: 0,
            matches,
            ban_count: 0,
            ban_time: None,
            data: Box::default(),
            restored: false,
            banned: false,
        }
    }

    /// The ticket for a failure the filter found; `Ok(None)` for a
    /// pending multi-line failure without an id. What the actions will
    /// take for the address (the address found beside the id, else the
    /// id) passes [`Fid::canonical`], or the failure is refused.
    pub fn from_failure(f: &crate::filter::Failure) -> Result<Option<Ticket>, NotCanonical> {
        let Some(fid) = f.fid.clone() else {
            return Ok(None);
        };
        let ip = match f.ip.clone().map(Fid::canonical).transpose()? {
            Some(Fid::Addr(a)) => Some(a),
            _ => None,
        };
        // Beside an address the id is only a key (a session, a user):
        // kept raw when it is no canonical address.
        let fid = match (fid.canonical(), ip) {
            (Ok(fid), _) => fid,
            (Err(e), Some(_)) => Fid::Raw(e.text),
            (Err(e), None) => return Err(e),
        };
        let mut t = Ticket::new(fid, f.time, f.matches.clone())
            .with_data(f.data.iter().map(|(k, v)| (k.clone(), v.clone())));
        t.ip = ip;
        Ok(Some(t))
    }

    /// A ticket carrying the filter's captured groups (`F-USER`, ...).
    pub fn with_data(mut self, data: impl IntoIterator<Item = (String, String)>) -> Ticket {
        self.data = data.into_iter().collect();
        self
    }

    /// A ticket that already counts `failures` attempts (fail2ban's
    /// `data['failures']`), as a restored ticket does.
    pub fn with_failures(mut self, failures: u32) -> Ticket {
        self.attempts = failures;
        self.retry = failures;
        self
    }

    /// What tells this ticket (and its clones) from any other.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Whether `other` is this very ticket (or a clone of it).
    pub fn is_same(&self, other: &Ticket) -> bool {
        self.serial == other.serial
    }

    /// The failure id.
    pub fn fid(&self) -> &Fid {
        &self.fid
    }

    /// The address to act on: an explicit `ip` if the filter gave one
    /// besides the id, otherwise the id when it is an address.
    pub fn ip(&self) -> Option<&Addr> {
        self.ip.as_ref().or(self.fid.addr())
    }

    /// Sets an address distinct from the failure id.
    pub fn set_ip(&mut self, ip: Option<Addr>) {
        self.ip = ip;
    }

    /// Time of the last failure (of the ban, once banned).
    pub fn time(&self) -> f64 {
        self.time
    }

    /// Sets the ticket time.
    pub fn set_time(&mut self, time: f64) {
        self.time = time;
    }

    /// Start of the window the retry count is estimated over.
    pub fn first_time(&self) -> f64 {
        self.first_time
    }

    /// The retry count compared with maxretry; may exceed the real
    /// attempts when bantime.increment weighs a known bad address.
    pub fn retry(&self) -> u32 {
        self.retry
    }

    /// Sets an artificial retry count; zero forgets attempts and matches.
    pub fn set_retry(&mut self, value: u32) {
        self.retry = value;
        if self.attempts == 0 {
            self.attempts = 1;
        }
        if value == 0 {
            self.attempts = 0;
            self.matches.clear();
        }
    }

    /// Failures really seen (fail2ban's `failures`, `<failures>` in actions).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Sets the attempts count.
    pub fn set_attempts(&mut self, value: u32) {
        self.attempts = value;
    }

    /// The log lines that caused this ticket, oldest first.
    pub fn matches(&self) -> &[String] {
        &self.matches
    }

    /// Replaces the matches.
    pub fn set_matches(&mut self, matches: Vec<String>) {
        self.matches = matches;
    }

    /// How many times this id has been banned, this ban included.
    pub fn ban_count(&self) -> u32 {
        self.ban_count
    }

    /// Raises the ban count to `value`; never lowers it unless `always`.
    pub fn set_ban_count(&mut self, value: u32, always: bool) {
        if always || value > self.ban_count {
            self.ban_count = value;
        }
    }

    /// Adds to the ban count.
    pub fn incr_ban_count(&mut self, by: u32) {
        self.ban_count += by;
    }

    /// The ticket's own ban time, if one was decided for it.
    pub fn ban_time_opt(&self) -> Option<f64> {
        self.ban_time
    }

    /// The ticket's ban time, or the jail's `default`.
    pub fn ban_time(&self, default: f64) -> f64 {
        self.ban_time.unwrap_or(default)
    }

    /// Sets (or clears) the ticket's own ban time.
    pub fn set_ban_time(&mut self, value: Option<f64>) {
        self.ban_time = value;
    }

    /// When the ban ends; [`MAX_TIME`] when permanent.
    pub fn end_of_ban(&self, default: f64) -> f64 {
        let bt = self.ban_time(default);
        if bt == PERMANENT {
            MAX_TIME
        } else {
            self.time + bt
        }
    }

    /// Whether the ban is over at `now`.
    pub fn is_timed_out(&self, now: f64, default: f64) -> bool {
        let bt = self.ban_time(default);
        bt != PERMANENT && now > self.time + bt
    }

    /// The filter's captured groups and any other data, by name.
    pub fn data(&self) -> &[(String, String)] {
        &self.data
    }

    /// Moves the ticket to a later failure time. When the failures now span
    /// more than `max_time` (findtime), the retry count is scaled to the
    /// rate seen so far over one findtime, so that a slow, steady source
    /// neither accumulates forever nor is forgotten at once.
    pub fn adjust_time(&mut self, time: f64, max_time: f64) {
        if time > self.time {
            if self.first_time < time - max_time {
                let rate = self.retry as f64 / (time - self.first_time);
                self.retry = py_round(rate * max_time) as u32;
                self.first_time = time - max_time;
            }
            self.time = time;
        }
    }

    /// Counts more failures: `count` towards the retry count, `attempt`
    /// real attempts, and their matches.
    pub fn inc(&mut self, matches: Option<&[String]>, attempt: u32, count: u32) {
        self.retry += count;
        self.attempts += attempt;
        if let Some(m) = matches {
            self.matches.extend_from_slice(m);
        }
    }
}

/// Python's `round`: halves go to the even neighbour.
pub(crate) fn py_round(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ipaddr::parse_unspec;

    fn fid(s: &str) -> Fid {
        parse_unspec(s)
    }

    #[test]
    fn end_of_ban_and_timeout() {
        let mut t = Ticket::new(fid("192.0.2.1"), 1000.0, vec![]);
        assert_eq!(t.end_of_ban(600.0), 1600.0);
        assert!(!t.is_timed_out(1600.0, 600.0));
        assert!(t.is_timed_out(1600.5, 600.0));
        t.set_ban_time(Some(PERMANENT));
        assert_eq!(t.end_of_ban(600.0), MAX_TIME);
        assert!(!t.is_timed_out(1e12, 600.0));
    }

    #[test]
    fn adjust_time_scales_retry_to_findtime() {
        let mut t = Ticket::new(fid("192.0.2.1"), 0.0, vec![]);
        t.set_retry(4);
        t.adjust_time(1200.0, 600.0);
        // 4 failures over 1200 s is 2 per findtime.
        assert_eq!(t.retry(), 2);
        assert_eq!(t.first_time(), 600.0);
        assert_eq!(t.time(), 1200.0);
        // An older failure changes nothing.
        t.adjust_time(100.0, 600.0);
        assert_eq!(t.time(), 1200.0);
    }

    #[test]
    fn ban_count_only_rises() {
        let mut t = Ticket::new(fid("x"), 0.0, vec![]);
        t.set_ban_count(3, false);
        t.set_ban_count(2, false);
        assert_eq!(t.ban_count(), 3);
        t.set_ban_count(2, true);
        assert_eq!(t.ban_count(), 2);
    }

    #[test]
    fn python_rounding() {
        assert_eq!(py_round(2.5), 2.0);
        assert_eq!(py_round(3.5), 4.0);
        assert_eq!(py_round(-2.5), -2.0);
        assert_eq!(py_round(2.4), 2.0);
    }
}
