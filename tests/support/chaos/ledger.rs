//! The ledger: what a chaos run's inputs must have become, against what Kafka and the store
//! hold once every group has caught up. Each row counts expected, found, lost (expected, not
//! found), duplicated (found more than once), unexpected (found, not expected) and wrong
//! (found, but not as expected: another reason code, another table), with a few examples.
//!
//! Outputs are matched by their deterministic ids, dead letters by the source position their
//! headers name, alerts and actions by what they are about (rule, level and key; action and
//! target), the blocklist by its final state, stored rows by id in every table that holds them.

use std::collections::{BTreeMap, BTreeSet};

use auditflow_core::Config;
use auditflow_store::{RetentionClass, class_table};
use futures::TryStreamExt;
use scylla::client::session::Session;
use serde_json::Value;

use super::corpus::{Corpus, Fate};
use crate::kafka::Read;

/// One line of the ledger.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// What is counted.
    pub what: String,
    /// How many the inputs call for.
    pub expected: usize,
    /// How many distinct ones were found.
    pub found: usize,
    /// Expected, not found.
    pub lost: usize,
    /// Found more than once.
    pub duplicated: usize,
    /// Found, not expected.
    pub unexpected: usize,
    /// Found, but not as expected.
    pub wrong: usize,
    /// A few of the ids or keys behind the non-zero counts.
    pub examples: Vec<String>,
}

impl Row {
    /// Whether the row shows nothing lost, duplicated, unexpected or wrong.
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0 && self.wrong == 0
    }

    /// Compares `expected` keys with `found` keys (with multiplicity).
    pub fn compare<K: Ord + Clone + std::fmt::Debug>(
        what: impl Into<String>,
        expected: &BTreeMap<K, usize>,
        found: &BTreeMap<K, usize>,
    ) -> Self {
        let mut row = Row {
            what: what.into(),
            expected: expected.values().sum(),
            found: found.len(),
            ..Row::default()
        };
        for (key, want) in expected {
            match found.get(key).copied().unwrap_or(0) {
                0 => {
                    row.lost += want;
                    row.example(format!("lost {key:?}"));
                }
                got if got > *want => {
                    row.duplicated += got - want;
                    row.example(format!("{got}× {key:?}"));
                }
                got if got < *want => {
                    row.lost += want - got;
                    row.example(format!("{got} of {want} {key:?}"));
                }
                _ => {}
            }
        }
        for (key, got) in found {
            if !expected.contains_key(key) {
                row.unexpected += got;
                row.example(format!("unexpected {key:?}"));
            }
        }
        row
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 5 {
            self.examples.push(text);
        }
    }
}

/// Counts of each key in `keys`.
pub fn tally<K: Ord>(keys: impl IntoIterator<Item = K>) -> BTreeMap<K, usize> {
    let mut out = BTreeMap::new();
    for k in keys {
        *out.entry(k).or_insert(0) += 1;
    }
    out
}

/// The value's JSON, or `Null` when it is not JSON (a tombstone, a dead letter's bytes).
fn json(read: &Read) -> Value {
    serde_json::from_slice(&read.value).unwrap_or(Value::Null)
}

