//! `auditflow run <service>`: configuration → service → metrics server → shutdown.
//!
//! One process serves one Prometheus registry and one `/metrics`, `/healthz`, `/readyz`
//! endpoint for whatever services it runs. SIGTERM or SIGINT stops the services gracefully
//! (finish the batch in hand, commit, leave the group); the exit code is then 0.
//!
//! `run all` runs the four services (and the OCSF exporter with `[ocsf] enabled`) side by side
//! in this one process. Each keeps its own
//! consumer group and transactional ids (exactly as if it ran alone, so instances of `run all`
//! and of single services can be mixed), while the registry, the health endpoint (`/readyz`
//! answers ready only once all of them are) and the shutdown signal are shared. When one service
//! fails, the others are stopped gracefully and the process exits 1 naming the one that failed:
//! a half-running pipeline that looks alive is worse than one that is visibly down.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use auditflow_core::Config;
use auditflow_runtime::{Health, Metrics, ServiceContext, Shutdown, telemetry::http};

use crate::services::{Service, Target, in_run_all};

pub fn run(target: Target, config: &Config) -> anyhow::Result<ExitCode> {
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
        let result = match target {
            Target::All => run_all(config, &metrics, &health, &shutdown).await,
            Target::One(service) => {
                run_service(service, config, &metrics, &health, shutdown.clone())
                    .await
                    .with_context(|| format!("{} stopped", service.name))
            }
        };
        // A service that stopped on its own (an error) takes the metrics server down with it.
        shutdown.trigger();
        let _ = server.await;
        result?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs one service until `shutdown` (or its own failure).
async fn run_service(
    service: &Service,
    config: &Config,
    metrics: &Metrics,
    health: &Health,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tracing::info!(
        service = service.name,
        group = %service.group(config),
        inputs = ?(service.inputs)(config),
        "starting"
    );
    (service.start)(ServiceContext {
        config,
        metrics,
        health,
        shutdown,
    })
    .await
}

/// The services of `run all` as tasks of this process; returns once all have stopped. The first
/// failure (an error, a panic, or a service returning before shutdown was asked for) stops
/// the rest and is the result.
async fn run_all(
    config: &Config,
    metrics: &Metrics,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let services: Vec<&'static Service> = in_run_all(config).collect();
    let config = Arc::new(config.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let mut names = HashMap::new();
    for service in services {
        let (config, metrics, health, stop) = (
            Arc::clone(&config),
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        );
        let handle = tasks
            .spawn(async move { run_service(service, &config, &metrics, &health, stop).await });
        names.insert(handle.id(), service.name);
    }
    let mut failure: Option<anyhow::Error> = None;
    while let Some(joined) = tasks.join_next_with_id().await {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(join) => (join.id(), Err(anyhow!("panicked: {join}"))),
        };
        let service = names.get(&id).copied().unwrap_or("a service");
        let problem = match result {
            Err(err) => Some(err),
            Ok(()) if !shutdown.is_triggered() => Some(anyhow!("stopped on its own")),
            Ok(()) => None,
        };
        match problem {
            Some(err) if failure.is_none() => {
                tracing::error!(service, error = %format!("{err:#}"), "stopping the other services");
                failure = Some(err.context(format!("{service} failed")));
                shutdown.trigger();
            }
            Some(err) => {
                tracing::warn!(service, error = %format!("{err:#}"), "stopped with an error");
            }
            None => tracing::info!(service, "stopped"),
        }
    }
    failure.map_or(Ok(()), Err)
}
