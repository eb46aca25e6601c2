//! The causality indexer on real Kafka and Cassandra, with the recipe's lifecycle: the core's
//! classifier and detection engine (run in this process, as the services would) turn the
//! lifecycle — plus five more failed logins from one ip and a self-granted admin role — into
//! audit records, alerts and actions on the topics; the indexer consumes them; the trail from
//! an input event, an audit record or an alert is the expected chain, through the store and
//! through the real `auditflow trail` binary. Nothing personal reaches the causality tables.

use auditflow_core::classify::Classified;
use auditflow_core::detect::{Detector, IdSecret, Mode, Observation, OutputStream};
use auditflow_core::{Classifier, Config, Event};
use auditflow_integration_tests::causality::{IndexerSetup, start_indexer};
use auditflow_integration_tests::classifier::recipe_lifecycle;
use auditflow_integration_tests::kafka::produce;
use auditflow_store::causality::trail::{KnownAs, Trail, TrailLimits, TreeNode, walk};
use chrono::Utc;

/// The last of the five extra failed logins: with the lifecycle's own, the sixth from
/// 203.0.113.42 in ten minutes, which raises a medium brute_force alert.
const SIXTH_FAILURE: &str = "0193a1f0-0000-7000-8000-000000000105";
/// A user making themselves admin: a critical privilege_escalation alert and two actions.
const ROLE_CHANGE: &str = "0193a1f0-0000-7000-8000-000000000201";

fn inputs() -> Vec<Vec<u8>> {
    let mut lines = recipe_lifecycle();
    for i in 1..=5 {
        lines.push(
            format!(
                r#"{{"specversion":"1.0","id":"0193a1f0-0000-7000-8000-00000000010{i}","source":"auth_service","type":"user.login.attempt","time":"2026-11-20T10:00:0{}.000Z","data":{{"user_id":"demo_user_1","success":false,"method":"password"}},"ipaddress":"203.0.113.42"}}"#,
                i + 1
            )
            .into_bytes(),
        );
    }
    lines.push(format!(
        r#"{{"specversion":"1.0","id":"{ROLE_CHANGE}","source":"admin_service","type":"user.role.changed","time":"2026-11-20T10:00:09.000Z","data":{{"user_id":"demo_user_1","new_role":"admin","old_role":"user","changed_by":"demo_user_1"}},"ipaddress":"203.0.113.42"}}"#
    ).into_bytes());
    lines
}

/// What the classifier and then the security monitor make of the inputs: `(topic, event)`,
/// the blocklist left out (the indexer does not read it).
fn pipeline(config: &Config) -> Vec<(String, Event)> {
    let classifier = Classifier::new(config).expect("classifier");
    let mut detector = Detector::new(&config.security, IdSecret::development()).expect("detector");
    let mut out = Vec::new();
    for line in inputs() {
        let Classified::Emit(outputs) = classifier.classify_structured(&line, Utc::now()) else {
            panic!("every lifecycle event is audited");
        };
        for o in outputs {
            let event = o.event();
            if let Some(obs) = Observation::from_event(&event, Utc::now()).expect("observable") {
                for d in detector.observe(&obs, Mode::Live, Utc::now()) {
                    if d.stream() != OutputStream::Blocklist {
                        let event = d.to_event().expect("not a tombstone");
                        out.push((d.topic(&config.topics).to_owned(), event));
                    }
                }
            }
            out.push((o.topic, event));
        }
    }
    out
}

fn caused_by<'e>(events: &'e [(String, Event)], cause: &str, ty: &str) -> Vec<&'e Event> {
    events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| {
            e.ty == ty && e.extensions.get("causationid").and_then(|v| v.as_str()) == Some(cause)
        })
        .collect()
}

/// The tree as `type(child, child)` text.
fn shape(t: &TreeNode) -> String {
    let mut s = t.node.event_type.clone().unwrap_or_default();
    if !t.children.is_empty() {
        // Siblings of one time are in id order, and ids are hashes: compare them sorted.
        let mut kids: Vec<String> = t.children.iter().map(shape).collect();
        kids.sort();
        s.push_str(&format!("({})", kids.join(", ")));
    }
    s
}

