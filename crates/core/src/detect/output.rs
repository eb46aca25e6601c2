//! What the engine emits: alerts, actions and blocklist changes, and their CloudEvent form.
//!
//! Ids are keyed ([`IdSecret`]) functions of the rule, key, level and window (alerts) or of
//! the alert and the action (actions, blocklist entries): the same input replayed gives the
//! same ids, and nobody without the secret can tell what they were derived from. Event times
//! are the raising event's (judged) time, never the wall clock, for the same reason.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::ids::IdSecret;
use super::level::{Rule, ThreatLevel};
use crate::config::Topics;
use crate::envelope::{Event, format_time};

/// CloudEvent `source` of everything the monitor emits.
pub const SOURCE: &str = "/auditflow/security-monitor";
/// CloudEvent type of alerts.
pub const ALERT_TYPE: &str = "security.alert";
/// CloudEvent type of actions.
pub const ACTION_TYPE: &str = "security.action";
/// CloudEvent type of blocklist entries.
pub const BLOCKLIST_TYPE: &str = "security.blocklist.entry";

/// Which output topic a record goes to (`[topics]` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// `[topics] alerts`: [`Output::Alert`].
    Alerts,
    /// `[topics] actions`: [`Output::Action`].
    Actions,
    /// `[topics] blocklist`, compacted: [`Output::Block`] and [`Output::Unblock`].
    Blocklist,
}

/// One output record of the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A medium, high or critical finding of one rule.
    Alert(Alert),
    /// What a critical alert asks the operator's systems to do.
    Action(Action),
    /// Upsert of an ip on the compacted blocklist.
    Block(BlockEntry),
    /// The ip's block expired: a tombstone (null value) on the blocklist.
    Unblock {
        /// The blocklist key being lifted (an IPv4 address or an IPv6 /64 as a CIDR).
        ip: String,
        /// When the lifted block expired (a service compares it with blocks held elsewhere).
        expires_at: DateTime<Utc>,
    },
}

/// A `security.alert`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Keyed id of rule, key, level and window: the same evidence always gives the same id,
    /// which is what makes a replayed alert a duplicate the topic's readers can drop.
    pub id: String,
    /// The rule that fired.
    pub rule: Rule,
    /// The level its score reached; one alert per rule, key and level while the window lasts.
    pub level: ThreatLevel,
    /// The rule's score (0-100) behind `level`.
    pub score: u8,
    /// The rule's key: a source (brute_force, credential_stuffing: an IPv4 address or an IPv6
    /// /64) or a user id (the others; one longer than `max_key_bytes` is cut and hashed).
    pub key: String,
    /// The raising event's user id, when it has one.
    pub user_id: Option<String>,
    /// The ip-keyed rules' key; for the others, the raising event's address.
    pub source_ip: Option<String>,
    /// How many events the window held, for the counting rules (brute force: failures;
    /// credential stuffing: distinct users).
    pub count: Option<u64>,
    /// Start of the window the finding covers (event time).
    pub window_start: DateTime<Utc>,
    /// End of that window: the raising event's time.
    pub window_end: DateTime<Utc>,
    /// Ids of the events that made the finding, so an investigator can fetch them.
    pub evidence: Vec<String>,
    /// The raising event's time.
    pub time: DateTime<Utc>,
    /// The raising event's id.
    pub causation_id: String,
    /// The raising event's correlation id.
    pub correlation_id: String,
}

/// A `security.action`, caused by a critical alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Keyed id of the alert's id and what the action is.
    pub id: String,
    /// What to do, and to whom.
    pub kind: ActionKind,
    /// The alert's time.
    pub time: DateTime<Utc>,
    /// The alert's id.
    pub causation_id: String,
    /// The alert's correlation id, so the action joins the raising event's causal chain.
    pub correlation_id: String,
}

/// What an [`Action`] asks for (its `data.action`).
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// Refuse traffic from a source until `expires_at`.
    BlockIp {
        /// The source key: an IPv4 address, or an IPv6 /64 as a CIDR.
        ip: String,
        /// The rule that raised it.
        reason: String,
        /// When the block lapses (its receipt time plus `block_duration_secs`).
        expires_at: DateTime<Utc>,
    },
    /// Disable a known user's account (never `unknown`).
    DisableAccount {
        /// The account to disable.
        user_id: String,
    },
}

