//! SPEC section 9: `gdpr delete` erases by destroying the user's key; no DELETE is ever issued
//! against the time-series tables. Checked on a real Cassandra (or ScyllaDB) through the real
//! binary: every row of the four per-class tables and the two by-time tables (and the
//! `records_by_id` pointers) is still there after `gdpr delete` and `gdpr anonymize`, row for
//! row, while the key rows of the erased users really are gone. (That no CQL string in the
//! store names such a DELETE is the store's own unit test; this one watches the server.)

use auditflow_store::{RetentionClass, StorableRecord};
use chrono::{Duration, Utc};

use auditflow_integration_tests::store::{
    auditflow_at, count, drop_keyspace, failed_login, fresh_store, user_action,
};

const TABLES: [&str; 7] = [
    "audit_security_by_user",
    "audit_financial_by_user",
    "audit_marketing_by_user",
    "audit_general_by_user",
    "security_by_time",
    "records_by_time",
    "records_by_id",
];

/// A user's records in every retention class, and a failed login (a security row by time).
fn records_of(user: &str) -> Vec<StorableRecord> {
    let now = Utc::now();
    let classes = [
        ("login_attempt", RetentionClass::Security),
        ("user.payment.completed", RetentionClass::Financial),
        ("user.newsletter.subscribed", RetentionClass::Marketing),
        ("profile_update", RetentionClass::General),
    ];
    let mut out: Vec<StorableRecord> = (0..12)
        .map(|n| {
            let (action, class) = classes[n % classes.len()];
            let time = now - Duration::minutes(120 - n as i64);
            user_action(user, format!("{user}/{n}"), time, action, class, "success")
        })
        .collect();
    out.push(failed_login(
        user,
        format!("{user}/failed"),
        now - Duration::minutes(1),
    ));
    out
}

/// Rows of each table of `TABLES`, and of the key tables.
async fn counts(keyspace: &str) -> (Vec<i64>, [i64; 2]) {
    let mut series = Vec::new();
    for table in TABLES {
        series.push(count(keyspace, table).await);
    }
    (
        series,
        [
            count(keyspace, "user_keys").await,
            count(keyspace, "data_keys").await,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdpr_delete_and_anonymize_remove_no_time_series_row() {
    let (store, settings) = fresh_store("erasure_rows").await;
    let keyspace = settings.keyspace;
    let users = [
        "erased.one@example.com",
        "erased.two@example.com",
        "bystander@example.com",
    ];
    for user in users {
        store.write_records(&records_of(user)).await.unwrap();
    }
    let (series_before, keys_before) = counts(&keyspace).await;
    // 13 records a user: 3 in each class's table but security (3 + the failed login), one
    // security row by time, every record by time and by id.
    assert_eq!(series_before, [12, 9, 9, 9, 3, 39, 39], "the rows written");
    assert_eq!(keys_before, [3, 3], "one key per user");

    for (verb, user) in [("delete", users[0]), ("anonymize", users[1])] {
        let out = auditflow_at(&keyspace, &["gdpr", verb, "--user", user]);
        assert!(
            out.status.success(),
            "gdpr {verb}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let (series_after, keys_after) = counts(&keyspace).await;
    assert_eq!(
        keys_after,
        [1, 1],
        "the two erased users' key rows are gone"
    );
    assert_eq!(
        series_after, series_before,
        "time-series rows after erasure ({TABLES:?})"
    );
    drop_keyspace(&keyspace).await;
}
