//! `auditflow classify`: the classifier offline (docs/cli.md).
//!
//! NDJSON CloudEvents on stdin → one `{"topic", "key", "value"}` line per audit record on
//! stdout, in input order; a rejected line gives
//! `{"topic": "audit.dlq", "error": "<reason>", "detail": "...", "line": N}`; sampled-out and
//! ignored lines give nothing. The counts go to stderr. Every line is classified by the core's
//! `Classifier`, exactly as the service classifies a Kafka record, with the time the line was
//! read standing in for the record timestamp.
//!
//! Exit codes: 0 when stdin was read to the end (rejected lines are output, not failure), also
//! when the reader of stdout went away (`| head`); 1 when stdin or stdout fails otherwise.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use auditflow_core::envelope::{Reason, Rejection};
use auditflow_core::{Classified, Classifier, Config, Counters};
use chrono::Utc;
use serde_json::json;

use super::ndjson::{Failure, Line, each_line};

/// Runs the command over stdin and stdout; the summary goes to stderr (JSON with `--json`).
pub fn run(config: &Config, json_summary: bool) -> anyhow::Result<ExitCode> {
    let classifier = Classifier::new(config)?;
    let stdin = io::stdin().lock();
    let stdout = io::BufWriter::new(io::stdout().lock());
    let (counters, result) = classify(&classifier, config, stdin, stdout);
    match result {
        Err(Failure::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS);
        }
        Err(Failure::Write(e)) => return Err(e).context("writing stdout"),
        Err(Failure::Read(e)) => {
            report(&counters, json_summary);
            return Err(e).context("reading stdin");
        }
        Ok(()) => report(&counters, json_summary),
    }
    Ok(ExitCode::SUCCESS)
}

/// The command without its process edges: classifies `input` to its end (or first I/O
/// failure) into `output`, and returns the counts either way.
pub fn classify(
    classifier: &Classifier,
    config: &Config,
    input: impl BufRead,
    output: impl Write,
) -> (Counters, Result<(), Failure>) {
    let mut counters = Counters::default();
    let max = classifier.limits().max_record_bytes;
    let result = each_line(input, max, output, |line, output| {
        let (number, classified) = match line {
            Line::Text { number, bytes } if bytes.trim_ascii().is_empty() => {
                // Nothing is dropped silently, not even an empty line.
                (
                    number,
                    Classified::Rejected(Rejection::new(Reason::InvalidJson, "empty line")),
                )
            }
            Line::Text { number, bytes } => {
                (number, classifier.classify_structured(bytes, Utc::now()))
            }
            Line::TooLong { number, size } => (
                number,
                Classified::Rejected(Rejection::too_large(
                    size,
                    classifier.limits().max_record_bytes,
                )),
            ),
        };
        counters.record(&classified);
        write(output, &classified, number, config)
    });
    (counters, result)
}

fn write(
    output: &mut impl Write,
    classified: &Classified,
    number: u64,
    config: &Config,
) -> io::Result<()> {
    match classified {
        Classified::Emit(outputs) => {
            for out in outputs {
                output.write_all(&out.to_line())?;
                output.write_all(b"\n")?;
            }
        }
        Classified::Rejected(rejection) => {
            let line = json!({
                "topic": config.topics.dead_letter,
                "error": rejection.reason.as_str(),
                "detail": rejection.detail,
                "line": number,
            });
            serde_json::to_writer(&mut *output, &line).map_err(io::Error::from)?;
            output.write_all(b"\n")?;
        }
        Classified::SampledOut { .. } | Classified::Ignored => {}
    }
    Ok(())
}

/// The summary on stderr; a closed stderr is not worth failing over.
fn report(counters: &Counters, json: bool) {
    let text = if json {
        serde_json::to_string(counters).unwrap_or_default()
    } else {
        summary(counters)
    };
    let _ = writeln!(io::stderr(), "{text}");
}

/// `classify: 9 lines: 7 audited, 8 records (audit.user.action 6, ...), 0 sampled out, ...`.
fn summary(counters: &Counters) -> String {
    fn breakdown<K: std::fmt::Display>(counts: impl IntoIterator<Item = (K, u64)>) -> String {
        let parts: Vec<String> = counts
            .into_iter()
            .map(|(key, n)| format!("{key} {n}"))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }
    format!(
        "classify: {} lines: {} audited, {} records{}, {} sampled out{}, {} ignored, {} dead-lettered{}",
        counters.consumed,
        counters.audited,
        counters.emitted_total(),
        breakdown(counters.emitted.iter().map(|(ty, n)| (ty, *n))),
        counters.sampled_out_total(),
        breakdown(counters.sampled_out.iter().map(|(ty, n)| (ty, *n))),
        counters.ignored,
        counters.dead_lettered_total(),
        breakdown(
            counters
                .dead_lettered
                .iter()
                .map(|(reason, n)| (reason, *n))
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(input: &[u8]) -> (Counters, String) {
        let config = Config::default();
        let classifier = Classifier::new(&config).unwrap();
        let mut output = Vec::new();
        let (counters, result) = classify(&classifier, &config, input, &mut output);
        result.unwrap();
        (counters, String::from_utf8(output).unwrap())
    }

    #[test]
    fn every_line_is_accounted_for() {
        let input = b"{\"id\":\"1\",\"source\":\"s\",\"type\":\"user.created\",\"data\":{\"user_id\":\"u\"}}\n\n[1,2]\n\
                      {\"id\":\"2\",\"source\":\"s\",\"type\":\"audit.user.action\"}";
        let (counters, output) = run_on(input);
        let lines: Vec<serde_json::Value> = output
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["topic"], "audit.user.action");
        assert_eq!(
            lines[1],
            json!({"topic": "audit.dlq", "error": "invalid_json", "detail": "empty line", "line": 2})
        );
        assert_eq!(lines[2]["error"], "invalid_envelope");
        assert_eq!(lines[2]["line"], 3);
        assert_eq!(counters.consumed, 4);
        assert!(counters.balanced());
        assert_eq!(
            summary(&counters),
            "classify: 4 lines: 1 audited, 1 records (audit.user.action 1), 0 sampled out, 1 ignored, \
             2 dead-lettered (invalid_json 1, invalid_envelope 1)"
        );
    }

    #[test]
    fn a_closed_output_is_a_write_failure_not_a_panic() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let config = Config::default();
        let classifier = Classifier::new(&config).unwrap();
        let (_, result) = classify(&classifier, &config, &b"[1]\n[2]\n"[..], Closed);
        assert!(matches!(result, Err(Failure::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe));
    }
}
