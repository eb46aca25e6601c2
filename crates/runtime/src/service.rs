//! What every service is given when it starts.

use auditflow_core::Config;

use crate::shutdown::Shutdown;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;

/// What a service's `run` is given: the configuration, the process's metrics registry and
/// health (shared by every service of the process, each registering under its own name), and
/// the shutdown signal it runs until. The binary builds one per service it starts
/// (`crates/cli/src/services.rs`); tests build their own.
#[derive(Clone)]
pub struct ServiceContext<'a> {
    /// The whole configuration.
    pub config: &'a Config,
    /// The process's metrics registry.
    pub metrics: &'a Metrics,
    /// The process's health (`/healthz`, `/readyz`).
    pub health: &'a Health,
    /// Triggered when the service is to stop.
    pub shutdown: Shutdown,
}
