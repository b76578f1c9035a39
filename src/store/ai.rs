//! What the AI part keeps besides verdicts and the audit trail: lines
//! waiting for the model (so that work past a budget outlives a restart),
//! the rules it wrote, with their approval state, and the evidence rules
//! are tested against (a bounded sample of each jail's lines).

use rusqlite::{params, OptionalExtension};

use super::{Result, SqliteStore};

/// A line waiting for the model.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedLine {
    /// Row id, to remove it once answered.
    pub id: i64,
    /// When it was queued.
    pub time: f64,
    /// The jail whose log produced it.
    pub jail: String,
    /// Its template key.
    pub template: String,
    /// The remote address the prescreen found in it.
    pub addr: String,
    /// The line itself (already bounded in length): the shape's samples,
    /// one a line.
    pub line: String,
    /// Distinct client addresses the shape was seen from: the backlog
    /// asks the shapes seen from the most first, and a full one drops the
    /// shape seen from the fewest.
    pub sources: u64,
}

/// A rule the AI part produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Short id, also part of the filter's name.
    pub id: String,
    /// The jail whose log produced it.
    pub jail: String,
    /// The template that triggered it.
    pub template: String,
    /// Where it stands.
    pub status: RuleStatus,
    /// When it was made.
    pub created: f64,
    /// Everything else (regex, model, reason, sample, suggested times).
    pub detail: serde_json::Value,
}

/// Where an AI rule stands; kept in the store by [`RuleStatus::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleStatus {
    /// Made in `ai = observe`: recorded, never loaded.
    Observed,
    /// Made in `ai = suggest`: waits for `ai approve`.
    Pending,
    /// Made in `ai = enforce`: loaded with its bantime capped.
    Active,
    /// Approved by the administrator: loaded uncapped, and theirs.
    Approved,
    /// Rejected by the administrator: its shape is benign.
    Rejected,
    /// Failed a check: listed with its reason, never loaded.
    Invalid,
}

impl RuleStatus {
    /// Every status, in the order `ai list` and the metrics show them.
    pub const ALL: [RuleStatus; 6] = [
        RuleStatus::Observed,
        RuleStatus::Pending,
        RuleStatus::Active,
        RuleStatus::Approved,
        RuleStatus::Rejected,
        RuleStatus::Invalid,
    ];

    /// Its name, as `ai list` shows it and the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Observed => "observed",
            RuleStatus::Pending => "pending",
            RuleStatus::Active => "active",
            RuleStatus::Approved => "approved",
            RuleStatus::Rejected => "rejected",
            RuleStatus::Invalid => "invalid",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<RuleStatus> {
        RuleStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether a jail loads the rule's filter (jail.d/ai.local names it).
    pub fn is_loaded(self) -> bool {
        matches!(self, RuleStatus::Active | RuleStatus::Approved)
    }

    /// Whether the rule is the model's and still checked against the
    /// evidence: loaded now or loadable by an approval.
    pub fn is_checked(self) -> bool {
        matches!(
            self,
            RuleStatus::Active | RuleStatus::Pending | RuleStatus::Observed
        )
    }
}

impl std::fmt::Display for RuleStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl rusqlite::types::ToSql for RuleStatus {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for RuleStatus {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let name = v.as_str()?;
        RuleStatus::parse(name).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown AI rule status {name:?}").into())
        })
    }
}

/// Which part of the evidence a line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EvidenceKind {
    /// A line the jail handed over, whatever its shape.
    Recent,
    /// A line of a shape judged benign.
    Benign,
}

impl EvidenceKind {
    fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Recent => "recent",
            EvidenceKind::Benign => "benign",
        }
    }
}

/// One line of evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct EvidenceLine {
    /// The jail whose log it came from.
    pub jail: String,
    /// Recent or benign.
    pub kind: EvidenceKind,
    /// Its template key.
    pub template: String,
    /// The line (already bounded in length).
    pub line: String,
    /// When it was kept.
    pub time: f64,
}

/// How many lines of evidence are kept, per jail and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidenceBound {
    /// Lines of one jail, newest kept.
    pub per_jail: usize,
    /// Lines of one shape of one jail, newest kept: a flood of one shape
    /// cannot push the others out.
    pub per_shape: usize,
}

