//! [`SecurityMonitor`]: the [`Transform`] that runs the detection engine over Kafka records.
//!
//! # State follows partitions
//! One [`Detector`] per owned input partition. The classifier keys security events by source ip
//! and user actions by user id, and the engine keys its rules the same way, so each rule key
//! lives in exactly one input partition: when a partition moves to another instance, its
//! detector is dropped here and rebuilt there, and no state is shared between instances. It also
//! gives each partition its own event-time clock, so a lagging partition is never judged by
//! another one's time. The `[security]` memory caps apply per partition.
//!
//! # Rebuilding after a restart or rebalance
//! On assignment the monitor asks the loop to rewind each partition by `rebuild_lookback_secs`
//! of record time (`offsets_for_times`): at least a window plus the grace period, by default
//! also the block duration. The loop replays the records below the committed offset through
//! [`Transform::replay`] — the detector rebuilds windows, episodes and blocks in
//! [`Mode::Replay`] and emits nothing, because those records' outputs were committed with their
//! offsets — then judges records from the committed offset on. An alert whose evidence was
//! already judged is therefore never emitted twice, and one whose raising event was not
//! committed is emitted (with the same deterministic id) exactly once. Blocks raised within the
//! lookback are re-armed, so their blocklist tombstones still go out; a tombstone goes out with
//! the first record of its partition whose event time is past the expiry.

use std::collections::HashMap;

use auditflow_core::Config;
use auditflow_core::config::{Limits, Topics};
use auditflow_core::detect::{DetectError, Detector, InputKind, Mode, Observation, Output};
use auditflow_core::envelope::decode_record;
use auditflow_kafka::transactional::{Rewind, Transform};
use auditflow_kafka::{DeadLetter, Disposition, InputRecord, OutputRecord, Partition};
use chrono::{DateTime, Utc};

/// Structured-mode CloudEvents (CloudEvents Kafka binding), as the classifier writes them.
pub const OUTPUT_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The security monitor's record transform.
pub struct SecurityMonitor {
    topics: Topics,
    limits: Limits,
    /// A fresh detector with the validated settings, cloned for every partition.
    fresh: Detector,
    detectors: HashMap<Partition, Detector>,
    /// How far back a newly assigned partition is replayed (`rebuild_lookback_secs`).
    lookback_ms: i64,
    /// Wall clock in ms since the epoch (injectable for tests).
    now_ms: fn() -> i64,
}

impl SecurityMonitor {
    /// Validates the `[security]` settings.
    pub fn new(config: &Config) -> Result<Self, DetectError> {
        let security = &config.security;
        let lookback_secs = security.rebuild_lookback_secs;
        Ok(Self {
            topics: config.topics.clone(),
            limits: config.limits.clone(),
            fresh: Detector::new(security)?,
            detectors: HashMap::new(),
            lookback_ms: i64::try_from(lookback_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            now_ms: || Utc::now().timestamp_millis(),
        })
    }

    /// Replaces the wall clock (tests).
    pub fn with_clock(mut self, now_ms: fn() -> i64) -> Self {
        self.now_ms = now_ms;
        self
    }

    /// Partitions with a detector, i.e. owned.
    pub fn partitions(&self) -> usize {
        self.detectors.len()
    }

    /// The record as an observation: `Ok(None)` for a topic the monitor does not read.
    fn observe(&self, record: &InputRecord) -> Result<Option<Observation>, DeadLetter> {
        let Some(kind) = InputKind::of_topic(&record.topic, &self.topics) else {
            return Ok(None);
        };
        let headers = record
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref().unwrap_or_default()));
        let to_dead_letter =
            |r: auditflow_core::Rejection| DeadLetter::new(r.reason.as_str(), r.detail);
        let event =
            decode_record(headers, record.payload(), &self.limits).map_err(to_dead_letter)?;
        // SPEC section 2: without `time`, the record timestamp is the event time.
        let fallback = record
            .timestamp_ms
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_else(|| {
                DateTime::from_timestamp_millis((self.now_ms)()).unwrap_or_default()
            });
        Observation::from_event_as(kind, &event, fallback)
            .map(Some)
            .map_err(to_dead_letter)
    }

    fn detector(&mut self, partition: Partition) -> &mut Detector {
        // Records only come from owned partitions, which have a detector; a fresh one is the
        // safe answer should the loop ever hand over a record first.
        self.detectors
            .entry(partition)
            .or_insert_with(|| self.fresh.clone())
    }

    fn output_record(&self, output: &Output) -> OutputRecord {
        let topic = output.topic(&self.topics).to_owned();
        let key = Some(output.key().as_bytes().to_vec());
        match output.to_event() {
            Some(event) => OutputRecord::new(topic, key, event.to_json_bytes())
                .with_header("ce_type", event.ty.as_str())
                .with_header("ce_id", event.id.as_str())
                .with_header("content-type", OUTPUT_CONTENT_TYPE),
            // A blocklist tombstone: no value, so compaction removes the ip.
            None => OutputRecord {
                topic,
                key,
                payload: None,
                headers: Vec::new(),
            },
        }
    }
}

