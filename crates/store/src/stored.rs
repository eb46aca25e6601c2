//! An audit record as the store's callers see it: what the sink hands in (`StorableRecord`)
//! and what reads hand back (`StoredRecord`, a `Page` at a time).
//!
//! A record is split in two: `Labels`, an allow-list of non-personal columns stored in clear
//! (kind, type, action, outcome, risk, severity, counts, times, retention class) so reports can
//! count records whose owner was erased; and the whole CloudEvent, sealed with its subject's
//! key. Nothing personal can reach a clear column by forgetting to list it: only what is listed
//! in `Labels` is ever stored unencrypted.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use auditflow_core::RetentionClass;

use crate::error::{Result, StoreError};
use crate::integrity::LogPosition;

/// Which audit topic a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// `audit.user.action`.
    UserAction,
    /// `audit.data.access`.
    DataAccess,
    /// `audit.security.event`: also stored by time, for `report security`.
    SecurityEvent,
    /// `security.alerts`: also stored by time, for `report security`.
    Alert,
    /// `audit.operator.action`: what an operator's command did to audit data, filed under the
    /// operator (docs/operator-log.md).
    OperatorAction,
    /// `audit.sampling.summary`: how many inputs of one type the classifier sampled out (one
    /// transaction, one input partition, one hour), filed under no one.
    SamplingSummary,
}

impl RecordKind {
    /// The name stored in the `kind` column and shown in query output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserAction => "user_action",
            Self::DataAccess => "data_access",
            Self::SecurityEvent => "security_event",
            Self::Alert => "alert",
            Self::OperatorAction => "operator_action",
            Self::SamplingSummary => "sampling_summary",
        }
    }

    /// The kind a stored `kind` column names, if it is one (the reverse of [`Self::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::UserAction,
            Self::DataAccess,
            Self::SecurityEvent,
            Self::Alert,
            Self::OperatorAction,
            Self::SamplingSummary,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Security events and alerts are also stored by time, for `report security`.
    pub(crate) fn is_security(self) -> bool {
        matches!(self, Self::SecurityEvent | Self::Alert)
    }
}

/// The non-personal columns, stored in clear. Each is a closed vocabulary or a type name, never
/// free text from a user: `action` is the user action's action, the data access's operation,
/// the security event's event type or the alert's rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Labels {
    /// The action, operation, event type or rule (see above): what `--action` filters on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A user action's outcome (`success`, `failure`, `partial`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// A user action's risk level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<String>,
    /// A security event's severity or an alert's level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Whether a security event's producer blocked the attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<bool>,
    /// A data access's kind of data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    /// How many records a data access touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_count: Option<i64>,
    /// Whether a data access touched data its producer marked sensitive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// The sampling rate the record was kept at (`samplerate`), so reports can scale counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
}

/// The clear columns every row of a record holds, as read: its kind and type as stored, and its
/// labels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClearColumns {
    pub(crate) kind: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) labels: Labels,
}

/// A row type read from a table holding a record's clear columns: the fields given, then
/// `kind`, `event_type` and every [`Labels`] column, deserialized by name; and `take_clear`,
/// which moves those out. One list of the label columns for every read (the queries' and
/// `verify`'s), beside the type they fill.
macro_rules! label_row {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(scylla::DeserializeRow)]
        struct $name {
            $($field: $ty,)*
            kind: Option<String>,
            event_type: Option<String>,
            action: Option<String>,
            outcome: Option<String>,
            risk_level: Option<String>,
            severity: Option<String>,
            blocked: Option<bool>,
            data_type: Option<String>,
            record_count: Option<i64>,
            sensitive: Option<bool>,
            sample_rate: Option<f64>,
        }

        impl $name {
            /// The row's clear columns, moved out of it.
            fn take_clear(&mut self) -> $crate::stored::ClearColumns {
                $crate::stored::ClearColumns {
                    kind: self.kind.take(),
                    event_type: self.event_type.take(),
                    labels: $crate::stored::Labels {
                        action: self.action.take(),
                        outcome: self.outcome.take(),
                        risk_level: self.risk_level.take(),
                        severity: self.severity.take(),
                        blocked: self.blocked.take(),
                        data_type: self.data_type.take(),
                        record_count: self.record_count.take(),
                        sensitive: self.sensitive.take(),
                        sample_rate: self.sample_rate.take(),
                    },
                }
            }
        }
    };
}
pub(crate) use label_row;

/// One audit record to store, as the sink builds it from a consumed CloudEvent.
#[derive(Debug, Clone)]
pub struct StorableRecord {
    /// The CloudEvent id (deterministic: re-delivery writes the same rows again).
    pub id: String,
    /// Which audit topic it came from; decides the by-time tables it also goes to.
    pub kind: RecordKind,
    /// Its `retention` extension: which table, and so which TTL.
    pub class: RetentionClass,
    /// The event's time: picks the day (and hour) partitions and orders reads.
    pub event_time: DateTime<Utc>,
    /// The CloudEvent type, e.g. `audit.user.action`.
    pub event_type: String,
    /// Whose key seals the event and whose trail it joins; `None` for ip-only records.
    pub user_id: Option<String>,
    /// The clear, non-personal columns.
    pub labels: Labels,
    /// The whole CloudEvent, stored only sealed.
    pub event: serde_json::Value,
    /// The Kafka record it was stored from: its place in the tamper-evident log (the
    /// `integrity` module). `None` stores no leaf: the record is in no log, and
    /// `auditflow verify` reports its rows as not covered.
    pub position: Option<LogPosition>,
}

