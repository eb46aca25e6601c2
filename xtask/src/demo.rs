//! `cargo xtask demo`: the README's main command — from a clean checkout to the recipe's user
//! lifecycle flowing through the real pipeline.
//!
//! 1. the stack (`stack::up`: Kafka and Cassandra, fetched on the first run);
//! 2. the `auditflow` binary (`cargo build -p auditflow-cli`, debug: it is what the tests
//!    build too, so on a small machine it is usually already there);
//! 3. `auditflow topics create` and `auditflow migrate` (both idempotent);
//! 4. `auditflow run all` in the background, tracked like the stack's servers: pid in
//!    `.stack/pipeline.pid`, output in `.stack/logs/pipeline.log`; one already running is
//!    reused. `cargo xtask down` stops it (by that pid) before the servers;
//! 5. `auditflow demo`, once `/readyz` shows the services up (see [`await_pipeline`]);
//! 6. a note on what keeps running, where its metrics are and how to stop it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, Result, bail};
use crate::layout::Layout;
use crate::process;
use crate::stack;

/// The pipeline's name under `.stack/` (pid file, log).
const PIPELINE: &str = "pipeline";
/// The services' default metrics address (`[metrics] listen`).
const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// Starting four services (schema checks, group joins) on a loaded two-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

pub fn run(layout: &Layout) -> Result<()> {
    println!("==> the local stack (Kafka, Cassandra)");
    stack::up(layout)?;

    println!("==> building auditflow (cargo build -p auditflow-cli)");
    let binary = build()?;

    println!("==> topics and schema");
    auditflow(&binary, &["topics", "create"])?;
    auditflow(&binary, &["migrate"])?;

    println!("==> the pipeline (auditflow run all)");
    let pid = start_pipeline(layout, &binary)?;
    let listen = metrics_addr();
    await_pipeline(layout, &binary, pid, &listen)?;

    println!("==> auditflow demo");
    let status = Command::new(&binary)
        .arg("demo")
        .status()
        .context("running auditflow demo")?;
    if !status.success() {
        bail!(
            "auditflow demo failed ({status}); the pipeline's log is {}",
            layout.shown(&layout.log_file(PIPELINE))
        );
    }
    println!();
    println!(
        "the pipeline keeps running (pid {pid}, log {}); metrics: http://{listen}/metrics, \
         health: http://{listen}/readyz",
        layout.shown(&layout.log_file(PIPELINE))
    );
    println!(
        "run the demo again with `{} demo`; `cargo xtask down` stops the pipeline and the stack",
        layout.shown(&binary)
    );
    Ok(())
}

