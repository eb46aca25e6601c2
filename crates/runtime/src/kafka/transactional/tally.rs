//! [`Tally`]: the counts of one transaction's work, applied to the metrics only once it
//! commits, so an aborted transaction is never counted twice.

use std::collections::HashMap;

use crate::telemetry::metrics::{Processed, ServiceMetrics};

use super::OnCommit;
use crate::clock::now_ms;

/// Counts of one batch, applied to the metrics only once its transaction commits.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) consumed: HashMap<String, u64>,
    pub(super) emitted: HashMap<String, u64>,
    pub(super) outcomes: [u64; 4],
    pub(super) sampled_out: HashMap<String, u64>,
    pub(super) dead_lettered: HashMap<String, u64>,
    pub(super) event_times_ms: Vec<i64>,
    /// The transform's work to run on commit ([`Transform::on_commit`](super::Transform::on_commit)), in order.
    pub(super) on_commit: Vec<OnCommit>,
}

impl Tally {
    pub(super) fn outcome(&mut self, outcome: Processed) {
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
            Processed::Emitted,
            Processed::SampledOut,
            Processed::Ignored,
            Processed::DeadLettered,
        ] {
            let n = self.outcomes[outcome as usize];
            if n > 0 {
                metrics.processed(outcome, n);
            }
        }
        for (event_type, n) in &self.sampled_out {
            metrics.sampled_out(event_type, *n);
        }
        if self.outcomes[Processed::Ignored as usize] > 0 {
            metrics.ignored(self.outcomes[Processed::Ignored as usize]);
        }
        for (reason, n) in &self.dead_lettered {
            metrics.dead_lettered(reason, *n);
        }
        let now = now_ms();
        for t in self.event_times_ms {
            metrics.observe_end_to_end(t, now);
        }
        for work in self.on_commit {
            work();
        }
    }
}
