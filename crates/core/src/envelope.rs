//! The CloudEvents 1.0 envelope (docs/topics-and-records.md): parsing what producers send, in
//! structured or Kafka binary mode, and serializing what auditflow emits.
//!
//! Parsing is where untrusted bytes become an [`Event`], so it is total: any input yields an
//! event or a [`Rejection`] with a reason code, never a panic, and memory use is bounded by the
//! record size (the size is checked before anything is parsed, and nesting depth is checked by a
//! cheap scan before serde recurses). The JSON is parsed once and taken apart by moving, so
//! `data` is never copied.
//!
//! Beyond the CloudEvents basics: optional attributes must have their CloudEvents types when
//! present (`time` RFC 3339, `subject` a string, ...) or the event is `invalid_envelope`, as is a
//! `data` that is not an object or a `data_base64`; `null` attributes are absent. Nesting depth
//! counts open arrays and objects, the event object being level 1.
//!
//! Attribute names are CloudEvents names, lowercase letters and digits only, exactly as the
//! producer wrote them (in binary mode, what follows the `ce_` of a header). A top-level member
//! with any other name — `userId`, `user_id`, `ip-address` — is not an extension attribute: it is
//! ignored (the event is still processed), so it never supplies a context attribute such as
//! the user id. Reading `userId` as `userid` would let one event mean different things to
//! auditflow and to every conformant reader of the same topic.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::config::Limits;
use crate::json;
use crate::pattern::is_valid_type;

/// The `specversion` auditflow writes.
pub const SPEC_VERSION: &str = "1.0";
/// The `specversion`s accepted on input; `1.0.2` is what Jido.Signal producers send.
pub const ACCEPTED_SPEC_VERSIONS: [&str; 2] = ["1.0", "1.0.2"];

/// A CloudEvent, as parsed from input or built for output.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Non-empty; with `source`, the event's identity, from which output ids are derived.
    pub id: String,
    /// Non-empty: who produced the event (two producers may reuse an `id`, never a pair).
    pub source: String,
    /// The CloudEvents `type` attribute: dot-separated segments of `[A-Za-z0-9_-]+`.
    pub ty: String,
    /// What the event is about; `user:<id>` names a user (docs/topics-and-records.md).
    pub subject: Option<String>,
    /// `None` when the producer sent no `time`; the caller knows the fallback (record timestamp,
    /// read time), see [`Event::time_or`].
    pub time: Option<DateTime<Utc>>,
    /// The producer's declared content type of `data`, kept as sent.
    pub datacontenttype: Option<String>,
    /// The producer's declared schema URI of `data`, kept as sent.
    pub dataschema: Option<String>,
    /// Always an object; an absent `data` is `{}`.
    pub data: Map<String, Value>,
    /// Every other top-level attribute (CloudEvents extensions such as `userid`), by name:
    /// only names of lowercase letters and digits (see [`is_attribute_name`]).
    pub extensions: Map<String, Value>,
    /// The recipe-style `metadata` object (`user_id`, `session_id`, ...); empty when absent.
    /// Extensions win over it, see [`Event::context`].
    pub metadata: Map<String, Value>,
}

/// Why a record goes to the dead-letter topic (docs/reason-codes.md): the `auditflow.error` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not JSON, not UTF-8, empty, or nested deeper than the limit.
    InvalidJson,
    /// JSON, but not a usable CloudEvent.
    InvalidEnvelope,
    /// The audit record it would become breaks the output schema.
    SchemaViolation,
    /// A user event (other than a login attempt) that names no user.
    MissingUserId,
    /// Larger than `limits.max_record_bytes`.
    TooLarge,
    /// A type no classification rule covers (neither `user.**`, `system.**` nor `audit.**`).
    UnknownType,
}

impl Reason {
    /// Every reason code, for metrics that pre-register one series per code and for the test
    /// that holds docs/reason-codes.md to this list.
    pub const ALL: [Reason; 6] = [
        Reason::InvalidJson,
        Reason::InvalidEnvelope,
        Reason::SchemaViolation,
        Reason::MissingUserId,
        Reason::TooLarge,
        Reason::UnknownType,
    ];

    /// The reason code as it appears in headers, DLQ lines and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::InvalidEnvelope => "invalid_envelope",
            Reason::SchemaViolation => "schema_violation",
            Reason::MissingUserId => "missing_user_id",
            Reason::TooLarge => "too_large",
            Reason::UnknownType => "unknown_type",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A record that cannot be audited: a reason code and a human explanation
/// (the `auditflow.error.detail` header). Details name attributes and fields but never quote
/// values from the record: it may hold personal data, and details end up in headers and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The machine-readable code (`auditflow.error`).
    pub reason: Reason,
    /// One line for a human (`auditflow.error.detail`), free of the record's values.
    pub detail: String,
}

impl Rejection {
    /// A rejection for `reason`; `detail` must name attributes or fields, never quote values.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// A record of `size` bytes over the `limit`; for callers that skip oversized input
    /// without reading it (the CLI's line reader) as well as for the parser.
    pub fn too_large(size: usize, limit: usize) -> Self {
        Self::new(
            Reason::TooLarge,
            format!("record is {size} bytes, over the limit of {limit} bytes"),
        )
    }

    fn invalid_json(detail: impl Into<String>) -> Self {
        Self::new(Reason::InvalidJson, detail)
    }

