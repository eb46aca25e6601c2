//! OCSF output validated against the schema of the pinned version (OCSF 1.8.0, checked in under
//! `tests/ocsf/` with its validator): a corpus that reaches every class auditflow emits goes
//! through the real `auditflow classify`, `detect` and `ocsf` commands; every event must be
//! valid (required attributes, types, enum ids, siblings, millisecond times), every class of
//! `auditflow_core::ocsf::classes::ALL` must occur, and broken events must be refused — the
//! validation can fail. Pseudonymised output must hold no user id or ip and stay valid.
//! The corpus, the commands and the validator are `tests/support/ocsf.rs`.

use std::collections::BTreeSet;

use auditflow_core::ocsf::classes;
use auditflow_integration_tests::ocsf::{KEY, auditflow, events, ocsf_of_corpus, validate};
use serde_json::json;

#[test]
fn every_class_emitted_is_valid_ocsf_1_8_0() {
    let ocsf = ocsf_of_corpus(&[]);
    let all = events(&ocsf);
    let found: BTreeSet<u64> = all
        .iter()
        .map(|e| e["class_uid"].as_u64().unwrap())
        .collect();
    let emitted: BTreeSet<u64> = classes::ALL.iter().map(|c| u64::from(c.uid)).collect();
    assert_eq!(found, emitted, "the corpus reaches every class");
    for e in &all {
        assert_eq!(e["metadata"]["version"], "1.8.0");
        assert_eq!(
            e["type_uid"].as_u64().unwrap(),
            e["class_uid"].as_u64().unwrap() * 100 + e["activity_id"].as_u64().unwrap()
        );
    }
    let out = validate(&ocsf);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains(&format!("ocsf: {} valid, 0 invalid", all.len())),
        "{report}"
    );
    // A replay gives the same events, byte for byte.
    assert_eq!(ocsf_of_corpus(&[]), ocsf);
}

#[test]
fn the_validation_refuses_broken_events() {
    let all = events(&ocsf_of_corpus(&[]));
    let logon = all.iter().find(|e| e["class_uid"] == 3002).unwrap();
    let mut no_user = logon.clone();
    no_user.as_object_mut().unwrap().remove("user");
    let mut bad_activity = logon.clone();
    bad_activity["activity_id"] = json!(42);
    let mut seconds = logon.clone();
    seconds["time"] = json!(logon["time"].as_i64().unwrap() / 1000);
    let finding = all.iter().find(|e| e["class_uid"] == 2004).unwrap();
    let mut no_uid = finding.clone();
    no_uid["finding_info"]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    for (what, broken) in [
        ("no user", no_user),
        ("activity 42", bad_activity),
        ("a time in seconds", seconds),
        ("a finding without uid", no_uid),
    ] {
        let out = validate(format!("{broken}\n").as_bytes());
        assert_eq!(out.status.code(), Some(1), "{what} was accepted");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ocsf: 0 valid, 1 invalid"),
            "{what}"
        );
    }
}

#[test]
fn pseudonymised_output_names_no_user_or_ip_and_stays_valid() {
    let env = [
        ("AUDITFLOW_OCSF__PSEUDONYMIZE", "true"),
        ("AUDITFLOW_OCSF_PSEUDONYM_KEY", KEY),
    ];
    let ocsf = ocsf_of_corpus(&env);
    let text = String::from_utf8(ocsf.clone()).unwrap();
    for personal in [
        "u-ana",
        "u-bob",
        "u-root",
        "192.0.2.10",
        "203.0.113.66",
        "198.51.100.7",
    ] {
        assert!(
            !text.contains(personal),
            "{personal} in pseudonymised output"
        );
    }
    let out = validate(&ocsf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // One user is one pseudonym across events.
    let all = events(&ocsf);
    let users: BTreeSet<&str> = all
        .iter()
        .filter(|e| e["class_uid"] == 3001)
        .filter_map(|e| e["user"]["uid"].as_str())
        .collect();
    assert_eq!(users.len(), 1, "{users:?}");
    // Without the key it refuses, naming the setting.
    let refused = auditflow(&["ocsf"], &env[..1], b"");
    assert_eq!(refused.status.code(), Some(2));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("AUDITFLOW_OCSF_PSEUDONYM_KEY"), "{why}");
}
