//! One blocklist for many detectors: a block is lifted only when no longer block of that ip
//! stands anywhere (docs/security-rules.md).
//!
//! Each detector holds the blocks its own input partition raised, but one ip can be blocked
//! from several partitions (failed logins on the security-event topic, impossible travel or a
//! privilege escalation on user-action partitions), owned by several monitor instances. The
//! compacted blocklist topic is the truth they share: a service keeps a [`BlocklistView`] of
//! it (its latest value per ip, read `read_committed`) and settles every blocklist output of a
//! detector against that view and its other detectors ([`settle`]):
//!
//! - an upsert carries the longest expiry standing for the ip, so it never shortens a block;
//! - a tombstone goes out only when no block of the ip stands that expires later than the one
//!   lifted (and later than now).
//!
//! Views lag (by the time a transaction takes to commit and be read), so two instances can
//! decide on stale views: one writes a shorter upsert over a longer one, or a tombstone while
//! another instance still holds a longer block. Each instance repairs that when it sees such a
//! record for an ip it holds a longer block of ([`restore`]): it writes its own entry again. So
//! the topic converges on the longest standing block, and an early tombstone lasts at most
//! until the holder's next tick after reading it (about a second plus the view's lag).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::output::{BlockEntry, Output};

/// Keys longer than this are not ips (an IPv6 /64 in CIDR notation is at most 43 bytes): a
/// record with one is not ours, and is not remembered.
const MAX_IP_KEY_BYTES: usize = 64;

/// The latest value per ip of the blocklist topic, as read: when each standing block expires.
/// Which keys changed since [`BlocklistView::take_changed`] was last called, and whether the
/// topic has been read to its end once ([`BlocklistView::is_loaded`]).
#[derive(Debug, Clone)]
pub struct BlocklistView {
    expiry: HashMap<String, DateTime<Utc>>,
    changed: HashSet<String>,
    loaded: bool,
    max_entries: usize,
}

impl BlocklistView {
    /// A view remembering at most `max_entries` ips (beyond, the soonest-expiring are dropped:
    /// the topic holds what monitors wrote, but anyone with write access could flood it).
    pub fn new(max_entries: usize) -> BlocklistView {
        BlocklistView {
            expiry: HashMap::new(),
            changed: HashSet::new(),
            loaded: false,
            max_entries: max_entries.max(1),
        }
    }

    /// Applies one record of the blocklist topic: an upsert (a blocklist entry CloudEvent,
    /// whose `data.expires_at` counts) or a tombstone (`None`). A value that is not an entry
    /// removes the ip, as the compacted topic's latest value no longer blocks it either.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(ip) = std::str::from_utf8(key) else {
            return;
        };
        if ip.len() > MAX_IP_KEY_BYTES {
            return;
        }
        match value.and_then(expires_at) {
            Some(expires_at) => {
                if !self.expiry.contains_key(ip) && self.expiry.len() >= self.max_entries {
                    let soonest = self
                        .expiry
                        .iter()
                        .min_by_key(|(_, t)| **t)
                        .map(|(k, _)| k.clone());
                    if let Some(soonest) = soonest {
                        self.expiry.remove(&soonest);
                    }
                }
                self.expiry.insert(ip.to_owned(), expires_at);
            }
            None => {
                self.expiry.remove(ip);
            }
        }
        if self.changed.len() < self.max_entries {
            self.changed.insert(ip.to_owned());
        }
    }

    /// The topic has been read to the end it had when reading began.
    pub fn mark_loaded(&mut self) {
        self.loaded = true;
    }

    /// Whether the view has caught up with the topic once, so an absent ip really has no
    /// block elsewhere (before that, settling must not tombstone on the view's word).
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// When the ip's standing block expires, as last read.
    pub fn expiry(&self, ip: &str) -> Option<DateTime<Utc>> {
        self.expiry.get(ip).copied()
    }

    /// The ips with a record since the last call.
    pub fn take_changed(&mut self) -> HashSet<String> {
        std::mem::take(&mut self.changed)
    }

    /// How many ips have a standing block in the view.
    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    /// Whether no ip has a standing block in the view.
    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

fn expires_at(value: &[u8]) -> Option<DateTime<Utc>> {
    let event: Value = serde_json::from_slice(value).ok()?;
    event.get("data")?.get("expires_at")?.as_str()?.parse().ok()
}

/// Settles a detector's outputs against the blocks standing elsewhere: `longest(ip)` is the
/// latest expiry of any other block of the ip that is known (other detectors, the view). An
/// upsert carries the later of its own expiry and that one; a tombstone is dropped when that
/// one is later than both the lifted block's expiry and `now`. Alerts and actions pass as
/// they are: they are the decisions, the blocklist is their materialised state.
pub fn settle(
    outputs: Vec<Output>,
    now: DateTime<Utc>,
    longest: impl Fn(&str) -> Option<DateTime<Utc>>,
) -> Vec<Output> {
    outputs
        .into_iter()
        .filter_map(|output| match output {
            Output::Block(mut entry) => {
                if let Some(standing) = longest(&entry.ip) {
                    entry.expires_at = entry.expires_at.max(standing);
                }
                Some(Output::Block(entry))
            }
            Output::Unblock { ip, expires_at } => {
                let stands = longest(&ip).is_some_and(|t| t > expires_at && t > now);
                (!stands).then_some(Output::Unblock { ip, expires_at })
            }
            other => Some(other),
        })
        .collect()
}

