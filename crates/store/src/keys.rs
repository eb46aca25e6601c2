//! Per-user data keys: created on a user's first record, cached, destroyed by `gdpr delete`.
//!
//! Two rows per user: `user_keys` (HMAC of the user id → key id) and `data_keys` (key id →
//! wrapped key). The key id doubles as the partition pseudonym of the user's audit rows and is
//! written in clear next to them, so rows read by time can find their key. Destroying a user
//! deletes `data_keys` first (from then on nothing of theirs can be decrypted), then
//! `user_keys` (from then on nothing leads from their user id to their rows); a crash in
//! between leaves a dangling `user_keys` row that the next delete or write clears.
//!
//! The `user_keys` row also pins whether the subject's rows are partitioned by hour (see the
//! `bucket` module), decided once, when the key is created.

use std::sync::Arc;

use chrono::Utc;
use scylla::value::{CqlTimestamp, MaybeUnset};
use uuid::Uuid;

use crate::Store;
use crate::crypto::{DataKey, Subject};
use crate::error::{Result, StoreError};
use crate::migrate::lwt_applied;

/// A subject's key and the pseudonym of their partitions.
#[derive(Clone)]
pub(crate) struct UserKey {
    pub(crate) key_id: Uuid,
    pub(crate) key: Arc<DataKey>,
    /// Rows in one partition per hour instead of per day.
    pub(crate) hourly: bool,
}

/// A `user_keys` row: the key id and the hourly flag (absent on keys created before
/// migration 4, which stay daily).
type KeyRow = (Option<Uuid>, Option<bool>);

impl Store {
    /// The subject's key, created (exactly once cluster-wide) on first use.
    pub(crate) async fn key_for_write(&self, subject: Subject<'_>) -> Result<UserKey> {
        let user_ref = self.keyring.user_ref(subject);
        if let Some(key) = self.user_keys.get(&user_ref) {
            return Ok(key);
        }
        for _ in 0..self.max_attempts {
            match self.load_user_key(&user_ref, false).await? {
                Lookup::Found(key) => return Ok(self.remember(user_ref, key)),
                Lookup::Dangling => self.forget_user_ref(&user_ref).await?,
                Lookup::Absent => {}
            }
            if let Some(key) = self
                .create_user_key(&user_ref, self.is_hourly(subject))
                .await?
            {
                return Ok(self.remember(user_ref, key));
            }
        }
        Err(StoreError::Read {
            context: "create data key",
            detail: "no key could be created or read back".into(),
        })
    }

    /// The subject's key if they have one (none: never seen, or erased).
    pub(crate) async fn key_for_read(&self, subject: Subject<'_>) -> Result<Option<UserKey>> {
        let user_ref = self.keyring.user_ref(subject);
        if let Some(key) = self.user_keys.get(&user_ref) {
            return Ok(Some(key));
        }
        Ok(match self.load_user_key(&user_ref, false).await? {
            Lookup::Found(key) => Some(self.remember(user_ref, key)),
            Lookup::Dangling | Lookup::Absent => None,
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

    /// Crypto-shreds a user: afterwards none of their stored personal data can be decrypted
    /// and no query finds them. Returns whether they had a key. Idempotent.
    ///
    /// Other processes may still hold the key in their caches for up to
    /// `[store] key_cache_ttl_secs`.
    pub async fn destroy_user_key(&self, user_id: &str) -> Result<bool> {
        let user_ref = self.keyring.user_ref(Subject::User(user_id));
        self.user_keys.remove(&user_ref);
        let st = &self.ready().await?.statements;
        let row = self
            .first_row::<KeyRow>(
                "read user key",
                &st.select_user_key_serial,
                &(user_ref.to_vec(),),
            )
            .await?;
        let Some((Some(key_id), _)) = row else {
            return Ok(false);
        };
        self.data_keys.remove(&key_id);
        self.execute("destroy data key", &st.delete_data_key, &(key_id,))
            .await?;
        self.forget_user_ref(&user_ref).await?;
        Ok(true)
    }

    async fn forget_user_ref(&self, user_ref: &[u8; 32]) -> Result<()> {
        let st = &self.ready().await?.statements;
        self.execute(
            "delete user key",
            &st.delete_user_key,
            &(user_ref.to_vec(),),
        )
        .await?;
        self.user_keys.remove(user_ref);
        Ok(())
    }

    /// Whether a subject first seen now gets hour buckets: the configured
    /// `[store] hourly_subjects`, and records naming no user (one shared key for all of them).
    fn is_hourly(&self, subject: Subject<'_>) -> bool {
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
        let Some((Some(key_id), hourly)) = row else {
            return Ok(Lookup::Absent);
        };
        Ok(match self.data_key(key_id).await? {
            Some(key) => Lookup::Found(UserKey {
                key_id,
                key,
                hourly: hourly.unwrap_or(false),
            }),
            None => Lookup::Dangling,
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
            .execute_unpaged(&st.insert_user_key, (user_ref.to_vec(), key_id, now, flag))
            .await;
        match claimed {
            Ok(result) => {
                if lwt_applied(result)? {
                    return Ok(Some(UserKey {
                        key_id,
                        key: Arc::new(key),
                        hourly,
                    }));
                }
            }
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
            Lookup::Dangling | Lookup::Absent => Ok(None),
        }
    }
}

enum Lookup {
    Found(UserKey),
    /// The user reference points at a destroyed key: an interrupted `gdpr delete`.
    Dangling,
    Absent,
}
