//! Kafka runtime shared by every auditflow service.
//!
//! One consumer loop harness for all four services: consumer groups, rebalances, transactions
//! (consume-transform-produce), dead-letter records, bounded in-flight work, graceful shutdown,
//! and the metrics every service exposes.
//!
//! What this crate is not: it holds no audit logic (that is `auditflow-core`) and no storage
//! (that is `auditflow-store`). It never looks inside a record's value.
//!
//! # The pieces
//!
//! | module | what it gives a service |
//! |---|---|
//! | [`client`] | consumer/producer configuration from `[kafka]`: cooperative-sticky groups, manual commits, `read_committed`, passthrough properties, unique `transactional.id`s |
//! | [`rebalance`] | [`HarnessContext`], the consumer context: records assignments and revocations in an [`Assignment`] the loops drain; commits finished at-least-once work on revoke |
//! | [`transactional`] | the exactly-once loop: implement [`Transform`], call [`transactional::spawn`] (classifier, security monitor) |
//! | [`at_least_once`] | the watermark loop: implement [`BatchWriter`], call [`at_least_once::spawn`] (sink, causality indexer) |
//! | [`watermark`] | [`Watermark`]/[`OffsetLedger`]: commit only below the oldest unfinished record |
//! | [`dead_letter`] | the dead-letter record: original bytes and headers, plus `auditflow.*` headers |
//! | [`metrics`], [`health`], [`http`] | one registry, one family of metrics labelled by service; `/metrics`, `/healthz`, `/readyz` |
//! | [`shutdown`] | [`Shutdown`]: SIGTERM/SIGINT → finish the batch, commit, leave the group |
//! | [`topics`] | creating SPEC section 1's topics, idempotently |
//!
//! # Design
//!
//! The two loops differ where the services' guarantees differ and share everything else:
//!
//! - **Exactly-once** (outputs are Kafka records): one blocking thread runs poll → transform →
//!   transaction (outputs, dead letters and input offsets together) → commit; on an abortable
//!   error it aborts and seeks back to the committed offsets. Nothing is polled while a batch is
//!   in flight, which is the backpressure.
//! - **At-least-once with idempotent writes** (outputs are database rows): an async task polls,
//!   hands batches to the service's writer concurrently, tracks each partition's
//!   [`Watermark`], and commits only up to the contiguous durably-written offset. When too many
//!   records are in flight it *pauses* its partitions and keeps polling (a consumer that stops
//!   polling stalls rebalances and is thrown out of the group).
//!
//! In both, rebalance callbacks only do bookkeeping; the loop reacts to the changes right after
//! the poll that ran them, before it looks at another record.

pub mod at_least_once;
pub mod client;
pub mod dead_letter;
mod error;
pub mod health;
pub mod http;
pub mod metrics;
pub mod rebalance;
pub mod record;
pub mod shutdown;
pub mod topics;
pub mod transactional;
pub mod watermark;

pub use at_least_once::BatchWriter;
pub use error::{Error, Result};
pub use health::{Health, Readiness};
pub use metrics::{Metrics, Outcome, ServiceMetrics};
pub use rebalance::{Assignment, HarnessContext};
pub use record::{DeadLetter, Disposition, InputRecord, OutputRecord, Partition};
pub use shutdown::Shutdown;
pub use transactional::{LoopSpec, Rewind, Transform};
pub use watermark::{OffsetLedger, Watermark};