/// Builds the binary (debug) and returns its path.
fn build() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["build", "-p", "auditflow-cli"])
        .spawn()
        .context("running cargo build")?;
    if !process::wait_with_progress(&mut child, "building auditflow")? {
        bail!("cargo build -p auditflow-cli failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let binary = target.join("debug").join("auditflow");
    if !binary.exists() {
        bail!("{} is missing after the build", binary.display());
    }
    Ok(binary)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs an `auditflow` subcommand in the foreground; its output is the user's to see.
fn auditflow(binary: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new(binary)
        .args(args)
        .status()
        .with_context(|| format!("running auditflow {}", args.join(" ")))?;
    if !status.success() {
        bail!("auditflow {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The marker that tells our pipeline process from any other: its program path, which is
/// its first argument (`/proc/<pid>/cmdline`), together with the pid we recorded.
fn marker(binary: &Path) -> String {
    binary.display().to_string()
}

/// Where that marker is recorded, for `down` (which does not build, so cannot know the path).
fn marker_file(layout: &Layout) -> PathBuf {
    layout.service_dir(PIPELINE).with_extension("bin")
}

/// Starts `auditflow run all` unless ours is already running; returns its pid.
fn start_pipeline(layout: &Layout, binary: &Path) -> Result<u32> {
    let _lock = layout.lock()?;
    let pid_file = layout.pid_file(PIPELINE);
    if let Some(pid) = process::running_pid(&pid_file, &marker(binary)) {
        println!("reusing the running pipeline (pid {pid})");
        return Ok(pid);
    }
    let log = layout.log_file(PIPELINE);
    std::fs::create_dir_all(layout.logs_dir())
        .with_context(|| format!("creating {}", layout.logs_dir().display()))?;
    process::rotate_log(&log);
    let mut cmd = Command::new(binary);
    cmd.args(["run", "all"]);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    let marker_file = marker_file(layout);
    std::fs::write(&marker_file, marker(binary))
        .with_context(|| format!("writing {}", marker_file.display()))?;
    let child = process::spawn_detached(&mut cmd, &log, &pid_file)?;
    println!(
        "started auditflow run all (pid {}, log {})",
        child.id(),
        layout.shown(&log)
    );
    Ok(child.id())
}

/// Waits until `/readyz` shows every service but possibly the classifier ready.
///
/// Why not the classifier too: it subscribes to a pattern (`^user\..+`), and a pattern no
/// topic matches yet leaves it outside its consumer group. On a fresh stack the first `user.*`
/// topic is the one `auditflow demo` creates (producers own their input topics), and the demo
/// itself then waits until all four consumer groups have members before it publishes.
fn await_pipeline(layout: &Layout, binary: &Path, pid: u32, listen: &str) -> Result<()> {
    let log = layout.log_file(PIPELINE);
    let start = Instant::now();
    loop {
        if !process::is_ours(pid, &marker(binary)) {
            let _ = std::fs::remove_file(layout.pid_file(PIPELINE));
            bail!(
                "auditflow run all stopped; last lines of {}:\n{}",
                layout.shown(&log),
                process::tail(&log, 25)
            );
        }
        let last = match readyz(listen) {
            Ok(body) if body == "ready" || body == "not ready: classifier" => {
                println!(
                    "pipeline up after {}s (/readyz: {body})",
                    start.elapsed().as_secs()
                );
                return Ok(());
            }
            Ok(body) => body,
            Err(e) => e,
        };
        if start.elapsed() >= READY_TIMEOUT {
            bail!(
                "the pipeline is not ready after {}s (/readyz on {listen}: {last}); read {} — it \
                 is still running (pid {pid}): `cargo xtask down` stops it",
                READY_TIMEOUT.as_secs(),
                layout.shown(&log)
            );
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Where the pipeline serves `/metrics` and `/readyz`: `AUDITFLOW_METRICS__LISTEN` when set
/// (the configuration's override), else the default; a wildcard host is reached on loopback.
fn metrics_addr() -> String {
    let listen = std::env::var("AUDITFLOW_METRICS__LISTEN")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    match listen.strip_prefix("0.0.0.0:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => listen,
    }
}

/// `GET /readyz`, as the trimmed body (`ready` or `not ready: <services>`).
fn readyz(addr: &str) -> std::result::Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("not answering ({e})"))?;
    let timeout = Some(Duration::from_secs(5));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    stream
        .write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| format!("request failed ({e})"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("no response ({e})"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok(body.trim().to_string())
}

/// Stops the pipeline `demo` started, if it runs (SIGTERM: it finishes in-flight work,
/// commits and leaves its groups). The caller holds the stack lock.
pub fn stop_pipeline(layout: &Layout) -> Result<()> {
    let pid_file = layout.pid_file(PIPELINE);
    let Ok(marker) = std::fs::read_to_string(marker_file(layout)) else {
        return Ok(());
    };
    let Some(pid) = process::running_pid(&pid_file, &marker) else {
        return Ok(());
    };
    let start = Instant::now();
    let killed = process::stop(pid, &marker, Duration::from_secs(60))
        .with_context(|| format!("stopping the pipeline (pid {pid})"))?;
    let _ = std::fs::remove_file(&pid_file);
    let how = if killed {
        "killed after 60 s without a clean shutdown"
    } else {
        "stopped"
    };
    println!(
        "pipeline {how} (pid {pid}, {:.1}s)",
        start.elapsed().as_secs_f32()
    );
    Ok(())
}
