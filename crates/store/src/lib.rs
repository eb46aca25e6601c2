//! auditflow's CQL store, for ScyllaDB and Apache Cassandra alike.
//!
//! Schema and versioned migrations ([`Store::migrate`]), encrypted and time-bucketed audit rows
//! ([`Store::write_records`]), and the reads shared by the sink, `auditflow query`, and the
//! `gdpr` and `report` commands ([`Store::query_user`], [`Store::get_by_id`],
//! [`Store::security_events`], [`Store::records_by_time`]). The causality index, written by the
//! causality indexer, and the trail walk over it that `auditflow trail` prints: [`causality`].
//! Table layout: see the `schema` module; keys and ciphers: the `crypto` module.
//!
//! Where things are: `schema` (the audit tables' names and DDL), `migrations` (the list of
//! schema versions, each naming its table group's DDL) and `migrate` (running it); `stored`
//! (what callers hand in and get back), `write` and `read` (the audit rows), `bucket` and
//! `index` (what keeps partitions bounded and reads from scanning); `crypto`, `keys`, `cache`
//! and `erasure` (per-user keys, sealing, and `gdpr delete`); `statements` and `exec`
//! (prepared statements, retries, concurrency); `batch` (a write's rows grouped by replica
//! into unlogged batches); `expiry` and `durability` (what the server can
//! store and keep); [`causality`] (the causality index, its own schema, writes and reads, and
//! the trail walk).
//!
//! Invariants:
//! - personal data is stored only sealed with its subject's data key; clear columns are an
//!   allow-list of non-personal labels ([`Labels`]);
//! - writes are idempotent: every key comes from the record's deterministic id and event time,
//!   so re-delivery overwrites, never duplicates;
//! - no DELETE is ever issued against a time-series table; the only deletes are of a user's
//!   key rows ([`Store::destroy_user_key`]) and of the migration lock;
//! - erasure is final: a record of an erased subject dated before the erasure is never sealed
//!   under a readable key again, however late it arrives (the `erasure` module);
//! - partitions are bounded: per user and day (per hour for busy non-person subjects such as
//!   `unknown`, see the `bucket` module), per day and shard, per record id, per user (days
//!   with data, bounded by the retention period).
//!
//! What this crate is not: it does not consume Kafka, decides nothing about classification or
//! retention classes (the record says), and uses only CQL both ScyllaDB and Cassandra accept
//! (no tablets, `USING TIMEOUT`, `BYPASS CACHE`, CDC, secondary indexes or views).

// A library never prints: services report through `tracing` (structured, and kept free of
// personal data), and stdout/stderr belong to the binary that owns the terminal.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod batch;
mod bucket;
mod cache;
pub mod causality;
mod crypto;
mod durability;
mod erasure;
mod error;
mod exec;
mod expiry;
mod index;
pub mod integrity;
mod keys;
mod migrate;
mod migrations;
mod read;
mod schema;
mod statements;
mod stored;
mod write;

use std::sync::Arc;
use std::time::Duration;

use auditflow_core::config::{RetentionPeriods, StoreSettings};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::{Consistency, SerialConsistency};
use tokio::sync::{OnceCell, Semaphore};

pub use auditflow_core::RetentionClass;
pub use batch::WriteStats;
pub use crypto::KeySource;
pub use durability::Durability;
pub use erasure::{RESERVED_SUBJECTS, is_reserved_subject, subject_pseudonym};
pub use error::{Result, StoreError};
pub use expiry::ExpiryLimit;
pub use migrate::MigrationReport;
pub use read::MAX_PAGE;
pub use schema::class_table;
pub use stored::{Labels, Page, PageToken, RecordKind, StorableRecord, StoredRecord, TimeRange};

use crate::cache::KeyCache;
use crate::crypto::{DataKey, Keyring, MasterKey};
use crate::keys::UserKey;
use crate::statements::Statements;

/// A connection to the audit keyspace. Cheap to share (`Arc<Store>`); every method takes
/// `&self` and may run concurrently.
pub struct Store {
    session: Session,
    keyspace: String,
    replication: std::collections::BTreeMap<String, String>,
    /// `[store] consistency` of reads and writes.
    consistency: Consistency,
    retention: RetentionPeriods,
    keyring: Keyring,
    key_source: KeySource,
    /// Prepared statements and server capabilities, once the schema is known to be current.
    ready: OnceCell<Ready>,
    user_keys: KeyCache<[u8; 32], UserKey>,
    data_keys: KeyCache<uuid::Uuid, Arc<DataKey>>,
    /// When each subject was last erased (`None`: never), as last read or polled.
    erased: KeyCache<[u8; 32], Option<chrono::DateTime<chrono::Utc>>>,
    /// The erasures this process has applied to its caches (see the `erasure` module).
    erasure_watch: erasure::ErasureWatch,
    /// `[store] key_cache_ttl_secs`: the oldest a cached key or erasure may be.
    cache_age: chrono::Duration,
    /// The `user_days` rows written recently, not rewritten until their entry is stale.
    written_index: index::WrittenIndex,
    /// `[store] max_concurrency`: how many statements one call keeps queued for `in_flight`.
    max_concurrency: usize,
    /// `[store] batch_max_bytes`: the most row data one write request carries (see `batch`).
    batch_max_bytes: usize,
    /// Holds `max_concurrency` permits; one per statement on the wire (see `exec`).
    in_flight: Semaphore,
    max_attempts: u32,
    /// `[store] time_shards`: pinned by the first migration only.
    time_shards: u32,
    /// `[store] hourly_subjects`: pinned per subject when its key is created.
    hourly_subjects: Vec<String>,
}

