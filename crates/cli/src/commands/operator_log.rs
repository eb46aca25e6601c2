//! The operator log (docs/operator-log.md): every command that reads or changes audit data
//! publishes one `audit.operator.action` event saying who ran it, with which non-personal
//! arguments, about which subject (by keyed pseudonym), and how it ended.
//!
//! The command's standard output is held back until the event is acknowledged by the brokers:
//! what a command read is shown only once its reading is on record. When the event cannot be
//! published (Kafka unreachable, the topic refused) the command says so in one line, shows
//! nothing and exits 1 — a change it made (an erasure) stays made, and the line says that too.
//! `--no-operator-log` runs a command unrecorded, for local use; it is never the default.
//!
//! The event is published once: an idempotent producer, acknowledged by every in-sync replica,
//! under a fresh random id that the sink stores at most once.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use auditflow_core::Config;
use auditflow_core::operator::{CommandOutcome, OperatorAction, Receipt, rfc3339};
use auditflow_runtime::kafka::publisher::Publisher;
use auditflow_runtime::kafka::topics;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::format::Format;
use crate::cli::{Command, GdprCommand, GlobalArgs, ReportCommand};

/// How long publishing the event may take, topic creation included.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);

/// What an audited command hands back besides its exit code: its standard output, held until
/// it is on record, and what the log says it did.
#[derive(Default)]
pub(crate) struct Audited {
    /// The operator event's id: also a `gdpr delete`'s request id.
    pub(crate) request_id: String,
    /// The subject's keyed pseudonym, when the command names a user.
    pub(crate) subject: Option<String>,
    /// Standard output.
    pub(crate) out: Vec<u8>,
    /// How many audit records it returned, checked or made unreadable.
    pub(crate) records: Option<u64>,
    /// A `gdpr delete`/`anonymize`'s receipt.
    pub(crate) receipt: Option<Receipt>,
    /// Where the output goes instead of standard output (`-o FILE`).
    pub(crate) file: Option<std::path::PathBuf>,
}

impl Audited {
    /// Writes one line of output.
    pub(crate) fn line(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{text}");
    }

    /// Writes output as it is.
    pub(crate) fn text(&mut self, text: impl std::fmt::Display) {
        let _ = write!(self.out, "{text}");
    }
}

/// An audited command as the log names it: its name, its non-personal arguments, and the user
/// it is about.
pub(crate) struct Described<'c> {
    pub(crate) command: String,
    pub(crate) arguments: Map<String, Value>,
    pub(crate) user: Option<&'c str>,
}

fn set(arguments: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        arguments.insert(key.to_owned(), value.into());
    }
}

