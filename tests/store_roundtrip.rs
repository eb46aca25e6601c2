//! `auditflow-store` against a real Cassandra (or ScyllaDB): migrations, the write and read
//! paths, encryption at rest, crypto-shredding and long TTLs. Each test uses its own keyspace.
//! Fails, never skips, when the CQL node is down.

use std::collections::BTreeSet;

use auditflow_core::checkpoint::LogId;
use auditflow_core::config::{RetentionPeriods, StoreSettings};
use auditflow_integration_tests::stack::unique_name;
use auditflow_store::integrity::LogPosition;
use auditflow_store::{
    Labels, RecordKind, RetentionClass, StorableRecord, Store, StoreError, TimeRange, class_table,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use scylla::value::{CqlValue, Row};
use serde_json::{Value, json};

use auditflow_integration_tests::store::{
    drop_keyspace, failed_login, fresh_store, session, settings, user_action,
};

const USER: &str = "alice.liddell@example.com";
const IP: &str = "203.0.113.77";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0-rabbit-hole";
const SESSION: &str = "sess-9f8e7d6c5b4a";
const NEW_EMAIL: &str = "alice.new.mail@wonderland.example";

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .unwrap()
}

/// The recipe's lifecycle as stored records: account created, logins (one failed, with its
/// security event), a sensitive profile update, a privilege change, a data export, a payment.
///
/// Ids are the classifier's kind (derived, not personal): here a short tag per user.
fn lifecycle(user: &str) -> Vec<StorableRecord> {
    let tag = &user[..3];
    let action =
        |id: &str, time: DateTime<Utc>, action: &str, class, outcome: &str, data: Value| {
            let id = format!("{tag}/{id}");
            StorableRecord {
                event: json!({
                    "specversion": "1.0", "id": id, "source": "/accounts",
                    "type": "audit.user.action", "subject": format!("user:{user}"),
                    "time": time.to_rfc3339(),
                    "data": data,
                }),
                ..user_action(user, id, time, action, class, outcome)
            }
        };
    let personal = |extra: serde_json::Value| {
        let mut d = json!({"user_id": user, "ip_address": IP, "user_agent": USER_AGENT, "session_id": SESSION});
        d.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        d
    };
    let mut records = vec![
        action(
            "1",
            at(20, 9, 0),
            "account_created",
            RetentionClass::General,
            "success",
            personal(json!({"action": "account_created", "context": {"email": USER}})),
        ),
        action(
            "2",
            at(20, 9, 5),
            "login_attempt",
            RetentionClass::Security,
            "failure",
            personal(json!({"action": "login_attempt"})),
        ),
        action(
            "3",
            at(20, 9, 6),
            "login_attempt",
            RetentionClass::Security,
            "success",
            personal(json!({"action": "login_attempt"})),
        ),
        action(
            "4",
            at(21, 10, 0),
            "profile_update",
            RetentionClass::General,
            "success",
            personal(
                json!({"action": "profile_update", "context": {"sensitive_data": true, "new_email": NEW_EMAIL}}),
            ),
        ),
        action(
            "5",
            at(21, 11, 0),
            "privilege_change",
            RetentionClass::Security,
            "success",
            personal(json!({"action": "privilege_change", "context": {"new_role": "admin"}})),
        ),
        action(
            "7",
            at(22, 8, 0),
            "user.payment.completed",
            RetentionClass::Financial,
            "success",
            personal(json!({"action": "user.payment.completed"})),
        ),
        action(
            "8",
            at(22, 8, 30),
            "user.newsletter.subscribed",
            RetentionClass::Marketing,
            "success",
            personal(json!({"action": "user.newsletter.subscribed"})),
        ),
    ];
    records.push(StorableRecord {
        event: json!({"id": format!("{tag}/2-security"), "type": "audit.security.event",
            "data": {"event_type": "failed_login", "user_id": user, "source_ip": IP,
                     "details": {"user_agent": USER_AGENT}}}),
        ..failed_login(user, format!("{tag}/2-security"), at(20, 9, 5))
    });
    records.push(StorableRecord {
        id: format!("{tag}/6"),
        kind: RecordKind::DataAccess,
        class: RetentionClass::General,
        event_time: at(21, 12, 0),
        event_type: "audit.data.access".into(),
        user_id: Some(user.to_owned()),
        labels: Labels {
            action: Some("read".into()),
            data_type: Some("user_profile".into()),
            record_count: Some(1),
            sensitive: Some(true),
            ..Labels::default()
        },
        event: json!({"id": format!("{tag}/6"), "data": {"user_id": user, "operation": "read", "purpose": "export for alice"}}),
        position: None,
    });
    records
}

