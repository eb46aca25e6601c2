//! The chaos harness (`cargo xtask chaos`, and its short form in the test suite): the whole
//! pipeline as separate processes, several instances of every service, under a seeded fault
//! schedule while a seeded mix of traffic is produced; then a ledger of what every input became.
//!
//! One run, in order:
//! 1. fresh names (topics, groups, keyspace) and one configuration file for every process
//!    (`target/chaos/<run>/auditflow.toml`); input topics of 6 partitions; `auditflow topics
//!    create` and `auditflow migrate`;
//! 2. the [`fleet`]: 3 classifiers, 2 security monitors, 3 sinks, 2 causality indexers by
//!    default, each `auditflow run <service>` with its own metrics port, log and instance id;
//!    the run starts once every group has handed out all its partitions;
//! 3. the [`corpus`] is produced at its rate while the [`faults`] run, a probe samples every
//!    group's committed lag each second and the fleet restarts what dies on its own;
//! 4. once production and faults are over, the run waits until every group has committed
//!    everything, then checks that no transactional loop still aborts while idle;
//! 5. the [`ledger`]: Kafka's `read_committed` topics, the store's tables, `query`, the
//!    causality index and `auditflow verify` against what the corpus calls for;
//! 6. a [`report`]: a table, and JSON in `target/chaos/<run>/report.json`.

pub mod corpus;
pub mod faults;
pub mod fleet;
pub mod ledger;
pub mod probe;
pub mod report;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditflow_core::Config;
use auditflow_store::{RecordKind, Store, TimeRange};
use futures::StreamExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::Value;

use crate::kafka::{create_topic_with, read_committed};
use corpus::{Corpus, Names};
use fleet::{Fleet, SERVICES};
use ledger::{Positions, Row, Topics};
use probe::{Group, LagProbe};
pub use report::Report;

/// What a run does.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long inputs are produced.
    pub duration: Duration,
    /// Inputs per second.
    pub rate: u32,
    /// Seeds the corpus, the fault schedule and every random pick.
    pub seed: u64,
    /// The short schedule (each fault kind once or so) instead of the long one.
    pub short: bool,
    /// Give each instance a stable `[kafka] instance_id` (the default); off, every start has a
    /// fresh `transactional.id`, as before the option existed.
    pub stable_ids: bool,
    /// Kill and SIGTERM only instances of this service (one of [`SERVICES`]); all when `None`.
    pub only: Option<&'static str>,
    /// Base instances per service, in [`SERVICES`] order.
    pub instances: [usize; 4],
    /// The `auditflow` binary.
    pub binary: PathBuf,
    /// Where runs keep their files (`target/chaos`).
    pub out_dir: PathBuf,
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// CQL contact points.
    pub nodes: Vec<String>,
    /// The local stack's folder (its servers' pid files).
    pub stack_dir: PathBuf,
    /// The xtask binary, to start the broker again.
    pub xtask: Option<PathBuf>,
}

impl Settings {
    /// The defaults for `binary` on the stack the environment names (`AUDITFLOW_KAFKA_BOOTSTRAP`,
    /// `AUDITFLOW_CQL_NODES`, `AUDITFLOW_STACK_DIR`, `AUDITFLOW_XTASK`): the long form, 10
    /// minutes at 200 inputs per second.
    pub fn new(binary: &Path) -> Self {
        let target = binary
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("target"), Path::to_owned);
        Self {
            duration: Duration::from_secs(600),
            rate: 200,
            seed: 1,
            short: false,
            stable_ids: true,
            only: None,
            instances: [3, 2, 3, 2],
            binary: binary.to_owned(),
            out_dir: target.join("chaos"),
            bootstrap: crate::stack::kafka_bootstrap(),
            nodes: crate::stack::cql_nodes(),
            stack_dir: std::env::var_os("AUDITFLOW_STACK_DIR")
                .map_or_else(|| PathBuf::from(".stack"), PathBuf::from),
            xtask: std::env::var_os("AUDITFLOW_XTASK").map(PathBuf::from),
        }
    }

    /// The test suite's form: a minute of production at 40 inputs per second, each fault kind
    /// once (three kills).
    pub fn short(binary: &Path, seed: u64) -> Self {
        Self {
            duration: Duration::from_secs(60),
            rate: 40,
            seed,
            short: true,
            ..Self::new(binary)
        }
    }
}

