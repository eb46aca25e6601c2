//! Load harness (run on demand, not part of the test suite): what a first-seen user costs the
//! store. A user's first record creates the user's data key with a lightweight transaction
//! (`INSERT ... IF NOT EXISTS` at serial consistency: four round trips between replicas instead
//! of one write), so the rate of new users is a capacity figure of its own.
//!
//! ```text
//! cargo run --release -p auditflow-store --example key_creation -- [USERS]
//! ```
//!
//! In a fresh keyspace, writes one record for each of USERS (default 20 000) new users, in
//! calls of 1 000 records as the sink does (first-seen: every record creates a key); then the
//! same number of records of the same users through a second store handle with empty caches
//! (known users, cold: one key read each), then again through that handle (known, cached).
//! Prints records/s of each and the ratios. Needs the local stack (`cargo xtask up`).

use std::time::Instant;

use auditflow_core::Config;
use auditflow_store::{Labels, RecordKind, RetentionClass, StorableRecord, Store};
use chrono::Utc;

const CALL: usize = 1_000;

#[tokio::main]
async fn main() {
    let users: usize = std::env::args()
        .nth(1)
        .map_or(20_000, |n| n.parse().expect("USERS is a number"));
    let mut config = Config::load("", std::env::vars()).expect("configuration");
    config.store.keyspace = format!("keys{}", std::process::id());
    let first = Store::connect(&config.store, &config.retention)
        .await
        .expect("connect");
    first.migrate().await.expect("migrate");

    let new_users = write(&first, users, 0).await;
    let second = Store::connect(&config.store, &config.retention)
        .await
        .expect("connect");
    let cold = write(&second, users, 1).await;
    let warm = write(&second, users, 2).await;

    let scylla = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&config.store.nodes)
        .build()
        .await
        .expect("session");
    scylla
        .query_unpaged(
            format!("DROP KEYSPACE IF EXISTS {}", config.store.keyspace),
            (),
        )
        .await
        .expect("drop the keyspace");

    println!("{users} users, calls of {CALL} records");
    println!("first-seen users (a key created each): {new_users:>8.0} records/s");
    println!(
        "known users, cold caches (a key read each): {cold:>8.0} records/s  (first-seen: {:.2} of it)",
        new_users / cold
    );
    println!(
        "known users, cached keys:                 {warm:>8.0} records/s  (first-seen: {:.2} of it)",
        new_users / warm
    );
    println!(
        "BENCH|first-seen user records/s|{new_users:.0}|{warm:.0} (known users, cached)|{:.2}|",
        new_users / warm
    );
    println!(
        "1,000,000 new users a day is {:.1} key creations/s on average: {:.2}% of this node's rate",
        1e6 / 86_400.0,
        100.0 * (1e6 / 86_400.0) / new_users
    );
}

/// Writes one record per user (pass `round`), in calls of [`CALL`]; records/s.
async fn write(store: &Store, users: usize, round: usize) -> f64 {
    let started = Instant::now();
    for from in (0..users).step_by(CALL) {
        let records: Vec<StorableRecord> = (from..(from + CALL).min(users))
            .map(|u| record(u, round))
            .collect();
        store.write_records(&records).await.expect("write");
    }
    users as f64 / started.elapsed().as_secs_f64()
}

fn record(user: usize, round: usize) -> StorableRecord {
    StorableRecord {
        id: format!("key-creation-{round}-{user}"),
        kind: RecordKind::UserAction,
        class: RetentionClass::General,
        event_time: Utc::now(),
        event_type: "audit.user.action".into(),
        user_id: Some(format!("user-{user}")),
        labels: Labels {
            action: Some("login".into()),
            outcome: Some("success".into()),
            ..Labels::default()
        },
        event: serde_json::json!({"id": user, "type": "audit.user.action"}),
        position: None,
    }
}
