//! A consumed record → its place in the causality graph, or why it has none.
//!
//! Pure: no I/O. The envelope is the runtime's [`decode_event`] (the core's decoder, either
//! CloudEvents mode, the record timestamp as the fallback time); what
//! is kept is the record's id, type, time, `causationid`, `correlationid`, `originaltype`,
//! retention class and topic, plus a short summary of allow-listed, closed-vocabulary data
//! fields. Nothing else of the record is looked at, so nothing personal (user ids, ips,
//! subjects, data) can reach the causality tables or the logs.
//!
//! The indexer is generic over record types: it indexes anything with a CloudEvent envelope,
//! so a new audit type needs no change here. A record it cannot index is dead-lettered: not a
//! CloudEvent (`invalid_json`, `invalid_envelope`), or ids too long to be keys
//! (`schema_violation`). A tombstone (no value) is ignored.

use auditflow_core::config::Limits;
use auditflow_core::envelope::ContextAttribute;
use auditflow_core::pattern::is_valid_type;
use auditflow_core::{Event, Reason, RetentionClass};
use auditflow_runtime::kafka::at_least_once::Decoded;
use auditflow_runtime::kafka::cloudevents::decode_event;
use auditflow_runtime::{DeadLetter, InputRecord};
use auditflow_store::causality::CausalRecord;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Data fields whose values may appear in a record's summary, in the order they appear. Each is a
/// closed vocabulary or a type name in every schema auditflow writes (docs/topics-and-records.md);
/// a value that does not look like one (see [`is_label`]) is left out anyway.
const SUMMARY_FIELDS: [&str; 9] = [
    "action",
    "operation",
    "event_type",
    "rule",
    "outcome",
    "risk_level",
    "severity",
    "level",
    "score",
];

/// The `table` label of what the indexer writes (metric `emitted`).
pub const TABLE: &str = "causality";

/// What one consumed record is to the indexer: a record of the graph, nothing (a tombstone)
/// or a dead letter. `now` is the event time of last resort (no `time`, no Kafka timestamp).
pub fn extract(record: &InputRecord, limits: &Limits, now: DateTime<Utc>) -> Decoded<CausalRecord> {
    if record.payload.is_none() {
        return Decoded::Ignored;
    }
    let decoded = match decode_event(record, limits, now) {
        Ok(decoded) => decoded,
        Err(rejection) => return Decoded::DeadLetter(rejection.into()),
    };
    let causal = causal_record(&decoded.event, &record.topic, decoded.received);
    match causal.validate() {
        Ok(()) => Decoded::Row {
            table: TABLE,
            event_time_ms: Some(causal.time.timestamp_millis()),
            row: causal,
        },
        Err(e) => Decoded::DeadLetter(DeadLetter::new(
            Reason::SchemaViolation.as_str(),
            e.to_string(),
        )),
    }
}

/// The graph's view of an event consumed from `topic`.
pub fn causal_record(event: &Event, topic: &str, fallback_time: DateTime<Utc>) -> CausalRecord {
    let context = |attribute| event.context(attribute).map(|id| id.into_owned());
    // A record that names itself as its cause would be its own parent: a loop of one that
    // says nothing. Treated as having no cause.
    let causation_id = context(ContextAttribute::CausationId).filter(|c| *c != event.id);
    CausalRecord {
        id: event.id.clone(),
        event_type: event.ty.clone(),
        original_type: extension(event, "originaltype")
            .filter(|t| is_valid_type(t))
            .map(str::to_owned),
        time: event.time_or(fallback_time),
        causation_id,
        correlation_id: context(ContextAttribute::CorrelationId),
        topic: topic.to_owned(),
        summary: summary(event),
        // Without a (valid) class the rows live as long as the longest class: a security
        // record's trail must not vanish early because a producer left the class out.
        class: extension(event, "retention")
            .and_then(RetentionClass::parse)
            .unwrap_or(RetentionClass::Security),
    }
}

fn extension<'e>(event: &'e Event, name: &str) -> Option<&'e str> {
    event.extensions.get(name).and_then(Value::as_str)
}

/// The allow-listed data fields that hold labels, space-separated; `None` when there are none.
fn summary(event: &Event) -> Option<String> {
    let labels: Vec<String> = SUMMARY_FIELDS
        .iter()
        .filter_map(|field| match event.data.get(*field)? {
            Value::String(s) if is_label(s) => Some(s.clone()),
            Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
            _ => None,
        })
        .collect();
    (!labels.is_empty()).then(|| labels.join(" "))
}

