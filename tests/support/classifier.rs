//! Fixtures of the classifier's integration tests: a config whose topics and group are fresh
//! per test, the classifier started in this process, and what it must make of the lifecycle
//! example (computed by the core offline, and pinned literally).

use auditflow_core::Config;
use auditflow_runtime::{Health, Metrics, Shutdown};

use crate::kafka::{Input, create_topic, read_committed};
use crate::metrics::metric;
use crate::processes::{binary_command, start_in_process};
use crate::stack::{require_kafka, unique_name};

/// One test's private corner of the cluster.
pub struct Setup {
    /// Kafka bootstrap servers of the shared stack.
    pub bootstrap: String,
    /// The fresh name every topic and the group prefix start with.
    pub prefix: String,
    /// The configuration the services run with: this setup's topics and group prefix.
    pub config: Config,
    /// The input topic (`<prefix>.user.events`), created by [`Setup::new`].
    pub input: String,
}

impl Setup {
    /// Fresh topic names (`<prefix>.user.events` in, `<prefix>.audit.*` out) and group prefix;
    /// creates the input topic with `partitions` partitions.
    pub async fn new(name: &str, partitions: i32) -> Self {
        let bootstrap = require_kafka();
        let prefix = unique_name(name);
        let mut config = Config::default();
        config.kafka.bootstrap_servers = bootstrap.clone();
        config.kafka.group_prefix = format!("{prefix}_");
        config.kafka.batch_max_wait_ms = 20;
        let t = &mut config.topics;
        t.user_action = format!("{prefix}.audit.user.action");
        t.data_access = format!("{prefix}.audit.data.access");
        t.security_event = format!("{prefix}.audit.security.event");
        t.dead_letter = format!("{prefix}.audit.dlq");
        t.alerts = format!("{prefix}.security.alerts");
        t.actions = format!("{prefix}.security.actions");
        t.blocklist = format!("{prefix}.security.blocklist");
        t.checkpoints = format!("{prefix}.audit.checkpoints");
        t.operator = format!("{prefix}.audit.operator.action");
        t.sampling = format!("{prefix}.audit.sampling.summary");
        t.ocsf = format!("{prefix}.audit.ocsf");
        // `unique_name` is `[a-z0-9_]`, so it needs no escaping inside the pattern.
        t.classifier_inputs = vec![format!(r"^{prefix}\.user\..+")];
        t.partitions = 3;
        config.metrics.listen = "127.0.0.1:0".into();
        let input = format!("{prefix}.user.events");
        create_topic(&bootstrap, &input, partitions).await;
        Self {
            bootstrap,
            prefix,
            config,
            input,
        }
    }

    /// The classifier's consumer group under this setup's prefix.
    pub fn group(&self) -> String {
        format!("{}classifier", self.config.kafka.group_prefix)
    }

    /// The classifier's three audit topics: user action, data access, security event.
    pub fn output_topics(&self) -> [&str; 3] {
        let t = &self.config.topics;
        [&t.user_action, &t.data_access, &t.security_event]
    }

    /// `auditflow run <service>` (the binary `cargo build` put next to the tests) pointed at
    /// this setup's cluster, group prefix and topics: see [`binary_command`].
    pub fn run_command(&self, service: &str) -> std::process::Command {
        binary_command(&self.bootstrap, &self.config, &["run", service])
    }
}

/// Starts the classifier in this process. Returns its shutdown switch, its metrics and its task.
pub fn start_classifier(
    config: &Config,
) -> (
    Shutdown,
    Metrics,
    Health,
    tokio::task::JoinHandle<Result<(), auditflow_classifier::Error>>,
) {
    let metrics = Metrics::new().expect("metrics");
    let classifier = start_in_process(config, &metrics, |cx| {
        Box::pin(auditflow_classifier::run(cx))
    });
    (
        classifier.shutdown,
        metrics,
        classifier.health,
        classifier.task,
    )
}

