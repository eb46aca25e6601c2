//! The integration tests' support library: one crate, compiled once, that every test binary
//! in `tests/` uses (`use auditflow_integration_tests::kafka::*;`).
//!
//! The generic modules know the stack, not the services: [`stack`] (where Kafka and Cassandra
//! are, fresh names, the deadline every wait is bounded by), [`kafka`] (topics, producing,
//! committed offsets, `read_committed` reads, dead letters), [`store`] (CQL sessions and
//! counts, a fresh migrated store, stored records), [`processes`] (the real `auditflow`
//! binary as a child process), [`metrics`] (a service's Prometheus text) and
//! [`private_node`] (a Cassandra node a test may kill). The fixture modules hold each service's
//! setup and inputs: [`classifier`], [`sink`], [`causality`], [`security_monitor`].
//!
//! The tests run against real Kafka and Cassandra and fail — never skip — when a server is
//! unreachable. One test file is one binary: tests in one binary run concurrently and some
//! read process-global metrics, so they are not merged.

#![deny(missing_docs)]

pub mod causality;
pub mod classifier;
pub mod kafka;
pub mod metrics;
pub mod private_node;
pub mod processes;
pub mod security_monitor;
pub mod sink;
pub mod stack;
pub mod store;
