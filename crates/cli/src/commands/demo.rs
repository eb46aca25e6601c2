//! `auditflow demo [--json]`: the recipe's user lifecycle, end to end, against the running
//! pipeline (docs/cli.md).
//!
//! 1. **Is the pipeline running?** The demo is a producer and a reader; it proves nothing if
//!    no service consumes. It asks Kafka (ListGroups/DescribeGroups, the runtime's `GroupProbe`) whether
//!    each of the four consumer groups (`<group_prefix>classifier`, …) has at least one member,
//!    waiting up to [`PIPELINE_WAIT`] for them to join. That check holds however the services
//!    are deployed (`run all`, one process per service, many hosts), which a probe of one
//!    `/readyz` address would not. If a group stays empty the demo says which and exits 1.
//!    Before that it creates its input topic when missing: producers own their input topics,
//!    and the classifier's regex subscription only joins its group once a topic matches.
//! 2. **Publish** the seven events of the recipe's lifecycle (embedded from
//!    `docs/examples/recipe-lifecycle.ndjson`) with fresh ids and a fresh user
//!    `demo_user_<random>`, their relative times kept and shifted so the last is now (so windows
//!    and day buckets are current), then [`BURST`] more failed logins from the suspicious login's
//!    ip, enough for the brute-force rule's critical alert (docs/security-rules.md: more than 20
//!    failures in 10 minutes). The ip is random in 203.0.113.0/24 (TEST-NET-3) so a second run
//!    within the window raises its own alerts instead of being folded into the first run's.
//! 3. **Wait** until the store holds what the pipeline makes of them — every audit record, the
//!    medium, high and critical brute-force alerts, and the causal trails — polling until
//!    [`STORE_WAIT`] runs out.
//! 4. **Print**, as the recipe does, the user's audit trail (time, action, outcome, risk,
//!    retention class), the security events and alerts, and the causal trails of the suspicious
//!    login and of the critical alert (whose descendants are the `security.action`s it raised).
//!    `--json` prints one JSON document instead.
//!
//! The input topic is `user.events`, or `AUDITFLOW_DEMO_TOPIC` (tests isolate themselves with
//! it). It must match the classifier's `[topics] classifier_inputs`.
//!
//! What the demo prints is for the operator who asked for it, personal data included; nothing
//! personal goes to the logs.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use auditflow_core::Config;
use auditflow_runtime::kafka::inspect::GroupProbe;
use auditflow_runtime::kafka::publisher::Publisher;
use auditflow_runtime::kafka::topics::{TopicSpec, ensure_topics};
use auditflow_store::causality::CausalityIndex;
use auditflow_store::causality::trail::{Trail, TrailLimits, TreeNode, walk};
use auditflow_store::{RecordKind, Store, StoredRecord, TimeRange};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::services::in_run_all;
use uuid::Uuid;

/// The recipe's "Complete Working Example" (user lifecycle) as CloudEvents, one per line:
/// `docs/examples/recipe-lifecycle.ndjson`, the one copy the tests and the benchmark read too.
const LIFECYCLE: &str = include_str!("../../../../docs/examples/recipe-lifecycle.ndjson");

/// Failed logins published after the lifecycle, from the suspicious login's ip. With the
/// suspicious login itself that is 22 failures: past 5, 10 and 20, so one medium, one high and
/// one critical brute-force alert, and the critical one blocks the ip.
const BURST: usize = 21;
/// Spacing of the burst's event times.
const BURST_STEP_MS: i64 = 50;

const DEFAULT_TOPIC: &str = "user.events";
const TOPIC_ENV: &str = "AUDITFLOW_DEMO_TOPIC";

/// How long the consumer groups may take to show members: the classifier notices a new
/// input topic at its next metadata refresh (10 s), then joins.
const PIPELINE_WAIT: Duration = Duration::from_secs(60);
/// How long the pipeline may take to store everything. Generous: a loaded two-core laptop
/// with a cold Cassandra takes seconds, not minutes, but failing a demo that would have
/// finished helps nobody.
const STORE_WAIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(500);

const TIME_FORMAT: SecondsFormat = SecondsFormat::Millis;

