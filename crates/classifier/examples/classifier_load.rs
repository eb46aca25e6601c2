//! Load harness (run on demand, not part of the test suite): how fast the classifier goes on
//! this machine next to the Kafka it reads, compared with a consumer that merely reads the same
//! topic, measured in the same run; and the classifier's peak RSS.
//!
//! ```text
//! cargo build --release -p auditflow-cli
//! cargo run --release -p auditflow-classifier --example classifier_load -- [EVENTS] [PATH/TO/auditflow]
//! ```
//!
//! It produces EVENTS (default 300 000) CloudEvents to a fresh 6-partition topic, reads them all
//! once with the harness's consumer settings (the read-only ceiling), runs the same consume →
//! decode → classify → produce loop without transactions over them (the baseline the
//! exactly-once loop is held to: `plain_loop`), then runs the real `auditflow run classifier`
//! binary over them and watches its committed offsets. Rates are taken from the first record
//! (or commit) to the last, so start-up and group join are not counted. Needs the local stack
//! (`cargo xtask up`). `AUDITFLOW_*` variables set for the harness reach the binary (e.g.
//! `AUDITFLOW_KAFKA__TRANSACTION_MAX_RECORDS`), not the harness's own loops, which keep the
//! defaults: one setting of the service can be compared at a time.
//!
//! `LOAD_USERS=N` spreads the events over N users (default 5,000), each its events' key:
//! `LOAD_USERS=1` puts every event on one partition (a hot key).
//!
//! `LOAD_INSTANCES=2,3` then runs the same events again through 2, then 3 instances of the
//! binary in one fresh group each (scaling, against the single instance of the same run). Each
//! count's rate is taken from the first moment the group has committed something *and* is
//! stable with every instance a member, to its last commit: instances start one after the
//! other, and the rebalances while the later ones join (each a round of revocations and
//! transactional producers fenced and re-initialised) are start-up, not throughput.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditflow_core::classify::Classified;
use auditflow_core::config::KafkaSettings;
use auditflow_core::{Classifier, Config};
use auditflow_runtime::InputRecord;
use auditflow_runtime::kafka::client;
use auditflow_runtime::kafka::cloudevents::{decode_event, structured_record};
use auditflow_runtime::kafka::inspect::{CommittedOffsets, GroupProbe, TopicReader};
use auditflow_runtime::kafka::publisher::Publisher;
use auditflow_runtime::kafka::topics::{TopicSpec, ensure_topics, planned_topics};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

