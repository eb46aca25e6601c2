//! The auditflow classifier service: `user.*` / `system.*` CloudEvents in, audit records out
//! (docs/topics-and-records.md, docs/reason-codes.md).
//!
//! This crate is glue and nothing else: every decision is the core's [`Classifier`]; consuming,
//! transactions, dead letters, metrics and shutdown are the Kafka harness's
//! [`transactional`] loop. What is here is the mapping between the
//! two — a Kafka record to the core's input (the runtime's
//! [`decode_event`]: either CloudEvents
//! mode, the record timestamp as the fallback event time) and the core's outputs to Kafka
//! records (key per docs/topics-and-records.md; headers `ce_type`, `ce_id`, `content-type` by
//! the runtime's [`structured_record`]).
//!
//! What it sampled out it summarises at the end of each batch, in the batch's transaction: one
//! `audit.sampling.summary` event per input type, input partition and hour of event time
//! (the core's [`SampledOutTally`]), on `[topics] sampling`, so the count survives the process
//! and `report compliance` can give it for any period.
//!
//! What it is not: it does not decide anything about an event, and it keeps no state beyond a
//! batch, so any instance can take over any partition at any time.

// A library never prints: services report through `tracing` (structured, and kept free of
// personal data), and stdout/stderr belong to the binary that owns the terminal.
#![warn(clippy::print_stdout, clippy::print_stderr)]

use auditflow_core::classify::{Classified, Output};
use auditflow_core::sampling::summary::{SAMPLING_SUMMARY_TYPE, SampledOutTally};
use auditflow_core::{Classifier, Config, ConfigError};
use auditflow_runtime::kafka::cloudevents::{decode_event, structured_record};
use auditflow_runtime::kafka::transactional::{self, Transform};
use auditflow_runtime::{InputRecord, OutputRecord, ServiceContext, Transformed};
use chrono::Utc;

/// The service name: metric label, `auditflow.service` header, group id suffix.
pub const SERVICE: &str = "classifier";

/// Why the classifier stopped or could not start. Bad input is never an error here: it is
/// dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used (a sampling pattern or rate): fix it before starting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Kafka could not be reached, the topics not created, or the loop failed for good.
    #[error(transparent)]
    Kafka(#[from] auditflow_runtime::Error),
}

/// What the classifier consumes: `[topics] classifier_inputs` (topic names, or regular
/// expressions starting with `^`).
pub fn input_topics(config: &Config) -> Vec<String> {
    config.topics.classifier_inputs.clone()
}

/// Runs the classifier until its shutdown: creates the output topics (idempotent), then consumes
/// `[topics] classifier_inputs` in group `<group_prefix>classifier`.
pub async fn run(cx: ServiceContext<'_>) -> Result<(), Error> {
    let config = cx.config;
    let transform = ClassifierTransform::new(Classifier::new(config)?, &config.topics.sampling);
    transactional::run_service(SERVICE, input_topics(config), cx, transform).await?;
    Ok(())
}

/// The core's classifier as a harness [`Transform`]. Its only state is the current batch's
/// sampled-out inputs.
struct ClassifierTransform {
    classifier: Classifier,
    /// Where the summaries of what was sampled out go (`[topics] sampling`).
    sampling_topic: String,
    sampled_out: SampledOutTally,
}

impl ClassifierTransform {
    /// Wraps a classifier built from the service's configuration.
    fn new(classifier: Classifier, sampling_topic: &str) -> Self {
        Self {
            classifier,
            sampling_topic: sampling_topic.to_owned(),
            sampled_out: SampledOutTally::default(),
        }
    }
}

impl Transform for ClassifierTransform {
    fn transform(&mut self, record: &InputRecord) -> Transformed {
        let decoded = match decode_event(record, self.classifier.limits(), Utc::now()) {
            Ok(decoded) => decoded,
            Err(rejection) => return Transformed::DeadLetter(rejection.into()),
        };
        match self.classifier.classify(&decoded.event, decoded.received) {
            Classified::Emit(outputs) => {
                let event_time_ms = outputs.first().map(|o| o.time.timestamp_millis());
                Transformed::Emitted {
                    records: outputs.into_iter().map(output_record).collect(),
                    event_time_ms,
                }
            }
            Classified::SampledOut { ty, rate } => {
                let at = (record.topic.as_str(), record.partition, record.offset);
                self.sampled_out.add(&ty, rate, at, decoded.time());
                Transformed::SampledOut { event_type: ty }
            }
            Classified::Ignored => Transformed::Ignored,
            Classified::Rejected(rejection) => Transformed::DeadLetter(rejection.into()),
        }
    }

    fn end_batch(&mut self) -> Vec<OutputRecord> {
        self.sampled_out
            .drain()
            .into_iter()
            .map(|(summary, time)| {
                let event = summary.to_event(time);
                // Keyed by the input type: one type's summaries stay in order.
                let key = Some(summary.event_type.clone().into_bytes());
                structured_record(
                    self.sampling_topic.clone(),
                    key,
                    SAMPLING_SUMMARY_TYPE,
                    &event.id,
                    event.to_json_bytes(),
                )
            })
            .collect()
    }
}

