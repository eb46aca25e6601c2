//! `report user-activity --user U`: the recipe's `generate_user_activity_report` over the
//! user's stored trail in the range (so an erased user has none). Activity figures are given
//! raw and weighted by sampling (`estimated`).
//!
//! - per action: count, estimated count, success rate (of the records with an outcome) and
//!   average risk (low 1, medium 2, high 3, critical 4, of the records with a risk level);
//! - risk analysis: the distribution of risk levels, in each half of the range, and how the
//!   share of high and critical changed from the first half to the second;
//! - a timeline: per hour for ranges of 48 hours or less, per day otherwise, every bucket of the
//!   range (empty ones too), with its failures;
//! - the user's security events by type and severity.

use std::collections::BTreeMap;

use auditflow_store::{RecordKind, StoredRecord};
use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::figures::{
    Chart, ChartKind, Report, Section, Tally, count, label, round2, show, single,
};

/// The risk levels, in order, and their scores.
const RISK: [(&str, f64); 4] = [
    ("low", 1.0),
    ("medium", 2.0),
    ("high", 3.0),
    ("critical", 4.0),
];

fn risk_score(level: &str) -> Option<f64> {
    RISK.iter().find(|(l, _)| *l == level).map(|(_, s)| *s)
}

/// The level nearest an average score.
fn risk_level_of(score: f64) -> &'static str {
    let index = (score.round() as usize).clamp(1, RISK.len()) - 1;
    RISK[index].0
}

#[derive(Default)]
struct ActionFigures {
    tally: Tally,
    with_outcome: u64,
    succeeded: u64,
    risk_sum: f64,
    with_risk: u64,
}

/// Share of high and critical among `counts` (`None` when empty).
fn high_share(counts: &BTreeMap<String, u64>) -> Option<f64> {
    let total: u64 = counts.values().sum();
    let high: u64 = ["high", "critical"]
        .iter()
        .filter_map(|l| counts.get(*l))
        .sum();
    (total > 0).then(|| high as f64 / total as f64)
}

