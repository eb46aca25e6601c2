//! What the security monitor's and the causality indexer's load harnesses share (the indexer's
//! includes this file by path): the run's private topics and groups, a synthetic traffic mix
//! run through the real classifier, a read-only consumer, running a service binary until its
//! committed offsets cover a backlog (with its memory and CPU from `/proc`), and cleaning up.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditflow_core::{Classified, Classifier, Config};
use auditflow_runtime::kafka::client;
use auditflow_runtime::kafka::inspect::CommittedOffsets;
use auditflow_runtime::kafka::publisher::Publisher;
use auditflow_runtime::kafka::topics::{delete_group, delete_topics, planned_topics};
use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

/// People in the synthetic traffic.
pub const USERS: u64 = 5_000;
/// Event time between two consecutive synthetic inputs: 300 000 records span ≈ 30 minutes.
pub const STEP_MS: i64 = 5;
/// Sources of the credential-stuffing and brute-force traffic.
pub const ATTACKERS: usize = 6;

/// A run's private names: every topic `<run>.<name>`, groups `<run>-<service>`, the keyspace
/// `<run>`. The child gets `overrides` as its environment; `config` is loaded from the same.
pub struct Run {
    /// `load<pid>`.
    pub name: String,
    /// `AUDITFLOW_<SECTION>__<KEY>` pairs.
    pub overrides: Vec<(String, String)>,
    /// The configuration the overrides give.
    pub config: Config,
}

