//! `auditflow detect`: the security monitor offline (docs/cli.md, docs/security-rules.md).
//!
//! Reads NDJSON on stdin — what `auditflow classify` writes (`{"topic", "key", "value"}` lines)
//! or bare CloudEvents — and writes the monitor's records on stdout in the same form, in the
//! order the engine produces them: `security.alerts`, `security.actions` and
//! `security.blocklist` lines (a blocklist tombstone has `"value": null`). No Kafka.
//!
//! Routing: a classify line goes by its topic (`audit.security.event`, `audit.user.action`;
//! other topics, dead-letter lines and tombstones are ignored); a bare CloudEvent by its type.
//! Ignored lines are counted. A line that is not an event gives a dead-letter line
//! `{"topic": "audit.dlq", "error": "<reason>", "detail": "...", "line": N}` with the core
//! envelope parser's reason codes, or `schema_violation` when the data breaks the classifier's
//! output schema where a rule reads it. Events without `time` happened when their line was read,
//! and an event dated more than `max_clock_skew_secs` after that is judged as the service
//! judges it (at the engine's clock, which it does not move).
//!
//! Ids: the service's, for the same `[security]` id secret (`$AUDITFLOW_ID_SECRET` or
//! `id_secret_file`); without one, the public development secret, with a warning on stderr.
//!
//! The engine is `auditflow_core::detect`; this module only reads, routes and writes.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use auditflow_core::Config;
use auditflow_core::detect::{Detector, InputKind, Mode, Observation, Output};
use auditflow_core::envelope::{Event, Reason, Rejection, parse_structured};
use auditflow_security_monitor::secret::{self, DevelopmentSecret, SecretSource};
use chrono::Utc;
use serde_json::{Value, json};

use super::ndjson::{Failure, Line, each_line, is_classify_line};

