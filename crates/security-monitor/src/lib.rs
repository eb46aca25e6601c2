//! The auditflow security-monitor service (SPEC section 7): `auditflow-core`'s detection engine
//! on the shared exactly-once Kafka loop.
//!
//! It reads `audit.security.event` and `audit.user.action` (group `auditflow-security-monitor`,
//! `read_committed`) and writes `security.alerts`, `security.actions` and the compacted
//! `security.blocklist` in the same transaction as its input offsets, so every output is
//! visible exactly once.
//!
//! What this crate is not: it holds no detection logic (that is `auditflow_core::detect`) and
//! no consumer loop (that is `auditflow_kafka::transactional`); [`SecurityMonitor`] is the
//! glue between them. See [`monitor`] for how state follows partitions and survives restarts.

pub mod monitor;

use auditflow_core::Config;
use auditflow_kafka::transactional::{self, LoopSpec};
use auditflow_kafka::{Health, Metrics, Shutdown, topics};

pub use monitor::SecurityMonitor;

/// The service name: group id suffix, metric label, `auditflow.service` header.
pub const SERVICE: &str = "security-monitor";

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] auditflow_core::detect::DetectError),
    #[error(transparent)]
    Kafka(#[from] auditflow_kafka::Error),
}

/// Runs the security monitor until `shutdown`: creates the topics auditflow writes (idempotent;
/// its inputs are the classifier's outputs, and the blocklist must be compacted), then consumes
/// `audit.security.event` and `audit.user.action` in group `<group_prefix>security-monitor`.
pub async fn run(
    config: &Config,
    metrics: &Metrics,
    health: &Health,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let monitor = SecurityMonitor::new(config)?;
    let spec = LoopSpec::for_service(
        SERVICE,
        vec![
            config.topics.security_event.clone(),
            config.topics.user_action.clone(),
        ],
        config,
    );
    let readiness = health.register(SERVICE, true);
    topics::ensure_topics(&config.kafka, &topics::planned_topics(&config.topics)).await?;
    transactional::spawn(spec, monitor, metrics.service(SERVICE), readiness, shutdown).await?;
    Ok(())
}
