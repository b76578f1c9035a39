//! TEMPORARY stand-in for `date::DateDetector` (branch `date`), with the same
//! API, so the filter can be built and tested before it lands. Delete this
//! file at merge and point `filter::DateDetector` at `date::DateDetector`.
//!
//! It knows two patterns only: the syslog date `Mon DD HH:MM:SS` at the start
//! of a line (year taken from `now`, always UTC), and `{NONE}` (no date).

use super::date::DateMatch;

/// Error for patterns the stub does not know.
#[derive(Debug, thiserror::Error)]
#[error("date pattern {0:?} not supported by the temporary date detector")]
pub struct StubDateError(String);

/// See the module docs: a temporary, minimal date detector.
#[derive(Debug, Clone)]
pub struct DateDetector {
    none: bool,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl DateDetector {
    /// fail2ban's default template set (here: syslog dates only).
    pub fn new_default() -> DateDetector {
        DateDetector { none: false }
    }

    /// A filter's `datepattern`.
    pub fn from_pattern(pattern: &str) -> Result<DateDetector, StubDateError> {
        match pattern.trim() {
            "{NONE}" => Ok(DateDetector { none: true }),
            "{^LN-BEG}" | "" => Ok(DateDetector { none: false }),
            p => Err(StubDateError(p.to_string())),
        }
    }

    /// `logtimezone`; only UTC is supported by the stub.
    pub fn set_timezone(&mut self, tz: Option<&str>) -> Result<(), StubDateError> {
        match tz {
            None | Some("UTC") => Ok(()),
            Some(t) => Err(StubDateError(t.to_string())),
        }
    }

    /// Finds the date in `line`.
    pub fn match_time(&mut self, line: &str, now: f64) -> Option<DateMatch> {
        if self.none {
            return Some(DateMatch {
                time: now,
                span: 0..0,
            });
        }
        let b = line.as_bytes();
        if b.len() < 15 {
            return None;
        }
        let month = MONTHS.iter().position(|m| m.as_bytes() == &b[..3])? as i64 + 1;
        let num = |s: &[u8]| -> Option<i64> {
            let t = std::str::from_utf8(s).ok()?.trim_start();
            t.parse().ok()
        };
        if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
            return None;
        }
        let day = num(&b[4..6])?;
        let (h, mi, s) = (num(&b[7..9])?, num(&b[10..12])?, num(&b[13..15])?);
        let year = 1970 + (now / 31_556_952.0) as i64;
        let t = days_from_civil(year, month, day) * 86400 + h * 3600 + mi * 60 + s;
        Some(DateMatch {
            time: t as f64,
            span: 0..15,
        })
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}
