//! `kill -9` mid-stream (docs/operations.md: exactly-once output under a crash): the real
//! `auditflow run security-monitor` binary is killed without warning while it works through
//! a backlog of brute-force bursts, restarted, and the `read_committed` alerts and actions
//! hold every expected one exactly once — the restarted instance rebuilt its windows from the
//! partitions' history (docs/security-rules.md) before judging the rest. It is then stopped with
//! SIGTERM and must exit 0.
//!
//! The binary is the one `cargo build`/`cargo test --workspace` put next to this test
//! (`target/<profile>/auditflow`); `cargo xtask test` builds it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

use auditflow_core::detect::{Detector, IdSecret, Mode, Observation};
use auditflow_integration_tests::classifier::Setup;
use auditflow_integration_tests::kafka::{Input, committed, read_committed};
use auditflow_integration_tests::processes::terminate;
use auditflow_integration_tests::security_monitor::{
    alert_summary, failed_login, monitor_group, monitor_setup, produce_all, rfc3339,
    security_events, wait_monitor_caught_up,
};
use auditflow_integration_tests::stack::DEADLINE;
use chrono::{TimeDelta, Utc};

/// The id secret both runs share (as every instance of a deployment must).
const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn spawn(setup: &Setup) -> Child {
    setup
        .run_command("security-monitor")
        .env("AUDITFLOW_ID_SECRET", SECRET)
        .spawn()
        .expect("starting auditflow run security-monitor")
}

/// Bursts of 21 failed logins, one per ip of `ips` (ip k is 10.77.k/256.k%256, user `u-k`):
/// their security events, which the alerts come from. (The login attempts' user actions
/// raise nothing; left out, every committed input is part of a burst.)
fn bursts(setup: &Setup, ips: std::ops::Range<u32>) -> Vec<(String, Input)> {
    let start = Utc::now() - TimeDelta::minutes(2);
    let events: Vec<serde_json::Value> = ips
        .flat_map(|k| {
            (0..21).map(move |i| {
                let time = rfc3339(start + TimeDelta::seconds(i));
                failed_login(&format!("crash-{k}-{i}"), &time, &user(k), &ip(k))
            })
        })
        .collect();
    security_events(&setup.config, &events)
}

fn ip(k: u32) -> String {
    format!("10.77.{}.{}", k / 256, k % 256)
}

fn user(k: u32) -> String {
    format!("u-{k}")
}

/// Committed offsets of the monitor's group, summed over both inputs.
fn committed_inputs(setup: &Setup) -> i64 {
    let group = monitor_group(&setup.config);
    [
        &setup.config.topics.security_event,
        &setup.config.topics.user_action,
    ]
    .iter()
    .map(|t| committed(&setup.bootstrap, &group, t).values().sum::<i64>())
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_alerts_and_acts_exactly_once() {
    let setup = monitor_setup("secmon_crash").await;
    let first = bursts(&setup, 0..1000);
    let total = first.len() as i64;
    let inputs: Vec<Vec<u8>> = first.iter().map(|(_, (_, v, _))| v.clone()).collect();
    produce_all(&setup.bootstrap, first).await;

    let mut victim = spawn(&setup);
    // Kill once a few transactions (100 records each) have committed.
    let started = Instant::now();
    let at_kill = loop {
        let done = committed_inputs(&setup);
        if done >= 1000 {
            break done;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the monitor never committed (or exited: {:?})",
            victim.try_wait()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    victim.kill().expect("SIGKILL");
    victim.wait().expect("reaping");
    assert!(
        at_kill < total,
        "the kill must land mid-stream: {at_kill} of {total} inputs were committed"
    );
    let t = &setup.config.topics;
    let alerts_at_kill = read_committed(&setup.bootstrap, &t.alerts).len();
    eprintln!("killed with {at_kill} of {total} inputs and {alerts_at_kill} alerts committed");
    assert!(
        alerts_at_kill > 0 && alerts_at_kill < 3000,
        "the kill must land mid-stream: {alerts_at_kill} of 3000 alerts committed"
    );

    // More bursts while it is down; then the replacement takes over.
    let second = bursts(&setup, 1000..1100);
    let inputs: Vec<Vec<u8>> = inputs
        .into_iter()
        .chain(second.iter().map(|(_, (_, v, _))| v.clone()))
        .collect();
    produce_all(&setup.bootstrap, second).await;
    let mut survivor = spawn(&setup);
    wait_monitor_caught_up(&setup).await;
    let exit = terminate(&mut survivor);
    assert_eq!(
        exit.code(),
        Some(0),
        "SIGTERM must stop the monitor cleanly"
    );

    // Every ip: one medium, one high, one critical alert; one block_ip; every user: one
    // disable_account. Nothing lost, nothing twice.
    let alerts = read_committed(&setup.bootstrap, &t.alerts);
    let mut per_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rule, level, source) in alert_summary(&alerts) {
        assert_eq!(rule, "brute_force");
        per_ip.entry(source).or_default().push(level);
    }
    assert_eq!(per_ip.len(), 1100, "every ip alerted");
    for (source, levels) in &per_ip {
        assert_eq!(levels, &["medium", "high", "critical"], "{source}");
    }
    let actions = read_committed(&setup.bootstrap, &t.actions);
    let mut kinds: BTreeMap<(String, String), usize> = BTreeMap::new();
    for a in &actions {
        let d = a.json()["data"].clone();
        let target = d["ip"]
            .as_str()
            .or(d["user_id"].as_str())
            .unwrap_or_default();
        *kinds
            .entry((
                d["action"].as_str().unwrap_or_default().into(),
                target.into(),
            ))
            .or_default() += 1;
    }
    assert_eq!(
        kinds.len(),
        2200,
        "a block_ip per ip, a disable_account per user"
    );
    assert!(kinds.values().all(|n| *n == 1), "an action twice");
    for k in 0..1100 {
        assert!(kinds.contains_key(&("block_ip".into(), ip(k))), "{}", ip(k));
        assert!(
            kinds.contains_key(&("disable_account".into(), user(k))),
            "{}",
            user(k)
        );
    }
    // The ids are the ones the engine gives without any crash, under the same secret.
    let online: BTreeSet<String> = alerts
        .iter()
        .chain(&actions)
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(online.len(), alerts.len() + actions.len(), "duplicated ids");
    let mut offline =
        Detector::new(&setup.config.security, IdSecret::from_hex(SECRET).unwrap()).unwrap();
    let mut expected = BTreeSet::new();
    for value in &inputs {
        let event = auditflow_core::envelope::parse_structured(value, &setup.config.limits)
            .expect("a classified event");
        let now = Utc::now();
        if let Some(obs) = Observation::from_event(&event, now).unwrap() {
            for out in offline.observe(&obs, Mode::Live, now) {
                if out.stream() != auditflow_core::detect::OutputStream::Blocklist {
                    expected.extend(out.to_event().map(|e| e.id));
                }
            }
        }
    }
    assert_eq!(online, expected);
    // The blocks stand (an hour): each ip's latest blocklist value is an upsert.
    let mut latest: BTreeMap<String, bool> = BTreeMap::new();
    for r in read_committed(&setup.bootstrap, &t.blocklist) {
        latest.insert(r.key.clone().unwrap_or_default(), !r.value.is_empty());
    }
    assert_eq!(latest.len(), 1100);
    assert!(latest.values().all(|upsert| *upsert));
}
