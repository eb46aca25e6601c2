//! The at-least-once loop with idempotent writes (sink, causality indexer).
//!
//! Records are polled into batches and handed to the service's [`BatchWriter`]; several batches
//! may be in flight at once. Each partition's [`Watermark`] tracks what is durable, and only the
//! offset below which *everything* is durable is committed (on a timer, on revoke, and on
//! shutdown). A crash therefore redelivers, never skips; idempotent writes (keys from the
//! deterministic ids) turn redelivery into "stored exactly once".
//!
//! Backpressure: when `max_in_flight_records` are consumed but not durable, every owned
//! partition is paused — the loop keeps polling so rebalances are still served — and resumed
//! when half the work has drained. A failing write is retried with backoff for as long as it
//! takes (a database outage delays, never loses), which keeps its records in flight, which keeps
//! consumption paused: memory stays bounded under any backlog.
//!
//! Dead letters are produced (and acknowledged by the broker) before their offset counts as
//! done.
//!
//! [`Watermark`]: crate::watermark::Watermark

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio::task::JoinSet;

use crate::dead_letter::{self, MIN_LIMIT, dead_letter_record};
use crate::error::KafkaContext;
use crate::health::{Health, Readiness};
use crate::metrics::{Metrics, Outcome, ServiceMetrics};
use crate::rebalance::{HarnessContext, SharedAssignment, is_revoked_state, lock, offsets_list};
use crate::record::{DeadLetter, InputRecord, Partition};
use crate::shutdown::Shutdown;
use crate::transactional::{LoopSpec, now_ms};
use crate::watermark::OffsetLedger;
use crate::{Error, Result, client};

/// A write error, as the service's store reports it. Logged, then the batch is retried.
pub type WriteError = Box<dyn std::error::Error + Send + Sync>;

/// What became of one record in a batch write.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Durably written to `table`; `event_time_ms` feeds the end-to-end latency histogram.
    Written {
        table: &'static str,
        event_time_ms: Option<i64>,
    },
    /// Deliberately not stored.
    Ignored,
    /// Cannot be stored, ever (bad input): goes to the dead-letter topic.
    DeadLetter(DeadLetter),
}

/// What a store service plugs into the loop.
pub trait BatchWriter: Send + Sync + 'static {
    /// Makes `batch` durable and says, in order, what became of each record. On `Err` nothing
    /// is assumed written and the whole batch is retried, so writes must be idempotent.
    fn write(
        &self,
        batch: &[InputRecord],
    ) -> impl Future<Output = Result<Vec<Stored>, WriteError>> + Send;
}

/// What a store service makes of one record before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<R> {
    /// A row to write to `table`; `event_time_ms` as in [`Stored::Written`].
    Row {
        row: R,
        table: &'static str,
        event_time_ms: Option<i64>,
    },
    Ignored,
    DeadLetter(DeadLetter),
}

/// The first half of a typical [`BatchWriter::write`]: decodes each record of `batch`, giving
/// the rows to write in one call and, in order, what becomes of each record once they are
/// written. A dead letter is logged by its reason code only (details may quote the record).
pub fn split_batch<R>(
    batch: &[InputRecord],
    mut decode: impl FnMut(&InputRecord) -> Decoded<R>,
) -> (Vec<R>, Vec<Stored>) {
    let mut rows = Vec::with_capacity(batch.len());
    let mut outcomes = Vec::with_capacity(batch.len());
    for input in batch {
        outcomes.push(match decode(input) {
            Decoded::Row {
                row,
                table,
                event_time_ms,
            } => {
                rows.push(row);
                Stored::Written {
                    table,
                    event_time_ms,
                }
            }
            Decoded::Ignored => Stored::Ignored,
            Decoded::DeadLetter(letter) => {
                tracing::debug!(reason = %letter.reason, topic = %input.topic, offset = input.offset, "dead-lettering");
                Stored::DeadLetter(letter)
            }
        });
    }
    (rows, outcomes)
}

/// Why a service built on this loop stopped: opening the store it writes to failed (`S` is
/// the store's own error type; this crate knows no store), or the loop did.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError<S> {
    #[error("store: {0}")]
    Store(S),
    #[error(transparent)]
    Kafka(#[from] Error),
}

