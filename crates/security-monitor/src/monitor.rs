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
//! # One blocklist for every partition and instance
//! An ip can be blocked from several partitions — failed logins on the security-event topic,
//! impossible travel or privilege escalation on user-action partitions — owned by several
//! instances. Each instance follows the compacted blocklist topic (`read_committed`, on a
//! thread of its own: [`TableFollower`](auditflow_runtime::TableFollower)) into a
//! [`BlocklistView`], and settles every blocklist record a detector makes against the other
//! detectors it owns and that view ([`blocklist::settle`]): an upsert carries the longest
//! expiry standing for the ip, and a tombstone is written only when no longer block stands.
//! Views lag behind the topic by about a transaction, so two instances can still cross (a
//! shorter upsert over a longer one, a tombstone while another instance holds a longer
//! block): every tick, an instance that has read such a record for an ip it blocks longer
//! writes its entry again ([`blocklist::restore`]). Only ips with new records are compared,
//! so an upsert of its own not yet read back is never taken for a missing block; at start the
//! whole topic is new, and ticks wait for replays, so re-armed blocks are compared too.
//! Alerts and actions never depend on the view: they stay a function of the input, with the
//! same ids on every replay.
//!
//! # Event times and the wall clock
//! The record timestamp (set by the classifier's producer) is when an event was received; an
//! event dated more than `max_clock_skew_secs` after it (or after the wall clock) is judged at
//! the partition's clock without moving it (`auditflow_core::detect`, "Events dated in the
//! future"). Replays use the same record timestamps, so they decide as the live run did.
//!
//! # Metrics
//! [`SecurityMonitor::take_engine_counts`] collects the engines' counters of live judgements
//! (too-late, future-dated and unparsable-ip events, evicted keys, alerts by rule and level,
//! actions by kind) and the keys, blocks and bytes held now; with [`SecurityMonitor::with_metrics`],
//! [`Transform::on_commit`] hands the loop their recording in the `auditflow_detect_*`
//! families ([`crate::metrics`]), run once the transaction of the work they count commits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use auditflow_core::Config;
use auditflow_core::config::{Limits, SecuritySettings, Topics};
use auditflow_core::detect::blocklist::{self, BlocklistView};
use auditflow_core::detect::{
    DetectError, Detector, IdSecret, InputKind, Mode, Observation, Output,
};
use auditflow_runtime::kafka::cloudevents::{decode_event, event_record};
use auditflow_runtime::kafka::transactional::{OnCommit, Rewind, Transform};
use auditflow_runtime::{DeadLetter, InputRecord, OutputRecord, Partition, Transformed};
use chrono::{DateTime, Utc};

use crate::metrics::{DetectMetrics, EngineCounts};

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
    /// Where they are recorded (`None`: nowhere, as offline and in unit tests).
    metrics: Option<DetectMetrics>,
    /// The blocklist topic as last read, shared with the thread that follows it (`None`:
    /// this instance's detectors are all there is, as in unit tests).
    view: Option<Arc<Mutex<BlocklistView>>>,
}

/// How many ips a [`BlocklistView`] remembers: the blocks of 8 partitions' detectors at their
/// `max_keys` cap (a few dozen bytes each); beyond, the soonest-expiring are forgotten.
pub fn view_capacity(security: &SecuritySettings) -> usize {
    security.max_keys.saturating_mul(8)
}

