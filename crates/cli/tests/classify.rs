//! `auditflow classify` as an operator runs it: the built binary, stdin to stdout (docs/cli.md).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn lifecycle_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/recipe-lifecycle.ndjson")
}

fn classify_with(input: &[u8], args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auditflow"));
    command
        .arg("classify")
        .args(args)
        .env_remove("AUDITFLOW_CONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the auditflow binary runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

fn classify(input: &[u8]) -> Output {
    classify_with(input, &[], &[])
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("stdout is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("every stdout line is JSON"))
        .collect()
}

#[test]
fn the_recipe_lifecycle() {
    let input = std::fs::read(lifecycle_path()).expect("docs/examples/ is in the repository");
    let output = classify(&input);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout_lines(&output);
    let summary: Vec<(&str, &str, &str, &str)> = lines
        .iter()
        .map(|line| {
            let value = &line["value"];
            let data = &value["data"];
            let what = data["action"]
                .as_str()
                .or(data["event_type"].as_str())
                .or(data["operation"].as_str())
                .unwrap();
            (
                line["topic"].as_str().unwrap(),
                line["key"].as_str().unwrap(),
                what,
                value["retention"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "audit.user.action",
                "demo_user_1",
                "account_created",
                "general"
            ),
            (
                "audit.user.action",
                "demo_user_1",
                "user.email.verified",
                "general"
            ),
            (
                "audit.user.action",
                "demo_user_1",
                "login_attempt",
                "security"
            ),
            (
                "audit.user.action",
                "demo_user_1",
                "profile_update",
                "general"
            ),
            (
                "audit.user.action",
                "demo_user_1",
                "user.subscription.created",
                "financial"
            ),
            (
                "audit.user.action",
                "demo_user_1",
                "login_attempt",
                "security"
            ),
            (
                "audit.security.event",
                "203.0.113.42",
                "failed_login",
                "security"
            ),
            ("audit.data.access", "demo_user_1", "read", "general"),
        ]
    );
    let risks: Vec<&Value> = lines
        .iter()
        .map(|line| &line["value"]["data"]["risk_level"])
        .collect();
    assert_eq!(
        risks,
        [
            &json!("low"),
            &json!("low"),
            &json!("low"),
            &json!("medium"),
            &json!("low"),
            &json!("high"),
            &Value::Null,
            &Value::Null
        ]
    );

    let failed = &lines[5]["value"];
    assert_eq!(failed["data"]["outcome"], "failure");
    assert_eq!(failed["data"]["ip_address"], "203.0.113.42");
    let security = &lines[6]["value"];
    assert_eq!(security["type"], "audit.security.event");
    assert_eq!(security["data"]["severity"], "critical");
    assert_eq!(security["data"]["source_ip"], "203.0.113.42");
    assert_eq!(security["data"]["user_id"], "demo_user_1");
    assert_eq!(
        security["data"]["details"]["failure_reason"],
        "invalid_password"
    );
    assert_eq!(
        security["causationid"],
        "0193a1f0-0000-7000-8000-000000000006"
    );
    assert_eq!(security["causationid"], failed["causationid"]);
    assert_ne!(security["id"], failed["id"]);

    let profile = &lines[3]["value"]["data"];
    assert_eq!(
        profile["context"],
        json!({"sensitive_data": true, "fields_changed": ["name", "phone", "preferences"]})
    );
    let access = &lines[7]["value"]["data"];
    assert_eq!(
        *access,
        json!({"user_id": "demo_user_1", "data_type": "user_profile", "operation": "read", "record_count": 1, "sensitive": false})
    );
    let created = &lines[0]["value"];
    assert_eq!(created["data"]["ip_address"], "192.168.1.100");
    assert_eq!(created["specversion"], "1.0");
    assert_eq!(created["time"], "2026-11-20T10:00:00Z");
    assert_eq!(created["originaltype"], "user.created");
    assert_eq!(created["samplerate"], 1);
    assert_eq!(lines[1]["value"]["subject"], "user:demo_user_1");

    // The same input gives the same ids.
    let again = stdout_lines(&classify(&input));
    assert_eq!(
        again
            .iter()
            .map(|l| l["value"]["id"].clone())
            .collect::<Vec<_>>(),
        lines
            .iter()
            .map(|l| l["value"]["id"].clone())
            .collect::<Vec<_>>()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("7 lines") && stderr.contains("8 records"),
        "{stderr}"
    );
}

fn nested(depth: usize) -> String {
    let inner = format!("{}{}", "[".repeat(depth - 2), "]".repeat(depth - 2));
    format!(
        r#"{{"id":"deep","source":"s","type":"user.deep","subject":"user:u","data":{{"n":{inner}}}}}"#
    )
}

#[test]
fn garbage_becomes_dead_letter_lines_and_the_run_goes_on() {
    let mut input: Vec<u8> = Vec::new();
    let mut push = |line: &[u8]| {
        input.extend_from_slice(line);
        input.push(b'\n');
    };
    push(b"{\"id\":\"\xff\xfe\",\"source\":\"s\",\"type\":\"user.x\"}"); // 1 invalid UTF-8
    push(&vec![b'x'; 2 * 1024 * 1024]); // 2 2 MB
    push(b""); // 3 empty
    push(b"[1,2]"); // 4
    push(br#"{"source":"s","type":"user.x","subject":"user:u"}"#); // 5 missing id
    push(br#"{"specversion":"0.3","id":"a","source":"s","type":"user.x","subject":"user:u"}"#); // 6
    push(nested(65).as_bytes()); // 7
    push(nested(64).as_bytes()); // 8 fine
    push(b"\x00\x01\x02binary\x7f"); // 9
    push(b"   \t "); // 10 blank
    push(br#"{"id":"n","source":"s","type":"user.page.view"}"#); // 11 no user
    push(br#"{"id":"a","source":"s","type":"user..x"}"#); // 12 bad type
    push(br#"{"id":"ok","source":"s","type":"user.page.view","userid":"u9"}"#); // 13 fine
    let output = classify(&input);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout_lines(&output);
    let seen: Vec<(Value, Value)> = lines
        .iter()
        .map(|line| {
            (
                line["line"].clone(),
                line.get("error")
                    .cloned()
                    .unwrap_or_else(|| line["topic"].clone()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!(1), json!("invalid_json")),
            (json!(2), json!("too_large")),
            (json!(3), json!("invalid_json")),
            (json!(4), json!("invalid_envelope")),
            (json!(5), json!("invalid_envelope")),
            (json!(6), json!("invalid_envelope")),
            (json!(7), json!("invalid_json")),
            (Value::Null, json!("audit.user.action")),
            (json!(9), json!("invalid_json")),
            (json!(10), json!("invalid_json")),
            (json!(11), json!("missing_user_id")),
            (json!(12), json!("invalid_envelope")),
            (Value::Null, json!("audit.user.action")),
        ]
    );
    for line in lines.iter().filter(|line| line.get("error").is_some()) {
        assert_eq!(line["topic"], "audit.dlq");
        assert!(
            line["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{line}"
        );
    }
    assert_eq!(lines[2]["detail"], "empty line");
    assert_eq!(lines[7]["value"]["causationid"], "deep");
    assert_eq!(lines[12]["key"], "u9");
}

#[test]
fn a_final_line_without_newline_counts() {
    let output = classify(br#"{"id":"a","source":"s","type":"user.x","userid":"u"}"#);
    assert_eq!(stdout_lines(&output).len(), 1);
}

#[test]
fn sampling_from_the_config_file_and_the_environment() {
    let dir = std::env::temp_dir().join(format!("auditflow-classify-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sampling.toml");
    std::fs::write(&file, "[sampling]\n\"user.page.view\" = 0\n").unwrap();
    let input = br#"{"id":"a","source":"s","type":"user.page.view","userid":"u"}
{"id":"b","source":"s","type":"user.search","userid":"u"}
{"id":"c","source":"s","type":"user.login.attempt","userid":"u","data":{"success":false}}
{"id":"d","source":"s","type":"audit.user.action"}
"#;
    let output = classify_with(
        input,
        &["--config", file.to_str().unwrap()],
        &[("AUDITFLOW_SAMPLING__USER.SEARCH", "0")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let types: Vec<Value> = stdout_lines(&output)
        .iter()
        .map(|l| l["value"]["originaltype"].clone())
        .collect();
    assert_eq!(
        types,
        [json!("user.login.attempt"), json!("user.login.attempt")]
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 sampled out") && stderr.contains("1 ignored"),
        "{stderr}"
    );

    let json_summary = classify_with(input, &["--config", file.to_str().unwrap(), "--json"], &[]);
    let counters: Value = serde_json::from_slice(&json_summary.stderr).unwrap();
    assert_eq!(counters["consumed"], 4);
    assert_eq!(counters["sampled_out"], json!({"user.page.view": 1}));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_configuration_is_a_usage_error_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("auditflow-classify-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[sampling]\n\"user.page.view\" = 1.5\n").unwrap();
    let output = classify_with(b"", &["--config", file.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("sampling.\"user.page.view\": rate 1.5 is outside [0, 1]"),
        "{stderr}"
    );

    let env = classify_with(b"", &[], &[("AUDITFLOW_LIMITS__MAX_RECORD_BYTES", "many")]);
    assert_eq!(env.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&env.stderr).contains("limits.max_record_bytes"));

    let missing = classify_with(
        b"",
        &["--config", dir.join("absent.toml").to_str().unwrap()],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditflow"))
        .arg("classify")
        .env_remove("AUDITFLOW_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = br#"{"id":"a","source":"s","type":"user.x","userid":"u"}"#;
        for _ in 0..200_000 {
            if stdin
                .write_all(line)
                .and_then(|_| stdin.write_all(b"\n"))
                .is_err()
            {
                break;
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    writer.join().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// SPEC section 2: offline, an event without `time` gets the time its line was read. Each line
/// is bounded by clock readings taken here around it: not before the command started (nor,
/// for the second line, before it was written), not after the command ended. No timing
/// assumption: how slow the machine is only widens the bounds.
#[test]
fn an_event_without_time_gets_the_time_its_line_was_read() {
    use chrono::{DateTime, Utc};
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditflow"))
        .arg("classify")
        .env_remove("AUDITFLOW_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the auditflow binary runs");
    let before = Utc::now();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            b"{\"id\":\"t1\",\"source\":\"s\",\"type\":\"user.page.view\",\"userid\":\"u\"}\n",
        )
        .unwrap();
    stdin.flush().unwrap();
    let between = Utc::now();
    stdin
        .write_all(concat!(
            r#"{"id":"t2","source":"s","type":"user.page.view","userid":"u"}"#,
            "\n",
            r#"{"id":"t3","source":"s","type":"user.page.view","userid":"u","time":"2026-11-20T10:00:00.5Z"}"#,
            "\n"
        ).as_bytes())
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let after = Utc::now();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout_lines(&output);
    let time = |n: usize| -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(lines[n]["value"]["time"].as_str().expect("a time"))
            .expect("RFC 3339")
            .with_timezone(&Utc)
    };
    assert_eq!(lines.len(), 3);
    assert!(
        before <= time(0) && time(0) <= after,
        "{before} <= {} <= {after}",
        time(0)
    );
    assert!(
        between <= time(1) && time(1) <= after,
        "written at {between}, read at {}, done at {after}",
        time(1)
    );
    assert_eq!(lines[2]["value"]["time"], "2026-11-20T10:00:00.500Z");
}

/// SPEC section 2: extension names are lowercase letters and digits. `userId` and `user_id` as
/// top-level members are no `userid` extension: they name no user, so the event is the
/// dead letter `missing_user_id`, as any event without a user id (and, as a CloudEvents reader
/// would, `userid` does name one).
#[test]
fn top_level_user_id_spellings_that_are_no_extension_name_name_no_user() {
    let output = classify(
        concat!(
            r#"{"id":"a","source":"s","type":"user.page.view","userId":"camel"}"#,
            "\n",
            r#"{"id":"b","source":"s","type":"user.page.view","user_id":"snake"}"#,
            "\n",
            r#"{"id":"c","source":"s","type":"user.page.view","USERID":"upper"}"#,
            "\n",
            r#"{"id":"d","source":"s","type":"user.page.view","userid":"lower"}"#,
            "\n",
        )
        .as_bytes(),
    );
    let lines = stdout_lines(&output);
    let seen: Vec<(Value, Value)> = lines
        .iter()
        .map(|l| {
            (
                l["line"].clone(),
                l.get("error").cloned().unwrap_or(l["key"].clone()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!(1), json!("missing_user_id")),
            (json!(2), json!("missing_user_id")),
            (json!(3), json!("missing_user_id")),
            (Value::Null, json!("lower")),
        ]
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("camel"));
}
