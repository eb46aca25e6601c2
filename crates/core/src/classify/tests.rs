//! The rules, defaults and reason codes of docs/topics-and-records.md and docs/reason-codes.md,
//! through the public API.

use chrono::TimeZone;
use serde_json::{Value, json};

use super::*;
use crate::envelope::parse_structured;

fn fallback() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()
}

fn classifier_with(toml: &str) -> Classifier {
    Classifier::new(&Config::from_toml_str(toml).unwrap()).unwrap()
}

fn classify_with(classifier: &Classifier, input: Value) -> Classified {
    let event = parse_structured(input.to_string().as_bytes(), &Limits::default()).unwrap();
    classifier.classify(&event, fallback())
}

fn classify(input: Value) -> Classified {
    classify_with(&classifier_with(""), input)
}

fn outputs(input: Value) -> Vec<Output> {
    match classify(input) {
        Classified::Emit(outputs) => outputs,
        other => panic!("expected outputs, got {other:?}"),
    }
}

fn one(input: Value) -> Output {
    let mut outputs = outputs(input);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    outputs.remove(0)
}

fn rejected(input: Value) -> Rejection {
    match classify(input) {
        Classified::Rejected(rejection) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// An input of type `ty` with `data` and a user named by `subject`.
fn input(ty: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": "in-1", "source": "svc", "type": ty, "subject": "user:u1",
           "time": "2026-11-20T10:00:00.100Z", "data": data})
}

fn no_user(ty: &str, data: Value) -> Value {
    json!({"id": "in-1", "source": "svc", "type": ty, "data": data})
}

fn data(output: &Output) -> Value {
    Value::Object(output.event().data)
}

fn ext(output: &Output, name: &str) -> Value {
    output.event().extensions[name].clone()
}

// Rule 1

#[test]
fn audit_types_are_ignored() {
    for ty in ["audit", "audit.user.action", "audit.anything.else"] {
        assert_eq!(classify(input(ty, json!({}))), Classified::Ignored, "{ty}");
    }
}

// Rule 2

#[test]
fn user_created_is_an_account_created_action() {
    let out = one(
        json!({"id": "in-1", "source": "svc", "type": "user.created",
        "data": {"user_id": "u1", "email": "x@example.com"},
        "metadata": {"ip_address": "10.0.0.1", "user_agent": "UA", "session_id": "s1"}}),
    );
    assert_eq!(out.topic, "audit.user.action");
    assert_eq!(out.key, "u1");
    assert_eq!(
        data(&out),
        json!({"user_id": "u1", "action": "account_created", "outcome": "success", "risk_level": "low",
               "ip_address": "10.0.0.1", "user_agent": "UA", "session_id": "s1"})
    );
    assert_eq!(ext(&out, "retention"), "general");
}

// Rule 3

#[test]
fn login_risk_levels() {
    let risk = |d: Value| data(&outputs(input("user.login.attempt", d))[0])["risk_level"].clone();
    assert_eq!(
        risk(json!({"success": true, "multiple_failures": true, "failure_count": 6})),
        "critical"
    );
    assert_eq!(
        risk(json!({"success": true, "multiple_failures": true, "failure_count": 5})),
        "low"
    );
    assert_eq!(
        risk(json!({"success": true, "multiple_failures": false, "failure_count": 9})),
        "low"
    );
    assert_eq!(
        risk(
            json!({"success": true, "multiple_failures": true, "failure_count": 5, "suspicious_location": true})
        ),
        "high"
    );
    assert_eq!(
        risk(json!({"success": true, "suspicious_location": true, "new_device": true})),
        "high"
    );
    assert_eq!(risk(json!({"success": true, "new_device": true})), "medium");
    assert_eq!(risk(json!({"success": true, "new_device": "yes"})), "low");
    assert_eq!(risk(json!({"success": true})), "low");
}

