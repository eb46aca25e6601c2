//! The sink on real Kafka and Cassandra, in this process: every audit record and alert is
//! stored exactly once (re-delivered duplicates included), readable through the store's
//! queries; what can never be stored goes to the dead-letter topic with its original bytes.

use auditflow_integration_tests::kafka::{
    Input, assert_dead_letter, create_topic_with, letter_of, produce, read_committed,
};
use auditflow_integration_tests::metrics::{metric, metric_sum};
use auditflow_integration_tests::sink::{
    SinkSetup, alert, auditflow, security_event, start_sink_with, user_action,
};
use auditflow_integration_tests::store::session_at;
use auditflow_runtime::Metrics;
use auditflow_store::{Store, TimeRange};
use chrono::{TimeZone, Utc};

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

    let metrics = Metrics::new().expect("metrics");
    let (shutdown, task) = start_sink_with(&setup.config, &metrics);
    setup.wait_caught_up().await;
    assert_eq!(
        setup.stored_ids().await,
        300 + 20 + 5,
        "each record exactly once"
    );

    // Every letter: its reason, where its original is, who refused it, the original bytes.
    let dead = read_committed(&setup.bootstrap, &t.dead_letter);
    assert_eq!(dead.len(), 3);
    let reasons = ["invalid_json", "unknown_type", "schema_violation"];
    let originals = read_committed(&setup.bootstrap, &t.data_access);
    assert_eq!(originals.len(), 3);
    for original in &originals {
        let which = bad
            .iter()
            .position(|b| b.1 == original.value)
            .expect("one of ours");
        let letter = letter_of(&dead, &t.data_access, original.partition, original.offset);
        let at = (t.data_access.as_str(), original.partition, original.offset);
        assert_dead_letter(letter, reasons[which], at, "sink");
        assert_eq!(letter.value, original.value, "original bytes unchanged");
        assert_eq!(letter.key, original.key);
        assert_eq!(
            letter.headers.len(),
            6,
            "the six auditflow.* headers: {:?}",
            letter.headers
        );
    }

    // SPEC section 6: the counters add up to what was consumed (complete() counts a batch
    // before its offsets can be committed, so they are final once the group caught up).
    let text = metrics.render();
    let svc = r#"service="sink""#;
    let consumed = |topic: &str| {
        metric(
            &text,
            &format!(r#"auditflow_consumed_records_total{{{svc},topic="{topic}"}}"#),
        )
    };
    assert_eq!(consumed(&t.user_action), 350, "{text}");
    assert_eq!(consumed(&t.security_event), 20);
    assert_eq!(consumed(&t.alerts), 5);
    assert_eq!(consumed(&t.data_access), 3);
    let outcome = |o: &str| {
        metric(
            &text,
            &format!(r#"auditflow_processed_records_total{{outcome="{o}",{svc}}}"#),
        )
    };
    assert_eq!(
        outcome("emitted"),
        375,
        "re-delivered duplicates are written again"
    );
    assert_eq!(outcome("dead_lettered"), 3);
    assert_eq!(outcome("ignored") + outcome("sampled_out"), 0);
    assert_eq!(
        outcome("emitted") + outcome("dead_lettered"),
        metric_sum(&text, "auditflow_consumed_records_total", svc)
    );
    assert_eq!(
        metric_sum(&text, "auditflow_emitted_records_total", svc),
        375
    );
    assert_eq!(metric_sum(&text, "auditflow_dead_lettered_total", svc), 3);
    for reason in reasons {
        assert_eq!(
            metric(
                &text,
                &format!(r#"auditflow_dead_lettered_total{{reason="{reason}",{svc}}}"#)
            ),
            1,
            "{reason}"
        );
    }

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

/// Issue 12.2.6, the sink's side: a record of about a megabyte of headers on an audit topic
/// once made the sink retry its dead letter until shutdown (the producer refused it). Now it
/// is dead-lettered within the producer's limit, saying what was left out, and the record
/// after it on the same partition is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_too_big_to_dead_letter_whole_are_dead_lettered_and_the_partition_flows() {
    let mut setup = SinkSetup::new("sink_bighdr").await;
    // An audit topic taking records of up to 3 MB (the test producer's limit is 4 MB; the
    // sink's own producer keeps librdkafka's default, 1,000,000 bytes).
    let big = format!("{}.big", setup.config.topics.security_event);
    create_topic_with(
        &setup.bootstrap,
        &big,
        1,
        &[("max.message.bytes", "3000000")],
    )
    .await;
    setup.config.topics.security_event = big.clone();
    let binary_pad: Vec<(String, Vec<u8>)> = vec![
        ("ce_specversion".into(), b"1.0".to_vec()),
        ("ce_id".into(), b"b-1".to_vec()),
        ("ce_source".into(), b"/x".to_vec()),
        ("ce_type".into(), b"audit.security.event".to_vec()),
        ("ce_pad".into(), vec![b'p'; 1_100_000]),
    ];
    let many: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("x-pad-{i}"), vec![b'h'; 4000]))
        .collect();
    let records: Vec<Input> = vec![
        security_event(0, "u-ada"),
        (
            None,
            br#"{"event_type":"scan"}"#.to_vec(),
            binary_pad.clone(),
        ),
        (None, b"{not json".to_vec(), many),
        security_event(1, "u-bob"),
    ];
    produce(&setup.bootstrap, &big, &records).await;

    drain(&setup, &Metrics::new().expect("metrics")).await;
    assert_eq!(
        setup.stored_ids().await,
        2,
        "the records around the big ones"
    );

    let letters = read_committed(&setup.bootstrap, &setup.config.topics.dead_letter);
    assert_eq!(letters.len(), 2);
    let too_large = letter_of(&letters, &big, 0, 1);
    assert_dead_letter(too_large, "too_large", (&big, 0, 1), "sink");
    assert!(too_large.value.is_empty());
    assert_eq!(
        too_large.header("auditflow.error.value_dropped"),
        Some("21")
    );
    assert_eq!(
        too_large.header("auditflow.error.headers_dropped"),
        Some("1")
    );
    for (name, value) in &binary_pad[..4] {
        assert_eq!(
            too_large.header(name).map(str::as_bytes),
            Some(value.as_slice())
        );
    }
    let garbage = letter_of(&letters, &big, 0, 2);
    assert_dead_letter(garbage, "invalid_json", (&big, 0, 2), "sink");
    assert_eq!(garbage.header("auditflow.error.value_dropped"), Some("9"));
    let dropped: usize = garbage
        .header("auditflow.error.headers_dropped")
        .expect("headers dropped")
        .parse()
        .unwrap();
    let kept = garbage
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-pad-"))
        .count();
    assert_eq!(kept + dropped, 300);
    setup.drop_keyspace().await;
}

