//! `brute_force` and `credential_stuffing`: failed logins per source ip.
//!
//! Keyed by the canonical source ([`source_key`](crate::detect::ip::source_key)): an IPv4
//! address, or an IPv6 address's /64. A failure whose ip is unknown or no address is not
//! counted here (it has no source to count under).
//!
//! brute_force scores the number n of failures in the window (n > 20 → 95, n > 10 → 80,
//! n > 5 → 50, else 10; thresholds configurable); credential_stuffing scores 85 when at least 10
//! distinct known user ids failed from the ip in the window (`unknown` is not a user id).
//!
//! A late event (within grace) changes the windows of every later event it falls into, so it
//! is judged at the worst of those windows: the window ends tried are the distinct times in
//! [t, t + window), and the earliest end with the highest count wins.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Finding, Judgement, admit, evidence};
use crate::detect::episode::Episode;
use crate::detect::keyed::{KeyedState, Weigh, bounded_key};
use crate::detect::level::Rule;
use crate::detect::observation::Observation;
use crate::detect::params::Params;
use crate::detect::time::{earlier, later};
use crate::detect::timeline::{Arrival, Timeline};

#[derive(Debug, Clone)]
struct Failure {
    id: Arc<str>,
    user: Option<Arc<str>>,
}

impl Weigh for Failure {
    fn heap_bytes(&self) -> usize {
        self.id.heap_bytes() + self.user.heap_bytes()
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct FailureState {
    timeline: Timeline<Failure>,
    pub episode: Episode,
}

impl Weigh for FailureState {
    fn heap_bytes(&self) -> usize {
        self.timeline.heap_bytes()
    }
}

/// Failed logins, keyed by source ip.
#[derive(Debug, Clone)]
pub(crate) struct FailedLogins {
    pub keys: KeyedState<FailureState>,
}

impl FailedLogins {
    pub fn new(p: &Params) -> Self {
        Self {
            keys: KeyedState::new(p.max_keys, p.idle_key),
        }
    }

    /// Judges a failure from `source` (its address), counted under `ip` (its source key).
    pub fn observe(
        &mut self,
        obs: &Observation,
        source: IpAddr,
        ip: &str,
        p: &Params,
    ) -> Judgement {
        let state = self.keys.touch(ip, obs.time);
        let arrival = admit(&state.timeline, &mut state.episode, obs.time, p)?;
        // Distinct users are counted by a bounded key: an attacker's megabyte-long user ids
        // must not each cost a megabyte.
        let user = obs
            .known_user()
            .map(|u| Arc::from(bounded_key(u, p.max_key_bytes)));
        state.timeline.insert(
            obs.time,
            Failure {
                id: obs.id.clone(),
                user,
            },
            p.max_events_per_key,
        );
        if let Some(newest) = state.timeline.newest() {
            state
                .timeline
                .forget_through(earlier(newest, p.window_retention()));
        }
        let anchors = match arrival {
            Arrival::Late => state.timeline.anchors(obs.time, later(obs.time, p.window)),
            _ => vec![obs.time],
        };

        let timeline = &state.timeline;
        let finding = |rule, score, count: usize, end: DateTime<Utc>| {
            let range = timeline.window(end, p.window);
            Finding {
                rule,
                score,
                key: ip.to_owned(),
                user_id: obs.known_user().map(str::to_owned),
                source: Some(source),
                count: Some(count as u64),
                window_start: earlier(end, p.window),
                window_end: end,
                evidence: evidence(timeline, range, p.max_evidence, |e| &e.value.id),
            }
        };

        let mut findings = Vec::with_capacity(2);
        let (failures, end) = worst(&anchors, |end| timeline.window(end, p.window).len());
        findings.push(finding(
            Rule::BruteForce,
            brute_force_score(failures, p),
            failures,
            end,
        ));

        let (users, end) = worst(&anchors, |end| {
            let range = timeline.window(end, p.window);
            timeline
                .range(range)
                .filter_map(|e| e.value.user.as_deref())
                .collect::<HashSet<_>>()
                .len()
        });
        if users >= p.credential_stuffing_min_users {
            findings.push(finding(Rule::CredentialStuffing, 85, users, end));
        }
        Some(findings)
    }

    pub fn episode(&mut self, ip: &str) -> Option<&mut Episode> {
        self.keys.get_mut(ip).map(|s| &mut s.episode)
    }
}

fn brute_force_score(failures: usize, p: &Params) -> u8 {
    let [medium, high, critical] = p.brute_force_above.map(|n| n as usize);
    match failures {
        n if n > critical => 95,
        n if n > high => 80,
        n if n > medium => 50,
        _ => 10,
    }
}

/// The highest measure over the window ends, and the earliest end that reaches it.
fn worst(
    ends: &[DateTime<Utc>],
    measure: impl Fn(DateTime<Utc>) -> usize,
) -> (usize, DateTime<Utc>) {
    let mut best = (0, ends.first().copied().unwrap_or(DateTime::<Utc>::MIN_UTC));
    for &end in ends {
        let m = measure(end);
        if m > best.0 {
            best = (m, end);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecuritySettings;

    #[test]
    fn brute_force_thresholds() {
        let p = Params::new(&SecuritySettings::default()).unwrap();
        let scores: Vec<u8> = [0, 5, 6, 10, 11, 20, 21]
            .iter()
            .map(|&n| brute_force_score(n, &p))
            .collect();
        assert_eq!(scores, [10, 10, 50, 50, 80, 80, 95]);
    }
}