#[test]
fn successful_login_is_one_action() {
    let out = one(input("user.login.attempt", json!({"success": true})));
    let d = data(&out);
    assert_eq!(
        (d["action"].as_str(), d["outcome"].as_str()),
        (Some("login_attempt"), Some("success"))
    );
    assert_eq!(ext(&out, "retention"), "security");
    assert!(d.get("context").is_none());
}

#[test]
fn failed_login_is_an_action_then_a_security_event() {
    let mut value = input(
        "user.login.attempt",
        json!({"success": false, "suspicious_location": true, "ip_address": "203.0.113.42", "reason": "bad"}),
    );
    value["useragent"] = json!("curl");
    let outs = outputs(value);
    assert_eq!(outs.len(), 2);
    let (action, event) = (&outs[0], &outs[1]);
    assert_eq!(action.topic, "audit.user.action");
    assert_eq!(data(action)["outcome"], "failure");
    assert_eq!(data(action)["risk_level"], "high");
    assert_eq!(data(action)["ip_address"], "203.0.113.42");
    assert_eq!(data(action)["user_agent"], "curl");
    assert_eq!(action.key, "u1");
    assert_eq!(event.topic, "audit.security.event");
    assert_eq!(event.key, "203.0.113.42");
    assert_eq!(
        data(event),
        json!({"event_type": "failed_login", "severity": "critical", "user_id": "u1", "source_ip": "203.0.113.42",
               "blocked": false,
               "details": {"success": false, "suspicious_location": true, "ip_address": "203.0.113.42", "reason": "bad"}})
    );
    assert_eq!(ext(event, "retention"), "security");
    assert_ne!(action.id, event.id);
}

#[test]
fn failed_login_severity_follows_risk() {
    let severity = |d: Value| data(&outputs(input("user.login.attempt", d))[1])["severity"].clone();
    assert_eq!(severity(json!({"success": false})), "warning");
    assert_eq!(severity(json!({"new_device": true})), "warning");
    assert_eq!(severity(json!({"suspicious_location": true})), "critical");
    assert_eq!(
        severity(json!({"multiple_failures": true, "failure_count": 20})),
        "critical"
    );
    // `success` must be the boolean true.
    assert_eq!(
        outputs(input("user.login.attempt", json!({"success": "true"}))).len(),
        2
    );
}

#[test]
fn login_without_user_is_audited_as_unknown() {
    let outs = outputs(no_user("user.login.attempt", json!({"success": false})));
    assert_eq!(data(&outs[0])["user_id"], "unknown");
    assert_eq!(outs[0].key, "unknown");
    assert_eq!(data(&outs[1])["user_id"], "unknown");
    // No source ip: the security event is keyed by the user id.
    assert_eq!(outs[1].key, "unknown");
}

#[test]
fn login_geo_is_copied_to_context_when_well_formed() {
    let geo = json!({"lat": 52.52, "lon": 13.4, "country": "DE"});
    let out = one(input(
        "user.login.attempt",
        json!({"success": true, "geo": geo}),
    ));
    assert_eq!(data(&out)["context"], json!({"geo": geo}));
    for bad in [
        json!("Berlin"),
        json!({"lat": 100, "lon": 0}),
        json!({"lat": 1}),
        json!({"lat": 1, "lon": 2, "country": 3}),
    ] {
        let rejection = rejected(input(
            "user.login.attempt",
            json!({"success": true, "geo": bad}),
        ));
        assert_eq!(rejection.reason, Reason::SchemaViolation);
        assert!(rejection.detail.contains("data.geo"));
    }
}

// Rule 4

