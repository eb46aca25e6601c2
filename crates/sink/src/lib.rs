//! The auditflow sink service: the audit topics and `security.alerts` in, encrypted CQL rows
//! out (docs/topics-and-records.md, docs/operations.md).
//!
//! Glue between two runtimes: the Kafka harness's at-least-once loop
//! ([`at_least_once`]: batching, per-partition watermarks,
//! commits only below what is durably written, pause when writes fall behind, retries, dead
//! letters, metrics) and [`auditflow_store`] (schema, encryption, idempotent writes). What is
//! here: decoding a record into what the store keeps (`decode`), and the `SinkWriter` that
//! writes a batch and says what became of each record.
//!
//! Guarantees, and who provides them: a record is stored exactly once because the store's
//! writes are idempotent (keys from the deterministic event ids) and the harness commits an
//! offset only when every record below it is written; a database outage makes the write fail,
//! the harness retry it with backoff and pause consumption — delay, never loss, bounded memory.
//! A record that can never be stored (not a CloudEvent, unknown type, schema violation) goes to
//! the dead-letter topic instead of blocking its partition.
//!
//! What it is not: it decides nothing about classification or retention (the record carries
//! its class), and holds no state between batches beyond the store's key cache.

// A library never prints: services report through `tracing` (structured, and kept free of
// personal data), and stdout/stderr belong to the binary that owns the terminal.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod decode;
mod sealer;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditflow_core::Config;
use auditflow_runtime::ServiceContext;
use auditflow_runtime::kafka::at_least_once::{self, ServiceError};
use auditflow_runtime::kafka::publisher::Publisher;
use auditflow_runtime::kafka::topics;
use auditflow_store::integrity::SigningKey;
use auditflow_store::{KeySource, Store, StoreError};
use tokio::task::JoinHandle;

use decode::OwnTopics;
use sealer::{Sealer, SealerParts};

use writer::SinkWriter;

/// The service name: metric label, `auditflow.service` header, group id suffix
/// (`auditflow-sink` with the default prefix).
pub const SERVICE: &str = "sink";

/// Why the sink stopped: its store (connecting, migrating) or the Kafka harness.
pub type Error = ServiceError<StoreError>;

/// The topics the sink reads (docs/topics-and-records.md): the stored ones, the operator log
/// (docs/operator-log.md) and the classifier's sampling summaries.
pub fn input_topics(config: &Config) -> Vec<String> {
    let mut topics = config.topics.stored();
    topics.push(config.topics.operator.clone());
    topics.push(config.topics.sampling.clone());
    topics
}

/// Loads the signing key, creates the anchor topic if missing, and starts the sealer.
async fn start_sealer(
    config: &Config,
    store: &Arc<Store>,
) -> Result<(Sealer, JoinHandle<()>), Error> {
    let key = SigningKey::load(config).map_err(Error::Store)?;
    if key.source() == KeySource::InsecureDevelopmentKey {
        tracing::warn!(
            service = SERVICE,
            "checkpoints are signed with the built-in INSECURE development key: set \
             [integrity] signing_key_file or signing_key_env for real data"
        );
    }
    let anchor: Vec<_> = topics::planned_topics(&config.topics)
        .into_iter()
        .filter(|t| t.name == config.topics.checkpoints)
        .collect();
    topics::ensure_topics(&config.kafka, &anchor).await?;
    Ok(Sealer::spawn(SealerParts {
        store: store.clone(),
        key,
        settings: config.integrity.clone(),
        publisher: Publisher::new(&config.kafka)?,
        topic: config.topics.checkpoints.clone(),
    }))
}

/// How long the sealer's last pass may take at shutdown.
const SEALER_FINISH: Duration = Duration::from_secs(30);

/// Runs the sink until its shutdown: migrates the schema (idempotent), creates the anchor topic
/// and the operator log's if missing, loads the checkpoint signing key, then consumes the audit
/// topics and the operator log in group
/// `<group_prefix>sink`, sealing what it committed into the tamper-evident log.
pub async fn run(cx: ServiceContext<'_>) -> Result<(), Error> {
    let config = cx.config;
    let started: Mutex<Option<(Sealer, JoinHandle<()>)>> = Mutex::new(None);
    let metrics = cx.metrics.service(SERVICE);
    let result = at_least_once::run_service(SERVICE, input_topics(config), cx, || async {
        let store = Store::open_for_service(SERVICE, config)
            .await
            .map_err(Error::Store)?;
        // The operator log's topic is written by the command-line tool only, the sampling
        // summaries' by the classifier: either may not exist yet when the sink subscribes.
        let own: Vec<_> = topics::planned_topics(&config.topics)
            .into_iter()
            .filter(|t| [&config.topics.operator, &config.topics.sampling].contains(&&t.name))
            .collect();
        topics::ensure_topics(&config.kafka, &own).await?;
        let sealer = if config.integrity.enabled {
            let (sealer, task) = start_sealer(config, &store).await?;
            *started.lock().unwrap_or_else(|p| p.into_inner()) = Some((sealer.clone(), task));
            Some(sealer)
        } else {
            tracing::warn!(
                service = SERVICE,
                "[integrity] enabled = false: the records stored from now on are in no log, and \
                 nothing will show if they are changed"
            );
            None
        };
        Ok(SinkWriter::new(
            store,
            config.limits.clone(),
            OwnTopics::of(&config.topics),
            sealer,
            metrics.clone(),
        ))
    })
    .await;
    let started = started.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((sealer, task)) = started {
        sealer.finish();
        if tokio::time::timeout(SEALER_FINISH, task).await.is_err() {
            tracing::warn!(
                service = SERVICE,
                "the sealer's last pass did not finish in time; the next sink seals from where it stopped"
            );
        }
    }
    result
}
