//! `auditflow detect` end to end: the real binary, fed what the real `auditflow classify`
//! writes, checked against docs/security-rules.md.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn auditflow(args: &[&str], stdin: &str) -> Output {
    auditflow_with(args, stdin, &[])
}

/// Runs the binary with `env` set (and no id secret or config from the caller's environment).
fn auditflow_with(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditflow"))
        .args(args)
        .env_remove("AUDITFLOW_CONFIG")
        .env_remove("AUDITFLOW_ID_SECRET")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the auditflow binary runs");
    // Written from a thread: a large input must not deadlock against a full stdout pipe.
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().expect("auditflow finishes");
    writer
        .join()
        .expect("the writer thread")
        .expect("stdin accepted");
    output
}

fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

fn parse_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

/// `auditflow classify | auditflow detect`, returning detect's output lines.
fn classify_then_detect(events: &[Value], detect_args: &[&str]) -> Vec<Value> {
    let classified = auditflow(&["classify"], &ndjson(events));
    assert!(
        classified.status.success(),
        "classify: {}",
        String::from_utf8_lossy(&classified.stderr)
    );
    let mut args = vec!["detect"];
    args.extend_from_slice(detect_args);
    let detected = auditflow(&args, &String::from_utf8_lossy(&classified.stdout));
    assert!(
        detected.status.success(),
        "detect: {}",
        String::from_utf8_lossy(&detected.stderr)
    );
    parse_lines(&detected.stdout)
}

fn on<'a>(lines: &'a [Value], topic: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["topic"] == topic).collect()
}

fn at(second: u32) -> String {
    format!("2024-05-01T10:{:02}:{:02}Z", second / 60, second % 60)
}

fn failed_login(i: u32, user: &str, ip: &str) -> Value {
    json!({"specversion": "1.0.2", "id": format!("login-{i}"), "source": "auth", "type": "user.login.attempt",
           "time": at(i), "data": {"user_id": user, "success": false, "ip_address": ip}})
}

#[test]
fn twenty_one_failed_logins_from_one_ip() {
    let events: Vec<Value> = (0..21)
        .map(|i| failed_login(i, "alice", "203.0.113.5"))
        .collect();
    let lines = classify_then_detect(&events, &[]);

    let alerts = on(&lines, "security.alerts");
    let levels: Vec<&str> = alerts
        .iter()
        .map(|a| a["value"]["data"]["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["medium", "high", "critical"]);
    for alert in &alerts {
        assert_eq!(alert["key"], "203.0.113.5");
        let value = &alert["value"];
        assert_eq!(value["type"], "security.alert");
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["data"]["rule"], "brute_force");
        assert_eq!(value["data"]["source_ip"], "203.0.113.5");
        assert_eq!(value["data"]["user_id"], "alice");
    }
    let scores: Vec<u64> = alerts
        .iter()
        .map(|a| a["value"]["data"]["score"].as_u64().unwrap())
        .collect();
    assert_eq!(scores, [50, 80, 95]);
    let counts: Vec<u64> = alerts
        .iter()
        .map(|a| a["value"]["data"]["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [6, 11, 21]);

    let critical = &alerts[2]["value"];
    assert_eq!(critical["data"]["evidence"].as_array().unwrap().len(), 21);
    assert_eq!(critical["data"]["window_end"], at(20));
    assert_eq!(critical["data"]["window_start"], "2024-05-01T09:50:20Z");
    // Raised by the 21st failure's security event, in its conversation.
    assert_eq!(critical["correlationid"], "login-20");
    assert_eq!(critical["causationid"], critical["data"]["evidence"][20]);

    let actions = on(&lines, "security.actions");
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0]["key"], "203.0.113.5");
    assert_eq!(
        actions[0]["value"]["data"],
        json!({"action": "block_ip", "ip": "203.0.113.5", "reason": "brute_force",
               "expires_at": "2024-05-01T11:00:20Z"})
    );
    assert_eq!(actions[1]["key"], "alice");
    assert_eq!(
        actions[1]["value"]["data"],
        json!({"action": "disable_account", "user_id": "alice", "reason": "security_threat"})
    );
    for action in &actions {
        assert_eq!(action["value"]["type"], "security.action");
        assert_eq!(action["value"]["causationid"], critical["id"]);
    }

    let blocklist = on(&lines, "security.blocklist");
    assert_eq!(blocklist.len(), 1);
    assert_eq!(blocklist[0]["key"], "203.0.113.5");
    assert_eq!(
        blocklist[0]["value"]["data"]["expires_at"],
        "2024-05-01T11:00:20Z"
    );
    assert_eq!(lines.len(), 6, "nothing else: {lines:#?}");
}

#[test]
fn a_replayed_input_reproduces_every_id() {
    let events: Vec<Value> = (0..21)
        .map(|i| failed_login(i, "alice", "203.0.113.5"))
        .collect();
    assert_eq!(
        classify_then_detect(&events, &[]),
        classify_then_detect(&events, &[])
    );
}

#[test]
fn failures_of_an_unknown_user_block_the_ip_only() {
    let events: Vec<Value> = (0..21)
        .map(|i| {
            json!({"id": format!("x{i}"), "source": "auth", "type": "user.login.attempt", "time": at(i),
                   "data": {"success": false, "ip_address": "198.51.100.9"}})
        })
        .collect();
    let lines = classify_then_detect(&events, &[]);
    let actions = on(&lines, "security.actions");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["value"]["data"]["action"], "block_ip");
    assert!(
        on(&lines, "security.alerts")
            .iter()
            .all(|a| a["value"]["data"].get("user_id").is_none())
    );
}