#[test]
fn profile_updates_are_sensitive_by_changed_keys() {
    let out = one(input(
        "user.profile.updated",
        json!({"changes": {"phone": "1", "name": "N", "avatar": "a"}}),
    ));
    let d = data(&out);
    assert_eq!(
        (
            d["action"].as_str(),
            d["outcome"].as_str(),
            d["risk_level"].as_str()
        ),
        (Some("profile_update"), Some("success"), Some("medium"))
    );
    assert_eq!(
        d["context"],
        json!({"sensitive_data": true, "fields_changed": ["avatar", "name", "phone"]})
    );
    for key in SENSITIVE_FIELDS {
        let d = data(&one(input(
            "user.profile.updated",
            json!({"changes": {key: 1}}),
        )));
        assert_eq!(d["risk_level"], "medium", "{key}");
    }
    let plain = data(&one(input(
        "user.profile.updated",
        json!({"changes": {"name": "N"}}),
    )));
    assert_eq!(plain["risk_level"], "low");
    assert_eq!(
        plain["context"],
        json!({"sensitive_data": false, "fields_changed": ["name"]})
    );
    let none = data(&one(input("user.profile.updated", json!({}))));
    assert_eq!(
        none["context"],
        json!({"sensitive_data": false, "fields_changed": []})
    );
    assert_eq!(
        rejected(input("user.profile.updated", json!({"changes": ["email"]}))).reason,
        Reason::SchemaViolation
    );
}

// Rule 5

#[test]
fn privilege_changes() {
    for ty in ["user.role.changed", "user.permission.granted"] {
        let out = one(input(
            ty,
            json!({"new_role": "admin", "old_role": "viewer", "changed_by": "u2", "other": 1}),
        ));
        let d = data(&out);
        assert_eq!(
            (d["action"].as_str(), d["risk_level"].as_str()),
            (Some("privilege_change"), Some("high")),
            "{ty}"
        );
        assert_eq!(
            d["context"],
            json!({"new_role": "admin", "old_role": "viewer", "changed_by": "u2"})
        );
        assert_eq!(ext(&out, "retention"), "security");
    }
    for role in PRIVILEGED_ROLES {
        assert_eq!(
            data(&one(input("user.role.changed", json!({"new_role": role}))))["risk_level"],
            "high"
        );
    }
    let editor = data(&one(input(
        "user.permission.granted",
        json!({"permission": "write", "new_role": "editor"}),
    )));
    assert_eq!(editor["risk_level"], "medium");
    assert_eq!(
        editor["context"],
        json!({"permission": "write", "new_role": "editor"})
    );
    assert_eq!(
        data(&one(input("user.role.changed", json!({}))))["context"],
        json!({})
    );
}

// Rule 6

#[test]
fn data_access_operations_and_defaults() {
    for (ty, operation) in [
        ("user.data.read", "read"),
        ("user.data.export", "read"),
        ("user.data.delete", "delete"),
    ] {
        let out = one(input(ty, json!({})));
        assert_eq!(out.topic, "audit.data.access");
        assert_eq!(out.key, "u1");
        assert_eq!(
            data(&out),
            json!({"user_id": "u1", "data_type": "user_profile", "operation": operation, "record_count": 1, "sensitive": false})
        );
        assert_eq!(ext(&out, "retention"), "general");
    }
    let full = one(input(
        "user.data.read",
        json!({"data_type": "billing", "record_count": 12, "sensitive": true, "purpose": "support"}),
    ));
    assert_eq!(
        data(&full),
        json!({"user_id": "u1", "data_type": "billing", "operation": "read", "record_count": 12, "sensitive": true, "purpose": "support"})
    );
}

#[test]
fn data_access_fields_that_break_the_schema() {
    for bad in [
        json!({"data_type": 5}),
        json!({"data_type": ""}),
        json!({"record_count": "12"}),
        json!({"record_count": -1}),
        json!({"record_count": 1.5}),
        json!({"sensitive": "yes"}),
        json!({"purpose": {"a": 1}}),
    ] {
        let rejection = rejected(input("user.data.export", bad.clone()));
        assert_eq!(rejection.reason, Reason::SchemaViolation, "{bad}");
        let field = bad.as_object().unwrap().keys().next().unwrap().clone();
        assert!(
            rejection.detail.contains(&format!("data.{field}")),
            "{}",
            rejection.detail
        );
    }
}

