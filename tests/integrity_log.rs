//! The tamper-evident log on the real stack (docs/integrity.md): the sink makes every record
//! it stores a leaf of its partition's log, and signs checkpoints of each log into the
//! `checkpoints` table and onto the anchor topic — exactly what one pass over the leaves signs;
//! `auditflow verify` names every tamper with the rows or the checkpoints, and still passes
//! after an erasure.

use auditflow_core::checkpoint::SignedCheckpoint;
use auditflow_integration_tests::integrity::{assert_sealed_once, wait_sealed};
use auditflow_integration_tests::kafka::{Input, produce};
use auditflow_integration_tests::processes::auditflow_binary;
use auditflow_integration_tests::sink::{
    SinkSetup, alert, data_access, security_event, start_sink, user_action,
};
use auditflow_integration_tests::stack::unique_name;
use auditflow_integration_tests::store::session;
use auditflow_store::Store;
use auditflow_store::integrity::Leaf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_record_is_a_leaf_under_signed_chained_anchored_checkpoints() {
    let traffic = Traffic {
        users: 7,
        actions: 300,
        security: 60,
        access: 20,
        alerts: 10,
    };
    let (setup, store) = stored_and_sealed("integrity_log", 25, &traffic).await;
    assert_sealed_once(&store, &setup.bootstrap, &setup.config, traffic.total()).await;

    // One record's proof, checked offline with the public key alone; one changed byte fails it.
    let keys = setup.command(&["keys", "public"]).output().unwrap();
    assert!(keys.status.success());
    let public_key = String::from_utf8(keys.stdout).unwrap().trim().to_owned();
    assert_eq!(public_key.len(), 64, "{public_key}");
    let proved = setup.command(&["prove", "se-3"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&proved.stderr);
    assert!(proved.status.success(), "prove: {stderr}");
    let proof: serde_json::Value = serde_json::from_slice(&proved.stdout).unwrap();
    assert_eq!(proof["event_id"], "se-3");
    assert!(
        proof["consistency"]["from"]["size"].as_u64().unwrap()
            < proof["checkpoint"]["size"].as_u64().unwrap()
    );
    let dir = std::env::temp_dir().join(unique_name("integrity_proof"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proof.json");
    std::fs::write(&file, &proved.stdout).unwrap();
    // Offline: no Kafka, no database in its environment.
    let offline = |file: &std::path::Path| {
        std::process::Command::new(auditflow_binary())
            .arg("--no-operator-log")
            .args([
                "verify-proof",
                file.to_str().unwrap(),
                "--public-key",
                &public_key,
            ])
            .env("AUDITFLOW_STORE__NODES", "[\"192.0.2.1:9\"]")
            .env("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", "192.0.2.1:9")
            .output()
            .unwrap()
    };
    let valid = offline(&file);
    let out = String::from_utf8_lossy(&valid.stdout);
    assert!(
        valid.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&valid.stderr)
    );
    assert!(out.starts_with("proof valid: event se-3 is leaf "), "{out}");
    let text = String::from_utf8(proved.stdout.clone()).unwrap();
    for field in ["\"leaf\": \"", "\"root\": \"", "\"signature\": \""] {
        let at = text.find(field).unwrap() + field.len() + 10;
        let mut changed = text.clone().into_bytes();
        changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
        std::fs::write(&file, &changed).unwrap();
        let invalid = offline(&file);
        assert_eq!(
            invalid.status.code(),
            Some(1),
            "a changed byte in {field} passed"
        );
        let why = String::from_utf8_lossy(&invalid.stderr);
        assert!(why.contains("proof INVALID"), "{why}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    setup.drop_keyspace().await;
}

/// How much of each kind of record a test stores.
struct Traffic {
    users: usize,
    actions: usize,
    security: usize,
    access: usize,
    alerts: usize,
}

impl Traffic {
    fn total(&self) -> u64 {
        (self.actions + self.security + self.access + self.alerts) as u64
    }

    /// Produces it to `setup`'s topics.
    async fn produce(&self, setup: &SinkSetup, name: &str) {
        let t = &setup.config.topics;
        let users: Vec<String> = (0..self.users).map(|u| format!("{name}-{u}")).collect();
        let user = |i: usize| users[i % users.len()].as_str();
        let actions: Vec<Input> = (0..self.actions).map(|i| user_action(i, user(i))).collect();
        let security: Vec<Input> = (0..self.security)
            .map(|i| security_event(i, user(i)))
            .collect();
        let access: Vec<Input> = (0..self.access).map(|i| data_access(i, user(i))).collect();
        let alerts: Vec<Input> = (0..self.alerts).map(alert).collect();
        for (topic, records) in [
            (&t.user_action, actions),
            (&t.security_event, security),
            (&t.data_access, access),
            (&t.alerts, alerts),
        ] {
            produce(&setup.bootstrap, topic, &records).await;
        }
    }
}

/// A fresh setup whose sink, checkpointing every `every` leaves, stored `traffic` and sealed
/// all of it, then stopped; with a store handle on its keyspace.
async fn stored_and_sealed(name: &str, every: u64, traffic: &Traffic) -> (SinkSetup, Store) {
    let mut setup = SinkSetup::new(name).await;
    setup.config.integrity.checkpoint_every = every;
    traffic.produce(&setup, name).await;
    let store = Store::connect(&setup.config.store, &setup.config.retention)
        .await
        .unwrap();
    run_sink_until_sealed(&setup, &store, traffic.total()).await;
    (setup, store)
}

/// Runs the sink until the logs hold `leaves` leaves, then stops it.
async fn run_sink_until_sealed(setup: &SinkSetup, store: &Store, leaves: u64) {
    let (shutdown, task) = start_sink(&setup.config);
    setup.wait_caught_up().await;
    wait_sealed(store, leaves).await;
    shutdown.trigger();
    task.await
        .expect("sink task")
        .expect("sink stopped cleanly");
}

/// `auditflow verify` with this setup's configuration: exit code and stdout (stderr shown on
/// failure to run).
fn verify(setup: &SinkSetup, args: &[&str]) -> (i32, String) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let out = setup
        .command(&all)
        .output()
        .expect("running auditflow verify");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || stdout.contains("verification FAILED"),
        "verify could not run (exit {code}): {stderr}"
    );
    (code, stdout)
}

/// Verifies, expecting exit 1 and every one of `lines` among the problems printed.
fn assert_caught(setup: &SinkSetup, args: &[&str], what: &str, lines: &[&str]) {
    let (code, out) = verify(setup, args);
    assert_eq!(code, 1, "{what} went unnoticed:\n{out}");
    for line in lines {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "{what}: no line {line:?} in\n{out}"
        );
    }
}

fn assert_clean(setup: &SinkSetup, args: &[&str], records: u64) -> String {
    let (code, out) = verify(setup, args);
    assert_eq!(code, 0, "the untouched store fails:\n{out}");
    assert!(
        out.contains(&format!("verified {records} records in ")),
        "{out}"
    );
    out
}

/// One row of `table` by its key, as JSON (for putting it back after a tamper).
struct RowJson {
    table: &'static str,
    key: String,
    json: String,
}

async fn first_row(ks: &str, table: &'static str, keys: &[&str], filter: &str) -> RowJson {
    let raw = session().await;
    let cql = format!("SELECT JSON * FROM {ks}.{table} {filter} LIMIT 1 ALLOW FILTERING");
    let (json,): (String,) = raw
        .query_unpaged(cql, ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .first_row()
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let key = keys
        .iter()
        .map(|k| format!("{k} = {}", cql_literal(&value[*k])))
        .collect::<Vec<_>>()
        .join(" AND ");
    RowJson { table, key, json }
}

/// A JSON value of `SELECT JSON` as a CQL literal (text quoted, blobs and numbers as they are).
fn cql_literal(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) if s.starts_with("0x") => s.clone(),
        serde_json::Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => s.clone(),
        serde_json::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => other.to_string(),
    }
}

