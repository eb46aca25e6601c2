//! Rules and threat levels: the two enums every other part of the engine speaks.

use std::fmt;

/// A detection rule of docs/security-rules.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Many failed logins from one source in the window.
    BruteForce,
    /// Failed logins of many distinct users from one source in the window.
    CredentialStuffing,
    /// Two successful logins of one user too far apart for the time between them.
    ImpossibleTravel,
    /// A user given a privileged role (worse when they granted it themselves).
    PrivilegeEscalation,
    /// A user acting far outside their own baseline; never above medium.
    UnusualAccess,
}

impl Rule {
    /// Every rule, in the order that breaks ties between equal scores.
    pub const ALL: [Rule; 5] = [
        Rule::BruteForce,
        Rule::CredentialStuffing,
        Rule::ImpossibleTravel,
        Rule::PrivilegeEscalation,
        Rule::UnusualAccess,
    ];

    /// The name alerts carry in `data.rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::BruteForce => "brute_force",
            Rule::CredentialStuffing => "credential_stuffing",
            Rule::ImpossibleTravel => "impossible_travel",
            Rule::PrivilegeEscalation => "privilege_escalation",
            Rule::UnusualAccess => "unusual_access",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How dangerous an event is, from its highest rule score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ThreatLevel {
    /// Score below 40: counted, no alert.
    Low,
    /// Score 40-69: an alert.
    Medium,
    /// Score 70-89: an alert.
    High,
    /// Score 90 or more: an alert and its actions (block the ip, disable the account).
    Critical,
}

impl ThreatLevel {
    /// Every level, lowest first.
    pub const ALL: [ThreatLevel; 4] = [
        ThreatLevel::Low,
        ThreatLevel::Medium,
        ThreatLevel::High,
        ThreatLevel::Critical,
    ];

    /// docs/security-rules.md: ≥ 90 critical, ≥ 70 high, ≥ 40 medium, else low.
    pub fn from_score(score: u8) -> ThreatLevel {
        match score {
            90.. => ThreatLevel::Critical,
            70.. => ThreatLevel::High,
            40.. => ThreatLevel::Medium,
            _ => ThreatLevel::Low,
        }
    }

    /// The name alerts carry in `data.level`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreatLevel::Low => "low",
            ThreatLevel::Medium => "medium",
            ThreatLevel::High => "high",
            ThreatLevel::Critical => "critical",
        }
    }

    /// Medium and above raise an alert; low is only remembered.
    pub fn raises_alert(self) -> bool {
        self >= ThreatLevel::Medium
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ThreatLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_boundaries_follow_the_spec() {
        assert_eq!(ThreatLevel::from_score(0), ThreatLevel::Low);
        assert_eq!(ThreatLevel::from_score(39), ThreatLevel::Low);
        assert_eq!(ThreatLevel::from_score(40), ThreatLevel::Medium);
        assert_eq!(ThreatLevel::from_score(69), ThreatLevel::Medium);
        assert_eq!(ThreatLevel::from_score(70), ThreatLevel::High);
        assert_eq!(ThreatLevel::from_score(89), ThreatLevel::High);
        assert_eq!(ThreatLevel::from_score(90), ThreatLevel::Critical);
        assert_eq!(ThreatLevel::from_score(100), ThreatLevel::Critical);
        assert!(!ThreatLevel::Low.raises_alert());
        assert!(ThreatLevel::Medium.raises_alert());
    }
}
