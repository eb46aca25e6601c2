//! A consumed audit record → what the store keeps, or the reason it can never be stored.
//!
//! Pure: no I/O, so every way a record can be refused is unit-tested here. The envelope and the
//! audit schemas are the core's (the runtime's `decode_event` over `decode_record`, and
//! `AuditRecord::from_event`); this module only
//! picks the store's clear labels out of them. A record is refused (dead-lettered) when it is
//! not a CloudEvent, not one of the types the sink reads (or on a topic not its own), or breaks
//! its type's schema.

use auditflow_core::checkpoint::LogId;
use auditflow_core::config::Limits;
use auditflow_core::detect::ALERT_TYPE;
use auditflow_core::operator::{OPERATOR_ACTION_TYPE, OperatorAction};
use auditflow_core::retention::RetentionPolicy;
use auditflow_core::sampling::summary::{SAMPLING_SUMMARY_TYPE, SampledOutSummary};
use auditflow_core::{AuditRecord, Event, Reason, RetentionClass};
use auditflow_runtime::kafka::cloudevents::decode_event;
use auditflow_runtime::{DeadLetter, InputRecord};
use auditflow_store::integrity::LogPosition;
use auditflow_store::{Labels, RecordKind, StorableRecord};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The topics that each carry one type of auditflow's own: the operator log (written by the
/// command-line tool) and the classifier's sampling summaries. Each type is taken from its
/// topic only, and its topic holds nothing else, so a producer of audit records can forge
/// neither an operator's event nor a count of what was sampled out.
#[derive(Debug, Clone)]
pub struct OwnTopics {
    /// `[topics] operator`.
    pub operator: String,
    /// `[topics] sampling`.
    pub sampling: String,
}

/// Which of auditflow's own types a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    Operator,
    Sampling,
}

impl OwnTopics {
    /// The configured topics.
    pub fn of(topics: &auditflow_core::config::Topics) -> Self {
        Self {
            operator: topics.operator.clone(),
            sampling: topics.sampling.clone(),
        }
    }

    /// `Some` for a record of one of the own types on its own topic, `None` for any other type
    /// on any other topic; refused when type and topic do not belong together.
    fn check(&self, topic: &str, ty: &str) -> Result<Option<Own>, DeadLetter> {
        let owned = [
            (Own::Operator, self.operator.as_str(), OPERATOR_ACTION_TYPE),
            (Own::Sampling, self.sampling.as_str(), SAMPLING_SUMMARY_TYPE),
        ];
        for (own, own_topic, own_type) in owned {
            if (topic == own_topic) != (ty == own_type) {
                return Err(DeadLetter::new(
                    Reason::SchemaViolation.as_str(),
                    format!("{own_type} events belong on their own topic, and only they"),
                ));
            }
            if topic == own_topic {
                return Ok(Some(own));
            }
        }
        Ok(None)
    }
}

/// Decodes one record. `now` is the event time of last resort (no `time`, no Kafka timestamp).
/// `own` names the topics of auditflow's own types ([`OwnTopics`]).
pub fn decode(
    record: &InputRecord,
    limits: &Limits,
    policy: &RetentionPolicy,
    own: &OwnTopics,
    now: DateTime<Utc>,
) -> Result<StorableRecord, DeadLetter> {
    let decoded = decode_event(record, limits, now)?;
    let event_time = decoded.time();
    let event = decoded.event;

    let (kind, user_id, labels, class) = match own.check(&record.topic, &event.ty)? {
        Some(Own::Operator) => {
            let (user_id, labels) = operator_action(&event)?;
            (
                RecordKind::OperatorAction,
                Some(user_id),
                labels,
                RetentionClass::Security,
            )
        }
        Some(Own::Sampling) => (
            RecordKind::SamplingSummary,
            None,
            sampling_summary(&event)?,
            RetentionClass::Security,
        ),
        None if event.ty == ALERT_TYPE => {
            let (user_id, labels) = alert(&event.data)?;
            (RecordKind::Alert, user_id, labels, RetentionClass::Security)
        }
        None => {
            let audit = AuditRecord::from_event(&event)?;
            let class = declared_class(&event).unwrap_or_else(|| {
                // Written by another producer than our classifier: decide as it would.
                let original = extension_text(&event, "originaltype").unwrap_or(&event.ty);
                policy.class_of(original, &audit)
            });
            let (kind, labels) = audit_labels(&audit);
            (kind, audit.user_id().map(str::to_owned), labels, class)
        }
    };
    let labels = Labels {
        sample_rate: sample_rate(&event),
        ..labels
    };
    let stored = StorableRecord {
        id: event.id.clone(),
        kind,
        class,
        event_time,
        event_type: event.ty.clone(),
        user_id,
        labels,
        event: serde_json::to_value(&event).map_err(|_| {
            DeadLetter::new(
                Reason::InvalidEnvelope.as_str(),
                "the event cannot be re-encoded",
            )
        })?,
        position: Some(LogPosition {
            log: LogId {
                topic: record.topic.clone(),
                partition: record.partition,
            },
            offset: record.offset,
            time_ms: record
                .timestamp_ms
                .unwrap_or_else(|| event_time.timestamp_millis()),
        }),
    };
    stored
        .validate()
        .map_err(|e| DeadLetter::new(Reason::SchemaViolation.as_str(), e.to_string()))?;
    Ok(stored)
}

