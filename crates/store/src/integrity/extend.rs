//! Extending a log by its next leaves and cutting its checkpoints: pure, so every sealer —
//! after a restart, a rebalance, a replay — computes the same tree and signs the same
//! checkpoints from the same leaves.

use auditflow_core::checkpoint::{Checkpoint, LogId, SignedCheckpoint};
use auditflow_core::config::IntegritySettings;
use auditflow_core::merkle::{Frontier, leaf_hash};

use super::{Leaf, LogTail};

/// Where a checkpoint is cut (`[integrity]`): after every `every` leaves, and after a leaf whose
/// Kafka time is `interval_ms` or more past the previous checkpoint's (or the log's first
/// leaf's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointRule {
    /// Leaves between two checkpoints, at most.
    pub every: u64,
    /// Kafka-time milliseconds after which the next leaf closes a checkpoint.
    pub interval_ms: i64,
}

impl CheckpointRule {
    /// The rule `[integrity]` configures.
    pub fn of(settings: &IntegritySettings) -> Self {
        Self {
            every: settings.checkpoint_every.max(1),
            interval_ms: i64::try_from(settings.checkpoint_interval_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        }
    }
}

/// Why leaves cannot extend a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtendError {
    /// The stored tail does not describe a Merkle frontier.
    #[error("the stored state of log {0} is not a Merkle frontier")]
    BadTail(String),
    /// A stored leaf does not decode, or names another log or offset than where it is stored.
    #[error("the leaf at offset {offset} of log {log} is malformed: {why}")]
    BadLeaf {
        /// The log.
        log: String,
        /// Where it is stored.
        offset: i64,
        /// What is wrong.
        why: &'static str,
    },
    /// Leaves must come after the tail, in offset order.
    #[error("the leaf at offset {offset} of log {log} is not after the log's last leaf")]
    OutOfOrder {
        /// The log.
        log: String,
        /// The offending offset.
        offset: i64,
    },
}

impl LogTail {
    /// A log with no leaf yet.
    pub fn empty(log: LogId) -> Self {
        Self {
            log,
            size: 0,
            last_offset: -1,
            edge: Vec::new(),
            anchor_ms: 0,
            checkpoint: None,
        }
    }

