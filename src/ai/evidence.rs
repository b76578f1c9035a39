//! What a candidate rule is tested against besides its own samples: a
//! bounded sample of each jail's lines, kept in the store so that it
//! outlives a restart and does not depend on which lines came last.
//!
//! Two kinds of lines are kept per jail: recent lines the jail handed over
//! (any shape, a few of each, so that a flood of one shape cannot push the
//! others out), and lines of shapes judged benign. Every new rule must
//! match no benign line and few recent lines of other shapes; every rule
//! already made is checked against the benign lines again at each start,
//! and one that matches any is not loaded.
//!
//! The jails never wait for this: lines reach it on the AI's intake, off
//! the runtime threads, and are written in batches, at most
//! [`RECENT_BOUND`]`.per_shape` lines of a shape per batch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::records::{self, Judged};
use super::{validate, writer};
use crate::store::{AiStore, EvidenceBound, EvidenceKind, EvidenceLine, Rule, RuleStatus, Store};

/// Recent lines kept per jail, and per shape of a jail.
pub const RECENT_BOUND: EvidenceBound = EvidenceBound {
    per_jail: 500,
    per_shape: 5,
};
/// Lines of benign shapes kept per jail, and per shape of a jail.
pub const BENIGN_BOUND: EvidenceBound = EvidenceBound {
    per_jail: 1000,
    per_shape: 10,
};
/// A batch is written once it holds this many lines...
const BATCH_LINES: usize = 64;
/// ...or its oldest line waited this long (seconds).
const BATCH_AGE: f64 = 2.0;

fn bound(kind: EvidenceKind) -> EvidenceBound {
    match kind {
        EvidenceKind::Recent => RECENT_BOUND,
        EvidenceKind::Benign => BENIGN_BOUND,
    }
}

#[derive(Default)]
struct Batch {
    lines: Vec<EvidenceLine>,
    /// Lines of each (jail, kind, template) in `lines`.
    shapes: HashMap<(String, EvidenceKind, String), usize>,
    /// When the first line of the batch came.
    since: f64,
}

/// The evidence of every jail: the store's rows and the batch not yet
/// written.
pub struct Sample {
    store: Arc<dyn Store>,
    batch: Mutex<Batch>,
}

impl Sample {
    /// Evidence kept in `store`, which must have the AI tables.
    pub fn new(store: Arc<dyn Store>) -> Sample {
        Sample {
            store,
            batch: Mutex::new(Batch::default()),
        }
    }

    fn db(&self) -> &dyn AiStore {
        self.store.ai().expect("checked at start")
    }

    /// Keeps a line; written with the next batch. Blocks on SQLite when
    /// the batch is due: call it off the runtime threads.
    pub fn note(&self, jail: &str, kind: EvidenceKind, template: &str, line: &str, now: f64) {
        let due = {
            let mut b = self.batch.lock().expect("evidence lock");
            let n = b
                .shapes
                .entry((jail.to_string(), kind, template.to_string()))
                .or_default();
            if *n < bound(kind).per_shape {
                *n += 1;
                if b.lines.is_empty() {
                    b.since = now;
                }
                b.lines.push(EvidenceLine {
                    jail: jail.to_string(),
                    kind,
                    template: template.to_string(),
                    line: line.to_string(),
                    time: now,
                });
            }
            b.lines.len() >= BATCH_LINES || (!b.lines.is_empty() && now - b.since >= BATCH_AGE)
        };
        if due {
            self.flush();
        }
    }

    /// Whether a batch waits longer than it should (for a timer to call
    /// [`Sample::flush`] when no further line comes).
    pub fn due(&self, now: f64) -> bool {
        let b = self.batch.lock().expect("evidence lock");
        !b.lines.is_empty() && now - b.since >= BATCH_AGE
    }

    /// Writes the batch. Blocks on SQLite.
    pub fn flush(&self) {
        let b = std::mem::take(&mut *self.batch.lock().expect("evidence lock"));
        if let Err(e) = self.db().add_evidence(&b.lines, bound) {
            tracing::error!("AI evidence: {e}");
        }
    }

