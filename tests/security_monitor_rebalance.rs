//! Windows follow partitions across rebalances (docs/security-rules.md): bursts of failed logins
//! are judged by one monitor instance, then by two after a second joins, then by the second alone
//! after the first leaves. Each time a partition changes hands its new owner rebuilds the windows
//! from the partition's history before it judges new records, so every ip gets exactly one medium,
//! one high and one critical alert: none twice, none missed.
//!
//! The security events have 5 partitions and the user actions 1, so whichever 3 of the 6 an
//! instance owns after the join, at least 2 are security events: both instances judge
//! bursts, and the leaver's bursts are finished by the other.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auditflow_integration_tests::classifier::Setup;
use auditflow_integration_tests::kafka::{Input, create_topic, read_committed};
use auditflow_integration_tests::metrics::{metric, metric_sum};
use auditflow_integration_tests::security_monitor::{
    Monitor, alert_summary, create_monitor_topics, failed_login, produce_all, rfc3339,
    security_events, wait_monitor_caught_up,
};
use auditflow_integration_tests::stack::DEADLINE;
use chrono::{DateTime, TimeDelta, Utc};

/// Failures `range` of the bursts of `ips` (ip k: 10.88.k/256.k%256, user `r-k`), dated from
/// `start`: their security events (the login attempts' user actions raise nothing).
fn failures(
    setup: &Setup,
    start: DateTime<Utc>,
    ips: std::ops::Range<u32>,
    range: std::ops::Range<i64>,
) -> Vec<(String, Input)> {
    let events: Vec<serde_json::Value> = ips
        .flat_map(|k| {
            range.clone().map(move |i| {
                let time = rfc3339(start + TimeDelta::seconds(i));
                failed_login(&format!("reb-{k}-{i}"), &time, &format!("r-{k}"), &ip(k))
            })
        })
        .collect();
    security_events(&setup.config, &events)
}

fn ip(k: u32) -> String {
    format!("10.88.{}.{}", k / 256, k % 256)
}

/// Security events one instance consumed (and committed).
fn consumed_events(setup: &Setup, monitor: &Monitor) -> u64 {
    metric(
        &monitor.metrics.render(),
        &format!(
            r#"auditflow_consumed_records_total{{service="security-monitor",topic="{}"}}"#,
            setup.config.topics.security_event
        ),
    )
}

/// Consumed records of one instance, over both inputs.
fn consumed(monitor: &Monitor) -> u64 {
    metric_sum(
        &monitor.metrics.render(),
        "auditflow_consumed_records_total",
        r#"service="security-monitor""#,
    )
}

/// Waits until the two instances own `a` and `b` partitions.
async fn wait_split(first: &Monitor, second: &Monitor, a: u64, b: u64) {
    let started = Instant::now();
    loop {
        let (x, y) = (
            first.metric("auditflow_assigned_partitions"),
            second.metric("auditflow_assigned_partitions"),
        );
        if (x, y) == (a, b) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "assignment stuck at {x} + {y}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the group has committed everything and `monitor` has counted `n` records.
async fn settled(setup: &Setup, monitors: &[&Monitor], n: u64) {
    wait_monitor_caught_up(setup).await;
    let started = Instant::now();
    while monitors.iter().map(|m| consumed(m)).sum::<u64>() < n {
        assert!(started.elapsed() < DEADLINE, "counts never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_rebuilt_when_an_instance_joins_and_when_one_leaves() {
    let setup = Setup::new("secmon_rebalance", 1).await;
    let t = &setup.config.topics;
    create_topic(&setup.bootstrap, &t.security_event, 5).await;
    create_topic(&setup.bootstrap, &t.user_action, 1).await;
    create_monitor_topics(&setup.config).await;
    let partitions = 6;
    let start = Utc::now() - TimeDelta::minutes(1);
    let (first_ips, second_ips) = (0..30, 30..90);

    // One instance: the first 15 failures of the first bursts (medium and high each).
    let a = Monitor::start(&setup.config);
    a.wait_assigned(partitions).await;
    let batch = failures(&setup, start, first_ips.clone(), 0..15);
    let mut produced = batch.len() as u64;
    produce_all(&setup.bootstrap, batch).await;
    settled(&setup, &[&a], produced).await;

    // A second instance joins and takes half the partitions.
    let b = Monitor::start(&setup.config);
    wait_split(&a, &b, partitions / 2, partitions / 2).await;
    let (a_before, b_before) = (consumed_events(&setup, &a), consumed_events(&setup, &b));
    let batch = [
        failures(&setup, start, first_ips.clone(), 15..21),
        failures(&setup, start, second_ips.clone(), 0..15),
    ]
    .concat();
    produced += batch.len() as u64;
    produce_all(&setup.bootstrap, batch).await;
    settled(&setup, &[&a, &b], produced).await;
    assert!(
        consumed_events(&setup, &a) > a_before && consumed_events(&setup, &b) > b_before,
        "both instances judged bursts after the join"
    );

    // The first instance leaves; the second takes every partition.
    let a_total = consumed(&a);
    a.stop().await;
    b.wait_assigned(partitions).await;
    let batch = failures(&setup, start, second_ips.clone(), 15..21);
    produced += batch.len() as u64;
    produce_all(&setup.bootstrap, batch).await;
    settled(&setup, &[&b], produced - a_total).await;
    b.stop().await;

    let alerts = read_committed(&setup.bootstrap, &setup.config.topics.alerts);
    let mut per_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rule, level, source) in alert_summary(&alerts) {
        assert_eq!(rule, "brute_force");
        per_ip.entry(source).or_default().push(level);
    }
    let expected: BTreeMap<String, Vec<String>> = (0..90)
        .map(|k| {
            let levels = ["medium", "high", "critical"].map(String::from).to_vec();
            (ip(k), levels)
        })
        .collect();
    assert_eq!(per_ip, expected);
}
