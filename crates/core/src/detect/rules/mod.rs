//! The rule families. Each keeps its own per-key state and turns an observation into
//! [`Finding`]s: a rule's score with the window and evidence behind it.
//!
//! Families, not rules, own state because rules over the same input share it:
//! `brute_force` and `credential_stuffing` both read one ip's failed logins.

pub(crate) mod failures;
pub(crate) mod privilege;
pub(crate) mod travel;
pub(crate) mod unusual;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::episode::Episode;
use super::level::Rule;
use super::params::Params;
use super::timeline::{Arrival, Stamped, Timeline};

/// One rule's verdict on one event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub rule: Rule,
    pub score: u8,
    /// What the rule is keyed by: an ip or a user id. Alerts are keyed by it too.
    pub key: String,
    /// The raising event's user id, as it came (alerts and `disable_account` name it).
    pub user_id: Option<String>,
    /// The raising event's ip address.
    pub source: Option<IpAddr>,
    pub count: Option<u64>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub evidence: Vec<Arc<str>>,
}

/// A family's answer: `None` when the event arrived beyond the grace period and was not judged.
pub(crate) type Judgement = Option<Vec<Finding>>;

/// Where an event at `time` falls in its key's timeline, or `None` when it is too late to judge.
/// An event that opens an episode (the key's window was empty) resets its alerted levels.
pub(crate) fn admit<E>(
    timeline: &Timeline<E>,
    episode: &mut Episode,
    time: DateTime<Utc>,
    p: &Params,
) -> Option<Arrival> {
    let arrival = timeline.arrival(time, p.window, p.grace);
    match arrival {
        Arrival::TooLate => return None,
        Arrival::InOrder {
            opens_episode: true,
        } => episode.reset(),
        Arrival::InOrder { .. } | Arrival::Late => {}
    }
    Some(arrival)
}

/// The ids of the newest `max` entries of `range`, oldest first.
pub(crate) fn evidence<E>(
    timeline: &Timeline<E>,
    range: std::ops::Range<usize>,
    max: usize,
    id: impl Fn(&Stamped<E>) -> &Arc<str>,
) -> Vec<Arc<str>> {
    let mut ids: Vec<Arc<str>> = timeline
        .range(range)
        .rev()
        .take(max)
        .map(|e| id(e).clone())
        .collect();
    ids.reverse();
    ids
}
