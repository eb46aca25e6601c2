//! `chaos`: the chaos harness's command line (`cargo xtask chaos` builds and runs it).
//!
//! ```text
//! chaos [--minutes M] [--rate R] [--seed S] [--short] [--fresh-transactional-ids] [--only SERVICE]
//! ```
//!
//! Runs the pipeline under faults (tests/support/chaos), prints the ledger and writes
//! `target/chaos/<run>/report.json`. Exit 0 when nothing was lost, duplicated or left
//! unexplained; 1 otherwise; 2 for a bad argument.

use std::process::ExitCode;
use std::time::Duration;

use auditflow_integration_tests::chaos::fleet::SERVICES;
use auditflow_integration_tests::chaos::{self, Settings};

/// The settings `args` ask for: the long form's, or with `--short` the short form's, then
/// each option given (in any order).
fn parse(binary: &std::path::Path, args: &[String]) -> Result<Settings, String> {
    let mut seed = 1u64;
    let (mut minutes, mut rate, mut short, mut stable_ids) = (None, None, false, true);
    let mut only = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<f64, String> {
            it.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0 && v.is_finite())
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "--minutes" => minutes = Some(number("--minutes")?),
            "--rate" => rate = Some(number("--rate")? as u32),
            "--seed" => seed = number("--seed")? as u64,
            "--short" => short = true,
            "--fresh-transactional-ids" => stable_ids = false,
            "--only" => {
                let name = it.next().ok_or("--only needs a service")?;
                only = Some(
                    *SERVICES
                        .iter()
                        .find(|s| *s == name)
                        .ok_or_else(|| format!("--only {name:?}: not one of {SERVICES:?}"))?,
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut settings = if short {
        Settings::short(binary, seed)
    } else {
        Settings {
            seed,
            ..Settings::new(binary)
        }
    };
    if let Some(m) = minutes {
        settings.duration = Duration::from_secs_f64(m * 60.0);
    }
    if let Some(r) = rate {
        settings.rate = r.max(1);
    }
    settings.stable_ids = stable_ids;
    settings.only = only;
    Ok(settings)
}

const USAGE: &str = "usage: chaos [--minutes M] [--rate R] [--seed S] [--short] [--fresh-transactional-ids] [--only SERVICE]";

fn main() -> ExitCode {
    let exe = std::env::current_exe().expect("the executable's path");
    let binary = exe.with_file_name("auditflow");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let settings = match parse(&binary, &args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("chaos: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !binary.exists() {
        eprintln!(
            "chaos: {} not found: build it with `cargo build -p auditflow-cli` (same profile)",
            binary.display()
        );
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(chaos::run(&settings)) {
        Ok(report) => {
            print!("{}", report.table());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("chaos: the run could not be carried out: {e}");
            ExitCode::FAILURE
        }
    }
}
