//! Running migrations: bootstrap, lock, apply what is missing, align table options with the
//! configuration, and pin the keyspace to one master key.
//!
//! Safe to run any number of times and from several processes: the steps after bootstrap run
//! under a lightweight-transaction lock with a TTL (a crashed holder frees it by itself), every
//! DDL statement is `IF NOT EXISTS`, a column is added only when `system_schema.columns` does
//! not list it yet, and options are only altered when they differ. Bootstrap
//! itself (keyspace, migrations and lock tables) is `IF NOT EXISTS` but unlocked: on a
//! multi-node cluster run `auditflow migrate` once before starting many sinks at the same time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use scylla::value::CqlTimestamp;
use serde::Serialize;
use uuid::Uuid;

use auditflow_core::config::Config;

use crate::error::{Result, StoreError};
use crate::migrations::{LATEST_VERSION, MIGRATIONS};
use crate::schema::{self, AddedColumn, SchemaParams};
use crate::{KeySource, Store};

/// How long a migration may hold the lock before another process may take it over.
const LOCK_TTL_SECS: i32 = 120;
const LOCK_WAIT: Duration = Duration::from_secs(180);

/// What `migrate` did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The keyspace migrated.
    pub keyspace: String,
    /// Versions applied by this run (empty when the schema was already current).
    pub applied: Vec<i32>,
    /// The schema version after this run.
    pub current_version: i32,
    /// Tables whose TTL or compaction window was changed to match `[retention]`.
    pub altered: Vec<String>,
    /// The latest expiry this server stores, `None` when it has no 2038 limit.
    pub expiry_limit: Option<String>,
}

impl Store {
    /// How a service that writes opens the store: connect, warn when personal data would be
    /// sealed with the public development key, migrate (idempotent), and warn when the
    /// cluster can lose an acknowledged write (the `durability` module), logging the outcome.
    /// Shared by the services that write, hence the `Arc`.
    pub async fn open_for_service(service: &str, config: &Config) -> Result<Arc<Self>> {
        let store = Self::connect(&config.store, &config.retention).await?;
        if store.key_source() == KeySource::InsecureDevelopmentKey {
            tracing::warn!(
                service,
                "personal data is sealed with the built-in INSECURE development master key: \
                 set [store] master_key_file or master_key_env for real data"
            );
        }
        let report = store.migrate().await?;
        match store.durability().await {
            Ok(durability) => {
                if let Some(warning) = durability.warning() {
                    tracing::warn!(service, keyspace = %report.keyspace, "{warning}");
                }
            }
            Err(e) => {
                tracing::warn!(service, error = %e, "could not read the keyspace's durability")
            }
        }
        tracing::info!(
            service,
            keyspace = %report.keyspace,
            version = report.current_version,
            applied = ?report.applied,
            "schema ready"
        );
        Ok(Arc::new(store))
    }

    /// Creates or upgrades the schema; idempotent. Also run by the sink on start.
    pub async fn migrate(&self) -> Result<MigrationReport> {
        let ks = self.keyspace.clone();
        let replication =
            schema::replication_literal(&self.replication).map_err(StoreError::Config)?;
        for ddl in schema::bootstrap_statements(&ks, &replication) {
            self.run_ddl(&ddl).await?;
        }
        let owner = self.lock().await?;
        let outcome = self.migrate_locked().await;
        self.unlock(owner).await;
        let (applied, altered) = outcome?;
        let expiry_limit = self.expiry_limit().await?;
        // Refuse now, not on the first security record: a class whose rows this server would
        // expire early cannot be stored faithfully.
        let now = Utc::now();
        for class in auditflow_core::RetentionClass::ALL {
            expiry_limit.check(class, self.longest_ttl_secs(class), now)?;
        }
        Ok(MigrationReport {
            keyspace: ks,
            applied,
            current_version: LATEST_VERSION,
            altered,
            expiry_limit: expiry_limit.limit().map(|t| t.to_rfc3339()),
        })
    }

