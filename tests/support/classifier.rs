//! Helpers shared by the classifier's integration tests: a config whose topics and group are
//! fresh per test, producing inputs, waiting until the classifier's group has committed
//! everything, and reading an output topic's `read_committed` view to its end. Waits are bounded by generous deadlines that fail the test; nothing asserts on timing.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::{require_kafka, unique_name};
use auditflow_core::Config;
use auditflow_runtime::{Health, Metrics, Shutdown};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// A failure guard, not a performance expectation: the first transaction on a fresh broker
/// creates `__transaction_state`, and two cores may be busy compiling.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// One test's private corner of the cluster.
pub struct Setup {
    pub bootstrap: String,
    pub prefix: String,
    pub config: Config,
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

    pub fn group(&self) -> String {
        format!("{}classifier", self.config.kafka.group_prefix)
    }

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

/// `auditflow <args>` (the binary `cargo build` put next to the tests) pointed at `config`'s
/// cluster, group prefix and topics, 100 records per transaction, quiet logs, and a short
/// session timeout so a killed member's partitions move on quickly.
pub fn binary_command(bootstrap: &str, config: &Config, args: &[&str]) -> std::process::Command {
    let t = &config.topics;
    let mut command = std::process::Command::new(crate::auditflow_binary());
    command
        .args(args)
        .env("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", bootstrap)
        .env("AUDITFLOW_KAFKA__GROUP_PREFIX", &config.kafka.group_prefix)
        .env("AUDITFLOW_KAFKA__TRANSACTION_MAX_RECORDS", "100")
        .env("AUDITFLOW_KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "6000")
        .env("AUDITFLOW_TOPICS__USER_ACTION", &t.user_action)
        .env("AUDITFLOW_TOPICS__DATA_ACCESS", &t.data_access)
        .env("AUDITFLOW_TOPICS__SECURITY_EVENT", &t.security_event)
        .env("AUDITFLOW_TOPICS__DEAD_LETTER", &t.dead_letter)
        .env("AUDITFLOW_TOPICS__ALERTS", &t.alerts)
        .env("AUDITFLOW_TOPICS__ACTIONS", &t.actions)
        .env("AUDITFLOW_TOPICS__BLOCKLIST", &t.blocklist)
        .env("AUDITFLOW_METRICS__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    command
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    create_topic_with(bootstrap, name, partitions, &[]).await;
}

/// [`create_topic`] with topic-level configuration, e.g. `("max.message.bytes", "3000000")`.
pub async fn create_topic_with(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    config: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = config.iter().fold(
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)),
        |topic, (key, value)| topic.set(key, value),
    );
    let results = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code}"));
    }
}

/// An input record: key, value, headers.
pub type Input = (Option<String>, Vec<u8>, Vec<(String, Vec<u8>)>);

pub fn structured(value: &[u8]) -> Input {
    (None, value.to_vec(), Vec::new())
}

/// Produces `records` to `topic` and waits for every acknowledgement.
pub async fn produce(bootstrap: &str, topic: &str, records: &[Input]) {
    produce_with(&producer(bootstrap), topic, records).await;
}

/// An idempotent producer for [`produce_with`].
pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Room for the oversized records some tests send (to topics created to take them).
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer")
}