fn text(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// What the topics hold, read `read_committed` to their ends.
pub struct Topics {
    /// Each classifier output topic's records.
    pub outputs: BTreeMap<String, Vec<Read>>,
    /// The dead-letter topic.
    pub dead_letters: Vec<Read>,
    /// `security.alerts`.
    pub alerts: Vec<Read>,
    /// `security.actions`.
    pub actions: Vec<Read>,
    /// `security.blocklist`, in offset order per partition.
    pub blocklist: Vec<Read>,
    /// The classifier's sampling summaries.
    pub sampling: Vec<Read>,
}

/// Where each input went: `(topic, partition, offset)`, by corpus index.
pub type Positions = Vec<(String, i32, i64)>;

/// The Kafka rows: outputs per topic, dead letters, sampled-out and ignored inputs, alerts,
/// actions, the blocklist.
pub fn kafka_rows(config: &Config, corpus: &Corpus, positions: &Positions, t: &Topics) -> Vec<Row> {
    let mut rows = Vec::new();
    for topic in [
        &config.topics.user_action,
        &config.topics.data_access,
        &config.topics.security_event,
    ] {
        let expected = tally(corpus.records.iter().flat_map(|r| {
            match &r.fate {
                Fate::Outputs(outs) => outs
                    .iter()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, id)| id.clone())
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            }
        }));
        let found = tally(
            t.outputs
                .get(topic)
                .into_iter()
                .flatten()
                .filter_map(|r| text(&json(r), "id")),
        );
        rows.push(Row::compare(format!("outputs {topic}"), &expected, &found));
    }

    // Dead letters, by the source position their headers name; the reason must match.
    let expected: BTreeMap<(String, i32, i64), String> = corpus
        .records
        .iter()
        .zip(positions)
        .filter_map(|(r, pos)| match &r.fate {
            Fate::DeadLetter(reason) => Some((pos.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    let mut letters: BTreeMap<(String, i32, i64), Vec<String>> = BTreeMap::new();
    for l in &t.dead_letters {
        let position = (
            l.header("auditflow.source.topic").unwrap_or("").to_owned(),
            l.header("auditflow.source.partition")
                .and_then(|p| p.parse().ok())
                .unwrap_or(-1),
            l.header("auditflow.source.offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(-1),
        );
        letters
            .entry(position)
            .or_default()
            .push(l.header("auditflow.error").unwrap_or("").to_owned());
    }
    let mut row = Row::compare(
        "dead letters",
        &expected.keys().map(|k| (k.clone(), 1)).collect(),
        &letters.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
    );
    for (position, reason) in &expected {
        if let Some(got) = letters.get(position)
            && got.iter().any(|g| g != reason)
        {
            row.wrong += 1;
            row.example(format!("{position:?}: {got:?}, not {reason}"));
        }
    }
    rows.push(row);

    // Sampled-out and ignored inputs have no output: none names them as its cause.
    let caused: BTreeSet<String> = t
        .outputs
        .values()
        .flatten()
        .filter_map(|r| text(&json(r), "causationid"))
        .collect();
    for (what, fate) in [
        ("sampled out (no output)", Fate::SampledOut),
        ("ignored (no output)", Fate::Ignored),
    ] {
        let ids: Vec<String> = corpus
            .records
            .iter()
            .filter(|r| r.fate == fate)
            .filter_map(input_id)
            .collect();
        let leaked: Vec<&String> = ids.iter().filter(|id| caused.contains(*id)).collect();
        rows.push(Row {
            what: what.into(),
            expected: ids.len(),
            found: ids.len() - leaked.len(),
            unexpected: leaked.len(),
            examples: leaked
                .iter()
                .take(5)
                .map(|id| format!("output of {id}"))
                .collect(),
            ..Row::default()
        });
    }

    rows.extend(sampling_rows(corpus, positions, &t.sampling));

    // Alerts by (rule, level, key); ids must be distinct too.
    let alerts: Vec<Value> = t.alerts.iter().map(json).collect();
    let found = tally(alerts.iter().map(|a| {
        let d = &a["data"];
        let rule = text(d, "rule").unwrap_or_default();
        let key = if matches!(rule.as_str(), "brute_force" | "credential_stuffing") {
            text(d, "source_ip")
        } else {
            text(d, "user_id")
        };
        (
            rule,
            text(d, "level").unwrap_or_default(),
            key.unwrap_or_default(),
        )
    }));
    rows.push(Row::compare(
        "alerts (rule, level, key)",
        &tally(corpus.alerts.iter().cloned()),
        &found,
    ));
    rows.push(Row::compare(
        "alert ids",
        &alerts
            .iter()
            .filter_map(|a| text(a, "id"))
            .map(|id| (id, 1))
            .collect(),
        &tally(alerts.iter().filter_map(|a| text(a, "id"))),
    ));

    let found = tally(t.actions.iter().map(json).map(|a| {
        let d = &a["data"];
        let action = text(d, "action").unwrap_or_default();
        let target = if action == "block_ip" {
            text(d, "ip")
        } else {
            text(d, "user_id")
        };
        (action, target.unwrap_or_default())
    }));
    rows.push(Row::compare(
        "actions (action, target)",
        &tally(corpus.actions.iter().cloned()),
        &found,
    ));

    // The blocklist's final state: the last record per key, tombstones lifting a block.
    let mut state: BTreeMap<String, bool> = BTreeMap::new();
    for r in &t.blocklist {
        if let Some(key) = &r.key {
            state.insert(key.clone(), !r.value.is_empty());
        }
    }
    let standing = tally(state.into_iter().filter(|(_, on)| *on).map(|(k, _)| k));
    rows.push(Row::compare(
        "blocklist (standing blocks)",
        &corpus.blocked.iter().map(|ip| (ip.clone(), 1)).collect(),
        &standing,
    ));
    rows
}

/// The sampling summaries against the sampled-out inputs: per input type, the summaries'
/// counts add up to the inputs sampled out (more is duplicated, fewer lost); every sampled-out
/// input lies in the offset span of a summary of its type and partition (else wrong); and
/// the summaries' ids are distinct.
fn sampling_rows(corpus: &Corpus, positions: &Positions, summaries: &[Read]) -> Vec<Row> {
    let sampled: Vec<(String, &(String, i32, i64))> = corpus
        .records
        .iter()
        .zip(positions)
        .filter(|(r, _)| r.fate == Fate::SampledOut)
        .map(|(r, pos)| (input_attribute(r, "type").unwrap_or_default(), pos))
        .collect();
    let expected = tally(sampled.iter().map(|(ty, _)| ty.clone()));
    let data: Vec<Value> = summaries.iter().map(|r| json(r)["data"].clone()).collect();
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for d in &data {
        let n = d["count"].as_u64().unwrap_or(0) as usize;
        *counted
            .entry(text(d, "event_type").unwrap_or_default())
            .or_default() += n;
    }
    let mut row = Row::compare("sampled out, summarised by type", &expected, &counted);
    row.found = counted.values().sum();
    for (ty, (topic, partition, offset)) in &sampled {
        let covered = data.iter().any(|d| {
            let input = &d["input"];
            text(d, "event_type").as_ref() == Some(ty)
                && text(input, "topic").as_ref() == Some(topic)
                && input["partition"].as_i64() == Some(i64::from(*partition))
                && input["first_offset"].as_i64().is_some_and(|o| o <= *offset)
                && input["last_offset"].as_i64().is_some_and(|o| o >= *offset)
        });
        if !covered {
            row.wrong += 1;
            row.example(format!(
                "{topic}/{partition}@{offset} in no summary of {ty}"
            ));
        }
    }
    let ids = tally(summaries.iter().filter_map(|r| text(&json(r), "id")));
    let once = ids.keys().map(|id| (id.clone(), 1)).collect();
    vec![row, Row::compare("sampling summary ids", &once, &ids)]
}

/// An input's CloudEvent id (structured or binary mode).
pub fn input_id(r: &super::corpus::Planned) -> Option<String> {
    input_attribute(r, "id")
}

/// An input's CloudEvents attribute `name` (structured or binary mode).
fn input_attribute(r: &super::corpus::Planned, name: &str) -> Option<String> {
    let header = format!("ce_{name}");
    if let Some((_, v)) = r.headers.iter().find(|(k, _)| *k == header) {
        return String::from_utf8(v.clone()).ok();
    }
    serde_json::from_slice::<Value>(&r.value)
        .ok()
        .and_then(|v| text(&v, name))
}

/// A record the store must hold once: its id, retention class and whether it is a security
/// event or an alert (those are in `security_by_time` too).
#[derive(Debug, Clone)]
pub struct Expected {
    /// The record's id.
    pub id: String,
    /// Its retention class (the `retention` extension).
    pub class: String,
    /// A security event or an alert.
    pub security: bool,
    /// The user it is about, when a person (not `unknown` or `system`).
    pub user: Option<String>,
    /// What caused it (`causationid`).
    pub cause: Option<String>,
    /// Whether the causality indexer reads it (not a sampling summary).
    pub indexed: bool,
}

/// The records the store and the causality index must hold: every classifier output and
/// every alert found in the topics (the actions are indexed, not stored), and the sampling
/// summaries (stored, not indexed).
///
/// Each id once: a record the topics hold twice (which their own rows count as duplicated) is
/// still one row per table, the store's keys being the ids.
pub fn expected_records(config: &Config, t: &Topics) -> Vec<Expected> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let own = [
        (&config.topics.alerts, &t.alerts),
        (&config.topics.sampling, &t.sampling),
    ];
    for (topic, reads) in t.outputs.iter().chain(own) {
        for r in reads {
            let v = json(r);
            let Some(id) = text(&v, "id") else { continue };
            if !seen.insert(id.clone()) {
                continue;
            }
            let user = text(&v["data"], "user_id").filter(|u| u != "unknown" && u != "system");
            out.push(Expected {
                id,
                class: text(&v, "retention").unwrap_or_default(),
                security: topic == &config.topics.security_event || topic == &config.topics.alerts,
                user: if topic == &config.topics.alerts {
                    None
                } else {
                    user
                },
                cause: text(&v, "causationid"),
                indexed: topic != &config.topics.sampling,
            });
        }
    }
    out
}

async fn scan(session: &Session, cql: String) -> Result<Vec<(String, String)>, String> {
    let pager = session
        .query_iter(cql.clone(), ())
        .await
        .map_err(|e| format!("{cql}: {e}"))?;
    pager
        .rows_stream::<(String, String)>()
        .map_err(|e| format!("{cql}: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("{cql}: {e}"))
}

async fn scan_ids(session: &Session, cql: String) -> Result<Vec<String>, String> {
    let pager = session
        .query_iter(cql.clone(), ())
        .await
        .map_err(|e| format!("{cql}: {e}"))?;
    let rows: Vec<(String,)> = pager
        .rows_stream::<(String,)>()
        .map_err(|e| format!("{cql}: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("{cql}: {e}"))?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The store's rows: `records_by_id` (with the class it names), the class tables (each record
/// in its own class's table only), `records_by_time`, `security_by_time`.
pub async fn store_rows(
    session: &Session,
    ks: &str,
    expected: &[Expected],
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let want: BTreeMap<String, usize> = tally(expected.iter().map(|e| e.id.clone()));
    let by_id = scan(
        session,
        format!("SELECT event_id, class FROM {ks}.records_by_id"),
    )
    .await?;
    let mut row = Row::compare(
        "stored: records_by_id",
        &want,
        &tally(by_id.iter().map(|(id, _)| id.clone())),
    );
    let classes: BTreeMap<&str, &str> = expected
        .iter()
        .map(|e| (e.id.as_str(), e.class.as_str()))
        .collect();
    for (id, class) in &by_id {
        if classes.get(id.as_str()).is_some_and(|c| c != class) {
            row.wrong += 1;
            row.example(format!("{id}: class {class}"));
        }
    }
    rows.push(row);

    let mut in_tables: BTreeMap<String, usize> = BTreeMap::new();
    let mut misplaced = Vec::new();
    for class in RetentionClass::ALL {
        let table = class_table(class);
        for id in scan_ids(session, format!("SELECT event_id FROM {ks}.{table}")).await? {
            if classes
                .get(id.as_str())
                .is_some_and(|c| *c != class.as_str())
            {
                misplaced.push(format!("{id} in {table}"));
            }
            *in_tables.entry(id).or_insert(0) += 1;
        }
    }
    let mut row = Row::compare("stored: class tables", &want, &in_tables);
    row.wrong = misplaced.len();
    row.examples.extend(misplaced.into_iter().take(5));
    rows.push(row);

    let by_time = scan_ids(
        session,
        format!("SELECT event_id FROM {ks}.records_by_time"),
    )
    .await?;
    rows.push(Row::compare(
        "stored: records_by_time",
        &want,
        &tally(by_time),
    ));
    let security: BTreeMap<String, usize> =
        tally(expected.iter().filter(|e| e.security).map(|e| e.id.clone()));
    let sec = scan_ids(
        session,
        format!("SELECT event_id FROM {ks}.security_by_time"),
    )
    .await?;
    rows.push(Row::compare(
        "stored: security_by_time",
        &security,
        &tally(sec),
    ));
    Ok(rows)
}

/// The causality index: a node per record (and per action), an edge from each one's cause.
pub async fn causality_rows(
    session: &Session,
    ks: &str,
    expected: &[Expected],
    actions: &[Read],
) -> Result<Vec<Row>, String> {
    let mut nodes: Vec<(String, Option<String>)> = expected
        .iter()
        .filter(|e| e.indexed)
        .map(|e| (e.id.clone(), e.cause.clone()))
        .collect();
    for a in actions {
        let v = json(a);
        if let Some(id) = text(&v, "id") {
            nodes.push((id, text(&v, "causationid")));
        }
    }
    // One node and one edge per id, however often its record is in the topics.
    nodes.sort();
    nodes.dedup();
    let want = tally(nodes.iter().map(|(id, _)| id.clone()));
    let found = scan_ids(session, format!("SELECT id FROM {ks}.causality_nodes")).await?;
    let mut rows = vec![Row::compare("causality nodes", &want, &tally(found))];
    let want_edges = tally(
        nodes
            .iter()
            .filter_map(|(id, cause)| cause.clone().map(|c| (c, id.clone()))),
    );
    let edges = scan(
        session,
        format!("SELECT parent_id, id FROM {ks}.causality_children"),
    )
    .await?;
    rows.push(Row::compare("causality edges", &want_edges, &tally(edges)));
    Ok(rows)
}
