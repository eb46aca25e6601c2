//! One module per subcommand; `dispatch` is the only place that knows them all.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::{Cli, Command};

mod classify;
mod demo;
mod detect;
mod gdpr;
mod migrate;
mod ndjson;
mod query;
mod report;
mod run;
mod topics;
mod trail;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every command reads the same configuration; a bad one is a usage error (exit 2).
    let config = match crate::config::load(cli.global.config.as_deref()) {
        Ok(config) => config,
        Err(bad) => return Ok(bad.exit()),
    };
    let json = cli.global.json;
    let name = match cli.command {
        Command::Classify => return classify::run(&config, json),
        Command::Detect => return detect::run(&config, json),
        Command::Run { service } => return run::run(service, &config),
        Command::Migrate => return migrate::run(&config, json),
        Command::Topics { command } => return topics::run(command, &config, json),
        Command::Query(args) => return query::run(&args, &config, json),
        Command::Trail(args) => return trail::run(&args, &config, json),
        Command::Demo => return demo::run(&config, json),
        Command::Gdpr { command } => return gdpr::run(&command, &config, json),
        Command::Report { command } => return report::run(&command, &config, json),
        Command::Loadgen(_) => "loadgen",
    };
    bail!("`auditflow {name}` is not implemented yet")
}