/// `user.created` events with ids `<id_prefix>-<i>`, for user `user-<i>`, `i` in `range`.
pub fn user_created(id_prefix: &str, range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range
        .map(|i| {
            format!(r#"{{"id":"{id_prefix}-{i}","source":"users","type":"user.created","time":"2026-11-20T10:00:00Z","data":{{"user_id":"user-{i}"}}}}"#)
                .into_bytes()
        })
        .collect()
}

/// [`user_created`] values (the first for user `user-<from>`) keyed by their user, so they
/// spread over every partition.
pub fn keyed_by_user(values: &[Vec<u8>], from: usize) -> Vec<Input> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (Some(format!("user-{}", from + i)), v.clone(), Vec::new()))
        .collect()
}

/// How many partitions an in-process classifier owns, by its metrics.
pub fn assigned_partitions(metrics: &auditflow_runtime::Metrics) -> u64 {
    metric(
        &metrics.render(),
        r#"auditflow_assigned_partitions{service="classifier"}"#,
    )
}

/// How many of `outputs` ([`actual_outputs`]) repeat the id of another.
pub fn duplicated(outputs: &[(String, String, serde_json::Value)]) -> usize {
    let ids: std::collections::BTreeSet<&str> = outputs
        .iter()
        .filter_map(|(_, _, v)| v["id"].as_str())
        .collect();
    outputs.len() - ids.len()
}

/// The recipe's lifecycle events (`docs/examples/recipe-lifecycle.ndjson`), one per line.
pub fn recipe_lifecycle() -> Vec<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/recipe-lifecycle.ndjson"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

/// What the core's classifier makes of `inputs` offline: `(topic, key, value)`, sorted.
pub fn expected_outputs(
    config: &Config,
    inputs: &[Vec<u8>],
) -> Vec<(String, String, serde_json::Value)> {
    use auditflow_core::classify::Classified;
    let classifier = auditflow_core::Classifier::new(config).expect("classifier");
    let mut out = Vec::new();
    for input in inputs {
        // The examples carry `time`, so the fallback is never used.
        if let Classified::Emit(outputs) = classifier.classify_structured(input, chrono::Utc::now())
        {
            for o in outputs {
                let value: serde_json::Value = serde_json::from_slice(&o.value).expect("json");
                out.push((o.topic, o.key, value));
            }
        }
    }
    out.sort_by(|a, b| (&a.0, a.2["id"].as_str()).cmp(&(&b.0, b.2["id"].as_str())));
    out
}