fn audit_labels(audit: &AuditRecord) -> (RecordKind, Labels) {
    match audit {
        AuditRecord::UserAction(a) => (
            RecordKind::UserAction,
            Labels {
                action: Some(a.action.clone()),
                outcome: Some(a.outcome.as_str().to_owned()),
                risk_level: a.risk_level.map(|r| r.as_str().to_owned()),
                ..Labels::default()
            },
        ),
        AuditRecord::DataAccess(d) => (
            RecordKind::DataAccess,
            Labels {
                action: Some(d.operation.as_str().to_owned()),
                data_type: Some(d.data_type.clone()),
                record_count: Some(i64::try_from(d.record_count).unwrap_or(i64::MAX)),
                sensitive: Some(d.sensitive),
                ..Labels::default()
            },
        ),
        AuditRecord::SecurityEvent(s) => (
            RecordKind::SecurityEvent,
            Labels {
                action: Some(s.event_type.clone()),
                severity: Some(s.severity.as_str().to_owned()),
                blocked: Some(s.blocked),
                ..Labels::default()
            },
        ),
    }
}

/// A `security.alert` (docs/topics-and-records.md): `rule` and `level` are required; the user, if
/// named, owns the alert's key like their other records.
fn alert(data: &Map<String, Value>) -> Result<(Option<String>, Labels), DeadLetter> {
    let text = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let invalid = |what: &str| {
        DeadLetter::new(
            Reason::SchemaViolation.as_str(),
            format!("security.alert data: {what}"),
        )
    };
    let rule = text("rule").ok_or_else(|| invalid("missing `rule`"))?;
    let level = text("level").ok_or_else(|| invalid("missing `level`"))?;
    let labels = Labels {
        action: Some(rule.to_owned()),
        severity: Some(level.to_owned()),
        record_count: data.get("count").and_then(Value::as_i64),
        ..Labels::default()
    };
    Ok((text("user_id").map(str::to_owned), labels))
}

/// An operator event: filed under the operator; its command, outcome and record count are its
/// clear labels (what the compliance report counts).
fn operator_action(event: &Event) -> Result<(String, Labels), DeadLetter> {
    let action = OperatorAction::from_event(event)
        .map_err(|e| DeadLetter::new(Reason::SchemaViolation.as_str(), e.to_string()))?;
    let labels = Labels {
        action: Some(action.command),
        outcome: Some(action.outcome.as_str().to_owned()),
        record_count: action.records.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        ..Labels::default()
    };
    Ok((action.operator, labels))
}

/// A sampling summary: filed under no one; the input type and how many were sampled out are
/// its clear labels (what the compliance report counts).
fn sampling_summary(event: &Event) -> Result<Labels, DeadLetter> {
    let summary = SampledOutSummary::from_event(event)
        .map_err(|e| DeadLetter::new(Reason::SchemaViolation.as_str(), e.to_string()))?;
    Ok(Labels {
        action: Some(summary.event_type),
        record_count: Some(i64::try_from(summary.count).unwrap_or(i64::MAX)),
        ..Labels::default()
    })
}

fn extension_text<'e>(event: &'e Event, name: &str) -> Option<&'e str> {
    event.extensions.get(name).and_then(Value::as_str)
}

fn declared_class(event: &Event) -> Option<RetentionClass> {
    extension_text(event, "retention").and_then(RetentionClass::parse)
}