impl Transform for SecurityMonitor {
    fn transform(&mut self, record: &InputRecord) -> Disposition {
        let observation = match self.observe(record) {
            Ok(Some(observation)) => observation,
            Ok(None) => return Disposition::Ignored,
            Err(letter) => return Disposition::DeadLetter(letter),
        };
        let outputs = self
            .detector(record.partition_id())
            .observe(&observation, Mode::Live);
        let records = outputs.iter().map(|o| self.output_record(o)).collect();
        // Judged, whether or not it raised anything: an empty emission, not an ignored record.
        Disposition::Emitted {
            records,
            event_time_ms: Some(observation.time.timestamp_millis()),
        }
    }

    fn on_assigned(&mut self, partitions: &[Partition]) -> Vec<(Partition, Rewind)> {
        let from = (self.now_ms)().saturating_sub(self.lookback_ms);
        let mut rewinds = Vec::with_capacity(partitions.len());
        for p in partitions {
            self.detectors.insert(p.clone(), self.fresh.clone());
            if InputKind::of_topic(&p.topic, &self.topics).is_some() {
                rewinds.push((p.clone(), Rewind::ToTimestamp(from)));
            }
        }
        tracing::info!(
            partitions = partitions.len(),
            owned = self.detectors.len(),
            "rebuilding detection windows"
        );
        rewinds
    }

    fn on_revoked(&mut self, partitions: &[Partition]) {
        for p in partitions {
            self.detectors.remove(p);
        }
    }

