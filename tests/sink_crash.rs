//! `kill -9` mid-stream: the real `auditflow run sink` binary is killed without warning while
//! it writes, restarted, and the store then holds every record exactly once (re-delivery of
//! what was written but not committed overwrites, never duplicates). The records stream in
//! across the kill and the last of them are produced only after it, so the test asserts that
//! the kill came after the first write and before the last record: it cannot silently become
//! a test without a crash. The restarted instance is stopped with SIGTERM and must exit 0.
//!
//! The binary is the one `cargo build` put next to this test (`target/<profile>/auditflow`);
//! `cargo xtask test` builds it.

use std::process::Command;

use auditflow_integration_tests::integrity::assert_sealed_once;
use auditflow_integration_tests::kafka::{self, Input, Stream, produce};
use auditflow_integration_tests::sink::{SinkSetup, security_event, sink_topics, user_action};
use auditflow_integration_tests::stack::eventually;
use auditflow_integration_tests::store::{count, stored_or_zero};
use auditflow_store::Store;

const ACTIONS: usize = 6_000;
const SECURITY: usize = 300;
const TOTAL: i64 = (ACTIONS + SECURITY) as i64;
/// User actions produced only after the kill.
const HELD: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_stores_every_record_exactly_once() {
    let mut setup = SinkSetup::new("sink_crash").await;
    // Checkpoints fall before, across and after the kill.
    setup.config.integrity.checkpoint_every = 100;
    let t = setup.config.topics.clone();
    let users: Vec<String> = (0..50).map(|u| format!("crash-user-{u}")).collect();
    let security: Vec<Input> = (0..SECURITY)
        .map(|i| security_event(i, &users[i % users.len()]))
        .collect();
    produce(&setup.bootstrap, &t.security_event, &security).await;
    // The user actions stream in across the kill, the last HELD only after it: the kill lands
    // mid-stream whatever the machine's speed.
    let records: Vec<Input> = (0..ACTIONS)
        .map(|i| user_action(i, &users[i % users.len()]))
        .collect();
    let stream = Stream::start(&setup.bootstrap, &t.user_action, records, HELD);

    let mut victim = setup.spawn_sink();
    // Kill it once it has written something.
    let keyspace = setup.config.store.keyspace.clone();
    eventually("the first sink to store something", async || {
        if let Ok(Some(status)) = victim.try_wait() {
            panic!("the sink exited early: {status}");
        }
        stored_or_zero(&keyspace).await > 0
    })
    .await;
    victim.kill().expect("kill -9"); // SIGKILL on Unix: no shutdown path runs
    victim.wait().expect("reaping the killed sink");
    let produced = stream.produced();
    let at_kill = stored_or_zero(&keyspace).await;
    let committed: i64 = sink_topics(&setup.config)
        .iter()
        .flat_map(|topic| kafka::committed(&setup.bootstrap, &setup.group(), topic).into_values())
        .sum();
    eprintln!(
        "killed with {at_kill} of {TOTAL} records stored, {committed} committed, \
         {produced} of {ACTIONS} user actions produced"
    );
    // The kill landed mid-stream: after the first write, before the last record existed.
    assert!(
        at_kill > 0 && at_kill < TOTAL && at_kill <= (produced + SECURITY) as i64,
        "not a kill mid-stream: {at_kill} of {TOTAL} stored, {produced} produced"
    );
    stream.finish().await;

    let mut survivor = setup.spawn_sink();
    setup.wait_caught_up().await;
    assert_eq!(setup.stored_ids().await, TOTAL, "every record, once");
    // Every row of the per-user tables is one record: no duplicates there either.
    assert_eq!(
        count(&keyspace, "audit_general_by_user").await,
        ACTIONS as i64
    );
    assert_eq!(
        count(&keyspace, "audit_security_by_user").await,
        SECURITY as i64
    );
    assert_eq!(count(&keyspace, "security_by_time").await, SECURITY as i64);
    // The log is what an undisturbed run builds: one leaf per record, the same checkpoints.
    let store = Store::connect(&setup.config.store, &setup.config.retention)
        .await
        .unwrap();
    assert_sealed_once(&store, &setup.bootstrap, &setup.config, TOTAL as u64).await;

    // SIGTERM: finish, commit, leave the group, exit 0.
    let pid = survivor.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = survivor.wait().expect("waiting for the sink");
    assert!(exit.success(), "SIGTERM exit: {exit}");
    setup.drop_keyspace().await;
}
