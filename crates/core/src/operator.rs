//! The operator log: what an operator's command did to audit data, as one CloudEvent of type
//! [`OPERATOR_ACTION_TYPE`] (docs/operator-log.md).
//!
//! Every command that reads or changes audit data (`query`, `trail`, `report`, `gdpr`,
//! `verify`, `prove`) publishes one such event before it shows its output, and the sink stores
//! it under the security retention class, filed under the operator: `query --user <operator>`
//! is that operator's trail. The user a command was about is named only by the store's keyed
//! pseudonym ([`OperatorAction::subject`]), never by their id, so an erasure is not undone by
//! the log of the erasure itself; the arguments kept are the non-personal ones (times, limits,
//! actions, event ids, formats).
//!
//! A `gdpr delete` or `gdpr anonymize` carries its [`Receipt`]: the event is the receipt's
//! stored, integrity-covered copy, and `auditflow gdpr receipt <id>` reads it back.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Event;

/// The CloudEvents type of an operator event.
pub const OPERATOR_ACTION_TYPE: &str = "audit.operator.action";
/// The CloudEvents source of an operator event.
pub const OPERATOR_SOURCE: &str = "/auditflow/cli";

/// How an operator's command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Exit code 0.
    Success,
    /// Exit code 1: the command failed (the store unreachable, a problem found by `verify`).
    Failure,
    /// Exit code 2: the command was refused as given (bad usage, a reserved subject).
    Refused,
}

impl CommandOutcome {
    /// The outcome of exit code `code`.
    pub fn of_exit_code(code: u8) -> Self {
        match code {
            0 => Self::Success,
            2 => Self::Refused,
            _ => Self::Failure,
        }
    }

    /// Its name, as stored in the `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Refused => "refused",
        }
    }
}

/// What a `gdpr delete` or `gdpr anonymize` destroyed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The request's id: the operator event's id.
    pub request_id: String,
    /// `delete` or `anonymize`.
    pub request: String,
    /// When the key was destroyed (RFC 3339, UTC).
    pub time: String,
    /// The erased user's keyed pseudonym.
    pub subject: String,
    /// Whether a data key existed and was destroyed now (`false`: nothing of the user was
    /// stored, or an earlier request had erased them).
    pub key_destroyed: bool,
    /// How many stored records were readable just before and became unreadable.
    pub records_made_unreadable: u64,
}

/// One operator command, as the operator log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorAction {
    /// Who ran it: `--operator`, else `[operator] name`, else the OS user.
    pub operator: String,
    /// The command, words joined by dots: `query`, `gdpr.delete`, `report.security`, ...
    pub command: String,
    /// Its non-personal arguments, by flag name (never `--user`: that is [`Self::subject`]).
    pub arguments: Map<String, Value>,
    /// The keyed pseudonym of the user the command was about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// How it ended.
    pub outcome: CommandOutcome,
    /// Its exit code.
    pub exit_code: u8,
    /// How many audit records it returned, checked or made unreadable, where it counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// When it started (RFC 3339, UTC).
    pub started: String,
    /// A `gdpr delete`/`anonymize`'s receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// Why an event is not an operator action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit.operator.action data: {0}")]
pub struct NotAnOperatorAction(String);

impl OperatorAction {
    /// The event that carries it, with id `id`, at `time` (when the command finished).
    pub fn to_event(&self, id: &str, time: DateTime<Utc>) -> Event {
        let kind = (OPERATOR_SOURCE, OPERATOR_ACTION_TYPE);
        Event::with_payload(id, kind, time, "security", self)
    }

    /// The action an operator event carries, checked: an operator, a command and an outcome
    /// are required.
    pub fn from_event(event: &Event) -> Result<Self, NotAnOperatorAction> {
        let action: Self = event
            .payload(OPERATOR_ACTION_TYPE)
            .map_err(NotAnOperatorAction)?;
        if action.operator.is_empty() || action.command.is_empty() {
            return Err(NotAnOperatorAction(
                "`operator` and `command` must not be empty".into(),
            ));
        }
        Ok(action)
    }
}

/// `t` as the operator log writes times.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action() -> OperatorAction {
        OperatorAction {
            operator: "alice".into(),
            command: "gdpr.delete".into(),
            arguments: Map::new(),
            subject: Some("ab".repeat(32)),
            outcome: CommandOutcome::Success,
            exit_code: 0,
            records: Some(3),
            started: "2026-12-03T10:00:00.000Z".into(),
            receipt: Some(Receipt {
                request_id: "r-1".into(),
                request: "delete".into(),
                time: "2026-12-03T10:00:00.100Z".into(),
                subject: "ab".repeat(32),
                key_destroyed: true,
                records_made_unreadable: 3,
            }),
        }
    }

    #[test]
    fn an_action_survives_its_event() {
        let time = "2026-12-03T10:00:01Z".parse().unwrap();
        let event = action().to_event("r-1", time);
        assert_eq!(event.ty, OPERATOR_ACTION_TYPE);
        assert_eq!(event.time, Some(time));
        assert_eq!(event.extensions["retention"], json!("security"));
        assert_eq!(OperatorAction::from_event(&event).unwrap(), action());
    }

    #[test]
    fn an_event_without_an_operator_is_refused() {
        let time = Utc::now();
        let mut event = action().to_event("r-1", time);
        event.data.insert("operator".into(), json!(""));
        assert!(OperatorAction::from_event(&event).is_err());
        event.data.remove("operator");
        assert!(OperatorAction::from_event(&event).is_err());
        let mut other = action().to_event("r-1", time);
        other.ty = "audit.user.action".into();
        assert!(OperatorAction::from_event(&other).is_err());
    }

    #[test]
    fn outcomes_follow_exit_codes() {
        assert_eq!(CommandOutcome::of_exit_code(0), CommandOutcome::Success);
        assert_eq!(CommandOutcome::of_exit_code(1), CommandOutcome::Failure);
        assert_eq!(CommandOutcome::of_exit_code(2), CommandOutcome::Refused);
    }
}
