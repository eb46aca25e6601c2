//! What sampling dropped, kept durably: the classifier writes one [`SAMPLING_SUMMARY_TYPE`]
//! event per input type, input partition and hour of event time in each transaction that
//! sampled something out, in that same transaction (docs/topics-and-records.md). The sink
//! stores them, so `report compliance` counts sampled-out inputs by type for any period, and
//! exactly: an input is in one committed transaction, so in one summary.
//!
//! [`SampledOutTally`] gathers one batch's sampled-out inputs and drains into summaries;
//! [`SampledOutSummary`] is one of them, to and from its CloudEvent. Nothing personal is in a
//! summary: the type, counts, offsets, times and rate only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Event;
use crate::classify::output_id;
use crate::envelope::format_time;
use crate::pattern::is_valid_type;

/// The CloudEvents type of a sampling summary.
pub const SAMPLING_SUMMARY_TYPE: &str = "audit.sampling.summary";
/// The CloudEvents source of a sampling summary.
pub const SAMPLING_SUMMARY_SOURCE: &str = "/auditflow/classifier";

/// Where the summarised inputs were read: one input partition and the offsets of the first and
/// last of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpan {
    /// The input topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// The first summarised input's offset.
    pub first_offset: i64,
    /// The last summarised input's offset (other inputs lie between: only these were sampled
    /// out, of this type, in this hour).
    pub last_offset: i64,
}

/// The inputs of one type that one transaction sampled out of one input partition, with their
/// event times in one hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledOutSummary {
    /// The inputs' CloudEvents type.
    pub event_type: String,
    /// How many were sampled out.
    pub count: u64,
    /// The rate they were sampled at.
    pub sample_rate: f64,
    /// Where they were read.
    pub input: InputSpan,
    /// The earliest event time among them (RFC 3339).
    pub first_time: String,
    /// The latest event time among them (RFC 3339): the summary's own `time`.
    pub last_time: String,
}

/// Why an event is not a sampling summary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SAMPLING_SUMMARY_TYPE} data: {0}")]
pub struct NotASummary(String);

impl SampledOutSummary {
    /// Its event id: a function of where its first input was read and of its type, so it is
    /// the same however often the transaction that wrote it is re-read.
    pub fn id(&self) -> String {
        let first = format!(
            "{}/{}/{}",
            self.input.topic, self.input.partition, self.input.first_offset
        );
        output_id(SAMPLING_SUMMARY_SOURCE, &first, &self.event_type)
    }

    /// The event that carries it, at its last input's event time, under the security
    /// retention class (it is evidence of what the audit trail does not hold).
    pub fn to_event(&self, time: DateTime<Utc>) -> Event {
        let kind = (SAMPLING_SUMMARY_SOURCE, SAMPLING_SUMMARY_TYPE);
        Event::with_payload(self.id(), kind, time, "security", self)
    }

    /// The summary an event carries, checked: a valid input type and a count of at least one.
    pub fn from_event(event: &Event) -> Result<Self, NotASummary> {
        let summary: Self = event.payload(SAMPLING_SUMMARY_TYPE).map_err(NotASummary)?;
        if !is_valid_type(&summary.event_type) {
            return Err(NotASummary("`event_type` is not a CloudEvents type".into()));
        }
        if summary.count == 0 {
            return Err(NotASummary("`count` must be at least 1".into()));
        }
        Ok(summary)
    }
}

/// Key of one summary being gathered: input topic, partition, type, hour of event time.
type GroupKey = (String, i32, String, i64);

/// One summary being gathered.
#[derive(Debug)]
struct Group {
    count: u64,
    rate: f64,
    first_offset: i64,
    last_offset: i64,
    first_time: DateTime<Utc>,
    last_time: DateTime<Utc>,
}

/// The sampled-out inputs of one batch, gathered into summaries.
#[derive(Debug, Default)]
pub struct SampledOutTally {
    groups: BTreeMap<GroupKey, Group>,
}

impl SampledOutTally {
    /// Counts one sampled-out input: its type, the rate it was sampled at, where it was read and
    /// its event time.
    pub fn add(
        &mut self,
        event_type: &str,
        rate: f64,
        (topic, partition, offset): (&str, i32, i64),
        time: DateTime<Utc>,
    ) {
        let hour = time.timestamp().div_euclid(3600);
        let key = (topic.to_owned(), partition, event_type.to_owned(), hour);
        let group = self.groups.entry(key).or_insert(Group {
            count: 0,
            rate,
            first_offset: offset,
            last_offset: offset,
            first_time: time,
            last_time: time,
        });
        group.count += 1;
        group.first_offset = group.first_offset.min(offset);
        group.last_offset = group.last_offset.max(offset);
        group.first_time = group.first_time.min(time);
        group.last_time = group.last_time.max(time);
    }

