//! The three reports on the real stack: a user's lifecycle, an attack burst, and a GDPR export
//! and deletion of another user go through the sink; each report's figures are then checked
//! exactly against what was produced, in JSON, CSV and HTML — the HTML page rendered by a real
//! headless Chromium, which must lay out the expected numbers and non-empty charts.
//!
//! Chromium comes from the machine (`.ci/run` installs Debian's `chromium`); without it this
//! test fails and says so — it is never skipped. `AUDITFLOW_BLESS=1` also writes each page's
//! screenshot to `docs/images/` (the README shows them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use auditflow_core::config::SamplingRates;
use auditflow_integration_tests::classifier::start_classifier;
use auditflow_integration_tests::kafka::{
    Input, create_topic, produce, read_committed, structured, wait_caught_up,
};
use auditflow_integration_tests::ocsf::validate;
use auditflow_integration_tests::processes::{json_of, logged_command, stdout_of};
use auditflow_integration_tests::sink::SinkSetup;
use auditflow_integration_tests::stack::require_kafka;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

const USER: &str = "u-rita-reports";
const ERASED: &str = "u-sam-reports";
const ATTACKER: &str = "198.51.100.66";

fn user_action(id: &str, user: &str, action: &str, outcome: &str, risk: &str, time: &str) -> Input {
    user_action_sampled(id, user, action, outcome, risk, time, 1.0)
}

fn user_action_sampled(
    id: &str,
    user: &str,
    action: &str,
    outcome: &str,
    risk: &str,
    time: &str,
    rate: f64,
) -> Input {
    let value = json!({
        "specversion": "1.0", "id": id, "source": "/auditflow/classifier",
        "type": "audit.user.action", "subject": format!("user:{user}"), "time": time,
        "retention": "general", "samplerate": rate,
        "data": {"user_id": user, "action": action, "outcome": outcome, "risk_level": risk,
                 "ip_address": "192.0.2.10"}
    });
    (
        Some(user.into()),
        serde_json::to_vec(&value).unwrap(),
        Vec::new(),
    )
}

fn failed_login(id: &str, user: &str, ip: &str, severity: &str, time: &str) -> Input {
    let value = json!({
        "specversion": "1.0", "id": id, "source": "/auditflow/classifier",
        "type": "audit.security.event", "time": time, "retention": "security",
        "data": {"event_type": "failed_login", "severity": severity, "user_id": user,
                 "source_ip": ip, "blocked": false, "details": {}}
    });
    (
        Some(ip.into()),
        serde_json::to_vec(&value).unwrap(),
        Vec::new(),
    )
}

fn alert(id: &str, rule: &str, level: &str, ip: &str, time: &str) -> Input {
    let value = json!({
        "specversion": "1.0", "id": id, "source": "/auditflow/security-monitor",
        "type": "security.alert", "time": time, "retention": "security",
        "data": {"level": level, "rule": rule, "score": 95, "source_ip": ip, "count": 21,
                 "window_start": "2026-11-21T12:00:00Z", "window_end": time,
                 "evidence": ["a-1"]}
    });
    (
        Some(ip.into()),
        serde_json::to_vec(&value).unwrap(),
        Vec::new(),
    )
}