/// A short token of letters, digits, `_`, `-`, `.` and `:` — what enum values and type names
/// look like, and what free text (names, e-mail addresses with `@`, sentences) does not.
fn is_label(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(topic: &str, value: serde_json::Value) -> InputRecord {
        InputRecord {
            topic: topic.into(),
            partition: 0,
            offset: 1,
            key: Some(b"203.0.113.5".to_vec()),
            payload: Some(value.to_string().into_bytes()),
            headers: Vec::new(),
            timestamp_ms: Some(1_700_000_000_000),
        }
    }

    fn extract_ok(record: &InputRecord) -> CausalRecord {
        match extract(record, &Limits::default(), Utc::now()) {
            Decoded::Row { row, table, .. } if table == TABLE => row,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_audit_record_keeps_its_links_and_no_personal_data() {
        let record = input(
            "audit.security.event",
            json!({
                "specversion": "1.0", "id": "sec-1", "source": "/auditflow/classifier",
                "type": "audit.security.event", "time": "2026-11-20T10:00:01.150Z",
                "subject": "user:demo_user_1",
                "causationid": "in-6", "correlationid": "corr-6",
                "originaltype": "user.login.attempt", "retention": "security",
                "data": {"event_type": "failed_login", "severity": "critical",
                         "user_id": "demo_user_1", "source_ip": "203.0.113.42",
                         "details": {"failure_reason": "invalid_password"}}
            }),
        );
        let r = extract_ok(&record);
        assert_eq!(r.id, "sec-1");
        assert_eq!(r.event_type, "audit.security.event");
        assert_eq!(r.original_type.as_deref(), Some("user.login.attempt"));
        assert_eq!(r.causation_id.as_deref(), Some("in-6"));
        assert_eq!(r.correlation_id.as_deref(), Some("corr-6"));
        assert_eq!(r.topic, "audit.security.event");
        assert_eq!(r.class, RetentionClass::Security);
        assert_eq!(r.summary.as_deref(), Some("failed_login critical"));
        assert_eq!(r.time.to_rfc3339(), "2026-11-20T10:00:01.150+00:00");
        let stored = format!("{r:?}");
        for personal in ["demo_user_1", "203.0.113.42", "invalid_password"] {
            assert!(!stored.contains(personal), "{personal} in {stored}");
        }
    }

    #[test]
    fn alerts_and_actions_summarise_their_labels() {
        let alert = input(
            "security.alerts",
            json!({"id": "a-1", "source": "/auditflow/security-monitor", "type": "security.alert",
                   "causationid": "sec-1", "correlationid": "corr-6", "retention": "security",
                   "data": {"level": "medium", "rule": "brute_force", "score": 50,
                            "source_ip": "203.0.113.42", "evidence": ["sec-1"]}}),
        );
        assert_eq!(
            extract_ok(&alert).summary.as_deref(),
            Some("brute_force medium 50")
        );
        let action = input(
            "security.actions",
            json!({"id": "x-1", "source": "/auditflow/security-monitor", "type": "security.action",
                   "causationid": "a-1",
                   "data": {"action": "disable_account", "user_id": "alice", "reason": "security_threat"}}),
        );
        let r = extract_ok(&action);
        assert_eq!(r.summary.as_deref(), Some("disable_account"));
        assert_eq!(r.correlation_id, None);
    }

    #[test]
    fn free_text_never_reaches_the_summary() {
        let record = input(
            "audit.user.action",
            json!({"id": "u-1", "source": "s", "type": "audit.user.action",
                   "data": {"action": "wrote to alice@example.com", "outcome": "success",
                            "risk_level": "Ünïcode", "severity": {"nested": 1}, "score": 1.5}}),
        );
        assert_eq!(extract_ok(&record).summary.as_deref(), Some("success"));
    }

    #[test]
    fn falls_back_to_the_record_timestamp_and_the_longest_class() {
        let record = input(
            "audit.user.action",
            json!({"id": "u-1", "source": "s", "type": "audit.user.action",
                   "retention": "forever", "originaltype": "not a type", "causationid": "u-1"}),
        );
        let r = extract_ok(&record);
        assert_eq!(r.time.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(r.class, RetentionClass::Security);
        assert_eq!(r.original_type, None);
        // Its own cause is no cause.
        assert_eq!(r.causation_id, None);
        assert_eq!(r.summary, None);
    }

    #[test]
    fn binary_mode_and_recipe_metadata_are_read_too() {
        let mut record = input("audit.user.action", json!({"action": "x"}));
        record.headers = [
            ("ce_specversion", "1.0"),
            ("ce_id", "b-1"),
            ("ce_source", "s"),
            ("ce_type", "audit.user.action"),
            ("ce_causationid", "in-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v.as_bytes().to_vec())))
        .collect();
        let r = extract_ok(&record);
        assert_eq!(
            (r.id.as_str(), r.causation_id.as_deref()),
            ("b-1", Some("in-1"))
        );

        let recipe = input(
            "audit.user.action",
            json!({"id": "m-1", "source": "s", "type": "audit.user.action",
                   "metadata": {"causation_id": "in-2", "correlation_id": "c-2"}}),
        );
        let r = extract_ok(&recipe);
        assert_eq!(r.causation_id.as_deref(), Some("in-2"));
        assert_eq!(r.correlation_id.as_deref(), Some("c-2"));
    }

    #[test]
    fn what_cannot_be_indexed_is_dead_lettered_or_ignored() {
        let limits = Limits::default();
        let now = Utc::now();
        let reason = |record: &InputRecord| match extract(record, &limits, now) {
            Decoded::DeadLetter(letter) => letter.reason,
            other => panic!("{other:?}"),
        };
        let mut garbage = input("audit.user.action", json!({}));
        garbage.payload = Some(b"{not json".to_vec());
        assert_eq!(reason(&garbage), "invalid_json");
        assert_eq!(
            reason(&input("audit.user.action", json!({"id": "x"}))),
            "invalid_envelope"
        );
        let long = "c".repeat(600);
        assert_eq!(
            reason(&input(
                "audit.user.action",
                json!({"id": "x", "source": "s", "type": "audit.user.action", "causationid": long})
            )),
            "schema_violation"
        );
        let mut tombstone = input("audit.user.action", json!({}));
        tombstone.payload = None;
        assert_eq!(extract(&tombstone, &limits, now), Decoded::Ignored);
    }
}