pub fn run(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let topic = input_topic();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    runtime.block_on(ensure_input_topic(config, &topic))?;
    if let Err(missing) = await_pipeline(config, json)? {
        eprintln!(
            "auditflow demo: the pipeline is not running: no member in consumer group(s) {} \
             after {} s (start it with `auditflow run all`, or `cargo xtask demo`)",
            missing.join(", "),
            PIPELINE_WAIT.as_secs()
        );
        return Ok(ExitCode::FAILURE);
    }

    let plan = DemoPlan::new(Utc::now())?;
    if !json {
        println!(
            "publishing the recipe's user lifecycle for {} (+{BURST} failed logins from {}) to {topic} …",
            plan.user_id, plan.ip
        );
    }
    runtime.block_on(publish(config, &topic, &plan))?;

    let stored = runtime.block_on(await_stored(config, &plan, json))?;
    if json {
        println!("{}", stored.to_json(&plan, &topic));
    } else {
        print!("{}", stored.render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's input topic (also `loadgen`'s): `user.events`, or `AUDITFLOW_DEMO_TOPIC`.
pub(crate) fn input_topic() -> String {
    std::env::var(TOPIC_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TOPIC.to_owned())
}

/// Creates the demo's input topic when missing, shaped like the topics auditflow creates.
pub(crate) async fn ensure_input_topic(config: &Config, topic: &str) -> anyhow::Result<()> {
    let spec = TopicSpec {
        name: topic.to_owned(),
        partitions: config.topics.partitions,
        replication_factor: config.topics.replication_factor,
        config: Vec::new(),
    };
    ensure_topics(&config.kafka, &[spec])
        .await
        .with_context(|| format!("creating the demo's input topic {topic}"))?;
    Ok(())
}

/// `Ok(Err(groups))` names the consumer groups that had no member within [`PIPELINE_WAIT`].
fn await_pipeline(config: &Config, json: bool) -> anyhow::Result<Result<(), Vec<String>>> {
    let groups: Vec<String> = in_run_all(config).map(|s| s.group(config)).collect();
    let probe = GroupProbe::new(&config.kafka).context("creating a Kafka client")?;
    let start = Instant::now();
    let mut told = false;
    loop {
        let mut missing = Vec::new();
        for group in &groups {
            let members = probe
                .members(group, Duration::from_secs(10))
                .with_context(|| format!("describing consumer group {group}"))?;
            if members == 0 {
                missing.push(group.clone());
            }
        }
        if missing.is_empty() {
            return Ok(Ok(()));
        }
        if start.elapsed() >= PIPELINE_WAIT {
            return Ok(Err(missing));
        }
        if !told && !json {
            println!(
                "waiting for the pipeline's consumer groups: {} …",
                missing.join(", ")
            );
            told = true;
        }
        std::thread::sleep(POLL);
    }
}

/// The events of one run: the lifecycle with fresh ids, user and times, then the burst.
struct DemoPlan {
    user_id: String,
    ip: String,
    /// Every event to publish, in order.
    events: Vec<Value>,
    /// The lifecycle's input ids, in order (the burst's are not listed).
    lifecycle_ids: Vec<String>,
    suspicious_login_id: String,
    /// The earliest event time, for reading security rows by time.
    first_time: DateTime<Utc>,
}

impl DemoPlan {
    fn new(now: DateTime<Utc>) -> anyhow::Result<Self> {
        let nonce = Uuid::new_v4();
        let short = &nonce.simple().to_string()[..8];
        let user_id = format!("demo_user_{short}");
        // 1..=254: a host address of TEST-NET-3, never the network or broadcast one.
        let ip = format!("203.0.113.{}", 1 + nonce.as_bytes()[15] % 254);

        let mut lifecycle: Vec<(i64, Value)> = Vec::new();
        let mut origin = None;
        for line in LIFECYCLE.lines().filter(|l| !l.trim().is_empty()) {
            let event: Value =
                serde_json::from_str(line).context("the embedded lifecycle is not NDJSON")?;
            let time = event
                .get("time")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .ok_or_else(|| anyhow!("an embedded lifecycle event has no valid time"))?;
            let origin = *origin.get_or_insert(time);
            lifecycle.push(((time - origin).num_milliseconds(), event));
        }
        let last_offset = lifecycle.last().map_or(0, |(offset, _)| *offset);
        let burst_offset = |i: usize| last_offset + BURST_STEP_MS * (i as i64 + 1);
        // Shift so the last event of the burst is now: every time is current, none is ahead
        // of the clock.
        let base = now - chrono::Duration::milliseconds(burst_offset(BURST - 1));

        let mut events = Vec::new();
        let mut lifecycle_ids = Vec::new();
        let mut suspicious = None;
        for (n, (offset, mut event)) in lifecycle.into_iter().enumerate() {
            let id = Uuid::new_v4().to_string();
            refresh(
                &mut event,
                &id,
                base,
                offset,
                &user_id,
                &format!("sess_{short}_{n}"),
            );
            if is_failed_login(&event) {
                set(&mut event, "ipaddress", json!(ip));
                suspicious = Some(event.clone());
            }
            lifecycle_ids.push(id);
            events.push(event);
        }
        let suspicious =
            suspicious.ok_or_else(|| anyhow!("the embedded lifecycle has no failed login"))?;
        let suspicious_login_id = id_of(&suspicious).to_owned();
        let first_failures = failure_count(&suspicious);
        for i in 0..BURST {
            let mut event = suspicious.clone();
            let id = Uuid::new_v4().to_string();
            let session = format!("sess_{short}_burst_{i}");
            refresh(&mut event, &id, base, burst_offset(i), &user_id, &session);
            if let Some(data) = event.get_mut("data").and_then(Value::as_object_mut) {
                data.insert("failure_count".into(), json!(first_failures + i as u64 + 1));
            }
            events.push(event);
        }
        Ok(Self {
            user_id,
            ip,
            events,
            lifecycle_ids,
            suspicious_login_id,
            first_time: base,
        })
    }

    /// Audit records the classifier makes (docs/topics-and-records.md): one user action or data
    /// access per input, plus a security event per failed login.
    fn expected_records(&self) -> usize {
        self.events.len() + self.events.iter().filter(|e| is_failed_login(e)).count()
    }
}

/// Gives `event` a fresh id and session, a time `offset_ms` after `base`, and `user_id` as its
/// user wherever the recipe names one.
fn refresh(
    event: &mut Value,
    id: &str,
    base: DateTime<Utc>,
    offset_ms: i64,
    user_id: &str,
    session: &str,
) {
    let time = base + chrono::Duration::milliseconds(offset_ms);
    set(event, "id", json!(id));
    set(
        event,
        "time",
        json!(time.to_rfc3339_opts(TIME_FORMAT, true)),
    );
    if event.get("subject").is_some() {
        set(event, "subject", json!(format!("user:{user_id}")));
    }
    if let Some(data) = event.get_mut("data").and_then(Value::as_object_mut) {
        data.insert("user_id".into(), json!(user_id));
    }
    if event.get("sessionid").is_some() {
        set(event, "sessionid", json!(session));
    }
    if let Some(metadata) = event.get_mut("metadata").and_then(Value::as_object_mut)
        && metadata.contains_key("session_id")
    {
        metadata.insert("session_id".into(), json!(session));
    }
}

fn set(event: &mut Value, key: &str, value: Value) {
    if let Some(object) = event.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}

fn id_of(event: &Value) -> &str {
    event.get("id").and_then(Value::as_str).unwrap_or_default()
}

fn is_failed_login(event: &Value) -> bool {
    event.get("type").and_then(Value::as_str) == Some("user.login.attempt")
        && event.pointer("/data/success").and_then(Value::as_bool) != Some(true)
}

fn failure_count(event: &Value) -> u64 {
    event
        .pointer("/data/failure_count")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Publishes the plan's events, keyed by user so they stay in order on one partition.
async fn publish(config: &Config, topic: &str, plan: &DemoPlan) -> anyhow::Result<()> {
    let publisher = Publisher::new(&config.kafka).context("creating a Kafka producer")?;
    for event in &plan.events {
        let payload = event.to_string();
        publisher
            .publish(
                topic,
                plan.user_id.as_bytes(),
                payload.as_bytes(),
                Duration::from_secs(30),
            )
            .await
            .with_context(|| format!("publishing to {topic}"))?;
    }
    Ok(())
}

/// What the store holds for one run.
struct StoredRun {
    /// User actions and data access, oldest first.
    trail: Vec<StoredRecord>,
    /// The user's security events, oldest first.
    security_events: Vec<StoredRecord>,
    /// Alerts about the run's ip, oldest first.
    alerts: Vec<StoredRecord>,
    suspicious_login: Trail,
    critical_alert: Trail,
}

/// Polls the store until everything the run should produce is there, or [`STORE_WAIT`] ends.
async fn await_stored(config: &Config, plan: &DemoPlan, json: bool) -> anyhow::Result<StoredRun> {
    let store = Arc::new(Store::connect(&config.store, &config.retention).await?);
    let index = CausalityIndex::open(Arc::clone(&store)).await?;
    let start = Instant::now();
    let expected = plan.expected_records();
    if !json {
        println!(
            "waiting for the pipeline to store {expected} audit records, the alerts and the causal trails …"
        );
    }
    loop {
        let missing = match look(&store, &index, plan).await? {
            Ok(stored) => return Ok(stored),
            Err(missing) => missing,
        };
        if start.elapsed() >= STORE_WAIT {
            bail!(
                "the pipeline consumes but has not stored everything after {} s: {missing} \
                 (see the services' logs and /metrics)",
                STORE_WAIT.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One look at the store: what it holds of the run when complete, else what is still missing.
async fn look(
    store: &Store,
    index: &CausalityIndex,
    plan: &DemoPlan,
) -> anyhow::Result<Result<StoredRun, String>> {
    let expected = plan.expected_records();
    let page = store
        .query_user(
            &plan.user_id,
            TimeRange::default(),
            &[],
            expected + 10,
            None,
        )
        .await?;
    // Alerts that name the user are in their trail too; they are read by ip below.
    let mut records: Vec<StoredRecord> = page
        .records
        .into_iter()
        .filter(|r| r.kind != RecordKind::Alert)
        .collect();
    if records.len() < expected {
        return Ok(Err(format!(
            "{} of {expected} audit records stored",
            records.len()
        )));
    }
    records.reverse();
    let (security_events, trail): (Vec<_>, Vec<_>) = records
        .into_iter()
        .partition(|r| r.kind == RecordKind::SecurityEvent);

    // The burst raises a medium, a high and a critical alert (docs/security-rules.md). The sink
    // writes batches concurrently, so the critical one can be stored before the others: wait for
    // all.
    let alerts = alerts_about(store, plan).await?;
    let brute_force = |level: &str| {
        alerts.iter().find(|a| {
            a.labels.action.as_deref() == Some("brute_force")
                && a.labels.severity.as_deref() == Some(level)
        })
    };
    if let Some(level) = ["medium", "high"]
        .into_iter()
        .find(|level| brute_force(level).is_none())
    {
        return Ok(Err(format!("no {level} brute-force alert stored yet")));
    }
    let Some(critical) = brute_force("critical") else {
        return Ok(Err("no critical brute-force alert stored yet".into()));
    };
    let Some(suspicious_login) =
        walk(index, &plan.suspicious_login_id, TrailLimits::default()).await?
    else {
        return Ok(Err(
            "the suspicious login is not in the causality index yet".into(),
        ));
    };
    // Its audit records: the user action and the failed-login security event.
    if suspicious_login.tree.children.len() < 2 {
        return Ok(Err(
            "the suspicious login's audit records are not indexed yet".into(),
        ));
    }
    let critical_alert = walk(index, &critical.id, TrailLimits::default()).await?;
    let Some(critical_alert) = critical_alert.filter(|t| has_action(&t.tree)) else {
        return Ok(Err(
            "the critical alert's actions are not indexed yet".into()
        ));
    };
    Ok(Ok(StoredRun {
        trail,
        security_events,
        alerts,
        suspicious_login,
        critical_alert,
    }))
}

/// Alerts stored since the run's first event whose source ip is the run's (alerts keyed by
/// ip carry no user, so they are not in the user's trail).
async fn alerts_about(store: &Store, plan: &DemoPlan) -> anyhow::Result<Vec<StoredRecord>> {
    let from = plan.first_time - chrono::Duration::seconds(1);
    let to = Utc::now() + chrono::Duration::minutes(1);
    let page = store.security_events(from, to, 1000, None).await?;
    let mut alerts: Vec<StoredRecord> = page
        .records
        .into_iter()
        .filter(|r| r.kind == RecordKind::Alert)
        .filter(|r| {
            let data = r.event.as_ref().and_then(|e| e.get("data"));
            let ip = data
                .and_then(|d| d.get("source_ip"))
                .and_then(Value::as_str);
            let user = data.and_then(|d| d.get("user_id")).and_then(Value::as_str);
            ip == Some(plan.ip.as_str()) || user == Some(plan.user_id.as_str())
        })
        .collect();
    alerts.reverse();
    Ok(alerts)
}

fn has_action(node: &TreeNode) -> bool {
    node.children.iter().any(|child| {
        child.node.event_type.as_deref() == Some("security.action") || has_action(child)
    })
}

impl StoredRun {
    fn to_json(&self, plan: &DemoPlan, topic: &str) -> Value {
        json!({
            "user_id": plan.user_id,
            "source_ip": plan.ip,
            "topic": topic,
            "published": {
                "lifecycle": plan.lifecycle_ids,
                "suspicious_login": plan.suspicious_login_id,
                "failed_logins_burst": BURST,
            },
            "audit_trail": self.trail,
            "security_events": self.security_events,
            "alerts": self.alerts,
            "trails": {
                "suspicious_login": self.suspicious_login,
                "critical_alert": self.critical_alert,
            },
        })
    }

    fn render(&self, plan: &DemoPlan) -> String {
        let mut out = String::new();
        out.push_str("\n=== User Lifecycle Audit Trail ===\n");
        out.push_str(&format!("User ID: {}\n", plan.user_id));
        out.push_str(&format!("Total Audit Records: {}\n", self.trail.len()));
        let rows: Vec<Vec<String>> = self
            .trail
            .iter()
            .map(|r| {
                vec![
                    time(r),
                    text(r, "/originaltype"),
                    label(&r.labels.action),
                    label(&r.labels.outcome),
                    label(&r.labels.risk_level),
                    r.class.as_str().to_owned(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["TIME", "TYPE", "ACTION", "OUTCOME", "RISK", "RETENTION"],
            &rows,
        );

        out.push_str("\n=== Security Events ===\n");
        let rows: Vec<Vec<String>> = self
            .security_events
            .iter()
            .map(|r| {
                vec![
                    time(r),
                    label(&r.labels.action),
                    label(&r.labels.severity),
                    text(r, "/data/source_ip"),
                    r.class.as_str().to_owned(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["TIME", "EVENT TYPE", "SEVERITY", "SOURCE IP", "RETENTION"],
            &rows,
        );

        out.push_str("\n=== Security Alerts ===\n");
        let rows: Vec<Vec<String>> = self
            .alerts
            .iter()
            .map(|r| {
                vec![
                    time(r),
                    label(&r.labels.action),
                    label(&r.labels.severity),
                    text(r, "/data/score"),
                    text(r, "/data/source_ip"),
                    text(r, "/data/count"),
                ]
            })
            .collect();
        table(
            &mut out,
            &["TIME", "RULE", "LEVEL", "SCORE", "SOURCE IP", "FAILURES"],
            &rows,
        );

        out.push_str(&format!(
            "\n=== Causal Trail of the Suspicious Login ({}) ===\n",
            plan.suspicious_login_id
        ));
        out.push_str(&super::trail::render_trail(&self.suspicious_login));
        out.push_str(&format!(
            "\n=== Causal Trail of the Critical Brute-Force Alert ({}) ===\n",
            self.critical_alert.id
        ));
        out.push_str(&super::trail::render_trail(&self.critical_alert));
        out
    }
}

fn time(r: &StoredRecord) -> String {
    r.event_time.to_rfc3339_opts(TIME_FORMAT, true)
}

fn label(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

/// A scalar of the stored CloudEvent at `pointer`, as text; `-` when absent (or erased).
fn text(r: &StoredRecord, pointer: &str) -> String {
    match r.event.as_ref().and_then(|e| e.pointer(pointer)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        out.push_str("(none)\n");
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(out, headers);
    // A run of rows alike but for their time (the brute-force burst) is shown once, with a
    // count: the point is the pattern, not twenty identical lines.
    let mut i = 0;
    while i < rows.len() {
        let alike = rows[i + 1..]
            .iter()
            .take_while(|r| r[1..] == rows[i][1..])
            .count();
        let cells: Vec<&str> = rows[i].iter().map(String::as_str).collect();
        line(out, &cells);
        if alike > 0 {
            let until = &rows[i + alike][0];
            out.push_str(&format!("  … and {alike} more like it, until {until}\n"));
        }
        i += alike + 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn plan() -> DemoPlan {
        DemoPlan::new(Utc::now()).expect("the embedded lifecycle is valid")
    }

    #[test]
    fn each_run_has_fresh_ids_user_and_ip() {
        let (a, b) = (plan(), plan());
        assert_ne!(a.user_id, b.user_id);
        assert_eq!(a.lifecycle_ids.len(), 7);
        assert_eq!(a.events.len(), 7 + BURST);
        let ids: BTreeSet<&str> = a.events.iter().chain(&b.events).map(id_of).collect();
        assert_eq!(ids.len(), 2 * (7 + BURST), "every event id is fresh");
        assert!(a.ip.starts_with("203.0.113."));
    }

    /// The plan's clock is the `now` it is given, so its times are checked exactly, however
    /// slow the machine: the lifecycle's own spacing (the recipe's last event 1.35 s after
    /// its first), then the burst every 50 ms, the last event at `now`.
    #[test]
    fn times_keep_the_recipes_spacing_and_end_at_now() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        let plan = DemoPlan::new(now).expect("the embedded lifecycle is valid");
        let ms = chrono::Duration::milliseconds;
        let times: Vec<DateTime<Utc>> = plan
            .events
            .iter()
            .map(|e| {
                DateTime::parse_from_rfc3339(e["time"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&Utc)
            })
            .collect();
        let offsets: Vec<i64> = times
            .iter()
            .map(|t| (*t - times[0]).num_milliseconds())
            .collect();
        let burst: Vec<i64> = (1..=21).map(|i| 1_350 + 50 * i).collect();
        assert_eq!(offsets[..7], [0, 100, 300, 600, 750, 1_150, 1_350]);
        assert_eq!(offsets[7..], burst[..]);
        assert_eq!(
            *times.last().unwrap(),
            now,
            "the last event is now, none ahead of it"
        );
        assert_eq!(times[0], now - ms(2_400));
        assert_eq!(plan.first_time, times[0]);
        assert!(times.windows(2).all(|w| w[0] < w[1]), "order kept");
    }

    #[test]
    fn the_user_is_everywhere_the_recipe_names_one() {
        let p = plan();
        for event in &p.events {
            assert_eq!(event["data"]["user_id"], json!(p.user_id));
            if let Some(subject) = event.get("subject") {
                assert_eq!(subject, &json!(format!("user:{}", p.user_id)));
            }
            assert!(!event.to_string().contains("demo_user_1\""));
        }
    }

    #[test]
    fn the_burst_comes_from_the_suspicious_logins_ip() {
        let p = plan();
        let failed: Vec<&Value> = p.events.iter().filter(|e| is_failed_login(e)).collect();
        assert_eq!(failed.len(), 1 + BURST);
        assert!(
            failed.len() > 20,
            "enough for the brute-force rule's critical level"
        );
        assert!(failed.iter().all(|e| e["ipaddress"] == json!(p.ip)));
        assert_eq!(id_of(failed[0]), p.suspicious_login_id);
        assert_eq!(p.expected_records(), 7 + BURST + 1 + BURST);
    }
}
