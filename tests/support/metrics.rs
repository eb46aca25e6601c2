//! What a running service reports: its Prometheus text on `/metrics` (scraped over plain HTTP),
//! one series or a family's sum read from it, and waits on those numbers bounded by
//! [`DEADLINE`] that fail the test.

use std::time::{Duration, Instant};

use crate::stack::DEADLINE;

/// A port on 127.0.0.1 that was free a moment ago: for a child process's metrics endpoint,
/// so the test can read what that instance did.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// The Prometheus text a service serves on 127.0.0.1:`port`; `None` while it does not answer.
pub fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    // `HTTP/1.0 200 OK` (the server answers in the request's version).
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

/// Waits until every instance of `service` whose metrics are on `ports` has partitions and
/// together they hold `partitions`: the group has settled with all of them in it.
pub async fn wait_for_split_at(ports: &[u16], service: &str, partitions: u64) {
    let filter = format!("service=\"{service}\"");
    let started = Instant::now();
    loop {
        let counts: Vec<u64> = ports
            .iter()
            .map(|p| {
                scrape(*p).map_or(0, |text| {
                    metric_sum(&text, "auditflow_assigned_partitions", &filter)
                })
            })
            .collect();
        if counts.iter().all(|c| *c > 0) && counts.iter().sum::<u64>() == partitions {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the partitions never split between the instances: {counts:?} of {partitions}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Records of `service` consumed by the instance whose metrics are on `port` (0 while it
/// does not answer).
pub fn consumed_at(port: u16, service: &str) -> u64 {
    scrape(port).map_or(0, |text| {
        metric_sum(
            &text,
            "auditflow_consumed_records_total",
            &format!("service=\"{service}\""),
        )
    })
}

/// The value of one series in a Prometheus text exposition (0 when absent).
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Sums every series of `family` whose labels contain `filter`.
pub fn metric_sum(text: &str, family: &str, filter: &str) -> u64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")) && line.contains(filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A bare HTTP/1.1 GET (the services' `/metrics`, `/readyz`): status line, headers and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    response
}
