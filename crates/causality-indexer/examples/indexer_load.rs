//! Load harness (run on demand, not part of the test suite): how fast the causality indexer
//! stores a backlog on this machine, against its own extract-and-write in a loop without the
//! at-least-once bookkeeping measured in the same run; and its memory and CPU while it drains.
//!
//! ```text
//! cargo build --release -p auditflow-cli
//! cargo run --release -p auditflow-causality-indexer --example indexer_load -- [RECORDS] [PATH/TO/auditflow]
//! ```
//!
//! 1. Creates the run's topics (`load<pid>.*`, 6 partitions) and produces RECORDS (default
//!    300 000) audit records — synthetic traffic of 5 000 people run through the real
//!    `Classifier` (the security monitor's harness's mix, `load_support::input`) — plus the
//!    alerts and actions the real `SecurityMonitor` raises over them, in process: every topic the
//!    indexer reads.
//! 2. Reads them once with the loops' consumer settings (the read-only ceiling).
//! 3. The baseline, into a keyspace of its own (`<run>_plain`, migrated by the store): the
//!    indexer's own `IndexWriter` (its extract, the store's `CausalityIndex::write`) over
//!    batches of `[kafka] batch_max_records`, dispatched when full or every `batch_max_wait_ms`,
//!    at most `max_in_flight_records / batch_max_records` batches written side by side on one
//!    store handle, as the service does. What it leaves out is the at-least-once bookkeeping:
//!    a finished batch stores the offset after its last record of each partition, whether or
//!    not batches before it are done, and offsets are committed asynchronously every 100 ms;
//!    no pausing (consumption waits for a free batch slot instead), no dead-letter production
//!    (it counts them, and there must be none), no metrics. Records/s from its first record to
//!    the last write.
//! 4. The real `auditflow run causality-indexer` binary (keyspace `<run>`) until its committed
//!    offsets cover every record; records/s from its first commit to its last, peak RSS and CPU
//!    from `/proc`.
//! 5. Checks, untimed: each keyspace holds one `causality_nodes` row per record; the binary
//!    dead-lettered nothing. CQL writes per record and table are the server's own counts
//!    (`system_views.local_write_latency`; one INSERT is one request and one row here).
//!
//! Then drops both keyspaces, the topics and the groups.

#[path = "../../security-monitor/examples/load_support/mod.rs"]
mod load_support;

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditflow_causality_indexer::{IndexWriter, SERVICE, input_topics};
use auditflow_core::Config;
use auditflow_core::detect::IdSecret;
use auditflow_runtime::kafka::at_least_once::{BatchWriter, Written};
use auditflow_runtime::kafka::client;
use auditflow_runtime::kafka::topics::{ensure_topics, planned_topics};
use auditflow_runtime::kafka::transactional::Transform;
use auditflow_runtime::{InputRecord, Transformed};
use auditflow_security_monitor::SecurityMonitor;
use auditflow_store::Store;
use auditflow_store::causality::CausalityIndex;
use futures::{FutureExt, TryStreamExt};
use load_support::{Record, Run};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use tokio::task::JoinSet;

/// Groups of the run besides the service's: the read-only reader and the baseline.
const OTHER_GROUPS: [&str; 2] = ["reader", "plain"];

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let audit: usize = args
        .next()
        .map_or(300_000, |n| n.parse().expect("RECORDS is a number"));
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/auditflow".into());
    let run = Run::new();
    println!("{}", load_support::machine());
    ensure_topics(&run.config.kafka, &planned_topics(&run.config.topics))
        .await
        .expect("create topics");
    let mut plain = run.config.clone();
    plain.store.keyspace = format!("{}_plain", run.name);
    let measured = AssertUnwindSafe(measure(&run, &plain, &binary, audit))
        .catch_unwind()
        .await;
    let cql = session(&run.config).await;
    for keyspace in [&run.config.store.keyspace, &plain.store.keyspace] {
        if let Err(e) = cql
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await
        {
            eprintln!("dropping keyspace {keyspace}: {e}");
        }
    }
    let mut groups = vec![SERVICE];
    groups.extend(OTHER_GROUPS);
    load_support::clean_up(&run.config, &[], &groups).await;
    if let Err(panic) = measured {
        std::panic::resume_unwind(panic);
    }
}

