//! One Prometheus registry for the whole process, one family of metrics for every service.
//!
//! Like Vector's `component_*` metrics, each family is shared by all services and told apart by
//! the `service` label, so one dashboard serves all four (and `run all` serves one registry).
//! Labels are service names, topic names, partition numbers, reason codes, outcomes and event
//! types — never user data. Event types are producer-chosen, so their label values are capped
//! ([`MAX_TYPE_LABELS`]); the rest fold into `other`.
//!
//! The books balance per service: `consumed = Σ processed{outcome}` where outcome is one of
//! `emitted`, `sampled_out`, `ignored`, `dead_lettered` (docs/operations.md). Counts are applied
//! only when the work is committed, so an aborted transaction is not counted twice.
//!
//! The security monitor's detection engine adds the `auditflow_detect_*` families through
//! [`EngineCounts`]: their labels are the engine's enums ([`Rule`], [`ThreatLevel`]) and
//! static action names, so no ip or user id can become a label value.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use auditflow_core::detect::{Rule, ThreatLevel};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use rdkafka::statistics::Statistics;

use crate::kafka::at_least_once::WriteFault;
use crate::kafka::rebalance::lock;
use crate::kafka::records::Partition;

/// Distinct `type` label values kept per process before folding into `other`.
pub const MAX_TYPE_LABELS: usize = 500;

/// How one consumed record was accounted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Emitted,
    SampledOut,
    Ignored,
    DeadLettered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Emitted => "emitted",
            Outcome::SampledOut => "sampled_out",
            Outcome::Ignored => "ignored",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

struct Families {
    consumed: IntCounterVec,
    processed: IntCounterVec,
    emitted: IntCounterVec,
    sampled_out: IntCounterVec,
    ignored: IntCounterVec,
    dead_lettered: IntCounterVec,
    consumer_lag: IntGaugeVec,
    assigned_partitions: IntGaugeVec,
    in_flight: IntGaugeVec,
    in_flight_bytes: IntGaugeVec,
    write_errors: IntCounterVec,
    batch_write: HistogramVec,
    end_to_end: HistogramVec,
    transactions: IntCounterVec,
    too_late: IntCounterVec,
    future_dated: IntCounterVec,
    unparsable_ips: IntCounterVec,
    evicted_keys: IntCounterVec,
    tracked_keys: IntGaugeVec,
    state_bytes: IntGaugeVec,
    active_blocks: IntGaugeVec,
    alerts: IntCounterVec,
    actions: IntCounterVec,
    type_labels: Mutex<HashSet<String>>,
}

/// What a stateful transform's engine did since it was last asked (today: the security
/// monitor's detection engine). The counters count live judgements only — replaying history
/// after a rebalance rebuilds state and counts nothing again — and the harness applies them
/// with the transaction of the work they count; the gauges are a snapshot of the engine now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineCounts {
    /// Events further behind their key than the grace period: not judged by the rules there.
    pub too_late: u64,
    /// Events dated further ahead than the allowed clock skew: judged at the detector's
    /// clock, which they did not move.
    pub future_dated: u64,
    /// Events naming an ip that is not an ip address (no source ip, never a key).
    pub unparsable_ips: u64,
    /// Keys dropped from the windows: idle, or the stalest at the `max_keys` or byte cap.
    pub evicted_keys: u64,
    /// Alerts raised, by rule and level.
    pub alerts: BTreeMap<(Rule, ThreatLevel), u64>,
    /// Actions emitted, by action name (`block_ip`, `disable_account`).
    pub actions: BTreeMap<&'static str, u64>,
    /// Keys in the windows now, over every rule family and owned partition.
    pub tracked_keys: usize,
    /// Ips blocked now (blocklist entries whose tombstone has not gone out yet).
    pub active_blocks: usize,
    /// What the engine's state weighs now, in bytes.
    pub state_bytes: usize,
}

impl EngineCounts {
    /// Adds `later`'s counters to these and takes its snapshot.
    pub fn merge(&mut self, later: EngineCounts) {
        self.too_late += later.too_late;
        self.future_dated += later.future_dated;
        self.unparsable_ips += later.unparsable_ips;
        self.evicted_keys += later.evicted_keys;
        for (key, n) in later.alerts {
            *self.alerts.entry(key).or_default() += n;
        }
        for (key, n) in later.actions {
            *self.actions.entry(key).or_default() += n;
        }
        self.tracked_keys = later.tracked_keys;
        self.active_blocks = later.active_blocks;
        self.state_bytes = later.state_bytes;
    }
}

