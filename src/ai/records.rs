//! The AI part's bookkeeping in the store besides its rules: the verdict
//! cached for each shape and the audit trail. The pipeline and the checks
//! at start write them the same way here; a failed write is logged, never
//! fatal, since neither decides a ban.

use serde_json::Value;

use crate::store::{AuditEntry, Store, Verdict};

/// One entry of the audit trail (`ai log`).
pub(super) fn audit(
    store: &dyn Store,
    time: f64,
    jail: Option<&str>,
    kind: &str,
    template: Option<&str>,
    detail: Value,
) {
    let e = AuditEntry {
        time,
        jail: jail.map(String::from),
        kind: kind.to_string(),
        template: template.map(String::from),
        detail,
    };
    if let Err(e) = store.add_audit(&e) {
        tracing::error!("AI audit: {e}");
    }
}

/// What a shape was judged, by `model`, until `ttl` seconds from `time`.
pub(super) struct Judged<'a> {
    pub template: &'a str,
    pub verdict: &'a str,
    pub model: &'a str,
    pub tokens: u64,
}

/// Caches a verdict for a shape.
pub(super) fn verdict(store: &dyn Store, j: &Judged<'_>, time: f64, ttl: f64) {
    let v = Verdict {
        template: j.template.to_string(),
        verdict: j.verdict.to_string(),
        hits: 0,
        model: j.model.to_string(),
        tokens: j.tokens,
        created: time,
        expiry: time + ttl,
    };
    if let Err(e) = store.put_verdict(&v) {
        tracing::error!("AI verdict cache: {e}");
    }
}
