//! The transaction committer: the loop's transactional producer on a thread of its own, so the
//! consumer thread can poll and transform batch N+1 while batch N commits.
//!
//! Why: a commit costs a few broker round trips whatever the batch size (tens of milliseconds
//! next to a busy broker), and waiting for it idle left both the CPU and the consumer unused.
//! A producer has at most one open transaction, so this is a pipeline of depth one: the loop
//! [`Committer::submit`]s a transaction, prepares the next batch, then [`Committer::wait`]s for
//! the result before submitting again. Safety does not depend on the overlap: the offsets of
//! each transaction go in with the group metadata (KIP-447), so a transaction whose partitions
//! changed hands meanwhile is fenced by the broker and aborted, and the loop rewinds.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::kafka::rebalance::offsets_list;
use crate::kafka::records::{OutputRecord, Partition};
use crate::{Error, Result};

/// Timeout of each blocking transaction call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a retriable transaction call is tried before the batch is aborted.
const RETRIES: usize = 5;
/// How long an abort may take before the producer counts as broken: past the requests'
/// timeout (`socket.timeout.ms`, 60 s), by which every record in flight is settled.
const ABORT_DEADLINE: Duration = Duration::from_secs(300);
/// One step of an abort, between which delivery reports are served (see `abort`).
const ABORT_STEP: Duration = Duration::from_millis(100);
/// The pause between two looks at the delivery reports while waiting for them (see `serve`).
const DELIVERY_NAP: Duration = Duration::from_micros(250);

/// One transaction: its records and the input offsets it commits.
pub(crate) struct Job {
    pub outputs: Vec<OutputRecord>,
    pub offsets: Vec<(Partition, i64)>,
    pub group: ConsumerGroupMetadata,
}

/// What became of a [`Job`].
pub(crate) enum Settled {
    /// Committed; how long the transaction took.
    Committed(Duration),
    /// Aborted (the producer is ready for the next transaction); the loop must rewind.
    Aborted(KafkaError),
    /// The producer is fenced or broken: the loop must stop.
    Fatal(Error),
}

pub(crate) struct Committer {
    jobs: Option<mpsc::SyncSender<Job>>,
    results: mpsc::Receiver<Settled>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Takes over `producer` (its transactions already initialised).
    pub fn start(producer: BaseProducer, service: &str) -> Result<Self> {
        let (jobs, job_queue) = mpsc::sync_channel::<Job>(1);
        let (done, results) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("{service}-txn"))
            .spawn(move || {
                for job in job_queue {
                    let settled = run(&producer, &job);
                    if done.send(settled).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Task(format!("starting the committer thread: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
        })
    }

    pub fn submit(&self, job: Job) -> Result<()> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| Error::Task("the committer thread is gone".into()))
    }

    /// Blocks until the submitted transaction is settled.
    pub fn wait(&self) -> Settled {
        self.results
            .recv()
            .unwrap_or_else(|_| Settled::Fatal(Error::Task("the committer thread is gone".into())))
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the job queue ends the thread, which drops (and so flushes) the producer.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(producer: &BaseProducer, job: &Job) -> Settled {
    let started = Instant::now();
    match commit(producer, job) {
        Ok(()) => Settled::Committed(started.elapsed()),
        Err(TxnError::Abortable(err)) => match abort(producer) {
            Ok(()) => Settled::Aborted(err),
            Err(source) => Settled::Fatal(Error::Fatal {
                during: "aborting a transaction",
                source,
            }),
        },
        Err(TxnError::Fatal(during, source)) => Settled::Fatal(Error::Fatal { during, source }),
    }
}

/// Aborts the open transaction, serving delivery reports while it does.
///
/// `abort_transaction` purges what is queued and then flushes: it waits for the delivery
/// report of every record produced in the transaction. rust-rdkafka receives those reports on
/// an event queue only the application's `poll` serves, so a single blocking abort waits for
/// reports nobody reads and times out (librdkafka: "the event queue must be polled for
/// delivery report events in a separate thread or prior to calling abort"). That timeout was
/// treated as fatal, and a transaction left open that long also outlives
/// `transaction.timeout.ms`, so the coordinator fences the producer: the process exited after
/// every aborted transaction with records in flight (seen under `cargo xtask chaos`). So the
/// abort runs in short steps — a timeout is retriable, and librdkafka resumes the abort on
/// the next call — with the reports served between them; after a broker restart the records
/// in flight to the dead broker settle when their requests time out.
fn abort(producer: &BaseProducer) -> std::result::Result<(), KafkaError> {
    let deadline = Instant::now() + ABORT_DEADLINE;
    loop {
        match producer.abort_transaction(ABORT_STEP) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e))
                if (e.is_retriable() || e.code() == RDKafkaErrorCode::OperationTimedOut)
                    && !e.is_fatal()
                    && Instant::now() < deadline =>
            {
                serve(producer, Instant::now() + ABORT_STEP, || {
                    producer.in_flight_count() > 0
                });
                tracing::debug!(error = %e, "abort in progress; serving delivery reports");
            }
            Err(e) => return Err(e),
        }
    }
}

