//! Rebalances: which partitions this instance owns, and what the service must hear about it.
//!
//! librdkafka runs rebalance callbacks inside `poll`, on the polling thread. They are kept
//! small: [`HarnessContext`] records the change in an [`Assignment`] (pure bookkeeping, tested
//! below) which the consumer loop drains right after the poll returns, before it touches another
//! record — so the loop can drop batched records of revoked partitions and run the service's
//! assignment hook. The one thing that must happen *inside* the callback, before the partition
//! is handed to another member, is the at-least-once services' final commit of their finished
//! work ([`OffsetLedger::revoke`]); the context does it when a ledger is attached.
//!
//! With `cooperative-sticky` assignment, callbacks carry only the partitions that change hands;
//! the rest keep flowing through a rebalance.
//!
//! Where a newly assigned partition starts is decided here, not by librdkafka: the callback
//! reads the group's committed offsets itself and assigns each partition at its committed
//! offset, or at its beginning when the group has none ([`HarnessContext::start_positions`]).
//! librdkafka's own lookup (librdkafka 2.10, and its master as of 2026-07) starts a partition
//! *from `auto.offset.reset`* when its committed offset is blocked by an open transaction
//! (`UNSTABLE_OFFSET_COMMIT`, KIP-447) and the assignment changes while it waits: it puts the
//! partition back as pending with the broker's `-1` as offset, which it then reads as "nothing
//! committed" (`rdkafka_assignment.c`, `rd_kafka_assignment_apply_offsets`). A classifier
//! killed with a transaction open leaves that transaction's offsets pending until the broker
//! expires it (`transaction.timeout.ms`), so its successor, in a group that keeps rebalancing,
//! re-read whole partitions from the start and published every output again — an
//! exactly-once violation the chaos harness found (RELIABILITY.md). Our lookup tells "unstable,
//! wait" from "nothing committed" and waits, for up to [`START_DEADLINE`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::kafka::records::{InputRecord, Partition};
use crate::kafka::retry::{first_partition_error, retry_retriable};
use crate::kafka::watermark::OffsetLedger;
use crate::sync::lock;
use crate::telemetry::metrics::ServiceMetrics;
use crate::{Error, Result};

/// How long the assignment callback waits for the committed offsets of the partitions it is
/// handed. An open transaction of an instance that died holds them (`UNSTABLE_OFFSET_COMMIT`)
/// until the broker aborts it: `transaction.timeout.ms` (60 s by default here) plus up to
/// the broker's `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10 s). The
/// callback runs inside `poll`, so this stays well below `max.poll.interval.ms` (300 s by
/// default), past which the group would drop this member.
pub const START_DEADLINE: Duration = Duration::from_secs(120);
/// Timeout of one committed-offsets call within [`START_DEADLINE`] (librdkafka retries an
/// unstable answer within it).
const START_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The partitions this instance owns, and the changes the loop has not handled yet.
#[derive(Debug, Default)]
pub struct Assignment {
    owned: BTreeSet<Partition>,
    pending: Changes,
    joined: bool,
    /// Why an assignment could not be started (its committed offsets stayed unknown): the
    /// loop must stop, its partitions were assigned paused.
    failure: Option<Error>,
}

/// Partition changes since the loop last looked, in the order they must be handled: revocations
/// first (a partition revoked and assigned again in one poll appears in both).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Partitions taken away, to be handled first.
    pub revoked: Vec<Partition>,
    /// Partitions newly owned.
    pub assigned: Vec<Partition>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty() && self.assigned.is_empty()
    }

    /// Drops batched records of revoked partitions: they were not processed, their offsets were
    /// not committed, and their new owner reads them from the committed offset.
    pub fn drop_revoked(&self, batch: &mut Vec<InputRecord>) {
        if !self.revoked.is_empty() {
            batch.retain(|r| {
                !self
                    .revoked
                    .iter()
                    .any(|p| p.partition == r.partition && p.topic == r.topic)
            });
        }
    }
}