    fn invalid_envelope(detail: impl Into<String>) -> Self {
        Self::new(Reason::InvalidEnvelope, detail)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Context attributes that producers send either as CloudEvents extensions or, in the recipe's
/// style, inside a `metadata` object with snake_case keys (docs/topics-and-records.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextAttribute {
    /// `userid` / `metadata.user_id`: who acted.
    UserId,
    /// `sessionid` / `metadata.session_id`: the user's session.
    SessionId,
    /// `ipaddress` / `metadata.ip_address`: where the request came from.
    IpAddress,
    /// `useragent` / `metadata.user_agent`: the client.
    UserAgent,
    /// `causationid` / `metadata.causation_id`: the event that caused this one.
    CausationId,
    /// `correlationid` / `metadata.correlation_id`: the causal chain it belongs to.
    CorrelationId,
}

impl ContextAttribute {
    /// The CloudEvents extension name (lowercase letters and digits).
    pub fn extension(self) -> &'static str {
        match self {
            Self::UserId => "userid",
            Self::SessionId => "sessionid",
            Self::IpAddress => "ipaddress",
            Self::UserAgent => "useragent",
            Self::CausationId => "causationid",
            Self::CorrelationId => "correlationid",
        }
    }

    /// The key in the recipe's `metadata` object.
    pub fn metadata_key(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::SessionId => "session_id",
            Self::IpAddress => "ip_address",
            Self::UserAgent => "user_agent",
            Self::CausationId => "causation_id",
            Self::CorrelationId => "correlation_id",
        }
    }
}

/// An identifier-like value as text: a non-empty string, or an integer as its decimal string.
/// Anything else (empty string, float, bool, object, null) counts as absent.
pub fn id_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

impl Event {
    /// A minimal event; the other attributes are public fields.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            subject: None,
            time: None,
            datacontenttype: None,
            dataschema: None,
            data: Map::new(),
            extensions: Map::new(),
            metadata: Map::new(),
        }
    }

    /// An event of auditflow's own (the operator log's, a sampling summary): `payload` as its
    /// JSON `data`, at `time`, with its `retention` extension.
    pub fn with_payload(
        id: impl Into<String>,
        (source, ty): (&str, &str),
        time: DateTime<Utc>,
        retention: &str,
        payload: &impl Serialize,
    ) -> Self {
        let mut event = Self::new(id, source, ty);
        event.time = Some(time);
        event.datacontenttype = Some("application/json".into());
        event
            .extensions
            .insert("retention".into(), retention.into());
        if let Ok(Value::Object(data)) = serde_json::to_value(payload) {
            event.data = data;
        }
        event
    }

    /// The `data` of an event of type `ty` as a `T` (the reverse of [`Self::with_payload`]);
    /// what is wrong, in words, when the type differs or the data does not fit.
    pub fn payload<T: DeserializeOwned>(&self, ty: &str) -> Result<T, String> {
        if self.ty != ty {
            return Err(format!("the type is not {ty}"));
        }
        serde_json::from_value(Value::Object(self.data.clone())).map_err(|e| e.to_string())
    }

    /// A context attribute: the extension when present and non-empty, else the `metadata` key.
    pub fn context(&self, attribute: ContextAttribute) -> Option<Cow<'_, str>> {
        self.extensions
            .get(attribute.extension())
            .and_then(id_text)
            .or_else(|| {
                self.metadata
                    .get(attribute.metadata_key())
                    .and_then(id_text)
            })
    }

    /// The event time, or `fallback` when the producer sent none.
    pub fn time_or(&self, fallback: DateTime<Utc>) -> DateTime<Utc> {
        self.time.unwrap_or(fallback)
    }

    /// Builds an event from a JSON object in structured mode. Size and depth limits are the
    /// byte-level parser's job ([`parse_structured`]); this checks the attributes.
    pub fn from_json_object(object: Map<String, Value>) -> Result<Self, Rejection> {
        Members::from_map(object).into_event()
    }

    /// The event as structured-mode JSON bytes: exactly `serde_json::to_vec(self)` (the
    /// [`Serialize`] impl below), written by a writer that copies strings without escapes in
    /// one piece and sizes the buffer once.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let optional = |text: &Option<String>| text.as_ref().map_or(0, |t| t.len() + 20);
        let capacity = 64
            + self.id.len()
            + self.source.len()
            + self.ty.len()
            + optional(&self.subject)
            + self.time.map_or(0, |_| 40)
            + optional(&self.datacontenttype)
            + optional(&self.dataschema)
            + json::map_size_hint(&self.extensions)
            + json::map_size_hint(&self.metadata)
            + json::map_size_hint(&self.data);
        let mut out = Vec::with_capacity(capacity);
        let mut event = json::Object::open(&mut out);
        event.str("specversion", SPEC_VERSION);
        event.str("id", &self.id);
        event.str("source", &self.source);
        event.str("type", &self.ty);
        event.opt_str("subject", self.subject.as_deref());
        if let Some(time) = &self.time {
            event.str("time", &format_time(time));
        }
        event.opt_str("datacontenttype", self.datacontenttype.as_deref());
        event.opt_str("dataschema", self.dataschema.as_deref());
        for (name, value) in &self.extensions {
            event.entry(name, value);
        }
        if !self.metadata.is_empty() {
            event.map("metadata", &self.metadata);
        }
        event.map("data", &self.data);
        event.close();
        out
    }
}

