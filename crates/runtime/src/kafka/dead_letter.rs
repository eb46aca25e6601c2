//! Dead-letter records (docs/reason-codes.md).
//!
//! A dead letter carries the original record unchanged — key, value and headers, so binary-mode
//! CloudEvents (whose attributes live in `ce_*` headers) can be replayed — plus the `auditflow.*`
//! headers saying why and where from. In the transactional loop it is produced in the same
//! transaction as the batch's other outputs; the at-least-once loop produces it before the
//! record's offset counts as done.
//!
//! **A dead letter always fits.** One the producer or the dead-letter topic refuses could never
//! be produced: the transactional loop would abort and rewind to it forever, the at-least-once
//! loop retry it until shutdown, and its partition would stall. So when the whole would be over
//! the limit ([`dead_letter_limit`]: the producer's `message.max.bytes` or the topic's
//! `max.message.bytes`, whichever is smaller), parts of the original are left out, in this
//! order, until it fits, each time saying so in a header:
//!
//! 1. the value — [`HEADER_VALUE_DROPPED`] holds its size;
//! 2. source headers and the key, largest first — [`HEADER_HEADERS_DROPPED`] holds how many
//!    headers were left out, [`HEADER_KEY_DROPPED`] the key's size;
//! 3. the end of `auditflow.error.detail` — [`HEADER_DETAIL_TRUNCATED`] holds its full size.
//!
//! (A detail is human text and is cut at [`MAX_DETAIL_BYTES`] in any case, before anything
//! else, so a long error message never costs the original its bytes.)
//!
//! The other `auditflow.*` headers are never left out: the reason, and where the original is
//! (topic, partition, offset), to be read there while the input topic retains it. That holds
//! for any limit of at least [`MIN_LIMIT`] bytes (Kafka's are hundreds of kilobytes).

use auditflow_core::config::KafkaSettings;

use crate::kafka::client;
use crate::kafka::records::{
    DeadLetter, InputRecord, OutputRecord, RECORD_OVERHEAD, header_wire_len,
};
use crate::kafka::topics;

/// Header: the reason code (docs/reason-codes.md).
pub const HEADER_ERROR: &str = "auditflow.error";
/// Header: what was wrong, in words (never record contents).
pub const HEADER_ERROR_DETAIL: &str = "auditflow.error.detail";
/// Header: the topic the original record was consumed from.
pub const HEADER_SOURCE_TOPIC: &str = "auditflow.source.topic";
/// Header: its partition.
pub const HEADER_SOURCE_PARTITION: &str = "auditflow.source.partition";
/// Header: its offset.
pub const HEADER_SOURCE_OFFSET: &str = "auditflow.source.offset";
/// Header: the service that refused it.
pub const HEADER_SERVICE: &str = "auditflow.service";

/// Set (to the value's size in bytes) when the original value was left out.
pub const HEADER_VALUE_DROPPED: &str = "auditflow.error.value_dropped";
/// Set (to how many) when source headers were left out, the largest first.
pub const HEADER_HEADERS_DROPPED: &str = "auditflow.error.headers_dropped";
/// Set (to the key's size in bytes) when the original key was left out.
pub const HEADER_KEY_DROPPED: &str = "auditflow.error.key_dropped";
/// Set (to the full detail's size in bytes) when `auditflow.error.detail` was cut short.
pub const HEADER_DETAIL_TRUNCATED: &str = "auditflow.error.detail_truncated";

/// The `auditflow.*` headers a dead letter sets; a re-dead-lettered record drops its old
/// copies of these so a reader never sees two conflicting reasons.
const OWN_HEADERS: [&str; 10] = [
    HEADER_ERROR,
    HEADER_ERROR_DETAIL,
    HEADER_SOURCE_TOPIC,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_OFFSET,
    HEADER_SERVICE,
    HEADER_VALUE_DROPPED,
    HEADER_HEADERS_DROPPED,
    HEADER_KEY_DROPPED,
    HEADER_DETAIL_TRUNCATED,
];

/// The smallest limit under which every dead letter fits: the `auditflow.*` headers at their
/// largest (a 249-character topic name, Kafka's longest; 20-digit numbers; a reason code and
/// service name of up to 64 bytes each) with every part of the original left out.
pub const MIN_LIMIT: usize = 1024;

/// The longest `auditflow.error.detail`; a longer one is cut short (and said so).
pub const MAX_DETAIL_BYTES: usize = 4096;

/// Room kept for a marker header: its name, up to 20 digits, two length bytes.
fn marker_room(name: &str) -> usize {
    name.len() + 20 + 2
}

