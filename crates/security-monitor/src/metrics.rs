//! The security monitor's own metrics: the `auditflow_detect_*` families (docs/operations.md),
//! what the detection engine did and holds.
//!
//! They sit on the process's one registry beside the runtime's families
//! ([`Metrics::families`]: registered once per process, labelled by service like the rest),
//! and they are recorded only when the transaction of the work they count commits: the monitor
//! hands the loop an [`OnCommit`](auditflow_runtime::kafka::transactional::OnCommit) that
//! records its [`EngineCounts`]. Their labels are the engine's enums ([`Rule`],
//! [`ThreatLevel`]) and static action names, so no ip or user id can become a label value.

use std::collections::BTreeMap;
use std::sync::Arc;

use auditflow_core::detect::{Rule, ThreatLevel};
use auditflow_runtime::Metrics;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// What the detection engines did since they were last asked. The counters count live
/// judgements only — replaying history after a rebalance rebuilds state and counts nothing
/// again; the gauges are a snapshot of the engines now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineCounts {
    /// Events further behind their key than the grace period: not judged by the rules there.
    pub too_late: u64,
    /// Events dated further ahead than the allowed clock skew: judged at the detector's
    /// clock, which they did not move.
    pub future_dated: u64,
    /// Events naming an ip that is not an ip address (no source ip, never a key).
    pub unparsable_ips: u64,
    /// Keys dropped from the windows: idle, or the stalest at the `max_keys` or byte cap.
    pub evicted_keys: u64,
    /// Alerts raised, by rule and level.
    pub alerts: BTreeMap<(Rule, ThreatLevel), u64>,
    /// Actions emitted, by action name (`block_ip`, `disable_account`).
    pub actions: BTreeMap<&'static str, u64>,
    /// Keys in the windows now, over every rule family and owned partition.
    pub tracked_keys: usize,
    /// Ips blocked now (blocklist entries whose tombstone has not gone out yet).
    pub active_blocks: usize,
    /// What the engine's state weighs now, in bytes.
    pub state_bytes: usize,
}

/// The `auditflow_detect_*` families, as registered on the process's registry.
struct Families {
    too_late: IntCounterVec,
    future_dated: IntCounterVec,
    unparsable_ips: IntCounterVec,
    evicted_keys: IntCounterVec,
    tracked_keys: IntGaugeVec,
    active_blocks: IntGaugeVec,
    state_bytes: IntGaugeVec,
    alerts: IntCounterVec,
    actions: IntCounterVec,
}

impl Families {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["service"])?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        Ok(Self {
            too_late: counter(
                "auditflow_detect_too_late_total",
                "Events further behind their key's newest event than the grace period, not judged by the rules keyed there.",
                &["service"],
            )?,
            future_dated: counter(
                "auditflow_detect_future_dated_total",
                "Events dated further ahead than max_clock_skew_secs: judged at the detector's clock, which they did not move.",
                &["service"],
            )?,
            unparsable_ips: counter(
                "auditflow_detect_unparsable_ips_total",
                "Events whose ip is not an ip address: no source ip, never a key.",
                &["service"],
            )?,
            evicted_keys: counter(
                "auditflow_detect_evicted_keys_total",
                "Keys (ips, users) dropped from the detection windows: idle, or the stalest at the max_keys or max_state_bytes cap.",
                &["service"],
            )?,
            tracked_keys: gauge(
                "auditflow_detect_tracked_keys",
                "Keys in the detection windows now, over every rule family and owned partition.",
            )?,
            active_blocks: gauge(
                "auditflow_detect_active_blocks",
                "Ips blocked now: blocklist entries whose tombstone has not gone out yet.",
            )?,
            state_bytes: gauge(
                "auditflow_detect_state_bytes",
                "What the detection windows, baselines and blocks weigh now, over every owned partition.",
            )?,
            alerts: counter(
                "auditflow_detect_alerts_total",
                "Security alerts raised, by rule and level.",
                &["service", "rule", "level"],
            )?,
            actions: counter(
                "auditflow_detect_actions_total",
                "Security actions emitted, by action (block_ip, disable_account).",
                &["service", "action"],
            )?,
        })
    }
}

/// One monitor's handle on the `auditflow_detect_*` families. Cheap to clone.
#[derive(Clone)]
pub struct DetectMetrics {
    service: String,
    families: Arc<Families>,
}

impl DetectMetrics {
    /// The families on `metrics`' registry (registered on first use), labelled `service`.
    pub fn new(metrics: &Metrics, service: &str) -> auditflow_runtime::Result<Self> {
        Ok(Self {
            service: service.to_owned(),
            families: metrics.families(Families::register)?,
        })
    }

    /// Adds the counters of `counts` and sets the gauges to its snapshot.
    pub fn record(&self, counts: &EngineCounts) {
        let service = self.service.as_str();
        let f = &self.families;
        f.too_late
            .with_label_values(&[service])
            .inc_by(counts.too_late);
        f.future_dated
            .with_label_values(&[service])
            .inc_by(counts.future_dated);
        f.unparsable_ips
            .with_label_values(&[service])
            .inc_by(counts.unparsable_ips);
        f.evicted_keys
            .with_label_values(&[service])
            .inc_by(counts.evicted_keys);
        for ((rule, level), n) in &counts.alerts {
            f.alerts
                .with_label_values(&[service, rule.as_str(), level.as_str()])
                .inc_by(*n);
        }
        for (action, n) in &counts.actions {
            f.actions.with_label_values(&[service, action]).inc_by(*n);
        }
        f.tracked_keys
            .with_label_values(&[service])
            .set(counts.tracked_keys as i64);
        f.active_blocks
            .with_label_values(&[service])
            .set(counts.active_blocks as i64);
        f.state_bytes
            .with_label_values(&[service])
            .set(counts.state_bytes as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_gauges_take_the_latest() {
        let metrics = Metrics::new().unwrap();
        let m = DetectMetrics::new(&metrics, "security-monitor").unwrap();
        let mut counts = EngineCounts {
            too_late: 2,
            future_dated: 4,
            unparsable_ips: 1,
            evicted_keys: 1,
            tracked_keys: 7,
            active_blocks: 1,
            ..Default::default()
        };
        counts
            .alerts
            .insert((Rule::BruteForce, ThreatLevel::Critical), 1);
        counts.actions.insert("block_ip", 1);
        m.record(&counts);
        let mut later = EngineCounts {
            too_late: 1,
            future_dated: 1,
            tracked_keys: 3,
            state_bytes: 4096,
            ..Default::default()
        };
        later
            .alerts
            .insert((Rule::BruteForce, ThreatLevel::Critical), 2);
        // A second monitor in the same process shares the families.
        DetectMetrics::new(&metrics, "security-monitor")
            .unwrap()
            .record(&later);
        let text = metrics.render();
        for series in [
            r#"auditflow_detect_too_late_total{service="security-monitor"} 3"#,
            r#"auditflow_detect_future_dated_total{service="security-monitor"} 5"#,
            r#"auditflow_detect_unparsable_ips_total{service="security-monitor"} 1"#,
            r#"auditflow_detect_evicted_keys_total{service="security-monitor"} 1"#,
            r#"auditflow_detect_tracked_keys{service="security-monitor"} 3"#,
            r#"auditflow_detect_state_bytes{service="security-monitor"} 4096"#,
            r#"auditflow_detect_active_blocks{service="security-monitor"} 0"#,
            r#"auditflow_detect_alerts_total{level="critical",rule="brute_force",service="security-monitor"} 3"#,
            r#"auditflow_detect_actions_total{action="block_ip",service="security-monitor"} 1"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }
}