impl Run {
    /// This process's run.
    pub fn new() -> Run {
        let name = format!("load{}", std::process::id());
        let mut overrides = vec![
            (
                "AUDITFLOW_KAFKA__GROUP_PREFIX".to_owned(),
                format!("{name}-"),
            ),
            ("AUDITFLOW_STORE__KEYSPACE".to_owned(), name.clone()),
            (
                "AUDITFLOW_METRICS__LISTEN".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
        ];
        for (key, topic) in [
            ("USER_ACTION", "audit.user.action"),
            ("DATA_ACCESS", "audit.data.access"),
            ("SECURITY_EVENT", "audit.security.event"),
            ("DEAD_LETTER", "audit.dlq"),
            ("ALERTS", "security.alerts"),
            ("ACTIONS", "security.actions"),
            ("BLOCKLIST", "security.blocklist"),
            ("CHECKPOINTS", "audit.checkpoints"),
            ("OPERATOR", "audit.operator.action"),
            ("SAMPLING", "audit.sampling.summary"),
        ] {
            overrides.push((
                format!("AUDITFLOW_TOPICS__{key}"),
                format!("{name}.{topic}"),
            ));
        }
        let config = Config::load("", std::env::vars().chain(overrides.iter().cloned()))
            .expect("configuration");
        Run {
            name,
            overrides,
            config,
        }
    }
}

/// A person's number, spread so that each has events of every kind.
fn person(i: usize) -> u64 {
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % USERS
}

/// Synthetic input `i`, as an application would publish it, dated `base_ms + i * STEP_MS`.
/// Per 200 inputs: 70 page views, 30 logins (with the person's home location; one in 2 000 from
/// the other side of the world, minutes later: impossible travel), 8 failed logins from the
/// person's own address, 2 from one of `ATTACKERS` sources against anyone (brute force and
/// credential stuffing), 16 profile updates, 20 data reads, 4 role changes (one in ten to
/// admin; one in a hundred self-granted root), 2 actions from a new address and browser
/// (unusual access once a baseline is learned), 18 newsletter opens, 20 payments, 6 security
/// scans and 4 system jobs. Each person acts from one address and browser of their own.
pub fn input(i: usize, base_ms: i64) -> Vec<u8> {
    let u = person(i);
    let user = format!("user-{u}");
    let home_ip = format!("10.{}.{}.{}", u >> 16, (u >> 8) & 255, u & 255);
    let browser = ["Firefox/133.0", "Chrome/131.0", "Safari/18.1", "Edge/131.0"][(u % 4) as usize];
    let (lat, lon) = ((u % 120) as f64 - 60.0, (u * 7 % 340) as f64 - 170.0);
    let round = i / 200;
    let (ty, mut data, ip, agent) = match i % 200 {
        0..70 => (
            "user.page.viewed",
            json!({"page": "/home"}),
            home_ip,
            browser,
        ),
        70..100 => {
            let far = i % 2_000 == 71;
            let lon = if far {
                lon - 180.0_f64.copysign(lon)
            } else {
                lon
            };
            let geo = json!({"lat": lat, "lon": lon});
            let data = json!({"success": true, "geo": geo});
            ("user.login.attempt", data, home_ip, browser)
        }
        100..108 => (
            "user.login.attempt",
            json!({"success": false}),
            home_ip,
            browser,
        ),
        108..110 => {
            let source = format!("203.0.113.{}", 1 + round % ATTACKERS);
            let data = json!({"success": false, "failure_count": 1});
            ("user.login.attempt", data, source, "python-requests/2.32")
        }
        110..126 => {
            let data = json!({"changes": {(["timezone", "email"][i % 2]): "x"}});
            ("user.profile.updated", data, home_ip, browser)
        }
        126..146 => {
            let data = json!({"data_type": "orders", "record_count": 1 + i % 20});
            ("user.data.read", data, home_ip, browser)
        }
        146..150 => {
            let (role, by) = match round % 100 {
                0 => ("root", user.clone()),
                n if n % 10 == 0 => ("admin", "ops-admin".to_owned()),
                _ => ("editor", "ops-admin".to_owned()),
            };
            let data = json!({"new_role": role, "old_role": "viewer", "changed_by": by});
            ("user.role.changed", data, home_ip, browser)
        }
        150..152 => {
            let roaming = format!("192.0.2.{}", 1 + i % 250);
            (
                "user.page.viewed",
                json!({"page": "/account"}),
                roaming,
                "Opera/115.0",
            )
        }
        152..170 => (
            "user.newsletter.opened",
            json!({"campaign": "winter"}),
            home_ip,
            browser,
        ),
        170..190 => {
            let data = json!({"amount": 4200, "currency": "EUR"});
            ("user.payment.completed", data, home_ip, browser)
        }
        190..196 => {
            let data =
                json!({"severity": "warning", "finding": "open_port", "ip_address": home_ip});
            ("system.security.scan", data, String::new(), "")
        }
        _ => (
            "system.job.finished",
            json!({"outcome": "success"}),
            String::new(),
            "",
        ),
    };
    if ty.starts_with("user.") {
        let fields = data.as_object_mut().expect("an object");
        fields.insert("user_id".into(), json!(user));
        fields.insert("ip_address".into(), json!(ip));
        fields.insert("user_agent".into(), json!(format!("Mozilla/5.0 {agent}")));
        fields.insert("session_id".into(), json!(format!("s-{u}-{}", i / 5_000)));
    }
    let time = chrono::DateTime::<Utc>::from_timestamp_millis(base_ms + STEP_MS * i as i64)
        .expect("a time");
    let mut event = json!({
        "specversion": "1.0", "id": format!("in-{i}"), "source": "/bench/load",
        "type": ty, "time": time.to_rfc3339(), "data": data,
    });
    // `LOAD_CORRELATION=<id>`: every input in one conversation (a batch job's or an attack's
    // correlation id), so the causality index's members of that id share one partition a day.
    if let Some(correlation) = hot_correlation() {
        event["correlationid"] = json!(correlation);
    }
    serde_json::to_vec(&event).expect("JSON")
}

fn hot_correlation() -> Option<&'static str> {
    static HOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOT.get_or_init(|| std::env::var("LOAD_CORRELATION").ok())
        .as_deref()
}

/// A classified record ready to produce.
pub struct Record {
    /// Its topic.
    pub topic: String,
    /// Its key.
    pub key: String,
    /// The CloudEvent, structured mode.
    pub payload: Vec<u8>,
}

