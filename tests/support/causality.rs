//! Helpers shared by the causality indexer's integration tests: a config with fresh topics,
//! group and keyspace (the sink tests' setup, plus the actions topic), starting the indexer in this process or as the real binary, waiting until its group
//! has committed everything, and reading the causality tables with plain CQL.

use std::process::Command;

use auditflow_core::Config;
use auditflow_runtime::Metrics;
use auditflow_store::Store;
use auditflow_store::causality::CausalityIndex;
use scylla::value::{CqlValue, Row};

use crate::kafka::{self, Input, create_topic};
use crate::processes::{ChildGuard, Started, service_command, start_in_process};
use crate::sink::SinkSetup;
use crate::store::{session, session_at};

/// The tables the indexer writes.
pub const TABLES: [&str; 5] = [
    "causality_nodes",
    "causality_children",
    "causality_child_days",
    "causality_members",
    "causality_member_days",
];

/// One test's private topics, group and keyspace.
pub struct IndexerSetup {
    /// Kafka bootstrap servers of the shared stack.
    pub bootstrap: String,
    /// The configuration the indexer runs with: the sink tests' fresh topics, group prefix and
    /// keyspace.
    pub config: Config,
}

impl IndexerSetup {
    /// [`SinkSetup::new`], plus the actions topic (three partitions).
    pub async fn new(name: &str) -> Self {
        let SinkSetup {
            bootstrap, config, ..
        } = SinkSetup::new(name).await;
        create_topic(&bootstrap, &config.topics.actions, 3).await;
        Self { bootstrap, config }
    }

    /// The indexer's consumer group under this setup's prefix.
    pub fn group(&self) -> String {
        format!(
            "{}{}",
            self.config.kafka.group_prefix,
            auditflow_causality_indexer::SERVICE
        )
    }

    /// Waits until the indexer's group has committed everything now in its inputs: every
    /// record below is durably indexed (or dead-lettered).
    pub async fn wait_caught_up(&self) {
        for topic in auditflow_causality_indexer::input_topics(&self.config) {
            kafka::wait_caught_up(&self.bootstrap, &self.group(), &topic).await;
        }
    }

    /// The causality tables, through the store (after the indexer, or `migrate`, ran).
    pub async fn index(&self) -> CausalityIndex {
        let store = Store::connect(&self.config.store, &self.config.retention)
            .await
            .expect("connect");
        CausalityIndex::open(std::sync::Arc::new(store))
            .await
            .expect("open the causality index")
    }

    /// Every text value stored in the causality tables, for looking for what must not be there.
    pub async fn stored_text(&self) -> Vec<String> {
        let session = session().await;
        let mut out = Vec::new();
        for table in TABLES {
            let rows = session
                .query_unpaged(
                    format!("SELECT * FROM {}.{table}", self.config.store.keyspace),
                    (),
                )
                .await
                .expect("select")
                .into_rows_result()
                .expect("rows");
            for row in rows.rows::<Row>().expect("typed rows") {
                for value in row.expect("row").columns.into_iter().flatten() {
                    if let CqlValue::Text(text) = value {
                        out.push(text);
                    }
                }
            }
        }
        out
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

    /// The real `auditflow` binary with this setup's configuration in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        service_command(&self.bootstrap, &self.config, args)
    }

    /// `auditflow run causality-indexer`, as a child process (killed if the test fails).
    pub fn spawn_indexer(&self) -> ChildGuard {
        ChildGuard::spawn(&mut self.command(&["run", "causality-indexer"]))
    }
}

/// Starts the indexer in this process: its shutdown switch and task.
pub fn start_indexer(config: &Config) -> Started<auditflow_causality_indexer::Error> {
    start_indexer_with(config, &Metrics::new().expect("metrics"))
}

/// [`start_indexer`], recording into `metrics` (for tests that read the indexer's counters).
pub fn start_indexer_with(
    config: &Config,
    metrics: &Metrics,
) -> Started<auditflow_causality_indexer::Error> {
    let indexer = start_in_process(config, metrics, |cx| {
        Box::pin(auditflow_causality_indexer::run(cx))
    });
    indexer.started()
}

/// A CloudEvent as the pipeline writes them, with the links the indexer reads.
pub fn linked(id: &str, ty: &str, time: &str, cause: &str, correlation: &str) -> Input {
    let value = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/auditflow/test", "type": ty,
        "time": time, "causationid": cause, "correlationid": correlation,
        "retention": "security",
        "data": {"user_id": "someone", "source_ip": "198.51.100.7"}
    });
    (None, serde_json::to_vec(&value).unwrap(), Vec::new())
}
