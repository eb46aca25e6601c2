//! auditflow's pure core.
//!
//! Everything that decides what an audit pipeline *does* lives here, as plain functions over
//! plain data: the CloudEvents envelope, type patterns, classification rules, sampling,
//! retention classes and threat detection.
//!
//! What this crate is not: it does no I/O, spawns no tasks and knows nothing of Kafka or CQL.
//! Runtimes (`auditflow-kafka`, `auditflow-store`) and services wire it to the outside world.
//! It depends on no other auditflow crate.

pub mod config;