// Rule 7 and missing_user_id

#[test]
fn other_user_events_are_actions_named_by_type() {
    let out = one(input(
        "user.email.verified",
        json!({"resource": "mail", "resource_id": 42}),
    ));
    assert_eq!(
        data(&out),
        json!({"user_id": "u1", "action": "user.email.verified", "outcome": "success", "risk_level": "low",
               "resource": "mail", "resource_id": "42"})
    );
    assert_eq!(
        rejected(input("user.x", json!({"resource": true}))).reason,
        Reason::SchemaViolation
    );
}

#[test]
fn user_events_without_a_user_are_dead_lettered() {
    for ty in [
        "user.created",
        "user.profile.updated",
        "user.role.changed",
        "user.permission.granted",
        "user.data.read",
        "user.data.delete",
        "user.page.view",
        "user",
    ] {
        assert_eq!(
            rejected(no_user(ty, json!({}))).reason,
            Reason::MissingUserId,
            "{ty}"
        );
    }
    // Every source of a user id counts.
    let mut by_ext = no_user("user.page.view", json!({}));
    by_ext["userid"] = json!("e1");
    assert_eq!(one(by_ext).key, "e1");
    let mut by_metadata = no_user("user.page.view", json!({}));
    by_metadata["metadata"] = json!({"user_id": "m1"});
    assert_eq!(one(by_metadata).key, "m1");
    assert_eq!(
        one(no_user("user.page.view", json!({"user_id": 77}))).key,
        "77"
    );
}

// Rule 8

#[test]
fn system_security_events() {
    let mut value = no_user(
        "system.security.intrusion.detected",
        json!({"severity": "critical", "blocked": true, "n": 1}),
    );
    value["ipaddress"] = json!("198.51.100.7");
    let out = one(value);
    assert_eq!(out.topic, "audit.security.event");
    assert_eq!(out.key, "198.51.100.7");
    assert_eq!(
        data(&out),
        json!({"event_type": "intrusion.detected", "severity": "critical", "blocked": true, "source_ip": "198.51.100.7",
               "details": {"severity": "critical", "blocked": true, "n": 1}})
    );
    assert_eq!(ext(&out, "retention"), "security");

    let defaults = one(input(
        "system.security.scan",
        json!({"severity": "catastrophic"}),
    ));
    assert_eq!(data(&defaults)["severity"], "info");
    assert_eq!(data(&defaults)["blocked"], false);
    assert_eq!(data(&defaults)["user_id"], "u1");
    assert_eq!(defaults.key, "u1");
    assert_eq!(
        one(no_user("system.security.scan", json!({}))).key,
        "system"
    );

    assert_eq!(
        rejected(input("system.security.scan", json!({"blocked": "no"}))).reason,
        Reason::SchemaViolation
    );
    assert_eq!(
        rejected(input("system.security", json!({}))).reason,
        Reason::SchemaViolation
    );
}

// Rule 9

#[test]
fn other_system_events_are_actions() {
    let out = one(no_user(
        "system.backup.completed",
        json!({"outcome": "partial", "risk_level": "high"}),
    ));
    assert_eq!(
        data(&out),
        json!({"user_id": "system", "action": "system.backup.completed", "outcome": "partial", "risk_level": "high"})
    );
    assert_eq!(out.key, "system");
    // Risk high: kept as long as security records.
    assert_eq!(ext(&out, "retention"), "security");
    let fallback = one(input(
        "system.backup.completed",
        json!({"outcome": "meh", "risk_level": 3}),
    ));
    assert_eq!(data(&fallback)["outcome"], "success");
    assert_eq!(data(&fallback)["risk_level"], "low");
    assert_eq!(data(&fallback)["user_id"], "u1");
    assert_eq!(ext(&fallback, "retention"), "general");
}