impl ActionKind {
    /// The name actions carry in `data.action`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ActionKind::BlockIp { .. } => "block_ip",
            ActionKind::DisableAccount { .. } => "disable_account",
        }
    }
}

/// An ip's entry on the blocklist.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockEntry {
    /// Keyed id of the alert's id and `blocklist`.
    pub id: String,
    /// What is blocked: an IPv4 address, or an IPv6 /64 as a CIDR (`2001:db8::/64`).
    pub ip: String,
    /// The rule that raised the block.
    pub reason: String,
    /// When the block lapses; the engine tombstones the entry then, unless a longer block on
    /// the same ip stands.
    pub expires_at: DateTime<Utc>,
    /// The alert's time.
    pub time: DateTime<Utc>,
    /// The alert's id.
    pub causation_id: String,
    /// The alert's correlation id.
    pub correlation_id: String,
}

impl Output {
    /// The topic the output belongs on.
    pub fn stream(&self) -> OutputStream {
        match self {
            Output::Alert(_) => OutputStream::Alerts,
            Output::Action(_) => OutputStream::Actions,
            Output::Block(_) | Output::Unblock { .. } => OutputStream::Blocklist,
        }
    }

    /// The topic the record goes to.
    pub fn topic<'t>(&self, topics: &'t Topics) -> &'t str {
        match self.stream() {
            OutputStream::Alerts => &topics.alerts,
            OutputStream::Actions => &topics.actions,
            OutputStream::Blocklist => &topics.blocklist,
        }
    }

    /// The Kafka key: alerts by the rule's key, actions by their ip or user, blocklist by ip.
    pub fn key(&self) -> &str {
        match self {
            Output::Alert(a) => &a.key,
            Output::Action(a) => match &a.kind {
                ActionKind::BlockIp { ip, .. } => ip,
                ActionKind::DisableAccount { user_id } => user_id,
            },
            Output::Block(b) => &b.ip,
            Output::Unblock { ip, .. } => ip,
        }
    }

    /// The record value as a structured-mode CloudEvent in JSON; `None` for a tombstone.
    pub fn to_cloudevent(&self) -> Option<Value> {
        self.to_event().and_then(|e| serde_json::to_value(e).ok())
    }

    /// The record value as a CloudEvent; `None` for a tombstone.
    pub fn to_event(&self) -> Option<Event> {
        match self {
            Output::Alert(a) => {
                let mut data = Map::new();
                data.insert("level".into(), a.level.as_str().into());
                data.insert("rule".into(), a.rule.as_str().into());
                data.insert("score".into(), a.score.into());
                if let Some(user) = &a.user_id {
                    data.insert("user_id".into(), user.as_str().into());
                }
                if let Some(ip) = &a.source_ip {
                    data.insert("source_ip".into(), ip.as_str().into());
                }
                if let Some(count) = a.count {
                    data.insert("count".into(), count.into());
                }
                data.insert("window_start".into(), rfc3339(a.window_start).into());
                data.insert("window_end".into(), rfc3339(a.window_end).into());
                data.insert("evidence".into(), a.evidence.clone().into());
                let ids = (
                    a.id.as_str(),
                    a.causation_id.as_str(),
                    a.correlation_id.as_str(),
                );
                Some(cloudevent(ALERT_TYPE, ids, a.time, Value::Object(data)))
            }
            Output::Action(a) => {
                let data = match &a.kind {
                    ActionKind::BlockIp {
                        ip,
                        reason,
                        expires_at,
                    } => json!({
                        "action": a.kind.as_str(), "ip": ip, "reason": reason,
                        "expires_at": rfc3339(*expires_at),
                    }),
                    ActionKind::DisableAccount { user_id } => json!({
                        "action": a.kind.as_str(), "user_id": user_id,
                        "reason": "security_threat",
                    }),
                };
                let ids = (
                    a.id.as_str(),
                    a.causation_id.as_str(),
                    a.correlation_id.as_str(),
                );
                Some(cloudevent(ACTION_TYPE, ids, a.time, data))
            }
            Output::Block(b) => {
                let data =
                    json!({"ip": b.ip, "reason": b.reason, "expires_at": rfc3339(b.expires_at)});
                let ids = (
                    b.id.as_str(),
                    b.causation_id.as_str(),
                    b.correlation_id.as_str(),
                );
                Some(cloudevent(BLOCKLIST_TYPE, ids, b.time, data))
            }
            Output::Unblock { .. } => None,
        }
    }
}

