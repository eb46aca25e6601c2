//! The read path: a user's trail, a record by id, security events by time.
//!
//! Reads never scan: a user's trail starts from `user_days` (which day partitions of which
//! class hold their rows, and which hour buckets for an hourly subject), security events from
//! the day and shard partitions of the range. Partitions of one day (of one hour, for an
//! hourly subject) are merged newest first (time desc, then id asc: one total order, so a page
//! token is a position in it, whatever the partitioning). Only the rows returned are
//! decrypted.

use std::pin::Pin;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::stream::Peekable;
use futures::{Stream, StreamExt, TryStreamExt};
use scylla::deserialize::row::DeserializeRow as DeserializeRowTrait;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use crate::Store;
use crate::bucket::{bucket_pseudonym, day_partitions};
use crate::crypto::{DataKey, Subject};
use crate::error::{Result, StoreError};
use auditflow_core::RetentionClass;

use crate::statements::{Statements, class_index};
use crate::stored::{Page, PageToken, RecordKind, StoredRecord, TimeRange, label_row};
use crate::write::{class_aad, time_aad};

/// The most records one page may hold.
pub const MAX_PAGE: usize = 10_000;

label_row!(
    struct AuditRow {
        pseudonym: Uuid,
        event_time: DateTime<Utc>,
        event_id: String,
        event: Option<Vec<u8>>,
    }
);

label_row!(
    /// A row of `records_by_time`: labels only.
    struct LabelRow {
        event_time: DateTime<Utc>,
        event_id: String,
        class: Option<String>,
    }
);

impl LabelRow {
    fn into_record(mut self) -> Result<StoredRecord> {
        let bad = |what: &'static str| StoreError::read("record labels", what);
        let clear = self.take_clear();
        Ok(StoredRecord {
            kind: clear
                .kind
                .as_deref()
                .and_then(RecordKind::parse)
                .ok_or_else(|| bad("unknown kind"))?,
            class: self
                .class
                .as_deref()
                .and_then(RetentionClass::parse)
                .ok_or_else(|| bad("unknown retention class"))?,
            id: self.event_id,
            event_time: self.event_time,
            event_type: clear.event_type.unwrap_or_default(),
            labels: clear.labels,
            event: None,
        })
    }
}

/// Which partition a row came from: decides its associated data.
#[derive(Clone, Copy)]
enum Origin {
    Class(RetentionClass, NaiveDate),
    Time(NaiveDate, i32),
}

type RowStream = Sorted<(Origin, AuditRow)>;

