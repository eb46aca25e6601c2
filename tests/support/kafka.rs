//! Kafka as the tests use it: creating topics, producing inputs (all at once or as a paced
//! [`Stream`]), the offsets a group has committed and a topic's ends, waiting until a group
//! has caught up, reading a topic's `read_committed` view to its end, and checking dead
//! letters. Waits are bounded by [`DEADLINE`] and fail the test; nothing asserts on timing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::stack::DEADLINE;

/// Creates `name` with `partitions` partitions (replication 1); panics if it fails, also when
/// the topic exists: the tests' names are fresh.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    create_topic_with(bootstrap, name, partitions, &[]).await;
}

/// [`create_topic`] with topic-level configuration, e.g. `("max.message.bytes", "3000000")`.
pub async fn create_topic_with(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    config: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = config.iter().fold(
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)),
        |topic, (key, value)| topic.set(key, value),
    );
    let results = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code}"));
    }
}

/// An input record: key, value, headers.
pub type Input = (Option<String>, Vec<u8>, Vec<(String, Vec<u8>)>);

/// An input record with only a value: no key, no headers (a structured-mode CloudEvent).
pub fn structured(value: &[u8]) -> Input {
    (None, value.to_vec(), Vec::new())
}

/// Produces `records` to `topic` and waits for every acknowledgement.
pub async fn produce(bootstrap: &str, topic: &str, records: &[Input]) {
    produce_with(&producer(bootstrap), topic, records).await;
}

/// An idempotent producer for [`produce_with`].
pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Room for the oversized records some tests send (to topics created to take them).
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer")
}

