//! The indexer's [`BatchWriter`]: extract every record, write the indexable ones in one call,
//! report a dead letter for each of the others.
//!
//! All-or-nothing per batch: if the store fails, the harness writes the records again (writes
//! are idempotent upserts keyed by ids, so rows already written are simply written again) —
//! the whole batch after a transient error, halves of it when the store refuses a record, to
//! find and dead-letter that one; it stops on an error no retry fixes (the store's error says
//! which). A record that cannot be indexed never reaches the store, so it cannot block its
//! partition.

use std::sync::Arc;

use auditflow_core::config::Limits;
use auditflow_runtime::kafka::at_least_once::{
    BatchWriter, WriteError, WriteFault, Written, split_batch,
};
use auditflow_runtime::{InputRecord, ServiceMetrics};
use auditflow_store::causality::CausalityIndex;
use chrono::Utc;

use crate::extract::extract;

/// Writes the causality index of every consumed record through one [`CausalityIndex`],
/// shared by every partition's batches.
pub struct IndexWriter {
    index: Arc<CausalityIndex>,
    limits: Limits,
    /// Where the CQL requests and rows written are counted.
    metrics: ServiceMetrics,
}

impl IndexWriter {
    /// A writer over an opened index; a record beyond `[limits]` is dead-lettered undecoded.
    pub fn new(index: Arc<CausalityIndex>, limits: Limits, metrics: ServiceMetrics) -> Self {
        Self {
            index,
            limits,
            metrics,
        }
    }
}

impl BatchWriter for IndexWriter {
    async fn write(&self, batch: &[InputRecord]) -> Result<Vec<Written>, WriteError> {
        let now = Utc::now();
        let (records, outcomes) = split_batch(batch, |input| extract(input, &self.limits, now));
        let stats = self.index.write(&records).await.map_err(|e| {
            WriteError::new(WriteFault::of(e.is_transient(), e.is_about_the_record()), e)
        })?;
        self.metrics.database_writes(stats.requests, stats.rows);
        Ok(outcomes)
    }
}
