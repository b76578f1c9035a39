//! The AI part at run time: an intake task that keys and caches the lines
//! the jails hand over, and an asker task that takes queued lines to the
//! model within the budget, validates the answers and writes the rules.
//! The jails only ever `try_send` into a bounded channel: a slow model, a
//! dead server or a flood of lines costs them nothing but a drop counter.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

use super::answer::{self, Judgement};
use super::budget::Budget;
use super::client::{CallError, KeyError, LlmClient, Reply};
use super::evidence;
use super::intake::Intake;
use super::metrics::{Given, Verdicts};
use super::prompt::{self, Question};
use super::records::{self, Judged};
use super::shape::{self, Client};
use super::validate::{self, Evidence};
use super::{template, writer, Mode, Settings};
use crate::store::{AiStore, EvidenceKind, QueuedLine, Rule, RuleStatus, Store};

/// Unix time now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Verdicts that hold "for ever" (attack, rejected rules): ten years.
pub(super) const FOREVER: f64 = 10.0 * 365.0 * 86_400.0;
/// A rejected answer or refused request is asked again after a day.
pub(super) const RETRY_ERROR: f64 = 86_400.0;
/// The verdict of a shape queued or being asked about.
const PENDING: &str = "pending";

/// One line a jail's filter did not match.
#[derive(Debug, Clone)]
pub struct Unmatched {
    /// The jail.
    pub jail: String,
    /// Its `ai` mode.
    pub mode: Mode,
    /// Its `ai_max_bantime`.
    pub max_bantime: Option<f64>,
    /// The line, cut to [`super::MAX_LINE`].
    pub line: String,
    /// The remote address the prescreen found, if it let the line through.
    pub addr: Option<String>,
}

/// The jails' end of the channel.
#[derive(Clone, Debug)]
pub struct AiHandle {
    tx: mpsc::Sender<Unmatched>,
    dropped: Arc<AtomicU64>,
}

impl AiHandle {
    /// Hands a line over, or counts it dropped when the channel is full.
    pub fn offer(&self, u: Unmatched) {
        if self.tx.try_send(u).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct JailAi {
    pub(super) mode: Mode,
    max_bantime: Option<f64>,
}

/// One question as it was asked.
struct Asked<'a> {
    q: &'a QueuedLine,
    samples: &'a [String],
    client: &'a Client,
    /// Whether it was asked again after a rejected answer.
    retried: bool,
}

/// A queued line on its way to the model.
struct Pending {
    q: QueuedLine,
    samples: Vec<String>,
    client: Client,
    /// Whether it is asked again after a rejected answer.
    retried: bool,
    /// What is sent.
    message: String,
}

/// What the asker does next.
enum Next {
    Ask(Box<Pending>),
    /// A line dropped without asking: take the next.
    Skip,
    /// Nothing to ask now (queue empty, or the budget holds).
    Hold,
}

/// The running AI part.
pub struct Ai {
    pub(super) settings: Settings,
    pub(super) client: LlmClient,
    pub(super) store: Arc<dyn Store>,
    pub(super) conf_dir: PathBuf,
    pub(super) jails: Mutex<HashMap<String, JailAi>>,
    /// What rules are tested against, kept in the store.
    pub(super) evidence: evidence::Sample,
    /// New shapes until they are queued, and the queue's order.
    pub(super) intake: Intake,
    pub(super) budget: Mutex<Budget>,
    pub(super) dropped: Arc<AtomicU64>,
    pub(super) cache_hits: AtomicU64,
    /// The model's verdicts, for the metrics.
    pub(super) verdicts: Verdicts,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) wake: Notify,
}

impl std::fmt::Debug for Ai {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ai")
            .field("settings", &self.settings)
            .finish()
    }
}

