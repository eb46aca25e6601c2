//! The three audit records the classifier emits, as typed data (docs/topics-and-records.md).
//!
//! Enumerated fields are Rust enums, so an audit record with an invalid outcome, risk level,
//! severity or operation cannot be built at all; what remains to check (fields copied from a
//! producer's `data`) is checked where the record is built, in `classify::rules`. Readers of the
//! audit topics (security monitor, sink) use [`AuditRecord::from_event`] to get the same types
//! back.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::detect::ip::source_key_of;
use crate::envelope::{Event, Reason, Rejection};
use crate::json;

/// CloudEvents type of a user action record.
pub const USER_ACTION: &str = "audit.user.action";
/// CloudEvents type of a data access record.
pub const DATA_ACCESS: &str = "audit.data.access";
/// CloudEvents type of a security event record.
pub const SECURITY_EVENT: &str = "audit.security.event";

macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        #[allow(missing_docs, reason = "each variant is the value its `as_str` text names")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order (which is also their order): for metrics that
            /// pre-register one series per value, and for tests that go through them all.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as it is written in an audit record's JSON and in stored labels.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value named `text` exactly (lowercase), if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_set! {
    /// How a user action ended.
    Outcome { Success => "success", Failure => "failure", Partial => "partial" }
}

closed_set! {
    /// Risk of a user action; ordered, so `risk >= RiskLevel::Medium` reads as it says.
    RiskLevel { Low => "low", Medium => "medium", High => "high", Critical => "critical" }
}

closed_set! {
    /// Severity of a security event; ordered.
    Severity { Info => "info", Warning => "warning", Critical => "critical" }
}

closed_set! {
    /// What a data access did.
    Operation { Read => "read", Create => "create", Update => "update", Delete => "delete" }
}

/// `audit.user.action`: something a user (or the system) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserAction {
    /// Whose action it was: the derived user id, `unknown` for a login attempt naming nobody,
    /// `system` for a system event naming nobody. The record's Kafka key and the subject the
    /// store files (and encrypts) it under.
    pub user_id: String,
    /// What was done: a fixed name (`login_attempt`, `privilege_change`, ...) or, for types
    /// without a rule of their own, the input's type.
    pub action: String,
    /// How it ended; only `success` can be sampled out.
    pub outcome: Outcome,
    /// What it was done to, copied from the input's `data.resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Which one of `resource`, copied from the input's `data.resource_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Where the request came from, as the producer wrote it (personal data: encrypted at rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// The client, as the producer wrote it (personal data: encrypted at rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The user's session, as the producer wrote it (personal data: encrypted at rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The classifier's judgement of the action; medium or higher is never sampled out, high
    /// or critical is kept for the security retention period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<RiskLevel>,
    /// What the rule extracted from the input to explain the action (`geo` of a login, the
    /// changed fields of a profile update, the roles of a privilege change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

/// `audit.security.event`: something security-relevant happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// What kind of event: `failed_login` (which the ip-keyed detection rules count), or the
    /// input's type without its `system.security.` prefix.
    pub event_type: String,
    /// How serious the producer (or, for a failed login, the login's risk) says it is.
    pub severity: Severity,
    /// The input's `data`, whole: the evidence an investigator reads.
    pub details: Map<String, Value>,
    /// The user it concerns, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Where it came from, as the producer wrote it; detection canonicalises it
    /// ([`crate::detect::ip`]) and [`AuditRecord::kafka_key`] keys the record by that form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Whether the producer already blocked the attempt.
    #[serde(default)]
    pub blocked: bool,
}

/// `audit.data.access`: someone read, exported or deleted personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataAccess {
    /// Whose data was accessed; the record's Kafka key and store subject.
    pub user_id: String,
    /// What kind of data (`user_profile` unless the producer says).
    pub data_type: String,
    /// What was done with it.
    pub operation: Operation,
    /// How many records the access touched (1 unless the producer says).
    #[serde(default = "one")]
    pub record_count: u64,
    /// Whether the producer marked the data sensitive.
    #[serde(default)]
    pub sensitive: bool,
    /// Why, as the producer stated it: what a GDPR access review asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

