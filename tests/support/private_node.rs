//! A private single-node Cassandra that a test may kill and restart, for the tests that take
//! the database away: `sink_outage`, `causality_outage`.
//!
//! `cargo xtask cassandra-node`: the shared stack's jars and configs, its own folder
//! `.stack/cassandra-outage/`, cluster `auditflow-cassandra-outage`, CQL port 19042, storage
//! port 17000, heap 768m. The shared Cassandra on 9042 that other tests use is never touched.
//! A lock file in the folder lets one test at a time use the node (the others wait); the
//! folder is kept between runs, each run using a fresh keyspace. Dropping the node kills its
//! JVM; one left running by a test process killed outright is killed by the next run (its pid
//! is kept in `node.pid`).

use std::fs::{self, File, OpenOptions};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scylla::client::session_builder::SessionBuilder;

/// The private node's CQL port (the shared stack's is 9042).
pub const CQL_PORT: u16 = 19042;
/// The private node's inter-node storage port.
pub const STORAGE_PORT: u16 = 17000;
/// A fresh data folder, or a restart while the machine is busy, can take a minute or more.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// The private node: its folder (held locked) and, while it runs, its JVM. Dropping it kills
/// the JVM, so no Cassandra outlives the test, even a failed one.
pub struct PrivateNode {
    dir: PathBuf,
    log: PathBuf,
    jvm: Option<Child>,
    _lock: File,
}

impl PrivateNode {
    /// Takes the node's folder (waiting while another run of this test holds it) and starts
    /// the node; returns once it answers CQL.
    pub async fn start() -> Self {
        let dir = stack_dir().join("cassandra-outage");
        fs::create_dir_all(&dir).expect("creating the node's folder");
        let lock_path = dir.join("test.lock");
        let lock = File::create(&lock_path).expect("creating the node's lock file");
        if lock.try_lock().is_err() {
            eprintln!("waiting for another sink_outage run to release {lock_path:?} …");
            let held = lock.try_clone().expect("lock file");
            tokio::task::spawn_blocking(move || held.lock())
                .await
                .expect("lock task")
                .expect("locking the node's folder");
        }
        kill_leftover(&dir.join("node.pid"));
        let log = dir.join("node.log");
        File::create(&log).expect("creating node.log"); // one run's output
        let mut node = Self {
            dir,
            log,
            jvm: None,
            _lock: lock,
        };
        node.boot().await;
        node
    }

    /// The node's CQL contact point, as `store.nodes` takes it.
    pub fn nodes() -> Vec<String> {
        vec![format!("127.0.0.1:{CQL_PORT}")]
    }

