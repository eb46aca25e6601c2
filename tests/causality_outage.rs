//! The database goes away for 30 seconds mid-stream under the causality indexer: it pauses,
//! retries, and once the database is back every record is indexed exactly once — every node,
//! edge and conversation member, none lost, none doubled — and every record whose offset was
//! committed before the crash is indexed after it.
//!
//! The database is really stopped: the indexer writes to the private single-node Cassandra of
//! the support library's `private_node` (port 19042, shared with `sink_outage` under its lock
//! file), whose JVM the test kills (SIGKILL) and restarts on the same data. Records stream in
//! across the kill, and the last of them arrive while the node is down. Kafka is the shared
//! one.

use std::collections::BTreeSet;
use std::time::Duration;

use auditflow_integration_tests::causality::{IndexerSetup, linked, start_indexer};
use auditflow_integration_tests::kafka::{Input, Stream};
use auditflow_integration_tests::private_node::*;
use auditflow_integration_tests::store::{count_at, session_at};

const OUTAGE: Duration = Duration::from_secs(30);
const TOTAL: usize = 4_000;
/// Records produced only once the node is down.
const HELD: usize = 1_000;
const CONVERSATIONS: usize = 50;

fn time(i: usize) -> String {
    format!("2026-11-2{}T11:{:02}:{:02}Z", i % 3, (i / 60) % 60, i % 60)
}

/// Every `causality_nodes` id on `nodes`.
async fn indexed_ids(nodes: &[String], keyspace: &str) -> BTreeSet<String> {
    session_at(nodes)
        .await
        .query_unpaged(format!("SELECT id FROM {keyspace}.causality_nodes"), ())
        .await
        .expect("reading causality_nodes")
        .into_rows_result()
        .expect("rows")
        .rows::<(String,)>()
        .expect("ids")
        .map(|r| r.expect("id").0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_database_outage_delays_but_loses_and_doubles_nothing() {
    let mut setup = IndexerSetup::new("cau_outage").await;
    let mut node = outage::start_node(&mut setup.config).await;
    let nodes = setup.config.store.nodes.clone();
    outage::migrate_then_fail_fast(&mut setup.config).await;

    let topic = setup.config.topics.user_action.clone();
    let records: Vec<Input> = (0..TOTAL)
        .map(|i| {
            let conversation = format!("conv-{}", i % CONVERSATIONS);
            linked(
                &format!("ua-{i}"),
                "audit.user.action",
                &time(i),
                &format!("in-{i}"),
                &conversation,
            )
        })
        .collect();
    // 800 records a second: the head is still arriving when the node dies (the indexer is
    // writing), and the held records only come while it is down.
    let pace = (200, Duration::from_millis(250));
    let stream = Stream::paced(&setup.bootstrap, &topic, records, HELD, pace);

    let (shutdown, mut task) = start_indexer(&setup.config);
    let keyspace = setup.config.store.keyspace.clone();
    // The crash lands once the indexer has committed offsets of some hundreds of records (so
    // there are acknowledged records to lose) and before the last records exist (so it is
    // mid-stream): the stream's head alone holds more than that.
    const COMMITTED_FIRST: i64 = 500;
    const _: () = assert!((TOTAL - HELD) as i64 > COMMITTED_FIRST);
    let group = setup.group();
    let watched = (setup.bootstrap.as_str(), group.as_str(), topic.as_str());
    outage::wait_for_commits(watched, COMMITTED_FIRST, &mut task, "indexer").await;
    let before_kill = count_at(&nodes, &keyspace, "causality_nodes").await;
    let produced_at_kill = stream.produced();
    let killed = outage::kill(&mut node);
    // The rest of the stream arrives while the database is away.
    stream.finish().await;
    outage::keep_down(killed, OUTAGE, &task, "indexer").await;
    let (committed_before_restart, acknowledged) = outage::acknowledged(watched, TOTAL);
    let restart = node.boot().await;
    let indexed = indexed_ids(&nodes, &keyspace).await;
    outage::assert_none_lost(&acknowledged, &indexed, &committed_before_restart);
    eprintln!(
        "killed the node with {before_kill} indexed and {produced_at_kill} of {TOTAL} \
         produced; {} committed before the restart, all indexed; answering again {:.1} s after \
         its restart, holding {}",
        acknowledged.len(),
        restart.as_secs_f32(),
        indexed.len()
    );
    assert!(
        indexed.len() as i64 >= before_kill,
        "rows indexed before the kill were lost: {before_kill} then {}",
        indexed.len()
    );

    setup.wait_caught_up().await;
    let total = TOTAL as i64;
    // Every record once: one node, one edge to its cause, one place in its conversation.
    for table in ["causality_nodes", "causality_children", "causality_members"] {
        assert_eq!(count_at(&nodes, &keyspace, table).await, total, "{table}");
    }
    // Each cause has one child on one day; each conversation has records on all 3 days.
    assert_eq!(
        count_at(&nodes, &keyspace, "causality_child_days").await,
        total
    );
    assert_eq!(
        count_at(&nodes, &keyspace, "causality_member_days").await,
        (CONVERSATIONS * 3) as i64
    );
    let index = setup.index().await;
    let conversation = index.members("conv-7", 1_000).await.unwrap();
    assert_eq!(conversation.items.len(), TOTAL / CONVERSATIONS);

    shutdown.trigger();
    task.await
        .expect("indexer task")
        .expect("indexer stopped cleanly");
    setup.drop_keyspace().await;
    drop(node);
}
