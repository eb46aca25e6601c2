//! [`Tally`]: the counts of one transaction's work, applied to the metrics only once it
//! commits, so an aborted transaction is never counted twice.

use std::collections::HashMap;

use crate::telemetry::metrics::{EngineCounts, Outcome, ServiceMetrics};

use super::now_ms;

/// Counts of one batch, applied to the metrics only once its transaction commits.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) consumed: HashMap<String, u64>,
    pub(super) emitted: HashMap<String, u64>,
    pub(super) outcomes: [u64; 4],
    pub(super) sampled_out: HashMap<String, u64>,
    pub(super) dead_lettered: HashMap<String, u64>,
    pub(super) event_times_ms: Vec<i64>,
    pub(super) engine: Option<EngineCounts>,
}

impl Tally {
    pub(super) fn outcome(&mut self, outcome: Outcome) {
        self.outcomes[outcome as usize] += 1;
    }

    pub(super) fn apply(self, metrics: &ServiceMetrics) {
        for (topic, n) in &self.consumed {
            metrics.consumed(topic, *n);
        }
        for (topic, n) in &self.emitted {
            metrics.emitted(topic, *n);
        }
        for outcome in [
            Outcome::Emitted,
            Outcome::SampledOut,
            Outcome::Ignored,
            Outcome::DeadLettered,
        ] {
            let n = self.outcomes[outcome as usize];
            if n > 0 {
                metrics.processed(outcome, n);
            }
        }
        for (event_type, n) in &self.sampled_out {
            metrics.sampled_out(event_type, *n);
        }
        if self.outcomes[Outcome::Ignored as usize] > 0 {
            metrics.ignored(self.outcomes[Outcome::Ignored as usize]);
        }
        for (reason, n) in &self.dead_lettered {
            metrics.dead_lettered(reason, *n);
        }
        let now = now_ms();
        for t in self.event_times_ms {
            metrics.observe_end_to_end(t, now);
        }
        if let Some(engine) = &self.engine {
            metrics.engine(engine);
        }
    }

    pub(super) fn add_engine(&mut self, counts: Option<EngineCounts>) {
        match (&mut self.engine, counts) {
            (Some(mine), Some(later)) => mine.merge(later),
            (mine @ None, later) => *mine = later,
            (Some(_), None) => {}
        }
    }
}