    fn replay(&mut self, record: &InputRecord) {
        // A record that was dead-lettered or ignored the first time is again; nothing to rebuild.
        if let Ok(Some(observation)) = self.observe(record) {
            self.detector(record.partition_id())
                .observe(&observation, Mode::Replay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const T0_MS: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

    fn monitor() -> SecurityMonitor {
        SecurityMonitor::new(&Config::default())
            .unwrap()
            .with_clock(|| T0_MS + 3_600_000)
    }

    fn failure(offset: i64, second: i64) -> InputRecord {
        failure_at(
            offset,
            &format!("2024-01-01T00:00:{second:02}Z"),
            "10.0.0.1",
        )
    }

    fn failure_at(offset: i64, time: &str, ip: &str) -> InputRecord {
        let value = json!({
            "specversion": "1.0", "id": format!("e{offset}"), "source": "classifier",
            "type": "audit.security.event", "correlationid": "c1", "time": time,
            "data": {"event_type": "failed_login", "severity": "warning", "details": {},
                     "source_ip": ip, "user_id": "alice"}});
        InputRecord {
            topic: "audit.security.event".into(),
            partition: 0,
            offset,
            key: Some(b"10.0.0.1".to_vec()),
            payload: Some(value.to_string().into_bytes()),
            headers: Vec::new(),
            timestamp_ms: Some(T0_MS),
        }
    }

    fn emitted(d: Disposition) -> Vec<OutputRecord> {
        match d {
            Disposition::Emitted { records, .. } => records,
            other => panic!("not emitted: {other:?}"),
        }
    }

    fn value(r: &OutputRecord) -> Value {
        serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn a_burst_alerts_acts_and_blocks_with_keys() {
        let mut m = monitor();
        let p = Partition::new("audit.security.event", 0);
        let rewinds = m.on_assigned(std::slice::from_ref(&p));
        // The default lookback: the block duration (1 h) plus the grace period.
        assert_eq!(
            rewinds,
            [(p, Rewind::ToTimestamp(T0_MS + 3_600_000 - 3_720_000))]
        );
        let out: Vec<OutputRecord> = (0..21)
            .flat_map(|i| emitted(m.transform(&failure(i, i))))
            .collect();
        let summary: Vec<(&str, &[u8])> = out
            .iter()
            .map(|r| (r.topic.as_str(), r.key.as_deref().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                ("security.alerts", &b"10.0.0.1"[..]),
                ("security.alerts", b"10.0.0.1"),
                ("security.alerts", b"10.0.0.1"),
                ("security.actions", b"10.0.0.1"),
                ("security.actions", b"alice"),
                ("security.blocklist", b"10.0.0.1"),
            ]
        );
        assert_eq!(value(&out[2])["data"]["level"], "critical");
    }

    #[test]
    fn a_restart_mid_burst_emits_the_critical_alert_once() {
        let records: Vec<InputRecord> = (0..21).map(|i| failure(i, i)).collect();
        let p = Partition::new("audit.security.event", 0);

        let mut before = monitor();
        before.on_assigned(std::slice::from_ref(&p));
        let first: Vec<OutputRecord> = records[..15]
            .iter()
            .flat_map(|r| emitted(before.transform(r)))
            .collect();
        assert_eq!(first.len(), 2, "medium and high");

        // The replacement replays what was committed, then judges the rest.
        let mut after = monitor();
        after.on_assigned(std::slice::from_ref(&p));
        for r in &records[..15] {
            after.replay(r);
        }
        let rest: Vec<OutputRecord> = records[15..]
            .iter()
            .flat_map(|r| emitted(after.transform(r)))
            .collect();
        let alerts: Vec<Value> = rest
            .iter()
            .filter(|r| r.topic == "security.alerts")
            .map(value)
            .collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["data"]["level"], "critical");
        assert_eq!(rest.len(), 4, "alert, block_ip, disable_account, blocklist");

        // Without the restart, the same records give the same critical alert id.
        let mut straight = monitor();
        let all: Vec<OutputRecord> = records
            .iter()
            .flat_map(|r| emitted(straight.transform(r)))
            .collect();
        assert_eq!(value(&all[2])["id"], alerts[0]["id"]);
    }

    #[test]
    fn a_restart_re_arms_blocks_so_their_tombstones_still_go_out() {
        let p = Partition::new("audit.security.event", 0);
        let mut m = monitor();
        m.on_assigned(std::slice::from_ref(&p));
        for i in 0..21 {
            m.replay(&failure(i, i));
        }
        // Past the block's expiry (1 h after the 21st failure), in event time.
        let later = failure_at(21, "2024-01-01T01:00:21Z", "10.0.0.2");
        let out = emitted(m.transform(&later));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "security.blocklist");
        assert_eq!(out[0].key.as_deref(), Some(&b"10.0.0.1"[..]));
        assert_eq!(out[0].payload, None, "a tombstone");
    }

    #[test]
    fn revoked_partitions_forget_their_state() {
        let mut m = monitor();
        let p = Partition::new("audit.security.event", 0);
        m.on_assigned(std::slice::from_ref(&p));
        for i in 0..20 {
            m.transform(&failure(i, i));
        }
        m.on_revoked(std::slice::from_ref(&p));
        assert_eq!(m.partitions(), 0);
        m.on_assigned(std::slice::from_ref(&p));
        // The 21st failure alone is only a low score now: state went with the partition.
        assert!(emitted(m.transform(&failure(20, 20))).is_empty());
    }

    #[test]
    fn bad_records_are_dead_lettered_and_other_topics_ignored() {
        let mut m = monitor();
        let mut bad = failure(0, 0);
        bad.payload = Some(b"{not json".to_vec());
        assert!(
            matches!(m.transform(&bad), Disposition::DeadLetter(d) if d.reason == "invalid_json")
        );

        let mut schema = failure(0, 0);
        schema.payload = Some(
            json!({"id": "x", "source": "s", "type": "audit.security.event",
            "data": {"severity": "info"}})
            .to_string()
            .into_bytes(),
        );
        assert!(
            matches!(m.transform(&schema), Disposition::DeadLetter(d) if d.reason == "schema_violation")
        );

        let mut other = failure(0, 0);
        other.topic = "audit.data.access".into();
        assert_eq!(m.transform(&other), Disposition::Ignored);
    }

    #[test]
    fn the_record_timestamp_is_the_event_time_when_time_is_absent() {
        let mut m = monitor();
        let mut r = failure(0, 0);
        let mut v: Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("time");
        r.payload = Some(v.to_string().into_bytes());
        r.timestamp_ms = Some(T0_MS + 5_000);
        match m.transform(&r) {
            Disposition::Emitted { event_time_ms, .. } => {
                assert_eq!(event_time_ms, Some(T0_MS + 5_000))
            }
            other => panic!("{other:?}"),
        }
    }
}
