//! bantime.increment: longer bans for ids banned before.
//!
//! The previous bans come from the store, which this module never touches:
//! the caller looks them up through [`BanHistory`] and passes them in.

use super::error::Error;
use super::formula::{Env, Formula, Value};
use super::ticket::{Ticket, PERMANENT};
use crate::config::time::str2seconds;
use crate::filter::ipaddr::Fid;

/// fail2ban's default `bantime.formula`: doubling per previous ban, capped
/// at 2^20.
pub const DEFAULT_FORMULA: &str = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor";

/// What the store knows of an id's earlier bans (fail2ban's `bips` row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrevBan {
    /// How many times it was banned.
    pub count: u32,
    /// When it was banned last (whole seconds, as stored).
    pub time: f64,
    /// The ban time of that ban (summed over jails for `overalljails`).
    pub ban_time: f64,
}

/// Earlier bans of an id, as the store keeps them.
pub trait BanHistory {
    /// The last ban of `fid` in this jail, or across all jails when
    /// `overalljails` (counts and ban times summed, the latest time).
    fn last_ban(&self, fid: &Fid, overalljails: bool) -> Option<PrevBan>;
}

/// No history at all: like a jail without a database, no ban grows.
impl BanHistory for () {
    fn last_ban(&self, _: &Fid, _: bool) -> Option<PrevBan> {
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Formula(Formula),
    Multipliers(Vec<i64>),
}

/// The `bantime.*` options, as a jail with `bantime.increment = true` has
/// them (an empty value counts as unset, as in fail2ban).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncrementOptions {
    /// `bantime.factor` (a Python expression, default `1`).
    pub factor: Option<String>,
    /// `bantime.formula`.
    pub formula: Option<String>,
    /// `bantime.multipliers`, space separated integers; when set they
    /// replace the formula.
    pub multipliers: Option<String>,
    /// `bantime.maxtime`, a time string.
    pub maxtime: Option<String>,
    /// `bantime.rndtime`, a time string.
    pub rndtime: Option<String>,
    /// `bantime.overalljails`.
    pub overalljails: bool,
}

/// The ban-time calculation of a jail with bantime.increment on.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    factor: Value,
    rule: Rule,
    maxtime: Option<Value>,
    rndtime: Option<f64>,
    overalljails: bool,
}

fn set(o: &Option<String>) -> Option<&str> {
    o.as_deref().filter(|s| !s.is_empty())
}

fn time_opt(option: &'static str, v: Option<&str>) -> Result<Option<f64>, Error> {
    v.map(|s| {
        str2seconds(s).map_err(|msg| Error::Time {
            option,
            value: s.to_string(),
            msg,
        })
    })
    .transpose()
}

