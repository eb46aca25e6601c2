//! The causality index: which record caused which, and which records share a conversation.
//!
//! Written by the causality indexer, read by `auditflow trail` through the [`trail`] walk.
//! Tables (migration 2):
//!
//! | table | partition | clustering | what |
//! |---|---|---|---|
//! | `causality_nodes` | id | | one row per indexed record: type, time, causation and correlation ids, topic |
//! | `causality_children` | (parent_id, day) | event_time, id | the records a parent caused, bucketed by the child's day |
//! | `causality_child_days` | parent_id | day, class | which `causality_children` buckets of a parent hold rows of a class |
//! | `causality_members` | (correlation_id, day) | event_time, id | a conversation's records in time order, by day |
//! | `causality_member_days` | correlation_id | day, class | which `causality_members` buckets of a conversation hold rows of a class |
//!
//! A parent need not be indexed itself: the producers' input events are never on an audit
//! topic, yet every audit record names one as its `causationid`. Such a node is known only
//! through the `causality_children` rows that name it, which carry everything a trail shows.
//!
//! Nothing personal is stored: ids, type names, times, topic names, the retention class and a
//! short summary the indexer builds from an allow-list of closed-vocabulary fields (action,
//! outcome, severity, rule, level…). No user id, ip, subject or data.
//!
//! Writes are idempotent upserts keyed by the record's id and time (re-delivery rewrites the
//! same rows). Every row lives as long as the record's retention class; a bucket index row
//! lives a day longer than the rows of its class it stands for (the class is part of its key,
//! so a short-lived record never shortens the life of the index of a long-lived one).
//!
//! Partitions are bounded: a bucket holds one parent's children, or one conversation's
//! records, of one day (in this pipeline a parent has a handful of children — an input's audit
//! records, an event's alerts, an alert's actions; a conversation is one input's consequences
//! unless producers reuse a correlation id), and a bucket index holds at most one row per day
//! and class of the retention period. Reads are bounded too: a caller says how many rows it
//! wants, and the bucket indexes mean no read scans.
//!
//! What this module is not: it does not decide what a record's parent is (the indexer does,
//! from `causationid`).

pub mod trail;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use auditflow_core::RetentionClass;
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use scylla::statement::prepared::PreparedStatement;
use scylla::{DeserializeRow, SerializeRow};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::schema::SchemaParams;
use crate::exec::prepare;

/// The longest id, type, topic or summary stored; longer values are refused up front.
const MAX_TEXT: usize = 512;

/// How many rows one `children` or `members` call may return at the most.
pub const MAX_READ: usize = 10_000;

/// The clear columns of a record in every causality table, after its links.
const RECORD_COLUMNS: &str = "event_type, original_type, topic, summary, class";

/// One of the two day-bucketed tables and its bucket index. Both hold whole records, keyed by
/// one of the record's links and bucketed by the record's day; the other link is a column.
struct Layout {
    table: &'static str,
    days_table: &'static str,
    /// The partition key column: the link the table is read by.
    key: &'static str,
    /// Which of the record's links the key is.
    key_is: &'static str,
    /// The other link, kept as a column.
    other: &'static str,
    read_context: &'static str,
}

/// Parent → children: `causality_children`, by the child's cause.
const CHILDREN: Layout = Layout {
    table: "causality_children",
    days_table: "causality_child_days",
    key: "parent_id",
    key_is: "causation_id",
    other: "correlation_id",
    read_context: "read causal edges",
};

/// Correlation → members: `causality_members`, by the member's correlation id.
const MEMBERS: Layout = Layout {
    table: "causality_members",
    days_table: "causality_member_days",
    key: "correlation_id",
    key_is: "correlation_id",
    other: "causation_id",
    read_context: "read correlation members",
};

/// Migration 2: the causality tables (see the module docs).
pub(crate) fn migration(p: &SchemaParams) -> Vec<String> {
    let ks = p.keyspace;
    let record = "event_type text, original_type text, topic text, summary text, class text";
    let mut ddl = vec![format!(
        "CREATE TABLE IF NOT EXISTS {ks}.causality_nodes (\
           id text PRIMARY KEY, event_time timestamp, causation_id text, \
           correlation_id text, {record})"
    )];
    for Layout {
        table,
        days_table,
        key,
        other,
        ..
    } in [CHILDREN, MEMBERS]
    {
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{table} (\
               {key} text, day date, event_time timestamp, id text, {other} text, {record}, \
               PRIMARY KEY (({key}, day), event_time, id)) \
             WITH CLUSTERING ORDER BY (event_time ASC, id ASC)"
        ));
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{days_table} (\
               {key} text, day date, class text, PRIMARY KEY (({key}), day, class)) \
             WITH CLUSTERING ORDER BY (day ASC, class ASC)"
        ));
    }
    ddl
}

/// One record of the causality graph, as written and as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CausalRecord {
    /// The CloudEvent id.
    pub id: String,
    /// The CloudEvent type, e.g. `audit.user.action` or `security.alert`.
    pub event_type: String,
    /// The input's type (`originaltype`) of an audit record, e.g. `user.login.attempt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
    pub time: DateTime<Utc>,
    /// The parent: the event this one was caused by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The topic the record was consumed from.
    pub topic: String,
    /// Non-personal labels, e.g. `login_attempt failure high` or `brute_force medium 50`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// How long its rows live.
    pub class: RetentionClass,
}

