//! The envelope parser on arbitrary bytes, in both Kafka modes, and the classifier behind it.
//!
//! Properties: nothing panics; an accepted event serializes to JSON that parses back to the
//! same event; classifying it yields records, a count or a rejection, never a panic.

#![no_main]

use auditflow_core::config::Limits;
use auditflow_core::envelope::{Event, decode_record, parse_structured};
use auditflow_core::{Classified, Classifier, Config};
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let limits = Limits::default();
    if let Ok(event) = parse_structured(bytes, &limits) {
        check(&event, &limits);
    }
    // Binary mode: the first line holds `name=value` headers separated by `;`, the rest is the
    // value. Lets the fuzzer reach the ce_* header paths with any bytes.
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let (head, value) = bytes.split_at(split);
    let value = value.get(1..).unwrap_or_default();
    let headers: Vec<(&str, &[u8])> = head
        .split(|&b| b == b';')
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((std::str::from_utf8(&pair[..eq]).ok()?, &pair[eq + 1..]))
        })
        .collect();
    if let Ok(event) = decode_record(headers, value, &limits) {
        check(&event, &limits);
    }
});

fn check(event: &Event, limits: &Limits) {
    let json = event.to_json_bytes();
    let again = parse_structured(&json, limits).expect("a serialized event parses back");
    assert_eq!(&again, event, "round trip");
    let classifier = Classifier::new(&Config::default()).expect("defaults are valid");
    let time = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    if let Classified::Emit(outputs) = classifier.classify(event, time) {
        assert!(!outputs.is_empty());
        for output in outputs {
            let line = serde_json::to_vec(&output).expect("outputs serialize");
            assert!(!line.is_empty());
        }
    }
}