const PARTITIONS: i32 = 6;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args
        .next()
        .map_or(300_000, |n| n.parse().expect("EVENTS is a number"));
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/auditflow".into());
    let bootstrap = std::env::var("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:9092".into());
    let run = format!("load{}", std::process::id());
    let input = format!("{run}.user.events");

    let mut settings = Config::default().kafka;
    settings.bootstrap_servers = bootstrap.clone();
    create_topic(&settings, &input).await;
    let started = Instant::now();
    produce(&settings, &input, events).await;
    println!(
        "produced {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut config = Config::default();
    config.kafka.bootstrap_servers = bootstrap.clone();
    let read_rate = tokio::task::spawn_blocking({
        let (config, input) = (config.clone(), input.clone());
        move || read_only(&config, &input, events)
    })
    .await
    .expect("reader");
    println!("read-only consumer:  {read_rate:>9.0} events/s");

    let mut plain = config.clone();
    let t = &mut plain.topics;
    t.user_action = format!("{run}.plain.audit.user.action");
    t.data_access = format!("{run}.plain.audit.data.access");
    t.security_event = format!("{run}.plain.audit.security.event");
    ensure_topics(&plain.kafka, &planned_topics(&plain.topics))
        .await
        .expect("baseline topics");
    let plain_rate = tokio::task::spawn_blocking({
        let input = input.clone();
        move || plain_loop(&plain, &input, events)
    })
    .await
    .expect("baseline loop");
    println!(
        "no-transaction loop: {plain_rate:>9.0} events/s  ({:.0}% of read-only)",
        100.0 * plain_rate / read_rate
    );

    let (rate, peak_rss_kib, cpu_s) = classify(&binary, &bootstrap, &run, &input, events, 1).await;
    println!(
        "classifier:          {rate:>9.0} events/s  ({:.0}% of read-only, {:.2} of the no-transaction loop)",
        100.0 * rate / read_rate,
        rate / plain_rate
    );
    println!(
        "classifier peak RSS: {:>9.1} MiB",
        peak_rss_kib as f64 / 1024.0
    );
    println!(
        "classifier CPU:      {:>9.2} s for the run ({:.1} µs per event)",
        cpu_s,
        cpu_s * 1e6 / events as f64
    );
    // One line per figure for `cargo xtask bench`: figure|value|baseline|ratio|peak RSS MiB.
    println!(
        "BENCH|classifier events/s (exactly-once)|{rate:.0}|{plain_rate:.0} (same loop, no transactions)|{:.2}|{:.1}",
        rate / plain_rate,
        peak_rss_kib as f64 / 1024.0
    );
    // Scaling: the same events again, by 2, 3, ... instances of one group (fresh each time).
    for instances in scaling_runs() {
        let (scaled, peak, cpu) =
            classify(&binary, &bootstrap, &run, &input, events, instances).await;
        println!(
            "{instances} classifiers:       {scaled:>9.0} events/s  ({:.2} of one instance), \
             peak RSS {:.1} MiB per instance at most, CPU {:.1} µs per event",
            scaled / rate,
            peak as f64 / 1024.0,
            cpu * 1e6 / events as f64
        );
        println!(
            "BENCH|{instances} classifiers events/s|{scaled:.0}|{rate:.0} (one instance)|{:.2}|{:.1}",
            scaled / rate,
            peak as f64 / 1024.0
        );
    }
}

