//! Load harness (run on demand, not part of the test suite): how fast the sink stores a backlog
//! from Kafka on this machine, compared with a minimal concurrent writer inserting the same
//! rows straight into the database, measured in the same run; and the sink's memory while it
//! drains.
//!
//! ```text
//! cargo build --release -p auditflow-cli
//! cargo run --release -p auditflow-sink --example sink_load -- [RECORDS] [PATH/TO/auditflow] [RAW_CONCURRENCY]
//! ```
//!
//! 1. Creates fresh topics (`load<pid>.audit.*`, 6 partitions) and produces RECORDS (default
//!    1 000 000) audit records: synthetic inputs over 5 000 users run through the real
//!    `Classifier`, so the records, keys and topics are exactly what the classifier writes — every
//!    retention class, data access, and security events from failed logins and scans.
//! 2. Runs the real `auditflow run sink` binary over that backlog (its own group and keyspace,
//!    set by `AUDITFLOW_<SECTION>__<KEY>` overrides) until its committed offsets cover every
//!    record; samples its RSS (`VmRSS`) every 100 ms and reads its peak (`VmHWM`) and CPU time
//!    from `/proc` before stopping it with SIGTERM. Records/s is taken from its first commit to
//!    its last (start-up, migration and group join not counted); wall time is from spawn.
//! 3. Reads every row the sink wrote back (untimed), then inserts the same rows — same tables
//!    (a second keyspace migrated by the store), same bound values byte for byte, ciphertexts
//!    included, the class's TTL where the sink binds one — with prepared statements and at most
//!    RAW_CONCURRENCY (default `[store] max_concurrency`; 0: no baseline, the sink's figures
//!    only) requests in flight: the baseline.
//!    Each row is written once and plainly: the sink's hourly refresh of a `user_days` row
//!    (the store rewrites one at most once an hour per process) and its lightweight
//!    transaction per new user key are not repeated. CQL rows written are counted by the server (`system_views.local_write_latency`).
//!
//! Then drops both keyspaces, the topics and the consumer group, and prints a summary. Needs the
//! local stack (`cargo xtask up`) and an up-to-date release binary.
//!
//! **What the tamper-evident log costs** (`LOAD_INTEGRITY=1`): instead of the raw writer, the
//! same backlog is drained twice by the real binary — first with `[integrity] enabled = false`
//! (its own group and keyspace), then with the log on (`LOAD_INTEGRITY=on-first`: the other
//! way round) — and the harness prints records/s of
//! each and their ratio, CQL rows per record, then times `auditflow verify --anchor store` over
//! the second keyspace and counts its leaves and checkpoints (bytes each, checkpoints per
//! million records).
//!
//! **Maximum-size records** (`LOAD_RECORD_BYTES=N`): every record is instead a user action of
//! about N bytes (a `context` the sink stores, sealed, like any other; N = 990000 is as large
//! as librdkafka's default `message.max.bytes` lets a producer send), and the baseline is left
//! out: the figure is the sink's memory while it drains that backlog. The sink child inherits
//! this process's environment, so `AUDITFLOW_KAFKA__MAX_IN_FLIGHT_BYTES=…` sets its budget.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditflow_core::{Classified, Classifier, Config, RetentionClass};
use auditflow_runtime::kafka::client;
use auditflow_runtime::kafka::inspect::CommittedOffsets;
use auditflow_runtime::kafka::publisher::Publisher;
use auditflow_runtime::kafka::topics::{
    delete_group, delete_topics, ensure_topics, planned_topics,
};
use auditflow_store::Store;
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::{ColumnIterator, DeserializeRow};
use scylla::deserialize::{DeserializationError, TypeCheckError};
use scylla::frame::response::result::ColumnSpec;
use scylla::serialize::SerializationError;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::statement::Consistency;
use serde_json::json;

