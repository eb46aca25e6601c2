//! `cargo xtask test`: the project's one test command. It makes sure the stack is up (the
//! integration tests need real Kafka and Cassandra and fail, not skip, without them), runs
//! `cargo test --workspace` with the stack's addresses in the environment, and leaves the
//! stack as it found it: servers this command started are stopped again, unless another
//! `cargo xtask test` is still using them.
//!
//! The JVMs boot while cargo compiles the tests (`--no-run` first), since on two cores both
//! take minutes when cold.

use std::process::{Command, ExitCode};

use crate::error::{Context, Result};
use crate::stack::{self, Launched, Layout};

const KAFKA_ENV: &str = "AUDITFLOW_KAFKA_BOOTSTRAP";
const CQL_ENV: &str = "AUDITFLOW_CQL_NODES";

/// `args` are passed to `cargo test` (everything after `--` also reaches the test binaries).
pub fn run(layout: &Layout, args: &[String]) -> Result<ExitCode> {
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    let cargo_args = match args.iter().position(|a| a == "--") {
        Some(i) => &args[..i],
        None => args,
    };
    let kafka = env_or(KAFKA_ENV, "127.0.0.1:9092");
    let cql = env_or(CQL_ENV, "127.0.0.1:9042");

    let external = std::env::var("AUDITFLOW_STACK").is_ok_and(|v| v == "external");
    let mut launched = if external {
        println!(
            "AUDITFLOW_STACK=external: testing against Kafka {kafka} and CQL {cql} as they are"
        );
        Vec::new()
    } else {
        stack::launch(layout)?
    };

    let outcome = test_with_stack(layout, &mut launched, args, cargo_args, &kafka, &cql);

    if launched.iter().any(Launched::started_here) {
        if layout.unused()? {
            println!("stopping the servers this command started …");
            stack::stop_started(layout, &launched)?;
        } else {
            println!("leaving the stack running: another `cargo xtask test` is using it");
        }
    }
    outcome
}

fn test_with_stack(
    layout: &Layout,
    launched: &mut [Launched],
    args: &[String],
    cargo_args: &[String],
    kafka: &str,
    cql: &str,
) -> Result<ExitCode> {
    if launched.iter().any(Launched::started_here) {
        println!("building the tests while the servers start …");
        let status = cargo_test(cargo_args)
            .arg("--no-run")
            .status()
            .context("running cargo test --no-run")?;
        if !status.success() {
            return Ok(exit_code(status.code()));
        }
    }
    stack::await_ready(layout, launched)?;

    let _in_use = layout.in_use()?;
    let status = cargo_test(args)
        .env(KAFKA_ENV, kafka)
        .env(CQL_ENV, cql)
        .status()
        .context("running cargo test")?;
    Ok(exit_code(status.code()))
}

/// `cargo test --workspace <args>`, minus `--workspace` when `args` pick packages.
fn cargo_test(args: &[String]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("test");
    let picks_packages = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "-p" || a.starts_with("--package") || a.starts_with("-p"));
    if !picks_packages {
        cmd.arg("--workspace");
    }
    cmd.args(args);
    cmd
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn exit_code(code: Option<i32>) -> ExitCode {
    // A test process killed by a signal has no code: a failure all the same.
    ExitCode::from(code.map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}
