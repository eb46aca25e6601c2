//! Where the local stack is, fresh names so tests never see each other's data, a clear failure
//! when the stack is not running, and the deadline every wait is bounded by.
//!
//! The tests run against real Kafka and Cassandra (`cargo xtask up`, or `cargo xtask test`,
//! which starts them). They fail — never skip — when a server is unreachable: a skipped
//! integration test in CI reads as a pass it did not earn.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kafka bootstrap servers (`AUDITFLOW_KAFKA_BOOTSTRAP`, default the local stack's).
pub fn kafka_bootstrap() -> String {
    env_or("AUDITFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

/// CQL contact points (`AUDITFLOW_CQL_NODES`, comma-separated, default the local stack's).
pub fn cql_nodes() -> Vec<String> {
    env_or("AUDITFLOW_CQL_NODES", "127.0.0.1:9042")
        .split(',')
        .map(|node| node.trim().to_string())
        .filter(|node| !node.is_empty())
        .collect()
}

/// [`kafka_bootstrap`], after checking that the first server accepts connections; panics with
/// what to run otherwise.
pub fn require_kafka() -> String {
    let bootstrap = kafka_bootstrap();
    let first = bootstrap.split(',').next().unwrap_or_default().trim();
    require_reachable("Kafka", first);
    bootstrap
}

/// [`cql_nodes`], after checking that the first node accepts connections; panics with what to
/// run otherwise.
pub fn require_cql() -> Vec<String> {
    let nodes = cql_nodes();
    require_reachable(
        "Cassandra/ScyllaDB (CQL)",
        nodes.first().map_or("", String::as_str),
    );
    nodes
}

fn require_reachable(what: &str, addr: &str) {
    let reachable = addr.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok())
    });
    assert!(
        reachable,
        "{what} not reachable at {addr:?}: run `cargo xtask up` (or use `cargo xtask test`, \
         which starts the stack)"
    );
}

/// A name no other test (in this or another process) uses: `<prefix>_<pid>_<time>_<n>`, made
/// of lowercase letters, digits and `_`, so it is valid as a Kafka topic, a consumer group, a
/// transactional id and a CQL keyspace (at most 48 characters).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() % 1_000_000_000_000);
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(16)
        .collect();
    format!("{prefix}_{}_{micros}_{n}", std::process::id())
}

/// A failure guard, not a performance expectation: the first transaction on a fresh broker
/// creates `__transaction_state`, and two cores may be busy compiling.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// Polls `check` until it holds; fails the test after [`DEADLINE`].
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

#[cfg(test)]
mod tests {
    use super::unique_name;

    #[test]
    fn unique_names_are_distinct_and_valid_keyspace_names() {
        let a = unique_name("Smoke-CQL test");
        let b = unique_name("Smoke-CQL test");
        assert_ne!(a, b);
        assert!(a.len() <= 48, "{a}");
        assert!(a.starts_with("smoke_cql_test_"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