const USERS: usize = 5_000;
/// Records produced per round of sends awaited together.
const PRODUCE_CHUNK: usize = 20_000;
/// The tables the sink writes for a record, and whose rows the baseline copies. `None`: the
/// table's default TTL applies; `Some(extra)`: the sink binds its class's period plus `extra`
/// seconds (see `auditflow_store`'s write path), and so does the baseline.
const TABLES: [(&str, Option<i64>); 10] = [
    ("audit_security_by_user", None),
    ("audit_financial_by_user", None),
    ("audit_marketing_by_user", None),
    ("audit_general_by_user", None),
    ("security_by_time", None),
    ("records_by_time", Some(0)),
    ("records_by_id", Some(0)),
    ("user_days", Some(86_400)),
    ("user_keys", None),
    ("data_keys", None),
];

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let records: usize = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("RECORDS is a number"));
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/auditflow".into());
    let raw_concurrency: Option<usize> = args
        .next()
        .map(|n| n.parse().expect("RAW_CONCURRENCY is a number"));

    let run = format!("load{}", std::process::id());
    let overrides = run_overrides(&run);
    let config =
        Config::load("", std::env::vars().chain(overrides.iter().cloned())).expect("configuration");
    let raw_keyspace = format!("{run}_raw");
    println!("{}", machine());

    ensure_topics(&config.kafka, &planned_topics(&config.topics))
        .await
        .expect("create topics");
    // A failed run still cleans up; then it fails as it would have.
    let measured = AssertUnwindSafe(measure(
        &config,
        &overrides,
        &binary,
        &raw_keyspace,
        records,
        raw_concurrency,
    ))
    .catch_unwind()
    .await;
    clean_up(&config, &raw_keyspace).await;
    if let Err(panic) = measured {
        std::panic::resume_unwind(panic);
    }
}

