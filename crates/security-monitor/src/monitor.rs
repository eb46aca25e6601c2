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
//! lookback are re-armed, so their blocklist tombstones still go out.
//!
//! # Blocklist tombstones follow the wall clock
//! A block's `expires_at` is an absolute time. The loop calls [`Transform::on_tick`] about once
//! a second, also while the inputs are idle, and each owned partition's detector lifts the blocks
//! the wall clock has passed ([`Detector::lift_expired`]): their tombstones do not wait for the
//! next record. The tick moves nothing else — windows stay on event time, so a backlog replayed
//! after downtime is judged as it happened (a record whose event time passes an expiry still
//! lifts the block too). Only owned partitions have detectors, so a revoked partition's blocks
//! are left to its new owner. A tombstone may go out twice (a tick's transaction aborted and
//! redone, or a block re-armed by a replay after its tombstone was written): on the compacted
//! blocklist a second tombstone for an ip changes nothing.
//!
//! # Metrics
//! [`Transform::take_engine_counts`] hands the loop the engines' counters of live judgements
//! (too-late events, evicted keys, alerts by rule and level, actions by kind) and the keys and
//! blocks held now, for the `auditflow_detect_*` families.

use std::collections::HashMap;

use auditflow_core::Config;
use auditflow_core::config::{Limits, Topics};
use auditflow_core::detect::{DetectError, Detector, InputKind, Mode, Observation, Output};
use auditflow_core::envelope::decode_record;
use auditflow_kafka::metrics::EngineCounts;
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
    /// Counters of live judgements since the loop last took them.
    counts: EngineCounts,
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
            counts: EngineCounts::default(),
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

    /// Counts a live judgement's outputs.
    fn count(&mut self, outputs: &[Output]) {
        for output in outputs {
            match output {
                Output::Alert(alert) => {
                    *self
                        .counts
                        .alerts
                        .entry((alert.rule, alert.level))
                        .or_default() += 1
                }
                Output::Action(action) => {
                    *self.counts.actions.entry(action.kind.as_str()).or_default() += 1
                }
                Output::Block(_) | Output::Unblock { .. } => {}
            }
        }
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
        let detector = self.detector(record.partition_id());
        let (too_late, evicted) = (detector.stats().too_late, detector.evicted_keys());
        let outputs = detector.observe(&observation, Mode::Live);
        let (too_late, evicted) = (
            detector.stats().too_late - too_late,
            detector.evicted_keys() - evicted,
        );
        self.counts.too_late += too_late;
        self.counts.evicted_keys += evicted;
        self.count(&outputs);
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

    fn on_tick(&mut self, now_ms: i64) -> Vec<OutputRecord> {
        let Some(now) = DateTime::from_timestamp_millis(now_ms) else {
            return Vec::new();
        };
        let lifted: Vec<Output> = self
            .detectors
            .values_mut()
            .flat_map(|detector| detector.lift_expired(now))
            .collect();
        if !lifted.is_empty() {
            tracing::info!(
                tombstones = lifted.len(),
                "blocks expired by the wall clock"
            );
        }
        lifted.iter().map(|o| self.output_record(o)).collect()
    }

    fn take_engine_counts(&mut self) -> Option<EngineCounts> {
        let (mut keys, mut blocks) = (0, 0);
        for detector in self.detectors.values() {
            let (k, b) = detector.tracked();
            keys += k;
            blocks += b;
        }
        let mut counts = std::mem::take(&mut self.counts);
        counts.tracked_keys = keys;
        counts.active_blocks = blocks;
        Some(counts)
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

    /// The monitor after a burst of 21 failures from 10.0.0.1 on partition 0, whose block
    /// expires at 01:00:20 (event time of the 21st failure + 1 h), with its outputs.
    fn blocked() -> (SecurityMonitor, Partition, Vec<OutputRecord>) {
        let mut m = monitor();
        let p = Partition::new("audit.security.event", 0);
        m.on_assigned(std::slice::from_ref(&p));
        let out = (0..21)
            .flat_map(|i| emitted(m.transform(&failure(i, i))))
            .collect();
        (m, p, out)
    }

    const EXPIRY_MS: i64 = T0_MS + 20_000 + 3_600_000;

    #[test]
    fn the_wall_clock_lifts_an_expired_block_exactly_once_without_events() {
        let (mut m, _, _) = blocked();
        assert!(m.on_tick(EXPIRY_MS).is_empty(), "not before expiry");
        let out = m.on_tick(EXPIRY_MS + 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "security.blocklist");
        assert_eq!(out[0].key.as_deref(), Some(&b"10.0.0.1"[..]));
        assert_eq!(out[0].payload, None, "a tombstone");
        assert!(m.on_tick(EXPIRY_MS + 1_000).is_empty(), "exactly once");
        // Nor does event time passing the expiry emit it again.
        let later = failure_at(21, "2024-01-01T01:00:30Z", "10.0.0.2");
        assert!(emitted(m.transform(&later)).is_empty());
    }

    #[test]
    fn a_tick_does_not_move_event_time() {
        let (mut m, _, _) = blocked();
        // Hours later by the wall clock; the window of the burst is still open in event time.
        m.on_tick(EXPIRY_MS + 5 * 3_600_000);
        // An event 2 s after the burst is judged with it: 22 failures, critical already
        // alerted in this episode, so nothing new — and not too late, and its key not evicted.
        assert!(emitted(m.transform(&failure(21, 21))).is_empty());
        let counts = m.take_engine_counts().unwrap();
        assert_eq!((counts.too_late, counts.evicted_keys), (0, 0));
        assert_eq!(counts.tracked_keys, 1);
        assert_eq!(counts.active_blocks, 0);
        // A different ip, also old by the wall clock, still counts into its own window.
        let other: Vec<OutputRecord> = (0..6)
            .flat_map(|i| {
                emitted(m.transform(&failure_at(
                    30 + i,
                    &format!("2024-01-01T00:01:{i:02}Z"),
                    "10.0.0.3",
                )))
            })
            .collect();
        assert_eq!(other.len(), 1, "the 6th failure is a medium alert");
    }

    #[test]
    fn revoked_partitions_emit_no_tombstones() {
        let (mut m, p, _) = blocked();
        m.on_revoked(std::slice::from_ref(&p));
        assert!(m.on_tick(EXPIRY_MS + 1).is_empty());
        assert_eq!(m.take_engine_counts().unwrap().active_blocks, 0);
    }

    #[test]
    fn engine_counts_count_live_judgements_once() {
        let (mut m, p, _) = blocked();
        let counts = m.take_engine_counts().unwrap();
        let alerts: Vec<(&str, &str, u64)> = counts
            .alerts
            .iter()
            .map(|((rule, level), n)| (rule.as_str(), level.as_str(), *n))
            .collect();
        assert_eq!(
            alerts,
            [
                ("brute_force", "medium", 1),
                ("brute_force", "high", 1),
                ("brute_force", "critical", 1)
            ]
        );
        let actions: Vec<(&str, u64)> = counts.actions.iter().map(|(a, n)| (*a, *n)).collect();
        assert_eq!(actions, [("block_ip", 1), ("disable_account", 1)]);
        assert_eq!((counts.tracked_keys, counts.active_blocks), (1, 1));
        // Taken: the counters start again; replaying the same history counts nothing.
        m.on_revoked(std::slice::from_ref(&p));
        m.on_assigned(std::slice::from_ref(&p));
        for i in 0..21 {
            m.replay(&failure(i, i));
        }
        let again = m.take_engine_counts().unwrap();
        assert!(again.alerts.is_empty() && again.actions.is_empty());
        assert_eq!((again.tracked_keys, again.active_blocks), (1, 1));
        // A failure 3 minutes behind its key is too late (grace is 2 minutes).
        let late = failure_at(40, "2023-12-31T23:57:00Z", "10.0.0.1");
        m.transform(&late);
        assert_eq!(m.take_engine_counts().unwrap().too_late, 1);
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