#[test]
fn types_no_rule_covers_are_dead_lettered() {
    let rejection = rejected(input("order.created", json!({})));
    assert_eq!(rejection.reason, Reason::UnknownType);
    assert_eq!(rejection.reason.as_str(), "unknown_type");
}

// Every output

#[test]
fn output_attributes() {
    let mut value = input("user.page.view", json!({}));
    value["correlationid"] = json!("corr-9");
    let out = one(value);
    let event = &out.event();
    assert_eq!(event.ty, "audit.user.action");
    assert_eq!(event.source, OUTPUT_SOURCE);
    assert_eq!(event.subject.as_deref(), Some("user:u1"));
    assert_eq!(
        crate::envelope::format_time(&event.time.unwrap()),
        "2026-11-20T10:00:00.100Z"
    );
    assert_eq!(ext(&out, "causationid"), "in-1");
    assert_eq!(ext(&out, "correlationid"), "corr-9");
    assert_eq!(ext(&out, "originaltype"), "user.page.view");
    assert_eq!(ext(&out, "retention"), "general");
    assert_eq!(ext(&out, "samplerate"), json!(1));
    // The output's own fields are its event's attributes.
    assert_eq!(out.id, event.id);
    assert_eq!(out.ty, event.ty);
    assert_eq!(Some(out.time), event.time);
    assert_eq!(ext(&out, "retention"), out.retention.as_str());
    let line: Value = serde_json::from_slice(&out.to_line()).unwrap();
    assert_eq!(line["topic"], "audit.user.action");
    assert_eq!(line["key"], "u1");
    assert_eq!(line["value"]["specversion"], "1.0");
    assert_eq!(line["value"]["samplerate"], 1);
    assert_eq!(line["value"]["data"]["action"], "user.page.view");
}

#[test]
fn correlation_falls_back_to_metadata_then_the_input_id() {
    let mut value = input("user.page.view", json!({}));
    value["metadata"] = json!({"correlation_id": "meta-corr"});
    assert_eq!(ext(&one(value), "correlationid"), "meta-corr");
    assert_eq!(
        ext(&one(input("user.page.view", json!({}))), "correlationid"),
        "in-1"
    );
}

#[test]
fn time_falls_back_to_the_callers_time() {
    let out = one(no_user("user.page.view", json!({"user_id": "u"})));
    assert_eq!(out.event().time, Some(fallback()));
    assert_eq!(out.event().subject, None);
}

#[test]
fn output_ids_are_deterministic_and_distinct() {
    let first = outputs(input("user.login.attempt", json!({"success": false})));
    let again = outputs(input("user.login.attempt", json!({"success": false})));
    assert_eq!(first[0].id, again[0].id);
    assert_eq!(first[1].id, again[1].id);
    assert_ne!(first[0].id, first[1].id);
    let mut other = input("user.login.attempt", json!({"success": false}));
    other["id"] = json!("in-2");
    assert_ne!(outputs(other)[0].id, first[0].id);
    // docs/topics-and-records.md, Ids (since 2026-12-01): the id is derived from the input's source
    // *and* id. Pinned literals, computed independently (Python: SHA-1 over the namespace and the
    // length-prefixed parts, RFC 9562 version 5), so a change of the derivation is caught.
    assert_eq!(first[0].id, "b097d24e-8e30-5dde-9ba2-dd941fd11986");
    assert_eq!(first[1].id, "2d7742ba-d47e-5e3d-8a88-a4130e03d557");
    assert_ne!(
        output_id("a.b", "c", "t"),
        output_id("a", "b.c", "t"),
        "parts never run into each other"
    );
    assert!(Uuid::parse_str(&first[0].id).is_ok());
}