/// The process's registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    families: Arc<Families>,
}

impl Metrics {
    pub fn new() -> crate::Result<Self> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> crate::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> crate::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let histogram =
            |name: &str, help: &str, buckets: Vec<f64>| -> crate::Result<HistogramVec> {
                let h = HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets),
                    &["service"],
                )?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let families = Families {
            consumed: counter(
                "auditflow_consumed_records_total",
                "Records consumed, by source topic.",
                &["service", "topic"],
            )?,
            processed: counter(
                "auditflow_processed_records_total",
                "Consumed records by what became of them (emitted, sampled_out, ignored, dead_lettered); sums to consumed.",
                &["service", "outcome"],
            )?,
            emitted: counter(
                "auditflow_emitted_records_total",
                "Records written, by destination topic or table.",
                &["service", "topic"],
            )?,
            sampled_out: counter(
                "auditflow_sampled_out_total",
                "Inputs dropped by sampling, by event type.",
                &["service", "type"],
            )?,
            ignored: counter(
                "auditflow_ignored_total",
                "Inputs deliberately not processed (loop guard).",
                &["service"],
            )?,
            dead_lettered: counter(
                "auditflow_dead_lettered_total",
                "Inputs sent to the dead-letter topic, by reason code.",
                &["service", "reason"],
            )?,
            consumer_lag: gauge(
                "auditflow_consumer_lag",
                "Records between the consumer's position and the partition's last stable offset.",
                &["service", "topic", "partition"],
            )?,
            assigned_partitions: gauge(
                "auditflow_assigned_partitions",
                "Partitions assigned to this instance.",
                &["service"],
            )?,
            in_flight: gauge(
                "auditflow_in_flight_records",
                "Records consumed whose work is not yet durable.",
                &["service"],
            )?,
            in_flight_bytes: gauge(
                "auditflow_in_flight_bytes",
                "Bytes of the records consumed whose work is not yet durable (or committed).",
                &["service"],
            )?,
            write_errors: counter(
                "auditflow_write_errors_total",
                "Failed database batch writes, by fault: transient (retried), record (the refused record dead-lettered), deployment (the service stops).",
                &["service", "kind"],
            )?,
            batch_write: histogram(
                "auditflow_batch_write_seconds",
                "Time to make one batch durable (transaction commit, or database batch write).",
                prometheus::exponential_buckets(0.001, 2.0, 15)?,
            )?,
            end_to_end: histogram(
                "auditflow_end_to_end_latency_seconds",
                "Event time to emitted or stored.",
                prometheus::exponential_buckets(0.005, 2.0, 20)?,
            )?,
            transactions: counter(
                "auditflow_transactions_total",
                "Kafka transactions, by result (committed, aborted).",
                &["service", "result"],
            )?,
            too_late: counter(
                "auditflow_detect_too_late_total",
                "Events further behind their key's newest event than the grace period, not judged by the rules keyed there.",
                &["service"],
            )?,
            future_dated: counter(
                "auditflow_detect_future_dated_total",
                "Events dated further ahead than max_clock_skew_secs: judged at the detector's clock, which they did not move.",
                &["service"],
            )?,
            unparsable_ips: counter(
                "auditflow_detect_unparsable_ips_total",
                "Events whose ip is not an ip address: no source ip, never a key.",
                &["service"],
            )?,
            evicted_keys: counter(
                "auditflow_detect_evicted_keys_total",
                "Keys (ips, users) dropped from the detection windows: idle, or the stalest at the max_keys or max_state_bytes cap.",
                &["service"],
            )?,
            tracked_keys: gauge(
                "auditflow_detect_tracked_keys",
                "Keys in the detection windows now, over every rule family and owned partition.",
                &["service"],
            )?,
            active_blocks: gauge(
                "auditflow_detect_active_blocks",
                "Ips blocked now: blocklist entries whose tombstone has not gone out yet.",
                &["service"],
            )?,
            state_bytes: gauge(
                "auditflow_detect_state_bytes",
                "What the detection windows, baselines and blocks weigh now, over every owned partition.",
                &["service"],
            )?,
            alerts: counter(
                "auditflow_detect_alerts_total",
                "Security alerts raised, by rule and level.",
                &["service", "rule", "level"],
            )?,
            actions: counter(
                "auditflow_detect_actions_total",
                "Security actions emitted, by action (block_ip, disable_account).",
                &["service", "action"],
            )?,
            type_labels: Mutex::new(HashSet::new()),
        };
        Ok(Self {
            registry,
            families: Arc::new(families),
        })
    }

    /// The handle one service records through.
    pub fn service(&self, service: &str) -> ServiceMetrics {
        ServiceMetrics {
            service: service.to_owned(),
            families: self.families.clone(),
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// One service's view of the registry. Cheap to clone.
#[derive(Clone)]
pub struct ServiceMetrics {
    service: String,
    families: Arc<Families>,
}

impl ServiceMetrics {
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn consumed(&self, topic: &str, n: u64) {
        self.families
            .consumed
            .with_label_values(&[self.service.as_str(), topic])
            .inc_by(n);
    }

    pub fn processed(&self, outcome: Outcome, n: u64) {
        self.families
            .processed
            .with_label_values(&[self.service.as_str(), outcome.as_str()])
            .inc_by(n);
    }

    pub fn emitted(&self, topic: &str, n: u64) {
        self.families
            .emitted
            .with_label_values(&[self.service.as_str(), topic])
            .inc_by(n);
    }

    pub fn sampled_out(&self, event_type: &str, n: u64) {
        let label = self.type_label(event_type);
        self.families
            .sampled_out
            .with_label_values(&[self.service.as_str(), label.as_str()])
            .inc_by(n);
    }

    pub fn ignored(&self, n: u64) {
        self.families
            .ignored
            .with_label_values(&[self.service.as_str()])
            .inc_by(n);
    }

    pub fn dead_lettered(&self, reason: &str, n: u64) {
        self.families
            .dead_lettered
            .with_label_values(&[self.service.as_str(), reason])
            .inc_by(n);
    }

    pub fn transaction(&self, committed: bool) {
        let result = if committed { "committed" } else { "aborted" };
        self.families
            .transactions
            .with_label_values(&[self.service.as_str(), result])
            .inc();
    }

    pub fn observe_batch_write(&self, seconds: f64) {
        self.families
            .batch_write
            .with_label_values(&[self.service.as_str()])
            .observe(seconds);
    }

    /// Event time (ms since the epoch) to now. Event times in the future count as zero.
    pub fn observe_end_to_end(&self, event_time_ms: i64, now_ms: i64) {
        let seconds = (now_ms - event_time_ms).max(0) as f64 / 1000.0;
        self.families
            .end_to_end
            .with_label_values(&[self.service.as_str()])
            .observe(seconds);
    }

    pub fn set_in_flight(&self, n: usize) {
        self.families
            .in_flight
            .with_label_values(&[self.service.as_str()])
            .set(n as i64);
    }

    pub fn set_in_flight_bytes(&self, n: usize) {
        self.families
            .in_flight_bytes
            .with_label_values(&[self.service.as_str()])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A failed database write, by what it means ([`WriteFault`]).
    pub fn write_error(&self, fault: WriteFault) {
        self.families
            .write_errors
            .with_label_values(&[self.service.as_str(), fault.as_str()])
            .inc();
    }

    pub fn set_assigned_partitions(&self, n: usize) {
        self.families
            .assigned_partitions
            .with_label_values(&[self.service.as_str()])
            .set(n as i64);
    }

    /// A detection engine's counts and state (see [`EngineCounts`]).
    pub fn engine(&self, counts: &EngineCounts) {
        let service = self.service.as_str();
        let f = &self.families;
        f.too_late
            .with_label_values(&[service])
            .inc_by(counts.too_late);
        f.future_dated
            .with_label_values(&[service])
            .inc_by(counts.future_dated);
        f.unparsable_ips
            .with_label_values(&[service])
            .inc_by(counts.unparsable_ips);
        f.evicted_keys
            .with_label_values(&[service])
            .inc_by(counts.evicted_keys);
        for ((rule, level), n) in &counts.alerts {
            f.alerts
                .with_label_values(&[service, rule.as_str(), level.as_str()])
                .inc_by(*n);
        }
        for (action, n) in &counts.actions {
            f.actions.with_label_values(&[service, action]).inc_by(*n);
        }
        f.tracked_keys
            .with_label_values(&[service])
            .set(counts.tracked_keys as i64);
        f.active_blocks
            .with_label_values(&[service])
            .set(counts.active_blocks as i64);
        f.state_bytes
            .with_label_values(&[service])
            .set(counts.state_bytes as i64);
    }

    /// Lag from librdkafka's statistics: last stable offset (what a `read_committed` reader can
    /// reach) minus the consumer's position. Only partitions this consumer fetches.
    pub fn record_lag(&self, statistics: &Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || !p.desired {
                    continue;
                }
                let position = if p.app_offset >= 0 {
                    p.app_offset
                } else {
                    p.committed_offset
                };
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if position < 0 || end < 0 {
                    continue;
                }
                self.families
                    .consumer_lag
                    .with_label_values(&[
                        self.service.as_str(),
                        topic.as_str(),
                        &partition.to_string(),
                    ])
                    .set((end - position).max(0));
            }
        }
    }

    /// Drops the lag series of partitions this instance no longer owns, so a dashboard does not
    /// show a stale lag for them.
    pub fn forget_lag(&self, partitions: &[Partition]) {
        for p in partitions {
            let _ = self.families.consumer_lag.remove_label_values(&[
                self.service.as_str(),
                p.topic.as_str(),
                &p.partition.to_string(),
            ]);
        }
    }

    fn type_label(&self, event_type: &str) -> String {
        let mut seen = lock(&self.families.type_labels);
        if seen.contains(event_type) {
            return event_type.to_owned();
        }
        if seen.len() < MAX_TYPE_LABELS {
            seen.insert(event_type.to_owned());
            return event_type.to_owned();
        }
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_shared_and_labelled_by_service() {
        let metrics = Metrics::new().unwrap();
        let classifier = metrics.service("classifier");
        let sink = metrics.service("sink");
        classifier.consumed("user.events", 3);
        classifier.processed(Outcome::Emitted, 2);
        classifier.processed(Outcome::DeadLettered, 1);
        classifier.dead_lettered("invalid_json", 1);
        sink.consumed("audit.user.action", 5);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"auditflow_consumed_records_total{service="classifier",topic="user.events"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"auditflow_consumed_records_total{service="sink",topic="audit.user.action"} 5"#
        ));
        assert!(text.contains(
            r#"auditflow_processed_records_total{outcome="dead_lettered",service="classifier"} 1"#
        ));
        assert!(text.contains(
            r#"auditflow_dead_lettered_total{reason="invalid_json",service="classifier"} 1"#
        ));
    }

    #[test]
    fn engine_counts_add_up_and_gauges_take_the_latest() {
        let metrics = Metrics::new().unwrap();
        let m = metrics.service("security-monitor");
        let mut counts = EngineCounts {
            too_late: 2,
            future_dated: 4,
            unparsable_ips: 1,
            evicted_keys: 1,
            tracked_keys: 7,
            active_blocks: 1,
            ..Default::default()
        };
        counts
            .alerts
            .insert((Rule::BruteForce, ThreatLevel::Critical), 1);
        counts.actions.insert("block_ip", 1);
        let mut later = EngineCounts {
            too_late: 1,
            future_dated: 1,
            tracked_keys: 3,
            state_bytes: 4096,
            ..Default::default()
        };
        later
            .alerts
            .insert((Rule::BruteForce, ThreatLevel::Critical), 2);
        counts.merge(later);
        m.engine(&counts);
        let text = metrics.render();
        for series in [
            r#"auditflow_detect_too_late_total{service="security-monitor"} 3"#,
            r#"auditflow_detect_future_dated_total{service="security-monitor"} 5"#,
            r#"auditflow_detect_unparsable_ips_total{service="security-monitor"} 1"#,
            r#"auditflow_detect_evicted_keys_total{service="security-monitor"} 1"#,
            r#"auditflow_detect_tracked_keys{service="security-monitor"} 3"#,
            r#"auditflow_detect_state_bytes{service="security-monitor"} 4096"#,
            r#"auditflow_detect_active_blocks{service="security-monitor"} 0"#,
            r#"auditflow_detect_alerts_total{level="critical",rule="brute_force",service="security-monitor"} 3"#,
            r#"auditflow_detect_actions_total{action="block_ip",service="security-monitor"} 1"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }

    #[test]
    fn type_labels_are_capped() {
        let metrics = Metrics::new().unwrap();
        let m = metrics.service("classifier");
        for i in 0..MAX_TYPE_LABELS + 10 {
            m.sampled_out(&format!("user.t{i}"), 1);
        }
        m.sampled_out("user.t0", 1);
        let text = metrics.render();
        assert!(
            text.contains(r#"auditflow_sampled_out_total{service="classifier",type="other"} 10"#),
            "{text}"
        );
        assert!(
            text.contains(r#"auditflow_sampled_out_total{service="classifier",type="user.t0"} 2"#)
        );
    }
}
