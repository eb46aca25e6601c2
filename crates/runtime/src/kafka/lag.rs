//! Consumer lag from the group's committed offsets, as the broker has them.
//!
//! `auditflow_consumer_lag` (from librdkafka's statistics) measures from the consumer's
//! position: it reads zero while an instance fetches everything and commits nothing. What an
//! operator's alert needs is how far the group's *committed* offsets trail the partitions' last
//! stable offsets — what a restart would re-read, and what stays high when commits stall (a
//! transaction that never commits, a database write that never completes). Every
//! [`INTERVAL`] a thread of each consumer loop asks the broker for the committed offsets of the
//! partitions this instance owns (an `OffsetFetch` for the group, through a client of its own
//! that never joins it) and their last stable offsets (`ListOffsets` under `read_committed`),
//! and sets `auditflow_consumer_committed_lag{service, topic, partition}`. A partition with no
//! committed offset yet counts from its log start.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditflow_core::config::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::client;
use crate::kafka::rebalance::SharedAssignment;
use crate::kafka::records::Partition;
use crate::sync::lock;
use crate::telemetry::metrics::ServiceMetrics;

/// How often the committed lag is measured.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Timeout of each broker call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the thread looks at its stop flag while it waits.
const NAP: Duration = Duration::from_millis(200);

/// Measures the committed lag of the partitions in `assignment` until dropped.
pub struct LagReporter {
    stop: Arc<AtomicBool>,
}

impl LagReporter {
    /// Starts measuring `group`'s committed lag for what `assignment` owns. A reporter that
    /// cannot create its client logs why and reports nothing: lag is telemetry, not a reason to
    /// stop a service.
    pub fn start(
        kafka: &KafkaSettings,
        group: &str,
        assignment: SharedAssignment,
        metrics: ServiceMetrics,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut config = client::table_reader_config(kafka);
        config.set("group.id", group);
        match config.create::<BaseConsumer>() {
            Ok(consumer) => {
                let flag = stop.clone();
                let spawned = std::thread::Builder::new()
                    .name("committed-lag".into())
                    .spawn(move || report(&consumer, &assignment, &metrics, &flag));
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start the committed-lag thread");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot create the committed-lag client"),
        }
        Self { stop }
    }
}

impl Drop for LagReporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn report(
    consumer: &BaseConsumer,
    assignment: &SharedAssignment,
    metrics: &ServiceMetrics,
    stop: &AtomicBool,
) {
    let mut reported: HashSet<Partition> = HashSet::new();
    let mut next = Instant::now() + INTERVAL;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(NAP);
            continue;
        }
        next = Instant::now() + INTERVAL;
        let owned = lock(assignment).owned();
        let gone: Vec<Partition> = reported
            .iter()
            .filter(|p| !owned.contains(p))
            .cloned()
            .collect();
        metrics.forget_committed_lag(&gone);
        for p in &gone {
            reported.remove(p);
        }
        if owned.is_empty() {
            continue;
        }
        match measure(consumer, &owned) {
            Ok(lags) => {
                for (partition, lag) in lags {
                    metrics.record_committed_lag(&partition, lag);
                    reported.insert(partition);
                }
            }
            // A broker restarting, a coordinator moving: the next round tries again.
            Err(e) => tracing::debug!(error = %e, "measuring the committed lag failed"),
        }
    }
    metrics.forget_committed_lag(&reported.into_iter().collect::<Vec<_>>());
}

/// Each partition's last stable offset minus the group's committed offset (its log start when
/// nothing is committed yet).
fn measure(
    consumer: &BaseConsumer,
    owned: &[Partition],
) -> Result<Vec<(Partition, i64)>, rdkafka::error::KafkaError> {
    let mut list = TopicPartitionList::new();
    for p in owned {
        list.add_partition(&p.topic, p.partition);
    }
    let committed = consumer.committed_offsets(list, CALL_TIMEOUT)?;
    let mut lags = Vec::with_capacity(owned.len());
    for p in owned {
        let (low, stable) = consumer.fetch_watermarks(&p.topic, p.partition, CALL_TIMEOUT)?;
        let from = match committed
            .find_partition(&p.topic, p.partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        lags.push((p.clone(), stable - from));
    }
    Ok(lags)
}
