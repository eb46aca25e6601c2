//! What the runtime's integration tests share: the Kafka they run against.

use std::net::TcpStream;
use std::time::Duration;

/// `AUDITFLOW_KAFKA_BOOTSTRAP` (default the local stack's), after checking that it answers:
/// a test fails, never skips, when Kafka is down.
pub fn bootstrap() -> String {
    let bootstrap =
        std::env::var("AUDITFLOW_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let first = bootstrap
        .split(',')
        .next()
        .unwrap_or_default()
        .parse()
        .expect("host:port");
    assert!(
        TcpStream::connect_timeout(&first, Duration::from_secs(3)).is_ok(),
        "Kafka not reachable at {bootstrap}: run `cargo xtask up`"
    );
    bootstrap
}
