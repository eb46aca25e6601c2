//! The at-least-once loop against the real Kafka, with an in-memory writer standing in for the
//! database: every record is written, failed writes are retried (with consumption paused, as
//! the in-flight bound is tiny), dead letters are produced, the watermark is committed, and a
//! clean shutdown commits everything so a restart writes only what is new; a partition revoked
//! while consumption was paused flows again when it comes back.
//!
//! Needs the local stack (`cargo xtask up`); fails, never skips, when Kafka is down.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditflow_core::config::KafkaSettings;
use auditflow_runtime::kafka::at_least_once::{self, WriteError, Written};
use auditflow_runtime::{
    BatchWriter, DeadLetter, Health, InputRecord, LoopSpec, Metrics, Shutdown,
};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

mod support;

use support::bootstrap;

const DEADLINE: Duration = Duration::from_secs(120);

/// A name no earlier run used: `{prefix}_{pid}_{microseconds since the epoch}`.
fn unique_run(prefix: &str) -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_micros();
    format!("{prefix}_{}_{micros}", std::process::id())
}

/// The loop of service `test` reading `topic` into `dead_letters`, its group named after
/// `run`, with `tuned`'s batch and bound settings.
fn loop_spec(run: &str, topic: &str, dead_letters: &str, tuned: KafkaSettings) -> LoopSpec {
    LoopSpec {
        service: "test".into(),
        inputs: vec![topic.to_owned()],
        dead_letter_topic: dead_letters.to_owned(),
        kafka: KafkaSettings {
            bootstrap_servers: bootstrap(),
            group_prefix: format!("{run}-"),
            batch_max_wait_ms: 10,
            commit_interval_ms: 50,
            ..tuned
        },
    }
}

/// Remembers what it wrote; fails its first `failures` calls; dead-letters payloads starting
/// with `bad`.
#[derive(Clone, Default)]
struct MemoryStore {
    written: Arc<Mutex<Vec<(i32, i64)>>>,
    failures: Arc<AtomicUsize>,
}

impl BatchWriter for MemoryStore {
    async fn write(&self, batch: &[InputRecord]) -> Result<Vec<Written>, WriteError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(WriteError::transient("database unavailable"));
        }
        let mut written = self.written.lock().unwrap();
        Ok(batch
            .iter()
            .map(|r| {
                if r.payload().starts_with(b"bad") {
                    Written::DeadLetter(DeadLetter::new("schema_violation", "test says so"))
                } else {
                    written.push((r.partition, r.offset));
                    Written::Row {
                        table: "memory",
                        event_time_ms: r.timestamp_ms,
                    }
                }
            })
            .collect())
    }
}

/// A record to produce: its payload (also its key) and headers.
type Outgoing = (String, Vec<(String, Vec<u8>)>);
/// A topic to create: name, partitions, topic-level configuration.
type NewTopicSpec<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

/// Produces each payload (keyed by itself) and returns where each landed: (partition, offset).
async fn produce(
    bootstrap: &str,
    topic: &str,
    payloads: impl Iterator<Item = String>,
) -> Vec<(i32, i64)> {
    let payloads: Vec<Outgoing> = payloads.map(|p| (p, Vec::new())).collect();
    produce_with_headers(bootstrap, topic, &payloads).await
}

