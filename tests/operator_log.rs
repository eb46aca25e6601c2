//! The operator log on the real stack (docs/operator-log.md): every command on audit data
//! publishes exactly one `audit.operator.action` event — who, which command, which arguments,
//! the subject by keyed pseudonym only, the outcome — before its output is shown; the sink
//! stores it under the security class, filed under the operator; an erasure's receipt is that
//! event, readable with `gdpr receipt` after the user is gone and covered by the integrity log;
//! and a command that cannot record itself shows nothing and exits 1 unless told
//! `--no-operator-log`.

use std::collections::BTreeSet;
use std::process::Output;

use auditflow_integration_tests::kafka::{produce, read_committed, wait_caught_up};
use auditflow_integration_tests::processes::{json_of, logged_command};
use auditflow_integration_tests::sink::{SinkSetup, security_event, user_action};
use auditflow_integration_tests::stack::require_kafka;
use serde_json::Value;

const USER: &str = "u-olga-operator-log";

fn run(setup: &SinkSetup, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = logged_command(&setup.bootstrap, &setup.config, args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("running auditflow")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_audit_data_is_on_record_and_names_no_user() {
    require_kafka();
    let mut setup = SinkSetup::new("operator-log").await;
    // A checkpoint after every leaf: each stored operator event is provable at once.
    setup.config.integrity.checkpoint_every = 1;
    let topics = setup.config.topics.clone();
    let actions: Vec<_> = (0..5).map(|i| user_action(i, USER)).collect();
    let security: Vec<_> = (0..2).map(|i| security_event(i, USER)).collect();
    produce(&setup.bootstrap, &topics.user_action, &actions).await;
    produce(&setup.bootstrap, &topics.security_event, &security).await;
    let _sink = setup.spawn_sink();
    setup.wait_caught_up().await;
    assert_eq!(setup.stored_ids().await, 7);

    let alice = [("AUDITFLOW_OPERATOR", "alice")];
    let query = json_of(
        &run(&setup, &alice, &["--json", "query", "--user", USER]),
        "query",
    );
    assert_eq!(query["records"].as_array().map(Vec::len), Some(7));
    json_of(
        &run(
            &setup,
            &alice,
            &["--json", "report", "user-activity", "--user", USER],
        ),
        "report user-activity",
    );
    let export = json_of(
        &run(&setup, &alice, &["gdpr", "export", "--user", USER]),
        "gdpr export",
    );
    assert_eq!(export["audit_trail"].as_array().map(Vec::len), Some(7));
    // `--operator` wins over the environment.
    let deleted = json_of(
        &run(
            &setup,
            &alice,
            &[
                "--json",
                "--operator",
                "carol",
                "gdpr",
                "delete",
                "--user",
                USER,
            ],
        ),
        "gdpr delete",
    );
    let receipt = deleted["receipt"].clone();
    let pseudonym = auditflow_store::subject_pseudonym(&setup.config.store, USER).unwrap();
    assert_eq!(receipt["subject"], pseudonym.as_str());
    assert_eq!(receipt["request"], "delete");
    assert_eq!(receipt["key_destroyed"], true);
    assert_eq!(receipt["records_made_unreadable"], 7);
    let request_id = receipt["request_id"]
        .as_str()
        .expect("request id")
        .to_owned();
    // A command about no user, by another operator.
    let bob = [("AUDITFLOW_OPERATOR", "bob")];
    let out = run(&setup, &bob, &["--json", "verify", "--anchor", "store"]);
    assert!(
        out.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Exactly one event per command, in the order each operator ran them.
    let events: Vec<Value> = read_committed(&setup.bootstrap, &topics.operator)
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&r.value);
            assert!(
                !text.contains(USER),
                "a plain user id in the operator log: {text}"
            );
            r.json()
        })
        .collect();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["data"]["operator"].as_str().unwrap(),
                e["data"]["command"].as_str().unwrap(),
            )
        })
        .collect();
    let of = |who: &str| -> Vec<&str> {
        seen.iter()
            .filter(|(o, _)| *o == who)
            .map(|(_, c)| *c)
            .collect()
    };
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(
        of("alice"),
        ["query", "report.user_activity", "gdpr.export"]
    );
    assert_eq!(of("carol"), ["gdpr.delete"]);
    assert_eq!(of("bob"), ["verify"]);
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "every event its own id");
    for e in &events {
        assert_eq!(e["type"], "audit.operator.action");
        assert_eq!(e["retention"], "security");
        assert_eq!(e["data"]["outcome"], "success");
        assert_eq!(e["data"]["exit_code"], 0);
        let about_user = e["data"]["command"] != "verify";
        assert_eq!(
            e["data"]["subject"].as_str(),
            about_user.then_some(pseudonym.as_str()),
            "{e}"
        );
    }
    let delete = events
        .iter()
        .find(|e| e["data"]["command"] == "gdpr.delete")
        .unwrap();
    assert_eq!(delete["id"], request_id.as_str());
    assert_eq!(delete["data"]["receipt"], receipt);
    assert_eq!(delete["data"]["records"], 7);
    let query_event = events
        .iter()
        .find(|e| e["data"]["command"] == "query")
        .unwrap();
    assert_eq!(query_event["data"]["arguments"]["limit"], 50);
    assert_eq!(query_event["data"]["records"], 7);

    // The sink stores them, filed under their operators, as security records.
    wait_caught_up(&setup.bootstrap, &setup.group(), &topics.operator).await;
    let carol = json_of(
        &run(
            &setup,
            &[],
            &["--json", "--no-operator-log", "query", "--user", "carol"],
        ),
        "query carol",
    );
    let records = carol["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{carol}");
    assert_eq!(records[0]["kind"], "operator_action");
    assert_eq!(records[0]["class"], "security");
    assert_eq!(records[0]["action"], "gdpr.delete");
    assert_eq!(records[0]["id"], request_id.as_str());

    // The receipt survives the erasure of its subject, and the integrity log covers it.
    let shown = json_of(
        &run(&setup, &alice, &["gdpr", "receipt", &request_id]),
        "gdpr receipt",
    );
    assert_eq!(shown["receipt"], receipt);
    assert_eq!(shown["operator"], "carol");
    let proof = json_of(
        &run(&setup, &[], &["--no-operator-log", "prove", &request_id]),
        "prove the receipt",
    );
    assert_eq!(proof["event_id"], request_id.as_str());
    let after = read_committed(&setup.bootstrap, &topics.operator);
    assert_eq!(
        after.len(),
        6,
        "`gdpr receipt` is on record; the unlogged ones are not"
    );

    // A command that cannot record itself shows nothing and exits 1; unlogged, it runs.
    let unreachable = [
        ("AUDITFLOW_OPERATOR", "alice"),
        ("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1"),
    ];
    let out = run(
        &setup,
        &unreachable,
        &["--json", "query", "--user", "carol"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "output shown unrecorded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not record this command in the operator log"),
        "{stderr}"
    );
    let out = run(
        &setup,
        &unreachable,
        &["--json", "--no-operator-log", "query", "--user", "carol"],
    );
    assert_eq!(json_of(&out, "unlogged query")["records"], carol["records"]);
    setup.drop_keyspace().await;
}
