//! `auditflow verify`: every stored record against the tamper-evident log, every log against
//! its signed checkpoints, every checkpoint against the key, its chain and the anchor topic.
//!
//! Nothing here trusts the database: each log is rebuilt from its stored leaves and its roots
//! compared with checkpoints whose signatures verify under the public key alone; each leaf is
//! recomputed from the rows it describes (read by full scans of the record tables, so a row no
//! leaf describes is found too); and with an anchor (the checkpoints read from the Kafka topic,
//! outside the database) a checkpoint deleted from the store, or one the store holds and the
//! anchor never saw, is found as well. What the database could still hide is said in
//! docs/integrity.md: rows deleted once their retention period is over, and — without the
//! anchor — the newest records together with every trace of their checkpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use uuid::Uuid;

use auditflow_core::RetentionClass;
use auditflow_core::checkpoint::{LogId, SignedCheckpoint};
use auditflow_core::merkle::{Frontier, Hash, leaf_hash};

use crate::Store;
use crate::error::Result;
use crate::exec::prepare;
use crate::integrity::schema::BLOCK_BITS;
use crate::schema::{RECORDS_BY_TIME, SECURITY_BY_TIME, class_table};
use crate::statements::LABELS;
use crate::stored::{ClearColumns, label_row};

use super::{Leaf, digest};

/// What `verify` checks against.
pub struct VerifyOptions {
    /// The checkpoint signing key's public half (`auditflow keys public`).
    pub public_key: [u8; 32],
    /// Only records with an event time from here on (the logs are rebuilt whole regardless).
    pub from: Option<DateTime<Utc>>,
    /// Only records with an event time before this.
    pub to: Option<DateTime<Utc>>,
    /// The checkpoints read from the anchor topic; `None` checks against the store alone.
    pub anchor: Option<Vec<SignedCheckpoint>>,
    /// Now (ms since the epoch): a record whose retention is over may be gone.
    pub now_ms: i64,
}

/// What kind of finding a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A row differs from what its leaf says was stored.
    Modified,
    /// A row its leaf says was stored is gone, before its retention period ended.
    Removed,
    /// A row no leaf describes.
    Inserted,
    /// A record's row is gone from where its leaf puts it, and a row of it is elsewhere.
    Moved,
    /// A checkpoint's signature, chain, root or anchor does not check out.
    Checkpoint,
    /// A log's leaves are malformed, missing or out of place.
    Log,
}

/// One finding: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// Its kind.
    pub kind: ProblemKind,
    /// The log (`topic/partition`), for checkpoint and log findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The record's event id, for record findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The table the row is (or should be) in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// What exactly (never personal data: ids, tables, sizes and column names only).
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Logs checked.
    pub logs: usize,
    /// Checkpoints whose signature, chain and root checked out.
    pub checkpoints: usize,
    /// Records in range covered by a checkpoint, with every row as its leaf says.
    pub verified: u64,
    /// Records in range stored after their log's last checkpoint (or being stored while the
    /// check ran): no signature vouches for them yet, and their rows are not checked.
    pub not_covered: u64,
    /// Records in range whose rows are gone after their retention period ended.
    pub expired: u64,
    /// Everything that did not check out, sorted.
    pub problems: Vec<Problem>,
}