#[test]
fn ten_distinct_users_from_one_ip_is_credential_stuffing() {
    let events: Vec<Value> = (0..10)
        .map(|i| failed_login(i, &format!("user{i}"), "192.0.2.44"))
        .collect();
    let lines = classify_then_detect(&events, &[]);
    let alerts: Vec<(&str, &str, u64)> = on(&lines, "security.alerts")
        .iter()
        .map(|a| {
            let d = &a["value"]["data"];
            (
                d["rule"].as_str().unwrap(),
                d["level"].as_str().unwrap(),
                d["score"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        alerts,
        [
            ("brute_force", "medium", 50),
            ("credential_stuffing", "high", 85)
        ]
    );
    assert_eq!(
        on(&lines, "security.alerts")[1]["value"]["data"]["count"],
        10
    );

    // Nine users (ten failures): no credential stuffing.
    let mut events: Vec<Value> = (0..9)
        .map(|i| failed_login(i, &format!("user{i}"), "192.0.2.44"))
        .collect();
    events.push(failed_login(9, "user0", "192.0.2.44"));
    let lines = classify_then_detect(&events, &[]);
    assert!(
        on(&lines, "security.alerts")
            .iter()
            .all(|a| a["value"]["data"]["rule"] == "brute_force")
    );
}

fn login(i: u32, time: &str, user: &str, ip: &str, (lat, lon): (f64, f64)) -> Value {
    json!({"id": format!("ok-{i}"), "source": "auth", "type": "user.login.attempt", "time": time,
           "data": {"user_id": user, "success": true, "ip_address": ip,
                    "geo": {"lat": lat, "lon": lon, "country": "XX"}}})
}

const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
const LONDON: (f64, f64) = (51.5074, -0.1278);

#[test]
fn impossible_travel() {
    // New York, then London an hour later (~5570 km at ~5570 km/h).
    let events = [
        login(1, "2024-05-01T10:00:00Z", "bob", "198.51.100.1", NEW_YORK),
        login(2, "2024-05-01T11:00:00Z", "bob", "198.51.100.2", LONDON),
    ];
    let lines = classify_then_detect(&events, &[]);
    let alerts = on(&lines, "security.alerts");
    assert_eq!(alerts.len(), 1);
    let data = &alerts[0]["value"]["data"];
    assert_eq!(
        (
            data["rule"].as_str(),
            data["level"].as_str(),
            data["score"].as_u64()
        ),
        (Some("impossible_travel"), Some("critical"), Some(90))
    );
    assert_eq!(alerts[0]["key"], "bob");
    assert_eq!(data["user_id"], "bob");
    assert_eq!(data["evidence"].as_array().unwrap().len(), 2);
    let actions: Vec<&str> = on(&lines, "security.actions")
        .iter()
        .map(|a| a["value"]["data"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["block_ip", "disable_account"]);
    assert_eq!(on(&lines, "security.blocklist")[0]["key"], "198.51.100.2");

    // Seven hours later is ~800 km/h: a flight, not an anomaly.
    let events = [
        login(1, "2024-05-01T10:00:00Z", "bob", "198.51.100.1", NEW_YORK),
        login(2, "2024-05-01T17:00:00Z", "bob", "198.51.100.2", LONDON),
    ];
    assert!(classify_then_detect(&events, &[]).is_empty());
}

fn role_change(i: u32, user: &str, role: &str, by: &str) -> Value {
    json!({"id": format!("role-{i}"), "source": "admin", "type": "user.role.changed", "time": at(i),
           "data": {"user_id": user, "new_role": role, "old_role": "member", "changed_by": by}})
}

#[test]
fn privilege_escalation() {
    let lines = classify_then_detect(&[role_change(1, "carol", "admin", "dave")], &[]);
    assert_eq!(lines.len(), 1);
    let data = &lines[0]["value"]["data"];
    assert_eq!(
        (
            data["rule"].as_str(),
            data["level"].as_str(),
            data["score"].as_u64()
        ),
        (Some("privilege_escalation"), Some("high"), Some(80))
    );
    assert_eq!(lines[0]["key"], "carol");

    // Self-granted: critical, and the account is disabled (no ip is known, so none is blocked).
    let lines = classify_then_detect(&[role_change(1, "carol", "root", "carol")], &[]);
    let data = &lines[0]["value"]["data"];
    assert_eq!(
        (data["level"].as_str(), data["score"].as_u64()),
        (Some("critical"), Some(95))
    );
    let actions = on(&lines, "security.actions");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["value"]["data"]["action"], "disable_account");
    assert!(on(&lines, "security.blocklist").is_empty());

    // Not a privileged role: nothing.
    assert!(classify_then_detect(&[role_change(1, "carol", "editor", "carol")], &[]).is_empty());
}

#[test]
fn the_blocklist_entry_is_tombstoned_when_event_time_passes_its_expiry() {
    let mut events: Vec<Value> = (0..21)
        .map(|i| failed_login(i, "alice", "203.0.113.5"))
        .collect();
    // Any event an hour and a bit later moves the clock past the block's expiry.
    events.push(
        json!({"id": "later", "source": "app", "type": "user.page.view",
                       "time": "2024-05-01T11:00:21Z", "data": {"user_id": "zoe"}}),
    );
    let lines = classify_then_detect(&events, &[]);
    let blocklist = on(&lines, "security.blocklist");
    assert_eq!(blocklist.len(), 2);
    assert_eq!(blocklist[1]["key"], "203.0.113.5");
    assert_eq!(blocklist[1]["value"], Value::Null);
}

#[test]
fn thresholds_come_from_the_config_file() {
    let dir = std::env::temp_dir().join(format!("auditflow-detect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("security.toml");
    std::fs::write(&config, "[security]\nbrute_force_medium_above = 1\nbrute_force_high_above = 2\nbrute_force_critical_above = 3\n").unwrap();
    let events: Vec<Value> = (0..4)
        .map(|i| failed_login(i, "alice", "203.0.113.5"))
        .collect();
    let lines = classify_then_detect(&events, &["--config", config.to_str().unwrap()]);
    let levels: Vec<&str> = on(&lines, "security.alerts")
        .iter()
        .map(|a| a["value"]["data"]["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["medium", "high", "critical"]);

    std::fs::write(&config, "[security]\ngrace_secs = 600\n").unwrap();
    let out = auditflow(&["detect", "--config", config.to_str().unwrap()], "");
    assert_eq!(
        out.status.code(),
        Some(2),
        "unusable settings are bad usage"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bare_cloudevents_and_bad_lines() {
    let bare = json!({"specversion": "1.0", "id": "s1", "source": "x", "type": "audit.user.action",
                      "time": "2024-05-01T10:00:00Z",
                      "data": {"user_id": "carol", "action": "privilege_change", "outcome": "success",
                               "context": {"new_role": "owner", "changed_by": "dave"}}});
    let input = format!(
        "{bare}\nnot json\n{}\n{}\n",
        json!({"id": "s2", "source": "x", "type": "audit.user.action", "data": {"action": "x"}}),
        json!({"id": "s3", "source": "x", "type": "audit.data.access", "data": {}}),
    );
    let out = auditflow(&["detect"], &input);
    assert!(out.status.success());
    let lines = parse_lines(&out.stdout);
    assert_eq!(lines[0]["value"]["data"]["rule"], "privilege_escalation");
    // The detail is the core parser's, passed through as it is.
    let detail = auditflow_core::envelope::parse_structured(b"not json", &Default::default())
        .unwrap_err()
        .detail;
    assert!(!detail.is_empty());
    assert_eq!(
        lines[1],
        json!({"topic": "audit.dlq", "error": "invalid_json", "detail": detail, "line": 2})
    );
    assert_eq!(lines[2]["error"], "schema_violation");
    assert_eq!(lines[2]["line"], 3);
    assert_eq!(lines.len(), 3, "the data access is ignored");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 lines") && stderr.contains("1 ignored"),
        "{stderr}"
    );
}

/// What `auditflow classify` makes of `events`, as its stdout.
fn classified(events: &[Value]) -> String {
    let out = auditflow(&["classify"], &ndjson(events));
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn ids(stdout: &[u8]) -> Vec<String> {
    parse_lines(stdout)
        .iter()
        .filter_map(|l| l["value"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn ids_are_keyed_by_the_id_secret_as_in_the_service() {
    let events: Vec<Value> = (0..21)
        .map(|i| failed_login(i, "alice", "203.0.113.5"))
        .collect();
    let input = classified(&events);
    let secret = "5e".repeat(32);

    // Without a secret: the public development one, said once on stderr.
    let dev = auditflow_with(&["detect"], &input, &[]);
    assert!(dev.status.success());
    let stderr = String::from_utf8_lossy(&dev.stderr);
    assert_eq!(
        stderr.matches("PUBLIC development id secret").count(),
        1,
        "{stderr}"
    );
    let keyed = auditflow_with(&["detect"], &input, &[("AUDITFLOW_ID_SECRET", &secret)]);
    assert!(keyed.status.success());
    assert!(!String::from_utf8_lossy(&keyed.stderr).contains("development id secret"));
    let (dev_ids, keyed_ids) = (ids(&dev.stdout), ids(&keyed.stdout));
    assert_eq!(dev_ids.len(), 6, "3 alerts, 2 actions, 1 blocklist entry");
    assert_eq!(keyed_ids.len(), 6);
    assert!(
        dev_ids.iter().all(|id| !keyed_ids.contains(id)),
        "another secret, other ids"
    );

    // The engine the service runs, under the same secret, gives the same ids.
    let config = auditflow_core::Config::default();
    let mut engine = auditflow_core::detect::Detector::new(
        &config.security,
        auditflow_core::detect::IdSecret::from_hex(&secret).unwrap(),
    )
    .unwrap();
    let mut expected = Vec::new();
    for line in input.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        if record["topic"] != "audit.security.event" {
            continue;
        }
        let event =
            auditflow_core::Event::from_json_object(record["value"].as_object().unwrap().clone())
                .unwrap();
        let obs = auditflow_core::detect::Observation::from_event(&event, chrono::Utc::now())
            .unwrap()
            .unwrap();
        for out in engine.observe(&obs, auditflow_core::detect::Mode::Live, chrono::Utc::now()) {
            expected.extend(out.to_event().map(|e| e.id));
        }
    }
    assert_eq!(keyed_ids, expected);

    // A secret that is not 64 hex digits is bad usage, named, never echoed.
    let bad = auditflow_with(&["detect"], "", &[("AUDITFLOW_ID_SECRET", "sekrit")]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("AUDITFLOW_ID_SECRET") && !stderr.contains("sekrit"),
        "{stderr}"
    );
}

#[test]
fn ipv6_sources_are_counted_and_blocked_by_their_64() {
    // Three spellings of addresses in one /64, and an IPv4-mapped address elsewhere.
    let spellings = [
        "2001:DB8:0:7::1",
        "2001:db8:0:7::2",
        "2001:0db8:0000:0007:ffff::1",
    ];
    let events: Vec<Value> = (0..21)
        .map(|i| failed_login(i, "alice", spellings[i as usize % 3]))
        .collect();
    let lines = classify_then_detect(&events, &[]);
    let alerts = on(&lines, "security.alerts");
    assert_eq!(alerts.len(), 3, "{lines:#?}");
    for alert in &alerts {
        assert_eq!(alert["key"], "2001:db8:0:7::/64");
        assert_eq!(alert["value"]["data"]["source_ip"], "2001:db8:0:7::/64");
    }
    let block = on(&lines, "security.actions")[0];
    assert_eq!(block["value"]["data"]["ip"], "2001:db8:0:7::/64");
    assert_eq!(
        on(&lines, "security.blocklist")[0]["key"],
        "2001:db8:0:7::/64"
    );

    let events: Vec<Value> = (0..6)
        .map(|i| failed_login(i, "alice", ["10.9.8.7", "::ffff:10.9.8.7"][i as usize % 2]))
        .collect();
    let alerts = classify_then_detect(&events, &[]);
    assert_eq!(alerts.len(), 1, "6 failures from one source: medium");
    assert_eq!(alerts[0]["value"]["data"]["source_ip"], "10.9.8.7");
}

#[test]
fn a_far_future_failure_is_counted_and_said() {
    let mut events: Vec<Value> = (0..21)
        .map(|i| failed_login(i, "alice", "203.0.113.5"))
        .collect();
    events[10]["time"] = "9999-01-01T00:00:00Z".into();
    let out = auditflow(&["detect", "--json"], &classified(&events));
    assert!(out.status.success());
    let levels: Vec<Value> = parse_lines(&out.stdout)
        .iter()
        .filter(|l| l["topic"] == "security.alerts")
        .map(|l| l["value"]["data"]["level"].clone())
        .collect();
    assert_eq!(levels, ["medium", "high", "critical"]);
    let summary: Value = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON summary on stderr");
    // The login attempt's user action and its security event.
    assert_eq!(summary["future_dated"], 2);
    assert_eq!(summary["too_late"], 0);
}

#[test]
fn the_monitor_refuses_to_start_off_loopback_without_an_id_secret() {
    let out = auditflow_with(
        &["run", "security-monitor"],
        "",
        &[
            ("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", "kafka-1.invalid:9092"),
            ("AUDITFLOW_METRICS__LISTEN", "127.0.0.1:0"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr.lines().last().unwrap_or_default();
    assert!(
        reason.contains("id_secret_file") && reason.contains("$AUDITFLOW_ID_SECRET"),
        "one line naming the setting: {stderr}"
    );
}
