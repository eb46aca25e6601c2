//! SPEC section 6, backpressure: while the database is unreachable, the sink pauses
//! consumption and holds a bounded amount of data — `[kafka] max_in_flight_bytes`, whatever
//! the backlog — and once the database is back, every record is stored exactly once.
//!
//! The sink is the real `auditflow run sink` binary, so its memory is its own (read from
//! `/proc/<pid>/status`) and its gauges come from its `/metrics`. It reaches the shared
//! Cassandra through a TCP proxy in this test, which the test cuts (every open connection
//! dropped, new ones closed as soon as they are accepted) and later restores. The driver
//! knows the one node only by the proxy's address (it addresses the node it is connected to
//! by the address it dialled), so cutting the proxy really cuts the sink off its database,
//! while every other test keeps using that Cassandra.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditflow_integration_tests::kafka::{self, Input, produce};
use auditflow_integration_tests::metrics::{free_port, metric, scrape};
use auditflow_integration_tests::processes::{ChildGuard, service_command, terminate};
use auditflow_integration_tests::sink::{SinkSetup, user_action};
use auditflow_integration_tests::stack::DEADLINE;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// What the sink may hold while the database is down.
const BUDGET: usize = 2 * 1024 * 1024;
/// Records arriving while it is down, each about `PAD` bytes: 60 MB, 30 budgets.
const BACKLOG: usize = 600;
const PAD: usize = 100_000;
const WARM_UP: usize = 20;

/// A TCP proxy in front of one address, which can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, connections) = (cut.clone(), connections.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: closed as soon as accepted
                    }
                    let forward = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(forward.abort_handle());
                }
            }
        })
        .abort_handle();
        Self {
            addr,
            cut,
            connections,
            accept,
        }
    }

    /// The database becomes unreachable: open connections drop, new ones are refused.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A user action of about `PAD` bytes (a `context` the sink stores, sealed, like any other).
fn big_action(i: usize) -> Input {
    let (key, value, headers) = user_action(i, &format!("u-{}", i % 7));
    let mut event: serde_json::Value = serde_json::from_slice(&value).unwrap();
    event["data"]["context"] = serde_json::json!({ "pad": "x".repeat(PAD) });
    (key, serde_json::to_vec(&event).unwrap(), headers)
}

/// `VmRSS` or `VmHWM` of process `pid`, in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn gauges(metrics_port: u16) -> (u64, u64, String) {
    let text = scrape(metrics_port).expect("the sink's /metrics");
    let bytes = metric(&text, r#"auditflow_in_flight_bytes{service="sink"}"#);
    let records = metric(&text, r#"auditflow_in_flight_records{service="sink"}"#);
    (bytes, records, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_pauses_consumption_and_memory_stays_bounded() {
    let mut setup = SinkSetup::new("sink_bp").await;
    let cql: SocketAddr = setup.config.store.nodes[0]
        .to_socket_addrs()
        .expect("CQL address")
        .next()
        .expect("a CQL address");
    let proxy = Proxy::start(cql).await;
    setup.config.store.nodes = vec![proxy.addr.to_string()];
    let topic = setup.config.topics.user_action.clone();
    let metrics_port = free_port();
    let mut sink = ChildGuard::spawn(
        service_command(&setup.bootstrap, &setup.config, &["run", "sink"])
            .env(
                "AUDITFLOW_METRICS__LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("AUDITFLOW_KAFKA__MAX_IN_FLIGHT_BYTES", BUDGET.to_string())
            // librdkafka's own prefetch, small too, so the process's memory is the loop's.
            .env(
                "AUDITFLOW_KAFKA__PROPERTIES__QUEUED.MAX.MESSAGES.KBYTES",
                "1024",
            ),
    );
    let pid = sink.id();

    let warm_up: Vec<Input> = (0..WARM_UP).map(big_action).collect();
    produce(&setup.bootstrap, &topic, &warm_up).await;
    setup.wait_caught_up().await;
    let before = memory(pid, "VmRSS");

    proxy.cut();
    let backlog: Vec<Input> = (WARM_UP..WARM_UP + BACKLOG).map(big_action).collect();
    let record_bytes = backlog.iter().map(|r| r.1.len()).max().unwrap() as u64;
    produce(&setup.bootstrap, &topic, &backlog).await;
    drop(backlog);

    // The loop fills its budget, pauses, and then holds: nothing is durable, nothing drains.
    let started = Instant::now();
    loop {
        let (bytes, _, text) = gauges(metrics_port);
        if bytes >= BUDGET as u64 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the sink never filled its budget while the database was down:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut most_bytes, mut most_records) = (0, 0);
    for _ in 0..40 {
        let (bytes, records, _) = gauges(metrics_port);
        most_bytes = most_bytes.max(bytes);
        most_records = most_records.max(records);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let peak = memory(pid, "VmHWM");
    let committed = kafka::committed(&setup.bootstrap, &setup.group(), &topic);
    let held = (BUDGET as u64).div_ceil(record_bytes) + 1;
    eprintln!(
        "outage: in flight at most {most_bytes} bytes / {most_records} records (budget {BUDGET}, \
         backlog {} bytes); RSS {} MiB before, peak {} MiB",
        BACKLOG as u64 * record_bytes,
        before >> 20,
        peak >> 20
    );
    // Paused at the budget: at most one record over it, of the 600 waiting in Kafka.
    assert!(
        most_bytes <= BUDGET as u64 + record_bytes,
        "{most_bytes} bytes in flight"
    );
    assert!(most_records <= held, "{most_records} records in flight");
    assert!(
        committed.values().sum::<i64>() <= WARM_UP as i64,
        "nothing past the warm-up is committed while the database is down: {committed:?}"
    );
    // The process's memory grew by far less than the backlog it did not take in.
    let backlog_bytes = BACKLOG as u64 * record_bytes;
    assert!(
        peak.saturating_sub(before) < backlog_bytes / 2,
        "RSS grew by {} MiB during a {} MiB backlog",
        peak.saturating_sub(before) >> 20,
        backlog_bytes >> 20
    );

    // The database is back: everything is stored, once.
    proxy.restore();
    setup.wait_caught_up().await;
    assert_eq!(
        setup.stored_ids().await,
        (WARM_UP + BACKLOG) as i64,
        "each record exactly once"
    );
    let (bytes, records, text) = gauges(metrics_port);
    assert_eq!((bytes, records), (0, 0), "nothing left in flight:\n{text}");
    assert_eq!(
        metric(
            &text,
            &format!(r#"auditflow_consumed_records_total{{service="sink",topic="{topic}"}}"#)
        ),
        (WARM_UP + BACKLOG) as u64
    );
    assert!(
        metric(
            &text,
            r#"auditflow_write_errors_total{kind="transient",service="sink"}"#
        ) > 0,
        "the outage was seen as one"
    );
    let status = terminate(&mut sink);
    assert!(status.success(), "the sink exits 0 on SIGTERM: {status}");
    setup.drop_keyspace().await;
}
