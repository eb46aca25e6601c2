//! The schema's versions, oldest first: the one list `migrate` applies and `check_current`
//! compares with `schema_migrations`. Each entry names the DDL of one table group — the audit
//! tables' in `schema`, the causality index's in `causality::schema` — so the groups know
//! neither each other nor this list.
//!
//! A migration only ever adds (`IF NOT EXISTS`; added columns after checking
//! `system_schema.columns`), so re-running one that was interrupted is harmless; its version
//! is recorded after all its statements succeeded.

use crate::causality;
use crate::integrity;
use crate::schema::{AddedColumn, SchemaParams, V4_COLUMNS, v1, v3, v5};

/// The version this build reads and writes.
pub(crate) const LATEST_VERSION: i32 = 7;

/// One schema version: the DDL it runs, then the columns it adds.
pub(crate) struct Migration {
    pub(crate) version: i32,
    pub(crate) description: &'static str,
    pub(crate) statements: fn(&SchemaParams) -> Vec<String>,
    /// Columns added to existing tables, after the statements. `ALTER TABLE … ADD` has no
    /// `IF NOT EXISTS` that ScyllaDB accepts, so the runner checks the schema first.
    pub(crate) columns: &'static [AddedColumn],
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "audit tables per retention class, security by time, lookups, keys",
        statements: v1,
        columns: &[],
    },
    Migration {
        version: 2,
        description: "causality index: nodes, parent to children, correlation members",
        statements: causality::schema::migration,
        columns: &[],
    },
    Migration {
        version: 3,
        description: "records by time: every record's clear labels, for reports",
        statements: v3,
        columns: &[],
    },
    Migration {
        version: 4,
        description: "hour buckets for busy non-person subjects",
        statements: |_| Vec::new(),
        columns: V4_COLUMNS,
    },
    Migration {
        version: 5,
        description: "erased subjects: erasure is final",
        statements: v5,
        columns: &[],
    },
    Migration {
        version: 6,
        description: "tamper-evident log: leaves, log state, signed checkpoints",
        statements: integrity::schema::migration,
        columns: &[],
    },
    Migration {
        version: 7,
        description: "records by id name their leaf of the tamper-evident log",
        statements: |_| Vec::new(),
        columns: integrity::schema::V7_COLUMNS,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use auditflow_core::config::RetentionPeriods;

    #[test]
    fn migrations_are_ordered_and_idempotent_ddl() {
        let retention = RetentionPeriods::default();
        let p = SchemaParams {
            keyspace: "ks",
            retention: &retention,
        };
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last);
            last = m.version;
            for s in (m.statements)(&p) {
                assert!(s.starts_with("CREATE TABLE IF NOT EXISTS ks."), "{s}");
            }
        }
        assert_eq!(last, LATEST_VERSION);
        let added: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| m.columns)
            .map(|c| c.ddl("ks"))
            .collect();
        assert_eq!(
            added,
            [
                "ALTER TABLE ks.user_keys ADD hourly boolean",
                "ALTER TABLE ks.user_days ADD hours set<int>",
                "ALTER TABLE ks.records_by_id ADD hour int",
                "ALTER TABLE ks.records_by_id ADD log_topic text",
                "ALTER TABLE ks.records_by_id ADD log_partition int",
                "ALTER TABLE ks.records_by_id ADD log_offset bigint",
            ]
        );
    }
}
