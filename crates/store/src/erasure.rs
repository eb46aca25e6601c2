//! Erasure is final (docs/operations.md): `gdpr delete` destroys a subject's data key, and no
//! record of theirs dated before the erasure ever becomes readable personal data again — not one
//! that a lagging sink, a replay after a crash or rebalance, or a re-driven dead letter stores
//! later.
//!
//! # What is remembered
//! `erased_subjects` holds, per keyed pseudonym (the HMAC of the user id that `user_keys` is
//! keyed by: no personal data), the time `E` of the subject's latest erasure. `E` and every
//! key's `created_at` come from the cluster's clock (`toTimestamp(now())` on the coordinator),
//! which Cassandra's and ScyllaDB's last-write-wins resolution already needs synchronised, so
//! the comparisons below never mix a sink's clock with the operator's.
//!
//! # How a record is sealed once its subject was erased
//! - dated before `E`: with no ciphertext at all, under a pseudonym derived from its event id
//!   (a *shredded* record: storing it again gives the same rows). They read like an erased
//!   record's: the clear labels still count in reports, there is nothing to decrypt,
//!   `records_by_id` points at a key that does not exist, and no `user_days` row leads to it.
//! - dated at or after `E`: under the subject's current key, created after the erasure if need
//!   be — a returning user id starts a new trail, unlinked from the erased one (its key id is
//!   random, so nothing ties the two pseudonyms together).
//!
//! # Ordering, and the race with running sinks
//! `destroy_user_key` reads the subject's key, writes the marker, then destroys that key and
//! every key created before the marker (a conditional `DELETE … IF key_id = ?`, so a key a sink
//! claimed meanwhile is never orphaned), looping until the subject's `user_keys` row is gone or
//! newer than the erasure. A sink:
//! - reads `user_keys` *before* it re-reads the marker and creates a key, and reads the marker
//!   once more after its claim won: an erasure that landed between that read and the claim
//!   spares the key (it postdates the marker), so the sink must learn of it before it seals
//!   anything. A key it creates is therefore only used for records dated from `E` on;
//! - treats a key created before the marker as being destroyed: it finishes that erasure itself
//!   (idempotent), so an interrupted `gdpr delete` cannot leave a usable key behind;
//! - after every write, polls `erasures_by_day` (the erasures of the last minutes) and drops
//!   the keys it cached for subjects erased since. A batch written with a key that was destroyed
//!   while it was in flight is sealed under that key: its records dated before `E` are erased
//!   with it, as they should be, and those dated from `E` on are written again under the
//!   subject's next key (`Store::write_records`). So a sink never keeps writing with a destroyed
//!   key, whatever `[store] key_cache_ttl_secs` says.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::TryStreamExt;

use crate::Store;
use crate::crypto::{Keyring, MasterKey, Subject};
use crate::error::{Result, StoreError};
use auditflow_core::config::StoreSettings;

/// Erasures a poll looks back on before the last one, for the clocks of coordinators and a
/// poll that overlapped an erasure.
const POLL_OVERLAP: Duration = Duration::minutes(5);

/// The subjects `gdpr delete` refuses (docs/operations.md): the classifier files every login
/// attempt without a user under `unknown` and every system event under `system`; their keys seal
/// years of security records of many people.
pub const RESERVED_SUBJECTS: [&str; 2] = ["unknown", "system"];

/// Whether `user_id` names a subject that is not a person and may not be erased: one of
/// [`RESERVED_SUBJECTS`] or of `[store] hourly_subjects`.
pub fn is_reserved_subject(hourly_subjects: &[String], user_id: &str) -> bool {
    RESERVED_SUBJECTS.contains(&user_id) || hourly_subjects.iter().any(|s| s == user_id)
}

/// What the write path knows of recent erasures.
#[derive(Debug)]
pub(crate) struct ErasureWatch {
    state: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    /// When the last poll started (this process's clock); `None` before the first.
    polled_at: Option<DateTime<Utc>>,
    /// Erasures already applied to the caches, by (user_ref, E in ms): applied once each.
    applied: HashSet<([u8; 32], i64)>,
}

