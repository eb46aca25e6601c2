//! Smoke test of the CQL database the tests run against (Cassandra locally, ScyllaDB in
//! production) through the `scylla` driver: a fresh keyspace, a table, a prepared insert and
//! a read back — the path `auditflow-store` takes for every audit row.

use auditflow_integration_tests::stack::{require_cql, unique_name};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_insert_reads_back() {
    let nodes = require_cql();
    let session = SessionBuilder::new()
        .known_nodes(&nodes)
        .build()
        .await
        .unwrap_or_else(|e| panic!("connecting to {nodes:?}: {e}"));
    let keyspace = unique_name("smoke_cql");
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {keyspace} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await
        .expect("creating the keyspace");

    let outcome = insert_and_read_back(&session, &keyspace).await;

    // Dropped whatever happened above, so failed runs do not pile up keyspaces.
    session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await
        .expect("dropping the keyspace");
    assert_eq!(outcome, Ok(("hello".to_string(), 42)));
}

/// Errors are returned, not raised, so the caller can drop the keyspace before failing.
async fn insert_and_read_back(session: &Session, keyspace: &str) -> Result<(String, i64), String> {
    let table =
        format!("CREATE TABLE {keyspace}.events (id text PRIMARY KEY, payload text, n bigint)");
    session
        .query_unpaged(table, &[])
        .await
        .map_err(|e| format!("creating the table: {e}"))?;
    let insert = session
        .prepare(format!(
            "INSERT INTO {keyspace}.events (id, payload, n) VALUES (?, ?, ?)"
        ))
        .await
        .map_err(|e| format!("preparing the insert: {e}"))?;
    session
        .execute_unpaged(&insert, ("a", "hello", 42_i64))
        .await
        .map_err(|e| format!("inserting a row: {e}"))?;
    session
        .query_unpaged(
            format!("SELECT payload, n FROM {keyspace}.events WHERE id = ?"),
            ("a",),
        )
        .await
        .map_err(|e| format!("selecting the row: {e}"))?
        .into_rows_result()
        .map_err(|e| format!("expected rows: {e}"))?
        .single_row::<(String, i64)>()
        .map_err(|e| format!("expected exactly one (text, bigint) row: {e}"))
}