/// The members of a structured-mode event: the attributes the envelope checks, each as it
/// came (the last of duplicate members, as a JSON object map keeps it), and the rest.
#[derive(Debug, Default)]
struct Members {
    specversion: Option<Value>,
    id: Option<Value>,
    source: Option<Value>,
    ty: Option<Value>,
    subject: Option<Value>,
    time: Option<Value>,
    datacontenttype: Option<Value>,
    dataschema: Option<Value>,
    data: Option<Value>,
    data_base64: Option<Value>,
    metadata: Option<Value>,
    /// Every other member: in the parser's path only those with attribute names (no other
    /// can become an extension), in `from_map`'s every one.
    rest: Map<String, Value>,
}

impl Members {
    /// The slot of a member `name`, if the envelope checks it.
    fn slot(&mut self, name: &str) -> Option<&mut Option<Value>> {
        Some(match name {
            "specversion" => &mut self.specversion,
            "id" => &mut self.id,
            "source" => &mut self.source,
            "type" => &mut self.ty,
            "subject" => &mut self.subject,
            "time" => &mut self.time,
            "datacontenttype" => &mut self.datacontenttype,
            "dataschema" => &mut self.dataschema,
            "data" => &mut self.data,
            "data_base64" => &mut self.data_base64,
            "metadata" => &mut self.metadata,
            _ => return None,
        })
    }

    /// A member as the parser meets it; a later one of the same name replaces an earlier one.
    fn put(&mut self, name: &str, value: Value) {
        match self.slot(name) {
            Some(slot) => *slot = Some(value),
            // A member that is no attribute name never becomes an extension: drop it now.
            None if is_attribute_name(name) => {
                self.rest.insert(name.to_owned(), value);
            }
            None => {}
        }
    }

    fn from_map(object: Map<String, Value>) -> Self {
        let mut members = Members::default();
        for (name, value) in object {
            match members.slot(&name) {
                Some(slot) => *slot = Some(value),
                None => {
                    members.rest.insert(name, value);
                }
            }
        }
        members
    }

    /// The checks of structured mode, in their order (each failure has its own detail).
    fn into_event(self) -> Result<Event, Rejection> {
        let Members {
            specversion,
            id,
            source,
            ty,
            subject,
            time,
            datacontenttype,
            dataschema,
            data,
            data_base64,
            metadata,
            rest: mut object,
        } = self;
        if let Some(version) = optional_string(specversion, "specversion")?
            && !ACCEPTED_SPEC_VERSIONS.contains(&version.as_str())
        {
            return Err(Rejection::invalid_envelope(
                "specversion is not supported: it must be \"1.0\" or \"1.0.2\"",
            ));
        }
        let id = required_string(id, "id")?;
        let source = required_string(source, "source")?;
        let ty = required_string(ty, "type")?;
        if !is_valid_type(&ty) {
            return Err(Rejection::invalid_envelope(
                "type must be dot-separated segments of [A-Za-z0-9_-]",
            ));
        }
        let subject = optional_string(subject, "subject")?;
        let time = match optional_string(time, "time")? {
            None => None,
            Some(text) => {
                let time = DateTime::parse_from_rfc3339(&text)
                    .map_err(|_| Rejection::invalid_envelope("time is not an RFC 3339 timestamp"))?
                    .with_timezone(&Utc);
                if !is_writable_time(&time) {
                    return Err(Rejection::invalid_envelope(
                        "time is out of range: in UTC its year must be 0000 to 9999",
                    ));
                }
                Some(time)
            }
        };
        let datacontenttype = optional_string(datacontenttype, "datacontenttype")?;
        let dataschema = optional_string(dataschema, "dataschema")?;
        if data_base64.is_some() {
            return Err(Rejection::invalid_envelope(
                "data_base64 (binary data) is not supported: data must be a JSON object",
            ));
        }
        let data = match data {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(data)) => data,
            Some(other) => {
                return Err(Rejection::invalid_envelope(format!(
                    "data must be a JSON object, not {}",
                    kind(&other)
                )));
            }
        };
        let metadata = match metadata {
            Some(Value::Object(metadata)) => metadata,
            // Not the recipe's object: an ordinary extension attribute.
            Some(other) => {
                object.insert("metadata".into(), other);
                Map::new()
            }
            None => Map::new(),
        };
        // A null attribute is an absent one; a member that is no CloudEvents attribute name
        // is no extension.
        object.retain(|name, value| !value.is_null() && is_attribute_name(name));
        Ok(Event {
            id,
            source,
            ty,
            subject,
            time,
            datacontenttype,
            dataschema,
            data,
            extensions: object,
            metadata,
        })
    }
}

/// What a structured-mode record parses to: the members of an object, or what else it was.
#[allow(
    clippy::large_enum_variant,
    reason = "made once per record and moved once; boxing would cost an allocation per record"
)]
enum Parsed {
    Object(Members),
    /// Not an object: its kind, for the detail ("an array", ...).
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParsedVisitor)
    }
}

/// Visits the top level the way `Value`'s own visitor does (every member value, and every
/// element of a top-level array, is parsed as a `Value`), so the parser meets the same bytes
/// in the same order and fails, if it fails, with the same error; but member names are
/// borrowed from the input and the envelope's attributes go straight to their slots.
struct ParsedVisitor;

