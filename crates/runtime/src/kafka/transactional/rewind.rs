//! Rewinds: re-reading a partition's recent history before new records are judged (a
//! stateful transform's [`Rewind`] on assignment), and going back to the committed offsets
//! after an aborted transaction. Offset lookups retry retriable errors for up to
//! [`LOOKUP_DEADLINE`] ([`retry`](crate::kafka::retry)); the loop does not poll meanwhile.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::records::{InputRecord, Partition};
use crate::kafka::retry::{MIN_BACKOFF, first_partition_error, retry_retriable};
use crate::sync::lock;
use crate::{Error, Result};

use super::{CALL_TIMEOUT, Rewind, TransactionalLoop, Transform};

/// How long a rewind's offset lookups retry retriable errors. The loop does not poll meanwhile,
/// so this stays well below librdkafka's `max.poll.interval.ms` (300 s by default).
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(120);
/// How long a rewind's seek of a just-assigned partition waits for librdkafka to start
/// fetching it.
const SEEK_DEADLINE: Duration = Duration::from_secs(30);

impl<T: Transform> TransactionalLoop<T> {
    /// Seeks each partition back to its rewind point and marks what lies below the committed
    /// offset as replay.
    pub(super) fn rewind(&mut self, rewinds: Vec<(Partition, Rewind)>) -> Result<()> {
        if rewinds.is_empty() {
            return Ok(());
        }
        let mut committed_query = TopicPartitionList::new();
        let mut times_query = TopicPartitionList::new();
        for (p, Rewind::ToTimestamp(ts)) in &rewinds {
            committed_query.add_partition(&p.topic, p.partition);
            let _ = times_query.add_partition_offset(&p.topic, p.partition, Offset::Offset(*ts));
        }
        let committed = self.lookup("reading committed offsets for a rewind", || {
            self.consumer
                .committed_offsets(committed_query.clone(), CALL_TIMEOUT)
        })?;
        let from = self.lookup("looking up offsets by time", || {
            self.consumer
                .offsets_for_times(times_query.clone(), CALL_TIMEOUT)
        })?;
        for (p, _) in rewinds {
            let committed = committed
                .find_partition(&p.topic, p.partition)
                .map(|e| e.offset());
            if let Some(Offset::Offset(committed)) = committed {
                self.committed.insert(p.clone(), committed);
            }
            let from = from
                .find_partition(&p.topic, p.partition)
                .map(|e| e.offset());
            // Nothing committed: every record is new anyway. No record after the time: nothing
            // to replay.
            if let (Some(Offset::Offset(committed)), Some(Offset::Offset(from))) = (committed, from)
                && from < committed
            {
                if !self.seek_assigned(&p, from)? {
                    // Revoked meanwhile: its new owner rewinds it.
                    continue;
                }
                tracing::info!(service = %self.spec.service, partition = %p, replay = committed - from, "replaying history");
                self.replay_until.insert(p, committed);
            }
        }
        Ok(())
    }

    /// Seeks a partition just assigned to `offset`; `Ok(false)` when it was revoked meanwhile.
    /// librdkafka starts fetching an assigned partition on its own threads, and a seek before
    /// that has happened fails with `ERR__STATE` (seen after a `kill -9`: "Seek error: Local:
    /// Erroneous state", which stopped the replacement): retried while the partition is ours,
    /// for up to [`SEEK_DEADLINE`].
    fn seek_assigned(&self, p: &Partition, offset: i64) -> Result<bool> {
        let started = Instant::now();
        loop {
            match self
                .consumer
                .seek(&p.topic, p.partition, Offset::Offset(offset), CALL_TIMEOUT)
            {
                Ok(()) => return Ok(true),
                Err(err) if crate::kafka::rebalance::is_revoked_state(&err) => {
                    if !lock(&self.assignment).owns(p) {
                        return Ok(false);
                    }
                    if started.elapsed() >= SEEK_DEADLINE {
                        return Err(Error::Kafka {
                            during: "seeking for a rewind",
                            source: err,
                        });
                    }
                    std::thread::sleep(MIN_BACKOFF);
                }
                Err(source) => {
                    return Err(Error::Kafka {
                        during: "seeking for a rewind",
                        source,
                    });
                }
            }
        }
    }

    /// A blocking offset lookup, retried while its errors are retriable (also an error on one
    /// of the listed partitions), for up to [`LOOKUP_DEADLINE`].
    fn lookup(
        &self,
        during: &'static str,
        mut call: impl FnMut() -> KafkaResult<TopicPartitionList>,
    ) -> Result<TopicPartitionList> {
        retry_retriable(&self.spec.service, during, LOOKUP_DEADLINE, || {
            call().and_then(|list| first_partition_error(&list).map(|()| list))
        })
    }

    /// Whether every rewound partition has been replayed up to its committed offset. A
    /// partition whose last records below it are gone (retention, compaction) never shows the
    /// record that ends its replay, so the consumer's position decides too.
    pub(super) fn replay_done(&mut self) -> bool {
        if self.replay_until.is_empty() {
            return true;
        }
        if let Ok(position) = self.consumer.position() {
            self.replay_until.retain(|p, until| {
                !matches!(
                    position.find_partition(&p.topic, p.partition).map(|e| e.offset()),
                    Some(Offset::Offset(at)) if at >= *until
                )
            });
        }
        self.replay_until.is_empty()
    }

    pub(super) fn is_replay(&mut self, record: &InputRecord) -> bool {
        if self.replay_until.is_empty() {
            return false;
        }
        let p = record.partition_id();
        match self.replay_until.get(&p) {
            Some(until) if record.offset < *until => {
                if record.offset + 1 >= *until {
                    // The last record to replay: the partition is live from here on.
                    self.replay_until.remove(&p);
                }
                true
            }
            Some(_) => {
                self.replay_until.remove(&p);
                false
            }
            None => false,
        }
    }

    /// After an abort: every owned partition back to its committed offset, and the transform
    /// told to start over (its state may hold the aborted batch).
    pub(super) fn rewind_to_committed(&mut self) -> Result<()> {
        let owned = lock(&self.assignment).owned();
        self.replay_until.clear();
        if owned.is_empty() {
            return Ok(());
        }
        let mut query = TopicPartitionList::new();
        for p in &owned {
            query.add_partition(&p.topic, p.partition);
        }
        let committed = self.lookup("reading committed offsets", || {
            self.consumer.committed_offsets(query.clone(), CALL_TIMEOUT)
        })?;
        self.committed.clear();
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                self.committed
                    .insert(Partition::new(e.topic(), e.partition()), o);
            }
            // No commit yet: the group starts from the beginning (`auto.offset.reset=earliest`).
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            match self
                .consumer
                .seek(e.topic(), e.partition(), offset, CALL_TIMEOUT)
            {
                Ok(()) => {}
                // Revoked meanwhile: its new owner starts from the committed offset anyway.
                Err(err) if crate::kafka::rebalance::is_revoked_state(&err) => {}
                Err(err) => {
                    return Err(Error::Kafka {
                        during: "seeking back after an abort",
                        source: err,
                    });
                }
            }
        }
        self.transform.on_revoked(&owned);
        let rewinds = self.transform.on_assigned(&owned);
        self.rewind(rewinds)
    }
}
