//! The metrics and health endpoint: `/metrics`, `/healthz`, `/readyz` (docs/operations.md).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::shutdown::Shutdown;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use crate::{Error, Result};

#[derive(Clone)]
struct Endpoints {
    metrics: Metrics,
    health: Health,
}

/// Binds `listen` and serves until `shutdown`. Returns the bound address (port 0 picks one) and
/// the server task.
pub async fn serve(
    listen: &str,
    metrics: Metrics,
    health: Health,
    shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let http_err = |source| Error::Http {
        listen: listen.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(http_err)?;
    let addr = listener.local_addr().map_err(http_err)?;
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readiness))
        .with_state(Endpoints { metrics, health });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
        if let Err(err) = served {
            tracing::warn!(error = %err, "metrics server stopped");
        }
    });
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    Ok((addr, task))
}

async fn render_metrics(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        endpoints.metrics.render(),
    )
}

async fn readiness(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    if endpoints.health.is_ready() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        let waiting = endpoints.health.not_ready().join(", ");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {waiting}\n"),
        )
    }
}
