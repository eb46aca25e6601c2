//! The OCSF exporter on the real stack: the corpus's audit records, alerts and actions on
//! their topics → `auditflow run ocsf-exporter` → `audit.ocsf`, read `read_committed`, holds
//! exactly the events `auditflow ocsf` makes of the same records offline — one per record,
//! none twice, byte for byte — across a restart in the middle; every one is valid OCSF 1.8.0;
//! a record that breaks its schema is dead-lettered with its reason, and the records after it
//! are exported.

use std::collections::BTreeMap;

use auditflow_core::Config;
use auditflow_integration_tests::classifier::Setup;
use auditflow_integration_tests::kafka::{
    Input, create_topic, produce, read_committed, wait_caught_up,
};
use auditflow_integration_tests::ocsf::{auditflow, ok, records_of_corpus, validate};
use auditflow_integration_tests::processes::start_in_process;
use auditflow_runtime::Metrics;
use serde_json::{Value, json};

/// Runs the exporter in this process until it has committed everything now in its inputs.
async fn export_what_is_there(config: &Config, bootstrap: &str) {
    let metrics = Metrics::new().expect("metrics");
    let exporter = start_in_process(config, &metrics, |cx| {
        Box::pin(auditflow_ocsf_exporter::run(cx))
    });
    let group = format!(
        "{}{}",
        config.kafka.group_prefix,
        auditflow_ocsf_exporter::SERVICE
    );
    for topic in auditflow_ocsf_exporter::input_topics(config) {
        wait_caught_up(bootstrap, &group, &topic).await;
    }
    exporter.shutdown.trigger();
    exporter
        .task
        .await
        .expect("exporter task")
        .expect("the exporter ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_writes_each_records_ocsf_event_once() {
    let setup = Setup::new("ocsf_exp", 1).await;
    let (config, bootstrap) = (setup.config.clone(), setup.bootstrap.clone());
    let t = &config.topics;
    for topic in auditflow_ocsf_exporter::input_topics(&config) {
        create_topic(&bootstrap, &topic, 3).await;
    }
    create_topic(&bootstrap, &t.ocsf, 3).await;
    create_topic(&bootstrap, &t.dead_letter, 1).await;

    // What `classify` and `detect` wrote, each record to this test's topic of its kind.
    let defaults = Config::default().topics;
    let private: BTreeMap<&str, &str> = [
        (defaults.user_action.as_str(), t.user_action.as_str()),
        (defaults.data_access.as_str(), t.data_access.as_str()),
        (defaults.security_event.as_str(), t.security_event.as_str()),
        (defaults.alerts.as_str(), t.alerts.as_str()),
        (defaults.actions.as_str(), t.actions.as_str()),
    ]
    .into_iter()
    .collect();
    let lines = records_of_corpus();
    let mut exported_lines = Vec::new();
    let mut by_topic: Vec<(String, Input)> = Vec::new();
    for line in String::from_utf8(lines).unwrap().lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let Some(topic) = record["topic"].as_str().and_then(|t| private.get(t)) else {
            continue;
        };
        let key = record["key"].as_str().map(str::to_owned);
        let value = serde_json::to_vec(&record["value"]).unwrap();
        by_topic.push((topic.to_string(), (key, value, Vec::new())));
        exported_lines.push(line.to_owned());
    }
    assert!(by_topic.len() > 40, "{} records", by_topic.len());
    let offline = ok(
        &auditflow(
            &["ocsf"],
            &[],
            (exported_lines.join("\n") + "\n").as_bytes(),
        ),
        "auditflow ocsf",
    );
    let expected: Vec<String> = String::from_utf8(offline)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(expected.len(), by_topic.len(), "every record has its event");

    // Half, an alert that breaks its schema, then the rest after a restart.
    let broken = json!({"specversion": "1.0", "id": "broken-1",
        "source": "/auditflow/security-monitor", "type": "security.alert",
        "time": "2026-12-03T10:00:00Z", "data": {"rule": "brute_force"}});
    let half = by_topic.len() / 2;
    for (topic, record) in &by_topic[..half] {
        produce(&bootstrap, topic, std::slice::from_ref(record)).await;
    }
    let bad: Input = (None, serde_json::to_vec(&broken).unwrap(), Vec::new());
    produce(&bootstrap, &t.alerts, &[bad]).await;
    export_what_is_there(&config, &bootstrap).await;
    for (topic, record) in &by_topic[half..] {
        produce(&bootstrap, topic, std::slice::from_ref(record)).await;
    }
    export_what_is_there(&config, &bootstrap).await;

    let written: Vec<String> = read_committed(&bootstrap, &t.ocsf)
        .iter()
        .map(|r| String::from_utf8(r.value.clone()).unwrap())
        .collect();
    let tally = |events: &[String]| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for e in events {
            *counts.entry(e.clone()).or_default() += 1;
        }
        counts
    };
    assert_eq!(
        written.len(),
        expected.len(),
        "one event per record, none twice"
    );
    assert_eq!(
        tally(&written),
        tally(&expected),
        "the offline command's events"
    );
    let out = validate((written.join("\n") + "\n").as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let letters = read_committed(&bootstrap, &t.dead_letter);
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].header("auditflow.error"),
        Some("schema_violation")
    );
    assert_eq!(
        letters[0].header("auditflow.service"),
        Some(auditflow_ocsf_exporter::SERVICE)
    );
}
