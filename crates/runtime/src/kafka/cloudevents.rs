//! The CloudEvents Kafka binding as every service reads and writes it: a consumed record
//! becomes the core's [`Event`] with the time it was received ([`decode_event`]), the core's
//! [`Rejection`] of a record becomes its [`DeadLetter`], and an event to publish becomes a
//! structured-mode record with its headers ([`event_record`]).
//!
//! Which mode a record is in, and what its attributes are, is the core's
//! [`decode_record`]; what is here is the Kafka side of it:
//!
//! - **A header without a value is absent.** Kafka lets a header carry no value at all, which
//!   the binding gives no meaning; CloudEvents treats an attribute whose value is null as unset
//!   (JSON event format), so a valueless `ce_*` header sets no attribute, and a valueless
//!   `ce_specversion` does not make a record binary-mode.
//! - **The record timestamp is the event time of an event without `time`**
//!   (docs/topics-and-records.md), and, for the security monitor, when it was received. A record
//!   without one (not possible with Kafka ≥ 0.10) falls back to the caller's `now`, and so does
//!   one whose timestamp no RFC 3339 time can write (a producer may set any 64-bit
//!   `CreateTime`; see [`is_writable_time`]): the event is kept, with the time it arrived.

use auditflow_core::config::Limits;
use auditflow_core::envelope::{Event, Rejection, decode_record, is_writable_time};
use chrono::{DateTime, Utc};

use crate::kafka::records::{DeadLetter, InputRecord, OutputRecord};

/// The `content-type` of every record auditflow publishes: structured-mode CloudEvents.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// A consumed record read as a CloudEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEvent {
    /// The event, from the record's value (structured mode) or headers and value (binary mode).
    pub event: Event,
    /// The Kafka record timestamp (or the caller's `now` when the record has none).
    pub received: DateTime<Utc>,
}

impl RecordEvent {
    /// The event's `time`, or when it was received when it names none.
    pub fn time(&self) -> DateTime<Utc> {
        self.event.time_or(self.received)
    }
}

