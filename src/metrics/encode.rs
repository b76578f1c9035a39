//! A [`Snapshot`] as OpenMetrics text, through prometheus-client.

use std::borrow::Cow;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::actions::BUCKETS;
use super::sample::{JailSample, Snapshot};

/// The snapshot as the text a scrape answers (OpenMetrics 1.0, `# EOF`
/// included).
pub fn render(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    // Writing into a String fails only if a label value cannot be
    // written, which text never does.
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("encoding into a String");
    out
}

/// A label value as OpenMetrics writes it: prometheus-client writes values
/// as they are, and a log file's name (a glob's match in a directory a
/// local user may write to) could otherwise end the label and the line
/// and add samples of its own.
fn escaped(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A count as a counter or a gauge.
fn encode_count(sample: MetricEncoder, kind: MetricType, n: u64) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(n).encode(sample),
        _ => ConstGauge::new(n as i64).encode(sample),
    }
}

/// A family of counts under one label: name, help, label, type, and
/// (label value, count).
type Labelled<'a> = (
    &'static str,
    &'static str,
    &'static str,
    MetricType,
    Vec<(&'a str, u64)>,
);

/// One count of an action's runs.
type RunCount = fn(&super::actions::ActionRuns) -> u64;

/// A metric of each jail.
struct PerJail {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: fn(&JailSample) -> u64,
}

const PER_JAIL: &[PerJail] = &[
    PerJail {
        name: "fail3ban_lines_read",
        help: "Log lines and journal entries the jail's filter read.",
        kind: MetricType::Counter,
        value: |j| j.lines_read,
    },
    PerJail {
        name: "fail3ban_lines_matched",
        help: "Lines that gave the jail at least one failure.",
        kind: MetricType::Counter,
        value: |j| j.lines_matched,
    },
    PerJail {
        name: "fail3ban_failures",
        help: "Failures the jail counted (Total failed).",
        kind: MetricType::Counter,
        value: |j| j.failures_total,
    },
    PerJail {
        name: "fail3ban_bans",
        help: "Bans the jail made (Total banned).",
        kind: MetricType::Counter,
        value: |j| j.bans_total,
    },
    PerJail {
        name: "fail3ban_unbans",
        help: "Bans of the jail that ended or were lifted.",
        kind: MetricType::Counter,
        value: |j| j.unbans_total,
    },
    PerJail {
        name: "fail3ban_banned",
        help: "Ids banned now (Currently banned).",
        kind: MetricType::Gauge,
        value: |j| j.banned,
    },
    PerJail {
        name: "fail3ban_failed",
        help: "Ids with failures counted now (Currently failed).",
        kind: MetricType::Gauge,
        value: |j| j.failed,
    },
];

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for m in PER_JAIL {
            let mut family = enc.encode_descriptor(m.name, m.help, None, m.kind)?;
            for j in &self.jails {
                let labels = [("jail", escaped(&j.jail))];
                encode_count(family.encode_family(&labels)?, m.kind, (m.value)(j))?;
            }
        }
        let mut family = enc.encode_descriptor(
            "fail3ban_source_lag",
            "Bytes written to the log file that the jail has not read yet.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for s in &self.sources {
            let labels = [("jail", escaped(&s.jail)), ("source", escaped(&s.source))];
            ConstGauge::new(s.bytes as i64).encode(family.encode_family(&labels)?)?;
        }
        let mut family = enc.encode_descriptor(
            "fail3ban_source_lag",
            "Seconds from the newest journal entry the jail read to now.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (jail, seconds) in &self.journal_lags {
            let labels = [
                ("jail", escaped(jail)),
                ("source", Cow::Borrowed("journal")),
            ];
            ConstGauge::new(*seconds).encode(family.encode_family(&labels)?)?;
        }
        self.encode_actions(&mut enc)?;
        self.encode_ai(&mut enc)?;
        self.encode_process(&mut enc)
    }
}