impl Report {
    /// No problem found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

label_row!(
    struct ClassRow {
        pseudonym: Uuid,
        day: NaiveDate,
        event_time: DateTime<Utc>,
        event_id: String,
        event: Option<Vec<u8>>,
    }
);
label_row!(
    struct TimeRow {
        day: NaiveDate,
        shard: i32,
        event_time: DateTime<Utc>,
        event_id: String,
        pseudonym: Option<Uuid>,
        event: Option<Vec<u8>>,
    }
);
label_row!(
    struct LabelTimeRow {
        day: NaiveDate,
        shard: i32,
        event_time: DateTime<Utc>,
        event_id: String,
        class: Option<String>,
    }
);

impl ClassRow {
    fn found(mut self) -> (String, Found) {
        let found = Found {
            place: Place::Class(self.pseudonym, self.day),
            event_time_ms: self.event_time.timestamp_millis(),
            clear: Some(self.take_clear()),
            digest: Some(digest(self.event.as_deref().unwrap_or_default())),
            extra: Extra::None,
        };
        (self.event_id, found)
    }
}

impl TimeRow {
    fn found(mut self) -> (String, Found) {
        let found = Found {
            place: Place::ByTime(self.day, self.shard),
            event_time_ms: self.event_time.timestamp_millis(),
            clear: Some(self.take_clear()),
            digest: Some(digest(self.event.as_deref().unwrap_or_default())),
            extra: Extra::Pseudonym(self.pseudonym),
        };
        (self.event_id, found)
    }
}

impl LabelTimeRow {
    fn found(mut self) -> (String, Found) {
        let found = Found {
            place: Place::ByTime(self.day, self.shard),
            event_time_ms: self.event_time.timestamp_millis(),
            clear: Some(self.take_clear()),
            digest: None,
            extra: Extra::Class(self.class.clone()),
        };
        (self.event_id, found)
    }
}

fn id_found(
    (id, class, kind, key_id, day, time, hour, topic, partition, offset): IdRow,
) -> (String, Found) {
    let position = match (topic, partition, offset) {
        (Some(topic), Some(partition), Some(offset)) => Some((topic, partition, offset)),
        _ => None,
    };
    let found = Found {
        place: Place::ById,
        event_time_ms: time.map_or(i64::MIN, |t| t.timestamp_millis()),
        clear: None,
        digest: None,
        extra: Extra::ById {
            class,
            kind,
            key_id,
            day,
            hour,
            position,
        },
    };
    (id, found)
}

/// A row as found, reduced to what a leaf binds.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    /// The row's partition key.
    place: Place,
    event_time_ms: i64,
    /// The clear columns (none in `records_by_id`).
    clear: Option<ClearColumns>,
    /// SHA-256 of its ciphertext, for the rows that hold one.
    digest: Option<Hash>,
    /// What else the row holds that a leaf binds.
    extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// A per-user table's (pseudonym, day).
    Class(Uuid, NaiveDate),
    /// A by-time table's (day, shard).
    ByTime(NaiveDate, i32),
    /// `records_by_id`, keyed by the event id alone.
    ById,
}

#[derive(Debug, Clone, PartialEq)]
enum Extra {
    None,
    /// `records_by_time`'s class.
    Class(Option<String>),
    /// `security_by_time`'s pseudonym (the key id).
    Pseudonym(Option<Uuid>),
    /// `records_by_id`'s columns.
    ById {
        class: Option<String>,
        kind: Option<String>,
        key_id: Option<Uuid>,
        day: Option<NaiveDate>,
        hour: Option<i32>,
        /// Where its leaf is (topic, partition, offset), as the row says: not bound by the
        /// leaf, only a pointer to it (`prove`, and telling an in-flight record).
        position: Option<(String, i32, i64)>,
    },
}

/// Every row of the record tables, by table and event id.
#[derive(Default)]
struct Rows {
    by_table: BTreeMap<&'static str, HashMap<String, Vec<Found>>>,
    /// `user_days`: (key id, day, class) → hours.
    user_days: HashMap<(Uuid, NaiveDate, String), BTreeSet<i32>>,
}

