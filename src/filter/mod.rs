//! Filters: a log line and the time now in, failures out.
//!
//! Pure and synchronous: no files, jails or bans.

pub mod date;
pub mod pcre;
pub mod pyre;
