//! Erasure is final (docs/operations.md) on the real stack: `auditflow gdpr delete` while the sink
//! lags behind a backlog of the user's records, and while a running sink has the user's key
//! cached. Afterwards neither `query` nor `gdpr export` finds anything of the user's dated
//! before the erasure, however late those records arrive; what the user id does after the
//! erasure is a new, readable trail.

use auditflow_integration_tests::kafka::{Input, produce};
use auditflow_integration_tests::sink::{SinkSetup, auditflow, start_sink};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

const USER: &str = "erased.subject@example.com";
const OTHER: &str = "bystander@example.com";

/// `audit.user.action` `id` of `user` at `time`, as the classifier writes it.
fn action_at(id: &str, user: &str, time: DateTime<Utc>) -> Input {
    let value = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/auditflow/classifier",
        "type": "audit.user.action", "subject": format!("user:{user}"),
        "time": time.to_rfc3339(), "retention": "general", "samplerate": 1,
        "data": {"user_id": user, "action": "user.page.view", "outcome": "success",
                 "ip_address": "192.0.2.44"}
    });
    (
        Some(user.to_owned()),
        serde_json::to_vec(&value).unwrap(),
        Vec::new(),
    )
}

fn batch(tag: &str, user: &str, n: usize, time: DateTime<Utc>) -> Vec<Input> {
    (0..n)
        .map(|i| {
            action_at(
                &format!("{tag}-{i}"),
                user,
                time + Duration::seconds(i as i64),
            )
        })
        .collect()
}

/// The ids `auditflow query --json --user` finds, each checked to be decrypted.
fn queried_ids(setup: &SinkSetup, user: &str) -> Vec<String> {
    let (code, out, err) = auditflow(setup, &["--json", "query", "--user", user]);
    assert_eq!(code, 0, "query: {err}");
    let page: Value = serde_json::from_str(&out).expect("query prints JSON");
    let mut ids: Vec<String> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            assert_eq!(r["event"]["data"]["user_id"], user, "decrypted: {r}");
            r["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids
}

fn exported(setup: &SinkSetup, user: &str) -> usize {
    let (code, out, err) = auditflow(setup, &["gdpr", "export", "--user", user]);
    assert_eq!(code, 0, "export: {err}");
    let doc: Value = serde_json::from_str(&out).expect("export prints JSON");
    doc["audit_trail"].as_array().expect("audit_trail").len()
}

fn erase(setup: &SinkSetup, user: &str) {
    let (code, out, err) = auditflow(setup, &["--json", "gdpr", "delete", "--user", user]);
    assert_eq!(code, 0, "gdpr delete: {err}");
    let done: Value = serde_json::from_str(&out).expect("delete prints JSON");
    assert_eq!(done["key_destroyed"], true, "{done}");
}

fn sorted_ids(records: &[Input]) -> Vec<String> {
    let mut ids: Vec<String> = records
        .iter()
        .map(|(_, value, _)| {
            let v: Value = serde_json::from_slice(value).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arriving_after_an_erasure_never_resurrect_the_user() {
    let setup = SinkSetup::new("sink_erasure").await;
    let topic = setup.config.topics.user_action.clone();
    let hour_ago = Utc::now() - Duration::hours(1);

    // The user's first records are stored and readable.
    let first = batch("first", USER, 10, hour_ago);
    produce(&setup.bootstrap, &topic, &first).await;
    produce(
        &setup.bootstrap,
        &topic,
        &batch("other", OTHER, 5, hour_ago),
    )
    .await;
    let (shutdown, task) = start_sink(&setup.config);
    setup.wait_caught_up().await;
    assert_eq!(queried_ids(&setup, USER), sorted_ids(&first));
    shutdown.trigger();
    task.await.unwrap().expect("sink stopped cleanly");

    // The sink is stopped with a backlog of the user's records, dated before the erasure.
    let backlog = batch("backlog", USER, 10, hour_ago + Duration::minutes(10));
    produce(&setup.bootstrap, &topic, &backlog).await;
    erase(&setup, USER);
    assert!(queried_ids(&setup, USER).is_empty());

    // The sink comes back and drains the backlog; a replay of the first records arrives too.
    let (shutdown, task) = start_sink(&setup.config);
    produce(&setup.bootstrap, &topic, &first).await;
    setup.wait_caught_up().await;
    assert!(
        queried_ids(&setup, USER).is_empty(),
        "records dated before the erasure were stored readable"
    );
    assert_eq!(exported(&setup, USER), 0);
    // Stored all the same (they count in reports), once each.
    assert_eq!(setup.stored_ids().await, 10 + 5 + 10);

    // The user id's activity after the erasure is a new trail, and the bystander is untouched.
    let later = batch("later", USER, 4, Utc::now() + Duration::seconds(5));
    produce(&setup.bootstrap, &topic, &later).await;
    setup.wait_caught_up().await;
    assert_eq!(queried_ids(&setup, USER), sorted_ids(&later));
    assert_eq!(exported(&setup, USER), later.len());
    assert_eq!(queried_ids(&setup, OTHER).len(), 5);

    shutdown.trigger();
    task.await.unwrap().expect("sink stopped cleanly");
    setup.drop_keyspace().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_sink_does_not_keep_writing_with_a_destroyed_key() {
    let mut setup = SinkSetup::new("sink_erasure_cached").await;
    // A long key cache, so a test passing cannot be the cache simply running out.
    setup.config.store.key_cache_ttl_secs = 3_600;
    let topic = setup.config.topics.user_action.clone();
    let (shutdown, task) = start_sink(&setup.config);

    // The running sink meets the user: it now holds their key in its cache.
    let before = batch("before", USER, 5, Utc::now() - Duration::minutes(30));
    produce(&setup.bootstrap, &topic, &before).await;
    setup.wait_caught_up().await;
    assert_eq!(queried_ids(&setup, USER), sorted_ids(&before));

    // Erased by another process while the sink keeps running.
    erase(&setup, USER);

    // A late record dated before the erasure, and the user id's activity after it.
    let late = batch("late", USER, 5, Utc::now() - Duration::minutes(20));
    let after = batch("after", USER, 5, Utc::now() + Duration::seconds(5));
    produce(&setup.bootstrap, &topic, &late).await;
    produce(&setup.bootstrap, &topic, &after).await;
    setup.wait_caught_up().await;
    // Written with the destroyed key, `after` would be unreadable; with a key that still opens,
    // `late` would be readable. Only `after` may be found, decrypted.
    assert_eq!(queried_ids(&setup, USER), sorted_ids(&after));
    assert_eq!(setup.stored_ids().await, 15);

    shutdown.trigger();
    task.await.unwrap().expect("sink stopped cleanly");
    setup.drop_keyspace().await;
}
