//! The causality tables' layout and their DDL (migration 2; the tables are described in the
//! parent module).

use crate::schema::SchemaParams;

/// The clear columns of a record in every causality table, after its links.
pub(super) const RECORD_COLUMNS: &str = "event_type, original_type, topic, summary, class";

/// One of the two day-bucketed tables and its bucket index. Both hold whole records, keyed by
/// one of the record's links and bucketed by the record's day; the other link is a column.
pub(super) struct BucketedTable {
    pub(super) table: &'static str,
    pub(super) days_table: &'static str,
    /// The partition key column: the link the table is read by.
    pub(super) key: &'static str,
    /// Which of the record's links the key is.
    pub(super) key_is: &'static str,
    /// The other link, kept as a column.
    pub(super) other: &'static str,
    pub(super) read_context: &'static str,
}

/// Parent → children: `causality_children`, by the child's cause.
pub(super) const CHILDREN: BucketedTable = BucketedTable {
    table: "causality_children",
    days_table: "causality_child_days",
    key: "parent_id",
    key_is: "causation_id",
    other: "correlation_id",
    read_context: "read causal edges",
};

/// Correlation → members: `causality_members`, by the member's correlation id.
pub(super) const MEMBERS: BucketedTable = BucketedTable {
    table: "causality_members",
    days_table: "causality_member_days",
    key: "correlation_id",
    key_is: "correlation_id",
    other: "causation_id",
    read_context: "read correlation members",
};

/// Migration 2: the causality tables (see the module docs).
pub(crate) fn migration(p: &SchemaParams) -> Vec<String> {
    let ks = p.keyspace;
    let record = "event_type text, original_type text, topic text, summary text, class text";
    let mut ddl = vec![format!(
        "CREATE TABLE IF NOT EXISTS {ks}.causality_nodes (\
           id text PRIMARY KEY, event_time timestamp, causation_id text, \
           correlation_id text, {record})"
    )];
    for BucketedTable {
        table,
        days_table,
        key,
        other,
        ..
    } in [CHILDREN, MEMBERS]
    {
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{table} (\
               {key} text, day date, event_time timestamp, id text, {other} text, {record}, \
               PRIMARY KEY (({key}, day), event_time, id)) \
             WITH CLUSTERING ORDER BY (event_time ASC, id ASC)"
        ));
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{days_table} (\
               {key} text, day date, class text, PRIMARY KEY (({key}), day, class)) \
             WITH CLUSTERING ORDER BY (day ASC, class ASC)"
        ));
    }
    ddl
}