async fn cql(statement: String) {
    session().await.query_unpaged(statement, ()).await.unwrap();
}

impl RowJson {
    fn id(&self) -> String {
        let value: serde_json::Value = serde_json::from_str(&self.json).unwrap();
        value["event_id"].as_str().unwrap().to_owned()
    }

    async fn restore(&self, ks: &str) {
        cql(format!(
            "INSERT INTO {ks}.{} JSON '{}'",
            self.table,
            self.json.replace('\'', "''")
        ))
        .await;
    }
}

/// Each tamper the issue lists, done behind auditflow's back with plain CQL to the pipeline's
/// own rows: `verify` names it and exits 1, and once it is undone the store verifies again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tamper_with_rows_or_checkpoints_is_named() {
    let traffic = Traffic {
        users: 5,
        actions: 120,
        security: 20,
        access: 0,
        alerts: 0,
    };
    // A checkpoint per leaf: every record is covered, so whichever row a tamper picks is one
    // `verify` checks (records after their log's last checkpoint are only counted).
    let (setup, store) = stored_and_sealed("integrity_tamper", 1, &traffic).await;
    let ks = setup.config.store.keyspace.clone();
    let ks = ks.as_str();
    // 140 records, 20 security events on one partition (one ip): every checkpoint is at a
    // multiple of 20, so every record is covered only if each log's size is one too.
    let out = assert_clean(&setup, &[], 140 - not_covered(&store).await);
    eprintln!("{out}");
    let class_key = ["pseudonym", "day", "event_time", "event_id"];
    let by_time_key = ["day", "shard", "event_time", "event_id"];

    // One flipped byte of one ciphertext.
    let row = first_row(ks, "audit_general_by_user", &class_key, "").await;
    let value: serde_json::Value = serde_json::from_str(&row.json).unwrap();
    let mut event = value["event"].as_str().unwrap().to_owned();
    let last = event.pop().unwrap();
    event.push(if last == '0' { '1' } else { '0' });
    cql(format!(
        "UPDATE {ks}.{} SET event = {event} WHERE {}",
        row.table, row.key
    ))
    .await;
    let id = row.id();
    let modified = format!("modified: event {id}, table audit_general_by_user");
    assert_caught(
        &setup,
        &["--anchor", "store"],
        "a flipped ciphertext byte",
        &[&modified],
    );
    row.restore(ks).await;

    // One rewritten clear label.
    let row = first_row(
        ks,
        "records_by_time",
        &by_time_key,
        "WHERE outcome = 'success'",
    )
    .await;
    cql(format!(
        "UPDATE {ks}.{} SET outcome = 'failure' WHERE {}",
        row.table, row.key
    ))
    .await;
    let modified = format!("modified: event {}, table records_by_time", row.id());
    assert_caught(
        &setup,
        &["--anchor", "store"],
        "a rewritten label",
        &[&modified],
    );
    row.restore(ks).await;

    // A deleted row.
    let row = first_row(ks, "security_by_time", &by_time_key, "").await;
    cql(format!("DELETE FROM {ks}.{} WHERE {}", row.table, row.key)).await;
    let removed = format!("removed: event {}, table security_by_time", row.id());
    assert_caught(&setup, &["--anchor", "store"], "a deleted row", &[&removed]);
    row.restore(ks).await;

    // A forged row: a copy of a real one under an id no log knows.
    let row = first_row(ks, "audit_general_by_user", &class_key, "").await;
    let forged = row.json.replace(&row.id(), "forged-1");
    cql(format!(
        "INSERT INTO {ks}.audit_general_by_user JSON '{forged}'"
    ))
    .await;
    assert_caught(
        &setup,
        &["--anchor", "store"],
        "a forged row",
        &["inserted: event forged-1, table audit_general_by_user"],
    );
    cql(format!(
        "DELETE FROM {ks}.audit_general_by_user WHERE {}",
        row.key.replace(&row.id(), "forged-1")
    ))
    .await;

    // A row moved to another partition.
    let row = first_row(ks, "audit_general_by_user", &class_key, "").await;
    let value: serde_json::Value = serde_json::from_str(&row.json).unwrap();
    let pseudonym = value["pseudonym"].as_str().unwrap();
    let elsewhere = row
        .json
        .replace(pseudonym, "00000000-0000-4000-8000-000000000001");
    cql(format!(
        "INSERT INTO {ks}.audit_general_by_user JSON '{elsewhere}'"
    ))
    .await;
    cql(format!("DELETE FROM {ks}.{} WHERE {}", row.table, row.key)).await;
    let moved = format!("moved: event {}, table audit_general_by_user", row.id());
    assert_caught(&setup, &["--anchor", "store"], "a moved row", &[&moved]);
    cql(format!(
        "DELETE FROM {ks}.audit_general_by_user WHERE {}",
        row.key
            .replace(pseudonym, "00000000-0000-4000-8000-000000000001")
    ))
    .await;
    row.restore(ks).await;

    // A checkpoint re-signed with another key.
    let tail = &store.log_tails().await.unwrap()[0];
    let original = store.checkpoints(&tail.log).await.unwrap()[0].clone();
    let resigned = original.checkpoint.clone().sign(&[7; 32]);
    let set_checkpoint = |cp: &SignedCheckpoint| {
        format!(
            "UPDATE {ks}.checkpoints SET checkpoint = '{}' WHERE topic = '{}' AND partition = {} \
             AND size = {}",
            serde_json::to_string(cp).unwrap(),
            cp.checkpoint.log.topic,
            cp.checkpoint.log.partition,
            cp.checkpoint.size
        )
    };
    cql(set_checkpoint(&resigned)).await;
    let not_signed = format!(
        "checkpoint: log {}: the checkpoint at size {} is not signed by the key",
        tail.log, original.checkpoint.size
    );
    assert_caught(
        &setup,
        &["--anchor", "store"],
        "a re-signed checkpoint",
        &[&not_signed],
    );
    let differs = format!(
        "checkpoint: log {}: the checkpoint at size {} differs from the anchor topic's",
        tail.log, original.checkpoint.size
    );
    assert_caught(
        &setup,
        &[],
        "a re-signed checkpoint, against the anchor",
        &[&differs],
    );
    cql(set_checkpoint(&original)).await;
    assert_clean(&setup, &[], 140 - not_covered(&store).await);

    // The newest records of a log deleted with every trace: their rows, leaves, log state and
    // checkpoint. The store alone cannot tell; the anchor topic can.
    let tail = store
        .log_tails()
        .await
        .unwrap()
        .into_iter()
        .max_by_key(|t| t.size)
        .unwrap();
    let checkpoints = store.checkpoints(&tail.log).await.unwrap();
    assert!(checkpoints.len() >= 2, "{checkpoints:?}");
    let newest = checkpoints.last().unwrap().checkpoint.clone();
    let kept = &checkpoints[checkpoints.len() - 2].checkpoint;
    let doomed = store
        .log_leaves(&tail.log, kept.last_offset + 1, tail.last_offset + 1)
        .await
        .unwrap();
    for (offset, bytes) in &doomed {
        let leaf = Leaf::decode(bytes).unwrap();
        let id = &leaf.event_id;
        cql(format!(
            "DELETE FROM {ks}.records_by_id WHERE event_id = '{id}'"
        ))
        .await;
        let rows = [
            (
                auditflow_store::class_table(leaf.class),
                format!("pseudonym = {} AND day = '{}'", leaf.pseudonym, leaf.day),
            ),
            (
                "records_by_time",
                format!("day = '{}' AND shard = {}", leaf.day, leaf.shard),
            ),
            (
                "security_by_time",
                format!("day = '{}' AND shard = {}", leaf.day, leaf.shard),
            ),
        ];
        for (table, partition) in rows {
            cql(format!(
                "DELETE FROM {ks}.{table} WHERE {partition} AND event_time = {} AND event_id = '{id}'",
                leaf.event_time_ms
            ))
            .await;
        }
        cql(format!(
            "DELETE FROM {ks}.log_leaves WHERE topic = '{}' AND partition = {} AND block = {} \
             AND offset = {offset}",
            tail.log.topic,
            tail.log.partition,
            offset >> 16
        ))
        .await;
    }
    cql(format!(
        "DELETE FROM {ks}.checkpoints WHERE topic = '{}' AND partition = {} AND size = {}",
        tail.log.topic, tail.log.partition, newest.size
    ))
    .await;
    cql(format!(
        "DELETE FROM {ks}.log_state WHERE topic = '{}' AND partition = {}",
        tail.log.topic, tail.log.partition
    ))
    .await;
    let remaining = 140 - doomed.len() as u64;
    let (code, out) = verify(&setup, &["--anchor", "store"]);
    assert_eq!(
        code, 0,
        "a clean truncation, as the store alone sees it:\n{out}"
    );
    let _ = remaining;
    let missing = format!(
        "checkpoint: log {}: the checkpoint at size {} is on the anchor topic but not in the store",
        tail.log, newest.size
    );
    let truncated = format!(
        "checkpoint: log {}: the checkpoint at size {} covers leaves that are not stored",
        tail.log, newest.size
    );
    assert_caught(&setup, &[], "a truncated log", &[&missing, &truncated]);
    setup.drop_keyspace().await;
}

/// Records after their log's last checkpoint.
async fn not_covered(store: &Store) -> u64 {
    let mut uncovered = 0;
    for tail in store.log_tails().await.unwrap() {
        let covered = tail.checkpoint.map_or(0, |c| c.checkpoint.size);
        uncovered += tail.size - covered;
    }
    uncovered
}

/// `gdpr delete` destroys a user's key; their rows stay, and still hash to their leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_still_verifies_after_an_erasure() {
    let traffic = Traffic {
        users: 3,
        actions: 60,
        security: 0,
        access: 0,
        alerts: 0,
    };
    let (setup, store) = stored_and_sealed("integrity_erasure", 10, &traffic).await;
    assert!(store.destroy_user_key("integrity_erasure-1").await.unwrap());
    // The same records delivered again after the erasure, at new offsets (a producer that
    // retries, say): the erased user's are stored shredded, overwriting the rows the two
    // leaves of each share; both leaves still verify.
    traffic.produce(&setup, "integrity_erasure").await;
    run_sink_until_sealed(&setup, &store, 2 * traffic.total()).await;
    assert_clean(&setup, &[], 2 * traffic.total() - not_covered(&store).await);
    setup.drop_keyspace().await;
}