impl Assignment {
    /// Records partitions handed to this member (a rebalance callback).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = Partition>) {
        self.joined = true;
        for p in partitions {
            if self.owned.insert(p.clone()) {
                self.pending.assigned.push(p);
            }
        }
    }

    /// Records partitions taken from this member (a rebalance callback).
    pub fn revoke(&mut self, partitions: impl IntoIterator<Item = Partition>) {
        for p in partitions {
            if self.owned.remove(&p) {
                // Assigned and revoked before the loop saw either: the loop need not hear of it,
                // except that records it already batched for the partition must go.
                self.pending.assigned.retain(|a| a != &p);
                self.pending.revoked.push(p);
            }
        }
    }

    /// Everything revoked at once (shutdown, or an abort that rewinds every partition).
    pub fn owned(&self) -> Vec<Partition> {
        self.owned.iter().cloned().collect()
    }

    /// Whether this instance owns `partition`.
    pub fn owns(&self, partition: &Partition) -> bool {
        self.owned.contains(partition)
    }

    /// Whether this instance owns partition `partition` of `topic`.
    pub fn owns_record(&self, topic: &str, partition: i32) -> bool {
        // Avoids allocating a `Partition` per record on the hot path.
        self.owned
            .iter()
            .any(|p| p.partition == partition && p.topic == topic)
    }

    /// Whether the group has handed this member an assignment (possibly empty) at least once.
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// The changes since the last call, for the loop to handle.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.pending)
    }

    /// Records that partitions could not be started; the loop stops at its next look.
    pub fn fail(&mut self, error: Error) {
        self.failure.get_or_insert(error);
    }

    /// `Err` once an assignment could not be started: the loop must stop (a restart joins
    /// again and looks again).
    pub fn check(&mut self) -> Result<()> {
        self.failure.take().map_or(Ok(()), Err)
    }
}

/// Shared between the librdkafka callbacks and the consumer loop.
pub type SharedAssignment = Arc<Mutex<Assignment>>;

/// What an at-least-once consumer runs after each successful commit, with the offsets it
/// committed (from the loop, and from the revocation callback).
pub type CommitHook = Arc<dyn Fn(&[(Partition, i64)]) + Send + Sync>;

/// The consumer context every auditflow consumer runs with.
pub struct HarnessContext {
    service: String,
    assignment: SharedAssignment,
    /// Present for at-least-once consumers: revocation commits their finished work.
    ledger: Option<Arc<Mutex<OffsetLedger>>>,
    /// Told of what revocation committed.
    on_commit: Option<CommitHook>,
    metrics: ServiceMetrics,
}

impl HarnessContext {
    /// A context for `service`'s consumer, reporting lag and assigned partitions to `metrics`.
    pub fn new(service: &str, metrics: ServiceMetrics) -> Self {
        Self {
            service: service.to_owned(),
            assignment: SharedAssignment::default(),
            ledger: None,
            on_commit: None,
            metrics,
        }
    }

    /// Commits the finished work of `ledger` when partitions are revoked (at-least-once
    /// consumers), then tells `on_commit` what it committed.
    pub fn with_ledger(mut self, ledger: Arc<Mutex<OffsetLedger>>, on_commit: CommitHook) -> Self {
        self.ledger = Some(ledger);
        self.on_commit = Some(on_commit);
        self
    }

    /// The assignment the callbacks keep, shared with the loop.
    pub fn assignment(&self) -> &SharedAssignment {
        &self.assignment
    }

