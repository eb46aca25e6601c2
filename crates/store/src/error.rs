//! The store's one error type.
//!
//! Messages never carry personal data: no user id, no decrypted field, no key material. A
//! driver error is kept whole (server messages name tables and limits, never bound values).

use scylla::errors::{
    DbError, ExecutionError, NewSessionError, PagerExecutionError, RequestAttemptError,
};

/// Everything that can go wrong in `auditflow-store`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The settings cannot work (bad consistency name, keyspace name, replication map…).
    #[error("store configuration: {0}")]
    Config(String),

    /// The master key could not be read or is malformed. Never contains the key itself.
    #[error("master key: {0}")]
    MasterKey(String),

    /// The checkpoint signing key could not be read or is malformed. Never contains the key.
    #[error("signing key: {0}")]
    SigningKey(String),

    /// The keyspace was created with another master key: nothing in it could be decrypted.
    #[error(
        "the master key does not match the one this keyspace was created with \
         (check [store] master_key_file / master_key_env)"
    )]
    WrongMasterKey,

    /// No node of the cluster could be reached. (The driver's error is in the message, not
    /// chained as a source, so `{:#}` does not print it twice.)
    #[error("cannot connect to the CQL cluster: {0}")]
    Connect(Box<NewSessionError>),

    /// A statement failed (after retries when the failure looked transient).
    #[error("CQL {context}: {error}")]
    Cql {
        /// What the store was doing (a fixed phrase, never a value).
        context: &'static str,
        /// The driver's error; boxed, as it is large and errors are rare.
        error: Box<ExecutionError>,
    },

    /// Reading rows failed mid-stream or a row had an unexpected shape.
    #[error("CQL {context}: {detail}")]
    Read {
        /// What the store was reading (a fixed phrase, never a value).
        context: &'static str,
        /// What was wrong, naming columns, not quoting their values.
        detail: String,
    },

    /// The schema is missing or older than this binary: run `auditflow migrate`.
    #[error(
        "the schema of keyspace `{keyspace}` is {found}; this build needs version {needed}: run `auditflow migrate`"
    )]
    SchemaOutdated {
        /// The configured keyspace.
        keyspace: String,
        /// What was found, in words (`version 3`, `absent`, ...).
        found: String,
        /// The version this build was written for.
        needed: i32,
    },

    /// The keyspace has a table or column this build would create, but of another shape:
    /// changed by hand, or by another program.
    #[error("the schema of keyspace `{keyspace}` conflicts with this build: {detail}")]
    SchemaConflict {
        /// The configured keyspace.
        keyspace: String,
        /// Which table or column differs, and how.
        detail: String,
    },

    /// Another process held the migration lock for too long.
    #[error("could not take the schema migration lock (another `auditflow migrate` running?)")]
    MigrationLocked,

    /// The server would expire (or silently cap) this record before its retention period ends.
    #[error(
        "retention class `{class}` needs rows to live until {needed}, but this server cannot \
         store an expiry after {limit} (Cassandra: set `storage_compatibility_mode: NONE` in \
         cassandra.yaml once every node runs 5.0; ScyllaDB: shorten the retention period)"
    )]
    ExpiryBeyondServerLimit {
        /// The retention class whose rows would expire early.
        class: &'static str,
        /// The expiry its rows need.
        needed: String,
        /// The latest expiry the server stores faithfully.
        limit: String,
    },

    /// A record handed to `write_records` cannot be stored as it is (never retried).
    #[error("invalid record: {0}")]
    InvalidRecord(String),

    /// `gdpr delete` of a subject that is not a person (`unknown`, `system`, `[store]
    /// hourly_subjects`): their key seals the records of everyone without a user id.
    #[error(
        "reserved subject: `unknown`, `system` and [store] hourly_subjects file the records \
         of many people and cannot be erased"
    )]
    ReservedSubject,

    /// A `--page` token that this store did not produce.
    #[error("invalid page token")]
    InvalidPageToken,

    /// A ciphertext failed authentication with a key that exists: tampering or corruption.
    #[error("stored data failed authentication ({0}): corrupt or tampered")]
    Corrupt(&'static str),
}

impl From<NewSessionError> for StoreError {
    fn from(e: NewSessionError) -> Self {
        StoreError::Connect(Box::new(e))
    }
}

