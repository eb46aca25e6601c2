//! The ips one detector currently blocks, so each block's tombstone goes out when event time
//! or the wall clock ([`Detector::lift_expired`](super::Detector::lift_expired)) passes its
//! expiry. Each ip keeps the entry that set its expiry (what a service writes again should the
//! blocklist lose it). Bounded: at the cap, the block that expires soonest is lifted early (its
//! tombstone goes out then) rather than left on the compacted blocklist forever.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::keyed::Weigh;
use super::output::BlockEntry;

impl Weigh for BlockEntry {
    fn heap_bytes(&self) -> usize {
        [
            &self.id,
            &self.ip,
            &self.reason,
            &self.causation_id,
            &self.correlation_id,
        ]
        .iter()
        .map(|s| s.heap_bytes())
        .sum()
    }
}

/// Bytes a block costs besides its entry's strings: the entry, its key twice, the index.
const BLOCK_OVERHEAD: usize = std::mem::size_of::<BlockEntry>() + 64;

#[derive(Debug, Clone)]
pub(crate) struct Blocks {
    entries: HashMap<String, BlockEntry>,
    by_expiry: BTreeSet<(DateTime<Utc>, String)>,
    max: usize,
    bytes: usize,
}

impl Blocks {
    pub fn new(max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
            max: max.max(1),
            bytes: 0,
        }
    }

    /// Blocks `entry.ip` until `entry.expires_at`, or later if it already is: returns the
    /// effective entry (this one, with the later expiry) and the blocks lifted early to make
    /// room.
    pub fn block(&mut self, mut entry: BlockEntry) -> (BlockEntry, Vec<BlockEntry>) {
        let mut lifted = Vec::new();
        if let Some(current) = self.remove(&entry.ip) {
            entry.expires_at = entry.expires_at.max(current.expires_at);
        } else {
            while self.entries.len() >= self.max {
                match self.lift_soonest() {
                    Some(early) => lifted.push(early),
                    None => break,
                }
            }
        }
        self.bytes += weight(&entry);
        self.by_expiry.insert((entry.expires_at, entry.ip.clone()));
        self.entries.insert(entry.ip.clone(), entry.clone());
        (entry, lifted)
    }

    /// Removes and returns every block that expired before `now`, soonest first.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<BlockEntry> {
        let mut expired = Vec::new();
        while let Some((until, _)) = self.by_expiry.first() {
            if *until >= now {
                break;
            }
            match self.lift_soonest() {
                Some(entry) => expired.push(entry),
                None => break,
            }
        }
        expired
    }

    /// Removes and returns the block that expires soonest.
    pub fn lift_soonest(&mut self) -> Option<BlockEntry> {
        let (_, ip) = self.by_expiry.first()?.clone();
        self.remove(&ip)
    }

    fn remove(&mut self, ip: &str) -> Option<BlockEntry> {
        let entry = self.entries.remove(ip)?;
        self.by_expiry.remove(&(entry.expires_at, entry.ip.clone()));
        self.bytes -= weight(&entry);
        Some(entry)
    }

    pub fn get(&self, ip: &str) -> Option<&BlockEntry> {
        self.entries.get(ip)
    }

    pub fn iter(&self) -> impl Iterator<Item = &BlockEntry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

fn weight(entry: &BlockEntry) -> usize {
    BLOCK_OVERHEAD + entry.heap_bytes() + 2 * entry.ip.len()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    /// A block of `ip` until `until` seconds after the tests' epoch (also the blocklist's tests).
    pub(crate) fn entry(ip: &str, until: i64) -> BlockEntry {
        BlockEntry {
            id: format!("id-{ip}-{until}"),
            ip: ip.into(),
            reason: "brute_force".into(),
            expires_at: at(until),
            time: at(0),
            causation_id: "a".into(),
            correlation_id: "c".into(),
        }
    }

    fn ips(lifted: &[BlockEntry]) -> Vec<&str> {
        lifted.iter().map(|e| e.ip.as_str()).collect()
    }

    #[test]
    fn blocks_expire_strictly_after_their_time_and_extend() {
        let mut b = Blocks::new(10);
        b.block(entry("a", 100));
        let (kept, _) = b.block(entry("a", 50));
        assert_eq!(kept.expires_at, at(100), "never shortened");
        assert_eq!(
            kept.id, "id-a-50",
            "the newest entry, with the longer expiry"
        );
        assert_eq!(b.block(entry("a", 200)).0.expires_at, at(200));
        assert_eq!(b.get("a").unwrap().expires_at, at(200));
        assert!(b.expire(at(200)).is_empty());
        assert_eq!(ips(&b.expire(at(201))), ["a"]);
        assert_eq!((b.len(), b.bytes()), (0, 0));
    }

    #[test]
    fn the_cap_lifts_the_soonest_expiring_block() {
        let mut b = Blocks::new(2);
        b.block(entry("a", 100));
        b.block(entry("b", 50));
        let (_, lifted) = b.block(entry("c", 300));
        assert_eq!(ips(&lifted), ["b"]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.lift_soonest().unwrap().ip, "a");
    }

    #[test]
    fn bytes_grow_with_the_entries_strings() {
        let mut b = Blocks::new(10);
        let mut big = entry("a", 100);
        big.correlation_id = "c".repeat(10_000);
        b.block(big);
        assert!(b.bytes() > 10_000);
        b.lift_soonest();
        assert_eq!(b.bytes(), 0);
    }
}
