//! `auditflow report user-activity --user U | security | compliance [--from T] [--to T]`: the
//! recipe's Reporting module (docs/cli.md). The range defaults to the last 30 days.
//!
//! Reports count the clear, non-personal labels only (kind, action, outcome, risk, severity,
//! retention class), never decrypted data: that is what keeps erased users' security and financial
//! records countable (docs/operations.md, erasure) and keeps reports free of personal data.
//!
//! - **user-activity**: the user's records by action, outcome and risk (their trail, so an
//!   erased user has none);
//! - **security**: security events by type and severity (and how many were blocked), alerts by
//!   rule and level;
//! - **compliance**: every record by retention class and kind, with the class's period.
//!
//! The by-time reports read every record of the range, page after page: fine for a report of
//! days or weeks, not a dashboard query.

use std::collections::BTreeMap;
use std::process::ExitCode;

use auditflow_core::{Config, RetentionClass};
use auditflow_store::{MAX_PAGE, PageToken, RecordKind, Store, StoredRecord, TimeRange};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::operator_log::Audited;
use super::query::{print_rows, timestamp};
use crate::cli::{ReportCommand, TimeRange as RangeArgs};

/// The default range: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

pub fn run(
    command: &ReportCommand,
    config: &Config,
    json: bool,
    out: &mut Audited,
) -> anyhow::Result<ExitCode> {
    let (name, range_args) = match command {
        ReportCommand::UserActivity { range, .. } => ("user-activity", range),
        ReportCommand::Security { range } => ("security", range),
        ReportCommand::Compliance { range } => ("compliance", range),
    };
    let usage = |reason: String| {
        eprintln!("auditflow report {name}: {reason}");
        Ok(ExitCode::from(2))
    };
    let (from, to) = match parse_range(range_args, Utc::now()) {
        Ok(range) => range,
        Err(reason) => return usage(reason),
    };
    if let ReportCommand::UserActivity { user, .. } = command
        && user.is_empty()
    {
        return usage("--user must not be empty".into());
    }
    let runtime = super::runtime()?;
    let report = runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        let report = match command {
            ReportCommand::UserActivity { user, .. } => {
                let records = user_records(&store, user, from, to).await?;
                user_activity(user, &records)
            }
            ReportCommand::Security { .. } => security(&records_by_time(&store, from, to).await?),
            ReportCommand::Compliance { .. } => {
                compliance(&records_by_time(&store, from, to).await?, config)
            }
        };
        anyhow::Ok(report)
    })?;
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    out.records = Some(report.records);
    if json {
        let mut document = json!({"report": name, "from": time(from), "to": time(to)});
        if let (Some(document), Value::Object(fields)) = (document.as_object_mut(), report.json) {
            document.extend(fields);
        }
        out.line(document);
    } else {
        out.line(format!("{name} report, {} to {}", time(from), time(to)));
        for (title, headers, rows) in &report.tables {
            out.line(format!("\n{title}"));
            if rows.is_empty() {
                out.line("(none)");
            } else {
                print_rows(out, headers, rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--from`/`--to` as `[from, to)`, each defaulting to the last 30 days before `now`.
fn parse_range(
    args: &RangeArgs,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let to = args
        .to
        .as_deref()
        .map(|t| timestamp("--to", t))
        .transpose()?
        .unwrap_or(now);
    let from = args
        .from
        .as_deref()
        .map(|t| timestamp("--from", t))
        .transpose()?
        .unwrap_or(to - Duration::days(DEFAULT_DAYS));
    if from >= to {
        return Err("--from must be before --to".into());
    }
    Ok((from, to))
}

async fn user_records(
    store: &Store,
    user: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<StoredRecord>> {
    let range = TimeRange {
        from: Some(from),
        to: Some(to),
    };
    let mut records = Vec::new();
    let mut page: Option<PageToken> = None;
    loop {
        let found = store
            .query_user(user, range, &[], MAX_PAGE, page.as_ref())
            .await?;
        records.extend(found.records);
        match found.next {
            Some(next) => page = Some(next),
            None => return Ok(records),
        }
    }
}

async fn records_by_time(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<StoredRecord>> {
    let mut records = Vec::new();
    let mut page: Option<PageToken> = None;
    loop {
        let found = store
            .records_by_time(from, to, MAX_PAGE, page.as_ref())
            .await?;
        records.extend(found.records);
        match found.next {
            Some(next) => page = Some(next),
            None => return Ok(records),
        }
    }
}

/// A report: its JSON fields and, for a terminal, titled tables.
struct Report {
    json: Value,
    tables: Vec<Table>,
    /// How many stored records it was made from.
    records: u64,
}

/// A title, the column headers and the rows.
type Table = (&'static str, &'static [&'static str], Vec<Vec<String>>);

fn label(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

/// Counts of each distinct key, in key order.
fn count<K: Ord>(keys: impl Iterator<Item = K>) -> BTreeMap<K, u64> {
    let mut counts = BTreeMap::new();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// `{key: n}` and one table row per key.
fn single(counts: &BTreeMap<String, u64>) -> (Value, Vec<Vec<String>>) {
    let json = counts.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
    let rows = counts
        .iter()
        .map(|(k, n)| vec![k.clone(), n.to_string()])
        .collect();
    (Value::Object(json), rows)
}

fn user_activity(user: &str, records: &[StoredRecord]) -> Report {
    let (by_action, action_rows) = single(&count(records.iter().map(|r| label(&r.labels.action))));
    let (by_outcome, outcome_rows) =
        single(&count(records.iter().map(|r| label(&r.labels.outcome))));
    // Risk is a user action's; a security event carries a severity instead.
    let (by_risk, risk_rows) = single(&count(
        records
            .iter()
            .filter(|r| r.kind == RecordKind::UserAction)
            .map(|r| label(&r.labels.risk_level)),
    ));
    let (by_kind, kind_rows) = single(&count(records.iter().map(|r| r.kind.as_str().to_owned())));
    Report {
        records: records.len() as u64,
        json: json!({
            "user_id": user,
            "total": records.len(),
            "by_kind": by_kind,
            "by_action": by_action,
            "by_outcome": by_outcome,
            "by_risk": by_risk,
        }),
        tables: vec![
            ("records by kind", &["KIND", "COUNT"], kind_rows),
            ("by action", &["ACTION", "COUNT"], action_rows),
            ("by outcome", &["OUTCOME", "COUNT"], outcome_rows),
            ("user actions by risk", &["RISK", "COUNT"], risk_rows),
        ],
    }
}

fn security(records: &[StoredRecord]) -> Report {
    let of = |kind: RecordKind| records.iter().filter(move |r| r.kind == kind);
    let events = count(
        of(RecordKind::SecurityEvent).map(|r| (label(&r.labels.action), label(&r.labels.severity))),
    );
    let blocked = of(RecordKind::SecurityEvent)
        .filter(|r| r.labels.blocked == Some(true))
        .count();
    // An alert's `action` label is its rule, its `severity` its level.
    let alerts =
        count(of(RecordKind::Alert).map(|r| (label(&r.labels.action), label(&r.labels.severity))));
    let pairs = |counts: &BTreeMap<(String, String), u64>, first: &str, second: &str| {
        let json: Vec<Value> = counts
            .iter()
            .map(|((a, b), n)| json!({first: a, second: b, "count": n}))
            .collect();
        let rows: Vec<Vec<String>> = counts
            .iter()
            .map(|((a, b), n)| vec![a.clone(), b.clone(), n.to_string()])
            .collect();
        (json, rows)
    };
    let (events_json, event_rows) = pairs(&events, "event_type", "severity");
    let (alerts_json, alert_rows) = pairs(&alerts, "rule", "level");
    Report {
        records: records.len() as u64,
        json: json!({
            "security_events": {
                "total": events.values().sum::<u64>(),
                "blocked": blocked,
                "by_type_and_severity": events_json,
            },
            "alerts": {
                "total": alerts.values().sum::<u64>(),
                "by_rule_and_level": alerts_json,
            },
        }),
        tables: vec![
            (
                "security events",
                &["EVENT TYPE", "SEVERITY", "COUNT"],
                event_rows,
            ),
            ("alerts", &["RULE", "LEVEL", "COUNT"], alert_rows),
        ],
    }
}

fn compliance(records: &[StoredRecord], config: &Config) -> Report {
    let by_class_kind = count(records.iter().map(|r| (r.class, r.kind.as_str())));
    let mut classes = serde_json::Map::new();
    let mut rows = Vec::new();
    for class in RetentionClass::ALL {
        let days = class.period_days(&config.retention);
        let kinds: BTreeMap<&str, u64> = by_class_kind
            .iter()
            .filter(|((c, _), _)| *c == class)
            .map(|((_, kind), n)| (*kind, *n))
            .collect();
        let total: u64 = kinds.values().sum();
        classes.insert(
            class.as_str().to_owned(),
            json!({"retention_days": days, "total": total, "by_kind": kinds}),
        );
        if kinds.is_empty() {
            rows.push(vec![
                class.as_str().into(),
                days.to_string(),
                "-".into(),
                "0".into(),
            ]);
        }
        for (kind, n) in kinds {
            rows.push(vec![
                class.as_str().into(),
                days.to_string(),
                kind.into(),
                n.to_string(),
            ]);
        }
    }
    Report {
        records: records.len() as u64,
        json: json!({"total": records.len(), "by_class": classes}),
        tables: vec![(
            "records by retention class",
            &["CLASS", "RETENTION DAYS", "KIND", "COUNT"],
            rows,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditflow_store::Labels;
    use chrono::TimeZone;

    fn record(kind: RecordKind, class: RetentionClass, action: &str, level: &str) -> StoredRecord {
        StoredRecord {
            id: format!("{action}-{level}"),
            kind,
            class,
            event_time: Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap(),
            event_type: "audit.x".into(),
            labels: Labels {
                action: Some(action.into()),
                outcome: Some("success".into()),
                risk_level: Some(level.into()),
                severity: Some(level.into()),
                ..Labels::default()
            },
            event: None,
        }
    }

    #[test]
    fn range_defaults_to_the_last_30_days_and_bad_input_is_refused() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let none = RangeArgs {
            from: None,
            to: None,
        };
        assert_eq!(
            parse_range(&none, now).unwrap(),
            (now - Duration::days(30), now)
        );
        let bad = |from: Option<&str>, to: Option<&str>| RangeArgs {
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        assert!(parse_range(&bad(Some("yesterday"), None), now).is_err());
        assert!(parse_range(&bad(Some("2026-11-28"), Some("2026-11-27")), now).is_err());
        assert!(parse_range(&bad(Some("2026-11-01"), Some("2026-11-27")), now).is_ok());
    }

    #[test]
    fn reports_count_labels() {
        use RecordKind::*;
        use RetentionClass::*;
        let records = [
            record(UserAction, General, "account_created", "low"),
            record(UserAction, Security, "login_attempt", "low"),
            record(UserAction, Security, "login_attempt", "high"),
            record(SecurityEvent, Security, "failed_login", "warning"),
            record(Alert, Security, "brute_force", "critical"),
            record(UserAction, Financial, "user.payment.completed", "low"),
        ];
        let activity = user_activity("u1", &records).json;
        assert_eq!(activity["total"], 6);
        assert_eq!(activity["by_action"]["login_attempt"], 2);
        assert_eq!(activity["by_risk"]["low"], 3);
        let sec = security(&records).json;
        assert_eq!(sec["security_events"]["total"], 1);
        assert_eq!(
            sec["security_events"]["by_type_and_severity"][0]["event_type"],
            "failed_login"
        );
        assert_eq!(sec["alerts"]["by_rule_and_level"][0]["level"], "critical");
        let comp = compliance(&records, &Config::default()).json;
        assert_eq!(comp["by_class"]["security"]["total"], 4);
        assert_eq!(comp["by_class"]["security"]["retention_days"], 2557);
        assert_eq!(comp["by_class"]["financial"]["by_kind"]["user_action"], 1);
        assert_eq!(comp["by_class"]["marketing"]["total"], 0);
    }
}
