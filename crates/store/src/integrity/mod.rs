//! The tamper-evident log's rows (docs/integrity.md): every record the sink stores is a leaf of
//! an append-only Merkle log (RFC 6962), one log per Kafka partition of the topics the sink
//! reads, leaves in offset order.
//!
//! Three tables (migration 6):
//! - `log_leaves`, partition (topic, partition, block of 65 536 offsets), clustering offset:
//!   each stored record's [`Leaf`] bytes, written by [`Store::write_records`] together with the
//!   record's rows and, like them, idempotently (a record stored again gives the same bytes:
//!   sealing is deterministic). No TTL: a leaf outlives its rows, so a log can be rebuilt, and
//!   a record whose rows expired is told from one that was removed.
//! - `log_state`, one row per log: how far the log is built (size, the offset of its last leaf,
//!   the frontier of the Merkle tree, its latest signed checkpoint). It only ever moves by a
//!   lightweight transaction conditioned on the offset it moves from, so two sealers (an old
//!   and a new owner of a partition, mid-rebalance) never both extend it: the loser reloads.
//! - `checkpoints`, partition (topic, partition), clustering size: every signed checkpoint.
//!
//! What is decided elsewhere: which records are durably stored (the sink seals only below the
//! offsets its group committed), when a checkpoint is cut and what it is signed with (the
//! sink's `sealer`), and how a log is checked (`auditflow verify`).

mod extend;
mod leaf;
mod proof;
pub(crate) mod schema;
mod signing;
pub(crate) mod statements;
mod verify;

use futures::TryStreamExt;
use scylla::value::{CqlValue, Row};

use auditflow_core::checkpoint::{LogId, SignedCheckpoint};
use auditflow_core::merkle::Hash;

use crate::Store;
use crate::error::{Result, StoreError};
use schema::block_of;

pub use extend::{CheckpointRule, ExtendError};
pub use leaf::{Leaf, LogPosition, digest};
pub use proof::{ConsistencyProof, Proven, RecordProof};
pub use signing::SigningKey;
pub use verify::{Problem, ProblemKind, Report, StoredCheckpoints, VerifyOptions};

/// How far a log is built: what `log_state` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct LogTail {
    /// The log.
    pub log: LogId,
    /// Leaves in the log.
    pub size: u64,
    /// The offset of the last leaf.
    pub last_offset: i64,
    /// The Merkle frontier ([`auditflow_core::merkle::Frontier::edge`]).
    pub edge: Vec<Hash>,
    /// The Kafka time the next checkpoint's interval counts from: the latest checkpoint's, or
    /// the log's first leaf's.
    pub anchor_ms: i64,
    /// The latest signed checkpoint, if any.
    pub checkpoint: Option<SignedCheckpoint>,
}

/// What `auditflow prove` found for an event id.
#[derive(Debug, Clone, PartialEq)]
pub enum ProofOutcome {
    /// The record's proof.
    Proven(Box<RecordProof>),
    /// No record has this id.
    NotFound,
    /// The record is in no log (stored before the log existed, or without its position).
    NotInLog,
    /// The record is in its log, after the log's last checkpoint: nothing signed covers it yet.
    NotCovered,
}

/// A `log_state` row after its key: size, last offset, edge, anchor, checkpoint.
type StateRow = (i64, i64, Vec<u8>, i64, Option<String>);
/// A whole `log_state` row: topic, partition, then a [`StateRow`].
type KeyedStateRow = (String, i32, i64, i64, Vec<u8>, i64, Option<String>);

impl LogTail {
    fn from_row(
        log: LogId,
        (size, last_offset, edge, anchor_ms, checkpoint): StateRow,
    ) -> Result<Self> {
        let corrupt = || StoreError::Corrupt("log state");
        if edge.len() % 32 != 0 || size < 0 {
            return Err(corrupt());
        }
        let checkpoint = checkpoint
            .map(|json| serde_json::from_str::<SignedCheckpoint>(&json).map_err(|_| corrupt()))
            .transpose()?;
        Ok(Self {
            log,
            size: size as u64,
            last_offset,
            edge: edge
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32-byte chunks"))
                .collect(),
            anchor_ms,
            checkpoint,
        })
    }

