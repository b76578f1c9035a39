//! What one scrape shows, read from the server at that moment.

use super::actions::ActionRuns;
use super::process::ProcessSample;

/// One jail's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JailSample {
    pub jail: String,
    /// Lines (and journal entries) the filter was given.
    pub lines_read: u64,
    /// Of those, lines that gave at least one failure.
    pub lines_matched: u64,
    pub failures_total: u64,
    /// Ids with failures counted now (`Currently failed`).
    pub failed: u64,
    pub bans_total: u64,
    pub unbans_total: u64,
    /// Bans in force (`Currently banned`).
    pub banned: u64,
}

/// Everything one scrape encodes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub jails: Vec<JailSample>,
    /// (jail, action, runs).
    pub actions: Vec<(String, String, ActionRuns)>,
    /// `None` when /proc could not be read.
    pub process: Option<ProcessSample>,
}
