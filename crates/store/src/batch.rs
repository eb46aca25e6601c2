//! Writing many rows in few requests: the rows of one call grouped by the replicas that own
//! them, each group sent as unlogged batches of at most `[store] batch_max_bytes`.
//!
//! A single-row request costs the cluster a request's parsing, routing and response besides the
//! write itself; on a small node that overhead, not the writes, bounded the sink (BENCHMARKS.md,
//! "Sink"). An unlogged batch is one request, and its rows are applied as separate mutations,
//! each atomic in its own partition as a single write would be — no batch log, no atomicity
//! across partitions (which the write path never relies on: every row is idempotent, and a
//! partly written call is written again whole). Rows go together only when the same replicas
//! own them (by token, and shard where the cluster has shards, as the driver's own routing
//! sees them): the driver sends a batch to a replica of its first row, which is then a replica
//! of every row and sends each other replica one message — no coordinator hop the single writes
//! would not have made. This is the grouping Spark's Cassandra connector offers as
//! `batch.grouping.key = replica_set`. With more replica sets than rows (a large cluster, few
//! rows per call) the batches shrink towards single rows, and the cost is what it was.
//!
//! Limits: a batch stays within `batch_max_bytes` of row data (estimated from the values; the
//! default 16 KiB keeps well inside Cassandra's 50 KiB `batch_size_fail_threshold` and below
//! ScyllaDB's 128 KiB warning); a row larger than that goes alone as a plain statement, so a
//! large record never makes a batch the cluster refuses. Cassandra also logs a warning for an
//! unlogged batch over more than 10 partitions (`unlogged_batch_across_partitions_warn_threshold`);
//! the local stack raises it, and docs/operations.md says so for other clusters.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use scylla::cluster::ClusterState;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use crate::Store;
use crate::error::Result;
use crate::index::UserDayKey;

/// A batch holds at most this many rows, whatever their size (the protocol's limit is 65,535).
const MAX_BATCH_ROWS: usize = 1_000;

/// One row to write.
pub(crate) struct RowWrite<'a> {
    pub(crate) statement: &'a PreparedStatement,
    pub(crate) values: Box<dyn SerializeRow + Send + Sync + 'a>,
    /// Its size on the wire, about: what `batch_max_bytes` counts.
    pub(crate) bytes: usize,
    /// A `user_days` row to remember once written (see the `index` module).
    pub(crate) index: Option<UserDayKey>,
}

/// What a row costs on the wire besides its variable-length values (keys, timestamps, flags,
/// the protocol's length prefixes), about: [`RowWrite::new`] adds it.
const ROW_OVERHEAD: usize = 64;

impl<'a> RowWrite<'a> {
    /// A row whose variable-length values (strings, blobs) are about `bytes` long.
    pub(crate) fn new(
        statement: &'a PreparedStatement,
        values: Box<dyn SerializeRow + Send + Sync + 'a>,
        bytes: usize,
    ) -> Self {
        Self {
            statement,
            values,
            bytes: bytes + ROW_OVERHEAD,
            index: None,
        }
    }
}

/// What one call wrote: CQL requests sent (retries included) and rows in them (once each).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Requests on the wire, each attempt of a retried one counted.
    pub requests: u64,
    /// Rows written (a row of a retried request is counted once).
    pub rows: u64,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, other: Self) {
        self.requests += other.requests;
        self.rows += other.rows;
    }
}

/// The replicas of a partition, as (host id, shard), sorted: the grouping key.
type Replicas = Vec<(Uuid, u32)>;

type BoxedChunk<'a> = Pin<Box<dyn Future<Output = Result<WriteStats>> + Send + 'a>>;