/// A row's identity: table, event id, partition and event time.
type RowKey = (&'static str, String, Place, i64);

const BY_ID: &str = "records_by_id";
/// What a moved row is said to be, wherever it is found (its record's leaf check and the scan
/// for rows no leaf describes may both find it: one wording, so the report names it once).
const MOVED: &str = "a row of the record is away from where its leaf puts it";
const USER_DAYS: &str = "user_days";

/// A `records_by_id` row.
type IdRow = (
    String,
    Option<String>,
    Option<String>,
    Option<Uuid>,
    Option<NaiveDate>,
    Option<DateTime<Utc>>,
    Option<i32>,
    Option<String>,
    Option<i32>,
    Option<i64>,
);

/// The stored checkpoints of every log, read before the anchor topic is (see
/// [`Store::stored_checkpoints`]).
pub struct StoredCheckpoints {
    logs: BTreeMap<LogId, Option<Vec<SignedCheckpoint>>>,
}

impl Store {
    /// Step one of a verification: every log's stored checkpoints (`None` for a log with one
    /// that does not parse). Read them *before* the anchor topic: the sealer publishes a
    /// checkpoint and waits for the brokers before it stores it, so everything read here is on
    /// the topic when the topic is read next — a live pipeline never looks tampered with.
    pub async fn stored_checkpoints(&self) -> Result<StoredCheckpoints> {
        let mut logs = BTreeMap::new();
        for log in self.logs_with_state().await? {
            let stored = self.checkpoints(&log).await.ok();
            logs.insert(log, stored);
        }
        Ok(StoredCheckpoints { logs })
    }

    /// Verifies every log and every stored record (see the module docs), given the stored
    /// checkpoints read first and then, in `options`, the anchor's. The rest is read in the
    /// order that keeps a live pipeline consistent: the leaves after the checkpoints (a leaf is
    /// written before its offset is committed, so before any checkpoint covers it), the rows
    /// after the leaves (written with them, before the commit). Records after their log's last
    /// checkpoint may be being written: they are counted as not yet covered, not checked.
    /// `progress` is told how many records of at most how many were checked, every 10 000.
    pub async fn verify(
        &self,
        stored: StoredCheckpoints,
        options: &VerifyOptions,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Report> {
        let mut report = Report::default();
        let (anchor, forks) = group_by_log(options.anchor.as_deref().unwrap_or_default());
        report.problems.extend(forks);
        let blocks = self.leaf_blocks().await?;
        let mut logs: BTreeSet<LogId> = blocks.keys().cloned().collect();
        logs.extend(stored.logs.keys().cloned());
        logs.extend(anchor.keys().cloned());
        report.logs = logs.len();
        let mut leaves_of = BTreeMap::new();
        for log in &logs {
            let mut leaves = Vec::new();
            for block in blocks.get(log).into_iter().flatten() {
                leaves.extend(self.block_leaves(log, *block).await?);
            }
            leaves_of.insert(log.clone(), leaves);
        }
        let rows = self.scan_rows().await?;
        let total: u64 = leaves_of.values().map(|l| l.len() as u64).sum();
        let mut with_leaf: BTreeSet<String> = BTreeSet::new();
        let mut claimed: BTreeSet<RowKey> = BTreeSet::new();
        let mut checked = 0u64;
        let mut decoded = Vec::new();
        let mut described: HashSet<String> = HashSet::new();
        for (log, leaves) in &leaves_of {
            let stored = match stored.logs.get(log) {
                Some(Some(stored)) => stored.clone(),
                Some(None) => {
                    report.problems.push(log_problem(
                        ProblemKind::Checkpoint,
                        log,
                        "a stored checkpoint does not parse".into(),
                    ));
                    Vec::new()
                }
                None => Vec::new(),
            };
            let on_anchor = match options.anchor {
                None => None,
                Some(_) => {
                    let on_anchor = anchor.get(log).cloned().unwrap_or_default();
                    let newer = on_anchor.iter().any(|a| {
                        stored
                            .iter()
                            .all(|s| s.checkpoint.size != a.checkpoint.size)
                    });
                    let accounted = if newer {
                        self.in_flight(log, &stored).await?
                    } else {
                        InFlight::default()
                    };
                    Some(
                        on_anchor
                            .into_iter()
                            .map(|a| (accounted.accounts_for(&a), a))
                            .collect::<Vec<_>>(),
                    )
                }
            };
            let checkpoints = merge_checkpoints(log, stored, on_anchor, &mut report.problems);
            let covered = check_log(log, leaves, &checkpoints, options, &mut report);
            for (index, (offset, bytes)) in leaves.iter().enumerate() {
                let leaf = match Leaf::decode(bytes) {
                    Ok(leaf) if leaf.position.log == *log && leaf.position.offset == *offset => {
                        leaf
                    }
                    Ok(_) => {
                        report.problems.push(log_problem(
                            ProblemKind::Log,
                            log,
                            format!("the leaf at offset {offset} names another position"),
                        ));
                        continue;
                    }
                    Err(why) => {
                        report.problems.push(log_problem(
                            ProblemKind::Log,
                            log,
                            format!("the leaf at offset {offset} is malformed: {why}"),
                        ));
                        continue;
                    }
                };
                with_leaf.insert(leaf.event_id.clone());
                let expected = expected_rows(&leaf);
                for (table, found) in &expected {
                    claimed.insert((
                        table,
                        leaf.event_id.clone(),
                        found.place.clone(),
                        found.event_time_ms,
                    ));
                    described.insert(describe(table, &leaf.event_id, found));
                }
                decoded.push((leaf, expected, (index as u64) < covered));
            }
        }
        // Then the rows of each covered record, knowing every leaf: a record delivered twice
        // is two leaves, and a row both describe holds the later write (`described`).
        for (leaf, expected, is_covered) in &decoded {
            if !in_range(leaf.event_time_ms, options) {
                continue;
            }
            checked += 1;
            if checked.is_multiple_of(10_000) {
                progress(checked, total);
            }
            if !is_covered {
                report.not_covered += 1;
                continue;
            }
            let before = report.problems.len();
            let expired = check_rows(
                leaf,
                expected,
                &rows,
                &described,
                options,
                &mut report.problems,
            );
            if expired {
                report.expired += 1;
            } else if report.problems.len() == before {
                report.verified += 1;
            }
        }
        let unclaimed = unclaimed_rows(&rows, &claimed, &with_leaf, options);
        self.judge_unclaimed(unclaimed, &mut report).await?;
        report.problems.sort();
        report.problems.dedup();
        Ok(report)
    }

    /// Rows no leaf read describes. A row of a record whose leaf is stored now, at the position
    /// its `records_by_id` row names, was being written while the leaves were read: not yet
    /// covered. Any other is inserted — or moved, when its record has a leaf.
    async fn judge_unclaimed(&self, unclaimed: Vec<Unclaimed>, report: &mut Report) -> Result<()> {
        let mut in_flight: BTreeSet<String> = BTreeSet::new();
        for u in unclaimed {
            if u.has_leaf {
                report
                    .problems
                    .push(row_problem(ProblemKind::Moved, &u.id, u.table, MOVED));
                continue;
            }
            let landed = match &u.position {
                Some((topic, partition, offset)) if !in_flight.contains(&u.id) => {
                    let log = LogId {
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    let leaf = self.log_leaves(&log, *offset, *offset + 1).await?;
                    leaf.first()
                        .and_then(|(_, bytes)| Leaf::decode(bytes).ok())
                        .is_some_and(|leaf| leaf.event_id == u.id && leaf.position.log == log)
                }
                Some(_) => true,
                None => false,
            };
            if landed {
                if in_flight.insert(u.id.clone()) {
                    report.not_covered += 1;
                }
            } else {
                report.problems.push(row_problem(
                    ProblemKind::Inserted,
                    &u.id,
                    u.table,
                    "a row that no leaf of any log describes",
                ));
            }
        }
        Ok(())
    }

    /// Scans `table` with `cql`, filing each row by its event id.
    async fn scan_into<R>(
        &self,
        rows: &mut Rows,
        table: &'static str,
        cql: String,
        found: impl Fn(R) -> (String, Found),
    ) -> Result<()>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + Send + 'static,
    {
        let by_id = rows.by_table.entry(table).or_default();
        for row in self.scan::<R>(cql).await? {
            let (id, found) = found(row);
            by_id.entry(id).or_default().push(found);
        }
        Ok(())
    }

    async fn scan<R>(&self, cql: String) -> Result<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + Send + 'static,
    {
        let statement = prepare(&self.session, cql, true).await?;
        self.rows("verify: scan", &statement, ())
            .await?
            .try_collect()
            .await
    }

    /// Every record row, read by full scans (paged by the driver).
    async fn scan_rows(&self) -> Result<Rows> {
        let ks = &self.keyspace;
        let mut rows = Rows::default();
        for class in RetentionClass::ALL {
            let table = class_table(class);
            let cql = format!(
                "SELECT pseudonym, day, event_time, event_id, event, {LABELS} FROM {ks}.{table}"
            );
            self.scan_into(&mut rows, table, cql, ClassRow::found)
                .await?;
        }
        let cql = format!(
            "SELECT day, shard, event_time, event_id, pseudonym, event, {LABELS} \
             FROM {ks}.{SECURITY_BY_TIME}"
        );
        self.scan_into(&mut rows, SECURITY_BY_TIME, cql, TimeRow::found)
            .await?;
        let cql = format!(
            "SELECT day, shard, event_time, event_id, class, {LABELS} FROM {ks}.{RECORDS_BY_TIME}"
        );
        self.scan_into(&mut rows, RECORDS_BY_TIME, cql, LabelTimeRow::found)
            .await?;
        let cql = format!(
            "SELECT event_id, class, kind, pseudonym, day, event_time, hour, log_topic, \
             log_partition, log_offset FROM {ks}.{BY_ID}"
        );
        self.scan_into(&mut rows, BY_ID, cql, id_found).await?;
        let days: Vec<(Uuid, NaiveDate, String, Option<Vec<i32>>)> = self
            .scan(format!(
                "SELECT pseudonym, day, class, hours FROM {ks}.{USER_DAYS}"
            ))
            .await?;
        for (pseudonym, day, class, hours) in days {
            rows.user_days
                .entry((pseudonym, day, class))
                .or_default()
                .extend(hours.unwrap_or_default());
        }
        Ok(rows)
    }

    /// The `log_leaves` partitions of every log, ascending.
    async fn leaf_blocks(&self) -> Result<BTreeMap<LogId, Vec<i64>>> {
        let ks = &self.keyspace;
        let found: Vec<(String, i32, i64)> = self
            .scan(format!(
                "SELECT DISTINCT topic, partition, block FROM {ks}.log_leaves"
            ))
            .await?;
        let mut blocks: BTreeMap<LogId, Vec<i64>> = BTreeMap::new();
        for (topic, partition, block) in found {
            blocks
                .entry(LogId { topic, partition })
                .or_default()
                .push(block);
        }
        blocks.values_mut().for_each(|b| b.sort_unstable());
        Ok(blocks)
    }

    /// The logs with a state row or a stored checkpoint.
    async fn logs_with_state(&self) -> Result<BTreeSet<LogId>> {
        let ks = &self.keyspace;
        let mut logs = BTreeSet::new();
        for cql in [
            format!("SELECT topic, partition FROM {ks}.log_state"),
            format!("SELECT DISTINCT topic, partition FROM {ks}.checkpoints"),
        ] {
            let found: Vec<(String, i32)> = self.scan(cql).await?;
            logs.extend(
                found
                    .into_iter()
                    .map(|(topic, partition)| LogId { topic, partition }),
            );
        }
        Ok(logs)
    }

    /// What explains a checkpoint of `log` that is on the anchor topic but was not among the
    /// `stored` ones read before the topic. The sealer publishes, waits for the brokers, stores
    /// the checkpoints, and only then moves the log's state past them: so the state is read
    /// first, then the checkpoints. A checkpoint stored by now was published and stored in
    /// between; one beyond the state's size is still on its way (its sealer is between the
    /// publish and the move, or died there and its successor will repeat it). One at or below
    /// the state's size that the store lacks was removed. A log whose state is gone while
    /// checkpoints of it are stored lost its state: nothing of it counts as on its way.
    async fn in_flight(&self, log: &LogId, stored: &[SignedCheckpoint]) -> Result<InFlight> {
        let state = self.log_tail(log).await?;
        let stored_now = self.checkpoints(log).await?;
        let sealed = match state {
            Some(tail) => Some(tail.size),
            None if stored.is_empty() && stored_now.is_empty() => Some(0),
            None => None,
        };
        Ok(InFlight { stored_now, sealed })
    }

    /// The leaves of one `log_leaves` partition, in offset order.
    async fn block_leaves(&self, log: &LogId, block: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        self.log_leaves(log, block << BLOCK_BITS, (block + 1) << BLOCK_BITS)
            .await
    }
}

/// What [`Store::in_flight`] found for one log.
#[derive(Default)]
struct InFlight {
    /// The log's checkpoints as stored now.
    stored_now: Vec<SignedCheckpoint>,
    /// The size the log's state says is sealed and stored (`None`: no state to trust).
    sealed: Option<u64>,
}

impl InFlight {
    /// Whether an anchored checkpoint the first read of the store lacked is explained: stored
    /// since, or beyond what the log's state says is sealed.
    fn accounts_for(&self, anchored: &SignedCheckpoint) -> bool {
        self.stored_now.contains(anchored)
            || self
                .sealed
                .is_some_and(|size| anchored.checkpoint.size > size)
    }
}

fn log_problem(kind: ProblemKind, log: &LogId, detail: String) -> Problem {
    Problem {
        kind,
        log: Some(log.to_string()),
        event_id: None,
        table: None,
        detail,
    }
}

fn row_problem(kind: ProblemKind, id: &str, table: &str, detail: &str) -> Problem {
    Problem {
        kind,
        log: None,
        event_id: Some(id.to_owned()),
        table: Some(table.to_owned()),
        detail: detail.to_owned(),
    }
}

fn in_range(event_time_ms: i64, options: &VerifyOptions) -> bool {
    options
        .from
        .is_none_or(|f| event_time_ms >= f.timestamp_millis())
        && options
            .to
            .is_none_or(|t| event_time_ms < t.timestamp_millis())
}

/// The anchor's checkpoints by log and size; two different ones at one size are a fork.
fn group_by_log(
    anchor: &[SignedCheckpoint],
) -> (BTreeMap<LogId, Vec<SignedCheckpoint>>, Vec<Problem>) {
    let mut by_size: BTreeMap<(LogId, u64), SignedCheckpoint> = BTreeMap::new();
    let mut problems = Vec::new();
    for cp in anchor {
        let key = (cp.checkpoint.log.clone(), cp.checkpoint.size);
        match by_size.get(&key) {
            Some(earlier) if earlier != cp => problems.push(log_problem(
                ProblemKind::Checkpoint,
                &key.0,
                format!(
                    "the anchor topic holds two different checkpoints at size {}",
                    key.1
                ),
            )),
            Some(_) => {}
            None => {
                by_size.insert(key, cp.clone());
            }
        }
    }
    let mut grouped: BTreeMap<LogId, Vec<SignedCheckpoint>> = BTreeMap::new();
    for ((log, _), cp) in by_size {
        grouped.entry(log).or_default().push(cp);
    }
    (grouped, problems)
}

/// The checkpoints to check `log` against, by size: the store's, and with an anchor the
/// anchor's too — every difference between the two is a problem. Each anchored checkpoint
/// comes with whether its absence from `stored` is explained ([`InFlight::accounts_for`]).
fn merge_checkpoints(
    log: &LogId,
    stored: Vec<SignedCheckpoint>,
    anchor: Option<Vec<(bool, SignedCheckpoint)>>,
    problems: &mut Vec<Problem>,
) -> Vec<SignedCheckpoint> {
    let mut merged: BTreeMap<u64, SignedCheckpoint> = stored
        .into_iter()
        .map(|cp| (cp.checkpoint.size, cp))
        .collect();
    let Some(anchor) = anchor else {
        return merged.into_values().collect();
    };
    let anchored: BTreeMap<u64, (bool, SignedCheckpoint)> = anchor
        .into_iter()
        .map(|(accounted, cp)| (cp.checkpoint.size, (accounted, cp)))
        .collect();
    for (size, cp) in &merged {
        match anchored.get(size).map(|(_, a)| a) {
            None => problems.push(log_problem(
                ProblemKind::Checkpoint,
                log,
                format!(
                    "the checkpoint at size {size} is in the store but not on the anchor topic"
                ),
            )),
            Some(a) if a != cp => problems.push(log_problem(
                ProblemKind::Checkpoint,
                log,
                format!("the checkpoint at size {size} differs from the anchor topic's"),
            )),
            Some(_) => {}
        }
    }
    for (size, (accounted, cp)) in anchored {
        if !merged.contains_key(&size) && !accounted {
            problems.push(log_problem(
                ProblemKind::Checkpoint,
                log,
                format!(
                    "the checkpoint at size {size} is on the anchor topic but not in the store"
                ),
            ));
        }
        // The anchor's word wins: it is outside the database.
        merged.insert(size, cp);
    }
    merged.into_values().collect()
}

/// Checks `log`'s checkpoints (signature, chain, root, last offset) against its leaves; the
/// number of leaves the last good checkpoint covers.
fn check_log(
    log: &LogId,
    leaves: &[(i64, Vec<u8>)],
    checkpoints: &[SignedCheckpoint],
    options: &VerifyOptions,
    report: &mut Report,
) -> u64 {
    let problem = |detail: String| log_problem(ProblemKind::Checkpoint, log, detail);
    let mut covered = 0;
    let mut previous: Option<&SignedCheckpoint> = None;
    let mut frontier = Frontier::new();
    let mut leaves = leaves.iter();
    let mut last_offset = None;
    for cp in checkpoints {
        let c = &cp.checkpoint;
        let mut good = true;
        if cp.verify(&options.public_key).is_err() {
            report.problems.push(problem(format!(
                "the checkpoint at size {} is not signed by the key",
                c.size
            )));
            good = false;
        }
        match previous {
            None if c.previous != [0; 32] => {
                report.problems.push(problem(format!(
                    "the checkpoint at size {} names a predecessor that is nowhere",
                    c.size
                )));
                good = false;
            }
            Some(p) if p.followed_by(cp).is_err() => {
                report.problems.push(problem(format!(
                    "the checkpoint at size {} does not follow the one at size {}",
                    c.size, p.checkpoint.size
                )));
                good = false;
            }
            _ => {}
        }
        previous = Some(cp);
        while frontier.size() < c.size {
            let Some((offset, bytes)) = leaves.next() else {
                break;
            };
            frontier.push(leaf_hash(bytes));
            last_offset = Some(*offset);
        }
        if frontier.size() < c.size {
            report.problems.push(problem(format!(
                "the checkpoint at size {} covers leaves that are not stored (the log holds {})",
                c.size,
                frontier.size()
            )));
            continue;
        }
        if frontier.root() != c.root {
            report.problems.push(problem(format!(
                "the leaves do not hash to the root of the checkpoint at size {}",
                c.size
            )));
            good = false;
        } else if last_offset != Some(c.last_offset) {
            report.problems.push(problem(format!(
                "the checkpoint at size {} ends at offset {}, the leaves at {:?}",
                c.size, c.last_offset, last_offset
            )));
            good = false;
        }
        if good {
            report.checkpoints += 1;
            covered = c.size;
        }
    }
    covered
}

/// The rows a leaf says were stored, by table.
fn expected_rows(leaf: &Leaf) -> Vec<(&'static str, Found)> {
    let clear = ClearColumns {
        kind: Some(leaf.kind.as_str().to_owned()),
        event_type: Some(leaf.event_type.clone()),
        labels: leaf.labels.clone(),
    };
    let time = leaf.event_time_ms;
    let mut rows = vec![
        (
            BY_ID,
            Found {
                place: Place::ById,
                event_time_ms: time,
                clear: None,
                digest: None,
                extra: Extra::ById {
                    class: Some(leaf.class.as_str().to_owned()),
                    kind: Some(leaf.kind.as_str().to_owned()),
                    key_id: Some(leaf.key_id),
                    day: Some(leaf.day),
                    hour: leaf.hour,
                    position: Some((
                        leaf.position.log.topic.clone(),
                        leaf.position.log.partition,
                        leaf.position.offset,
                    )),
                },
            },
        ),
        (
            class_table(leaf.class),
            Found {
                place: Place::Class(leaf.pseudonym, leaf.day),
                event_time_ms: time,
                clear: Some(clear.clone()),
                digest: Some(leaf.event_digest),
                extra: Extra::None,
            },
        ),
        (
            RECORDS_BY_TIME,
            Found {
                place: Place::ByTime(leaf.day, leaf.shard),
                event_time_ms: time,
                clear: Some(clear.clone()),
                digest: None,
                extra: Extra::Class(Some(leaf.class.as_str().to_owned())),
            },
        ),
    ];
    if let Some(digest) = leaf.time_event_digest {
        rows.push((
            SECURITY_BY_TIME,
            Found {
                place: Place::ByTime(leaf.day, leaf.shard),
                event_time_ms: time,
                clear: Some(clear),
                digest: Some(digest),
                extra: Extra::Pseudonym(Some(leaf.key_id)),
            },
        ));
    }
    rows
}

/// Checks the rows `leaf` describes; true when some are gone after the retention period
/// (expired, not removed).
fn check_rows(
    leaf: &Leaf,
    expected: &[(&'static str, Found)],
    rows: &Rows,
    described: &HashSet<String>,
    options: &VerifyOptions,
    problems: &mut Vec<Problem>,
) -> bool {
    let may_have_expired = options.now_ms >= leaf.expires_from_ms();
    let id = &leaf.event_id;
    let mut expired = false;
    for (table, want) in expected {
        let found = rows
            .by_table
            .get(table)
            .and_then(|t| t.get(id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        if found.contains(want) {
            continue;
        }
        // The same record delivered again (at another offset) and stored differently — a
        // record of an erased user arriving again is stored shredded — overwrote the rows the
        // two leaves share: the row holds what the later leaf describes.
        let superseded = found
            .iter()
            .any(|f| f.place == want.place && described.contains(&describe(table, id, f)));
        if superseded {
            continue;
        }
        let same_place = found
            .iter()
            .find(|f| f.place == want.place && f.event_time_ms == want.event_time_ms);
        match same_place {
            Some(f) => problems.push(row_problem(
                ProblemKind::Modified,
                id,
                table,
                difference(want, f),
            )),
            None if !found.is_empty() => {
                problems.push(row_problem(ProblemKind::Moved, id, table, MOVED))
            }
            None if may_have_expired => expired = true,
            None => problems.push(row_problem(
                ProblemKind::Removed,
                id,
                table,
                "the row its leaf describes is gone before its retention period ended",
            )),
        }
    }
    if leaf.indexed {
        let key = (leaf.key_id, leaf.day, leaf.class.as_str().to_owned());
        let indexed = rows
            .user_days
            .get(&key)
            .is_some_and(|hours| leaf.hour.is_none_or(|h| hours.contains(&h)));
        if !indexed {
            if may_have_expired {
                expired = true;
            } else {
                problems.push(row_problem(
                    ProblemKind::Removed,
                    id,
                    USER_DAYS,
                    "the index row that leads to the record is gone",
                ));
            }
        }
    }
    expired
}

/// A row as one string, to look it up among every leaf's expected rows.
fn describe(table: &str, id: &str, found: &Found) -> String {
    format!("{table}\u{0}{id}\u{0}{found:?}")
}

/// Which part of a row differs from its leaf (column names only).
fn difference(want: &Found, found: &Found) -> &'static str {
    if want.digest != found.digest {
        "its ciphertext differs from the one its leaf hashes"
    } else if want.clear != found.clear {
        "its clear columns differ from its leaf's"
    } else {
        "its columns differ from its leaf's"
    }
}

/// A row no leaf read describes.
struct Unclaimed {
    table: &'static str,
    id: String,
    /// Whether some leaf describes the record (elsewhere).
    has_leaf: bool,
    /// Where the record's `records_by_id` row says its leaf is.
    position: Option<(String, i32, i64)>,
}

/// The rows no leaf read describes, in range.
fn unclaimed_rows(
    rows: &Rows,
    claimed: &BTreeSet<RowKey>,
    with_leaf: &BTreeSet<String>,
    options: &VerifyOptions,
) -> Vec<Unclaimed> {
    let position_of = |id: &str| {
        rows.by_table
            .get(BY_ID)
            .and_then(|t| t.get(id))
            .into_iter()
            .flatten()
            .find_map(|f| match &f.extra {
                Extra::ById {
                    position: Some(p), ..
                } => Some(p.clone()),
                _ => None,
            })
    };
    let mut out = Vec::new();
    for (table, by_id) in &rows.by_table {
        for (id, found) in by_id {
            for f in found {
                let key = (*table, id.clone(), f.place.clone(), f.event_time_ms);
                if claimed.contains(&key) || !in_range(f.event_time_ms, options) {
                    continue;
                }
                out.push(Unclaimed {
                    table,
                    id: id.clone(),
                    has_leaf: with_leaf.contains(id),
                    position: position_of(id),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditflow_core::checkpoint::Checkpoint;

    fn log() -> LogId {
        LogId {
            topic: "audit.events".into(),
            partition: 0,
        }
    }

    fn checkpoint(size: u64) -> SignedCheckpoint {
        Checkpoint {
            log: log(),
            size,
            root: [size as u8; 32],
            last_offset: size as i64 - 1,
            time_ms: 0,
            previous: [0; 32],
        }
        .sign(&[7; 32])
    }

    fn missing(stored: &[u64], anchored: &[u64], found: &InFlight) -> Vec<String> {
        let mut problems = Vec::new();
        merge_checkpoints(
            &log(),
            stored.iter().map(|s| checkpoint(*s)).collect(),
            Some(
                anchored
                    .iter()
                    .map(|s| {
                        let cp = checkpoint(*s);
                        (found.accounts_for(&cp), cp)
                    })
                    .collect(),
            ),
            &mut problems,
        );
        problems.into_iter().map(|p| p.detail).collect()
    }

    #[test]
    fn a_checkpoint_beyond_the_sealed_state_is_on_its_way() {
        // The sealer published sizes 3 and 4 and has not stored them yet: the state says 2.
        let found = InFlight {
            stored_now: vec![checkpoint(1), checkpoint(2)],
            sealed: Some(2),
        };
        assert!(missing(&[1, 2], &[1, 2, 3, 4], &found).is_empty());
        // A log's first checkpoints, published before its state and checkpoints exist.
        let first = InFlight {
            stored_now: Vec::new(),
            sealed: Some(0),
        };
        assert!(missing(&[], &[1, 2, 3, 4], &first).is_empty());
    }

    #[test]
    fn a_checkpoint_the_state_says_is_stored_but_is_not_was_removed() {
        let found = InFlight {
            stored_now: vec![checkpoint(1), checkpoint(3)],
            sealed: Some(3),
        };
        assert_eq!(
            missing(&[1, 3], &[1, 2, 3], &found),
            ["the checkpoint at size 2 is on the anchor topic but not in the store"]
        );
        // Stored between the two reads of the store: not missing.
        let since = InFlight {
            stored_now: vec![checkpoint(1), checkpoint(2), checkpoint(3)],
            sealed: Some(3),
        };
        assert!(missing(&[1], &[1, 2, 3], &since).is_empty());
    }

    #[test]
    fn a_lost_state_explains_nothing() {
        // The state row is gone while checkpoints of the log are stored: the newest anchored
        // checkpoint is missing, not on its way.
        let found = InFlight {
            stored_now: vec![checkpoint(1)],
            sealed: None,
        };
        assert_eq!(
            missing(&[1], &[1, 2], &found),
            ["the checkpoint at size 2 is on the anchor topic but not in the store"]
        );
    }
}
