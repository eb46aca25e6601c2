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
//! Inside: `schema` (the tables' layout and DDL), `statements`, `write` (a batch of records
//! to rows), `read` (a node, a parent's children, a conversation's members: the lookups), and
//! [`trail`], the pure walk over those lookups.
//!
//! What this module is not: it does not decide what a record's parent is (the indexer does,
//! from `causationid`).

pub mod trail;

mod read;
pub(crate) mod schema;
mod statements;
mod write;

use std::sync::Arc;

use auditflow_core::RetentionClass;
use chrono::{DateTime, NaiveDate, Utc};

use crate::Store;
use crate::error::{Result, StoreError};

use statements::CausalityStatements;

/// The longest id, type, topic or summary stored; longer values are refused up front.
const MAX_TEXT: usize = 512;

/// How many rows one `children` or `members` call may return at the most.
pub const MAX_READ: usize = 10_000;

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
    /// The event's time: picks its day partitions and orders children.
    pub time: DateTime<Utc>,
    /// The parent: the event this one was caused by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The causal chain it belongs to: `causality_members` indexes records by it.
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
    /// At most the limit asked for.
    pub items: Vec<T>,
    /// Whether rows beyond the limit exist (the reader reports a cut instead of guessing).
    pub more: bool,
}

/// The causality tables of one keyspace. Cheap to share; every method takes `&self`.
pub struct CausalityIndex {
    store: Arc<Store>,
    st: CausalityStatements,
}

impl CausalityIndex {
    /// Checks that the schema is current (fails with `SchemaOutdated` until `migrate` ran) and
    /// prepares the statements.
    pub async fn open(store: Arc<Store>) -> Result<Self> {
        store.ready().await?;
        let st = CausalityStatements::prepare(&store).await?;
        Ok(Self { store, st })
    }
}
