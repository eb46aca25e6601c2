//! auditflow's CQL store, for ScyllaDB and Apache Cassandra alike.
//!
//! Schema and migrations, encrypted and time-bucketed audit rows, causality tables, and the
//! query API shared by the sink, `auditflow query`, `trail`, `gdpr` and `report`.
//!
//! What this crate is not: it does not consume Kafka; it uses only CQL that ScyllaDB and
//! Cassandra both accept.