fn run(setup: &SinkSetup, args: &[&str]) -> Output {
    let mut command = logged_command(&setup.bootstrap, &setup.config, args);
    command.env("AUDITFLOW_OPERATOR", "auditor");
    command.output().expect("running auditflow")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_report_counts_exactly_what_was_produced_in_every_format() {
    require_kafka();
    let chromium = chromium().unwrap_or_else(|why| panic!("{why}"));
    let mut setup = SinkSetup::new("reports").await;
    // A checkpoint after every leaf: the records are covered once sealed.
    setup.config.integrity.checkpoint_every = 1;
    let t = setup.config.topics.clone();
    // The lifecycle, over two days; one page view kept at rate 0.25 stands for four.
    let lifecycle = vec![
        user_action(
            "r-1",
            USER,
            "account_created",
            "success",
            "low",
            "2026-11-20T09:00:00Z",
        ),
        user_action(
            "r-2",
            USER,
            "login_attempt",
            "success",
            "low",
            "2026-11-20T09:05:00Z",
        ),
        user_action(
            "r-3",
            USER,
            "login_attempt",
            "failure",
            "medium",
            "2026-11-21T12:00:30Z",
        ),
        user_action(
            "r-4",
            USER,
            "login_attempt",
            "failure",
            "high",
            "2026-11-21T12:00:40Z",
        ),
        user_action(
            "r-5",
            USER,
            "privilege_change",
            "success",
            "high",
            "2026-11-21T13:00:00Z",
        ),
        user_action_sampled(
            "r-6",
            USER,
            "user.page.view",
            "success",
            "low",
            "2026-11-21T14:00:00Z",
            0.25,
        ),
    ];
    // The user erased later: three records.
    let erased = vec![
        user_action(
            "s-1",
            ERASED,
            "account_created",
            "success",
            "low",
            "2026-11-20T10:00:00Z",
        ),
        user_action(
            "s-2",
            ERASED,
            "login_attempt",
            "success",
            "low",
            "2026-11-20T10:01:00Z",
        ),
        user_action(
            "s-3",
            ERASED,
            "user.page.view",
            "success",
            "low",
            "2026-11-20T10:02:00Z",
        ),
    ];
    // The attack burst: six failed logins from one address over three users (one critical),
    // one from elsewhere, and the monitor's brute-force alert.
    let mut security = Vec::new();
    for i in 0..6 {
        let user = [USER, "u-x-reports", "u-y-reports"][i % 3];
        let severity = if i == 5 { "critical" } else { "warning" };
        let time = format!("2026-11-21T12:00:{:02}Z", 10 + i);
        security.push(failed_login(
            &format!("f-{i}"),
            user,
            ATTACKER,
            severity,
            &time,
        ));
    }
    security.push(failed_login(
        "f-9",
        "u-z-reports",
        "203.0.113.5",
        "warning",
        "2026-11-21T15:00:00Z",
    ));
    let alerts = vec![alert(
        "al-1",
        "brute_force",
        "critical",
        ATTACKER,
        "2026-11-21T12:00:20Z",
    )];
    produce(&setup.bootstrap, &t.user_action, &lifecycle).await;
    produce(&setup.bootstrap, &t.user_action, &erased).await;
    produce(&setup.bootstrap, &t.security_event, &security).await;
    produce(&setup.bootstrap, &t.alerts, &alerts).await;
    // The monitor's responses, on its own topics: a block and an account disabled in the range,
    // one block from before it, and the blocklist's entry for the attacker.
    let response = |id: &str, key: &str, ty: &str, time: &str, data: Value| -> Input {
        let value = json!({"specversion": "1.0", "id": id, "source": "/auditflow/security-monitor",
                           "type": ty, "time": time, "data": data});
        (
            Some(key.into()),
            serde_json::to_vec(&value).unwrap(),
            Vec::new(),
        )
    };
    create_topic(&setup.bootstrap, &t.actions, 1).await;
    create_topic(&setup.bootstrap, &t.blocklist, 1).await;
    let actions = vec![
        response(
            "ac-1",
            ATTACKER,
            "security.action",
            "2026-11-21T12:00:21Z",
            json!({"action": "block_ip", "ip": ATTACKER, "reason": "brute_force",
                        "expires_at": "2026-11-21T13:00:21Z"}),
        ),
        response(
            "ac-2",
            USER,
            "security.action",
            "2026-11-21T12:00:22Z",
            json!({"action": "disable_account", "user_id": USER, "reason": "security_threat"}),
        ),
        response(
            "ac-0",
            "192.0.2.99",
            "security.action",
            "2026-11-01T00:00:00Z",
            json!({"action": "block_ip", "ip": "192.0.2.99", "reason": "brute_force",
                        "expires_at": "2026-11-01T01:00:00Z"}),
        ),
    ];
    let far = (Utc::now() + Duration::days(30)).to_rfc3339();
    let blocks = vec![response(
        "bl-1",
        ATTACKER,
        "security.blocklist.entry",
        "2026-11-21T12:00:21Z",
        json!({"ip": ATTACKER, "reason": "brute_force", "expires_at": far}),
    )];
    produce(&setup.bootstrap, &t.actions, &actions).await;
    // Dead letters, as the services write them: two refused inputs and one refused record.
    let letter = |reason: &str, service: &str| -> Input {
        (
            None,
            b"{not json".to_vec(),
            vec![
                ("auditflow.error".into(), reason.as_bytes().to_vec()),
                ("auditflow.service".into(), service.as_bytes().to_vec()),
            ],
        )
    };
    let letters = vec![
        letter("invalid_json", "classifier"),
        letter("invalid_json", "classifier"),
        letter("schema_violation", "sink"),
    ];
    produce(&setup.bootstrap, &t.dead_letter, &letters).await;
    produce(&setup.bootstrap, &t.blocklist, &blocks).await;
    // Page views of a fourth user through the real classifier, every one sampled out (rate 0),
    // in two hours of the range: the compliance report counts them from its summaries.
    setup.config.sampling = SamplingRates::from_pairs([("user.page.view", 0.0)]);
    let views: Vec<Input> = [
        "2026-11-20T11:05:00Z",
        "2026-11-20T11:40:00Z",
        "2026-11-20T11:59:59Z",
        "2026-11-21T16:00:00Z",
    ]
    .iter()
    .enumerate()
    .map(|(i, time)| {
        let value = json!({"specversion": "1.0", "id": format!("pv-{i}"), "source": "/web",
                           "type": "user.page.view", "time": time,
                           "data": {"user_id": "u-pat-reports"}});
        structured(&serde_json::to_vec(&value).unwrap())
    })
    .collect();
    produce(&setup.bootstrap, &setup.input, &views).await;
    let classifier = start_classifier(&setup.config);
    let group = format!("{}classifier", setup.config.kafka.group_prefix);
    wait_caught_up(&setup.bootstrap, &group, &setup.input).await;
    classifier.0.trigger();
    classifier.3.await.unwrap().expect("the classifier ran");
    let summaries = read_committed(&setup.bootstrap, &t.sampling).len() as u64;
    assert!(summaries >= 2, "two hours, two summaries at least");
    let _sink = setup.spawn_sink();
    setup.wait_caught_up().await;
    assert_eq!(
        setup.stored_ids().await as u64,
        6 + 3 + 7 + 1 + summaries,
        "the records and the summaries; no page view"
    );

    // GDPR: an export and an erasure, both on the operator log.
    let export = json_of(
        &run(&setup, &["gdpr", "export", "--user", ERASED]),
        "export",
    );
    assert_eq!(export["audit_trail"].as_array().map(Vec::len), Some(3));
    let deleted = json_of(
        &run(&setup, &["--json", "gdpr", "delete", "--user", ERASED]),
        "delete",
    );
    let request = deleted["receipt"]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A verification, on the operator log too.
    let verified = json_of(
        &run(&setup, &["--json", "verify", "--anchor", "store"]),
        "verify",
    );
    setup.wait_caught_up().await;

    let range = ["--from", "2026-11-20", "--to", "2026-11-22"];
    let tomorrow = (Utc::now() + Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let whole = ["--from", "2026-11-20", "--to", tomorrow.as_str()];
    let report = |name: &[&str], range: &[&str], format: &[&str]| {
        let mut args = vec!["--no-operator-log", "report"];
        args.extend_from_slice(name);
        args.extend_from_slice(range);
        args.extend_from_slice(format);
        run(&setup, &args)
    };

    // user-activity.
    let activity = json_of(
        &report(
            &["user-activity", "--user", USER],
            &range,
            &["--format", "json"],
        ),
        "user-activity",
    );
    assert_eq!(
        activity["total"], 8,
        "six actions and two of the failed logins"
    );
    assert_eq!(activity["estimated_total"], 11.0);
    let actions: Vec<&Value> = activity["actions"].as_array().unwrap().iter().collect();
    let action = |name: &str| *actions.iter().find(|a| a["action"] == name).unwrap();
    assert_eq!(action("login_attempt")["count"], 3);
    assert_eq!(action("login_attempt")["success_rate"], 0.33);
    assert_eq!(action("login_attempt")["average_risk"]["score"], 2.0);
    assert_eq!(action("user.page.view")["estimated"], 4.0);
    assert_eq!(action("failed_login")["count"], 2);
    assert_eq!(
        activity["risk_analysis"]["distribution"],
        json!({"low": 3, "medium": 1, "high": 2})
    );
    assert_eq!(activity["timeline"]["bucket"], "hour");
    let points = activity["timeline"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 48);
    assert_eq!(points[9]["count"], 2, "09:00 on the first day");
    assert_eq!(
        points[36]["count"], 4,
        "12:00 on the second: two logins, two failed logins"
    );
    assert_eq!(points[36]["failures"], 2);
    assert_eq!(activity["security_events"]["total"], 2);

    // security.
    let sec = json_of(
        &report(&["security"], &range, &["--format", "json"]),
        "security",
    );
    assert_eq!(sec["total_events"], 7);
    assert_eq!(sec["critical_events"]["security_events"], 1);
    assert_eq!(sec["critical_events"]["alerts"], 1);
    assert_eq!(sec["alerts"]["by_rule"]["brute_force"], 1);
    let responded = &sec["blocked_attempts"]["responses"];
    assert_eq!(
        responded["actions"],
        json!({"block_ip": 1, "disable_account": 1})
    );
    assert_eq!(
        responded["blocklist"],
        json!({"added": 1, "standing_now": 1})
    );
    let top = &sec["top_threat_sources"];
    assert_eq!(top["of"], 8);
    assert_eq!(
        top["decrypted"], 8,
        "nobody with a security event was erased"
    );
    assert_eq!(
        top["sources"][0],
        json!({"source_ip": ATTACKER, "failed_logins": 6, "alerts": 1})
    );
    assert_eq!(
        top["sources"][1],
        json!({"source_ip": "203.0.113.5", "failed_logins": 1, "alerts": 0})
    );
    let ids: Vec<&str> = sec["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["lockout", "investigate_critical", "block_at_source"]);

    // compliance: the erasure counts, its receipt's count with it.
    let comp = json_of(
        &report(&["compliance"], &whole, &["--format", "json"]),
        "compliance",
    );
    assert_eq!(
        comp["total"],
        17 + 3 + summaries,
        "the stored records, the three operator events and the sampling summaries"
    );
    assert_eq!(comp["operator_actions"]["total"], 3);
    assert_eq!(comp["gdpr_requests"]["total"], 2);
    assert_eq!(comp["gdpr_requests"]["by_type"]["export"]["success"], 1);
    assert_eq!(comp["gdpr_requests"]["by_type"]["delete"]["success"], 1);
    assert_eq!(comp["data_exports"], 1);
    assert_eq!(comp["account_deletions"]["total"], 1);
    assert_eq!(comp["account_deletions"]["records_made_unreadable"], 3);
    assert_eq!(comp["by_class"]["general"]["total"], 9);
    assert_eq!(comp["by_class"]["security"]["total"], 11 + summaries);
    assert_eq!(
        comp["audit_completeness"]["sampled_out"],
        json!({"total": 4, "by_type": {"user.page.view": 4}})
    );
    // Summaries are per hour of event time: a range from the second day has the last view.
    let second_day = json_of(
        &report(
            &["compliance"],
            &["--from", "2026-11-21", "--to", tomorrow.as_str()],
            &["--format", "json"],
        ),
        "compliance",
    );
    assert_eq!(
        second_day["audit_completeness"]["sampled_out"],
        json!({"total": 1, "by_type": {"user.page.view": 1}})
    );
    assert_eq!(comp["retention_compliance"]["compliant"], true);
    assert_eq!(
        comp["audit_completeness"]["dead_letters"],
        json!({"total": 3, "by_reason": {"invalid_json": 2, "schema_violation": 1},
               "by_service": {"classifier": 2, "sink": 1}})
    );
    let runs = &comp["audit_completeness"]["verifications"];
    assert_eq!(runs["runs"], 1);
    assert_eq!(runs["last"]["outcome"], "success");
    assert_eq!(runs["last"]["verified"], verified["verified"]);
    let receipt = json_of(&run(&setup, &["gdpr", "receipt", &request]), "receipt");
    assert_eq!(receipt["receipt"]["records_made_unreadable"], 3);

    // CSV: the same figures.
    let csv = stdout_of(&report(&["security"], &range, &["--format", "csv"]), "csv");
    assert!(
        csv.starts_with("report,security,from,2026-11-20T00:00:00.000Z,to,"),
        "{csv}"
    );
    assert!(csv.contains(&format!("\r\n{ATTACKER},6,1\r\n")), "{csv}");
    assert!(csv.contains("\r\nbrute_force,critical,1\r\n"), "{csv}");
    let query_csv = stdout_of(
        &run(
            &setup,
            &[
                "--no-operator-log",
                "query",
                "--user",
                USER,
                "--format",
                "csv",
            ],
        ),
        "query csv",
    );
    let lines: Vec<&str> = query_csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "id,time,class,kind,type,action,outcome,risk_level,severity,ip"
    );
    assert_eq!(lines.len(), 1 + 8);
    // OCSF: the same eight records as events valid against the pinned schema.
    let query_ocsf = stdout_of(
        &run(
            &setup,
            &[
                "--no-operator-log",
                "query",
                "--user",
                USER,
                "--format",
                "ocsf",
            ],
        ),
        "query ocsf",
    );
    assert_eq!(query_ocsf.lines().count(), 8, "{query_ocsf}");
    let validated = validate(query_ocsf.as_bytes());
    assert!(
        validated.status.success(),
        "{}",
        String::from_utf8_lossy(&validated.stdout)
    );

    // HTML, rendered by Chromium: the numbers are on the page and every chart has bars.
    let dir = std::env::temp_dir().join(format!("auditflow-reports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pages = [
        (
            "user-activity",
            vec!["user-activity", "--user", USER],
            range.to_vec(),
            vec!["login_attempt", "privilege_change", "33%", "medium (2.00)"],
            3,
        ),
        (
            "security",
            vec!["security"],
            range.to_vec(),
            vec![ATTACKER, "brute_force", "lockout"],
            3,
        ),
        (
            "compliance",
            vec!["compliance"],
            whole.to_vec(),
            vec![
                "gdpr.delete",
                "records made unreadable by them",
                "sampled-out inputs by type",
                "user.page.view",
            ],
            4,
        ),
    ];
    for (name, command, range, expected, chart_count) in pages {
        let file = dir.join(format!("{name}.html"));
        let file_arg = file.to_str().unwrap().to_owned();
        let out = report(&command, &range, &["--format", "html", "-o", &file_arg]);
        stdout_of(&out, name);
        assert!(out.stdout.is_empty(), "the page goes to the file");
        let rendered = render(&chromium, &file, &dir);
        let text = rendered["text"].as_str().unwrap();
        for needle in &expected {
            assert!(text.contains(needle), "{name}: {needle:?} not on the page");
        }
        let charts = rendered["charts"].as_array().unwrap();
        assert_eq!(
            charts.len(),
            chart_count,
            "{name}: every chart has something to draw"
        );
        for chart in charts {
            assert!(
                chart["bars"].as_u64().unwrap() > 0,
                "{name}: an empty chart: {chart}"
            );
        }
        let shot = dir.join(format!("{name}.png"));
        screenshot(&chromium, &file, &shot);
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 10_000,
            "{name}: a blank screenshot"
        );
        if std::env::var("AUDITFLOW_BLESS").is_ok_and(|v| v == "1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::copy(&shot, docs.join(format!("report-{name}.png"))).unwrap();
        }
    }
    setup.drop_keyspace().await;
}

/// The Chromium binary, or why there is none.
fn chromium() -> Result<PathBuf, String> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            && out.status.success()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            return Ok(PathBuf::from(path));
        }
    }
    Err(
        "this test renders the HTML reports in a real headless Chromium, and none is \
         installed: `apt-get install chromium` (.ci/run installs it)"
            .into(),
    )
}