async fn measure(run: &Run, plain: &Config, binary: &str, audit: usize) {
    let config = &run.config;
    let inputs = input_topics(config);
    let started = Instant::now();
    let (mut batch, mix) = load_support::classified(config, audit, |_| true);
    let detected = detect(config, &batch);
    println!(
        "the monitor raised {} alerts and actions over them",
        detected.len()
    );
    batch.extend(detected);
    let records = batch.len();
    load_support::produce(config, &batch).await;
    drop(batch);
    println!(
        "produced {records} records in {:.1} s: {mix}, plus alerts and actions",
        started.elapsed().as_secs_f64()
    );

    let read_rate = tokio::task::spawn_blocking({
        let (config, inputs) = (config.clone(), inputs.clone());
        move || load_support::read_only(&config, &inputs, records)
    })
    .await
    .expect("reader");
    println!("read-only consumer:    {read_rate:>9.0} records/s");

    let baseline = plain_loop(plain, &inputs, records).await;
    println!(
        "no-bookkeeping loop:   {:>9.0} records/s ({:.1}% of read-only)",
        baseline.rate,
        100.0 * baseline.rate / read_rate
    );
    assert_eq!(
        baseline.dead_letters, 0,
        "the baseline dead-lettered records"
    );
    assert_eq!(
        baseline.rows, records,
        "the baseline wrote a row per record"
    );

    let service = load_support::run_service(binary, SERVICE, run, &inputs, records).await;
    println!(
        "causality-indexer:     {:>9.0} records/s ({:.1}% of read-only, {:.3} of the no-bookkeeping loop)",
        service.rate,
        100.0 * service.rate / read_rate,
        service.rate / baseline.rate
    );
    println!(
        "  wall {:.1} s from spawn; peak RSS (VmHWM) {:.1} MiB, max sampled VmRSS {:.1} MiB",
        service.wall_secs,
        service.peak_kib as f64 / 1024.0,
        service.max_rss_kib as f64 / 1024.0
    );
    println!(
        "  CPU {:.1} s ({:.1} µs per record)",
        service.cpu_secs,
        service.cpu_secs * 1e6 / records as f64
    );
    // For `cargo xtask bench`: figure|value|baseline|ratio|peak RSS MiB.
    println!(
        "BENCH|causality indexer records/s|{:.0}|{:.0} (no-bookkeeping loop)|{:.2}|{:.1}",
        service.rate,
        baseline.rate,
        service.rate / baseline.rate,
        service.peak_kib as f64 / 1024.0
    );

    let dead = load_support::read_topic(config, &config.topics.dead_letter);
    assert!(dead.is_empty(), "{} records dead-lettered", dead.len());
    let cql = session(config).await;
    println!("CQL writes per record (server counts):");
    for (name, keyspace) in [
        ("service", &config.store.keyspace),
        ("baseline", &plain.store.keyspace),
    ] {
        let nodes = count_nodes(&cql, keyspace).await;
        assert_eq!(nodes, records, "{name}: one causality_nodes row per record");
        let writes = written(&cql, keyspace).await;
        let total: u64 = writes.values().sum();
        let tables: Vec<String> = writes
            .iter()
            .map(|(t, n)| {
                format!(
                    "{} {:.2}",
                    t.trim_start_matches("causality_"),
                    *n as f64 / records as f64
                )
            })
            .collect();
        println!(
            "  {name:<8} {:.2} ({})",
            total as f64 / records as f64,
            tables.join(", ")
        );
    }
}

/// The alerts and actions the real monitor raises over `records` (one partition, judged live
/// at their production time): what the indexer reads from `security.alerts` and
/// `security.actions`.
fn detect(config: &Config, records: &[Record]) -> Vec<Record> {
    let mut monitor = SecurityMonitor::new(config, IdSecret::development()).expect("settings");
    let now = chrono::Utc::now().timestamp_millis();
    let mut raised = Vec::new();
    for (offset, r) in records.iter().enumerate() {
        let input = InputRecord {
            topic: r.topic.clone(),
            partition: 0,
            offset: offset as i64,
            key: Some(r.key.clone().into_bytes()),
            payload: Some(r.payload.clone()),
            headers: Vec::new(),
            timestamp_ms: Some(now),
        };
        let Transformed::Emitted { records, .. } = monitor.transform(&input) else {
            continue;
        };
        for output in records {
            let (Some(key), Some(payload)) = (output.key, output.payload) else {
                continue;
            };
            if output.topic == config.topics.alerts || output.topic == config.topics.actions {
                raised.push(Record {
                    topic: output.topic,
                    key: String::from_utf8(key).expect("a text key"),
                    payload,
                });
            }
        }
    }
    raised
}

/// What the baseline did.
struct Baseline {
    rate: f64,
    rows: usize,
    dead_letters: usize,
}

/// One finished batch: the last offset of each partition in it, and what became of each record.
type Finished = (HashMap<(String, i32), i64>, Vec<Written>);

