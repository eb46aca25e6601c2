//! `auditflow run all` + `auditflow demo --json` on the real stack, as `cargo xtask demo` runs
//! them, in a private corner of the cluster: fresh topic names (input included, through the
//! classifier's input pattern and `AUDITFLOW_DEMO_TOPIC`), consumer groups, keyspace and a
//! free metrics port.
//!
//! Checks what the demo printed against docs/topics-and-records.md (actions, outcomes, risk
//! levels, retention classes, the failed logins' security events) and docs/security-rules.md (one
//! medium, one high and one critical brute-force alert; the critical one blocks the ip), that
//! `/readyz` reports the four services ready, that a real Prometheus scraping the pipeline
//! answers every panel query of both Grafana dashboards with data and evaluates every alerting
//! rule, and that SIGTERM stops the process with exit code 0. Waits are bounded by deadlines
//! that fail the test; nothing asserts on timing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use auditflow_integration_tests::kafka::produce;
use auditflow_integration_tests::processes::auditflow_binary;
use auditflow_integration_tests::prometheus::{Prometheus, dashboard_queries};
use auditflow_integration_tests::stack::{cql_nodes, require_cql, require_kafka, unique_name};
use serde_json::Value;

/// A failure guard, not a performance expectation (two busy cores, a cold schema).
const DEADLINE: Duration = Duration::from_secs(300);

/// The environment every `auditflow` command of this test gets.
struct Corner {
    env: Vec<(String, String)>,
    listen: String,
    log: PathBuf,
}

