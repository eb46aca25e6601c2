//! Smoke test of the Kafka the tests run against: topics are created through the admin API,
//! and transactions work end to end — the two things every auditflow service relies on
//! (classifier and security-monitor write exactly-once through transactions, and their
//! readers use `isolation.level=read_committed`).

use std::time::Duration;

use auditflow_integration_tests::stack::{require_kafka, unique_name};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Generous: the first transaction on a fresh broker creates `__transaction_state`.
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_sees_committed_records_and_never_aborted_ones() {
    let bootstrap = require_kafka();
    let topic = unique_name("smoke_txn");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("creating the admin client");
    create_topic(&admin, &topic).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", unique_name("smoke_txn_producer"))
        .create()
        .expect("creating the transactional producer");
    blocking(&producer, "init_transactions", |p| {
        p.init_transactions(TIMEOUT)
    })
    .await;

    for (value, commit) in [("committed", true), ("aborted", false), ("last", true)] {
        producer.begin_transaction().expect("begin_transaction");
        producer
            .send(FutureRecord::to(&topic).key("k").payload(value), TIMEOUT)
            .await
            .unwrap_or_else(|(e, _)| panic!("sending {value:?}: {e}"));
        if commit {
            blocking(&producer, "commit_transaction", |p| {
                p.commit_transaction(TIMEOUT)
            })
            .await;
        } else {
            blocking(&producer, "abort_transaction", |p| {
                p.abort_transaction(TIMEOUT)
            })
            .await;
        }
    }

    assert_eq!(
        read_until_last(&bootstrap, &topic, "read_committed").await,
        ["committed", "last"],
        "a read_committed consumer must see committed records only"
    );
    assert_eq!(
        read_until_last(&bootstrap, &topic, "read_uncommitted").await,
        ["committed", "aborted", "last"],
        "a read_uncommitted consumer sees aborted records too"
    );

    admin
        .delete_topics(&[topic.as_str()], &AdminOptions::new())
        .await
        .expect("deleting the topic");
}

async fn create_topic(admin: &AdminClient<DefaultClientContext>, topic: &str) {
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("CreateTopics request");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("creating topic {name}: {code}"));
    }
}

/// The transaction calls block the calling thread (up to `TIMEOUT`): keep them off the runtime.
async fn blocking(
    producer: &FutureProducer,
    what: &str,
    call: impl FnOnce(&FutureProducer) -> KafkaResult<()> + Send + 'static,
) {
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || call(&producer))
        .await
        .expect("transaction call panicked")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Every value of partition 0, from the beginning up to and including `"last"`.
async fn read_until_last(bootstrap: &str, topic: &str, isolation: &str) -> Vec<String> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("smoke_txn_reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("creating the consumer");
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("naming the partition");
    consumer
        .assign(&partitions)
        .expect("assigning the partition");

    let mut values = Vec::new();
    while values.last().is_none_or(|v| v != "last") {
        let message = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("{isolation}: no record within {TIMEOUT:?}; read {values:?}")
            })
            .unwrap_or_else(|e| panic!("{isolation}: consuming: {e}"));
        let value = message
            .payload()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        values.push(value);
    }
    values
}