impl Increment {
    /// Checks the options once, so that a bad formula is refused when the
    /// jail is configured rather than at its first ban.
    pub fn new(o: &IncrementOptions) -> Result<Increment, Error> {
        let factor_text = set(&o.factor).unwrap_or("1");
        let factor = Formula::parse(factor_text)
            .and_then(|f| f.eval_const())
            .map_err(|source| Error::Formula {
                option: "bantime.factor",
                value: factor_text.to_string(),
                source,
            })?;
        let mults = match set(&o.multipliers) {
            Some(m) => m
                .split_whitespace()
                .map(|i| {
                    i.parse::<i64>().map_err(|_| Error::Multiplier {
                        value: m.to_string(),
                        item: i.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let rule = if mults.is_empty() {
            let text = set(&o.formula).unwrap_or(DEFAULT_FORMULA);
            let formula = Formula::parse(text).map_err(|source| Error::Formula {
                option: "bantime.formula",
                value: text.to_string(),
                source,
            })?;
            // A trial run finds type errors (`1.5 << 1`) now rather than at
            // the first ban.
            let trial = Env {
                time: Value::Int(600),
                count: Value::Int(1),
                factor,
            };
            formula.eval(&trial).map_err(|source| Error::Formula {
                option: "bantime.formula",
                value: text.to_string(),
                source,
            })?;
            Rule::Formula(formula)
        } else {
            Rule::Multipliers(mults)
        };
        Ok(Increment {
            factor,
            rule,
            maxtime: time_opt("bantime.maxtime", set(&o.maxtime))?.map(Value::from_seconds),
            rndtime: time_opt("bantime.rndtime", set(&o.rndtime))?,
            overalljails: o.overalljails,
        })
    }

    /// Whether previous bans are looked up across all jails.
    pub fn overalljails(&self) -> bool {
        self.overalljails
    }

    /// The longest ban this jail can give (`bantime.maxtime`, else
    /// unbounded), used to pick the bans worth restoring.
    pub fn maxtime(&self) -> Option<f64> {
        self.maxtime.map(Value::as_f64)
    }

    /// The ban time after `ban_count` earlier bans, starting from
    /// `ban_time`: the formula (never below `ban_time`) or the multiplier
    /// for that count (the last one beyond the list), times the factor,
    /// capped at maxtime, plus up to rndtime seconds drawn from `random`
    /// (which returns values in [0, 1)).
    pub fn calc_ban_time(
        &self,
        ban_time: f64,
        ban_count: u32,
        random: &mut dyn FnMut() -> f64,
    ) -> Result<f64, super::formula::FormulaError> {
        let time = Value::from_seconds(ban_time);
        let mut v = match &self.rule {
            Rule::Multipliers(m) => {
                let i = (ban_count as usize).min(m.len() - 1);
                let tf = time.times(self.factor)?;
                tf.times(Value::Int(m[i] as i128))?
            }
            Rule::Formula(f) => {
                let env = Env {
                    time,
                    count: Value::Int(ban_count as i128),
                    factor: self.factor,
                };
                let r = f.eval(&env)?;
                // Python's max keeps the first of equals.
                if r.as_f64() > time.as_f64() {
                    r
                } else {
                    time
                }
            }
        };
        if let Some(m) = self.maxtime {
            if m.as_f64() < v.as_f64() {
                v = m;
            }
        }
        let mut v = v.as_f64();
        if let Some(r) = self.rndtime {
            v += random() * r;
        }
        Ok(v)
    }

    /// The ban time for `ticket` given its earlier bans (fail2ban's
    /// `incrBanTime`): raises the ticket's ban count past the earlier
    /// count, sets its ban time, and marks it restored when it is not
    /// newer than the last ban (a line read again after a restart).
    pub fn incr_ban_time(
        &self,
        ban_time: f64,
        ticket: &mut Ticket,
        prev: Option<&PrevBan>,
        random: &mut dyn FnMut() -> f64,
    ) -> f64 {
        let Some(prev) = prev.filter(|_| ban_time > 0.0) else {
            return ban_time;
        };
        if prev.count >= ticket.ban_count() {
            ticket.set_ban_count(prev.count + 1, false);
        }
        tracing::debug!(
            "IP {} was already banned: {} #, {}",
            ticket.fid(),
            prev.count,
            prev.time
        );
        let mut new = ban_time;
        if prev.count > 0 {
            match self.calc_ban_time(ban_time, prev.count, random) {
                Ok(v) => new = v,
                Err(e) => {
                    tracing::error!("{}", e);
                    return ban_time;
                }
            }
        }
        ticket.set_ban_time(Some(new));
        if ticket.time() > prev.time {
            tracing::info!(
                "IP {} is bad: {} # last {} - incr {} to {}",
                ticket.fid(),
                prev.count,
                prev.time,
                ban_time,
                new
            );
        } else {
            ticket.restored = true;
        }
        new
    }
}

/// What to do for a failure of an id banned before (fail2ban's observer
/// `failureFound`): count it `extra_retry` more times towards maxretry, and
/// raise the ticket's ban count to `ban_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownBad {
    /// Retries to add besides the one the failure itself counted.
    pub extra_retry: u32,
    /// The id's earlier ban count.
    pub ban_count: u32,
}

/// Weighs a failure of `ticket` by the id's earlier bans in this jail
/// (`prev`, never across jails): one failure of an id banned `n` times
/// counts as 2^(n-1)+1, at most maxretry. `None` when it counts once, or
/// when the failure is not newer than that ban (already accounted for).
///
/// fail2ban gives an id whose stored ban count is 0 half an extra retry;
/// the store never holds such a count for a real ban, so it counts once.
pub fn failure_found(prev: Option<&PrevBan>, ticket: &Ticket, max_retry: u32) -> Option<KnownBad> {
    let prev = prev?;
    let ban_count = prev.count.max(ticket.ban_count());
    if ban_count == 0 {
        return None;
    }
    let weighted = (1u64 << ban_count.min(20)) / 2 + 1;
    let retry = weighted.min(max_retry as u64) as u32;
    if ticket.time() <= prev.time {
        tracing::debug!(
            "Ignore failure {} before last ban {} < {}, restored",
            ticket.fid(),
            ticket.time(),
            prev.time
        );
        return None;
    }
    if retry <= 1 {
        return None;
    }
    Some(KnownBad {
        extra_retry: retry - 1,
        ban_count,
    })
}

/// The outcome of [`ban_found`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BanFound {
    /// The ban time in force (`-1` permanent).
    pub ban_time: f64,
    /// It differs from the jail's bantime: actions should prolong the ban
    /// (fail2ban's `Increase Ban`).
    pub increased: bool,
    /// The ban should be written to the store (not a restored ban, and not
    /// already over).
    pub record: bool,
}

/// Settles the ban time of a ban just added (fail2ban's observer
/// `banFound`): with increment on, a ticket without its own ban time gets
/// the incremented one. `btime` is the ban time the ban was added with,
/// `prev` the earlier bans (looked up across jails if
/// [`Increment::overalljails`]).
pub fn ban_found(
    jail: &str,
    increment: Option<&Increment>,
    prev: Option<&PrevBan>,
    ticket: &mut Ticket,
    btime: f64,
    now: f64,
    random: &mut dyn FnMut() -> f64,
) -> BanFound {
    let old = btime;
    let mut btime = btime;
    let unchanged = BanFound {
        ban_time: btime,
        increased: false,
        record: false,
    };
    if ticket.restored {
        return unchanged;
    }
    if btime != PERMANENT && ticket.ban_time_opt().is_none() {
        if let Some(inc) = increment {
            btime = inc.incr_ban_time(btime, ticket, prev, random);
        }
        if btime == PERMANENT || btime > old {
            ticket.set_ban_time(Some(btime));
        }
    }
    if btime != PERMANENT && ticket.time() + btime < now {
        tracing::debug!("Ignore old bantime {}", ticket.time() + btime);
        return BanFound {
            ban_time: btime,
            ..unchanged
        };
    }
    let increased = btime != old;
    if increased {
        let (t, end) = if btime == PERMANENT {
            ("permanent".to_string(), "infinite".to_string())
        } else {
            (btime.to_string(), (ticket.time() + btime).to_string())
        };
        tracing::info!(
            "[{}] Increase Ban {} ({} # {} -> {})",
            jail,
            ticket.fid(),
            ticket.ban_count(),
            t,
            end
        );
    }
    BanFound {
        ban_time: btime,
        increased,
        record: !ticket.restored,
    }
}

/// A source of uniform random numbers in [0, 1) for `bantime.rndtime`.
pub fn system_random() -> impl FnMut() -> f64 {
    fastrand::f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(
        formula: Option<&str>,
        mult: Option<&str>,
        factor: Option<&str>,
        max: Option<&str>,
    ) -> Increment {
        Increment::new(&IncrementOptions {
            factor: factor.map(str::to_string),
            formula: formula.map(str::to_string),
            multipliers: mult.map(str::to_string),
            maxtime: max.map(str::to_string),
            rndtime: None,
            overalljails: false,
        })
        .unwrap()
    }

    fn series(i: &Increment) -> Vec<i64> {
        (1..=10)
            .map(|c| i.calc_ban_time(600.0, c, &mut || 0.0).unwrap() as i64)
            .collect()
    }

    // The expectations of fail2ban's observer tests.
    #[test]
    fn default_formula_series() {
        assert_eq!(
            series(&inc(None, None, None, Some("1d"))),
            [1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400, 86400]
        );
        assert_eq!(
            series(&inc(None, None, Some("2"), Some("1d"))),
            [2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400, 86400, 86400]
        );
        assert_eq!(
            series(&inc(None, None, Some("1.33"), Some("1d"))),
            [1596, 3192, 6384, 12768, 25536, 51072, 86400, 86400, 86400, 86400]
        );
        assert_eq!(
            series(&inc(
                None,
                Some("1 2 4 8 16 32 64 128 256"),
                None,
                Some("30d")
            )),
            [1200, 2400, 4800, 9600, 19200, 38400, 76800, 153600, 153600, 153600]
        );
    }

    #[test]
    fn exp_formula_series() {
        let f = "ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)";
        assert_eq!(
            series(&inc(Some(f), None, Some("2.0 / 2.885385"), Some("30d"))),
            [1200, 2400, 4800, 9600, 19200, 38400, 76800, 153601, 307203, 614407]
        );
        assert_eq!(
            series(&inc(Some(f), None, Some("1"), Some("24h"))),
            [1630, 4433, 12051, 32758, 86400, 86400, 86400, 86400, 86400, 86400]
        );
    }

    #[test]
    fn rndtime_adds_bounded_random() {
        let mut o = IncrementOptions {
            rndtime: Some("5m".into()),
            ..Default::default()
        };
        let i = Increment::new(&o).unwrap();
        assert_eq!(i.calc_ban_time(600.0, 1, &mut || 0.5).unwrap(), 1350.0);
        o.formula = Some("ban.Time << 1.5".into());
        assert!(matches!(
            Increment::new(&o),
            Err(Error::Formula {
                option: "bantime.formula",
                ..
            })
        ));
        o.formula = None;
        o.multipliers = Some("1 x".into());
        assert!(matches!(Increment::new(&o), Err(Error::Multiplier { .. })));
    }

    #[test]
    fn known_bad_failure_weighs_more() {
        let t = Ticket::new(Fid::Raw("x".into()), 100.0, vec![]);
        let prev = |count| PrevBan {
            count,
            time: 50.0,
            ban_time: 600.0,
        };
        assert_eq!(failure_found(None, &t, 5), None);
        assert_eq!(failure_found(Some(&prev(1)), &t, 5).unwrap().extra_retry, 1);
        assert_eq!(failure_found(Some(&prev(2)), &t, 5).unwrap().extra_retry, 2);
        assert_eq!(failure_found(Some(&prev(5)), &t, 5).unwrap().extra_retry, 4);
        let old = PrevBan {
            time: 100.0,
            ..prev(3)
        };
        assert_eq!(failure_found(Some(&old), &t, 5), None);
    }

    #[test]
    fn ban_found_increments_once() {
        let i = inc(None, None, None, None);
        let mut t = Ticket::new(Fid::Raw("x".into()), 1000.0, vec![]);
        t.incr_ban_count(1);
        let prev = PrevBan {
            count: 2,
            time: 500.0,
            ban_time: 1200.0,
        };
        let r = ban_found(
            "j",
            Some(&i),
            Some(&prev),
            &mut t,
            600.0,
            1000.0,
            &mut || 0.0,
        );
        assert_eq!(r.ban_time, 2400.0);
        assert!(r.increased && r.record);
        assert_eq!(t.ban_count(), 3);
        assert_eq!(t.ban_time_opt(), Some(2400.0));
        // A ticket with its own ban time keeps it.
        let r = ban_found(
            "j",
            Some(&i),
            Some(&prev),
            &mut t,
            600.0,
            1000.0,
            &mut || 0.0,
        );
        assert_eq!(r.ban_time, 600.0);
    }
}
