//! auditflow's one configuration: a TOML document in which every key has a default.
//!
//! A file may hold a single table (just `[sampling]`, say); anything absent takes its default,
//! and the defaults work against the local stack. Environment variables override the file:
//! `AUDITFLOW_<SECTION>__<KEY>` (double underscore between section and key), e.g.
//! `AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS=broker:9092`. Flags override both (the binary's job).
//!
//! This module only parses; reading the file and the environment is the caller's I/O.
//! Each section is documented here, next to the code that reads it, and every key with its
//! type, default and environment variable in `docs/configuration.md`. `Serialize` exists so a
//! test can hold that reference to the code (`crates/core/tests/configuration_reference.rs`);
//! a configured password serializes as `"<redacted>"`, never as itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::pattern::PatternTable;

mod loader;

pub use loader::ENV_PREFIX;

/// Whether a configured server address (`host:port`, `[v6]:port`, or a bare host) names this
/// machine: an IP loopback address or `localhost`. Anything else — another address, any other
/// host name — may be reached over a network. Built-in development secrets are only used when
/// every server a service talks to is loopback (a pure function of the text: no lookups).
pub fn is_loopback_address(address: &str) -> bool {
    let address = address.trim();
    let host = match address.parse::<std::net::SocketAddr>() {
        Ok(socket) => return socket.ip().is_loopback(),
        Err(_) => match address.rsplit_once(':') {
            // `host:port`, but not a bare IPv6 address (more than one colon).
            Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
            _ => address,
        },
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[kafka]`: brokers, groups, batching and in-flight bounds.
    pub kafka: KafkaSettings,
    /// `[topics]`: the names of every topic read or written, and how they are created.
    pub topics: Topics,
    /// `[limits]`: the size and nesting beyond which an input is dead-lettered.
    pub limits: Limits,
    /// Type pattern → sampling rate in [0, 1] (docs/configuration.md), e.g.
    /// `"user.page.view" = 0.1`.
    pub sampling: SamplingRates,
    /// `[retention]`: how long each retention class is kept.
    pub retention: RetentionPeriods,
    /// `[metrics]`: where `/metrics` and the health endpoints are served.
    pub metrics: MetricsSettings,
    /// `[store]`: the CQL cluster, its keyspace, consistency and encryption keys.
    pub store: StoreSettings,
    /// `[security]`: the security monitor's id secret, clock skew and state bounds.
    pub security: SecuritySettings,
    /// `[integrity]`: the tamper-evident log's checkpoints and their signing key.
    pub integrity: IntegritySettings,
    /// `[operator]`: who runs the command-line tool, for the operator log.
    pub operator: OperatorSettings,
    /// `[ocsf]`: the OCSF exporter's output (docs/ocsf.md).
    pub ocsf: OcsfSettings,
}

/// `[sampling]`: type pattern → rate, in declaration order (it breaks specificity ties,
/// docs/topics-and-records.md), which is why this is not a map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingRates(Vec<(String, f64)>);

impl SamplingRates {
    /// Rates given in code (tests, benchmarks) in the order a file would declare them, which
    /// is the order that breaks specificity ties.
    pub fn from_pairs<S: Into<String>>(pairs: impl IntoIterator<Item = (S, f64)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(pattern, rate)| (pattern.into(), rate))
                .collect(),
        )
    }

    /// `(pattern, rate)` in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0
            .iter()
            .map(|(pattern, rate)| (pattern.as_str(), *rate))
    }

    /// Checks every pattern and rate and builds the lookup table; errors name the key, e.g.
    /// `sampling."user.page.view": rate 1.5 is outside [0, 1]`.
    pub fn compile(&self) -> Result<PatternTable<f64>, ConfigError> {
        let mut entries = Vec::with_capacity(self.0.len());
        for (pattern, rate) in self.iter() {
            let key = crate::error::key_path(&["sampling", pattern]);
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::invalid(
                    key,
                    format!("rate {rate} is outside [0, 1]"),
                ));
            }
            entries.push((
                crate::pattern::Pattern::parse(pattern).map_err(|e| e.at(key))?,
                rate,
            ));
        }
        Ok(PatternTable::new(entries))
    }
}

/// As a table of pattern = rate, in declaration order (the order that breaks ties).
impl Serialize for SamplingRates {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (pattern, rate) in self.iter() {
            map.serialize_entry(pattern, &rate)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SamplingRates {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = SamplingRates;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of type pattern = rate")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut rates = Vec::new();
                while let Some((pattern, rate)) = map.next_entry::<String, f64>()? {
                    rates.push((pattern, rate));
                }
                Ok(SamplingRates(rates))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// `[kafka]`: how every service reaches the brokers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// librdkafka `bootstrap.servers`, `host:port[,host:port...]`; all-loopback lets the
    /// security monitor fall back to the development id secret.
    pub bootstrap_servers: String,
    /// Passed to librdkafka as they are (TLS, SASL, tuning), e.g.
    /// `"security.protocol" = "SASL_SSL"`.
    pub properties: BTreeMap<String, String>,
    /// Consumer group ids are `<group_prefix><service>`, e.g. `auditflow-classifier`.
    pub group_prefix: String,
    /// This instance's stable name among its service's instances (a StatefulSet pod name, a
    /// host name with a slot number), 1 to 128 of `[A-Za-z0-9._-]`. The exactly-once services'
    /// transactional producers are `<group>-<instance_id>`: a restarted instance then fences its
    /// predecessor's open transaction at once, where a new id leaves `read_committed` readers of
    /// its partitions waiting for the broker's transaction timeout. Two live instances must never
    /// share one (each would fence the other). Empty: a fresh id per start.
    pub instance_id: String,
    /// The most records one batch of the at-least-once services (sink, causality indexer)
    /// takes to the database (bounds memory per batch).
    pub batch_max_records: usize,
    /// The most records one Kafka transaction of the exactly-once services (classifier,
    /// security monitor) takes. Each commit costs a few broker round trips whatever its size,
    /// so bigger batches go faster (see the classifier's `load` example); memory per batch
    /// grows with it.
    pub transaction_max_records: usize,
    /// How long a batch waits to fill before it is processed anyway.
    pub batch_max_wait_ms: u64,
    /// At-least-once services pause consumption while this many records are consumed but not
    /// yet durably written.
    pub max_in_flight_records: usize,
    /// The bytes (keys, values and headers) of records consumed but not yet durably written
    /// (sink, causality indexer) or committed (classifier, security monitor) that a service
    /// holds before it pauses consumption: at-least-once services pause at it, exactly-once
    /// services close each transaction's batch at half of it (one batch is committing while
    /// the next is prepared). Bounds memory whatever the records' sizes; a record larger
    /// than the budget is still taken, alone.
    pub max_in_flight_bytes: usize,
    /// How often at-least-once services commit their durably-written watermark.
    pub commit_interval_ms: u64,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            properties: BTreeMap::new(),
            group_prefix: "auditflow-".into(),
            instance_id: String::new(),
            batch_max_records: 1000,
            transaction_max_records: 5000,
            batch_max_wait_ms: 100,
            max_in_flight_records: 10_000,
            max_in_flight_bytes: 64 * 1024 * 1024,
            commit_interval_ms: 1000,
        }
    }
}

/// `[topics]`: every topic name auditflow reads or writes (docs/topics-and-records.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topics {
    /// Where the classifier writes `audit.user.action` records.
    pub user_action: String,
    /// Where the classifier writes `audit.data.access` records.
    pub data_access: String,
    /// Where the classifier writes `audit.security.event` records.
    pub security_event: String,
    /// Where every service writes the records it rejects, with a reason code.
    pub dead_letter: String,
    /// Where the security monitor writes its alerts (also read by the sink and the indexer).
    pub alerts: String,
    /// Where the security monitor writes `block_ip` / `disable_account` actions.
    pub actions: String,
    /// The compacted topic of standing ip blocks, keyed by the blocked source.
    pub blocklist: String,
    /// Where the sink publishes the signed checkpoints of the tamper-evident log: the anchor
    /// outside the database (created never compacted, with unlimited retention).
    pub checkpoints: String,
    /// Where operator commands publish what they did to audit data (`audit.operator.action`
    /// events, docs/operator-log.md); the sink stores them.
    pub operator: String,
    /// Where the classifier writes what it sampled out (`audit.sampling.summary` events, one
    /// per input type, partition and hour in each transaction); the sink stores them.
    pub sampling: String,
    /// Where the OCSF exporter writes the OCSF events of the audit and security records
    /// (docs/ocsf.md).
    pub ocsf: String,
    /// What the classifier reads: topic names, or regular expressions starting with `^`.
    pub classifier_inputs: Vec<String>,
    /// Partitions of each topic `auditflow topics create` makes.
    pub partitions: i32,
    /// Replication factor of each topic `auditflow topics create` makes (3 in production).
    pub replication_factor: i32,
    /// How long the dead-letter topic keeps records, in days.
    pub dead_letter_retention_days: u32,
}

impl Topics {
    /// The topics whose records the store keeps: the three audit topics and the alerts (what
    /// the sink reads; the causality indexer reads these and the actions).
    pub fn stored(&self) -> Vec<String> {
        vec![
            self.user_action.clone(),
            self.data_access.clone(),
            self.security_event.clone(),
            self.alerts.clone(),
        ]
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            classifier_inputs: vec![r"^user\..+".into(), r"^system\..+".into()],
            partitions: 6,
            replication_factor: 1,
            dead_letter_retention_days: 30,
            user_action: "audit.user.action".into(),
            data_access: "audit.data.access".into(),
            security_event: "audit.security.event".into(),
            dead_letter: "audit.dlq".into(),
            alerts: "security.alerts".into(),
            actions: "security.actions".into(),
            blocklist: "security.blocklist".into(),
            checkpoints: "audit.checkpoints".into(),
            operator: "audit.operator.action".into(),
            sampling: "audit.sampling.summary".into(),
            ocsf: "audit.ocsf".into(),
        }
    }
}

/// `[limits]`: input bounds (docs/topics-and-records.md, the input envelope).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Records larger than this are dead-lettered as `too_large`.
    pub max_record_bytes: usize,
    /// Deeper JSON nesting is dead-lettered as `invalid_json`.
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 1024 * 1024,
            max_json_depth: 64,
        }
    }
}

/// `[retention]`: the period of each retention class, in days (docs/topics-and-records.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPeriods {
    /// Rows of the `security` class: security events and alerts, high and critical risk,
    /// logins, credentials, roles and permissions.
    pub security_days: u32,
    /// Rows of the `financial` class: payments, subscriptions, billing, invoices.
    pub financial_days: u32,
    /// Rows of the `marketing` class: marketing and newsletter events.
    pub marketing_days: u32,
    /// Rows of the `general` class: everything else.
    pub general_days: u32,
}

impl Default for RetentionPeriods {
    fn default() -> Self {
        // 7 years and 2 years, counting leap days.
        Self {
            security_days: 2557,
            financial_days: 2557,
            marketing_days: 731,
            general_days: 731,
        }
    }
}

/// `[metrics]`: where a service serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

/// `[store]`: the CQL cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Contact points, `host:port`; all-loopback is what lets the development master key be
    /// used at all.
    pub nodes: Vec<String>,
    /// The keyspace every table lives in (created by `migrate` when missing).
    pub keyspace: String,
    /// CQL replication map, e.g. `{ class = "NetworkTopologyStrategy", dc1 = "3" }`.
    pub replication: BTreeMap<String, String>,
    /// CQL user, for clusters with password authentication.
    pub username: Option<String>,
    /// The CQL user's password; written as `<redacted>` whenever a configuration is shown.
    #[serde(serialize_with = "redacted")]
    pub password: Option<String>,
    /// Consistency of reads and writes: `one`, `local_one`, `quorum`, `local_quorum`, `all`, ….
    pub consistency: String,
    /// File holding the 32-byte master key as 64 hex digits (wraps every per-user data key).
    pub master_key_file: Option<std::path::PathBuf>,
    /// Environment variable holding the master key as 64 hex digits; wins over the file.
    pub master_key_env: String,
    /// With neither a key file nor the variable set, use the built-in, publicly known
    /// development key — only when every one of `nodes` is a loopback address (the local
    /// stack and tests; the store warns); against any other cluster the store refuses to
    /// start. Set `false` in production to refuse even on loopback.
    pub insecure_dev_key: bool,
    /// How many unwrapped per-user data keys are cached (LRU).
    pub key_cache_size: usize,
    /// A cached key is re-read after this many seconds, so `gdpr delete` takes effect everywhere.
    pub key_cache_ttl_secs: u64,
    /// Statements in flight at once per store handle: all callers of one `Store` together
    /// (e.g. the sink's concurrent batches) share this many permits, one per statement while it
    /// is on the wire (not while it backs off before a retry). Paged reads are not counted.
    /// Default 128: the sink draining a backlog into one 2-core Cassandra node was fastest
    /// at 128 (64: −20%, 256: −7%; BENCHMARKS.md, "Sink").
    pub max_concurrency: usize,
    /// The most row data, in bytes (estimated), one write request carries: the rows a write
    /// call sends to the same replicas go as unlogged batches up to this size, and a larger
    /// row alone. Keep it below the cluster's `batch_size_fail_threshold` (Cassandra's default
    /// 50 KiB; ScyllaDB's 1 MiB, warning from 128 KiB). 0: every row its own request.
    pub batch_max_bytes: usize,
    /// Attempts per statement on timeouts and unavailability, with exponential backoff.
    pub max_attempts: u32,
    /// Client-side timeout of one statement, in milliseconds.
    pub request_timeout_ms: u64,
    /// Shards per day of the by-time tables (security events, record labels). Used when the
    /// keyspace is first migrated and pinned there: later changes do not move stored rows.
    pub time_shards: u32,
    /// User ids of busy subjects that are not a person (the classifier's `unknown` and
    /// `system`): their per-user rows are partitioned by hour instead of by day, so a flood of
    /// login attempts without a user cannot grow one partition for a whole day. Pinned per
    /// subject when its data key is created: a later change applies to subjects first seen
    /// afterwards only, never moving stored rows.
    pub hourly_subjects: Vec<String>,
}

/// A secret as `"<redacted>"` when set, so a serialized configuration never holds it.
fn redacted<S: serde::Serializer>(
    secret: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some("<redacted>"),
        None => serializer.serialize_none(),
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: "auditflow".into(),
            replication: BTreeMap::from([
                ("class".into(), "SimpleStrategy".into()),
                ("replication_factor".into(), "1".into()),
            ]),
            username: None,
            password: None,
            consistency: "local_quorum".into(),
            master_key_file: None,
            master_key_env: "AUDITFLOW_MASTER_KEY".into(),
            insecure_dev_key: true,
            key_cache_size: 10_000,
            key_cache_ttl_secs: 300,
            max_concurrency: 128,
            batch_max_bytes: 16 * 1024,
            max_attempts: 5,
            request_timeout_ms: 10_000,
            time_shards: 16,
            hourly_subjects: vec!["unknown".into(), "system".into()],
        }
    }
}

/// `[integrity]`: the tamper-evident log (docs/integrity.md). Every record the sink stores is a
/// leaf of its partition's log; a signed checkpoint is cut after every `checkpoint_every`
/// leaves, and after a leaf whose Kafka timestamp is `checkpoint_interval_secs` or more past the
/// log's previous checkpoint (or first leaf): both are functions of the input, so every replay
/// cuts the same checkpoints.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntegritySettings {
    /// Whether the sink keeps the log at all. Off only to measure what it costs: records
    /// stored while it is off are in no log, and nothing shows if they are changed.
    pub enabled: bool,
    /// Leaves between two checkpoints of a log, at most.
    pub checkpoint_every: u64,
    /// Kafka-time seconds after which the next leaf closes a checkpoint.
    pub checkpoint_interval_secs: u64,
    /// A file holding the Ed25519 signing key's 32-byte seed as 64 hex digits.
    pub signing_key_file: Option<std::path::PathBuf>,
    /// The environment variable holding the seed (64 hex digits); wins over the file.
    pub signing_key_env: String,
}

impl Default for IntegritySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            checkpoint_every: 1000,
            checkpoint_interval_secs: 60,
            signing_key_file: None,
            signing_key_env: "AUDITFLOW_SIGNING_KEY".into(),
        }
    }
}

/// `[ocsf]`: OCSF output (docs/ocsf.md), by the exporter service, `auditflow ocsf` and
/// `query --format ocsf` alike.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OcsfSettings {
    /// Whether `auditflow run all` starts the OCSF exporter too (`run ocsf-exporter` always
    /// does).
    pub enabled: bool,
    /// The audited application, as authentications name their `service` and data accesses
    /// their `src_endpoint` (OCSF requires one, and a record names none).
    pub service_name: String,
    /// Replace user ids and ip addresses by keyed pseudonyms in OCSF output.
    pub pseudonymize: bool,
    /// The environment variable holding the pseudonyms' key (64 hex digits).
    pub pseudonym_key_env: String,
    /// A file holding the pseudonyms' key, when the variable is unset.
    pub pseudonym_key_file: Option<std::path::PathBuf>,
}

impl Default for OcsfSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            service_name: "application".into(),
            pseudonymize: false,
            pseudonym_key_env: "AUDITFLOW_OCSF_PSEUDONYM_KEY".into(),
            pseudonym_key_file: None,
        }
    }
}

/// `[operator]`: the operator log (docs/operator-log.md).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorSettings {
    /// Who runs the command-line tool, when `--operator` does not say; the OS user otherwise.
    pub name: Option<String>,
}

/// `[security]`: the security monitor's detection rules (docs/security-rules.md). Durations are in
/// seconds; every default is the documented one. Read by `auditflow_core::detect`, which documents
/// the semantics (windows, grace, episodes, bounds) in its module doc.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// Length of the sliding window: an event at t sees events with time in (t - window, t].
    pub window_secs: u64,
    /// How far behind the newest event of its key an event may arrive and still be judged.
    /// Must be shorter than the window.
    pub grace_secs: u64,
    /// brute_force: more than this many failures from one ip in the window scores 50 (medium).
    pub brute_force_medium_above: u32,
    /// ... more than this many scores 80 (high).
    pub brute_force_high_above: u32,
    /// ... more than this many scores 95 (critical).
    pub brute_force_critical_above: u32,
    /// credential_stuffing: this many distinct users failing from one ip in the window score 85.
    pub credential_stuffing_min_users: u32,
    /// impossible_travel: both the distance between two successive successful logins must
    /// exceed this ...
    pub travel_min_distance_km: f64,
    /// ... and the speed needed to cover it must exceed this.
    pub travel_min_speed_kmh: f64,
    /// privilege_escalation: a `new_role` in this list is privileged.
    pub privileged_roles: Vec<String>,
    /// unusual_access: a user's baseline counts as established after this many actions.
    pub baseline_min_actions: u32,
    /// unusual_access: more user actions than this in one window is unusual volume.
    pub unusual_volume_above: u32,
    /// unusual_access: how many ip addresses and user agents the baseline remembers per user.
    pub baseline_max_known: usize,
    /// unusual_access: a user's baseline is forgotten after this long without actions.
    pub baseline_idle_secs: u64,
    /// How long a `block_ip` action and its blocklist entry last.
    pub block_duration_secs: u64,
    /// After a restart or rebalance the security monitor replays this much of each assigned
    /// partition's history (by record time) before judging new records. At least window +
    /// grace (the windows); the default also covers the block duration, so blocks raised
    /// before the restart are re-armed and still get their blocklist tombstone. Lower it for
    /// very high volumes if a shorter rebalance pause matters more.
    pub rebuild_lookback_secs: u64,
    /// Window state of an ip or user is dropped after this long without events (event time; at
    /// least window + grace). Generous, so partitions consumed at different speeds keep theirs.
    pub idle_key_secs: u64,
    /// Memory bound: keys (ips or users) tracked per rule family; the stalest is evicted first.
    pub max_keys: usize,
    /// Memory bound: events remembered per key; counts saturate at this value.
    pub max_events_per_key: usize,
    /// At most this many event ids are listed as an alert's evidence (the newest).
    pub max_evidence: usize,
    /// Detection's clock never runs ahead of the wall clock by more than this
    /// (docs/security-rules.md): an event dated further ahead of when it was received is still
    /// audited and judged, but at the partition's current time, and moves no clock, lifts no block,
    /// evicts nothing.
    pub max_clock_skew_secs: u64,
    /// Memory bound: user ids and user agents the engine keeps (keys, distinct users, known
    /// agents) longer than this many bytes are kept as their first bytes and a hash of the
    /// whole, so distinct values stay distinct. At least 66.
    pub max_key_bytes: usize,
    /// Memory bound: bytes one detector (one owned input partition) may hold in windows,
    /// baselines and blocks; beyond it the stalest keys are evicted first (counted as evicted).
    pub max_state_bytes: usize,
    /// File holding the secret alert and action ids are derived under (64 hex digits); every
    /// monitor instance must share it (docs/security-rules.md).
    pub id_secret_file: Option<std::path::PathBuf>,
    /// Environment variable holding that secret as 64 hex digits; wins over the file. With
    /// neither, a public development secret is used, and only when every `[kafka]`
    /// bootstrap server is a loopback address (`auditflow detect`, offline, always may).
    pub id_secret_env: String,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            window_secs: 600,
            grace_secs: 120,
            brute_force_medium_above: 5,
            brute_force_high_above: 10,
            brute_force_critical_above: 20,
            credential_stuffing_min_users: 10,
            travel_min_distance_km: 50.0,
            travel_min_speed_kmh: 1000.0,
            privileged_roles: ["admin", "owner", "superuser", "root"]
                .map(String::from)
                .to_vec(),
            baseline_min_actions: 20,
            unusual_volume_above: 200,
            baseline_max_known: 16,
            baseline_idle_secs: 7 * 24 * 3600,
            block_duration_secs: 3600,
            rebuild_lookback_secs: 3600 + 120,
            idle_key_secs: 3600,
            max_keys: 100_000,
            max_events_per_key: 1_000,
            max_evidence: 100,
            max_clock_skew_secs: 300,
            max_key_bytes: 256,
            max_state_bytes: 32 * 1024 * 1024,
            id_secret_file: None,
            id_secret_env: "AUDITFLOW_ID_SECRET".into(),
        }
    }
}

#[cfg(test)]
mod loopback_tests {
    use super::is_loopback_address;

    #[test]
    fn only_this_machine_is_loopback() {
        for local in [
            "127.0.0.1:9042",
            "127.0.0.1",
            "127.1.2.3:9092",
            "localhost:9042",
            "LOCALHOST",
            "[::1]:9042",
            "::1",
            " 127.0.0.1:9042 ",
        ] {
            assert!(is_loopback_address(local), "{local}");
        }
        for remote in [
            "10.0.0.5:9042",
            "scylla:9042",
            "scylla-0.scylla.svc.cluster.local:9042",
            "[2001:db8::1]:9042",
            "2001:db8::1",
            "localhost.example.com:9042",
            "127.0.0.1.nip.io:9042",
            "0.0.0.0:9042",
            "",
        ] {
            assert!(!is_loopback_address(remote), "{remote}");
        }
    }
}