/// Partitions of every topic of a run: enough for the largest group (3 classifiers, 3 sinks,
/// and the storms' extras).
const PARTITIONS: i32 = 6;
/// How long the run waits for every group to catch up once production and faults are over.
const CATCH_UP: Duration = Duration::from_secs(300);
/// How long the idle check watches the transactional loops after catch-up.
const IDLE: Duration = Duration::from_secs(10);

/// The configuration every process of the run reads.
fn config_text(s: &Settings, run: &str, names: &Names<'_>) -> String {
    let t = |name: &str| format!("{run}.{name}");
    let nodes: Vec<String> = s.nodes.iter().map(|n| format!("{n:?}")).collect();
    format!(
        r#"# A chaos run's configuration (tests/support/chaos).
[kafka]
bootstrap_servers = "{bootstrap}"
group_prefix = "{run}-"
# A killed member's partitions move after this, not after the 45 s default.
properties = {{ "session.timeout.ms" = "10000" }}

[topics]
user_action = "{ua}"
data_access = "{da}"
security_event = "{se}"
dead_letter = "{dlq}"
alerts = "{al}"
actions = "{ac}"
blocklist = "{bl}"
checkpoints = "{cp}"
operator = "{op}"
sampling = "{sa}"
ocsf = "{oc}"
classifier_inputs = ["{ut}", "{st}"]
partitions = {PARTITIONS}

[store]
nodes = [{nodes}]
keyspace = "{run}"
master_key_env = ""

[integrity]
checkpoint_every = 200
signing_key_env = ""

[security]
id_secret_env = ""

[sampling]
"{pattern}" = {rate}
"#,
        bootstrap = s.bootstrap,
        ua = t("audit.user.action"),
        da = t("audit.data.access"),
        se = t("audit.security.event"),
        dlq = t("audit.dlq"),
        al = t("security.alerts"),
        ac = t("security.actions"),
        op = t("audit.operator.action"),
        sa = t("audit.sampling.summary"),
        oc = t("audit.ocsf"),
        bl = t("security.blocklist"),
        cp = t("audit.checkpoints"),
        ut = names.user_topic,
        st = names.system_topic,
        nodes = nodes.join(", "),
        pattern = corpus::SAMPLING.0,
        rate = corpus::SAMPLING.1,
    )
}