fn ids(page: &auditflow_store::Page) -> Vec<String> {
    page.records.iter().map(|r| r.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_is_idempotent() {
    let (store, settings) = fresh_store("store_mig").await;
    let again = store.migrate().await.expect("second migrate");
    assert!(again.applied.is_empty(), "{again:?}");
    assert!(again.altered.is_empty(), "{again:?}");
    // A new process (new connection) sees a current schema and can write.
    let other = Store::connect(&settings, &RetentionPeriods::default())
        .await
        .unwrap();
    let third = other.migrate().await.unwrap();
    assert!(third.applied.is_empty());
    other
        .write_records(&lifecycle("bob"))
        .await
        .expect("write after re-migrate");

    // The shard count is pinned by the first migration: another configured count must not
    // hide rows already written.
    let resharded = StoreSettings {
        time_shards: 32,
        ..settings.clone()
    };
    let resharded = Store::connect(&resharded, &RetentionPeriods::default())
        .await
        .unwrap();
    resharded.migrate().await.unwrap();
    let security = resharded
        .security_events(at(20, 0, 0), at(23, 0, 0), 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&security), vec!["bob/2-security".to_string()]);

    // Changed retention: only the TTLs and windows move, nothing is recreated.
    let longer = RetentionPeriods {
        general_days: 800,
        ..RetentionPeriods::default()
    };
    let reconfigured = Store::connect(&settings, &longer).await.unwrap();
    let report = reconfigured.migrate().await.unwrap();
    assert_eq!(report.altered, vec!["audit_general_by_user".to_string()]);
    assert!(reconfigured.migrate().await.unwrap().altered.is_empty());
    drop_keyspace(&settings.keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_keyspace_is_reported_not_created() {
    let settings = settings(&unique_name("store_none"));
    let store = Store::connect(&settings, &RetentionPeriods::default())
        .await
        .unwrap();
    let err = store
        .query_user(USER, TimeRange::default(), &[], 10, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SchemaOutdated { .. }), "{err}");
    assert!(err.to_string().contains("auditflow migrate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_reads_newest_first_filtered_and_paged() {
    let (store, settings) = fresh_store("store_life").await;
    let records = lifecycle(USER);
    store.write_records(&records).await.expect("write");
    // Re-delivery: the same records again, and again concurrently, change nothing.
    store.write_records(&records).await.expect("rewrite");
    let (a, b) = tokio::join!(
        store.write_records(&records[..5]),
        store.write_records(&records[3..])
    );
    a.unwrap();
    b.unwrap();
    store.write_records(&lifecycle("bob")).await.unwrap();

    let all = store
        .query_user(USER, TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    let mut expected: Vec<&StorableRecord> = records.iter().collect();
    expected.sort_by(|x, y| y.event_time.cmp(&x.event_time).then(x.id.cmp(&y.id)));
    assert_eq!(
        ids(&all),
        expected.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    assert!(all.next.is_none());
    let first = &all.records[0];
    assert_eq!(first.class, RetentionClass::Marketing);
    assert_eq!(
        first.event.as_ref().unwrap()["data"]["user_agent"],
        USER_AGENT
    );
    let classes: BTreeSet<_> = all.records.iter().map(|r| r.class).collect();
    assert_eq!(classes.len(), 4, "every retention class is read");

    let logins = store
        .query_user(
            USER,
            TimeRange::default(),
            &["login_attempt".into()],
            100,
            None,
        )
        .await
        .unwrap();
    assert_eq!(ids(&logins), vec!["ali/3".to_string(), "ali/2".to_string()]);

    let range = TimeRange {
        from: Some(at(21, 0, 0)),
        to: Some(at(22, 8, 0)),
    };
    let day21 = store.query_user(USER, range, &[], 100, None).await.unwrap();
    assert_eq!(
        ids(&day21),
        vec![
            "ali/6".to_string(),
            "ali/5".to_string(),
            "ali/4".to_string()
        ]
    );

    // Pages of 2 add up to the whole trail, in order, with no repeats.
    let mut paged = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .query_user(USER, TimeRange::default(), &[], 2, token.as_ref())
            .await
            .unwrap();
        assert!(page.records.len() <= 2);
        paged.extend(ids(&page));
        match page.next {
            Some(next) => {
                // Tokens survive printing and parsing (the CLI's round trip).
                token = Some(auditflow_store::PageToken::parse(&next.to_string()).unwrap());
            }
            None => break,
        }
    }
    assert_eq!(paged, ids(&all));

    let one = store.get_by_id("ali/4").await.unwrap().expect("by id");
    assert_eq!(
        one.event.unwrap()["data"]["context"]["new_email"],
        NEW_EMAIL
    );
    assert!(store.get_by_id("no-such-id").await.unwrap().is_none());

    let security = store
        .security_events(at(20, 0, 0), at(23, 0, 0), 100, None)
        .await
        .unwrap();
    let security_ids = ids(&security);
    assert!(
        security_ids.contains(&"ali/2-security".to_string()),
        "{security_ids:?}"
    );
    assert!(
        security_ids.contains(&"bob/2-security".to_string()),
        "{security_ids:?}"
    );
    assert_eq!(
        security.records.len(),
        2,
        "one security event per user, stored once each"
    );

    assert!(
        store
            .query_user("nobody", TimeRange::default(), &[], 10, None)
            .await
            .unwrap()
            .records
            .is_empty()
    );
    drop_keyspace(&settings.keyspace).await;
}

/// Every cell of every table, as bytes: text as UTF-8, blobs raw, anything else as printed.
fn cell_bytes(value: &CqlValue, out: &mut Vec<Vec<u8>>) {
    match value {
        CqlValue::Text(s) | CqlValue::Ascii(s) => out.push(s.as_bytes().to_vec()),
        CqlValue::Blob(b) => out.push(b.clone()),
        CqlValue::List(items) | CqlValue::Set(items) => {
            items.iter().for_each(|v| cell_bytes(v, out))
        }
        CqlValue::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            cell_bytes(k, out);
            cell_bytes(v, out);
        }),
        other => out.push(format!("{other:?}").into_bytes()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_rows_hold_no_plaintext_personal_data() {
    let (store, settings) = fresh_store("store_raw").await;
    store.write_records(&lifecycle(USER)).await.unwrap();
    let raw = session().await;
    let tables = raw
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (&settings.keyspace,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect::<Vec<_>>();
    assert!(tables.len() >= 10, "{tables:?}");
    let needles: Vec<&str> = vec![
        USER,
        "alice.liddell",
        IP,
        USER_AGENT,
        "rabbit-hole",
        SESSION,
        NEW_EMAIL,
        "wonderland",
        "export for alice",
    ];
    let mut cells = 0;
    for table in &tables {
        let result = raw
            .query_unpaged(format!("SELECT * FROM {}.{table}", settings.keyspace), ())
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        for row in result.rows::<Row>().unwrap() {
            let mut bytes = Vec::new();
            for value in row.unwrap().columns.iter().flatten() {
                cell_bytes(value, &mut bytes);
            }
            for cell in bytes {
                cells += 1;
                for needle in &needles {
                    let found = cell.windows(needle.len()).any(|w| w == needle.as_bytes());
                    assert!(!found, "plaintext {needle:?} stored in table {table}");
                }
            }
        }
    }
    assert!(cells > 100, "the grep saw the rows ({cells} cells)");
    drop_keyspace(&settings.keyspace).await;
}

/// The tables a record's rows live in (see the store's `write` module).
fn record_tables() -> Vec<&'static str> {
    let mut tables: Vec<&str> = RetentionClass::ALL
        .iter()
        .map(|c| class_table(*c))
        .collect();
    tables.extend([
        "security_by_time",
        "records_by_time",
        "records_by_id",
        "user_days",
        "log_leaves",
    ]);
    tables
}

/// `SELECT {columns}` of every row of `table`.
async fn select_all(
    keyspace: &str,
    table: &str,
    columns: &str,
) -> scylla::response::query_result::QueryRowsResult {
    session()
        .await
        .query_unpaged(format!("SELECT {columns} FROM {keyspace}.{table}"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
}

/// Every row of the record tables, printed and sorted: equal dumps are equal bytes.
async fn dump_record_tables(keyspace: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for table in record_tables() {
        let result = select_all(keyspace, table, "*").await;
        for row in result.rows::<Row>().unwrap() {
            rows.push(format!("{table} {:?}", row.unwrap().columns));
        }
    }
    rows.sort();
    rows
}

/// Rows of the per-user tables and `security_by_time` whose `event` holds no ciphertext.
async fn rows_without_ciphertext(keyspace: &str) -> usize {
    let mut empty = 0;
    for table in &record_tables()[..5] {
        empty += select_all(keyspace, table, "event")
            .await
            .rows::<(Option<Vec<u8>>,)>()
            .unwrap()
            .filter(|r| r.as_ref().unwrap().0.as_deref() == Some(&[][..]))
            .count();
    }
    empty
}

/// The tamper-evident log hashes what is stored, so storing a record again (a redelivery after
/// a crash, a rebalance, a replay) must store the same bytes: live and shredded alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_a_record_again_stores_the_same_bytes() {
    let (store, settings) = fresh_store("store_same_bytes").await;
    let retention = RetentionPeriods::default();
    // A fresh handle each time: no cached key, no remembered user_days row.
    // As the sink stores them: each at its Kafka position, so each with its leaf.
    let positioned = || {
        let mut records = lifecycle(USER);
        for (offset, record) in records.iter_mut().enumerate() {
            record.position = Some(LogPosition {
                log: LogId {
                    topic: "audit.user.action".into(),
                    partition: 2,
                },
                offset: offset as i64,
                time_ms: record.event_time.timestamp_millis() + 5,
            });
        }
        records
    };
    let write_again = || async {
        let fresh = Store::connect(&settings, &retention).await.unwrap();
        fresh.write_records(&positioned()).await.unwrap();
    };
    let ks = &settings.keyspace;
    store.write_records(&positioned()).await.unwrap();
    let first = dump_record_tables(ks).await;
    assert!(first.len() > 20, "{first:?}");
    write_again().await;
    assert_eq!(dump_record_tables(ks).await, first);
    assert_eq!(rows_without_ciphertext(ks).await, 0);

    // After the erasure, the same records arrive late: shredded, the same rows every time.
    assert!(store.destroy_user_key(USER).await.unwrap());
    write_again().await;
    let shredded = dump_record_tables(ks).await;
    assert!(shredded.len() > first.len(), "shredded rows are new rows");
    let empty = rows_without_ciphertext(ks).await;
    let records = positioned();
    let security = records
        .iter()
        .filter(|r| r.kind == RecordKind::SecurityEvent)
        .count();
    assert_eq!(
        empty,
        records.len() + security,
        "no ciphertext in any shredded row"
    );
    write_again().await;
    assert_eq!(dump_record_tables(ks).await, shredded);
    drop_keyspace(ks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_key_erases_the_user_but_keeps_the_counts() {
    let (store, settings) = fresh_store("store_shred").await;
    store.write_records(&lifecycle(USER)).await.unwrap();
    store.write_records(&lifecycle("bob")).await.unwrap();
    let before = store
        .query_user(USER, TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(before.records.len(), 9);

    assert!(store.destroy_user_key(USER).await.unwrap());
    assert!(!store.destroy_user_key(USER).await.unwrap(), "idempotent");

    // No query finds the user, in this process or a fresh one (no cache to hide behind).
    assert!(
        store
            .query_user(USER, TimeRange::default(), &[], 100, None)
            .await
            .unwrap()
            .records
            .is_empty()
    );
    let fresh = Store::connect(&settings, &RetentionPeriods::default())
        .await
        .unwrap();
    assert!(
        fresh
            .query_user(USER, TimeRange::default(), &[], 100, None)
            .await
            .unwrap()
            .records
            .is_empty()
    );

    // The rows still exist and count (no DELETE on time-series tables) but reveal nothing.
    let erased = fresh.get_by_id("ali/5").await.unwrap().expect("row kept");
    assert!(erased.event.is_none());
    assert_eq!(erased.class, RetentionClass::Security);
    assert_eq!(erased.labels.action.as_deref(), Some("privilege_change"));
    let security = fresh
        .security_events(at(20, 0, 0), at(23, 0, 0), 100, None)
        .await
        .unwrap();
    assert_eq!(
        security.records.len(),
        2,
        "erased security events still count"
    );
    let erased_event = security
        .records
        .iter()
        .find(|r| r.id == "ali/2-security")
        .unwrap();
    assert!(erased_event.event.is_none());
    assert_eq!(erased_event.labels.action.as_deref(), Some("failed_login"));

    // Reports count every record by time, the erased user's financial one included.
    let all = fresh
        .records_by_time(at(20, 0, 0), at(23, 0, 0), 100, None)
        .await
        .unwrap();
    assert_eq!(all.records.len(), 18);
    assert!(all.records.iter().all(|r| r.event.is_none()), "labels only");
    let payment = all
        .records
        .iter()
        .find(|r| r.id == "ali/7")
        .expect("erased payment counted");
    assert_eq!(payment.class, RetentionClass::Financial);
    let paged = fresh
        .records_by_time(at(20, 0, 0), at(23, 0, 0), 10, None)
        .await
        .unwrap();
    let rest = fresh
        .records_by_time(at(20, 0, 0), at(23, 0, 0), 10, paged.next.as_ref())
        .await
        .unwrap();
    assert_eq!(
        ids(&paged)
            .into_iter()
            .chain(ids(&rest))
            .collect::<Vec<_>>(),
        ids(&all)
    );

    // Bob is untouched.
    let bob = fresh
        .query_user("bob", TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(bob.records.len(), 9);
    assert!(bob.records.iter().all(|r| r.event.is_some()));

    // No key material is left for the user; every remaining wrapped key opens someone else's rows.
    let raw = session().await;
    let keys = raw
        .query_unpaged(
            format!("SELECT key_id FROM {}.data_keys", settings.keyspace),
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(uuid::Uuid,)>()
        .unwrap()
        .count();
    assert_eq!(keys, 1, "only bob's key remains");

    // Erasure is final (docs/operations.md; changed 2026-12-01, this test used to expect the
    // opposite): the user's records dated before the erasure that arrive again later — a
    // lagging sink, a replay — are stored, and counted, but never readable again.
    store.write_records(&lifecycle(USER)).await.unwrap();
    for reader in [&store, &fresh] {
        assert!(
            reader
                .query_user(USER, TimeRange::default(), &[], 100, None)
                .await
                .unwrap()
                .records
                .is_empty(),
            "a replayed record dated before the erasure must not resurrect the user"
        );
    }
    let replayed = fresh.get_by_id("ali/5").await.unwrap().expect("row kept");
    assert!(
        replayed.event.is_none(),
        "replayed record stored unreadable"
    );
    let counted = fresh
        .records_by_time(at(20, 0, 0), at(23, 0, 0), 100, None)
        .await
        .unwrap();
    assert_eq!(counted.records.len(), 18, "still counted once each");
    let keys_now = raw
        .query_unpaged(
            format!("SELECT key_id FROM {}.data_keys", settings.keyspace),
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(uuid::Uuid,)>()
        .unwrap()
        .count();
    assert_eq!(keys_now, 1, "no key was created for the replayed records");

    // A returning user id's activity dated after the erasure starts a new, unlinked trail.
    let mut returning = lifecycle(USER).remove(0);
    returning.id = "ali/returning".into();
    returning.event_time = Utc::now() + Duration::minutes(1);
    store
        .write_records(std::slice::from_ref(&returning))
        .await
        .unwrap();
    let again = fresh
        .query_user(USER, TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&again), ["ali/returning"]);
    drop_keyspace(&settings.keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_key_is_refused() {
    let (store, settings) = fresh_store("store_key").await;
    store.write_records(&lifecycle(USER)[..1]).await.unwrap();
    let dir = std::env::temp_dir().join(unique_name("key"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("master.key");
    std::fs::write(&file, "42".repeat(32)).unwrap();
    let other = StoreSettings {
        master_key_file: Some(file),
        insecure_dev_key: false,
        ..settings.clone()
    };
    let wrong = Store::connect(&other, &RetentionPeriods::default())
        .await
        .unwrap();
    let err = wrong
        .query_user(USER, TimeRange::default(), &[], 10, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey), "{err}");
    assert!(wrong.write_records(&lifecycle(USER)).await.is_err());
    let _ = std::fs::remove_dir_all(dir);
    drop_keyspace(&settings.keyspace).await;
}

async fn read_ttl(keyspace: &str, table: &str) -> i64 {
    let raw = session().await;
    raw.query_unpaged(format!("SELECT TTL(event) FROM {keyspace}.{table}"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(Option<i32>,)>()
        .unwrap()
        .map(|r| i64::from(r.unwrap().0.unwrap_or(0)))
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seven_year_ttl_is_accepted_and_2038_is_never_silently_capped() {
    let (store, settings) = fresh_store("store_ttl").await;
    let mut record = lifecycle(USER).remove(1);
    record.event_time = Utc::now();
    store
        .write_records(std::slice::from_ref(&record))
        .await
        .expect("7-year TTL accepted");
    let seven_years = 2557 * 86_400;
    let ttl = read_ttl(&settings.keyspace, "audit_security_by_user").await;
    assert!(
        ttl > seven_years - 600 && ttl <= seven_years,
        "TTL read back: {ttl}"
    );
    let limit = store.expiry_limit().await.unwrap();
    if std::env::var("AUDITFLOW_STACK").as_deref() != Ok("external") {
        // The project's stack runs Cassandra 5.0 with `storage_compatibility_mode: NONE`.
        assert_eq!(
            limit.limit(),
            None,
            "the local stack stores expiry past 2038"
        );
    }
    drop_keyspace(&settings.keyspace).await;

    // 15 years expires in 2041: kept faithfully where the probe found no limit, refused with
    // a clear error where it found one; never capped. Which case applies is the probe's
    // finding, not whichever outcome happens.
    let fifteen = RetentionPeriods {
        security_days: 5479,
        ..RetentionPeriods::default()
    };
    let settings = self::settings(&unique_name("store_ttl15"));
    let store = Store::connect(&settings, &fifteen).await.unwrap();
    let migrated = store.migrate().await;
    match limit.limit() {
        None => {
            let report = migrated.expect("no expiry limit: a 15-year retention is accepted");
            assert!(report.expiry_limit.is_none(), "{report:?}");
            store
                .write_records(std::slice::from_ref(&record))
                .await
                .unwrap();
            let ttl = read_ttl(&settings.keyspace, "audit_security_by_user").await;
            let wanted = 5479 * 86_400;
            assert!(
                ttl > wanted - 600 && ttl <= wanted,
                "a 2041 expiry was stored as TTL {ttl}"
            );
        }
        Some(server_limit) => {
            let err = migrated.expect_err("an expiry past the server's limit must be refused");
            assert!(
                matches!(err, StoreError::ExpiryBeyondServerLimit { .. }),
                "limit {server_limit}: {err}"
            );
            assert!(
                store
                    .write_records(std::slice::from_ref(&record))
                    .await
                    .is_err()
            );
        }
    }
    drop_keyspace(&settings.keyspace).await;
}

/// A record of a busy non-person subject (`unknown`, `system`) or of no user at all (`None`),
/// as the sink stores the classifier's output. The id tags the subject, for the raw reads.
fn subject_record(
    subject: Option<&str>,
    id: &str,
    time: DateTime<Utc>,
    action: &str,
    class: RetentionClass,
) -> StorableRecord {
    let kind = if subject.is_some() {
        RecordKind::UserAction
    } else {
        RecordKind::Alert
    };
    StorableRecord {
        id: id.to_owned(),
        kind,
        class,
        event_time: time,
        event_type: "audit.user.action".into(),
        user_id: subject.map(str::to_owned),
        labels: Labels {
            action: Some(action.into()),
            outcome: Some("failure".into()),
            ..Labels::default()
        },
        event: json!({"id": id, "data": {"user_id": subject, "ip_address": IP, "action": action}}),
        position: None,
    }
}

/// A credential-stuffing night of `unknown`: failed logins (security class) and password
/// resets (general class) spread over hours 1 to 23 of the 20th, two at the same millisecond
/// (ordered by id), and one on the 21st.
fn unknown_traffic() -> Vec<StorableRecord> {
    let unknown = |n: u32, time, action, class| {
        subject_record(Some("unknown"), &format!("unk/{n:02}"), time, action, class)
    };
    let login = "login_attempt";
    let reset = "user.password.reset";
    vec![
        unknown(1, at(20, 1, 10), login, RetentionClass::Security),
        unknown(2, at(20, 5, 0), login, RetentionClass::Security),
        unknown(3, at(20, 5, 30), reset, RetentionClass::General),
        unknown(4, at(20, 9, 59), login, RetentionClass::Security),
        unknown(5, at(20, 13, 0), reset, RetentionClass::General),
        unknown(6, at(20, 13, 20), login, RetentionClass::Security),
        unknown(7, at(20, 13, 20), login, RetentionClass::Security),
        unknown(8, at(20, 13, 45), reset, RetentionClass::General),
        unknown(9, at(20, 22, 0), login, RetentionClass::Security),
        unknown(10, at(20, 23, 59), login, RetentionClass::Security),
        unknown(11, at(21, 0, 5), login, RetentionClass::Security),
    ]
}

fn newest_first(records: &[StorableRecord]) -> Vec<String> {
    let mut sorted: Vec<&StorableRecord> = records.iter().collect();
    sorted.sort_by(|x, y| y.event_time.cmp(&x.event_time).then(x.id.cmp(&y.id)));
    sorted.into_iter().map(|r| r.id.clone()).collect()
}

/// Every page of `limit` of a subject's trail, followed by its tokens.
async fn all_pages(store: &Store, user: &str, actions: &[String], limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .query_user(user, TimeRange::default(), actions, limit, token.as_ref())
            .await
            .unwrap();
        assert!(page.records.len() <= limit);
        out.extend(ids(&page));
        match page.next {
            Some(next) => {
                token = Some(auditflow_store::PageToken::parse(&next.to_string()).unwrap())
            }
            None => return out,
        }
    }
}

/// The partitions the per-user tables hold rows of ids starting with `prefix` in: day →
/// pseudonyms, read with raw CQL.
async fn partitions_of(
    keyspace: &str,
    prefix: &str,
) -> std::collections::BTreeMap<chrono::NaiveDate, BTreeSet<uuid::Uuid>> {
    let raw = session().await;
    let mut out = std::collections::BTreeMap::<_, BTreeSet<_>>::new();
    for class in RetentionClass::ALL {
        let table = auditflow_store::class_table(class);
        let rows = raw
            .query_unpaged(
                format!("SELECT pseudonym, day, event_id FROM {keyspace}.{table}"),
                (),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        for row in rows
            .rows::<(uuid::Uuid, chrono::NaiveDate, String)>()
            .unwrap()
        {
            let (pseudonym, day, id) = row.unwrap();
            if id.starts_with(prefix) {
                out.entry(day).or_default().insert(pseudonym);
            }
        }
    }
    out
}

fn day(d: u32) -> chrono::NaiveDate {
    at(d, 0, 0).date_naive()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_non_person_subjects_are_partitioned_by_hour() {
    let (store, settings) = fresh_store("store_hourly").await;
    let traffic = unknown_traffic();
    // Two batches in reverse order, then all again: placement depends on the record only.
    store.write_records(&traffic[5..]).await.unwrap();
    store.write_records(&traffic[..5]).await.unwrap();
    store.write_records(&traffic).await.unwrap();
    store.write_records(&lifecycle(USER)).await.unwrap();
    // Records naming no user (an ip-only alert) share one key: hourly too.
    let no_user = [
        subject_record(
            None,
            "nou/1",
            at(20, 3, 0),
            "brute_force",
            RetentionClass::Security,
        ),
        subject_record(
            None,
            "nou/2",
            at(20, 4, 0),
            "brute_force",
            RetentionClass::Security,
        ),
    ];
    store.write_records(&no_user).await.unwrap();

    // The whole trail, newest first across hour buckets, days and classes, decrypted.
    let expected = newest_first(&traffic);
    let all = store
        .query_user("unknown", TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&all), expected);
    assert!(all.next.is_none());
    for record in &all.records {
        let event = record.event.as_ref().expect("decrypted");
        assert_eq!(event["id"], record.id.as_str());
        assert_eq!(event["data"]["ip_address"], IP);
    }

    // Filtered by action, and a time range cutting through hours 5 and 13.
    let logins = all_pages(&store, "unknown", &["login_attempt".into()], 100).await;
    let expected_logins: Vec<String> = expected
        .iter()
        .filter(|id| {
            traffic
                .iter()
                .any(|r| &r.id == *id && r.labels.action.as_deref() == Some("login_attempt"))
        })
        .cloned()
        .collect();
    assert_eq!(expected_logins.len(), 8);
    assert_eq!(logins, expected_logins);
    let range = TimeRange {
        from: Some(at(20, 5, 15)),
        to: Some(at(20, 13, 20)),
    };
    let window = store
        .query_user("unknown", range, &[], 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&window), vec!["unk/05", "unk/04", "unk/03"]);

    // Pages of 1, 2 and 3 (and filtered pages of 2) add up to the whole trail: no loss, no
    // repeat across bucket boundaries, including the two rows of the same millisecond.
    for limit in [1, 2, 3] {
        assert_eq!(
            all_pages(&store, "unknown", &[], limit).await,
            expected,
            "limit {limit}"
        );
    }
    assert_eq!(
        all_pages(&store, "unknown", &["login_attempt".into()], 2).await,
        expected_logins
    );

    // The person's trail is untouched by all this.
    let alice = store
        .query_user(USER, TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&alice), newest_first(&lifecycle(USER)));

    // By id, an hourly row is found in its bucket and opens.
    let by_id = store.get_by_id("unk/07").await.unwrap().expect("by id");
    assert_eq!(by_id.event.unwrap()["data"]["action"], "login_attempt");
    let alert = store.get_by_id("nou/2").await.unwrap().expect("by id");
    assert_eq!(alert.event.unwrap()["data"]["ip_address"], IP);
    let security = store
        .security_events(at(20, 0, 0), at(21, 0, 0), 100, None)
        .await
        .unwrap();
    assert!(
        security
            .records
            .iter()
            .filter(|r| r.id.starts_with("nou/"))
            .all(|r| r.event.is_some())
    );

    // Raw CQL: `unknown`'s 20th is in one partition per hour written (1, 5, 9, 13, 22, 23),
    // the no-user subject's in two, while each of Alice's days is one partition.
    let unknown = partitions_of(&settings.keyspace, "unk/").await;
    assert_eq!(unknown[&day(20)].len(), 6, "{unknown:?}");
    assert_eq!(unknown[&day(21)].len(), 1);
    assert!(unknown[&day(20)].is_disjoint(&unknown[&day(21)]));
    let no_user = partitions_of(&settings.keyspace, "nou/").await;
    assert_eq!(no_user[&day(20)].len(), 2, "{no_user:?}");
    let alice_days = partitions_of(&settings.keyspace, "ali/").await;
    assert_eq!(alice_days.len(), 3);
    assert!(alice_days.values().all(|p| p.len() == 1), "{alice_days:?}");
    let raw = session().await;
    let hour_of = |id: &'static str| {
        let raw = &raw;
        let ks = &settings.keyspace;
        async move {
            raw.query_unpaged(
                format!("SELECT hour FROM {ks}.records_by_id WHERE event_id = ?"),
                (id,),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .first_row::<(Option<i32>,)>()
            .unwrap()
            .0
        }
    };
    assert_eq!(hour_of("unk/09").await, Some(22));
    assert_eq!(hour_of("ali/4").await, None);

    // The reserved subjects cannot be erased (docs/operations.md; changed 2026-12-01, this test
    // used to erase `unknown`): their key seals the records of everyone without a user id.
    for reserved in ["unknown", "system"] {
        let refused = store.destroy_user_key(reserved).await;
        assert!(
            matches!(refused, Err(StoreError::ReservedSubject)),
            "{reserved}: {refused:?}"
        );
    }
    assert!(
        store
            .get_by_id("unk/07")
            .await
            .unwrap()
            .unwrap()
            .event
            .is_some(),
        "a refused erasure destroys nothing"
    );
    assert_eq!(
        all_pages(&store, "unknown", &[], 100).await.len(),
        newest_first(&traffic).len()
    );
    drop_keyspace(&settings.keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyspace_from_before_hour_buckets_upgrades_and_its_keys_stay_daily() {
    // A keyspace as a build of schema version 3 left it: `unknown` has a key and rows in day
    // partitions. Written here with no hourly subjects (new daily keys leave the new columns
    // unset, as version 3 did), then version 4's columns and record are removed.
    let keyspace = unique_name("store_v3");
    let old = StoreSettings {
        hourly_subjects: Vec::new(),
        ..settings(&keyspace)
    };
    let store = Store::connect(&old, &RetentionPeriods::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let traffic = unknown_traffic();
    store.write_records(&traffic[..6]).await.unwrap();
    store.write_records(&lifecycle(USER)).await.unwrap();
    drop(store);
    let raw = session().await;
    for ddl in [
        format!("ALTER TABLE {keyspace}.user_keys DROP hourly"),
        format!("ALTER TABLE {keyspace}.user_days DROP hours"),
        format!("ALTER TABLE {keyspace}.records_by_id DROP hour"),
        format!("DELETE FROM {keyspace}.schema_migrations WHERE version = 4"),
        // Version 5 (erased subjects) came later still.
        format!("DROP TABLE {keyspace}.erased_subjects"),
        format!("DROP TABLE {keyspace}.erasures_by_day"),
        format!("DELETE FROM {keyspace}.schema_migrations WHERE version = 5"),
        // And version 6 (the tamper-evident log) after that.
        format!("DROP TABLE {keyspace}.log_leaves"),
        format!("DROP TABLE {keyspace}.log_state"),
        format!("DROP TABLE {keyspace}.checkpoints"),
        format!("DELETE FROM {keyspace}.schema_migrations WHERE version = 6"),
        // And version 7's columns.
        format!("ALTER TABLE {keyspace}.records_by_id DROP log_topic"),
        format!("ALTER TABLE {keyspace}.records_by_id DROP log_partition"),
        format!("ALTER TABLE {keyspace}.records_by_id DROP log_offset"),
        format!("DELETE FROM {keyspace}.schema_migrations WHERE version = 7"),
    ] {
        raw.query_unpaged(ddl, ()).await.unwrap();
    }

    // This build (`unknown` configured hourly) refuses the old schema until migrated...
    let new = settings(&keyspace);
    assert_eq!(new.hourly_subjects, ["unknown", "system"]);
    let store = Store::connect(&new, &RetentionPeriods::default())
        .await
        .unwrap();
    let err = store
        .query_user("unknown", TimeRange::default(), &[], 10, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SchemaOutdated { .. }), "{err}");
    // ... and an interrupted earlier run of version 4 (one column added) is no obstacle.
    raw.query_unpaged(
        format!("ALTER TABLE {keyspace}.user_keys ADD hourly boolean"),
        (),
    )
    .await
    .unwrap();
    let report = store.migrate().await.unwrap();
    assert_eq!(report.applied, vec![4, 5, 6, 7]);
    assert_eq!(report.current_version, 7);
    assert!(store.migrate().await.unwrap().applied.is_empty());

    // Old rows read as before; `unknown`'s existing key stays daily for new rows too.
    store.write_records(&traffic[6..]).await.unwrap();
    let all = store
        .query_user("unknown", TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&all), newest_first(&traffic));
    assert!(all.records.iter().all(|r| r.event.is_some()));
    assert_eq!(
        all_pages(&store, "unknown", &[], 4).await,
        newest_first(&traffic)
    );
    let alice = store
        .query_user(USER, TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&alice), newest_first(&lifecycle(USER)));
    assert!(
        store
            .get_by_id("unk/02")
            .await
            .unwrap()
            .unwrap()
            .event
            .is_some()
    );
    let unknown = partitions_of(&keyspace, "unk/").await;
    assert!(unknown.values().all(|p| p.len() == 1), "{unknown:?}");

    // A subject first seen after the upgrade gets hour buckets.
    let system: Vec<StorableRecord> = [(1, 2), (2, 14), (3, 14)]
        .into_iter()
        .map(|(n, hour)| {
            subject_record(
                Some("system"),
                &format!("sys/{n}"),
                at(20, hour, 0),
                "system.backup.completed",
                RetentionClass::General,
            )
        })
        .collect();
    store.write_records(&system).await.unwrap();
    assert_eq!(partitions_of(&keyspace, "sys/").await[&day(20)].len(), 2);
    let system_trail = store
        .query_user("system", TimeRange::default(), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&system_trail), vec!["sys/2", "sys/3", "sys/1"]);
    drop_keyspace(&keyspace).await;
}

/// The `user_days` rows of a keyspace: (pseudonym, day, class).
async fn user_days(keyspace: &str) -> Vec<(uuid::Uuid, chrono::NaiveDate, String)> {
    let raw = session().await;
    raw.query_unpaged(
        format!("SELECT pseudonym, day, class FROM {keyspace}.user_days"),
        (),
    )
    .await
    .unwrap()
    .into_rows_result()
    .unwrap()
    .rows::<(uuid::Uuid, chrono::NaiveDate, String)>()
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_day_index_row_is_written_once_per_refresh_and_outlives_its_records() {
    let (store, settings) = fresh_store("store_index_once").await;
    let ks = &settings.keyspace;
    let now = Utc::now();
    let record = |n: u32| {
        let id = format!("idx/{n}");
        user_action(USER, id, now, "login", RetentionClass::General, "success")
    };
    store.write_records(&[record(1)]).await.unwrap();
    let rows = user_days(ks).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (pseudonym, day, class) = rows[0].clone();

    // Remove the index row behind the store's back: a second batch of the same user, day and
    // class must not write it again (the store remembers it wrote it)...
    let raw = session().await;
    let delete =
        format!("DELETE FROM {ks}.user_days WHERE pseudonym = ? AND day = ? AND class = ?");
    raw.query_unpaged(delete, (pseudonym, day, &class))
        .await
        .unwrap();
    store.write_records(&[record(2)]).await.unwrap();
    assert!(
        user_days(ks).await.is_empty(),
        "the index row was rewritten by the second batch"
    );
    // ...while a store that did not write it (another process, a restart) does.
    let other = Store::connect(&settings, &RetentionPeriods::default())
        .await
        .unwrap();
    other.write_records(&[record(3)]).await.unwrap();
    assert_eq!(user_days(ks).await, rows);

    // An hourly subject's index cell lives a day longer than the record it indexes.
    let unknown = subject_record(
        Some("unknown"),
        "idx/unknown",
        now,
        "login_attempt",
        RetentionClass::Security,
    );
    store.write_records(&[unknown]).await.unwrap();
    let ttls = raw
        .query_unpaged(
            format!(
                "SELECT TTL(hours) FROM {ks}.user_days WHERE class = 'security' ALLOW FILTERING"
            ),
            (),
        )
        .await;
    // Cassandra 5.0 (the project's stack) reads the TTL of a collection's cells; ScyllaDB and
    // Cassandra before 5.0 cannot, so only a stack given with AUDITFLOW_STACK=external may
    // lack it — and then says so rather than passing silently.
    let result = match ttls {
        Ok(result) => result,
        Err(e) if std::env::var("AUDITFLOW_STACK").as_deref() == Ok("external") => {
            eprintln!("NOT CHECKED: index TTL not readable on this external server: {e}");
            drop_keyspace(ks).await;
            return;
        }
        Err(e) => panic!("reading the index TTL on the local Cassandra 5.0: {e}"),
    };
    let index_ttls: Vec<i64> = result
        .into_rows_result()
        .unwrap()
        .rows::<(Option<Vec<Option<i32>>>,)>()
        .unwrap()
        .flat_map(|r| r.unwrap().0.unwrap_or_default())
        .map(|t| i64::from(t.unwrap_or(0)))
        .collect();
    let record_ttl = read_ttl(ks, "audit_security_by_user").await;
    assert!(!index_ttls.is_empty());
    for index_ttl in index_ttls {
        assert!(
            index_ttl > record_ttl + 86_400 - 600,
            "index TTL {index_ttl}, record TTL {record_ttl}"
        );
    }
    drop_keyspace(ks).await;
}

/// The wrapped keys in the keyspace and the key ids `user_keys` points at.
async fn key_rows(keyspace: &str) -> (BTreeSet<uuid::Uuid>, BTreeSet<uuid::Uuid>) {
    let raw = session().await;
    let read = |cql: String| {
        let raw = &raw;
        async move {
            raw.query_unpaged(cql, ())
                .await
                .unwrap()
                .into_rows_result()
                .unwrap()
                .rows::<(Option<uuid::Uuid>,)>()
                .unwrap()
                .filter_map(|r| r.unwrap().0)
                .collect::<BTreeSet<_>>()
        }
    };
    (
        read(format!("SELECT key_id FROM {keyspace}.data_keys")).await,
        read(format!("SELECT key_id FROM {keyspace}.user_keys")).await,
    )
}

/// A fresh keyspace's store, and a second handle on it with caches of its own (a sink).
async fn store_and_sink(name: &str) -> (Store, Store, StoreSettings) {
    let (store, settings) = fresh_store(name).await;
    let sink = Store::connect(&settings, &RetentionPeriods::default())
        .await
        .unwrap();
    (store, sink, settings)
}

/// `sink` stores `record`, then the ids of its user's trail as `store` reads it, every one of
/// them readable.
async fn write_then_trail(sink: &Store, store: &Store, record: &StorableRecord) -> Vec<String> {
    sink.write_records(std::slice::from_ref(record))
        .await
        .unwrap();
    let user = record.user_id.as_deref().expect("a user's record");
    let found = store
        .query_user(user, TimeRange::default(), &[], 10, None)
        .await
        .unwrap();
    assert!(found.records.iter().all(|r| r.event.is_some()));
    ids(&found)
}

/// After a race: no wrapped key is left that no user row leads to, nor claimed twice; then
/// the keyspace goes.
async fn assert_no_orphan_key_then_drop(settings: &StoreSettings) {
    let (wrapped, claimed) = key_rows(&settings.keyspace).await;
    assert_eq!(
        wrapped, claimed,
        "every wrapped key is some user's, and only once"
    );
    drop_keyspace(&settings.keyspace).await;
}

/// A successful login of `user` numbered `id` at `time`, its event naming them.
fn racer_login(user: &str, id: &str, time: DateTime<Utc>) -> StorableRecord {
    StorableRecord {
        event: json!({"id": id, "data": {"user_id": user, "ip_address": IP}}),
        ..user_action(
            user,
            id.into(),
            time,
            "login_attempt",
            RetentionClass::Security,
            "success",
        )
    }
}

/// `gdpr delete` racing a sink (another store handle, its own caches) that writes the same
/// user's next record: whatever the interleaving, no wrapped key is left that no user row
/// leads to (an orphan no later erasure could find), the erased records stay unreadable, and
/// the user's activity after the erasure is readable under a new key. (The record written
/// during the race is erased along if the sink stored it before the erasure began, and
/// readable if after: both are right, so it is not asserted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_racing_a_write_orphans_no_key_and_loses_no_later_record() {
    let (store, sink, settings) = store_and_sink("store_race").await;
    for round in 0..12 {
        let user = format!("racer-{round}@example.com");
        let record = |id: &str, time| racer_login(&user, id, time);
        let old = record(&format!("race/{round}/old"), at(20, 9, round));
        let during = record(
            &format!("race/{round}/during"),
            Utc::now() + Duration::minutes(1),
        );
        let later = record(
            &format!("race/{round}/later"),
            Utc::now() + Duration::minutes(2),
        );
        // Even rounds: the sink holds the user's key in its cache. Odd rounds: it has never
        // seen the user, so it reads (and may have to create) the key during the race.
        let first_writer = if round % 2 == 0 { &sink } else { &store };
        first_writer
            .write_records(std::slice::from_ref(&old))
            .await
            .unwrap();
        let (erased, written) = tokio::join!(
            store.destroy_user_key(&user),
            sink.write_records(std::slice::from_ref(&during))
        );
        assert!(erased.unwrap(), "round {round}: the user had a key");
        written.unwrap();
        let found_ids = write_then_trail(&sink, &store, &later).await;
        assert!(
            found_ids.contains(&later.id) && !found_ids.contains(&old.id),
            "round {round}: {found_ids:?}"
        );
        let erased = store.get_by_id(&old.id).await.unwrap().expect("row kept");
        assert!(erased.event.is_none(), "round {round}: erased stays erased");
    }
    assert_no_orphan_key_then_drop(&settings).await;
}

/// `gdpr delete` of a user no store has a key for yet, racing a sink that writes a late record
/// of theirs dated before the erasure (so it must never be readable). In the window where the
/// sink reads "not erased", the erasure lands, and the sink then creates the user's first key,
/// that key postdates the erasure and survives it, and the late record was sealed under it:
/// once readable. Each round also checks the user's next record is readable under that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_record_racing_the_first_erasure_is_never_readable() {
    let (store, sink, settings) = store_and_sink("store_first").await;
    for round in 0..16 {
        let user = format!("first-{round}@example.com");
        let record = |id: &str, time| racer_login(&user, id, time);
        let late = record(&format!("first/{round}/late"), at(20, 9, round));
        let next = record(
            &format!("first/{round}/next"),
            Utc::now() + Duration::minutes(2),
        );
        let (erased, written) = tokio::join!(
            store.destroy_user_key(&user),
            sink.write_records(std::slice::from_ref(&late))
        );
        erased.unwrap();
        written.unwrap();
        let stored = store.get_by_id(&late.id).await.unwrap().expect("row kept");
        assert!(
            stored.event.is_none(),
            "round {round}: a record dated before the erasure is readable"
        );
        let found_ids = write_then_trail(&sink, &store, &next).await;
        assert_eq!(found_ids, std::slice::from_ref(&next.id), "round {round}");
    }
    assert_no_orphan_key_then_drop(&settings).await;
}

/// A key that exists when `gdpr delete` starts is destroyed even when its `created_at` reads
/// later than the erasure: the two times come from different statements and, on a cluster,
/// different coordinators' clocks (NTP keeps them milliseconds apart, not equal). Here the
/// key row's `created_at` is set a minute ahead, as a coordinator with a fast clock would
/// write it; the user's records must still become unreadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_predates_the_erasure_is_destroyed_whatever_its_clock_says() {
    let (store, settings) = fresh_store("store_skew").await;
    let record = user_action(
        USER,
        "skew/1".into(),
        at(20, 9, 0),
        "login_attempt",
        RetentionClass::Security,
        "success",
    );
    store
        .write_records(std::slice::from_ref(&record))
        .await
        .unwrap();
    let raw = session().await;
    let ks = &settings.keyspace;
    let refs: Vec<Vec<u8>> = raw
        .query_unpaged(format!("SELECT user_ref FROM {ks}.user_keys"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(Vec<u8>,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(refs.len(), 1, "one user, one key row");
    let ahead = Utc::now() + Duration::minutes(1);
    raw.query_unpaged(
        format!("UPDATE {ks}.user_keys SET created_at = ? WHERE user_ref = ?"),
        (ahead, refs[0].clone()),
    )
    .await
    .unwrap();

    assert!(
        store.destroy_user_key(USER).await.unwrap(),
        "the user had a key"
    );
    let fresh = Store::connect(&settings, &RetentionPeriods::default())
        .await
        .unwrap();
    let kept = fresh
        .get_by_id(&record.id)
        .await
        .unwrap()
        .expect("row kept");
    assert!(kept.event.is_none(), "the erased record opens for nobody");
    let found = fresh
        .query_user(USER, TimeRange::default(), &[], 10, None)
        .await
        .unwrap();
    assert!(found.records.is_empty(), "{:?}", ids(&found));
    drop_keyspace(&settings.keyspace).await;
}

/// The local stack gives "nothing lost" with one node: its commit log syncs before a write is
/// acknowledged (`group`), which the store reads back from the server, so the sink starts
/// without the durability warning. (A periodic one-replica cluster is warned about: the
/// store crate's unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_acknowledges_only_durable_writes() {
    let (store, settings) = fresh_store("store_durable").await;
    let durability = store.durability().await.unwrap();
    assert_eq!(durability.replication_factor, 1, "{durability:?}");
    assert_eq!(durability.acknowledging_replicas, 1, "{durability:?}");
    if std::env::var("AUDITFLOW_STACK").as_deref() != Ok("external") {
        assert_eq!(durability.commitlog_sync.as_deref(), Some("group"));
        assert_eq!(durability.warning(), None);
    }
    drop_keyspace(&settings.keyspace).await;
}
