//! What a service tells its operator: the process's Prometheus registry ([`metrics`]), the
//! readiness of each service ([`health`]), and the HTTP server of `/metrics`, `/healthz` and
//! `/readyz` ([`http`]).

pub mod health;
pub mod http;
pub mod metrics;
