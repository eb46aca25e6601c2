//! The tamper-evident log's tables (migration 6; described in the parent module).

use crate::schema::{AddedColumn, SchemaParams};

/// Leaves per `log_leaves` partition: a partition holds the leaves of 65 536 consecutive
/// offsets (a few hundred bytes each), so it stays far below the size where reads suffer.
pub(crate) const BLOCK_BITS: u32 = 16;

/// The `log_leaves` partition an offset's leaf lives in.
pub(crate) fn block_of(offset: i64) -> i64 {
    offset >> BLOCK_BITS
}

/// Migration 7: `records_by_id` names where its record's leaf is, so `auditflow prove <id>`
/// finds it without a scan. Absent on records stored before (they are in no log).
pub(crate) const V7_COLUMNS: &[AddedColumn] = &[
    AddedColumn {
        table: "records_by_id",
        name: "log_topic",
        cql_type: "text",
    },
    AddedColumn {
        table: "records_by_id",
        name: "log_partition",
        cql_type: "int",
    },
    AddedColumn {
        table: "records_by_id",
        name: "log_offset",
        cql_type: "bigint",
    },
];

pub(crate) fn migration(p: &SchemaParams) -> Vec<String> {
    let ks = p.keyspace;
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.log_leaves (\
               topic text, partition int, block bigint, offset bigint, leaf blob, \
               PRIMARY KEY ((topic, partition, block), offset))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.log_state (\
               topic text, partition int, size bigint, last_offset bigint, edge blob, \
               anchor_ms bigint, checkpoint text, \
               PRIMARY KEY ((topic, partition)))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.checkpoints (\
               topic text, partition int, size bigint, checkpoint text, \
               PRIMARY KEY ((topic, partition), size))"
        ),
    ]
}
