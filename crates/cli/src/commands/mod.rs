//! One module per subcommand; `dispatch` is the only place that knows them all.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod classify;
mod demo;
mod detect;
mod gdpr;
mod loadgen;
mod migrate;
mod ndjson;
mod prove;
mod query;
mod report;
mod run;
mod topics;
mod trail;
mod verify;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every command reads the same configuration; a bad one is a usage error (exit 2).
    let config = match crate::config::load(cli.global.config.as_deref()) {
        Ok(config) => config,
        Err(bad) => return Ok(bad.exit()),
    };
    let json = cli.global.json;
    match cli.command {
        Command::Classify => classify::run(&config, json),
        Command::Detect => detect::run(&config, json),
        Command::Run { service } => run::run(service, &config),
        Command::Migrate => migrate::run(&config, json),
        Command::Topics { command } => topics::run(command, &config, json),
        Command::Query(args) => query::run(&args, &config, json),
        Command::Trail(args) => trail::run(&args, &config, json),
        Command::Demo => demo::run(&config, json),
        Command::Gdpr { command } => gdpr::run(&command, &config, json),
        Command::Report { command } => report::run(&command, &config, json),
        Command::Loadgen(args) => loadgen::run(&args, &config, json),
        Command::Verify(args) => verify::run(&args, &config, json),
        Command::Keys { command } => verify::keys(&command, &config, json),
        Command::Prove { event_id } => prove::prove(&event_id, &config),
        Command::VerifyProof { file, public_key } => prove::verify_proof(&file, &public_key, json),
    }
}

/// The one-thread runtime of a one-shot command (`migrate`, `query`, `trail`, `gdpr`,
/// `report`, `topics`, `loadgen`, `verify`); the long-running `run` and `demo` build a multi-thread one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
