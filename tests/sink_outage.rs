//! The database goes away for 30 seconds mid-stream: the sink pauses, retries, and once the
//! database is back every record is stored exactly once — nothing lost, nothing doubled.
//!
//! The database is really stopped: the sink writes to a private single-node Cassandra
//! (`cargo xtask cassandra-node`: the shared stack's jars and configs, its own folder
//! `.stack/cassandra-outage/`, cluster `auditflow-cassandra-outage`, CQL port 19042, storage
//! port 17000, heap 768m) whose JVM the test kills (SIGKILL: no clean shutdown, no drain), keeps
//! down for 30 s while records keep arriving, and starts again on the same data. The shared
//! Cassandra on 9042 that other tests use is never touched; Kafka is the shared one.
//!
//! The node is started with the xtask binary `cargo xtask test` names in `AUDITFLOW_XTASK`,
//! or else `cargo run -p xtask` (which fetches the Cassandra jars with Maven if the stack has
//! not yet); `xtask cassandra-node` becomes the JVM, so the child process the test kills is
//! Cassandra itself. Its output goes to `node.log` in its folder. The folder is kept between
//! runs, since a fresh one takes a minute or two to boot on a busy machine (each run uses a
//! fresh keyspace), and a lock file in it lets one run at a time use the node. The node is
//! killed when the test ends, also when it fails or is interrupted (Ctrl-C reaches the JVM
//! too); one left running by a test process killed outright is killed by the next run (its
//! pid is kept in `node.pid`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::collections::BTreeSet;

use auditflow_integration_tests::integrity::assert_sealed_once;
use auditflow_integration_tests::kafka::{Input, produce};
use auditflow_integration_tests::private_node::*;
use auditflow_integration_tests::sink::{SinkSetup, start_sink, user_action};
use auditflow_integration_tests::store::{count_at, session_at, stored_or_zero_at};
use auditflow_store::Store;

const OUTAGE: Duration = Duration::from_secs(30);
const TOTAL: usize = 6_000;

/// Every `records_by_id` row on `nodes`.
async fn stored_id_set(nodes: &[String], keyspace: &str) -> BTreeSet<String> {
    session_at(nodes)
        .await
        .query_unpaged(format!("SELECT event_id FROM {keyspace}.records_by_id"), ())
        .await
        .expect("reading records_by_id")
        .into_rows_result()
        .expect("rows")
        .rows::<(String,)>()
        .expect("event ids")
        .map(|r| r.expect("event id").0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_database_outage_delays_but_loses_and_doubles_nothing() {
    let mut setup = SinkSetup::new("sink_outage").await;
    // Checkpoints fall before, across and after the outage.
    setup.config.integrity.checkpoint_every = 100;
    let mut node = outage::start_node(&mut setup.config).await;
    let nodes = setup.config.store.nodes.clone();
    outage::migrate_then_fail_fast(&mut setup.config).await;
    // A stream of 6,000 records, 200 at a time, that goes on across the kill: the node dies
    // while the sink is writing, and records keep arriving while it is away.
    let produced = Arc::new(AtomicUsize::new(0));
    let stream = tokio::spawn({
        let (bootstrap, topic) = (
            setup.bootstrap.clone(),
            setup.config.topics.user_action.clone(),
        );
        let produced = produced.clone();
        async move {
            let users: Vec<String> = (0..40).map(|u| format!("outage-user-{u}")).collect();
            let records: Vec<Input> = (0..TOTAL).map(|i| user_action(i, &users[i % 40])).collect();
            for chunk in records.chunks(200) {
                produce(&bootstrap, &topic, chunk).await;
                produced.fetch_add(chunk.len(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });

    let (shutdown, mut task) = start_sink(&setup.config);
    let keyspace = setup.config.store.keyspace.clone();
    let topic = setup.config.topics.user_action.clone();
    // The crash lands once the sink has committed offsets (so there are acknowledged records
    // to lose) and while the stream is still going (so it is mid-stream).
    let group = setup.group();
    let watched = (setup.bootstrap.as_str(), group.as_str(), topic.as_str());
    outage::wait_for_commits(watched, 1, &mut task, "sink").await;

    let before_kill = stored_or_zero_at(&nodes, &keyspace).await;
    let produced_at_kill = produced.load(Ordering::SeqCst);
    let killed = outage::kill(&mut node);
    outage::keep_down(killed, OUTAGE, &task, "sink").await;
    let down = killed.elapsed();
    let produced_while_down = produced.load(Ordering::SeqCst) - produced_at_kill;
    let (committed_before_restart, acknowledged) = outage::acknowledged(watched, TOTAL);
    let restart = node.boot().await;
    let after_restart = stored_or_zero_at(&nodes, &keyspace).await;
    // With `commitlog_sync: periodic` this failed.
    let stored_after_restart = stored_id_set(&nodes, &keyspace).await;
    outage::assert_none_lost(
        &acknowledged,
        &stored_after_restart,
        &committed_before_restart,
    );
    eprintln!(
        "killed the node with {before_kill} stored and {produced_at_kill} produced; down \
         {:.1} s, {produced_while_down} produced meanwhile; {} committed before the restart, \
         all stored; answering again {:.1} s after its restart, holding {after_restart}",
        down.as_secs_f32(),
        acknowledged.len(),
        restart.as_secs_f32()
    );
    assert!(
        after_restart >= before_kill,
        "rows stored before the kill were lost: {before_kill} then {after_restart}"
    );

    stream.await.expect("producing the stream");
    setup.wait_caught_up().await;
    assert_eq!(setup.stored_ids().await, TOTAL as i64, "every record, once");
    assert_eq!(
        count_at(&nodes, &keyspace, "audit_general_by_user").await,
        TOTAL as i64
    );
    // The log is what an undisturbed run builds: one leaf per record, the same checkpoints.
    let store = Store::connect(&setup.config.store, &setup.config.retention)
        .await
        .unwrap();
    assert_sealed_once(&store, &setup.bootstrap, &setup.config, TOTAL as u64).await;
    shutdown.trigger();
    task.await
        .expect("sink task")
        .expect("sink stopped cleanly");
    setup.drop_keyspace().await;
    drop(node);
}