/// The AI part's queue and rules. Kept apart from [`super::Store`] so that
/// the core trait stays small.
pub trait AiStore: Send + Sync {
    /// Appends a line to the queue; returns its id.
    fn queue_push(&self, line: &QueuedLine) -> Result<i64>;
    /// The queued lines seen from the most sources, oldest first among
    /// equals, at most `limit`.
    fn queue_peek(&self, limit: usize) -> Result<Vec<QueuedLine>>;
    /// The queued line seen from the fewest sources, the newest among
    /// equals: the one a full backlog gives up first.
    fn queue_fewest(&self) -> Result<Option<QueuedLine>>;
    /// Records that a queued line's shape was seen from `sources`.
    fn queue_set_sources(&self, id: i64, sources: u64) -> Result<()>;
    /// Removes a line from the queue.
    fn queue_remove(&self, id: i64) -> Result<()>;
    /// How many lines wait.
    fn queue_len(&self) -> Result<u64>;
    /// Stores (or replaces) a rule.
    fn put_rule(&self, rule: &Rule) -> Result<()>;
    /// One rule by id.
    fn rule(&self, id: &str) -> Result<Option<Rule>>;
    /// Every rule, oldest first.
    fn rules(&self) -> Result<Vec<Rule>>;
    /// How many verdicts the cache holds.
    fn verdict_count(&self) -> Result<u64>;
    /// How many rules there are of each status that has any.
    fn rule_counts(&self) -> Result<Vec<(RuleStatus, u64)>>;
    /// Keeps `lines` in one transaction, then drops the oldest lines of
    /// each jail, kind and shape they touched beyond `bound(kind)`.
    fn add_evidence(
        &self,
        lines: &[EvidenceLine],
        bound: fn(EvidenceKind) -> EvidenceBound,
    ) -> Result<()>;
    /// The evidence of one jail of one kind, oldest first.
    fn evidence(&self, jail: &str, kind: EvidenceKind) -> Result<Vec<EvidenceLine>>;
}