    fn values(&self) -> StateRow {
        (
            i64::try_from(self.size).unwrap_or(i64::MAX),
            self.last_offset,
            self.edge.concat(),
            self.anchor_ms,
            self.checkpoint.as_ref().map(checkpoint_json),
        )
    }
}

fn checkpoint_json(checkpoint: &SignedCheckpoint) -> String {
    serde_json::to_string(checkpoint).expect("a checkpoint serializes")
}

impl Store {
    /// How far `log` is built, read at serial consistency (what the last advance decided);
    /// `None` before its first seal.
    pub async fn log_tail(&self, log: &LogId) -> Result<Option<LogTail>> {
        let st = &self.ready().await?.integrity;
        let row: Option<StateRow> = self
            .first_row(
                "read log state",
                &st.select_state,
                &(&log.topic, log.partition),
            )
            .await?;
        row.map(|row| LogTail::from_row(log.clone(), row))
            .transpose()
    }

    /// Every log with a `log_state` row, with its tail.
    pub async fn log_tails(&self) -> Result<Vec<LogTail>> {
        let st = &self.ready().await?.integrity;
        let rows: Vec<KeyedStateRow> = self
            .rows("read log states", &st.select_logs, ())
            .await?
            .try_collect()
            .await?;
        let mut tails = rows
            .into_iter()
            .map(|(topic, partition, size, last, edge, anchor, cp)| {
                LogTail::from_row(LogId { topic, partition }, (size, last, edge, anchor, cp))
            })
            .collect::<Result<Vec<_>>>()?;
        tails.sort_by(|a, b| a.log.cmp(&b.log));
        Ok(tails)
    }

