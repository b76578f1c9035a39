//! What one scrape shows, read from the server at that moment.

use std::path::Path;
use std::sync::Arc;

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
    /// Each file the jail follows and the offset it has read it to.
    pub read_to: Vec<(Arc<Path>, u64)>,
    /// The time of the newest journal entry read (journal jails only).
    pub journal_read_at: Option<f64>,
}

/// How far one source is behind its log.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceLag {
    pub jail: String,
    pub source: String,
    /// Bytes written to the file that the jail has not read yet.
    pub bytes: u64,
}

/// The lag of every file the jails follow: its size now against how far
/// it is read (a file rotated since shows its new size). Blocking (it
/// stats the files): call it off the runtime threads.
pub fn source_lags(jails: &[JailSample]) -> Vec<SourceLag> {
    jails
        .iter()
        .flat_map(|j| {
            j.read_to.iter().filter_map(|(path, offset)| {
                let size = std::fs::metadata(path).ok()?.len();
                Some(SourceLag {
                    jail: j.jail.clone(),
                    source: path.to_string_lossy().into_owned(),
                    bytes: if size >= *offset { size - offset } else { size },
                })
            })
        })
        .collect()
}

/// The AI rule generator's numbers, since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AiSample {
    /// Requests sent to the model.
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// (verdict, how many the model gave).
    pub verdicts: Vec<(&'static str, u64)>,
    /// (status, rules of it now).
    pub rules: Vec<(&'static str, u64)>,
    /// Lines waiting to be asked about.
    pub queue: u64,
}

/// The journal sources' lag: (jail, seconds from the newest entry read
/// to `now`). A journal that writes nothing new shows its quiet time too.
pub fn journal_lags(jails: &[JailSample], now: f64) -> Vec<(String, f64)> {
    jails
        .iter()
        .filter_map(|j| Some((j.jail.clone(), (now - j.journal_read_at?).max(0.0))))
        .collect()
}

/// Everything one scrape encodes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub jails: Vec<JailSample>,
    pub sources: Vec<SourceLag>,
    /// (jail, seconds) of each journal source: [`journal_lags`].
    pub journal_lags: Vec<(String, f64)>,
    /// (jail, action, runs).
    pub actions: Vec<(String, String, ActionRuns)>,
    /// `None` when /proc could not be read.
    pub process: Option<ProcessSample>,
    /// `None` while the AI rule generator is off.
    pub ai: Option<AiSample>,
}
