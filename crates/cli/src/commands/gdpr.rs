//! `auditflow gdpr export|delete|anonymize --user U` (docs/cli.md, docs/operations.md).
//!
//! - **export** prints one JSON document, always (it is a machine document; `--json` is
//!   accepted and changes nothing): `user_id`, `export_date`, `audit_trail` (every stored record
//!   of the user across every retention class, newest first, decrypted) and `retention_info`
//!   (per class: how many records, the retention period, the oldest and newest record).
//! - **delete** crypto-shreds the user ([`Store::destroy_user_key`]): their data key is
//!   destroyed, so no stored byte of theirs can be decrypted and nothing leads from their user id
//!   to their rows any more. Erasure is final: the store remembers the erasure (by keyed
//!   pseudonym), and records of the user dated before it that arrive later (a lagging sink, a
//!   replay, a re-driven dead letter) are stored unreadable; records dated after it start a
//!   new trail, unlinked from the erased one. The reserved subjects (`unknown`, `system` and
//!   `[store] hourly_subjects`) are refused with exit code 2: their keys seal the records of
//!   everyone without a user id. The rows themselves stay until their TTL: the time-series tables
//!   never see a DELETE, and their clear, non-personal labels (kind, action, outcome, risk,
//!   severity, class) keep security and financial records countable in reports. Erasing a user
//!   of whom nothing is stored is a success (exit 0): the end state the request asks for holds.
//! - **anonymize** is, in this storage design, the same operation as delete, and says so. The
//!   rows are already keyed by a random pseudonym (the key id), and once the key is gone what
//!   remains of them is exactly the non-personal labels — an anonymized record. A reversible
//!   pseudonymisation (re-sealing the personal fields under a new identity) would keep personal
//!   data readable, which is not what an anonymization request asks for, so it is not offered.
//!
//! What these commands print is for the operator who asked; nothing personal goes to the logs.
//! Other processes may keep a destroyed key cached for up to `[store] key_cache_ttl_secs`.

use std::process::ExitCode;

use auditflow_core::operator::{OperatorAction, Receipt, rfc3339};
use auditflow_core::{Config, RetentionClass};
use auditflow_store::{MAX_PAGE, RecordKind, Store, StoredRecord, TimeRange, is_reserved_subject};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::operator_log::Audited;
use crate::cli::GdprCommand;

