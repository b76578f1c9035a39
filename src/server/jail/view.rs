//! What the server asks a running jail: each method takes the jail's lock
//! for one answer, so that nothing outside the jail reaches into its state.

use serde_json::{json, Value};

use crate::ai::prescreen::Dropped;
use crate::ai::{AiHandle, Mode};
use crate::filter::ipaddr::Fid;
use crate::jail::status::JailCounts;

use super::super::spec::JailSpec;
use super::{Jail, JailState};

/// One ban for `get <jail> banned --with-time`.
pub struct BanEnd {
    pub fid: String,
    /// When the ban started.
    pub time: f64,
    /// Its bantime in seconds (negative: for ever).
    pub ban_time: f64,
    /// When it ends.
    pub end: f64,
}

impl Jail {
    fn locked(&self) -> std::sync::MutexGuard<'_, JailState> {
        self.state.lock().expect("jail lock")
    }

    /// A copy of the jail's settings.
    pub fn spec(&self) -> JailSpec {
        self.locked().spec.clone()
    }

    /// The jail's counts, for `status` and `stats`.
    pub fn counts(&self) -> JailCounts {
        self.locked().counts()
    }

    /// The jail's counts for a metrics scrape.
    pub fn metrics_sample(&self) -> crate::metrics::JailSample {
        self.locked().metrics_sample()
    }

    /// The banned addresses.
    pub fn banned(&self) -> Vec<String> {
        let st = self.locked();
        st.engine
            .ban_manager
            .ban_list()
            .iter()
            .map(|f| f.to_string())
            .collect()
    }

    /// Whether `fid` is banned here.
    pub fn is_banned(&self, fid: &Fid) -> bool {
        self.locked().engine.ban_manager.contains(fid)
    }

    /// The bans, soonest to end first.
    pub fn bans_by_end(&self) -> Vec<BanEnd> {
        let st = self.locked();
        st.engine
            .ban_manager
            .ban_list_by_end()
            .iter()
            .map(|(t, end)| BanEnd {
                fid: t.fid().to_string(),
                time: t.time(),
                ban_time: t.ban_time(st.spec.bantime),
                end: *end,
            })
            .collect()
    }

    /// Whether the jail follows nothing: no log file matched and it does
    /// not read the journal.
    pub fn has_no_logs(&self) -> bool {
        let st = self.locked();
        st.spec.logpaths.is_empty() && st.spec.logglobs.is_empty() && !st.spec.backend.is_journal()
    }

    /// The jail's `ai` mode and `ai_max_bantime`.
    pub fn ai_settings(&self) -> (Mode, Option<f64>) {
        let st = self.locked();
        (st.spec.ai, st.spec.ai_max_bantime)
    }

    /// Where the jail's unmatched lines go from now on (none: nowhere).
    pub fn set_ai(&self, handle: Option<AiHandle>) {
        self.locked().ai = handle;
    }

    /// The remote address `ai test` would take from `line`, with this
    /// jail's ignoreip.
    pub fn ai_test_address(&self, line: &str) -> Result<String, Dropped> {
        let mut st = self.locked();
        crate::ai::prescreen::remote_address(line, &mut st.ignore, self.clock.now())
    }

    /// An option fail2ban answers from its running filter rather than as
    /// it was configured: regexes with their tags expanded, ignoreip items
    /// parsed (networks normalised, single addresses last), the date
    /// template actually in use. None: not one of those.
    pub fn live_option(&self, what: &str) -> Option<Value> {
        let st = self.locked();
        let expanded = |r: &crate::filter::failregex::Regex| r.expanded().to_string();
        Some(match what {
            "failregex" => json!(st
                .filter
                .failregexes()
                .iter()
                .map(|f| expanded(f.regex()))
                .collect::<Vec<_>>()),
            "ignoreregex" => json!(st
                .filter
                .ignoreregexes()
                .iter()
                .map(expanded)
                .collect::<Vec<_>>()),
            "prefregex" => json!(st.filter.prefregex().map(expanded).unwrap_or_default()),
            "ignoreip" => json!(st.ignore.ignore_ip()),
            "datepattern" => {
                let default = json!([null, "Default Detectors"]);
                if st.spec.datepattern.is_none() {
                    return Some(default);
                }
                // fail2ban names the template only when the pattern made one
                // or two of them (not a set of defaults).
                let templates: Vec<_> = st.filter.dates().templates().collect();
                match templates.first() {
                    Some(t) if templates.len() <= 2 => json!([t.pattern, t.name]),
                    _ => default,
                }
            }
            _ => return None,
        })
    }
}