fn chromium_command(chromium: &Path) -> Command {
    let mut command = Command::new(chromium);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
    ]);
    command
}

/// Renders `page` in Chromium with a measuring script appended (the page itself has none):
/// the laid-out text, and for each chart how many bars have a non-zero drawn size.
fn render(chromium: &Path, page: &Path, dir: &Path) -> Value {
    let html = std::fs::read_to_string(page).unwrap();
    assert!(!html.contains("<script"), "a report page carries no script");
    let probe = r#"<script>
const charts = [...document.querySelectorAll('figure.chart')].map(f => ({
  title: f.querySelector('figcaption').textContent,
  bars: [...f.querySelectorAll('rect.bar')].filter(r => {
    const b = r.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length,
  empty: !!f.querySelector('.empty'),
}));
const pre = document.createElement('pre'); pre.id = 'measure';
pre.textContent = JSON.stringify({text: document.body.innerText, charts});
document.body.appendChild(pre);
</script>"#;
    let harness = dir.join(format!(
        "{}.probe.html",
        page.file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &harness,
        html.replace("</body>", &format!("{probe}</body>")),
    )
    .unwrap();
    let out = chromium_command(chromium)
        .arg("--virtual-time-budget=5000")
        .arg("--dump-dom")
        .arg(format!("file://{}", harness.display()))
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"measure\">").expect("the probe ran") + 18;
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let measured: Value = serde_json::from_str(&text).expect("the probe's JSON");
    // Charts with nothing to draw show a note instead: not counted as charts.
    let charts: Vec<Value> = measured["charts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["empty"] == false)
        .cloned()
        .collect();
    json!({"text": measured["text"], "charts": charts})
}

fn screenshot(chromium: &Path, page: &Path, shot: &Path) {
    let out = chromium_command(chromium)
        .arg("--window-size=1100,1600")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
