//! The sink's [`BatchWriter`]: decode every record, store the good ones in one call, report a
//! dead letter for each of the others.
//!
//! All-or-nothing per batch: if the store fails, the harness writes the records again (writes
//! are idempotent, so rows already written are simply written again) — the whole batch after a
//! transient error, halves of it when the store refuses a record, to find and dead-letter that
//! one; it stops on an error no retry fixes (the store's error says which:
//! [`StoreError::is_transient`](auditflow_store::StoreError::is_transient),
//! [`StoreError::is_about_the_record`](auditflow_store::StoreError::is_about_the_record)). A
//! record that cannot be decoded never reaches the store, so one bad record cannot fail, and
//! so block, its batch.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use auditflow_core::checkpoint::LogId;
use auditflow_core::config::Limits;
use auditflow_core::retention::RetentionPolicy;
use auditflow_runtime::kafka::at_least_once::{BatchWriter, WriteError, WriteFault, Written};
use auditflow_runtime::{InputRecord, Partition, ServiceMetrics};
use auditflow_store::{Store, StoreError, class_table};
use chrono::Utc;

use crate::decode::{OwnTopics, decode};
use crate::sealer::Sealer;

/// Stores the audit topics' records and alerts through one [`Store`]; shared by every
/// partition's batches (the store is safe to use concurrently).
pub struct SinkWriter {
    store: Arc<Store>,
    limits: Limits,
    policy: RetentionPolicy,
    /// The topics of auditflow's own types (each taken from its topic only).
    own_topics: OwnTopics,
    /// `None` with `[integrity] enabled = false`: records are stored in no log.
    sealer: Option<Sealer>,
    /// Where the CQL requests and rows written are counted.
    metrics: ServiceMetrics,
}

impl SinkWriter {
    /// A writer over an opened store; a record beyond `[limits]` is dead-lettered undecoded.
    pub(crate) fn new(
        store: Arc<Store>,
        limits: Limits,
        own_topics: OwnTopics,
        sealer: Option<Sealer>,
        metrics: ServiceMetrics,
    ) -> Self {
        Self {
            store,
            limits,
            policy: RetentionPolicy::new(),
            own_topics,
            sealer,
            metrics,
        }
    }

    /// The last sealed offset of each log in `batch` (by topic and partition), read from the
    /// store the first time this process sees a log (a replay after a restart starts below
    /// it). Empty when the log is off.
    async fn sealed_offsets<'b>(
        &self,
        batch: &'b [InputRecord],
    ) -> Result<HashMap<(&'b str, i32), i64>, StoreError> {
        let mut sealed = HashMap::new();
        let Some(sealer) = &self.sealer else {
            return Ok(sealed);
        };
        for input in batch {
            let Entry::Vacant(entry) = sealed.entry((input.topic.as_str(), input.partition)) else {
                continue;
            };
            let log = LogId {
                topic: input.topic.clone(),
                partition: input.partition,
            };
            let last = match sealer.sealed(&log) {
                Some(last) => last,
                None => {
                    let last = self
                        .store
                        .log_tail(&log)
                        .await?
                        .map_or(-1, |t| t.last_offset);
                    sealer.note_sealed(&log, last);
                    last
                }
            };
            entry.insert(last);
        }
        Ok(sealed)
    }
}

fn write_error(e: StoreError) -> WriteError {
    WriteError::new(WriteFault::of(e.is_transient(), e.is_about_the_record()), e)
}

impl BatchWriter for SinkWriter {
    async fn write(&self, batch: &[InputRecord]) -> Result<Vec<Written>, WriteError> {
        let now = Utc::now();
        let sealed = self.sealed_offsets(batch).await.map_err(write_error)?;
        let mut records = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        for input in batch {
            // Already a leaf of a sealed log (a replay): its rows are what the log vouches
            // for, and are not written again.
            let key = (input.topic.as_str(), input.partition);
            if sealed.get(&key).is_some_and(|last| input.offset <= *last) {
                outcomes.push(Written::Ignored);
                continue;
            }
            match decode(input, &self.limits, &self.policy, &self.own_topics, now) {
                Ok(mut record) => {
                    if self.sealer.is_none() {
                        record.position = None;
                    }
                    outcomes.push(Written::Row {
                        table: class_table(record.class),
                        event_time_ms: Some(record.event_time.timestamp_millis()),
                    });
                    records.push(record);
                }
                Err(letter) => {
                    // The reason code only: details may quote the record.
                    tracing::debug!(reason = %letter.reason, topic = %input.topic, offset = input.offset, "dead-lettering");
                    outcomes.push(Written::DeadLetter(letter));
                }
            }
        }
        let stats = self
            .store
            .write_records(&records)
            .await
            .map_err(write_error)?;
        self.metrics.database_writes(stats.requests, stats.rows);
        Ok(outcomes)
    }

    fn committed(&self, offsets: &[(Partition, i64)]) {
        if let Some(sealer) = &self.sealer {
            sealer.committed(offsets);
        }
    }
}
