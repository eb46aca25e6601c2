//! `auditflow report user-activity --user U | security | compliance [--from T] [--to T]
//! [--format table|json|csv]`: the recipe's Reporting module (docs/cli.md). The range defaults
//! to the last 30 days.
//!
//! Reports count the clear, non-personal labels (kind, action, outcome, risk, severity,
//! retention class, sampling rate) of every stored record, never decrypted data: that is what
//! keeps erased users' security and financial records countable (docs/operations.md, erasure).
//! The one exception is the security report's top threat sources, which need the source ip and
//! say over how many decryptable records they were counted.
//!
//! - [`user_activity`]: the user's trail (so an erased user has none);
//! - [`security`]: every security event and alert of the range;
//! - [`compliance`]: every record of the range, the operator log's included, and the
//!   integrity log's state.
//!
//! The by-time reports read every record of the range, page after page: fine for a report of
//! days or weeks, not a dashboard query.

mod compliance;
mod figures;
mod html;
mod security;
mod user_activity;

use std::process::ExitCode;

use auditflow_core::Config;
use auditflow_runtime::kafka::inspect;
use auditflow_store::{MAX_PAGE, Store, StoredRecord, TimeRange};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::all_pages;
use super::format::{Format, csv_row, csv_table, text_table};
use super::operator_log::Audited;
use super::query::timestamp;
use crate::cli::{ReportCommand, TimeRange as RangeArgs};
use figures::Report;

/// The default range: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

pub fn run(
    command: &ReportCommand,
    config: &Config,
    json: bool,
    out: &mut Audited,
) -> anyhow::Result<ExitCode> {
    let (name, range_args, format) = match command {
        ReportCommand::UserActivity { range, output, .. } => ("user-activity", range, output),
        ReportCommand::Security { range, output } => ("security", range, output),
        ReportCommand::Compliance { range, output } => ("compliance", range, output),
    };
    let file = format.output.clone();
    let format = Format::chosen(format.format, json);
    let usage = |reason: String| {
        eprintln!("auditflow report {name}: {reason}");
        Ok(ExitCode::from(2))
    };
    let now = Utc::now();
    let (from, to) = match parse_range(range_args, now) {
        Ok(range) => range,
        Err(reason) => return usage(reason),
    };
    if let ReportCommand::UserActivity { user, .. } = command
        && user.is_empty()
    {
        return usage("--user must not be empty".into());
    }
    if format == Format::Ocsf {
        return usage(
            "--format ocsf is for records (auditflow query); use table, json, csv or html".into(),
        );
    }
    if format == Format::Html && file.is_none() {
        return usage("--format html writes a page: give -o FILE".into());
    }
    let runtime = super::runtime()?;
    let report = runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        let report = match command {
            ReportCommand::UserActivity { user, .. } => {
                let records = user_records(&store, user, from, to).await?;
                user_activity::report(user, &records, from, to)
            }
            ReportCommand::Security { .. } => {
                let labelled = records_by_time(&store, from, to).await?;
                let readable = all_pages(async |page| {
                    Ok(store.security_events(from, to, MAX_PAGE, page).await?)
                })
                .await?;
                let responses = responses(config);
                security::report(
                    &labelled,
                    &readable,
                    responses.as_ref().map_err(Clone::clone),
                    (from, to, now),
                )
            }
            ReportCommand::Compliance { .. } => {
                let records = records_by_time(&store, from, to).await?;
                let mut log = compliance::LogSummary::default();
                for tail in store.log_tails().await? {
                    let covered = tail.checkpoint.as_ref().map_or(0, |c| c.checkpoint.size);
                    log.logs += 1;
                    log.leaves += tail.size;
                    log.not_covered += tail.size.saturating_sub(covered);
                }
                let dead_letters = read_topic(config, &config.topics.dead_letter).map(|found| {
                    let found: Vec<_> = found
                        .into_iter()
                        .map(|r| (r.timestamp_ms, r.headers))
                        .collect();
                    compliance::DeadLetters::count(&found, from, to)
                });
                compliance::report(
                    &records,
                    config,
                    now,
                    log,
                    dead_letters.as_ref().map_err(Clone::clone),
                )
            }
        };
        anyhow::Ok(report)
    })?;
    out.records = Some(report.records);
    out.file = file;
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    match format {
        Format::Json => {
            let mut document = json!({"report": name, "from": time(from), "to": time(to)});
            if let (Some(document), Value::Object(fields)) = (document.as_object_mut(), report.json)
            {
                document.extend(fields);
            }
            out.line(document);
        }
        Format::Table => {
            out.line(format!("{name} report, {} to {}", time(from), time(to)));
            for section in &report.sections {
                out.line(format!("\n{}", section.title));
                if section.rows.is_empty() {
                    out.line("(none)");
                } else {
                    out.text(text_table(section.headers, &section.rows));
                }
            }
        }
        Format::Csv => out.text(csv_report(name, &time(from), &time(to), &report)),
        Format::Html => out.text(html::page(name, &time(from), &time(to), &report)),
        Format::Ocsf => unreachable!("refused above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// How long reading a topic to its end may take.
const TOPIC_READ: std::time::Duration = std::time::Duration::from_secs(60);

/// Every record `topic` holds now, or why it could not be read (the reports that need Kafka
/// say so and make the rest).
fn read_topic(config: &Config, topic: &str) -> Result<Vec<auditflow_runtime::InputRecord>, String> {
    inspect::read_to_end(&config.kafka, topic, TOPIC_READ).map_err(|e| e.to_string())
}

/// The security monitor's actions and blocklist as their topics hold them now, or why they
/// could not be read.
fn responses(config: &Config) -> Result<security::Responses, String> {
    let read = |topic: &str| {
        read_topic(config, topic).map(|records| {
            records
                .into_iter()
                .map(|r| (r.key, r.payload))
                .collect::<Vec<_>>()
        })
    };
    let actions = read(&config.topics.actions)?;
    let blocklist = read(&config.topics.blocklist)?;
    let (responses, unreadable) = security::Responses::from_records(&actions, &blocklist);
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "records of the monitor's topics that are no action or blocklist entry were skipped"
        );
    }
    Ok(responses)
}

