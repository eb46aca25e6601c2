//! auditflow's one configuration: a TOML document in which every key has a default.
//!
//! A file may hold a single table (just `[sampling]`, say); anything absent takes its default,
//! and the defaults work against the local stack. Environment variables override the file:
//! `AUDITFLOW_<SECTION>__<KEY>` (double underscore between section and key), e.g.
//! `AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS=broker:9092`. Flags override both (the binary's job).
//!
//! This module only parses; reading the file and the environment is the caller's I/O.
//! Each section is documented here, next to the code that reads it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub limits: Limits,
    /// Type pattern → sampling rate in [0, 1] (SPEC section 5), e.g. `"user.page.view" = 0.1`.
    pub sampling: BTreeMap<String, f64>,
    pub retention: RetentionPeriods,
    pub metrics: MetricsSettings,
    pub store: StoreSettings,
}

/// `[kafka]`: how every service reaches the brokers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    /// Passed to librdkafka as they are (TLS, SASL, tuning), e.g.
    /// `"security.protocol" = "SASL_SSL"`.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self { bootstrap_servers: "127.0.0.1:9092".into(), properties: BTreeMap::new() }
    }
}

/// `[topics]`: every topic name auditflow reads or writes (SPEC section 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topics {
    pub user_action: String,
    pub data_access: String,
    pub security_event: String,
    pub dead_letter: String,
    pub alerts: String,
    pub actions: String,
    pub blocklist: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            user_action: "audit.user.action".into(),
            data_access: "audit.data.access".into(),
            security_event: "audit.security.event".into(),
            dead_letter: "audit.dlq".into(),
            alerts: "security.alerts".into(),
            actions: "security.actions".into(),
            blocklist: "security.blocklist".into(),
        }
    }
}

/// `[limits]`: input bounds (SPEC section 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Records larger than this are dead-lettered as `too_large`.
    pub max_record_bytes: usize,
    /// Deeper JSON nesting is dead-lettered as `invalid_json`.
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_record_bytes: 1024 * 1024, max_json_depth: 64 }
    }
}

/// `[retention]`: the period of each retention class, in days (SPEC section 4).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPeriods {
    pub security_days: u32,
    pub financial_days: u32,
    pub marketing_days: u32,
    pub general_days: u32,
}

impl Default for RetentionPeriods {
    fn default() -> Self {
        // 7 years and 2 years, counting leap days.
        Self { security_days: 2557, financial_days: 2557, marketing_days: 731, general_days: 731 }
    }
}

/// `[metrics]`: where a service serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9464".into() }
    }
}

/// `[store]`: the CQL cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// CQL replication map, e.g. `{ class = "NetworkTopologyStrategy", dc1 = "3" }`.
    pub replication: BTreeMap<String, String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Consistency of reads and writes: `one`, `local_one`, `quorum`, `local_quorum`, `all`, ….
    pub consistency: String,
    /// File holding the 32-byte master key as 64 hex digits (wraps every per-user data key).
    pub master_key_file: Option<std::path::PathBuf>,
    /// Environment variable holding the master key as 64 hex digits; wins over the file.
    pub master_key_env: String,
    /// With neither a key file nor the variable set, use the built-in, publicly known
    /// development key (local stack and tests only; the store warns). Set `false` in production.
    pub insecure_dev_key: bool,
    /// How many unwrapped per-user data keys are cached (LRU).
    pub key_cache_size: usize,
    /// A cached key is re-read after this many seconds, so `gdpr delete` takes effect everywhere.
    pub key_cache_ttl_secs: u64,
    /// Statements in flight at once per store handle.
    pub max_concurrency: usize,
    /// Attempts per statement on timeouts and unavailability, with exponential backoff.
    pub max_attempts: u32,
    /// Client-side timeout of one statement, in milliseconds.
    pub request_timeout_ms: u64,
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
            max_concurrency: 64,
            max_attempts: 5,
            request_timeout_ms: 10_000,
        }
    }
}
