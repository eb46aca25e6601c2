//! The at-least-once loop with idempotent writes (sink, causality indexer).
//!
//! Records are polled into batches and handed to the service's [`BatchWriter`]; several batches
//! may be in flight at once. Each partition's [`Watermark`] tracks what is durable, and only the
//! offset below which *everything* is durable is committed (on a timer, on revoke, and on
//! shutdown). A crash therefore redelivers, never skips; idempotent writes (keys from the
//! deterministic ids) turn redelivery into "stored exactly once".
//!
//! Backpressure: when `max_in_flight_records` are consumed but not durable, or their bytes
//! reach `max_in_flight_bytes`, every owned partition is paused — the loop keeps polling so
//! rebalances are still served — and resumed when both have drained to half. A partition the
//! group assigns is put in the loop's state at once: librdkafka remembers a pause across a
//! revocation, so a partition paused here, revoked and assigned back would otherwise sit
//! paused for good. A failing write
//! is retried with backoff for as long as it takes (a database outage delays, never loses),
//! which keeps its records in flight, which keeps consumption paused: memory stays bounded
//! under any backlog, whatever the records' sizes.
//!
//! What a failed write means decides what happens next ([`WriteFault`]):
//! - **transient** (the database is slow, unreachable, restarting): the batch is retried with
//!   backoff, for as long as it takes;
//! - **about a record** (the database refuses one record, or its subject's key, and would take
//!   others): the batch is split in halves, and the halves again, until the records that fail
//!   alone are found; each is dead-lettered with reason [`STORE_REJECTED`] and the store's
//!   message, and everything else is written — one bad record never blocks its partition;
//! - **about the deployment** (no record can be written until an operator acts: credentials,
//!   the master key, the schema): the loop stops with [`Error::WriteRefused`], committing
//!   only what was written. Dead-lettering would empty the stream into the dead-letter topic,
//!   and retrying in silence would look alive while storing nothing.
//!
//! Each failed write is counted by its fault (`auditflow_write_errors_total{kind}`), each
//! dead letter by its reason.
//!
//! Dead letters are produced (and acknowledged by the broker) before their offset counts as
//! done.
//!
//! After every successful commit — the loop's, and the revocation callback's — the writer is
//! told what was committed ([`BatchWriter::committed`]): everything below is durable, which is
//! where the sink seals its tamper-evident log up to.
//!
//! [`Watermark`]: crate::kafka::watermark::Watermark

use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::error::KafkaContext;
use crate::kafka::client;
use crate::kafka::dead_letter::{self, MIN_LIMIT, dead_letter_record};
use crate::kafka::lag::LagReporter;
use crate::kafka::loop_spec::LoopSpec;
use crate::kafka::rebalance::{
    CommitHook, HarnessContext, SharedAssignment, is_revoked_state, offsets_list, owned_positions,
};
use crate::kafka::records::{DeadLetter, InputRecord, Partition};
use crate::kafka::watermark::OffsetLedger;
use crate::service::ServiceContext;
use crate::shutdown::Shutdown;
use crate::sync::lock;
use crate::telemetry::health::Readiness;
use crate::telemetry::metrics::{Processed, ServiceMetrics};
use crate::{Error, Result};

pub use crate::kafka::write_error::{WriteError, WriteFault};

/// The reason code of a record the store refused for good (SPEC section 6's list is open).
pub const STORE_REJECTED: &str = "store_rejected";

/// What a batch write did with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Durably written to `table`; `event_time_ms` feeds the end-to-end latency histogram.
    Row {
        /// The table (metric `emitted` label) the record went to.
        table: &'static str,
        /// The event's time (ms since the epoch), if known.
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
    /// is assumed written and the records are written again (all of them when the fault is
    /// transient, in smaller batches when it is about a record), so writes must be idempotent.
    fn write(
        &self,
        batch: &[InputRecord],
    ) -> impl Future<Output = Result<Vec<Written>, WriteError>> + Send;

    /// The loop committed `offsets` (partition, next offset to read): every record of the
    /// partition below it is durable, written by this instance or an earlier owner. Called
    /// after every successful commit, from the loop or from the revocation callback, so it
    /// must not block (hand the work to a task). Does nothing unless the writer needs it (the
    /// sink seals its tamper-evident log up to there).
    fn committed(&self, offsets: &[(Partition, i64)]) {
        let _ = offsets;
    }
}