/// Ids longer than this are refused: they are keys, and no producer needs more.
const MAX_ID_LEN: usize = 512;

impl StorableRecord {
    /// What `write_records` would refuse, checked up front so a caller can dead-letter one
    /// record instead of failing its whole batch.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_empty() || self.id.len() > MAX_ID_LEN {
            return Err(StoreError::InvalidRecord(format!(
                "event id must be 1..={MAX_ID_LEN} bytes"
            )));
        }
        if self.user_id.as_deref() == Some("") {
            return Err(StoreError::InvalidRecord("empty user id".into()));
        }
        if self.event_type.is_empty() {
            return Err(StoreError::InvalidRecord("empty event type".into()));
        }
        Ok(())
    }

    /// The day bucket of the record's partitions (UTC).
    pub(crate) fn day(&self) -> NaiveDate {
        self.event_time.date_naive()
    }
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRecord {
    /// The CloudEvent id.
    pub id: String,
    /// Which audit topic it came from.
    pub kind: RecordKind,
    /// The retention class (the table) it was read from.
    pub class: RetentionClass,
    /// The event's time.
    pub event_time: DateTime<Utc>,
    /// The CloudEvent type.
    pub event_type: String,
    /// The clear columns, readable whether or not the subject was erased.
    #[serde(flatten)]
    pub labels: Labels,
    /// The CloudEvent as stored; `None` once its subject's key was destroyed (erased).
    pub event: Option<serde_json::Value>,
}

/// A time range: `from` inclusive, `to` exclusive; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// The earliest event time included.
    pub from: Option<DateTime<Utc>>,
    /// The first event time no longer included.
    pub to: Option<DateTime<Utc>>,
}

/// One page of results, newest first, and where the next page starts.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// At most the requested limit, newest first.
    pub records: Vec<StoredRecord>,
    /// Where to continue (`--page`); `None` when nothing is left to read.
    pub next: Option<PageToken>,
}

impl Page {
    /// No records and no next page: an unknown user, or a range with nothing left to read.
    pub fn empty() -> Self {
        Self {
            records: Vec::new(),
            next: None,
        }
    }
}

/// Where a page ended: the position of its last record in the (time desc, id asc) order.
/// Opaque to users (hex), stable across processes and restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub(crate) time_millis: i64,
    pub(crate) id: String,
}

impl PageToken {
    pub(crate) fn after(record: &StoredRecord) -> Self {
        Self {
            time_millis: record.event_time.timestamp_millis(),
            id: record.id.clone(),
        }
    }

    /// A token as a user passes it back (`--page`); `InvalidPageToken` when it is not one
    /// this store wrote.
    pub fn parse(token: &str) -> Result<Self> {
        let bytes = decode_hex(token).ok_or(StoreError::InvalidPageToken)?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::InvalidPageToken)?;
        let rest = text
            .strip_prefix("1\n")
            .ok_or(StoreError::InvalidPageToken)?;
        let (millis, id) = rest.split_once('\n').ok_or(StoreError::InvalidPageToken)?;
        let time_millis = millis.parse().map_err(|_| StoreError::InvalidPageToken)?;
        Ok(Self {
            time_millis,
            id: id.to_owned(),
        })
    }

    /// Is this (time, id) strictly after the token in newest-first order?
    pub(crate) fn precedes(&self, time_millis: i64, id: &str) -> bool {
        time_millis < self.time_millis || (time_millis == self.time_millis && id > self.id.as_str())
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in format!("1\n{}\n{}", self.time_millis, self.id).bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for PageToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 4 * MAX_ID_LEN {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let t = PageToken {
            time_millis: 1_700_000_000_123,
            id: "evt:1\n2".into(),
        };
        assert_eq!(PageToken::parse(&t.to_string()).unwrap(), t);
        for bad in ["", "zz", "abc", "00", &"41".repeat(10)] {
            assert!(PageToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_order_is_newest_first_then_id() {
        let t = PageToken {
            time_millis: 10,
            id: "b".into(),
        };
        assert!(t.precedes(9, "a"));
        assert!(t.precedes(10, "c"));
        assert!(!t.precedes(10, "b"));
        assert!(!t.precedes(10, "a"));
        assert!(!t.precedes(11, "z"));
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            RecordKind::UserAction,
            RecordKind::DataAccess,
            RecordKind::SecurityEvent,
            RecordKind::Alert,
        ] {
            assert_eq!(RecordKind::parse(k.as_str()), Some(k));
        }
    }
}