impl Store {
    /// A user's records newest first across every retention class, optionally only some
    /// actions, `limit` per page (at most 10 000). An unknown or erased user has no records.
    pub async fn query_user(
        &self,
        user_id: &str,
        range: TimeRange,
        actions: &[String],
        limit: usize,
        page: Option<&PageToken>,
    ) -> Result<Page> {
        let limit = limit.clamp(1, MAX_PAGE);
        let Some(key) = self.key_for_read(Subject::User(user_id)).await? else {
            return Ok(Page::empty());
        };
        let Some((from, upper)) = bounds(range, page) else {
            return Ok(Page::empty());
        };
        let st = &self.ready().await?.statements;
        let days: Vec<(NaiveDate, String, Option<Vec<i32>>)> = self
            .rows::<(NaiveDate, String, Option<Vec<i32>>)>(
                "read user days",
                &st.select_user_days,
                (key.key_id, from.date_naive(), last_day(upper)),
            )
            .await?
            .try_collect()
            .await?;

        let accept = |item: &(Origin, AuditRow)| {
            after_page(page, item)
                && (actions.is_empty()
                    || item.1.action.as_ref().is_some_and(|a| actions.contains(a)))
        };
        let mut found = Vec::new();
        'days: for group in days.chunk_by(|a, b| a.0 == b.0) {
            let day = group[0].0;
            let classes = group
                .iter()
                .map(|(_, class_name, hours)| {
                    let class = RetentionClass::parse(class_name)
                        .ok_or_else(|| StoreError::read("user days", "unknown retention class"))?;
                    Ok((class, hours.clone().unwrap_or_default()))
                })
                .collect::<Result<Vec<_>>>()?;
            let partitions = day_partitions(key.key_id, key.hourly, day, &classes, (from, upper));
            for partitions in partitions {
                let mut streams: Vec<RowStream> = Vec::new();
                for (class, pseudonym) in partitions {
                    let rows = self
                        .rows::<AuditRow>(
                            "read audit rows",
                            &st.class[class_index(class)].select_range,
                            (pseudonym, day, from, upper),
                        )
                        .await?;
                    streams.push(Box::pin(
                        rows.map_ok(move |r| (Origin::Class(class, day), r)),
                    ));
                }
                let want = limit + 1 - found.len();
                found.extend(merge_newest_first(streams, accept, want).await?);
                if found.len() > limit {
                    break 'days;
                }
            }
        }
        self.page(found, limit, |_| async { Ok(Some(key.key.clone())) })
            .await
    }

    /// One record by its id, wherever it is stored; its `event` is `None` once erased.
    pub async fn get_by_id(&self, event_id: &str) -> Result<Option<StoredRecord>> {
        let st = &self.ready().await?.statements;
        type Location = (
            Option<String>,
            Option<Uuid>,
            Option<NaiveDate>,
            Option<DateTime<Utc>>,
            Option<i32>,
        );
        let location = self
            .first_row::<Location>("read record index", &st.select_by_id, &(event_id,))
            .await?;
        let Some((Some(class), Some(key_id), Some(day), Some(time), hour)) = location else {
            return Ok(None);
        };
        let class = RetentionClass::parse(&class)
            .ok_or_else(|| StoreError::read("record index", "unknown retention class"))?;
        let partition = match hour {
            None => key_id,
            Some(hour) => match u8::try_from(hour) {
                Ok(hour) if hour < 24 => bucket_pseudonym(key_id, hour),
                _ => return Err(StoreError::read("record index", "hour out of range")),
            },
        };
        let row = self
            .first_row::<AuditRow>(
                "read audit row",
                &st.class[class_index(class)].select_one,
                &(partition, day, time, event_id),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key = self.data_key(key_id).await?;
        Ok(Some(decode(
            Origin::Class(class, day),
            row,
            key.as_deref(),
        )?))
    }

    /// Security events and alerts with `from <= time < to`, newest first, paged. Reads every
    /// shard of every day in the range: keep ranges to what a report needs.
    pub async fn security_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
        page: Option<&PageToken>,
    ) -> Result<Page> {
        let limit = limit.clamp(1, MAX_PAGE);
        let found = self
            .scan_by_time(
                "read security rows",
                |st| &st.select_by_time,
                (from, to),
                page,
                limit + 1,
                |day, shard, row: AuditRow| (Origin::Time(day, shard), row),
            )
            .await?;
        self.page(found, limit, |key_id| self.data_key(key_id))
            .await
    }

    /// Every record with `from <= time < to`, newest first, paged: its clear labels only
    /// (`event` is always `None`), whether or not its owner was erased. What reports count.
    pub async fn records_by_time(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
        page: Option<&PageToken>,
    ) -> Result<Page> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut rows = self
            .scan_by_time(
                "read record labels",
                |st| &st.select_labels_by_time,
                (from, to),
                page,
                limit + 1,
                |_, _, row: LabelRow| row,
            )
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let records = rows
            .into_iter()
            .map(LabelRow::into_record)
            .collect::<Result<Vec<_>>>()?;
        let next = if more {
            records.last().map(PageToken::after)
        } else {
            None
        };
        Ok(Page { records, next })
    }

    /// The paged read by time both `security_events` and `records_by_time` are: the rows of
    /// `[from, to)` that come after `page`, read with `statement` from the (day, shard)
    /// partitions newest day first, each day's shards merged, until `want` are found. None
    /// when the page token is at or before `from`.
    async fn scan_by_time<R, T>(
        &self,
        context: &'static str,
        statement: fn(&Statements) -> &PreparedStatement,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        page: Option<&PageToken>,
        want: usize,
        wrap: fn(NaiveDate, i32, R) -> T,
    ) -> Result<Vec<T>>
    where
        R: for<'f, 'm> DeserializeRowTrait<'f, 'm> + Send + 'static,
        T: Positioned + Send + 'static,
    {
        let range = TimeRange {
            from: Some(from),
            to: Some(to),
        };
        let Some((from, upper)) = bounds(range, page) else {
            return Ok(Vec::new());
        };
        let ready = self.ready().await?;
        let (statement, shards) = (statement(&ready.statements), ready.shards);
        let accept = |row: &T| after_page(page, row);
        let mut found = Vec::new();
        let first_day = from.date_naive();
        let mut day = last_day(upper);
        while day >= first_day && found.len() < want {
            let mut streams: Vec<Sorted<T>> = Vec::new();
            for shard in 0..shards {
                let rows = self
                    .rows::<R>(context, statement, (day, shard, from, upper))
                    .await?;
                streams.push(Box::pin(rows.map_ok(move |r| wrap(day, shard, r))));
            }
            found.extend(merge_newest_first(streams, &accept, want - found.len()).await?);
            let Some(previous) = day.pred_opt() else {
                break;
            };
            day = previous;
        }
        Ok(found)
    }

    /// Decrypts the first `limit` rows and sets the next-page token when there were more.
    async fn page<F, Fut>(
        &self,
        mut rows: Vec<(Origin, AuditRow)>,
        limit: usize,
        key_of: F,
    ) -> Result<Page>
    where
        F: Fn(Uuid) -> Fut,
        Fut: Future<Output = Result<Option<std::sync::Arc<DataKey>>>>,
    {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let mut records = Vec::with_capacity(rows.len());
        for (origin, row) in rows {
            let key = key_of(row.pseudonym).await?;
            records.push(decode(origin, row, key.as_deref())?);
        }
        let next = if more {
            records.last().map(PageToken::after)
        } else {
            None
        };
        Ok(Page { records, next })
    }
}

