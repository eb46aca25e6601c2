//! Dead-letter records (docs/reason-codes.md).
//!
//! A dead letter carries the original record unchanged — key, value and headers, so binary-mode
//! CloudEvents (whose attributes live in `ce_*` headers) can be replayed — plus the `auditflow.*`
//! headers saying why and where from. In the transactional loop it is produced in the same
//! transaction as the batch's other outputs; the at-least-once loop produces it before the
//! record's offset counts as done.

use crate::record::{DeadLetter, InputRecord, OutputRecord};

pub const HEADER_ERROR: &str = "auditflow.error";
pub const HEADER_ERROR_DETAIL: &str = "auditflow.error.detail";
pub const HEADER_SOURCE_TOPIC: &str = "auditflow.source.topic";
pub const HEADER_SOURCE_PARTITION: &str = "auditflow.source.partition";
pub const HEADER_SOURCE_OFFSET: &str = "auditflow.source.offset";
pub const HEADER_SERVICE: &str = "auditflow.service";

/// The `auditflow.*` header names; a re-dead-lettered record drops its old copies of these so a
/// reader never sees two conflicting reasons.
const OWN_HEADERS: [&str; 6] = [
    HEADER_ERROR,
    HEADER_ERROR_DETAIL,
    HEADER_SOURCE_TOPIC,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_OFFSET,
    HEADER_SERVICE,
];

/// Set (to the value's size in bytes) when the original value was too large to produce and was
/// left out; the source headers say where to find it while the input topic retains it.
pub const HEADER_VALUE_DROPPED: &str = "auditflow.error.value_dropped";

/// Builds the dead-letter record for `source` on `dlq_topic`.
///
/// A record larger than `max_bytes` (the producer's limit, [`crate::client::max_message_bytes`])
/// could never be produced, and retrying it would stall its partition for good; its value is
/// left out instead and [`HEADER_VALUE_DROPPED`] says so.
pub fn dead_letter_record(
    source: &InputRecord,
    letter: &DeadLetter,
    service: &str,
    dlq_topic: &str,
    max_bytes: usize,
) -> OutputRecord {
    let mut headers: Vec<(String, Option<Vec<u8>>)> = source
        .headers
        .iter()
        .filter(|(name, _)| !OWN_HEADERS.contains(&name.as_str()))
        .cloned()
        .collect();
    let mut put =
        |name: &str, value: String| headers.push((name.to_owned(), Some(value.into_bytes())));
    put(HEADER_ERROR, letter.reason.clone());
    put(HEADER_ERROR_DETAIL, letter.detail.clone());
    put(HEADER_SOURCE_TOPIC, source.topic.clone());
    put(HEADER_SOURCE_PARTITION, source.partition.to_string());
    put(HEADER_SOURCE_OFFSET, source.offset.to_string());
    put(HEADER_SERVICE, service.to_owned());
    let mut record = OutputRecord {
        topic: dlq_topic.to_owned(),
        key: source.key.clone(),
        payload: source.payload.clone(),
        headers,
    };
    if record.encoded_len() > max_bytes {
        let dropped = record.payload.take().map_or(0, |v| v.len());
        record.headers.push((
            HEADER_VALUE_DROPPED.to_owned(),
            Some(dropped.to_string().into_bytes()),
        ));
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> InputRecord {
        InputRecord {
            topic: "user.events".into(),
            partition: 3,
            offset: 42,
            key: Some(b"k".to_vec()),
            payload: Some(b"\xff not json".to_vec()),
            headers: vec![
                ("ce_specversion".into(), Some(b"1.0".to_vec())),
                ("auditflow.error".into(), Some(b"stale".to_vec())),
                ("empty".into(), None),
            ],
            timestamp_ms: Some(1),
        }
    }

    #[test]
    fn keeps_the_original_bytes_key_and_headers() {
        let dlq = dead_letter_record(
            &source(),
            &DeadLetter::new("invalid_json", "not UTF-8"),
            "classifier",
            "audit.dlq",
            1_000_000,
        );
        assert_eq!(dlq.topic, "audit.dlq");
        assert_eq!(dlq.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(dlq.payload.as_deref(), Some(&b"\xff not json"[..]));
        assert_eq!(
            dlq.headers[0],
            ("ce_specversion".into(), Some(b"1.0".to_vec()))
        );
        assert_eq!(dlq.headers[1], ("empty".into(), None));
    }

    #[test]
    fn says_why_and_where_from_once() {
        let dlq = dead_letter_record(
            &source(),
            &DeadLetter::new("invalid_json", "not UTF-8"),
            "classifier",
            "audit.dlq",
            1_000_000,
        );
        let get = |name: &str| -> Vec<String> {
            dlq.headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8(v.clone().unwrap()).unwrap())
                .collect()
        };
        assert_eq!(get(HEADER_ERROR), ["invalid_json"]);
        assert_eq!(get(HEADER_ERROR_DETAIL), ["not UTF-8"]);
        assert_eq!(get(HEADER_SOURCE_TOPIC), ["user.events"]);
        assert_eq!(get(HEADER_SOURCE_PARTITION), ["3"]);
        assert_eq!(get(HEADER_SOURCE_OFFSET), ["42"]);
        assert_eq!(get(HEADER_SERVICE), ["classifier"]);
        assert!(get(HEADER_VALUE_DROPPED).is_empty());
    }

    #[test]
    fn a_value_too_large_to_produce_is_left_out_and_said_so() {
        let mut big = source();
        big.payload = Some(vec![b'x'; 2000]);
        let letter = DeadLetter::new("too_large", "record is 2000 bytes");
        let dlq = dead_letter_record(&big, &letter, "classifier", "audit.dlq", 1000);
        assert_eq!(dlq.payload, None);
        assert!(dlq.encoded_len() <= 1000);
        let dropped = dlq.headers.iter().find(|(k, _)| k == HEADER_VALUE_DROPPED);
        assert_eq!(dropped.and_then(|(_, v)| v.as_deref()), Some(&b"2000"[..]));
        // Where to find the original is still there.
        assert!(dlq.headers.iter().any(|(k, _)| k == HEADER_SOURCE_OFFSET));
    }
}
