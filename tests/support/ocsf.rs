//! OCSF fixtures (docs/ocsf.md): a corpus that reaches every class auditflow emits, the
//! offline `auditflow classify`/`detect`/`ocsf` commands run over it, and the checked-in
//! validator of OCSF 1.8.0 (`tests/ocsf/`, Python standard library only: `.ci/run` installs
//! `python3` when it is missing; without it the tests that validate fail and say so).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::processes::auditflow_binary;

/// A pseudonym key for the tests (64 hex digits).
pub const KEY: &str = "5f0c2a9d7e3b41c8a6d2f0e9b8c7a6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9";

/// The checked-in validator.
pub fn validator() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ocsf/validate_ocsf.py")
}

/// Runs `command` with `input` on stdin.
pub fn piped(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("waiting");
    writer.join().unwrap().expect("writing stdin");
    out
}

/// The real `auditflow <args>` with `env`, over `input`, the machine's OCSF key unset.
pub fn auditflow(args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Output {
    let mut command = Command::new(auditflow_binary());
    command.args(args).env("RUST_LOG", "error");
    // The machine's own settings must not leak in.
    command.env_remove("AUDITFLOW_OCSF_PSEUDONYM_KEY");
    for (k, v) in env {
        command.env(k, v);
    }
    piped(command, input)
}

/// `out`'s stdout, once it is known to have succeeded.
pub fn ok(out: &Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

/// `python3 validate_ocsf.py --strict-siblings --strict-time` over `events`.
pub fn validate(events: &[u8]) -> Output {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!(
            "this test validates OCSF output with python3, and none is installed: \
             `apt-get install python3` (.ci/run installs it)"
        );
    }
    let mut command = Command::new("python3");
    command
        .arg(validator())
        .args(["--strict-siblings", "--strict-time"]);
    piped(command, events)
}

/// One input CloudEvent as a line.
pub fn event(id: &str, ty: &str, time: &str, data: Value, ext: Value) -> String {
    let mut e = json!({"specversion": "1.0", "id": id, "source": "/ocsf-test", "type": ty,
                       "time": time, "data": data});
    e.as_object_mut()
        .unwrap()
        .extend(ext.as_object().unwrap().clone());
    e.to_string()
}

/// Inputs that reach every class: the account lifecycle, logons and logoffs, password and
/// privilege changes, data access, a page view, a system security event, and a burst of
/// failed logins from one ip that raises a critical brute-force alert and both actions.
pub fn corpus() -> String {
    let at = |s: u32| format!("2026-12-03T10:{:02}:{:02}Z", s / 60, s % 60);
    let ip = json!({"ipaddress": "192.0.2.10", "useragent": "Mozilla/5.0", "sessionid": "s-1"});
    let mut lines = vec![
        event(
            "i-1",
            "user.created",
            &at(0),
            json!({"user_id": "u-ana"}),
            ip.clone(),
        ),
        event(
            "i-2",
            "user.login.attempt",
            &at(1),
            json!({"user_id": "u-ana", "success": true}),
            ip.clone(),
        ),
        event(
            "i-3",
            "user.password.changed",
            &at(2),
            json!({"user_id": "u-ana"}),
            json!({}),
        ),
        event(
            "i-4",
            "user.password.reset",
            &at(3),
            json!({"user_id": "u-ana"}),
            json!({}),
        ),
        event(
            "i-5",
            "user.role.changed",
            &at(4),
            json!({"user_id": "u-ana", "new_role": "admin", "changed_by": "u-root"}),
            json!({}),
        ),
        event(
            "i-6",
            "user.permission.revoked",
            &at(5),
            json!({"user_id": "u-ana", "permission": "billing.write"}),
            json!({}),
        ),
        event(
            "i-7",
            "user.data.read",
            &at(6),
            json!({"user_id": "u-ana", "data_type": "invoice", "record_count": 3, "sensitive": true}),
            json!({}),
        ),
        event(
            "i-8",
            "user.data.export",
            &at(7),
            json!({"user_id": "u-ana", "data_type": "profile"}),
            json!({}),
        ),
        event(
            "i-9",
            "user.data.delete",
            &at(8),
            json!({"user_id": "u-ana", "data_type": "profile"}),
            json!({}),
        ),
        event(
            "i-10",
            "user.page.view",
            &at(9),
            json!({"user_id": "u-ana", "page": "/home"}),
            ip.clone(),
        ),
        event(
            "i-11",
            "user.logout",
            &at(10),
            json!({"user_id": "u-ana"}),
            ip.clone(),
        ),
        event(
            "i-12",
            "user.account.deleted",
            &at(11),
            json!({"user_id": "u-ana"}),
            json!({}),
        ),
        event(
            "i-13",
            "system.security.intrusion",
            &at(12),
            json!({"severity": "critical", "blocked": true}),
            json!({"ipaddress": "198.51.100.7"}),
        ),
    ];
    for i in 0..22 {
        lines.push(event(
            &format!("f-{i}"),
            "user.login.attempt",
            &at(20 + i),
            json!({"user_id": "u-bob", "success": false}),
            json!({"ipaddress": "203.0.113.66"}),
        ));
    }
    lines.join("\n") + "\n"
}

/// The corpus through `classify` and `detect`: their `{"topic", "key", "value"}` lines.
pub fn records_of_corpus() -> Vec<u8> {
    let classified = ok(
        &auditflow(&["classify"], &[], corpus().as_bytes()),
        "classify",
    );
    let detected = ok(&auditflow(&["detect"], &[], &classified), "detect");
    let mut records = classified;
    records.extend_from_slice(&detected);
    records
}

/// The corpus through `classify`, `detect` and `ocsf`: the OCSF NDJSON.
pub fn ocsf_of_corpus(env: &[(&str, &str)]) -> Vec<u8> {
    ok(&auditflow(&["ocsf"], env, &records_of_corpus()), "ocsf")
}

/// The JSON objects of NDJSON.
pub fn events(ndjson: &[u8]) -> Vec<Value> {
    String::from_utf8(ndjson.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
