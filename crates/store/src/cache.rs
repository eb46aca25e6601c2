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
        let mut cache = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(key) {
            Some((at, v)) if at.elapsed() < self.max_age => Some(v.clone()),
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
}
