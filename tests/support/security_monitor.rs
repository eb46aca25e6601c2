//! Helpers shared by the security monitor's integration tests (next to
//! [`crate::classifier`]'s): inputs as the classifier writes them, a monitor run in this
//! process with its own metrics, and waits bounded by [`DEADLINE`] that fail the test.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auditflow_core::Config;
use auditflow_core::classify::Classified;
use auditflow_runtime::{Metrics, Shutdown, kafka::topics};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::classifier::Setup;
use crate::kafka::{Input, Read, produce, wait_caught_up};
use crate::metrics::metric;
use crate::processes::start_in_process;
use crate::stack::DEADLINE;

/// RFC 3339 with milliseconds, as producers write `time`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A failed `user.login.attempt` of `user` from `ip`.
pub fn failed_login(id: &str, time: &str, user: &str, ip: &str) -> Value {
    json!({"id": id, "source": "auth", "type": "user.login.attempt", "time": time,
           "data": {"user_id": user, "success": false, "ip_address": ip}})
}

/// A self-granted `root` role for `user`, from `ip`: privilege escalation at 95, critical.
pub fn self_granted_root(id: &str, time: &str, user: &str, ip: &str) -> Value {
    json!({"id": id, "source": "admin", "type": "user.role.changed", "time": time,
           "data": {"user_id": user, "new_role": "root", "old_role": "member",
                    "changed_by": user, "ip_address": ip}})
}

/// What the classifier makes of `events`: the monitor's inputs, `(topic, record)` in order.
pub fn classified(config: &Config, events: &[Value]) -> Vec<(String, Input)> {
    let classifier = auditflow_core::Classifier::new(config).expect("classifier");
    let mut out = Vec::new();
    for event in events {
        let Classified::Emit(outputs) =
            classifier.classify_structured(event.to_string().as_bytes(), Utc::now())
        else {
            panic!("audited: {event}");
        };
        for o in outputs {
            out.push((o.topic, (Some(o.key), o.value, Vec::new())));
        }
    }
    out
}

/// The security events the classifier makes of `events` (their user actions left out).
pub fn security_events(config: &Config, events: &[Value]) -> Vec<(String, Input)> {
    classified(config, events)
        .into_iter()
        .filter(|(topic, _)| topic == &config.topics.security_event)
        .collect()
}

/// Produces `records` with one producer per topic (order kept within each topic), so a burst
/// reaches Kafka in a moment rather than a record per round trip.
pub async fn produce_all(bootstrap: &str, records: Vec<(String, Input)>) {
    let mut by_topic: BTreeMap<String, Vec<Input>> = BTreeMap::new();
    for (topic, record) in records {
        by_topic.entry(topic).or_default().push(record);
    }
    for (topic, records) in &by_topic {
        produce(bootstrap, topic, records).await;
    }
}

/// A config for a monitor test: fresh names ([`Setup::new`]) and the topics created.
pub async fn monitor_setup(name: &str) -> Setup {
    let setup = Setup::new(name, 1).await;
    create_monitor_topics(&setup.config).await;
    setup
}

/// Creates every topic `config` plans (the runtime's `planned_topics`), so the monitor's
/// outputs and the blocklist exist before it starts.
pub async fn create_monitor_topics(config: &Config) {
    topics::ensure_topics(&config.kafka, &topics::planned_topics(&config.topics))
        .await
        .expect("creating the topics");
}

/// A security monitor running in this process; stopped when dropped (also by a failed
/// assertion: the runtime would otherwise wait forever for the loop's blocking thread).
pub struct Monitor {
    /// The monitor's own metrics registry, to read its counters.
    pub metrics: Metrics,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<Result<(), auditflow_security_monitor::Error>>>,
}

impl Monitor {
    /// Starts the monitor in this process with `config` and a metrics registry of its own.
    pub fn start(config: &Config) -> Monitor {
        let metrics = Metrics::new().expect("metrics");
        let monitor = start_in_process(config, &metrics, |cx| {
            Box::pin(auditflow_security_monitor::run(cx))
        });
        Monitor {
            metrics,
            shutdown: monitor.shutdown,
            task: Some(monitor.task),
        }
    }

    /// The value of one of this monitor's series (its `service` label added).
    pub fn metric(&self, family: &str) -> u64 {
        metric(
            &self.metrics.render(),
            &format!(r#"{family}{{service="security-monitor"}}"#),
        )
    }

    /// Waits until the monitor owns at least `n` partitions.
    pub async fn wait_assigned(&self, n: u64) {
        let started = Instant::now();
        while self.metric("auditflow_assigned_partitions") < n {
            assert!(
                started.elapsed() < DEADLINE,
                "the monitor never got {n} partitions"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the monitor (SIGTERM's path: finish, commit, leave the group) and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await.expect("monitor task").expect("monitor ran");
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The monitor's group id under `config`.
pub fn monitor_group(config: &Config) -> String {
    format!("{}security-monitor", config.kafka.group_prefix)
}

/// Waits until the monitor's group has committed everything now on its two inputs.
pub async fn wait_monitor_caught_up(setup: &Setup) {
    let group = monitor_group(&setup.config);
    for topic in [
        &setup.config.topics.security_event,
        &setup.config.topics.user_action,
    ] {
        wait_caught_up(&setup.bootstrap, &group, topic).await;
    }
}

/// `(rule, level, source_ip)` of each alert, in topic order per partition.
pub fn alert_summary(alerts: &[Read]) -> Vec<(String, String, String)> {
    alerts
        .iter()
        .map(|r| {
            let d = &r.json()["data"];
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (text("rule"), text("level"), text("source_ip"))
        })
        .collect()
}
