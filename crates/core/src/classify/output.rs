//! One record the classifier emits, written straight to its bytes.
//!
//! An output is a structured-mode CloudEvent (docs/topics-and-records.md). It is written once,
//! from the audit record and the borrowed input, member by member in the order
//! [`Event::to_json_bytes`] writes an [`Event`] with the same attributes — so the bytes are the
//! same as building that `Event` and serializing it (crates/core/tests/golden.rs holds every
//! byte) — without building the event's maps: no allocation per attribute, none per data
//! field. [`Output::event`] reads the bytes back for callers that want the attributes.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::audit_record::AuditRecord;
use crate::envelope::{Event, SPEC_VERSION};
use crate::json;
use crate::retention::RetentionClass;

use super::OUTPUT_SOURCE;

/// One record to write.
#[derive(Clone, PartialEq)]
pub struct Output {
    /// The configured topic name (`[topics]`).
    pub topic: String,
    /// The Kafka key (docs/topics-and-records.md).
    pub key: String,
    /// The output's CloudEvents `id`, derived from the input's `source`, `id` and this
    /// output's type ([`output_id`](super::output_id)).
    pub id: String,
    /// The output's CloudEvents `type` (`audit.user.action`, ...).
    pub ty: &'static str,
    /// The output's `time`: the input's, else the fallback the caller passed.
    pub time: DateTime<Utc>,
    /// Its `retention` extension.
    pub retention: RetentionClass,
    /// The CloudEvent as structured-mode JSON: the record's value.
    pub value: Vec<u8>,
}

/// The attributes of an output that come from its input (shared by all of one input's outputs).
pub(super) struct Head<'a> {
    pub subject: Option<&'a str>,
    /// `time`, formatted once per input.
    pub time: &'a str,
    pub causation_id: &'a str,
    pub correlation_id: &'a str,
    pub original_type: &'a str,
    pub sample_rate: f64,
}

impl Output {
    /// Writes the output of `record` for an input described by `head`.
    pub(super) fn write(
        topic: String,
        id: String,
        head: &Head<'_>,
        time: DateTime<Utc>,
        retention: RetentionClass,
        record: &AuditRecord,
    ) -> Self {
        let ty = record.event_type();
        let key = record.kafka_key().into_owned();
        let capacity = 300
            + id.len()
            + head.subject.map_or(0, str::len)
            + head.causation_id.len()
            + head.correlation_id.len()
            + head.original_type.len()
            + record.data_size_hint();
        let mut value = Vec::with_capacity(capacity);
        let mut event = json::Object::open(&mut value);
        event.str("specversion", SPEC_VERSION);
        event.str("id", &id);
        event.str("source", OUTPUT_SOURCE);
        event.str("type", ty);
        event.opt_str("subject", head.subject);
        event.str("time", head.time);
        event.str("datacontenttype", "application/json");
        // The extensions, in name order as an `Event`'s map keeps them.
        event.str("causationid", head.causation_id);
        event.str("correlationid", head.correlation_id);
        event.str("originaltype", head.original_type);
        event.str("retention", retention.as_str());
        event.value("samplerate", &rate_value(head.sample_rate));
        event.raw("data", |out| record.write_data(out));
        event.close();
        Self {
            topic,
            key,
            id,
            ty,
            time,
            retention,
            value,
        }
    }

    /// The output as an [`Event`], read back from [`value`](Self::value).
    ///
    /// # Panics
    ///
    /// If `value` was replaced by bytes that are no CloudEvent: the classifier never writes
    /// such bytes (every output it makes parses back, tested).
    pub fn event(&self) -> Event {
        self.try_event().expect("an output is a valid CloudEvent")
    }

    fn try_event(&self) -> Option<Event> {
        let object: Map<String, Value> = serde_json::from_slice(&self.value).ok()?;
        Event::from_json_object(object).ok()
    }

    /// `{"topic": ..., "key": ..., "value": {CloudEvent}}`: the line form of docs/cli.md,
    /// shared by the offline commands (without the newline).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line =
            Vec::with_capacity(self.value.len() + self.topic.len() + self.key.len() + 32);
        let mut object = json::Object::open(&mut line);
        object.str("topic", &self.topic);
        object.str("key", &self.key);
        object.raw("value", |out| out.extend_from_slice(&self.value));
        object.close();
        line
    }
}

/// The topic, key and event, as the `Output` of an `Event` printed (the bytes are long).
impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut output = f.debug_struct("Output");
        output.field("topic", &self.topic).field("key", &self.key);
        match self.try_event() {
            Some(event) => output.field("event", &event),
            None => output.field("value", &String::from_utf8_lossy(&self.value)),
        };
        output.finish()
    }
}

/// A rate as JSON: an integer when whole (`1`, as the contract writes it), else a number.
fn rate_value(rate: f64) -> Value {
    if rate.fract() == 0.0 {
        Value::from(rate as u64)
    } else {
        Value::from(rate)
    }
}
