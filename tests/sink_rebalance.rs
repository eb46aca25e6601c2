//! A rebalance mid-stream: while records stream in, a second `auditflow run sink` joins the
//! group (the partitions split between the two), stores some of them, and leaves again with
//! SIGTERM (its partitions move back); the store then holds every record exactly once.
//!
//! Each step is checked, not assumed: the two instances' own metrics (`/metrics` on ports the
//! test chose) show the split and that the joiner consumed records, the joiner exits 0, and
//! the last records are produced only after it left, so both rebalances land mid-stream on
//! any machine. The binaries are the ones `cargo build` put next to this test.

use auditflow_integration_tests::integrity::assert_sealed_once;
use auditflow_integration_tests::kafka::keyed;
use auditflow_integration_tests::processes::terminate;
use auditflow_integration_tests::sink::{
    JoinAndLeave, RecordOf, SinkSetup, alert, data_access, security_event, user_action,
};
use auditflow_integration_tests::store::{count, stored_or_zero};
use auditflow_store::Store;

/// Records per input topic streamed across both rebalances, faster than one sink stores them
/// (so both rebalances find work batched or in flight, whichever partitions move); the last
/// HELD of each only after the joiner left.
const STREAMED: usize = 1_000;
const HELD: usize = 200;
/// Records per input topic produced once the group has settled with both instances, each
/// with a key of its own so that every partition, whoever holds it, gets some.
const JOINED: usize = 40;
/// Six input topics of three partitions (`SinkSetup`): the four audit topics, the operator
/// log and the sampling summaries.
const PARTITIONS: u64 = 18;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_leaves_mid_stream_loses_and_doubles_nothing() {
    let mut setup = SinkSetup::new("sink_rebal").await;
    // Checkpoints fall before, during and after the second instance's stay.
    setup.config.integrity.checkpoint_every = 50;
    let t = setup.config.topics.clone();
    let users: Vec<String> = (0..50).map(|u| format!("rebal-user-{u}")).collect();
    let user = |i: usize| users[i % users.len()].as_str();
    // Record `i` of each topic, each with a key of its own (the helpers key security events
    // and alerts by their one ip, which would leave two partitions of their topics empty).
    let ua = |i| keyed(user_action(i, user(i)), format!("ua-{i}"));
    let se = |i| keyed(security_event(i, user(i)), format!("se-{i}"));
    let al = |i| keyed(alert(i), format!("al-{i}"));
    let da = |i| keyed(data_access(i, user(i)), format!("da-{i}"));
    let topics: [(&str, &RecordOf); 4] = [
        (&t.user_action, &ua),
        (&t.security_event, &se),
        (&t.alerts, &al),
        (&t.data_access, &da),
    ];
    let keyspace = setup.config.store.keyspace.clone();
    let plan = JoinAndLeave {
        bootstrap: &setup.bootstrap,
        service: auditflow_sink::SERVICE,
        partitions: PARTITIONS,
        topics: &topics,
        streamed: STREAMED,
        held: HELD,
        joined: JOINED,
    };
    let mut first = plan
        .run(
            || setup.command(&["run", "sink"]),
            async || stored_or_zero(&keyspace).await,
        )
        .await;
    setup.wait_caught_up().await;

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
    // The log is what an undisturbed run builds: one leaf per record, the same checkpoints.
    let store = Store::connect(&setup.config.store, &setup.config.retention)
        .await
        .unwrap();
    assert_sealed_once(
        &store,
        &setup.bootstrap,
        &setup.config,
        4 * per_topic as u64,
    )
    .await;

    let exit = terminate(&mut first);
    assert!(exit.success(), "the first sink's SIGTERM exit: {exit}");
    setup.drop_keyspace().await;
}