/// What the classifier must make of [`recipe_lifecycle`], written out literally from SPEC
/// section 4 (not computed by the code under test), in [`actual_outputs`]' order:
/// `(topic, key, value)`. The ids were computed outside the code (Python: UUID v5 under the
/// output namespace over the input's source, id and the output type, each prefixed by its
/// length as a big-endian u64), so a change of the rules, the retention classes, the
/// extensions or the id derivation is caught here even when the core and the service agree.
pub fn pinned_recipe_outputs(config: &Config) -> Vec<(String, String, serde_json::Value)> {
    use serde_json::json;
    let t = &config.topics;
    let input = |n: u8| format!("0193a1f0-0000-7000-8000-00000000000{n}");
    let event = |n: u8,
                 id: &str,
                 ty: &str,
                 time: &str,
                 subject: Option<&str>,
                 original: &str,
                 retention: &str,
                 data: serde_json::Value| {
        let mut value = json!({
            "specversion": "1.0", "id": id, "source": "/auditflow/classifier", "type": ty,
            "time": time, "datacontenttype": "application/json",
            "causationid": input(n), "correlationid": input(n), "originaltype": original,
            "retention": retention, "samplerate": 1, "data": data,
        });
        if let Some(subject) = subject {
            value["subject"] = json!(subject);
        }
        value
    };
    let user = Some("user:demo_user_1");
    let ua = |n, id: &str, time: &str, subject, original: &str, retention: &str, data| {
        let value = event(
            n,
            id,
            "audit.user.action",
            time,
            subject,
            original,
            retention,
            data,
        );
        (t.user_action.clone(), "demo_user_1".to_owned(), value)
    };
    let mut out = vec![
        ua(
            1,
            "f91dd6d3-7d85-58fe-b424-5d7f051c49ba",
            "2026-11-20T10:00:00Z",
            None,
            "user.created",
            "general",
            json!({"user_id": "demo_user_1", "action": "account_created", "outcome": "success",
                  "risk_level": "low", "ip_address": "192.168.1.100",
                  "user_agent": "Mozilla/5.0...", "session_id": "sess_1"}),
        ),
        ua(
            2,
            "dbf46c41-3e9d-592a-963b-4a5c20c1bcc6",
            "2026-11-20T10:00:00.100Z",
            user,
            "user.email.verified",
            "general",
            json!({"user_id": "demo_user_1", "action": "user.email.verified",
                  "outcome": "success", "risk_level": "low"}),
        ),
        ua(
            3,
            "dff250f2-d4ae-5bf7-af41-feb821e922f9",
            "2026-11-20T10:00:00.300Z",
            None,
            "user.login.attempt",
            "security",
            json!({"user_id": "demo_user_1", "action": "login_attempt", "outcome": "success",
                  "risk_level": "low", "ip_address": "192.168.1.100",
                  "user_agent": "Mozilla/5.0...", "session_id": "sess_2"}),
        ),
        ua(
            4,
            "40dda6d1-e1b1-5743-964f-72098256459f",
            "2026-11-20T10:00:00.600Z",
            user,
            "user.profile.updated",
            "general",
            json!({"user_id": "demo_user_1", "action": "profile_update", "outcome": "success",
                  "risk_level": "medium",
                  "context": {"sensitive_data": true,
                              "fields_changed": ["name", "phone", "preferences"]}}),
        ),
        ua(
            5,
            "f9f15a29-0423-57ed-9e4a-c0a1713c7da9",
            "2026-11-20T10:00:00.750Z",
            user,
            "user.subscription.created",
            "financial",
            json!({"user_id": "demo_user_1", "action": "user.subscription.created",
                  "outcome": "success", "risk_level": "low"}),
        ),
        ua(
            6,
            "f1938dc8-6691-5a70-ad69-4149142262fd",
            "2026-11-20T10:00:01.150Z",
            None,
            "user.login.attempt",
            "security",
            json!({"user_id": "demo_user_1", "action": "login_attempt", "outcome": "failure",
                  "risk_level": "high", "ip_address": "203.0.113.42",
                  "user_agent": "curl/7.68.0", "session_id": "sess_3"}),
        ),
        (
            t.security_event.clone(),
            "203.0.113.42".to_owned(),
            event(
                6,
                "084846b8-c637-56f5-bb3c-95c870b3d889",
                "audit.security.event",
                "2026-11-20T10:00:01.150Z",
                None,
                "user.login.attempt",
                "security",
                json!({"event_type": "failed_login", "severity": "critical",
                      "user_id": "demo_user_1", "source_ip": "203.0.113.42", "blocked": false,
                      "details": {"user_id": "demo_user_1", "success": false,
                                  "method": "password", "failure_reason": "invalid_password",
                                  "failure_count": 3, "suspicious_location": true}}),
            ),
        ),
        (
            t.data_access.clone(),
            "demo_user_1".to_owned(),
            event(
                7,
                "a924f807-7833-5c4a-8153-9f14d13a8242",
                "audit.data.access",
                "2026-11-20T10:00:01.350Z",
                user,
                "user.data.export",
                "general",
                json!({"user_id": "demo_user_1", "data_type": "user_profile",
                      "operation": "read", "record_count": 1, "sensitive": false}),
            ),
        ),
    ];
    out.sort_by(|a, b| (&a.0, a.2["id"].as_str()).cmp(&(&b.0, b.2["id"].as_str())));
    out
}

/// Every record on the classifier's three audit topics, as `(topic, key, value)`, sorted.
pub fn actual_outputs(setup: &Setup) -> Vec<(String, String, serde_json::Value)> {
    let mut out: Vec<_> = setup
        .output_topics()
        .iter()
        .flat_map(|t| read_committed(&setup.bootstrap, t))
        .map(|r| (r.topic.clone(), r.key.clone().unwrap_or_default(), r.json()))
        .collect();
    out.sort_by(|a, b| (&a.0, a.2["id"].as_str()).cmp(&(&b.0, b.2["id"].as_str())));
    out
}