    /// The leaves of `log` at offsets in `[from, to)`, in offset order.
    pub async fn log_leaves(&self, log: &LogId, from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let st = &self.ready().await?.integrity;
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        for block in block_of(from)..=block_of(to - 1) {
            let rows: Vec<(i64, Vec<u8>)> = self
                .rows(
                    "read log leaves",
                    &st.select_leaves,
                    (&log.topic, log.partition, block, from, to),
                )
                .await?
                .try_collect()
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Where an unbuilt log starts: the lowest stored leaf below `before`, in the run of
    /// non-empty leaf blocks that ends at the block of `before - 1` (a block of 65 536 offsets
    /// without one leaf lies before the log: the sink stored those records before it kept a
    /// log). `None` when no leaf below `before` is stored.
    pub async fn log_start(&self, log: &LogId, before: i64) -> Result<Option<i64>> {
        let st = &self.ready().await?.integrity;
        if before <= 0 {
            return Ok(None);
        }
        let top = block_of(before - 1);
        let mut start = None;
        for block in (0..=top).rev() {
            let first: Option<(i64,)> = self
                .first_row(
                    "read log leaves",
                    &st.first_leaf,
                    &(&log.topic, log.partition, block),
                )
                .await?;
            match first {
                Some((offset,)) if offset < before => start = Some(offset),
                // The newest block may hold only offsets that are no leaf below `before`.
                _ if block == top => {}
                _ => break,
            }
        }
        Ok(start)
    }

    /// The proof of the record `event_id` under its log's latest checkpoint, with consistency
    /// from the first checkpoint that covers it (or the one before, when that is the latest).
    pub async fn prove(&self, event_id: &str) -> Result<ProofOutcome> {
        let st = &self.ready().await?.integrity;
        let row: Option<(Option<String>, Option<i32>, Option<i64>)> = self
            .first_row("read record index", &st.select_position, &(event_id,))
            .await?;
        let Some(row) = row else {
            return Ok(ProofOutcome::NotFound);
        };
        let (Some(topic), Some(partition), Some(offset)) = row else {
            return Ok(ProofOutcome::NotInLog);
        };
        let log = LogId { topic, partition };
        let Some(latest) = self.log_tail(&log).await?.and_then(|t| t.checkpoint) else {
            return Ok(ProofOutcome::NotCovered);
        };
        if offset > latest.checkpoint.last_offset {
            return Ok(ProofOutcome::NotCovered);
        }
        let end = latest.checkpoint.last_offset + 1;
        let start = self.log_start(&log, end).await?.unwrap_or(end);
        let leaves = self.log_leaves(&log, start, end).await?;
        let Some(index) = leaves.iter().position(|(o, _)| *o == offset) else {
            return Ok(ProofOutcome::NotInLog);
        };
        let checkpoints = self.checkpoints(&log).await?;
        let covering = checkpoints
            .iter()
            .find(|c| c.checkpoint.size > index as u64)
            .cloned();
        let older = match covering {
            Some(c) if c.checkpoint.size < latest.checkpoint.size => Some(c),
            _ => checkpoints
                .iter()
                .rev()
                .find(|c| c.checkpoint.size < latest.checkpoint.size)
                .cloned(),
        };
        let bytes: Vec<Vec<u8>> = leaves.into_iter().map(|(_, b)| b).collect();
        Ok(match RecordProof::build(&bytes, index, latest, older) {
            Some(proof) => ProofOutcome::Proven(Box::new(proof)),
            None => ProofOutcome::NotCovered,
        })
    }

    /// Stores signed checkpoints (idempotent: a checkpoint is a function of its log).
    pub async fn store_checkpoints(&self, checkpoints: &[SignedCheckpoint]) -> Result<()> {
        let st = &self.ready().await?.integrity;
        for cp in checkpoints {
            let c = &cp.checkpoint;
            let size = i64::try_from(c.size).unwrap_or(i64::MAX);
            self.execute(
                "write checkpoint",
                &st.insert_checkpoint,
                &(&c.log.topic, c.log.partition, size, checkpoint_json(cp)),
            )
            .await?;
        }
        Ok(())
    }

    /// Every stored checkpoint of `log`, smallest first. A row that does not parse is an error
    /// naming the log (`verify` reports it).
    pub async fn checkpoints(&self, log: &LogId) -> Result<Vec<SignedCheckpoint>> {
        let st = &self.ready().await?.integrity;
        let rows: Vec<(String,)> = self
            .rows(
                "read checkpoints",
                &st.select_checkpoints,
                (&log.topic, log.partition),
            )
            .await?
            .try_collect()
            .await?;
        rows.into_iter()
            .map(|(json,)| {
                serde_json::from_str(&json).map_err(|_| StoreError::Corrupt("stored checkpoint"))
            })
            .collect()
    }

    /// Moves `tail.log`'s state to `tail`, if it is still where the caller found it: at
    /// `from_offset`, or absent for `None`. A lightweight transaction: `false` means another
    /// sealer moved it first, and the caller must read it again.
    pub async fn advance_log(&self, from_offset: Option<i64>, tail: &LogTail) -> Result<bool> {
        let st = &self.ready().await?.integrity;
        let (size, last, edge, anchor, checkpoint) = tail.values();
        let log = &tail.log;
        let result = match from_offset {
            None => {
                self.session
                    .execute_unpaged(
                        &st.create_state,
                        (
                            &log.topic,
                            log.partition,
                            size,
                            last,
                            edge,
                            anchor,
                            checkpoint,
                        ),
                    )
                    .await
            }
            Some(from) => {
                self.session
                    .execute_unpaged(
                        &st.advance_state,
                        (
                            size,
                            last,
                            edge,
                            anchor,
                            checkpoint,
                            &log.topic,
                            log.partition,
                            from,
                        ),
                    )
                    .await
            }
        }
        .map_err(StoreError::cql("advance log state"))?;
        let row = result
            .into_rows_result()
            .map_err(|e| StoreError::read("advance log state", e))?
            .maybe_first_row::<Row>()
            .map_err(|e| StoreError::read("advance log state", e))?;
        match row.and_then(|r| r.columns.into_iter().next().flatten()) {
            Some(CqlValue::Boolean(applied)) => Ok(applied),
            _ => Err(StoreError::Corrupt("lightweight transaction result")),
        }
    }
}