/// Locks a mutex, also one a panicking thread poisoned (the view is rebuilt from the topic).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SecurityMonitor {
    /// Validates the `[security]` settings; ids are derived under `secret`.
    pub fn new(config: &Config, secret: IdSecret) -> Result<Self, DetectError> {
        let security = &config.security;
        let lookback_secs = security.rebuild_lookback_secs;
        Ok(Self {
            topics: config.topics.clone(),
            limits: config.limits.clone(),
            fresh: Detector::new(security, secret)?,
            detectors: HashMap::new(),
            lookback_ms: i64::try_from(lookback_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            now_ms: || Utc::now().timestamp_millis(),
            counts: EngineCounts::default(),
            metrics: None,
            view: None,
        })
    }

    /// Replaces the wall clock (tests).
    pub fn with_clock(mut self, now_ms: fn() -> i64) -> Self {
        self.now_ms = now_ms;
        self
    }

    /// Records the engines' counts in `metrics` as their work commits.
    pub fn with_metrics(mut self, metrics: DetectMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Settles blocklist records against `view`, the blocklist topic as another thread reads
    /// it (see the module doc).
    pub fn with_view(mut self, view: Arc<Mutex<BlocklistView>>) -> Self {
        self.view = Some(view);
        self
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis((self.now_ms)()).unwrap_or_default()
    }

    /// The engines' counters since the last call, and what they hold now.
    pub fn take_engine_counts(&mut self) -> EngineCounts {
        let (mut keys, mut blocks, mut bytes) = (0, 0, 0);
        for detector in self.detectors.values() {
            let (k, b) = detector.tracked();
            keys += k;
            blocks += b;
            bytes += detector.state_bytes();
        }
        let mut counts = std::mem::take(&mut self.counts);
        counts.tracked_keys = keys;
        counts.active_blocks = blocks;
        counts.state_bytes = bytes;
        counts
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
        // docs/topics-and-records.md: without `time`, the record timestamp is the event time; it is
        // also when the event was received, which bounds how far ahead `time` may be.
        let decoded = decode_event(record, &self.limits, self.now())?;
        Observation::from_event_as(kind, &decoded.event, decoded.received)
            .map(Some)
            .map_err(DeadLetter::from)
    }

    /// Judges an observation live on `partition`'s detector, counting what the engine did.
    fn judge(&mut self, partition: Partition, observation: &Observation) -> Vec<Output> {
        let now = self.now();
        let detector = self.detector(partition);
        let (before, evicted) = (detector.stats().clone(), detector.evicted_keys());
        let outputs = detector.observe(observation, Mode::Live, now);
        let (after, evicted) = (detector.stats().clone(), detector.evicted_keys() - evicted);
        self.counts.too_late += after.too_late - before.too_late;
        self.counts.future_dated += after.future_dated - before.future_dated;
        self.counts.unparsable_ips += after.unparsable_ips - before.unparsable_ips;
        self.counts.evicted_keys += evicted;
        self.settle(outputs, now)
    }

    /// [`blocklist::settle`] against every owned detector and the view.
    fn settle(&self, outputs: Vec<Output>, now: DateTime<Utc>) -> Vec<Output> {
        let touches_blocklist = outputs
            .iter()
            .any(|o| matches!(o, Output::Block(_) | Output::Unblock { .. }));
        if !touches_blocklist {
            return outputs;
        }
        let view = self.view.as_deref().map(lock);
        blocklist::settle(outputs, now, |ip| {
            let held = self
                .detectors
                .values()
                .filter_map(|d| d.block_on(ip).map(|entry| entry.expires_at))
                .max();
            held.max(view.as_ref().and_then(|v| v.expiry(ip)))
        })
    }

    /// The upserts that put back blocks this instance holds where the view shows less, for
    /// the ips with new records since the last tick. Only those: an upsert of our own that
    /// the view has not read back yet is not a block missing from the topic. (At start, the
    /// whole topic is new; ticks do not run while a partition replays, so blocks re-armed
    /// by a replay are compared with every record read meanwhile.)
    fn restore(&mut self, now: DateTime<Utc>) -> Vec<Output> {
        let Some(view) = &self.view else {
            return Vec::new();
        };
        let mut view = lock(view);
        if !view.is_loaded() {
            // Not read to its end yet: what it lacks may just not be read yet.
            return Vec::new();
        }
        let changed = view.take_changed();
        if changed.is_empty() {
            return Vec::new();
        }
        let held = self.detectors.values().flat_map(Detector::blocks);
        blocklist::restore(held, &view, Some(&changed), now)
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
            Some(event) => event_record(topic, key, &event),
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
    fn transform(&mut self, record: &InputRecord) -> Transformed {
        let observation = match self.observe(record) {
            Ok(Some(observation)) => observation,
            Ok(None) => return Transformed::Ignored,
            Err(letter) => return Transformed::DeadLetter(letter),
        };
        let outputs = self.judge(record.partition_id(), &observation);
        self.count(&outputs);
        let records = outputs.iter().map(|o| self.output_record(o)).collect();
        // Judged, whether or not it raised anything: an empty emission, not an ignored record.
        Transformed::Emitted {
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
            let now = self.now();
            self.detector(record.partition_id())
                .observe(&observation, Mode::Replay, now);
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
        let expired = lifted.len();
        let mut outputs = self.settle(lifted, now);
        if expired > 0 {
            tracing::info!(
                expired,
                tombstones = outputs.len(),
                "blocks expired by the wall clock"
            );
        }
        let restored = self.restore(now);
        if !restored.is_empty() {
            tracing::info!(
                upserts = restored.len(),
                "blocks written again: the blocklist showed a shorter one or none"
            );
        }
        outputs.extend(restored);
        outputs.iter().map(|o| self.output_record(o)).collect()
    }

    fn on_commit(&mut self) -> Option<OnCommit> {
        let metrics = self.metrics.clone()?;
        let counts = self.take_engine_counts();
        Some(Box::new(move || metrics.record(&counts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const T0_MS: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

    fn monitor() -> SecurityMonitor {
        SecurityMonitor::new(&Config::default(), IdSecret::development())
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

    /// A failure dated `time`, received then (its record timestamp is its time).
    fn failure_at(offset: i64, time: &str, ip: &str) -> InputRecord {
        let received = DateTime::parse_from_rfc3339(time)
            .unwrap()
            .timestamp_millis();
        received_at(offset, time, ip, received)
    }

    /// A failure dated 9999-01-01, received at T0.
    fn far_future_failure(offset: i64, ip: &str) -> InputRecord {
        received_at(offset, "9999-01-01T00:00:00Z", ip, T0_MS)
    }

    fn received_at(offset: i64, time: &str, ip: &str, received_ms: i64) -> InputRecord {
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
            timestamp_ms: Some(received_ms),
        }
    }

    fn emitted(d: Transformed) -> Vec<OutputRecord> {
        match d {
            Transformed::Emitted { records, .. } => records,
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
        let counts = m.take_engine_counts();
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
        assert_eq!(m.take_engine_counts().active_blocks, 0);
    }

    #[test]
    fn engine_counts_count_live_judgements_once() {
        let (mut m, p, _) = blocked();
        let counts = m.take_engine_counts();
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
        let again = m.take_engine_counts();
        assert!(again.alerts.is_empty() && again.actions.is_empty());
        assert_eq!((again.tracked_keys, again.active_blocks), (1, 1));
        // A failure 3 minutes behind its key is too late (grace is 2 minutes).
        let late = failure_at(40, "2023-12-31T23:57:00Z", "10.0.0.1");
        m.transform(&late);
        assert_eq!(m.take_engine_counts().too_late, 1);
    }

    #[test]
    fn committed_work_records_the_engine_counts_in_the_detect_families() {
        let metrics = auditflow_runtime::Metrics::new().unwrap();
        let mut m =
            monitor().with_metrics(DetectMetrics::new(&metrics, "security-monitor").unwrap());
        let p = Partition::new("audit.security.event", 0);
        m.on_assigned(std::slice::from_ref(&p));
        for i in 0..6 {
            m.transform(&failure(i, i));
        }
        let record = m
            .on_commit()
            .expect("with metrics, the counts are handed over");
        // Nothing is recorded before the transaction commits.
        assert!(!metrics.render().contains("auditflow_detect_alerts_total{"));
        record();
        let text = metrics.render();
        for series in [
            r#"auditflow_detect_alerts_total{level="medium",rule="brute_force",service="security-monitor"} 1"#,
            r#"auditflow_detect_tracked_keys{service="security-monitor"} 1"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
        // Handed over once: the next commit adds nothing.
        m.on_commit().unwrap()();
        assert!(metrics.render().contains(
            r#"auditflow_detect_alerts_total{level="medium",rule="brute_force",service="security-monitor"} 1"#
        ));
    }

    /// A self-granted root role for carol from `ip` at `time`: critical, so it blocks the ip.
    fn self_grant(offset: i64, time: &str, ip: &str) -> InputRecord {
        let value = json!({
            "specversion": "1.0", "id": format!("g{offset}"), "source": "classifier",
            "type": "audit.user.action", "time": time,
            "data": {"user_id": "carol", "action": "privilege_change", "outcome": "success",
                     "ip_address": ip, "context": {"new_role": "root", "changed_by": "carol"}}});
        InputRecord {
            topic: "audit.user.action".into(),
            partition: 0,
            offset,
            key: Some(b"carol".to_vec()),
            payload: Some(value.to_string().into_bytes()),
            headers: Vec::new(),
            timestamp_ms: Some(T0_MS + 600_000),
        }
    }

    fn tombstones(out: &[OutputRecord]) -> Vec<&[u8]> {
        out.iter()
            .filter(|r| r.topic == "security.blocklist" && r.payload.is_none())
            .map(|r| r.key.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn one_partition_does_not_lift_another_partitions_longer_block() {
        // 10.0.0.1 is blocked until 01:00:20 from the security events...
        let (mut m, _, _) = blocked();
        // ... and until 01:10:00 from a user action on another partition.
        let users = Partition::new("audit.user.action", 0);
        m.on_assigned(std::slice::from_ref(&users));
        let out = emitted(m.transform(&self_grant(0, "2024-01-01T00:10:00Z", "10.0.0.1")));
        let upsert = out
            .iter()
            .find(|r| r.topic == "security.blocklist")
            .map(value)
            .expect("an upsert");
        assert_eq!(upsert["data"]["expires_at"], "2024-01-01T01:10:00Z");
        // The first block expires: the second still stands, so no tombstone.
        assert!(tombstones(&m.on_tick(EXPIRY_MS + 1)).is_empty());
        assert_eq!(m.take_engine_counts().active_blocks, 1);
        // The second expires: now the ip is lifted, once.
        let later = T0_MS + 4_200_000;
        assert!(
            tombstones(&m.on_tick(later)).is_empty(),
            "not before its expiry"
        );
        assert_eq!(tombstones(&m.on_tick(later + 1)), [b"10.0.0.1"]);
        assert!(m.on_tick(later + 2).is_empty());
    }

    #[test]
    fn an_upsert_carries_a_longer_block_held_by_another_partition() {
        let mut m = monitor();
        let users = Partition::new("audit.user.action", 0);
        let events = Partition::new("audit.security.event", 0);
        m.on_assigned(&[users, events]);
        // Blocked until 01:10:00 by the user action first ...
        emitted(m.transform(&self_grant(0, "2024-01-01T00:10:00Z", "10.0.0.1")));
        // ... then the burst would block it only until 01:00:20: its upsert must not shorten.
        let out: Vec<OutputRecord> = (0..21)
            .flat_map(|i| emitted(m.transform(&failure(i, i))))
            .collect();
        let upserts: Vec<Value> = out
            .iter()
            .filter(|r| r.topic == "security.blocklist")
            .map(value)
            .collect();
        assert_eq!(upserts.len(), 1);
        assert_eq!(upserts[0]["data"]["expires_at"], "2024-01-01T01:10:00Z");
        // The block_ip action is the burst's own decision, with its own expiry.
        let action = out
            .iter()
            .filter(|r| r.topic == "security.actions")
            .map(value)
            .find(|v| v["data"]["action"] == "block_ip")
            .unwrap();
        assert_eq!(action["data"]["expires_at"], "2024-01-01T01:00:20Z");
    }

    /// An upsert of 10.0.0.1 until `expires_at`, as the blocklist topic holds it.
    fn upsert_until(expires_at: &str) -> Vec<u8> {
        json!({"specversion": "1.0", "id": "x", "source": "/auditflow/security-monitor",
               "type": "security.blocklist.entry",
               "data": {"ip": "10.0.0.1", "reason": "brute_force", "expires_at": expires_at}})
        .to_string()
        .into_bytes()
    }

    fn with_view(m: SecurityMonitor) -> (SecurityMonitor, Arc<Mutex<BlocklistView>>) {
        let view = Arc::new(Mutex::new(BlocklistView::new(100)));
        (m.with_view(view.clone()), view)
    }

    #[test]
    fn a_longer_block_of_another_instance_holds_back_the_tombstone() {
        let (m, _, _) = blocked();
        let (mut m, view) = with_view(m);
        {
            let mut v = lock(&view);
            // Another instance blocks the ip until 02:00.
            v.apply(b"10.0.0.1", Some(&upsert_until("2024-01-01T02:00:00Z")));
            v.mark_loaded();
        }
        assert!(tombstones(&m.on_tick(EXPIRY_MS + 1)).is_empty());
        // Once the other block is gone from the view, nothing holds the ip any more here.
        lock(&view).apply(b"10.0.0.1", None);
        assert!(m.on_tick(EXPIRY_MS + 2_000).is_empty());
    }

    #[test]
    fn a_block_lifted_elsewhere_too_early_is_written_again() {
        let (m, _, out) = blocked();
        let (mut m, view) = with_view(m);
        let ours = out
            .iter()
            .find(|r| r.topic == "security.blocklist")
            .and_then(|r| r.payload.clone())
            .unwrap();
        lock(&view).apply(b"10.0.0.1", Some(&ours));
        // Not read to its end yet: nothing is compared.
        assert!(m.on_tick(T0_MS + 1_800_000).is_empty());
        lock(&view).mark_loaded();
        assert!(m.on_tick(T0_MS + 1_800_000).is_empty(), "the view agrees");
        // Another instance, on a stale view, tombstones the ip while our block stands.
        lock(&view).apply(b"10.0.0.1", None);
        let again = m.on_tick(T0_MS + 1_801_000);
        assert_eq!(again.len(), 1);
        assert_eq!(
            again[0].payload.as_deref(),
            Some(&ours[..]),
            "the same entry"
        );
        // A shorter upsert over ours is answered the same way; a longer one is not.
        lock(&view).apply(b"10.0.0.1", Some(&upsert_until("2024-01-01T00:30:00Z")));
        assert_eq!(m.on_tick(T0_MS + 1_802_000).len(), 1);
        lock(&view).apply(b"10.0.0.1", Some(&upsert_until("2024-01-01T05:00:00Z")));
        assert!(m.on_tick(T0_MS + 1_803_000).is_empty());
    }

    #[test]
    fn a_far_future_event_neither_lifts_a_block_nor_blinds_the_window() {
        let mut m = monitor();
        let p = Partition::new("audit.security.event", 0);
        m.on_assigned(std::slice::from_ref(&p));
        let mut out = Vec::new();
        for i in 0..21 {
            let record = if i == 10 {
                far_future_failure(i, "10.0.0.1")
            } else {
                failure(i, i)
            };
            out.extend(emitted(m.transform(&record)));
        }
        let levels: Vec<Value> = out
            .iter()
            .filter(|r| r.topic == "security.alerts")
            .map(|r| value(r)["data"]["level"].clone())
            .collect();
        assert_eq!(levels, ["medium", "high", "critical"]);
        // Another far-future event: no tombstone, the block stands.
        let far = far_future_failure(21, "10.0.0.2");
        assert!(tombstones(&emitted(m.transform(&far))).is_empty());
        let counts = m.take_engine_counts();
        assert_eq!((counts.future_dated, counts.active_blocks), (2, 1));
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
            matches!(m.transform(&bad), Transformed::DeadLetter(d) if d.reason == "invalid_json")
        );

        let mut schema = failure(0, 0);
        schema.payload = Some(
            json!({"id": "x", "source": "s", "type": "audit.security.event",
            "data": {"severity": "info"}})
            .to_string()
            .into_bytes(),
        );
        assert!(
            matches!(m.transform(&schema), Transformed::DeadLetter(d) if d.reason == "schema_violation")
        );

        let mut other = failure(0, 0);
        other.topic = "audit.data.access".into();
        assert_eq!(m.transform(&other), Transformed::Ignored);
    }

    #[test]
    fn a_header_without_a_value_is_no_attribute() {
        // Kafka lets a header carry no value; it sets no CloudEvents attribute, as in the other
        // services. A valueless `ce_specversion` on a structured record therefore does not make
        // it a binary-mode record with an empty specversion (an `invalid_envelope` dead letter).
        let mut m = monitor();
        let mut r = failure(0, 0);
        r.headers = vec![("ce_specversion".into(), None)];
        match m.transform(&r) {
            Transformed::Emitted { event_time_ms, .. } => {
                assert_eq!(event_time_ms, Some(T0_MS));
            }
            other => panic!("{other:?}"),
        }
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
            Transformed::Emitted { event_time_ms, .. } => {
                assert_eq!(event_time_ms, Some(T0_MS + 5_000))
            }
            other => panic!("{other:?}"),
        }
    }
}
