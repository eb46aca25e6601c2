//! Writing the causality index: one record becomes a node row, an edge under its cause, a
//! member of its conversation, and the bucket index rows that find them.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use scylla::SerializeRow;

use super::{CausalRecord, CausalityIndex};
use crate::batch::{RowWrite, WriteStats};
use crate::error::Result;

/// Serialized by position: the TTL's bind marker has no column name to match.
#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct NodeRow<'a> {
    id: &'a str,
    event_time: DateTime<Utc>,
    causation_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
    event_type: &'a str,
    original_type: Option<&'a str>,
    topic: &'a str,
    summary: Option<&'a str>,
    class: &'static str,
    ttl: i32,
}

/// A `causality_children` or `causality_members` row: the bucket key, then the record.
/// Serialized by position, in the order of the INSERTs below.
#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct EdgeRow<'a> {
    key: &'a str,
    day: NaiveDate,
    event_time: DateTime<Utc>,
    id: &'a str,
    /// The correlation id in `causality_children`, the causation id in `causality_members`.
    other_id: Option<&'a str>,
    event_type: &'a str,
    original_type: Option<&'a str>,
    topic: &'a str,
    summary: Option<&'a str>,
    class: &'static str,
    ttl: i32,
}

impl CausalityIndex {
    /// Stores a batch; all of it or an error. Idempotent: writing the same records again
    /// leaves the same rows. On error some rows may be written: write the batch again.
    /// Its rows go in few requests, grouped by replica as the sink's do (the `batch` module).
    pub async fn write(&self, records: &[CausalRecord]) -> Result<WriteStats> {
        for record in records {
            record.validate()?;
        }
        let expiry_limit = self.store.ready().await?.expiry_limit;
        let now = Utc::now();
        let mut writes: Vec<RowWrite<'_>> = Vec::with_capacity(records.len() * 5);
        let mut buckets = HashSet::new();
        for r in records {
            let ttl_secs = self.store.ttl_secs(r.class);
            expiry_limit.check(r.class, self.store.longest_ttl_secs(r.class), now)?;
            let ttl = i32::try_from(ttl_secs).unwrap_or(i32::MAX);
            // A day longer than the rows it indexes, so it never expires first.
            let index_ttl = crate::index::index_ttl(ttl);
            let day = r.day();
            let edge = |key, other_id| EdgeRow {
                key,
                day,
                event_time: r.time,
                id: &r.id,
                other_id,
                event_type: &r.event_type,
                original_type: r.original_type.as_deref(),
                topic: &r.topic,
                summary: r.summary.as_deref(),
                class: r.class.as_str(),
                ttl,
            };
            let bytes = r.id.len()
                + r.event_type.len()
                + r.topic.len()
                + [
                    &r.causation_id,
                    &r.correlation_id,
                    &r.original_type,
                    &r.summary,
                ]
                .iter()
                .map(|s| s.as_ref().map_or(0, String::len))
                .sum::<usize>();
            writes.push(RowWrite::new(
                &self.st.insert_node,
                Box::new(NodeRow {
                    id: &r.id,
                    event_time: r.time,
                    causation_id: r.causation_id.as_deref(),
                    correlation_id: r.correlation_id.as_deref(),
                    event_type: &r.event_type,
                    original_type: r.original_type.as_deref(),
                    topic: &r.topic,
                    summary: r.summary.as_deref(),
                    class: r.class.as_str(),
                    ttl,
                }),
                bytes,
            ));
            let links = [
                (
                    &self.st.children,
                    r.causation_id.as_deref(),
                    r.correlation_id.as_deref(),
                ),
                (
                    &self.st.members,
                    r.correlation_id.as_deref(),
                    r.causation_id.as_deref(),
                ),
            ];
            for (bucketed, key, other) in links {
                let Some(key) = key else { continue };
                writes.push(RowWrite::new(
                    &bucketed.insert,
                    Box::new(edge(key, other)),
                    bytes + key.len(),
                ));
                if buckets.insert((bucketed.table, key, day, r.class)) {
                    let index_row = (key, day, r.class.as_str(), index_ttl);
                    writes.push(RowWrite::new(
                        &bucketed.insert_day,
                        Box::new(index_row),
                        key.len(),
                    ));
                }
            }
        }
        self.store.write_rows(writes).await
    }
}
