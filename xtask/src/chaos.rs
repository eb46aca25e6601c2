//! `cargo xtask chaos [ARGS]`: the chaos harness's long form on the local stack.
//!
//! Starts the stack if needed, builds `auditflow` and the harness (`chaos`, in the
//! integration-test package: tests/support/chaos) in release mode, and runs the harness with
//! the stack's addresses, its folder (the broker and database faults find the servers' pid
//! files there) and this program (to start the broker again after killing it). The harness
//! prints the ledger and writes `target/chaos/<run>/report.json`; its exit code is this
//! command's.

use std::process::{Command, ExitCode};

use crate::error::{Context, Result};
use crate::layout::Layout;
use crate::stack;

pub fn run(layout: &Layout, args: &[String]) -> Result<ExitCode> {
    stack::up(layout)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("building auditflow and the chaos harness (release) …");
    let status = Command::new(&cargo)
        .current_dir(layout.root())
        .args([
            "build",
            "--release",
            "-p",
            "auditflow-cli",
            "-p",
            "auditflow-integration-tests",
            "--bin",
            "auditflow",
            "--bin",
            "chaos",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        return Ok(ExitCode::FAILURE);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| layout.root().join("target"), std::path::PathBuf::from);
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let status = Command::new(target.join("release").join("chaos"))
        .args(args)
        .env("AUDITFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
        .env("AUDITFLOW_CQL_NODES", "127.0.0.1:9042")
        .env("AUDITFLOW_STACK_DIR", layout.dir())
        .env("AUDITFLOW_XTASK", xtask)
        .status()
        .context("running the chaos harness")?;
    Ok(ExitCode::from(
        status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)),
    ))
}