impl ErasureWatch {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(WatchState {
                polled_at: None,
                applied: HashSet::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The days of `erasures_by_day` that may hold an erasure later than `since`, up to `until`.
pub(crate) fn days_between(since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<NaiveDate> {
    let (mut day, last) = (since.date_naive(), until.date_naive());
    let mut days = Vec::new();
    while day <= last {
        days.push(day);
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    days
}

/// A user's keyed pseudonym, as 64 hex digits: the name under which the store files their key
/// and their erasure, stable across an erasure, and telling nobody without the master key who it
/// is. The operator log names users by it (docs/operator-log.md). Needs the master key only,
/// not the cluster.
pub fn subject_pseudonym(settings: &StoreSettings, user_id: &str) -> Result<String> {
    let (master, _) = MasterKey::load(settings)?;
    let keyring = Keyring::new(&master);
    Ok(auditflow_core::hex::encode(
        &keyring.user_ref(Subject::User(user_id)),
    ))
}

impl Store {
    /// Crypto-shreds a user: afterwards none of their stored personal data can be decrypted,
    /// no query finds them, and records of theirs dated before now that arrive later are
    /// stored unreadable (see the module doc). Returns whether they had a key. Idempotent.
    /// Refuses the reserved subjects ([`RESERVED_SUBJECTS`] and `[store] hourly_subjects`).
    pub async fn destroy_user_key(&self, user_id: &str) -> Result<bool> {
        if self.is_reserved(user_id) {
            return Err(StoreError::ReservedSubject);
        }
        let user_ref = self.keyring.user_ref(Subject::User(user_id));
        // The key the subject has before the marker exists predates the erasure by causality,
        // whatever its `created_at` says: the two times come from different statements and, on
        // a cluster, from different coordinators' clocks, so a key created milliseconds before
        // the erasure could compare as newer and be spared. Only keys that appear after the
        // marker are judged by the clock.
        let before = self
            .current_key_row(&user_ref)
            .await?
            .map(|(key_id, _)| key_id);
        let erased_at = self.mark_erased(&user_ref).await?;
        let mut destroyed = false;
        for _ in 0..self.max_attempts.max(3) {
            match self.current_key_row(&user_ref).await? {
                Some((key_id, created_at))
                    if Some(key_id) == before || created_at.is_none_or(|c| c <= erased_at) =>
                {
                    self.finish_erasure(&user_ref, key_id).await?;
                    destroyed = true;
                }
                // No key, or one a sink created after the erasure, for records dated after it.
                _ => {
                    if let Some(key_id) = before.filter(|_| !destroyed) {
                        // A sink that saw the marker finished this erasure itself (it destroys
                        // the data key before the row that names it). Destroying the data key
                        // again is harmless and makes it certain; the subject did have a key.
                        self.destroy_data_key(key_id).await?;
                    }
                    return Ok(destroyed || before.is_some());
                }
            }
        }
        Err(StoreError::Read {
            context: "destroy data key",
            detail: "the subject's key kept changing; run `gdpr delete` again".into(),
        })
    }

    fn is_reserved(&self, user_id: &str) -> bool {
        is_reserved_subject(&self.hourly_subjects, user_id)
    }

    /// Records the erasure (the cluster's clock) and returns its time as stored.
    async fn mark_erased(&self, user_ref: &[u8; 32]) -> Result<DateTime<Utc>> {
        let st = &self.ready().await?.statements;
        self.execute("record erasure", &st.insert_erased, &(user_ref.to_vec(),))
            .await?;
        let erased_at = self
            .read_erased_at(user_ref)
            .await?
            .ok_or_else(|| StoreError::Read {
                context: "record erasure",
                detail: "the erasure could not be read back".into(),
            })?;
        self.execute(
            "log erasure",
            &st.insert_erasure_log,
            &(erased_at.date_naive(), erased_at, user_ref.to_vec()),
        )
        .await?;
        self.note_erasure(*user_ref, erased_at);
        Ok(erased_at)
    }

    /// When the subject was last erased, from the cache or the database.
    pub(crate) async fn erased_at(&self, subject: Subject<'_>) -> Result<Option<DateTime<Utc>>> {
        let Subject::User(_) = subject else {
            return Ok(None); // records naming no user cannot be erased
        };
        let user_ref = self.keyring.user_ref(subject);
        match self.erased.get(&user_ref) {
            Some(known) => Ok(known),
            None => self.read_erased_at(&user_ref).await,
        }
    }

    /// When the subject was last erased, read from the database (and cached).
    pub(crate) async fn read_erased_at(
        &self,
        user_ref: &[u8; 32],
    ) -> Result<Option<DateTime<Utc>>> {
        let st = &self.ready().await?.statements;
        let row = self
            .first_row::<(Option<DateTime<Utc>>,)>(
                "read erasure",
                &st.select_erased,
                &(user_ref.to_vec(),),
            )
            .await?;
        let erased_at = row.and_then(|(at,)| at);
        self.erased.put(*user_ref, erased_at);
        Ok(erased_at)
    }

    /// Destroys a key created before its subject's erasure: the data key first (from then on
    /// nothing sealed with it opens), then the `user_keys` row, only if it still names this key.
    pub(crate) async fn finish_erasure(
        &self,
        user_ref: &[u8; 32],
        key_id: uuid::Uuid,
    ) -> Result<()> {
        self.destroy_data_key(key_id).await?;
        let st = &self.ready().await?.statements;
        // A lightweight transaction: whether it applied or another process changed the row
        // meanwhile, the caller reads the row again.
        self.session
            .execute_unpaged(&st.delete_user_key, (user_ref.to_vec(), key_id))
            .await
            .map_err(StoreError::cql("delete user key"))?;
        self.user_keys.remove(user_ref);
        Ok(())
    }

    /// Deletes the wrapped data key `key_id` (and this process's copy): from then on nothing
    /// sealed with it opens. Idempotent.
    async fn destroy_data_key(&self, key_id: uuid::Uuid) -> Result<()> {
        let st = &self.ready().await?.statements;
        self.data_keys.remove(&key_id);
        self.execute("destroy data key", &st.delete_data_key, &(key_id,))
            .await?;
        Ok(())
    }

    /// Applies the erasures logged since the last poll to this process's caches: the keys of
    /// erased subjects are dropped, and their erasure time is known to the write path.
    pub(crate) async fn poll_erasures(&self) -> Result<()> {
        let started = Utc::now();
        let since = {
            let state = self.erasure_watch.lock();
            // Nothing cached is older than the cache's age limit: older erasures cannot matter.
            let oldest_cached = started - self.cache_age;
            state
                .polled_at
                .map_or(oldest_cached, |p| p.max(oldest_cached))
                - POLL_OVERLAP
        };
        let st = &self.ready().await?.statements;
        let mut found = Vec::new();
        for day in days_between(since, started + POLL_OVERLAP) {
            let rows = self
                .rows::<(DateTime<Utc>, Vec<u8>)>(
                    "poll erasures",
                    &st.select_erasure_log,
                    (day, since),
                )
                .await?
                .try_collect::<Vec<_>>()
                .await?;
            found.extend(rows);
        }
        for (erased_at, user_ref) in found {
            if let Ok(user_ref) = <[u8; 32]>::try_from(user_ref.as_slice()) {
                self.note_erasure(user_ref, erased_at);
            }
        }
        let mut state = self.erasure_watch.lock();
        let cutoff = since.timestamp_millis();
        state.applied.retain(|(_, at)| *at >= cutoff);
        state.polled_at = Some(state.polled_at.map_or(started, |p| p.max(started)));
        Ok(())
    }

    /// Makes an erasure known to this process, once: its time, and no cached key from before.
    fn note_erasure(&self, user_ref: [u8; 32], erased_at: DateTime<Utc>) {
        if !self
            .erasure_watch
            .lock()
            .applied
            .insert((user_ref, erased_at.timestamp_millis()))
        {
            return;
        }
        if self.erased.get(&user_ref).flatten() < Some(erased_at) {
            self.erased.put(user_ref, Some(erased_at));
        }
        if let Some(key) = self.user_keys.get(&user_ref)
            && key.created_at.is_none_or(|c| c <= erased_at)
        {
            self.user_keys.remove(&user_ref);
            self.data_keys.remove(&key.key_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_poll_reads_every_day_its_range_touches() {
        let t = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(days_between(t(20, 10), t(20, 11)), [day(20)]);
        assert_eq!(days_between(t(20, 23), t(21, 0)), [day(20), day(21)]);
        assert_eq!(
            days_between(t(20, 1), t(22, 1)),
            [day(20), day(21), day(22)]
        );
        assert!(days_between(t(21, 0), t(20, 0)).is_empty());
    }
}