/// The indexer's extract-and-write without the at-least-once bookkeeping (see the module doc).
async fn plain_loop(config: &Config, inputs: &[String], records: usize) -> Baseline {
    let store = Store::open_for_service("causality-indexer-baseline", config)
        .await
        .expect("the baseline's keyspace");
    let index = CausalityIndex::open(store).await.expect("causality index");
    // Counted in a registry of its own: the baseline records no service's metrics.
    let metrics = auditflow_runtime::Metrics::new()
        .expect("metrics")
        .service("causality-indexer-baseline");
    let writer = Arc::new(IndexWriter::new(
        Arc::new(index),
        config.limits.clone(),
        metrics,
    ));
    let group = client::group_id(&config.kafka, "plain");
    let consumer: StreamConsumer = client::consumer_config(&config.kafka, &group)
        .create()
        .expect("consumer");
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).expect("subscribe");
    let kafka = &config.kafka;
    let batch_max = kafka.batch_max_records.max(1);
    let slots = (kafka.max_in_flight_records / batch_max).max(1);
    let mut flush = tokio::time::interval(Duration::from_millis(kafka.batch_max_wait_ms.max(1)));
    let mut commit = tokio::time::interval(Duration::from_millis(100));
    let mut tasks: JoinSet<Finished> = JoinSet::new();
    let mut batch: Vec<InputRecord> = Vec::with_capacity(batch_max);
    let mut stored: HashMap<(String, i32), i64> = HashMap::new();
    let (mut done, mut rows, mut dead_letters, mut first) = (0, 0, 0, None);
    let dispatch = |batch: &mut Vec<InputRecord>, tasks: &mut JoinSet<Finished>| {
        if batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(batch, Vec::with_capacity(batch_max));
        let writer = writer.clone();
        tasks.spawn(async move {
            let mut last = HashMap::new();
            for r in &batch {
                last.insert((r.topic.clone(), r.partition), r.offset);
            }
            let written = loop {
                match writer.write(&batch).await {
                    Ok(written) => break written,
                    Err(e) => {
                        eprintln!("baseline write failed, retrying: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            (last, written)
        });
    };
    while done < records {
        tokio::select! {
            Some(finished) = tasks.join_next() => {
                let (last, written) = finished.expect("a batch task");
                done += written.len();
                for w in &written {
                    match w {
                        Written::Row { .. } => rows += 1,
                        Written::DeadLetter(_) => dead_letters += 1,
                        Written::Ignored => {}
                    }
                }
                for ((topic, partition), offset) in last {
                    let at = stored.entry((topic.clone(), partition)).or_insert(-1);
                    if offset > *at {
                        *at = offset;
                        consumer.store_offset(&topic, partition, offset).expect("store offset");
                    }
                }
            }
            _ = commit.tick() => {
                // Nothing stored since the last commit is no reason to stop.
                let _ = consumer.commit_consumer_state(CommitMode::Async);
            }
            _ = flush.tick() => dispatch(&mut batch, &mut tasks),
            message = consumer.recv(), if tasks.len() < slots => {
                let record = InputRecord::from_message(&message.expect("consume"));
                first.get_or_insert_with(Instant::now);
                batch.push(record);
                if batch.len() >= batch_max {
                    dispatch(&mut batch, &mut tasks);
                }
            }
        }
    }
    let elapsed = first.expect("records").elapsed();
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    Baseline {
        rate: records as f64 / elapsed.as_secs_f64(),
        rows,
        dead_letters,
    }
}

async fn session(config: &Config) -> Session {
    SessionBuilder::new()
        .known_nodes(&config.store.nodes)
        .build()
        .await
        .expect("CQL session")
}

/// Rows of `keyspace.causality_nodes`, read through (untimed).
async fn count_nodes(cql: &Session, keyspace: &str) -> usize {
    let mut rows = cql
        .query_iter(format!("SELECT id FROM {keyspace}.causality_nodes"), ())
        .await
        .expect("scan")
        .rows_stream::<(String,)>()
        .expect("rows");
    let mut n = 0;
    while rows.try_next().await.expect("scan").is_some() {
        n += 1;
    }
    n
}

/// CQL writes the server counted per causality table of `keyspace`.
async fn written(cql: &Session, keyspace: &str) -> BTreeMap<String, u64> {
    let result = cql
        .query_unpaged(
            "SELECT table_name, count FROM system_views.local_write_latency \
             WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .expect("write counts")
        .into_rows_result()
        .expect("rows");
    result
        .rows::<(String, i64)>()
        .expect("rows")
        .map(|r| r.expect("a row"))
        .filter(|(table, _)| table.starts_with("causality_"))
        .map(|(table, n)| (table, n as u64))
        .collect()
}