/// `samplerate` as a number or a numeric string (binary mode carries every attribute as text).
fn sample_rate(event: &Event) -> Option<f64> {
    match event.extensions.get("samplerate")? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(value: Value) -> InputRecord {
        InputRecord {
            topic: "audit.user.action".into(),
            partition: 0,
            offset: 7,
            key: None,
            payload: Some(serde_json::to_vec(&value).unwrap()),
            headers: Vec::new(),
            timestamp_ms: Some(1_700_000_000_000),
        }
    }

    fn run(value: Value) -> Result<StorableRecord, DeadLetter> {
        decode(
            &input(value),
            &Limits::default(),
            &RetentionPolicy::new(),
            &OwnTopics::of(&Default::default()),
            Utc::now(),
        )
    }

    fn action(extra: Value) -> Value {
        let mut v = json!({
            "specversion": "1.0", "id": "a-1", "source": "/auditflow/classifier",
            "type": "audit.user.action", "subject": "user:u1", "time": "2026-11-27T10:00:00Z",
            "retention": "security", "samplerate": 1,
            "data": {"user_id": "u1", "action": "login_attempt", "outcome": "failure",
                     "risk_level": "high", "ip_address": "203.0.113.9"}
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn a_user_action_keeps_personal_data_only_in_the_event() {
        let r = run(action(json!({}))).unwrap();
        assert_eq!(r.id, "a-1");
        assert_eq!(r.kind, RecordKind::UserAction);
        assert_eq!(r.class, RetentionClass::Security);
        assert_eq!(r.user_id.as_deref(), Some("u1"));
        assert_eq!(r.event_time.to_rfc3339(), "2026-11-27T10:00:00+00:00");
        assert_eq!(r.labels.action.as_deref(), Some("login_attempt"));
        assert_eq!(r.labels.outcome.as_deref(), Some("failure"));
        assert_eq!(r.labels.risk_level.as_deref(), Some("high"));
        assert_eq!(r.labels.sample_rate, Some(1.0));
        assert_eq!(r.event["data"]["ip_address"], "203.0.113.9");
        let clear = format!("{:?}", r.labels);
        assert!(!clear.contains("203.0.113.9") && !clear.contains("u1"));
    }

    #[test]
    fn without_a_declared_class_the_core_policy_decides() {
        let mut v = action(json!({"originaltype": "user.payment.completed"}));
        let o = v.as_object_mut().unwrap();
        o.remove("retention");
        o["data"]["risk_level"] = json!("low");
        assert_eq!(run(v).unwrap().class, RetentionClass::Financial);
    }

    #[test]
    fn without_a_time_the_record_timestamp_is_the_event_time() {
        let mut v = action(json!({}));
        v.as_object_mut().unwrap().remove("time");
        assert_eq!(
            run(v).unwrap().event_time.timestamp_millis(),
            1_700_000_000_000
        );
    }

    #[test]
    fn security_events_data_access_and_alerts() {
        let s = run(json!({"specversion": "1.0", "id": "s-1", "source": "/x", "type": "audit.security.event",
            "retention": "security",
            "data": {"event_type": "failed_login", "severity": "warning", "details": {}, "source_ip": "198.51.100.1"}}))
        .unwrap();
        assert_eq!(
            (s.kind, s.user_id.clone()),
            (RecordKind::SecurityEvent, None)
        );
        assert_eq!(s.labels.severity.as_deref(), Some("warning"));
        assert_eq!(s.labels.blocked, Some(false));

        let d = run(json!({"specversion": "1.0", "id": "d-1", "source": "/x", "type": "audit.data.access",
            "retention": "general",
            "data": {"user_id": "u2", "data_type": "user_profile", "operation": "read", "record_count": 3, "sensitive": true}}))
        .unwrap();
        assert_eq!(d.kind, RecordKind::DataAccess);
        assert_eq!(d.labels.action.as_deref(), Some("read"));
        assert_eq!(d.labels.record_count, Some(3));

        let a = run(json!({"specversion": "1.0", "id": "al-1", "source": "/auditflow/security-monitor",
            "type": "security.alert",
            "data": {"level": "high", "rule": "brute_force", "score": 80, "source_ip": "198.51.100.1", "count": 11,
                     "window_start": "2026-11-27T10:00:00Z", "window_end": "2026-11-27T10:10:00Z", "evidence": ["s-1"]}}))
        .unwrap();
        assert_eq!(
            (a.kind, a.class),
            (RecordKind::Alert, RetentionClass::Security)
        );
        assert_eq!(a.labels.action.as_deref(), Some("brute_force"));
        assert_eq!(a.labels.record_count, Some(11));
        assert_eq!(a.user_id, None);
    }

    #[test]
    fn what_can_never_be_stored_is_dead_lettered_with_a_reason() {
        let reason = |v: Value| run(v).unwrap_err().reason;
        assert_eq!(reason(json!([1, 2])), "invalid_envelope");
        assert_eq!(
            reason(
                json!({"specversion": "1.0", "id": "x", "source": "/x", "type": "user.created", "data": {}})
            ),
            "unknown_type"
        );
        let mut bad = action(json!({}));
        bad["data"]["outcome"] = json!("maybe");
        assert_eq!(reason(bad), "schema_violation");
        assert_eq!(
            reason(
                json!({"specversion": "1.0", "id": "x", "source": "/x", "type": "security.alert", "data": {"level": "high"}})
            ),
            "schema_violation"
        );
        let mut empty_user = action(json!({}));
        empty_user["data"]["user_id"] = json!("");
        assert_eq!(reason(empty_user), "schema_violation");
        let not_json = InputRecord {
            payload: Some(b"\xff not json".to_vec()),
            ..input(json!({}))
        };
        let err = decode(
            &not_json,
            &Limits::default(),
            &RetentionPolicy::new(),
            &OwnTopics::of(&Default::default()),
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!(err.reason, "invalid_json");
    }

    fn on_topic(topic: &str, value: Value) -> Result<StorableRecord, DeadLetter> {
        decode(
            &InputRecord {
                topic: topic.into(),
                ..input(value)
            },
            &Limits::default(),
            &RetentionPolicy::new(),
            &OwnTopics::of(&Default::default()),
            Utc::now(),
        )
    }

    fn operator_event() -> Value {
        json!({"specversion": "1.0", "id": "op-1", "source": "/auditflow/cli",
            "type": "audit.operator.action", "time": "2026-12-03T10:00:00Z",
            "data": {"operator": "alice", "command": "gdpr.delete", "arguments": {},
                     "subject": "ab", "outcome": "success", "exit_code": 0, "records": 4,
                     "started": "2026-12-03T09:59:59.000Z"}})
    }

    #[test]
    fn an_operator_event_is_filed_under_the_operator_as_security() {
        let op = on_topic("audit.operator.action", operator_event()).unwrap();
        assert_eq!(
            (op.kind, op.class),
            (RecordKind::OperatorAction, RetentionClass::Security)
        );
        assert_eq!(op.user_id.as_deref(), Some("alice"));
        assert_eq!(op.labels.action.as_deref(), Some("gdpr.delete"));
        assert_eq!(op.labels.outcome.as_deref(), Some("success"));
        assert_eq!(op.labels.record_count, Some(4));
    }

    fn summary_event() -> Value {
        json!({"specversion": "1.0", "id": "sum-1", "source": "/auditflow/classifier",
            "type": "audit.sampling.summary", "time": "2026-12-03T10:59:00Z",
            "data": {"event_type": "user.page.view", "count": 41, "sample_rate": 0.5,
                     "input": {"topic": "user.events", "partition": 2, "first_offset": 10, "last_offset": 90},
                     "first_time": "2026-12-03T10:00:00Z", "last_time": "2026-12-03T10:59:00Z"}})
    }

    #[test]
    fn a_sampling_summary_is_counted_by_type_and_filed_under_no_one() {
        let s = on_topic("audit.sampling.summary", summary_event()).unwrap();
        assert_eq!(
            (s.kind, s.class, s.user_id.as_deref()),
            (RecordKind::SamplingSummary, RetentionClass::Security, None)
        );
        assert_eq!(s.labels.action.as_deref(), Some("user.page.view"));
        assert_eq!(s.labels.record_count, Some(41));
        assert_eq!(s.event_time.to_rfc3339(), "2026-12-03T10:59:00+00:00");
    }

    #[test]
    fn sampling_summaries_come_from_their_topic_only() {
        let forged = on_topic("audit.user.action", summary_event()).unwrap_err();
        assert_eq!(forged.reason, "schema_violation");
        let intruder = on_topic("audit.sampling.summary", action(json!({}))).unwrap_err();
        assert_eq!(intruder.reason, "schema_violation");
        let mut zero = summary_event();
        zero["data"]["count"] = json!(0);
        let zero = on_topic("audit.sampling.summary", zero).unwrap_err();
        assert_eq!(zero.reason, "schema_violation");
        // Each own topic refuses the other's type.
        let crossed = on_topic("audit.operator.action", summary_event()).unwrap_err();
        assert_eq!(crossed.reason, "schema_violation");
        let crossed = on_topic("audit.sampling.summary", operator_event()).unwrap_err();
        assert_eq!(crossed.reason, "schema_violation");
    }

    #[test]
    fn operator_events_come_from_the_operator_topic_only() {
        let elsewhere = on_topic("audit.user.action", operator_event()).unwrap_err();
        assert_eq!(elsewhere.reason, "schema_violation");
        let mut not_operator = operator_event();
        not_operator["type"] = json!("audit.user.action");
        let intruder = on_topic("audit.operator.action", not_operator).unwrap_err();
        assert_eq!(intruder.reason, "schema_violation");
        let mut anonymous = operator_event();
        anonymous["data"]["operator"] = json!("");
        let anonymous = on_topic("audit.operator.action", anonymous).unwrap_err();
        assert_eq!(anonymous.reason, "schema_violation");
    }
}
