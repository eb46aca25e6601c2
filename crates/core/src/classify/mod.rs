//! Classification (docs/topics-and-records.md): one input event → audit records on the audit
//! topics, a sampled-out count, an ignored count, or a rejection for the dead-letter topic.
//!
//! This is the whole decision of the classifier service and of `auditflow classify`; both call
//! [`Classifier`] and keep [`Counters`] the same way, so offline runs and the service agree
//! record for record. Everything here is a pure function of the input, the configuration and
//! the fallback time the caller passes in (Kafka record timestamp, or the time a line was read),
//! which is what makes replays reproduce output ids and sampling decisions exactly.
//!
//! Decisions beyond the original contract (each tested in `tests.rs`, all in
//! docs/topics-and-records.md):
//! - A type that no rule covers (neither `user.**`, `system.**` nor `audit.**`) is dead-lettered
//!   as `unknown_type`: it reached the classifier's topics, so an operator should see it.
//! - Every output has `time` (the input's, else the fallback), `source` [`OUTPUT_SOURCE`] and
//!   `datacontenttype` `application/json`; its id is [`output_id`].
//! - `system.security.**` events carry the derived user id and ip as `user_id` and `source_ip`;
//!   a security event with neither is keyed `system`. The type `system.security` itself would
//!   have an empty `event_type`: `schema_violation`.
//! - Fields copied from `data` are checked against the output schema: `null` is absent, a
//!   string field accepts an integer (ids often are numbers) as its decimal string, and any
//!   other type is `schema_violation` naming the field. `data.changes` must be an object and
//!   `data.geo` `{lat, lon, country?}` with coordinates in range. Flags that only steer a rule
//!   (`success`, `new_device`, ...) count only when they are the boolean `true`.
//! - `samplerate` is written as an integer when whole (`1`); records that cannot be sampled
//!   out carry `1` whatever rate their type has.

mod derive;
mod output;
mod rules;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use derive::{correlation_id, user_id};
pub use output::Output;
pub use rules::{PRIVILEGED_ROLES, SENSITIVE_FIELDS, is_privileged_role};

use crate::audit_record::AuditRecord;
use crate::config::{Config, Limits, Topics};
use crate::envelope::{self, Event, Reason, Rejection};
use crate::error::ConfigError;
use crate::pattern::PatternTable;
use crate::retention::{RetentionClass, RetentionPolicy};
use crate::sampling::{Sampler, keep, may_sample_out};

/// The `source` attribute of every record the classifier emits.
pub const OUTPUT_SOURCE: &str = "/auditflow/classifier";

/// Namespace of output ids (UUID v5); fixed forever, or replays would mint new ids.
const OUTPUT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_3c2a_8b47_4e0e_9a53_2f1c_7b6d_a4e9);

/// The id of the output of type `output_type` made from the input with `source` and `id`
/// (together a CloudEvent's identity, so two producers reusing an id never share outputs):
/// UUID v5 over the three, each prefixed by its length in bytes (u64, big-endian), so no choice
/// of values can make two different triples collide. One input's outputs differ in type, so
/// they never share an id.
///
/// This is `Uuid::new_v5(&OUTPUT_ID_NAMESPACE, name).to_string()` (tested below), with SHA-1
/// from the `sha1` crate, which uses the CPU's SHA instructions where it has them, fed part by
/// part, and the text written without the formatting machinery.
pub fn output_id(input_source: &str, input_id: &str, output_type: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    hasher.update(OUTPUT_ID_NAMESPACE.as_bytes());
    for part in [input_source, input_id, output_type] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let id = uuid::Builder::from_sha1_bytes(bytes).into_uuid();
    id.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    /// One or more records, in the order to write them (a user action or data access before
    /// its security event).
    Emit(Vec<Output>),
    /// Dropped by sampling; `ty` is the input type, counted per type.
    SampledOut {
        /// The input's type.
        ty: String,
        /// The rate it was sampled at.
        rate: f64,
    },
    /// Deliberately not audited (`audit.**`, the loop guard).
    Ignored,
    /// For the dead-letter topic.
    Rejected(Rejection),
}

/// The classifier: rules, retention and sampling compiled once from the configuration.
#[derive(Debug, Clone)]
pub struct Classifier {
    topics: Topics,
    limits: Limits,
    rules: PatternTable<rules::Rule>,
    retention: RetentionPolicy,
    sampler: Sampler,
}

