//! One module per subcommand; `dispatch` is the only place that knows them all.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::{Cli, Command};

mod classify;
mod demo;
mod detect;
mod migrate;
mod ndjson;
mod query;
mod run;
mod topics;
mod trail;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let name = match cli.command {
        Command::Classify => {
            let config = match crate::config::load(cli.global.config.as_deref()) {
                Ok(config) => config,
                Err(bad) => return Ok(bad.exit()),
            };
            return classify::run(&config, cli.global.json);
        }
        Command::Detect => {
            let config = match crate::config::load(cli.global.config.as_deref()) {
                Ok(config) => config,
                Err(bad) => return Ok(bad.exit()),
            };
            return detect::run(&config, cli.global.json);
        }
        Command::Run { service } => {
            let config = match crate::config::load(cli.global.config.as_deref()) {
                Ok(config) => config,
                Err(bad) => return Ok(bad.exit()),
            };
            return run::run(service, &config);
        }
        Command::Migrate => {
            let config = match crate::config::load(cli.global.config.as_deref()) {
                Ok(config) => config,
                Err(bad) => return Ok(bad.exit()),
            };
            return migrate::run(&config, cli.global.json);
        }
        Command::Topics { command } => {
            let config = match crate::config::load(cli.global.config.as_deref()) {
                Ok(config) => config,
                Err(bad) => return Ok(bad.exit()),
            };
            return topics::run(command, &config, cli.global.json);
        }
        Command::Query(args) => {
            let config = match crate::config::load(cli.global.config.as_deref()) {
                Ok(config) => config,
                Err(bad) => return Ok(bad.exit()),
            };
            return query::run(&args, &config, cli.global.json);
        }
        Command::Trail(args) => {
            let config = match crate::config::load(cli.global.config.as_deref()) {
                Ok(config) => config,
                Err(bad) => return Ok(bad.exit()),
            };
            return trail::run(&args, &config, cli.global.json);
        }
        Command::Gdpr { .. } => "gdpr",
        Command::Report { .. } => "report",
        Command::Demo => {
            let config = match crate::config::load(cli.global.config.as_deref()) {
                Ok(config) => config,
                Err(bad) => return Ok(bad.exit()),
            };
            return demo::run(&config, cli.global.json);
        }
        Command::Loadgen(_) => "loadgen",
    };
    bail!("`auditflow {name}` is not implemented yet")
}
