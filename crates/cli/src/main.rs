//! `auditflow`: runs any service and is the operator's command-line tool.
//!
//! This binary is thin glue: it parses the command line (docs/cli.md), loads the
//! configuration once, and hands over to one module per subcommand under `commands/`.
//! Exit codes: 0 success, 1 failure (one-line reason on stderr), 2 bad usage (clap's own).

mod cli;
mod commands;
mod config;
mod services;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, the whole context chain: what failed and why.
            eprintln!("auditflow: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout is reserved for command output), filtered by `RUST_LOG`
/// (default: warnings only, so offline commands stay quiet).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