/// The first `records` audit records, on the topics `keep` accepts, that the real classifier
/// makes of the synthetic inputs, dated so the last is about now; and how they divide by
/// topic (last part of its name).
pub fn classified(
    config: &Config,
    records: usize,
    keep: impl Fn(&str) -> bool,
) -> (Vec<Record>, String) {
    let classifier = Classifier::new(config).expect("classifier");
    let base_ms = Utc::now().timestamp_millis() - STEP_MS * (records as i64 * 11 / 10);
    let mut out = Vec::with_capacity(records);
    let mut by_topic: BTreeMap<String, usize> = BTreeMap::new();
    let mut inputs = 0;
    while out.len() < records {
        let outputs = match classifier.classify_structured(&input(inputs, base_ms), Utc::now()) {
            Classified::Emit(outputs) => outputs,
            other => panic!("input {inputs} was not audited: {other:?}"),
        };
        inputs += 1;
        for output in outputs {
            if out.len() == records || !keep(&output.topic) {
                continue;
            }
            let name = output.topic.rsplit('.').next().unwrap_or_default();
            *by_topic.entry(name.to_owned()).or_default() += 1;
            out.push(Record {
                payload: output.value,
                topic: output.topic,
                key: output.key,
            });
        }
    }
    let mix: Vec<String> = by_topic.iter().map(|(t, n)| format!("{t} {n}")).collect();
    (
        out,
        format!("{inputs} inputs, {USERS} users: {}", mix.join(", ")),
    )
}

/// Produces `records` in rounds of 20 000 and waits for every acknowledgement.
pub async fn produce(config: &Config, records: &[Record]) {
    // Larger batches than the services use: only the setup speeds up.
    let mut settings = config.kafka.clone();
    settings.properties.insert("linger.ms".into(), "20".into());
    let producer = Publisher::new(&settings).expect("producer");
    for round in records.chunks(20_000) {
        let sends = round.iter().map(|r| {
            producer.publish(
                &r.topic,
                r.key.as_bytes(),
                &r.payload,
                Duration::from_secs(60),
            )
        });
        for sent in futures::future::join_all(sends).await {
            sent.expect("produce");
        }
    }
}

/// Reads `records` records of `topics` once, with the loops' consumer settings, in a group of
/// its own; records/s from the first to the last. Blocking.
pub fn read_only(config: &Config, topics: &[String], records: usize) -> f64 {
    let group = client::group_id(&config.kafka, "reader");
    let consumer: BaseConsumer = client::consumer_config(&config.kafka, &group)
        .create()
        .expect("consumer");
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).expect("subscribe");
    let (mut seen, mut first) = (0, None);
    while seen < records {
        let Some(polled) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let record = auditflow_runtime::InputRecord::from_message(&polled.expect("consume"));
        std::hint::black_box(record);
        first.get_or_insert_with(Instant::now);
        seen += 1;
    }
    records as f64 / first.expect("records").elapsed().as_secs_f64()
}

/// What a service binary did over the backlog.
pub struct ServiceRun {
    /// Records/s from its first commit to the one that covered the backlog.
    pub rate: f64,
    /// From spawn to the last commit.
    pub wall_secs: f64,
    /// Peak RSS (`VmHWM`), KiB.
    pub peak_kib: u64,
    /// Largest `VmRSS` sampled every 100 ms, KiB.
    pub max_rss_kib: u64,
    /// User + system CPU from spawn to the last commit.
    pub cpu_secs: f64,
}