impl Classifier {
    /// Compiles the configuration's `[sampling]`, `[topics]` and `[limits]`.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            topics: config.topics.clone(),
            limits: config.limits.clone(),
            rules: rules::rule_table(),
            retention: RetentionPolicy::new(),
            sampler: Sampler::new(&config.sampling)?,
        })
    }

    /// The input limits in force (for callers that frame records themselves).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses a structured-mode record (an NDJSON line, a Kafka value) and classifies it.
    pub fn classify_structured(&self, bytes: &[u8], fallback_time: DateTime<Utc>) -> Classified {
        match envelope::parse_structured(bytes, &self.limits) {
            Ok(event) => self.classify(&event, fallback_time),
            Err(rejection) => Classified::Rejected(rejection),
        }
    }

    /// Decodes a Kafka record in either mode (see [`envelope::decode_record`]) and classifies
    /// it; `fallback_time` is the record's timestamp.
    pub fn classify_record<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        value: &[u8],
        fallback_time: DateTime<Utc>,
    ) -> Classified {
        match envelope::decode_record(headers, value, &self.limits) {
            Ok(event) => self.classify(&event, fallback_time),
            Err(rejection) => Classified::Rejected(rejection),
        }
    }

    /// Classifies a parsed event. `fallback_time` is the event time when it has no `time`;
    /// every output carries a `time`.
    pub fn classify(&self, event: &Event, fallback_time: DateTime<Utc>) -> Classified {
        let segments: Vec<&str> = event.ty.split('.').collect();
        let rule = match self.rules.lookup_segments(&segments) {
            Some((_, rules::Rule::LoopGuard)) => return Classified::Ignored,
            Some((_, rule)) => *rule,
            None => {
                return Classified::Rejected(Rejection::new(
                    Reason::UnknownType,
                    format!(
                        "type {} matches no classification rule (user.**, system.** or audit.**)",
                        event.ty
                    ),
                ));
            }
        };
        let derived = derive::Derived::of(event);
        let records = match rules::apply(rule, event, &derived) {
            Ok(records) => records,
            Err(rejection) => return Classified::Rejected(rejection),
        };
        let classes: Vec<RetentionClass> = records
            .iter()
            .map(|record| self.retention.class_of_segments(&segments, record))
            .collect();

        let correlation = correlation_id(event);
        // The whole input is kept or dropped: a chain must not lose half of what one input made.
        let samplable = records
            .iter()
            .zip(&classes)
            .all(|(record, class)| may_sample_out(record, *class));
        let mut rate = 1.0;
        if samplable {
            rate = self.sampler.rate_of_segments(&segments);
            if !keep(&correlation, rate) {
                return Classified::SampledOut {
                    ty: event.ty.clone(),
                    rate,
                };
            }
        }

        let time = event.time_or(fallback_time);
        let time_text = envelope::format_time(&time);
        let head = output::Head {
            subject: event.subject.as_deref(),
            time: &time_text,
            causation_id: &event.id,
            correlation_id: &correlation,
            original_type: &event.ty,
            sample_rate: rate,
        };
        let outputs = records
            .iter()
            .zip(classes)
            .map(|(record, class)| {
                let id = output_id(&event.source, &event.id, record.event_type());
                let topic = self.topic_of(record).to_owned();
                Output::write(topic, id, &head, time, class, record)
            })
            .collect();
        Classified::Emit(outputs)
    }

    fn topic_of(&self, record: &AuditRecord) -> &str {
        match record {
            AuditRecord::UserAction(_) => &self.topics.user_action,
            AuditRecord::SecurityEvent(_) => &self.topics.security_event,
            AuditRecord::DataAccess(_) => &self.topics.data_access,
        }
    }
}

/// What a classifier has done, for the CLI summary and the service's metrics. Invariant
/// (docs/operations.md): `consumed == audited + sampled_out + ignored + dead_lettered`, summing the
/// maps — see [`Counters::balanced`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Inputs seen, whatever became of them.
    pub consumed: u64,
    /// Inputs that produced records.
    pub audited: u64,
    /// Records produced, by output type.
    pub emitted: BTreeMap<String, u64>,
    /// Inputs dropped by sampling, by input type.
    pub sampled_out: BTreeMap<String, u64>,
    /// Inputs deliberately not audited (loop guard).
    pub ignored: u64,
    /// Inputs sent to the dead-letter topic, by reason.
    pub dead_lettered: BTreeMap<Reason, u64>,
}

impl Counters {
    /// Counts one consumed input.
    pub fn record(&mut self, classified: &Classified) {
        self.consumed += 1;
        match classified {
            Classified::Emit(outputs) => {
                self.audited += 1;
                for output in outputs {
                    *self.emitted.entry(output.ty.to_owned()).or_default() += 1;
                }
            }
            Classified::SampledOut { ty, .. } => {
                *self.sampled_out.entry(ty.clone()).or_default() += 1
            }
            Classified::Ignored => self.ignored += 1,
            Classified::Rejected(rejection) => {
                *self.dead_lettered.entry(rejection.reason).or_default() += 1
            }
        }
    }

    /// Records emitted, all output types together.
    pub fn emitted_total(&self) -> u64 {
        self.emitted.values().sum()
    }

    /// Inputs dropped by sampling, all types together.
    pub fn sampled_out_total(&self) -> u64 {
        self.sampled_out.values().sum()
    }

    /// Inputs rejected, all reason codes together.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.values().sum()
    }

    /// Whether every consumed input is accounted for.
    pub fn balanced(&self) -> bool {
        self.consumed
            == self.audited + self.sampled_out_total() + self.ignored + self.dead_lettered_total()
    }
}

#[cfg(test)]
mod tests;
