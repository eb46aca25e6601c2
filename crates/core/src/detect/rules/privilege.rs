//! `privilege_escalation`: a `privilege_change` to a privileged `new_role` (admin, owner,
//! superuser, root by default) scores 80, and 95 when `changed_by` is the user themself.
//! The evidence is the user's privileged changes in the window.

use std::sync::Arc;

use super::{Finding, Judgement, admit, evidence};
use crate::detect::episode::Episode;
use crate::detect::keyed::{KeyedState, Weigh, bounded_key};
use crate::detect::level::Rule;
use crate::detect::observation::{Observation, UserActionData};
use crate::detect::params::Params;
use crate::detect::time::earlier;
use crate::detect::timeline::Timeline;

#[derive(Debug, Clone, Default)]
pub(crate) struct GrantState {
    timeline: Timeline<Arc<str>>,
    pub episode: Episode,
}

impl Weigh for GrantState {
    fn heap_bytes(&self) -> usize {
        self.timeline.heap_bytes()
    }
}

/// Privileged role changes, keyed by the user who got the role.
#[derive(Debug, Clone)]
pub(crate) struct Grants {
    pub keys: KeyedState<GrantState>,
}

impl Grants {
    pub fn new(p: &Params) -> Self {
        Self {
            keys: KeyedState::new(p.max_keys, p.idle_key),
        }
    }

    /// Whether the rule reads this action at all.
    pub fn applies(action: &UserActionData, p: &Params) -> bool {
        action.action == "privilege_change"
            && action
                .new_role
                .as_ref()
                .is_some_and(|role| p.privileged_roles.contains(role))
    }

    pub fn observe(&mut self, obs: &Observation, action: &UserActionData, p: &Params) -> Judgement {
        let user = action.user_id.as_str();
        let key = bounded_key(user, p.max_key_bytes);
        let key = key.as_ref();
        let state = self.keys.touch(key, obs.time);
        admit(&state.timeline, &mut state.episode, obs.time, p)?;
        state
            .timeline
            .insert(obs.time, obs.id.clone(), p.max_events_per_key);
        if let Some(newest) = state.timeline.newest() {
            state
                .timeline
                .forget_through(earlier(newest, p.window_retention()));
        }
        let self_granted = action.changed_by.as_deref() == Some(user);
        let range = state.timeline.window(obs.time, p.window);
        Some(vec![Finding {
            rule: Rule::PrivilegeEscalation,
            score: if self_granted { 95 } else { 80 },
            key: key.to_owned(),
            user_id: Some(user.to_owned()),
            source: obs.ip(),
            count: None,
            window_start: earlier(obs.time, p.window),
            window_end: obs.time,
            evidence: evidence(&state.timeline, range, p.max_evidence, |e| &e.value),
        }])
    }

    /// The episode of a finding's key.
    pub fn episode(&mut self, key: &str) -> Option<&mut Episode> {
        self.keys.get_mut(key).map(|s| &mut s.episode)
    }
}