/// An output as a structured-mode CloudEvents Kafka record, keyed as docs/topics-and-records.md
/// says.
fn output_record(output: Output) -> OutputRecord {
    let key = Some(output.key.into_bytes());
    structured_record(output.topic, key, output.ty, &output.id, output.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform() -> ClassifierTransform {
        ClassifierTransform::new(
            Classifier::new(&Config::default()).unwrap(),
            "audit.sampling.summary",
        )
    }

    fn record(headers: Vec<(&str, &[u8])>, payload: &[u8]) -> InputRecord {
        InputRecord {
            topic: "user.events".into(),
            partition: 0,
            offset: 7,
            key: None,
            payload: Some(payload.to_vec()),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Some(v.to_vec())))
                .collect(),
            timestamp_ms: Some(1_700_000_000_000),
        }
    }

    fn header<'a>(r: &'a OutputRecord, name: &str) -> &'a [u8] {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .unwrap()
    }

    #[test]
    fn structured_mode_becomes_a_keyed_cloudevent_record() {
        let input = br#"{"specversion":"1.0","id":"e1","source":"s","type":"user.created","data":{"user_id":"u1"}}"#;
        let Transformed::Emitted {
            records,
            event_time_ms,
        } = transform().transform(&record(vec![], input))
        else {
            panic!("expected outputs");
        };
        assert_eq!(records.len(), 1);
        let out = &records[0];
        assert_eq!(out.topic, "audit.user.action");
        assert_eq!(out.key.as_deref(), Some(&b"u1"[..]));
        assert_eq!(header(out, "ce_type"), b"audit.user.action");
        assert_eq!(
            header(out, "content-type"),
            auditflow_runtime::kafka::cloudevents::CONTENT_TYPE.as_bytes()
        );
        let value: serde_json::Value =
            serde_json::from_slice(out.payload.as_deref().unwrap()).unwrap();
        assert_eq!(
            header(out, "ce_id"),
            value["id"].as_str().unwrap().as_bytes()
        );
        // No `time`: the record timestamp is the event time.
        assert_eq!(event_time_ms, Some(1_700_000_000_000));
        assert_eq!(value["time"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn binary_mode_is_chosen_by_the_ce_specversion_header() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"e2"),
            ("ce_source", b"s"),
            ("ce_type", b"user.created"),
            ("content-type", b"application/json"),
        ];
        let out = transform().transform(&record(headers, br#"{"user_id":"u2"}"#));
        assert!(
            matches!(out, Transformed::Emitted { ref records, .. } if records[0].key.as_deref() == Some(&b"u2"[..]))
        );
    }

    #[test]
    fn garbage_is_dead_lettered_with_a_reason() {
        let out = transform().transform(&record(vec![], b"\xff\xfe"));
        assert!(
            matches!(out, Transformed::DeadLetter(ref d) if d.reason == "invalid_json"),
            "{out:?}"
        );
        let mut tombstone = record(vec![], b"");
        tombstone.payload = None;
        assert!(matches!(
            transform().transform(&tombstone),
            Transformed::DeadLetter(_)
        ));
    }

    #[test]
    fn what_a_batch_sampled_out_is_summarised_at_its_end() {
        let config = Config::from_toml_str("[sampling]\n\"user.page.view\" = 0\n").unwrap();
        let mut t = ClassifierTransform::new(Classifier::new(&config).unwrap(), "sampled");
        let view = |id: &str, offset: i64| {
            let mut r = record(
                vec![],
                format!(r#"{{"id":"{id}","source":"s","type":"user.page.view","time":"2026-12-03T10:00:00Z","data":{{"user_id":"u1"}}}}"#).as_bytes(),
            );
            r.offset = offset;
            r
        };
        for (id, offset) in [("v1", 3), ("v2", 5)] {
            assert_eq!(
                t.transform(&view(id, offset)),
                Transformed::SampledOut {
                    event_type: "user.page.view".into()
                }
            );
        }
        let summaries = t.end_batch();
        assert_eq!(summaries.len(), 1);
        let out = &summaries[0];
        assert_eq!(out.topic, "sampled");
        assert_eq!(out.key.as_deref(), Some(&b"user.page.view"[..]));
        assert_eq!(header(out, "ce_type"), b"audit.sampling.summary");
        let value: serde_json::Value =
            serde_json::from_slice(out.payload.as_deref().unwrap()).unwrap();
        assert_eq!(value["data"]["count"], 2);
        assert_eq!(value["data"]["sample_rate"], 0.0);
        assert_eq!(value["data"]["input"]["first_offset"], 3);
        assert_eq!(value["data"]["input"]["last_offset"], 5);
        assert_eq!(value["time"], "2026-12-03T10:00:00Z");
        // The next batch starts from nothing.
        assert!(t.end_batch().is_empty());
    }

    #[test]
    fn the_loop_guard_is_ignored() {
        let input = br#"{"id":"e3","source":"s","type":"audit.user.action"}"#;
        assert_eq!(
            transform().transform(&record(vec![], input)),
            Transformed::Ignored
        );
    }
}
