//! `auditflow run <service>`: configuration → service → metrics server → shutdown.
//!
//! One process serves one Prometheus registry and one `/metrics`, `/healthz`, `/readyz`
//! endpoint for whatever services it runs. SIGTERM or SIGINT stops the services gracefully
//! (finish the batch in hand, commit, leave the group); the exit code is then 0.

use std::process::ExitCode;

use anyhow::{Context, bail};
use auditflow_core::Config;
use auditflow_kafka::{Health, Metrics, Shutdown, http};

use crate::cli::Service;

pub fn run(service: Service, config: &Config) -> anyhow::Result<ExitCode> {
    let name = match service {
        Service::Classifier => "classifier",
        Service::SecurityMonitor => "security-monitor",
        Service::Sink => "sink",
        Service::CausalityIndexer => "causality-indexer",
        Service::All => "all",
    };
    if !matches!(
        service,
        Service::Classifier | Service::SecurityMonitor | Service::Sink | Service::CausalityIndexer
    ) {
        bail!("`auditflow run {name}` is not implemented yet");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = Shutdown::new();
        shutdown
            .on_signals()
            .context("installing signal handlers")?;
        let metrics = Metrics::new()?;
        let health = Health::new();
        let (_addr, server) = http::serve(
            &config.metrics.listen,
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        )
        .await?;
        let result: anyhow::Result<()> = match service {
            Service::SecurityMonitor => {
                auditflow_security_monitor::run(config, &metrics, &health, shutdown.clone())
                    .await
                    .map_err(Into::into)
            }
            Service::Sink => auditflow_sink::run(config, &metrics, &health, shutdown.clone())
                .await
                .map_err(Into::into),
            Service::CausalityIndexer => {
                auditflow_causality_indexer::run(config, &metrics, &health, shutdown.clone())
                    .await
                    .map_err(Into::into)
            }
            _ => auditflow_classifier::run(config, &metrics, &health, shutdown.clone())
                .await
                .map_err(Into::into),
        };
        // A service that stopped on its own (an error) takes the metrics server down with it.
        shutdown.trigger();
        let _ = server.await;
        result.with_context(|| format!("{name} stopped"))?;
        Ok(ExitCode::SUCCESS)
    })
}
