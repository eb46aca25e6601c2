//! `auditflow ocsf`: OCSF events offline (docs/ocsf.md, docs/cli.md).
//!
//! Reads NDJSON on stdin — what `auditflow classify` and `auditflow detect` write
//! (`{"topic", "key", "value"}` lines) or bare CloudEvents — and writes one OCSF event per
//! line on stdout, in input order: stdout is OCSF NDJSON and nothing else, ready for a SIEM or
//! a validator. Lines of types with no OCSF class (blocklist entries and tombstones,
//! dead-letter lines) are skipped and counted. A line that is no event, or breaks its type's
//! schema, is named on stderr (`auditflow: line N: <reason>`) and makes the exit code 1, after
//! every other line was written. A summary goes to stderr (JSON with `--json`).
//!
//! The mapping is the core's [`Mapper`], configured as the exporter service configures it
//! (`[ocsf]`, pseudonyms included), so offline and service output are the same events.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use auditflow_core::Config;
use auditflow_core::envelope::{Event, parse_structured};
use auditflow_core::ocsf::{Mapper, NotMapped};
use serde_json::{Value, json};

use super::ndjson::{Failure, Line, each_line, is_classify_line};

/// Runs the command over stdin and stdout. Exit codes: 0 when every line was an event or
/// skipped, 1 when a line was rejected or stdin or stdout failed, 2 for unusable `[ocsf]`
/// settings.
pub fn run(config: &Config, json_summary: bool) -> anyhow::Result<ExitCode> {
    let mapper = match auditflow_ocsf_exporter::mapper(config) {
        Ok(mapper) => mapper,
        Err(e) => {
            let _ = writeln!(io::stderr(), "auditflow: config: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let stdin = io::stdin().lock();
    let stdout = io::BufWriter::new(io::stdout().lock());
    let (summary, result) = export(&mapper, config, stdin, stdout, &mut io::stderr());
    match result {
        Err(Failure::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(Failure::Write(e)) => Err(e).context("writing stdout"),
        Err(Failure::Read(e)) => {
            summary.report(json_summary);
            Err(e).context("reading stdin")
        }
        Ok(()) => {
            summary.report(json_summary);
            Ok(if summary.rejected == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// What one run did: every line became an event, was skipped or was rejected.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub events: u64,
    /// Lines of a type with no OCSF class.
    pub skipped: u64,
    /// Lines named on stderr.
    pub rejected: u64,
}

impl Summary {
    fn report(&self, json: bool) {
        let text = if json {
            json!({"lines": self.lines, "events": self.events, "skipped": self.skipped,
                   "rejected": self.rejected})
            .to_string()
        } else {
            format!(
                "ocsf: {} lines: {} events, {} skipped (no OCSF class), {} rejected",
                self.lines, self.events, self.skipped, self.rejected
            )
        };
        let _ = writeln!(io::stderr(), "{text}");
    }
}

/// The command without its process edges: maps `input` to its end (or first I/O failure) into
/// `output`, naming rejected lines on `errors`.
pub fn export(
    mapper: &Mapper,
    config: &Config,
    input: impl BufRead,
    output: impl Write,
    errors: &mut impl Write,
) -> (Summary, Result<(), Failure>) {
    let mut summary = Summary::default();
    let max = config.limits.max_record_bytes;
    let result = each_line(input, max, output, |line, output| {
        summary.lines += 1;
        let (number, event) = match line {
            Line::Text { number, bytes } => (number, event_of(bytes, config)),
            Line::TooLong { number, size } => (
                number,
                Err(format!("the line is {size} bytes, over the limit of {max}")),
            ),
        };
        let mapped = match event {
            Ok(Some(event)) => mapper.map(&event).map_err(|e| match e {
                NotMapped::NoClass(_) => None,
                NotMapped::Invalid(why) => Some(why),
            }),
            Ok(None) => Err(None),
            Err(why) => Err(Some(why)),
        };
        match mapped {
            Ok(ocsf) => {
                summary.events += 1;
                serde_json::to_writer(&mut *output, &ocsf)
                    .map_err(io::Error::from)
                    .and_then(|()| output.write_all(b"\n"))
            }
            Err(None) => {
                summary.skipped += 1;
                Ok(())
            }
            Err(Some(why)) => {
                summary.rejected += 1;
                let _ = writeln!(errors, "auditflow: line {number}: {why}");
                Ok(())
            }
        }
    });
    (summary, result)
}

/// One input line → the event it carries; `None` for a line with no event (a dead-letter
/// line, a tombstone); the reason for one that is no event at all.
fn event_of(bytes: &[u8], config: &Config) -> Result<Option<Event>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| "not JSON".to_owned())?;
    let Value::Object(mut object) = value else {
        return Err("not a JSON object".into());
    };
    if !is_classify_line(&object) {
        return parse_structured(bytes, &config.limits)
            .map(Some)
            .map_err(|r| format!("{}: {}", r.reason, r.detail));
    }
    match object.remove("value") {
        Some(Value::Object(value)) => Event::from_json_object(value)
            .map(Some)
            .map_err(|r| format!("{}: {}", r.reason, r.detail)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err("the record value is not a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_over(input: &str) -> (Summary, String, String) {
        let config = Config::default();
        let mapper = Mapper::new("shop", None);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (summary, result) = export(&mapper, &config, input.as_bytes(), &mut out, &mut err);
        assert!(result.is_ok());
        (
            summary,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn classify_lines_and_bare_events_become_ocsf_and_the_rest_is_counted() {
        let action = r#"{"specversion":"1.0","id":"a-1","source":"/auditflow/classifier","type":"audit.user.action","time":"2026-12-03T10:00:00Z","data":{"user_id":"u1","action":"account_created","outcome":"success"}}"#;
        let input = format!(
            "{{\"topic\":\"audit.user.action\",\"key\":\"u1\",\"value\":{action}}}\n{action}\n\
             {{\"topic\":\"audit.dlq\",\"error\":\"invalid_json\",\"detail\":\"x\",\"line\":3}}\n\
             {{\"topic\":\"security.blocklist\",\"key\":\"192.0.2.1\",\"value\":null}}\n\
             not json\n"
        );
        let (summary, out, err) = run_over(&input);
        assert_eq!(
            summary,
            Summary {
                lines: 5,
                events: 2,
                skipped: 2,
                rejected: 1
            }
        );
        let events: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e["class_uid"] == 3001));
        assert_eq!(err, "auditflow: line 5: not JSON\n");
    }
}
