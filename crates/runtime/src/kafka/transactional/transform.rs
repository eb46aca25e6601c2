//! [`Transform`], what a service plugs into the exactly-once loop; [`Rewind`], where it asks
//! the loop to re-read a partition from; and [`OnCommit`], what it asks the loop to do once
//! the work it prepared has committed.

use crate::kafka::records::{InputRecord, OutputRecord, Partition, Transformed};

/// What a service plugs into the loop.
pub trait Transform: Send {
    /// What one record becomes. Must not panic on any input, and must be a function of the
    /// record (and of state rebuilt by `replay`), so a redelivered batch yields the same outputs.
    fn transform(&mut self, record: &InputRecord) -> Transformed;

    /// What the batch just transformed adds as a whole (the classifier's summary of what it
    /// sampled out): called once after every batch's records, its outputs produced in that
    /// batch's transaction. After an abort the batch is transformed again and this asked
    /// again, so it must describe only the records transformed since the last call.
    fn end_batch(&mut self) -> Vec<OutputRecord> {
        Vec::new()
    }

    /// Partitions newly owned — after a rebalance, and again for every owned partition after an
    /// aborted transaction. Return a [`Rewind`] for partitions whose recent history must be
    /// re-read (through [`Transform::replay`]) before new records are judged.
    fn on_assigned(&mut self, _partitions: &[Partition]) -> Vec<(Partition, Rewind)> {
        Vec::new()
    }

    /// Partitions no longer owned (or about to be re-read after an abort): drop their state.
    fn on_revoked(&mut self, _partitions: &[Partition]) {}

    /// A record below the committed offset, re-read because of a [`Rewind`]: rebuild state,
    /// emit nothing (its outputs were committed before).
    fn replay(&mut self, _record: &InputRecord) {}

    /// The wall clock (ms since the epoch), about every [`TICK_INTERVAL`](super::TICK_INTERVAL), also while the
    /// inputs are idle; never while a partition is being replayed. For outputs due at a time
    /// rather than on a record. They are produced in a transaction like a record's; after an
    /// abort the transform is rebuilt and a later tick emits them again, so they must be safe
    /// to write twice.
    fn on_tick(&mut self, _now_ms: i64) -> Vec<OutputRecord> {
        Vec::new()
    }

    /// What to do once the work prepared since the last call (a batch's records, a tick's
    /// outputs) has committed: typically recording the service's own metrics, which then
    /// count committed work only. Asked after each batch and tick; run when that transaction
    /// commits (at once when there is none), dropped unrun when it aborts (the work is redone
    /// and asked for again).
    fn on_commit(&mut self) -> Option<OnCommit> {
        None
    }
}

/// Where to re-read a partition from before judging new records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewind {
    /// The first record with a timestamp at or after this (ms since the epoch); the security
    /// monitor asks for "now − 10 minutes" to rebuild its windows.
    ToTimestamp(i64),
}

/// Work a [`Transform`] hands the loop to run once a transaction commits
/// ([`Transform::on_commit`]).
pub type OnCommit = Box<dyn FnOnce() + Send>;