/// Produces each payload with its headers (keyed by the payload); returns where each landed.
async fn produce_with_headers(
    bootstrap: &str,
    topic: &str,
    records: &[Outgoing],
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer");
    let sends = records.iter().map(|(p, headers)| {
        let headers = headers.iter().fold(OwnedHeaders::new(), |hs, (k, v)| {
            hs.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        producer.send(
            FutureRecord::to(topic)
                .key(p.as_str())
                .payload(p)
                .headers(headers),
            Duration::from_secs(30),
        )
    });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| {
            let delivered = r.map_err(|(e, _)| e).expect("produce");
            (delivered.partition, delivered.offset)
        })
        .collect()
}

async fn create_topics(bootstrap: &str, topics: &[NewTopicSpec<'_>]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions, config)| {
            config.iter().fold(
                NewTopic::new(name, *partitions, TopicReplication::Fixed(1)),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic");
    }
}

/// A dead letter as read back: key, value, headers (a header's last value wins).
struct Letter {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Letter {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Where the letter says its original is.
    fn source(&self) -> (String, i32, i64) {
        (
            self.header("auditflow.source.topic")
                .expect("source topic")
                .to_owned(),
            self.header("auditflow.source.partition")
                .expect("source partition")
                .parse()
                .expect("a partition number"),
            self.header("auditflow.source.offset")
                .expect("source offset")
                .parse()
                .expect("an offset"),
        )
    }
}

/// Reads `n` records of `topic` from the beginning.
fn read_letters(bootstrap: &str, topic: &str, n: usize) -> Vec<Letter> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("reader");
    reader.subscribe(&[topic]).expect("subscribe");
    let mut letters = Vec::new();
    let started = Instant::now();
    while letters.len() < n {
        assert!(
            started.elapsed() < DEADLINE,
            "only {} dead letters of {n}",
            letters.len()
        );
        if let Some(m) = reader.poll(Duration::from_millis(200)) {
            let m = m.expect("dead letter");
            letters.push(Letter {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    letters
}

fn offsets(bootstrap: &str, group: &str, topic: &str) -> (Vec<i64>, Vec<i64>) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let partitions = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata")
        .topics()[0]
        .partitions()
        .len() as i32;
    let ends: Vec<i64> = (0..partitions)
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

/// Waits until the group of `spec` has committed everything now in `topic`.
async fn wait_committed(spec: &LoopSpec, topic: &str) {
    let group = format!("{}test", spec.kafka.group_prefix);
    let started = Instant::now();
    loop {
        let (committed, ends) = offsets(&spec.kafka.bootstrap_servers, &group, topic);
        if committed == ends {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "never committed everything: {committed:?} of {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the loop of `spec` into `store` until everything in `topic` is committed, checks it
/// read ready meanwhile, and shuts it down.
async fn run_until_committed(spec: &LoopSpec, store: &MemoryStore, topic: &str) {
    let member = Member::start(spec, store.clone(), true);
    wait_committed(spec, topic).await;
    assert!(member.health.is_ready());
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_everything_retries_failures_and_commits_the_watermark() {
    let bootstrap = bootstrap();
    let run = unique_run("alo");
    let topic = format!("{run}.in");
    create_topics(
        &bootstrap,
        &[(&topic, 3, &[]), (&format!("{run}.dlq"), 1, &[])],
    )
    .await;
    let landed = produce(
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
    let bad: BTreeSet<(i32, i64)> = (0..1000)
        .filter(|i| i % 100 == 7)
        .map(|i| landed[i])
        .collect();

    let spec = loop_spec(
        &run,
        &topic,
        &format!("{run}.dlq"),
        KafkaSettings {
            batch_max_records: 20,
            // Tiny, so consumption pauses (and resumes) many times over.
            max_in_flight_records: 50,
            ..KafkaSettings::default()
        },
    );
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

    // Every dead letter: the original bytes, the reason and detail, and where the original
    // is — together naming exactly the ten bad records.
    let letters = read_letters(&bootstrap, &format!("{run}.dlq"), 10);
    let mut sources = BTreeSet::new();
    for letter in &letters {
        assert_eq!(letter.value.as_deref(), Some(&b"bad"[..]), "original value");
        assert_eq!(letter.key.as_deref(), Some(&b"bad"[..]), "original key");
        assert_eq!(letter.header("auditflow.error"), Some("schema_violation"));
        assert_eq!(
            letter.header("auditflow.error.detail"),
            Some("test says so")
        );
        assert_eq!(letter.header("auditflow.service"), Some("test"));
        let (source_topic, partition, offset) = letter.source();
        assert_eq!(source_topic, topic);
        sources.insert((partition, offset));
        assert_eq!(letter.headers.len(), 6, "{:?}", letter.headers);
    }
    assert_eq!(
        sources, bad,
        "each bad record once, by its own partition and offset"
    );

    // A clean shutdown committed everything: a restart writes only what is new.
    store.written.lock().unwrap().clear();
    let _ = produce(&bootstrap, &topic, (0..30).map(|i| format!("new{i}"))).await;
    run_until_committed(&spec, &store, &topic).await;
    assert_eq!(store.written.lock().unwrap().len(), 30);
}

/// Issue 12.2.6 in the at-least-once loop: dead letters too big for the producer (a megabyte
/// of headers) or for the dead-letter topic (whose `max.message.bytes` is smaller than the
/// producer's limit) once were retried until shutdown, stalling their partition. They are
/// dead-lettered within the limits, saying what they left out, and the partition flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_fit_the_producer_and_the_topic_and_the_partition_flows() {
    let bootstrap = bootstrap();
    let run = unique_run("alofit");
    let topic = format!("{run}.in");
    let dlq = format!("{run}.dlq");
    create_topics(
        &bootstrap,
        &[
            (&topic, 1, &[("max.message.bytes", "3000000")]),
            // Far less than the producer's 1,000,000: only the broker knows it.
            (&dlq, 1, &[("max.message.bytes", "50000")]),
        ],
    )
    .await;
    let pad: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("pad-{i}"), vec![b'p'; 100_000]))
        .collect();
    let records = vec![
        ("r0".to_owned(), Vec::new()),
        // A megabyte of headers: over the producer's limit.
        ("bad".to_owned(), pad),
        // 200 kB: under the producer's limit, over the topic's.
        (
            format!("bad{}", "v".repeat(200_000)),
            vec![("ce_id".to_owned(), b"x".to_vec())],
        ),
        ("r3".to_owned(), Vec::new()),
    ];
    produce_with_headers(&bootstrap, &topic, &records).await;

    let spec = loop_spec(&run, &topic, &dlq, KafkaSettings::default());
    let store = MemoryStore::default();
    run_until_committed(&spec, &store, &topic).await;
    let written: BTreeSet<i64> = store.written.lock().unwrap().iter().map(|w| w.1).collect();
    assert_eq!(
        written,
        BTreeSet::from([0, 3]),
        "the records around the bad ones"
    );

    let letters = read_letters(&bootstrap, &dlq, 2);
    for letter in &letters {
        let size = letter.key.as_ref().map_or(0, Vec::len)
            + letter.value.as_ref().map_or(0, Vec::len)
            + letter
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        assert!(size < 50_000, "{size} bytes");
        assert_eq!(letter.value, None, "the value goes first");
        assert_eq!(letter.header("auditflow.error"), Some("schema_violation"));
        assert_eq!(letter.header("auditflow.service"), Some("test"));
    }
    let at = |offset: i64| {
        letters
            .iter()
            .find(|l| l.source() == (topic.clone(), 0, offset))
            .unwrap_or_else(|| panic!("no dead letter for offset {offset}"))
    };
    let headers = at(1);
    assert_eq!(headers.header("auditflow.error.value_dropped"), Some("3"));
    assert_eq!(
        headers.header("auditflow.error.headers_dropped"),
        Some("12")
    );
    assert_eq!(headers.key.as_deref(), Some(&b"bad"[..]));
    let value = at(2);
    assert_eq!(
        value.header("auditflow.error.value_dropped"),
        Some("200003")
    );
    assert_eq!(value.header("auditflow.error.headers_dropped"), None);
    assert_eq!(value.header("auditflow.error.key_dropped"), Some("200003"));
    assert_eq!(value.header("ce_id"), Some("x"), "a small header stays");
}

/// A [`MemoryStore`] whose writes wait until `open` says so.
#[derive(Clone)]
struct GatedStore {
    store: MemoryStore,
    open: tokio::sync::watch::Receiver<bool>,
}

impl BatchWriter for GatedStore {
    async fn write(&self, batch: &[InputRecord]) -> Result<Vec<Written>, WriteError> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.store.write(batch).await
    }
}

/// Produces `n` records named `{prefix}{i}` to partition `partition` of `topic`.
async fn produce_to(bootstrap: &str, topic: &str, partition: i32, prefix: &str, n: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    let payloads: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let sends = payloads.iter().map(|p| {
        producer.send(
            FutureRecord::<str, str>::to(topic)
                .partition(partition)
                .payload(p),
            Duration::from_secs(30),
        )
    });
    for r in futures::future::join_all(sends).await {
        r.map_err(|(e, _)| e).expect("produce");
    }
}

/// One member of the test group: a loop writing to a [`GatedStore`].
struct Member {
    open: tokio::sync::watch::Sender<bool>,
    store: GatedStore,
    metrics: Metrics,
    health: Health,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<auditflow_runtime::Result<()>>,
}

impl Member {
    /// Starts the loop of `spec` writing into `store`, its writes held until `open`.
    fn start(spec: &LoopSpec, store: MemoryStore, open: bool) -> Self {
        let (open, gate) = tokio::sync::watch::channel(open);
        let store = GatedStore { store, open: gate };
        let (metrics, health, shutdown) = (
            Metrics::new().expect("metrics"),
            Health::new(),
            Shutdown::new(),
        );
        let task = tokio::spawn(at_least_once::spawn(
            spec.clone(),
            store.clone(),
            metrics.service("test"),
            health.register("test", false),
            shutdown.clone(),
        ));
        Self {
            open,
            store,
            metrics,
            health,
            shutdown,
            task,
        }
    }

    /// The value of this member's gauge `name`, if set.
    fn gauge(&self, name: &str) -> Option<i64> {
        let prefix = format!("{name}{{service=\"test\"}} ");
        self.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
    }

    /// Shuts the loop down (it leaves the group) and returns what it wrote.
    async fn stop(self) -> BTreeSet<(i32, i64)> {
        self.shutdown.trigger();
        self.task.await.expect("task").expect("the loop ran");
        let written = self.store.store.written.lock().unwrap();
        written.iter().copied().collect()
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < DEADLINE, "never saw: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// librdkafka keeps a partition's pause across a revocation and a later assignment. A member
/// paused by backpressure that loses a partition, resumes (what it then owns), and gets the
/// partition back must resume it too — it once sat paused for good, committing nothing
/// (`tests/sink_rebalance.rs` found it: "group … did not catch up").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_revoked_while_paused_flows_when_it_comes_back() {
    let bootstrap = bootstrap();
    let run = unique_run("alopause");
    let topic = format!("{run}.in");
    create_topics(
        &bootstrap,
        &[(&topic, 2, &[]), (&format!("{run}.dlq"), 1, &[])],
    )
    .await;
    for partition in 0..2 {
        produce_to(
            &bootstrap,
            &topic,
            partition,
            &format!("first{partition}-"),
            50,
        )
        .await;
    }
    let spec = loop_spec(
        &run,
        &topic,
        &format!("{run}.dlq"),
        KafkaSettings {
            batch_max_records: 10,
            max_in_flight_records: 20,
            ..KafkaSettings::default()
        },
    );
    // A takes both partitions and, its writes held, pauses with 20 records in flight (the
    // gauge is set after the loop paused).
    let a = Member::start(&spec, MemoryStore::default(), false);
    wait_for("A paused with 20 records in flight", || {
        a.gauge("auditflow_assigned_partitions") == Some(2)
            && a.gauge("auditflow_in_flight_records") == Some(20)
    })
    .await;

    // B joins and takes one partition from A, paused as it is.
    let b = Member::start(&spec, MemoryStore::default(), true);
    wait_for("the partitions split", || {
        a.gauge("auditflow_assigned_partitions") == Some(1)
            && b.gauge("auditflow_assigned_partitions") == Some(1)
    })
    .await;

    // A's writes go through: it resumes what it owns now, and drains it.
    a.open.send(true).unwrap();
    wait_for("A drained its partition", || {
        a.gauge("auditflow_in_flight_records") == Some(0)
            && a.store.store.written.lock().unwrap().len() >= 50
    })
    .await;

    // B leaves; its partition comes back to A, which is not paused now.
    let b_wrote = b.stop().await;
    wait_for("A owns both partitions again", || {
        a.gauge("auditflow_assigned_partitions") == Some(2)
    })
    .await;
    // Fewer than would pause A again (a pause and resume would resume it all, hiding it).
    for partition in 0..2 {
        produce_to(
            &bootstrap,
            &topic,
            partition,
            &format!("then{partition}-"),
            5,
        )
        .await;
    }
    wait_committed(&spec, &topic).await;
    let mut written = a.stop().await;
    written.extend(b_wrote);
    let expected: BTreeSet<(i32, i64)> =
        (0..2).flat_map(|p| (0..55).map(move |o| (p, o))).collect();
    assert_eq!(written, expected, "every record written");
}
