//! What the engine sees of an input event: the few attributes and data fields its rules read.
//!
//! The security monitor's inputs are the classifier's outputs (docs/topics-and-records.md):
//! `audit.security.event` and `audit.user.action` CloudEvents. An [`Observation`] is built from
//! an [`Event`] the envelope parser produced; other types are not observations, and data that
//! breaks the output schema where a rule reads it is rejected as `schema_violation`.
//!
//! Ips are parsed here, once ([`canonical_ip`]): an observation holds addresses, never the
//! text; text that is no address leaves the ip unknown and sets [`Observation::unparsable_ip`].

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::config::Topics;
use crate::envelope::{ContextAttribute, Event, Reason, Rejection};

use super::ip::canonical_ip;

/// CloudEvent type of the classifier's security events.
pub const SECURITY_EVENT_TYPE: &str = "audit.security.event";
/// CloudEvent type of the classifier's user actions.
pub const USER_ACTION_TYPE: &str = "audit.user.action";

/// The kinds of input the engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `audit.security.event`: what the ip-keyed rules count.
    SecurityEvent,
    /// `audit.user.action`: what the user-keyed rules judge.
    UserAction,
}

impl InputKind {
    /// The kind of a CloudEvent type, or `None` for types the monitor ignores.
    pub fn of_type(event_type: &str) -> Option<InputKind> {
        match event_type {
            SECURITY_EVENT_TYPE => Some(InputKind::SecurityEvent),
            USER_ACTION_TYPE => Some(InputKind::UserAction),
            _ => None,
        }
    }

    /// The kind of the records of a topic (`[topics]` names them), or `None` for other topics.
    pub fn of_topic(topic: &str, topics: &Topics) -> Option<InputKind> {
        if topic == topics.security_event {
            Some(InputKind::SecurityEvent)
        } else if topic == topics.user_action {
            Some(InputKind::UserAction)
        } else {
            None
        }
    }
}

/// One input event, as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The CloudEvent id: evidence and causation refer to it.
    pub id: Arc<str>,
    /// Event time: the CloudEvent `time` (or the record timestamp when absent). What the
    /// producer claims, so it may lie: see [`Observation::received`].
    pub time: DateTime<Utc>,
    /// When the event reached auditflow: the Kafka record timestamp (set by the classifier's
    /// producer), or offline the time its line was read. Detection measures how far `time` is
    /// ahead against this (and the wall clock), so a replay decides as the first run did.
    pub received: DateTime<Utc>,
    /// The event named an ip (`source_ip`, `ip_address`) that is not an ip address: it has no
    /// source ip (docs/security-rules.md), which is counted.
    pub unparsable_ip: bool,
    /// The event's `correlationid` (the classifier always sets one; else the id).
    pub correlation_id: String,
    /// The fields of the record the rules read, by kind.
    pub signal: Signal,
}

/// The data of an observation, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// From an `audit.security.event`.
    SecurityEvent(SecurityEventData),
    /// From an `audit.user.action`.
    UserAction(UserActionData),
}

/// The fields of an `audit.security.event` the rules read.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEventData {
    /// Only `failed_login` feeds a rule today.
    pub event_type: String,
    /// The user it concerns (credential stuffing counts distinct ones).
    pub user_id: Option<String>,
    /// `source_ip`, in canonical form; `None` also when it is not an ip address.
    pub source_ip: Option<IpAddr>,
}

/// The fields of an `audit.user.action` the rules read.
#[derive(Debug, Clone, PartialEq)]
pub struct UserActionData {
    /// The user the user-keyed rules key by.
    pub user_id: String,
    /// What was done (`login_attempt`, `privilege_change`, ...).
    pub action: String,
    /// How it ended; impossible travel reads successful logins only.
    pub outcome: String,
    /// `ip_address`, in canonical form; `None` also when it is not an ip address.
    pub ip_address: Option<IpAddr>,
    /// The client, which the baseline rule compares with the user's usual ones.
    pub user_agent: Option<String>,
    /// `context.geo`, when it holds valid coordinates.
    pub geo: Option<Geo>,
    /// `context.new_role`.
    pub new_role: Option<String>,
    /// `context.changed_by`.
    pub changed_by: Option<String>,
}

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geo {
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
}

impl Geo {
    /// Valid coordinates only: latitude in [-90, 90], longitude in [-180, 180].
    pub fn new(lat: f64, lon: f64) -> Option<Geo> {
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
            .then_some(Geo { lat, lon })
    }

    fn from_json(v: &Value) -> Option<Geo> {
        let o = v.as_object()?;
        Geo::new(o.get("lat")?.as_f64()?, o.get("lon")?.as_f64()?)
    }
}