/// The run's private topics, consumer group and keyspace: the sink child gets them as its
/// environment, this process loads its configuration from the same pairs.
fn run_overrides(run: &str) -> Vec<(String, String)> {
    let topic =
        |key: &str, name: &str| (format!("AUDITFLOW_TOPICS__{key}"), format!("{run}.{name}"));
    vec![
        ("AUDITFLOW_KAFKA__GROUP_PREFIX".into(), format!("{run}-")),
        ("AUDITFLOW_STORE__KEYSPACE".into(), run.to_owned()),
        (
            "AUDITFLOW_METRICS__LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        ),
        topic("USER_ACTION", "audit.user.action"),
        topic("DATA_ACCESS", "audit.data.access"),
        topic("SECURITY_EVENT", "audit.security.event"),
        topic("DEAD_LETTER", "audit.dlq"),
        topic("ALERTS", "security.alerts"),
        topic("ACTIONS", "security.actions"),
        topic("BLOCKLIST", "security.blocklist"),
        topic("CHECKPOINTS", "audit.checkpoints"),
        topic("OPERATOR", "audit.operator.action"),
        topic("SAMPLING", "audit.sampling.summary"),
    ]
}

/// The integrity-off run's overrides: its own group and keyspace, and no log.
fn integrity_off_overrides(
    overrides: &[(String, String)],
    run: &str,
    keyspace: &str,
) -> Vec<(String, String)> {
    let mut off = overrides.to_vec();
    off.extend([
        ("AUDITFLOW_KAFKA__GROUP_PREFIX".into(), format!("{run}off-")),
        ("AUDITFLOW_STORE__KEYSPACE".into(), keyspace.to_owned()),
        ("AUDITFLOW_INTEGRITY__ENABLED".into(), "false".into()),
    ]);
    off
}

async fn measure(
    config: &Config,
    overrides: &[(String, String)],
    binary: &str,
    raw_keyspace: &str,
    records: usize,
    raw_concurrency: Option<usize>,
) {
    let started = Instant::now();
    let record_bytes: Option<usize> = std::env::var("LOAD_RECORD_BYTES")
        .ok()
        .map(|n| n.parse().expect("LOAD_RECORD_BYTES is a number"));
    let mix = match record_bytes {
        Some(bytes) => produce_large(config, records, bytes).await,
        None => produce(config, records).await,
    };
    println!(
        "produced {records} records in {:.1} s: {mix}",
        started.elapsed().as_secs_f64()
    );

    if std::env::var_os("LOAD_INTEGRITY").is_some() {
        compare_integrity(config, overrides, binary, raw_keyspace, records).await;
        return;
    }
    let sink = run_sink(binary, overrides, config, records).await;
    if record_bytes.is_some() {
        println!(
            "sink draining {records} records of {mix}: {:.1} records/s (first to last commit), \
             wall {:.1} s, peak RSS (VmHWM) {:.1} MiB, max sampled VmRSS {:.1} MiB; CPU {:.1} s",
            sink.records_per_sec,
            sink.wall_secs,
            sink.peak_kib as f64 / 1024.0,
            sink.max_rss_kib as f64 / 1024.0,
            sink.cpu_secs
        );
        return;
    }
    let session = session(config).await;
    let sink_rows = written_rows(&session, &config.store.keyspace).await;
    // Printed now, so a failure of the baseline below does not lose the run.
    println!(
        "sink: {:.0} records/s (first to last commit), {sink_rows} CQL rows by the server's count; \
         {} write requests = {:.3} per record, {:.1} rows per request ({} rows by its own count)",
        sink.records_per_sec,
        sink.requests,
        sink.requests as f64 / records as f64,
        sink.rows as f64 / sink.requests.max(1) as f64,
        sink.rows
    );
    println!(
        "BENCH|sink CQL write requests per record|{:.3}||||",
        sink.requests as f64 / records as f64
    );
    if raw_concurrency == Some(0) {
        println!(
            "no baseline (RAW_CONCURRENCY 0); sink memory draining {records}: peak RSS (VmHWM) \
             {:.1} MiB, max sampled VmRSS {:.1} MiB; CPU {:.1} s",
            sink.peak_kib as f64 / 1024.0,
            sink.max_rss_kib as f64 / 1024.0,
            sink.cpu_secs
        );
        return;
    }

    let mut raw_store = config.store.clone();
    raw_store.keyspace = raw_keyspace.to_owned();
    Store::connect(&raw_store, &config.retention)
        .await
        .expect("connect")
        .migrate()
        .await
        .expect("migrate the baseline's keyspace");
    let started = Instant::now();
    let copies = read_back(&session, config, raw_keyspace).await;
    let stored = copies
        .iter()
        .find(|c| c.table == "records_by_id")
        .map_or(0, |c| c.rows.len());
    assert_eq!(stored, records, "the sink stored every record once");
    println!(
        "read back {} rows in {:.1} s",
        copies.iter().map(|c| c.rows.len()).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    let concurrency = raw_concurrency.unwrap_or(config.store.max_concurrency);
    let raw_secs = raw_write(&session, &copies, concurrency).await;
    let raw_rows = written_rows(&session, raw_keyspace).await;

    let sink_rate = sink.records_per_sec;
    let raw_rate = records as f64 / raw_secs;
    println!();
    println!("                               records/s   CQL rows/s  CQL rows  rows/record");
    for (name, rate, rows) in [
        ("sink (first to last commit)", sink_rate, sink_rows),
        (
            &*format!("raw writer ({concurrency} in flight)"),
            raw_rate,
            raw_rows,
        ),
    ] {
        let per_record = rows as f64 / records as f64;
        println!(
            "{name:<30} {rate:>9.0} {:>12.0} {rows:>9} {per_record:>12.2}",
            rate * per_record
        );
    }
    println!(
        "sink / raw records/s:          {:>9.3}",
        sink_rate / raw_rate
    );
    println!(
        "BENCH|sink records/s|{sink_rate:.0}|{raw_rate:.0} (raw writer, {concurrency} in flight)|{:.2}|{:.1}",
        sink_rate / raw_rate,
        sink.peak_kib as f64 / 1024.0
    );
    println!(
        "sink wall time (spawn to last commit): {:.1} s = {:.0} records/s; raw writer {raw_secs:.1} s",
        sink.wall_secs,
        records as f64 / sink.wall_secs
    );
    println!(
        "sink memory draining {records}: peak RSS (VmHWM) {:.1} MiB, max sampled VmRSS {:.1} MiB; CPU {:.1} s",
        sink.peak_kib as f64 / 1024.0,
        sink.max_rss_kib as f64 / 1024.0,
        sink.cpu_secs
    );
}

/// `LOAD_INTEGRITY=1`: what the tamper-evident log costs. The same backlog is drained twice by
/// the real binary, first with `[integrity] enabled = false` (its own group, the second
/// keyspace), then with the log on (the run's group and keyspace); then `auditflow verify
/// --anchor store` checks the second keyspace, timed; and the checkpoints and leaves it holds
/// are counted and measured.
async fn compare_integrity(
    config: &Config,
    overrides: &[(String, String)],
    binary: &str,
    off_keyspace: &str,
    records: usize,
) {
    let run = config.store.keyspace.clone();
    let off = integrity_off_overrides(overrides, &run, off_keyspace);
    let off_config =
        Config::load("", std::env::vars().chain(off.iter().cloned())).expect("configuration");
    // `LOAD_INTEGRITY=on-first` swaps the order, to see what going second is worth.
    let (without, with) = if std::env::var("LOAD_INTEGRITY").as_deref() == Ok("on-first") {
        let with = run_sink(binary, overrides, config, records).await;
        (run_sink(binary, &off, &off_config, records).await, with)
    } else {
        let without = run_sink(binary, &off, &off_config, records).await;
        (without, run_sink(binary, overrides, config, records).await)
    };
    let session = session(config).await;
    let rows_without = written_rows(&session, off_keyspace).await;
    let rows_with = written_rows(&session, &config.store.keyspace).await;
    let ks = &config.store.keyspace;
    let sizes = |cql: String| {
        let session = &session;
        async move {
            let result = session
                .query_iter(cql, ())
                .await
                .expect("scan")
                .rows_stream::<(Vec<u8>,)>()
                .expect("rows");
            result
                .try_fold((0u64, 0u64), |(n, bytes), (b,)| async move {
                    Ok((n + 1, bytes + b.len() as u64))
                })
                .await
                .expect("scan")
        }
    };
    // The sealer follows the commits: wait until it has sealed every record.
    let store = Store::connect(&config.store, &config.retention)
        .await
        .expect("connect");
    let sealed_by = Instant::now() + Duration::from_secs(120);
    loop {
        let sealed: u64 = store
            .log_tails()
            .await
            .expect("log state")
            .iter()
            .map(|t| t.size)
            .sum();
        if sealed >= records as u64 {
            break;
        }
        assert!(
            Instant::now() < sealed_by,
            "only {sealed} of {records} records sealed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (leaves, leaf_bytes) = sizes(format!("SELECT leaf FROM {ks}.log_leaves")).await;
    let (checkpoints, checkpoint_bytes) = sizes(format!(
        "SELECT textAsBlob(checkpoint) FROM {ks}.checkpoints"
    ))
    .await;
    let verify_started = Instant::now();
    let verified = Command::new(binary)
        .args(["verify", "--anchor", "store"])
        .envs(overrides.iter().cloned())
        .stdin(Stdio::null())
        .output()
        .expect("auditflow verify");
    let verify_secs = verify_started.elapsed().as_secs_f64();
    let summary = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "verify failed: {summary}");
    println!();
    println!(
        "                               records/s   CQL rows/record   wall s   CPU s   peak RSS MiB"
    );
    for (name, run, rows) in [
        ("integrity off", &without, rows_without),
        ("integrity on", &with, rows_with),
    ] {
        println!(
            "{name:<30} {:>9.0} {:>17.2} {:>8.1} {:>7.1} {:>14.1}",
            run.records_per_sec,
            rows as f64 / records as f64,
            run.wall_secs,
            run.cpu_secs,
            run.peak_kib as f64 / 1024.0
        );
    }
    println!(
        "on / off records/s:            {:>9.3}",
        with.records_per_sec / without.records_per_sec
    );
    println!(
        "verify --anchor store: {verify_secs:.1} s for {records} records = {:.0} records/s ({})",
        records as f64 / verify_secs,
        summary.lines().next().unwrap_or_default()
    );
    let per_million = 1_000_000.0 / records as f64;
    println!(
        "leaves: {leaves}, {:.0} bytes each; checkpoints: {checkpoints} ({:.0} per million records), \
         {:.0} bytes each as JSON",
        leaf_bytes as f64 / leaves.max(1) as f64,
        checkpoints as f64 * per_million,
        checkpoint_bytes as f64 / checkpoints.max(1) as f64
    );
}

/// One synthetic input, as an application would publish it. Per 100: page views, logins (one
/// in four failing: a user action and a security event), profile updates (some sensitive),
/// data reads and exports, payments and subscriptions, newsletters and marketing clicks, role
/// changes, security scans and system jobs. Times step 250 ms from 2026-11-20, so a million
/// records span about three days of partitions.
fn input(i: usize) -> Vec<u8> {
    // A multiplicative hash, so a user's events are of every kind (i % 100 picks the kind).
    let user = format!(
        "bench-user-{}",
        ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % USERS as u64
    );
    let (ty, mut data) = match i % 100 {
        0..35 => ("user.page.viewed", json!({"page": "/home"})),
        35..50 => (
            "user.login.attempt",
            json!({"success": true, "new_device": i.is_multiple_of(7)}),
        ),
        50..55 => (
            "user.login.attempt",
            json!({"success": false, "failure_count": 1}),
        ),
        55..63 => (
            "user.profile.updated",
            json!({"changes": {(["timezone", "email"][i % 2]): "x"}}),
        ),
        63..73 => (
            "user.data.read",
            json!({"data_type": "orders", "record_count": 1 + i % 20}),
        ),
        73..75 => (
            "user.data.export",
            json!({"data_type": "user_profile", "purpose": "dsar"}),
        ),
        75..81 => (
            "user.payment.completed",
            json!({"amount": 4200, "currency": "EUR"}),
        ),
        81..84 => ("user.subscription.renewed", json!({"plan": "pro"})),
        84..89 => ("user.newsletter.opened", json!({"campaign": "winter"})),
        89..92 => ("user.marketing.clicked", json!({"campaign": "winter"})),
        92..94 => (
            "user.role.changed",
            json!({"new_role": if i.is_multiple_of(2) { "admin" } else { "editor" }, "old_role": "viewer"}),
        ),
        94..96 => (
            "system.security.scan",
            json!({"severity": "warning", "finding": "open_port"}),
        ),
        _ => (
            "system.job.finished",
            json!({"outcome": "success", "job": "nightly"}),
        ),
    };
    if ty.starts_with("user.") {
        let fields = data.as_object_mut().expect("an object");
        fields.insert("user_id".into(), json!(user));
        fields.insert(
            "ip_address".into(),
            json!(format!("198.51.100.{}", 1 + i % 254)),
        );
        fields.insert(
            "user_agent".into(),
            json!("Mozilla/5.0 (X11; Linux x86_64)"),
        );
        fields.insert("session_id".into(), json!(format!("sess-{:x}", i / 20)));
    }
    let time =
        DateTime::<Utc>::from_timestamp_millis(1_795_132_800_000 + 250 * i as i64).expect("a time");
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": format!("in-{i}"), "source": "/bench/sink-load",
        "type": ty, "time": time.to_rfc3339(), "data": data,
    }))
    .expect("JSON")
}