    /// Appends `leaves` (offset, stored bytes; ascending, after `self.last_offset`) and returns
    /// the checkpoints that fall due on the way, signed with `seed`, oldest first. On error the
    /// tail is left as it was.
    pub fn extend(
        &mut self,
        leaves: &[(i64, Vec<u8>)],
        rule: CheckpointRule,
        seed: &[u8; 32],
    ) -> Result<Vec<SignedCheckpoint>, ExtendError> {
        let log = self.log.to_string();
        let mut frontier = Frontier::from_parts(self.size, self.edge.clone())
            .ok_or_else(|| ExtendError::BadTail(log.clone()))?;
        let mut next = self.clone();
        let mut checkpoints = Vec::new();
        for (offset, bytes) in leaves {
            let bad = |why| ExtendError::BadLeaf {
                log: log.clone(),
                offset: *offset,
                why,
            };
            if *offset <= next.last_offset {
                return Err(ExtendError::OutOfOrder {
                    log: log.clone(),
                    offset: *offset,
                });
            }
            let leaf = Leaf::decode(bytes).map_err(bad)?;
            if leaf.position.log != self.log || leaf.position.offset != *offset {
                return Err(bad("it names another position"));
            }
            let time_ms = leaf.position.time_ms;
            if frontier.size() == 0 {
                next.anchor_ms = time_ms;
            }
            frontier.push(leaf_hash(bytes));
            next.last_offset = *offset;
            let due = frontier.size().is_multiple_of(rule.every)
                || time_ms.saturating_sub(next.anchor_ms) >= rule.interval_ms;
            if due {
                let signed = Checkpoint {
                    log: self.log.clone(),
                    size: frontier.size(),
                    root: frontier.root(),
                    last_offset: *offset,
                    time_ms,
                    previous: next
                        .checkpoint
                        .as_ref()
                        .map_or([0; 32], |c| c.checkpoint.hash()),
                }
                .sign(seed);
                next.anchor_ms = time_ms;
                next.checkpoint = Some(signed.clone());
                checkpoints.push(signed);
            }
        }
        next.size = frontier.size();
        next.edge = frontier.edge().to_vec();
        *self = next;
        Ok(checkpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::leaf::tests::sample;
    use auditflow_core::checkpoint::public_key;
    use auditflow_core::merkle::root;

    const SEED: [u8; 32] = [9; 32];

    fn log() -> LogId {
        LogId {
            topic: "audit.user.action".into(),
            partition: 1,
        }
    }

    /// Leaves at `offsets`, the n-th stamped `times[n]` ms.
    fn leaves(offsets: &[i64], times: &[i64]) -> Vec<(i64, Vec<u8>)> {
        offsets
            .iter()
            .zip(times)
            .map(|(&offset, &time_ms)| {
                let mut leaf = sample();
                leaf.position.log = log();
                leaf.position.offset = offset;
                leaf.position.time_ms = time_ms;
                (offset, leaf.encode())
            })
            .collect()
    }

    const RULE: CheckpointRule = CheckpointRule {
        every: 3,
        interval_ms: 1000,
    };

    #[test]
    fn checkpoints_fall_every_n_leaves_and_chain() {
        let all = leaves(&[0, 1, 2, 4, 5, 7, 8], &[0, 1, 2, 3, 4, 5, 6]);
        let mut tail = LogTail::empty(log());
        let cps = tail.extend(&all, RULE, &SEED).unwrap();
        assert_eq!(
            cps.iter().map(|c| c.checkpoint.size).collect::<Vec<_>>(),
            [3, 6]
        );
        assert_eq!(cps[0].checkpoint.last_offset, 2);
        assert_eq!(cps[1].checkpoint.last_offset, 7);
        let hashes: Vec<_> = all.iter().map(|(_, b)| leaf_hash(b)).collect();
        assert_eq!(cps[1].checkpoint.root, root(&hashes[..6]));
        assert_eq!(cps[0].checkpoint.previous, [0; 32]);
        cps[0].followed_by(&cps[1]).unwrap();
        for cp in &cps {
            cp.verify(&public_key(&SEED)).unwrap();
        }
        assert_eq!((tail.size, tail.last_offset), (7, 8));
        assert_eq!(tail.checkpoint.as_ref(), cps.last());
    }

    #[test]
    fn a_log_extended_in_pieces_signs_what_one_pass_signs() {
        let all = leaves(
            &[0, 1, 2, 3, 4, 5, 6, 7],
            &[0, 10, 20, 1500, 1600, 1700, 4000, 4001],
        );
        let mut whole = LogTail::empty(log());
        let once = whole.extend(&all, RULE, &SEED).unwrap();
        for cut in 0..all.len() {
            let mut pieces = LogTail::empty(log());
            let mut signed = pieces.extend(&all[..cut], RULE, &SEED).unwrap();
            signed.extend(pieces.extend(&all[cut..], RULE, &SEED).unwrap());
            assert_eq!(signed, once, "cut at {cut}");
            assert_eq!(pieces, whole, "cut at {cut}");
        }
        // The interval rule: leaf 3 is 1500 ms past the first leaf, leaf 6 past checkpoint 3's.
        assert_eq!(
            once.iter().map(|c| c.checkpoint.size).collect::<Vec<_>>(),
            [3, 4, 6, 7]
        );
    }

    #[test]
    fn bad_leaves_leave_the_tail_alone() {
        let mut tail = LogTail::empty(log());
        tail.extend(&leaves(&[0, 1], &[0, 1]), RULE, &SEED).unwrap();
        let before = tail.clone();
        let again = leaves(&[1], &[1]);
        assert!(matches!(
            tail.extend(&again, RULE, &SEED),
            Err(ExtendError::OutOfOrder { .. })
        ));
        let mut moved = leaves(&[5], &[2]);
        moved[0].0 = 6;
        assert!(matches!(
            tail.extend(&moved, RULE, &SEED),
            Err(ExtendError::BadLeaf { .. })
        ));
        assert!(matches!(
            tail.extend(&[(7, b"junk".to_vec())], RULE, &SEED),
            Err(ExtendError::BadLeaf { .. })
        ));
        assert_eq!(tail, before);
    }
}
