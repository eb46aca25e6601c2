//! A rebalance mid-stream: while records stream in, a second `auditflow run sink` joins the
//! group (the partitions split between the two), stores some of them, and leaves again with
//! SIGTERM (its partitions move back); the store then holds every record exactly once.
//!
//! Each step is checked, not assumed: the two instances' own metrics (`/metrics` on ports the
//! test chose) show the split and that the joiner consumed records, the joiner exits 0, and
//! the last records are produced only after it left, so both rebalances land mid-stream on
//! any machine. The binaries are the ones `cargo build` put next to this test.

#[path = "sink_common.rs"]
mod common;

use auditflow_integration_tests::terminate;
use common::*;

/// Records per input topic streamed across both rebalances, faster than one sink stores them
/// (so both rebalances find work batched or in flight, whichever partitions move); the last
/// HELD of each only after the joiner left.
const STREAMED: usize = 1_000;
const HELD: usize = 200;
/// Records per input topic produced once the group has settled with both instances, each
/// with a key of its own so that every partition, whoever holds it, gets some.
const JOINED: usize = 40;
/// Four input topics of three partitions (`SinkSetup`).
const PARTITIONS: u64 = 12;

/// Record number `i` of one input topic.
type RecordOf<'a> = dyn Fn(usize) -> Input + 'a;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_leaves_mid_stream_loses_and_doubles_nothing() {
    let setup = SinkSetup::new("sink_rebal").await;
    let t = setup.config.topics.clone();
    let users: Vec<String> = (0..50).map(|u| format!("rebal-user-{u}")).collect();
    let user = |i: usize| users[i % users.len()].as_str();
    // Record `i` of each topic, each with a key of its own (the helpers key security events
    // and alerts by their one ip, which would leave two partitions of their topics empty).
    let topics: [(&str, &str, &RecordOf); 4] = [
        ("ua", &t.user_action, &|i| user_action(i, user(i))),
        ("se", &t.security_event, &|i| security_event(i, user(i))),
        ("al", &t.alerts, &alert),
        ("da", &t.data_access, &|i| data_access(i, user(i))),
    ];
    let record =
        |(name, _, make): &(&str, &str, &RecordOf), i: usize| keyed(make(i), format!("{name}-{i}"));
    let streams: Vec<Stream> = topics
        .iter()
        .map(|topic| {
            let records = (0..STREAMED).map(|i| record(topic, i)).collect();
            Stream::start(&setup.bootstrap, topic.1, records, HELD)
        })
        .collect();

    let (port_a, port_b) = (free_port(), free_port());
    let mut first = spawn_slowed(setup.command(&["run", "sink"]), port_a);
    let keyspace = setup.config.store.keyspace.clone();
    eventually("the first sink to store something", async || {
        if let Ok(Some(status)) = first.try_wait() {
            panic!("the first sink exited early: {status}");
        }
        stored_or_zero(&keyspace).await > 0
    })
    .await;

    // A second instance joins mid-stream.
    let mut joiner = spawn_slowed(setup.command(&["run", "sink"]), port_b);
    let produced = |streams: &[Stream]| streams.iter().map(Stream::produced).sum::<usize>();
    let (at_join, produced_at_join) = (stored_or_zero(&keyspace).await, produced(&streams));
    wait_for_split_at(&[port_a, port_b], auditflow_sink::SERVICE, PARTITIONS).await;
    let (at_split, produced_at_split) = (stored_or_zero(&keyspace).await, produced(&streams));
    for topic in &topics {
        let joined: Vec<Input> = (STREAMED..STREAMED + JOINED)
            .map(|i| record(topic, i))
            .collect();
        produce(&setup.bootstrap, topic.1, &joined).await;
    }
    eventually("the joiner to consume records", async || {
        if let Ok(Some(status)) = joiner.try_wait() {
            panic!("the joiner exited early: {status}");
        }
        consumed_at(port_b, auditflow_sink::SERVICE) > 0
    })
    .await;
    let by_joiner = consumed_at(port_b, auditflow_sink::SERVICE);
    let (at_leave, produced_at_leave) = (stored_or_zero(&keyspace).await, produced(&streams));

    // ... and leaves: SIGTERM finishes its work, commits, leaves the group, exits 0.
    let exit = terminate(&mut joiner);
    assert!(exit.success(), "the joiner's SIGTERM exit: {exit}");
    for stream in streams {
        stream.finish().await;
    }
    setup.wait_caught_up().await;
    eprintln!(
        "stored/produced: {at_join}/{produced_at_join} when the joiner started, \
         {at_split}/{produced_at_split} once the partitions were split, \
         {at_leave}/{produced_at_leave} when it was told to leave, having consumed {by_joiner}"
    );

    let per_topic = (STREAMED + JOINED) as i64;
    assert_eq!(
        setup.stored_ids().await,
        4 * per_topic,
        "every record, once"
    );
    // One row per record in its class's per-user table, and per security record by time.
    let general = 2 * per_topic; // user actions and data access
    assert_eq!(count(&keyspace, "audit_general_by_user").await, general);
    let security = 2 * per_topic; // security events and alerts
    assert_eq!(count(&keyspace, "audit_security_by_user").await, security);
    assert_eq!(count(&keyspace, "security_by_time").await, security);
    assert_eq!(count(&keyspace, "records_by_time").await, 4 * per_topic);

    let exit = terminate(&mut first);
    assert!(exit.success(), "the first sink's SIGTERM exit: {exit}");
    setup.drop_keyspace().await;
}