/// The upserts that put this service's standing blocks back where the view shows a shorter
/// block or none: for each ip in `changed` (every held ip when `None`), the longest of `held`
/// when it is still standing at `now` and expires later than the view says. A service passes
/// the ips the view read records of: a block it wrote itself and the view has not read back
/// yet is not missing.
pub fn restore<'a>(
    held: impl IntoIterator<Item = &'a BlockEntry>,
    view: &BlocklistView,
    changed: Option<&HashSet<String>>,
    now: DateTime<Utc>,
) -> Vec<Output> {
    let mut longest: HashMap<&str, &BlockEntry> = HashMap::new();
    for entry in held {
        if entry.expires_at <= now || changed.is_some_and(|c| !c.contains(&entry.ip)) {
            continue;
        }
        let slot = longest.entry(entry.ip.as_str()).or_insert(entry);
        if entry.expires_at > slot.expires_at {
            *slot = entry;
        }
    }
    let mut out: Vec<Output> = longest
        .into_values()
        .filter(|entry| view.expiry(&entry.ip).is_none_or(|t| t < entry.expires_at))
        .map(|entry| Output::Block(entry.clone()))
        .collect();
    // A stable order, so one tick's records do not depend on hash order.
    out.sort_by(|a, b| a.key().cmp(b.key()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::blocks::tests::{at, entry};

    fn upsert(until: i64) -> Vec<u8> {
        Output::Block(entry("ip", until))
            .to_cloudevent()
            .unwrap()
            .to_string()
            .into_bytes()
    }

    #[test]
    fn the_view_follows_upserts_and_tombstones() {
        let mut v = BlocklistView::new(10);
        v.apply(b"ip", Some(&upsert(100)));
        assert_eq!(v.expiry("ip"), Some(at(100)));
        v.apply(b"ip", Some(&upsert(50)));
        assert_eq!(
            v.expiry("ip"),
            Some(at(50)),
            "the latest value, as compaction keeps"
        );
        v.apply(b"ip", None);
        assert_eq!(v.expiry("ip"), None);
        v.apply(b"ip", Some(b"not an entry"));
        assert_eq!(v.expiry("ip"), None);
        v.apply(&[b'x'; 100], Some(&upsert(100)));
        assert!(v.is_empty(), "not an ip");
        assert_eq!(v.take_changed(), HashSet::from(["ip".to_owned()]));
        assert!(v.take_changed().is_empty());
        assert!(!v.is_loaded());
        v.mark_loaded();
        assert!(v.is_loaded());
    }

    #[test]
    fn the_view_is_bounded() {
        let mut v = BlocklistView::new(2);
        v.apply(b"a", Some(&upsert(100)));
        v.apply(b"b", Some(&upsert(50)));
        v.apply(b"c", Some(&upsert(200)));
        assert_eq!(v.len(), 2);
        assert_eq!(v.expiry("b"), None, "the soonest-expiring went");
    }

    #[test]
    fn an_upsert_never_shortens_a_standing_longer_block() {
        let out = settle(vec![Output::Block(entry("ip", 100))], at(0), |_| {
            Some(at(300))
        });
        let [Output::Block(e)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(e.expires_at, at(300));
        // A shorter standing block leaves it as it is.
        let out = settle(vec![Output::Block(entry("ip", 100))], at(0), |_| {
            Some(at(50))
        });
        assert_eq!(out, [Output::Block(entry("ip", 100))]);
    }

    #[test]
    fn a_tombstone_goes_out_only_when_no_longer_block_stands() {
        let lift = |now: i64, standing: Option<i64>| {
            settle(
                vec![Output::Unblock {
                    ip: "ip".into(),
                    expires_at: at(100),
                }],
                at(now),
                |_| standing.map(at),
            )
            .len()
        };
        assert_eq!(lift(101, None), 1, "nothing else stands");
        assert_eq!(
            lift(101, Some(100)),
            1,
            "its own entry, as the view shows it"
        );
        assert_eq!(lift(101, Some(300)), 0, "a longer block stands");
        assert_eq!(lift(400, Some(300)), 1, "that one has expired as well");
        let alert_and_action = vec![Output::Unblock {
            ip: "other".into(),
            expires_at: at(100),
        }];
        assert_eq!(settle(alert_and_action, at(101), |_| None).len(), 1);
    }

    #[test]
    fn held_blocks_are_restored_where_the_view_shows_less() {
        let held = [
            entry("a", 300),
            entry("a", 200),
            entry("b", 300),
            entry("c", 50),
        ];
        let mut view = BlocklistView::new(10);
        let out = restore(&held, &view, None, at(100));
        let keys: Vec<(&str, DateTime<Utc>)> = out
            .iter()
            .map(|o| match o {
                Output::Block(e) => (e.ip.as_str(), e.expires_at),
                other => panic!("{other:?}"),
            })
            .collect();
        // c expired already: nothing to restore.
        assert_eq!(keys, [("a", at(300)), ("b", at(300))]);

        for ip in ["a", "b"] {
            view.apply(ip.as_bytes(), Some(&upsert(300)));
        }
        assert!(
            restore(&held, &view, None, at(100)).is_empty(),
            "in agreement"
        );
        view.apply(b"a", None);
        let changed = view.take_changed();
        assert_eq!(restore(&held, &view, Some(&changed), at(100)).len(), 1);
        assert!(restore(&held, &view, Some(&HashSet::new()), at(100)).is_empty());
    }
}