    /// Whether nothing was counted since the last drain.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The summaries of what was counted since the last drain, each with its event time; the
    /// tally is empty afterwards.
    pub fn drain(&mut self) -> Vec<(SampledOutSummary, DateTime<Utc>)> {
        std::mem::take(&mut self.groups)
            .into_iter()
            .map(|((topic, partition, event_type, _), g)| {
                let summary = SampledOutSummary {
                    event_type,
                    count: g.count,
                    sample_rate: g.rate,
                    input: InputSpan {
                        topic,
                        partition,
                        first_offset: g.first_offset,
                        last_offset: g.last_offset,
                    },
                    first_time: format_time(&g.first_time),
                    last_time: format_time(&g.last_time),
                };
                (summary, g.last_time)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_batch_becomes_one_summary_per_partition_type_and_hour() {
        let mut tally = SampledOutTally::default();
        let view = "user.page.view";
        tally.add(
            view,
            0.5,
            ("user.events", 0, 10),
            at("2026-12-03T10:59:00Z"),
        );
        tally.add(
            view,
            0.5,
            ("user.events", 0, 12),
            at("2026-12-03T10:01:00Z"),
        );
        tally.add(view, 0.5, ("user.events", 1, 4), at("2026-12-03T10:30:00Z"));
        tally.add(
            view,
            0.5,
            ("user.events", 0, 15),
            at("2026-12-03T11:00:00Z"),
        );
        tally.add(
            "user.search",
            0.1,
            ("user.events", 0, 11),
            at("2026-12-03T10:30:00Z"),
        );
        let summaries = tally.drain();
        assert!(tally.is_empty());
        assert_eq!(summaries.len(), 4);
        let (first, time) = &summaries[0];
        assert_eq!(first.event_type, "user.page.view");
        assert_eq!(first.count, 2);
        assert_eq!(first.input.partition, 0);
        assert_eq!(
            (first.input.first_offset, first.input.last_offset),
            (10, 12)
        );
        assert_eq!(first.first_time, "2026-12-03T10:01:00Z");
        assert_eq!(first.last_time, "2026-12-03T10:59:00Z");
        assert_eq!(*time, at("2026-12-03T10:59:00Z"));
        let total: u64 = summaries.iter().map(|(s, _)| s.count).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn a_summary_survives_its_event_and_its_id_is_stable() {
        let mut tally = SampledOutTally::default();
        tally.add(
            "user.page.view",
            0.5,
            ("user.events", 3, 7),
            at("2026-12-03T10:00:00Z"),
        );
        let (summary, time) = tally.drain().remove(0);
        let event = summary.to_event(time);
        assert_eq!(event.ty, SAMPLING_SUMMARY_TYPE);
        assert_eq!(event.time, Some(time));
        assert_eq!(event.extensions["retention"], json!("security"));
        assert_eq!(SampledOutSummary::from_event(&event).unwrap(), summary);
        assert_eq!(event.id, summary.id());
        let mut elsewhere = summary.clone();
        elsewhere.input.first_offset = 8;
        assert_ne!(elsewhere.id(), summary.id());
    }

    #[test]
    fn malformed_summaries_are_refused() {
        let mut tally = SampledOutTally::default();
        tally.add(
            "user.page.view",
            0.5,
            ("t", 0, 1),
            at("2026-12-03T10:00:00Z"),
        );
        let (summary, time) = tally.drain().remove(0);
        let good = summary.to_event(time);
        let mut zero = good.clone();
        zero.data.insert("count".into(), json!(0));
        assert!(SampledOutSummary::from_event(&zero).is_err());
        let mut odd = good.clone();
        odd.data
            .insert("event_type".into(), json!("user page view"));
        assert!(SampledOutSummary::from_event(&odd).is_err());
        let mut missing = good.clone();
        missing.data.remove("input");
        assert!(SampledOutSummary::from_event(&missing).is_err());
        let mut other = good;
        other.ty = "audit.user.action".into();
        assert!(SampledOutSummary::from_event(&other).is_err());
    }
}
