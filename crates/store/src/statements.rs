//! Every statement the store runs after migration, prepared once per `Store`.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::error::Result;
use auditflow_core::RetentionClass;

use crate::exec::prepare;
use crate::schema::{RECORDS_BY_TIME, SECURITY_BY_TIME, class_table};

/// The clear label columns, in the order every statement below lists them.
pub(crate) const LABELS: &str = "kind, event_type, action, outcome, risk_level, severity, blocked, \
     data_type, record_count, sensitive, sample_rate";
const LABEL_MARKERS: &str = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?";

/// Per retention class, indexed by `class_index`.
pub(crate) struct ClassStatements {
    pub(crate) insert: PreparedStatement,
    pub(crate) select_range: PreparedStatement,
    pub(crate) select_one: PreparedStatement,
}

pub(crate) struct Statements {
    pub(crate) class: Vec<ClassStatements>,
    pub(crate) insert_by_time: PreparedStatement,
    pub(crate) select_by_time: PreparedStatement,
    pub(crate) insert_labels_by_time: PreparedStatement,
    pub(crate) select_labels_by_time: PreparedStatement,
    pub(crate) insert_by_id: PreparedStatement,
    pub(crate) select_by_id: PreparedStatement,
    pub(crate) insert_user_day: PreparedStatement,
    pub(crate) add_user_hour: PreparedStatement,
    pub(crate) select_user_days: PreparedStatement,
    pub(crate) select_user_key: PreparedStatement,
    pub(crate) insert_user_key: PreparedStatement,
    pub(crate) select_user_key_serial: PreparedStatement,
    pub(crate) delete_user_key: PreparedStatement,
    pub(crate) select_data_key: PreparedStatement,
    pub(crate) insert_data_key: PreparedStatement,
    pub(crate) delete_data_key: PreparedStatement,
    pub(crate) select_erased: PreparedStatement,
    pub(crate) insert_erased: PreparedStatement,
    pub(crate) insert_erasure_log: PreparedStatement,
    pub(crate) select_erasure_log: PreparedStatement,
}

pub(crate) fn class_index(class: RetentionClass) -> usize {
    match class {
        RetentionClass::Security => 0,
        RetentionClass::Financial => 1,
        RetentionClass::Marketing => 2,
        RetentionClass::General => 3,
    }
}