pub(crate) fn report(
    user: &str,
    records: &[StoredRecord],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Report {
    let mut total = Tally::default();
    let mut actions: BTreeMap<String, ActionFigures> = BTreeMap::new();
    for r in records {
        total.add(r);
        let a = actions.entry(label(&r.labels.action)).or_default();
        a.tally.add(r);
        if let Some(outcome) = &r.labels.outcome {
            a.with_outcome += 1;
            a.succeeded += u64::from(outcome == "success");
        }
        if let Some(score) = r.labels.risk_level.as_deref().and_then(risk_score) {
            a.risk_sum += score;
            a.with_risk += 1;
        }
    }
    let (by_action, _) = single(&count(records.iter().map(|r| label(&r.labels.action))));
    let (by_outcome, _) = single(&count(records.iter().map(|r| label(&r.labels.outcome))));
    let (by_kind, kind_rows) = single(&count(records.iter().map(|r| r.kind.as_str().to_owned())));
    let mut action_json = Vec::new();
    let mut action_rows = Vec::new();
    for (action, a) in &actions {
        let success_rate = (a.with_outcome > 0).then(|| a.succeeded as f64 / a.with_outcome as f64);
        let average = (a.with_risk > 0).then(|| a.risk_sum / a.with_risk as f64);
        action_json.push(json!({
            "action": action,
            "count": a.tally.count,
            "estimated": round2(a.tally.estimated),
            "success_rate": success_rate.map(round2),
            "average_risk": average.map(|s| json!({"score": round2(s), "level": risk_level_of(s)})),
        }));
        action_rows.push(vec![
            action.clone(),
            a.tally.count.to_string(),
            show(round2(a.tally.estimated)),
            success_rate.map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
            average.map_or("-".into(), |s| format!("{} ({:.2})", risk_level_of(s), s)),
        ]);
    }

    // Risk: user actions only (a security event has a severity instead).
    let middle = from + (to - from) / 2;
    let risks = |keep: &dyn Fn(&StoredRecord) -> bool| {
        count(
            records
                .iter()
                .filter(|r| r.kind == RecordKind::UserAction && keep(r))
                .filter_map(|r| r.labels.risk_level.clone()),
        )
    };
    let distribution = risks(&|_| true);
    let first = risks(&|r| r.event_time < middle);
    let second = risks(&|r| r.event_time >= middle);
    let (first_share, second_share) = (high_share(&first), high_share(&second));
    let change = first_share.zip(second_share).map(|(a, b)| round2(b - a));
    let risk_rows: Vec<Vec<String>> = RISK
        .iter()
        .map(|(level, _)| {
            let n = |c: &BTreeMap<String, u64>| c.get(*level).copied().unwrap_or(0).to_string();
            vec![(*level).to_owned(), n(&distribution), n(&first), n(&second)]
        })
        .collect();

    let (bucket, points) = timeline(records, from, to);
    // The table lists the buckets with records; the chart and the JSON have every one.
    let timeline_rows = points
        .iter()
        .filter(|p| p.tally.count > 0)
        .map(|p| {
            vec![
                p.start.clone(),
                p.tally.count.to_string(),
                show(round2(p.tally.estimated)),
                p.failures.to_string(),
            ]
        })
        .collect();
    let timeline_json: Vec<Value> = points
        .iter()
        .map(|p| {
            json!({"start": p.start, "count": p.tally.count,
                   "estimated": round2(p.tally.estimated), "failures": p.failures})
        })
        .collect();

    let security: Vec<&StoredRecord> = records
        .iter()
        .filter(|r| r.kind == RecordKind::SecurityEvent)
        .collect();
    let by_type = count(security.iter().map(|r| label(&r.labels.action)));
    let by_severity = count(security.iter().map(|r| label(&r.labels.severity)));
    let security_rows = count(
        security
            .iter()
            .map(|r| (label(&r.labels.action), label(&r.labels.severity))),
    )
    .into_iter()
    .map(|((t, s), n)| vec![t, s, n.to_string()])
    .collect();

    let charts = vec![
        Chart {
            title: if bucket == "hour" {
                "records per hour (estimated)"
            } else {
                "records per day (estimated)"
            },
            kind: ChartKind::Timeline,
            bars: points
                .iter()
                .map(|p| (p.start.clone(), round2(p.tally.estimated)))
                .collect(),
        },
        Chart::categories(
            "records by action",
            actions.iter().map(|(a, f)| (a, f.tally.count)),
        ),
        Chart::categories(
            "user actions by risk",
            RISK.iter()
                .map(|(level, _)| (*level, distribution.get(*level).copied().unwrap_or(0))),
        ),
    ];
    Report {
        records: records.len() as u64,
        charts,
        json: json!({
            "user_id": user,
            "total": total.count,
            "estimated_total": round2(total.estimated),
            "by_kind": by_kind,
            "by_action": by_action,
            "by_outcome": by_outcome,
            "by_risk": distribution,
            "actions": action_json,
            "risk_analysis": {
                "distribution": distribution,
                "first_half": first,
                "second_half": second,
                "high_or_critical_share": {
                    "first_half": first_share.map(round2),
                    "second_half": second_share.map(round2),
                    "change": change,
                },
            },
            "timeline": {"bucket": bucket, "points": timeline_json},
            "security_events": {
                "total": security.len(),
                "by_type": by_type,
                "by_severity": by_severity,
            },
        }),
        sections: vec![
            Section::new("records by kind", &["KIND", "COUNT"], kind_rows),
            Section::new(
                "actions",
                &["ACTION", "COUNT", "ESTIMATED", "SUCCESS", "AVERAGE RISK"],
                action_rows,
            ),
            Section::new(
                "risk of user actions (first half, second half of the range)",
                &["RISK", "ALL", "FIRST HALF", "SECOND HALF"],
                risk_rows,
            ),
            Section::new(
                if bucket == "hour" {
                    "timeline, per hour (hours with records)"
                } else {
                    "timeline, per day (days with records)"
                },
                &["START", "COUNT", "ESTIMATED", "FAILURES"],
                timeline_rows,
            ),
            Section::new(
                "security events",
                &["EVENT TYPE", "SEVERITY", "COUNT"],
                security_rows,
            ),
        ],
    }
}

pub(crate) struct Point {
    pub(crate) start: String,
    pub(crate) tally: Tally,
    pub(crate) failures: u64,
}

/// Every bucket of `[from, to)` with the records in it: hours for 48 hours or less, else days.
pub(crate) fn timeline(
    records: &[StoredRecord],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (&'static str, Vec<Point>) {
    let (name, step) = if to - from <= Duration::hours(48) {
        ("hour", Duration::hours(1))
    } else {
        ("day", Duration::days(1))
    };
    let first = from.duration_trunc(step).unwrap_or(from);
    let mut points = Vec::new();
    let mut start = first;
    while start < to {
        points.push(Point {
            start: start.to_rfc3339_opts(SecondsFormat::Secs, true),
            tally: Tally::default(),
            failures: 0,
        });
        start += step;
    }
    for r in records {
        let Ok(index) = usize::try_from((r.event_time - first).num_seconds() / step.num_seconds())
        else {
            continue;
        };
        if let Some(point) = points.get_mut(index) {
            point.tally.add(r);
            point.failures += u64::from(r.labels.outcome.as_deref() == Some("failure"));
        }
    }
    (name, points)
}

#[cfg(test)]
mod tests {
    use super::super::figures::testing::record;
    use super::*;
    use auditflow_store::{Labels, RetentionClass};

    fn action(time: &str, action: &str, outcome: &str, risk: &str, rate: f64) -> StoredRecord {
        record(
            RecordKind::UserAction,
            RetentionClass::General,
            time,
            Labels {
                action: Some(action.into()),
                outcome: Some(outcome.into()),
                risk_level: Some(risk.into()),
                sample_rate: Some(rate),
                ..Labels::default()
            },
        )
    }

    #[test]
    fn actions_risk_timeline_and_security_events_are_counted_exactly() {
        let from: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().unwrap();
        let to: DateTime<Utc> = "2026-11-21T00:00:00Z".parse().unwrap();
        let records = vec![
            action(
                "2026-11-20T01:10:00Z",
                "login_attempt",
                "success",
                "low",
                1.0,
            ),
            action(
                "2026-11-20T01:20:00Z",
                "login_attempt",
                "failure",
                "medium",
                1.0,
            ),
            action(
                "2026-11-20T13:00:00Z",
                "login_attempt",
                "failure",
                "high",
                1.0,
            ),
            action(
                "2026-11-20T14:00:00Z",
                "user.page.view",
                "success",
                "low",
                0.1,
            ),
            record(
                RecordKind::SecurityEvent,
                RetentionClass::Security,
                "2026-11-20T13:00:00Z",
                Labels {
                    action: Some("failed_login".into()),
                    severity: Some("critical".into()),
                    ..Labels::default()
                },
            ),
        ];
        let r = report("u1", &records, from, to).json;
        assert_eq!(r["total"], 5);
        assert_eq!(r["estimated_total"], 14.0, "the page view stands for ten");
        assert_eq!(r["by_action"]["login_attempt"], 3);
        let login = &r["actions"][1];
        assert_eq!(login["action"], "login_attempt");
        assert_eq!(login["count"], 3);
        assert_eq!(login["success_rate"], 0.33);
        assert_eq!(login["average_risk"]["score"], 2.0);
        assert_eq!(login["average_risk"]["level"], "medium");
        assert_eq!(r["actions"][2]["action"], "user.page.view");
        assert_eq!(r["actions"][2]["estimated"], 10.0);
        // The security event has no outcome and no risk.
        assert_eq!(r["actions"][0]["action"], "failed_login");
        assert_eq!(r["actions"][0]["success_rate"], Value::Null);
        assert_eq!(r["actions"][0]["average_risk"], Value::Null);
        let risk = &r["risk_analysis"];
        assert_eq!(
            risk["distribution"],
            json!({"low": 2, "medium": 1, "high": 1})
        );
        assert_eq!(risk["first_half"], json!({"low": 1, "medium": 1}));
        assert_eq!(risk["second_half"], json!({"low": 1, "high": 1}));
        assert_eq!(risk["high_or_critical_share"]["change"], 0.5);
        let timeline = &r["timeline"];
        assert_eq!(timeline["bucket"], "hour");
        assert_eq!(timeline["points"].as_array().unwrap().len(), 24);
        assert_eq!(timeline["points"][1]["count"], 2);
        assert_eq!(timeline["points"][1]["failures"], 1);
        assert_eq!(timeline["points"][13]["count"], 2);
        assert_eq!(timeline["points"][14]["estimated"], 10.0);
        assert_eq!(timeline["points"][0]["count"], 0);
        assert_eq!(r["security_events"]["total"], 1);
        assert_eq!(r["security_events"]["by_severity"]["critical"], 1);
    }

    #[test]
    fn long_ranges_are_per_day() {
        let from: DateTime<Utc> = "2026-11-01T06:00:00Z".parse().unwrap();
        let to: DateTime<Utc> = "2026-11-04T00:00:00Z".parse().unwrap();
        let (bucket, points) = timeline(&[], from, to);
        assert_eq!(bucket, "day");
        let starts: Vec<&str> = points.iter().map(|p| p.start.as_str()).collect();
        assert_eq!(
            starts,
            [
                "2026-11-01T00:00:00Z",
                "2026-11-02T00:00:00Z",
                "2026-11-03T00:00:00Z"
            ]
        );
    }
}