/// Runs the command over stdin and stdout; the summary goes to stderr (JSON with `--json`).
/// Exit codes as for `classify`: 0 when stdin was read to the end (also when the reader of
/// stdout went away), 1 when stdin or stdout fails otherwise, 2 for unusable `[security]`
/// settings.
pub fn run(config: &Config, json_summary: bool) -> anyhow::Result<ExitCode> {
    let (secret, source) = match secret::load(config, DevelopmentSecret::Allowed) {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = writeln!(io::stderr(), "auditflow: config: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if source == SecretSource::Development {
        let _ = writeln!(
            io::stderr(),
            "auditflow: warning: alert and action ids use the PUBLIC development id secret \
             (set ${} or [security] id_secret_file for the service's ids)",
            config.security.id_secret_env
        );
    }
    let detector = match Detector::new(&config.security, secret) {
        Ok(detector) => detector,
        Err(e) => {
            let _ = writeln!(io::stderr(), "auditflow: config: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let stdin = io::stdin().lock();
    let stdout = io::BufWriter::new(io::stdout().lock());
    let (summary, result) = detect(detector, config, stdin, stdout);
    match result {
        Err(Failure::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(Failure::Write(e)) => Err(e).context("writing stdout"),
        Err(Failure::Read(e)) => {
            summary.report(json_summary);
            Err(e).context("reading stdin")
        }
        Ok(()) => {
            summary.report(json_summary);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What one run did. Every input line is judged, ignored or rejected.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    /// Events the engine was given.
    pub judged: u64,
    /// ... of them further behind their key than the grace period, so not judged after all.
    pub too_late: u64,
    /// ... of them dated further ahead than the allowed clock skew (judged at the engine's
    /// clock, which they did not move).
    pub future_dated: u64,
    /// Lines the monitor does not read: other topics and types, dead-letter lines, tombstones.
    pub ignored: u64,
    /// Lines that gave a dead-letter line.
    pub rejected: u64,
    pub alerts: u64,
    pub actions: u64,
    /// Blocklist upserts and tombstones.
    pub blocklist: u64,
}

impl Summary {
    /// The summary on stderr; a closed stderr is not worth failing over.
    fn report(&self, json: bool) {
        let text = if json {
            json!({
                "lines": self.lines, "judged": self.judged, "too_late": self.too_late,
                "future_dated": self.future_dated,
                "ignored": self.ignored, "rejected": self.rejected, "alerts": self.alerts,
                "actions": self.actions, "blocklist": self.blocklist,
            })
            .to_string()
        } else {
            self.to_string()
        };
        let _ = writeln!(io::stderr(), "{text}");
    }
}

/// `detect: 30 lines: 28 judged (0 too late, 0 future-dated), 1 ignored, 1 dead-lettered;
/// 3 alerts, ...`.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "detect: {} lines: {} judged ({} too late, {} future-dated), {} ignored, \
             {} dead-lettered; {} alerts, {} actions, {} blocklist records",
            self.lines,
            self.judged,
            self.too_late,
            self.future_dated,
            self.ignored,
            self.rejected,
            self.alerts,
            self.actions,
            self.blocklist
        )
    }
}

/// The command without its process edges: runs `detector` over `input` to its end (or first
/// I/O failure) into `output`, and returns the counts either way.
pub fn detect(
    mut detector: Detector,
    config: &Config,
    input: impl BufRead,
    output: impl Write,
) -> (Summary, Result<(), Failure>) {
    let mut summary = Summary::default();
    let max = config.limits.max_record_bytes;
    let result = each_line(input, max, output, |line, output| {
        summary.lines += 1;
        let (number, routed) = match line {
            Line::Text { number, bytes } if bytes.trim_ascii().is_empty() => {
                // Nothing is dropped silently, not even an empty line (as in `classify`).
                (
                    number,
                    Routed::Rejected(Rejection::new(Reason::InvalidJson, "empty line")),
                )
            }
            Line::Text { number, bytes } => (number, route(bytes, config)),
            Line::TooLong { number, size } => {
                (number, Routed::Rejected(Rejection::too_large(size, max)))
            }
        };
        match routed {
            Routed::Ignored => {
                summary.ignored += 1;
                Ok(())
            }
            Routed::Rejected(rejection) => {
                summary.rejected += 1;
                let dlq = json!({
                    "topic": config.topics.dead_letter,
                    "error": rejection.reason.as_str(),
                    "detail": rejection.detail,
                    "line": number,
                });
                writeln!(output, "{dlq}")
            }
            Routed::Observed(observation) => {
                summary.judged += 1;
                let outputs = detector.observe(&observation, Mode::Live, Utc::now());
                outputs.iter().try_for_each(|out| {
                    match out {
                        Output::Alert(_) => summary.alerts += 1,
                        Output::Action(_) => summary.actions += 1,
                        Output::Block(_) | Output::Unblock { .. } => summary.blocklist += 1,
                    }
                    write_output(&mut *output, out, config)
                })
            }
        }
    });
    summary.too_late = detector.stats().too_late;
    summary.future_dated = detector.stats().future_dated;
    (summary, result)
}

enum Routed {
    Observed(Box<Observation>),
    Ignored,
    Rejected(Rejection),
}

/// One input line → what the engine should see of it.
fn route(bytes: &[u8], config: &Config) -> Routed {
    let read_at = Utc::now();
    // serde_json bounds its own recursion, so this first look is safe on any input; the core
    // parser then gives every rejection its reason code and detail.
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) => return rejected_by_core(bytes, config),
    };
    let Value::Object(mut object) = value else {
        return rejected_by_core(bytes, config);
    };
    if !is_classify_line(&object) {
        // A bare CloudEvent: the core parser checks it (limits included), its type routes it.
        let event = match parse_structured(bytes, &config.limits) {
            Ok(event) => event,
            Err(rejection) => return Routed::Rejected(rejection),
        };
        return match Observation::from_event(&event, read_at) {
            Ok(Some(observation)) => Routed::Observed(Box::new(observation)),
            Ok(None) => Routed::Ignored,
            Err(rejection) => Routed::Rejected(rejection),
        };
    }
    let topic = object
        .get("topic")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(kind) = InputKind::of_topic(topic, &config.topics) else {
        return Routed::Ignored;
    };
    let value = match object.remove("value") {
        Some(Value::Object(value)) => value,
        // A tombstone says nothing about activity.
        Some(Value::Null) | None => return Routed::Ignored,
        Some(_) => {
            return Routed::Rejected(Rejection::new(
                Reason::InvalidEnvelope,
                "the record value is not a JSON object",
            ));
        }
    };
    observe_event(Event::from_json_object(value), kind, read_at)
}

fn observe_event(
    event: Result<Event, Rejection>,
    kind: InputKind,
    read_at: chrono::DateTime<Utc>,
) -> Routed {
    match event.and_then(|event| Observation::from_event_as(kind, &event, read_at)) {
        Ok(observation) => Routed::Observed(Box::new(observation)),
        Err(rejection) => Routed::Rejected(rejection),
    }
}

fn rejected_by_core(bytes: &[u8], config: &Config) -> Routed {
    match parse_structured(bytes, &config.limits) {
        // Unreachable in practice (serde_json refused it), but never trust a second opinion.
        Ok(_) => Routed::Rejected(Rejection::new(Reason::InvalidJson, "not a JSON object")),
        Err(rejection) => Routed::Rejected(rejection),
    }
}

/// `{"topic": ..., "key": ..., "value": ...}` in that order, as `classify` writes it; the value
/// is the core's CloudEvent serialisation (`null` for a blocklist tombstone).
fn write_output(output: &mut impl Write, out: &Output, config: &Config) -> io::Result<()> {
    let topic = Value::from(out.topic(&config.topics));
    let key = Value::from(out.key());
    write!(output, r#"{{"topic":{topic},"key":{key},"value":"#)?;
    match out.to_event() {
        Some(event) => serde_json::to_writer(&mut *output, &event).map_err(io::Error::from)?,
        None => output.write_all(b"null")?,
    }
    output.write_all(b"}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(config: &Config, input: &str) -> (Vec<Value>, Summary) {
        let secret = auditflow_core::detect::IdSecret::development();
        let detector = Detector::new(&config.security, secret).unwrap();
        let mut out = Vec::new();
        let (summary, result) = detect(detector, config, input.as_bytes(), &mut out);
        result.unwrap();
        let text = String::from_utf8(out).unwrap();
        (
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            summary,
        )
    }

    fn lines(input: &str) -> (Vec<Value>, Summary) {
        run_on(&Config::default(), input)
    }

    fn failure(i: usize) -> String {
        json!({"topic": "audit.security.event", "key": "10.0.0.1", "value": {
            "specversion": "1.0", "id": format!("e{i}"), "source": "s",
            "type": "audit.security.event", "time": format!("2024-01-01T00:00:{i:02}Z"),
            "correlationid": "c",
            "data": {"event_type": "failed_login", "severity": "warning", "details": {},
                     "source_ip": "10.0.0.1", "user_id": "alice"}}})
        .to_string()
    }

    #[test]
    fn classify_lines_are_routed_by_topic() {
        let input: Vec<String> = (0..21).map(failure).collect();
        let (out, summary) = lines(&input.join("\n"));
        let topics: Vec<&str> = out.iter().map(|l| l["topic"].as_str().unwrap()).collect();
        assert_eq!(
            topics,
            [
                "security.alerts",
                "security.alerts",
                "security.alerts",
                "security.actions",
                "security.actions",
                "security.blocklist"
            ]
        );
        assert_eq!(out[0]["key"], "10.0.0.1");
        assert_eq!(
            (
                summary.judged,
                summary.alerts,
                summary.actions,
                summary.blocklist
            ),
            (21, 3, 2, 1)
        );
    }

    #[test]
    fn bad_lines_are_dead_lettered_and_others_ignored() {
        let input = [
            "not json".to_owned(),
            "[1]".to_owned(),
            json!({"topic": "audit.dlq", "error": "invalid_json", "detail": "x", "line": 1})
                .to_string(),
            json!({"topic": "audit.data.access", "key": "u", "value": {}}).to_string(),
            json!({"id": "x", "source": "s", "type": "user.created"}).to_string(),
            json!({"id": "x", "source": "s", "type": "audit.user.action", "data": {}}).to_string(),
            json!({"topic": "audit.user.action", "key": "u", "value": {"id": "x"}}).to_string(),
            " ".to_owned(),
        ];
        let (out, summary) = lines(&input.join("\n"));
        let errors: Vec<(&str, u64)> = out
            .iter()
            .map(|l| (l["error"].as_str().unwrap(), l["line"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            errors,
            [
                ("invalid_json", 1),
                ("invalid_envelope", 2),
                ("schema_violation", 6),
                ("invalid_envelope", 7),
                ("invalid_json", 8)
            ]
        );
        assert!(
            out.iter()
                .all(|l| l["topic"] == "audit.dlq" && l["detail"].is_string())
        );
        assert_eq!(
            (
                summary.lines,
                summary.rejected,
                summary.ignored,
                summary.judged
            ),
            (8, 5, 3, 0)
        );
    }

    #[test]
    fn oversized_lines_are_too_large() {
        let mut config = Config::default();
        config.limits.max_record_bytes = 100;
        let input = format!("{}\n{}", "x".repeat(500), failure(0));
        let (out, summary) = run_on(&config, &input);
        assert_eq!(out[0]["error"], "too_large");
        assert_eq!(out[0]["line"], 1);
        // The second line is over the limit too (a classify line is longer than 100 bytes).
        assert_eq!(summary.rejected, 2);
    }
}
