//! `auditflow verify` and `auditflow keys public` (docs/integrity.md, docs/cli.md).
//!
//! `verify` checks every stored record against the tamper-evident log, every log against its
//! signed checkpoints, and — with `--anchor kafka`, the default — the stored checkpoints
//! against the anchor topic, read to its end. Exit 0 when everything checks out, 1 naming every
//! problem (or when the check itself could not run), 2 on bad usage.

use std::process::ExitCode;
use std::time::Duration;

use auditflow_core::Config;
use auditflow_core::checkpoint::SignedCheckpoint;
use auditflow_runtime::kafka::inspect::read_to_end;
use auditflow_store::Store;
use auditflow_store::integrity::{Problem, Report, SigningKey, VerifyOptions};
use chrono::Utc;

use super::operator_log::Audited;
use crate::cli::{Anchor, KeysCommand, VerifyArgs};
use crate::commands::query::timestamp;

/// How long reading the anchor topic to its end may take.
const ANCHOR_READ: Duration = Duration::from_secs(120);

pub fn run(
    args: &VerifyArgs,
    config: &Config,
    json: bool,
    out: &mut Audited,
) -> anyhow::Result<ExitCode> {
    let usage = |why: String| {
        eprintln!("auditflow verify: {why}");
        Ok(ExitCode::from(2))
    };
    let parse =
        |flag, text: &Option<String>| text.as_deref().map(|t| timestamp(flag, t)).transpose();
    let (from, to) = match (
        parse("--from", &args.range.from),
        parse("--to", &args.range.to),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(why), _) | (_, Err(why)) => return usage(why),
    };
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return usage("--from must be before --to".into());
    }
    let public_key = match &args.public_key {
        Some(hex) => {
            let mut key = [0u8; 32];
            if auditflow_core::hex::decode_into(hex, &mut key).is_err() {
                return usage("--public-key must be 64 hex digits".into());
            }
            key
        }
        None => SigningKey::load(config)?.public_key(),
    };
    let runtime = super::runtime()?;
    let report = runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        // The store's checkpoints before the anchor's: every one stored is published first.
        let stored = store.stored_checkpoints().await?;
        let anchor = match args.anchor {
            Anchor::Store => None,
            Anchor::Kafka => Some(anchored(config)?),
        };
        let options = VerifyOptions {
            public_key,
            from,
            to,
            anchor,
            now_ms: Utc::now().timestamp_millis(),
        };
        let report = store
            .verify(stored, &options, |done, total| {
                eprintln!("verify: {done} of {total} records checked")
            })
            .await?;
        anyhow::Ok(report)
    })?;
    out.records = Some(report.verified);
    if json {
        out.line(serde_json::to_string(&report)?);
    } else {
        print_report(out, &report);
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The checkpoints on the anchor topic. A record that is no checkpoint is an error: the topic
/// holds nothing else.
fn anchored(config: &Config) -> anyhow::Result<Vec<SignedCheckpoint>> {
    let topic = &config.topics.checkpoints;
    read_to_end(&config.kafka, topic, ANCHOR_READ)?
        .into_iter()
        .map(|record| {
            let payload = record.payload.unwrap_or_default();
            serde_json::from_slice(&payload).map_err(|_| {
                anyhow::anyhow!(
                    "{topic} partition {} offset {} is not a checkpoint",
                    record.partition,
                    record.offset
                )
            })
        })
        .collect()
}

fn print_report(out: &mut Audited, report: &Report) {
    for problem in &report.problems {
        out.line(problem_line(problem));
    }
    if report.is_clean() {
        out.line(format!(
            "verified {} records in {} checkpoints over {} logs",
            report.verified, report.checkpoints, report.logs
        ));
    } else {
        out.line(format!(
            "verification FAILED: {} problems; {} records verified in {} checkpoints over {} logs",
            report.problems.len(),
            report.verified,
            report.checkpoints,
            report.logs
        ));
    }
    if report.not_covered > 0 {
        out.line(format!(
            "{} records stored after their log's last checkpoint are not yet covered",
            report.not_covered
        ));
    }
    if report.expired > 0 {
        out.line(format!(
            "{} records past their retention period are gone (expired)",
            report.expired
        ));
    }
}

fn problem_line(p: &Problem) -> String {
    let kind = serde_json::to_value(p.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut at = Vec::new();
    if let Some(id) = &p.event_id {
        at.push(format!("event {id}"));
    }
    if let Some(table) = &p.table {
        at.push(format!("table {table}"));
    }
    if let Some(log) = &p.log {
        at.push(format!("log {log}"));
    }
    format!("{kind}: {}: {}", at.join(", "), p.detail)
}

pub fn keys(command: &KeysCommand, config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Public => {
            let key = SigningKey::load(config)?;
            let public = auditflow_core::hex::encode(&key.public_key());
            if json {
                println!("{}", serde_json::json!({ "public_key": public }));
            } else {
                println!("{public}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
