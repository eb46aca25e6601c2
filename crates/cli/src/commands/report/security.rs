//! `report security`: the recipe's `generate_security_summary` over the range.
//!
//! Counts come from the clear labels of every stored security event and alert (so erased users'
//! records count). The top threat sources need the source ip, which is inside the encrypted
//! event: they are counted over the security events and alerts whose stored data this store can
//! still decrypt, and the report says how many of how many that was. Blocked attempts are the
//! security events their producer marked `blocked`, and the monitor's responses, which live on
//! Kafka rather than in the store: its `block_ip` and `disable_account` actions of the range
//! (`security.actions`) and its blocklist (`security.blocklist`: the blocks added in the range,
//! and those standing now), read to their ends when the report runs ([`Responses`]). When Kafka
//! cannot be read the report says so instead of counting them.
//!
//! Recommendations are rules over these figures; each names the figures that triggered it.

use std::collections::BTreeMap;

use auditflow_store::{RecordKind, StoredRecord};
use chrono::{DateTime, Utc};
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

/// A Kafka record's key and value (`None`: absent; a value absent is a tombstone).
pub(crate) type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A block's latest entry: when it was added, and until when it stands.
pub(crate) type Block = (DateTime<Utc>, DateTime<Utc>);

/// The monitor's responses, as its topics hold them: each action's kind and time, and the
/// blocklist's latest state per blocked source.
#[derive(Debug, Clone, Default)]
pub(crate) struct Responses {
    /// `(time, action)` of every action on `security.actions`.
    pub(crate) actions: Vec<(DateTime<Utc>, String)>,
    /// Per blocked source, its latest entry's `(time, expires_at)`; `None` after a tombstone.
    pub(crate) blocks: BTreeMap<String, Option<Block>>,
}

impl Responses {
    /// Reads the two topics' records: CloudEvents in JSON, or tombstones (no value) on the
    /// blocklist. A record that is neither is skipped and counted in the returned number.
    pub(crate) fn from_records(actions: &[KeyValue], blocklist: &[KeyValue]) -> (Self, u64) {
        let mut out = Self::default();
        let mut unreadable = 0;
        let time =
            |v: &Value, key: &str| -> Option<DateTime<Utc>> { v.get(key)?.as_str()?.parse().ok() };
        for (_, value) in actions {
            let event: Option<Value> = value
                .as_deref()
                .and_then(|v| serde_json::from_slice(v).ok());
            match event
                .as_ref()
                .and_then(|e| Some((time(e, "time")?, e["data"]["action"].as_str()?.to_owned())))
            {
                Some(action) => out.actions.push(action),
                None => unreadable += 1,
            }
        }
        for (key, value) in blocklist {
            let Some(key) = key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
            else {
                unreadable += 1;
                continue;
            };
            let Some(value) = value else {
                out.blocks.insert(key, None);
                continue;
            };
            let event: Option<Value> = serde_json::from_slice(value).ok();
            match event
                .as_ref()
                .and_then(|e| Some((time(e, "time")?, time(&e["data"], "expires_at")?)))
            {
                Some(entry) => {
                    out.blocks.insert(key, Some(entry));
                }
                None => unreadable += 1,
            }
        }
        (out, unreadable)
    }
}

