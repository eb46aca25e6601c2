//! auditflow's pure core.
//!
//! Everything that decides what an audit pipeline *does* lives here, as plain functions over
//! plain data: the CloudEvents envelope, type patterns, classification rules, sampling,
//! retention classes and threat detection; and the Merkle log ([`merkle`]) that makes stored
//! records tamper-evident.
//!
//! What this crate is not: it does no I/O, spawns no tasks and knows nothing of Kafka or CQL.
//! Runtimes (`auditflow-runtime`, `auditflow-store`) and services wire it to the outside world.
//! It depends on no other auditflow crate.
//!
//! Where to start reading: [`envelope`] (bytes → [`Event`] or [`Rejection`]), [`pattern`] (the
//! one type matcher), then [`classify`] (an event → audit records,
//! docs/topics-and-records.md).

// A library never prints: services report through `tracing` (structured, and kept free of
// personal data), and stdout/stderr belong to the binary that owns the terminal.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod audit_record;
pub mod checkpoint;
pub mod classify;
pub mod config;
pub mod detect;
pub mod envelope;
pub mod error;
pub mod hex;
mod json;
pub mod merkle;
pub mod ocsf;
pub mod operator;
pub mod pattern;
pub mod retention;
pub mod sampling;

pub use audit_record::{
    AuditRecord, DataAccess, Operation, Outcome, RiskLevel, SecurityEvent, Severity, UserAction,
};
pub use classify::{Classified, Classifier, Counters, Output};
pub use config::Config;
pub use envelope::{Event, Reason, Rejection};
pub use error::ConfigError;
pub use pattern::{Pattern, PatternTable};
pub use retention::RetentionClass;
