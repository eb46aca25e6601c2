//! Derived values of an input event (docs/topics-and-records.md): who, from where, with what.
//!
//! Each value has a precedence list over `data`, `subject`, extensions and the recipe's
//! `metadata`; they are computed once per input and borrowed from it where possible.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::envelope::{ContextAttribute, Event, id_text};

/// The values every rule draws on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Derived<'a> {
    pub user_id: Option<Cow<'a, str>>,
    pub ip_address: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub session_id: Option<Cow<'a, str>>,
}

impl<'a> Derived<'a> {
    pub fn of(event: &'a Event) -> Self {
        Self {
            user_id: user_id(event),
            ip_address: from_data_or_context(event, "ip_address", ContextAttribute::IpAddress),
            user_agent: from_data_or_context(event, "user_agent", ContextAttribute::UserAgent),
            session_id: from_data_or_context(event, "session_id", ContextAttribute::SessionId),
        }
    }
}

/// The first present and non-empty of: `data.user_id` (a string, or an integer as its decimal
/// string) → `subject` `user:<id>` → extension `userid` → `metadata.user_id`.
pub fn user_id(event: &Event) -> Option<Cow<'_, str>> {
    event
        .data
        .get("user_id")
        .and_then(id_text)
        .or_else(|| {
            let id = event.subject.as_deref()?.strip_prefix("user:")?;
            (!id.is_empty()).then_some(Cow::Borrowed(id))
        })
        .or_else(|| event.context(ContextAttribute::UserId))
}

/// The input's correlation id (extension `correlationid`, else `metadata.correlation_id`), or,
/// when it has none, its own id: the root of a chain correlates with itself.
pub fn correlation_id(event: &Event) -> Cow<'_, str> {
    event
        .context(ContextAttribute::CorrelationId)
        .unwrap_or(Cow::Borrowed(&event.id))
}

fn from_data_or_context<'a>(
    event: &'a Event,
    data_key: &str,
    attribute: ContextAttribute,
) -> Option<Cow<'a, str>> {
    event
        .data
        .get(data_key)
        .and_then(id_text)
        .or_else(|| event.context(attribute))
}

/// `data[key]` when present and not null.
pub(crate) fn field<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    data.get(key).filter(|value| !value.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> Event {
        Event::from_json_object(value.as_object().unwrap().clone()).unwrap()
    }

    fn base() -> Value {
        json!({"id": "in-1", "source": "s", "type": "user.x"})
    }

    fn with(mut value: Value, key: &str, field: Value) -> Value {
        value[key] = field;
        value
    }

    #[test]
    fn user_id_precedence() {
        let all = with(
            with(
                with(
                    with(base(), "data", json!({"user_id": "d"})),
                    "subject",
                    json!("user:s"),
                ),
                "userid",
                json!("e"),
            ),
            "metadata",
            json!({"user_id": "m"}),
        );
        assert_eq!(user_id(&event(all.clone())).as_deref(), Some("d"));
        let no_data = with(all.clone(), "data", json!({}));
        assert_eq!(user_id(&event(no_data.clone())).as_deref(), Some("s"));
        let no_subject = with(no_data.clone(), "subject", json!("order:9"));
        assert_eq!(user_id(&event(no_subject.clone())).as_deref(), Some("e"));
        let no_ext = with(no_subject.clone(), "userid", json!(""));
        assert_eq!(user_id(&event(no_ext.clone())).as_deref(), Some("m"));
        let nothing = with(no_ext, "metadata", json!({"user_id": ""}));
        assert_eq!(user_id(&event(nothing)), None);
    }

    #[test]
    fn user_id_skips_empty_and_odd_values_and_reads_integers() {
        let empty_data = with(
            with(base(), "data", json!({"user_id": ""})),
            "subject",
            json!("user:s"),
        );
        assert_eq!(user_id(&event(empty_data)).as_deref(), Some("s"));
        let empty_subject = with(
            with(base(), "subject", json!("user:")),
            "userid",
            json!("e"),
        );
        assert_eq!(user_id(&event(empty_subject)).as_deref(), Some("e"));
        let number = with(base(), "data", json!({"user_id": 12345}));
        assert_eq!(user_id(&event(number)).as_deref(), Some("12345"));
        let negative = with(base(), "data", json!({"user_id": -7}));
        assert_eq!(user_id(&event(negative)).as_deref(), Some("-7"));
        for odd in [
            json!(1.5),
            json!(true),
            json!({"id": 1}),
            json!(["u"]),
            Value::Null,
        ] {
            let value = with(
                with(base(), "data", json!({"user_id": odd})),
                "userid",
                json!("e"),
            );
            assert_eq!(user_id(&event(value)).as_deref(), Some("e"));
        }
    }

    #[test]
    fn ip_agent_and_session_prefer_data_then_extension_then_metadata() {
        let value = with(
            with(
                with(base(), "data", json!({"ip_address": "1.1.1.1"})),
                "useragent",
                json!("ext-agent"),
            ),
            "metadata",
            json!({"ip_address": "3.3.3.3", "user_agent": "meta-agent", "session_id": "meta-session"}),
        );
        let input = event(value);
        let derived = Derived::of(&input);
        assert_eq!(derived.ip_address.as_deref(), Some("1.1.1.1"));
        assert_eq!(derived.user_agent.as_deref(), Some("ext-agent"));
        assert_eq!(derived.session_id.as_deref(), Some("meta-session"));
    }

    #[test]
    fn correlation_id_falls_back_to_the_input_id() {
        assert_eq!(correlation_id(&event(base())), "in-1");
        let meta = with(base(), "metadata", json!({"correlation_id": "m"}));
        assert_eq!(correlation_id(&event(meta.clone())), "m");
        let ext = with(meta, "correlationid", json!("e"));
        assert_eq!(correlation_id(&event(ext)), "e");
    }
}
