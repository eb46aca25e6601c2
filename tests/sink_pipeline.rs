//! The sink on real Kafka and Cassandra, in this process: every audit record and alert is
//! stored exactly once (re-delivered duplicates included), readable through the store's
//! queries; what can never be stored goes to the dead-letter topic with its original bytes.

#[path = "sink_common.rs"]
mod common;

use auditflow_store::{Store, TimeRange};
use chrono::{TimeZone, Utc};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_stored_once_and_bad_ones_are_dead_lettered() {
    let setup = SinkSetup::new("sink_pipe").await;
    let t = setup.config.topics.clone();
    let users = ["u-ada", "u-bob", "u-cyd"];
    let actions: Vec<Input> = (0..300).map(|i| user_action(i, users[i % 3])).collect();
    let security: Vec<Input> = (0..20).map(|i| security_event(i, users[i % 3])).collect();
    let alerts: Vec<Input> = (0..5).map(alert).collect();
    produce(&setup.bootstrap, &t.user_action, &actions).await;
    // Re-delivery as a producer retry or an upstream replay would cause it: same ids again.
    produce(&setup.bootstrap, &t.user_action, &actions[..50]).await;
    produce(&setup.bootstrap, &t.security_event, &security).await;
    produce(&setup.bootstrap, &t.alerts, &alerts).await;
    let bad: Vec<Input> = vec![
        (None, b"{not json".to_vec(), Vec::new()),
        (None, br#"{"specversion":"1.0","id":"x1","source":"/x","type":"user.created","data":{}}"#.to_vec(), Vec::new()),
        (None, br#"{"specversion":"1.0","id":"x2","source":"/x","type":"audit.user.action","data":{"user_id":"u","action":"a","outcome":"maybe"}}"#.to_vec(), Vec::new()),
    ];
    produce(&setup.bootstrap, &t.data_access, &bad).await;

    let (shutdown, task) = start_sink(&setup.config);
    setup.wait_caught_up().await;
    assert_eq!(
        setup.stored_ids().await,
        300 + 20 + 5,
        "each record exactly once"
    );

    let dead = read_committed(&setup.bootstrap, &t.dead_letter);
    assert_eq!(dead.len(), 3);
    let mut reasons: Vec<&str> = dead
        .iter()
        .map(|d| d.header("auditflow.error").unwrap())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["invalid_json", "schema_violation", "unknown_type"]
    );
    assert!(
        dead.iter().any(|d| d.value == b"{not json"),
        "original bytes kept"
    );
    assert!(
        dead.iter()
            .all(|d| d.header("auditflow.service") == Some("sink"))
    );

    shutdown.trigger();
    task.await
        .expect("sink task")
        .expect("sink stopped cleanly");

    // Readable through the store, newest first, decrypted.
    let store = Store::connect(&setup.config.store, &setup.config.retention)
        .await
        .unwrap();
    let page = store
        .query_user("u-ada", TimeRange::default(), &[], 1000, None)
        .await
        .unwrap();
    // 100 actions and 7 of the failed logins are u-ada's.
    assert_eq!(page.records.len(), 100 + 7);
    assert!(
        page.records
            .windows(2)
            .all(|w| w[0].event_time >= w[1].event_time)
    );
    let action = page.records.iter().find(|r| r.id == "ua-0").expect("ua-0");
    assert_eq!(
        action.event.as_ref().unwrap()["data"]["user_agent"],
        "test-agent"
    );
    let from = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let security = store.security_events(from, to, 1000, None).await.unwrap();
    assert_eq!(
        security.records.len(),
        25,
        "security events and alerts by time"
    );

    // The operator's view: `auditflow query`, paged, as JSON and as a table.
    let (code, out, err) = auditflow(
        &setup,
        &["query", "--user", "u-ada", "--limit", "100", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(json["records"].as_array().unwrap().len(), 100);
    let token = json["next_page"].as_str().expect("a next page").to_owned();
    let (code, out, _) = auditflow(
        &setup,
        &["query", "--user", "u-ada", "--page", &token, "--json"],
    );
    assert_eq!(code, 0);
    let rest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rest["records"].as_array().unwrap().len(), 7);
    assert!(rest["next_page"].is_null());
    let (code, out, _) = auditflow(
        &setup,
        &[
            "query",
            "--user",
            "u-ada",
            "--action",
            "failed_login",
            "--limit",
            "5",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("TIME"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("failed_login")).count(),
        5,
        "{out}"
    );
    assert!(
        out.contains("198.51.100.7") && out.contains("more: auditflow query"),
        "{out}"
    );
    let (code, _, err) = auditflow(
        &setup,
        &["query", "--user", "u-ada", "--from", "last tuesday"],
    );
    assert_eq!(code, 2, "a bad timestamp is bad usage");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    setup.drop_keyspace().await;
}
