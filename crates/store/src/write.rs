//! The write path: one record becomes up to six rows, all keyed by its id and event time (its
//! leaf by its Kafka position).
//!
//! - its retention class's table, partition (pseudonym, day), sealed event; for an hourly
//!   subject the pseudonym is its hour's bucket (see the `bucket` module);
//! - `security_by_time`, partition (day, shard), for security events and alerts, sealed again
//!   under that row's own associated data;
//! - `records_by_time`, partition (day, shard): its clear labels only, for reports;
//! - `records_by_id` (where it lives: key id, day, and the hour of an hourly subject), with the
//!   class's TTL;
//! - `user_days` (that its user has data that day, and in which hour buckets), a day longer
//!   than the class's TTL, and only when this process has not written that row within the last
//!   hour (see the `index` module for why it still never expires first);
//! - `log_leaves`, partition (topic, partition, block): its leaf of the tamper-evident log, the
//!   canonical bytes of all of the above (the `integrity` module), when the caller gave the
//!   record's Kafka position. Sealing is deterministic, so writing a record again writes the
//!   same leaf.
//!
//! The rows of one call are written in few requests: grouped by the replicas that own them
//! into unlogged batches (the `batch` module), at most `[store] max_concurrency` requests of
//! the whole store handle at once (the `exec` module). No row relies on another being written
//! with it: re-delivery rewrites the same keys, so a crash between them is repaired by the
//! re-delivery the caller's uncommitted offset guarantees.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;

use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use scylla::SerializeRow;
use scylla::serialize::row::SerializeRow as Values;
use scylla::value::MaybeUnset;
use uuid::Uuid;

use crate::Store;
use crate::batch::{RowWrite, WriteStats};
use crate::bucket::partition_of;
use crate::crypto::{Aad, Subject};
use crate::error::{Result, StoreError};
use crate::index::{INDEX_TTL_MARGIN_SECS, index_ttl};
use crate::integrity::schema::block_of;
use crate::integrity::{Leaf, digest};
use crate::keys::{UserKey, WriteKey};
use auditflow_core::RetentionClass;

use crate::schema::{self, SECURITY_BY_TIME, class_table, shard_of};
use crate::statements::class_index;
use crate::stored::{Labels, StorableRecord};

/// The clear label columns, shared by both audit tables.
#[derive(SerializeRow)]
struct LabelColumns<'a> {
    kind: &'a str,
    event_type: &'a str,
    action: Option<&'a str>,
    outcome: Option<&'a str>,
    risk_level: Option<&'a str>,
    severity: Option<&'a str>,
    blocked: Option<bool>,
    data_type: Option<&'a str>,
    record_count: Option<i64>,
    sensitive: Option<bool>,
    sample_rate: Option<f64>,
}

impl<'a> LabelColumns<'a> {
    fn of(record: &'a StorableRecord) -> Self {
        let l: &'a Labels = &record.labels;
        Self {
            kind: record.kind.as_str(),
            event_type: &record.event_type,
            action: l.action.as_deref(),
            outcome: l.outcome.as_deref(),
            risk_level: l.risk_level.as_deref(),
            severity: l.severity.as_deref(),
            blocked: l.blocked,
            data_type: l.data_type.as_deref(),
            record_count: l.record_count,
            sensitive: l.sensitive,
            sample_rate: l.sample_rate,
        }
    }
}

#[derive(SerializeRow)]
struct ClassRow<'a> {
    pseudonym: Uuid,
    day: NaiveDate,
    event_time: DateTime<Utc>,
    event_id: &'a str,
    #[scylla(flatten)]
    labels: LabelColumns<'a>,
    event: Vec<u8>,
}

#[derive(SerializeRow)]
struct TimeRow<'a> {
    day: NaiveDate,
    shard: i32,
    event_time: DateTime<Utc>,
    event_id: &'a str,
    pseudonym: Uuid,
    #[scylla(flatten)]
    labels: LabelColumns<'a>,
    event: Vec<u8>,
}

#[derive(SerializeRow)]
struct LabelTimeRow<'a> {
    day: NaiveDate,
    shard: i32,
    event_time: DateTime<Utc>,
    event_id: &'a str,
    class: &'static str,
    #[scylla(flatten)]
    labels: LabelColumns<'a>,
    #[scylla(rename = "[ttl]")]
    ttl: i32,
}

