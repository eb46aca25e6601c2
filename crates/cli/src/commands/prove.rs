//! `auditflow prove <event-id>` and `auditflow verify-proof FILE --public-key KEY`
//! (docs/integrity.md, docs/cli.md).
//!
//! `prove` prints one JSON document (a machine document: `--json` changes nothing): the
//! record's leaf, its inclusion proof under its log's latest signed checkpoint, and a
//! consistency proof from an older checkpoint. It checks the proof before printing it.
//! `verify-proof` checks such a document with the public key alone — no database, no Kafka.

use std::io::Read;
use std::process::ExitCode;

use auditflow_core::Config;
use auditflow_store::Store;
use auditflow_store::integrity::{ProofOutcome, RecordProof, SigningKey};

use super::operator_log::Audited;

pub fn prove(event_id: &str, config: &Config, out: &mut Audited) -> anyhow::Result<ExitCode> {
    if event_id.is_empty() {
        eprintln!("auditflow prove: the event id must not be empty");
        return Ok(ExitCode::from(2));
    }
    let runtime = super::runtime()?;
    let outcome = runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        store.prove(event_id).await
    })?;
    let why = match outcome {
        ProofOutcome::Proven(proof) => {
            // A proof the configured key does not accept would mislead whoever gets it.
            if let Ok(key) = SigningKey::load(config)
                && let Err(why) = proof.check(&key.public_key())
            {
                anyhow::bail!(
                    "the stored log does not prove this record ({why}): run auditflow verify"
                );
            }
            out.records = Some(1);
            out.line(serde_json::to_string_pretty(&proof)?);
            return Ok(ExitCode::SUCCESS);
        }
        ProofOutcome::NotFound => "no stored record has this id",
        ProofOutcome::NotInLog => "the record is in no log (stored before the log was kept)",
        ProofOutcome::NotCovered => {
            "the record is not covered by a checkpoint yet (its log's next checkpoint will)"
        }
    };
    eprintln!("auditflow prove: {why}");
    Ok(ExitCode::FAILURE)
}

pub fn verify_proof(file: &str, public_key: &str, json: bool) -> anyhow::Result<ExitCode> {
    let mut key = [0u8; 32];
    if auditflow_core::hex::decode_into(public_key, &mut key).is_err() {
        eprintln!("auditflow verify-proof: --public-key must be 64 hex digits");
        return Ok(ExitCode::from(2));
    }
    let mut text = String::new();
    let read = if file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    if let Err(e) = read {
        eprintln!("auditflow verify-proof: cannot read {file}: {e}");
        return Ok(ExitCode::FAILURE);
    }
    let outcome = serde_json::from_str::<RecordProof>(&text)
        .map_err(|e| format!("not a proof auditflow prove printed ({e})"))
        .and_then(|proof| proof.check(&key));
    match outcome {
        Ok(proven) => {
            let log = &proven.leaf.position.log;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": true,
                        "event_id": proven.leaf.event_id,
                        "log": log.to_string(),
                        "offset": proven.leaf.position.offset,
                        "index": proven.index,
                        "size": proven.size,
                        "consistent_from": proven.consistent_from,
                    })
                );
            } else {
                let consistency = proven
                    .consistent_from
                    .map(|from| format!("; the log only grew from size {from}"))
                    .unwrap_or_default();
                println!(
                    "proof valid: event {} is leaf {} (offset {}) of log {} under the checkpoint \
                     at size {} signed by the key{consistency}",
                    proven.leaf.event_id,
                    proven.index,
                    proven.leaf.position.offset,
                    log,
                    proven.size
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            if json {
                println!("{}", serde_json::json!({ "valid": false, "why": why }));
            }
            eprintln!("auditflow verify-proof: proof INVALID: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}
