//! Helpers shared by the store's integration tests: settings for a test's own keyspace on the
//! local CQL node, a freshly migrated store in one, a plain CQL session to look at what the
//! store wrote and to drop the keyspace afterwards, and records as the sink stores them.

use auditflow_core::config::{RetentionPeriods, StoreSettings};
use auditflow_store::{Labels, RecordKind, RetentionClass, StorableRecord, Store};
use chrono::{DateTime, Utc};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use crate::stack::{require_cql, unique_name};

/// `keyspace` on the local CQL node (fails when it is down), sealed with the built-in
/// development key.
pub fn settings(keyspace: &str) -> StoreSettings {
    StoreSettings {
        nodes: require_cql(),
        keyspace: keyspace.to_owned(),
        // Not from this process's environment: the test picks its key explicitly.
        master_key_env: String::new(),
        insecure_dev_key: true,
        ..StoreSettings::default()
    }
}

/// A migrated store in a keyspace of its own (named after `prefix`), default retention.
pub async fn fresh_store(prefix: &str) -> (Store, StoreSettings) {
    let settings = settings(&unique_name(prefix));
    let store = Store::connect(&settings, &RetentionPeriods::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, settings)
}

/// Drops a test's keyspace; a failure only leaves it behind.
pub async fn drop_keyspace(keyspace: &str) {
    let _ = session()
        .await
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await;
}

/// The real `auditflow` binary with `args`, against `keyspace` on the local CQL node, sealed
/// with the built-in development key (as [`settings`]).
pub fn auditflow_at(keyspace: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::processes::auditflow_binary())
        .arg("--no-operator-log")
        .args(args)
        .env("AUDITFLOW_STORE__KEYSPACE", keyspace)
        .env("AUDITFLOW_STORE__NODES", format!("{:?}", require_cql()))
        .env("AUDITFLOW_STORE__MASTER_KEY_ENV", "")
        .output()
        .expect("running auditflow")
}

/// `user`'s action as the sink stores it: `action` and `outcome` as its labels, low risk. The
/// caller sets `event`, the CloudEvent the store seals (`Null` here).
pub fn user_action(
    user: &str,
    id: String,
    time: DateTime<Utc>,
    action: &str,
    class: RetentionClass,
    outcome: &str,
) -> StorableRecord {
    StorableRecord {
        id,
        kind: RecordKind::UserAction,
        class,
        event_time: time,
        event_type: "audit.user.action".into(),
        user_id: Some(user.to_owned()),
        labels: Labels {
            action: Some(action.into()),
            outcome: Some(outcome.into()),
            risk_level: Some("low".into()),
            ..Labels::default()
        },
        event: serde_json::Value::Null,
        position: None,
    }
}

/// `user`'s failed login as the security event the sink stores: severity warning, not
/// blocked. The caller sets `event`, the CloudEvent the store seals (`Null` here).
pub fn failed_login(user: &str, id: String, time: DateTime<Utc>) -> StorableRecord {
    StorableRecord {
        id,
        kind: RecordKind::SecurityEvent,
        class: RetentionClass::Security,
        event_time: time,
        event_type: "audit.security.event".into(),
        user_id: Some(user.to_owned()),
        labels: Labels {
            action: Some("failed_login".into()),
            severity: Some("warning".into()),
            blocked: Some(false),
            ..Labels::default()
        },
        event: serde_json::Value::Null,
        position: None,
    }
}

/// A session with the shared stack's CQL nodes.
pub async fn session() -> Session {
    session_at(&require_cql()).await
}

/// A CQL session with `nodes` (the shared stack's, or a private node's).
pub async fn session_at(nodes: &[String]) -> Session {
    SessionBuilder::new()
        .known_nodes(nodes)
        .build()
        .await
        .expect("CQL session")
}

/// Rows of `keyspace.table` on the shared stack's CQL nodes.
pub async fn count(keyspace: &str, table: &str) -> i64 {
    count_at(&require_cql(), keyspace, table).await
}

/// Rows of `keyspace.table` on `nodes`.
pub async fn count_at(nodes: &[String], keyspace: &str, table: &str) -> i64 {
    session_at(nodes)
        .await
        .query_unpaged(format!("SELECT COUNT(*) FROM {keyspace}.{table}"), ())
        .await
        .expect("count")
        .into_rows_result()
        .expect("rows")
        .single_row::<(i64,)>()
        .expect("one row")
        .0
}

/// Stored records (rows of `records_by_id`) on the shared stack's CQL nodes, read directly; 0
/// while the sink has not created the schema yet.
pub async fn stored_or_zero(keyspace: &str) -> i64 {
    stored_or_zero_at(&require_cql(), keyspace).await
}

/// [`stored_or_zero`] asked of `nodes`.
pub async fn stored_or_zero_at(nodes: &[String], keyspace: &str) -> i64 {
    let result = session_at(nodes)
        .await
        .query_unpaged(format!("SELECT COUNT(*) FROM {keyspace}.records_by_id"), ())
        .await;
    match result {
        Ok(r) => r
            .into_rows_result()
            .ok()
            .and_then(|r| r.single_row::<(i64,)>().ok())
            .map_or(0, |(n,)| n),
        Err(_) => 0,
    }
}
