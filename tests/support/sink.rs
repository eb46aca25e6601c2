//! Fixtures of the sink's integration tests: a config with fresh topics, group and keyspace;
//! the sink started in this process or as the real binary; a second instance joining and
//! leaving mid-stream; audit records as the classifier and the security monitor write them.

use std::process::Command;

use auditflow_core::Config;
use auditflow_runtime::Metrics;

use crate::classifier::Setup;
use crate::kafka::{self, Input, Stream, create_topic, produce};
use crate::metrics::{consumed_at, free_port, wait_for_split_at};
use crate::processes::{
    ChildGuard, Started, auditflow_binary, service_command, spawn_slowed, start_in_process,
    terminate,
};
use crate::stack::{eventually, require_cql, unique_name};
use crate::store::{count_at, session_at};

/// One test's private topics, group and keyspace.
pub struct SinkSetup {
    /// Kafka bootstrap servers of the shared stack.
    pub bootstrap: String,
    /// The configuration the sink runs with: fresh topics, group prefix and keyspace.
    pub config: Config,
    /// The classifier's input topic under this configuration (one partition), for the tests
    /// that classify before they store.
    pub input: String,
}

impl SinkSetup {
    /// Fresh topics (three partitions each, the dead-letter topic one), group prefix and
    /// keyspace named after `name`; the keyspace is left to the sink to create.
    pub async fn new(name: &str) -> Self {
        let setup = Setup::new(name, 1).await;
        let mut config = setup.config;
        config.store.nodes = require_cql();
        config.store.keyspace = unique_name(name);
        // The tests choose the key: not whatever this process's environment holds.
        config.store.master_key_env = String::new();
        config.integrity.signing_key_env = String::new();
        config.kafka.batch_max_records = 200;
        config.kafka.commit_interval_ms = 200;
        for topic in sink_topics(&config) {
            create_topic(&setup.bootstrap, &topic, 3).await;
        }
        create_topic(&setup.bootstrap, &config.topics.dead_letter, 1).await;
        Self {
            bootstrap: setup.bootstrap,
            config,
            input: setup.input,
        }
    }

    /// The sink's consumer group under this setup's prefix.
    pub fn group(&self) -> String {
        format!(
            "{}{}",
            self.config.kafka.group_prefix,
            auditflow_sink::SERVICE
        )
    }

    /// Waits until the sink's group has committed everything now in its four topics: every
    /// record below is durably stored (or dead-lettered).
    pub async fn wait_caught_up(&self) {
        for topic in sink_topics(&self.config) {
            kafka::wait_caught_up(&self.bootstrap, &self.group(), &topic).await;
        }
    }

    /// Distinct records the store holds (`records_by_id` has one row per stored id), asked of
    /// the nodes the sink writes to.
    pub async fn stored_ids(&self) -> i64 {
        let store = &self.config.store;
        count_at(&store.nodes, &store.keyspace, "records_by_id").await
    }

    /// Drops the setup's keyspace; a failure only leaves it behind.
    pub async fn drop_keyspace(&self) {
        let _ = session_at(&self.config.store.nodes)
            .await
            .query_unpaged(
                format!("DROP KEYSPACE IF EXISTS {}", self.config.store.keyspace),
                (),
            )
            .await;
    }
}

impl SinkSetup {
    /// The real `auditflow` binary with this setup's configuration in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        service_command(&self.bootstrap, &self.config, args)
    }

    /// `auditflow run sink`, as a child process (killed if the test fails).
    pub fn spawn_sink(&self) -> ChildGuard {
        ChildGuard::spawn(&mut self.command(&["run", "sink"]))
    }
}

/// Record number `i` of one input topic.
pub type RecordOf<'a> = dyn Fn(usize) -> Input + 'a;