/// [`produce`] with a producer the caller keeps (one per stream, not one per call).
pub async fn produce_with(producer: &FutureProducer, topic: &str, records: &[Input]) {
    let sends = records.iter().map(|(key, value, headers)| {
        let headers = headers.iter().fold(OwnedHeaders::new(), |hs, (k, v)| {
            hs.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        let mut record = FutureRecord::to(topic).payload(value).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        producer.send(record, Duration::from_secs(60))
    });
    for result in futures::future::join_all(sends).await {
        result.unwrap_or_else(|(e, _)| panic!("producing: {e}"));
    }
}

/// Records produced to a topic by a task of their own, chunk after chunk, while the test does
/// something to their consumer (kills it, adds an instance), with the last `held` records kept
/// back until [`Stream::finish`]. Whatever happens before `finish` happens mid-stream on any
/// machine: however fast the consumer is, it cannot have seen the held records.
pub struct Stream {
    bootstrap: String,
    topic: String,
    produced: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    head: tokio::task::JoinHandle<()>,
    tail: Vec<Input>,
}

impl Stream {
    /// Chunks of 250, 50 ms apart: a stream, not one burst (not a timing expectation).
    pub fn start(bootstrap: &str, topic: &str, records: Vec<Input>, held: usize) -> Self {
        Self::paced(
            bootstrap,
            topic,
            records,
            held,
            (250, Duration::from_millis(50)),
        )
    }

    /// As [`start`](Self::start), `chunk` records at a time with `pause` between chunks.
    pub fn paced(
        bootstrap: &str,
        topic: &str,
        mut records: Vec<Input>,
        held: usize,
        (chunk, pause): (usize, Duration),
    ) -> Self {
        assert!(held > 0 && held < records.len(), "hold back some, not all");
        let tail = records.split_off(records.len() - held);
        let produced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let head = tokio::spawn({
            let (bootstrap, topic, produced) =
                (bootstrap.to_owned(), topic.to_owned(), produced.clone());
            async move {
                let producer = producer(&bootstrap);
                for chunk in records.chunks(chunk) {
                    produce_with(&producer, &topic, chunk).await;
                    produced.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(pause).await;
                }
            }
        });
        Self {
            bootstrap: bootstrap.to_owned(),
            topic: topic.to_owned(),
            produced,
            head,
            tail,
        }
    }

    /// Records acknowledged so far.
    pub fn produced(&self) -> usize {
        self.produced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for the rest of the head, then produces the held records.
    pub async fn finish(self) {
        self.head.await.expect("producing the stream");
        produce(&self.bootstrap, &self.topic, &self.tail).await;
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
    let shutdown = Shutdown::new();
    let metrics = Metrics::new().expect("metrics");
    let health = Health::new();
    let task = {
        let (config, metrics, health, shutdown) = (
            config.clone(),
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            auditflow_classifier::run(&config, &metrics, &health, shutdown).await
        })
    };
    (shutdown, metrics, health, task)
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer")
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect()
}

/// Each partition's end offset: its high watermark, past every record written, those of
/// transactions still open included. Asked `read_uncommitted`: asked `read_committed`, the
/// broker answers the last stable offset, which an open transaction holds back (a killed
/// producer's, until the broker aborts it seconds later), and a reader stopping there
/// misses what was committed after it. [`read_committed`] waits at this end until every
/// transaction below it is decided.
pub fn end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "auditflow-tests-watermarks")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("consumer");
    partitions(&c, topic)
        .into_iter()
        .map(|p| {
            (
                p,
                c.fetch_watermarks(topic, p, Duration::from_secs(30))
                    .expect("watermarks")
                    .1,
            )
        })
        .collect()
}

/// Offsets `group` has committed on `topic` (partitions without a commit are absent).
pub fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c = consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for p in partitions(&c, topic) {
        tpl.add_partition(topic, p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Waits until `group` has committed every record now in `topic` (so, for the classifier, its
/// outputs for them are committed too: same transaction).
pub async fn wait_caught_up(bootstrap: &str, group: &str, topic: &str) {
    let ends = end_offsets(bootstrap, topic);
    let started = Instant::now();
    loop {
        let done = committed(bootstrap, group, topic);
        if ends
            .iter()
            .all(|(p, end)| *end == 0 || done.get(p).is_some_and(|c| c >= end))
        {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "group {group} did not catch up: committed {done:?}, ends {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ids of the records of `topic` below each partition's offset in `below`.
pub fn ids_below(bootstrap: &str, topic: &str, below: &BTreeMap<i32, i64>) -> BTreeSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "auditflow-tests-outage-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in below.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut left: BTreeMap<i32, i64> = below.clone();
    left.retain(|_, end| *end > 0);
    let mut ids = BTreeSet::new();
    let started = Instant::now();
    while !left.is_empty() {
        assert!(
            started.elapsed() < DEADLINE,
            "reading {topic} below {below:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.expect("consuming");
        let Some(end) = left.get(&m.partition()).copied() else {
            continue;
        };
        if m.offset() < end {
            let value: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON record");
            ids.insert(value["id"].as_str().expect("id").to_owned());
        }
        if m.offset() + 1 >= end {
            left.remove(&m.partition());
        }
    }
    ids
}

/// One record as a `read_committed` reader sees it.
#[derive(Debug, Clone)]
pub struct Read {
    pub topic: String,
    /// The record's Kafka timestamp (ms since the epoch): for the monitors' outputs, when the
    /// producer wrote it.
    pub timestamp_ms: Option<i64>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Read {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("output value is JSON")
    }
}

/// Everything committed on `topic`, read to its end offsets with `isolation.level=read_committed`.
pub fn read_committed(bootstrap: &str, topic: &str) -> Vec<Read> {
    let c = consumer(bootstrap, "auditflow-tests-reader");
    let ends = end_offsets(bootstrap, topic);
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("offset");
    }
    c.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut out = Vec::new();
    loop {
        let position = c.position().expect("position");
        let done = ends.iter().all(|(p, end)| {
            *end == 0
                || matches!(position.find_partition(topic, *p).map(|e| e.offset()), Some(Offset::Offset(o)) if o >= *end)
        });
        if done {
            return out;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "reading {topic} did not reach its end {ends:?}"
        );
        if let Some(message) = c.poll(Duration::from_millis(200)) {
            let m = message.expect("consuming");
            out.push(Read {
                topic: m.topic().to_owned(),
                timestamp_ms: m.timestamp().to_millis(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
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
                let value: serde_json::Value =
                    serde_json::from_slice(&o.event.to_json_bytes()).expect("json");
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

/// A port on 127.0.0.1 that was free a moment ago: for a child process's metrics endpoint,
/// so the test can read what that instance did.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// The Prometheus text a service serves on 127.0.0.1:`port`; `None` while it does not answer.
pub fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    // `HTTP/1.0 200 OK` (the server answers in the request's version).
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

/// Waits until every instance of `service` whose metrics are on `ports` has partitions and
/// together they hold `partitions`: the group has settled with all of them in it.
pub async fn wait_for_split_at(ports: &[u16], service: &str, partitions: u64) {
    let filter = format!("service=\"{service}\"");
    let started = Instant::now();
    loop {
        let counts: Vec<u64> = ports
            .iter()
            .map(|p| {
                scrape(*p).map_or(0, |text| {
                    metric_sum(&text, "auditflow_assigned_partitions", &filter)
                })
            })
            .collect();
        if counts.iter().all(|c| *c > 0) && counts.iter().sum::<u64>() == partitions {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the partitions never split between the instances: {counts:?} of {partitions}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Records of `service` consumed by the instance whose metrics are on `port` (0 while it
/// does not answer).
pub fn consumed_at(port: u16, service: &str) -> u64 {
    scrape(port).map_or(0, |text| {
        metric_sum(
            &text,
            "auditflow_consumed_records_total",
            &format!("service=\"{service}\""),
        )
    })
}

/// The value of one series in a Prometheus text exposition (0 when absent).
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Sums every series of `family` whose labels contain `filter`.
pub fn metric_sum(text: &str, family: &str, filter: &str) -> u64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")) && line.contains(filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Checks one dead letter against SPEC section 6: the reason, a detail, where the original is
/// (topic, partition, offset) and who refused it — every `auditflow.*` header it names.
pub fn assert_dead_letter(
    letter: &Read,
    reason: &str,
    (topic, partition, offset): (&str, i32, i64),
    service: &str,
) {
    let context = format!("dead letter of {topic}[{partition}]@{offset}");
    assert_eq!(letter.header("auditflow.error"), Some(reason), "{context}");
    assert!(
        letter
            .header("auditflow.error.detail")
            .is_some_and(|d| !d.is_empty()),
        "{context}: a detail"
    );
    assert_eq!(
        letter.header("auditflow.source.topic"),
        Some(topic),
        "{context}"
    );
    assert_eq!(
        letter.header("auditflow.source.partition"),
        Some(partition.to_string().as_str()),
        "{context}"
    );
    assert_eq!(
        letter.header("auditflow.source.offset"),
        Some(offset.to_string().as_str()),
        "{context}"
    );
    assert_eq!(
        letter.header("auditflow.service"),
        Some(service),
        "{context}"
    );
}

/// The dead letter of the record at `partition`/`offset` of `topic`, found by its headers.
pub fn letter_of<'a>(letters: &'a [Read], topic: &str, partition: i32, offset: i64) -> &'a Read {
    letters
        .iter()
        .find(|l| {
            l.header("auditflow.source.topic") == Some(topic)
                && l.header("auditflow.source.partition") == Some(partition.to_string().as_str())
                && l.header("auditflow.source.offset") == Some(offset.to_string().as_str())
        })
        .unwrap_or_else(|| panic!("no dead letter for {topic}[{partition}]@{offset}"))
}

/// A bare HTTP/1.1 GET (the services' `/metrics`, `/readyz`): status line, headers and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    response
}
