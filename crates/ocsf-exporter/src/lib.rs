//! The auditflow OCSF exporter service: the audit and security records, as OCSF events, on
//! `[topics] ocsf` (docs/ocsf.md), for the SIEMs and data lakes that ingest OCSF.
//!
//! Glue and nothing else, like the classifier: every decision is the core's
//! [`Mapper`](auditflow_core::ocsf::Mapper); consuming, transactions (exactly once into the
//! output topic), dead letters, metrics and shutdown are the Kafka harness's
//! [`transactional`] loop. A record of a type with no OCSF class is counted as ignored; one
//! that breaks its type's schema is dead-lettered (`schema_violation`). It keeps no state, so
//! any instance can take over any partition at any time.
//!
//! With `[ocsf] pseudonymize`, user ids and ips leave as keyed pseudonyms ([`mapper`] loads the
//! key); without it they leave as they are, beyond the reach of `gdpr delete` — the reason
//! the service is opt-in in `run all` (`[ocsf] enabled`).

// A library never prints: services report through `tracing`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

use auditflow_core::ocsf::{Mapper, NotMapped, Pseudonyms};
use auditflow_core::{Config, Reason};
use auditflow_runtime::kafka::cloudevents::decode_event;
use auditflow_runtime::kafka::transactional::{self, Transform};
use auditflow_runtime::{DeadLetter, InputRecord, OutputRecord, ServiceContext, Transformed};
use chrono::Utc;
use zeroize::Zeroizing;

/// The service name: metric label, `auditflow.service` header, group id suffix.
pub const SERVICE: &str = "ocsf-exporter";

/// Why the exporter stopped or could not start. Bad input is never an error here: it is
/// dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `[ocsf] pseudonymize` is on and no key could be loaded.
    #[error("[ocsf] pseudonym key: {0}")]
    Key(String),
    /// Kafka could not be reached, the topics not created, or the loop failed for good.
    #[error(transparent)]
    Kafka(#[from] auditflow_runtime::Error),
}

/// What the exporter consumes: the three audit topics, the alerts and the actions.
pub fn input_topics(config: &Config) -> Vec<String> {
    let t = &config.topics;
    vec![
        t.user_action.clone(),
        t.data_access.clone(),
        t.security_event.clone(),
        t.alerts.clone(),
        t.actions.clone(),
    ]
}

/// The mapper `config` asks for: `[ocsf] service_name`, and with `[ocsf] pseudonymize` the
/// pseudonyms under the key in `$[ocsf] pseudonym_key_env`, else in `[ocsf]
/// pseudonym_key_file` (64 hex digits). There is no default key: pseudonyms under a public
/// key would protect nobody.
pub fn mapper(config: &Config) -> Result<Mapper, Error> {
    let settings = &config.ocsf;
    if !settings.pseudonymize {
        return Ok(Mapper::new(&settings.service_name, None));
    }
    let decode = |text: &str, from: &str| {
        let mut key = Zeroizing::new([0u8; 32]);
        auditflow_core::hex::decode_into(text, key.as_mut_slice())
            .map_err(|_| Error::Key(format!("{from}: not 64 hex digits")))?;
        Ok::<_, Error>(Pseudonyms::new(*key))
    };
    let pseudonyms = if let Some(text) = (!settings.pseudonym_key_env.is_empty())
        .then(|| std::env::var(&settings.pseudonym_key_env).ok())
        .flatten()
    {
        decode(
            &Zeroizing::new(text),
            &format!("${}", settings.pseudonym_key_env),
        )?
    } else if let Some(path) = &settings.pseudonym_key_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::Key(format!("cannot read {}: {e}", path.display())))?,
        );
        decode(&text, &path.display().to_string())?
    } else {
        return Err(Error::Key(format!(
            "[ocsf] pseudonymize is on and no key is set: set ${} or [ocsf] pseudonym_key_file \
             (64 hex digits, e.g. `openssl rand -hex 32`)",
            settings.pseudonym_key_env
        )));
    };
    Ok(Mapper::new(&settings.service_name, Some(pseudonyms)))
}

/// Runs the exporter until its shutdown: creates the topics (idempotent), then consumes its
/// inputs in group `<group_prefix>ocsf-exporter`.
pub async fn run(cx: ServiceContext<'_>) -> Result<(), Error> {
    let config = cx.config;
    let transform = OcsfTransform {
        mapper: mapper(config)?,
        topic: config.topics.ocsf.clone(),
        limits: config.limits.clone(),
    };
    transactional::run_service(SERVICE, input_topics(config), cx, transform).await?;
    Ok(())
}

/// The core's mapper as a harness [`Transform`]. Stateless.
struct OcsfTransform {
    mapper: Mapper,
    topic: String,
    limits: auditflow_core::config::Limits,
}

impl Transform for OcsfTransform {
    fn transform(&mut self, record: &InputRecord) -> Transformed {
        let decoded = match decode_event(record, &self.limits, Utc::now()) {
            Ok(decoded) => decoded,
            Err(rejection) => return Transformed::DeadLetter(rejection.into()),
        };
        match self.mapper.map(&decoded.event) {
            Ok(event) => {
                let time = event.get("time").and_then(serde_json::Value::as_i64);
                let key = record
                    .key
                    .as_deref()
                    .map(|k| self.mapper.key(&String::from_utf8_lossy(k)).into_bytes());
                let value = serde_json::to_vec(&event).unwrap_or_default();
                Transformed::Emitted {
                    records: vec![
                        OutputRecord::new(self.topic.clone(), key, value)
                            .with_header("content-type", "application/json"),
                    ],
                    event_time_ms: time,
                }
            }
            Err(NotMapped::NoClass(_)) => Transformed::Ignored,
            Err(NotMapped::Invalid(detail)) => {
                Transformed::DeadLetter(DeadLetter::new(Reason::SchemaViolation.as_str(), detail))
            }
        }
    }
}
