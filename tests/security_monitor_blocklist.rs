//! The security monitor against the real Kafka: a block's tombstone follows the wall clock.
//!
//! A burst of failed logins, sent once the monitor runs, blocks an ip for a few seconds, then
//! nothing more arrives. With tombstones driven by event time only, the ip would stay on the
//! compacted blocklist until the next record; the monitor's tick lifts it when the wall clock
//! passes `expires_at` (and not before: the tombstone's own record time is checked), so the
//! `read_committed` blocklist ends with exactly one upsert and one tombstone for the ip. The
//! `auditflow_detect_*` metrics (the registry `/metrics` serves) count the alerts and actions
//! and carry no ip.

use std::time::{Duration, Instant};

use auditflow_core::Classifier;
use auditflow_core::classify::Classified;
use auditflow_integration_tests::classifier::Setup;
use auditflow_integration_tests::kafka::{Input, Read, produce, read_committed};
use auditflow_integration_tests::metrics::metric;
use auditflow_integration_tests::processes::{InProcess, start_in_process};
use auditflow_integration_tests::stack::DEADLINE;
use auditflow_runtime::{Metrics, Shutdown, kafka::topics};
use chrono::{SecondsFormat, TimeDelta, Utc};

const IP: &str = "203.0.113.77";

/// 21 failed logins from [`IP`] ending now, as the classifier writes them: `(topic, record)`.
fn burst(config: &auditflow_core::Config) -> Vec<(String, Input)> {
    let classifier = Classifier::new(config).expect("classifier");
    let start = Utc::now() - TimeDelta::seconds(20);
    let mut out = Vec::new();
    for i in 0..21 {
        let time = (start + TimeDelta::seconds(i)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let login = format!(
            r#"{{"id":"bl-login-{i}","source":"auth","type":"user.login.attempt","time":"{time}",
                "data":{{"user_id":"bob","success":false,"ip_address":"{IP}"}}}}"#
        );
        let Classified::Emit(outputs) =
            classifier.classify_structured(login.as_bytes(), Utc::now())
        else {
            panic!("a failed login is audited");
        };
        for o in outputs {
            out.push((o.topic, (Some(o.key), o.value, Vec::new())));
        }
    }
    out
}

/// Stops the monitor when the test ends, also by a failed assertion: the runtime would
/// otherwise wait forever for the loop's blocking thread.
struct StopOnDrop(Shutdown);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

fn is_tombstone(r: &Read) -> bool {
    r.value.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_block_is_lifted_without_further_input() {
    let mut setup = Setup::new("secmon_blocklist", 1).await;
    setup.config.security.block_duration_secs = 15;
    topics::ensure_topics(
        &setup.config.kafka,
        &topics::planned_topics(&setup.config.topics),
    )
    .await
    .expect("creating the topics");

    let metrics = Metrics::new().expect("metrics");
    let InProcess { shutdown, task, .. } = start_in_process(&setup.config, &metrics, |cx| {
        Box::pin(auditflow_security_monitor::run(cx))
    });
    let _stop = StopOnDrop(shutdown.clone());

    // The burst goes out once the monitor owns its inputs, so it is judged at once and its
    // block (15 s) is still standing then: a tombstone written at once would be caught.
    let started = Instant::now();
    let assigned = r#"auditflow_assigned_partitions{service="security-monitor"}"#;
    while metric(&metrics.render(), assigned) == 0 {
        assert!(
            started.elapsed() < DEADLINE,
            "the monitor never got its partitions"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One producer per topic, all records at once: the block must still stand when judged.
    let mut by_topic: std::collections::BTreeMap<String, Vec<Input>> = Default::default();
    for (topic, record) in burst(&setup.config) {
        by_topic.entry(topic).or_default().push(record);
    }
    for (topic, records) in &by_topic {
        produce(&setup.bootstrap, topic, records).await;
    }

    // No record arrives after the burst: only the wall clock can lift the block.
    let blocklist_topic = setup.config.topics.blocklist.clone();
    let blocklist = loop {
        let records = read_committed(&setup.bootstrap, &blocklist_topic);
        if records.iter().any(is_tombstone) {
            break records;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no tombstone on the blocklist: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // The gauge follows the tombstone's commit.
    let critical = r#"auditflow_detect_alerts_total{level="critical",rule="brute_force",service="security-monitor"}"#;
    let text = loop {
        let text = metrics.render();
        if metric(
            &text,
            r#"auditflow_detect_active_blocks{service="security-monitor"}"#,
        ) == 0
            && metric(&text, critical) == 1
        {
            break text;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "metrics never settled:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    shutdown.trigger();
    task.await.expect("monitor task").expect("monitor ran");

    // Exactly one upsert, then exactly one tombstone, both keyed by the ip.
    let blocklist_after = read_committed(&setup.bootstrap, &blocklist_topic);
    assert_eq!(blocklist_after.len(), blocklist.len());
    let summary: Vec<(Option<&str>, bool)> = blocklist_after
        .iter()
        .map(|r| (r.key.as_deref(), is_tombstone(r)))
        .collect();
    assert_eq!(summary, [(Some(IP), false), (Some(IP), true)]);
    let upsert = blocklist_after[0].json();
    assert_eq!(upsert["data"]["ip"], IP);
    let expires_at: chrono::DateTime<Utc> = upsert["data"]["expires_at"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("expires_at");
    // The tombstone went out after the block expired, by its own record time (the
    // monitor's producer stamps it when it is written), not merely before this test looked.
    let tombstone_ms = blocklist_after[1]
        .timestamp_ms
        .expect("the tombstone's record timestamp");
    assert!(
        expires_at.timestamp_millis() < tombstone_ms,
        "tombstone at {tombstone_ms} ms, before the block's expiry {expires_at}"
    );

    for (series, value) in [
        (critical, 1),
        (
            r#"auditflow_detect_alerts_total{level="medium",rule="brute_force",service="security-monitor"}"#,
            1,
        ),
        (
            r#"auditflow_detect_actions_total{action="block_ip",service="security-monitor"}"#,
            1,
        ),
        (
            r#"auditflow_detect_actions_total{action="disable_account",service="security-monitor"}"#,
            1,
        ),
        (
            r#"auditflow_detect_too_late_total{service="security-monitor"}"#,
            0,
        ),
        (
            r#"auditflow_detect_tracked_keys{service="security-monitor"}"#,
            1,
        ),
    ] {
        assert_eq!(metric(&text, series), value, "{series} in\n{text}");
    }
    assert!(
        text.contains("auditflow_detect_evicted_keys_total"),
        "{text}"
    );
    assert!(
        !text.contains(IP) && !text.contains("bob"),
        "personal data in metrics:\n{text}"
    );
}
