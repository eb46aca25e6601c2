use serde_json::{Value, json};

use super::*;
use crate::envelope::parse_structured;

fn event(value: Value) -> Event {
    parse_structured(&serde_json::to_vec(&value).unwrap(), &Default::default()).unwrap()
}

fn action(action: &str, original: &str, outcome: &str, extra: Value) -> Event {
    let mut data = json!({"user_id": "u1", "action": action, "outcome": outcome,
                          "risk_level": "low", "ip_address": "192.0.2.7"});
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    event(
        json!({"specversion": "1.0", "id": "a-1", "source": "/auditflow/classifier",
                 "type": "audit.user.action", "time": "2026-12-03T10:00:00Z",
                 "correlationid": "c-1", "originaltype": original, "retention": "security",
                 "samplerate": 1, "data": data}),
    )
}

fn mapper() -> Mapper {
    Mapper::new("shop", None)
}

fn class_activity(m: &Map<String, Value>) -> (u64, u64) {
    (
        m["class_uid"].as_u64().unwrap(),
        m["activity_id"].as_u64().unwrap(),
    )
}

#[test]
fn user_actions_land_in_their_classes() {
    let cases = [
        ("login_attempt", "user.login.attempt", (3002, 1)),
        ("account_created", "user.created", (3001, 1)),
        ("user.password.changed", "user.password.changed", (3001, 3)),
        ("user.password.reset", "user.password.reset", (3001, 4)),
        ("user.deleted", "user.deleted", (3001, 6)),
        ("user.account.disabled", "user.account.disabled", (3001, 5)),
        ("user.account.locked", "user.account.locked", (3001, 9)),
        ("user.account.unlocked", "user.account.unlocked", (3001, 12)),
        ("user.mfa.enabled", "user.mfa.enabled", (3001, 10)),
        ("user.logout", "user.logout", (3002, 2)),
        ("privilege_change", "user.role.changed", (3005, 1)),
        ("privilege_change", "user.permission.revoked", (3005, 2)),
        ("user.page.view", "user.page.view", (0, 99)),
    ];
    for (name, original, expected) in cases {
        let m = mapper()
            .map(&action(name, original, "success", json!({})))
            .unwrap();
        assert_eq!(class_activity(&m), expected, "{name} ({original})");
        assert_eq!(
            m["type_uid"].as_u64().unwrap(),
            expected.0 * 100 + expected.1
        );
    }
}

#[test]
fn a_failed_logon_is_a_failure_with_its_user_service_and_source() {
    let m = mapper()
        .map(&action(
            "login_attempt",
            "user.login.attempt",
            "failure",
            json!({"session_id": "s-9"}),
        ))
        .unwrap();
    assert_eq!(
        (m["status_id"].clone(), m["status"].clone()),
        (json!(2), json!("Failure"))
    );
    assert_eq!(m["user"], json!({"uid": "u1"}));
    assert_eq!(m["service"], json!({"name": "shop"}));
    assert_eq!(m["src_endpoint"], json!({"ip": "192.0.2.7"}));
    assert_eq!(m["session"], json!({"uid": "s-9"}));
    assert_eq!(
        m["time"], 1_796_292_000_000i64,
        "2026-12-03T10:00:00Z in ms"
    );
    assert_eq!(m["metadata"]["uid"], "a-1");
    assert_eq!(m["metadata"]["version"], VERSION);
    assert_eq!(m["metadata"]["correlation_uid"], "c-1");
    assert_eq!(m["metadata"]["event_code"], "user.login.attempt");
    assert_eq!(m["severity_id"], 2);
}

#[test]
fn other_actions_are_base_events_named_by_their_action() {
    let m = mapper()
        .map(&action(
            "user.page.view",
            "user.page.view",
            "success",
            json!({}),
        ))
        .unwrap();
    assert_eq!(m["activity_name"], "user.page.view");
    assert_eq!(m["actor"]["user"]["uid"], "u1");
    assert_eq!(m["unmapped"]["ip_address"], "192.0.2.7");
    assert!(m.get("src_endpoint").is_none());
}

