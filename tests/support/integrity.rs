//! Checks of the tamper-evident log the sink builds (docs/integrity.md): every stored record
//! is one leaf, and each log's checkpoints are exactly what one undisturbed pass over its
//! leaves signs.

use std::collections::BTreeMap;

use auditflow_core::Config;
use auditflow_core::checkpoint::SignedCheckpoint;
use auditflow_store::Store;
use auditflow_store::integrity::{CheckpointRule, LogTail, SigningKey};

use crate::kafka::read_committed;
use crate::stack::eventually;

/// Waits until the logs hold `records` leaves in all: the sealer caught up with the commits.
pub async fn wait_sealed(store: &Store, records: u64) {
    eventually(&format!("the logs to hold {records} leaves"), async || {
        let sealed: u64 = store
            .log_tails()
            .await
            .unwrap()
            .iter()
            .map(|t| t.size)
            .sum();
        assert!(sealed <= records, "{sealed} leaves for {records} records");
        sealed == records
    })
    .await;
}

/// The signed checkpoints on the anchor topic, one per (log, size): a checkpoint published
/// twice (a sealer repeating work after a crash) must be the same both times.
pub fn anchored(bootstrap: &str, config: &Config) -> Vec<SignedCheckpoint> {
    let mut by_position = BTreeMap::new();
    for read in read_committed(bootstrap, &config.topics.checkpoints) {
        let cp: SignedCheckpoint = serde_json::from_slice(&read.value).expect("a checkpoint");
        assert_eq!(
            read.key.as_deref(),
            Some(cp.checkpoint.log.to_string().as_str())
        );
        let key = (cp.checkpoint.log.clone(), cp.checkpoint.size);
        if let Some(earlier) = by_position.insert(key, cp.clone()) {
            assert_eq!(earlier, cp, "two different checkpoints at one size");
        }
    }
    by_position.into_values().collect()
}

/// Every log is what one undisturbed pass over its leaves builds: `records` leaves in all, one
/// per stored record, each log's tail and stored checkpoints equal to a single
/// [`LogTail::extend`] over its leaves with the development key, and the anchor topic holding
/// exactly those checkpoints. What a crash, a rebalance or an outage must not change.
pub async fn assert_sealed_once(store: &Store, bootstrap: &str, config: &Config, records: u64) {
    wait_sealed(store, records).await;
    let rule = CheckpointRule::of(&config.integrity);
    let key = SigningKey::insecure_development_key();
    let mut stored = Vec::new();
    for tail in store.log_tails().await.unwrap() {
        let leaves = store
            .log_leaves(&tail.log, 0, tail.last_offset + 1)
            .await
            .unwrap();
        assert_eq!(
            leaves.len() as u64,
            tail.size,
            "{}: one leaf per record",
            tail.log
        );
        let mut once = LogTail::empty(tail.log.clone());
        let signed = once.extend(&leaves, rule, key.seed()).unwrap();
        assert_eq!(once, tail, "{}: the tail one pass builds", tail.log);
        let checkpoints = store.checkpoints(&tail.log).await.unwrap();
        assert_eq!(
            checkpoints, signed,
            "{}: the checkpoints one pass signs",
            tail.log
        );
        for cp in &checkpoints {
            cp.verify(&key.public_key()).unwrap();
        }
        stored.extend(checkpoints);
    }
    stored.sort_by(|a, b| {
        (&a.checkpoint.log, a.checkpoint.size).cmp(&(&b.checkpoint.log, b.checkpoint.size))
    });
    assert!(!stored.is_empty(), "no checkpoint was signed");
    assert_eq!(
        anchored(bootstrap, config),
        stored,
        "the anchor topic holds the checkpoints"
    );
}
