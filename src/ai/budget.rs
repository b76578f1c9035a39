//! What the model may cost: requests per minute and per day, tokens per
//! day, and a circuit breaker that stops asking a server that keeps
//! failing. Work past a limit is not lost: it waits in the database.

use std::collections::VecDeque;
use std::time::Duration;

/// Why no request may go out now.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocked {
    /// requests_per_minute reached.
    PerMinute,
    /// requests_per_day reached.
    PerDay,
    /// tokens_per_day reached.
    Tokens,
    /// The server failed too often; no request until this time.
    Breaker(f64),
}

/// Counters for one day (UTC).
#[derive(Debug, Clone)]
pub struct Budget {
    per_minute: u32,
    per_day: u32,
    tokens_per_day: u64,
    breaker_failures: u32,
    cooldown: Duration,
    minute: VecDeque<f64>,
    day: i64,
    /// Requests sent today.
    pub requests_today: u32,
    /// Tokens spent today.
    pub tokens_today: u64,
    failures: u32,
    open_until: f64,
}

fn day_of(t: f64) -> i64 {
    (t / 86_400.0).floor() as i64
}

impl Budget {
    /// A budget from the settings.
    pub fn new(s: &super::Settings) -> Budget {
        Budget {
            per_minute: s.requests_per_minute,
            per_day: s.requests_per_day,
            tokens_per_day: s.tokens_per_day,
            breaker_failures: s.breaker_failures,
            cooldown: s.breaker_cooldown,
            minute: VecDeque::new(),
            day: 0,
            requests_today: 0,
            tokens_today: 0,
            failures: 0,
            open_until: 0.0,
        }
    }

    fn roll(&mut self, now: f64) {
        if day_of(now) != self.day {
            self.day = day_of(now);
            self.requests_today = 0;
            self.tokens_today = 0;
        }
        while self.minute.front().is_some_and(|t| now - t >= 60.0) {
            self.minute.pop_front();
        }
    }

    /// Whether a request may go out at `now`.
    pub fn check(&mut self, now: f64) -> Result<(), Blocked> {
        self.roll(now);
        if now < self.open_until {
            return Err(Blocked::Breaker(self.open_until));
        }
        if self.requests_today >= self.per_day {
            return Err(Blocked::PerDay);
        }
        if self.tokens_today >= self.tokens_per_day {
            return Err(Blocked::Tokens);
        }
        if self.minute.len() >= self.per_minute as usize {
            return Err(Blocked::PerMinute);
        }
        Ok(())
    }

    /// Counts a request about to go out.
    pub fn sent(&mut self, now: f64) {
        self.roll(now);
        self.minute.push_back(now);
        self.requests_today += 1;
    }

    /// Counts the tokens an answer cost, and closes the breaker.
    pub fn answered(&mut self, now: f64, tokens: u64) {
        self.roll(now);
        self.tokens_today += tokens;
        self.failures = 0;
    }

    /// Counts a failed request; enough of them in a row open the breaker,
    /// for longer each time it opens again.
    pub fn failed(&mut self, now: f64) {
        self.failures += 1;
        if self.failures >= self.breaker_failures {
            let over = self.failures - self.breaker_failures;
            let wait = self.cooldown.as_secs_f64() * f64::from(1u32 << over.min(4));
            self.open_until = now + wait;
        }
    }

    /// Requests left today.
    pub fn requests_left(&self) -> u32 {
        self.per_day.saturating_sub(self.requests_today)
    }

    /// Tokens left today.
    pub fn tokens_left(&self) -> u64 {
        self.tokens_per_day.saturating_sub(self.tokens_today)
    }

    /// Whether the breaker holds requests back at `now`.
    pub fn breaker_open(&self, now: f64) -> bool {
        now < self.open_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(rpm: u32, rpd: u32, tpd: u64) -> Budget {
        Budget::new(&crate::ai::Settings {
            requests_per_minute: rpm,
            requests_per_day: rpd,
            tokens_per_day: tpd,
            breaker_failures: 2,
            breaker_cooldown: Duration::from_secs(30),
            ..Default::default()
        })
    }

    #[test]
    fn limits_hold_and_roll_over() {
        let mut b = budget(2, 3, 1000);
        let t = 86_400.0 * 100.0;
        b.sent(t);
        b.sent(t + 1.0);
        assert_eq!(b.check(t + 2.0), Err(Blocked::PerMinute));
        assert_eq!(b.check(t + 61.0), Ok(()));
        b.sent(t + 61.0);
        assert_eq!(b.check(t + 200.0), Err(Blocked::PerDay));
        assert_eq!(b.check(t + 86_400.0), Ok(()));
        b.answered(t + 86_400.0, 1000);
        assert_eq!(b.check(t + 86_401.0), Err(Blocked::Tokens));
    }

    #[test]
    fn breaker_opens_after_failures_and_backs_off() {
        let mut b = budget(100, 100, 1000);
        b.failed(0.0);
        assert_eq!(b.check(1.0), Ok(()));
        b.failed(1.0);
        assert_eq!(b.check(2.0), Err(Blocked::Breaker(31.0)));
        b.failed(40.0);
        assert_eq!(b.check(41.0), Err(Blocked::Breaker(100.0)));
        b.answered(200.0, 1);
        assert_eq!(b.check(201.0), Ok(()));
    }
}