/// `LOAD_INSTANCES=2,3`: the instance counts to run after the single one.
fn scaling_runs() -> Vec<usize> {
    std::env::var("LOAD_INSTANCES")
        .map(|list| {
            list.split(',')
                .filter(|n| !n.trim().is_empty())
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("LOAD_INSTANCES is a list of numbers")
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn create_topic(settings: &KafkaSettings, topic: &str) {
    let spec = TopicSpec {
        name: topic.to_owned(),
        partitions: PARTITIONS,
        replication_factor: 1,
        config: Vec::new(),
    };
    ensure_topics(settings, &[spec])
        .await
        .expect("create topic");
}

/// `LOAD_USERS` (default 5,000): how many users the events are spread over, each the Kafka key
/// of its events. `LOAD_USERS=1` is one hot user: every event on one partition.
fn users() -> usize {
    static USERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *USERS.get_or_init(|| {
        std::env::var("LOAD_USERS").map_or(5_000, |n| {
            n.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .expect("LOAD_USERS is a positive number")
        })
    })
}

/// A mix like real traffic: most inputs give one record, failed logins two.
fn event(i: usize) -> String {
    let user = format!("user-{}", i % users());
    let (ty, data) = match i % 10 {
        0 => (
            "user.login.attempt",
            format!(
                r#"{{"user_id":"{user}","success":false,"ip_address":"10.0.{}.{}"}}"#,
                i % 250,
                i % 200
            ),
        ),
        1 | 2 => (
            "user.login.attempt",
            format!(r#"{{"user_id":"{user}","success":true}}"#),
        ),
        3 => (
            "user.profile.updated",
            format!(r#"{{"user_id":"{user}","changes":{{"name":"x"}}}}"#),
        ),
        4 => (
            "user.data.read",
            format!(r#"{{"user_id":"{user}","data_type":"orders","record_count":3}}"#),
        ),
        5 => ("system.job.finished", r#"{"outcome":"success"}"#.to_owned()),
        _ => (
            "user.page.view",
            format!(r#"{{"user_id":"{user}","page":"/home"}}"#),
        ),
    };
    format!(
        r#"{{"specversion":"1.0","id":"ev-{i}","source":"load","type":"{ty}","time":"2026-11-20T10:00:00Z","data":{data},"useragent":"Mozilla/5.0","sessionid":"s-{i}"}}"#
    )
}

async fn produce(settings: &KafkaSettings, topic: &str, events: usize) {
    // Larger batches and a deeper local queue than the services use: only the setup speeds up.
    let mut settings = settings.clone();
    for (key, value) in [
        ("linger.ms", "20"),
        ("queue.buffering.max.messages", "500000"),
    ] {
        settings.properties.insert(key.into(), value.into());
    }
    let publisher = Publisher::new(&settings).expect("producer");
    for chunk in (0..events).collect::<Vec<_>>().chunks(20_000) {
        let values: Vec<(String, String)> = chunk
            .iter()
            .map(|i| (format!("user-{}", i % users()), event(*i)))
            .collect();
        let sends = values.iter().map(|(key, value)| {
            publisher.publish(
                topic,
                key.as_bytes(),
                value.as_bytes(),
                Duration::from_secs(60),
            )
        });
        for result in futures::future::join_all(sends).await {
            result.expect("produce");
        }
    }
}

/// Reads every event once with the harness's consumer settings, detaching each record as the
/// harness does; events/s from the first record to the last.
fn read_only(config: &Config, topic: &str, events: usize) -> f64 {
    let group = format!("{topic}-reader");
    let reader = TopicReader::new(&config.kafka, &group, topic).expect("consumer");
    let mut seen = 0;
    let mut first = None;
    while seen < events {
        if let Some(record) = reader.next(Duration::from_millis(500)) {
            std::hint::black_box(record.expect("consume"));
            first.get_or_insert_with(Instant::now);
            seen += 1;
        }
    }
    events as f64 / first.expect("records").elapsed().as_secs_f64()
}

/// The classifier's loop without transactions, the baseline of the exactly-once one: each
/// record decoded and classified as the service does (`auditflow_classifier`'s transform: the
/// runtime's `decode_event`, the core's `Classifier`, `structured_record`), its outputs
/// produced by the runtime's idempotent producer (`client::producer_config`), offsets stored per record and
/// committed asynchronously every 100 ms. events/s from the first record until every output
/// is acknowledged.
fn plain_loop(config: &Config, topic: &str, events: usize) -> f64 {
    let consumer: BaseConsumer = client::consumer_config(&config.kafka, &format!("{topic}-plain"))
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let producer: BaseProducer = client::producer_config(&config.kafka)
        .create()
        .expect("producer");
    let classifier = Classifier::new(config).expect("classifier");
    let mut seen = 0;
    let mut first = None;
    let mut committed = Instant::now();
    while seen < events {
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = polled.expect("consume");
        first.get_or_insert_with(Instant::now);
        seen += 1;
        let record = InputRecord::from_message(&message);
        if let Ok(decoded) = decode_event(&record, classifier.limits(), chrono::Utc::now())
            && let Classified::Emit(outputs) = classifier.classify(&decoded.event, decoded.received)
        {
            for output in outputs {
                let key = Some(output.key.into_bytes());
                let record =
                    structured_record(output.topic, key, output.ty, &output.id, output.value);
                send(&producer, &record);
            }
        }
        consumer
            .store_offset_from_message(&message)
            .expect("store offset");
        producer.poll(Duration::ZERO);
        if committed.elapsed() >= Duration::from_millis(100) {
            // Nothing stored yet since the last commit is not an error worth stopping for.
            let _ = consumer.commit_consumer_state(CommitMode::Async);
            committed = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let elapsed = first.expect("records").elapsed();
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    events as f64 / elapsed.as_secs_f64()
}

fn send(producer: &BaseProducer, output: &auditflow_runtime::OutputRecord) {
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

/// Runs `instances` of the real binary, one group, over the topic; events/s from the group's
/// first commit to its last, the highest peak RSS (VmHWM) of an instance and the CPU time they
/// used from their start (user + system, summed), read just before they are stopped.
async fn classify(
    binary: &str,
    bootstrap: &str,
    run: &str,
    input: &str,
    events: usize,
    instances: usize,
) -> (f64, u64, f64) {
    let group_prefix = format!("{run}-{instances}-");
    let spawned = Instant::now();
    let children: Vec<_> = (0..instances)
        .map(|_| spawn_classifier(binary, bootstrap, run, &group_prefix))
        .collect();

    let mut settings = Config::default().kafka;
    settings.bootstrap_servers = bootstrap.to_owned();
    let group = format!("{group_prefix}classifier");
    let watcher = CommittedOffsets::of(&settings, &group).expect("watcher");
    let prober = GroupProbe::new(&settings).expect("group probe");
    let mut first: Option<(Instant, i64)> = None;
    let peak = |children: &[std::process::Child]| {
        children
            .iter()
            .map(|c| vm_hwm_kib(c.id()))
            .max()
            .unwrap_or(0)
    };
    let mut peak_kib = 0;
    let done = loop {
        let committed = watcher
            .total(input, PARTITIONS, Duration::from_secs(10))
            .expect("committed");
        peak_kib = peak_kib.max(peak(&children));
        if committed > 0
            && first.is_none()
            && prober
                .stable_with(&group, instances, Duration::from_secs(5))
                .unwrap_or(false)
        {
            first = Some((Instant::now(), committed));
        }
        if committed as usize >= events {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    peak_kib = peak_kib.max(peak(&children));
    let cpu_s: f64 = children.iter().map(|c| cpu_seconds(c.id())).sum();
    for mut child in children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().expect("classifier exit");
        assert!(status.success(), "classifier exited with {status}");
    }
    // Too few events for the rate between commits (the group was stable only when most were
    // done, or never before the end): from spawn instead, start-up and group join included —
    // a slower, honest figure.
    let rate = match first {
        Some((start, at_start)) if (at_start as usize) * 2 <= events => {
            (events as i64 - at_start) as f64 / done.duration_since(start).as_secs_f64()
        }
        first => {
            let held = first.map_or(events as i64, |(_, at_start)| at_start);
            println!(
                "  ({instances} instance(s): {held} of {events} events were committed before the \
                 group was stable; rate from spawn, start-up included: run more events for the \
                 steady rate)"
            );
            events as f64 / done.duration_since(spawned).as_secs_f64()
        }
    };
    (rate, peak_kib, cpu_s)
}

/// One `auditflow run classifier` over the run's topics, in the group of `group_prefix`.
fn spawn_classifier(
    binary: &str,
    bootstrap: &str,
    run: &str,
    group_prefix: &str,
) -> std::process::Child {
    Command::new(binary)
        .args(["run", "classifier"])
        .env("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", bootstrap)
        .env("AUDITFLOW_KAFKA__GROUP_PREFIX", group_prefix)
        .env(
            "AUDITFLOW_TOPICS__CLASSIFIER_INPUTS",
            format!("['^{run}\\.user\\..+']"),
        )
        .env(
            "AUDITFLOW_TOPICS__USER_ACTION",
            format!("{run}.audit.user.action"),
        )
        .env(
            "AUDITFLOW_TOPICS__DATA_ACCESS",
            format!("{run}.audit.data.access"),
        )
        .env(
            "AUDITFLOW_TOPICS__SECURITY_EVENT",
            format!("{run}.audit.security.event"),
        )
        .env("AUDITFLOW_TOPICS__DEAD_LETTER", format!("{run}.audit.dlq"))
        .env("AUDITFLOW_TOPICS__ALERTS", format!("{run}.security.alerts"))
        .env(
            "AUDITFLOW_TOPICS__ACTIONS",
            format!("{run}.security.actions"),
        )
        .env(
            "AUDITFLOW_TOPICS__BLOCKLIST",
            format!("{run}.security.blocklist"),
        )
        .env(
            "AUDITFLOW_TOPICS__SAMPLING",
            format!("{run}.audit.sampling.summary"),
        )
        .env("AUDITFLOW_METRICS__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{binary}: {e} (build it: cargo build --release -p auditflow-cli)")
        })
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`, in clock ticks of 1/100 s
/// on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 from the state (3).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            })
        })
        .flatten()
        .unwrap_or(0)
}
