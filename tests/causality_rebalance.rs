//! A rebalance mid-stream: while records stream in, a second `auditflow run causality-indexer`
//! joins the group (the partitions split between the two), indexes some of them, and leaves
//! again with SIGTERM; the causality tables then hold every record exactly once — every node,
//! edge and conversation member, none lost, none twice.
//!
//! As in `sink_rebalance`: the instances' own metrics show the split and that the joiner
//! consumed records, the joiner exits 0, and the last records are produced only after it
//! left, so both rebalances land mid-stream on any machine.

#[path = "causality_common.rs"]
mod common;

use auditflow_integration_tests::terminate;
use auditflow_store::Store;
use common::*;

/// Records per input topic streamed across both rebalances; the last HELD of each only after
/// the joiner left.
const STREAMED: usize = 1_000;
const HELD: usize = 200;
/// Records per input topic produced once the group has settled with both instances, each
/// with a key of its own.
const JOINED: usize = 40;
/// Five input topics of three partitions (`IndexerSetup`).
const PARTITIONS: u64 = 15;
/// Conversations per topic; each has records on all three days of `time`.
const CONVERSATIONS: usize = 20;

fn time(i: usize) -> String {
    format!("2026-11-2{}T12:{:02}:{:02}Z", i % 3, (i / 60) % 60, i % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_leaves_mid_stream_loses_and_doubles_nothing() {
    let setup = IndexerSetup::new("cau_rebal").await;
    let t = setup.config.topics.clone();
    let store = Store::connect(&setup.config.store, &setup.config.retention)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let ks = setup.config.store.keyspace.clone();

    let topics = [
        ("ua", "audit.user.action", &t.user_action),
        ("da", "audit.data.access", &t.data_access),
        ("se", "audit.security.event", &t.security_event),
        ("al", "security.alert", &t.alerts),
        ("ac", "security.action", &t.actions),
    ];
    let record = |(name, ty, _): &(&str, &str, &String), i: usize| {
        let id = format!("{name}-{i}");
        let conversation = format!("conv-{name}-{}", i % CONVERSATIONS);
        let cause = format!("cause-{id}");
        keyed(linked(&id, ty, &time(i), &cause, &conversation), id)
    };
    let streams: Vec<Stream> = topics
        .iter()
        .map(|topic| {
            let records = (0..STREAMED).map(|i| record(topic, i)).collect();
            Stream::start(&setup.bootstrap, topic.2, records, HELD)
        })
        .collect();
    let produced = |streams: &[Stream]| streams.iter().map(Stream::produced).sum::<usize>();
    let service = auditflow_causality_indexer::SERVICE;
    let command = || setup.command(&["run", "causality-indexer"]);

    let (port_a, port_b) = (free_port(), free_port());
    let mut first = spawn_slowed(command(), port_a);
    eventually("the first indexer to write something", async || {
        if let Ok(Some(status)) = first.try_wait() {
            panic!("the first indexer exited early: {status}");
        }
        count(&ks, "causality_nodes").await > 0
    })
    .await;

    // A second instance joins mid-stream.
    let (at_join, produced_at_join) = (count(&ks, "causality_nodes").await, produced(&streams));
    let mut joiner = spawn_slowed(command(), port_b);
    wait_for_split_at(&[port_a, port_b], service, PARTITIONS).await;
    let (at_split, produced_at_split) = (count(&ks, "causality_nodes").await, produced(&streams));
    for topic in &topics {
        let joined: Vec<Input> = (STREAMED..STREAMED + JOINED)
            .map(|i| record(topic, i))
            .collect();
        produce(&setup.bootstrap, topic.2, &joined).await;
    }
    eventually("the joiner to consume records", async || {
        if let Ok(Some(status)) = joiner.try_wait() {
            panic!("the joiner exited early: {status}");
        }
        consumed_at(port_b, service) > 0
    })
    .await;
    let by_joiner = consumed_at(port_b, service);
    let (at_leave, produced_at_leave) = (count(&ks, "causality_nodes").await, produced(&streams));

    // ... and leaves: SIGTERM finishes its work, commits, leaves the group, exits 0.
    let exit = terminate(&mut joiner);
    assert!(exit.success(), "the joiner's SIGTERM exit: {exit}");
    for stream in streams {
        stream.finish().await;
    }
    setup.wait_caught_up().await;
    eprintln!(
        "indexed/produced: {at_join}/{produced_at_join} when the joiner started, \
         {at_split}/{produced_at_split} once the partitions were split, \
         {at_leave}/{produced_at_leave} when it was told to leave, having consumed {by_joiner}"
    );

    // Every record once: one node, one edge to its cause (each cause has one child on one
    // day), one place in its conversation.
    let total = (topics.len() * (STREAMED + JOINED)) as i64;
    for table in [
        "causality_nodes",
        "causality_children",
        "causality_child_days",
        "causality_members",
    ] {
        assert_eq!(count(&ks, table).await, total, "{table}");
    }
    let member_days = (topics.len() * CONVERSATIONS * 3) as i64;
    assert_eq!(count(&ks, "causality_member_days").await, member_days);

    let exit = terminate(&mut first);
    assert!(exit.success(), "the first indexer's SIGTERM exit: {exit}");
    setup.drop_keyspace().await;
}
