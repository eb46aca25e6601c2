//! The tools' client against the real Kafka: a `Publisher` delivers what it is given (awaited
//! one by one, or queued with deliveries awaited later), a `GroupProbe` sees a group's members
//! without joining it, `CommittedOffsets` reads what a group committed, and a `TopicReader`
//! reads a topic from its beginning.
//!
//! Needs the local stack (`cargo xtask up`); fails, never skips, when Kafka is down.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auditflow_core::config::KafkaSettings;
use auditflow_runtime::kafka::client;
use auditflow_runtime::kafka::inspect::{CommittedOffsets, GroupProbe, TopicReader};
use auditflow_runtime::kafka::publisher::Publisher;
use auditflow_runtime::kafka::topics::{TopicSpec, ensure_topics};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

mod support;

use support::bootstrap;

const DEADLINE: Duration = Duration::from_secs(120);

fn settings() -> KafkaSettings {
    KafkaSettings {
        bootstrap_servers: bootstrap(),
        ..KafkaSettings::default()
    }
}

/// Creates `topic` with two partitions.
async fn two_partitions(settings: &KafkaSettings, topic: &str) {
    ensure_topics(
        settings,
        &[TopicSpec {
            name: topic.to_owned(),
            partitions: 2,
            replication_factor: 1,
            config: Vec::new(),
        }],
    )
    .await
    .expect("topic");
}

#[tokio::test(flavor = "multi_thread")]
async fn published_records_arrive_and_a_reading_group_is_seen_by_the_probe() {
    let settings = settings();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("publisher-{run}");
    let group = format!("publisher-reader-{run}");
    two_partitions(&settings, &topic).await;

    let probe = GroupProbe::new(&settings).unwrap();
    assert_eq!(probe.members(&group, Duration::from_secs(10)).unwrap(), 0);

    let publisher = Publisher::new(&settings).unwrap();
    publisher
        .publish(&topic, b"k", b"first", Duration::from_secs(30))
        .await
        .expect("acknowledged");
    let mut deliveries = Vec::new();
    for i in 0..50 {
        let payload = format!("queued-{i}");
        let delivery = publisher
            .enqueue(&topic, format!("k{i}").as_bytes(), payload.as_bytes())
            .unwrap()
            .expect("a 50-record burst fits librdkafka's local queue");
        deliveries.push(delivery);
    }
    for delivery in deliveries {
        delivery.await.expect("acknowledged");
    }
    publisher.flush(Duration::from_secs(30)).unwrap();

    // Read it all back in a group of our own; meanwhile the probe sees its member.
    let consumer: BaseConsumer = client::consumer_config(&settings, &group).create().unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let mut seen = BTreeSet::new();
    let mut members_seen = 0;
    let started = Instant::now();
    while (seen.len() < 51 || members_seen == 0) && started.elapsed() < DEADLINE {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            seen.insert(String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap());
        }
        if members_seen == 0 {
            members_seen = probe.members(&group, Duration::from_secs(10)).unwrap();
        }
    }
    let expected: BTreeSet<String> = std::iter::once("first".to_owned())
        .chain((0..50).map(|i| format!("queued-{i}")))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(members_seen, 1);

    // What the reader commits is what CommittedOffsets sees.
    let before = CommittedOffsets::of(&settings, &group).unwrap();
    assert_eq!(before.total(&topic, 2, Duration::from_secs(10)).unwrap(), 0);
    let position = consumer.position().unwrap();
    consumer.commit(&position, CommitMode::Sync).unwrap();
    assert_eq!(
        before.total(&topic, 2, Duration::from_secs(10)).unwrap(),
        51
    );

    // A TopicReader in a group of its own reads the same records from the beginning.
    let reader = TopicReader::new(&settings, &format!("{group}-2"), &topic).unwrap();
    let mut read = BTreeSet::new();
    let started = Instant::now();
    while read.len() < 51 && started.elapsed() < DEADLINE {
        if let Some(record) = reader.next(Duration::from_millis(200)) {
            let record = record.unwrap();
            assert_eq!(record.topic, topic);
            read.insert(String::from_utf8(record.payload().to_vec()).unwrap());
        }
    }
    assert_eq!(read, expected);
}

/// `read_to_end` finishes on a topic written in transactions, whose last offset in each
/// partition is a commit marker no reader is handed (it used to wait for that offset until
/// its timeout).
#[tokio::test(flavor = "multi_thread")]
async fn a_transactional_topic_is_read_to_its_end() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let settings = settings();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("read-to-end-{run}");
    two_partitions(&settings, &topic).await;
    let producer: BaseProducer =
        client::transactional_producer_config(&settings, &format!("read-to-end-{run}"))
            .create()
            .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..10 {
        let key = format!("k{i}");
        producer
            .send(BaseRecord::to(&topic).key(&key).payload("v"))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer
        .commit_transaction(Duration::from_secs(30))
        .unwrap();
    // The commit returns once the coordinator decided; the markers that make the records
    // stable follow. "Now" is once the last stable offsets reach the high watermarks.
    let stable: BaseConsumer = client::consumer_config(&settings, "read-to-end-probe")
        .create()
        .unwrap();
    let high: BaseConsumer = client::consumer_config(&settings, "read-to-end-probe")
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    let ends = |c: &BaseConsumer| -> i64 {
        (0..2)
            .map(|p| {
                c.fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .sum()
    };
    let started = Instant::now();
    while ends(&stable) < ends(&high) {
        assert!(
            started.elapsed() < DEADLINE,
            "the transaction never became stable"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let timeout = Duration::from_secs(30);
    let started = Instant::now();
    let records = auditflow_runtime::kafka::inspect::read_to_end(&settings, &topic, timeout)
        .expect("read to the end");
    assert_eq!(records.len(), 10);
    // Well within the timeout: the end was recognised, not waited out.
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
}
