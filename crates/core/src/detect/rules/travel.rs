//! `impossible_travel`: two successive successful logins of a user, with `context.geo`, further
//! apart than 50 km and too far for 1000 km/h in the time between them → 90.
//!
//! Distance is great-circle (haversine, the `geo` module) over a spherical Earth of mean radius
//! 6371.0088 km. Two logins at the same instant in different places need infinite speed:
//! impossible. A user's logins are remembered for as long as any could still be impossible
//! (half the Earth's circumference at the speed limit, ~20 h by default), at most [`HISTORY`]
//! of them. A late login is checked against both neighbours it lands between.

use std::sync::Arc;

use super::{Finding, Judgement, admit};
use crate::detect::episode::Episode;
use crate::detect::geo::haversine_km;
use crate::detect::keyed::{KeyedState, Weigh, bounded_key};
use crate::detect::level::Rule;
use crate::detect::observation::{Geo, Observation};
use crate::detect::params::Params;
use crate::detect::time::earlier;
use crate::detect::timeline::{Stamped, Timeline};

/// Logins remembered per user: the previous one is all the rule needs, a few more let late
/// logins find their neighbours.
const HISTORY: usize = 16;

#[derive(Debug, Clone)]
struct Login {
    id: Arc<str>,
    geo: Geo,
}

impl Weigh for Login {
    fn heap_bytes(&self) -> usize {
        self.id.heap_bytes()
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct LoginState {
    timeline: Timeline<Login>,
    pub episode: Episode,
}

impl Weigh for LoginState {
    fn heap_bytes(&self) -> usize {
        self.timeline.heap_bytes()
    }
}

/// Successful logins with a location, keyed by user id.
#[derive(Debug, Clone)]
pub(crate) struct Logins {
    pub keys: KeyedState<LoginState>,
}

impl Logins {
    pub fn new(p: &Params) -> Self {
        Self {
            keys: KeyedState::new(p.max_keys, p.travel_horizon.max(p.idle_key) + p.grace),
        }
    }

    pub fn observe(&mut self, obs: &Observation, user: &str, geo: Geo, p: &Params) -> Judgement {
        let key = bounded_key(user, p.max_key_bytes);
        let key = key.as_ref();
        let state = self.keys.touch(key, obs.time);
        admit(&state.timeline, &mut state.episode, obs.time, p)?;
        let at = state.timeline.insert(
            obs.time,
            Login {
                id: obs.id.clone(),
                geo,
            },
            HISTORY,
        );
        let timeline = &state.timeline;
        let pairs = [at.checked_sub(1).map(|prev| (prev, at)), Some((at, at + 1))];
        let finding = pairs.into_iter().flatten().find_map(|(a, b)| {
            let (a, b) = (timeline.get(a)?, timeline.get(b)?);
            impossible(a, b, p).then(|| Finding {
                rule: Rule::ImpossibleTravel,
                score: 90,
                key: key.to_owned(),
                user_id: Some(user.to_owned()),
                source: obs.ip(),
                count: None,
                window_start: a.time,
                window_end: b.time,
                evidence: vec![a.value.id.clone(), b.value.id.clone()],
            })
        });
        if let Some(newest) = state.timeline.newest() {
            state
                .timeline
                .forget_through(earlier(newest, p.travel_horizon + p.grace));
        }
        Some(finding.into_iter().collect())
    }

    /// The episode of a finding's key.
    pub fn episode(&mut self, key: &str) -> Option<&mut Episode> {
        self.keys.get_mut(key).map(|s| &mut s.episode)
    }
}

fn impossible(a: &Stamped<Login>, b: &Stamped<Login>, p: &Params) -> bool {
    let km = haversine_km(a.value.geo, b.value.geo);
    if km <= p.travel_min_distance_km {
        return false;
    }
    let hours = (b.time - a.time).num_milliseconds() as f64 / 3_600_000.0;
    hours <= 0.0 || km / hours > p.travel_min_speed_kmh
}
