//! Dead-letter records (SPEC section 6).
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

/// Builds the dead-letter record for `source` on `dlq_topic`.
pub fn dead_letter_record(
    source: &InputRecord,
    letter: &DeadLetter,
    service: &str,
    dlq_topic: &str,
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
    OutputRecord {
        topic: dlq_topic.to_owned(),
        key: source.key.clone(),
        payload: source.payload.clone(),
        headers,
    }
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
    }
}