/// The store's results: [`StoreError`] unless said otherwise.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    pub(crate) fn cql(context: &'static str) -> impl FnOnce(ExecutionError) -> StoreError {
        move |source| StoreError::Cql {
            context,
            error: Box::new(source),
        }
    }

    pub(crate) fn pager(context: &'static str) -> impl FnOnce(PagerExecutionError) -> StoreError {
        move |e| StoreError::Read {
            context,
            detail: e.to_string(),
        }
    }

    pub(crate) fn read(context: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Read {
            context,
            detail: e.to_string(),
        }
    }

    /// Worth retrying later: the cluster was slow, overloaded, unreachable or restarting. A
    /// service that gets a transient error keeps the record and tries again; any other error
    /// means the record (or the deployment) is wrong and retrying cannot help.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Cql { error, .. } => is_transient(error),
            StoreError::Read { .. } | StoreError::Connect(_) => true,
            _ => false,
        }
    }
}

impl StoreError {
    /// Not transient, and about this record (or its subject's key) rather than the whole
    /// deployment: the store would take other records, so a service dead-letters this one
    /// instead of stopping. True of a record the store refuses as invalid
    /// ([`StoreError::InvalidRecord`]), of a corrupt wrapped key or ciphertext
    /// ([`StoreError::Corrupt`]: one subject's key, not every key), and of a statement the
    /// server refuses for its bound values (`Invalid`, e.g. a TTL or a value over a limit; a
    /// function failing on them). False — stop, an operator must act — for credentials and
    /// permissions, the master key, the schema, the configuration, and whatever else is not
    /// known to be about one record: dead-lettering a whole stream by mistake does more harm
    /// than stopping.
    pub fn is_about_the_record(&self) -> bool {
        match self {
            StoreError::InvalidRecord(_) | StoreError::Corrupt(_) => true,
            StoreError::Cql { error, .. } => matches!(
                error.as_ref(),
                ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                    DbError::Invalid | DbError::FunctionFailure { .. },
                    _
                ))
            ),
            _ => false,
        }
    }
}

/// Timeouts, unavailability, overload and broken connections are transient; a request the
/// server refuses as invalid, unauthorized or misconfigured is not.
pub(crate) fn is_transient(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => !matches!(
            db,
            DbError::SyntaxError
                | DbError::Invalid
                | DbError::AlreadyExists { .. }
                | DbError::FunctionFailure { .. }
                | DbError::AuthenticationError
                | DbError::Unauthorized
                | DbError::ConfigError
                | DbError::ProtocolError
        ),
        ExecutionError::BadQuery(_) | ExecutionError::PrepareError(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(db: DbError) -> StoreError {
        StoreError::Cql {
            context: "write audit row",
            error: Box::new(ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(db, "refused".into()),
            )),
        }
    }

    /// The three answers a writing service needs: retry, dead-letter the record, or stop.
    fn answer(e: &StoreError) -> (&'static str, bool, bool) {
        let kind = match (e.is_transient(), e.is_about_the_record()) {
            (true, _) => "retry",
            (false, true) => "dead-letter",
            (false, false) => "stop",
        };
        (kind, e.is_transient(), e.is_about_the_record())
    }

    #[test]
    fn write_errors_say_whether_to_retry_dead_letter_or_stop() {
        let retry = [
            server(DbError::Overloaded),
            server(DbError::IsBootstrapping),
            StoreError::Read {
                context: "read user key",
                detail: "connection reset".into(),
            },
        ];
        for e in &retry {
            assert_eq!(answer(e).0, "retry", "{e}");
            assert!(!e.is_about_the_record(), "{e}");
        }
        let dead_letter = [
            server(DbError::Invalid),
            StoreError::InvalidRecord("event id must be 1..=512 bytes".into()),
            StoreError::Corrupt("wrapped data key"),
        ];
        for e in &dead_letter {
            assert_eq!(answer(e).0, "dead-letter", "{e}");
        }
        let stop = [
            server(DbError::Unauthorized),
            server(DbError::AuthenticationError),
            server(DbError::ConfigError),
            server(DbError::SyntaxError),
            StoreError::WrongMasterKey,
            StoreError::MasterKey("not 64 hex digits".into()),
            StoreError::Config("bad consistency".into()),
            StoreError::SchemaOutdated {
                keyspace: "auditflow".into(),
                found: "version 3".into(),
                needed: 4,
            },
            StoreError::ExpiryBeyondServerLimit {
                class: "security",
                needed: "2040-01-01".into(),
                limit: "2038-01-19".into(),
            },
        ];
        for e in &stop {
            assert_eq!(answer(e).0, "stop", "{e}");
        }
    }
}
