//! The auditflow security-monitor service (docs/security-rules.md): `auditflow-core`'s detection
//! engine on the shared exactly-once Kafka loop.
//!
//! It reads `audit.security.event` and `audit.user.action` (group `auditflow-security-monitor`,
//! `read_committed`) and writes `security.alerts`, `security.actions` and the compacted
//! `security.blocklist` in the same transaction as its input offsets, so every output is
//! visible exactly once.
//!
//! What this crate is not: it holds no detection logic (that is `auditflow_core::detect`) and
//! no consumer loop (that is `auditflow_runtime::kafka::transactional`); [`SecurityMonitor`] is the
//! glue between them. See [`monitor`] for how state follows partitions and survives restarts,
//! and how instances share one blocklist; [`secret`] for the key of the alert and action ids.

// A library never prints: services report through `tracing` (structured, and kept free of
// personal data), and stdout/stderr belong to the binary that owns the terminal.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod metrics;
pub mod monitor;
pub mod secret;

use std::sync::{Arc, Mutex};

use auditflow_core::Config;
use auditflow_core::detect::blocklist::BlocklistView;
use auditflow_runtime::kafka::loop_spec::LoopSpec;
use auditflow_runtime::kafka::transactional;
use auditflow_runtime::{ServiceContext, TableEvent, TableFollower, kafka::topics};

pub use metrics::DetectMetrics;
pub use monitor::SecurityMonitor;
pub use secret::{DevelopmentSecret, SecretError, SecretSource};

/// The service name: group id suffix, metric label, `auditflow.service` header.
pub const SERVICE: &str = "security-monitor";

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[security]` settings contradict each other.
    #[error(transparent)]
    Settings(#[from] auditflow_core::detect::DetectError),
    /// No usable id secret (unreadable, malformed, or the development one off loopback).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Kafka could not be reached, the topics not created, or the loop failed for good.
    #[error(transparent)]
    Kafka(#[from] auditflow_runtime::Error),
}

/// What the monitor consumes: the classifier's security events and user actions.
pub fn input_topics(config: &Config) -> Vec<String> {
    vec![
        config.topics.security_event.clone(),
        config.topics.user_action.clone(),
    ]
}

/// Runs the security monitor until its shutdown: loads the id secret (refusing to start without
/// one unless the cluster is on loopback), creates the topics auditflow writes (idempotent;
/// its inputs are the classifier's outputs, and the blocklist must be compacted), follows the
/// blocklist, then consumes `audit.security.event` and `audit.user.action` in group
/// `<group_prefix>security-monitor`.
pub async fn run(cx: ServiceContext<'_>) -> Result<(), Error> {
    let config = cx.config;
    let (secret, source) = secret::load(config, DevelopmentSecret::IfLoopback)?;
    match source {
        SecretSource::Development => tracing::warn!(
            service = SERVICE,
            "alert and action ids use the PUBLIC development id secret (the cluster is on \
             loopback): set [security] id_secret_file or ${} for real data",
            config.security.id_secret_env
        ),
        source => tracing::info!(service = SERVICE, ?source, "id secret loaded"),
    }
    let monitor = SecurityMonitor::new(config, secret)?
        .with_metrics(DetectMetrics::new(cx.metrics, SERVICE)?);
    let spec = LoopSpec::for_service(SERVICE, input_topics(config), config);
    let readiness = cx.health.register(SERVICE, true);
    topics::ensure_topics(&config.kafka, &topics::planned_topics(&config.topics)).await?;
    let view = Arc::new(Mutex::new(BlocklistView::new(monitor::view_capacity(
        &config.security,
    ))));
    let follower = {
        let view = view.clone();
        TableFollower::start(&config.kafka, &config.topics.blocklist, move |event| {
            let mut view = monitor::lock(&view);
            match event {
                TableEvent::Record { key, value } => view.apply(key, value),
                TableEvent::CaughtUp => view.mark_loaded(),
            }
        })?
    };
    let monitor = monitor.with_view(view);
    let metrics = cx.metrics.service(SERVICE);
    let result = transactional::spawn(spec, monitor, metrics, readiness, cx.shutdown).await;
    drop(follower);
    result?;
    Ok(())
}