fn commit(producer: &BaseProducer, job: &Job) -> Result<(), TxnError> {
    let started = Instant::now();
    producer
        .begin_transaction()
        .map_err(|e| classify(e, "beginning a transaction"))?;
    for output in &job.outputs {
        send(producer, output)?;
    }
    let offsets = offsets_list(&job.offsets);
    let produced = Instant::now();
    retry("sending offsets to the transaction", || {
        producer.send_offsets_to_transaction(&offsets, &job.group, CALL_TIMEOUT)
    })?;
    let offsets_sent = Instant::now();
    await_deliveries(producer);
    retry("committing a transaction", || {
        producer.commit_transaction(CALL_TIMEOUT)
    })?;
    tracing::debug!(
        records = job.outputs.len(),
        produce_ms = produced.duration_since(started).as_millis() as u64,
        send_offsets_ms = offsets_sent.duration_since(produced).as_millis() as u64,
        commit_ms = offsets_sent.elapsed().as_millis() as u64,
        "transaction committed"
    );
    Ok(())
}

/// `commit_transaction` first flushes, and rust-rdkafka's flush waits in steps of a full
/// 100 ms (`BaseProducer::poll` runs to its deadline), which capped a transaction at ~10 per
/// second. Waiting for the deliveries here ([`serve`]) leaves that flush nothing to do.
fn await_deliveries(producer: &BaseProducer) {
    serve(producer, Instant::now() + CALL_TIMEOUT, || {
        producer.in_flight_count() > 0
    });
}

/// Serves delivery reports while `waiting()` holds, until `deadline`, without spinning.
///
/// `BaseProducer::poll(t)` runs until its deadline, passing librdkafka the time left in whole
/// milliseconds: its last millisecond is a busy loop, and a 1 ms poll is nothing else. The
/// committer waited for deliveries that way and spent a sixth of the classifier's CPU in
/// `clock_gettime` (`perf record` under the load harness), time the co-located broker and
/// the consumer thread needed. So: take what has arrived (a poll of zero is one non-blocking
/// call, serving at most one report), again while that serves something, and sleep
/// [`DELIVERY_NAP`] when it did not.
fn serve(producer: &BaseProducer, deadline: Instant, waiting: impl Fn() -> bool) {
    while waiting() && Instant::now() < deadline {
        let before = producer.in_flight_count();
        producer.poll(Duration::ZERO);
        if waiting() && producer.in_flight_count() == before {
            std::thread::sleep(DELIVERY_NAP);
        }
    }
}

fn send(producer: &BaseProducer, output: &OutputRecord) -> Result<(), TxnError> {
    let mut record = output.base_record();
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                // The local queue is full: serve delivery reports to make room.
                record = returned;
                producer.poll(Duration::ZERO);
                std::thread::sleep(DELIVERY_NAP);
            }
            Err((err, _)) => return Err(classify(err, "producing")),
        }
    }
}

enum TxnError {
    Abortable(KafkaError),
    Fatal(&'static str, KafkaError),
}

fn classify(err: KafkaError, during: &'static str) -> TxnError {
    match &err {
        KafkaError::Transaction(e) if e.is_fatal() => TxnError::Fatal(during, err),
        _ => TxnError::Abortable(err),
    }
}

fn retry(
    during: &'static str,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), TxnError> {
    let mut attempt = 0;
    loop {
        match call() {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt + 1 < RETRIES => {
                attempt += 1;
                tracing::debug!(during, error = %e, attempt, "retrying");
            }
            Err(err) => return Err(classify(err, during)),
        }
    }
}
