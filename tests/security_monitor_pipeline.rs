//! The security monitor against the real Kafka (docs/security-rules.md):
//!
//! - its counters add up to what it consumed (consumed = emitted + ignored + dead-lettered);
//! - an event dated 9999-01-01 inside a burst neither wipes the burst's window nor lifts an
//!   active block;
//! - an ip blocked from two partitions owned by two instances is lifted only when the longer
//!   block expires, and the blocklist never shows the shorter one last.

use std::time::{Duration, Instant};

use auditflow_integration_tests::kafka::{Read, read_committed, structured};
use auditflow_integration_tests::metrics::{metric, metric_sum};
use auditflow_integration_tests::security_monitor::{
    Monitor, alert_summary, classified, create_monitor_topics, failed_login, monitor_setup,
    produce_all, rfc3339, self_granted_root, wait_monitor_caught_up,
};
use auditflow_integration_tests::stack::DEADLINE;
use chrono::{DateTime, TimeDelta, Utc};

/// One series of the monitor's: `family{label, service}`, labels in Prometheus' sorted order.
fn svc_metric(text: &str, family: &str, label: &str) -> u64 {
    let service = r#"service="security-monitor""#;
    let labels = match label {
        "" => service.to_owned(),
        l if l < service => format!("{l},{service}"),
        l => format!("{service},{l}"),
    };
    metric(text, &format!("{family}{{{labels}}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_add_up_to_what_was_consumed() {
    let setup = monitor_setup("secmon_counters").await;
    let t = &setup.config.topics;
    let start = Utc::now() - TimeDelta::seconds(30);
    let mut logins: Vec<serde_json::Value> = (0..21)
        .map(|i| {
            let time = rfc3339(start + TimeDelta::seconds(i));
            failed_login(&format!("cnt-{i}"), &time, "dana", "203.0.113.40")
        })
        .collect();
    // Text that is no ip: judged, counted, never a key.
    logins.push(failed_login("cnt-hot", &rfc3339(start), "erin", "hot"));
    let mut inputs = classified(&setup.config, &logins);
    let good = inputs.len() as u64;
    assert_eq!(good, 44, "a user action and a security event per login");
    inputs.push((t.security_event.clone(), structured(b"garbage")));
    inputs.push((
        t.security_event.clone(),
        structured(br#"{"id":"sv1","source":"s","type":"audit.security.event","data":{"severity":"info"}}"#),
    ));
    inputs.push((
        t.user_action.clone(),
        structured(
            br#"{"id":"sv2","source":"s","type":"audit.user.action","data":{"action":"x"}}"#,
        ),
    ));
    let consumed_expected = inputs.len() as u64;
    produce_all(&setup.bootstrap, inputs).await;

    let monitor = Monitor::start(&setup.config);
    wait_monitor_caught_up(&setup).await;
    // A transaction's counts are applied just after it commits: poll for them.
    let started = Instant::now();
    let text = loop {
        let text = monitor.metrics.render();
        let consumed = metric_sum(
            &text,
            "auditflow_consumed_records_total",
            r#"service="security-monitor""#,
        );
        if consumed >= consumed_expected {
            break text;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "counts never arrived:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    monitor.stop().await;

    let svc = r#"service="security-monitor""#;
    let consumed = metric_sum(&text, "auditflow_consumed_records_total", svc);
    let outcome = |o: &str| {
        svc_metric(
            &text,
            "auditflow_processed_records_total",
            &format!(r#"outcome="{o}""#),
        )
    };
    assert_eq!(consumed, consumed_expected, "{text}");
    assert_eq!(
        outcome("emitted") + outcome("sampled_out") + outcome("ignored") + outcome("dead_lettered"),
        consumed,
        "{text}"
    );
    assert_eq!(
        outcome("emitted"),
        good,
        "every well-formed input is judged"
    );
    assert_eq!(outcome("dead_lettered"), 3);
    assert_eq!(
        svc_metric(
            &text,
            "auditflow_dead_lettered_total",
            r#"reason="invalid_json""#
        ),
        1
    );
    assert_eq!(
        svc_metric(
            &text,
            "auditflow_dead_lettered_total",
            r#"reason="schema_violation""#
        ),
        2
    );
    assert_eq!(metric_sum(&text, "auditflow_dead_lettered_total", svc), 3);
    // Per topic, the consumed counts are what was produced there.
    assert_eq!(
        svc_metric(
            &text,
            "auditflow_consumed_records_total",
            &format!(r#"topic="{}""#, t.security_event)
        ),
        22 + 2
    );
    // Emitted outputs are what a read_committed reader finds on each output topic.
    let mut emitted = 0;
    for topic in [&t.alerts, &t.actions, &t.blocklist] {
        let found = read_committed(&setup.bootstrap, topic).len() as u64;
        assert_eq!(
            svc_metric(
                &text,
                "auditflow_emitted_records_total",
                &format!(r#"topic="{topic}""#)
            ),
            found,
            "{topic}"
        );
        emitted += found;
    }
    assert_eq!(
        emitted,
        3 + 2 + 1,
        "3 alerts, block_ip and disable_account, one block"
    );
    let dead = read_committed(&setup.bootstrap, &t.dead_letter);
    assert_eq!(dead.len(), 3);
    // The user action and the security event naming "hot" were judged, but no key.
    assert_eq!(
        svc_metric(&text, "auditflow_detect_unparsable_ips_total", ""),
        2
    );
    assert!(
        !text.contains("203.0.113.40") && !text.contains("dana"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_event_neither_blinds_a_burst_nor_lifts_a_block() {
    let setup = monitor_setup("secmon_future").await;
    let ip = "203.0.113.41";
    let start = Utc::now() - TimeDelta::seconds(30);
    let mut logins: Vec<serde_json::Value> = (0..21)
        .map(|i| {
            let time = rfc3339(start + TimeDelta::seconds(i));
            failed_login(&format!("fut-{i}"), &time, "fred", ip)
        })
        .collect();
    // The 11th failure of the burst claims to happen in 9999.
    logins[10]["time"] = "9999-01-01T00:00:00Z".into();
    // After the critical alert, another ip's far-future failure: the block must stand.
    logins.push(failed_login(
        "fut-other",
        "9999-01-01T00:00:00Z",
        "gina",
        "198.51.100.41",
    ));
    produce_all(&setup.bootstrap, classified(&setup.config, &logins)).await;

    let monitor = Monitor::start(&setup.config);
    wait_monitor_caught_up(&setup).await;
    let started = Instant::now();
    while monitor.metric("auditflow_detect_future_dated_total") < 4 {
        assert!(
            started.elapsed() < DEADLINE,
            "future-dated events not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(monitor.metric("auditflow_detect_active_blocks"), 1);
    assert_eq!(monitor.metric("auditflow_detect_too_late_total"), 0);
    monitor.stop().await;

    let t = &setup.config.topics;
    let alerts = read_committed(&setup.bootstrap, &t.alerts);
    let expected: Vec<(String, String, String)> = ["medium", "high", "critical"]
        .iter()
        .map(|l| ("brute_force".into(), l.to_string(), ip.into()))
        .collect();
    assert_eq!(alert_summary(&alerts), expected, "the window was not wiped");
    let critical = alerts[2].json();
    assert_eq!(critical["data"]["count"], 21);
    assert!(
        !critical["time"].as_str().unwrap().starts_with("9999"),
        "{critical}"
    );
    let blocklist = read_committed(&setup.bootstrap, &t.blocklist);
    let summary: Vec<(Option<&str>, bool)> = blocklist
        .iter()
        .map(|r| (r.key.as_deref(), r.value.is_empty()))
        .collect();
    assert_eq!(summary, [(Some(ip), false)], "one upsert, no tombstone");
}

/// The block's `expires_at` of a blocklist upsert.
fn expires_at(r: &Read) -> DateTime<Utc> {
    r.json()["data"]["expires_at"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("expires_at")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_stands_until_the_longest_block_of_any_instance_expires() {
    // Two instances share one blocklist: X owns the security events, Y the user actions.
    // (Each runs in a group of its own and reads one input, so which instance owns which
    // partition is fixed, not left to the group's assignment.)
    let setup = monitor_setup("secmon_shared").await;
    let ip = "203.0.113.42";
    let block = TimeDelta::seconds(20);
    let mut x = setup.config.clone();
    x.security.block_duration_secs = block.num_seconds() as u64;
    let mut y = x.clone();
    x.kafka.group_prefix = format!("{}x_", setup.prefix);
    x.topics.user_action = format!("{}.unused.x", setup.prefix);
    y.kafka.group_prefix = format!("{}y_", setup.prefix);
    y.topics.security_event = format!("{}.unused.y", setup.prefix);
    create_monitor_topics(&x).await;
    create_monitor_topics(&y).await;
    let (mx, my) = (Monitor::start(&x), Monitor::start(&y));
    mx.wait_assigned(1).await;
    my.wait_assigned(1).await;

    // X: a burst ending now blocks the ip until now + 20 s. Y: a self-granted root role from
    // the same ip, dated 10 s later, blocks it until now + 30 s.
    let now = Utc::now();
    let mut events: Vec<serde_json::Value> = (0..21)
        .map(|i| {
            let time = rfc3339(now - TimeDelta::seconds(20 - i));
            failed_login(&format!("sh-{i}"), &time, "hana", ip)
        })
        .collect();
    let grant_time = now + TimeDelta::seconds(10);
    events.push(self_granted_root(
        "sh-grant",
        &rfc3339(grant_time),
        "ivan",
        ip,
    ));
    // The security events go to X, the user actions (the grant's among them) to Y.
    produce_all(&setup.bootstrap, classified(&setup.config, &events)).await;

    let topic = &setup.config.topics.blocklist;
    let started = Instant::now();
    let blocklist = loop {
        let records = read_committed(&setup.bootstrap, topic);
        if records.iter().any(|r| r.value.is_empty()) {
            break records;
        }
        assert!(started.elapsed() < DEADLINE, "no tombstone: {records:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Two more ticks, so a tombstone from the other instance would have arrived too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let blocklist_after = read_committed(&setup.bootstrap, topic);
    mx.stop().await;
    my.stop().await;
    assert!(blocklist_after.len() >= blocklist.len());

    let longest = grant_time + block;
    let first_tombstone = blocklist_after
        .iter()
        .position(|r| r.value.is_empty())
        .unwrap();
    let tombstone_ms = blocklist_after[first_tombstone].timestamp_ms.unwrap();
    assert!(
        tombstone_ms > longest.timestamp_millis(),
        "tombstoned at {tombstone_ms} ms, before the longer block's expiry {longest}: {:?}",
        blocklist_after
            .iter()
            .map(|r| (
                r.timestamp_ms,
                String::from_utf8_lossy(&r.value).into_owned()
            ))
            .collect::<Vec<_>>()
    );
    // Before it, the topic's latest value was the longer block: no upsert shortened it.
    let last_upsert = &blocklist_after[first_tombstone - 1];
    assert!(!last_upsert.value.is_empty());
    assert_eq!(
        expires_at(last_upsert).timestamp_millis(),
        longest.timestamp_millis(),
        "{}",
        String::from_utf8_lossy(&last_upsert.value)
    );
    // One tombstone, last: nothing was re-blocked after it.
    let tombstones = blocklist_after
        .iter()
        .filter(|r| r.value.is_empty())
        .count();
    assert_eq!(tombstones, 1);
    assert!(blocklist_after.last().unwrap().value.is_empty());
    assert!(blocklist_after.iter().all(|r| r.key.as_deref() == Some(ip)));
}