/// Runs `binary run <service>` with the run's overrides (and this process's environment) until
/// its group's committed offsets over `inputs` reach `records`; prints progress every 15 s.
/// The child is stopped with SIGTERM, and must exit cleanly.
pub async fn run_service(
    binary: &str,
    service: &str,
    run: &Run,
    inputs: &[String],
    records: usize,
) -> ServiceRun {
    let spawned = Instant::now();
    let child = Command::new(binary)
        .args(["run", service])
        .envs(run.overrides.iter().cloned())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary}: {e} (cargo build --release -p auditflow-cli)"));
    let mut child = Stopped(child);
    let pid = child.0.id();
    let kafka = &run.config.kafka;
    let watcher = CommittedOffsets::of(kafka, &client::group_id(kafka, service)).expect("watcher");
    let partitions = run.config.topics.partitions;
    let (mut first, mut max_rss_kib, mut progress) = (None, 0, Instant::now());
    let done = loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{service} exited early: {status}");
        }
        let committed: i64 = inputs
            .iter()
            .map(|t| {
                watcher
                    .total(t, partitions, Duration::from_secs(10))
                    .expect("committed offsets")
            })
            .sum();
        max_rss_kib = max_rss_kib.max(proc_kib(pid, "VmRSS"));
        if committed > 0 && first.is_none() {
            first = Some((Instant::now(), committed));
        }
        if committed as usize >= records {
            break Instant::now();
        }
        if progress.elapsed() >= Duration::from_secs(15) {
            progress = Instant::now();
            println!(
                "  {service}: {committed} committed after {:.0} s, RSS {:.1} MiB",
                spawned.elapsed().as_secs_f64(),
                proc_kib(pid, "VmRSS") as f64 / 1024.0
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (peak_kib, cpu_secs) = (proc_kib(pid, "VmHWM"), cpu_secs(pid));
    let status = child.stop();
    assert!(status.success(), "{service} exited with {status}");
    let (start, at_start) = first.expect("commits");
    ServiceRun {
        rate: (records as i64 - at_start) as f64 / done.duration_since(start).as_secs_f64(),
        wall_secs: done.duration_since(spawned).as_secs_f64(),
        peak_kib,
        max_rss_kib,
        cpu_secs,
    }
}

/// A child process stopped with SIGTERM however the run ends.
struct Stopped(Child);

impl Stopped {
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.0.wait().expect("the child's exit")
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// A `kB` line of `/proc/<pid>/status`; 0 when unreadable.
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .find_map(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of a process (`/proc/<pid>/stat` utime and stime, 100 ticks/s).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name, which is parenthesised and may hold spaces: state is field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// The JSON values of every record on `topic` (read committed), `None` for tombstones. Read
/// until every partition's position reaches its end offset: on a topic written in
/// transactions the last offset is a commit marker no record is delivered for (the runtime's
/// `read_to_end` waits for a record there, and times out).
pub fn read_topic(config: &Config, topic: &str) -> Vec<Option<Value>> {
    const TIMEOUT: Duration = Duration::from_secs(60);
    let group = client::group_id(&config.kafka, "reader");
    let consumer: BaseConsumer = client::consumer_config(&config.kafka, &group)
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..config.topics.partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .expect("end offsets");
        ends.push((p, high));
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let started = Instant::now();
    let mut values = Vec::new();
    loop {
        if let Some(polled) = consumer.poll(Duration::from_millis(200)) {
            let payload = polled.expect("consume").payload().map(<[u8]>::to_vec);
            values.push(payload.map(|p| serde_json::from_slice(&p).expect("JSON")));
            continue;
        }
        let position = consumer.position().expect("positions");
        let at_end = ends.iter().all(|(p, high)| {
            *high == 0
                || matches!(position.find_partition(topic, *p).map(|e| e.offset()),
                    Some(Offset::Offset(o)) if o >= *high)
        });
        if at_end {
            return values;
        }
        assert!(started.elapsed() < TIMEOUT, "{topic} not read to its end");
    }
}

/// Deletes the run's topics (and `extra_topics`) and the groups of `services`.
pub async fn clean_up(config: &Config, extra_topics: &[String], services: &[&str]) {
    let mut topics: Vec<String> = planned_topics(&config.topics)
        .into_iter()
        .map(|t| t.name)
        .collect();
    topics.extend(extra_topics.iter().cloned());
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(e) = delete_topics(&config.kafka, &names).await {
        eprintln!("deleting topics: {e}");
    }
    for service in services {
        let group = client::group_id(&config.kafka, service);
        if let Err(e) = delete_group(&config.kafka, &group).await {
            eprintln!("deleting group {group}: {e}");
        }
    }
    println!(
        "deleted {} topics and {} groups",
        names.len(),
        services.len()
    );
}

/// The machine, for the record: cores, memory, load average.
pub fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let load: Vec<String> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .map(str::to_owned)
        .collect();
    format!(
        "machine: {} cores, {:.1} GiB, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_kib / 1_048_576.0,
        load.join(" ")
    )
}
