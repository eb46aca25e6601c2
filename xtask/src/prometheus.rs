//! A real Prometheus beside Kafka and Cassandra, when one can be had: the machine's
//! `prometheus` binary (Debian's `prometheus` package; installed with apt when this runs as
//! root on a machine that has it), on `127.0.0.1:9090`, scraping the demo pipeline's
//! `/metrics` and every target file under `.stack/prometheus/targets/` (one JSON file per
//! running service someone wants scraped, Prometheus' `file_sd` format), and evaluating
//! `deploy/prometheus/alerts.yml`. Without the binary the stack runs without it and says so.
//!
//! Tracked like the other servers (pid file, a marker on its command line: its own data
//! directory), so `down` stops it and `status` reports it. Not a Java server, so not a
//! [`Server`](crate::server::Server).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, Result};
use crate::layout::Layout;
use crate::{pipeline, probe, process};

/// The name in paths and pid files.
pub const NAME: &str = "prometheus";
/// Where it listens.
pub const ADDR: &str = "127.0.0.1:9090";
/// How long it may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn dir(layout: &Layout) -> PathBuf {
    layout.service_dir(NAME)
}

/// The argument that marks the process as this stack's own: its data directory.
fn marker(layout: &Layout) -> String {
    format!("--storage.tsdb.path={}", dir(layout).join("data").display())
}

/// The `prometheus` binary, installing Debian's package first when that is possible.
fn binary() -> Option<PathBuf> {
    let found = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("prometheus"))
                .find(|p| p.is_file())
        })
    };
    if let Some(path) = found() {
        return Some(path);
    }
    let root = fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    });
    if !root || !PathBuf::from("/usr/bin/apt-get").exists() {
        return None;
    }
    println!("installing Debian's prometheus package (apt-get install prometheus) …");
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", "prometheus"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed { found() } else { None }
}

/// Writes its configuration: the pipeline's metrics address, the target files, the rules.
fn write_config(layout: &Layout) -> Result<PathBuf> {
    let dir = dir(layout);
    let targets = dir.join("targets");
    fs::create_dir_all(&targets).with_context(|| format!("creating {}", targets.display()))?;
    let rules = layout.root().join("deploy/prometheus/alerts.yml");
    let config = format!(
        "# Written by `cargo xtask up` (xtask/src/prometheus.rs); rewritten on every start.\n\
         global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n\
         rule_files:\n  - '{}'\n\
         scrape_configs:\n  - job_name: auditflow\n    static_configs:\n      - targets: ['{}']\n\
         \x20   file_sd_configs:\n      - files: ['{}/*.json']\n        refresh_interval: 5s\n",
        rules.display(),
        pipeline::metrics_addr(),
        targets.display()
    );
    let file = dir.join("prometheus.yml");
    fs::write(&file, config).with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

/// Starts Prometheus unless it runs, and waits until it is ready. `Ok(false)` when none can
/// be had (said on stdout): the stack runs without it.
pub fn up(layout: &Layout) -> Result<bool> {
    let pid_file = layout.pid_file(NAME);
    let marker = marker(layout);
    if let Some(pid) = process::running_pid(&pid_file, &marker) {
        println!("Prometheus is already running (pid {pid}) on http://{ADDR}");
        return Ok(true);
    }
    if probe::port_open(ADDR) {
        println!(
            "Prometheus: {ADDR} is taken by a process this stack did not start; running without \
             the stack's Prometheus"
        );
        return Ok(false);
    }
    let Some(binary) = binary() else {
        println!(
            "Prometheus: not installed (Debian: `apt-get install prometheus`); the stack runs \
             without it"
        );
        return Ok(false);
    };
    let config = write_config(layout)?;
    let log = layout.log_file(NAME);
    process::rotate_log(&log);
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(&marker)
        .arg(format!("--web.listen-address={ADDR}"))
        .arg("--storage.tsdb.retention.time=2d");
    let mut child = process::spawn_detached(&mut cmd, &log, &pid_file)
        .with_context(|| "starting Prometheus".to_string())?;
    println!(
        "Prometheus starting (pid {}), log {}",
        child.id(),
        layout.shown(&log)
    );
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("checking Prometheus")? {
            let _ = fs::remove_file(&pid_file);
            println!(
                "Prometheus exited during startup ({status}); the stack runs without it. Last \
                 lines of {}:\n{}",
                layout.shown(&log),
                process::tail(&log, 10)
            );
            return Ok(false);
        }
        if ready() {
            println!(
                "Prometheus ready on http://{ADDR} after {}s (scraping {} and {})",
                start.elapsed().as_secs(),
                pipeline::metrics_addr(),
                layout.shown(&dir(layout).join("targets"))
            );
            return Ok(true);
        }
        if start.elapsed() >= READY_TIMEOUT {
            println!(
                "Prometheus is not ready after {}s; the stack runs without it (read {})",
                READY_TIMEOUT.as_secs(),
                layout.shown(&log)
            );
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(300));
    }
}

/// Whether `/-/ready` answers 200.
fn ready() -> bool {
    probe::http_get(ADDR, "/-/ready").is_ok_and(|(status, _)| status == 200)
}

/// Whether this stack's Prometheus runs (and answers).
pub fn running(layout: &Layout) -> Option<u32> {
    process::running_pid(&layout.pid_file(NAME), &marker(layout)).filter(|_| ready())
}

/// Stops it if it runs. The caller holds the stack lock.
pub fn down(layout: &Layout) -> Result<()> {
    if !layout.stop_recorded(NAME, &marker(layout), "Prometheus")? {
        println!("Prometheus is not running");
    }
    Ok(())
}