/// `[from, upper)` in CQL terms, the page token's position folded into the upper bound (its
/// own millisecond is kept: rows there are sorted by id and filtered by `precedes`).
fn bounds(range: TimeRange, page: Option<&PageToken>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let from = range.from.unwrap_or(DateTime::UNIX_EPOCH);
    let far_future = Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).single()?;
    let mut upper = range.to.unwrap_or(far_future).min(far_future);
    if let Some(p) = page {
        let after_token = DateTime::from_timestamp_millis(p.time_millis.checked_add(1)?)?;
        upper = upper.min(after_token);
    }
    (from < upper).then_some((from, upper))
}

/// The last day with a time below the exclusive `upper`.
fn last_day(upper: DateTime<Utc>) -> NaiveDate {
    (upper - chrono::Duration::milliseconds(1)).date_naive()
}

/// A row's position in the newest-first order: (time in ms, id).
trait Positioned {
    fn position(&self) -> (i64, &str);
}

/// Whether `row` comes after the token `page` ends with: not yet returned by an earlier page.
fn after_page(page: Option<&PageToken>, row: &impl Positioned) -> bool {
    let (time, id) = row.position();
    page.is_none_or(|p| p.precedes(time, id))
}

impl Positioned for (Origin, AuditRow) {
    fn position(&self) -> (i64, &str) {
        (self.1.event_time.timestamp_millis(), &self.1.event_id)
    }
}

impl Positioned for LabelRow {
    fn position(&self) -> (i64, &str) {
        (self.event_time.timestamp_millis(), &self.event_id)
    }
}

type Sorted<T> = Pin<Box<dyn Stream<Item = Result<T>> + Send>>;

/// Merges streams each sorted newest first into one, keeping the first `want` rows `accept`
/// lets through.
async fn merge_newest_first<T: Positioned>(
    streams: Vec<Sorted<T>>,
    accept: impl Fn(&T) -> bool,
    want: usize,
) -> Result<Vec<T>> {
    let mut streams: Vec<Peekable<Sorted<T>>> =
        streams.into_iter().map(StreamExt::peekable).collect();
    let mut out = Vec::new();
    while out.len() < want {
        let mut best: Option<(usize, i64, String)> = None;
        for (i, stream) in streams.iter_mut().enumerate() {
            let head = match Pin::new(&mut *stream).peek().await {
                None => continue,
                Some(Ok(item)) => {
                    let (time, id) = item.position();
                    (time, id.to_owned())
                }
                Some(Err(_)) => match stream.next().await {
                    Some(Err(e)) => return Err(e),
                    _ => continue,
                },
            };
            let newer = best
                .as_ref()
                .is_none_or(|(_, t, id)| head.0 > *t || (head.0 == *t && head.1 < *id));
            if newer {
                best = Some((i, head.0, head.1));
            }
        }
        let Some((i, _, _)) = best else { break };
        let Some(item) = streams[i].next().await else {
            break;
        };
        let item = item?;
        if accept(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

fn decode(origin: Origin, mut row: AuditRow, key: Option<&DataKey>) -> Result<StoredRecord> {
    let bad = |what: &'static str| StoreError::read("audit row", what);
    let clear = row.take_clear();
    let kind = clear
        .kind
        .as_deref()
        .and_then(RecordKind::parse)
        .ok_or_else(|| bad("unknown kind"))?;
    let (class, aad) = match origin {
        Origin::Class(class, day) => (class, class_aad(class, row.pseudonym, day, &row.event_id)),
        Origin::Time(day, shard) => (
            RetentionClass::Security,
            time_aad(day, shard, &row.event_id),
        ),
    };
    let event = match (key, &row.event) {
        // Erased: the key is gone, the ciphertext is noise to everyone.
        (None, _) | (_, None) => None,
        (Some(key), Some(sealed)) => {
            let plaintext = key
                .open(&aad, sealed)
                .ok_or(StoreError::Corrupt("sealed event"))?;
            Some(
                serde_json::from_slice(&plaintext)
                    .map_err(|_| StoreError::Corrupt("sealed event"))?,
            )
        }
    };
    Ok(StoredRecord {
        id: row.event_id,
        kind,
        class,
        event_time: row.event_time,
        event_type: clear.event_type.unwrap_or_default(),
        labels: clear.labels,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_fold_the_page_token_in() {
        let t = |ms| DateTime::from_timestamp_millis(ms).unwrap();
        let range = TimeRange {
            from: Some(t(1_000)),
            to: Some(t(5_000)),
        };
        assert_eq!(bounds(range, None), Some((t(1_000), t(5_000))));
        let token = PageToken {
            time_millis: 3_000,
            id: "x".into(),
        };
        assert_eq!(bounds(range, Some(&token)), Some((t(1_000), t(3_001))));
        let early = PageToken {
            time_millis: 500,
            id: "x".into(),
        };
        assert_eq!(bounds(range, Some(&early)), None);
        assert!(bounds(TimeRange::default(), None).is_some());
        assert_eq!(
            last_day(t(86_400_000)),
            NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
        );
    }
}
