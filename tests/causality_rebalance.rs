//! A rebalance mid-stream: while records stream in, a second `auditflow run causality-indexer`
//! joins the group (the partitions split between the two), indexes some of them, and leaves
//! again with SIGTERM; the causality tables then hold every record exactly once — every node,
//! edge and conversation member, none lost, none twice.
//!
//! As in `sink_rebalance`: the instances' own metrics show the split and that the joiner
//! consumed records, the joiner exits 0, and the last records are produced only after it
//! left, so both rebalances land mid-stream on any machine.

use auditflow_integration_tests::causality::{IndexerSetup, linked};
use auditflow_integration_tests::kafka::keyed;
use auditflow_integration_tests::processes::terminate;
use auditflow_integration_tests::sink::{JoinAndLeave, RecordOf};
use auditflow_integration_tests::store::count;
use auditflow_store::Store;

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

    // Record `i` of each topic, with a key of its own.
    let record = |name: &'static str, ty: &'static str| {
        move |i: usize| {
            let id = format!("{name}-{i}");
            let conversation = format!("conv-{name}-{}", i % CONVERSATIONS);
            let cause = format!("cause-{id}");
            keyed(linked(&id, ty, &time(i), &cause, &conversation), id)
        }
    };
    let (ua, da) = (
        record("ua", "audit.user.action"),
        record("da", "audit.data.access"),
    );
    let (se, al) = (
        record("se", "audit.security.event"),
        record("al", "security.alert"),
    );
    let ac = record("ac", "security.action");
    let topics: [(&str, &RecordOf); 5] = [
        (&t.user_action, &ua),
        (&t.data_access, &da),
        (&t.security_event, &se),
        (&t.alerts, &al),
        (&t.actions, &ac),
    ];
    let plan = JoinAndLeave {
        bootstrap: &setup.bootstrap,
        service: auditflow_causality_indexer::SERVICE,
        partitions: PARTITIONS,
        topics: &topics,
        streamed: STREAMED,
        held: HELD,
        joined: JOINED,
    };
    let mut first = plan
        .run(
            || setup.command(&["run", "causality-indexer"]),
            async || count(&ks, "causality_nodes").await,
        )
        .await;
    setup.wait_caught_up().await;

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