/// Decodes a consumed record as a CloudEvent within `limits`, in either content mode; `now` is
/// the time of last resort (see the module doc). A rejection becomes a dead letter with
/// `DeadLetter::from`.
pub fn decode_event(
    record: &InputRecord,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<RecordEvent, Rejection> {
    let event = decode_record(record.valued_headers(), record.payload(), limits)?;
    let received = record
        .timestamp_ms
        .and_then(DateTime::from_timestamp_millis)
        .filter(is_writable_time)
        .unwrap_or(now);
    Ok(RecordEvent { event, received })
}

/// A rejected record's dead letter: the reason code and the human detail.
impl From<Rejection> for DeadLetter {
    fn from(rejection: Rejection) -> Self {
        DeadLetter::new(rejection.reason.as_str(), rejection.detail)
    }
}

/// `event` as a structured-mode record on `topic`: the event's JSON as the value, and the
/// headers every auditflow output carries (`ce_type`, `ce_id`, and `content-type`
/// [`CONTENT_TYPE`]) so readers can route and deduplicate without parsing the value.
pub fn event_record(topic: impl Into<String>, key: Option<Vec<u8>>, event: &Event) -> OutputRecord {
    structured_record(topic, key, &event.ty, &event.id, event.to_json_bytes())
}

/// [`event_record`] of an event already serialized: `value` is its structured-mode JSON, `ty`
/// and `id` its `type` and `id` (the classifier writes its outputs straight to bytes).
pub fn structured_record(
    topic: impl Into<String>,
    key: Option<Vec<u8>>,
    ty: &str,
    id: &str,
    value: Vec<u8>,
) -> OutputRecord {
    OutputRecord::new(topic, key, value)
        .with_header("ce_type", ty)
        .with_header("ce_id", id)
        .with_header("content-type", CONTENT_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: Vec<(&str, Option<&[u8]>)>, value: &[u8]) -> InputRecord {
        InputRecord {
            topic: "user.events".into(),
            partition: 0,
            offset: 7,
            key: None,
            payload: Some(value.to_vec()),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                .collect(),
            timestamp_ms: Some(1_700_000_000_000),
        }
    }

    const STRUCTURED: &[u8] = br#"{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"user:u1"}"#;

    #[test]
    fn without_a_time_the_record_timestamp_is_the_event_time() {
        let now = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        let decoded = decode_event(&record(vec![], STRUCTURED), &Limits::default(), now).unwrap();
        assert_eq!(decoded.event.id, "e1");
        assert_eq!(decoded.received.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(decoded.time(), decoded.received);
        // No record timestamp: the caller's now.
        let mut untimed = record(vec![], STRUCTURED);
        untimed.timestamp_ms = None;
        assert_eq!(
            decode_event(&untimed, &Limits::default(), now)
                .unwrap()
                .time(),
            now
        );
        // A record timestamp no RFC 3339 time can write (year 10000, or before year 0): now.
        for millis in [253_402_300_800_000, -62_167_219_200_001, i64::MAX] {
            let mut forged = record(vec![], STRUCTURED);
            forged.timestamp_ms = Some(millis);
            let decoded = decode_event(&forged, &Limits::default(), now).unwrap();
            assert_eq!(decoded.time(), now, "{millis}");
        }
        let mut last = record(vec![], STRUCTURED);
        last.timestamp_ms = Some(253_402_300_799_999);
        let decoded = decode_event(&last, &Limits::default(), now).unwrap();
        assert_eq!(decoded.time().to_rfc3339(), "9999-12-31T23:59:59.999+00:00");
        // A `time` wins over both.
        let timed =
            br#"{"id":"e1","source":"s","type":"user.created","time":"2024-01-01T00:00:00Z"}"#;
        let decoded = decode_event(&record(vec![], timed), &Limits::default(), now).unwrap();
        assert_eq!(decoded.time().to_rfc3339(), "2024-01-01T00:00:00+00:00");
    }

    #[test]
    fn a_header_without_a_value_sets_no_attribute() {
        let now = Utc::now();
        // A valueless `ce_specversion` does not make the record binary-mode.
        let structured = record(vec![("ce_specversion", None)], STRUCTURED);
        let decoded = decode_event(&structured, &Limits::default(), now).unwrap();
        assert_eq!(decoded.event.subject.as_deref(), Some("user:u1"));
        // In binary mode a valueless `ce_subject` is no subject (not an empty one).
        let binary = record(
            vec![
                ("ce_specversion", Some(b"1.0")),
                ("ce_id", Some(b"e2")),
                ("ce_source", Some(b"s")),
                ("ce_type", Some(b"user.created")),
                ("ce_subject", None),
            ],
            b"{}",
        );
        let decoded = decode_event(&binary, &Limits::default(), now).unwrap();
        assert_eq!(decoded.event.id, "e2");
        assert_eq!(decoded.event.subject, None);
    }

    #[test]
    fn a_rejection_becomes_a_dead_letter_with_its_reason_code() {
        let rejection =
            decode_event(&record(vec![], b"not json"), &Limits::default(), Utc::now()).unwrap_err();
        let letter = DeadLetter::from(rejection);
        assert_eq!(letter.reason, "invalid_json");
    }

    #[test]
    fn an_event_record_carries_the_cloudevents_headers() {
        let event = decode_event(&record(vec![], STRUCTURED), &Limits::default(), Utc::now())
            .unwrap()
            .event;
        let out = event_record("audit.user.action", Some(b"u1".to_vec()), &event);
        let header = |name: &str| {
            out.headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.as_deref())
        };
        assert_eq!(header("ce_type"), Some(&b"user.created"[..]));
        assert_eq!(header("ce_id"), Some(&b"e1"[..]));
        assert_eq!(header("content-type"), Some(CONTENT_TYPE.as_bytes()));
        assert_eq!(out.payload, Some(event.to_json_bytes()));
        assert_eq!(out.key.as_deref(), Some(&b"u1"[..]));
    }
}
