//! `cargo xtask test`: the project's one test command. It makes sure the stack is up (the
//! integration tests need real Kafka and Cassandra and fail, not skip, without them), runs
//! `cargo test --workspace` with the stack's addresses in the environment, and leaves the
//! stack as it found it: servers this command started are stopped again, unless another
//! `cargo xtask test` is still using them.
//!
//! The JVMs boot while cargo compiles the tests (`--no-run` first), since on two cores both
//! take minutes when cold.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

use crate::error::{Context, Result};
use crate::layout::Layout;
use crate::stack::{self, Launched};

const KAFKA_ENV: &str = "AUDITFLOW_KAFKA_BOOTSTRAP";
const CQL_ENV: &str = "AUDITFLOW_CQL_NODES";
/// This program, for tests that run its commands (`cassandra-node`) without going through cargo.
const XTASK_ENV: &str = "AUDITFLOW_XTASK";

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
    let (code, tally) = outcome?;
    if let Some(tally) = tally {
        // One closing line for the whole run, printed last: cargo prints one `test result`
        // per test binary, the last of which (a crate's doc-tests) often counts nothing.
        println!(
            "tests: {} passed, {} failed, {} skipped",
            tally.passed, tally.failed, tally.ignored
        );
    }
    Ok(code)
}

fn test_with_stack(
    layout: &Layout,
    launched: &mut [Launched],
    args: &[String],
    cargo_args: &[String],
    kafka: &str,
    cql: &str,
) -> Result<(ExitCode, Option<Tally>)> {
    if launched.iter().any(Launched::started_here) {
        println!("building the tests while the servers start …");
        let status = cargo_test(cargo_args)
            .arg("--no-run")
            .status()
            .context("running cargo test --no-run")?;
        if !status.success() {
            return Ok((exit_code(status.code()), None));
        }
    }
    stack::await_ready(layout, launched)?;

    let _in_use = layout.in_use()?;
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    // One failing test binary must not hide the others (cargo stops after the first by
    // default); the exit code is still non-zero when anything failed.
    let no_fail_fast = ["--no-fail-fast".to_string()];
    let extra: &[String] = if cargo_args.contains(&no_fail_fast[0]) {
        &[]
    } else {
        &no_fail_fast
    };
    let mut child = cargo_test(&[extra, args].concat())
        .env(KAFKA_ENV, kafka)
        .env(CQL_ENV, cql)
        .env(XTASK_ENV, xtask)
        // Absolute, so a test's own xtask command finds the same stack from the test's folder.
        .env("AUDITFLOW_STACK_DIR", layout.dir())
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let mut tally = Tally::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo test's output")?;
            tally.add(&line);
            println!("{line}");
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    Ok((exit_code(status.code()), Some(tally)))
}

/// The sum of cargo's `test result: ok. 3 passed; 0 failed; 1 ignored; …` lines.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tally_sums_cargo_result_lines_and_ignores_the_rest() {
        let mut tally = Tally::default();
        for line in [
            "test result: ok. 16 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "running 3 tests",
            "test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.5s",
            "test a_test_named_7_passed ... ok",
        ] {
            tally.add(line);
        }
        assert_eq!(
            tally,
            Tally {
                passed: 20,
                failed: 1,
                ignored: 2
            }
        );
    }
}
