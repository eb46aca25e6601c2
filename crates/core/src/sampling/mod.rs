//! Sampling (docs/topics-and-records.md): dropping a configured share of routine, low-risk user
//! actions.
//!
//! The keep decision hashes the input's correlation id, never a random number: every instance
//! and every replay decides alike, and a causal chain (one correlation id) is kept or dropped
//! as a whole. Comparing the hash with `rate × 2⁶⁴` makes the decision monotone in the rate.
//! What an audit must keep — failures, risk medium or higher, security events, data access,
//! security and financial retention — is never sampled out, whatever the rate. What is
//! sampled out is summarised durably by the classifier service ([`summary`]).

pub mod summary;

use sha2::{Digest, Sha256};

use crate::audit_record::{AuditRecord, Outcome, RiskLevel};
use crate::config::SamplingRates;
use crate::error::ConfigError;
use crate::pattern::PatternTable;
use crate::retention::RetentionClass;

/// Configured rates by type pattern; unmatched types have rate 1.
#[derive(Debug, Clone, Default)]
pub struct Sampler {
    rates: PatternTable<f64>,
}

impl Sampler {
    /// Validates and compiles `[sampling]`; errors name the key.
    pub fn new(rates: &SamplingRates) -> Result<Self, ConfigError> {
        Ok(Self {
            rates: rates.compile()?,
        })
    }

    /// The rate for input type `ty` (the most specific pattern's, else 1).
    pub fn rate(&self, ty: &str) -> f64 {
        self.rates.get(ty).copied().unwrap_or(1.0)
    }

    /// As [`rate`](Self::rate), for a type already split on `.`.
    pub fn rate_of_segments(&self, ty: &[&str]) -> f64 {
        self.rates
            .lookup_segments(ty)
            .map_or(1.0, |(_, rate)| *rate)
    }
}

/// Whether a record may be sampled out at all: only a successful user action of low (or no)
/// risk whose retention is neither `security` nor `financial`.
pub fn may_sample_out(record: &AuditRecord, retention: RetentionClass) -> bool {
    match record {
        AuditRecord::UserAction(action) => {
            action.outcome == Outcome::Success
                && action
                    .risk_level
                    .is_none_or(|risk| risk < RiskLevel::Medium)
                && !matches!(
                    retention,
                    RetentionClass::Security | RetentionClass::Financial
                )
        }
        AuditRecord::SecurityEvent(_) | AuditRecord::DataAccess(_) => false,
    }
}

/// Whether the chain with `correlation_id` is kept at `rate`. Rate 1 (or more) keeps all,
/// rate 0 (or less, or NaN) keeps none; kept at `r` implies kept at every rate above `r`.
pub fn keep(correlation_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate.is_nan() || rate <= 0.0 {
        return false;
    }
    // `as` saturates, and both the product and the cast are monotone in the rate.
    let threshold = (rate * 18_446_744_073_709_551_616.0) as u64;
    bucket(correlation_id) < threshold
}