struct Ready {
    statements: Statements,
    integrity: integrity::statements::IntegrityStatements,
    expiry_limit: ExpiryLimit,
    /// Shards per day of the by-time tables, as pinned in this keyspace.
    shards: i32,
}

impl Store {
    /// Connects to the cluster and loads the master key. Touches no table: a fresh cluster can
    /// be connected to and then [`migrate`](Self::migrate)d.
    pub async fn connect(settings: &StoreSettings, retention: &RetentionPeriods) -> Result<Self> {
        schema::validate_keyspace(&settings.keyspace).map_err(StoreError::Config)?;
        let consistency = parse_consistency(&settings.consistency)?;
        if !(1..=schema::MAX_TIME_SHARDS).contains(&settings.time_shards) {
            return Err(StoreError::Config(format!(
                "[store] time_shards must be between 1 and {}",
                schema::MAX_TIME_SHARDS
            )));
        }
        let (master, key_source) = MasterKey::load(settings)?;
        if key_source == KeySource::InsecureDevelopmentKey {
            // Info, not a warning: every CLI call on the local stack would print it. Services
            // warn at start (see `key_source`).
            tracing::info!(
                "using the built-in INSECURE development master key: fine for the local stack, \
                 never for real data (set [store] master_key_file or ${})",
                settings.master_key_env
            );
        }
        let profile = ExecutionProfile::builder()
            .consistency(consistency)
            .serial_consistency(Some(SerialConsistency::LocalSerial))
            .request_timeout(Some(Duration::from_millis(
                settings.request_timeout_ms.max(1),
            )))
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&settings.nodes)
            .default_execution_profile_handle(profile.into_handle())
            .connection_timeout(Duration::from_secs(5));
        if let Some(user) = &settings.username {
            builder = builder.user(user, settings.password.as_deref().unwrap_or_default());
        }
        let session = builder.build().await?;
        let cache_age = Duration::from_secs(settings.key_cache_ttl_secs);
        Ok(Self {
            session,
            keyspace: settings.keyspace.clone(),
            replication: settings.replication.clone(),
            consistency,
            retention: retention.clone(),
            keyring: Keyring::new(&master),
            key_source,
            ready: OnceCell::new(),
            user_keys: KeyCache::new(settings.key_cache_size, cache_age),
            data_keys: KeyCache::new(settings.key_cache_size, cache_age),
            erased: KeyCache::new(settings.key_cache_size, cache_age),
            erasure_watch: erasure::ErasureWatch::new(),
            cache_age: chrono::Duration::from_std(cache_age).unwrap_or(chrono::Duration::MAX),
            written_index: index::written_index(),
            max_concurrency: settings.max_concurrency.max(1),
            batch_max_bytes: settings.batch_max_bytes,
            in_flight: Semaphore::new(settings.max_concurrency.clamp(1, Semaphore::MAX_PERMITS)),
            max_attempts: settings.max_attempts.max(1),
            time_shards: settings.time_shards,
            hourly_subjects: settings.hourly_subjects.clone(),
        })
    }

    /// Where the master key came from.
    pub fn key_source(&self) -> KeySource {
        self.key_source
    }

    /// The keyspace this store reads and writes (`[store] keyspace`).
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// The latest expiry the server can store, as probed after the schema check.
    pub async fn expiry_limit(&self) -> Result<ExpiryLimit> {
        Ok(self.ready().await?.expiry_limit)
    }

    /// Prepares statements and probes the server, once; fails with `SchemaOutdated` until
    /// `migrate` has run.
    async fn ready(&self) -> Result<&Ready> {
        self.ready
            .get_or_try_init(|| async {
                migrate::check_current(self).await?;
                migrate::check_master_key(self).await?;
                let expiry_limit = expiry::probe(self).await?;
                let shards = migrate::pinned_time_shards(self).await?;
                let statements = Statements::prepare(&self.session, &self.keyspace).await?;
                let integrity = integrity::statements::IntegrityStatements::prepare(
                    &self.session,
                    &self.keyspace,
                )
                .await?;
                Ok(Ready {
                    statements,
                    integrity,
                    expiry_limit,
                    shards,
                })
            })
            .await
    }
}

fn parse_consistency(name: &str) -> Result<Consistency> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "any" => Consistency::Any,
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        other => {
            return Err(StoreError::Config(format!(
                "unknown consistency level `{other}`"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_names() {
        assert_eq!(
            parse_consistency("LOCAL_QUORUM").unwrap(),
            Consistency::LocalQuorum
        );
        assert_eq!(parse_consistency("one").unwrap(), Consistency::One);
        assert!(parse_consistency("serial").is_err());
    }
}
