//! Episodes: "one alert per rule, key and level while the window stays active".
//!
//! An episode of a key (for one rule family) is a run of its events in which each event
//! falls within the window of the one before: it opens with an event whose window holds no
//! earlier event of the key, and ends when the key stays quiet for a whole window length (so
//! the next event finds its window empty). Within an episode each (rule, level) alerts at most
//! once; a new episode may alert again. Late events join the current episode.

use super::level::{Rule, ThreatLevel};

/// Which (rule, level) pairs have alerted in the key's current episode.
#[derive(Debug, Default, Clone)]
pub(crate) struct Episode {
    alerted: u32,
}

impl Episode {
    pub fn reset(&mut self) {
        self.alerted = 0;
    }

    /// Records that (rule, level) alerts; false when it already did in this episode.
    pub fn try_mark(&mut self, rule: Rule, level: ThreatLevel) -> bool {
        let bit = 1u32 << (rule.index() * ThreatLevel::ALL.len() + level.index());
        let fresh = self.alerted & bit == 0;
        self.alerted |= bit;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_and_level_alerts_once_per_episode() {
        let mut e = Episode::default();
        assert!(e.try_mark(Rule::BruteForce, ThreatLevel::Medium));
        assert!(!e.try_mark(Rule::BruteForce, ThreatLevel::Medium));
        assert!(e.try_mark(Rule::BruteForce, ThreatLevel::High));
        assert!(e.try_mark(Rule::CredentialStuffing, ThreatLevel::Medium));
        e.reset();
        assert!(e.try_mark(Rule::BruteForce, ThreatLevel::Medium));
    }
}