/// A report as CSV: a line naming the report and its range, then each section as a block — a
/// line with its title, its header, its rows — with an empty line between blocks.
fn csv_report(name: &str, from: &str, to: &str, report: &Report) -> String {
    let mut text = String::new();
    csv_row(&mut text, &["report", name, "from", from, "to", to]);
    for section in &report.sections {
        text.push_str("\r\n");
        csv_row(&mut text, &[section.title]);
        text.push_str(&csv_table(section.headers, &section.rows));
    }
    text
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
    all_pages(async |page| Ok(store.query_user(user, range, &[], MAX_PAGE, page).await?)).await
}

async fn records_by_time(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<StoredRecord>> {
    all_pages(async |page| Ok(store.records_by_time(from, to, MAX_PAGE, page).await?)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditflow_core::RetentionClass;
    use auditflow_store::{Labels, RecordKind};
    use chrono::TimeZone;

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

    /// The flat label counts every report has had since before the recipe's figures: kept.
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
        let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let activity = user_activity::report("u1", &records, from, now).json;
        assert_eq!(activity["total"], 6);
        assert_eq!(activity["by_action"]["login_attempt"], 2);
        assert_eq!(activity["by_risk"]["low"], 3);
        let responses = security::Responses::default();
        let sec = security::report(&records, &records, Ok(&responses), (from, now, now)).json;
        assert_eq!(sec["security_events"]["total"], 1);
        assert_eq!(
            sec["security_events"]["by_type_and_severity"][0]["event_type"],
            "failed_login"
        );
        assert_eq!(sec["alerts"]["by_rule_and_level"][0]["level"], "critical");
        let letters = compliance::DeadLetters::default();
        let log = compliance::LogSummary::default();
        let comp = compliance::report(&records, &Config::default(), now, log, Ok(&letters)).json;
        assert_eq!(comp["by_class"]["security"]["total"], 4);
        assert_eq!(comp["by_class"]["security"]["retention_days"], 2557);
        assert_eq!(comp["by_class"]["financial"]["by_kind"]["user_action"], 1);
        assert_eq!(comp["by_class"]["marketing"]["total"], 0);
    }

    #[test]
    fn csv_reports_are_blocks_of_sections() {
        let report = Report {
            json: json!({}),
            sections: vec![
                figures::Section::new("one", &["A", "B"], vec![vec!["x".into(), "1".into()]]),
                figures::Section::new("two", &["C"], vec![]),
            ],
            charts: vec![],
            records: 0,
        };
        assert_eq!(
            csv_report("security", "F", "T", &report),
            "report,security,from,F,to,T\r\n\r\none\r\nA,B\r\nx,1\r\n\r\ntwo\r\nC\r\n"
        );
    }
}