/// A stable, uniform 64-bit hash (SHA-256's first eight bytes): the same on every platform
/// and in every version, unlike `std`'s hasher.
fn bucket(correlation_id: &str) -> u64 {
    let digest = Sha256::digest(correlation_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_record::{SecurityEvent, Severity, UserAction};
    use proptest::prelude::*;

    fn action(outcome: Outcome, risk: Option<RiskLevel>) -> AuditRecord {
        AuditRecord::UserAction(UserAction {
            risk_level: risk,
            ..UserAction::new("u", "a", outcome)
        })
    }

    #[test]
    fn only_routine_user_actions_may_be_sampled_out() {
        let general = RetentionClass::General;
        assert!(may_sample_out(
            &action(Outcome::Success, Some(RiskLevel::Low)),
            general
        ));
        assert!(may_sample_out(&action(Outcome::Success, None), general));
        assert!(may_sample_out(
            &action(Outcome::Success, Some(RiskLevel::Low)),
            RetentionClass::Marketing
        ));
        assert!(!may_sample_out(
            &action(Outcome::Failure, Some(RiskLevel::Low)),
            general
        ));
        assert!(!may_sample_out(
            &action(Outcome::Partial, Some(RiskLevel::Low)),
            general
        ));
        assert!(!may_sample_out(
            &action(Outcome::Success, Some(RiskLevel::Medium)),
            general
        ));
        assert!(!may_sample_out(
            &action(Outcome::Success, Some(RiskLevel::Critical)),
            general
        ));
        let low = action(Outcome::Success, Some(RiskLevel::Low));
        assert!(!may_sample_out(&low, RetentionClass::Security));
        assert!(!may_sample_out(&low, RetentionClass::Financial));
        let event =
            AuditRecord::SecurityEvent(SecurityEvent::new("e", Severity::Info, Default::default()));
        assert!(!may_sample_out(&event, general));
    }

    #[test]
    fn rates_come_from_the_most_specific_pattern_else_one() {
        let rates = SamplingRates::from_pairs([("user.**", 0.5), ("user.page.view", 0.1)]);
        let sampler = Sampler::new(&rates).unwrap();
        assert_eq!(sampler.rate("user.page.view"), 0.1);
        assert_eq!(sampler.rate("user.search"), 0.5);
        assert_eq!(sampler.rate("system.backup"), 1.0);
    }

    #[test]
    fn extreme_rates() {
        for id in ["a", "b", "corr-123", ""] {
            assert!(keep(id, 1.0));
            assert!(!keep(id, 0.0));
            assert!(!keep(id, f64::NAN));
        }
    }

    #[test]
    fn the_kept_share_is_close_to_the_rate() {
        let kept = (0..10_000)
            .filter(|i| keep(&format!("corr-{i}"), 0.1))
            .count();
        assert!((900..1100).contains(&kept), "{kept}");
    }

    /// Pinned decisions, computed outside this code (`printf %s <id> | sha256sum`, the first
    /// 16 hex digits over 2⁶⁴): every process, instance and version must decide these alike,
    /// or a replay keeps what a first run dropped and a chain is split across versions.
    #[test]
    fn known_ids_are_kept_and_dropped_at_known_rates() {
        // (correlation id, its bucket, share of 2⁶⁴ ≈ the rate it is kept from)
        let pinned: [(&str, u64, f64); 5] = [
            ("corr-1", 0x1242_3b97_6fe4_078b, 0.071_323),
            ("corr-2", 0x7f4e_1a13_f6e9_1c1a, 0.497_285),
            ("corr-3", 0x0091_a4de_4cbf_1831, 0.002_222),
            ("chain-a", 0x5945_86ec_8545_8393, 0.348_717),
            ("", 0xe3b0_c442_98fc_1c14, 0.889_416),
        ];
        for (id, expected_bucket, share) in pinned {
            assert_eq!(bucket(id), expected_bucket, "bucket of {id:?}");
            assert!(
                !keep(id, share - 0.000_01),
                "{id:?} dropped just below {share}"
            );
            assert!(keep(id, share + 0.000_01), "{id:?} kept just above {share}");
        }
        // Whole decisions at round rates, as an operator configures them.
        let decisions = [
            ("corr-1", 0.05, false),
            ("corr-1", 0.1, true),
            ("corr-2", 0.1, false),
            ("corr-2", 0.5, true),
            ("corr-3", 0.001, false),
            ("corr-3", 0.01, true),
            ("chain-a", 0.25, false),
            ("chain-a", 0.75, true),
            ("", 0.75, false),
            ("", 0.9, true),
        ];
        for (id, rate, kept) in decisions {
            assert_eq!(keep(id, rate), kept, "keep({id:?}, {rate})");
        }
    }

    proptest! {
        #[test]
        fn keeping_is_monotone_in_the_rate(id in ".{0,40}", a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(!keep(&id, low) || keep(&id, high));
        }
    }
}
