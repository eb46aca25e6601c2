//! The at-least-once loop against the real Kafka, with an in-memory writer standing in for the
//! database: every record is written, failed writes are retried (with consumption paused, as
//! the in-flight bound is tiny), dead letters are produced, the watermark is committed, and a
//! clean shutdown commits everything so a restart writes only what is new.
//!
//! Needs the local stack (`cargo xtask up`); fails, never skips, when Kafka is down.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditflow_core::config::KafkaSettings;
use auditflow_kafka::at_least_once::{self, Stored, WriteError};
use auditflow_kafka::{BatchWriter, DeadLetter, Health, InputRecord, LoopSpec, Metrics, Shutdown};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

const DEADLINE: Duration = Duration::from_secs(120);

fn bootstrap() -> String {
    let bootstrap =
        std::env::var("AUDITFLOW_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let first = bootstrap
        .split(',')
        .next()
        .unwrap_or_default()
        .parse()
        .expect("host:port");
    assert!(
        TcpStream::connect_timeout(&first, Duration::from_secs(3)).is_ok(),
        "Kafka not reachable at {bootstrap}: run `cargo xtask up`"
    );
    bootstrap
}

/// Remembers what it wrote; fails its first `failures` calls; dead-letters payloads `bad`.
#[derive(Clone, Default)]
struct MemoryStore {
    written: Arc<Mutex<Vec<(i32, i64)>>>,
    failures: Arc<AtomicUsize>,
}

impl BatchWriter for MemoryStore {
    async fn write(&self, batch: &[InputRecord]) -> Result<Vec<Stored>, WriteError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(WriteError::transient("database unavailable"));
        }
        let mut written = self.written.lock().unwrap();
        Ok(batch
            .iter()
            .map(|r| {
                if r.payload() == b"bad" {
                    Stored::DeadLetter(DeadLetter::new("schema_violation", "test says so"))
                } else {
                    written.push((r.partition, r.offset));
                    Stored::Written {
                        table: "memory",
                        event_time_ms: r.timestamp_ms,
                    }
                }
            })
            .collect())
    }
}

async fn produce(bootstrap: &str, topic: &str, payloads: impl Iterator<Item = String>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    let payloads: Vec<String> = payloads.collect();
    let sends = payloads.iter().map(|p| {
        producer.send(
            FutureRecord::to(topic).key(p.as_str()).payload(p),
            Duration::from_secs(30),
        )
    });
    for r in futures::future::join_all(sends).await {
        r.map_err(|(e, _)| e).expect("produce");
    }
}

fn offsets(bootstrap: &str, group: &str, topic: &str) -> (Vec<i64>, Vec<i64>) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let ends: Vec<i64> = (0..3)
        .map(|p| {
            tpl.add_partition(topic, p);
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect();
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    let committed = committed
        .elements()
        .iter()
        .map(|e| {
            if let Offset::Offset(o) = e.offset() {
                o
            } else {
                0
            }
        })
        .collect();
    (committed, ends)
}

async fn run_until_committed(spec: &LoopSpec, store: &MemoryStore, topic: &str) {
    let shutdown = Shutdown::new();
    let metrics = Metrics::new().expect("metrics");
    let health = Health::new();
    let task = tokio::spawn(at_least_once::spawn(
        spec.clone(),
        store.clone(),
        metrics.service("test"),
        health.register("test", false),
        shutdown.clone(),
    ));
    let group = format!("{}test", spec.kafka.group_prefix);
    let started = Instant::now();
    loop {
        let (committed, ends) = offsets(&spec.kafka.bootstrap_servers, &group, topic);
        if committed == ends {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "never committed everything: {committed:?} of {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(health.is_ready());
    shutdown.trigger();
    task.await.expect("task").expect("loop ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_everything_retries_failures_and_commits_the_watermark() {
    let bootstrap = bootstrap();
    let run = format!(
        "alo_{}_{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let topic = format!("{run}.in");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    for r in admin
        .create_topics(
            &[
                NewTopic::new(&topic, 3, TopicReplication::Fixed(1)),
                NewTopic::new(&format!("{run}.dlq"), 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        )
        .await
        .expect("create topics")
    {
        r.expect("topic");
    }
    produce(
        &bootstrap,
        &topic,
        (0..1000).map(|i| {
            if i % 100 == 7 {
                "bad".to_owned()
            } else {
                format!("r{i}")
            }
        }),
    )
    .await;

    let spec = LoopSpec {
        service: "test".into(),
        inputs: vec![topic.clone()],
        dead_letter_topic: format!("{run}.dlq"),
        kafka: KafkaSettings {
            bootstrap_servers: bootstrap.clone(),
            group_prefix: format!("{run}-"),
            batch_max_records: 20,
            batch_max_wait_ms: 10,
            // Tiny, so consumption pauses (and resumes) many times over.
            max_in_flight_records: 50,
            commit_interval_ms: 50,
            ..KafkaSettings::default()
        },
    };
    let store = MemoryStore::default();
    store.failures.store(3, Ordering::SeqCst);
    run_until_committed(&spec, &store, &topic).await;

    let written: BTreeSet<(i32, i64)> = store.written.lock().unwrap().iter().copied().collect();
    assert_eq!(written.len(), 990, "every good record written");
    assert_eq!(
        store.failures.load(Ordering::SeqCst),
        0,
        "failed writes were retried"
    );

    // The dead letters, original bytes and a reason.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("{run}-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("reader");
    reader
        .subscribe(&[&format!("{run}.dlq")])
        .expect("subscribe");
    let mut letters = 0;
    let started = Instant::now();
    while letters < 10 {
        assert!(started.elapsed() < DEADLINE, "only {letters} dead letters");
        if let Some(m) = reader.poll(Duration::from_millis(200)) {
            let m = m.expect("dead letter");
            assert_eq!(m.payload(), Some(&b"bad"[..]));
            letters += 1;
        }
    }

    // A clean shutdown committed everything: a restart writes only what is new.
    store.written.lock().unwrap().clear();
    produce(&bootstrap, &topic, (0..30).map(|i| format!("new{i}"))).await;
    run_until_committed(&spec, &store, &topic).await;
    assert_eq!(store.written.lock().unwrap().len(), 30);
}