#[test]
fn two_producers_reusing_an_id_get_different_output_ids() {
    let mine = outputs(input("user.login.attempt", json!({"success": false})));
    let mut value = input("user.login.attempt", json!({"success": false}));
    value["source"] = json!("other");
    let theirs = outputs(value);
    assert_eq!(theirs[0].id, "ce8b8f54-3f74-595a-b6a9-96122feaf066");
    assert_ne!(theirs[0].id, mine[0].id);
    assert_ne!(theirs[1].id, mine[1].id);
    // The causation stays the input's id, as docs/topics-and-records.md says.
    assert_eq!(ext(&theirs[0], "causationid"), "in-1");
}

#[test]
fn configured_topic_names_are_used() {
    let classifier = classifier_with(
        "[topics]\nuser_action = \"ua\"\nsecurity_event = \"se\"\ndata_access = \"da\"\n",
    );
    let Classified::Emit(outs) = classify_with(
        &classifier,
        input("user.login.attempt", json!({"success": false})),
    ) else {
        panic!()
    };
    assert_eq!(
        (outs[0].topic.as_str(), outs[1].topic.as_str()),
        ("ua", "se")
    );
    // Types stay what the contract says.
    assert_eq!(outs[0].ty, "audit.user.action");
    let Classified::Emit(access) = classify_with(&classifier, input("user.data.read", json!({})))
    else {
        panic!()
    };
    assert_eq!(access[0].topic, "da");
}

// Sampling (section 5)

fn sampled(classifier: &Classifier, value: Value) -> bool {
    matches!(
        classify_with(classifier, value),
        Classified::SampledOut { .. }
    )
}

#[test]
fn rate_zero_drops_routine_actions_only() {
    let classifier = classifier_with("[sampling]\n\"**\" = 0\n");
    assert_eq!(
        classify_with(&classifier, input("user.page.view", json!({}))),
        Classified::SampledOut {
            ty: "user.page.view".into(),
            rate: 0.0,
        }
    );
    assert!(sampled(&classifier, input("user.created", json!({}))));
    assert!(sampled(
        &classifier,
        input("user.newsletter.subscribed", json!({}))
    ));
    assert!(sampled(
        &classifier,
        no_user("system.backup.done", json!({}))
    ));
    // Never sampled out, whatever the rate:
    for kept in [
        no_user("system.backup.done", json!({"outcome": "failure"})),
        no_user("system.backup.done", json!({"outcome": "partial"})),
        no_user("system.backup.done", json!({"risk_level": "medium"})),
        input("user.profile.updated", json!({"changes": {"email": "e"}})),
        input("user.role.changed", json!({})),
        input("user.login.attempt", json!({"success": true})),
        input("user.login.attempt", json!({"success": false})),
        input("user.password.reset", json!({})),
        input("user.subscription.created", json!({})),
        input("user.invoice.paid", json!({})),
        input("user.data.read", json!({})),
        input("system.security.scan", json!({})),
    ] {
        let Classified::Emit(outs) = classify_with(&classifier, kept.clone()) else {
            panic!("{kept}")
        };
        for out in outs {
            assert_eq!(ext(&out, "samplerate"), json!(1), "{kept}");
        }
    }
}

#[test]
fn kept_records_carry_the_rate_and_chains_decide_together() {
    let classifier = classifier_with("[sampling]\n\"user.page.view\" = 0.5\n\"user.**\" = 0.0\n");
    let (mut kept, mut dropped) = (0, 0);
    for i in 0..200 {
        let mut first = input("user.page.view", json!({}));
        first["id"] = json!(format!("a-{i}"));
        first["correlationid"] = json!(format!("chain-{i}"));
        let mut second = first.clone();
        second["id"] = json!(format!("b-{i}"));
        match (
            classify_with(&classifier, first),
            classify_with(&classifier, second),
        ) {
            (Classified::Emit(a), Classified::Emit(b)) => {
                kept += 1;
                assert_eq!(ext(&a[0], "samplerate"), json!(0.5));
                assert_eq!(ext(&b[0], "samplerate"), json!(0.5));
            }
            (Classified::SampledOut { .. }, Classified::SampledOut { .. }) => dropped += 1,
            other => panic!("a chain split: {other:?}"),
        }
    }
    assert!(kept > 60 && dropped > 60, "{kept} kept, {dropped} dropped");
    // The more specific pattern applied; the `user.**` rate 0 did not.
    assert!(sampled(&classifier, input("user.search", json!({}))));
}

