//! A small bounded LRU with an age limit, for unwrapped data keys (and the index rows written
//! recently, see the `index` module).
//!
//! Bounded so memory stays flat however many users appear; aged so a key destroyed by
//! `gdpr delete` in another process stops being used here within `max_age`.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

pub(crate) struct KeyCache<K: Hash + Eq, V: Clone> {
    inner: Mutex<LruCache<K, (Instant, V)>>,
    max_age: Duration,
}

impl<K: Hash + Eq, V: Clone> KeyCache<K, V> {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(LruCache::new(capacity)),
            max_age,
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.get_at(key, Instant::now())
    }

    /// As [`get`](Self::get), with `now` given: ages are a function of the two instants only,
    /// so a test can look an hour ahead without needing a clock an hour old.
    pub(crate) fn get_at(&self, key: &K, now: Instant) -> Option<V> {
        let mut cache = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(key) {
            Some((at, v)) if is_fresh(*at, now, self.max_age) => Some(v.clone()),
            Some(_) => {
                cache.pop(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, key: K, value: V) {
        self.put_at(key, value, Instant::now());
    }

    /// Remembers `value` as of `at`: its age counts from then.
    pub(crate) fn put_at(&self, key: K, value: V, at: Instant) {
        let mut cache = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(key, (at, value));
    }

    pub(crate) fn remove(&self, key: &K) {
        let mut cache = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        cache.pop(key);
    }
}

/// Whether an entry remembered at `at` is still younger than `max_age` at `now`. An entry
/// dated after `now` (another thread's `put` raced this read) has age zero.
fn is_fresh(at: Instant, now: Instant, max_age: Duration) -> bool {
    now.saturating_duration_since(at) < max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_expires() {
        let c = KeyCache::new(2, Duration::from_secs(3600));
        c.put(1, "a");
        c.put(2, "b");
        assert_eq!(c.get(&1), Some("a"));
        c.put(3, "c");
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&1), Some("a"));
        c.remove(&1);
        assert_eq!(c.get(&1), None);
        let aged = KeyCache::new(2, Duration::ZERO);
        aged.put(1, "a");
        assert_eq!(aged.get(&1), None);
    }

    #[test]
    fn freshness_is_the_age_between_two_instants() {
        let at = Instant::now();
        let hour = Duration::from_secs(3_600);
        assert!(is_fresh(at, at, hour));
        assert!(is_fresh(at, at + hour - Duration::from_nanos(1), hour));
        assert!(
            !is_fresh(at, at + hour, hour),
            "exactly max_age old is stale"
        );
        assert!(!is_fresh(at, at + 2 * hour, hour));
        assert!(is_fresh(at + hour, at, hour), "dated after now: age zero");
        assert!(!is_fresh(at, at, Duration::ZERO));
    }
}