fn rule_id(template: &str) -> String {
    let d = Md5::digest(template.as_bytes());
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Why the AI part stays off.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Off {
    /// Neither `OPENAI_API_KEY` nor `key_file` gives a key.
    #[error("no API key (set OPENAI_API_KEY or [AI] key_file)")]
    NoKey,
    /// A credential is there but unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// There is no database to keep verdicts and rules in.
    #[error("it needs the database (dbfile)")]
    NoDatabase,
    /// The directory the rules' jails are written to cannot be made.
    #[error("cannot create {dir}: {error}")]
    ConfDir {
        /// `jail.d` of the configuration.
        dir: String,
        /// Why.
        error: std::io::Error,
    },
}

impl Ai {
    /// Starts the AI part, or says in one log line why it stays off.
    pub fn start(
        settings: Settings,
        store: Option<Arc<dyn Store>>,
        conf_dir: &str,
    ) -> Result<(Arc<Ai>, AiHandle), Off> {
        Ai::try_start(settings, store, conf_dir).inspect_err(|e| match e {
            Off::NoKey | Off::NoDatabase => tracing::warn!("AI rule generator off: {e}"),
            _ => tracing::error!("AI rule generator off: {e}"),
        })
    }

    fn try_start(
        settings: Settings,
        store: Option<Arc<dyn Store>>,
        conf_dir: &str,
    ) -> Result<(Arc<Ai>, AiHandle), Off> {
        let creds = super::client::credentials(settings.key_file.as_deref())?.ok_or(Off::NoKey)?;
        let store = store.filter(|s| s.ai().is_some()).ok_or(Off::NoDatabase)?;
        // The config watcher starts after the jails and watches only the
        // directories that exist then: jail.d must, for ai.local to load.
        let dir = std::path::Path::new(conf_dir).join("jail.d");
        std::fs::create_dir_all(&dir).map_err(|error| Off::ConfDir {
            dir: dir.display().to_string(),
            error,
        })?;
        let (tx, rx) = mpsc::channel(settings.queue_size);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut budget = Budget::new(&settings);
        restore_today(store.as_ref(), &mut budget);
        let shapes = Intake::new(&settings, store.ai().expect("checked above"));
        let queued = shapes.queued_len();
        let ai = Arc::new(Ai {
            client: LlmClient::new(&settings, &creds),
            settings,
            evidence: evidence::Sample::new(store.clone()),
            store,
            conf_dir: PathBuf::from(conf_dir),
            jails: Mutex::new(HashMap::new()),
            intake: shapes,
            budget: Mutex::new(budget),
            dropped: dropped.clone(),
            cache_hits: AtomicU64::new(0),
            verdicts: Verdicts::default(),
            last_error: Mutex::new(None),
            wake: Notify::new(),
        });
        match ai
            .db()
            .rules()
            .map_err(std::io::Error::other)
            .and_then(|rules| writer::refresh_jails(&ai.conf_dir, &rules))
        {
            Ok(true) => tracing::info!("AI: jail.d/ai.local written again from the rules"),
            Ok(false) => {}
            Err(e) => tracing::error!("AI: jail.d/ai.local: {e}"),
        }
        tracing::info!(
            "AI rule generator on: model {} at {} ({queued} lines queued)",
            ai.settings.model,
            ai.settings.base_url
        );
        tokio::spawn(intake(ai.clone(), rx));
        tokio::spawn(asker(ai.clone()));
        Ok((ai, AiHandle { tx, dropped }))
    }

    pub(super) fn db(&self) -> &dyn AiStore {
        self.store.ai().expect("checked at start")
    }

    /// Records a jail's mode (at start and reload).
    pub fn set_jail(&self, jail: &str, mode: Mode, max_bantime: Option<f64>) {
        let mut j = self.jails.lock().expect("ai lock");
        if mode == Mode::Off {
            j.remove(jail);
        } else {
            j.insert(jail.to_string(), JailAi { mode, max_bantime });
        }
        drop(j);
        self.wake.notify_one();
    }

    pub(super) fn audit(
        &self,
        jail: Option<&str>,
        kind: &str,
        template: Option<&str>,
        detail: Value,
    ) {
        records::audit(self.store.as_ref(), now(), jail, kind, template, detail);
    }

    pub(super) fn put_verdict(&self, template: &str, verdict: &str, tokens: u64, ttl: f64) {
        let j = Judged {
            template,
            verdict,
            model: &self.settings.model,
            tokens,
        };
        records::verdict(self.store.as_ref(), &j, now(), ttl);
    }

    /// One line from a jail: cached shapes stop here, new ones are queued.
    fn take(&self, u: Unmatched) {
        self.jails.lock().expect("ai lock").insert(
            u.jail.clone(),
            JailAi {
                mode: u.mode,
                max_bantime: u.max_bantime,
            },
        );
        let key = template::key(&u.line);
        let kind = EvidenceKind::Recent;
        self.evidence.note(&u.jail, kind, &key, &u.line, now());
        let Some(addr) = u.addr else {
            return;
        };
        match self.store.lookup_verdict(&key, now()) {
            Ok(Some(v)) => {
                if v.verdict == "benign" {
                    let kind = EvidenceKind::Benign;
                    self.evidence.note(&u.jail, kind, &key, &u.line, now());
                }
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                if v.verdict == PENDING {
                    self.intake
                        .seen_again(self.db(), &u.jail, &key, &u.line, &addr);
                }
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("AI verdict cache: {e}");
                return;
            }
        }
        let Some(a) = self
            .intake
            .admit(self.db(), &u.jail, &key, u.line, &addr, now())
        else {
            return;
        };
        if let Some(gone) = &a.displaced {
            // Its lines may queue it again.
            self.put_verdict(gone, PENDING, 0, 0.0);
        }
        // Pending until answered: the shape is asked once, however many
        // lines of it arrive meanwhile.
        self.put_verdict(&key, PENDING, 0, FOREVER);
        self.push(a.line);
    }

    fn push(&self, q: QueuedLine) {
        if self.intake.push(self.db(), &q) {
            self.wake.notify_one();
        }
    }

    fn next_queued(&self) -> Option<QueuedLine> {
        let jails = self.jails.lock().expect("ai lock").clone();
        self.db()
            .queue_peek(100)
            .ok()?
            .into_iter()
            .find(|q| jails.contains_key(&q.jail))
    }

    fn dequeue(&self, q: &QueuedLine) {
        self.intake.dequeue(self.db(), q);
    }

    /// Takes queued lines to the model while the budget allows. Only the
    /// request waits on the runtime; the store's reads and writes before
    /// and after it run on the blocking pool.
    async fn drain(self: &Arc<Self>) {
        loop {
            let ai = self.clone();
            let next = match tokio::task::spawn_blocking(move || ai.next_question()).await {
                Ok(next) => next,
                Err(e) => return tracing::error!("AI: {e}"),
            };
            let question = match next {
                Next::Ask(question) => question,
                Next::Skip => continue,
                Next::Hold => return,
            };
            let reply = self.client.ask(question.message.clone()).await;
            let ai = self.clone();
            match tokio::task::spawn_blocking(move || ai.answered(&question, reply)).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return tracing::error!("AI: {e}"),
            }
        }
    }

    /// The next queued line to ask about, within the budget. Blocks on
    /// SQLite.
    fn next_question(&self) -> Next {
        let Some(q) = self.next_queued() else {
            return Next::Hold;
        };
        let t = now();
        {
            let mut b = self.budget.lock().expect("ai lock");
            if let Err(why) = b.check(t) {
                tracing::debug!("AI: holding {} queued lines: {why:?}", self.queued_len());
                return Next::Hold;
            }
            b.sent(t);
        }
        let samples: Vec<String> = q.line.split('\n').map(String::from).collect();
        let Some((client, addr)) = shape::decide(&samples).and_then(|c| {
            let a = shape::address_of(&samples[0], &c)?.1;
            Some((c, a))
        }) else {
            // Queued by another version, or ambiguous: never guess.
            self.dequeue(&q);
            self.put_verdict(&q.template, "error", 0, RETRY_ERROR);
            return Next::Skip;
        };
        let rejected = self.pending_retry(&q.template);
        self.audit(
            Some(&q.jail),
            "request",
            Some(&q.template),
            json!({"addr": addr, "samples": samples.len(), "retry": rejected.is_some()}),
        );
        let message = prompt::message(&Question {
            service: &q.jail,
            samples: &samples,
            client: &addr,
            position: client.slot + 1,
            rejected: rejected.as_deref(),
        });
        Next::Ask(Box::new(Pending {
            q,
            samples,
            client,
            retried: rejected.is_some(),
            message,
        }))
    }

    /// Records the model's reply to `question` and acts on it; false when
    /// draining must stop for now. Blocks on SQLite and files.
    fn answered(&self, question: &Pending, reply: Result<Reply, CallError>) -> bool {
        let q = &question.q;
        match reply {
            Err(CallError::Temporary(e)) => {
                tracing::warn!("AI: request failed, line stays queued: {e}");
                self.budget.lock().expect("ai lock").failed(now());
                *self.last_error.lock().expect("ai lock") = Some(e.clone());
                self.audit(
                    Some(&q.jail),
                    "error",
                    Some(&q.template),
                    json!({"error": e}),
                );
                false
            }
            Err(CallError::Refused(e)) => {
                tracing::error!("AI: request refused: {e}");
                self.dequeue(q);
                self.put_verdict(&q.template, "error", 0, RETRY_ERROR);
                self.audit(
                    Some(&q.jail),
                    "error",
                    Some(&q.template),
                    json!({"error": e}),
                );
                true
            }
            Ok(reply) => {
                self.budget
                    .lock()
                    .expect("ai lock")
                    .answered(now(), reply.tokens);
                self.audit(
                    Some(&q.jail),
                    "answer",
                    Some(&q.template),
                    json!({"tokens": reply.tokens, "content": super::cut(&reply.content, 4000)}),
                );
                self.dequeue(q);
                let mode = self.jails.lock().expect("ai lock").get(&q.jail).copied();
                if let Some(j) = mode {
                    let asked = Asked {
                        q,
                        samples: &question.samples,
                        client: &question.client,
                        retried: question.retried,
                    };
                    self.judge(&asked, &reply.content, reply.tokens, j);
                }
                true
            }
        }
    }

    fn queued_len(&self) -> u64 {
        self.intake.queued_len()
    }

    /// The reason the last answer about `template` was rejected, when the
    /// shape is being asked again because of it.
    fn pending_retry(&self, template: &str) -> Option<String> {
        let r = self.db().rule(&rule_id(template)).ok().flatten()?;
        (r.status == RuleStatus::Invalid && r.detail["retry"] == true)
            .then(|| r.detail["reason"].as_str().unwrap_or("").to_string())
    }

    /// Records a rejected answer where `ai list` shows it; the first
    /// rejection of a shape asks again at once with the reason, the second
    /// waits [`RETRY_ERROR`].
    fn reject_answer(&self, a: &Asked<'_>, tokens: u64, reason: &str, detail: Value) {
        let q = a.q;
        tracing::warn!("[{}] AI answer rejected: {reason}", q.jail);
        self.verdicts.count(Given::Invalid);
        let again = !a.retried;
        let id = rule_id(&q.template);
        let kept = self.db().rule(&id).ok().flatten();
        if kept.is_none_or(|r| r.status == RuleStatus::Invalid) {
            let rule = Rule {
                id,
                jail: q.jail.clone(),
                template: q.template.clone(),
                status: RuleStatus::Invalid,
                created: now(),
                detail: json!({
                    "reason": reason,
                    "failregex": detail.get("failregex"),
                    "model": self.settings.model,
                    "sample": super::cut(&q.line, 1000),
                    "addr": q.addr,
                    "retry": again,
                }),
            };
            if let Err(e) = self.db().put_rule(&rule) {
                tracing::error!("AI rules: {e}");
            }
        }
        if again {
            self.push(QueuedLine { id: 0, ..q.clone() });
        } else {
            self.put_verdict(&q.template, "error", tokens, RETRY_ERROR);
        }
        self.audit(
            Some(&q.jail),
            "rejected",
            Some(&q.template),
            json!({"reason": reason, "detail": detail, "asked again": again}),
        );
    }

    /// Reads an answer, validates a proposed rule, and writes it as the
    /// jail's mode says.
    fn judge(&self, asked: &Asked<'_>, content: &str, tokens: u64, j: JailAi) {
        let q = asked.q;
        let a = match answer::parse(content) {
            Ok(a) => a,
            Err(e) => return self.reject_answer(asked, tokens, &e.to_string(), Value::Null),
        };
        if a.verdict == Judgement::Benign {
            self.verdicts.count(Given::Benign);
            self.put_verdict(&q.template, "benign", tokens, self.settings.benign_ttl);
            self.audit(
                Some(&q.jail),
                "benign",
                Some(&q.template),
                json!({"line": q.line, "reason": a.reason}),
            );
            self.evidence
                .benign(&q.jail, &q.template, asked.samples, now());
            return;
        }
        let re = a.failregex.clone().unwrap_or_default();
        let (benign, recent) = self.evidence.lines(&q.jail, &q.template);
        let report = validate::validate(
            &re,
            &Evidence {
                samples: asked.samples,
                client: asked.client,
                benign: &benign,
                recent: &recent,
            },
        );
        if let Some(why) = report.failure() {
            return self.reject_answer(asked, tokens, &why, json!({"failregex": re}));
        }
        let status = match j.mode {
            Mode::Observe | Mode::Off => RuleStatus::Observed,
            Mode::Suggest => RuleStatus::Pending,
            Mode::Enforce => RuleStatus::Active,
        };
        let max_bantime = j
            .max_bantime
            .map_or(self.settings.max_bantime, |b| b as u64);
        let rule = Rule {
            id: rule_id(&q.template),
            jail: q.jail.clone(),
            template: q.template.clone(),
            status,
            created: now(),
            detail: json!({
                "failregex": re,
                "model": self.settings.model,
                "category": a.category,
                "reason": a.reason,
                "confidence": a.confidence,
                "sample": super::cut(&asked.samples[0], 1000),
                "samples": asked.samples.len(),
                "addr": q.addr,
                "maxretry": a.maxretry,
                "findtime": a.findtime,
                "bantime": a.bantime,
                "min_maxretry": self.settings.min_maxretry,
                "max_bantime": max_bantime,
                "filter": writer::filter_name(&q.jail, &rule_id(&q.template)),
                "checks": report.checks,
            }),
        };
        if let Err(e) = self.install(&rule) {
            return self.reject_answer(asked, tokens, &format!("cannot write: {e}"), Value::Null);
        }
        self.verdicts.count(Given::Attack);
        self.put_verdict(&q.template, "attack", tokens, FOREVER);
        self.audit(
            Some(&q.jail),
            "rule",
            Some(&q.template),
            json!({"id": rule.id, "status": status.as_str(), "failregex": rule.detail["failregex"]}),
        );
        tracing::info!(
            "[{}] AI rule {} ({status}): {}",
            q.jail,
            rule.id,
            rule.detail["failregex"]
        );
    }

    /// Writes a rule's files for its status and records it.
    pub(super) fn install(&self, rule: &Rule) -> std::io::Result<()> {
        let pending = rule.status == RuleStatus::Pending;
        if rule.status != RuleStatus::Observed {
            let path = writer::filter_path(&self.conf_dir, rule, pending);
            writer::write_atomic(&path, &writer::filter_text(rule))?;
        }
        self.db().put_rule(rule).map_err(std::io::Error::other)?;
        if rule.status.is_loaded() {
            self.write_jails()?;
        }
        Ok(())
    }

    pub(super) fn write_jails(&self) -> std::io::Result<()> {
        let rules = self.db().rules().map_err(std::io::Error::other)?;
        writer::write_jails(&self.conf_dir, &rules)
    }
}