/// The size limit for dead letters to `dlq_topic`: the producer's (`[kafka.properties]
/// "message.max.bytes"`) or the topic's (`max.message.bytes`, asked of the broker), whichever
/// is smaller, less framing ([`client::max_message_bytes_to`]). When the topic's cannot be
/// read (it does not exist yet, or this principal may not describe it), the producer's.
pub async fn dead_letter_limit(settings: &KafkaSettings, dlq_topic: &str) -> usize {
    let topic = topics::max_message_bytes(settings, dlq_topic).await;
    if topic.is_none() {
        tracing::warn!(
            topic = dlq_topic,
            "cannot read the dead-letter topic's max.message.bytes; dead letters are sized for the producer's limit only"
        );
    }
    client::max_message_bytes_to(settings, topic)
}

/// Builds the dead-letter record for `source` on `dlq_topic`, at most `max_bytes` as the
/// producer counts it ([`OutputRecord::encoded_len`]): see the module documentation for what
/// is left out of a record that would not fit, and in which order.
pub fn dead_letter_record(
    source: &InputRecord,
    letter: &DeadLetter,
    service: &str,
    dlq_topic: &str,
    max_bytes: usize,
) -> OutputRecord {
    let sources: Vec<&(String, Option<Vec<u8>>)> = source
        .headers
        .iter()
        .filter(|(name, _)| !OWN_HEADERS.contains(&name.as_str()))
        .collect();
    let detail = &letter.detail;
    let mut markers: Vec<(&str, usize)> = Vec::new();
    let mut detail_cut = floor_char_boundary(detail, MAX_DETAIL_BYTES);
    if detail_cut < detail.len() {
        markers.push((HEADER_DETAIL_TRUNCATED, detail.len()));
    }
    let own = own_headers(source, letter, &detail[..detail_cut], service);
    let size_of = |headers: &[(String, Option<Vec<u8>>)]| -> usize {
        headers
            .iter()
            .map(|(name, value)| header_wire_len(name, value.as_deref()))
            .sum()
    };
    let source_len: usize = sources
        .iter()
        .map(|(name, value)| header_wire_len(name, value.as_deref()))
        .sum();
    let key_len = source.key.as_ref().map_or(0, Vec::len);
    let value_len = source.payload.as_ref().map_or(0, Vec::len);
    let marker_len: usize = markers
        .iter()
        .map(|(name, n)| header_wire_len(name, Some(n.to_string().as_bytes())))
        .sum();
    let mut size = RECORD_OVERHEAD + key_len + value_len + source_len + size_of(&own) + marker_len;

    let mut keep_value = true;
    let mut keep_key = true;
    let mut keep = vec![true; sources.len()];
    if size > max_bytes && source.payload.is_some() {
        keep_value = false;
        size -= value_len;
        markers.push((HEADER_VALUE_DROPPED, value_len));
        size += marker_room(HEADER_VALUE_DROPPED);
    }
    // Room for the two markers this step may add, so adding them cannot tip the record over.
    let room = marker_room(HEADER_HEADERS_DROPPED) + marker_room(HEADER_KEY_DROPPED);
    if size > max_bytes {
        // The key and each source header, largest first; `None` is the key.
        let mut parts: Vec<(usize, Option<usize>)> = sources
            .iter()
            .enumerate()
            .map(|(i, (name, value))| (header_wire_len(name, value.as_deref()), Some(i)))
            .collect();
        if source.key.is_some() {
            parts.push((key_len, None));
        }
        parts.sort_by_key(|part| std::cmp::Reverse(part.0));
        let mut dropped_headers = 0;
        for (len, part) in parts {
            if size + room <= max_bytes {
                break;
            }
            size -= len;
            match part {
                Some(i) => {
                    keep[i] = false;
                    dropped_headers += 1;
                }
                None => keep_key = false,
            }
        }
        if dropped_headers > 0 {
            markers.push((HEADER_HEADERS_DROPPED, dropped_headers));
        }
        if !keep_key {
            markers.push((HEADER_KEY_DROPPED, key_len));
        }
    }

    let assemble = |own: Vec<(String, Option<Vec<u8>>)>, markers: &[(&str, usize)]| {
        let mut headers: Vec<(String, Option<Vec<u8>>)> = sources
            .iter()
            .zip(&keep)
            .filter(|(_, keep)| **keep)
            .map(|(header, _)| (*header).clone())
            .collect();
        headers.extend(own);
        headers.extend(
            markers
                .iter()
                .map(|(name, n)| ((*name).to_owned(), Some(n.to_string().into_bytes()))),
        );
        OutputRecord {
            topic: dlq_topic.to_owned(),
            key: source.key.clone().filter(|_| keep_key),
            payload: source.payload.clone().filter(|_| keep_value),
            headers,
        }
    };
    let record = assemble(own, &markers);
    let over = record.encoded_len().saturating_sub(max_bytes);
    if over == 0 {
        return record;
    }
    // Only our own headers are left (a limit below a few kilobytes): cut the detail shorter.
    if detail_cut == detail.len() {
        markers.push((HEADER_DETAIL_TRUNCATED, detail.len()));
    }
    detail_cut = floor_char_boundary(
        detail,
        detail_cut.saturating_sub(over + marker_room(HEADER_DETAIL_TRUNCATED)),
    );
    assemble(
        own_headers(source, letter, &detail[..detail_cut], service),
        &markers,
    )
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut cut = max.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// The `auditflow.*` headers SPEC section 6 names, in a fixed order.
fn own_headers(
    source: &InputRecord,
    letter: &DeadLetter,
    detail: &str,
    service: &str,
) -> Vec<(String, Option<Vec<u8>>)> {
    [
        (HEADER_ERROR, letter.reason.clone()),
        (HEADER_ERROR_DETAIL, detail.to_owned()),
        (HEADER_SOURCE_TOPIC, source.topic.clone()),
        (HEADER_SOURCE_PARTITION, source.partition.to_string()),
        (HEADER_SOURCE_OFFSET, source.offset.to_string()),
        (HEADER_SERVICE, service.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), Some(value.into_bytes())))
    .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rdkafka::ClientConfig;
    use rdkafka::error::KafkaError;
    use rdkafka::producer::BaseProducer;
    use rdkafka::types::RDKafkaErrorCode;

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

    /// Every value of header `name`, as text.
    fn get(record: &OutputRecord, name: &str) -> Vec<String> {
        record
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8(v.clone().unwrap()).unwrap())
            .collect()
    }

    /// librdkafka's own verdict on the record, independent of our size arithmetic: whether a
    /// producer with `message.max.bytes = limit` takes it. The size check is local, made when
    /// the record is enqueued, so this producer needs no broker (it has none: nothing listens
    /// on port 9, and its queue is purged when it is dropped).
    fn librdkafka_accepts(record: &OutputRecord, limit: usize) -> bool {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("message.max.bytes", limit.to_string())
            .set("batch.size", limit.min(1_000_000).to_string())
            .set("message.timeout.ms", "1000")
            .set("log_level", "0")
            .create()
            .expect("producer");
        let accepted = match producer.send(record.base_record()) {
            Ok(()) => true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => false,
            Err((other, _)) => panic!("unexpected producer error: {other}"),
        };
        drop(producer);
        accepted
    }

    /// What every dead letter must say, however much of the original was left out.
    fn assert_says_why_and_where_from(dlq: &OutputRecord, source: &InputRecord, reason: &str) {
        assert_eq!(get(dlq, HEADER_ERROR), [reason]);
        assert_eq!(get(dlq, HEADER_SOURCE_TOPIC), [source.topic.as_str()]);
        assert_eq!(
            get(dlq, HEADER_SOURCE_PARTITION),
            [source.partition.to_string()]
        );
        assert_eq!(get(dlq, HEADER_SOURCE_OFFSET), [source.offset.to_string()]);
        assert_eq!(get(dlq, HEADER_SERVICE), ["classifier"]);
        assert_eq!(get(dlq, HEADER_ERROR_DETAIL).len(), 1);
    }

    fn letter() -> DeadLetter {
        DeadLetter::new("too_large", "record is over the limit")
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
        assert_says_why_and_where_from(&dlq, &source(), "invalid_json");
        assert_eq!(get(&dlq, HEADER_ERROR_DETAIL), ["not UTF-8"]);
        for marker in [
            HEADER_VALUE_DROPPED,
            HEADER_HEADERS_DROPPED,
            HEADER_KEY_DROPPED,
            HEADER_DETAIL_TRUNCATED,
        ] {
            assert!(get(&dlq, marker).is_empty(), "{marker}");
        }
    }

    #[test]
    fn a_value_too_large_to_produce_is_left_out_and_said_so() {
        let mut big = source();
        big.payload = Some(vec![b'x'; 2000]);
        let letter = DeadLetter::new("too_large", "record is 2000 bytes");
        let dlq = dead_letter_record(&big, &letter, "classifier", "audit.dlq", 1100);
        assert_eq!(dlq.payload, None);
        assert!(dlq.encoded_len() <= 1100);
        assert_eq!(get(&dlq, HEADER_VALUE_DROPPED), ["2000"]);
        // The small headers and the key stay: the value was enough.
        assert_eq!(dlq.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(
            dlq.headers[0],
            ("ce_specversion".into(), Some(b"1.0".to_vec()))
        );
        assert!(get(&dlq, HEADER_HEADERS_DROPPED).is_empty());
        assert_says_why_and_where_from(&dlq, &big, "too_large");
    }

    #[test]
    fn a_megabyte_header_is_left_out_and_the_small_ones_stay() {
        // The stall of issue 12: the value was dropped, but a 1 MB header kept, and the
        // producer refused the letter for ever.
        let mut big = source();
        big.payload = Some(vec![b'v'; 10_000]);
        big.headers
            .push(("ce_pad".into(), Some(vec![b'p'; 1_048_576])));
        big.headers.push(("ce_id".into(), Some(b"e-1".to_vec())));
        let limit = client::max_message_bytes(&KafkaSettings::default());
        let dlq = dead_letter_record(&big, &letter(), "classifier", "audit.dlq", limit);
        assert!(librdkafka_accepts(&dlq, 1_000_000));
        assert!(
            librdkafka_accepts(&dlq, dlq.encoded_len().max(1000)),
            "exact size"
        );
        assert_eq!(dlq.payload, None);
        assert_eq!(get(&dlq, HEADER_VALUE_DROPPED), ["10000"]);
        assert_eq!(get(&dlq, HEADER_HEADERS_DROPPED), ["1"]);
        assert!(get(&dlq, "ce_pad").is_empty());
        assert_eq!(get(&dlq, "ce_id"), ["e-1"]);
        assert_eq!(get(&dlq, "ce_specversion"), ["1.0"]);
        assert_eq!(dlq.key.as_deref(), Some(&b"k"[..]));
        assert_says_why_and_where_from(&dlq, &big, "too_large");
    }

    #[test]
    fn many_tiny_headers_are_counted_with_their_framing() {
        // 400,000 empty headers: 400 kB of names, 1.2 MB as the producer counts them.
        let mut many = source();
        many.headers = (0..400_000).map(|_| ("h".to_owned(), None)).collect();
        let limit = client::max_message_bytes(&KafkaSettings::default());
        let dlq = dead_letter_record(&many, &letter(), "classifier", "audit.dlq", limit);
        assert!(librdkafka_accepts(&dlq, 1_000_000));
        let dropped: usize = get(&dlq, HEADER_HEADERS_DROPPED)[0].parse().unwrap();
        let kept = dlq.headers.iter().filter(|(k, _)| k == "h").count();
        assert_eq!(kept + dropped, 400_000);
        assert!(
            kept > 300_000,
            "only as many dropped as needed: kept {kept}"
        );
        assert_says_why_and_where_from(&dlq, &many, "too_large");
    }

    #[test]
    fn a_huge_key_is_left_out_and_said_so() {
        let mut keyed = source();
        keyed.key = Some(vec![b'k'; 1_500_000]);
        let limit = client::max_message_bytes(&KafkaSettings::default());
        let dlq = dead_letter_record(&keyed, &letter(), "classifier", "audit.dlq", limit);
        assert!(librdkafka_accepts(&dlq, 1_000_000));
        assert_eq!(dlq.key, None);
        assert_eq!(get(&dlq, HEADER_KEY_DROPPED), ["1500000"]);
        // The value went first; the small headers had no need to go.
        assert_eq!(dlq.payload, None);
        assert!(get(&dlq, HEADER_HEADERS_DROPPED).is_empty());
        assert_eq!(get(&dlq, "ce_specversion"), ["1.0"]);
        assert_says_why_and_where_from(&dlq, &keyed, "too_large");
    }

    #[test]
    fn a_huge_detail_is_cut_short_on_a_character_boundary() {
        let detail = format!("x{}", "é".repeat(700_000)); // 1.4 MB, two-byte characters
        let letter = DeadLetter::new("store_rejected", detail.clone());
        let limit = client::max_message_bytes(&KafkaSettings::default());
        let dlq = dead_letter_record(&source(), &letter, "classifier", "audit.dlq", limit);
        assert!(librdkafka_accepts(&dlq, 1_000_000));
        let cut = &get(&dlq, HEADER_ERROR_DETAIL)[0];
        assert!(detail.starts_with(cut.as_str()), "a prefix");
        assert_eq!(
            cut.len(),
            MAX_DETAIL_BYTES - 1,
            "4095: 4096 would split an é"
        );
        assert_eq!(get(&dlq, HEADER_DETAIL_TRUNCATED), ["1400001"]);
        // The original record is small: all of it stays.
        assert_eq!(dlq.payload, source().payload);
        assert_eq!(dlq.key, source().key);
        assert_says_why_and_where_from(&dlq, &source(), "store_rejected");
    }

    #[test]
    fn everything_huge_at_once_still_fits_the_smallest_limit() {
        let mut worst = source();
        worst.topic = "t".repeat(249);
        worst.offset = i64::MAX;
        worst.partition = i32::MAX;
        worst.key = Some(vec![1; 300_000]);
        worst.payload = Some(vec![2; 300_000]);
        worst.headers = (0..50_000)
            .map(|i| (format!("h{i}"), Some(vec![3; i % 7])))
            .collect();
        let letter = DeadLetter::new("r".repeat(64), "d".repeat(300_000));
        let dlq = dead_letter_record(&worst, &letter, &"s".repeat(64), "audit.dlq", MIN_LIMIT);
        assert!(dlq.encoded_len() <= MIN_LIMIT, "{}", dlq.encoded_len());
        assert!(librdkafka_accepts(&dlq, MIN_LIMIT));
        assert_eq!(dlq.key, None);
        assert_eq!(dlq.payload, None);
        assert_eq!(get(&dlq, HEADER_HEADERS_DROPPED), ["50000"]);
        assert_eq!(get(&dlq, HEADER_SOURCE_TOPIC), [worst.topic.as_str()]);
        assert_eq!(get(&dlq, HEADER_SOURCE_OFFSET), [i64::MAX.to_string()]);
        assert_eq!(get(&dlq, HEADER_DETAIL_TRUNCATED), ["300000"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the record, the letter fits the limit as librdkafka counts it, says why
        /// and where from, and leaves out only what it says it left out.
        #[test]
        fn every_dead_letter_fits(
            key in proptest::option::of(0usize..300_000),
            value in proptest::option::of(0usize..300_000),
            headers in proptest::collection::vec((1usize..40, proptest::option::of(0usize..60_000)), 0..300),
            detail in 0usize..200_000,
            limit in 1500usize..400_000,
        ) {
            let record = InputRecord {
                topic: "user.events".into(),
                partition: 1,
                offset: 7,
                key: key.map(|n| vec![b'k'; n]),
                payload: value.map(|n| vec![b'v'; n]),
                headers: headers
                    .iter()
                    .enumerate()
                    .map(|(i, (name, value))| (format!("{i}{}", "n".repeat(*name)), value.map(|n| vec![b'h'; n])))
                    .collect(),
                timestamp_ms: None,
            };
            let letter = DeadLetter::new("invalid_json", "x".repeat(detail));
            let dlq = dead_letter_record(&record, &letter, "classifier", "audit.dlq", limit);
            prop_assert!(dlq.encoded_len() <= limit);
            prop_assert!(librdkafka_accepts(&dlq, limit.max(1000)));
            assert_says_why_and_where_from(&dlq, &record, "invalid_json");
            let value_dropped = get(&dlq, HEADER_VALUE_DROPPED);
            match &dlq.payload {
                Some(kept) => prop_assert!(Some(kept) == record.payload.as_ref() && value_dropped.is_empty()),
                None => prop_assert!(record.payload.is_none() || value_dropped == [value.unwrap().to_string()]),
            }
            match &dlq.key {
                Some(kept) => prop_assert!(Some(kept) == record.key.as_ref()),
                None => prop_assert!(record.key.is_none() || get(&dlq, HEADER_KEY_DROPPED) == [key.unwrap().to_string()]),
            }
            // Kept source headers are the originals, in order; the count of the rest is said.
            let kept: Vec<_> = dlq.headers.iter().filter(|(k, _)| !k.starts_with("auditflow.")).cloned().collect();
            let mut originals = record.headers.iter();
            prop_assert!(kept.iter().all(|h| originals.any(|o| o == h)));
            let dropped = get(&dlq, HEADER_HEADERS_DROPPED).first().map_or(0, |n| n.parse().unwrap());
            prop_assert_eq!(kept.len() + dropped, record.headers.len());
            // Nothing is left out of a record that fits whole.
            let whole = dead_letter_record(&record, &letter, "classifier", "audit.dlq", usize::MAX);
            if whole.encoded_len() <= limit {
                prop_assert_eq!(&dlq, &whole);
            }
        }
    }
}
