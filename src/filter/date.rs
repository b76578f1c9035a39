//! Date detection as fail2ban's `DateDetector` does it.
//!
//! API contract (implementation pending on branch `date`):
//!
//! ```ignore
//! let mut dd = DateDetector::new_default();             // fail2ban's default template set
//! let mut dd = DateDetector::from_pattern("{^LN-BEG}")?; // a filter's `datepattern`
//! dd.set_timezone(Some("UTC"))?;                         // `logtimezone`
//! let m: Option<DateMatch> = dd.match_time(line, now);   // now: unix seconds
//! ```

use std::ops::Range;

/// Where a date was found in a line and the time it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct DateMatch {
    /// Unix time in seconds, with fractions where the log has them.
    pub time: f64,
    /// Byte range of the date text in the line (fail2ban drops it before
    /// matching failregex).
    pub span: Range<usize>,
}
