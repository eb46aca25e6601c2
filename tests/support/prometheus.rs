//! A real Prometheus for a test: started from the machine's `prometheus` binary (Debian's
//! `prometheus` package, which `.ci/run` installs) on a free port, scraping the given
//! `/metrics` addresses every second as job `auditflow` and evaluating
//! `deploy/prometheus/alerts.yml` every second; asked over its HTTP API. Without the binary
//! the test fails and says so — it is never skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::metrics::free_port;

/// How long Prometheus may take to answer `/-/ready` (a cold start on a busy machine).
const READY_DEADLINE: Duration = Duration::from_secs(120);

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    child: Child,
    addr: String,
    dir: PathBuf,
}

/// A path relative to the repository's root.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port` of `/metrics`), with the alerting
    /// rules loaded, and waits until it is ready.
    pub fn start(name: &str, targets: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("{name}-prometheus-{port}"));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let rules = repo("deploy/prometheus/alerts.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - '{}'\n\
             scrape_configs:\n  - job_name: auditflow\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("writing prometheus.yml");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs a real Prometheus and `prometheus` cannot be started ({e}): \
                     `apt-get install prometheus` (.ci/run installs it)"
                )
            });
        let mut prometheus = Self { child, addr, dir };
        let start = Instant::now();
        loop {
            if let Some(status) = prometheus.child.try_wait().expect("prometheus status") {
                panic!("prometheus exited ({status}):\n{}", prometheus.log());
            }
            if prometheus
                .get("/-/ready")
                .is_ok_and(|(code, _)| code == 200)
            {
                return prometheus;
            }
            assert!(
                start.elapsed() < READY_DEADLINE,
                "prometheus not ready:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path`: the status code and the body.
    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr)?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((code, body.to_owned()))
    }

    /// `GET path` of the JSON API: its `data`, or the error Prometheus gave.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (code, body) = self.get(path).map_err(|e| format!("GET {path}: {e}"))?;
        let value: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path}: {code}: {e}: {body}"))?;
        if value["status"] != "success" {
            return Err(format!(
                "{}: {}",
                value["errorType"].as_str().unwrap_or("error"),
                value["error"].as_str().unwrap_or(&body)
            ));
        }
        Ok(value["data"].clone())
    }

    /// The series an instant query returns now (an error when it does not parse or evaluate).
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(promql)))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The loaded rules (`/api/v1/rules`): every rule of every group, with its `health`,
    /// `lastError` and `lastEvaluation`.
    pub fn rules(&self) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/rules")?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// The health of each scrape target (`/api/v1/targets`), e.g. `up`.
    pub fn target_health(&self) -> Result<Vec<String>, String> {
        let data = self.api("/api/v1/targets")?;
        Ok(data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t["health"].as_str().unwrap_or("").to_owned())
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every `expr` of a Grafana dashboard's panels, with the panel's title.
pub fn dashboard_queries(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let title = panel["title"].as_str().unwrap_or("?");
                out.push((format!("{path}: {title}"), expr.to_owned()));
            }
        }
    }
    out
}