/// What a store service makes of one record before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<R> {
    /// A row to write to `table`; `event_time_ms` as in [`Written::Row`].
    Row {
        /// The row, in the service's own type.
        row: R,
        /// The table (metric `emitted` label) it goes to.
        table: &'static str,
        /// The event's time (ms since the epoch), if known.
        event_time_ms: Option<i64>,
    },
    /// Deliberately not stored (a tombstone).
    Ignored,
    /// Cannot be stored, ever (bad input): goes to the dead-letter topic.
    DeadLetter(DeadLetter),
}

/// The first half of a typical [`BatchWriter::write`]: decodes each record of `batch`, giving
/// the rows to write in one call and, in order, what becomes of each record once they are
/// written. A dead letter is logged by its reason code only (details may quote the record).
pub fn split_batch<R>(
    batch: &[InputRecord],
    mut decode: impl FnMut(&InputRecord) -> Decoded<R>,
) -> (Vec<R>, Vec<Written>) {
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
                Written::Row {
                    table,
                    event_time_ms,
                }
            }
            Decoded::Ignored => Written::Ignored,
            Decoded::DeadLetter(letter) => {
                tracing::debug!(reason = %letter.reason, topic = %input.topic, offset = input.offset, "dead-lettering");
                Written::DeadLetter(letter)
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
    /// Opening the store failed (connecting, migrating, preparing).
    Store(S),
    #[error(transparent)]
    /// The loop failed.
    Kafka(#[from] Error),
}

/// Runs a service that writes to a store until its shutdown: registers it with its health first
/// (it reads not ready while it starts), builds its writer with `open` (connecting to and
/// migrating the store, say), then runs [`spawn`]. The service brings only what is its own:
/// its name, its inputs and `open`.
pub async fn run_service<W, S, Fut>(
    service: &str,
    inputs: Vec<String>,
    cx: ServiceContext<'_>,
    open: impl FnOnce() -> Fut,
) -> Result<(), ServiceError<S>>
where
    W: BatchWriter,
    Fut: Future<Output = Result<W, ServiceError<S>>>,
{
    let spec = LoopSpec::for_service(service, inputs, cx.config);
    let readiness = cx.health.register(&spec.service, true);
    let writer = open().await?;
    let metrics = cx.metrics.service(&spec.service);
    spawn(spec, writer, metrics, readiness, cx.shutdown).await?;
    Ok(())
}

/// First and largest pause between retries of a failed batch write.
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

/// Runs the loop until `shutdown`: then stops polling, lets in-flight batches finish (a batch
/// still failing is abandoned, to be redelivered), commits, and leaves the group. Returns
/// [`Error::WriteRefused`] early when the store refuses writes for a deployment fault.
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
    let writer = Arc::new(writer);
    let on_commit: CommitHook = {
        let writer = writer.clone();
        Arc::new(move |offsets| writer.committed(offsets))
    };
    let context =
        HarnessContext::new(&spec.service, metrics.clone()).with_ledger(ledger.clone(), on_commit);
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
    let _lag = LagReporter::start(&spec.kafka, &group, assignment.clone(), metrics.clone());

    let mut state = LoopState {
        spec,
        writer,
        metrics,
        readiness,
        consumer,
        dead_letters,
        assignment,
        ledger,
        tasks: JoinSet::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        bytes_in_flight: 0,
        paused: false,
        unsynced: Vec::new(),
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
    stored: Written,
}

/// What a batch's task hands back: the bytes it held, and what became of it (`Ok(None)`:
/// abandoned at shutdown; `Err`: the store refused it for a deployment fault).
struct Finished {
    bytes: usize,
    result: Result<Option<Done>, WriteError>,
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
    tasks: JoinSet<Finished>,
    batch: Vec<InputRecord>,
    /// Bytes of `batch` ([`InputRecord::encoded_len`]).
    batch_bytes: usize,
    /// Bytes of every record held: the batch being filled and the batches being written.
    bytes_in_flight: usize,
    paused: bool,
    /// Newly assigned partitions not yet put in the loop's pause state (see `handle_rebalance`).
    unsynced: Vec<Partition>,
}

impl<W: BatchWriter> LoopState<W> {
    async fn run(&mut self, shutdown: &Shutdown) -> Result<()> {
        let max_in_flight = self.spec.kafka.max_in_flight_records.max(1);
        let max_bytes = self.spec.kafka.max_in_flight_bytes.max(1);
        let batch_max = self.spec.kafka.batch_max_records.max(1);
        // A budget's worth of large records goes out as several batches written side by
        // side, not as one.
        let batch_max_bytes = (max_bytes / 4).max(1);
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
                    let finished = done.map_err(|err| Error::Task(err.to_string()))?;
                    self.bytes_in_flight -= finished.bytes;
                    match finished.result {
                        Ok(Some(done)) => self.complete(done),
                        Ok(None) => {} // abandoned at shutdown
                        Err(refused) => {
                            // Nothing of this batch is done: it is redelivered after the fix.
                            // The other batches would meet the same refusal.
                            self.tasks.abort_all();
                            tracing::error!(service = %self.spec.service, error = %refused, "the store refuses writes for a reason retrying cannot fix; stopping");
                            return Err(Error::WriteRefused {
                                service: self.spec.service.clone(),
                                error: refused,
                            });
                        }
                    }
                    let in_flight = lock(&self.ledger).in_flight();
                    if self.paused
                        && in_flight <= max_in_flight / 2
                        && self.bytes_in_flight <= max_bytes / 2
                    {
                        self.set_paused(false);
                    }
                }
                _ = commit_tick.tick() => self.commit(),
                _ = flush_tick.tick() => {
                    // Also notices an assignment when no record arrives (readiness).
                    self.handle_rebalance()?;
                    self.dispatch(shutdown);
                }
                message = self.consumer.recv() => {
                    let message = message.map(|m| InputRecord::from_message(&m));
                    // Rebalance callbacks ran inside that poll, before the message it returned.
                    self.handle_rebalance()?;
                    let record = match message {
                        Ok(record) => record,
                        Err(err) => {
                            tracing::warn!(service = %self.spec.service, error = %err, "consumer error");
                            continue;
                        }
                    };
                    lock(&self.ledger).track(&record.partition_id(), record.offset);
                    let bytes = record.encoded_len();
                    self.batch_bytes += bytes;
                    self.bytes_in_flight += bytes;
                    self.batch.push(record);
                    if self.batch.len() >= batch_max || self.batch_bytes >= batch_max_bytes {
                        self.dispatch(shutdown);
                    }
                    if lock(&self.ledger).in_flight() >= max_in_flight
                        || self.bytes_in_flight >= max_bytes
                    {
                        self.set_paused(true);
                    }
                }
            }
            self.metrics.set_in_flight(lock(&self.ledger).in_flight());
            self.metrics.set_in_flight_bytes(self.bytes_in_flight);
        }
    }

    /// Drops batched records of revoked partitions (the ledger already forgot them) and puts
    /// newly assigned partitions in the loop's state: paused while it is, flowing otherwise.
    /// `Err` when an assignment could not be started (`Assignment::check`).
    fn handle_rebalance(&mut self) -> Result<()> {
        let (changes, joined) = {
            let mut assignment = lock(&self.assignment);
            assignment.check()?;
            (assignment.take_changes(), assignment.joined())
        };
        self.readiness.set_consumer_joined(joined);
        if !changes.revoked.is_empty() {
            changes.drop_revoked(&mut self.batch);
            let kept: usize = self.batch.iter().map(InputRecord::encoded_len).sum();
            self.bytes_in_flight -= self.batch_bytes - kept;
            self.batch_bytes = kept;
        }
        // librdkafka keeps a partition's pause across a revocation and a later assignment: a
        // partition paused here, revoked, and assigned back arrives paused even when the loop
        // is not (and would never be resumed, the loop resuming only what it owns). So every
        // newly assigned partition is put in the loop's state, whichever it is.
        // Until librdkafka accepts it: retried on every flush tick.
        self.unsynced.retain(|p| !changes.revoked.contains(p));
        self.unsynced.extend(changes.assigned);
        if !self.unsynced.is_empty() && self.pause_or_resume(&self.unsynced, self.paused) {
            self.unsynced.clear();
        }
        Ok(())
    }

    fn set_paused(&mut self, paused: bool) {
        let owned = lock(&self.assignment).owned();
        if self.pause_or_resume(&owned, paused) {
            self.unsynced.clear(); // every owned partition is in the new state
            if paused != self.paused {
                tracing::debug!(service = %self.spec.service, paused, "backpressure");
            }
            self.paused = paused;
        }
    }

    /// Pauses or resumes `partitions`; false (and a warning) if librdkafka refused.
    fn pause_or_resume(&self, partitions: &[Partition], paused: bool) -> bool {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&p.topic, p.partition);
        }
        let result = if paused {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        match result {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(service = %self.spec.service, error = %err, paused, "pause/resume failed");
                false
            }
        }
    }

    /// Hands the current batch to the writer on a task of its own.
    fn dispatch(&mut self, shutdown: &Shutdown) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let bytes = std::mem::take(&mut self.batch_bytes);
        let writer = self.writer.clone();
        let dead_letters = self.dead_letters.clone();
        let metrics = self.metrics.clone();
        let shutdown = shutdown.clone();
        self.tasks.spawn(async move {
            let result = write_batch(&*writer, &batch, &dead_letters, &metrics, &shutdown).await;
            Finished { bytes, result }
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
                Written::Row {
                    table,
                    event_time_ms,
                } => {
                    self.metrics.processed(Processed::Emitted, 1);
                    self.metrics.emitted(table, 1);
                    if let Some(t) = event_time_ms {
                        self.metrics.observe_end_to_end(t, now);
                    }
                }
                Written::Ignored => {
                    self.metrics.processed(Processed::Ignored, 1);
                    self.metrics.ignored(1);
                }
                Written::DeadLetter(letter) => {
                    self.metrics.processed(Processed::DeadLettered, 1);
                    self.metrics.dead_lettered(&letter.reason, 1);
                }
            }
        }
    }

    /// Commits synchronously: a round trip once per interval, and a success really means the
    /// offsets are stored (an async commit's failure would surface later, after we had moved
    /// on).
    fn commit(&self) {
        // Every record the consumer handed out is tracked (`run` tracks each as it arrives),
        // so its positions may move the watermarks past offsets that carry no record.
        let positions = owned_positions(&self.consumer, &self.assignment);
        // Never hold the ledger lock across a librdkafka call: callbacks take it too.
        let commits = {
            let mut ledger = lock(&self.ledger);
            ledger.passed(&positions);
            ledger.pending_commits()
        };
        if commits.is_empty() {
            return;
        }
        match self
            .consumer
            .commit(&offsets_list(&commits), CommitMode::Sync)
        {
            Ok(()) => {
                lock(&self.ledger).mark_committed(&commits);
                self.writer.committed(&commits);
            }
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
            if let Ok(Finished {
                result: Ok(Some(done)),
                ..
            }) = done
            {
                self.complete(done);
            }
        }
        self.commit();
        self.readiness.set_consumer_joined(false);
        tracing::info!(service = %self.spec.service, "leaving the consumer group");
        // Dropping the consumer closes it, serving the final revocation (see `HarnessContext`).
    }
}

