//! A dead instance's open transaction holds the group's committed offsets (KIP-447: the broker
//! answers `UNSTABLE_OFFSET_COMMIT` until it expires the transaction), and the group
//! rebalances meanwhile. The instances that take the partitions over must start at the
//! committed offsets once the transaction is gone, never at the partitions' beginning:
//! librdkafka's own start-offset lookup does the latter when the assignment changes while it
//! waits (see `crates/runtime/src/kafka/rebalance.rs`), which re-published every output of the
//! partition — the duplicates the chaos harness found with unnamed classifiers.
//!
//! The dead instance is forged: a member of the classifier's group sends offsets to a
//! transaction of its own transactional id and never ends it (what a `kill -9` between
//! `send_offsets_to_transaction` and the commit leaves), then leaves the group.

use std::time::{Duration, Instant};

use auditflow_integration_tests::classifier::{
    Setup, actual_outputs, assigned_partitions, duplicated, expected_outputs, keyed_by_user,
    start_classifier, user_created,
};
use auditflow_integration_tests::kafka::{committed, produce, wait_caught_up};
use auditflow_integration_tests::stack::DEADLINE;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 2;
/// How long the forged transaction stays open before the broker aborts it.
const FORGED_TIMEOUT_MS: &str = "20000";

/// Joins the classifier's group, sends `offsets` to a transaction of a transactional id of its
/// own, and leaves the group with the transaction open. Returns the producer: dropping it
/// would not end the transaction either, but keeping it makes that plain.
fn forge_open_transaction(setup: &Setup, offsets: &TopicPartitionList) -> BaseProducer {
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .set("group.id", setup.group())
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("group member");
    member.subscribe(&[&setup.input]).expect("subscribe");
    let started = Instant::now();
    while member.assignment().expect("assignment").count() < PARTITIONS as usize {
        assert!(
            started.elapsed() < DEADLINE,
            "the forged member never joined"
        );
        let _ = member.poll(Duration::from_millis(100));
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .set(
            "transactional.id",
            format!("{}-dead-instance", setup.prefix),
        )
        .set("transaction.timeout.ms", FORGED_TIMEOUT_MS)
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).expect("init");
    producer.begin_transaction().expect("begin");
    producer
        .send_offsets_to_transaction(
            offsets,
            &member.group_metadata().expect("group metadata"),
            timeout,
        )
        .expect("offsets sent to the open transaction");
    drop(member); // leaves the group; the transaction stays open
    producer
}

/// Whether the group has settled with one member, which then owns every partition (as the
/// broker sees it: the member may still be looking up where its partitions start).
fn sole_member_assigned(setup: &Setup) -> bool {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .create()
        .expect("client");
    let group = setup.group();
    let Ok(list) = client.fetch_group_list(Some(&group), Duration::from_secs(5)) else {
        return false;
    };
    list.groups()
        .iter()
        .any(|g| g.name() == group && g.state() == "Stable" && g.members().len() == 1)
}

/// Whether a `read_committed` lookup of the group's offsets is refused as unstable now.
fn offsets_unstable(setup: &Setup) -> bool {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .set("group.id", setup.group())
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader");
    let mut query = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        query.add_partition(&setup.input, p);
    }
    match reader.committed_offsets(query, Duration::from_secs(3)) {
        Err(_) => true,
        Ok(list) => list.elements().iter().any(|e| e.error().is_err()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successors_start_at_the_committed_offsets_a_dead_transaction_held() {
    let setup = Setup::new("cls_open_txn", PARTITIONS).await;
    let first = user_created("otx", 0..300);
    produce(&setup.bootstrap, &setup.input, &keyed_by_user(&first, 0)).await;

    // Everything produced so far is classified and committed.
    let (stop, _, _, task) = start_classifier(&setup.config);
    wait_caught_up(&setup.bootstrap, &setup.group(), &setup.input).await;
    stop.trigger();
    task.await
        .expect("classifier task")
        .expect("classifier ran");
    let at_stop = committed(&setup.bootstrap, &setup.group(), &setup.input);
    assert_eq!(at_stop.len(), PARTITIONS as usize, "{at_stop:?}");
    assert!(at_stop.values().all(|o| *o > 0), "{at_stop:?}");

    // A dead instance's transaction holds those same offsets.
    let mut offsets = TopicPartitionList::new();
    for (p, o) in &at_stop {
        offsets
            .add_partition_offset(&setup.input, *p, Offset::Offset(*o))
            .expect("offset");
    }
    let _dead = forge_open_transaction(&setup, &offsets);
    assert!(
        offsets_unstable(&setup),
        "the forged transaction does not hold the group's offsets: the test would prove nothing"
    );

    let second = user_created("otx", 300..450);
    produce(&setup.bootstrap, &setup.input, &keyed_by_user(&second, 300)).await;

    // A successor takes every partition and waits for the offsets; a second one joins while
    // it waits, so the assignment changes under the wait.
    let (stop_b, metrics_b, _, task_b) = start_classifier(&setup.config);
    let started = Instant::now();
    while !sole_member_assigned(&setup) {
        assert!(
            started.elapsed() < DEADLINE,
            "the successor was never assigned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stop_c, metrics_c, _, task_c) = start_classifier(&setup.config);
    let started = Instant::now();
    while !(assigned_partitions(&metrics_b) > 0 && assigned_partitions(&metrics_c) > 0) {
        assert!(started.elapsed() < DEADLINE, "the partitions never split");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_caught_up(&setup.bootstrap, &setup.group(), &setup.input).await;
    for stop in [&stop_b, &stop_c] {
        stop.trigger();
    }
    for task in [task_b, task_c] {
        task.await
            .expect("classifier task")
            .expect("classifier ran");
    }

    let inputs: Vec<Vec<u8>> = first.into_iter().chain(second).collect();
    let expected = expected_outputs(&setup.config, &inputs);
    let actual = actual_outputs(&setup);
    assert_eq!(
        duplicated(&actual),
        0,
        "outputs published twice: a successor re-read partitions from before the committed offsets"
    );
    assert_eq!(actual, expected);
}
