//! A [`Snapshot`] as OpenMetrics text, through prometheus-client.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
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
                let labels = [("jail", j.jail.as_str())];
                let sample = family.encode_family(&labels)?;
                let v = (m.value)(j);
                match m.kind {
                    MetricType::Counter => ConstCounter::new(v).encode(sample)?,
                    _ => ConstGauge::new(v as i64).encode(sample)?,
                }
            }
        }
        self.encode_actions(&mut enc)?;
        self.encode_process(&mut enc)
    }
}

impl Snapshot {
    fn encode_actions(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [(&str, &str, fn(&super::actions::ActionRuns) -> u64); 2] = [
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
                let labels = [("jail", jail.as_str()), ("action", action.as_str())];
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
            let labels = [("jail", jail.as_str()), ("action", action.as_str())];
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