impl<'de> Visitor<'de> for ParsedVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Parsed, E> {
        Ok(Parsed::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Parsed, E> {
        Ok(Parsed::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Parsed, E> {
        Ok(Parsed::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Parsed, E> {
        Ok(Parsed::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Parsed, E> {
        Ok(Parsed::Other("a string"))
    }

    fn visit_unit<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Other("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        while seq.next_element::<Value>()?.is_some() {}
        Ok(Parsed::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut members = Members::default();
        while let Some(MemberName(name)) = map.next_key()? {
            let value: Value = map.next_value()?;
            members.put(&name, value);
        }
        Ok(Parsed::Object(members))
    }
}

/// A member name, borrowed from the input unless it has escapes.
struct MemberName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = MemberName<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Borrowed(name)))
            }

            fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(name.to_owned())))
            }

            fn visit_string<E>(self, name: String) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(name)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Structured mode: extensions are top-level attributes, `specversion` is always `"1.0"`, and
/// `time` is RFC 3339 in UTC with as many fraction digits as it has.
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", SPEC_VERSION)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("type", &self.ty)?;
        if let Some(subject) = &self.subject {
            map.serialize_entry("subject", subject)?;
        }
        if let Some(time) = &self.time {
            map.serialize_entry("time", &format_time(time))?;
        }
        if let Some(content_type) = &self.datacontenttype {
            map.serialize_entry("datacontenttype", content_type)?;
        }
        if let Some(schema) = &self.dataschema {
            map.serialize_entry("dataschema", schema)?;
        }
        for (name, value) in &self.extensions {
            map.serialize_entry(name, value)?;
        }
        if !self.metadata.is_empty() {
            map.serialize_entry("metadata", &self.metadata)?;
        }
        map.serialize_entry("data", &self.data)?;
        map.end()
    }
}

/// Whether `time` can be written as RFC 3339 in UTC, which has four-digit years. An offset
/// can carry a valid timestamp out of that range (`9999-12-31T23:59:59-23:59` is in year 10000
/// in UTC), and a record timestamp is any 64-bit number of milliseconds; an output carrying
/// such a time could be read by nothing downstream.
pub fn is_writable_time(time: &DateTime<Utc>) -> bool {
    (0..=9999).contains(&time.year())
}

/// RFC 3339 in UTC (`Z`), keeping the fraction digits the time has.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses a structured-mode record (the whole event is the JSON value).
pub fn parse_structured(bytes: &[u8], limits: &Limits) -> Result<Event, Rejection> {
    if bytes.len() > limits.max_record_bytes {
        return Err(Rejection::too_large(bytes.len(), limits.max_record_bytes));
    }
    match parse_json(bytes, limits)? {
        Parsed::Object(members) => members.into_event(),
        Parsed::Other(kind) => Err(Rejection::invalid_envelope(format!(
            "the record is {kind}, not a JSON object"
        ))),
    }
}

/// Decodes a Kafka record in either mode. Binary mode (attributes in `ce_*` headers, the value
/// is `data`) is chosen by the presence of a `ce_specversion` header, never by `content-type`:
/// real SDKs send `application/json` in both modes. The `ce_` prefix and `content-type` match
/// in any case; the attribute name after the prefix is taken as written, and one that is no
/// CloudEvents name (`ce_userId`, `ce_ID`) carries no attribute, as in structured mode.
pub fn decode_record<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    value: &[u8],
    limits: &Limits,
) -> Result<Event, Rejection> {
    let mut attributes: Vec<(&str, &[u8])> = Vec::new();
    let mut content_type = None;
    let mut binary = false;
    let mut header_bytes = 0;
    for (name, header_value) in headers {
        header_bytes += name.len() + header_value.len();
        if let Some(attribute) = strip_prefix_ignore_case(name, "ce_") {
            binary |= attribute == "specversion";
            attributes.push((attribute, header_value));
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(header_value);
        }
    }
    if !binary {
        return parse_structured(value, limits);
    }
    let size = value.len() + header_bytes;
    if size > limits.max_record_bytes {
        return Err(Rejection::too_large(size, limits.max_record_bytes));
    }
    let mut object = Map::new();
    for (attribute, header_value) in attributes {
        if !is_attribute_name(attribute) {
            continue;
        }
        let text = std::str::from_utf8(header_value).map_err(|_| {
            Rejection::invalid_envelope(format!("header ce_{attribute} is not valid UTF-8"))
        })?;
        object.insert(attribute.to_owned(), Value::String(text.to_owned()));
    }
    if let Some(content_type) = content_type
        && !object.contains_key("datacontenttype")
    {
        let text = std::str::from_utf8(content_type)
            .map_err(|_| Rejection::invalid_envelope("header content-type is not valid UTF-8"))?;
        object.insert("datacontenttype".into(), Value::String(text.to_owned()));
    }
    // Attributes come from headers only; a `ce_data` header must not pose as the value.
    object.remove("data");
    object.remove("data_base64");
    if !value.is_empty() {
        object.insert("data".into(), parse_json::<Value>(value, limits)?);
    }
    Event::from_json_object(object)
}