    /// Starts the JVM on the node's folder and waits until it answers a CQL query; returns
    /// how long that took.
    pub async fn boot(&mut self) -> Duration {
        assert!(self.jvm.is_none(), "the node is already running");
        let log = OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("opening node.log");
        let started = Instant::now();
        let child = xtask_command()
            .arg("cassandra-node")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--cql-port", &CQL_PORT.to_string()])
            .args(["--storage-port", &STORAGE_PORT.to_string()])
            .args(["--heap", "768m"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("node.log"))
            .stderr(log)
            .spawn()
            .expect("starting `xtask cassandra-node`");
        fs::write(self.dir.join("node.pid"), child.id().to_string()).expect("writing node.pid");
        let jvm = self.jvm.insert(child);
        loop {
            if let Some(status) = jvm.try_wait().expect("checking the node") {
                self.jvm = None;
                panic!(
                    "the private Cassandra exited while starting ({status}); {}:\n{}",
                    self.log.display(),
                    tail(&self.log)
                );
            }
            if answers_cql().await {
                break;
            }
            assert!(
                started.elapsed() < BOOT_TIMEOUT,
                "the private Cassandra did not answer on {CQL_PORT} within {BOOT_TIMEOUT:?}; {}:\n{}",
                self.log.display(),
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // What gets killed must be the database itself, not a wrapper that would leave the
        // JVM running (`xtask cassandra-node` and `cargo run` both exec).
        let cmdline = fs::read(format!("/proc/{}/cmdline", jvm.id())).unwrap_or_default();
        assert!(
            String::from_utf8_lossy(&cmdline)
                .contains("org.apache.cassandra.service.CassandraDaemon"),
            "the node's process {} is not the Cassandra JVM",
            jvm.id()
        );
        started.elapsed()
    }

    /// Kills the JVM (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut jvm) = self.jvm.take() {
            let _ = jvm.kill();
            let _ = jvm.wait();
        }
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills the node an earlier run left behind (its test process killed outright, so its Drop
/// never ran): the process in `node.pid`, if it is still a Cassandra JVM on this folder.
fn kill_leftover(pid_file: &Path) {
    let Some(pid) = fs::read_to_string(pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    let folder = pid_file.parent().map(|d| d.display().to_string());
    if cmdline.contains("org.apache.cassandra.service.CassandraDaemon")
        && folder.is_some_and(|f| cmdline.contains(&f))
    {
        eprintln!("killing the private Cassandra (pid {pid}) an earlier run left running");
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `$AUDITFLOW_STACK_DIR` (relative to the workspace root), else `<workspace>/.stack`: where
/// xtask keeps the stack, and so the Cassandra jars.
fn stack_dir() -> PathBuf {
    let root = workspace_root();
    match std::env::var_os("AUDITFLOW_STACK_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join(".stack"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The xtask program: `$AUDITFLOW_XTASK` (set by `cargo xtask test`), else `cargo run -p xtask`.
fn xtask_command() -> Command {
    let mut cmd = match std::env::var_os("AUDITFLOW_XTASK").filter(|x| !x.is_empty()) {
        Some(xtask) => Command::new(xtask),
        None => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
            let mut cmd = Command::new(cargo);
            cmd.args(["run", "--quiet", "--package", "xtask", "--"]);
            cmd
        }
    };
    cmd.current_dir(workspace_root());
    cmd
}

async fn answers_cql() -> bool {
    let Ok(session) = SessionBuilder::new()
        .known_nodes(PrivateNode::nodes())
        .build()
        .await
    else {
        return false;
    };
    session
        .query_unpaged("SELECT release_version FROM system.local", ())
        .await
        .is_ok()
}

/// Whether a TCP connection to 127.0.0.1:`port` is refused (nothing listens there).
pub fn port_refuses(port: u16) -> bool {
    let addr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

/// The last lines of the node's log, for a failure message.
fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// What the outage tests (`sink_outage`, `causality_outage`) do around the service they run,
/// in the order they do it: start the node, create the schema and make the store fail fast,
/// wait for the service's first commits, kill the node, and after its restart check that
/// every record committed before the crash survived it.
pub mod outage {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fmt::Debug;
    use std::time::{Duration, Instant};

    use auditflow_core::Config;
    use auditflow_store::Store;
    use tokio::task::JoinHandle;

    use super::{CQL_PORT, PrivateNode, port_refuses};
    use crate::kafka;
    use crate::stack::DEADLINE;

    /// Starts the private node (saying how long it took) and points `config` at it.
    pub async fn start_node(config: &mut Config) -> PrivateNode {
        let booting = Instant::now();
        let node = PrivateNode::start().await;
        eprintln!(
            "private Cassandra answering on {CQL_PORT} after {:.1} s",
            booting.elapsed().as_secs_f32()
        );
        config.store.nodes = PrivateNode::nodes();
        node
    }

    /// Creates the schema with the store's default timeouts (DDL on a node that has just
    /// booted can be slow; the service then finds it in place), then makes the store fail
    /// fast — two attempts of 2 s — so that the service's own retry and pause carry the
    /// outage (the store's retries would only stretch each attempt).
    pub async fn migrate_then_fail_fast(config: &mut Config) {
        Store::connect(&config.store, &config.retention)
            .await
            .expect("connecting to the private node")
            .migrate()
            .await
            .expect("creating the schema");
        config.store.max_attempts = 2;
        config.store.request_timeout_ms = 2_000;
    }

    /// Waits until `group` has committed at least `at_least` records of `topic`: the crash
    /// then finds acknowledged records to lose. Fails if `service`'s task ends first.
    pub async fn wait_for_commits<T: Debug>(
        (bootstrap, group, topic): (&str, &str, &str),
        at_least: i64,
        task: &mut JoinHandle<T>,
        service: &str,
    ) {
        let waiting = Instant::now();
        while kafka::committed(bootstrap, group, topic)
            .values()
            .sum::<i64>()
            < at_least
        {
            if task.is_finished() {
                let outcome = task.await;
                panic!("the {service} stopped before committing anything: {outcome:?}");
            }
            assert!(
                waiting.elapsed() < DEADLINE,
                "timed out waiting for the {service} to commit something"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the node (SIGKILL) and checks its CQL port refuses; returns the instant.
    pub fn kill(node: &mut PrivateNode) -> Instant {
        node.kill();
        let killed = Instant::now();
        assert!(
            port_refuses(CQL_PORT),
            "CQL port {CQL_PORT} still answers after the node was killed"
        );
        killed
    }

    /// Keeps the node down until `outage` has passed since it was `killed`, then checks that
    /// `service`'s task lives on.
    pub async fn keep_down<T>(
        killed: Instant,
        outage: Duration,
        task: &JoinHandle<T>,
        service: &str,
    ) {
        tokio::time::sleep(outage.saturating_sub(killed.elapsed())).await;
        assert!(
            !task.is_finished(),
            "the {service} must survive an outage, not exit"
        );
    }

    /// What `group` has committed of `topic` while the node is down, and the ids of the
    /// records below it: nothing can be acknowledged after the kill, so the node acknowledged
    /// every one of them before it. Checked to be some of the `total` records, not all.
    pub fn acknowledged(
        (bootstrap, group, topic): (&str, &str, &str),
        total: usize,
    ) -> (BTreeMap<i32, i64>, BTreeSet<String>) {
        let committed = kafka::committed(bootstrap, group, topic);
        let ids = kafka::ids_below(bootstrap, topic, &committed);
        assert!(!ids.is_empty(), "the crash came before any commit");
        assert!(
            ids.len() < total,
            "the crash came after the whole stream was committed"
        );
        (committed, ids)
    }

    /// The promise itself (docs/operations.md): a record whose offset was committed is in the
    /// database, also after the database crashed. `kept` is what the restarted node holds.
    pub fn assert_none_lost(
        acknowledged: &BTreeSet<String>,
        kept: &BTreeSet<String>,
        committed: &BTreeMap<i32, i64>,
    ) {
        let lost: Vec<&String> = acknowledged.difference(kept).collect();
        assert!(
            lost.is_empty(),
            "{} of {} records whose offsets were committed before the crash are not in the \
             database after the restart (committed {committed:?}), e.g. {:?}",
            lost.len(),
            acknowledged.len(),
            &lost[..lost.len().min(5)]
        );
    }
}