/// Produces `records` classified records to the run's audit topics; says how they divide.
async fn produce(config: &Config, records: usize) -> String {
    let classifier = Classifier::new(config).expect("classifier");
    // Larger batches than the services use: only the setup speeds up.
    let mut settings = config.kafka.clone();
    settings.properties.insert("linger.ms".into(), "20".into());
    let producer = Publisher::new(&settings).expect("producer");
    let mut by_topic: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_class: BTreeMap<String, usize> = BTreeMap::new();
    let (mut produced, mut inputs) = (0, 0);
    while produced < records {
        let mut chunk = Vec::with_capacity(PRODUCE_CHUNK);
        while chunk.len() < PRODUCE_CHUNK && produced + chunk.len() < records {
            let Classified::Emit(outputs) =
                classifier.classify_structured(&input(inputs), Utc::now())
            else {
                panic!("input {inputs} was not audited");
            };
            inputs += 1;
            for output in outputs.into_iter().take(records - produced - chunk.len()) {
                let class = output.retention.as_str();
                *by_class.entry(class.to_owned()).or_default() += 1;
                *by_topic.entry(output.topic.clone()).or_default() += 1;
                chunk.push((output.topic, output.key, output.value));
            }
        }
        send_all(
            &producer,
            chunk
                .iter()
                .map(|(topic, key, payload)| (&**topic, &**key, &**payload)),
        )
        .await;
        produced += chunk.len();
    }
    let share = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, n)| format!("{} {n}", k.rsplit('.').next().unwrap_or(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{inputs} inputs, {USERS} users; by topic: {}; by class: {}",
        share(&by_topic),
        share(&by_class)
    )
}

