//! `cargo xtask demo`: the README's main command — from a clean checkout to the recipe's user
//! lifecycle flowing through the real pipeline.
//!
//! 1. the stack (`stack::up`: Kafka and Cassandra, fetched on the first run);
//! 2. the `auditflow` binary (`cargo build -p auditflow-cli`, debug: it is what the tests
//!    build too, so on a small machine it is usually already there);
//! 3. `auditflow topics create` and `auditflow migrate` (both idempotent);
//! 4. `auditflow run all` in the background, tracked like the stack's servers (the `pipeline`
//!    module): one already running is reused, and `cargo xtask down` stops it before the
//!    servers;
//! 5. `auditflow demo`, once `/readyz` shows the services up (see [`pipeline::await_ready`]);
//! 6. a note on what keeps running, where its metrics are and how to stop it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Context, Result, bail};
use crate::layout::Layout;
use crate::{pipeline, process, stack};

pub fn run(layout: &Layout) -> Result<()> {
    println!("==> the local stack (Kafka, Cassandra)");
    stack::up(layout)?;

    println!("==> building auditflow (cargo build -p auditflow-cli)");
    let binary = build()?;

    println!("==> topics and schema");
    auditflow(&binary, &["topics", "create"])?;
    auditflow(&binary, &["migrate"])?;

    println!("==> the pipeline (auditflow run all)");
    let pid = pipeline::start(layout, &binary)?;
    let listen = pipeline::metrics_addr();
    pipeline::await_ready(layout, &binary, pid, &listen)?;

    println!("==> auditflow demo");
    let status = Command::new(&binary)
        .arg("demo")
        .status()
        .context("running auditflow demo")?;
    if !status.success() {
        bail!(
            "auditflow demo failed ({status}); the pipeline's log is {}",
            layout.shown(&layout.log_file(pipeline::PIPELINE))
        );
    }
    println!();
    println!(
        "the pipeline keeps running (pid {pid}, log {}); metrics: http://{listen}/metrics, \
         health: http://{listen}/readyz",
        layout.shown(&layout.log_file(pipeline::PIPELINE))
    );
    if let Some(pid) = crate::prometheus::running(layout) {
        println!(
            "Prometheus (pid {pid}) scrapes it: http://{}/graph, alerts at http://{}/alerts",
            crate::prometheus::ADDR,
            crate::prometheus::ADDR
        );
    }
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
