//! Contiguous-completion offset tracking for the at-least-once services (sink, causality
//! indexer).
//!
//! Writes finish out of order; a partition's offset may be committed only up to the highest
//! offset below which *every* consumed record is durably written (docs/operations.md). Offsets are
//! not contiguous in Kafka (transaction markers and compaction leave gaps), so a [`Watermark`]
//! tracks the offsets actually consumed rather than counting: the committable offset is the
//! smallest still in flight, or one past the last consumed when nothing is in flight.
//!
//! This module does no I/O; the consumer loop and the rebalance callback drive it.

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka::records::Partition;

/// Progress of one partition.
#[derive(Debug, Default, Clone)]
pub struct Watermark {
    in_flight: BTreeSet<i64>,
    /// One past the highest offset consumed so far.
    next: Option<i64>,
    /// What was last committed (or was already committed when the partition was assigned).
    committed: Option<i64>,
}

impl Watermark {
    /// A record at `offset` was consumed and its work started.
    pub fn track(&mut self, offset: i64) {
        self.in_flight.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// The work of the record at `offset` is durable. Completing an offset that is not in flight
    /// (a late completion after the partition was revoked and re-assigned) changes nothing: the
    /// write happened, and the offset's new owner tracks it on its own.
    pub fn complete(&mut self, offset: i64) {
        self.in_flight.remove(&offset);
    }

    /// The offset to commit: every record below it is durable. `None` before any record.
    pub fn committable(&self) -> Option<i64> {
        self.in_flight.first().copied().or(self.next)
    }

    /// The committable offset if it moved past what was last committed.
    pub fn pending_commit(&self) -> Option<i64> {
        let offset = self.committable()?;
        match self.committed {
            Some(done) if done >= offset => None,
            _ => Some(offset),
        }
    }

    /// Notes that `offset` was committed.
    pub fn mark_committed(&mut self, offset: i64) {
        self.committed = Some(self.committed.map_or(offset, |c| c.max(offset)));
    }

    /// Records tracked and not yet complete.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The consumer's position is `position`: with nothing in flight, every offset below it
    /// was consumed and is durable, or carries no record (a transaction marker, a compacted
    /// gap), so the committable offset may move up to it.
    pub fn passed(&mut self, position: i64) {
        if self.in_flight.is_empty() && self.next.is_none_or(|n| position > n) {
            self.next = Some(position);
        }
    }
}

/// The watermarks of every partition this instance owns.
#[derive(Debug, Default)]
pub struct OffsetLedger {
    partitions: BTreeMap<Partition, Watermark>,
}

impl OffsetLedger {
    /// Tracks a consumed record of `partition` as in flight.
    pub fn track(&mut self, partition: &Partition, offset: i64) {
        match self.partitions.get_mut(partition) {
            Some(mark) => mark.track(offset),
            None => self
                .partitions
                .entry(partition.clone())
                .or_default()
                .track(offset),
        }
    }

    /// Marks a tracked record of `partition` as durably done.
    pub fn complete(&mut self, partition: &Partition, offset: i64) {
        if let Some(mark) = self.partitions.get_mut(partition) {
            mark.complete(offset);
        }
    }

    /// Offsets that moved since the last commit, ready for one commit request.
    pub fn pending_commits(&self) -> Vec<(Partition, i64)> {
        self.partitions
            .iter()
            .filter_map(|(p, mark)| mark.pending_commit().map(|o| (p.clone(), o)))
            .collect()
    }

    /// Notes that `commits` were committed.
    pub fn mark_committed(&mut self, commits: &[(Partition, i64)]) {
        for (partition, offset) in commits {
            if let Some(mark) = self.partitions.get_mut(partition) {
                mark.mark_committed(*offset);
            }
        }
    }

    /// Forgets revoked partitions, returning the offsets still worth committing for them (work
    /// finished since the last commit). Their in-flight records are left to the new owner, who
    /// redelivers them from the committed offset; idempotent writes make that harmless.
    pub fn revoke(&mut self, revoked: &[Partition]) -> Vec<(Partition, i64)> {
        revoked
            .iter()
            .filter_map(|p| {
                let mark = self.partitions.remove(p)?;
                mark.pending_commit().map(|o| (p.clone(), o))
            })
            .collect()
    }

