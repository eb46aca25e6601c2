//! The crate's one error type.

use rdkafka::error::KafkaError;

/// What can go wrong in the service runtime. Messages name the operation and never carry record
/// contents (which may hold personal data).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A librdkafka call failed; `during` names what the harness was doing.
    #[error("kafka: {during}: {source}")]
    Kafka {
        /// What the harness was doing.
        during: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The producer was fenced or hit a fatal error: this instance must stop (its replacement,
    /// or a restart, takes over with a fresh producer).
    #[error("kafka: fatal producer error during {during}: {source}")]
    Fatal {
        /// What the harness was doing.
        during: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// Creating a topic failed for a reason other than "it already exists", or reading one to
    /// its end did not finish.
    #[error("topic {topic}: {reason}")]
    Topic {
        /// The topic's name.
        topic: String,
        /// What the broker said.
        reason: String,
    },
    /// Deleting a consumer group failed.
    #[error("consumer group {group}: {reason}")]
    Group {
        /// The group's id.
        group: String,
        /// What the broker said.
        reason: String,
    },
    /// The configuration cannot work (a bad listen address, an empty subscription, …).
    #[error("configuration: {0}")]
    Config(String),
    /// The metrics/health HTTP server could not start.
    #[error("metrics server on {listen}: {source}")]
    Http {
        /// The configured `[metrics] listen` address.
        listen: String,
        /// Why binding it failed.
        #[source]
        source: std::io::Error,
    },
    /// A metric could not be registered (a programming error, surfaced instead of panicking).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The service's store refused a write for a reason no retry fixes and no single record is
    /// to blame for (credentials, the master key, the schema): the at-least-once loop stopped,
    /// having committed only what was written, so nothing is lost once it is fixed. (The
    /// store's error is in the message, not chained as a source, so `{:#}` prints it once.)
    #[error(
        "{service}: the store refuses writes, and retrying cannot help until an operator fixes it: {error}"
    )]
    WriteRefused {
        /// The service that stopped.
        service: String,
        /// The store's error.
        error: crate::kafka::write_error::WriteError,
    },
    /// The blocking consumer thread panicked or was cancelled.
    #[error("consumer task ended abnormally: {0}")]
    Task(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what the harness was doing to a librdkafka error.
pub(crate) trait KafkaContext<T> {
    fn during(self, during: &'static str) -> Result<T>;
}

impl<T> KafkaContext<T> for Result<T, KafkaError> {
    fn during(self, during: &'static str) -> Result<T> {
        self.map_err(|source| Error::Kafka { during, source })
    }
}