/// `records` user actions of about `bytes` bytes each (the `LOAD_RECORD_BYTES` mode), sent
/// a few dozen megabytes at a time.
async fn produce_large(config: &Config, records: usize, bytes: usize) -> String {
    const CHUNK_BYTES: usize = 64 << 20;
    let producer = Publisher::new(&config.kafka).expect("producer");
    let topic = &config.topics.user_action;
    let pad = "x".repeat(bytes.saturating_sub(600));
    let mut produced = 0;
    while produced < records {
        let chunk: Vec<(String, Vec<u8>)> = (produced..records)
            .take((CHUNK_BYTES / bytes.max(1)).max(1))
            .map(|i| {
                let user = format!("bench-user-{}", i % USERS);
                let time =
                    DateTime::<Utc>::from_timestamp_millis(1_795_132_800_000 + 250 * i as i64)
                        .expect("a time");
                let event = json!({
                    "specversion": "1.0", "id": format!("big-{i}"), "source": "/bench/sink-load",
                    "type": "audit.user.action", "subject": format!("user:{user}"),
                    "time": time.to_rfc3339(), "causationid": format!("in-{i}"),
                    "correlationid": format!("in-{i}"), "originaltype": "user.page.viewed",
                    "retention": "general", "samplerate": 1,
                    "data": {"user_id": user, "action": "user.page.viewed", "outcome": "success",
                             "risk_level": "low", "context": {"pad": pad}},
                });
                (user, serde_json::to_vec(&event).expect("JSON"))
            })
            .collect();
        send_all(
            &producer,
            chunk
                .iter()
                .map(|(key, payload)| (topic.as_str(), &**key, &**payload)),
        )
        .await;
        produced += chunk.len();
    }
    format!("{bytes} bytes each (user actions, general class)")
}