/// Today's requests and tokens, from the audit trail, so that a restart
/// does not reset the daily budget.
fn restore_today(store: &dyn Store, budget: &mut Budget) {
    let t = now();
    let midnight = (t / 86_400.0).floor() * 86_400.0;
    let Ok(entries) = store.audit_entries(midnight, 1_000_000) else {
        return;
    };
    for (_, e) in entries {
        match e.kind.as_str() {
            "request" => budget.sent(e.time.max(midnight)),
            "answer" => budget.answered(
                e.time.max(midnight),
                e.detail["tokens"].as_u64().unwrap_or(0),
            ),
            _ => {}
        }
    }
}

async fn intake(ai: Arc<Ai>, mut rx: mpsc::Receiver<Unmatched>) {
    while let Some(u) = rx.recv().await {
        let ai = ai.clone();
        // Short SQLite calls, kept off the runtime's worker threads.
        let _ = tokio::task::spawn_blocking(move || ai.take(u)).await;
    }
}

async fn asker(ai: Arc<Ai>) {
    loop {
        tokio::select! {
            _ = ai.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if ai.evidence.due(now()) {
            let ai = ai.clone();
            // A batch of evidence no further line came to write.
            let _ = tokio::task::spawn_blocking(move || ai.evidence.flush()).await;
        }
        if ai.queued_len() > 0 {
            ai.drain().await;
        }
    }
}
