//! `report security`: the recipe's `generate_security_summary` over the range.
//!
//! Counts come from the clear labels of every stored security event and alert (so erased users'
//! records count). The top threat sources need the source ip, which is inside the encrypted
//! event: they are counted over the security events and alerts whose stored data this store can
//! still decrypt, and the report says how many of how many that was. Blocked attempts are the
//! security events their producer marked `blocked`; the monitor's `block_ip` and
//! `disable_account` actions and its blocklist live on Kafka topics, not in the store, and are
//! not counted here.
//!
//! Recommendations are rules over these figures; each names the figures that triggered it.

use std::collections::BTreeMap;

use auditflow_store::{RecordKind, StoredRecord};
use serde_json::{Value, json};

use super::figures::{Chart, Report, Section, count, label, pairs};

/// How many threat sources the report lists.
const TOP_SOURCES: usize = 10;

#[derive(Default, Clone, Copy)]
struct Source {
    failed_logins: u64,
    alerts: u64,
}

/// The `source_ip` of a decrypted security event or alert.
fn source_ip(record: &StoredRecord) -> Option<String> {
    record.event.as_ref()?["data"]["source_ip"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .map(str::to_owned)
}

/// `labelled`: every security event and alert of the range, by their clear labels;
/// `readable`: the same records as the store could decrypt them (`event` `None` when it could
/// not).
pub(crate) fn report(labelled: &[StoredRecord], readable: &[StoredRecord]) -> Report {
    let of = |kind: RecordKind| labelled.iter().filter(move |r| r.kind == kind);
    let events = count(
        of(RecordKind::SecurityEvent).map(|r| (label(&r.labels.action), label(&r.labels.severity))),
    );
    let total_events: u64 = events.values().sum();
    let blocked = of(RecordKind::SecurityEvent)
        .filter(|r| r.labels.blocked == Some(true))
        .count() as u64;
    let critical_events = of(RecordKind::SecurityEvent)
        .filter(|r| r.labels.severity.as_deref() == Some("critical"))
        .count() as u64;
    // An alert's `action` label is its rule, its `severity` its level.
    let alerts =
        count(of(RecordKind::Alert).map(|r| (label(&r.labels.action), label(&r.labels.severity))));
    let total_alerts: u64 = alerts.values().sum();
    let critical_alerts = of(RecordKind::Alert)
        .filter(|r| r.labels.severity.as_deref() == Some("critical"))
        .count() as u64;
    let by_rule = count(of(RecordKind::Alert).map(|r| label(&r.labels.action)));

    let considered: Vec<&StoredRecord> = readable
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::SecurityEvent | RecordKind::Alert))
        .collect();
    let decrypted = considered.iter().filter(|r| r.event.is_some()).count();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    for r in &considered {
        let Some(ip) = source_ip(r) else { continue };
        let s = sources.entry(ip).or_default();
        match r.kind {
            RecordKind::Alert => s.alerts += 1,
            _ if r.labels.action.as_deref() == Some("failed_login") => s.failed_logins += 1,
            _ => {}
        }
    }
    let mut ranked: Vec<(String, Source)> = sources
        .into_iter()
        .filter(|(_, s)| s.failed_logins + s.alerts > 0)
        .collect();
    ranked.sort_by(|(a, x), (b, y)| {
        (y.failed_logins + y.alerts)
            .cmp(&(x.failed_logins + x.alerts))
            .then_with(|| a.cmp(b))
    });
    ranked.truncate(TOP_SOURCES);

    let (events_json, event_rows) = pairs(&events, "event_type", "severity");
    let (alerts_json, alert_rows) = pairs(&alerts, "rule", "level");
    let figures = Figures {
        total_events,
        blocked,
        critical_events,
        critical_alerts,
        by_rule: &by_rule,
        failed_logins: of(RecordKind::SecurityEvent)
            .filter(|r| r.labels.action.as_deref() == Some("failed_login"))
            .count() as u64,
    };
    let recommendations = recommend(&figures);
    let source_rows = ranked
        .iter()
        .map(|(ip, s)| {
            vec![
                ip.clone(),
                s.failed_logins.to_string(),
                s.alerts.to_string(),
            ]
        })
        .collect();
    let recommendation_rows = recommendations
        .iter()
        .map(|r| {
            vec![
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["text"].as_str().unwrap_or_default().to_owned(),
                r["because"]
                    .as_object()
                    .map(|figures| {
                        figures
                            .iter()
                            .map(|(k, v)| format!("{k} = {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let severities = count(of(RecordKind::SecurityEvent).map(|r| label(&r.labels.severity)));
    let charts = vec![
        Chart::categories("alerts by rule", by_rule.clone()),
        Chart::categories("security events by severity", severities),
        Chart::categories(
            "top threat sources: failed logins and alerts",
            ranked
                .iter()
                .map(|(ip, s)| (ip.clone(), s.failed_logins + s.alerts)),
        ),
    ];
    Report {
        records: labelled.len() as u64,
        charts,
        json: json!({
            "total_events": total_events,
            "critical_events": {"security_events": critical_events, "alerts": critical_alerts},
            "blocked_attempts": {"security_events_blocked": blocked},
            "security_events": {
                "total": total_events,
                "blocked": blocked,
                "by_type_and_severity": events_json,
            },
            "alerts": {
                "total": total_alerts,
                "by_rule": by_rule,
                "by_rule_and_level": alerts_json,
            },
            "top_threat_sources": {
                "basis": "security events and alerts whose stored data could be decrypted",
                "decrypted": decrypted,
                "of": considered.len(),
                "sources": ranked.iter().map(|(ip, s)| json!({
                    "source_ip": ip, "failed_logins": s.failed_logins, "alerts": s.alerts,
                })).collect::<Vec<_>>(),
            },
            "recommendations": recommendations,
        }),
        sections: vec![
            Section::new(
                "summary",
                &["FIGURE", "VALUE"],
                vec![
                    vec!["security events".into(), total_events.to_string()],
                    vec![
                        "critical security events".into(),
                        critical_events.to_string(),
                    ],
                    vec!["blocked by their producer".into(), blocked.to_string()],
                    vec!["alerts".into(), total_alerts.to_string()],
                    vec!["critical alerts".into(), critical_alerts.to_string()],
                ],
            ),
            Section::new(
                "security events",
                &["EVENT TYPE", "SEVERITY", "COUNT"],
                event_rows,
            ),
            Section::new("alerts", &["RULE", "LEVEL", "COUNT"], alert_rows),
            Section::new(
                "top threat sources (of the records the store could decrypt)",
                &["SOURCE IP", "FAILED LOGINS", "ALERTS"],
                source_rows,
            ),
            Section::new(
                "recommendations",
                &["ID", "RECOMMENDATION", "BECAUSE"],
                recommendation_rows,
            ),
        ],
    }
}

struct Figures<'a> {
    total_events: u64,
    blocked: u64,
    critical_events: u64,
    critical_alerts: u64,
    by_rule: &'a BTreeMap<String, u64>,
    failed_logins: u64,
}

/// The rule-based recommendations: each `{id, text, because}`, `because` the figures that
/// triggered it.
fn recommend(f: &Figures<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    let rule = |name: &str| f.by_rule.get(name).copied().unwrap_or(0);
    let mut say = |id: &str, text: &str, because: Value| {
        out.push(json!({"id": id, "text": text, "because": because}));
    };
    if rule("brute_force") > 0 {
        say(
            "lockout",
            "Brute-force attempts were detected: enforce account lockout or step-up \
             authentication after repeated failures, and block the sources listed.",
            json!({"alerts.brute_force": rule("brute_force")}),
        );
    }
    if rule("credential_stuffing") > 0 {
        say(
            "rate_limit",
            "Credential stuffing was detected: rate-limit logins per source, check passwords \
             against breached-password lists, and require MFA.",
            json!({"alerts.credential_stuffing": rule("credential_stuffing")}),
        );
    }
    if rule("impossible_travel") > 0 {
        say(
            "review_sessions",
            "Impossible travel was detected: review and revoke the affected users' sessions and \
             require re-authentication.",
            json!({"alerts.impossible_travel": rule("impossible_travel")}),
        );
    }
    if rule("privilege_escalation") > 0 {
        say(
            "review_privileges",
            "Privilege escalations were detected: review the role changes and require a second \
             approver for privileged roles.",
            json!({"alerts.privilege_escalation": rule("privilege_escalation")}),
        );
    }
    if f.critical_events + f.critical_alerts > 0 {
        say(
            "investigate_critical",
            "Critical security events or alerts occurred: investigate each and confirm the \
             response taken.",
            json!({"critical_events.security_events": f.critical_events,
                   "critical_events.alerts": f.critical_alerts}),
        );
    }
    if f.total_events > 0 && f.blocked * 2 < f.total_events {
        say(
            "block_at_source",
            "Fewer than half of the security events were blocked by the systems that reported \
             them: consider blocking at the edge on the monitor's actions.",
            json!({"security_events.total": f.total_events, "security_events.blocked": f.blocked}),
        );
    }
    if f.failed_logins > 0 && rule("brute_force") == 0 && rule("credential_stuffing") == 0 {
        say(
            "watch_failures",
            "Failed logins occurred without reaching a detection threshold: keep watching \
             their sources.",
            json!({"security_events.failed_login": f.failed_logins}),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::figures::testing::record;
    use super::*;
    use auditflow_store::{Labels, RetentionClass};

    fn event(kind: RecordKind, action: &str, severity: &str, ip: Option<&str>) -> StoredRecord {
        let mut r = record(
            kind,
            RetentionClass::Security,
            "2026-11-20T10:00:00Z",
            Labels {
                action: Some(action.into()),
                severity: Some(severity.into()),
                blocked: (kind == RecordKind::SecurityEvent).then_some(false),
                ..Labels::default()
            },
        );
        r.event = ip.map(|ip| json!({"data": {"source_ip": ip}}));
        r
    }

    #[test]
    fn sources_come_from_what_decrypts_and_recommendations_name_their_figures() {
        use RecordKind::*;
        let records = vec![
            event(
                SecurityEvent,
                "failed_login",
                "warning",
                Some("198.51.100.7"),
            ),
            event(
                SecurityEvent,
                "failed_login",
                "warning",
                Some("198.51.100.7"),
            ),
            event(
                SecurityEvent,
                "failed_login",
                "critical",
                Some("203.0.113.9"),
            ),
            // An erased user's event: counted, but its ip cannot be read.
            event(SecurityEvent, "failed_login", "warning", None),
            event(Alert, "brute_force", "critical", Some("198.51.100.7")),
        ];
        let r = report(&records, &records).json;
        assert_eq!(r["total_events"], 4);
        assert_eq!(r["critical_events"]["security_events"], 1);
        assert_eq!(r["critical_events"]["alerts"], 1);
        assert_eq!(r["blocked_attempts"]["security_events_blocked"], 0);
        assert_eq!(r["alerts"]["by_rule"]["brute_force"], 1);
        let top = &r["top_threat_sources"];
        assert_eq!(
            (top["decrypted"].as_u64(), top["of"].as_u64()),
            (Some(4), Some(5))
        );
        assert_eq!(
            top["sources"],
            json!([
                {"source_ip": "198.51.100.7", "failed_logins": 2, "alerts": 1},
                {"source_ip": "203.0.113.9", "failed_logins": 1, "alerts": 0},
            ])
        );
        let ids: Vec<&str> = r["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["lockout", "investigate_critical", "block_at_source"]);
        assert_eq!(
            r["recommendations"][0]["because"],
            json!({"alerts.brute_force": 1})
        );
    }

    #[test]
    fn a_quiet_period_recommends_nothing() {
        let r = report(&[], &[]).json;
        assert_eq!(r["recommendations"], json!([]));
        assert_eq!(r["top_threat_sources"]["of"], 0);
    }
}