/// The commands that read or change audit data, described; `None` for the others (running a
/// service, classifying offline, the demo, checking a proof file, ...).
pub(crate) fn describe(command: &Command) -> Option<Described<'_>> {
    let mut arguments = Map::new();
    let (name, user): (String, Option<&str>) = match command {
        Command::Query(q) => {
            set(&mut arguments, "from", q.range.from.clone());
            set(&mut arguments, "to", q.range.to.clone());
            if !q.actions.is_empty() {
                arguments.insert("action".into(), json!(q.actions));
            }
            arguments.insert("limit".into(), json!(q.limit));
            set(&mut arguments, "page", q.page.clone());
            set(&mut arguments, "format", q.output.format.map(format_name));
            ("query".into(), Some(q.user.as_str()))
        }
        Command::Trail(t) => {
            set(&mut arguments, "event_id", t.event_id.clone());
            set(&mut arguments, "correlation", t.correlation.clone());
            ("trail".into(), None)
        }
        Command::Gdpr { command } => match command {
            GdprCommand::Export { user } => ("gdpr.export".into(), Some(user.as_str())),
            GdprCommand::Delete { user } => ("gdpr.delete".into(), Some(user.as_str())),
            GdprCommand::Anonymize { user } => ("gdpr.anonymize".into(), Some(user.as_str())),
            GdprCommand::Receipt { request_id } => {
                arguments.insert("request_id".into(), json!(request_id));
                ("gdpr.receipt".into(), None)
            }
        },
        Command::Report { command } => {
            let (name, range, output, user) = match command {
                ReportCommand::UserActivity {
                    user,
                    range,
                    output,
                } => ("user_activity", range, output, Some(user.as_str())),
                ReportCommand::Security { range, output } => ("security", range, output, None),
                ReportCommand::Compliance { range, output } => ("compliance", range, output, None),
            };
            set(&mut arguments, "from", range.from.clone());
            set(&mut arguments, "to", range.to.clone());
            set(&mut arguments, "format", output.format.map(format_name));
            (format!("report.{name}"), user)
        }
        Command::Verify(v) => {
            set(&mut arguments, "from", v.range.from.clone());
            set(&mut arguments, "to", v.range.to.clone());
            let anchor = match v.anchor {
                crate::cli::Anchor::Kafka => "kafka",
                crate::cli::Anchor::Store => "store",
            };
            arguments.insert("anchor".into(), json!(anchor));
            set(&mut arguments, "public_key", v.public_key.clone());
            ("verify".into(), None)
        }
        Command::Prove { event_id } => {
            arguments.insert("event_id".into(), json!(event_id));
            ("prove".into(), None)
        }
        _ => return None,
    };
    Some(Described {
        command: name,
        arguments,
        user,
    })
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Table => "table",
        Format::Json => "json",
        Format::Csv => "csv",
        Format::Html => "html",
        Format::Ocsf => "ocsf",
    }
}

/// The exit code an `ExitCode` was made from (the commands make 0, 1 and 2 only).
fn code_of(code: ExitCode) -> u8 {
    if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(2) {
        2
    } else {
        1
    }
}

/// Who runs this: `--operator`, else `[operator] name`, else the OS user.
fn operator(global: &GlobalArgs, config: &Config) -> Result<String, String> {
    let named = global
        .operator
        .clone()
        .or_else(|| config.operator.name.clone())
        .or_else(os_user);
    match named {
        Some(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
        Some(_) => Err("the operator's name must not be empty".into()),
        None => Err("cannot tell who runs this: give --operator or [operator] name".into()),
    }
}

/// The OS user: `$USER`, `$LOGNAME`, else the process's uid looked up in /etc/passwd (or
/// `uid:<n>`).
fn os_user() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
        {
            return Some(name);
        }
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid.to_string()).then(|| name.to_owned())
    });
    Some(name.unwrap_or_else(|| format!("uid:{uid}")))
}