    /// Keeps the lines of a shape just judged benign, at once.
    pub fn benign(&self, jail: &str, template: &str, lines: &[String], now: f64) {
        for l in lines {
            self.note(jail, EvidenceKind::Benign, template, l, now);
        }
        self.flush();
    }

    /// What a rule for `template` of `jail` is tested against: the benign
    /// lines, and the recent lines of other shapes.
    pub fn lines(&self, jail: &str, template: &str) -> (Vec<String>, Vec<String>) {
        self.flush();
        let read = |kind| {
            self.db().evidence(jail, kind).unwrap_or_else(|e| {
                tracing::error!("AI evidence: {e}");
                Vec::new()
            })
        };
        let benign = read(EvidenceKind::Benign)
            .into_iter()
            .map(|l| l.line)
            .collect();
        let recent = read(EvidenceKind::Recent)
            .into_iter()
            .filter(|l| l.template != template)
            .map(|l| l.line)
            .collect();
        (benign, recent)
    }
}

/// The benign lines of `jail` kept in the store.
fn benign_lines(db: &dyn AiStore, jail: &str) -> crate::store::Result<Vec<String>> {
    Ok(db
        .evidence(jail, EvidenceKind::Benign)?
        .into_iter()
        .map(|l| l.line)
        .collect())
}

/// At start: every rule that is or may become loaded is tested against the
/// benign lines of its jail and the shipped corpus again. One that matches
/// any becomes [`RuleStatus::Invalid`] with the reason, loses its filter files, and
/// leaves jail.d/ai.local; the names of their jails are returned, so that
/// a configuration read before cannot start them. Approved rules are the
/// administrator's: a match is only logged. Blocks on SQLite and files.
pub fn recheck(store: &dyn Store, conf_dir: &Path) -> Vec<String> {
    let Some(db) = store.ai() else {
        return Vec::new();
    };
    let rules = match db.rules() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("AI rules: {e}");
            return Vec::new();
        }
    };
    let mut refused = Vec::new();
    let mut benign: HashMap<String, Vec<String>> = HashMap::new();
    for rule in rules {
        let checked = rule.status.is_checked();
        if !checked && rule.status != RuleStatus::Approved {
            continue;
        }
        let lines = match benign.get(&rule.jail) {
            Some(l) => l,
            None => match benign_lines(db, &rule.jail) {
                Ok(l) => benign.entry(rule.jail.clone()).or_insert(l),
                Err(e) => {
                    tracing::error!("AI evidence: {e}");
                    continue;
                }
            },
        };
        let re = rule.detail["failregex"].as_str().unwrap_or("");
        let Some(why) = validate::benign_failure(re, lines) else {
            continue;
        };
        if !checked {
            tracing::warn!(
                "[{}] approved AI rule {} {why}; kept, as approved",
                rule.jail,
                rule.id
            );
            continue;
        }
        tracing::error!("[{}] AI rule {} not loaded: {why}", rule.jail, rule.id);
        refused.push(writer::filter_name(&rule.jail, &rule.id));
        if let Err(e) = invalidate(store, db, conf_dir, rule, &why) {
            tracing::error!("AI rules: {e}");
        }
    }
    if !refused.is_empty() {
        let written = db
            .rules()
            .map_err(std::io::Error::other)
            .and_then(|r| writer::write_jails(conf_dir, &r));
        if let Err(e) = written {
            tracing::error!("AI rules: writing {}: {e}", writer::JAIL_FILE);
        }
    }
    refused
}

/// Records `rule` as [`RuleStatus::Invalid`] for `why` and removes its filter files.
fn invalidate(
    store: &dyn Store,
    db: &dyn AiStore,
    conf_dir: &Path,
    mut rule: Rule,
    why: &str,
) -> Result<(), crate::store::Error> {
    for pending in [true, false] {
        let path = writer::filter_path(conf_dir, &rule, pending);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::error!("AI rules: removing {}: {e}", path.display());
            }
            _ => {}
        }
    }
    let was = std::mem::replace(&mut rule.status, RuleStatus::Invalid);
    rule.detail["reason"] = json!(why);
    // Its shape is asked about again, with the reason, once the verdict
    // that stood for the rule expires.
    rule.detail["retry"] = json!(true);
    rule.detail["was"] = json!(was.as_str());
    db.put_rule(&rule)?;
    let now = super::pipeline::now();
    let judged = Judged {
        template: &rule.template,
        verdict: "error",
        model: rule.detail["model"].as_str().unwrap_or(""),
        tokens: 0,
    };
    records::verdict(store, &judged, now, super::pipeline::RETRY_ERROR);
    records::audit(
        store,
        now,
        Some(&rule.jail),
        "invalid",
        Some(&rule.template),
        json!({"id": rule.id, "reason": why, "was": was.as_str()}),
    );
    Ok(())
}

