//! The auditflow causality indexer: the audit topics, `security.alerts` and `security.actions` in,
//! the causality graph out (docs/topics-and-records.md, docs/cli.md). Reading the graph back —
//! the walk `auditflow trail` prints — is the store's (`auditflow_store::causality::trail`).
//!
//! For every record it keeps the record's id, type, time, `causationid`, `correlationid`,
//! `originaltype`, topic and a few non-personal labels, as a node, as a child of its cause
//! (the edge parent → children) and as a member of its conversation (correlation id → members
//! in time order); see `auditflow_store::causality` for the tables. Nothing personal: no user
//! id, ip, subject or data.
//!
//! What it reads, and why:
//! - the three audit topics: every audit record names its input event as its cause, so the
//!   producers' events — never on these topics themselves — become nodes known as parents;
//! - `security.alerts` (an alert's cause is the event that raised it) and `security.actions`
//!   (an action's cause is its alert): docs/topics-and-records.md lists the alerts, but without the
//!   actions a trail would stop one step short of what was done about an attack;
//! - not the dead-letter topic: it holds rejected bytes, not audit records — often not a
//!   CloudEvent at all, and when it is one, an input event the pipeline refused, not something
//!   caused by the pipeline;
//! - not `security.blocklist`: a compacted table of current blocks (an upsert per ip, a
//!   tombstone on expiry), not a stream of events.
//!
//! Guarantees, and who provides them: the Kafka harness's at-least-once loop
//! ([`at_least_once`]) commits an offset only when every record
//! below it is written, and the store's writes are upserts keyed by the records' deterministic
//! ids: each record is stored exactly once across crashes, rebalances and outages. A record
//! that is not a CloudEvent is dead-lettered rather than block its partition.
//!
//! What it is not: it judges nothing (a record's cause is what the record says), holds no
//! state between batches, and reads nothing back (the trail walk, which trusts nothing and
//! reports cycles and effects dated before their causes, is the store's).

// A library never prints: services report through `tracing` (structured, and kept free of
// personal data), and stdout/stderr belong to the binary that owns the terminal.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod extract;
mod writer;

use std::sync::Arc;

use auditflow_core::Config;
use auditflow_runtime::kafka::at_least_once::{self, ServiceError};
use auditflow_runtime::{ServiceContext, kafka::topics};
use auditflow_store::causality::CausalityIndex;
use auditflow_store::{Store, StoreError};

pub use writer::IndexWriter;

/// The service name: metric label, `auditflow.service` header, group id suffix
/// (`auditflow-causality-indexer` with the default prefix).
pub const SERVICE: &str = "causality-indexer";

/// Why the indexer stopped: its store (connecting, migrating, preparing) or the Kafka harness.
pub type Error = ServiceError<StoreError>;

/// The topics the indexer reads (see the crate docs for what it leaves out, and why).
pub fn input_topics(config: &Config) -> Vec<String> {
    let mut topics = config.topics.stored();
    topics.push(config.topics.actions.clone());
    topics
}

/// Runs the indexer until its shutdown: migrates the schema and creates the topics (both
/// idempotent), then consumes its inputs in group `<group_prefix>causality-indexer`.
pub async fn run(cx: ServiceContext<'_>) -> Result<(), Error> {
    let config = cx.config;
    let metrics = cx.metrics.service(SERVICE);
    at_least_once::run_service(SERVICE, input_topics(config), cx, || async {
        let store = Store::open_for_service(SERVICE, config)
            .await
            .map_err(Error::Store)?;
        let index = CausalityIndex::open(store).await.map_err(Error::Store)?;
        topics::ensure_topics(&config.kafka, &topics::planned_topics(&config.topics)).await?;
        Ok(IndexWriter::new(
            Arc::new(index),
            config.limits.clone(),
            metrics.clone(),
        ))
    })
    .await
}