/// Runs an audited command: `body` does the work into an [`Audited`]; its event is published,
/// then its output shown.
pub(crate) fn run(
    global: &GlobalArgs,
    config: &Config,
    described: Described<'_>,
    body: impl FnOnce(&mut Audited) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let started = Utc::now();
    let mut audited = Audited {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Audited::default()
    };
    let recording = !global.no_operator_log;
    let operator = if recording {
        match operator(global, config) {
            Ok(name) => Some(name),
            Err(why) => {
                eprintln!("auditflow {}: {why}", described.command.replace('.', " "));
                return Ok(ExitCode::from(2));
            }
        }
    } else {
        None
    };
    if let Some(user) = described.user.filter(|u| !u.is_empty()) {
        audited.subject = Some(
            auditflow_store::subject_pseudonym(&config.store, user)
                .context("naming the subject for the operator log")?,
        );
    }
    let result = body(&mut audited);
    let code = match &result {
        Ok(code) => code_of(*code),
        Err(_) => 1,
    };
    if let Some(operator) = operator {
        let action = OperatorAction {
            operator,
            command: described.command.clone(),
            arguments: described.arguments,
            subject: audited.subject.clone(),
            outcome: CommandOutcome::of_exit_code(code),
            exit_code: code,
            records: audited.records,
            started: rfc3339(started),
            receipt: audited.receipt.clone(),
        };
        if let Err(e) = publish(config, &audited.request_id, &action) {
            let done = if audited.receipt.is_some() && code == 0 {
                format!(
                    " (the erasure itself was carried out: request {})",
                    audited.request_id
                )
            } else {
                String::new()
            };
            eprintln!(
                "auditflow {}: could not record this command in the operator log ({}): {e:#}; \
                 its output is withheld{done} (--no-operator-log runs it unrecorded)",
                described.command.replace('.', " "),
                config.topics.operator
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    match &audited.file {
        Some(path) if result.is_ok() => std::fs::write(path, &audited.out)
            .with_context(|| format!("writing {}", path.display()))?,
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&audited.out)
                .and_then(|()| stdout.flush())
                .context("writing the output")?;
        }
    }
    result
}

/// Publishes `action` as event `id` and waits for the brokers' acknowledgement.
fn publish(config: &Config, id: &str, action: &OperatorAction) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    let event = action.to_event(id, Utc::now());
    let payload = event.to_json_bytes();
    let topic = config.topics.operator.clone();
    runtime.block_on(async {
        let work = async {
            let spec: Vec<_> = topics::planned_topics(&config.topics)
                .into_iter()
                .filter(|t| t.name == topic)
                .collect();
            topics::ensure_topics(&config.kafka, &spec).await?;
            let publisher = Publisher::new(&config.kafka)?;
            // Keyed by the operator: one operator's commands stay in order.
            publisher
                .publish(
                    &topic,
                    action.operator.as_bytes(),
                    &payload,
                    PUBLISH_TIMEOUT,
                )
                .await?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("no acknowledgement within {PUBLISH_TIMEOUT:?}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn described(args: &[&str]) -> Option<(String, Value, Option<String>)> {
        let cli = Cli::parse_from(std::iter::once("auditflow").chain(args.iter().copied()));
        describe(&cli.command).map(|d| {
            (
                d.command,
                Value::Object(d.arguments),
                d.user.map(str::to_owned),
            )
        })
    }

    #[test]
    fn the_user_is_never_an_argument() {
        let (name, arguments, user) = described(&[
            "query",
            "--user",
            "alice",
            "--from",
            "2026-01-01T00:00:00Z",
            "--action",
            "login",
        ])
        .unwrap();
        assert_eq!(name, "query");
        assert_eq!(user.as_deref(), Some("alice"));
        assert_eq!(
            arguments,
            json!({"from": "2026-01-01T00:00:00Z", "action": ["login"], "limit": 50})
        );
        assert!(!arguments.to_string().contains("alice"));
        let (name, arguments, user) = described(&["gdpr", "delete", "--user", "alice"]).unwrap();
        assert_eq!(
            (name.as_str(), user.as_deref()),
            ("gdpr.delete", Some("alice"))
        );
        assert_eq!(arguments, json!({}));
        let (name, _, user) = described(&["report", "user-activity", "--user", "bob"]).unwrap();
        assert_eq!(
            (name.as_str(), user.as_deref()),
            ("report.user_activity", Some("bob"))
        );
    }

    #[test]
    fn only_commands_on_audit_data_are_logged() {
        for args in [
            &["trail", "e-1"][..],
            &["verify", "--anchor", "store"],
            &["prove", "e-1"],
            &["report", "security"],
            &["report", "compliance"],
            &["gdpr", "receipt", "r-1"],
            &["gdpr", "export", "--user", "u"],
        ] {
            assert!(described(args).is_some(), "{args:?}");
        }
        for args in [
            &["classify"][..],
            &["migrate"],
            &["topics", "create"],
            &["demo"],
        ] {
            assert!(described(args).is_none(), "{args:?}");
        }
    }

    #[test]
    fn exit_codes_are_read_back() {
        assert_eq!(code_of(ExitCode::SUCCESS), 0);
        assert_eq!(code_of(ExitCode::FAILURE), 1);
        assert_eq!(code_of(ExitCode::from(2)), 2);
    }
}
