//! The pipeline `cargo xtask demo` leaves running: `auditflow run all` in the background,
//! tracked like the stack's servers — pid in `.stack/pipeline.pid`, the binary's path (its
//! marker) in `.stack/pipeline.bin`, output in `.stack/logs/pipeline.log` — so that `demo`
//! reuses one already running and `cargo xtask down` stops it (by that pid) before the servers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, Result, bail};
use crate::layout::Layout;
use crate::{probe, process};

/// The pipeline's name under `.stack/` (pid file, log).
pub const PIPELINE: &str = "pipeline";
/// The services' default metrics address (`[metrics] listen`).
const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// Starting four services (schema checks, group joins) on a loaded two-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

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
pub fn start(layout: &Layout, binary: &Path) -> Result<u32> {
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
    // The demo stores a few dozen records: at the default of a checkpoint per 1,000 leaves none
    // would be covered, and `auditflow prove` of a demo record would have nothing to prove it
    // under. A checkpoint per leaf covers each at once (README, "Two commands").
    if std::env::var_os("AUDITFLOW_INTEGRITY__CHECKPOINT_EVERY").is_none() {
        cmd.env("AUDITFLOW_INTEGRITY__CHECKPOINT_EVERY", "1");
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
pub fn await_ready(layout: &Layout, binary: &Path, pid: u32, listen: &str) -> Result<()> {
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
pub fn metrics_addr() -> String {
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
    probe::http_get(addr, "/readyz").map(|(_, body)| body.trim().to_string())
}

/// Stops the pipeline `demo` started, if it runs (SIGTERM: it finishes in-flight work,
/// commits and leaves its groups). The caller holds the stack lock.
pub fn stop(layout: &Layout) -> Result<()> {
    if let Ok(marker) = std::fs::read_to_string(marker_file(layout)) {
        layout.stop_recorded(PIPELINE, &marker, "pipeline")?;
    }
    Ok(())
}
