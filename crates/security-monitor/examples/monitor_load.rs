//! Load harness (run on demand, not part of the test suite): how fast the security monitor
//! judges a backlog on this machine, against its own detection in a loop without transactions
//! measured in the same run; and its memory and CPU while it drains.
//!
//! ```text
//! cargo build --release -p auditflow-cli
//! cargo run --release -p auditflow-security-monitor --example monitor_load -- [RECORDS] [PATH/TO/auditflow]
//! ```
//!
//! 1. Creates the run's topics (`load<pid>.*`, 6 partitions) and produces RECORDS (default
//!    300 000) monitor inputs: synthetic traffic of 5 000 people run through the real
//!    `Classifier` (`load_support::input`: mostly ordinary actions, failed logins of their own,
//!    and a few sources failing logins against everyone), keeping what lands on the monitor's
//!    inputs (`audit.user.action`, `audit.security.event`), dated so the last is about now.
//! 2. Reads them once with the loops' consumer settings (the read-only ceiling).
//! 3. The baseline: the monitor's own `SecurityMonitor` transform (the service's detection,
//!    partition state and blocklist settling) in a consume → detect → produce loop without
//!    transactions — the runtime's consumer and idempotent producer settings, offsets stored
//!    per record and committed asynchronously every 100 ms, `on_tick` once a second as the
//!    service's loop does. Records/s from its first record until every output is acknowledged.
//! 4. The real `auditflow run security-monitor` binary until its committed offsets cover every
//!    input; records/s from its first commit to its last, peak RSS and CPU from `/proc`.
//! 5. Checks: the baseline saw every input and dead-lettered none; the binary's committed
//!    alerts and actions are the baseline's, id for id; its dead-letter topic is empty.
//!
//! Then deletes the topics and groups. `AUDITFLOW_*` variables reach the binary (and this
//! process's configuration: set only what both should share).

#[path = "load_support/mod.rs"]
mod load_support;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use auditflow_core::Config;
use auditflow_core::detect::IdSecret;
use auditflow_runtime::kafka::client;
use auditflow_runtime::kafka::topics::{ensure_topics, planned_topics};
use auditflow_runtime::kafka::transactional::Transform;
use auditflow_runtime::{InputRecord, OutputRecord, Transformed};
use auditflow_security_monitor::{SERVICE, SecurityMonitor, input_topics};
use futures::FutureExt;
use load_support::Run;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::Value;

/// Groups of the run besides the service's: the read-only reader and the baseline.
const OTHER_GROUPS: [&str; 2] = ["reader", "plain"];

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let records: usize = args
        .next()
        .map_or(300_000, |n| n.parse().expect("RECORDS is a number"));
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/auditflow".into());
    let run = Run::new();
    println!("{}", load_support::machine());
    let plain = plain_config(&run);
    // Each name once: librdkafka's CreateTopics answers a request naming a topic twice with
    // no per-topic results, which rdkafka 0.38 dereferences (a segfault).
    let mut specs = planned_topics(&run.config.topics);
    for spec in planned_topics(&plain.topics) {
        if !specs.iter().any(|s| s.name == spec.name) {
            specs.push(spec);
        }
    }
    ensure_topics(&run.config.kafka, &specs)
        .await
        .expect("create topics");
    let measured = AssertUnwindSafe(measure(&run, &plain, &binary, records))
        .catch_unwind()
        .await;
    let plain_topics: Vec<String> = [
        &plain.topics.alerts,
        &plain.topics.actions,
        &plain.topics.blocklist,
    ]
    .map(String::clone)
    .into();
    let mut groups = vec![SERVICE];
    groups.extend(OTHER_GROUPS);
    load_support::clean_up(&run.config, &plain_topics, &groups).await;
    if let Err(panic) = measured {
        std::panic::resume_unwind(panic);
    }
}

/// The baseline's configuration: the same inputs, outputs on topics of its own.
fn plain_config(run: &Run) -> Config {
    let mut plain = run.config.clone();
    let t = &mut plain.topics;
    for (topic, name) in [
        (&mut t.alerts, "alerts"),
        (&mut t.actions, "actions"),
        (&mut t.blocklist, "blocklist"),
    ] {
        *topic = format!("{}.plain.security.{name}", run.name);
    }
    plain
}

async fn measure(run: &Run, plain: &Config, binary: &str, records: usize) {
    let config = &run.config;
    let inputs = input_topics(config);
    let started = Instant::now();
    let (batch, mix) = load_support::classified(config, records, |t| inputs.iter().any(|i| i == t));
    load_support::produce(config, &batch).await;
    drop(batch);
    println!(
        "produced {records} records in {:.1} s: {mix}",
        started.elapsed().as_secs_f64()
    );

    let read_rate = tokio::task::spawn_blocking({
        let (config, inputs) = (config.clone(), inputs.clone());
        move || load_support::read_only(&config, &inputs, records)
    })
    .await
    .expect("reader");
    println!("read-only consumer:   {read_rate:>9.0} records/s");

    let baseline = tokio::task::spawn_blocking({
        let (plain, inputs) = (plain.clone(), inputs.clone());
        move || plain_loop(&plain, &inputs, records)
    })
    .await
    .expect("baseline loop");
    let summary: Vec<String> = baseline
        .outputs
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    println!(
        "no-transaction loop:  {:>9.0} records/s ({:.0}% of read-only); outputs: {}",
        baseline.rate,
        100.0 * baseline.rate / read_rate,
        summary.join(", ")
    );
    assert_eq!(
        baseline.dead_letters, 0,
        "the baseline dead-lettered inputs"
    );

    let service = load_support::run_service(binary, SERVICE, run, &inputs, records).await;
    println!(
        "security-monitor:     {:>9.0} records/s ({:.0}% of read-only, {:.3} of the no-transaction loop)",
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
        "BENCH|security monitor records/s|{:.0}|{:.0} (no-transaction loop)|{:.2}|{:.1}",
        service.rate,
        baseline.rate,
        service.rate / baseline.rate,
        service.peak_kib as f64 / 1024.0
    );
    check_outputs(config, plain);
}

