//! The classifier against the real Kafka: the recipe lifecycle in → the records the core
//! decides out, exactly once in the `read_committed` view; garbage → dead letters that keep the
//! original bytes and headers; and counters that add up to what was consumed.

use auditflow_integration_tests::classifier::{
    Setup, actual_outputs, expected_outputs, pinned_recipe_outputs, recipe_lifecycle,
    start_classifier,
};
use auditflow_integration_tests::kafka::{
    Input, assert_dead_letter, create_topic_with, letter_of, produce, read_committed, structured,
    wait_caught_up,
};
use auditflow_integration_tests::metrics::{http_get, metric, metric_sum};
use auditflow_integration_tests::stack::DEADLINE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipe_lifecycle_in_expected_records_out() {
    let setup = Setup::new("cls_recipe", 3).await;
    let inputs = recipe_lifecycle();
    produce(
        &setup.bootstrap,
        &setup.input,
        &inputs.iter().map(|v| structured(v)).collect::<Vec<_>>(),
    )
    .await;

    let (shutdown, _metrics, _health, task) = start_classifier(&setup.config);
    wait_caught_up(&setup.bootstrap, &setup.group(), &setup.input).await;
    shutdown.trigger();
    task.await
        .expect("classifier task")
        .expect("classifier ran");

    let expected = expected_outputs(&setup.config, &inputs);
    // 7 events: 7 user actions or data accesses, plus the failed login's security event.
    assert_eq!(expected.len(), 8, "{expected:#?}");
    assert_eq!(actual_outputs(&setup), expected);
    // `expected` is the core's own answer; this one is written out from the contract.
    assert_eq!(actual_outputs(&setup), pinned_recipe_outputs(&setup.config));

    for topic in setup.output_topics() {
        for record in read_committed(&setup.bootstrap, topic) {
            let value = record.json();
            assert_eq!(record.header("ce_type"), value["type"].as_str());
            assert_eq!(record.header("ce_id"), value["id"].as_str());
            assert_eq!(
                record.header("content-type"),
                Some("application/cloudevents+json")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_goes_to_the_dead_letter_topic_unchanged() {
    let mut setup = Setup::new("cls_garbage", 1).await;
    setup.config.limits.max_record_bytes = 2048;
    let binary_headers: Vec<(String, Vec<u8>)> = vec![
        ("ce_specversion".into(), b"1.0".to_vec()),
        ("ce_id".into(), b"b-1".to_vec()),
        ("ce_source".into(), b"svc".to_vec()),
        ("ce_type".into(), b"user.profile.viewed".to_vec()),
    ];
    let inputs: Vec<(Input, &str)> = vec![
        (structured(b"\xff\xfe not utf-8"), "invalid_json"),
        (structured(b"{not json"), "invalid_json"),
        (structured(b"[1, 2, 3]"), "invalid_envelope"),
        (
            structured(br#"{"source":"s","type":"user.created"}"#),
            "invalid_envelope",
        ),
        (
            structured(br#"{"id":"x","source":"s","type":"user..created"}"#),
            "invalid_envelope",
        ),
        (
            structured(br#"{"id":"x","source":"s","type":"user.created","specversion":"0.3"}"#),
            "invalid_envelope",
        ),
        (
            structured(br#"{"id":"x","source":"s","type":"user.profile.viewed","data":{}}"#),
            "missing_user_id",
        ),
        (
            structured(
                format!(
                    r#"{{"id":"x","source":"s","type":"user.created","data":{{"pad":"{}"}}}}"#,
                    "a".repeat(4096)
                )
                .as_bytes(),
            ),
            "too_large",
        ),
        // Binary mode: attributes in headers; the value is `data`, here naming no user.
        (
            (
                Some("k-1".into()),
                br#"{"page":"home"}"#.to_vec(),
                binary_headers.clone(),
            ),
            "missing_user_id",
        ),
    ];
    let records: Vec<Input> = inputs.iter().map(|(i, _)| i.clone()).collect();
    produce(&setup.bootstrap, &setup.input, &records).await;

    let (shutdown, metrics, _health, task) = start_classifier(&setup.config);
    wait_caught_up(&setup.bootstrap, &setup.group(), &setup.input).await;
    shutdown.trigger();
    task.await
        .expect("classifier task")
        .expect("classifier ran");

    let dlq = read_committed(&setup.bootstrap, &setup.config.topics.dead_letter);
    assert_eq!(dlq.len(), inputs.len());
    // One input partition, so input i is at offset i; the dead letters may be spread over the
    // DLQ's partitions, so find each by its source offset.
    for (offset, ((key, value, headers), reason)) in inputs.iter().enumerate() {
        let letter = dlq
            .iter()
            .find(|l| l.header("auditflow.source.offset") == Some(offset.to_string().as_str()))
            .unwrap_or_else(|| panic!("no dead letter for offset {offset}"));
        assert_eq!(&letter.value, value, "original bytes unchanged");
        assert_eq!(&letter.key, key);
        assert_eq!(
            letter.header("auditflow.error"),
            Some(*reason),
            "{:?}",
            letter.header("auditflow.error.detail")
        );
        assert!(
            letter
                .header("auditflow.error.detail")
                .is_some_and(|d| !d.is_empty())
        );
        assert_eq!(
            letter.header("auditflow.source.topic"),
            Some(setup.input.as_str())
        );
        assert_eq!(letter.header("auditflow.source.partition"), Some("0"));
        assert_eq!(
            letter.header("auditflow.source.offset"),
            Some(offset.to_string().as_str())
        );
        assert_eq!(letter.header("auditflow.service"), Some("classifier"));
        for (name, value) in headers {
            assert_eq!(
                letter.header(name).map(str::as_bytes),
                Some(value.as_slice()),
                "header {name} kept"
            );
        }
    }
    for topic in setup.output_topics() {
        assert!(
            read_committed(&setup.bootstrap, topic).is_empty(),
            "{topic} got output from garbage"
        );
    }
    let text = metrics.render();
    assert_eq!(
        metric_sum(
            &text,
            "auditflow_dead_lettered_total",
            r#"service="classifier""#
        ),
        inputs.len() as u64
    );
    assert_eq!(
        metric(
            &text,
            r#"auditflow_dead_lettered_total{reason="too_large",service="classifier"}"#
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_add_up_to_what_was_consumed() {
    let mut setup = Setup::new("cls_counters", 2).await;
    setup.config.sampling =
        auditflow_core::config::SamplingRates::from_pairs([("user.page.view", 0.0)]);
    let mut inputs: Vec<Vec<u8>> = recipe_lifecycle();
    for i in 0..5 {
        // Rate 0: every one of these low-risk, general-retention views is sampled out.
        inputs.push(format!(r#"{{"id":"pv-{i}","source":"web","type":"user.page.view","data":{{"user_id":"u{i}"}}}}"#).into_bytes());
    }
    for i in 0..3 {
        // The loop guard.
        inputs.push(
            format!(r#"{{"id":"a-{i}","source":"x","type":"audit.user.action","data":{{}}}}"#)
                .into_bytes(),
        );
    }
    inputs.push(b"garbage".to_vec());
    inputs.push(br#"{"id":"nu","source":"s","type":"user.profile.viewed"}"#.to_vec());
    produce(
        &setup.bootstrap,
        &setup.input,
        &inputs.iter().map(|v| structured(v)).collect::<Vec<_>>(),
    )
    .await;

    let (shutdown, metrics, health, task) = start_classifier(&setup.config);
    let (addr, server) = auditflow_runtime::telemetry::http::serve(
        "127.0.0.1:0",
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    )
    .await
    .expect("metrics server");
    wait_caught_up(&setup.bootstrap, &setup.group(), &setup.input).await;
    let ready = http_get(addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let text = once_counted(inputs.len() as u64, async || {
        http_get(addr, "/metrics").await
    })
    .await;
    shutdown.trigger();
    task.await
        .expect("classifier task")
        .expect("classifier ran");
    let _ = server.await;

    let svc = r#"service="classifier""#;
    let consumed = metric_sum(&text, "auditflow_consumed_records_total", svc);
    let outcome = |o: &str| {
        metric(
            &text,
            &format!(r#"auditflow_processed_records_total{{outcome="{o}",{svc}}}"#),
        )
    };
    assert_eq!(consumed, inputs.len() as u64, "{text}");
    assert_eq!(
        outcome("emitted") + outcome("sampled_out") + outcome("ignored") + outcome("dead_lettered"),
        consumed
    );
    assert_eq!(outcome("emitted"), 7);
    assert_eq!(outcome("sampled_out"), 5);
    assert_eq!(
        metric(
            &text,
            &format!(r#"auditflow_sampled_out_total{{{svc},type="user.page.view"}}"#)
        ),
        5
    );
    assert_eq!(outcome("ignored"), 3);
    assert_eq!(
        metric(&text, &format!("auditflow_ignored_total{{{svc}}}")),
        3
    );
    assert_eq!(outcome("dead_lettered"), 2);
    assert_eq!(metric_sum(&text, "auditflow_dead_lettered_total", svc), 2);
    // Emitted counts match what a read_committed reader finds on each topic.
    let mut emitted_total = 0;
    for topic in setup.output_topics() {
        let found = read_committed(&setup.bootstrap, topic).len() as u64;
        assert_eq!(
            metric(
                &text,
                &format!(r#"auditflow_emitted_records_total{{{svc},topic="{topic}"}}"#)
            ),
            found,
            "{topic}"
        );
        emitted_total += found;
    }
    assert_eq!(emitted_total, 8);
    // What was sampled out is summarised on the sampling topic, in the transactions that
    // sampled it out: the counts add up to the counter's, and the emitted counter counts the
    // summaries.
    let sampling = &setup.config.topics.sampling;
    let summaries = read_committed(&setup.bootstrap, sampling);
    assert!(!summaries.is_empty());
    let mut summarised = 0;
    for s in &summaries {
        assert_eq!(s.header("ce_type"), Some("audit.sampling.summary"));
        let data = &s.json()["data"];
        assert_eq!(data["event_type"], "user.page.view", "{data}");
        assert_eq!(data["input"]["topic"], setup.input.as_str());
        let span = (
            data["input"]["first_offset"].as_i64().unwrap(),
            data["input"]["last_offset"].as_i64().unwrap(),
        );
        assert!(span.0 <= span.1, "{data}");
        summarised += data["count"].as_u64().unwrap();
    }
    assert_eq!(summarised, 5);
    assert_eq!(
        metric(
            &text,
            &format!(r#"auditflow_emitted_records_total{{{svc},topic="{sampling}"}}"#)
        ),
        summaries.len() as u64
    );
    // Dead letters are counted by reason (above), not as emitted audit records.
    assert!(
        metric(
            &text,
            &format!(r#"auditflow_transactions_total{{result="committed",{svc}}}"#)
        ) >= 1
    );
    assert!(text.contains("auditflow_end_to_end_latency_seconds_count"));
    assert!(text.contains("auditflow_batch_write_seconds_count"));
}

/// Issue 12.2.6: a record of about a megabyte of headers once stalled the classifier for
/// good (its dead letter kept the headers, the producer refused it, and the transaction
/// aborted and rewound in a loop). Such records — and one with a 2 MB key — are
/// dead-lettered, each letter within the producer's limit and saying what it left out, and
/// the records after them on the same partition are classified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_too_big_to_dead_letter_whole_are_dead_lettered_and_the_partition_flows() {
    let setup = Setup::new("cls_bighdr", 1).await;
    // The classifier reads `^<prefix>\.user\..+`: this topic too. Its limit (and the test
    // producer's) lets records of up to 3 MB in; the classifier's own producer keeps
    // librdkafka's default, 1,000,000 bytes.
    let input = format!("{}.user.big", setup.prefix);
    create_topic_with(
        &setup.bootstrap,
        &input,
        1,
        &[("max.message.bytes", "3000000")],
    )
    .await;
    let event = |id: &str| {
        structured(
            format!(r#"{{"id":"{id}","source":"s","type":"user.created","data":{{"user_id":"u-{id}"}}}}"#)
                .as_bytes(),
        )
    };
    let binary_pad: Vec<(String, Vec<u8>)> = vec![
        ("ce_specversion".into(), b"1.0".to_vec()),
        ("ce_id".into(), b"b-1".to_vec()),
        ("ce_source".into(), b"svc".to_vec()),
        ("ce_type".into(), b"user.created".to_vec()),
        ("ce_pad".into(), vec![b'p'; 1_100_000]),
    ];
    let many: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("x-pad-{i}"), vec![b'h'; 4000]))
        .collect();
    let records: Vec<Input> = vec![
        event("first"),
        // Binary mode, 1.1 MB of attributes: too_large.
        (None, br#"{"user_id":"u-b"}"#.to_vec(), binary_pad.clone()),
        // Not JSON, under 1.2 MB of 300 headers: invalid_json.
        (None, b"{not json".to_vec(), many.clone()),
        // Not JSON, under a 2 MB key.
        (
            Some("k".repeat(2_000_000)),
            b"{not json".to_vec(),
            Vec::new(),
        ),
        event("last"),
    ];
    produce(&setup.bootstrap, &input, &records).await;

    let (shutdown, metrics, _health, task) = start_classifier(&setup.config);
    wait_caught_up(&setup.bootstrap, &setup.group(), &input).await;
    shutdown.trigger();
    task.await
        .expect("classifier task")
        .expect("classifier ran");

    let outputs = read_committed(&setup.bootstrap, &setup.config.topics.user_action);
    let mut ids: Vec<&str> = outputs
        .iter()
        .map(|r| r.header("ce_id").unwrap_or_default())
        .collect();
    ids.sort();
    assert_eq!(outputs.len(), 2, "the records around the big ones: {ids:?}");

    let letters = read_committed(&setup.bootstrap, &setup.config.topics.dead_letter);
    assert_eq!(letters.len(), 3);
    let limit = auditflow_runtime::kafka::client::max_message_bytes(&setup.config.kafka);
    for letter in &letters {
        let size = letter.key.as_ref().map_or(0, String::len)
            + letter.value.len()
            + letter
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        assert!(size <= limit, "a letter of {size} bytes");
        assert!(letter.value.is_empty(), "the value is the first to go");
    }

    let too_large = letter_of(&letters, &input, 0, 1);
    assert_dead_letter(too_large, "too_large", (&input, 0, 1), "classifier");
    assert_eq!(
        too_large.header("auditflow.error.value_dropped"),
        Some("17")
    );
    assert_eq!(
        too_large.header("auditflow.error.headers_dropped"),
        Some("1")
    );
    assert_eq!(too_large.header("ce_pad"), None, "the big header went");
    for (name, value) in &binary_pad[..4] {
        assert_eq!(
            too_large.header(name).map(str::as_bytes),
            Some(value.as_slice())
        );
    }

    let headers = letter_of(&letters, &input, 0, 2);
    assert_dead_letter(headers, "invalid_json", (&input, 0, 2), "classifier");
    assert_eq!(headers.header("auditflow.error.value_dropped"), Some("9"));
    let dropped: usize = headers
        .header("auditflow.error.headers_dropped")
        .expect("headers dropped")
        .parse()
        .unwrap();
    let kept = headers
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-pad-"))
        .count();
    assert_eq!(kept + dropped, 300);
    assert!(kept > 100, "only as many as needed went: {kept} kept");

    let keyed = letter_of(&letters, &input, 0, 3);
    assert_dead_letter(keyed, "invalid_json", (&input, 0, 3), "classifier");
    assert_eq!(keyed.key, None);
    assert_eq!(keyed.header("auditflow.error.key_dropped"), Some("2000000"));
    assert_eq!(keyed.header("auditflow.error.headers_dropped"), None);

    let text = metrics.render();
    assert_eq!(
        metric_sum(
            &text,
            "auditflow_dead_lettered_total",
            r#"service="classifier""#
        ),
        3
    );
}

/// Issue 12.2.9: a transaction's batch is bounded by bytes as well as by records — half of
/// `[kafka] max_in_flight_bytes`, since one batch commits while the next is prepared — so a
/// backlog of large records is never gathered whole into memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_of_large_records_are_bounded_by_bytes() {
    let mut setup = Setup::new("cls_bytes", 1).await;
    // 1 MiB in flight: batches close at 512 KiB, three of these 200 kB records.
    setup.config.kafka.max_in_flight_bytes = 1024 * 1024;
    // Records alone would let one batch take the whole backlog: it is all there before the
    // classifier starts, and a batch may wait far longer than fetching it takes.
    setup.config.kafka.batch_max_wait_ms = 5_000;
    let pad = "p".repeat(200_000);
    let inputs: Vec<Input> = (0..20)
        .map(|i| {
            structured(
                format!(
                    r#"{{"id":"big-{i}","source":"s","type":"user.created","data":{{"user_id":"u{i}","pad":"{pad}"}}}}"#
                )
                .as_bytes(),
            )
        })
        .collect();
    produce(&setup.bootstrap, &setup.input, &inputs).await;

    let (shutdown, metrics, _health, task) = start_classifier(&setup.config);
    wait_caught_up(&setup.bootstrap, &setup.group(), &setup.input).await;
    let text = once_counted(20, async || metrics.render()).await;
    shutdown.trigger();
    task.await
        .expect("classifier task")
        .expect("classifier ran");

    assert_eq!(
        read_committed(&setup.bootstrap, &setup.config.topics.user_action).len(),
        20
    );
    let committed = metric(
        &text,
        r#"auditflow_transactions_total{result="committed",service="classifier"}"#,
    );
    // At most three records per transaction: at least seven transactions for twenty.
    assert!(committed >= 7, "{committed} transactions:\n{text}");
}

/// The classifier's metrics (`read` fetches them) once it has counted `n` consumed records.
/// The counts of a transaction are applied just after it commits: the group's committed
/// offsets (what `wait_caught_up` saw) can be a moment ahead of them. After the deadline the
/// text is returned as it is, for the caller's assertions to say what is missing.
async fn once_counted(n: u64, mut read: impl AsyncFnMut() -> String) -> String {
    let started = std::time::Instant::now();
    loop {
        let text = read().await;
        let consumed = metric_sum(
            &text,
            "auditflow_consumed_records_total",
            r#"service="classifier""#,
        );
        if consumed >= n || started.elapsed() > DEADLINE {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
