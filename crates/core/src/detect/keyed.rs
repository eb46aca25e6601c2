//! Per-key state with a hard cap on keys and on bytes, and idle eviction by event time.
//!
//! Memory must stay bounded whatever the input, so every rule family keeps its keys here:
//! a key idle (by event time) for longer than the family's retention is dropped, and when
//! the cap is reached the key with the oldest newest-event is dropped to make room. Each key's
//! state is weighed ([`Weigh`]) after every change, so the detector can also hold all its
//! families to one byte budget, evicting the stalest keys first (`Detector`). Every decision
//! depends only on the events seen, so a replay evicts exactly as the original run.
//!
//! Keys are attacker-chosen text (user ids); [`bounded_key`] caps their length.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use super::time::earlier;

/// What a value costs in memory beyond its own inline size: the heap it owns. Approximate
/// (allocator overhead is not counted), but it grows with every byte an input can add.
pub(crate) trait Weigh {
    fn heap_bytes(&self) -> usize;
}

impl Weigh for () {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Weigh for Arc<str> {
    fn heap_bytes(&self) -> usize {
        // The string and the two reference counts in front of it.
        self.len() + 2 * std::mem::size_of::<usize>()
    }
}

impl Weigh for String {
    fn heap_bytes(&self) -> usize {
        // The length, not the capacity: a clone's capacity differs, its weight must not.
        self.len()
    }
}

impl<T: Weigh> Weigh for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, Weigh::heap_bytes)
    }
}

/// Characters of the hash suffix [`bounded_key`] appends: `~` and 32 hex digits.
pub(crate) const HASH_SUFFIX_LEN: usize = 33;

/// `text` when it is at most `max` bytes long; else its first bytes (cut at a character
/// boundary), `~` and 32 hex digits of the SHA-256 of the whole text, `max` bytes at most.
/// Two long texts that differ anywhere stay two keys (but for a 128-bit collision), and no key
/// costs more than `max` bytes. `max` must exceed [`HASH_SUFFIX_LEN`] (the settings check it).
pub(crate) fn bounded_key(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut cut = max.saturating_sub(HASH_SUFFIX_LEN);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut key = String::with_capacity(cut + HASH_SUFFIX_LEN);
    key.push_str(&text[..cut]);
    key.push('~');
    for byte in &digest[..16] {
        key.push_str(&format!("{byte:02x}"));
    }
    Cow::Owned(key)
}

/// Bytes a key costs besides its state: the key twice (map and index), the slot, the index
/// entry and hash table overhead, roughly.
const SLOT_OVERHEAD: usize = 96;

#[derive(Debug, Clone)]
struct Slot<S> {
    state: S,
    last_seen: DateTime<Utc>,
    /// What this slot cost when last weighed.
    weight: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct KeyedState<S> {
    slots: HashMap<String, Slot<S>>,
    /// (newest event time, key), so the stalest key is the first.
    by_last_seen: BTreeSet<(DateTime<Utc>, String)>,
    max_keys: usize,
    idle_after: TimeDelta,
    evicted: u64,
    /// The sum of the slots' weights, as last weighed.
    bytes: usize,
    /// The key [`KeyedState::touch`] last handed out, to weigh again once it has changed.
    touched: Option<String>,
}

impl<S: Weigh> KeyedState<S> {
    /// Weighs the state [`KeyedState::touch`] last handed out again, now that its user has
    /// changed it (the detector calls this after every judgement).
    pub fn reweigh_touched(&mut self) {
        if let Some(key) = self.touched.take() {
            self.reweigh(&key);
        }
    }

    fn reweigh(&mut self, key: &str) {
        if let Some(slot) = self.slots.get_mut(key) {
            let weight = SLOT_OVERHEAD + 2 * key.len() + slot.state.heap_bytes();
            self.bytes = self.bytes - slot.weight + weight;
            slot.weight = weight;
        }
    }
}

impl<S: Default + Weigh> KeyedState<S> {
    pub fn new(max_keys: usize, idle_after: TimeDelta) -> Self {
        Self {
            slots: HashMap::new(),
            by_last_seen: BTreeSet::new(),
            max_keys: max_keys.max(1),
            idle_after,
            evicted: 0,
            bytes: 0,
            touched: None,
        }
    }

    /// The state of `key`, created when absent (evicting the stalest key at the cap); its
    /// last-seen time moves forward to `time`. It is weighed again at
    /// [`KeyedState::reweigh_touched`].
    pub fn touch(&mut self, key: &str, time: DateTime<Utc>) -> &mut S {
        if self.touched.as_deref() != Some(key) {
            // One key per judgement: weigh a previous one now rather than never.
            self.reweigh_touched();
            self.touched = Some(key.to_owned());
        }
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
                    weight: 0,
                },
            );
            self.by_last_seen.insert((time, key.to_owned()));
        }
        // The entry exists now; `get_mut` cannot fail, but never panic on a broken invariant.
        let slot = self.slots.entry(key.to_owned()).or_insert_with(|| Slot {
            state: S::default(),
            last_seen: time,
            weight: 0,
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

    /// Drops the key with the oldest newest-event; false when there is none.
    pub fn evict_stalest(&mut self) -> bool {
        match self.by_last_seen.pop_first() {
            Some((_, key)) => {
                if let Some(slot) = self.slots.remove(&key) {
                    self.bytes -= slot.weight;
                }
                self.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// The newest event time of the stalest key: what [`KeyedState::evict_stalest`] drops next.
    pub fn stalest(&self) -> Option<DateTime<Utc>> {
        self.by_last_seen.first().map(|(time, _)| *time)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// What the keys and their states cost now, as last weighed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for u32 {
        fn heap_bytes(&self) -> usize {
            0
        }
    }

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
    fn weights_follow_changes_and_eviction() {
        let mut k: KeyedState<String> = KeyedState::new(10, TimeDelta::seconds(100));
        k.touch("a", at(0)).push_str(&"x".repeat(1000));
        k.reweigh_touched();
        let one = k.bytes();
        assert!(one >= 1000, "{one}");
        k.touch("b", at(1));
        k.reweigh_touched();
        assert!(k.bytes() > one);
        assert_eq!(k.stalest(), Some(at(0)));
        assert!(k.evict_stalest());
        assert!(k.bytes() < one, "a's 1000 bytes are gone: {}", k.bytes());
        assert!(k.evict_stalest());
        assert_eq!((k.bytes(), k.len(), k.evicted()), (0, 0, 2));
        assert!(!k.evict_stalest());
    }

    #[test]
    fn long_keys_are_cut_and_hashed() {
        assert_eq!(bounded_key("alice", 64), "alice");
        let long = "u".repeat(10_000);
        let key = bounded_key(&long, 64);
        assert_eq!(key.len(), 64);
        assert!(
            key.starts_with(&"u".repeat(31)) && key.as_bytes()[31] == b'~',
            "{key}"
        );
        let mut other = long.clone();
        other.push('v');
        assert_ne!(
            bounded_key(&other, 64),
            key,
            "a difference past the cut still counts"
        );
        assert_eq!(bounded_key(&long, 64), key, "deterministic");
        // Cut at a character boundary, never inside one.
        let wide = "é".repeat(100);
        let key = bounded_key(&wide, 64);
        assert!(key.len() <= 64);
        assert!(key.starts_with("éé"));
        // Exactly at the limit is kept as it is.
        assert_eq!(bounded_key(&"u".repeat(64), 64).len(), 64);
        assert!(matches!(bounded_key(&"u".repeat(64), 64), Cow::Borrowed(_)));
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