/// Why the jail `name` may not start: it is the jail of an AI rule that is
/// neither active nor approved (a jail.d/ai.local read before the rule was
/// found invalid or rejected). `None` for every other jail. Blocks on
/// SQLite.
pub fn refusal(store: &dyn Store, name: &str) -> Option<String> {
    let id = name.strip_prefix("ai-")?.rsplit('-').next()?;
    let rule = store.ai()?.rule(id).ok().flatten()?;
    if writer::filter_name(&rule.jail, &rule.id) != name || rule.status.is_loaded() {
        return None;
    }
    let reason = rule.detail["reason"].as_str().unwrap_or("");
    Some(format!("AI rule {} is {}: {reason}", rule.id, rule.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Settings, SqliteStore};

    const RE: &str = r"^\s*\S+ auth\[\d+\]: login \w+ for user '[^']*' from <HOST>$";

    fn store() -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(":memory:", Settings::default()).unwrap())
    }

    fn rule(status: RuleStatus) -> Rule {
        Rule {
            id: "0123abcd".into(),
            jail: "web".into(),
            template: "t".into(),
            status,
            created: 1.0,
            detail: json!({"failregex": RE}),
        }
    }

    #[test]
    fn a_flood_of_one_shape_is_batched_and_bounded() {
        let s = store();
        let ev = Sample::new(s.clone());
        for n in 0..1000 {
            ev.note("web", EvidenceKind::Recent, "flood", &format!("x {n}"), 1.0);
        }
        ev.note("web", EvidenceKind::Recent, "other", "y", 1.0);
        let (_, recent) = ev.lines("web", "none");
        assert_eq!(recent.len(), RECENT_BOUND.per_shape + 1, "{recent:?}");
        let (_, recent) = ev.lines("web", "flood");
        assert_eq!(recent, ["y"]);
    }

    #[test]
    fn a_rule_matching_a_kept_benign_line_is_refused_at_start() {
        let s = store();
        let dir = tempfile::tempdir().unwrap();
        let ev = Sample::new(s.clone());
        let ok = "Dec  7 10:00:00 web1 auth[1]: login ok for user 'alice' from 198.51.100.21";
        ev.benign("web", "ok", &[ok.to_string()], 1.0);
        let db = s.ai().unwrap();
        let mut r = rule(RuleStatus::Active);
        db.put_rule(&r).unwrap();
        let filter = writer::filter_path(dir.path(), &r, false);
        writer::write_atomic(&filter, &writer::filter_text(&r)).unwrap();
        let name = writer::filter_name("web", "0123abcd");
        assert_eq!(recheck(s.as_ref(), dir.path()), std::slice::from_ref(&name));
        let got = db.rule("0123abcd").unwrap().unwrap();
        assert_eq!(got.status, RuleStatus::Invalid);
        assert!(got.detail["reason"]
            .as_str()
            .unwrap()
            .starts_with("benign: matches benign line"));
        assert!(!filter.exists());
        let v = s.lookup_verdict("t", 2.0).unwrap().unwrap();
        assert_eq!(v.verdict, "error", "asked again after a while");
        assert!(refusal(s.as_ref(), &name).unwrap().contains("is invalid"));
        assert_eq!(refusal(s.as_ref(), "ai-web-ffffffff"), None);
        // An approved rule is the administrator's.
        r.status = RuleStatus::Approved;
        db.put_rule(&r).unwrap();
        assert!(recheck(s.as_ref(), dir.path()).is_empty());
        assert_eq!(refusal(s.as_ref(), &name), None);
    }
}