impl Store {
    /// Writes `rows` (all of them or an error), at most `max_concurrency` requests at once.
    pub(crate) async fn write_rows(&self, rows: Vec<RowWrite<'_>>) -> Result<WriteStats> {
        let cluster = self.session.get_cluster_state();
        let mut groups: HashMap<Replicas, Vec<(Option<i64>, RowWrite<'_>)>> = HashMap::new();
        for row in rows {
            let (replicas, token) = replicas_of(&cluster, &row);
            groups.entry(replicas).or_default().push((token, row));
        }
        let mut chunks = Vec::new();
        for mut rows in groups.into_values() {
            // Rows of one partition side by side, so that they share a batch: the node applies
            // a batch's rows of one partition as one mutation (a day's `records_by_time` shard
            // gets one, not one per record). Stable, so a partition's rows keep their order.
            rows.sort_by_key(|(token, _)| *token);
            let rows = rows.into_iter().map(|(_, row)| row).collect();
            chunk(rows, |row| row.bytes, self.batch_max_bytes, &mut chunks);
        }
        // Boxed up front: a `map` closure over borrowed rows inside `buffer_unordered` trips
        // rustc's higher-ranked `Send` inference when callers spawn this future.
        let writes: Vec<BoxedChunk<'_>> = chunks
            .into_iter()
            .map(|rows| -> BoxedChunk<'_> { Box::pin(self.write_chunk(rows)) })
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(self.max_concurrency)
            .try_fold(WriteStats::default(), |mut total, stats| async move {
                total += stats;
                Ok(total)
            })
            .await
    }

    /// One request: a plain statement for one row, an unlogged batch for more.
    async fn write_chunk(&self, rows: Vec<RowWrite<'_>>) -> Result<WriteStats> {
        let attempts = AtomicU64::new(0);
        let sent = Instant::now();
        if let [row] = rows.as_slice() {
            self.retrying("write row", row.statement.get_is_idempotent(), || {
                attempts.fetch_add(1, Ordering::Relaxed);
                self.session.execute_unpaged(row.statement, &row.values)
            })
            .await?;
        } else {
            let mut batch = Batch::new(BatchType::Unlogged);
            let mut idempotent = true;
            for row in &rows {
                batch.append_statement(row.statement.clone());
                idempotent &= row.statement.get_is_idempotent();
            }
            batch.set_is_idempotent(idempotent);
            let values: Vec<&(dyn SerializeRow + Send + Sync)> =
                rows.iter().map(|row| &*row.values).collect();
            self.retrying("write rows", idempotent, || {
                attempts.fetch_add(1, Ordering::Relaxed);
                self.session.batch(&batch, &values)
            })
            .await?;
        }
        for key in rows.iter().filter_map(|row| row.index) {
            // Aged from before the write was sent (see the `index` module).
            self.written_index.put_at(key, (), sent);
        }
        Ok(WriteStats {
            requests: attempts.into_inner(),
            rows: rows.len() as u64,
        })
    }
}

/// Who owns `row`'s partition, as the driver routes it, and the partition's token; no
/// replicas (one group of their own) when the driver cannot tell, which costs batching, never
/// correctness.
fn replicas_of(cluster: &ClusterState, row: &RowWrite<'_>) -> (Replicas, Option<i64>) {
    let statement = row.statement;
    let (Ok(Some(token)), Some(keyspace), Some(table)) = (
        statement.calculate_token(&row.values),
        statement.get_keyspace_name(),
        statement.get_table_name(),
    ) else {
        return (Vec::new(), None);
    };
    let mut replicas: Replicas = cluster
        .get_token_endpoints(keyspace, table, token)
        .into_iter()
        .map(|(node, shard)| (node.host_id, shard))
        .collect();
    replicas.sort_unstable();
    (replicas, Some(token.value()))
}

/// Splits one group into requests of at most `max_bytes` (and [`MAX_BATCH_ROWS`]); a row
/// larger than `max_bytes` is a request of its own.
fn chunk<T>(rows: Vec<T>, bytes_of: impl Fn(&T) -> usize, max_bytes: usize, out: &mut Vec<Vec<T>>) {
    let mut current: Vec<T> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let row_bytes = bytes_of(&row);
        if !current.is_empty() && (bytes + row_bytes > max_bytes || current.len() >= MAX_BATCH_ROWS)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += row_bytes;
        current.push(row);
    }
    if !current.is_empty() {
        out.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_within_the_byte_limit_and_large_rows_go_alone() {
        let mut out = Vec::new();
        chunk(vec![400, 400, 300, 5_000, 10, 990], |b| *b, 1_000, &mut out);
        assert_eq!(
            out,
            vec![vec![400, 400], vec![300], vec![5_000], vec![10, 990]]
        );
    }

    #[test]
    fn chunks_hold_at_most_the_protocol_safe_row_count() {
        let mut out = Vec::new();
        chunk(vec![1; 2_500], |b| *b, usize::MAX, &mut out);
        assert_eq!(
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1_000, 1_000, 500]
        );
    }
}
