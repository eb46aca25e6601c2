//! `kill -9` mid-stream: the real `auditflow run causality-indexer` binary is killed without
//! warning while it writes, restarted, and the causality tables then hold every record exactly
//! once — every node, edge and conversation member, none twice. The user actions stream in
//! across the kill and the last of them are produced only after it, so the test asserts that
//! the kill came after the first write and before the last record: it cannot silently become
//! a test without a crash. The restarted instance is stopped with SIGTERM and must exit 0.
//!
//! The binary is the one `cargo build` put next to this test (`target/<profile>/auditflow`);
//! `cargo xtask test` builds it.

use auditflow_integration_tests::causality::{IndexerSetup, linked};
use auditflow_integration_tests::kafka::{Input, Stream, produce};
use auditflow_integration_tests::stack::eventually;
use auditflow_integration_tests::store::count;
use auditflow_store::Store;
use auditflow_store::causality::trail::{TrailLimits, walk};

const ACTIONS: usize = 5_000;
/// Security events; each raises an alert, and each alert an action.
const CHAINS: usize = 300;
const TOTAL: i64 = (ACTIONS + 3 * CHAINS) as i64;
/// User actions produced only after the kill.
const HELD: usize = 1_000;
/// Conversations × the days their records fall on: 100 conversations of user actions, each
/// over all 3 days (`time`), and one per chain, on one day; every record is of one class.
const MEMBER_DAYS: i64 = 100 * 3 + CHAINS as i64;

fn time(i: usize) -> String {
    format!("2026-11-2{}T10:{:02}:{:02}Z", i % 3, (i / 60) % 60, i % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_indexes_every_record_exactly_once() {
    let setup = IndexerSetup::new("cau_crash").await;
    let t = setup.config.topics.clone();
    let actions: Vec<Input> = (0..ACTIONS)
        .map(|i| {
            let conversation = format!("conv-{}", i % 100);
            linked(
                &format!("ua-{i}"),
                "audit.user.action",
                &time(i),
                &format!("in-{i}"),
                &conversation,
            )
        })
        .collect();
    let chain = |prefix: &str, cause: &str, ty: &str| -> Vec<Input> {
        (0..CHAINS)
            .map(|i| {
                let conversation = format!("conv-se-{i}");
                linked(
                    &format!("{prefix}-{i}"),
                    ty,
                    &time(i),
                    &format!("{cause}-{i}"),
                    &conversation,
                )
            })
            .collect()
    };
    produce(
        &setup.bootstrap,
        &t.security_event,
        &chain("se", "in-se", "audit.security.event"),
    )
    .await;
    produce(
        &setup.bootstrap,
        &t.alerts,
        &chain("al", "se", "security.alert"),
    )
    .await;
    produce(
        &setup.bootstrap,
        &t.actions,
        &chain("ac", "al", "security.action"),
    )
    .await;

    // The schema first, so the tables can be counted while the indexer runs.
    let store = Store::connect(&setup.config.store, &setup.config.retention)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let ks = setup.config.store.keyspace.clone();

    // The user actions stream in across the kill, the last HELD only after it: the kill lands
    // mid-stream whatever the machine's speed.
    let stream = Stream::start(&setup.bootstrap, &t.user_action, actions, HELD);
    let mut victim = setup.spawn_indexer();
    eventually("the first indexer to write something", async || {
        if let Ok(Some(status)) = victim.try_wait() {
            panic!("the indexer exited early: {status}");
        }
        count(&ks, "causality_nodes").await > 0
    })
    .await;
    victim.kill().expect("kill -9"); // SIGKILL on Unix: no shutdown path runs
    victim.wait().expect("reaping the killed indexer");
    let produced = stream.produced();
    let at_kill = count(&ks, "causality_nodes").await;
    eprintln!(
        "killed with {at_kill} of {TOTAL} records indexed, {produced} of {ACTIONS} user actions \
         produced"
    );
    // The kill landed mid-stream: after the first write, before the last record existed.
    assert!(
        at_kill > 0 && at_kill < TOTAL && at_kill <= (produced + 3 * CHAINS) as i64,
        "not a kill mid-stream: {at_kill} of {TOTAL} indexed, {produced} produced"
    );
    stream.finish().await;

    let mut survivor = setup.spawn_indexer();
    setup.wait_caught_up().await;
    // Every record once: one node, one edge to its cause, one place in its conversation.
    assert_eq!(count(&ks, "causality_nodes").await, TOTAL);
    assert_eq!(count(&ks, "causality_children").await, TOTAL);
    assert_eq!(count(&ks, "causality_members").await, TOTAL);
    // Every cause has one child, on one day; 100 conversations of user actions over 3 days.
    assert_eq!(count(&ks, "causality_child_days").await, TOTAL);
    assert_eq!(count(&ks, "causality_member_days").await, MEMBER_DAYS);
    let index = setup.index().await;
    let conversation = index.members("conv-7", 1_000).await.unwrap();
    assert_eq!(conversation.items.len(), ACTIONS / 100);
    let t = walk(&index, "in-se-42", TrailLimits::default())
        .await
        .unwrap()
        .expect("known");
    assert_eq!(t.tree.children[0].node.id, "se-42");
    assert_eq!(t.tree.children[0].children[0].node.id, "al-42");
    assert_eq!(t.tree.children[0].children[0].children[0].node.id, "ac-42");

    // SIGTERM: finish, commit, leave the group, exit 0.
    let exit = auditflow_integration_tests::processes::terminate(&mut survivor);
    assert!(exit.success(), "SIGTERM exit: {exit}");
    setup.drop_keyspace().await;
}