impl Observation {
    /// The observation of a parsed event: `Ok(None)` for types the monitor ignores. `received`
    /// is when it reached auditflow (record timestamp, read time): its time when it has none.
    pub fn from_event(
        event: &Event,
        received: DateTime<Utc>,
    ) -> Result<Option<Observation>, Rejection> {
        match InputKind::of_type(&event.ty) {
            Some(kind) => Observation::from_event_as(kind, event, received).map(Some),
            None => Ok(None),
        }
    }

    /// The observation of a parsed event known to be of `kind` (e.g. from the topic it was read
    /// from), whatever its type says.
    pub fn from_event_as(
        kind: InputKind,
        event: &Event,
        received: DateTime<Utc>,
    ) -> Result<Observation, Rejection> {
        let correlation = event.context(ContextAttribute::CorrelationId);
        let time = event.time_or(received);
        let obs = Observation::new(kind, &event.id, time, correlation.as_deref(), &event.data)?;
        Ok(obs.received_at(received))
    }

    /// The same observation, received at `received` (by default, at its own time).
    pub fn received_at(mut self, received: DateTime<Utc>) -> Observation {
        self.received = received;
        self
    }

    /// Builds an observation of `kind` from an event's attributes and data, received at its
    /// own time (see [`Observation::received_at`]).
    pub fn new(
        kind: InputKind,
        id: &str,
        time: DateTime<Utc>,
        correlation_id: Option<&str>,
        data: &Map<String, Value>,
    ) -> Result<Observation, Rejection> {
        let empty = Map::new();
        let mut unparsable_ip = false;
        let mut ip = |field| -> Result<Option<IpAddr>, Rejection> {
            let text = optional(data, field)?;
            let ip = text.as_deref().and_then(canonical_ip);
            unparsable_ip |= text.is_some() && ip.is_none();
            Ok(ip)
        };
        let signal = match kind {
            InputKind::SecurityEvent => Signal::SecurityEvent(SecurityEventData {
                event_type: required(data, "event_type")?,
                user_id: optional(data, "user_id")?,
                source_ip: ip("source_ip")?,
            }),
            InputKind::UserAction => {
                let context = match data.get("context") {
                    None | Some(Value::Null) => &empty,
                    Some(Value::Object(o)) => o,
                    Some(_) => return Err(violation("context is not a JSON object")),
                };
                Signal::UserAction(UserActionData {
                    user_id: required(data, "user_id")?,
                    action: required(data, "action")?,
                    outcome: required(data, "outcome")?,
                    ip_address: ip("ip_address")?,
                    user_agent: optional(data, "user_agent")?,
                    geo: context.get("geo").and_then(Geo::from_json),
                    new_role: optional(context, "new_role")?,
                    changed_by: optional(context, "changed_by")?,
                })
            }
        };
        let correlation_id = correlation_id
            .filter(|c| !c.is_empty())
            .unwrap_or(id)
            .to_owned();
        Ok(Observation {
            id: Arc::from(id),
            time,
            received: time,
            unparsable_ip,
            correlation_id,
            signal,
        })
    }

    /// The ip address an event came from, when known.
    pub fn ip(&self) -> Option<IpAddr> {
        match &self.signal {
            Signal::SecurityEvent(s) => s.source_ip,
            Signal::UserAction(a) => a.ip_address,
        }
    }

    /// The user an event is about, when known (`unknown` is not a user).
    pub fn known_user(&self) -> Option<&str> {
        let user = match &self.signal {
            Signal::SecurityEvent(s) => s.user_id.as_deref(),
            Signal::UserAction(a) => Some(a.user_id.as_str()),
        };
        user.filter(|u| is_known_user(u))
    }
}

/// The classifier writes `unknown` for a login attempt without a user id.
pub(crate) fn is_known_user(user: &str) -> bool {
    !user.is_empty() && user != "unknown"
}

fn violation(detail: &str) -> Rejection {
    Rejection::new(Reason::SchemaViolation, detail)
}

fn required(o: &Map<String, Value>, field: &str) -> Result<String, Rejection> {
    optional(o, field)?.ok_or_else(|| violation(&format!("{field} is missing or empty")))
}

