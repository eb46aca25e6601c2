//! The exactly-once consume-transform-produce loop (classifier, security monitor).
//!
//! One cycle: poll a bounded batch → [`Transform::transform`] each record, then
//! [`Transform::end_batch`] → begin a transaction
//! → produce the outputs and dead letters → `send_offsets_to_transaction` with the consumer's
//! group metadata (KIP-447) → commit. Outputs and input offsets become visible together or not
//! at all, so `read_committed` readers see every output exactly once. The transaction runs on
//! the committer thread (`committer` module) while this thread polls and transforms the next
//! batch; that batch is submitted only once the previous transaction is settled.
//!
//! - Rebalance during batching: records of revoked partitions are dropped from the batch before
//!   anything is produced; their new owner reads them from the last committed offset.
//! - Abortable error (including a fenced group generation: we were too slow and the group moved
//!   on): abort, seek every owned partition back to its committed offset, and tell the transform
//!   its partitions were revoked and assigned again, so stateful transforms rebuild.
//! - Fatal error (producer fenced by a newer instance, or broken): return it; the process exits
//!   and its replacement starts fresh.
//! - Retriable error while looking up where to rewind (a leader moving, a topic just created,
//!   a timeout): retried with backoff for up to [`LOOKUP_DEADLINE`]
//!   ([`is_retriable`](crate::kafka::retry::is_retriable)); any other error stops the loop with
//!   what it was doing.
//!
//! Time-driven outputs: about once a second ([`TICK_INTERVAL`]), also while the inputs are
//! idle, the loop calls [`Transform::on_tick`] with the wall clock (the security monitor lifts
//! expired blocks there). A tick's outputs join the transaction of the batch prepared with them,
//! or go in a transaction of their own that re-commits the owned partitions' committed offsets,
//! so the broker fences it like any other if the group has moved on. An aborted tick is redone
//! by a later tick from rebuilt state, so its outputs must be safe to write twice (a tombstone
//! on a compacted topic is). No tick runs while a rewound partition is still being replayed:
//! the transform's state is incomplete then.
//!
//! The loop runs on a thread of its own ([`spawn`] uses `spawn_blocking`): every librdkafka call
//! here blocks, and nothing is gained by pretending otherwise. Backpressure is inherent: at most
//! one batch is in the transaction and one being prepared, and librdkafka's prefetch is bounded
//! by `queued.max.messages.kbytes`.
//!
//! Here is the loop itself (poll, prepare, submit, settle, tick); what a service implements is
//! in `transform` ([`Transform`], [`Rewind`]), the counts a transaction applies when it commits
//! in `tally`, and re-reading partitions (rewinds, going back after an abort) in `rewind`.

mod rewind;
mod tally;
mod transform;

pub use rewind::LOOKUP_DEADLINE;
pub use transform::{OnCommit, Rewind, Transform};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};

use crate::clock::now_ms;
use crate::error::KafkaContext;
use crate::kafka::client;
use crate::kafka::committer::{Committer, Job, Settled};
use crate::kafka::dead_letter::{self, dead_letter_record};
use crate::kafka::lag::LagReporter;
use crate::kafka::loop_spec::LoopSpec;
use crate::kafka::rebalance::{HarnessContext, SharedAssignment, owned_positions};
use crate::kafka::records::{DeadLetter, InputRecord, OutputRecord, Partition, Transformed};
use crate::kafka::retry::{MAX_BACKOFF, MIN_BACKOFF};
use crate::kafka::topics;
use crate::shutdown::Shutdown;
use crate::sync::lock;
use crate::telemetry::health::Readiness;
use crate::telemetry::metrics::{Processed, ServiceMetrics};
use crate::{Error, Result};

use tally::Tally;

/// How long an idle poll waits before looking at the shutdown signal again.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Timeout of the blocking metadata calls (committed offsets, offsets for times, seeks).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often [`Transform::on_tick`] runs (at most; a long batch delays it).
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// Whether `err` is the broker fencing our transactional producer (a newer one with its id).
fn is_fenced(err: &Error) -> bool {
    use rdkafka::types::RDKafkaErrorCode::{Fenced, ProducerFenced};
    matches!(err, Error::Fatal { source, .. }
        if matches!(source.rdkafka_error_code(), Some(Fenced | ProducerFenced)))
}

/// One transaction's worth of work, transformed and waiting for the committer.
struct Prepared {
    outputs: Vec<OutputRecord>,
    offsets: Vec<(Partition, i64)>,
    tally: Tally,
}

