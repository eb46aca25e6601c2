//! Kafka runtime shared by every auditflow service.
//!
//! One consumer loop harness for all four services: consumer groups, rebalances, transactions
//! (consume-transform-produce), dead-letter records, bounded in-flight work, graceful shutdown,
//! and the metrics every service exposes.
//!
//! What this crate is not: it holds no audit logic (that is `auditflow-core`) and no storage.