/// `labelled`: every security event and alert of the range, by their clear labels;
/// `readable`: the same records as the store could decrypt them (`event` `None` when it could
/// not); `responses`: the monitor's topics as read now, or why they could not be.
pub(crate) fn report(
    labelled: &[StoredRecord],
    readable: &[StoredRecord],
    responses: Result<&Responses, String>,
    (from, to, now): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>),
) -> Report {
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
    let in_range = |t: &DateTime<Utc>| *t >= from && *t < to;
    let (responses_json, response_rows) = match &responses {
        Ok(r) => {
            let actions = count(
                r.actions
                    .iter()
                    .filter(|(t, _)| in_range(t))
                    .map(|(_, a)| a.clone()),
            );
            let added = r
                .blocks
                .values()
                .flatten()
                .filter(|(t, _)| in_range(t))
                .count();
            let standing = r
                .blocks
                .values()
                .flatten()
                .filter(|(_, expires)| *expires > now)
                .count();
            let n = |k: &str| actions.get(k).copied().unwrap_or(0);
            (
                json!({
                    "actions": {"block_ip": n("block_ip"), "disable_account": n("disable_account")},
                    "blocklist": {"added": added, "standing_now": standing},
                }),
                vec![
                    vec!["block_ip actions".into(), n("block_ip").to_string()],
                    vec![
                        "disable_account actions".into(),
                        n("disable_account").to_string(),
                    ],
                    vec!["blocks added".into(), added.to_string()],
                    vec!["blocks standing now".into(), standing.to_string()],
                ],
            )
        }
        Err(why) => (
            json!({"actions": null, "blocklist": null, "unavailable": why}),
            vec![vec![
                "the monitor's responses".into(),
                format!("not read: {why}"),
            ]],
        ),
    };
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
            "blocked_attempts": {
                "security_events_blocked": blocked,
                "responses": responses_json,
            },
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
                "the monitor's responses (security.actions, security.blocklist)",
                &["FIGURE", "VALUE"],
                response_rows,
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
        let t = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let event = |ty: &str, time: &str, data: Value| -> Option<Vec<u8>> {
            Some(serde_json::to_vec(&json!({"type": ty, "time": time, "data": data})).unwrap())
        };
        let actions = vec![
            (
                None,
                event(
                    "security.action",
                    "2026-11-20T10:00:01Z",
                    json!({"action": "block_ip"}),
                ),
            ),
            (
                None,
                event(
                    "security.action",
                    "2026-11-20T10:00:02Z",
                    json!({"action": "disable_account"}),
                ),
            ),
            // Outside the range.
            (
                None,
                event(
                    "security.action",
                    "2026-10-01T00:00:00Z",
                    json!({"action": "block_ip"}),
                ),
            ),
            (None, Some(b"not json".to_vec())),
        ];
        let key = |k: &str| Some(k.as_bytes().to_vec());
        let blocklist = vec![
            (
                key("198.51.100.7"),
                event(
                    "security.blocklist.entry",
                    "2026-11-20T10:00:01Z",
                    json!({"expires_at": "2026-11-20T11:00:01Z"}),
                ),
            ),
            (
                key("203.0.113.9"),
                event(
                    "security.blocklist.entry",
                    "2026-11-20T10:30:00Z",
                    json!({"expires_at": "2026-11-20T12:00:00Z"}),
                ),
            ),
            // Lifted: a tombstone.
            (key("198.51.100.7"), None),
        ];
        let (responses, unreadable) = Responses::from_records(&actions, &blocklist);
        assert_eq!(unreadable, 1);
        let range = (
            t("2026-11-20T00:00:00Z"),
            t("2026-11-21T00:00:00Z"),
            t("2026-11-20T11:30:00Z"),
        );
        let r = report(&records, &records, Ok(&responses), range).json;
        let responded = &r["blocked_attempts"]["responses"];
        assert_eq!(
            responded["actions"],
            json!({"block_ip": 1, "disable_account": 1})
        );
        assert_eq!(
            responded["blocklist"],
            json!({"added": 1, "standing_now": 1})
        );
        let offline = report(&records, &records, Err("Kafka unreachable".into()), range).json;
        assert_eq!(
            offline["blocked_attempts"]["responses"]["actions"],
            Value::Null
        );
        assert_eq!(offline["total_events"], 4);
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
        let now: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().unwrap();
        let r = report(&[], &[], Ok(&Responses::default()), (now, now, now)).json;
        assert_eq!(r["recommendations"], json!([]));
        assert_eq!(r["top_threat_sources"]["of"], 0);
    }
}
