//! The tamper-evident log's prepared statements.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::error::Result;
use crate::exec::prepare;

pub(crate) struct IntegrityStatements {
    pub(crate) insert_leaf: PreparedStatement,
    pub(crate) select_leaves: PreparedStatement,
    pub(crate) first_leaf: PreparedStatement,
    pub(crate) select_position: PreparedStatement,
    pub(crate) select_state: PreparedStatement,
    pub(crate) create_state: PreparedStatement,
    pub(crate) advance_state: PreparedStatement,
    pub(crate) select_logs: PreparedStatement,
    pub(crate) insert_checkpoint: PreparedStatement,
    pub(crate) select_checkpoints: PreparedStatement,
}

impl IntegrityStatements {
    pub(crate) async fn prepare(session: &Session, ks: &str) -> Result<Self> {
        let p = |cql: String, idempotent: bool| prepare(session, cql, idempotent);
        let state = "size, last_offset, edge, anchor_ms, checkpoint";
        Ok(Self {
            insert_leaf: p(
                format!(
                    "INSERT INTO {ks}.log_leaves (topic, partition, block, offset, leaf) \
                     VALUES (?, ?, ?, ?, ?)"
                ),
                true,
            )
            .await?,
            select_leaves: p(
                format!(
                    "SELECT offset, leaf FROM {ks}.log_leaves \
                     WHERE topic = ? AND partition = ? AND block = ? AND offset >= ? AND offset < ?"
                ),
                true,
            )
            .await?,
            select_position: p(
                format!(
                    "SELECT log_topic, log_partition, log_offset FROM {ks}.records_by_id \
                     WHERE event_id = ?"
                ),
                true,
            )
            .await?,
            first_leaf: p(
                format!(
                    "SELECT offset FROM {ks}.log_leaves \
                     WHERE topic = ? AND partition = ? AND block = ? LIMIT 1"
                ),
                true,
            )
            .await?,
            // Read at SERIAL consistency by the sealer, so it sees what the last lightweight
            // transaction decided.
            select_state: {
                let mut s = p(
                    format!("SELECT {state} FROM {ks}.log_state WHERE topic = ? AND partition = ?"),
                    true,
                )
                .await?;
                s.set_consistency(scylla::statement::Consistency::LocalSerial);
                s
            },
            create_state: p(
                format!(
                    "INSERT INTO {ks}.log_state (topic, partition, {state}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
                ),
                false,
            )
            .await?,
            advance_state: p(
                format!(
                    "UPDATE {ks}.log_state SET size = ?, last_offset = ?, edge = ?, \
                     anchor_ms = ?, checkpoint = ? \
                     WHERE topic = ? AND partition = ? IF last_offset = ?"
                ),
                false,
            )
            .await?,
            select_logs: p(
                format!("SELECT topic, partition, {state} FROM {ks}.log_state"),
                true,
            )
            .await?,
            insert_checkpoint: p(
                format!(
                    "INSERT INTO {ks}.checkpoints (topic, partition, size, checkpoint) \
                     VALUES (?, ?, ?, ?)"
                ),
                true,
            )
            .await?,
            select_checkpoints: p(
                format!(
                    "SELECT checkpoint FROM {ks}.checkpoints WHERE topic = ? AND partition = ?"
                ),
                true,
            )
            .await?,
        })
    }
}