/// `auditflow <args>` with the run's configuration; its output, or why it failed.
fn auditflow(s: &Settings, config_file: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(&s.binary)
        .arg("--no-operator-log")
        .args(args)
        .env("AUDITFLOW_CONFIG", config_file)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("{}: {e}", s.binary.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "auditflow {}: {} {}{}",
            args.join(" "),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The groups of a run and what each reads.
fn groups(config: &Config, run: &str) -> Vec<Group> {
    let t = &config.topics;
    // What each service subscribes to, from the services themselves.
    let sink = auditflow_sink::input_topics(config);
    let indexer = auditflow_causality_indexer::input_topics(config);
    vec![
        Group {
            service: "classifier",
            id: format!("{run}-classifier"),
            topics: t.classifier_inputs.clone(),
        },
        Group {
            service: "security-monitor",
            id: format!("{run}-security-monitor"),
            topics: auditflow_security_monitor::input_topics(config),
        },
        Group {
            service: "sink",
            id: format!("{run}-sink"),
            topics: sink,
        },
        Group {
            service: "causality-indexer",
            id: format!("{run}-causality-indexer"),
            topics: indexer,
        },
    ]
}

/// One lag sample: seconds into production, each group's lag (`None`: the broker did not answer).
pub type Sample = (f64, Option<BTreeMap<&'static str, u64>>);

/// Runs the whole thing. `Err` is a run that could not be carried out (a server missing, a
/// service that never joined); a run carried out returns its report, passed or not.
pub async fn run(s: &Settings) -> Result<Report, String> {
    let run = crate::stack::unique_name(&format!("chaos{}", s.seed));
    let dir = s.out_dir.join(&run);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let user_topic = format!("{run}.user.events");
    let system_topic = format!("{run}.system.events");
    let names = Names {
        run: &run,
        user_topic: &user_topic,
        system_topic: &system_topic,
    };
    let text = config_text(s, &run, &names);
    let config =
        Config::from_toml_str(&text).map_err(|e| format!("the run's configuration: {e}"))?;
    let config_file = dir.join("auditflow.toml");
    std::fs::write(&config_file, &text).map_err(|e| format!("{}: {e}", config_file.display()))?;
    eprintln!("chaos: run {run} in {}", dir.display());

    let stack = faults::Stack::new(&s.stack_dir, s.xtask.clone());
    stack.check().map_err(|e| {
        format!("the broker and database faults need this checkout's own stack: {e}")
    })?;

    // Producers own their input topics; 4 MB records fit (the oversized garbage).
    for topic in [&user_topic, &system_topic] {
        create_topic_with(
            &s.bootstrap,
            topic,
            PARTITIONS,
            &[("max.message.bytes", "4000000")],
        )
        .await;
    }
    auditflow(s, &config_file, &["topics", "create"])?;
    auditflow(s, &config_file, &["migrate"])?;

    let fleet = Arc::new(Mutex::new(Fleet::new(
        &s.binary,
        &config_file,
        &logs,
        s.stable_ids,
    )));
    {
        let mut f = fleet.lock().expect("fleet");
        for (service, n) in SERVICES.iter().zip(s.instances) {
            for _ in 0..n {
                f.add(service, true)
                    .map_err(|e| format!("starting {service}: {e}"))?;
            }
        }
    }
    let groups = groups(&config, &run);
    for g in &groups {
        let ports: Vec<u16> = {
            let f = fleet.lock().expect("fleet");
            f.slots
                .iter()
                .filter(|x| x.service == g.service)
                .map(|x| x.port)
                .collect()
        };
        let partitions = g.topics.len() as u64 * PARTITIONS as u64;
        crate::metrics::wait_for_split_at(&ports, g.service, partitions).await;
    }
    eprintln!(
        "chaos: every group has its partitions; producing for {:?} at {}/s",
        s.duration, s.rate
    );

    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let start = chrono::Utc::now();
    let corpus = corpus::build(&names, &config, &mut rng, s.duration, s.rate, start)?;
    let schedule = faults::schedule(&mut rng, s.duration, s.short);
    let started = Instant::now();

    // The lag sampler, which is also the fleet's supervisor. A probe whose calls fail is
    // made again (its clients may not outlive a broker restart).
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (fleet, samples, stop) = (fleet.clone(), samples.clone(), stop.clone());
        let (bootstrap, groups) = (s.bootstrap.clone(), groups.clone());
        std::thread::spawn(move || {
            let mut probe: Option<LagProbe> = None;
            while !stop.load(Ordering::Relaxed) {
                let tick = Instant::now();
                fleet.lock().expect("fleet").poll();
                let lag = probe
                    .take()
                    .map_or_else(|| LagProbe::new(&bootstrap, &groups), Ok)
                    .and_then(|p| {
                        let lag = p.lag();
                        probe = Some(p);
                        lag
                    });
                let lag = match lag {
                    Ok(lag) => Some(lag),
                    Err(e) => {
                        eprintln!("chaos: no lag sample: {e}");
                        probe = None;
                        None
                    }
                };
                samples
                    .lock()
                    .expect("samples")
                    .push((started.elapsed().as_secs_f64(), lag));
                std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
            }
        })
    };

    let targets = Arc::new(faults::Targets {
        fleet: fleet.clone(),
        stack,
        bootstrap: s.bootstrap.clone(),
        outputs: vec![
            (
                "classifier",
                vec![
                    config.topics.user_action.clone(),
                    config.topics.data_access.clone(),
                    config.topics.security_event.clone(),
                    config.topics.dead_letter.clone(),
                ],
            ),
            (
                "security-monitor",
                vec![
                    config.topics.alerts.clone(),
                    config.topics.actions.clone(),
                    config.topics.blocklist.clone(),
                ],
            ),
        ],
        started,
        only: s.only,
    });
    let seed = s.seed;
    let fault_thread = std::thread::spawn(move || faults::run(targets, schedule, seed));

    let (positions, undelivered) = produce(&s.bootstrap, &corpus, started).await;
    eprintln!(
        "chaos: produced {} inputs ({} undelivered)",
        corpus.records.len(),
        undelivered.len()
    );
    let injected = tokio::task::spawn_blocking(move || fault_thread.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "a fault thread panicked".to_string())?;
    let faults_over = started.elapsed().as_secs_f64();
    eprintln!("chaos: faults over at {faults_over:.0} s; waiting for every group to catch up");

    // Caught up: every group's lag 0 in three samples in a row.
    let caught_up_s = loop {
        let recent: Vec<Sample> = {
            let all = samples.lock().expect("samples");
            all.iter().rev().take(3).cloned().collect()
        };
        let done = recent.len() == 3
            && recent.iter().all(|(t, lag)| {
                *t > faults_over && lag.as_ref().is_some_and(|l| l.values().all(|v| *v == 0))
            });
        if done {
            break Some(recent[2].0);
        }
        if started.elapsed().as_secs_f64() > faults_over + CATCH_UP.as_secs_f64() {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Idle: no transactional loop may go on aborting (a loop spinning after a broker restart).
    let (aborts_before, commits_before) = transactions(&fleet);
    tokio::time::sleep(IDLE).await;
    let (aborts_after, commits_after) = transactions(&fleet);
    let committed_lag = committed_lag_metric(&fleet);

    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || sampler.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the lag sampler panicked".to_string())?;

    // The ledger.
    let bootstrap = s.bootstrap.clone();
    let t = config.topics.clone();
    let topics = tokio::task::spawn_blocking(move || Topics {
        outputs: [&t.user_action, &t.data_access, &t.security_event]
            .into_iter()
            .map(|topic| (topic.clone(), read_committed(&bootstrap, topic)))
            .collect(),
        dead_letters: read_committed(&bootstrap, &t.dead_letter),
        alerts: read_committed(&bootstrap, &t.alerts),
        actions: read_committed(&bootstrap, &t.actions),
        blocklist: read_committed(&bootstrap, &t.blocklist),
        sampling: read_committed(&bootstrap, &t.sampling),
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut rows = ledger::kafka_rows(&config, &corpus, &positions, &topics);
    let expected = ledger::expected_records(&config, &topics);
    let session = crate::store::session_at(&s.nodes).await;
    rows.extend(ledger::store_rows(&session, &run, &expected).await?);
    rows.extend(query_rows(s, &config, &config_file, &expected).await?);
    rows.extend(ledger::causality_rows(&session, &run, &expected, &topics.actions).await?);
    rows.push(verify_row(s, &config_file, &expected));

    let (slots, exits) = {
        let mut f = fleet.lock().expect("fleet");
        f.stop_all(Duration::from_secs(60));
        let slots: Vec<(String, &'static str, u32, u64)> = f
            .slots
            .iter()
            .map(|x| (x.name(), x.service, x.starts, x.peak_rss_kib))
            .collect();
        (slots, f.exits.clone())
    };
    let samples = samples.lock().expect("samples").clone();
    let report = Report {
        run: run.clone(),
        dir: dir.clone(),
        settings: s.clone(),
        inputs: input_counts(&corpus, &undelivered),
        undelivered: undelivered.len(),
        rows,
        faults: injected,
        samples,
        slots,
        exits,
        caught_up_s,
        idle_aborts: aborts_after.saturating_sub(aborts_before),
        idle_commits: commits_after.saturating_sub(commits_before),
        committed_lag,
    };
    let json = serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?;
    let file = dir.join("report.json");
    std::fs::write(&file, json).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(report)
}

/// Produces the corpus on its schedule (each record at its `at`), at most 10 000 awaiting
/// their acknowledgement at once; returns where each went, and the indices of the records
/// that could not be delivered. Deliveries wait out a broker restart (10 minutes' timeout),
/// and nothing is sent twice, so every input exists exactly once.
async fn produce(bootstrap: &str, corpus: &Corpus, started: Instant) -> (Positions, Vec<usize>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.max.bytes", "4000000")
        .set("message.timeout.ms", "600000")
        .create()
        .expect("a producer");
    let mut positions: Positions = vec![(String::new(), -1, -1); corpus.records.len()];
    let mut undelivered = Vec::new();
    let mut in_flight: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
    for (i, r) in corpus.records.iter().enumerate() {
        let wait = r.at.saturating_sub(started.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        while in_flight.len() >= 10_000 {
            let front = in_flight.pop_front().expect("in flight");
            settle(corpus, front, &mut positions, &mut undelivered).await;
        }
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        let mut record = FutureRecord::<String, Vec<u8>>::to(&r.topic)
            .payload(&r.value)
            .headers(headers);
        if let Some(key) = &r.key {
            record = record.key(key);
        }
        loop {
            match producer.send_result(record) {
                Ok(future) => {
                    in_flight.push_back((i, future));
                    break;
                }
                Err((_, back)) => {
                    // The local queue is full (the broker is away): wait for room.
                    record = back;
                    if let Some(front) = in_flight.pop_front() {
                        settle(corpus, front, &mut positions, &mut undelivered).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }
    while let Some(front) = in_flight.pop_front() {
        settle(corpus, front, &mut positions, &mut undelivered).await;
    }
    (positions, undelivered)
}

/// Waits for one delivery and records where the record went (or that it never arrived).
async fn settle(
    corpus: &Corpus,
    (i, delivery): (usize, DeliveryFuture),
    positions: &mut Positions,
    undelivered: &mut Vec<usize>,
) {
    match delivery.await {
        Ok(Ok(d)) => positions[i] = (corpus.records[i].topic.clone(), d.partition, d.offset),
        _ => undelivered.push(i),
    }
}

/// Inputs by family, and what the corpus calls for.
fn input_counts(corpus: &Corpus, undelivered: &[usize]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    *out.entry("produced".to_owned()).or_insert(0) += corpus.records.len() - undelivered.len();
    for r in &corpus.records {
        *out.entry(format!("family {}", r.family)).or_insert(0) += 1;
        let fate = match &r.fate {
            corpus::Fate::Outputs(o) => {
                *out.entry("expected outputs".to_owned()).or_insert(0) += o.len();
                "audited"
            }
            corpus::Fate::SampledOut => "sampled out",
            corpus::Fate::Ignored => "ignored",
            corpus::Fate::DeadLetter(_) => "dead-lettered",
        };
        *out.entry(format!("fate {fate}")).or_insert(0) += 1;
    }
    *out.entry("expected alerts".to_owned()).or_insert(0) += corpus.alerts.len();
    *out.entry("expected actions".to_owned()).or_insert(0) += corpus.actions.len();
    out
}

/// Each user's trail through the store's `query_user` (what `auditflow query` runs) holds
/// exactly their expected records; and `auditflow query --json` itself, for a few users.
async fn query_rows(
    s: &Settings,
    config: &Config,
    config_file: &Path,
    expected: &[ledger::Expected],
) -> Result<Vec<Row>, String> {
    let mut by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in expected {
        if let Some(user) = &e.user {
            by_user
                .entry(user.clone())
                .or_default()
                .insert(e.id.clone());
        }
    }
    let store = Store::connect(&config.store, &config.retention)
        .await
        .map_err(|e| format!("connecting to the store: {e}"))?;
    let store = &store;
    let found: Vec<Result<Vec<String>, String>> = futures::stream::iter(by_user.keys())
        .map(|user| async move {
            let page = store
                .query_user(
                    user,
                    TimeRange::default(),
                    &[],
                    auditflow_store::MAX_PAGE,
                    None,
                )
                .await
                .map_err(|e| format!("query of a user: {e}"))?;
            Ok(page
                .records
                .into_iter()
                .filter(|r| r.kind != RecordKind::Alert)
                .map(|r| r.id)
                .collect())
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut ids = Vec::new();
    for f in found {
        ids.extend(f?);
    }
    let want = ledger::tally(by_user.values().flatten().cloned());
    let mut rows = vec![Row::compare(
        format!("readable by query ({} users)", by_user.len()),
        &want,
        &ledger::tally(ids),
    )];

    // The command itself, for the first lifecycle user and the first of each attacked kind.
    let mut picked: Vec<&String> = Vec::new();
    for kind in [
        "-user-",
        "-victim-",
        "-traveller-",
        "-escalator-",
        "-victim6-",
    ] {
        if let Some(u) = by_user.keys().find(|u| u.contains(kind)) {
            picked.push(u);
        }
    }
    let mut want = BTreeMap::new();
    let mut got = Vec::new();
    for user in &picked {
        for id in &by_user[*user] {
            want.insert(id.clone(), 1);
        }
        let out = auditflow(
            s,
            config_file,
            &["query", "--user", user, "--json", "--limit", "10000"],
        )?;
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("query --json: {e}"))?;
        for r in v["records"].as_array().into_iter().flatten() {
            if r["kind"] != "alert" {
                got.push(r["id"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    rows.push(Row::compare(
        format!("auditflow query --json ({} users)", picked.len()),
        &want,
        &ledger::tally(got),
    ));
    Ok(rows)
}

/// `auditflow verify --json`: every stored record verified or not yet covered, no problem.
fn verify_row(s: &Settings, config_file: &Path, expected: &[ledger::Expected]) -> Row {
    let mut row = Row {
        what: "auditflow verify (verified + not yet covered)".into(),
        expected: expected.len(),
        ..Row::default()
    };
    let out = std::process::Command::new(&s.binary)
        .arg("--no-operator-log")
        .args(["verify", "--json"])
        .env("AUDITFLOW_CONFIG", config_file)
        .env("RUST_LOG", "warn")
        .output();
    let parsed = out
        .as_ref()
        .ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok());
    match parsed {
        Some(v) => {
            let n = |f: &str| v[f].as_u64().unwrap_or(0) as usize;
            row.found = n("verified") + n("not_covered");
            row.lost = row.expected.saturating_sub(row.found);
            row.unexpected = row.found.saturating_sub(row.expected);
            let problems = v["problems"].as_array().cloned().unwrap_or_default();
            row.wrong = problems.len();
            row.examples.push(format!(
                "{} verified in {} checkpoints, {} not yet covered",
                n("verified"),
                n("checkpoints"),
                n("not_covered")
            ));
            row.examples
                .extend(problems.iter().take(4).map(Value::to_string));
        }
        None => {
            row.wrong = 1;
            row.examples.push(match out {
                Ok(o) => format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => e.to_string(),
            });
        }
    }
    row
}

/// Aborted and committed transactions over the live transactional instances, from `/metrics`.
fn transactions(fleet: &Mutex<Fleet>) -> (u64, u64) {
    let ports: Vec<u16> = {
        let f = fleet.lock().expect("fleet");
        f.live(None)
            .into_iter()
            .filter(|&i| fleet::is_transactional(f.slots[i].service))
            .map(|i| f.slots[i].port)
            .collect()
    };
    let (mut aborted, mut committed) = (0, 0);
    for port in ports {
        if let Some(text) = crate::metrics::scrape(port) {
            aborted += crate::metrics::metric_sum(
                &text,
                "auditflow_transactions_total",
                "result=\"aborted\"",
            );
            committed += crate::metrics::metric_sum(
                &text,
                "auditflow_transactions_total",
                "result=\"committed\"",
            );
        }
    }
    (aborted, committed)
}

/// `auditflow_consumer_committed_lag` summed per service over the live instances.
fn committed_lag_metric(fleet: &Mutex<Fleet>) -> BTreeMap<String, u64> {
    let f = fleet.lock().expect("fleet");
    let mut out = BTreeMap::new();
    for i in f.live(None) {
        let slot = &f.slots[i];
        // An instance that does not answer is left out (and its service may be missing).
        if let Some(text) = crate::metrics::scrape(slot.port) {
            let lag = crate::metrics::metric_sum(&text, "auditflow_consumer_committed_lag", "");
            *out.entry(slot.service.to_owned()).or_insert(0) += lag;
        }
    }
    out
}