fn cloudevent(
    kind: &str,
    (id, causation, correlation): (&str, &str, &str),
    time: DateTime<Utc>,
    data: Value,
) -> Event {
    let mut event = Event::new(id, SOURCE, kind);
    event.time = Some(time);
    event.datacontenttype = Some("application/json".into());
    event
        .extensions
        .insert("causationid".into(), causation.into());
    event
        .extensions
        .insert("correlationid".into(), correlation.into());
    // Everything the monitor writes is security evidence (docs/topics-and-records.md, retention
    // classes).
    event
        .extensions
        .insert("retention".into(), "security".into());
    if let Value::Object(data) = data {
        event.data = data;
    }
    event
}

fn rfc3339(t: DateTime<Utc>) -> String {
    format_time(&t)
}

/// The id of an alert: a keyed function of its rule, key, level and window.
pub(crate) fn alert_id(
    secret: &IdSecret,
    rule: Rule,
    key: &str,
    level: ThreatLevel,
    window: (DateTime<Utc>, DateTime<Utc>),
) -> String {
    secret.derive(&[
        "alert",
        rule.as_str(),
        key,
        level.as_str(),
        &rfc3339(window.0),
        &rfc3339(window.1),
    ])
}

/// The id of something an alert caused (`block_ip`, `disable_account`, `blocklist`).
pub(crate) fn caused_id(secret: &IdSecret, alert_id: &str, what: &str) -> String {
    secret.derive(&[what, alert_id])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let s = IdSecret::development();
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let a = alert_id(&s, Rule::BruteForce, "1.2.3.4", ThreatLevel::High, (t, t));
        assert_eq!(
            a,
            alert_id(&s, Rule::BruteForce, "1.2.3.4", ThreatLevel::High, (t, t))
        );
        assert_ne!(
            a,
            alert_id(
                &s,
                Rule::BruteForce,
                "1.2.3.4",
                ThreatLevel::Critical,
                (t, t)
            )
        );
        assert_ne!(
            a,
            alert_id(
                &s,
                Rule::CredentialStuffing,
                "1.2.3.4",
                ThreatLevel::High,
                (t, t)
            )
        );
        assert_ne!(
            caused_id(&s, &a, "block_ip"),
            caused_id(&s, &a, "disable_account")
        );
        // Another secret, other ids: without it nobody can recompute one from a guessed ip.
        let other = IdSecret::from_bytes([1; 32]);
        assert_ne!(
            a,
            alert_id(
                &other,
                Rule::BruteForce,
                "1.2.3.4",
                ThreatLevel::High,
                (t, t)
            )
        );
    }

    #[test]
    fn ids_are_pinned() {
        // Literal values: a change of the derivation (message layout, MAC, UUID form) changes
        // every id a deployment has already written, and must be a deliberate one.
        let s = IdSecret::from_hex(&"2a".repeat(32)).unwrap();
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let a = alert_id(
            &s,
            Rule::BruteForce,
            "203.0.113.9",
            ThreatLevel::Critical,
            (t, t),
        );
        assert_eq!(a, "61fcb271-4565-801f-bc70-a588b022f271");
        assert_eq!(
            caused_id(&s, &a, "block_ip"),
            "3fd29608-8225-8f0f-b7ac-d2fbe506d237"
        );
    }

    #[test]
    fn tombstones_have_no_value() {
        let u = Output::Unblock {
            ip: "1.2.3.4".into(),
            expires_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        assert_eq!(u.to_cloudevent(), None);
        assert_eq!(u.key(), "1.2.3.4");
        assert_eq!(u.stream(), OutputStream::Blocklist);
    }
}