impl Snapshot {
    fn encode_actions(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [(&str, &str, RunCount); 2] = [
            (
                "fail3ban_action_runs",
                "Commands the action ran (start, ban, unban, check, flush, stop...).",
                |r| r.runs,
            ),
            (
                "fail3ban_action_failures",
                "Commands of the action that failed or timed out.",
                |r| r.failures,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (jail, action, runs) in &self.actions {
                let labels = [("jail", escaped(jail)), ("action", escaped(action))];
                ConstCounter::new(value(runs)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = enc.encode_descriptor(
            "fail3ban_action_duration",
            "How long the action's commands ran.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (jail, action, runs) in &self.actions {
            let labels = [("jail", escaped(jail)), ("action", escaped(action))];
            // Per bucket: the encoder writes them cumulated, f64::MAX as +Inf.
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX))
                .zip(runs.per_bucket)
                .collect();
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(runs.seconds, runs.runs, &buckets, None)?;
        }
        Ok(())
    }

    /// The AI's metrics, absent while it is off.
    fn encode_ai(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(ai) = &self.ai else {
            return Ok(());
        };
        let family = enc.encode_descriptor(
            "fail3ban_ai_requests",
            "Requests sent to the model.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(ai.requests).encode(family)?;
        let labelled: [Labelled; 3] = [
            (
                "fail3ban_ai_tokens",
                "Tokens the model's answers cost, as it reported them.",
                "kind",
                MetricType::Counter,
                vec![
                    ("prompt", ai.prompt_tokens),
                    ("completion", ai.completion_tokens),
                ],
            ),
            (
                "fail3ban_ai_verdicts",
                "Answers of the model: attack (a rule that passed the checks), benign, invalid.",
                "verdict",
                MetricType::Counter,
                ai.verdicts.clone(),
            ),
            (
                "fail3ban_ai_rules",
                "AI rules in the store, by status.",
                "status",
                MetricType::Gauge,
                ai.rules.clone(),
            ),
        ];
        for (name, help, label, kind, values) in labelled {
            let mut family = enc.encode_descriptor(name, help, None, kind)?;
            for (value, n) in values {
                let labels = [(label, value)];
                encode_count(family.encode_family(&labels)?, kind, n)?;
            }
        }
        let family = enc.encode_descriptor(
            "fail3ban_ai_queue_length",
            "Lines waiting to be asked about.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(ai.queue as i64).encode(family)
    }

    fn encode_process(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = &self.process else {
            return Ok(());
        };
        let gauge = |enc: &mut DescriptorEncoder, name, help, unit, v: f64| {
            let family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
            ConstGauge::new(v).encode(family)
        };
        gauge(
            enc,
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            p.resident_memory_bytes as f64,
        )?;
        gauge(
            enc,
            "process_open_fds",
            "Open file descriptors.",
            None,
            p.open_fds as f64,
        )?;
        gauge(
            enc,
            "process_start_time",
            "Start time of the process since the epoch.",
            Some(&Unit::Seconds),
            p.start_time_seconds,
        )?;
        let family = enc.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        ConstCounter::new(p.cpu_seconds).encode(family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sample::SourceLag;

    /// A file named to close the label and add a line of its own stays
    /// one label value of one sample.
    #[test]
    fn hostile_source_name_stays_a_label() {
        let name = "/var/log/x\"} 1\nfail3ban_bans_total{jail=\"sshd\\";
        let text = render(Snapshot {
            sources: vec![SourceLag {
                jail: "web".into(),
                source: name.into(),
                bytes: 5,
            }],
            ..Snapshot::default()
        });
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("x\\\"")).collect();
        assert_eq!(
            lines,
            [
                r#"fail3ban_source_lag_bytes{jail="web",source="/var/log/x\"} 1\nfail3ban_bans_total{jail=\"sshd\\"} 5"#
            ],
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("fail3ban_bans_total")),
            "{text}"
        );
        assert_eq!(escaped("plain"), "plain");
    }
}
