//! What every report is made of: titled sections for a terminal or CSV beside the machine
//! document, and the counting rules they share — raw counts, and counts weighted by the
//! sampling rate a record was kept at (`samplerate`: a record kept at 0.1 stands for ten).

use std::collections::BTreeMap;

use auditflow_store::StoredRecord;
use serde_json::{Value, json};

/// A report: its JSON fields, the sections a table or CSV shows, the charts a page draws, and
/// how many stored records it was made from.
pub(crate) struct Report {
    pub(crate) json: Value,
    pub(crate) sections: Vec<Section>,
    pub(crate) charts: Vec<Chart>,
    pub(crate) records: u64,
}

/// A bar chart of an HTML report.
pub(crate) struct Chart {
    pub(crate) title: &'static str,
    pub(crate) kind: ChartKind,
    /// Label and value of each bar, in drawing order.
    pub(crate) bars: Vec<(String, f64)>,
}

/// How a chart is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChartKind {
    /// Horizontal bars, one per category.
    Categories,
    /// Vertical columns in time order.
    Timeline,
}

impl Chart {
    /// Horizontal bars of `counts`.
    pub(crate) fn categories<K: ToString>(
        title: &'static str,
        counts: impl IntoIterator<Item = (K, u64)>,
    ) -> Self {
        Self {
            title,
            kind: ChartKind::Categories,
            bars: counts
                .into_iter()
                .map(|(k, n)| (k.to_string(), n as f64))
                .collect(),
        }
    }
}

/// One titled table.
pub(crate) struct Section {
    pub(crate) title: &'static str,
    pub(crate) headers: &'static [&'static str],
    pub(crate) rows: Vec<Vec<String>>,
}

impl Section {
    pub(crate) fn new(
        title: &'static str,
        headers: &'static [&'static str],
        rows: Vec<Vec<String>>,
    ) -> Self {
        Self {
            title,
            headers,
            rows,
        }
    }
}

/// How many inputs a stored record stands for: 1 / its sampling rate (1 when it has none, or
/// one outside (0, 1]).
pub(crate) fn weight(record: &StoredRecord) -> f64 {
    match record.labels.sample_rate {
        Some(rate) if rate > 0.0 && rate <= 1.0 => 1.0 / rate,
        _ => 1.0,
    }
}

/// A raw count and the count weighted by sampling.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Tally {
    pub(crate) count: u64,
    pub(crate) estimated: f64,
}

impl Tally {
    pub(crate) fn add(&mut self, record: &StoredRecord) {
        self.count += 1;
        self.estimated += weight(record);
    }
}

/// `x` to two decimals (what a report shows of a ratio or an estimate).
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `x` as a report prints it: an integer when it is one, else two decimals.
pub(crate) fn show(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// An optional label as a report prints it.
pub(crate) fn label(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

/// Counts of each distinct key, in key order.
pub(crate) fn count<K: Ord>(keys: impl Iterator<Item = K>) -> BTreeMap<K, u64> {
    let mut counts = BTreeMap::new();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// `{key: n}` and one row per key.
pub(crate) fn single(counts: &BTreeMap<String, u64>) -> (Value, Vec<Vec<String>>) {
    let json = counts.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
    let rows = counts
        .iter()
        .map(|(k, n)| vec![k.clone(), n.to_string()])
        .collect();
    (Value::Object(json), rows)
}

/// `[{first, second, "count"}]` and one row per pair.
pub(crate) fn pairs(
    counts: &BTreeMap<(String, String), u64>,
    first: &str,
    second: &str,
) -> (Vec<Value>, Vec<Vec<String>>) {
    let json = counts
        .iter()
        .map(|((a, b), n)| json!({first: a, second: b, "count": n}))
        .collect();
    let rows = counts
        .iter()
        .map(|((a, b), n)| vec![a.clone(), b.clone(), n.to_string()])
        .collect();
    (json, rows)
}

#[cfg(test)]
pub(crate) mod testing {
    use auditflow_store::{Labels, RecordKind, RetentionClass, StoredRecord};
    use chrono::{DateTime, Utc};

    /// A stored record with `labels`, at `time`.
    pub(crate) fn record(
        kind: RecordKind,
        class: RetentionClass,
        time: &str,
        labels: Labels,
    ) -> StoredRecord {
        let event_time: DateTime<Utc> = time.parse().expect("an RFC 3339 time");
        StoredRecord {
            id: format!("{}-{time}-{:?}", kind.as_str(), labels.action),
            kind,
            class,
            event_time,
            event_type: "audit.x".into(),
            labels,
            event: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::record;
    use super::*;
    use auditflow_store::{Labels, RecordKind, RetentionClass};

    #[test]
    fn a_sampled_record_stands_for_its_inverse_rate() {
        let at = |rate: Option<f64>| {
            record(
                RecordKind::UserAction,
                RetentionClass::General,
                "2026-11-20T10:00:00Z",
                Labels {
                    sample_rate: rate,
                    ..Labels::default()
                },
            )
        };
        assert_eq!(weight(&at(Some(0.25))), 4.0);
        assert_eq!(weight(&at(None)), 1.0);
        assert_eq!(weight(&at(Some(0.0))), 1.0, "a nonsense rate weighs 1");
        assert_eq!(weight(&at(Some(7.0))), 1.0);
        let mut tally = Tally::default();
        tally.add(&at(Some(0.1)));
        tally.add(&at(None));
        assert_eq!(tally.count, 2);
        assert!((tally.estimated - 11.0).abs() < 1e-9);
        assert_eq!(show(11.0), "11");
        assert_eq!(show(0.6666), "0.67");
    }
}
