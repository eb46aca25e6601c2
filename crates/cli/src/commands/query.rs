//! `auditflow query --user U [--from T] [--to T] [--action A]... [--limit N] [--page TOKEN]`:
//! a user's audit trail, newest first, across every retention class (docs/cli.md).
//!
//! Bad timestamps, limits and page tokens are usage errors (exit 2), checked before anything
//! is contacted. A page that has more after it ends with the token for the next one.

use std::process::ExitCode;

use auditflow_core::Config;
use auditflow_store::{MAX_PAGE, Page, PageToken, Store, StoredRecord, TimeRange};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::format::{Format, csv_table, text_table};
use super::operator_log::Audited;
use crate::cli::QueryArgs;

pub fn run(
    args: &QueryArgs,
    config: &Config,
    json: bool,
    out: &mut Audited,
) -> anyhow::Result<ExitCode> {
    let query = match Query::parse(args) {
        Ok(query) => query,
        Err(usage) => {
            eprintln!("auditflow query: {usage}");
            return Ok(ExitCode::from(2));
        }
    };
    let format = Format::chosen(args.output.format, json);
    if format == Format::Html {
        eprintln!("auditflow query: --format html is for reports; use table, json, csv or ocsf");
        return Ok(ExitCode::from(2));
    }
    let mapper = match format {
        Format::Ocsf => match auditflow_ocsf_exporter::mapper(config) {
            Ok(mapper) => Some(mapper),
            Err(e) => {
                eprintln!("auditflow query: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        _ => None,
    };
    let runtime = super::runtime()?;
    let page = runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        store
            .query_user(
                &args.user,
                query.range,
                &args.actions,
                query.limit,
                query.page.as_ref(),
            )
            .await
    })?;
    out.records = Some(page.records.len() as u64);
    out.file = args.output.output.clone();
    match format {
        Format::Json => out.line(json!({
            "user_id": args.user,
            "records": page.records,
            "next_page": page.next.as_ref().map(ToString::to_string),
        })),
        Format::Table | Format::Html => print_table(out, &args.user, &page),
        Format::Ocsf => {
            let mapper = mapper.as_ref().expect("built for --format ocsf");
            let (unreadable, unclassed) = print_ocsf(out, mapper, &page);
            if unreadable > 0 {
                eprintln!(
                    "auditflow query: {unreadable} records are unreadable (erased): no OCSF event"
                );
            }
            if unclassed > 0 {
                eprintln!(
                    "auditflow query: {unclassed} records have no OCSF class (docs/ocsf.md): not shown"
                );
            }
            if let Some(next) = &page.next {
                eprintln!("more: auditflow query --user {:?} --page {next}", args.user);
            }
        }
        Format::Csv => {
            let rows: Vec<Vec<String>> = page.records.iter().map(csv_row).collect();
            out.text(csv_table(CSV_HEADERS, &rows));
            if let Some(next) = &page.next {
                // Standard output stays one CSV table.
                eprintln!("more: auditflow query --user {:?} --page {next}", args.user);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The page's records as OCSF events, one per line (docs/ocsf.md); returns how many had no
/// readable event (their user was erased) and how many no OCSF class (operator events).
fn print_ocsf(
    out: &mut Audited,
    mapper: &auditflow_core::ocsf::Mapper,
    page: &Page,
) -> (usize, usize) {
    let (mut unreadable, mut unclassed) = (0, 0);
    for record in &page.records {
        let event = match &record.event {
            Some(Value::Object(event)) => {
                auditflow_core::Event::from_json_object(event.clone()).ok()
            }
            _ => None,
        };
        match event.map(|e| mapper.map(&e)) {
            Some(Ok(ocsf)) => out.line(Value::Object(ocsf)),
            Some(Err(_)) => unclassed += 1,
            None => unreadable += 1,
        }
    }
    (unreadable, unclassed)
}

struct Query {
    range: TimeRange,
    limit: usize,
    page: Option<PageToken>,
}

impl Query {
    fn parse(args: &QueryArgs) -> Result<Self, String> {
        if args.user.is_empty() {
            return Err("--user must not be empty".into());
        }
        let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(format!("--limit must be between 1 and {MAX_PAGE}"));
        }
        let range = TimeRange {
            from: args
                .range
                .from
                .as_deref()
                .map(|t| timestamp("--from", t))
                .transpose()?,
            to: args
                .range
                .to
                .as_deref()
                .map(|t| timestamp("--to", t))
                .transpose()?,
        };
        if let (Some(from), Some(to)) = (range.from, range.to)
            && from >= to
        {
            return Err("--from must be before --to".into());
        }
        let page = args
            .page
            .as_deref()
            .map(|t| {
                PageToken::parse(t)
                    .map_err(|_| "--page is not a token this command printed".to_owned())
            })
            .transpose()?;
        Ok(Self { range, limit, page })
    }
}

/// RFC 3339 (`2026-11-27T10:00:00Z`), or a bare date meaning its midnight UTC.
pub(crate) fn timestamp(flag: &str, text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(midnight) = day.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc());
    }
    Err(format!(
        "{flag} {text:?} is not an RFC 3339 timestamp (e.g. 2026-11-27T10:00:00Z) or a date"
    ))
}

fn print_table(out: &mut Audited, user: &str, page: &Page) {
    if page.records.is_empty() {
        out.line("no records for this user");
        return;
    }
    let rows: Vec<Vec<String>> = page.records.iter().map(|r| row(r).to_vec()).collect();
    out.text(text_table(
        &["TIME", "CLASS", "KIND", "ACTION", "OUTCOME", "RISK", "IP"],
        &rows,
    ));
    if let Some(next) = &page.next {
        out.line(format!(
            "more: auditflow query --user {user:?} --page {next}"
        ));
    }
}

/// The columns of `query --format csv`, one record per row.
const CSV_HEADERS: &[&str] = &[
    "id",
    "time",
    "class",
    "kind",
    "type",
    "action",
    "outcome",
    "risk_level",
    "severity",
    "ip",
];

fn csv_row(r: &StoredRecord) -> Vec<String> {
    let [time, class, kind, action, outcome, _, ip] = row(r);
    let label = |v: &Option<String>| v.clone().unwrap_or_default();
    let dash = |v: String| if v == "-" { String::new() } else { v };
    vec![
        r.id.clone(),
        time,
        class,
        kind,
        r.event_type.clone(),
        dash(action),
        dash(outcome),
        label(&r.labels.risk_level),
        label(&r.labels.severity),
        dash(ip),
    ]
}

fn row(r: &StoredRecord) -> [String; 7] {
    let data = r.event.as_ref().and_then(|e| e.get("data"));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("-").to_owned();
    let label = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    [
        r.event_time
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        r.class.as_str().to_owned(),
        r.kind.as_str().to_owned(),
        label(&r.labels.action),
        label(&r.labels.outcome),
        r.labels
            .risk_level
            .clone()
            .or_else(|| r.labels.severity.clone())
            .unwrap_or_else(|| "-".into()),
        text(data.and_then(|d| d.get("ip_address").or_else(|| d.get("source_ip")))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::TimeRange as RangeArgs;

    fn args(from: Option<&str>, to: Option<&str>, limit: u32, page: Option<&str>) -> QueryArgs {
        QueryArgs {
            user: "u1".into(),
            range: RangeArgs {
                from: from.map(Into::into),
                to: to.map(Into::into),
            },
            actions: vec![],
            limit,
            page: page.map(Into::into),
            output: crate::cli::Output {
                format: None,
                output: None,
            },
        }
    }

    #[test]
    fn timestamps_and_limits_are_checked_up_front() {
        assert!(
            Query::parse(&args(
                Some("2026-11-27T10:00:00Z"),
                Some("2026-11-28"),
                10,
                None
            ))
            .is_ok()
        );
        assert!(Query::parse(&args(Some("2026-11-27T10:00:00+02:00"), None, 10, None)).is_ok());
        for bad in [
            args(Some("yesterday"), None, 10, None),
            args(None, Some("2026-13-01"), 10, None),
            args(Some("2026-11-28"), Some("2026-11-27"), 10, None),
            args(None, None, 0, None),
            args(None, None, 10, Some("not-a-token")),
        ] {
            assert!(Query::parse(&bad).is_err());
        }
    }
}