fn ancestor_ids(t: &Trail) -> Vec<&str> {
    t.ancestors.iter().map(|n| n.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_chains_input_to_audit_record_to_alert_to_action() {
    let setup = IndexerSetup::new("cau_trail").await;
    let events = pipeline(&setup.config);
    let (alerts, actions) = (&setup.config.topics.alerts, &setup.config.topics.actions);
    assert_eq!(events.iter().filter(|(t, _)| t == alerts).count(), 2);
    assert_eq!(events.iter().filter(|(t, _)| t == actions).count(), 2);
    for (topic, event) in &events {
        let record = (None, event.to_json_bytes(), Vec::new());
        produce(&setup.bootstrap, topic, &[record]).await;
    }

    let (shutdown, task) = start_indexer(&setup.config);
    setup.wait_caught_up().await;
    shutdown.trigger();
    task.await.expect("indexer task").expect("indexer ran");
    let index = setup.index().await;
    let limits = TrailLimits::default();

    // The role change: input → audit record → critical alert → its two actions.
    let action = caused_by(&events, ROLE_CHANGE, "audit.user.action")[0];
    let escalation = caused_by(&events, &action.id, "security.alert")[0];
    let t = walk(&index, ROLE_CHANGE, limits)
        .await
        .unwrap()
        .expect("known");
    assert!(t.ancestors.is_empty());
    assert_eq!(t.tree.node.known_as, KnownAs::Input);
    assert_eq!(
        shape(&t.tree),
        "user.role.changed(audit.user.action(security.alert(security.action, security.action)))"
    );
    assert!(t.anomalies.is_empty() && t.cuts.is_empty(), "{t:#?}");

    let t = walk(&index, &escalation.id, limits).await.unwrap().unwrap();
    assert_eq!(ancestor_ids(&t), [ROLE_CHANGE, action.id.as_str()]);
    assert_eq!(
        t.ancestors[0].event_type.as_deref(),
        Some("user.role.changed")
    );
    assert_eq!(
        t.tree.node.summary.as_deref(),
        Some("privilege_escalation critical 95")
    );
    assert_eq!(
        shape(&t.tree),
        "security.alert(security.action, security.action)"
    );

    // The sixth failure: input → its user action, and its security event → the medium alert.
    let security_event = caused_by(&events, SIXTH_FAILURE, "audit.security.event")[0];
    let t = walk(&index, SIXTH_FAILURE, limits).await.unwrap().unwrap();
    assert_eq!(
        shape(&t.tree),
        "user.login.attempt(audit.security.event(security.alert), audit.user.action)"
    );
    let brute_force = &t
        .tree
        .children
        .iter()
        .find(|c| c.node.id == security_event.id)
        .expect("the security event")
        .children[0]
        .node;
    assert_eq!(
        brute_force.summary.as_deref(),
        Some("brute_force medium 50")
    );
    let t = walk(&index, &security_event.id, limits)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ancestor_ids(&t), [SIXTH_FAILURE]);

    // An event with no effects: its trail is itself, under its input.
    let created = caused_by(
        &events,
        "0193a1f0-0000-7000-8000-000000000001",
        "audit.user.action",
    )[0];
    let t = walk(&index, &created.id, limits).await.unwrap().unwrap();
    assert_eq!(shape(&t.tree), "audit.user.action");
    assert_eq!(t.ancestors[0].event_type.as_deref(), Some("user.created"));

    // The conversation of the role change, in time order: everything it led to.
    let members = index.members(ROLE_CHANGE, 100).await.unwrap();
    let mut types: Vec<&str> = members
        .items
        .iter()
        .map(|r| r.event_type.as_str())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "audit.user.action",
            "security.action",
            "security.action",
            "security.alert"
        ]
    );
    assert!(members.items.windows(2).all(|w| w[0].time <= w[1].time));
    assert!(!members.more);

    let stored = setup.stored_text().await.join("\n");
    for personal in [
        "demo_user_1",
        "demo@example.com",
        "192.168.1.100",
        "203.0.113.42",
        "Mozilla",
        "+1-555-0123",
        "sess_",
    ] {
        assert!(
            !stored.contains(personal),
            "{personal} is in the causality tables"
        );
    }

    // The real binary: the tree for a terminal, JSON for machines, exit 1 for an unknown id.
    let human = setup
        .command(&["trail", ROLE_CHANGE])
        .output()
        .expect("auditflow trail");
    assert!(human.status.success(), "{human:?}");
    let text = String::from_utf8(human.stdout).unwrap();
    eprintln!("{text}");
    assert!(text.contains("input event"), "{text}");
    assert!(
        text.contains("        ├── ") && text.contains("        └── "),
        "{text}"
    );

    let json = setup
        .command(&["trail", &escalation.id, "--json"])
        .output()
        .expect("auditflow trail --json");
    assert!(json.status.success(), "{json:?}");
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["ancestors"][0]["id"], ROLE_CHANGE);
    assert_eq!(value["ancestors"][0]["known_as"], "input");
    assert_eq!(value["tree"]["children"].as_array().map(Vec::len), Some(2));

    let conversation = setup
        .command(&["trail", "--correlation", ROLE_CHANGE])
        .output()
        .expect("auditflow trail --correlation");
    assert!(conversation.status.success(), "{conversation:?}");
    assert_eq!(
        String::from_utf8_lossy(&conversation.stdout)
            .lines()
            .count(),
        5
    );

    let unknown = setup
        .command(&["trail", "no-such-event"])
        .output()
        .expect("auditflow trail");
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-event"), "{stderr}");

    setup.drop_keyspace().await;
}