impl UserAction {
    /// A user action with every optional field absent.
    pub fn new(user_id: impl Into<String>, action: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            user_id: user_id.into(),
            action: action.into(),
            outcome,
            resource: None,
            resource_id: None,
            ip_address: None,
            user_agent: None,
            session_id: None,
            risk_level: None,
            context: None,
        }
    }
}

impl SecurityEvent {
    /// A security event naming neither user nor ip, not blocked.
    pub fn new(
        event_type: impl Into<String>,
        severity: Severity,
        details: Map<String, Value>,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            severity,
            details,
            user_id: None,
            source_ip: None,
            blocked: false,
        }
    }
}

fn one() -> u64 {
    1
}

/// Any of the three audit records.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditRecord {
    /// An `audit.user.action` record.
    UserAction(UserAction),
    /// An `audit.security.event` record.
    SecurityEvent(SecurityEvent),
    /// An `audit.data.access` record.
    DataAccess(DataAccess),
}

impl AuditRecord {
    /// The record's CloudEvents type.
    pub fn event_type(&self) -> &'static str {
        match self {
            AuditRecord::UserAction(_) => USER_ACTION,
            AuditRecord::SecurityEvent(_) => SECURITY_EVENT,
            AuditRecord::DataAccess(_) => DATA_ACCESS,
        }
    }

    /// The user it is about, when it names one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            AuditRecord::UserAction(r) => Some(&r.user_id),
            AuditRecord::SecurityEvent(r) => r.user_id.as_deref(),
            AuditRecord::DataAccess(r) => Some(&r.user_id),
        }
    }

    /// Kafka key (docs/topics-and-records.md): the user id for user actions and data access; the
    /// source ip, else the user id, for security events — so one ip's (or one user's) records stay
    /// in order on one partition. A security event with neither is keyed `system`, like a system
    /// action without a user.
    ///
    /// The source ip as the security monitor counts it (docs/security-rules.md): canonical, and an
    /// IPv6 address by its /64 ([`source_key`](crate::detect::ip::source_key)). The monitor
    /// keeps one detector per input partition, so every spelling of one source must land on one
    /// partition: `2001:DB8::1`, `2001:db8::1` and `2001:db8::2` are keyed `2001:db8::/64`. Text
    /// that is no ip address is no source ip: such an event is keyed by its user id.
    pub fn kafka_key(&self) -> Cow<'_, str> {
        match self {
            AuditRecord::SecurityEvent(r) => match r.source_ip.as_deref().and_then(source_key_of) {
                Some(source) => Cow::Owned(source),
                None => Cow::Borrowed(r.user_id.as_deref().unwrap_or("system")),
            },
            other => Cow::Borrowed(other.user_id().unwrap_or("system")),
        }
    }

    /// The risk level, for user actions that carry one.
    pub fn risk_level(&self) -> Option<RiskLevel> {
        match self {
            AuditRecord::UserAction(r) => r.risk_level,
            _ => None,
        }
    }

    /// [`to_data`](Self::to_data) as compact JSON, written straight into `out`: exactly
    /// `serde_json::to_vec(&self.to_data())` (tested below), members in the map's (sorted)
    /// order, without building the map. The classifier's output path.
    pub(crate) fn write_data(&self, out: &mut Vec<u8>) {
        let mut object = json::Object::open(out);
        match self {
            // Members in byte order of their names, as a `Map` keeps them.
            AuditRecord::UserAction(r) => {
                object.str("action", &r.action);
                if let Some(context) = &r.context {
                    object.map("context", context);
                }
                object.opt_str("ip_address", r.ip_address.as_deref());
                object.str("outcome", r.outcome.as_str());
                object.opt_str("resource", r.resource.as_deref());
                object.opt_str("resource_id", r.resource_id.as_deref());
                object.opt_str("risk_level", r.risk_level.map(RiskLevel::as_str));
                object.opt_str("session_id", r.session_id.as_deref());
                object.opt_str("user_agent", r.user_agent.as_deref());
                object.str("user_id", &r.user_id);
            }
            AuditRecord::SecurityEvent(r) => {
                object.bool("blocked", r.blocked);
                object.map("details", &r.details);
                object.str("event_type", &r.event_type);
                object.str("severity", r.severity.as_str());
                object.opt_str("source_ip", r.source_ip.as_deref());
                object.opt_str("user_id", r.user_id.as_deref());
            }
            AuditRecord::DataAccess(r) => {
                object.str("data_type", &r.data_type);
                object.str("operation", r.operation.as_str());
                object.opt_str("purpose", r.purpose.as_deref());
                object.u64("record_count", r.record_count);
                object.bool("sensitive", r.sensitive);
                object.str("user_id", &r.user_id);
            }
        }
        object.close();
    }

    /// About how many bytes [`write_data`](Self::write_data) writes: enough to size a buffer
    /// once.
    pub(crate) fn data_size_hint(&self) -> usize {
        let text = |t: &str| t.len() + 16;
        let opt = |t: Option<&str>| t.map_or(0, text);
        match self {
            AuditRecord::UserAction(r) => {
                120 + text(&r.action)
                    + text(&r.user_id)
                    + r.context.as_ref().map_or(0, json::map_size_hint)
                    + opt(r.ip_address.as_deref())
                    + opt(r.resource.as_deref())
                    + opt(r.resource_id.as_deref())
                    + opt(r.session_id.as_deref())
                    + opt(r.user_agent.as_deref())
            }
            AuditRecord::SecurityEvent(r) => {
                80 + text(&r.event_type)
                    + json::map_size_hint(&r.details)
                    + opt(r.source_ip.as_deref())
                    + opt(r.user_id.as_deref())
            }
            AuditRecord::DataAccess(r) => {
                120 + text(&r.data_type) + text(&r.user_id) + opt(r.purpose.as_deref())
            }
        }
    }

    /// The record's `data` object.
    pub fn to_data(&self) -> Map<String, Value> {
        let value = match self {
            AuditRecord::UserAction(r) => serde_json::to_value(r),
            AuditRecord::SecurityEvent(r) => serde_json::to_value(r),
            AuditRecord::DataAccess(r) => serde_json::to_value(r),
        };
        // Structs of strings, enums, bools, integers and JSON objects always serialize to an
        // object.
        match value {
            Ok(Value::Object(data)) => data,
            _ => Map::new(),
        }
    }

    /// Reads an audit record back from an event on an audit topic. Another type is
    /// `unknown_type`; data that breaks the schema is `schema_violation`.
    pub fn from_event(event: &Event) -> Result<Self, Rejection> {
        fn read<T: serde::de::DeserializeOwned>(event: &Event) -> Result<T, Rejection> {
            serde_json::from_value(Value::Object(event.data.clone())).map_err(|e| {
                Rejection::new(Reason::SchemaViolation, format!("{} data: {e}", event.ty))
            })
        }
        match event.ty.as_str() {
            USER_ACTION => read(event).map(AuditRecord::UserAction),
            SECURITY_EVENT => read(event).map(AuditRecord::SecurityEvent),
            DATA_ACCESS => read(event).map(AuditRecord::DataAccess),
            _ => Err(Rejection::new(
                Reason::UnknownType,
                "not an audit record type",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_are_the_schema_values_and_ordered() {
        assert_eq!(
            Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            ["success", "failure", "partial"]
        );
        assert_eq!(
            RiskLevel::ALL
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>(),
            ["low", "medium", "high", "critical"]
        );
        assert_eq!(
            Severity::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["info", "warning", "critical"]
        );
        assert_eq!(
            Operation::ALL
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>(),
            ["read", "create", "update", "delete"]
        );
        assert!(RiskLevel::Low < RiskLevel::Medium && RiskLevel::High < RiskLevel::Critical);
        assert_eq!(RiskLevel::parse("High"), None);
        assert_eq!(Severity::parse("warning"), Some(Severity::Warning));
    }

    #[test]
    fn written_data_is_to_data() {
        let context = json!({"geo": {"lat": 1.5}}).as_object().unwrap().clone();
        let mut records = Vec::new();
        for (outcome, risk) in [
            (Outcome::Success, None),
            (Outcome::Failure, Some(RiskLevel::Critical)),
            (Outcome::Partial, Some(RiskLevel::Medium)),
        ] {
            records.push(AuditRecord::UserAction(UserAction {
                risk_level: risk,
                ..UserAction::new("u1", "x", outcome)
            }));
            records.push(AuditRecord::UserAction(UserAction {
                resource: Some("r".into()),
                resource_id: Some("7".into()),
                ip_address: Some("::1".into()),
                user_agent: Some("ua \"q\"".into()),
                session_id: Some("s".into()),
                risk_level: risk,
                context: Some(context.clone()),
                ..UserAction::new("u1", "y", outcome)
            }));
        }
        for severity in Severity::ALL {
            let mut event = SecurityEvent::new("e", *severity, context.clone());
            records.push(AuditRecord::SecurityEvent(event.clone()));
            event.user_id = Some("u".into());
            event.source_ip = Some("10.0.0.1".into());
            event.blocked = true;
            records.push(AuditRecord::SecurityEvent(event));
        }
        for operation in Operation::ALL {
            for purpose in [None, Some("p".to_owned())] {
                records.push(AuditRecord::DataAccess(DataAccess {
                    user_id: "u".into(),
                    data_type: "t".into(),
                    operation: *operation,
                    record_count: u64::MAX,
                    sensitive: purpose.is_some(),
                    purpose,
                }));
            }
        }
        for record in records {
            let mut written = Vec::new();
            record.write_data(&mut written);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&record.to_data()).unwrap()
            );
        }
    }

    #[test]
    fn absent_optionals_are_omitted_and_defaults_written() {
        let action = AuditRecord::UserAction(UserAction {
            risk_level: Some(RiskLevel::Low),
            ..UserAction::new("u1", "x", Outcome::Success)
        });
        assert_eq!(
            Value::Object(action.to_data()),
            json!({"user_id": "u1", "action": "x", "outcome": "success", "risk_level": "low"})
        );
        let event = AuditRecord::SecurityEvent(SecurityEvent::new("e", Severity::Info, Map::new()));
        assert_eq!(
            Value::Object(event.to_data()),
            json!({"event_type": "e", "severity": "info", "details": {}, "blocked": false})
        );
        assert_eq!(event.kafka_key(), "system");
    }

    #[test]
    fn security_events_are_keyed_by_their_canonical_source() {
        let keyed = |ip: Option<&str>, user: Option<&str>| {
            let mut event = SecurityEvent::new("failed_login", Severity::Warning, Map::new());
            event.source_ip = ip.map(str::to_owned);
            event.user_id = user.map(str::to_owned);
            AuditRecord::SecurityEvent(event).kafka_key().into_owned()
        };
        assert_eq!(keyed(Some("::ffff:10.0.0.1"), None), "10.0.0.1");
        assert_eq!(keyed(Some("2001:DB8::1"), None), "2001:db8::/64");
        assert_eq!(keyed(Some("2001:db8::2"), None), "2001:db8::/64");
        assert_eq!(
            keyed(Some("hot"), Some("alice")),
            "alice",
            "no ip: the user"
        );
        assert_eq!(keyed(Some("hot"), None), "system");
        assert_eq!(keyed(None, Some("alice")), "alice");
    }

    #[test]
    fn records_read_back_from_events() {
        let mut event = Event::new("o1", "s", DATA_ACCESS);
        event.data = json!({"user_id": "u1", "data_type": "t", "operation": "read"})
            .as_object()
            .unwrap()
            .clone();
        let AuditRecord::DataAccess(access) = AuditRecord::from_event(&event).unwrap() else {
            panic!()
        };
        assert_eq!((access.record_count, access.sensitive), (1, false));
        event.data.insert("operation".into(), json!("erase"));
        assert_eq!(
            AuditRecord::from_event(&event).unwrap_err().reason,
            Reason::SchemaViolation
        );
        event.ty = "user.created".into();
        assert_eq!(
            AuditRecord::from_event(&event).unwrap_err().reason,
            Reason::UnknownType
        );
    }
}