/// A `log_leaves` row: (topic, partition, block, offset, leaf).
type LeafRow<'a> = (&'a str, i32, i64, i64, Vec<u8>);

/// The clear label columns, about (their strings are short and mostly fixed words).
const LABELS_BYTES: usize = 96;

/// A `records_by_id` row: where the record lives, and where its leaf is.
#[derive(SerializeRow)]
struct IdRow<'a> {
    event_id: &'a str,
    class: &'static str,
    kind: &'static str,
    pseudonym: Uuid,
    day: NaiveDate,
    event_time: DateTime<Utc>,
    hour: MaybeUnset<i32>,
    log_topic: MaybeUnset<&'a str>,
    log_partition: MaybeUnset<i32>,
    log_offset: MaybeUnset<i64>,
    #[scylla(rename = "[ttl]")]
    ttl: i32,
}

/// The associated data of a sealed event in a per-user table.
pub(crate) fn class_aad(
    class: RetentionClass,
    pseudonym: Uuid,
    day: NaiveDate,
    event_id: &str,
) -> Aad {
    Aad::new(class_table(class))
        .part(pseudonym.as_bytes())
        .part(day.to_string().as_bytes())
        .part(event_id.as_bytes())
        .part(b"event")
}

/// The associated data of a sealed event in `security_by_time`.
pub(crate) fn time_aad(day: NaiveDate, shard: i32, event_id: &str) -> Aad {
    Aad::new(SECURITY_BY_TIME)
        .part(day.to_string().as_bytes())
        .part(&shard.to_be_bytes())
        .part(event_id.as_bytes())
        .part(b"event")
}

impl Store {
    /// Stores a batch; all of it or an error. Idempotent: writing the same records again
    /// leaves the same rows. On a transient error (see [`StoreError::is_transient`]) some rows
    /// may be written: write the batch again.
    ///
    /// A record of an erased subject dated before the erasure is stored unreadable (the
    /// `erasure` module). After writing, the batch checks for erasures that landed while it was
    /// in flight: records of such a subject dated from the erasure on were sealed under the
    /// key being destroyed, and are written again under the subject's next key.
    pub async fn write_records(&self, records: &[StorableRecord]) -> Result<WriteStats> {
        let mut stats = WriteStats::default();
        if records.is_empty() {
            return Ok(stats);
        }
        for record in records {
            record.validate()?;
        }
        let ready = self.ready().await?;
        let now = Utc::now();
        for record in records {
            ready
                .expiry_limit
                .check(record.class, self.longest_ttl_secs(record.class), now)?;
        }
        let mut pending: Vec<&StorableRecord> = records.iter().collect();
        for _ in 0..self.max_attempts {
            let plan = self.seal_plan(&pending).await?;
            stats += self.write_sealed(ready, &pending, &plan).await?;
            self.poll_erasures().await?;
            let mut again = Vec::new();
            for (subject, keys) in &plan {
                let erased_at = self.erased_at(*subject).await?;
                if let Some(erased) = erased_at.filter(|_| erased_at > keys.erased_at) {
                    again.extend(
                        pending
                            .iter()
                            .filter(|r| subject_of(r) == *subject && r.event_time >= erased),
                    );
                }
            }
            if again.is_empty() {
                return Ok(stats);
            }
            pending = again;
        }
        Err(StoreError::Read {
            context: "write records",
            detail: "their subjects kept being erased while they were written".into(),
        })
    }