/// Issue 12.2.7: a permanent store error about one record — here a subject whose wrapped data
/// key is corrupt in the database — once blocked its partition for good (the sink retried the
/// batch forever). The store's error says it is about the record: the batch is split until
/// the records that fail alone are found, those are dead-lettered (`store_rejected`), and
/// every other record of the partition is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_store_refuses_are_dead_lettered_and_the_rest_is_stored() {
    let setup = SinkSetup::new("sink_reject").await;
    let t = setup.config.topics.clone();
    // One Kafka key: every record on one partition, in order.
    let one_partition =
        |(_, value, headers): Input| -> Input { (Some("one".into()), value, headers) };
    produce(
        &setup.bootstrap,
        &t.user_action,
        &[user_action(0, "u-broken"), user_action(1, "u-fine")].map(one_partition),
    )
    .await;
    drain(&setup, &Metrics::new().expect("metrics")).await;
    assert_eq!(setup.stored_ids().await, 2);

    // Corrupt u-broken's wrapped key, with plain CQL: its pseudonym is its key id.
    let ks = &setup.config.store.keyspace;
    let session = session_at(&setup.config.store.nodes).await;
    let (key_id,): (uuid::Uuid,) = session
        .query_unpaged(
            format!("SELECT pseudonym FROM {ks}.records_by_id WHERE event_id = 'ua-0'"),
            (),
        )
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows")
        .single_row()
        .expect("ua-0 is stored");
    session
        .query_unpaged(
            format!("UPDATE {ks}.data_keys SET wrapped_key = 0x00 WHERE key_id = ?"),
            (key_id,),
        )
        .await
        .expect("corrupting the key");

    let broken = |i: usize| i.is_multiple_of(3);
    let more: Vec<Input> = (2..32)
        .map(|i| user_action(i, if broken(i) { "u-broken" } else { "u-fine" }))
        .map(one_partition)
        .collect();
    produce(&setup.bootstrap, &t.user_action, &more).await;
    // A fresh sink: nothing of the key in its cache.
    let metrics = Metrics::new().expect("metrics");
    drain(&setup, &metrics).await;

    let refused: Vec<usize> = (2..32).filter(|i| broken(*i)).collect();
    assert_eq!(
        setup.stored_ids().await,
        2 + 30 - refused.len() as i64,
        "every record of u-fine stored"
    );
    let letters = read_committed(&setup.bootstrap, &t.dead_letter);
    assert_eq!(letters.len(), refused.len());
    let originals = read_committed(&setup.bootstrap, &t.user_action);
    for original in originals.iter().filter(|o| o.offset >= 2) {
        let id = original.json()["id"].as_str().unwrap().to_owned();
        let i: usize = id.trim_start_matches("ua-").parse().unwrap();
        let found = letters.iter().find(|l| {
            l.header("auditflow.source.offset") == Some(original.offset.to_string().as_str())
        });
        if !broken(i) {
            assert!(found.is_none(), "{id} was stored, not dead-lettered");
            continue;
        }
        let letter = found.unwrap_or_else(|| panic!("no dead letter for {id}"));
        let at = (t.user_action.as_str(), original.partition, original.offset);
        assert_dead_letter(letter, "store_rejected", at, "sink");
        let detail = letter.header("auditflow.error.detail").unwrap();
        assert!(detail.contains("corrupt"), "{detail}");
        assert_eq!(letter.value, original.value, "original bytes unchanged");
    }
    let text = metrics.render();
    assert_eq!(
        metric(
            &text,
            r#"auditflow_dead_lettered_total{reason="store_rejected",service="sink"}"#
        ),
        refused.len() as u64,
        "{text}"
    );
    assert!(
        metric(
            &text,
            r#"auditflow_write_errors_total{kind="record",service="sink"}"#
        ) >= refused.len() as u64
    );
    assert_eq!(
        metric(
            &text,
            r#"auditflow_write_errors_total{kind="deployment",service="sink"}"#
        ),
        0
    );
    setup.drop_keyspace().await;
}

/// Runs the sink, recording into `metrics`, until its group has committed everything now in
/// its topics; then stops it.
async fn drain(setup: &SinkSetup, metrics: &Metrics) {
    let (shutdown, task) = start_sink_with(&setup.config, metrics);
    setup.wait_caught_up().await;
    shutdown.trigger();
    task.await
        .expect("sink task")
        .expect("sink stopped cleanly");
}