impl Corner {
    fn new() -> Self {
        let bootstrap = require_kafka();
        require_cql();
        let prefix = unique_name("demo");
        let listen = format!("127.0.0.1:{}", free_port());
        let topic = |name: &str| format!("{prefix}.{name}");
        let env = [
            ("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", bootstrap),
            ("AUDITFLOW_KAFKA__GROUP_PREFIX", format!("{prefix}_")),
            ("AUDITFLOW_TOPICS__USER_ACTION", topic("audit.user.action")),
            ("AUDITFLOW_TOPICS__DATA_ACCESS", topic("audit.data.access")),
            (
                "AUDITFLOW_TOPICS__SECURITY_EVENT",
                topic("audit.security.event"),
            ),
            ("AUDITFLOW_TOPICS__DEAD_LETTER", topic("audit.dlq")),
            ("AUDITFLOW_TOPICS__ALERTS", topic("security.alerts")),
            ("AUDITFLOW_TOPICS__ACTIONS", topic("security.actions")),
            ("AUDITFLOW_TOPICS__BLOCKLIST", topic("security.blocklist")),
            ("AUDITFLOW_TOPICS__CHECKPOINTS", topic("audit.checkpoints")),
            ("AUDITFLOW_TOPICS__OPERATOR", topic("audit.operator.action")),
            (
                "AUDITFLOW_TOPICS__SAMPLING",
                topic("audit.sampling.summary"),
            ),
            ("AUDITFLOW_TOPICS__OCSF", topic("audit.ocsf")),
            // `unique_name` is `[a-z0-9_]`: no escaping needed inside the pattern.
            (
                "AUDITFLOW_TOPICS__CLASSIFIER_INPUTS",
                format!(r#"["^{prefix}\\.user\\..+"]"#),
            ),
            ("AUDITFLOW_TOPICS__PARTITIONS", "3".into()),
            ("AUDITFLOW_DEMO_TOPIC", topic("user.events")),
            ("AUDITFLOW_STORE__KEYSPACE", prefix.clone()),
            ("AUDITFLOW_STORE__NODES", format!("{:?}", cql_nodes())),
            ("AUDITFLOW_METRICS__LISTEN", listen.clone()),
            // As `cargo xtask demo` runs it: a checkpoint per leaf, so every record is covered.
            ("AUDITFLOW_INTEGRITY__CHECKPOINT_EVERY", "1".into()),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let log = std::env::temp_dir().join(format!("{prefix}.log"));
        Self { env, listen, log }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(auditflow_binary());
        // The operator log has its own test (tests/operator_log.rs); `verify` is polled here,
        // and each run would be one more stored record to count.
        cmd.arg("--no-operator-log");
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("AUDITFLOW_CONFIG")
            .stdin(Stdio::null());
        cmd
    }

    fn run_ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.command(args).output().expect("running auditflow");
        assert!(
            out.status.success(),
            "auditflow {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// The pipeline process; killed if the test fails before stopping it.
struct Pipeline(Child);

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn readyz(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.trim().to_owned())
}

/// Waits until `/readyz` says `want` (one of them), failing with the pipeline's log.
fn await_readyz(corner: &Corner, pipeline: &mut Pipeline, want: &[&str]) {
    let start = Instant::now();
    loop {
        if let Some(status) = pipeline.0.try_wait().expect("pipeline status") {
            let log = std::fs::read_to_string(&corner.log).unwrap_or_default();
            panic!("auditflow run all exited ({status}):\n{log}");
        }
        let body = readyz(&corner.listen);
        if body.as_deref().is_some_and(|b| want.contains(&b)) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "/readyz still {body:?}, wanted one of {want:?}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// Every panel query of both dashboards returns at least one series from the Prometheus that
/// scraped the demo, and every alerting rule parses and evaluates there (health `ok`, also
/// when queried directly). A refused input on the classifier's topic and one on the
/// monitor's first give the dead-letter panels their series: a dead-letter counter appears at
/// its first increment.
fn dashboards_and_rules_meet_prometheus(corner: &Corner, prometheus: &Prometheus) {
    let env = |key: &str| {
        corner
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} not set"))
    };
    let garbage = vec![(None, b"{not json".to_vec(), Vec::new())];
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bootstrap = env("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS");
    for topic in [
        env("AUDITFLOW_DEMO_TOPIC"),
        env("AUDITFLOW_TOPICS__SECURITY_EVENT"),
    ] {
        runtime.block_on(produce(&bootstrap, &topic, &garbage));
    }
    let mut queries = dashboard_queries("deploy/grafana/dashboards/auditflow.json");
    queries.extend(dashboard_queries(
        "deploy/grafana/dashboards/auditflow-security.json",
    ));
    assert!(queries.len() > 20, "{queries:?}");
    let start = Instant::now();
    loop {
        let empty: Vec<String> = queries
            .iter()
            .filter_map(|(panel, expr)| match prometheus.query(expr) {
                Ok(series) if !series.is_empty() => None,
                Ok(_) => Some(format!("{panel}: no series for {expr}")),
                Err(e) => panic!("{panel}: {expr}: {e}"),
            })
            .collect();
        if empty.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "panels without data (targets {:?}):\n{}",
            prometheus.target_health(),
            empty.join("\n")
        );
        thread::sleep(Duration::from_secs(2));
    }
    // The rules, as Prometheus evaluated them, and each expression queried directly.
    let start = Instant::now();
    let rules = loop {
        let rules = prometheus.rules().expect("rules");
        let evaluated = rules.iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001"))
        });
        if evaluated && !rules.is_empty() {
            break rules;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "rules not evaluated: {rules:#?}"
        );
        thread::sleep(Duration::from_secs(1));
    };
    assert!(rules.len() >= 15, "{} rules loaded", rules.len());
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or("?");
        assert_eq!(rule["health"], "ok", "{name}: {}", rule["lastError"]);
        let expr = rule["query"].as_str().expect("query");
        if let Err(e) = prometheus.query(expr) {
            panic!("{name}: {expr}: {e}");
        }
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

#[test]
fn run_all_and_demo_store_the_lifecycle_and_fire_brute_force() {
    let corner = Corner::new();
    // As `cargo xtask demo` does: topics and schema first, then the pipeline.
    corner.run_ok(&["topics", "create"]);
    corner.run_ok(&["migrate"]);
    let log = std::fs::File::create(&corner.log).expect("pipeline log");
    let mut pipeline = Pipeline(
        corner
            .command(&["run", "all"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting auditflow run all"),
    );
    // A real Prometheus scrapes the pipeline while the demo runs (and evaluates the rules).
    let prometheus = Prometheus::start("demo", &[corner.listen.as_str()]);
    // The classifier joins once a topic matches its pattern; the demo creates that topic.
    await_readyz(&corner, &mut pipeline, &["ready", "not ready: classifier"]);

    let out = corner.run_ok(&["demo", "--json"]);
    let demo: Value = serde_json::from_slice(&out).expect("demo --json prints one JSON document");
    await_readyz(&corner, &mut pipeline, &["ready"]);

    let user = str_at(&demo, "/user_id");
    let ip = str_at(&demo, "/source_ip");
    assert!(user.starts_with("demo_user_"), "{user}");

    // Classification: one user action or data access per input, oldest first.
    let trail = demo["audit_trail"].as_array().expect("audit_trail");
    assert_eq!(trail.len(), 7 + 21, "{trail:#?}");
    let row = |r: &Value| {
        (
            str_at(r, "/event/originaltype").to_owned(),
            str_at(r, "/kind").to_owned(),
            str_at(r, "/action").to_owned(),
            str_at(r, "/outcome").to_owned(),
            str_at(r, "/risk_level").to_owned(),
            str_at(r, "/class").to_owned(),
        )
    };
    let expected = [
        (
            "user.created",
            "user_action",
            "account_created",
            "success",
            "low",
            "general",
        ),
        (
            "user.email.verified",
            "user_action",
            "user.email.verified",
            "success",
            "low",
            "general",
        ),
        (
            "user.login.attempt",
            "user_action",
            "login_attempt",
            "success",
            "low",
            "security",
        ),
        (
            "user.profile.updated",
            "user_action",
            "profile_update",
            "success",
            "medium",
            "general",
        ),
        (
            "user.subscription.created",
            "user_action",
            "user.subscription.created",
            "success",
            "low",
            "financial",
        ),
        (
            "user.login.attempt",
            "user_action",
            "login_attempt",
            "failure",
            "high",
            "security",
        ),
        ("user.data.export", "data_access", "read", "", "", "general"),
    ];
    for (record, want) in trail.iter().zip(expected) {
        let (t, kind, action, outcome, risk, class) = want;
        assert_eq!(
            row(record),
            (
                t.into(),
                kind.into(),
                action.into(),
                outcome.into(),
                risk.into(),
                class.into()
            ),
            "{record:#}"
        );
        assert_eq!(str_at(record, "/event/data/user_id"), user);
    }
    let profile = &trail[3]["event"]["data"];
    assert_eq!(profile["context"]["sensitive_data"], Value::Bool(true));
    assert_eq!(
        profile["context"]["fields_changed"],
        serde_json::json!(["name", "phone", "preferences"])
    );
    assert_eq!(str_at(&trail[6], "/event/data/operation"), "read");
    assert_eq!(str_at(&trail[6], "/event/data/data_type"), "user_profile");
    for record in &trail[7..] {
        assert_eq!(
            row(record),
            (
                "user.login.attempt".into(),
                "user_action".into(),
                "login_attempt".into(),
                "failure".into(),
                "high".into(),
                "security".into()
            )
        );
    }

    // Classification rule 3: every failed login is also a failed_login security event, critical
    // because its risk is high, from the attacker's ip.
    let security = demo["security_events"].as_array().expect("security_events");
    assert_eq!(security.len(), 1 + 21);
    for event in security {
        assert_eq!(str_at(event, "/kind"), "security_event");
        assert_eq!(str_at(event, "/action"), "failed_login");
        assert_eq!(str_at(event, "/severity"), "critical");
        assert_eq!(str_at(event, "/class"), "security");
        assert_eq!(str_at(event, "/event/data/event_type"), "failed_login");
        assert_eq!(str_at(event, "/event/data/source_ip"), ip);
        assert_eq!(str_at(event, "/event/data/user_id"), user);
    }

    // docs/security-rules.md: 22 failures from one ip → exactly one medium, one high, one critical
    // alert.
    let alerts = demo["alerts"].as_array().expect("alerts");
    let mut levels: Vec<(&str, &str, i64)> = alerts
        .iter()
        .map(|a| {
            (
                str_at(a, "/action"),
                str_at(a, "/severity"),
                a.pointer("/event/data/score")
                    .and_then(Value::as_i64)
                    .unwrap_or(-1),
            )
        })
        .collect();
    levels.sort_by_key(|l| l.2);
    assert_eq!(
        levels,
        [
            ("brute_force", "medium", 50),
            ("brute_force", "high", 80),
            ("brute_force", "critical", 95)
        ],
        "{alerts:#?}"
    );
    for alert in alerts {
        assert_eq!(str_at(alert, "/event/data/source_ip"), ip);
        assert_eq!(str_at(alert, "/class"), "security");
    }

    // The causal trails: the suspicious login caused its two audit records; the critical
    // alert caused a block_ip action.
    let login = &demo["trails"]["suspicious_login"];
    assert_eq!(
        str_at(login, "/id"),
        str_at(&demo, "/published/suspicious_login")
    );
    let mut children: Vec<&str> = login["tree"]["children"]
        .as_array()
        .expect("children")
        .iter()
        .map(|c| str_at(c, "/type"))
        .collect();
    children.sort_unstable();
    assert_eq!(children, ["audit.security.event", "audit.user.action"]);
    let critical = &demo["trails"]["critical_alert"];
    let actions: Vec<&str> = critical["tree"]["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|c| str_at(c, "/type") == "security.action")
        .map(|c| str_at(c, "/summary"))
        .collect();
    assert!(
        actions.iter().any(|s| s.contains("block_ip")),
        "{critical:#}"
    );

    // The trail is tamper-evident: once the sealer has caught up with the commits, `verify`
    // vouches for every stored record, and one record's proof checks out offline.
    let started = Instant::now();
    let report = loop {
        let out = corner
            .command(&["verify", "--json"])
            .output()
            .expect("verify");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if out.status.success() && report["not_covered"] == 0 {
            break report;
        }
        assert!(
            out.status.code() != Some(1) || report["problems"].as_array().is_none_or(Vec::is_empty),
            "verify found problems: {report:#}"
        );
        assert!(
            started.elapsed() < DEADLINE,
            "never all covered: {report:#}"
        );
        thread::sleep(Duration::from_millis(500));
    };
    // Every record the demo stored: the user's trail, the security events, the alerts.
    let stored = trail.len() + security.len() + alerts.len();
    assert_eq!(report["verified"], stored, "{report:#}");
    let event = str_at(&security[0], "/id");
    let proof = corner.run_ok(&["prove", event]);
    let file = std::env::temp_dir().join(format!("{}.proof.json", corner.listen.replace(':', "_")));
    std::fs::write(&file, proof).expect("writing the proof");
    let key = String::from_utf8(corner.run_ok(&["keys", "public"])).expect("UTF-8");
    let checked = corner.run_ok(&[
        "verify-proof",
        file.to_str().unwrap(),
        "--public-key",
        key.trim(),
    ]);
    let checked = String::from_utf8(checked).expect("UTF-8");
    assert!(
        checked.starts_with(&format!("proof valid: event {event} is leaf ")),
        "{checked}"
    );
    let _ = std::fs::remove_file(&file);

    dashboards_and_rules_meet_prometheus(&corner, &prometheus);

    // docs/operations.md: SIGTERM → finish, commit, leave the groups, exit 0.
    let pid = pipeline.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = pipeline.0.try_wait().expect("pipeline status") {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "still running after SIGTERM");
        thread::sleep(Duration::from_millis(200));
    };
    let log = std::fs::read_to_string(&corner.log).unwrap_or_default();
    assert!(status.success(), "exit after SIGTERM: {status}\n{log}");
    let _ = std::fs::remove_file(&corner.log);
}