/// Writes one batch ([`store_batch`]), then produces its dead letters. `Ok(None)` means
/// abandoned (shutdown): none of its offsets count as done.
async fn write_batch<W: BatchWriter>(
    writer: &W,
    batch: &[InputRecord],
    dead_letters: &DeadLetters,
    metrics: &ServiceMetrics,
    shutdown: &Shutdown,
) -> Result<Option<Done>, WriteError> {
    let Some(outcomes) = store_batch(writer, batch, metrics, shutdown, RETRY_BACKOFF).await? else {
        return Ok(None);
    };
    let mut done = Done {
        offsets: Vec::with_capacity(batch.len()),
        counts: Vec::with_capacity(batch.len()),
    };
    for (record, stored) in batch.iter().zip(outcomes) {
        if let Written::DeadLetter(letter) = &stored
            && !dead_letters.send(record, letter, shutdown).await
        {
            return Ok(None);
        }
        done.offsets.push((record.partition_id(), record.offset));
        done.counts.push(Counted {
            topic: record.topic.clone(),
            stored,
        });
    }
    Ok(Some(done))
}

/// Makes `batch` durable and says what became of each record, in order (see the module
/// documentation for what each [`WriteFault`] leads to). A record the store refuses alone
/// becomes a [`STORE_REJECTED`] dead letter. `Ok(None)`: abandoned at shutdown (or the writer
/// broke its contract); `Err`: a deployment fault.
///
/// The records that fail alone are found by halving: the halves of a batch with a record
/// fault are written on their own, and so on down to single records, so each bad record costs
/// about 2·log₂(batch) writes and every good one is written.
async fn store_batch<W: BatchWriter>(
    writer: &W,
    batch: &[InputRecord],
    metrics: &ServiceMetrics,
    shutdown: &Shutdown,
    (first_backoff, max_backoff): (Duration, Duration),
) -> Result<Option<Vec<Written>>, WriteError> {
    let service = metrics.service();
    let mut outcomes: Vec<Option<Written>> = vec![None; batch.len()];
    // Ranges still to write; the front half of a split is written first.
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..batch.len());
    while let Some(range) = pending.pop() {
        let mut backoff = first_backoff;
        loop {
            let started = std::time::Instant::now();
            match writer.write(&batch[range.clone()]).await {
                Ok(stored) if stored.len() == range.len() => {
                    metrics.observe_batch_write(started.elapsed().as_secs_f64());
                    for (slot, stored) in outcomes[range.clone()].iter_mut().zip(stored) {
                        *slot = Some(stored);
                    }
                    break;
                }
                Ok(stored) => {
                    // A writer bug; retrying cannot help, and guessing could lose records.
                    tracing::error!(
                        service,
                        expected = range.len(),
                        got = stored.len(),
                        "writer returned the wrong number of outcomes"
                    );
                    return Ok(None);
                }
                Err(err) => {
                    metrics.write_error(err.fault());
                    match err.fault() {
                        WriteFault::Transient => {
                            tracing::warn!(service, error = %err, records = range.len(), retry_in_ms = backoff.as_millis() as u64, "batch write failed");
                            if shutdown.is_triggered() {
                                return Ok(None);
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(max_backoff);
                        }
                        WriteFault::Record if range.len() == 1 => {
                            let record = &batch[range.start];
                            tracing::warn!(service, error = %err, topic = %record.topic, partition = record.partition, offset = record.offset, "the store refuses the record; dead-lettering it");
                            outcomes[range.start] = Some(Written::DeadLetter(DeadLetter::new(
                                STORE_REJECTED,
                                format!("the store refused the record: {err}"),
                            )));
                            break;
                        }
                        WriteFault::Record => {
                            tracing::debug!(service, error = %err, records = range.len(), "the store refuses a record of the batch; splitting it");
                            let middle = range.start + range.len() / 2;
                            pending.push(middle..range.end);
                            pending.push(range.start..middle);
                            break;
                        }
                        WriteFault::Deployment => return Err(err),
                    }
                }
            }
        }
    }
    Ok(Some(outcomes.into_iter().flatten().collect()))
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
        let mut shrunk = false;
        loop {
            match self
                .producer
                .send(record.future_record(), Duration::from_secs(30))
                .await
            {
                Ok(_) => return true,
                // Once: were the smallest letter refused too, waiting is all that is left.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))
                    if !shrunk =>
                {
                    tracing::warn!(service = %self.service, bytes = record.encoded_len(), "dead letter refused for its size; sending it without the original");
                    shrunk = true;
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
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::telemetry::metrics::Metrics;

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
                Written::Row {
                    table: "t1",
                    event_time_ms: Some(7)
                },
                Written::DeadLetter(DeadLetter::new("invalid_json", "not JSON")),
                Written::Ignored,
            ]
        );
    }

    #[test]
    fn faults_follow_the_two_questions_a_store_answers() {
        assert_eq!(WriteFault::of(true, false), WriteFault::Transient);
        assert_eq!(WriteFault::of(true, true), WriteFault::Transient);
        assert_eq!(WriteFault::of(false, true), WriteFault::Record);
        assert_eq!(WriteFault::of(false, false), WriteFault::Deployment);
    }

    /// A store standing in for the database (this is the loop's pure logic): all or nothing
    /// per call, like the real ones. It refuses, as a record fault, any call holding a payload
    /// starting with `refuse`; fails its first `transient` calls, and call number
    /// `transient_on_call`; refuses every call as a deployment fault while `broken`; and
    /// decodes `bad` as a dead letter of its own.
    #[derive(Default)]
    struct FakeStore {
        transient: AtomicUsize,
        /// A transient failure on this call only (1-based).
        transient_on_call: Option<usize>,
        broken: bool,
        calls: Mutex<Vec<Range<i64>>>,
        written: Mutex<Vec<i64>>,
    }

    impl BatchWriter for FakeStore {
        async fn write(&self, batch: &[InputRecord]) -> Result<Vec<Written>, WriteError> {
            let span =
                batch.first().map_or(0, |r| r.offset)..batch.last().map_or(0, |r| r.offset + 1);
            let call = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(span);
                calls.len()
            };
            if self.transient_on_call == Some(call) {
                return Err(WriteError::transient("timed out"));
            }
            if self
                .transient
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(WriteError::transient("timed out"));
            }
            if self.broken {
                return Err(WriteError::new(WriteFault::Deployment, "unauthorized"));
            }
            if batch.iter().any(|r| r.payload().starts_with(b"refuse")) {
                return Err(WriteError::new(WriteFault::Record, "ttl is too large"));
            }
            let mut written = self.written.lock().unwrap();
            Ok(batch
                .iter()
                .map(|r| {
                    if r.payload() == b"bad" {
                        Written::DeadLetter(DeadLetter::new("schema_violation", "bad"))
                    } else {
                        written.push(r.offset);
                        Written::Row {
                            table: "t",
                            event_time_ms: None,
                        }
                    }
                })
                .collect())
        }
    }

    const FAST: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(2));

    /// [`store_batch`] as the sink's, with a quick backoff and no shutdown.
    async fn store_all(
        store: &FakeStore,
        batch: &[InputRecord],
        metrics: &Metrics,
    ) -> Result<Option<Vec<Written>>, WriteError> {
        store_batch(
            store,
            batch,
            &metrics.service("sink"),
            &Shutdown::new(),
            FAST,
        )
        .await
    }

    fn batch(refused: &[i64]) -> Vec<InputRecord> {
        (0..100)
            .map(|i| {
                if refused.contains(&i) {
                    record(i, format!("refuse {i}").as_bytes())
                } else if i == 10 {
                    record(i, b"bad")
                } else {
                    record(i, b"good")
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn the_records_a_store_refuses_are_found_and_only_they_are_dead_lettered() {
        let metrics = Metrics::new().unwrap();
        let store = FakeStore::default();
        let refused = [0, 3, 50, 51, 99];
        let batch = batch(&refused);
        let outcomes = store_all(&store, &batch, &metrics)
            .await
            .expect("no deployment fault")
            .expect("not abandoned");
        assert_eq!(outcomes.len(), 100);
        for (i, stored) in outcomes.iter().enumerate() {
            let i = i as i64;
            match stored {
                Written::DeadLetter(letter) if refused.contains(&i) => {
                    assert_eq!(letter.reason, STORE_REJECTED);
                    assert!(
                        letter.detail.contains("ttl is too large"),
                        "{}",
                        letter.detail
                    );
                }
                Written::DeadLetter(letter) if i == 10 => {
                    assert_eq!(letter.reason, "schema_violation")
                }
                Written::Row { .. } => assert!(!refused.contains(&i) && i != 10, "{i}"),
                other => panic!("offset {i}: {other:?}"),
            }
        }
        // Every good record written (some twice, as the halves were retried: idempotent).
        let written: BTreeSet<i64> = store.written.lock().unwrap().iter().copied().collect();
        let expected: BTreeSet<i64> = (0..100)
            .filter(|i| !refused.contains(i) && *i != 10)
            .collect();
        assert_eq!(written, expected);
        // Halving, not one write per record: 5 bad records in 100 cost a few dozen calls.
        let calls = store.calls.lock().unwrap().len();
        assert!(calls <= 5 * 2 * 7 + 1, "{calls} calls");
        let text = metrics.render();
        assert!(
            text.contains(r#"auditflow_write_errors_total{kind="record",service="sink"}"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn transient_faults_retry_the_same_records() {
        let metrics = Metrics::new().unwrap();
        let store = FakeStore {
            transient: AtomicUsize::new(3),
            ..FakeStore::default()
        };
        let batch = batch(&[]);
        let outcomes = store_all(&store, &batch, &metrics).await.unwrap().unwrap();
        assert_eq!(
            outcomes
                .iter()
                .filter(|s| matches!(s, Written::Row { .. }))
                .count(),
            99
        );
        // Three failed calls and one that worked, each of the whole batch: no splitting.
        assert_eq!(*store.calls.lock().unwrap(), vec![0..100; 4]);
        assert!(
            metrics
                .render()
                .contains(r#"auditflow_write_errors_total{kind="transient",service="sink"} 3"#)
        );
    }

    #[tokio::test]
    async fn a_transient_fault_while_splitting_retries_that_half_only() {
        let metrics = Metrics::new().unwrap();
        let store = FakeStore {
            transient_on_call: Some(2),
            ..FakeStore::default()
        };
        let batch = batch(&[60]);
        let outcomes = store_all(&store, &batch, &metrics).await.unwrap().unwrap();
        assert!(matches!(&outcomes[60], Written::DeadLetter(l) if l.reason == STORE_REJECTED));
        let calls = store.calls.lock().unwrap().clone();
        assert_eq!(calls[0], 0..100, "refused: a record fault");
        assert_eq!(calls[1], 0..50, "the front half, failing once");
        assert_eq!(calls[2], 0..50, "the front half again, alone");
        assert!(
            !calls[3..].contains(&(0..100)),
            "the whole batch is not retried: {calls:?}"
        );
    }

    #[tokio::test]
    async fn a_deployment_fault_stops_without_dead_lettering_anything() {
        let metrics = Metrics::new().unwrap();
        let store = FakeStore {
            broken: true,
            ..FakeStore::default()
        };
        let batch = batch(&[5]);
        // A guard, not a timing expectation: retrying (as the loop once did) never returns.
        let refused =
            tokio::time::timeout(Duration::from_secs(60), store_all(&store, &batch, &metrics))
                .await
                .expect("stopped, not retried for ever")
                .expect_err("a deployment fault stops the loop");
        assert_eq!(refused.fault(), WriteFault::Deployment);
        assert_eq!(refused.to_string(), "unauthorized");
        assert_eq!(
            store.calls.lock().unwrap().len(),
            1,
            "not split, not retried"
        );
        assert!(store.written.lock().unwrap().is_empty());
        assert!(
            metrics
                .render()
                .contains(r#"auditflow_write_errors_total{kind="deployment",service="sink"} 1"#)
        );
    }

    #[tokio::test]
    async fn shutdown_abandons_a_batch_that_keeps_failing() {
        let metrics = Metrics::new().unwrap();
        let store = FakeStore {
            transient: AtomicUsize::new(usize::MAX),
            ..FakeStore::default()
        };
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let batch = batch(&[]);
        let outcome = store_batch(&store, &batch, &metrics.service("sink"), &shutdown, FAST).await;
        assert!(matches!(outcome, Ok(None)));
    }
}
