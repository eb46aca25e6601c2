//! The causality indexer's books on real Kafka and Cassandra (SPEC section 6: "the service's
//! counters add up to what it consumed"): every consumed record is indexed, ignored (a
//! tombstone) or dead-lettered, and the counters say so per topic and per outcome; the dead
//! letters name where their originals are.

use std::time::Duration;

use auditflow_integration_tests::causality::{IndexerSetup, linked, start_indexer_with};
use auditflow_integration_tests::kafka::{
    Input, assert_dead_letter, letter_of, produce, read_committed,
};
use auditflow_integration_tests::metrics::{metric, metric_sum};
use auditflow_integration_tests::store::count;
use auditflow_runtime::Metrics;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Tombstones (a key, no value) on `topic`.
async fn produce_tombstones(bootstrap: &str, topic: &str, n: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for i in 0..n {
        let key = format!("gone-{i}");
        producer
            .send(
                FutureRecord::<str, [u8]>::to(topic).key(&key),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("tombstone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_add_up_to_what_was_consumed() {
    let setup = IndexerSetup::new("idx_counters").await;
    let t = setup.config.topics.clone();
    let time = "2026-11-21T10:00:00Z";
    let actions: Vec<Input> = (0..10)
        .map(|i| {
            linked(
                &format!("ua-{i}"),
                "audit.user.action",
                time,
                &format!("in-{i}"),
                "c",
            )
        })
        .collect();
    let alerts: Vec<Input> = (0..3)
        .map(|i| {
            linked(
                &format!("al-{i}"),
                "security.alert",
                time,
                &format!("ua-{i}"),
                "c",
            )
        })
        .collect();
    let taken: Vec<Input> = (0..2)
        .map(|i| {
            linked(
                &format!("ac-{i}"),
                "security.action",
                time,
                &format!("al-{i}"),
                "c",
            )
        })
        .collect();
    let bad: Vec<Input> = vec![
        (None, b"{not json".to_vec(), Vec::new()),
        (
            None,
            br#"{"id":"x","type":"audit.security.event"}"#.to_vec(),
            Vec::new(),
        ),
    ];
    produce(&setup.bootstrap, &t.user_action, &actions).await;
    produce(&setup.bootstrap, &t.alerts, &alerts).await;
    produce(&setup.bootstrap, &t.actions, &taken).await;
    produce(&setup.bootstrap, &t.security_event, &bad).await;
    produce_tombstones(&setup.bootstrap, &t.data_access, 4).await;

    let metrics = Metrics::new().expect("metrics");
    let (shutdown, task) = start_indexer_with(&setup.config, &metrics);
    setup.wait_caught_up().await;
    // A batch is counted before its offsets can be committed: final once caught up.
    let text = metrics.render();
    shutdown.trigger();
    task.await
        .expect("indexer task")
        .expect("indexer stopped cleanly");

    let svc = r#"service="causality-indexer""#;
    let consumed = |topic: &str| {
        metric(
            &text,
            &format!(r#"auditflow_consumed_records_total{{{svc},topic="{topic}"}}"#),
        )
    };
    assert_eq!(consumed(&t.user_action), 10, "{text}");
    assert_eq!(consumed(&t.alerts), 3);
    assert_eq!(consumed(&t.actions), 2);
    assert_eq!(consumed(&t.security_event), 2);
    assert_eq!(consumed(&t.data_access), 4);
    let outcome = |o: &str| {
        metric(
            &text,
            &format!(r#"auditflow_processed_records_total{{outcome="{o}",{svc}}}"#),
        )
    };
    assert_eq!(outcome("emitted"), 15);
    assert_eq!(outcome("ignored"), 4, "tombstones");
    assert_eq!(outcome("dead_lettered"), 2);
    assert_eq!(outcome("sampled_out"), 0);
    let total = metric_sum(&text, "auditflow_consumed_records_total", svc);
    assert_eq!(total, 21);
    assert_eq!(
        outcome("emitted") + outcome("ignored") + outcome("dead_lettered"),
        total
    );
    assert_eq!(
        metric(
            &text,
            &format!(r#"auditflow_emitted_records_total{{{svc},topic="causality"}}"#)
        ),
        15
    );
    assert_eq!(
        metric(&text, &format!("auditflow_ignored_total{{{svc}}}")),
        4
    );
    assert_eq!(
        metric(
            &text,
            &format!(r#"auditflow_dead_lettered_total{{reason="invalid_json",{svc}}}"#)
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            &format!(r#"auditflow_dead_lettered_total{{reason="invalid_envelope",{svc}}}"#)
        ),
        1
    );
    // What was counted as indexed is in the graph, one node per record.
    assert_eq!(
        count(&setup.config.store.keyspace, "causality_nodes").await,
        15
    );

    let letters = read_committed(&setup.bootstrap, &t.dead_letter);
    assert_eq!(letters.len(), 2);
    for original in read_committed(&setup.bootstrap, &t.security_event) {
        let letter = letter_of(
            &letters,
            &t.security_event,
            original.partition,
            original.offset,
        );
        let reason = if original.value == b"{not json" {
            "invalid_json"
        } else {
            "invalid_envelope"
        };
        let at = (
            t.security_event.as_str(),
            original.partition,
            original.offset,
        );
        assert_dead_letter(letter, reason, at, "causality-indexer");
        assert_eq!(letter.value, original.value);
    }
    setup.drop_keyspace().await;
}
