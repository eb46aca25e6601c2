//! The service runtime shared by every auditflow service.
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
//! | [`kafka::client`] | consumer/producer configuration from `[kafka]`: cooperative-sticky groups, manual commits, `read_committed`, passthrough properties, unique `transactional.id`s |
//! | [`kafka::rebalance`] | [`HarnessContext`], the consumer context: records assignments and revocations in an [`Assignment`] the loops drain; commits finished at-least-once work on revoke |
//! | [`kafka::loop_spec`] | [`LoopSpec`], what either loop is told: the service's name, its inputs, the dead-letter topic, `[kafka]` |
//! | [`kafka::records`] | [`InputRecord`], [`OutputRecord`], [`Transformed`], [`DeadLetter`]: records as the loops hand them to a service and take them back |
//! | [`kafka::cloudevents`] | the CloudEvents Kafka binding: a record → [`kafka::cloudevents::decode_event`] (the event and its fallback time), a rejection → [`DeadLetter`], an event → [`kafka::cloudevents::event_record`] |
//! | [`kafka::transactional`] | the exactly-once loop: implement [`Transform`], call [`kafka::transactional::spawn`] (classifier, security monitor) |
//! | [`kafka::write_error`] | what a store's failed write says ([`kafka::write_error::WriteFault`]): retry, dead-letter the record, or stop |
//! | [`kafka::at_least_once`] | the watermark loop: implement [`BatchWriter`], call [`kafka::at_least_once::spawn`] (sink, causality indexer) |
//! | [`kafka::watermark`] | [`Watermark`]/[`OffsetLedger`]: commit only below the oldest unfinished record |
//! | [`kafka::retry`] | which failed librdkafka calls are worth repeating, and repeating them with backoff |
//! | [`kafka::dead_letter`] | the dead-letter record: original bytes and headers, plus `auditflow.*` headers; always within the producer's and the topic's size limit |
//! | [`telemetry::metrics`], [`telemetry::health`], [`telemetry::http`] | one registry, one family of metrics labelled by service; `/metrics`, `/healthz`, `/readyz` |
//! | [`shutdown`] | [`Shutdown`]: SIGTERM/SIGINT → finish the batch, commit, leave the group |
//! | [`kafka::publisher`], [`kafka::inspect`] | for the operator's tools and the load harnesses: publish records and await acknowledgements; a group's members and committed offsets, a topic read from its beginning |
//! | [`kafka::topics`] | creating the topics of docs/topics-and-records.md, idempotently |
//! | [`kafka::table`] | [`TableFollower`]: a compacted topic followed as a table, `read_committed`, on its own thread (the monitors' shared blocklist) |
//!
//! # Design
//!
//! The two loops differ where the services' guarantees differ and share everything else:
//!
//! - **Exactly-once** (outputs are Kafka records): a blocking thread runs poll → transform, and
//!   a committer thread runs each batch's transaction (outputs, dead letters and input offsets
//!   together), one at a time, overlapping the next batch's poll and transform; on an abortable
//!   error it aborts and the loop seeks back to the committed offsets. At most one batch is in
//!   the transaction and one being prepared, which is the backpressure; each batch closes at
//!   `transaction_max_records` or half of `max_in_flight_bytes`, whichever comes first.
//! - **At-least-once with idempotent writes** (outputs are database rows): an async task polls,
//!   hands batches to the service's writer concurrently, tracks each partition's
//!   [`Watermark`], and commits only up to the contiguous durably-written offset. When too many
//!   records, or too many bytes, are in flight it *pauses* its partitions and keeps polling (a consumer that stops
//!   polling stalls rebalances and is thrown out of the group).
//!
//! In both, rebalance callbacks only do bookkeeping; the loop reacts to the changes right after
//! the poll that ran them, before it looks at another record.
//!
//! # Using it
//!
//! The binary makes one [`Metrics`], one [`Health`] and one [`Shutdown`]
//! ([`Shutdown::on_signals`]), serves them with [`telemetry::http::serve`], and hands each service
//! `metrics.service(NAME)` and `health.register(NAME, produces)`. A service then builds a
//! [`LoopSpec`] (its name, inputs, dead-letter topic, `[kafka]`) and calls one loop:
//!
//! - **Exactly-once** — implement [`Transform`]: `transform` maps one record to a
//!   [`Transformed`] (outputs, sampled out, ignored, dead letter); it must be a function of the
//!   record and of rebuilt state. A stateful service (the security monitor) also implements
//!   `on_assigned`, returning `Rewind::ToTimestamp(now − window)` for the partitions whose
//!   history it needs: the harness seeks there and feeds the records below the committed offset
//!   to `replay` (emit nothing) before new records reach `transform`. `on_revoked` drops a
//!   partition's state. After an aborted transaction the harness calls `on_revoked` and
//!   `on_assigned` for every owned partition, so state never holds an aborted batch.
//!   `on_tick(now_ms)` runs about once a second, also when no record arrives (never while a
//!   rewound partition is still replaying): its outputs go out in a transaction like any
//!   batch's, and must be harmless to write twice (the monitor's blocklist tombstones are).
//!   `on_commit` hands the harness work to run once the transaction commits (the monitor
//!   records its engine's metrics there, so they count committed work only).
//!   Then `transactional::spawn(spec, transform, metrics, readiness, shutdown)`.
//! - **At-least-once** — implement [`BatchWriter`]: `write` makes a batch durable with
//!   idempotent writes (keys from the deterministic ids) and returns one
//!   [`kafka::at_least_once::Written`] per record, in order; [`kafka::at_least_once::split_batch`] does the
//!   decoding half. An `Err` says what it means ([`kafka::at_least_once::WriteFault`]): a transient
//!   one retries the batch with backoff for as long as it takes; one about a record halves the
//!   batch until the records that fail alone are found and dead-letters them
//!   (`store_rejected`); one about the deployment stops the loop. While writes fail their
//!   records stay in flight, and once `max_in_flight_records` or `max_in_flight_bytes` are in
//!   flight every owned partition is paused (resumed when both are at half), so a database
//!   outage delays and never grows memory.
//!   Offsets are committed up to each partition's [`Watermark`] every `commit_interval_ms`,
//!   inside the revocation callback (before the partition changes hands), and at shutdown.
//!   Then `at_least_once::spawn(spec, writer, metrics, readiness, shutdown)`; or, as the sink
//!   and the causality indexer do, `at_least_once::run_service(name,
//!   inputs, cx, open)` (`cx` the [`ServiceContext`] the service was started with), which registers readiness, opens the store and builds the writer with `open`, then
//!   spawns, and fails with an [`kafka::at_least_once::ServiceError`] (the store's error or the loop's).
//!
//! Either way the harness keeps the books (docs/operations.md): `consumed` equals the sum of
//! `processed{outcome}`; counts of a transaction are applied only once it commits, counts of a
//! batch only once it is durable.

#![deny(missing_docs)]
// A library never prints: services report through `tracing` (structured, and kept free of
// personal data), and stdout/stderr belong to the binary that owns the terminal.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod kafka;
pub mod service;
pub mod shutdown;
pub mod telemetry;

mod clock;
mod error;
mod sync;

pub use error::{Error, Result};
pub use kafka::at_least_once::BatchWriter;
pub use kafka::loop_spec::LoopSpec;
pub use kafka::rebalance::{Assignment, HarnessContext};
pub use kafka::records::{DeadLetter, InputRecord, OutputRecord, Partition, Transformed};
pub use kafka::table::{TableEvent, TableFollower};
pub use kafka::transactional::{Rewind, Transform};
pub use kafka::watermark::{OffsetLedger, Watermark};
pub use service::ServiceContext;
pub use shutdown::Shutdown;
pub use telemetry::health::{Health, Readiness};
pub use telemetry::metrics::{Metrics, Processed, ServiceMetrics};