    async fn migrate_locked(&self) -> Result<(Vec<i32>, Vec<String>)> {
        let ks = &self.keyspace;
        let done = self.applied_versions().await?;
        let params = SchemaParams {
            keyspace: ks,
            retention: &self.retention,
        };
        let mut applied = Vec::new();
        for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            tracing::info!(
                version = m.version,
                description = m.description,
                "applying migration"
            );
            for ddl in (m.statements)(&params) {
                self.run_ddl(&ddl).await?;
            }
            for column in m.columns {
                self.add_column(column).await?;
            }
            self.session
                .query_unpaged(
                    format!(
                        "INSERT INTO {ks}.schema_migrations (version, description, applied_at) \
                         VALUES (?, ?, ?)"
                    ),
                    (
                        m.version,
                        m.description,
                        CqlTimestamp(Utc::now().timestamp_millis()),
                    ),
                )
                .await
                .map_err(StoreError::cql("record migration"))?;
            applied.push(m.version);
        }
        let altered = self.align_table_options(&params).await?;
        self.pin_master_key().await?;
        self.pin_time_shards(done.is_empty()).await?;
        Ok((applied, altered))
    }

    async fn applied_versions(&self) -> Result<BTreeSet<i32>> {
        let result = self
            .session
            .query_unpaged(
                format!("SELECT version FROM {}.schema_migrations", self.keyspace),
                (),
            )
            .await
            .map_err(StoreError::cql("read schema_migrations"))?;
        let rows = result
            .into_rows_result()
            .map_err(|e| StoreError::read("schema_migrations", e))?;
        rows.rows::<(i32,)>()
            .map_err(|e| StoreError::read("schema_migrations", e))?
            .map(|r| {
                r.map(|(v,)| v)
                    .map_err(|e| StoreError::read("schema_migrations", e))
            })
            .collect()
    }

    /// `ALTER TABLE … ADD`, unless the column is already there (an interrupted run of this
    /// migration). A failed ALTER is settled by reading the schema again: the server may have
    /// applied it before the reply was lost.
    async fn add_column(&self, column: &AddedColumn) -> Result<()> {
        if self.column_present(column).await? {
            return Ok(());
        }
        match self.run_ddl(&column.ddl(&self.keyspace)).await {
            Ok(()) => Ok(()),
            Err(error) => {
                if self.column_present(column).await? {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Whether the table has the column, with the type the migration gives it.
    async fn column_present(&self, column: &AddedColumn) -> Result<bool> {
        let found = self
            .first_row_unprepared::<(String,)>(
                "read table columns",
                "SELECT type FROM system_schema.columns \
                 WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
                (&self.keyspace, column.table, column.name),
            )
            .await?;
        match found {
            None => Ok(false),
            Some((found,)) if found == column.cql_type => Ok(true),
            Some((found,)) => Err(StoreError::SchemaConflict {
                keyspace: self.keyspace.clone(),
                detail: format!(
                    "column {}.{} is {found}, this build needs {}",
                    column.table, column.name, column.cql_type
                ),
            }),
        }
    }

    /// `[retention]` may change after the tables were created: bring each time-series table's
    /// TTL and TWCS window in line, touching only those that differ (each ALTER is a schema
    /// change the whole cluster must agree on).
    async fn align_table_options(&self, params: &SchemaParams<'_>) -> Result<Vec<String>> {
        let mut altered = Vec::new();
        for (table, class) in params.time_series_tables() {
            let days = params.ttl_days(class);
            let current = self
                .first_row_unprepared::<(Option<i32>, Option<BTreeMap<String, String>>)>(
                    "read table options",
                    "SELECT default_time_to_live, compaction FROM system_schema.tables \
                     WHERE keyspace_name = ? AND table_name = ?",
                    (&self.keyspace, table),
                )
                .await?;
            let (ttl, compaction) = current.unwrap_or_default();
            let window = compaction
                .as_ref()
                .and_then(|c| c.get("compaction_window_size"))
                .and_then(|w| w.parse::<u32>().ok());
            if i64::from(ttl.unwrap_or(0)) == schema::ttl_seconds(days)
                && window == Some(schema::window_days(days))
            {
                continue;
            }
            self.run_ddl(&format!(
                "ALTER TABLE {}.{table} WITH {}",
                self.keyspace,
                schema::time_series_options(days)
            ))
            .await?;
            altered.push(table.to_owned());
        }
        Ok(altered)
    }

    /// The first migration records a MAC of the master key; later processes must match it.
    async fn pin_master_key(&self) -> Result<()> {
        self.session
            .query_unpaged(
                format!(
                    "INSERT INTO {}.store_meta (name, value) VALUES ('master_key_check', ?) IF NOT EXISTS",
                    self.keyspace
                ),
                (self.keyring.check_value(),),
            )
            .await
            .map_err(StoreError::cql("pin master key"))?;
        check_master_key(self).await
    }

    /// The first migration pins `[store] time_shards`; a different value later is ignored
    /// (with a warning), since rows already written are placed by the pinned count. A keyspace
    /// migrated before counts were pinned keeps the count its rows were written with.
    async fn pin_time_shards(&self, fresh: bool) -> Result<()> {
        let configured = i32::try_from(self.time_shards).unwrap_or(schema::UNPINNED_TIME_SHARDS);
        let wanted = if fresh {
            configured
        } else {
            schema::UNPINNED_TIME_SHARDS
        };
        self.session
            .query_unpaged(
                format!(
                    "INSERT INTO {}.store_meta (name, value) VALUES ('time_shards', ?) IF NOT EXISTS",
                    self.keyspace
                ),
                (wanted.to_be_bytes().to_vec(),),
            )
            .await
            .map_err(StoreError::cql("pin time shards"))?;
        let pinned = pinned_time_shards(self).await?;
        if pinned != configured {
            tracing::warn!(
                pinned,
                configured,
                "[store] time_shards differs from the count this keyspace was created with; keeping the keyspace's"
            );
        }
        Ok(())
    }

    async fn lock(&self) -> Result<Uuid> {
        let owner = Uuid::new_v4();
        let started = std::time::Instant::now();
        loop {
            let result = self
                .session
                .query_unpaged(
                    format!(
                        "INSERT INTO {}.schema_lock (name, owner) VALUES ('migrate', ?) \
                         IF NOT EXISTS USING TTL {LOCK_TTL_SECS}",
                        self.keyspace
                    ),
                    (owner,),
                )
                .await
                .map_err(StoreError::cql("take migration lock"))?;
            if lwt_applied(result)? {
                return Ok(owner);
            }
            if started.elapsed() > LOCK_WAIT {
                return Err(StoreError::MigrationLocked);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn unlock(&self, owner: Uuid) {
        let released = self
            .session
            .query_unpaged(
                format!(
                    "DELETE FROM {}.schema_lock WHERE name = 'migrate' IF owner = ?",
                    self.keyspace
                ),
                (owner,),
            )
            .await;
        if let Err(e) = released {
            // The lock's TTL frees it anyway.
            tracing::warn!(error = %e, "could not release the migration lock");
        }
    }
}

/// The `[applied]` column of a lightweight transaction's result.
pub(crate) fn lwt_applied(result: scylla::response::query_result::QueryResult) -> Result<bool> {
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::read("LWT result", e))?;
    let row = rows
        .first_row::<scylla::value::Row>()
        .map_err(|e| StoreError::read("LWT result", e))?;
    Ok(matches!(
        row.columns.first(),
        Some(Some(scylla::value::CqlValue::Boolean(true)))
    ))
}

/// Fails with `SchemaOutdated` unless every migration of this build was applied.
pub(crate) async fn check_current(store: &Store) -> Result<()> {
    let outdated = |found: String| StoreError::SchemaOutdated {
        keyspace: store.keyspace.clone(),
        found,
        needed: LATEST_VERSION,
    };
    match store.applied_versions().await {
        Ok(versions) => {
            if MIGRATIONS.iter().all(|m| versions.contains(&m.version)) {
                Ok(())
            } else {
                let latest = versions
                    .last()
                    .map_or("empty".into(), |v| format!("version {v}"));
                Err(outdated(latest))
            }
        }
        // The keyspace or the table does not exist yet.
        Err(StoreError::Cql { error, .. }) if !crate::error::is_transient(&error) => {
            Err(outdated("absent".into()))
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn check_master_key(store: &Store) -> Result<()> {
    let check = store
        .first_row_unprepared::<(Option<Vec<u8>>,)>(
            "read master key check",
            format!(
                "SELECT value FROM {}.store_meta WHERE name = 'master_key_check'",
                store.keyspace
            ),
            (),
        )
        .await?;
    match check {
        Some((Some(stored),)) if stored != store.keyring.check_value() => {
            Err(StoreError::WrongMasterKey)
        }
        Some(_) => Ok(()),
        None => Err(StoreError::SchemaOutdated {
            keyspace: store.keyspace.clone(),
            found: "without a pinned master key".into(),
            needed: LATEST_VERSION,
        }),
    }
}

/// The keyspace's shard count; keyspaces migrated before it was pinned used 8.
pub(crate) async fn pinned_time_shards(store: &Store) -> Result<i32> {
    let value = store
        .first_row_unprepared::<(Option<Vec<u8>>,)>(
            "read time shards",
            format!(
                "SELECT value FROM {}.store_meta WHERE name = 'time_shards'",
                store.keyspace
            ),
            (),
        )
        .await?
        .and_then(|(v,)| v);
    match value {
        None => Ok(schema::UNPINNED_TIME_SHARDS),
        Some(bytes) => <[u8; 4]>::try_from(bytes.as_slice())
            .map(i32::from_be_bytes)
            .ok()
            .filter(|n| (1..=schema::MAX_TIME_SHARDS as i32).contains(n))
            .ok_or_else(|| StoreError::read("store_meta", "time_shards is not a shard count")),
    }
}