    /// Writes `records` sealed as `plan` says.
    async fn write_sealed(
        &self,
        ready: &crate::Ready,
        records: &[&StorableRecord],
        plan: &HashMap<Subject<'_>, SubjectKeys>,
    ) -> Result<WriteStats> {
        let st = &ready.statements;
        let mut rows: Vec<RowWrite<'_>> = Vec::with_capacity(records.len() * 4);
        let mut index_rows = Vec::new();
        let mut days_seen = HashSet::new();
        for record in records.iter().copied() {
            let sealing = plan[&subject_of(record)].for_record(record)?;
            let plaintext = serde_json::to_vec(&record.event)
                .map_err(|e| StoreError::InvalidRecord(format!("event not serializable: {e}")))?;
            let day = record.day();
            let class_ttl = i32::try_from(self.ttl_secs(record.class)).unwrap_or(i32::MAX);
            let (key_id, hourly, live) = match sealing {
                Sealing::Live(key) => (key.key_id, key.hourly, Some(&key.key)),
                Sealing::Shredded { hourly } => {
                    (self.keyring.shredded_id(&record.id), hourly, None)
                }
            };
            let (partition, hour) = partition_of(key_id, hourly, record.event_time);
            let hour = hour.map(i32::from);
            // A shredded record stores no ciphertext at all: nothing to open, ever.
            let seal = |aad: Aad| live.map_or_else(Vec::new, |key| key.seal(&aad, &plaintext));
            let sealed = seal(class_aad(record.class, partition, day, &record.id));
            let shard = shard_of(&record.id, ready.shards);
            let time_sealed = record
                .kind
                .is_security()
                .then(|| seal(time_aad(day, shard, &record.id)));
            let id_bytes = record.id.len();
            if let Some(position) = &record.position {
                let leaf = Leaf {
                    position: position.clone(),
                    event_id: record.id.clone(),
                    kind: record.kind,
                    class: record.class,
                    event_type: record.event_type.clone(),
                    labels: record.labels.clone(),
                    event_time_ms: record.event_time.timestamp_millis(),
                    key_id,
                    day,
                    hour,
                    pseudonym: partition,
                    shard,
                    event_digest: digest(&sealed),
                    time_event_digest: time_sealed.as_deref().map(digest),
                    indexed: live.is_some(),
                    ttl_secs: class_ttl,
                }
                .encode();
                let bytes = leaf.len() + position.log.topic.len();
                let values: LeafRow<'_> = (
                    position.log.topic.as_str(),
                    position.log.partition,
                    block_of(position.offset),
                    position.offset,
                    leaf,
                );
                rows.push(RowWrite::new(
                    &ready.integrity.insert_leaf,
                    Box::new(values),
                    bytes,
                ));
            }
            let labels_bytes = LABELS_BYTES + record.event_type.len();
            let class_bytes = sealed.len() + id_bytes + labels_bytes;
            rows.push(RowWrite::new(
                &st.class[class_index(record.class)].insert,
                Box::new(ClassRow {
                    pseudonym: partition,
                    day,
                    event_time: record.event_time,
                    event_id: &record.id,
                    labels: LabelColumns::of(record),
                    event: sealed,
                }),
                class_bytes,
            ));
            if let Some(event) = time_sealed {
                let bytes = event.len() + id_bytes + labels_bytes;
                rows.push(RowWrite::new(
                    &st.insert_by_time,
                    Box::new(TimeRow {
                        day,
                        shard,
                        event_time: record.event_time,
                        event_id: &record.id,
                        pseudonym: key_id,
                        labels: LabelColumns::of(record),
                        event,
                    }),
                    bytes,
                ));
            }
            rows.push(RowWrite::new(
                &st.insert_labels_by_time,
                Box::new(LabelTimeRow {
                    day,
                    shard,
                    event_time: record.event_time,
                    event_id: &record.id,
                    class: record.class.as_str(),
                    labels: LabelColumns::of(record),
                    ttl: class_ttl,
                }),
                id_bytes + labels_bytes,
            ));
            let position = record.position.as_ref();
            rows.push(RowWrite::new(
                &st.insert_by_id,
                Box::new(IdRow {
                    event_id: &record.id,
                    class: record.class.as_str(),
                    kind: record.kind.as_str(),
                    pseudonym: key_id,
                    day,
                    event_time: record.event_time,
                    hour: MaybeUnset::from_option(hour),
                    log_topic: MaybeUnset::from_option(position.map(|p| p.log.topic.as_str())),
                    log_partition: MaybeUnset::from_option(position.map(|p| p.log.partition)),
                    log_offset: MaybeUnset::from_option(position.map(|p| p.offset)),
                    ttl: class_ttl,
                }),
                id_bytes + position.map_or(0, |p| p.log.topic.len()),
            ));
            let index_key = (key_id, day, record.class, hour);
            if live.is_some()
                && days_seen.insert(index_key)
                && self.written_index.get(&index_key).is_none()
            {
                index_rows.push((index_key, index_ttl(class_ttl)));
            }
        }
        for (key @ (key_id, day, class, hour), ttl) in index_rows {
            let class = class.as_str();
            let (statement, values): (_, Box<dyn Values + Send + Sync>) = match hour {
                None => (&st.insert_user_day, Box::new((key_id, day, class, ttl))),
                Some(hour) => (
                    &st.add_user_hour,
                    Box::new((ttl, vec![hour], key_id, day, class)),
                ),
            };
            rows.push(RowWrite {
                index: Some(key),
                ..RowWrite::new(statement, values, 0)
            });
        }
        self.write_rows(rows).await
    }

    /// The longest TTL a row of `class` is written with: its index rows'.
    pub(crate) fn longest_ttl_secs(&self, class: RetentionClass) -> i64 {
        self.ttl_secs(class) + INDEX_TTL_MARGIN_SECS
    }

    pub(crate) fn ttl_secs(&self, class: RetentionClass) -> i64 {
        let params = schema::SchemaParams {
            keyspace: &self.keyspace,
            retention: &self.retention,
        };
        schema::ttl_seconds(params.ttl_days(class))
    }

    /// How each distinct subject of the batch is sealed, worked out concurrently.
    async fn seal_plan<'r>(
        &self,
        records: &[&'r StorableRecord],
    ) -> Result<HashMap<Subject<'r>, SubjectKeys>> {
        let mut times: HashMap<Subject<'r>, Vec<DateTime<Utc>>> = HashMap::new();
        for record in records {
            times
                .entry(subject_of(record))
                .or_default()
                .push(record.event_time);
        }
        let lookups: Vec<BoxedKeys<'_, 'r>> = times
            .into_iter()
            .map(|(subject, times)| -> BoxedKeys<'_, 'r> {
                Box::pin(async move { Ok((subject, self.subject_keys(subject, &times).await?)) })
            })
            .collect();
        futures::stream::iter(lookups)
            .buffer_unordered(self.max_concurrency)
            .try_collect()
            .await
    }

    /// The keys a subject's records dated at `times` need: its live key for those dated from
    /// its last erasure on; those dated before it are shredded.
    async fn subject_keys(
        &self,
        subject: Subject<'_>,
        times: &[DateTime<Utc>],
    ) -> Result<SubjectKeys> {
        let mut erased_at = self.erased_at(subject).await?;
        for _ in 0..self.max_attempts {
            let after = |t: &DateTime<Utc>| erased_at.is_none_or(|e| *t >= e);
            let live = if times.iter().any(after) {
                match self.key_for_write(subject, erased_at).await? {
                    WriteKey::Live(key) => Some(key),
                    WriteKey::ErasedMeanwhile(at) => {
                        erased_at = Some(at);
                        continue;
                    }
                }
            } else {
                None
            };
            return Ok(SubjectKeys {
                erased_at,
                live,
                hourly: self.is_hourly(subject),
            });
        }
        Err(StoreError::Read {
            context: "create data key",
            detail: "the subject kept being erased".into(),
        })
    }
}

