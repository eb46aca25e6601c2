//! One key's recent events in event-time order, with exact window edges.
//!
//! Windows are computed from the timestamps themselves (binary search over a sorted deque), never
//! from buckets, so the documented half-open window (t − W, t] is exact to the nanosecond: an event
//! exactly W before another is outside its window, one a nanosecond later is inside.

use std::collections::VecDeque;
use std::ops::Range;

use chrono::{DateTime, TimeDelta, Utc};

use super::keyed::Weigh;
use super::time::earlier;

/// A value stamped with its event time.
#[derive(Debug, Clone)]
pub(crate) struct Stamped<E> {
    pub time: DateTime<Utc>,
    pub value: E,
}

/// Events of one key sorted by time; events with equal times keep their arrival order.
#[derive(Debug, Clone)]
pub(crate) struct Timeline<E> {
    entries: VecDeque<Stamped<E>>,
    /// What the entries cost: their inline size and the heap they own.
    bytes: usize,
}

impl<E> Default for Timeline<E> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<E: Weigh> Weigh for Timeline<E> {
    fn heap_bytes(&self) -> usize {
        self.bytes
    }
}

fn weight<E: Weigh>(entry: &Stamped<E>) -> usize {
    std::mem::size_of::<Stamped<E>>() + entry.value.heap_bytes()
}

/// Where an event falls relative to the newest event its key has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// At or after the newest event. `opens_episode` when the key's window holds nothing else:
    /// the previous event is at least a window length older (or there is none).
    InOrder { opens_episode: bool },
    /// Behind the newest event, but within the grace period: placed where it belongs.
    Late,
    /// Further behind than the grace period: not judged.
    TooLate,
}

impl<E> Timeline<E> {
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.entries.back().map(|e| e.time)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, index: usize) -> Option<&Stamped<E>> {
        self.entries.get(index)
    }

    /// Classifies an event at `time` against this key's newest event.
    pub fn arrival(&self, time: DateTime<Utc>, window: TimeDelta, grace: TimeDelta) -> Arrival {
        match self.newest() {
            None => Arrival::InOrder {
                opens_episode: true,
            },
            Some(newest) if time >= newest => Arrival::InOrder {
                opens_episode: time - newest >= window,
            },
            Some(newest) if time >= earlier(newest, grace) => Arrival::Late,
            Some(_) => Arrival::TooLate,
        }
    }

    /// Indices of the entries in the window that ends at `end`: times in (end − len, end].
    pub fn window(&self, end: DateTime<Utc>, len: TimeDelta) -> Range<usize> {
        let start = earlier(end, len);
        let lo = self.entries.partition_point(|e| e.time <= start);
        let hi = self.entries.partition_point(|e| e.time <= end);
        lo..hi.max(lo)
    }

    pub fn range(&self, range: Range<usize>) -> impl DoubleEndedIterator<Item = &Stamped<E>> {
        self.entries.range(range)
    }

    /// The distinct times in [from, to), oldest first: the ends of every window an event at
    /// `from` belongs to, when `to` = from + window length.
    pub fn anchors(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let lo = self.entries.partition_point(|e| e.time < from);
        let mut out: Vec<DateTime<Utc>> = Vec::new();
        for e in self.entries.range(lo..) {
            if e.time >= to {
                break;
            }
            if out.last() != Some(&e.time) {
                out.push(e.time);
            }
        }
        out
    }
}

impl<E: Weigh> Timeline<E> {
    /// Inserts after every entry with a time ≤ `time` and returns its index. Beyond `cap`
    /// entries the oldest are dropped (so counts saturate at `cap`).
    pub fn insert(&mut self, time: DateTime<Utc>, value: E, cap: usize) -> usize {
        let mut at = self.entries.partition_point(|e| e.time <= time);
        let entry = Stamped { time, value };
        self.bytes += weight(&entry);
        self.entries.insert(at, entry);
        while self.entries.len() > cap.max(1) {
            if let Some(dropped) = self.entries.pop_front() {
                self.bytes -= weight(&dropped);
            }
            at = at.saturating_sub(1);
        }
        at
    }

    /// Drops entries with a time at or before `cutoff`.
    pub fn forget_through(&mut self, cutoff: DateTime<Utc>) {
        let n = self.entries.partition_point(|e| e.time <= cutoff);
        for dropped in self.entries.drain(..n) {
            self.bytes -= weight(&dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for char {
        fn heap_bytes(&self) -> usize {
            0
        }
    }

    impl Weigh for i32 {
        fn heap_bytes(&self) -> usize {
            0
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn window_is_half_open_and_exact() {
        let mut t = Timeline::default();
        t.insert(at(0), 'a', 10);
        t.insert(at(1), 'b', 10);
        let w = TimeDelta::seconds(600);
        // exactly 600 s after 'a': 'a' is out, 'b' is in.
        assert_eq!(t.window(at(600), w), 1..2);
        // a nanosecond earlier: both in.
        assert_eq!(t.window(at(600) - TimeDelta::nanoseconds(1), w), 0..2);
    }

    #[test]
    fn late_inserts_keep_time_order_and_cap_drops_oldest() {
        let mut t = Timeline::default();
        t.insert(at(10), 1, 3);
        t.insert(at(30), 3, 3);
        assert_eq!(t.insert(at(20), 2, 3), 1);
        assert_eq!(t.insert(at(40), 4, 3), 2);
        let values: Vec<i32> = t.range(0..t.len()).map(|e| e.value).collect();
        assert_eq!(values, [2, 3, 4]);
    }

    #[test]
    fn arrival_classification() {
        let mut t = Timeline::default();
        let (w, g) = (TimeDelta::seconds(600), TimeDelta::seconds(120));
        assert_eq!(
            t.arrival(at(0), w, g),
            Arrival::InOrder {
                opens_episode: true
            }
        );
        t.insert(at(1000), (), 10);
        assert_eq!(
            t.arrival(at(1000), w, g),
            Arrival::InOrder {
                opens_episode: false
            }
        );
        assert_eq!(
            t.arrival(at(1599), w, g),
            Arrival::InOrder {
                opens_episode: false
            }
        );
        assert_eq!(
            t.arrival(at(1600), w, g),
            Arrival::InOrder {
                opens_episode: true
            }
        );
        assert_eq!(t.arrival(at(880), w, g), Arrival::Late);
        assert_eq!(t.arrival(at(879), w, g), Arrival::TooLate);
    }

    #[test]
    fn bytes_follow_inserts_caps_and_forgetting() {
        use std::sync::Arc;
        let mut t: Timeline<Arc<str>> = Timeline::default();
        t.insert(at(0), Arc::from("x".repeat(1000)), 2);
        let one = t.heap_bytes();
        assert!(one > 1000);
        t.insert(at(1), Arc::from("y"), 2);
        t.insert(at(2), Arc::from("z"), 2);
        assert!(
            t.heap_bytes() < one,
            "the 1000-byte entry was dropped at the cap"
        );
        t.forget_through(at(2));
        assert_eq!((t.len(), t.heap_bytes()), (0, 0));
    }

    #[test]
    fn anchors_are_distinct_times_in_range() {
        let mut t = Timeline::default();
        for s in [5, 10, 10, 20, 30] {
            t.insert(at(s), (), 10);
        }
        assert_eq!(t.anchors(at(10), at(30)), vec![at(10), at(20)]);
    }
}
