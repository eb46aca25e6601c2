//! The services the tests start: the real `auditflow` binary as a child process (where `cargo
//! build` put it, its command line pointed at a test's cluster, topics and keyspace, and
//! stopping it: SIGTERM, or SIGKILL when a guard is dropped), or a service's `run` on a task
//! of this process ([`start_in_process`]).

use std::future::Future;
use std::pin::Pin;
use std::process::Command;

use auditflow_core::Config;
use auditflow_runtime::{Health, Metrics, ServiceContext, Shutdown};

/// A service's `run` started on a task of this process.
pub struct InProcess<E> {
    /// Stops it (it finishes its in-flight work, commits and leaves its group).
    pub shutdown: Shutdown,
    /// Its health, as `/readyz` would report it.
    pub health: Health,
    /// Resolves when it stops.
    pub task: tokio::task::JoinHandle<Result<(), E>>,
}

/// What the in-process starters of the support modules return: the shutdown switch and task.
pub type Started<E> = (Shutdown, tokio::task::JoinHandle<Result<(), E>>);

impl<E> InProcess<E> {
    /// Its shutdown switch and task.
    pub fn started(self) -> Started<E> {
        (self.shutdown, self.task)
    }
}

/// A service's `run`, boxed: `|cx| Box::pin(auditflow_sink::run(cx))`.
pub type Run<E> =
    for<'a> fn(ServiceContext<'a>) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'a>>;

/// Starts `run` on a task of this process, with its own copies of `config` and `metrics`, a
/// fresh health and a fresh shutdown switch.
pub fn start_in_process<E: Send + 'static>(
    config: &Config,
    metrics: &Metrics,
    run: Run<E>,
) -> InProcess<E> {
    let (shutdown, health) = (Shutdown::new(), Health::new());
    let (config, metrics, own_health, stop) = (
        config.clone(),
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    );
    let task = tokio::spawn(async move {
        run(ServiceContext {
            config: &config,
            metrics: &metrics,
            health: &own_health,
            shutdown: stop,
        })
        .await
    });
    InProcess {
        shutdown,
        health,
        task,
    }
}

/// The `auditflow` binary `cargo build` put next to the running test executable
/// (`target/<profile>/auditflow`), for tests that run, kill and restart the real thing;
/// `cargo xtask test` builds it. Panics with what to run when it is missing.
pub fn auditflow_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> → target/<profile>/auditflow
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("auditflow");
    assert!(
        path.exists(),
        "{} not found: build it with `cargo build -p auditflow-cli`",
        path.display()
    );
    path
}

/// Stops a child process the way an orchestrator does (SIGTERM) and waits for it to exit;
/// returns how it exited.
pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success(), "kill -TERM failed: {sent}");
    child.wait().expect("waiting for the child")
}

/// A child process that is killed (SIGKILL) and reaped when dropped: a test that fails while
/// a service it started is running leaves nothing behind (a leftover service keeps its
/// consumer group busy and holds the test's output pipes open). Derefs to the [`Child`].
///
/// [`Child`]: std::process::Child
pub struct ChildGuard(std::process::Child);

impl ChildGuard {
    /// Starts `command` (an `auditflow` service) and guards it: it is killed and reaped when
    /// the guard is dropped.
    pub fn spawn(command: &mut Command) -> Self {
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("starting {:?}: {e}", command.get_args().collect::<Vec<_>>())
        });
        Self(child)
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Both are no-ops for a child already waited for.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `auditflow <args>` (the binary `cargo build` put next to the tests) pointed at `config`'s
/// cluster, group prefix and topics, 100 records per transaction, quiet logs, and short
/// session and transaction timeouts so a killed member's partitions move on quickly.
///
/// Commands on audit data run with `--no-operator-log`: each would be one more stored record
/// for the tests that count them. The operator log's own test uses [`logged_command`].
pub fn binary_command(bootstrap: &str, config: &Config, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(auditflow_binary());
    command.arg("--no-operator-log").args(args);
    configured(&mut command, bootstrap, config);
    command
}

/// [`service_command`] with the operator log on: a command on audit data publishes its
/// operator event to `config`'s operator topic (docs/operator-log.md).
pub fn logged_command(bootstrap: &str, config: &Config, args: &[&str]) -> Command {
    let mut command = std::process::Command::new(auditflow_binary());
    command.args(args);
    configured(&mut command, bootstrap, config);
    with_store(&mut command, config);
    command
}

