//! Retention classes (docs/topics-and-records.md): how long a record must be kept.
//!
//! The class travels with each audit record (the `retention` extension), so the sink picks the
//! table (and TTL) without re-deriving it, and sampling can refuse to drop what must be kept.
//! The type lists are the contract's and fixed; the periods are configuration
//! (`[retention]`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit_record::{AuditRecord, RiskLevel};
use crate::config::RetentionPeriods;
use crate::pattern::PatternTable;

/// How long a record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionClass {
    /// Security events and alerts, high and critical risk, logins, credentials, roles (7
    /// years by default).
    Security,
    /// Payments, subscriptions, billing, invoices (7 years by default).
    Financial,
    /// Marketing and newsletter events (2 years by default).
    Marketing,
    /// Everything else (2 years by default).
    General,
}

impl RetentionClass {
    /// Every class, for code that treats each alike (one table each, reports, exports).
    pub const ALL: [RetentionClass; 4] = [
        Self::Security,
        Self::Financial,
        Self::Marketing,
        Self::General,
    ];

    /// The name the `retention` extension, stored labels and table names carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Security => "security",
            Self::Financial => "financial",
            Self::Marketing => "marketing",
            Self::General => "general",
        }
    }

    /// The class named `text` exactly, if it is one (the reverse of [`Self::as_str`]).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == text)
    }

    /// The configured period, in days.
    pub fn period_days(self, periods: &RetentionPeriods) -> u32 {
        match self {
            Self::Security => periods.security_days,
            Self::Financial => periods.financial_days,
            Self::Marketing => periods.marketing_days,
            Self::General => periods.general_days,
        }
    }
}

impl fmt::Display for RetentionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Input type patterns of each class; every other type is `general`.
const TYPE_CLASSES: [(&str, RetentionClass); 12] = [
    ("user.login.**", RetentionClass::Security),
    ("user.password.**", RetentionClass::Security),
    ("user.mfa.**", RetentionClass::Security),
    ("user.role.**", RetentionClass::Security),
    ("user.permission.**", RetentionClass::Security),
    ("system.security.**", RetentionClass::Security),
    ("user.payment.**", RetentionClass::Financial),
    ("user.subscription.**", RetentionClass::Financial),
    ("user.billing.**", RetentionClass::Financial),
    ("user.invoice.**", RetentionClass::Financial),
    ("user.marketing.**", RetentionClass::Marketing),
    ("user.newsletter.**", RetentionClass::Marketing),
];

/// Decides the retention class of an audit record.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    by_type: PatternTable<RetentionClass>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetentionPolicy {
    /// The policy of docs/topics-and-records.md, from its built-in type patterns.
    pub fn new() -> Self {
        let by_type =
            PatternTable::parse(TYPE_CLASSES).expect("the built-in retention patterns are valid");
        Self { by_type }
    }

    /// The class of `record`, made from an input of type `original_type`: `security` for every
    /// security event and every record of risk high or critical, else by the input type.
    pub fn class_of(&self, original_type: &str, record: &AuditRecord) -> RetentionClass {
        let segments: Vec<&str> = original_type.split('.').collect();
        self.class_of_segments(&segments, record)
    }

    /// As [`class_of`](Self::class_of), for a type already split on `.`.
    pub fn class_of_segments(
        &self,
        original_type: &[&str],
        record: &AuditRecord,
    ) -> RetentionClass {
        let security = matches!(record, AuditRecord::SecurityEvent(_))
            || record
                .risk_level()
                .is_some_and(|risk| risk >= RiskLevel::High);
        if security {
            return RetentionClass::Security;
        }
        self.by_type
            .lookup_segments(original_type)
            .map_or(RetentionClass::General, |(_, class)| *class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_record::{
        DataAccess, Operation, Outcome, SecurityEvent, Severity, UserAction,
    };

    fn action(risk: RiskLevel) -> AuditRecord {
        AuditRecord::UserAction(UserAction {
            risk_level: Some(risk),
            ..UserAction::new("u", "a", Outcome::Success)
        })
    }

    #[test]
    fn classes_by_input_type() {
        let policy = RetentionPolicy::new();
        let low = action(RiskLevel::Low);
        let cases = [
            ("user.login.attempt", RetentionClass::Security),
            ("user.login", RetentionClass::Security),
            ("user.password.reset", RetentionClass::Security),
            ("user.mfa.enabled", RetentionClass::Security),
            ("user.role.changed", RetentionClass::Security),
            ("user.permission.granted", RetentionClass::Security),
            ("system.security.scan", RetentionClass::Security),
            ("user.payment.made", RetentionClass::Financial),
            ("user.subscription.created", RetentionClass::Financial),
            ("user.billing.updated", RetentionClass::Financial),
            ("user.invoice.sent", RetentionClass::Financial),
            ("user.marketing.opt_in", RetentionClass::Marketing),
            ("user.newsletter.subscribed", RetentionClass::Marketing),
            ("user.created", RetentionClass::General),
            ("user.page.view", RetentionClass::General),
            ("system.backup.done", RetentionClass::General),
            ("user.loginx", RetentionClass::General),
        ];
        for (ty, class) in cases {
            assert_eq!(policy.class_of(ty, &low), class, "{ty}");
        }
    }

    #[test]
    fn security_events_and_high_risk_are_security_whatever_the_type() {
        let policy = RetentionPolicy::new();
        assert_eq!(
            policy.class_of("user.page.view", &action(RiskLevel::High)),
            RetentionClass::Security
        );
        assert_eq!(
            policy.class_of("user.marketing.x", &action(RiskLevel::Critical)),
            RetentionClass::Security
        );
        assert_eq!(
            policy.class_of("user.page.view", &action(RiskLevel::Medium)),
            RetentionClass::General
        );
        let event =
            AuditRecord::SecurityEvent(SecurityEvent::new("e", Severity::Info, Default::default()));
        assert_eq!(
            policy.class_of("user.newsletter.x", &event),
            RetentionClass::Security
        );
        let access = AuditRecord::DataAccess(DataAccess {
            user_id: "u".into(),
            data_type: "t".into(),
            operation: Operation::Read,
            record_count: 1,
            sensitive: true,
            purpose: None,
        });
        assert_eq!(
            policy.class_of("user.data.export", &access),
            RetentionClass::General
        );
    }

    #[test]
    fn periods_default_to_seven_and_two_years() {
        let periods = RetentionPeriods::default();
        assert_eq!(RetentionClass::Security.period_days(&periods), 2557);
        assert_eq!(RetentionClass::Financial.period_days(&periods), 2557);
        assert_eq!(RetentionClass::Marketing.period_days(&periods), 731);
        assert_eq!(RetentionClass::General.period_days(&periods), 731);
        assert_eq!(
            RetentionClass::parse("marketing"),
            Some(RetentionClass::Marketing)
        );
    }
}
