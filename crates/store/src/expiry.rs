//! How far in the future the server can expire a row: the 2038 problem.
//!
//! Cassandra before 5.0 stores expiry times as signed 32-bit seconds: nothing can expire after
//! 2038-01-19T03:14:06Z, and `-Dcassandra.expiration_date_overflow_policy` decides what happens
//! to a longer TTL: `REJECT` (default, the write fails), `CAP` / `CAP_NOWARN` (the row silently
//! expires in 2038). Cassandra 5.0 lifts the limit to 2106 (CASSANDRA-14227) only with
//! `storage_compatibility_mode: NONE`; its default, `CASSANDRA_4`, keeps the 2038 limit so a
//! rollback stays possible. ScyllaDB keeps 64-bit expiry times in memory but its sstable formats
//! up to `me` cap local deletion times at 2038 on flush (scylladb/scylladb#15116), which no
//! probe of a fresh write can see, so on ScyllaDB the limit is assumed.
//!
//! A 7-year retention period crosses 2038 for records written from 2031-01-19 on. Rather than
//! let a server cap a security record's life without a word, the store probes the server once
//! and refuses (`ExpiryBeyondServerLimit`) any write whose expiry it could not keep.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::Store;
use crate::error::{Result, StoreError};
use auditflow_core::RetentionClass;

/// 2^31 − 1 seconds after the epoch, minus the second Cassandra reserves.
pub(crate) fn y2038() -> DateTime<Utc> {
    Utc.timestamp_opt(i64::from(i32::MAX) - 1, 0)
        .single()
        .expect("valid timestamp")
}

/// The server's maximum TTL, 20 years, whatever the year.
const MAX_TTL_SECS: i64 = 630_720_000;

/// The latest expiry the server keeps faithfully; `None`: no limit that matters (2106).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpiryLimit(Option<DateTime<Utc>>);

impl ExpiryLimit {
    /// The latest expiry the server stores faithfully, or `None` when it has no limit that a
    /// retention period could reach.
    pub fn limit(&self) -> Option<DateTime<Utc>> {
        self.0
    }

    /// Refuses a record of `class` (kept `ttl_secs`) written at `now` if it would outlive the
    /// server's limit.
    pub(crate) fn check(
        &self,
        class: RetentionClass,
        ttl_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let needed = now + chrono::Duration::seconds(ttl_secs);
        match self.0 {
            Some(limit) if needed > limit => Err(StoreError::ExpiryBeyondServerLimit {
                class: class.as_str(),
                needed: needed.to_rfc3339(),
                limit: limit.to_rfc3339(),
            }),
            _ => Ok(()),
        }
    }
}

/// Writes a probe cell whose expiry lies just past 2038 and reads its TTL back: rejected or
/// shortened means the 2038 limit applies.
pub(crate) async fn probe(store: &Store) -> Result<ExpiryLimit> {
    let limited = ExpiryLimit(Some(y2038()));
    let is_scylla = store
        .session
        .get_cluster_state()
        .get_nodes_info()
        .iter()
        .any(|n| n.sharder().is_some());
    if is_scylla {
        return Ok(limited);
    }
    let now = Utc::now();
    let ttl = (y2038() - now).num_seconds() + 2 * 86_400;
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        // Before 2018 nothing we write can reach 2038; after 2038 a server with the limit
        // could not store anything and would have failed long before.
        return Ok(ExpiryLimit(None));
    }
    let ks = &store.keyspace;
    let insert = store
        .session
        .query_unpaged(
            format!("INSERT INTO {ks}.store_meta (name, value) VALUES ('expiry_probe', 0x01) USING TTL {ttl}"),
            (),
        )
        .await;
    if let Err(e) = insert {
        return if e.to_string().contains("maximum supported expiration date") {
            Ok(limited)
        } else {
            Err(StoreError::Cql {
                context: "probe expiry limit",
                error: Box::new(e),
            })
        };
    }
    let result = store
        .session
        .query_unpaged(
            format!("SELECT TTL(value) FROM {ks}.store_meta WHERE name = 'expiry_probe'"),
            (),
        )
        .await
        .map_err(StoreError::cql("probe expiry limit"))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::read("expiry probe", e))?;
    let read_back = rows
        .maybe_first_row::<(Option<i32>,)>()
        .map_err(|e| StoreError::read("expiry probe", e))?
        .and_then(|(t,)| t)
        .map_or(0, i64::from);
    // A server with the CAP policy accepts the write but keeps it only until 2038.
    Ok(if read_back + 3600 < ttl {
        limited
    } else {
        ExpiryLimit(None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y2038_is_cassandras_limit() {
        assert_eq!(y2038().to_rfc3339(), "2038-01-19T03:14:06+00:00");
    }

    #[test]
    fn a_limited_server_refuses_only_what_outlives_it() {
        let now = Utc.with_ymd_and_hms(2031, 6, 1, 0, 0, 0).unwrap();
        let seven_years = 2557 * 86_400;
        let two_years = 731 * 86_400;
        let limited = ExpiryLimit(Some(y2038()));
        assert!(
            limited
                .check(RetentionClass::Security, seven_years, now)
                .is_err()
        );
        assert!(
            limited
                .check(RetentionClass::General, two_years, now)
                .is_ok()
        );
        assert!(
            ExpiryLimit(None)
                .check(RetentionClass::Security, seven_years, now)
                .is_ok()
        );
        let today = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
        assert!(
            limited
                .check(RetentionClass::Security, seven_years, today)
                .is_ok()
        );
    }
}
