//! One module per subcommand; `dispatch` is the only place that knows them all.

use std::process::ExitCode;

use auditflow_store::{Page, PageToken, StoredRecord};

use crate::cli::{Cli, Command};

mod classify;
mod demo;
mod detect;
pub(crate) mod format;
mod gdpr;
mod loadgen;
mod migrate;
mod ndjson;
mod ocsf;
mod operator_log;
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
        Command::Ocsf => ocsf::run(&config, json),
        Command::Run { service } => run::run(service, &config),
        Command::Migrate => migrate::run(&config, json),
        Command::Topics { command } => topics::run(command, &config, json),
        Command::Demo => demo::run(&config, json),
        Command::Loadgen(args) => loadgen::run(&args, &config, json),
        Command::Keys { command } => verify::keys(&command, &config, json),
        Command::VerifyProof { file, public_key } => prove::verify_proof(&file, &public_key, json),
        command @ (Command::Query(_)
        | Command::Trail(_)
        | Command::Gdpr { .. }
        | Command::Report { .. }
        | Command::Verify(_)
        | Command::Prove { .. }) => {
            let Some(described) = operator_log::describe(&command) else {
                anyhow::bail!(
                    "internal: a command on audit data is not described for the operator log"
                );
            };
            operator_log::run(&cli.global, &config, described, |audited| {
                audited_command(&command, &config, json, audited)
            })
        }
    }
}

/// The commands on audit data ([`operator_log::describe`]), writing their output into
/// `audited` for the operator log to release.
fn audited_command(
    command: &Command,
    config: &auditflow_core::Config,
    json: bool,
    audited: &mut operator_log::Audited,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Query(args) => query::run(args, config, json, audited),
        Command::Trail(args) => trail::run(args, config, json, audited),
        Command::Gdpr { command } => gdpr::run(command, config, json, audited),
        Command::Report { command } => report::run(command, config, json, audited),
        Command::Verify(args) => verify::run(args, config, json, audited),
        Command::Prove { event_id } => prove::prove(event_id, config, audited),
        _ => anyhow::bail!("internal: not a command on audit data"),
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

/// Every record of a paged read (`query_user`, `records_by_time`, `security_events`), page
/// after page.
pub(crate) async fn all_pages(
    mut read: impl AsyncFnMut(Option<&PageToken>) -> anyhow::Result<Page>,
) -> anyhow::Result<Vec<StoredRecord>> {
    let mut records = Vec::new();
    let mut page: Option<PageToken> = None;
    loop {
        let found = read(page.as_ref()).await?;
        records.extend(found.records);
        match found.next {
            Some(next) => page = Some(next),
            None => return Ok(records),
        }
    }
}