/// A second instance of a store-writing service joins mid-stream and leaves again (SIGTERM),
/// each step checked from the instances' own metrics: the rebalance tests of the sink and the
/// causality indexer. The caller counts what was stored.
pub struct JoinAndLeave<'a> {
    /// Kafka bootstrap servers.
    pub bootstrap: &'a str,
    /// The service's metrics label (`sink`, `causality-indexer`).
    pub service: &'a str,
    /// Partitions of all its input topics together.
    pub partitions: u64,
    /// Each input topic and its record `i` (keyed so that every partition gets some).
    pub topics: &'a [(&'a str, &'a RecordOf<'a>)],
    /// Records per topic streamed from the start; the last `held` of them only after the
    /// joiner left.
    pub streamed: usize,
    /// How many of the streamed records are held back until the joiner left.
    pub held: usize,
    /// Records per topic (numbered after the streamed ones) produced once the group has
    /// settled with both instances, so the joiner's partitions get some.
    pub joined: usize,
}

impl JoinAndLeave<'_> {
    /// Streams onto every topic, starts a first instance (`command`, its metrics on a port of
    /// its own, slowed: [`spawn_slowed`]) and, once `progress` (records stored) is above 0, a
    /// second; waits until the partitions are split between them, produces the joined records,
    /// waits until the joiner consumed records, stops it with SIGTERM (asserting exit 0), then
    /// produces the held records. Returns the first instance, still running.
    pub async fn run(
        &self,
        command: impl Fn() -> Command,
        mut progress: impl AsyncFnMut() -> i64,
    ) -> ChildGuard {
        let streams: Vec<Stream> = self
            .topics
            .iter()
            .map(|(topic, record)| {
                let records = (0..self.streamed).map(record).collect();
                Stream::start(self.bootstrap, topic, records, self.held)
            })
            .collect();
        let produced = || streams.iter().map(Stream::produced).sum::<usize>();
        let (port_a, port_b) = (free_port(), free_port());
        let mut first = spawn_slowed(command(), port_a);
        eventually("the first instance to store something", async || {
            if let Ok(Some(status)) = first.try_wait() {
                panic!("the first instance exited early: {status}");
            }
            progress().await > 0
        })
        .await;

        // A second instance joins mid-stream ...
        let mut joiner = spawn_slowed(command(), port_b);
        let at_join = (progress().await, produced());
        wait_for_split_at(&[port_a, port_b], self.service, self.partitions).await;
        let at_split = (progress().await, produced());
        for (topic, record) in self.topics {
            let joined = self.streamed..self.streamed + self.joined;
            produce(
                self.bootstrap,
                topic,
                &joined.map(record).collect::<Vec<_>>(),
            )
            .await;
        }
        eventually("the joiner to consume records", async || {
            if let Ok(Some(status)) = joiner.try_wait() {
                panic!("the joiner exited early: {status}");
            }
            consumed_at(port_b, self.service) > 0
        })
        .await;
        let by_joiner = consumed_at(port_b, self.service);
        let at_leave = (progress().await, produced());

        // ... and leaves: SIGTERM finishes its work, commits, leaves the group, exits 0.
        let exit = terminate(&mut joiner);
        assert!(exit.success(), "the joiner's SIGTERM exit: {exit}");
        for stream in streams {
            stream.finish().await;
        }
        eprintln!(
            "stored/produced: {}/{} when the joiner started, {}/{} once the partitions were \
             split, {}/{} when it was told to leave, having consumed {by_joiner}",
            at_join.0, at_join.1, at_split.0, at_split.1, at_leave.0, at_leave.1
        );
        first
    }
}

/// The topics the sink consumes under `config`.
pub fn sink_topics(config: &Config) -> Vec<String> {
    auditflow_sink::input_topics(config)
}