/// [`produce`] with a producer the caller keeps (one per stream, not one per call).
pub async fn produce_with(producer: &FutureProducer, topic: &str, records: &[Input]) {
    let sends = records.iter().map(|(key, value, headers)| {
        let headers = headers.iter().fold(OwnedHeaders::new(), |hs, (k, v)| {
            hs.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        let mut record = FutureRecord::to(topic).payload(value).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        producer.send(record, Duration::from_secs(60))
    });
    for result in futures::future::join_all(sends).await {
        result.unwrap_or_else(|(e, _)| panic!("producing: {e}"));
    }
}

/// Records produced to a topic by a task of their own, chunk after chunk, while the test does
/// something to their consumer (kills it, adds an instance), with the last `held` records kept
/// back until [`Stream::finish`]. Whatever happens before `finish` happens mid-stream on any
/// machine: however fast the consumer is, it cannot have seen the held records.
pub struct Stream {
    bootstrap: String,
    topic: String,
    produced: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    head: tokio::task::JoinHandle<()>,
    tail: Vec<Input>,
}

impl Stream {
    /// Chunks of 250, 50 ms apart: a stream, not one burst (not a timing expectation).
    pub fn start(bootstrap: &str, topic: &str, records: Vec<Input>, held: usize) -> Self {
        Self::paced(
            bootstrap,
            topic,
            records,
            held,
            (250, Duration::from_millis(50)),
        )
    }

    /// As [`start`](Self::start), `chunk` records at a time with `pause` between chunks.
    pub fn paced(
        bootstrap: &str,
        topic: &str,
        mut records: Vec<Input>,
        held: usize,
        (chunk, pause): (usize, Duration),
    ) -> Self {
        assert!(held > 0 && held < records.len(), "hold back some, not all");
        let tail = records.split_off(records.len() - held);
        let produced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let head = tokio::spawn({
            let (bootstrap, topic, produced) =
                (bootstrap.to_owned(), topic.to_owned(), produced.clone());
            async move {
                let producer = producer(&bootstrap);
                for chunk in records.chunks(chunk) {
                    produce_with(&producer, &topic, chunk).await;
                    produced.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(pause).await;
                }
            }
        });
        Self {
            bootstrap: bootstrap.to_owned(),
            topic: topic.to_owned(),
            produced,
            head,
            tail,
        }
    }

    /// Records acknowledged so far.
    pub fn produced(&self) -> usize {
        self.produced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for the rest of the head, then produces the held records.
    pub async fn finish(self) {
        self.head.await.expect("producing the stream");
        produce(&self.bootstrap, &self.topic, &self.tail).await;
    }
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer")
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect()
}

/// Each partition's end offset: its high watermark, past every record written, those of
/// transactions still open included. Asked `read_uncommitted`: asked `read_committed`, the
/// broker answers the last stable offset, which an open transaction holds back (a killed
/// producer's, until the broker aborts it seconds later), and a reader stopping there
/// misses what was committed after it. [`read_committed`] waits at this end until every
/// transaction below it is decided.
pub fn end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "auditflow-tests-watermarks")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("consumer");
    partitions(&c, topic)
        .into_iter()
        .map(|p| {
            (
                p,
                c.fetch_watermarks(topic, p, Duration::from_secs(30))
                    .expect("watermarks")
                    .1,
            )
        })
        .collect()
}

/// Offsets `group` has committed on `topic` (partitions without a commit are absent).
pub fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c = consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for p in partitions(&c, topic) {
        tpl.add_partition(topic, p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Waits until `group` has committed every record now in `topic` (so, for the classifier, its
/// outputs for them are committed too: same transaction).
pub async fn wait_caught_up(bootstrap: &str, group: &str, topic: &str) {
    let ends = end_offsets(bootstrap, topic);
    let started = Instant::now();
    loop {
        let done = committed(bootstrap, group, topic);
        if ends
            .iter()
            .all(|(p, end)| *end == 0 || done.get(p).is_some_and(|c| c >= end))
        {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "group {group} did not catch up: committed {done:?}, ends {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ids of the records of `topic` below each partition's offset in `below`.
pub fn ids_below(bootstrap: &str, topic: &str, below: &BTreeMap<i32, i64>) -> BTreeSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "auditflow-tests-outage-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in below.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut left: BTreeMap<i32, i64> = below.clone();
    left.retain(|_, end| *end > 0);
    let mut ids = BTreeSet::new();
    let started = Instant::now();
    while !left.is_empty() {
        assert!(
            started.elapsed() < DEADLINE,
            "reading {topic} below {below:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.expect("consuming");
        let Some(end) = left.get(&m.partition()).copied() else {
            continue;
        };
        if m.offset() < end {
            let value: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON record");
            ids.insert(value["id"].as_str().expect("id").to_owned());
        }
        if m.offset() + 1 >= end {
            left.remove(&m.partition());
        }
    }
    ids
}

/// One record as a `read_committed` reader sees it.
#[derive(Debug, Clone)]
pub struct Read {
    /// The topic it was read from.
    pub topic: String,
    /// The record's Kafka timestamp (ms since the epoch): for the monitors' outputs, when the
    /// producer wrote it.
    pub timestamp_ms: Option<i64>,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, as text (lossy), if it has one.
    pub key: Option<String>,
    /// Its value's bytes (empty for a null value).
    pub value: Vec<u8>,
    /// Its headers in order, a null value read as empty.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Read {
    /// The last header called `name`, as UTF-8 text (`None` if absent or not UTF-8).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The value parsed as JSON; panics when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("output value is JSON")
    }
}

/// Everything committed on `topic`, read to its end offsets with `isolation.level=read_committed`.
pub fn read_committed(bootstrap: &str, topic: &str) -> Vec<Read> {
    let c = consumer(bootstrap, "auditflow-tests-reader");
    let ends = end_offsets(bootstrap, topic);
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("offset");
    }
    c.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut out = Vec::new();
    loop {
        let position = c.position().expect("position");
        let done = ends.iter().all(|(p, end)| {
            *end == 0
                || matches!(position.find_partition(topic, *p).map(|e| e.offset()), Some(Offset::Offset(o)) if o >= *end)
        });
        if done {
            return out;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "reading {topic} did not reach its end {ends:?}"
        );
        if let Some(message) = c.poll(Duration::from_millis(200)) {
            let m = message.expect("consuming");
            out.push(Read {
                topic: m.topic().to_owned(),
                timestamp_ms: m.timestamp().to_millis(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().unwrap_or_default().to_vec(),
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
}

/// Checks one dead letter against SPEC section 6: the reason, a detail, where the original is
/// (topic, partition, offset) and who refused it — every `auditflow.*` header it names.
pub fn assert_dead_letter(
    letter: &Read,
    reason: &str,
    (topic, partition, offset): (&str, i32, i64),
    service: &str,
) {
    let context = format!("dead letter of {topic}[{partition}]@{offset}");
    assert_eq!(letter.header("auditflow.error"), Some(reason), "{context}");
    assert!(
        letter
            .header("auditflow.error.detail")
            .is_some_and(|d| !d.is_empty()),
        "{context}: a detail"
    );
    assert_eq!(
        letter.header("auditflow.source.topic"),
        Some(topic),
        "{context}"
    );
    assert_eq!(
        letter.header("auditflow.source.partition"),
        Some(partition.to_string().as_str()),
        "{context}"
    );
    assert_eq!(
        letter.header("auditflow.source.offset"),
        Some(offset.to_string().as_str()),
        "{context}"
    );
    assert_eq!(
        letter.header("auditflow.service"),
        Some(service),
        "{context}"
    );
}

/// The dead letter of the record at `partition`/`offset` of `topic`, found by its headers.
pub fn letter_of<'a>(letters: &'a [Read], topic: &str, partition: i32, offset: i64) -> &'a Read {
    letters
        .iter()
        .find(|l| {
            l.header("auditflow.source.topic") == Some(topic)
                && l.header("auditflow.source.partition") == Some(partition.to_string().as_str())
                && l.header("auditflow.source.offset") == Some(offset.to_string().as_str())
        })
        .unwrap_or_else(|| panic!("no dead letter for {topic}[{partition}]@{offset}"))
}

/// `record` with key `key` instead of its own.
pub fn keyed(record: Input, key: String) -> Input {
    (Some(key), record.1, record.2)
}
