//! `report compliance`: the recipe's `compliance_audit_report` over the range, from the clear
//! labels of every stored record — the operator log's records included
//! ([docs/operator-log.md](../../../../../docs/operator-log.md)).
//!
//! - GDPR requests by type and outcome, data exports and account deletions (with how many
//!   records the deletions made unreadable, from their receipts' record counts): the
//!   `gdpr.*` operator events;
//! - every command on audit data by command and outcome (who looked, in number);
//! - retention per class: its period, the records of the range by kind, the oldest, and how
//!   many are older than the period by event time (a record's TTL runs from when it was
//!   stored, so only a record that arrived late can be: each is named by number);
//! - audit completeness: the tamper-evident log's leaves and how many are not yet covered by a
//!   signed checkpoint; the `verify` runs of the range (the operator log has each one's outcome
//!   and verified count); the dead letters of the range by reason and service, read from the
//!   dead-letter topic when the report runs ([`DeadLetters`]); the inputs sampled out in the
//!   range by type, from the classifier's stored sampling summaries (one per input type,
//!   partition and hour of event time in each of its transactions, so the range is exact to
//!   the hour).

use std::collections::BTreeMap;

use auditflow_core::{Config, RetentionClass};
use auditflow_store::{RecordKind, StoredRecord};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, json};

use super::figures::{Chart, Report, Section, count, label};

/// What the tamper-evident log holds: logs, leaves, leaves after their log's last checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogSummary {
    pub(crate) logs: u64,
    pub(crate) leaves: u64,
    pub(crate) not_covered: u64,
}

/// A dead letter as counted: its Kafka timestamp (ms) and headers.
pub(crate) type Letter = (Option<i64>, Vec<(String, Option<Vec<u8>>)>);

/// The dead letters of the range, by reason and by the service that refused them, as the
/// dead-letter topic holds them (it keeps `[topics] dead_letter_retention_days`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DeadLetters {
    pub(crate) total: u64,
    pub(crate) by_reason: BTreeMap<String, u64>,
    pub(crate) by_service: BTreeMap<String, u64>,
}

impl DeadLetters {
    /// Counts the records of the dead-letter topic whose Kafka timestamp is in `[from, to)`,
    /// each by its last `auditflow.error` and `auditflow.service` header.
    pub(crate) fn count(records: &[Letter], from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        let mut out = Self::default();
        let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
        for (timestamp, headers) in records {
            if !timestamp.is_some_and(|t| t >= from && t < to) {
                continue;
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.as_deref())
                    .map_or_else(
                        || "-".to_owned(),
                        |v| String::from_utf8_lossy(v).into_owned(),
                    )
            };
            out.total += 1;
            *out.by_reason.entry(header("auditflow.error")).or_default() += 1;
            *out.by_service
                .entry(header("auditflow.service"))
                .or_default() += 1;
        }
        out
    }
}

