//! Index rows that point at a day of a subject's records (`user_days`, and the causal
//! buckets' day rows): their TTL, and which of them this process wrote recently.
//!
//! A batch of records names a few (pseudonym, day, class[, hour]) index rows again and again:
//! rewriting them with every batch was a fifth of the store's writes. The store remembers the
//! `user_days` rows it wrote in the last [`INDEX_REFRESH`] and skips them; it rewrites one
//! when its entry is older, so an index row of a subject still being written is refreshed at
//! least once per interval.
//!
//! Why an index row still never expires before a record it indexes: every row's TTL counts
//! from its own write. An index row written at `w` lives until `w + class TTL + margin`; a
//! record it was skipped for is written before `w + INDEX_REFRESH` (the entry's age counts
//! from before the index write was sent) and lives until before
//! `w + INDEX_REFRESH + class TTL`. [`INDEX_TTL_MARGIN_SECS`] (a day) ≥ [`INDEX_REFRESH`] (an
//! hour) makes that hold, with 23 hours to spare for clocks of different coordinators. The
//! price of the margin: an index row outlives the last record it points to by up to a day, and
//! a read of that day finds an empty partition.
//!
//! Entries are per process, keyed by the subject's key id, and only ever skip a write this
//! process made itself: an eviction, a restart or another sink only costs a rewrite. `gdpr
//! delete` needs not clear them: it destroys the key, and key ids are random and never reused,
//! so the subject's next record gets a new key id that no entry names (the old entries age out
//! within the hour or are evicted). A failed write is never remembered.

use std::time::Duration;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::cache::KeyCache;
use auditflow_core::RetentionClass;

/// How much longer an index row lives than the rows it indexes.
pub(crate) const INDEX_TTL_MARGIN_SECS: i64 = 86_400;

/// A remembered index row is rewritten once its entry is this old.
pub(crate) const INDEX_REFRESH: Duration = Duration::from_secs(3_600);

/// Index rows remembered: about 100 bytes each, so ~10 MB at most. An evicted entry costs one
/// rewrite, never a missing row.
pub(crate) const INDEX_CACHE_ENTRIES: usize = 100_000;

const _: () = assert!(INDEX_TTL_MARGIN_SECS >= INDEX_REFRESH.as_secs() as i64);

/// A `user_days` row: key id, day, class, and the hour of an hourly subject.
pub(crate) type UserDayKey = (Uuid, NaiveDate, RetentionClass, Option<i32>);

/// The `user_days` rows this process wrote less than [`INDEX_REFRESH`] ago.
pub(crate) type WrittenIndex = KeyCache<UserDayKey, ()>;

pub(crate) fn written_index() -> WrittenIndex {
    KeyCache::new(INDEX_CACHE_ENTRIES, INDEX_REFRESH)
}

/// The TTL of an index row over rows kept `class_ttl` seconds.
pub(crate) fn index_ttl(class_ttl: i32) -> i32 {
    // The margin is a day: it fits an i32.
    class_ttl.saturating_add(INDEX_TTL_MARGIN_SECS as i32)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn key() -> UserDayKey {
        (
            Uuid::from_u128(7),
            NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            RetentionClass::General,
            None,
        )
    }

    #[test]
    fn a_row_is_skipped_until_its_entry_is_older_than_the_refresh_interval() {
        // Ages are looked at from instants ahead of the write (never behind it), so this
        // checks the same on a machine booted a minute ago as on one up for a year.
        let cache = written_index();
        let written = Instant::now();
        let later = |d: Duration| written + d;
        assert_eq!(
            cache.get_at(&key(), written),
            None,
            "never written: write it"
        );
        cache.put_at(key(), (), written);
        assert_eq!(cache.get(&key()), Some(()), "just written: skip it");
        assert_eq!(
            cache.get_at(&key(), later(INDEX_REFRESH - Duration::from_secs(1))),
            Some(()),
            "a second short of the interval: still skip it"
        );
        let other_hour = (key().0, key().1, key().2, Some(3));
        assert_eq!(
            cache.get_at(&other_hour, written),
            None,
            "each hour is its own entry"
        );
        assert_eq!(
            cache.get_at(&key(), later(INDEX_REFRESH)),
            None,
            "as old as the interval: rewrite it"
        );
        cache.put_at(key(), (), written);
        assert_eq!(
            cache.get_at(&key(), later(INDEX_REFRESH + Duration::from_secs(1))),
            None,
            "older than the interval: rewrite it"
        );
        assert_eq!(
            cache.get_at(&key(), written),
            None,
            "a stale entry is forgotten, not revived"
        );
    }

    #[test]
    fn an_index_row_outlives_every_record_written_while_it_was_skipped() {
        let seven_years = 2557 * 86_400;
        for class_ttl in [1, 86_400, seven_years, i32::MAX - 10] {
            let index_written = 0_i64;
            let index_expires = index_written + i64::from(index_ttl(class_ttl));
            // The last record skipped is written just before the entry goes stale.
            let last_skipped = index_written + INDEX_REFRESH.as_secs() as i64 - 1;
            let record_expires = last_skipped + i64::from(class_ttl);
            if class_ttl < i32::MAX - INDEX_TTL_MARGIN_SECS as i32 {
                assert!(index_expires > record_expires, "class TTL {class_ttl}");
                assert_eq!(index_expires - i64::from(class_ttl), INDEX_TTL_MARGIN_SECS);
            } else {
                assert_eq!(index_ttl(class_ttl), i32::MAX, "saturates, never wraps");
            }
        }
    }
}