#[test]
fn pseudonyms_replace_every_user_id_and_ip() {
    let key = Pseudonyms::new([7; 32]);
    let m = Mapper::new("shop", Some(key.clone()))
        .map(&action(
            "login_attempt",
            "user.login.attempt",
            "success",
            json!({}),
        ))
        .unwrap();
    let text = serde_json::to_string(&m).unwrap();
    assert!(
        !text.contains("\"u1\"") && !text.contains("192.0.2.7"),
        "{text}"
    );
    assert_eq!(m["user"]["uid"], key.of("user", "u1"));
    assert_eq!(m["src_endpoint"]["uid"], key.of("ip", "192.0.2.7"));
    assert_ne!(
        key.of("user", "u1"),
        Pseudonyms::new([8; 32]).of("user", "u1")
    );
    assert_ne!(key.of("user", "u1"), key.of("ip", "u1"));
}

#[test]
fn alerts_are_detection_findings_with_their_evidence() {
    let alert = event(json!({"specversion": "1.0", "id": "al-1",
        "source": "/auditflow/security-monitor", "type": "security.alert",
        "time": "2026-12-03T10:00:05Z",
        "data": {"level": "critical", "rule": "brute_force", "score": 95,
                 "source_ip": "198.51.100.1", "count": 11,
                 "window_start": "2026-12-03T10:00:00Z", "window_end": "2026-12-03T10:00:05Z",
                 "evidence": ["e-1", "e-2"]}}));
    let m = mapper().map(&alert).unwrap();
    assert_eq!(class_activity(&m), (2004, 1));
    assert_eq!(m["severity_id"], 5);
    assert_eq!(m["finding_info"]["uid"], "al-1");
    assert_eq!(m["finding_info"]["title"], "brute_force");
    assert_eq!(
        m["finding_info"]["related_events"],
        json!([{"uid": "e-1"}, {"uid": "e-2"}])
    );
    assert_eq!(m["evidences"][0]["src_endpoint"]["ip"], "198.51.100.1");
    assert_eq!(m["risk_score"], 95);
    let mut broken = alert.clone();
    broken.data.remove("level");
    assert!(matches!(mapper().map(&broken), Err(NotMapped::Invalid(_))));
}

#[test]
fn actions_are_remediations() {
    let block = event(json!({"specversion": "1.0", "id": "ac-1",
        "source": "/auditflow/security-monitor", "type": "security.action",
        "time": "2026-12-03T10:00:05Z",
        "data": {"action": "block_ip", "ip": "2001:db8::/64", "reason": "brute_force",
                 "expires_at": "2026-12-03T11:00:05Z"}}));
    let m = mapper().map(&block).unwrap();
    assert_eq!(class_activity(&m), (7004, 1));
    assert_eq!(m["command_uid"], "ac-1");
    assert_eq!(m["device"]["name"], "2001:db8::/64");
    let disable = event(json!({"specversion": "1.0", "id": "ac-2",
        "source": "/auditflow/security-monitor", "type": "security.action",
        "time": "2026-12-03T10:00:05Z",
        "data": {"action": "disable_account", "user_id": "u1", "reason": "security_threat"}}));
    let m = mapper().map(&disable).unwrap();
    assert_eq!(class_activity(&m), (7001, 2));
    assert_eq!(m["unmapped"]["user_uid"], "u1");
}

#[test]
fn other_types_have_no_class_and_the_same_record_maps_alike() {
    let entry = event(json!({"specversion": "1.0", "id": "b-1", "source": "/x",
        "type": "security.blocklist.entry", "time": "2026-12-03T10:00:05Z", "data": {}}));
    assert!(matches!(mapper().map(&entry), Err(NotMapped::NoClass(_))));
    let a = action("login_attempt", "user.login.attempt", "success", json!({}));
    assert_eq!(mapper().map(&a).unwrap(), mapper().map(&a).unwrap());
}
