//! Reading the causality index: a node by id, a parent's children and a conversation's
//! members, day bucket by day bucket, never more rows than asked for.

use std::collections::HashSet;

use auditflow_core::RetentionClass;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use scylla::DeserializeRow;

use super::statements::BucketStatements;
use super::{Bounded, CausalRecord, CausalityIndex, MAX_READ};
use crate::error::Result;

/// A record as every causality table returns it (see `RECORD_COLUMNS`).
#[derive(DeserializeRow)]
struct RecordRow {
    id: String,
    event_time: DateTime<Utc>,
    causation_id: Option<String>,
    correlation_id: Option<String>,
    event_type: Option<String>,
    original_type: Option<String>,
    topic: Option<String>,
    summary: Option<String>,
    class: Option<String>,
}

impl RecordRow {
    fn into_record(self) -> CausalRecord {
        CausalRecord {
            id: self.id,
            event_type: self.event_type.unwrap_or_default(),
            original_type: self.original_type,
            time: self.event_time,
            causation_id: self.causation_id,
            correlation_id: self.correlation_id,
            topic: self.topic.unwrap_or_default(),
            summary: self.summary,
            // Only rows this module wrote exist; an unknown class reads as the longest.
            class: self
                .class
                .as_deref()
                .and_then(RetentionClass::parse)
                .unwrap_or(RetentionClass::Security),
        }
    }
}

impl CausalityIndex {
    /// The indexed record with this id, if any. An input event is never one: see
    /// [`children`](Self::children).
    pub async fn node(&self, id: &str) -> Result<Option<CausalRecord>> {
        let row = self
            .store
            .first_row::<RecordRow>("read causal node", &self.st.select_node, &(id,))
            .await?;
        Ok(row.map(RecordRow::into_record))
    }

    /// The records `parent` caused, oldest first, at most `limit` (≤ [`MAX_READ`]).
    pub async fn children(&self, parent: &str, limit: usize) -> Result<Bounded<CausalRecord>> {
        self.bucketed(&self.st.children, parent, limit).await
    }

    /// The records of a conversation in time order, at most `limit` (≤ [`MAX_READ`]).
    pub async fn members(&self, correlation: &str, limit: usize) -> Result<Bounded<CausalRecord>> {
        self.bucketed(&self.st.members, correlation, limit).await
    }

    /// Reads day buckets in order until `limit` rows are found. Each bucket index row stands
    /// for a bucket with at least one row of its class (or one that expired less than a day
    /// ago), so at most `limit + 2` buckets are read; duplicates (a record re-sent with another
    /// time) are dropped by id.
    async fn bucketed(
        &self,
        st: &BucketStatements,
        key: &str,
        limit: usize,
    ) -> Result<Bounded<CausalRecord>> {
        let context = st.read_context;
        let limit = limit.clamp(1, MAX_READ);
        // Up to one index row per retention class and day.
        let want = i32::try_from((limit + 2) * RetentionClass::ALL.len()).unwrap_or(i32::MAX);
        let mut days: Vec<(NaiveDate,)> = self
            .store
            .rows::<(NaiveDate,)>(context, &st.select_days, (key, want))
            .await?
            .try_collect()
            .await?;
        days.dedup();
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for (day,) in days {
            let rest = i32::try_from(limit + 1 - items.len()).unwrap_or(i32::MAX);
            let mut rows = self
                .store
                .rows::<RecordRow>(context, &st.select_rows, (key, day, rest))
                .await?;
            while let Some(row) = rows.try_next().await? {
                if seen.insert(row.id.clone()) {
                    items.push(row.into_record());
                }
            }
            if items.len() > limit {
                break;
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        Ok(Bounded { items, more })
    }
}