/// How one subject's records of a batch are sealed.
struct SubjectKeys {
    /// The subject's last erasure, as known when the keys were chosen.
    erased_at: Option<DateTime<Utc>>,
    /// For records dated from `erased_at` on (all of them when never erased).
    live: Option<UserKey>,
    /// Whether the subject's shredded records are partitioned by hour, as a live key would be.
    hourly: bool,
}

/// How one record is sealed.
enum Sealing<'a> {
    /// Under its subject's key, and indexed under it in `user_days`.
    Live(&'a UserKey),
    /// Dated before its subject's erasure: stored with no ciphertext, under a pseudonym of its
    /// own (`Keyring::shredded_id`), reachable from no user.
    Shredded { hourly: bool },
}

impl SubjectKeys {
    fn for_record(&self, record: &StorableRecord) -> Result<Sealing<'_>> {
        if self.erased_at.is_some_and(|e| record.event_time < e) {
            return Ok(Sealing::Shredded {
                hourly: self.hourly,
            });
        }
        self.live
            .as_ref()
            .map(Sealing::Live)
            .ok_or_else(|| StoreError::Read {
                context: "write records",
                detail: "no key was chosen for a record".into(),
            })
    }
}

type BoxedKeys<'a, 'r> =
    Pin<Box<dyn Future<Output = Result<(Subject<'r>, SubjectKeys)>> + Send + 'a>>;

fn subject_of(record: &StorableRecord) -> Subject<'_> {
    match record.user_id.as_deref() {
        Some(user) => Subject::User(user),
        None => Subject::NoUser,
    }
}
