//! Per-user data keys: created on a user's first record, cached, destroyed by `gdpr delete`.
//!
//! Two rows per user: `user_keys` (HMAC of the user id → key id, and when the key was created,
//! on the cluster's clock) and `data_keys` (key id → wrapped key). The key id doubles as the
//! partition pseudonym of the user's audit rows and is written in clear next to them, so rows
//! read by time can find their key. Destroying a key deletes `data_keys` first (from then on
//! nothing sealed with it can be decrypted), then `user_keys` with a lightweight transaction
//! that only deletes the row if it still names that key; an interrupted destruction leaves a
//! dangling `user_keys` row that the next delete or write finishes. Every change of a
//! `user_keys` row is a lightweight transaction (claim `IF NOT EXISTS`, delete `IF key_id = ?`),
//! so a claim a sink makes while a key is destroyed is never lost, and no wrapped key is left
//! that no later erasure finds. How erasure stays final: the `erasure` module.
//!
//! The `user_keys` row also pins whether the subject's rows are partitioned by hour (see the
//! `bucket` module), decided once, when the key is created.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use scylla::value::{CqlTimestamp, MaybeUnset};
use uuid::Uuid;

use crate::Store;
use crate::crypto::{DataKey, Subject};
use crate::error::{Result, StoreError};

/// A subject's key and the pseudonym of their partitions.
#[derive(Clone)]
pub(crate) struct UserKey {
    pub(crate) key_id: Uuid,
    pub(crate) key: Arc<DataKey>,
    /// Rows in one partition per hour instead of per day.
    pub(crate) hourly: bool,
    /// When the key was created (the cluster's clock; absent for a key that is never stored).
    pub(crate) created_at: Option<DateTime<Utc>>,
}

impl UserKey {
    /// Whether the key predates an erasure at `erased_at`, and so is (being) destroyed.
    pub(crate) fn predates(&self, erased_at: Option<DateTime<Utc>>) -> bool {
        erased_at.is_some_and(|e| self.created_at.is_none_or(|c| c <= e))
    }
}

/// What a subject's records dated from its last erasure on are sealed with.
pub(crate) enum WriteKey {
    Live(UserKey),
    /// The subject was erased (again) since the caller looked: at this time.
    ErasedMeanwhile(DateTime<Utc>),
}

/// A `user_keys` row: the key id, the hourly flag (absent on keys created before migration 4,
/// which stay daily) and when the key was created.
type KeyRow = (Option<Uuid>, Option<bool>, Option<DateTime<Utc>>);

impl Store {
    /// The key for the subject's records dated from `erased_at` (the subject's last erasure,
    /// as the caller knows it) on; created (exactly once cluster-wide) on first use. A key from
    /// before that erasure is never returned: its destruction is finished here.
    pub(crate) async fn key_for_write(
        &self,
        subject: Subject<'_>,
        erased_at: Option<DateTime<Utc>>,
    ) -> Result<WriteKey> {
        let user_ref = self.keyring.user_ref(subject);
        if let Some(key) = self.user_keys.get(&user_ref) {
            if !key.predates(erased_at) {
                return Ok(WriteKey::Live(key));
            }
            self.user_keys.remove(&user_ref);
        }
        for _ in 0..self.max_attempts {
            match self.load_user_key(&user_ref, false).await? {
                Lookup::Found(key) if !key.predates(erased_at) => {
                    return Ok(WriteKey::Live(self.remember(user_ref, key)));
                }
                Lookup::Found(key) => self.finish_erasure(&user_ref, key.key_id).await?,
                Lookup::Dangling(key_id) => self.finish_erasure(&user_ref, key_id).await?,
                Lookup::Absent => {}
            }
            // Read after `user_keys`: an erasure that removed the key is seen here, so a key
            // created now can only postdate it (the `erasure` module's ordering).
            if let Some(now) = self.erased_since(subject, &user_ref, erased_at).await? {
                return Ok(WriteKey::ErasedMeanwhile(now));
            }
            if let Some(key) = self
                .create_user_key(&user_ref, self.is_hourly(subject))
                .await?
                && !key.predates(erased_at)
            {
                let key = self.remember(user_ref, key);
                // Read again after the claim: an erasure that landed between the read above
                // and the claim is older than this key, so it spares it, and the caller must
                // not seal records dated before it under it (the `erasure` module).
                if let Some(now) = self.erased_since(subject, &user_ref, erased_at).await? {
                    return Ok(WriteKey::ErasedMeanwhile(now));
                }
                return Ok(WriteKey::Live(key));
            }
        }
        Err(StoreError::Read {
            context: "create data key",
            detail: "no key could be created or read back".into(),
        })
    }