pub(crate) fn report(
    records: &[StoredRecord],
    config: &Config,
    now: DateTime<Utc>,
    log: LogSummary,
    dead_letters: Result<&DeadLetters, String>,
) -> Report {
    let operator: Vec<&StoredRecord> = records
        .iter()
        .filter(|r| r.kind == RecordKind::OperatorAction)
        .collect();
    let gdpr: Vec<&StoredRecord> = operator
        .iter()
        .copied()
        .filter(|r| {
            r.labels
                .action
                .as_deref()
                .is_some_and(|a| a.starts_with("gdpr.") && a != "gdpr.receipt")
        })
        .collect();
    let succeeded = |command: &str| {
        gdpr.iter()
            .filter(|r| {
                r.labels.action.as_deref() == Some(command)
                    && r.labels.outcome.as_deref() == Some("success")
            })
            .count() as u64
    };
    let mut requests: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in &gdpr {
        let kind = label(&r.labels.action)
            .trim_start_matches("gdpr.")
            .to_owned();
        *requests
            .entry(kind)
            .or_default()
            .entry(label(&r.labels.outcome))
            .or_default() += 1;
    }
    let deletions: Vec<&&StoredRecord> = gdpr
        .iter()
        .filter(|r| {
            matches!(
                r.labels.action.as_deref(),
                Some("gdpr.delete" | "gdpr.anonymize")
            ) && r.labels.outcome.as_deref() == Some("success")
        })
        .collect();
    let unreadable: i64 = deletions.iter().filter_map(|r| r.labels.record_count).sum();
    let commands = count(
        operator
            .iter()
            .map(|r| (label(&r.labels.action), label(&r.labels.outcome))),
    );
    // `verify` runs are on the operator log too: the latest one's outcome and count.
    let verifications: Vec<&&StoredRecord> = operator
        .iter()
        .filter(|r| r.labels.action.as_deref() == Some("verify"))
        .collect();
    let last_verify = verifications.iter().max_by_key(|r| r.event_time).map(|r| {
        json!({
            "time": r.event_time.to_rfc3339_opts(SecondsFormat::Secs, true),
            "outcome": label(&r.labels.outcome),
            "verified": r.labels.record_count,
        })
    });

    // What sampling dropped: the classifier's summaries, counted by the input type.
    let mut sampled_out: BTreeMap<String, u64> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.kind == RecordKind::SamplingSummary)
    {
        let n = r.labels.record_count.and_then(|n| u64::try_from(n).ok());
        *sampled_out.entry(label(&r.labels.action)).or_default() += n.unwrap_or(0);
    }
    let sampled_out_total: u64 = sampled_out.values().sum();
    let sampled_rows = sampled_out
        .iter()
        .map(|(ty, n)| vec![ty.clone(), n.to_string()])
        .collect();

    let mut classes = Map::new();
    let mut class_rows = Vec::new();
    let mut retention_rows = Vec::new();
    let mut overdue_total = 0u64;
    for class in RetentionClass::ALL {
        let days = class.period_days(&config.retention);
        let of_class: Vec<&StoredRecord> = records.iter().filter(|r| r.class == class).collect();
        let kinds: BTreeMap<&str, u64> = count(of_class.iter().map(|r| r.kind.as_str()));
        let oldest = of_class.iter().map(|r| r.event_time).min();
        let limit = now - Duration::days(i64::from(days));
        let overdue = of_class.iter().filter(|r| r.event_time < limit).count() as u64;
        overdue_total += overdue;
        let oldest_text = oldest.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        classes.insert(
            class.as_str().to_owned(),
            json!({
                "retention_days": days,
                "total": of_class.len(),
                "by_kind": kinds,
                "oldest": oldest_text,
                "older_than_period": overdue,
            }),
        );
        retention_rows.push(vec![
            class.as_str().into(),
            days.to_string(),
            of_class.len().to_string(),
            oldest_text.clone().unwrap_or_else(|| "-".into()),
            overdue.to_string(),
        ]);
        for (kind, n) in &kinds {
            class_rows.push(vec![class.as_str().into(), (*kind).into(), n.to_string()]);
        }
    }

    let request_rows = requests
        .iter()
        .flat_map(|(kind, outcomes)| {
            outcomes
                .iter()
                .map(move |(outcome, n)| vec![kind.clone(), outcome.clone(), n.to_string()])
        })
        .collect();
    let command_rows = commands
        .iter()
        .map(|((c, o), n)| vec![c.clone(), o.clone(), n.to_string()])
        .collect();
    let (dead_json, dead_rows) = match &dead_letters {
        Ok(d) => (
            json!({"total": d.total, "by_reason": d.by_reason, "by_service": d.by_service}),
            d.by_reason
                .iter()
                .map(|(reason, n)| vec![reason.clone(), n.to_string()])
                .collect(),
        ),
        Err(why) => (
            json!({"total": null, "unavailable": why}),
            vec![vec!["(not read)".into(), why.clone()]],
        ),
    };
    let charts = vec![
        Chart::categories(
            "records by retention class",
            RetentionClass::ALL.iter().map(|c| {
                (
                    c.as_str(),
                    records.iter().filter(|r| r.class == *c).count() as u64,
                )
            }),
        ),
        Chart::categories(
            "GDPR requests by type",
            requests
                .iter()
                .map(|(k, o)| (k.clone(), o.values().sum::<u64>())),
        ),
        Chart::categories(
            "sampled-out inputs by type",
            sampled_out.iter().map(|(ty, n)| (ty.clone(), *n)),
        ),
        Chart::categories(
            "commands on audit data",
            count(operator.iter().map(|r| label(&r.labels.action))),
        ),
    ];
    Report {
        records: records.len() as u64,
        charts,
        json: json!({
            "total": records.len(),
            "gdpr_requests": {"total": gdpr.len(), "by_type": requests},
            "data_exports": succeeded("gdpr.export"),
            "account_deletions": {
                "total": deletions.len(),
                "records_made_unreadable": unreadable,
            },
            "operator_actions": {
                "total": operator.len(),
                "by_command": commands.iter().map(|((c, o), n)| json!({
                    "command": c, "outcome": o, "count": n,
                })).collect::<Vec<_>>(),
            },
            "by_class": classes,
            "retention_compliance": {
                "older_than_period": overdue_total,
                "compliant": overdue_total == 0,
            },
            "audit_completeness": {
                "integrity_log": {
                    "logs": log.logs,
                    "leaves": log.leaves,
                    "not_yet_covered": log.not_covered,
                },
                "verifications": {"runs": verifications.len(), "last": last_verify},
                "dead_letters": dead_json,
                "sampled_out": {"total": sampled_out_total, "by_type": sampled_out},
            },
        }),
        sections: vec![
            Section::new(
                "summary",
                &["FIGURE", "VALUE"],
                vec![
                    vec!["records in the range".into(), records.len().to_string()],
                    vec!["GDPR requests".into(), gdpr.len().to_string()],
                    vec!["data exports".into(), succeeded("gdpr.export").to_string()],
                    vec!["account deletions".into(), deletions.len().to_string()],
                    vec![
                        "records made unreadable by them".into(),
                        unreadable.to_string(),
                    ],
                    vec![
                        "records older than their retention period".into(),
                        overdue_total.to_string(),
                    ],
                    vec!["integrity log leaves".into(), log.leaves.to_string()],
                    vec![
                        "leaves not yet covered by a checkpoint".into(),
                        log.not_covered.to_string(),
                    ],
                    vec![
                        "dead letters".into(),
                        dead_letters
                            .as_ref()
                            .map_or_else(|why| format!("not read: {why}"), |d| d.total.to_string()),
                    ],
                    vec!["inputs sampled out".into(), sampled_out_total.to_string()],
                    vec!["verify runs".into(), verifications.len().to_string()],
                    vec![
                        "last verify".into(),
                        last_verify.as_ref().map_or("-".into(), |v| {
                            format!(
                                "{} at {}, {} records verified",
                                v["outcome"].as_str().unwrap_or("-"),
                                v["time"].as_str().unwrap_or("-"),
                                v["verified"]
                            )
                        }),
                    ],
                ],
            ),
            Section::new(
                "GDPR requests",
                &["REQUEST", "OUTCOME", "COUNT"],
                request_rows,
            ),
            Section::new(
                "commands on audit data",
                &["COMMAND", "OUTCOME", "COUNT"],
                command_rows,
            ),
            Section::new("dead letters by reason", &["REASON", "COUNT"], dead_rows),
            Section::new(
                "sampled-out inputs by type",
                &["INPUT TYPE", "COUNT"],
                sampled_rows,
            ),
            Section::new(
                "retention",
                &[
                    "CLASS",
                    "RETENTION DAYS",
                    "RECORDS",
                    "OLDEST",
                    "OLDER THAN PERIOD",
                ],
                retention_rows,
            ),
            Section::new(
                "records by retention class",
                &["CLASS", "KIND", "COUNT"],
                class_rows,
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::super::figures::testing::record;
    use super::*;
    use auditflow_store::Labels;

    fn op(command: &str, outcome: &str, records: Option<i64>) -> StoredRecord {
        record(
            RecordKind::OperatorAction,
            RetentionClass::Security,
            "2026-11-20T10:00:00Z",
            Labels {
                action: Some(command.into()),
                outcome: Some(outcome.into()),
                record_count: records,
                ..Labels::default()
            },
        )
    }

    fn summary(ty: &str, n: i64) -> StoredRecord {
        record(
            RecordKind::SamplingSummary,
            RetentionClass::Security,
            "2026-11-20T10:00:00Z",
            Labels {
                action: Some(ty.into()),
                record_count: Some(n),
                ..Labels::default()
            },
        )
    }

    #[test]
    fn requests_deletions_and_retention_are_counted_exactly() {
        let now: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().unwrap();
        let records = vec![
            op("gdpr.export", "success", Some(7)),
            op("gdpr.delete", "success", Some(7)),
            op("gdpr.anonymize", "success", Some(0)),
            op("gdpr.delete", "refused", None),
            op("gdpr.receipt", "success", Some(1)),
            op("query", "success", Some(3)),
            op("verify", "failure", Some(12)),
            record(
                RecordKind::UserAction,
                RetentionClass::Marketing,
                "2024-01-01T00:00:00Z",
                Labels::default(),
            ),
            summary("user.page.view", 41),
            summary("user.page.view", 2),
            summary("user.search", 5),
        ];
        let log = LogSummary {
            logs: 2,
            leaves: 10,
            not_covered: 1,
        };
        let dlq = |ts: i64, reason: &str| {
            (
                Some(ts),
                vec![
                    ("auditflow.error".to_owned(), Some(b"invalid_json".to_vec())),
                    // A record dead-lettered twice keeps the last reason.
                    (
                        "auditflow.error".to_owned(),
                        Some(reason.as_bytes().to_vec()),
                    ),
                    ("auditflow.service".to_owned(), Some(b"classifier".to_vec())),
                ],
            )
        };
        let inside = now.timestamp_millis() - 1_000;
        let letters = DeadLetters::count(
            &[
                dlq(inside, "too_large"),
                dlq(inside, "invalid_json"),
                dlq(inside, "too_large"),
                dlq(0, "too_large"),
                (None, vec![]),
            ],
            now - Duration::days(1),
            now,
        );
        assert_eq!(letters.total, 3);
        assert_eq!(letters.by_reason["too_large"], 2);
        assert_eq!(letters.by_service["classifier"], 3);
        let r = report(&records, &Config::default(), now, log, Ok(&letters)).json;
        assert_eq!(
            r["audit_completeness"]["dead_letters"]["by_reason"]["invalid_json"],
            1
        );
        let offline = report(
            &records,
            &Config::default(),
            now,
            log,
            Err("no Kafka".into()),
        )
        .json;
        assert_eq!(
            offline["audit_completeness"]["dead_letters"]["total"],
            serde_json::Value::Null
        );
        assert_eq!(r["total"], 11);
        let sampled = &r["audit_completeness"]["sampled_out"];
        assert_eq!(sampled["total"], 48);
        assert_eq!(sampled["by_type"]["user.page.view"], 43);
        assert_eq!(sampled["by_type"]["user.search"], 5);
        assert_eq!(r["gdpr_requests"]["total"], 4, "a receipt is no request");
        assert_eq!(r["gdpr_requests"]["by_type"]["delete"]["success"], 1);
        assert_eq!(r["gdpr_requests"]["by_type"]["delete"]["refused"], 1);
        assert_eq!(r["data_exports"], 1);
        assert_eq!(r["account_deletions"]["total"], 2);
        assert_eq!(r["account_deletions"]["records_made_unreadable"], 7);
        assert_eq!(r["operator_actions"]["total"], 7);
        assert_eq!(r["by_class"]["security"]["total"], 10);
        let verify = &r["audit_completeness"]["verifications"];
        assert_eq!(verify["runs"], 1);
        assert_eq!(verify["last"]["outcome"], "failure");
        assert_eq!(verify["last"]["verified"], 12);
        assert_eq!(r["by_class"]["security"]["retention_days"], 2557);
        assert_eq!(r["by_class"]["security"]["older_than_period"], 0);
        // Marketing keeps 731 days: a record from 2024-01-01 is past it on 2026-11-27.
        assert_eq!(r["by_class"]["marketing"]["older_than_period"], 1);
        assert_eq!(r["by_class"]["marketing"]["oldest"], "2024-01-01T00:00:00Z");
        assert_eq!(r["retention_compliance"]["compliant"], false);
        assert_eq!(
            r["audit_completeness"]["integrity_log"]["not_yet_covered"],
            1
        );
        assert_eq!(r["by_class"]["general"]["total"], 0);
    }
}
