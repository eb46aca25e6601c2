//! The ips currently blocked, so each block's tombstone goes out when event time or the wall
//! clock ([`Detector::lift_expired`](super::Detector::lift_expired)) passes its expiry. Bounded: at the cap, the block that expires soonest is lifted early (its tombstone
//! goes out then) rather than left on the compacted blocklist forever.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub(crate) struct Blocks {
    expiry: HashMap<String, DateTime<Utc>>,
    by_expiry: BTreeSet<(DateTime<Utc>, String)>,
    max: usize,
}

impl Blocks {
    pub fn new(max: usize) -> Self {
        Self {
            expiry: HashMap::new(),
            by_expiry: BTreeSet::new(),
            max: max.max(1),
        }
    }

    /// Blocks `ip` until `until` (or later, if it already is); returns the effective expiry and
    /// the ips lifted early to make room.
    pub fn block(&mut self, ip: &str, until: DateTime<Utc>) -> (DateTime<Utc>, Vec<String>) {
        let mut lifted = Vec::new();
        if let Some(&current) = self.expiry.get(ip) {
            if current >= until {
                return (current, lifted);
            }
            self.by_expiry.remove(&(current, ip.to_owned()));
        } else {
            while self.expiry.len() >= self.max {
                match self.by_expiry.pop_first() {
                    Some((_, early)) => {
                        self.expiry.remove(&early);
                        lifted.push(early);
                    }
                    None => break,
                }
            }
        }
        self.expiry.insert(ip.to_owned(), until);
        self.by_expiry.insert((until, ip.to_owned()));
        (until, lifted)
    }

    /// Removes and returns every ip whose block expired before `now`, soonest first.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut expired = Vec::new();
        while let Some((until, _)) = self.by_expiry.first() {
            if *until >= now {
                break;
            }
            if let Some((_, ip)) = self.by_expiry.pop_first() {
                self.expiry.remove(&ip);
                expired.push(ip);
            }
        }
        expired
    }

    pub fn len(&self) -> usize {
        self.expiry.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn blocks_expire_strictly_after_their_time_and_extend() {
        let mut b = Blocks::new(10);
        b.block("a", at(100));
        assert_eq!(b.block("a", at(50)).0, at(100), "never shortened");
        assert_eq!(b.block("a", at(200)).0, at(200));
        assert!(b.expire(at(200)).is_empty());
        assert_eq!(b.expire(at(201)), ["a"]);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn the_cap_lifts_the_soonest_expiring_block() {
        let mut b = Blocks::new(2);
        b.block("a", at(100));
        b.block("b", at(50));
        let (_, lifted) = b.block("c", at(300));
        assert_eq!(lifted, ["b"]);
        assert_eq!(b.len(), 2);
    }
}