/// Produces `(topic, key, payload)` records and waits for every acknowledgement.
async fn send_all<'a>(
    producer: &Publisher,
    records: impl Iterator<Item = (&'a str, &'a str, &'a [u8])>,
) {
    let sends = records.map(|(topic, key, payload)| {
        producer.publish(topic, key.as_bytes(), payload, Duration::from_secs(60))
    });
    for result in futures::future::join_all(sends).await {
        result.expect("produce");
    }
}

struct SinkRun {
    records_per_sec: f64,
    /// The sink's own count of CQL write requests and rows, from its metrics at the end.
    requests: u64,
    rows: u64,
    wall_secs: f64,
    peak_kib: u64,
    max_rss_kib: u64,
    cpu_secs: f64,
}

/// Runs the real binary over the backlog until its committed offsets cover all `records`.
async fn run_sink(
    binary: &str,
    overrides: &[(String, String)],
    config: &Config,
    records: usize,
) -> SinkRun {
    let spawned = Instant::now();
    let child = Command::new(binary)
        .args(["run", "sink"])
        .envs(overrides.iter().cloned())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{binary}: {e} (build it: cargo build --release -p auditflow-cli)")
        });
    let mut child = Stopped(child);
    let pid = child.0.id();
    let group = client::group_id(&config.kafka, auditflow_sink::SERVICE);
    let watcher = CommittedOffsets::of(&config.kafka, &group).expect("watcher");

    let mut first: Option<(Instant, i64)> = None;
    let mut max_rss_kib = 0;
    let mut progress = Instant::now();
    let done = loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the sink exited early: {status}");
        }
        let committed = committed(&watcher, config);
        max_rss_kib = max_rss_kib.max(proc_status_kib(pid, "VmRSS"));
        if committed > 0 && first.is_none() {
            first = Some((Instant::now(), committed));
        }
        if committed as usize >= records {
            break Instant::now();
        }
        if progress.elapsed() >= Duration::from_secs(15) {
            progress = Instant::now();
            println!(
                "  sink: {committed} committed after {:.0} s, RSS {:.1} MiB",
                spawned.elapsed().as_secs_f64(),
                proc_status_kib(pid, "VmRSS") as f64 / 1024.0
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let peak_kib = proc_status_kib(pid, "VmHWM");
    let cpu_secs = cpu_secs(pid);
    let listen = overrides
        .iter()
        .find(|(k, _)| k == "AUDITFLOW_METRICS__LISTEN")
        .map(|(_, v)| v.as_str())
        .expect("a metrics address");
    let metrics = scrape(listen);
    let status = child.stop();
    assert!(status.success(), "the sink exited with {status}");
    let (start, at_start) = first.expect("commits");
    SinkRun {
        records_per_sec: (records as i64 - at_start) as f64
            / done.duration_since(start).as_secs_f64(),
        wall_secs: done.duration_since(spawned).as_secs_f64(),
        requests: counter(&metrics, "auditflow_database_write_requests_total"),
        rows: counter(&metrics, "auditflow_database_rows_written_total"),
        peak_kib,
        max_rss_kib,
        cpu_secs,
    }
}

/// A port free now, for the sink's metrics endpoint.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The text exposition of the sink's `/metrics`.
fn scrape(listen: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(listen).expect("connect to /metrics");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {listen}\r\n\r\n").expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("read /metrics");
    body
}

/// The value of the sink's series of counter `name`.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find(|line| line.starts_with(&format!("{name}{{")) && line.contains("service=\"sink\""))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("the sink exports no {name}")) as u64
}