#[test]
fn bad_sampling_configuration_is_refused() {
    let config = Config {
        sampling: crate::config::SamplingRates::from_pairs([("user.*", 2.0)]),
        ..Config::default()
    };
    let err = Classifier::new(&config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sampling.\"user.*\": rate 2 is outside [0, 1]"
    );
}

// Counters (section 6)

#[test]
fn counters_add_up_to_what_was_consumed() {
    let classifier = classifier_with("[sampling]\n\"user.page.view\" = 0\n");
    let mut counters = Counters::default();
    let lines: [&[u8]; 6] = [
        br#"{"id":"1","source":"s","type":"user.login.attempt","data":{"user_id":"u","success":false}}"#,
        br#"{"id":"2","source":"s","type":"user.page.view","data":{"user_id":"u"}}"#,
        br#"{"id":"3","source":"s","type":"audit.user.action"}"#,
        br#"{"id":"4","source":"s","type":"user.page.open"}"#,
        b"not json",
        br#"{"id":"5","source":"s","type":"user.data.read","data":{"user_id":"u"}}"#,
    ];
    for line in lines {
        counters.record(&classifier.classify_structured(line, fallback()));
    }
    assert_eq!(counters.consumed, 6);
    assert_eq!(counters.audited, 2);
    assert_eq!(counters.emitted_total(), 3);
    assert_eq!(counters.emitted["audit.security.event"], 1);
    assert_eq!(counters.sampled_out["user.page.view"], 1);
    assert_eq!(counters.ignored, 1);
    assert_eq!(counters.dead_lettered[&Reason::MissingUserId], 1);
    assert_eq!(counters.dead_lettered[&Reason::InvalidJson], 1);
    assert!(counters.balanced());
}

#[test]
fn kafka_records_in_binary_mode_classify_like_structured_ones() {
    let classifier = classifier_with("");
    let headers: Vec<(&str, &[u8])> = vec![
        ("ce_specversion", b"1.0.2"),
        ("ce_id", b"in-1"),
        ("ce_source", b"svc"),
        ("ce_type", b"user.created"),
        ("ce_userid", b"u1"),
    ];
    let Classified::Emit(outs) = classifier.classify_record(headers, b"{}", fallback()) else {
        panic!()
    };
    assert_eq!(outs[0].key, "u1");
    assert_eq!(outs[0].event().time, Some(fallback()));
}

/// What `output_id` computed before it fed SHA-1 itself: the definition of the ids.
fn output_id_by_uuid_v5(input_source: &str, input_id: &str, output_type: &str) -> String {
    let parts = [input_source, input_id, output_type];
    let mut name = Vec::new();
    for part in parts {
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    Uuid::new_v5(&OUTPUT_ID_NAMESPACE, &name).to_string()
}

proptest::proptest! {
    #[test]
    fn output_ids_are_uuid_v5_of_the_length_prefixed_parts(
        source in "\\PC{0,80}", id in "\\PC{0,80}", ty in "[a-z.]{0,30}",
    ) {
        proptest::prop_assert_eq!(output_id(&source, &id, &ty), output_id_by_uuid_v5(&source, &id, &ty));
    }
}

#[test]
fn output_ids_are_uuid_v5_at_every_block_boundary() {
    // SHA-1 pads in 64-byte blocks: cover every length of name across a few of them.
    for n in 0..200 {
        let source = "s".repeat(n);
        assert_eq!(
            output_id(&source, "id", USER_ACTION_TYPE),
            output_id_by_uuid_v5(&source, "id", USER_ACTION_TYPE)
        );
    }
}

const USER_ACTION_TYPE: &str = crate::audit_record::USER_ACTION;
