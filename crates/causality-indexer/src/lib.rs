//! The auditflow causality-indexer service: wires `auditflow-core` to the Kafka runtime.
//!
//! Not built yet; see ARCHITECTURE.md for what it will do.