/// The sink child, stopped with SIGTERM (as an orchestrator would) however the run ends.
struct Stopped(Child);

impl Stopped {
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        self.0.wait().expect("the sink's exit")
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// What the sink's group has committed over every partition of its inputs.
fn committed(watcher: &CommittedOffsets, config: &Config) -> i64 {
    auditflow_sink::input_topics(config)
        .iter()
        .map(|topic| {
            watcher
                .total(topic, config.topics.partitions, Duration::from_secs(10))
                .expect("committed offsets")
        })
        .sum()
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), 0 when unreadable.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let value = l.strip_prefix(field)?.strip_prefix(':')?;
                value.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

/// User + system CPU time of a process (`/proc/<pid>/stat` fields 14 and 15, at the usual 100
/// ticks per second).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

async fn session(config: &Config) -> Session {
    // The store's default consistency (`local_quorum`), as the sink writes.
    let profile = ExecutionProfile::builder()
        .consistency(Consistency::LocalQuorum)
        .request_timeout(Some(Duration::from_secs(60)))
        .build();
    SessionBuilder::new()
        .known_nodes(&config.store.nodes)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .expect("CQL session")
}

/// CQL rows the server wrote to `keyspace`'s record and key tables, as it counts them.
async fn written_rows(session: &Session, keyspace: &str) -> u64 {
    let rows = session
        .query_unpaged(
            "SELECT table_name, count FROM system_views.local_write_latency \
             WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .expect("write counts")
        .into_rows_result()
        .expect("rows");
    rows.rows::<(String, i64)>()
        .expect("rows")
        .map(|r| r.expect("a row"))
        .filter(|(table, _)| TABLES.iter().any(|(t, _)| t == table))
        .map(|(_, count)| count as u64)
        .sum()
}

/// One table's rows as the sink wrote them, and the statement that inserts them again.
struct Copy {
    table: &'static str,
    insert: scylla::statement::prepared::PreparedStatement,
    rows: Vec<RawRow>,
}

/// Reads back every row the sink wrote, and prepares their inserts into `to_keyspace`.
async fn read_back(session: &Session, config: &Config, to_keyspace: &str) -> Vec<Copy> {
    let from = &config.store.keyspace;
    let mut copies = Vec::new();
    for (table, ttl) in TABLES {
        let select = session
            .prepare(format!("SELECT * FROM {from}.{table}"))
            .await
            .expect("prepare select");
        let columns: Vec<String> = select
            .get_current_result_set_col_specs()
            .get()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let class_column = columns.iter().position(|c| c == "class");
        let mut rows: Vec<RawRow> = session
            .execute_iter(select, ())
            .await
            .expect("read back")
            .rows_stream::<RawRow>()
            .expect("raw rows")
            .try_collect()
            .await
            .expect("read back");
        let mut cql = format!(
            "INSERT INTO {to_keyspace}.{table} ({}) VALUES ({})",
            columns.join(", "),
            vec!["?"; columns.len()].join(", ")
        );
        if let Some(extra) = ttl {
            cql.push_str(" USING TTL ?");
            let class = class_column.expect("a class column");
            for row in &mut rows {
                let class = RetentionClass::parse(&row.text(class)).expect("a retention class");
                let secs = i64::from(class.period_days(&config.retention)) * 86_400 + extra;
                row.push_value(&i32::try_from(secs).unwrap_or(i32::MAX).to_be_bytes());
            }
        }
        let mut insert = session.prepare(cql).await.expect("prepare insert");
        insert.set_is_idempotent(true);
        copies.push(Copy {
            table,
            insert,
            rows,
        });
    }
    copies
}

/// Inserts every row with at most `concurrency` requests in flight, the tables interleaved as
/// a stream of records interleaves them; seconds taken.
async fn raw_write(session: &Session, copies: &[Copy], concurrency: usize) -> f64 {
    let longest = copies.iter().map(|c| c.rows.len()).max().unwrap_or(0);
    let writes = (0..longest).flat_map(|i| {
        copies
            .iter()
            .filter_map(move |c| Some((&c.insert, c.rows.get(i)?)))
    });
    let started = Instant::now();
    futures::stream::iter(writes)
        .map(|(insert, row)| session.execute_unpaged(insert, row))
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|_| futures::future::ready(Ok(())))
        .await
        .expect("raw insert");
    started.elapsed().as_secs_f64()
}

/// Columns the sink leaves unset, rather than null, when it has no value (the hour bucket of a
/// person's records): the baseline leaves them unset too, writing no tombstone the sink does not.
const UNSET_WHEN_ABSENT: [&str; 2] = ["hour", "hours"];

/// A row as the server sent it: each column's serialized bytes in the protocol's own framing
/// (length first; -1 null, -2 unset), bound again as they are — the baseline serializes nothing.
struct RawRow {
    columns: usize,
    bytes: Vec<u8>,
}

/// A cell's length and bytes (empty when null or unset).
type Cell<'a> = (i32, &'a [u8]);