/// Runs a service that writes to a store until `shutdown`: registers it with `health` first
/// (it reads not ready while it starts), builds its writer with `open` (connecting to and
/// migrating the store, say), then runs [`spawn`]. The service brings only what is its own:
/// `spec` (its name and inputs) and `open`.
pub async fn run_service<W, S, Fut>(
    spec: LoopSpec,
    metrics: &Metrics,
    health: &Health,
    shutdown: Shutdown,
    open: impl FnOnce() -> Fut,
) -> Result<(), ServiceError<S>>
where
    W: BatchWriter,
    Fut: Future<Output = Result<W, ServiceError<S>>>,
{
    let readiness = health.register(&spec.service, true);
    let writer = open().await?;
    let metrics = metrics.service(&spec.service);
    spawn(spec, writer, metrics, readiness, shutdown).await?;
    Ok(())
}

/// First and largest pause between retries of a failed batch write.
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

/// Runs the loop until `shutdown`: then stops polling, lets in-flight batches finish (a batch
/// still failing is abandoned, to be redelivered), commits, and leaves the group.
pub async fn spawn<W: BatchWriter>(
    spec: LoopSpec,
    writer: W,
    metrics: ServiceMetrics,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<()> {
    if spec.inputs.is_empty() {
        return Err(Error::Config(format!("{}: no input topics", spec.service)));
    }
    let group = client::group_id(&spec.kafka, &spec.service);
    let max_bytes = dead_letter::dead_letter_limit(&spec.kafka, &spec.dead_letter_topic).await;
    let ledger = Arc::new(Mutex::new(OffsetLedger::default()));
    let context = HarnessContext::new(&spec.service, metrics.clone()).with_ledger(ledger.clone());
    let assignment = context.assignment().clone();
    let consumer: StreamConsumer<HarnessContext> = client::consumer_config(&spec.kafka, &group)
        .create_with_context(context)
        .during("creating the consumer")?;
    let inputs: Vec<&str> = spec.inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&inputs).during("subscribing")?;
    let dead_letters = Arc::new(DeadLetters {
        producer: client::producer_config(&spec.kafka)
            .create()
            .during("creating the dead-letter producer")?,
        service: spec.service.clone(),
        topic: spec.dead_letter_topic.clone(),
        max_bytes,
    });
    readiness.set_producer_ready(true);
    tracing::info!(service = %spec.service, %group, "at-least-once loop started");

    let mut state = LoopState {
        spec,
        writer: Arc::new(writer),
        metrics,
        readiness,
        consumer,
        dead_letters,
        assignment,
        ledger,
        tasks: JoinSet::new(),
        batch: Vec::new(),
        paused: false,
    };
    let result = state.run(&shutdown).await;
    state.finish().await;
    result
}

/// A finished batch: offsets now durable, and what to count for each record.
struct Done {
    offsets: Vec<(Partition, i64)>,
    counts: Vec<Counted>,
}

struct Counted {
    topic: String,
    stored: Stored,
}

struct LoopState<W> {
    spec: LoopSpec,
    writer: Arc<W>,
    metrics: ServiceMetrics,
    readiness: Readiness,
    consumer: StreamConsumer<HarnessContext>,
    dead_letters: Arc<DeadLetters>,
    assignment: SharedAssignment,
    ledger: Arc<Mutex<OffsetLedger>>,
    tasks: JoinSet<Option<Done>>,
    batch: Vec<InputRecord>,
    paused: bool,
}

