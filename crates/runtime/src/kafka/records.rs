//! Records as the harness hands them to a service and takes them back.
//!
//! Consumed records are detached from librdkafka's buffers ([`InputRecord`]) so a bounded batch can
//! be processed after the poll that fetched it; what a service makes of one record is a
//! [`Transformed`], which is what keeps the books (docs/operations.md: every consumed record
//! becomes outputs, a sampled-out count, an ignored count or a dead letter).

use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, FutureRecord};

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// The topic's name.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

impl Partition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// A consumed record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// The topic it was consumed from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    /// In record order; a header may repeat and may have no value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The Kafka record timestamp (create or log-append time), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl InputRecord {
    /// Copies a polled message out of librdkafka's buffers.
    pub fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: message.timestamp().to_millis(),
        }
    }

    /// The partition it was consumed from.
    pub fn partition_id(&self) -> Partition {
        Partition::new(self.topic.clone(), self.partition)
    }

    /// The value of the last header called `name` (Kafka allows repeats; the last one wins, as in
    /// the Java client's `lastHeader`).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Its value, empty for a tombstone.
    pub fn payload(&self) -> &[u8] {
        self.payload.as_deref().unwrap_or_default()
    }

    /// The record's size as a producer counts it ([`wire_len`]): what it costs to hold, and
    /// what the in-flight byte budgets (`[kafka] max_in_flight_bytes`) count.
    pub fn encoded_len(&self) -> usize {
        wire_len(self.key.as_deref(), self.payload.as_deref(), &self.headers)
    }

    /// The headers that carry a value, in record order, as `(name, value)`: the shape the
    /// core's CloudEvents decoder (`auditflow_core::envelope::decode_record`) takes.
    pub fn valued_headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_deref()?)))
    }
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// The topic to produce to.
    pub topic: String,
    /// Its key (the partitioner's input), if any.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Its headers, in order; a header may have no value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl OutputRecord {
    /// A record with a value and no headers.
    pub fn new(topic: impl Into<String>, key: Option<Vec<u8>>, payload: Vec<u8>) -> Self {
        Self {
            topic: topic.into(),
            key,
            payload: Some(payload),
            headers: Vec::new(),
        }
    }

    /// Adds a header with a value.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    /// The bytes the producer counts against `message.max.bytes` ([`wire_len`]).
    pub fn encoded_len(&self) -> usize {
        wire_len(self.key.as_deref(), self.payload.as_deref(), &self.headers)
    }

    /// The record in librdkafka's form, for a `BaseProducer`.
    pub fn base_record(&self) -> BaseRecord<'_, [u8], [u8]> {
        let mut record = BaseRecord::to(&self.topic).headers(self.kafka_headers());
        if let Some(key) = &self.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &self.payload {
            record = record.payload(payload.as_slice());
        }
        record
    }

    /// The record in librdkafka's form, for a `FutureProducer`.
    pub(crate) fn future_record(&self) -> FutureRecord<'_, [u8], [u8]> {
        let mut record = FutureRecord::to(&self.topic).headers(self.kafka_headers());
        if let Some(key) = &self.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &self.payload {
            record = record.payload(payload.as_slice());
        }
        record
    }

    /// The headers in librdkafka's form, for producing.
    pub(crate) fn kafka_headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |hs, (key, value)| {
                hs.insert(Header {
                    key,
                    value: value.as_deref(),
                })
            },
        )
    }
}

/// The most a Kafka (v2) record adds to its key, value and headers: its length, attributes,
/// timestamp and offset deltas, key and value lengths and header count, each at its widest
/// varint. librdkafka adds exactly this when it checks a record against `message.max.bytes`.
pub const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;

/// The size of one header in a Kafka record: name and value, each after its length (a
/// zig-zag varint, as librdkafka counts it).
pub fn header_wire_len(name: &str, value: Option<&[u8]>) -> usize {
    let value_len = value.map_or(0, <[u8]>::len);
    name.len() + value_len + varint_len(name.len()) + varint_len(value_len)
}

/// A record's size as librdkafka counts it before producing (`rd_kafka_msg_max_wire_size`):
/// [`RECORD_OVERHEAD`], key, value, and every header with its length prefixes. Counting only
/// names and values would let a record of many tiny headers pass our checks and be refused
/// by the producer (200,000 empty headers are 600 kB on the wire).
pub fn wire_len(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: &[(String, Option<Vec<u8>>)],
) -> usize {
    let headers: usize = headers
        .iter()
        .map(|(name, value)| header_wire_len(name, value.as_deref()))
        .sum();
    RECORD_OVERHEAD + key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len) + headers
}

/// Bytes of `n` as a zig-zag varint (Kafka's signed varint: `n` is never negative here).
fn varint_len(n: usize) -> usize {
    let mut zigzag = (n as u64) << 1;
    let mut bytes = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        bytes += 1;
    }
    bytes
}

/// Why a record goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// A reason code of docs/reason-codes.md (`invalid_json`, `missing_user_id`, …). It becomes a
    /// metric label, so it must come from a closed set.
    pub reason: String,
    /// Human text. Must not quote the record (it may hold personal data).
    pub detail: String,
}

impl DeadLetter {
    /// A dead letter with a reason code and its human detail (no personal data).
    pub fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// What a [`Transform`](crate::Transform) made of one consumed record.
#[derive(Debug, Clone, PartialEq)]
pub enum Transformed {
    /// One or more output records. `event_time_ms` feeds the end-to-end latency histogram.
    Emitted {
        /// The records to produce.
        records: Vec<OutputRecord>,
        /// The event's time (ms since the epoch), if known.
        event_time_ms: Option<i64>,
    },
    /// Dropped by sampling; `event_type` is the CloudEvents type (not personal data), counted
    /// per type.
    SampledOut {
        /// The CloudEvents type.
        event_type: String,
    },
    /// Deliberately not processed (e.g. the classifier's `audit.**` loop guard).
    Ignored,
    /// Sent to the dead-letter topic, original bytes unchanged.
    DeadLetter(DeadLetter),
}
