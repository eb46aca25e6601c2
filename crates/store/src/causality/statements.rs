//! The causality index's statements, prepared once per [`CausalityIndex`](super::CausalityIndex).

use scylla::statement::prepared::PreparedStatement;

use super::schema::{BucketedTable, CHILDREN, MEMBERS, RECORD_COLUMNS};
use crate::Store;
use crate::error::Result;
use crate::exec::prepare;

/// Every statement of the index.
pub(super) struct CausalityStatements {
    pub(super) insert_node: PreparedStatement,
    pub(super) select_node: PreparedStatement,
    pub(super) children: BucketStatements,
    pub(super) members: BucketStatements,
}

/// The statements of one [`BucketedTable`].
pub(super) struct BucketStatements {
    pub(super) table: &'static str,
    pub(super) read_context: &'static str,
    pub(super) insert: PreparedStatement,
    pub(super) insert_day: PreparedStatement,
    pub(super) select_days: PreparedStatement,
    pub(super) select_rows: PreparedStatement,
}

impl CausalityStatements {
    pub(super) async fn prepare(store: &Store) -> Result<Self> {
        let (s, ks) = (&store.session, &store.keyspace);
        Ok(Self {
            insert_node: prepare(
                s,
                format!(
                    "INSERT INTO {ks}.causality_nodes (id, event_time, causation_id, \
                     correlation_id, {RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     USING TTL ?"
                ),
                true,
            )
            .await?,
            select_node: prepare(
                s,
                format!(
                    "SELECT id, event_time, causation_id, correlation_id, {RECORD_COLUMNS} \
                     FROM {ks}.causality_nodes WHERE id = ?"
                ),
                true,
            )
            .await?,
            children: BucketStatements::prepare(store, &CHILDREN).await?,
            members: BucketStatements::prepare(store, &MEMBERS).await?,
        })
    }
}

impl BucketStatements {
    pub(super) async fn prepare(store: &Store, bucketed: &BucketedTable) -> Result<Self> {
        let (s, ks) = (&store.session, &store.keyspace);
        let &BucketedTable {
            table,
            days_table,
            key,
            key_is,
            other,
            read_context,
        } = bucketed;
        Ok(Self {
            table,
            read_context,
            // In `EdgeRow` order.
            insert: prepare(
                s,
                format!(
                    "INSERT INTO {ks}.{table} ({key}, day, event_time, id, {other}, \
                     {RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
                ),
                true,
            )
            .await?,
            insert_day: prepare(
                s,
                format!(
                    "INSERT INTO {ks}.{days_table} ({key}, day, class) VALUES (?, ?, ?) \
                     USING TTL ?"
                ),
                true,
            )
            .await?,
            select_days: prepare(
                s,
                format!("SELECT day FROM {ks}.{days_table} WHERE {key} = ? LIMIT ?"),
                true,
            )
            .await?,
            // Named as `RecordRow` reads them: the key is one of the record's links.
            select_rows: prepare(
                s,
                format!(
                    "SELECT id, event_time, {key} AS {key_is}, {other}, {RECORD_COLUMNS} \
                     FROM {ks}.{table} WHERE {key} = ? AND day = ? LIMIT ?"
                ),
                true,
            )
            .await?,
        })
    }
}