impl<W: BatchWriter> LoopState<W> {
    async fn run(&mut self, shutdown: &Shutdown) -> Result<()> {
        let max_in_flight = self.spec.kafka.max_in_flight_records.max(1);
        let batch_max = self.spec.kafka.batch_max_records.max(1);
        let mut commit_tick = tokio::time::interval(Duration::from_millis(
            self.spec.kafka.commit_interval_ms.max(10),
        ));
        let mut flush_tick = tokio::time::interval(Duration::from_millis(
            self.spec.kafka.batch_max_wait_ms.max(1),
        ));
        loop {
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                Some(done) = self.tasks.join_next() => {
                    match done {
                        Ok(Some(done)) => self.complete(done),
                        Ok(None) => {} // abandoned at shutdown
                        Err(err) => return Err(Error::Task(err.to_string())),
                    }
                    let in_flight = lock(&self.ledger).in_flight();
                    if self.paused && in_flight <= max_in_flight / 2 {
                        self.set_paused(false);
                    }
                }
                _ = commit_tick.tick() => self.commit(),
                _ = flush_tick.tick() => {
                    // Also notices an assignment when no record arrives (readiness).
                    self.handle_rebalance();
                    self.dispatch(shutdown);
                }
                message = self.consumer.recv() => {
                    let message = message.map(|m| InputRecord::from_message(&m));
                    // Rebalance callbacks ran inside that poll, before the message it returned.
                    self.handle_rebalance();
                    let record = match message {
                        Ok(record) => record,
                        Err(err) => {
                            tracing::warn!(service = %self.spec.service, error = %err, "consumer error");
                            continue;
                        }
                    };
                    lock(&self.ledger).track(&record.partition_id(), record.offset);
                    self.batch.push(record);
                    if self.batch.len() >= batch_max {
                        self.dispatch(shutdown);
                    }
                    if lock(&self.ledger).in_flight() >= max_in_flight {
                        self.set_paused(true);
                    }
                }
            }
            self.metrics.set_in_flight(lock(&self.ledger).in_flight());
        }
    }

    /// Drops batched records of revoked partitions (the ledger already forgot them) and keeps
    /// newly assigned partitions paused while the loop is.
    fn handle_rebalance(&mut self) {
        let (changes, joined) = {
            let mut assignment = lock(&self.assignment);
            (assignment.take_changes(), assignment.joined())
        };
        self.readiness.set_consumer_joined(joined);
        changes.drop_revoked(&mut self.batch);
        if self.paused && !changes.assigned.is_empty() {
            self.set_paused(true);
        }
    }

    fn set_paused(&mut self, paused: bool) {
        let owned = lock(&self.assignment).owned();
        let mut tpl = TopicPartitionList::new();
        for p in &owned {
            tpl.add_partition(&p.topic, p.partition);
        }
        let result = if paused {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        match result {
            Ok(()) => {
                if paused != self.paused {
                    tracing::debug!(service = %self.spec.service, paused, "backpressure");
                }
                self.paused = paused;
            }
            Err(err) => {
                tracing::warn!(service = %self.spec.service, error = %err, paused, "pause/resume failed")
            }
        }
    }

    /// Hands the current batch to the writer on a task of its own.
    fn dispatch(&mut self, shutdown: &Shutdown) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let writer = self.writer.clone();
        let dead_letters = self.dead_letters.clone();
        let metrics = self.metrics.clone();
        let shutdown = shutdown.clone();
        self.tasks.spawn(async move {
            write_batch(&*writer, &batch, &dead_letters, &metrics, &shutdown).await
        });
    }

    fn complete(&mut self, done: Done) {
        {
            let mut ledger = lock(&self.ledger);
            for (p, offset) in &done.offsets {
                ledger.complete(p, *offset);
            }
        }
        let now = now_ms();
        for Counted { topic, stored } in done.counts {
            self.metrics.consumed(&topic, 1);
            match stored {
                Stored::Written {
                    table,
                    event_time_ms,
                } => {
                    self.metrics.processed(Outcome::Emitted, 1);
                    self.metrics.emitted(table, 1);
                    if let Some(t) = event_time_ms {
                        self.metrics.observe_end_to_end(t, now);
                    }
                }
                Stored::Ignored => {
                    self.metrics.processed(Outcome::Ignored, 1);
                    self.metrics.ignored(1);
                }
                Stored::DeadLetter(letter) => {
                    self.metrics.processed(Outcome::DeadLettered, 1);
                    self.metrics.dead_lettered(&letter.reason, 1);
                }
            }
        }
    }

    /// Commits synchronously: a round trip once per interval, and a success really means the
    /// offsets are stored (an async commit's failure would surface later, after we had moved
    /// on).
    fn commit(&self) {
        // Never hold the ledger lock across a librdkafka call: callbacks take it too.
        let commits = lock(&self.ledger).pending_commits();
        if commits.is_empty() {
            return;
        }
        match self
            .consumer
            .commit(&offsets_list(&commits), CommitMode::Sync)
        {
            Ok(()) => lock(&self.ledger).mark_committed(&commits),
            Err(err) if is_revoked_state(&err) => {}
            Err(err) => {
                tracing::warn!(service = %self.spec.service, error = %err, "offset commit failed; will retry")
            }
        }
    }

    /// Shutdown: let in-flight batches finish, commit synchronously, leave the group.
    async fn finish(&mut self) {
        self.batch.clear(); // not dispatched: never tracked as done, so redelivered
        while let Some(done) = self.tasks.join_next().await {
            if let Ok(Some(done)) = done {
                self.complete(done);
            }
        }
        self.commit();
        self.readiness.set_consumer_joined(false);
        tracing::info!(service = %self.spec.service, "leaving the consumer group");
        // Dropping the consumer closes it, serving the final revocation (see `HarnessContext`).
    }
}