impl RawRow {
    fn cells(&self) -> impl Iterator<Item = Cell<'_>> {
        let mut rest = &self.bytes[..];
        (0..self.columns).map(move |_| {
            let (len, tail) = rest.split_at(4);
            let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
            let (cell, tail) = tail.split_at(usize::try_from(len).unwrap_or(0));
            rest = tail;
            (len, cell)
        })
    }

    fn push(&mut self, len: i32, cell: &[u8]) {
        self.columns += 1;
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(cell);
    }

    fn push_value(&mut self, cell: &[u8]) {
        self.push(i32::try_from(cell.len()).expect("a CQL cell"), cell);
    }

    fn text(&self, column: usize) -> String {
        let cell = self.cells().nth(column).map_or(&[][..], |(_, c)| c);
        String::from_utf8_lossy(cell).into_owned()
    }
}

impl<'frame, 'metadata> DeserializeRow<'frame, 'metadata> for RawRow {
    fn type_check(_: &[ColumnSpec]) -> Result<(), TypeCheckError> {
        Ok(())
    }

    fn deserialize(row: ColumnIterator<'frame, 'metadata>) -> Result<Self, DeserializationError> {
        let mut raw = RawRow {
            columns: 0,
            bytes: Vec::new(),
        };
        for column in row {
            let column = column?;
            match column.slice {
                Some(slice) => raw.push_value(slice.as_slice()),
                None if UNSET_WHEN_ABSENT.contains(&column.spec.name()) => raw.push(-2, &[]),
                None => raw.push(-1, &[]),
            }
        }
        Ok(raw)
    }
}

impl SerializeRow for RawRow {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> Result<(), SerializationError> {
        assert_eq!(ctx.columns().len(), self.columns, "one value per marker");
        for (len, bytes) in self.cells() {
            let cell = writer.make_cell_writer();
            match len {
                -1 => {
                    cell.set_null();
                }
                -2 => {
                    cell.set_unset();
                }
                _ => {
                    cell.set_value(bytes).map_err(SerializationError::new)?;
                }
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.columns == 0
    }
}

/// Drops both keyspaces, the run's topics and its consumer group.
async fn clean_up(config: &Config, raw_keyspace: &str) {
    let session = session(config).await;
    for keyspace in [config.store.keyspace.as_str(), raw_keyspace] {
        if let Err(e) = session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await
        {
            eprintln!("dropping keyspace {keyspace}: {e}");
        }
    }
    let topics: Vec<String> = planned_topics(&config.topics)
        .into_iter()
        .map(|t| t.name)
        .collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(e) = delete_topics(&config.kafka, &topics).await {
        eprintln!("deleting topics: {e}");
    }
    let group = client::group_id(&config.kafka, auditflow_sink::SERVICE);
    if let Err(e) = delete_group(&config.kafka, &group).await {
        eprintln!("deleting group {group}: {e}");
    }
    if std::env::var_os("LOAD_INTEGRITY").is_some() {
        let off = format!("{}off-{}", config.store.keyspace, auditflow_sink::SERVICE);
        if let Err(e) = delete_group(&config.kafka, &off).await {
            eprintln!("deleting group {off}: {e}");
        }
    }
    println!(
        "dropped keyspaces {} and {raw_keyspace}, {} topics and group {group}",
        config.store.keyspace,
        topics.len()
    );
}

/// The machine, for the record: cores, memory, load.
fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "machine: {cores} cores, {mem_gib:.1} GiB, load average {}",
        read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