fn rule_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Rule> {
    let detail: String = r.get(5)?;
    Ok(Rule {
        id: r.get(0)?,
        jail: r.get(1)?,
        template: r.get(2)?,
        status: r.get(3)?,
        created: r.get(4)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

const QUEUE_COLUMNS: &str = "id, time, jail, template, addr, line, sources";

fn queued_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedLine> {
    Ok(QueuedLine {
        id: r.get(0)?,
        time: r.get(1)?,
        jail: r.get(2)?,
        template: r.get(3)?,
        addr: r.get(4)?,
        line: r.get(5)?,
        sources: r.get(6)?,
    })
}

const RULE_COLUMNS: &str = "id, jail, template, status, created, detail";

impl AiStore for SqliteStore {
    fn queue_push(&self, l: &QueuedLine) -> Result<i64> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "INSERT INTO ai_queue(time, jail, template, addr, line, sources) \
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                l.time, l.jail, l.template, l.addr, l.line, l.sources
            ])?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn queue_peek(&self, limit: usize) -> Result<Vec<QueuedLine>> {
        self.read(|conn, _| {
            conn.prepare_cached(&format!(
                "SELECT {QUEUE_COLUMNS} FROM ai_queue ORDER BY sources DESC, id LIMIT ?1"
            ))?
            .query_map(params![limit], queued_from)?
            .collect()
        })
    }

    fn queue_fewest(&self) -> Result<Option<QueuedLine>> {
        self.read(|conn, _| {
            conn.prepare_cached(&format!(
                "SELECT {QUEUE_COLUMNS} FROM ai_queue ORDER BY sources, id DESC LIMIT 1"
            ))?
            .query_row([], queued_from)
            .optional()
        })
    }

    fn queue_set_sources(&self, id: i64, sources: u64) -> Result<()> {
        self.write(|tx, _| {
            tx.prepare_cached("UPDATE ai_queue SET sources = ?2 WHERE id = ?1")?
                .execute(params![id, sources])?;
            Ok(())
        })
    }

    fn queue_remove(&self, id: i64) -> Result<()> {
        self.write(|tx, _| {
            tx.prepare_cached("DELETE FROM ai_queue WHERE id = ?1")?
                .execute(params![id])?;
            Ok(())
        })
    }

    fn queue_len(&self) -> Result<u64> {
        self.read(|conn, _| conn.query_row("SELECT count(*) FROM ai_queue", [], |r| r.get(0)))
    }

    fn put_rule(&self, rule: &Rule) -> Result<()> {
        self.write(|tx, _| {
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO ai_rules({RULE_COLUMNS}) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                rule.id,
                rule.jail,
                rule.template,
                rule.status,
                rule.created,
                rule.detail.to_string()
            ])?;
            Ok(())
        })
    }

    fn rule(&self, id: &str) -> Result<Option<Rule>> {
        self.read(|conn, _| {
            conn.prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM ai_rules WHERE id = ?1"
            ))?
            .query_row(params![id], rule_from)
            .optional()
        })
    }

    fn rules(&self) -> Result<Vec<Rule>> {
        self.read(|conn, _| {
            conn.prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM ai_rules ORDER BY created, id"
            ))?
            .query_map([], rule_from)?
            .collect()
        })
    }

    fn verdict_count(&self) -> Result<u64> {
        self.read(|conn, _| conn.query_row("SELECT count(*) FROM ai_verdicts", [], |r| r.get(0)))
    }

    fn rule_counts(&self) -> Result<Vec<(RuleStatus, u64)>> {
        self.read(|conn, _| {
            conn.prepare_cached("SELECT status, count(*) FROM ai_rules GROUP BY status")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    fn add_evidence(
        &self,
        lines: &[EvidenceLine],
        bound: fn(EvidenceKind) -> EvidenceBound,
    ) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.write(|tx, _| {
            let mut add = tx.prepare_cached(
                "INSERT INTO ai_evidence(jail, kind, template, line, time) \
                 VALUES(?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut shapes = std::collections::BTreeSet::new();
            for l in lines {
                add.execute(params![l.jail, l.kind.as_str(), l.template, l.line, l.time])?;
                shapes.insert((l.jail.as_str(), l.kind, l.template.as_str()));
            }
            let mut trim_shape = tx.prepare_cached(
                "DELETE FROM ai_evidence WHERE jail = ?1 AND kind = ?2 AND template = ?3 \
                 AND id NOT IN (SELECT id FROM ai_evidence \
                   WHERE jail = ?1 AND kind = ?2 AND template = ?3 ORDER BY id DESC LIMIT ?4)",
            )?;
            let mut jails = std::collections::BTreeSet::new();
            for (jail, kind, template) in shapes {
                let b = bound(kind);
                trim_shape.execute(params![jail, kind.as_str(), template, b.per_shape])?;
                jails.insert((jail, kind));
            }
            let mut trim_jail = tx.prepare_cached(
                "DELETE FROM ai_evidence WHERE jail = ?1 AND kind = ?2 \
                 AND id NOT IN (SELECT id FROM ai_evidence \
                   WHERE jail = ?1 AND kind = ?2 ORDER BY id DESC LIMIT ?3)",
            )?;
            for (jail, kind) in jails {
                trim_jail.execute(params![jail, kind.as_str(), bound(kind).per_jail])?;
            }
            Ok(())
        })
    }

    fn evidence(&self, jail: &str, kind: EvidenceKind) -> Result<Vec<EvidenceLine>> {
        self.read(|conn, _| {
            conn.prepare_cached(
                "SELECT template, line, time FROM ai_evidence \
                 WHERE jail = ?1 AND kind = ?2 ORDER BY id",
            )?
            .query_map(params![jail, kind.as_str()], |r| {
                Ok(EvidenceLine {
                    jail: jail.to_string(),
                    kind,
                    template: r.get(0)?,
                    line: r.get(1)?,
                    time: r.get(2)?,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Settings, Store};

    #[test]
    fn queue_and_rules_round_trip() {
        let s = SqliteStore::open(":memory:", Settings::default()).unwrap();
        let ai = s.ai().unwrap();
        let l = QueuedLine {
            id: 0,
            time: 1.0,
            jail: "nginx".into(),
            template: "t".into(),
            addr: "192.0.2.1".into(),
            line: "x".into(),
            sources: 1,
        };
        let id = ai.queue_push(&l).unwrap();
        assert_eq!(ai.queue_len().unwrap(), 1);
        assert_eq!(ai.queue_peek(5).unwrap()[0].id, id);
        ai.queue_remove(id).unwrap();
        assert_eq!(ai.queue_len().unwrap(), 0);
        let r = Rule {
            id: "a1".into(),
            jail: "nginx".into(),
            template: "t".into(),
            status: RuleStatus::Active,
            created: 2.0,
            detail: serde_json::json!({"failregex": "x <HOST>"}),
        };
        ai.put_rule(&r).unwrap();
        assert_eq!(ai.rule("a1").unwrap(), Some(r.clone()));
        assert_eq!(ai.rules().unwrap(), vec![r]);
    }

    #[test]
    fn evidence_is_bounded_per_shape_and_per_jail() {
        let s = SqliteStore::open(":memory:", Settings::default()).unwrap();
        let ai = s.ai().unwrap();
        let line = |jail: &str, kind, template: &str, n: usize| EvidenceLine {
            jail: jail.into(),
            kind,
            template: template.into(),
            line: format!("{template} {n}"),
            time: n as f64,
        };
        fn bound(kind: EvidenceKind) -> EvidenceBound {
            match kind {
                EvidenceKind::Recent => EvidenceBound {
                    per_jail: 4,
                    per_shape: 2,
                },
                EvidenceKind::Benign => EvidenceBound {
                    per_jail: 10,
                    per_shape: 10,
                },
            }
        }
        // A flood of one shape keeps only its newest two lines.
        let flood: Vec<_> = (0..50)
            .map(|n| line("web", EvidenceKind::Recent, "a", n))
            .collect();
        ai.add_evidence(&flood, bound).unwrap();
        ai.add_evidence(&[line("web", EvidenceKind::Benign, "ok", 1)], bound)
            .unwrap();
        ai.add_evidence(&[line("mail", EvidenceKind::Recent, "m", 1)], bound)
            .unwrap();
        let recent = |jail| -> Vec<String> {
            ai.evidence(jail, EvidenceKind::Recent)
                .unwrap()
                .into_iter()
                .map(|l| l.line)
                .collect()
        };
        assert_eq!(recent("web"), ["a 48", "a 49"]);
        // Other shapes push the oldest out of the jail's bound.
        let more: Vec<_> = ["b", "c", "d"]
            .iter()
            .map(|t| line("web", EvidenceKind::Recent, t, 1))
            .collect();
        ai.add_evidence(&more, bound).unwrap();
        assert_eq!(recent("web"), ["a 49", "b 1", "c 1", "d 1"]);
        assert_eq!(recent("mail"), ["m 1"], "other jails keep theirs");
        let benign = ai.evidence("web", EvidenceKind::Benign).unwrap();
        assert_eq!(benign, [line("web", EvidenceKind::Benign, "ok", 1)]);
    }

    #[test]
    fn the_queue_asks_shapes_from_most_sources_first() {
        let s = SqliteStore::open(":memory:", Settings::default()).unwrap();
        let ai = s.ai().unwrap();
        let line = |template: &str, sources| QueuedLine {
            id: 0,
            time: 1.0,
            jail: "nginx".into(),
            template: template.into(),
            addr: "192.0.2.1".into(),
            line: "x".into(),
            sources,
        };
        let a = ai.queue_push(&line("a", 1)).unwrap();
        let b = ai.queue_push(&line("b", 3)).unwrap();
        let c = ai.queue_push(&line("c", 1)).unwrap();
        let order = |ai: &dyn AiStore| -> Vec<i64> {
            ai.queue_peek(10).unwrap().iter().map(|q| q.id).collect()
        };
        assert_eq!(order(ai), [b, a, c]);
        assert_eq!(ai.queue_fewest().unwrap().unwrap().id, c);
        ai.queue_set_sources(c, 5).unwrap();
        assert_eq!(order(ai), [c, b, a]);
        assert_eq!(ai.queue_fewest().unwrap().unwrap().id, a);
    }
}
