//! `auditflow gdpr` and `auditflow report` against a real Cassandra (or ScyllaDB), through the
//! real binary: a user's lifecycle is stored with the Store API in a fresh keyspace, exported,
//! erased, and then neither `query` nor `gdpr export` finds them while `report compliance` and
//! `report security` still count their records by class. Fails, never skips, when the CQL node
//! is down.
//!
//! (That the erased rows hold no readable personal byte is `store_roundtrip`'s business; this
//! test is about the commands.)

use auditflow_store::{RetentionClass, StorableRecord};
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use auditflow_integration_tests::store::{
    auditflow_at, drop_keyspace, failed_login, fresh_store, user_action,
};

const USER: &str = "gdpr.subject@example.com";
const OTHER: &str = "bystander@example.com";
const IP: &str = "198.51.100.23";

/// The user's lifecycle as the sink would store it, in the last few hours (inside the
/// reports' default 30-day range): one record per retention class, a failed login with its
/// security event, and a brute-force alert about the ip.
fn lifecycle(user: &str, tag: &str) -> Vec<StorableRecord> {
    let now = Utc::now();
    let action = |n: i64, action: &str, class, outcome: &str| {
        let (id, time) = (format!("{tag}/{n}"), now - Duration::minutes(100 - n));
        StorableRecord {
            event: json!({"id": id, "type": "audit.user.action",
                "data": {"user_id": user, "action": action, "outcome": outcome, "ip_address": IP}}),
            ..user_action(user, id, time, action, class, outcome)
        }
    };
    vec![
        action(1, "account_created", RetentionClass::General, "success"),
        action(2, "login_attempt", RetentionClass::Security, "failure"),
        action(3, "login_attempt", RetentionClass::Security, "success"),
        action(
            4,
            "user.payment.completed",
            RetentionClass::Financial,
            "success",
        ),
        action(
            5,
            "user.newsletter.subscribed",
            RetentionClass::Marketing,
            "success",
        ),
        StorableRecord {
            event: json!({"id": format!("{tag}/2-security"),
                "data": {"event_type": "failed_login", "user_id": user, "source_ip": IP}}),
            ..failed_login(
                user,
                format!("{tag}/2-security"),
                now - Duration::minutes(98),
            )
        },
    ]
}