impl Statements {
    pub(crate) async fn prepare(session: &Session, ks: &str) -> Result<Self> {
        let p = |cql: String, idempotent: bool| prepare(session, cql, idempotent);
        let mut class = Vec::new();
        for c in RetentionClass::ALL {
            debug_assert_eq!(class_index(c), class.len());
            let table = class_table(c);
            class.push(ClassStatements {
                insert: p(
                    format!(
                        "INSERT INTO {ks}.{table} (pseudonym, day, event_time, event_id, {LABELS}, event) \
                         VALUES (?, ?, ?, ?, {LABEL_MARKERS}, ?)"
                    ),
                    true,
                )
                .await?,
                select_range: p(
                    format!(
                        "SELECT pseudonym, event_time, event_id, {LABELS}, event FROM {ks}.{table} \
                         WHERE pseudonym = ? AND day = ? AND event_time >= ? AND event_time < ?"
                    ),
                    true,
                )
                .await?,
                select_one: p(
                    format!(
                        "SELECT pseudonym, event_time, event_id, {LABELS}, event FROM {ks}.{table} \
                         WHERE pseudonym = ? AND day = ? AND event_time = ? AND event_id = ?"
                    ),
                    true,
                )
                .await?,
            });
        }
        // One read, prepared twice: at the configured consistency, and at LOCAL_SERIAL,
        // which sees what a lightweight transaction (`insert_user_key`) decided.
        let select_user_key =
            format!("SELECT key_id, hourly, created_at FROM {ks}.user_keys WHERE user_ref = ?");
        Ok(Self {
            class,
            insert_by_time: p(
                format!(
                    "INSERT INTO {ks}.{SECURITY_BY_TIME} (day, shard, event_time, event_id, pseudonym, \
                     {LABELS}, event) VALUES (?, ?, ?, ?, ?, {LABEL_MARKERS}, ?)"
                ),
                true,
            )
            .await?,
            select_by_time: p(
                format!(
                    "SELECT pseudonym, event_time, event_id, {LABELS}, event FROM {ks}.{SECURITY_BY_TIME} \
                     WHERE day = ? AND shard = ? AND event_time >= ? AND event_time < ?"
                ),
                true,
            )
            .await?,
            insert_labels_by_time: p(
                format!(
                    "INSERT INTO {ks}.{RECORDS_BY_TIME} (day, shard, event_time, event_id, class, \
                     {LABELS}) VALUES (?, ?, ?, ?, ?, {LABEL_MARKERS}) USING TTL ?"
                ),
                true,
            )
            .await?,
            select_labels_by_time: p(
                format!(
                    "SELECT event_time, event_id, class, {LABELS} FROM {ks}.{RECORDS_BY_TIME} \
                     WHERE day = ? AND shard = ? AND event_time >= ? AND event_time < ?"
                ),
                true,
            )
            .await?,
            insert_by_id: p(
                format!(
                    "INSERT INTO {ks}.records_by_id (event_id, class, kind, pseudonym, day, event_time, \
                     hour, log_topic, log_partition, log_offset) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
                ),
                true,
            )
            .await?,
            select_by_id: p(
                format!(
                    "SELECT class, pseudonym, day, event_time, hour FROM {ks}.records_by_id \
                     WHERE event_id = ?"
                ),
                true,
            )
            .await?,
            insert_user_day: p(
                format!(
                    "INSERT INTO {ks}.user_days (pseudonym, day, class) VALUES (?, ?, ?) USING TTL ?"
                ),
                true,
            )
            .await?,
            // Adding to a set is idempotent: a re-delivered record adds the same hour again.
            add_user_hour: p(
                format!(
                    "UPDATE {ks}.user_days USING TTL ? SET hours = hours + ? \
                     WHERE pseudonym = ? AND day = ? AND class = ?"
                ),
                true,
            )
            .await?,
            select_user_days: p(
                format!(
                    "SELECT day, class, hours FROM {ks}.user_days \
                     WHERE pseudonym = ? AND day >= ? AND day <= ?"
                ),
                true,
            )
            .await?,
            select_user_key: p(select_user_key.clone(), true).await?,
            // A lightweight transaction: two sinks meeting a new user at once must agree on
            // one key, or rows sealed with the loser's key would be unreadable.
            insert_user_key: p(
                format!(
                    "INSERT INTO {ks}.user_keys (user_ref, key_id, created_at, hourly) \
                     VALUES (?, ?, toTimestamp(now()), ?) IF NOT EXISTS"
                ),
                false,
            )
            .await?,
            select_user_key_serial: {
                let mut s = p(select_user_key, true).await?;
                s.set_consistency(scylla::statement::Consistency::LocalSerial);
                s
            },
            // Only if the row still names the key being destroyed: a key claimed meanwhile
            // stays (the `erasure` module). A lightweight transaction, like the claim.
            delete_user_key: p(
                format!("DELETE FROM {ks}.user_keys WHERE user_ref = ? IF key_id = ?"),
                false,
            )
            .await?,
            select_data_key: p(
                format!("SELECT wrapped_key FROM {ks}.data_keys WHERE key_id = ?"),
                true,
            )
            .await?,
            insert_data_key: p(
                format!(
                    "INSERT INTO {ks}.data_keys (key_id, wrapped_key, created_at) VALUES (?, ?, ?)"
                ),
                true,
            )
            .await?,
            delete_data_key: p(format!("DELETE FROM {ks}.data_keys WHERE key_id = ?"), true)
                .await?,
            select_erased: p(
                format!("SELECT erased_at FROM {ks}.erased_subjects WHERE user_ref = ?"),
                true,
            )
            .await?,
            // The cluster's clock, as for a key's creation; re-running it only moves the
            // erasure later, which erases no less.
            insert_erased: p(
                format!(
                    "INSERT INTO {ks}.erased_subjects (user_ref, erased_at) \
                     VALUES (?, toTimestamp(now()))"
                ),
                true,
            )
            .await?,
            insert_erasure_log: p(
                format!(
                    "INSERT INTO {ks}.erasures_by_day (day, erased_at, user_ref) VALUES (?, ?, ?)"
                ),
                true,
            )
            .await?,
            select_erasure_log: p(
                format!(
                    "SELECT erased_at, user_ref FROM {ks}.erasures_by_day \
                     WHERE day = ? AND erased_at > ?"
                ),
                true,
            )
            .await?,
        })
    }
}