pub fn run(
    command: &GdprCommand,
    config: &Config,
    json: bool,
    out: &mut Audited,
) -> anyhow::Result<ExitCode> {
    let (verb, user) = match command {
        GdprCommand::Export { user } => ("export", user),
        GdprCommand::Delete { user } => ("delete", user),
        GdprCommand::Anonymize { user } => ("anonymize", user),
        GdprCommand::Receipt { request_id } => return receipt(request_id, config, out),
    };
    if user.is_empty() {
        eprintln!("auditflow gdpr {verb}: --user must not be empty");
        return Ok(ExitCode::from(2));
    }
    if verb != "export" && is_reserved_subject(&config.store.hourly_subjects, user) {
        eprintln!(
            "auditflow gdpr {verb}: {user:?} is a reserved subject (`unknown`, `system`, [store] \
             hourly_subjects): it files the records of many people and cannot be erased"
        );
        return Ok(ExitCode::from(2));
    }
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        let trail = whole_trail(&store, user).await?;
        out.records = Some(trail.len() as u64);
        match command {
            GdprCommand::Export { .. } => {
                out.line(export_document(user, Utc::now(), &trail, config));
            }
            _ => {
                let destroyed = store.destroy_user_key(user).await?;
                tracing::info!(verb, destroyed, "gdpr erasure done");
                let receipt = Receipt {
                    request_id: out.request_id.clone(),
                    request: verb.to_owned(),
                    time: rfc3339(Utc::now()),
                    subject: out.subject.clone().unwrap_or_default(),
                    key_destroyed: destroyed,
                    records_made_unreadable: if destroyed { trail.len() as u64 } else { 0 },
                };
                print_erasure(out, user, &receipt, json);
                out.receipt = Some(receipt);
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `gdpr receipt <id>`: the receipt the operator log stored for an erasure, as JSON.
fn receipt(request_id: &str, config: &Config, out: &mut Audited) -> anyhow::Result<ExitCode> {
    if request_id.is_empty() {
        eprintln!("auditflow gdpr receipt: the request id must not be empty");
        return Ok(ExitCode::from(2));
    }
    let runtime = super::runtime()?;
    let stored = runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        anyhow::Ok(store.get_by_id(request_id).await?)
    })?;
    let found = stored
        .filter(|r| r.kind == RecordKind::OperatorAction)
        .map(|r| r.event);
    let action = match found {
        None => anyhow::bail!(
            "no erasure request {request_id:?} is stored (the sink stores the operator log: a \
             request made seconds ago may not be yet)"
        ),
        Some(None) => anyhow::bail!(
            "request {request_id:?} is stored, but its operator was erased: it can no longer be read"
        ),
        Some(Some(event)) => {
            let Value::Object(object) = event else {
                anyhow::bail!("request {request_id:?}: the stored event is not an object");
            };
            let event = auditflow_core::Event::from_json_object(object)
                .map_err(|e| anyhow::anyhow!("request {request_id:?}: {e}"))?;
            OperatorAction::from_event(&event)?
        }
    };
    let Some(receipt) = action.receipt else {
        anyhow::bail!(
            "request {request_id:?} is a `{}`, not an erasure",
            action.command
        );
    };
    out.records = Some(1);
    out.line(json!({
        "receipt": receipt,
        "operator": action.operator,
        "outcome": action.outcome,
    }));
    Ok(ExitCode::SUCCESS)
}

/// Every record of the user, newest first, page after page.
async fn whole_trail(store: &Store, user: &str) -> anyhow::Result<Vec<StoredRecord>> {
    super::all_pages(async |page| {
        Ok(store
            .query_user(user, TimeRange::default(), &[], MAX_PAGE, page)
            .await?)
    })
    .await
}

/// The export document; `trail` newest first.
fn export_document(
    user: &str,
    now: DateTime<Utc>,
    trail: &[StoredRecord],
    config: &Config,
) -> Value {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut retention = serde_json::Map::new();
    for class in RetentionClass::ALL {
        let mine: Vec<&StoredRecord> = trail.iter().filter(|r| r.class == class).collect();
        // Newest first: the oldest is the last.
        retention.insert(
            class.as_str().to_owned(),
            json!({
                "count": mine.len(),
                "retention_days": class.period_days(&config.retention),
                "oldest": mine.last().map(|r| time(r.event_time)),
                "newest": mine.first().map(|r| time(r.event_time)),
            }),
        );
    }
    json!({
        "user_id": user,
        "export_date": time(now),
        "audit_trail": trail,
        "retention_info": retention,
    })
}

fn print_erasure(out: &mut Audited, user: &str, receipt: &Receipt, json: bool) {
    let destroyed = receipt.key_destroyed;
    if json {
        out.line(json!({
            "user_id": user,
            "operation": receipt.request,
            "key_destroyed": destroyed,
            "had_data": destroyed,
            "receipt": receipt,
        }));
        return;
    }
    let done = if receipt.request == "anonymize" {
        "anonymized"
    } else {
        "erased"
    };
    if destroyed {
        out.line(format!(
            "{done} {user:?}: their data key is destroyed; {} records can no longer be read or \
             found by user, and remain countable in reports by non-personal labels only until \
             their retention period ends",
            receipt.records_made_unreadable
        ));
    } else {
        out.line(format!(
            "{done} {user:?}: nothing was stored for this user (or it was already erased)"
        ));
    }
    out.line(format!(
        "receipt: auditflow gdpr receipt {}",
        receipt.request_id
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditflow_store::{Labels, RecordKind};
    use chrono::TimeZone;

    fn record(id: &str, class: RetentionClass, hour: u32) -> StoredRecord {
        StoredRecord {
            id: id.into(),
            kind: RecordKind::UserAction,
            class,
            event_time: Utc.with_ymd_and_hms(2026, 11, 20, hour, 0, 0).unwrap(),
            event_type: "audit.user.action".into(),
            labels: Labels::default(),
            event: Some(json!({"data": {"user_id": "u1"}})),
        }
    }

    #[test]
    fn export_has_the_trail_and_retention_per_class() {
        let trail = [
            record("c", RetentionClass::Security, 12),
            record("b", RetentionClass::General, 11),
            record("a", RetentionClass::Security, 10),
        ];
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
        let doc = export_document("u1", now, &trail, &Config::default());
        assert_eq!(doc["user_id"], "u1");
        assert_eq!(doc["export_date"], "2026-11-27T00:00:00.000Z");
        assert_eq!(doc["audit_trail"].as_array().unwrap().len(), 3);
        assert_eq!(doc["audit_trail"][0]["event"]["data"]["user_id"], "u1");
        let security = &doc["retention_info"]["security"];
        assert_eq!(security["count"], 2);
        assert_eq!(security["retention_days"], 2557);
        assert_eq!(security["oldest"], "2026-11-20T10:00:00.000Z");
        assert_eq!(security["newest"], "2026-11-20T12:00:00.000Z");
        assert_eq!(doc["retention_info"]["marketing"]["count"], 0);
        assert_eq!(doc["retention_info"]["marketing"]["oldest"], Value::Null);
    }
}