/// Runs the real binary against the test's keyspace ([`auditflow_at`]), expects exit 0,
/// parses stdout as one JSON document.
fn auditflow_json(keyspace: &str, args: &[&str]) -> Value {
    let out = auditflow_at(keyspace, args);
    assert!(
        out.status.success(),
        "auditflow {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "auditflow {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn class_totals(report: &Value) -> Vec<u64> {
    RetentionClass::ALL
        .iter()
        .map(|c| report["by_class"][c.as_str()]["total"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_delete_and_reports_through_the_binary() {
    let (store, settings) = fresh_store("gdpr_cli").await;
    let keyspace = settings.keyspace;
    let mine = lifecycle(USER, "u");
    store.write_records(&mine).await.unwrap();
    store.write_records(&lifecycle(OTHER, "o")).await.unwrap();

    // Export: every record of the user, decrypted, newest first, with retention per class.
    let export = auditflow_json(&keyspace, &["gdpr", "export", "--user", USER]);
    assert_eq!(export["user_id"], USER);
    assert!(export["export_date"].is_string());
    let trail = export["audit_trail"].as_array().unwrap();
    assert_eq!(trail.len(), mine.len(), "{export:#}");
    for record in trail {
        assert_eq!(record["event"]["data"]["user_id"], USER, "{record:#}");
        assert!(record["id"].as_str().unwrap().starts_with("u/"));
    }
    let times: Vec<&str> = trail
        .iter()
        .map(|r| r["event_time"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(export["retention_info"]["security"]["count"], 3);
    assert_eq!(export["retention_info"]["security"]["retention_days"], 2557);
    assert_eq!(export["retention_info"]["marketing"]["count"], 1);
    assert_eq!(export["retention_info"]["marketing"]["retention_days"], 731);

    let activity = auditflow_json(
        &keyspace,
        &["--json", "report", "user-activity", "--user", USER],
    );
    assert_eq!(activity["total"], mine.len());
    assert_eq!(activity["by_action"]["login_attempt"], 2);
    let compliance_before = auditflow_json(&keyspace, &["--json", "report", "compliance"]);
    // Two users, each one general, one financial, one marketing and three security records.
    assert_eq!(class_totals(&compliance_before), [6, 2, 2, 2]);

    // Delete: the key is destroyed, and says so.
    let deleted = auditflow_json(&keyspace, &["--json", "gdpr", "delete", "--user", USER]);
    assert_eq!(deleted["key_destroyed"], true, "{deleted}");

    // Nothing finds the user any more.
    let query = auditflow_json(&keyspace, &["--json", "query", "--user", USER]);
    assert_eq!(query["records"], json!([]), "{query}");
    let export = auditflow_json(&keyspace, &["gdpr", "export", "--user", USER]);
    assert_eq!(export["audit_trail"], json!([]));
    assert_eq!(export["retention_info"]["security"]["count"], 0);
    let activity = auditflow_json(
        &keyspace,
        &["--json", "report", "user-activity", "--user", USER],
    );
    assert_eq!(activity["total"], 0);

    // ... while their records still count, by class and in the security report.
    let compliance_after = auditflow_json(&keyspace, &["--json", "report", "compliance"]);
    assert_eq!(class_totals(&compliance_after), [6, 2, 2, 2]);
    let security = auditflow_json(&keyspace, &["--json", "report", "security"]);
    assert_eq!(security["security_events"]["total"], 2, "{security:#}");

    // The bystander is untouched.
    let other = auditflow_json(&keyspace, &["gdpr", "export", "--user", OTHER]);
    assert_eq!(other["audit_trail"].as_array().unwrap().len(), mine.len());

    // Erasing again, or a user never seen, succeeds and says nothing was stored.
    let again = auditflow_json(&keyspace, &["--json", "gdpr", "delete", "--user", USER]);
    assert_eq!(again["key_destroyed"], false);
    let out = auditflow_at(&keyspace, &["gdpr", "delete", "--user", "never-seen"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing was stored"));

    // Anonymize shreds the bystander the same way.
    let anonymized = auditflow_json(&keyspace, &["--json", "gdpr", "anonymize", "--user", OTHER]);
    assert_eq!(anonymized["key_destroyed"], true);
    let other = auditflow_json(&keyspace, &["gdpr", "export", "--user", OTHER]);
    assert_eq!(other["audit_trail"], json!([]));

    // Bad usage is exit 2, before anything is contacted.
    let bad = auditflow_at(&keyspace, &["report", "security", "--from", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));

    // The reserved subjects cannot be erased (docs/operations.md): exit 2, one line, and their
    // records stay readable.
    let unknown_login = StorableRecord {
        event: json!({"id": "n/1", "data": {"user_id": "unknown", "ip_address": IP}}),
        ..user_action(
            "unknown",
            "n/1".into(),
            Utc::now() - Duration::minutes(5),
            "login_attempt",
            RetentionClass::Security,
            "failure",
        )
    };
    store.write_records(&[unknown_login]).await.unwrap();
    for verb in ["delete", "anonymize"] {
        for reserved in ["unknown", "system"] {
            let refused = auditflow_at(&keyspace, &["gdpr", verb, "--user", reserved]);
            assert_eq!(refused.status.code(), Some(2), "gdpr {verb} {reserved}");
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(stderr.contains("reserved subject"), "{stderr}");
        }
    }
    let unknown = auditflow_json(&keyspace, &["gdpr", "export", "--user", "unknown"]);
    assert_eq!(unknown["audit_trail"].as_array().unwrap().len(), 1);

    drop_keyspace(&keyspace).await;
}
