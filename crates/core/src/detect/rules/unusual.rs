//! `unusual_access`: auditflow's own baseline rule over user actions. Never scores above 60.
//!
//! Each user has a baseline: the ip addresses and user agents their actions came from (the
//! `baseline_max_known` most recently seen of each) and how many actions it was learned from.
//! Once the baseline is established (`baseline_min_actions` actions, 20 by default), an action
//! is scored on:
//! - novelty: from an ip *and* a user agent never seen before → 50 (medium); only one of the
//!   two new → 25 (low, remembered but no alert). An absent ip or agent is never new.
//! - volume: more than `unusual_volume_above` actions (200 by default) in the window → 45
//!   (medium), whether or not the baseline is established.
//! - both novelty and volume → the higher plus 10, capped at 60.
//!
//! Only successful actions are read (failed logins are the other rules' business, and must not
//! teach a victim's baseline the attacker's ip). The action is learned into the baseline after
//! it is judged, so only the first action from a new place can be novel. Users `unknown` and
//! `system` have no baseline (they are not one person). A baseline is forgotten after `baseline_idle_secs` without actions; after a restart
//! it is rebuilt from the replayed window only, so it must be re-established before novelty
//! scores again (volume works at once) — the rule errs on the side of silence.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Finding, Judgement, admit, evidence};
use crate::detect::episode::Episode;
use crate::detect::keyed::{KeyedState, Weigh, bounded_key};
use crate::detect::level::Rule;
use crate::detect::observation::{Observation, UserActionData};
use crate::detect::params::Params;
use crate::detect::time::earlier;
use crate::detect::timeline::Timeline;

/// The rule's score ceiling (docs/security-rules.md: never above 60).
const MAX_SCORE: u8 = 60;

#[derive(Debug, Clone, Default)]
pub(crate) struct Baseline {
    actions: Timeline<Arc<str>>,
    known_ips: Known,
    known_agents: Known,
    learned: u64,
    pub episode: Episode,
}

impl Weigh for Baseline {
    fn heap_bytes(&self) -> usize {
        self.actions.heap_bytes() + self.known_ips.heap_bytes() + self.known_agents.heap_bytes()
    }
}

/// A bounded set of values, each with when it was last seen; the stalest goes first.
#[derive(Debug, Clone, Default)]
struct Known(Vec<(String, DateTime<Utc>)>);

impl Weigh for Known {
    fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(String, DateTime<Utc>)>();
        self.0.iter().map(|(v, _)| entry + v.heap_bytes()).sum()
    }
}

impl Known {
    fn contains(&self, value: &str) -> bool {
        self.0.iter().any(|(v, _)| v == value)
    }

    fn learn(&mut self, value: &str, time: DateTime<Utc>, cap: usize) {
        if let Some((_, seen)) = self.0.iter_mut().find(|(v, _)| v == value) {
            *seen = (*seen).max(time);
            return;
        }
        if self.0.len() >= cap
            && let Some(stalest) = (0..self.0.len()).min_by_key(|&i| self.0[i].1)
        {
            self.0.swap_remove(stalest);
        }
        self.0.push((value.to_owned(), time));
    }
}

/// Per-user baselines of user actions.
#[derive(Debug, Clone)]
pub(crate) struct Baselines {
    pub keys: KeyedState<Baseline>,
}

impl Baselines {
    pub fn new(p: &Params) -> Self {
        Self {
            keys: KeyedState::new(p.max_keys, p.baseline_idle.max(p.window_retention())),
        }
    }

    /// Whether the rule reads this action at all: successful actions of a person. (Failures are
    /// what brute_force and credential_stuffing read; learning from them would let an attacker's
    /// failed attempts teach the victim's baseline the attacker's ip.)
    pub fn applies(action: &UserActionData) -> bool {
        action.outcome == "success" && !matches!(action.user_id.as_str(), "" | "unknown" | "system")
    }

    pub fn observe(&mut self, obs: &Observation, action: &UserActionData, p: &Params) -> Judgement {
        let user = action.user_id.as_str();
        let key = bounded_key(user, p.max_key_bytes);
        let key = key.as_ref();
        let b = self.keys.touch(key, obs.time);
        admit(&b.actions, &mut b.episode, obs.time, p)?;
        let established = b.learned >= p.baseline_min_actions;
        // Addresses in canonical form; agents (attacker-chosen text) by a bounded key.
        let ip = action.ip_address.map(|ip| ip.to_string());
        let agent = action
            .user_agent
            .as_deref()
            .map(|ua| bounded_key(ua, p.max_key_bytes));
        let new_ip = ip.as_deref().is_some_and(|ip| !b.known_ips.contains(ip));
        let new_agent = agent
            .as_deref()
            .is_some_and(|ua| !b.known_agents.contains(ua));
        let novelty = match (established, new_ip, new_agent) {
            (true, true, true) => 50,
            (true, true, false) | (true, false, true) => 25,
            _ => 0,
        };

        b.actions
            .insert(obs.time, obs.id.clone(), p.max_events_per_key);
        if let Some(newest) = b.actions.newest() {
            b.actions
                .forget_through(earlier(newest, p.window_retention()));
        }
        let range = b.actions.window(obs.time, p.window);
        let volume_count = range.len();
        let volume = if volume_count > p.unusual_volume_above {
            45
        } else {
            0
        };
        let score = match (novelty, volume) {
            (0, v) | (v, 0) => v,
            (n, v) => (n.max(v) + 10).min(MAX_SCORE),
        };

        if let Some(ip) = &ip {
            b.known_ips.learn(ip, obs.time, p.baseline_max_known);
        }
        if let Some(agent) = &agent {
            b.known_agents.learn(agent, obs.time, p.baseline_max_known);
        }
        b.learned = b.learned.saturating_add(1);

        if score == 0 {
            return Some(Vec::new());
        }
        let evidence = if volume > 0 {
            evidence(&b.actions, range, p.max_evidence, |e| &e.value)
        } else {
            vec![obs.id.clone()]
        };
        Some(vec![Finding {
            rule: Rule::UnusualAccess,
            score: score.min(MAX_SCORE),
            key: key.to_owned(),
            user_id: Some(user.to_owned()),
            source: action.ip_address,
            count: Some(volume_count as u64),
            window_start: earlier(obs.time, p.window),
            window_end: obs.time,
            evidence,
        }])
    }

    /// The episode of a finding's key.
    pub fn episode(&mut self, key: &str) -> Option<&mut Episode> {
        self.keys.get_mut(key).map(|s| &mut s.episode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_are_bounded_and_forget_the_stalest() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let mut k = Known::default();
        k.learn("a", t(1), 2);
        k.learn("b", t(2), 2);
        k.learn("a", t(3), 2);
        k.learn("c", t(4), 2);
        assert!(k.contains("a") && k.contains("c") && !k.contains("b"));
    }
}
