//! The causality tables on a real Cassandra, written by hand (through the store, no Kafka):
//! a cycle and an effect dated before its cause are reported by `auditflow trail`, which
//! returns instead of looping; day buckets read back in time order with bounded reads; writing
//! the same records again changes nothing.

use std::time::{Duration, Instant};

use auditflow_core::RetentionClass;
use auditflow_integration_tests::causality::IndexerSetup;
use auditflow_integration_tests::stack::DEADLINE;
use auditflow_integration_tests::store::count;
use auditflow_store::Store;
use auditflow_store::causality::CausalRecord;
use auditflow_store::causality::trail::{Anomaly, Stop, TrailLimits, walk};
use chrono::{DateTime, TimeZone, Utc};

fn at(day: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 10, 0, second).unwrap()
}

fn record(id: &str, cause: Option<&str>, time: DateTime<Utc>) -> CausalRecord {
    CausalRecord {
        id: id.into(),
        event_type: "audit.user.action".into(),
        original_type: None,
        time,
        causation_id: cause.map(Into::into),
        correlation_id: Some("conv-1".into()),
        topic: "audit.user.action".into(),
        summary: Some("login_attempt failure high".into()),
        class: RetentionClass::Security,
    }
}

/// A fresh keyspace with the schema.
async fn migrated(name: &str) -> IndexerSetup {
    let setup = IndexerSetup::new(name).await;
    let store = Store::connect(&setup.config.store, &setup.config.retention)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    setup
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_and_an_effect_before_its_cause_are_reported_not_looped_on() {
    let setup = migrated("cau_cycle").await;
    let index = setup.index().await;
    // a → b → c → a, and d (caused by c) dated a day before c.
    let records = [
        record("cyc-a", Some("cyc-c"), at(20, 1)),
        record("cyc-b", Some("cyc-a"), at(20, 2)),
        record("cyc-c", Some("cyc-b"), at(20, 3)),
        record("cyc-d", Some("cyc-c"), at(19, 0)),
    ];
    index.write(&records).await.expect("write");

    let t = walk(&index, "cyc-b", TrailLimits::default())
        .await
        .unwrap()
        .expect("known");
    let ancestors: Vec<&str> = t.ancestors.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ancestors, ["cyc-c", "cyc-a"]);
    assert!(t.anomalies.contains(&Anomaly::Cycle {
        cause: "cyc-b".into(),
        effect: "cyc-c".into()
    }));
    // Below b: c, already above; nothing under it is followed.
    assert_eq!(t.tree.children.len(), 1);
    assert_eq!(t.tree.children[0].stop, Some(Stop::Cycle));

    let t = walk(&index, "cyc-d", TrailLimits::default())
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.anomalies.iter().any(
            |a| matches!(a, Anomaly::EffectBeforeCause { cause, effect, .. }
                if cause == "cyc-c" && effect == "cyc-d")
        ),
        "{:?}",
        t.anomalies
    );

    // The binary reports both and returns; a loop would hit the deadline.
    let mut child = setup
        .command(&["trail", "cyc-a"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("auditflow trail");
    let started = Instant::now();
    while child.try_wait().expect("waiting").is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("auditflow trail did not return on a cycle");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = child.wait_with_output().expect("output");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("warning: cycle:"), "{text}");
    assert!(
        text.contains("warning: effect before cause: cyc-a"),
        "{text}"
    );
    assert!(text.contains("↻ cycle"), "{text}");

    setup.drop_keyspace().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_read_back_in_time_order_bounded_and_rewrites_change_nothing() {
    let setup = migrated("cau_bucket").await;
    let index = setup.index().await;
    // 30 children of one parent over three days, written newest first, in two batches.
    let children: Vec<CausalRecord> = (0..30u32)
        .rev()
        .map(|i| record(&format!("kid-{i:02}"), Some("parent"), at(20 + i / 10, i)))
        .collect();
    index.write(&children[..17]).await.expect("write");
    index.write(&children[17..]).await.expect("write");
    // Again: re-delivery overwrites the same rows.
    index.write(&children).await.expect("rewrite");
    let ks = &setup.config.store.keyspace;
    assert_eq!(count(ks, "causality_nodes").await, 30);
    assert_eq!(count(ks, "causality_children").await, 30);
    assert_eq!(count(ks, "causality_child_days").await, 3);
    assert_eq!(count(ks, "causality_members").await, 30);

    let all = index.children("parent", 100).await.unwrap();
    let ids: Vec<&str> = all.items.iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<String> = (0..30).map(|i| format!("kid-{i:02}")).collect();
    assert_eq!(ids, expected, "oldest first across the day buckets");
    assert!(!all.more);
    assert!(
        all.items
            .iter()
            .all(|r| r.causation_id.as_deref() == Some("parent"))
    );

    let first = index.children("parent", 12).await.unwrap();
    assert_eq!(first.items.len(), 12);
    assert!(first.more, "a bounded read says there is more");
    assert_eq!(first.items[11].id, "kid-11");

    let conversation = index.members("conv-1", 30).await.unwrap();
    assert_eq!(conversation.items.len(), 30);
    assert!(!conversation.more);
    assert!(
        conversation
            .items
            .windows(2)
            .all(|w| w[0].time <= w[1].time)
    );

    // The parent is no record, yet has a trail; the fan-out bound cuts it and says so.
    let limits = TrailLimits {
        max_fan_out: 10,
        ..TrailLimits::default()
    };
    let t = walk(&index, "parent", limits)
        .await
        .unwrap()
        .expect("known");
    assert_eq!(t.tree.children.len(), 10);
    assert!(t.tree.more_children);

    setup.drop_keyspace().await;
}