impl CausalRecord {
    /// What `write` would refuse, checked up front so a caller can dead-letter one record
    /// instead of failing its whole batch.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("id", Some(&self.id)),
            ("type", Some(&self.event_type)),
            ("topic", Some(&self.topic)),
            ("originaltype", self.original_type.as_ref()),
            ("causationid", self.causation_id.as_ref()),
            ("correlationid", self.correlation_id.as_ref()),
            ("summary", self.summary.as_ref()),
        ];
        for (name, value) in fields {
            if let Some(value) = value
                && (value.is_empty() || value.len() > MAX_TEXT)
            {
                return Err(StoreError::InvalidRecord(format!(
                    "{name} must be 1..={MAX_TEXT} bytes"
                )));
            }
        }
        Ok(())
    }

    fn day(&self) -> NaiveDate {
        self.time.date_naive()
    }
}

/// Up to the rows asked for, and whether more exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded<T> {
    pub items: Vec<T>,
    pub more: bool,
}

/// The causality tables of one keyspace. Cheap to share; every method takes `&self`.
pub struct CausalityIndex {
    store: Arc<Store>,
    st: CausalityStatements,
}

struct CausalityStatements {
    insert_node: PreparedStatement,
    select_node: PreparedStatement,
    children: BucketStatements,
    members: BucketStatements,
}

/// The statements of one [`Layout`].
struct BucketStatements {
    table: &'static str,
    read_context: &'static str,
    insert: PreparedStatement,
    insert_day: PreparedStatement,
    select_days: PreparedStatement,
    select_rows: PreparedStatement,
}

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

type BoxedWrite<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// One statement to run for a write.
enum Write<'a> {
    Node(NodeRow<'a>),
    Bucketed(&'a BucketStatements, EdgeRow<'a>),
    BucketDay(
        &'a BucketStatements,
        (&'a str, NaiveDate, &'static str, i32),
    ),
}

impl CausalityIndex {
    /// Checks that the schema is current (fails with `SchemaOutdated` until `migrate` ran) and
    /// prepares the statements.
    pub async fn open(store: Arc<Store>) -> Result<Self> {
        store.ready().await?;
        let st = CausalityStatements::prepare(&store).await?;
        Ok(Self { store, st })
    }

    /// Stores a batch; all of it or an error. Idempotent: writing the same records again
    /// leaves the same rows. On error some rows may be written: write the batch again.
    pub async fn write(&self, records: &[CausalRecord]) -> Result<()> {
        for record in records {
            record.validate()?;
        }
        let expiry_limit = self.store.ready().await?.expiry_limit;
        let now = Utc::now();
        let mut writes = Vec::with_capacity(records.len() * 5);
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
            writes.push(Write::Node(NodeRow {
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
            }));
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
                writes.push(Write::Bucketed(bucketed, edge(key, other)));
                if buckets.insert((bucketed.table, key, day, r.class)) {
                    let index_row = (key, day, r.class.as_str(), index_ttl);
                    writes.push(Write::BucketDay(bucketed, index_row));
                }
            }
        }
        // Boxed up front, as in `write_records`: a `map` closure over borrowed rows inside
        // `buffer_unordered` trips rustc's higher-ranked `Send` inference when callers spawn
        // this future.
        let writes: Vec<BoxedWrite<'_>> = writes
            .into_iter()
            .map(|write| -> BoxedWrite<'_> { Box::pin(self.write_one(write)) })
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(self.store.max_concurrency)
            .try_collect::<()>()
            .await
    }

    async fn write_one(&self, write: Write<'_>) -> Result<()> {
        let store = &*self.store;
        match &write {
            Write::Node(v) => {
                store
                    .execute("write causal node", &self.st.insert_node, v)
                    .await
            }
            Write::Bucketed(b, v) => store.execute("write causal edge", &b.insert, v).await,
            Write::BucketDay(b, v) => {
                store
                    .execute("write causal bucket index", &b.insert_day, v)
                    .await
            }
        }
        .map(|_| ())
    }

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

impl CausalityStatements {
    async fn prepare(store: &Store) -> Result<Self> {
        let (s, ks) = (&store.session, &store.keyspace);
        Ok(Self {
            insert_node: prepare(
                s,
                format!(
                    "INSERT INTO {ks}.causality_nodes (id, event_time, causation_id, \
                     correlation_id, {RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     USING TTL ?"
                ),
                true,
            )
            .await?,
            select_node: prepare(
                s,
                format!(
                    "SELECT id, event_time, causation_id, correlation_id, {RECORD_COLUMNS} \
                     FROM {ks}.causality_nodes WHERE id = ?"
                ),
                true,
            )
            .await?,
            children: BucketStatements::prepare(store, &CHILDREN).await?,
            members: BucketStatements::prepare(store, &MEMBERS).await?,
        })
    }
}

impl BucketStatements {
    async fn prepare(store: &Store, layout: &Layout) -> Result<Self> {
        let (s, ks) = (&store.session, &store.keyspace);
        let &Layout {
            table,
            days_table,
            key,
            key_is,
            other,
            read_context,
        } = layout;
        Ok(Self {
            table,
            read_context,
            // In `EdgeRow` order.
            insert: prepare(
                s,
                format!(
                    "INSERT INTO {ks}.{table} ({key}, day, event_time, id, {other}, \
                     {RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
                ),
                true,
            )
            .await?,
            insert_day: prepare(
                s,
                format!(
                    "INSERT INTO {ks}.{days_table} ({key}, day, class) VALUES (?, ?, ?) \
                     USING TTL ?"
                ),
                true,
            )
            .await?,
            select_days: prepare(
                s,
                format!("SELECT day FROM {ks}.{days_table} WHERE {key} = ? LIMIT ?"),
                true,
            )
            .await?,
            // Named as `RecordRow` reads them: the key is one of the record's links.
            select_rows: prepare(
                s,
                format!(
                    "SELECT id, event_time, {key} AS {key_is}, {other}, {RECORD_COLUMNS} \
                     FROM {ks}.{table} WHERE {key} = ? AND day = ? LIMIT ?"
                ),
                true,
            )
            .await?,
        })
    }
}
