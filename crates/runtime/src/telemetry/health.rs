//! Liveness and readiness, served as `/healthz` and `/readyz`.
//!
//! Live means the process answers. Ready means every service in the process has joined its
//! consumer group (received an assignment, possibly empty) and, where it produces, has a
//! producer whose transactions are initialised — i.e. it would do work if records arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sync::lock;

#[derive(Clone, Default)]
/// The readiness of every service of the process: `/readyz` answers ready once all are.
pub struct Health {
    components: Arc<std::sync::Mutex<Vec<Readiness>>>,
}

impl Health {
    /// No service registered yet (and so not ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers one service; it starts not ready.
    pub fn register(&self, service: &str, produces: bool) -> Readiness {
        let readiness = Readiness {
            service: Arc::from(service),
            consumer_joined: Arc::new(AtomicBool::new(false)),
            producer_ready: Arc::new(AtomicBool::new(!produces)),
        };
        lock(&self.components).push(readiness.clone());
        readiness
    }

    /// Services that are not ready, by name; empty means ready.
    pub fn not_ready(&self) -> Vec<String> {
        lock(&self.components)
            .iter()
            .filter(|r| !r.is_ready())
            .map(|r| r.service.to_string())
            .collect()
    }

    /// Whether at least one service is registered and every one is ready.
    pub fn is_ready(&self) -> bool {
        let components = lock(&self.components);
        !components.is_empty() && components.iter().all(Readiness::is_ready)
    }
}

/// One service's readiness flags.
#[derive(Clone)]
pub struct Readiness {
    service: Arc<str>,
    consumer_joined: Arc<AtomicBool>,
    producer_ready: Arc<AtomicBool>,
}

impl Readiness {
    /// Whether the service's consumer has joined its group.
    pub fn set_consumer_joined(&self, joined: bool) {
        self.consumer_joined.store(joined, Ordering::Relaxed);
    }

    /// Whether the service's producer is ready (transactions initialised).
    pub fn set_producer_ready(&self, ready: bool) {
        self.producer_ready.store(ready, Ordering::Relaxed);
    }

    /// Joined, and (if it produces) its producer ready.
    pub fn is_ready(&self) -> bool {
        self.consumer_joined.load(Ordering::Relaxed) && self.producer_ready.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_service_is() {
        let health = Health::new();
        assert!(!health.is_ready());
        let classifier = health.register("classifier", true);
        let sink = health.register("sink", false);
        classifier.set_consumer_joined(true);
        sink.set_consumer_joined(true);
        assert_eq!(health.not_ready(), ["classifier"]);
        classifier.set_producer_ready(true);
        assert!(health.is_ready());
        sink.set_consumer_joined(false);
        assert!(!health.is_ready());
    }
}
