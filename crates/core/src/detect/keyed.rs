//! Per-key state with a hard cap on keys and idle eviction, both by event time.
//!
//! Memory must stay bounded whatever the input, so every rule family keeps its keys here:
//! a key idle (by event time) for longer than the family's retention is dropped, and when
//! the cap is reached the key with the oldest newest-event is dropped to make room. Both
//! decisions depend only on the events seen, so a replay evicts exactly as the original run.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use super::params::earlier;

#[derive(Debug, Clone)]
struct Slot<S> {
    state: S,
    last_seen: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct KeyedState<S> {
    slots: HashMap<String, Slot<S>>,
    /// (newest event time, key), so the stalest key is the first.
    by_last_seen: BTreeSet<(DateTime<Utc>, String)>,
    max_keys: usize,
    idle_after: TimeDelta,
    evicted: u64,
}

impl<S: Default> KeyedState<S> {
    pub fn new(max_keys: usize, idle_after: TimeDelta) -> Self {
        Self {
            slots: HashMap::new(),
            by_last_seen: BTreeSet::new(),
            max_keys: max_keys.max(1),
            idle_after,
            evicted: 0,
        }
    }

    /// The state of `key`, created when absent (evicting the stalest key at the cap); its
    /// last-seen time moves forward to `time`.
    pub fn touch(&mut self, key: &str, time: DateTime<Utc>) -> &mut S {
        if !self.slots.contains_key(key) {
            while self.slots.len() >= self.max_keys {
                if !self.evict_stalest() {
                    break;
                }
            }
            self.slots.insert(
                key.to_owned(),
                Slot {
                    state: S::default(),
                    last_seen: time,
                },
            );
            self.by_last_seen.insert((time, key.to_owned()));
        }
        // The entry exists now; `get_mut` cannot fail, but never panic on a broken invariant.
        let slot = self.slots.entry(key.to_owned()).or_insert_with(|| Slot {
            state: S::default(),
            last_seen: time,
        });
        if time > slot.last_seen {
            self.by_last_seen.remove(&(slot.last_seen, key.to_owned()));
            self.by_last_seen.insert((time, key.to_owned()));
            slot.last_seen = time;
        }
        &mut slot.state
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut S> {
        self.slots.get_mut(key).map(|s| &mut s.state)
    }

    /// Drops every key whose newest event is more than the idle period before `now`.
    pub fn evict_idle(&mut self, now: DateTime<Utc>) {
        let cutoff = earlier(now, self.idle_after);
        while let Some((last_seen, _)) = self.by_last_seen.first() {
            if *last_seen >= cutoff {
                break;
            }
            self.evict_stalest();
        }
    }

    fn evict_stalest(&mut self) -> bool {
        match self.by_last_seen.pop_first() {
            Some((_, key)) => {
                self.slots.remove(&key);
                self.evicted += 1;
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn cap_evicts_the_stalest_key() {
        let mut k: KeyedState<u32> = KeyedState::new(2, TimeDelta::seconds(100));
        *k.touch("a", at(0)) = 1;
        *k.touch("b", at(5)) = 2;
        k.touch("a", at(10));
        *k.touch("c", at(11)) = 3;
        assert_eq!(k.len(), 2);
        assert!(k.get_mut("b").is_none());
        assert_eq!(k.get_mut("a").copied(), Some(1));
        assert_eq!(k.evicted(), 1);
    }

    #[test]
    fn idle_keys_are_evicted_by_event_time() {
        let mut k: KeyedState<u32> = KeyedState::new(10, TimeDelta::seconds(100));
        k.touch("a", at(0));
        k.touch("b", at(50));
        k.evict_idle(at(100));
        assert_eq!(k.len(), 2);
        k.evict_idle(at(101));
        assert_eq!(k.len(), 1);
        assert!(k.get_mut("b").is_some());
    }

    #[test]
    fn an_older_time_does_not_move_last_seen_back() {
        let mut k: KeyedState<u32> = KeyedState::new(10, TimeDelta::seconds(100));
        k.touch("a", at(100));
        k.touch("a", at(10));
        k.evict_idle(at(150));
        assert_eq!(k.len(), 1);
    }
}
