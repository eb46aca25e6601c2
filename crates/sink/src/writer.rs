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

use std::sync::Arc;

use auditflow_core::config::Limits;
use auditflow_core::retention::RetentionPolicy;
use auditflow_runtime::InputRecord;
use auditflow_runtime::kafka::at_least_once::{BatchWriter, WriteError, WriteFault, Written};
use auditflow_store::{Store, class_table};
use chrono::Utc;

use crate::decode::decode;

/// Stores the audit topics' records and alerts through one [`Store`]; shared by every
/// partition's batches (the store is safe to use concurrently).
pub struct SinkWriter {
    store: Arc<Store>,
    limits: Limits,
    policy: RetentionPolicy,
}

impl SinkWriter {
    /// A writer over an opened store; a record beyond `[limits]` is dead-lettered undecoded.
    pub fn new(store: Arc<Store>, limits: Limits) -> Self {
        Self {
            store,
            limits,
            policy: RetentionPolicy::new(),
        }
    }
}

impl BatchWriter for SinkWriter {
    async fn write(&self, batch: &[InputRecord]) -> Result<Vec<Written>, WriteError> {
        let now = Utc::now();
        let mut records = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        for input in batch {
            match decode(input, &self.limits, &self.policy, now) {
                Ok(record) => {
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
        self.store.write_records(&records).await.map_err(|e| {
            WriteError::new(WriteFault::of(e.is_transient(), e.is_about_the_record()), e)
        })?;
        Ok(outcomes)
    }
}