/// Points `command` at `config`'s cluster, group prefix and topics (see [`binary_command`]).
fn configured(command: &mut Command, bootstrap: &str, config: &Config) {
    let t = &config.topics;
    command
        .env("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", bootstrap)
        .env("AUDITFLOW_KAFKA__GROUP_PREFIX", &config.kafka.group_prefix)
        .env("AUDITFLOW_KAFKA__TRANSACTION_MAX_RECORDS", "100")
        .env("AUDITFLOW_KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "6000")
        // A killed instance's open transaction holds `read_committed` readers back until the
        // broker expires it: 10 s here, not the product's 60 s (which outlives a broker
        // restart), so the crash tests of unnamed instances wait seconds, not a minute.
        .env(
            "AUDITFLOW_KAFKA__PROPERTIES__TRANSACTION.TIMEOUT.MS",
            "10000",
        )
        .env("AUDITFLOW_TOPICS__USER_ACTION", &t.user_action)
        .env("AUDITFLOW_TOPICS__DATA_ACCESS", &t.data_access)
        .env("AUDITFLOW_TOPICS__SECURITY_EVENT", &t.security_event)
        .env("AUDITFLOW_TOPICS__DEAD_LETTER", &t.dead_letter)
        .env("AUDITFLOW_TOPICS__ALERTS", &t.alerts)
        .env("AUDITFLOW_TOPICS__ACTIONS", &t.actions)
        .env("AUDITFLOW_TOPICS__BLOCKLIST", &t.blocklist)
        .env("AUDITFLOW_TOPICS__CHECKPOINTS", &t.checkpoints)
        .env("AUDITFLOW_TOPICS__OPERATOR", &t.operator)
        .env("AUDITFLOW_TOPICS__SAMPLING", &t.sampling)
        .env("AUDITFLOW_TOPICS__OCSF", &t.ocsf)
        .env("AUDITFLOW_METRICS__LISTEN", "127.0.0.1:0")
        // `AUDITFLOW_TEST_CHILD_LOG` (a `RUST_LOG` filter) makes a failing test's services talk.
        .env(
            "RUST_LOG",
            std::env::var("AUDITFLOW_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(std::process::Stdio::null());
}

/// The real `auditflow` binary (`args`, e.g. `run sink`) with `config`'s Kafka settings (see
/// [`kafka::binary_command`]), its store and partition count, and batches of 100 records.
pub fn service_command(bootstrap: &str, config: &Config, args: &[&str]) -> Command {
    let mut command = binary_command(bootstrap, config, args);
    with_store(&mut command, config);
    command
}

/// `config`'s store, partition count and checkpoints, and batches of 100 records.
fn with_store(command: &mut Command, config: &Config) {
    let c = &config.store;
    command
        .env("AUDITFLOW_KAFKA__BATCH_MAX_RECORDS", "100")
        .env(
            "AUDITFLOW_TOPICS__PARTITIONS",
            config.topics.partitions.to_string(),
        )
        .env("AUDITFLOW_STORE__KEYSPACE", &c.keyspace)
        .env("AUDITFLOW_STORE__NODES", format!("{:?}", c.nodes))
        .env("AUDITFLOW_STORE__MASTER_KEY_ENV", "")
        .env("AUDITFLOW_INTEGRITY__SIGNING_KEY_ENV", "")
        .env(
            "AUDITFLOW_INTEGRITY__CHECKPOINT_EVERY",
            config.integrity.checkpoint_every.to_string(),
        );
}

/// Starts `command` (a service) with its metrics on 127.0.0.1:`metrics_port`, so the test can
/// watch it, and slowed down — few writes at a time and few records taken in — so that a
/// backlog lasts and stays in Kafka: a rebalance then moves partitions with records batched,
/// in flight and not yet read, whose offsets must not be committed for them.
pub fn spawn_slowed(mut command: Command, metrics_port: u16) -> ChildGuard {
    command
        .env(
            "AUDITFLOW_METRICS__LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )
        .env("AUDITFLOW_STORE__MAX_CONCURRENCY", "4")
        .env("AUDITFLOW_KAFKA__MAX_IN_FLIGHT_RECORDS", "300");
    ChildGuard::spawn(&mut command)
}

/// A finished command's stdout, asserting it exited 0 (`what` and its stderr name it if not).
pub fn stdout_of(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// [`stdout_of`], parsed as one JSON document.
pub fn json_of(out: &std::process::Output, what: &str) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out, what)).unwrap_or_else(|e| panic!("{what}: {e}"))
}