/// UTF-8, non-empty, not nested too deep, then JSON — in that order, so each failure gets a
/// detail that says what is wrong.
fn parse_json<T: DeserializeOwned>(bytes: &[u8], limits: &Limits) -> Result<T, Rejection> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Rejection::invalid_json(format!("not valid UTF-8 (at byte {})", e.valid_up_to()))
    })?;
    if text.trim_ascii().is_empty() {
        return Err(Rejection::invalid_json("empty record"));
    }
    if nesting_exceeds(text.as_bytes(), limits.max_json_depth) {
        return Err(Rejection::invalid_json(format!(
            "nesting deeper than {} levels",
            limits.max_json_depth
        )));
    }
    serde_json::from_str(text).map_err(|e| Rejection::invalid_json(format!("not JSON: {e}")))
}

/// Whether more than `max` arrays/objects are open at once anywhere in `bytes` (the top-level
/// object is level 1). A linear scan that jumps over string contents with `memchr` (most of an
/// event is strings); serde_json's own limit (128) is a recursion guard, not ours, and would
/// answer only after building the tree.
fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip to the closing quote, stepping over escapes.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i.min(bytes.len())..]) {
                        None => return false,
                        Some(at) if bytes[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

fn required_string(member: Option<Value>, name: &str) -> Result<String, Rejection> {
    match optional_string(member, name)? {
        None => Err(Rejection::invalid_envelope(format!(
            "missing required attribute {name}"
        ))),
        Some(value) if value.is_empty() => Err(Rejection::invalid_envelope(format!(
            "required attribute {name} is empty"
        ))),
        Some(value) => Ok(value),
    }
}

/// An attribute that must be a string when present; `null` counts as absent.
fn optional_string(member: Option<Value>, name: &str) -> Result<Option<String>, Rejection> {
    match member {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(Rejection::invalid_envelope(format!(
            "attribute {name} must be a string, not {}",
            kind(&other)
        ))),
    }
}

/// A CloudEvents attribute name: one or more lowercase ASCII letters and digits.
pub fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// "a number", "an array", ... for details.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits::default()
    }

    fn parse(value: Value) -> Result<Event, Rejection> {
        parse_structured(value.to_string().as_bytes(), &limits())
    }

    fn minimal() -> Value {
        json!({"specversion": "1.0", "id": "e1", "source": "svc", "type": "user.created"})
    }

    fn with(mut value: Value, key: &str, field: Value) -> Value {
        value[key] = field;
        value
    }

    fn without(mut value: Value, key: &str) -> Value {
        value.as_object_mut().unwrap().remove(key);
        value
    }

    fn reason(result: Result<Event, Rejection>) -> Reason {
        result.expect_err("should be rejected").reason
    }

    #[test]
    fn minimal_event_parses_with_empty_data() {
        let event = parse(minimal()).unwrap();
        assert_eq!(
            (event.id.as_str(), event.source.as_str(), event.ty.as_str()),
            ("e1", "svc", "user.created")
        );
        assert!(event.data.is_empty());
        assert!(event.extensions.is_empty() && event.metadata.is_empty());
        assert_eq!(event.subject, None);
        assert_eq!(event.time, None);
    }

    #[test]
    fn specversion_is_optional_and_may_be_1_0_2() {
        assert!(parse(without(minimal(), "specversion")).is_ok());
        assert!(parse(with(minimal(), "specversion", json!("1.0.2"))).is_ok());
        for bad in [
            json!("0.3"),
            json!("1"),
            json!("1.0.1"),
            json!(""),
            json!(1.0),
        ] {
            assert_eq!(
                reason(parse(with(minimal(), "specversion", bad.clone()))),
                Reason::InvalidEnvelope,
                "{bad}"
            );
        }
    }

    #[test]
    fn required_attributes_must_be_present_non_empty_strings() {
        for name in ["id", "source", "type"] {
            assert_eq!(
                reason(parse(without(minimal(), name))),
                Reason::InvalidEnvelope,
                "{name} missing"
            );
            assert_eq!(
                reason(parse(with(minimal(), name, json!("")))),
                Reason::InvalidEnvelope,
                "{name} empty"
            );
            assert_eq!(
                reason(parse(with(minimal(), name, json!(7)))),
                Reason::InvalidEnvelope,
                "{name} number"
            );
            assert_eq!(
                reason(parse(with(minimal(), name, Value::Null))),
                Reason::InvalidEnvelope,
                "{name} null"
            );
        }
    }

    #[test]
    fn type_must_be_dot_separated_segments() {
        for good in ["user", "user.login.attempt", "a-b.c_d.E9"] {
            assert!(
                parse(with(minimal(), "type", json!(good))).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "user.",
            ".user",
            "user..created",
            "user created",
            "user.*",
            "usér",
            "a/b",
        ] {
            assert_eq!(
                reason(parse(with(minimal(), "type", json!(bad)))),
                Reason::InvalidEnvelope,
                "{bad}"
            );
        }
    }

    #[test]
    fn optional_attributes_are_read_and_typed() {
        let event = parse(json!({
            "id": "e1", "source": "svc", "type": "user.created",
            "subject": "user:u1", "time": "2026-11-20T11:00:00.250+01:00",
            "datacontenttype": "application/json", "dataschema": "https://schema/x",
            "data": {"k": 1}
        }))
        .unwrap();
        assert_eq!(event.subject.as_deref(), Some("user:u1"));
        assert_eq!(
            format_time(&event.time.unwrap()),
            "2026-11-20T10:00:00.250Z"
        );
        assert_eq!(event.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(event.dataschema.as_deref(), Some("https://schema/x"));
        assert_eq!(event.data["k"], 1);
        assert_eq!(
            reason(parse(with(minimal(), "time", json!("yesterday")))),
            Reason::InvalidEnvelope
        );
        // Valid RFC 3339 whose UTC year has five digits or is negative: no output could
        // carry it, so the input is refused rather than its outputs unreadable downstream.
        for time in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+00:01"] {
            let rejection = parse(with(minimal(), "time", json!(time))).unwrap_err();
            assert_eq!(rejection.reason, Reason::InvalidEnvelope, "{time}");
            assert_eq!(
                rejection.detail,
                "time is out of range: in UTC its year must be 0000 to 9999"
            );
        }
        for time in [
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
        ] {
            let event = parse(with(minimal(), "time", json!(time))).unwrap();
            assert!(event.time.is_some(), "{time}");
        }
        assert_eq!(
            reason(parse(with(minimal(), "subject", json!(5)))),
            Reason::InvalidEnvelope
        );
    }

    #[test]
    fn data_must_be_an_object_when_present() {
        assert!(
            parse(with(minimal(), "data", Value::Null))
                .unwrap()
                .data
                .is_empty()
        );
        for bad in [json!([1]), json!("text"), json!(3)] {
            assert_eq!(
                reason(parse(with(minimal(), "data", bad))),
                Reason::InvalidEnvelope
            );
        }
        assert_eq!(
            reason(parse(with(minimal(), "data_base64", json!("AAAA")))),
            Reason::InvalidEnvelope
        );
    }

    #[test]
    fn extensions_win_over_metadata() {
        let event = parse(json!({
            "id": "e1", "source": "svc", "type": "user.created",
            "userid": "ext-user", "ipaddress": "",
            "metadata": {"user_id": "meta-user", "ip_address": "10.0.0.1", "correlation_id": "c9", "session_id": 42}
        }))
        .unwrap();
        assert_eq!(
            event.context(ContextAttribute::UserId).as_deref(),
            Some("ext-user")
        );
        // An empty extension is absent, so metadata fills in.
        assert_eq!(
            event.context(ContextAttribute::IpAddress).as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            event.context(ContextAttribute::CorrelationId).as_deref(),
            Some("c9")
        );
        assert_eq!(
            event.context(ContextAttribute::SessionId).as_deref(),
            Some("42")
        );
        assert_eq!(event.context(ContextAttribute::UserAgent), None);
        assert!(!event.extensions.contains_key("metadata"));
    }

    #[test]
    fn members_that_are_no_attribute_names_are_no_extensions() {
        let event = parse(json!({
            "id": "e1", "source": "svc", "type": "user.page.view",
            "userId": "camel", "user_id": "snake", "UserID": "upper", "ip-address": "10.0.0.9",
            "causation_id": "c1", "": "empty", "usérid": "accent",
            "traceparent": "00-abc-01", "x1": "kept"
        }))
        .unwrap();
        let names: Vec<&str> = event.extensions.keys().map(String::as_str).collect();
        assert_eq!(names, ["traceparent", "x1"]);
        assert_eq!(event.context(ContextAttribute::UserId), None);
        assert_eq!(event.context(ContextAttribute::IpAddress), None);
        assert_eq!(event.context(ContextAttribute::CausationId), None);
        // And they are not written back out.
        let out: Value = serde_json::from_slice(&event.to_json_bytes()).unwrap();
        assert!(out.get("userId").is_none() && out.get("user_id").is_none());
        for (name, ok) in [
            ("userid", true),
            ("a1", true),
            ("1", true),
            ("userId", false),
        ] {
            assert_eq!(is_attribute_name(name), ok, "{name}");
        }
        for bad in ["", "user_id", "ip-address", "Userid", "usér"] {
            assert!(!is_attribute_name(bad), "{bad}");
        }
    }

    #[test]
    fn binary_attribute_names_are_taken_as_written() {
        let base: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"b1"),
            ("ce_source", b"svc"),
            ("ce_type", b"user.page.view"),
        ];
        let with = |extra: Vec<(&'static str, &'static [u8])>| {
            let headers: Vec<(&str, &[u8])> = base.iter().copied().chain(extra).collect();
            decode_record(headers, b"{}", &limits())
        };
        let camel = with(vec![("ce_userId", b"camel"), ("ce_user_id", b"snake")]).unwrap();
        assert_eq!(camel.context(ContextAttribute::UserId), None);
        assert!(camel.extensions.is_empty(), "{:?}", camel.extensions);
        let exact = with(vec![("ce_userid", b"u1"), ("CE_sessionid", b"s1")]).unwrap();
        assert_eq!(
            exact.context(ContextAttribute::UserId).as_deref(),
            Some("u1")
        );
        assert_eq!(
            exact.context(ContextAttribute::SessionId).as_deref(),
            Some("s1")
        );
        // `ce_ID` is no `id`: the event has none.
        let upper: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_ID", b"b1"),
            ("ce_source", b"svc"),
            ("ce_type", b"user.page.view"),
        ];
        assert_eq!(
            reason(decode_record(upper, b"{}", &limits())),
            Reason::InvalidEnvelope
        );
        // Only `ce_specversion` chooses binary mode: with `ce_SpecVersion` the value is the
        // whole (structured) event.
        let structured: Vec<(&str, &[u8])> = vec![("ce_SpecVersion", b"0.3"), ("ce_id", b"x")];
        let event = decode_record(structured, minimal().to_string().as_bytes(), &limits()).unwrap();
        assert_eq!(event.id, "e1");
    }

    #[test]
    fn non_object_metadata_is_an_ordinary_extension() {
        let event = parse(with(minimal(), "metadata", json!("x"))).unwrap();
        assert!(event.metadata.is_empty());
        assert_eq!(event.extensions["metadata"], "x");
    }

    #[test]
    fn non_objects_are_invalid_envelopes() {
        for bad in ["[1,2]", "\"text\"", "42", "null", "true"] {
            assert_eq!(
                reason(parse_structured(bad.as_bytes(), &limits())),
                Reason::InvalidEnvelope,
                "{bad}"
            );
        }
    }

    #[test]
    fn bytes_that_are_not_json_are_invalid_json() {
        for bad in [
            &b"{"[..],
            b"not json",
            b"{\"id\": }",
            b"",
            b"  \n",
            b"\xff\xfe{}",
            b"{\"id\":\"\xc3\x28\"}",
        ] {
            assert_eq!(
                reason(parse_structured(bad, &limits())),
                Reason::InvalidJson,
                "{bad:?}"
            );
        }
    }

    fn nested(depth: usize) -> String {
        // The event object is level 1, `data` level 2, then arrays.
        let inner = format!("{}{}", "[".repeat(depth - 2), "]".repeat(depth - 2));
        format!(r#"{{"id":"e","source":"s","type":"user.x","data":{{"n":{inner}}}}}"#)
    }

    #[test]
    fn nesting_is_limited_to_64_levels() {
        assert!(parse_structured(nested(64).as_bytes(), &limits()).is_ok());
        let err = parse_structured(nested(65).as_bytes(), &limits()).unwrap_err();
        assert_eq!(err.reason, Reason::InvalidJson);
        assert!(err.detail.contains("64"), "{}", err.detail);
        // Brackets inside strings are not nesting.
        let in_string = format!(
            r#"{{"id":"e","source":"s","type":"user.x","data":{{"s":"{}"}}}}"#,
            "[{".repeat(100)
        );
        assert!(parse_structured(in_string.as_bytes(), &limits()).is_ok());
        // Far beyond serde_json's own limit, still a clean rejection.
        let deep = "[".repeat(100_000);
        assert_eq!(
            reason(parse_structured(deep.as_bytes(), &limits())),
            Reason::InvalidJson
        );
    }

    #[test]
    fn records_over_the_limit_are_too_large_before_parsing() {
        let small = Limits {
            max_record_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            reason(parse_structured(&[b'x'; 11], &small)),
            Reason::TooLarge
        );
        assert_eq!(
            reason(parse_structured(&[b'x'; 10], &small)),
            Reason::InvalidJson
        );
        let default = Limits::default();
        assert_eq!(default.max_record_bytes, 1024 * 1024);
        let big = vec![b' '; 1024 * 1024 + 1];
        assert_eq!(reason(parse_structured(&big, &default)), Reason::TooLarge);
    }

    #[test]
    fn binary_mode_is_chosen_by_ce_specversion() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"b1"),
            ("ce_source", b"svc"),
            ("ce_type", b"user.login.attempt"),
            ("ce_time", b"2026-11-20T10:00:00Z"),
            ("ce_subject", b"user:u1"),
            ("ce_userid", b"u1"),
            ("Content-Type", b"application/json"),
        ];
        let event =
            decode_record(headers.iter().copied(), br#"{"success": true}"#, &limits()).unwrap();
        assert_eq!(event.id, "b1");
        assert_eq!(event.ty, "user.login.attempt");
        assert_eq!(event.subject.as_deref(), Some("user:u1"));
        assert_eq!(event.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(event.data["success"], true);
        assert_eq!(
            event.context(ContextAttribute::UserId).as_deref(),
            Some("u1")
        );
        assert!(event.time.is_some());
        // An empty value is empty data.
        assert!(
            decode_record(headers.iter().copied(), b"", &limits())
                .unwrap()
                .data
                .is_empty()
        );
        // The value must still be a JSON object.
        assert_eq!(
            reason(decode_record(headers.iter().copied(), b"[1]", &limits())),
            Reason::InvalidEnvelope
        );
        assert_eq!(
            reason(decode_record(headers.iter().copied(), b"{", &limits())),
            Reason::InvalidJson
        );
        // Binary mode checks its attributes like structured mode does.
        let bad_version: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"0.3"),
            ("ce_id", b"b1"),
            ("ce_source", b"s"),
            ("ce_type", b"user.x"),
        ];
        assert_eq!(
            reason(decode_record(bad_version, b"{}", &limits())),
            Reason::InvalidEnvelope
        );
        let bad_utf8: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"\xff"),
            ("ce_source", b"s"),
            ("ce_type", b"user.x"),
        ];
        assert_eq!(
            reason(decode_record(bad_utf8, b"{}", &limits())),
            Reason::InvalidEnvelope
        );
    }

    #[test]
    fn structured_mode_without_ce_specversion_even_with_ce_headers() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("content-type", b"application/cloudevents+json"),
            ("ce_id", b"ignored"),
        ];
        let value = minimal().to_string();
        let event = decode_record(headers, value.as_bytes(), &limits()).unwrap();
        assert_eq!(event.id, "e1");
    }

    #[test]
    fn serialization_says_1_0_and_puts_extensions_on_top() {
        let mut event = parse(with(
            with(minimal(), "specversion", json!("1.0.2")),
            "time",
            json!("2026-11-20T10:00:00Z"),
        ))
        .unwrap();
        event
            .extensions
            .insert("retention".into(), json!("general"));
        let value: Value = serde_json::from_slice(&event.to_json_bytes()).unwrap();
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["retention"], "general");
        assert_eq!(value["time"], "2026-11-20T10:00:00Z");
        assert_eq!(value["data"], json!({}));
        assert!(value.get("subject").is_none());
    }

    #[test]
    fn details_never_quote_the_input() {
        let secret = "alice@example.com";
        for (key, value) in [
            ("type", json!(secret)),
            ("time", json!(secret)),
            ("specversion", json!(secret)),
        ] {
            let err = parse(with(minimal(), key, value)).unwrap_err();
            assert!(!err.detail.contains(secret), "{}", err.detail);
            assert!(err.detail.contains(key), "{}", err.detail);
        }
    }

    /// The obvious byte-by-byte scan, to check the fast one against.
    fn naive_nesting_exceeds(bytes: &[u8], max: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in bytes {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    proptest! {
        #[test]
        fn the_nesting_scan_agrees_with_the_obvious_one(
            bytes in prop::collection::vec(prop::sample::select(b"[]{}\"\\ax".to_vec()), 0..64),
            max in 0usize..6,
        ) {
            prop_assert_eq!(nesting_exceeds(&bytes, max), naive_nesting_exceeds(&bytes, max));
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_structured(&bytes, &limits());
        }

        #[test]
        fn a_parsed_event_round_trips(
            id in "[a-z0-9-]{1,12}", ty in "[a-z]{1,5}(\\.[a-z_]{1,5}){0,3}",
            subject in proptest::option::of("[ -~]{0,10}"), ext in "[ -~]{0,10}", n in any::<i64>(),
        ) {
            let mut value = json!({"id": id, "source": "svc", "type": ty, "ext": ext, "data": {"n": n}});
            if let Some(subject) = subject { value["subject"] = json!(subject); }
            let event = parse(value).unwrap();
            let again = parse_structured(&event.to_json_bytes(), &limits()).unwrap();
            prop_assert_eq!(event, again);
        }

        #[test]
        fn the_member_parser_agrees_with_parsing_to_a_value(
            tokens in prop::collection::vec(prop::sample::select(vec![
                "{", "}", "[", "]", ":", ",", " ", "null", "1", "-2.5", "1e400", "true", "\"x\"",
                "\"\"", "\"id\"", "\"source\"", "\"type\"", "\"user.a\"", "\"data\"",
                "\"data_base64\"", "\"metadata\"", "\"time\"", "\"2026-11-20T10:00:00Z\"",
                "\"specversion\"", "\"1.0\"", "\"userid\"", "\"user_id\"", "\"i\\u0064\"",
                "\"\\x\"", "\"subject\"", "{\"id\":\"e\",\"source\":\"s\",\"type\":\"user.a\"",
            ]), 0..24),
        ) {
            let text = tokens.concat();
            let by_value = parse_json::<Value>(text.as_bytes(), &limits()).and_then(|value| match value {
                Value::Object(object) => Event::from_json_object(object),
                other => Err(Rejection::invalid_envelope(format!(
                    "the record is {}, not a JSON object",
                    kind(&other)
                ))),
            });
            prop_assert_eq!(parse_structured(text.as_bytes(), &limits()), by_value, "{}", text);
        }

        #[test]
        fn json_bytes_are_what_serde_json_writes(
            id in any::<String>(), source in "\\PC{0,8}", ty in "[ -~]{0,12}",
            subject in proptest::option::of(any::<String>()),
            secs in -100_000_000_000i64..300_000_000_000, nanos in prop_oneof![Just(0u32), 0u32..2_000_000_000],
            with_time in any::<bool>(),
            content_type in proptest::option::of("[\\x00-\\x7f]{0,10}"),
            schema in proptest::option::of(any::<String>()),
            extensions in prop::collection::btree_map("[a-z0-9]{1,6}|\\PC{0,4}", any::<String>().prop_map(Value::String), 0..4),
            metadata in prop::collection::btree_map("\\PC{0,6}", any::<i64>().prop_map(Value::from), 0..3),
            data in prop::collection::btree_map("\\PC{0,6}", prop_oneof![any::<f64>().prop_map(Value::from), any::<bool>().prop_map(Value::from), Just(json!({"a": [1, "x\"y", null]}))], 0..4),
        ) {
            let mut event = Event::new(id, source, ty);
            event.subject = subject;
            event.time = with_time.then(|| DateTime::from_timestamp(secs, nanos)).flatten();
            event.datacontenttype = content_type;
            event.dataschema = schema;
            event.extensions = extensions.into_iter().collect();
            event.metadata = metadata.into_iter().collect();
            event.data = data.into_iter().collect();
            prop_assert_eq!(event.to_json_bytes(), serde_json::to_vec(&event).unwrap());
        }
    }
}