/// What the loop remembers of the transaction the committer is working on.
struct InFlight {
    tally: Tally,
    offsets: Vec<(Partition, i64)>,
}

/// Runs a service that transforms records into records until its shutdown: registers it with
/// its health (not ready while it starts), creates the planned topics (idempotent), then runs
/// [`spawn`] in group `<group_prefix><service>`. The service brings only what is its own: its
/// name, its inputs and its transform (the classifier, the OCSF exporter).
pub async fn run_service<T: Transform + 'static>(
    service: &str,
    inputs: Vec<String>,
    cx: crate::ServiceContext<'_>,
    transform: T,
) -> Result<()> {
    let config = cx.config;
    let readiness = cx.health.register(service, true);
    topics::ensure_topics(&config.kafka, &topics::planned_topics(&config.topics)).await?;
    let spec = LoopSpec::for_service(service, inputs, config);
    let metrics = cx.metrics.service(service);
    spawn(spec, transform, metrics, readiness, cx.shutdown).await
}

/// Runs `transform` on its own blocking thread until `shutdown`.
pub async fn spawn<T: Transform + 'static>(
    spec: LoopSpec,
    transform: T,
    metrics: ServiceMetrics,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<()> {
    let dead_letter_max_bytes =
        dead_letter::dead_letter_limit(&spec.kafka, &spec.dead_letter_topic).await;
    tokio::task::spawn_blocking(move || {
        TransactionalLoop::new(spec, transform, metrics, readiness, dead_letter_max_bytes)?
            .run(&shutdown)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

/// The loop's state. Build with [`TransactionalLoop::new`], drive with [`TransactionalLoop::run`].
pub struct TransactionalLoop<T> {
    spec: LoopSpec,
    transform: T,
    metrics: ServiceMetrics,
    readiness: Readiness,
    consumer: BaseConsumer<HarnessContext>,
    committer: Committer,
    /// The transaction the committer is working on.
    in_flight: Option<InFlight>,
    assignment: SharedAssignment,
    /// Partitions being re-read after a rewind: records below the offset are replayed.
    replay_until: HashMap<Partition, i64>,
    /// The producer's record size limit ([`client::max_message_bytes`]).
    max_bytes: usize,
    /// The dead-letter topic's record size limit ([`dead_letter::dead_letter_limit`]).
    dead_letter_max_bytes: usize,
    /// Pause before retrying after an abort; grows while aborts repeat (a broker that refuses
    /// every transaction must not be hammered in a tight loop), reset by a commit.
    abort_backoff: Duration,
    /// Each owned partition's committed offset as last known (read for a rewind, or written by
    /// our own commit): what a tick's own transaction re-commits to be fenced.
    committed: HashMap<Partition, i64>,
    /// When [`Transform::on_tick`] is due next.
    next_tick: Instant,
    /// Measures the committed lag of the owned partitions while the loop lives.
    _lag: LagReporter,
}

impl<T: Transform> TransactionalLoop<T> {
    /// Connects, subscribes and initialises transactions (blocking). Dead letters are sized
    /// to fit `dead_letter_max_bytes` ([`dead_letter::dead_letter_limit`]).
    pub fn new(
        spec: LoopSpec,
        transform: T,
        metrics: ServiceMetrics,
        readiness: Readiness,
        dead_letter_max_bytes: usize,
    ) -> Result<Self> {
        if spec.inputs.is_empty() {
            return Err(Error::Config(format!("{}: no input topics", spec.service)));
        }
        let group = client::group_id(&spec.kafka, &spec.service);
        let context = HarnessContext::new(&spec.service, metrics.clone());
        let assignment = context.assignment().clone();
        let consumer: BaseConsumer<HarnessContext> = client::consumer_config(&spec.kafka, &group)
            .create_with_context(context)
            .during("creating the consumer")?;
        let inputs: Vec<&str> = spec.inputs.iter().map(String::as_str).collect();
        consumer.subscribe(&inputs).during("subscribing")?;

        let transactional_id = client::transactional_id(&spec.kafka, &group);
        let producer: BaseProducer =
            client::transactional_producer_config(&spec.kafka, &transactional_id)
                .create()
                .during("creating the transactional producer")?;
        producer
            .init_transactions(CALL_TIMEOUT)
            .during("initialising transactions")?;
        readiness.set_producer_ready(true);
        tracing::info!(service = %spec.service, %group, %transactional_id, "transactional loop started");
        let lag = LagReporter::start(&spec.kafka, &group, assignment.clone(), metrics.clone());
        Ok(Self {
            transform,
            metrics,
            readiness,
            consumer,
            committer: Committer::start(producer, &spec.service)?,
            in_flight: None,
            assignment,
            replay_until: HashMap::new(),
            max_bytes: client::max_message_bytes(&spec.kafka),
            dead_letter_max_bytes,
            abort_backoff: Duration::ZERO,
            committed: HashMap::new(),
            next_tick: Instant::now() + TICK_INTERVAL,
            _lag: lag,
            spec,
        })
    }

    /// Processes batches until `shutdown`, then settles the last transaction and leaves the
    /// group, so nothing is in flight when this returns.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<()> {
        while !shutdown.is_triggered() {
            let batch = self.poll_batch(shutdown)?;
            // Transform the next batch while the previous transaction commits.
            let prepared = self.prepare(&batch);
            if !self.settle()? {
                // That transaction aborted and every partition was rewound: what was just
                // prepared will be polled again.
                continue;
            }
            if let Some(prepared) = self.tick(prepared) {
                self.submit(prepared)?;
            }
        }
        self.settle()?;
        self.close();
        Ok(())
    }

    /// A batch closes at `transaction_max_records`, at half of `max_in_flight_bytes` (this
    /// batch and the one committing are what the loop holds), or when it has waited
    /// `batch_max_wait_ms`.
    fn poll_batch(&mut self, shutdown: &Shutdown) -> Result<Vec<InputRecord>> {
        let max = self.spec.kafka.transaction_max_records.max(1);
        let max_bytes = (self.spec.kafka.max_in_flight_bytes / 2).max(1);
        let wait = Duration::from_millis(self.spec.kafka.batch_max_wait_ms);
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut deadline: Option<Instant> = None;
        loop {
            let timeout = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                // Nothing to prepare: go and settle the transaction in flight soon, so its
                // counts and latency are recorded when it commits, not a whole idle poll later.
                None if self.in_flight.is_some() => Duration::from_millis(5),
                None => IDLE_POLL,
            };
            let polled = self
                .consumer
                .poll(timeout)
                .map(|r| r.map(|m| InputRecord::from_message(&m)));
            // Rebalance callbacks ran inside that poll, before any message it returned.
            self.handle_rebalance(&mut batch)?;
            match polled {
                Some(Ok(record))
                    if lock(&self.assignment).owns_record(&record.topic, record.partition) =>
                {
                    bytes += record.encoded_len();
                    batch.push(record);
                    deadline.get_or_insert_with(|| Instant::now() + wait);
                }
                Some(Ok(_)) | None => {}
                Some(Err(err)) => {
                    tracing::warn!(service = %self.spec.service, error = %err, "consumer error")
                }
            }
            let full = batch.len() >= max || bytes >= max_bytes;
            let due = deadline.is_some_and(|d| Instant::now() >= d);
            let idle = batch.is_empty()
                && (shutdown.is_triggered()
                    || self.in_flight.is_some()
                    || Instant::now() >= self.next_tick);
            if full || due || idle {
                return Ok(batch);
            }
        }
    }

    /// Applies partition changes: drops batched records of revoked partitions, tells the
    /// transform, and performs the rewinds it asks for.
    fn handle_rebalance(&mut self, batch: &mut Vec<InputRecord>) -> Result<()> {
        let (changes, joined) = {
            let mut assignment = lock(&self.assignment);
            assignment.check()?;
            (assignment.take_changes(), assignment.joined())
        };
        self.readiness.set_consumer_joined(joined);
        if changes.is_empty() {
            return Ok(());
        }
        if !changes.revoked.is_empty() {
            changes.drop_revoked(batch);
            for p in &changes.revoked {
                self.replay_until.remove(p);
                self.committed.remove(p);
            }
            self.transform.on_revoked(&changes.revoked);
        }
        if !changes.assigned.is_empty() {
            let rewinds = self.transform.on_assigned(&changes.assigned);
            self.rewind(rewinds)?;
        }
        Ok(())
    }

    /// Runs the transform's tick when due and no partition is being replayed: its outputs join
    /// `prepared`, or make a transaction of their own that re-commits the committed offsets
    /// (so the broker fences it like any other). Also collects the transform's work to run on
    /// commit ([`Transform::on_commit`]): with the transaction, or at once when there is none.
    fn tick(&mut self, prepared: Option<Prepared>) -> Option<Prepared> {
        let mut prepared = prepared;
        if Instant::now() >= self.next_tick && self.replay_done() {
            self.next_tick = Instant::now() + TICK_INTERVAL;
            let outputs = self.transform.on_tick(now_ms());
            if !outputs.is_empty() {
                let prepared = prepared.get_or_insert_with(|| Prepared {
                    outputs: Vec::new(),
                    offsets: self
                        .committed
                        .iter()
                        .map(|(p, offset)| (p.clone(), *offset))
                        .collect(),
                    tally: Tally::default(),
                });
                for r in &outputs {
                    *prepared.tally.emitted.entry(r.topic.clone()).or_default() += 1;
                }
                prepared.outputs.extend(outputs);
            }
        }
        if prepared.is_none() && self.in_flight.is_none() && self.replay_done() {
            prepared = self.skipped_offsets();
        }
        if let Some(work) = self.transform.on_commit() {
            match &mut prepared {
                Some(prepared) => prepared.tally.on_commit.push(work),
                // No transaction: nothing of what it records can be rolled back.
                None => work(),
            }
        }
        prepared
    }

    /// An idle loop's position can be past its committed offset with no record in between:
    /// `read_committed` readers skip the markers that end transactions (and compaction leaves
    /// gaps), and the offset a batch commits is one past its last record. Committing that
    /// position, in a transaction of offsets only, makes the group's committed lag (what
    /// operators alert on) zero when the loop has done everything. Only called with nothing
    /// prepared, in flight or being replayed: every record polled so far is committed, so the
    /// offsets between are records of no one. `None` when no partition moved.
    fn skipped_offsets(&mut self) -> Option<Prepared> {
        if self.committed.is_empty() {
            return None;
        }
        let moved: Vec<(Partition, i64)> = owned_positions(&self.consumer, &self.assignment)
            .into_iter()
            .filter(|(p, at)| {
                self.committed
                    .get(p)
                    .is_some_and(|committed| at > committed)
            })
            .collect();
        if moved.is_empty() {
            return None;
        }
        Some(Prepared {
            outputs: Vec::new(),
            offsets: moved,
            tally: Tally::default(),
        })
    }

    /// Transforms a batch into one transaction's worth of outputs and offsets. `None` when
    /// there is nothing to commit (no records, or only replayed ones).
    fn prepare(&mut self, batch: &[InputRecord]) -> Option<Prepared> {
        let mut tally = Tally::default();
        let mut outputs: Vec<OutputRecord> = Vec::new();
        // Next offset per partition: what the transaction commits.
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        for record in batch {
            if self.is_replay(record) {
                self.transform.replay(record);
                continue;
            }
            *tally.consumed.entry(record.topic.clone()).or_default() += 1;
            next.insert((record.topic.as_str(), record.partition), record.offset + 1);
            match refuse_oversized(self.transform.transform(record), self.max_bytes) {
                Transformed::Emitted {
                    records,
                    event_time_ms,
                } => {
                    tally.outcome(Processed::Emitted);
                    for r in &records {
                        *tally.emitted.entry(r.topic.clone()).or_default() += 1;
                    }
                    tally.event_times_ms.extend(event_time_ms);
                    outputs.extend(records);
                }
                Transformed::SampledOut { event_type } => {
                    tally.outcome(Processed::SampledOut);
                    *tally.sampled_out.entry(event_type).or_default() += 1;
                }
                Transformed::Ignored => tally.outcome(Processed::Ignored),
                Transformed::DeadLetter(letter) => {
                    tally.outcome(Processed::DeadLettered);
                    *tally
                        .dead_lettered
                        .entry(letter.reason.clone())
                        .or_default() += 1;
                    outputs.push(dead_letter_record(
                        record,
                        &letter,
                        &self.spec.service,
                        &self.spec.dead_letter_topic,
                        self.dead_letter_max_bytes,
                    ));
                }
            }
        }
        let summary = self.transform.end_batch();
        for r in &summary {
            *tally.emitted.entry(r.topic.clone()).or_default() += 1;
        }
        outputs.extend(summary);
        tally.on_commit.extend(self.transform.on_commit());
        if next.is_empty() {
            debug_assert!(
                outputs.is_empty(),
                "outputs of a batch of replayed records only"
            );
            // Replayed records only: no transaction, and nothing live to roll back.
            for work in tally.on_commit {
                work();
            }
            return None;
        }
        let offsets: Vec<(Partition, i64)> = next
            .into_iter()
            .map(|((topic, partition), offset)| (Partition::new(topic, partition), offset))
            .collect();
        Some(Prepared {
            outputs,
            offsets,
            tally,
        })
    }

    fn submit(&mut self, prepared: Prepared) -> Result<()> {
        let group = self
            .consumer
            .group_metadata()
            .ok_or_else(|| Error::Config("the consumer has no group".into()))?;
        self.committer.submit(Job {
            outputs: prepared.outputs,
            offsets: prepared.offsets.clone(),
            group,
        })?;
        self.in_flight = Some(InFlight {
            tally: prepared.tally,
            offsets: prepared.offsets,
        });
        Ok(())
    }

    /// Waits for the transaction in flight, if any, and accounts for it. `Ok(false)` when it
    /// aborted: every owned partition has then been rewound to its committed offset.
    fn settle(&mut self) -> Result<bool> {
        let Some(InFlight { tally, offsets }) = self.in_flight.take() else {
            return Ok(true);
        };
        match self.committer.wait() {
            Settled::Committed(took) => {
                self.metrics.observe_batch_write(took.as_secs_f64());
                self.metrics.transaction(true);
                tally.apply(&self.metrics);
                let owned = lock(&self.assignment);
                for (p, offset) in offsets {
                    if owned.owns(&p) {
                        self.committed.insert(p, offset);
                    }
                }
                self.abort_backoff = Duration::ZERO;
                Ok(true)
            }
            Settled::Aborted(err) => {
                tracing::warn!(service = %self.spec.service, error = %err, "transaction aborted; rewinding to committed offsets");
                self.metrics.transaction(false);
                std::thread::sleep(self.abort_backoff);
                self.abort_backoff = (self.abort_backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                self.rewind_to_committed()?;
                Ok(false)
            }
            Settled::Fatal(err) => {
                if is_fenced(&err) {
                    // The broker gave this transactional.id a newer epoch: a successor took it
                    // over, or the coordinator expired our transaction (a broker unreachable
                    // for longer than the transaction timeout). Either way this producer is
                    // done; a restart carries on from the committed offsets.
                    tracing::error!(
                        service = %self.spec.service,
                        instance_id = %self.spec.kafka.instance_id,
                        "fenced: this instance's transaction outlived the transaction timeout \
                         (the broker was unreachable), or another live instance has the same \
                         [kafka] instance_id; stopping"
                    );
                }
                Err(err)
            }
        }
    }

    /// Leaves the group now rather than after the session timeout, so partitions move at once.
    fn close(self) {
        tracing::info!(service = %self.spec.service, "leaving the consumer group");
        self.readiness.set_consumer_joined(false);
        // Dropping the consumer closes it (rust-rdkafka closes and serves the final revocation
        // on drop; closing it here as well would make that drop log an error). Records fetched
        // but not processed are not committed: the next owner reads them.
        drop(self.consumer);
    }
}

/// An output the producer would refuse fails every retry of its batch and would stall the
/// partitions in it for good; such an input is dead-lettered (`too_large`) instead.
fn refuse_oversized(disposition: Transformed, max_bytes: usize) -> Transformed {
    match disposition {
        Transformed::Emitted { records, .. }
            if records.iter().any(|r| r.encoded_len() > max_bytes) =>
        {
            let largest = records
                .iter()
                .map(OutputRecord::encoded_len)
                .max()
                .unwrap_or(0);
            Transformed::DeadLetter(DeadLetter::new(
                "too_large",
                format!(
                    "an output record would be {largest} bytes, over the producer's limit of {max_bytes} bytes"
                ),
            ))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_outputs_become_a_too_large_dead_letter() {
        let small = OutputRecord::new("t", None, vec![0; 10]);
        let big = OutputRecord::new("t", None, vec![0; 2000]);
        let ok = Transformed::Emitted {
            records: vec![small.clone()],
            event_time_ms: None,
        };
        assert_eq!(refuse_oversized(ok.clone(), 1000), ok);
        let too_big = Transformed::Emitted {
            records: vec![small, big],
            event_time_ms: None,
        };
        match refuse_oversized(too_big, 1000) {
            Transformed::DeadLetter(letter) => assert_eq!(letter.reason, "too_large"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            refuse_oversized(Transformed::Ignored, 1000),
            Transformed::Ignored
        );
    }
}
