//! `chaos`: the chaos harness's command line (`cargo xtask chaos` builds and runs it).
//!
//! ```text
//! chaos [--minutes M] [--rate R] [--seed S] [--short] [--fresh-transactional-ids]
//! ```
//!
//! Runs the pipeline under faults (tests/support/chaos), prints the ledger and writes
//! `target/chaos/<run>/report.json`. Exit 0 when nothing was lost, duplicated or left
//! unexplained; 1 otherwise; 2 for a bad argument.

use std::process::ExitCode;
use std::time::Duration;

use auditflow_integration_tests::chaos::{self, Settings};

const USAGE: &str =
    "usage: chaos [--minutes M] [--rate R] [--seed S] [--short] [--fresh-transactional-ids]";

fn main() -> ExitCode {
    let exe = std::env::current_exe().expect("the executable's path");
    let binary = exe.with_file_name("auditflow");
    let mut settings = Settings::new(&binary);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    let mut minutes = None;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<f64, String> {
            it.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0 && v.is_finite())
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        let parsed = match arg.as_str() {
            "--minutes" => value("--minutes").map(|m| minutes = Some(m)),
            "--rate" => value("--rate").map(|r| settings.rate = r as u32),
            "--seed" => value("--seed").map(|s| settings.seed = s as u64),
            "--short" => {
                settings = Settings {
                    short: true,
                    ..Settings::short(&binary, settings.seed)
                };
                Ok(())
            }
            "--fresh-transactional-ids" => {
                settings.stable_ids = false;
                Ok(())
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(e) = parsed {
            eprintln!("chaos: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    if let Some(m) = minutes {
        settings.duration = Duration::from_secs_f64(m * 60.0);
    }
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
