//! The sealer: builds each partition's tamper-evident log from the leaves the sink stored, and
//! signs its checkpoints (docs/integrity.md).
//!
//! It seals only below the offsets the sink's group committed: every record below a committed
//! offset is durably stored (the at-least-once loop's guarantee), by this instance or an
//! earlier owner of the partition, so a checkpoint never covers a record that is not stored,
//! and a crash or a rebalance loses no leaf — the next sealer reads them from `log_leaves`.
//! The log's state moves only by a lightweight transaction on its last offset
//! ([`Store::advance_log`]): when two sealers race (an old and a new owner mid-rebalance) one
//! loses, reads the state again and carries on from there. Both would have signed the same
//! checkpoints: what they sign is a function of the leaves ([`LogTail::extend`]).
//!
//! For each log with something new below its committed offset: read the tail and the leaves
//! after it, extend, publish the new checkpoints to the anchor topic and wait for the brokers'
//! acknowledgement, store them, then move the tail. A crash between any two steps repeats
//! identical work: the same checkpoints published again (the anchor holds duplicates, which
//! `auditflow verify` takes as one) and stored again.
//!
//! The loop's commit hook only records the offsets and wakes the task: it never blocks the
//! consumer. A failure (the database or Kafka unavailable) is retried with backoff; the
//! at-least-once loop is unaffected, the log just falls behind (what `verify` reports as not
//! yet covered) and catches up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditflow_core::checkpoint::{LogId, SignedCheckpoint};
use auditflow_core::config::IntegritySettings;
use auditflow_runtime::Partition;
use auditflow_runtime::kafka::publisher::Publisher;
use auditflow_store::integrity::{CheckpointRule, LogTail, SigningKey};
use auditflow_store::{Store, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long a publish may wait for the brokers' acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// First and largest pause after a failed pass.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// The handle the writer and the service keep: tell it what was committed, ask it what is
/// sealed, and finish it at shutdown.
#[derive(Clone)]
pub(crate) struct Sealer {
    shared: Arc<Shared>,
}

struct Shared {
    /// Per log, the committed offset to seal below.
    targets: Mutex<BTreeMap<LogId, i64>>,
    /// Per log, the last offset known to be in the log (what the writer need not store again).
    sealed: Mutex<HashMap<LogId, i64>>,
    wake: Notify,
    closing: std::sync::atomic::AtomicBool,
}

/// What the task needs.
pub(crate) struct SealerParts {
    pub(crate) store: Arc<Store>,
    pub(crate) key: SigningKey,
    pub(crate) settings: IntegritySettings,
    pub(crate) publisher: Publisher,
    pub(crate) topic: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sealer {
    /// Starts the sealing task.
    pub(crate) fn spawn(parts: SealerParts) -> (Self, JoinHandle<()>) {
        let shared = Arc::new(Shared {
            targets: Mutex::new(BTreeMap::new()),
            sealed: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        let task = tokio::spawn(run(shared.clone(), parts));
        (Self { shared }, task)
    }

    /// The loop committed `offsets`: seal up to there (never blocks).
    pub(crate) fn committed(&self, offsets: &[(Partition, i64)]) {
        {
            let mut targets = lock(&self.shared.targets);
            for (p, offset) in offsets {
                let log = LogId {
                    topic: p.topic.clone(),
                    partition: p.partition,
                };
                let target = targets.entry(log).or_insert(*offset);
                *target = (*target).max(*offset);
            }
        }
        self.shared.wake.notify_one();
    }

    /// The last offset of `log` known to be sealed into it, if any.
    pub(crate) fn sealed(&self, log: &LogId) -> Option<i64> {
        lock(&self.shared.sealed).get(log).copied()
    }

    /// Notes what a read of the log's state found (the writer's first look at a partition).
    pub(crate) fn note_sealed(&self, log: &LogId, last_offset: i64) {
        self.shared.note_sealed(log, last_offset);
    }

    /// Makes one last pass over what was committed, then stops the task.
    pub(crate) fn finish(&self) {
        self.shared
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

impl Shared {
    /// `log` is sealed at least up to `last_offset` (it only ever grows).
    fn note_sealed(&self, log: &LogId, last_offset: i64) {
        let mut sealed = lock(&self.sealed);
        let known = sealed.entry(log.clone()).or_insert(last_offset);
        *known = (*known).max(last_offset);
    }
}

async fn run(shared: Arc<Shared>, parts: SealerParts) {
    let rule = CheckpointRule::of(&parts.settings);
    let mut tails: HashMap<LogId, LogTail> = HashMap::new();
    let mut backoff = BACKOFF.0;
    loop {
        shared.wake.notified().await;
        loop {
            let closing = shared.closing.load(std::sync::atomic::Ordering::SeqCst);
            let targets: Vec<(LogId, i64)> = lock(&shared.targets)
                .iter()
                .map(|(log, target)| (log.clone(), *target))
                .collect();
            let mut failed = false;
            for (log, target) in targets {
                match seal(&parts, rule, &mut tails, &log, target).await {
                    Ok(last) => {
                        if let Some(last) = last {
                            shared.note_sealed(&log, last);
                        }
                    }
                    Err(e) => {
                        // The cached tail may be stale: read it again next time.
                        tails.remove(&log);
                        failed = true;
                        tracing::warn!(log = %log, error = %e, "sealing the log failed; will retry");
                    }
                }
            }
            if closing {
                return;
            }
            if !failed {
                backoff = BACKOFF.0;
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shared.wake.notified() => {}
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }
}

/// Why one log could not be sealed this time.
#[derive(Debug, thiserror::Error)]
enum SealError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Extend(#[from] auditflow_store::integrity::ExtendError),
    #[error("publishing checkpoints: {0}")]
    Publish(auditflow_runtime::Error),
    #[error("another sealer moved the log first")]
    Lost,
}

/// Seals `log` below `target`; the last offset now in the log.
async fn seal(
    parts: &SealerParts,
    rule: CheckpointRule,
    tails: &mut HashMap<LogId, LogTail>,
    log: &LogId,
    target: i64,
) -> Result<Option<i64>, SealError> {
    let store = &parts.store;
    let known = match tails.get(log) {
        Some(tail) => Some(tail.clone()),
        None => store.log_tail(log).await?,
    };
    let (tail, from, stored) = match known {
        Some(tail) => {
            let from = tail.last_offset + 1;
            (tail, from, true)
        }
        None => match store.log_start(log, target).await? {
            Some(start) => (LogTail::empty(log.clone()), start, false),
            None => return Ok(None),
        },
    };
    // Nothing new below the target (`log_leaves` reads nothing for an empty range).
    let leaves = store.log_leaves(log, from, target).await?;
    if leaves.is_empty() {
        let last = stored.then_some(tail.last_offset);
        tails.insert(log.clone(), tail);
        return Ok(last);
    }
    let mut next = tail.clone();
    let checkpoints = next.extend(&leaves, rule, parts.key.seed())?;
    publish(parts, &checkpoints).await?;
    store.store_checkpoints(&checkpoints).await?;
    let from_offset = stored.then_some(tail.last_offset);
    if !store.advance_log(from_offset, &next).await? {
        return Err(SealError::Lost);
    }
    tracing::debug!(log = %log, size = next.size, last_offset = next.last_offset, checkpoints = checkpoints.len(), "log sealed");
    let last = next.last_offset;
    tails.insert(log.clone(), next);
    Ok(Some(last))
}

/// Publishes `checkpoints` to the anchor topic, keyed by their log, waiting for each
/// acknowledgement in order (so the topic holds a log's checkpoints in chain order).
async fn publish(parts: &SealerParts, checkpoints: &[SignedCheckpoint]) -> Result<(), SealError> {
    for cp in checkpoints {
        let key = cp.checkpoint.log.to_string();
        let payload = serde_json::to_vec(cp).expect("a checkpoint serializes");
        parts
            .publisher
            .publish(&parts.topic, key.as_bytes(), &payload, PUBLISH_TIMEOUT)
            .await
            .map_err(SealError::Publish)?;
    }
    Ok(())
}