/// A string field; absent, null and empty all mean "not known".
fn optional(o: &Map<String, Value>, field: &str) -> Result<Option<String>, Rejection> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(violation(&format!("{field} is not a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: &Value) -> &Map<String, Value> {
        v.as_object().unwrap()
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn reads_a_security_event() {
        let data = json!({"event_type": "failed_login", "severity": "warning", "details": {},
                          "source_ip": "10.0.0.1", "user_id": "alice"});
        let o =
            Observation::new(InputKind::SecurityEvent, "e1", t0(), Some("c1"), obj(&data)).unwrap();
        assert_eq!(o.ip(), Some("10.0.0.1".parse().unwrap()));
        assert!(!o.unparsable_ip);
        assert_eq!(o.known_user(), Some("alice"));
        assert_eq!(o.correlation_id, "c1");
    }

    #[test]
    fn reads_a_user_action_with_context() {
        let data = json!({"user_id": "u1", "action": "login_attempt", "outcome": "success",
                          "context": {"geo": {"lat": 40.7, "lon": -74.0, "country": "US"},
                                      "new_role": "admin", "changed_by": "u1"}});
        let o = Observation::new(InputKind::UserAction, "e1", t0(), None, obj(&data)).unwrap();
        let Signal::UserAction(a) = &o.signal else {
            panic!("not a user action")
        };
        assert_eq!(
            a.geo,
            Some(Geo {
                lat: 40.7,
                lon: -74.0
            })
        );
        assert_eq!(a.new_role.as_deref(), Some("admin"));
        assert_eq!(o.correlation_id, "e1", "falls back to the id");
    }

    #[test]
    fn invalid_geo_is_ignored_and_schema_breaks_are_errors() {
        let data = json!({"user_id": "u1", "action": "login_attempt", "outcome": "success",
                          "context": {"geo": {"lat": 140, "lon": 0}}});
        let o = Observation::new(InputKind::UserAction, "e", t0(), None, obj(&data)).unwrap();
        let Signal::UserAction(a) = &o.signal else {
            panic!()
        };
        assert_eq!(a.geo, None);

        for bad in [
            json!({"action": "x", "outcome": "success"}),
            json!({"user_id": 7, "action": "x", "outcome": "success"}),
            json!({"user_id": "u", "action": "x", "outcome": "success", "context": []}),
        ] {
            let r = Observation::new(InputKind::UserAction, "e", t0(), None, obj(&bad));
            assert_eq!(r.unwrap_err().reason, Reason::SchemaViolation, "{bad}");
        }
        let r = Observation::new(InputKind::SecurityEvent, "e", t0(), None, &Map::new());
        assert_eq!(r.unwrap_err().reason, Reason::SchemaViolation);
    }

    #[test]
    fn from_a_parsed_event() {
        let line = br#"{"id":"e9","source":"s","type":"audit.security.event","correlationid":"c9",
            "data":{"event_type":"failed_login","severity":"warning","details":{}}}"#;
        let event = crate::envelope::parse_structured(line, &Default::default()).unwrap();
        let o = Observation::from_event(&event, t0()).unwrap().unwrap();
        assert_eq!(
            (&*o.id, o.time, o.correlation_id.as_str()),
            ("e9", t0(), "c9")
        );

        let other = Event::new("e", "s", "audit.data.access");
        assert_eq!(Observation::from_event(&other, t0()), Ok(None));
    }

    #[test]
    fn ips_are_parsed_into_canonical_form_and_text_is_no_ip() {
        let event = |ip: &str| {
            let data = json!({"event_type": "failed_login", "source_ip": ip});
            Observation::new(InputKind::SecurityEvent, "e", t0(), None, obj(&data)).unwrap()
        };
        let o = event("::FFFF:10.0.0.1");
        assert_eq!(o.ip().map(|ip| ip.to_string()).as_deref(), Some("10.0.0.1"));
        let o = event("2001:DB8::1");
        assert_eq!(
            o.ip().map(|ip| ip.to_string()).as_deref(),
            Some("2001:db8::1")
        );
        let o = event("hot");
        assert_eq!(o.ip(), None);
        assert!(o.unparsable_ip, "counted, never a key");
        let data = json!({"user_id": "u", "action": "x", "outcome": "success",
                          "ip_address": "10.0.0.1:80"});
        let o = Observation::new(InputKind::UserAction, "e", t0(), None, obj(&data)).unwrap();
        assert_eq!((o.ip(), o.unparsable_ip), (None, true));
        // Absent is not unparsable.
        let data = json!({"event_type": "failed_login"});
        let o = Observation::new(InputKind::SecurityEvent, "e", t0(), None, obj(&data)).unwrap();
        assert!(!o.unparsable_ip);
    }

    #[test]
    fn the_record_time_is_when_it_was_received() {
        let line = br#"{"id":"e9","source":"s","type":"audit.security.event",
            "time":"9999-01-01T00:00:00Z","data":{"event_type":"failed_login"}}"#;
        let event = crate::envelope::parse_structured(line, &Default::default()).unwrap();
        let o = Observation::from_event(&event, t0()).unwrap().unwrap();
        assert_eq!(o.received, t0());
        assert_eq!(o.time.format("%Y").to_string(), "9999");
    }

    #[test]
    fn unknown_is_not_a_user() {
        let data = json!({"event_type": "failed_login", "user_id": "unknown"});
        let o = Observation::new(InputKind::SecurityEvent, "e", t0(), None, obj(&data)).unwrap();
        assert_eq!(o.known_user(), None);
    }
}