    /// Sets each partition of `tpl` (just assigned) to start at the group's committed offset, or
    /// at its beginning when the group has committed none, waiting while an open transaction
    /// makes the committed offset unstable (see the module documentation).
    fn start_positions(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
    ) -> Result<()> {
        let mut query = TopicPartitionList::with_capacity(tpl.count());
        for e in tpl.elements() {
            query.add_partition(e.topic(), e.partition());
        }
        let started = Instant::now();
        let committed = retry_retriable(
            &self.service,
            "reading the committed offsets of assigned partitions",
            START_DEADLINE,
            || {
                consumer
                    .committed_offsets(query.clone(), START_CALL_TIMEOUT)
                    .and_then(|list| first_partition_error(&list).map(|()| list))
            },
        )?;
        let waited = started.elapsed();
        if waited >= Duration::from_secs(1) {
            tracing::info!(
                service = %self.service,
                partitions = query.count(),
                waited_s = waited.as_secs_f64(),
                "waited for committed offsets (an open transaction of a previous owner)"
            );
        }
        for e in committed.elements() {
            let start = match e.offset() {
                Offset::Offset(at) => Offset::Offset(at),
                // Nothing committed: the partition is new to the group.
                _ => Offset::Beginning,
            };
            tpl.set_partition_offset(e.topic(), e.partition(), start)
                .map_err(|source| Error::Kafka {
                    during: "setting where assigned partitions start",
                    source,
                })?;
        }
        Ok(())
    }

    fn commit_revoked(&self, consumer: &BaseConsumer<Self>, revoked: &[Partition]) {
        let Some(ledger) = &self.ledger else { return };
        let commits = lock(ledger).revoke(revoked);
        if commits.is_empty() || consumer.assignment_lost() {
            // A lost assignment cannot commit (another member may already own it).
            return;
        }
        match consumer.commit(&offsets_list(&commits), CommitMode::Sync) {
            Ok(()) => {
                if let Some(hook) = &self.on_commit {
                    hook(&commits);
                }
            }
            // The partition is already gone (ERR__STATE) or the group moved on: the new owner
            // redelivers from the last commit, and idempotent writes absorb the repeat.
            Err(err) => {
                tracing::warn!(service = %self.service, error = %err, "commit on revoke failed; records will be redelivered")
            }
        }
    }
}

impl ClientContext for HarnessContext {
    fn stats(&self, statistics: Statistics) {
        self.metrics.record_lag(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(service = %self.service, %error, reason, "kafka client error");
    }
}

impl ConsumerContext for HarnessContext {
    /// rust-rdkafka's rebalance (pre-rebalance hook, assign or unassign, post-rebalance hook),
    /// with the start of every assigned partition decided by [`Self::start_positions`]. When
    /// that fails the partitions are assigned paused and the loop is told to stop.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let started = self.start_positions(consumer, tpl);
            let rebalance = Rebalance::Assign(tpl);
            self.pre_rebalance(consumer, &rebalance);
            let assigned = if cooperative {
                consumer.incremental_assign(tpl)
            } else {
                consumer.assign(tpl)
            };
            if let Err(error) = &assigned {
                tracing::error!(service = %self.service, %error, "assigning partitions failed");
            }
            if let Err(error) = started {
                tracing::error!(service = %self.service, %error, "cannot tell where assigned partitions start; stopping");
                if let Err(error) = consumer.pause(tpl) {
                    tracing::warn!(service = %self.service, %error, "pausing unstarted partitions failed");
                }
                lock(&self.assignment).fail(error);
            }
            self.post_rebalance(consumer, &rebalance);
            return;
        }
        let rebalance = if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            Rebalance::Revoke(tpl)
        } else {
            Rebalance::Error(KafkaError::Rebalance(err.into()))
        };
        self.pre_rebalance(consumer, &rebalance);
        let unassigned = if cooperative {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(error) = unassigned {
            tracing::error!(service = %self.service, %error, "unassigning partitions failed");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions_of(tpl);
            tracing::info!(service = %self.service, partitions = revoked.len(), "partitions revoked");
            self.commit_revoked(consumer, &revoked);
            self.metrics.forget_lag(&revoked);
            lock(&self.assignment).revoke(revoked);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned = partitions_of(tpl);
                tracing::info!(service = %self.service, partitions = assigned.len(), "partitions assigned");
                let mut assignment = lock(&self.assignment);
                assignment.assign(assigned);
                self.metrics.set_assigned_partitions(assignment.owned.len());
            }
            Rebalance::Revoke(_) => {
                self.metrics
                    .set_assigned_partitions(lock(&self.assignment).owned.len());
            }
            Rebalance::Error(err) => {
                tracing::warn!(service = %self.service, error = %err, "rebalance error");
            }
        }
    }
}