/// `auditflow <args>` against this setup's keyspace: exit code, stdout, stderr.
pub fn auditflow(setup: &SinkSetup, args: &[&str]) -> (i32, String, String) {
    let c = &setup.config.store;
    let out = std::process::Command::new(auditflow_binary())
        .arg("--no-operator-log")
        .args(args)
        .env("AUDITFLOW_STORE__KEYSPACE", &c.keyspace)
        .env("AUDITFLOW_STORE__NODES", format!("{:?}", c.nodes))
        .env("AUDITFLOW_STORE__MASTER_KEY_ENV", "")
        .env("RUST_LOG", "error")
        .output()
        .expect("running auditflow");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8 output");
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

/// Starts the sink in this process: its shutdown switch and task.
pub fn start_sink(config: &Config) -> Started<auditflow_sink::Error> {
    start_sink_with(config, &Metrics::new().expect("metrics"))
}

/// [`start_sink`], recording into `metrics` (for tests that read the sink's counters).
pub fn start_sink_with(config: &Config, metrics: &Metrics) -> Started<auditflow_sink::Error> {
    let sink = start_in_process(config, metrics, |cx| Box::pin(auditflow_sink::run(cx)));
    sink.started()
}

/// `audit.user.action` number `i` of `user`, as the classifier writes it (structured mode),
/// keyed by the user.
pub fn user_action(i: usize, user: &str) -> Input {
    let minute = i % 60;
    let hour = (i / 60) % 24;
    let value = serde_json::json!({
        "specversion": "1.0", "id": format!("ua-{i}"), "source": "/auditflow/classifier",
        "type": "audit.user.action", "subject": format!("user:{user}"),
        "time": format!("2026-11-2{}T{hour:02}:{minute:02}:00Z", i % 3),
        "causationid": format!("in-{i}"), "correlationid": format!("in-{i}"),
        "originaltype": "user.page.view", "retention": "general", "samplerate": 1,
        "data": {"user_id": user, "action": "user.page.view", "outcome": "success",
                 "risk_level": "low", "ip_address": "192.0.2.10", "user_agent": "test-agent"}
    });
    (
        Some(user.to_owned()),
        serde_json::to_vec(&value).unwrap(),
        Vec::new(),
    )
}

/// `audit.security.event` number `i`: a failed login from one ip.
pub fn security_event(i: usize, user: &str) -> Input {
    let value = serde_json::json!({
        "specversion": "1.0", "id": format!("se-{i}"), "source": "/auditflow/classifier",
        "type": "audit.security.event", "time": format!("2026-11-21T12:00:{:02}Z", i % 60),
        "retention": "security",
        "data": {"event_type": "failed_login", "severity": "warning", "user_id": user,
                 "source_ip": "198.51.100.7", "details": {"attempt": i}}
    });
    (
        Some("198.51.100.7".into()),
        serde_json::to_vec(&value).unwrap(),
        Vec::new(),
    )
}

/// `audit.data.access` number `i`: `user` read a profile.
pub fn data_access(i: usize, user: &str) -> Input {
    let value = serde_json::json!({
        "specversion": "1.0", "id": format!("da-{i}"), "source": "/auditflow/classifier",
        "type": "audit.data.access", "subject": format!("user:{user}"),
        "time": format!("2026-11-21T13:{:02}:00Z", i % 60),
        "causationid": format!("in-da-{i}"), "correlationid": format!("in-da-{i}"),
        "originaltype": "user.data.read", "retention": "general", "samplerate": 1,
        "data": {"user_id": user, "data_type": "user_profile", "operation": "read",
                 "record_count": 1, "sensitive": false}
    });
    (
        Some(user.to_owned()),
        serde_json::to_vec(&value).unwrap(),
        Vec::new(),
    )
}

/// `security.alert` number `i`, about an ip only.
pub fn alert(i: usize) -> Input {
    let value = serde_json::json!({
        "specversion": "1.0", "id": format!("al-{i}"), "source": "/auditflow/security-monitor",
        "type": "security.alert", "time": "2026-11-21T12:01:00Z",
        "data": {"level": "high", "rule": "brute_force", "score": 80, "source_ip": "198.51.100.7",
                 "count": 11, "window_start": "2026-11-21T11:51:00Z",
                 "window_end": "2026-11-21T12:01:00Z", "evidence": [format!("se-{i}")]}
    });
    (
        Some("198.51.100.7".into()),
        serde_json::to_vec(&value).unwrap(),
        Vec::new(),
    )
}
