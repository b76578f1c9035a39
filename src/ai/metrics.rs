//! What the metrics endpoint shows of the AI rule generator: the model's
//! verdicts, counted as they are given (nothing else keeps them: the
//! cache forgets expired benign shapes), and at scrape time the numbers
//! kept elsewhere (requests and tokens by the client, the queue by the
//! intake, the rules in the store).

use std::sync::atomic::{AtomicU64, Ordering};

use super::pipeline::Ai;
use crate::metrics::AiSample;
use crate::store::RuleStatus;

/// The model's verdicts since the AI started.
#[derive(Debug, Default)]
pub(super) struct Verdicts {
    attack: AtomicU64,
    benign: AtomicU64,
    invalid: AtomicU64,
}

/// What the model answered about a shape.
#[derive(Debug, Clone, Copy)]
pub(super) enum Given {
    /// A rule that passed the checks.
    Attack,
    Benign,
    /// An answer that could not be read or whose rule failed a check.
    Invalid,
}

impl Verdicts {
    pub(super) fn count(&self, v: Given) {
        let n = match v {
            Given::Attack => &self.attack,
            Given::Benign => &self.benign,
            Given::Invalid => &self.invalid,
        };
        n.fetch_add(1, Ordering::Relaxed);
    }

    fn by_kind(&self) -> Vec<(&'static str, u64)> {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        vec![
            ("attack", get(&self.attack)),
            ("benign", get(&self.benign)),
            ("invalid", get(&self.invalid)),
        ]
    }
}

impl Ai {
    /// The AI's numbers for a scrape. Blocks on SQLite (the rules by
    /// status): call it off the runtime threads. A store that cannot be
    /// read shows no rules rather than failing the scrape.
    pub fn metrics_sample(&self) -> AiSample {
        let counts = self.db().rule_counts().unwrap_or_else(|e| {
            tracing::warn!("metrics: AI rules: {e}");
            Vec::new()
        });
        let rules = RuleStatus::ALL
            .iter()
            .map(|s| {
                let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
                (s.as_str(), n)
            })
            .collect();
        let usage = self.client.usage();
        AiSample {
            requests: usage.requests,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            verdicts: self.verdicts.by_kind(),
            rules,
            queue: self.intake.queued_len(),
        }
    }
}