pub(crate) fn partitions_of(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements()
        .iter()
        .map(|e| Partition::new(e.topic(), e.partition()))
        .collect()
}

pub(crate) fn offsets_list(offsets: &[(Partition, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (p, offset) in offsets {
        // Only fails for an invalid offset value, which these are not.
        let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(*offset));
    }
    tpl
}

/// The consumer's position in each partition `assignment` owns, where it has one: past every
/// record the consumer has handed out, and past the offsets it skipped that carry no record
/// (transaction markers, compacted gaps). Both loops commit it when they are idle.
pub(crate) fn owned_positions<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    assignment: &SharedAssignment,
) -> Vec<(Partition, i64)> {
    let Ok(position) = consumer.position() else {
        return Vec::new();
    };
    let owned = lock(assignment);
    position
        .elements()
        .iter()
        .filter(|e| owned.owns_record(e.topic(), e.partition()))
        .filter_map(|e| match e.offset() {
            Offset::Offset(at) => Some((Partition::new(e.topic(), e.partition()), at)),
            _ => None,
        })
        .collect()
}

/// Whether an offset-commit error only says the partition was revoked under us: librdkafka
/// answers `ERR__STATE` for an offset of a partition revoked a moment ago, which is harmless.
pub(crate) fn is_revoked_state(err: &KafkaError) -> bool {
    matches!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::State))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        Partition::new("user.events", n)
    }

    #[test]
    fn an_empty_assignment_still_means_joined() {
        let mut a = Assignment::default();
        assert!(!a.joined());
        a.assign([]);
        assert!(a.joined());
        assert!(a.take_changes().is_empty());
    }

    #[test]
    fn changes_are_reported_once() {
        let mut a = Assignment::default();
        a.assign([p(0), p(1)]);
        assert_eq!(
            a.take_changes(),
            Changes {
                revoked: vec![],
                assigned: vec![p(0), p(1)]
            }
        );
        assert!(a.take_changes().is_empty());
        a.revoke([p(1)]);
        assert_eq!(
            a.take_changes(),
            Changes {
                revoked: vec![p(1)],
                assigned: vec![]
            }
        );
        assert!(a.owns(&p(0)) && !a.owns(&p(1)));
        assert!(a.owns_record("user.events", 0));
        assert!(!a.owns_record("user.events", 1));
    }

    #[test]
    fn revoke_then_reassign_before_the_loop_looks_reports_both() {
        let mut a = Assignment::default();
        a.assign([p(0)]);
        a.take_changes();
        a.revoke([p(0)]);
        a.assign([p(0)]);
        // The loop drops what it batched for p0 and treats p0 as freshly assigned.
        assert_eq!(
            a.take_changes(),
            Changes {
                revoked: vec![p(0)],
                assigned: vec![p(0)]
            }
        );
    }

    #[test]
    fn assign_then_revoke_before_the_loop_looks_reports_only_the_revocation() {
        let mut a = Assignment::default();
        a.assign([p(2)]);
        a.revoke([p(2)]);
        assert_eq!(
            a.take_changes(),
            Changes {
                revoked: vec![p(2)],
                assigned: vec![]
            }
        );
    }

    #[test]
    fn batched_records_of_revoked_partitions_are_dropped() {
        let record = |partition: i32, offset: i64| InputRecord {
            topic: "user.events".into(),
            partition,
            offset,
            key: None,
            payload: None,
            headers: vec![],
            timestamp_ms: None,
        };
        let mut batch = vec![record(0, 1), record(1, 1), record(0, 2), record(2, 1)];
        let changes = Changes {
            revoked: vec![p(0), Partition::new("other", 2)],
            assigned: vec![],
        };
        changes.drop_revoked(&mut batch);
        let left: Vec<(i32, i64)> = batch.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(left, [(1, 1), (2, 1)]);
    }

    #[test]
    fn revoking_what_is_not_owned_is_ignored() {
        let mut a = Assignment::default();
        a.revoke([p(3)]);
        assert!(a.take_changes().is_empty());
    }
}
