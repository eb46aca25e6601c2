//! `[security]` settings, checked once and turned into the types the rules compute with.

use chrono::TimeDelta;

use crate::config::SecuritySettings;

use super::DetectError;
use super::geo::MAX_SURFACE_DISTANCE_KM;

/// Durations above this are surely typos; capping them keeps time arithmetic from overflowing.
const MAX_DURATION_SECS: u64 = 100 * 366 * 24 * 3600;

/// Validated detection parameters.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub window: TimeDelta,
    pub grace: TimeDelta,
    pub brute_force_above: [u32; 3],
    pub credential_stuffing_min_users: usize,
    pub travel_min_distance_km: f64,
    pub travel_min_speed_kmh: f64,
    /// The longest gap between two logins that can still be impossible travel.
    pub travel_horizon: TimeDelta,
    pub privileged_roles: Vec<String>,
    pub baseline_min_actions: u64,
    pub unusual_volume_above: usize,
    pub baseline_max_known: usize,
    pub baseline_idle: TimeDelta,
    pub block_duration: TimeDelta,
    /// Window state of a key with no event for this long is dropped.
    pub idle_key: TimeDelta,
    pub max_keys: usize,
    pub max_events_per_key: usize,
    pub max_evidence: usize,
    /// How far ahead of the time it was received an event may be dated and still move clocks.
    pub max_clock_skew: TimeDelta,
    /// User ids and agents longer than this are kept as a prefix and a hash.
    pub max_key_bytes: usize,
    /// What one detector's windows and blocks may cost, in bytes.
    pub max_state_bytes: usize,
}

/// The smallest `max_key_bytes`: room for a readable prefix before the hash.
pub(crate) const MIN_KEY_BYTES: usize = 2 * super::keyed::HASH_SUFFIX_LEN;

impl Params {
    pub fn new(s: &SecuritySettings) -> Result<Params, DetectError> {
        let invalid = |reason: &str| Err(DetectError::InvalidSettings(reason.to_owned()));
        if s.window_secs == 0 {
            return invalid("window_secs must be positive");
        }
        if s.grace_secs >= s.window_secs {
            return invalid("grace_secs must be shorter than window_secs");
        }
        let [medium, high, critical] = [
            s.brute_force_medium_above,
            s.brute_force_high_above,
            s.brute_force_critical_above,
        ];
        if !(medium < high && high < critical) {
            return invalid("brute_force thresholds must rise: medium < high < critical");
        }
        if s.credential_stuffing_min_users == 0 {
            return invalid("credential_stuffing_min_users must be positive");
        }
        if !(s.travel_min_speed_kmh.is_finite() && s.travel_min_speed_kmh > 0.0) {
            return invalid("travel_min_speed_kmh must be a positive number");
        }
        if !(s.travel_min_distance_km.is_finite() && s.travel_min_distance_km >= 0.0) {
            return invalid("travel_min_distance_km must be a non-negative number");
        }
        if s.max_keys == 0 || s.max_evidence == 0 || s.baseline_max_known == 0 {
            return invalid("max_keys, max_evidence and baseline_max_known must be positive");
        }
        if s.max_key_bytes < MIN_KEY_BYTES {
            return Err(DetectError::InvalidSettings(format!(
                "max_key_bytes must be at least {MIN_KEY_BYTES}"
            )));
        }
        if s.max_state_bytes == 0 {
            return invalid("max_state_bytes must be positive");
        }
        // Counts saturate at the per-key cap, so every count threshold must fit below it.
        let needed = [
            critical as usize,
            s.credential_stuffing_min_users as usize,
            s.unusual_volume_above as usize,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        if s.max_events_per_key <= needed {
            return invalid(
                "max_events_per_key must exceed every count threshold (brute_force_critical_above, \
                 credential_stuffing_min_users, unusual_volume_above)",
            );
        }
        if s.rebuild_lookback_secs < s.window_secs + s.grace_secs {
            return invalid("rebuild_lookback_secs must be at least window_secs + grace_secs");
        }
        if s.idle_key_secs < s.window_secs + s.grace_secs {
            return invalid("idle_key_secs must be at least window_secs + grace_secs");
        }
        let horizon_hours = MAX_SURFACE_DISTANCE_KM / s.travel_min_speed_kmh;
        let horizon_secs = (horizon_hours * 3600.0)
            .ceil()
            .min(MAX_DURATION_SECS as f64) as u64;
        Ok(Params {
            window: secs(s.window_secs),
            grace: secs(s.grace_secs),
            brute_force_above: [medium, high, critical],
            credential_stuffing_min_users: s.credential_stuffing_min_users as usize,
            travel_min_distance_km: s.travel_min_distance_km,
            travel_min_speed_kmh: s.travel_min_speed_kmh,
            travel_horizon: secs(horizon_secs),
            privileged_roles: s.privileged_roles.clone(),
            baseline_min_actions: u64::from(s.baseline_min_actions),
            unusual_volume_above: s.unusual_volume_above as usize,
            baseline_max_known: s.baseline_max_known,
            baseline_idle: secs(s.baseline_idle_secs),
            block_duration: secs(s.block_duration_secs),
            idle_key: secs(s.idle_key_secs),
            max_keys: s.max_keys,
            max_events_per_key: s.max_events_per_key,
            max_evidence: s.max_evidence,
            max_clock_skew: secs(s.max_clock_skew_secs),
            max_key_bytes: s.max_key_bytes,
            max_state_bytes: s.max_state_bytes,
        })
    }

    /// How long a key's window state must outlive its newest event: a later event may still
    /// arrive up to `grace` behind it, and sees `window` back from its own time.
    pub fn window_retention(&self) -> TimeDelta {
        self.window + self.grace
    }
}

impl SecuritySettings {
    /// Checks what the types cannot (e.g. the grace period is shorter than the window), so a
    /// configuration loader can reject bad settings up front.
    pub fn validate(&self) -> Result<(), DetectError> {
        Params::new(self).map(|_| ())
    }
}

fn secs(s: u64) -> TimeDelta {
    TimeDelta::seconds(s.min(MAX_DURATION_SECS) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let p = Params::new(&SecuritySettings::default()).unwrap();
        assert_eq!(p.window, TimeDelta::minutes(10));
        assert_eq!(
            p.max_clock_skew,
            TimeDelta::minutes(5),
            "the documented default (docs/security-rules.md)"
        );
        // 20015 km at 1000 km/h: a little over 20 hours.
        assert!(p.travel_horizon > TimeDelta::hours(20) && p.travel_horizon < TimeDelta::hours(21));
    }

    #[test]
    fn inconsistent_settings_are_rejected() {
        let bad = [
            SecuritySettings {
                grace_secs: 600,
                ..Default::default()
            },
            SecuritySettings {
                window_secs: 0,
                grace_secs: 0,
                ..Default::default()
            },
            SecuritySettings {
                brute_force_high_above: 5,
                ..Default::default()
            },
            SecuritySettings {
                travel_min_speed_kmh: 0.0,
                ..Default::default()
            },
            SecuritySettings {
                max_events_per_key: 20,
                ..Default::default()
            },
            SecuritySettings {
                max_keys: 0,
                ..Default::default()
            },
            SecuritySettings {
                rebuild_lookback_secs: 700,
                ..Default::default()
            },
            SecuritySettings {
                idle_key_secs: 700,
                ..Default::default()
            },
            SecuritySettings {
                max_key_bytes: 40,
                ..Default::default()
            },
            SecuritySettings {
                max_state_bytes: 0,
                ..Default::default()
            },
        ];
        for s in bad {
            assert!(Params::new(&s).is_err(), "{s:?}");
        }
    }
}
