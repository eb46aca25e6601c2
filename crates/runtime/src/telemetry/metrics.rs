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
//! A service with metrics of its own (the security monitor's `auditflow_detect_*` families)
//! registers them on the same registry through [`Metrics::families`], once per process; the
//! runtime knows nothing of what they count.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use rdkafka::statistics::Statistics;

use crate::kafka::records::Partition;
use crate::kafka::write_error::WriteFault;
use crate::sync::lock;

/// Distinct `type` label values kept per process before folding into `other`.
pub const MAX_TYPE_LABELS: usize = 500;

/// How one consumed record was accounted for: the `outcome` label of
/// `auditflow_processed_records_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Outputs were produced or rows written.
    Emitted,
    /// Dropped by sampling.
    SampledOut,
    /// Deliberately not processed.
    Ignored,
    /// Sent to the dead-letter topic.
    DeadLettered,
}

impl Processed {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Processed::Emitted => "emitted",
            Processed::SampledOut => "sampled_out",
            Processed::Ignored => "ignored",
            Processed::DeadLettered => "dead_lettered",
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
    committed_lag: IntGaugeVec,
    assigned_partitions: IntGaugeVec,
    in_flight: IntGaugeVec,
    in_flight_bytes: IntGaugeVec,
    write_errors: IntCounterVec,
    batch_write: HistogramVec,
    end_to_end: HistogramVec,
    database_requests: IntCounterVec,
    database_rows: IntCounterVec,
    transactions: IntCounterVec,
    type_labels: Mutex<HashSet<String>>,
}

/// The process's registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    families: Arc<Families>,
    /// The families services added ([`Metrics::families`]), one value per type.
    extensions: Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

impl Metrics {
    /// A registry with the runtime's families.
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
            committed_lag: gauge(
                "auditflow_consumer_committed_lag",
                "Records between the group's committed offset and the partition's last stable offset, as the broker reports them.",
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
            database_requests: counter(
                "auditflow_database_write_requests_total",
                "CQL write requests sent (statements and unlogged batches, each retry counted).",
                &["service"],
            )?,
            database_rows: counter(
                "auditflow_database_rows_written_total",
                "Rows in the CQL write requests that succeeded.",
                &["service"],
            )?,
            transactions: counter(
                "auditflow_transactions_total",
                "Kafka transactions, by result (committed, aborted).",
                &["service", "result"],
            )?,
            type_labels: Mutex::new(HashSet::new()),
        };
        Ok(Self {
            registry,
            families: Arc::new(families),
            extensions: Arc::default(),
        })
    }

    /// A service's own families on the process's registry: `make` registers them the first
    /// time a value of type `F` is asked for; every later call (another instance of the
    /// service in the same process, `run all`) gets that same value. Their label values must
    /// be as free of personal data as the runtime's own.
    pub fn families<F: Send + Sync + 'static>(
        &self,
        make: impl FnOnce(&Registry) -> prometheus::Result<F>,
    ) -> crate::Result<Arc<F>> {
        let mut extensions = lock(&self.extensions);
        if let Some(existing) = extensions.get(&TypeId::of::<F>()) {
            // Keyed by the type id, so the downcast cannot fail.
            if let Ok(families) = existing.clone().downcast::<F>() {
                return Ok(families);
            }
        }
        let families = Arc::new(make(&self.registry)?);
        extensions.insert(TypeId::of::<F>(), families.clone());
        Ok(families)
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
    /// The service label.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// `n` records consumed from `topic`.
    pub fn consumed(&self, topic: &str, n: u64) {
        self.families
            .consumed
            .with_label_values(&[self.service.as_str(), topic])
            .inc_by(n);
    }

    /// `n` consumed records accounted for as `outcome`.
    pub fn processed(&self, outcome: Processed, n: u64) {
        self.families
            .processed
            .with_label_values(&[self.service.as_str(), outcome.as_str()])
            .inc_by(n);
    }

    /// `n` records written to `topic` (or table).
    pub fn emitted(&self, topic: &str, n: u64) {
        self.families
            .emitted
            .with_label_values(&[self.service.as_str(), topic])
            .inc_by(n);
    }

    /// `n` inputs of `event_type` sampled out (type labels capped).
    pub fn sampled_out(&self, event_type: &str, n: u64) {
        let label = self.type_label(event_type);
        self.families
            .sampled_out
            .with_label_values(&[self.service.as_str(), label.as_str()])
            .inc_by(n);
    }

    /// `n` inputs ignored.
    pub fn ignored(&self, n: u64) {
        self.families
            .ignored
            .with_label_values(&[self.service.as_str()])
            .inc_by(n);
    }

    /// `n` inputs dead-lettered with `reason`.
    pub fn dead_lettered(&self, reason: &str, n: u64) {
        self.families
            .dead_lettered
            .with_label_values(&[self.service.as_str(), reason])
            .inc_by(n);
    }

    /// A transaction committed or aborted.
    pub fn transaction(&self, committed: bool) {
        let result = if committed { "committed" } else { "aborted" };
        self.families
            .transactions
            .with_label_values(&[self.service.as_str(), result])
            .inc();
    }

    /// How long making one batch durable took.
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

    /// Records in flight now.
    pub fn set_in_flight(&self, n: usize) {
        self.families
            .in_flight
            .with_label_values(&[self.service.as_str()])
            .set(n as i64);
    }

    /// Bytes in flight now.
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

    /// CQL write requests sent (retries included) and the rows they wrote: rows per request
    /// is how well the writes are batched, requests per record what each record costs.
    pub fn database_writes(&self, requests: u64, rows: u64) {
        let service = [self.service.as_str()];
        self.families
            .database_requests
            .with_label_values(&service)
            .inc_by(requests);
        self.families
            .database_rows
            .with_label_values(&service)
            .inc_by(rows);
    }

    /// Partitions assigned now.
    pub fn set_assigned_partitions(&self, n: usize) {
        self.families
            .assigned_partitions
            .with_label_values(&[self.service.as_str()])
            .set(n as i64);
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

    /// Sets `partition`'s lag behind its group's committed offset ([`crate::kafka::lag`]).
    pub fn record_committed_lag(&self, partition: &Partition, lag: i64) {
        self.families
            .committed_lag
            .with_label_values(&[
                self.service.as_str(),
                partition.topic.as_str(),
                &partition.partition.to_string(),
            ])
            .set(lag.max(0));
    }

    /// Drops the committed-lag series of partitions this instance no longer owns.
    pub fn forget_committed_lag(&self, partitions: &[Partition]) {
        for p in partitions {
            let _ = self.families.committed_lag.remove_label_values(&[
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
        classifier.processed(Processed::Emitted, 2);
        classifier.processed(Processed::DeadLettered, 1);
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
    fn a_service_adds_its_own_families_once_per_process() {
        struct Mine(IntCounterVec);
        let make = |registry: &Registry| {
            let c = IntCounterVec::new(Opts::new("auditflow_mine_total", "Mine."), &["service"])?;
            registry.register(Box::new(c.clone()))?;
            Ok(Mine(c))
        };
        let metrics = Metrics::new().unwrap();
        let first = metrics.families(make).unwrap();
        // Registering the same family twice fails: `make` must not run again.
        let again = metrics.families(make).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        again.0.with_label_values(&["security-monitor"]).inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"auditflow_mine_total{service="security-monitor"} 1"#),
            "{text}"
        );
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