/// What the baseline did.
struct Baseline {
    rate: f64,
    /// Records produced by output topic (last part of the name; tombstones counted apart).
    outputs: BTreeMap<String, usize>,
    dead_letters: usize,
}

/// The monitor's detection in a loop without transactions (see the module doc). Blocking.
fn plain_loop(config: &Config, inputs: &[String], records: usize) -> Baseline {
    let group = client::group_id(&config.kafka, "plain");
    let consumer: BaseConsumer = client::consumer_config(&config.kafka, &group)
        .create()
        .expect("consumer");
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).expect("subscribe");
    let producer: BaseProducer = client::producer_config(&config.kafka)
        .create()
        .expect("producer");
    let mut monitor =
        SecurityMonitor::new(config, IdSecret::development()).expect("security settings");
    let mut outputs = BTreeMap::new();
    let mut send_all = |records: Vec<OutputRecord>| {
        for record in records {
            let kind = match record.payload {
                Some(_) => record
                    .topic
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                None => "tombstones".to_owned(),
            };
            *outputs.entry(kind).or_insert(0) += 1;
            send(&producer, &record);
        }
    };
    let (mut seen, mut dead_letters, mut first) = (0, 0, None);
    let (mut committed, mut ticked) = (Instant::now(), Instant::now());
    while seen < records {
        if ticked.elapsed() >= Duration::from_secs(1) {
            send_all(monitor.on_tick(chrono::Utc::now().timestamp_millis()));
            ticked = Instant::now();
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = polled.expect("consume");
        first.get_or_insert_with(Instant::now);
        seen += 1;
        match monitor.transform(&InputRecord::from_message(&message)) {
            Transformed::Emitted { records, .. } => send_all(records),
            Transformed::DeadLetter(_) => dead_letters += 1,
            other => panic!("an input the monitor did not judge: {other:?}"),
        }
        consumer
            .store_offset_from_message(&message)
            .expect("store offset");
        producer.poll(Duration::ZERO);
        if committed.elapsed() >= Duration::from_millis(100) {
            // Nothing stored since the last commit is no reason to stop.
            let _ = consumer.commit_consumer_state(CommitMode::Async);
            committed = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let elapsed = first.expect("records").elapsed();
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    Baseline {
        rate: records as f64 / elapsed.as_secs_f64(),
        outputs,
        dead_letters,
    }
}

fn send(producer: &BaseProducer, output: &OutputRecord) {
    let mut record = output.base_record();
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                producer.poll(Duration::from_millis(1));
            }
            Err((err, _)) => panic!("producing: {err}"),
        }
    }
}

/// The binary's committed alerts and actions are the baseline's, id for id (both are a function
/// of the inputs, and both derive ids under the development secret); blocklist records follow
/// the wall clock, so only their counts are printed. Nothing was dead-lettered.
fn check_outputs(config: &Config, plain: &Config) {
    let ids = |topic: &str| {
        let mut ids: Vec<String> = load_support::read_topic(config, topic)
            .into_iter()
            .map(|v| {
                let v = v.expect("an alert or action, not a tombstone");
                v["id"].as_str().expect("an id").to_owned()
            })
            .collect();
        ids.sort_unstable();
        ids
    };
    for (service, baseline) in [
        (&config.topics.alerts, &plain.topics.alerts),
        (&config.topics.actions, &plain.topics.actions),
    ] {
        let (ours, theirs) = (ids(service), ids(baseline));
        assert!(!ours.is_empty(), "no records on {service}: no rule fired");
        assert_eq!(
            ours, theirs,
            "{service} differs from the baseline's {baseline}"
        );
        println!("{service}: {} records, the baseline's exactly", ours.len());
    }
    let blocklist = |topic: &str| {
        let values = load_support::read_topic(config, topic);
        let upserts = values
            .iter()
            .filter(|v| v.as_ref().is_some_and(Value::is_object));
        (
            upserts.count(),
            values.iter().filter(|v| v.is_none()).count(),
        )
    };
    let (ours, theirs) = (
        blocklist(&config.topics.blocklist),
        blocklist(&plain.topics.blocklist),
    );
    println!(
        "blocklist upserts/tombstones: service {}/{}, baseline {}/{}",
        ours.0, ours.1, theirs.0, theirs.1
    );
    let dead = load_support::read_topic(config, &config.topics.dead_letter);
    assert!(dead.is_empty(), "{} records dead-lettered", dead.len());
}