    /// The subject's last erasure, read from the database, when it is later than `erased_at`
    /// (what the caller knew); `None` for records naming no user, which cannot be erased.
    async fn erased_since(
        &self,
        subject: Subject<'_>,
        user_ref: &[u8; 32],
        erased_at: Option<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>> {
        if let Subject::NoUser = subject {
            return Ok(None);
        }
        let now = self.read_erased_at(user_ref).await?;
        Ok((now > erased_at).then(|| now.unwrap_or_default()))
    }

    /// The subject's key if they have one (none: never seen, or erased).
    pub(crate) async fn key_for_read(&self, subject: Subject<'_>) -> Result<Option<UserKey>> {
        let user_ref = self.keyring.user_ref(subject);
        if let Some(key) = self.user_keys.get(&user_ref) {
            return Ok(Some(key));
        }
        Ok(match self.load_user_key(&user_ref, false).await? {
            Lookup::Found(key) => Some(self.remember(user_ref, key)),
            Lookup::Dangling(_) | Lookup::Absent => None,
        })
    }

    /// A data key by its id, for rows read by time; `None` once destroyed.
    pub(crate) async fn data_key(&self, key_id: Uuid) -> Result<Option<Arc<DataKey>>> {
        if let Some(key) = self.data_keys.get(&key_id) {
            return Ok(Some(key));
        }
        let st = &self.ready().await?.statements;
        let row = self
            .first_row::<(Option<Vec<u8>>,)>("read data key", &st.select_data_key, &(key_id,))
            .await?;
        let Some((Some(wrapped),)) = row else {
            return Ok(None);
        };
        let key = Arc::new(self.keyring.unwrap(key_id, &wrapped)?);
        self.data_keys.put(key_id, key.clone());
        Ok(Some(key))
    }

    /// The subject's `user_keys` row as a lightweight transaction sees it: key id and creation.
    pub(crate) async fn current_key_row(
        &self,
        user_ref: &[u8; 32],
    ) -> Result<Option<(Uuid, Option<DateTime<Utc>>)>> {
        let st = &self.ready().await?.statements;
        let row = self
            .first_row::<KeyRow>(
                "read user key",
                &st.select_user_key_serial,
                &(user_ref.to_vec(),),
            )
            .await?;
        Ok(row.and_then(|(key_id, _, created_at)| key_id.map(|k| (k, created_at))))
    }

    /// Whether a subject first seen now gets hour buckets: the configured
    /// `[store] hourly_subjects`, and records naming no user (one shared key for all of them).
    pub(crate) fn is_hourly(&self, subject: Subject<'_>) -> bool {
        match subject {
            Subject::User(id) => self.hourly_subjects.iter().any(|s| s == id),
            Subject::NoUser => true,
        }
    }

    fn remember(&self, user_ref: [u8; 32], key: UserKey) -> UserKey {
        self.user_keys.put(user_ref, key.clone());
        self.data_keys.put(key.key_id, key.key.clone());
        key
    }

    async fn load_user_key(&self, user_ref: &[u8; 32], serial: bool) -> Result<Lookup> {
        let st = &self.ready().await?.statements;
        let select = if serial {
            &st.select_user_key_serial
        } else {
            &st.select_user_key
        };
        let row = self
            .first_row::<KeyRow>("read user key", select, &(user_ref.to_vec(),))
            .await?;
        let Some((Some(key_id), hourly, created_at)) = row else {
            return Ok(Lookup::Absent);
        };
        Ok(match self.data_key(key_id).await? {
            Some(key) => Lookup::Found(UserKey {
                key_id,
                key,
                hourly: hourly.unwrap_or(false),
                created_at,
            }),
            None => Lookup::Dangling(key_id),
        })
    }

    /// Writes a new wrapped key, then claims the user's reference for it with a lightweight
    /// transaction. `None` when another process won the race and its key could not be read
    /// back yet (the caller loops).
    async fn create_user_key(&self, user_ref: &[u8; 32], hourly: bool) -> Result<Option<UserKey>> {
        let st = &self.ready().await?.statements;
        let key = DataKey::generate()?;
        let key_id = Uuid::new_v4();
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        let wrapped = self.keyring.wrap(key_id, &key);
        // The claim's `created_at` is the cluster's clock (`toTimestamp(now())`), like an
        // erasure's: the two are compared (the `erasure` module).
        // Daily keys leave the column unset, exactly like keys created before migration 4.
        let flag = if hourly {
            MaybeUnset::Set(true)
        } else {
            MaybeUnset::Unset
        };
        self.execute(
            "create data key",
            &st.insert_data_key,
            &(key_id, wrapped, now),
        )
        .await?;
        let claimed = self
            .session
            .execute_unpaged(&st.insert_user_key, (user_ref.to_vec(), key_id, flag))
            .await;
        match claimed {
            // Applied or not, the serial read below gives the winner (and the creation time,
            // which is the server's).
            Ok(_) => {}
            // The transaction's outcome is unknown: the serial read below settles it.
            Err(e) if crate::error::is_transient(&e) => {
                tracing::warn!(error = %e, "user key transaction timed out; reading back")
            }
            Err(source) => {
                return Err(StoreError::Cql {
                    context: "claim user key",
                    error: Box::new(source),
                });
            }
        }
        match self.load_user_key(user_ref, true).await? {
            Lookup::Found(winner) => {
                if winner.key_id != key_id {
                    // Our unused key row: nothing was sealed with it.
                    self.execute("drop unused data key", &st.delete_data_key, &(key_id,))
                        .await?;
                }
                Ok(Some(winner))
            }
            Lookup::Dangling(_) | Lookup::Absent => Ok(None),
        }
    }
}

enum Lookup {
    Found(UserKey),
    /// The user reference points at this destroyed key: an interrupted `gdpr delete`.
    Dangling(Uuid),
    Absent,
}