    /// The consumer's positions for owned partitions (see [`Watermark::passed`]); a partition
    /// seen for the first time is tracked from its position. Call only when every record the
    /// consumer has handed out is [`track`](Self::track)ed: the position is past them.
    pub fn passed(&mut self, positions: &[(Partition, i64)]) {
        for (partition, position) in positions {
            self.partitions
                .entry(partition.clone())
                .or_default()
                .passed(*position);
        }
    }

    /// Records in flight across all partitions: the backpressure measure.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(Watermark::in_flight).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_past_the_last_record_moves_the_watermark_only_when_nothing_is_in_flight() {
        let mut mark = Watermark::default();
        mark.track(10);
        mark.track(11);
        // Offset 12 is a transaction marker: the consumer's position is 13.
        mark.passed(13);
        assert_eq!(mark.committable(), Some(10));
        mark.complete(10);
        mark.complete(11);
        assert_eq!(mark.committable(), Some(12));
        mark.passed(13);
        assert_eq!(mark.committable(), Some(13));
        // A stale position never moves it back.
        mark.passed(12);
        assert_eq!(mark.committable(), Some(13));
        mark.mark_committed(13);
        assert_eq!(mark.pending_commit(), None);
    }

    #[test]
    fn a_partition_with_nothing_consumed_is_committed_at_its_position() {
        let mut ledger = OffsetLedger::default();
        let p = Partition::new("t", 0);
        ledger.passed(&[(p.clone(), 463)]);
        assert_eq!(ledger.pending_commits(), vec![(p, 463)]);
    }

    #[test]
    fn nothing_to_commit_before_any_record() {
        assert_eq!(Watermark::default().committable(), None);
    }

    #[test]
    fn commits_only_below_the_oldest_unfinished_record() {
        let mut mark = Watermark::default();
        for offset in 10..15 {
            mark.track(offset);
        }
        mark.complete(11);
        mark.complete(13);
        assert_eq!(mark.committable(), Some(10));
        mark.complete(10);
        assert_eq!(mark.committable(), Some(12));
        mark.complete(12);
        assert_eq!(mark.committable(), Some(14));
        mark.complete(14);
        assert_eq!(mark.committable(), Some(15));
    }

    #[test]
    fn offset_gaps_do_not_hold_the_watermark_back() {
        // Transaction markers leave gaps: 20, 21, (22 is a marker), 23.
        let mut mark = Watermark::default();
        for offset in [20, 21, 23] {
            mark.track(offset);
        }
        for offset in [23, 20, 21] {
            mark.complete(offset);
        }
        assert_eq!(mark.committable(), Some(24));
    }

    #[test]
    fn a_commit_is_pending_only_when_the_watermark_moved() {
        let mut mark = Watermark::default();
        mark.track(0);
        assert_eq!(mark.pending_commit(), Some(0));
        mark.mark_committed(0);
        assert_eq!(mark.pending_commit(), None);
        mark.complete(0);
        assert_eq!(mark.pending_commit(), Some(1));
        mark.mark_committed(1);
        assert_eq!(mark.pending_commit(), None);
    }

    #[test]
    fn late_completion_of_an_unknown_offset_is_harmless() {
        let mut mark = Watermark::default();
        mark.track(5);
        mark.complete(3);
        assert_eq!(mark.committable(), Some(5));
    }

    #[test]
    fn ledger_revoke_returns_finished_work_and_forgets_the_partition() {
        let a = Partition::new("audit.user.action", 0);
        let b = Partition::new("audit.user.action", 1);
        let mut ledger = OffsetLedger::default();
        for offset in 0..4 {
            ledger.track(&a, offset);
            ledger.track(&b, offset);
        }
        ledger.complete(&a, 0);
        ledger.complete(&a, 1);
        ledger.complete(&a, 3);
        assert_eq!(ledger.in_flight(), 5);
        assert_eq!(
            ledger.revoke(std::slice::from_ref(&a)),
            vec![(a.clone(), 2)]
        );
        assert_eq!(ledger.in_flight(), 4);
        // A late completion for the revoked partition is ignored.
        ledger.complete(&a, 2);
        assert_eq!(ledger.pending_commits(), vec![(b.clone(), 0)]);
    }

    #[test]
    fn ledger_pending_commits_skip_unchanged_partitions() {
        let a = Partition::new("t", 0);
        let mut ledger = OffsetLedger::default();
        ledger.track(&a, 7);
        ledger.complete(&a, 7);
        let commits = ledger.pending_commits();
        assert_eq!(commits, vec![(a.clone(), 8)]);
        ledger.mark_committed(&commits);
        assert!(ledger.pending_commits().is_empty());
    }
}
