//! The integration tests' support library: one crate, compiled once, that the test binaries
//! in `tests/` share (`use auditflow_integration_tests::kafka::read_committed;`).
//!
//! The generic modules know the stack, not the services: [`stack`] (where Kafka and Cassandra
//! are, fresh names, the deadline every wait is bounded by), [`kafka`] (topics, producing,
//! committed offsets, `read_committed` reads, dead letters), [`store`] (CQL sessions and
//! counts, a fresh migrated store, stored records), [`processes`] (the real `auditflow`
//! binary as a child process), [`metrics`] (a service's Prometheus text),
//! [`private_node`] (a Cassandra node a test may kill) and [`markdown`] (headings and anchors
//! as GitHub renders them, for the documentation checks). The fixture modules hold each service's
//! setup and inputs: [`classifier`], [`sink`] (and [`integrity`], its tamper-evident log), [`causality`],
//! [`security_monitor`], [`ocsf`] (a corpus for the OCSF output and its validator), and [`prometheus`] (a real
//! Prometheus scraping a test's services).
//!
//! The tests run against real Kafka and Cassandra and fail — never skip — when a server is
//! unreachable. One test file is one binary: tests in one binary run concurrently and some
//! read process-global metrics, so they are not merged.

#![deny(missing_docs)]

pub mod causality;
pub mod chaos;
pub mod classifier;
pub mod integrity;
pub mod kafka;
pub mod markdown;
pub mod metrics;
pub mod ocsf;
pub mod private_node;
pub mod processes;
pub mod prometheus;
pub mod security_monitor;
pub mod sink;
pub mod stack;
pub mod store;

#[cfg(test)]
mod layout {
    /// What the test binaries share is this library, not a file each of them compiles again:
    /// no source file of the crate pulls another in with a path attribute.
    #[test]
    fn no_test_file_includes_another_by_path() {
        // Spelled in two halves so that this file does not find itself.
        let needle = concat!("#[", "path");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        for dir in [root.to_path_buf(), root.join("support")] {
            for entry in std::fs::read_dir(&dir).expect("the tests folder") {
                let path = entry.expect("a directory entry").path();
                if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a source file");
                    if text.contains(needle) {
                        found.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(found.is_empty(), "included by path: {found:?}");
    }
}
