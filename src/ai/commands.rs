//! The `ai` commands of the control socket: `ai status`, `list`, `show`,
//! `approve`, `reject` and `test`. Each blocks on SQLite and files, so the
//! server runs them off the runtime threads, except `test`, which asks the
//! model and is async.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::answer;
use super::pipeline::{now, Ai, FOREVER};
use super::prescreen::Dropped;
use super::prompt::{self, Question};
use super::validate::{self, Evidence};
use super::{shape, template, writer};
use crate::store::{Rule, RuleStatus};

/// Why an `ai list/show/approve/reject` command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    #[error("no AI rule {0:?}")]
    NoRule(String),
    #[error("rule {id} is {status}")]
    Status { id: String, status: RuleStatus },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Ai {
    /// `ai status`.
    pub fn status(&self) -> Value {
        let t = now();
        let b = self.budget.lock().expect("ai lock").clone();
        let (dropped_backlog, dropped_shapes) = self.intake.dropped();
        let jails: serde_json::Map<String, Value> = self
            .jails
            .lock()
            .expect("ai lock")
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.mode.as_str())))
            .collect();
        json!({
            "jails": jails,
            "provider": self.settings.base_url,
            "model": self.settings.model,
            "requests today": b.requests_today,
            "tokens today": b.tokens_today,
            "requests left": b.requests_left(),
            "tokens left": b.tokens_left(),
            "breaker open": b.breaker_open(t),
            "cache size": self.db().verdict_count().unwrap_or_default(),
            "cache hits": self.cache_hits.load(Ordering::Relaxed),
            "queue": self.db().queue_len().unwrap_or_default(),
            "dropped": self.dropped.load(Ordering::Relaxed),
            "dropped backlog": dropped_backlog,
            "dropped shapes": dropped_shapes,
            "last error": *self.last_error.lock().expect("ai lock"),
        })
    }

    /// `ai list`.
    pub fn list(&self) -> Result<Value, RuleError> {
        let rules = self.db().rules()?;
        Ok(Value::Array(
            rules
                .iter()
                .map(|r| {
                    let mut v = json!({"id": r.id, "jail": r.jail, "status": r.status.as_str(),
                           "filter": r.detail["filter"], "failregex": r.detail["failregex"]});
                    if r.status == RuleStatus::Invalid {
                        v["reason"] = r.detail["reason"].clone();
                    }
                    v
                })
                .collect(),
        ))
    }

    fn rule(&self, id: &str) -> Result<Rule, RuleError> {
        self.db()
            .rule(id)?
            .ok_or_else(|| RuleError::NoRule(id.to_string()))
    }

    /// `ai show <id>`.
    pub fn show(&self, id: &str) -> Result<Value, RuleError> {
        let r = self.rule(id)?;
        Ok(
            json!({"id": r.id, "jail": r.jail, "status": r.status.as_str(), "template": r.template,
                  "created": r.created, "detail": r.detail,
                  "filter file": writer::filter_text(&r)}),
        )
    }

    /// `ai approve <id>`: a suggested filter moves into filter.d and gets
    /// its jail; an enforced one loses its bantime cap.
    pub fn approve(&self, id: &str) -> Result<Value, RuleError> {
        let mut r = self.rule(id)?;
        if !r.status.is_checked() {
            return Err(RuleError::Status {
                id: id.to_string(),
                status: r.status,
            });
        }
        r.status = RuleStatus::Approved;
        let pending = writer::filter_path(&self.conf_dir, &r, true);
        let _ = std::fs::remove_file(pending);
        self.install(&r)?;
        self.audit(
            Some(&r.jail),
            "approve",
            Some(&r.template),
            json!({"id": id}),
        );
        Ok(json!(format!("rule {id} approved")))
    }

    /// `ai reject <id>`: the filter goes, the shape is recorded benign.
    pub fn reject(&self, id: &str) -> Result<Value, RuleError> {
        let mut r = self.rule(id)?;
        for pending in [true, false] {
            let _ = std::fs::remove_file(writer::filter_path(&self.conf_dir, &r, pending));
        }
        r.status = RuleStatus::Rejected;
        self.db().put_rule(&r)?;
        self.write_jails()?;
        self.put_verdict(&r.template, "benign", 0, FOREVER);
        self.audit(
            Some(&r.jail),
            "reject",
            Some(&r.template),
            json!({"id": id}),
        );
        Ok(json!(format!("rule {id} rejected")))
    }

    /// `ai test <line>`: the whole pipeline on one line, nothing written
    /// and nothing cached. `addr` is the prescreen's answer.
    pub async fn test(&self, jail: &str, line: &str, addr: Result<String, Dropped>) -> Value {
        let line = super::cut(line, super::MAX_LINE);
        let key = template::key(line);
        if let Err(why) = addr {
            return json!({"template": key, "prescreen": format!("{why:?}")});
        }
        let samples = [line.to_string()];
        let Some((client, addr)) = shape::decide(&samples).and_then(|c| {
            let a = shape::address_of(line, &c)?.1;
            Some((c, a))
        }) else {
            return json!({"template": key, "prescreen": "no address that can be the client"});
        };
        let cached = self
            .store
            .lookup_verdict(&key, now())
            .ok()
            .flatten()
            .map(|v| v.verdict);
        let t = now();
        if let Err(why) = {
            let mut b = self.budget.lock().expect("ai lock");
            b.check(t).map(|_| b.sent(t))
        } {
            return json!({"template": key, "addr": addr, "cached": cached,
                          "error": format!("budget: {why:?}")});
        }
        let user = prompt::message(&Question {
            service: jail,
            samples: &samples,
            client: &addr,
            position: client.slot + 1,
            rejected: None,
        });
        let reply = match self.client.ask(user).await {
            Ok(r) => r,
            Err(e) => {
                return json!({"template": key, "addr": addr, "cached": cached, "error": e.to_string()})
            }
        };
        self.budget
            .lock()
            .expect("ai lock")
            .answered(now(), reply.tokens);
        let a = match answer::parse(&reply.content) {
            Ok(a) => a,
            Err(e) => {
                return json!({"template": key, "addr": addr, "cached": cached, "answer": e.to_string()})
            }
        };
        let mut out = json!({"template": key, "addr": addr, "cached": cached,
                             "verdict": a.verdict, "reason": a.reason, "failregex": a.failregex});
        if let Some(re) = &a.failregex {
            let (benign, recent) = self.evidence.lines(jail, &key);
            let report = validate::validate(
                re,
                &Evidence {
                    samples: &samples,
                    client: &client,
                    benign: &benign,
                    recent: &recent,
                },
            );
            out["valid"] = json!(report.ok());
            out["checks"] = json!(report.checks);
        }
        out
    }
}
