//! Action runs, timed where they happen: the one number of the endpoint
//! nothing else keeps. Nothing is recorded (and the table is never made)
//! until the endpoint is on.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indexmap::IndexMap;

/// Upper bounds of the run-duration buckets, in seconds: from a quick
/// `ipset add` to an action that runs into its timeout.
pub const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The runs of one action of one jail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionRuns {
    pub runs: u64,
    pub failures: u64,
    /// Seconds, all runs together.
    pub seconds: f64,
    /// Runs per bucket of [`BUCKETS`] (not cumulative), the last one for
    /// runs longer than every bound.
    pub per_bucket: [u64; BUCKETS.len() + 1],
}

impl ActionRuns {
    fn add(&mut self, took: Duration, ok: bool) {
        let secs = took.as_secs_f64();
        self.runs += 1;
        self.failures += u64::from(!ok);
        self.seconds += secs;
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.per_bucket[i] += 1;
    }
}

/// Jail, then action: their runs.
type Table = IndexMap<String, IndexMap<String, ActionRuns>>;

static RUNS: OnceLock<Mutex<Table>> = OnceLock::new();

/// Starts recording (the endpoint is on).
pub fn enable() {
    RUNS.get_or_init(Mutex::default);
}

/// Whether the endpoint is on: only then are action runs timed and the
/// sources' positions kept.
pub fn enabled() -> bool {
    RUNS.get().is_some()
}

/// Records one run of `action` of `jail` (a command of one of its
/// operations) that took `took` and succeeded or not.
pub fn record(jail: &str, action: &str, took: Duration, ok: bool) {
    let Some(table) = RUNS.get() else { return };
    let mut table = table.lock().expect("action runs lock");
    let runs = match table.get_mut(jail) {
        Some(a) => a,
        None => table.entry(jail.to_string()).or_default(),
    };
    match runs.get_mut(action) {
        Some(r) => r.add(took, ok),
        None => runs.entry(action.to_string()).or_default().add(took, ok),
    }
}

/// Every action's runs, as (jail, action, runs).
pub fn snapshot() -> Vec<(String, String, ActionRuns)> {
    let Some(table) = RUNS.get() else {
        return Vec::new();
    };
    let table = table.lock().expect("action runs lock");
    table
        .iter()
        .flat_map(|(j, a)| a.iter().map(|(n, r)| (j.clone(), n.clone(), r.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_of_a_run() {
        let mut r = ActionRuns::default();
        r.add(Duration::from_millis(3), true);
        r.add(Duration::from_millis(300), false);
        r.add(Duration::from_secs(60), true);
        assert_eq!((r.runs, r.failures), (3, 1));
        assert_eq!(r.per_bucket[0], 1);
        assert_eq!(r.per_bucket[6], 1);
        assert_eq!(r.per_bucket[BUCKETS.len()], 1);
    }
}