/// Writes one batch, retrying until it succeeds or shutdown; then produces its dead letters.
/// `None` means abandoned: none of its offsets count as done.
async fn write_batch<W: BatchWriter>(
    writer: &W,
    batch: &[InputRecord],
    dead_letters: &DeadLetters,
    metrics: &ServiceMetrics,
    shutdown: &Shutdown,
) -> Option<Done> {
    let service = dead_letters.service.as_str();
    let mut backoff = RETRY_BACKOFF.0;
    let outcomes = loop {
        let started = std::time::Instant::now();
        match writer.write(batch).await {
            Ok(outcomes) if outcomes.len() == batch.len() => {
                metrics.observe_batch_write(started.elapsed().as_secs_f64());
                break outcomes;
            }
            Ok(outcomes) => {
                // A writer bug; retrying cannot help, and guessing could lose records.
                tracing::error!(
                    service,
                    expected = batch.len(),
                    got = outcomes.len(),
                    "writer returned the wrong number of outcomes"
                );
                return None;
            }
            Err(err) => {
                tracing::warn!(service, error = %err, retry_in_ms = backoff.as_millis() as u64, "batch write failed");
                if shutdown.is_triggered() {
                    return None;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF.1);
            }
        }
    };
    let mut done = Done {
        offsets: Vec::with_capacity(batch.len()),
        counts: Vec::with_capacity(batch.len()),
    };
    for (record, stored) in batch.iter().zip(outcomes) {
        if let Stored::DeadLetter(letter) = &stored
            && !dead_letters.send(record, letter, shutdown).await
        {
            return None;
        }
        done.offsets.push((record.partition_id(), record.offset));
        done.counts.push(Counted {
            topic: record.topic.clone(),
            stored,
        });
    }
    Some(done)
}

/// Where the dead letters of an at-least-once service go.
struct DeadLetters {
    producer: FutureProducer,
    service: String,
    topic: String,
    /// [`dead_letter::dead_letter_limit`], as found at start.
    max_bytes: usize,
}

impl DeadLetters {
    /// Produces the dead letter of `source` and waits for the broker's acknowledgement,
    /// retrying until it comes or shutdown. `false` means abandoned (shutdown).
    ///
    /// A letter refused for its size (the topic's limit was lowered since start) is sent
    /// again at [`MIN_LIMIT`], with nothing of the original but where to find it: retrying it
    /// as it was would stall its partition.
    async fn send(&self, source: &InputRecord, letter: &DeadLetter, shutdown: &Shutdown) -> bool {
        let mut record =
            dead_letter_record(source, letter, &self.service, &self.topic, self.max_bytes);
        let mut backoff = RETRY_BACKOFF.0;
        loop {
            let mut future: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&record.topic).headers(record.kafka_headers());
            if let Some(key) = &record.key {
                future = future.key(key.as_slice());
            }
            if let Some(payload) = &record.payload {
                future = future.payload(payload.as_slice());
            }
            match self.producer.send(future, Duration::from_secs(30)).await {
                Ok(_) => return true,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))
                    if record.encoded_len() > MIN_LIMIT =>
                {
                    tracing::warn!(service = %self.service, bytes = record.encoded_len(), "dead letter refused for its size; sending it without the original");
                    record =
                        dead_letter_record(source, letter, &self.service, &self.topic, MIN_LIMIT);
                }
                Err((err, _)) => {
                    tracing::warn!(service = %self.service, error = %err, "dead-letter produce failed");
                    if shutdown.is_triggered() {
                        return false;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF.1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, payload: &[u8]) -> InputRecord {
        InputRecord {
            topic: "t".into(),
            partition: 0,
            offset,
            key: None,
            payload: Some(payload.to_vec()),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn split_batch_keeps_the_order_of_outcomes_and_only_the_rows() {
        let batch = [record(0, b"row"), record(1, b"bad"), record(2, b"skip")];
        let (rows, outcomes) = split_batch(&batch, |r| match r.payload() {
            b"row" => Decoded::Row {
                row: r.offset,
                table: "t1",
                event_time_ms: Some(7),
            },
            b"bad" => Decoded::DeadLetter(DeadLetter::new("invalid_json", "not JSON")),
            _ => Decoded::Ignored,
        });
        assert_eq!(rows, [0]);
        assert_eq!(
            outcomes,
            [
                Stored::Written {
                    table: "t1",
                    event_time_ms: Some(7)
                },
                Stored::DeadLetter(DeadLetter::new("invalid_json", "not JSON")),
                Stored::Ignored,
            ]
        );
    }
}
