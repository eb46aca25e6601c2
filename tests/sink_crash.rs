//! `kill -9` mid-stream: the real `auditflow run sink` binary is killed without warning while
//! it writes, restarted, and the store then holds every record exactly once (re-delivery of
//! what was written but not committed overwrites, never duplicates). The restarted instance is
//! stopped with SIGTERM and must exit 0.
//!
//! The binary is the one `cargo build` put next to this test (`target/<profile>/auditflow`);
//! `cargo xtask test` builds it.

#[path = "sink_common.rs"]
mod common;

use std::process::{Child, Command, Stdio};

use auditflow_integration_tests::auditflow_binary;
use common::*;

fn spawn(setup: &SinkSetup) -> Child {
    let c = &setup.config;
    let t = &c.topics;
    Command::new(auditflow_binary())
        .args(["run", "sink"])
        .env("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", &setup.bootstrap)
        .env("AUDITFLOW_KAFKA__GROUP_PREFIX", &c.kafka.group_prefix)
        .env("AUDITFLOW_KAFKA__BATCH_MAX_RECORDS", "100")
        // The killed member's partitions move once its session expires: keep that short.
        .env("AUDITFLOW_KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "6000")
        .env("AUDITFLOW_TOPICS__USER_ACTION", &t.user_action)
        .env("AUDITFLOW_TOPICS__DATA_ACCESS", &t.data_access)
        .env("AUDITFLOW_TOPICS__SECURITY_EVENT", &t.security_event)
        .env("AUDITFLOW_TOPICS__ALERTS", &t.alerts)
        .env("AUDITFLOW_TOPICS__DEAD_LETTER", &t.dead_letter)
        .env("AUDITFLOW_STORE__KEYSPACE", &c.store.keyspace)
        .env("AUDITFLOW_STORE__NODES", format!("{:?}", c.store.nodes))
        .env("AUDITFLOW_STORE__MASTER_KEY_ENV", "")
        .env("AUDITFLOW_METRICS__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("starting auditflow run sink")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_stores_every_record_exactly_once() {
    let setup = SinkSetup::new("sink_crash").await;
    let t = setup.config.topics.clone();
    let users: Vec<String> = (0..50).map(|u| format!("crash-user-{u}")).collect();
    let records: Vec<Input> = (0..6_000)
        .map(|i| user_action(i, &users[i % users.len()]))
        .collect();
    produce(&setup.bootstrap, &t.user_action, &records).await;
    let security: Vec<Input> = (0..300)
        .map(|i| security_event(i, &users[i % users.len()]))
        .collect();
    produce(&setup.bootstrap, &t.security_event, &security).await;

    let mut victim = spawn(&setup);
    // Kill it once it has written some but (with two cores and 6 300 records) not all.
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
    let at_kill = stored_or_zero(&keyspace).await;
    eprintln!("killed with {at_kill} of 6300 records stored");

    let mut survivor = spawn(&setup);
    setup.wait_caught_up().await;
    assert_eq!(setup.stored_ids().await, 6_300, "every record, once");
    // Every row of the per-user tables is one record: no duplicates there either.
    assert_eq!(count(&keyspace, "audit_general_by_user").await, 6_000);
    assert_eq!(count(&keyspace, "audit_security_by_user").await, 300);
    assert_eq!(count(&keyspace, "security_by_time").await, 300);

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
